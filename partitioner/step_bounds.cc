#include "partitioner/step_bounds.h"

namespace pp {

const CostModel& BoundCost(const SplitContext& ctx) {
  return ctx.bound_cost ? *ctx.bound_cost : *ctx.cost;
}

std::unique_ptr<StepBounds> MakeStepBounds(const SplitContext& ctx, const Schedule& schedule) {
  // Bounds 1-6 read one device's list as one stage's: one chunk per device, whole
  // backwards, every list starting with a forward and ending with a backward (gpipe, 1f1b).
  bool classic = schedule.chunk_device.empty() && !SplitsBackward(schedule);
  for (const std::vector<PipelineOp>& ops : schedule.stages) {
    classic &= !ops.empty() && ops.front().kind == OpKind::kForward &&
               ops.back().kind == OpKind::kBackward;
  }
  if (!classic) return MakeChunkedStepBounds(ctx, schedule);
  return MakeClassicStepBounds(ctx, schedule, schedule.name == "gpipe");
}

}  // namespace pp
