// The cuda backend of a distributed run: one GPU per rank (the GPU of its local rank), the
// `nccl` transport between stages and ncclAllReduce (average) over a stage's replicas, the
// communicators made from ids that rank 0 (and the first replica of each stage) broadcast
// over MPI. Built into the module pp-partition-nccl.so where CUDA, NCCL and MPI are all there;
// the cpu backend in that module is RunOnMpi's.
#pragma once

#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/mpi_run.h"
#include "executor/runtime.h"
#include "executor/schedule.h"

namespace pp {

Result<RunResult> RunOnMpiOrNccl(const Model& model, const std::vector<ChunkRange>& chunks,
                                 const Schedule& schedule, const RunOptions& options,
                                 const MpiRunRequest& request);

}  // namespace pp
