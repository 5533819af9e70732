#include "tests/kind_samples.h"

#include <string>

namespace pp::testing {
namespace {

class Draw {
 public:
  explicit Draw(std::mt19937_64& rng) : rng_(rng) {}
  int64_t Int(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  bool Coin() { return Int(0, 1) == 1; }
  // Sets `key` to `value`, or leaves it out (the reader's default) half the time when
  // `value` is that default.
  template <typename V>
  void Maybe(Json& layer, const char* key, V value, V default_value) {
    if (value != default_value || Coin()) layer[key] = value;
  }

 private:
  std::mt19937_64& rng_;
};

Json Doc(const Json& input, const Json& layers) {
  return Json{{"format", "pp-partition.model/v1"},
              {"name", "sample"},
              {"dtype", "fp32"},
              {"input", input},
              {"layers", layers}};
}

Json TokenInput(Draw& d, int64_t* seq) {
  *seq = d.Int(1, 6);
  return Json{{"micro_batch_size", d.Int(1, 3)}, {"seq_len", *seq}};
}
Json FeatureInput(Draw& d, int64_t features) {
  return Json{{"micro_batch_size", d.Int(1, 4)}, {"features", features}};
}

Json Embedding(Draw& d, int64_t seq, int64_t vocab, int64_t hidden) {
  Json e{{"name", "embed"}, {"op", "embedding"}, {"vocab", vocab}, {"hidden", hidden}};
  if (d.Coin()) e["positions"] = seq + d.Int(0, 3);
  if (d.Coin()) e["token_types"] = d.Int(1, 3);
  return e;
}

// A width-preserving layer may repeat; the sample's layer is then its first copy.
void MaybeRepeat(Draw& d, Json& layer) {
  if (d.Coin()) layer["repeat"] = d.Int(1, 3);
}

}  // namespace

KindSample RandomKindSample(LayerKind kind, std::mt19937_64& rng) {
  Draw d(rng);
  int64_t seq = 0;
  const int64_t w = d.Int(1, 9);
  const std::string op(LayerKindName(kind));
  switch (kind) {
    case LayerKind::kEmbedding: {
      const Json input = TokenInput(d, &seq);
      return {Doc(input, Json::array({Embedding(d, seq, d.Int(1, 20), w)})), 0};
    }
    case LayerKind::kLinear: {
      Json lin{{"name", "lin"}, {"op", op}, {"in", w}, {"out", d.Int(1, 9)}};
      d.Maybe(lin, "bias", d.Coin(), true);
      if (d.Coin()) return {Doc(FeatureInput(d, w), Json::array({lin})), 0};
      // Tied to the embedding's table: in = hidden, out = vocab.
      const Json input = TokenInput(d, &seq);
      const int64_t vocab = d.Int(1, 20);
      lin["out"] = vocab;
      lin["tied_to"] = "embed";
      return {Doc(input, Json::array({Embedding(d, seq, vocab, w), lin})), 1};
    }
    case LayerKind::kRelu:
    case LayerKind::kGelu:
    case LayerKind::kCrossEntropy:
    case LayerKind::kMse: {
      Json l{{"name", "x"}, {"op", op}};
      if (!IsLoss(kind)) MaybeRepeat(d, l);
      if (kind != LayerKind::kCrossEntropy || d.Coin()) {
        return {Doc(FeatureInput(d, w), Json::array({l})), 0};
      }
      // Logits of a token model: embedding, head, loss.
      const Json input = TokenInput(d, &seq);
      const int64_t vocab = d.Int(1, 20);
      const Json head{{"name", "head"}, {"op", "linear"}, {"in", w}, {"out", vocab}};
      return {Doc(input, Json::array({Embedding(d, seq, vocab, w), head, l})), 2};
    }
    case LayerKind::kLayerNorm:
    case LayerKind::kRmsNorm: {
      Json n{{"name", "norm"}, {"op", op}, {"hidden", w}};
      MaybeRepeat(d, n);
      return {Doc(FeatureInput(d, w), Json::array({n})), 0};
    }
    case LayerKind::kTransformerBlock: {
      const bool rotary = d.Coin();
      const int64_t kv_heads = d.Int(1, 2);
      const int64_t heads = kv_heads * d.Int(1, 2);
      const int64_t head_dim = rotary ? 2 * d.Int(1, 2) : d.Int(1, 4);
      // A head size of its own (q wider or narrower than hidden) a quarter of the time.
      const bool own_head_dim = d.Int(0, 3) == 0;
      const int64_t hidden = own_head_dim ? d.Int(1, 9) : heads * head_dim;
      Json b{{"name", "block"}, {"op", op}, {"hidden", hidden}, {"heads", heads}};
      if (kv_heads != heads) b["kv_heads"] = kv_heads;
      if (hidden != heads * head_dim) b["head_dim"] = head_dim;
      // A mixture of experts a quarter of the time (with shared experts half of those).
      if (d.Int(0, 3) == 0) {
        const int64_t experts = d.Int(1, 4);
        b["experts"] = experts;
        b["top_k"] = d.Int(1, experts);
        b["expert_ffn"] = d.Int(1, 6);
        if (d.Coin()) {
          b["shared_experts"] = d.Int(1, 2);
          b["shared_ffn"] = d.Int(1, 6);
        }
      } else {
        b["ffn"] = d.Int(1, 9);
      }
      d.Maybe(b, "norm", std::string(d.Coin() ? "rmsnorm" : "layernorm"), std::string("layernorm"));
      static const char* const kMlps[] = {"gelu", "relu2", "swiglu", "geglu"};
      d.Maybe(b, "mlp", std::string(kMlps[d.Int(0, 3)]), std::string("gelu"));
      const bool bias = d.Coin();
      d.Maybe(b, "bias", bias, true);
      if (d.Int(0, 3) == 0) b["qkv_bias"] = !bias;
      if (d.Int(0, 5) == 0) b["qk_norm"] = true;
      if (d.Int(0, 5) == 0) b["dropout"] = 0.1;
      d.Maybe(b, "causal", d.Coin(), false);
      // A sliding window (causal blocks only), shorter or longer than the sequence (1 to 6).
      if (b.value("causal", false) && d.Int(0, 3) == 0) b["window"] = d.Int(1, 7);
      d.Maybe(b, "rotary", rotary, false);
      // Multi-latent attention a fifth of the time: every head its own k and v, no q, k or v
      // biases or q/k norms, a rotated part of each q/k head shorter than it (even when
      // rotated), a v head of its own half of those.
      if (d.Int(0, 4) == 0) {
        b.erase("kv_heads");
        b.erase("qk_norm");
        if (b.value("bias", true)) {
          b["qkv_bias"] = false;
        } else {
          b.erase("qkv_bias");  // false with bias false, its default
        }
        b["kv_lora"] = d.Int(1, 4);
        if (d.Coin()) b["q_lora"] = d.Int(1, 4);
        const int64_t rope = rotary ? 2 * d.Int(0, (head_dim - 1) / 2) : d.Int(0, head_dim - 1);
        if (rope > 0) b["rope_dim"] = rope;  // (fields at their defaults are not written back)
        const int64_t v_head_dim = d.Int(1, 4);
        if (v_head_dim != head_dim) b["v_head_dim"] = v_head_dim;
      }
      MaybeRepeat(d, b);
      const Json input = TokenInput(d, &seq);
      return {Doc(input, Json::array({Embedding(d, seq, d.Int(1, 20), hidden), b})), 1};
    }
  }
  return {};
}

}  // namespace pp::testing
