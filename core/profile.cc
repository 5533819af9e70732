#include "core/profile.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/units.h"

namespace pp {
namespace {

std::string Number(double v) { return Printf("%.6g", v); }

uint64_t LargestOutput(const Profile& profile) {
  uint64_t largest = 0;
  for (const LayerProfile& l : profile.layers) largest = std::max(largest, l.output_bytes);
  return largest;
}

// A layer's "recompute_modules": {"mlp": {"forward_ms": ..., "bytes": ...}, ...}, every
// module but core_attn (whose figures are core_attention_ms and core_attention_bytes).
Status ReadModules(FieldReader& l, LayerProfile* lp) {
  const Json* modules = l.Object("recompute_modules");
  if (modules == nullptr) return l.status();
  const std::string at = l.PathOf("recompute_modules");
  for (const auto& [key, value] : modules->items()) {
    const std::optional<RecomputeModule> m = ParseRecomputeModule(key);
    if (!m) {
      return Status::Error(at + ": unknown module " + DescribeValue(Json(key)) +
                           " (the modules: " + RecomputeModuleList() + ")");
    }
    if (*m == RecomputeModule::kCoreAttn) {
      return Status::Error(at + ": core_attn's figures are core_attention_ms and " +
                           "core_attention_bytes, not an entry here");
    }
    if (!value.is_object()) {
      return Status::Error(at + "." + key + ": must be an object {\"forward_ms\", \"bytes\"}");
    }
    FieldReader f(value, at + "." + key);
    const ModuleFigures figures{f.NonNegative("forward_ms"), f.Bytes("bytes")};
    if (f.ok() && figures.forward_ms > kMaxLayerMs) {
      f.Fail("forward_ms", "is over 1e9 ms; check the units (milliseconds)");
    }
    if (f.ok() && figures.bytes > lp->activation_bytes) {
      f.Fail("bytes",
             "is more than activation_bytes (" + std::to_string(lp->activation_bytes) + ")");
    }
    if (!f.ok()) return f.status();
    lp->module(*m) = figures;
  }
  return Status::Ok();
}

}  // namespace

ModuleFigures LayerProfile::Dropped(RecomputeModules set) const {
  const RecomputeModules outermost = set.Outermost();
  ModuleFigures out;
  for (int i = 0; i < kRecomputeModuleCount; ++i) {
    if (!outermost.Has(static_cast<RecomputeModule>(i)) || !modules[i]) continue;
    out.forward_ms += modules[i]->forward_ms;
    out.bytes += modules[i]->bytes;  // each at most 2^53: no overflow
  }
  return out;
}

ModuleFigures LayerProfile::Selective(RecomputeModules set) const {
  ModuleFigures out = Dropped(set);
  out.bytes = std::min(out.bytes, activation_bytes);
  return out;
}

Status CheckLink(const Link& link, uint64_t max_bytes, const std::string& where) {
  if (!(link.latency_ms >= 0) || !(link.latency_ms <= kMaxLayerMs)) {
    return Status::Error(where + ".latency_ms: " + Number(link.latency_ms) +
                         " must be between 0 and 1e9 ms; check the units (milliseconds)");
  }
  const double bandwidth = link.bandwidth_bytes_per_s;
  if (!(bandwidth > 0) || !std::isfinite(bandwidth)) {
    return Status::Error(where + ".bandwidth_bytes_per_s: " + Number(bandwidth) +
                         " must be a finite number greater than 0");
  }
  const double ms = link.TransferMs(max_bytes);
  if (!(ms <= kMaxLayerMs)) {
    return Status::Error(where + ".bandwidth_bytes_per_s: " + Number(bandwidth) +
                         " bytes/s makes sending " + std::to_string(max_bytes) + " bytes take " +
                         Number(ms) + " ms, over 1e9 ms; check the units (bytes per second)");
  }
  return Status::Ok();
}

Status CheckProfileTimes(const Profile& profile, const std::string& base) {
  auto at = [&](const std::string& p) { return base.empty() ? p : base + "." + p; };
  for (size_t i = 0; i < profile.layers.size(); ++i) {
    const LayerProfile& l = profile.layers[i];
    const std::pair<const char*, std::optional<double>> times[] = {
        {"forward_ms", l.forward_ms},
        {"backward_ms", l.backward_ms},
        {"backward_input_ms", l.backward_input_ms},
        {"backward_weight_ms", l.backward_weight_ms}};
    for (const auto& [key, ms] : times) {
      if (ms && !(*ms >= 0 && *ms <= kMaxLayerMs)) {
        return Status::Error(at("layers[" + std::to_string(i) + "]." + key) + ": " +
                             Number(*ms) + " must be between 0 and 1e9 ms; check the units "
                             "(milliseconds)");
      }
    }
    for (int m = 0; m < kRecomputeModuleCount; ++m) {
      const auto module = static_cast<RecomputeModule>(m);
      const double ms = l.module(module) ? l.module(module)->forward_ms : 0.0;
      if (!(ms >= 0 && ms <= kMaxLayerMs)) {
        const std::string key =
            module == RecomputeModule::kCoreAttn
                ? std::string("core_attention_ms")
                : "recompute_modules." + std::string(RecomputeModuleName(module)) + ".forward_ms";
        return Status::Error(at("layers[" + std::to_string(i) + "]." + key) + ": " + Number(ms) +
                             " must be between 0 and 1e9 ms; check the units "
                             "(milliseconds)");
      }
    }
  }
  return CheckLink(profile.link, LargestOutput(profile), at("link"));
}

Result<Profile> ProfileFromJson(const Json& doc, const std::string& base) {
  auto at = [&](const std::string& p) { return base.empty() ? p : base + "." + p; };
  FieldReader r(doc, base);
  r.Format(kProfileFormat);
  Profile p;
  p.model = r.Name("model");
  p.backend = r.String("backend");
  p.micro_batch_size = r.Int("micro_batch_size", 1, kMaxMicroBatchSize);
  const std::string dtype = r.String("dtype");
  if (r.ok()) {
    if (auto d = ParseDType(dtype)) p.dtype = *d;
    else r.Fail("dtype", "must be \"bf16\", \"fp32\" or \"fp8\" (got " + DescribeValue(Json(dtype)) + ")");
  }
  if (r.ok() && p.backend != "analytic" && p.backend != "cpu" && p.backend != "cuda") {
    r.Fail("backend", "must be \"analytic\", \"cpu\" or \"cuda\" (got " +
                          DescribeValue(Json(p.backend)) + ")");
  }
  p.measured_at = r.OptString("measured_at");
  p.driver = r.OptString("driver");
  p.tool_version = r.OptString("tool_version");
  if (r.Has("sm_share")) {
    p.sm_share = r.Positive("sm_share");
    if (r.ok() && *p.sm_share > 1) r.Fail("sm_share", "must be in (0, 1]");
  }
  const Json* device = r.Object("device");
  const Json* link = r.Object("link");
  const Json* layers = r.Array("layers");
  if (!r.ok()) return r.status();

  FieldReader d(*device, at("device"));
  p.device.name = d.Name("name");
  p.device.memory_bytes = d.Bytes("memory_bytes");
  if (!d.ok()) return d.status();

  FieldReader k(*link, at("link"));
  p.link.bandwidth_bytes_per_s = k.Positive("bandwidth_bytes_per_s");
  p.link.latency_ms = k.NonNegative("latency_ms");
  if (!k.ok()) return k.status();

  if (layers->empty()) return Status::Error(at("layers") + ": the profile has no layers");
  if (layers->size() > static_cast<size_t>(kMaxLayers)) {
    return Status::Error(at("layers") + ": more than " + std::to_string(kMaxLayers) + " layers");
  }
  std::unordered_map<std::string, size_t> seen;
  p.layers.reserve(layers->size());
  for (size_t i = 0; i < layers->size(); ++i) {
    FieldReader l((*layers)[i], at("layers[" + std::to_string(i) + "]"));
    LayerProfile lp;
    lp.name = l.Name("name");
    lp.op = l.OptString("op").value_or("");
    lp.mtp = l.Bool("mtp", false);
    if (l.ok() && lp.mtp && lp.op != "transformer_block") {
      l.Fail("mtp", "a multi-token prediction block has op \"transformer_block\"");
    }
    lp.forward_ms = l.NonNegative("forward_ms");
    lp.backward_ms = l.NonNegative("backward_ms");
    lp.param_bytes = l.Bytes("param_bytes");
    if (std::optional<uint64_t> experts = l.OptBytes("expert_param_bytes")) {
      lp.expert_param_bytes = *experts;
    }
    lp.activation_bytes = l.Bytes("activation_bytes");
    lp.output_bytes = l.Bytes("output_bytes");
    lp.backward_input_ms = l.OptNonNegative("backward_input_ms");
    lp.backward_weight_ms = l.OptNonNegative("backward_weight_ms");
    lp.kernel_ms = l.OptNonNegative("kernel_ms");
    lp.kernel_count = l.OptInt("kernel_count", 0, INT64_MAX);
    lp.workspace_bytes = l.OptBytes("workspace_bytes");
    lp.forward_p95_ms = l.OptNonNegative("forward_p95_ms");
    const std::optional<double> core_ms = l.OptNonNegative("core_attention_ms");
    const std::optional<uint64_t> core_bytes = l.OptBytes("core_attention_bytes");
    if (core_ms || core_bytes) {
      lp.module(RecomputeModule::kCoreAttn) =
          ModuleFigures{core_ms.value_or(0.0), core_bytes.value_or(0)};
    }
    if (l.ok() && l.Has("recompute_modules")) {
      const Status modules = ReadModules(l, &lp);
      if (!modules.ok()) return modules;
    }
    lp.tied_to = l.OptString("tied_to").value_or("");
    lp.tied_param_bytes = l.OptBytes("tied_param_bytes").value_or(0);
    if (l.ok() && lp.tied_to.empty() != (lp.tied_param_bytes == 0)) {
      l.Fail(lp.tied_to.empty() ? "tied_param_bytes" : "tied_to",
             "tied_to and a positive tied_param_bytes come together");
    }
    if (l.ok() && lp.tied_param_bytes > lp.param_bytes) {
      l.Fail("tied_param_bytes",
             "is more than param_bytes (" + std::to_string(lp.param_bytes) + ")");
    }
    for (const char* key : {"forward_ms", "backward_ms"}) {
      const double ms = std::string_view(key) == "forward_ms" ? lp.forward_ms : lp.backward_ms;
      if (l.ok() && ms > kMaxLayerMs) l.Fail(key, "is over 1e9 ms; check the units (milliseconds)");
    }
    if (l.ok() && lp.expert_param_bytes > lp.param_bytes) {
      l.Fail("expert_param_bytes", "is more than param_bytes (" +
                                       std::to_string(lp.param_bytes) + ")");
    }
    if (l.ok() && lp.module(RecomputeModule::kCoreAttn) &&
        lp.module(RecomputeModule::kCoreAttn)->bytes > lp.activation_bytes) {
      l.Fail("core_attention_bytes",
             "is more than activation_bytes (" + std::to_string(lp.activation_bytes) + ")");
    }
    if (l.ok()) {
      // What the most modules drop together: every module (moe holding its parts), or every
      // one but moe.
      const RecomputeModules all = RecomputeModules::All();
      const uint64_t most =
          std::max(lp.Dropped(all).bytes, lp.Dropped(all.Without(RecomputeModule::kMoe)).bytes);
      if (most > lp.activation_bytes) {
        l.Fail("recompute_modules", "the modules drop more together than activation_bytes (" +
                                        std::to_string(lp.activation_bytes) + ")");
      }
    }
    if (l.ok() && !lp.op.empty() && !ParseLayerKind(lp.op)) {
      l.Fail("op", "unknown op " + DescribeValue(Json(lp.op)));
    }
    if (l.ok()) {
      auto [it, inserted] = seen.emplace(lp.name, i);
      if (!inserted) {
        l.Fail("name", "duplicate layer name " + DescribeValue(Json(lp.name)) +
                           " (also layers[" + std::to_string(it->second) + "])");
      }
    }
    if (!l.ok()) return l.status();
    p.layers.push_back(std::move(lp));
  }
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const LayerProfile& lp = p.layers[i];
    if (lp.tied_to.empty()) continue;
    const std::string field = at("layers[" + std::to_string(i) + "].tied_to");
    auto it = seen.find(lp.tied_to);
    if (it == seen.end() || it->second == i) {
      return Status::Error(
          field + ": " + DescribeValue(Json(lp.tied_to)) +
          (it == seen.end() ? " is not a layer of the profile" : " is the layer itself"));
    }
    if (p.layers[it->second].param_bytes < lp.tied_param_bytes) {
      return Status::Error(field + ": " + DescribeValue(Json(lp.tied_to)) +
                           " has fewer param_bytes (" +
                           std::to_string(p.layers[it->second].param_bytes) +
                           ") than the tied_param_bytes it shares");
    }
  }
  PP_RETURN_IF_ERROR(CheckLink(p.link, LargestOutput(p), at("link")));
  return p;
}

