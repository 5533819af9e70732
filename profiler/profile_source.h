// Turning a plan's input file into a profile: a profile file is used as it is; a model file is
// profiled on the fly: from a given measured profile (it must match the model's layers), else
// the measured profile models/profiles/<device>/<model>.profile.json beside the model file
// when one matches, otherwise analytically for the device.
#pragma once

#include <optional>
#include <string>

#include "core/model.h"
#include "core/parallelism.h"
#include "core/profile.h"
#include "core/status.h"

namespace pp {

struct ProfileSource {
  Profile profile;
  std::optional<Model> model;  // when the input was a model file
  std::string origin;          // "analytic h100", "measured models/profiles/h100/x.profile.json", "file"
};

struct ProfileOptions {
  std::string device = "h100";
  std::string device_file;  // a device file (device_file.h) instead of `device`
  ParallelLayout layout;        // analytic profiles: the layout layers run under
  bool flash_attention = false;  // analytic profiles: fused attention kernels
  std::optional<int64_t> micro_batch_size;
  std::optional<std::string> dtype;
  bool device_given = false;
  std::string profile_path;  // --profile: a measured profile of the model file to use
};

Result<ProfileSource> LoadProfileSource(const std::string& path, const ProfileOptions& options);

}  // namespace pp
