// The MPI side of a distributed run: one process per rank, launched by mpirun or srun. Built
// into the module pp-partition-mpi.so (tool/mpi_plugin.h), so that only a distributed run
// loads libmpi. Without MPI at build time nothing here is compiled.
//
// RunOnMpi: initialises MPI, checks the job's size against the layout, splits the job into
// the replica groups of each stage, and runs this rank's device through RunRank
// (executor/rank_run.h) with the `mpi` transport (MpiTransport) on the cpu backend.
// EndRanks: MPI_Finalize after a run that succeeded everywhere; otherwise MPI_Abort, which
// ends every rank of the job (the launcher stops them; each prints where it was, see
// RankWhere).
#pragma once

#include <string>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/launch.h"
#include "executor/runtime.h"
#include "executor/schedule.h"

namespace pp {

struct MpiRunRequest {
  RankLayout layout;
  Launch launch;
  std::string backend = "cpu";      // "cpu" (mpi transport) or "cuda" (nccl transport)
  std::string transport = "mpi";    // "mpi" or "nccl"
  std::string gpus;                 // cuda: unused (one GPU per rank, by local rank)
  DType dtype = DType::kFp32;       // cuda
};

Result<RunResult> RunOnMpi(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options,
                           const MpiRunRequest& request);

// Ends this rank's part of the job: exit_code 0 finalises MPI (every rank must call it);
// any other code aborts the whole job with it. Does nothing when MPI was never initialised.
void EndRanks(int exit_code);

}  // namespace pp
