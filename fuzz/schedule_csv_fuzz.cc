// The schedule CSV reader: bytes -> ScheduleFromCsv (executor/schedule_csv.h).
#include <cstddef>
#include <cstdint>

#include "executor/schedule_csv.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)pp::ScheduleFromCsv(pp::FuzzText(data, size));
  return 0;
}
