#include "core/kinds/block_mtp.h"

#include "core/kind_entry.h"
#include "core/kinds/pieces.h"

namespace pp {
namespace {

// The module's token table: an embedding of the tied embedding's vocabulary and width.
Layer Table(const Layer& l) {
  Layer e;
  e.name = l.name;
  e.op = LayerKind::kEmbedding;
  e.vocab = l.vocab;
  e.hidden = l.hidden;
  e.out_width = l.hidden;
  return e;
}

int64_t NormParams(const Layer& l) {
  return l.norm == NormKind::kLayerNorm ? 2 * l.hidden : l.hidden;
}

double NormStatBytes(const Layer& l) { return l.norm == NormKind::kLayerNorm ? 8.0 : 4.0; }

void Append(const LayerKernels& from, LayerKernels* to) {
  to->forward.insert(to->forward.end(), from.forward.begin(), from.forward.end());
  to->backward_input.insert(to->backward_input.end(), from.backward_input.begin(),
                            from.backward_input.end());
  to->backward_weight.insert(to->backward_weight.end(), from.backward_weight.begin(),
                             from.backward_weight.end());
  to->forward_comm.insert(to->forward_comm.end(), from.forward_comm.begin(),
                          from.forward_comm.end());
  to->backward_input_comm.insert(to->backward_input_comm.end(), from.backward_input_comm.begin(),
                                 from.backward_input_comm.end());
  to->backward_weight_comm.insert(to->backward_weight_comm.end(), from.backward_weight_comm.begin(),
                                  from.backward_weight_comm.end());
}

void AddPieceTo(const Piece& p, LayerKernels* k) {
  k->forward.push_back(p.forward);
  k->backward_input.push_back(p.input_grad);
  for (const Kernel& g : p.weight_grads) k->backward_weight.push_back(g);
}

}  // namespace

int64_t MtpRankParams(const Layer& l, const ShardDegrees& par) {
  if (!l.mtp) return 0;
  return MtpSharedParams(l, par) + 3 * NormParams(l) + 2 * l.hidden * Share(l.hidden, par.tp);
}

int64_t MtpSharedParams(const Layer& l, const ShardDegrees& par) {
  return l.mtp ? EmbeddingKind().RankParamCount(Table(l), par) : 0;
}

double MtpActivationBytes(const Layer& l, const KernelShape& sh) {
  if (!l.mtp) return 0;
  const RankSplit r = RankSplitOf(sh);
  const double h = static_cast<double>(l.hidden);
  return EmbeddingKind().ActivationBytes(Table(l), sh)    // the token ids
         + 3 * r.sp_rows * (h * sh.e + NormStatBytes(l))  // enorm, hnorm, final norm
         + r.sp_rows * 2 * h * sh.e_inputs;               // eh_proj's input
}

int64_t MtpStreamsOut(const Layer& l) { return l.mtp ? l.mtp_depth + 1 : 1; }

void AddMtpKernels(const Layer& l, const KernelShape& sh, const LayerKernels& block,
                   LayerKernels* k) {
  if (!l.mtp) {
    Append(block, k);
    return;
  }
  const RankSplit r = RankSplitOf(sh);
  const double h = static_cast<double>(l.hidden);
  const KernelShape sp_rows = WithRows(sh, r.sp_rows);
  const double share = r.sp_rows * h * sh.e;  // one [rows x h] tensor of the rank's share

  // Before the block: the lookup, the two norms, their outputs side by side, eh_proj.
  LayerKernels pre;
  EmbeddingKind().AddKernels(Table(l), sh, &pre);
  AddPieceTo(NormPiece(sp_rows, l.norm, h, {"mtp_enorm", "mtp_enorm_dgrad", "mtp_enorm_wgrad", ""}),
             &pre);
  AddPieceTo(NormPiece(sp_rows, l.norm, h, {"mtp_hnorm", "mtp_hnorm_dgrad", "mtp_hnorm_wgrad", ""}),
             &pre);
  // Reads both norms' outputs, writes them side by side (its backward takes views).
  pre.forward.push_back(MemoryKernel("mtp_concat", 4 * share));
  AddPieceTo(LinearPiece(WithRows(sh, r.rows), 2 * h, static_cast<double>(Share(l.hidden, r.tp)),
                         false, {"mtp_eh_proj", "mtp_eh_proj_dgrad", "mtp_eh_proj_wgrad", ""}),
             &pre);
  if (r.tp > 1) {
    const double in = r.rows * 2 * h * sh.e;  // eh_proj's gathered input (or its gradient)
    const double out = r.rows * h * sh.e;     // its output, gathered over the columns
    if (r.sp) {
      pre.forward_comm.push_back(
          {"mtp_eh_proj_allgather", CollectiveKind::kAllGather, CommGroup::kTensor, in, ""});
      // The gradient of the step back to the rank's share of the rows.
      pre.backward_input_comm.push_back({"mtp_sequence_scatter_dgrad_allgather",
                                         CollectiveKind::kAllGather, CommGroup::kTensor, out, ""});
      pre.backward_input_comm.push_back({"mtp_eh_proj_dgrad_reducescatter",
                                         CollectiveKind::kReduceScatter, CommGroup::kTensor, in,
                                         "mtp_eh_proj_wgrad"});
    } else {
      pre.backward_input_comm.push_back({"mtp_eh_proj_dgrad_allreduce", CollectiveKind::kAllReduce,
                                         CommGroup::kTensor, in, "mtp_eh_proj_wgrad"});
    }
    pre.forward_comm.push_back(
        {"mtp_eh_proj_output_allgather", CollectiveKind::kAllGather, CommGroup::kTensor, out, ""});
  }

  // After the block: the final norm, then the copy of every stream into one tensor.
  LayerKernels post;
  AddPieceTo(NormPiece(sp_rows, l.norm, h, {"mtp_norm", "mtp_norm_dgrad", "mtp_norm_wgrad", ""}),
             &post);
  post.forward.push_back(
      MemoryKernel("mtp_streams_concat", 2 * static_cast<double>(MtpStreamsOut(l)) * share));

  Append(pre, k);
  Append(block, k);
  Append(post, k);
}

}  // namespace pp
