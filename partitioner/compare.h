// Comparing two plans of the same model: a CI gate for partitions.
//
// Two plans are comparable when they name the same model and their profiles list the same
// layer names in the same order. NEW regresses against BASE when
//   * its step time exceeds BASE's × (1 + tolerance), strictly (equal to the limit passes);
//     the measured step times are judged when both plans carry a measured block, the
//     predicted ones otherwise; or
//   * one of its stages (chunks) is on a device over its memory limit (planner.h's
//     StagesOverLimit: a device holds all its chunks) while BASE's stage of the same index was
//     not (or BASE has no such stage).
// Every other figure (bubble ratio, throughput, peak memory, per-stage times) is shown, not
// judged. Times in ms, sizes in bytes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/status.h"

namespace pp {

// One overall figure of both plans.
struct FigureComparison {
  std::string key;    // "step_time_ms", "bubble_ratio", "throughput_samples_per_s", ...
  std::string label;  // "predicted step time"
  std::string unit;   // "ms", "ratio", "samples/s", "bytes"
  double base = 0;
  double next = 0;
  bool judged = false;     // counts toward the verdict
  bool regressed = false;  // judged and worse beyond the tolerance
};

// Stage `index` of each plan; absent when that plan has fewer stages.
struct StageComparison {
  int index = 0;
  std::optional<StagePlan> base;
  std::optional<StagePlan> next;
  bool base_over_limit = false;
  bool next_over_limit = false;
  bool memory_regressed = false;  // next over its limit where base was not
};

// A boundary (first layer of stage i + 1) that differs; layer -1 when the plan has no such
// boundary (stage counts differ).
struct BoundaryMove {
  int index = 0;
  int base_layer = -1;
  int next_layer = -1;
};

struct PlanComparison {
  std::string model;
  double tolerance = 0;  // a fraction: 0.02 is 2 %
  std::vector<std::string> layer_names;  // of both plans
  std::vector<StageComparison> stages;   // one per stage (chunk) of the plan with more
  std::vector<FigureComparison> overall;
  std::vector<BoundaryMove> moved;
  bool inputs_changed = false;  // the embedded profiles (or models) differ
  // One line per regression, naming the figure: "predicted step time: 105.000 ms is 5.00%
  // over BASE's 100.000 ms (tolerance 2.00%)". Empty: no regression.
  std::vector<std::string> regressions;
  bool regressed() const { return !regressions.empty(); }
};

// Errors ("not comparable: ...") when the model names or layer lists differ, or the
// tolerance is negative or not finite.
Result<PlanComparison> ComparePlans(const Plan& base, const Plan& next, double tolerance);

}  // namespace pp
