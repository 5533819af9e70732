// The interleaved, zb-h1 and zbv schedules against closed forms and hand-worked timelines.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "executor/schedule.h"
#include "executor/simulator.h"

namespace pp {
namespace {

// Every chunk takes f, b (with I = i of it) and there are no transfers.
ChunkTimes Equal(int chunks, double f, double b, double input = -1) {
  ChunkTimes times;
  times.forward_ms.assign(chunks, f);
  times.backward_ms.assign(chunks, b);
  times.transfer_ms.assign(chunks - 1, 0.0);
  if (input >= 0) times.backward_input_ms.assign(chunks, input);
  return times;
}

TEST(Interleaved, EqualChunksBubbleIsClosedForm) {
  // A device's V chunks each take 1/V of the stage's F = 1 and B = 2: the warm-up costs
  // (p - 1) chunk times of each kind, so bubble = (p - 1) / (V m + p - 1).
  for (int p = 1; p <= 6; ++p) {
    for (int v = 2; v <= 4; ++v) {
      for (int m = p; m <= 4 * p; m += p) {
        Result<Schedule> s = BuildSchedule("interleaved", p, m, ScheduleOptions{v});
        ASSERT_TRUE(s.ok()) << s.message();
        ASSERT_EQ(NumChunks(*s), p * v);
        Result<Timeline> t = Simulate(*s, Equal(p * v, 1.0 / v, 2.0 / v));
        ASSERT_TRUE(t.ok()) << t.message();
        const double closed = double(p - 1) / (v * m + p - 1);
        EXPECT_NEAR(t->bubble_ratio, closed, 1e-9) << "p=" << p << " v=" << v << " m=" << m;
        EXPECT_NEAR(t->step_time_ms, 3.0 * m + 3.0 * (p - 1) / v, 1e-9);
        EXPECT_NEAR(t->bubble_over_ideal, closed / (1 - closed), 1e-9);
      }
    }
  }
}

TEST(Interleaved, PlacementOrderAndConstraints) {
  const Schedule s = *BuildSchedule("interleaved", 2, 4, ScheduleOptions{2});
  // Chunk c on device c mod p.
  EXPECT_EQ(s.chunk_device, (std::vector<int>{0, 1, 0, 1}));
  // Device 0 (p = 2, V = 2, m = 4): warm-up 2*(p-1) + (V-1)*p = 4 forwards walk micro-batches
  // 0,1 on chunk 0, then 0,1 on chunk 2; then F/B pairs; backwards start on the last chunk.
  const std::vector<PipelineOp> expected = {
      {OpKind::kForward, 0, 0},  {OpKind::kForward, 1, 0},  {OpKind::kForward, 0, 2},
      {OpKind::kForward, 1, 2},  {OpKind::kForward, 2, 0},  {OpKind::kBackward, 0, 2},
      {OpKind::kForward, 3, 0},  {OpKind::kBackward, 1, 2}, {OpKind::kForward, 2, 2},
      {OpKind::kBackward, 0, 0}, {OpKind::kForward, 3, 2},  {OpKind::kBackward, 1, 0},
      {OpKind::kBackward, 2, 2}, {OpKind::kBackward, 3, 2}, {OpKind::kBackward, 2, 0},
      {OpKind::kBackward, 3, 0}};
  EXPECT_EQ(s.device_ops[0], expected);
  EXPECT_TRUE(ValidateSchedule(s).ok());
  EXPECT_FALSE(BuildSchedule("interleaved", 4, 6, ScheduleOptions{2}).ok());  // 6 % 4 != 0
  EXPECT_FALSE(BuildSchedule("interleaved", 4, 8, ScheduleOptions{1}).ok());
}

// torch.distributed.pipelining's ScheduleInterleaved1F1B order for rank `rank`, re-derived from
// its documented phase logic: rounds r = max(1, m / p) of n = m / r micro-batches; w =
// min((V - 1) n + 2 (p - 1 - rank), m V) warm-up forwards, then forward/backward pairs, then
// the backwards; op k's forward goes to local stage (k / n) mod V and its backward (counting
// from the first backward) to V - 1 - (that index); each stage numbers its own micro-batches
// in the order it meets them. Megatron-LM's table with groups of p gives the same order.
std::vector<std::string> FrameworkInterleavedOrder(int p, int m, int v, int rank) {
  const int rounds = std::max(1, m / p), n = m / rounds, total = m * v;
  const int warmup = std::min((v - 1) * n + 2 * (p - 1 - rank), total);
  std::map<int, int> next_forward, next_backward;  // global stage -> next micro-batch
  std::vector<std::string> ops;
  auto forward = [&](int step) {
    const int stage = ((step / n) % v) * p + rank;
    ops.push_back(std::to_string(stage) + "F" + std::to_string(next_forward[stage]++));
  };
  auto backward = [&](int step) {
    const int stage = (v - 1 - ((step - warmup) / n) % v) * p + rank;
    ops.push_back(std::to_string(stage) + "B" + std::to_string(next_backward[stage]++));
  };
  for (int step = 0; step < total + warmup; ++step) {  // w forwards, m V - w pairs, w backwards
    if (step < warmup) {
      forward(step);
    } else if (step < total) {
      forward(step);
      backward(step);
    } else {
      backward(step);
    }
  }
  return ops;
}

std::vector<std::string> OurOrder(const Schedule& s, int device) {
  std::vector<std::string> ops;
  for (const PipelineOp& op : s.device_ops[device]) ops.push_back(OpText(op, op.chunk));
  return ops;
}

TEST(Interleaved, FollowsTheFrameworksOrderForEveryM) {
  // p = 4, m = 4, V = 2, device 3 (worked by hand): 4 warm-up forwards of chunk 3, then
  // chunk 7 alternates forward and backward, then chunk 3's backwards.
  const std::vector<std::string> device3 = {"3F0", "3F1", "3F2", "3F3", "7F0", "7B0",
                                            "7F1", "7B1", "7F2", "7B2", "7F3", "7B3",
                                            "3B0", "3B1", "3B2", "3B3"};
  EXPECT_EQ(OurOrder(*BuildSchedule("interleaved", 4, 4, ScheduleOptions{2}), 3), device3);
  const std::pair<int, int> shapes[] = {{2, 2}, {4, 2}, {8, 2}, {2, 3}, {4, 3}};  // (p, V)
  for (const auto& [p, v] : shapes) {
    for (int m = p; m <= 3 * p; m += p) {
      Result<Schedule> s = BuildSchedule("interleaved", p, m, ScheduleOptions{v});
      ASSERT_TRUE(s.ok()) << s.message();
      ASSERT_TRUE(ValidateSchedule(*s).ok());
      for (int d = 0; d < p; ++d) {
        EXPECT_EQ(OurOrder(*s, d), FrameworkInterleavedOrder(p, m, v, d))
            << "p=" << p << " V=" << v << " m=" << m << " device " << d;
      }
    }
  }
}

TEST(ZbH1, IdleIsAThirdOfOneFOneBWithEqualOps) {
  // F = I = W = 1: 1f1b (B = I + W = 2) idles 3 (p - 1) per device; zb-h1 p - 1, so
  // step = 3 m + p - 1 (m >= p).
  for (int p = 1; p <= 8; ++p) {
    for (int m = p; m <= p + 10; ++m) {
      const Schedule zb = *BuildSchedule("zb-h1", p, m);
      ASSERT_TRUE(ValidateSchedule(zb).ok());
      Result<Timeline> t = Simulate(zb, Equal(p, 1, 2, 1));
      ASSERT_TRUE(t.ok()) << t.message();
      Result<Timeline> base = Simulate(*BuildSchedule("1f1b", p, m), Equal(p, 1, 2));
      ASSERT_TRUE(base.ok());
      EXPECT_DOUBLE_EQ(t->step_time_ms, 3.0 * m + p - 1) << "p=" << p << " m=" << m;
      for (int d = 0; d < p; ++d) {
        const double idle = t->step_time_ms - t->busy_ms[d];
        const double base_idle = base->step_time_ms - base->busy_ms[d];
        EXPECT_DOUBLE_EQ(3 * idle, base_idle) << "p=" << p << " m=" << m << " d=" << d;
      }
      // Activations are held from F to W: at most p micro-batches per device.
      for (int held : InFlightMicroBatches(zb)) EXPECT_LE(held, p);
    }
  }
}

TEST(ZbH1, HandWorkedTimeline) {
  // p = 2, m = 2, F = 1, I = 1, W = 1. Device 1 defers one W: F0 I0 F1 I1 W0 W1; device 0
  // runs F0 F1 I0 W0 I1 W1:
  //   d0 F0 [0,1] F1 [1,2]          I0 [3,4] W0 [4,5] I1 [5,6] W1 [6,7]
  //   d1       F0 [1,2] I0 [2,3] F1 [3,4] I1 [4,5] W0 [5,6] W1 [6,7]
  Result<Timeline> t = Simulate(*BuildSchedule("zb-h1", 2, 2), Equal(2, 1, 2, 1));
  ASSERT_TRUE(t.ok());
  const double expected[][2] = {{0, 1}, {1, 2}, {3, 4}, {4, 5}, {5, 6}, {6, 7},
                                {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}, {6, 7}};
  ASSERT_EQ(t->ops.size(), 12u);
  for (size_t i = 0; i < 12; ++i) {
    EXPECT_DOUBLE_EQ(t->ops[i].start_ms, expected[i][0]) << i;
    EXPECT_DOUBLE_EQ(t->ops[i].end_ms, expected[i][1]) << i;
  }
  EXPECT_DOUBLE_EQ(t->step_time_ms, 7);
}

TEST(Zbv, ValidVShapeAndNoDeadlock) {
  for (int p = 1; p <= 6; ++p) {
    for (int m = 1; m <= 3 * p + 2; ++m) {
      const Schedule s = *BuildSchedule("zbv", p, m);
      ASSERT_EQ(NumChunks(s), 2 * p);
      for (int c = 0; c < 2 * p; ++c) EXPECT_EQ(ChunkDevice(s, c), c < p ? c : 2 * p - 1 - c);
      ASSERT_TRUE(ValidateSchedule(s).ok()) << ValidateSchedule(s).message();
      Result<Timeline> t = Simulate(s, Equal(2 * p, 1, 2, 1));
      ASSERT_TRUE(t.ok()) << "p=" << p << " m=" << m << ": " << t.message();
      // Lower bound: each device does 6 m units of work.
      EXPECT_GE(t->step_time_ms, 6.0 * m);
      if (m >= 2 * p - 1) {
        // The V turns at the last device without a transfer; only the first chunk's
        // ripple-down of p - 1 op times stays idle: step = 6 m + p - 1.
        EXPECT_DOUBLE_EQ(t->step_time_ms, 6.0 * m + p - 1) << "p=" << p << " m=" << m;
      }
    }
  }
}

TEST(Schedules, SplitBackwardDefaultsToEvenSplitAndValidates) {
  ChunkTimes times = Equal(2, 1, 4);  // no I share: I = W = 2
  EXPECT_DOUBLE_EQ(OpDurationMs(times, 0, OpKind::kBackwardInput), 2);
  EXPECT_DOUBLE_EQ(OpDurationMs(times, 0, OpKind::kBackwardWeight), 2);
  Schedule s{"custom", 1, 1, {{{OpKind::kForward, 0}, {OpKind::kBackwardWeight, 0},
                               {OpKind::kBackwardInput, 0}}}};
  EXPECT_FALSE(ValidateSchedule(s).ok());  // W before I
  s.device_ops[0] = {{OpKind::kForward, 0}, {OpKind::kBackwardInput, 0}, {OpKind::kBackward, 0}};
  EXPECT_FALSE(ValidateSchedule(s).ok());  // both B and I
  s.device_ops[0] = {{OpKind::kForward, 0}, {OpKind::kBackwardInput, 0},
                 {OpKind::kBackwardWeight, 0}};
  EXPECT_TRUE(ValidateSchedule(s).ok());
  OpKind k;
  for (char c : std::string("FBIW")) {
    ASSERT_TRUE(OpKindFromLetter(c, &k));
    EXPECT_EQ(OpKindLetter(k), c);
  }
  EXPECT_FALSE(OpKindFromLetter('X', &k));
}

}  // namespace
}  // namespace pp
