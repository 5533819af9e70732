// Importing Hugging Face configs: each family's config (written here from the published
// config.json values) gives the same expanded layer list as the hand-written model in
// models/, field by field.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/hf_import.h"
#include "core/model.h"
#include "tests/test_util.h"

namespace pp {
namespace {

Model Shipped(const std::string& file) {
  Result<Model> m = LoadModel(std::string(PP_SOURCE_DIR) + "/models/" + file);
  EXPECT_TRUE(m.ok()) << m.message();
  return *m;
}

void ExpectSameLayers(const Model& got, const Model& want) {
  ASSERT_EQ(got.layers.size(), want.layers.size());
  for (size_t i = 0; i < want.layers.size(); ++i) {
    const Layer& a = got.layers[i];
    const Layer& b = want.layers[i];
    SCOPED_TRACE("layer " + std::to_string(i) + " " + b.name);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.op, b.op);
    EXPECT_EQ(a.vocab, b.vocab);
    EXPECT_EQ(a.hidden, b.hidden);
    EXPECT_EQ(a.positions, b.positions);
    EXPECT_EQ(a.token_types, b.token_types);
    EXPECT_EQ(a.in, b.in);
    EXPECT_EQ(a.out, b.out);
    EXPECT_EQ(a.heads, b.heads);
    EXPECT_EQ(a.ffn, b.ffn);
    EXPECT_EQ(a.bias, b.bias);
    EXPECT_EQ(a.kv_heads, b.kv_heads);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.qkv_bias, b.qkv_bias);
    EXPECT_EQ(a.qk_norm, b.qk_norm);
    EXPECT_EQ(a.experts, b.experts);
    EXPECT_EQ(a.top_k, b.top_k);
    EXPECT_EQ(a.expert_ffn, b.expert_ffn);
    EXPECT_EQ(a.shared_experts, b.shared_experts);
    EXPECT_EQ(a.shared_ffn, b.shared_ffn);
    EXPECT_EQ(a.norm, b.norm);
    EXPECT_EQ(a.mlp, b.mlp);
    EXPECT_EQ(a.causal, b.causal);
    EXPECT_EQ(a.rotary, b.rotary);
    EXPECT_EQ(a.tied_to, b.tied_to);
    EXPECT_EQ(a.in_width, b.in_width);
    EXPECT_EQ(a.out_width, b.out_width);
    EXPECT_TRUE(a.ShapeFields() == b.ShapeFields());  // and every other field of its shape
  }
  EXPECT_EQ(ModelParamCount(got), ModelParamCount(want));
  EXPECT_EQ(got.dtype, want.dtype);
}

HfImportOptions SeqLen(int64_t seq_len) {
  HfImportOptions options;
  options.seq_len = seq_len;
  return options;
}

Model Import(const std::string& config, HfImportOptions options = {}) {
  Result<HfImport> r = ImportHfConfig(Json::parse(config), options);
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? r->model : Model{};
}

constexpr const char* kGpt2Xl = R"({
  "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
  "model_type": "gpt2", "n_ctx": 1024, "n_embd": 1600, "n_head": 25, "n_inner": null,
  "n_layer": 48, "n_positions": 1024, "vocab_size": 50257, "layer_norm_epsilon": 1e-05})";

TEST(HfImport, Gpt2MatchesTheShippedModels) {
  const Model xl = Import(kGpt2Xl);
  ExpectSameLayers(xl, Shipped("gpt2-xl.json"));
  EXPECT_EQ(xl.input.seq_len, 1024);
  EXPECT_EQ(xl.input.micro_batch_size, 8);
  EXPECT_EQ(xl.name, "gpt2");  // no _name_or_path: the model type
  const Model small = Import(R"({"model_type": "gpt2", "n_embd": 768, "n_head": 12,
      "n_layer": 12, "n_positions": 1024, "vocab_size": 50257,
      "_name_or_path": "openai-community/gpt2-small"})");
  ExpectSameLayers(small, Shipped("gpt2-small.json"));
  EXPECT_EQ(small.name, "gpt2-small");
}

TEST(HfImport, BertMatchesTheShippedModel) {
  const Model bert = Import(R"({
    "architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_act": "gelu",
    "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
    "intermediate_size": 4096, "max_position_embeddings": 512, "type_vocab_size": 2,
    "vocab_size": 30522, "layer_norm_eps": 1e-12})");
  ExpectSameLayers(bert, Shipped("bert-large.json"));
  EXPECT_EQ(bert.input.seq_len, 512);
}

TEST(HfImport, LlamaMatchesTheShippedModel) {
  HfImportOptions options;
  options.name = "llama-7b";
  const Model llama = Import(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 2048,
    "vocab_size": 32000, "rms_norm_eps": 1e-06, "tie_word_embeddings": false,
    "torch_dtype": "float16"})", options);
  const Model shipped = Shipped("llama-7b.json");
  ExpectSameLayers(llama, shipped);
  EXPECT_EQ(llama.name, "llama-7b");
  EXPECT_EQ(llama.input.seq_len, shipped.input.seq_len);
  EXPECT_EQ(llama.input.micro_batch_size, shipped.input.micro_batch_size);
}

TEST(HfImport, OptionsAndNotes) {
  HfImportOptions options;
  options.seq_len = 256;
  options.micro_batch_size = 3;
  const Model m = Import(kGpt2Xl, options);
  EXPECT_EQ(m.input.seq_len, 256);
  EXPECT_EQ(m.input.micro_batch_size, 3);
  // Grouped key/value heads are modelled: no note.
  Result<HfImport> gqa = ImportHfConfig(Json::parse(R"({"model_type": "llama",
      "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 2,
      "num_attention_heads": 8, "num_key_value_heads": 2, "max_position_embeddings": 128,
      "vocab_size": 1000})"), {});
  ASSERT_TRUE(gqa.ok()) << gqa.message();
  EXPECT_TRUE(gqa->notes.empty());
  EXPECT_EQ(gqa->model.layers[1].kv_heads, 2);
  // Mistral's sliding window shorter than the context becomes each block's window; Qwen's,
  // which covers only some layers, a note.
  Result<HfImport> window = ImportHfConfig(Json::parse(R"({"model_type": "mistral",
      "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 2,
      "num_attention_heads": 8, "num_key_value_heads": 2, "max_position_embeddings": 8192,
      "sliding_window": 4096, "vocab_size": 1000})"), {});
  ASSERT_TRUE(window.ok()) << window.message();
  EXPECT_TRUE(window->notes.empty());
  EXPECT_EQ(window->model.layers[1].window, 4096);
  EXPECT_EQ(window->model.layers[2].window, 4096);
  Result<HfImport> qwen = ImportHfConfig(Json::parse(R"({"model_type": "qwen2",
      "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 2,
      "num_attention_heads": 8, "max_position_embeddings": 8192, "use_sliding_window": true,
      "sliding_window": 4096, "max_window_layers": 1, "vocab_size": 1000})"), {});
  ASSERT_TRUE(qwen.ok()) << qwen.message();
  ASSERT_EQ(qwen->notes.size(), 1u);
  EXPECT_NE(qwen->notes[0].find("sliding_window 4096"), std::string::npos);
  EXPECT_EQ(qwen->model.layers[1].window, 0);
}

// The published config.json values of each model (Hugging Face meta-llama/Meta-Llama-3-8B,
// meta-llama/Meta-Llama-3-70B, mistralai/Mixtral-8x7B-v0.1, Qwen/Qwen3-30B-A3B) import to the
// shipped models, whose parameter counts models_test checks against the published ones.
TEST(HfImport, Llama3MixtralAndQwen3MoeMatchTheShippedModels) {
  struct Case {
    const char* file;
    const char* config;
  } cases[] = {
      {"llama3-8b.json", R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
          "attention_bias": false, "hidden_act": "silu", "hidden_size": 4096,
          "intermediate_size": 14336, "max_position_embeddings": 8192,
          "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
          "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": false,
          "torch_dtype": "bfloat16", "vocab_size": 128256})"},
      {"llama3-70b.json", R"({"model_type": "llama", "hidden_act": "silu",
          "hidden_size": 8192, "intermediate_size": 28672, "max_position_embeddings": 8192,
          "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8,
          "rope_theta": 500000.0, "tie_word_embeddings": false, "vocab_size": 128256})"},
      {"mixtral-8x7b.json", R"({"architectures": ["MixtralForCausalLM"],
          "model_type": "mixtral", "hidden_act": "silu", "hidden_size": 4096,
          "intermediate_size": 14336, "max_position_embeddings": 32768,
          "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
          "num_key_value_heads": 8, "num_local_experts": 8, "rms_norm_eps": 1e-05,
          "rope_theta": 1000000.0, "sliding_window": null, "tie_word_embeddings": false,
          "torch_dtype": "bfloat16", "vocab_size": 32000})"},
      {"qwen3-30b-a3b.json", R"({"architectures": ["Qwen3MoeForCausalLM"],
          "model_type": "qwen3_moe", "attention_bias": false, "decoder_sparse_step": 1,
          "head_dim": 128, "hidden_act": "silu", "hidden_size": 2048,
          "intermediate_size": 6144, "max_position_embeddings": 40960, "mlp_only_layers": [],
          "moe_intermediate_size": 768, "norm_topk_prob": true, "num_attention_heads": 32,
          "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48,
          "num_key_value_heads": 4, "rope_theta": 1000000.0, "sliding_window": null,
          "tie_word_embeddings": false, "use_sliding_window": false,
          "torch_dtype": "bfloat16", "vocab_size": 151936})"},
      {"qwen3-235b-a22b.json", R"({"architectures": ["Qwen3MoeForCausalLM"],
          "model_type": "qwen3_moe", "attention_bias": false, "decoder_sparse_step": 1,
          "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
          "intermediate_size": 12288, "max_position_embeddings": 40960, "mlp_only_layers": [],
          "moe_intermediate_size": 1536, "norm_topk_prob": true, "num_attention_heads": 64,
          "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 94,
          "num_key_value_heads": 4, "rope_theta": 1000000.0, "sliding_window": null,
          "tie_word_embeddings": false, "use_sliding_window": false,
          "torch_dtype": "bfloat16", "vocab_size": 151936})"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    HfImportOptions options;
    options.seq_len = Shipped(c.file).input.seq_len;
    Result<HfImport> r = ImportHfConfig(Json::parse(c.config), options);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_TRUE(r->notes.empty()) << r->notes[0];
    ExpectSameLayers(r->model, Shipped(c.file));
  }
}

