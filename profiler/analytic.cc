#include "profiler/analytic.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>

#include "core/units.h"
#include "core/version.h"

namespace pp {
namespace {

// Largest micro-batch a profile document accepts (see core/profile.cc).

// Bytes a transformer block keeps for its backward, per micro-batch.
double BlockActivationBytes(const Layer& l, double n, double b, double s, double e) {
  const double h = static_cast<double>(l.hidden);
  const double f = static_cast<double>(l.ffn);
  const double a = static_cast<double>(l.heads);
  const double elements = 2 * n * h        // norm1 input and output
                          + 2 * n * h      // q and k (after rotary, when used)
                          + n * h          // v
                          + a * s * s * b  // softmax probabilities
                          + n * h          // attention output = proj input
                          + 2 * n * h      // norm2 input and output
                          + (l.mlp == MlpKind::kGelu ? 2 * n * f            // fc1 and gelu outputs
                                                     : 3 * n * f);          // gate, up, product
  const double stats_per_row = l.norm == NormKind::kLayerNorm ? 8.0 : 4.0;  // fp32
  return elements * e + 2 * n * stats_per_row;
}

double ActivationBytes(const Layer& l, const ModelInput& input, double e) {
  const double b = static_cast<double>(input.micro_batch_size);
  const double s = input.tokens() ? static_cast<double>(input.seq_len) : 1.0;
  const double n = b * s;
  const double in = n * static_cast<double>(l.in_width) * e;  // the layer's input tensor
  switch (l.op) {
    case LayerKind::kEmbedding:
      return n * 4 * (l.token_types > 0 ? 2 : 1);  // int32 token (and token type) ids
    case LayerKind::kLinear:
    case LayerKind::kRelu:
    case LayerKind::kGelu:
      return in;
    case LayerKind::kLayerNorm:
      return in + n * 8;  // input, fp32 mean and rstd
    case LayerKind::kRmsNorm:
      return in + n * 4;  // input, fp32 rstd
    case LayerKind::kTransformerBlock:
      return BlockActivationBytes(l, n, b, s, e);
    case LayerKind::kCrossEntropy:
    case LayerKind::kMse:
      return in;  // the softmax of the logits, or the difference from the target
  }
  return 0;
}

// Converts a byte count to an integer, or fails naming the layer and the quantity.
Status CheckedBytes(const Layer& l, const char* what, double bytes, uint64_t* out) {
  if (!(bytes >= 0) || bytes > static_cast<double>(kMaxBytes)) {
    char value[32];
    std::snprintf(value, sizeof value, "%.3g", bytes);
    return Status::Error("layer " + DescribeValue(Json(l.name)) + ": " + what + " of " + value +
                         " bytes exceed the limit of 2^53 bytes (reduce the " +
                         "micro-batch size, sequence length or widths)");
  }
  *out = static_cast<uint64_t>(bytes);
  return Status::Ok();
}

}  // namespace

double KernelMs(const Kernel& kernel, const DeviceSpec& device, DType dtype) {
  const double rate = dtype == DType::kBf16 ? device.bf16_flops_per_s : device.fp32_flops_per_s;
  const double seconds = std::max(kernel.flops / rate, kernel.bytes / device.memory_bytes_per_s);
  return 1000.0 * seconds;
}

double KernelsMs(const std::vector<Kernel>& kernels, const DeviceSpec& device, DType dtype) {
  double ms = 0;
  for (const Kernel& k : kernels) ms += KernelMs(k, device, dtype);
  return ms;
}

LayerMemory AnalyticLayerMemory(const Layer& layer, const ModelInput& input, DType dtype) {
  const double e = static_cast<double>(DTypeBytes(dtype));
  const double rows = static_cast<double>(input.micro_batch_size) *
                      (input.tokens() ? static_cast<double>(input.seq_len) : 1.0);
  LayerMemory m;
  m.param_bytes = static_cast<double>(LayerParamCount(layer)) * e;
  m.activation_bytes = ActivationBytes(layer, input, e);
  m.output_bytes = IsLoss(layer.op) ? 4.0 : rows * static_cast<double>(layer.out_width) * e;
  return m;
}

Result<LayerCost> AnalyticLayerCost(const Layer& layer, const ModelInput& input, DType dtype,
                                    const DeviceSpec& device) {
  const LayerMemory memory = AnalyticLayerMemory(layer, input, dtype);
  LayerCost cost;
  PP_RETURN_IF_ERROR(CheckedBytes(layer, "parameters", memory.param_bytes, &cost.param_bytes));
  PP_RETURN_IF_ERROR(
      CheckedBytes(layer, "activations", memory.activation_bytes, &cost.activation_bytes));
  PP_RETURN_IF_ERROR(CheckedBytes(layer, "output", memory.output_bytes, &cost.output_bytes));

  const LayerKernels k = ListKernels(layer, input, dtype);
  cost.forward_ms = KernelsMs(k.forward, device, dtype);
  cost.backward_input_ms = KernelsMs(k.backward_input, device, dtype);
  cost.backward_weight_ms = KernelsMs(k.backward_weight, device, dtype);
  cost.forward_flops = TotalFlops(k.forward);
  cost.backward_flops = TotalFlops(k.backward_input) + TotalFlops(k.backward_weight);
  cost.forward_bytes = TotalBytes(k.forward);
  cost.backward_bytes = TotalBytes(k.backward_input) + TotalBytes(k.backward_weight);
  return cost;
}

Result<Profile> AnalyticProfile(const Model& model, const DeviceSpec& device,
                                const AnalyticOptions& options) {
  ModelInput input = model.input;
  if (options.micro_batch_size) {
    const int64_t mbs = *options.micro_batch_size;
    if (mbs < 1 || mbs > kMaxMicroBatchSize) {
      return Status::Error("micro-batch size must be between 1 and " +
                           std::to_string(kMaxMicroBatchSize) + " (got " + std::to_string(mbs) +
                           ")");
    }
    input.micro_batch_size = mbs;
  }
  const DType dtype = options.dtype.value_or(model.dtype);

  Profile p;
  p.model = model.name;
  p.backend = "analytic";
  p.device.name = std::string(device.name);
  p.device.memory_bytes = device.memory_bytes;
  p.micro_batch_size = input.micro_batch_size;
  p.dtype = dtype;
  p.link.bandwidth_bytes_per_s = device.link_bytes_per_s;
  p.link.latency_ms = device.link_latency_ms;
  p.tool_version = kToolVersion;

  // Repeated layers (a spec's "repeat") are costed once: each layer reuses the previous
  // layer's cost when their shapes agree.
  const Layer* previous = nullptr;
  LayerCost c;
  p.layers.reserve(model.layers.size());
  for (const Layer& layer : model.layers) {
    if (previous == nullptr || !SameShape(*previous, layer)) {
      Result<LayerCost> cost = AnalyticLayerCost(layer, input, dtype, device);
      if (!cost.ok()) return cost.status();
      c = *cost;
    }
    previous = &layer;
    LayerProfile lp;
    lp.name = layer.name;
    lp.op = std::string(LayerKindName(layer.op));
    lp.forward_ms = c.forward_ms;
    lp.backward_ms = c.backward_ms();
    lp.backward_input_ms = c.backward_input_ms;
    lp.backward_weight_ms = c.backward_weight_ms;
    lp.param_bytes = c.param_bytes;
    lp.activation_bytes = c.activation_bytes;
    lp.output_bytes = c.output_bytes;
    p.layers.push_back(std::move(lp));
  }
  return p;
}

}  // namespace pp
