// Subcommands whose engines are not built yet. They accept their documented flags so that
// --help describes them, and answer "not available yet" with exit status 2: never a result.
#include <memory>

#include "tool/command.h"

namespace pp {
namespace {

struct Args {
  std::vector<std::string> positional;
  std::string backend, gpus, trace, svg, output;
  int steps = 0;
};

Handler Unavailable(std::string what) {
  return [what] { return Fail(what + " is not available yet"); };
}

}  // namespace

Handler SetupRun(CLI::App& sub) {
  auto a = std::make_shared<Args>();
  sub.add_option("plan", a->positional, "Plan file");
  sub.add_option("--backend", a->backend, "cuda | cpu");
  sub.add_option("--gpus", a->gpus, "0,1,2,3 (one GPU per stage) or 0x4 (virtual devices)");
  sub.add_option("--steps", a->steps, "Training steps to measure");
  sub.add_option("--trace", a->trace, "Chrome trace of predicted and measured timelines");
  sub.add_option("--svg", a->svg, "Gantt charts of predicted and measured timelines");
  sub.add_option("-o,--output", a->output, "Write the plan with its measured block");
  return Unavailable("pp-partition run (measuring a plan on devices)");
}

}  // namespace pp
