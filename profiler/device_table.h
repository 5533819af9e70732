// The devices the analytic backend can model: peak rates, memory and the link between two
// neighbouring pipeline stages, each taken from the vendor's datasheet (see `source`), and
// what real kernels and collectives achieve of those peaks (DeviceEfficiency, from published
// measurements; see `efficiency.source`). A device file (profiler/device_file.h) gives the
// same fields for a device measured with `profile --backend cuda --calibrate`.
//
// Units: FLOP/s, bytes/s, bytes, milliseconds. Rates are dense (no structured sparsity) and
// per GPU; link bandwidth is per direction, as one stage sends to the next.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/model.h"

namespace pp {

// One measured matrix product: `batch` independent [m x k] . [k x n] products of `dtype`
// reached `flops_per_s` (2mkn x batch / median time).
struct GemmPoint {
  DType dtype = DType::kBf16;
  double m = 0, n = 0, k = 0, batch = 1;
  double flops_per_s = 0;
};

// What kernels achieve of the device's peaks (profiler/efficiency.h uses these;
// docs/cost-model.md "Efficiency" gives every formula). Fractions are in (0, 1]; 1 and 0 mean
// "not modelled" (the peak, no overhead).
struct DeviceEfficiency {
  // A large matrix product of each dtype: the fraction of that dtype's peak it reaches.
  double gemm_bf16 = 1;
  double gemm_fp32 = 1;
  double gemm_fp8 = 1;
  // Fused (flash-style) attention, forward and backward, as a fraction of the dtype's peak.
  // The fp8 pair is read and written with device files but not used in timing: fp8 models
  // run attention in bf16 (profiler/efficiency.h ComputeDType).
  double attention_forward_bf16 = 1;
  double attention_backward_bf16 = 1;
  double attention_forward_fp8 = 1;
  double attention_backward_fp8 = 1;
  // Memory-bound kernels: the fraction of memory_bytes_per_s they stream at.
  double memory = 1;
  // Added to every kernel's time: the launch and scheduling gap between two kernels.
  double launch_ms = 0;
  // What a matrix product pays beyond its rate (0: nothing), unless a measured point gives
  // its rate (which holds both): a fixed time per product beside launch_ms (its first wave's
  // ramp-up and its last wave's drain), and a depth per dtype, the inner dimension k0 whose
  // main-loop time each output tile spends on its prologue and epilogue, so that a product of
  // inner dimension k runs at k / (k + k0) of the large products' rate.
  double gemm_fixed_ms = 0;
  double gemm_depth_k_bf16 = 0;
  double gemm_depth_k_fp32 = 0;
  double gemm_depth_k_fp8 = 0;
  // Streaming multiprocessors, for the wave quantization of matrix products (0: none).
  int sm_count = 0;
  // Measured matrix products (a calibrated device file): when any has a kernel's dtype, the
  // nearest (in log m, n, k, batch) gives that kernel's rate instead of gemm_* and the waves.
  std::span<const GemmPoint> gemm_points;
  std::string_view source;  // where each number comes from
};

struct DeviceSpec {
  std::string_view key;         // lowercase, as given to --device ("h100")
  std::string_view name;        // as the CUDA runtime names the device
  double bf16_flops_per_s = 0;  // dense tensor-core bf16 with fp32 accumulation
  double fp32_flops_per_s = 0;  // fp32 without tensor cores
  double fp8_flops_per_s = 0;   // dense tensor-core fp8; 0 where the device has none
  double memory_bytes_per_s = 0;
  uint64_t memory_bytes = 0;
  double link_bytes_per_s = 0;  // one direction between two GPUs
  double link_latency_ms = 0;
  // Collectives (core/parallelism.h CollectiveMs): the bus bandwidth a group reaches inside
  // one node (NVLink / NVSwitch) and across nodes (the network, per GPU), and the latency per
  // ring step on each.
  double node_bus_bytes_per_s = 0;
  double node_latency_ms = 0;
  double network_bus_bytes_per_s = 0;
  double network_latency_ms = 0;
  std::string_view source;  // where the numbers come from
  DeviceEfficiency efficiency;
};

// The dense peak of `dtype` on `device` in FLOP/s (0: the device has no such tensor cores).
double PeakFlops(const DeviceSpec& device, DType dtype);

// The table, in a fixed order. Entries live for the whole program.
std::span<const DeviceSpec> AllDevices();

// The entry whose key equals `key` (exactly, lowercase), or nullptr.
const DeviceSpec* FindDevice(std::string_view key);

// "h100, h200, a100, l40s": the keys, for error messages.
std::string KnownDeviceKeys();

}  // namespace pp
