// The shipped model files: each loads, each one's parameter count matches the number its
// authors published, and the deliberately uneven model really is uneven under the analytic
// cost model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/profile.h"
#include "profiler/analytic.h"
#include "profiler/device_table.h"

namespace pp {
namespace {

std::string ModelPath(const std::string& name) {
  return std::string(PP_SOURCE_DIR) + "/models/" + name + ".json";
}

Model LoadOrFail(const std::string& name) {
  Result<Model> m = LoadModel(ModelPath(name));
  if (!m.ok()) {
    ADD_FAILURE() << m.message();
    return Model();
  }
  return std::move(m).value();
}

TEST(ModelsTest, EveryFileLoads) {
  const std::vector<std::string> expected = {
      "mlp-2gpu",        "gpt2-small",     "gpt2-medium",   "gpt2-large",   "gpt2-xl",
      "bert-large",      "llama-7b",       "llama2-13b",    "llama2-70b",   "uneven-vocab",
      "llama3-8b",       "llama3-70b",     "llama3.1-405b", "mixtral-8x7b", "qwen3-30b-a3b",
      "qwen3-235b-a22b", "nemotron4-340b", "gemma-7b"};
  std::vector<std::string> found;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(PP_SOURCE_DIR) + "/models")) {
    if (!entry.is_regular_file() || entry.path().extension() != ".json") continue;
    const std::string stem = entry.path().stem().string();
    found.push_back(stem);
    Result<Model> m = LoadModel(entry.path().string());
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_EQ(m->name, stem) << "a model's name should match its file name";
    EXPECT_FALSE(m->source.empty()) << stem << " should name its source";
  }
  for (const std::string& name : expected) {
    EXPECT_NE(std::find(found.begin(), found.end(), name), found.end()) << name << ".json";
  }
}

struct Published {
  const char* model;
  int64_t params;
  bool exact;  // the file reproduces the published architecture exactly
};

TEST(ModelsTest, ParameterCountsMatchPublishedNumbers) {
  const Published kPublished[] = {
      // num_parameters() of the Hugging Face gpt2, gpt2-medium, gpt2-large and gpt2-xl
      // checkpoints (GPT2LMHeadModel, output head tied to the token embedding).
      {"gpt2-small", 124439808, true},
      {"gpt2-medium", 354823168, true},
      {"gpt2-large", 774030080, true},
      {"gpt2-xl", 1557611200, true},
      // num_parameters() of Hugging Face meta-llama/Llama-2-7b (the LLaMA paper's "6.7B").
      {"llama-7b", 6738415616, false /* checked exactly below */},
      // BertModel from bert-large-uncased: 335,141,888. It holds a pooler (1024 x 1024 + 1024)
      // that masked-LM training does not use and lacks the MLM head (transform, norm and
      // output bias) that ours has, so the two agree to within 0.01%, not exactly.
      {"bert-large", 335141888, false},
      // The totals of Hugging Face meta-llama/Llama-2-13b-hf and Llama-2-70b-hf's safetensors
      // (the Llama 2 paper's "13B" and "70B"; 70B with grouped-query attention, 8 key/value
      // heads).
      {"llama2-13b", 13015864320, true},
      {"llama2-70b", 68976648192, true},
      // PyTorch nn.Linear(1024, 2048) + nn.Linear(2048, 1024): 1024*2048 + 2048 + 2048*1024
      // + 1024.
      {"mlp-2gpu", 4197376, true},
      // The parameter counts Hugging Face lists for meta-llama/Meta-Llama-3-8B (8.03B),
      // meta-llama/Meta-Llama-3-70B (70.6B) and meta-llama/Llama-3.1-405B (406B), exactly:
      // the sums of their safetensors shapes (grouped-query attention with 8 key/value heads,
      // untied output heads).
      {"llama3-8b", 8030261248, true},
      {"llama3-70b", 70553706496, true},
      {"llama3.1-405b", 405853388800, true},
      // mistralai/Mixtral-8x7B-v0.1's safetensors total (Jiang et al. 2024: "47B").
      {"mixtral-8x7b", 46702792704, true},
      // Qwen/Qwen3-30B-A3B's safetensors total, 30.5B in the Qwen3 report (q/k norms and the
      // 128 experts of every layer counted).
      {"qwen3-30b-a3b", 30532122624, true},
      // Qwen/Qwen3-235B-A22B: "235B in total" (its model card and the Qwen3 report).
      {"qwen3-235b-a22b", 235000000000, false},
  };
  for (const Published& p : kPublished) {
    const Model m = LoadOrFail(p.model);
    const double count = static_cast<double>(ModelParamCount(m));
    EXPECT_NEAR(count, static_cast<double>(p.params), 0.01 * static_cast<double>(p.params))
        << p.model;
    if (p.exact) {
      EXPECT_EQ(ModelParamCount(m), p.params) << p.model;
    }
  }
  EXPECT_EQ(ModelParamCount(LoadOrFail("llama-7b")), int64_t{6738415616});
}

