// torchtitan: module_fqns_per_model_part, the module names each pipeline stage holds, in
// order. Loss layers are left out (torchtitan computes the loss outside the model); a stage
// left with no module cannot be expressed.
#include "core/model.h"
#include "partitioner/export/targets.h"

namespace pp {
namespace {

class TorchTitan final : public Exporter {
 public:
  std::string_view name() const override { return "torchtitan"; }
  std::string_view summary() const override {
    return "torchtitan: module_fqns_per_model_part";
  }

  Result<std::string> Export(const Plan& plan, const ExportOptions& options) const override {
    const std::vector<std::string> ops = LayerOps(plan);
    std::string parts;
    for (const Chunk& c : ChunksOf(plan)) {
      std::string names;
      for (int i = c.first_layer; i <= c.last_layer; ++i) {
        if (std::optional<LayerKind> op = ParseLayerKind(ops[i]); op && IsLoss(*op)) continue;
        names += (names.empty() ? "" : ", ") +
                 PythonString(ModuleName(plan.profile.layers[i].name, options));
      }
      if (names.empty()) {
        return Status::Error("this plan cannot be expressed for torchtitan: stage " +
                             std::to_string(c.device) + " holds only the loss, which "
                             "torchtitan computes outside the model");
      }
      parts += "    [" + names + "],\n";
    }
    std::string out = HeaderComment(plan, "torchtitan");
    out += "# One list of module names per model part (pipeline stage), in order; names come\n"
           "# from the plan's layer names through --module-prefix.\n";
    out += "module_fqns_per_model_part = [\n" + parts + "]\n";
    return out;
  }
};

}  // namespace

const Exporter& TorchTitanExporter() {
  static const TorchTitan kTorchTitan;
  return kTorchTitan;
}

}  // namespace pp
