// pp-partition run PLAN.json [--backend cpu|cuda] [--steps N] [--time-limit S] [--trace run.json]
//                            [--svg run.svg] [-o RAN.json] [--transport T] [--replicas r]
// Launched by mpirun or srun (executor/launch.h), every rank runs one pipeline device and rank
// 0 alone writes the report and the files (docs/distributed.md).
#include <iostream>
#include <memory>
#include <optional>
#include <utility>

#include "executor/gantt_svg.h"
#include "executor/launch.h"
#include "executor/mpi_run.h"
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
  std::string transport = "auto";
  int replicas = 0;  // 0: ranks / stages
};

// The transport of a run: `flag` (--transport) or, for auto, the launch's and the backend's.
// Errors name --transport and what goes with what.
Result<std::string> TransportOf(const std::string& flag, const std::string& backend,
                                bool distributed) {
  const std::string chosen = flag != "auto" ? flag
                             : distributed   ? (backend == "cuda" ? "nccl" : "mpi")
                                             : (backend == "cuda" ? "cuda" : "host");
  const bool across = chosen == "mpi" || chosen == "nccl";
  if (across != distributed) {
    return Status::Error(
        "--transport " + chosen +
        (across ? " carries messages between ranks: launch the run with mpirun or srun, one "
                  "rank per stage"
                : " carries messages inside one process; under mpirun or srun use mpi "
                  "(--backend cpu) or nccl (--backend cuda)"));
  }
  const bool fits = chosen == "host" || chosen == "mpi" ? backend == "cpu" : backend == "cuda";
  if (!fits) {
    return Status::Error("--transport " + chosen + " does not carry the " + backend +
                         " backend's tensors (cpu: host or mpi; cuda: cuda or nccl)");
  }
  return chosen;
}

// Fails a rank of a distributed run: the message, then the end of every rank of the job.
int FailRanks(const Status& status) {
  const int code = Fail(status);
  EndRanks(code);
  return code;
}

int RunRun(const RunFlags& f) {
  if (Status s = CheckTimeout(f.timeout_s); !s.ok()) return Fail(s);
  const Launch launch = DetectLaunch();
  // One rank of several: rank 0 alone speaks and writes; a run in one process (or a job of
  // one rank) runs every stage itself.
  const bool distributed = launch.launched && (launch.size > 1 || f.transport == "mpi" ||
                                               f.transport == "nccl");
  const bool root = !distributed || launch.rank == 0;
  // A failure before any rank started MPI: every rank exits 2 on its own. What every rank
  // finds alike (the rank count, a flag) rank 0 says; what may differ between machines (the
  // plan file) each rank says, naming itself.
  auto refuse = [&](const Status& s) { return root ? Fail(s) : 2; };
  auto refuse_here = [&](const Status& s) {
    return root ? Fail(s) : Fail(s.Prefixed("rank " + std::to_string(launch.rank)));
  };
  // Every output is written at the end, together, or none; a path that cannot be is refused
  // before the run.
  if (root) {
    if (Status s = CheckOutputPaths({f.trace, f.svg, f.output}); !s.ok()) return Fail(s);
  }
  Result<Plan> plan = LoadPlan(f.input);
  if (!plan.ok()) return refuse_here(plan.status());
  std::optional<RankLayout> layout;
  if (distributed) {
    Result<RankLayout> laid = LayoutRanks(plan->num_stages, launch.size, f.replicas);
    if (!laid.ok()) return refuse(laid.status());
    layout = *laid;
  } else if (f.replicas > 1) {
    return Fail("--replicas " + std::to_string(f.replicas) + " needs a launch by mpirun or srun "
                "with " + std::to_string(plan->num_stages * f.replicas) + " ranks");
  }
  std::string backend = f.backend;
  if (backend == "auto") {
    Result<std::vector<GpuInfo>> gpus = ListGpus();
    backend = gpus.ok() && !gpus->empty() ? "cuda" : "cpu";
    if (backend == "cpu" && root) {
      std::cerr << "pp-partition: no GPU visible; running on the cpu backend\n";
    }
  }
  Result<std::string> transport = TransportOf(f.transport, backend, distributed);
  if (!transport.ok()) return refuse(transport.status());
  RunPlanOptions options;
  options.backend = backend;
  options.gpus = f.gpus;
  options.run.steps = f.steps;
  options.run.warmup_steps = f.warmup;
  options.run.timeout_s = f.timeout_s;
  options.run.time_limit_s = f.time_limit_s;
  options.run.seed = f.seed;
  options.run.learning_rate = f.learning_rate;
  Result<RunResult> run = Status::Error("not run");
  if (distributed) {
    Result<PreparedRun> prepared = PrepareRun(*plan, options);
    if (!prepared.ok()) return refuse_here(prepared.status().Prefixed(ShownPath(f.input)));
    MpiRunRequest request;
    request.layout = *layout;
    request.launch = launch;
    request.backend = backend;
    request.transport = *transport;
    request.gpus = f.gpus;
    request.dtype = plan->profile.dtype;
    run = RunOnMpi(prepared->model, prepared->context.chunks, prepared->context.schedule,
                   options.run, request);
    if (!run.ok()) return FailRanks(run.status().Prefixed(ShownPath(f.input)));
    if (!run->root) {
      EndRanks(0);
      return 0;
    }
  } else {
    run = RunPlan(*plan, options);
    if (!run.ok()) return Fail(run.status().Prefixed(ShownPath(f.input)));
  }

  OutputSet outputs;
  if (!f.trace.empty() || !f.svg.empty()) {
    Result<Timeline> predicted = SimulatePlan(*plan);
    if (!predicted.ok()) return FailRanks(predicted.status());
    const Timeline measured = MedianStepTimeline(*run, plan->num_stages);
    if (!f.trace.empty()) outputs.Add(f.trace, DumpJson(RunTrace(*plan, *predicted, *run)));
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
  const int code = Deliver(std::move(outputs), f.output, f.format, DumpJson(PlanToJson(ran)),
                           [&](const std::string&) { return RunText(*plan, *run, backend); });
  if (distributed) EndRanks(0);  // the others wait in it for rank 0
  return code;
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
  sub.add_option("--transport", f->transport,
                 "How stages exchange tensors: host (cpu, one process), cuda (one process), mpi "
                 "(cpu, under mpirun/srun), nccl (cuda, under mpirun/srun), or auto (from the "
                 "launch and the backend)")
      ->check(CLI::IsMember({"auto", "host", "cuda", "mpi", "nccl"}))
      ->capture_default_str();
  sub.add_option("--replicas", f->replicas,
                 "Data-parallel replicas r under mpirun/srun: the job must have stages x r ranks "
                 "(default: ranks / stages)")
      ->check(CLI::Range(1, 1 << 20));
  return [f] { return RunRun(*f); };
}

}  // namespace pp
