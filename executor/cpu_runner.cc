// The cpu backend's PipelineDevice (cpu_runner.h): the CPU reference layers (fp32) of one
// device's chunks, with everything allocated once per chunk and carved out of one arena:
//   per layer:  parameters, gradients, AdamW moments m and v
//   per slot:   each layer's kept activations and, when the schedule splits the backward
//               into I and W, its pending weight-gradient inputs and output gradient (a full
//               B uses them at once, so then one pending buffer per layer serves every slot);
//               the slot's batch data
//   shared:     the largest workspace, two activation buffers, the chunk's input and gradient
// The chunk runner says which slot an op uses and when a recomputing chunk runs its forward
// again. A chunk that recomputes keeps per slot only its input (the batch data for the first
// chunk) and one set of activations, rebuilt by Recompute at the start of each backward; one
// that recomputes layer by layer keeps per slot every layer's input and one layer's
// activations (the largest layer's buffer, shared), each layer rebuilt in the backward just
// before its own gradients.
#include "executor/cpu_runner.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <utility>

#include "core/units.h"
#include "executor/chunk_runner.h"
#include "executor/host_clock.h"
#include "executor/synthetic_data.h"
#include "executor/tied_weights.h"
#include "layers/cpu_math.h"
#include "layers/layer.h"

namespace pp {
namespace {

struct LayerState {
  int index = 0;  // in the model
  std::unique_ptr<CpuLayer<float>> layer;
  float* params = nullptr;
  float* grads = nullptr;
  float* adam_m = nullptr;
  float* adam_v = nullptr;
  std::vector<float*> saved, pending, dy;  // per slot
  std::vector<float*> kept;  // rebuilt, after the chunk's first layer: per slot its input
  bool block = false;        // a transformer block
  bool rebuilt = false;      // recomputed on its own in the backward (RecomputeUnit kLayer, kBlock)
};

struct Chunk {
  int index = 0;
  bool first = false, last = false;
  std::vector<LayerState> layers;
  std::vector<float> arena;
  float *work = nullptr, *act_a = nullptr, *act_b = nullptr, *input = nullptr, *grad = nullptr;
  int64_t input_count = 0, act_count = 0;
  int num_slots = 0;
  bool recompute = false, by_layer = false;
  std::vector<float*> kept;  // recompute, after the first chunk: per slot, the chunk's input
  float* rebuilt = nullptr;  // by layer: where a rebuilt layer's output goes
  // The result the last op computed, for Send: the output (F) or the input gradient (B, I).
  const float* result = nullptr;
  int64_t result_count = 0;
  // Per slot batch data.
  std::vector<std::vector<int32_t>> tokens, labels;
  std::vector<std::vector<float>> features, targets;
};

// The layers of `range` with nothing allocated yet.
Result<std::vector<LayerState>> MakeLayers(const Model& model, const ChunkRange& range) {
  std::vector<LayerState> layers;
  for (int i = range.first_layer; i <= range.last_layer; ++i) {
    auto made = MakeCpuLayer<float>(model.layers[i], model.input);
    if (!made.ok()) return made.status();
    LayerState ls;
    ls.index = i;
    ls.layer = std::move(*made);
    ls.block = model.layers[i].op == LayerKind::kTransformerBlock;
    layers.push_back(std::move(ls));
  }
  // Which layers rebuild their activations on their own: all (by layer) or the first
  // range.blocks transformer blocks (by block).
  int blocks = 0;
  for (LayerState& ls : layers) {
    if (!range.recompute || range.unit == RecomputeUnit::kStage) break;
    ls.rebuilt = range.unit == RecomputeUnit::kLayer || (ls.block && blocks++ < range.blocks);
  }
  return layers;
}

// A chunk's arena in floats (total), and the sizes of its shared buffers: the one count both
// the allocation and the memory check before it use.
struct ArenaSize {
  int64_t total = 0, work = 0, act = 0, input = 0;
  int64_t rebuilt_saved = 0;  // the one set the rebuilt layers share (the largest's)
};

ArenaSize ArenaSizeOf(const std::vector<LayerState>& layers, const ChunkSpec& spec, bool split) {
  ArenaSize size;
  if (layers.empty()) return size;
  const int num_slots = std::max(spec.slots, 1);
  const bool recompute = spec.range.recompute;
  const bool by_layer = recompute && spec.range.unit != RecomputeUnit::kStage;
  const int saved_sets = recompute && !by_layer ? 1 : num_slots;  // activations kept at once
  for (size_t j = 0; j < layers.size(); ++j) {
    const CpuLayer<float>& l = *layers[j].layer;
    size.total += 4 * l.param_count() +
                  (split ? num_slots * (l.pending_count() + l.output_count()) : l.pending_count());
    if (!layers[j].rebuilt) size.total += saved_sets * l.saved_count();
    if (layers[j].rebuilt && j > 0) size.total += num_slots * layers[j - 1].layer->output_count();
    if (layers[j].rebuilt) size.rebuilt_saved = std::max(size.rebuilt_saved, l.saved_count());
    size.work = std::max(size.work, l.workspace_count());
    size.act = std::max({size.act, l.output_count(), l.rows() * std::max<int64_t>(l.in_width(), 1)});
  }
  const CpuLayer<float>& head = *layers.front().layer;
  size.input = head.rows() * std::max<int64_t>(head.in_width(), 1);
  size.total += size.work + 1 + 3 * size.act + size.input;
  if (recompute && !spec.first && (!by_layer || layers.front().rebuilt)) {
    size.total += num_slots * size.input;
  }
  if (by_layer) size.total += size.rebuilt_saved + size.act;  // one layer's set; its output
  return size;
}

class CpuDevice final : public PipelineDevice {
 public:
  CpuDevice(const Model& model, const RunOptions& options, Transport* transport,
            CpuDeviceHooks hooks)
      : model_(model), options_(options), transport_(transport), hooks_(std::move(hooks)),
        data_(model.input, VocabOf(model), TargetWidthOf(model), options.seed) {}

