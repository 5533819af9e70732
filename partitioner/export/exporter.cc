#include "partitioner/export/exporter.h"

#include "partitioner/export/targets.h"
#include "core/units.h"

namespace pp {

const std::vector<const Exporter*>& Exporters() {
  static const std::vector<const Exporter*> kExporters = {
      &MegatronExporter(), &DeepSpeedExporter(),  &TorchExporter(), &GpipeExporter(),
      &TorchTitanExporter(), &JsonExporter(), &MarkdownExporter(),
  };
  return kExporters;
}

const Exporter* FindExporter(std::string_view name) {
  for (const Exporter* e : Exporters()) {
    if (e->name() == name) return e;
  }
  return nullptr;
}

std::string ExporterNames() {
  std::string names;
  for (const Exporter* e : Exporters()) {
    names += (names.empty() ? "" : ", ") + std::string(e->name());
  }
  return names;
}

Result<std::pair<std::string, std::string>> ParseModulePrefix(std::string_view text) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return Status::Error("--module-prefix: " + Quote(text) +
                         " is not LAYER_PREFIX=MODULE_PATH (example: block=transformer.h)");
  }
  std::string from(text.substr(0, eq)), to(text.substr(eq + 1));
  for (char c : from + to) {
    if (c <= ' ' || c > '~' || c == '"' || c == '\\' || c == '\'') {
      return Status::Error("--module-prefix: " + Quote(text) +
                           " may hold printable characters only, without spaces or quotes");
    }
  }
  return std::make_pair(std::move(from), std::move(to));
}

}  // namespace pp
