// Host overhead per op of the runtime driver (RunPipeline): a schedule of empty ops whose only
// work is the transport handoff, so what is timed is the driver, the chunk runner's per-op
// bookkeeping and the handoff between device threads. Target: under 20 us per op.
//   runtime_overhead_bench [--cuda] [--stages P] [--micro-batches M] [--steps N]
// cpu:  HostTransport, one float per message.
// cuda: CudaTransport on GPU 0 (messages in place, as between virtual devices), start/end
//       events per op and an event wait per input, read back once per step (the cuda
//       backend's protocol without kernels). Needs a GPU.
// Both are PipelineDevices without math under the same ChunkRunner as the real backends.
// Prints one JSON object: per-op overhead = median step wall time / ops per device.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/empty_device.h"
#include "executor/host_clock.h"
#include "executor/pipeline_device.h"
#include "executor/runtime.h"
#include "executor/schedule.h"
#include "executor/transport.h"
#if PP_HAVE_CUDA
#include "executor/cuda_transport.h"
#include "layers/green_context.h"
#endif

namespace pp {
namespace {

using Clock = std::chrono::steady_clock;

using bench::EmptyDevice;


#if PP_HAVE_CUDA
Status CudaOk(cudaError_t e, const char* what) {
  return e == cudaSuccess ? Status::Ok()
                          : Status::Error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define PP_CUDA_OK(call) PP_RETURN_IF_ERROR(CudaOk((call), #call))

// The cuda backend's protocol without kernels: an event wait per input, start and end events
// per op on one stream, the end event handed on as the message's ready signal, the events
// read back once per step.
class CudaFakeDevice final : public PipelineDevice {
 public:
  explicit CudaFakeDevice(CudaTransport* t) : transport_(t) {}
  ~CudaFakeDevice() override {
    if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }
  CudaFakeDevice(const CudaFakeDevice&) = delete;
  CudaFakeDevice& operator=(const CudaFakeDevice&) = delete;
  Status Setup(const DeviceChunks& layout) override {
    PP_CUDA_OK(cudaSetDevice(0));
    PP_CUDA_OK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    events_.resize(2 * static_cast<size_t>(layout.ops_per_step) + 1);
    for (cudaEvent_t& e : events_) PP_CUDA_OK(cudaEventCreate(&e));
    return Status::Ok();
  }
  bool PassesGradient(int) const override { return true; }
  Status BeginStep(int) override {
    PP_CUDA_OK(cudaSetDevice(0));
    PP_CUDA_OK(cudaEventRecord(events_.back(), stream_));
    return Status::Ok();
  }
  Status Receive(const OpCall& call) override {
    Result<const void*> in = transport_->Receive(*call.input, stream_, 10);
    return in.ok() ? Status::Ok() : in.status();
  }
  Status MarkStart(const OpCall& call) override {
    PP_CUDA_OK(cudaEventRecord(events_[2 * call.index], stream_));
    return Status::Ok();
  }
  Status MarkEnd(const OpCall& call) override {
    PP_CUDA_OK(cudaEventRecord(events_[2 * call.index + 1], stream_));
    return Status::Ok();
  }
  Status Forward(const OpCall&) override { return Status::Ok(); }
  Status Recompute(const OpCall&) override { return Status::Ok(); }
  Status Backward(const OpCall&) override { return Status::Ok(); }
  Status BackwardInput(const OpCall&) override { return Status::Ok(); }
  Status BackwardWeight(const OpCall&) override { return Status::Ok(); }
  Status Send(const OpCall& call) override {
    return transport_->Send(*call.output, events_[2 * call.index + 1], stream_);
  }
  Status EndStep(int ops, std::vector<OpSpan>* spans, double* loss) override {
    PP_CUDA_OK(cudaStreamSynchronize(stream_));
    spans->clear();
    for (int i = 0; i < ops; ++i) {
      float a = 0, b = 0;
      PP_CUDA_OK(cudaEventElapsedTime(&a, events_.back(), events_[2 * i]));
      PP_CUDA_OK(cudaEventElapsedTime(&b, events_.back(), events_[2 * i + 1]));
      spans->push_back({a, b});
    }
    *loss = 0;
    return Status::Ok();
  }
  uint64_t allocated_bytes() const override { return 0; }
  void CopyGradients(std::vector<std::vector<float>>*,
                     std::vector<std::vector<float>>*) const override {}

 private:
  CudaTransport* transport_;
  cudaStream_t stream_ = nullptr;
  std::vector<cudaEvent_t> events_;
};
#endif

int Main(int argc, char** argv) {
  bool use_cuda = false;
  int p = 4, m = 64, steps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cuda") use_cuda = true;
    else if (a == "--stages" && i + 1 < argc) p = std::atoi(argv[++i]);
    else if (a == "--micro-batches" && i + 1 < argc) m = std::atoi(argv[++i]);
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: runtime_overhead_bench [--cuda] [--stages P] "
                           "[--micro-batches M] [--steps N]\n");
      return 2;
    }
  }
  Result<Schedule> schedule = BuildSchedule("1f1b", p, m);
  if (!schedule.ok()) {
    std::fprintf(stderr, "%s\n", schedule.message().c_str());
    return 2;
  }
  RunOptions options;
  options.steps = steps;
  options.warmup_steps = 2;
  std::vector<std::unique_ptr<PipelineDevice>> devices;
  HostTransport host;
  AbortRun abort = [&host] { host.Abort(); };
#if PP_HAVE_CUDA
  CudaTransport device;
  if (use_cuda) {
    int visible = 0;
    if (Status s = VisibleGpus(&visible); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 2;
    }
    abort = [&device] { device.Abort(); };
    for (int c = 1; c < p; ++c) {
      Status s = device.AddChannel(c, false, 4, m, c - 1, 0, c, 0);
      if (s.ok()) s = device.AddChannel(c - 1, true, 4, m, c, 0, c - 1, 0);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.message().c_str());
        return 1;
      }
    }
    for (int d = 0; d < p; ++d) devices.push_back(std::make_unique<CudaFakeDevice>(&device));
  }
#else
  if (use_cuda) {
    std::fprintf(stderr, "this pp-partition was built without CUDA\n");
    return 2;
  }
#endif
  if (!use_cuda) {
    for (int d = 0; d < p; ++d) devices.push_back(std::make_unique<EmptyDevice>(&host));
  }
  std::vector<ChunkRange> chunks;
  for (int c = 0; c < p; ++c) chunks.push_back({c, c});
  const auto t0 = Clock::now();
  Result<RunResult> r =
      RunPipeline(*schedule, 1, chunks, std::move(devices), abort, options);
  const double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.message().c_str());
    return 1;
  }
  const double ops_per_device = 2.0 * m;
  const double us_per_op = 1000.0 * r->step_ms / ops_per_device;
  std::printf("{\"path\": \"%s\", \"stages\": %d, \"micro_batches\": %d, \"steps\": %d, "
              "\"median_step_ms\": %.6g, \"ops_per_device\": %.0f, \"us_per_op\": %.6g, "
              "\"wall_ms\": %.6g, \"target_us_per_op\": 20, \"pass\": %s}\n",
              use_cuda ? "cuda" : "cpu", p, m, steps, r->step_ms, ops_per_device, us_per_op,
              wall_ms, us_per_op < 20 ? "true" : "false");
  return us_per_op < 20 ? 0 : 1;
}

}  // namespace
}  // namespace pp

int main(int argc, char** argv) { return pp::Main(argc, argv); }
