// pp-partition plan MODEL.json|PROFILE.json --stages P --micro-batches M [...]
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "core/units.h"
#include "executor/schedule.h"
#include "partitioner/compare.h"
#include "partitioner/methods.h"
#include "partitioner/planner.h"
#include "tool/command.h"
#include "tool/compare_report.h"
#include "tool/inputs.h"
#include "tool/report.h"

namespace pp {
namespace {

struct PlanFlags {
  std::string input;
  int stages = 0;
  int micro_batches = 0;
  int virtual_stages = 2;
  std::string schedule = "1f1b";
  std::string method = "dp";
  std::string objective = "step";
  CLI::Option* objective_option = nullptr;
  std::string boundaries;
  std::string optimizer = "adam";
  std::string memory_limit;
  std::string format = "text";
  std::string output;
  std::string device = "h100";
  CLI::Option* device_option = nullptr;
  std::string profile_path;
  int64_t micro_batch_size = 0;
  std::string dtype;
  std::string compare_to;
  std::string tolerance = "2%";
};

Result<std::vector<int>> ParseBoundaries(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    long value = -1;
    try {
      value = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || value < 1 || value > kMaxLayers) {
      return Status::Error("--boundaries: \"" + Abbreviate(item) +
                           "\" is not a layer index (example: --boundaries 5,10,15)");
    }
    out.push_back(static_cast<int>(value));
  }
  if (out.empty()) return Status::Error("--boundaries: give at least one layer index");
  return out;
}

int RunPlan(const PlanFlags& f) {
  ProfileOptions po;
  po.device = f.device;
  po.device_given = f.device_option->count() > 0;
  if (f.micro_batch_size > 0) po.micro_batch_size = f.micro_batch_size;
  if (!f.dtype.empty()) po.dtype = f.dtype;
  po.profile_path = f.profile_path;
  Result<ProfileSource> source = LoadProfileSource(f.input, po);
  if (!source.ok()) return Fail(source.status());
  std::unique_ptr<Plan> compare_base;
  double tolerance = 0;
  if (!f.compare_to.empty()) {
    Result<double> t = ParseFraction(f.tolerance);
    if (!t.ok()) return Fail("--tolerance: " + t.message());
    tolerance = *t;
    Result<Plan> base = LoadPlan(f.compare_to);
    if (!base.ok()) return Fail(base.status());
    compare_base = std::make_unique<Plan>(std::move(*base));
  }

  PlanRequest request;
  request.profile = source->profile;
  request.model = source->model;
  request.schedule = f.schedule;
  request.virtual_stages = f.virtual_stages;
  request.num_micro_batches = f.micro_batches;
  request.method = f.method;
  request.objective = f.objective;
  if (auto o = ParseOptimizer(f.optimizer)) request.optimizer = *o;
  else return Fail("--optimizer must be adam, sgd or none (got \"" + Abbreviate(f.optimizer) + "\")");
  if (!FindScheduleKind(f.schedule)) {
    return Fail("--schedule \"" + Abbreviate(f.schedule) + "\" is unknown (known: " +
                ScheduleNames() + ")");
  }
  if (f.memory_limit.empty()) {
    request.memory_limit = request.profile.device.memory_bytes;
  } else {
    Result<std::optional<uint64_t>> limit = ParseByteSize(f.memory_limit);
    if (!limit.ok()) return Fail("--memory-limit: " + limit.message());
    request.memory_limit = *limit;
  }
  if (!f.boundaries.empty()) {
    Result<std::vector<int>> b = ParseBoundaries(f.boundaries);
    if (!b.ok()) return Fail(b.status());
    // Chunks per device of the schedule (1, or V for interleaved, 2 for zbv).
    Result<Schedule> one = BuildSchedule(f.schedule, 1, 1, ScheduleOptions{f.virtual_stages});
    if (!one.ok()) return Fail(one.status());
    const int per_device = NumChunks(*one);
    const int chunks = static_cast<int>(b->size()) + 1;
    if ((f.stages != 0 && f.stages * per_device != chunks) || chunks % per_device != 0) {
      return Fail("--boundaries gives " + std::to_string(chunks) + " stages but " +
                  (f.stages != 0 ? "--stages " + std::to_string(f.stages) + " with " : "") +
                  std::to_string(per_device) + " chunk(s) per device needs a multiple" +
                  (f.stages != 0 ? " of " + std::to_string(f.stages * per_device) : ""));
    }
    request.boundaries = *b;
    request.num_stages = chunks / per_device;
    request.method = "given";
  } else {
    if (f.stages == 0) return Fail("--stages is required (or give --boundaries)");
    request.num_stages = f.stages;
  }

  // The default objective falls back to bottleneck where the exact step search does not apply
  // yet; asking for step explicitly there is an error.
  if (f.objective_option->count() == 0 && request.method == "dp" &&
      !StepObjectiveApplies(request).ok()) {
    request.objective = "bottleneck";
    std::cerr << "pp-partition: note: " << StepObjectiveApplies(request).message()
              << "; planning with --objective bottleneck\n";
  }
  Result<Plan> plan = MakePlan(request);
  if (!plan.ok()) return Fail(plan.status());
  if (plan->objective_bound && !plan->objective_bound->exact) {
    std::cerr << "pp-partition: warning: the step search ran out of its time budget; the plan's "
              << FormatMs(plan->predicted.step_time_ms) << " ms step is within "
              << FormatMs(plan->predicted.step_time_ms - plan->objective_bound->lower_bound_ms)
              << " ms of the optimum (proven lower bound "
              << FormatMs(plan->objective_bound->lower_bound_ms) << " ms)\n";
  }
  if (Result<Schedule> sch = RequestSchedule(request);
      sch.ok() && SplitsBackward(*sch) && !HasBackwardSplit(request.profile)) {
    std::cerr << "pp-partition: warning: the profile lacks backward_input_ms/backward_weight_ms; "
              << f.schedule << " splits each backward evenly into I and W\n";
  }

  std::unique_ptr<Plan> baseline;
  if (request.method != "uniform" && f.format != "json") {
    PlanRequest uniform = request;
    uniform.method = "uniform";
    Result<Plan> u = MakePlan(uniform);
    if (u.ok()) baseline = std::make_unique<Plan>(std::move(*u));
  }
  const std::vector<uint64_t> device_memory = DevicePeakMemory(*plan);
  for (int s : StagesOverLimit(*plan)) {
    const StagePlan& st = plan->stages[s];
    std::cerr << "pp-partition: warning: stage " << s << " needs "
              << FormatBytes(st.device ? device_memory[*st.device] : st.peak_memory_bytes)
              << (st.device ? " with its device's other chunks" : "")
              << ", over the limit of " << FormatBytes(*plan->memory_limit_bytes) << "\n";
  }

  // Judged before anything is written, so "not comparable" leaves no output file.
  std::optional<PlanComparison> comparison;
  if (compare_base) {
    Result<PlanComparison> c = ComparePlans(*compare_base, *plan, tolerance);
    if (!c.ok()) return Fail("--compare-to " + f.compare_to + ": " + c.message());
    comparison = std::move(*c);
  }
  const int status =
      Deliver(f.output, f.format, DumpJson(PlanToJson(*plan)), [&](const std::string& format) {
        return format == "md" ? PlanMarkdown(*plan, baseline.get())
                              : PlanText(*plan, baseline.get(), source->origin);
      });
  if (status != 0 || !comparison) return status;
  // Stdout carries only the plan document with -o - or --format json without -o.
  const bool stdout_is_document = f.output == "-" || (f.output.empty() && f.format == "json");
  const std::string format = f.format == "md" ? "md" : "text";
  if (!stdout_is_document) std::cout << "\n";
  return ReportComparison(*comparison, format, stdout_is_document ? std::cerr : std::cout);
}

}  // namespace

Handler SetupPlan(CLI::App& sub) {
  auto f = std::make_shared<PlanFlags>();
  sub.add_option("input", f->input, "A model file (profiled on the fly) or a profile file")
      ->required();
  sub.add_option("--stages", f->stages, "Number of pipeline stages P")->check(CLI::Range(1, 100000));
  sub.add_option("--micro-batches", f->micro_batches, "Micro-batches per step M")
      ->required()
      ->check(CLI::Range(1, 1 << 20));
  sub.add_option("--schedule", f->schedule, "Pipeline schedule: " + ScheduleNames())
      ->capture_default_str();
  sub.add_option("--virtual-stages", f->virtual_stages,
                 "interleaved: model chunks per device V (the model is cut into P*V chunks)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  sub.add_option("--method", f->method, "Partition method: " + PartitionMethodNames())
      ->capture_default_str();
  f->objective_option =
      sub.add_option("--objective", f->objective,
                     "step (least simulated step time, exact; gpipe and 1f1b) | bottleneck "
                     "(least max_stage_ms)")
          ->check(CLI::IsMember({"step", "bottleneck"}))
          ->capture_default_str();
  sub.add_option("--boundaries", f->boundaries,
                 "Evaluate this split: first layer index of stages 1..P-1, e.g. 5,10,15");
  sub.add_option("--optimizer", f->optimizer, "Training state per parameter: adam | sgd | none")
      ->capture_default_str();
  sub.add_option("--memory-limit", f->memory_limit,
                 "Per-stage memory limit, e.g. 80GiB, or none (default: the device's memory)");
  f->device_option =
      sub.add_option("--device", f->device, "Device for the analytic profile: h100, h200, a100, l40s")
          ->capture_default_str();
  sub.add_option("--micro-batch-size", f->micro_batch_size, "Override the model's micro-batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub.add_option("--dtype", f->dtype, "Override the model's dtype: bf16 | fp32");
  sub.add_option("--profile", f->profile_path,
                 "A measured profile of MODEL.json to plan from (the plan keeps the model, so "
                 "`run` can train it)");
  sub.add_option("--format", f->format, "Report format: text | json | md")
      ->check(CLI::IsMember({"text", "json", "md"}))
      ->capture_default_str();
  sub.add_option("-o,--output", f->output, "Write the plan document here ('-' for stdout only)");
  sub.add_option("--compare-to", f->compare_to,
                 "Compare the new plan with this BASE plan as 'compare' does (exit 1 on a "
                 "regression)");
  sub.add_option("--tolerance", f->tolerance, "With --compare-to: allowed step-time increase")
      ->capture_default_str();
  return [f] { return RunPlan(*f); };
}

}  // namespace pp
