#include "core/plan.h"

#include <cstdint>

#include "core/content_hash.h"
#include "core/units.h"

namespace pp {
namespace {

constexpr std::pair<Optimizer, std::string_view> kOptimizers[] = {
    {Optimizer::kAdam, "adam"}, {Optimizer::kSgd, "sgd"}, {Optimizer::kNone, "none"}};

Json StageToJson(const StagePlan& s) {
  Json j;
  j["index"] = s.index;
  j["first_layer"] = s.first_layer;
  j["last_layer"] = s.last_layer;
  j["layer_names"] = s.layer_names;
  j["forward_ms"] = s.forward_ms;
  j["backward_ms"] = s.backward_ms;
  j["param_bytes"] = s.param_bytes;
  j["peak_memory_bytes"] = s.peak_memory_bytes;
  j["send_bytes"] = s.send_bytes;
  if (s.device) j["device"] = *s.device;
  if (s.bubble_ratio) j["bubble_ratio"] = *s.bubble_ratio;
  if (s.device_type) j["device_type"] = *s.device_type;
  if (s.memory_limit_bytes) j["memory_limit_bytes"] = *s.memory_limit_bytes;
  if (s.recompute) j["recompute"] = true;
  return j;
}

// Reads predicted's keys from `object` at `path`.
Result<Prediction> PredictionFromJson(const Json& object, const std::string& path,
                                      int num_stages) {
  FieldReader pr(object, path);
  Prediction out;
  out.step_time_ms = pr.NonNegative("step_time_ms");
  out.bubble_ratio = pr.NonNegative("bubble_ratio");
  out.throughput_samples_per_s = pr.NonNegative("throughput_samples_per_s");
  out.bottleneck_stage = static_cast<int>(pr.Int("bottleneck_stage", 0, num_stages - 1));
  out.max_stage_ms = pr.NonNegative("max_stage_ms");
  out.bubble_over_ideal = pr.OptNonNegative("bubble_over_ideal");
  out.batch_time_ms = pr.OptNonNegative("batch_time_ms");
  out.data_parallel_ms = pr.OptNonNegative("data_parallel_ms");
  out.tokens_per_s_per_gpu = pr.OptNonNegative("tokens_per_s_per_gpu");
  out.model_tflops_per_gpu = pr.OptNonNegative("model_tflops_per_gpu");
  if (!pr.ok()) return pr.status();
  return out;
}

Json PredictionToJson(const Prediction& p) {
  Json doc = {{"step_time_ms", p.step_time_ms},
              {"bubble_ratio", p.bubble_ratio},
              {"throughput_samples_per_s", p.throughput_samples_per_s},
              {"bottleneck_stage", p.bottleneck_stage},
              {"max_stage_ms", p.max_stage_ms}};
  if (p.bubble_over_ideal) doc["bubble_over_ideal"] = *p.bubble_over_ideal;
  if (p.batch_time_ms) doc["batch_time_ms"] = *p.batch_time_ms;
  if (p.data_parallel_ms) doc["data_parallel_ms"] = *p.data_parallel_ms;
  if (p.tokens_per_s_per_gpu) doc["tokens_per_s_per_gpu"] = *p.tokens_per_s_per_gpu;
  if (p.model_tflops_per_gpu) doc["model_tflops_per_gpu"] = *p.model_tflops_per_gpu;
  return doc;
}

// "measured": predicted's keys plus "stages" [{busy_ms, peak_memory_bytes}], "steps",
// "backend", "device" (all but predicted's keys optional).
Result<Measurement> MeasurementFromJson(const Json& object, int num_stages) {
  Result<Prediction> base = PredictionFromJson(object, "measured", num_stages);
  if (!base.ok()) return base.status();
  Measurement m;
  static_cast<Prediction&>(m) = *base;
  FieldReader r(object, "measured");
  m.steps = static_cast<int>(r.OptInt("steps", 0, INT32_MAX).value_or(0));
  m.backend = r.OptString("backend").value_or("");
  m.device = r.OptString("device").value_or("");
  if (r.Has("stages")) {
    const Json* stages = r.Array("stages");
    if (stages != nullptr) {
      for (size_t i = 0; i < stages->size(); ++i) {
        FieldReader sr((*stages)[i], "measured.stages[" + std::to_string(i) + "]");
        m.stage_busy_ms.push_back(sr.NonNegative("busy_ms"));
        m.stage_peak_memory_bytes.push_back(sr.Bytes("peak_memory_bytes"));
        if (!sr.ok()) return sr.status();
      }
    }
  }
  if (!r.ok()) return r.status();
  return m;
}

Json MeasurementToJson(const Measurement& m) {
  Json doc = PredictionToJson(m);
  doc["steps"] = m.steps;
  doc["backend"] = m.backend;
  doc["device"] = m.device;
  Json stages = Json::array();
  for (size_t i = 0; i < m.stage_busy_ms.size(); ++i) {
    stages.push_back({{"index", i},
                      {"busy_ms", m.stage_busy_ms[i]},
                      {"peak_memory_bytes", i < m.stage_peak_memory_bytes.size()
                                                ? m.stage_peak_memory_bytes[i]
                                                : uint64_t{0}}});
  }
  doc["stages"] = std::move(stages);
  return doc;
}

// "parallelism": {tp, pp, cp, ep, dp, vp, zero} and optionally etp, sequence_parallel,
// fused_attention, overlap_grad_reduce, overlap_expert_comm, the other software settings of
// ParallelLayout and gpus_per_node; pp and vp must agree
// with the plan's num_stages and virtual_stages.
Result<ParallelLayout> LayoutFromJson(const Json& object, int num_stages, int virtual_stages) {
  FieldReader r(object, "parallelism");
  ParallelLayout l;
  constexpr int64_t kMaxDegree = int64_t{1} << 20;
  l.tp = static_cast<int>(r.Int("tp", 1, kMaxDegree));
  l.pp = static_cast<int>(r.Int("pp", 1, kMaxDegree));
  l.cp = static_cast<int>(r.Int("cp", 1, kMaxDegree));
  l.ep = static_cast<int>(r.Int("ep", 1, kMaxDegree));
  l.dp = static_cast<int>(r.Int("dp", 1, kMaxDegree));
  l.vp = static_cast<int>(r.Int("vp", 1, 64));
  l.zero = static_cast<int>(r.Int("zero", 0, 3));
  if (r.Has("etp")) {
    l.etp = EtpField(static_cast<int>(r.Int("etp", 1, kMaxDegree)), l.tp);
  }
  if (r.Has("sequence_parallel")) l.sequence_parallel = r.Bool("sequence_parallel", true);
  if (r.Has("fused_attention")) l.fused_attention = r.Bool("fused_attention", true);
  if (r.Has("overlap_grad_reduce")) l.overlap_grad_reduce = r.Bool("overlap_grad_reduce", true);
  if (r.Has("fused_wgrad_accumulation")) {
    l.fused_wgrad_accumulation = r.Bool("fused_wgrad_accumulation", true);
  }
  if (r.Has("overlap_tp_dgrad")) l.overlap_tp_dgrad = r.Bool("overlap_tp_dgrad", false);
  if (r.Has("fused_cross_entropy")) {
    l.fused_cross_entropy = r.Bool("fused_cross_entropy", true);
  }
  if (r.Has("fp32_grad_copy")) l.fp32_grad_copy = r.Bool("fp32_grad_copy", false);
  if (r.Has("ddp_bucket_copy")) l.ddp_bucket_copy = r.Bool("ddp_bucket_copy", false);
  if (r.Has("pipeline_scatter_gather")) {
    l.pipeline_scatter_gather = r.Bool("pipeline_scatter_gather", false);
  }
  if (r.Has("overlap_expert_comm")) {
    l.overlap_expert_comm = r.Bool("overlap_expert_comm", false);
  }
  if (r.Has("flex_dispatcher")) l.flex_dispatcher = r.Bool("flex_dispatcher", false);
  if (r.Has("gpus_per_node")) {
    l.gpus_per_node = static_cast<int>(r.Int("gpus_per_node", 1, kMaxDegree));
  }
  if (!r.ok()) return r.status();
  if (!ExpertGridFits(l)) {
    return Status::Error("parallelism: ep " + std::to_string(l.ep) + " x etp " +
                         std::to_string(l.expert_tp()) + " must divide tp x cp x dp = " +
                         std::to_string(int64_t{l.tp} * l.cp * l.dp));
  }
  if (l.pp != num_stages || l.vp != virtual_stages) {
    return Status::Error("parallelism: pp " + std::to_string(l.pp) + " and vp " +
                         std::to_string(l.vp) + " must equal num_stages " +
                         std::to_string(num_stages) + " and virtual_stages " +
                         std::to_string(virtual_stages));
  }
  return l;
}

Json LayoutToJson(const ParallelLayout& l) {
  Json out = {{"tp", l.tp},
          {"pp", l.pp},
          {"cp", l.cp},
          {"ep", l.ep},
          {"dp", l.dp},
          {"vp", l.vp},
          {"zero", l.zero},
          {"sequence_parallel", l.sequence_parallel},
          {"gpus_per_node", l.gpus_per_node}};
  // Written only off their defaults, so that plans at the defaults read and write unchanged.
  if (!l.fused_attention) out["fused_attention"] = false;
  if (!l.overlap_grad_reduce) out["overlap_grad_reduce"] = false;
  if (!l.fused_wgrad_accumulation) out["fused_wgrad_accumulation"] = false;
  if (l.overlap_expert_comm) out["overlap_expert_comm"] = true;
  if (l.flex_dispatcher) out["flex_dispatcher"] = true;
  if (l.pipeline_scatter_gather) out["pipeline_scatter_gather"] = true;
  if (l.overlap_tp_dgrad) out["overlap_tp_dgrad"] = true;
  if (!l.fused_cross_entropy) out["fused_cross_entropy"] = false;
  if (l.fp32_grad_copy) out["fp32_grad_copy"] = true;
  if (l.ddp_bucket_copy) out["ddp_bucket_copy"] = true;
  if (l.etp != 0) out["etp"] = l.etp;
  return out;
}

}  // namespace

// A value's name in a table of (value, name) pairs, and back.
template <typename T, size_t N>
std::string_view NameIn(const std::pair<T, std::string_view> (&table)[N], T value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "?";
}
template <typename T, size_t N>
std::optional<T> ValueIn(const std::pair<T, std::string_view> (&table)[N], std::string_view name) {
  for (const auto& [v, n] : table) {
    if (n == name) return v;
  }
  return std::nullopt;
}

constexpr std::pair<RecomputeUnit, std::string_view> kRecomputeUnits[] = {
    {RecomputeUnit::kStage, "stage"},
    {RecomputeUnit::kLayer, "layer"},
    {RecomputeUnit::kBlock, "block"},
    {RecomputeUnit::kSelective, "selective"},
};

std::string_view OptimizerName(Optimizer o) { return NameIn(kOptimizers, o); }
std::optional<Optimizer> ParseOptimizer(std::string_view name) {
  return ValueIn(kOptimizers, name);
}
std::string_view RecomputeUnitName(RecomputeUnit u) { return NameIn(kRecomputeUnits, u); }
bool ExpertOverlapAllowsRecompute(RecomputeUnit unit, RecomputeModules modules) {
  return unit == RecomputeUnit::kSelective && !modules.Has(RecomputeModule::kMoe);
}

std::optional<RecomputeUnit> ParseRecomputeUnit(std::string_view name) {
  return ValueIn(kRecomputeUnits, name);
}

Result<Plan> PlanFromJson(const Json& doc) {
  FieldReader r(doc, "");
  r.Format(kPlanFormat);
  Plan p;
  p.tool_version = r.OptString("tool_version").value_or("");
  p.model_hash = r.OptString("model_hash").value_or("");
  p.profile_hash = r.OptString("profile_hash").value_or("");
  p.model = r.Name("model");
  p.schedule = r.String("schedule");
  p.num_stages = static_cast<int>(r.Int("num_stages", 1, kMaxLayers));
  p.virtual_stages = static_cast<int>(r.OptInt("virtual_stages", 1, 64).value_or(1));
  p.num_micro_batches = static_cast<int>(r.Int("num_micro_batches", 1, kMaxMicroBatches));
  p.micro_batch_size = r.Int("micro_batch_size", 1, int64_t{1} << 20);
  p.method = r.String("method");
  p.objective = r.String("objective");
  if (r.Has("objective_bound")) {
    const Json* bound = r.Object("objective_bound");
    if (bound != nullptr) {
      FieldReader b(*bound, "objective_bound");
      ObjectiveBound ob;
      ob.exact = b.Bool("exact", true);
      ob.lower_bound_ms = b.NonNegative("lower_bound_ms");
      if (!b.ok()) return b.status();
      p.objective_bound = ob;
    }
  }
  const std::string optimizer = r.OptString("optimizer").value_or("adam");
  if (r.ok()) {
    if (auto o = ParseOptimizer(optimizer)) p.optimizer = *o;
    else r.Fail("optimizer", "must be adam, sgd or none (got " + DescribeValue(Json(optimizer)) + ")");
  }
  if (const Json* limit = r.Find("memory_limit_bytes"); limit != nullptr && !limit->is_null()) {
    p.memory_limit_bytes = r.Bytes("memory_limit_bytes");
  }
  if (r.Has("recompute_unit")) {
    const std::string unit = r.String("recompute_unit");
    if (r.ok()) {
      if (auto u = ParseRecomputeUnit(unit)) {
        p.recompute_unit = *u;
      } else {
        r.Fail("recompute_unit",
               "must be stage, layer, block or selective (got " + DescribeValue(Json(unit)) + ")");
      }
    }
  }
  if (p.recompute_unit == RecomputeUnit::kBlock) {
    p.recompute_blocks = static_cast<int>(r.Int("recompute_blocks", 1, kMaxLayers));
  } else if (r.Has("recompute_blocks")) {
    r.Fail("recompute_blocks", "is given only with recompute_unit \"block\"");
  }
  if (r.ok() && r.Has("recompute_modules")) {
    if (p.recompute_unit != RecomputeUnit::kSelective) {
      r.Fail("recompute_modules", "is given only with recompute_unit \"selective\"");
    } else if (const Json* names = r.Array("recompute_modules")) {
      std::vector<std::string> list;
      for (const Json& n : *names) {
        if (!n.is_string()) {
          r.Fail("recompute_modules", "must be an array of module names");
          break;
        }
        list.push_back(n.get<std::string>());
      }
      std::string error;
      if (r.ok()) {
        if (auto set = ParseRecomputeModules(list, &error)) {
          p.recompute_modules = *set;
        } else {
          r.Fail("recompute_modules", error);
        }
      }
    }
  }
  const Json* boundaries = r.Array("boundaries");
  const Json* stages = r.Array("stages");
  const Json* predicted = r.Object("predicted");
  const Json* profile = r.Object("profile");
  if (!r.ok()) return r.status();

  Result<Profile> prof = ProfileFromJson(*profile, "profile");
  if (!prof.ok()) return prof.status();
  p.profile = std::move(*prof);
  const int n = static_cast<int>(p.profile.layers.size());

  if (const Json* spec = r.Find("model_spec"); spec != nullptr) {
    Result<Model> m = ModelFromJson(*spec);
    if (!m.ok()) return m.status().Prefixed("model_spec");
    if (m->layers.size() != p.profile.layers.size()) {
      return Status::Error("model_spec: has " + std::to_string(m->layers.size()) +
                           " layers but the profile has " + std::to_string(n));
    }
    p.model_spec = std::move(*m);
  }

  if (const Json* dp = r.Find("device_profiles"); dp != nullptr) {
    if (!dp->is_object()) return Status::Error("device_profiles: must be an object");
    for (auto it = dp->begin(); it != dp->end(); ++it) {
      Result<Profile> other = ProfileFromJson(it.value(), "device_profiles." + it.key());
      if (!other.ok()) return other.status();
      if (other->layers.size() != p.profile.layers.size()) {
        return Status::Error("device_profiles." + it.key() + ": has " +
                             std::to_string(other->layers.size()) +
                             " layers but the profile has " + std::to_string(n));
      }
      p.device_profiles[it.key()] = std::move(*other);
    }
  }
  if (r.Has("gpus_per_node")) {
    p.gpus_per_node = static_cast<int>(r.Int("gpus_per_node", 1, kMaxLayers));
    const Json* link = r.Object("inter_node_link");
    if (!r.ok()) return r.status();
    FieldReader k(*link, "inter_node_link");
    Link l;
    l.bandwidth_bytes_per_s = k.Positive("bandwidth_bytes_per_s");
    l.latency_ms = k.NonNegative("latency_ms");
    if (!k.ok()) return k.status();
    p.inter_node_link = l;
  }

  const int chunks = NumChunks(p);
  if (chunks > n) {
    return Status::Error("num_stages: " + std::to_string(chunks) +
                         " stages are more than the " + std::to_string(n) + " layers");
  }
  if (static_cast<int>(boundaries->size()) != chunks - 1) {
    return Status::Error("boundaries: has " + std::to_string(boundaries->size()) +
                         " entries; " + std::to_string(chunks) + " stages need " +
                         std::to_string(chunks - 1));
  }
  int previous = 0;
  for (size_t i = 0; i < boundaries->size(); ++i) {
    const Json& b = (*boundaries)[i];
    const std::string at = "boundaries[" + std::to_string(i) + "]";
    if (!b.is_number_integer()) return Status::Error(at + ": must be an integer layer index");
    const int64_t v = b.get<int64_t>();
    if (v <= previous || v >= n) {
      return Status::Error(at + ": " + std::to_string(v) + " must be greater than " +
                           std::to_string(previous) + " and less than " + std::to_string(n) +
                           " (boundaries increase and every stage holds a layer)");
    }
    previous = static_cast<int>(v);
    p.boundaries.push_back(previous);
  }

  if (static_cast<int>(stages->size()) != chunks) {
    return Status::Error("stages: has " + std::to_string(stages->size()) + " entries; " +
                         std::to_string(chunks) + " expected");
  }
  for (int s = 0; s < chunks; ++s) {
    FieldReader sr((*stages)[s], "stages[" + std::to_string(s) + "]");
    StagePlan st;
    st.index = static_cast<int>(sr.Int("index", 0, kMaxLayers));
    st.first_layer = static_cast<int>(sr.Int("first_layer", 0, kMaxLayers));
    st.last_layer = static_cast<int>(sr.Int("last_layer", 0, kMaxLayers));
    st.forward_ms = sr.NonNegative("forward_ms");
    st.backward_ms = sr.NonNegative("backward_ms");
    st.param_bytes = sr.Bytes("param_bytes");
    st.peak_memory_bytes = sr.Bytes("peak_memory_bytes");
    st.send_bytes = sr.Bytes("send_bytes");
    if (sr.Has("device")) st.device = static_cast<int>(sr.Int("device", 0, p.num_stages - 1));
    st.bubble_ratio = sr.OptNonNegative("bubble_ratio");
    st.device_type = sr.OptString("device_type");
    st.memory_limit_bytes = sr.OptBytes("memory_limit_bytes");
    if (sr.Has("recompute")) st.recompute = sr.Bool("recompute", false);
    if (const Json* names = sr.Array("layer_names"); names != nullptr) {
      for (const Json& name : *names) {
        if (!name.is_string()) {
          sr.Fail("layer_names", "must hold strings");
          break;
        }
        st.layer_names.push_back(name.get<std::string>());
      }
    }
    if (!sr.ok()) return sr.status();
    const int first = s == 0 ? 0 : p.boundaries[s - 1];
    const int last = s + 1 == chunks ? n - 1 : p.boundaries[s] - 1;
    if (st.index != s || st.first_layer != first || st.last_layer != last) {
      return Status::Error(sr.PathOf("first_layer") + ": stage " + std::to_string(st.index) +
                           " covers layers " + std::to_string(st.first_layer) + "-" +
                           std::to_string(st.last_layer) + " but the boundaries give stage " +
                           std::to_string(s) + " layers " + std::to_string(first) + "-" +
                           std::to_string(last));
    }
    p.stages.push_back(std::move(st));
  }

  if (const Json* layout = r.Find("parallelism"); layout != nullptr && !layout->is_null()) {
    if (!layout->is_object()) return Status::Error("parallelism: must be an object");
    Result<ParallelLayout> l = LayoutFromJson(*layout, p.num_stages, p.virtual_stages);
    if (!l.ok()) return l.status();
    p.parallelism = *l;
  }
  Result<Prediction> prediction = PredictionFromJson(*predicted, "predicted", chunks);
  if (!prediction.ok()) return prediction.status();
  p.predicted = *prediction;
  if (const Json* measured = r.Find("measured"); measured != nullptr && !measured->is_null()) {
    if (!measured->is_object()) return Status::Error("measured: must be an object");
    Result<Measurement> m = MeasurementFromJson(*measured, chunks);
    if (!m.ok()) return m.status();
    p.measured = std::move(*m);
  }
  return p;
}

Result<Plan> LoadPlan(const std::string& path) {
  Result<Json> doc = ReadJsonFile(path);
  if (!doc.ok()) return doc.status();
  Result<Plan> p = PlanFromJson(*doc);
  if (!p.ok()) return p.status().Prefixed(ShownPath(path));
  return p;
}

Json PlanToJson(const Plan& p) {
  Json doc;
  doc["format"] = kPlanFormat;
  doc["tool_version"] = p.tool_version;
  if (p.model_spec) doc["model_hash"] = ModelHash(*p.model_spec);
  doc["profile_hash"] = ProfileHash(p.profile);
  doc["model"] = p.model;
  doc["schedule"] = p.schedule;
  doc["num_stages"] = p.num_stages;
  if (p.virtual_stages != 1) doc["virtual_stages"] = p.virtual_stages;
  doc["num_micro_batches"] = p.num_micro_batches;
  doc["micro_batch_size"] = p.micro_batch_size;
  doc["method"] = p.method;
  doc["objective"] = p.objective;
  if (p.objective_bound) {
    doc["objective_bound"] = {{"exact", p.objective_bound->exact},
                              {"lower_bound_ms", p.objective_bound->lower_bound_ms}};
  }
  doc["optimizer"] = OptimizerName(p.optimizer);
  doc["memory_limit_bytes"] =
      p.memory_limit_bytes ? Json(*p.memory_limit_bytes) : Json(nullptr);
  if (p.recompute_unit != RecomputeUnit::kStage) {
    doc["recompute_unit"] = RecomputeUnitName(p.recompute_unit);
  }
  if (p.recompute_unit == RecomputeUnit::kBlock) doc["recompute_blocks"] = p.recompute_blocks;
  if (p.recompute_unit == RecomputeUnit::kSelective) {
    doc["recompute_modules"] = p.recompute_modules.Names();
  }
  doc["boundaries"] = p.boundaries;
  Json stages = Json::array();
  for (const StagePlan& s : p.stages) stages.push_back(StageToJson(s));
  doc["stages"] = std::move(stages);
  if (p.parallelism) doc["parallelism"] = LayoutToJson(*p.parallelism);
  doc["predicted"] = PredictionToJson(p.predicted);
  if (p.measured) doc["measured"] = MeasurementToJson(*p.measured);
  doc["profile"] = ProfileToJson(p.profile);
  if (p.model_spec) doc["model_spec"] = ModelToJson(*p.model_spec);
  if (!p.device_profiles.empty()) {
    Json profiles = Json::object();
    for (const auto& [type, profile] : p.device_profiles) profiles[type] = ProfileToJson(profile);
    doc["device_profiles"] = std::move(profiles);
  }
  if (p.gpus_per_node && p.inter_node_link) {
    doc["gpus_per_node"] = *p.gpus_per_node;
    doc["inter_node_link"] = {{"bandwidth_bytes_per_s", p.inter_node_link->bandwidth_bytes_per_s},
                              {"latency_ms", p.inter_node_link->latency_ms}};
  }
  return doc;
}

}  // namespace pp