// deepseek-ai/DeepSeek-V3: "671B total parameters" in the DeepSeek-V3 Technical Report for
// the main model, and its model card's 14B for the multi-token prediction module's weights as
// the checkpoint stores them: its block, eh_proj and norms, with a copy of the embedding's
// table and of the output head (the model counts both once, at the embedding and the head).
TEST(ModelsTest, DeepSeekV3CountsAsPublished) {
  const Model m = LoadOrFail("deepseek-v3");
  int64_t main = 0, module = 0, head = 0;
  for (const Layer& l : m.layers) {
    (l.mtp ? module : main) += LayerParamCount(l);
    if (l.name == "lm_head") head = LayerParamCount(l);
  }
  EXPECT_NEAR(static_cast<double>(main), 671e9, 0.5e9);
  EXPECT_NEAR(static_cast<double>(module + head), 14e9, 0.6e9);
  EXPECT_EQ(ModelParamCount(m), main + module - TiedParamCount(m.layers[m.layers.size() - 3], {}));
  EXPECT_TRUE(m.layers[m.layers.size() - 3].mtp);
}

// The Nemotron-4 340B report gives the model's size as 9.4 billion embedding and 331.6 billion
// non-embedding parameters, to a tenth of a billion (the untied input and output embeddings
// are the embedding parameters).
TEST(ModelsTest, NemotronCountsMatchTheReports) {
  struct Case {
    const char* model;
    double embedding, rest;  // billions, as published
  } cases[] = {{"nemotron4-340b", 9.4, 331.6}};
  for (const Case& c : cases) {
    const Model m = LoadOrFail(c.model);
    double embedding = 0, rest = 0;
    for (const Layer& l : m.layers) {
      const double n = static_cast<double>(LayerParamCount(l));
      (l.name == "embed" || l.name == "lm_head" ? embedding : rest) += n;
    }
    EXPECT_NEAR(embedding / 1e9, c.embedding, 0.05) << c.model;
    EXPECT_NEAR(rest / 1e9, c.rest, 0.05) << c.model;
    EXPECT_EQ(embedding + rest, static_cast<double>(ModelParamCount(m))) << c.model;
  }
}

// The Gemma report (Gemma Team 2024, Table 2) gives 7B's non-embedding parameters exactly,
// 7,751,248,896, and its embedding parameters for a table of 256,128 rows, 786,825,216; the
// released vocabulary has 256,000, 3072 x 256,000 parameters, which the tied head shares.
TEST(ModelsTest, GemmaCountsMatchTheReport) {
  const Model m = LoadOrFail("gemma-7b");
  int64_t embedding = 0, rest = 0;
  for (const Layer& l : m.layers) {
    if (l.name == "lm_head") continue;  // tied: the embedding's table
    (l.name == "embed" ? embedding : rest) += LayerParamCount(l);
  }
  EXPECT_EQ(rest, int64_t{7751248896});
  EXPECT_EQ(embedding, int64_t{786825216} / 256128 * 256000);
  EXPECT_EQ(ModelParamCount(m), embedding + rest);
}

// Parameters a token touches: every expert counted once per layer for top_k of them, the
// rest whole. Qwen3-30B-A3B's "3.3B activated" (the Qwen3 report) is 3,353,032,704 from its
// config; Mixtral's "13B active" likewise, worked here from the config values alone.
TEST(ModelsTest, ActiveParametersOfTheMixturesOfExperts) {
  struct Case {
    const char* model;
    int64_t layers, hidden, expert_ffn, experts, top_k;
    int64_t active;  // the closed form from the config values, below
  } cases[] = {
      // 48 x (attention 2048 x (4096 + 2 x 512) + 4096 x 2048 + q/k norms 256 + norms 4096 +
      // router 2048 x 128 + 8 x 3 x 2048 x 768) + embedding and head 2 x 151936 x 2048 + 2048.
      {"qwen3-30b-a3b", 48, 2048, 768, 128, 8,
       int64_t{48} * (2048 * 5120 + 4096 * 2048 + 256 + 4096 + 2048 * 128 + 8 * 3 * 2048 * 768) +
           2 * 151936 * 2048 + 2048},
      // 32 x (attention 4096 x (4096 + 2 x 1024) + 4096 x 4096 + norms 8192 + router
      // 4096 x 8 + 2 x 3 x 4096 x 14336) + 2 x 32000 x 4096 + 4096.
      {"mixtral-8x7b", 32, 4096, 14336, 8, 2,
       int64_t{32} * (4096 * 6144 + 4096 * 4096 + 8192 + 4096 * 8 + 2 * 3 * 4096 * 14336) +
           2 * 32000 * 4096 + 4096},
      // 94 x (attention 4096 x (8192 + 2 x 512) + 8192 x 4096 + q/k norms 256 + norms 8192 +
      // router 4096 x 128 + 8 x 3 x 4096 x 1536) + 2 x 151936 x 4096 + 4096: the report's
      // "22B activated".
      {"qwen3-235b-a22b", 94, 4096, 1536, 128, 8,
       int64_t{94} * (4096 * 9216 + 8192 * 4096 + 256 + 8192 + 4096 * 128 +
                      8 * 3 * 4096 * 1536) +
           2 * 151936 * 4096 + 4096},
  };
  for (const Case& c : cases) {
    const Model m = LoadOrFail(c.model);
    const int64_t expert = 3 * c.hidden * c.expert_ffn;  // one swiglu expert
    const int64_t inactive = c.layers * (c.experts - c.top_k) * expert;
    EXPECT_EQ(ModelParamCount(m) - inactive, c.active) << c.model;
  }
  EXPECT_EQ(int64_t{48} * (2048 * 5120 + 4096 * 2048 + 256 + 4096 + 2048 * 128 +
                           8 * 3 * 2048 * 768) +
                2 * 151936 * 2048 + 2048,
            int64_t{3353032704});
}

