// CudaDevice (cuda_stage.h): the cuda backend's ops, enqueued without host waits except the
// transport's handoff, timed by events read back once per step in EndStep.
#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <type_traits>
#include <utility>

#include "executor/cuda_optimizer.h"
#include "executor/cuda_stage.h"
#include "layers/cuda_check.h"
#include "layers/layer.h"
#include "core/units.h"

namespace pp {
namespace {

// Element counts in the state blocks are padded so that every layer's slice of a block stays
// 256-byte aligned for both element sizes (128 bf16 or 64 fp32 values per 256 bytes).
constexpr int64_t kStatePad = 128;
int64_t Padded(int64_t n) { return (n + kStatePad - 1) / kStatePad * kStatePad; }

template <typename T>
T ToT(float v) {
  if constexpr (sizeof(T) == 4) {
    return v;
  } else {
    return __float2bfloat16(v);
  }
}
template <typename T>
float ToF(T v) {
  if constexpr (sizeof(T) == 4) {
    return v;
  } else {
    return __bfloat162float(v);
  }
}

// Waits for `event` without blocking forever: polls until it fires, fails, or `timeout_s`.
Status WaitWithDeadline(cudaEvent_t event, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_s));
  while (true) {
    const cudaError_t e = cudaEventQuery(event);
    if (e == cudaSuccess) return Status::Ok();
    if (e != cudaErrorNotReady) {
      return cuda::CudaError(e, __FILE__, __LINE__, "a kernel or copy of this step")
          .Prefixed("the GPU failed (rerun with CUDA_LAUNCH_BLOCKING=1 to name the op)");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Error("the GPU did not finish the step within " +
                           FormatSeconds(timeout_s));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace

template <typename T>
CudaDevice<T>::CudaDevice(const Model& model, const RunOptions& options,
                          DeviceTransport* transport, const CudaPlace& place,
                          CudaDeviceHooks hooks)
    : model_(model), options_(options), transport_(transport), place_(place),
      hooks_(std::move(hooks)),
      data_(model.input, model.layers.front().op == LayerKind::kEmbedding ? model.layers.front().vocab : 1,
            model.layers.back().in_width, options.seed) {}

template <typename T>
CudaDevice<T>::~CudaDevice() {
  // Teardown errors are ignored: nobody is left to tell.
  if (compute_ != nullptr) (void)cudaStreamSynchronize(compute_);
  if (copy_ != nullptr) (void)cudaStreamSynchronize(copy_);
  ctx_.reset();
  for (cudaEvent_t e : start_) (void)cudaEventDestroy(e);
  for (cudaEvent_t e : end_) (void)cudaEventDestroy(e);
  if (step_start_ != nullptr) (void)cudaEventDestroy(step_start_);
  if (step_end_ != nullptr) (void)cudaEventDestroy(step_end_);
  arena_.reset();
  if (host_ids_ != nullptr) (void)cudaFreeHost(host_ids_);
  if (host_values_ != nullptr) (void)cudaFreeHost(host_values_);
  if (host_loss_ != nullptr) (void)cudaFreeHost(host_loss_);
  if (compute_ != nullptr) (void)cudaStreamDestroy(compute_);
  if (copy_ != nullptr) (void)cudaStreamDestroy(copy_);
}

template <typename T>
Status CudaDevice<T>::MakeCurrent() const {
  if (place_.shares != nullptr) return place_.shares->MakeCurrent(place_.share);
  PP_CUDA_CHECK(cudaSetDevice(place_.gpu));
  return Status::Ok();
}

template <typename T>
Status CudaDevice<T>::Setup(const DeviceChunks& layout) {
  for (const ChunkSpec& spec : layout.chunks) {
    if (spec.range.recompute) {
      return Status::Error("chunk " + std::to_string(spec.index) + " recomputes activations, "
                           "which the cuda backend does not do yet (--backend cpu runs it)");
    }
  }
  // Setup runs on the caller's thread: the GPU selected, the share pushed and popped again.
  if (place_.shares == nullptr) PP_CUDA_CHECK(cudaSetDevice(place_.gpu));
  ScopedShare scope(place_.shares, place_.share);
  if (!scope.status().ok()) return scope.status();
  return SetupCurrent(layout);
}

template <typename T>
Status CudaDevice<T>::SetupCurrent(const DeviceChunks& layout) {
  split_ = layout.split;
  micro_batches_ = layout.micro_batches;
  rows_ = model_.input.rows();
  for (const ChunkSpec& spec : layout.chunks) {
    Chunk c;
    c.index = spec.index;
    c.first = spec.first;
    c.last = spec.last;
    c.num_slots = std::max(spec.slots, 1);
    for (int i = spec.range.first_layer; i <= spec.range.last_layer; ++i) {
      auto made = MakeCudaLayer<T>(model_.layers[i], model_.input);
      if (!made.ok()) return made.status();
      LayerState ls;
      ls.index = i;
      ls.layer = std::move(*made);
      c.layers.push_back(std::move(ls));
    }
    if (c.layers.empty()) return Status::Error("chunk " + std::to_string(c.index) + " has no layers");
    needs_tokens_ |= model_.input.tokens() && (c.first || c.last);
    needs_features_ |= !model_.input.tokens() && c.first;
    needs_targets_ |= !model_.input.tokens() && c.last;
    chunks_.push_back(std::move(c));
  }
  Result<std::vector<TiedWeight>> ties = TiedWeights(model_);
  if (!ties.ok()) return ties.status();
  ties_ = std::move(*ties);
  std::vector<ChunkRange> ranges;
  for (const ChunkSpec& spec : layout.chunks) ranges.push_back(spec.range);
  tied_count_ = ExchangeCount(ties_, ranges);
  feature_width_ = std::max<int64_t>(model_.input.features, 1);
  target_width_ = std::max<int64_t>(model_.layers.back().in_width, 1);
  loss_stride_ = static_cast<int64_t>(DeviceArena::kAlign / sizeof(T));  // 256-byte aligned

  // Streams in the place's share (or plain), the layers' context on the compute stream.
  if (place_.shares != nullptr) {
    Result<cudaStream_t> s = place_.shares->CreateStream(place_.share);
    if (!s.ok()) return s.status();
    compute_ = *s;
    s = place_.shares->CreateStream(place_.share);
    if (!s.ok()) return s.status();
    copy_ = *s;
  } else {
    PP_CUDA_CHECK(cudaSetDevice(place_.gpu));
    PP_CUDA_CHECK(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
    PP_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
  }
  auto ctx = CudaContext::CreateOnStream(place_.gpu, compute_);
  if (!ctx.ok()) return ctx.status();
  ctx_ = std::move(*ctx);
  for (int i = 0; i < layout.ops_per_step; ++i) {
    cudaEvent_t a = nullptr, b = nullptr;
    PP_CUDA_CHECK(cudaEventCreate(&a));
    start_.push_back(a);
    PP_CUDA_CHECK(cudaEventCreate(&b));
    end_.push_back(b);
  }
  PP_CUDA_CHECK(cudaEventCreate(&step_start_));
  PP_CUDA_CHECK(cudaEventCreateWithFlags(&step_end_, cudaEventDisableTiming));

  size_t bytes = 0;
  PP_RETURN_IF_ERROR(Carve(split_, &bytes));
  auto arena = DeviceArena::Create(bytes);
  if (!arena.ok()) {
    if (!cuda::IsOutOfMemory(arena.status())) return arena.status();
    size_t free_bytes = 0, total = 0;
    (void)cudaMemGetInfo(&free_bytes, &total);
    (void)cudaGetLastError();
    return Status::Error("out of memory: its chunks need " + std::to_string(bytes) +
                         " bytes; " + std::to_string(free_bytes) + " of " +
                         std::to_string(total) + " are free on GPU " + std::to_string(place_.gpu));
  }
  arena_ = std::move(*arena);
  PP_RETURN_IF_ERROR(Carve(split_, &bytes));

  const size_t m = static_cast<size_t>(micro_batches_);
  // Pinned staging for the batch data this device reads: token ids and labels, or features and
  // targets. A token model's last layer is its loss, whose in_width (the vocabulary) would
  // make an unused feature buffer of m x rows x vocab (13 GB pinned per device for GPT-2
  // medium at m 16 of 8).
  if (needs_tokens_) PP_CUDA_CHECK(cudaMallocHost(&host_ids_, sizeof(int32_t) * 2 * m * rows_));
  if (needs_features_ || needs_targets_) {
    PP_CUDA_CHECK(
        cudaMallocHost(&host_values_, sizeof(T) * m * rows_ * (feature_width_ + target_width_)));
  }
  PP_CUDA_CHECK(cudaMallocHost(&host_loss_, sizeof(T) * m * loss_stride_));

  // Initial values: the cpu backend's (InitialValues), master copy in fp32.
  PP_CUDA_CHECK(cudaMemsetAsync(adam_m_, 0, sizeof(float) * state_count_, compute_));
  PP_CUDA_CHECK(cudaMemsetAsync(adam_v_, 0, sizeof(float) * state_count_, compute_));
  PP_CUDA_CHECK(cudaMemsetAsync(params_, 0, sizeof(T) * state_count_, compute_));
  if (master_ != nullptr) {
    PP_CUDA_CHECK(cudaMemsetAsync(master_, 0, sizeof(float) * state_count_, compute_));
  }
  for (Chunk& c : chunks_) {
    for (LayerState& ls : c.layers) {
      const int64_t n = ls.layer->param_count();
      if (n == 0) continue;
      std::vector<float> values(static_cast<size_t>(n));
      PP_RETURN_IF_ERROR(InitialValues(model_, ls.index, options_.seed, values.data()));
      PP_RETURN_IF_ERROR(ls.layer->Init(*ctx_, params_ + ls.offset, values.data()));
      if (master_ != nullptr) {
        PP_CUDA_CHECK(cudaMemcpy(master_ + ls.offset, values.data(), sizeof(float) * n,
                                 cudaMemcpyHostToDevice));
      }
    }
  }
  const T grad = ToT<T>(1.0f / static_cast<float>(micro_batches_));
  PP_CUDA_CHECK(cudaMemcpyAsync(loss_grad_, &grad, sizeof(T), cudaMemcpyHostToDevice, compute_));
  PP_CUDA_CHECK(cudaStreamSynchronize(compute_));
  return PrepareData(0);
}

template <typename T>
Status CudaDevice<T>::Carve(bool split, size_t* bytes) {
  const bool sizing = arena_ == nullptr;
  size_t total = 0;
  auto take = [&](auto* type_tag, int64_t count) {
    using U = std::remove_pointer_t<decltype(type_tag)>;
    total += DeviceArena::Bytes<U>(count);
    return sizing ? static_cast<U*>(nullptr) : arena_->Take<U>(count);
  };
  // State blocks.
  int64_t offset = 0;
  for (Chunk& c : chunks_) {
    for (LayerState& ls : c.layers) {
      ls.offset = offset;
      offset += Padded(ls.layer->param_count());
    }
  }
  state_count_ = offset;
  params_ = take(static_cast<T*>(nullptr), state_count_);
  grads_ = take(static_cast<T*>(nullptr), state_count_);
  master_ = sizeof(T) == 4 ? nullptr : take(static_cast<float*>(nullptr), state_count_);
  adam_m_ = take(static_cast<float*>(nullptr), state_count_);
  adam_v_ = take(static_cast<float*>(nullptr), state_count_);
  tied_in_ = tied_count_ > 0 ? take(static_cast<T*>(nullptr), tied_count_) : nullptr;
  // Slots and shared buffers.
  work_count_ = pending_count_ = act_count_ = 0;
  for (Chunk& c : chunks_) {
    for (LayerState& ls : c.layers) {
      const CudaLayer<T>& l = *ls.layer;
      ls.saved.clear();
      ls.pending.clear();
      ls.dy.clear();
      for (int k = 0; k < c.num_slots; ++k) {
        ls.saved.push_back(take(static_cast<T*>(nullptr), l.saved_count()));
        if (split) {
          ls.pending.push_back(take(static_cast<T*>(nullptr), l.pending_count()));
          ls.dy.push_back(take(static_cast<T*>(nullptr), l.output_count()));
        }
      }
      work_count_ = std::max(work_count_, l.workspace_count());
      pending_count_ = std::max(pending_count_, l.pending_count());
      act_count_ = std::max({act_count_, l.output_count(),
                             l.rows() * std::max<int64_t>(l.in_width(), 1)});
    }
  }
  const int64_t m = micro_batches_;
  work_ = take(static_cast<T*>(nullptr), work_count_ + 1);
  pending_ = take(static_cast<T*>(nullptr), split ? 0 : pending_count_);
  act_a_ = take(static_cast<T*>(nullptr), act_count_);
  act_b_ = take(static_cast<T*>(nullptr), act_count_);
  loss_ = take(static_cast<T*>(nullptr), m * loss_stride_);
  loss_grad_ = take(static_cast<T*>(nullptr), 1);
  tokens_ = take(static_cast<int32_t*>(nullptr), needs_tokens_ ? m * rows_ : 0);
  labels_ = take(static_cast<int32_t*>(nullptr), needs_tokens_ ? m * rows_ : 0);
  features_ = take(static_cast<T*>(nullptr), needs_features_ ? m * rows_ * feature_width_ : 0);
  targets_ = take(static_cast<T*>(nullptr), needs_targets_ ? m * rows_ * target_width_ : 0);
  *bytes = total;
  if (!sizing && loss_grad_ == nullptr) return Status::Error("the arena was sized too small (a bug)");
  return Status::Ok();
}

template <typename T>
uint64_t CudaDevice<T>::device_bytes() const {
  return (arena_ ? arena_->capacity() : 0) + (ctx_ ? ctx_->gemm_workspace_bytes() : 0);
}

template <typename T>
uint64_t CudaDevice<T>::allocated_bytes() const {
  return device_bytes() + transport_->allocated_bytes(place_.device);
}

template <typename T>
Status CudaDevice<T>::PrepareData(int step) {
  const int64_t m = micro_batches_;
  for (int mb = 0; mb < m; ++mb) {
    if (needs_tokens_) {
      data_.Tokens(step, hooks_.micro_batch_offset + mb, host_ids_ + mb * rows_,
                   host_ids_ + (m + mb) * rows_);
    } else if (needs_features_ || needs_targets_) {
      std::vector<float> x(rows_ * feature_width_), y(rows_ * target_width_);
      data_.Features(step, hooks_.micro_batch_offset + mb, x.data(), y.data());
      T* hx = host_values_ + mb * rows_ * feature_width_;
      T* hy = host_values_ + m * rows_ * feature_width_ + mb * rows_ * target_width_;
      for (size_t i = 0; i < x.size(); ++i) hx[i] = ToT<T>(x[i]);
      for (size_t i = 0; i < y.size(); ++i) hy[i] = ToT<T>(y[i]);
    }
  }
  prepared_step_ = step;
  return Status::Ok();
}

template <typename T>
CudaMicroBatch CudaDevice<T>::BatchOf(int mb) const {
  CudaMicroBatch b;
  if (needs_tokens_) {
    b.tokens = tokens_ + mb * rows_;
    b.labels = labels_ + mb * rows_;
  }
  if (needs_targets_) b.targets = targets_ + mb * rows_ * target_width_;
  return b;
}

template <typename T>
Status CudaDevice<T>::BeginStep(int step) {
  PP_RETURN_IF_ERROR(MakeCurrent());
  step_ = step;
  if (prepared_step_ != step) PP_RETURN_IF_ERROR(PrepareData(step));
  const size_t m = static_cast<size_t>(micro_batches_);
  if (needs_tokens_) {
    PP_CUDA_CHECK(cudaMemcpyAsync(tokens_, host_ids_, sizeof(int32_t) * m * rows_,
                                  cudaMemcpyHostToDevice, compute_));
    PP_CUDA_CHECK(cudaMemcpyAsync(labels_, host_ids_ + m * rows_, sizeof(int32_t) * m * rows_,
                                  cudaMemcpyHostToDevice, compute_));
  }
  if (needs_features_) {
    PP_CUDA_CHECK(cudaMemcpyAsync(features_, host_values_, sizeof(T) * m * rows_ * feature_width_,
                                  cudaMemcpyHostToDevice, compute_));
  }
  if (needs_targets_) {
    PP_CUDA_CHECK(cudaMemcpyAsync(targets_, host_values_ + m * rows_ * feature_width_,
                                  sizeof(T) * m * rows_ * target_width_, cudaMemcpyHostToDevice,
                                  compute_));
  }
  PP_CUDA_CHECK(cudaMemsetAsync(grads_, 0, sizeof(T) * state_count_, compute_));
  PP_CUDA_CHECK(cudaEventRecord(step_start_, compute_));
  return Status::Ok();
}

template <typename T>
typename CudaDevice<T>::LayerState* CudaDevice<T>::FindLayer(int index) {
  for (Chunk& c : chunks_) {
    for (LayerState& ls : c.layers) {
      if (ls.index == index) return &ls;
    }
  }
  return nullptr;
}

template <typename T>
Status CudaDevice<T>::SumTiedGradients() {
  for (const TiedWeight& t : ties_) {
    const LayerState* e = FindLayer(t.embedding);
    const LayerState* w = FindLayer(t.linear);
    if (e != nullptr && w != nullptr) {
      PP_RETURN_IF_ERROR(TransposeInto<T>(compute_, grads_ + w->offset, t.hidden, t.vocab,
                                          grads_ + e->offset, /*accumulate=*/true));
      PP_RETURN_IF_ERROR(TransposeInto<T>(compute_, grads_ + e->offset, t.vocab, t.hidden,
                                          grads_ + w->offset, /*accumulate=*/false));
      continue;
    }
    const LayerState* mine = e != nullptr ? e : w;
    if (mine == nullptr) continue;
    if (!hooks_.exchange_tied) {
      return Status::Error("layer " + model_.layers[mine->index].name +
                           " shares its weight with a layer on another device, and this run "
                           "has no way to exchange their gradients (a bug)");
    }
    PP_RETURN_IF_ERROR(hooks_.exchange_tied(t, e != nullptr, grads_ + mine->offset, tied_in_,
                                            sizeof(T), compute_));
    // The other side's layout is the transpose of this one's.
    const int64_t rows = e != nullptr ? t.hidden : t.vocab;
    const int64_t cols = e != nullptr ? t.vocab : t.hidden;
    PP_RETURN_IF_ERROR(
        TransposeInto<T>(compute_, tied_in_, rows, cols, grads_ + mine->offset, true));
  }
  return Status::Ok();
}

template <typename T>
typename CudaDevice<T>::Chunk* CudaDevice<T>::Find(int chunk) {
  for (Chunk& c : chunks_) {
    if (c.index == chunk) return &c;
  }
  return nullptr;
}

template <typename T>
const typename CudaDevice<T>::Chunk* CudaDevice<T>::Find(int chunk) const {
  for (const Chunk& c : chunks_) {
    if (c.index == chunk) return &c;
  }
  return nullptr;
}

template <typename T>
bool CudaDevice<T>::PassesGradient(int chunk) const {
  const Chunk* c = Find(chunk);
  return c != nullptr && c->layers.front().layer->has_input_gradient();
}

template <typename T>
Status CudaDevice<T>::Receive(const OpCall& call) {
  Result<const void*> in = transport_->Receive(*call.input, compute_, options_.timeout_s);
  if (!in.ok()) return in.status();
  received_ = static_cast<const T*>(*in);
  return Status::Ok();
}

template <typename T>
Status CudaDevice<T>::MarkStart(const OpCall& call) {
  if (call.index < 0 || call.index >= static_cast<int>(start_.size())) {
    return Status::Error("more ops than the list holds");
  }
  PP_CUDA_CHECK(cudaEventRecord(start_[call.index], compute_));
  return Status::Ok();
}

template <typename T>
Status CudaDevice<T>::MarkEnd(const OpCall& call) {
  if (call.index < 0 || call.index >= static_cast<int>(end_.size())) {
    return Status::Error("more ops than the list holds");
  }
  PP_CUDA_CHECK(cudaEventRecord(end_[call.index], compute_));
  return Status::Ok();
}

template <typename T>
Status CudaDevice<T>::Forward(const OpCall& call) {
  Chunk* found = Find(call.chunk);
  if (found == nullptr) return Status::Error("chunk is not on this device");
  Chunk& c = *found;
  const int mb = call.micro_batch, slot = call.slot;
  const T* x = act_b_;  // the embedding reads tokens, not x
  if (call.input) {
    x = received_;
  } else if (needs_features_) {
    x = features_ + mb * rows_ * feature_width_;
  }
  const CudaMicroBatch batch = BatchOf(mb);
  T* out = act_a_;
  for (size_t j = 0; j < c.layers.size(); ++j) {
    LayerState& ls = c.layers[j];
    T* y = out;
    if (j + 1 == c.layers.size()) {
      y = c.last ? loss_ + mb * loss_stride_
                 : (call.output ? static_cast<T*>(transport_->SendBuffer(*call.output)) : nullptr);
      if (y == nullptr) return Status::Error("no channel to the next chunk (a bug)");
    }
    PP_RETURN_IF_ERROR(
        ls.layer->Forward(*ctx_, params_ + ls.offset, x, batch, y, ls.saved[slot], work_));
    x = y;
    out = out == act_a_ ? act_b_ : act_a_;
  }
  return Status::Ok();
}

template <typename T>
Status CudaDevice<T>::Recompute(const OpCall&) {
  return Status::Error("recomputation is not available on the cuda backend yet");
}

template <typename T>
Status CudaDevice<T>::Backward(const OpCall& call) {
  return RunBackward(call, true, true);
}

template <typename T>
Status CudaDevice<T>::BackwardInput(const OpCall& call) {
  return RunBackward(call, true, false);
}

template <typename T>
Status CudaDevice<T>::BackwardWeight(const OpCall& call) {
  return RunBackward(call, false, true);
}

template <typename T>
Status CudaDevice<T>::RunBackward(const OpCall& call, bool input, bool weight) {
  Chunk* found = Find(call.chunk);
  if (found == nullptr) return Status::Error("chunk is not on this device");
  Chunk& c = *found;
  const int mb = call.micro_batch, slot = call.slot;
  const CudaMicroBatch batch = BatchOf(mb);
  if (input) {
    const T* dy = call.input ? received_ : loss_grad_;
    const bool sends = call.output.has_value();
    T* out = act_a_;
    for (int j = static_cast<int>(c.layers.size()) - 1; j >= 0; --j) {
      LayerState& ls = c.layers[j];
      const CudaLayer<T>& l = *ls.layer;
      T* dx = l.has_input_gradient() ? out : nullptr;
      if (j == 0 && sends) {
        dx = static_cast<T*>(transport_->SendBuffer(*call.output));
        if (dx == nullptr) return Status::Error("no channel to the chunk before (a bug)");
      }
      T* pending = split_ ? ls.pending[slot] : pending_;
      const T* params = params_ + ls.offset;
      PP_RETURN_IF_ERROR(l.BackwardInput(*ctx_, params, dy, ls.saved[slot], batch, dx, pending, work_));
      if (weight) {
        PP_RETURN_IF_ERROR(l.BackwardWeight(*ctx_, params, dy, ls.saved[slot], pending, batch,
                                            grads_ + ls.offset, work_));
      } else {
        PP_CUDA_CHECK(cudaMemcpyAsync(ls.dy[slot], dy, sizeof(T) * l.output_count(),
                                      cudaMemcpyDeviceToDevice, compute_));
      }
      if (dx == nullptr) break;
      dy = dx;
      out = out == act_a_ ? act_b_ : act_a_;
    }
  } else {
    for (LayerState& ls : c.layers) {
      PP_RETURN_IF_ERROR(ls.layer->BackwardWeight(*ctx_, params_ + ls.offset, ls.dy[slot],
                                                  ls.saved[slot], ls.pending[slot], batch,
                                                  grads_ + ls.offset, work_));
    }
  }
  return Status::Ok();
}

template <typename T>
Status CudaDevice<T>::Send(const OpCall& call) {
  // The op's end event (MarkEnd) is the message's ready signal.
  return transport_->Send(*call.output, end_[call.index], copy_);
}

template <typename T>
Status CudaDevice<T>::EndStep(int ops, std::vector<OpSpan>* spans, double* loss_sum) {
  if (hooks_.reduce_gradients) {
    PP_RETURN_IF_ERROR(hooks_.reduce_gradients(grads_, state_count_, sizeof(T), compute_));
  }
  PP_RETURN_IF_ERROR(SumTiedGradients());
  if (options_.optimizer) {
    AdamWConfig config;
    config.learning_rate = static_cast<float>(options_.learning_rate);
    config.step = ++adam_steps_;
    PP_RETURN_IF_ERROR(
        AdamWUpdate<T>(compute_, config, state_count_, params_, grads_, master_, adam_m_, adam_v_));
  }
  const bool has_loss = chunks_.back().last;
  if (has_loss) {
    PP_CUDA_CHECK(cudaMemcpyAsync(host_loss_, loss_, sizeof(T) * micro_batches_ * loss_stride_,
                                  cudaMemcpyDeviceToHost, compute_));
  }
  PP_CUDA_CHECK(cudaEventRecord(step_end_, compute_));
  // The next step's data is made on the host while the GPU finishes this one.
  PP_RETURN_IF_ERROR(PrepareData(step_ + 1));
  PP_RETURN_IF_ERROR(WaitWithDeadline(step_end_, options_.timeout_s));
  PP_CUDA_CHECK(cudaStreamSynchronize(copy_));
  if (ops < 0 || ops > static_cast<int>(start_.size())) return Status::Error("more ops than the list holds");
  spans->clear();
  for (int index = 0; index < ops; ++index) {
    float a = 0, b = 0;
    PP_CUDA_CHECK(cudaEventElapsedTime(&a, step_start_, start_[index]));
    PP_CUDA_CHECK(cudaEventElapsedTime(&b, step_start_, end_[index]));
    spans->push_back({a, b});
  }
  *loss_sum = 0;
  if (has_loss) {
    for (int mb = 0; mb < micro_batches_; ++mb) *loss_sum += ToF<T>(host_loss_[mb * loss_stride_]);
  }
  return Status::Ok();
}

template <typename T>
void CudaDevice<T>::CopyGradients(std::vector<std::vector<float>>* gradients,
                                       std::vector<std::vector<float>>* parameters) const {
  gradients->resize(std::max(gradients->size(), model_.layers.size()));
  parameters->resize(std::max(parameters->size(), model_.layers.size()));
  if (MakeCurrent().ok() && cudaStreamSynchronize(compute_) == cudaSuccess) {
    std::vector<T> staged;
    auto fetch = [&](const T* src, int64_t n, std::vector<float>* out) {
      staged.resize(static_cast<size_t>(n));
      out->clear();
      if (cudaMemcpy(staged.data(), src, sizeof(T) * n, cudaMemcpyDeviceToHost) != cudaSuccess) return;
      for (const T& v : staged) out->push_back(ToF<T>(v));
    };
    for (const Chunk& c : chunks_) {
      for (const LayerState& ls : c.layers) {
        const int64_t n = ls.layer->param_count();
        fetch(grads_ + ls.offset, n, &(*gradients)[ls.index]);
        if (master_ != nullptr) {
          (*parameters)[ls.index].resize(static_cast<size_t>(n));
          (void)cudaMemcpy((*parameters)[ls.index].data(), master_ + ls.offset, sizeof(float) * n,
                           cudaMemcpyDeviceToHost);
        } else {
          fetch(params_ + ls.offset, n, &(*parameters)[ls.index]);
        }
      }
    }
  }
}

template class CudaDevice<float>;
template class CudaDevice<__nv_bfloat16>;

}  // namespace pp
