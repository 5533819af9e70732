#include "profiler/backend.h"

#include <string>

#include "profiler/backends.h"

namespace pp {
namespace {

// The one registry: add a backend here. Built on first use and never destroyed.
const std::vector<const ProfilerBackend*>& Registry() {
  static const auto* const backends = new std::vector<const ProfilerBackend*>{
      AnalyticBackend(),
      CpuBackend(),
      CudaBackend(),
  };
  return *backends;
}

}  // namespace

const ProfilerBackend* FindBackend(std::string_view name) {
  for (const ProfilerBackend* b : Registry()) {
    if (b->name() == name) return b;
  }
  return nullptr;
}

std::vector<std::string_view> BackendNames() {
  std::vector<std::string_view> names;
  for (const ProfilerBackend* b : Registry()) names.push_back(b->name());
  return names;
}

}  // namespace pp
