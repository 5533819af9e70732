// Model, Profile and Plan documents: round trips and every validation error, each checked
// for the JSON path and the problem it must name.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/model.h"
#include "core/plan.h"
#include "core/profile.h"
#include "core/units.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using testing::SmallModelJson;

// Expects ModelFromJson(doc) to fail with a message containing every `parts`.
void ExpectModelError(const Json& doc, std::initializer_list<std::string> parts) {
  Result<Model> m = ModelFromJson(doc);
  ASSERT_FALSE(m.ok()) << "accepted: " << doc.dump();
  for (const std::string& p : parts) {
    EXPECT_NE(m.message().find(p), std::string::npos) << "message: " << m.message()
                                                      << "\nexpected to contain: " << p;
  }
  EXPECT_EQ(m.message().find('\n'), std::string::npos) << "one line: " << m.message();
}

TEST(ModelFormat, ReadsAndExpandsRepeats) {
  Result<Model> m = ModelFromJson(SmallModelJson());
  ASSERT_TRUE(m.ok()) << m.message();
  ASSERT_EQ(m->layers.size(), 6u);
  const char* names[] = {"embed", "block.0", "block.1", "ln_f", "lm_head", "loss"};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(m->layers[i].name, names[i]);
  EXPECT_EQ(m->layers[1].group, "block");
  EXPECT_EQ(m->layers[2].spec_index, 1);
  EXPECT_EQ(m->input.rows(), 32);
  EXPECT_EQ(m->layers[4].in_width, 32);
  EXPECT_EQ(m->layers[4].out_width, 100);
}

TEST(ModelFormat, RoundTrips) {
  Result<Model> m = ModelFromJson(SmallModelJson());
  ASSERT_TRUE(m.ok());
  const Json again = ModelToJson(*m);
  Result<Model> m2 = ModelFromJson(again);
  ASSERT_TRUE(m2.ok()) << m2.message();
  EXPECT_EQ(DumpJson(ModelToJson(*m2)), DumpJson(again));
  ASSERT_EQ(m2->layers.size(), m->layers.size());
  for (size_t i = 0; i < m->layers.size(); ++i) {
    EXPECT_EQ(m2->layers[i].name, m->layers[i].name);
    EXPECT_EQ(LayerParamCount(m2->layers[i]), LayerParamCount(m->layers[i]));
  }
}

TEST(ModelFormat, RejectsMissingAndMistypedFields) {
  Json doc = SmallModelJson();
  doc["layers"][1].erase("heads");
  ExpectModelError(doc, {"layers[1].heads", "missing"});

  doc = SmallModelJson();
  doc["layers"][2]["hidden"] = "32";
  ExpectModelError(doc, {"layers[2].hidden", "must be an integer", "a string"});

  doc = SmallModelJson();
  doc.erase("input");
  ExpectModelError(doc, {"input", "missing"});

  doc = SmallModelJson();
  doc["layers"][0]["hidden"] = 32.5;
  ExpectModelError(doc, {"layers[0].hidden", "integer"});

  doc = SmallModelJson();
  doc["layers"][1]["causal"] = 1;
  ExpectModelError(doc, {"layers[1].causal", "true or false"});
}

TEST(ModelFormat, RejectsUnknownFormatAndOp) {
  Json doc = SmallModelJson();
  doc["format"] = "pp-partition.model/v2";
  ExpectModelError(doc, {"format", "unknown format", "pp-partition.model/v1"});

  doc = SmallModelJson();
  doc["layers"][2]["op"] = "batchnorm";
  ExpectModelError(doc, {"layers[2].op", "unknown op", "batchnorm"});
}

TEST(ModelFormat, RejectsZeroAndNegativeDimensions) {
  for (int64_t bad : {int64_t{0}, int64_t{-5}}) {
    Json doc = SmallModelJson();
    doc["layers"][1]["hidden"] = bad;
    ExpectModelError(doc, {"layers[1].hidden", "positive integer", std::to_string(bad)});
  }
  Json doc = SmallModelJson();
  doc["input"]["micro_batch_size"] = 0;
  ExpectModelError(doc, {"input.micro_batch_size", "positive"});
}

TEST(ModelFormat, RejectsBadNames) {
  Json doc = SmallModelJson();
  doc["layers"][2]["name"] = std::string(257, 'x');
  ExpectModelError(doc, {"layers[2].name", "257 characters", "at most 256"});

  doc = SmallModelJson();
  doc["name"] = "";
  ExpectModelError(doc, {"name", "empty"});

  doc = SmallModelJson();
  doc["layers"][2]["name"] = "embed";
  ExpectModelError(doc, {"layers[2].name", "duplicate", "embed"});

  // A repeat's expanded names collide with a plain layer's.
  doc = SmallModelJson();
  doc["layers"][2]["name"] = "block.1";
  ExpectModelError(doc, {"layers[2].name", "duplicate", "block.1"});
}

TEST(ModelFormat, RejectsEmptyAndOversizedModels) {
  Json doc = SmallModelJson();
  doc["layers"] = Json::array();
  ExpectModelError(doc, {"layers", "no layers"});

  doc = SmallModelJson();
  doc["layers"][1]["repeat"] = 1000000000000LL;
  ExpectModelError(doc, {"layers[1].repeat", "100000"});

  // Within the per-spec bound, but the expanded total passes 100,000.
  doc = SmallModelJson();
  doc["layers"][1]["repeat"] = 99999;
  doc["layers"][2]["repeat"] = 5;
  ExpectModelError(doc, {"layers[2].repeat", "more than 100000 layers"});
}

TEST(ModelFormat, RejectsShapeMismatches) {
  Json doc = SmallModelJson();
  doc["layers"][2]["hidden"] = 64;
  ExpectModelError(doc, {"layers[2].hidden", "64", "width 32"});

  doc = SmallModelJson();
  doc["layers"][1]["heads"] = 5;
  ExpectModelError(doc, {"layers[1].heads", "do not divide"});

  doc = SmallModelJson();
  doc["layers"][3]["tied_to"] = "nothing";
  ExpectModelError(doc, {"layers[3].tied_to", "no layer named"});

  doc = SmallModelJson();
  doc["layers"].erase(4);
  doc["layers"].insert(doc["layers"].begin() + 2, Json{{"name", "loss"}, {"op", "mse"}});
  ExpectModelError(doc, {"layers[2].op", "last layer"});
}

TEST(ModelFormat, ParamCountsTiedWeightOnce) {
  Result<Model> m = ModelFromJson(SmallModelJson());
  ASSERT_TRUE(m.ok());
  const int64_t h = 32, v = 100, f = 128;
  const int64_t embed = (v + 16) * h;
  const int64_t block = 2 * 2 * h + 4 * h * h + 4 * h + 2 * h * f + f + h;
  const int64_t ln = 2 * h;
  EXPECT_EQ(ModelParamCount(*m), embed + 2 * block + ln);
  EXPECT_EQ(LayerParamCount(m->layers[4]), h * v);  // the head holds its own copy
  // Of which it shares the whole weight with the embedding; at tp 3 its third of the columns
  // (ceil(100 / 3) = 34), and in bytes that share of its own (bias-free) bytes.
  EXPECT_EQ(TiedParamCount(m->layers[4], {}), h * v);
  ShardDegrees tp3;
  tp3.tp = 3;
  EXPECT_EQ(TiedParamCount(m->layers[4], tp3), h * 34);
  EXPECT_EQ(TiedParamBytes(m->layers[4], tp3, 2 * h * 34), uint64_t{2} * h * 34);
  EXPECT_EQ(TiedParamCount(m->layers[3], {}), 0);  // untied: the final norm
}

