// Model: a description of a network as an ordered list of layers
// (format "pp-partition.model/v1", see DESIGN.md). A spec with "repeat": N expands to N
// layers named NAME.0 ... NAME.N-1; layer indices everywhere refer to the expanded list.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_util.h"
#include "core/status.h"

namespace pp {

inline constexpr std::string_view kModelFormat = "pp-partition.model/v1";
inline constexpr int64_t kMaxLayers = 100000;
inline constexpr int64_t kMaxDim = int64_t{1} << 24;  // any width, vocabulary or length
inline constexpr int64_t kMaxMicroBatchSize = int64_t{1} << 20;

enum class LayerKind {
  kEmbedding,
  kLinear,
  kRelu,
  kGelu,
  kLayerNorm,
  kRmsNorm,
  kTransformerBlock,
  kCrossEntropy,
  kMse,
};
std::string_view LayerKindName(LayerKind op);
std::optional<LayerKind> ParseLayerKind(std::string_view name);
bool IsLoss(LayerKind op);

enum class DType { kBf16, kFp32 };
std::string_view DTypeName(DType dtype);
std::optional<DType> ParseDType(std::string_view name);
int64_t DTypeBytes(DType dtype);  // 2 or 4

enum class NormKind { kLayerNorm, kRmsNorm };
enum class MlpKind { kGelu, kSwiglu };

// One layer (or, in Model::specs, one spec entry with its repeat count). Sizes an op does not
// use stay 0.
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
  int64_t heads = 0;        // transformer_block
  int64_t ffn = 0;          // transformer_block
  bool bias = true;         // linear, transformer_block
  NormKind norm = NormKind::kLayerNorm;
  MlpKind mlp = MlpKind::kGelu;
  bool causal = false;
  bool rotary = false;
  std::string tied_to;  // linear: the embedding whose weight it shares ("" when untied)

  // Filled by the loader for expanded layers:
  std::string group;       // the spec's name
  int64_t spec_index = 0;  // index of the spec in the file's "layers" array
  int64_t in_width = 0;    // width of the input rows
  int64_t out_width = 0;   // width of the output rows (0: a scalar loss)
};

struct ModelInput {
  int64_t micro_batch_size = 0;
  int64_t seq_len = 0;   // token models
  int64_t features = 0;  // feature models
  bool tokens() const { return seq_len > 0; }
  // Rows each layer sees per micro-batch: micro_batch_size * seq_len, or micro_batch_size.
  int64_t rows() const { return micro_batch_size * (seq_len > 0 ? seq_len : 1); }
};

struct Model {
  std::string name;
  std::string source;
  DType dtype = DType::kBf16;
  ModelInput input;
  std::vector<Layer> specs;   // as written in the file
  std::vector<Layer> layers;  // expanded
};

// Parses and validates a model document. Errors name the JSON path ("layers[3].hidden: ...").
Result<Model> ModelFromJson(const Json& doc);
// Reads a model file; errors are prefixed with the file name.
Result<Model> LoadModel(const std::string& path);
Json ModelToJson(const Model& model);

// Parameters one layer holds. A tied linear holds its own copy of the shared weight (as a
// pipeline stage must when the embedding lives elsewhere), so this counts it in full.
int64_t LayerParamCount(const Layer& layer);
// Whether two layers compute the same function of the same shapes (a block's repeats, say), so
// that one's measured or estimated cost stands for the other's. Names and ties do not matter.
bool SameShape(const Layer& a, const Layer& b);

// Parameters of the model: a tied weight counts once.
int64_t ModelParamCount(const Model& model);

}  // namespace pp
