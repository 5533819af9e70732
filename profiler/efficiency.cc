#include "profiler/efficiency.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace pp {
namespace {

// The figure of `dtype` among a device's three.
double ByDType(DType dtype, double bf16, double fp32, double fp8) {
  switch (dtype) {
    case DType::kBf16:
      return bf16;
    case DType::kFp32:
      return fp32;
    case DType::kFp8:
      return fp8;
  }
  return bf16;
}

double GemmFraction(const DeviceEfficiency& e, DType dtype) {
  return ByDType(dtype, e.gemm_bf16, e.gemm_fp32, e.gemm_fp8);
}

double GemmDepthK(const DeviceEfficiency& e, DType dtype) {
  return ByDType(dtype, e.gemm_depth_k_bf16, e.gemm_depth_k_fp32, e.gemm_depth_k_fp8);
}

// The fraction of its dtype's peak fused attention reaches. Attention computes in bf16 (or
// fp32) for every model, fp8 ones too (ComputeDType), so the device's fp8 attention fractions
// are not read.
double AttentionFraction(const DeviceEfficiency& e, Direction direction) {
  return direction == Direction::kForward ? e.attention_forward_bf16 : e.attention_backward_bf16;
}

// The measured product of `dtype` nearest to `kernel` in (log m, log n, log k, log batch), or
// nullptr when none was measured for that dtype.
const GemmPoint* NearestPoint(const Kernel& kernel, std::span<const GemmPoint> points,
                              DType dtype) {
  auto log_ratio = [](double a, double b) { return std::log(std::max(a, 1.0) / std::max(b, 1.0)); };
  const GemmPoint* best = nullptr;
  double best_distance = std::numeric_limits<double>::infinity();
  for (const GemmPoint& p : points) {
    if (p.dtype != dtype) continue;
    const double dm = log_ratio(kernel.m, p.m), dn = log_ratio(kernel.n, p.n);
    const double dk = log_ratio(kernel.k, p.k), db = log_ratio(kernel.batch, p.batch);
    const double distance = dm * dm + dn * dn + dk * dk + db * db;
    if (distance < best_distance) {
      best_distance = distance;
      best = &p;
    }
  }
  return best;
}

double MemoryMs(double bytes, const DeviceSpec& device, double fraction) {
  return 1000.0 * bytes / (device.memory_bytes_per_s * fraction);
}

}  // namespace

DType ComputeDType(const Kernel& kernel, DType dtype) {
  if (dtype != DType::kFp8) return dtype;
  const bool bf16 = kernel.cls == KernelClass::kAttention ||
                    kernel.name.starts_with("attention_") || kernel.name.starts_with("router");
  return bf16 ? DType::kBf16 : dtype;
}

std::string_view RatesName(Rates rates) { return rates == Rates::kPeak ? "peak" : "achieved"; }

std::optional<Rates> ParseRates(std::string_view name) {
  if (name == "peak") return Rates::kPeak;
  if (name == "achieved") return Rates::kAchieved;
  return std::nullopt;
}

double WaveEfficiency(const Kernel& kernel, int sm_count) {
  if (sm_count <= 0 || kernel.m <= 0 || kernel.n <= 0) return 1;
  constexpr double kTiles[][2] = {{256, 128}, {128, 128}, {128, 64}};
  const double sms = sm_count;
  const double batch = std::max(kernel.batch, 1.0);
  double best = 0;
  for (const auto& tile : kTiles) {
    const double tiles = batch * std::ceil(kernel.m / tile[0]) * std::ceil(kernel.n / tile[1]);
    const double waves = std::ceil(tiles / sms);
    best = std::max(best, tiles / (waves * sms));
  }
  return best;
}

double AchievedFlops(const Kernel& kernel, const DeviceSpec& device, DType dtype,
                     Direction direction) {
  const DeviceEfficiency& e = device.efficiency;
  if (kernel.cls == KernelClass::kAttention) {
    const DType a = ComputeDType(kernel, dtype);
    return PeakFlops(device, a) * AttentionFraction(e, direction);
  }
  const DType d = ComputeDType(kernel, dtype);
  if (const GemmPoint* p = NearestPoint(kernel, e.gemm_points, d)) return p->flops_per_s;
  const double k0 = GemmDepthK(e, d);
  const double depth = kernel.k > 0 && k0 > 0 ? kernel.k / (kernel.k + k0) : 1;
  return PeakFlops(device, d) * GemmFraction(e, d) * WaveEfficiency(kernel, e.sm_count) * depth;
}

