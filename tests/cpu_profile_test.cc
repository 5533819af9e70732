// The cpu profiler backend: real timings of the CPU reference layers, byte counts equal to the
// analytic profiler's fp32 counts, deduplication, and a clean "does not fit" on a layer too
// large for the machine.
#include <gtest/gtest.h>

#include <cmath>

#include "profiler/analytic.h"
#include "profiler/backend.h"
#include "tests/test_util.h"

namespace pp {
namespace {

Model TinyModel(int64_t micro_batch = 2) {
  Json doc = testing::SmallModelJson();
  doc["dtype"] = "fp32";
  doc["input"]["micro_batch_size"] = micro_batch;
  Result<Model> m = ModelFromJson(doc);
  EXPECT_TRUE(m.ok()) << m.message();
  return *m;
}

TEST(CpuProfile, MeasuresEveryLayerWithExactBytes) {
  const Model model = TinyModel();
  ProfileRequest request;
  request.model = &model;
  Result<Profile> p = FindBackend("cpu")->Run(request);
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->backend, "cpu");
  EXPECT_EQ(p->dtype, DType::kFp32);
  EXPECT_TRUE(p->measured_at.has_value());
  EXPECT_GT(p->link.bandwidth_bytes_per_s, 0);
  ASSERT_EQ(p->layers.size(), model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerProfile& l = p->layers[i];
    const LayerMemory m = AnalyticLayerMemory(model.layers[i], model.input, DType::kFp32);
    EXPECT_EQ(l.name, model.layers[i].name);
    EXPECT_EQ(static_cast<double>(l.param_bytes), m.param_bytes) << l.name;
    EXPECT_EQ(static_cast<double>(l.activation_bytes), m.activation_bytes) << l.name;
    EXPECT_EQ(static_cast<double>(l.output_bytes), m.output_bytes) << l.name;
    EXPECT_TRUE(std::isfinite(l.forward_ms) && l.forward_ms >= 0) << l.name;
    EXPECT_EQ(l.backward_ms, *l.backward_input_ms + *l.backward_weight_ms) << l.name;
    EXPECT_GE(*l.forward_p95_ms, l.forward_ms) << l.name;
    // The tied head (the model's last linear) shares its whole weight, 4 bytes a parameter.
    EXPECT_EQ(l.tied_to, model.layers[i].tied_to) << l.name;
    EXPECT_EQ(l.tied_param_bytes, 4 * static_cast<uint64_t>(TiedParamCount(model.layers[i], {})))
        << l.name;
  }
  EXPECT_EQ(p->layers[4].tied_to, "embed");
  // A block does far more arithmetic than a layer norm of the same width.
  EXPECT_GT(p->layers[1].forward_ms, p->layers[3].forward_ms);
  // Identical blocks are measured once and share their numbers.
  EXPECT_EQ(p->layers[1].forward_ms, p->layers[2].forward_ms);
}

TEST(CpuProfile, NoDedupeMeasuresEachLayer) {
  const Model model = TinyModel();
  ProfileRequest request;
  request.model = &model;
  request.dedupe = false;
  request.repeats = 2;
  Result<Profile> p = FindBackend("cpu")->Run(request);
  ASSERT_TRUE(p.ok()) << p.message();
  ASSERT_EQ(p->layers.size(), model.layers.size());
}

TEST(CpuProfile, ActivationsScaleWithMicroBatch) {
  const Model model = TinyModel();
  ProfileRequest request;
  request.model = &model;
  request.micro_batch_size = 4;
  Result<Profile> p4 = FindBackend("cpu")->Run(request);
  request.micro_batch_size = 2;
  Result<Profile> p2 = FindBackend("cpu")->Run(request);
  ASSERT_TRUE(p4.ok() && p2.ok());
  EXPECT_EQ(p4->micro_batch_size, 4);
  EXPECT_EQ(p4->layers[3].activation_bytes, 2 * p2->layers[3].activation_bytes);
}

TEST(CpuProfile, LayerTooLargeDoesNotFit) {
  const Json doc = Json::parse(R"({"format":"pp-partition.model/v1","name":"huge","dtype":"fp32",
      "input":{"micro_batch_size":1,"features":16777216},
      "layers":[{"name":"wide","op":"linear","in":16777216,"out":16777216}]})");
  Result<Model> model = ModelFromJson(doc);
  ASSERT_TRUE(model.ok()) << model.message();
  ProfileRequest request;
  request.model = &*model;
  Result<Profile> p = FindBackend("cpu")->Run(request);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("layer \"wide\" does not fit at micro-batch 1"), std::string::npos)
      << p.message();
}

TEST(CpuProfile, CliProfileThenPlan) {
  const std::string dir = testing::TempDir();
  testing::CommandResult r =
      testing::RunTool("profile models/mlp-2gpu.json --backend cpu --repeats 2 -o " + dir + "/p.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = testing::RunTool("plan " + dir + "/p.json --stages 2 --micro-batches 4 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json plan = Json::parse(r.out);
  EXPECT_EQ(plan["profile"]["backend"], "cpu");
  EXPECT_EQ(plan["boundaries"].size(), 1u);
}

}  // namespace
}  // namespace pp
