#include "partitioner/planner.h"

#include <algorithm>
#include <limits>

#include "core/units.h"
#include "core/version.h"
#include "executor/schedule.h"
#include "partitioner/cost_model.h"
#include "partitioner/data_parallel.h"
#include "partitioner/model_flops.h"
#include "partitioner/methods.h"
#include "partitioner/recompute.h"
#include "partitioner/step_search.h"

namespace pp {
namespace {

Status CheckShape(const Profile& profile, int stages, int micro_batches, int chunks = 0) {
  const int n = static_cast<int>(profile.layers.size());
  if (stages < 1) return Status::Error("--stages must be at least 1");
  if (stages > n) {
    return Status::Error("--stages " + std::to_string(stages) + " is more than the model's " +
                         std::to_string(n) + " layers (every stage needs a layer)");
  }
  if (chunks > n) {
    return Status::Error("the schedule cuts the model into " + std::to_string(chunks) +
                         " chunks, more than its " + std::to_string(n) +
                         " layers (every chunk needs a layer)");
  }
  if (micro_batches < 1 || micro_batches > kMaxMicroBatches) {
    return Status::Error("--micro-batches must be between 1 and " +
                         std::to_string(kMaxMicroBatches));
  }
  return Status::Ok();
}

Status CheckBoundaries(const std::vector<int>& b, int stages, int layers) {
  if (static_cast<int>(b.size()) != stages - 1) {
    return Status::Error("--boundaries has " + std::to_string(b.size()) + " entries; " +
                         std::to_string(stages) + " stages need " + std::to_string(stages - 1));
  }
  int previous = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] <= previous || b[i] >= layers) {
      return Status::Error("--boundaries: entry " + std::to_string(i + 1) + " (" +
                           std::to_string(b[i]) + ") must be greater than " +
                           std::to_string(previous) + " and less than " +
                           std::to_string(layers) +
                           "; boundaries are the first layer of stages 1..p-1, increasing");
    }
    previous = b[i];
  }
  return Status::Ok();
}

// Whether every stage's profile has the I/W split.
bool AllSplit(const StageCosts& costs, int stages) {
  bool split = true;
  for (int s = 0; s < stages; ++s) split &= HasBackwardSplit(costs.stage_profile(s));
  return split;
}

// Stage (chunk) times for the simulator from a split. The input-gradient share is filled in
// only when the profile has it for every layer (`known_split`: AllSplit, when the caller has
// it). `recompute` (per stage, empty: none) adds one forward to a stage's backward.
ChunkTimes TimesOf(const StageCosts& costs, const std::vector<int>& boundaries,
                   const std::vector<char>& recompute = {},
                   std::optional<bool> known_split = std::nullopt,
                   const RecomputeInput& keep = {}) {
  ChunkTimes t;
  const int p = static_cast<int>(boundaries.size()) + 1;
  const bool split = known_split ? *known_split : AllSplit(costs, p);
  for (int s = 0; s < p; ++s) {
    const CostModel& cost = costs.stage(s);
    const Profile& profile = costs.stage_profile(s);
    const int first = s == 0 ? 0 : boundaries[s - 1];
    const int last = s + 1 == p ? cost.num_layers() - 1 : boundaries[s] - 1;
    t.forward_ms.push_back(cost.ForwardMs(first, last));
    const bool again = !recompute.empty() && recompute[s];
    t.backward_ms.push_back(cost.BackwardMs(first, last) +
                            (again ? RecomputeForwardMs(cost, first, last, keep) : 0.0));
    if (s + 1 < p) t.transfer_ms.push_back(cost.TransferMs(last, costs.link(s)));
    if (split) {
      // I's share of the chunk's backward, scaled so that I + W is exactly backward_ms.
      double input = 0, whole = 0;
      for (int i = first; i <= last; ++i) {
        input += *profile.layers[i].backward_input_ms;
        whole += *profile.layers[i].backward_input_ms + *profile.layers[i].backward_weight_ms;
      }
      const double b = t.backward_ms.back();
      t.backward_input_ms.push_back(whole > 0 ? b * (input / whole) : b / 2);
    }
  }
  return t;
}

// `times` with what the context's schedule pays per transfer (ChargeTransfers).
ChunkTimes Charged(const PlanContext& context, ChunkTimes times) {
  ChargeTransfers(context.schedule, &times);
  return times;
}