double ProductFixedMs(const Kernel& kernel, const DeviceSpec& device, DType dtype) {
  const DeviceEfficiency& e = device.efficiency;
  if (kernel.cls != KernelClass::kGemm || kernel.flops <= 0 || e.gemm_fixed_ms <= 0) return 0;
  return NearestPoint(kernel, e.gemm_points, ComputeDType(kernel, dtype)) ? 0 : e.gemm_fixed_ms;
}

double KernelTimeMs(const Kernel& kernel, const DeviceSpec& device, DType dtype,
                    Direction direction, Rates rates) {
  if (rates == Rates::kPeak) {
    const double compute =
        kernel.flops > 0 ? kernel.flops / PeakFlops(device, ComputeDType(kernel, dtype)) : 0;
    return 1000.0 * std::max(compute, kernel.bytes / device.memory_bytes_per_s);
  }
  const DeviceEfficiency& e = device.efficiency;
  const double memory = MemoryMs(kernel.bytes, device, e.memory);
  // A kernel with no counted flops streams its bytes; one with flops but no class of its own is
  // timed as a product (its shape unknown: no waves), so that no counted work is dropped.
  if (kernel.flops <= 0) return memory + e.launch_ms;
  const double compute = 1000.0 * kernel.flops / AchievedFlops(kernel, device, dtype, direction) +
                         ProductFixedMs(kernel, device, dtype);
  return std::max(compute, memory) + e.launch_ms;
}

double CollectiveTimeMs(const Collective& collective, const DeviceSpec& device,
                        const ParallelLayout& layout) {
  const int n = GroupSize(layout, collective.group);
  if (n <= 1) return 0;
  if (collective.kind == CollectiveKind::kAllToAll && !GroupInsideNode(layout, collective.group)) {
    const int64_t m = GroupMembersPerNode(layout, collective.group);
    const double share =
        layout.flex_dispatcher && collective.exchange != TokenExchange::kNone
            ? ExpertExchangeNetworkShare(collective.experts, collective.top_k, n, m)
            : 1.0;
    return AllToAllAcrossNodesMs(collective.bytes, n, m, device.node_bus_bytes_per_s,
                                 device.node_latency_ms, device.network_bus_bytes_per_s,
                                 device.network_latency_ms, share);
  }
  const GroupLink link = CollectiveLink(layout, collective.group, collective.kind,
                                        device.node_bus_bytes_per_s, device.node_latency_ms,
                                        device.network_bus_bytes_per_s,
                                        device.network_latency_ms);
  return CollectiveMs(collective.kind, collective.bytes, n, link.bus_bytes_per_s,
                      link.latency_ms);
}

namespace {

// The time of the kernel of `kernels` that `c` runs under (Collective::hidden_behind); 0 when
// it names none of them.
double UnderMs(const Collective& c, const std::vector<Kernel>& kernels, const DeviceSpec& device,
               DType dtype, Direction direction, Rates rates) {
  if (c.hidden_behind.empty()) return 0;
  for (const Kernel& k : kernels) {
    if (k.name == c.hidden_behind) return KernelTimeMs(k, device, dtype, direction, rates);
  }
  return 0;
}

}  // namespace

double PartMs(const std::vector<Kernel>& kernels, const std::vector<Collective>& comm,
              const DeviceSpec& device, DType dtype, Direction direction, Rates rates,
              const ParallelLayout& layout) {
  double ms = 0;
  for (const Kernel& k : kernels) ms += KernelTimeMs(k, device, dtype, direction, rates);
  for (const Collective& c : comm) {
    ms += std::max(0.0, CollectiveTimeMs(c, device, layout) -
                            UnderMs(c, kernels, device, dtype, direction, rates));
  }
  return ms;
}

