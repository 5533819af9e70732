// `plan --stages auto`: runs partitioner/search.h on a loaded request and prints the ranked
// candidates; -o writes the best plan.
#pragma once

#include <string>

#include "partitioner/request.h"

namespace pp {

// Runs the search of `request` (its search space set, its profiles loaded), prints the ranked
// candidates and delivers the best plan as `format` to `output` (tool/command.h Deliver).
// Returns the exit status.
int RunPlanSearch(const PlanRequest& request, const std::string& format,
                  const std::string& output);

}  // namespace pp
