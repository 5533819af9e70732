// pp-partition plan MODEL.json|PROFILE.json --stages P --micro-batches M [...]
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "core/units.h"
#include "executor/schedule.h"
#include "partitioner/compare.h"
#include "partitioner/methods.h"
#include "partitioner/plan_inputs.h"
#include "partitioner/planner.h"
#include "profiler/device_table.h"
#include "tool/command.h"
#include "tool/compare_report.h"
#include "tool/plan_search.h"
#include "tool/report.h"

namespace pp {
namespace {

struct PlanFlags {
  std::string input;
  std::string stages_text;  // P, or "auto" for the search
  int stages = 0;
  int gpus_total = 0;
  int64_t global_batch = 0;
  std::string device_types;
  int gpus_per_node = 0;
  std::string inter_node_link;
  int micro_batches = 0;
  int virtual_stages = 2;
  CLI::Option* virtual_stages_option = nullptr;
  std::string schedule = "1f1b";
  CLI::Option* schedule_option = nullptr;
  std::string method = "dp";
  std::string objective = "step";
  double step_budget_s = 1.0;
  CLI::Option* step_budget_option = nullptr;
  CLI::Option* recompute_unit_option = nullptr;
  CLI::Option* objective_option = nullptr;
  std::string boundaries;
  std::string optimizer = "adam";
  std::string memory_limit;
  std::string recompute = "none";
  std::string recompute_unit = "stage";
  int recompute_blocks = 0;
  std::vector<std::string> recompute_modules;
  std::string format = "text";
  std::string output;
  std::string device = "h100";
  CLI::Option* device_option = nullptr;
  std::string device_file;
  std::vector<std::string> profile_paths;
  int64_t micro_batch_size = 0;
  std::string dtype;
  std::string compare_to;
  std::string tolerance = "2%";
  // The layout beside the pipeline (--tp, --cp, --ep, --zero, --etp); given ones are counted.
  int tp = 1, cp = 1, ep = 1, zero = 0, etp = 0;
  // How the training software runs the layout (--attention, --sequence-parallel,
  // --overlap-grad-reduce, --overlap-expert-comm and the rest ApplySoftware reads); given ones
  // count as layout flags too.
  std::string wgrad_accumulation = "fused", pipeline_scatter_gather = "off",
              overlap_tp_dgrad = "off", cross_entropy = "fused", fp32_grad_copy = "off",
              ddp_bucket_copy = "off";
  std::string attention = "fused", sequence_parallel = "on", overlap_grad_reduce = "on",
              overlap_expert_comm = "off", moe_dispatcher = "alltoall";
  std::vector<CLI::Option*> layout_options;
  CLI::Option* gpus_per_node_option = nullptr;
  // Whether any layout flag was given (then the plan has a layout).
  bool LayoutGiven() const {
    for (const CLI::Option* o : layout_options) {
      if (o->count() > 0) return true;
    }
    return false;
  }
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
      return Status::Error("--boundaries: " + Quote(item) +
                           " is not a layer index (example: --boundaries 5,10,15)");
    }
    out.push_back(static_cast<int>(value));
  }
  if (out.empty()) return Status::Error("--boundaries: give at least one layer index");
  return out;
}

// --stages: a count, or "auto" (0 here).
Result<int> ParseStages(const std::string& text) {
  if (text.empty() || text == "auto") return 0;
  size_t used = 0;
  long value = 0;
  try {
    value = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || value < 1 || value > 100000) {
    return Status::Error("--stages: " + Quote(text) +
                         " is neither a stage count from 1 to 100000 nor auto");
  }
  return static_cast<int>(value);
}

int RunOne(const PlanFlags& f, std::optional<ParallelLayout> layout = std::nullopt);

// The software settings of the flags on `layout`.
void ApplySoftware(const PlanFlags& f, ParallelLayout* layout) {
  layout->fused_attention = f.attention == "fused";
  layout->sequence_parallel = f.sequence_parallel == "on";
  layout->overlap_grad_reduce = f.overlap_grad_reduce == "on";
  layout->fused_wgrad_accumulation = f.wgrad_accumulation == "fused";
  layout->pipeline_scatter_gather = f.pipeline_scatter_gather == "on";
  layout->overlap_tp_dgrad = f.overlap_tp_dgrad == "on";
  layout->fused_cross_entropy = f.cross_entropy == "fused";
  layout->fp32_grad_copy = f.fp32_grad_copy == "on";
  layout->ddp_bucket_copy = f.ddp_bucket_copy == "on";
  layout->overlap_expert_comm = f.overlap_expert_comm == "on";
  layout->flex_dispatcher = f.moe_dispatcher == "flex";
}

// What Megatron-LM requires of its expert all-to-all overlap (megatron/core/transformer/
// transformer_config.py): no recomputation but selective of modules other than moe, expert
// parallelism, virtual stages when pipelined. Ok when the overlap is off. The search
// (`search`) checks only the recomputation flags: it runs the overlap where each candidate's
// degrees and schedule allow.
Status CheckExpertOverlap(const PlanFlags& f, bool search = false) {
  if (f.overlap_expert_comm != "on") return Status::Ok();
  if (f.recompute != "none") {
    // CLI11 checked the unit; bad module names are refused where the request is made.
    const RecomputeUnit unit = ParseRecomputeUnit(f.recompute_unit).value_or(RecomputeUnit::kStage);
    std::string unused;
    const RecomputeModules modules = f.recompute_modules.empty()
                                         ? RecomputeModules::Default()
                                         : ParseRecomputeModules(f.recompute_modules, &unused)
                                               .value_or(RecomputeModules::Default());
    if (!ExpertOverlapAllowsRecompute(unit, modules)) {
      return Status::Error(
          unit != RecomputeUnit::kSelective
              ? "--overlap-expert-comm on does not go with --recompute " + f.recompute + " by " +
                    f.recompute_unit +
                    " (Megatron-LM runs the overlap without recomputation, or with "
                    "--recompute-unit selective)"
              : std::string("--overlap-expert-comm on does not go with --recompute-modules moe "
                            "(Megatron-LM overlaps the experts' all-to-all only outside a "
                            "recomputed MoE layer)"));
    }
  }
  if (search) return Status::Ok();
  if (f.ep < 2) {
    return Status::Error(
        "--overlap-expert-comm on needs --ep 2 or more: it hides the experts' "
        "all-to-all");
  }
  if (f.stages > 1 && f.schedule != "interleaved") {
    return Status::Error("--overlap-expert-comm on with --stages " + std::to_string(f.stages) +
                         " needs --schedule interleaved (Megatron-LM runs the overlap in a "
                         "pipeline only with virtual stages)");
  }
  return Status::Ok();
}

// --overlap-tp-dgrad on hides the input gradient's reductions under the weight gradients that
// a full backward runs right after; a schedule that splits the backward runs them apart.
Status CheckTpDgradOverlap(const PlanFlags& f) {
  if (f.overlap_tp_dgrad != "on") return Status::Ok();
  const ScheduleKind* kind = FindScheduleKind(f.schedule);
  if (kind != nullptr && kind->traits().splits_backward) {
    return Status::Error("--overlap-tp-dgrad on needs a full backward; --schedule " + f.schedule +
                         " runs the weight gradients apart from the input gradients");
  }
  return Status::Ok();
}

