#include "executor/tied_weights.h"

#include <algorithm>
#include <map>
#include <string>

#include "layers/layer.h"

namespace pp {

Result<std::vector<TiedWeight>> TiedWeights(const Model& model) {
  std::map<std::string, int> embeddings;  // by name
  for (size_t i = 0; i < model.layers.size(); ++i) {
    if (model.layers[i].op == LayerKind::kEmbedding) {
      embeddings.emplace(model.layers[i].name, static_cast<int>(i));
    }
  }
  std::vector<TiedWeight> ties;
  std::map<int, int> linear_of;  // embedding index -> the linear tied to it
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& l = model.layers[i];
    // A multi-token prediction block's table copy: its layer refuses to be built (layers/).
    if (l.tied_to.empty() || l.mtp) continue;
    auto it = embeddings.find(l.tied_to);
    // ModelFromJson checks the name and the shapes; a model built otherwise may not.
    if (it == embeddings.end()) {
      return Status::Error("layer " + l.name + " is tied to " + l.tied_to +
                           ", which is not an embedding of the model");
    }
    const Layer& e = model.layers[it->second];
    if (e.vocab != l.out || e.hidden != l.in) {
      return Status::Error("layer " + l.name + " is tied to " + l.tied_to +
                           ", whose table does not match its weight");
    }
    if (auto [at, fresh] = linear_of.emplace(it->second, static_cast<int>(i)); !fresh) {
      return Status::Error("layers " + model.layers[at->second].name + " and " + l.name +
                           " are both tied to " + l.tied_to +
                           ": training one weight shared by three layers is not available yet");
    }
    ties.push_back({it->second, static_cast<int>(i), e.vocab, e.hidden});
  }
  return ties;
}

int64_t ExchangeCount(const std::vector<TiedWeight>& ties, const std::vector<ChunkRange>& ranges) {
  const auto here = [&ranges](int layer) { return ChunkOfLayer(ranges, layer) >= 0; };
  int64_t count = 0;
  for (const TiedWeight& t : ties) {
    if (here(t.embedding) != here(t.linear)) count = std::max(count, t.count());
  }
  return count;
}

Status SwapThroughMailbox(Transport& mailbox, const TiedWeight& tie, bool embedding_side,
                          const float* mine, float* theirs, size_t count, double timeout_s) {
  // Keyed by the tie (its linear's index) and the side the message goes to.
  PP_RETURN_IF_ERROR(mailbox.Send(MessageKey{tie.linear, !embedding_side, 0}, mine, count));
  return mailbox.Receive(MessageKey{tie.linear, embedding_side, 0}, theirs, count, timeout_s);
}

uint64_t LayerSeed(uint64_t seed, int index) {
  return seed * 1000003ULL + static_cast<uint64_t>(index);
}

Status InitialValues(const Model& model, int index, uint64_t seed, float* values) {
  auto layer = MakeCpuLayer<float>(model.layers[index], model.input);
  if (!layer.ok()) return layer.status();
  (*layer)->Init(values, LayerSeed(seed, index));
  Result<std::vector<TiedWeight>> ties = TiedWeights(model);
  if (!ties.ok()) return ties.status();
  for (const TiedWeight& t : *ties) {
    if (t.linear != index) continue;
    auto embedding = MakeCpuLayer<float>(model.layers[t.embedding], model.input);
    if (!embedding.ok()) return embedding.status();
    std::vector<float> table(static_cast<size_t>((*embedding)->param_count()));
    (*embedding)->Init(table.data(), LayerSeed(seed, t.embedding));
    CopyTransposed(table.data(), t.vocab, t.hidden, values);
  }
  return Status::Ok();
}

void AddTransposed(const float* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) dst[j * rows + i] += src[i * cols + j];
  }
}

void CopyTransposed(const float* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) dst[j * rows + i] = src[i * cols + j];
  }
}

}  // namespace pp
