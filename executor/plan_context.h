// A plan's structure, derived from its fields by one function: the schedule (built from the
// plan's schedule kind, devices, micro-batches and chunks per device, and validated once),
// each chunk's layers, device and recompute flag, and the peak in-flight micro-batch counts
// per chunk and per device. plan, simulate, run, export and compare read a plan's structure
// through PlanContextOf; the planner builds the same context from a request's shape before
// it knows the split (MakePlanContext) and fills the chunks once it does.
#pragma once

#include <string>
#include <vector>

#include "core/plan.h"
#include "core/profile.h"
#include "core/status.h"
#include "executor/schedule.h"

namespace pp {

// One model chunk: a contiguous layer range on one device.
struct ChunkRange {
  int first_layer = 0;  // inclusive, indices into Model::layers (and Profile::layers)
  int last_layer = 0;   // inclusive
  // Activation recomputation (docs/cost-model.md): keep only the chunk's input (`unit`
  // kStage) or each layer's (kLayer; kBlock: each of its first `blocks` transformer blocks')
  // per in-flight micro-batch and run the forward again inside the backward (the whole
  // chunk's first, or each such layer's before its own backward).
  // Full backwards (B) only.
  bool recompute = false;
  RecomputeUnit unit = RecomputeUnit::kStage;
  int blocks = 0;  // kBlock: the chunk's first `blocks` transformer blocks recompute
};

// What the schedule needs to be built: the shape of a plan before its split is known.
struct PlanShape {
  std::string schedule;    // a ScheduleKinds() name
  int devices = 0;         // p
  int micro_batches = 0;   // m
  int virtual_stages = 2;  // chunks per device where the kind takes V (interleaved)
  OpTimesHint times = {};  // what the kind may shape its order by (zbv): OpTimesHintOf
  // The layout's expert all-to-all overlap (ExpertOverlapApplies): one more forward before
  // the first backward (HoldOneMoreForward).
  bool expert_overlap = false;
};

// The typical times of one of `chunks` equal chunks of `profile`'s model: its forward,
// input- and weight-gradient totals over `chunks` (the backward split evenly where a layer
// lacks the split), the transfer of the mean layer output over the profile's link and the
// default gap per send or receive (kDefaultP2pGapMs).
OpTimesHint OpTimesHintOf(const Profile& profile, int chunks);

struct PlanContext {
  Schedule schedule;                // passed ValidateSchedule
  std::vector<int> chunk_device;    // per chunk: its device (filled for every schedule)
  std::vector<int> in_flight;       // per chunk: peak micro-batches held (InFlightPerChunk)
  std::vector<int> device_in_flight;  // per device: the same over its chunks
  bool splits_backward = false;     // I and W instead of B (SplitsBackward)
  std::vector<ChunkRange> chunks;   // per chunk; empty until the split is known

  int num_chunks() const { return static_cast<int>(chunk_device.size()); }
  int num_devices() const { return schedule.num_devices; }
};

// Under the expert all-to-all overlap a pipelined device runs one more forward before its
// first backward (Megatron-LM adds one warm-up micro-batch, megatron/core/pipeline_parallel/
// schedules.py), so it holds one more micro-batch: counted on its first chunk (the one the
// warm-up starts on), at most the micro-batch count. Without a pipeline (one device) nothing
// changes: the next micro-batch's forward runs layer by layer beside the backward that frees
// the previous one's (combined_1f1b.py), which holds about one layer more, not counted.
void HoldOneMoreForward(PlanContext* ctx);

// Builds and validates the schedule of `shape` and derives its counts. Errors: an unknown
// kind, counts below 1, or the kind's own check (e.g. interleaved's V).
Result<PlanContext> MakePlanContext(const PlanShape& shape);
// The context of an already built schedule (e.g. one read from a CSV): validated once here.
Result<PlanContext> MakePlanContext(Schedule schedule);

// The chunks of a split: chunk c runs layers boundaries[c-1] .. boundaries[c] - 1 of
// `num_layers`; `recompute` per chunk (empty: none). Boundaries must be increasing.
std::vector<ChunkRange> ChunksOfSplit(const std::vector<int>& boundaries, int num_layers,
                                      const std::vector<char>& recompute = {});
// The chunk of `chunks` that runs model layer `layer`; -1 when none does.
int ChunkOfLayer(const std::vector<ChunkRange>& chunks, int layer);

// The shape a plan records (schedule, devices, micro-batches, chunks per device), with the
// op times hinted by its embedded profile.
PlanShape ShapeOf(const Plan& plan);

// The context of `plan`, its chunks from the plan's stages. Errors: a schedule that cannot be
// rebuilt from the plan's fields, or one whose chunk count or placement disagrees with the
// plan's stages.
Result<PlanContext> PlanContextOf(const Plan& plan);
// The same with `schedule` (e.g. read from a CSV) instead of the one the plan names; it must
// run the plan's chunks on the plan's devices.
Result<PlanContext> PlanContextOf(const Plan& plan, Schedule schedule);

}  // namespace pp
