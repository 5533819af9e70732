// RunOnMpi and EndRanks where pp-partition was built without MPI: a run launched by mpirun
// or srun is refused with the reason.
#include "executor/mpi_run.h"

namespace pp {

Result<RunResult> RunOnMpi(const Model&, const std::vector<ChunkRange>&, const Schedule&,
                           const RunOptions&, const MpiRunRequest&) {
  return Status::Error("this pp-partition was built without MPI (install libopenmpi-dev and "
                       "build again) so it cannot run across processes");
}

void EndRanks(int) {}

}  // namespace pp
