// torch.distributed.pipelining: a split_spec with SplitPoint.BEGINNING at the first module of
// stages 1..p-1, and the schedule class that runs the plan's schedule. Layer names become
// module names through --module-prefix. A stage may not begin at a loss layer: torch
// computes the loss in the schedule's loss_fn, outside the traced model.
#include "core/model.h"
#include "executor/schedule.h"
#include "partitioner/export/targets.h"
#include "core/units.h"

namespace pp {
namespace {

class Torch final : public Exporter {
 public:
  std::string_view name() const override { return "torch"; }
  std::string_view summary() const override {
    return "torch.distributed.pipelining: split_spec and the schedule class";
  }

  Result<std::string> Export(const Plan& plan, const ExportOptions& options) const override {
    // The kind's torch class (executor/schedule.h); some kinds have none.
    const ScheduleKind* kind = FindScheduleKind(plan.schedule);
    const std::string_view schedule_class = kind ? kind->traits().torch_class : "";
    if (schedule_class.empty()) {
      return Status::Error("this plan cannot be expressed for torch.distributed.pipelining: no "
                           "schedule class is known for schedule " + Quote(plan.schedule));
    }
    const std::vector<std::string> ops = LayerOps(plan);
    const std::vector<Chunk> chunks = ChunksOf(plan);
    std::string spec;
    for (size_t c = 1; c < chunks.size(); ++c) {
      const int first = chunks[c].first_layer;
      const std::string& layer = plan.profile.layers[first].name;
      if (std::optional<LayerKind> op = ParseLayerKind(ops[first]); op && IsLoss(*op)) {
        return Status::Error("this plan cannot be expressed for torch.distributed.pipelining: "
                             "stage " + std::to_string(c) + " begins at the loss layer " +
                             layer + ", which torch computes in loss_fn outside the model");
      }
      spec += "    " + PythonString(ModuleName(layer, options)) + ": SplitPoint.BEGINNING,\n";
    }
    std::string out = HeaderComment(plan, "torch.distributed.pipelining");
    out += "# Module names come from the plan's layer names through --module-prefix; check\n"
           "# them against print(model).\n";
    out += "from torch.distributed.pipelining import pipeline, SplitPoint, " +
           std::string(schedule_class) + "\n\n";
    out += "split_spec = {\n" + spec + "}\n";
    out += "schedule_class = " + std::string(schedule_class) + "\n";
    out += "n_microbatches = " + std::to_string(plan.num_micro_batches) + "\n";
    out += "num_stages = " + std::to_string(chunks.size()) + "\n";
    if (plan.virtual_stages > 1) {
      // One rank per device builds its chunks: interleaved loops (c mod p), zbv folds a V.
      out += "num_ranks = " + std::to_string(plan.num_stages) + "\n";
      out += "stages_per_rank = [";
      for (int d = 0; d < plan.num_stages; ++d) {
        out += std::string(d == 0 ? "" : ", ") + "[";
        bool first = true;
        for (const StagePlan& st : plan.stages) {
          if (st.device.value_or(st.index) != d) continue;
          out += std::string(first ? "" : ", ") + std::to_string(st.index);
          first = false;
        }
        out += "]";
      }
      out += "]\n\n";
      out += "# pipe = pipeline(model, mb_args=(example_micro_batch,), split_spec=split_spec)\n"
             "# assert pipe.num_stages == num_stages\n"
             "# stages = [pipe.build_stage(i, device) for i in stages_per_rank[rank]]\n"
             "# schedule = schedule_class(stages, n_microbatches=n_microbatches, "
             "loss_fn=loss_fn)\n";
      return out;
    }
    out += "\n";
    out += "# pipe = pipeline(model, mb_args=(example_micro_batch,), split_spec=split_spec)\n"
           "# assert pipe.num_stages == num_stages\n"
           "# stage = pipe.build_stage(stage_index, device)\n"
           "# schedule = schedule_class(stage, n_microbatches=n_microbatches, loss_fn=loss_fn)\n";
    return out;
  }
};

}  // namespace

const Exporter& TorchExporter() {
  static const Torch kTorch;
  return kTorch;
}

}  // namespace pp
