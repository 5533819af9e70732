#include "partitioner/model_flops.h"

namespace pp {
namespace {

// Key/value heads of a block: its own field where the layer kind has one (grouped-query
// attention), else one per query head.
template <typename L>
int64_t KvHeads(const L& layer) {
  if constexpr (requires { layer.kv_heads; }) {
    return layer.kv_heads > 0 ? layer.kv_heads : layer.heads;
  } else {
    return layer.heads;
  }
}

}  // namespace

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
        const double h = static_cast<double>(l.hidden);
        const double heads = static_cast<double>(l.heads);
        const double q = h;  // heads x head_dim
        const double kv = heads > 0 ? q * static_cast<double>(KvHeads(l)) / heads : q;
        const double gated = l.mlp == MlpKind::kSwiglu ? 3.0 : 2.0;
        per_token +=
            6 * (h * (q + 2 * kv) + q * h) + 6 * q * s + 6 * h * static_cast<double>(l.ffn) * gated;
        break;
      }
      case LayerKind::kLinear: {
        const bool logits = l.out == vocab || !l.tied_to.empty();
        const double out = static_cast<double>(logits ? PaddedVocab(l.out, tp) : l.out);
        per_token += 6 * static_cast<double>(l.in) * out;
        break;
      }
      default:
        break;
    }
  }
  return per_token * s;
}

}  // namespace pp