// --stages P with a layout: dp = G / (P x tp x cp) (G defaults to P x tp x cp: dp 1), and with
// --global-batch N the micro-batch count N / (dp x micro-batch size).
int RunLayout(PlanFlags f) {
  if (f.stages < 1) return Fail("--stages: give a stage count with --tp/--cp/--ep/--zero");
  if (!f.device_types.empty()) {
    return Fail("--device-types does not go with a layout (--tp, --cp, --ep, --zero, "
                "--gpus-total)");
  }
  if (!f.inter_node_link.empty()) {
    return Fail("--inter-node-link does not go with a layout; the data and pipeline groups use "
                "the device's node and network bus bandwidths (--gpus-per-node)");
  }
  if (f.cp > 1 && f.attention == "unfused") {
    return Fail("--cp " + std::to_string(f.cp) + " needs --attention fused: context parallelism "
                "merges each block of K/V into the fused kernel's running softmax statistics");
  }
  if (Status overlap = CheckExpertOverlap(f); !overlap.ok()) return Fail(overlap);
  if (Status overlap = CheckTpDgradOverlap(f); !overlap.ok()) return Fail(overlap);
  ParallelLayout layout;
  layout.tp = f.tp;
  layout.cp = f.cp;
  layout.ep = f.ep;
  layout.etp = EtpField(f.etp, f.tp);
  layout.zero = f.zero;
  layout.pp = f.stages;
  ApplySoftware(f, &layout);
  if (f.gpus_per_node != 0) layout.gpus_per_node = f.gpus_per_node;
  const int64_t ranks = int64_t{f.stages} * f.tp * f.cp;
  const int64_t gpus = f.gpus_total != 0 ? f.gpus_total : ranks;
  if (gpus % ranks != 0) {
    return Fail("--gpus-total " + std::to_string(gpus) + " is not a multiple of --stages x --tp x "
                "--cp = " + std::to_string(ranks));
  }
  layout.dp = static_cast<int>(gpus / ranks);
  if (!ExpertGridFits(layout)) {
    const int64_t stage = int64_t{layout.tp} * layout.cp * layout.dp;
    return Fail(layout.etp == 0
                    ? "--ep " + std::to_string(f.ep) + " must divide dp x cp = " +
                          std::to_string(int64_t{layout.dp} * layout.cp) +
                          " (or give --etp 1 to fold the experts over the tensor ranks too)"
                    : "--ep " + std::to_string(f.ep) + " x --etp " + std::to_string(f.etp) +
                          " must divide tp x cp x dp = " + std::to_string(stage));
  }
  if (f.global_batch != 0) {
    // The micro-batch size: the flag's, else the model's (read once here).
    int64_t b = f.micro_batch_size;
    if (b == 0) {
      Result<Json> doc = ReadJsonFile(f.input);
      if (!doc.ok()) return Fail(doc.status());
      Result<Model> model = ModelFromJson(*doc);
      if (!model.ok()) {
        return Fail(ShownPath(f.input) + ": --global-batch needs a model file (or give "
                    "--micro-batch-size and --micro-batches)");
      }
      b = model->input.micro_batch_size;
    }
    const int64_t per_step = int64_t{layout.dp} * b;
    if (f.global_batch % per_step != 0) {
      return Fail("--global-batch " + std::to_string(f.global_batch) + " is not a multiple of "
                  "dp x micro-batch size = " + std::to_string(layout.dp) + " x " +
                  std::to_string(b));
    }
    const int64_t m = f.global_batch / per_step;
    if (m > kMaxMicroBatches) return Fail("--global-batch gives more than 2^20 micro-batches");
    if (f.micro_batches != 0 && f.micro_batches != m) {
      return Fail("--micro-batches " + std::to_string(f.micro_batches) + " disagrees with "
                  "--global-batch " + std::to_string(f.global_batch) + " / (dp " +
                  std::to_string(layout.dp) + " x micro-batch size " + std::to_string(b) +
                  ") = " + std::to_string(m));
    }
    f.micro_batches = static_cast<int>(m);
  }
  if (f.micro_batches == 0) return Fail("--micro-batches or --global-batch is required");
  return RunOne(f, layout);
}

// --schedule names a registered kind.
Status CheckScheduleFlag(const std::string& name) {
  if (FindScheduleKind(name) != nullptr) return Status::Ok();
  return Status::Error("--schedule " + Quote(name) + " is unknown (known: " + ScheduleNames() +
                       ")");
}

// --device-types TYPE:COUNT,... as one type per device, in pipeline order.
Result<std::vector<std::string>> ParseDeviceTypes(const std::string& text) {
  std::vector<std::string> types;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t colon = item.find(':');
    const std::string type = item.substr(0, colon);
    long count = 1;
    if (colon != std::string::npos) {
      size_t used = 0;
      try {
        count = std::stol(item.substr(colon + 1), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != item.size() - colon - 1 || count < 1 || count > 1 << 16) {
        return Status::Error("--device-types: " + Quote(item) +
                             " must be TYPE:COUNT with a positive count");
      }
    }
    if (type.empty()) return Status::Error("--device-types: empty device type");
    for (long i = 0; i < count; ++i) types.push_back(type);
  }
  if (types.empty()) return Status::Error("--device-types names no device");
  return types;
}

// --device-types, and --gpus-per-node K with --inter-node-link BANDWIDTH,LATENCY, as a layout
// whose profiles LoadPlanInputs loads.
Result<DeviceLayout> DeviceLayoutFromFlags(const PlanFlags& f) {
  DeviceLayout layout;
  if (!f.device_types.empty()) {
    Result<std::vector<std::string>> types = ParseDeviceTypes(f.device_types);
    if (!types.ok()) return types.status();
    layout.stage_type = std::move(*types);
  }
  if (f.gpus_per_node != 0 || !f.inter_node_link.empty()) {
    if (f.gpus_per_node < 1 || f.inter_node_link.empty()) {
      return Status::Error("--gpus-per-node K (at least 1) and --inter-node-link BANDWIDTH,LATENCY "
                           "go together");
    }
    const size_t comma = f.inter_node_link.find(',');
    Link link;
    bool ok = comma != std::string::npos;
    try {
      size_t used_b = 0, used_l = 0;
      if (ok) {
        link.bandwidth_bytes_per_s = std::stod(f.inter_node_link.substr(0, comma), &used_b);
        link.latency_ms = std::stod(f.inter_node_link.substr(comma + 1), &used_l);
        ok = used_b == comma && used_l == f.inter_node_link.size() - comma - 1;
      }
    } catch (const std::exception&) {
      ok = false;
    }
    if (!ok || !(link.bandwidth_bytes_per_s > 0) || !std::isfinite(link.bandwidth_bytes_per_s) ||
        !(link.latency_ms >= 0) || !std::isfinite(link.latency_ms)) {
      return Status::Error("--inter-node-link must be BANDWIDTH,LATENCY in bytes/s and ms, e.g. "
                           "25e9,0.005 (got " + Quote(f.inter_node_link) + ")");
    }
    layout.gpus_per_node = f.gpus_per_node;
    layout.inter_node_link = link;
  }
  return layout;
}