// Per-layer lower bounds on a stage's I and W as TimesOf derives them: a stage's I is
// B x sum I / sum (I + W), and sum B / sum (I + W) is at least the least ratio k of a layer's
// backward to its I + W, so k x I and k x W of each layer bound the stage's from below (over
// every device type: the least). Empty when some profile lacks the split (even halves).
void SplitLowerBounds(const StageCosts& costs, int stages, std::vector<double>* input,
                      std::vector<double>* weight) {
  input->clear();
  weight->clear();
  for (int s = 0; s < stages; ++s) {
    if (!HasBackwardSplit(costs.stage_profile(s))) return;
  }
  double k = std::numeric_limits<double>::infinity();
  for (int s = 0; s < stages; ++s) {
    for (const LayerProfile& l : costs.stage_profile(s).layers) {
      const double whole = *l.backward_input_ms + *l.backward_weight_ms;
      if (whole > 0) k = std::min(k, l.backward_ms / whole);
    }
  }
  if (!(k < std::numeric_limits<double>::infinity())) k = 0;
  const size_t n = costs.stage_profile(0).layers.size();
  input->assign(n, std::numeric_limits<double>::infinity());
  weight->assign(n, std::numeric_limits<double>::infinity());
  for (int s = 0; s < stages; ++s) {
    const std::vector<LayerProfile>& layers = costs.stage_profile(s).layers;
    for (size_t l = 0; l < n; ++l) {
      (*input)[l] = std::min((*input)[l], k * *layers[l].backward_input_ms);
      (*weight)[l] = std::min((*weight)[l], k * *layers[l].backward_weight_ms);
    }
  }
}

// The stage costs of `profile` under `layout` (nullopt: none): ZeRO 3's per-layer gathers in
// the layer times, the training state sharded over the data-parallel ranks.
Result<std::unique_ptr<StageCosts>> CostsUnder(const Profile& profile,
                                               const std::optional<ParallelLayout>& layout,
                                               const DeviceLayout& devices, Optimizer optimizer,
                                               int chunks, std::optional<uint64_t> memory_limit,
                                               const std::vector<int>& chunk_device,
                                               RecomputeModules modules) {
  if (!layout) {
    return StageCosts::Make(profile, devices, TrainingState(optimizer, profile.dtype), chunks,
                            memory_limit, chunk_device, modules);
  }
  return StageCosts::Make(WithParameterGathers(profile, *layout), devices,
                          TrainingState(optimizer, profile.dtype, *layout), chunks, memory_limit,
                          chunk_device, modules);
}

// The recomputation mode, checked against the schedule.
Result<RecomputeMode> RequestRecompute(const PlanRequest& request, const PlanContext& context) {
  std::optional<RecomputeMode> mode = ParseRecomputeMode(request.recompute);
  if (!mode) {
    return Status::Error("--recompute must be none, all or auto (got " + Quote(request.recompute) +
                         ")");
  }
  if (*mode != RecomputeMode::kNone && request.recompute_unit == RecomputeUnit::kSelective) {
    if (const auto missing = MissingModule(request.profile, request.recompute_modules)) {
      return Status::Error(
          *missing == RecomputeModule::kCoreAttn
              ? std::string("--recompute-unit selective needs the core attention's figures of an "
                            "analytic profile (core_attention_bytes); this profile has none")
              : "--recompute-modules " + std::string(RecomputeModuleName(*missing)) +
                    ": no layer of this profile has that module's figures (an analytic "
                    "profile's recompute_modules; the model has no such module)");
    }
  }
  if (*mode != RecomputeMode::kNone && !SupportsPerStageRecompute(context.schedule)) {
    return Status::Error("--recompute with schedule " + context.schedule.name +
                         " is not available yet");
  }
  // Which chunks of a device to recompute so that their sum fits is not one stage's choice.
  if (*mode == RecomputeMode::kAuto && context.num_chunks() != context.num_devices()) {
    return Status::Error("--recompute auto with schedule " + context.schedule.name +
                         " (several chunks per device) is not available yet; --recompute all "
                         "recomputes every chunk");
  }
  return *mode;
}

}  // namespace

