// Kernel-only time from CUPTI activity records, for the cuda backend. Start() enables
// concurrent-kernel records, Stop() flushes them and returns the kernels that ran in between
// (every stream of the process). CUPTI delivers records through process-wide callbacks, so
// there is one recorder per process, used by one measuring thread at a time. Where CUPTI
// does not work (no permission, an unsupported driver), Start() fails with CUPTI's message and
// the caller carries on with event timings.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace pp {

struct KernelTotals {
  double kernel_ms = 0;  // sum of kernel durations (end - start)
  int64_t kernel_count = 0;
  int64_t dropped = 0;   // records CUPTI had to drop (totals are then low)
};

class KernelRecorder {
 public:
  static KernelRecorder& Instance();
  Status Start();
  Result<KernelTotals> Stop();

 private:
  KernelRecorder() = default;
  bool registered_ = false;
};

}  // namespace pp
