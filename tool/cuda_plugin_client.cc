// The proxies pp-partition links for the CUDA entry points: each loads the pp-partition-cuda
// module on first use (see cuda_plugin.h) and forwards to it. When the module cannot be
// loaded, each answers with the reason instead of a result.
#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "profiler/backends.h"
#include "tool/cuda_plugin.h"

namespace pp {
namespace {

struct Loaded {
  const CudaPluginApi* api = nullptr;
  std::string error;
};

std::string ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

const Loaded& Load() {
  static Loaded loaded;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("PP_PARTITION_CUDA_PLUGIN"); env != nullptr && *env) {
      candidates.push_back(env);
    }
    if (const std::string dir = ExecutableDir(); !dir.empty()) {
      candidates.push_back(dir + "/pp-partition-cuda.so");
    }
    candidates.push_back(PP_CUDA_PLUGIN_PATH);
    std::string errors;
    for (const std::string& path : candidates) {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) continue;
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        const char* why = dlerror();
        errors += (errors.empty() ? "" : "; ") + path + ": " + (why ? why : "dlopen failed");
        continue;
      }
      using Entry = const CudaPluginApi* (*)();
      auto entry = reinterpret_cast<Entry>(dlsym(handle, "pp_partition_cuda_plugin"));
      if (entry == nullptr || entry()->version != kCudaPluginVersion) {
        errors += (errors.empty() ? "" : "; ") + path + ": not a matching pp-partition-cuda module";
        continue;
      }
      loaded.api = entry();
      return;
    }
    loaded.error = "the CUDA module pp-partition-cuda.so could not be loaded" +
                   (errors.empty() ? std::string(" (not found beside the executable)")
                                   : " (" + errors + ")");
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
