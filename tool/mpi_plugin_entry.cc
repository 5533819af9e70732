// The entry point of the pp-partition-mpi module: the table of the real MPI functions.
#include "tool/mpi_plugin.h"

extern "C" __attribute__((visibility("default"))) const pp::MpiPluginApi*
pp_partition_mpi_plugin() {
  static const pp::MpiPluginApi kApi = {pp::kMpiPluginVersion, &pp::RunOnMpi, &pp::EndRanks};
  return &kApi;
}
