// Files the CLI writes get the mode any file a user creates gets: 0666 less the umask of the
// process that writes them, also when they replace an existing file of another mode.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/test_util.h"

namespace pp {
namespace {

using testing::TempDir;

// Runs the binary with `args` under umask `mask` (octal text, e.g. "027"), set by the shell
// that execs it; returns the exit status (-1 when it did not exit).
int RunUnderUmask(const std::string& mask, const std::string& args) {
  const std::string command = std::string("cd '") + PP_SOURCE_DIR + "' && umask " + mask +
                              " && exec '" + PP_BINARY + "' " + args +
                              " >/dev/null 2>/dev/null </dev/null";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The permission bits of `path`, or -1 when it does not exist.
int ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// Writes a plan (-o), then simulates it with --trace, --svg and --dump-schedule-csv, and
// exports it (-o), all under `mask`; every file must have mode `expected`.
void ExpectEveryOutputHasMode(const std::string& mask, int expected) {
  const std::string dir = TempDir();
  const std::string plan = dir + "/plan.json";
  ASSERT_EQ(RunUnderUmask(mask, "plan models/gpt2-small.json --stages 4 --micro-batches 8 -o " +
                                    plan),
            0);
  EXPECT_EQ(ModeOf(plan), expected) << "plan -o, umask " << mask;
  ASSERT_EQ(RunUnderUmask(mask, "simulate " + plan + " --trace " + dir + "/trace.json --svg " +
                                    dir + "/gantt.svg --dump-schedule-csv " + dir +
                                    "/schedule.csv"),
            0);
  for (const char* name : {"trace.json", "gantt.svg", "schedule.csv"}) {
    EXPECT_EQ(ModeOf(dir + "/" + name), expected) << name << ", umask " << mask;
  }
  ASSERT_EQ(RunUnderUmask(mask, "export " + plan + " --to megatron -o " + dir + "/megatron.txt"),
            0);
  EXPECT_EQ(ModeOf(dir + "/megatron.txt"), expected) << "export -o, umask " << mask;
  std::filesystem::remove_all(dir);
}

TEST(OutputFiles, ModeIs0666LessUmask022) { ExpectEveryOutputHasMode("022", 0644); }

TEST(OutputFiles, ModeIs0666LessUmask027) { ExpectEveryOutputHasMode("027", 0640); }

TEST(OutputFiles, ReplacingAFileDoesNotKeepItsMode) {
  const std::string dir = TempDir();
  const std::string plan = dir + "/plan.json";
  const std::string args = "plan models/mlp-2gpu.json --stages 2 --micro-batches 4 -o " + plan;
  // A stricter file is replaced by one with the umask's mode...
  testing::WriteText(plan, "old\n");
  ASSERT_EQ(::chmod(plan.c_str(), 0600), 0);
  ASSERT_EQ(RunUnderUmask("022", args), 0);
  EXPECT_EQ(ModeOf(plan), 0644);
  EXPECT_NE(testing::ReadText(plan), "old\n");
  // ...and so is a looser one.
  ASSERT_EQ(::chmod(plan.c_str(), 0666), 0);
  ASSERT_EQ(RunUnderUmask("027", args), 0);
  EXPECT_EQ(ModeOf(plan), 0640);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp
