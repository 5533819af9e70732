// compare and plan --compare-to end to end: exit 0 / 1 / 2 exactly as documented, the
// tolerance boundary to the last bit, memory regressions, moved boundaries; and plans that
// are byte-identical for the same inputs and carry hashes of their model and profile.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/content_hash.h"
#include "core/json_util.h"
#include "core/units.h"
#include "partitioner/compare.h"
#include "partitioner/planner.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using testing::ReadText;
using testing::RunTool;
using testing::WriteText;

class CompareCli : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::TempDir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Plans `args` into dir_/name and returns the document.
  Json MakePlan(const std::string& name, const std::string& args) {
    const testing::CommandResult r = RunTool("plan " + args + " -o " + Path(name));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(ReadText(Path(name)));
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Save(const std::string& name, const Json& doc) { WriteText(Path(name), DumpJson(doc)); }
  testing::CommandResult Compare(const std::string& base, const std::string& next,
                                 const std::string& flags = "") {
    return RunTool("compare " + Path(base) + " " + Path(next) + " " + flags);
  }

  std::string dir_;
};

TEST_F(CompareCli, IdenticalPlansPass) {
  MakePlan("base.json", "models/gpt2-small.json --stages 4 --micro-batches 8");
  const testing::CommandResult r = Compare("base.json", "base.json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("verdict: ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("boundaries: unchanged"), std::string::npos) << r.out;
}

TEST_F(CompareCli, SlowerNewFailsAndNamesStepTime) {
  Json doc = MakePlan("base.json", "models/gpt2-small.json --stages 4 --micro-batches 8");
  doc["predicted"]["step_time_ms"] = doc["predicted"]["step_time_ms"].get<double>() * 1.10;
  Save("new.json", doc);
  testing::CommandResult r = Compare("base.json", "new.json");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("regression: predicted step time"), std::string::npos) << r.err;
  // 10 % is within a 15 % tolerance.
  r = Compare("base.json", "new.json", "--tolerance 15%");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Faster is never a regression.
  r = Compare("new.json", "base.json", "--tolerance 0");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CompareCli, ToleranceBoundaryIsExact) {
  // 100 ms × (1 + 25 %) = 125 ms exactly in binary floating point.
  Json doc = MakePlan("plan.json", "models/gpt2-small.json --stages 2 --micro-batches 4");
  doc["predicted"]["step_time_ms"] = 100.0;
  Save("base.json", doc);
  doc["predicted"]["step_time_ms"] = 125.0;
  Save("at.json", doc);
  doc["predicted"]["step_time_ms"] = std::nextafter(125.0, 200.0);
  Save("above.json", doc);
  EXPECT_EQ(Compare("base.json", "at.json", "--tolerance 25%").exit_code, 0);
  const testing::CommandResult r = Compare("base.json", "above.json", "--tolerance 25%");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("step time"), std::string::npos) << r.err;
  EXPECT_EQ(Compare("base.json", "above.json", "--tolerance 0.25").exit_code, 1);
}

