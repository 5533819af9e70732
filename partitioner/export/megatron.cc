// Megatron-LM: --pipeline-model-parallel-size, --num-layers, and either the first/last stage
// layer counts or a --pipeline-model-parallel-layout string.
//
// Layer kinds: the embedding is E and must be the first layer, alone of its kind; every
// transformer block is t; everything after the last block (final norm, head, loss) is one L
// that must stay in the last stage. Any other layer before the last block has no letter.
// Multi-token prediction blocks (Layer::mtp, LayerProfile::mtp) are m, with --mtp-num-layers: the
// final norm goes with the last block (Megatron-LM keeps it there when there are any), the m's all
// in one chunk, that chunk its pipeline rank's last (megatron/core/transformer/
// pipeline_parallel_layer_layout.py), then L; such plans always get the layout string.
// The layout lists chunks in order, "|" between them, "t*k" for k blocks (plain "t" for one),
// so "Et*3|t*4|t*4|t*2L". The first/last flags are used when every stage but the first
// and/or last holds the same number of blocks and the first and last hold at least one;
// Megatron-LM then gives the first stage A blocks, the last B and divides the rest evenly.
#include <algorithm>

#include "executor/schedule.h"
#include "partitioner/export/targets.h"

namespace pp {
namespace {

Status CannotExpress(const std::string& why) {
  return Status::Error("this plan cannot be expressed for Megatron-LM: " + why);
}

std::string Letters(bool embedding, int blocks, int mtp, bool tail) {
  std::string s = embedding ? "E" : "";
  if (blocks == 1) s += "t";
  if (blocks > 1) s += "t*" + std::to_string(blocks);
  if (mtp == 1) s += "m";
  if (mtp > 1) s += "m*" + std::to_string(mtp);
  if (tail) s += "L";
  return s;
}

class Megatron final : public Exporter {
 public:
  std::string_view name() const override { return "megatron"; }
  std::string_view summary() const override {
    return "Megatron-LM arguments: pipeline size, first/last stage layers or a layout";
  }

  Result<std::string> Export(const Plan& plan, const ExportOptions&) const override {
    const std::vector<std::string> ops = LayerOps(plan);
    const std::vector<LayerProfile>& layers = plan.profile.layers;
    const int n = static_cast<int>(ops.size());
    for (int i = 0; i < n; ++i) {
      if (ops[i].empty()) {
        return CannotExpress("layer " + layers[i].name + " has no known kind (the plan has no "
                             "model_spec and its profile gives no \"op\"); plan from the model "
                             "file to record the kinds");
      }
    }
    const std::vector<bool> mtp = LayerMtp(plan);
    int last_block = -1, first_mtp = -1, last_mtp = -1;
    for (int i = 0; i < n; ++i) {
      if (ops[i] == "transformer_block" && !mtp[i]) last_block = i;
      if (mtp[i]) {
        if (first_mtp < 0) first_mtp = i;
        last_mtp = i;
      }
    }
    if (last_block < 0) return CannotExpress("the model has no transformer blocks (t)");
    if (ops[0] != "embedding") {
      return CannotExpress("the first layer " + layers[0].name + " is " + ops[0] +
                           ", not an embedding; a layout starts with exactly one E");
    }
    for (int i = 1; i < last_block; ++i) {
      if (ops[i] == "transformer_block") continue;
      if (ops[i] == "embedding") {
        return CannotExpress("layer " + layers[i].name + " is a second embedding; a layout "
                             "has exactly one E, at the front");
      }
      return CannotExpress("layer " + layers[i].name + " (" + ops[i] + ") comes before the "
                           "last transformer block and Megatron-LM has no letter for it");
    }
    if (last_block == n - 1) {
      return CannotExpress("no layers follow the last transformer block; a layout ends with "
                           "one L (final norm, head and loss)");
    }
    const std::vector<Chunk> chunks = ChunksOf(plan);
    std::vector<int> blocks;
    std::string layout;
    const int mtp_count = first_mtp < 0 ? 0 : last_mtp - first_mtp + 1;
    for (size_t ci = 0; ci < chunks.size(); ++ci) {
      const Chunk& c = chunks[ci];
      const int start = c.first_layer;
      const bool allowed = mtp_count == 0
                               ? start <= last_block + 1
                               : start <= last_block || start == first_mtp || start == last_mtp + 1;
      if (!allowed) {
        return CannotExpress(
            "the stage boundary between " + layers[start - 1].name + " and " + layers[start].name +
            (mtp_count == 0
                 ? " cuts the layers after the last transformer block, which Megatron-LM keeps "
                   "together as L in the last stage"
                 : " is not one Megatron-LM's layout can draw with multi-token prediction (the "
                   "final norm with the last block, the m blocks together, then L)"));
      }
      int t = 0, m = 0;
      for (int i = c.first_layer; i <= c.last_layer; ++i) {
        if (i <= last_block) t += ops[i] == "transformer_block" ? 1 : 0;
        m += mtp[i] ? 1 : 0;
      }
      // Megatron-LM: the m's in one chunk, the last of its pipeline rank's chunks. Only L can
      // follow them, so that chunk is one of the last two, which are their ranks' last.
      if (m > 0 && m != mtp_count) {
        return CannotExpress("the multi-token prediction blocks are apart (stage " +
                             std::to_string(ci) + " holds " + std::to_string(m) + " of " +
                             std::to_string(mtp_count) +
                             "); Megatron-LM places them all in one stage");
      }
      blocks.push_back(t);
      if (!layout.empty()) layout += "|";
      layout += Letters(c.first_layer == 0, t, m, c.last_layer == n - 1);
    }

    int total = 0;
    for (int t : blocks) total += t;
    std::string out = HeaderComment(plan, "Megatron-LM");
    // A kind not registered (an older plan's) runs under Megatron-LM's own schedule.
    const ScheduleKind* kind = FindScheduleKind(plan.schedule);
    const FrameworkFit fit = kind ? kind->traits().megatron : FrameworkFit::kOwnSchedule;
    if (fit == FrameworkFit::kNo) {
      return Status::Error("this plan cannot be expressed for Megatron-LM: its virtual stages "
                           "place chunk c on stage c mod p, not where schedule " +
                           plan.schedule + " places it");
    }
    if (fit == FrameworkFit::kOwnSchedule) {
      out += "# Megatron-LM runs its own 1F1B schedule; this plan was predicted for " +
             plan.schedule + "\n";
    }
    for (size_t s = 0; s < chunks.size(); ++s) {
      out += "# stage " + std::to_string(s) + ": " + layers[chunks[s].first_layer].name +
             " .. " + layers[chunks[s].last_layer].name + " (" + std::to_string(blocks[s]) +
             " transformer layers)\n";
    }
    out += "--pipeline-model-parallel-size " + std::to_string(plan.num_stages) + "\n";
    out += "--num-layers " + std::to_string(total) + "\n";
    if (mtp_count > 0) out += "--mtp-num-layers " + std::to_string(mtp_count) + "\n";
    if (plan.parallelism) out += LayoutFlags(plan, chunks.size());
    out += RecomputeFlags(plan, blocks);
    // Interleaved plans (more chunks than stages) need the layout's virtual stages.
    out += chunks.size() == static_cast<size_t>(plan.num_stages) && mtp_count == 0
               ? ShapeFlags(blocks, layout)
               : "--pipeline-model-parallel-layout \"" + layout + "\"\n";
    return out;
  }

 private:
  // The degrees beside the pipeline, the batch and ZeRO's sharding. Virtual stages travel in
  // --pipeline-model-parallel-layout, which Megatron-LM does not take together with
  // --num-virtual-stages-per-pipeline-rank; plans without a layout string (no chunks) have
  // none.
  static std::string LayoutFlags(const Plan& plan, size_t chunks) {
    const ParallelLayout& l = *plan.parallelism;
    std::string out;
    out += "--tensor-model-parallel-size " + std::to_string(l.tp) + "\n";
    if (l.tp > 1 && l.sequence_parallel) out += "--sequence-parallel\n";
    out += "--context-parallel-size " + std::to_string(l.cp) + "\n";
    out += "--expert-model-parallel-size " + std::to_string(l.ep) + "\n";
    // The token exchange the step model costs: Megatron-LM's all-to-all dispatcher
    // (core/kinds/block_mlp.h), or its flex one with DeepEP (the backend that sends a token
    // once per node, as the plan costs it; HybridEP does the same); its default is the
    // all-gather one.
    if (l.ep > 1) {
      out += l.flex_dispatcher
                 ? "--moe-token-dispatcher-type flex\n--moe-flex-dispatcher-backend deepep\n"
                 : "--moe-token-dispatcher-type alltoall\n";
    }
    // The experts' own tensor degree when it is not tp (Megatron-LM's default is tp).
    if (l.etp != 0) out += "--expert-tensor-parallel-size " + std::to_string(l.etp) + "\n";
    out += "--micro-batch-size " + std::to_string(plan.micro_batch_size) + "\n";
    out += "--global-batch-size " +
           std::to_string(int64_t{plan.num_micro_batches} * plan.micro_batch_size * l.dp) + "\n";
    if (chunks != static_cast<size_t>(plan.num_stages)) {
      out += "# " + std::to_string(chunks / plan.num_stages) +
             " virtual stages per pipeline rank, given by the layout above\n";
    }
    // ZeRO 1: the distributed optimizer; 2 and 3: Megatron FSDP's sharding strategies.
    if (l.zero == 1) out += "--use-distributed-optimizer\n";
    if (l.zero >= 2) {
      out += "--use-megatron-fsdp\n--data-parallel-sharding-strategy ";
      out += l.zero == 2 ? "optim_grads\n" : "optim_grads_params\n";
    }
    // The step model overlaps the gradient reduction with the backward and the parameter
    // gather with the next forward unless the layout says not (docs/cost-model.md, "Data
    // parallelism and ZeRO").
    if (l.dp > 1 && l.overlap_grad_reduce) out += "--overlap-grad-reduce\n";
    if (l.dp > 1 && l.zero >= 1 && l.overlap_grad_reduce) out += "--overlap-param-gather\n";
    // Unfused attention: Megatron-LM's AttnBackend.unfused (megatron/core/transformer/enums.py).
    if (!l.fused_attention) out += "--attention-backend unfused\n";
    if (!l.fused_wgrad_accumulation) out += "--no-gradient-accumulation-fusion\n";
    // A fused cross entropy: Megatron-LM's own fusion (its native implementation; its
    // argument check refuses Transformer Engine's). Without the flag it runs the unfused
    // passes the plan's --cross-entropy unfused costs.
    if (l.fused_cross_entropy) out += "--cross-entropy-loss-fusion\n";
    // Megatron-Core's pipeline sends whole tensors; the scatter/gather left it in 2023.
    if (plan.num_stages > 1 && PipelineScatterGatherApplies(l)) {
      out +=
          "# the plan splits each stage transfer over the tensor ranks (Megatron-LM's "
          "scatter/gather before 2023); this Megatron-LM sends whole tensors, so its "
          "transfers take longer than planned\n";
    }
    // The experts' all-to-all under the other micro-batch's compute (ModelParallelConfig's
    // overlap_moe_expert_parallel_comm).
    if (ExpertOverlapApplies(l)) out += "--overlap-moe-expert-parallel-comm\n";
    return out;
  }

  // Recomputation. The plan's recomputing chunk keeps only its input and runs its forward
  // again in its backward (or, by layer, each layer's). That is Megatron-LM's full
  // recomputation with the uniform method, whose groups of --recompute-num-layers transformer
  // layers, counted within each (virtual) stage and cut at its end, are then whole chunks
  // (megatron/core/recompute.py), or single layers with 1; by block its block method, which
  // recomputes the first K transformer layers of each (virtual) stage one at a time and keeps
  // the others' activations. Megatron-LM recomputes only the transformer layers, not the
  // embedding or the head.
  static std::string RecomputeFlags(const Plan& plan, const std::vector<int>& blocks) {
    int recomputing = 0, largest = 1;
    std::string which;
    for (const StagePlan& s : plan.stages) {
      if (!s.recompute) continue;
      ++recomputing;
      which += (which.empty() ? "" : ", ") + std::to_string(s.index);
    }
    if (recomputing == 0) return "";
    if (plan.recompute_unit == RecomputeUnit::kStage) {
      for (int t : blocks) largest = std::max(largest, t);
    }
    // By block: the first K transformer layers of each (virtual) stage, each on its own.
    const bool block = plan.recompute_unit == RecomputeUnit::kBlock;
    if (block) largest = plan.recompute_blocks;
    // Selective: the plan's modules of every layer (a list, space-separated).
    std::string modules;
    for (const std::string& m : plan.recompute_modules.Names()) modules += " " + m;
    const std::string flags =
        plan.recompute_unit == RecomputeUnit::kSelective
            ? "--recompute-granularity selective\n--recompute-modules" + modules + "\n"
            : std::string("--recompute-granularity full\n--recompute-method ") +
                  (block ? "block" : "uniform") + "\n--recompute-num-layers " +
                  std::to_string(largest) + "\n";
    if (recomputing == static_cast<int>(plan.stages.size())) return flags;
    // Megatron-LM's flags are the same on every stage: they cannot recompute only some.
    std::string inline_flags = flags;
    inline_flags.pop_back();
    std::replace(inline_flags.begin(), inline_flags.end(), '\n', ' ');
    return "# stages " + which + " recompute their activations, the others do not; " +
           "Megatron-LM recomputes in every stage or none, and with " + inline_flags +
           " in every stage\n";
  }

  // The first/last flags when the split has that shape, else the layout.
  static std::string ShapeFlags(const std::vector<int>& blocks, const std::string& layout) {
    const int p = static_cast<int>(blocks.size());
    const std::string layout_flag = "--pipeline-model-parallel-layout \"" + layout + "\"\n";
    if (p == 1) return "";
    bool all_equal = true;
    for (int t : blocks) all_equal = all_equal && t == blocks[0];
    if (all_equal) return "";  // Megatron-LM's default even split
    const int first = blocks.front(), last = blocks.back();
    if (first == 0 || last == 0) return layout_flag;
    if (p == 2) {
      return "--decoder-first-pipeline-num-layers " + std::to_string(first) + "\n" +
             "--decoder-last-pipeline-num-layers " + std::to_string(last) + "\n";
    }
    for (int s = 2; s + 1 < p; ++s) {
      if (blocks[s] != blocks[1]) return layout_flag;
    }
    std::string out;
    if (first != blocks[1]) {
      out += "--decoder-first-pipeline-num-layers " + std::to_string(first) + "\n";
    }
    if (last != blocks[1]) {
      out += "--decoder-last-pipeline-num-layers " + std::to_string(last) + "\n";
    }
    return out;
  }
};

}  // namespace

const Exporter& MegatronExporter() {
  static const Megatron kMegatron;
  return kMegatron;
}

}  // namespace pp
