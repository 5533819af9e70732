// Renderings of a plan comparison (partitioner/compare.h): text, Markdown and JSON, all
// drawn from the same PlanComparison.
#pragma once

#include <string>

#include "core/json_util.h"
#include "partitioner/compare.h"

namespace pp {

inline constexpr std::string_view kCompareFormat = "pp-partition.compare/v1";

std::string CompareText(const PlanComparison& c);
std::string CompareMarkdown(const PlanComparison& c);
// {"format": "pp-partition.compare/v1", "model", "tolerance", "verdict": "ok"|"regression",
//  "regressions": [...], "inputs_changed", "overall": [...], "stages": [...],
//  "moved_boundaries": [...]}
Json CompareJson(const PlanComparison& c);

// Prints the comparison in `format` (text | md | json) to `out`, then each regression as
// "pp-partition: regression: ..." on stderr. Returns 1 on a regression, else 0.
int ReportComparison(const PlanComparison& c, const std::string& format, std::ostream& out);

}  // namespace pp
