// The device file reader: bytes -> ParseJsonText -> DeviceFromJson (profiler/device_file.h).
#include <cstddef>
#include <cstdint>

#include "core/json_util.h"
#include "fuzz/fuzz_input.h"
#include "profiler/device_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pp::Result<pp::Json> doc = pp::ParseJsonText(pp::FuzzText(data, size));
  if (doc.ok()) (void)pp::DeviceFromJson(*doc);
  return 0;
}
