// How the cuda backend moves activations and their gradients between chunks: the device-side
// twin of Transport (transport.h). A message (MessageKey) is produced on one device's stream
// and consumed on another's; nothing waits on the host except the consumer's short handoff
// ("has the producer enqueued it yet?"), after which the consumer's stream waits on a CUDA
// event. The multi-process NCCL transport (nccl_transport.h) implements the same calls.
//
// Protocol, per message and step (every message is sent and received once per step):
//   producer thread:  p = SendBuffer(key); enqueue work writing p; record `ready` on its
//                     compute stream; Send(key, ready, copy_stream).
//   consumer thread:  q = Receive(key, compute_stream, timeout); enqueue work reading q.
// Buffers are per micro-batch, so a producer running ahead never overwrites a message that
// is still unread; the runtime synchronises every device between steps before reuse.
#pragma once

#include <cuda_runtime.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "executor/transport.h"

namespace pp {

// The host-side handoff: which event a consumer's stream must wait on. Post happens on the
// producer's thread after the event was recorded; Take blocks the consumer's thread until the
// post (or the deadline, or Abort) and consumes it. Thread-safe.
class EventMailbox {
 public:
  void Post(const MessageKey& key, cudaEvent_t event);
  // Errors: "waited longer than T s for its input", "aborted".
  Result<cudaEvent_t> Take(const MessageKey& key, double timeout_s);
  void Abort();

 private:
  struct Slot {
    cudaEvent_t event = nullptr;
    bool posted = false;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<MessageKey, Slot> slots_;
  bool aborted_ = false;
};

class DeviceTransport {
 public:
  virtual ~DeviceTransport() = default;
  // Where the producer writes `key`'s payload: device memory on the producer's GPU, valid for
  // the transport's lifetime. nullptr for an unregistered key.
  virtual void* SendBuffer(const MessageKey& key) = 0;
  // The payload is complete once `ready` (recorded on the producer's stream) fires. Moves it
  // to the consumer (on `copy_stream`, a stream of the producer's device, when a copy is
  // needed) and posts its arrival. Called on the producer's thread; does not block.
  virtual Status Send(const MessageKey& key, cudaEvent_t ready, cudaStream_t copy_stream) = 0;
  // Waits on the host up to `timeout_s` for the Send, then makes `stream` wait (on the GPU)
  // for the arrival. Returns the payload's address on the consumer's GPU.
  virtual Result<const void*> Receive(const MessageKey& key, cudaStream_t stream,
                                      double timeout_s) = 0;
  // Wakes every waiting Receive with an error; later calls fail at once.
  virtual void Abort() = 0;
  // Bytes this transport allocated for runtime device `device` (received or staged there).
  virtual uint64_t allocated_bytes(int device) const = 0;
};

// One process, any GPUs: same-GPU messages (virtual devices) are handed over in place (the
// producer writes straight into the consumer's buffer, the event is the only signal);
// messages between GPUs go by cudaMemcpyPeerAsync, over peer access where the pair allows it
// and staged through host memory by the driver where it does not. Owns its buffers and
// events (deleted copies).
class CudaTransport final : public DeviceTransport {
 public:
  CudaTransport() = default;
  ~CudaTransport() override;
  CudaTransport(const CudaTransport&) = delete;
  CudaTransport& operator=(const CudaTransport&) = delete;

  // Registers the messages to `to_chunk` of one kind, `bytes` each, for micro-batches
  // 0..micro_batches-1, from runtime device `from` (on GPU from_gpu) to `to` (on to_gpu).
  // Allocates on both GPUs (selects devices with cudaSetDevice: call at setup, not from a
  // device thread that has a green context current). Out of memory comes back as a Status
  // for which cuda::IsOutOfMemory holds.
  Status AddChannel(int to_chunk, bool gradient, int64_t bytes, int micro_batches, int from,
                    int from_gpu, int to, int to_gpu);
  uint64_t allocated_bytes(int device) const override;
  // "in place", "peer copies", "copies staged through host" or a mix, for reports.
  std::string description() const;

  void* SendBuffer(const MessageKey& key) override;
  Status Send(const MessageKey& key, cudaEvent_t ready, cudaStream_t copy_stream) override;
  Result<const void*> Receive(const MessageKey& key, cudaStream_t stream,
                              double timeout_s) override;
  void Abort() override { mailbox_.Abort(); }

 private:
  struct Message {
    void* send = nullptr;  // on the producer's GPU (== receive when the GPU is the same)
    void* receive = nullptr;
    cudaEvent_t arrived = nullptr;  // copies only: recorded after the copy
    int64_t bytes = 0;
    int from_gpu = 0, to_gpu = 0;
  };
  std::map<MessageKey, Message> messages_;
  std::vector<void*> allocations_;
  std::map<int, uint64_t> bytes_per_device_;
  bool any_in_place_ = false, any_peer_ = false, any_staged_ = false;
  EventMailbox mailbox_;
};

}  // namespace pp