TEST_F(CompareCli, MeasuredStepTimeIsJudgedWhenBothHaveIt) {
  Json doc = MakePlan("plan.json", "models/gpt2-small.json --stages 2 --micro-batches 4");
  Json measured = doc["predicted"];
  measured["step_time_ms"] = 100.0;
  doc["measured"] = measured;
  Save("base.json", doc);
  doc["predicted"]["step_time_ms"] = doc["predicted"]["step_time_ms"].get<double>() * 2;
  doc["measured"]["step_time_ms"] = 101.0;  // within 2 %
  Save("new.json", doc);
  EXPECT_EQ(Compare("base.json", "new.json").exit_code, 0);
  doc["measured"]["step_time_ms"] = 103.0;
  Save("new.json", doc);
  const testing::CommandResult r = Compare("base.json", "new.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("measured step time"), std::string::npos) << r.err;
}

TEST_F(CompareCli, MemoryRegressionFails) {
  Json doc = MakePlan("base.json", "models/gpt2-small.json --stages 2 --micro-batches 4 "
                                   "--memory-limit none");
  const uint64_t peak = doc["stages"][1]["peak_memory_bytes"].get<uint64_t>();
  doc["memory_limit_bytes"] = peak - 1;  // stage 1 (at least) no longer fits
  Save("new.json", doc);
  const testing::CommandResult r = Compare("base.json", "new.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("stage 1 peak memory"), std::string::npos) << r.err;
  // Over the limit in both: not a regression.
  EXPECT_EQ(Compare("new.json", "new.json").exit_code, 0);
}

TEST_F(CompareCli, DifferentModelsAreNotComparable) {
  MakePlan("small.json", "models/gpt2-small.json --stages 2 --micro-batches 4");
  MakePlan("medium.json", "models/gpt2-medium.json --stages 2 --micro-batches 4");
  testing::CommandResult r = Compare("small.json", "medium.json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not comparable"), std::string::npos) << r.err;
  // Same name, different layer list.
  Json doc = Json::parse(ReadText(Path("small.json")));
  doc["profile"]["layers"][3]["name"] = "renamed";
  Save("renamed.json", doc);
  r = Compare("small.json", "renamed.json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("layer 3"), std::string::npos) << r.err;
  EXPECT_EQ(RunTool("compare " + Path("small.json") + " " + Path("missing.json")).exit_code, 2);
  EXPECT_EQ(Compare("small.json", "small.json", "--tolerance lots").exit_code, 2);
}

TEST_F(CompareCli, ReportsMovedBoundariesAsJson) {
  MakePlan("base.json", "models/gpt2-small.json --boundaries 4,8,12 --micro-batches 8");
  MakePlan("new.json", "models/gpt2-small.json --boundaries 5,8,12 --micro-batches 8");
  const testing::CommandResult r = Compare("base.json", "new.json", "--format json --tolerance 50%");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json doc = Json::parse(r.out);
  EXPECT_EQ(doc["format"], "pp-partition.compare/v1");
  EXPECT_EQ(doc["verdict"], "ok");
  ASSERT_EQ(doc["moved_boundaries"].size(), 1u);
  EXPECT_EQ(doc["moved_boundaries"][0]["base"], 4);
  EXPECT_EQ(doc["moved_boundaries"][0]["new"], 5);
  EXPECT_EQ(doc["stages"].size(), 4u);
  const testing::CommandResult md = Compare("base.json", "new.json", "--format md");
  EXPECT_NE(md.out.find("| figure | BASE | NEW | change |"), std::string::npos) << md.out;
}

TEST_F(CompareCli, PlanCompareTo) {
  MakePlan("base.json", "models/gpt2-small.json --stages 4 --micro-batches 8");
  testing::CommandResult r = RunTool("plan models/gpt2-small.json --stages 4 --micro-batches 8 "
                                     "--compare-to " + Path("base.json"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("verdict: ok"), std::string::npos) << r.out;
  // Twice the micro-batches: a longer step.
  r = RunTool("plan models/gpt2-small.json --stages 4 --micro-batches 16 -o " + Path("new.json") +
              " --compare-to " + Path("base.json"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("step time"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::exists(Path("new.json")));
  // Not comparable: exit 2 and no plan file.
  r = RunTool("plan models/gpt2-medium.json --stages 4 --micro-batches 8 -o " + Path("x.json") +
              " --compare-to " + Path("base.json"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not comparable"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(Path("x.json")));
  // With the document on stdout, the comparison goes to stderr.
  r = RunTool("plan models/gpt2-small.json --stages 4 --micro-batches 8 -o - --compare-to " +
              Path("base.json"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["num_stages"], 4);
  EXPECT_NE(r.err.find("verdict: ok"), std::string::npos) << r.err;
}

TEST(ContentHash, Fnv1a64KnownVectors) {
  // Published FNV-1a 64-bit test vectors.
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
  EXPECT_EQ(ContentHash(Json::object()).size(), 8u + 16u);
}

TEST_F(CompareCli, PlansAreReproducibleAndHashTheirInputs) {
  const std::string args = "models/gpt2-medium.json --stages 4 --micro-batches 8";
  MakePlan("a.json", args);
  const Json b = MakePlan("b.json", args);
  EXPECT_EQ(ReadText(Path("a.json")), ReadText(Path("b.json")));  // byte-identical
  ASSERT_TRUE(b.contains("model_hash"));
  ASSERT_TRUE(b.contains("profile_hash"));
  // The hash is FNV-1a over the embedded document's canonical text.
  char expect[32];
  std::snprintf(expect, sizeof expect, "fnv1a64:%016llx",
                static_cast<unsigned long long>(Fnv1a64(DumpJson(b["profile"]))));
  EXPECT_EQ(b["profile_hash"], expect);

  // A profile with one layer changed gives another profile hash.
  ASSERT_EQ(RunTool("profile models/gpt2-medium.json --backend analytic -o " + Path("p.json"))
                .exit_code, 0);
  Json profile = Json::parse(ReadText(Path("p.json")));
  MakePlan("from-profile.json", Path("p.json") + " --stages 4 --micro-batches 8");
  profile["layers"][2]["forward_ms"] = profile["layers"][2]["forward_ms"].get<double>() * 2;
  Save("p2.json", profile);
  const Json changed = MakePlan("changed.json", Path("p2.json") + " --stages 4 --micro-batches 8");
  const Json same = Json::parse(ReadText(Path("from-profile.json")));
  EXPECT_FALSE(same.contains("model_hash"));  // planned from a profile: no model_spec
  EXPECT_NE(same["profile_hash"], changed["profile_hash"]);
  EXPECT_EQ(same["profile_hash"], b["profile_hash"]);  // same profile, same hash
}

// A chunked plan: interleaved, p = 2 devices, V = 2, so device 1 holds chunks 1 and 3. NEW's
// limit sits just under device 1's two chunks together (and above every chunk alone and above
// device 0's pair): chunks 1 and 3 are on a device over its limit, chunks 0 and 2 are not. A
// check of each chunk alone, or of the first p entries only, finds no regression at all.
TEST(ComparePlans, ChunkedPlansAreJudgedPerDeviceOverEveryChunk) {
  Profile profile;
  profile.model = "m";
  profile.device = {"test", uint64_t{1} << 40};
  profile.micro_batch_size = 1;
  profile.link = {1e9, 0.01};
  for (int i = 0; i < 8; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.forward_ms = 1;
    l.backward_ms = 2;
    l.param_bytes = 1000 * static_cast<uint64_t>(i + 1);
    l.activation_bytes = 10;
    l.output_bytes = 10;
    profile.layers.push_back(l);
  }
  PlanRequest request;
  request.profile = profile;
  request.schedule = "interleaved";
  request.num_stages = 2;
  request.virtual_stages = 2;
  request.num_micro_batches = 4;
  request.method = "uniform";
  request.objective = "bottleneck";
  Result<Plan> base = MakePlan(request);
  ASSERT_TRUE(base.ok()) << base.message();
  ASSERT_EQ(base->stages.size(), 4u);
  for (int c = 0; c < 4; ++c) ASSERT_EQ(base->stages[c].device.value_or(-1), c % 2);
  // Each device's peak over its two chunks (planner.h DevicePeakMemory), above each alone.
  const std::vector<uint64_t> devices = DevicePeakMemory(*base);
  const uint64_t device0 = devices[0], device1 = devices[1];
  ASSERT_LT(device0, device1 - 1);
  ASSERT_GT(device1,
            std::max(base->stages[1].peak_memory_bytes, base->stages[3].peak_memory_bytes));
  for (const StagePlan& s : base->stages) ASSERT_LT(s.peak_memory_bytes, device1 - 1);
  Plan next = *base;
  next.memory_limit_bytes = device1 - 1;
  Result<PlanComparison> c = ComparePlans(*base, next, 0.02);
  ASSERT_TRUE(c.ok()) << c.message();
  ASSERT_EQ(c->stages.size(), 4u);
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(c->stages[s].memory_regressed, s % 2 == 1) << "stage " << s;
    EXPECT_EQ(c->stages[s].next_over_limit, s % 2 == 1) << "stage " << s;
    EXPECT_FALSE(c->stages[s].base_over_limit) << "stage " << s;
  }
  ASSERT_EQ(c->regressions.size(), 2u);
  EXPECT_NE(c->regressions[1].find("stage 3 peak memory"), std::string::npos) << c->regressions[1];
  EXPECT_NE(c->regressions[1].find(FormatBytes(device1)), std::string::npos) << c->regressions[1];
  // The overall peak is the largest device's.
  for (const FigureComparison& f : c->overall) {
    if (f.key == "peak_memory_bytes") {
      EXPECT_EQ(f.next, static_cast<double>(device1));
    }
  }
}

}  // namespace
}  // namespace pp
