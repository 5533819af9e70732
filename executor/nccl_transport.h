// The `nccl` transport of the cuda backend across ranks (one GPU per rank): a DeviceTransport
// (cuda_transport.h) over NCCL point-to-point calls. Built into the module pp-partition-nccl
// where the CUDA toolkit ships NCCL; needs GPUs to run.
//
// Per message key and micro-batch, a buffer on this rank's GPU: the producer's kernels write
// its send buffer (SendBuffer), Send makes the copy stream wait for the op's end event and
// enqueues ncclSend there; Receive enqueues ncclRecv into the receive buffer on the
// transport's own receive stream, records an event and makes the consumer's stream wait on
// it. Sends and receives go on separate streams so that a send waiting for its peer's
// receive never holds up a receive behind it (each direction between two ranks stays in
// issue order, which is what NCCL matches). The host never blocks in either call; a lost
// peer shows as a step that does not finish: Drain polls for it and aborts the communicator
// at the deadline, so every wait returns.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "executor/cuda_transport.h"

namespace pp {

// The text of an NCCL result.
std::string NcclErrorText(ncclResult_t result);

class NcclTransport final : public DeviceTransport {
 public:
  // `comm` spans the job's ranks (NCCL rank = job rank); `rank_of_chunk[c]` runs chunk c of
  // this rank's pipeline; `device`: this rank's runtime device (its stage), for
  // allocated_bytes. Creates the receive stream on the current GPU.
  NcclTransport(ncclComm_t comm, std::vector<int> rank_of_chunk, int device);
  ~NcclTransport() override;
  NcclTransport(const NcclTransport&) = delete;
  NcclTransport& operator=(const NcclTransport&) = delete;

    // Registers the messages to `to_chunk` of one kind, `bytes` each, for micro-batches
  // 0..micro_batches-1, that this rank sends (`sending`) or receives. Allocates on the
  // current GPU.
  Status AddChannel(int to_chunk, bool gradient, int64_t bytes, int micro_batches, bool sending);
  // The same for messages between two chunks of this rank (zbv's turn of the V): handed over
  // in place, the producer's end event the only signal, as CudaTransport does on one GPU.
  Status AddLocalChannel(int to_chunk, bool gradient, int64_t bytes, int micro_batches);

  void* SendBuffer(const MessageKey& key) override;
  Status Send(const MessageKey& key, cudaEvent_t ready, cudaStream_t copy_stream) override;
  Result<const void*> Receive(const MessageKey& key, cudaStream_t stream,
                              double timeout_s) override;
  void Abort() override;
  uint64_t allocated_bytes(int device) const override;

  // Waits up to `timeout_s` for every receive enqueued so far to complete, polling the
  // communicator's asynchronous error; at the deadline (a peer died or hangs) aborts the
  // communicator and fails naming the ranks awaited.
  Status Drain(double timeout_s);

 private:
  struct Message {
    void* buffer = nullptr;
    int64_t bytes = 0;
    cudaEvent_t arrived = nullptr;  // receives only
    cudaEvent_t ready = nullptr;    // local: the producer's end event, set by Send
    bool sending = false;
    bool local = false;
  };
  int PeerOf(const MessageKey& key, bool sending) const;

  ncclComm_t comm_;
  std::vector<int> rank_of_chunk_;
  int device_;
  cudaStream_t receive_stream_ = nullptr;
  std::map<MessageKey, Message> messages_;
  std::vector<void*> allocations_;
  uint64_t bytes_ = 0;
  bool aborted_ = false;
};

}  // namespace pp
