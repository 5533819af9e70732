// The synthetic training data `run` feeds a pipeline: deterministic for (seed, step,
// micro-batch), so every stage regenerates the same batch without a transfer, and learnable,
// so the loss falls as training proceeds.
//   Token models: each sample is a sequence t0, t1 = (a t0 + c) mod V, t2 = ...; the label of
//   token t is the next one, (a t + c) mod V.
//   Feature models: x uniform on [-sqrt 3, sqrt 3) (mean 0, variance 1), from a counter-based
//   hash, cheap beside the layers it feeds (every stage regenerates it inside its forward, so
//   its cost is in the measured op times); the target of output column o is
//   0.5 x[o mod features].
#pragma once

#include <cstdint>

#include "core/model.h"

namespace pp {

class SyntheticData {
 public:
  // `vocab` is the embedding's vocabulary (token models); `target_width` the width the loss
  // compares (mse).
  SyntheticData(const ModelInput& input, int64_t vocab, int64_t target_width, uint64_t seed);

  // Writes rows() token ids and labels.
  void Tokens(int step, int micro_batch, int32_t* tokens, int32_t* labels) const;
  // Writes rows() x features inputs and rows() x target_width targets.
  void Features(int step, int micro_batch, float* x, float* targets) const;
  int64_t rows() const { return input_.rows(); }

 private:
  uint64_t SampleSeed(int step, int micro_batch, int64_t sample) const;
  ModelInput input_;
  int64_t vocab_, target_width_;
  uint64_t seed_;
};

}  // namespace pp
