// CPU reference layers against finite differences (in double), float against double, and the
// kept activations against the analytic profiler's byte counts.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "layers/layer.h"
#include "profiler/analytic.h"
#include "tests/test_util.h"

namespace pp {
namespace {

// A one-layer-of-interest model: `layer` preceded by what feeds it. Returns the expanded
// layer at `index` and the model input.
struct Built {
  Model model;
  const Layer& layer(size_t i) const { return model.layers[i]; }
};

Built Build(const std::string& layers_json, const std::string& input_json, const char* dtype = "fp32") {
  const Json doc = Json::parse(std::string(R"({"format": "pp-partition.model/v1", "name": "t",
      "dtype": ")") + dtype + R"(", "input": )" + input_json + R"(, "layers": )" + layers_json + "}");
  Result<Model> m = ModelFromJson(doc);
  EXPECT_TRUE(m.ok()) << m.message();
  return Built{*m};
}

struct Data {
  std::vector<int32_t> tokens, labels;
  std::vector<double> targets;
  MicroBatch batch() const { return {tokens.data(), labels.data(), targets.data()}; }
};

Data RandomData(const Layer& l, const ModelInput& in, std::mt19937_64& rng) {
  Data d;
  const int64_t vocab = l.op == LayerKind::kEmbedding ? l.vocab : std::max<int64_t>(l.in_width, 1);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
  for (int64_t r = 0; r < in.rows(); ++r) d.tokens.push_back(id(rng)), d.labels.push_back(id(rng));
  std::normal_distribution<double> g(0, 1);
  for (int64_t i = 0; i < in.rows() * std::max<int64_t>(l.in_width, 1); ++i) d.targets.push_back(g(rng));
  return d;
}

std::vector<double> Normal(int64_t n, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> g(0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = g(rng);
  return v;
}

// L = sum(y * r).
double Objective(const CpuLayer<double>& layer, const std::vector<double>& params,
                 const std::vector<double>& x, const MicroBatch& batch,
                 const std::vector<double>& r) {
  std::vector<double> y(layer.output_count()), saved(layer.saved_count()),
      work(layer.workspace_count() + 1);
  layer.Forward(params.data(), x.data(), batch, y.data(), saved.data(), work.data());
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) sum += y[i] * r[i];
  return sum;
}

double RelativeError(const std::vector<double>& got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-300);
}

// Checks dx and dparams of `layer` against central differences on up to 40 coordinates each.
void CheckGradients(const Layer& spec, const ModelInput& in, uint64_t seed) {
  SCOPED_TRACE(spec.name);
  std::mt19937_64 rng(seed);
  auto made = MakeCpuLayer<double>(spec, in);
  ASSERT_TRUE(made.ok()) << made.message();
  const CpuLayer<double>& layer = **made;
  std::vector<double> params(layer.param_count());
  layer.Init(params.data(), seed);
  const std::vector<double> noise = Normal(layer.param_count(), rng, 0.1);
  for (size_t i = 0; i < params.size(); ++i) params[i] += noise[i];
  const int64_t in_count = layer.rows() * std::max<int64_t>(layer.in_width(), 1);
  std::vector<double> x = Normal(in_count, rng);
  for (double& v : x) {
    if (std::fabs(v) < 0.05) v += 0.1;  // keep away from ReLU's kink
  }
  const Data data = RandomData(spec, in, rng);
  const MicroBatch batch = data.batch();
  const std::vector<double> r = Normal(layer.output_count(), rng);

  std::vector<double> y(r.size()), saved(layer.saved_count()), work(layer.workspace_count() + 1),
      pending(layer.pending_count() + 1), dx(in_count, 0.0), dparams(layer.param_count(), 0.0);
  layer.Forward(params.data(), x.data(), batch, y.data(), saved.data(), work.data());
  std::fill(work.begin(), work.end(), std::nan(""));  // the workspace carries nothing over
  layer.BackwardInput(params.data(), r.data(), saved.data(), batch,
                      layer.has_input_gradient() ? dx.data() : nullptr, pending.data(), work.data());
  std::fill(work.begin(), work.end(), std::nan(""));
  layer.BackwardWeight(params.data(), r.data(), saved.data(), pending.data(), batch,
                       dparams.data(), work.data());

  const double eps = 1e-6;
  auto numeric = [&](std::vector<double>& v, size_t i) {
    const double keep = v[i];
    v[i] = keep + eps;
    const double up = Objective(layer, params, x, batch, r);
    v[i] = keep - eps;
    const double down = Objective(layer, params, x, batch, r);
    v[i] = keep;
    return (up - down) / (2 * eps);
  };
  auto check = [&](std::vector<double>& v, const std::vector<double>& analytic, const char* what) {
    if (v.empty()) return;
    std::vector<double> got, want;
    std::uniform_int_distribution<size_t> pick(0, v.size() - 1);
    for (int t = 0; t < 40; ++t) {
      const size_t i = pick(rng);
      got.push_back(analytic[i]);
      want.push_back(numeric(v, i));
    }
    EXPECT_LT(RelativeError(got, want), 1e-6) << what;
  };
  if (layer.has_input_gradient()) check(x, dx, "input gradient");
  check(params, dparams, "weight gradient");

  // BackwardWeight accumulates.
  if (!dparams.empty()) {
    std::vector<double> twice = dparams;
    layer.BackwardWeight(params.data(), r.data(), saved.data(), pending.data(), batch,
                         twice.data(), work.data());
    for (size_t i = 0; i < twice.size(); i += std::max<size_t>(1, twice.size() / 50)) {
      EXPECT_NEAR(twice[i], 2 * dparams[i], 1e-9 * (1 + std::fabs(dparams[i])));
    }
  }
}

const char* kTokenInput = R"({"micro_batch_size": 2, "seq_len": 5})";

TEST(CpuLayers, GradientsMatchFiniteDifferences) {
  struct Case {
    std::string layers;
    std::string input;
    size_t index;
  } cases[] = {
      {R"([{"name":"l","op":"linear","in":7,"out":5}])", R"({"micro_batch_size":3,"features":7})",
       0},
      {R"([{"name":"l","op":"linear","in":6,"out":9,"bias":false}])",
       R"({"micro_batch_size":4,"features":6})", 0},
      {R"([{"name":"r","op":"relu"}])", R"({"micro_batch_size":3,"features":7})", 0},
      {R"([{"name":"g","op":"gelu"}])", R"({"micro_batch_size":3,"features":7})", 0},
      {R"([{"name":"n","op":"layernorm","hidden":9}])", R"({"micro_batch_size":3,"features":9})",
       0},
      {R"([{"name":"n","op":"rmsnorm","hidden":9}])", R"({"micro_batch_size":3,"features":9})", 0},
      {R"([{"name":"m","op":"mse"}])", R"({"micro_batch_size":3,"features":6})", 0},
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":6,"positions":5,"token_types":2},
          {"name":"c","op":"cross_entropy"}])",
       kTokenInput, 0},
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":6},{"name":"c","op":"cross_entropy"}])",
       kTokenInput, 1},
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":12},
          {"name":"b","op":"transformer_block","hidden":12,"heads":3,"ffn":20,"causal":true}])",
       kTokenInput, 1},
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":12},
          {"name":"b","op":"transformer_block","hidden":12,"heads":2,"ffn":16,"causal":false}])",
       kTokenInput, 1},
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
          {"name":"b","op":"transformer_block","hidden":8,"heads":2,"ffn":12,"norm":"rmsnorm",
           "mlp":"swiglu","bias":false,"rotary":true,"causal":true}])",
       kTokenInput, 1},
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
          {"name":"b","op":"transformer_block","hidden":8,"heads":4,"ffn":10,"norm":"layernorm",
           "mlp":"swiglu","bias":true,"rotary":true,"causal":false}])",
       kTokenInput, 1},
      // GeGLU (gelu(gate) * up), with biases and a head size of its own.
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
          {"name":"b","op":"transformer_block","hidden":8,"heads":2,"kv_heads":1,"head_dim":6,
           "ffn":10,"norm":"rmsnorm","mlp":"geglu","bias":true,"rotary":true,"causal":true}])",
       kTokenInput, 1},
      // Squared ReLU (max(x, 0)^2), with and without biases.
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
          {"name":"b","op":"transformer_block","hidden":8,"heads":2,"ffn":12,"norm":"layernorm",
           "mlp":"relu2","bias":false,"rotary":true,"causal":true}])",
       kTokenInput, 1},
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":12},
          {"name":"b","op":"transformer_block","hidden":12,"heads":3,"kv_heads":1,"ffn":10,
           "mlp":"relu2","bias":true,"causal":false}])",
       kTokenInput, 1},
      // Grouped-query attention: 4 query heads share 2 key/value heads (and 1: multi-query).
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":8},
          {"name":"b","op":"transformer_block","hidden":8,"heads":4,"kv_heads":2,"ffn":10,
           "norm":"rmsnorm","mlp":"swiglu","bias":false,"rotary":true,"causal":true}])",
       kTokenInput, 1},
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":12},
          {"name":"b","op":"transformer_block","hidden":12,"heads":3,"kv_heads":1,"ffn":8,
           "causal":false}])",
       kTokenInput, 1},
      // A head size of its own (q 3 x 4 = 12 wide on a hidden size of 10) and biases on q, k
      // and v only.
      {R"([{"name":"e","op":"embedding","vocab":11,"hidden":10},
          {"name":"b","op":"transformer_block","hidden":10,"heads":3,"kv_heads":1,"head_dim":4,
           "ffn":8,"norm":"rmsnorm","mlp":"swiglu","bias":false,"qkv_bias":true,"rotary":true,
           "causal":true}])",
       kTokenInput, 1},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    const Built b = Build(c.layers, c.input);
    ASSERT_FALSE(b.model.layers.empty());
    CheckGradients(b.layer(c.index), b.model.input, seed++);
  }
}

