// Importing a Hugging Face config.json into a model description (format
// "pp-partition.model/v1"). The family is chosen by the config's "model_type":
//
//   gpt2   embed (learned positions) · block × n_layer · ln_f · lm_head · loss
//          hidden n_embd, heads n_head, ffn n_inner (null or absent: 4 × n_embd), positions
//          n_positions, layernorm + gelu blocks with biases, causal; the head is tied to the
//          embedding unless tie_word_embeddings is false.
//   bert   embed (positions, token types) · embed_ln · block × num_hidden_layers ·
//          mlm_transform · mlm_act · mlm_ln · lm_head · loss (the masked-LM head, tied unless
//          tie_word_embeddings is false); bidirectional layernorm + gelu blocks with biases.
//   llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe (and glm4_moe, nemotron and
//   gemma, below)
//          embed · block × num_hidden_layers · norm · lm_head · loss: rmsnorm + swiglu blocks,
//          causal, rotary, kv_heads num_key_value_heads (default: the heads), head_dim where
//          given (qwen3 and qwen3_moe default to 128, as their configs do); the head is untied
//          unless tie_word_embeddings is true. Biases: llama attention_bias (q, k, v) and
//          mlp_bias (the MLP and the output projection); qwen2 and qwen2_moe q, k and v only; the
//          others attention_bias on q, k, v and the output projection. qwen3 and qwen3_moe have a
//          q/k norm. mixtral: num_local_experts experts of intermediate_size,
//          num_experts_per_tok a token; qwen2_moe (Qwen1.5-MoE, Qwen2-MoE) and qwen3_moe:
//          num_experts of moe_intermediate_size, and a
//          shared expert of shared_expert_intermediate_size where given (its gate is not
//          modelled: a note); the layers decoder_sparse_step and mlp_only_layers make dense
//          have MLPs of intermediate_size, as Hugging Face's models build them.
//   glm4_moe
//          GLM-4.5: as llama with attention_bias on q, k and v only, a q/k norm when
//          use_qk_norm, dense MLPs of intermediate_size on the first first_k_dense_replace
//          layers and then n_routed_experts of moe_intermediate_size (num_experts_per_tok a
//          token) with n_shared_experts of the same width; partial_rotary_factor is a note.
//   deepseek_v3
//          DeepSeek-V3: multi-latent attention (q_lora_rank, kv_lora_rank, qk_nope_head_dim +
//          qk_rope_head_dim the q/k head, v_head_dim), dense MLPs of intermediate_size on the
//          first first_k_dense_replace layers, then (every moe_layer_freq-th layer)
//          n_routed_experts of moe_intermediate_size with n_shared_experts of that width.
//   glm4_moe and deepseek_v3: num_nextn_predict_layers multi-token prediction blocks ("mtp",
//          around a block like the last decoder layer, looking the next tokens up in
//          "embed") after the final norm; with a tied output layer they are left out (a note).
//   Blocks: one repeated "block" when every layer is alike; with dense layers among the
//   experts' each run of alike layers is its own repeated block, "dense_block" or
//   "moe_block", a kind's later runs named by their first layer ("moe_block_5").
//   nemotron
//          as llama (attention_bias, mlp_bias), with layernorm (Nemotron's zero-centred gain
//          costs the same) and squared-ReLU (hidden_act relu2) MLPs; rotary positions on the
//          whole head (a partial_rotary_factor other than 1 is a note).
//   gemma  as llama without mlp_bias, with GeGLU MLPs (hidden_act or hidden_activation gelu*),
//          head_dim 256 by default and the head tied unless tie_word_embeddings is false; its
//          norms' 1 + gain cost as an RMS norm's, and the embedding's sqrt(hidden_size) scaling
//          is a note.
//
// The layer names and fields equal those of models/gpt2-*.json, models/bert-large.json,
// models/llama*.json, models/mixtral-8x7b.json, models/qwen3-30b-a3b.json,
// models/nemotron4-340b.json and models/gemma-7b.json. A mistral or mixtral sliding_window
// shorter than the context becomes each block's "window". What the model format cannot
// describe (Qwen's sliding window on only some layers, for instance) is reported as a note,
// not an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "core/model.h"
#include "core/status.h"

namespace pp {

struct HfImportOptions {
  std::optional<std::string> name;           // default: the config's _name_or_path (its last
                                             // path component), else model_type
  std::optional<int64_t> seq_len;            // default: the config's context length
  std::optional<int64_t> micro_batch_size;   // default: 8 (gpt2, bert) or 1 (llama)
  // Multi-token prediction blocks (glm4_moe, deepseek_v3): default the config's
  // num_nextn_predict_layers; 0 leaves them out (a run that trains without them).
  std::optional<int64_t> mtp_layers;
};

struct HfImport {
  Model model;
  std::string family;               // the config's model_type
  std::vector<std::string> notes;   // what the model format could not represent
};

// Builds and validates the model. Errors name the config field ("n_embd: must be ...").
Result<HfImport> ImportHfConfig(const Json& config, const HfImportOptions& options);

// The model types ImportHfConfig reads, comma-separated ("gpt2, bert, llama, ...").
std::string ImportableModelTypes();

// Reads a config file; errors are prefixed with the file name.
Result<HfImport> ImportHfConfigFile(const std::string& path, const HfImportOptions& options);

}  // namespace pp
