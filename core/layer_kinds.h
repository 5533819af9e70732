// The layer kinds and the fields of one layer. PP_LAYER_KINDS is the one list of kinds: the
// LayerKind enumerators, the core registry (core/kind_entry.h), the CPU factory
// (MakeCpuLayer, layers/layer.cc) and the CUDA factory (MakeCudaLayer, layers/cuda_layer.cc)
// are all expanded from it. A row X(Name, Impl) promises
//   LayerKind::k<Name>                  the enumerator (in list order);
//   <Name>Kind()                        the kind's entry: JSON name and fields, widths, counts,
//                                       analytic kernels (core/kinds/*.cc, in pp_core);
//   MakeCpu<Impl><T>(layer, input)      its CPU reference layer (layers/*.cc, in pp_layers);
//   MakeCuda<Impl><T>(layer, input)     its CUDA layer (layers/*_cuda.cu, in pp_layers_cuda).
// Kinds sharing one implementation (relu and gelu) name the same Impl. A row whose entry or
// factory is missing fails to link, naming the missing function.
//
// Adding a kind: a row here, its entry core/kinds/<kind>.cc, its CPU layer layers/<kind>.cc
// and its CUDA layer layers/<kind>_cuda.cu (the build picks all three up), plus a sample in
// tests/kind_samples.cc, which the registry tests insist on. A kind that needs a dimension no
// kind has yet adds the field to Layer below (and to ShapeFields).
//
// This header needs nothing but the standard library and compiles as C++17, so the CUDA
// sources (nvcc) read layers from it directly.
#pragma once

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <tuple>

#define PP_LAYER_KINDS(X)                    \
  X(Embedding, Embedding)                    \
  X(Linear, Linear)                          \
  X(Relu, Activation)                        \
  X(Gelu, Activation)                        \
  X(LayerNorm, Norm)                         \
  X(RmsNorm, Norm)                           \
  X(TransformerBlock, TransformerBlock)      \
  X(CrossEntropy, Loss)                      \
  X(Mse, Loss)

