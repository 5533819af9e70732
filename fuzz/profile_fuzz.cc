// The profile loader: bytes -> ParseJsonText -> ProfileFromJson (core/profile.h).
#include <cstddef>
#include <cstdint>

#include "core/json_util.h"
#include "core/profile.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pp::Result<pp::Json> doc = pp::ParseJsonText(pp::FuzzText(data, size));
  if (doc.ok()) (void)pp::ProfileFromJson(*doc);
  return 0;
}