Result<PlanContext> RequestContext(const PlanRequest& request) {
  PlanShape shape{request.schedule, request.num_stages, request.num_micro_batches,
                  request.virtual_stages};
  shape.expert_overlap = request.layout && ExpertOverlapApplies(*request.layout);
  // The op times a kind may shape its order by, as ShapeOf derives them from the plan.
  const ScheduleOptions options{request.virtual_stages};
  const ScheduleKind* kind = FindScheduleKind(request.schedule);
  if (kind != nullptr && kind->CheckOptions(options).ok()) {
    shape.times =
        OpTimesHintOf(request.profile, request.num_stages * kind->ChunksPerDevice(options));
  }
  return MakePlanContext(shape);
}

bool HasBackwardSplit(const Profile& profile) {
  for (const LayerProfile& l : profile.layers) {
    if (!l.backward_input_ms || !l.backward_weight_ms) return false;
  }
  return !profile.layers.empty();
}

namespace {

// EvaluateSplit with the request's context already built (and its shape checked).
Result<Plan> EvaluateSplitIn(const PlanRequest& request, const PlanContext& context,
                             const std::vector<int>& boundaries, const std::string& method) {
  const Profile& profile = request.profile;
  const int n = static_cast<int>(profile.layers.size());
  const int p = request.num_stages;
  const Schedule& schedule = context.schedule;
  const int chunks = context.num_chunks();
  const bool chunked = chunks != p;
  PP_RETURN_IF_ERROR(CheckBoundaries(boundaries, chunks, n));
  const std::vector<int>& in_flight = context.in_flight;
  Result<std::unique_ptr<StageCosts>> costs =
      CostsUnder(profile, request.layout, request.devices, request.optimizer, chunks,
                 request.memory_limit, schedule.chunk_device, request.recompute_modules);
  if (!costs.ok()) return costs.status();
  Result<RecomputeMode> mode = RequestRecompute(request, context);
  if (!mode.ok()) return mode.status();
  RecomputeInput keep{0, request.recompute_unit, request.recompute_blocks};
  if (*mode != RecomputeMode::kNone) {
    Result<uint64_t> bytes = ModelInputBytes(request.model, profile);
    if (!bytes.ok()) return bytes.status();
    keep.model_input = *bytes;
  }
  const std::vector<char> recompute =
      RecomputeStages(*mode, (*costs)->setup(), in_flight, boundaries, keep);

  Plan plan;
  plan.tool_version = kToolVersion;
  plan.model = profile.model;
  plan.schedule = request.schedule;
  plan.num_stages = p;
  plan.virtual_stages = chunks / p;
  plan.num_micro_batches = request.num_micro_batches;
  plan.micro_batch_size = profile.micro_batch_size;
  plan.method = method;
  plan.objective = request.objective;
  plan.optimizer = request.optimizer;
  plan.memory_limit_bytes = request.memory_limit;
  if (*mode != RecomputeMode::kNone) {
    plan.recompute_unit = request.recompute_unit;
    if (keep.unit == RecomputeUnit::kBlock) plan.recompute_blocks = keep.blocks;
    if (keep.unit == RecomputeUnit::kSelective) plan.recompute_modules = request.recompute_modules;
  }
  plan.boundaries = boundaries;
  plan.profile = profile;
  plan.model_spec = request.model;

  for (int s = 0; s < chunks; ++s) {
    StagePlan st;
    st.index = s;
    if (chunked) st.device = context.chunk_device[s];
    st.first_layer = s == 0 ? 0 : boundaries[s - 1];
    st.last_layer = s + 1 == chunks ? n - 1 : boundaries[s] - 1;
    for (int i = st.first_layer; i <= st.last_layer; ++i) {
      st.layer_names.push_back(profile.layers[i].name);
    }
    const CostModel& cost = (*costs)->stage(s);
    if (request.devices.per_device_memory) st.memory_limit_bytes = (*costs)->memory_limit(s);
    st.forward_ms = cost.ForwardMs(st.first_layer, st.last_layer);
    st.recompute = recompute[s] != 0;
    st.backward_ms =
        cost.BackwardMs(st.first_layer, st.last_layer) +
        (st.recompute ? RecomputeForwardMs(cost, st.first_layer, st.last_layer, keep) : 0.0);
    const WideBytes params = cost.ParamBytes(st.first_layer, st.last_layer);
    const WideBytes peak =
        StagePeak(cost, st.first_layer, st.last_layer, in_flight[s], st.recompute, keep);
    if (peak > WideBytes{kMaxBytes}) {
      return Status::Error("stage " + std::to_string(s) +
                           " would need more than 8 PiB of memory; check the profile's byte counts");
    }
    st.param_bytes = static_cast<uint64_t>(params);
    st.peak_memory_bytes = static_cast<uint64_t>(peak);
    st.send_bytes = cost.SendBytes(st.last_layer);
    const double stage_ms = st.forward_ms + st.backward_ms;
    if (s == 0 || stage_ms > plan.predicted.max_stage_ms) {
      plan.predicted.max_stage_ms = stage_ms;
      plan.predicted.bottleneck_stage = s;
    }
    plan.stages.push_back(std::move(st));
  }

  RecordLayout(request.devices, &plan);
  if (request.devices.per_device_memory) plan.memory_limit_bytes.reset();
  Result<Timeline> timeline = Simulate(
      context, Charged(context, TimesOf(**costs, boundaries, recompute, std::nullopt, keep)));
  if (!timeline.ok()) return timeline.status();
  plan.predicted.step_time_ms = timeline->step_time_ms;
  plan.predicted.bubble_ratio = timeline->bubble_ratio;
  plan.predicted.bubble_over_ideal = timeline->bubble_over_ideal;
  for (StagePlan& st : plan.stages) {
    const double busy = timeline->busy_ms[context.chunk_device[st.index]];
    st.bubble_ratio = timeline->step_time_ms > 0 ? 1.0 - busy / timeline->step_time_ms : 0.0;
  }
  plan.predicted.throughput_samples_per_s =
      timeline->step_time_ms > 0 ? 1000.0 * request.num_micro_batches *
                                       static_cast<double>(profile.micro_batch_size) /
                                       timeline->step_time_ms
                                 : 0.0;
  if (request.layout) {
    ParallelLayout layout = *request.layout;
    layout.pp = p;
    layout.vp = chunks / p;
    plan.parallelism = layout;
    PredictBatch(&plan);
  }
  return plan;
}

// Whether every time the request's profiles and links yield is finite (a profile built in code
// has not been through ProfileFromJson).
Status CheckTimes(const PlanRequest& request) {
  PP_RETURN_IF_ERROR(CheckProfileTimes(request.profile));
  for (const auto& [type, profile] : request.devices.profiles) {
    PP_RETURN_IF_ERROR(CheckProfileTimes(profile).Prefixed("--device-types " + Abbreviate(type)));
  }
  if (request.devices.inter_node_link) {
    uint64_t largest = 0;
    for (const LayerProfile& l : request.profile.layers) {
      largest = std::max(largest, l.output_bytes);
    }
    PP_RETURN_IF_ERROR(CheckLink(*request.devices.inter_node_link, largest, "--inter-node-link"));
  }
  return Status::Ok();
}

// The request's context with the request's counts and times checked against the profile.
Result<PlanContext> CheckedContext(const PlanRequest& request) {
  PP_RETURN_IF_ERROR(CheckShape(request.profile, request.num_stages, request.num_micro_batches));
  PP_RETURN_IF_ERROR(CheckTimes(request));
  Result<PlanContext> context = RequestContext(request);
  if (!context.ok()) return context.status();
  PP_RETURN_IF_ERROR(CheckShape(request.profile, request.num_stages, request.num_micro_batches,
                                context->num_chunks()));
  return context;
}

}  // namespace

