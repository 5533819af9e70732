// The cuda backend's PipelineDevice (executor/cuda_runner.h is the public face). One per
// runtime device; sized and allocated by Setup on the thread that calls RunPipeline (which
// makes the GPU or its green-context share current for the call), then driven by that
// device's RunPipeline thread only (BeginStep makes the device or its share current). The
// chunk runner decides slots, messages and when the clock marks go; this class enqueues.
//
// Memory, all from one DeviceArena per device, carved once:
//   state:   params (T), grads (T), master weights (fp32, bf16 only), AdamW m and v (fp32),
//            every layer at the same element offset in each block, so that one memset zeroes
//            the gradients and one launch runs AdamW
//   slots:   per activation slot and layer, what Forward keeps (saved); with a split backward
//            (I then W) also the layer's pending values and output gradient
//   shared:  the largest workspace and pending (unsplit), two activation buffers, the batch
//            data of every micro-batch (tokens / labels / features / targets), the losses
// Messages between chunks live in the CudaTransport's buffers (per micro-batch).
// Streams: `compute` runs every op, `copy` the peer copies this device sends. Events: a
// start and an end per op of the device's list (the clock marks), a step start; an op's end
// event is also the ready signal of the message it sends. Receive enqueues the stream's wait
// for the message before MarkStart records the start, so an op's time excludes the wait.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/model.h"
#include "executor/cuda_transport.h"
#include "executor/pipeline_device.h"
#include "executor/runtime.h"
#include "executor/synthetic_data.h"
#include "executor/tied_weights.h"
#include "layers/cuda_arena.h"
#include "layers/cuda_layer.h"
#include "layers/green_context.h"

namespace pp {

// Where a runtime device runs: a GPU, and a green-context share of it or none (-1).
struct CudaPlace {
  int device = 0;  // runtime device index (pipeline stage)
  int gpu = 0;
  const GreenContexts* shares = nullptr;
  int share = -1;
};

// What a device of a data-parallel replica does differently (executor/rank_run.h): its
// micro-batch m of a step reads the synthetic data of micro-batch micro_batch_offset + m, and
// before the optimizer the gradients (`count` elements of `element_bytes` each, contiguous on
// the GPU) go through `reduce_gradients` on the compute stream (which averages them over the
// replicas). The defaults: one pipeline, nothing reduced.
//
// After that, a device that holds one side of a tie (executor/tied_weights.h) whose other
// side is on another device calls `exchange_tied`: it sends tie.count() elements of
// `element_bytes` from `mine` (on the GPU, this layer's layout) to the device of the other
// side, of the same replica, and receives that side's into `theirs` (on the GPU), so that
// work enqueued on `stream` after it returns sees them. A run without it fails such a
// device's step.
struct CudaDeviceHooks {
  int micro_batch_offset = 0;
  std::function<Status(void* gradients, int64_t count, size_t element_bytes,
                       cudaStream_t stream)>
      reduce_gradients;
  std::function<Status(const TiedWeight& tie, bool embedding_side, const void* mine, void* theirs,
                       size_t element_bytes, cudaStream_t stream)>
      exchange_tied;
};

template <typename T>
class CudaDevice final : public PipelineDevice {
 public:
  CudaDevice(const Model& model, const RunOptions& options, DeviceTransport* transport,
             const CudaPlace& place, CudaDeviceHooks hooks = {});
  ~CudaDevice() override;
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  // Builds the layers of the layout's chunks, sizes and allocates everything, uploads the
  // initial parameters. Makes the place current for the call (and restores the share).
  // Recomputing chunks are refused: recomputation is not available on this backend yet.
  Status Setup(const DeviceChunks& layout) override;
  bool PassesGradient(int chunk) const override;
  uint64_t device_bytes() const;  // arena + cuBLAS workspace