// Nemotron-4 340B as a Hugging Face NemotronConfig (the values of NeMo's Nemotron4Config340B
// under the names its exporter writes): layer norms, squared-ReLU MLPs, half of each head
// rotated, which the note reports.
TEST(HfImport, NemotronMatchesTheShippedModel) {
  HfImportOptions options;
  options.seq_len = 4096;
  Result<HfImport> r = ImportHfConfig(Json::parse(R"({"architectures": ["NemotronForCausalLM"],
      "model_type": "nemotron", "hidden_act": "relu2", "hidden_size": 18432,
      "intermediate_size": 73728, "num_hidden_layers": 96, "num_attention_heads": 96,
      "num_key_value_heads": 8, "max_position_embeddings": 4096, "norm_eps": 1e-05,
      "partial_rotary_factor": 0.5, "tie_word_embeddings": false, "attention_bias": false,
      "mlp_bias": false, "torch_dtype": "bfloat16", "vocab_size": 256000})"),
                                      options);
  ASSERT_TRUE(r.ok()) << r.message();
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("partial_rotary_factor 0.5"), std::string::npos) << r->notes[0];
  ExpectSameLayers(r->model, Shipped("nemotron4-340b.json"));
  EXPECT_EQ(r->model.layers[1].mlp, MlpKind::kRelu2);
  EXPECT_EQ(r->model.layers[1].norm, NormKind::kLayerNorm);

  // Its MLP is the ungated one, two h x f matrices, here with biases (mlp_bias) on them and
  // on the output projection, and attention_bias on q, k and v.
  const Model small = Import(R"({"model_type": "nemotron", "hidden_act": "relu2",
      "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1,
      "num_attention_heads": 4, "max_position_embeddings": 128, "vocab_size": 100,
      "attention_bias": true, "mlp_bias": true})");
  const Layer& b = small.layers[1];
  // Norms with gain and bias 4 x 64; qkv 64 x 192 + 192; o 64 x 64 + 64; fc1 64 x 96 + 96;
  // fc2 96 x 64 + 64.
  EXPECT_EQ(LayerParamCount(b),
            4 * 64 + (64 * 192 + 192) + (64 * 64 + 64) + (64 * 96 + 96) + (96 * 64 + 64));
}

// Gemma 7B's Hugging Face config: GeGLU MLPs, heads of 256, and a head tied to the
// embedding when the config does not say otherwise (GemmaConfig's default).
TEST(HfImport, GemmaMatchesTheShippedModel) {
  HfImportOptions options;
  options.seq_len = 8192;
  Result<HfImport> r = ImportHfConfig(Json::parse(R"({"architectures": ["GemmaForCausalLM"],
      "model_type": "gemma", "attention_bias": false, "head_dim": 256, "hidden_act": "gelu",
      "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 3072,
      "intermediate_size": 24576, "max_position_embeddings": 8192, "num_attention_heads": 16,
      "num_hidden_layers": 28, "num_key_value_heads": 16, "rms_norm_eps": 1e-06,
      "rope_theta": 10000.0, "torch_dtype": "bfloat16", "vocab_size": 256000})"),
                                      options);
  ASSERT_TRUE(r.ok()) << r.message();
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("sqrt(hidden_size)"), std::string::npos) << r->notes[0];
  ExpectSameLayers(r->model, Shipped("gemma-7b.json"));
  EXPECT_EQ(r->model.layers[1].mlp, MlpKind::kGeglu);
  // Untied when the config says so; Gemma 2B's one key/value head.
  const Model two = Import(R"({"model_type": "gemma", "hidden_size": 2048,
      "intermediate_size": 16384, "num_hidden_layers": 18, "num_attention_heads": 8,
      "num_key_value_heads": 1, "max_position_embeddings": 8192, "vocab_size": 256000,
      "tie_word_embeddings": false})");
  EXPECT_TRUE(two.layers[two.layers.size() - 2].tied_to.empty());
  EXPECT_EQ(two.layers[1].kv_heads, 1);
  EXPECT_EQ(two.layers[1].head_dim, 256);
}