namespace pp {

#define PP_KIND_ENUMERATOR(Name, Impl) k##Name,
enum class LayerKind { PP_LAYER_KINDS(PP_KIND_ENUMERATOR) };
inline constexpr LayerKind kLayerKinds[] = {
#define PP_KIND_LISTED(Name, Impl) LayerKind::k##Name,
    PP_LAYER_KINDS(PP_KIND_LISTED)
#undef PP_KIND_LISTED
};
#undef PP_KIND_ENUMERATOR

enum class NormKind { kLayerNorm, kRmsNorm };
// A transformer block's MLP: fc1, an activation, fc2 (gelu: GELU; relu2: squared ReLU,
// max(x, 0)^2, as Nemotron-4 and Megatron-LM's --squared-relu), or a gated one: gate and up,
// act(gate) * up, then down (swiglu: silu, as Llama; geglu: GELU, as Gemma).
enum class MlpKind { kGelu, kSwiglu, kRelu2, kGeglu };
// Whether the MLP is gated (two input products: swiglu, geglu).
inline bool GatedMlp(MlpKind m) { return m == MlpKind::kSwiglu || m == MlpKind::kGeglu; }
// The model format's names of the MLPs ("mlp" of a transformer_block), in that order.
inline constexpr std::string_view kMlpNames[] = {"gelu", "swiglu", "relu2", "geglu"};
inline std::string_view MlpName(MlpKind m) { return kMlpNames[static_cast<int>(m)]; }

// One layer (or, in Model::specs, one spec entry with its repeat count). Sizes a kind does
// not use stay 0.
struct Layer {
  std::string name;
  LayerKind op = LayerKind::kLinear;
  int64_t repeat = 1;       // specs only; expanded layers have 1
  bool repeated = false;    // specs only: "repeat" was given, so names get .0, .1, ...
  int64_t vocab = 0;        // embedding
  int64_t hidden = 0;       // embedding, layernorm, rmsnorm, transformer_block
  int64_t positions = 0;    // embedding: learned position table rows (0: none)
  int64_t token_types = 0;  // embedding: segment table rows (0: none)
  int64_t in = 0;           // linear
  int64_t out = 0;          // linear
  int64_t heads = 0;        // transformer_block: query heads
  int64_t ffn = 0;          // transformer_block: dense MLP width (0 in a mixture-of-experts block)
  bool bias = true;         // linear, transformer_block
  // transformer_block, filled in by its reader (defaults: kv_heads = heads, head_dim =
  // hidden / heads, qkv_bias = bias):
  int64_t kv_heads = 0;     // key/value heads (grouped-query attention when < heads)
  int64_t head_dim = 0;     // size of one head; q is heads x head_dim wide
  bool qkv_bias = true;     // biases on q, k and v (the other biases follow `bias`)
  bool qk_norm = false;     // an RMS norm over each head of q and of k (Qwen3)
  // Multi-latent attention (DeepSeek-V2/V3; kv_lora > 0): k and v come from a kv_lora-wide
  // latent (plus a rope_dim-wide rotary key shared by the heads) that kv_up expands per head,
  // and q from a q_lora-wide latent (0: from x directly). head_dim is the q/k head (its last
  // rope_dim rotated), v_head_dim the v head (filled in: head_dim when not given).
  int64_t kv_lora = 0;
  int64_t q_lora = 0;
  int64_t rope_dim = 0;
  int64_t v_head_dim = 0;
  // Dropout with this probability on the attention probabilities and on the attention and
  // MLP outputs before each residual add (GPT-2 and GPT-3 train with 0.1); 0: none.
  double dropout = 0;
  // Mixture of experts (experts > 0): the MLP is `experts` expert MLPs of width expert_ffn,
  // each token routed to top_k of them by a router (h x experts), plus shared_experts MLPs of
  // width shared_ffn that every token passes through.
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t expert_ffn = 0;
  int64_t shared_experts = 0;
  int64_t shared_ffn = 0;
  NormKind norm = NormKind::kLayerNorm;
  MlpKind mlp = MlpKind::kGelu;
  bool causal = false;
  bool rotary = false;
  // transformer_block, causal only: each query attends to the `window` latest keys, its own
  // included (Mistral's sliding window); 0: the whole causal prefix.
  int64_t window = 0;
  std::string tied_to;  // linear, mtp block: the embedding whose weight it shares ("" when untied)
  // transformer_block: a multi-token prediction module (DeepSeek-V3; Megatron-Core's
  // MultiTokenPredictionLayer) around the block: it embeds the tokens one further ahead with
  // the embedding `tied_to` (its own copy of that table, `vocab` rows), normalises them and
  // the incoming hidden state, projects the two side by side (2 hidden -> hidden), runs the
  // block and normalises its output, which it appends to the streams it passes on.
  bool mtp = false;

  // Filled by the loader for expanded layers:
  std::string group;       // the spec's name
  int64_t spec_index = 0;  // index of the spec in the file's "layers" array
  int64_t in_width = 0;    // width of the input rows (0: token ids)
  int64_t out_width = 0;   // width of the output rows (0: a scalar loss)
  // Multi-token prediction: the depth of an mtp block (1 for the first), 0 for other layers;
  // and how many streams of rows a layer computes on: 1, but 1 + the mtp blocks before it for
  // the layers after them (the output layer and the loss run over the main stream and each
  // prediction's, which the mtp blocks pass on side by side).
  int64_t mtp_depth = 0;
  int64_t streams = 1;

  // Every field that decides what the layer computes and at which widths: all of the above
  // but names, repeats, ties and the spec index. SameShape (core/model.h) compares these.
  auto ShapeFields() const {
    return std::tie(op, vocab, hidden, positions, token_types, in, out, heads, ffn, bias, kv_heads,
                    head_dim, qkv_bias, qk_norm, kv_lora, q_lora, rope_dim, v_head_dim, dropout,
                    experts, top_k, expert_ffn, shared_experts, shared_ffn, norm, mlp, causal,
                    rotary, window, mtp, in_width, out_width, mtp_depth, streams);
  }
};

struct ModelInput {
  int64_t micro_batch_size = 0;
  int64_t seq_len = 0;   // token models
  int64_t features = 0;  // feature models
  bool tokens() const { return seq_len > 0; }
  // Rows each layer sees per micro-batch: micro_batch_size * seq_len, or micro_batch_size.
  int64_t rows() const { return micro_batch_size * (seq_len > 0 ? seq_len : 1); }
};

// The input whose rows one layer computes on: `input` with each micro-batch sample counted
// once per stream (Layer::streams; the output layer and loss after multi-token prediction).
inline ModelInput LayerInput(const Layer& l, ModelInput input) {
  input.micro_batch_size *= l.streams;
  return input;
}

}  // namespace pp
