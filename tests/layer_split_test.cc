// One rank's share of a layer under tensor, sequence, context and expert parallelism
// (KernelShape::par) and with fused attention, against closed forms: the split matrix
// products' flops times the degree give the unsplit ones, the ranks' parameters sum to the
// whole count (the parts every rank keeps counted once), the activations follow Korthikanti
// et al. 2022 (with and without sequence parallelism), and the collectives of one small block
// carry the bytes worked out by hand (docs/analytic.md, "Under parallelism").
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/kind_entry.h"
#include "core/model.h"
#include "profiler/analytic.h"
#include "profiler/kernels.h"
#include "tests/test_util.h"

namespace pp {
namespace {

Model ModelOrFail(const std::string& layers, const std::string& input) {
  return testing::ModelOrFail(
      R"({"format": "pp-partition.model/v1", "name": "t", "dtype": "bf16", "input": )" + input +
      R"(, "layers": )" + layers + "}");
}

// A token model: embedding, `block` (a transformer_block's fields), final norm, head, loss.
Model WithBlock(const std::string& block, const std::string& input) {
  return ModelOrFail(R"([{"name": "embed", "op": "embedding", "vocab": 64, "hidden": 8},
      {"name": "block", "op": "transformer_block", "hidden": 8, )" + block + R"(},
      {"name": "norm", "op": "layernorm", "hidden": 8},
      {"name": "head", "op": "linear", "in": 8, "out": 64, "bias": false},
      {"name": "loss", "op": "cross_entropy"}])",
                     input);
}

KernelOptions Par(int tp, int cp, int ep, bool sp, bool flash = false, int etp = 0) {
  KernelOptions o;
  o.par = ShardDegrees{tp, cp, ep, sp, etp};
  o.flash_attention = flash;
  return o;
}

// Flops of each named kernel of all three parts.
std::map<std::string, double> FlopsByName(const LayerKernels& k) {
  std::map<std::string, double> out;
  for (const auto* part : {&k.forward, &k.backward_input, &k.backward_weight}) {
    for (const Kernel& kernel : *part) out[std::string(kernel.name)] += kernel.flops;
  }
  return out;
}

const char* kInput = R"({"micro_batch_size": 2, "seq_len": 8})";

TEST(LayerSplit, SplitMatrixProductsTimesTheDegreeAreTheUnsplitOnes) {
  // 8 heads, 4 key/value heads, head size 1; tp 2 and 4 divide them all.
  for (const char* mlp : {"gelu", "swiglu"}) {
    SCOPED_TRACE(mlp);
    const Model m = WithBlock(R"("heads": 8, "kv_heads": 4, "ffn": 24, "causal": true,
        "mlp": ")" + std::string(mlp) + "\"", kInput);
    const Layer& block = m.layers[1];
    const auto whole = FlopsByName(ListKernels(block, m.input, DType::kBf16));
    for (int tp : {2, 4}) {
      for (int cp : {1, 2}) {
        for (bool sp : {true, false}) {
          const auto rank =
              FlopsByName(ListKernels(block, m.input, DType::kBf16, Par(tp, cp, 1, sp)));
          ASSERT_EQ(rank.size(), whole.size());
          for (const auto& [name, flops] : whole) {
            if (flops == 0) continue;
            // The matrix products split over tp (columns, rows or heads) and the rows over
            // cp: the attention products over cp by their queries, the others by their rows.
            EXPECT_EQ(rank.at(name) * tp * cp, flops) << name << " tp " << tp << " cp " << cp;
          }
        }
      }
    }
  }
}

