#include "core/hf_import.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/units.h"

namespace pp {
namespace {

constexpr int64_t kMaxMicroBatch = int64_t{1} << 20;

Json Embedding(int64_t vocab, int64_t hidden) {
  return {{"name", "embed"}, {"op", "embedding"}, {"vocab", vocab}, {"hidden", hidden}};
}

Json Norm(const char* name, std::string_view op, int64_t hidden) {
  return {{"name", name}, {"op", std::string(op)}, {"hidden", hidden}};
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

// An optional count (0 or more) that may be null.
std::optional<int64_t> OptNullableCount(FieldReader& r, std::string_view key) {
  const Json* v = r.Find(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  return r.Int(key, 0, kMaxDim);
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

// What distinguishes the decoder families that share the llama layout.
struct Decoder {
  std::string_view model_type = {};
  // Qwen2: biases on q, k and v only, always. Else attention_bias (q, k, v and o) and
  // mlp_bias (llama only; the MLP).
  bool qkv_bias_only = false;
  bool qk_norm = false;                 // Qwen3: an RMS norm over each head of q and k
  std::string_view experts_key = {};    // mixture of experts: the expert count's key
  std::string_view expert_ffn_key = {}; // and the expert MLP width's
  bool sliding_window = false;          // the config may give a sliding attention window
  // Which layers are dense among the mixture-of-experts ones: qwen2_moe, qwen3_moe
  // decoder_sparse_step and mlp_only_layers (sparse_layout); glm4_moe the first
  // first_k_dense_replace (dense_first_key). Dense layers take intermediate_size.
  bool sparse_layout = false;
  std::string_view dense_first_key = {};
  // Shared experts: a count of them of the expert MLP width (this key), else qwen's one of
  // shared_expert_intermediate_size.
  std::string_view shared_count_key = {};
  std::string_view qk_norm_key = {};     // the q/k norm when this key is true (glm4_moe)
  bool attention_bias_qkv_only = false;  // attention_bias on q, k, v, not the output (glm4_moe)
  bool mtp = false;  // num_nextn_predict_layers multi-token prediction blocks after the norm
  std::string_view layer_freq_key = {};  // experts on every n-th layer after the dense ones
  bool mla = false;  // multi-latent attention: q_lora_rank, kv_lora_rank, qk_*_head_dim
  int64_t default_head_dim = 0;         // head_dim when the config has none (0: hidden/heads)
  // The blocks' norm and MLP, and the hidden_act prefix that MLP needs: rmsnorm and swiglu
  // (silu) but for Nemotron's layer norm (zero-centred gain, the same cost) and squared ReLU,
  // and Gemma's GeGLU (its norm's 1 + gain costs the same).
  std::string_view norm = "rmsnorm", mlp = "swiglu", hidden_act = "silu";
  bool tied_default = false;      // tie_word_embeddings when the config has none (Gemma: true)
  bool scaled_embedding = false;  // gemma: the embedding's output times sqrt(hidden_size)
  bool mlp_bias = false;        // llama, nemotron: mlp_bias gives the MLP's biases
  bool partial_rotary = false;  // nemotron: partial_rotary_factor of each head rotated
};

constexpr Decoder kDecoders[] = {
    {.model_type = "llama", .mlp_bias = true},
    {.model_type = "mistral", .sliding_window = true},
    {.model_type = "mixtral",
     .experts_key = "num_local_experts",
     .expert_ffn_key = "intermediate_size",
     .sliding_window = true},
    {.model_type = "qwen2", .qkv_bias_only = true, .sliding_window = true},
    // Qwen1.5-MoE and Qwen2-MoE: Qwen2's attention, experts and a shared expert.
    {.model_type = "qwen2_moe",
     .qkv_bias_only = true,
     .experts_key = "num_experts",
     .expert_ffn_key = "moe_intermediate_size",
     .sliding_window = true,
     .sparse_layout = true},
    // Qwen3Config and Qwen3MoeConfig default head_dim to 128.
    {.model_type = "qwen3", .qk_norm = true, .sliding_window = true, .default_head_dim = 128},
    {.model_type = "qwen3_moe",
     .qk_norm = true,
     .experts_key = "num_experts",
     .expert_ffn_key = "moe_intermediate_size",
     .sliding_window = true,
     .sparse_layout = true,
     .default_head_dim = 128},
    // GLM-4.5: grouped-query attention with q, k, v biases, experts and shared experts after
    // its first dense layers; half of each head rotated.
    {.model_type = "glm4_moe",
     .experts_key = "n_routed_experts",
     .expert_ffn_key = "moe_intermediate_size",
     .dense_first_key = "first_k_dense_replace",
     .shared_count_key = "n_shared_experts",
     .qk_norm_key = "use_qk_norm",
     .attention_bias_qkv_only = true,
     .mtp = true,
     .partial_rotary = true},
    // DeepSeek-V3 (and V2): multi-latent attention, dense layers, then routed and shared
    // experts.
    {.model_type = "deepseek_v3",
     .experts_key = "n_routed_experts",
     .expert_ffn_key = "moe_intermediate_size",
     .dense_first_key = "first_k_dense_replace",
     .shared_count_key = "n_shared_experts",
     .mtp = true,
     .layer_freq_key = "moe_layer_freq",
     .mla = true},
    {.model_type = "gemma",
     .default_head_dim = 256,
     .mlp = "geglu",
     .hidden_act = "gelu",
     .tied_default = true,
     .scaled_embedding = true},
    {.model_type = "nemotron",
     .norm = "layernorm",
     .mlp = "relu2",
     .hidden_act = "relu2",
     .mlp_bias = true,
     .partial_rotary = true},
};

// Per layer of `layers`, whether it is a mixture of experts (see Decoder): all of them in a
// mixture-of-experts family unless its keys make some dense.
Result<std::vector<bool>> ExpertLayers(const Decoder& family, bool moe, int64_t layers,
                                       FieldReader& r) {
  std::vector<bool> expert(static_cast<size_t>(layers), moe);
  if (!moe) return expert;
  if (family.sparse_layout) {
    const int64_t step = r.OptInt("decoder_sparse_step", 1, layers).value_or(1);
    if (!r.ok()) return r.status();
    for (int64_t i = 0; i < layers; ++i) expert[i] = (i + 1) % step == 0;
    const Json* dense = r.Find("mlp_only_layers");
    if (dense != nullptr && !dense->is_null()) {
      if (!dense->is_array()) {
        r.Fail("mlp_only_layers", "must be a list of layer indices");
        return r.status();
      }
      for (const Json& index : *dense) {
        if (!index.is_number_integer() || index.get<int64_t>() < 0 ||
            index.get<int64_t>() >= layers) {
          r.Fail("mlp_only_layers", "must hold layer indices from 0 to " +
                                        std::to_string(layers - 1) + " (got " + index.dump() + ")");
          return r.status();
        }
        expert[index.get<size_t>()] = false;
      }
    }
  }
  if (!family.dense_first_key.empty()) {
    const int64_t first = r.OptInt(family.dense_first_key, 0, layers).value_or(0);
    if (!r.ok()) return r.status();
    for (int64_t i = 0; i < first; ++i) expert[i] = false;
  }
  if (!family.layer_freq_key.empty()) {
    // Hugging Face's DeepSeek decoder: experts where layer % moe_layer_freq == 0.
    const int64_t freq = r.OptInt(family.layer_freq_key, 1, layers).value_or(1);
    if (!r.ok()) return r.status();
    for (int64_t i = 0; i < layers; ++i) expert[i] = expert[i] && i % freq == 0;
  }
  return expert;
}

// The blocks of a decoder, one repeated layer per run of consecutive dense or mixture-of-
// experts layers: "block" when they are all alike (the shipped models' name), else
// "dense_block" and "moe_block", each run after a kind's first numbered by where it starts
// ("moe_block_5" for the experts' run from layer 5).
std::vector<Json> BlockRuns(const std::vector<bool>& expert, const Json& dense,
                            const Json& sparse) {
  std::vector<Json> runs;
  const bool mixed = std::count(expert.begin(), expert.end(), true) > 0 &&
                     std::count(expert.begin(), expert.end(), false) > 0;
  bool named[2] = {false, false};
  for (size_t i = 0; i < expert.size();) {
    size_t end = i;
    while (end < expert.size() && expert[end] == expert[i]) ++end;
    Json run = expert[i] ? sparse : dense;
    std::string name = !mixed ? "block" : expert[i] ? "moe_block" : "dense_block";
    if (named[expert[i]]) name += "_" + std::to_string(i);
    named[expert[i]] = true;
    run["name"] = name;
    run["repeat"] = static_cast<int64_t>(end - i);
    runs.push_back(std::move(run));
    i = end;
  }
  return runs;
}

Result<Built> DecoderModel(const Decoder& family, FieldReader& r, const HfImportOptions& options,
                           std::vector<std::string>* notes) {
  Built b;
  const bool moe = !family.experts_key.empty();
  const int64_t hidden = r.Int("hidden_size", 1, kMaxDim);
  const int64_t layers = r.Int("num_hidden_layers", 1, kMaxLayers);
  const int64_t heads = r.Int("num_attention_heads", 1, kMaxDim);
  const int64_t vocab = r.Int("vocab_size", 1, kMaxDim);
  const int64_t context = r.Int("max_position_embeddings", 1, kMaxDim);
  const std::optional<int64_t> kv_heads = OptNullableInt(r, "num_key_value_heads");
  std::optional<int64_t> head_dim = OptNullableInt(r, "head_dim");
  if (!head_dim && family.default_head_dim > 0) head_dim = family.default_head_dim;
  // Multi-latent attention: the q/k head is its unrotated and rotated parts.
  int64_t q_lora = 0, kv_lora = 0, rope_dim = 0, v_head_dim = 0;
  if (family.mla) {
    q_lora = OptNullableInt(r, "q_lora_rank").value_or(0);
    kv_lora = r.Int("kv_lora_rank", 1, kMaxDim);
    rope_dim = r.Int("qk_rope_head_dim", 1, kMaxDim);
    head_dim = r.Int("qk_nope_head_dim", 1, kMaxDim) + rope_dim;
    v_head_dim = r.Int("v_head_dim", 1, kMaxDim);
  }
  const bool tied = r.Bool("tie_word_embeddings", family.tied_default);
  // attention_bias: q, k, v and the output projection's, or q, k and v's only.
  const bool config_bias = !family.qkv_bias_only && r.Bool("attention_bias", false);
  const bool attention_bias = config_bias && !family.attention_bias_qkv_only;
  const bool qkv_bias = family.qkv_bias_only || config_bias;
  const bool qk_norm =
      family.qk_norm || (!family.qk_norm_key.empty() && r.Bool(family.qk_norm_key, false));
  const bool mlp_bias = family.mlp_bias && r.Bool("mlp_bias", false);
  const std::string_view modelled_as = family.mlp == "swiglu"  ? "silu (swiglu)"
                                       : family.mlp == "geglu" ? "gelu (geglu)"
                                                               : family.hidden_act;
  CheckActivation(r, "hidden_act", family.hidden_act, modelled_as);
  CheckActivation(r, "hidden_activation", family.hidden_act, modelled_as);
  int64_t ffn = 0, experts = 0, top_k = 0, expert_ffn = 0, shared_ffn = 0, shared_count = 0;
  if (moe) {
    experts = r.Int(family.experts_key, 1, kMaxDim);
    top_k = r.Int("num_experts_per_tok", 1, kMaxDim);
    expert_ffn = r.Int(family.expert_ffn_key, 1, kMaxDim);
    if (!family.shared_count_key.empty()) {
      shared_count = OptNullableCount(r, family.shared_count_key).value_or(0);
      shared_ffn = shared_count > 0 ? expert_ffn : 0;
    } else {
      shared_ffn = OptNullableInt(r, "shared_expert_intermediate_size").value_or(0);
      shared_count = shared_ffn > 0 ? 1 : 0;
    }
  }
  if (!r.ok()) return r.status();
  // Per layer: a mixture of experts (true) or a dense MLP of intermediate_size.
  Result<std::vector<bool>> expert_layers = ExpertLayers(family, moe, layers, r);
  if (!expert_layers.ok()) return expert_layers.status();
  if (std::count(expert_layers->begin(), expert_layers->end(), false) > 0) {
    ffn = r.Int("intermediate_size", 1, kMaxDim);
  }
  if (!r.ok()) return r.status();
  if (family.mla && kv_heads && *kv_heads != heads) {
    r.Fail("num_key_value_heads", "multi-latent attention gives every head its own k and v (" +
                                      std::to_string(heads) + ")");
  }
  if (kv_heads && heads % *kv_heads != 0) {
    r.Fail("num_key_value_heads", std::to_string(*kv_heads) + " key/value heads do not divide " +
                                      std::to_string(heads) + " attention heads");
  }
  if (!head_dim && hidden % heads != 0) {
    r.Fail("num_attention_heads", std::to_string(heads) + " heads do not divide hidden_size " +
                                      std::to_string(hidden) + " (and head_dim is not given)");
  }
  if (moe && top_k > experts) {
    r.Fail("num_experts_per_tok", std::to_string(top_k) + " experts per token exceed the " +
                                      std::to_string(experts) + " experts");
  }
  if (!r.ok()) return r.status();
  int64_t sliding = 0;  // every block's window (mistral, mixtral)
  if (family.sliding_window) {
    const Json* window = r.Find("sliding_window");
    // Qwen configs give a window that only use_sliding_window turns on, and then only on the
    // layers from max_window_layers on.
    const bool qwen = family.model_type.rfind("qwen", 0) == 0;
    const bool used = !qwen || r.Bool("use_sliding_window", false);
    if (used && window != nullptr && window->is_number_integer() &&
        window->get<int64_t>() >= 1 && window->get<int64_t>() < context) {
      if (qwen) {
        notes->push_back("sliding_window " + std::to_string(window->get<int64_t>()) +
                         " is not modelled on Qwen's layers from max_window_layers on: "
                         "attention is costed over the whole sequence (exact when seq_len is "
                         "at most the window)");
      } else {
        sliding = window->get<int64_t>();
      }
    }
  }
  if (family.partial_rotary) {
    const Json* factor = r.Find("partial_rotary_factor");
    if (factor != nullptr && factor->is_number() && factor->get<double>() != 1.0) {
      notes->push_back("partial_rotary_factor " + factor->dump() +
                       " is not modelled: rotary positions are costed on the whole of each "
                       "head (the rotary kernel's bytes, a small part of a block's)");
    }
  }
  int64_t mtp_layers = 0;
  if (family.mtp) {
    mtp_layers = OptNullableCount(r, "num_nextn_predict_layers").value_or(0);
    if (options.mtp_layers) mtp_layers = *options.mtp_layers;
    if (mtp_layers > 0 && tied) {
      notes->push_back("num_nextn_predict_layers " + std::to_string(mtp_layers) +
                       ": multi-token prediction beside a tied output layer is not available "
                       "yet (two ties); the model ends at its num_hidden_layers blocks");
      mtp_layers = 0;
    }
  }
  if (family.scaled_embedding) {
    notes->push_back(
        "the embedding's scaling by sqrt(hidden_size) (one elementwise pass over "
        "its output) is not modelled");
  }
  if (family.mlp_bias && attention_bias != mlp_bias) {
    notes->push_back("attention_bias and mlp_bias differ; the output projection's bias is "
                     "described with the MLP's (mlp_bias)");
  }
  b.layers.push_back(Embedding(vocab, hidden));
  Json block = {{"op", "transformer_block"},
                {"hidden", hidden},
                {"heads", heads},
                {"norm", std::string(family.norm)},
                {"mlp", std::string(family.mlp)},
                {"bias", family.mlp_bias ? mlp_bias : attention_bias},
                {"causal", true},
                {"rotary", true}};
  if (qkv_bias != block["bias"].get<bool>()) block["qkv_bias"] = qkv_bias;
  if (kv_heads && *kv_heads != heads) block["kv_heads"] = *kv_heads;
  if (head_dim && (hidden % heads != 0 || *head_dim != hidden / heads)) {
    block["head_dim"] = *head_dim;
  }
  if (qk_norm) block["qk_norm"] = true;
  if (family.mla) {  // (kv_heads, checked equal to the heads above, is not written)
    block["kv_lora"] = kv_lora;
    if (q_lora > 0) block["q_lora"] = q_lora;
    block["rope_dim"] = rope_dim;
    if (v_head_dim != *head_dim) block["v_head_dim"] = v_head_dim;
  }
  if (sliding > 0) block["window"] = sliding;
  Json dense = block, sparse = block;
  dense["ffn"] = ffn;
  if (moe) {
    sparse["experts"] = experts;
    sparse["top_k"] = top_k;
    sparse["expert_ffn"] = expert_ffn;
    if (shared_count > 0) {
      sparse["shared_experts"] = shared_count;
      sparse["shared_ffn"] = shared_ffn;
      if (family.shared_count_key.empty()) {
        notes->push_back(
            "the shared expert's sigmoid gate (hidden_size parameters a layer) is "
            "not modelled");
      }
    }
  }
  for (Json& run : BlockRuns(*expert_layers, dense, sparse)) b.layers.push_back(std::move(run));
  b.layers.push_back(Norm("norm", family.norm, hidden));
  if (mtp_layers > 0) {
    // The multi-token prediction modules, each around a block like the decoder's last
    // (Hugging Face keeps them as layers num_hidden_layers and on).
    Json mtp = expert_layers->back() ? sparse : dense;
    mtp["name"] = "mtp";
    mtp["mtp"] = true;
    mtp["vocab"] = vocab;
    mtp["tied_to"] = "embed";
    if (mtp_layers > 1) mtp["repeat"] = mtp_layers;
    b.layers.push_back(std::move(mtp));
  }
  Json head = Linear("lm_head", hidden, vocab, false);
  if (tied) head["tied_to"] = "embed";
  b.layers.push_back(head);
  b.layers.push_back(Loss());
  b.context = context;
  b.default_mbs = 1;
  return b;
}

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

std::string ImportableModelTypes() {
  std::string known = "gpt2, bert";
  for (const Decoder& d : kDecoders) known += ", " + std::string(d.model_type);
  return known;
}

Result<HfImport> ImportHfConfig(const Json& config, const HfImportOptions& options) {
  if (!config.is_object()) return Status::Error("must be a JSON object (a config.json)");
  FieldReader r(config, "");
  const std::string type = r.String("model_type");
  if (!r.ok()) return r.status();
  HfImport out;
  out.family = type;
  if (options.mtp_layers.value_or(0) > 0) {
    bool mtp = false;
    for (const Decoder& d : kDecoders) mtp |= d.model_type == type && d.mtp;
    if (!mtp) {
      return Status::Error("--mtp-layers: " + Quote(type) +
                           " configs have no multi-token prediction blocks (glm4_moe and "
                           "deepseek_v3 do)");
    }
  }
  Result<Built> built = Status::Error("");
  if (type == "gpt2") {
    built = Gpt2(r, &out.notes);
  } else if (type == "bert") {
    built = Bert(r, &out.notes);
  } else {
    const Decoder* family = nullptr;
    for (const Decoder& d : kDecoders) {
      if (d.model_type == type) family = &d;
    }
    if (family == nullptr) {
      return Status::Error("model_type: " + Quote(type) + " is not supported (known: " +
                           ImportableModelTypes() + ")");
    }
    built = DecoderModel(*family, r, options, &out.notes);
  }
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
