// The registry of layer kinds (core/layer_kinds.h, core/kind_entry.h) against the kinds'
// implementations: for every registered kind, on random small shapes (tests/kind_samples.h),
// the entry's parameter count, widths and analytic memory agree with what the CPU reference
// layer really holds and produces, its kernel lists have a part exactly where the layer has
// work, and a model document with the kind reads back to itself.
#include <gtest/gtest.h>

#include <iterator>
#include <random>
#include <set>
#include <string>

#include "core/kind_entry.h"
#include "core/model.h"
#include "layers/layer.h"
#include "profiler/analytic.h"
#include "profiler/kernels.h"
#include "tests/kind_samples.h"

namespace pp {
namespace {

constexpr int kSamplesPerKind = 40;

TEST(LayerKinds, EveryKindHasItsOwnNameThatParsesBack) {
  std::set<std::string> names;
  for (LayerKind kind : kLayerKinds) {
    const std::string name(LayerKindName(kind));
    EXPECT_NE(name, "?");
    EXPECT_TRUE(names.insert(name).second) << name << " is registered twice";
    ASSERT_TRUE(ParseLayerKind(name).has_value()) << name;
    EXPECT_EQ(*ParseLayerKind(name), kind) << name;
  }
  EXPECT_EQ(names.size(), std::size(kLayerKinds));
  EXPECT_FALSE(ParseLayerKind("batchnorm").has_value());
}

TEST(LayerKinds, AnUnknownOpListsEveryRegisteredKind) {
  std::mt19937_64 rng(1);
  Json doc = testing::RandomKindSample(LayerKind::kRelu, rng).doc;
  doc["layers"][0]["op"] = "batchnorm";
  Result<Model> m = ModelFromJson(doc);
  ASSERT_FALSE(m.ok());
  for (LayerKind kind : kLayerKinds) {
    EXPECT_NE(m.message().find(std::string(LayerKindName(kind))), std::string::npos)
        << m.message();
  }
}

void CheckRoundTrip(const Model& model, const testing::KindSample& sample);

// Checks one sample of `kind`.
void CheckSample(LayerKind kind, const testing::KindSample& sample) {
  SCOPED_TRACE(sample.doc.dump());
  Result<Model> m = ModelFromJson(sample.doc);
  ASSERT_TRUE(m.ok()) << m.message();
  ASSERT_GT(m->layers.size(), sample.index);
  const Layer& l = m->layers[sample.index];
  ASSERT_EQ(l.op, kind);
  const LayerKindEntry& entry = KindEntry(kind);
  EXPECT_EQ(IsLoss(kind), entry.is_loss());

  // Counts and widths: the entry against the CPU layer. The reference has no mixture-of-experts
  // MLP, no q/k norm, no multi-latent attention, no dropout and no sliding window shorter than
  // the sequence yet: it refuses those blocks in one line, and the rest is checked against the
  // entry alone.
  auto made = MakeCpuLayer<double>(l, m->input);
  if (l.experts > 0 || l.qk_norm || l.kv_lora > 0 || l.dropout > 0 ||
      (l.window > 0 && l.window < m->input.seq_len)) {
    ASSERT_FALSE(made.ok());
    EXPECT_NE(made.message().find("not available yet"), std::string::npos) << made.message();
    EXPECT_EQ(made.message().find('\n'), std::string::npos) << made.message();
    const LayerKernels k = ListKernels(l, m->input, DType::kBf16);
    EXPECT_FALSE(k.forward.empty());
    EXPECT_FALSE(k.backward_input.empty());
    EXPECT_FALSE(k.backward_weight.empty());
    CheckRoundTrip(*m, sample);
    return;
  }
  ASSERT_TRUE(made.ok()) << made.message();
  const CpuLayer<double>& cpu = **made;
  EXPECT_EQ(LayerParamCount(l), cpu.param_count());
  EXPECT_EQ(cpu.rows(), m->input.rows());
  EXPECT_EQ(cpu.in_width(), l.in_width);
  EXPECT_EQ(entry.reads_token_ids(), !cpu.has_input_gradient());
  if (entry.is_loss()) {
    EXPECT_EQ(l.out_width, 0);
    EXPECT_EQ(cpu.output_count(), 1);
  } else {
    EXPECT_EQ(cpu.out_width(), l.out_width);
    EXPECT_EQ(cpu.output_count(), m->input.rows() * l.out_width);
  }
  // The next layer reads this layer's output at the width the entry gave.
  if (sample.index + 1 < m->layers.size()) {
    EXPECT_EQ(m->layers[sample.index + 1].in_width, l.out_width);
  }

  // Analytic memory in fp32, where every kept value is 4 bytes: what the layer holds, keeps
  // and sends. The one difference by design: an embedding with a token-type table is charged
  // for reading its int32 type ids, which the reference (every row of type 0) never keeps.
  const LayerMemory mem = AnalyticLayerMemory(l, m->input, DType::kFp32);
  EXPECT_EQ(mem.param_bytes, 4.0 * static_cast<double>(cpu.param_count()));
  EXPECT_EQ(mem.output_bytes, 4.0 * static_cast<double>(cpu.output_count()));
  const double type_ids = kind == LayerKind::kEmbedding && l.token_types > 0
                              ? 4.0 * static_cast<double>(m->input.rows())
                              : 0.0;
  EXPECT_EQ(mem.activation_bytes, 4.0 * static_cast<double>(cpu.saved_count()) + type_ids);

  // Kernels: a forward always; an input gradient exactly when the layer has one; a weight
  // gradient exactly when it has parameters.
  const LayerKernels k = ListKernels(l, m->input, DType::kBf16);
  EXPECT_FALSE(k.forward.empty());
  EXPECT_EQ(k.backward_input.empty(), !cpu.has_input_gradient());
  EXPECT_EQ(k.backward_weight.empty(), cpu.param_count() == 0);

  CheckRoundTrip(*m, sample);
}

// JSON: written and read again, the model is the same, and every field the sample gave is
// written back with its value.
void CheckRoundTrip(const Model& model, const testing::KindSample& sample) {
  const Model* m = &model;
  const Json written = ModelToJson(*m);
  Result<Model> again = ModelFromJson(written);
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_EQ(ModelToJson(*again), written);
  ASSERT_EQ(again->layers.size(), m->layers.size());
  for (size_t i = 0; i < m->layers.size(); ++i) {
    EXPECT_TRUE(again->layers[i].ShapeFields() == m->layers[i].ShapeFields()) << i;
    EXPECT_EQ(again->layers[i].name, m->layers[i].name);
    EXPECT_EQ(again->layers[i].tied_to, m->layers[i].tied_to);
  }
  const Json& given = sample.doc["layers"];
  ASSERT_EQ(written["layers"].size(), given.size());
  for (size_t i = 0; i < given.size(); ++i) {
    for (const auto& [key, value] : given[i].items()) {
      ASSERT_TRUE(written["layers"][i].contains(key)) << key;
      EXPECT_EQ(written["layers"][i][key], value) << key;
    }
  }
}

TEST(LayerKinds, EachEntryAgreesWithItsCpuLayerAndRoundTrips) {
  std::mt19937_64 rng(2024);
  for (LayerKind kind : kLayerKinds) {
    SCOPED_TRACE(std::string(LayerKindName(kind)));
    for (int i = 0; i < kSamplesPerKind; ++i) {
      CheckSample(kind, testing::RandomKindSample(kind, rng));
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(LayerKinds, RepeatsOfOneSpecHaveTheSameShape) {
  std::mt19937_64 rng(7);
  for (LayerKind kind : kLayerKinds) {
    for (int i = 0; i < kSamplesPerKind; ++i) {
      const testing::KindSample s = testing::RandomKindSample(kind, rng);
      Result<Model> m = ModelFromJson(s.doc);
      ASSERT_TRUE(m.ok()) << m.message();
      for (size_t j = 0; j + 1 < m->layers.size(); ++j) {
        const Layer& a = m->layers[j];
        const Layer& b = m->layers[j + 1];
        EXPECT_EQ(SameShape(a, b), a.group == b.group) << s.doc.dump();
      }
    }
  }
}

}  // namespace
}  // namespace pp
