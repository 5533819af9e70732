#include "tool/module_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace pp {

std::string ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

Result<const void*> OpenModule(const std::string& file, const char* env, const std::string& built,
                               const char* symbol,
                               const std::function<const void*(void* symbol)>& accept) {
  std::vector<std::string> candidates;
  if (const char* path = std::getenv(env); path != nullptr && *path) candidates.push_back(path);
  if (const std::string dir = ExecutableDir(); !dir.empty()) candidates.push_back(dir + "/" + file);
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
    void* entry = dlsym(handle, symbol);
    const void* api = entry == nullptr ? nullptr : accept(entry);
    if (api == nullptr) {
      errors += (errors.empty() ? "" : "; ") + path + ": not a matching pp-partition module";
      continue;
    }
    return api;
  }
  return Status::Error("the module " + file + " could not be loaded" +
                       (errors.empty() ? std::string(" (not found beside the executable)")
                                       : " (" + errors + ")"));
}

}  // namespace pp
