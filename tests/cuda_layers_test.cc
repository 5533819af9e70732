// CUDA layers against the CPU reference (CpuLayer<float>) on fresh random inputs: y, dx,
// dparams, and the saved / pending buffers (same layouts), by norm-wise relative error
// ||out - ref|| / ||ref||, with every output buffer poisoned with NaN first so that an element
// left unwritten fails the test. Where no GPU is visible the GPU tests skip with the reason;
// the layout and no-GPU tests below them run everywhere.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "core/model.h"
#include "layers/cuda_arena.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layer.h"
#include "layers/layer.h"
#include "profiler/backend.h"
#include "tests/kind_samples.h"

namespace pp {
namespace {

// fp32: the same math in the same precision; only summation order differs (cuBLAS vs
// OpenBLAS, block reductions vs loops), which moves results by ~1e-7 relative.
constexpr double kFp32Tolerance = 1e-5;
// bf16: every stored tensor (weights, activations, kept values, gradients) is rounded to 8
// significant bits (unit roundoff 2^-9, about 2e-3) while sums stay fp32; a handful of such
// roundings in sequence keeps the norm-wise error near 5e-3, under 1e-2.
constexpr double kBf16Tolerance = 1e-2;

// Why there is no GPU, or "" when there is one.
std::string NoGpuReason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
  }
  return count == 0 ? "cudaGetDeviceCount found no device" : "";
}

Model Build(const std::string& layers, const std::string& input) {
  const Json doc = Json::parse(R"({"format": "pp-partition.model/v1", "name": "t",
      "dtype": "fp32", "input": )" + input + R"(, "layers": )" + layers + "}");
  Result<Model> m = ModelFromJson(doc);
  EXPECT_TRUE(m.ok()) << m.message();
  return m.ok() ? *m : Model{};
}

template <typename T>
float RoundTrip(float v) {
  return static_cast<float>(static_cast<T>(v));
}

double RelativeError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Values of T on the device <-> fp32 on the host.
template <typename T>
void Put(T* dst, const std::vector<float>& src) {
  std::vector<T> staged(src.begin(), src.end());
  ASSERT_EQ(cudaMemcpy(dst, staged.data(), sizeof(T) * staged.size(), cudaMemcpyHostToDevice),
            cudaSuccess);
}
template <typename T>
std::vector<float> Get(const T* src, int64_t count) {
  std::vector<T> staged(static_cast<size_t>(count));
  EXPECT_EQ(cudaMemcpy(staged.data(), src, sizeof(T) * count, cudaMemcpyDeviceToHost),
            cudaSuccess);
  std::vector<float> out(staged.size());
  for (size_t i = 0; i < staged.size(); ++i) out[i] = static_cast<float>(staged[i]);
  return out;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, double tol,
                 const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << "[" << i << "] was never written";
  }
  if (got.empty()) return;
  EXPECT_LE(RelativeError(got, want), tol) << what;
}

// Runs forward, input gradient and weight gradient on both and compares.
template <typename T>
void Compare(CudaContext& ctx, const Layer& spec, const ModelInput& in, uint64_t seed,
             double tol) {
  SCOPED_TRACE(spec.name + (sizeof(T) == 4 ? " fp32" : " bf16"));
  auto cpu_made = MakeCpuLayer<float>(spec, in);
  auto gpu_made = MakeCudaLayer<T>(spec, in);
  ASSERT_TRUE(cpu_made.ok()) << cpu_made.message();
  ASSERT_TRUE(gpu_made.ok()) << gpu_made.message();
  const CpuLayer<float>& cpu = **cpu_made;
  const CudaLayer<T>& gpu = **gpu_made;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random = [&](int64_t n, float scale) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = RoundTrip<T>(scale * normal(rng));  // exact in T and in float
    return v;
  };
  std::vector<float> params(cpu.param_count());
  cpu.Init(params.data(), seed);
  for (float& p : params) p = RoundTrip<T>(p + 0.1f * normal(rng));
  const int64_t in_count = cpu.rows() * std::max<int64_t>(cpu.in_width(), 1);
  const std::vector<float> x = random(in_count, 1.0f), targets = random(in_count, 1.0f);
  const std::vector<float> dy = random(cpu.output_count(), 1.0f);
  std::vector<float> dparams = random(cpu.param_count(), 0.01f);
  const int64_t classes = spec.op == LayerKind::kEmbedding ? spec.vocab : std::max<int64_t>(cpu.in_width(), 1);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(classes - 1));
  std::vector<int32_t> ids(static_cast<size_t>(2 * cpu.rows()));
  for (int32_t& v : ids) v = id(rng);

  // The reference.
  std::vector<float> y(cpu.output_count()), saved(cpu.saved_count()), pending(cpu.pending_count() + 1),
      work(cpu.workspace_count() + 1), dx(in_count), dp = dparams;
  const MicroBatch batch{ids.data(), ids.data() + cpu.rows(), targets.data()};
  cpu.Forward(params.data(), x.data(), batch, y.data(), saved.data(), work.data());
  cpu.BackwardInput(params.data(), dy.data(), saved.data(), batch,
                    cpu.has_input_gradient() ? dx.data() : nullptr, pending.data(), work.data());
  cpu.BackwardWeight(params.data(), dy.data(), saved.data(), pending.data(), batch, dp.data(),
                     work.data());
  pending.pop_back();

  // The same on the GPU, outputs poisoned first.
  const size_t bytes = DeviceArena::Bytes<T>(gpu.param_count()) * 2 + DeviceArena::Bytes<T>(in_count) * 3 +
                       DeviceArena::Bytes<T>(gpu.output_count()) * 2 + DeviceArena::Bytes<T>(gpu.saved_count()) +
                       DeviceArena::Bytes<T>(gpu.pending_count()) + DeviceArena::Bytes<T>(gpu.workspace_count()) +
                       DeviceArena::Bytes<int32_t>(2 * cpu.rows());
  auto arena = DeviceArena::Create(bytes);
  ASSERT_TRUE(arena.ok()) << arena.message();
  DeviceArena& a = **arena;
  T* d_params = a.Take<T>(gpu.param_count());
  T* d_dparams = a.Take<T>(gpu.param_count());
  T* d_x = a.Take<T>(in_count);
  T* d_dx = a.Take<T>(in_count);
  T* d_targets = a.Take<T>(in_count);
  T* d_y = a.Take<T>(gpu.output_count());
  T* d_dy = a.Take<T>(gpu.output_count());
  T* d_saved = a.Take<T>(gpu.saved_count());
  T* d_pending = a.Take<T>(gpu.pending_count());
  T* d_work = a.Take<T>(gpu.workspace_count());
  int32_t* d_ids = a.Take<int32_t>(2 * cpu.rows());
  ASSERT_NE(d_ids, nullptr);
  ASSERT_TRUE(gpu.Init(ctx, d_params, params.data()).ok());
  Put(d_dparams, dparams);
  Put(d_x, x);
  Put(d_targets, targets);
  Put(d_dy, dy);
  ASSERT_EQ(cudaMemcpy(d_ids, ids.data(), sizeof(int32_t) * ids.size(), cudaMemcpyHostToDevice),
            cudaSuccess);
  for (auto [p, n] : {std::pair{d_y, gpu.output_count()}, {d_dx, in_count},
                      {d_saved, gpu.saved_count()}, {d_pending, gpu.pending_count()},
                      {d_work, gpu.workspace_count()}}) {
    ASSERT_TRUE(Fill<T>(ctx, p, n, std::nanf("")).ok());
  }
  const CudaMicroBatch dbatch{d_ids, d_ids + cpu.rows(), d_targets};
  Status st = gpu.Forward(ctx, d_params, d_x, dbatch, d_y, d_saved, d_work);
  ASSERT_TRUE(st.ok()) << st.message();
  st = gpu.BackwardInput(ctx, d_params, d_dy, d_saved, dbatch,
                         gpu.has_input_gradient() ? d_dx : nullptr, d_pending, d_work);
  ASSERT_TRUE(st.ok()) << st.message();
  st = gpu.BackwardWeight(ctx, d_params, d_dy, d_saved, d_pending, dbatch, d_dparams, d_work);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(ctx.Synchronize().ok());

  ExpectClose(Get(d_y, gpu.output_count()), y, tol, "y");
  ExpectClose(Get(d_saved, gpu.saved_count()), saved, tol, "saved");
  ExpectClose(Get(d_pending, gpu.pending_count()), pending, tol, "pending");
  if (gpu.has_input_gradient()) ExpectClose(Get(d_dx, in_count), dx, tol, "dx");
  ExpectClose(Get(d_dparams, gpu.param_count()), dp, tol, "dparams");
}

struct Case {
  const char* layers;
  const char* input;
  size_t index;  // the layer under test
};

const Case kCases[] = {
    {R"([{"name":"lin","op":"linear","in":7,"out":5}])", R"({"micro_batch_size":3,"features":7})",
     0},
    {R"([{"name":"lin_nobias","op":"linear","in":13,"out":9,"bias":false}])",
     R"({"micro_batch_size":17,"features":13})", 0},
    {R"([{"name":"lin_row1","op":"linear","in":64,"out":40}])",
     R"({"micro_batch_size":1,"features":64})", 0},
    {R"([{"name":"relu","op":"relu"}])", R"({"micro_batch_size":17,"features":11})", 0},
    {R"([{"name":"gelu","op":"gelu"}])", R"({"micro_batch_size":3,"features":7})", 0},
    {R"([{"name":"ln","op":"layernorm","hidden":9}])", R"({"micro_batch_size":3,"features":9})", 0},
    {R"([{"name":"ln_wide","op":"layernorm","hidden":1000}])",
     R"({"micro_batch_size":1,"features":1000})", 0},
    {R"([{"name":"rms","op":"rmsnorm","hidden":130}])", R"({"micro_batch_size":17,"features":130})",
     0},
    {R"([{"name":"mse","op":"mse"}])", R"({"micro_batch_size":3,"features":6})", 0},
    {R"([{"name":"emb","op":"embedding","vocab":11,"hidden":6,"positions":5,"token_types":2},
         {"name":"ce","op":"cross_entropy"}])",
     R"({"micro_batch_size":2,"seq_len":5})", 0},
    {R"([{"name":"emb","op":"embedding","vocab":1001,"hidden":6},
         {"name":"ce_wide","op":"cross_entropy"}])",
     R"({"micro_batch_size":1,"seq_len":17})", 1},
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":12},
         {"name":"block_heads3","op":"transformer_block","hidden":12,"heads":3,"ffn":20,"causal":true}])",
     R"({"micro_batch_size":2,"seq_len":5})", 1},
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":12},
         {"name":"block_full","op":"transformer_block","hidden":12,"heads":2,"ffn":16,"causal":false}])",
     R"({"micro_batch_size":3,"seq_len":1})", 1},
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
         {"name":"block_llama","op":"transformer_block","hidden":8,"heads":2,"ffn":12,"norm":"rmsnorm",
          "mlp":"swiglu","bias":false,"rotary":true,"causal":true}])",
     R"({"micro_batch_size":2,"seq_len":5})", 1},
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
         {"name":"block_swiglu_bias","op":"transformer_block","hidden":8,"heads":4,"ffn":10,
          "mlp":"swiglu","bias":true,"rotary":true,"causal":false}])",
     R"({"micro_batch_size":2,"seq_len":5})", 1},
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
         {"name":"block_geglu","op":"transformer_block","hidden":8,"heads":2,"ffn":12,
          "norm":"rmsnorm","mlp":"geglu","bias":true,"rotary":true,"causal":true}])",
     R"({"micro_batch_size":2,"seq_len":5})", 1},
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
         {"name":"block_relu2","op":"transformer_block","hidden":8,"heads":2,"ffn":12,
          "mlp":"relu2","bias":false,"rotary":true,"causal":true}])",
     R"({"micro_batch_size":2,"seq_len":5})", 1},
    // Grouped-query attention: two query heads per key/value head, and one key/value head for
    // all four (the gradients of a shared head summed over its queries, rotary on k).
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
         {"name":"block_gqa2","op":"transformer_block","hidden":8,"heads":4,"kv_heads":2,"ffn":12,
          "norm":"rmsnorm","mlp":"swiglu","bias":false,"rotary":true,"causal":true}])",
     R"({"micro_batch_size":2,"seq_len":5})", 1},
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":16},
         {"name":"block_gqa4","op":"transformer_block","hidden":16,"heads":4,"kv_heads":1,"ffn":24,
          "mlp":"relu2","bias":true,"rotary":true,"causal":false}])",
     R"({"micro_batch_size":3,"seq_len":7})", 1},
    {R"([{"name":"e","op":"embedding","vocab":11,"hidden":96},
         {"name":"block_rows17","op":"transformer_block","hidden":96,"heads":3,"ffn":200,"norm":"rmsnorm",
          "mlp":"swiglu","bias":false,"rotary":true,"causal":true}])",
     R"({"micro_batch_size":1,"seq_len":17})", 1},
};

