// Importing a Hugging Face config.json into a model description (format
// "pp-partition.model/v1"). Three families, chosen by the config's "model_type":
//
//   gpt2   embed (learned positions) · block × n_layer · ln_f · lm_head · loss
//          hidden n_embd, heads n_head, ffn n_inner (null or absent: 4 × n_embd), positions
//          n_positions, layernorm + gelu blocks with biases, causal; the head is tied to the
//          embedding unless tie_word_embeddings is false.
//   bert   embed (positions, token types) · embed_ln · block × num_hidden_layers ·
//          mlm_transform · mlm_act · mlm_ln · lm_head · loss (the masked-LM head, tied unless
//          tie_word_embeddings is false); bidirectional layernorm + gelu blocks with biases.
//   llama  embed · block × num_hidden_layers · norm · lm_head · loss: rmsnorm + swiglu blocks
//          without biases (unless attention_bias / mlp_bias), causal, rotary; the head is
//          untied unless tie_word_embeddings is true.
//
// The layer names and fields equal those of models/gpt2-*.json, models/bert-large.json and
// models/llama-7b.json. Fields the model format cannot describe (grouped key/value heads, for
// instance) are reported as notes, not errors.
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
};

struct HfImport {
  Model model;
  std::string family;               // "gpt2", "bert" or "llama"
  std::vector<std::string> notes;   // what the model format could not represent
};

// Builds and validates the model. Errors name the config field ("n_embd: must be ...").
Result<HfImport> ImportHfConfig(const Json& config, const HfImportOptions& options);

// Reads a config file; errors are prefixed with the file name.
Result<HfImport> ImportHfConfigFile(const std::string& path, const HfImportOptions& options);

}  // namespace pp