  Status BeginStep(int step) override;
  Status Receive(const OpCall& call) override;
  Status MarkStart(const OpCall& call) override;
  Status MarkEnd(const OpCall& call) override;
  Status Forward(const OpCall& call) override;
  Status Recompute(const OpCall& call) override;
  Status Backward(const OpCall& call) override;
  Status BackwardInput(const OpCall& call) override;
  Status BackwardWeight(const OpCall& call) override;
  Status Send(const OpCall& call) override;
  Status EndStep(int ops, std::vector<OpSpan>* spans, double* loss_sum) override;
  uint64_t allocated_bytes() const override;
  void CopyGradients(std::vector<std::vector<float>>* gradients,
                     std::vector<std::vector<float>>* parameters) const override;

 private:
  struct LayerState {
    int index = 0;  // in the model
    std::unique_ptr<CudaLayer<T>> layer;
    int64_t offset = 0;  // element offset in the state blocks
    std::vector<T*> saved, pending, dy;  // per slot (pending, dy: split backward only)
  };
  struct Chunk {
    int index = 0;
    bool first = false, last = false;
    std::vector<LayerState> layers;
    int num_slots = 1;
  };

  Status MakeCurrent() const;
  Status SetupCurrent(const DeviceChunks& layout);  // Setup with the place current
  Status Carve(bool split, size_t* bytes);  // sizes (arena_ null) or takes
  // B (input and weight), I (input only) or W (weight only) of `call`.
  Status RunBackward(const OpCall& call, bool input, bool weight);
  Status PrepareData(int step);  // host side: pinned buffers for `step`
  CudaMicroBatch BatchOf(int mb) const;
  Chunk* Find(int chunk);
  const Chunk* Find(int chunk) const;
  LayerState* FindLayer(int index);
  // Each tie's shared weight gets the sum of both sides' gradients, on the compute stream.
  Status SumTiedGradients();

  const Model& model_;
  RunOptions options_;
  DeviceTransport* transport_;
  CudaPlace place_;
  CudaDeviceHooks hooks_;
  int micro_batches_ = 0;
  SyntheticData data_;
  std::vector<Chunk> chunks_;
  std::vector<TiedWeight> ties_;
  int64_t tied_count_ = 0;  // the largest shared weight of a tie split over two devices
  bool split_ = false;

  cudaStream_t compute_ = nullptr, copy_ = nullptr;
  std::unique_ptr<CudaContext> ctx_;
  std::unique_ptr<DeviceArena> arena_;
  std::vector<cudaEvent_t> start_, end_;  // per op index of the device's list
  const T* received_ = nullptr;           // the input of the op being run (Receive)
  cudaEvent_t step_start_ = nullptr;
  cudaEvent_t step_end_ = nullptr;  // after the optimizer and the loss copy

  // Carved from the arena.
  int64_t state_count_ = 0;  // elements per state block
  T *params_ = nullptr, *grads_ = nullptr;
  float *master_ = nullptr, *adam_m_ = nullptr, *adam_v_ = nullptr;
  T *work_ = nullptr, *pending_ = nullptr, *act_a_ = nullptr, *act_b_ = nullptr;
  T *loss_ = nullptr, *loss_grad_ = nullptr;
  T* tied_in_ = nullptr;  // the other side's gradient of a tied weight (tied_count_)
  int32_t *tokens_ = nullptr, *labels_ = nullptr;
  T *features_ = nullptr, *targets_ = nullptr;
  int64_t work_count_ = 0, pending_count_ = 0, act_count_ = 0;
  int64_t rows_ = 0, feature_width_ = 0, target_width_ = 0, loss_stride_ = 0;
  bool needs_tokens_ = false, needs_features_ = false, needs_targets_ = false;

  // Pinned host mirrors of the batch data and the losses.
  int32_t* host_ids_ = nullptr;  // tokens then labels, all micro-batches
  T* host_values_ = nullptr;     // features then targets
  T* host_loss_ = nullptr;
  int prepared_step_ = -1;

  int step_ = 0;
  int adam_steps_ = 0;
};

}  // namespace pp
