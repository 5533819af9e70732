// The cpu backend: times the CPU reference layers (layers/, fp32, OpenBLAS) on this machine
// with the one timing protocol (timing.h), so the whole flow runs without a GPU. Identical
// layers are timed once unless dedupe is off. Byte counts are what the layers really hold, in
// fp32: the cpu backend always computes in fp32.
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <new>
#include <random>
#include <vector>

#include "core/kind_entry.h"
#include "core/version.h"
#include "layers/cpu_math.h"
#include "layers/layer.h"
#include "profiler/backends.h"
#include "profiler/progress.h"
#include "profiler/timing.h"

namespace pp {
namespace {

constexpr int kDefaultRepeats = 3;
constexpr int kWarmup = 1;

std::string CpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
    }
  }
  return "CPU";
}

uint64_t PhysicalMemory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

std::string TodayUtc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Times one layer's three parts. All buffers are allocated before timing starts.
Result<LayerProfile> MeasureLayer(const Layer& spec, const ModelInput& input, int repeats,
                                  uint64_t seed) {
  auto made = MakeCpuLayer<float>(spec, input);
  if (!made.ok()) return made.status();
  const CpuLayer<float>& layer = **made;
  const int64_t in_count = layer.rows() * std::max<int64_t>(layer.in_width(), 1);
  const double need = 4.0 * static_cast<double>(2 * layer.param_count() + layer.saved_count() +
                                                layer.pending_count() + layer.workspace_count() +
                                                2 * in_count + 2 * layer.output_count());
  const uint64_t memory = PhysicalMemory();
  const std::string no_fit = "layer \"" + spec.name + "\" does not fit at micro-batch " +
                             std::to_string(input.micro_batch_size);
  if (memory > 0 && need > 0.8 * static_cast<double>(memory)) {
    return Status::Error(no_fit + " (it needs " + std::to_string(static_cast<uint64_t>(need)) +
                         " bytes of host memory)");
  }
  try {
    std::vector<float> params(layer.param_count()), dparams(layer.param_count(), 0.0f);
    std::vector<float> saved(layer.saved_count()), pending(layer.pending_count() + 1);
    std::vector<float> work(layer.workspace_count() + 1), x(in_count), dx(in_count);
    std::vector<float> y(layer.output_count()), dy(layer.output_count());
    layer.Init(params.data(), seed);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : x) v = normal(rng);
    for (float& v : dy) v = normal(rng);
    const int64_t classes = KindEntry(spec.op).IdRange(spec);
    std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(classes - 1));
    std::vector<int32_t> tokens(layer.rows()), labels(layer.rows());
    for (int64_t r = 0; r < layer.rows(); ++r) tokens[r] = id(rng), labels[r] = id(rng);
    std::vector<float> targets(in_count);
    for (float& v : targets) v = normal(rng);
    const MicroBatch batch{tokens.data(), labels.data(), targets.data()};
    float* dx_ptr = layer.has_input_gradient() ? dx.data() : nullptr;

    // The parts are timed in passes, forward, input gradient and weight gradient in turn, as
    // a training step runs them, so each part finds the caches as the others leave them: a
    // forward timed over and over alone finds its weights in cache, which in a step the
    // gradients have evicted. One whole pass runs untimed first: a part timed before the
    // others had run in the process was up to 30 % slow (docs/profiling.md).
    const auto forward_call = [&] {
      layer.Forward(params.data(), x.data(), batch, y.data(), saved.data(), work.data());
    };
    const auto input_call = [&] {
      layer.BackwardInput(params.data(), dy.data(), saved.data(), batch, dx_ptr, pending.data(),
                          work.data());
    };
    const auto weight_call = [&] {
      layer.BackwardWeight(params.data(), dy.data(), saved.data(), pending.data(), batch,
                           dparams.data(), work.data());
    };
    for (int i = 0; i < kWarmup; ++i) {
      forward_call();
      input_call();
      weight_call();
    }
    std::vector<double> forward_ms, input_ms, weight_ms;
    for (int r = 0; r < repeats; ++r) {
      forward_ms.push_back(TimeOnceOnHost(forward_call));
      input_ms.push_back(TimeOnceOnHost(input_call));
      weight_ms.push_back(TimeOnceOnHost(weight_call));
    }
    const Timing forward = Summarize(std::move(forward_ms));
    const Timing input_grad = Summarize(std::move(input_ms));
    const Timing weight_grad = Summarize(std::move(weight_ms));

    LayerProfile lp;
    lp.name = spec.name;
    lp.op = std::string(LayerKindName(spec.op));
    lp.forward_ms = forward.median_ms;
    lp.forward_p95_ms = forward.p95_ms;
    lp.backward_input_ms = input_grad.median_ms;
    lp.backward_weight_ms = weight_grad.median_ms;
    lp.backward_ms = input_grad.median_ms + weight_grad.median_ms;
    lp.param_bytes = 4 * static_cast<uint64_t>(layer.param_count());
    lp.activation_bytes = 4 * static_cast<uint64_t>(layer.saved_count());
    lp.output_bytes = 4 * static_cast<uint64_t>(layer.output_count());
    lp.workspace_bytes = 4 * static_cast<uint64_t>(layer.workspace_count() + layer.pending_count());
    lp.tied_to = spec.tied_to;
    lp.tied_param_bytes = TiedParamBytes(spec, {}, lp.param_bytes);
    return lp;
  } catch (const std::bad_alloc&) {
    return Status::Error(no_fit + " (out of host memory)");
  }
}

