#include "core/hf_import.h"

#include <string_view>

#include "core/units.h"

namespace pp {
namespace {

constexpr int64_t kMaxMicroBatch = int64_t{1} << 20;

Json Embedding(int64_t vocab, int64_t hidden) {
  return {{"name", "embed"}, {"op", "embedding"}, {"vocab", vocab}, {"hidden", hidden}};
}

Json Norm(const char* name, const char* op, int64_t hidden) {
  return {{"name", name}, {"op", op}, {"hidden", hidden}};
}

Json Linear(const char* name, int64_t in, int64_t out, bool bias) {
  return {{"name", name}, {"op", "linear"}, {"in", in}, {"out", out}, {"bias", bias}};
}

Json Loss() { return {{"name", "loss"}, {"op", "cross_entropy"}}; }

struct BlockShape {
  int64_t hidden = 0, heads = 0, ffn = 0, repeat = 0;
  bool rms_swiglu = false;  // llama: rmsnorm + swiglu, else layernorm + gelu
  bool bias = true, causal = true, rotary = false;
};

Json Block(const BlockShape& b) {
  return {{"name", "block"},         {"op", "transformer_block"},
          {"hidden", b.hidden},      {"heads", b.heads},
          {"ffn", b.ffn},            {"norm", b.rms_swiglu ? "rmsnorm" : "layernorm"},
          {"mlp", b.rms_swiglu ? "swiglu" : "gelu"},
          {"bias", b.bias},          {"causal", b.causal},
          {"rotary", b.rotary},      {"repeat", b.repeat}};
}

// An optional activation name that must start with `prefix` ("gelu", "silu").
void CheckActivation(FieldReader& r, std::string_view key, std::string_view prefix,
                     std::string_view modelled_as) {
  const std::optional<std::string> act = r.OptString(key);
  if (r.ok() && act && act->rfind(prefix, 0) != 0) {
    r.Fail(key, Quote(*act) + " is not supported; the model format describes this family's "
                "blocks with " + std::string(modelled_as) + " only");
  }
}

// An optional positive integer that may be null.
std::optional<int64_t> OptNullableInt(FieldReader& r, std::string_view key) {
  const Json* v = r.Find(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  return r.Int(key, 1, kMaxDim);
}

struct Built {
  Json layers = Json::array();
  int64_t context = 0;      // the config's context length
  int64_t default_mbs = 8;
};

Result<Built> Gpt2(FieldReader& r, std::vector<std::string>*) {
  Built b;
  const int64_t hidden = r.Int("n_embd", 1, kMaxDim);
  const int64_t layers = r.Int("n_layer", 1, kMaxLayers);
  const int64_t heads = r.Int("n_head", 1, kMaxDim);
  const int64_t positions = r.Int("n_positions", 1, kMaxDim);
  const int64_t vocab = r.Int("vocab_size", 1, kMaxDim);
  const std::optional<int64_t> inner = OptNullableInt(r, "n_inner");
  const bool tied = r.Bool("tie_word_embeddings", true);
  CheckActivation(r, "activation_function", "gelu", "gelu");
  if (!r.ok()) return r.status();
  Json embed = Embedding(vocab, hidden);
  embed["positions"] = positions;
  b.layers.push_back(embed);
  b.layers.push_back(Block({hidden, heads, inner.value_or(4 * hidden), layers}));
  b.layers.push_back(Norm("ln_f", "layernorm", hidden));
  Json head = Linear("lm_head", hidden, vocab, false);
  if (tied) head["tied_to"] = "embed";
  b.layers.push_back(head);
  b.layers.push_back(Loss());
  b.context = positions;
  return b;
}

Result<Built> Bert(FieldReader& r, std::vector<std::string>*) {
  Built b;
  const int64_t hidden = r.Int("hidden_size", 1, kMaxDim);
  const int64_t layers = r.Int("num_hidden_layers", 1, kMaxLayers);
  const int64_t heads = r.Int("num_attention_heads", 1, kMaxDim);
  const int64_t ffn = r.Int("intermediate_size", 1, kMaxDim);
  const int64_t positions = r.Int("max_position_embeddings", 1, kMaxDim);
  const int64_t types = r.OptInt("type_vocab_size", 0, kMaxDim).value_or(2);
  const int64_t vocab = r.Int("vocab_size", 1, kMaxDim);
  const bool tied = r.Bool("tie_word_embeddings", true);
  CheckActivation(r, "hidden_act", "gelu", "gelu");
  if (!r.ok()) return r.status();
  Json embed = Embedding(vocab, hidden);
  embed["positions"] = positions;
  if (types > 0) embed["token_types"] = types;
  b.layers.push_back(embed);
  b.layers.push_back(Norm("embed_ln", "layernorm", hidden));
  BlockShape shape{hidden, heads, ffn, layers};
  shape.causal = false;
  b.layers.push_back(Block(shape));
  b.layers.push_back(Linear("mlm_transform", hidden, hidden, true));
  b.layers.push_back({{"name", "mlm_act"}, {"op", "gelu"}});
  b.layers.push_back(Norm("mlm_ln", "layernorm", hidden));
  Json head = Linear("lm_head", hidden, vocab, true);
  if (tied) head["tied_to"] = "embed";
  b.layers.push_back(head);
  b.layers.push_back(Loss());
  b.context = positions;
  return b;
}

Result<Built> Llama(FieldReader& r, std::vector<std::string>* notes) {
  Built b;
  const int64_t hidden = r.Int("hidden_size", 1, kMaxDim);
  const int64_t ffn = r.Int("intermediate_size", 1, kMaxDim);
  const int64_t layers = r.Int("num_hidden_layers", 1, kMaxLayers);
  const int64_t heads = r.Int("num_attention_heads", 1, kMaxDim);
  const int64_t vocab = r.Int("vocab_size", 1, kMaxDim);
  const int64_t context = r.Int("max_position_embeddings", 1, kMaxDim);
  const std::optional<int64_t> kv_heads = OptNullableInt(r, "num_key_value_heads");
  const bool tied = r.Bool("tie_word_embeddings", false);
  const bool attention_bias = r.Bool("attention_bias", false);
  const bool mlp_bias = r.Bool("mlp_bias", false);
  CheckActivation(r, "hidden_act", "silu", "silu (swiglu)");
  if (!r.ok()) return r.status();
  if (kv_heads && *kv_heads != heads) {
    notes->push_back("num_key_value_heads " + std::to_string(*kv_heads) + " differs from " +
                     std::to_string(heads) + " attention heads; the model format has no "
                     "grouped-query attention, so the blocks are described with full key/value "
                     "heads (parameters and time are overestimated)");
  }
  if (attention_bias != mlp_bias) {
    notes->push_back("attention_bias and mlp_bias differ; the model format has one bias flag "
                     "per block, set to true");
  }
  b.layers.push_back(Embedding(vocab, hidden));
  BlockShape shape{hidden, heads, ffn, layers};
  shape.rms_swiglu = true;
  shape.bias = attention_bias || mlp_bias;
  shape.rotary = true;
  b.layers.push_back(Block(shape));
  b.layers.push_back(Norm("norm", "rmsnorm", hidden));
  Json head = Linear("lm_head", hidden, vocab, false);
  if (tied) head["tied_to"] = "embed";
  b.layers.push_back(head);
  b.layers.push_back(Loss());
  b.context = context;
  b.default_mbs = 1;
  return b;
}

struct Family {
  std::string_view model_type;
  Result<Built> (*build)(FieldReader&, std::vector<std::string>*);
};
constexpr Family kFamilies[] = {{"gpt2", Gpt2}, {"bert", Bert}, {"llama", Llama}};

// The last path component of _name_or_path, when it is a valid name.
std::optional<std::string> NameFromConfig(const Json& config) {
  auto it = config.find("_name_or_path");
  if (it == config.end() || !it->is_string()) return std::nullopt;
  std::string name = it->get<std::string>();
  while (!name.empty() && name.back() == '/') name.pop_back();
  if (const size_t slash = name.rfind('/'); slash != std::string::npos) name.erase(0, slash + 1);
  if (!NameProblem(name).empty()) return std::nullopt;
  return name;
}

}  // namespace

Result<HfImport> ImportHfConfig(const Json& config, const HfImportOptions& options) {
  if (!config.is_object()) return Status::Error("must be a JSON object (a config.json)");
  FieldReader r(config, "");
  const std::string type = r.String("model_type");
  if (!r.ok()) return r.status();
  const Family* family = nullptr;
  for (const Family& f : kFamilies) {
    if (f.model_type == type) family = &f;
  }
  if (family == nullptr) {
    return Status::Error("model_type: " + Quote(type) + " is not supported (known: gpt2, bert, "
                         "llama)");
  }
  HfImport out;
  out.family = type;
  Result<Built> built = family->build(r, &out.notes);
  if (!built.ok()) return built.status();

  const std::string name = options.name.value_or(NameFromConfig(config).value_or(type));
  const int64_t seq_len = options.seq_len.value_or(built->context);
  const int64_t mbs = options.micro_batch_size.value_or(built->default_mbs);
  if (seq_len < 1 || seq_len > kMaxDim) {
    return Status::Error("--seq-len must be between 1 and " + std::to_string(kMaxDim));
  }
  if (mbs < 1 || mbs > kMaxMicroBatch) {
    return Status::Error("--micro-batch-size must be between 1 and " +
                         std::to_string(kMaxMicroBatch));
  }
  if (options.seq_len && *options.seq_len > built->context) {
    out.notes.push_back("--seq-len " + std::to_string(seq_len) + " is longer than the config's "
                        "context length " + std::to_string(built->context));
  }
  const std::string torch_dtype = r.OptString("torch_dtype").value_or("bfloat16");
  if (!r.ok()) return r.status();
  Json doc = {{"format", kModelFormat},
              {"name", name},
              {"source", "Hugging Face config.json (model_type " + type + "), imported by "
                         "pp-partition import"},
              {"dtype", torch_dtype == "float32" ? "fp32" : "bf16"},
              {"input", {{"micro_batch_size", mbs}, {"seq_len", seq_len}}},
              {"layers", std::move(built->layers)}};
  Result<Model> model = ModelFromJson(doc);
  if (!model.ok()) return model.status().Prefixed("the imported model");
  out.model = std::move(*model);
  return out;
}

Result<HfImport> ImportHfConfigFile(const std::string& path, const HfImportOptions& options) {
  Result<Json> doc = ReadJsonFile(path);
  if (!doc.ok()) return doc.status();
  Result<HfImport> out = ImportHfConfig(*doc, options);
  if (!out.ok()) return out.status().Prefixed(ShownPath(path));
  return out;
}

}  // namespace pp
