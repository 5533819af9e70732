// Finding and opening a pp-partition module: a shared library the tool loads on first use
// (pp-partition-cuda.so, pp-partition-mpi.so, pp-partition-nccl.so), so that commands which
// never need CUDA, MPI or NCCL never load them.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"

namespace pp {

// The directory of the running executable ("" when /proc/self/exe cannot be read).
std::string ExecutableDir();

// Tries, in order, the path in $`env`, `file` beside the executable and `built` (where the
// build put the module; empty: none). A candidate that exists is opened (RTLD_NOW,
// RTLD_LOCAL) and its `symbol` handed to `accept`, which returns the module's API, or nullptr
// when it is not the API this tool expects. Returns the first API accepted; otherwise the
// error "the module FILE could not be loaded (why each candidate failed)", or "(not found
// beside the executable)" when none exists.
Result<const void*> OpenModule(const std::string& file, const char* env, const std::string& built,
                               const char* symbol,
                               const std::function<const void*(void* symbol)>& accept);

}  // namespace pp
