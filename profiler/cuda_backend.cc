// The cuda backend: measures the CUDA layers (layers/cuda_layer.h) on one GPU.
//   time:    forward, backward-input and backward-weight, each with the one timing protocol on
//            the layer's stream (cuda_timing.h: warm-up, events around each repeat, median and
//            p95); then one more untimed pass under CUPTI for kernel-only time and count.
//   memory:  each layer's tensors come from one arena allocation (layers/cuda_arena.h), so
//            param, activation (saved), output and workspace bytes are what was carved;
//            cudaMemGetInfo checks that nothing else was allocated meanwhile.
//   link:    peer copies between two GPUs where two are given or visible, else a
//            device-to-device copy: bandwidth from 256 MiB, latency from 4 bytes.
// Identical layers (SameShape) are measured once unless dedupe is off. Out of memory becomes
// "layer X does not fit at micro-batch B"; no GPU becomes "no CUDA GPU is visible: ...".
// --gpus DxK profiles on one green-context share of GPU D (1/K of its SMs) and records the
// share as sm_share, so that `run --gpus DxK` is predicted from the SMs each stage gets.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "core/kind_entry.h"
#include "core/version.h"
#include "layers/cuda_arena.h"
#include "layers/cuda_check.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layer.h"
#include "layers/green_context.h"
#include "profiler/backends.h"
#include "profiler/cuda_backend_cupti.h"
#include "profiler/cuda_timing.h"
#include "profiler/progress.h"

namespace pp {
namespace {

constexpr int kDefaultRepeats = 20;
constexpr int kWarmup = 3;
// cudaMemGetInfo may move by this much without anyone allocating (driver bookkeeping).
constexpr int64_t kMemorySlackBytes = int64_t{64} << 20;

std::string NowUtc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string VersionText(int v) {
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

struct Measured {
  LayerProfile profile;
  std::string note;  // a cross-check remark for stderr, "" when none
};

template <typename T>
Result<Measured> MeasureLayer(CudaContext& ctx, const Layer& spec, const ModelInput& input,
                              int repeats, uint64_t seed, bool* cupti_ok) {
  auto made = MakeCudaLayer<T>(spec, input);
  if (!made.ok()) return made.status();
  const CudaLayer<T>& layer = **made;
  const int64_t in_count = layer.rows() * std::max<int64_t>(layer.in_width(), 1);
  const int64_t rows = layer.rows();
  const size_t need = DeviceArena::Bytes<T>(layer.param_count()) * 2 +
                      DeviceArena::Bytes<T>(in_count) * 3 +
                      DeviceArena::Bytes<T>(layer.output_count()) * 2 +
                      DeviceArena::Bytes<T>(layer.saved_count()) +
                      DeviceArena::Bytes<T>(layer.pending_count()) +
                      DeviceArena::Bytes<T>(layer.workspace_count()) +
                      DeviceArena::Bytes<int32_t>(rows) * 2;
  size_t free_before = 0, total = 0;
  PP_CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
  const std::string no_fit = "layer \"" + spec.name + "\" does not fit at micro-batch " +
                             std::to_string(input.micro_batch_size);
  auto arena_made = DeviceArena::Create(need);
  if (!arena_made.ok()) {
    if (!cuda::IsOutOfMemory(arena_made.status())) return arena_made.status();
    return Status::Error(no_fit + " (it needs " + std::to_string(need) + " bytes; " +
                         std::to_string(free_before) + " are free)");
  }
  DeviceArena& arena = **arena_made;
  T* params = arena.Take<T>(layer.param_count());
  T* dparams = arena.Take<T>(layer.param_count());
  T* x = arena.Take<T>(in_count);
  T* dx = arena.Take<T>(in_count);
  T* targets = arena.Take<T>(in_count);
  T* y = arena.Take<T>(layer.output_count());
  T* dy = arena.Take<T>(layer.output_count());
  T* saved = arena.Take<T>(layer.saved_count());
  T* pending = arena.Take<T>(layer.pending_count());
  T* work = arena.Take<T>(layer.workspace_count());
  int32_t* tokens = arena.Take<int32_t>(rows);
  int32_t* labels = arena.Take<int32_t>(rows);
  if (labels == nullptr) return Status::Error("cuda backend: arena sized too small (a bug)");

  // Inputs: the reference's initial weights, random ids, and normal activations and gradients
  // drawn on the device (FillNormal): the loss's input is rows x vocabulary (412 million
  // values for GPT-2 at micro-batch 8), too many to draw one by one on the host.
  PP_RETURN_IF_ERROR(layer.Init(ctx, params, seed));
  PP_CUDA_CHECK(cudaMemsetAsync(dparams, 0, sizeof(T) * layer.param_count(), ctx.stream()));
  PP_RETURN_IF_ERROR(FillNormal<T>(ctx, x, in_count, 3 * seed));
  PP_RETURN_IF_ERROR(FillNormal<T>(ctx, targets, in_count, 3 * seed + 1));
  PP_RETURN_IF_ERROR(FillNormal<T>(ctx, dy, layer.output_count(), 3 * seed + 2));
  std::mt19937_64 rng(seed);
  const int64_t classes = KindEntry(spec.op).IdRange(spec);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(classes - 1));
  std::vector<int32_t> ids(static_cast<size_t>(2 * rows));
  for (int32_t& v : ids) v = id(rng);
  PP_CUDA_CHECK(cudaMemcpyAsync(tokens, ids.data(), sizeof(int32_t) * 2 * rows,
                                cudaMemcpyHostToDevice, ctx.stream()));
  PP_RETURN_IF_ERROR(ctx.Synchronize());
  const CudaMicroBatch batch{tokens, labels, targets};
  T* dx_ptr = layer.has_input_gradient() ? dx : nullptr;

  auto forward = [&] { return layer.Forward(ctx, params, x, batch, y, saved, work); };
  auto input_grad = [&] {
    return layer.BackwardInput(ctx, params, dy, saved, batch, dx_ptr, pending, work);
  };
  auto weight_grad = [&] {
    return layer.BackwardWeight(ctx, params, dy, saved, pending, batch, dparams, work);
  };
  Result<Timing> f = TimeOnStream(ctx.stream(), forward, kWarmup, repeats);
  if (!f.ok()) return f.status();
  Result<Timing> bi = TimeOnStream(ctx.stream(), input_grad, kWarmup, repeats);
  if (!bi.ok()) return bi.status();
  Result<Timing> bw = TimeOnStream(ctx.stream(), weight_grad, kWarmup, repeats);
  if (!bw.ok()) return bw.status();

  Measured m;
  LayerProfile& lp = m.profile;
  if (*cupti_ok) {
    Status started = KernelRecorder::Instance().Start();
    if (started.ok()) {
      PP_RETURN_IF_ERROR(forward());
      PP_RETURN_IF_ERROR(input_grad());
      PP_RETURN_IF_ERROR(weight_grad());
      PP_RETURN_IF_ERROR(ctx.Synchronize());
      Result<KernelTotals> k = KernelRecorder::Instance().Stop();
      if (k.ok() && k->dropped == 0) {
        lp.kernel_ms = k->kernel_ms;
        lp.kernel_count = k->kernel_count;
      } else {
        started = k.ok() ? Status::Error("CUPTI dropped records") : k.status();
      }
    }
    if (!started.ok()) {
      std::cerr << "note: CUPTI kernel records are unavailable (" << started.message()
                << "); kernel_ms and kernel_count are left out, times come from CUDA events\n";
      *cupti_ok = false;
    }
  }

  size_t free_after = 0;
  PP_CUDA_CHECK(cudaMemGetInfo(&free_after, &total));
  const int64_t outside = static_cast<int64_t>(free_before) - static_cast<int64_t>(free_after) -
                          static_cast<int64_t>(arena.capacity());
  if (outside > kMemorySlackBytes) {
    m.note = "layer \"" + spec.name + "\": device memory fell by " + std::to_string(outside) +
             " bytes more than the arena holds (allocations outside the tool's accounting)";
  }

  const int64_t bytes = sizeof(T);
  lp.name = spec.name;
  lp.op = std::string(LayerKindName(spec.op));
  lp.forward_ms = f->median_ms;
  lp.forward_p95_ms = f->p95_ms;
  lp.backward_input_ms = bi->median_ms;
  lp.backward_weight_ms = bw->median_ms;
  lp.backward_ms = bi->median_ms + bw->median_ms;
  lp.param_bytes = static_cast<uint64_t>(bytes * layer.param_count());
  lp.activation_bytes = static_cast<uint64_t>(bytes * layer.saved_count());
  lp.output_bytes = static_cast<uint64_t>(bytes * layer.output_count());
  lp.workspace_bytes = static_cast<uint64_t>(bytes * (layer.workspace_count() + layer.pending_count()));
  lp.tied_to = spec.tied_to;
  lp.tied_param_bytes = TiedParamBytes(spec, {}, lp.param_bytes);
  return m;
}

// Copy bandwidth and latency between `from` and `to` (the same device: a D2D copy).
Result<Link> MeasureLink(CudaContext& ctx, int from, int to) {
  constexpr size_t kBig = size_t{256} << 20, kSmall = 4;
  void* src = nullptr;
  void* dst = nullptr;
  PP_CUDA_CHECK(cudaSetDevice(to));
  if (to != from) {
    int can = 0;
    PP_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, to, from));
    if (can) {
      const cudaError_t e = cudaDeviceEnablePeerAccess(from, 0);
      if (e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) PP_CUDA_CHECK(e);
      (void)cudaGetLastError();
    }
  }
  const cudaError_t got = cudaMalloc(&dst, kBig);
  PP_CUDA_CHECK(cudaSetDevice(from));
  PP_CUDA_CHECK(got);
  const cudaError_t got_src = cudaMalloc(&src, kBig);
  if (got_src != cudaSuccess) (void)cudaFree(dst);
  PP_CUDA_CHECK(got_src);
  auto copy = [&](size_t n) {
    return [&, n]() -> Status {
      PP_CUDA_CHECK(cudaMemcpyPeerAsync(dst, to, src, from, n, ctx.stream()));
      return Status::Ok();
    };
  };
  Result<Timing> big = TimeOnStream(ctx.stream(), copy(kBig), 2, 10);
  Result<Timing> small = TimeOnStream(ctx.stream(), copy(kSmall), 10, 100);
  (void)cudaFree(src);
  (void)cudaFree(dst);
  if (!big.ok()) return big.status();
  if (!small.ok()) return small.status();
  Link link;
  link.bandwidth_bytes_per_s = big->median_ms > 0 ? 1000.0 * kBig / big->median_ms : 1e12;
  link.latency_ms = small->median_ms;
  return link;
}