// The request's levers shared by one plan and the search, and where its profiles come from.
Result<PlanRequest> RequestFromFlags(const PlanFlags& f, PlanInputs* inputs) {
  PlanRequest request;
  request.schedule = f.schedule;
  request.virtual_stages = f.virtual_stages;
  request.num_micro_batches = f.micro_batches;
  request.num_stages = f.stages;
  request.method = f.method;
  request.objective = f.objective;
  request.step_budget_s = f.step_budget_s;
  request.recompute = f.recompute;
  // CLI11 checks the value.
  request.recompute_unit = ParseRecomputeUnit(f.recompute_unit).value_or(RecomputeUnit::kStage);
  if ((request.recompute_unit == RecomputeUnit::kBlock) != (f.recompute_blocks > 0)) {
    return Status::Error(
        "--recompute-unit block takes --recompute-blocks K (the transformer "
        "blocks each recomputing stage recomputes), and --recompute-blocks "
        "goes only with it");
  }
  request.recompute_blocks = f.recompute_blocks;
  if (!f.recompute_modules.empty()) {
    // The search without a unit tries selective recomputation of these modules itself.
    const bool searched = f.stages_text == "auto" && f.recompute_unit_option->count() == 0;
    if (request.recompute_unit != RecomputeUnit::kSelective && !searched) {
      return Status::Error(
          "--recompute-modules goes only with --recompute-unit selective (the modules it "
          "recomputes), or with --stages auto, whose search then tries them");
    }
    std::string error;
    const std::optional<RecomputeModules> modules =
        ParseRecomputeModules(f.recompute_modules, &error);
    if (!modules) return Status::Error("--recompute-modules: " + error);
    request.recompute_modules = *modules;
  }
  if (auto o = ParseOptimizer(f.optimizer)) {
    request.optimizer = *o;
  } else {
    return Status::Error("--optimizer must be adam, sgd or none (got " +
                         Quote(f.optimizer) + ")");
  }
  if (!f.memory_limit.empty()) {
    Result<std::optional<uint64_t>> limit = ParseByteSize(f.memory_limit);
    if (!limit.ok()) return Status::Error("--memory-limit: " + limit.message());
    request.memory_limit = *limit;
  }
  Result<DeviceLayout> layout = DeviceLayoutFromFlags(f);
  if (!layout.ok()) return layout.status();
  request.devices = std::move(*layout);
  inputs->path = f.input;
  inputs->profile.device = f.device;
  inputs->profile.device_given = f.device_option->count() > 0;
  if (!f.device_file.empty() &&
      (inputs->profile.device_given || !f.device_types.empty() || !f.profile_paths.empty())) {
    return Status::Error("--device-file is the one device to profile on; drop --device, "
                         "--device-types and --profile");
  }
  inputs->profile.device_file = f.device_file;
  if (f.micro_batch_size > 0) inputs->profile.micro_batch_size = f.micro_batch_size;
  if (!f.dtype.empty()) inputs->profile.dtype = f.dtype;
  inputs->profile_paths = f.profile_paths;
  inputs->memory_limit_given = !f.memory_limit.empty();
  return request;
}

