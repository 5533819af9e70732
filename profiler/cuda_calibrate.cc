// Calibration on a GPU (calibrate.h): cuBLAS products (bf16, fp32, and fp8 through cuBLASLt
// where the GPU has fp8 tensor cores), a batched product of attention's
// shapes, a copy kernel, empty kernels and, where NCCL loads and more than one GPU is visible,
// an all-reduce; written as a device file document.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#if __has_include(<nccl.h>)
#include <nccl.h>
#define PP_CALIBRATE_NCCL 1
#endif

#include "core/version.h"
#include "layers/cuda_check.h"
#include "layers/cuda_gemm.h"
#include "layers/cuda_layer.h"
#include "profiler/calibrate.h"
#include "profiler/calibrate_kernels.h"
#include "profiler/cuda_timing.h"
#include "profiler/device_file.h"

namespace pp {
namespace {

constexpr int kWarmup = 3;
constexpr int kDefaultRepeats = 10;
constexpr size_t kCopyBytes = size_t{1} << 30;
constexpr int kLaunches = 1000;

// A device allocation, freed with the object.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) (void)cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  // Allocates `bytes` of pseudo-random bytes (LaunchFillRandom: finite in bf16, fp32 and
  // fp8, random sign and mantissa), so that products switch as many bits as on real data.
  Status Allocate(size_t bytes) {
    PP_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    static unsigned long long seed = 1;
    PP_CUDA_CHECK(LaunchFillRandom(static_cast<unsigned char*>(ptr_), bytes, seed++, nullptr));
    PP_CUDA_CHECK(cudaDeviceSynchronize());
    return Status::Ok();
  }
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

std::string TodayUtc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

// The median rate (FLOP/s) of `batch` row-major [m x k] . [k x n] products of `type`.
Result<double> TimeGemm(CudaContext& ctx, cudaDataType_t type, size_t element, int64_t m,
                        int64_t n, int64_t k, int batch, int repeats) {
  DeviceBuffer a, b, d;
  PP_RETURN_IF_ERROR(a.Allocate(element * m * k * batch));
  PP_RETURN_IF_ERROR(b.Allocate(element * k * n * batch));
  PP_RETURN_IF_ERROR(d.Allocate(element * m * n * batch));
  GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a.get();
  g.lda = k;
  g.stride_a = m * k;
  g.b = b.get();
  g.ldb = n;
  g.stride_b = k * n;
  g.d = d.get();
  g.ldd = n;
  g.stride_d = m * n;
  g.batch = batch;
  g.in = type;
  g.out = type;
  Result<Timing> t = TimeOnStream(ctx.stream(), [&] { return Gemm(ctx, g); }, kWarmup, repeats);
  if (!t.ok()) return t.status();
  const double flops = 2.0 * static_cast<double>(m) * n * k * batch;
  return flops / (t->median_ms * 1e-3);
}

// cuBLASLt objects of one fp8 product, destroyed with the object.
struct LtFp8Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic{};
  LtFp8Plan() = default;
  LtFp8Plan(const LtFp8Plan&) = delete;
  LtFp8Plan& operator=(const LtFp8Plan&) = delete;
  ~LtFp8Plan() {
    if (pref != nullptr) (void)cublasLtMatmulPreferenceDestroy(pref);
    if (d != nullptr) (void)cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) (void)cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) (void)cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) (void)cublasLtMatmulDescDestroy(op);
  }
};

// The median rate (FLOP/s) of one fp8 (E4M3) product [m x k] . [k x n] with bf16 output, in
// the layout cuBLASLt's fp8 kernels take (column-major, A transposed); 0 when cuBLASLt offers
// no fp8 algorithm for the shape.
Result<double> TimeFp8Gemm(CudaContext& ctx, int64_t m, int64_t n, int64_t k, int repeats) {
  LtFp8Plan p;
  PP_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
  PP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose,
                                                 sizeof transpose));
  PP_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none));
  PP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_8F_E4M3, k, m, k));
  PP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_8F_E4M3, k, n, k));
  PP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_16BF, m, n, m));
  PP_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p.pref));
  const size_t workspace = ctx.gemm_workspace_bytes();
  PP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      p.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(ctx.lt(), p.op, p.a, p.b, p.d, p.d, p.pref, 1, &p.heuristic,
                                     &found) != CUBLAS_STATUS_SUCCESS ||
      found == 0) {
    return 0.0;
  }
  DeviceBuffer a, b, d;
  PP_RETURN_IF_ERROR(a.Allocate(static_cast<size_t>(m * k)));
  PP_RETURN_IF_ERROR(b.Allocate(static_cast<size_t>(k * n)));
  PP_RETURN_IF_ERROR(d.Allocate(static_cast<size_t>(2 * m * n)));
  const float alpha = 1, beta = 0;
  Result<Timing> t = TimeOnStream(
      ctx.stream(),
      [&]() -> Status {
        PP_CUBLAS_CHECK(cublasLtMatmul(ctx.lt(), p.op, &alpha, a.get(), p.a, b.get(), p.b, &beta,
                                       d.get(), p.d, d.get(), p.d, &p.heuristic.algo,
                                       ctx.gemm_workspace(), workspace, ctx.stream()));
        return Status::Ok();
      },
      kWarmup, repeats);
  if (!t.ok()) return t.status();
  return 2.0 * static_cast<double>(m) * n * k / (t->median_ms * 1e-3);
}

