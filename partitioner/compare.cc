#include "partitioner/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/content_hash.h"
#include "core/units.h"
#include "partitioner/planner.h"

namespace pp {
namespace {

std::string Percent(double fraction) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * fraction);
  return buf;
}

// The largest device's peak (a device holds all of its chunks).
uint64_t PeakMemory(const Plan& plan) {
  uint64_t peak = 0;
  for (uint64_t device : DevicePeakMemory(plan)) peak = std::max(peak, device);
  return peak;
}

// Per stage (chunk) of `plan`: whether its device is over its limit (planner.h's rule).
std::vector<char> OverLimitFlags(const Plan& plan) {
  std::vector<char> over(plan.stages.size(), 0);
  for (int s : StagesOverLimit(plan)) {
    if (s >= 0 && s < static_cast<int>(over.size())) over[s] = 1;
  }
  return over;
}


// Adds the step time, bubble ratio and throughput of one kind ("predicted" or "measured").
void AddTimeFigures(const std::string& kind, const Prediction& base, const Prediction& next,
                    bool judge_step, std::vector<FigureComparison>* out) {
  out->push_back({"step_time_ms", kind + " step time", "ms", base.step_time_ms,
                  next.step_time_ms, judge_step, false});
  out->push_back({"bubble_ratio", kind + " bubble ratio", "ratio", base.bubble_ratio,
                  next.bubble_ratio, false, false});
  out->push_back({"throughput_samples_per_s", kind + " throughput", "samples/s",
                  base.throughput_samples_per_s, next.throughput_samples_per_s, false, false});
}

}  // namespace

Result<PlanComparison> ComparePlans(const Plan& base, const Plan& next, double tolerance) {
  if (!std::isfinite(tolerance) || tolerance < 0) {
    return Status::Error("--tolerance must be a finite fraction >= 0");
  }
  if (base.model != next.model) {
    return Status::Error("not comparable: BASE plans model " + Quote(base.model) +
                         " and NEW plans " + Quote(next.model));
  }
  const std::vector<LayerProfile>& bl = base.profile.layers;
  const std::vector<LayerProfile>& nl = next.profile.layers;
  if (bl.size() != nl.size()) {
    return Status::Error("not comparable: BASE has " + std::to_string(bl.size()) +
                         " layers and NEW " + std::to_string(nl.size()) + " (model " +
                         base.model + ")");
  }
  PlanComparison c;
  c.model = base.model;
  c.tolerance = tolerance;
  for (size_t i = 0; i < bl.size(); ++i) {
    if (bl[i].name != nl[i].name) {
      return Status::Error("not comparable: layer " + std::to_string(i) + " is \"" +
                           bl[i].name + "\" in BASE and \"" + nl[i].name + "\" in NEW");
    }
    c.layer_names.push_back(bl[i].name);
  }
  // Device types and nodes (optional in plans) are inputs too.
  auto layout = [](const Plan& plan) {
    std::string key = plan.gpus_per_node ? std::to_string(*plan.gpus_per_node) : "";
    if (plan.inter_node_link) {
      key += "|" + std::to_string(plan.inter_node_link->bandwidth_bytes_per_s) + "," +
             std::to_string(plan.inter_node_link->latency_ms);
    }
    for (const auto& [type, profile] : plan.device_profiles) {
      key += "|" + type + "=" + ProfileHash(profile);
    }
    for (const StagePlan& s : plan.stages) {
      if (s.device_type) key += "|" + *s.device_type;
    }
    return key;
  };
  c.inputs_changed = ProfileHash(base.profile) != ProfileHash(next.profile) ||
                     layout(base) != layout(next) ||
                     (base.model_spec && next.model_spec &&
                      ModelHash(*base.model_spec) != ModelHash(*next.model_spec));

  const bool measured = base.measured && next.measured;
  AddTimeFigures("predicted", base.predicted, next.predicted, !measured, &c.overall);
  if (measured) AddTimeFigures("measured", *base.measured, *next.measured, true, &c.overall);
  c.overall.push_back({"max_stage_ms", "predicted largest stage", "ms",
                       base.predicted.max_stage_ms, next.predicted.max_stage_ms, false, false});
  c.overall.push_back({"peak_memory_bytes", "predicted peak memory", "bytes",
                       static_cast<double>(PeakMemory(base)),
                       static_cast<double>(PeakMemory(next)), false, false});
  for (FigureComparison& f : c.overall) {
    if (!f.judged) continue;
    const double limit = f.base * (1 + tolerance);
    if (f.next > limit) {
      f.regressed = true;
      const double over = f.base > 0 ? f.next / f.base - 1 : 0;
      c.regressions.push_back(f.label + ": " + FormatMs(f.next) + " is " +
                              (f.base > 0 ? Percent(over) : std::string("more than 0")) +
                              " over BASE's " + FormatMs(f.base) + " (tolerance " +
                              Percent(tolerance) + ")");
    }
  }

  // Every stage (chunk) of either plan; a chunk is over when its device's chunks together
  // exceed the device's limit.
  const std::vector<char> base_over = OverLimitFlags(base), next_over = OverLimitFlags(next);
  const std::vector<uint64_t> next_device = DevicePeakMemory(next);
  const int stages = static_cast<int>(std::max(base.stages.size(), next.stages.size()));
  for (int s = 0; s < stages; ++s) {
    StageComparison sc;
    sc.index = s;
    if (s < static_cast<int>(base.stages.size())) {
      sc.base = base.stages[s];
      sc.base_over_limit = base_over[s] != 0;
    }
    if (s < static_cast<int>(next.stages.size())) {
      sc.next = next.stages[s];
      sc.next_over_limit = next_over[s] != 0;
    }
    if (sc.next_over_limit && !sc.base_over_limit) {
      sc.memory_regressed = true;
      const int d = sc.next->device.value_or(s);
      const uint64_t need = sc.next->device && d >= 0 && d < static_cast<int>(next_device.size())
                                ? next_device[d]
                                : sc.next->peak_memory_bytes;
      c.regressions.push_back("stage " + std::to_string(s) + " peak memory: " +
                              FormatBytes(need) +
                              (sc.next->device ? " with its device's other chunks" : "") +
                              " exceeds NEW's limit of " +
                              FormatBytes(StageMemoryLimit(next, *sc.next).value_or(0)) +
                              (sc.base ? "; BASE's stage fit" : "; BASE has no such stage"));
    }
    c.stages.push_back(std::move(sc));
  }

  const size_t boundaries = std::max(base.boundaries.size(), next.boundaries.size());
  for (size_t i = 0; i < boundaries; ++i) {
    const int b = i < base.boundaries.size() ? base.boundaries[i] : -1;
    const int n = i < next.boundaries.size() ? next.boundaries[i] : -1;
    if (b != n) c.moved.push_back({static_cast<int>(i), b, n});
  }
  return c;
}

}  // namespace pp
