#include "executor/run_plan.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "executor/cpu_runner.h"
#include "executor/cuda_runner.h"
#include "core/units.h"

namespace pp {

Status CheckTimeout(double timeout_s) {
  if (timeout_s >= kMinTimeoutS && timeout_s <= kMaxTimeoutS) return Status::Ok();
  return Status::Error("--timeout must be between " + FormatSeconds(kMinTimeoutS) + " and " +
                       FormatSeconds(kMaxTimeoutS) + " (got " + Printf("%g", timeout_s) + ")");
}

Result<PreparedRun> PrepareRun(const Plan& plan, const RunPlanOptions& options) {
  PP_RETURN_IF_ERROR(CheckTimeout(options.run.timeout_s));
  if (!plan.model_spec) {
    return Status::Error("the plan carries no model (model_spec): make it with `plan MODEL.json` "
                         "to run it");
  }
  if (options.backend != "cpu" && options.backend != "cuda") {
    return Status::Error("unknown backend " + Quote(options.backend) + " (use cpu or cuda)");
  }
  if (options.run.steps < 1 || options.run.warmup_steps < 0) {
    return Status::Error("--steps must be at least 1 and --warmup at least 0");
  }
  PreparedRun prepared;
  prepared.model = *plan.model_spec;
  prepared.model.input.micro_batch_size = plan.micro_batch_size;
  Result<PlanContext> context = PlanContextOf(plan);
  if (!context.ok()) return context.status();
  prepared.context = std::move(*context);
  bool recompute = false;
  for (const ChunkRange& c : prepared.context.chunks) recompute |= c.recompute;
  if (recompute && plan.recompute_unit == RecomputeUnit::kSelective) {
    return Status::Error("the plan recomputes modules (" + plan.recompute_modules.Joined() +
                         ") alone (selective); running that is not available yet");
  }
  if (options.backend == "cuda" && recompute) {
    return Status::Error("the plan recomputes activations on some stages; recomputation on "
                         "the cuda backend is not available yet (--backend cpu runs it)");
  }
  return prepared;
}

Result<RunResult> RunPlan(const Plan& plan, const RunPlanOptions& options) {
  Result<PreparedRun> prepared = PrepareRun(plan, options);
  if (!prepared.ok()) return prepared.status();
  const Model& model = prepared->model;
  const Schedule& schedule = prepared->context.schedule;
  const std::vector<ChunkRange>& chunks = prepared->context.chunks;
  if (options.backend == "cuda") {
    // The profile's dtype is what the plan's times and bytes were measured in.
    return RunOnCuda(model, chunks, schedule, options.run,
                     CudaRunRequest{options.gpus, plan.profile.dtype});
  }
  return RunOnCpu(model, chunks, schedule, options.run);
}

Measurement MeasurementOf(const Plan& plan, const RunResult& run, const std::string& backend) {
  Measurement m;
  m.step_time_ms = run.step_ms;
  m.bubble_ratio = run.bubble_ratio;
  m.throughput_samples_per_s = run.throughput_samples_per_s;
  m.stage_busy_ms = run.busy_ms;
  m.stage_peak_memory_bytes = run.peak_memory_bytes;
  m.steps = static_cast<int>(run.steps.size()) - run.warmup_steps;
  m.backend = backend;
  m.device = run.device;
  // With data-parallel replicas: the measured gradient all-reduce per step, the counterpart of
  // the prediction's data-parallel time.
  if (run.replicas > 1) m.data_parallel_ms = run.allreduce_ms;
  // The bottleneck is the busiest device; its per-micro-batch busy time is the measured
  // counterpart of max_stage_ms.
  for (size_t d = 0; d < run.busy_ms.size(); ++d) {
    if (run.busy_ms[d] > run.busy_ms[m.bottleneck_stage]) m.bottleneck_stage = static_cast<int>(d);
  }
  m.max_stage_ms = run.busy_ms.empty() ? 0 : run.busy_ms[m.bottleneck_stage] /
                                                 std::max(plan.num_micro_batches, 1);
  return m;
}

Timeline MedianStepTimeline(const RunResult& run, int num_devices) {
  Timeline t;
  t.num_devices = num_devices;
  if (static_cast<int>(run.steps.size()) <= run.warmup_steps) return t;
  const StepTiming* best = nullptr;
  for (size_t i = run.warmup_steps; i < run.steps.size(); ++i) {
    const StepTiming& st = run.steps[i];
    if (best == nullptr ||
        std::fabs(st.step_ms - run.step_ms) < std::fabs(best->step_ms - run.step_ms)) {
      best = &st;
    }
  }
  for (const OpTiming& op : best->ops) {
    if (op.replica != 0) continue;
    t.ops.push_back({op.device, op.op, op.start_ms, op.start_ms, op.end_ms});
  }
  std::stable_sort(t.ops.begin(), t.ops.end(),
                   [](const TimedOp& a, const TimedOp& b) { return a.device < b.device; });
  t.busy_ms = best->busy_ms;
  t.step_time_ms = best->step_ms;
  t.bubble_ratio = best->bubble_ratio;
  return t;
}

}  // namespace pp
