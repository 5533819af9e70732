// The proxies pp-partition links for RunOnMpi and EndRanks: RunOnMpi loads the module of the
// run's backend on first use (pp-partition-mpi for cpu, pp-partition-nccl for cuda; see
// mpi_plugin.h) and forwards to it; when the module cannot be loaded it answers with the
// reason. EndRanks forwards to the module a run loaded, if any.
#include <dlfcn.h>

#include <mutex>
#include <string>

#include "tool/module_loader.h"
#include "tool/mpi_plugin.h"

namespace pp {
namespace {

struct Loaded {
  const MpiPluginApi* api = nullptr;
  std::string error;
};

const MpiPluginApi* g_loaded = nullptr;  // the module a run loaded, for EndRanks

// Opens module `file` (pp-partition-mpi.so or pp-partition-nccl.so): module_loader.h, with
// libmpi loaded first.
Loaded Open(const char* file, const char* env, const std::string& built) {
  // libmpi first, with its symbols global, for the components Open MPI opens itself. The
  // module names it too, so a library found under another name still loads it.
  for (const char* lib : {PP_MPI_LIBRARY, "libmpi.so.40", "libmpi.so"}) {
    if (dlopen(lib, RTLD_NOW | RTLD_GLOBAL) != nullptr) break;
  }
  Result<const void*> api =
      OpenModule(file, env, built, "pp_partition_mpi_plugin", [](void* symbol) -> const void* {
        using Entry = const MpiPluginApi* (*)();
        const MpiPluginApi* a = reinterpret_cast<Entry>(symbol)();
        return a != nullptr && a->version == kMpiPluginVersion ? a : nullptr;
      });
  Loaded loaded;
  if (api.ok()) {
    loaded.api = static_cast<const MpiPluginApi*>(*api);
  } else {
    loaded.error = api.message();
  }
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
