// pp-partition simulate PLAN.json [--format text|json] [--trace trace.json] [--svg gantt.svg]
#include <iostream>
#include <memory>

#include "partitioner/planner.h"
#include "tool/command.h"
#include "tool/report.h"

namespace pp {
namespace {

struct SimulateFlags {
  std::string input;
  std::string format = "text";
  std::string trace;
  std::string svg;
};

int RunSimulate(const SimulateFlags& f) {
  if (!f.svg.empty()) return Fail("--svg is not available yet");
  Result<Plan> plan = LoadPlan(f.input);
  if (!plan.ok()) return Fail(plan.status());
  Result<Timeline> timeline = SimulatePlan(*plan);
  if (!timeline.ok()) return Fail(timeline.status().Prefixed(f.input));
  if (!f.trace.empty()) {
    const Status s = WriteFileAtomic(f.trace, DumpJson(TimelineTrace(*plan, *timeline, "predicted")));
    if (!s.ok()) return Fail(s);
    if (f.trace == "-") return 0;
  }
  if (f.format == "json") std::cout << DumpJson(TimelineJson(*plan, *timeline));
  else std::cout << TimelineText(*plan, *timeline);
  return 0;
}

}  // namespace

Handler SetupSimulate(CLI::App& sub) {
  auto f = std::make_shared<SimulateFlags>();
  sub.add_option("plan", f->input, "Plan file (pp-partition.plan/v1)")->required();
  sub.add_option("--format", f->format, "Report format: text | json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  sub.add_option("--trace", f->trace, "Write a Chrome trace of the predicted timeline");
  sub.add_option("--svg", f->svg, "Write a Gantt chart (not available yet)");
  return [f] { return RunSimulate(*f); };
}

}  // namespace pp