struct Bus {
  double bytes_per_s = 0;
  double latency_ms = 0;
};

#ifdef PP_CALIBRATE_NCCL
// NCCL, loaded at run time so that the module never needs it to load.
struct Nccl {
  decltype(&ncclCommInitAll) comm_init_all = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclGroupStart) group_start = nullptr;
  decltype(&ncclGroupEnd) group_end = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
};

bool LoadNccl(Nccl* n) {
  void* h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return false;
  n->comm_init_all = reinterpret_cast<decltype(n->comm_init_all)>(dlsym(h, "ncclCommInitAll"));
  n->comm_destroy = reinterpret_cast<decltype(n->comm_destroy)>(dlsym(h, "ncclCommDestroy"));
  n->all_reduce = reinterpret_cast<decltype(n->all_reduce)>(dlsym(h, "ncclAllReduce"));
  n->group_start = reinterpret_cast<decltype(n->group_start)>(dlsym(h, "ncclGroupStart"));
  n->group_end = reinterpret_cast<decltype(n->group_end)>(dlsym(h, "ncclGroupEnd"));
  n->error_string = reinterpret_cast<decltype(n->error_string)>(dlsym(h, "ncclGetErrorString"));
  return n->comm_init_all && n->comm_destroy && n->all_reduce && n->group_start &&
         n->group_end && n->error_string;
}

#define PP_NCCL_CHECK(nccl, call)                                                         \
  do {                                                                                    \
    const ncclResult_t pp_nccl_st_ = (call);                                              \
    if (pp_nccl_st_ != ncclSuccess) {                                                     \
      return Status::Error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + \
                           #call + ": " + (nccl).error_string(pp_nccl_st_));              \
    }                                                                                     \
  } while (0)

// Median wall time (ms) of one all-reduce of `count` floats over every GPU.
Result<double> TimeAllReduce(const Nccl& nccl, const std::vector<ncclComm_t>& comms,
                             const std::vector<cudaStream_t>& streams,
                             const std::vector<std::unique_ptr<DeviceBuffer>>& buffers,
                             size_t count, int repeats) {
  const int n = static_cast<int>(comms.size());
  auto once = [&]() -> Status {
    PP_NCCL_CHECK(nccl, nccl.group_start());
    for (int i = 0; i < n; ++i) {
      PP_NCCL_CHECK(nccl, nccl.all_reduce(buffers[i]->get(), buffers[i]->get(), count, ncclFloat,
                                          ncclSum, comms[i], streams[i]));
    }
    PP_NCCL_CHECK(nccl, nccl.group_end());
    for (int i = 0; i < n; ++i) {
      PP_CUDA_CHECK(cudaSetDevice(i));
      PP_CUDA_CHECK(cudaStreamSynchronize(streams[i]));
    }
    return Status::Ok();
  };
  for (int i = 0; i < kWarmup; ++i) PP_RETURN_IF_ERROR(once());
  std::vector<double> samples;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    PP_RETURN_IF_ERROR(once());
    samples.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  return Summarize(std::move(samples)).median_ms;
}

// The node's bus bandwidth and latency per ring step, or nothing without NCCL or a second GPU.
Result<std::optional<Bus>> MeasureBus(int repeats) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count < 2) return std::optional<Bus>();
  Nccl nccl;
  if (!LoadNccl(&nccl)) return std::optional<Bus>();
  std::vector<int> devices(count);
  for (int i = 0; i < count; ++i) devices[i] = i;
  std::vector<ncclComm_t> comms(count);
  PP_NCCL_CHECK(nccl, nccl.comm_init_all(comms.data(), count, devices.data()));
  std::vector<cudaStream_t> streams(count);
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  Status made = Status::Ok();
  for (int i = 0; i < count && made.ok(); ++i) {
    if (cudaSetDevice(i) != cudaSuccess || cudaStreamCreate(&streams[i]) != cudaSuccess) {
      made = Status::Error("cudaStreamCreate on GPU " + std::to_string(i) + " failed");
      break;
    }
    buffers.push_back(std::make_unique<DeviceBuffer>());
    made = buffers.back()->Allocate(kCopyBytes);
  }
  Result<double> big = made.ok() ? TimeAllReduce(nccl, comms, streams, buffers,
                                                 kCopyBytes / sizeof(float), repeats)
                                 : Result<double>(made);
  Result<double> small =
      big.ok() ? TimeAllReduce(nccl, comms, streams, buffers, 2, repeats) : big;
  for (int i = 0; i < count; ++i) {
    (void)cudaSetDevice(i);
    if (streams[i] != nullptr) (void)cudaStreamDestroy(streams[i]);
    (void)nccl.comm_destroy(comms[i]);
  }
  (void)cudaSetDevice(0);
  if (!small.ok()) return small.status();
  const double steps = 2.0 * (count - 1);
  Bus bus;
  bus.bytes_per_s = static_cast<double>(kCopyBytes) * steps / count / (*big * 1e-3);
  bus.latency_ms = *small / steps;
  return std::optional<Bus>(bus);
}
#else
Result<std::optional<Bus>> MeasureBus(int) { return std::optional<Bus>(); }
#endif

const DeviceSpec* BaseFor(const cudaDeviceProp& prop, const DeviceSpec* fallback) {
  for (const DeviceSpec& d : AllDevices()) {
    if (d.name == prop.name) return &d;
  }
  return fallback;
}

}  // namespace

