// Export targets: a plan written in the form a training framework takes. Each target
// implements Exporter and registers in exporter.cc's table (one .cc per target).
//
// Exporters read a plan's stages as pipeline *chunks* (docs/architecture.md, "Words"): one
// per device, or p·V for chunked schedules, each with the device the plan records (checked
// against the schedule by PlanContextOf before exporting). Whether a framework can run the
// plan's schedule is the schedule kind's trait (executor/schedule.h ScheduleTraits); targets
// that take virtual stages read them from the same list, the others refuse such plans.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/plan.h"
#include "core/status.h"

namespace pp {

struct ExportOptions {
  // Module-name prefixes, (layer-name prefix, module path) pairs, from --module-prefix
  // "block=transformer.h": a layer named "block.4" becomes "transformer.h.4", one named
  // "block" becomes "transformer.h". The longest matching prefix wins; a name no prefix
  // matches is kept as it is.
  std::vector<std::pair<std::string, std::string>> module_prefixes;
};

class Exporter {
 public:
  virtual ~Exporter() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;  // one line for --help
  // The exported text (ends with a newline). An error when the target cannot express the
  // plan; its message contains "cannot be expressed" and why.
  virtual Result<std::string> Export(const Plan& plan, const ExportOptions& options) const = 0;
};

// The registered targets, in the order --help lists them.
const std::vector<const Exporter*>& Exporters();
// nullptr when unknown.
const Exporter* FindExporter(std::string_view name);
// "megatron, deepspeed, ..." for messages.
std::string ExporterNames();

// Parses one --module-prefix value "LAYER_PREFIX=MODULE_PATH".
Result<std::pair<std::string, std::string>> ParseModulePrefix(std::string_view text);

// ---- Helpers shared by the targets (export_util.cc) ----

// One contiguous run of layers placed on one device.
struct Chunk {
  int device = 0;
  int first_layer = 0;  // inclusive
  int last_layer = 0;   // inclusive
  int size() const { return last_layer - first_layer + 1; }
};
std::vector<Chunk> ChunksOf(const Plan& plan);
// How many of the plan's stages (chunks) recompute their activations.
int RecomputingStages(const Plan& plan);

// The layer's op name ("embedding", "transformer_block", ...): from model_spec when the plan
// has one, else the profile's "op", else "" (unknown).
std::vector<std::string> LayerOps(const Plan& plan);
// Whether each layer is a multi-token prediction block, from the same place as LayerOps.
std::vector<bool> LayerMtp(const Plan& plan);

// The module name of layer `name` under `options.module_prefixes`.
std::string ModuleName(const std::string& name, const ExportOptions& options);

// A Python string literal for `text` (double quotes, escaped).
std::string PythonString(std::string_view text);

// Lines starting with "# " naming the target, the plan's model, stages, micro-batches,
// schedule, method, predicted step time and the tool version (shell and Python comments).
std::string HeaderComment(const Plan& plan, std::string_view target);

}  // namespace pp
