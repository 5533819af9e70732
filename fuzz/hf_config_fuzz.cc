// The import command's config reader: bytes -> ParseJsonText -> ImportHfConfig
// (core/hf_import.h).
#include <cstddef>
#include <cstdint>

#include "core/hf_import.h"
#include "core/json_util.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pp::Result<pp::Json> doc = pp::ParseJsonText(pp::FuzzText(data, size));
  if (doc.ok()) (void)pp::ImportHfConfig(*doc, pp::HfImportOptions{});
  return 0;
}