// --stages auto over the layout (partitioner/layout_search.h): the levers given pin theirs.
int RunLayoutSearch(const PlanFlags& f) {
  if (!f.device_types.empty() || !f.profile_paths.empty() || !f.boundaries.empty() ||
      f.micro_batches != 0) {
    return Fail("--stages auto over the layout profiles the model analytically and chooses the "
                "micro-batches; drop --device-types, --profile, --boundaries and "
                "--micro-batches");
  }
  if (!f.compare_to.empty()) {
    return Fail("--stages auto over the layout compares nothing; drop --compare-to");
  }
  if (f.recompute == "auto") {
    return Fail("--stages auto over the layout chooses recomputation itself; give --recompute "
                "all to recompute every stage, or leave it out");
  }
  if (Status overlap = CheckExpertOverlap(f, true); !overlap.ok()) return Fail(overlap);
  if (Status overlap = CheckTpDgradOverlap(f); !overlap.ok()) return Fail(overlap);
  PlanInputs inputs;
  PlanFlags plain = f;
  plain.gpus_per_node = 0;
  plain.micro_batch_size = 0;
  Result<PlanRequest> request = RequestFromFlags(plain, &inputs);
  if (!request.ok()) return Fail(request.status());
  Result<std::string> origin = LoadPlanInputs(inputs, &*request);
  if (!origin.ok()) return Fail(origin.status());
  if (!request->model) return Fail(f.input + ": --stages auto needs a model file");
  std::shared_ptr<const LoadedDevice> file;
  Result<const DeviceSpec*> found = ResolveDevice(inputs.profile, &file);
  if (!found.ok()) return Fail(found.status());
  const DeviceSpec* device = *found;
  request->step_budget_s = f.step_budget_option->count() > 0 ? f.step_budget_s : 2.0;
  if (!inputs.memory_limit_given) request->memory_limit = device->memory_bytes;
  LeverSpace space;
  space.gpus_total = f.gpus_total;
  space.global_batch = f.global_batch;
  space.gpus_per_node = f.gpus_per_node != 0 ? f.gpus_per_node : 8;
  if (f.layout_options[0]->count() > 0) space.tp = {f.tp};
  if (f.layout_options[1]->count() > 0) space.cp = {f.cp};
  if (f.layout_options[2]->count() > 0) space.ep = {f.ep};
  if (f.layout_options[3]->count() > 0) space.zero = {f.zero};
  if (f.layout_options[7]->count() > 0) space.etp = {f.etp};
  if (f.micro_batch_size > 0) space.micro_batch_sizes = {f.micro_batch_size};
  ApplySoftware(f, &space.software);
  space.method = f.method;
  space.recompute_all = f.recompute == "all";
  space.choose_recompute_unit = f.recompute_unit_option->count() == 0;
  if (f.virtual_stages_option->count() > 0) space.virtual_stages = {f.virtual_stages};
  if (f.schedule_option->count() > 0) {
    if (Status known = CheckScheduleFlag(f.schedule); !known.ok()) return Fail(known);
    space.schedules = {f.schedule};
  }
  return RunLayoutSearchReport(*request, *device, space, f.format, f.output);
}

int RunSearch(const PlanFlags& f) {
  if (f.gpus_total < 1 || f.global_batch < 1) {
    return Fail("--stages auto needs --gpus-total G and --global-batch N");
  }
  if (f.LayoutGiven() || (f.gpus_per_node != 0 && f.inter_node_link.empty())) {
    return RunLayoutSearch(f);
  }
  if (f.micro_batches != 0 || f.micro_batch_size != 0 || !f.boundaries.empty()) {
    return Fail("--stages auto chooses the micro-batches itself; drop --micro-batches, "
                "--micro-batch-size and --boundaries");
  }
  if (f.method != "dp" || !f.compare_to.empty()) {
    return Fail("--stages auto searches with dp; drop --method and --compare-to");
  }
  PlanInputs inputs;
  Result<PlanRequest> request = RequestFromFlags(f, &inputs);
  if (!request.ok()) return Fail(request.status());
  request->num_stages = 0;  // the search's (or the --device-types list's) to choose
  request->recompute = "none";
  // --step-budget is the whole search's here (default 2 s), shared out over the candidates.
  request->step_budget_s = f.step_budget_option->count() > 0 ? f.step_budget_s : 2.0;
  SearchSpace space;
  space.gpus_total = f.gpus_total;
  space.global_batch = f.global_batch;
  if (f.schedule_option->count() > 0) {  // only this schedule
    if (Status known = CheckScheduleFlag(f.schedule); !known.ok()) return Fail(known);
    space.schedules = {f.schedule};
  }
  request->search = std::move(space);
  Result<std::string> origin = LoadPlanInputs(inputs, &*request);
  if (!origin.ok()) return Fail(origin.status());
  return RunPlanSearch(*request, f.format, f.output);
}

int RunPlan(const PlanFlags& f) {
  if (Status s = CheckOutputPath(f.output); !s.ok()) return Fail(s);  // before any work
  Result<int> stages = ParseStages(f.stages_text);
  if (!stages.ok()) return Fail(stages.status());
  if (f.stages_text == "auto") return RunSearch(f);
  PlanFlags g = f;
  g.stages = *stages;
  if (f.LayoutGiven() || f.gpus_total != 0 || f.global_batch != 0) return RunLayout(g);
  if (f.micro_batches == 0) return Fail("--micro-batches is required (or use --stages auto)");
  return RunOne(g);
}

