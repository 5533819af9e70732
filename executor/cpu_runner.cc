// The cpu backend's StageRunner: the CPU reference layers (fp32) of one device's chunks, with
// everything allocated once per chunk and carved out of one arena:
//   per layer:  parameters, gradients, AdamW moments m and v
//   per slot:   each layer's kept activations and, when the schedule splits the backward
//               into I and W, its pending weight-gradient inputs and output gradient (a full
//               B uses them at once, so then one pending buffer per layer serves every slot);
//               the slot's batch data
//   shared:     the largest workspace, two activation buffers, the chunk's input and gradient
// A slot holds one micro-batch from its F to its B (or W); the number of slots is the chunk's
// peak in-flight count read off the op list. A chunk that recomputes keeps per slot only its
// input (the batch data for the first chunk) and one set of activations, rebuilt by running
// the forward again at the start of each backward.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <new>

#include "executor/runtime.h"
#include "executor/synthetic_data.h"
#include "layers/cpu_math.h"
#include "layers/layer.h"

namespace pp {
namespace {

using Clock = std::chrono::steady_clock;

struct LayerState {
  int index = 0;  // in the model
  std::unique_ptr<CpuLayer<float>> layer;
  float* params = nullptr;
  float* grads = nullptr;
  float* adam_m = nullptr;
  float* adam_v = nullptr;
  std::vector<float*> saved, pending, dy;  // per slot
};

struct Chunk {
  int index = 0;
  bool first = false, last = false;
  std::vector<LayerState> layers;
  std::vector<float> arena;
  float *work = nullptr, *act_a = nullptr, *act_b = nullptr, *input = nullptr, *grad = nullptr;
  int64_t input_count = 0, act_count = 0;
  int num_slots = 0;
  bool recompute = false;
  std::vector<float*> kept;  // recompute, after the first chunk: per slot, the chunk's input
  std::vector<int> slot_of;  // micro-batch -> slot, -1 when none
  std::vector<int> free_slots;
  // Per slot batch data.
  std::vector<std::vector<int32_t>> tokens, labels;
  std::vector<std::vector<float>> features, targets;
};

class CpuRunner final : public StageRunner {
 public:
  CpuRunner(const Model& model, const RunOptions& options, Transport* transport, int device,
            int micro_batches)
      : model_(model), options_(options), transport_(transport), device_(device),
        micro_batches_(micro_batches),
        data_(model.input, VocabOf(model), TargetWidthOf(model), options.seed) {}

