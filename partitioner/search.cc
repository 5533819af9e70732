#include "partitioner/search.h"

#include <algorithm>
#include <chrono>
#include <tuple>

#include "core/units.h"
#include "executor/schedule.h"
#include "partitioner/cost_model.h"
#include "partitioner/planner.h"
#include "partitioner/split_search.h"

namespace pp {
namespace {

// Fills a candidate's figures from its plan; the all-reduce runs over `allreduce_link`.
SearchCandidate Describe(const Plan& plan, int replicas, bool fits, const Link& allreduce_link) {
  SearchCandidate c;
  c.stages = plan.num_stages;
  c.replicas = replicas;
  c.micro_batch_size = plan.micro_batch_size;
  c.micro_batches = plan.num_micro_batches;
  c.schedule = plan.schedule;
  for (const StagePlan& s : plan.stages) c.recompute |= s.recompute;
  c.fits = fits;
  c.step_ms = plan.predicted.step_time_ms;
  c.bubble_ratio = plan.predicted.bubble_ratio;
  if (plan.objective_bound) {
    c.exact = plan.objective_bound->exact;
    c.lower_bound_ms = plan.objective_bound->lower_bound_ms;
  } else {
    c.lower_bound_ms = c.step_ms;
  }
  uint64_t largest_params = 0;
  double stage_total = 0;
  const DeviceLayout layout = LayoutOf(plan);
  for (uint64_t peak : DevicePeakMemory(plan)) {
    c.peak_memory_bytes = std::max(c.peak_memory_bytes, peak);
  }
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    const StagePlan& s = plan.stages[i];
    largest_params = std::max(largest_params, s.param_bytes);
    stage_total += s.forward_ms + s.backward_ms;
    if (i + 1 == plan.stages.size()) continue;
    // A micro-batch's round trip: each boundary between two devices, on the link it crosses.
    const int a = s.device.value_or(s.index), b = plan.stages[i + 1].device.value_or(s.index + 1);
    if (a == b) continue;
    c.transfer_ms += 2 * LinkBetween(layout, plan.profile.link, a, b).TransferMs(s.send_bytes);
  }
  c.allreduce_ms = RingAllReduceMs(largest_params, replicas, allreduce_link);
  c.batch_ms = c.step_ms + c.allreduce_ms;
  c.work_ms = c.micro_batches * stage_total / c.stages;
  c.bubble_ms = std::max(0.0, c.step_ms - c.work_ms - c.transfer_ms);
  return c;
}

bool Faster(const SearchCandidate& a, const SearchCandidate& b) {
  return std::tie(a.batch_ms, a.stages, a.micro_batch_size, a.schedule, a.recompute) <
         std::tie(b.batch_ms, b.stages, b.micro_batch_size, b.schedule, b.recompute);
}

void Explain(const SearchCandidate& best, SearchCandidate* c) {
  c->behind_ms = c->batch_ms - best.batch_ms;
  if (!c->fits) {
    c->reason = LossReason::kMemory;
    return;
  }
  if (c->behind_ms <= 0) {
    c->reason = LossReason::kNone;
    return;
  }
  const std::pair<double, LossReason> parts[] = {
      {c->work_ms - best.work_ms, LossReason::kSlowerStages},
      {c->bubble_ms - best.bubble_ms, LossReason::kBubble},
      {c->transfer_ms - best.transfer_ms, LossReason::kTransfers},
      {c->allreduce_ms - best.allreduce_ms, LossReason::kAllReduce},
  };
  const auto* most = std::max_element(std::begin(parts), std::end(parts),
                                      [](const auto& a, const auto& b) { return a.first < b.first; });
  c->reason = most->second;
}

}  // namespace

const char* LossReasonName(LossReason reason) {
  switch (reason) {
    case LossReason::kNone:
      return "ties";
    case LossReason::kSlowerStages:
      return "slower stages";
    case LossReason::kBubble:
      return "bubble";
    case LossReason::kTransfers:
      return "transfers";
    case LossReason::kAllReduce:
      return "all-reduce";
    case LossReason::kMemory:
      return "memory";
  }
  return "?";
}

double RingAllReduceMs(uint64_t bytes, int replicas, const Link& link) {
  if (replicas <= 1) return 0;
  const double r = replicas;
  return 2 * (r - 1) / r * 1000.0 * static_cast<double>(bytes) / link.bandwidth_bytes_per_s +
         2 * (r - 1) * link.latency_ms;
}

