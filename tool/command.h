// The CLI's subcommands. Each one registers its flags on a CLI11 subcommand and returns a
// handler; main.cc owns the one table of (name, help, example, setup). Handlers return the
// process exit status: 0 success, 1 a regression (compare), 2 bad input or usage.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/json_util.h"
#include "core/status.h"

namespace pp {

using Handler = std::function<int()>;

struct Command {
  std::string_view name;
  std::string_view help;
  std::string_view example;
  Handler (*setup)(CLI::App& sub);
};

const std::vector<Command>& Commands();

// Prints "pp-partition: MESSAGE" on stderr and returns 2.
int Fail(const Status& status);
int Fail(const std::string& message);

// Exit code for a defect of the tool itself (an exception that reached main), not bad input.
inline constexpr int kInternalErrorExit = 70;
// Prints "pp-partition: internal error: WHAT" (one line) on stderr and returns
// kInternalErrorExit.
int InternalError(std::string_view what);

// Delivers a command's result: writes `document` (JSON) atomically to `output` when one is
// given ("-": stdout, and nothing else is printed there); then prints the document itself
// for --format json without -o, or `render(format)` otherwise. Returns the exit status.
int Deliver(const std::string& output, const std::string& format, const std::string& document,
            const std::function<std::string(const std::string& format)>& render);
// Deliver with the command's other output files: `outputs` (staged by the command) and the
// document are written together (OutputSet::Commit), all or none.
int Deliver(OutputSet outputs, const std::string& output, const std::string& format,
            const std::string& document,
            const std::function<std::string(const std::string& format)>& render);

Handler SetupProfile(CLI::App& sub);
Handler SetupPlan(CLI::App& sub);
Handler SetupSimulate(CLI::App& sub);
Handler SetupRun(CLI::App& sub);
Handler SetupExport(CLI::App& sub);
Handler SetupCompare(CLI::App& sub);
Handler SetupImport(CLI::App& sub);

}  // namespace pp
