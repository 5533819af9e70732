// `plan --stages auto`: builds one profile per micro-batch size (measured ones from repeated
// --profile, otherwise the analytic or matching measured profile for --device), runs
// partitioner/search.h and prints the ranked candidates; -o writes the best plan.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/plan.h"

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
  std::string objective = "bottleneck";
  std::string format = "text";
  std::string output;
};

// Returns the exit status.
int RunPlanSearch(const PlanSearchInputs& in);

}  // namespace pp
