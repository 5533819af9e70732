// Hostile input: links and costs whose times are not finite, documents of the wrong types,
// values with control characters or of great length, and out-of-range timeouts. Every one is
// refused with one short line on stderr and exit 2, never a crash or a made-up answer.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <string>

#include "core/hf_import.h"
#include "core/json_util.h"
#include "core/profile.h"
#include "core/units.h"
#include "executor/run_plan.h"
#include "executor/transport.h"
#include "partitioner/planner.h"
#include "partitioner/split_search.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using testing::RunTool;
using testing::TempDir;
using testing::WriteText;

// Six layers, 1 ms forward and 2 ms backward each, 1000 output bytes, on `link`.
Profile SixLayers(Link link) {
  Profile p;
  p.model = "six";
  p.backend = "analytic";
  p.device = {"test", uint64_t{1} << 30};
  p.micro_batch_size = 1;
  p.link = link;
  for (int i = 0; i < 6; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.forward_ms = 1;
    l.backward_ms = 2;
    l.param_bytes = 10;
    l.activation_bytes = 10;
    l.output_bytes = 1000;
    p.layers.push_back(l);
  }
  return p;
}

// Expects exit 2 and exactly one line on stderr, short, containing `expect`.
void ExpectOneShortLine(const testing::CommandResult& r, const std::string& what,
                        const std::string& expect = "") {
  EXPECT_EQ(r.exit_code, 2) << what << "\nstderr: " << r.err.substr(0, 400);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << "\n" << r.err.substr(0, 400);
  EXPECT_FALSE(r.err.empty() || r.err.back() != '\n') << what;
  EXPECT_LT(r.err.size(), 400u) << what << "\n" << r.err.substr(0, 400);
  if (!expect.empty()) {
    EXPECT_NE(r.err.find(expect), std::string::npos) << what << "\n" << r.err.substr(0, 400);
  }
}

// --- Times that are not finite -------------------------------------------------------------

TEST(HostileInput, SplitWithInfiniteTransfersIsAValidSplit) {
  // 1000 bytes over 5e-324 bytes/s: every transfer takes an infinite time. Whatever the tie
  // rule, the split returned must be a real one, meeting the least bottleneck that the brute
  // force finds over every split (stage times are sums of 3 ms layers).
  const Profile profile = SixLayers({5e-324, 0});
  const CostModel cost(profile, Optimizer::kAdam);
  for (int p : {2, 3, 4}) {
    const SplitSearch search(cost, std::vector<int>(p, 1), std::nullopt);
    double brute = std::numeric_limits<double>::infinity();
    testing::ForEachSplit(6, p, [&](const std::vector<int>& b) {
      double worst = 0;
      int first = 0;
      for (int s = 0; s < p; ++s) {
        const int end = s + 1 < p ? b[s] : 6;
        worst = std::max(worst, 3.0 * (end - first));
        first = end;
      }
      brute = std::min(brute, worst);
    });
    const double best = search.MinBottleneckMs();
    EXPECT_EQ(best, brute) << p;
    for (SplitTie tie : {SplitTie::kFewestTransferMs, SplitTie::kLate}) {
      const std::optional<std::vector<int>> split = search.Split(best, tie);
      ASSERT_TRUE(split.has_value()) << p;
      ASSERT_EQ(split->size(), static_cast<size_t>(p - 1));
      int previous = 0;
      for (int b : *split) {
        EXPECT_GT(b, previous) << p;
        EXPECT_LT(b, 6) << p;
        previous = b;
      }
    }
  }
}

TEST(HostileInput, PlanningRefusesTimesThatAreNotFiniteNamingTheField) {
  struct Bad {
    Link link;
    double forward_ms;
    std::string field;
  };
  const Bad cases[] = {
      {{5e-324, 0}, 1, "link.bandwidth_bytes_per_s"},
      {{1e-310, 0}, 1, "link.bandwidth_bytes_per_s"},
      {{1e9, 1e308}, 1, "link.latency_ms"},
      {{1e9, std::numeric_limits<double>::quiet_NaN()}, 1, "link.latency_ms"},
      {{1e9, 0}, std::numeric_limits<double>::infinity(), "layers[2].forward_ms"},
  };
  for (const Bad& c : cases) {
    PlanRequest request;
    request.profile = SixLayers(c.link);
    request.profile.layers[2].forward_ms = c.forward_ms;
    request.num_stages = 3;
    request.num_micro_batches = 8;
    const Result<Plan> plan = MakePlan(request);
    ASSERT_FALSE(plan.ok()) << c.field;
    EXPECT_EQ(plan.status().message().rfind(c.field, 0), 0u) << plan.status().message();
  }
  // The same profile with a sane link plans.
  PlanRequest request;
  request.profile = SixLayers({1e9, 0.01});
  request.num_stages = 3;
  request.num_micro_batches = 8;
  EXPECT_TRUE(MakePlan(request).ok());
}

TEST(HostileInput, CliRefusesAProfileWhoseLinkMakesTimesInfinite) {
  const std::string dir = TempDir();
  Json doc = ProfileToJson(SixLayers({1e9, 0.01}));
  const std::string good = dir + "/good.json";
  WriteText(good, DumpJson(doc));
  const testing::CommandResult ok = RunTool("plan " + good + " --stages 3 --micro-batches 8");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  struct Bad {
    double bandwidth, latency;
    int stages;
    std::string field;
  };
  for (const Bad& c : {Bad{5e-324, 0, 3, "link.bandwidth_bytes_per_s"},
                       Bad{1e-310, 0, 3, "link.bandwidth_bytes_per_s"},
                       Bad{5e-324, 0, 2, "link.bandwidth_bytes_per_s"},
                       Bad{1e9, 1e308, 2, "link.latency_ms"}}) {
    doc["link"]["bandwidth_bytes_per_s"] = c.bandwidth;
    doc["link"]["latency_ms"] = c.latency;
    const std::string path = dir + "/bad.json";
    WriteText(path, DumpJson(doc));
    const std::string args =
        "plan " + path + " --stages " + std::to_string(c.stages) + " --micro-batches 8";
    ExpectOneShortLine(RunTool(args), args, c.field);
  }
}

// --- Type errors in import -----------------------------------------------------------------

TEST(HostileInput, ImportTypeErrorsAreOneLineNamingTheKey) {
  const std::string dir = TempDir();
  const std::string base = R"({"model_type":"gpt2","n_embd":32,"n_head":4,"n_layer":2,)"
                           R"("n_positions":16,"vocab_size":64)";
  for (const std::string& extra : {std::string(R"("torch_dtype":1)"),
                                   std::string(R"("torch_dtype":[1])"),
                                   std::string(R"("torch_dtype":{"a":1})")}) {
    const Result<HfImport> lib = ImportHfConfig(Json::parse(base + "," + extra + "}"), {});
    ASSERT_FALSE(lib.ok()) << extra;
    EXPECT_NE(lib.status().message().find("torch_dtype"), std::string::npos);
    const std::string path = dir + "/config.json";
    WriteText(path, base + "," + extra + "}");
    ExpectOneShortLine(RunTool("import " + path), extra, "torch_dtype");
  }
  // The key's well-typed forms still import.
  const std::string path = dir + "/config.json";
  WriteText(path, base + R"(,"torch_dtype":"float32"})");
  EXPECT_EQ(RunTool("import " + path).exit_code, 0);
}

// --- One short line whatever the user's text -----------------------------------------------

TEST(HostileInput, QuoteEscapesControlCharactersAndShortens) {
  EXPECT_EQ(Quote("gpt2"), "\"gpt2\"");
  EXPECT_EQ(Quote("a\nb\t\"c\\\x1b"), "\"a\\nb\\t\\\"c\\\\\\x1b\"");
  const std::string cut = Quote(std::string(100000, 'x'));
  EXPECT_EQ(cut, "\"" + std::string(kShownChars, 'x') + "...\"");
  // An escape is never split by the cut.
  EXPECT_EQ(Abbreviate(std::string(3, '\n'), 5), "\\n\\n...");
}