Profile SmallProfile() {
  Profile p;
  p.model = "tiny";
  p.backend = "analytic";
  p.device = {"Test GPU", 1000};
  p.micro_batch_size = 2;
  p.link = {1e9, 0.5};
  for (int i = 0; i < 3; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.op = "linear";
    l.forward_ms = 0.1 * (i + 1);
    l.backward_ms = 0.3 * (i + 1);
    l.backward_input_ms = 0.1;
    l.backward_weight_ms = l.backward_ms - 0.1;
    l.param_bytes = 100 + static_cast<uint64_t>(i);
    l.expert_param_bytes = static_cast<uint64_t>(40 * i);  // absent from the file when 0
    l.activation_bytes = 7;
    l.output_bytes = 9;
    p.layers.push_back(l);
  }
  p.layers[2].tied_to = "l0";  // absent from the file when untied
  p.layers[2].tied_param_bytes = 60;
  p.measured_at = "2026-11-28";
  return p;
}

TEST(ProfileFormat, RoundTripsBitExactly) {
  const Profile p = SmallProfile();
  const Json doc = ProfileToJson(p);
  Result<Profile> back = ProfileFromJson(Json::parse(DumpJson(doc)));
  ASSERT_TRUE(back.ok()) << back.message();
  ASSERT_EQ(back->layers.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back->layers[i].forward_ms, p.layers[i].forward_ms);  // bit-exact doubles
    EXPECT_EQ(back->layers[i].backward_ms, p.layers[i].backward_ms);
    EXPECT_EQ(*back->layers[i].backward_weight_ms, *p.layers[i].backward_weight_ms);
    EXPECT_EQ(back->layers[i].param_bytes, p.layers[i].param_bytes);
    EXPECT_EQ(back->layers[i].expert_param_bytes, p.layers[i].expert_param_bytes);
  }
  EXPECT_FALSE(doc["layers"][0].contains("expert_param_bytes"));
  EXPECT_FALSE(doc["layers"][0].contains("tied_to"));
  EXPECT_EQ(back->layers[2].tied_to, "l0");
  EXPECT_EQ(back->layers[2].tied_param_bytes, 60u);
  EXPECT_EQ(back->link.latency_ms, 0.5);
  EXPECT_EQ(*back->measured_at, "2026-11-28");
  EXPECT_EQ(DumpJson(ProfileToJson(*back)), DumpJson(doc));
}

