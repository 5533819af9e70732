// json: the plan document itself, as PlanToJson writes it.
#include "partitioner/export/targets.h"

namespace pp {
namespace {

class JsonTarget final : public Exporter {
 public:
  std::string_view name() const override { return "json"; }
  std::string_view summary() const override { return "the plan document (pp-partition.plan/v1)"; }
  Result<std::string> Export(const Plan& plan, const ExportOptions&) const override {
    return DumpJson(PlanToJson(plan));
  }
};

}  // namespace

const Exporter& JsonExporter() {
  static const JsonTarget kJson;
  return kJson;
}

}  // namespace pp
