// `plan --stages auto`: builds one profile per micro-batch size (measured ones from repeated
// --profile, otherwise the analytic or matching measured profile for --device), runs
// partitioner/search.h and prints the ranked candidates; -o writes the best plan.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/status.h"
#include "partitioner/devices.h"
#include "tool/inputs.h"

namespace pp {

struct PlanSearchInputs {
  std::string input;  // a model file
  int gpus_total = 0;
  int64_t global_batch = 0;
  std::vector<std::string> profile_paths;  // one per micro-batch size, or none
  std::string device = "h100";
  bool device_given = false;
  std::optional<std::string> dtype;
  Optimizer optimizer = Optimizer::kAdam;
  std::string memory_limit;  // as given; empty: the device's memory
  std::string objective = "step";
  double step_budget_s = 2.0;                // the whole search's, shared out
  std::vector<std::string> schedules;        // empty: every schedule
  int virtual_stages = 2;
  // --device-types / --gpus-per-node: the layout at one micro-batch size (po), with `profile`
  // set to stage 0's type's profile; unset without those flags.
  std::function<Result<DeviceLayout>(const ProfileOptions& po, Profile* profile)> layout_for;
  std::string format = "text";
  std::string output;
};

// Returns the exit status.
int RunPlanSearch(const PlanSearchInputs& in);

}  // namespace pp
