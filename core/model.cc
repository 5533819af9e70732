#include "core/model.h"

#include <tuple>
#include <unordered_map>

namespace pp {
namespace {

struct OpEntry {
  LayerKind op;
  std::string_view name;
};
constexpr OpEntry kOps[] = {
    {LayerKind::kEmbedding, "embedding"},   {LayerKind::kLinear, "linear"},
    {LayerKind::kRelu, "relu"},             {LayerKind::kGelu, "gelu"},
    {LayerKind::kLayerNorm, "layernorm"},   {LayerKind::kRmsNorm, "rmsnorm"},
    {LayerKind::kTransformerBlock, "transformer_block"},
    {LayerKind::kCrossEntropy, "cross_entropy"}, {LayerKind::kMse, "mse"},
};

std::string Index(std::string_view array, size_t i) {
  return std::string(array) + "[" + std::to_string(i) + "]";
}

// Reads one entry of "layers" into `spec`; problems go to `r`.
void ReadSpec(FieldReader& r, Layer* spec) {
  spec->name = r.Name("name");
  const std::string op_name = r.String("op");
  if (!r.ok()) return;
  const std::optional<LayerKind> op = ParseLayerKind(op_name);
  if (!op) {
    std::string known;
    for (const OpEntry& e : kOps) known += (known.empty() ? "" : ", ") + std::string(e.name);
    r.Fail("op", "unknown op " + DescribeValue(Json(op_name)) + " (known: " + known + ")");
    return;
  }
  spec->op = *op;
  spec->repeated = r.Has("repeat");
  spec->repeat = spec->repeated ? r.Int("repeat", 1, kMaxLayers) : 1;
  switch (spec->op) {
    case LayerKind::kEmbedding:
      spec->vocab = r.Int("vocab", 1, kMaxDim);
      spec->hidden = r.Int("hidden", 1, kMaxDim);
      spec->positions = r.OptInt("positions", 0, kMaxDim).value_or(0);
      spec->token_types = r.OptInt("token_types", 0, kMaxDim).value_or(0);
      break;
    case LayerKind::kLinear:
      spec->in = r.Int("in", 1, kMaxDim);
      spec->out = r.Int("out", 1, kMaxDim);
      spec->bias = r.Bool("bias", true);
      spec->tied_to = r.OptString("tied_to").value_or("");
      break;
    case LayerKind::kLayerNorm:
    case LayerKind::kRmsNorm:
      spec->hidden = r.Int("hidden", 1, kMaxDim);
      break;
    case LayerKind::kTransformerBlock: {
      spec->hidden = r.Int("hidden", 1, kMaxDim);
      spec->heads = r.Int("heads", 1, kMaxDim);
      spec->ffn = r.Int("ffn", 1, kMaxDim);
      spec->bias = r.Bool("bias", true);
      spec->causal = r.Bool("causal", false);
      spec->rotary = r.Bool("rotary", false);
      const std::string norm = r.OptString("norm").value_or("layernorm");
      const std::string mlp = r.OptString("mlp").value_or("gelu");
      if (!r.ok()) return;
      if (norm == "layernorm") spec->norm = NormKind::kLayerNorm;
      else if (norm == "rmsnorm") spec->norm = NormKind::kRmsNorm;
      else r.Fail("norm", "must be \"layernorm\" or \"rmsnorm\" (got " + DescribeValue(Json(norm)) + ")");
      if (mlp == "gelu") spec->mlp = MlpKind::kGelu;
      else if (mlp == "swiglu") spec->mlp = MlpKind::kSwiglu;
      else r.Fail("mlp", "must be \"gelu\" or \"swiglu\" (got " + DescribeValue(Json(mlp)) + ")");
      if (r.ok() && spec->hidden % spec->heads != 0) {
        r.Fail("heads", std::to_string(spec->heads) + " heads do not divide hidden size " +
                            std::to_string(spec->hidden));
      }
      if (r.ok() && spec->rotary && (spec->hidden / spec->heads) % 2 != 0) {
        r.Fail("rotary", "needs an even head size (hidden / heads = " +
                             std::to_string(spec->hidden / spec->heads) + ")");
      }
      break;
    }
    case LayerKind::kRelu:
    case LayerKind::kGelu:
    case LayerKind::kCrossEntropy:
    case LayerKind::kMse:
      break;
  }
}

// Infers each expanded layer's input and output widths and checks that neighbours agree.
// `specs_path(i)` names spec i for messages.
Status InferShapes(Model& m) {
  const bool tokens = m.input.tokens();
  int64_t width = tokens ? 0 : m.input.features;  // 0: token ids
  const size_t n = m.layers.size();
  for (size_t i = 0; i < n; ++i) {
    Layer& l = m.layers[i];
    const std::string at = Index("layers", static_cast<size_t>(l.spec_index));
    auto fail = [&](std::string_view field, const std::string& problem) {
      return Status::Error(at + (field.empty() ? "" : "." + std::string(field)) + ": " + problem);
    };
    if (IsLoss(l.op) && i + 1 != n) {
      return fail("op", std::string(LayerKindName(l.op)) + " is a loss and must be the last layer");
    }
    if (width == 0 && l.op != LayerKind::kEmbedding) {
      return fail("op", "a token model (input.seq_len) must start with an embedding layer");
    }
    if (l.op == LayerKind::kEmbedding && width != 0) {
      return fail("op", "an embedding must be the first layer of a token model (input.seq_len)");
    }
    auto expect = [&](std::string_view field, int64_t got) -> Status {
      if (got == width) return Status::Ok();
      return fail(field, std::to_string(got) + " does not match the width " +
                             std::to_string(width) + " of the previous layer's output");
    };
    l.in_width = width;
    switch (l.op) {
      case LayerKind::kEmbedding:
        if (l.positions > 0 && l.positions < m.input.seq_len) {
          return fail("positions", std::to_string(l.positions) + " positions are fewer than input.seq_len " +
                                       std::to_string(m.input.seq_len));
        }
        width = l.hidden;
        break;
      case LayerKind::kLinear:
        PP_RETURN_IF_ERROR(expect("in", l.in));
        width = l.out;
        break;
      case LayerKind::kLayerNorm:
      case LayerKind::kRmsNorm:
        PP_RETURN_IF_ERROR(expect("hidden", l.hidden));
        break;
      case LayerKind::kTransformerBlock:
        if (!tokens) return fail("op", "a transformer_block needs a token model (input.seq_len)");
        PP_RETURN_IF_ERROR(expect("hidden", l.hidden));
        break;
      case LayerKind::kRelu:
      case LayerKind::kGelu:
        break;
      case LayerKind::kCrossEntropy:
      case LayerKind::kMse:
        width = 0;
        break;
    }
    l.out_width = width;
  }
  return Status::Ok();
}

Status CheckTies(const Model& m) {
  std::unordered_map<std::string, const Layer*> by_name;
  for (const Layer& l : m.layers) by_name.emplace(l.name, &l);
  for (const Layer& l : m.layers) {
    if (l.tied_to.empty()) continue;
    const std::string at = Index("layers", static_cast<size_t>(l.spec_index)) + ".tied_to";
    auto it = by_name.find(l.tied_to);
    if (it == by_name.end()) {
      return Status::Error(at + ": no layer named " + DescribeValue(Json(l.tied_to)));
    }
    const Layer& t = *it->second;
    if (t.op != LayerKind::kEmbedding) {
      return Status::Error(at + ": " + DescribeValue(Json(l.tied_to)) + " is not an embedding");
    }
    if (t.vocab != l.out || t.hidden != l.in) {
      return Status::Error(at + ": the embedding's table (" + std::to_string(t.vocab) + " x " +
                           std::to_string(t.hidden) + ") does not match this linear (in " +
                           std::to_string(l.in) + ", out " + std::to_string(l.out) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace

std::string_view LayerKindName(LayerKind op) {
  for (const OpEntry& e : kOps) {
    if (e.op == op) return e.name;
  }
  return "?";
}

std::optional<LayerKind> ParseLayerKind(std::string_view name) {
  for (const OpEntry& e : kOps) {
    if (e.name == name) return e.op;
  }
  return std::nullopt;
}

bool IsLoss(LayerKind op) { return op == LayerKind::kCrossEntropy || op == LayerKind::kMse; }

std::string_view DTypeName(DType dtype) { return dtype == DType::kBf16 ? "bf16" : "fp32"; }

std::optional<DType> ParseDType(std::string_view name) {
  if (name == "bf16") return DType::kBf16;
  if (name == "fp32") return DType::kFp32;
  return std::nullopt;
}

int64_t DTypeBytes(DType dtype) { return dtype == DType::kBf16 ? 2 : 4; }

Result<Model> ModelFromJson(const Json& doc) {
  FieldReader r(doc, "");
  r.Format(kModelFormat);
  Model m;
  m.name = r.Name("name");
  m.source = r.OptString("source").value_or("");
  const std::string dtype = r.OptString("dtype").value_or("bf16");
  if (r.ok()) {
    if (auto d = ParseDType(dtype)) m.dtype = *d;
    else r.Fail("dtype", "must be \"bf16\" or \"fp32\" (got " + DescribeValue(Json(dtype)) + ")");
  }
  const Json* input = r.Object("input");
  const Json* layers = r.Array("layers");
  if (!r.ok()) return r.status();

  FieldReader in(*input, "input");
  m.input.micro_batch_size = in.Int("micro_batch_size", 1, kMaxMicroBatchSize);
  m.input.seq_len = in.OptInt("seq_len", 1, kMaxDim).value_or(0);
  m.input.features = in.OptInt("features", 1, kMaxDim).value_or(0);
  if (in.ok() && (m.input.seq_len > 0) == (m.input.features > 0)) {
    in.Fail("seq_len", "give exactly one of input.seq_len (token models) and input.features");
  }
  if (!in.ok()) return in.status();

  if (layers->empty()) return Status::Error("layers: the model has no layers");
  std::unordered_map<std::string, size_t> seen;  // expanded name -> spec index
  int64_t total = 0;
  for (size_t i = 0; i < layers->size(); ++i) {
    const std::string at = Index("layers", i);
    FieldReader lr((*layers)[i], at);
    Layer spec;
    if (lr.ok()) ReadSpec(lr, &spec);
    if (!lr.ok()) return lr.status();
    total += spec.repeat;
    if (total > kMaxLayers) {
      return Status::Error(at + ".repeat: the model expands to more than " +
                           std::to_string(kMaxLayers) + " layers");
    }
    m.specs.push_back(spec);
    for (int64_t k = 0; k < spec.repeat; ++k) {
      Layer l = spec;
      l.repeat = 1;
      l.repeated = false;
      l.group = spec.name;
      l.spec_index = static_cast<int64_t>(i);
      if (spec.repeated) l.name = spec.name + "." + std::to_string(k);
      if (l.name.size() > kMaxNameChars) {
        return Status::Error(at + ".name: the expanded name " + DescribeValue(Json(l.name)) +
                             " is over 256 characters");
      }
      auto [it, inserted] = seen.emplace(l.name, i);
      if (!inserted) {
        return Status::Error(at + ".name: duplicate layer name " + DescribeValue(Json(l.name)) +
                             " (also in layers[" + std::to_string(it->second) + "])");
      }
      m.layers.push_back(std::move(l));
    }
  }
  PP_RETURN_IF_ERROR(InferShapes(m));
  PP_RETURN_IF_ERROR(CheckTies(m));
  return m;
}

Result<Model> LoadModel(const std::string& path) {
  Result<Json> doc = ReadJsonFile(path);
  if (!doc.ok()) return doc.status();
  Result<Model> m = ModelFromJson(*doc);
  if (!m.ok()) return m.status().Prefixed(path);
  return m;
}

Json ModelToJson(const Model& m) {
  Json doc;
  doc["format"] = kModelFormat;
  doc["name"] = m.name;
  if (!m.source.empty()) doc["source"] = m.source;
  doc["dtype"] = DTypeName(m.dtype);
  Json input;
  input["micro_batch_size"] = m.input.micro_batch_size;
  if (m.input.tokens()) input["seq_len"] = m.input.seq_len;
  else input["features"] = m.input.features;
  doc["input"] = input;
  Json layers = Json::array();
  for (const Layer& s : m.specs) {
    Json l;
    l["name"] = s.name;
    l["op"] = LayerKindName(s.op);
    switch (s.op) {
      case LayerKind::kEmbedding:
        l["vocab"] = s.vocab;
        l["hidden"] = s.hidden;
        if (s.positions > 0) l["positions"] = s.positions;
        if (s.token_types > 0) l["token_types"] = s.token_types;
        break;
      case LayerKind::kLinear:
        l["in"] = s.in;
        l["out"] = s.out;
        l["bias"] = s.bias;
        if (!s.tied_to.empty()) l["tied_to"] = s.tied_to;
        break;
      case LayerKind::kLayerNorm:
      case LayerKind::kRmsNorm:
        l["hidden"] = s.hidden;
        break;
      case LayerKind::kTransformerBlock:
        l["hidden"] = s.hidden;
        l["heads"] = s.heads;
        l["ffn"] = s.ffn;
        l["norm"] = s.norm == NormKind::kLayerNorm ? "layernorm" : "rmsnorm";
        l["mlp"] = s.mlp == MlpKind::kGelu ? "gelu" : "swiglu";
        l["bias"] = s.bias;
        l["causal"] = s.causal;
        l["rotary"] = s.rotary;
        break;
      default:
        break;
    }
    if (s.repeated) l["repeat"] = s.repeat;
    layers.push_back(std::move(l));
  }
  doc["layers"] = std::move(layers);
  return doc;
}

int64_t LayerParamCount(const Layer& l) {
  const int64_t h = l.hidden, f = l.ffn;
  switch (l.op) {
    case LayerKind::kEmbedding:
      return (l.vocab + l.positions + l.token_types) * l.hidden;
    case LayerKind::kLinear:
      return l.in * l.out + (l.bias ? l.out : 0);
    case LayerKind::kLayerNorm:
      return 2 * h;
    case LayerKind::kRmsNorm:
      return h;
    case LayerKind::kTransformerBlock: {
      const int64_t norms = 2 * (l.norm == NormKind::kLayerNorm ? 2 * h : h);
      const int64_t attention = 4 * h * h + (l.bias ? 4 * h : 0);
      const int64_t mlp = l.mlp == MlpKind::kGelu ? 2 * h * f + (l.bias ? f + h : 0)
                                                  : 3 * h * f + (l.bias ? 2 * f + h : 0);
      return norms + attention + mlp;
    }
    default:
      return 0;
  }
}

bool SameShape(const Layer& a, const Layer& b) {
  auto fields = [](const Layer& l) {
    return std::tie(l.op, l.vocab, l.hidden, l.positions, l.token_types, l.in, l.out, l.heads,
                    l.ffn, l.bias, l.norm, l.mlp, l.causal, l.rotary, l.in_width, l.out_width);
  };
  return fields(a) == fields(b);
}

int64_t ModelParamCount(const Model& m) {
  int64_t total = 0;
  for (const Layer& l : m.layers) {
    // A tied linear shares its weight with the embedding; only its bias is its own.
    total += l.tied_to.empty() ? LayerParamCount(l) : (l.bias ? l.out : 0);
  }
  return total;
}

}  // namespace pp
