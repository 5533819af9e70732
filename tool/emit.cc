#include <iostream>

#include "core/json_util.h"
#include "tool/command.h"

namespace pp {

int Deliver(const std::string& output, const std::string& format, const std::string& document,
            const std::function<std::string(const std::string& format)>& render) {
  return Deliver(OutputSet(), output, format, document, render);
}

int Deliver(OutputSet outputs, const std::string& output, const std::string& format,
            const std::string& document,
            const std::function<std::string(const std::string& format)>& render) {
  outputs.Add(output, document);
  if (Status s = outputs.Commit(); !s.ok()) return Fail(s);
  if (!output.empty()) {
    if (output == "-") return 0;
    std::cerr << "pp-partition: wrote " << output << "\n";
  }
  if (format == "json") {
    if (output.empty()) std::cout << document;
    return 0;
  }
  std::cout << render(format);
  return 0;
}

}  // namespace pp
