// The cuda backend of the runtime against a sequential one-stage run on the CPU reference
// (RunOnCpu with p = 1, itself checked against a plain loop in runtime_test.cc): with a
// fixed seed the pipelined run's loss and every parameter's gradient agree within 1e-5
// (norm-wise relative, fp32) for gpipe and 1f1b, p in {1,2,3,4}, m in {1,4,8}, on virtual
// devices of GPU 0 (green contexts, or plain streams where the driver has none). Where no GPU
// is visible the GPU tests skip with the reason; the host-side handoff (EventMailbox) and the
// --gpus parser are tested everywhere the CUDA paths compile.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "executor/cpu_runner.h"
#include "executor/cuda_runner.h"
#include "executor/runtime.h"
#include "tests/runtime_fixtures.h"
#include "tests/test_util.h"
#if PP_HAVE_CUDA
#include "executor/cuda_transport.h"
#include "layers/green_context.h"
#endif

namespace pp {
namespace {

using testing::EvenChunks;
using testing::FeatureModel;
using testing::GradientOptions;
using testing::GradientRelativeError;
using testing::TokenModel;

// fp32 on both sides; only the summation order differs (cuBLAS and block reductions against
// OpenBLAS and loops), which moves a gradient by ~1e-7 relative per layer.
constexpr double kFp32Tolerance = 1e-5;

// The sequential reference: one stage on the CPU, all micro-batches in order.
RunResult Sequential(const Model& model, int m) {
  const Schedule one = *BuildSchedule("gpipe", 1, m);
  Result<RunResult> r = RunOnCpu(model, {{0, static_cast<int>(model.layers.size()) - 1}}, one,
                                 GradientOptions());
  EXPECT_TRUE(r.ok()) << r.message();
  return *r;
}

#define PP_SKIP_WITHOUT_GPU()                                       \
  do {                                                              \
    const Status available = CudaBackendAvailable();                \
    if (!available.ok()) GTEST_SKIP() << available.message();       \
  } while (0)

TEST(CudaRuntime, PipelinedGradientsEqualSequential) {
  PP_SKIP_WITHOUT_GPU();
  for (const Model& model : {TokenModel(), FeatureModel()}) {
    const int n = static_cast<int>(model.layers.size());
    for (int m : {1, 4, 8}) {
      const RunResult ref = Sequential(model, m);
      for (const char* name : {"gpipe", "1f1b"}) {
        for (int p = 1; p <= 4 && p <= n; ++p) {
          SCOPED_TRACE(model.name + " " + name + " p=" + std::to_string(p) + " m=" + std::to_string(m));
          const Schedule schedule = *BuildSchedule(name, p, m);
          Result<RunResult> r = RunOnCuda(model, EvenChunks(n, p), schedule, GradientOptions(),
                                          {"0x" + std::to_string(p), DType::kFp32});
          ASSERT_TRUE(r.ok()) << r.message();
          EXPECT_NEAR(r->steps[0].loss, ref.steps[0].loss, 1e-5 * std::fabs(ref.steps[0].loss));
          EXPECT_LE(GradientRelativeError(r->gradients, ref.gradients), kFp32Tolerance);
          for (const OpTiming& op : r->steps[0].ops) EXPECT_LE(op.start_ms, op.end_ms);
        }
      }
    }
  }
}

// A head tied to the embedding trains as one weight (executor/tied_weights.h): fp32 on one,
// two and three devices (the two layers on one device, then on two), the loss and gradients
// of the fixture's sequential loop, whose shared weight's gradient is both layers' sum; and in
// bf16 after 3 steps of AdamW on two devices, both copies still equal, bit for bit.
TEST(CudaRuntime, TiedHeadTrainsAsOneWeight) {
  PP_SKIP_WITHOUT_GPU();
  const Model model = testing::TiedTokenModel();
  const testing::Tie tie = testing::TiesOf(model).at(0);
  const int n = static_cast<int>(model.layers.size());
  const testing::Reference ref = testing::Sequential(model, 4, 7);
  for (int p = 1; p <= 3; ++p) {
    SCOPED_TRACE("p=" + std::to_string(p));
    Result<RunResult> r = RunOnCuda(model, EvenChunks(n, p), *BuildSchedule("1f1b", p, 4),
                                    GradientOptions(), {"0x" + std::to_string(p), DType::kFp32});
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_NEAR(r->steps[0].loss, ref.loss, 1e-5 * std::fabs(ref.loss));
    EXPECT_LE(GradientRelativeError(r->gradients, ref.gradients), kFp32Tolerance);
  }
  RunOptions train = GradientOptions();
  train.optimizer = true;
  train.steps = 3;
  Result<RunResult> r = RunOnCuda(model, EvenChunks(n, 2), *BuildSchedule("1f1b", 2, 4), train,
                                  {"0x2", DType::kBf16});
  ASSERT_TRUE(r.ok()) << r.message();
  int differ = 0;
  for (int64_t v = 0; v < tie.vocab; ++v) {
    for (int64_t i = 0; i < tie.hidden; ++i) {
      differ += r->parameters[tie.embedding][v * tie.hidden + i] !=
                r->parameters[tie.linear][i * tie.vocab + v];
    }
  }
  EXPECT_EQ(differ, 0);
}

TEST(CudaRuntime, SplitBackwardEqualsSequential) {
  PP_SKIP_WITHOUT_GPU();
  const Model model = TokenModel();
  Schedule s{"hand", 2, 2, {}, {}};
  using K = OpKind;
  s.device_ops = {{{K::kForward, 0}, {K::kForward, 1}, {K::kBackwardInput, 0}, {K::kBackwardInput, 1},
               {K::kBackwardWeight, 0}, {K::kBackwardWeight, 1}},
              {{K::kForward, 0}, {K::kBackwardInput, 0}, {K::kForward, 1}, {K::kBackwardInput, 1},
               {K::kBackwardWeight, 1}, {K::kBackwardWeight, 0}}};
  Result<RunResult> r = RunOnCuda(model, EvenChunks(static_cast<int>(model.layers.size()), 2), s,
                                  GradientOptions(), {"0x2", DType::kFp32});
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_LE(GradientRelativeError(r->gradients, Sequential(model, 2).gradients), kFp32Tolerance);
}

TEST(CudaRuntime, TrainingLowersTheLossInBf16) {
  PP_SKIP_WITHOUT_GPU();
  const Model model = TokenModel();
  RunOptions o;
  o.steps = 40;
  o.warmup_steps = 1;
  o.learning_rate = 1e-2;
  const Schedule schedule = *BuildSchedule("1f1b", 3, 4);
  Result<RunResult> r = RunOnCuda(model, EvenChunks(static_cast<int>(model.layers.size()), 3),
                                  schedule, o, {"0x3", DType::kBf16});
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_LT(r->steps.back().loss, 0.5 * r->steps.front().loss)
      << r->steps.front().loss << " -> " << r->steps.back().loss;
  for (const StepTiming& st : r->steps) {
    EXPECT_EQ(st.ops.size(), 3u * 4u * 2u);
    EXPECT_GE(st.bubble_ratio, 0.0);
    EXPECT_LT(st.bubble_ratio, 1.0);
  }
  for (uint64_t bytes : r->peak_memory_bytes) EXPECT_GT(bytes, 0u);
}

TEST(CudaRuntime, TooFewDevicesIsANamedError) {
  PP_SKIP_WITHOUT_GPU();
  const Model model = FeatureModel();
  Result<RunResult> r = RunOnCuda(model, EvenChunks(4, 2), *BuildSchedule("gpipe", 2, 2),
                                  GradientOptions(), {"0x3", DType::kFp32});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("gives 3 devices but the plan has 2 stages"), std::string::npos)
      << r.message();
}

TEST(CudaRuntime, StuckPipelineEndsWithANamedError) {
  PP_SKIP_WITHOUT_GPU();
  const Model model = FeatureModel();
  Schedule s{"stuck", 2, 2, {}, {}};
  using K = OpKind;
  s.device_ops = {{{K::kForward, 0}, {K::kBackward, 0}, {K::kForward, 1}, {K::kBackward, 1}},
              {{K::kForward, 0}, {K::kForward, 1}, {K::kBackward, 0}, {K::kBackward, 1}}};
  RunOptions o = GradientOptions();
  o.timeout_s = 0.3;
  Result<RunResult> r = RunOnCuda(model, EvenChunks(4, 2), s, o, {"0x2", DType::kFp32});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("waited longer than"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("micro-batch"), std::string::npos) << r.message();
}

TEST(CudaRuntime, WithoutAGpuTheAnswerSaysWhy) {
  const Status available = CudaBackendAvailable();
  if (available.ok()) GTEST_SKIP() << "a GPU is visible";
  EXPECT_TRUE(available.message().rfind("no CUDA GPU is visible: ", 0) == 0 ||
              available.message() == "this pp-partition was built without CUDA")
      << available.message();
  Result<RunResult> r = RunOnCuda(FeatureModel(), EvenChunks(4, 1), *BuildSchedule("gpipe", 1, 1),
                                  GradientOptions(), {"", DType::kFp32});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), available.message());
}

