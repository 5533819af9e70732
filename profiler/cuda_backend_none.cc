// The cuda backend where the CUDA toolkit was not found at build time.
#include "profiler/backends.h"

namespace pp {
namespace {

class CudaMissing final : public ProfilerBackend {
 public:
  std::string_view name() const override { return "cuda"; }
  Result<Profile> Run(const ProfileRequest&) const override {
    return Status::Error("this pp-partition was built without CUDA; rebuild where nvcc is "
                         "installed to use --backend cuda");
  }
};

}  // namespace

const ProfilerBackend* CudaBackend() {
  static const CudaMissing* const kBackend = new CudaMissing();
  return kBackend;
}

}  // namespace pp