Result<Plan> EvaluateSplit(const PlanRequest& request, const std::vector<int>& boundaries,
                           const std::string& method) {
  Result<PlanContext> context = CheckedContext(request);
  if (!context.ok()) return context.status();
  return EvaluateSplitIn(request, *context, boundaries, method);
}

namespace {

// dp under --objective step: the exact search, seeded with the bottleneck optimum's
// candidates and the baselines (so it is never worse than any of them, even unfinished).
// `extra_seed`: one more split to start from (recomputation: its bottleneck optimum).
Result<std::vector<int>> DpStepSplit(const SplitContext& ctx, const PlanContext& context,
                                     double budget_s, ObjectiveBound* bound,
                                     std::optional<std::vector<int>> extra_seed = std::nullopt) {
  StepSearchOptions options;
  options.time_budget_s = budget_s;
  // With several chunks per device the per-chunk limit of the bottleneck search is not the
  // device's; its splits only seed the search, which checks every device itself. With
  // recomputation (ctx.stage_fits) the plain memory check does not apply either.
  SplitContext free = ctx;
  if (context.num_chunks() != context.num_devices() || ctx.stage_fits || ctx.chunk_memory) {
    free.memory_limit = std::nullopt;
  }
  Result<std::vector<std::vector<int>>> seeds = BottleneckCandidates(free);
  if (!seeds.ok()) return seeds.status();
  options.seeds = std::move(*seeds);
  if (extra_seed) options.seeds.push_back(std::move(*extra_seed));
  for (auto* baseline : {UniformSplit, ParameterSplit, GreedySplit}) {
    Result<std::vector<int>> split = baseline(free);
    if (split.ok()) options.seeds.push_back(std::move(*split));
  }
  Result<StepSearchResult> result = MinStepSplit(ctx, context, options);
  if (!result.ok()) return result.status();
  bound->exact = result->exact;
  bound->lower_bound_ms = result->lower_bound_ms;
  return result->boundaries;
}

}  // namespace

Result<Plan> MakePlan(const PlanRequest& request) {
  if (request.objective != "bottleneck" && request.objective != "step") {
    return Status::Error("unknown --objective " + Quote(request.objective) +
                         " (known: bottleneck, step)");
  }
  const Profile& profile = request.profile;
  const int p = request.num_stages;
  PP_RETURN_IF_ERROR(CheckShape(profile, p, request.num_micro_batches));
  Result<PlanContext> made_context = CheckedContext(request);
  if (!made_context.ok()) return made_context.status();
  const PlanContext& context = *made_context;
  if (request.method == "given") {
    return EvaluateSplitIn(request, context, request.boundaries, "given");
  }
  const int chunks = context.num_chunks();
  const bool chunked = chunks != p;

  Result<const PartitionMethod*> known = KnownPartitionMethod(request.method);
  if (!known.ok()) return known.status();
  const PartitionMethod* method = *known;
  Result<std::unique_ptr<StageCosts>> made =
      CostsUnder(profile, request.layout, request.devices, request.optimizer, chunks,
                 request.memory_limit, context.schedule.chunk_device, request.recompute_modules);
  if (!made.ok()) return made.status();
  const StageCosts& costs = **made;

  SplitContext ctx;
  ctx.cost = &costs.stage(0);
  if (!request.devices.empty()) {
    ctx.devices = costs.setup();
    ctx.bound_cost = &costs.envelope();
  }
  ctx.num_stages = chunks;
  ctx.in_flight = context.in_flight;
  ctx.device_in_flight = context.device_in_flight;
  // A device's memory is the sum of its chunks', which the per-stage bottleneck search cannot
  // bound; there chunked plans are split without the limit and checked against it afterwards.
  // The step search checks every device's sum itself.
  const bool step_search = request.objective == "step" && request.method == "dp";
  ctx.memory_limit = chunked && !step_search ? std::nullopt : request.memory_limit;
  SplitLowerBounds(costs, chunks, &ctx.input_lower_ms, &ctx.weight_lower_ms);
  // The searches simulate thousands of splits: one StepSimulator (validated once, same
  // arithmetic as Simulate) and the profiles' I/W split checked once.
  StepSimulator simulator(context);
  const bool split = AllSplit(costs, chunks);
  const auto step_of = [&](ChunkTimes times) {
    ChargeTransfers(context.schedule, &times);
    const double step = simulator.StepMs(times);
    return step == step ? step : std::numeric_limits<double>::infinity();
  };
  ctx.step_time_ms = [&](const std::vector<int>& boundaries) {
    return step_of(TimesOf(costs, boundaries, {}, split));
  };
  std::optional<ObjectiveBound> bound;
  Result<std::vector<int>> boundaries = std::vector<int>();
  Result<RecomputeMode> mode = RequestRecompute(request, context);
  if (!mode.ok()) return mode.status();
  Profile recompute_profile;  // every backward one forward longer (--recompute all)
  std::optional<CostModel> recompute_cost;
  if (*mode != RecomputeMode::kNone && request.method == "dp") {
    Result<uint64_t> model_input = ModelInputBytes(request.model, profile);
    if (!model_input.ok()) return model_input.status();
    const RecomputeInput input{*model_input, request.recompute_unit, request.recompute_blocks};
    const StageSetup setup = DevicesOf(ctx);
    if (!RecomputeSplitExists(*mode, setup, ctx.in_flight, input)) {
      std::string message = RecomputeInfeasibleMessage(*mode, setup, ctx.in_flight, input);
      if (chunked) {
        message += "; that is for one chunk alone, and a device holds " +
                   std::to_string(chunks / p) + " chunks";
      }
      return Status::Error(message);
    }
    Result<std::vector<int>> bottleneck =
        RecomputeBottleneckSplit(*mode, setup, ctx.in_flight, input);
    if (request.objective != "step") {
      boundaries = std::move(bottleneck);
    } else {
      const RecomputeMode m = *mode;
      ctx.step_time_ms = [&, setup, input, m](const std::vector<int>& b) {
        const std::vector<char> flags = RecomputeStages(m, setup, ctx.in_flight, b, input);
        return step_of(TimesOf(costs, b, flags, split, input));
      };
      if (chunked) {
        // Every chunk recomputes (auto is refused there).
        ctx.chunk_memory = [&, input](int s, int first, int last) {
          return ChunkMemoryOf(costs.stage(s), first, last, true, input);
        };
      } else {
        ctx.stage_fits = [&, input, m](int s, int first, int last) {
          const std::optional<uint64_t> limit = costs.memory_limit(s);
          if (!limit) return true;
          const auto fits = [&](bool again) {
            return StagePeak(costs.stage(s), first, last, ctx.in_flight[s], again, input) <=
                   WideBytes{*limit};
          };
          return m == RecomputeMode::kAll ? fits(true) : fits(false) || fits(true);
        };
      }
      if (m == RecomputeMode::kAll && request.devices.empty() &&
          (input.unit == RecomputeUnit::kStage || input.unit == RecomputeUnit::kLayer)) {
        // Every stage's backward is B + F: bounds from those times are tight. (By block or
        // selectively only some forwards recur, so there the plain times bound it.)
        recompute_profile = costs.stage_profile(0);
        for (LayerProfile& l : recompute_profile.layers) l.backward_ms += l.forward_ms;
        recompute_cost.emplace(recompute_profile, costs.stage(0).state());
        ctx.bound_cost = &*recompute_cost;
      }
      std::optional<std::vector<int>> seed;
      if (bottleneck.ok()) seed = std::move(*bottleneck);
      bound.emplace();
      boundaries = DpStepSplit(ctx, context, request.step_budget_s, &*bound, std::move(seed));
    }
  } else if (request.objective == "step" && request.method == "dp") {
    bound.emplace();
    boundaries = DpStepSplit(ctx, context, request.step_budget_s, &*bound);
  } else {
    boundaries = method->split(ctx);
  }
  if (!boundaries.ok()) return boundaries.status();
  Result<Plan> plan = EvaluateSplitIn(request, context, *boundaries, request.method);
  if (plan.ok()) plan->objective_bound = bound;
  if (plan.ok() && chunked && !StagesOverLimit(*plan).empty()) {
    return Status::Error("the " + request.schedule + " plan exceeds --memory-limit on a device " +
                         "(a device holds several chunks); --method dp with --objective step " +
                         "(the default) checks each device's chunks together");
  }
  return plan;
}