namespace {

// One part of a layer under the expert all-to-all overlap: its kernels outside the routed
// experts with its other collectives (PartMs of those), its routed experts' kernels, and its
// dispatch and combine collectives.
struct OverlapPart {
  double outside_ms = 0, experts_ms = 0, dispatch_ms = 0, combine_ms = 0;
};

OverlapPart SplitPart(const std::vector<Kernel>& kernels, const std::vector<Collective>& comm,
                      const DeviceSpec& device, DType dtype, Direction direction, Rates rates,
                      const ParallelLayout& layout) {
  OverlapPart out;
  std::vector<Kernel> outside;
  for (const Kernel& k : kernels) {
    if (k.routed_expert) {
      out.experts_ms += KernelTimeMs(k, device, dtype, direction, rates);
    } else {
      outside.push_back(k);
    }
  }
  std::vector<Collective> other;
  for (const Collective& c : comm) {
    if (c.exchange == TokenExchange::kDispatch) {
      out.dispatch_ms += CollectiveTimeMs(c, device, layout);
    } else if (c.exchange == TokenExchange::kCombine) {
      out.combine_ms += CollectiveTimeMs(c, device, layout);
    } else {
      other.push_back(c);
    }
  }
  out.outside_ms = PartMs(outside, other, device, dtype, direction, rates, layout);
  return out;
}

bool Exchanges(const std::vector<Collective>& comm) {
  for (const Collective& c : comm) {
    if (c.exchange != TokenExchange::kNone) return true;
  }
  return false;
}

// What the input gradient's collectives hide under the weight-gradient kernels they name
// (ParallelLayout::overlap_tp_dgrad): per collective, the lesser of its time and the kernel's.
double HiddenUnderWeightGradMs(const LayerKernels& k, const DeviceSpec& device, DType dtype,
                               Rates rates, const ParallelLayout& layout) {
  if (!layout.overlap_tp_dgrad) return 0;
  double hidden = 0;
  for (const Collective& c : k.backward_input_comm) {
    if (c.hidden_behind.empty()) continue;
    hidden += std::min(CollectiveTimeMs(c, device, layout),
                       UnderMs(c, k.backward_weight, device, dtype, Direction::kBackward, rates));
  }
  return hidden;
}

// The three parts before the input gradient's overlap with the weight gradient (PartsMs in
// the header): each part's own, or the experts' all-to-all overlap.
LayerPartsMs ExchangePartsMs(const LayerKernels& k, const DeviceSpec& device, DType dtype,
                             Rates rates, const ParallelLayout& layout) {
  const Direction fwd = Direction::kForward, bwd = Direction::kBackward;
  LayerPartsMs out;
  if (!ExpertOverlapApplies(layout) ||
      !(Exchanges(k.forward_comm) || Exchanges(k.backward_input_comm) ||
        Exchanges(k.backward_weight_comm))) {
    out.forward_ms = PartMs(k.forward, k.forward_comm, device, dtype, fwd, rates, layout);
    out.backward_input_ms =
        PartMs(k.backward_input, k.backward_input_comm, device, dtype, bwd, rates, layout);
    out.backward_weight_ms =
        PartMs(k.backward_weight, k.backward_weight_comm, device, dtype, bwd, rates, layout);
    return out;
  }
  const OverlapPart f = SplitPart(k.forward, k.forward_comm, device, dtype, fwd, rates, layout);
  const OverlapPart b =
      SplitPart(k.backward_input, k.backward_input_comm, device, dtype, bwd, rates, layout);
  const OverlapPart w =
      SplitPart(k.backward_weight, k.backward_weight_comm, device, dtype, bwd, rates, layout);
  const double back_dispatch = b.dispatch_ms + w.dispatch_ms;
  const double back_combine = b.combine_ms + w.combine_ms;
  // The three phases of one forward beside one backward (PartsMs in the header).
  const double first = std::max(back_combine, f.outside_ms);
  const double forward_experts_start = std::max(b.experts_ms + w.experts_ms, f.dispatch_ms);
  const double back_dispatch_start = std::max(f.dispatch_ms, b.experts_ms);
  const double second =
      std::max(forward_experts_start + f.experts_ms, back_dispatch_start + back_dispatch);
  const double third = std::max(f.combine_ms, b.outside_ms);
  const double together = first + second + third + w.outside_ms;
  // Each part alone, without its exchanges.
  const double alone =
      f.outside_ms + f.experts_ms + b.outside_ms + b.experts_ms + w.outside_ms + w.experts_ms;
  const double exposed = std::max(0.0, together - alone);
  const double forward_comm = f.dispatch_ms + f.combine_ms;
  const double backward_comm = back_dispatch + back_combine;
  const double forward_share =
      forward_comm + backward_comm > 0 ? forward_comm / (forward_comm + backward_comm) : 0.5;
  out.forward_ms = f.outside_ms + f.experts_ms + exposed * forward_share;
  out.backward_input_ms = b.outside_ms + b.experts_ms + exposed * (1 - forward_share);
  out.backward_weight_ms = w.outside_ms + w.experts_ms;
  return out;
}

}  // namespace

LayerPartsMs PartsMs(const LayerKernels& k, const DeviceSpec& device, DType dtype, Rates rates,
                     const ParallelLayout& layout) {
  LayerPartsMs out = ExchangePartsMs(k, device, dtype, rates, layout);
  out.backward_input_ms -= HiddenUnderWeightGradMs(k, device, dtype, rates, layout);
  return out;
}

Status CheckDType(const DeviceSpec& device, DType dtype) {
  if (PeakFlops(device, dtype) > 0) return Status::Ok();
  return Status::Error("device " + std::string(device.key) + " has no " +
                       std::string(DTypeName(dtype)) + " tensor cores (its table gives no " +
                       std::string(DTypeName(dtype)) + " rate); use --dtype bf16");
}

}  // namespace pp