TEST(HostileInput, ErrorsQuotingUserTextAreOneShortLine) {
  const std::string dir = TempDir();
  const std::string plan = dir + "/plan.json";
  ASSERT_EQ(RunTool("plan models/gpt2-small.json --stages 2 --micro-batches 4 -o " + plan)
                .exit_code,
            0);
  const std::string profile = dir + "/profile.json";
  ASSERT_EQ(RunTool("profile models/gpt2-small.json --backend analytic --device h100 -o " +
                    profile)
                .exit_code,
            0);
  // Shell words: a value with a newline (inside single quotes) and one 100,000 characters long.
  const std::string newline = "'bad\nvalue'";
  const std::string huge = std::string(100000, 'v');
  for (const std::string& v : {newline, huge}) {
    const std::string args[] = {
        "export " + plan + " --to " + v,
        "export " + plan + " --to torch --module-prefix " + v,
        "plan " + profile + " --stages 2 --micro-batches 4 --method " + v,
        "plan " + profile + " --stages 2 --micro-batches 4 --objective " + v,
        "plan " + profile + " --stages 2 --micro-batches 4 --recompute " + v,
        "plan " + profile + " --stages 2 --micro-batches 4 --device-types " + v,
        "plan " + profile + " --stages 2 --micro-batches 4 --schedule " + v,
        "profile models/gpt2-small.json --device h100 --backend " + v,
        "profile models/gpt2-small.json --backend analytic --device h100 --dtype " + v,
        "plan " + v + " --stages 2 --micro-batches 4",
        "simulate " + v,
    };
    for (const std::string& a : args) ExpectOneShortLine(RunTool(a), a.substr(0, 120));
  }
  // Documents' strings: the plan's schedule (simulate, export) and an imported config's names.
  Json doc = Json::parse(testing::ReadText(plan));
  const std::string config_base = R"({"n_embd":32,"n_head":4,"n_layer":2,"n_positions":16,)"
                                  R"("vocab_size":64,"hidden_size":32,"num_hidden_layers":2,)"
                                  R"("num_attention_heads":4,"intermediate_size":64,)"
                                  R"("max_position_embeddings":16)";
  for (const std::string& v : {std::string("bad\nvalue"), huge}) {
    doc["schedule"] = v;
    const std::string bad_plan = dir + "/bad-plan.json";
    WriteText(bad_plan, DumpJson(doc));
    ExpectOneShortLine(RunTool("simulate " + bad_plan), "simulate: schedule");
    ExpectOneShortLine(RunTool("export " + bad_plan + " --to torch"), "export: schedule");
    const std::string value = Json(v).dump();
    for (const std::string& config :
         {config_base + R"(,"model_type":)" + value + "}",
          config_base + R"(,"model_type":"bert","hidden_act":)" + value + "}",
          config_base + R"(,"model_type":"gpt2","activation_function":)" + value + "}"}) {
      const std::string path = dir + "/config.json";
      WriteText(path, config);
      ExpectOneShortLine(RunTool("import " + path), config.substr(config.size() - 60));
    }
  }
}

// --- run --timeout -------------------------------------------------------------------------

TEST(HostileInput, RunTimeoutOutOfRangeIsRefused) {
  EXPECT_TRUE(CheckTimeout(kMinTimeoutS).ok());
  EXPECT_TRUE(CheckTimeout(kMaxTimeoutS).ok());
  EXPECT_TRUE(CheckTimeout(60).ok());
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), 1e10, 1e308, 86400.5, 0.0009,
                     std::numeric_limits<double>::infinity()}) {
    EXPECT_FALSE(CheckTimeout(bad).ok()) << bad;
  }
  const std::string dir = TempDir();
  const std::string plan = dir + "/plan.json";
  ASSERT_EQ(RunTool("plan models/mlp-2gpu.json --stages 2 --micro-batches 2 -o " + plan)
                .exit_code,
            0);
  for (const char* bad : {"nan", "1e10", "1e308", "0.0001", "inf"}) {
    const std::string args = "run " + plan + " --backend cpu --steps 1 --timeout " + bad;
    ExpectOneShortLine(RunTool(args), args, "--timeout");
  }
}

TEST(HostileInput, TimeoutsArePrintedAsGiven) {
  EXPECT_EQ(FormatSeconds(0.002), "0.002 s");
  EXPECT_EQ(FormatSeconds(60), "60 s");
  EXPECT_EQ(FormatSeconds(86400), "86400 s");
  // A receive that nobody sends to reports the timeout it was given, not an int cast.
  HostTransport transport;
  float out = 0;
  const Status s = transport.Receive(MessageKey{}, &out, 1, 0.002);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("waited longer than 0.002 s"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace pp