// Qwen2 has biases on q, k and v and nowhere else; Qwen3 has a q/k norm and its own head
// size; a shared expert becomes one shared expert of its width. The counts are worked by
// hand from the configs.
TEST(HfImport, Qwen2BiasesQwen3HeadSizeAndSharedExperts) {
  const Model qwen2 = Import(R"({"model_type": "qwen2", "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "max_position_embeddings": 128, "vocab_size": 100,
      "tie_word_embeddings": true})");
  ASSERT_EQ(qwen2.layers.size(), 6u);
  const Layer& b2 = qwen2.layers[1];
  EXPECT_FALSE(b2.bias);
  EXPECT_TRUE(b2.qkv_bias);
  EXPECT_EQ(qwen2.layers[4].tied_to, "embed");
  // Per block: norms 2*64; q 64x64 + k, v 64x32 each with biases (64 + 2*32); o 64x64;
  // swiglu 3*64*96. Model: 2 blocks, embedding 100x64 (shared with the head), final norm 64.
  const int64_t block2 = 2 * 64 + (64 * 128 + 128) + 64 * 64 + 3 * 64 * 96;
  EXPECT_EQ(LayerParamCount(b2), block2);
  EXPECT_EQ(ModelParamCount(qwen2), 2 * block2 + 100 * 64 + 64);

  const Model qwen3 = Import(R"({"model_type": "qwen3", "hidden_size": 64, "head_dim": 32,
      "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4,
      "num_key_value_heads": 2, "max_position_embeddings": 128, "vocab_size": 100})");
  const Layer& b3 = qwen3.layers[1];
  EXPECT_EQ(b3.head_dim, 32);
  EXPECT_TRUE(b3.qk_norm);
  // q 64 x 128, k and v 64 x 64 each, o 128 x 64, q and k norms 32 each.
  EXPECT_EQ(LayerParamCount(b3), 2 * 64 + 64 * 256 + 128 * 64 + 2 * 32 + 3 * 64 * 96);

  const Model moe = Import(R"({"model_type": "qwen3_moe", "hidden_size": 64, "head_dim": 16,
      "intermediate_size": 512, "moe_intermediate_size": 16, "num_experts": 6,
      "num_experts_per_tok": 2, "shared_expert_intermediate_size": 40,
      "num_hidden_layers": 1, "num_attention_heads": 4, "max_position_embeddings": 128,
      "vocab_size": 100})");
  const Layer& bm = moe.layers[1];
  EXPECT_EQ(bm.experts, 6);
  EXPECT_EQ(bm.top_k, 2);
  EXPECT_EQ(bm.expert_ffn, 16);
  EXPECT_EQ(bm.shared_experts, 1);
  EXPECT_EQ(bm.shared_ffn, 40);
  // Attention 4 x 64 x 64 + q/k norms 2 x 16; router 64 x 6; 6 experts and the shared one.
  EXPECT_EQ(LayerParamCount(bm), 2 * 64 + 4 * 64 * 64 + 2 * 16 + 64 * 6 + 6 * 3 * 64 * 16 +
                                     3 * 64 * 40);
}

