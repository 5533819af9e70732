// The degrees of parallelism beside the pipeline and the collectives they cost. A layer's
// kind says, for given degrees, what one rank computes and which collectives it waits for
// (core/kind_entry.h AddKernels, core/kernel_cost.h LayerKernels); the analytic profiler turns
// each collective into time on the link of its group (docs/cost-model.md); the planner adds the
// data-parallel ones of a whole step.
//
// Rank order (as Megatron-LM and torchtitan build their groups): tensor innermost, then
// context, data and pipeline outermost. The MoE layers fold the tensor, context and data
// ranks of a pipeline stage into their own grid (Megatron-LM's MoE parallel folding,
// megatron/core/transformer/moe/README.md): expert tensor (etp) innermost, then expert (ep),
// then expert data. A group whose ranks lie inside one node (GroupSpan <= gpus_per_node)
// talks over the node's links, else over the network.
#pragma once

#include <cstdint>
#include <string_view>

namespace pp {

// How one layer is split: tensor (Megatron column/row splits), context (the sequence split
// over cp ranks with a ring exchange of K/V) and expert degrees; with sequence parallelism the
// parts outside the matrix products (norms, dropout, residual adds) are split over the tensor
// ranks along the sequence, and the all-reduces become all-gathers and reduce-scatters.
// The routed experts' own tensor degree is etp (Megatron-LM's
// --expert-tensor-parallel-size); 0 means the same as tp, Megatron-LM's default.
struct ShardDegrees {
  int tp = 1;
  int cp = 1;
  int ep = 1;
  bool sequence_parallel = true;  // only meaningful when tp > 1
  int etp = 0;
  int expert_tp() const { return etp > 0 ? etp : tp; }
};

// The whole layout of a training step: G = tp x cp x pp x dp GPUs (ep x etp divides
// tp x cp x dp: the MoE layers' expert tensor and expert groups are folded out of a pipeline
// stage's ranks, ExpertGridFits), vp chunks per pipeline device, ZeRO stage 0-3 over the data-parallel ranks (1: optimizer states sharded,
// Megatron's distributed optimizer; 2: and gradients; 3: and parameters, as FSDP).
struct ParallelLayout {
  int tp = 1;
  int pp = 1;
  int cp = 1;
  int ep = 1;
  int dp = 1;
  int vp = 1;
  int zero = 0;
  int etp = 0;  // the routed experts' tensor degree; 0: as tp (ShardDegrees)
  bool sequence_parallel = true;
  // How the training software runs the step beside the degrees: attention as one fused
  // kernel per direction (flash-style; off: the unfused scores, softmax and context
  // kernels), and the data-parallel gradient reduction (and ZeRO 1/2's parameter
  // all-gather) overlapped with the last backward (and the next forward); off: after the
  // pipeline drains, whole.
  bool fused_attention = true;
  bool overlap_grad_reduce = true;
  // Each micro-batch's weight gradients added to the accumulated (main) gradients inside the
  // weight-gradient product (Megatron-LM's gradient_accumulation_fusion, there since
  // February 2022, and Transformer Engine's); off: in a pass of their own after it, which
  // reads the new gradient and reads and writes the accumulated one (the Megatron-LM of
  // 2021; --no-gradient-accumulation-fusion today).
  bool fused_wgrad_accumulation = true;
  // The experts' all-to-all of one micro-batch under the other's compute: the forward of
  // one micro-batch and the backward of another run together, layer by layer, so each
  // direction's expert communication hides behind the other direction's kernels
  // (Megatron-LM's overlap_moe_expert_parallel_comm, its combined 1F1B schedule,
  // megatron/core/pipeline_parallel/combined_1f1b.py). It schedules one more forward before
  // the first backward. Applies only with ep > 1 (ExpertOverlapApplies).
  bool overlap_expert_comm = false;
  // The experts' token exchange by Megatron-LM's flex dispatcher (--moe-token-dispatcher-type
  // flex with DeepEP or HybridEP): a token crosses the network once to each other node that
  // hosts any of its experts and is fanned out over the node's bus there, instead of once per
  // expert copy as NCCL's all-to-all sends it (ExpertExchangeNetworkShare). Off: the
  // all-to-all dispatcher.
  bool flex_dispatcher = false;
  // Each stage boundary's activation sent as tp pieces, one by each tensor rank over its own
  // link, and all-gathered by the receiving tensor group (Megatron-LM's scatter/gather of
  // pipeline tensors, Narayanan et al., SC21 section 4.1: its default from 2021-02-16, commit
  // 72e4230bb5, until Megatron-Core's pipeline code left it out on 2023-03-23, 3c92fa93b5).
  // Applies only with tp > 1 and no sequence parallelism, whose boundary activations are split
  // over the tensor ranks already (PipelineScatterGatherApplies).
  bool pipeline_scatter_gather = false;
  // The tensor-parallel reduction of a column-parallel product's input gradient (the
  // all-reduce, or with sequence parallelism the reduce-scatter, after qkv's and fc1's input
  // gradient) started asynchronously and run under that product's weight gradient, which the
  // backward computes next (Megatron-LM's --async-tensor-model-parallel-allreduce, commit
  // 16c90445e7 of 2021-09; its LinearWithGradAccumulationAndAsyncCommunication since).
  // Off: each waits before the weight gradient starts. The layer's input-gradient time loses
  // the hidden part (profiler/efficiency.h PartsMs), which assumes the weight gradient runs
  // right after it, as a full backward does.
  bool overlap_tp_dgrad = false;
  // The cross entropy over the vocabulary as one fused kernel in each direction, which reads
  // the logits once and writes the softmax (its gradient) once (Transformer Engine's parallel
  // cross entropy and the fused linear-cross-entropy kernels of other runtimes). Off:
  // Megatron-LM's vocab_parallel_cross_entropy without --cross-entropy-loss-fusion
  // (megatron/core/tensor_parallel/cross_entropy.py; megatron/mpu/cross_entropy.py in 2021,
  // the same passes): the logits cast to fp32, then a max, a subtraction, an exponential, a
  // sum and a division, each a pass of its own, the fp32 softmax kept; in the backward a
  // multiplication and the cast back (core/kinds/loss.cc counts the bytes).
  bool fused_cross_entropy = true;
  // Two copies of the gradients that some training software keeps beside the state of
  // TrainingState (partitioner/cost_model.h), both with ZeRO 0 only. fp32_grad_copy: the
  // optimizer step copies every 16-bit gradient to a new fp32 one for its master weights and
  // keeps them to the end of the step (Megatron-LM's Float16OptimizerWithFloat16Params of
  // 2021, `main_param.grad = model_param.grad.float()` in _copy_model_grads_to_main_grads of
  // megatron/optimizer/optimizer.py, the 16-bit ones not freed): 4 bytes a parameter more with
  // Adam and 16-bit weights. Counted with the state all step: an upper bound, since the copy
  // exists only while the step runs, when the activations are gone. ddp_bucket_copy:
  // PyTorch DistributedDataParallel's gradient buckets, a second copy of the gradients for its
  // all-reduce (gradient_as_bucket_view off, its default; Megatron-LM's --DDP-impl torch): the
  // gradients' bytes again.
  bool fp32_grad_copy = false;
  bool ddp_bucket_copy = false;
  int gpus_per_node = 8;
  int64_t gpus() const { return int64_t{tp} * cp * pp * dp; }
  int expert_tp() const { return etp > 0 ? etp : tp; }
  // The expert-data-parallel degree: the stage's ranks over ep x etp (Megatron-LM's
  // expert_data_parallel group, over which the experts' gradients are reduced).
  int64_t expert_dp() const { return int64_t{tp} * cp * dp / (int64_t{ep} * expert_tp()); }
  ShardDegrees shard() const { return {tp, cp, ep, sequence_parallel, etp}; }
};

// Whether the layout's expert all-to-all overlap changes anything: it is asked for and the
// experts are split (ep > 1).
inline bool ExpertOverlapApplies(const ParallelLayout& layout) {
  return layout.overlap_expert_comm && layout.ep > 1;
}

// Whether the layout's software gradient copies (fp32_grad_copy, ddp_bucket_copy) are
// counted: only beside ZeRO 0's replicated state (a sharded optimizer keeps its own buffers).
inline bool GradientCopiesApply(const ParallelLayout& layout) { return layout.zero == 0; }

// Whether ep x etp divides tp x cp x dp (Megatron-LM's condition for the folded expert grid).
bool ExpertGridFits(const ParallelLayout& layout);

// The etp field for an expert tensor degree `etp` beside `tp`: 0 (as tp, the default) where
// they are equal, so that a layout has one spelling of each.
inline int EtpField(int etp, int tp) { return etp == tp ? 0 : etp; }

enum class CollectiveKind { kAllReduce, kAllGather, kReduceScatter, kAllToAll, kSendRecv };
// kExpertTensor: the routed experts' tensor group (etp ranks, innermost); kExpert: the
// expert group (ep ranks, etp apart); kExpertData: the expert-data-parallel group (expert_dp
// ranks, ep x etp apart), over which the experts' gradients are reduced and their state
// sharded.
enum class CommGroup { kTensor, kContext, kExpert, kData, kPipeline, kExpertTensor, kExpertData };

// Whether `l` splits its stage transfers over the tensor ranks (ParallelLayout's
// pipeline_scatter_gather with tp > 1 and no sequence parallelism).
inline bool PipelineScatterGatherApplies(const ParallelLayout& l) {
  return l.pipeline_scatter_gather && l.tp > 1 && !l.sequence_parallel;
}

// Bytes per parameter of the gradients Adam's mixed-precision training accumulates over a
// step's micro-batches (the "main" gradients): as the weights' `element_bytes` without a
// sharded optimizer; fp32 with one (ZeRO >= 1: Megatron-LM's distributed optimizer keeps fp32
// main gradients).
inline int64_t MainGradientBytes(int64_t element_bytes, int zero) {
  return zero >= 1 ? 4 : element_bytes;
}

std::string_view CollectiveKindName(CollectiveKind kind);
std::string_view CommGroupName(CommGroup group);

// Which step of the experts' token exchange a collective belongs to, in either direction:
// the dispatch (tokens to their experts; in the backward, its gradient coming back, after the
// experts' input gradient) or the combine (the experts' outputs back; in the backward, its
// gradient, first). Megatron-LM's moe_dispatch and moe_combine nodes.
enum class TokenExchange { kNone, kDispatch, kCombine };

// One collective a rank takes part in. `bytes` follows nccl-tests' "size": the whole buffer
// of one rank (the gathered output of an all-gather, the input of a reduce-scatter, the buffer
// of an all-reduce, everything a rank sends and keeps in an all-to-all, one message of a
// send/receive). `hidden_behind` names a kernel that the collective overlaps with: one of the
// same list part (the ring exchange of context parallelism runs under the attention of the
// previous block of K/V), or, for an input-gradient collective, a weight-gradient kernel it
// runs under when the layout says so (ParallelLayout::overlap_tp_dgrad). Only the part of the
// collective longer than that kernel is exposed. Empty: the collective is exposed whole (the
// layer waits for it).
struct Collective {
  std::string_view name;  // a static label such as "qkv_allgather"
  CollectiveKind kind = CollectiveKind::kAllReduce;
  CommGroup group = CommGroup::kTensor;
  double bytes = 0;
  std::string_view hidden_behind;
  TokenExchange exchange = TokenExchange::kNone;
  // The recomputation modules it belongs to (bits of ModuleBit): a forward collective that
  // selective recomputation of them runs again (a recomputed MLP's gathers, the experts'
  // all-to-all).
  uint8_t modules = 0;
  // A token exchange's routing (kAllToAll over the expert group): the routed experts and the
  // copies each token makes (top_k); 0 for other collectives.
  double experts = 0;
  double top_k = 0;
};

// The NCCL bus-bandwidth factor: over n ranks a collective of `bytes` moves
// bytes x BusFactor / bus bandwidth per rank. all-reduce 2(n-1)/n; all-gather,
// reduce-scatter and all-to-all (n-1)/n; send/receive 1. 0 when n <= 1 (nothing moves).
// Of an expert all-to-all's bytes bound for other nodes (k (n - m) / n copies of each token,
// n ranks, m of them on each node, `experts` spread evenly), the share the flex dispatcher
// sends over the network: the other nodes a token's k experts reach, on average
// (n/m - 1) (1 - C(E - E m/n, k) / C(E, k)) under uniform routing, over its copies bound for
// them. 1 when nothing crosses nodes or the routing is unknown.
double ExpertExchangeNetworkShare(double experts, double top_k, int n, int64_t members_per_node);

double BusFactor(CollectiveKind kind, int n);

// Milliseconds of one collective over n ranks on a link of `bus_bytes_per_s` (the bus
// bandwidth nccl-tests reports for that kind of link) and `latency_ms` per collective
// (ring steps: latency x (n-1) for the ring kinds, 2(n-1) for all-reduce; 1 for send/receive).
// 0 when n <= 1.
double CollectiveMs(CollectiveKind kind, double bytes, int n, double bus_bytes_per_s,
                    double latency_ms);

// Ranks a group of the layout spans in rank order (tensor innermost): the product of its own
// degree and every degree inside it. A group spanning at most gpus_per_node ranks stays in one
// node.
int64_t GroupSpan(const ParallelLayout& layout, CommGroup group);
int GroupSize(const ParallelLayout& layout, CommGroup group);
bool GroupInsideNode(const ParallelLayout& layout, CommGroup group);
// Members of the group on each node it spans: its ranks sit GroupSpan / GroupSize apart in
// rank order and a node holds gpus_per_node consecutive ranks (at least 1, at most the
// group's size).
int64_t GroupMembersPerNode(const ParallelLayout& layout, CommGroup group);

// The bus bandwidth and latency of one collective of `kind` over `group`: the node's figures
// inside a node; across nodes the network's per-GPU figures, except that a ring collective
// (all-reduce, all-gather, reduce-scatter) with k members per node runs k rings at once, one
// through each member's network card, so it reaches k x the per-GPU figure, at most the
// node's (a full DGX A100 node: 8 x 24 = 192 GB/s, as measured); a send/receive leaves
// through the rank's own card (an all-to-all across nodes is AllToAllAcrossNodesMs).
struct GroupLink {
  double bus_bytes_per_s = 0;
  double latency_ms = 0;
};
GroupLink CollectiveLink(const ParallelLayout& layout, CommGroup group, CollectiveKind kind,
                         double node_bus_bytes_per_s, double node_latency_ms,
                         double network_bus_bytes_per_s, double network_latency_ms);

// Milliseconds of an all-to-all of `bytes` per rank over n ranks of which m share each node:
// a rank sends bytes / n to each peer, m - 1 of them over the node's bus and n - m through its
// own network card, both at once (NCCL posts every peer's send and receive together), so it
// lasts the longer of the two parts, (m - 1) node steps + bytes (m - 1) / n over the node's
// bus and (n - m) network steps + bytes (n - m) / n over the network's per-GPU figure. With
// m = n (one node) it is CollectiveMs's all-to-all on the node's bus. 0 when n <= 1.
// `network_share` < 1 (the flex dispatcher, ExpertExchangeNetworkShare) sends that share of
// the network part, and the node's bus then also carries the copies that came over the
// network to their ranks: bytes (n - 1) / n on it.
double AllToAllAcrossNodesMs(double bytes, int n, int64_t members_per_node,
                             double node_bus_bytes_per_s, double node_latency_ms,
                             double network_bus_bytes_per_s, double network_latency_ms,
                             double network_share = 1);

}  // namespace pp
