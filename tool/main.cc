// pp-partition: parse the command line and dispatch to one subcommand. No logic of its own.
#include <iostream>

#include "core/units.h"
#include "core/version.h"
#include "profiler/gpu_info.h"
#include "tool/command.h"

namespace pp {

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {"profile", "Measure or estimate each layer's time and memory",
       "pp-partition profile models/gpt2-xl.json --backend analytic --device h100 -o gpt2-xl.profile.json",
       SetupProfile},
      {"plan", "Choose pipeline stage boundaries and predict the step time",
       "pp-partition plan models/gpt2-xl.json --stages 4 --micro-batches 32 --schedule 1f1b -o plan.json",
       SetupPlan},
      {"simulate", "Replay a plan's schedule and report its timeline",
       "pp-partition simulate plan.json --format json", SetupSimulate},
      {"run", "Train a plan for a few steps and measure it beside the prediction",
       "pp-partition run plan.json --backend cpu --steps 10 --trace run.json -o ran.json", SetupRun},
      {"export", "Write a plan in the form a training framework takes",
       "pp-partition export plan.json --to torch --module-prefix block=transformer.h", SetupExport},
      {"compare", "Compare two plans and fail (exit 1) on a regression",
       "pp-partition compare base.plan.json new.plan.json --tolerance 2%", SetupCompare},
      {"import", "Turn a Hugging Face config.json into a model file",
       "pp-partition import config.json --name gpt2-xl -o models/gpt2-xl.json", SetupImport},
  };
  return kCommands;
}

int Fail(const Status& status) { return Fail(status.message()); }

int Fail(const std::string& message) {
  std::cerr << "pp-partition: " << message << "\n";
  return 2;
}

int InternalError(std::string_view what) {
  std::cerr << "pp-partition: internal error: " << Abbreviate(what, kShownPathChars) << "\n";
  return kInternalErrorExit;
}

}  // namespace pp

int main(int argc, char** argv) {
  CLI::App app{"pp-partition: profile a model's layers, choose pipeline-parallel stage "
               "boundaries, predict the pipeline's step time, and measure it.",
               "pp-partition"};
  app.require_subcommand(1);
  bool version = false;
  app.add_flag("--version", version, "Print the version and the CUDA status, then exit");
  app.footer("Run 'pp-partition SUBCOMMAND --help' for a subcommand's flags and an example.");

  std::vector<std::pair<CLI::App*, pp::Handler>> handlers;
  for (const pp::Command& c : pp::Commands()) {
    CLI::App* sub = app.add_subcommand(std::string(c.name), std::string(c.help));
    sub->footer("Example:\n  " + std::string(c.example));
    handlers.emplace_back(sub, c.setup(*sub));
  }

  // --version works without a subcommand.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--version") {
      std::cout << "pp-partition " << pp::kToolVersion << "\n" << pp::CudaSummary() << "\n";
      return 0;
    }
  }
  // The libraries return errors as values; an exception reaching this far is a defect, reported
  // as one line with its own exit code rather than an abort.
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      std::string what = e.what();
      if (what.empty()) what = e.get_name();
      return pp::Fail(pp::Abbreviate(what, pp::kShownPathChars) + " (see 'pp-partition --help')");
    }
    for (auto& [sub, handler] : handlers) {
      if (sub->parsed()) return handler();
    }
    return pp::Fail("no subcommand given (see 'pp-partition --help')");
  } catch (const std::exception& e) {
    return pp::InternalError(e.what());
  } catch (...) {
    return pp::InternalError("an exception of unknown type");
  }
}
