// Green contexts through driver entry points (green_context.h). cuda.h is included for its
// types only: every driver function is a pointer from cudaGetDriverEntryPointByVersion.
#include "layers/green_context.h"

#include <cuda.h>

#include <algorithm>
#include <mutex>

#include "layers/cuda_check.h"

namespace pp {
namespace {

// The driver API version whose signatures the pointers below assume: green contexts came with
// 12.4, their streams (cuGreenCtxStreamCreate) with 12.5. Asked for by version 12.4, a driver
// of CUDA 13 has no cuGreenCtxStreamCreate.
constexpr unsigned kDriverApiVersion = 12050;

struct Driver {
  CUresult (*get_error_string)(CUresult, const char**) = nullptr;
  CUresult (*device_get)(CUdevice*, int) = nullptr;
  CUresult (*get_dev_resource)(CUdevice, CUdevResource*, CUdevResourceType) = nullptr;
  CUresult (*split_by_count)(CUdevResource*, unsigned*, const CUdevResource*, CUdevResource*,
                             unsigned, unsigned) = nullptr;
  CUresult (*generate_desc)(CUdevResourceDesc*, CUdevResource*, unsigned) = nullptr;
  CUresult (*green_create)(CUgreenCtx*, CUdevResourceDesc, CUdevice, unsigned) = nullptr;
  CUresult (*green_destroy)(CUgreenCtx) = nullptr;
  CUresult (*from_green)(CUcontext*, CUgreenCtx) = nullptr;
  CUresult (*green_stream)(CUstream*, CUgreenCtx, unsigned, int) = nullptr;
  CUresult (*set_current)(CUcontext) = nullptr;
  CUresult (*push)(CUcontext) = nullptr;
  CUresult (*pop)(CUcontext*) = nullptr;
  Status status;  // why the table is incomplete
};

template <typename Fn>
Status Lookup(const char* name, Fn* fn) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t err =
      cudaGetDriverEntryPointByVersion(name, &p, kDriverApiVersion, cudaEnableDefault, &found);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return cuda::CudaError(err, __FILE__, __LINE__, name);
  }
  if (found != cudaDriverEntryPointSuccess || p == nullptr) {
    return Status::Error(std::string("the driver has no ") + name +
                         " (green contexts and their streams need driver API 12.5 or newer)");
  }
  *fn = reinterpret_cast<Fn>(p);
  return Status::Ok();
}

const Driver& TheDriver() {
  static Driver* const kDriver = [] {
    auto* d = new Driver();
    Status s = Lookup("cuGetErrorString", &d->get_error_string);
    if (s.ok()) s = Lookup("cuDeviceGet", &d->device_get);
    if (s.ok()) s = Lookup("cuDeviceGetDevResource", &d->get_dev_resource);
    if (s.ok()) s = Lookup("cuDevSmResourceSplitByCount", &d->split_by_count);
    if (s.ok()) s = Lookup("cuDevResourceGenerateDesc", &d->generate_desc);
    if (s.ok()) s = Lookup("cuGreenCtxCreate", &d->green_create);
    if (s.ok()) s = Lookup("cuGreenCtxDestroy", &d->green_destroy);
    if (s.ok()) s = Lookup("cuCtxFromGreenCtx", &d->from_green);
    if (s.ok()) s = Lookup("cuGreenCtxStreamCreate", &d->green_stream);
    if (s.ok()) s = Lookup("cuCtxSetCurrent", &d->set_current);
    if (s.ok()) s = Lookup("cuCtxPushCurrent", &d->push);
    if (s.ok()) s = Lookup("cuCtxPopCurrent", &d->pop);
    d->status = s;
    return d;
  }();
  return *kDriver;
}

Status DriverError(CUresult r, const char* call) {
  const char* text = nullptr;
  const Driver& d = TheDriver();
  if (d.get_error_string == nullptr || d.get_error_string(r, &text) != CUDA_SUCCESS) text = nullptr;
  return cuda::CallError(__FILE__, __LINE__, call,
                         "CUresult " + std::to_string(static_cast<int>(r)) +
                             (text != nullptr ? std::string(" (") + text + ")" : ""));
}

#define PP_CU_CHECK(call)                                            \
  do {                                                               \
    const CUresult pp_cu_r_ = (call);                                \
    if (pp_cu_r_ != CUDA_SUCCESS) return DriverError(pp_cu_r_, #call); \
  } while (0)

}  // namespace

Status VisibleGpus(int* count) {
  *count = 0;
  const cudaError_t err = cudaGetDeviceCount(count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    *count = 0;
    return Status::Error(std::string("no CUDA GPU is visible: cudaGetDeviceCount: ") +
                         cudaGetErrorString(err));
  }
  if (*count == 0) return Status::Error("no CUDA GPU is visible: cudaGetDeviceCount found none");
  return Status::Ok();
}

