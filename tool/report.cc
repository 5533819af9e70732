#include "tool/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>

#include "core/units.h"
#include "partitioner/planner.h"

namespace pp {
namespace {

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string Pad(const std::string& s, size_t width, bool right = false) {
  // Width counts UTF-8 code points so bars line up.
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  if (chars >= width) return s;
  const std::string fill(width - chars, ' ');
  return right ? fill + s : s + fill;
}

std::string Names(const StagePlan& s) {
  const auto& n = s.layer_names;
  if (n.size() <= 3) {
    std::string out;
    for (size_t i = 0; i < n.size(); ++i) out += (i ? ", " : "") + n[i];
    return out;
  }
  return n.front() + ", " + n[1] + " … " + n.back();
}

std::string Range(const StagePlan& s) {
  return std::to_string(s.first_layer) + "-" + std::to_string(s.last_layer) + " (" +
         std::to_string(s.last_layer - s.first_layer + 1) + ")";
}

std::string Bar(double load, int width) {
  const int full = static_cast<int>(std::lround(std::clamp(load, 0.0, 1.0) * width));
  std::string bar;
  for (int i = 0; i < width; ++i) bar += i < full ? "█" : "·";
  return bar;
}

std::string Memory(const StagePlan& s, const Plan& plan) {
  std::string m = FormatBytes(s.peak_memory_bytes);
  // A stage's own limit (its device's memory) when recorded, else the plan's.
  const std::optional<uint64_t> limit =
      s.memory_limit_bytes ? s.memory_limit_bytes : plan.memory_limit_bytes;
  if (limit) {
    m += " / " + FormatBytes(*limit);
    if (s.peak_memory_bytes > *limit) m += " OVER";
  }
  return m;
}

std::string Percent(double ratio) { return Fmt("%.2f %%", 100.0 * ratio); }

// Chunked plans (several chunks a device): the fullest device's peak over its chunks
// together, which no stage row shows and the memory limit is checked against
// ("8.48 GiB on device 0 (3 chunks; limit 64.0 GiB)"); "" for one chunk a device.
std::string DevicePeakLine(const Plan& plan) {
  if (plan.stages.empty() || !plan.stages.front().device) return "";
  const std::vector<uint64_t> device = DevicePeakMemory(plan);
  const auto most = std::max_element(device.begin(), device.end());
  if (most == device.end()) return "";
  const int d = static_cast<int>(most - device.begin());
  int chunks = 0;
  std::optional<uint64_t> limit;
  for (const StagePlan& s : plan.stages) {
    if (s.device != d) continue;
    ++chunks;
    limit = StageMemoryLimit(plan, s);
  }
  std::string line = FormatBytes(*most) + " on device " + std::to_string(d) + " (" +
                     std::to_string(chunks) + " chunks";
  if (limit) line += "; limit " + FormatBytes(*limit) + (*most > *limit ? ", OVER" : "");
  return line + ")";
}

std::string Change(double from, double to) {
  if (from <= 0) return "";
  return Fmt("%+.1f%%", 100.0 * (to - from) / from);
}

std::string Header(const Plan& plan) {
  std::ostringstream out;
  out << plan.model << " on " << plan.num_stages << " stages, " << plan.schedule << ", "
      << plan.num_micro_batches << " micro-batches of " << plan.micro_batch_size << " ("
      << plan.profile.backend << " profile, " << plan.profile.device.name << ", "
      << DTypeName(plan.profile.dtype) << ")";
  return out.str();
}

// "F3", or "5F3" (chunk 5) when devices run several chunks.
std::string OpLabel(const Plan& plan, const PipelineOp& op) {
  return OpText(op, plan.virtual_stages > 1 ? op.chunk : -1);
}

std::string OpCategory(OpKind kind) {
  switch (kind) {
    case OpKind::kForward:
      return "forward";
    case OpKind::kBackward:
      return "backward";
    case OpKind::kBackwardInput:
      return "backward_input";
    case OpKind::kBackwardWeight:
      return "backward_weight";
  }
  return "?";
}

std::string StageLabel(const StagePlan& s) {
  return std::to_string(s.index) + (s.device ? "@d" + std::to_string(*s.device) : "") +
         (s.device_type ? " " + *s.device_type : "") + (s.recompute ? " rc" : "");
}

// "tp 8, pp 4, cp 1, ep 1, dp 32, vp 1, zero 1"
std::string LayoutLine(const ParallelLayout& l) {
  return "tp " + std::to_string(l.tp) + ", pp " + std::to_string(l.pp) + ", cp " +
         std::to_string(l.cp) + ", ep " + std::to_string(l.ep) +
         (l.etp != 0 ? ", etp " + std::to_string(l.etp) : "") + ", dp " + std::to_string(l.dp) +
         ", vp " + std::to_string(l.vp) + ", zero " + std::to_string(l.zero) +
         (l.tp > 1 && l.sequence_parallel ? ", sequence parallel" : "") +
         (l.fused_attention ? "" : ", unfused attention") +
         (l.dp > 1 && !l.overlap_grad_reduce ? ", gradient reduction after the backward" : "") +
         (l.fused_wgrad_accumulation ? "" : ", weight gradients accumulated apart") +
         (l.pp > 1 && PipelineScatterGatherApplies(l)
              ? ", stage transfers split over the tensor ranks"
              : "") +
         (l.tp > 1 && l.overlap_tp_dgrad ? ", input-gradient reductions under the weight gradients"
                                         : "") +
         (l.fused_cross_entropy ? "" : ", unfused cross entropy") +
         (GradientCopiesApply(l) && l.fp32_grad_copy ? ", fp32 gradient copy at the step" : "") +
         (GradientCopiesApply(l) && l.ddp_bucket_copy ? ", DDP's bucket copy of the gradients"
                                                      : "") +
         (ExpertOverlapApplies(l) ? ", experts' all-to-all under the other micro-batch" : "") +
         (l.ep > 1 && l.flex_dispatcher ? ", flex dispatcher (a token once per node)" : "") + "; " +
         std::to_string(l.gpus()) + " GPUs, " + std::to_string(l.gpus_per_node) + " per node";
}

}  // namespace

std::string PlanText(const Plan& plan, const Plan* baseline, const std::string& origin) {
  std::ostringstream out;
  out << "plan: " << Header(plan) << "\n";
  out << "method " << plan.method << ", objective " << plan.objective << ", optimizer "
      << OptimizerName(plan.optimizer) << ", memory limit "
      << (plan.memory_limit_bytes ? FormatBytes(*plan.memory_limit_bytes)
          : !plan.stages.empty() && plan.stages.front().memory_limit_bytes
              ? std::string("each device's memory")
              : std::string("none"))
      << "; profile: " << origin << "\n";
  if (plan.gpus_per_node && plan.inter_node_link) {
    out << "nodes: " << *plan.gpus_per_node << " GPUs per node, inter-node link "
        << Fmt("%g", plan.inter_node_link->bandwidth_bytes_per_s) << " B/s, "
        << Fmt("%g", plan.inter_node_link->latency_ms) << " ms\n";
  }
  if (plan.parallelism) out << "parallelism: " << LayoutLine(*plan.parallelism) << "\n";
  bool recompute = false;
  for (const StagePlan& s : plan.stages) recompute |= s.recompute;
  if (recompute) {
    out << "recomputation: the stages marked rc ";
    switch (plan.recompute_unit) {
      case RecomputeUnit::kStage:
        out << "keep their input and run their whole forward again at the start of each backward";
        break;
      case RecomputeUnit::kLayer:
        out << "keep every layer's input and run each layer's forward again before its backward";
        break;
      case RecomputeUnit::kBlock:
        out << "keep the input of each of their first " << plan.recompute_blocks
            << " transformer blocks and run its forward again before its backward";
        break;
      case RecomputeUnit::kSelective:
        out << "drop what their modules (" << plan.recompute_modules.Joined()
            << ") keep inside and run those modules' forward again in each layer's backward";
        break;
    }
    out << "\n";
  }
  out << "\n";
  const double bottleneck = plan.predicted.max_stage_ms;
  const int label = (!plan.stages.empty() && plan.stages.front().device_type ? 12 : 6) +
                    (recompute ? 3 : 0);
  out << Pad("stage", label) << Pad("layers", 14) << Pad("names", 34) << Pad("fwd ms", 11, true)
      << Pad("bwd ms", 11, true) << "  " << Pad("peak memory / limit", 26) << "load\n";
  for (const StagePlan& s : plan.stages) {
    const double load = bottleneck > 0 ? (s.forward_ms + s.backward_ms) / bottleneck : 0;
    out << Pad(StageLabel(s), label) << Pad(Range(s), 14) << Pad(Names(s), 34)
        << Pad(Fmt("%.3f", s.forward_ms), 11, true) << Pad(Fmt("%.3f", s.backward_ms), 11, true)
        << "  " << Pad(Memory(s, plan), 26) << Bar(load, 20) << Fmt(" %3.0f%%", 100 * load)
        << "\n";
  }
  const Prediction& p = plan.predicted;
  out << "\npredicted step time  " << Fmt("%.3f ms", p.step_time_ms);
  if (plan.objective_bound) {
    out << (plan.objective_bound->exact
                ? std::string(" (the least over all splits)")
                : " (search unfinished; no split is below " +
                      Fmt("%.3f ms", plan.objective_bound->lower_bound_ms) + ")");
  }
  out << "\n";
  out << "bubble ratio         " << Percent(p.bubble_ratio) << "\n";
  if (p.bubble_over_ideal) {
    out << "bubble / ideal       " << Percent(*p.bubble_over_ideal) << " (idle / busy)\n";
  }
  out << "throughput           " << Fmt("%.1f samples/s", p.throughput_samples_per_s) << "\n";
  if (p.batch_time_ms) {
    out << "time per batch       " << Fmt("%.3f ms", *p.batch_time_ms) << " (step + "
        << Fmt("%.3f ms", p.data_parallel_ms.value_or(0))
        << " exposed data-parallel sync and optimizer step)\n";
  }
  if (p.tokens_per_s_per_gpu) {
    out << "per GPU              " << Fmt("%.1f tokens/s", *p.tokens_per_s_per_gpu) << ", "
        << Fmt("%.1f model TFLOP/s", p.model_tflops_per_gpu.value_or(0)) << "\n";
  }
  const std::string device_peak = DevicePeakLine(plan);
  if (!device_peak.empty()) out << "device peak memory   " << device_peak << "\n";
  out << "bottleneck           stage " << p.bottleneck_stage << ", "
      << Fmt("%.3f ms", p.max_stage_ms) << " forward + backward per micro-batch\n";
  if (baseline != nullptr) {
    const Prediction& b = baseline->predicted;
    out << "versus uniform       bottleneck " << Fmt("%.3f", b.max_stage_ms) << " -> "
        << Fmt("%.3f ms", p.max_stage_ms) << " (" << Change(b.max_stage_ms, p.max_stage_ms)
        << "), step time " << Fmt("%.3f", b.step_time_ms) << " -> "
        << Fmt("%.3f ms", p.step_time_ms) << " (" << Change(b.step_time_ms, p.step_time_ms)
        << ")";
    if (!StagesOverLimit(*baseline).empty()) out << "; uniform exceeds the memory limit";
    out << "\n";
  }
  const std::vector<int> over = StagesOverLimit(plan);
  if (!over.empty()) {
    out << "warning              " << over.size() << " stage(s) exceed the memory limit\n";
  }
  return out.str();
}

std::string PlanMarkdown(const Plan& plan, const Plan* baseline) {
  std::ostringstream out;
  out << "**pp-partition plan**: " << Header(plan) << "; method `" << plan.method
      << "`, objective `" << plan.objective << "`\n\n";
  out << "| stage | layers | names | fwd ms | bwd ms | peak memory | load |\n";
  out << "|---:|---|---|---:|---:|---|---:|\n";
  for (const StagePlan& s : plan.stages) {
    const double load = plan.predicted.max_stage_ms > 0
                            ? (s.forward_ms + s.backward_ms) / plan.predicted.max_stage_ms
                            : 0;
    out << "| " << StageLabel(s) << " | " << Range(s) << " | " << Names(s) << " | "
        << Fmt("%.3f", s.forward_ms) << " | " << Fmt("%.3f", s.backward_ms) << " | "
        << Memory(s, plan) << " | " << Fmt("%.0f%%", 100 * load) << " |\n";
  }
  const Prediction& p = plan.predicted;
  out << "\n| figure | value |\n|---|---:|\n";
  out << "| step time | " << Fmt("%.3f ms", p.step_time_ms) << " |\n";
  out << "| bubble ratio | " << Percent(p.bubble_ratio) << " |\n";
  out << "| throughput | " << Fmt("%.1f samples/s", p.throughput_samples_per_s) << " |\n";
  if (plan.parallelism) out << "| parallelism | " << LayoutLine(*plan.parallelism) << " |\n";
  if (p.batch_time_ms) out << "| time per batch | " << Fmt("%.3f ms", *p.batch_time_ms) << " |\n";
  if (p.tokens_per_s_per_gpu) {
    out << "| tokens/s per GPU | " << Fmt("%.1f", *p.tokens_per_s_per_gpu) << " |\n";
    out << "| model TFLOP/s per GPU | " << Fmt("%.1f", p.model_tflops_per_gpu.value_or(0))
        << " |\n";
  }
  const std::string device_peak = DevicePeakLine(plan);
  if (!device_peak.empty()) out << "| device peak memory | " << device_peak << " |\n";
  out << "| bottleneck | stage " << p.bottleneck_stage << ", " << Fmt("%.3f ms", p.max_stage_ms)
      << " |\n";
  if (baseline != nullptr) {
    out << "| uniform step time | " << Fmt("%.3f ms", baseline->predicted.step_time_ms) << " ("
        << Change(baseline->predicted.step_time_ms, p.step_time_ms) << ") |\n";
  }
  return out.str();
}

std::string ProfileText(const Profile& profile) {
  std::ostringstream out;
  out << "profile: " << profile.model << ", " << profile.backend << " backend, "
      << profile.device.name << " (" << FormatBytes(profile.device.memory_bytes) << "), "
      << DTypeName(profile.dtype) << ", micro-batch " << profile.micro_batch_size << "\n";
  out << "link: " << Fmt("%.3g", profile.link.bandwidth_bytes_per_s / 1e9) << " GB/s, "
      << Fmt("%.3f ms", profile.link.latency_ms) << " latency\n\n";
  out << Pad("#", 6) << Pad("layer", 20) << Pad("op", 19) << Pad("fwd ms", 11, true)
      << Pad("bwd ms", 11, true) << Pad("params", 12, true) << Pad("activations", 13, true)
      << Pad("output", 12, true) << "\n";
  double f = 0, b = 0;
  for (size_t i = 0; i < profile.layers.size(); ++i) {
    const LayerProfile& l = profile.layers[i];
    out << Pad(std::to_string(i), 6) << Pad(Abbreviate(l.name, 18), 20) << Pad(l.op, 19)
        << Pad(Fmt("%.4f", l.forward_ms), 11, true) << Pad(Fmt("%.4f", l.backward_ms), 11, true)
        << Pad(FormatBytes(l.param_bytes), 12, true)
        << Pad(FormatBytes(l.activation_bytes), 13, true)
        << Pad(FormatBytes(l.output_bytes), 12, true) << "\n";
    f += l.forward_ms;
    b += l.backward_ms;
  }
  out << "\ntotal forward " << Fmt("%.3f ms", f) << ", backward " << Fmt("%.3f ms", b)
      << " per micro-batch\n";
  for (const LayerProfile& l : profile.layers) {
    if (l.tied_to.empty()) continue;
    out << l.name << " is tied to " << l.tied_to << ": " << FormatBytes(l.tied_param_bytes)
        << " of its params are " << l.tied_to << "'s, held once where one stage has both\n";
  }
  return out.str();
}

std::string TimelineText(const Plan& plan, const Timeline& t) {
  std::ostringstream out;
  out << "simulate: " << Header(plan) << "\n\n";
  out << Pad("stage", 6) << Pad("busy ms", 12, true) << Pad("idle ms", 12, true)
      << Pad("bubble", 10, true) << "  ops\n";
  std::vector<std::string> orders(t.num_devices);
  for (const TimedOp& op : t.ops) {
    std::string& o = orders[op.device];
    if (o.size() < 60) o += std::string(o.empty() ? "" : " ") + OpLabel(plan, op.op);
    else if (o.back() != '.') o += " ...";
  }
  for (int s = 0; s < t.num_devices; ++s) {
    const double idle = t.step_time_ms - t.busy_ms[s];
    out << Pad(std::to_string(s), 6) << Pad(Fmt("%.3f", t.busy_ms[s]), 12, true)
        << Pad(Fmt("%.3f", idle), 12, true)
        << Pad(Percent(t.step_time_ms > 0 ? idle / t.step_time_ms : 0), 10, true) << "  "
        << orders[s] << "\n";
  }
  out << "\nstep time     " << Fmt("%.3f ms", t.step_time_ms) << "\n";
  out << "bubble ratio  " << Percent(t.bubble_ratio) << "\n";
  out << "bubble/ideal  " << Percent(t.bubble_over_ideal) << "\n";
  out << "throughput    "
      << Fmt("%.1f samples/s", t.step_time_ms > 0 ? 1000.0 * plan.num_micro_batches *
                                                        plan.micro_batch_size / t.step_time_ms
                                                  : 0)
      << "\n";
  return out.str();
}

Json TimelineJson(const Plan& plan, const Timeline& t) {
  Json doc;
  doc["model"] = plan.model;
  doc["schedule"] = plan.schedule;
  doc["num_stages"] = plan.num_stages;
  doc["num_micro_batches"] = plan.num_micro_batches;
  doc["step_time_ms"] = t.step_time_ms;
  doc["bubble_ratio"] = t.bubble_ratio;
  doc["bubble_over_ideal"] = t.bubble_over_ideal;
  doc["throughput_samples_per_s"] =
      t.step_time_ms > 0
          ? 1000.0 * plan.num_micro_batches * plan.micro_batch_size / t.step_time_ms
          : 0.0;
  Json stages = Json::array();
  for (int s = 0; s < t.num_devices; ++s) {
    stages.push_back({{"index", s},
                      {"busy_ms", t.busy_ms[s]},
                      {"bubble_ratio", t.step_time_ms > 0 ? 1 - t.busy_ms[s] / t.step_time_ms : 0.0}});
  }
  doc["stages"] = std::move(stages);
  Json ops = Json::array();
  for (const TimedOp& op : t.ops) {
    Json o = {{"stage", op.device},
              {"op", std::string(1, OpKindLetter(op.op.kind))},
              {"micro_batch", op.op.micro_batch},
              {"ready_ms", op.ready_ms},
              {"start_ms", op.start_ms},
              {"end_ms", op.end_ms}};
    if (plan.virtual_stages > 1) o["chunk"] = op.op.chunk;
    ops.push_back(std::move(o));
  }
  doc["ops"] = std::move(ops);
  return doc;
}

Json TimelineTrace(const Plan& plan, const Timeline& t, const std::string& process) {
  Json events = Json::array();
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 0},
                    {"args", {{"name", process + ": " + plan.model}}}});
  for (int s = 0; s < t.num_devices; ++s) {
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", s},
                      {"args", {{"name", "stage " + std::to_string(s)}}}});
  }
  for (const TimedOp& op : t.ops) {
    events.push_back({{"name", OpLabel(plan, op.op)},
                      {"cat", OpCategory(op.op.kind)},
                      {"ph", "X"},
                      {"pid", 0},
                      {"tid", op.device},
                      {"ts", op.start_ms * 1000.0},
                      {"dur", (op.end_ms - op.start_ms) * 1000.0},
                      {"args", {{"micro_batch", op.op.micro_batch}}}});
  }
  Json doc;
  doc["traceEvents"] = std::move(events);
  doc["displayTimeUnit"] = "ms";
  return doc;
}

}  // namespace pp
