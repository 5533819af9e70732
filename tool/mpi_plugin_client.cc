// The proxies pp-partition links for RunOnMpi and EndRanks: RunOnMpi loads the module of the
// run's backend on first use (pp-partition-mpi for cpu, pp-partition-nccl for cuda; see
// mpi_plugin.h) and forwards to it; when the module cannot be loaded it answers with the
// reason. EndRanks forwards to the module a run loaded, if any.
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "tool/mpi_plugin.h"

namespace pp {
namespace {

struct Loaded {
  const MpiPluginApi* api = nullptr;
  std::string error;
};

const MpiPluginApi* g_loaded = nullptr;  // the module a run loaded, for EndRanks

std::string ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

// Opens module `file` (pp-partition-mpi.so or pp-partition-nccl.so): from $`env`, beside the
// executable, or at `built` (where the build put it; empty: none).
Loaded Open(const char* file, const char* env, const std::string& built) {
  Loaded loaded;
  // libmpi first, with its symbols global, for the components Open MPI opens itself. The
  // module names it too, so a library found under another name still loads it.
  for (const char* lib : {PP_MPI_LIBRARY, "libmpi.so.40", "libmpi.so"}) {
    if (dlopen(lib, RTLD_NOW | RTLD_GLOBAL) != nullptr) break;
  }
  std::vector<std::string> candidates;
  if (const char* path = std::getenv(env); path != nullptr && *path) candidates.push_back(path);
  if (const std::string dir = ExecutableDir(); !dir.empty()) {
    candidates.push_back(dir + "/" + file);
  }
  if (!built.empty()) candidates.push_back(built);
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
    using Entry = const MpiPluginApi* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, "pp_partition_mpi_plugin"));
    if (entry == nullptr || entry()->version != kMpiPluginVersion) {
      errors += (errors.empty() ? "" : "; ") + path + ": not a matching pp-partition module";
      continue;
    }
    loaded.api = entry();
    return loaded;
  }
  loaded.error = std::string("the module ") + file + " could not be loaded" +
                 (errors.empty() ? std::string(" (not found beside the executable)")
                                 : " (" + errors + ")");
  return loaded;
}

const Loaded& Load(bool cuda) {
  static Loaded mpi, nccl;
  static std::once_flag mpi_once, nccl_once;
  if (!cuda) {
    std::call_once(mpi_once, [] {
      mpi = Open("pp-partition-mpi.so", "PP_PARTITION_MPI_PLUGIN", PP_MPI_PLUGIN_PATH);
    });
    return mpi;
  }
  std::call_once(nccl_once, [] {
#ifdef PP_NCCL_PLUGIN_PATH
    nccl = Open("pp-partition-nccl.so", "PP_PARTITION_NCCL_PLUGIN", PP_NCCL_PLUGIN_PATH);
#else
    nccl = Open("pp-partition-nccl.so", "PP_PARTITION_NCCL_PLUGIN", "");
    if (nccl.api == nullptr) {
      nccl.error = "this pp-partition was built without NCCL (the CUDA toolkit's nccl.h and "
                   "libnccl), so the cuda backend cannot run across ranks";
    }
#endif
  });
  return nccl;
}

}  // namespace

Result<RunResult> RunOnMpi(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options,
                           const MpiRunRequest& request) {
  const Loaded& l = Load(request.backend == "cuda");
  if (l.api == nullptr) return Status::Error(l.error);
  g_loaded = l.api;
  return l.api->run_on_mpi(model, chunks, schedule, options, request);
}

void EndRanks(int exit_code) {
  if (g_loaded != nullptr) g_loaded->end_ranks(exit_code);
}

}  // namespace pp
