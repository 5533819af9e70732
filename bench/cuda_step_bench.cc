// cuda_step_bench MODEL.json [--micro-batch-size B] [--dtype bf16|fp32] [--repeats N] [-o OUT]
//
// Checks that per-layer profiling adds up: profiles the model with the cuda backend (Σ over
// layers of forward_ms + backward_ms), then runs the whole model on one GPU — every layer's
// forward, then every layer's input and weight gradient in reverse — as one step per repeat,
// timed with the same protocol (warm-up, events, median and p95). Prints one JSON document
// (and writes it to OUT): the step, the sum, their ratio. Everything is allocated in one arena
// before timing; exit status 1 on any error (out of memory included), with the message.
#include <cuda_bf16.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "core/model.h"
#include "layers/cuda_arena.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layer.h"
#include "profiler/backend.h"
#include "profiler/cuda_timing.h"

namespace pp {
namespace {

constexpr int kWarmup = 3;

struct Options {
  std::string model, output;
  int64_t micro_batch_size = 0;
  std::string dtype;
  int repeats = 20;
};

template <typename T>
Result<Timing> TimeStep(const Model& model, const ModelInput& input, int repeats) {
  auto ctx_made = CudaContext::Create(0);
  if (!ctx_made.ok()) return ctx_made.status();
  CudaContext& ctx = **ctx_made;
  const size_t n = model.layers.size();
  std::vector<std::unique_ptr<CudaLayer<T>>> layers;
  size_t bytes = 0;
  int64_t work = 0;
  for (const Layer& l : model.layers) {
    auto made = MakeCudaLayer<T>(l, input);
    if (!made.ok()) return made.status();
    const CudaLayer<T>& c = **made;
    bytes += 2 * DeviceArena::Bytes<T>(c.param_count()) + DeviceArena::Bytes<T>(c.saved_count()) +
             DeviceArena::Bytes<T>(c.pending_count()) + 2 * DeviceArena::Bytes<T>(c.output_count());
    work = std::max(work, c.workspace_count());
    layers.push_back(std::move(*made));
  }
  const int64_t rows = input.rows();
  const int64_t first_in = rows * std::max<int64_t>(layers[0]->in_width(), 1);
  bytes += 2 * DeviceArena::Bytes<T>(first_in) + DeviceArena::Bytes<T>(work) +
           2 * DeviceArena::Bytes<int32_t>(rows) + DeviceArena::Bytes<T>(rows * std::max<int64_t>(layers[n - 1]->in_width(), 1));
  auto arena_made = DeviceArena::Create(bytes);
  if (!arena_made.ok()) {
    return Status::Error("the whole model does not fit at micro-batch " +
                         std::to_string(input.micro_batch_size) + " (" + std::to_string(bytes) +
                         " bytes): " + arena_made.message());
  }
  DeviceArena& arena = **arena_made;
  // act[i] is layer i's input, act[i + 1] its output; grad[i + 1] the gradient of act[i + 1].
  std::vector<T*> params(n), dparams(n), saved(n), pending(n), act(n + 1), grad(n + 1);
  act[0] = arena.Take<T>(first_in);
  grad[0] = arena.Take<T>(first_in);
  for (size_t i = 0; i < n; ++i) {
    const CudaLayer<T>& c = *layers[i];
    params[i] = arena.Take<T>(c.param_count());
    dparams[i] = arena.Take<T>(c.param_count());
    saved[i] = arena.Take<T>(c.saved_count());
    pending[i] = arena.Take<T>(c.pending_count());
    act[i + 1] = arena.Take<T>(c.output_count());
    grad[i + 1] = arena.Take<T>(c.output_count());
  }
  T* scratch = arena.Take<T>(work);
  T* targets = arena.Take<T>(rows * std::max<int64_t>(layers[n - 1]->in_width(), 1));
  int32_t* ids = arena.Take<int32_t>(2 * rows);
  if (ids == nullptr) return Status::Error("cuda_step_bench: arena sized too small (a bug)");

  for (size_t i = 0; i < n; ++i) {
    PP_RETURN_IF_ERROR(layers[i]->Init(ctx, params[i], 1000 + i));
    PP_RETURN_IF_ERROR(Fill<T>(ctx, dparams[i], layers[i]->param_count(), 0.0f));
  }
  PP_RETURN_IF_ERROR(Fill<T>(ctx, act[0], first_in, 0.5f));
  PP_RETURN_IF_ERROR(Fill<T>(ctx, targets, rows * std::max<int64_t>(layers[n - 1]->in_width(), 1), 0.25f));
  PP_RETURN_IF_ERROR(Fill<T>(ctx, grad[n], layers[n - 1]->output_count(), 1.0f));
  // Token ids and labels 0 .. 3 cycle through the smallest table.
  std::vector<int32_t> host_ids(static_cast<size_t>(2 * rows));
  for (size_t i = 0; i < host_ids.size(); ++i) host_ids[i] = static_cast<int32_t>(i % 4);
  PP_CUDA_CHECK(cudaMemcpy(ids, host_ids.data(), sizeof(int32_t) * host_ids.size(),
                           cudaMemcpyHostToDevice));
  const CudaMicroBatch batch{ids, ids + rows, targets};

  auto step = [&]() -> Status {
    for (size_t i = 0; i < n; ++i) {
      PP_RETURN_IF_ERROR(
          layers[i]->Forward(ctx, params[i], act[i], batch, act[i + 1], saved[i], scratch));
    }
    for (size_t i = n; i-- > 0;) {
      const CudaLayer<T>& c = *layers[i];
      T* dx = c.has_input_gradient() && i > 0 ? grad[i] : nullptr;
      PP_RETURN_IF_ERROR(c.BackwardInput(ctx, params[i], grad[i + 1], saved[i], batch, dx,
                                         pending[i], scratch));
      PP_RETURN_IF_ERROR(c.BackwardWeight(ctx, params[i], grad[i + 1], saved[i], pending[i],
                                          batch, dparams[i], scratch));
    }
    return Status::Ok();
  };
  return TimeOnStream(ctx.stream(), step, kWarmup, repeats);
}

int Run(const Options& o) {
  Result<Model> model = LoadModel(o.model);
  if (!model.ok()) return std::fprintf(stderr, "%s\n", model.message().c_str()), 1;
  ModelInput input = model->input;
  if (o.micro_batch_size > 0) input.micro_batch_size = o.micro_batch_size;
  DType dtype = model->dtype;
  if (!o.dtype.empty()) {
    auto d = ParseDType(o.dtype);
    if (!d) return std::fprintf(stderr, "--dtype must be bf16 or fp32\n"), 1;
    dtype = *d;
  }
  ProfileRequest request;
  request.model = &*model;
  request.micro_batch_size = input.micro_batch_size;
  request.dtype = dtype;
  request.repeats = o.repeats;
  Result<Profile> profile = FindBackend("cuda")->Run(request);
  if (!profile.ok()) return std::fprintf(stderr, "%s\n", profile.message().c_str()), 1;
  double sum = 0;
  for (const LayerProfile& l : profile->layers) sum += l.forward_ms + l.backward_ms;

  Result<Timing> step = dtype == DType::kBf16 ? TimeStep<__nv_bfloat16>(*model, input, o.repeats)
                                              : TimeStep<float>(*model, input, o.repeats);
  if (!step.ok()) return std::fprintf(stderr, "%s\n", step.message().c_str()), 1;
  Json out;
  out["model"] = model->name;
  out["device"] = profile->device.name;
  out["micro_batch_size"] = input.micro_batch_size;
  out["dtype"] = std::string(DTypeName(dtype));
  out["layers"] = profile->layers.size();
  out["sum_layers_ms"] = sum;
  out["step_ms"] = step->median_ms;
  out["step_p95_ms"] = step->p95_ms;
  out["sum_over_step"] = sum / step->median_ms;
  const std::string text = DumpJson(out);
  std::fputs(text.c_str(), stdout);
  if (!o.output.empty()) {
    Status written = WriteFileAtomic(o.output, text);
    if (!written.ok()) return std::fprintf(stderr, "%s\n", written.message().c_str()), 1;
  }
  return 0;
}

}  // namespace
}  // namespace pp

int main(int argc, char** argv) {
  pp::Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--micro-batch-size" && has_value) {
      o.micro_batch_size = std::stoll(argv[++i]);
    } else if (a == "--dtype" && has_value) {
      o.dtype = argv[++i];
    } else if (a == "--repeats" && has_value) {
      o.repeats = std::max(1, std::stoi(argv[++i]));
    } else if (a == "-o" && has_value) {
      o.output = argv[++i];
    } else if (o.model.empty() && !a.empty() && a[0] != '-') {
      o.model = a;
    } else {
      std::fprintf(stderr,
                   "usage: cuda_step_bench MODEL.json [--micro-batch-size B] [--dtype bf16|fp32] "
                   "[--repeats N] [-o OUT.json]\n");
      return 2;
    }
  }
  if (o.model.empty()) return std::fprintf(stderr, "cuda_step_bench: no model given\n"), 2;
  return pp::Run(o);
}
