// The cuda backend where the toolkit was not found at build time.
#include "executor/cuda_runner.h"

namespace pp {

Status CudaBackendAvailable() {
  return Status::Error("this pp-partition was built without CUDA");
}

Result<RunResult> RunOnCuda(const Model&, const std::vector<ChunkRange>&, const Schedule&,
                            const RunOptions&, const CudaRunRequest&) {
  return CudaBackendAvailable();
}

}  // namespace pp
