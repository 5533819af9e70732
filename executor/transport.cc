#include "executor/transport.h"

#include <algorithm>
#include <chrono>

#include "core/units.h"

namespace pp {

Status HostTransport::Send(const MessageKey& key, const float* data, size_t count) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) return Status::Error("aborted");
    Slot& slot = slots_[key];
    if (slot.full) {
      return Status::Error("a message for chunk " + std::to_string(key.to_chunk) +
                           " micro-batch " + std::to_string(key.micro_batch) +
                           " was sent twice");
    }
    slot.data.assign(data, data + count);
    slot.full = true;
  }
  cv_.notify_all();
  return Status::Ok();
}

Status HostTransport::Receive(const MessageKey& key, float* out, size_t count, double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_s));
  Slot* slot = &slots_[key];
  while (!slot->full && !aborted_) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !slot->full && !aborted_) {
      return Status::Error("waited longer than " + FormatSeconds(timeout_s) +
                           " for its input");
    }
  }
  if (aborted_) return Status::Error("aborted");
  if (slot->data.size() != count) {
    return Status::Error("received " + std::to_string(slot->data.size()) + " values, expected " +
                         std::to_string(count));
  }
  std::copy(slot->data.begin(), slot->data.end(), out);
  slot->full = false;
  return Status::Ok();
}

void HostTransport::Abort() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
  }
  cv_.notify_all();
}

}  // namespace pp
