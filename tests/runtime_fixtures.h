// Models, splits and options shared by the runtime tests (runtime_test.cc on the CPU,
// cuda_runtime_test.cc on a GPU), so both check the same cases.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/json_util.h"
#include "core/model.h"
#include "executor/runtime.h"

namespace pp::testing {

inline Model ParseModel(const char* text) {
  Result<Model> m = ModelFromJson(Json::parse(text));
  EXPECT_TRUE(m.ok()) << m.message();
  return *m;
}

// Embedding, two causal blocks, final norm, head, cross-entropy: every token-model op.
inline Model TokenModel() {
  return ParseModel(R"({"format": "pp-partition.model/v1", "name": "rt", "dtype": "fp32",
      "input": {"micro_batch_size": 2, "seq_len": 8},
      "layers": [
        {"name": "embed", "op": "embedding", "vocab": 13, "hidden": 16, "positions": 8},
        {"name": "block", "op": "transformer_block", "hidden": 16, "heads": 2, "ffn": 24,
         "causal": true, "repeat": 2},
        {"name": "ln_f", "op": "layernorm", "hidden": 16},
        {"name": "lm_head", "op": "linear", "in": 16, "out": 13, "bias": false},
        {"name": "loss", "op": "cross_entropy"}]})");
}

// Linear, GELU, linear, MSE: a feature model.
inline Model FeatureModel() {
  return ParseModel(R"({"format": "pp-partition.model/v1", "name": "mlp", "dtype": "fp32",
      "input": {"micro_batch_size": 4, "features": 6},
      "layers": [{"name": "fc1", "op": "linear", "in": 6, "out": 10}, {"name": "act", "op": "gelu"},
                 {"name": "fc2", "op": "linear", "in": 10, "out": 5}, {"name": "loss", "op": "mse"}]})");
}

// `layers` cut into `p` contiguous chunks of equal counts (the first ones one larger).
inline std::vector<ChunkRange> EvenChunks(int layers, int p) {
  std::vector<ChunkRange> chunks;
  int first = 0;
  for (int s = 0; s < p; ++s) {
    const int count = layers / p + (s < layers % p ? 1 : 0);
    chunks.push_back({first, first + count - 1});
    first += count;
  }
  return chunks;
}

// One step, no warm-up, no optimizer, gradients kept: what the gradient checks compare.
inline RunOptions GradientOptions() {
  RunOptions o;
  o.steps = 1;
  o.warmup_steps = 0;
  o.optimizer = false;
  o.keep_gradients = true;
  o.seed = 7;
  o.timeout_s = 30;
  return o;
}

// ||got - want|| / ||want|| over all layers' gradients; infinity when the shapes differ.
inline double GradientRelativeError(const std::vector<std::vector<float>>& got,
                                    const std::vector<std::vector<float>>& want) {
  if (got.size() != want.size()) return INFINITY;
  double diff = 0, norm = 0;
  for (size_t l = 0; l < want.size(); ++l) {
    if (got[l].size() != want[l].size()) return INFINITY;
    for (size_t i = 0; i < want[l].size(); ++i) {
      diff += std::pow(static_cast<double>(got[l][i]) - want[l][i], 2);
      norm += std::pow(static_cast<double>(want[l][i]), 2);
    }
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace pp::testing
