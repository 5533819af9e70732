// Profile: per-layer time and memory of one model at one micro-batch size on one device
// (format "pp-partition.profile/v1", see DESIGN.md). Times in ms, sizes in bytes, all per
// micro-batch.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "core/model.h"
#include "core/recompute_modules.h"
#include "core/status.h"

namespace pp {

inline constexpr std::string_view kProfileFormat = "pp-partition.profile/v1";

struct DeviceInfo {
  std::string name;
  uint64_t memory_bytes = 0;
};

// Point-to-point link between neighbouring stages: a transfer of b bytes takes
// latency_ms + 1000 * b / bandwidth_bytes_per_s milliseconds.
struct Link {
  double bandwidth_bytes_per_s = 0;
  double latency_ms = 0;
  double TransferMs(uint64_t bytes) const {
    return latency_ms + 1000.0 * static_cast<double>(bytes) / bandwidth_bytes_per_s;
  }
};

// One recomputation module's figures in one layer, per micro-batch.
struct ModuleFigures {
  double forward_ms = 0;
  uint64_t bytes = 0;
};

struct LayerProfile {
  std::string name;
  std::string op;  // optional in files ("" when absent)
  // Optional ("mtp": true; op transformer_block): a multi-token prediction block
  // (core/layer_kinds.h Layer::mtp), which Megatron-LM's even split and layout keep apart
  // from the decoder's blocks.
  bool mtp = false;
  double forward_ms = 0;
  double backward_ms = 0;
  uint64_t param_bytes = 0;
  // Of param_bytes, the routed experts' (optional in files: 0 when absent), whose gradients
  // are reduced and whose state is sharded over the expert-data-parallel group.
  uint64_t expert_param_bytes = 0;
  // expert_param_bytes, never more than param_bytes (files are checked on reading; a profile
  // built in memory is held to it here), so that the rest, param_bytes minus it, is >= 0.
  uint64_t routed_expert_bytes() const { return std::min(expert_param_bytes, param_bytes); }
  uint64_t activation_bytes = 0;  // kept for the backward, per micro-batch
  uint64_t output_bytes = 0;      // sent to the next stage, per micro-batch
  std::optional<double> backward_input_ms;
  std::optional<double> backward_weight_ms;
  std::optional<double> kernel_ms;
  std::optional<int64_t> kernel_count;
  std::optional<uint64_t> workspace_bytes;
  std::optional<double> forward_p95_ms;
  // Optional (analytic profiles of transformer blocks): for each recomputation module the
  // layer has (core/recompute_modules.h), its forward and what it keeps of activation_bytes,
  // which selective recomputation of it runs again and drops. In files the core attention's
  // are "core_attention_ms" and "core_attention_bytes", the others' "recompute_modules":
  // {"mlp": {"forward_ms": ..., "bytes": ...}, ...}.
  std::array<std::optional<ModuleFigures>, kRecomputeModuleCount> modules;
  const std::optional<ModuleFigures>& module(RecomputeModule m) const {
    return modules[static_cast<size_t>(m)];
  }
  std::optional<ModuleFigures>& module(RecomputeModule m) {
    return modules[static_cast<size_t>(m)];
  }
  // The figures of `set`'s outermost modules (RecomputeModules::Outermost) summed.
  ModuleFigures Dropped(RecomputeModules set) const;
  // What selective recomputation of `set` runs again and drops in this layer: Dropped, the
  // bytes never more than activation_bytes (files are checked on reading).
  ModuleFigures Selective(RecomputeModules set) const;
  // Optional: an output layer whose weight is the embedding layer `tied_to`'s table, and of
  // param_bytes the bytes of it they share (the weight, not a bias). On one stage the two
  // hold one copy; on different stages each holds its own and their gradients are summed
  // across the pipeline after the backward (docs/cost-model.md, "Tied embeddings").
  std::string tied_to;
  uint64_t tied_param_bytes = 0;
};

struct Profile {
  std::string model;
  std::string backend;  // "analytic", "cpu" or "cuda"
  DeviceInfo device;
  int64_t micro_batch_size = 0;
  DType dtype = DType::kBf16;
  Link link;
  std::vector<LayerProfile> layers;
  // Provenance (optional).
  std::optional<std::string> measured_at;
  std::optional<std::string> driver;
  std::optional<std::string> tool_version;
  std::optional<double> sm_share;
};

// A layer or transfer slower than this (11.6 days per micro-batch) is a unit mistake; the bound
// also keeps sums over every layer and boundary finite.
inline constexpr double kMaxLayerMs = 1e9;

// Whether every transfer of up to `max_bytes` over `link` takes a finite time of at most
// kMaxLayerMs (bandwidth positive and finite, latency finite and >= 0). Errors name the field
// below `where` ("link", "profile.link", "--inter-node-link").
Status CheckLink(const Link& link, uint64_t max_bytes, const std::string& where);
// Whether every time the profile yields is finite and in range: each layer's times (finite,
// >= 0, at most kMaxLayerMs) and its link's transfers of the largest layer output. Errors name
// the field below `base` as ProfileFromJson does. ProfileFromJson applies it; code that builds
// a Profile itself calls it before planning.
Status CheckProfileTimes(const Profile& profile, const std::string& base = "");

// Parses and validates. Errors name the JSON path below `base` ("profile" when the profile is
// embedded in a plan, "" for a profile file).
Result<Profile> ProfileFromJson(const Json& doc, const std::string& base = "");
Result<Profile> LoadProfile(const std::string& path);
Json ProfileToJson(const Profile& profile);

}  // namespace pp
