// The report of `run`: predicted beside measured, from the plan and the run result.
#pragma once

#include <string>

#include "core/plan.h"
#include "executor/runtime.h"
#include "executor/simulator.h"

namespace pp {

// One table: each figure predicted, measured and the error; then per stage busy time and peak
// memory predicted and measured; then the loss over the steps. A distributed run adds its
// ranks, the measured gradient all-reduce of its replicas, and that its clocks are per rank.
std::string RunText(const Plan& plan, const RunResult& run, const std::string& backend);

// A Chrome trace with the predicted timeline as process 0 and the measured one (the median
// step, MedianStepTimeline) as process 1; of a distributed run, one process per rank instead
// (process 1 + rank, named after the rank), each on its own clock.
Json RunTrace(const Plan& plan, const Timeline& predicted, const RunResult& run);

}  // namespace pp
