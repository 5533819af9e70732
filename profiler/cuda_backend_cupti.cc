// CUPTI activity records -> kernel totals (cuda_backend_cupti.h).
#include "profiler/cuda_backend_cupti.h"

#include <cupti.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace pp {
namespace {

constexpr size_t kBufferBytes = size_t{8} << 20;
constexpr size_t kBufferAlign = 8;

// What the completion callback has summed since the last Stop(). CUPTI's callbacks take no
// user pointer, so this one accumulator is shared by the process, behind a mutex.
struct Accumulator {
  std::mutex mu;
  KernelTotals totals;
};
Accumulator& Acc() {
  static Accumulator* const acc = new Accumulator();
  return *acc;
}

Status CuptiError(CUptiResult r, const char* file, int line, const char* call) {
  const char* what = nullptr;
  if (cuptiGetResultString(r, &what) != CUPTI_SUCCESS || what == nullptr) what = "unknown";
  return Status::Error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " + what);
}

#define PP_CUPTI_CHECK(call)                                               \
  do {                                                                     \
    const CUptiResult pp_cupti_r_ = (call);                                \
    if (pp_cupti_r_ != CUPTI_SUCCESS) {                                    \
      return CuptiError(pp_cupti_r_, __FILE__, __LINE__, #call);           \
    }                                                                      \
  } while (0)

void CUPTIAPI BufferRequested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(kBufferAlign, kBufferBytes));
  *size = *buffer != nullptr ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI BufferCompleted(CUcontext context, uint32_t stream_id, uint8_t* buffer, size_t,
                              size_t valid) {
  KernelTotals got;
  CUpti_Activity* record = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL ||
        record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      // start and end sit at the same place in every version of the kernel record.
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      if (k->end > k->start) got.kernel_ms += 1e-6 * static_cast<double>(k->end - k->start);
      ++got.kernel_count;
    }
  }
  size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords(context, stream_id, &dropped) == CUPTI_SUCCESS) {
    got.dropped = static_cast<int64_t>(dropped);
  }
  std::free(buffer);
  std::lock_guard<std::mutex> lock(Acc().mu);
  Acc().totals.kernel_ms += got.kernel_ms;
  Acc().totals.kernel_count += got.kernel_count;
  Acc().totals.dropped += got.dropped;
}

}  // namespace

KernelRecorder& KernelRecorder::Instance() {
  static KernelRecorder* const recorder = new KernelRecorder();
  return *recorder;
}

Status KernelRecorder::Start() {
  if (!registered_) {
    PP_CUPTI_CHECK(cuptiActivityRegisterCallbacks(BufferRequested, BufferCompleted));
    registered_ = true;
  }
  {
    std::lock_guard<std::mutex> lock(Acc().mu);
    Acc().totals = KernelTotals();
  }
  PP_CUPTI_CHECK(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL));
  return Status::Ok();
}

Result<KernelTotals> KernelRecorder::Stop() {
  PP_CUPTI_CHECK(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL));
  PP_CUPTI_CHECK(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
  std::lock_guard<std::mutex> lock(Acc().mu);
  KernelTotals t = Acc().totals;
  Acc().totals = KernelTotals();
  return t;
}

}  // namespace pp