std::vector<int64_t> MicroBatchSizeCandidates(int gpus_total, int64_t global_batch) {
  std::vector<int64_t> sizes;
  for (int64_t b = 1; b <= 64 && b <= global_batch; b *= 2) {
    for (int p = 1; p <= gpus_total; ++p) {
      if (gpus_total % p != 0) continue;
      const int64_t per_replica_step = int64_t{gpus_total / p} * b;
      if (global_batch % per_replica_step == 0) {
        sizes.push_back(b);
        break;
      }
    }
  }
  return sizes;
}

// "gpipe, 1f1b or zb-h1": the registered kinds with one chunk per device, those whose least
// fitting memory limit the search reports.
std::string OneChunkKindNames() {
  std::vector<std::string_view> names;
  for (const ScheduleKind* k : ScheduleKinds()) {
    if (k->ChunksPerDevice(ScheduleOptions{}) == 1) names.push_back(k->name());
  }
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + std::string(names[i]);
  }
  return out;
}

Result<SearchResult> SearchPlans(const PlanRequest& request) {
  if (!request.search) return Status::Error("the request names no search space (--stages auto)");
  const SearchSpace& space = *request.search;
  const DeviceLayout& layout = request.devices;
  if (space.gpus_total < 1) return Status::Error("--gpus-total must be at least 1");
  if (space.global_batch < 1) return Status::Error("--global-batch must be at least 1");
  for (const std::string& schedule : space.schedules) {
    if (FindScheduleKind(schedule) == nullptr) {
      return Status::Error("unknown schedule " + Quote(schedule) + " (known: " + ScheduleNames() +
                           ")");
    }
  }
  const bool typed = layout.heterogeneous();
  const int typed_depth = static_cast<int>(layout.stage_type.size());
  if (typed && space.gpus_total % typed_depth != 0) {
    return Status::Error("--gpus-total " + std::to_string(space.gpus_total) +
                         " is not a whole number of copies of the " +
                         std::to_string(typed_depth) + "-device pipeline --device-types names");
  }
  // Every micro-batch size: the request's own profile first.
  std::vector<ProfilesAtSize> sizes = {{request.profile, layout.profiles}};
  sizes.insert(sizes.end(), space.other_sizes.begin(), space.other_sizes.end());
  const int n = static_cast<int>(request.profile.layers.size());
  // Replicas of a stage sit on other nodes once the GPUs fill more than one.
  const bool across_nodes = layout.multi_node() && space.gpus_total > layout.gpus_per_node;
  SearchResult result;
  std::vector<SearchCandidate> fitting, over;
  bool have_best = false;
  SearchCandidate best;
  int shapes = 0;
  bool any_over = false;
  WideBytes least_need = 0;  // the least memory limit under which a one-chunk candidate fits

  // Every grid point first, so that the step search's budget can be shared out.
  struct Point {
    PlanRequest plan;
    int replicas = 0;
    bool lever = false;  // the recomputation lever's twin of the point before it
  };
  std::vector<Point> points;
  // A candidate's request: the search's own levers with this shape.
  PlanRequest shared = request;
  shared.search.reset();
  shared.method = "dp";
  shared.recompute = "none";
  shared.boundaries.clear();
  for (int p = 1; p <= std::min(space.gpus_total, n); ++p) {
    if (space.gpus_total % p != 0) continue;
    if (typed && p != typed_depth) continue;
    const int r = space.gpus_total / p;
    for (const ProfilesAtSize& size : sizes) {
      const int64_t b = size.profile.micro_batch_size;
      if (b < 1 || space.global_batch % (int64_t{r} * b) != 0) continue;
      const int64_t m = space.global_batch / (int64_t{r} * b);
      if (m > kMaxMicroBatches) continue;
      ++shapes;
      for (const std::string& schedule : space.schedules) {
        Point point;
        point.replicas = r;
        PlanRequest& pr = point.plan;
        pr = shared;
        pr.profile = size.profile;
        if (pr.model) pr.model->input.micro_batch_size = b;
        pr.schedule = schedule;
        pr.num_stages = p;
        pr.num_micro_batches = static_cast<int>(m);
        pr.devices.profiles = typed ? size.device_profiles : std::map<std::string, Profile>{};
        Result<PlanContext> context = RequestContext(pr);
        if (!context.ok()) continue;  // e.g. interleaved with m not a multiple of p
        const bool chunked = context->num_chunks() != p;
        if (chunked && (p < 2 || context->num_chunks() > n)) continue;
        points.push_back(point);
        // The recomputation lever: the same shape with the stages over their limit recomputing
        // (never faster per stage, so kept only when it changes the plan); with several chunks
        // per device every chunk recomputes.
        if (space.recompute_lever && request.model && !context->splits_backward) {
          Point again = point;
          again.plan.recompute = chunked ? "all" : "auto";
          again.lever = true;
          points.push_back(std::move(again));
        }
      }
    }
  }

  const auto start = std::chrono::steady_clock::now();
  const auto budget_for = [&](size_t i) {
    const double spent =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::max(0.0, request.step_budget_s - spent) / static_cast<double>(points.size() - i);
  };
  const auto keep = [&](Plan&& plan, SearchCandidate&& c) {
    if (!have_best || Faster(c, best)) {
      best = c;
      result.best = std::move(plan);
      have_best = true;
    }
    fitting.push_back(std::move(c));
  };
  for (size_t i = 0; i < points.size(); ++i) {
    PlanRequest& plan_request = points[i].plan;
    const int r = points[i].replicas;
    const Link& allreduce_link =
        across_nodes ? *layout.inter_node_link : plan_request.profile.link;
    plan_request.step_budget_s = budget_for(i);
    ++result.evaluated;
    Result<Plan> plan = MakePlan(plan_request);
    if (points[i].lever) {  // kept only where some stage recomputes
      if (!plan.ok()) continue;
      SearchCandidate c = Describe(*plan, r, true, allreduce_link);
      if (c.recompute) keep(std::move(*plan), std::move(c));
      continue;
    }
    if (plan.ok()) {
      SearchCandidate c = Describe(*plan, r, true, allreduce_link);
      keep(std::move(*plan), std::move(c));
      continue;
    }
    if (!request.memory_limit && !layout.per_device_memory) return plan.status();
    Result<PlanContext> context = RequestContext(plan_request);
    if (!context.ok()) return context.status();
    if (context->num_chunks() == context->num_devices() && !typed) {
      const CostModel cost(plan_request.profile, request.optimizer);
      const WideBytes need =
          SplitSearch(cost, context->device_in_flight, std::nullopt).SmallestMemoryLimit();
      if (!any_over || need < least_need) least_need = need;
      any_over = true;
    }
    // Over the limit: how fast it would have been without one.
    plan_request.memory_limit.reset();
    plan_request.devices.per_device_memory = false;
    plan_request.step_budget_s = budget_for(i);
    Result<Plan> unlimited = MakePlan(plan_request);
    if (!unlimited.ok()) return unlimited.status();
    over.push_back(Describe(*unlimited, r, false, allreduce_link));
  }
  if (shapes == 0) {
    return Status::Error("no pipeline depth dividing --gpus-total " +
                         std::to_string(space.gpus_total) + " and micro-batch size gives a "
                         "whole number of micro-batches for --global-batch " +
                         std::to_string(space.global_batch));
  }
  if (!have_best) {
    if (!request.memory_limit || !any_over) {
      return Status::Error("no candidate of the search fits each device's memory");
    }
    const uint64_t least = least_need > WideBytes{kMaxBytes} ? kMaxBytes
                                                             : static_cast<uint64_t>(least_need);
    return Status::Error("no candidate of the search fits the memory limit of " +
                         FormatBytes(*request.memory_limit) +
                         "; the smallest limit under which one fits (" + OneChunkKindNames() +
                         ", without recomputation) is " + FormatBytes(least) + " (" +
                         std::to_string(least) + " bytes)");
  }
  std::sort(fitting.begin(), fitting.end(), Faster);
  std::sort(over.begin(), over.end(), Faster);
  for (SearchCandidate& c : fitting) {
    if (result.ranked.size() == space.top) break;
    Explain(best, &c);
    result.ranked.push_back(std::move(c));
  }
  for (SearchCandidate& c : over) {
    if (result.over_memory.size() == space.top || c.batch_ms >= best.batch_ms) break;
    Explain(best, &c);
    result.over_memory.push_back(std::move(c));
  }
  return result;
}

}  // namespace pp
