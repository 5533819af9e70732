// The analytic backend against closed forms: GEMM work, the two roofline regimes, the
// transformer block's flops (Narayanan et al. 2021) and activation memory (Korthikanti et
// al. 2022), and the profile it assembles.
#include "profiler/analytic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/kind_entry.h"
#include "core/model.h"
#include "core/profile.h"
#include "core/units.h"
#include "partitioner/model_flops.h"
#include "profiler/backend.h"
#include "profiler/device_table.h"
#include "profiler/efficiency.h"
#include "profiler/kernels.h"
#include "tests/test_util.h"

namespace pp {
namespace {

const DeviceSpec& H100() { return *FindDevice("h100"); }

Model LoadOrFail(const std::string& name) { return testing::LoadModelOrFail(name); }

Model ModelOrFail(const std::string& text) { return testing::ModelOrFail(text); }

// A one-block token model with GPT-2 small's shapes (b = 8, s = 1024, h = 768, a = 12).
Model Gpt2Block(const std::string& dtype, const std::string& norm, const std::string& mlp,
                int64_t ffn) {
  return ModelOrFail(R"({"format": "pp-partition.model/v1", "name": "one-block", "dtype": ")" +
                     dtype + R"(", "input": {"micro_batch_size": 8, "seq_len": 1024},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 50257, "hidden": 768},
                 {"name": "block", "op": "transformer_block", "hidden": 768, "heads": 12,
                  "ffn": )" +
                     std::to_string(ffn) + R"(, "norm": ")" + norm + R"(", "mlp": ")" + mlp +
                     R"(", "causal": true}]})");
}

const Layer* FindLayer(const Model& m, const std::string& name) {
  for (const Layer& l : m.layers) {
    if (l.name == name) return &l;
  }
  ADD_FAILURE() << "no layer " << name;
  return nullptr;
}

TEST(AnalyticTest, GemmWorkIsTheClosedForm) {
  // [3 x 5] . [5 x 7]: 3*5*7 multiply-adds; reads 15 + 35 elements and writes 21.
  const Kernel k = GemmKernel("g", 3, 5, 7, 2);
  EXPECT_EQ(k.flops, 2.0 * 3 * 5 * 7);
  EXPECT_EQ(k.bytes, (15.0 + 35 + 21) * 2);
  const Kernel batched = BatchedGemmKernel("b", 96, 3, 5, 7, 4);
  EXPECT_EQ(batched.flops, 96 * 2.0 * 3 * 5 * 7);
  EXPECT_EQ(batched.bytes, 96 * (15.0 + 35 + 21) * 4);
}

TEST(AnalyticTest, BigGemmRunsAtPeakFlops) {
  const double n = 8192;
  const Kernel k = GemmKernel("g", n, n, n, 2);
  EXPECT_DOUBLE_EQ(KernelMs(k, H100(), DType::kBf16), 1000 * 2 * n * n * n / 989.4e12);
  // In fp32 the same product runs at the non-tensor fp32 peak instead.
  const Kernel k32 = GemmKernel("g", n, n, n, 4);
  EXPECT_DOUBLE_EQ(KernelMs(k32, H100(), DType::kFp32), 1000 * 2 * n * n * n / 66.9e12);
}

TEST(AnalyticTest, LayerNormRunsAtMemoryBandwidth) {
  const Model m = LoadOrFail("gpt2-small");
  const Layer* ln = FindLayer(m, "ln_f");
  ASSERT_NE(ln, nullptr);
  const double rows = 8 * 1024, h = 768;
  for (DType dtype : {DType::kBf16, DType::kFp32}) {
    const double e = static_cast<double>(DTypeBytes(dtype));
    const LayerKernels k = ListKernels(*ln, m.input, dtype);
    ASSERT_EQ(k.forward.size(), 1u);
    // Reads x, gain and bias; writes y plus fp32 mean and rstd per row.
    const double bytes = rows * h * e + 2 * h * e + rows * h * e + rows * 8;
    EXPECT_EQ(k.forward[0].bytes, bytes);
    EXPECT_DOUBLE_EQ(KernelMs(k.forward[0], H100(), dtype), 1000 * bytes / 3.35e12);
  }
}

TEST(AnalyticTest, BlockFlopsMatchTheMegatronCount) {
  // Narayanan et al. 2021 ("Efficient Large-Scale Language Model Training on GPU Clusters
  // Using Megatron-LM"): a GPT layer's forward does 24bsh^2 + 4bs^2h flops (ffn = 4h), the
  // backward twice that; the weight gradients are the weight GEMMs' share, 24bsh^2.
  const Model m = Gpt2Block("bf16", "layernorm", "gelu", 4 * 768);
  const Layer* block = FindLayer(m, "block");
  ASSERT_NE(block, nullptr);
  const double b = 8, s = 1024, h = 768;
  const LayerKernels k = ListKernels(*block, m.input, DType::kBf16);
  const double forward = 24 * b * s * h * h + 4 * b * s * s * h;
  EXPECT_EQ(TotalFlops(k.forward), forward);
  EXPECT_EQ(TotalFlops(k.backward_input) + TotalFlops(k.backward_weight), 2 * forward);
  EXPECT_EQ(TotalFlops(k.backward_weight), 24 * b * s * h * h);

  // SwiGLU (three h x f matrices) without biases: 2bs(4h^2 + 3hf) + 4bs^2h.
  const double f = 2048;
  const Model sw = Gpt2Block("bf16", "rmsnorm", "swiglu", 2048);
  const Layer* swb = FindLayer(sw, "block");
  ASSERT_NE(swb, nullptr);
  const LayerKernels ks = ListKernels(*swb, sw.input, DType::kBf16);
  EXPECT_EQ(TotalFlops(ks.forward), 2 * b * s * (4 * h * h + 3 * h * f) + 4 * b * s * s * h);
}

