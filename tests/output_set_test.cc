// A command's outputs are written together at its end, or none: a path that cannot be written
// is refused before any work, a failure leaves no output behind, and SIGINT/SIGTERM between
// writing the temporary files and renaming them removes the temporary files.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using testing::RunTool;
using testing::TempDir;

// The names in `dir`, sorted.
std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string MakePlan(const std::string& dir, const std::string& name, int micro_batches) {
  const std::string path = dir + "/" + name;
  EXPECT_EQ(RunTool("plan models/gpt2-small.json --stages 2 --micro-batches " +
                    std::to_string(micro_batches) + " -o " + path).exit_code, 0);
  return path;
}

TEST(OutputSet, SimulateWithOneBadOutputWritesNone) {
  const std::string dir = TempDir();
  const std::string plan = MakePlan(dir, "p.json", 4);
  const testing::CommandResult r =
      RunTool("simulate " + plan + " --dump-schedule-csv " + dir + "/o.csv --trace " + dir +
              "/t.json --svg /nonexistent/x.svg");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/nonexistent/x.svg"), std::string::npos) << r.err;
  EXPECT_EQ(Listing(dir), std::vector<std::string>{"p.json"});
  // All good: all three written.
  ASSERT_EQ(RunTool("simulate " + plan + " --dump-schedule-csv " + dir + "/o.csv --trace " + dir +
                    "/t.json --svg " + dir + "/x.svg").exit_code, 0);
  EXPECT_EQ(Listing(dir), (std::vector<std::string>{"o.csv", "p.json", "t.json", "x.svg"}));
  std::filesystem::remove_all(dir);
}

TEST(OutputSet, RunWithOneBadOutputWritesNoneAndDoesNotRun) {
  const std::string dir = TempDir();
  testing::WriteText(dir + "/m.json", DumpJson(testing::SmallModelJson()));
  ASSERT_EQ(RunTool("plan " + dir + "/m.json --stages 2 --micro-batches 4 -o " + dir +
                    "/p.json").exit_code, 0);
  testing::CommandResult r = RunTool("run " + dir + "/p.json --backend cpu --steps 1 --trace " +
                                     dir + "/t.json --svg " + dir + "/g.svg -o /nonexistent/r.json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/nonexistent/r.json"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");  // refused before the run reported anything
  EXPECT_EQ(Listing(dir), (std::vector<std::string>{"m.json", "p.json"}));
  // An output that is a folder is refused the same way.
  r = RunTool("run " + dir + "/p.json --backend cpu --steps 1 --trace " + dir + "/t.json --svg " +
              dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Listing(dir), (std::vector<std::string>{"m.json", "p.json"}));
  std::filesystem::remove_all(dir);
}

// plan -o is checked before the search and the comparison: with a base plan that is not
// comparable (another micro-batch count) the output path is what is named.
TEST(OutputSet, PlanChecksItsOutputBeforeAnyWork) {
  const std::string dir = TempDir();
  const std::string base = MakePlan(dir, "base.json", 4);
  const testing::CommandResult r =
      RunTool("plan models/gpt2-small.json --stages 2 --micro-batches 8 --compare-to " + base +
              " -o /nonexistent/p.json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/nonexistent/p.json: cannot write"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(Listing(dir), std::vector<std::string>{"base.json"});
  for (const char* cmd : {"profile models/gpt2-small.json", "export PLAN --to megatron"}) {
    std::string args = cmd;
    if (args.find("PLAN") != std::string::npos) args.replace(args.find("PLAN"), 4, base);
    const testing::CommandResult e = RunTool(args + " -o /nonexistent/x.out");
    EXPECT_EQ(e.exit_code, 2) << cmd;
    EXPECT_NE(e.err.find("/nonexistent/x.out: cannot write"), std::string::npos) << e.err;
  }
  std::filesystem::remove_all(dir);
}

TEST(OutputSet, AFailedCommitLeavesNoFileOfTheSet) {
  const std::string dir = TempDir();
  OutputSet set;
  set.Add(dir + "/a.json", "{}\n");
  set.Add(dir + "/missing/b.json", "{}\n");
  EXPECT_FALSE(set.Commit().ok());
  EXPECT_TRUE(Listing(dir).empty());
  std::filesystem::remove_all(dir);
}

// A signal between the temporary files and their renames: the process dies of the signal and
// no temporary file (nor output) is left.
void ExpectSignalLeavesNothing(int sig) {
  const std::string dir = TempDir();
  EXPECT_EXIT(
      {
        OutputSet set;
        set.Add(dir + "/out.json", "{}\n");
        set.Add(dir + "/out.svg", "<svg/>\n");
        set.SetBeforeRenameForTesting([&] {
          // The temporary files exist here.
          if (Listing(dir).size() != 2) std::_Exit(3);
          std::raise(sig);
        });
        (void)set.Commit();
        std::_Exit(4);
      },
      ::testing::KilledBySignal(sig), "");
  EXPECT_TRUE(Listing(dir).empty()) << Listing(dir).front();
  std::filesystem::remove_all(dir);
}

TEST(OutputSet, SigtermBeforeTheRenamesRemovesTheTemporaryFiles) {
  ExpectSignalLeavesNothing(SIGTERM);
}

TEST(OutputSet, SigintBeforeTheRenamesRemovesTheTemporaryFiles) {
  ExpectSignalLeavesNothing(SIGINT);
}

// Files renamed into place are no longer tracked: a later signal leaves them.
TEST(OutputSet, ASignalAfterTheCommitKeepsTheOutputs) {
  const std::string dir = TempDir();
  EXPECT_EXIT(
      {
        OutputSet set;
        set.Add(dir + "/out.json", "{}\n");
        if (!set.Commit().ok()) std::_Exit(3);
        std::raise(SIGTERM);
        std::_Exit(4);
      },
      ::testing::KilledBySignal(SIGTERM), "");
  EXPECT_EQ(Listing(dir), std::vector<std::string>{"out.json"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp
