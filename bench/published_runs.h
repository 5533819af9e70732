// What the benches against published Megatron-LM runs share (sc21_bench,
// megatron_h100_bench): the runs' GPT models, GPT-3's architecture at a given depth and width
// (MLP 4h with GeLU, layer norm, biases, learned positions, causal attention), bf16; and the
// schedule levers Megatron-LM gave them.
#pragma once

#include <cstdint>
#include <string>

#include "core/json_util.h"
#include "core/model.h"
#include "partitioner/layout_search.h"

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

// Megatron-LM's schedules at pipeline depth `pp` for `layers` transformer blocks split evenly:
// 1F1B, and the interleaved schedule from `min_interleaved_pp` stages on with a chunk count V
// from 2 to 8 (the tool's own list spans that) that divides each stage's blocks.
inline void MegatronScheduleLevers(int64_t layers, int pp, int min_interleaved_pp,
                                   LeverSpace* space) {
  space->virtual_stages.clear();
  for (int v = 2; pp >= min_interleaved_pp && v <= 8; ++v) {
    if ((layers / pp) % v == 0) space->virtual_stages.push_back(v);
  }
  space->schedules = {"1f1b"};
  if (!space->virtual_stages.empty()) space->schedules.push_back("interleaved");
}

}  // namespace pp