// Recomputation modules: core_attn in its own two fields, the others under
// "recompute_modules"; read back alike; bad names, figures and sums refused naming the field.
TEST(ProfileFormat, RecomputationModulesRoundTripAndAreChecked) {
  Profile p = SmallProfile();
  p.layers[1].activation_bytes = 100;
  p.layers[1].module(RecomputeModule::kCoreAttn) = ModuleFigures{0.25, 10};
  p.layers[1].module(RecomputeModule::kMoe) = ModuleFigures{0.5, 60};
  p.layers[1].module(RecomputeModule::kMoeAct) = ModuleFigures{0.125, 50};
  const Json doc = ProfileToJson(p);
  EXPECT_EQ(doc["layers"][1]["core_attention_bytes"], 10);
  EXPECT_EQ(doc["layers"][1]["recompute_modules"]["moe_act"]["forward_ms"], 0.125);
  EXPECT_FALSE(doc["layers"][1]["recompute_modules"].contains("core_attn"));
  EXPECT_FALSE(doc["layers"][0].contains("recompute_modules"));
  Result<Profile> back = ProfileFromJson(Json::parse(DumpJson(doc)));
  ASSERT_TRUE(back.ok()) << back.message();
  for (int m = 0; m < kRecomputeModuleCount; ++m) {
    const auto module = static_cast<RecomputeModule>(m);
    ASSERT_EQ(back->layers[1].module(module).has_value(), p.layers[1].module(module).has_value());
    if (!p.layers[1].module(module)) continue;
    EXPECT_EQ(back->layers[1].module(module)->forward_ms, p.layers[1].module(module)->forward_ms);
    EXPECT_EQ(back->layers[1].module(module)->bytes, p.layers[1].module(module)->bytes);
  }
  // moe holds moe_act: 10 + 60 dropped, not 10 + 60 + 50.
  const ModuleFigures all = back->layers[1].Selective(RecomputeModules::All());
  EXPECT_EQ(all.bytes, 70u);
  EXPECT_EQ(all.forward_ms, 0.75);

  const struct {
    Json modules;
    const char* expect;
  } bad[] = {
      {{{"attention", {{"forward_ms", 1}, {"bytes", 1}}}}, "unknown module"},
      {{{"core_attn", {{"forward_ms", 1}, {"bytes", 1}}}}, "core_attention_ms"},
      {{{"mlp", 3}}, "must be an object"},
      {{{"mlp", {{"forward_ms", -1}, {"bytes", 1}}}}, "recompute_modules.mlp.forward_ms"},
      {{{"mlp", {{"forward_ms", 1}, {"bytes", 101}}}}, "more than activation_bytes"},
      {{{"mlp", {{"forward_ms", 1e10}, {"bytes", 1}}}}, "over 1e9 ms"},
      // Together more than the layer keeps: mlp and layernorm, 40 + 50 + core's 10 + 1.
      {{{"mlp", {{"forward_ms", 1}, {"bytes", 41}}},
        {"layernorm", {{"forward_ms", 1}, {"bytes", 50}}}},
       "drop more together"},
      {Json::array({1}), "must be an object"},
  };
  for (const auto& c : bad) {
    Json d = doc;
    d["layers"][1]["recompute_modules"] = c.modules;
    Result<Profile> r = ProfileFromJson(d);
    ASSERT_FALSE(r.ok()) << c.modules.dump();
    EXPECT_NE(r.message().find("layers[1].recompute_modules"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << r.message();
  }
}

// A multi-token prediction block is marked "mtp" (a transformer_block), absent otherwise.
TEST(ProfileFormat, MultiTokenPredictionBlocksAreMarked) {
  Profile p = SmallProfile();
  p.layers[1].op = "transformer_block";
  p.layers[1].mtp = true;
  const Json doc = ProfileToJson(p);
  EXPECT_EQ(doc["layers"][1]["mtp"], true);
  EXPECT_FALSE(doc["layers"][0].contains("mtp"));
  Result<Profile> back = ProfileFromJson(Json::parse(DumpJson(doc)));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_TRUE(back->layers[1].mtp);
  EXPECT_FALSE(back->layers[0].mtp);
  Json bad = doc;
  bad["layers"][0]["mtp"] = true;  // a linear
  Result<Profile> r = ProfileFromJson(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("layers[0].mtp: a multi-token prediction block has op"),
            std::string::npos)
      << r.message();
}

TEST(ProfileFormat, RejectsBadTimesAndBytes) {
  const Json good = ProfileToJson(SmallProfile());
  struct Case {
    const char* field;
    Json value;
    const char* expect;
  } cases[] = {
      {"forward_ms", -1.0, "finite number >= 0"},
      {"backward_ms", std::numeric_limits<double>::infinity(), "finite"},
      {"forward_ms", std::numeric_limits<double>::quiet_NaN(), "finite"},
      {"forward_ms", "fast", "must be a number"},
      {"param_bytes", -3, "must not be negative"},
      {"activation_bytes", 1.5, "whole number of bytes"},
      {"output_bytes", 18014398509481984ULL, "2^53"},
      {"expert_param_bytes", 102, "more than param_bytes"},
      {"expert_param_bytes", -1, "must not be negative"},
  };
  for (const Case& c : cases) {
    Json doc = good;
    doc["layers"][1][c.field] = c.value;
    Result<Profile> p = ProfileFromJson(doc);
    ASSERT_FALSE(p.ok()) << c.field;
    EXPECT_NE(p.message().find(std::string("layers[1].") + c.field), std::string::npos)
        << p.message();
    EXPECT_NE(p.message().find(c.expect), std::string::npos) << p.message();
  }
  // Text with an overflowing number is refused by the parser itself.
  std::string text = DumpJson(good);
  text.replace(text.find("\"forward_ms\": "), 14, "\"forward_ms\": 1e999, \"x\": ");
  EXPECT_FALSE(ParseJsonText(text).ok());

  // A tie: both fields or neither, no more than the layer's bytes or the other layer's, and a
  // layer of the profile other than itself.
  const struct {
    int layer;
    const char* field;
    Json value;
    const char* expect;
  } ties[] = {
      {2, "tied_param_bytes", 103, "more than param_bytes"},
      {2, "tied_param_bytes", 0, "come together"},
      {1, "tied_param_bytes", 5, "come together"},
      {2, "tied_to", "l9", "not a layer of the profile"},
      {2, "tied_to", "l2", "the layer itself"},
  };
  for (const auto& c : ties) {
    Json doc = good;
    doc["layers"][c.layer][c.field] = c.value;
    Result<Profile> p = ProfileFromJson(doc);
    ASSERT_FALSE(p.ok()) << c.field << " " << c.value;
    EXPECT_NE(p.message().find("layers[" + std::to_string(c.layer) + "]."), std::string::npos)
        << p.message();
    EXPECT_NE(p.message().find(c.expect), std::string::npos) << p.message();
  }
  Json doc = good;
  doc["layers"][0]["param_bytes"] = 50;  // fewer than the 60 bytes l2 shares with it
  Result<Profile> p = ProfileFromJson(doc);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("layers[2].tied_to"), std::string::npos) << p.message();
  EXPECT_NE(p.message().find("fewer param_bytes"), std::string::npos) << p.message();

  doc = good;
  doc["layers"][2]["name"] = "l0";
  p = ProfileFromJson(doc);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("duplicate"), std::string::npos);

  doc = good;
  doc["link"]["bandwidth_bytes_per_s"] = 0;
  p = ProfileFromJson(doc);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("link.bandwidth_bytes_per_s"), std::string::npos) << p.message();
}

Plan SmallPlan() {
  Plan plan;
  plan.tool_version = "test";
  plan.model = "tiny";
  plan.schedule = "1f1b";
  plan.num_stages = 2;
  plan.num_micro_batches = 4;
  plan.micro_batch_size = 2;
  plan.method = "given";
  plan.objective = "bottleneck";
  plan.memory_limit_bytes = 1000;
  plan.boundaries = {1};
  plan.profile = SmallProfile();
  for (int s = 0; s < 2; ++s) {
    StagePlan st;
    st.index = s;
    st.first_layer = s == 0 ? 0 : 1;
    st.last_layer = s == 0 ? 0 : 2;
    st.layer_names = s == 0 ? std::vector<std::string>{"l0"} : std::vector<std::string>{"l1", "l2"};
    st.forward_ms = 0.25;
    plan.stages.push_back(st);
  }
  plan.predicted = {12.5, 0.25, 640.0, 1, 3.5};
  return plan;
}

TEST(PlanFormat, RoundTripsWithEmbeddedProfileAndModel) {
  Plan plan = SmallPlan();
  const Json doc = PlanToJson(plan);
  for (const char* key : {"format", "model", "schedule", "num_stages", "num_micro_batches",
                          "micro_batch_size", "method", "objective", "boundaries", "stages",
                          "memory_limit_bytes", "predicted", "profile"}) {
    EXPECT_TRUE(doc.contains(key)) << key;
  }
  Result<Plan> back = PlanFromJson(Json::parse(DumpJson(doc)));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(DumpJson(PlanToJson(*back)), DumpJson(doc));
  EXPECT_EQ(back->predicted.step_time_ms, 12.5);
  EXPECT_EQ(back->stages[1].layer_names[1], "l2");

  plan.memory_limit_bytes.reset();
  Result<Plan> none = PlanFromJson(PlanToJson(plan));
  ASSERT_TRUE(none.ok()) << none.message();
  EXPECT_FALSE(none->memory_limit_bytes.has_value());
}

