// The one timing protocol (timing.h) on a CUDA stream: `warmup` untimed runs, then an event
// pair around each of `repeats` runs, then median and p95 of the event times. All events are
// created before the first run and read after the last, so nothing is allocated, synchronised
// or processed inside the timed region. Times in ms.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "core/status.h"
#include "layers/cuda_check.h"
#include "profiler/timing.h"

namespace pp {

// Events, destroyed with the object.
class CudaEvents {
 public:
  CudaEvents() = default;
  ~CudaEvents() {
    for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);
  }
  CudaEvents(const CudaEvents&) = delete;
  CudaEvents& operator=(const CudaEvents&) = delete;

  Status Create(int count) {
    for (int i = 0; i < count; ++i) {
      cudaEvent_t e = nullptr;
      PP_CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
    return Status::Ok();
  }
  cudaEvent_t operator[](size_t i) const { return events_[i]; }

 private:
  std::vector<cudaEvent_t> events_;
};

// `run()` enqueues one repetition on `stream` and returns a Status.
template <typename Fn>
Result<Timing> TimeOnStream(cudaStream_t stream, Fn&& run, int warmup, int repeats) {
  CudaEvents events;
  PP_RETURN_IF_ERROR(events.Create(2 * repeats));
  for (int i = 0; i < warmup; ++i) PP_RETURN_IF_ERROR(run());
  PP_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (int i = 0; i < repeats; ++i) {
    PP_CUDA_CHECK(cudaEventRecord(events[2 * i], stream));
    PP_RETURN_IF_ERROR(run());
    PP_CUDA_CHECK(cudaEventRecord(events[2 * i + 1], stream));
  }
  PP_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> samples;
  samples.reserve(repeats);
  for (int i = 0; i < repeats; ++i) {
    float ms = 0;
    PP_CUDA_CHECK(cudaEventElapsedTime(&ms, events[2 * i], events[2 * i + 1]));
    samples.push_back(ms);
  }
  return Summarize(std::move(samples));
}

}  // namespace pp