Result<ChunkTimes> PlanChunkTimes(const Plan& plan, const PlanContext& context) {
  Result<std::unique_ptr<StageCosts>> costs = CostsUnder(
      plan.profile, plan.parallelism, LayoutOf(plan), plan.optimizer, context.num_chunks(),
      plan.memory_limit_bytes, context.schedule.chunk_device, plan.recompute_modules);
  if (!costs.ok()) return costs.status();
  std::vector<char> recompute;
  for (const ChunkRange& c : context.chunks) recompute.push_back(c.recompute);
  const RecomputeInput keep{0, plan.recompute_unit, plan.recompute_blocks};
  return Charged(context, TimesOf(**costs, plan.boundaries, recompute, std::nullopt, keep));
}

Result<Timeline> SimulatePlan(const Plan& plan, const PlanContext& context) {
  Result<ChunkTimes> times = PlanChunkTimes(plan, context);
  if (!times.ok()) return times.status();
  return Simulate(context, *times);
}

Result<Timeline> SimulatePlan(const Plan& plan) {
  Result<PlanContext> context = PlanContextOf(plan);
  if (!context.ok()) return context.status();
  return SimulatePlan(plan, *context);
}

void PredictBatch(Plan* plan) {
  if (!plan->parallelism) return;
  const ParallelLayout& layout = *plan->parallelism;
  Prediction& p = plan->predicted;
  const double dp_ms = DataParallelMs(DataParallelSync(*plan, layout));
  p.data_parallel_ms = dp_ms;
  p.batch_time_ms = p.step_time_ms + dp_ms;
  const double samples = static_cast<double>(plan->num_micro_batches) *
                         static_cast<double>(plan->micro_batch_size) * layout.dp;
  const double gpus = static_cast<double>(layout.gpus());
  if (!(*p.batch_time_ms > 0) || !(gpus > 0) || !plan->model_spec) return;
  const Model& model = *plan->model_spec;
  const double tokens =
      samples * static_cast<double>(model.input.tokens() ? model.input.seq_len : 1);
  p.tokens_per_s_per_gpu = 1000.0 * tokens / *p.batch_time_ms / gpus;
  p.model_tflops_per_gpu =
      1000.0 * ModelFlopsPerSample(model, layout.tp) * samples / *p.batch_time_ms / gpus / 1e12;
}

