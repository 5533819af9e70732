// Calibration where the CUDA toolkit was not found at build time.
#include "profiler/calibrate.h"

namespace pp {

Result<Json> CalibrateDevice(const CalibrateRequest&) {
  return Status::Error(
      "no CUDA device: this pp-partition was built without CUDA; rebuild "
      "where nvcc is installed to calibrate");
}

}  // namespace pp