// Qwen1.5-MoE-A2.7B (its config.json as published): Qwen2's attention with biases on q, k
// and v, 60 experts of 1408 a token's 4, and a shared expert of 5632. The count is worked by
// hand, and is the model card's 14.3B parameters.
TEST(HfImport, Qwen2MoeCountsAsPublished) {
  Result<HfImport> r = ImportHfConfig(Json::parse(R"({"architectures": ["Qwen2MoeForCausalLM"],
      "model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632,
      "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
      "num_experts": 60, "num_experts_per_tok": 4, "norm_topk_prob": false,
      "decoder_sparse_step": 1, "mlp_only_layers": [], "num_hidden_layers": 24,
      "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 8192,
      "hidden_act": "silu", "vocab_size": 151936, "tie_word_embeddings": false,
      "use_sliding_window": false, "sliding_window": 32768, "torch_dtype": "bfloat16"})"),
                                      {});
  ASSERT_TRUE(r.ok()) << r.message();
  const Model& m = r->model;
  const Layer& block = m.layers[1];
  EXPECT_FALSE(block.bias);
  EXPECT_TRUE(block.qkv_bias);
  EXPECT_FALSE(block.qk_norm);
  EXPECT_EQ(block.experts, 60);
  EXPECT_EQ(block.top_k, 4);
  EXPECT_EQ(block.shared_ffn, 5632);
  // Norms 2 x 2048; q, k, v 2048 x 6144 with biases; o 2048 x 2048; router 2048 x 60; the
  // experts 60 x 3 x 2048 x 1408; the shared expert 3 x 2048 x 5632.
  const int64_t per_block = 2 * 2048 + (2048 * 6144 + 6144) + 2048 * 2048 + 2048 * 60 +
                            60 * 3 * 2048 * int64_t{1408} + 3 * 2048 * 5632;
  EXPECT_EQ(LayerParamCount(block), per_block);
  const int64_t total = 24 * per_block + 2 * 151936 * int64_t{2048} + 2048;
  EXPECT_EQ(ModelParamCount(m), total);
  EXPECT_NEAR(static_cast<double>(total), 14.3e9, 0.05e9);
  ASSERT_EQ(r->notes.size(), 1u);  // the shared expert's gate
  EXPECT_NE(r->notes[0].find("gate"), std::string::npos) << r->notes[0];
}

// Dense layers among the experts' become runs of dense blocks of intermediate_size: Qwen's
// decoder_sparse_step and mlp_only_layers (the experts on every second layer, and not on
// layer 1), and GLM's first_k_dense_replace.
TEST(HfImport, DenseLayersAmongTheExpertsBecomeRunsOfBlocks) {
  const Model qwen = Import(R"({"model_type": "qwen3_moe", "hidden_size": 64, "head_dim": 16,
      "intermediate_size": 96, "moe_intermediate_size": 16, "num_experts": 6,
      "num_experts_per_tok": 2, "decoder_sparse_step": 2, "mlp_only_layers": [1],
      "num_hidden_layers": 6, "num_attention_heads": 4, "max_position_embeddings": 128,
      "vocab_size": 100})");
  // Layers 0..5: dense, dense (mlp_only_layers), dense, experts, dense, experts.
  std::vector<std::string> names;
  std::vector<bool> experts;
  for (const Layer& l : qwen.layers) {
    if (l.op != LayerKind::kTransformerBlock) continue;
    names.push_back(l.name);
    experts.push_back(l.experts > 0);
    EXPECT_EQ(l.experts > 0 ? l.expert_ffn : l.ffn, l.experts > 0 ? 16 : 96) << l.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"dense_block.0", "dense_block.1", "dense_block.2",
                                             "moe_block.0", "dense_block_4.0", "moe_block_5.0"}));
  EXPECT_EQ(experts, (std::vector<bool>{false, false, false, true, false, true}));
  // All experts (the step 1, no list) keeps the shipped models' one "block".
  const Model all = Import(R"({"model_type": "qwen3_moe", "hidden_size": 64, "head_dim": 16,
      "moe_intermediate_size": 16, "num_experts": 6, "num_experts_per_tok": 2,
      "decoder_sparse_step": 1, "mlp_only_layers": [], "num_hidden_layers": 2,
      "num_attention_heads": 4, "max_position_embeddings": 128, "vocab_size": 100})");
  EXPECT_EQ(all.layers[1].name, "block.0");
  EXPECT_EQ(all.layers[2].name, "block.1");
}