Result<Profile> LoadProfile(const std::string& path) {
  Result<Json> doc = ReadJsonFile(path);
  if (!doc.ok()) return doc.status();
  Result<Profile> p = ProfileFromJson(*doc);
  if (!p.ok()) return p.status().Prefixed(ShownPath(path));
  return p;
}

Json ProfileToJson(const Profile& p) {
  Json doc;
  doc["format"] = kProfileFormat;
  doc["model"] = p.model;
  doc["backend"] = p.backend;
  doc["device"] = {{"name", p.device.name}, {"memory_bytes", p.device.memory_bytes}};
  doc["micro_batch_size"] = p.micro_batch_size;
  doc["dtype"] = DTypeName(p.dtype);
  doc["link"] = {{"bandwidth_bytes_per_s", p.link.bandwidth_bytes_per_s},
                 {"latency_ms", p.link.latency_ms}};
  if (p.measured_at) doc["measured_at"] = *p.measured_at;
  if (p.driver) doc["driver"] = *p.driver;
  if (p.tool_version) doc["tool_version"] = *p.tool_version;
  if (p.sm_share) doc["sm_share"] = *p.sm_share;
  Json layers = Json::array();
  for (const LayerProfile& lp : p.layers) {
    Json l;
    l["name"] = lp.name;
    if (!lp.op.empty()) l["op"] = lp.op;
    if (lp.mtp) l["mtp"] = true;
    l["forward_ms"] = lp.forward_ms;
    l["backward_ms"] = lp.backward_ms;
    if (lp.backward_input_ms) l["backward_input_ms"] = *lp.backward_input_ms;
    if (lp.backward_weight_ms) l["backward_weight_ms"] = *lp.backward_weight_ms;
    l["param_bytes"] = lp.param_bytes;
    if (lp.expert_param_bytes > 0) l["expert_param_bytes"] = lp.expert_param_bytes;
    l["activation_bytes"] = lp.activation_bytes;
    l["output_bytes"] = lp.output_bytes;
    if (lp.kernel_ms) l["kernel_ms"] = *lp.kernel_ms;
    if (lp.kernel_count) l["kernel_count"] = *lp.kernel_count;
    if (lp.workspace_bytes) l["workspace_bytes"] = *lp.workspace_bytes;
    if (lp.forward_p95_ms) l["forward_p95_ms"] = *lp.forward_p95_ms;
    if (const std::optional<ModuleFigures>& core = lp.module(RecomputeModule::kCoreAttn)) {
      l["core_attention_ms"] = core->forward_ms;
      l["core_attention_bytes"] = core->bytes;
    }
    Json modules = Json::object();
    for (int m = 1; m < kRecomputeModuleCount; ++m) {
      const auto module = static_cast<RecomputeModule>(m);
      if (const std::optional<ModuleFigures>& f = lp.module(module)) {
        modules[std::string(RecomputeModuleName(module))] = {{"forward_ms", f->forward_ms},
                                                             {"bytes", f->bytes}};
      }
    }
    if (!modules.empty()) l["recompute_modules"] = std::move(modules);
    if (!lp.tied_to.empty()) {
      l["tied_to"] = lp.tied_to;
      l["tied_param_bytes"] = lp.tied_param_bytes;
    }
    layers.push_back(std::move(l));
  }
  doc["layers"] = std::move(layers);
  return doc;
}

}  // namespace pp
