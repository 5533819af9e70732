#include "profiler/device_file.h"

#include <span>

#include "core/units.h"

namespace pp {
namespace {

constexpr std::string_view kTopFields[] = {
    "format",
    "key",
    "name",
    "source",
    "bf16_flops_per_s",
    "fp32_flops_per_s",
    "fp8_flops_per_s",
    "memory_bytes_per_s",
    "memory_bytes",
    "link_bytes_per_s",
    "link_latency_ms",
    "node_bus_bytes_per_s",
    "node_latency_ms",
    "network_bus_bytes_per_s",
    "network_latency_ms",
    "efficiency",
};
constexpr std::string_view kEfficiencyFields[] = {
    "gemm",     "attention_forward", "attention_backward", "memory",       "launch_ms",
    "sm_count", "gemm_points",       "gemm_fixed_ms",      "gemm_depth_k", "source",
};
constexpr std::string_view kDTypeFields[] = {"bf16", "fp32", "fp8"};
constexpr std::string_view kAttentionDTypeFields[] = {"bf16", "fp8"};
constexpr std::string_view kPointFields[] = {"dtype", "m", "n", "k", "batch", "flops_per_s"};

// Fails on the first key of `object` that `known` does not list.
void RejectUnknown(const Json& object, std::span<const std::string_view> known, FieldReader* r) {
  if (!object.is_object()) return;
  for (const auto& [key, value] : object.items()) {
    bool listed = false;
    for (std::string_view k : known) listed = listed || k == key;
    if (!listed) {
      r->Fail(key, "is not a field of " + std::string(kDeviceFormat));
      return;
    }
  }
}

// A fraction in (0, 1].
double Fraction(FieldReader* r, std::string_view key) {
  const double f = r->Positive(key);
  if (r->ok() && f > 1)
    r->Fail(key, "must be a fraction in (0, 1] (got " + DescribeValue(Json(f)) + ")");
  return f;
}

// {"bf16": f, "fp32": f, "fp8": f} fractions (no "fp32" when `fp32` is null: attention runs
// bf16 or fp8); fp8 may be left out (1).
Status ReadPerDType(const Json& object, const std::string& path, double* bf16, double* fp32,
                    double* fp8) {
  FieldReader r(object, path);
  RejectUnknown(object,
                fp32 != nullptr ? std::span<const std::string_view>(kDTypeFields)
                                : std::span<const std::string_view>(kAttentionDTypeFields),
                &r);
  *bf16 = Fraction(&r, "bf16");
  if (fp32 != nullptr) *fp32 = Fraction(&r, "fp32");
  *fp8 = r.Has("fp8") ? Fraction(&r, "fp8") : 1;
  return r.status();
}

// {"bf16": k0, "fp32": k0, "fp8": k0}, each >= 0 and optional (0).
Status ReadDepths(const Json& object, const std::string& path, DeviceEfficiency* e) {
  FieldReader r(object, path);
  RejectUnknown(object, kDTypeFields, &r);
  e->gemm_depth_k_bf16 = r.OptNonNegative("bf16").value_or(0);
  e->gemm_depth_k_fp32 = r.OptNonNegative("fp32").value_or(0);
  e->gemm_depth_k_fp8 = r.OptNonNegative("fp8").value_or(0);
  return r.status();
}

Status ReadPoint(const Json& object, const std::string& path, GemmPoint* p) {
  FieldReader r(object, path);
  RejectUnknown(object, kPointFields, &r);
  const std::string dtype = r.String("dtype");
  if (r.ok()) {
    if (auto d = ParseDType(dtype))
      p->dtype = *d;
    else
      r.Fail("dtype",
             "must be \"bf16\", \"fp32\" or \"fp8\" (got " + DescribeValue(Json(dtype)) + ")");
  }
  p->m = r.Positive("m");
  p->n = r.Positive("n");
  p->k = r.Positive("k");
  p->batch = r.Has("batch") ? r.Positive("batch") : 1;
  p->flops_per_s = r.Positive("flops_per_s");
  return r.status();
}

Status ReadEfficiency(const Json& object, LoadedDevice* d) {
  FieldReader r(object, "efficiency");
  RejectUnknown(object, kEfficiencyFields, &r);
  DeviceEfficiency& e = d->spec.efficiency;
  const Json* gemm = r.Object("gemm");
  const Json* forward = r.Object("attention_forward");
  const Json* backward = r.Object("attention_backward");
  e.memory = Fraction(&r, "memory");
  e.launch_ms = r.NonNegative("launch_ms");
  e.sm_count = static_cast<int>(r.Int("sm_count", 0, 100000));
  e.gemm_fixed_ms = r.OptNonNegative("gemm_fixed_ms").value_or(0);
  const Json* depths = r.Has("gemm_depth_k") ? r.Object("gemm_depth_k") : nullptr;
  d->efficiency_source = r.OptString("source").value_or("");
  const Json* points = r.Has("gemm_points") ? r.Array("gemm_points") : nullptr;
  if (!r.ok()) return r.status();
  PP_RETURN_IF_ERROR(
      ReadPerDType(*gemm, "efficiency.gemm", &e.gemm_bf16, &e.gemm_fp32, &e.gemm_fp8));
  PP_RETURN_IF_ERROR(ReadPerDType(*forward, "efficiency.attention_forward",
                                  &e.attention_forward_bf16, nullptr, &e.attention_forward_fp8));
  PP_RETURN_IF_ERROR(ReadPerDType(*backward, "efficiency.attention_backward",
                                  &e.attention_backward_bf16, nullptr, &e.attention_backward_fp8));
  if (depths != nullptr) PP_RETURN_IF_ERROR(ReadDepths(*depths, "efficiency.gemm_depth_k", &e));
  if (points != nullptr) {
    if (points->size() > kMaxGemmPoints) {
      return Status::Error("efficiency.gemm_points: more than " + std::to_string(kMaxGemmPoints) +
                           " points");
    }
    for (size_t i = 0; i < points->size(); ++i) {
      GemmPoint p;
      PP_RETURN_IF_ERROR(
          ReadPoint((*points)[i], "efficiency.gemm_points[" + std::to_string(i) + "]", &p));
      d->gemm_points.push_back(p);
    }
  }
  return Status::Ok();
}

Json PerDType(double bf16, const double* fp32, double fp8) {
  Json j = Json::object();
  j["bf16"] = bf16;
  if (fp32 != nullptr) j["fp32"] = *fp32;
  j["fp8"] = fp8;
  return j;
}

}  // namespace

Result<std::shared_ptr<const LoadedDevice>> DeviceFromJson(const Json& doc) {
  auto d = std::make_shared<LoadedDevice>();
  DeviceSpec& s = d->spec;
  FieldReader r(doc, "");
  r.Format(kDeviceFormat);
  RejectUnknown(doc, kTopFields, &r);
  d->key = r.Name("key");
  d->name = r.Name("name");
  d->source = r.OptString("source").value_or("");
  s.bf16_flops_per_s = r.Positive("bf16_flops_per_s");
  s.fp32_flops_per_s = r.Positive("fp32_flops_per_s");
  s.fp8_flops_per_s = r.OptNonNegative("fp8_flops_per_s").value_or(0);
  s.memory_bytes_per_s = r.Positive("memory_bytes_per_s");
  s.memory_bytes = r.Bytes("memory_bytes");
  if (r.ok() && s.memory_bytes == 0) r.Fail("memory_bytes", "must be greater than 0");
  s.link_bytes_per_s = r.Positive("link_bytes_per_s");
  s.link_latency_ms = r.NonNegative("link_latency_ms");
  s.node_bus_bytes_per_s = r.Positive("node_bus_bytes_per_s");
  s.node_latency_ms = r.NonNegative("node_latency_ms");
  s.network_bus_bytes_per_s = r.Positive("network_bus_bytes_per_s");
  s.network_latency_ms = r.NonNegative("network_latency_ms");
  const Json* efficiency = r.Object("efficiency");
  if (!r.ok()) return r.status();
  PP_RETURN_IF_ERROR(ReadEfficiency(*efficiency, d.get()));
  // The views last as long as `d`, which is never moved.
  s.key = d->key;
  s.name = d->name;
  s.source = d->source;
  s.efficiency.source = d->efficiency_source;
  s.efficiency.gemm_points = d->gemm_points;
  return std::shared_ptr<const LoadedDevice>(std::move(d));
}

Result<std::shared_ptr<const LoadedDevice>> LoadDeviceFile(const std::string& path) {
  Result<Json> doc = ReadJsonFile(path);
  if (!doc.ok()) return doc.status();
  Result<std::shared_ptr<const LoadedDevice>> device = DeviceFromJson(*doc);
  if (!device.ok()) return device.status().Prefixed(ShownPath(path));
  return device;
}

Json DeviceToJson(const DeviceSpec& s) {
  const DeviceEfficiency& e = s.efficiency;
  Json doc = Json::object();
  doc["format"] = kDeviceFormat;
  doc["key"] = s.key;
  doc["name"] = s.name;
  doc["source"] = s.source;
  doc["bf16_flops_per_s"] = s.bf16_flops_per_s;
  doc["fp32_flops_per_s"] = s.fp32_flops_per_s;
  doc["fp8_flops_per_s"] = s.fp8_flops_per_s;
  doc["memory_bytes_per_s"] = s.memory_bytes_per_s;
  doc["memory_bytes"] = s.memory_bytes;
  doc["link_bytes_per_s"] = s.link_bytes_per_s;
  doc["link_latency_ms"] = s.link_latency_ms;
  doc["node_bus_bytes_per_s"] = s.node_bus_bytes_per_s;
  doc["node_latency_ms"] = s.node_latency_ms;
  doc["network_bus_bytes_per_s"] = s.network_bus_bytes_per_s;
  doc["network_latency_ms"] = s.network_latency_ms;
  Json eff = Json::object();
  eff["gemm"] = PerDType(e.gemm_bf16, &e.gemm_fp32, e.gemm_fp8);
  eff["attention_forward"] = PerDType(e.attention_forward_bf16, nullptr, e.attention_forward_fp8);
  eff["attention_backward"] =
      PerDType(e.attention_backward_bf16, nullptr, e.attention_backward_fp8);
  eff["memory"] = e.memory;
  eff["launch_ms"] = e.launch_ms;
  eff["sm_count"] = e.sm_count;
  eff["gemm_fixed_ms"] = e.gemm_fixed_ms;
  eff["gemm_depth_k"] = PerDType(e.gemm_depth_k_bf16, &e.gemm_depth_k_fp32, e.gemm_depth_k_fp8);
  Json points = Json::array();
  for (const GemmPoint& p : e.gemm_points) {
    Json j = Json::object();
    j["dtype"] = DTypeName(p.dtype);
    j["m"] = p.m;
    j["n"] = p.n;
    j["k"] = p.k;
    j["batch"] = p.batch;
    j["flops_per_s"] = p.flops_per_s;
    points.push_back(std::move(j));
  }
  eff["gemm_points"] = std::move(points);
  eff["source"] = e.source;
  doc["efficiency"] = std::move(eff);
  return doc;
}

}  // namespace pp
