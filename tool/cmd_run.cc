// pp-partition run PLAN.json [--backend cpu|cuda] [--steps N] [--time-limit S] [--trace run.json]
//                            [--svg run.svg] [-o RAN.json]
#include <iostream>
#include <memory>
#include <utility>

#include "executor/gantt_svg.h"
#include "executor/run_plan.h"
#include "partitioner/planner.h"
#include "profiler/gpu_info.h"
#include "tool/command.h"
#include "tool/run_report.h"
#include "core/units.h"

namespace pp {
namespace {

struct RunFlags {
  std::string input;
  std::string backend = "auto";
  std::string gpus;
  int steps = 10;
  int warmup = 2;
  double timeout_s = 60;
  double time_limit_s = 600;
  uint64_t seed = 1;
  double learning_rate = 1e-3;
  std::string trace, svg, output, format = "text";
};

int RunRun(const RunFlags& f) {
  if (Status s = CheckTimeout(f.timeout_s); !s.ok()) return Fail(s);
  // Every output is written at the end, together, or none; a path that cannot be is refused
  // before the run.
  if (Status s = CheckOutputPaths({f.trace, f.svg, f.output}); !s.ok()) return Fail(s);
  Result<Plan> plan = LoadPlan(f.input);
  if (!plan.ok()) return Fail(plan.status());
  std::string backend = f.backend;
  if (backend == "auto") {
    Result<std::vector<GpuInfo>> gpus = ListGpus();
    backend = gpus.ok() && !gpus->empty() ? "cuda" : "cpu";
    if (backend == "cpu") std::cerr << "pp-partition: no GPU visible; running on the cpu backend\n";
  }
  RunPlanOptions options;
  options.backend = backend;
  options.gpus = f.gpus;
  options.run.steps = f.steps;
  options.run.warmup_steps = f.warmup;
  options.run.timeout_s = f.timeout_s;
  options.run.time_limit_s = f.time_limit_s;
  options.run.seed = f.seed;
  options.run.learning_rate = f.learning_rate;
  Result<RunResult> run = RunPlan(*plan, options);
  if (!run.ok()) return Fail(run.status().Prefixed(ShownPath(f.input)));

  OutputSet outputs;
  if (!f.trace.empty() || !f.svg.empty()) {
    Result<Timeline> predicted = SimulatePlan(*plan);
    if (!predicted.ok()) return Fail(predicted.status());
    const Timeline measured = MedianStepTimeline(*run, plan->num_stages);
    if (!f.trace.empty()) outputs.Add(f.trace, DumpJson(RunTrace(*plan, *predicted, measured)));
    if (!f.svg.empty()) {
      GanttOptions chart;
      chart.chunked = plan->virtual_stages > 1;
      const std::string what = ": " + plan->model + ", " + plan->schedule + ", " + backend;
      outputs.Add(f.svg, GanttSvg({{"predicted" + what, *predicted}, {"measured" + what, measured}},
                                  chart));
    }
  }
  Plan ran = *plan;
  ran.measured = MeasurementOf(*plan, *run, backend);
  return Deliver(std::move(outputs), f.output, f.format, DumpJson(PlanToJson(ran)),
                 [&](const std::string&) { return RunText(*plan, *run, backend); });
}

}  // namespace

Handler SetupRun(CLI::App& sub) {
  auto f = std::make_shared<RunFlags>();
  sub.add_option("plan", f->input, "Plan file made by `plan MODEL.json` (it carries the model)")
      ->required();
  sub.add_option("--backend", f->backend,
                 "cpu (one thread per stage on the CPU layers), cuda, or auto (cuda when a GPU "
                 "is visible)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  sub.add_option("--gpus", f->gpus, "cuda: 0,1,2,3 (one GPU per stage) or 0x4 (virtual devices)");
  sub.add_option("--steps", f->steps, "Timed training steps")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  sub.add_option("--warmup", f->warmup, "Untimed steps first")->check(CLI::Range(0, 1000))
      ->capture_default_str();
  sub.add_option("--timeout", f->timeout_s, "Seconds a stage may wait for an input (0.001 to 86400)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_option("--time-limit", f->time_limit_s,
                 "Seconds the whole run may take (setup and every step); past it every stage "
                 "stops and the run fails")
      ->check(CLI::Range(0.001, 1e7))
      ->capture_default_str();
  sub.add_option("--seed", f->seed, "Seed of the parameters and the synthetic data")
      ->capture_default_str();
  sub.add_option("--lr", f->learning_rate, "AdamW learning rate")->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_option("--trace", f->trace, "Chrome trace of the predicted and the measured timeline");
  sub.add_option("--svg", f->svg,
                 "Gantt chart (SVG): the predicted timeline above the measured one");
  sub.add_option("--format", f->format, "Report format: text | json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  sub.add_option("-o,--output", f->output, "Write the plan with its measured block");
  return [f] { return RunRun(*f); };
}

}  // namespace pp
