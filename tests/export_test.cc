// Export targets on real plans (GPT-2 XL and Llama-7B at 2, 4 and 8 stages, analytic h100
// profiles): the Megatron-LM layout is re-parsed here with the documented rules, Python
// snippets must compile, balance lists must add up, and splits Megatron-LM cannot express
// must be refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <sstream>

#include "core/json_util.h"
#include "core/model.h"
#include "partitioner/export/exporter.h"
#include "partitioner/planner.h"
#include "profiler/analytic.h"
#include "profiler/device_table.h"
#include "tests/test_util.h"

namespace pp {
namespace {

// With `virtual_stages` > 1, the interleaved schedule with that many chunks per device.
Plan MakeTestPlan(const Result<Model>& model, int stages, const std::string& method = "dp",
                  std::vector<int> boundaries = {}, int virtual_stages = 1) {
  EXPECT_TRUE(model.ok()) << model.message();
  Result<Profile> profile = AnalyticProfile(*model, *FindDevice("h100"), {});
  EXPECT_TRUE(profile.ok()) << profile.message();
  PlanRequest request;
  request.profile = *profile;
  request.model = *model;
  request.num_stages = stages;
  request.num_micro_batches = 4 * stages;
  request.method = boundaries.empty() ? method : "given";
  request.boundaries = boundaries;
  if (virtual_stages > 1) {
    request.schedule = "interleaved";
    request.virtual_stages = virtual_stages;
  }
  Result<Plan> plan = MakePlan(request);
  EXPECT_TRUE(plan.ok()) << plan.message();
  return *plan;
}

Plan MakeTestPlan(const std::string& model_file, int stages, const std::string& method = "dp",
                  std::vector<int> boundaries = {}, int virtual_stages = 1) {
  return MakeTestPlan(LoadModel(std::string(PP_SOURCE_DIR) + "/models/" + model_file), stages,
                      method, std::move(boundaries), virtual_stages);
}

std::string Export(const Plan& plan, const std::string& target, ExportOptions options = {}) {
  Result<std::string> text = FindExporter(target)->Export(plan, options);
  EXPECT_TRUE(text.ok()) << target << ": " << text.message();
  return text.ok() ? *text : "";
}

bool HavePython() { return std::system("python3 --version >/dev/null 2>&1") == 0; }

// True when python3 -m py_compile accepts `source`.
bool PyCompiles(const std::string& source) {
  const std::string dir = testing::TempDir();
  testing::WriteText(dir + "/snippet.py", source);
  const int rc = std::system(("python3 -m py_compile '" + dir + "/snippet.py'").c_str());
  std::filesystem::remove_all(dir);
  return rc == 0;
}

// The value after `flag ` on its own line, or -1.
int FlagValue(const std::string& text, const std::string& flag) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("(^|\n)" + flag + " (\\d+)\n"))) return -1;
  return std::stoi(m[2]);
}

// Blocks per stage as Megatron-LM reads the arguments: a layout ("|" between stages, E
// first and only there, L last and only there, t or t*k), else the first/last stage
// counts with the rest divided evenly, else an even split. Fails the test on a rule broken.
std::vector<int> MegatronBlocks(const std::string& text) {
  const int p = FlagValue(text, "--pipeline-model-parallel-size");
  const int n = FlagValue(text, "--num-layers");
  EXPECT_GT(p, 0);
  EXPECT_GT(n, 0);
  std::vector<int> blocks;
  std::smatch m;
  if (std::regex_search(text, m, std::regex("--pipeline-model-parallel-layout \"([^\"]*)\""))) {
    const std::string layout = m[1];
    std::stringstream in(layout);
    std::string stage;
    int e_count = 0, l_count = 0;
    while (std::getline(in, stage, '|')) {
      const bool first = blocks.empty();
      size_t i = 0;
      if (i < stage.size() && stage[i] == 'E') {
        ++e_count;
        ++i;
        EXPECT_TRUE(first) << layout;
      }
      int t = 0;
      if (i < stage.size() && stage[i] == 't') {
        ++i;
        t = 1;
        if (i < stage.size() && stage[i] == '*') {
          size_t used = 0;
          t = std::stoi(stage.substr(i + 1), &used);
          i += 1 + used;
        }
      }
      if (i < stage.size() && stage[i] == 'L') {
        ++l_count;
        ++i;
      }
      EXPECT_EQ(i, stage.size()) << "bad stage \"" << stage << "\" in " << layout;
      blocks.push_back(t);
    }
    EXPECT_EQ(e_count, 1) << layout;
    EXPECT_EQ(l_count, 1) << layout;
    EXPECT_EQ(layout.front(), 'E');
    EXPECT_EQ(layout.back(), 'L');
    EXPECT_EQ(static_cast<int>(blocks.size()), p) << layout;
  } else {
    const int a = FlagValue(text, "--decoder-first-pipeline-num-layers");
    const int b = FlagValue(text, "--decoder-last-pipeline-num-layers");
    int rest = n, middle = p;
    if (a >= 0) rest -= a, --middle;
    if (b >= 0) rest -= b, --middle;
    if (middle > 0) EXPECT_EQ(rest % middle, 0) << text;
    else EXPECT_EQ(rest, 0) << text;
    for (int s = 0; s < p; ++s) {
      if (s == 0 && a >= 0) blocks.push_back(a);
      else if (s == p - 1 && b >= 0) blocks.push_back(b);
      else blocks.push_back(middle > 0 ? rest / middle : 0);
    }
  }
  int sum = 0;
  for (int t : blocks) sum += t;
  EXPECT_EQ(sum, n) << text;
  return blocks;
}

