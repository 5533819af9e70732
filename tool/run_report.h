// The report of `run`: predicted beside measured, from the plan and the run result.
#pragma once

#include <string>

#include "core/plan.h"
#include "executor/runtime.h"
#include "executor/simulator.h"

namespace pp {

// One table: each figure predicted, measured and the error; then per stage busy time and peak
// memory predicted and measured; then the loss over the steps.
std::string RunText(const Plan& plan, const RunResult& run, const std::string& backend);

// A Chrome trace with the predicted timeline as process 0 and the measured one as process 1.
Json RunTrace(const Plan& plan, const Timeline& predicted, const Timeline& measured);

}  // namespace pp
