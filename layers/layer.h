// CPU reference layers: forward, input-gradient and weight-gradient of every op in DESIGN.md,
// computed in type T (float for the cpu backend and as the CUDA reference, double for the
// finite-difference checks). The CUDA versions (layers/*.cu) follow the same buffer layouts.
//
// Buffers are caller-owned, contiguous, row-major, sized by the counts the layer reports:
//   x        rows x in_width (token models: unused by the embedding, which reads batch.tokens)
//   y        rows x out_width (a loss writes one value: the mean loss over rows)
//   params   param_count() values in the layout the layer's header documents
//   saved    saved_count() values: what Forward keeps for the backward of this micro-batch
//   dx, dy   like x and y; dparams like params. BackwardWeight *accumulates* into dparams
//            (gradient accumulation over micro-batches); BackwardInput overwrites dx.
//   pending  pending_count() values that BackwardInput writes for BackwardWeight (the output
//            gradients of the layer's inner weighted ops); zero-bubble schedules hold it
//            between the two. BackwardWeight also reads dy, which must still hold its values.
//   work     workspace_count() values of scratch, contents undefined between calls
// A loss's dy is the gradient of the final objective with respect to its mean loss (1 for
// plain training). Nothing here allocates inside Forward or Backward*.
#pragma once

#include <cstdint>
#include <memory>

#include "core/model.h"
#include "core/status.h"
#include "layers/layer_shape.h"

namespace pp {

// Per-micro-batch inputs that are not activations.
struct MicroBatch {
  const int32_t* tokens = nullptr;  // rows token ids (token models)
  const int32_t* labels = nullptr;  // rows class ids (cross_entropy)
  const void* targets = nullptr;    // rows x width values of type T (mse)
};

// Counts and shapes: layers/layer_shape.h.
template <typename T>
class CpuLayer : public LayerShape {
 public:
  // Fills params with the layer's initial values (deterministic for a seed): weights
  // uniform in +-1/sqrt(fan_in), norm scales 1, biases and shifts 0.
  virtual void Init(T* params, uint64_t seed) const = 0;
  virtual void Forward(const T* params, const T* x, const MicroBatch& batch, T* y, T* saved,
                       T* work) const = 0;
  // dx is nullptr for a layer without an input gradient (the embedding).
  virtual void BackwardInput(const T* params, const T* dy, const T* saved,
                             const MicroBatch& batch, T* dx, T* pending, T* work) const = 0;
  virtual void BackwardWeight(const T* params, const T* dy, const T* saved, const T* pending,
                              const MicroBatch& batch, T* dparams, T* work) const = 0;
};

// The reference layer for `layer` (an expanded model layer) at `input`'s shapes.
template <typename T>
Result<std::unique_ptr<CpuLayer<T>>> MakeCpuLayer(const Layer& layer, const ModelInput& input);

}  // namespace pp