TEST(LayerSplit, ExpertProductsSplitOverTensorRanksAndStayPerTokenOverExpertRanks) {
  const Model m = WithBlock(R"("heads": 4, "experts": 8, "top_k": 2, "expert_ffn": 12,
      "shared_experts": 1, "shared_ffn": 6, "mlp": "swiglu", "bias": false)", kInput);
  const Layer& block = m.layers[1];
  const auto whole = FlopsByName(ListKernels(block, m.input, DType::kBf16));
  // 16 tokens, each through 2 experts of 3 products h x 12: 2 x 16 x 2 x 8 x 24 (gate and up)
  // + 2 x 32 x 12 x 8 (down) flops in the forward.
  EXPECT_EQ(whole.at("expert_gate_up"), 2.0 * 32 * 8 * 24);
  EXPECT_EQ(whole.at("expert_fc2"), 2.0 * 32 * 12 * 8);
  EXPECT_EQ(whole.at("router"), 2.0 * 16 * 8 * 8);
  for (int tp : {1, 2}) {
    for (int etp : {0, 1}) {  // the experts' width split as tp, or whole (folded)
      for (int ep : {1, 2, 4}) {
        const auto rank = FlopsByName(
            ListKernels(block, m.input, DType::kBf16, Par(tp, 1, ep, true, false, etp)));
        // Each tensor rank routes its sequence-parallel share; each expert rank computes as
        // many token copies as the expert group sends out for its experts (balanced routing),
        // gathered over the expert tensor ranks, each expert's width split over them: a
        // tp-th of the whole either way. The shared experts split over tp as a dense MLP.
        for (const char* name : {"expert_gate_up", "expert_fc2", "expert_gate_up_dgrad",
                                 "expert_fc2_dgrad", "expert_gate_up_wgrad", "expert_fc2_wgrad",
                                 "shared_gate_up", "shared_fc2", "router", "router_dgrad",
                                 "router_wgrad"}) {
          EXPECT_EQ(rank.at(name) * tp, whole.at(name))
              << name << " tp " << tp << " etp " << etp << " ep " << ep;
        }
      }
    }
  }
}

TEST(LayerSplit, RankParametersSumToTheWholeCount) {
  // h 8, 4 heads of 2, 2 key/value heads, gelu ffn 12 with biases, layer norms.
  const Model m = WithBlock(R"("heads": 4, "kv_heads": 2, "ffn": 12)", kInput);
  const Layer& block = m.layers[1];
  const LayerKindEntry& kind = KindEntry(block.op);
  // Whole: norms 2 x 16, qkv 8 x 16 + 16, proj 8 x 8 + 8, fc1 8 x 12 + 12, fc2 12 x 8 + 8.
  EXPECT_EQ(kind.ParamCount(block), 32 + 144 + 72 + 108 + 104);
  // tp 2: qkv 8 x 8 + 8 (2 heads, 1 key/value head), proj 4 x 8 + 8, fc1 8 x 6 + 6,
  // fc2 6 x 8 + 8.
  const ShardDegrees tp2{2, 1, 1, true};
  EXPECT_EQ(kind.RankParamCount(block, tp2), 32 + 72 + 40 + 54 + 56);
  // Every rank keeps the norms, proj's bias and fc2's bias whole (48 parameters).
  EXPECT_EQ(2 * kind.RankParamCount(block, tp2) - 48, kind.ParamCount(block));
  // tp 4: one head and, replicated, one key/value head a rank (k and v rows 8 x 2 each,
  // two ranks share each key/value head).
  const ShardDegrees tp4{4, 1, 1, true};
  EXPECT_EQ(kind.RankParamCount(block, tp4), 32 + (8 * 6 + 6) + (2 * 8 + 8) + (8 * 3 + 3) +
                                                 (3 * 8 + 8));
  // Over the 4 ranks: q 8 x 2 + 2 each; k and v counted once per key/value head.
  const int64_t kv_once = 2 * (8 * 4 + 4);  // k and v of both heads, weights and biases
  EXPECT_EQ(4 * (kind.RankParamCount(block, tp4) - 32 - 8 - 8) - 4 * (8 * 4 + 4) + kv_once +
                32 + 8 + 8,
            kind.ParamCount(block));

  // A mixture of experts over ep 2 and tp 2: the router (8 x 4) and the norms whole, the 4
  // experts two a rank, each expert's width halved.
  const Model moe = WithBlock(R"("heads": 4, "experts": 4, "top_k": 2, "expert_ffn": 6,
      "mlp": "swiglu", "bias": false)", kInput);
  const Layer& mb = moe.layers[1];
  const int64_t attention_whole = 8 * 24 + 8 * 8;
  EXPECT_EQ(kind.ParamCount(mb), 32 + attention_whole + 8 * 4 + 4 * 3 * 8 * 6);
  const ShardDegrees both{2, 1, 2, true};
  EXPECT_EQ(kind.RankParamCount(mb, both), 32 + attention_whole / 2 + 8 * 4 + 2 * 3 * 8 * 3);
  // Four ranks (2 tensor x 2 expert) hold every expert weight once; the attention is halved
  // over the tensor ranks and repeated over the expert ranks.
  EXPECT_EQ(4 * (kind.RankParamCount(mb, both) - 32 - 8 * 4) - attention_whole + 32 + 8 * 4,
            kind.ParamCount(mb));
  // Folded (etp 1): each rank holds its two experts whole; the four ranks (2 tensor x 2
  // expert-data) then hold every expert weight twice, and the attention's halves twice.
  const ShardDegrees folded{2, 1, 2, true, 1};
  // The routed experts' part: two experts a rank, at half or whole width.
  EXPECT_EQ(kind.RankExpertParamCount(mb, both), 2 * 3 * 8 * 3);
  EXPECT_EQ(kind.RankExpertParamCount(mb, folded), 2 * 3 * 8 * 6);
  EXPECT_EQ(kind.RankExpertParamCount(block, tp2), 0);
  EXPECT_EQ(AnalyticLayerMemory(mb, moe.input, DType::kBf16, Par(2, 1, 2, true, false, 1))
                .expert_param_bytes,
            2.0 * 2 * 3 * 8 * 6);
  EXPECT_EQ(kind.RankParamCount(mb, folded), 32 + attention_whole / 2 + 8 * 4 + 2 * 3 * 8 * 6);
  EXPECT_EQ(4 * (kind.RankParamCount(mb, folded) - 32 - 8 * 4) - 2 * attention_whole,
            2 * 4 * 3 * 8 * 6);

  // The embedding and the head split their vocabulary; the sums are the whole tables.
  for (size_t i : {size_t{0}, size_t{3}}) {
    const Layer& l = m.layers[i];
    EXPECT_EQ(4 * KindEntry(l.op).RankParamCount(l, tp4), LayerParamCount(l)) << l.name;
  }
  // AnalyticLayerMemory charges a rank its own share.
  EXPECT_EQ(AnalyticLayerMemory(block, m.input, DType::kBf16, Par(2, 1, 1, true)).param_bytes,
            2.0 * kind.RankParamCount(block, tp2));
}