// Blocks per stage counted from the plan's layer names ("block.K").
std::vector<int> PlanBlocks(const Plan& plan) {
  std::vector<int> blocks;
  for (const StagePlan& s : plan.stages) {
    int t = 0;
    for (const std::string& name : s.layer_names) t += name.rfind("block.", 0) == 0 ? 1 : 0;
    blocks.push_back(t);
  }
  return blocks;
}

struct Case {
  std::string model;
  int stages;
};

class EachPlan : public ::testing::TestWithParam<Case> {};

TEST_P(EachPlan, MegatronArgumentsGiveThePlansBlockCounts) {
  const Plan plan = MakeTestPlan(GetParam().model, GetParam().stages);
  const std::string text = Export(plan, "megatron");
  EXPECT_EQ(MegatronBlocks(text), PlanBlocks(plan)) << text;
}

TEST_P(EachPlan, PythonSnippetsCompile) {
  if (!HavePython()) GTEST_SKIP() << "python3 is not installed";
  const Plan plan = MakeTestPlan(GetParam().model, GetParam().stages);
  ExportOptions options;
  options.module_prefixes = {{"block", "transformer.h"}, {"embed", "transformer.wte"}};
  for (const char* target : {"deepspeed", "torch", "gpipe", "torchtitan"}) {
    EXPECT_TRUE(PyCompiles(Export(plan, target, options))) << target;
  }
}

TEST_P(EachPlan, BalanceAndPartsMatchTheStages) {
  const Plan plan = MakeTestPlan(GetParam().model, GetParam().stages);
  const int n = static_cast<int>(plan.profile.layers.size());
  std::smatch m;
  const std::string gpipe = Export(plan, "gpipe");
  ASSERT_TRUE(std::regex_search(gpipe, m, std::regex("\nbalance = \\[([0-9, ]+)\\]\n")));
  std::stringstream in(m[1].str());
  std::string item;
  int sum = 0;
  size_t s = 0;
  while (std::getline(in, item, ',')) {
    const int v = std::stoi(item);
    EXPECT_GT(v, 0);
    ASSERT_LT(s, plan.stages.size());
    EXPECT_EQ(v, static_cast<int>(plan.stages[s++].layer_names.size()));
    sum += v;
  }
  EXPECT_EQ(sum, n);
  EXPECT_EQ(s, plan.stages.size());

  std::string parts = "0";
  for (int b : plan.boundaries) parts += ", " + std::to_string(b);
  parts += ", " + std::to_string(n);
  EXPECT_NE(Export(plan, "deepspeed").find("PLAN_PARTS = [" + parts + "]\n"), std::string::npos);
}

TEST_P(EachPlan, TorchSplitPointsAreTheStagesFirstModules) {
  const Plan plan = MakeTestPlan(GetParam().model, GetParam().stages);
  ExportOptions options;
  options.module_prefixes = {{"block", "model.layers"}};
  const std::string text = Export(plan, "torch", options);
  const std::regex point("\"([^\"]+)\": SplitPoint\\.BEGINNING");
  std::vector<std::string> names;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), point);
       it != std::sregex_iterator(); ++it) {
    names.push_back((*it)[1]);
  }
  ASSERT_EQ(names.size(), plan.stages.size() - 1) << text;
  for (size_t s = 1; s < plan.stages.size(); ++s) {
    std::string expect = plan.stages[s].layer_names.front();
    if (expect.rfind("block.", 0) == 0) expect = "model.layers." + expect.substr(6);
    EXPECT_EQ(names[s - 1], expect);
  }
  EXPECT_NE(text.find("schedule_class = Schedule1F1B"), std::string::npos);
  const std::string titan = Export(plan, "torchtitan", options);
  EXPECT_EQ(std::count(titan.begin(), titan.end(), '['),
            static_cast<long>(plan.stages.size()) + 1);
}

INSTANTIATE_TEST_SUITE_P(Plans, EachPlan,
                         ::testing::Values(Case{"gpt2-xl.json", 2}, Case{"gpt2-xl.json", 4},
                                           Case{"gpt2-xl.json", 8}, Case{"llama-7b.json", 2},
                                           Case{"llama-7b.json", 4}, Case{"llama-7b.json", 8}),
                         [](const auto& param_info) {
                           std::string name = param_info.param.model.substr(0, 5) + "_p" +
                                              std::to_string(param_info.param.stages);
                           for (char& c : name) c = std::isalnum(c) ? c : '_';
                           return name;
                         });

// gpt2-small: embed, block.0..11 (layers 1..12), ln_f 13, lm_head 14, loss 15.
TEST(Megatron, ChoosesTheShortestFormForTheSplit) {
  // 3 blocks per stage: Megatron-LM's default even split, no extra flags.
  std::string text = Export(MakeTestPlan("gpt2-small.json", 4, "", {4, 7, 10}), "megatron");
  EXPECT_EQ(text.find("--decoder-"), std::string::npos) << text;
  EXPECT_EQ(text.find("layout"), std::string::npos) << text;
  EXPECT_EQ(MegatronBlocks(text), (std::vector<int>{3, 3, 3, 3}));
  // 2 | 4 | 4 | 2: first and last differ from the middle.
  text = Export(MakeTestPlan("gpt2-small.json", 4, "", {3, 7, 11}), "megatron");
  EXPECT_NE(text.find("--decoder-first-pipeline-num-layers 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("--decoder-last-pipeline-num-layers 2\n"), std::string::npos) << text;
  // 2 | 3 | 5 | 2: the middle differs, so a layout.
  text = Export(MakeTestPlan("gpt2-small.json", 4, "", {3, 6, 11}), "megatron");
  EXPECT_NE(text.find("--pipeline-model-parallel-layout \"Et*2|t*3|t*5|t*2L\""),
            std::string::npos) << text;
  // The embedding alone and the tail alone.
  text = Export(MakeTestPlan("gpt2-small.json", 3, "", {1, 13}), "megatron");
  EXPECT_NE(text.find("\"E|t*12|L\""), std::string::npos) << text;
}

TEST(Megatron, RefusesWhatItCannotExpress) {
  auto refused = [](const Plan& plan, const std::string& why) {
    Result<std::string> r = FindExporter("megatron")->Export(plan, {});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("cannot be expressed"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(why), std::string::npos) << r.message();
  };
  // A cut between the final norm and the head.
  refused(MakeTestPlan("gpt2-small.json", 2, "", {14}), "between ln_f and lm_head");
  // BERT's embedding layernorm has no letter.
  refused(MakeTestPlan("bert-large.json", 2), "embed_ln");
  // No model_spec and no profile ops: unknown kinds.
  Plan plan = MakeTestPlan("gpt2-small.json", 2);
  plan.model_spec.reset();
  for (LayerProfile& l : plan.profile.layers) l.op.clear();
  refused(plan, "no known kind");
  // Without model_spec the profile's ops suffice.
  plan = MakeTestPlan("gpt2-small.json", 4, "", {4, 7, 10});
  plan.model_spec.reset();
  EXPECT_EQ(MegatronBlocks(Export(plan, "megatron")), (std::vector<int>{3, 3, 3, 3}));
}

// DeepSeek-V3 with its multi-token prediction block (layer 63, after the final norm at 62):
// m in Megatron-LM's layout, always given as a layout, with --mtp-num-layers; the final norm
// stays with the last block; torchtitan has no such module.
TEST(Megatron, MultiTokenPredictionIsAnMInTheLayout) {
  const Plan plan = MakeTestPlan("deepseek-v3.json", 4, "", {20, 40, 63});
  std::string text = Export(plan, "megatron");
  EXPECT_NE(text.find("--pipeline-model-parallel-layout \"Et*19|t*20|t*22|mL\"\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("--num-layers 61\n"), std::string::npos) << text;
  EXPECT_NE(text.find("--mtp-num-layers 1\n"), std::string::npos) << text;
  // Standalone: the block alone in one stage, the head and loss in the next.
  text = Export(MakeTestPlan("deepseek-v3.json", 5, "", {20, 40, 63, 64}), "megatron");
  EXPECT_NE(text.find("\"Et*19|t*20|t*22|m|L\""), std::string::npos) << text;
  // Evenly split blocks still get the layout (the first/last flags cannot place m).
  text = Export(MakeTestPlan("deepseek-v3.json", 2, "", {31}), "megatron");
  EXPECT_NE(text.find("\"Et*30|t*31mL\""), std::string::npos) << text;
  // Megatron-LM's even split counts the decoder's 61 blocks, the module with the loss.
  text = Export(MakeTestPlan("deepseek-v3.json", 2, "blocks"), "megatron");
  EXPECT_NE(text.find("\"Et*31|t*30mL\""), std::string::npos) << text;
  // A plan without its model: the profile says which block is the module.
  Plan from_profile = plan;
  from_profile.model_spec.reset();
  EXPECT_NE(Export(from_profile, "megatron").find("\"Et*19|t*20|t*22|mL\""), std::string::npos);

  auto refused = [](const Plan& p, const std::string& target, const std::string& why) {
    Result<std::string> r = FindExporter(target)->Export(p, {});
    ASSERT_FALSE(r.ok()) << target << ": " << why << "\n" << *r;
    EXPECT_NE(r.message().find("cannot be expressed"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(why), std::string::npos) << r.message();
  };
  // The final norm away from the last block.
  refused(MakeTestPlan("deepseek-v3.json", 4, "", {20, 40, 62}), "megatron",
          "between moe_block.57 and norm");
  // The head cut from the loss.
  refused(MakeTestPlan("deepseek-v3.json", 4, "", {20, 40, 65}), "megatron",
          "between lm_head and loss");
  refused(plan, "torchtitan", "multi-token prediction");

  // Interleaved, the module standalone in device 0's last chunk (chunk 2 of 4).
  EXPECT_NE(Export(MakeTestPlan("deepseek-v3.json", 2, "", {20, 63, 64}, 2), "megatron")
                .find("\"Et*19|t*42|m|L\""),
            std::string::npos);

  // Two prediction blocks, cut apart.
  Result<Json> doc = ReadJsonFile(std::string(PP_SOURCE_DIR) + "/models/deepseek-v3.json");
  ASSERT_TRUE(doc.ok()) << doc.message();
  for (Json& l : (*doc)["layers"]) {
    if (l["name"] == "mtp") l["repeat"] = 2;
  }
  const Result<Model> two = ModelFromJson(*doc);
  refused(MakeTestPlan(two, 4, "", {20, 40, 64}), "megatron", "apart (stage 2 holds 1 of 2)");
  EXPECT_NE(
      Export(MakeTestPlan(two, 4, "", {20, 40, 63}), "megatron").find("\"Et*19|t*20|t*22|m*2L\""),
      std::string::npos);
  EXPECT_NE(Export(MakeTestPlan(two, 4, "", {20, 40, 63}), "megatron").find("--mtp-num-layers 2\n"),
            std::string::npos);
}

TEST(DeepSpeed, NamesTheBuiltInMethodOnlyWhenItGivesTheSameSplit) {
  // DeepSpeed's uniform gives the first n mod p stages one more layer: 52 layers on 8
  // stages are 7,7,7,7,6,6,6,6, so parts 0,7,14,21,28,34,40,46,52.
  const Plan uniform = MakeTestPlan("gpt2-xl.json", 8, "", {7, 14, 21, 28, 34, 40, 46});
  EXPECT_NE(Export(uniform, "deepspeed").find("partition_method=\"uniform\""),
            std::string::npos);
  const Plan other = MakeTestPlan("gpt2-xl.json", 8, "", {6, 14, 21, 28, 34, 40, 46});
  const std::string text = Export(other, "deepspeed");
  EXPECT_EQ(text.find("partition_method=\"uniform\""), std::string::npos);
}

TEST(Export, JsonIsThePlanAndMarkdownHasARowPerStage) {
  const Plan plan = MakeTestPlan("llama-7b.json", 4);
  const std::string json = Export(plan, "json");
  EXPECT_EQ(json, DumpJson(PlanToJson(plan)));
  Result<Plan> back = PlanFromJson(Json::parse(json));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->boundaries, plan.boundaries);
  const std::string md = Export(plan, "md");
  for (int s = 0; s < 4; ++s) {
    EXPECT_NE(md.find("\n| " + std::to_string(s) + " | "), std::string::npos) << md;
  }
}

TEST(Export, ModulePrefixes) {
  ExportOptions options;
  ASSERT_TRUE(ParseModulePrefix("block=transformer.h").ok());
  options.module_prefixes = {*ParseModulePrefix("block=transformer.h"),
                             *ParseModulePrefix("block.1=special")};
  EXPECT_EQ(ModuleName("block.4", options), "transformer.h.4");
  EXPECT_EQ(ModuleName("block.1", options), "special");  // the longest prefix wins
  EXPECT_EQ(ModuleName("block.10", options), "transformer.h.10");
  EXPECT_EQ(ModuleName("blocky", options), "blocky");
  EXPECT_FALSE(ParseModulePrefix("noequals").ok());
  EXPECT_FALSE(ParseModulePrefix("a=b c").ok());
}

// The lists of module_fqns_per_model_part, one per model part.
std::vector<std::vector<std::string>> TitanParts(const std::string& text) {
  std::vector<std::vector<std::string>> parts;
  std::stringstream in(text);
  std::string line;
  const std::regex quoted("\"([^\"]*)\"");
  while (std::getline(in, line)) {
    if (line.rfind("    [", 0) != 0) continue;
    parts.emplace_back();
    for (auto it = std::sregex_iterator(line.begin(), line.end(), quoted);
         it != std::sregex_iterator(); ++it) {
      parts.back().push_back((*it)[1]);
    }
  }
  return parts;
}

// The error message of exporting `plan` to torchtitan without --module-prefix ("" on success).
std::string TitanRefusal(const Plan& plan) {
  Result<std::string> text = FindExporter("torchtitan")->Export(plan, {});
  return text.ok() ? "" : text.message();
}

// torchtitan's decoder builds tok_embeddings, the ModuleDict `layers` with keys "0" ... "L-1",
// norm and lm_head; its pipeline split keeps only the modules a stage names, so every stage's
// names must come from this list, all of them once, in order.
TEST(TorchTitan, LlamaGetsTorchTitansModuleNames) {
  const Json spec = Json::parse(testing::ReadText(std::string(PP_SOURCE_DIR) +
                                                  "/models/llama-7b.json"));
  const int blocks = spec["layers"][1]["repeat"].get<int>();
  std::vector<std::string> decoder = {"tok_embeddings"};
  for (int k = 0; k < blocks; ++k) decoder.push_back("layers." + std::to_string(k));
  decoder.push_back("norm");
  decoder.push_back("lm_head");
  for (int p : {2, 4, 8}) {
    const Plan plan = MakeTestPlan("llama-7b.json", p);
    const std::string text = Export(plan, "torchtitan");
    const std::vector<std::vector<std::string>> parts = TitanParts(text);
    ASSERT_EQ(parts.size(), plan.stages.size()) << text;
    std::vector<std::string> all;
    for (size_t s = 0; s < parts.size(); ++s) {
      // The layers of stage s, the loss (the last layer) left out.
      const int last = std::min(plan.stages[s].last_layer, static_cast<int>(decoder.size()) - 1);
      EXPECT_EQ(parts[s], std::vector<std::string>(decoder.begin() + plan.stages[s].first_layer,
                                                   decoder.begin() + last + 1))
          << "stage " << s << "\n" << text;
      all.insert(all.end(), parts[s].begin(), parts[s].end());
    }
    EXPECT_EQ(all, decoder) << text;
    if (HavePython()) {
      EXPECT_TRUE(PyCompiles(text)) << text;
    }
  }
}

Json SmallLlamaJson() {
  return Json::parse(R"({
    "format": "pp-partition.model/v1", "name": "small-llama", "source": "test", "dtype": "bf16",
    "input": {"micro_batch_size": 2, "seq_len": 16},
    "layers": [
      {"name": "embed", "op": "embedding", "vocab": 100, "hidden": 32},
      {"name": "block", "op": "transformer_block", "hidden": 32, "heads": 4, "ffn": 64,
       "norm": "rmsnorm", "mlp": "swiglu", "bias": false, "causal": true, "rotary": true,
       "repeat": 3},
      {"name": "norm", "op": "rmsnorm", "hidden": 32},
      {"name": "lm_head", "op": "linear", "in": 32, "out": 100, "bias": false},
      {"name": "loss", "op": "cross_entropy"}]})");
}

TEST(TorchTitan, RefusesLayersWithNoTorchTitanName) {
  // torchtitan has no GPT-2 or BERT: their embeddings carry learned positions.
  for (const char* file : {"gpt2-xl.json", "bert-large.json"}) {
    const std::string why = TitanRefusal(MakeTestPlan(file, 4));
    EXPECT_NE(why.find("cannot be expressed"), std::string::npos) << file << ": " << why;
    EXPECT_NE(why.find("layer \"embed\" has no torchtitan module name"), std::string::npos)
        << file << ": " << why;
    EXPECT_NE(why.find("--module-prefix"), std::string::npos) << why;
  }
  // The small Llama is torchtitan's: the test model itself is fine.
  EXPECT_EQ(TitanRefusal(MakeTestPlan(ModelFromJson(SmallLlamaJson()), 2)), "");
  // A block with biases after three without: the first one that fits no module is named.
  Json biased = SmallLlamaJson();
  Json extra = biased["layers"][1];
  extra.erase("repeat");
  extra["name"] = "biased";
  extra["bias"] = true;
  biased["layers"].insert(biased["layers"].begin() + 2, extra);
  std::string why = TitanRefusal(MakeTestPlan(ModelFromJson(biased), 2));
  EXPECT_NE(why.find("layer \"biased\" has no torchtitan module name"), std::string::npos) << why;
  // A layernorm block.
  Json layernorm = SmallLlamaJson();
  layernorm["layers"][1]["norm"] = "layernorm";
  why = TitanRefusal(MakeTestPlan(ModelFromJson(layernorm), 2));
  EXPECT_NE(why.find("layer \"block.0\" has no torchtitan module name"), std::string::npos)
      << why;
  // No final norm: the head is where torchtitan expects its norm.
  Json no_norm = SmallLlamaJson();
  no_norm["layers"].erase(2);
  why = TitanRefusal(MakeTestPlan(ModelFromJson(no_norm), 2));
  EXPECT_NE(why.find("layer \"lm_head\" has no torchtitan module name"), std::string::npos)
      << why;
  // A plan from a profile file has no model_spec to match by.
  Plan from_profile = MakeTestPlan("llama-7b.json", 2);
  from_profile.model_spec.reset();
  why = TitanRefusal(from_profile);
  EXPECT_NE(why.find("layer \"embed\" has no known torchtitan module name"), std::string::npos)
      << why;
}

TEST(TorchTitan, ModulePrefixesNameAnyModel) {
  ExportOptions options;
  options.module_prefixes = {{"block", "transformer.h"}, {"embed", "transformer.wte"}};
  const Plan plan = MakeTestPlan("gpt2-small.json", 2, "", {7});
  const std::vector<std::vector<std::string>> parts =
      TitanParts(Export(plan, "torchtitan", options));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].front(), "transformer.wte");
  EXPECT_EQ(parts[0].back(), "transformer.h.5");
  EXPECT_EQ(parts[1].front(), "transformer.h.6");
  EXPECT_EQ(parts[1].back(), "lm_head");  // no prefix matches: kept
}

TEST(TorchTitan, CliExitsTwoWithOneLine) {
  const std::string dir = testing::TempDir();
  ASSERT_EQ(testing::RunTool("plan models/gpt2-small.json --stages 2 --micro-batches 4 -o " +
                             dir + "/plan.json")
                .exit_code,
            0);
  const testing::CommandResult r =
      testing::RunTool("export " + dir + "/plan.json --to torchtitan -o " + dir + "/titan.py");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("layer \"embed\""), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/titan.py"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp

// ---- Exports of plans with a layout ----

namespace pp {
namespace {

Plan LayoutPlan(int zero, int stages = 4) {
  Plan plan = MakeTestPlan("llama-7b.json", stages);
  ParallelLayout l;
  l.tp = 2;
  l.pp = stages;
  l.dp = 4;
  l.zero = zero;
  plan.parallelism = l;
  return plan;
}

TEST(LayoutExport, MegatronFlagsCarryTheDegreesAndSharding) {
  const Plan plan = LayoutPlan(1);
  const std::string text = Export(plan, "megatron");
  EXPECT_EQ(FlagValue(text, "--tensor-model-parallel-size"), 2) << text;
  EXPECT_EQ(FlagValue(text, "--context-parallel-size"), 1) << text;
  EXPECT_EQ(FlagValue(text, "--expert-model-parallel-size"), 1) << text;
  EXPECT_EQ(FlagValue(text, "--pipeline-model-parallel-size"), 4) << text;
  // Megatron-LM's global batch: micro-batch size x micro-batches x data-parallel ranks.
  EXPECT_EQ(FlagValue(text, "--global-batch-size"),
            plan.micro_batch_size * plan.num_micro_batches * 4) << text;
  EXPECT_NE(text.find("\n--sequence-parallel\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n--use-distributed-optimizer\n"), std::string::npos) << text;
  const std::string zero3 = Export(LayoutPlan(3), "megatron");
  EXPECT_EQ(zero3.find("--use-distributed-optimizer"), std::string::npos) << zero3;
  EXPECT_NE(zero3.find("--data-parallel-sharding-strategy optim_grads_params\n"),
            std::string::npos) << zero3;
  EXPECT_NE(text.find("\n--overlap-grad-reduce\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("--attention-backend"), std::string::npos) << text;
  EXPECT_NE(text.find("\n--cross-entropy-loss-fusion\n"), std::string::npos) << text;
  // The software of the layout: no sequence parallelism, no overlap, unfused attention.
  Plan old = LayoutPlan(1);
  old.parallelism->sequence_parallel = false;
  old.parallelism->overlap_grad_reduce = false;
  old.parallelism->fused_attention = false;
  old.parallelism->fused_wgrad_accumulation = false;
  old.parallelism->pipeline_scatter_gather = true;
  old.parallelism->fused_cross_entropy = false;
  const std::string old_text = Export(old, "megatron");
  // Megatron-Core sends whole stage tensors: the plan's scatter/gather is named, not a flag.
  EXPECT_NE(old_text.find("\n# the plan splits each stage transfer over the tensor ranks"),
            std::string::npos)
      << old_text;
  Plan split_sequence = LayoutPlan(1);
  split_sequence.parallelism->pipeline_scatter_gather = true;  // sequence parallel: no effect
  EXPECT_EQ(Export(split_sequence, "megatron").find("scatter/gather"), std::string::npos);
  EXPECT_NE(old_text.find("\n--no-gradient-accumulation-fusion\n"), std::string::npos) << old_text;
  EXPECT_EQ(text.find("--no-gradient-accumulation-fusion"), std::string::npos) << text;
  EXPECT_EQ(old_text.find("--sequence-parallel"), std::string::npos) << old_text;
  EXPECT_EQ(old_text.find("--overlap-grad-reduce"), std::string::npos) << old_text;
  EXPECT_EQ(old_text.find("--overlap-param-gather"), std::string::npos) << old_text;
  EXPECT_NE(old_text.find("\n--attention-backend unfused\n"), std::string::npos) << old_text;
  EXPECT_EQ(old_text.find("--cross-entropy-loss-fusion"), std::string::npos) << old_text;
  // Without a layout none of these flags appear (today's export).
  const std::string plain = Export(MakeTestPlan("llama-7b.json", 4), "megatron");
  EXPECT_EQ(plain.find("--tensor-model-parallel-size"), std::string::npos);
}

// Recomputation in every chunk is Megatron-LM's full, uniform recomputation with groups as
// large as the largest chunk's blocks (each chunk then one group); Megatron-LM cannot
// recompute only some stages, so a plan that does says so in a comment and sets no flag.
TEST(Megatron, RecomputationBecomesTheUniformFlags) {
  Plan plan = MakeTestPlan("gpt2-small.json", 4, "", {3, 7, 11});
  for (StagePlan& s : plan.stages) s.recompute = true;
  const std::string text = Export(plan, "megatron");
  const std::vector<int> blocks = MegatronBlocks(text);
  EXPECT_NE(text.find("\n--recompute-granularity full\n--recompute-method uniform\n"),
            std::string::npos) << text;
  EXPECT_EQ(FlagValue(text, "--recompute-num-layers"),
            *std::max_element(blocks.begin(), blocks.end())) << text;
  plan.stages[1].recompute = false;
  const std::string some = Export(plan, "megatron");
  EXPECT_EQ(some.find("\n--recompute-granularity"), std::string::npos) << some;
  EXPECT_NE(some.find("# stages 0, 2, 3 recompute"), std::string::npos) << some;
  for (StagePlan& s : plan.stages) s.recompute = false;
  EXPECT_EQ(Export(plan, "megatron").find("recompute"), std::string::npos);
  // Layer by layer: groups of one layer.
  for (StagePlan& s : plan.stages) s.recompute = true;
  plan.recompute_unit = RecomputeUnit::kLayer;
  EXPECT_EQ(FlagValue(Export(plan, "megatron"), "--recompute-num-layers"), 1);
  // By block: Megatron-LM's block method with K.
  plan.recompute_unit = RecomputeUnit::kBlock;
  plan.recompute_blocks = 2;
  const std::string block = Export(plan, "megatron");
  EXPECT_NE(block.find("\n--recompute-method block\n"), std::string::npos) << block;
  EXPECT_EQ(FlagValue(block, "--recompute-num-layers"), 2);
  // Selective: the core attention, with no method or layer count.
  plan.recompute_unit = RecomputeUnit::kSelective;
  const std::string selective = Export(plan, "megatron");
  EXPECT_NE(selective.find("\n--recompute-granularity selective\n--recompute-modules core_attn\n"),
            std::string::npos)
      << selective;
  EXPECT_EQ(selective.find("--recompute-method"), std::string::npos) << selective;
  // Named modules: Megatron-LM's list argument, space-separated, in its own order.
  plan.recompute_modules =
      RecomputeModules().With(RecomputeModule::kMlp).With(RecomputeModule::kMlaUpProj);
  const std::string modules = Export(plan, "megatron");
  EXPECT_NE(modules.find("\n--recompute-modules mla_up_proj mlp\n"), std::string::npos) << modules;
}

// DeepSpeed's activation_checkpoint_interval checkpoints runs of that many of a stage's
// layers from its first: 1 by layer, the largest stage's layer count by stage, 0 without
// recomputation or (one interval on every stage) when only some stages recompute.
// torchtitan checkpoints every block alike: by layer is its FullAC; whole stages or only some
// stages are refused; no recomputation says its default (selective) is not the plan's.
TEST(RecomputeExport, DeepSpeedIntervalAndTorchTitanPolicy) {
  Plan plan = MakeTestPlan("llama-7b.json", 4, "", {3, 7, 11});
  const auto interval = [](const std::string& text) {
    const size_t at = text.find("\nACTIVATION_CHECKPOINT_INTERVAL = ");
    return at == std::string::npos ? -1 : std::stoi(text.substr(at + 34));
  };
  EXPECT_EQ(interval(Export(plan, "deepspeed")), 0);
  EXPECT_NE(Export(plan, "torchtitan").find("activation_checkpoint): none"), std::string::npos);
  for (StagePlan& s : plan.stages) s.recompute = true;
  int largest = 0;
  for (const StagePlan& s : plan.stages)
    largest = std::max(largest, s.last_layer - s.first_layer + 1);
  EXPECT_EQ(interval(Export(plan, "deepspeed")), largest);
  EXPECT_NE(TitanRefusal(plan).find("--recompute-unit layer"), std::string::npos);
  plan.recompute_unit = RecomputeUnit::kLayer;
  EXPECT_EQ(interval(Export(plan, "deepspeed")), 1);
  EXPECT_NE(Export(plan, "torchtitan").find("activation_checkpoint): full"), std::string::npos);
  plan.stages[2].recompute = false;
  EXPECT_EQ(interval(Export(plan, "deepspeed")), 0);
  EXPECT_NE(TitanRefusal(plan).find("only some"), std::string::npos);
  // By block (the first K blocks of every stage): neither expresses it.
  plan.stages[2].recompute = true;
  plan.recompute_unit = RecomputeUnit::kBlock;
  plan.recompute_blocks = 2;
  EXPECT_EQ(interval(Export(plan, "deepspeed")), 0);
  EXPECT_NE(TitanRefusal(plan).find("first 2 blocks"), std::string::npos) << TitanRefusal(plan);
  plan.recompute_unit = RecomputeUnit::kSelective;
  EXPECT_EQ(interval(Export(plan, "deepspeed")), 0);
  EXPECT_NE(TitanRefusal(plan).find("(core_attn)"), std::string::npos) << TitanRefusal(plan);
}

// DeepSpeed checks train_batch_size = micro-batch x accumulation steps x data-parallel ranks
// (world size / (pipeline x tensor)); its pipeline engine takes ZeRO 0 and 1 only.
TEST(LayoutExport, DeepSpeedConfigIsConsistent) {
  const Plan plan = LayoutPlan(1);
  const std::string text = Export(plan, "deepspeed");
  const size_t open = text.find("r\"\"\""), close = text.rfind("\"\"\"");
  ASSERT_NE(open, std::string::npos) << text;
  const Json config = Json::parse(text.substr(open + 4, close - open - 4));
  const int64_t world = plan.parallelism->gpus();
  const int64_t dp = world / (plan.parallelism->pp * plan.parallelism->tp);
  EXPECT_EQ(config["train_batch_size"].get<int64_t>(),
            config["train_micro_batch_size_per_gpu"].get<int64_t>() *
                config["gradient_accumulation_steps"].get<int64_t>() * dp);
  EXPECT_EQ(config["train_micro_batch_size_per_gpu"], plan.micro_batch_size);
  EXPECT_EQ(config["gradient_accumulation_steps"], plan.num_micro_batches);
  EXPECT_EQ(config["zero_optimization"]["stage"], 1);
  EXPECT_EQ(config["pipeline"]["stages"], 4);
  if (HavePython()) {
    EXPECT_TRUE(PyCompiles(text));
  }
  Result<std::string> zero2 = FindExporter("deepspeed")->Export(LayoutPlan(2), {});
  ASSERT_FALSE(zero2.ok());
  EXPECT_NE(zero2.message().find("cannot be expressed"), std::string::npos);
}

// The keys are torchtitan's ParallelismConfig fields (torchtitan/config/configs.py).
TEST(LayoutExport, TorchTitanParallelismSettings) {
  const std::string text = Export(LayoutPlan(3), "torchtitan");
  for (const std::string& line :
       std::vector<std::string>{"data_parallel_replicate_degree = 1",
                                "data_parallel_shard_degree = 4",
        "fsdp_reshard_after_forward = \"default\"", "tensor_parallel_degree = 2",
        "context_parallel_degree = 1", "pipeline_parallel_degree = 4",
        "expert_parallel_degree = 1"}) {
    EXPECT_NE(text.find("\n" + line + "\n"), std::string::npos) << line << "\n" << text;
  }
  const std::string ddp = Export(LayoutPlan(0), "torchtitan");
  EXPECT_NE(ddp.find("\ndata_parallel_replicate_degree = 4\n"), std::string::npos) << ddp;
  EXPECT_NE(ddp.find("\ndata_parallel_shard_degree = 1\n"), std::string::npos) << ddp;
  if (HavePython()) {
    EXPECT_TRUE(PyCompiles(text));
  }
}

// The experts' own tensor degree: Megatron-LM takes it as --expert-tensor-parallel-size
// (default: the tensor degree); torchtitan's expert mesh always folds the tensor ranks in
// (parallel_dims.py), so only etp 1 can be expressed there.
TEST(LayoutExport, TheExpertsTensorDegreeTravelsWhereItCan) {
  Plan plan = LayoutPlan(1);
  plan.parallelism->ep = 2;
  const std::string as_tp = Export(plan, "megatron");
  EXPECT_EQ(FlagValue(as_tp, "--expert-model-parallel-size"), 2) << as_tp;
  EXPECT_EQ(as_tp.find("--expert-tensor-parallel-size"), std::string::npos) << as_tp;
  Result<std::string> titan = FindExporter("torchtitan")->Export(plan, {});
  ASSERT_FALSE(titan.ok());
  EXPECT_NE(titan.message().find("--etp 1"), std::string::npos) << titan.message();

  // ZeRO 0 replicates over the data ranks in torchtitan (data_parallel_shard_degree 1), so its
  // expert group has only cp x tp = 2 ranks to borrow: ep 4 cannot be expressed there.
  Plan ddp = LayoutPlan(0);
  ddp.parallelism->ep = 4;
  ddp.parallelism->etp = 1;
  Result<std::string> replicated = FindExporter("torchtitan")->Export(ddp, {});
  ASSERT_FALSE(replicated.ok());
  EXPECT_NE(replicated.message().find("dp_shard x cp x tp = 2"), std::string::npos)
      << replicated.message();

  plan.parallelism->etp = 1;
  const std::string folded = Export(plan, "megatron");
  EXPECT_EQ(FlagValue(folded, "--expert-tensor-parallel-size"), 1) << folded;
  const std::string text = Export(plan, "torchtitan");
  EXPECT_NE(text.find("\nexpert_parallel_degree = 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ntensor_parallel_degree = 2\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace pp
