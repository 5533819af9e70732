#include "executor/nccl_transport.h"

#include <chrono>
#include <thread>
#include <utility>

#include "core/units.h"

namespace pp {
namespace {

Status CudaOk(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::Ok();
  return Status::Error(std::string(what) + ": " + cudaGetErrorString(e));
}

Status NcclOk(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return Status::Ok();
  return Status::Error(std::string(what) + ": " + NcclErrorText(r));
}

}  // namespace

std::string NcclErrorText(ncclResult_t result) { return ncclGetErrorString(result); }

NcclTransport::NcclTransport(ncclComm_t comm, std::vector<int> rank_of_chunk, int device)
    : comm_(comm), rank_of_chunk_(std::move(rank_of_chunk)), device_(device) {
  (void)cudaStreamCreateWithFlags(&receive_stream_, cudaStreamNonBlocking);
}

NcclTransport::~NcclTransport() {
  if (receive_stream_ != nullptr) {
    (void)cudaStreamSynchronize(receive_stream_);
    (void)cudaStreamDestroy(receive_stream_);
  }
  for (auto& [key, m] : messages_) {
    if (m.arrived != nullptr) (void)cudaEventDestroy(m.arrived);
  }
  for (void* p : allocations_) (void)cudaFree(p);
}

int NcclTransport::PeerOf(const MessageKey& key, bool sending) const {
  if (sending) return rank_of_chunk_[key.to_chunk];
  return rank_of_chunk_[key.gradient ? key.to_chunk + 1 : key.to_chunk - 1];
}

Status NcclTransport::AddChannel(int to_chunk, bool gradient, int64_t bytes, int micro_batches,
                                 bool sending) {
  if (receive_stream_ == nullptr) return Status::Error("could not create the receive stream");
  for (int mb = 0; mb < micro_batches; ++mb) {
    Message m;
    m.bytes = bytes;
    m.sending = sending;
    PP_RETURN_IF_ERROR(CudaOk(cudaMalloc(&m.buffer, static_cast<size_t>(bytes)), "cudaMalloc"));
    allocations_.push_back(m.buffer);
    bytes_ += static_cast<uint64_t>(bytes);
    if (!sending) {
      PP_RETURN_IF_ERROR(CudaOk(cudaEventCreateWithFlags(&m.arrived, cudaEventDisableTiming),
                                "cudaEventCreate"));
    }
    messages_[MessageKey{to_chunk, gradient, mb}] = m;
  }
  return Status::Ok();
}

Status NcclTransport::AddLocalChannel(int to_chunk, bool gradient, int64_t bytes,
                                      int micro_batches) {
  for (int mb = 0; mb < micro_batches; ++mb) {
    Message m;
    m.bytes = bytes;
    m.local = true;
    PP_RETURN_IF_ERROR(CudaOk(cudaMalloc(&m.buffer, static_cast<size_t>(bytes)), "cudaMalloc"));
    allocations_.push_back(m.buffer);
    bytes_ += static_cast<uint64_t>(bytes);
    messages_[MessageKey{to_chunk, gradient, mb}] = m;
  }
  return Status::Ok();
}

void* NcclTransport::SendBuffer(const MessageKey& key) {
  auto it = messages_.find(key);
  if (it == messages_.end()) return nullptr;
  return it->second.sending || it->second.local ? it->second.buffer : nullptr;
}

Status NcclTransport::Send(const MessageKey& key, cudaEvent_t ready, cudaStream_t copy_stream) {
  if (aborted_) return Status::Error("aborted");
  auto it = messages_.find(key);
  if (it != messages_.end() && it->second.local) {
    it->second.ready = ready;  // the consumer runs later on this rank's own thread
    return Status::Ok();
  }
  if (it == messages_.end() || !it->second.sending) {
    return Status::Error("no channel sends to chunk " + std::to_string(key.to_chunk));
  }
  const Message& m = it->second;
  const int peer = PeerOf(key, true);
  PP_RETURN_IF_ERROR(CudaOk(cudaStreamWaitEvent(copy_stream, ready, 0), "cudaStreamWaitEvent"));
  return NcclOk(ncclSend(m.buffer, static_cast<size_t>(m.bytes), ncclUint8, peer, comm_,
                         copy_stream),
                ("ncclSend to rank " + std::to_string(peer)).c_str());
}

Result<const void*> NcclTransport::Receive(const MessageKey& key, cudaStream_t stream,
                                           double /*timeout_s*/) {
  if (aborted_) return Status::Error("aborted");
  auto it = messages_.find(key);
  if (it != messages_.end() && it->second.local) {
    Message& m = it->second;
    if (m.ready == nullptr) {
      return Status::Error("the message to chunk " + std::to_string(key.to_chunk) +
                           " on this rank was not sent before it was needed");
    }
    PP_RETURN_IF_ERROR(CudaOk(cudaStreamWaitEvent(stream, m.ready, 0), "cudaStreamWaitEvent"));
    m.ready = nullptr;
    return static_cast<const void*>(m.buffer);
  }
  if (it == messages_.end() || it->second.sending) {
    return Status::Error("no channel receives for chunk " + std::to_string(key.to_chunk));
  }
  const Message& m = it->second;
  const int peer = PeerOf(key, false);
  PP_RETURN_IF_ERROR(NcclOk(ncclRecv(m.buffer, static_cast<size_t>(m.bytes), ncclUint8, peer,
                                     comm_, receive_stream_),
                            ("ncclRecv from rank " + std::to_string(peer)).c_str()));
  PP_RETURN_IF_ERROR(CudaOk(cudaEventRecord(m.arrived, receive_stream_), "cudaEventRecord"));
  PP_RETURN_IF_ERROR(CudaOk(cudaStreamWaitEvent(stream, m.arrived, 0), "cudaStreamWaitEvent"));
  return static_cast<const void*>(m.buffer);
}

Status NcclTransport::Drain(double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_s));
  for (;;) {
    const cudaError_t state = cudaStreamQuery(receive_stream_);
    if (state == cudaSuccess) return Status::Ok();
    if (state != cudaErrorNotReady) return CudaOk(state, "receive stream");
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess &&
        async != ncclInProgress) {
      Abort();
      return Status::Error("NCCL failed: " + NcclErrorText(async));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Abort();
      return Status::Error("waited longer than " + FormatSeconds(timeout_s) +
                           " for its inputs over NCCL (a rank died, hangs or left early)");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclTransport::Abort() {
  if (aborted_) return;
  aborted_ = true;
  (void)ncclCommAbort(comm_);
}

uint64_t NcclTransport::allocated_bytes(int device) const {
  return device == device_ ? bytes_ : 0;
}

}  // namespace pp