Result<GpuSpec> ParseGpuSpec(const std::string& text, int visible) {
  GpuSpec spec;
  auto index = [&](const std::string& item, int* id) -> Status {
    if (item.empty() || item.size() > 4 || item.find_first_not_of("0123456789") != std::string::npos) {
      return Status::Error("--gpus " + text + ": expected 0,1,2,3 (one GPU per stage) or 0x4 "
                           "(four virtual devices on GPU 0)");
    }
    *id = std::stoi(item);
    if (*id >= visible) {
      return Status::Error("--gpus " + text + ": GPU " + item + " does not exist (" +
                           std::to_string(visible) + " visible)");
    }
    return Status::Ok();
  };
  if (text.empty()) {
    spec.gpus = {0};
    return spec;
  }
  const size_t x = text.find('x');
  if (x != std::string::npos) {
    int id = 0, shares = 0;
    PP_RETURN_IF_ERROR(index(text.substr(0, x), &id));
    const std::string n = text.substr(x + 1);
    if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos ||
        (shares = std::stoi(n)) < 1) {
      return Status::Error("--gpus " + text + ": the count after x must be a whole number >= 1");
    }
    spec.gpus = {id};
    spec.shares = shares;
    return spec;
  }
  size_t at = 0;
  while (true) {
    const size_t comma = text.find(',', at);
    int id = 0;
    PP_RETURN_IF_ERROR(index(text.substr(at, comma == std::string::npos ? std::string::npos
                                                                         : comma - at), &id));
    spec.gpus.push_back(id);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return spec;
}

Result<std::unique_ptr<GreenContexts>> GreenContexts::Create(int device, int count) {
  const Driver& d = TheDriver();
  if (!d.status.ok()) return d.status;
  if (count < 1) return Status::Error("green contexts: the share count must be at least 1");
  PP_CUDA_CHECK(cudaSetDevice(device));
  PP_CUDA_CHECK(cudaFree(nullptr));  // the primary context exists before green ones retain it
  CUdevice dev = 0;
  PP_CU_CHECK(d.device_get(&dev, device));
  CUdevResource all{};
  PP_CU_CHECK(d.get_dev_resource(dev, &all, CU_DEV_RESOURCE_TYPE_SM));
  const unsigned total = all.sm.smCount;
  const unsigned align = std::max(1u, all.sm.smCoscheduledAlignment);
  unsigned per = total / static_cast<unsigned>(count) / align * align;
  if (per < all.sm.minSmPartitionSize) {
    return Status::Error("green contexts: GPU " + std::to_string(device) + " has " +
                         std::to_string(total) + " SMs, too few for " + std::to_string(count) +
                         " shares of at least " + std::to_string(all.sm.minSmPartitionSize));
  }
  std::vector<CUdevResource> groups(static_cast<size_t>(count));
  unsigned made = static_cast<unsigned>(count);
  CUdevResource rest{};
  PP_CU_CHECK(d.split_by_count(groups.data(), &made, &all, &rest, 0, per));
  if (made != static_cast<unsigned>(count)) {
    return Status::Error("green contexts: the driver made " + std::to_string(made) +
                         " SM groups of " + std::to_string(per) + ", not " +
                         std::to_string(count));
  }
  std::unique_ptr<GreenContexts> g(new GreenContexts());
  g->device_ = device;
  g->total_sms_ = static_cast<int>(total);
  for (int i = 0; i < count; ++i) {
    CUdevResourceDesc desc = nullptr;
    PP_CU_CHECK(d.generate_desc(&desc, &groups[i], 1));
    CUgreenCtx green = nullptr;
    PP_CU_CHECK(d.green_create(&green, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM));
    g->contexts_.push_back(green);
    CUcontext ctx = nullptr;
    PP_CU_CHECK(d.from_green(&ctx, green));
    g->as_context_.push_back(ctx);
    g->sm_counts_.push_back(static_cast<int>(groups[i].sm.smCount));
  }
  return g;
}

GreenContexts::~GreenContexts() {
  const Driver& d = TheDriver();
  for (void* green : contexts_) {
    if (d.green_destroy != nullptr) (void)d.green_destroy(static_cast<CUgreenCtx>(green));
  }
}

double GreenContexts::fraction(int share) const {
  return total_sms_ > 0 ? static_cast<double>(sm_counts_[share]) / total_sms_ : 0.0;
}

Status GreenContexts::MakeCurrent(int share) const {
  PP_CU_CHECK(TheDriver().set_current(static_cast<CUcontext>(as_context_[share])));
  return Status::Ok();
}

Status GreenContexts::Push(int share) const {
  PP_CU_CHECK(TheDriver().push(static_cast<CUcontext>(as_context_[share])));
  return Status::Ok();
}

Status GreenContexts::Pop() const {
  CUcontext popped = nullptr;
  PP_CU_CHECK(TheDriver().pop(&popped));
  return Status::Ok();
}

Result<cudaStream_t> GreenContexts::CreateStream(int share) const {
  CUstream stream = nullptr;
  PP_CU_CHECK(TheDriver().green_stream(&stream, static_cast<CUgreenCtx>(contexts_[share]),
                                       CU_STREAM_NON_BLOCKING, 0));
  return static_cast<cudaStream_t>(stream);
}

ScopedShare::ScopedShare(const GreenContexts* contexts, int share) : contexts_(contexts) {
  if (contexts_ != nullptr) {
    status_ = contexts_->Push(share);
    if (!status_.ok()) contexts_ = nullptr;
  }
}

ScopedShare::~ScopedShare() {
  if (contexts_ != nullptr) (void)contexts_->Pop();
}

}  // namespace pp
