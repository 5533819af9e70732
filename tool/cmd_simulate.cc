// pp-partition simulate PLAN.json [--format text|json] [--trace trace.json] [--svg gantt.svg]
//                                 [--schedule-csv FILE] [--dump-schedule-csv FILE]
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "executor/gantt_svg.h"
#include "executor/schedule_csv.h"
#include "partitioner/planner.h"
#include "tool/command.h"
#include "tool/report.h"
#include "core/units.h"

namespace pp {
namespace {

struct SimulateFlags {
  std::string input;
  std::string format = "text";
  std::string trace;
  std::string svg;
  std::string schedule_csv;
  std::string dump_schedule_csv;
};

// The plan's context with the schedule to simulate: the plan's own, or the one in
// --schedule-csv, which must fit the plan's devices, stages and micro-batches.
Result<PlanContext> ContextToSimulate(const Plan& plan, const std::string& csv_path) {
  if (csv_path.empty()) return PlanContextOf(plan);
  std::ifstream in(csv_path, std::ios::binary);
  if (!in) return Status::Error(csv_path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  ScheduleCsvOptions options;
  options.source = csv_path;
  options.num_devices = plan.num_stages;
  options.num_chunks = NumChunks(plan);
  options.num_micro_batches = plan.num_micro_batches;
  Result<Schedule> schedule = ScheduleFromCsv(text.str(), options);
  if (!schedule.ok()) return schedule.status();
  return PlanContextOf(plan, std::move(*schedule));
}

int RunSimulate(const SimulateFlags& f) {
  // Every output is written at the end, together, or none; a path that cannot be is refused
  // before any work.
  if (Status s = CheckOutputPaths({f.dump_schedule_csv, f.svg, f.trace}); !s.ok()) return Fail(s);
  Result<Plan> loaded = LoadPlan(f.input);
  if (!loaded.ok()) return Fail(loaded.status());
  Plan plan = *loaded;
  Result<PlanContext> context = ContextToSimulate(plan, f.schedule_csv);
  if (!context.ok()) {
    return Fail(f.schedule_csv.empty() ? context.status().Prefixed(ShownPath(f.input)) : context.status());
  }
  if (!f.schedule_csv.empty()) plan.schedule = "schedule of " + f.schedule_csv;
  Result<Timeline> timeline = SimulatePlan(plan, *context);
  if (!timeline.ok()) return Fail(timeline.status().Prefixed(ShownPath(f.input)));
  OutputSet outputs;
  outputs.Add(f.dump_schedule_csv,
              f.dump_schedule_csv.empty() ? "" : ScheduleToCsv(context->schedule));
  if (!f.svg.empty()) {
    GanttOptions options;
    options.chunked = plan.virtual_stages > 1;
    const std::string title = "predicted: " + plan.model + ", " + plan.schedule + ", " +
                              std::to_string(plan.num_stages) + " devices, " +
                              std::to_string(plan.num_micro_batches) + " micro-batches";
    outputs.Add(f.svg, GanttSvg({{title, *timeline}}, options));
  }
  if (!f.trace.empty()) outputs.Add(f.trace, DumpJson(TimelineTrace(plan, *timeline, "predicted")));
  if (Status s = outputs.Commit(); !s.ok()) return Fail(s);
  // A document written to stdout is all that goes there.
  for (const std::string* out : {&f.trace, &f.svg, &f.dump_schedule_csv}) {
    if (*out == "-") return 0;
  }
  if (f.format == "json") std::cout << DumpJson(TimelineJson(plan, *timeline));
  else std::cout << TimelineText(plan, *timeline);
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
  sub.add_option("--svg", f->svg, "Write a Gantt chart (SVG) of the predicted timeline");
  sub.add_option("--schedule-csv", f->schedule_csv,
                 "Simulate the op lists of this CSV (torch.distributed.pipelining's form: a row "
                 "per rank, cells like 0F1) instead of the plan's schedule");
  sub.add_option("--dump-schedule-csv", f->dump_schedule_csv,
                 "Write the simulated schedule's op lists as that CSV");
  return [f] { return RunSimulate(*f); };
}

}  // namespace pp