// GLM-4.5-Air (its config as published): 46 layers, the first dense of 10944, then 128
// experts of 1408 a token's 8 and one shared expert of 1408; grouped-query attention with
// biases on q, k and v only. The count is worked by hand and, without its multi-token
// prediction block, is the model card's "106B total" (106.85B).
TEST(HfImport, Glm45AirCountsAsPublished) {
  Result<HfImport> r = ImportHfConfig(Json::parse(R"({"architectures": ["Glm4MoeForCausalLM"],
      "attention_bias": true, "attention_dropout": 0.0, "first_k_dense_replace": 1,
      "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 10944,
      "max_position_embeddings": 131072, "model_type": "glm4_moe",
      "moe_intermediate_size": 1408, "n_group": 1, "n_routed_experts": 128,
      "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 96,
      "num_experts_per_tok": 8, "num_hidden_layers": 46, "num_key_value_heads": 8,
      "num_nextn_predict_layers": 1, "partial_rotary_factor": 0.5, "rms_norm_eps": 1e-05,
      "rope_scaling": null, "rope_theta": 1000000, "routed_scaling_factor": 1.0,
      "tie_word_embeddings": false, "topk_group": 1, "torch_dtype": "bfloat16",
      "use_qk_norm": false, "vocab_size": 151552})"),
                                      {});
  ASSERT_TRUE(r.ok()) << r.message();
  const Model& m = r->model;
  ASSERT_EQ(m.layers.size(), 46u + 5u);
  const Layer& dense = m.layers[1];
  const Layer& moe = m.layers[2];
  EXPECT_EQ(dense.name, "dense_block.0");
  EXPECT_EQ(moe.name, "moe_block.0");
  EXPECT_EQ(dense.ffn, 10944);
  EXPECT_EQ(moe.experts, 128);
  EXPECT_EQ(moe.shared_experts, 1);
  EXPECT_EQ(moe.shared_ffn, 1408);
  EXPECT_FALSE(moe.bias);
  EXPECT_TRUE(moe.qkv_bias);
  EXPECT_FALSE(moe.qk_norm);
  EXPECT_EQ(moe.kv_heads, 8);
  EXPECT_EQ(moe.head_dim, 128);
  // Norms 2 x 4096; q 4096 x 12288 and k, v 4096 x 1024, with biases; o 12288 x 4096.
  const int64_t attention = 2 * 4096 + 4096 * int64_t{14336} + 14336 + 12288 * int64_t{4096};
  EXPECT_EQ(LayerParamCount(dense), attention + 3 * 4096 * int64_t{10944});
  // Router 4096 x 128; 128 experts and the shared one of 3 x 4096 x 1408.
  const int64_t experts = 4096 * 128 + 129 * 3 * 4096 * int64_t{1408};
  EXPECT_EQ(LayerParamCount(moe), attention + experts);
  const int64_t total =
      46 * attention + 3 * 4096 * int64_t{10944} + 45 * experts + 2 * 151552 * int64_t{4096} + 4096;
  EXPECT_NEAR(static_cast<double>(total), 106e9, 1e9);
  // num_nextn_predict_layers 1: one prediction block like the last (a MoE block) after the
  // norm, with its three norms and eh_proj (2 x 4096 -> 4096); its table is embed's.
  const Layer& mtp = m.layers[48];
  EXPECT_EQ(mtp.name, "mtp");
  EXPECT_TRUE(mtp.mtp);
  EXPECT_EQ(mtp.tied_to, "embed");
  EXPECT_EQ(mtp.experts, 128);
  EXPECT_EQ(m.layers[49].streams, 2);
  const int64_t module = attention + experts + 3 * 4096 + 2 * 4096 * int64_t{4096};
  EXPECT_EQ(ModelParamCount(m), total + module);
  // One note: half of each head rotated.
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("partial_rotary_factor"), std::string::npos) << r->notes[0];
}

