// The weights `run` trains once for two layers: an output linear tied to an embedding
// (`"tied_to"`) computes its logits with the embedding's token table. Every backend trains
// the pair as one weight, as Megatron-LM trains a tied head on the last stage:
//
//   - both copies start equal: the linear's W (in x out = hidden x vocab) is the transpose of
//     the embedding's token table (vocab x hidden), whatever the linear's own init would be;
//   - at the end of each step, after the replicas' gradients are averaged and before the
//     optimizer, each side adds the other's gradient of the shared weight (transposed), so
//     both hold g_table + g_W^T. The two sums are the same floats (addition commutes), so the
//     same optimizer keeps the copies equal, bit for bit.
//
// When both layers are on one device the sum is local; otherwise the two devices exchange
// their gradients (a backend's hook: host memory between threads, MPI, NCCL). Plain C++.
#pragma once

#include <cstdint>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/plan_context.h"
#include "executor/transport.h"

namespace pp {

struct TiedWeight {
  int embedding = 0;   // model layer index of the embedding
  int linear = 0;      // and of the linear tied to it
  int64_t vocab = 0;   // the shared weight: the embedding's first vocab x hidden parameters,
  int64_t hidden = 0;  // the linear's first hidden x vocab (its W; a bias follows)
  int64_t count() const { return vocab * hidden; }
};

// The model's ties, in model order of their linears. An embedding with more than one linear
// tied to it is "not available yet" (its gradient would be a sum over three or more copies).
Result<std::vector<TiedWeight>> TiedWeights(const Model& model);

// What a device running `ranges` needs to receive the other side's gradient into: the
// largest shared weight of a tie with exactly one side among them (0 when none is split).
int64_t ExchangeCount(const std::vector<TiedWeight>& ties, const std::vector<ChunkRange>& ranges);

// The exchange of two devices of one process: sends `count` floats of `mine` through
// `mailbox` to the other side of `tie` and receives its `count` into `theirs`.
Status SwapThroughMailbox(Transport& mailbox, const TiedWeight& tie, bool embedding_side,
                          const float* mine, float* theirs, size_t count, double timeout_s);

// The seed of model layer `index`'s initial values in a run seeded `seed` (every backend's).
uint64_t LayerSeed(uint64_t seed, int index);

// Model layer `index`'s initial values (its CPU reference layer's Init with LayerSeed), into
// `values` (its parameter count): for the linear of a tie, W is the embedding's initial token
// table transposed and only the bias is its own.
Status InitialValues(const Model& model, int index, uint64_t seed, float* values);

// dst[j * rows + i] += src[i * cols + j] for i < rows, j < cols: adds the rows x cols matrix
// src, transposed, to the cols x rows matrix dst.
void AddTransposed(const float* src, int64_t rows, int64_t cols, float* dst);
// dst[j * rows + i] = src[i * cols + j].
void CopyTransposed(const float* src, int64_t rows, int64_t cols, float* dst);

}  // namespace pp
