// Host overhead per op of the runtime driver (RunPipeline): a schedule of empty ops whose only
// work is the transport handoff, so what is timed is the driver, the per-op bookkeeping and
// the handoff between device threads. Target: under 20 us per op.
//   runtime_overhead_bench [--cuda] [--stages P] [--micro-batches M] [--steps N]
// cpu:  HostTransport, one float per message.
// cuda: CudaTransport on GPU 0 (messages in place, as between virtual devices), start/end
//       events per op and an event wait per input, read back once per step (the cuda
//       backend's protocol without kernels). Needs a GPU.
// Prints one JSON object: per-op overhead = median step wall time / ops per device.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "executor/runtime.h"
#include "executor/schedule.h"
#if PP_HAVE_CUDA
#include "executor/cuda_transport.h"
#include "layers/green_context.h"
#endif

namespace pp {
namespace {

using Clock = std::chrono::steady_clock;

// Receives its input and sends its output, one float each; nothing else.
class HostFakeRunner final : public StageRunner {
 public:
  HostFakeRunner(int device, int chunks, Transport* transport)
      : device_(device), chunks_(chunks), transport_(transport) {}
  Status BeginStep(int) override {
    timings_.clear();
    start_ = Clock::now();
    return Status::Ok();
  }
  Status Run(const PipelineOp& op, int chunk) override {
    const double t0 = Ms();
    float v = 0;
    const bool forward = op.kind == OpKind::kForward;
    if (forward && chunk > 0) {
      PP_RETURN_IF_ERROR(transport_->Receive({chunk, false, op.micro_batch}, &v, 1, 10));
    } else if (!forward && chunk + 1 < chunks_) {
      PP_RETURN_IF_ERROR(transport_->Receive({chunk, true, op.micro_batch}, &v, 1, 10));
    }
    if (forward && chunk + 1 < chunks_) {
      PP_RETURN_IF_ERROR(transport_->Send({chunk + 1, false, op.micro_batch}, &v, 1));
    } else if (!forward && chunk > 0) {
      PP_RETURN_IF_ERROR(transport_->Send({chunk - 1, true, op.micro_batch}, &v, 1));
    }
    timings_.push_back({device_, op, t0, Ms()});
    return Status::Ok();
  }
  Status EndStep(std::vector<OpTiming>* timings, double* loss) override {
    *timings = timings_;
    *loss = 0;
    return Status::Ok();
  }
  uint64_t allocated_bytes() const override { return 0; }
  void CopyGradients(std::vector<std::vector<float>>*,
                     std::vector<std::vector<float>>*) const override {}

 private:
  double Ms() const {
    return std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
  }
  int device_, chunks_;
  Transport* transport_;
  Clock::time_point start_;
  std::vector<OpTiming> timings_;
};

#if PP_HAVE_CUDA
Status CudaOk(cudaError_t e, const char* what) {
  return e == cudaSuccess ? Status::Ok()
                          : Status::Error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define PP_CUDA_OK(call) PP_RETURN_IF_ERROR(CudaOk((call), #call))

class CudaFakeRunner final : public StageRunner {
 public:
  CudaFakeRunner(int device, int chunks, const std::vector<PipelineOp>& ops, CudaTransport* t)
      : device_(device), chunks_(chunks), ops_(ops), transport_(t) {}
  ~CudaFakeRunner() override {
    if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }
  Status Setup() {
    PP_CUDA_OK(cudaSetDevice(0));
    PP_CUDA_OK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    events_.resize(2 * ops_.size() + 1);
    for (cudaEvent_t& e : events_) PP_CUDA_OK(cudaEventCreate(&e));
    return Status::Ok();
  }
  Status BeginStep(int) override {
    PP_CUDA_OK(cudaSetDevice(0));
    index_ = 0;
    PP_CUDA_OK(cudaEventRecord(events_.back(), stream_));
    return Status::Ok();
  }
  Status Run(const PipelineOp& op, int chunk) override {
    const bool forward = op.kind == OpKind::kForward;
    if ((forward && chunk > 0) || (!forward && chunk + 1 < chunks_)) {
      Result<const void*> in = transport_->Receive({chunk, !forward, op.micro_batch}, stream_, 10);
      if (!in.ok()) return in.status();
    }
    cudaEvent_t start = events_[2 * index_], end = events_[2 * index_ + 1];
    ++index_;
    PP_CUDA_OK(cudaEventRecord(start, stream_));
    PP_CUDA_OK(cudaEventRecord(end, stream_));
    if (forward && chunk + 1 < chunks_) {
      return transport_->Send({chunk + 1, false, op.micro_batch}, end, stream_);
    }
    if (!forward && chunk > 0) return transport_->Send({chunk - 1, true, op.micro_batch}, end, stream_);
    return Status::Ok();
  }
  Status EndStep(std::vector<OpTiming>* timings, double* loss) override {
    PP_CUDA_OK(cudaStreamSynchronize(stream_));
    timings->clear();
    for (int i = 0; i < index_; ++i) {
      float a = 0, b = 0;
      PP_CUDA_OK(cudaEventElapsedTime(&a, events_.back(), events_[2 * i]));
      PP_CUDA_OK(cudaEventElapsedTime(&b, events_.back(), events_[2 * i + 1]));
      timings->push_back({device_, ops_[i], a, b});
    }
    *loss = 0;
    return Status::Ok();
  }
  uint64_t allocated_bytes() const override { return 0; }
  void CopyGradients(std::vector<std::vector<float>>*,
                     std::vector<std::vector<float>>*) const override {}

 private:
  int device_, chunks_;
  std::vector<PipelineOp> ops_;
  CudaTransport* transport_;
  cudaStream_t stream_ = nullptr;
  std::vector<cudaEvent_t> events_;
  int index_ = 0;
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
  std::vector<std::unique_ptr<StageRunner>> runners;
  HostTransport host;
  Transport* transport = &host;
#if PP_HAVE_CUDA
  CudaTransport device;
  AbortForwarder forwarder(&device);
  if (use_cuda) {
    int visible = 0;
    if (Status s = VisibleGpus(&visible); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 2;
    }
    transport = &forwarder;
    for (int c = 1; c < p; ++c) {
      Status s = device.AddChannel(c, false, 4, m, c - 1, 0, c, 0);
      if (s.ok()) s = device.AddChannel(c - 1, true, 4, m, c, 0, c - 1, 0);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.message().c_str());
        return 1;
      }
    }
    for (int d = 0; d < p; ++d) {
      auto r = std::make_unique<CudaFakeRunner>(d, p, schedule->stages[d], &device);
      if (Status s = r->Setup(); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.message().c_str());
        return 1;
      }
      runners.push_back(std::move(r));
    }
  }
#else
  if (use_cuda) {
    std::fprintf(stderr, "this pp-partition was built without CUDA\n");
    return 2;
  }
#endif
  if (!use_cuda) {
    for (int d = 0; d < p; ++d) runners.push_back(std::make_unique<HostFakeRunner>(d, p, &host));
  }
  const auto t0 = Clock::now();
  Result<RunResult> r = RunPipeline(*schedule, 1, std::move(runners), transport, options);
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
