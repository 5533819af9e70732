// The proxies pp-partition links for RunOnMpi and EndRanks: RunOnMpi loads the pp-partition-mpi
// module on first use (see mpi_plugin.h) and forwards to it; when the module cannot be loaded
// it answers with the reason. EndRanks forwards only when the module was loaded.
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>

#include "tool/mpi_plugin.h"

namespace pp {
namespace {

struct Loaded {
  const MpiPluginApi* api = nullptr;
  std::string error;
};

bool g_loaded = false;

std::string ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

const Loaded& Load() {
  static Loaded loaded;
  static std::once_flag once;
  std::call_once(once, [] {
    // libmpi first, with its symbols global, for the components Open MPI opens itself. The
    // module names it too, so a library found under another name still loads it.
    for (const char* lib : {PP_MPI_LIBRARY, "libmpi.so.40", "libmpi.so"}) {
      if (dlopen(lib, RTLD_NOW | RTLD_GLOBAL) != nullptr) break;
    }
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("PP_PARTITION_MPI_PLUGIN"); env != nullptr && *env) {
      candidates.push_back(env);
    }
    if (const std::string dir = ExecutableDir(); !dir.empty()) {
      candidates.push_back(dir + "/pp-partition-mpi.so");
    }
    candidates.push_back(PP_MPI_PLUGIN_PATH);
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
        errors += (errors.empty() ? "" : "; ") + path + ": not a matching pp-partition-mpi module";
        continue;
      }
      loaded.api = entry();
      g_loaded = true;
      return;
    }
    loaded.error = "the MPI module pp-partition-mpi.so could not be loaded" +
                   (errors.empty() ? std::string(" (not found beside the executable)")
                                   : " (" + errors + ")");
  });
  return loaded;
}

}  // namespace

Result<RunResult> RunOnMpi(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options,
                           const MpiRunRequest& request) {
  const Loaded& l = Load();
  if (l.api == nullptr) return Status::Error(l.error);
  return l.api->run_on_mpi(model, chunks, schedule, options, request);
}

void EndRanks(int exit_code) {
  if (g_loaded) Load().api->end_ranks(exit_code);
}

}  // namespace pp
