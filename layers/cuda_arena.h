// A device arena: one cudaMalloc, tensors carved from it in order at 256-byte alignment, freed
// together. It is the tool's own allocator accounting: what a layer holds is exactly what was
// carved for it. Host code; the arena owns its allocation (deleted copies).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "layers/cuda_check.h"

namespace pp {

class DeviceArena {
 public:
  static constexpr size_t kAlign = 256;
  static constexpr size_t AlignUp(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
  // Bytes an arena needs to hold `count` values of T (one Take).
  template <typename T>
  static constexpr size_t Bytes(int64_t count) {
    return AlignUp(sizeof(T) * static_cast<size_t>(count > 0 ? count : 0));
  }

  // Allocates `bytes` on the current device. Out of memory comes back as a Status for which
  // cuda::IsOutOfMemory() holds (the runtime's sticky-free error is cleared).
  static Result<std::unique_ptr<DeviceArena>> Create(size_t bytes) {
    std::unique_ptr<DeviceArena> arena(new DeviceArena());
    arena->capacity_ = AlignUp(bytes > 0 ? bytes : 1);
    const cudaError_t err = cudaMalloc(&arena->base_, arena->capacity_);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      arena->base_ = nullptr;
      return cuda::CudaError(err, __FILE__, __LINE__, "cudaMalloc(arena)");
    }
    return Result<std::unique_ptr<DeviceArena>>(std::move(arena));
  }
  ~DeviceArena() {
    if (base_ != nullptr) (void)cudaFree(base_);
  }
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  // The next `count` values of T, or nullptr when the arena is exhausted (a sizing bug).
  template <typename T>
  T* Take(int64_t count) {
    const size_t bytes = Bytes<T>(count);
    if (used_ + bytes > capacity_) return nullptr;
    T* p = reinterpret_cast<T*>(static_cast<char*>(base_) + used_);
    used_ += bytes;
    return p;
  }

  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }

 private:
  DeviceArena() = default;
  void* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

}  // namespace pp
