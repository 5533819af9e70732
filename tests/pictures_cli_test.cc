// `simulate --svg`, `run --svg`, `simulate --schedule-csv` and `--dump-schedule-csv` end to
// end: the chart holds one rectangle per op of the JSON timeline, a dumped schedule simulates
// to the plan's own step time, and bad CSVs exit 2 naming file and line.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/json_util.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using testing::ReadText;
using testing::RunTool;
using testing::TempDir;
using testing::WriteText;

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string Plan(const std::string& dir, const std::string& args) {
  const std::string path = dir + "/plan.json";
  const testing::CommandResult r = RunTool("plan models/gpt2-small.json " + args + " -o " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

TEST(PicturesCli, SimulateSvgDrawsEveryOp) {
  const std::string dir = TempDir();
  const std::string plan =
      Plan(dir,
           "--stages 4 --micro-batches 8 --schedule interleaved --virtual-stages 2 "
           "--objective bottleneck");
  testing::CommandResult r = RunTool("simulate " + plan + " --svg " + dir + "/g.svg --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json timeline = Json::parse(r.out);
  const std::string svg = ReadText(dir + "/g.svg");
  ASSERT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_EQ(Count(svg, "<rect class=\"op "), timeline["ops"].size());
  EXPECT_EQ(Count(svg, "<rect class=\"op F\""), 4u * 2 * 8);  // p V m forwards
  EXPECT_NE(svg.find("<title>device 3 7F0:"), std::string::npos) << "chunk 7 runs on device 3";
  // The legend carries the simulated step time.
  char step[64];
  std::snprintf(step, sizeof step, "step time %.3f ms", timeline["step_time_ms"].get<double>());
  EXPECT_NE(svg.find(step), std::string::npos) << step;
  // An unwritable path fails cleanly.
  r = RunTool("simulate " + plan + " --svg " + dir + "/no/such/dir/g.svg");
  EXPECT_EQ(r.exit_code, 2);
  std::filesystem::remove_all(dir);
}

TEST(PicturesCli, DumpedScheduleSimulatesToThePlansStepTime) {
  const std::string dir = TempDir();
  for (const char* schedule : {"gpipe", "1f1b", "zb-h1", "zbv"}) {
    const std::string plan = Plan(dir, std::string("--stages 4 --micro-batches 8 --schedule ") +
                                           schedule + " --objective bottleneck");
    testing::CommandResult own =
        RunTool("simulate " + plan + " --format json --dump-schedule-csv " + dir + "/s.csv");
    ASSERT_EQ(own.exit_code, 0) << schedule << ": " << own.err;
    const std::string csv = ReadText(dir + "/s.csv");
    EXPECT_EQ(Count(csv, "\n"), 4u) << schedule;
    testing::CommandResult other =
        RunTool("simulate " + plan + " --format json --schedule-csv " + dir + "/s.csv");
    ASSERT_EQ(other.exit_code, 0) << schedule << ": " << other.err;
    EXPECT_EQ(Json::parse(own.out)["step_time_ms"], Json::parse(other.out)["step_time_ms"])
        << schedule;
    EXPECT_EQ(Json::parse(own.out)["ops"], Json::parse(other.out)["ops"]) << schedule;
  }
  std::filesystem::remove_all(dir);
}

TEST(PicturesCli, ACsvMadeElsewhereChangesTheStep) {
  // gpipe's order written by hand for a 2-stage 1f1b plan: all forwards first.
  const std::string dir = TempDir();
  const std::string plan = Plan(dir, "--boundaries 8 --micro-batches 2");
  WriteText(dir + "/gpipe.csv", "0F0,0F1,,,0B0,0B1\r\n,1F0,1F1,1B0,1B1\r\n");
  testing::CommandResult r =
      RunTool("simulate " + plan + " --format json --schedule-csv " + dir + "/gpipe.csv");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json mine = Json::parse(r.out);
  EXPECT_EQ(mine["ops"][1]["op"], "F");  // device 0's second op
  EXPECT_EQ(mine["ops"][1]["micro_batch"], 1);
  // The same order as the built-in gpipe schedule gives the same step time.
  const std::string gpipe = Plan(dir, "--boundaries 8 --micro-batches 2 --schedule gpipe");
  r = RunTool("simulate " + gpipe + " --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["step_time_ms"], mine["step_time_ms"]);
  std::filesystem::remove_all(dir);
}

TEST(PicturesCli, BadScheduleCsvExitsTwoWithItsPlace) {
  const std::string dir = TempDir();
  const std::string plan = Plan(dir, "--stages 2 --micro-batches 2");
  const std::string bad = dir + "/bad.csv";
  const auto expect = [&](const std::string& csv, const std::string& message) {
    WriteText(bad, csv);
    const testing::CommandResult r = RunTool("simulate " + plan + " --schedule-csv " + bad);
    EXPECT_EQ(r.exit_code, 2) << csv;
    EXPECT_NE(r.err.find(message), std::string::npos) << csv << "\n" << r.err;
    EXPECT_EQ(Count(r.err, "\n"), 1u) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  };
  expect("0F0,0F1,0B0,0B1\n1F0,1Q1\n", bad + ":2: cell 2 \"1Q1\": unknown op letter 'Q'");
  expect("0F0,0F1,0B0,0B1\n", bad + ": 1 row (ranks); the plan has 2 devices");
  expect("0F0,0F1,0B0,0B1\n1F0,1F1,1B0\n", bad + ": chunk 1 must run F1 once");
  expect("0F0,0F1,0B0,0B1\n1F0,1F1,1B0,1B1,1F2\n", bad + ":2: cell 5 \"1F2\": micro-batch 2");
  const testing::CommandResult r =
      RunTool("simulate " + plan + " --schedule-csv " + dir + "/missing.csv");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing.csv: cannot open"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

TEST(PicturesCli, RunSvgDrawsPredictedAboveMeasured) {
  const std::string dir = TempDir();
  WriteText(dir + "/m.json", R"({"format": "pp-partition.model/v1", "name": "tiny",
      "dtype": "fp32", "input": {"micro_batch_size": 2, "seq_len": 8},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 17, "hidden": 16, "positions": 8},
                 {"name": "block", "op": "transformer_block", "hidden": 16, "heads": 2,
                  "ffn": 32, "causal": true, "repeat": 2},
                 {"name": "head", "op": "linear", "in": 16, "out": 17},
                 {"name": "loss", "op": "cross_entropy"}]})");
  testing::CommandResult r =
      RunTool("plan " + dir + "/m.json --stages 2 --micro-batches 3 -o " + dir + "/p.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunTool("run " + dir + "/p.json --backend cpu --steps 2 --warmup 0 --svg " + dir +
              "/run.svg");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string svg = ReadText(dir + "/run.svg");
  EXPECT_EQ(Count(svg, "<g class=\"panel\">"), 2u);
  EXPECT_LT(svg.find(">predicted: tiny"), svg.find(">measured: tiny"));
  EXPECT_EQ(Count(svg, "<rect class=\"op "), 2u * (2 * 3 * 2));  // two timelines of 2 p m ops
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp
