// The schedules and the simulator against closed forms and hand-worked timelines.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "executor/schedule.h"
#include "executor/simulator.h"

namespace pp {
namespace {

ChunkTimes Equal(int p, double f, double b, double t) {
  ChunkTimes times;
  times.forward_ms.assign(p, f);
  times.backward_ms.assign(p, b);
  times.transfer_ms.assign(p - 1, t);
  return times;
}

TEST(Simulator, EqualStagesBubbleIsClosedForm) {
  for (const char* name : {"gpipe", "1f1b"}) {
    for (int p = 1; p <= 8; ++p) {
      for (int m = 1; m <= 16; ++m) {
        const Schedule s = *BuildSchedule(name, p, m);
        Result<Timeline> t = Simulate(s, Equal(p, 1.0, 2.0, 0.0));
        ASSERT_TRUE(t.ok()) << t.message();
        EXPECT_DOUBLE_EQ(t->step_time_ms, (m + p - 1) * 3.0) << name << " p=" << p << " m=" << m;
        EXPECT_NEAR(t->bubble_ratio, double(p - 1) / (m + p - 1), 1e-12)
            << name << " p=" << p << " m=" << m;
      }
    }
  }
}

TEST(Simulator, GpipeWithTransfersIsClosedForm) {
  // Forwards ripple down adding one transfer per boundary, backwards ripple back up:
  // step = (m + p - 1)(f + b) + 2 (p - 1) t.
  for (int p = 1; p <= 6; ++p) {
    for (int m = 1; m <= 8; ++m) {
      Result<Timeline> t = Simulate(*BuildSchedule("gpipe", p, m), Equal(p, 1.5, 2.5, 0.75));
      ASSERT_TRUE(t.ok());
      EXPECT_DOUBLE_EQ(t->step_time_ms, (m + p - 1) * 4.0 + 2 * (p - 1) * 0.75);
    }
  }
}

// gpipe with unequal stages and transfers: T + 2 sum t + (m - 1)(max F + max B), the closed
// form the step search's dominance rule for gpipe rests on. Quarter times: sums are exact.
TEST(Simulator, GpipeUnequalStagesIsClosedForm) {
  std::mt19937_64 rng(41);
  auto quarter = [&](int hi) { return 0.25 * std::uniform_int_distribution<int>(0, hi)(rng); };
  for (int trial = 0; trial < 300; ++trial) {
    const int p = 1 + trial % 7, m = 1 + (trial / 7) % 9;
    ChunkTimes t;
    double total = 0, transfers = 0, max_f = 0, max_b = 0;
    for (int s = 0; s < p; ++s) {
      t.forward_ms.push_back(quarter(40));
      t.backward_ms.push_back(quarter(80));
      total += t.forward_ms.back() + t.backward_ms.back();
      max_f = std::max(max_f, t.forward_ms.back());
      max_b = std::max(max_b, t.backward_ms.back());
      if (s + 1 < p) {
        t.transfer_ms.push_back(quarter(12));
        transfers += t.transfer_ms.back();
      }
    }
    Result<Timeline> timeline = Simulate(*BuildSchedule("gpipe", p, m), t);
    ASSERT_TRUE(timeline.ok()) << timeline.message();
    EXPECT_EQ(timeline->step_time_ms, total + 2 * transfers + (m - 1) * (max_f + max_b))
        << "trial " << trial;
  }
}

// StepSimulator (validated once, no timeline) gives exactly Simulate's step on every schedule
// kind, random unequal chunks, transfers and I/W splits, reused across calls; a deadlocking
// schedule or mismatched times give NaN.
TEST(Simulator, StepSimulatorEqualsSimulate) {
  std::mt19937_64 rng(43);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto ms = [&]() { return std::uniform_real_distribution<double>(0.0, 10.0)(rng); };
  int compared = 0;
  for (const char* kind : {"gpipe", "1f1b", "interleaved", "zb-h1", "zbv"}) {
    for (int trial = 0; trial < 40; ++trial) {
      const int p = uniform(1, 5);
      const int m = std::string(kind) == "interleaved" ? p * uniform(1, 3) : uniform(1, 9);
      Result<Schedule> schedule = BuildSchedule(kind, p, m, ScheduleOptions{uniform(2, 3)});
      ASSERT_TRUE(schedule.ok()) << schedule.message();
      StepSimulator fast(*schedule);
      ASSERT_TRUE(fast.status().ok());
      const int chunks = NumChunks(*schedule);
      for (int again = 0; again < 3; ++again) {  // buffers reused between calls
        ChunkTimes t;
        for (int c = 0; c < chunks; ++c) {
          t.forward_ms.push_back(ms());
          t.backward_ms.push_back(ms());
          if (trial % 2) t.backward_input_ms.push_back(t.backward_ms.back() * ms() / 10);
          if (c + 1 < chunks) t.transfer_ms.push_back(ms() / 4);
        }
        if (trial % 3 == 0) {  // what a transfer costs the devices, as ChargeTransfers fills it
          t.p2p_gap_ms = ms() / 20;
          for (const double x : t.transfer_ms) t.exposed_ms.push_back(x * ms() / 10);
        }
        EXPECT_EQ(fast.StepMs(t), Simulate(*schedule, t)->step_time_ms) << kind;
        ++compared;
      }
      ChunkTimes wrong;
      wrong.forward_ms.assign(chunks + 1, 1.0);
      EXPECT_NE(fast.StepMs(wrong), fast.StepMs(wrong));  // NaN
    }
  }
  EXPECT_EQ(compared, 600);
  Schedule stuck = *BuildSchedule("1f1b", 2, 2);
  std::swap(stuck.device_ops[1][0], stuck.device_ops[1][1]);  // B0 before F0 on the last stage
  EXPECT_FALSE(StepSimulator(stuck).status().ok());
}

// One micro-batch ripples down and back up; each boundary crossed costs its transfer plus the
// receiver's gap g, and the sender's hold (gap and exposed part, at most the transfer) ends
// before its next op's input is back: step = p (f + b) + 2 (p - 1)(t + g).
TEST(Simulator, TransferGapsOnOneMicroBatchAreClosedForm) {
  for (const char* kind : {"gpipe", "1f1b"}) {
    for (int p = 1; p <= 6; ++p) {
      ChunkTimes times = Equal(p, 1.5, 2.5, 0.75);
      times.p2p_gap_ms = 0.125;
      times.exposed_ms.assign(p - 1, 0.75);
      Result<Timeline> t = Simulate(*BuildSchedule(kind, p, 1), times);
      ASSERT_TRUE(t.ok()) << t.message();
      EXPECT_DOUBLE_EQ(t->step_time_ms, p * 4.0 + 2 * (p - 1) * (0.75 + 0.125)) << kind << p;
      EXPECT_DOUBLE_EQ(t->busy_ms[0], 4.0);  // gaps and holds are not busy time
    }
  }
}

// Interleaved, p = 2, V = 2, m = 2: chunk c on device c mod 2. F = 1 and B = 2 per chunk,
// transfer t = 0.5, gap g = 0.1 per send and receive, and the whole transfer exposed on its
// sender (e = 0.5): an op that receives starts g after max(input there, device free); one that
// sends holds its device g + e after it ends. Device 0 runs 0F0 0F1 2F0 2F1 2B0 2B1 0B0 0B1,
// device 1 runs 1F0 1F1 3F0 3B0 3F1 3B1 1B0 1B1:
//   d0 0F0 [0,1] (hold to 1.6) 0F1 [1.6,2.6] (3.2)   2F0: in at 2.6+.5, free 3.2 -> [3.3,4.3]
//      2F1: in 4.8, free 4.9 -> [5.0,6.0]   2B0: in 8.0+.5 -> [8.6,10.6]   2B1: in 12.2 ->
//      [12.3,14.3]   0B0: in 14.9, free 14.9 -> [15.0,17.0]   0B1: in 17.6 -> [17.7,19.7]
//   d1 1F0: in 1.5 -> [1.6,2.6]   1F1: in 3.1, free 3.2 -> [3.3,4.3]   3F0: in 4.8, free 4.9
//      -> [5.0,6.0] (last chunk: sends nothing)   3B0 [6.0,8.0] (hold to 8.6)   3F1: in 6.5 ->
//      [8.7,9.7]   3B1 [9.7,11.7]   1B0: in 11.1, free 12.3 -> [12.4,14.4]   1B1: in 14.8,
//      free 15.0 -> [15.1,17.1]
TEST(Simulator, InterleavedTransferCostsHandWorkedTimeline) {
  const Schedule s = *BuildSchedule("interleaved", 2, 2, ScheduleOptions{2});
  ChunkTimes times = Equal(4, 1, 2, 0.5);
  times.p2p_gap_ms = 0.1;
  times.exposed_ms.assign(3, 0.5);
  Result<Timeline> t = Simulate(s, times);
  ASSERT_TRUE(t.ok()) << t.message();
  const double expected[][2] = {{0, 1},       {1.6, 2.6},   {3.3, 4.3},   {5.0, 6.0},
                                {8.6, 10.6},  {12.3, 14.3}, {15.0, 17.0}, {17.7, 19.7},
                                {1.6, 2.6},   {3.3, 4.3},   {5.0, 6.0},   {6.0, 8.0},
                                {8.7, 9.7},   {9.7, 11.7},  {12.4, 14.4}, {15.1, 17.1}};
  ASSERT_EQ(t->ops.size(), 16u);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_NEAR(t->ops[i].start_ms, expected[i][0], 1e-12) << i;
    EXPECT_NEAR(t->ops[i].end_ms, expected[i][1], 1e-12) << i;
  }
  EXPECT_NEAR(t->step_time_ms, 19.7, 1e-12);
  EXPECT_NEAR(StepSimulator(s).StepMs(times), 19.7, 1e-12);
}

// What each kind pays per transfer: the one-chunk kinds nothing, interleaved the gap and its
// whole transfer exposed, zbv the gap only; a schedule without a kind the gap when it runs
// several chunks per device.
TEST(Simulator, ChargeTransfersFollowsTheKind) {
  for (const char* kind : {"gpipe", "1f1b", "zb-h1", "interleaved", "zbv"}) {
    const Schedule s = *BuildSchedule(kind, 2, 2);
    ChunkTimes times = Equal(NumChunks(s), 1, 2, 0.25);
    ChargeTransfers(s, &times, 0.01);
    const std::string k = kind;
    const bool chunked = k == "interleaved" || k == "zbv";
    EXPECT_EQ(times.p2p_gap_ms, chunked ? 0.01 : 0.0) << kind;
    if (k == "interleaved") {
      EXPECT_EQ(times.exposed_ms, std::vector<double>(3, 0.25));
    } else {
      EXPECT_TRUE(times.exposed_ms.empty()) << kind;
    }
    Schedule bare = s;  // as read from a CSV
    bare.kind = nullptr;
    ChargeTransfers(bare, &times, 0.01);
    EXPECT_EQ(times.p2p_gap_ms, chunked ? 0.01 : 0.0) << kind;
    EXPECT_TRUE(times.exposed_ms.empty()) << kind;
  }
}

TEST(Simulator, OneFOneBHandWorkedTimeline) {
  // p = 2, m = 2, F = (1, 2), B = (2, 4), no transfers. Stage 0 runs F0 F1 B0 B1, stage 1
  // runs F0 B0 F1 B1:
  //   s0 F0 [0,1]  F1 [1,2]                 B0 [7,9]          B1 [13,15]
  //   s1      F0 [1,3] B0 [3,7] F1 [7,9] B1 [9,13]
  ChunkTimes times{{1, 2}, {2, 4}, {0}};
  Result<Timeline> t = Simulate(*BuildSchedule("1f1b", 2, 2), times);
  ASSERT_TRUE(t.ok());
  EXPECT_DOUBLE_EQ(t->step_time_ms, 15);
  EXPECT_DOUBLE_EQ(t->busy_ms[0], 6);
  EXPECT_DOUBLE_EQ(t->busy_ms[1], 12);
  EXPECT_DOUBLE_EQ(t->bubble_ratio, 1 - 18.0 / 30.0);
  const double expected[][2] = {{0, 1}, {1, 2}, {7, 9}, {13, 15}, {1, 3}, {3, 7}, {7, 9}, {9, 13}};
  ASSERT_EQ(t->ops.size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_DOUBLE_EQ(t->ops[i].start_ms, expected[i][0]) << i;
    EXPECT_DOUBLE_EQ(t->ops[i].end_ms, expected[i][1]) << i;
  }
}

TEST(Schedules, OneFOneBOrderAndInFlight) {
  for (int p = 1; p <= 6; ++p) {
    for (int m = 1; m <= 9; ++m) {
      const Schedule s = *BuildSchedule("1f1b", p, m);
      ASSERT_TRUE(ValidateSchedule(s).ok());
      const std::vector<int> in_flight = InFlightMicroBatches(s);
      for (int stage = 0; stage < p; ++stage) {
        EXPECT_EQ(in_flight[stage], std::min(p - stage, m));
        // Warm-up forwards first, then strict alternation, then the remaining backwards.
        const int w = std::min(p - stage - 1, m);
        const auto& ops = s.device_ops[stage];
        for (int i = 0; i < w; ++i) EXPECT_EQ(ops[i], (PipelineOp{OpKind::kForward, i}));
        for (int k = 0; k < m - w; ++k) {
          EXPECT_EQ(ops[w + 2 * k], (PipelineOp{OpKind::kForward, w + k}));
          EXPECT_EQ(ops[w + 2 * k + 1], (PipelineOp{OpKind::kBackward, k}));
        }
      }
      const std::vector<int> gpipe = InFlightMicroBatches(*BuildSchedule("gpipe", p, m));
      for (int v : gpipe) EXPECT_EQ(v, m);
    }
  }
}

TEST(Simulator, ReportsDeadlockAndBadSchedules) {
  // Stage 0 waits for B0 from stage 1, which first wants F1 from stage 0.
  Schedule s{"custom", 2, 2, {}};  // one chunk per device
  s.device_ops = {{{OpKind::kForward, 0}, {OpKind::kBackward, 0}, {OpKind::kForward, 1},
               {OpKind::kBackward, 1}},
              {{OpKind::kForward, 0}, {OpKind::kForward, 1}, {OpKind::kBackward, 0},
               {OpKind::kBackward, 1}}};
  Result<Timeline> t = Simulate(s, Equal(2, 1, 1, 0));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.message().find("deadlocks"), std::string::npos) << t.message();

  s.device_ops[1].pop_back();
  EXPECT_FALSE(ValidateSchedule(s).ok());
  EXPECT_FALSE(BuildSchedule("zigzag", 2, 2).ok());
}

}  // namespace
}  // namespace pp
