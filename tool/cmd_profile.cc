// pp-partition profile MODEL.json [--backend analytic|cpu|cuda] [--device D] [...]
#include <unistd.h>

#include <iostream>
#include <memory>

#include "profiler/backend.h"
#include "tool/command.h"
#include "tool/report.h"
#include "core/units.h"

namespace pp {
namespace {

struct ProfileFlags {
  std::string input;
  std::string backend = "analytic";
  std::string device = "h100";
  std::string gpus;
  int64_t micro_batch_size = 0;
  std::string dtype;
  std::string format = "text";
  std::string output;
  bool no_dedupe = false;
  int repeats = 0;
};

int RunProfile(const ProfileFlags& f) {
  if (Status s = CheckOutputPath(f.output); !s.ok()) return Fail(s);  // before any work
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
  request.gpus = f.gpus;
  request.dedupe = !f.no_dedupe;
  request.repeats = f.repeats;
  request.progress = isatty(STDERR_FILENO) != 0;
  if (f.micro_batch_size > 0) request.micro_batch_size = f.micro_batch_size;
  if (!f.dtype.empty()) {
    std::optional<DType> d = ParseDType(f.dtype);
    if (!d) return Fail("--dtype must be bf16 or fp32 (got " + Quote(f.dtype) + ")");
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
  sub.add_option("model", f->input, "Model file (pp-partition.model/v1)")->required();
  sub.add_option("--backend", f->backend,
                 "analytic (roofline from --device), cpu (measure the CPU layers), cuda (measure on a GPU)")->capture_default_str();
  sub.add_option("--device", f->device, "Device table entry for analytic: h100, h200, a100, l40s")
      ->capture_default_str();
  sub.add_option("--gpus", f->gpus, "GPUs to profile on (cuda): 0, or 0x4 for a quarter of GPU 0");
  sub.add_option("--micro-batch-size", f->micro_batch_size, "Override the model's micro-batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub.add_option("--dtype", f->dtype, "Override the model's dtype: bf16 | fp32");
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