class Cuda final : public ProfilerBackend {
 public:
  std::string_view name() const override { return "cuda"; }

  Result<Profile> Run(const ProfileRequest& request) const override {
    if (request.model == nullptr) return Status::Error("no model to profile");
    if (request.repeats < 0) return Status::Error("--repeats must be at least 1");
    int count = 0;
    PP_RETURN_IF_ERROR(VisibleGpus(&count));
    Result<GpuSpec> gpus = ParseGpuSpec(request.gpus, count);
    if (!gpus.ok()) return gpus.status();
    const int device = gpus->gpus.front();
    const int peer = gpus->virtual_devices() ? device
                     : gpus->gpus.size() > 1 ? gpus->gpus[1]
                     : (count > 1 ? (device + 1) % count : device);
    // --gpus DxK: measure on one green-context share of 1/K of the SMs, the share each
    // stage of `run --gpus DxK` gets (layers/green_context.h).
    std::unique_ptr<GreenContexts> shares;
    cudaStream_t share_stream = nullptr;
    if (gpus->virtual_devices()) {
      auto made = GreenContexts::Create(device, gpus->shares);
      if (made.ok()) {
        shares = std::move(*made);
        PP_RETURN_IF_ERROR(shares->MakeCurrent(0));
        Result<cudaStream_t> stream = shares->CreateStream(0);
        if (!stream.ok()) return stream.status();
        share_stream = *stream;
      } else {
        std::cerr << "pp-partition: warning: green contexts are unavailable (" << made.message()
                  << "); profiling on all of GPU " << device << "'s SMs\n";
      }
    }
    // Destroys the share's stream and leaves the primary context current before `shares` goes.
    struct StreamOwner {
      cudaStream_t stream;
      int device;
      ~StreamOwner() {
        if (stream != nullptr) (void)cudaStreamDestroy(stream);
        if (stream != nullptr) (void)cudaSetDevice(device);
      }
    } stream_owner{share_stream, device};

    const Model& model = *request.model;
    ModelInput input = model.input;
    if (request.micro_batch_size) input.micro_batch_size = *request.micro_batch_size;
    const DType dtype = request.dtype ? *request.dtype : model.dtype;
    if (dtype == DType::kFp8) {
      return Status::Error("the cuda backend measures bf16 and fp32 layers; fp8 is modelled by "
                           "the analytic backend only (--backend analytic)");
    }
    const int repeats = request.repeats > 0 ? request.repeats : kDefaultRepeats;

    auto ctx_made = shares ? CudaContext::CreateOnStream(device, share_stream)
                           : CudaContext::Create(device);
    if (!ctx_made.ok()) return ctx_made.status();
    CudaContext& ctx = **ctx_made;
    cudaDeviceProp prop{};
    PP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    int driver = 0;
    PP_CUDA_CHECK(cudaDriverGetVersion(&driver));

    Profile p;
    p.model = model.name;
    p.backend = "cuda";
    // --gpus DxK: the K virtual devices share the GPU's memory, a K-th each.
    const uint64_t memory = static_cast<uint64_t>(prop.totalGlobalMem) /
                            static_cast<uint64_t>(gpus->virtual_devices() ? gpus->shares : 1);
    p.device = {prop.name, memory};
    p.micro_batch_size = input.micro_batch_size;
    p.dtype = dtype;
    p.measured_at = NowUtc();
    p.driver = VersionText(driver);
    p.tool_version = kToolVersion;
    Result<Link> link = MeasureLink(ctx, device, peer);
    if (!link.ok()) return link.status();
    p.link = *link;
    if (shares) {
      PP_RETURN_IF_ERROR(shares->MakeCurrent(0));  // MeasureLink selected the primary context
      p.sm_share = shares->fraction(0);
    }

    bool cupti_ok = true;
    ProgressBar bar(request.progress, static_cast<int>(model.layers.size()));
    for (size_t i = 0; i < model.layers.size(); ++i) {
      const Layer& layer = model.layers[i];
      bar.Update(static_cast<int>(i), layer.name);
      const LayerProfile* twin = nullptr;
      for (size_t j = 0; request.dedupe && j < i && twin == nullptr; ++j) {
        if (SameShape(model.layers[j], layer)) twin = &p.layers[j];
      }
      if (twin != nullptr) {
        LayerProfile copy = *twin;
        copy.name = layer.name;
        copy.tied_to = layer.tied_to;
        copy.tied_param_bytes = TiedParamBytes(layer, {}, copy.param_bytes);
        p.layers.push_back(std::move(copy));
        continue;
      }
      Result<Measured> m =
          dtype == DType::kBf16
              ? MeasureLayer<__nv_bfloat16>(ctx, layer, input, repeats, 1000 + i, &cupti_ok)
              : MeasureLayer<float>(ctx, layer, input, repeats, 1000 + i, &cupti_ok);
      if (!m.ok()) {
        bar.Done();
        if (cuda::IsOutOfMemory(m.status())) {
          return Status::Error("layer \"" + layer.name + "\" does not fit at micro-batch " +
                               std::to_string(input.micro_batch_size) + " (" + m.message() + ")");
        }
        if (m.message().rfind("layer \"", 0) == 0) return m.status();
        return m.status().Prefixed("layer \"" + layer.name + "\"");
      }
      if (!m->note.empty()) std::cerr << "note: " << m->note << "\n";
      p.layers.push_back(std::move(m->profile));
    }
    bar.Done();
    return p;
  }
};

}  // namespace

const ProfilerBackend* CudaBackend() {
  static const Cuda* const kBackend = new Cuda();
  return kBackend;
}

}  // namespace pp
