// Exact least simulated step time over contiguous splits (`--objective step`).
//
// Branch and bound over the stage boundaries, left to right. The simulated step of gpipe and
// 1f1b is a longest path through the ops, so it never decreases when a stage's forward,
// backward or transfer time grows; docs/cost-model.md derives the lower bounds used for a
// partial split (stages 0..k fixed, the rest of the layers still to be cut) from that. A
// subtree is dropped only when its bound exceeds the best simulated step found so far by more
// than rounding can explain, and every split that survives is simulated, so the answer is
// the least simulated step over all splits that meet the memory limit.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/status.h"
#include "executor/plan_context.h"
#include "executor/schedule.h"
#include "partitioner/methods.h"

namespace pp {

struct StepSearchOptions {
  double time_budget_s = 1.0;  // wall clock; past it the search stops with a proven bound
  // Splits tried first (each p-1 boundaries); those over the memory limit are skipped.
  std::vector<std::vector<int>> seeds;
  // Candidate splits and hill climbing before the search (only ever better incumbents; off in
  // tests, so that the pruning alone must find the optimum).
  bool candidates = true;
};

struct StepSearchResult {
  std::vector<int> boundaries;  // the best split found
  double step_ms = 0;           // its simulated step time
  // No split meeting the memory limit simulates faster than this; equals step_ms when exact.
  double lower_bound_ms = 0;
  bool exact = false;   // the search finished within its budget
  int64_t nodes = 0;    // partial splits examined
};

// Ok when `schedule` is one the search can take: any valid schedule (ValidateSchedule). gpipe
// and 1f1b get bounds 1-6 of docs/cost-model.md, every other schedule (several chunks per
// device, split backwards, lists from a CSV) bounds 7-9 (partitioner/step_bounds.h).
Status StepSearchApplies(const Schedule& schedule);

// The least ctx.step_time_ms over splits of ctx.cost's layers into ctx.num_stages non-empty
// stages (the schedule's chunks) that meet the memory limit: each stage's own limit, and with
// several chunks per device the sum of a device's chunks' peaks under its first chunk's
// limit. `schedule` must be the one ctx.step_time_ms simulates and pass StepSearchApplies.
// Error: no split meets the memory limit.
Result<StepSearchResult> MinStepSplit(const SplitContext& ctx, const Schedule& schedule,
                                      const StepSearchOptions& options);
// The same on a plan context's schedule, validated when the context was made.
Result<StepSearchResult> MinStepSplit(const SplitContext& ctx, const PlanContext& context,
                                      const StepSearchOptions& options);

// For tests: the lower bounds the search uses with stages 0..k-1 fixed by `prefix` (their
// first layers after stage 0, k entries) and stage k ending at layer `e`.
struct StepBoundProbe {
  double bound = 0;    // on every split with that stage k (and any later stages)
  double growing = 0;  // on every split whose stage k ends at e or later
  double skip = 0;     // on every split whose stage k ends at e or earlier (k < p - 1)
};
Result<StepBoundProbe> ProbeStepBounds(const SplitContext& ctx, const Schedule& schedule,
                                       const std::vector<int>& prefix, int e);

}  // namespace pp
