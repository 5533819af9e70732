// The analytic backend: achieved rates (or the peak roofline) of a device from the table or
// a device file (see analytic.h, efficiency.h, docs/analytic.md).
#include <memory>

#include "profiler/analytic.h"
#include "profiler/backends.h"
#include "profiler/device_file.h"
#include "profiler/device_table.h"

namespace pp {
namespace {

class Analytic final : public ProfilerBackend {
 public:
  std::string_view name() const override { return "analytic"; }

  Result<Profile> Run(const ProfileRequest& request) const override {
    if (request.model == nullptr) return Status::Error("no model to profile");
    std::shared_ptr<const LoadedDevice> loaded;
    const DeviceSpec* device = nullptr;
    if (!request.device_file.empty()) {
      Result<std::shared_ptr<const LoadedDevice>> file = LoadDeviceFile(request.device_file);
      if (!file.ok()) return file.status();
      loaded = *file;
      device = &loaded->spec;
    } else {
      device = FindDevice(request.device);
    }
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
    options.rates = request.rates;
    options.layout = request.layout;
    options.flash_attention = request.flash_attention;
    return AnalyticProfile(*request.model, *device, options);
  }
};

}  // namespace

const ProfilerBackend* AnalyticBackend() {
  static const Analytic* const kBackend = new Analytic();
  return kBackend;
}

}  // namespace pp