int RunOne(const PlanFlags& f, std::optional<ParallelLayout> layout) {
  if (Status known = CheckScheduleFlag(f.schedule); !known.ok()) return Fail(known);
  PlanInputs inputs;
  PlanFlags plain = f;
  if (layout) plain.gpus_per_node = 0;  // the layout's, not a multi-node pipeline's
  Result<PlanRequest> made = RequestFromFlags(plain, &inputs);
  if (!made.ok()) return Fail(made.status());
  PlanRequest& request = *made;
  inputs.layout = layout;
  request.layout = layout;
  Result<std::string> origin = LoadPlanInputs(inputs, &request);
  if (!origin.ok()) return Fail(origin.status());
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

  if (!f.boundaries.empty()) {
    Result<std::vector<int>> b = ParseBoundaries(f.boundaries);
    if (!b.ok()) return Fail(b.status());
    // Chunks per device of the schedule (1, or V for interleaved, 2 for zbv).
    const ScheduleKind* kind = FindScheduleKind(f.schedule);  // known: checked above
    const ScheduleOptions options{f.virtual_stages};
    if (Status s = kind->CheckOptions(options); !s.ok()) return Fail(s);
    const int per_device = kind->ChunksPerDevice(options);
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
    request.num_stages = f.stages != 0 ? f.stages
                                       : static_cast<int>(request.devices.stage_type.size());
    if (request.num_stages == 0) return Fail("--stages is required (or give --boundaries)");
  }

  Result<Plan> plan = MakePlan(request);
  if (!plan.ok()) return Fail(plan.status());
  if (plan->objective_bound && !plan->objective_bound->exact) {
    std::cerr << "pp-partition: warning: the step search ran out of its time budget; the plan's "
              << FormatMs(plan->predicted.step_time_ms) << " step is within "
              << FormatMs(plan->predicted.step_time_ms - plan->objective_bound->lower_bound_ms)
              << " of the optimum (proven lower bound "
              << FormatMs(plan->objective_bound->lower_bound_ms) << "; a larger --step-budget "
              << "may prove it)\n";
  }
  if (const ScheduleKind* kind = FindScheduleKind(request.schedule);
      kind != nullptr && kind->traits().splits_backward && !HasBackwardSplit(request.profile)) {
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
  for (int s : StagesOverLimit(*plan, device_memory)) {
    const StagePlan& st = plan->stages[s];
    std::cerr << "pp-partition: warning: stage " << s << " needs "
              << FormatBytes(st.device ? device_memory[*st.device] : st.peak_memory_bytes)
              << (st.device ? " with its device's other chunks" : "")
              << ", over the limit of "
              << FormatBytes(StageMemoryLimit(*plan, st).value_or(0))
              << "\n";
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
                              : PlanText(*plan, baseline.get(), *origin);
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
  sub.add_option("--stages", f->stages_text,
                 "Number of pipeline stages P, or auto to search depth, micro-batch size and "
                 "count, and schedule (with --gpus-total and --global-batch)");
  sub.add_option("--micro-batches", f->micro_batches, "Micro-batches per step M")
      ->check(CLI::Range(1, 1 << 20));
  sub.add_option("--gpus-total", f->gpus_total,
                 "GPUs G; with --stages P: dp = G / (P x tp x cp); --stages auto: depths P "
                 "divide G, with G/P data-parallel replicas")
      ->check(CLI::Range(1, 1 << 20));
  sub.add_option("--global-batch", f->global_batch,
                 "Samples per step N over all replicas; with --stages P the micro-batch count is "
                 "N / (dp x micro-batch size)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  f->layout_options = {
      sub.add_option("--tp", f->tp,
                     "Tensor-parallel degree (Megatron column/row splits with "
                     "sequence parallelism); the profile is one rank's")
          ->check(CLI::Range(1, 1 << 16)),
      sub.add_option("--cp", f->cp, "Context-parallel degree (the sequence split, ring K/V)")
          ->check(CLI::Range(1, 1 << 16)),
      sub.add_option("--ep", f->ep,
                     "Expert-parallel degree (MoE models; ep x etp divides tp x cp x dp)")
          ->check(CLI::Range(1, 1 << 16)),
      sub.add_option("--zero", f->zero,
                     "ZeRO stage over the data-parallel ranks: 0 (all-reduce), 1 (distributed "
                     "optimizer), 2 (and gradients), 3 (and parameters)")
          ->check(CLI::Range(0, 3)),
      sub.add_option("--attention", f->attention,
                     "Attention kernels of the layout: fused (flash-style, the default) or "
                     "unfused (scores, softmax and context as separate kernels)")
          ->check(CLI::IsMember({"fused", "unfused"})),
      sub.add_option("--sequence-parallel", f->sequence_parallel,
                     "Sequence parallelism with --tp > 1: on (the default) or off (all-reduces "
                     "and replicated norms and dropouts instead)")
          ->check(CLI::IsMember({"on", "off"})),
      sub.add_option("--overlap-grad-reduce", f->overlap_grad_reduce,
                     "Data-parallel gradient reduction under the last backward: on (the "
                     "default) or off (after the pipeline drains, whole)")
          ->check(CLI::IsMember({"on", "off"})),
      sub.add_option("--etp", f->etp,
                     "The routed experts' tensor-parallel degree (Megatron-LM's "
                     "--expert-tensor-parallel-size; default: as --tp); 1 folds the expert "
                     "group over the tensor ranks too")
          ->check(CLI::Range(1, 1 << 16)),
      sub.add_option("--overlap-expert-comm", f->overlap_expert_comm,
                     "The experts' all-to-all of one micro-batch under another's compute "
                     "(Megatron-LM's --overlap-moe-expert-parallel-comm; needs --ep > 1, no "
                     "recomputation, and virtual stages when pipelined): on, or off (the "
                     "default)")
          ->check(CLI::IsMember({"on", "off"})),
      sub.add_option("--moe-dispatcher", f->moe_dispatcher,
                     "The experts' token exchange: alltoall (the default; NCCL's all-to-all, "
                     "a message per expert copy) or flex (Megatron-LM's flex dispatcher with "
                     "DeepEP or HybridEP: a token once to each other node that hosts its "
                     "experts, fanned out over the node's bus there)")
          ->check(CLI::IsMember({"alltoall", "flex"})),
      sub.add_option("--wgrad-accumulation", f->wgrad_accumulation,
                     "Each micro-batch's weight gradients added to the accumulated ones inside "
                     "the weight-gradient product: fused (the default; Megatron-LM's "
                     "gradient accumulation fusion), or separate (a pass of their own, as "
                     "--no-gradient-accumulation-fusion)")
          ->check(CLI::IsMember({"fused", "separate"})),
      sub.add_option("--pipeline-scatter-gather", f->pipeline_scatter_gather,
                     "With --tp > 1 and --sequence-parallel off: each tensor rank sends its "
                     "share of a stage transfer and the next stage's tensor ranks all-gather "
                     "it (on; Megatron-LM's scatter/gather of 2021 and 2022), or each sends "
                     "the whole tensor (off, the default, as Megatron-Core)")
          ->check(CLI::IsMember({"on", "off"})),
      sub.add_option("--overlap-tp-dgrad", f->overlap_tp_dgrad,
                     "With --tp > 1: the all-reduce (or reduce-scatter) of qkv's and fc1's "
                     "input gradient under their weight-gradient products (on; Megatron-LM's "
                     "asynchronous tensor-parallel communication), or before them (off, the "
                     "default)")
          ->check(CLI::IsMember({"on", "off"})),
      sub.add_option("--cross-entropy", f->cross_entropy,
                     "The loss's cross entropy: fused (one kernel each way, the default; "
                     "Transformer Engine's parallel cross entropy) or unfused (Megatron-Core's "
                     "passes without --cross-entropy-loss-fusion: fp32 cast, max, shift, exp, "
                     "sum and division, the fp32 softmax kept)")
          ->check(CLI::IsMember({"fused", "unfused"})),
      sub.add_option("--fp32-grad-copy", f->fp32_grad_copy,
                     "With --zero 0, Adam and 16-bit weights: the optimizer step's fp32 copy "
                     "of every gradient, 4 bytes a parameter more (on; Megatron-LM's fp16 "
                     "optimizer of 2021), or none (off, the default)")
          ->check(CLI::IsMember({"on", "off"})),
      sub.add_option("--ddp-bucket-copy", f->ddp_bucket_copy,
                     "With --zero 0: PyTorch DistributedDataParallel's gradient buckets, a "
                     "second copy of the gradients (on; Megatron-LM's --DDP-impl torch), or "
                     "none (off, the default)")
          ->check(CLI::IsMember({"on", "off"}))};
  sub.add_option("--device-types", f->device_types,
                 "Devices in pipeline order, one per stage, e.g. h100:2,a100:2");
  sub.add_option("--gpus-per-node", f->gpus_per_node,
                 "GPUs per node: with --inter-node-link, boundaries between nodes use it; "
                 "without, the data and pipeline groups of a layout use the device's node or "
                 "network bandwidth, and --stages auto searches every lever (tp, cp, ep, etp, pp, "
                 "dp, micro-batch size, virtual stages, schedule, recomputation, ZeRO)");
  sub.add_option("--inter-node-link", f->inter_node_link,
                 "Inter-node link BANDWIDTH,LATENCY in bytes/s and ms, e.g. 25e9,0.005");
  f->schedule_option =
      sub.add_option("--schedule", f->schedule, "Pipeline schedule: " + ScheduleNames())
          ->capture_default_str();
  f->virtual_stages_option = sub.add_option("--virtual-stages", f->virtual_stages,
                 "interleaved: model chunks per device V (the model is cut into P*V chunks)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  sub.add_option("--method", f->method, "Partition method: " + PartitionMethodNames())
      ->capture_default_str();
  f->objective_option =
      sub.add_option("--objective", f->objective,
                     "step (least simulated step time, exact) | bottleneck (least max_stage_ms)")
          ->check(CLI::IsMember({"step", "bottleneck"}))
          ->capture_default_str();
  f->step_budget_option = sub.add_option(
                 "--step-budget", f->step_budget_s,
                 "Seconds the exact step search may take per plan (--stages auto: for the whole "
                 "search, default 2); past it the plan carries the best split found and a "
                 "proven lower bound")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  sub.add_option("--boundaries", f->boundaries,
                 "Evaluate this split: first layer index of stages 1..P-1, e.g. 5,10,15");
  sub.add_option("--optimizer", f->optimizer, "Training state per parameter: adam | sgd | none")
      ->capture_default_str();
  sub.add_option("--recompute", f->recompute,
                 "Activation recomputation per stage: none, all, or auto (the stages over their "
                 "memory limit without it); gpipe and 1f1b. With --stages auto over the layout "
                 "the search chooses; all makes every candidate recompute")
      ->check(CLI::IsMember({"none", "all", "auto"}));
  f->recompute_unit_option =
      sub.add_option(
             "--recompute-unit", f->recompute_unit,
             "What a recomputing stage keeps and runs again: stage (its input; the whole "
             "stage's forward at the start of each backward) or layer (every layer's input; "
             "each layer's forward just before its backward, as Megatron-LM's "
             "--recompute-num-layers 1) or block (so for the first --recompute-blocks "
             "transformer blocks of each stage only, as Megatron-LM's --recompute-method "
             "block), or selective (only some modules of each block, --recompute-modules: "
             "what they keep inside dropped and their forward run again, as Megatron-LM's "
             "--recompute-granularity selective). "
             "Left out with --stages auto over the layout, a candidate that does not fit "
             "without recomputation tries selective recomputation (of --recompute-modules, "
             "or core_attn), then the whole forward by stage or by layer, whichever fits it "
             "better")
          ->check(CLI::IsMember({"stage", "layer", "block", "selective"}))
          ->capture_default_str();
  sub.add_option("--recompute-modules", f->recompute_modules,
                 "With --recompute-unit selective (or --stages auto without a unit, whose "
                 "search tries them): the modules recomputed, by Megatron-LM's "
                 "names, comma-separated: core_attn (the default), layernorm, mla_up_proj, mlp "
                 "(a dense block's), moe, moe_act, shared_experts")
      ->delimiter(',');
  sub.add_option("--recompute-blocks", f->recompute_blocks,
                 "With --recompute-unit block: the transformer blocks K each recomputing "
                 "stage recomputes, its first K")
      ->check(CLI::Range(1, 100000));
  sub.add_option("--memory-limit", f->memory_limit,
                 "Per-stage memory limit, e.g. 80GiB, or none (default: the device's memory)");
  f->device_option =
      sub.add_option("--device", f->device, "Device for the analytic profile: h100, h200, a100, l40s")
          ->capture_default_str();
  sub.add_option("--device-file", f->device_file,
                 "A device file (pp-partition.device/v1, from profile --calibrate) instead of "
                 "--device");
  sub.add_option("--micro-batch-size", f->micro_batch_size, "Override the model's micro-batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub.add_option("--dtype", f->dtype, "Override the model's dtype: bf16 | fp32 | fp8");
  sub.add_option("--profile", f->profile_paths,
                 "A measured profile of MODEL.json to plan from (the plan keeps the model, so "
                 "`run` can train it); with --stages auto, repeat it: one per micro-batch size");
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
