// The analytic backend: a roofline over the device table (see analytic.h, docs/analytic.md).
#include "profiler/analytic.h"
#include "profiler/backends.h"
#include "profiler/device_table.h"

namespace pp {
namespace {

class Analytic final : public ProfilerBackend {
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

}  // namespace

const ProfilerBackend* AnalyticBackend() {
  static const Analytic* const kBackend = new Analytic();
  return kBackend;
}

}  // namespace pp
