#include "profiler/profile_source.h"

#include <filesystem>

#include "profiler/backend.h"
#include "core/units.h"

namespace pp {
namespace {

// A measured profile matches when it names the model, has the same layer names, and was
// taken at the requested micro-batch size and dtype.
bool Matches(const Profile& p, const Model& m, int64_t micro_batch_size, DType dtype) {
  if (p.model != m.name || p.layers.size() != m.layers.size()) return false;
  if (p.micro_batch_size != micro_batch_size || p.dtype != dtype) return false;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    if (p.layers[i].name != m.layers[i].name) return false;
  }
  return true;
}

}  // namespace

Result<ProfileSource> LoadProfileSource(const std::string& path, const ProfileOptions& options) {
  Result<Json> doc = ReadJsonFile(path);
  if (!doc.ok()) return doc.status();
  const Json* format = doc->is_object() && doc->contains("format") ? &(*doc)["format"] : nullptr;
  if (format != nullptr && format->is_string() && *format == kProfileFormat) {
    if (options.device_given || !options.device_file.empty() || options.micro_batch_size ||
        options.dtype) {
      return Status::Error(ShownPath(path) + ": is a profile; --device, --device-file, "
                                  "--micro-batch-size and --dtype apply to model files only");
    }
    Result<Profile> profile = ProfileFromJson(*doc);
    if (!profile.ok()) return profile.status().Prefixed(ShownPath(path));
    return ProfileSource{std::move(*profile), std::nullopt, "profile file " + path};
  }
  if (format == nullptr || !format->is_string() || *format != kModelFormat) {
    return Status::Error(ShownPath(path) + ": format: expected \"" + std::string(kModelFormat) +
                         "\" or \"" + std::string(kProfileFormat) + "\"" +
                         (format == nullptr ? " (the field is missing)"
                                            : " (got " + DescribeValue(*format) + ")"));
  }
  Result<Model> model = ModelFromJson(*doc);
  if (!model.ok()) return model.status().Prefixed(ShownPath(path));

  ProfileRequest request;
  request.model = &*model;
  request.device = options.device;
  request.device_file = options.device_file;
  request.layout = options.layout;
  request.flash_attention = options.flash_attention;
  request.micro_batch_size = options.micro_batch_size;
  if (options.dtype) {
    std::optional<DType> d = ParseDType(*options.dtype);
    if (!d) return Status::Error("--dtype must be bf16, fp32 or fp8 (got \"" + *options.dtype + "\")");
    request.dtype = d;
  }

  if (!options.profile_path.empty()) {
    Result<Profile> p = LoadProfile(options.profile_path);
    if (!p.ok()) return p.status();
    if (p->model != model->name || p->layers.size() != model->layers.size()) {
      return Status::Error(options.profile_path + ": is a profile of \"" + p->model + "\" with " +
                           std::to_string(p->layers.size()) + " layers, not of " + path + " (\"" +
                           model->name + "\", " + std::to_string(model->layers.size()) + " layers)");
    }
    for (size_t i = 0; i < model->layers.size(); ++i) {
      if (p->layers[i].name != model->layers[i].name) {
        return Status::Error(options.profile_path + ": layers[" + std::to_string(i) + "].name: \"" +
                             p->layers[i].name + "\" does not match the model's \"" +
                             model->layers[i].name + "\"");
      }
    }
    if (p->micro_batch_size != model->input.micro_batch_size) {
      model->input.micro_batch_size = p->micro_batch_size;  // the plan runs what was measured
    }
    return ProfileSource{std::move(*p), std::move(*model), "measured " + options.profile_path};
  }
  const std::filesystem::path measured = std::filesystem::path(path).parent_path() / "profiles" /
                                         options.device / (model->name + ".profile.json");
  std::error_code ec;
  // A device file describes its own device, and a measured profile is of whole layers on one
  // GPU: neither a device file nor a split layer has a measured profile standing for it.
  const ParallelLayout& l = options.layout;
  const bool whole_layers = l.tp == 1 && l.cp == 1 && l.ep == 1;
  if (options.device_file.empty() && whole_layers &&
      std::filesystem::is_regular_file(measured, ec)) {
    Result<Profile> p = LoadProfile(measured.string());
    if (!p.ok()) return p.status();
    const int64_t mbs = options.micro_batch_size.value_or(model->input.micro_batch_size);
    if (Matches(*p, *model, mbs, request.dtype.value_or(model->dtype))) {
      return ProfileSource{std::move(*p), std::move(*model), "measured " + measured.string()};
    }
  }
  const ProfilerBackend* analytic = FindBackend("analytic");
  Result<Profile> p = analytic->Run(request);
  if (!p.ok()) return p.status();
  return ProfileSource{std::move(*p), std::move(*model),
                       "analytic " + (options.device_file.empty() ? options.device
                                                                   : options.device_file)};
}

}  // namespace pp
