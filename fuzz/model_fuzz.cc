// The model loader: bytes -> ParseJsonText -> ModelFromJson (core/model.h).
#include <cstddef>
#include <cstdint>

#include "core/json_util.h"
#include "core/model.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pp::Result<pp::Json> doc = pp::ParseJsonText(pp::FuzzText(data, size));
  if (doc.ok()) (void)pp::ModelFromJson(*doc);
  return 0;
}
