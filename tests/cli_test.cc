// The pp-partition binary end to end: exit codes, documents that parse and carry DESIGN.md's
// fields, hostile input, and output files that are never left half-written.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "core/json_util.h"
#include "core/plan.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using testing::ReadText;
using testing::RunTool;
using testing::TempDir;
using testing::WriteText;

// Runs with `args`, expects exit 2 and one line on stderr containing `expect`.
void ExpectUsageError(const std::string& args, const std::string& expect) {
  const testing::CommandResult r = RunTool(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find(expect), std::string::npos) << args << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\nstderr: " << r.err;
}

TEST(Cli, VersionAndHelp) {
  testing::CommandResult r = RunTool("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("pp-partition 0."), std::string::npos) << r.out;
  r = RunTool("plan --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Example:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--memory-limit"), std::string::npos);
}

// An interleaved plan's device holds several chunks: the report gives the device's peak, at
// least its largest chunk's and at most the sum of its chunks' peaks (the plan file's rows).
TEST(Cli, ChunkedPlanReportsItsDevicesPeak) {
  const std::string out = TempDir() + "/plan.json";
  const testing::CommandResult r = RunTool(
      "plan models/gpt2-small.json --stages 2 --virtual-stages 3 --schedule interleaved "
      "--micro-batches 8 --memory-limit 64GiB -o " +
      out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t at = r.out.find("device peak memory   ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  const Json doc = Json::parse(ReadText(out));
  const size_t on = line.find(" on device ");
  ASSERT_NE(on, std::string::npos) << line;
  const int device = std::stoi(line.substr(on + 11));
  uint64_t most = 0, sum = 0;
  int chunks = 0;
  for (const Json& s : doc["stages"]) {
    if (s["device"].get<int>() != device) continue;
    ++chunks;
    most = std::max(most, s["peak_memory_bytes"].get<uint64_t>());
    sum += s["peak_memory_bytes"].get<uint64_t>();
  }
  EXPECT_EQ(chunks, 3);
  EXPECT_NE(line.find("(3 chunks; limit 64.0 GiB)"), std::string::npos) << line;
  // The figure as printed, back in bytes (FormatBytes: three significant figures).
  const double shown = std::stod(line.substr(21));
  const std::string unit = line.substr(line.find(' ', 21) + 1, 3);
  const double scale = unit == "GiB" ? 1024.0 * 1024 * 1024 : unit == "MiB" ? 1024.0 * 1024 : 0;
  ASSERT_GT(scale, 0) << line;
  EXPECT_GE(shown * scale, 0.995 * static_cast<double>(most)) << line;
  EXPECT_LE(shown * scale, 1.005 * static_cast<double>(sum)) << line;
  // The Markdown report carries the same figure.
  const testing::CommandResult md = RunTool(
      "plan models/gpt2-small.json --stages 2 --virtual-stages 3 --schedule interleaved "
      "--micro-batches 8 --memory-limit 64GiB --format md");
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_NE(md.out.find("| device peak memory | " + line.substr(21) + " |"), std::string::npos)
      << md.out;
}

TEST(Cli, PlanWritesDesignFields) {
  const std::string dir = TempDir();
  const std::string out = dir + "/plan.json";
  const testing::CommandResult r =
      RunTool("plan models/gpt2-small.json --stages 4 --micro-batches 8 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("predicted step time"), std::string::npos) << r.out;
  const Json doc = Json::parse(ReadText(out));
  EXPECT_EQ(doc["format"], "pp-partition.plan/v1");
  for (const char* key : {"model", "schedule", "num_stages", "num_micro_batches",
                          "micro_batch_size", "method", "objective", "boundaries", "stages",
                          "memory_limit_bytes", "predicted", "profile", "model_spec"}) {
    EXPECT_TRUE(doc.contains(key)) << key;
  }
  EXPECT_EQ(doc["num_stages"], 4);
  EXPECT_EQ(doc["boundaries"].size(), 3u);
  EXPECT_EQ(doc["schedule"], "1f1b");
  EXPECT_EQ(doc["method"], "dp");
  for (const Json& s : doc["stages"]) {
    for (const char* key : {"index", "first_layer", "last_layer", "layer_names", "forward_ms",
                            "backward_ms", "param_bytes", "peak_memory_bytes", "send_bytes"}) {
      EXPECT_TRUE(s.contains(key)) << key;
    }
  }
  for (const char* key : {"step_time_ms", "bubble_ratio", "throughput_samples_per_s",
                          "bottleneck_stage", "max_stage_ms"}) {
    EXPECT_TRUE(doc["predicted"].contains(key)) << key;
  }
  EXPECT_TRUE(PlanFromJson(doc).ok());
  // Throughput is 1000 * m * micro-batch size / step time.
  EXPECT_DOUBLE_EQ(doc["predicted"]["throughput_samples_per_s"].get<double>(),
                   1000.0 * 8 * doc["micro_batch_size"].get<double>() /
                       doc["predicted"]["step_time_ms"].get<double>());
  std::filesystem::remove_all(dir);
}

TEST(Cli, DashOutputIsOnlyTheDocumentAndRunsAreReproducible) {
  const std::string args = "plan models/mlp-2gpu.json --stages 2 --micro-batches 4 -o -";
  const testing::CommandResult a = RunTool(args), b = RunTool(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(Json::parse(a.out)["num_stages"], 2);
  EXPECT_EQ(a.out, b.out);  // byte-identical
}

TEST(Cli, ProfileThenPlanFromProfileMatchesPlanFromModel) {
  const std::string dir = TempDir();
  testing::CommandResult r = RunTool("profile models/gpt2-medium.json --backend analytic "
                                     "--device a100 -o " + dir + "/p.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json profile = Json::parse(ReadText(dir + "/p.json"));
  EXPECT_EQ(profile["format"], "pp-partition.profile/v1");
  EXPECT_EQ(profile["backend"], "analytic");
  const testing::CommandResult from_profile =
      RunTool("plan " + dir + "/p.json --stages 3 --micro-batches 6 --format json");
  const testing::CommandResult from_model = RunTool(
      "plan models/gpt2-medium.json --device a100 --stages 3 --micro-batches 6 --format json");
  ASSERT_EQ(from_profile.exit_code, 0) << from_profile.err;
  ASSERT_EQ(from_model.exit_code, 0) << from_model.err;
  EXPECT_EQ(Json::parse(from_profile.out)["boundaries"], Json::parse(from_model.out)["boundaries"]);
  // The tied head travels in the file: on one stage both plans hold its weight once.
  EXPECT_EQ(profile["layers"][profile["layers"].size() - 2]["tied_to"], "embed");
  const testing::CommandResult one_profile =
      RunTool("plan " + dir + "/p.json --stages 1 --micro-batches 6 --format json");
  const testing::CommandResult one_model = RunTool(
      "plan models/gpt2-medium.json --device a100 --stages 1 --micro-batches 6 --format json");
  ASSERT_EQ(one_profile.exit_code, 0) << one_profile.err;
  ASSERT_EQ(one_model.exit_code, 0) << one_model.err;
  uint64_t sum = 0;
  for (const Json& l : profile["layers"]) sum += l["param_bytes"].get<uint64_t>();
  const Json stage = Json::parse(one_profile.out)["stages"][0];
  EXPECT_EQ(
      stage["param_bytes"].get<uint64_t>(),
      sum - profile["layers"][profile["layers"].size() - 2]["tied_param_bytes"].get<uint64_t>());
  EXPECT_EQ(stage["param_bytes"], Json::parse(one_model.out)["stages"][0]["param_bytes"]);
  EXPECT_NE(RunTool("profile models/gpt2-medium.json --device a100")
                .out.find("lm_head is tied to embed: "),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Cli, SimulateReproducesThePrediction) {
  const std::string dir = TempDir();
  ASSERT_EQ(RunTool("plan models/gpt2-small.json --stages 3 --micro-batches 5 --schedule gpipe -o " +
                    dir + "/plan.json").exit_code, 0);
  const Json plan = Json::parse(ReadText(dir + "/plan.json"));
  const testing::CommandResult r =
      RunTool("simulate " + dir + "/plan.json --format json --trace " + dir + "/trace.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json sim = Json::parse(r.out);
  EXPECT_EQ(sim["step_time_ms"], plan["predicted"]["step_time_ms"]);
  EXPECT_EQ(sim["bubble_ratio"], plan["predicted"]["bubble_ratio"]);
  EXPECT_EQ(sim["ops"].size(), 3u * 5u * 2u);
  const Json trace = Json::parse(ReadText(dir + "/trace.json"));
  EXPECT_GT(trace["traceEvents"].size(), 30u);
  std::filesystem::remove_all(dir);
}

TEST(Cli, GivenBoundariesAndBaselines) {
  testing::CommandResult r = RunTool(
      "plan models/gpt2-small.json --boundaries 4,8,12 --micro-batches 8 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json doc = Json::parse(r.out);
  EXPECT_EQ(doc["boundaries"], Json::parse("[4, 8, 12]"));
  EXPECT_EQ(doc["method"], "given");
  for (const char* method : {"uniform", "blocks", "parameters", "greedy"}) {
    r = RunTool(std::string("plan models/gpt2-small.json --stages 4 --micro-batches 8 "
                            "--format json --method ") + method);
    ASSERT_EQ(r.exit_code, 0) << method << r.err;
    EXPECT_EQ(Json::parse(r.out)["method"], method);
  }
}

TEST(Cli, BadInputExitsTwoWithOneLineAndNoOutputFile) {
  const std::string dir = TempDir();
  const std::string out = dir + "/out.json";
  auto model_with = [&](const std::string& name, const std::string& text) {
    WriteText(dir + "/" + name, text);
    return dir + "/" + name;
  };
  const std::string base = ReadText(std::string(PP_SOURCE_DIR) + "/models/gpt2-small.json");
  struct Case {
    std::string file;
    std::string expect;
  } cases[] = {
      {model_with("truncated.json", base.substr(0, base.size() / 2)), "invalid JSON at line"},
      {model_with("repeat.json", R"({"format":"pp-partition.model/v1","name":"x",
          "input":{"micro_batch_size":1,"seq_len":8},
          "layers":[{"name":"e","op":"embedding","vocab":10,"hidden":8},
                    {"name":"b","op":"transformer_block","hidden":8,"heads":2,"ffn":8,
                     "repeat":1000000000000}]})"),
       "layers[1].repeat"},
      {model_with("negative.json", R"({"format":"pp-partition.model/v1","name":"x",
          "input":{"micro_batch_size":1,"seq_len":8},
          "layers":[{"name":"e","op":"embedding","vocab":10,"hidden":-8}]})"),
       "layers[0].hidden"},
      {model_with("format.json", R"({"format":"pp-partition.model/v9","name":"x"})"), "format"},
      {model_with("nested.json", std::string(200000, '[') + std::string(200000, ']')),
       "nests deeper"},
      {model_with("huge-name.json", "{\"format\":\"pp-partition.model/v1\",\"name\":\"" +
                                        std::string(100 << 20, 'a') + "\"}"),
       "name: name is 104857600 characters long"},
      {dir + "/missing.json", "cannot open"},
  };
  for (const Case& c : cases) {
    ExpectUsageError("plan '" + c.file + "' --stages 2 --micro-batches 4 -o " + out, c.expect);
    EXPECT_FALSE(std::filesystem::exists(out)) << c.file;
  }
  std::filesystem::remove_all(dir);
}

TEST(Cli, BadRequestsExitTwo) {
  ExpectUsageError("plan models/mlp-2gpu.json --stages 9 --micro-batches 4",
                   "more than the model's 4 layers");
  ExpectUsageError("plan models/gpt2-xl.json --stages 2 --micro-batches 32 --memory-limit 10GiB",
                   "the smallest limit that fits is");
  ExpectUsageError("plan models/gpt2-small.json --stages 2 --micro-batches 4 --schedule zigzag",
                   "--schedule");
  ExpectUsageError("plan models/gpt2-small.json --stages 2 --micro-batches 4 --memory-limit lots",
                   "--memory-limit");
  ExpectUsageError("plan models/gpt2-small.json --micro-batches 4", "--stages is required");
  ExpectUsageError("plan models/gpt2-small.json --stages 2 --micro-batches 4 --bogus", "bogus");
  ExpectUsageError("plan models/gpt2-small.json --stages 2 --micro-batches 4 --device tpu",
                   "tpu");
  ExpectUsageError("export missing.json --to megatron", "missing.json");
  ExpectUsageError("export models/gpt2-small.json --to bogus", "--to \"bogus\" is unknown");
  ExpectUsageError("compare missing.json missing.json", "missing.json");
  ExpectUsageError("import missing.json", "missing.json");
  ExpectUsageError("run missing-plan.json --backend cpu", "missing-plan.json: cannot open");
  // No GPU on the test machines: either no CUDA GPU is visible or CUDA was not built in.
  ExpectUsageError("profile models/gpt2-small.json --backend cuda", "CUDA");
}

TEST(Cli, ExportWritesFilesAndRefusesWhatATargetCannotExpress) {
  const std::string dir = TempDir();
  ASSERT_EQ(RunTool("plan models/gpt2-small.json --boundaries 14 --micro-batches 4 -o " + dir +
                    "/cut.json").exit_code, 0);
  ASSERT_EQ(RunTool("plan models/gpt2-small.json --stages 2 --micro-batches 4 -o " + dir +
                    "/plan.json").exit_code, 0);
  testing::CommandResult r = RunTool("export " + dir + "/plan.json --to gpipe -o " + dir +
                                     "/balance.py");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(ReadText(dir + "/balance.py").find("balance = ["), std::string::npos);
  r = RunTool("export " + dir + "/plan.json --to json");
  EXPECT_EQ(r.out, ReadText(dir + "/plan.json"));  // the plan document itself
  r = RunTool("export " + dir + "/plan.json --to torch --module-prefix block=transformer.h "
              "--module-prefix embed=transformer.wte");
  EXPECT_NE(r.out.find("\"transformer.h."), std::string::npos) << r.out << r.err;
  ExpectUsageError("export " + dir + "/cut.json --to megatron -o " + dir + "/m.txt",
                   "cannot be expressed");
  EXPECT_FALSE(std::filesystem::exists(dir + "/m.txt"));
  ExpectUsageError("export " + dir + "/plan.json --to torch --module-prefix oops",
                   "--module-prefix");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp

namespace pp {
namespace {

TEST(Cli, RunTrainsAPlanOnTheCpuAndWritesMeasured) {
  const std::string dir = testing::TempDir();
  testing::WriteText(dir + "/m.json", R"({"format": "pp-partition.model/v1", "name": "tiny",
      "dtype": "fp32", "input": {"micro_batch_size": 2, "seq_len": 8},
      "layers": [{"name": "embed", "op": "embedding", "vocab": 17, "hidden": 16, "positions": 8},
                 {"name": "block", "op": "transformer_block", "hidden": 16, "heads": 2,
                  "ffn": 32, "causal": true, "repeat": 2},
                 {"name": "head", "op": "linear", "in": 16, "out": 17},
                 {"name": "loss", "op": "cross_entropy"}]})");
  testing::CommandResult r =
      testing::RunTool("plan " + dir + "/m.json --stages 2 --micro-batches 4 -o " + dir + "/p.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = testing::RunTool("run " + dir + "/p.json --backend cpu --steps 3 --warmup 1 --trace " + dir +
                       "/trace.json -o " + dir + "/ran.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("step time"), std::string::npos) << r.out;
  const Json ran = Json::parse(testing::ReadText(dir + "/ran.json"));
  ASSERT_TRUE(ran.contains("measured"));
  const Json& m = ran["measured"];
  for (const char* key : {"step_time_ms", "bubble_ratio", "throughput_samples_per_s",
                          "bottleneck_stage", "max_stage_ms", "stages", "steps", "backend"}) {
    EXPECT_TRUE(m.contains(key)) << key;
  }
  EXPECT_EQ(m["steps"], 3);
  EXPECT_EQ(m["backend"], "cpu");
  ASSERT_EQ(m["stages"].size(), 2u);
  for (const Json& s : m["stages"]) {
    EXPECT_GT(s["busy_ms"].get<double>(), 0);
    EXPECT_LE(s["busy_ms"].get<double>(), m["step_time_ms"].get<double>() + 1e-9);
    EXPECT_GT(s["peak_memory_bytes"].get<uint64_t>(), 0u);
  }
  EXPECT_TRUE(PlanFromJson(ran).ok());
  // The trace holds both timelines: predicted (process 0) and measured (process 1), with one
  // event per op in each.
  const Json trace = Json::parse(testing::ReadText(dir + "/trace.json"));
  int ops[2] = {0, 0};
  for (const Json& e : trace["traceEvents"]) {
    if (e["ph"] == "X") ++ops[e["pid"].get<int>()];
  }
  EXPECT_EQ(ops[0], 2 * 4 * 2);
  EXPECT_EQ(ops[1], 2 * 4 * 2);

  // Plans without a model, and backends not built yet, are refused with exit 2.
  ASSERT_EQ(testing::RunTool("profile " + dir + "/m.json -o " + dir + "/prof.json").exit_code, 0);
  ASSERT_EQ(testing::RunTool("plan " + dir + "/prof.json --stages 2 --micro-batches 4 -o " + dir +
                             "/noplan.json").exit_code, 0);
  r = testing::RunTool("run " + dir + "/noplan.json --backend cpu");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("model_spec"), std::string::npos) << r.err;
  r = testing::RunTool("run " + dir + "/p.json --backend cuda");
  EXPECT_EQ(r.exit_code, 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pp