  Status Setup(const DeviceChunks& layout) override {
    Result<std::vector<TiedWeight>> ties = TiedWeights(model_);
    if (!ties.ok()) return ties.status();
    ties_ = std::move(*ties);
    micro_batches_ = layout.micro_batches;
    clock_.Resize(layout.ops_per_step);
    std::vector<ChunkRange> ranges;
    for (const ChunkSpec& spec : layout.chunks) {
      PP_RETURN_IF_ERROR(AddChunk(spec, layout.split));
      ranges.push_back(spec.range);
    }
    // Where the other side of a tie split over two devices sends its gradient.
    tied_in_.assign(static_cast<size_t>(ExchangeCount(ties_, ranges)), 0.0f);
    allocated_ += 4 * static_cast<uint64_t>(tied_in_.size());
    return Status::Ok();
  }

  bool PassesGradient(int chunk) const override {
    const Chunk* c = Find(chunk);
    return c != nullptr && c->layers.front().layer->has_input_gradient();
  }

  Status BeginStep(int step) override {
    step_ = step;
    loss_sum_ = 0;
    for (Chunk& c : chunks_) {
      for (LayerState& ls : c.layers) {
        std::fill(ls.grads, ls.grads + ls.layer->param_count(), 0.0f);
      }
    }
    clock_.StartStep();
    return Status::Ok();
  }

  Status Receive(const OpCall& call) override {
    Chunk* c = Find(call.chunk);
    if (c == nullptr) return Status::Error("chunk is not on this device");
    if (call.input->gradient) {
      return transport_->Receive(*call.input, c->grad, c->layers.back().layer->output_count(),
                                 options_.timeout_s);
    }
    return transport_->Receive(*call.input, c->input, c->input_count, options_.timeout_s);
  }

