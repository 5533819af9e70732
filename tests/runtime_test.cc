// The runtime against a sequential reference: with a fixed seed, a pipelined run's loss and
// every parameter's gradient equal those of a plain loop over the micro-batches through the
// CPU reference layers (norm-wise relative error <= 1e-5, fp32), for gpipe and 1f1b,
// p in {1,2,3,4}, m in {1,4,8}; a split backward (I then W) too. Also: training lowers the
// loss, measurements are self-consistent, and a stuck pipeline ends with a named error.
#include <gtest/gtest.h>

#include <cmath>

#include "executor/runtime.h"
#include "executor/synthetic_data.h"
#include "layers/layer.h"
#include "tests/runtime_fixtures.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using testing::EvenChunks;
using testing::FeatureModel;
using testing::GradientOptions;
using testing::GradientRelativeError;
using testing::TokenModel;

struct Reference {
  double loss = 0;
  std::vector<std::vector<float>> gradients;
};

// A plain loop: for each micro-batch, forward through every layer, then backward, gradients
// accumulated with the loss weighted 1/m. Shares only the layers and the data with the runtime.
Reference Sequential(const Model& model, int m, uint64_t seed) {
  Reference ref;
  const int64_t vocab = model.layers.front().op == LayerKind::kEmbedding ? model.layers.front().vocab : 1;
  const SyntheticData data(model.input, vocab, model.layers.back().in_width, seed);
  std::vector<std::unique_ptr<CpuLayer<float>>> layers;
  std::vector<std::vector<float>> params, saved, pending;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    layers.push_back(std::move(*MakeCpuLayer<float>(model.layers[i], model.input)));
    params.emplace_back(layers.back()->param_count());
    layers.back()->Init(params.back().data(), seed * 1000003ULL + i);
    ref.gradients.emplace_back(layers.back()->param_count(), 0.0f);
    saved.emplace_back(layers.back()->saved_count());
    pending.emplace_back(layers.back()->pending_count() + 1);
  }
  const int64_t rows = model.input.rows();
  std::vector<int32_t> tokens(rows), labels(rows);
  std::vector<float> features(rows * std::max<int64_t>(model.input.features, 1)),
      targets(rows * model.layers.back().in_width);
  for (int mb = 0; mb < m; ++mb) {
    if (model.input.tokens()) data.Tokens(0, mb, tokens.data(), labels.data());
    else data.Features(0, mb, features.data(), targets.data());
    const MicroBatch batch{tokens.data(), labels.data(), targets.data()};
    std::vector<std::vector<float>> acts(model.layers.size() + 1);
    acts[0] = features;
    for (size_t i = 0; i < layers.size(); ++i) {
      std::vector<float> work(layers[i]->workspace_count() + 1);
      acts[i + 1].resize(layers[i]->output_count());
      layers[i]->Forward(params[i].data(), acts[i].data(), batch, acts[i + 1].data(),
                         saved[i].data(), work.data());
    }
    ref.loss += acts.back()[0] / m;
    std::vector<float> dy = {1.0f / static_cast<float>(m)};
    for (int i = static_cast<int>(layers.size()) - 1; i >= 0; --i) {
      std::vector<float> work(layers[i]->workspace_count() + 1), dx(acts[i].size());
      layers[i]->BackwardInput(params[i].data(), dy.data(), saved[i].data(), batch,
                               layers[i]->has_input_gradient() ? dx.data() : nullptr,
                               pending[i].data(), work.data());
      layers[i]->BackwardWeight(params[i].data(), dy.data(), saved[i].data(), pending[i].data(),
                                batch, ref.gradients[i].data(), work.data());
      dy = dx;
    }
  }
  return ref;
}

Result<RunResult> RunOnce(const Model& model, const Schedule& schedule,
                          const std::vector<ChunkRange>& chunks, RunOptions options) {
  HostTransport transport;
  auto runners = MakeCpuRunners(model, chunks, schedule, options, &transport);
  if (!runners.ok()) return runners.status();
  return RunPipeline(schedule, model.input.micro_batch_size, std::move(*runners), &transport,
                     options);
}

TEST(Runtime, PipelinedGradientsEqualSequential) {
  for (const Model& model : {TokenModel(), FeatureModel()}) {
    const int n = static_cast<int>(model.layers.size());
    for (int m : {1, 4, 8}) {
      const Reference ref = Sequential(model, m, 7);
      for (const char* name : {"gpipe", "1f1b"}) {
        for (int p = 1; p <= 4 && p <= n; ++p) {
          SCOPED_TRACE(model.name + " " + name + " p=" + std::to_string(p) + " m=" + std::to_string(m));
          const Schedule schedule = *BuildSchedule(name, p, m);
          Result<RunResult> r = RunOnce(model, schedule, EvenChunks(n, p), GradientOptions());
          ASSERT_TRUE(r.ok()) << r.message();
          EXPECT_NEAR(r->steps[0].loss, ref.loss, 1e-5 * std::fabs(ref.loss));
          ASSERT_EQ(r->gradients.size(), ref.gradients.size());
          EXPECT_LE(GradientRelativeError(r->gradients, ref.gradients), 1e-5);
        }
      }
    }
  }
}

// Chunks that recompute (keep only their input, run the forward again inside the backward)
// give the same loss and gradients as the sequential loop, and hold less memory when several
// micro-batches are in flight.
TEST(Runtime, RecomputingChunksEqualSequential) {
  for (const Model& model : {TokenModel(), FeatureModel()}) {
    const int n = static_cast<int>(model.layers.size());
    for (int m : {1, 4}) {
      const Reference ref = Sequential(model, m, 7);
      for (const char* name : {"gpipe", "1f1b"}) {
        for (int p = 2; p <= 3 && p <= n; ++p) {
          SCOPED_TRACE(model.name + " " + name + " p=" + std::to_string(p) + " m=" + std::to_string(m));
          const Schedule schedule = *BuildSchedule(name, p, m);
          std::vector<ChunkRange> chunks = EvenChunks(n, p);
          for (int c = 0; c < p; c += 2) chunks[c].recompute = true;  // the first, third, ...
          Result<RunResult> r = RunOnce(model, schedule, chunks, GradientOptions());
          ASSERT_TRUE(r.ok()) << r.message();
          EXPECT_NEAR(r->steps[0].loss, ref.loss, 1e-5 * std::fabs(ref.loss));
          EXPECT_LE(GradientRelativeError(r->gradients, ref.gradients), 1e-5);
          Result<RunResult> plain = RunOnce(model, schedule, EvenChunks(n, p), GradientOptions());
          ASSERT_TRUE(plain.ok()) << plain.message();
          if (m == 4) {
            EXPECT_LT(r->peak_memory_bytes[0], plain->peak_memory_bytes[0]);
          }
          EXPECT_EQ(r->peak_memory_bytes[1], plain->peak_memory_bytes[1]);  // device 1: plain
        }
      }
    }
  }
}

TEST(Runtime, SplitBackwardEqualsSequential) {
  // Two devices, input gradients first and weight gradients later (a zero-bubble shape).
  const Model model = TokenModel();
  Schedule s{"hand", 2, 2, {}, {}};
  using K = OpKind;
  s.stages = {{{K::kForward, 0}, {K::kForward, 1}, {K::kBackwardInput, 0}, {K::kBackwardInput, 1},
               {K::kBackwardWeight, 0}, {K::kBackwardWeight, 1}},
              {{K::kForward, 0}, {K::kBackwardInput, 0}, {K::kForward, 1}, {K::kBackwardInput, 1},
               {K::kBackwardWeight, 1}, {K::kBackwardWeight, 0}}};
  Result<RunResult> r = RunOnce(model, s, EvenChunks(static_cast<int>(model.layers.size()), 2),
                                GradientOptions());
  ASSERT_TRUE(r.ok()) << r.message();
  const Reference ref = Sequential(model, 2, 7);
  EXPECT_LE(GradientRelativeError(r->gradients, ref.gradients), 1e-5);
}

TEST(Runtime, TrainingLowersTheLossAndMeasuresConsistently) {
  const Model model = TokenModel();
  RunOptions o;
  o.steps = 40;
  o.warmup_steps = 1;
  o.learning_rate = 1e-2;
  const Schedule schedule = *BuildSchedule("1f1b", 3, 4);
  Result<RunResult> r = RunOnce(model, schedule, EvenChunks(static_cast<int>(model.layers.size()), 3), o);
  ASSERT_TRUE(r.ok()) << r.message();
  ASSERT_EQ(r->steps.size(), 41u);
  EXPECT_LT(r->steps.back().loss, 0.5 * r->steps.front().loss)
      << r->steps.front().loss << " -> " << r->steps.back().loss;
  for (const StepTiming& st : r->steps) {
    EXPECT_EQ(st.ops.size(), 3u * 4u * 2u);
    for (double busy : st.busy_ms) EXPECT_LE(busy, st.step_ms + 1e-9);
    EXPECT_GE(st.bubble_ratio, 0.0);
    EXPECT_LT(st.bubble_ratio, 1.0);
  }
  EXPECT_GT(r->throughput_samples_per_s, 0);
  ASSERT_EQ(r->peak_memory_bytes.size(), 3u);
  for (uint64_t bytes : r->peak_memory_bytes) EXPECT_GT(bytes, 0u);
}

TEST(Runtime, StuckPipelineEndsWithANamedError) {
  // Device 0 waits for B0 from device 1, which first wants F1 from device 0.
  const Model model = FeatureModel();
  Schedule s{"stuck", 2, 2, {}, {}};
  using K = OpKind;
  s.stages = {{{K::kForward, 0}, {K::kBackward, 0}, {K::kForward, 1}, {K::kBackward, 1}},
              {{K::kForward, 0}, {K::kForward, 1}, {K::kBackward, 0}, {K::kBackward, 1}}};
  RunOptions o = GradientOptions();
  o.timeout_s = 0.3;
  Result<RunResult> r = RunOnce(model, s, EvenChunks(4, 2), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("waited longer than"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("device "), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("micro-batch"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace pp
