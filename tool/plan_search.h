// `plan --stages auto`: runs partitioner/search.h on a loaded request and prints the ranked
// candidates; -o writes the best plan.
#pragma once

#include <string>

#include "partitioner/layout_search.h"
#include "partitioner/request.h"
#include "profiler/device_table.h"

namespace pp {

// Runs the search of `request` (its search space set, its profiles loaded), prints the ranked
// candidates and delivers the best plan as `format` to `output` (tool/command.h Deliver).
// Returns the exit status.
int RunPlanSearch(const PlanRequest& request, const std::string& format,
                  const std::string& output);

// Runs the search over the layout (partitioner/layout_search.h), prints the ranked candidates
// and the candidate counts, and delivers the best plan. Returns the exit status.
int RunLayoutSearchReport(const PlanRequest& request, const DeviceSpec& device,
                          const LeverSpace& space, const std::string& format,
                          const std::string& output);

}  // namespace pp
