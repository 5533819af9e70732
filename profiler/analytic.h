// The analytic profiler backend: per-layer time and memory from the layer's shapes and a
// device's datasheet rates, with no GPU involved.
//
// Time is a roofline per kernel (kernels.h lists them): a kernel lasts
//   max(flops / peak rate, bytes / memory bandwidth)
// where the peak rate is the device's bf16 tensor rate or its fp32 rate by dtype. A layer's
// forward_ms is the sum over its forward kernels; backward_input_ms and backward_weight_ms
// likewise; backward_ms is their sum. Launch overheads, overlap between kernels and
// efficiency below peak are not modelled, so measured times are longer.
//
// Memory is exact from the shapes (docs/analytic.md gives every term): param_bytes,
// activation_bytes (kept for the backward, per micro-batch) and output_bytes (sent to the
// next stage, per micro-batch). Every byte count is computed in double; a count above
// kMaxBytes (2^53) is an error naming the layer.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/model.h"
#include "core/parallelism.h"
#include "core/profile.h"
#include "core/status.h"
#include "profiler/device_table.h"
#include "profiler/kernels.h"

namespace pp {

struct AnalyticOptions {
  std::optional<int64_t> micro_batch_size;  // replaces the model's input.micro_batch_size
  std::optional<DType> dtype;               // replaces the model's dtype
  // The layout the layers run under: each layer is costed as one rank of its tensor, context
  // and expert groups (ParallelLayout::shard), its collectives on the links of those groups.
  ParallelLayout layout;
  bool flash_attention = false;  // fused attention kernels (profiler/kernels.h)
};

// Roofline time of one kernel in milliseconds.
double KernelMs(const Kernel& kernel, const DeviceSpec& device, DType dtype);
// Sum of KernelMs over a list.
double KernelsMs(const std::vector<Kernel>& kernels, const DeviceSpec& device, DType dtype);

// Memory of one layer in bytes, per micro-batch, as doubles (exact below 2^53):
//   param_bytes      LayerParamCount x e (a tied head counts its own full copy);
//   activation_bytes what the layer keeps for its backward;
//   output_bytes     rows x out_width x e; a loss outputs one fp32 scalar (4 bytes).
struct LayerMemory {
  double param_bytes = 0;
  double activation_bytes = 0;
  double output_bytes = 0;
};
LayerMemory AnalyticLayerMemory(const Layer& layer, const ModelInput& input, DType dtype,
                                const KernelOptions& options = {});

// Everything the analytic backend knows about one layer. Times in ms; flops and bytes are
// the totals of each part's kernels.
struct LayerCost {
  double forward_ms = 0;
  double backward_input_ms = 0;
  double backward_weight_ms = 0;
  double backward_ms() const { return backward_input_ms + backward_weight_ms; }
  double forward_flops = 0;
  double backward_flops = 0;  // input and weight parts together
  double forward_bytes = 0;
  double backward_bytes = 0;
  uint64_t param_bytes = 0;
  uint64_t activation_bytes = 0;
  uint64_t output_bytes = 0;
};

// Costs `layer` (from a loaded Model) for one micro-batch of `input`. Fails, naming the
// layer, when a byte count exceeds kMaxBytes.
Result<LayerCost> AnalyticLayerCost(const Layer& layer, const ModelInput& input, DType dtype,
                                    const DeviceSpec& device, const KernelOptions& options = {});

// A profile of every layer of `model` (expanded names, op names from LayerKindName) with
// backend "analytic", the device's name, memory and link from `device`, and
// backward_input_ms / backward_weight_ms filled in. Fails on a micro-batch size outside
// [1, 2^20] or a byte count above kMaxBytes.
Result<Profile> AnalyticProfile(const Model& model, const DeviceSpec& device,
                                const AnalyticOptions& options);

}  // namespace pp
