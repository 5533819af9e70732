// The entry point of the pp-partition-mpi module (cpu backend, mpi transport) and, built with
// PP_MPI_ENTRY_NCCL, of the pp-partition-nccl module (the cuda backend over NCCL too).
#include "tool/mpi_plugin.h"

#if PP_MPI_ENTRY_NCCL
#include "executor/nccl_run.h"
#endif

extern "C" __attribute__((visibility("default"))) const pp::MpiPluginApi*
pp_partition_mpi_plugin() {
#if PP_MPI_ENTRY_NCCL
  static const pp::MpiPluginApi kApi = {pp::kMpiPluginVersion, &pp::RunOnMpiOrNccl,
                                        &pp::EndRanks};
#else
  static const pp::MpiPluginApi kApi = {pp::kMpiPluginVersion, &pp::RunOnMpi, &pp::EndRanks};
#endif
  return &kApi;
}
