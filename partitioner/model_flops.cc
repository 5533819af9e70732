#include "partitioner/model_flops.h"

namespace pp {

int64_t PaddedVocab(int64_t vocab, int tp) {
  const int64_t multiple = int64_t{128} * (tp < 1 ? 1 : tp);
  return (vocab + multiple - 1) / multiple * multiple;
}

double ModelFlopsPerSample(const Model& model, int tp) {
  int64_t vocab = 0;
  for (const Layer& l : model.layers) {
    if (l.op == LayerKind::kEmbedding) vocab = l.vocab;
  }
  const double s = static_cast<double>(model.input.tokens() ? model.input.seq_len : 1);
  double per_token = 0;
  for (const Layer& l : model.layers) {
    switch (l.op) {
      case LayerKind::kTransformerBlock: {
        // Megatron-Bridge's terms per token: q heads x head_dim wide, k and v kv_heads x
        // head_dim; a dense MLP of ffn, or a mixture-of-experts one of top_k routed experts
        // of expert_ffn plus the shared experts' whole width (the router is not counted).
        const double h = static_cast<double>(l.hidden);
        // head_dim and kv_heads are filled in by the block's reader (core/layer_kinds.h).
        const double d = static_cast<double>(l.head_dim);
        const double q = static_cast<double>(l.heads) * d;
        const double kv = static_cast<double>(l.kv_heads) * d;
        const double gated = GatedMlp(l.mlp) ? 3.0 : 2.0;
        const double mlp_width =
            l.experts > 0 ? static_cast<double>(l.top_k * l.expert_ffn + l.shared_experts * l.shared_ffn)
                          : static_cast<double>(l.ffn);
        per_token += 6 * h * mlp_width * gated;
        if (l.kv_lora > 0) {
          // Multi-latent attention (Megatron-LM's num_floating_point_operations, its
          // multi_latent_attention branch): the projections with the latent norms' one
          // multiply a latent element, the rotary key's projection, proj, and the scores and
          // context at their own head sizes.
          const double a = static_cast<double>(l.heads), dv = static_cast<double>(l.v_head_dim);
          const double rope = static_cast<double>(l.rope_dim);
          const double lq = static_cast<double>(l.q_lora), lkv = static_cast<double>(l.kv_lora);
          const double q_term = lq > 0 ? lq * (h + a * d + 1) : h * a * d;
          per_token += 6 * (q_term + lkv * (h + a * (d - rope + dv) + 1) + h * rope + a * dv * h) +
                       3 * s * a * (d + dv);
        } else {
          per_token += 6 * (h * (q + 2 * kv) + q * h) + 6 * q * s;
        }
        // A multi-token prediction module's norms (enorm, hnorm and its final norm, one
        // multiply an element) and eh_proj (2 h -> h), as Megatron-LM counts them.
        if (l.mtp) per_token += 6 * (3 * h + 2 * h * h);
        break;
      }
      case LayerKind::kLinear: {
        const bool logits = l.out == vocab || !l.tied_to.empty();
        const double out = static_cast<double>(logits ? PaddedVocab(l.out, tp) : l.out);
        // Over every stream: after multi-token prediction the head runs once a prediction.
        per_token += 6 * static_cast<double>(l.in) * out * static_cast<double>(l.streams);
        break;
      }
      default:
        break;
    }
  }
  return per_token * s;
}

}  // namespace pp
