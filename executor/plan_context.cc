#include "executor/plan_context.h"

#include <algorithm>
#include <utility>

#include "executor/simulator.h"

namespace pp {

void HoldOneMoreForward(PlanContext* ctx) {
  if (ctx->num_devices() < 2) return;
  const int m = ctx->schedule.num_micro_batches;
  std::vector<char> seen(ctx->device_in_flight.size(), 0);
  for (int c = 0; c < ctx->num_chunks(); ++c) {
    const int d = ctx->chunk_device[c];
    if (d < 0 || d >= static_cast<int>(seen.size()) || seen[d]) continue;
    seen[d] = 1;
    ctx->in_flight[c] = std::min(ctx->in_flight[c] + 1, m);
    ctx->device_in_flight[d] = std::min(ctx->device_in_flight[d] + 1, m);
  }
}

Result<PlanContext> MakePlanContext(const PlanShape& shape) {
  Result<Schedule> schedule = BuildSchedule(shape.schedule, shape.devices, shape.micro_batches,
                                            ScheduleOptions{shape.virtual_stages, shape.times});
  if (!schedule.ok()) return schedule.status();
  Result<PlanContext> ctx = MakePlanContext(std::move(*schedule));
  if (ctx.ok() && shape.expert_overlap) HoldOneMoreForward(&*ctx);
  return ctx;
}

Result<PlanContext> MakePlanContext(Schedule schedule) {
  PP_RETURN_IF_ERROR(ValidateSchedule(schedule));
  PlanContext ctx;
  const int chunks = NumChunks(schedule);
  for (int c = 0; c < chunks; ++c) ctx.chunk_device.push_back(ChunkDevice(schedule, c));
  ctx.in_flight = InFlightPerChunk(schedule);
  ctx.device_in_flight = InFlightMicroBatches(schedule);
  ctx.splits_backward = SplitsBackward(schedule);
  ctx.schedule = std::move(schedule);
  return ctx;
}

std::vector<ChunkRange> ChunksOfSplit(const std::vector<int>& boundaries, int num_layers,
                                      const std::vector<char>& recompute) {
  std::vector<ChunkRange> chunks;
  const int n = static_cast<int>(boundaries.size()) + 1;
  for (int c = 0; c < n; ++c) {
    ChunkRange r;
    r.first_layer = c == 0 ? 0 : boundaries[c - 1];
    r.last_layer = c + 1 == n ? num_layers - 1 : boundaries[c] - 1;
    r.recompute = c < static_cast<int>(recompute.size()) && recompute[c] != 0;
    chunks.push_back(r);
  }
  return chunks;
}

int ChunkOfLayer(const std::vector<ChunkRange>& chunks, int layer) {
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (chunks[c].first_layer <= layer && layer <= chunks[c].last_layer) return static_cast<int>(c);
  }
  return -1;
}

OpTimesHint OpTimesHintOf(const Profile& profile, int chunks) {
  OpTimesHint hint;
  if (profile.layers.empty() || chunks < 1) return hint;
  double forward = 0, backward = 0, input = 0, whole = 0, output = 0;
  bool split = true;
  for (const LayerProfile& l : profile.layers) {
    forward += l.forward_ms;
    backward += l.backward_ms;
    split &= l.backward_input_ms.has_value() && l.backward_weight_ms.has_value();
    if (split) {
      input += *l.backward_input_ms;
      whole += *l.backward_input_ms + *l.backward_weight_ms;
    }
    output += static_cast<double>(l.output_bytes);
  }
  const double share = split && whole > 0 ? input / whole : 0.5;
  hint.forward_ms = forward / chunks;
  hint.input_ms = backward * share / chunks;
  hint.weight_ms = backward / chunks - hint.input_ms;
  const auto mean = static_cast<uint64_t>(output / static_cast<double>(profile.layers.size()));
  hint.transfer_ms = profile.link.bandwidth_bytes_per_s > 0 ? profile.link.TransferMs(mean) : 0;
  hint.p2p_gap_ms = kDefaultP2pGapMs;
  return hint;
}

PlanShape ShapeOf(const Plan& plan) {
  // Kinds that do not take V ignore it; 2 is the kinds' own default.
  PlanShape shape{plan.schedule, plan.num_stages, plan.num_micro_batches,
                  plan.virtual_stages > 1 ? plan.virtual_stages : 2};
  shape.times = OpTimesHintOf(plan.profile, NumChunks(plan));
  shape.expert_overlap = plan.parallelism && ExpertOverlapApplies(*plan.parallelism);
  return shape;
}

namespace {

Status CheckAgainstPlan(const Plan& plan, const PlanContext& ctx) {
  if (ctx.num_devices() != plan.num_stages || ctx.num_chunks() != NumChunks(plan) ||
      ctx.num_chunks() != static_cast<int>(plan.stages.size())) {
    return Status::Error("the schedule runs " + std::to_string(ctx.num_chunks()) +
                         " chunks on " + std::to_string(ctx.num_devices()) +
                         " devices; the plan has " + std::to_string(plan.stages.size()) +
                         " stages on " + std::to_string(plan.num_stages));
  }
  for (const StagePlan& s : plan.stages) {
    if (s.index < 0 || s.index >= ctx.num_chunks()) {
      return Status::Error("stage index " + std::to_string(s.index) + " is out of range");
    }
    if (s.device && *s.device != ctx.chunk_device[s.index]) {
      return Status::Error("stage " + std::to_string(s.index) + " is on device " +
                           std::to_string(*s.device) + " but schedule " + ctx.schedule.name +
                           " runs that chunk on device " +
                           std::to_string(ctx.chunk_device[s.index]));
    }
  }
  return Status::Ok();
}

Result<PlanContext> WithChunks(const Plan& plan, Result<PlanContext> ctx) {
  if (!ctx.ok()) return ctx.status();
  PP_RETURN_IF_ERROR(CheckAgainstPlan(plan, *ctx));
  ctx->chunks.resize(plan.stages.size());
  for (const StagePlan& s : plan.stages) {
    ctx->chunks[s.index] = ChunkRange{s.first_layer, s.last_layer, s.recompute, plan.recompute_unit,
                                      plan.recompute_blocks};
  }
  return ctx;
}

}  // namespace

Result<PlanContext> PlanContextOf(const Plan& plan) {
  return WithChunks(plan, MakePlanContext(ShapeOf(plan)));
}

Result<PlanContext> PlanContextOf(const Plan& plan, Schedule schedule) {
  Result<PlanContext> ctx = MakePlanContext(std::move(schedule));
  if (ctx.ok() && plan.parallelism && ExpertOverlapApplies(*plan.parallelism)) {
    HoldOneMoreForward(&*ctx);
  }
  return WithChunks(plan, std::move(ctx));
}

}  // namespace pp