// DeepSeek-V3 (its config.json as published): multi-latent attention on 61 layers, the first
// 3 dense of 18432, then 256 experts of 2048 a token's 8 and one shared expert, and one
// multi-token prediction module. The count is worked by hand and is the report's 671B
// without that module.
TEST(HfImport, DeepSeekV3CountsAsPublished) {
  Result<HfImport> r = ImportHfConfig(Json::parse(R"({"architectures": ["DeepseekV3ForCausalLM"],
      "attention_bias": false, "first_k_dense_replace": 3, "hidden_act": "silu",
      "hidden_size": 7168, "intermediate_size": 18432, "kv_lora_rank": 512,
      "max_position_embeddings": 163840, "model_type": "deepseek_v3",
      "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8,
      "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": true,
      "num_attention_heads": 128, "num_experts_per_tok": 8, "num_hidden_layers": 61,
      "num_key_value_heads": 128, "num_nextn_predict_layers": 1, "q_lora_rank": 1536,
      "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
      "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "tie_word_embeddings": false,
      "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16",
      "v_head_dim": 128, "vocab_size": 129280})"),
                                      SeqLen(4096));
  ASSERT_TRUE(r.ok()) << r.message();
  const Model& m = r->model;
  ExpectSameLayers(m, Shipped("deepseek-v3.json"));
  ASSERT_EQ(m.layers.size(), 61u + 5u);
  const Layer& dense = m.layers[1];
  const Layer& moe = m.layers[4];
  EXPECT_EQ(dense.name, "dense_block.0");
  EXPECT_EQ(moe.name, "moe_block.0");
  EXPECT_EQ(moe.kv_lora, 512);
  EXPECT_EQ(moe.q_lora, 1536);
  EXPECT_EQ(moe.rope_dim, 64);
  EXPECT_EQ(moe.head_dim, 192);
  EXPECT_EQ(moe.v_head_dim, 128);
  EXPECT_EQ(moe.kv_heads, 128);
  EXPECT_FALSE(moe.qkv_bias);
  // Norms 2 x 7168; q_down 7168 x 1536, its norm, q_up 1536 x 128 x 192; kv_down
  // 7168 x (512 + 64), its norm, kv_up 512 x 128 x (128 + 128); o 128 x 128 x 7168.
  const int64_t attention = 2 * 7168 + 7168 * 1536 + 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 +
                            512 * 128 * 256 + 128 * 128 * int64_t{7168};
  EXPECT_EQ(LayerParamCount(dense), attention + 3 * 7168 * int64_t{18432});
  // Router 7168 x 256; 256 experts and the shared one of 3 x 7168 x 2048.
  const int64_t experts = 7168 * 256 + 257 * 3 * 7168 * int64_t{2048};
  EXPECT_EQ(LayerParamCount(moe), attention + experts);
  const int64_t total = 61 * attention + 3 * 3 * 7168 * int64_t{18432} + 58 * experts +
                        2 * 129280 * int64_t{7168} + 7168;
  EXPECT_NEAR(static_cast<double>(total), 671e9, 1e9);
  const Layer& mtp = m.layers[63];
  EXPECT_TRUE(mtp.mtp);
  EXPECT_EQ(mtp.mtp_depth, 1);
  EXPECT_EQ(mtp.experts, 256);
  EXPECT_EQ(mtp.vocab, 129280);
  const int64_t module = attention + experts + 3 * 7168 + 2 * 7168 * int64_t{7168};
  EXPECT_EQ(ModelParamCount(m), total + module);
  EXPECT_TRUE(r->notes.empty()) << r->notes[0];
}

// --mtp-layers overrides the config's num_nextn_predict_layers: 0 leaves the module out
// (the model is then the config's blocks alone), 2 chains two, the head and loss over three
// streams; a family without multi-token prediction refuses it.
TEST(HfImport, MtpLayersOverrideTheConfig) {
  const std::string config = std::string(PP_SOURCE_DIR) + "/fuzz/seeds/hf_config/deepseek_v3.json";
  HfImportOptions options;
  Result<HfImport> one = ImportHfConfigFile(config, options);
  ASSERT_TRUE(one.ok()) << one.message();
  options.mtp_layers = 0;
  Result<HfImport> none = ImportHfConfigFile(config, options);
  ASSERT_TRUE(none.ok()) << none.message();
  options.mtp_layers = 2;
  Result<HfImport> two = ImportHfConfigFile(config, options);
  ASSERT_TRUE(two.ok()) << two.message();
  int64_t module = 0;
  for (const Layer& l : one->model.layers) {
    if (l.mtp) module = LayerParamCount(l) - TiedParamCount(l, {});
  }
  ASSERT_GT(module, 0);
  EXPECT_EQ(none->model.layers.size() + 1, one->model.layers.size());
  EXPECT_EQ(two->model.layers.size(), one->model.layers.size() + 1);
  for (const Layer& l : none->model.layers) EXPECT_FALSE(l.mtp) << l.name;
  EXPECT_EQ(ModelParamCount(one->model), ModelParamCount(none->model) + module);
  EXPECT_EQ(ModelParamCount(two->model), ModelParamCount(none->model) + 2 * module);
  EXPECT_EQ(two->model.layers.back().streams, 3);
  EXPECT_EQ(two->model.layers[two->model.layers.size() - 3].mtp_depth, 2);

  const Json llama = Json::parse(R"({"model_type": "llama", "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
      "max_position_embeddings": 64, "vocab_size": 100})");
  options.mtp_layers = 1;
  Result<HfImport> refused = ImportHfConfig(llama, options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("--mtp-layers: \"llama\" configs have no multi-token"),
            std::string::npos)
      << refused.message();
  options.mtp_layers = 0;
  EXPECT_TRUE(ImportHfConfig(llama, options).ok());
}