// "recompute_modules": only beside recompute_unit "selective", Megatron-LM's names each once.
TEST(PlanFormat, RecomputeModulesGoWithSelectiveRecomputation) {
  Plan plan = SmallPlan();
  plan.recompute_unit = RecomputeUnit::kSelective;
  Json doc = PlanToJson(plan);
  EXPECT_EQ(doc["recompute_modules"], Json::array({"core_attn"}));  // the default, written
  doc["recompute_modules"] = Json::array({"shared_experts", "moe_act"});
  Result<Plan> back = PlanFromJson(doc);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(
      back->recompute_modules,
      RecomputeModules().With(RecomputeModule::kMoeAct).With(RecomputeModule::kSharedExperts));
  doc.erase("recompute_modules");
  back = PlanFromJson(doc);  // an older plan: the core attention
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->recompute_modules, RecomputeModules::Default());
  const struct {
    const char* unit;
    Json modules;
    const char* expect;
  } bad[] = {
      {"layer", Json::array({"mlp"}), "only with recompute_unit \"selective\""},
      {"selective", Json::array({"mlp", "mlp"}), "named twice"},
      {"selective", Json::array({"attention"}), "unknown module"},
      {"selective", Json::array(), "names no module"},
      {"selective", Json::array({3}), "array of module names"},
      {"selective", "mlp", "must be an array"},
  };
  for (const auto& c : bad) {
    Json d = PlanToJson(plan);
    d["recompute_unit"] = c.unit;
    d["recompute_modules"] = c.modules;
    Result<Plan> r = PlanFromJson(d);
    ASSERT_FALSE(r.ok()) << c.modules.dump();
    EXPECT_NE(r.message().find("recompute_modules"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << r.message();
  }
}

TEST(PlanFormat, RejectsInconsistentBoundaries) {
  Json doc = PlanToJson(SmallPlan());
  doc["boundaries"] = Json::array({3});
  Result<Plan> p = PlanFromJson(doc);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("boundaries[0]"), std::string::npos) << p.message();

  doc = PlanToJson(SmallPlan());
  doc["num_stages"] = 4;
  p = PlanFromJson(doc);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("more than the 3 layers"), std::string::npos) << p.message();

  doc = PlanToJson(SmallPlan());
  doc["stages"][1]["first_layer"] = 2;
  p = PlanFromJson(doc);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("stages[1].first_layer"), std::string::npos) << p.message();

  doc = PlanToJson(SmallPlan());
  doc["profile"]["layers"][0]["forward_ms"] = -2;
  p = PlanFromJson(doc);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("profile.layers[0].forward_ms"), std::string::npos) << p.message();
}

TEST(JsonSafety, RejectsDeepNestingTruncationAndGarbage) {
  Result<Json> deep = ParseJsonText(std::string(100000, '[') + std::string(100000, ']'));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.message().find("nests deeper"), std::string::npos);

  Result<Json> truncated = ParseJsonText("{\"format\": \"pp-partition.model/v1\", \"name\": ");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.message().find("line 1"), std::string::npos) << truncated.message();

  Result<Json> second_line = ParseJsonText("{\n  \"a\": tru }");
  ASSERT_FALSE(second_line.ok());
  EXPECT_NE(second_line.message().find("line 2"), std::string::npos) << second_line.message();

  // Brackets inside strings do not count as nesting.
  EXPECT_TRUE(ParseJsonText("{\"a\": \"" + std::string(1000, '[') + "\"}").ok());
}

TEST(Units, ParsesSizesAndTolerances) {
  EXPECT_EQ(**ParseByteSize("80GiB"), uint64_t{80} << 30);
  EXPECT_EQ(**ParseByteSize("80 GB"), uint64_t{80000000000});
  EXPECT_EQ(**ParseByteSize("85520809984"), uint64_t{85520809984});
  EXPECT_EQ(**ParseByteSize("1.5TiB"), uint64_t{3} << 39);
  EXPECT_FALSE(ParseByteSize("none")->has_value());
  EXPECT_FALSE(ParseByteSize("lots").ok());
  EXPECT_FALSE(ParseByteSize("-5GiB").ok());
  EXPECT_FALSE(ParseByteSize("80 parsecs").ok());
  EXPECT_DOUBLE_EQ(*ParseFraction("2%"), 0.02);
  EXPECT_DOUBLE_EQ(*ParseFraction("0.05"), 0.05);
  EXPECT_FALSE(ParseFraction("2%%").ok());
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
}

}  // namespace
}  // namespace pp
