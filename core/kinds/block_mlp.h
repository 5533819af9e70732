// The MLP half of a transformer block (core/kinds/transformer_block.cc), dense or a mixture
// of experts, for one rank of KernelShape::par: its parameters, what it keeps, its kernels
// and its collectives (docs/analytic.md lists them). A dense MLP is fc1 (h -> f; swiglu: gate
// and up fused, h -> 2f), the activation and fc2 (f -> h), fc1 column-split and fc2 row-split
// over the tensor ranks. A mixture of experts is a router (h -> experts, softmax, top-k), a
// permutation of each token's top_k copies to their experts, the experts' MLPs as grouped
// GEMMs (the experts divided over the expert ranks, each expert's width split over the etp
// expert tensor ranks), the weighted un-permutation back, plus the shared experts as one dense
// MLP of width shared_experts x shared_ffn, split over the tensor ranks as a dense MLP is.
// A rank routes only its own rows (its sequence-parallel share under tp), as Megatron-LM's
// all-to-all token dispatcher does (megatron/core/transformer/moe/token_dispatcher.py): the
// copies go to their experts' ranks over the expert group, are gathered over the expert
// tensor group when etp > 1, and come back the same way reversed.
#pragma once

#include <cstdint>

#include "core/kernel_cost.h"
#include "core/layer_kinds.h"
#include "core/parallelism.h"

namespace pp {

int64_t MlpRankParams(const Layer& l, const ShardDegrees& par);
// Of those, the routed experts': their share of the experts at their share of the width.
int64_t MlpRankExpertParams(const Layer& l, const ShardDegrees& par);

// Kept for the backward: elements of sh.e bytes, elements of the products' inputs (of
// sh.e_inputs bytes), and other bytes (int32 expert ids).
struct MlpKept {
  double elements = 0;
  double inputs = 0;
};
MlpKept MlpActivationElements(const Layer& l, const KernelShape& sh);
double MlpActivationExtraBytes(const Layer& l, const KernelShape& sh);
// Of what the MLP keeps, what recomputing module `m` drops: a dense MLP's insides (mlp), a
// mixture of experts' (moe), its experts' activation outputs (moe_act) or its shared experts'
// insides (shared_experts); 0 for the other modules and for a module the MLP does not have.
double MlpModuleBytes(const Layer& l, const KernelShape& sh, RecomputeModule m);

// Appends the MLP's kernels (and collectives) of each part to `k`, between norm2 and the
// second residual add. The forward's are marked with the recomputation modules they belong
// to (a dense MLP's mlp; a mixture of experts' moe, and its activation moe_act, its shared
// experts shared_experts).
void AddMlpForward(const Layer& l, const KernelShape& sh, LayerKernels* k);
void AddMlpInputGrad(const Layer& l, const KernelShape& sh, LayerKernels* k);
void AddMlpWeightGrads(const Layer& l, const KernelShape& sh, LayerKernels* k);

}  // namespace pp