// Host copy bandwidth (a 64 MiB memcpy) and latency (a 4-byte one): what a transfer between
// two CPU stages of one process costs.
Link MeasureHostLink() {
  constexpr size_t kBig = size_t{64} << 20;
  std::vector<char> a(kBig, 1), b(kBig, 0);
  const Timing big = TimeOnHost([&] { std::memcpy(b.data(), a.data(), kBig); }, 1, 5);
  volatile char small_src[4] = {1, 2, 3, 4};
  char small_dst[4];
  const Timing small = TimeOnHost(
      [&] { std::memcpy(small_dst, const_cast<char*>(small_src), sizeof small_dst); }, 10, 101);
  (void)small_dst;
  Link link;
  link.bandwidth_bytes_per_s = big.median_ms > 0 ? 1000.0 * kBig / big.median_ms : 1e12;
  link.latency_ms = small.median_ms;
  return link;
}

class Cpu final : public ProfilerBackend {
 public:
  std::string_view name() const override { return "cpu"; }

  Result<Profile> Run(const ProfileRequest& request) const override {
    if (request.model == nullptr) return Status::Error("no model to profile");
    if (!request.gpus.empty()) return Status::Error("the cpu backend uses no GPUs; drop --gpus");
    if (request.repeats < 0) return Status::Error("--repeats must be at least 1");
    const Model& model = *request.model;
    ModelInput input = model.input;
    if (request.micro_batch_size) input.micro_batch_size = *request.micro_batch_size;
    const int repeats = request.repeats > 0 ? request.repeats : kDefaultRepeats;

    Profile p;
    p.model = model.name;
    p.backend = "cpu";
    p.device = {CpuName(), PhysicalMemory()};
    p.micro_batch_size = input.micro_batch_size;
    p.dtype = DType::kFp32;
    p.measured_at = TodayUtc();
    p.tool_version = kToolVersion;
    p.link = MeasureHostLink();

    // Time each layer as a pipeline stage runs it: matrix products on one thread.
    const int blas_threads = cpu::SetBlasThreads(1);
    ProgressBar bar(request.progress, static_cast<int>(model.layers.size()));
    for (size_t i = 0; i < model.layers.size(); ++i) {
      const Layer& layer = model.layers[i];
      bar.Update(static_cast<int>(i), layer.name);
      const LayerProfile* twin = nullptr;
      if (request.dedupe) {
        for (size_t j = 0; j < i && twin == nullptr; ++j) {
          if (SameShape(model.layers[j], layer)) twin = &p.layers[j];
        }
      }
      if (twin != nullptr) {
        LayerProfile copy = *twin;
        copy.name = layer.name;
        copy.tied_to = layer.tied_to;
        copy.tied_param_bytes = TiedParamBytes(layer, {}, copy.param_bytes);
        p.layers.push_back(std::move(copy));
        continue;
      }
      Result<LayerProfile> lp = MeasureLayer(layer, input, repeats, 1000 + i);
      if (!lp.ok()) {
        cpu::SetBlasThreads(blas_threads);
        return lp.status();
      }
      p.layers.push_back(std::move(*lp));
    }
    bar.Done();
    cpu::SetBlasThreads(blas_threads);
    return p;
  }
};

}  // namespace

const ProfilerBackend* CpuBackend() {
  static const Cpu* const kBackend = new Cpu();
  return kBackend;
}

}  // namespace pp