TEST(ModelsTest, Gpt2HeadIsTiedToTheEmbedding) {
  const Model m = LoadOrFail("gpt2-small");
  ASSERT_FALSE(m.layers.empty());
  const Layer& head = m.layers[m.layers.size() - 2];
  ASSERT_EQ(head.name, "lm_head");
  EXPECT_EQ(head.tied_to, "embed");
  // A stage holding the head keeps its own copy of the 768 x 50257 matrix...
  EXPECT_EQ(LayerParamCount(head), int64_t{768} * 50257);
  // ...but the model owns that matrix once.
  int64_t sum = 0;
  for (const Layer& l : m.layers) sum += LayerParamCount(l);
  EXPECT_EQ(ModelParamCount(m), sum - int64_t{768} * 50257);
}

// The largest stage forward + backward time when stage k holds layers
// [starts[k], starts[k+1]).
double MaxStageMs(const std::vector<double>& layer_ms, const std::vector<size_t>& starts) {
  double worst = 0;
  for (size_t k = 0; k < starts.size(); ++k) {
    const size_t end = k + 1 < starts.size() ? starts[k + 1] : layer_ms.size();
    double ms = 0;
    for (size_t i = starts[k]; i < end; ++i) ms += layer_ms[i];
    worst = std::max(worst, ms);
  }
  return worst;
}

// The smallest MaxStageMs over every split into `stages` non-empty contiguous stages,
// by trying them all.
double BestMaxStageMs(const std::vector<double>& layer_ms, size_t stages) {
  double best = -1;
  std::vector<size_t> starts = {0};
  auto search = [&](auto&& self, size_t next) -> void {
    if (starts.size() == stages) {
      const double ms = MaxStageMs(layer_ms, starts);
      if (best < 0 || ms < best) best = ms;
      return;
    }
    const size_t left = stages - starts.size();  // stages still to open
    for (size_t s = next; s + left <= layer_ms.size(); ++s) {
      starts.push_back(s);
      self(self, s + 1);
      starts.pop_back();
    }
  };
  search(search, 1);
  return best;
}

// max stage time of the equal-layer-count split and of the best split, on an H100.
std::pair<double, double> UniformAndBest(const std::string& name, size_t stages) {
  const Model m = LoadOrFail(name);
  Result<Profile> p = AnalyticProfile(m, *FindDevice("h100"), AnalyticOptions());
  if (!p.ok()) {
    ADD_FAILURE() << p.message();
    return {0, 0};
  }
  std::vector<double> layer_ms;
  for (const LayerProfile& l : p->layers) layer_ms.push_back(l.forward_ms + l.backward_ms);
  EXPECT_EQ(layer_ms.size() % stages, 0u) << name << ": the test wants equal layer counts";
  std::vector<size_t> starts;
  for (size_t k = 0; k < stages; ++k) starts.push_back(k * layer_ms.size() / stages);
  return {MaxStageMs(layer_ms, starts), BestMaxStageMs(layer_ms, stages)};
}

TEST(ModelsTest, UnevenModelSplitsBadlyByLayerCount) {
  const auto [uniform, best] = UniformAndBest("uneven-vocab", 4);
  ASSERT_GT(best, 0);
  // The head and the loss over a 256000-word vocabulary land in the last stage together
  // with ordinary blocks; the best split gives them a stage of their own.
  EXPECT_GE(uniform, 1.3 * best) << "uniform " << uniform << " ms, best " << best << " ms";
}

TEST(ModelsTest, GptSplitsWellByLayerCount) {
  // The control: GPT-2 XL's head is worth a few blocks among 48, so equal layer counts come
  // close to the best split (which shows the check above is about the model, not the test).
  const auto [uniform, best] = UniformAndBest("gpt2-xl", 4);
  ASSERT_GT(best, 0);
  EXPECT_LT(uniform, 1.1 * best) << "uniform " << uniform << " ms, best " << best << " ms";
}

}  // namespace
}  // namespace pp
