// The profiler backends, one file each, listed in backend.cc's registry.
#pragma once

#include "profiler/backend.h"

namespace pp {

const ProfilerBackend* AnalyticBackend();  // analytic_backend.cc
const ProfilerBackend* CpuBackend();       // cpu_backend.cc
const ProfilerBackend* CudaBackend();      // cuda_backend.cc (or "not compiled in")

}  // namespace pp
