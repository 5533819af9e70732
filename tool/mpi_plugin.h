// The MPI side of pp-partition as a loadable module (pp-partition-mpi.so), like the CUDA one
// (cuda_plugin.h). pp-partition links only a proxy (mpi_plugin_client.cc) for RunOnMpi and
// EndRanks (executor/mpi_run.h), which loads the module the first time a run is launched
// by mpirun or srun; plan, simulate, export and a run in one process never load libmpi.
//
// Open MPI opens its own components with dlopen and needs libmpi's symbols visible to them,
// so the proxy opens libmpi with RTLD_GLOBAL first, then the module. The module is found at
// $PP_PARTITION_MPI_PLUGIN, else beside the running executable, else where the build put it.
// The cuda backend across ranks is a second module with the same table, pp-partition-nccl.so
// ($PP_PARTITION_NCCL_PLUGIN), built where the CUDA toolkit has NCCL: it carries CUDA and
// NCCL, so a cpu run under mpirun never loads them.
#pragma once

#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/mpi_run.h"
#include "executor/runtime.h"
#include "executor/schedule.h"

namespace pp {

inline constexpr int kMpiPluginVersion = 1;

struct MpiPluginApi {
  int version;
  Result<RunResult> (*run_on_mpi)(const Model&, const std::vector<ChunkRange>&, const Schedule&,
                                  const RunOptions&, const MpiRunRequest&);
  void (*end_ranks)(int exit_code);
};

}  // namespace pp

// The module's one exported symbol.
extern "C" const pp::MpiPluginApi* pp_partition_mpi_plugin();
