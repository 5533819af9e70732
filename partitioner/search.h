// The search behind `plan --stages auto`: over pipeline depth p (dividing the GPU count, with
// r = G / p data-parallel replicas), micro-batch size b (one profile per b), micro-batch count
// m = N / (r b) and schedule, each candidate split by dp under the memory limit and simulated.
// Candidates are ranked by time per global batch: the simulated step plus the replicas'
// gradient all-reduce (docs/cost-model.md, "Search").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/plan.h"
#include "core/profile.h"
#include "core/status.h"
#include "executor/schedule.h"

namespace pp {

struct SearchRequest {
  // One profile per micro-batch size (their micro_batch_size fields differ), all of the same
  // model's layers.
  std::vector<Profile> profiles;
  std::optional<Model> model;  // embedded in the best plan when present
  int gpus_total = 0;          // G
  int64_t global_batch = 0;    // N samples per step, over all replicas
  // Schedules tried for every shape (by default the registered kinds that opt in,
  // executor/schedule.h); interleaved with `virtual_stages` chunks per device where m is a
  // multiple of p. Chunked schedules need p >= 2 and at least one layer per chunk.
  std::vector<std::string> schedules = SearchedScheduleNames();
  int virtual_stages = 2;
  Optimizer optimizer = Optimizer::kAdam;
  std::optional<uint64_t> memory_limit;  // per stage; nullopt: none
  // Per-candidate objective: "step" (the default: the exact step search) or "bottleneck".
  // The step search shares `step_budget_s` among the candidates: each gets what is left over
  // the candidates left, so quick proofs leave more for later ones.
  std::string objective = "step";
  double step_budget_s = 2.0;
  // Also plan each shape with --recompute auto (needs `model`; gpipe and 1f1b).
  bool recompute_lever = true;
  size_t top = 10;
  // Devices of different types in pipeline order (one pipeline; its length is then the only
  // depth p, and G / p replicas copy it): stage_types[s] is stage s's type and
  // device_profiles[i] holds, for profiles[i]'s micro-batch size, the profile of every type
  // other than stage 0's (profiles[i] is stage 0's). Empty: every stage on profiles[i]'s.
  std::vector<std::string> stage_types;
  std::vector<std::map<std::string, Profile>> device_profiles;
  // Each stage's limit is its own device's memory (instead of memory_limit).
  bool per_device_memory = false;
  // Nodes of gpus_per_node GPUs (0: one node): replica i runs on GPUs i p .. i p + p - 1, so a
  // stage boundary crosses nodes where those GPUs do, and the all-reduce runs over the
  // inter-node link when G > gpus_per_node.
  int gpus_per_node = 0;
  std::optional<Link> inter_node_link;
};

// Why a candidate's time per batch exceeds the best one's: the component that grew most.
enum class LossReason { kNone, kSlowerStages, kBubble, kTransfers, kAllReduce, kMemory };
const char* LossReasonName(LossReason reason);

struct SearchCandidate {
  int stages = 0;               // p
  int replicas = 0;             // r = G / p
  int64_t micro_batch_size = 0;  // b
  int micro_batches = 0;        // m
  std::string schedule;
  bool recompute = false;    // some stage recomputes its activations (--recompute auto)
  bool exact = true;         // the split is the proven least step (or bottleneck) for its shape
  double lower_bound_ms = 0;  // step objective: no split of this shape is faster than this
  double step_ms = 0;        // simulated pipeline step
  double allreduce_ms = 0;   // ring all-reduce of the largest stage's gradients
  double batch_ms = 0;       // step_ms + allreduce_ms: time per global batch
  double work_ms = 0;        // mean busy time per device: m x total stage time / p
  double transfer_ms = 0;    // one micro-batch's round trip over every boundary
  double bubble_ms = 0;      // step_ms - work_ms - transfer_ms (at least 0)
  double bubble_ratio = 0;
  uint64_t peak_memory_bytes = 0;  // largest stage peak
  bool fits = true;                // meets the memory limit
  LossReason reason = LossReason::kNone;  // against the best candidate
  double behind_ms = 0;                    // batch_ms - the best's batch_ms
};

struct SearchResult {
  std::vector<SearchCandidate> ranked;  // fitting candidates, fastest first, at most `top`
  // Candidates faster than the best that exceed the memory limit (reason kMemory), fastest
  // first, at most `top`.
  std::vector<SearchCandidate> over_memory;
  int evaluated = 0;  // candidates planned
  Plan best;          // the first ranked candidate's plan
};

// Ring all-reduce of `bytes` over r replicas on `link`: 2(r-1)/r x bytes / bandwidth +
// 2(r-1) x latency, in ms; 0 for r = 1.
double RingAllReduceMs(uint64_t bytes, int replicas, const Link& link);

// Micro-batch sizes worth profiling: powers of two up to 64 that give a whole micro-batch
// count for some pipeline depth dividing `gpus_total`.
std::vector<int64_t> MicroBatchSizeCandidates(int gpus_total, int64_t global_batch);

// Errors: no profiles, G or N not positive, no (p, b) shape that divides the batch, or no
// candidate fits the memory limit (naming the least memory any candidate needs).
Result<SearchResult> SearchPlans(const SearchRequest& request);

}  // namespace pp