TEST(LayerSplit, BlockActivationsFollowKorthikanti) {
  // GPT shapes (f = 4h, layer norm, gelu, bf16): without sequence parallelism a rank keeps
  // 10sbh + 24sbh/t + 5as^2b/t bytes less dropout's masks, i.e. 8sbh + 24sbh/t + 2as^2b/t
  // plus the norms' statistics 16sb; with it, all of that divided by t.
  const Model m = ModelOrFail(R"([{"name": "e", "op": "embedding", "vocab": 10, "hidden": 32},
      {"name": "b", "op": "transformer_block", "hidden": 32, "heads": 4, "ffn": 128,
       "causal": true}])",
                              R"({"micro_batch_size": 2, "seq_len": 16})");
  const Layer& block = m.layers[1];
  const double s = 16, b = 2, h = 32, a = 4;
  for (double t : {2.0, 4.0}) {
    const int tp = static_cast<int>(t);
    const double plain = AnalyticLayerMemory(block, m.input, DType::kBf16, Par(tp, 1, 1, false))
                             .activation_bytes;
    EXPECT_EQ(plain, 8 * s * b * h + 24 * s * b * h / t + 2 * a * s * s * b / t + 16 * s * b);
    const double split = AnalyticLayerMemory(block, m.input, DType::kBf16, Par(tp, 1, 1, true))
                             .activation_bytes;
    EXPECT_EQ(split, (32 * s * b * h + 2 * a * s * s * b + 16 * s * b) / t);
  }
  // Context parallelism: a rank's own s/cp queries against all s keys.
  const double cp2 =
      AnalyticLayerMemory(block, m.input, DType::kBf16, Par(1, 2, 1, true)).activation_bytes;
  EXPECT_EQ(cp2, (32 * s * b * h + 16 * s * b) / 2 + 2 * a * (s / 2) * s * b);
}

TEST(LayerSplit, BlockActivationsWithDropoutFollowKorthikantiExactly) {
  // With dropout (Korthikanti et al.'s own setting): 10sbh + 24sbh/t + 5as^2b/t without
  // sequence parallelism, 34sbh/t + 5as^2b/t with it, plus the norms' statistics 16sb.
  const Model m = ModelOrFail(R"([{"name": "e", "op": "embedding", "vocab": 10, "hidden": 32},
      {"name": "b", "op": "transformer_block", "hidden": 32, "heads": 4, "ffn": 128,
       "causal": true, "dropout": 0.1}])",
                              R"({"micro_batch_size": 2, "seq_len": 16})");
  const Layer& block = m.layers[1];
  const double s = 16, b = 2, h = 32, a = 4;
  for (double t : {1.0, 2.0, 4.0}) {
    const int tp = static_cast<int>(t);
    EXPECT_EQ(AnalyticLayerMemory(block, m.input, DType::kBf16, Par(tp, 1, 1, false))
                  .activation_bytes,
              10 * s * b * h + 24 * s * b * h / t + 5 * a * s * s * b / t + 16 * s * b);
    EXPECT_EQ(AnalyticLayerMemory(block, m.input, DType::kBf16, Par(tp, 1, 1, true))
                  .activation_bytes,
              (34 * s * b * h + 5 * a * s * s * b + 16 * s * b) / t);
  }
  // Fused attention keeps no scores, so dropout adds only the two branch masks, 2sbh.
  EXPECT_EQ(AnalyticLayerMemory(block, m.input, DType::kBf16, Par(1, 1, 1, true, true))
                    .activation_bytes -
                AnalyticLayerMemory(ModelOrFail(R"([{"name": "e", "op": "embedding",
      "vocab": 10, "hidden": 32}, {"name": "b", "op": "transformer_block", "hidden": 32,
      "heads": 4, "ffn": 128, "causal": true}])",
                                                R"({"micro_batch_size": 2, "seq_len": 16})")
                                        .layers[1],
                                    m.input, DType::kBf16, Par(1, 1, 1, true, true))
                    .activation_bytes,
            2 * s * b * h);
  // Unfused: the forward drops out the scores (reads P, writes P' and a one-byte mask) and
  // each branch (a one-byte mask per element on top of the residual add); the backward
  // undoes each (reads the gradient and the mask, writes one).
  const LayerKernels k = ListKernels(block, m.input, DType::kBf16, Par(1, 1, 1, false));
  std::map<std::string, double> bytes;
  for (const auto* part : {&k.forward, &k.backward_input}) {
    for (const Kernel& kernel : *part) bytes[std::string(kernel.name)] = kernel.bytes;
  }
  const double scores = a * s * s * b;
  EXPECT_EQ(bytes["attention_dropout"], 2 * scores * 2 + scores);
  EXPECT_EQ(bytes["attention_dropout_dgrad"], 2 * scores * 2 + scores);
  EXPECT_EQ(bytes["residual_add1"], 3 * s * b * h * 2 + s * b * h);
  EXPECT_EQ(bytes["dropout1_dgrad"], 5 * s * b * h);
  EXPECT_EQ(bytes["dropout2_dgrad"], 5 * s * b * h);
}

// A dropout probability must be in [0, 1): one line naming the field.
TEST(LayerSplit, DropoutIsAProbabilityBelowOne) {
  for (const char* bad : {"1", "1.5", "-0.1", "\"x\""}) {
    Json doc = testing::SmallModelJson();
    doc["layers"][1]["dropout"] = Json::parse(bad);
    Result<Model> m = ModelFromJson(doc);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_NE(m.message().find("dropout"), std::string::npos) << m.message();
    EXPECT_EQ(m.message().find('\n'), std::string::npos) << m.message();
  }
  Json doc = testing::SmallModelJson();
  doc["layers"][1]["dropout"] = 0.1;
  Result<Model> m = ModelFromJson(doc);
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->layers[1].dropout, 0.1);
  EXPECT_EQ(ModelToJson(*m)["layers"][1]["dropout"], 0.1);
  EXPECT_FALSE(ModelToJson(*ModelFromJson(testing::SmallModelJson()))["layers"][1].contains(
      "dropout"));
}

TEST(LayerSplit, FusedAttentionIsOneKernelAndKeepsNoProbabilities) {
  const Model m = WithBlock(R"("heads": 4, "kv_heads": 2, "ffn": 16, "causal": true)",
                            R"({"micro_batch_size": 2, "seq_len": 8})");
  const Layer& block = m.layers[1];
  const double b = 2, s = 8, a = 4, d = 2, e = 2;
  const LayerKernels k = ListKernels(block, m.input, DType::kBf16, Par(1, 1, 1, true, true));
  std::vector<const Kernel*> fused;
  for (const auto* part : {&k.forward, &k.backward_input}) {
    for (const Kernel& kernel : *part) {
      EXPECT_NE(kernel.name, "softmax");
      EXPECT_NE(kernel.name, "attention_scores");
      if (kernel.cls == KernelClass::kAttention) fused.push_back(&kernel);
    }
  }
  ASSERT_EQ(fused.size(), 2u);
  // Forward: S = QK^T and O = PV, 2 s^2 d flops each per head, halved by the causal mask.
  EXPECT_EQ(fused[0]->flops, 2 * (2 * s * s * d) * b * a / 2);
  // Backward: S again, dV, dP, dQ and dK.
  EXPECT_EQ(fused[1]->flops, 5 * (2 * s * s * d) * b * a / 2);
  // Bytes: Q and O (b s a d each), K and V (b s kv d each); the backward adds dO, dQ, dK, dV.
  const double q = b * s * a * d * e, kv = b * s * 2 * d * e, stats = b * a * s * 4;
  EXPECT_EQ(fused[0]->bytes, 2 * q + 2 * kv + stats);
  EXPECT_EQ(fused[1]->bytes, 4 * q + 4 * kv + stats);
  // Kept: the probabilities (b a s^2 elements) give way to an fp32 statistic per query row.
  const double unfused = AnalyticLayerMemory(block, m.input, DType::kBf16).activation_bytes;
  const double flash =
      AnalyticLayerMemory(block, m.input, DType::kBf16, Par(1, 1, 1, true, true)).activation_bytes;
  EXPECT_EQ(unfused - flash, b * a * s * s * e - b * a * s * 4);
}

// name, kind, group, bytes, hidden_behind and step of the experts' token exchange of each
// collective, in list order.
struct Expected {
  std::string name;
  CollectiveKind kind;
  CommGroup group;
  double bytes;
  std::string hidden_behind;
  TokenExchange exchange = TokenExchange::kNone;
};
void ExpectComm(const std::vector<Collective>& got, const std::vector<Expected>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].kind, want[i].kind);
    EXPECT_EQ(got[i].group, want[i].group);
    EXPECT_EQ(got[i].bytes, want[i].bytes);
    EXPECT_EQ(got[i].hidden_behind, want[i].hidden_behind);
    EXPECT_EQ(got[i].exchange, want[i].exchange);
  }
}

TEST(LayerSplit, CollectivesOfOneSmallBlock) {
  // b 2, s 8, h 8, 4 heads of 2, 2 key/value heads, bf16; tp 2, cp 2: a rank has 8 rows.
  const Model m = WithBlock(R"("heads": 4, "kv_heads": 2, "ffn": 16)", kInput);
  const Layer& block = m.layers[1];
  const double x = 8 * 8 * 2;         // [8 rows x h] in bf16: 128 bytes
  const double ring = 1 * 2 * 8 * 2 * 2;  // cp - 1 steps of k and v (8 rows x 1 head x 2)
  using K = CollectiveKind;
  using G = CommGroup;
  const LayerKernels sp = ListKernels(block, m.input, DType::kBf16, Par(2, 2, 1, true));
  ExpectComm(sp.forward_comm, {{"qkv_allgather", K::kAllGather, G::kTensor, x, ""},
                               {"proj_reducescatter", K::kReduceScatter, G::kTensor, x, ""},
                               {"fc1_allgather", K::kAllGather, G::kTensor, x, ""},
                               {"fc2_reducescatter", K::kReduceScatter, G::kTensor, x, ""},
                               {"attention_kv_ring", K::kSendRecv, G::kContext, ring,
                                "attention_scores"}});
  ExpectComm(sp.backward_input_comm,
             {{"fc2_dgrad_allgather", K::kAllGather, G::kTensor, x, ""},
              {"fc1_dgrad_reducescatter", K::kReduceScatter, G::kTensor, x, "fc1_wgrad"},
              {"proj_dgrad_allgather", K::kAllGather, G::kTensor, x, ""},
              {"qkv_dgrad_reducescatter", K::kReduceScatter, G::kTensor, x, "qkv_wgrad"},
              {"attention_kv_ring_dgrad", K::kSendRecv, G::kContext, ring,
               "attention_scores_dgrad_q"},
              {"attention_dkv_ring", K::kSendRecv, G::kContext, ring,
               "attention_scores_dgrad_q"}});
  EXPECT_TRUE(sp.backward_weight_comm.empty());

  const LayerKernels plain = ListKernels(block, m.input, DType::kBf16, Par(2, 1, 1, false, true));
  const double x16 = 16 * 8 * 2;  // cp 1: 16 rows
  ExpectComm(plain.forward_comm, {{"proj_allreduce", K::kAllReduce, G::kTensor, x16, ""},
                                  {"fc2_allreduce", K::kAllReduce, G::kTensor, x16, ""}});
  ExpectComm(plain.backward_input_comm,
             {{"fc1_dgrad_allreduce", K::kAllReduce, G::kTensor, x16, "fc1_wgrad"},
              {"qkv_dgrad_allreduce", K::kAllReduce, G::kTensor, x16, "qkv_wgrad"}});

  // Context parallelism alone, fused attention: the ring hides behind the fused kernels.
  const LayerKernels cp4 = ListKernels(block, m.input, DType::kBf16, Par(1, 4, 1, true, true));
  const double ring4 = 3 * 2 * 4 * 4 * 2;  // 3 steps of k and v: 4 rows x 2 heads x 2
  ExpectComm(cp4.forward_comm,
             {{"attention_kv_ring", K::kSendRecv, G::kContext, ring4, "attention"}});
  ASSERT_EQ(cp4.backward_input_comm.size(), 2u);
  EXPECT_EQ(cp4.backward_input_comm[1].hidden_behind, "attention_dgrad");

  // Nothing split: no collectives.
  const LayerKernels one = ListKernels(block, m.input, DType::kBf16);
  EXPECT_TRUE(one.forward_comm.empty() && one.backward_input_comm.empty() &&
              one.backward_weight_comm.empty());
}

// Megatron-LM's all-to-all token dispatcher under tensor parallelism with sequence
// parallelism: each rank routes its own share of the rows, sends the copies over the expert
// group, gathers them over the expert tensor group when etp > 1 and scatters the experts'
// output back before the combine; the shared experts gather and scatter over the tensor group
// as a dense MLP does, and the layer's output stays the sequence-parallel share.
TEST(LayerSplit, ExpertCollectivesUnderTensorParallelismFollowTheDispatcher) {
  using K = CollectiveKind;
  using X = TokenExchange;
  using G = CommGroup;
  const Model m = WithBlock(R"("heads": 4, "experts": 4, "top_k": 2, "expert_ffn": 6,
      "mlp": "swiglu", "bias": false)", kInput);
  const Model shared = WithBlock(R"("heads": 4, "experts": 4, "top_k": 2, "expert_ffn": 6,
      "shared_experts": 1, "shared_ffn": 4, "mlp": "swiglu", "bias": false)", kInput);
  // 16 rows, tp 2: a rank routes 8, whose 16 copies of 8 words of 2 bytes cross the expert
  // group; ep 2 sends a rank the copies of its 2 of 4 experts from both members: 16.
  const double copies = 8 * 2 * 8 * 2;
  const double x = 16 * 8 * 2;  // the gathered rows of the shared experts
  auto mlp_only = [](const std::vector<Collective>& all) {
    std::vector<Collective> out;
    for (const Collective& c : all) {
      const std::string_view n = c.name;
      if (n.substr(0, 3) == "moe" || n.substr(0, 6) == "shared") out.push_back(c);
    }
    return out;
  };
  // etp as tp (2): the 16 received copies are gathered over the 2 expert tensor ranks.
  const double gathered = 2 * 16 * 8 * 2;
  const LayerKernels etp2 =
      ListKernels(m.layers[1], m.input, DType::kBf16, Par(2, 1, 2, true, false));
  ExpectComm(
      mlp_only(etp2.forward_comm),
      {{"moe_dispatch_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kDispatch},
       {"moe_etp_allgather", K::kAllGather, G::kExpertTensor, gathered, "", X::kDispatch},
       {"moe_etp_reducescatter", K::kReduceScatter, G::kExpertTensor, gathered, "", X::kCombine},
       {"moe_combine_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kCombine}});
  ExpectComm(
      mlp_only(etp2.backward_input_comm),
      {{"moe_combine_dgrad_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kCombine},
       {"moe_etp_dgrad_allgather", K::kAllGather, G::kExpertTensor, gathered, "", X::kCombine},
       {"moe_etp_dgrad_reducescatter", K::kReduceScatter, G::kExpertTensor, gathered, "",
        X::kDispatch},
       {"moe_dispatch_dgrad_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kDispatch}});
  // No dense MLP collective: the routed experts never gather the whole rows.
  for (const Collective& c : etp2.forward_comm) {
    EXPECT_NE(c.name, "fc1_allgather");
    EXPECT_NE(c.name, "fc2_reducescatter");
  }
  // etp 1: nothing to gather; each rank computes its 16 received copies at full width.
  const LayerKernels etp1 =
      ListKernels(m.layers[1], m.input, DType::kBf16, Par(2, 1, 2, true, false, 1));
  ExpectComm(mlp_only(etp1.forward_comm),
             {{"moe_dispatch_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kDispatch},
              {"moe_combine_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kCombine}});
  // The shared experts: a dense MLP over the tensor ranks.
  const LayerKernels sh =
      ListKernels(shared.layers[1], shared.input, DType::kBf16, Par(2, 1, 2, true, false, 1));
  ExpectComm(mlp_only(sh.forward_comm),
             {{"moe_dispatch_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kDispatch},
              {"moe_combine_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kCombine},
              {"shared_fc1_allgather", K::kAllGather, G::kTensor, x, ""},
              {"shared_fc2_reducescatter", K::kReduceScatter, G::kTensor, x, ""}});
  ExpectComm(mlp_only(sh.backward_input_comm),
             {{"shared_fc2_dgrad_allgather", K::kAllGather, G::kTensor, x, ""},
              {"shared_fc1_dgrad_reducescatter", K::kReduceScatter, G::kTensor, x,
               "shared_gate_up_wgrad"},
              {"moe_combine_dgrad_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kCombine},
              {"moe_dispatch_dgrad_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kDispatch}});
  // The block hands on its sequence-parallel share either way.
  for (int etp : {0, 1}) {
    EXPECT_EQ(AnalyticLayerMemory(m.layers[1], m.input, DType::kBf16,
                                  Par(2, 1, 2, true, false, etp))
                  .output_bytes,
              x / 2);
  }
}

TEST(LayerSplit, ExpertAllToAllsAndTheVocabularyParallelEnds) {
  using K = CollectiveKind;
  using X = TokenExchange;
  using G = CommGroup;
  const Model m = WithBlock(R"("heads": 4, "experts": 4, "top_k": 2, "expert_ffn": 6,
      "mlp": "swiglu", "bias": false)", kInput);
  // ep 2 alone: 16 rows, each sent to 2 experts: 16 x 2 x 8 x 2 bytes each way.
  const double copies = 16 * 2 * 8 * 2;
  const LayerKernels ep = ListKernels(m.layers[1], m.input, DType::kBf16, Par(1, 1, 2, true));
  ExpectComm(ep.forward_comm,
             {{"moe_dispatch_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kDispatch},
              {"moe_combine_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kCombine}});
  ExpectComm(ep.backward_input_comm,
             {{"moe_combine_dgrad_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kCombine},
              {"moe_dispatch_dgrad_alltoall", K::kAllToAll, G::kExpert, copies, "", X::kDispatch}});

  // tp 2 with sequence parallelism: the embedding reduce-scatters its partial rows and
  // gathers the output gradient for its tables; the head gathers its input and
  // reduce-scatters the input gradient; the vocabulary-parallel loss all-reduces three fp32
  // values a row.
  const KernelOptions tp2 = Par(2, 1, 1, true);
  const double x = 16 * 8 * 2;
  const LayerKernels embed = ListKernels(m.layers[0], m.input, DType::kBf16, tp2);
  ExpectComm(embed.forward_comm,
             {{"embedding_reducescatter", K::kReduceScatter, G::kTensor, x, ""}});
  ExpectComm(embed.backward_weight_comm,
             {{"embedding_dgrad_allgather", K::kAllGather, G::kTensor, x, ""}});
  const LayerKernels head = ListKernels(m.layers[3], m.input, DType::kBf16, tp2);
  ExpectComm(head.forward_comm, {{"linear_allgather", K::kAllGather, G::kTensor, x, ""}});
  ExpectComm(head.backward_input_comm,
             {{"linear_dgrad_reducescatter", K::kReduceScatter, G::kTensor, x, ""}});
  const LayerKernels loss = ListKernels(m.layers[4], m.input, DType::kBf16, tp2);
  ExpectComm(loss.forward_comm,
             {{"cross_entropy_max_allreduce", K::kAllReduce, G::kTensor, 16 * 4, ""},
              {"cross_entropy_target_allreduce", K::kAllReduce, G::kTensor, 16 * 4, ""},
              {"cross_entropy_sum_allreduce", K::kAllReduce, G::kTensor, 16 * 4, ""}});
  // The head's logits and the loss's softmax are a rank's 32 of the 64 words.
  EXPECT_EQ(AnalyticLayerMemory(m.layers[4], m.input, DType::kBf16, tp2).activation_bytes,
            16 * 32 * 2);
  EXPECT_EQ(AnalyticLayerMemory(m.layers[3], m.input, DType::kBf16, tp2).output_bytes,
            16 * 32 * 2);
  // The block and the norm send their sequence-parallel share on.
  EXPECT_EQ(AnalyticLayerMemory(m.layers[1], m.input, DType::kBf16, tp2).output_bytes, x / 2);
  EXPECT_EQ(AnalyticLayerMemory(m.layers[2], m.input, DType::kBf16, tp2).output_bytes, x / 2);
}

// Megatron-Core's unfused vocabulary-parallel cross entropy, pass by pass
// (megatron/core/tensor_parallel/cross_entropy.py): per logit, the fp32 cast reads 2 bytes
// and writes 4, the max reads 4, the shift, the exponential and the division read and write
// 4 each, the sum reads 4: 38 bytes; the backward's multiplication reads and writes 4 and the
// cast back reads 4 and writes 2: 14. A row's max, sum and (at the division) its target's
// logit, sum and loss add 4 bytes each. fp32 logits skip both casts. It keeps the fp32
// softmax; the fused kernel reads and writes each tensor once and keeps it in bf16.
TEST(LayerSplit, UnfusedCrossEntropyRunsMegatronCoresPasses) {
  const Model m = WithBlock(R"("heads": 4, "ffn": 16)", kInput);
  const Layer& loss = m.layers[4];
  auto bytes = [](const std::vector<Kernel>& part) {
    double sum = 0;
    for (const Kernel& k : part) sum += k.bytes;
    return sum;
  };
  KernelOptions tp2 = Par(2, 1, 1, true);
  const double rows = 16, logits = rows * 32;  // a rank's 32 of the 64 words
  const LayerKernels fused = ListKernels(loss, m.input, DType::kBf16, tp2);
  tp2.fused_cross_entropy = false;
  const LayerKernels bf16 = ListKernels(loss, m.input, DType::kBf16, tp2);
  const LayerKernels fp32 = ListKernels(loss, m.input, DType::kFp32, tp2);
  EXPECT_EQ(bytes(fused.forward), logits * 2 * 2 + rows * 8);
  EXPECT_EQ(bytes(fused.backward_input), logits * 2 * 2 + rows * 4);
  EXPECT_EQ(bytes(bf16.forward), logits * 38 + rows * (4 + 4 + 4 + 12));
  EXPECT_EQ(bytes(bf16.backward_input), logits * 14 + rows * 12);
  EXPECT_EQ(bf16.forward.size(), 6u);
  EXPECT_EQ(bytes(fp32.forward), logits * 32 + rows * (4 + 4 + 4 + 12));
  EXPECT_EQ(bytes(fp32.backward_input), logits * 8 + rows * 12);
  EXPECT_EQ(fp32.forward.size(), 5u);
  // The same three fp32 all-reduces a row either way.
  EXPECT_EQ(bf16.forward_comm.size(), fused.forward_comm.size());
  EXPECT_EQ(AnalyticLayerMemory(loss, m.input, DType::kBf16, tp2).activation_bytes, logits * 4);
  tp2.fused_cross_entropy = true;
  EXPECT_EQ(AnalyticLayerMemory(loss, m.input, DType::kBf16, tp2).activation_bytes, logits * 2);
}

}  // namespace
}  // namespace pp
