// The GPT models of the published runs the benches compare against (sc21_bench,
// megatron_h100_bench): GPT-3's architecture at a given depth and width (MLP 4h with GeLU,
// layer norm, biases, learned positions, causal attention), bf16.
#pragma once

#include <cstdint>
#include <string>

#include "core/json_util.h"
#include "core/model.h"

namespace pp {

struct GptShape {
  std::string name;
  int64_t layers = 0, hidden = 0, heads = 0;
  int64_t vocab = 51200, seq_len = 2048;
  bool tied_output = true;  // the output layer shares the embedding's weights
  double dropout = 0.1;
};

inline Result<Model> GptModel(const GptShape& g) {
  Json head = {
      {"name", "lm_head"}, {"op", "linear"}, {"in", g.hidden}, {"out", g.vocab}, {"bias", false}};
  if (g.tied_output) head["tied_to"] = "embed";
  const Json doc = {
      {"format", "pp-partition.model/v1"},
      {"name", g.name},
      {"dtype", "bf16"},
      {"input", {{"micro_batch_size", 1}, {"seq_len", g.seq_len}}},
      {"layers", Json::array({Json{{"name", "embed"},
                                   {"op", "embedding"},
                                   {"vocab", g.vocab},
                                   {"hidden", g.hidden},
                                   {"positions", g.seq_len}},
                              Json{{"name", "block"},
                                   {"op", "transformer_block"},
                                   {"hidden", g.hidden},
                                   {"heads", g.heads},
                                   {"ffn", 4 * g.hidden},
                                   {"norm", "layernorm"},
                                   {"mlp", "gelu"},
                                   {"bias", true},
                                   {"causal", true},
                                   {"rotary", false},
                                   {"dropout", g.dropout},
                                   {"repeat", g.layers}},
                              Json{{"name", "ln_f"}, {"op", "layernorm"}, {"hidden", g.hidden}},
                              head, Json{{"name", "loss"}, {"op", "cross_entropy"}}})}};
  return ModelFromJson(doc);
}

}  // namespace pp
