#include "executor/launch.h"

#include <cstdlib>
#include <string>

namespace pp {
namespace {

// A non-negative integer variable, or -1 when unset or not a number.
int IntVar(const std::function<const char*(const char*)>& getenv, const char* name) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') return -1;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < 0 || value > 1 << 24) return -1;
  return static_cast<int>(value);
}

}  // namespace

Launch DetectLaunch(const std::function<const char*(const char*)>& getenv_fn) {
  const std::function<const char*(const char*)> getenv =
      getenv_fn ? getenv_fn : [](const char* name) { return std::getenv(name); };
  struct Source {
    const char* launcher;
    const char* size;
    const char* rank;
    const char* local_rank;
  };
  static constexpr Source kSources[] = {
      {"Open MPI", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"},
      {"PMIx", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALRANKID"},
      {"PMI", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"},
      {"Slurm", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"},
  };
  Launch launch;
  for (const Source& s : kSources) {
    const int size = IntVar(getenv, s.size), rank = IntVar(getenv, s.rank);
    if (size < 1 || rank < 0 || rank >= size) continue;
    launch.launched = true;
    launch.launcher = s.launcher;
    launch.size = size;
    launch.rank = rank;
    const int local = IntVar(getenv, s.local_rank);
    launch.local_rank = local >= 0 ? local : 0;
    break;
  }
  return launch;
}

Result<RankLayout> LayoutRanks(int stages, int ranks, int replicas) {
  if (stages < 1) return Status::Error("the plan has no stages");
  if (replicas < 0) return Status::Error("--replicas must be at least 1");
  if (replicas > 0) {
    if (ranks != stages * replicas) {
      return Status::Error("this plan needs " + std::to_string(stages) + " × " +
                           std::to_string(replicas) + " ranks, got " + std::to_string(ranks));
    }
    return RankLayout{stages, replicas};
  }
  if (ranks < stages || ranks % stages != 0) {
    return Status::Error("this plan needs " + std::to_string(stages) + " × r ranks (" +
                         std::to_string(stages) + " stages, r data-parallel replicas), got " +
                         std::to_string(ranks));
  }
  return RankLayout{stages, ranks / stages};
}

}  // namespace pp