  Status AddChunk(int index, const ChunkRange& range, int num_chunks, int slots, bool split) {
    Chunk c;
    c.index = index;
    c.first = index == 0;
    c.last = index + 1 == num_chunks;
    c.num_slots = std::max(slots, 1);
    if (range.recompute && split) {
      return Status::Error("chunk " + std::to_string(index) + " recomputes, which needs full "
                           "backwards (gpipe or 1f1b)");
    }
    c.recompute = range.recompute;
    const int saved_sets = c.recompute ? 1 : c.num_slots;  // activations kept at once
    int64_t total = 0, work = 0, act = 0;
    for (int i = range.first_layer; i <= range.last_layer; ++i) {
      auto made = MakeCpuLayer<float>(model_.layers[i], model_.input);
      if (!made.ok()) return made.status();
      LayerState ls;
      ls.index = i;
      ls.layer = std::move(*made);
      const CpuLayer<float>& l = *ls.layer;
      total += 4 * l.param_count() +
               saved_sets * l.saved_count() +
               (split ? c.num_slots * (l.pending_count() + l.output_count()) : l.pending_count());
      work = std::max(work, l.workspace_count());
      act = std::max({act, l.output_count(), l.rows() * std::max<int64_t>(l.in_width(), 1)});
      c.layers.push_back(std::move(ls));
    }
    const CpuLayer<float>& head = *c.layers.front().layer;
    c.input_count = head.rows() * std::max<int64_t>(head.in_width(), 1);
    c.act_count = act;
    total += work + 1 + 3 * act + c.input_count;
    if (c.recompute && !c.first) total += c.num_slots * c.input_count;
    try {
      c.arena.assign(static_cast<size_t>(total), 0.0f);
    } catch (const std::bad_alloc&) {
      return Status::Error("out of memory allocating " + std::to_string(4 * total) +
                           " bytes for chunk " + std::to_string(index));
    }
    float* at = c.arena.data();
    auto take = [&at](int64_t n) {
      float* p = at;
      at += n;
      return p;
    };
    for (LayerState& ls : c.layers) {
      const CpuLayer<float>& l = *ls.layer;
      ls.params = take(l.param_count());
      ls.grads = take(l.param_count());
      ls.adam_m = take(l.param_count());
      ls.adam_v = take(l.param_count());
      l.Init(ls.params, options_.seed * 1000003ULL + static_cast<uint64_t>(ls.index));
      float* shared_pending = split ? nullptr : take(l.pending_count());
      float* shared_saved = c.recompute ? take(l.saved_count()) : nullptr;
      for (int k = 0; k < c.num_slots; ++k) {
        ls.saved.push_back(c.recompute ? shared_saved : take(l.saved_count()));
        ls.pending.push_back(split ? take(l.pending_count()) : shared_pending);
        ls.dy.push_back(split ? take(l.output_count()) : nullptr);
      }
    }
    c.work = take(work + 1);
    c.act_a = take(act);
    c.act_b = take(act);
    c.input = take(c.input_count);
    c.grad = take(act);  // the gradient of the chunk's output
    if (c.recompute && !c.first) {
      for (int k = 0; k < c.num_slots; ++k) c.kept.push_back(take(c.input_count));
    }
    c.slot_of.assign(micro_batches_, -1);
    for (int k = c.num_slots - 1; k >= 0; --k) c.free_slots.push_back(k);
    const int64_t rows = model_.input.rows();
    const int64_t target_width = TargetWidthOf(model_);
    c.tokens.assign(c.num_slots, std::vector<int32_t>(rows));
    c.labels.assign(c.num_slots, std::vector<int32_t>(rows));
    if (!model_.input.tokens()) {
      c.features.assign(c.num_slots, std::vector<float>(rows * model_.input.features));
      c.targets.assign(c.num_slots, std::vector<float>(rows * std::max<int64_t>(target_width, 1)));
    }
    allocated_ += 4 * static_cast<uint64_t>(total);
    chunks_.push_back(std::move(c));
    return Status::Ok();
  }

  Status BeginStep(int step) override {
    step_ = step;
    timings_.clear();
    loss_sum_ = 0;
    for (Chunk& c : chunks_) {
      for (LayerState& ls : c.layers) {
        std::fill(ls.grads, ls.grads + ls.layer->param_count(), 0.0f);
      }
    }
    step_start_ = Clock::now();
    return Status::Ok();
  }

  Status Run(const PipelineOp& op, int chunk_index) override {
    Chunk* c = Find(chunk_index);
    if (c == nullptr) return Status::Error("chunk is not on this device");
    const double start = Ms(Clock::now());
    Status s;
    switch (op.kind) {
      case OpKind::kForward:
        s = Forward(*c, op.micro_batch);
        break;
      case OpKind::kBackward:
        s = Backward(*c, op.micro_batch, /*input=*/true, /*weight=*/true);
        break;
      case OpKind::kBackwardInput:
        s = Backward(*c, op.micro_batch, true, false);
        break;
      case OpKind::kBackwardWeight:
        s = Backward(*c, op.micro_batch, false, true);
        break;
    }
    timings_.push_back({device_, op, start, Ms(Clock::now())});
    return s;
  }

  Status EndStep(std::vector<OpTiming>* timings, double* loss_sum) override {
    if (options_.optimizer) AdamW();
    *timings = timings_;
    *loss_sum = loss_sum_;
    return Status::Ok();
  }

  uint64_t allocated_bytes() const override { return allocated_; }