class CudaLayers : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = NoGpuReason();
    if (!why.empty()) GTEST_SKIP() << "no CUDA GPU: " << why;
    auto made = CudaContext::Create(0);
    ASSERT_TRUE(made.ok()) << made.message();
    ctx_ = std::move(*made);
  }
  std::unique_ptr<CudaContext> ctx_;
};

TEST_F(CudaLayers, Fp32MatchesTheReference) {
  uint64_t seed = 1;
  for (const Case& c : kCases) {
    const Model m = Build(c.layers, c.input);
    ASSERT_GT(m.layers.size(), c.index);
    Compare<float>(*ctx_, m.layers[c.index], m.input, seed++, kFp32Tolerance);
  }
}

TEST_F(CudaLayers, Bf16MatchesTheReference) {
  uint64_t seed = 100;
  for (const Case& c : kCases) {
    const Model m = Build(c.layers, c.input);
    ASSERT_GT(m.layers.size(), c.index);
    Compare<__nv_bfloat16>(*ctx_, m.layers[c.index], m.input, seed++, kBf16Tolerance);
  }
}

// The profiler's device-drawn inputs (FillNormal): every element written, finite, and the
// moments of a standard normal (2^20 draws: mean within 0.01, variance within 0.02, the share
// beyond 2 within 0.005 of 0.0455); another seed, other values.
TEST_F(CudaLayers, FillNormalDrawsStandardNormalValues) {
  constexpr int64_t kCount = 1 << 20;
  float* device = nullptr;
  ASSERT_EQ(cudaMalloc(&device, sizeof(float) * kCount * 2), cudaSuccess);
  std::vector<float> poison(kCount * 2, std::nanf(""));
  Put(device, poison);
  ASSERT_TRUE(FillNormal<float>(*ctx_, device, kCount, 7).ok());
  ASSERT_TRUE(FillNormal<float>(*ctx_, device + kCount, kCount, 8).ok());
  ASSERT_TRUE(ctx_->Synchronize().ok());
  const std::vector<float> got = Get(device, kCount * 2);
  ASSERT_EQ(cudaFree(device), cudaSuccess);
  double sum = 0, squares = 0, tails = 0, same = 0;
  for (int64_t i = 0; i < kCount; ++i) {
    const double v = got[static_cast<size_t>(i)];
    ASSERT_TRUE(std::isfinite(v)) << i;
    ASSERT_TRUE(std::isfinite(got[static_cast<size_t>(kCount + i)])) << kCount + i;
    sum += v;
    squares += v * v;
    tails += std::abs(v) > 2 ? 1 : 0;
    same += got[static_cast<size_t>(i)] == got[static_cast<size_t>(kCount + i)] ? 1 : 0;
  }
  const double mean = sum / kCount;
  EXPECT_NEAR(mean, 0, 0.01);
  EXPECT_NEAR(squares / kCount - mean * mean, 1, 0.02);
  EXPECT_NEAR(tails / kCount, 0.0455, 0.005);
  EXPECT_LT(same / kCount, 0.01);
}

// Runs everywhere: the CUDA layers report the reference's sizes, so kept activations and the
// element-for-element comparison line up, at the shapes of the shipped models.
TEST(CudaLayerLayout, CountsMatchTheReference) {
  for (const char* name : {"gpt2-small", "llama-7b", "bert-large", "llama3-8b"}) {
    // The GPU machine runs this binary from another checkout: PP_SOURCE_DIR in the
    // environment names it.
    const char* root = std::getenv("PP_SOURCE_DIR");
    Result<Model> m = LoadModel(std::string(root != nullptr ? root : PP_SOURCE_DIR) + "/models/" +
                                name + ".json");
    ASSERT_TRUE(m.ok()) << m.message();
    ModelInput in = m->input;
    in.micro_batch_size = 1;
    in.seq_len = in.seq_len > 0 ? 64 : 0;
    for (const Layer& spec : m->layers) {
      SCOPED_TRACE(spec.name);
      auto cpu = MakeCpuLayer<float>(spec, in);
      auto gpu = MakeCudaLayer<__nv_bfloat16>(spec, in);
      ASSERT_TRUE(cpu.ok() && gpu.ok());
      EXPECT_EQ((*gpu)->param_count(), (*cpu)->param_count());
      EXPECT_EQ((*gpu)->saved_count(), (*cpu)->saved_count());
      EXPECT_EQ((*gpu)->pending_count(), (*cpu)->pending_count());
      EXPECT_EQ((*gpu)->output_count(), (*cpu)->output_count());
      EXPECT_EQ((*gpu)->rows(), (*cpu)->rows());
      EXPECT_EQ((*gpu)->in_width(), (*cpu)->in_width());
      EXPECT_EQ((*gpu)->out_width(), (*cpu)->out_width());
    }
  }
}

