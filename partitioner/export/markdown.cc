// md: a Markdown table of the stages and the predicted figures, for a pull-request comment.
#include <cstdio>

#include "core/units.h"
#include "partitioner/export/targets.h"

namespace pp {
namespace {

// Markdown table cells must not hold "|" or line breaks.
std::string Cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

std::string Fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

class Markdown final : public Exporter {
 public:
  std::string_view name() const override { return "md"; }
  std::string_view summary() const override { return "a Markdown table for a pull request"; }

  Result<std::string> Export(const Plan& plan, const ExportOptions&) const override {
    std::string out = "### Pipeline plan for " + Cell(plan.model) + "\n\n";
    out += std::to_string(plan.num_stages) + " stages, " +
           std::to_string(plan.num_micro_batches) + " micro-batches of " +
           std::to_string(plan.micro_batch_size) + ", schedule `" + Cell(plan.schedule) +
           "`, method `" + Cell(plan.method) + "`.\n\n";
    out += "| stage | layers | first .. last | forward ms | backward ms | parameters | peak "
           "memory |\n|---:|---:|---|---:|---:|---:|---:|\n";
    for (const StagePlan& s : plan.stages) {
      out += "| " + std::to_string(s.index) + " | " +
             std::to_string(s.last_layer - s.first_layer + 1) + " | " +
             Cell(plan.profile.layers[s.first_layer].name) + " .. " +
             Cell(plan.profile.layers[s.last_layer].name) + " | " + Fixed(s.forward_ms, 3) +
             " | " + Fixed(s.backward_ms, 3) + " | " + FormatBytes(s.param_bytes) + " | " +
             FormatBytes(s.peak_memory_bytes) + " |\n";
    }
    const Prediction& p = plan.predicted;
    out += "\n| predicted | value |\n|---|---:|\n";
    out += "| step time | " + FormatMs(p.step_time_ms) + " |\n";
    out += "| bubble ratio | " + Fixed(100 * p.bubble_ratio, 2) + " % |\n";
    out += "| throughput | " + Fixed(p.throughput_samples_per_s, 1) + " samples/s |\n";
    out += "| bottleneck stage | " + std::to_string(p.bottleneck_stage) + " (" +
           FormatMs(p.max_stage_ms) + ") |\n";
    return out;
  }
};

}  // namespace

const Exporter& MarkdownExporter() {
  static const Markdown kMarkdown;
  return kMarkdown;
}

}  // namespace pp
