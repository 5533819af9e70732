// torchgpipe / fairscale Pipe: `balance`, the number of layers per stage (each > 0, summing
// to the layer count), and `chunks`, the micro-batch count. Pipe runs a GPipe schedule.
#include "executor/schedule.h"
#include "partitioner/export/targets.h"

namespace pp {
namespace {

class Gpipe final : public Exporter {
 public:
  std::string_view name() const override { return "gpipe"; }
  std::string_view summary() const override { return "torchgpipe / fairscale Pipe: balance"; }

  Result<std::string> Export(const Plan& plan, const ExportOptions&) const override {
    const std::vector<Chunk> chunks = ChunksOf(plan);
    // A kind not registered (an older plan's) runs under Pipe's GPipe schedule.
    const ScheduleKind* kind = FindScheduleKind(plan.schedule);
    const FrameworkFit fit = kind ? kind->traits().torchgpipe : FrameworkFit::kOwnSchedule;
    if (chunks.size() != static_cast<size_t>(plan.num_stages) || fit == FrameworkFit::kNo) {
      return Status::Error("this plan cannot be expressed for torchgpipe: Pipe has no virtual "
                           "stages");
    }
    std::string balance;
    for (const Chunk& c : chunks) {
      balance += (balance.empty() ? "" : ", ") + std::to_string(c.size());
    }
    std::string out = HeaderComment(plan, "torchgpipe / fairscale Pipe");
    if (fit != FrameworkFit::kSame) {
      out += "# Pipe runs a GPipe schedule; this plan was predicted for " + plan.schedule + "\n";
    }
    out += "# model = GPipe(nn.Sequential(<the plan's layers in order>), balance=balance, "
           "chunks=chunks)\n";
    out += "balance = [" + balance + "]\n";
    out += "chunks = " + std::to_string(plan.num_micro_batches) + "\n";
    return out;
  }
};

}  // namespace

const Exporter& GpipeExporter() {
  static const Gpipe kGpipe;
  return kGpipe;
}

}  // namespace pp
