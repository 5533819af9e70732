#include "partitioner/step_bounds.h"

namespace pp {

const CostModel& BoundCost(const SplitContext& ctx) {
  return ctx.bound_cost ? *ctx.bound_cost : *ctx.cost;
}

std::unique_ptr<StepBounds> MakeStepBounds(const SplitContext& ctx, const Schedule& schedule) {
  // The schedule kind states its family (executor/schedule.h); bounds 1-6 read one device's
  // list as one stage's (one chunk per device, whole backwards: gpipe, 1f1b).
  switch (StepBoundsOf(schedule)) {
    case StepBoundsFamily::kGpipe:
      return MakeClassicStepBounds(ctx, schedule, /*gpipe=*/true);
    case StepBoundsFamily::kOneChunkFullBackward:
      return MakeClassicStepBounds(ctx, schedule, /*gpipe=*/false);
    case StepBoundsFamily::kChunked:
      break;
  }
  return MakeChunkedStepBounds(ctx, schedule);
}

}  // namespace pp
