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
#include "core/layer_kinds.h"
#include "core/parallelism.h"
#include "core/status.h"

namespace pp {

inline constexpr std::string_view kModelFormat = "pp-partition.model/v1";
inline constexpr int64_t kMaxLayers = 100000;
inline constexpr int64_t kMaxDim = int64_t{1} << 24;  // any width, vocabulary or length
inline constexpr int64_t kMaxMicroBatchSize = int64_t{1} << 20;

// Layer kinds, Layer and ModelInput: core/layer_kinds.h; what each kind means:
// core/kind_entry.h. These three ask the kind's entry.
std::string_view LayerKindName(LayerKind op);
std::optional<LayerKind> ParseLayerKind(std::string_view name);
bool IsLoss(LayerKind op);

// Element types. kFp8 is an analytic-only type (profiler/analytic.h): every element is one byte
// and matrix products run at the device's fp8 tensor rate; the CPU and CUDA layers run bf16
// and fp32 only.
enum class DType { kBf16, kFp32, kFp8 };
std::string_view DTypeName(DType dtype);  // "bf16", "fp32", "fp8"
std::optional<DType> ParseDType(std::string_view name);
// Bytes of one element: bf16 2, fp32 4, fp8 1. An fp8 model counts every tensor at one byte,
// which is a lower bound. Transformer Engine's FP8 training keeps weights, most activations
// and the elementwise kernels in bf16. Only the linear layers' products and the copies of
// their inputs saved for the backward are fp8. Its fused attention runs in bf16
// (profiler/efficiency.h ComputeDType).
int64_t DTypeBytes(DType dtype);

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
// Of one rank's parameters under `par`, those a tied layer shares with the layer it is tied
// to (a tied output layer's weight: the embedding's table); 0 for an untied layer.
int64_t TiedParamCount(const Layer& layer, const ShardDegrees& par);
// Of `param_bytes`, one rank's parameter bytes of `layer` under `par` (RankParamCount times
// the bytes of a parameter), those it shares with the layer it is tied to: what a profile
// records as tied_param_bytes.
uint64_t TiedParamBytes(const Layer& layer, const ShardDegrees& par, uint64_t param_bytes);
// Whether two layers compute the same function of the same shapes (a block's repeats, say), so
// that one's measured or estimated cost stands for the other's. Names and ties do not matter.
bool SameShape(const Layer& a, const Layer& b);

// Parameters of the model: a tied weight counts once.
int64_t ModelParamCount(const Model& model);

}  // namespace pp
