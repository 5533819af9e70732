// What a multi-token prediction module adds around its transformer block (Layer::mtp; core/
// kinds/transformer_block.cc), for one rank of KernelShape::par, as Megatron-Core's
// MultiTokenPredictionLayer runs it (megatron/core/transformer/multi_token_prediction.py):
// the embedding of the tokens one further ahead with its own copy of the model's token table
// (vocabulary-parallel, as the embedding kind: a lookup, its reduction over the tensor ranks,
// a scatter-add for the table's gradient), two norms (enorm on that embedding, hnorm on the
// incoming hidden state), their outputs side by side (2 h wide), eh_proj (2 h -> h,
// column-split: its input gathered from the sequence-parallel shares, its output columns
// gathered over the tensor ranks and taken back to the rank's share), then the block, a final
// norm, and the output appended to the streams the module passes on (a copy of all of them,
// torch.cat). Nothing when !l.mtp.
#pragma once

#include <cstdint>

#include "core/kernel_cost.h"
#include "core/layer_kinds.h"
#include "core/parallelism.h"

namespace pp {

// The parameters beside the block's: the table copy, three norms and eh_proj (its share).
int64_t MtpRankParams(const Layer& l, const ShardDegrees& par);
// Of those, the table copy's share, which the model counts once, at the embedding.
int64_t MtpSharedParams(const Layer& l, const ShardDegrees& par);
// Kept for the backward beside the block's: the token ids, the three norms' inputs and
// statistics, and eh_proj's input.
double MtpActivationBytes(const Layer& l, const KernelShape& sh);
// Streams of rows the layer passes on: the incoming ones and its own (1 for any other layer).
int64_t MtpStreamsOut(const Layer& l);
// Places the module's kernels and collectives around the block's, `block` (its own lists).
void AddMtpKernels(const Layer& l, const KernelShape& sh, const LayerKernels& block,
                   LayerKernels* k);

}  // namespace pp
