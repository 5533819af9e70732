// Profiler backends: each turns a model into a Profile (per-layer time and memory, see
// core/profile.h) in its own way, behind one small interface, and is registered in one table
// (backend.cc). "analytic" computes a roofline from the device table; "cpu" measures the CPU
// reference layers; "cuda" measures the CUDA layers on a GPU.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/profile.h"
#include "core/parallelism.h"
#include "core/status.h"
#include "profiler/efficiency.h"

namespace pp {

struct ProfileRequest {
  const Model* model = nullptr;             // not owned; must outlive the call
  std::string device = "h100";              // analytic: a key of the device table (device_table.h)
  std::string device_file;  // analytic: a device file (device_file.h) instead of `device`
  Rates rates = Rates::kAchieved;           // analytic: achieved rates or the peak roofline
  // analytic: the layout each layer runs under (one rank of its tensor, context and expert
  // groups; collectives on those groups' links) and whether attention is one fused kernel.
  ParallelLayout layout;
  bool flash_attention = false;
  std::optional<int64_t> micro_batch_size;  // replaces the model's when set
  std::optional<DType> dtype;               // replaces the model's when set
  std::string gpus;  // measuring backends: which GPUs ("0", "0x4"); "" for the default
  bool dedupe = true;  // measuring backends: time one of each group of identical layers
  int repeats = 0;     // measuring backends: timed repeats per op (0: the backend's default)
  bool progress = false;  // measuring backends: draw a progress bar on stderr
};

class ProfilerBackend {
 public:
  virtual ~ProfilerBackend() = default;
  // The name --backend selects ("analytic", "cpu", "cuda").
  virtual std::string_view name() const = 0;
  // Profiles request.model. Errors are one line meant for the user. Safe to call from
  // several threads at once.
  virtual Result<Profile> Run(const ProfileRequest& request) const = 0;
};

// The registered backend called `name`, or nullptr. Backends live for the whole program.
const ProfilerBackend* FindBackend(std::string_view name);

// The registered names, in a fixed order ("analytic", "cpu", "cuda").
std::vector<std::string_view> BackendNames();

}  // namespace pp
