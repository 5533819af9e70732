#include "core/model.h"

#include <unordered_map>

#include "core/kind_entry.h"
#include "core/units.h"

namespace pp {
namespace {

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
    for (LayerKind k : kLayerKinds) {
      known += (known.empty() ? "" : ", ") + std::string(LayerKindName(k));
    }
    r.Fail("op", "unknown op " + DescribeValue(Json(op_name)) + " (known: " + known + ")");
    return;
  }
  spec->op = *op;
  spec->repeated = r.Has("repeat");
  spec->repeat = spec->repeated ? r.Int("repeat", 1, kMaxLayers) : 1;
  KindEntry(spec->op).Read(r, spec);
}

// Infers each expanded layer's input and output widths and checks that neighbours agree; the
// rules of each kind are its entry's (core/kind_entry.h).
Status InferShapes(Model& m) {
  int64_t width = m.input.tokens() ? 0 : m.input.features;  // 0: token ids
  const size_t n = m.layers.size();
  int64_t mtp_blocks = 0;
  for (size_t i = 0; i < n; ++i) {
    Layer& l = m.layers[i];
    const WidthContext c(Index("layers", static_cast<size_t>(l.spec_index)), width, m.input);
    const LayerKindEntry& kind = KindEntry(l.op);
    if (kind.is_loss() && i + 1 != n) {
      return c.Fail("op", std::string(kind.name()) + " is a loss and must be the last layer");
    }
    if (width == 0 && !kind.reads_token_ids()) {
      return c.Fail("op", "a token model (input.seq_len) must start with an embedding layer");
    }
    if (kind.reads_token_ids() && width != 0) {
      return c.Fail("op", "an embedding must be the first layer of a token model (input.seq_len)");
    }
    // Multi-token prediction blocks come after the model's own layers but its output layer
    // and loss, which then run over every stream (Layer::streams).
    if (l.mtp) {
      l.mtp_depth = ++mtp_blocks;
    } else if (mtp_blocks > 0) {
      if (l.op != LayerKind::kLinear && !kind.is_loss()) {
        return c.Fail("op", "a " + std::string(kind.name()) +
                                " after a multi-token prediction block (mtp): only more of "
                                "them, the output layer (linear) and the loss follow them");
      }
      l.streams = 1 + mtp_blocks;
    }
    l.in_width = width;
    Result<int64_t> out = kind.OutWidth(l, c);
    if (!out.ok()) return out.status();
    width = *out;
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
    if (l.mtp) {
      if (t.vocab != l.vocab || t.hidden != l.hidden) {
        return Status::Error(at + ": the embedding's table (" + std::to_string(t.vocab) + " x " +
                             std::to_string(t.hidden) + ") does not match this block (vocab " +
                             std::to_string(l.vocab) + ", hidden " + std::to_string(l.hidden) +
                             ")");
      }
      if (t.positions > 0 || t.token_types > 0) {
        return Status::Error(at +
                             ": multi-token prediction with an embedding's position or "
                             "token-type table is not available yet (it looks up the "
                             "token table only)");
      }
      continue;
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

std::string_view LayerKindName(LayerKind op) { return KindEntry(op).name(); }

std::optional<LayerKind> ParseLayerKind(std::string_view name) {
  for (LayerKind k : kLayerKinds) {
    if (KindEntry(k).name() == name) return k;
  }
  return std::nullopt;
}

bool IsLoss(LayerKind op) { return KindEntry(op).is_loss(); }

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBf16: return "bf16";
    case DType::kFp32: return "fp32";
    case DType::kFp8: return "fp8";
  }
  return "?";
}

std::optional<DType> ParseDType(std::string_view name) {
  if (name == "bf16") return DType::kBf16;
  if (name == "fp32") return DType::kFp32;
  if (name == "fp8") return DType::kFp8;
  return std::nullopt;
}

int64_t DTypeBytes(DType dtype) {
  switch (dtype) {
    case DType::kBf16: return 2;
    case DType::kFp32: return 4;
    case DType::kFp8: return 1;
  }
  return 4;
}

Result<Model> ModelFromJson(const Json& doc) {
  FieldReader r(doc, "");
  r.Format(kModelFormat);
  Model m;
  m.name = r.Name("name");
  m.source = r.OptString("source").value_or("");
  const std::string dtype = r.OptString("dtype").value_or("bf16");
  if (r.ok()) {
    if (auto d = ParseDType(dtype)) m.dtype = *d;
    else r.Fail("dtype", "must be \"bf16\", \"fp32\" or \"fp8\" (got " + DescribeValue(Json(dtype)) + ")");
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
  if (!m.ok()) return m.status().Prefixed(ShownPath(path));
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
    KindEntry(s.op).Write(s, &l);
    if (s.repeated) l["repeat"] = s.repeat;
    layers.push_back(std::move(l));
  }
  doc["layers"] = std::move(layers);
  return doc;
}

int64_t LayerParamCount(const Layer& l) { return KindEntry(l.op).ParamCount(l); }

int64_t TiedParamCount(const Layer& l, const ShardDegrees& par) {
  return l.tied_to.empty() ? 0 : KindEntry(l.op).SharedParamCount(l, par);
}

uint64_t TiedParamBytes(const Layer& l, const ShardDegrees& par, uint64_t param_bytes) {
  const int64_t count = KindEntry(l.op).RankParamCount(l, par);
  const int64_t tied = TiedParamCount(l, par);
  if (count <= 0 || tied <= 0) return 0;
  return param_bytes / static_cast<uint64_t>(count) * static_cast<uint64_t>(tied);
}

bool SameShape(const Layer& a, const Layer& b) { return a.ShapeFields() == b.ShapeFields(); }

int64_t ModelParamCount(const Model& m) {
  int64_t total = 0;
  for (const Layer& l : m.layers) {
    // A tied layer shares part of its weights with the layer it is tied to.
    const LayerKindEntry& kind = KindEntry(l.op);
    total += kind.ParamCount(l) - (l.tied_to.empty() ? 0 : kind.SharedParamCount(l, {}));
  }
  return total;
}

}  // namespace pp
