// pp-partition profile MODEL.json [--backend analytic|cpu|cuda] [--device D | --device-file F]
//   [--rates achieved|peak] [...]
// pp-partition profile --backend cuda --calibrate -o DEVICE.json [--device BASE] [--gpus D]
#include <unistd.h>

#include <iostream>
#include <memory>

#include "profiler/backend.h"
#include "profiler/calibrate.h"
#include "profiler/device_file.h"
#include "tool/command.h"
#include "tool/report.h"
#include "core/units.h"

namespace pp {
namespace {

struct ProfileFlags {
  std::string input;
  std::string backend = "analytic";
  std::string device = "h100";
  CLI::Option* device_option = nullptr;
  std::string device_file;
  std::string rates = "achieved";
  bool calibrate = false;
  std::string gpus;
  int64_t micro_batch_size = 0;
  std::string dtype;
  std::string format = "text";
  std::string output;
  bool no_dedupe = false;
  int repeats = 0;
};

// Measures the GPU into a device file (profiler/calibrate.h).
int RunCalibrate(const ProfileFlags& f) {
  if (f.backend != "cuda") return Fail("--calibrate measures a GPU: give --backend cuda");
  if (!f.input.empty()) {
    return Fail("--calibrate measures the GPU, not a model: drop " + Quote(f.input));
  }
  if (f.output.empty()) return Fail("--calibrate writes a device file: give -o DEVICE.json");
  if (!f.device_file.empty()) return Fail("--calibrate writes a device file; drop --device-file");
  const DeviceSpec* base = FindDevice(f.device);
  if (base == nullptr) {
    return Fail("--device " + Quote(f.device) + " is unknown (known: " + KnownDeviceKeys() + ")");
  }
  CalibrateRequest request;
  request.base = base;
  request.gpus = f.gpus;
  request.repeats = f.repeats;
  request.progress = isatty(STDERR_FILENO) != 0;
  Result<Json> doc = CalibrateDevice(request);
  if (!doc.ok()) return Fail(doc.status());
  // What was measured must read back as a device file.
  if (Result<std::shared_ptr<const LoadedDevice>> back = DeviceFromJson(*doc); !back.ok()) {
    return Fail(back.status().Prefixed("calibration"));
  }
  const std::string text = DumpJson(*doc);
  return Deliver(f.output, "json", text, [&](const std::string&) { return text; });
}

int RunProfile(const ProfileFlags& f) {
  if (Status s = CheckOutputPath(f.output); !s.ok()) return Fail(s);  // before any work
  if (f.calibrate) return RunCalibrate(f);
  if (f.input.empty()) return Fail("profile needs a model file (or --calibrate)");
  if (!f.device_file.empty() && f.device_option->count() > 0) {
    return Fail("give --device or --device-file, not both");
  }
  std::optional<Rates> rates = ParseRates(f.rates);
  if (!rates) return Fail("--rates must be achieved or peak (got " + Quote(f.rates) + ")");
  Result<Model> model = LoadModel(f.input);
  if (!model.ok()) return Fail(model.status());
  const ProfilerBackend* backend = FindBackend(f.backend);
  if (backend == nullptr) {
    std::string known;
    for (std::string_view n : BackendNames()) known += (known.empty() ? "" : ", ") + std::string(n);
    return Fail("--backend " + Quote(f.backend) + " is unknown (known: " + known + ")");
  }
  ProfileRequest request;
  request.model = &*model;
  request.device = f.device;
  request.device_file = f.device_file;
  request.rates = *rates;
  request.gpus = f.gpus;
  request.dedupe = !f.no_dedupe;
  request.repeats = f.repeats;
  request.progress = isatty(STDERR_FILENO) != 0;
  if (f.micro_batch_size > 0) request.micro_batch_size = f.micro_batch_size;
  if (!f.dtype.empty()) {
    std::optional<DType> d = ParseDType(f.dtype);
    if (!d) return Fail("--dtype must be bf16, fp32 or fp8 (got " + Quote(f.dtype) + ")");
    request.dtype = d;
  }
  Result<Profile> profile = backend->Run(request);
  if (!profile.ok()) return Fail(profile.status());

  return Deliver(f.output, f.format, DumpJson(ProfileToJson(*profile)),
                 [&](const std::string&) { return ProfileText(*profile); });
}

}  // namespace

Handler SetupProfile(CLI::App& sub) {
  auto f = std::make_shared<ProfileFlags>();
  sub.add_option("model", f->input, "Model file (pp-partition.model/v1)");
  sub.add_option("--backend", f->backend,
                 "analytic (rates of --device or --device-file), cpu (measure the CPU layers), cuda (measure on a GPU)")->capture_default_str();
  f->device_option =
      sub.add_option("--device", f->device,
                     "Device table entry for analytic (and the base of --calibrate): h100, h200, "
                     "a100, l40s")
          ->capture_default_str();
  sub.add_option("--device-file", f->device_file,
                 "A device file (pp-partition.device/v1, e.g. from --calibrate) instead of "
                 "--device");
  sub.add_option("--rates", f->rates,
                 "analytic: achieved (what real kernels reach) or peak (the datasheet roofline)")
      ->capture_default_str();
  sub.add_flag("--calibrate", f->calibrate,
               "With --backend cuda: measure this GPU's achieved rates into a device file (-o)");
  sub.add_option("--gpus", f->gpus, "GPUs to profile on (cuda): 0, or 0x4 for a quarter of GPU 0");
  sub.add_option("--micro-batch-size", f->micro_batch_size, "Override the model's micro-batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub.add_option("--dtype", f->dtype,
                 "Override the model's dtype: bf16 | fp32 | fp8 (fp8: analytic only)");
  sub.add_flag("--no-dedupe", f->no_dedupe,
               "Measure every layer, not one of each group of identical layers");
  sub.add_option("--repeats", f->repeats, "Timed repeats per op (measuring backends)")
      ->check(CLI::Range(1, 1000));
  sub.add_option("--format", f->format, "Report format: text | json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  sub.add_option("-o,--output", f->output, "Write the profile document here ('-' for stdout only)");
  return [f] { return RunProfile(*f); };
}

}  // namespace pp
