// Schedules as CSV (torch.distributed.pipelining's compute-only form): every built-in schedule
// survives a round trip with the same op lists and the same simulated step, a hand-written
// torch-style CSV gives a hand-worked timeline, and bad CSVs are refused with their place.
#include "executor/schedule_csv.h"

#include <gtest/gtest.h>

#include "executor/schedule.h"
#include "executor/simulator.h"

namespace pp {
namespace {

// Unequal chunk times, so a reordering of any op would show in the step time.
ChunkTimes UnequalTimes(int chunks) {
  ChunkTimes times;
  for (int c = 0; c < chunks; ++c) {
    times.forward_ms.push_back(1.0 + 0.37 * c);
    times.backward_ms.push_back(2.0 + 0.61 * ((c * 5) % 3));
    times.backward_input_ms.push_back(0.9 + 0.2 * (c % 2));
  }
  times.transfer_ms.assign(chunks - 1, 0.13);
  return times;
}

TEST(ScheduleCsv, EveryBuiltInScheduleRoundTrips) {
  for (const ScheduleKind* kind : ScheduleKinds()) {
    for (int p : {1, 2, 3, 4}) {
      for (int m : {1, 2, 4, 8}) {
        ScheduleOptions options;
        options.virtual_stages = 2;
        if (!kind->Check(p, m, options).ok()) continue;
        const Schedule built = kind->Build(p, m, options);
        const std::string where =
            std::string(kind->name()) + " p=" + std::to_string(p) + " m=" + std::to_string(m);
        const std::string csv = ScheduleToCsv(built);
        EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), p) << where;
        Result<Schedule> read = ScheduleFromCsv(csv);
        ASSERT_TRUE(read.ok()) << where << ": " << read.message() << "\n" << csv;
        EXPECT_EQ(read->num_devices, p) << where;
        EXPECT_EQ(read->num_micro_batches, m) << where;
        EXPECT_EQ(read->device_ops, built.device_ops) << where;
        EXPECT_EQ(read->chunk_device, built.chunk_device) << where;
        const ChunkTimes times = UnequalTimes(NumChunks(built));
        Result<Timeline> a = Simulate(built, times), b = Simulate(*read, times);
        ASSERT_TRUE(a.ok() && b.ok()) << where;
        EXPECT_EQ(a->step_time_ms, b->step_time_ms) << where;
        EXPECT_EQ(ScheduleToCsv(*read), csv) << where;
      }
    }
  }
}

TEST(ScheduleCsv, InterleavedCellsNameTheGlobalStage) {
  // Megatron's interleaving puts chunk c on device c mod p: device 1 of p = 2 runs stages 1
  // and 3, and its first forward is of stage 1.
  const Schedule s = *BuildSchedule("interleaved", 2, 2);
  const std::string csv = ScheduleToCsv(s);
  const std::string second_row = csv.substr(csv.find('\n') + 1);
  EXPECT_EQ(second_row.rfind("1F0,", 0), 0u) << csv;
  EXPECT_NE(second_row.find("3F0"), std::string::npos) << csv;
  EXPECT_EQ(second_row.find("0F"), std::string::npos) << csv;
}

TEST(ScheduleCsv, TorchStyleCsvGivesTheHandWorkedTimeline) {
  // As torch dumps it: one row per rank, idle slots as empty cells, "\r\n" line ends. Two
  // ranks, one micro-batch, backward split into I and W.
  const std::string csv = "0F0,,,0I0,0W0\r\n,1F0,1I0,1W0,\r\n";
  Result<Schedule> s = ScheduleFromCsv(csv);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(s->num_devices, 2);
  ASSERT_EQ(s->num_micro_batches, 1);
  EXPECT_TRUE(s->chunk_device.empty());  // stage d on rank d: one chunk per device
  // F = (1, 2), B = (2, 4) of which I = (1, 3), transfer 0.5:
  //   d0 F0 [0, 1]                                        I0 [7, 8]  W0 [8, 9]
  //   d1        F0 [1.5, 3.5]  I0 [3.5, 6.5]  W0 [6.5, 7.5]
  ChunkTimes times{{1, 2}, {2, 4}, {0.5}, {1, 3}};
  Result<Timeline> t = Simulate(*s, times);
  ASSERT_TRUE(t.ok()) << t.message();
  // (ready, start, end); the last stage's I waits for nothing but its device.
  const double expected[][3] = {{0, 0, 1},       {7, 7, 8},     {8, 8, 9},
                                {1.5, 1.5, 3.5}, {0, 3.5, 6.5}, {6.5, 6.5, 7.5}};
  ASSERT_EQ(t->ops.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_DOUBLE_EQ(t->ops[i].ready_ms, expected[i][0]) << i;
    EXPECT_DOUBLE_EQ(t->ops[i].start_ms, expected[i][1]) << i;
    EXPECT_DOUBLE_EQ(t->ops[i].end_ms, expected[i][2]) << i;
  }
  EXPECT_DOUBLE_EQ(t->step_time_ms, 9);
  EXPECT_DOUBLE_EQ(t->bubble_ratio, 1 - (3.0 + 6.0) / (2 * 9.0));
}

TEST(ScheduleCsv, SeveralStagesOnOneRankMapToChunks) {
  // One rank running stages 0 and 1 in a V (forward down, backward up), spaces and a final
  // line without a newline allowed.
  Result<Schedule> s = ScheduleFromCsv(" 0F0 , 1F0 , 1B0 , 0B0 ");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(s->chunk_device, (std::vector<int>{0, 0}));
  ASSERT_EQ(s->device_ops.size(), 1u);
  EXPECT_EQ(s->device_ops[0][1], (PipelineOp{OpKind::kForward, 0, 1}));
  // No transfer between chunks on one device: 1 + 2 + 4 + 3.
  Result<Timeline> t = Simulate(*s, ChunkTimes{{1, 2}, {3, 4}, {9}});
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_DOUBLE_EQ(t->step_time_ms, 10);
}

void ExpectError(const std::string& csv, const std::string& expect,
                 const ScheduleCsvOptions& options = {}) {
  Result<Schedule> s = ScheduleFromCsv(csv, options);
  ASSERT_FALSE(s.ok()) << csv;
  EXPECT_NE(s.message().find(expect), std::string::npos) << csv << "\n" << s.message();
}

TEST(ScheduleCsv, BadCsvsNameLineAndCell) {
  ExpectError("0F0,0B0\n1F0,1B0\n2F0,2B0,,,2X1\n",
              "schedule.csv:3: cell 5 \"2X1\": unknown op letter 'X'");
  ExpectError("0F0,0B0\n1F\n", "schedule.csv:2: cell 1 \"1F\": missing micro-batch index");
  ExpectError("F0\n", "schedule.csv:1: cell 1 \"F0\": expected STAGE LETTER MICRO_BATCH");
  ExpectError("0F0x\n", "cell 1 \"0F0x\": unexpected text");
  ExpectError("0F0,0SEND_F0,0B0\n", "cell 2 \"0SEND_F0\": communication");
  ExpectError("0F0,0B0\n0F1,0B1\n",
              "schedule.csv:2: cell 1 \"0F1\": stage 0 already runs on rank 0");
  ExpectError("0F99999999999\n", "micro-batch index too large");
  ExpectError("", "empty schedule");
  ExpectError("0F0,0B0\n2F0,2B0\n", "stage 1 has no ops");
  // Order and completeness come from ValidateSchedule, with the file name in front.
  ExpectError("0B0,0F0\n", "schedule.csv: device 0 op 0B0 runs before its F");
  ExpectError("0F0\n", "schedule.csv: chunk 0 must run F0 once");
  // Against a plan's counts.
  ScheduleCsvOptions plan;
  plan.source = "mine.csv";
  plan.num_devices = 2;
  plan.num_chunks = 2;
  plan.num_micro_batches = 1;
  ExpectError("0F0,0B0\n", "mine.csv: 1 row (ranks); the plan has 2 devices", plan);
  ExpectError("0F0,0B0\n1F0,1B0,1F1\n", "mine.csv:2: cell 3 \"1F1\": micro-batch 1 out of range",
              plan);
  ExpectError("0F0,0B0\n1F0,2B0\n", "mine.csv:2: cell 2 \"2B0\": stage 2 out of range", plan);
}

}  // namespace
}  // namespace pp
