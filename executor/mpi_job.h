// Joining the MPI job of a distributed run, shared by the mpi (cpu) and nccl (cuda) paths of
// the MPI modules: MPI initialised once, the job's size checked against the layout, the
// replica groups split off, the rank's host, and the handler that prints where the rank was
// when the launcher ends it.
#pragma once

#include <mpi.h>

#include <string>

#include "core/status.h"
#include "executor/launch.h"
#include "executor/rank_run.h"
#include "executor/runtime.h"

namespace pp {

struct MpiJob {
  int rank = 0;
  int size = 1;
  int stage = 0;
  int replica = 0;
  MPI_Comm replicas = MPI_COMM_NULL;  // the ranks of this rank's stage, ordered by replica
  // Every rank, for the tied weights' gradients (executor/tied_weights.h), apart from the
  // transport's messages and their tags.
  MPI_Comm ties = MPI_COMM_NULL;
  std::string host;
};

// Initialises MPI (errors returned, not fatal), checks that the job has layout.ranks() ranks
// ("this plan needs p × r ranks, got N") and splits the replica groups.
Result<MpiJob> JoinMpiJob(const RankLayout& layout);

// From now on SIGTERM and SIGINT (the launcher ending the job) print where->Line() and exit
// 128 + the signal. `where` must live until the process ends.
void CatchLauncherSignals(RankWhere* where);

// "N MPI ranks = p stages × r replicas on host a" (or "hosts a, b"), from the run's ranks.
std::string RanksText(const RunResult& run, const RankLayout& layout);

}  // namespace pp
