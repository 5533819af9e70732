// RunOnCuda (cuda_runner.h): picks the GPUs or green-context shares, registers the
// transport's channels, makes one CudaDevice per device and hands them to the same
// RunPipeline driver as the cpu backend (which sets each device up, then runs it).
#include <cuda_bf16.h>

#include <iostream>
#include <map>
#include <utility>
#include <vector>

#include "executor/cuda_runner.h"
#include "executor/cuda_stage.h"
#include "executor/tied_weights.h"
#include "executor/transport.h"
#include "layers/cuda_check.h"

namespace pp {
namespace {

template <typename T>
Result<RunResult> RunTyped(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options,
                           const GpuSpec& spec, const GreenContexts* shares) {
  const int p = schedule.num_devices;
  const int num_chunks = static_cast<int>(chunks.size());
  auto gpu_of = [&](int d) { return spec.virtual_devices() ? spec.gpus[0] : spec.gpus[d]; };

  CudaTransport transport;
  // Channels: activations c-1 -> c, gradients c -> c-1 (when chunk c's head passes one back).
  for (int c = 1; c < num_chunks; ++c) {
    const int from = ChunkDevice(schedule, c - 1), to = ChunkDevice(schedule, c);
    auto tail = MakeCudaLayer<T>(model.layers[chunks[c - 1].last_layer], model.input);
    auto head = MakeCudaLayer<T>(model.layers[chunks[c].first_layer], model.input);
    if (!tail.ok()) return tail.status();
    if (!head.ok()) return head.status();
    const int64_t act_bytes = static_cast<int64_t>(sizeof(T)) * (*tail)->output_count();
    Status s = transport.AddChannel(c, false, act_bytes, schedule.num_micro_batches, from,
                                    gpu_of(from), to, gpu_of(to));
    if (s.ok() && (*head)->has_input_gradient()) {
      const int64_t grad_bytes = static_cast<int64_t>(sizeof(T)) * (*head)->rows() *
                                 std::max<int64_t>((*head)->in_width(), 1);
      s = transport.AddChannel(c - 1, true, grad_bytes, schedule.num_micro_batches, to,
                               gpu_of(to), from, gpu_of(from));
    }
    if (!s.ok()) {
      if (cuda::IsOutOfMemory(s)) {
        return Status::Error("device " + std::to_string(to) + ": out of memory for the buffers "
                             "of the messages to chunk " + std::to_string(c) + " (" +
                             s.message() + ")");
      }
      return s;
    }
  }
  // The tied weights' gradients go through host memory: each side copies its own out, the
  // two swap them through `ties`, each copies the other's in. Staging buffers per tie split
  // over two devices and side, made here (the devices' threads only look them up).
  Result<std::vector<TiedWeight>> tied = TiedWeights(model);
  if (!tied.ok()) return tied.status();
  HostTransport ties;
  std::map<std::pair<int, bool>, std::vector<float>> staging;
  for (const TiedWeight& t : *tied) {
    const int e = ChunkOfLayer(chunks, t.embedding), w = ChunkOfLayer(chunks, t.linear);
    if (e < 0 || w < 0 || ChunkDevice(schedule, e) == ChunkDevice(schedule, w)) continue;
    const size_t floats = (static_cast<size_t>(t.count()) * sizeof(T) + 3) / 4;
    for (bool side : {false, true}) staging[{t.linear, side}].assign(floats, 0.0f);
  }
  CudaDeviceHooks hooks;
  hooks.exchange_tied = [&](const TiedWeight& t, bool embedding_side, const void* mine,
                            void* theirs, size_t element_bytes, cudaStream_t stream) -> Status {
    auto found = staging.find({t.linear, embedding_side});
    if (found == staging.end()) return Status::Error("no staging for a tied weight (a bug)");
    std::vector<float>& host = found->second;
    const size_t bytes = static_cast<size_t>(t.count()) * element_bytes;
    if (bytes > 4 * host.size()) return Status::Error("a tied weight outgrew its staging (a bug)");
    PP_CUDA_CHECK(cudaMemcpyAsync(host.data(), mine, bytes, cudaMemcpyDeviceToHost, stream));
    PP_CUDA_CHECK(cudaStreamSynchronize(stream));
    PP_RETURN_IF_ERROR(SwapThroughMailbox(ties, t, embedding_side, host.data(), host.data(),
                                          host.size(), options.timeout_s));
    PP_CUDA_CHECK(cudaMemcpyAsync(theirs, host.data(), bytes, cudaMemcpyHostToDevice, stream));
    PP_CUDA_CHECK(cudaStreamSynchronize(stream));
    return Status::Ok();
  };
  std::vector<std::unique_ptr<PipelineDevice>> devices;
  for (int d = 0; d < p; ++d) {
    const CudaPlace place{d, gpu_of(d), shares, shares != nullptr ? d : -1};
    devices.push_back(std::make_unique<CudaDevice<T>>(model, options, &transport, place, hooks));
  }
  Result<RunResult> result = RunPipeline(
      schedule, model.input.micro_batch_size, chunks, std::move(devices),
      [&] {
        transport.Abort();
        ties.Abort();
      },
      options);
  if (!result.ok()) return result;
  cudaDeviceProp prop{};
  PP_CUDA_CHECK(cudaGetDeviceProperties(&prop, spec.gpus[0]));
  std::string where = prop.name;
  if (spec.virtual_devices()) {
    where += shares != nullptr
                 ? ", " + std::to_string(p) + " green-context shares of " +
                       std::to_string(shares->sm_count(0)) + " of " +
                       std::to_string(shares->total_sm_count()) + " SMs"
                 : ", " + std::to_string(p) + " plain streams sharing all SMs";
  } else if (p > 1) {
    where += " x" + std::to_string(p) + " GPUs";
  }
  where += std::string(", ") + (sizeof(T) == 4 ? "fp32" : "bf16") + ", transfers: " +
           transport.description();
  result->device = where;
  return result;
}

}  // namespace

Status CudaBackendAvailable() {
  int count = 0;
  return VisibleGpus(&count);
}

Result<RunResult> RunOnCuda(const Model& model, const std::vector<ChunkRange>& chunks,
                            const Schedule& schedule, const RunOptions& options,
                            const CudaRunRequest& request) {
  PP_RETURN_IF_ERROR(CheckRun(schedule, chunks));
  if (request.dtype == DType::kFp8) {
    return Status::Error("the CUDA layers run bf16 and fp32; fp8 is modelled by the analytic "
                         "profile only");
  }
  int visible = 0;
  PP_RETURN_IF_ERROR(VisibleGpus(&visible));
  const int p = schedule.num_devices;
  std::string gpus = request.gpus;
  if (gpus.empty()) {
    gpus = visible >= p ? "" : "0x" + std::to_string(p);
    for (int d = 0; d < p && visible >= p; ++d) gpus += (d ? "," : "") + std::to_string(d);
  }
  Result<GpuSpec> spec = ParseGpuSpec(gpus, visible);
  if (!spec.ok()) return spec.status();
  if (spec->count() != p) {
    return Status::Error("--gpus " + gpus + " gives " + std::to_string(spec->count()) +
                         " devices but the plan has " + std::to_string(p) + " stages");
  }
  std::unique_ptr<GreenContexts> shares;
  if (spec->virtual_devices() && p > 1) {
    auto made = GreenContexts::Create(spec->gpus[0], p);
    if (made.ok()) {
      shares = std::move(*made);
    } else {
      std::cerr << "pp-partition: warning: green contexts are unavailable (" << made.message()
                << "); the " << p << " virtual devices share GPU " << spec->gpus[0]
                << "'s SMs through plain streams\n";
    }
  }
  Result<RunResult> result =
      request.dtype == DType::kBf16
          ? RunTyped<__nv_bfloat16>(model, chunks, schedule, options, *spec, shares.get())
          : RunTyped<float>(model, chunks, schedule, options, *spec, shares.get());
  // Leave the primary context current, not a share that is about to be destroyed.
  (void)cudaSetDevice(spec->gpus[0]);
  return result;
}

}  // namespace pp
