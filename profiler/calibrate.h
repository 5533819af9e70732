// `profile --backend cuda --calibrate`: measures what one GPU achieves and writes it as a
// device file (device_file.h) for the analytic backend. With the one timing protocol
// (cuda_timing.h: warm-up, events around each repeat, median):
//   gemm_points   cuBLAS bf16 and fp32 products over a grid of m, n, k, and fp8 (E4M3 in, bf16
//                 out, cuBLASLt) where the GPU and the base device have fp8 tensor cores;
//                 gemm.{bf16,fp32,fp8} is the best measured rate over the dtype's peak
//   attention     a strided-batched product of attention's shapes (QK^T: batch 32, s x 128 x s
//                 with s = 2048), its rate over the bf16 peak written into the source only:
//                 the attention fractions stay the base table's (a fused kernel's, which the
//                 tool does not run)
//   memory        a copy kernel over 1 GiB: bytes read + written per second over the base
//                 table's memory bandwidth
//   launch_ms     back-to-back empty kernels: elapsed time / count
//   node bus      with NCCL and more than one visible GPU: an all-reduce over all of them
//                 (nccl-tests' bus bandwidth 2(n-1)/n x size / time for 1 GiB; latency per ring
//                 step from an 8-byte all-reduce / (2(n-1)))
// Fields it cannot measure (the peaks, attention, the network, the pipeline link) come
// from `base`, the built-in
// device the GPU is (by name) or the one --device names.
#pragma once

#include <string>

#include "core/json_util.h"
#include "core/status.h"
#include "profiler/device_table.h"

namespace pp {

struct CalibrateRequest {
  const DeviceSpec* base = nullptr;  // not owned; outlives the call
  std::string gpus;                  // "" or "D": the GPU to measure
  int repeats = 0;                   // timed repeats per measurement (0: 10)
  bool progress = false;
};

// The device document (DeviceToJson) of the measured GPU. Errors: "no CUDA device" (no GPU
// or no driver), a failed CUDA, cuBLAS or NCCL call with its location.
Result<Json> CalibrateDevice(const CalibrateRequest& request);

}  // namespace pp