// Runs everywhere: every registered kind has a CUDA layer (MakeCudaLayer reaches its factory
// through PP_LAYER_KINDS), and it reports the reference's sizes, on random small shapes.
TEST(CudaLayerLayout, EveryKindHasACudaLayerWithTheReferenceCounts) {
  std::mt19937_64 rng(11);
  for (LayerKind kind : kLayerKinds) {
    SCOPED_TRACE(std::string(LayerKindName(kind)));
    for (int i = 0; i < 10; ++i) {
      const testing::KindSample s = testing::RandomKindSample(kind, rng);
      const Model m = Build(s.doc["layers"].dump(), s.doc["input"].dump());
      ASSERT_GT(m.layers.size(), s.index);
      const Layer& spec = m.layers[s.index];
      auto cpu = MakeCpuLayer<float>(spec, m.input);
      auto f32 = MakeCudaLayer<float>(spec, m.input);
      auto bf16 = MakeCudaLayer<__nv_bfloat16>(spec, m.input);
      // Blocks the CUDA layers do not implement yet (a head size of its own, separate q/k/v
      // biases, q/k norms, multi-latent attention, experts, dropout) are refused in one line.
      const bool plain =
          spec.op != LayerKind::kTransformerBlock ||
          (spec.head_dim * spec.heads == spec.hidden && spec.qkv_bias == spec.bias &&
           !spec.qk_norm && spec.kv_lora == 0 && spec.experts == 0 && spec.dropout == 0);
      if (!plain) {
        for (const Status* refused : {&f32.status(), &bf16.status()}) {
          EXPECT_FALSE(refused->ok()) << s.doc.dump();
          EXPECT_NE(refused->message().find("not available yet"), std::string::npos)
              << refused->message();
        }
        continue;
      }
      ASSERT_TRUE(cpu.ok() && f32.ok() && bf16.ok()) << s.doc.dump();
      for (const LayerShape* gpu : {static_cast<const LayerShape*>(f32->get()),
                                    static_cast<const LayerShape*>(bf16->get())}) {
        EXPECT_EQ(gpu->param_count(), (*cpu)->param_count());
        EXPECT_EQ(gpu->saved_count(), (*cpu)->saved_count());
        EXPECT_EQ(gpu->pending_count(), (*cpu)->pending_count());
        EXPECT_EQ(gpu->output_count(), (*cpu)->output_count());
        EXPECT_EQ(gpu->rows(), (*cpu)->rows());
        EXPECT_EQ(gpu->in_width(), (*cpu)->in_width());
        EXPECT_EQ(gpu->out_width(), (*cpu)->out_width());
      }
    }
  }
}

TEST(CudaBackend, SaysClearlyWhenThereIsNoGpuAndProfilesOnAShare) {
  const Model m = Build(R"([{"name":"lin","op":"linear","in":4,"out":4}])",
                        R"({"micro_batch_size":2,"features":4})");
  const ProfilerBackend* cuda = FindBackend("cuda");
  ASSERT_NE(cuda, nullptr);
  ProfileRequest r;
  r.model = &m;
  r.gpus = "0x4";
  Result<Profile> share = cuda->Run(r);
  const std::string why = NoGpuReason();
  if (why.empty()) {
    // A GPU is here: 0x4 profiles on a quarter of the SMs (or, without green contexts, on
    // all of them with a warning and no sm_share); the no-GPU message cannot be provoked.
    ASSERT_TRUE(share.ok()) << share.message();
    if (share->sm_share) {
      EXPECT_LE(*share->sm_share, 0.25);
    }
    return;
  }
  ASSERT_FALSE(share.ok());
  EXPECT_EQ(share.message().rfind("no CUDA GPU is visible: ", 0), 0u) << share.message();
  r.gpus = "";
  Result<Profile> none = cuda->Run(r);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.message().rfind("no CUDA GPU is visible: ", 0), 0u) << none.message();
}

}  // namespace
}  // namespace pp