  void CopyGradients(std::vector<std::vector<float>>* gradients,
                     std::vector<std::vector<float>>* parameters) const override {
    gradients->resize(model_.layers.size());
    parameters->resize(model_.layers.size());
    for (const Chunk& c : chunks_) {
      for (const LayerState& ls : c.layers) {
        const int64_t n = ls.layer->param_count();
        (*gradients)[ls.index].assign(ls.grads, ls.grads + n);
        (*parameters)[ls.index].assign(ls.params, ls.params + n);
      }
    }
  }

 private:
  static int64_t VocabOf(const Model& m) {
    return m.layers.front().op == LayerKind::kEmbedding ? m.layers.front().vocab : 1;
  }
  static int64_t TargetWidthOf(const Model& m) { return m.layers.back().in_width; }

  double Ms(Clock::time_point t) const {
    return std::chrono::duration<double, std::milli>(t - step_start_).count();
  }
  Chunk* Find(int index) {
    for (Chunk& c : chunks_) {
      if (c.index == index) return &c;
    }
    return nullptr;
  }

  MicroBatch BatchOf(Chunk& c, int slot) {
    MicroBatch b;
    b.tokens = c.tokens[slot].data();
    b.labels = c.labels[slot].data();
    b.targets = c.targets.empty() ? nullptr : c.targets[slot].data();
    return b;
  }

  Status Forward(Chunk& c, int mb) {
    if (c.slot_of[mb] >= 0) return Status::Error("ran twice");
    if (c.free_slots.empty()) return Status::Error("no free activation slot (schedule holds more micro-batches than counted)");
    const int slot = c.free_slots.back();
    c.free_slots.pop_back();
    c.slot_of[mb] = slot;
    if (model_.input.tokens()) {
      data_.Tokens(step_, mb, c.tokens[slot].data(), c.labels[slot].data());
    } else {
      data_.Features(step_, mb, c.features[slot].data(), c.targets[slot].data());
    }
    const float* x = c.input;
    if (c.first) {
      if (!model_.input.tokens()) x = c.features[slot].data();
    } else {
      PP_RETURN_IF_ERROR(transport_->Receive({c.index, false, mb}, c.input, c.input_count,
                                             options_.timeout_s));
    }
    if (c.recompute && !c.first) std::copy(x, x + c.input_count, c.kept[slot]);
    x = RunForward(c, slot, x);
    const CpuLayer<float>& tail = *c.layers.back().layer;
    if (c.last) {
      loss_sum_ += x[0];
      return Status::Ok();
    }
    return transport_->Send({c.index + 1, false, mb}, x, tail.output_count());
  }

  // The chunk's layers forward from `x`, keeping their activations in the slot's saved
  // buffers (the one shared set when the chunk recomputes); returns the chunk's output.
  const float* RunForward(Chunk& c, int slot, const float* x) {
    const MicroBatch batch = BatchOf(c, slot);
    float* out = c.act_a;
    for (LayerState& ls : c.layers) {
      ls.layer->Forward(ls.params, x, batch, out, ls.saved[slot], c.work);
      x = out;
      out = out == c.act_a ? c.act_b : c.act_a;
    }
    return x;
  }