TEST(CpuLayers, FloatAgreesWithDouble) {
  const Built b = Build(R"([{"name":"e","op":"embedding","vocab":50,"hidden":32,"positions":16},
      {"name":"blk","op":"transformer_block","hidden":32,"heads":4,"ffn":64,"causal":true},
      {"name":"ln","op":"layernorm","hidden":32},
      {"name":"head","op":"linear","in":32,"out":50},
      {"name":"loss","op":"cross_entropy"}])",
                        R"({"micro_batch_size":2,"seq_len":16})");
  std::mt19937_64 rng(9);
  for (const Layer& spec : b.model.layers) {
    auto d = MakeCpuLayer<double>(spec, b.model.input);
    auto f = MakeCpuLayer<float>(spec, b.model.input);
    ASSERT_TRUE(d.ok() && f.ok());
    std::vector<double> pd((*d)->param_count());
    (*d)->Init(pd.data(), 3);
    std::vector<float> pf(pd.begin(), pd.end());
    const int64_t in_count = (*d)->rows() * std::max<int64_t>((*d)->in_width(), 1);
    std::vector<double> xd = Normal(in_count, rng);
    std::vector<float> xf(xd.begin(), xd.end());
    Data data = RandomData(spec, b.model.input, rng);
    std::vector<float> targets(data.targets.begin(), data.targets.end());
    MicroBatch bf{data.tokens.data(), data.labels.data(), targets.data()};
    std::vector<double> yd((*d)->output_count()), sd((*d)->saved_count()),
        wd((*d)->workspace_count() + 1);
    std::vector<float> yf(yd.size(), std::nanf("")), sf(sd.size()), wf(wd.size());
    (*d)->Forward(pd.data(), xd.data(), data.batch(), yd.data(), sd.data(), wd.data());
    (*f)->Forward(pf.data(), xf.data(), bf, yf.data(), sf.data(), wf.data());
    EXPECT_LT(RelativeError(std::vector<double>(yf.begin(), yf.end()), yd), 1e-5) << spec.name;
  }
}

TEST(CpuLayers, KeptActivationsMatchTheAnalyticCount) {
  // In fp32 every kept value, norm statistics included, is 4 bytes, so the analytic profiler's
  // activation_bytes must equal the reference layer's saved values x 4.
  const Built gpt = Build(R"([{"name":"e","op":"embedding","vocab":50,"hidden":32,"positions":16},
      {"name":"blk","op":"transformer_block","hidden":32,"heads":4,"ffn":64,"causal":true},
      {"name":"ln","op":"layernorm","hidden":32},{"name":"head","op":"linear","in":32,"out":50},
      {"name":"act","op":"gelu"},{"name":"loss","op":"cross_entropy"}])",
                          R"({"micro_batch_size":2,"seq_len":16})");
  const Built llama = Build(R"([{"name":"e","op":"embedding","vocab":50,"hidden":32},
      {"name":"blk","op":"transformer_block","hidden":32,"heads":4,"ffn":48,"norm":"rmsnorm",
       "mlp":"swiglu","bias":false,"rotary":true,"causal":true},
      {"name":"n","op":"rmsnorm","hidden":32},{"name":"head","op":"linear","in":32,"out":50},
      {"name":"loss","op":"cross_entropy"}])",
                            R"({"micro_batch_size":3,"seq_len":8})");
  const Built gqa = Build(R"([{"name":"e","op":"embedding","vocab":50,"hidden":32},
      {"name":"blk","op":"transformer_block","hidden":32,"heads":8,"kv_heads":2,"head_dim":6,
       "ffn":48,"norm":"rmsnorm","mlp":"swiglu","bias":false,"qkv_bias":true,"rotary":true,
       "causal":true},
      {"name":"n","op":"rmsnorm","hidden":32},{"name":"head","op":"linear","in":32,"out":50},
      {"name":"loss","op":"cross_entropy"}])",
                          R"({"micro_batch_size":3,"seq_len":8})");
  const Built relu2 = Build(R"([{"name":"e","op":"embedding","vocab":50,"hidden":32},
      {"name":"blk","op":"transformer_block","hidden":32,"heads":4,"kv_heads":2,"ffn":48,
       "mlp":"relu2","bias":false,"rotary":true,"causal":true},
      {"name":"n","op":"layernorm","hidden":32},{"name":"head","op":"linear","in":32,"out":50},
      {"name":"loss","op":"cross_entropy"}])",
                            R"({"micro_batch_size":3,"seq_len":8})");
  for (const Built* b : {&gpt, &llama, &gqa, &relu2}) {
    for (const Layer& spec : b->model.layers) {
      auto layer = MakeCpuLayer<float>(spec, b->model.input);
      ASSERT_TRUE(layer.ok());
      const LayerMemory m = AnalyticLayerMemory(spec, b->model.input, DType::kFp32);
      EXPECT_EQ(static_cast<double>((*layer)->saved_count() * 4), m.activation_bytes) << spec.name;
      EXPECT_EQ(static_cast<double>((*layer)->param_count() * 4), m.param_bytes) << spec.name;
    }
  }
}

}  // namespace
}  // namespace pp
