// How activations and their gradients move between pipeline chunks. One small interface;
// HostTransport moves host memory between threads of one process. A peer-copy or NCCL
// transport implements the same two calls, so the schedules never change for it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/status.h"

namespace pp {

// A message is addressed to the chunk that consumes it: the activation for F(chunk, mb) or
// the gradient for the backward of (chunk, mb).
struct MessageKey {
  int to_chunk = 0;
  bool gradient = false;
  int micro_batch = 0;
  bool operator<(const MessageKey& o) const {
    return std::tie(to_chunk, gradient, micro_batch) <
           std::tie(o.to_chunk, o.gradient, o.micro_batch);
  }
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Delivers `count` floats from `data` (copied before returning).
  virtual Status Send(const MessageKey& key, const float* data, size_t count) = 0;
  // Waits up to `timeout_s` seconds for the message, copies it into `out` (`count` floats)
  // and consumes it. Errors: a timeout, a size mismatch, or Abort() from another thread.
  virtual Status Receive(const MessageKey& key, float* out, size_t count, double timeout_s) = 0;
  // Wakes every waiting Receive with an error; later calls fail at once.
  virtual void Abort() = 0;
};

// Thread-safe mailbox in host memory. Each key's buffer is allocated on first use and reused
// in later steps, so after a warm-up step nothing allocates.
class HostTransport final : public Transport {
 public:
  HostTransport() = default;
  HostTransport(const HostTransport&) = delete;
  HostTransport& operator=(const HostTransport&) = delete;

  Status Send(const MessageKey& key, const float* data, size_t count) override;
  Status Receive(const MessageKey& key, float* out, size_t count, double timeout_s) override;
  void Abort() override;

 private:
  struct Slot {
    std::vector<float> data;
    bool full = false;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<MessageKey, Slot> slots_;
  bool aborted_ = false;
};

}  // namespace pp
