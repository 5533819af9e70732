// torchtitan: module_fqns_per_model_part, the module names each pipeline stage holds, in
// order (a list of lists, valid as Python and as TOML). torchtitan splits its model by these
// names and drops every module no stage lists, so the names must be torchtitan's own.
//
// Without --module-prefix the names come from kTitanModels: the model's layers are matched,
// in order, against the modules of a torchtitan model, and a model that matches none is
// refused with the first layer that has no torchtitan name. With --module-prefix the names
// are the plan's layer names through the prefixes. Loss layers are left out (torchtitan
// computes the loss outside the model); a stage left with no module cannot be expressed.
#include <array>

#include "core/model.h"
#include "partitioner/export/targets.h"

namespace pp {
namespace {

// One top-level module of a torchtitan model and the layers of ours that it is.
struct TitanModule {
  std::string_view fqn;
  // A ModuleDict of one or more consecutive layers, named FQN.0, FQN.1, ...
  bool repeated;
  std::string_view is;  // what a layer must be, for messages
  bool (*fits)(const Layer&);
};

struct TitanModel {
  std::string_view family;  // torchtitan's model folders that use these names
  std::array<TitanModule, 4> modules;
};

bool PlainEmbedding(const Layer& l) {
  return l.op == LayerKind::kEmbedding && l.positions == 0 && l.token_types == 0;
}
bool LlamaBlock(const Layer& l) {
  return l.op == LayerKind::kTransformerBlock && l.norm == NormKind::kRmsNorm &&
         l.mlp == MlpKind::kSwiglu && l.rotary && l.causal && !l.bias;
}
bool RmsNorm(const Layer& l) { return l.op == LayerKind::kRmsNorm; }
bool HeadWithoutBias(const Layer& l) { return l.op == LayerKind::kLinear && !l.bias; }

// torchtitan's decoder (models/common/decoder.py on its main branch): tok_embeddings, the
// blocks in the ModuleDict `layers`, norm, lm_head. Releases up to 0.2.2 named the head
// `output`.
constexpr std::array<TitanModel, 1> kTitanModels = {{
    {"llama3 (qwen3, deepseek_v3 and torchtitan's other decoders share the names)",
     {{{"tok_embeddings", false, "an embedding without learned positions or token types",
        PlainEmbedding},
       {"layers", true, "a causal transformer block with rmsnorm, swiglu, rotary positions "
                        "and no biases",
        LlamaBlock},
       {"norm", false, "an rmsnorm", RmsNorm},
       {"lm_head", false, "a linear head without bias", HeadWithoutBias}}}},
}};

// Matches `layers` against `model`. On success fills `names` (one per layer, "" for losses);
// on failure returns the problem and sets `*matched` to the layers matched before it.
std::string MatchTitanModel(const std::vector<Layer>& layers, const TitanModel& model,
                            std::vector<std::string>* names, size_t* matched) {
  names->assign(layers.size(), "");
  auto describe = [](const TitanModule& module) {
    return "torchtitan's " + std::string(module.fqn) + (module.repeated ? ".N" : "") + " is " +
           std::string(module.is);
  };
  size_t m = 0;
  int count = 0;  // layers given to modules[m] so far (repeated modules)
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& layer = layers[i];
    if (IsLoss(layer.op)) continue;
    *matched = i;
    const std::string problem = "layer \"" + layer.name + "\" has no torchtitan module name: ";
    std::string passed;  // the repeated module this layer could have continued
    while (m < model.modules.size() && !model.modules[m].fits(layer)) {
      if (!model.modules[m].repeated || count == 0) {
        return problem + passed + describe(model.modules[m]);
      }
      passed = describe(model.modules[m]) + " and ";
      ++m;
      count = 0;
    }
    if (m == model.modules.size()) {
      return problem + "it comes after torchtitan's " + std::string(model.modules.back().fqn);
    }
    const TitanModule& module = model.modules[m];
    if (module.repeated) {
      (*names)[i] = std::string(module.fqn) + "." + std::to_string(count++);
    } else {
      (*names)[i] = std::string(module.fqn);
      ++m;
    }
  }
  *matched = layers.size();
  if (m < model.modules.size() && model.modules[m].repeated && count > 0) ++m;
  if (m < model.modules.size()) {
    return "the model has no layer for torchtitan's " + std::string(model.modules[m].fqn) +
           " (" + std::string(model.modules[m].is) + ")";
  }
  return "";
}

// torchtitan's names for the plan's layers, from the first model in kTitanModels they match.
Result<std::vector<std::string>> TitanNames(const Plan& plan) {
  const std::string advice = "; pass --module-prefix LAYER=MODULE to name the modules";
  if (!plan.model_spec) {
    return Status::Error("this plan cannot be expressed for torchtitan: layer \"" +
                         plan.profile.layers.front().name +
                         "\" has no known torchtitan module name (the plan carries no "
                         "model_spec to match torchtitan's models against)" + advice);
  }
  std::string best_problem;
  size_t best_matched = 0;
  for (const TitanModel& model : kTitanModels) {
    std::vector<std::string> names;
    size_t matched = 0;
    const std::string problem = MatchTitanModel(plan.model_spec->layers, model, &names, &matched);
    if (problem.empty()) return names;
    if (best_problem.empty() || matched > best_matched) {
      best_problem = problem;
      best_matched = matched;
    }
  }
  return Status::Error("this plan cannot be expressed for torchtitan: " + best_problem + advice);
}

// torchtitan's data_parallel_shard_degree for the layout: dp from ZeRO 1 (FSDP), else 1
// (the data ranks replicate).
int ShardDegree(const ParallelLayout& l) { return l.zero >= 1 ? l.dp : 1; }

// torchtitan's [parallelism] settings for the plan's layout (ParallelismConfig in
// torchtitan/config/configs.py), as lines valid in TOML and in Python. ZeRO 0 replicates over
// the data-parallel ranks (DDP); ZeRO 3 shards over them (FSDP, resharding after the
// forward); FSDP keeping the parameters after the forward (reshard "never") is ZeRO 2, which
// torchtitan also runs for ZeRO 1 (it has no optimizer-only sharding).
std::string ParallelismSettings(const Plan& plan) {
  const ParallelLayout& l = *plan.parallelism;
  std::string out = "\n# parallelism settings (torchtitan's [parallelism] section)\n";
  const bool shard = l.zero >= 1;
  out += "data_parallel_replicate_degree = " + std::to_string(l.dp / ShardDegree(l)) + "\n";
  out += "data_parallel_shard_degree = " + std::to_string(ShardDegree(l)) + "\n";
  if (shard) {
    out += std::string("fsdp_reshard_after_forward = ") +
           (l.zero == 3 ? "\"default\"" : "\"never\"") + "\n";
    if (l.zero == 1) out += "# ZeRO 1 runs as FSDP without resharding (ZeRO 2) in torchtitan\n";
  }
  out += "tensor_parallel_degree = " + std::to_string(l.tp) + "\n";
  if (l.tp > 1 && !l.sequence_parallel) out += "# enable_sequence_parallel: false\n";
  out += "context_parallel_degree = " + std::to_string(l.cp) + "\n";
  out += "pipeline_parallel_degree = " + std::to_string(l.pp) + "\n";
  out += "expert_parallel_degree = " + std::to_string(l.ep) + "\n";
  // The flex dispatcher's token exchange: torchtitan's DeepEP backend
  // (torchtitan/distributed/deepep).
  if (l.ep > 1 && l.flex_dispatcher) out += "expert_parallel_comm_backend = \"deepep\"\n";
  if (l.pp > 1) out += "num_pp_microbatches = " + std::to_string(plan.num_micro_batches) + "\n";
  return out;
}

class TorchTitan final : public Exporter {
 public:
  std::string_view name() const override { return "torchtitan"; }
  std::string_view summary() const override {
    return "torchtitan: module_fqns_per_model_part (torchtitan's module names)";
  }

  Result<std::string> Export(const Plan& plan, const ExportOptions& options) const override {
    const std::vector<bool> mtp = LayerMtp(plan);
    for (size_t i = 0; i < mtp.size(); ++i) {
      if (!mtp[i]) continue;
      return Status::Error("this plan cannot be expressed for torchtitan: layer \"" +
                           plan.profile.layers[i].name +
                           "\" is a multi-token prediction block, which torchtitan's models "
                           "do not have");
    }
    // torchtitan's expert mesh borrows from the data-sharding, context and tensor ranks alike
    // (parallel_dims.py: efsdp = dp_shard x cp x tp / ep, and ep must divide dp_shard x cp x
    // tp): its experts are never split over the tensor ranks, which is --etp 1 here.
    if (plan.parallelism) {
      const ParallelLayout& l = *plan.parallelism;
      if (l.ep > 1 && l.expert_tp() > 1) {
        return Status::Error("this plan cannot be expressed for torchtitan: its experts are "
                             "split over " + std::to_string(l.expert_tp()) +
                             " tensor ranks, and torchtitan folds the expert group over the "
                             "tensor ranks instead (plan with --etp 1)");
      }
      if (ExpertOverlapApplies(l)) {
        return Status::Error(
            "this plan cannot be expressed for torchtitan: it overlaps the "
            "experts' all-to-all of one micro-batch with another's compute "
            "in a " +
            plan.schedule +
            " schedule, which torchtitan does not "
            "run (plan with --overlap-expert-comm off)");
      }
      // The expert group is carved out of the sharded data ranks only (ZeRO 0 replicates).
      const int64_t shard = int64_t{ShardDegree(l)} * l.cp * l.tp;
      if (l.ep > 1 && shard % l.ep != 0) {
        return Status::Error("this plan cannot be expressed for torchtitan: its expert group "
                             "is carved out of the data-sharding, context and tensor ranks "
                             "(dp_shard x cp x tp = " + std::to_string(shard) +
                             "), which ep " + std::to_string(l.ep) +
                             " does not divide (plan with --zero 1 or more)");
      }
    }
    Result<std::string> checkpointing = Checkpointing(plan);
    if (!checkpointing.ok()) return checkpointing.status();
    const std::vector<std::string> ops = LayerOps(plan);
    std::vector<std::string> names;
    if (options.module_prefixes.empty()) {
      Result<std::vector<std::string>> titan = TitanNames(plan);
      if (!titan.ok()) return titan.status();
      names = std::move(*titan);
    } else {
      for (const LayerProfile& l : plan.profile.layers) {
        names.push_back(ModuleName(l.name, options));
      }
    }
    std::string parts;
    for (const Chunk& c : ChunksOf(plan)) {
      std::string stage;
      for (int i = c.first_layer; i <= c.last_layer; ++i) {
        if (std::optional<LayerKind> op = ParseLayerKind(ops[i]); op && IsLoss(*op)) continue;
        stage += (stage.empty() ? "" : ", ") + PythonString(names[i]);
      }
      if (stage.empty()) {
        return Status::Error("this plan cannot be expressed for torchtitan: stage " +
                             std::to_string(c.device) + " holds only the loss, which "
                             "torchtitan computes outside the model");
      }
      parts += "    [" + stage + "],\n";
    }
    std::string out = HeaderComment(plan, "torchtitan");
    out += "# One list of module names per model part (pipeline stage), in order; names ";
    out += options.module_prefixes.empty()
               ? "are torchtitan's\n# (its main branch; releases up to 0.2.2 call lm_head "
                 "\"output\").\n"
               : "come\n# from the plan's layer names through --module-prefix.\n";
    out += "module_fqns_per_model_part = [\n" + parts + "]\n";
    if (plan.parallelism) out += ParallelismSettings(plan);
    return out + *checkpointing;
  }

 private:
  // torchtitan's activation checkpointing applies one policy to every transformer block
  // (torchtitan/distributed/activation_checkpoint.py): FullAC recomputes each block in its
  // backward, which is the plan's recomputation by layer; its default, SelectiveAC, recomputes
  // part of each block, which no plan assumes.
  static Result<std::string> Checkpointing(const Plan& plan) {
    const int recomputing = RecomputingStages(plan);
    const std::string head = "\n# activation checkpointing (torchtitan's activation_checkpoint): ";
    if (recomputing == 0)
      return head + "none (its default, selective, recomputes part of each block)\n";
    if (recomputing != static_cast<int>(plan.stages.size())) {
      return Status::Error(
          "this plan cannot be expressed for torchtitan: only some of its "
          "stages recompute, and torchtitan checkpoints every block alike");
    }
    if (plan.recompute_unit == RecomputeUnit::kSelective) {
      return Status::Error(
          "this plan cannot be expressed for torchtitan: it recomputes only some modules of "
          "each block (" +
          plan.recompute_modules.Joined() +
          "), and torchtitan's selective policy chooses its own operations");
    }
    if (plan.recompute_unit == RecomputeUnit::kBlock) {
      return Status::Error(
          "this plan cannot be expressed for torchtitan: its stages recompute "
          "only their first " +
          std::to_string(plan.recompute_blocks) +
          " blocks, and torchtitan checkpoints every block alike");
    }
    if (plan.recompute_unit != RecomputeUnit::kLayer) {
      return Status::Error(
          "this plan cannot be expressed for torchtitan: its stages recompute "
          "whole, and torchtitan recomputes block by block (plan with "
          "--recompute-unit layer)");
    }
    return head + "full (FullAC: every block recomputed in its backward)\n";
  }
};

}  // namespace

const Exporter& TorchTitanExporter() {
  static const TorchTitan kTorchTitan;
  return kTorchTitan;
}

}  // namespace pp
