#include "tool/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/units.h"
#include "executor/run_plan.h"
#include "partitioner/search.h"
#include "tool/report.h"

namespace pp {
namespace {

std::string Row(const std::string& name, const std::string& predicted, const std::string& measured,
                const std::string& error) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-22s %16s %16s %12s\n", name.c_str(), predicted.c_str(),
                measured.c_str(), error.c_str());
  return buf;
}

std::string RelError(double predicted, double measured) {
  if (predicted == 0) return "";
  return Printf("%+.1f%%", 100.0 * (measured - predicted) / predicted);
}

}  // namespace

std::string RunText(const Plan& plan, const RunResult& run, const std::string& backend) {
  std::ostringstream out;
  const int timed = static_cast<int>(run.steps.size()) - run.warmup_steps;
  out << "run: " << plan.model << " on " << plan.num_stages << " stages, " << plan.schedule << ", "
      << plan.num_micro_batches << " micro-batches of " << plan.micro_batch_size << "; " << backend
      << " backend, " << run.device << "; median of " << timed << " steps after "
      << run.warmup_steps << " warm-up\n";
  out << "predicted from the " << plan.profile.backend << " profile (" << plan.profile.device.name
      << ")\n\n";
  out << Row("figure", "predicted", "measured", "error");
  const Prediction& p = plan.predicted;
  out << Row("step time", Printf("%.3f ms", p.step_time_ms), Printf("%.3f ms", run.step_ms),
             RelError(p.step_time_ms, run.step_ms));
  out << Row("bubble ratio", Printf("%.2f %%", 100 * p.bubble_ratio),
             Printf("%.2f %%", 100 * run.bubble_ratio),
             Printf("%+.1f pt", 100 * (run.bubble_ratio - p.bubble_ratio)));
  out << Row("throughput", Printf("%.1f /s", p.throughput_samples_per_s),
             Printf("%.1f /s", run.throughput_samples_per_s),
             RelError(p.throughput_samples_per_s, run.throughput_samples_per_s));
  out << "\n";
  char head[160];
  std::snprintf(head, sizeof head, "%-6s %14s %14s %8s %16s %16s\n", "stage", "busy pred ms",
                "busy meas ms", "error", "peak mem pred", "peak mem meas");
  out << head;
  for (size_t d = 0; d < run.busy_ms.size(); ++d) {
    double busy = 0;
    uint64_t peak = 0;
    for (const StagePlan& s : plan.stages) {
      // A stage (chunk) records its device when a device runs several.
      if (static_cast<size_t>(s.device.value_or(s.index)) == d) {
        busy += plan.num_micro_batches * (s.forward_ms + s.backward_ms);
        peak += s.peak_memory_bytes;
      }
    }
    char line[200];
    std::snprintf(line, sizeof line, "%-6zu %14.3f %14.3f %8s %16s %16s\n", d, busy,
                  run.busy_ms[d], RelError(busy, run.busy_ms[d]).c_str(), FormatBytes(peak).c_str(),
                  FormatBytes(run.peak_memory_bytes[d]).c_str());
    out << line;
  }
  if (!run.rank_names.empty()) {
    out << "\n" << run.rank_names.size() << " ranks, " << plan.num_stages << " stages × "
        << run.replicas << " replicas (stage s of replica k is rank s × " << run.replicas
        << " + k); each rank's clock starts at its own exit of the barrier that starts a step, "
           "so the timings are per rank\n";
    for (const std::string& name : run.rank_names) out << "  " << name << "\n";
    if (run.replicas > 1) {
      // The planner's figure (plan --stages auto): a ring all-reduce of the largest stage's
      // gradients over the profile's link, or the network's when the ranks span machines.
      uint64_t largest = 0;
      for (const StagePlan& s : plan.stages) largest = std::max(largest, s.param_bytes);
      const Link& link = run.hosts.size() > 1 && plan.inter_node_link ? *plan.inter_node_link
                                                                      : plan.profile.link;
      out << "gradient all-reduce over the replicas: predicted "
          << Printf("%.3f ms", RingAllReduceMs(largest, run.replicas, link)) << ", measured "
          << Printf("%.3f ms", run.allreduce_ms)
          << " per step (median of the slowest rank's, timed once every replica got there; "
             "not in the step time)\n";
    }
  }
  if (!run.steps.empty()) {
    out << "\nloss " << Printf("%.4f", run.steps.front().loss) << " (step 1) -> "
        << Printf("%.4f", run.steps.back().loss) << " (step " << run.steps.size() << ")\n";
  }
  return out.str();
}

Json RunTrace(const Plan& plan, const Timeline& predicted, const RunResult& run) {
  Json doc = TimelineTrace(plan, predicted, "predicted");
  const Timeline measured = MedianStepTimeline(run, plan.num_stages);
  if (run.rank_names.empty()) {
    Json second = TimelineTrace(plan, measured, "measured");
    for (Json& e : second["traceEvents"]) {
      e["pid"] = 1;
      doc["traceEvents"].push_back(std::move(e));
    }
    return doc;
  }
  // The same median step, every rank's ops as its own process.
  const StepTiming* step = nullptr;
  for (size_t i = run.warmup_steps; i < run.steps.size(); ++i) {
    if (run.steps[i].step_ms == measured.step_time_ms) step = &run.steps[i];
  }
  if (step == nullptr) return doc;
  for (size_t rank = 0; rank < run.rank_names.size(); ++rank) {
    Timeline t;
    t.num_devices = 1;
    for (const OpTiming& op : step->ops) {
      if (op.rank == static_cast<int>(rank)) {
        t.ops.push_back({0, op.op, op.start_ms, op.start_ms, op.end_ms});
      }
    }
    Json part = TimelineTrace(plan, t, "measured on " + run.rank_names[rank] +
                                           ", its own clock");
    for (Json& e : part["traceEvents"]) {
      e["pid"] = 1 + static_cast<int>(rank);
      doc["traceEvents"].push_back(std::move(e));
    }
  }
  return doc;
}

}  // namespace pp
