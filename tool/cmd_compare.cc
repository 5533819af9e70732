// pp-partition compare BASE.plan.json NEW.plan.json [--tolerance 2%] [--format text|md|json]
#include <iostream>
#include <memory>

#include "core/units.h"
#include "partitioner/compare.h"
#include "tool/command.h"
#include "tool/compare_report.h"

namespace pp {
namespace {

struct CompareFlags {
  std::string base, next;
  std::string tolerance = "2%";
  std::string format = "text";
};

int RunCompare(const CompareFlags& f) {
  Result<double> tolerance = ParseFraction(f.tolerance);
  if (!tolerance.ok()) return Fail("--tolerance: " + tolerance.message());
  Result<Plan> base = LoadPlan(f.base);
  if (!base.ok()) return Fail(base.status());
  Result<Plan> next = LoadPlan(f.next);
  if (!next.ok()) return Fail(next.status());
  Result<PlanComparison> c = ComparePlans(*base, *next, *tolerance);
  if (!c.ok()) return Fail(f.base + " vs " + f.next + ": " + c.message());
  return ReportComparison(*c, f.format, std::cout);
}

}  // namespace

Handler SetupCompare(CLI::App& sub) {
  auto f = std::make_shared<CompareFlags>();
  sub.add_option("base", f->base, "The committed plan (BASE)")->required();
  sub.add_option("new", f->next, "The plan to judge (NEW)")->required();
  sub.add_option("--tolerance", f->tolerance,
                 "Allowed step-time increase, e.g. 2% or 0.02 (exit 1 beyond it)")
      ->capture_default_str();
  sub.add_option("--format", f->format, "Report format: text | md | json")
      ->check(CLI::IsMember({"text", "md", "json"}))
      ->capture_default_str();
  return [f] { return RunCompare(*f); };
}

}  // namespace pp
