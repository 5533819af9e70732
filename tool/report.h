// Readable renderings of the library's results. Text and Markdown are drawn from the same
// structs that the JSON documents are written from; formulas live in docs/cost-model.md.
#pragma once

#include <string>

#include "core/plan.h"
#include "core/profile.h"
#include "executor/simulator.h"

namespace pp {

// A plan as a table: each stage's layer range and names, forward/backward ms, peak memory
// against the limit and a bar of its load against the bottleneck; then the predicted step
// time, bubble ratio and throughput. `baseline` (may be null) is the uniform split of the
// same request, shown as a comparison; `origin` says where the profile came from.
std::string PlanText(const Plan& plan, const Plan* baseline, const std::string& origin);
std::string PlanMarkdown(const Plan& plan, const Plan* baseline);

std::string ProfileText(const Profile& profile);

// A simulated timeline of `plan`: per-stage busy and idle time and the ops in order.
std::string TimelineText(const Plan& plan, const Timeline& timeline);
Json TimelineJson(const Plan& plan, const Timeline& timeline);
// Chrome trace-event document (chrome://tracing, Perfetto): one thread per stage.
Json TimelineTrace(const Plan& plan, const Timeline& timeline, const std::string& process);

}  // namespace pp