  Status Backward(Chunk& c, int mb, bool input, bool weight) {
    const int slot = c.slot_of[mb];
    if (slot < 0) return Status::Error("backward before its forward");
    const MicroBatch batch = BatchOf(c, slot);
    if (c.recompute) {  // rebuild the activations from the kept input (the loss is not added)
      const float* x = c.first ? (model_.input.tokens() ? c.input : c.features[slot].data())
                               : c.kept[slot];
      RunForward(c, slot, x);
    }
    if (input) {
      const float* dy = c.grad;
      const float loss_grad = 1.0f / static_cast<float>(micro_batches_);
      if (c.last) {
        c.grad[0] = loss_grad;  // d(mean over micro-batches)/d(this micro-batch's loss)
      } else {
        PP_RETURN_IF_ERROR(transport_->Receive({c.index, true, mb}, c.grad,
                                               c.layers.back().layer->output_count(),
                                               options_.timeout_s));
      }
      float* out = c.act_a;
      for (int j = static_cast<int>(c.layers.size()) - 1; j >= 0; --j) {
        LayerState& ls = c.layers[j];
        const CpuLayer<float>& l = *ls.layer;
        float* dx = l.has_input_gradient() ? out : nullptr;
        l.BackwardInput(ls.params, dy, ls.saved[slot], batch, dx, ls.pending[slot], c.work);
        if (weight) {
          l.BackwardWeight(ls.params, dy, ls.saved[slot], ls.pending[slot], batch, ls.grads, c.work);
        } else {
          std::copy(dy, dy + l.output_count(), ls.dy[slot]);
        }
        if (dx == nullptr) break;
        dy = dx;
        out = out == c.act_a ? c.act_b : c.act_a;
      }
      if (!c.first && c.layers.front().layer->has_input_gradient()) {
        PP_RETURN_IF_ERROR(transport_->Send({c.index - 1, true, mb}, dy, c.input_count));
      }
    } else if (weight) {
      for (LayerState& ls : c.layers) {
        ls.layer->BackwardWeight(ls.params, ls.dy[slot], ls.saved[slot], ls.pending[slot], batch,
                                 ls.grads, c.work);
      }
    }
    if (weight) {
      c.slot_of[mb] = -1;
      c.free_slots.push_back(slot);
    }
    return Status::Ok();
  }

  // Decoupled weight decay Adam (beta 0.9 / 0.999, eps 1e-8, decay 0.01), with bias correction.
  void AdamW() {
    ++adam_steps_;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, decay = 0.01, lr = options_.learning_rate;
    const double c1 = 1 - std::pow(b1, adam_steps_), c2 = 1 - std::pow(b2, adam_steps_);
    for (Chunk& c : chunks_) {
      for (LayerState& ls : c.layers) {
        for (int64_t i = 0; i < ls.layer->param_count(); ++i) {
          const double g = ls.grads[i];
          ls.adam_m[i] = static_cast<float>(b1 * ls.adam_m[i] + (1 - b1) * g);
          ls.adam_v[i] = static_cast<float>(b2 * ls.adam_v[i] + (1 - b2) * g * g);
          const double update = (ls.adam_m[i] / c1) / (std::sqrt(ls.adam_v[i] / c2) + eps);
          ls.params[i] = static_cast<float>(ls.params[i] - lr * (update + decay * ls.params[i]));
        }
      }
    }
  }

  const Model& model_;
  RunOptions options_;
  Transport* transport_;
  int device_;
  int micro_batches_;
  SyntheticData data_;
  std::vector<Chunk> chunks_;
  uint64_t allocated_ = 0;
  int step_ = 0;
  int adam_steps_ = 0;
  double loss_sum_ = 0;
  Clock::time_point step_start_;
  std::vector<OpTiming> timings_;
};

}  // namespace

Result<std::vector<std::unique_ptr<StageRunner>>> MakeCpuRunners(
    const Model& model, const std::vector<ChunkRange>& chunks, const Schedule& schedule,
    const RunOptions& options, Transport* transport) {
  if (static_cast<int>(chunks.size()) != NumChunks(schedule)) {
    return Status::Error("the plan has " + std::to_string(chunks.size()) +
                         " chunks but its schedule runs " + std::to_string(NumChunks(schedule)));
  }
  const bool split = SplitsBackward(schedule);
  const std::vector<int> slots = InFlightPerChunk(schedule);
  std::vector<std::unique_ptr<StageRunner>> runners;
  std::vector<CpuRunner*> raw;
  for (int d = 0; d < schedule.num_stages; ++d) {
    auto r = std::make_unique<CpuRunner>(model, options, transport, d, schedule.num_micro_batches);
    raw.push_back(r.get());
    runners.push_back(std::move(r));
  }
  for (int c = 0; c < static_cast<int>(chunks.size()); ++c) {
    const Status s = raw[ChunkDevice(schedule, c)]->AddChunk(
        c, chunks[c], static_cast<int>(chunks.size()), slots[c], split);
    if (!s.ok()) return s.Prefixed("device " + std::to_string(ChunkDevice(schedule, c)));
  }
  return runners;
}

}  // namespace pp
