// GPU selection for `profile` and `run` (--gpus), and virtual devices: disjoint shares of one
// GPU's SMs made with CUDA green contexts. The driver API is reached only through
// cudaGetDriverEntryPointByVersion, so nothing here links libcuda; where the driver lacks
// green contexts (before 12.5, or a GPU that refuses the split) Create returns an error saying
// why, and callers fall back to plain streams with a warning.
//
// Threads: a green context can be current to one thread at a time. Setup code brackets its
// calls with ScopedShare (push, then pop); a device thread calls MakeCurrent once per step.
// Memory allocated with any share current belongs to the GPU's primary context and is usable
// from every share.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace pp {

// What --gpus asked for: "0,1,2,3" is one physical GPU per entry (shares = 0);
// "0x4" is GPU 0 cut into 4 virtual devices (gpus = {0}, shares = 4); "" is GPU 0.
struct GpuSpec {
  std::vector<int> gpus;
  int shares = 0;
  bool virtual_devices() const { return shares > 0; }
  // Devices the spec provides: gpus.size(), or shares.
  int count() const { return virtual_devices() ? shares : static_cast<int>(gpus.size()); }
};

// Parses --gpus; `visible` is cudaGetDeviceCount's answer (indices must be below it).
Result<GpuSpec> ParseGpuSpec(const std::string& text, int visible);

// The reason no GPU can be used ("no CUDA GPU is visible: ..."), or Ok with the count.
Status VisibleGpus(int* count);

// Disjoint SM shares of one GPU. Owns its green contexts (deleted copies); destroy it after
// every stream made from it.
class GreenContexts {
 public:
  // Cuts `device` into `count` shares of equal SM count (the largest the GPU's partition
  // granularity allows; SMs left over stay unused). Errors name the driver call that failed.
  static Result<std::unique_ptr<GreenContexts>> Create(int device, int count);
  ~GreenContexts();
  GreenContexts(const GreenContexts&) = delete;
  GreenContexts& operator=(const GreenContexts&) = delete;

  int device() const { return device_; }
  int count() const { return static_cast<int>(contexts_.size()); }
  int sm_count(int share) const { return sm_counts_[share]; }
  int total_sm_count() const { return total_sms_; }
  // sm_count(share) / total_sm_count(), the profile's sm_share.
  double fraction(int share) const;

  // Makes `share` current on the calling thread (replacing whatever was current).
  Status MakeCurrent(int share) const;
  Status Push(int share) const;
  Status Pop() const;
  // A non-blocking stream whose kernels run on the share's SMs only. The caller destroys it
  // (cudaStreamDestroy) before this object.
  Result<cudaStream_t> CreateStream(int share) const;

 private:
  GreenContexts() = default;
  int device_ = 0;
  int total_sms_ = 0;
  std::vector<void*> contexts_;      // CUgreenCtx
  std::vector<void*> as_context_;    // CUcontext of each green context
  std::vector<int> sm_counts_;
};

// Pushes a share current for a scope (setup on a thread that is not the device's own).
// No-op when `contexts` is null.
class ScopedShare {
 public:
  ScopedShare(const GreenContexts* contexts, int share);
  ~ScopedShare();
  ScopedShare(const ScopedShare&) = delete;
  ScopedShare& operator=(const ScopedShare&) = delete;
  const Status& status() const { return status_; }

 private:
  const GreenContexts* contexts_;
  Status status_;
};

}  // namespace pp
