// Models, splits and options shared by the runtime tests (runtime_test.cc on the CPU,
// cuda_runtime_test.cc on a GPU), so both check the same cases.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/json_util.h"
#include "core/model.h"
#include "executor/runtime.h"
#include "executor/synthetic_data.h"
#include "layers/layer.h"

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

// The token model with its head tied to the embedding's table (GPT-2's output layer).
inline Model TiedTokenModel() {
  Model m = TokenModel();
  m.name = "rt-tied";
  for (Layer& l : m.layers) {
    if (l.name == "lm_head") l.tied_to = "embed";
  }
  return m;
}

// For each linear tied to an embedding: the embedding's index, and the shared weight's
// shape (the embedding's first vocab x hidden parameters; the linear's first hidden x vocab).
struct Tie {
  size_t embedding = 0, linear = 0;
  int64_t vocab = 0, hidden = 0;
};
inline std::vector<Tie> TiesOf(const Model& model) {
  std::vector<Tie> ties;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    if (model.layers[i].tied_to.empty()) continue;
    for (size_t e = 0; e < model.layers.size(); ++e) {
      if (model.layers[e].name == model.layers[i].tied_to) {
        ties.push_back({e, i, model.layers[e].vocab, model.layers[e].hidden});
      }
    }
  }
  return ties;
}

// Linear, GELU, linear, MSE: a feature model.
inline Model FeatureModel() {
  return ParseModel(R"({"format": "pp-partition.model/v1", "name": "mlp", "dtype": "fp32",
      "input": {"micro_batch_size": 4, "features": 6},
      "layers": [{"name": "fc1", "op": "linear", "in": 6, "out": 10}, {"name": "act", "op": "gelu"},
                 {"name": "fc2", "op": "linear", "in": 10, "out": 5}, {"name": "loss", "op": "mse"}]})");
}

// Five linears with GELUs between them and an MSE loss: ten layers, enough for 2 chunks on
// each of 4 devices (interleaved, zbv).
inline Model DeepFeatureModel() {
  return ParseModel(R"({"format": "pp-partition.model/v1", "name": "deep-mlp", "dtype": "fp32",
      "input": {"micro_batch_size": 4, "features": 6},
      "layers": [{"name": "fc1", "op": "linear", "in": 6, "out": 12}, {"name": "a1", "op": "gelu"},
                 {"name": "fc2", "op": "linear", "in": 12, "out": 10}, {"name": "a2", "op": "gelu"},
                 {"name": "fc3", "op": "linear", "in": 10, "out": 12}, {"name": "a3", "op": "gelu"},
                 {"name": "fc4", "op": "linear", "in": 12, "out": 8}, {"name": "a4", "op": "gelu"},
                 {"name": "fc5", "op": "linear", "in": 8, "out": 5}, {"name": "loss", "op": "mse"}]})");
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

struct Reference {
  double loss = 0;
  std::vector<std::vector<float>> gradients;
};

// A plain loop: for each micro-batch of step 0, forward through every layer, then backward,
// gradients accumulated with the loss weighted 1/m. Shares only the layers and the data with the
// runtime. A tied linear's weight is the embedding's table, transposed: it starts so, and both
// layers' gradients of it are the sum of the two.
inline Reference Sequential(const Model& model, int m, uint64_t seed) {
  Reference ref;
  const int64_t vocab = model.layers.front().op == LayerKind::kEmbedding ? model.layers.front().vocab : 1;
  const SyntheticData data(model.input, vocab, model.layers.back().in_width, seed);
  std::vector<std::unique_ptr<CpuLayer<float>>> layers;
  std::vector<std::vector<float>> params, saved, pending;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    layers.push_back(std::move(*MakeCpuLayer<float>(model.layers[i], model.input)));
    params.emplace_back(layers.back()->param_count());
    layers.back()->Init(params.back().data(), seed * 1000003ULL + i);
    ref.gradients.emplace_back(layers.back()->param_count(), 0.0f);
    saved.emplace_back(layers.back()->saved_count());
    pending.emplace_back(layers.back()->pending_count() + 1);
  }
  const std::vector<Tie> ties = TiesOf(model);
  for (const Tie& t : ties) {
    for (int64_t v = 0; v < t.vocab; ++v) {
      for (int64_t i = 0; i < t.hidden; ++i) {
        params[t.linear][i * t.vocab + v] = params[t.embedding][v * t.hidden + i];
      }
    }
  }
  const int64_t rows = model.input.rows();
  std::vector<int32_t> tokens(rows), labels(rows);
  std::vector<float> features(rows * std::max<int64_t>(model.input.features, 1)),
      targets(rows * model.layers.back().in_width);
  for (int mb = 0; mb < m; ++mb) {
    if (model.input.tokens()) data.Tokens(0, mb, tokens.data(), labels.data());
    else data.Features(0, mb, features.data(), targets.data());
    const MicroBatch batch{tokens.data(), labels.data(), targets.data()};
    std::vector<std::vector<float>> acts(model.layers.size() + 1);
    acts[0] = features;
    for (size_t i = 0; i < layers.size(); ++i) {
      std::vector<float> work(layers[i]->workspace_count() + 1);
      acts[i + 1].resize(layers[i]->output_count());
      layers[i]->Forward(params[i].data(), acts[i].data(), batch, acts[i + 1].data(),
                         saved[i].data(), work.data());
    }
    ref.loss += acts.back()[0] / m;
    std::vector<float> dy = {1.0f / static_cast<float>(m)};
    for (int i = static_cast<int>(layers.size()) - 1; i >= 0; --i) {
      std::vector<float> work(layers[i]->workspace_count() + 1), dx(acts[i].size());
      layers[i]->BackwardInput(params[i].data(), dy.data(), saved[i].data(), batch,
                               layers[i]->has_input_gradient() ? dx.data() : nullptr,
                               pending[i].data(), work.data());
      layers[i]->BackwardWeight(params[i].data(), dy.data(), saved[i].data(), pending[i].data(),
                                batch, ref.gradients[i].data(), work.data());
      dy = dx;
    }
  }
  for (const Tie& t : ties) {
    std::vector<float>& ge = ref.gradients[t.embedding];
    std::vector<float>& gw = ref.gradients[t.linear];
    for (int64_t v = 0; v < t.vocab; ++v) {
      for (int64_t i = 0; i < t.hidden; ++i) {
        const float sum = ge[v * t.hidden + i] + gw[i * t.vocab + v];
        ge[v * t.hidden + i] = sum;
        gw[i * t.vocab + v] = sum;
      }
    }
  }
  return ref;
}

}  // namespace pp::testing
