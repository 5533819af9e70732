// The proxies pp-partition links for the CUDA entry points: each loads the pp-partition-cuda
// module on first use (see cuda_plugin.h) and forwards to it. When the module cannot be
// loaded, each answers with the reason instead of a result.
#include <mutex>
#include <string>

#include "profiler/backends.h"
#include "tool/cuda_plugin.h"
#include "tool/module_loader.h"

namespace pp {
namespace {

struct Loaded {
  const CudaPluginApi* api = nullptr;
  std::string error;
};

const Loaded& Load() {
  static Loaded loaded;
  static std::once_flag once;
  std::call_once(once, [] {
    Result<const void*> api = OpenModule(
        "pp-partition-cuda.so", "PP_PARTITION_CUDA_PLUGIN", PP_CUDA_PLUGIN_PATH,
        "pp_partition_cuda_plugin", [](void* symbol) -> const void* {
          using Entry = const CudaPluginApi* (*)();
          const CudaPluginApi* a = reinterpret_cast<Entry>(symbol)();
          return a != nullptr && a->version == kCudaPluginVersion ? a : nullptr;
        });
    if (api.ok()) {
      loaded.api = static_cast<const CudaPluginApi*>(*api);
    } else {
      loaded.error = api.message();
    }
  });
  return loaded;
}

class CudaProxy final : public ProfilerBackend {
 public:
  std::string_view name() const override { return "cuda"; }
  Result<Profile> Run(const ProfileRequest& request) const override {
    const Loaded& l = Load();
    if (l.api == nullptr) return Status::Error(l.error);
    return l.api->cuda_backend()->Run(request);
  }
};

}  // namespace

Result<std::vector<GpuInfo>> ListGpus() {
  const Loaded& l = Load();
  if (l.api == nullptr) return Status::Error(l.error);
  return l.api->list_gpus();
}

std::string CudaSummary() {
  const Loaded& l = Load();
  return l.api == nullptr ? l.error : l.api->cuda_summary();
}

const ProfilerBackend* CudaBackend() {
  static const CudaProxy* const kProxy = new CudaProxy();
  return kProxy;
}

Status CudaBackendAvailable() {
  const Loaded& l = Load();
  return l.api == nullptr ? Status::Error(l.error) : l.api->cuda_backend_available();
}

Result<RunResult> RunOnCuda(const Model& model, const std::vector<ChunkRange>& chunks,
                            const Schedule& schedule, const RunOptions& options,
                            const CudaRunRequest& request) {
  const Loaded& l = Load();
  if (l.api == nullptr) return Status::Error(l.error);
  return l.api->run_on_cuda(model, chunks, schedule, options, request);
}

Result<Json> CalibrateDevice(const CalibrateRequest& request) {
  const Loaded& l = Load();
  if (l.api == nullptr) return Status::Error("no CUDA device: " + l.error);
  return l.api->calibrate_device(request);
}

}  // namespace pp
