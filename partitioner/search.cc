#include "partitioner/search.h"

#include <algorithm>
#include <tuple>

#include "core/units.h"
#include "executor/schedule.h"
#include "partitioner/cost_model.h"
#include "partitioner/planner.h"
#include "partitioner/split_search.h"

namespace pp {
namespace {

// Fills a candidate's figures from its plan.
SearchCandidate Describe(const Plan& plan, int replicas, bool fits) {
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
  uint64_t largest_params = 0;
  double stage_total = 0;
  for (const StagePlan& s : plan.stages) {
    largest_params = std::max(largest_params, s.param_bytes);
    c.peak_memory_bytes = std::max(c.peak_memory_bytes, s.peak_memory_bytes);
    stage_total += s.forward_ms + s.backward_ms;
    if (s.index + 1 < static_cast<int>(plan.stages.size())) {
      c.transfer_ms += 2 * plan.profile.link.TransferMs(s.send_bytes);
    }
  }
  c.allreduce_ms = RingAllReduceMs(largest_params, replicas, plan.profile.link);
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

Result<SearchResult> SearchPlans(const SearchRequest& request) {
  if (request.profiles.empty()) return Status::Error("the search needs at least one profile");
  if (request.gpus_total < 1) return Status::Error("--gpus-total must be at least 1");
  if (request.global_batch < 1) return Status::Error("--global-batch must be at least 1");
  const int n = static_cast<int>(request.profiles.front().layers.size());
  SearchResult result;
  std::vector<SearchCandidate> fitting, over;
  bool have_best = false;
  SearchCandidate best;
  int shapes = 0;
  bool any_over = false;
  WideBytes least_need = 0;  // the least memory limit under which some candidate fits
  for (int p = 1; p <= std::min(request.gpus_total, n); ++p) {
    if (request.gpus_total % p != 0) continue;
    const int r = request.gpus_total / p;
    for (const Profile& profile : request.profiles) {
      const int64_t b = profile.micro_batch_size;
      if (b < 1 || request.global_batch % (int64_t{r} * b) != 0) continue;
      const int64_t m = request.global_batch / (int64_t{r} * b);
      if (m > kMaxMicroBatches) continue;
      ++shapes;
      for (const std::string& schedule : request.schedules) {
        PlanRequest plan_request;
        plan_request.profile = profile;
        plan_request.model = request.model;
        if (plan_request.model) plan_request.model->input.micro_batch_size = b;
        plan_request.schedule = schedule;
        plan_request.num_stages = p;
        plan_request.num_micro_batches = static_cast<int>(m);
        plan_request.objective = request.objective;
        plan_request.step_budget_s = request.step_budget_s;
        plan_request.optimizer = request.optimizer;
        plan_request.memory_limit = request.memory_limit;
        // The recomputation lever: the same shape with the stages over their limit recomputing
        // (never faster per stage, so kept only when it changes the plan).
        if (request.recompute_lever && request.model && request.objective == "bottleneck") {
          PlanRequest again = plan_request;
          again.recompute = "auto";
          ++result.evaluated;
          Result<Plan> plan = MakePlan(again);
          if (plan.ok()) {
            SearchCandidate c = Describe(*plan, r, true);
            if (c.recompute) {
              if (!have_best || Faster(c, best)) {
                best = c;
                result.best = std::move(*plan);
                have_best = true;
              }
              fitting.push_back(std::move(c));
            }
          }
        }
        ++result.evaluated;
        Result<Plan> plan = MakePlan(plan_request);
        if (plan.ok()) {
          SearchCandidate c = Describe(*plan, r, true);
          if (!have_best || Faster(c, best)) {
            best = c;
            result.best = std::move(*plan);
            have_best = true;
          }
          fitting.push_back(std::move(c));
          continue;
        }
        if (!request.memory_limit) return plan.status();
        Result<Schedule> sched = RequestSchedule(plan_request);
        if (!sched.ok()) return sched.status();
        const CostModel cost(profile, request.optimizer);
        const WideBytes need =
            SplitSearch(cost, InFlightMicroBatches(*sched), std::nullopt).SmallestMemoryLimit();
        if (!any_over || need < least_need) least_need = need;
        any_over = true;
        // Over the limit: how fast it would have been without one.
        plan_request.memory_limit.reset();
        Result<Plan> unlimited = MakePlan(plan_request);
        if (!unlimited.ok()) return unlimited.status();
        over.push_back(Describe(*unlimited, r, false));
      }
    }
  }
  if (shapes == 0) {
    return Status::Error("no pipeline depth dividing --gpus-total " +
                         std::to_string(request.gpus_total) + " and micro-batch size gives a "
                         "whole number of micro-batches for --global-batch " +
                         std::to_string(request.global_batch));
  }
  if (!have_best) {
    const uint64_t least = least_need > WideBytes{kMaxBytes} ? kMaxBytes
                                                             : static_cast<uint64_t>(least_need);
    return Status::Error("no candidate of the search fits the memory limit of " +
                         FormatBytes(*request.memory_limit) + "; the smallest limit under which one fits is " + FormatBytes(least) + " (" + std::to_string(least) + " bytes)");
  }
  std::sort(fitting.begin(), fitting.end(), Faster);
  std::sort(over.begin(), over.end(), Faster);
  for (SearchCandidate& c : fitting) {
    if (result.ranked.size() == request.top) break;
    Explain(best, &c);
    result.ranked.push_back(std::move(c));
  }
  for (SearchCandidate& c : over) {
    if (result.over_memory.size() == request.top || c.batch_ms >= best.batch_ms) break;
    Explain(best, &c);
    result.over_memory.push_back(std::move(c));
  }
  return result;
}

}  // namespace pp
