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
    EXPECT_EQ(a.norm, b.norm);
    EXPECT_EQ(a.mlp, b.mlp);
    EXPECT_EQ(a.causal, b.causal);
    EXPECT_EQ(a.rotary, b.rotary);
    EXPECT_EQ(a.tied_to, b.tied_to);
    EXPECT_EQ(a.in_width, b.in_width);
    EXPECT_EQ(a.out_width, b.out_width);
  }
  EXPECT_EQ(ModelParamCount(got), ModelParamCount(want));
  EXPECT_EQ(got.dtype, want.dtype);
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
  Result<HfImport> gqa = ImportHfConfig(Json::parse(R"({"model_type": "llama",
      "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 2,
      "num_attention_heads": 8, "num_key_value_heads": 2, "max_position_embeddings": 128,
      "vocab_size": 1000})"), {});
  ASSERT_TRUE(gqa.ok()) << gqa.message();
  ASSERT_EQ(gqa->notes.size(), 1u);
  EXPECT_NE(gqa->notes[0].find("num_key_value_heads"), std::string::npos);
}

TEST(HfImport, ErrorsNameTheField) {
  struct Case {
    const char* config;
    const char* expect;
  } cases[] = {
      {R"({"model_type": "gpt2", "n_head": 12, "n_layer": 12, "n_positions": 1024,
           "vocab_size": 50257})", "n_embd"},
      {R"({"model_type": "gpt2", "n_embd": -768, "n_head": 12, "n_layer": 12,
           "n_positions": 1024, "vocab_size": 50257})", "n_embd"},
      {R"({"model_type": "t5"})", "model_type"},
      {R"({"n_embd": 768})", "model_type"},
      {R"({"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": 256, "max_position_embeddings": 64,
           "vocab_size": 100, "hidden_act": "relu"})", "hidden_act"},
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
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp
