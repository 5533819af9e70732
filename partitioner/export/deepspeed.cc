// DeepSpeed: a PipelineModule subclass whose _partition_layers sets self.parts to the plan's
// boundaries with both ends and bounds its stage, and a comment naming the built-in
// partition_method that gives the same split, when one does.
//
// The built-in methods are reproduced here as DeepSpeed computes them (runtime/utils.py):
// "uniform" gives the first n mod p stages one extra layer; "parameters" and "type:NAME"
// run partition_balanced, a dynamic programme that minimises (largest - smallest) stage
// weight and keeps the last split point on a tie. Layer weights for "parameters" are the
// profile's param_bytes (parameter counts times the element size, a power of two, so every
// comparison comes out the same); for "type:" 1 per transformer block.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/json_util.h"
#include "partitioner/export/targets.h"

namespace pp {
namespace {

std::vector<int> DsUniform(int n, int p) {
  std::vector<int> parts(p + 1, 0);
  if (n <= p) {
    for (int s = 0; s <= p; ++s) parts[s] = std::min(s, n);
    return parts;
  }
  const int chunk = n / p, residual = n % p;
  for (int s = 0; s <= p; ++s) parts[s] = s * chunk + std::min(s, residual);
  return parts;
}

// DeepSpeed's partition_balanced; empty when too large to check quickly.
std::vector<int> DsBalanced(const std::vector<double>& weights, int m) {
  const int n = static_cast<int>(weights.size());
  if (n <= m) return DsUniform(n, m);
  if (static_cast<double>(n) * n * m > 2e8) return {};
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> prefix(n + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + weights[i];
  const auto at = [m](int i, int j) { return static_cast<size_t>(i) * (m + 1) + j; };
  std::vector<double> dp_max((n + 1) * (m + 1), inf), dp_min(dp_max), dp_cost(dp_max);
  std::vector<int> position((n + 1) * (m + 1), 0);
  dp_max[at(0, 0)] = 0;
  dp_cost[at(0, 0)] = 0;
  for (int i = 1; i <= n; ++i) {
    for (int j = 1; j <= std::min(i, m); ++j) {
      for (int k = 0; k < i; ++k) {
        const double part = prefix[i] - prefix[k];
        const double max_sum = std::max(dp_max[at(k, j - 1)], part);
        const double min_sum = std::min(dp_min[at(k, j - 1)], part);
        const double cost = max_sum - min_sum;
        if (dp_cost[at(i, j)] >= cost) {
          dp_cost[at(i, j)] = cost;
          dp_max[at(i, j)] = max_sum;
          dp_min[at(i, j)] = min_sum;
          position[at(i, j)] = k;
        }
      }
    }
  }
  std::vector<int> parts = {n};
  for (int j = m; j >= 1; --j) parts.push_back(position[at(parts.back(), j)]);
  return std::vector<int>(parts.rbegin(), parts.rend());
}

std::string IntList(const std::vector<int>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

class DeepSpeed final : public Exporter {
 public:
  std::string_view name() const override { return "deepspeed"; }
  std::string_view summary() const override {
    return "DeepSpeed: a PipelineModule subclass that sets the plan's parts";
  }

  Result<std::string> Export(const Plan& plan, const ExportOptions&) const override {
    const std::vector<Chunk> chunks = ChunksOf(plan);
    if (chunks.size() != static_cast<size_t>(plan.num_stages)) {
      return Status::Error("this plan cannot be expressed for DeepSpeed: its pipeline has no "
                           "virtual stages");
    }
    const int n = static_cast<int>(plan.profile.layers.size()), p = plan.num_stages;
    std::vector<int> parts = {0};
    for (int b : plan.boundaries) parts.push_back(b);
    parts.push_back(n);

    std::vector<std::string> same;
    if (DsUniform(n, p) == parts) same.push_back("\"uniform\"");
    std::vector<double> params, blocks;
    const std::vector<std::string> ops = LayerOps(plan);
    bool any_block = false;
    for (int i = 0; i < n; ++i) {
      params.push_back(static_cast<double>(plan.profile.layers[i].param_bytes));
      blocks.push_back(ops[i] == "transformer_block" ? 1.0 : 0.0);
      any_block = any_block || ops[i] == "transformer_block";
    }
    if (DsBalanced(params, p) == parts) same.push_back("\"parameters\"");
    if (any_block && DsBalanced(blocks, p) == parts) {
      same.push_back("\"type:BLOCK\" (BLOCK: your transformer block's class name)");
    }

    std::string config;
    if (plan.parallelism) {
      Result<std::string> c = Config(plan);
      if (!c.ok()) return c.status();
      config = *c;
    }
    std::string out = HeaderComment(plan, "DeepSpeed");
    out += "# Stage s builds layers PLAN_PARTS[s] .. PLAN_PARTS[s + 1] - 1 of the layer list,\n"
           "# which must hold the plan's " + std::to_string(n) + " layers in order:\n";
    for (const Chunk& c : chunks) {
      out += "#   stage " + std::to_string(c.device) + ": " +
             plan.profile.layers[c.first_layer].name + " .. " +
             plan.profile.layers[c.last_layer].name + "\n";
    }
    if (same.empty()) {
      out += "# No built-in partition_method gives this split.\n";
    } else {
      for (const std::string& m : same) {
        out += "# Built-in equivalent: partition_method=" + m + " gives the same split.\n";
      }
    }
    out += "from deepspeed.pipe import PipelineModule\n\n"
           "PLAN_PARTS = " + IntList(parts) + "\n" + CheckpointInterval(plan, chunks) + "\n\n"
           "class PlannedPipelineModule(PipelineModule):\n"
           "    \"\"\"A PipelineModule whose stages hold the layers pp-partition chose.\"\"\"\n\n"
           "    def _partition_layers(self, method=\"uniform\"):\n"
           "        num_stages = self._topo.get_dim(\"pipe\")\n"
           "        if num_stages != len(PLAN_PARTS) - 1:\n"
           "            raise ValueError(f\"the plan has {len(PLAN_PARTS) - 1} stages, \"\n"
           "                             f\"the topology {num_stages}\")\n"
           "        if len(self._layer_specs) != PLAN_PARTS[-1]:\n"
           "            raise ValueError(f\"the plan has {PLAN_PARTS[-1]} layers, \"\n"
           "                             f\"the module {len(self._layer_specs)}\")\n"
           "        stage_id = self._topo.get_coord(self.global_rank).pipe\n"
           "        self.parts = list(PLAN_PARTS)\n"
           "        self._set_bounds(start=self.parts[stage_id], stop=self.parts[stage_id + 1])\n";
    return out + config;
  }

 private:
  // Recomputation: PipelineModule's activation_checkpoint_interval checkpoints each run of
  // that many of a stage's layers, counted from the stage's first and cut at its end
  // (deepspeed/runtime/pipe/module.py, forward), so 1 recomputes layer by layer and the
  // largest stage's layer count recomputes whole stages. 0 recomputes nothing. DeepSpeed uses
  // one interval on every stage: a plan that recomputes only some says so.
  static std::string CheckpointInterval(const Plan& plan, const std::vector<Chunk>& chunks) {
    const int recomputing = RecomputingStages(plan);
    int largest = 0;
    for (const Chunk& c : chunks) largest = std::max(largest, c.size());
    const int interval = plan.recompute_unit == RecomputeUnit::kLayer ? 1 : largest;
    const std::string line = "ACTIVATION_CHECKPOINT_INTERVAL = ";
    if (recomputing == 0) return line + "0  # activation_checkpoint_interval: no recomputation\n";
    if (plan.recompute_unit == RecomputeUnit::kSelective) {
      return line + "0  # the plan recomputes only some modules of each block (" +
             plan.recompute_modules.Joined() + "), which no interval expresses\n";
    }
    if (plan.recompute_unit == RecomputeUnit::kBlock) {
      return line + "0  # the plan recomputes only the first " +
             std::to_string(plan.recompute_blocks) +
             " blocks of each stage, which no interval expresses\n";
    }
    if (recomputing == static_cast<int>(plan.stages.size())) {
      return line + std::to_string(interval) +
             "  # pass as activation_checkpoint_interval: every stage recomputes\n";
    }
    return line + "0  # only some stages recompute, and DeepSpeed's interval holds for all (" +
           std::to_string(interval) + " on every stage would recompute them all)\n";
  }

  // The plan's DeepSpeed configuration (pipeline stages, ZeRO stage, batch sizes with
  // train_batch_size = micro-batch size x gradient accumulation steps x data-parallel ranks,
  // as DeepSpeed checks), as JSON text in a Python string.
  static Result<std::string> Config(const Plan& plan) {
    const ParallelLayout& l = *plan.parallelism;
    if (l.zero >= 2 && plan.num_stages > 1) {
      return Status::Error("this plan cannot be expressed for DeepSpeed: ZeRO stage " +
                           std::to_string(l.zero) + " with pipeline parallelism (DeepSpeed's "
                           "pipeline engine takes ZeRO 0 or 1)");
    }
    if (l.cp > 1 || l.ep > 1) {
      return Status::Error("this plan cannot be expressed for DeepSpeed: context or expert "
                           "parallelism beside its pipeline engine");
    }
    const int64_t batch = int64_t{plan.num_micro_batches} * plan.micro_batch_size * l.dp;
    Json config = {
        {"train_batch_size", batch},
        {"train_micro_batch_size_per_gpu", plan.micro_batch_size},
        {"gradient_accumulation_steps", plan.num_micro_batches},
        {"zero_optimization", {{"stage", l.zero}}},
        {"pipeline", {{"stages", plan.num_stages}}},
    };
    if (plan.profile.dtype == DType::kBf16) config["bf16"] = {{"enabled", true}};
    std::string out = "\n# The DeepSpeed configuration (deepspeed.initialize(config=DS_CONFIG));";
    out += " tensor parallelism\n# (" + std::to_string(l.tp) +
           " ranks) comes from the model's own tensor-parallel layers.\n";
    out += "DS_CONFIG_JSON = r\"\"\"" + config.dump(2) + "\"\"\"\n";
    out += "import json  # noqa: E402\n\nDS_CONFIG = json.loads(DS_CONFIG_JSON)\n";
    return out;
  }
};

}  // namespace

const Exporter& DeepSpeedExporter() {
  static const DeepSpeed kDeepSpeed;
  return kDeepSpeed;
}

}  // namespace pp
