// Loading what a planning request names: the profile of its input file (a profile file as it
// is; a model file measured or analytic, as profiler/profile_source.h chooses), each device
// type's profile, and with a search one profile per micro-batch size; then the defaults that
// depend on them (the memory limit is the device's memory unless one is given).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "partitioner/request.h"
#include "profiler/device_file.h"
#include "profiler/device_table.h"
#include "profiler/profile_source.h"

namespace pp {

struct PlanInputs {
  std::string path;         // a model or profile file
  ProfileOptions profile;   // --device, --micro-batch-size, --dtype; profile_path unused here
  // --profile: a measured profile of the model file; with a search, one per micro-batch size.
  std::vector<std::string> profile_paths;
  bool memory_limit_given = false;  // else each device's own memory
  // A layout (plan --tp/--cp/--ep/--zero/--gpus-total): the profile is the model's analytic
  // one at that layout (AnalyticOptions with the layout and its attention kernels) on the device, with
  // the pipeline link of the layout (partitioner/data_parallel.h PipelineLink). A measured
  // profile (a profile file, --profile) is one rank's only at tp = cp = ep = 1; otherwise an
  // error.
  std::optional<ParallelLayout> layout;
};

// The analytic profile of `model` on `device` at `layout` with the given micro-batch size and
// dtype (nullopt: the model's), fused attention as the layout says, and the layout's pipeline
// link.
Result<Profile> LayoutProfile(const Model& model, const DeviceSpec& device,
                              const ParallelLayout& layout,
                              std::optional<int64_t> micro_batch_size,
                              std::optional<DType> dtype);

// The device `po` names: its --device-file's (held by *file) or the table's --device entry.
// Errors name the file or the unknown key.
Result<const DeviceSpec*> ResolveDevice(const ProfileOptions& po,
                                        std::shared_ptr<const LoadedDevice>* file);

// Fills request->profile and model (and the origin of the profile, for reports), each type of
// request->devices.stage_type's profile, and with request->search its other_sizes: one per
// --profile, or one per size MicroBatchSizeCandidates gives. Errors name the file or flag.
Result<std::string> LoadPlanInputs(const PlanInputs& inputs, PlanRequest* request);

}  // namespace pp