TEST(HfImport, ErrorsNameTheField) {
  struct Case {
    const char* config;
    const char* expect;
  } cases[] = {
      {R"({"model_type": "gpt2", "n_head": 12, "n_layer": 12, "n_positions": 1024,
           "vocab_size": 50257})",
       "n_embd"},
      {R"({"model_type": "gpt2", "n_embd": -768, "n_head": 12, "n_layer": 12,
           "n_positions": 1024, "vocab_size": 50257})",
       "n_embd"},
      {R"({"model_type": "t5"})", "model_type"},
      {R"({"n_embd": 768})", "model_type"},
      {R"({"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": 256, "max_position_embeddings": 64,
           "vocab_size": 100, "hidden_act": "relu"})",
       "hidden_act"},
      {R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 3,
           "max_position_embeddings": 64, "vocab_size": 100})",
       "num_key_value_heads"},
      {R"({"model_type": "mistral", "hidden_size": 60, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 8,
           "max_position_embeddings": 64, "vocab_size": 100})",
       "num_attention_heads"},
      {R"({"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_local_experts": 4,
           "num_experts_per_tok": 5, "max_position_embeddings": 64, "vocab_size": 100})",
       "num_experts_per_tok"},
      {R"({"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_experts_per_tok": 2,
           "max_position_embeddings": 64, "vocab_size": 100})",
       "num_local_experts"},
      {R"({"model_type": "qwen3_moe", "hidden_size": 64, "moe_intermediate_size": 16,
           "num_experts": 4, "num_experts_per_tok": 2, "num_hidden_layers": 2,
           "num_attention_heads": 4, "max_position_embeddings": 64, "vocab_size": 100,
           "intermediate_size": 96, "mlp_only_layers": [2]})",
       "mlp_only_layers"},
      {R"({"model_type": "qwen3_moe", "hidden_size": 64, "moe_intermediate_size": 16,
           "num_experts": 4, "num_experts_per_tok": 2, "num_hidden_layers": 2,
           "num_attention_heads": 4, "max_position_embeddings": 64, "vocab_size": 100,
           "mlp_only_layers": [0]})",
       "intermediate_size"},
      {R"({"model_type": "glm4_moe", "hidden_size": 64, "moe_intermediate_size": 16,
           "intermediate_size": 96, "n_routed_experts": 4, "num_experts_per_tok": 2,
           "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64,
           "vocab_size": 100, "first_k_dense_replace": 3})",
       "first_k_dense_replace"},
      {R"({"model_type": "qwen3_moe", "hidden_size": 64, "num_experts": 4,
           "num_experts_per_tok": 2, "num_hidden_layers": 2, "num_attention_heads": 4,
           "max_position_embeddings": 64, "vocab_size": 100})",
       "moe_intermediate_size"},
      {R"({"model_type": "nemotron", "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64,
           "vocab_size": 100, "hidden_act": "silu"})",
       "hidden_act"},
      {R"({"model_type": "gemma", "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64,
           "vocab_size": 100, "hidden_activation": "relu"})",
       "hidden_activation"},
  };
  for (const Case& c : cases) {
    Result<HfImport> r = ImportHfConfig(Json::parse(c.config), {});
    ASSERT_FALSE(r.ok()) << c.config;
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << r.message();
  }
}

TEST(HfImport, CliWritesAModelThatPlans) {
  const std::string dir = testing::TempDir();
  testing::WriteText(dir + "/config.json", kGpt2Xl);
  testing::CommandResult r = testing::RunTool("import " + dir + "/config.json --name gpt2-xl -o " +
                                              dir + "/model.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<Model> written = LoadModel(dir + "/model.json");
  ASSERT_TRUE(written.ok()) << written.message();
  ExpectSameLayers(*written, Shipped("gpt2-xl.json"));
  // The imported model plans exactly as the shipped one.
  const testing::CommandResult a = testing::RunTool(
      "plan " + dir + "/model.json --stages 4 --micro-batches 8 --format json");
  const testing::CommandResult b =
      testing::RunTool("plan models/gpt2-xl.json --stages 4 --micro-batches 8 --format json");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(Json::parse(a.out)["boundaries"], Json::parse(b.out)["boundaries"]);
  // Bad input: exit 2, one line, no file.
  testing::WriteText(dir + "/bad.json", R"({"model_type": "gpt2"})");
  r = testing::RunTool("import " + dir + "/bad.json -o " + dir + "/bad-model.json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(dir + "/bad.json: n_embd"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad-model.json"));
  // A grouped-query config whose key/value heads do not divide the heads: one line naming
  // the key.
  testing::WriteText(dir + "/gqa.json", R"({"model_type": "qwen2", "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 3, "max_position_embeddings": 64, "vocab_size": 100})");
  r = testing::RunTool("import " + dir + "/gqa.json -o " + dir + "/gqa-model.json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(dir + "/gqa.json: num_key_value_heads"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/gqa-model.json"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp
