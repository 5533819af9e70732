// pp-partition export PLAN.json --to TARGET [-o FILE] [--module-prefix LAYER=MODULE ...]
#include <memory>

#include "executor/plan_context.h"
#include "partitioner/export/exporter.h"
#include "tool/command.h"
#include "core/units.h"

namespace pp {
namespace {

struct ExportFlags {
  std::string plan;
  std::string to;
  std::string output;
  std::vector<std::string> module_prefixes;
};

int RunExport(const ExportFlags& f) {
  if (Status s = CheckOutputPath(f.output); !s.ok()) return Fail(s);  // before any work
  const Exporter* exporter = FindExporter(f.to);
  if (exporter == nullptr) {
    return Fail("--to " + Quote(f.to) + " is unknown (known: " + ExporterNames() + ")");
  }
  ExportOptions options;
  for (const std::string& p : f.module_prefixes) {
    Result<std::pair<std::string, std::string>> parsed = ParseModulePrefix(p);
    if (!parsed.ok()) return Fail(parsed.status());
    options.module_prefixes.push_back(std::move(*parsed));
  }
  Result<Plan> plan = LoadPlan(f.plan);
  if (!plan.ok()) return Fail(plan.status());
  // The plan's structure as every command reads it: its schedule rebuilt from its fields and
  // each stage's device checked against it.
  if (Result<PlanContext> context = PlanContextOf(*plan); !context.ok()) {
    return Fail(context.status().Prefixed(f.plan));
  }
  Result<std::string> text = exporter->Export(*plan, options);
  if (!text.ok()) return Fail(text.status().Prefixed(ShownPath(f.plan)));
  // The exported text is the document: written to -o, or printed.
  return Deliver(f.output, "json", *text, nullptr);
}

}  // namespace

Handler SetupExport(CLI::App& sub) {
  auto f = std::make_shared<ExportFlags>();
  std::string targets;
  for (const Exporter* e : Exporters()) {
    targets += "\n  " + std::string(e->name()) + ": " + std::string(e->summary());
  }
  sub.add_option("plan", f->plan, "Plan file")->required();
  sub.add_option("--to", f->to, "Target:" + targets)->required();
  sub.add_option("-o,--output", f->output, "Write here atomically ('-' for stdout only)");
  sub.add_option("--module-prefix", f->module_prefixes,
                 "LAYER=MODULE maps layer names to module names (torch, torchtitan), e.g. "
                 "block=transformer.h turns block.4 into transformer.h.4; repeatable. "
                 "Without it torchtitan gets torchtitan's own module names")
      ->allow_extra_args(false);
  return [f] { return RunExport(*f); };
}

}  // namespace pp