#if PP_HAVE_CUDA
// The handoff needs no GPU: events are opaque handles to it.
cudaEvent_t FakeEvent(uintptr_t n) { return reinterpret_cast<cudaEvent_t>(n); }

TEST(EventMailbox, HandsOverInAnyOrderAcrossThreads) {
  EventMailbox box;
  std::thread producer([&] {
    for (int mb = 3; mb >= 0; --mb) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      box.Post({1, false, mb}, FakeEvent(100 + mb));
    }
  });
  for (int mb = 0; mb < 4; ++mb) {
    Result<cudaEvent_t> e = box.Take({1, false, mb}, 5.0);
    ASSERT_TRUE(e.ok()) << e.message();
    EXPECT_EQ(*e, FakeEvent(100 + mb));
  }
  producer.join();
  // Consumed: a second Take waits for the next step's post.
  EXPECT_FALSE(box.Take({1, false, 0}, 0.05).ok());
}

TEST(EventMailbox, TimesOutAndAborts) {
  EventMailbox box;
  Result<cudaEvent_t> late = box.Take({2, true, 0}, 0.05);
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.message().find("waited longer than"), std::string::npos);
  std::thread aborter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    box.Abort();
  });
  const auto t0 = std::chrono::steady_clock::now();
  Result<cudaEvent_t> stopped = box.Take({2, true, 1}, 30.0);
  aborter.join();
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.message(), "aborted");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(GpuSpec, ParsesListsAndShares) {
  Result<GpuSpec> list = ParseGpuSpec("0,1,2,3", 4);
  ASSERT_TRUE(list.ok()) << list.message();
  EXPECT_EQ(list->gpus, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(list->count(), 4);
  EXPECT_FALSE(list->virtual_devices());
  Result<GpuSpec> shares = ParseGpuSpec("1x4", 2);
  ASSERT_TRUE(shares.ok()) << shares.message();
  EXPECT_EQ(shares->gpus, (std::vector<int>{1}));
  EXPECT_EQ(shares->count(), 4);
  EXPECT_EQ(ParseGpuSpec("", 1)->gpus, (std::vector<int>{0}));
  EXPECT_NE(ParseGpuSpec("0,4", 4).message().find("GPU 4 does not exist"), std::string::npos);
  EXPECT_FALSE(ParseGpuSpec("0x0", 1).ok());
  EXPECT_FALSE(ParseGpuSpec("0x", 1).ok());
  EXPECT_FALSE(ParseGpuSpec("a,b", 1).ok());
  EXPECT_FALSE(ParseGpuSpec("0,,1", 2).ok());
}
#endif

}  // namespace
}  // namespace pp