  Status MarkStart(const OpCall& call) override {
    if (call.index < 0 || call.index >= clock_.size()) return Status::Error("no clock mark");
    clock_.MarkStart(call.index);
    return Status::Ok();
  }
  Status MarkEnd(const OpCall& call) override {
    if (call.index < 0 || call.index >= clock_.size()) return Status::Error("no clock mark");
    clock_.MarkEnd(call.index);
    return Status::Ok();
  }

  Status Forward(const OpCall& call) override {
    Chunk* c = Find(call.chunk);
    if (c == nullptr) return Status::Error("chunk is not on this device");
    const int slot = call.slot;
    const int mb = hooks_.micro_batch_offset + call.micro_batch;
    // The micro-batch's data, where it is read: the first layer reads the token ids or
    // features, the loss the labels or targets; the chunks between read neither.
    if (c->first || c->last) {
      if (model_.input.tokens()) {
        data_.Tokens(step_, mb, c->tokens[slot].data(), c->labels[slot].data());
      } else {
        data_.Features(step_, mb, c->features[slot].data(), c->targets[slot].data());
      }
    }
    const float* x = c->input;  // received there (the embedding reads tokens, not x)
    if (c->first && !model_.input.tokens()) x = c->features[slot].data();
    if (!c->kept.empty()) std::copy(x, x + c->input_count, c->kept[slot]);
    x = RunForward(*c, slot, x, c->by_layer);
    if (c->last) {
      loss_sum_ += x[0];
    } else {
      c->result = x;
      c->result_count = c->layers.back().layer->output_count();
    }
    return Status::Ok();
  }

  Status Recompute(const OpCall& call) override {
    Chunk* c = Find(call.chunk);
    if (c == nullptr) return Status::Error("chunk is not on this device");
    if (!c->recompute || c->by_layer) {
      return Status::Error("the chunk does not recompute as a whole (a bug)");
    }
    RunForward(*c, call.slot, ChunkInput(*c, call.slot), false);
    return Status::Ok();
  }

  Status Backward(const OpCall& call) override { return RunBackward(call, true, true); }
  Status BackwardInput(const OpCall& call) override { return RunBackward(call, true, false); }
  Status BackwardWeight(const OpCall& call) override { return RunBackward(call, false, true); }

  Status Send(const OpCall& call) override {
    Chunk* c = Find(call.chunk);
    if (c == nullptr) return Status::Error("chunk is not on this device");
    if (c->result == nullptr) return Status::Error("nothing to send (a bug)");
    const Status s = transport_->Send(*call.output, c->result, c->result_count);
    c->result = nullptr;
    return s;
  }

  Status EndStep(int ops, std::vector<OpSpan>* spans, double* loss_sum) override {
    if (hooks_.reduce_gradients) {
      for (Chunk& c : chunks_) {
        for (LayerState& ls : c.layers) {
          const int64_t n = ls.layer->param_count();
          if (n > 0) PP_RETURN_IF_ERROR(hooks_.reduce_gradients(ls.grads, static_cast<size_t>(n)));
        }
      }
    }
    PP_RETURN_IF_ERROR(SumTiedGradients());
    if (options_.optimizer) AdamW();
    clock_.Read(ops, spans);
    *loss_sum = loss_sum_;
    return Status::Ok();
  }

  uint64_t allocated_bytes() const override { return allocated_; }

