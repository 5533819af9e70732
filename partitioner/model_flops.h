// The model FLOP count a training step is credited with: the count Megatron-Bridge reports as
// "TFLOP/s per GPU" (src/megatron/bridge/training/utils/flop_utils.py, transformer_flops;
// docs/cost-model.md, "Model FLOPs"). It counts the matrix products of the forward once and
// the backward twice (3 x 2 FLOPs per multiply-add), no recomputation, causal attention at half
// the square, and the logits over the vocabulary padded to a multiple of 128 x tp. Per token:
//   transformer block:  6 (h (q + 2 kv) + q h) + 6 q s  +  6 h f x (3 gated | 2 plain)
//                       (q = heads x head_dim, kv = kv_heads x head_dim, s = sequence;
//                       f = ffn, or for a mixture-of-experts MLP top_k x expert_ffn +
//                       shared_experts x shared_ffn: the experts a token passes through)
//   output layer:       6 h V_padded (a linear whose width is the vocabulary)
//   other linear:       6 in out
// Norms, activations, embeddings and the loss count nothing.
#pragma once

#include <cstdint>

#include "core/model.h"

namespace pp {

// The vocabulary padded as Megatron pads it: up to a multiple of 128 x tp.
int64_t PaddedVocab(int64_t vocab, int tp);

// FLOPs of one sample (one sequence of model.input.seq_len tokens; one row for feature
// models) over forward and backward, as above.
double ModelFlopsPerSample(const Model& model, int tp = 1);

}  // namespace pp
