#include "partitioner/plan_inputs.h"

#include <utility>

#include "core/units.h"
#include "partitioner/data_parallel.h"
#include "partitioner/search.h"
#include "profiler/analytic.h"

namespace pp {
namespace {

// Every device type's profile at `po`'s micro-batch size: the first type's is `base`, the
// others' go to `others`.
Status LoadDeviceTypes(const std::string& path, const ProfileOptions& po,
                       const std::vector<std::string>& types, ProfileSource* base,
                       std::map<std::string, Profile>* others) {
  for (const std::string& type : types) {
    if (type == types.front() || others->count(type)) continue;
    ProfileOptions one = po;
    one.device = type;
    one.device_given = true;
    Result<ProfileSource> source = LoadProfileSource(path, one);
    if (!source.ok()) return source.status().Prefixed("--device-types " + Abbreviate(type));
    (*others)[type] = std::move(source->profile);
  }
  ProfileOptions first = po;
  first.device = types.front();
  first.device_given = true;
  Result<ProfileSource> source = LoadProfileSource(path, first);
  if (!source.ok()) return source.status().Prefixed("--device-types " + Abbreviate(first.device));
  *base = std::move(*source);
  return Status::Ok();
}

// One rank's profile at the layout, in place of `source`'s (see PlanInputs::layout).
Status ApplyLayout(const PlanInputs& inputs, const ProfileOptions& po, ProfileSource* source) {
  const ParallelLayout& layout = *inputs.layout;
  const bool split = layout.tp > 1 || layout.cp > 1 || layout.ep > 1;
  if (!source->model || !po.profile_path.empty()) {
    if (split) {
      return Status::Error((source->model ? "--profile " + po.profile_path : inputs.path) +
                           ": a measured profile is one rank's only at --tp 1 --cp 1 --ep 1; "
                           "plan the model file analytically at this layout");
    }
    source->profile.link = PipelineLink(layout, source->profile);
    return Status::Ok();
  }
  std::shared_ptr<const LoadedDevice> file;
  Result<const DeviceSpec*> found = ResolveDevice(po, &file);
  if (!found.ok()) return found.status();
  const DeviceSpec* device = *found;
  std::optional<DType> dtype;
  if (po.dtype) {
    dtype = ParseDType(*po.dtype);
    if (!dtype) return Status::Error("--dtype " + Quote(*po.dtype) + " is unknown");
  }
  Result<Profile> profile =
      LayoutProfile(*source->model, *device, layout, po.micro_batch_size, dtype);
  if (!profile.ok()) return profile.status();
  source->profile = std::move(*profile);
  source->origin = "analytic " + (po.device_file.empty() ? po.device : po.device_file) +
                   " at tp " + std::to_string(layout.tp) + ", cp " +
                   std::to_string(layout.cp) + ", ep " + std::to_string(layout.ep) +
                   (layout.etp != 0 ? ", etp " + std::to_string(layout.etp) : "");
  return Status::Ok();
}

}  // namespace

Result<const DeviceSpec*> ResolveDevice(const ProfileOptions& po,
                                        std::shared_ptr<const LoadedDevice>* file) {
  if (!po.device_file.empty()) {
    Result<std::shared_ptr<const LoadedDevice>> loaded = LoadDeviceFile(po.device_file);
    if (!loaded.ok()) return loaded.status();
    *file = std::move(*loaded);
    return &(*file)->spec;
  }
  const DeviceSpec* device = FindDevice(po.device);
  if (device == nullptr) {
    return Status::Error("--device " + Quote(po.device) + " is unknown (known: " +
                         KnownDeviceKeys() + ")");
  }
  return device;
}

Result<Profile> LayoutProfile(const Model& model, const DeviceSpec& device,
                              const ParallelLayout& layout,
                              std::optional<int64_t> micro_batch_size,
                              std::optional<DType> dtype) {
  // Megatron-LM refuses to train MoE layers under tensor parallelism without sequence
  // parallelism (megatron/core/transformer/moe/moe_layer.py).
  if (layout.tp > 1 && !layout.sequence_parallel) {
    for (const Layer& l : model.layers) {
      if (l.op == LayerKind::kTransformerBlock && l.experts > 0) {
        return Status::Error("layer " + Quote(l.name) + " is a mixture of experts: under --tp " +
                             std::to_string(layout.tp) + " it needs --sequence-parallel on "
                             "(Megatron-LM trains MoE layers under tensor parallelism only with "
                             "sequence parallelism)");
      }
    }
  }
  // Megatron-LM overlaps the experts' all-to-all only in bf16 or fp16 models (fp8 training
  // keeps bf16 parameters), megatron/core/transformer/transformer_config.py.
  if (ExpertOverlapApplies(layout) && dtype.value_or(model.dtype) == DType::kFp32) {
    return Status::Error(
        "--overlap-expert-comm on needs a bf16 or fp8 model (Megatron-LM "
        "overlaps the experts' all-to-all only in bf16 and fp16 training); "
        "give --dtype bf16");
  }
  AnalyticOptions options;
  options.micro_batch_size = micro_batch_size;
  options.dtype = dtype;
  options.layout = layout;
  options.flash_attention = layout.fused_attention;
  Result<Profile> profile = AnalyticProfile(model, device, options);
  if (!profile.ok()) return profile.status();
  profile->link = PipelineLink(layout, *profile);
  return profile;
}

Result<std::string> LoadPlanInputs(const PlanInputs& inputs, PlanRequest* request) {
  const bool search = request->search.has_value();
  const std::vector<std::string>& types = request->devices.stage_type;
  if (!types.empty() && (!inputs.profile_paths.empty() || inputs.profile.device_given)) {
    return Status::Error("--device-types profiles each type analytically (or from the measured "
                         "profiles beside the model); drop --profile and --device");
  }
  if (!search && inputs.profile_paths.size() > 1) {
    return Status::Error("--profile is given " + std::to_string(inputs.profile_paths.size()) +
                         " times; several profiles (one per micro-batch size) go with --stages "
                         "auto");
  }
  if (!search && !types.empty() && request->num_stages != 0 &&
      request->num_stages != static_cast<int>(types.size())) {
    return Status::Error("--device-types names " + std::to_string(types.size()) +
                         " devices but --stages is " + std::to_string(request->num_stages));
  }
  // One set of options per micro-batch size to load.
  std::vector<ProfileOptions> sizes;
  if (!search) {
    ProfileOptions po = inputs.profile;
    if (!inputs.profile_paths.empty()) po.profile_path = inputs.profile_paths.front();
    sizes.push_back(po);
  } else if (!inputs.profile_paths.empty()) {
    for (const std::string& path : inputs.profile_paths) {
      ProfileOptions po;
      po.profile_path = path;
      sizes.push_back(po);
    }
  } else {
    for (int64_t b : MicroBatchSizeCandidates(request->search->gpus_total,
                                              request->search->global_batch)) {
      ProfileOptions po = inputs.profile;
      po.micro_batch_size = b;
      sizes.push_back(po);
    }
    if (sizes.empty()) {
      return Status::Error("--global-batch " + std::to_string(request->search->global_batch) +
                           " cannot be cut into whole micro-batches on --gpus-total " +
                           std::to_string(request->search->gpus_total) +
                           " for any micro-batch size up to 64");
    }
  }
  std::vector<ProfilesAtSize> loaded;
  std::string origin;
  std::optional<Model> model;
  for (const ProfileOptions& po : sizes) {
    ProfilesAtSize at;
    ProfileSource source;
    if (types.empty()) {
      Result<ProfileSource> s = LoadProfileSource(inputs.path, po);
      if (!s.ok()) return s.status();
      source = std::move(*s);
      if (inputs.layout) PP_RETURN_IF_ERROR(ApplyLayout(inputs, po, &source));
    } else {
      PP_RETURN_IF_ERROR(LoadDeviceTypes(inputs.path, po, types, &source, &at.device_profiles));
    }
    if (search && !source.model) {
      return Status::Error(inputs.path + ": --stages auto needs a model file");
    }
    for (const ProfilesAtSize& seen : loaded) {
      if (seen.profile.micro_batch_size == source.profile.micro_batch_size) {
        return Status::Error("--profile: two profiles at micro-batch size " +
                             std::to_string(seen.profile.micro_batch_size) +
                             "; give one per size");
      }
    }
    if (loaded.empty()) {
      origin = source.origin;
      model = std::move(source.model);
    }
    at.profile = std::move(source.profile);
    loaded.push_back(std::move(at));
  }
  request->profile = std::move(loaded.front().profile);
  request->devices.profiles = std::move(loaded.front().device_profiles);
  request->model = std::move(model);
  if (search) {
    request->search->other_sizes.assign(std::make_move_iterator(loaded.begin() + 1),
                                        std::make_move_iterator(loaded.end()));
  }
  if (!inputs.memory_limit_given) {
    request->memory_limit = request->profile.device.memory_bytes;
    // Heterogeneous devices: each stage under its own device's memory.
    request->devices.per_device_memory = request->devices.heterogeneous();
  }
  return origin;
}

}  // namespace pp
