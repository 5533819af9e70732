#include "executor/cuda_transport.h"

#include <chrono>

#include "layers/cuda_arena.h"
#include "layers/cuda_check.h"
#include "core/units.h"

namespace pp {

void EventMailbox::Post(const MessageKey& key, cudaEvent_t event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = slots_[key];
    slot.event = event;
    slot.posted = true;
  }
  cv_.notify_all();
}

Result<cudaEvent_t> EventMailbox::Take(const MessageKey& key, double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_s));
  Slot* slot = &slots_[key];
  while (!slot->posted && !aborted_) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !slot->posted &&
        !aborted_) {
      return Status::Error("waited longer than " + FormatSeconds(timeout_s) +
                           " for its input");
    }
  }
  if (aborted_) return Status::Error("aborted");
  slot->posted = false;
  return slot->event;
}

void EventMailbox::Abort() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
  }
  cv_.notify_all();
}

CudaTransport::~CudaTransport() {
  for (auto& [key, m] : messages_) {
    if (m.arrived != nullptr) (void)cudaEventDestroy(m.arrived);
  }
  for (void* p : allocations_) (void)cudaFree(p);
}

Status CudaTransport::AddChannel(int to_chunk, bool gradient, int64_t bytes, int micro_batches,
                                 int from, int from_gpu, int to, int to_gpu) {
  const size_t size = DeviceArena::AlignUp(static_cast<size_t>(bytes > 0 ? bytes : 1));
  const bool same = from_gpu == to_gpu;
  bool peer = false;
  if (!same) {
    int can = 0;
    PP_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, from_gpu, to_gpu));
    if (can) {
      PP_CUDA_CHECK(cudaSetDevice(from_gpu));
      const cudaError_t e = cudaDeviceEnablePeerAccess(to_gpu, 0);
      if (e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) PP_CUDA_CHECK(e);
      (void)cudaGetLastError();
      peer = true;
    }
    (peer ? any_peer_ : any_staged_) = true;
  } else {
    any_in_place_ = true;
  }
  // One buffer per micro-batch on each side, allocated as one block per side.
  auto allocate = [&](int gpu, int device, void** block) -> Status {
    PP_CUDA_CHECK(cudaSetDevice(gpu));
    PP_CUDA_CHECK(cudaMalloc(block, size * static_cast<size_t>(micro_batches)));
    allocations_.push_back(*block);
    bytes_per_device_[device] += size * static_cast<uint64_t>(micro_batches);
    return Status::Ok();
  };
  void* receive = nullptr;
  void* send = nullptr;
  PP_RETURN_IF_ERROR(allocate(to_gpu, to, &receive));
  if (!same) PP_RETURN_IF_ERROR(allocate(from_gpu, from, &send));
  for (int mb = 0; mb < micro_batches; ++mb) {
    Message m;
    m.bytes = bytes;
    m.from_gpu = from_gpu;
    m.to_gpu = to_gpu;
    m.receive = static_cast<char*>(receive) + size * mb;
    m.send = same ? m.receive : static_cast<char*>(send) + size * mb;
    if (!same) {
      PP_CUDA_CHECK(cudaSetDevice(from_gpu));
      PP_CUDA_CHECK(cudaEventCreateWithFlags(&m.arrived, cudaEventDisableTiming));
    }
    messages_[{to_chunk, gradient, mb}] = m;
  }
  return Status::Ok();
}

uint64_t CudaTransport::allocated_bytes(int device) const {
  const auto it = bytes_per_device_.find(device);
  return it == bytes_per_device_.end() ? 0 : it->second;
}

std::string CudaTransport::description() const {
  std::string d;
  auto add = [&d](bool on, const char* what) {
    if (on) d += (d.empty() ? "" : ", ") + std::string(what);
  };
  add(any_in_place_, "in place");
  add(any_peer_, "peer copies");
  add(any_staged_, "copies staged through host");
  return d.empty() ? "no transfers" : d;
}

void* CudaTransport::SendBuffer(const MessageKey& key) {
  const auto it = messages_.find(key);
  return it == messages_.end() ? nullptr : it->second.send;
}

Status CudaTransport::Send(const MessageKey& key, cudaEvent_t ready, cudaStream_t copy_stream) {
  const auto it = messages_.find(key);
  if (it == messages_.end()) return Status::Error("no channel carries this message (a bug)");
  Message& m = it->second;
  if (m.send == m.receive) {
    mailbox_.Post(key, ready);
    return Status::Ok();
  }
  PP_CUDA_CHECK(cudaStreamWaitEvent(copy_stream, ready, 0));
  PP_CUDA_CHECK(cudaMemcpyPeerAsync(m.receive, m.to_gpu, m.send, m.from_gpu,
                                    static_cast<size_t>(m.bytes), copy_stream));
  PP_CUDA_CHECK(cudaEventRecord(m.arrived, copy_stream));
  mailbox_.Post(key, m.arrived);
  return Status::Ok();
}

Result<const void*> CudaTransport::Receive(const MessageKey& key, cudaStream_t stream,
                                           double timeout_s) {
  const auto it = messages_.find(key);
  if (it == messages_.end()) return Status::Error("no channel carries this message (a bug)");
  Result<cudaEvent_t> event = mailbox_.Take(key, timeout_s);
  if (!event.ok()) return event.status();
  PP_CUDA_CHECK(cudaStreamWaitEvent(stream, *event, 0));
  return static_cast<const void*>(it->second.receive);
}

}  // namespace pp