// Multi-latent attention (DeepSeek-V3's, at small sizes): its products and the scores and
// context at their own head sizes, worked from the shapes; under tensor parallelism the down
// projections stay whole on each rank and the rest splits by heads; the flash kernels do the
// causal half; the model FLOPs are Megatron-LM's multi-latent count.
TEST(AnalyticTest, MultiLatentAttentionWorkIsItsProducts) {
  const Model m = ModelOrFail(R"({"format": "pp-partition.model/v1", "name": "mla",
      "dtype": "bf16", "input": {"micro_batch_size": 2, "seq_len": 128},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 100, "hidden": 64},
                 {"name": "block", "op": "transformer_block", "hidden": 64, "heads": 4,
                  "head_dim": 24, "v_head_dim": 16, "kv_lora": 16, "q_lora": 32,
                  "rope_dim": 8, "ffn": 96, "norm": "rmsnorm", "mlp": "swiglu",
                  "bias": false, "causal": true, "rotary": true}]})");
  const Layer* block = FindLayer(m, "block");
  ASSERT_NE(block, nullptr);
  const double b = 2, s = 128, h = 64, a = 4, d = 24, dv = 16, lq = 32, lkv = 16, rope = 8, f = 96,
               n = b * s;
  // q_down, q_up, kv_down, kv_up, proj; the SwiGLU MLP.
  const double weights =
      h * lq + lq * a * d + h * (lkv + rope) + lkv * a * (d - rope + dv) + a * dv * h + 3 * h * f;
  // Norms: two of h, the latents' of lq and lkv.
  EXPECT_EQ(LayerParamCount(*block), static_cast<int64_t>(weights + 2 * h + lq + lkv));
  const LayerKernels k = ListKernels(*block, m.input, DType::kBf16);
  const double attention = 2 * b * a * s * s * (d + dv);  // unfused: the whole square
  EXPECT_EQ(TotalFlops(k.forward), 2 * n * weights + attention);
  EXPECT_EQ(TotalFlops(k.backward_weight), 2 * n * weights);
  EXPECT_EQ(TotalFlops(k.backward_input), 2 * n * weights + 2 * attention);

  KernelOptions flash;
  flash.flash_attention = true;
  const LayerKernels kf = ListKernels(*block, m.input, DType::kBf16, flash);
  // Forward S = QK^T (d) and PV (dv); backward S again, dP, dV (dv), dQ and dK (d); causal half.
  EXPECT_EQ(TotalFlops(kf.forward), 2 * n * weights + 0.5 * 2 * b * a * s * s * (d + dv));
  EXPECT_EQ(TotalFlops(kf.backward_input),
            2 * n * weights + 0.5 * 2 * b * a * s * s * (3 * d + 2 * dv));

  // Tensor parallelism: the down projections whole on every rank, on its own rows (with
  // sequence parallelism its half of them), the rest split by heads or rows on all rows.
  const double down = h * lq + h * (lkv + rope);
  const double split =
      lq * a * d / 2 + lkv * a * (d - rope + dv) / 2 + a * dv * h / 2 + 3 * h * f / 2;
  for (const bool sp : {true, false}) {
    SCOPED_TRACE(sp ? "sequence parallel" : "no sequence parallelism");
    KernelOptions tp2;
    tp2.par.tp = 2;
    tp2.par.sequence_parallel = sp;
    const LayerKernels kt = ListKernels(*block, m.input, DType::kBf16, tp2);
    const double rank_flops = 2 * (sp ? n / 2 : n) * down + 2 * n * split;
    EXPECT_EQ(TotalFlops(kt.backward_weight), rank_flops);
    EXPECT_EQ(TotalFlops(kt.forward), rank_flops + attention / 2);
    // Into the split projections: the latents (and with sequence parallelism the rotary key),
    // not x; out of proj, x.
    const auto attention_in = [](const Collective& c) {
      const std::string name(c.name);
      for (const char* p : {"qkv_", "q_latent_", "kv_latent_", "k_rope_"}) {
        if (name.rfind(p, 0) == 0) return true;
      }
      return false;
    };
    double into = 0, out = 0, back = 0;
    for (const Collective& c : kt.forward_comm) {
      if (attention_in(c)) into += c.bytes;
      if (std::string(c.name).rfind("proj_", 0) == 0) out += c.bytes;
    }
    for (const Collective& c : kt.backward_input_comm) {
      if (attention_in(c)) back += c.bytes;
    }
    EXPECT_EQ(out, n * h * 2);
    EXPECT_EQ(into, sp ? n * (lq + lkv + rope) * 2 : 0);
    EXPECT_EQ(back, n * (lq + lkv + (sp ? rope : 0)) * 2);
  }

  // Megatron-LM's count per token: 6 x (q term, kv term, the rotary key, proj), the latent
  // norms' one multiply each, and the scores and context at half the square.
  const double per_token =
      6 * (lq * (h + a * d + 1) + lkv * (h + a * (d - rope + dv) + 1) + h * rope + a * dv * h) +
      3 * s * a * (d + dv) + 6 * 3 * h * f;
  EXPECT_DOUBLE_EQ(ModelFlopsPerSample(m, 1), s * per_token);  // no output layer here
}

// Two MLPs that differ only in their elementwise function cost the same: the same products,
// the same bytes moved, the same tensors kept, under kernel names of their own (`named`, in
// place of `other`).
void ExpectSameCosts(const std::string& base, const std::string& variant, MlpKind kind,
                     const char* named, const char* other) {
  SCOPED_TRACE(variant + " against " + base);
  const Model mb = Gpt2Block("bf16", "layernorm", base, 4 * 768);
  const Model mv = Gpt2Block("bf16", "layernorm", variant, 4 * 768);
  const Layer* g = FindLayer(mb, "block");
  const Layer* r = FindLayer(mv, "block");
  ASSERT_NE(g, nullptr);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->mlp, kind);
  const LayerKernels kg = ListKernels(*g, mb.input, DType::kBf16);
  const LayerKernels kr = ListKernels(*r, mv.input, DType::kBf16);
  for (auto part :
       {&LayerKernels::forward, &LayerKernels::backward_input, &LayerKernels::backward_weight}) {
    const std::vector<Kernel>&a = kg.*part, &c = kr.*part;
    ASSERT_EQ(a.size(), c.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].flops, c[i].flops) << a[i].name;
      EXPECT_EQ(a[i].bytes, c[i].bytes) << a[i].name;
    }
  }
  std::vector<std::string> fwd;
  for (const Kernel& k : kr.forward) fwd.emplace_back(k.name);
  EXPECT_NE(std::find(fwd.begin(), fwd.end(), named), fwd.end());
  EXPECT_EQ(std::find(fwd.begin(), fwd.end(), other), fwd.end());
  EXPECT_EQ(AnalyticLayerMemory(*r, mv.input, DType::kBf16).activation_bytes,
            AnalyticLayerMemory(*g, mb.input, DType::kBf16).activation_bytes);
  EXPECT_EQ(AnalyticLayerMemory(*r, mv.input, DType::kBf16).param_bytes,
            AnalyticLayerMemory(*g, mb.input, DType::kBf16).param_bytes);
}

// A small decoder with (`mtp`) or without one multi-token prediction block after its norm.
Model MtpModel(bool mtp) {
  const std::string block = R"("op": "transformer_block", "hidden": 64, "heads": 4, "ffn": 96,
      "norm": "rmsnorm", "mlp": "swiglu", "bias": false, "causal": true, "rotary": true)";
  return ModelOrFail(
      R"({"format": "pp-partition.model/v1", "name": "mtp", "dtype": "bf16",
      "input": {"micro_batch_size": 2, "seq_len": 128},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 100, "hidden": 64},
                 {"name": "block", )" +
      block + R"(},
                 {"name": "norm", "op": "rmsnorm", "hidden": 64},)" +
      (mtp ? R"({"name": "mtp", "mtp": true, "vocab": 100, "tied_to": "embed", )" + block + "},"
           : std::string()) +
      R"({"name": "lm_head", "op": "linear", "in": 64, "out": 100, "bias": false},
                 {"name": "loss", "op": "cross_entropy"}]})");
}

double CommBytes(const std::vector<Collective>& comm) {
  double bytes = 0;
  for (const Collective& c : comm) bytes += c.bytes;
  return bytes;
}

// Multi-token prediction (Megatron-Core's MultiTokenPredictionLayer): the module is its block
// plus the lookup of the next tokens in its own copy of the table, three norms and eh_proj
// (2 h -> h); it passes on the main stream and its own, so the head and loss after it run
// over twice the rows. Each part against a hand count, and the model FLOPs against
// Megatron-LM's terms for it.
TEST(AnalyticTest, MultiTokenPredictionIsItsBlockAndItsParts) {
  const Model m = MtpModel(true), plain = MtpModel(false);
  const Layer* block = FindLayer(m, "block");
  const Layer* mtp = FindLayer(m, "mtp");
  const Layer* head = FindLayer(m, "lm_head");
  const Layer* plain_head = FindLayer(plain, "lm_head");
  ASSERT_TRUE(block && mtp && head && plain_head);
  EXPECT_EQ(mtp->mtp_depth, 1);
  EXPECT_EQ(mtp->streams, 1);
  EXPECT_EQ(head->streams, 2);
  EXPECT_EQ(m.layers.back().streams, 2);
  EXPECT_EQ(block->streams, 1);
  const double b = 2, s = 128, h = 64, v = 100, n = b * s, e = 2;

  // Parameters: the block's, the table copy (shared with embed, counted once), the norms.
  EXPECT_EQ(LayerParamCount(*mtp), LayerParamCount(*block) + 100 * 64 + 3 * 64 + 2 * 64 * 64);
  EXPECT_EQ(TiedParamCount(*mtp, {}), 100 * 64);
  EXPECT_EQ(ModelParamCount(m),
            ModelParamCount(plain) + LayerParamCount(*block) + 3 * 64 + 2 * 64 * 64);
  ShardDegrees tp2;
  tp2.tp = 2;
  EXPECT_EQ(KindEntry(mtp->op).RankParamCount(*mtp, tp2),
            KindEntry(block->op).RankParamCount(*block, tp2) + 50 * 64 + 3 * 64 + 2 * 64 * 32);

  // Work: eh_proj's products beside the block's; the head twice the plain model's.
  const LayerKernels kb = ListKernels(*block, m.input, DType::kBf16);
  const LayerKernels km = ListKernels(*mtp, m.input, DType::kBf16);
  const double eh = 2 * n * 2 * h * h;
  EXPECT_EQ(TotalFlops(km.forward), TotalFlops(kb.forward) + eh);
  EXPECT_EQ(TotalFlops(km.backward_input), TotalFlops(kb.backward_input) + eh);
  EXPECT_EQ(TotalFlops(km.backward_weight), TotalFlops(kb.backward_weight) + eh);
  const LayerKernels kh = ListKernels(*head, m.input, DType::kBf16);
  const LayerKernels kp = ListKernels(*plain_head, plain.input, DType::kBf16);
  EXPECT_EQ(TotalFlops(kh.forward), 2 * TotalFlops(kp.forward));
  EXPECT_EQ(TotalFlops(kh.forward), 2 * (2 * n) * h * v);

  // Memory: the ids, the three norms' inputs and rstd, eh_proj's 2 h input; it sends both
  // streams; the head's logits and the loss's softmax twice over.
  const LayerMemory mb = AnalyticLayerMemory(*block, m.input, DType::kBf16);
  const LayerMemory mm = AnalyticLayerMemory(*mtp, m.input, DType::kBf16);
  EXPECT_DOUBLE_EQ(mm.activation_bytes - mb.activation_bytes,
                   n * 4 + 3 * (n * h * e + n * 4) + n * 2 * h * e);
  EXPECT_DOUBLE_EQ(mb.output_bytes, n * h * e);
  EXPECT_DOUBLE_EQ(mm.output_bytes, 2 * n * h * e);
  EXPECT_DOUBLE_EQ(AnalyticLayerMemory(*head, m.input, DType::kBf16).output_bytes, 2 * n * v * e);
  EXPECT_DOUBLE_EQ(
      AnalyticLayerMemory(m.layers.back(), m.input, DType::kBf16).activation_bytes,
      2 * AnalyticLayerMemory(plain.layers.back(), plain.input, DType::kBf16).activation_bytes);

  // Tensor parallelism with sequence parallelism: the lookup's reduce-scatter, eh_proj's
  // input gathered (2 h) and its output columns gathered (h); back, the step to the rank's
  // share gathered and eh_proj's input gradient reduce-scattered. Without sequence
  // parallelism: the lookup's all-reduce, the columns' gather; back, the input gradient's
  // all-reduce.
  for (const bool sp : {true, false}) {
    SCOPED_TRACE(sp ? "sequence parallel" : "no sequence parallelism");
    KernelOptions o;
    o.par.tp = 2;
    o.par.sequence_parallel = sp;
    const LayerKernels tb = ListKernels(*block, m.input, DType::kBf16, o);
    const LayerKernels tm = ListKernels(*mtp, m.input, DType::kBf16, o);
    EXPECT_DOUBLE_EQ(CommBytes(tm.forward_comm) - CommBytes(tb.forward_comm),
                     n * h * e + (sp ? n * 2 * h * e : 0) + n * h * e);
    EXPECT_DOUBLE_EQ(CommBytes(tm.backward_input_comm) - CommBytes(tb.backward_input_comm),
                     (sp ? n * h * e : 0) + n * 2 * h * e);
    EXPECT_EQ(TotalFlops(tm.forward) - TotalFlops(tb.forward), 2 * n * 2 * h * (h / 2));
  }

  // Megatron-LM's count (num_floating_point_operations): the module as one more block, its
  // norms (3 h) and eh_proj (2 h^2), and the logits once more.
  const double per_block = 6 * h * 96 * 3 + 6 * (h * 3 * h + h * h) + 6 * h * s;
  EXPECT_DOUBLE_EQ(ModelFlopsPerSample(m, 1) - ModelFlopsPerSample(plain, 1),
                   s * (per_block + 6 * (3 * h + 2 * h * h) + 6 * h * PaddedVocab(100, 1)));
}

// A multi-token prediction block's rules, each one line naming the field.
TEST(AnalyticTest, MultiTokenPredictionBlocksAreChecked) {
  const std::string head = R"({"format": "pp-partition.model/v1", "name": "bad", "dtype": "bf16",
      "input": {"micro_batch_size": 1, "seq_len": 16}, "layers": [)";
  const std::string block = R"("op": "transformer_block", "hidden": 8, "heads": 2, "ffn": 16)";
  const std::string embed = R"({"name": "embed", "op": "embedding", "vocab": 10, "hidden": 8})";
  const std::string tail = R"({"name": "lm_head", "op": "linear", "in": 8, "out": 10},
      {"name": "loss", "op": "cross_entropy"}]})";
  const std::string mtp =
      R"({"name": "mtp", "mtp": true, "vocab": 10, "tied_to": "embed", )" + block + "},";
  struct Case {
    std::string layers, expect;
  } cases[] = {
      {embed + R"(,{"name": "mtp", "mtp": true, "vocab": 10, )" + block + "}," + tail,
       "layers[1].tied_to"},
      {embed + R"(,{"name": "b", "vocab": 10, )" + block + "}," + tail,
       "layers[1].vocab: is a field of multi-token prediction blocks"},
      {embed + "," + mtp + R"({"name": "norm", "op": "rmsnorm", "hidden": 8},)" + tail,
       "layers[2].op: a rmsnorm after a multi-token prediction block"},
      {embed + "," + mtp + R"({"name": "b", )" + block + "}," + tail,
       "layers[2].op: a transformer_block after a multi-token prediction block"},
      {embed + R"(,{"name": "mtp", "mtp": true, "vocab": 12, "tied_to": "embed", )" + block + "}," +
           tail,
       "does not match this block (vocab 12"},
      {R"({"name": "embed", "op": "embedding", "vocab": 10, "hidden": 8, "positions": 16},)" + mtp +
           tail,
       "position or token-type table is not available yet"},
  };
  for (const Case& c : cases) {
    Result<Json> doc = ParseJsonText(head + c.layers);
    ASSERT_TRUE(doc.ok()) << doc.message() << "\n" << head + c.layers;
    Result<Model> m = ModelFromJson(*doc);
    ASSERT_FALSE(m.ok()) << c.expect;
    EXPECT_NE(m.message().find(c.expect), std::string::npos) << m.message();
  }
}

TEST(AnalyticTest, SquaredReluAndGegluCostWhatGeluAndSwigluCost) {
  ExpectSameCosts("gelu", "relu2", MlpKind::kRelu2, "relu2", "gelu");
  ExpectSameCosts("swiglu", "geglu", MlpKind::kGeglu, "geglu", "swiglu");
}

TEST(AnalyticTest, BlockActivationsMatchKorthikantiWithoutDropout) {
  // Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
  // Models"): a layer keeps 34sbh + 5as^2b bytes in 16-bit precision. That includes two
  // 1-byte dropout masks of sbh (after attention and after the MLP), the attention dropout's
  // 1-byte mask (as^2b) and its 16-bit output (2as^2b); this block has no dropout. Each of
  // the two layernorms adds its fp32 mean and rstd (8 bytes a row).
  const double b = 8, s = 1024, h = 768, a = 12;
  const double published = 34 * s * b * h + 5 * a * s * s * b;
  const double dropout = 2 * s * b * h + a * s * s * b + 2 * a * s * s * b;
  const double stats = 2 * 8 * s * b;
  const Model m = Gpt2Block("bf16", "layernorm", "gelu", 4 * 768);
  const Layer* block = FindLayer(m, "block");
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(AnalyticLayerMemory(*block, m.input, DType::kBf16).activation_bytes,
            published - dropout + stats);
  // In fp32 every tensor doubles; the statistics were fp32 already.
  EXPECT_EQ(AnalyticLayerMemory(*block, m.input, DType::kFp32).activation_bytes,
            2 * (published - dropout) + stats);
  // The same count through the profile, as an integer.
  Result<LayerCost> cost = AnalyticLayerCost(*block, m.input, DType::kBf16, H100());
  ASSERT_TRUE(cost.ok()) << cost.message();
  EXPECT_EQ(cost->activation_bytes, static_cast<uint64_t>(published - dropout + stats));
}

// Selective recomputation drops the core attention's kept tensors: with dropout those are
// Korthikanti et al.'s 5as^2b bytes (the probabilities and the dropout's output in 16 bits, its
// one-byte mask), the term their selective recomputation removes; the fused kernel keeps only
// an fp32 statistic per query row. What it runs again is those kernels' forward.
// A sliding window of w keys: the fused kernels compute the band of the score square below
// the diagonal, s w - w^2 / 2 query-key pairs a head (a count over the queries, min(i + 1, w)
// each, gives s w - w (w - 1) / 2: the same convention as the causal s^2 / 2, which leaves out
// the diagonal's half), forward 4 d flops a pair, backward 10 d. A window as long as the
// sequence is the causal block; the unfused kernels compute the whole square and mask it.
TEST(AnalyticTest, ASlidingWindowComputesItsBandOfTheScores) {
  const auto block = [](int64_t window) {
    return ModelOrFail(R"({"format": "pp-partition.model/v1", "name": "one-block",
        "dtype": "bf16", "input": {"micro_batch_size": 2, "seq_len": 8192},
        "layers": [{"name": "embed", "op": "embedding", "vocab": 1000, "hidden": 512},
                   {"name": "block", "op": "transformer_block", "hidden": 512, "heads": 8,
                    "ffn": 1024, "norm": "rmsnorm", "mlp": "swiglu", "causal": true,
                    "rotary": true)" +
                       (window > 0 ? ", \"window\": " + std::to_string(window) : std::string()) +
                       "}]}");
  };
  const auto attention = [](const Model& m, bool fused, const char* name, bool backward) {
    KernelOptions o;
    o.flash_attention = fused;
    const LayerKernels k = ListKernels(m.layers[1], m.input, DType::kBf16, o);
    double flops = 0;
    for (const Kernel& kernel : backward ? k.backward_input : k.forward) {
      if (std::string(kernel.name).rfind(name, 0) == 0) flops += kernel.flops;
    }
    return flops;
  };
  const double b = 2, a = 8, d = 64, s = 8192, w = 4096;
  int64_t counted = 0;  // pairs a head, query by query
  for (int64_t i = 0; i < 8192; ++i) counted += std::min<int64_t>(i + 1, 4096);
  EXPECT_EQ(static_cast<double>(counted), s * w - w * (w - 1) / 2);
  const Model windowed = block(4096);
  EXPECT_EQ(windowed.layers[1].window, 4096);
  const double pairs = s * w - w * w / 2;
  EXPECT_DOUBLE_EQ(attention(windowed, true, "attention", false), 4 * d * b * a * pairs);
  EXPECT_DOUBLE_EQ(attention(windowed, true, "attention_dgrad", true), 10 * d * b * a * pairs);
  const Model causal = block(0);
  EXPECT_DOUBLE_EQ(attention(block(8192), true, "attention", false),
                   attention(causal, true, "attention", false));
  EXPECT_DOUBLE_EQ(attention(causal, true, "attention", false), 4 * d * b * a * s * s / 2);
  EXPECT_DOUBLE_EQ(attention(windowed, false, "attention_", false),
                   attention(causal, false, "attention_", false));
  // A window on a bidirectional block is refused, naming the field.
  Result<Model> bad = ModelFromJson(Json::parse(R"({"format": "pp-partition.model/v1",
      "name": "m", "dtype": "bf16", "input": {"micro_batch_size": 1, "seq_len": 16},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 10, "hidden": 8},
                 {"name": "block", "op": "transformer_block", "hidden": 8, "heads": 2,
                  "ffn": 16, "window": 4}]})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("window"), std::string::npos) << bad.message();
}

// The recomputation modules of a block against hand-worked counts, and against each other: a
// dense block and a mixture-of-experts block with the same attention keep the same outside
// their MLPs, so each less its MLP module (mlp, moe) is equal, in bytes and forward time,
// with tensor parallelism (the MLP's gathers and reductions in its module) and without.
TEST(AnalyticTest, RecomputationModulesDropWhatTheyKeepInside) {
  const std::string head = R"({"format": "pp-partition.model/v1", "name": "modules",
      "dtype": "bf16", "input": {"micro_batch_size": 2, "seq_len": 128},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 1000, "hidden": 64},
                 {"name": "block", "op": "transformer_block", "hidden": 64, "heads": 4,
                  "norm": "rmsnorm", "mlp": "swiglu", "causal": true, "rotary": true, "bias": false, )";
  const Model dense = ModelOrFail(head + R"("ffn": 256}]})");
  const Model moe = ModelOrFail(head + R"("experts": 8, "top_k": 2, "expert_ffn": 32,
      "shared_experts": 1, "shared_ffn": 64}]})");
  const Model mla = ModelOrFail(head + R"("ffn": 256, "kv_lora": 32, "q_lora": 48,
      "rope_dim": 8, "head_dim": 24, "v_head_dim": 16}]})");
  const Layer& d = *FindLayer(dense, "block");
  const Layer& e = *FindLayer(moe, "block");
  const Layer& a = *FindLayer(mla, "block");
  const double n = 256, h = 64, bf = 2;  // rows, hidden, bytes per element
  const auto bytes = [](const Model& m, const Layer& l, const KernelOptions& o, RecomputeModule x) {
    return AnalyticLayerMemory(l, m.input, DType::kBf16, o).module_bytes[static_cast<size_t>(x)];
  };
  const KernelOptions one;
  // A norm's output and fp32 rstd, for the norms Transformer Engine does not fuse into the
  // product after them: none in a dense block, the router's (norm2) in a mixture of experts,
  // the down projections' (norm1) in multi-latent attention.
  EXPECT_EQ(bytes(dense, d, one, RecomputeModule::kLayerNorm), 0);
  EXPECT_EQ(bytes(moe, e, one, RecomputeModule::kLayerNorm), n * (h * bf + 4));
  EXPECT_EQ(bytes(mla, a, one, RecomputeModule::kLayerNorm), n * (h * bf + 4));
  // Swiglu: gate and up (2 x 256 wide), the product (fc2's input).
  EXPECT_EQ(bytes(dense, d, one, RecomputeModule::kMlp), n * 256 * 3 * bf);
  EXPECT_EQ(bytes(dense, d, one, RecomputeModule::kMoe), 0);
  EXPECT_EQ(bytes(moe, e, one, RecomputeModule::kMlp), 0);
  // Each token's 2 copies at one expert of 32: the activation's output.
  EXPECT_EQ(bytes(moe, e, one, RecomputeModule::kMoeAct), 2 * n * 32 * bf);
  EXPECT_EQ(bytes(moe, e, one, RecomputeModule::kSharedExperts), n * 64 * 3 * bf);
  // Multi-latent attention: q and k of 4 heads x 24, v of 4 x 16.
  EXPECT_EQ(bytes(mla, a, one, RecomputeModule::kMlaUpProj), n * (96 + 96 + 64) * bf);
  EXPECT_EQ(bytes(dense, d, one, RecomputeModule::kMlaUpProj), 0);

  KernelOptions tp2;
  tp2.par.tp = 2;
  for (const KernelOptions& o : {one, tp2}) {
    const auto cost = [&](const Model& m, const Layer& l) {
      Result<LayerCost> c = AnalyticLayerCost(l, m.input, DType::kBf16, H100(), o);
      EXPECT_TRUE(c.ok()) << c.message();
      return *c;
    };
    const LayerCost cd = cost(dense, d), ce = cost(moe, e), ca = cost(mla, a);
    const auto at = [](RecomputeModule x) { return static_cast<size_t>(x); };
    EXPECT_EQ(cd.activation_bytes - cd.module_bytes[at(RecomputeModule::kMlp)],
              ce.activation_bytes - ce.module_bytes[at(RecomputeModule::kMoe)])
        << "tp " << o.par.tp;
    EXPECT_NEAR(cd.forward_ms - cd.module_ms[at(RecomputeModule::kMlp)],
                ce.forward_ms - ce.module_ms[at(RecomputeModule::kMoe)], 1e-9)
        << "tp " << o.par.tp;
    // The modules inside moe are parts of it.
    EXPECT_LT(ce.module_ms[at(RecomputeModule::kMoeAct)] +
                  ce.module_ms[at(RecomputeModule::kSharedExperts)],
              ce.module_ms[at(RecomputeModule::kMoe)]);
    // Each module's forward: its kernels' times (and, under tp, the MLP's collectives).
    const auto kernel_ms = [&](const Model& m, const Layer& l, std::vector<std::string> names) {
      double ms = 0;
      for (const Kernel& kernel : ListKernels(l, m.input, DType::kBf16, o).forward) {
        if (std::find(names.begin(), names.end(), std::string(kernel.name)) == names.end()) {
          continue;
        }
        ms += KernelTimeMs(kernel, H100(), DType::kBf16, Direction::kForward, Rates::kAchieved);
      }
      return ms;
    };
    const double mlp = kernel_ms(dense, d, {"gate_up", "swiglu", "fc2"});
    EXPECT_EQ(cd.module_ms[at(RecomputeModule::kLayerNorm)], 0);
    EXPECT_NEAR(ce.module_ms[at(RecomputeModule::kLayerNorm)], kernel_ms(moe, e, {"norm2"}), 1e-12);
    EXPECT_NEAR(ca.module_ms[at(RecomputeModule::kLayerNorm)], kernel_ms(mla, a, {"norm1"}), 1e-12);
    if (o.par.tp == 1) {
      EXPECT_NEAR(cd.module_ms[at(RecomputeModule::kMlp)], mlp, 1e-12);
    } else {
      EXPECT_GT(cd.module_ms[at(RecomputeModule::kMlp)], mlp);  // and fc1's gather, fc2's scatter
    }
    double up = 0;
    for (const Kernel& kernel : ListKernels(a, mla.input, DType::kBf16, o).forward) {
      const std::string name(kernel.name);
      if (name == "q_up" || name == "kv_up" || name == "rotary" || name == "qk_assemble") {
        up += KernelTimeMs(kernel, H100(), DType::kBf16, Direction::kForward, Rates::kAchieved);
      }
    }
    EXPECT_GT(up, 0);
    if (o.par.tp == 1) {
      EXPECT_NEAR(ca.module_ms[at(RecomputeModule::kMlaUpProj)], up, 1e-12);
    } else {
      EXPECT_GT(ca.module_ms[at(RecomputeModule::kMlaUpProj)], up);  // and the latents' gathers
    }
  }
  // Context parallelism: core_attn runs the ring exchange again, as exposed as in the forward
  // (its only collective there), beside the core attention's kernels. On the A100, whose
  // products pay no fixed time, this small block's ring is not all hidden.
  KernelOptions cp2;
  cp2.par.cp = 2;
  const DeviceSpec& a100 = *FindDevice("a100");
  Result<LayerCost> ring = AnalyticLayerCost(d, dense.input, DType::kBf16, a100, cp2);
  ASSERT_TRUE(ring.ok()) << ring.message();
  double kernels = 0, core = 0;
  for (const Kernel& kernel : ListKernels(d, dense.input, DType::kBf16, cp2).forward) {
    const double ms =
        KernelTimeMs(kernel, a100, DType::kBf16, Direction::kForward, Rates::kAchieved);
    kernels += ms;
    const std::string name(kernel.name);
    if (name == "attention_scores" || name == "softmax" || name == "attention_context") core += ms;
  }
  const double exposed = ring->forward_ms - kernels;
  EXPECT_GT(exposed, 0);
  EXPECT_NEAR(ring->module_ms[static_cast<size_t>(RecomputeModule::kCoreAttn)], core + exposed,
              1e-9);
}

TEST(AnalyticTest, CoreAttentionIsWhatSelectiveRecomputationDrops) {
  const Model m = ModelOrFail(R"({"format": "pp-partition.model/v1", "name": "one-block",
      "dtype": "bf16", "input": {"micro_batch_size": 8, "seq_len": 1024},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 50257, "hidden": 768},
                 {"name": "block", "op": "transformer_block", "hidden": 768, "heads": 12,
                  "ffn": 3072, "norm": "layernorm", "mlp": "gelu", "causal": true,
                  "dropout": 0.1}]})");
  const Layer* block = FindLayer(m, "block");
  ASSERT_NE(block, nullptr);
  const double b = 8, s = 1024, a = 12;
  KernelOptions unfused;
  unfused.flash_attention = false;
  constexpr size_t kCore = static_cast<size_t>(RecomputeModule::kCoreAttn);
  EXPECT_EQ(AnalyticLayerMemory(*block, m.input, DType::kBf16, unfused).module_bytes[kCore],
            5 * a * s * s * b);
  KernelOptions fused;
  fused.flash_attention = true;
  EXPECT_EQ(AnalyticLayerMemory(*block, m.input, DType::kBf16, fused).module_bytes[kCore],
            4 * a * s * b);
  for (const KernelOptions& o : {unfused, fused}) {
    Result<LayerCost> cost = AnalyticLayerCost(*block, m.input, DType::kBf16, H100(), o);
    ASSERT_TRUE(cost.ok()) << cost.message();
    double ms = 0;
    for (const Kernel& k : ListKernels(*block, m.input, DType::kBf16, o).forward) {
      const std::string name(k.name);
      if (name == "attention" || name == "attention_scores" || name == "softmax" ||
          name == "attention_dropout" || name == "attention_context") {
        ms += KernelTimeMs(k, H100(), DType::kBf16, Direction::kForward, Rates::kAchieved);
      }
    }
    EXPECT_GT(ms, 0);
    EXPECT_NEAR(cost->module_ms[kCore], ms, 1e-12);
    EXPECT_LT(cost->module_ms[kCore], cost->forward_ms);
  }
}

// Weight gradients accumulated in a pass of their own (--wgrad-accumulation separate): the
// weight part grows by one memory-bound kernel that reads the new gradient and reads and
// writes the main one (bf16 without a sharded optimizer, fp32 with one), per parameter of the
// rank; nothing else moves.
TEST(AnalyticTest, SeparateWeightGradientAccumulationIsOnePassOverTheGradients) {
  const Model m = Gpt2Block("bf16", "layernorm", "gelu", 3072);
  const Layer* block = FindLayer(m, "block");
  ASSERT_NE(block, nullptr);
  for (int zero : {0, 1}) {
    ParallelLayout fused;
    fused.zero = zero;
    ParallelLayout apart = fused;
    apart.fused_wgrad_accumulation = false;
    Result<LayerCost> a = AnalyticLayerCost(*block, m.input, DType::kBf16, H100(), {},
                                            LayerTiming{Rates::kAchieved, fused});
    Result<LayerCost> b = AnalyticLayerCost(*block, m.input, DType::kBf16, H100(), {},
                                            LayerTiming{Rates::kAchieved, apart});
    ASSERT_TRUE(a.ok() && b.ok());
    const double params = static_cast<double>(a->param_bytes) / 2;
    const double main = zero == 0 ? 2 : 4;
    Kernel pass;
    pass.bytes = params * (2 + 2 * main);
    EXPECT_NEAR(b->backward_weight_ms - a->backward_weight_ms,
                KernelTimeMs(pass, H100(), DType::kBf16, Direction::kBackward, Rates::kAchieved),
                1e-9);
    EXPECT_EQ(b->backward_bytes - a->backward_bytes, pass.bytes);
    EXPECT_EQ(b->forward_ms, a->forward_ms);
    EXPECT_EQ(b->backward_input_ms, a->backward_input_ms);
  }
}

TEST(AnalyticTest, LinearAndEmbeddingMemory) {
  const Model m = LoadOrFail("gpt2-small");
  const Layer* head = FindLayer(m, "lm_head");
  const Layer* embed = FindLayer(m, "embed");
  ASSERT_NE(head, nullptr);
  ASSERT_NE(embed, nullptr);
  const double rows = 8 * 1024;
  const LayerMemory hm = AnalyticLayerMemory(*head, m.input, DType::kBf16);
  EXPECT_EQ(hm.param_bytes, 768.0 * 50257 * 2);    // its own copy of the tied matrix
  EXPECT_EQ(hm.activation_bytes, rows * 768 * 2);  // its input, for the weight gradient
  EXPECT_EQ(hm.output_bytes, rows * 50257 * 2);    // the logits
  const LayerMemory em = AnalyticLayerMemory(*embed, m.input, DType::kBf16);
  EXPECT_EQ(em.param_bytes, (50257.0 + 1024) * 768 * 2);
  EXPECT_EQ(em.activation_bytes, rows * 4);  // int32 token ids
  EXPECT_EQ(em.output_bytes, rows * 768 * 2);
  const LayerMemory loss = AnalyticLayerMemory(*FindLayer(m, "loss"), m.input, DType::kBf16);
  EXPECT_EQ(loss.output_bytes, 4);                     // one fp32 scalar
  EXPECT_EQ(loss.activation_bytes, rows * 50257 * 2);  // the softmax of the logits
}

TEST(AnalyticTest, Fp32DoublesTensorsAndUsesTheFp32Rate) {
  const Model m = LoadOrFail("mlp-2gpu");
  const Layer* fc1 = FindLayer(m, "fc1");
  ASSERT_NE(fc1, nullptr);
  const LayerMemory bf = AnalyticLayerMemory(*fc1, m.input, DType::kBf16);
  const LayerMemory fp = AnalyticLayerMemory(*fc1, m.input, DType::kFp32);
  EXPECT_EQ(fp.param_bytes, 2 * bf.param_bytes);
  EXPECT_EQ(fp.activation_bytes, 2 * bf.activation_bytes);
  EXPECT_EQ(fp.output_bytes, 2 * bf.output_bytes);
  EXPECT_EQ(bf.param_bytes, (1024.0 * 2048 + 2048) * 2);
  // A compute-bound GEMM slows by the ratio of the peaks.
  const Kernel k = GemmKernel("g", 4096, 4096, 4096, 2);
  const Kernel k32 = GemmKernel("g", 4096, 4096, 4096, 4);
  EXPECT_DOUBLE_EQ(KernelMs(k32, H100(), DType::kFp32) / KernelMs(k, H100(), DType::kBf16),
                   989.4 / 66.9);
}

TEST(AnalyticTest, EachLayerOfTheProfileHasItsOwnShape) {
  // mlp-2gpu's layers all differ: a profile must not reuse one layer's numbers for another.
  const Model m = LoadOrFail("mlp-2gpu");
  Result<Profile> p = AnalyticProfile(m, H100(), AnalyticOptions());
  ASSERT_TRUE(p.ok()) << p.message();
  ASSERT_EQ(p->layers.size(), 4u);
  const double rows = 32;
  EXPECT_EQ(p->layers[0].param_bytes, (1024u * 2048 + 2048) * 2);
  EXPECT_EQ(p->layers[2].param_bytes, (2048u * 1024 + 1024) * 2);
  EXPECT_EQ(p->layers[0].output_bytes, rows * 2048 * 2);
  EXPECT_EQ(p->layers[1].output_bytes, rows * 2048 * 2);
  EXPECT_EQ(p->layers[2].output_bytes, rows * 1024 * 2);
  EXPECT_EQ(p->layers[2].activation_bytes, rows * 2048 * 2);  // fc2 keeps its input
  EXPECT_EQ(p->layers[3].activation_bytes, rows * 1024 * 2);  // mse keeps the difference
  EXPECT_EQ(p->layers[3].op, "mse");
}

// GPT-2's head is tied to its token embedding: the profile says so, with the bytes of the
// head's share of the shared table on one tensor rank (768 x ceil(50257 / tp) in bf16), and
// an untied head (Llama 3 8B's) says nothing.
TEST(AnalyticTest, ATiedHeadRecordsTheBytesItShares) {
  const Model m = LoadOrFail("gpt2-small");
  for (int tp : {1, 2}) {
    AnalyticOptions options;
    options.layout.tp = tp;
    Result<Profile> p = AnalyticProfile(m, H100(), options);
    ASSERT_TRUE(p.ok()) << p.message();
    const LayerProfile& head = p->layers[p->layers.size() - 2];
    ASSERT_EQ(head.name, "lm_head");
    EXPECT_EQ(head.tied_to, "embed");
    EXPECT_EQ(head.tied_param_bytes, uint64_t{768} * ((50257 + tp - 1) / tp) * 2) << tp;
    EXPECT_EQ(head.tied_param_bytes, head.param_bytes) << "the head has no bias";
  }
  Result<Profile> llama = AnalyticProfile(LoadOrFail("llama3-8b"), H100(), AnalyticOptions());
  ASSERT_TRUE(llama.ok()) << llama.message();
  for (const LayerProfile& l : llama->layers) EXPECT_TRUE(l.tied_to.empty()) << l.name;
}

TEST(AnalyticTest, EveryDeviceHasRatesAndASource) {
  std::set<std::string_view> keys;
  ASSERT_GE(AllDevices().size(), 4u);
  for (const DeviceSpec& d : AllDevices()) {
    EXPECT_TRUE(keys.insert(d.key).second) << "duplicate key " << d.key;
    for (char c : d.key) EXPECT_FALSE(c >= 'A' && c <= 'Z') << d.key << " is not lowercase";
    EXPECT_FALSE(d.name.empty()) << d.key;
    EXPECT_GT(d.bf16_flops_per_s, d.fp32_flops_per_s) << d.key << ": tensor cores are faster";
    EXPECT_GT(d.fp32_flops_per_s, 0) << d.key;
    EXPECT_GT(d.memory_bytes_per_s, 0) << d.key;
    EXPECT_GT(d.memory_bytes, 0u) << d.key;
    EXPECT_LE(d.memory_bytes, kMaxBytes) << d.key;
    EXPECT_GT(d.link_bytes_per_s, 0) << d.key;
    EXPECT_GE(d.link_latency_ms, 0) << d.key;
    EXPECT_GT(d.source.size(), 20u) << d.key << " should say where its numbers come from";
    EXPECT_EQ(FindDevice(d.key), &d);
  }
  for (std::string_view k : {"h100", "h200", "a100", "l40s"}) EXPECT_NE(FindDevice(k), nullptr);
  EXPECT_EQ(FindDevice("tpu"), nullptr);
}

TEST(AnalyticTest, Gpt2SmallProfile) {
  const Model m = LoadOrFail("gpt2-small");
  Result<Profile> p = AnalyticProfile(m, H100(), AnalyticOptions());
  ASSERT_TRUE(p.ok()) << p.message();
  std::vector<std::string> names = {"embed"};
  for (int i = 0; i < 12; ++i) names.push_back("block." + std::to_string(i));
  for (const char* n : {"ln_f", "lm_head", "loss"}) names.push_back(n);
  ASSERT_EQ(p->layers.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const LayerProfile& l = p->layers[i];
    EXPECT_EQ(l.name, names[i]);
    ASSERT_TRUE(l.backward_input_ms && l.backward_weight_ms) << l.name;
    EXPECT_EQ(l.backward_ms, *l.backward_input_ms + *l.backward_weight_ms) << l.name;
    EXPECT_GT(l.forward_ms, 0) << l.name;
  }
  EXPECT_EQ(p->layers[1].op, "transformer_block");
  EXPECT_EQ(p->layers[0].op, "embedding");
  EXPECT_EQ(*p->layers[0].backward_input_ms, 0);  // token ids have no gradient
  EXPECT_EQ(p->layers[15].output_bytes, 4u);
  EXPECT_EQ(p->model, "gpt2-small");
  EXPECT_EQ(p->backend, "analytic");
  EXPECT_EQ(p->device.name, H100().name);
  EXPECT_EQ(p->device.memory_bytes, H100().memory_bytes);
  EXPECT_EQ(p->link.bandwidth_bytes_per_s, H100().link_bytes_per_s);
  EXPECT_EQ(p->micro_batch_size, 8);
  EXPECT_EQ(p->dtype, DType::kBf16);
  EXPECT_TRUE(p->tool_version.has_value());
  // The document it writes passes core's validation and reads back the same.
  Result<Profile> back = ProfileFromJson(ProfileToJson(*p));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->layers[3].forward_ms, p->layers[3].forward_ms);
  EXPECT_EQ(back->layers[3].activation_bytes, p->layers[3].activation_bytes);
}

TEST(AnalyticTest, MicroBatchSizeScalesActivationsLinearly) {
  const Model m = LoadOrFail("gpt2-small");
  AnalyticOptions two, six;
  two.micro_batch_size = 2;
  six.micro_batch_size = 6;
  Result<Profile> p2 = AnalyticProfile(m, H100(), two);
  Result<Profile> p6 = AnalyticProfile(m, H100(), six);
  ASSERT_TRUE(p2.ok() && p6.ok());
  EXPECT_EQ(p6->micro_batch_size, 6);
  for (size_t i = 0; i + 1 < p2->layers.size(); ++i) {
    const LayerProfile& a = p2->layers[i];
    const LayerProfile& b = p6->layers[i];
    EXPECT_EQ(b.activation_bytes, 3 * a.activation_bytes) << a.name;
    EXPECT_EQ(b.output_bytes, 3 * a.output_bytes) << a.name;
    EXPECT_EQ(b.param_bytes, a.param_bytes) << a.name;
  }
  AnalyticOptions zero;
  zero.micro_batch_size = 0;
  EXPECT_FALSE(AnalyticProfile(m, H100(), zero).ok());
}

TEST(AnalyticTest, DtypeOverride) {
  const Model m = LoadOrFail("gpt2-small");
  // The peak roofline, whose compute-bound kernels slow by the ratio of the peaks.
  AnalyticOptions bf16;
  bf16.rates = Rates::kPeak;
  AnalyticOptions fp32 = bf16;
  fp32.dtype = DType::kFp32;
  Result<Profile> bf = AnalyticProfile(m, H100(), bf16);
  Result<Profile> fp = AnalyticProfile(m, H100(), fp32);
  ASSERT_TRUE(bf.ok() && fp.ok());
  EXPECT_EQ(fp->dtype, DType::kFp32);
  EXPECT_EQ(fp->layers[0].param_bytes, 2 * bf->layers[0].param_bytes);
  EXPECT_GT(fp->layers[1].forward_ms, 5 * bf->layers[1].forward_ms);  // 989.4 / 66.9 peak
}

// An fp8 model with transformer blocks runs only the blocks in fp8 (Megatron-LM): its output
// layer is timed exactly as in the bf16 model while keeping fp8's bytes, and its blocks run
// faster; a model without blocks keeps fp8 everywhere.
TEST(AnalyticTest, Fp8RunsOnlyTheTransformerBlocksInFp8) {
  const Model m = LoadOrFail("llama3-8b");
  AnalyticOptions bf16;
  AnalyticOptions fp8;
  fp8.dtype = DType::kFp8;
  Result<Profile> bf = AnalyticProfile(m, H100(), bf16);
  Result<Profile> f8 = AnalyticProfile(m, H100(), fp8);
  ASSERT_TRUE(bf.ok() && f8.ok());
  int heads = 0, blocks = 0;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerProfile& b = bf->layers[i];
    const LayerProfile& f = f8->layers[i];
    if (m.layers[i].op == LayerKind::kLinear) {
      ++heads;
      EXPECT_DOUBLE_EQ(f.forward_ms, b.forward_ms) << b.name;
      EXPECT_DOUBLE_EQ(f.backward_ms, b.backward_ms) << b.name;
      EXPECT_EQ(2 * f.param_bytes, b.param_bytes) << b.name;
    }
    if (m.layers[i].op == LayerKind::kTransformerBlock) {
      ++blocks;
      EXPECT_LT(f.forward_ms, b.forward_ms) << b.name;  // its products at the fp8 rate
    }
  }
  EXPECT_EQ(heads, 1);
  EXPECT_GT(blocks, 0);
  // mlp-2gpu at 16,384 rows, where its products are compute-bound.
  const Model mlp = LoadOrFail("mlp-2gpu");
  bf16.micro_batch_size = fp8.micro_batch_size = 16384;
  Result<Profile> mlp_bf = AnalyticProfile(mlp, H100(), bf16);
  Result<Profile> mlp_f8 = AnalyticProfile(mlp, H100(), fp8);
  ASSERT_TRUE(mlp_bf.ok() && mlp_f8.ok());
  const Layer& fc1 = mlp.layers[0];
  ASSERT_EQ(fc1.op, LayerKind::kLinear);
  ModelInput rows = mlp.input;
  rows.micro_batch_size = 16384;
  const LayerKernels k = ListKernels(fc1, rows, DType::kFp8);
  const LayerKernels k_bf = ListKernels(fc1, rows, DType::kBf16);
  // fc1 is one product and a bias, and in fp8 its input's quantization: the layer lasts its
  // kernels at the fp8 rate, and the product alone is faster than in bf16.
  double fp8_ms = 0;
  for (const Kernel& kernel : k.forward) {
    fp8_ms += KernelTimeMs(kernel, H100(), DType::kFp8, Direction::kForward, Rates::kAchieved);
  }
  EXPECT_DOUBLE_EQ(mlp_f8->layers[0].forward_ms, fp8_ms);
  ASSERT_EQ(k.forward[0].name, "linear");
  ASSERT_EQ(k_bf.forward[0].name, "linear");
  EXPECT_LT(KernelTimeMs(k.forward[0], H100(), DType::kFp8, Direction::kForward, Rates::kAchieved),
            KernelTimeMs(k_bf.forward[0], H100(), DType::kBf16, Direction::kForward,
                         Rates::kAchieved));
}

TEST(AnalyticTest, BackendsAndUnknownDevice) {
  const Model m = LoadOrFail("gpt2-small");
  const ProfilerBackend* analytic = FindBackend("analytic");
  ASSERT_NE(analytic, nullptr);
  ProfileRequest request;
  request.model = &m;
  Result<Profile> p = analytic->Run(request);
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->device.name, H100().name);  // the default device

  request.device = "tpu-v9";
  Result<Profile> bad = analytic->Run(request);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("tpu-v9"), std::string::npos) << bad.message();
  for (const DeviceSpec& d : AllDevices()) {
    EXPECT_NE(bad.message().find(d.key), std::string::npos) << bad.message();
  }

  // The cpu backend measures this machine and refuses GPU options rather than ignoring them.
  request.device = "h100";
  request.gpus = "0";
  Result<Profile> cpu = FindBackend("cpu")->Run(request);
  ASSERT_FALSE(cpu.ok());
  EXPECT_NE(cpu.message().find("--gpus"), std::string::npos) << cpu.message();
  EXPECT_EQ(BackendNames(), (std::vector<std::string_view>{"analytic", "cpu", "cuda"}));
  EXPECT_EQ(FindBackend("tpu"), nullptr);
}

TEST(AnalyticTest, HugeShapesAreAnErrorNotACrash) {
  // 2^20 x 2^24 rows of 2^24 bf16 values: 2^69 bytes of embedding output.
  const Model m = ModelOrFail(R"({"format": "pp-partition.model/v1", "name": "huge",
      "input": {"micro_batch_size": 1048576, "seq_len": 16777216},
      "layers": [{"name": "wide_embed", "op": "embedding", "vocab": 16777216,
                  "hidden": 16777216},
                 {"name": "loss", "op": "cross_entropy"}]})");
  Result<Profile> p = AnalyticProfile(m, H100(), AnalyticOptions());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("wide_embed"), std::string::npos) << p.message();
  EXPECT_NE(p.message().find("2^53"), std::string::npos) << p.message();
  // Attention scores alone overflow: b * a * s^2 * 2 bytes = 2^1 * 2^4 * 2^48 * 2 = 2^54.
  const Model attn = ModelOrFail(R"({"format": "pp-partition.model/v1", "name": "long",
      "input": {"micro_batch_size": 2, "seq_len": 16777216},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 100, "hidden": 64},
                 {"name": "blk", "op": "transformer_block", "hidden": 64, "heads": 16,
                  "ffn": 64}]})");
  Result<Profile> pa = AnalyticProfile(attn, H100(), AnalyticOptions());
  ASSERT_FALSE(pa.ok());
  EXPECT_NE(pa.message().find("blk"), std::string::npos) << pa.message();
}

}  // namespace
}  // namespace pp
