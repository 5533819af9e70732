// How `run` learns that a launcher (mpirun, srun) started it as one of several ranks, and how
// those ranks map onto a plan: one rank per pipeline device, N = p x r ranks for p stages and
// r data-parallel replicas. Plain C++ (no MPI): the CLI decides from the environment, before
// loading the MPI module, whether a run is distributed and whether its rank count fits.
//
// Rank order follows core/parallelism.h (data inside, pipeline outermost): stage s of replica
// k is rank s x r + k. So the r replicas of a stage are neighbours (one node, for the
// gradient all-reduce) and a pipeline's neighbouring stages are r ranks apart.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"

namespace pp {

struct Launch {
  bool launched = false;  // started by a launcher that set the variables below
  std::string launcher;   // "Open MPI", "PMI", "PMIx" or "Slurm"; empty when not launched
  int size = 1;           // ranks in the job
  int rank = 0;
  int local_rank = 0;     // among the job's ranks on this machine (picks the GPU)
};

// Reads OMPI_COMM_WORLD_{SIZE,RANK,LOCAL_RANK} (mpirun of Open MPI), PMIX_RANK with
// PMI_SIZE, PMI_{SIZE,RANK} (MPICH's hydra, Intel MPI), then SLURM_{NTASKS,PROCID,LOCALID}
// (srun), the first set that is there. `getenv` is std::getenv unless a test gives another.
Launch DetectLaunch(const std::function<const char*(const char*)>& getenv = nullptr);

// p stages by r replicas.
struct RankLayout {
  int stages = 1;
  int replicas = 1;
  int ranks() const { return stages * replicas; }
  int RankOf(int stage, int replica) const { return stage * replicas + replica; }
  int StageOf(int rank) const { return rank / replicas; }
  int ReplicaOf(int rank) const { return rank % replicas; }
};

// The layout of `ranks` ranks for a plan of `stages` stages. `replicas` is --replicas: 0
// derives r = ranks / stages. Errors (exit 2 at once, before anything starts): "this plan
// needs p × r ranks, got N" with the numbers when the count does not fit.
Result<RankLayout> LayoutRanks(int stages, int ranks, int replicas);

}  // namespace pp