  void CopyGradients(std::vector<std::vector<float>>* gradients,
                     std::vector<std::vector<float>>* parameters) const override {
    gradients->resize(std::max(gradients->size(), model_.layers.size()));
    parameters->resize(std::max(parameters->size(), model_.layers.size()));
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

  Status AddChunk(const ChunkSpec& spec, bool split) {
    Chunk c;
    c.index = spec.index;
    c.first = spec.first;
    c.last = spec.last;
    c.num_slots = std::max(spec.slots, 1);
    c.recompute = spec.range.recompute;
    c.by_layer = c.recompute && spec.range.unit != RecomputeUnit::kStage;
    if (c.recompute && spec.range.unit == RecomputeUnit::kSelective) {
      return Status::Error("chunk " + std::to_string(c.index) +
                           " recomputes single modules of its blocks (selective), which is not "
                           "available yet");
    }
    Result<std::vector<LayerState>> layers = MakeLayers(model_, spec.range);
    if (!layers.ok()) return layers.status();
    c.layers = std::move(*layers);
    if (c.layers.empty()) return Status::Error("chunk " + std::to_string(c.index) + " has no layers");
    const ArenaSize size = ArenaSizeOf(c.layers, spec, split);
    const int64_t total = size.total, work = size.work;
    c.input_count = size.input;
    c.act_count = size.act;
    const int64_t act = size.act;
    try {
      c.arena.assign(static_cast<size_t>(total), 0.0f);
    } catch (const std::bad_alloc&) {
      return Status::Error("out of memory allocating " + std::to_string(4 * total) +
                           " bytes for chunk " + std::to_string(c.index));
    }
    float* at = c.arena.data();
    auto take = [&at](int64_t n) {
      float* p = at;
      at += n;
      return p;
    };
    // Recomputing by layer, every rebuilt layer rebuilds its activations into one set.
    float* layer_saved = c.by_layer ? take(size.rebuilt_saved) : nullptr;
    for (size_t j = 0; j < c.layers.size(); ++j) {
      LayerState& ls = c.layers[j];
      const CpuLayer<float>& l = *ls.layer;
      ls.params = take(l.param_count());
      ls.grads = take(l.param_count());
      ls.adam_m = take(l.param_count());
      ls.adam_v = take(l.param_count());
      PP_RETURN_IF_ERROR(InitialValues(model_, ls.index, options_.seed, ls.params));
      float* shared_pending = split ? nullptr : take(l.pending_count());
      // One set for every slot: a chunk that recomputes as a whole, or a rebuilt layer.
      const bool shared = ls.rebuilt || (c.recompute && !c.by_layer);
      float* shared_saved = ls.rebuilt ? layer_saved : shared ? take(l.saved_count()) : nullptr;
      for (int k = 0; k < c.num_slots; ++k) {
        ls.saved.push_back(shared ? shared_saved : take(l.saved_count()));
        ls.pending.push_back(split ? take(l.pending_count()) : shared_pending);
        ls.dy.push_back(split ? take(l.output_count()) : nullptr);
        if (ls.rebuilt && j > 0) ls.kept.push_back(take(c.layers[j - 1].layer->output_count()));
      }
    }
    c.work = take(work + 1);
    c.act_a = take(act);
    c.act_b = take(act);
    c.input = take(c.input_count);
    c.grad = take(act);  // the gradient of the chunk's output
    if (c.recompute && !c.first && (!c.by_layer || c.layers.front().rebuilt)) {
      for (int k = 0; k < c.num_slots; ++k) c.kept.push_back(take(c.input_count));
    }
    if (c.by_layer) c.rebuilt = take(act);
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

  Chunk* Find(int index) {
    for (Chunk& c : chunks_) {
      if (c.index == index) return &c;
    }
    return nullptr;
  }
  const Chunk* Find(int index) const {
    for (const Chunk& c : chunks_) {
      if (c.index == index) return &c;
    }
    return nullptr;
  }

  LayerState* FindLayer(int index) {
    for (Chunk& c : chunks_) {
      for (LayerState& ls : c.layers) {
        if (ls.index == index) return &ls;
      }
    }
    return nullptr;
  }

  // Each tie's shared weight gets the sum of both sides' gradients (executor/tied_weights.h):
  // here when this device holds both layers, else through the hook with the other's device.
  Status SumTiedGradients() {
    for (const TiedWeight& t : ties_) {
      LayerState* e = FindLayer(t.embedding);
      LayerState* w = FindLayer(t.linear);
      if (e != nullptr && w != nullptr) {
        AddTransposed(w->grads, t.hidden, t.vocab, e->grads);
        CopyTransposed(e->grads, t.vocab, t.hidden, w->grads);
        continue;
      }
      LayerState* mine = e != nullptr ? e : w;
      if (mine == nullptr) continue;
      if (!hooks_.exchange_tied) {
        return Status::Error("layer " + model_.layers[mine->index].name +
                             " shares its weight with a layer on another device, and this run "
                             "has no way to exchange their gradients (a bug)");
      }
      PP_RETURN_IF_ERROR(hooks_.exchange_tied(t, e != nullptr, mine->grads, tied_in_.data()));
      if (e != nullptr) {
        AddTransposed(tied_in_.data(), t.hidden, t.vocab, e->grads);
      } else {
        AddTransposed(tied_in_.data(), t.vocab, t.hidden, w->grads);
      }
    }
    return Status::Ok();
  }

  MicroBatch BatchOf(Chunk& c, int slot) {
    MicroBatch b;
    b.tokens = c.tokens[slot].data();
    b.labels = c.labels[slot].data();
    b.targets = c.targets.empty() ? nullptr : c.targets[slot].data();
    return b;
  }

  // What the chunk's first layer reads of the slot's micro-batch when it runs again: the
  // token ids (through the batch) or the features for the first chunk, else the kept input.
  const float* ChunkInput(Chunk& c, int slot) {
    if (!c.first) return c.kept[slot];
    return model_.input.tokens() ? c.input : c.features[slot].data();
  }

  // The chunk's layers forward from `x`, keeping their activations in the slot's saved
  // buffers (the one shared set when the chunk recomputes) and, with `keep_inputs`, each
  // layer's input after the first in its kept buffer; returns the chunk's output.
  const float* RunForward(Chunk& c, int slot, const float* x, bool keep_inputs) {
    const MicroBatch batch = BatchOf(c, slot);
    float* out = c.act_a;
    for (size_t j = 0; j < c.layers.size(); ++j) {
      LayerState& ls = c.layers[j];
      if (keep_inputs && ls.rebuilt && j > 0) {
        std::copy(x, x + c.layers[j - 1].layer->output_count(), ls.kept[slot]);
      }
      ls.layer->Forward(ls.params, x, batch, out, ls.saved[slot], c.work);
      x = out;
      out = out == c.act_a ? c.act_b : c.act_a;
    }
    return x;
  }

  // B (input and weight), I (input only) or W (weight only) on the slot of `call`; the
  // gradient of the chunk's output was received into c.grad (the last chunk: set here).
  Status RunBackward(const OpCall& call, bool input, bool weight) {
    Chunk* found = Find(call.chunk);
    if (found == nullptr) return Status::Error("chunk is not on this device");
    Chunk& c = *found;
    const int slot = call.slot;
    const MicroBatch batch = BatchOf(c, slot);
    if (input) {
      const float* dy = c.grad;
      const float loss_grad = 1.0f / static_cast<float>(micro_batches_);
      if (c.last) c.grad[0] = loss_grad;  // d(mean over micro-batches)/d(this micro-batch's loss)
      float* out = c.act_a;
      for (int j = static_cast<int>(c.layers.size()) - 1; j >= 0; --j) {
        LayerState& ls = c.layers[j];
        const CpuLayer<float>& l = *ls.layer;
        if (ls.rebuilt) {  // the layer's activations again, from its kept input
          const float* x = j == 0 ? ChunkInput(c, slot) : ls.kept[slot];
          l.Forward(ls.params, x, batch, c.rebuilt, ls.saved[slot], c.work);
        }
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
      c.result = dy;  // the gradient of the chunk's input, when its head passes one
      c.result_count = c.input_count;
    } else if (weight) {
      for (LayerState& ls : c.layers) {
        ls.layer->BackwardWeight(ls.params, ls.dy[slot], ls.saved[slot], ls.pending[slot], batch,
                                 ls.grads, c.work);
      }
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
  CpuDeviceHooks hooks_;
  int micro_batches_ = 0;
  SyntheticData data_;
  std::vector<Chunk> chunks_;
  std::vector<TiedWeight> ties_;
  std::vector<float> tied_in_;  // the other side's gradient of a split tie (ExchangeCount)
  uint64_t allocated_ = 0;
  int step_ = 0;
  int adam_steps_ = 0;
  double loss_sum_ = 0;
  HostClock clock_;
};

}  // namespace

std::unique_ptr<PipelineDevice> MakeCpuDevice(const Model& model, const RunOptions& options,
                                              Transport* transport, CpuDeviceHooks hooks) {
  return std::make_unique<CpuDevice>(model, options, transport, std::move(hooks));
}

Result<uint64_t> CpuRunBytes(const Model& model, const std::vector<ChunkRange>& chunks,
                             const Schedule& schedule) {
  PP_RETURN_IF_ERROR(CheckRun(schedule, chunks));
  Result<std::vector<TiedWeight>> ties = TiedWeights(model);
  if (!ties.ok()) return ties.status();
  uint64_t bytes = 0;
  for (int d = 0; d < schedule.num_devices; ++d) {
    Result<DeviceChunks> layout = LayoutOf(schedule, d, chunks);
    if (!layout.ok()) return layout.status().Prefixed("device " + std::to_string(d));
    std::vector<ChunkRange> ranges;
    for (const ChunkSpec& spec : layout->chunks) {
      Result<std::vector<LayerState>> layers = MakeLayers(model, spec.range);
      if (!layers.ok()) return layers.status();
      bytes += 4 * static_cast<uint64_t>(ArenaSizeOf(*layers, spec, layout->split).total);
      ranges.push_back(spec.range);
    }
    bytes += 4 * static_cast<uint64_t>(ExchangeCount(*ties, ranges));
  }
  return bytes;
}

Status CheckCpuRunFits(const Model& model, const std::vector<ChunkRange>& chunks,
                       const Schedule& schedule, uint64_t available_bytes) {
  Result<uint64_t> needed = CpuRunBytes(model, chunks, schedule);
  if (!needed.ok()) return needed.status();
  if (*needed <= available_bytes) return Status::Ok();
  return Status::Error("the run needs " + std::to_string(*needed) + " bytes (" +
                       FormatBytes(*needed) + ") of memory for its devices on the cpu backend, "
                       "but only " + std::to_string(available_bytes) + " bytes (" +
                       FormatBytes(available_bytes) + ") are available; nothing was allocated");
}

uint64_t AvailableMemoryBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    uint64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  const long pages = ::sysconf(_SC_AVPHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
  }
  return UINT64_MAX;  // unknown: no check
}

Result<RunResult> RunOnCpu(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options) {
  PP_RETURN_IF_ERROR(CheckCpuRunFits(model, chunks, schedule, AvailableMemoryBytes()));
  HostTransport transport;
  HostTransport ties;  // the tied weights' gradients, between the two devices of each tie
  CpuDeviceHooks hooks;
  hooks.exchange_tied = [&ties, &options](const TiedWeight& t, bool embedding_side,
                                          const float* mine, float* theirs) {
    return SwapThroughMailbox(ties, t, embedding_side, mine, theirs, static_cast<size_t>(t.count()),
                              options.timeout_s);
  };
  std::vector<std::unique_ptr<PipelineDevice>> devices;
  for (int d = 0; d < schedule.num_devices; ++d) {
    devices.push_back(MakeCpuDevice(model, options, &transport, hooks));
  }
  // One thread per device, each doing its own matrix products single-threaded.
  const int blas_threads = cpu::SetBlasThreads(1);
  Result<RunResult> result = RunPipeline(
      schedule, model.input.micro_batch_size, chunks, std::move(devices),
      [&] {
        transport.Abort();
        ties.Abort();
      },
      options);
  cpu::SetBlasThreads(blas_threads);
  if (result.ok()) result->device = "CPU (fp32, one thread per stage)";
  return result;
}

}  // namespace pp
