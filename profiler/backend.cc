#include "profiler/backend.h"

#include <string>

#include "profiler/analytic.h"
#include "profiler/device_table.h"

namespace pp {
namespace {

class AnalyticBackend final : public ProfilerBackend {
 public:
  std::string_view name() const override { return "analytic"; }

  Result<Profile> Run(const ProfileRequest& request) const override {
    if (request.model == nullptr) return Status::Error("no model to profile");
    const DeviceSpec* device = FindDevice(request.device);
    if (device == nullptr) {
      return Status::Error("unknown device " + DescribeValue(Json(request.device)) +
                           " for the analytic backend (known: " + KnownDeviceKeys() + ")");
    }
    if (!request.gpus.empty()) {
      return Status::Error(
          "the analytic backend models a device from its table (--device) "
          "and uses no GPUs, so --gpus does not apply");
    }
    AnalyticOptions options;
    options.micro_batch_size = request.micro_batch_size;
    options.dtype = request.dtype;
    return AnalyticProfile(*request.model, *device, options);
  }
};

// A backend that is registered (so --backend names it) but cannot profile yet.
class UnavailableBackend final : public ProfilerBackend {
 public:
  explicit UnavailableBackend(std::string_view backend_name) : name_(backend_name) {}
  std::string_view name() const override { return name_; }

  Result<Profile> Run(const ProfileRequest&) const override {
    return Status::Error("the " + std::string(name_) +
                         " profiler backend is not available yet (use --backend analytic)");
  }

 private:
  std::string_view name_;
};

// The one registry: add a backend here. Built on first use and never destroyed.
const std::vector<const ProfilerBackend*>& Registry() {
  static const auto* const backends = new std::vector<const ProfilerBackend*>{
      new AnalyticBackend(),
      new UnavailableBackend("cpu"),
      new UnavailableBackend("cuda"),
  };
  return *backends;
}

}  // namespace

const ProfilerBackend* FindBackend(std::string_view name) {
  for (const ProfilerBackend* b : Registry()) {
    if (b->name() == name) return b;
  }
  return nullptr;
}

std::vector<std::string_view> BackendNames() {
  std::vector<std::string_view> names;
  for (const ProfilerBackend* b : Registry()) names.push_back(b->name());
  return names;
}

}  // namespace pp
