// Limits of `run`: a total time limit stops every device with a named error, and a run whose
// arena would not fit the machine's memory is refused before anything is allocated.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "executor/cpu_runner.h"
#include "executor/runtime.h"
#include "executor/schedule.h"
#include "tests/runtime_fixtures.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using testing::EvenChunks;
using testing::FeatureModel;
using testing::TokenModel;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(RunLimits, TimeLimitStopsEveryDeviceWithANamedError) {
  const Model model = TokenModel();
  const Schedule schedule = *BuildSchedule("1f1b", 2, 8);
  const std::vector<ChunkRange> chunks = EvenChunks(static_cast<int>(model.layers.size()), 2);
  // What one step costs, so that the limited run is known to need far longer than its limit.
  RunOptions probe;
  probe.steps = 20;
  probe.warmup_steps = 0;
  const Clock::time_point probe_start = Clock::now();
  ASSERT_TRUE(RunOnCpu(model, chunks, schedule, probe).ok());
  const double per_step_s = SecondsSince(probe_start) / probe.steps;

  RunOptions limited;
  limited.steps = 100000;
  limited.warmup_steps = 0;
  limited.time_limit_s = 0.2;
  ASSERT_GT(per_step_s * limited.steps, 20 * limited.time_limit_s);
  const Clock::time_point start = Clock::now();
  Result<RunResult> run = RunOnCpu(model, chunks, schedule, limited);
  const double took = SecondsSince(start);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.message(), TimeLimitMessage(0.2));
  EXPECT_NE(run.message().find("time limit of 0.2 s"), std::string::npos) << run.message();
  EXPECT_NE(run.message().find("--time-limit"), std::string::npos) << run.message();
  // Stopped within a few steps of the limit (the devices check it between ops), not after
  // the 100,000 asked for; a few probe steps of slack for a loaded machine, where one step of
  // the sanitizer build can take seconds.
  EXPECT_LT(took, 5.0 + 4 * per_step_s);
}

TEST(RunLimits, CliTimeLimitEndsALongRunQuickly) {
  const std::string dir = testing::TempDir();
  testing::WriteText(dir + "/m.json", DumpJson(testing::SmallModelJson()));
  ASSERT_EQ(testing::RunTool("plan " + dir + "/m.json --stages 2 --micro-batches 64 -o " + dir +
                             "/p.json").exit_code, 0);
  const Clock::time_point start = Clock::now();
  const testing::CommandResult r = testing::RunTool(
      "run " + dir + "/p.json --backend cpu --steps 100000 --time-limit 0.3 -o " + dir + "/r.json");
  EXPECT_LT(SecondsSince(start), 10.0);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("time limit of 0.3 s (--time-limit)"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/r.json"));
  std::filesystem::remove_all(dir);
}

// The bytes counted before allocating are those the devices then allocate, for schedules
// with one chunk per device, several (interleaved), split backwards (zb-h1) and recompute.
TEST(RunLimits, CountedBytesAreTheAllocatedBytes) {
  struct Case {
    const char* schedule;
    int p, m;
    bool recompute;
    RecomputeUnit unit = RecomputeUnit::kStage;
    bool tokens = false;  // the token model (transformer blocks) instead of the feature model
  };
  for (const Case& c : {Case{"gpipe", 2, 4, false}, Case{"1f1b", 2, 4, true},
                        Case{"1f1b", 2, 4, true, RecomputeUnit::kLayer},
                        Case{"1f1b", 2, 4, true, RecomputeUnit::kLayer, true},
                        Case{"1f1b", 2, 4, true, RecomputeUnit::kBlock, true},
                        Case{"interleaved", 2, 4, false}, Case{"zb-h1", 2, 4, false}}) {
    const Model model = c.tokens ? TokenModel() : FeatureModel();
    Result<Schedule> schedule = BuildSchedule(c.schedule, c.p, c.m);
    ASSERT_TRUE(schedule.ok()) << c.schedule << ": " << schedule.message();
    std::vector<ChunkRange> chunks =
        EvenChunks(static_cast<int>(model.layers.size()), NumChunks(*schedule));
    for (ChunkRange& r : chunks) {
      r.recompute = c.recompute;
      r.unit = c.unit;
      r.blocks = 1;
    }
    Result<uint64_t> counted = CpuRunBytes(model, chunks, *schedule);
    ASSERT_TRUE(counted.ok()) << counted.message();
    RunOptions options;
    options.steps = 1;
    options.warmup_steps = 0;
    Result<RunResult> run = RunOnCpu(model, chunks, *schedule, options);
    ASSERT_TRUE(run.ok()) << c.schedule << ": " << run.message();
    uint64_t allocated = 0;
    for (uint64_t b : run->peak_memory_bytes) allocated += b;
    EXPECT_EQ(*counted, allocated) << c.schedule;
    EXPECT_TRUE(CheckCpuRunFits(model, chunks, *schedule, allocated).ok());
    const Status short_by_one = CheckCpuRunFits(model, chunks, *schedule, allocated - 1);
    ASSERT_FALSE(short_by_one.ok());
    EXPECT_NE(short_by_one.message().find(std::to_string(allocated) + " bytes"),
              std::string::npos) << short_by_one.message();
    EXPECT_NE(short_by_one.message().find(std::to_string(allocated - 1) + " bytes"),
              std::string::npos) << short_by_one.message();
  }
}

// A linear layer of 10^7 x 10^7 floats: its parameters, gradients and two moments alone are
// 16 * 10^14 bytes. Counting them allocates nothing.
const char* kHugeModel = R"({"format": "pp-partition.model/v1", "name": "huge", "dtype": "fp32",
    "input": {"micro_batch_size": 1, "features": 8},
    "layers": [{"name": "fc1", "op": "linear", "in": 8, "out": 10000000},
               {"name": "fc2", "op": "linear", "in": 10000000, "out": 10000000},
               {"name": "loss", "op": "mse"}]})";

TEST(RunLimits, HugeArenaIsRefusedNamingBytesNeededAndAvailable) {
  const Model model = testing::ParseModel(kHugeModel);
  const Schedule schedule = *BuildSchedule("1f1b", 1, 1);
  const std::vector<ChunkRange> chunks = {{0, 2}};
  Result<uint64_t> counted = CpuRunBytes(model, chunks, schedule);
  ASSERT_TRUE(counted.ok()) << counted.message();
  EXPECT_GE(*counted, uint64_t{16} * 100000000000000ULL);
  const uint64_t available = uint64_t{1} << 30;
  const Status s = CheckCpuRunFits(model, chunks, schedule, available);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(std::to_string(*counted) + " bytes"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("1073741824 bytes"), std::string::npos) << s.message();
}

// Through the CLI: refused with exit 2 before allocating. Without the check the allocation of
// about 1.6 PB fails at once (beyond any address space), so this cannot exhaust memory.
TEST(RunLimits, CliRefusesAPlanWhoseArenaExceedsAvailableMemory) {
  const std::string dir = testing::TempDir();
  testing::WriteText(dir + "/m.json", kHugeModel);
  ASSERT_EQ(testing::RunTool("plan " + dir + "/m.json --stages 1 --micro-batches 1 "
                             "--memory-limit none -o " + dir + "/p.json").exit_code, 0);
  const testing::CommandResult r = testing::RunTool("run " + dir + "/p.json --backend cpu");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bytes ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("are available"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was allocated"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp
