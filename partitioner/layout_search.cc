#include "partitioner/layout_search.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <numeric>
#include <optional>
#include <tuple>

#include "core/units.h"
#include "partitioner/cost_model.h"
#include "partitioner/data_parallel.h"
#include "partitioner/methods.h"
#include "partitioner/plan_inputs.h"
#include "partitioner/planner.h"
#include "partitioner/recompute.h"

namespace pp {
namespace {

// What pass 1 reads of one (tp, cp, ep, b) profile.
struct ProfileStats {
  Profile profile;
  int layers = 0;
  double forward = 0, backward = 0;
  double largest = 0;            // largest layer forward + backward
  double largest_recompute = 0;  // largest layer 2 forward + backward
  double params = 0, expert_params = 0, activations = 0;
  double tied = 0;  // bytes a tied head shares with its embedding, held once on one stage
  double largest_output = 0;
  double outputs = 0, largest_activation = 0;  // sum of output bytes; one layer's most kept
  double selective = 0, largest_selective = 0;  // what selective recomputation drops
  double selective_ms = 0;                      // and runs again
};

ProfileStats StatsOf(Profile profile, RecomputeModules modules) {
  ProfileStats s;
  s.layers = static_cast<int>(profile.layers.size());
  for (const LayerProfile& l : profile.layers) {
    s.forward += l.forward_ms;
    s.backward += l.backward_ms;
    s.largest = std::max(s.largest, l.forward_ms + l.backward_ms);
    s.largest_recompute = std::max(s.largest_recompute, 2 * l.forward_ms + l.backward_ms);
    s.params += static_cast<double>(l.param_bytes);
    s.expert_params += static_cast<double>(l.routed_expert_bytes());
    s.activations += static_cast<double>(l.activation_bytes);
    s.largest_output = std::max(s.largest_output, static_cast<double>(l.output_bytes));
    s.outputs += static_cast<double>(l.output_bytes);
    s.largest_activation = std::max(s.largest_activation, static_cast<double>(l.activation_bytes));
    const ModuleFigures again = l.Selective(modules);
    const double dropped = static_cast<double>(again.bytes);
    s.selective += dropped;
    s.selective_ms += again.forward_ms;
    s.largest_selective = std::max(s.largest_selective, dropped);
  }
  s.tied = static_cast<double>(TieOf(profile).bytes);
  s.profile = std::move(profile);
  return s;
}

// Powers of two up to `most` (and `most` itself when pinned lists are empty).
std::vector<int> PowersOfTwo(int64_t most) {
  std::vector<int> out;
  for (int64_t v = 1; v <= most; v *= 2) out.push_back(static_cast<int>(v));
  return out;
}

// Experts of a layer where its kind has them (mixture-of-experts blocks), else 0.
template <typename L>
int64_t ExpertsOf(const L& layer) {
  if constexpr (requires { layer.experts; }) {
    return layer.experts;
  } else {
    return 0;
  }
}

template <typename T>
std::vector<T> OrAll(const std::vector<T>& pinned, std::vector<T> all) {
  return pinned.empty() ? all : pinned;
}

struct Estimate {
  double batch_ms = 0;
  double memory = 0;        // balanced device's peak
  double memory_floor = 0;  // no split fits under this (the state of a p-th of the parameters)
};

// Pass 1 (see the header). `zero3` holds the ZeRO 3 forward and backward totals with the
// per-layer gathers when layout.zero == 3.
// `auto_limit`: recomputation as --recompute auto (one chunk per device) under that limit: only
// the stages whose plain peak exceeds it recompute. Without it every stage and chunk does.
Estimate EstimateOf(const ProfileStats& s, const ParallelLayout& layout, int m, bool recompute,
                    RecomputeUnit unit, int blocks, Optimizer optimizer,
                    std::optional<double> auto_limit) {
  Estimate e;
  const int p = layout.pp, v = layout.vp, chunks = p * v;
  const double params = (s.params - (p == 1 ? s.tied : 0.0)) / p;
  const double expert_params = s.expert_params / p;
  const StateBytes state = TrainingState(optimizer, s.profile.dtype, layout);
  const double state_bytes = static_cast<double>(
      state.Of(static_cast<WideBytes>(params), static_cast<WideBytes>(expert_params)));
  // Balanced stages; stage k of a one-chunk schedule holds min(m, p - k) micro-batches.
  const auto plain_peak = [&](int k) {
    return state_bytes + std::min<double>(m, p - k) * s.activations / p;
  };
  int recomputing = recompute ? p : 0;  // stages that recompute: the first ones, under auto
  if (recompute && v == 1 && auto_limit) {
    recomputing = 0;
    while (recomputing < p && plain_peak(recomputing) > *auto_limit) ++recomputing;
  }
  double forward = s.forward, backward = s.backward;
  const DataGroups groups = DataGroupsOf(layout, s.profile);
  if (layout.zero == 3 && groups.Any()) {
    forward = backward = 0;
    for (const LayerProfile& l : s.profile.layers) {
      const double gather = groups.LayerMs(CollectiveKind::kAllGather, l);
      const double scatter = groups.LayerMs(CollectiveKind::kReduceScatter, l);
      forward += std::max(l.forward_ms, gather);
      backward += std::max(l.backward_ms, gather + scatter);
    }
  }
  // By block a stage runs again only its first K blocks' forward (of about layers / chunks).
  const double again =
      recompute && unit == RecomputeUnit::kBlock
          ? std::min(1.0, static_cast<double>(blocks) * chunks / std::max(s.layers, 1))
          : 1.0;
  const bool selective = recompute && unit == RecomputeUnit::kSelective;
  const double total =
      forward + backward +
      (selective ? recomputing * s.selective_ms / p : again * recomputing * forward / p);
  const double chunk = std::max(total / chunks, recompute ? s.largest_recompute : s.largest);
  const double device_ms = v * chunk;
  const Link link = PipelineLink(layout, s.profile);
  const double transfer =
      chunks > 1 ? 2.0 * (chunks - 1) * link.TransferMs(static_cast<uint64_t>(s.largest_output))
                 : 0.0;
  const double step = (m + static_cast<double>(p - 1) / v) * device_ms + transfer;
  double sync = OptimizerStepMs(params, optimizer, layout, s.profile, expert_params);
  if (groups.Any() && layout.zero < 3) {
    const double layers = std::max(s.layers, 1);
    const double first = s.params / layers, first_expert = s.expert_params / layers;
    sync += std::max(groups.GradientSyncMs(params, expert_params) - backward / p,
                     groups.GradientSyncMs(first, first_expert));
    const double gather = groups.ParamGatherMs(params, expert_params);
    if (gather > 0) {
      sync += std::max(gather - forward / p, groups.ParamGatherMs(first, first_expert));
    }
  }
  e.batch_ms = step + sync;
  // (In device micro-batches.) The expert all-to-all overlap runs one more forward, of one
  // chunk, before the first backward (HoldOneMoreForward).
  const double in_flight =
      std::min<double>(m, p) * (v > 1 ? 1.0 + static_cast<double>(p - 1) / (p * v) : 1.0) +
      (ExpertOverlapApplies(layout) && p > 1 && m > p ? 1.0 / v : 0.0);
  // Recomputing, each of a device's v chunks keeps its inputs and rebuilds one micro-batch's
  // activations of its own; by layer, it keeps its layers' inputs and rebuilds one layer's.
  const bool by_layer = recompute && !selective && unit != RecomputeUnit::kStage;
  const double kept =
      selective ? in_flight * (s.activations - s.selective) / p + s.largest_selective
      : by_layer
          ? in_flight * (s.outputs * again + s.activations * (1 - again)) / p + s.largest_activation
      : recompute ? in_flight * v * s.largest_output + v * s.activations / chunks
                  : in_flight * s.activations / p;
  e.memory = state_bytes + kept;
  // Under auto the first stage that keeps its activations holds them all.
  if (recompute && recomputing < p) e.memory = std::max(e.memory, plain_peak(recomputing));
  // Every stage (device) holds at least one micro-batch of its own activations (or, rebuilding
  // them whole, all of them at once), so the largest holds at least a p-th of them beside its
  // state. Rebuilding layer by layer it may hold only one layer's.
  e.memory_floor = state_bytes + (by_layer    ? 0.0
                                  : selective ? (s.activations - s.selective) / p
                                              : s.activations / p);
  return e;
}

// How a candidate that recomputes does: `all` under --recompute all and with several chunks
// per device (auto needs one chunk per device), else `auto`, the stages over the limit.
RecomputeMode RecomputeOf(const LeverSpace& space, int vp) {
  return space.recompute_all || vp > 1 ? RecomputeMode::kAll : RecomputeMode::kAuto;
}

bool Faster(const LayoutCandidate& a, const LayoutCandidate& b) {
  const auto key = [](const LayoutCandidate& c) {
    return std::make_tuple(c.planned ? c.batch_ms : c.estimate_ms, c.layout.tp, c.layout.pp,
                           c.layout.cp, c.layout.zero, c.micro_batch_size, c.schedule, c.layout.vp,
                           c.recompute, c.layout.ep, c.layout.etp);
  };
  return key(a) < key(b);
}

}  // namespace

Result<LayoutSearchResult> SearchLayouts(const PlanRequest& base, const DeviceSpec& device,
                                         const LeverSpace& space) {
  if (!base.model) return Status::Error("--stages auto over the layout needs a model file");
  if (space.gpus_total < 1) return Status::Error("--gpus-total must be at least 1");
  if (space.global_batch < 1) return Status::Error("--global-batch must be at least 1");
  if (space.gpus_per_node < 1) return Status::Error("--gpus-per-node must be at least 1");
  if (Result<const PartitionMethod*> m = KnownPartitionMethod(space.method); !m.ok()) {
    return m.status();
  }
  const Model& model = *base.model;
  const int64_t G = space.gpus_total, N = space.global_batch, K = space.gpus_per_node;
  const uint64_t limit = base.memory_limit.value_or(device.memory_bytes);
  int64_t heads_gcd = 0;
  for (const Layer& l : model.layers) {
    if (l.op == LayerKind::kTransformerBlock) heads_gcd = std::gcd(heads_gcd, l.heads);
  }
  const int64_t seq = model.input.tokens() ? model.input.seq_len : 1;

  std::vector<int> tps;
  for (int t : OrAll(space.tp, PowersOfTwo(K))) {
    if (K % t == 0 && G % t == 0 && (heads_gcd == 0 || heads_gcd % t == 0)) tps.push_back(t);
  }
  std::vector<int> cps;
  for (int c : OrAll(space.cp, PowersOfTwo(std::min<int64_t>(G, 64)))) {
    // Context parallelism merges each block of K/V into the fused kernel's running softmax
    // statistics; unfused attention has none to merge.
    if (c > 1 && !space.software.fused_attention) continue;
    if (c == 1 || (seq % (2 * c) == 0)) cps.push_back(c);
  }
  // ep: powers of two dividing every expert layer's expert count; 1 without expert layers.
  int64_t experts_gcd = 0;
  for (const Layer& l : model.layers) {
    if (ExpertsOf(l) > 0) experts_gcd = std::gcd(experts_gcd, ExpertsOf(l));
  }
  std::vector<int> ep_all = {1};
  for (int64_t e = 2; experts_gcd > 0 && e <= experts_gcd && e <= G; e *= 2) {
    if (experts_gcd % e == 0) ep_all.push_back(static_cast<int>(e));
  }
  const std::vector<int> eps = OrAll(space.ep, ep_all);
  // etp (0: as tp): with expert layers, as tp and 1 (Megatron-LM's MoE parallel folding);
  // without, nothing to split.
  std::vector<int64_t> sizes = space.micro_batch_sizes;
  if (sizes.empty()) {
    for (int64_t b = 1; b <= 64 && b <= N; b *= 2) sizes.push_back(b);
  }
  const std::vector<int> zeros = OrAll(space.zero, {0, 1, 2, 3});

  LayoutSearchResult result;
  std::vector<LayoutCandidate> estimates;
  // Profiles by (tp, cp, ep, etp, b, expert overlap), built on first use.
  std::map<std::tuple<int, int, int, int, int64_t, bool>, ProfileStats> profiles;
  const std::optional<DType> dtype =
      base.profile.layers.empty() ? std::nullopt : std::optional<DType>(base.profile.dtype);
  for (int tp : tps) {
    for (int cp : cps) {
      if (G % (int64_t{tp} * cp) != 0) continue;
      std::vector<int> etps = {0};
      if (experts_gcd > 0) {
        if (!space.etp.empty()) {
          etps.clear();
          for (int e : space.etp) etps.push_back(EtpField(e, tp));
        } else if (tp > 1) {
          etps.push_back(1);
        }
      }
      for (int etp : etps) {
        for (int ep : eps) {
          // The degrees every candidate below shares (and its profile's).
          ParallelLayout degrees = space.software;
          degrees.tp = tp;
          degrees.cp = cp;
          degrees.ep = ep;
          degrees.etp = etp;
          degrees.gpus_per_node = static_cast<int>(K);
          // The expert all-to-all overlap is asked for and changes something here; each
          // candidate that can run it (no recomputation, one stage or virtual stages) does.
          degrees.overlap_expert_comm = false;
          ParallelLayout overlapped = degrees;
          overlapped.overlap_expert_comm = space.software.overlap_expert_comm;
          const bool overlap = ExpertOverlapApplies(overlapped);
          for (int64_t b : sizes) {
            const ProfileStats* stats = nullptr;
            const ProfileStats* overlap_stats = nullptr;
            // The profile with the overlap, built on first use (nullptr: it failed).
            bool overlap_tried = false;
            const auto overlap_profile = [&]() -> const ProfileStats* {
              if (!overlap_tried) {
                overlap_tried = true;
                Result<Profile> profile = LayoutProfile(model, device, overlapped, b, dtype);
                if (profile.ok()) {
                  ++result.profiles;
                  overlap_stats =
                      &profiles
                           .emplace(std::make_tuple(tp, cp, ep, etp, b, true),
                                    StatsOf(std::move(*profile), base.recompute_modules))
                           .first->second;
                }
              }
              return overlap_stats;
            };
            const int64_t rest = G / (int64_t{tp} * cp);
            for (int64_t pp = 1; pp <= rest; ++pp) {
              if (rest % pp != 0) continue;
              if (!space.pp.empty() &&
                  std::find(space.pp.begin(), space.pp.end(), pp) == space.pp.end()) {
                continue;
              }
              const int64_t dp = rest / pp;
              ParallelLayout grid = degrees;
              grid.dp = static_cast<int>(dp);
              if (!ExpertGridFits(grid) || N % (dp * b) != 0) continue;
              const int64_t m = N / (dp * b);
              if (m > kMaxMicroBatches) continue;
              if (stats == nullptr) {
                Result<Profile> profile = LayoutProfile(model, device, degrees, b, dtype);
                if (!profile.ok()) break;  // e.g. this micro-batch size is out of range
                ++result.profiles;
                stats = &profiles
                             .emplace(std::make_tuple(tp, cp, ep, etp, b, false),
                                      StatsOf(std::move(*profile), base.recompute_modules))
                             .first->second;
              }
              if (pp > stats->layers) break;
              for (const std::string& schedule : space.schedules) {
                const bool interleaved = schedule == "interleaved";
                std::vector<int> vps = {1};
                if (interleaved) {
                  if (pp < 2 || m % pp != 0) continue;
                  vps.clear();
                  for (int v : space.virtual_stages) {
                    if (v >= 2 && pp * v <= stats->layers) vps.push_back(v);
                  }
                }
                for (int vp : vps) {
                  bool lower_fits = false;  // some lower ZeRO stage fits without recomputation
                  for (int zero : zeros) {
                    ParallelLayout layout = degrees;
                    layout.pp = static_cast<int>(pp);
                    layout.dp = static_cast<int>(dp);
                    layout.vp = vp;
                    layout.zero = zero;
                    const bool can_recompute = space.recompute_lever || space.recompute_all;
                    // The options, lightest first: none, then (choosing the unit) selective
                    // recomputation of the request's modules, then the whole forward by the
                    // request's unit or, choosing, by stage or by layer. `again` indexes them.
                    const int last_option = !can_recompute                ? 0
                                            : space.choose_recompute_unit ? 2
                                                                          : 1;
                    const auto unit_of = [&](int again) {
                      return space.choose_recompute_unit && again == 1 ? RecomputeUnit::kSelective
                                                                       : base.recompute_unit;
                    };
                    for (int again = space.recompute_all ? 1 : 0; again <= last_option; ++again) {
                      ++result.enumerated;
                      // (A chosen whole-forward unit is by stage or by layer.)
                      const bool overlap_beside_recompute =
                          !(space.choose_recompute_unit && again == 2) &&
                          ExpertOverlapAllowsRecompute(unit_of(again), base.recompute_modules);
                      if (zero >= 2 && lower_fits) {
                        ++result.pruned_dominated;
                        continue;
                      }
                      // Megatron-LM runs the overlap without recomputation (or with selective
                      // recomputation outside the MoE layer), and in a pipeline only with
                      // virtual stages.
                      layout.overlap_expert_comm = overlap &&
                                                   (again == 0 || overlap_beside_recompute) &&
                                                   (pp == 1 || vp > 1) && overlap_profile();
                      const ProfileStats& used =
                          layout.overlap_expert_comm ? *overlap_stats : *stats;
                      const bool auto_mode = RecomputeOf(space, vp) == RecomputeMode::kAuto;
                      const auto estimate = [&](RecomputeUnit unit) {
                        return EstimateOf(used, layout, static_cast<int>(m), again != 0, unit,
                                          base.recompute_blocks, base.optimizer,
                                          auto_mode
                                              ? std::optional<double>(static_cast<double>(limit))
                                              : std::nullopt);
                      };
                      RecomputeUnit unit = unit_of(again);
                      Estimate e = estimate(unit);
                      if (again == 2) {
                        const Estimate by_layer = estimate(RecomputeUnit::kLayer);
                        if (by_layer.memory < e.memory) {
                          e = by_layer;
                          unit = RecomputeUnit::kLayer;
                        }
                      }
                      if (e.memory_floor > static_cast<double>(limit)) {
                        ++result.pruned_memory;
                        continue;
                      }
                      // Over the limit only as a balanced split: an uneven one may still fit.
                      const bool tight = e.memory > static_cast<double>(limit);
                      ++result.estimated;
                      LayoutCandidate c;
                      c.layout = layout;
                      c.micro_batch_size = b;
                      c.micro_batches = static_cast<int>(m);
                      c.schedule = schedule;
                      c.recompute = again != 0;
                      c.recompute_unit = unit;
                      c.estimate_ms = e.batch_ms;
                      c.tight = tight;
                      estimates.push_back(std::move(c));
                      if (tight) continue;  // the next option (recomputation, ZeRO) may fit
                      if (space.recompute_all) lower_fits = true;  // its only option fits
                      if (again == 0) lower_fits = true;
                      // Recomputing more is never faster.
                      result.pruned_dominated += last_option - again;
                      result.enumerated += last_option - again;
                      break;
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  if (estimates.empty()) {
    return Status::Error("no layout of " + std::to_string(G) + " GPUs fits " + FormatBytes(limit) +
                         " per device for global batch " + std::to_string(N) +
                         " (even with ZeRO 3 and recomputation)");
  }
  // The balanced estimates that fit first, then the tight ones.
  std::stable_sort(estimates.begin(), estimates.end(),
                   [](const LayoutCandidate& a, const LayoutCandidate& b) {
                     return a.tight != b.tight ? b.tight : Faster(a, b);
                   });

  // Pass 2: plan the best estimates exactly. The step budget is the whole pass's: each plan
  // gets an even share of it, or less where candidates that did not fit (and were replaced
  // by the next) have spent their shares, down to a quarter of one so that every try can
  // search.
  std::vector<LayoutCandidate> planned;
  const size_t tries = std::min(estimates.size(), 4 * space.exact);
  const auto pass_start = std::chrono::steady_clock::now();
  const double share_s = base.step_budget_s / static_cast<double>(std::max<size_t>(space.exact, 1));
  for (size_t i = 0; i < tries && planned.size() < space.exact; ++i) {
    LayoutCandidate c = estimates[i];
    const ProfileStats& stats =
        profiles.at(std::make_tuple(c.layout.tp, c.layout.cp, c.layout.ep, c.layout.etp,
                                    c.micro_batch_size, c.layout.overlap_expert_comm));
    PlanRequest r = base;
    r.search.reset();
    r.profile = stats.profile;
    r.profile.link = PipelineLink(c.layout, stats.profile);
    r.model->input.micro_batch_size = c.micro_batch_size;
    r.schedule = c.schedule;
    r.num_stages = c.layout.pp;
    r.virtual_stages = c.layout.vp == 1 ? 2 : c.layout.vp;
    r.num_micro_batches = c.micro_batches;
    r.method = space.method;
    r.boundaries.clear();
    r.recompute = "none";
    if (c.recompute) {
      r.recompute = RecomputeOf(space, c.layout.vp) == RecomputeMode::kAll ? "all" : "auto";
    }
    r.memory_limit = limit;
    r.devices = DeviceLayout{};
    r.layout = c.layout;
    const double spent_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - pass_start).count();
    const double left_s =
        (base.step_budget_s - spent_s) / static_cast<double>(space.exact - planned.size());
    r.step_budget_s = std::clamp(left_s, share_s / 4, share_s);
    r.recompute_unit = c.recompute_unit;
    ++result.planned;
    // Whether a plan fits every device; choosing the unit, the other one is tried too.
    std::vector<uint64_t> peaks;
    const auto fits = [&](const Result<Plan>& p) {
      if (!p.ok()) return false;
      peaks = DevicePeakMemory(*p);
      return StagesOverLimit(*p, peaks).empty();
    };
    Result<Plan> plan = MakePlan(r);
    bool ok = fits(plan);
    if (!ok && c.recompute && space.choose_recompute_unit &&
        (c.recompute_unit == RecomputeUnit::kStage || c.recompute_unit == RecomputeUnit::kLayer)) {
      r.recompute_unit =
          c.recompute_unit == RecomputeUnit::kLayer ? RecomputeUnit::kStage : RecomputeUnit::kLayer;
      plan = MakePlan(r);
      ok = fits(plan);
      if (ok) c.recompute_unit = r.recompute_unit;
    }
    if (!ok) continue;
    c.planned = true;
    c.batch_ms = plan->predicted.batch_time_ms.value_or(plan->predicted.step_time_ms);
    c.step_ms = plan->predicted.step_time_ms;
    c.data_parallel_ms = plan->predicted.data_parallel_ms.value_or(0);
    c.model_tflops_per_gpu = plan->predicted.model_tflops_per_gpu.value_or(0);
    for (uint64_t peak : peaks) c.peak_memory_bytes = std::max(c.peak_memory_bytes, peak);
    if (planned.empty() || Faster(c, planned.front())) {
      result.best = std::move(*plan);
      planned.insert(planned.begin(), c);
    } else {
      planned.push_back(c);
    }
  }
  if (planned.empty()) {
    return Status::Error("none of the " + std::to_string(tries) + " best estimated layouts " +
                         "could be planned under " + FormatBytes(limit) + " per device");
  }
  std::sort(planned.begin(), planned.end(), Faster);
  for (LayoutCandidate& c : planned) {
    if (result.ranked.size() == space.top) break;
    result.ranked.push_back(std::move(c));
  }
  return result;
}

}  // namespace pp
