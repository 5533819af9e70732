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

// A zbv schedule from rows of ops written "5I3" (chunk 5's I of micro-batch 3), one per device.
Schedule ZbvFromRows(int p, int m, const std::vector<std::string>& rows) {
  Schedule s{"published", p, m, std::vector<std::vector<PipelineOp>>(p), {}};
  for (int c = 0; c < 2 * p; ++c) s.chunk_device.push_back(c < p ? c : 2 * p - 1 - c);
  for (int d = 0; d < p; ++d) {
    size_t at = 0;
    const std::string& row = rows[d];
    while (at < row.size()) {
      const size_t end = std::min(row.find(' ', at), row.size());
      const std::string cell = row.substr(at, end - at);
      const size_t letter = cell.find_first_of("FIW");
      OpKind kind;
      EXPECT_TRUE(OpKindFromLetter(cell[letter], &kind));
      s.device_ops[d].push_back(
          {kind, std::stoi(cell.substr(letter + 1)), std::stoi(cell.substr(0, letter))});
      at = end + 1;
    }
  }
  return s;
}

// The published ZB-V generator (the zero-bubble paper's reference implementation, which
// chooses its order from measured F, B, W and transfer times) gives these orders for F = 1,
// I = 1, W = 0.75 (the weight gradient 3/4 of the input gradient) without transfers, and for
// F = 0.8, I = 1.4, W = 1.05 with transfers of 0.5. zbv, told the same times, simulates at
// least as fast, and holds no more activations per device than the published order does.
TEST(Zbv, AtLeastAsFastAsThePublishedOrder) {
  struct Case {
    int p, m;
    OpTimesHint times;
    std::vector<std::string> rows;
  };
  const std::vector<Case> cases = {
      {2, 2, {1, 1, 0.75, 0, 0},
       {"0F0 0F1 3F0 3I0 3F1 3I1 0I0 3W0 3W1 0I1 0W0 0W1",
        "1F0 2F0 1F1 2F1 2I0 1I0 2I1 1I1 2W0 1W0 2W1 1W1"}},
      {3, 3, {1, 1, 0.75, 0, 0},
       {"0F0 0F1 0F2 5F0 5I0 5F1 5I1 5F2 5I2 0I0 5W0 5W1 0I1 5W2 0I2 0W0 0W1 0W2",
        "1F0 1F1 1F2 4F0 4F1 4I0 4F2 4I1 1I0 4I2 1I1 4W0 1I2 4W1 1W0 4W2 1W1 1W2",
        "2F0 3F0 2F1 3F1 2F2 3F2 3I0 2I0 3I1 2I1 3I2 2I2 3W0 2W0 3W1 2W1 3W2 2W2"}},
      {4, 4, {1, 1, 0.75, 0, 0},
       {"0F0 0F1 0F2 0F3 7F0 7I0 7F1 7I1 7F2 7I2 7F3 7I3 0I0 7W0 7W1 0I1 7W2 0I2 7W3 0I3 0W0 "
        "0W1 0W2 0W3",
        "1F0 1F1 1F2 1F3 6F0 6F1 6I0 6F2 6I1 6F3 6I2 1I0 6I3 1I1 6W0 1I2 6W1 1I3 6W2 1W0 6W3 "
        "1W1 1W2 1W3",
        "2F0 2F1 2F2 5F0 2F3 5F1 5F2 5I0 5F3 5I1 2I0 5I2 2I1 5I3 2I2 5W0 2I3 5W1 2W0 5W2 2W1 "
        "5W3 2W2 2W3",
        "3F0 4F0 3F1 4F1 3F2 4F2 3F3 4F3 4I0 3I0 4I1 3I1 4I2 3I2 4I3 3I3 4W0 3W0 4W1 3W1 4W2 "
        "3W2 4W3 3W3"}},
      {4, 8, {0.8, 1.4, 1.05, 0.5, 0},
       {"0F0 0F1 0F2 0F3 0F4 0F5 0F6 7F0 7I0 7W0 7F1 7I1 7W1 7F2 7I2 7W2 7F3 7I3 7W3 0F7 0I0 "
        "0W0 7F4 7I4 7W4 0I1 0W1 7F5 7I5 7W5 0I2 0W2 7F6 7I6 7W6 0I3 7F7 7I7 0W3 7W7 0I4 0W4 "
        "0I5 0W5 0I6 0W6 0I7 0W7",
        "1F0 1F1 1F2 1F3 1F4 6F0 1F5 6F1 6I0 6W0 6F2 6I1 6W1 6F3 6I2 6W2 1F6 1I0 1W0 6F4 6I3 "
        "6W3 1F7 1I1 1W1 6F5 6I4 6W4 1I2 1W2 6F6 6I5 6W5 1I3 6F7 6I6 1W3 1I4 6I7 1I5 6W6 1W4 "
        "1I6 6W7 1W5 1I7 1W6 1W7",
        "2F0 2F1 2F2 5F0 2F3 5F1 2F4 5F2 5I0 5W0 5F3 5I1 5W1 2F5 2I0 2W0 5F4 5I2 5W2 2F6 2I1 "
        "2W1 5F5 5I3 5W3 2F7 2I2 2W2 5F6 5I4 5W4 2I3 5F7 5I5 2W3 2I4 5I6 2I5 5I7 2I6 5W5 2W4 "
        "2I7 5W6 2W5 5W7 2W6 2W7",
        "3F0 4F0 3F1 4F1 3F2 4F2 3F3 4F3 4I0 4W0 3F4 3I0 3W0 4F4 4I1 4W1 3F5 3I1 3W1 4F5 4I2 "
        "4W2 3F6 3I2 3W2 4F6 4I3 4W3 3F7 3I3 3W3 4F7 4I4 3I4 4I5 3I5 4W4 4I6 3I6 4I7 3I7 3W4 "
        "4W5 3W5 4W6 3W6 4W7 3W7"}},
  };
  for (const Case& c : cases) {
    const Schedule published = ZbvFromRows(c.p, c.m, c.rows);
    ASSERT_TRUE(ValidateSchedule(published).ok()) << ValidateSchedule(published).message();
    ScheduleOptions options;
    options.times = c.times;
    const Schedule ours = *BuildSchedule("zbv", c.p, c.m, options);
    ChunkTimes times = Equal(2 * c.p, c.times.forward_ms, c.times.input_ms + c.times.weight_ms,
                             c.times.input_ms);
    times.transfer_ms.assign(2 * c.p - 1, c.times.transfer_ms);
    const double theirs = Simulate(published, times)->step_time_ms;
    const double mine = Simulate(ours, times)->step_time_ms;
    EXPECT_LE(mine, theirs + 1e-9) << "p=" << c.p << " m=" << c.m;
    // The default options' order (for equal ops) is no faster under these times.
    const double fixed = Simulate(*BuildSchedule("zbv", c.p, c.m), times)->step_time_ms;
    EXPECT_GE(fixed, mine) << "p=" << c.p << " m=" << c.m;
    const std::vector<int> held = InFlightMicroBatches(ours);
    const std::vector<int> limit = InFlightMicroBatches(published);
    for (int d = 0; d < c.p; ++d) EXPECT_LE(held[d], std::max(limit[d], 2 * c.p)) << d;
  }
}

// The order chosen for hinted times never simulates slower under them than the fixed order,
// and keeps each chunk's activations within the fixed order's.
TEST(Zbv, HintedOrderNeverLosesToTheFixedOne) {
  for (int p = 2; p <= 4; ++p) {
    for (int m = 1; m <= 2 * p + 2; ++m) {
      for (const double w : {0.5, 0.75, 1.0}) {
        for (const double t : {0.0, 0.3}) {
          ScheduleOptions options;
          options.times = {1, 1, w, t, 0};
          const Schedule hinted = *BuildSchedule("zbv", p, m, options);
          ChunkTimes times = Equal(2 * p, 1, 1 + w, 1);
          times.transfer_ms.assign(2 * p - 1, t);
          const double step = Simulate(hinted, times)->step_time_ms;
          EXPECT_GE(step, 2.0 * m * (2 + w) - 1e-9);  // a device's own work
          if (m >= 2 * p - 1) {
            // The fixed order: the default options' for m >= 2p - 1 (the closed form above).
            const Schedule fixed = *BuildSchedule("zbv", p, m);
            EXPECT_LE(step, Simulate(fixed, times)->step_time_ms + 1e-9) << p << " " << m;
            const std::vector<int> held = InFlightPerChunk(hinted);
            const std::vector<int> cap = InFlightPerChunk(fixed);
            for (int c = 0; c < 2 * p; ++c) EXPECT_LE(held[c], cap[c]) << c;
          }
        }
      }
      if (m < 2 * p - 1) {
        // Equal ops: device p - 1 waits p - 1 op times for its first input, then has 6m
        // of work.
        const double step = Simulate(*BuildSchedule("zbv", p, m), Equal(2 * p, 1, 2, 1))
                                ->step_time_ms;
        EXPECT_GE(step, 6.0 * m + p - 1 - 1e-9) << p << " " << m;
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
