#include "executor/chunk_runner.h"

#include <algorithm>
#include <string>
#include <utility>

namespace pp {

ChunkRunner::ChunkRunner(const Schedule& schedule, int device,
                         std::unique_ptr<PipelineDevice> backend)
    : schedule_(schedule), device_(device), backend_(std::move(backend)),
      ops_(schedule.device_ops[device]) {}

Result<DeviceChunks> LayoutOf(const Schedule& schedule, int device,
                              const std::vector<ChunkRange>& chunks) {
  const int num_chunks = static_cast<int>(chunks.size());
  const std::vector<int> slots = InFlightPerChunk(schedule);
  DeviceChunks layout;
  layout.device = device;
  layout.micro_batches = schedule.num_micro_batches;
  layout.ops_per_step = static_cast<int>(schedule.device_ops[device].size());
  layout.split = SplitsBackward(schedule);
  for (int c = 0; c < num_chunks; ++c) {
    if (ChunkDevice(schedule, c) != device) continue;
    if (chunks[c].recompute && layout.split) {
      return Status::Error("chunk " + std::to_string(c) + " recomputes, which needs full "
                           "backwards (gpipe or 1f1b)");
    }
    ChunkSpec spec;
    spec.index = c;
    spec.range = chunks[c];
    spec.first = c == 0;
    spec.last = c + 1 == num_chunks;
    spec.slots = std::max(slots[c], 1);
    layout.chunks.push_back(spec);
  }
  return layout;
}

Status ChunkRunner::Setup(const std::vector<ChunkRange>& chunks) {
  const int m = schedule_.num_micro_batches;
  Result<DeviceChunks> laid_out = LayoutOf(schedule_, device_, chunks);
  if (!laid_out.ok()) return laid_out.status();
  const DeviceChunks& layout = *laid_out;
  PP_RETURN_IF_ERROR(backend_->Setup(layout));
  chunks_.clear();
  for (const ChunkSpec& spec : layout.chunks) {
    Chunk c;
    c.spec = spec;
    c.passes_gradient = !spec.first && backend_->PassesGradient(spec.index);
    c.slot_of.assign(m, -1);
    for (int k = spec.slots - 1; k >= 0; --k) c.free_slots.push_back(k);
    chunks_.push_back(std::move(c));
  }
  chunk_of_.clear();
  local_of_.clear();
  for (const PipelineOp& op : ops_) {
    const int c = OpChunk(schedule_, device_, op);
    int local = -1;
    for (size_t k = 0; k < chunks_.size(); ++k) {
      if (chunks_[k].spec.index == c) local = static_cast<int>(k);
    }
    if (local < 0) {
      return Status::Error("op " + OpText(op, c) + " runs chunk " + std::to_string(c) +
                           ", which is not on this device");
    }
    chunk_of_.push_back(c);
    local_of_.push_back(local);
  }
  spans_.reserve(ops_.size());
  return Status::Ok();
}

Status ChunkRunner::BeginStep(int step) {
  ops_run_ = 0;
  return backend_->BeginStep(step);
}

Status ChunkRunner::Prepare(int index, OpCall* call) {
  const PipelineOp& op = ops_[index];
  Chunk& c = chunks_[local_of_[index]];
  const int mb = op.micro_batch;
  if (mb < 0 || mb >= static_cast<int>(c.slot_of.size())) {
    return Status::Error("micro-batch out of range");
  }
  call->index = index;
  call->chunk = c.spec.index;
  call->micro_batch = mb;
  call->input.reset();
  call->output.reset();
  if (op.kind == OpKind::kForward) {
    if (c.slot_of[mb] >= 0) return Status::Error("ran twice");
    if (c.free_slots.empty()) {
      return Status::Error("no free activation slot (schedule holds more micro-batches than "
                           "counted)");
    }
    call->slot = c.free_slots.back();
    c.free_slots.pop_back();
    c.slot_of[mb] = call->slot;
    if (!c.spec.first) call->input = MessageKey{c.spec.index, false, mb};
    if (!c.spec.last) call->output = MessageKey{c.spec.index + 1, false, mb};
    return Status::Ok();
  }
  call->slot = c.slot_of[mb];
  if (call->slot < 0) return Status::Error("backward before its forward");
  if (op.kind != OpKind::kBackwardWeight) {
    if (!c.spec.last) call->input = MessageKey{c.spec.index, true, mb};
    if (c.passes_gradient) call->output = MessageKey{c.spec.index - 1, true, mb};
  }
  return Status::Ok();
}

Status ChunkRunner::Run(int index) {
  OpCall call;
  PP_RETURN_IF_ERROR(Prepare(index, &call));
  const OpKind kind = ops_[index].kind;
  Chunk& c = chunks_[local_of_[index]];
  // The op's clock runs from when its input is there: the wait is not the op's time.
  if (call.input) PP_RETURN_IF_ERROR(backend_->Receive(call));
  PP_RETURN_IF_ERROR(backend_->MarkStart(call));
  switch (kind) {
    case OpKind::kForward:
      PP_RETURN_IF_ERROR(backend_->Forward(call));
      break;
    case OpKind::kBackward:
      // A chunk that recomputes layer by layer does so inside its backward.
      if (c.spec.range.recompute && c.spec.range.unit == RecomputeUnit::kStage) {
        PP_RETURN_IF_ERROR(backend_->Recompute(call));
      }
      PP_RETURN_IF_ERROR(backend_->Backward(call));
      break;
    case OpKind::kBackwardInput:
      PP_RETURN_IF_ERROR(backend_->BackwardInput(call));
      break;
    case OpKind::kBackwardWeight:
      PP_RETURN_IF_ERROR(backend_->BackwardWeight(call));
      break;
  }
  PP_RETURN_IF_ERROR(backend_->MarkEnd(call));
  ++ops_run_;
  if (call.output) PP_RETURN_IF_ERROR(backend_->Send(call));
  if (kind == OpKind::kBackward || kind == OpKind::kBackwardWeight) {
    c.slot_of[call.micro_batch] = -1;
    c.free_slots.push_back(call.slot);
  }
  return Status::Ok();
}

Status ChunkRunner::EndStep(std::vector<OpTiming>* timings, double* loss_sum) {
  PP_RETURN_IF_ERROR(backend_->EndStep(ops_run_, &spans_, loss_sum));
  if (static_cast<int>(spans_.size()) != ops_run_) {
    return Status::Error("the device's clock has " + std::to_string(spans_.size()) +
                         " marks for " + std::to_string(ops_run_) + " ops (a bug)");
  }
  timings->clear();
  for (int i = 0; i < ops_run_; ++i) {
    timings->push_back({device_, ops_[i], spans_[i].start_ms, spans_[i].end_ms});
  }
  return Status::Ok();
}

}  // namespace pp