std::vector<uint64_t> DevicePeakMemory(const Plan& plan) {
  std::vector<uint64_t> device(plan.num_stages, 0);
  for (const StagePlan& s : plan.stages) {
    const int d = s.device.value_or(s.index);
    if (d >= 0 && d < plan.num_stages) device[d] += s.peak_memory_bytes;
  }
  if (plan.stages.size() <= static_cast<size_t>(plan.num_stages)) return device;
  // Several chunks per device: DeviceMemory over the plan's own costs and schedule (a plan
  // whose costs or schedule cannot be rebuilt keeps the sum).
  Result<PlanContext> context = PlanContextOf(plan);
  if (!context.ok()) return device;
  Result<std::unique_ptr<StageCosts>> costs = CostsUnder(
      plan.profile, plan.parallelism, LayoutOf(plan), plan.optimizer, context->num_chunks(),
      plan.memory_limit_bytes, context->schedule.chunk_device, plan.recompute_modules);
  if (!costs.ok()) return device;
  RecomputeInput keep{0, plan.recompute_unit, plan.recompute_blocks};
  for (const StagePlan& s : plan.stages) {
    if (s.recompute && s.first_layer == 0) {
      Result<uint64_t> bytes = ModelInputBytes(plan.model_spec, plan.profile);
      if (!bytes.ok()) return device;
      keep.model_input = *bytes;
      break;
    }
  }
  std::vector<DeviceMemory> memory(plan.num_stages);
  for (const StagePlan& s : plan.stages) {
    memory[context->chunk_device[s.index]].Add(
        ChunkMemoryOf((*costs)->stage(s.index), s.first_layer, s.last_layer, s.recompute, keep),
        context->in_flight[s.index]);
  }
  for (int d = 0; d < plan.num_stages; ++d) {
    const WideBytes peak = memory[d].Peak(context->device_in_flight[d]);
    device[d] =
        std::min<uint64_t>(device[d], static_cast<uint64_t>(std::min(peak, WideBytes{kMaxBytes})));
  }
  return device;
}

std::optional<uint64_t> StageMemoryLimit(const Plan& plan, const StagePlan& stage) {
  return stage.memory_limit_bytes ? stage.memory_limit_bytes : plan.memory_limit_bytes;
}

std::vector<int> StagesOverLimit(const Plan& plan) {
  return StagesOverLimit(plan, DevicePeakMemory(plan));
}

std::vector<int> StagesOverLimit(const Plan& plan, const std::vector<uint64_t>& device) {
  std::vector<int> over;
  for (const StagePlan& s : plan.stages) {
    const int d = s.device.value_or(s.index);
    const std::optional<uint64_t> limit = StageMemoryLimit(plan, s);
    if (limit && d >= 0 && d < plan.num_stages && device[d] > *limit) {
      over.push_back(s.index);
    }
  }
  return over;
}

}  // namespace pp