Result<Json> CalibrateDevice(const CalibrateRequest& request) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    return Status::Error(std::string("no CUDA device: ") +
                         (err != cudaSuccess ? cudaGetErrorString(err) : "none visible"));
  }
  int gpu = 0;
  if (!request.gpus.empty()) {
    try {
      size_t used = 0;
      gpu = std::stoi(request.gpus, &used);
      if (used != request.gpus.size() || gpu < 0 || gpu >= count) throw std::out_of_range("");
    } catch (const std::exception&) {
      return Status::Error("--gpus: calibration measures one GPU: give 0.." +
                           std::to_string(count - 1) + " (got \"" + request.gpus + "\")");
    }
  }
  cudaDeviceProp prop{};
  PP_CUDA_CHECK(cudaGetDeviceProperties(&prop, gpu));
  const DeviceSpec* base = BaseFor(prop, request.base);
  if (base == nullptr) return Status::Error("calibration needs a base device (--device)");
  const int repeats = request.repeats > 0 ? request.repeats : kDefaultRepeats;

  auto ctx_made = CudaContext::Create(gpu);
  if (!ctx_made.ok()) return ctx_made.status();
  CudaContext& ctx = **ctx_made;

  auto d = std::make_shared<LoadedDevice>();
  DeviceSpec& s = d->spec;
  s = *base;
  s.memory_bytes = static_cast<uint64_t>(prop.totalGlobalMem);
  DeviceEfficiency& e = s.efficiency;
  e.sm_count = prop.multiProcessorCount;

  // Matrix products over the grid.
  double best_bf16 = 0, best_fp32 = 0;
  for (int64_t m : {256, 1024, 4096, 16384}) {
    for (int64_t n : {1024, 4096, 16384}) {
      for (int64_t k : {1024, 4096, 16384}) {
        Result<double> r = TimeGemm(ctx, CUDA_R_16BF, 2, m, n, k, 1, repeats);
        if (!r.ok()) return r.status();
        d->gemm_points.push_back({DType::kBf16, double(m), double(n), double(k), 1, *r});
        best_bf16 = std::max(best_bf16, *r);
      }
    }
  }
  for (int64_t m : {1024, 4096}) {
    for (int64_t n : {1024, 4096}) {
      for (int64_t k : {1024, 4096}) {
        Result<double> r = TimeGemm(ctx, CUDA_R_32F, 4, m, n, k, 1, repeats);
        if (!r.ok()) return r.status();
        d->gemm_points.push_back({DType::kFp32, double(m), double(n), double(k), 1, *r});
        best_fp32 = std::max(best_fp32, *r);
      }
    }
  }
  e.gemm_bf16 = std::min(1.0, best_bf16 / base->bf16_flops_per_s);
  e.gemm_fp32 = std::min(1.0, best_fp32 / base->fp32_flops_per_s);
  // fp8 where the base device has fp8 tensor cores (sm_89 and later) and cuBLASLt runs them.
  double best_fp8 = 0;
  if (base->fp8_flops_per_s > 0 && prop.major * 10 + prop.minor >= 89) {
    for (int64_t m : {1024, 4096, 16384}) {
      for (int64_t n : {4096, 16384}) {
        for (int64_t k : {4096, 16384}) {
          Result<double> r = TimeFp8Gemm(ctx, m, n, k, repeats);
          if (!r.ok()) return r.status();
          if (*r <= 0) continue;
          d->gemm_points.push_back({DType::kFp8, double(m), double(n), double(k), 1, *r});
          best_fp8 = std::max(best_fp8, *r);
        }
      }
    }
  }
  if (best_fp8 > 0) e.gemm_fp8 = std::min(1.0, best_fp8 / base->fp8_flops_per_s);

  // Attention's products as a batched product (QK^T of 32 heads at s = 2048, head width 128),
  // recorded in the source only: the plans' attention is a fused kernel, which this tool does
  // not run, and the unfused product reached less than half its rate on an H200 (0.325 of the
  // peak against the table's 0.73). The attention fractions stay the base table's.
  Result<double> attention = TimeGemm(ctx, CUDA_R_16BF, 2, 2048, 2048, 128, 32, repeats);
  if (!attention.ok()) return attention.status();
  char attention_note[160];
  std::snprintf(attention_note, sizeof attention_note,
                "attention from the %s table (a batched QK^T product 32 x 2048x128x2048 ran at "
                "%.3f of the bf16 peak)",
                std::string(base->key).c_str(), *attention / base->bf16_flops_per_s);

  // Memory: a copy of 1 GiB (2 GiB moved).
  {
    DeviceBuffer src, dst;
    PP_RETURN_IF_ERROR(src.Allocate(kCopyBytes));
    PP_RETURN_IF_ERROR(dst.Allocate(kCopyBytes));
    const size_t n4 = kCopyBytes / sizeof(float4);
    Result<Timing> t = TimeOnStream(
        ctx.stream(),
        [&]() -> Status {
          PP_CUDA_CHECK(LaunchCopy(static_cast<const float4*>(src.get()),
                                   static_cast<float4*>(dst.get()), n4, prop.multiProcessorCount,
                                   ctx.stream()));
          return Status::Ok();
        },
        kWarmup, repeats);
    if (!t.ok()) return t.status();
    const double rate = 2.0 * static_cast<double>(kCopyBytes) / (t->median_ms * 1e-3);
    e.memory = std::min(1.0, rate / base->memory_bytes_per_s);
  }

  // Launch overhead: back-to-back empty kernels.
  {
    Result<Timing> t = TimeOnStream(
        ctx.stream(),
        [&]() -> Status {
          for (int i = 0; i < kLaunches; ++i) PP_CUDA_CHECK(LaunchEmpty(ctx.stream()));
          return Status::Ok();
        },
        kWarmup, repeats);
    if (!t.ok()) return t.status();
    e.launch_ms = t->median_ms / kLaunches;
  }

  // The node's bus, where NCCL and a second GPU are there.
  Result<std::optional<Bus>> bus = MeasureBus(repeats);
  if (!bus.ok()) return bus.status();
  std::string bus_note = "node bus from the base table (no NCCL or one GPU)";
  if (bus->has_value()) {
    s.node_bus_bytes_per_s = (*bus)->bytes_per_s;
    s.node_latency_ms = (*bus)->latency_ms;
    bus_note = "node bus measured with an NCCL all-reduce over every visible GPU";
  }

  d->key = std::string(base->key) + "-calibrated";
  d->name = prop.name;
  d->source = "measured on " + d->name + " by pp-partition " + kToolVersion +
              " profile --calibrate on " + TodayUtc() + "; peaks, network and link from the " +
              std::string(base->key) + " table (" + std::string(base->source) + ")";
  d->efficiency_source = "gemm from the best of " + std::to_string(d->gemm_points.size()) +
                         " cuBLAS products (points listed), " + attention_note +
                         ", memory from a 1 GiB copy kernel, launch from " +
                         std::to_string(kLaunches) + " empty kernels, " + bus_note +
                         (best_fp8 > 0 ? std::string("; fp8 gemm from cuBLASLt E4M3 products")
                                       : "; fp8 from the " + std::string(base->key) + " table");
  s.key = d->key;
  s.name = d->name;
  s.source = d->source;
  e.source = d->efficiency_source;
  e.gemm_points = d->gemm_points;
  return DeviceToJson(s);
}

}  // namespace pp
