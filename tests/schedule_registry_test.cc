// The schedule registry is the one place that knows each kind: every registered kind builds,
// validates, and the facts its traits declare agree with the op lists it builds.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "executor/schedule.h"
#include "executor/schedule_csv.h"

namespace pp {
namespace {

TEST(ScheduleRegistry, DeclaredFactsAgreeWithTheBuiltOpLists) {
  std::set<std::string> names;
  for (const ScheduleKind* kind : ScheduleKinds()) {
    const std::string name(kind->name());
    EXPECT_TRUE(names.insert(name).second) << "registered twice: " << name;
    EXPECT_EQ(FindScheduleKind(name), kind);
    EXPECT_NE(ScheduleNames().find(name), std::string::npos);
    const ScheduleTraits traits = kind->traits();
    int built = 0;
    for (int v = 2; v <= 3; ++v) {
      const ScheduleOptions options{v};
      ASSERT_TRUE(kind->CheckOptions(options).ok()) << name;
      const int per_device = kind->ChunksPerDevice(options);
      for (int p = 1; p <= 5; ++p) {
        for (int m = 1; m <= 10; ++m) {
          if (!kind->Check(p, m, options).ok()) continue;
          const std::string where =
              name + " p=" + std::to_string(p) + " m=" + std::to_string(m) + " V=" +
              std::to_string(v);
          Result<Schedule> s = BuildSchedule(name, p, m, options);
          ASSERT_TRUE(s.ok()) << where << ": " << s.message();
          ++built;
          EXPECT_EQ(s->kind, kind) << where;
          EXPECT_EQ(s->name, name) << where;
          ASSERT_TRUE(ValidateSchedule(*s).ok()) << where << ": " << ValidateSchedule(*s).message();
          // Chunks per device and placement, as the op lists use them.
          ASSERT_EQ(NumChunks(*s), p * per_device) << where;
          EXPECT_EQ(s->chunk_device.empty(), per_device == 1) << where;
          std::vector<int> runs_on(NumChunks(*s), -1);
          for (int d = 0; d < p; ++d) {
            for (const PipelineOp& op : s->device_ops[d]) runs_on[OpChunk(*s, d, op)] = d;
          }
          for (int c = 0; c < NumChunks(*s); ++c) {
            EXPECT_EQ(ChunkDevice(*s, c), kind->ChunkDevice(c, p, options)) << where << " c" << c;
            EXPECT_EQ(runs_on[c], kind->ChunkDevice(c, p, options)) << where << " c" << c;
          }
          EXPECT_EQ(SplitsBackward(*s), traits.splits_backward) << where;
          EXPECT_EQ(StepBoundsOf(*s), traits.step_bounds) << where;
          EXPECT_EQ(SupportsPerStageRecompute(*s), traits.per_stage_recompute) << where;
          // The one-chunk, full-backward facts hold only where the lists have that shape.
          const bool classic = per_device == 1 && !SplitsBackward(*s);
          if (traits.step_bounds != StepBoundsFamily::kChunked) {
            EXPECT_TRUE(classic) << where;
          }
          // Recomputation runs a chunk's forward again inside its backward: full backwards.
          if (traits.per_stage_recompute) {
            EXPECT_FALSE(SplitsBackward(*s)) << where;
          }
          // Pipe runs one chunk per device; Megatron-LM puts chunk c on stage c mod p.
          EXPECT_EQ(traits.torchgpipe != FrameworkFit::kNo, per_device == 1) << where;
          if (traits.megatron != FrameworkFit::kNo) {
            for (int c = 0; c < NumChunks(*s); ++c) EXPECT_EQ(ChunkDevice(*s, c), c % p) << where;
          }
          // The same lists read back from a CSV have no kind; the fallbacks agree where the
          // lists alone can tell (gpipe's own bounds need the kind).
          Result<Schedule> csv = ScheduleFromCsv(ScheduleToCsv(*s));
          ASSERT_TRUE(csv.ok()) << where << ": " << csv.message();
          EXPECT_EQ(csv->kind, nullptr);
          EXPECT_EQ(SupportsPerStageRecompute(*csv), traits.per_stage_recompute) << where;
          if (traits.step_bounds != StepBoundsFamily::kGpipe) {
            EXPECT_EQ(StepBoundsOf(*csv), traits.step_bounds) << where;
          }
        }
      }
    }
    EXPECT_GT(built, 10) << name;
  }
  // The search's default list is the registry's opt-ins, in registry order.
  std::vector<std::string> searched;
  for (const ScheduleKind* kind : ScheduleKinds()) {
    if (kind->traits().searched_by_default) searched.emplace_back(kind->name());
  }
  EXPECT_EQ(SearchedScheduleNames(), searched);
}

TEST(ScheduleRegistry, FrameworkNamesAreTheFrameworksOwn) {
  // torch.distributed.pipelining's class names (its __all__), and which kinds have none.
  const std::set<std::string> torch_classes = {"ScheduleGPipe", "Schedule1F1B",
                                               "ScheduleInterleaved1F1B", "ScheduleLoopedBFS",
                                               "ScheduleInterleavedZeroBubble",
                                               "ScheduleZBVZeroBubble", "ScheduleDualPipeV"};
  for (const ScheduleKind* kind : ScheduleKinds()) {
    const std::string cls(kind->traits().torch_class);
    if (!cls.empty()) {
      EXPECT_TRUE(torch_classes.count(cls)) << kind->name() << ": " << cls;
    }
  }
  EXPECT_TRUE(FindScheduleKind("zb-h1")->traits().torch_class.empty());
  EXPECT_EQ(FindScheduleKind("interleaved")->traits().torch_class, "ScheduleInterleaved1F1B");
}

TEST(ScheduleRegistry, OptionsAreCheckedBeforeCounts) {
  const ScheduleKind* interleaved = FindScheduleKind("interleaved");
  EXPECT_FALSE(interleaved->CheckOptions(ScheduleOptions{1}).ok());
  Result<Schedule> s = BuildSchedule("interleaved", 4, 6, ScheduleOptions{1});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--virtual-stages"), std::string::npos) << s.message();
  EXPECT_FALSE(BuildSchedule("nope", 2, 2).ok());
}

}  // namespace
}  // namespace pp
