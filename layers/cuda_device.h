// Device-side helpers for the .cu files only (not for host compilers): fp32 conversion of the
// storage type, block reductions, grid sizes and the two-stage column reduction.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace pp::cuda {

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}

// splitmix64 of (seed, i): 64 pseudo-random bits per index, independent across indices (the
// random fills of the profiler's inputs and of calibration's operands).
__device__ __forceinline__ uint64_t SplitMix64(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over `count` elements.
inline unsigned Blocks(int64_t count, int threads = kThreads) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535 * 8));
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}

// Sum (or max) over the block; every thread gets the result. blockDim.x is a multiple of 32,
// at most 1024; `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return WarpSum(v);
}
__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return WarpMax(v);
}

// Two-stage column reduction: stage one sums term(r, j) -> float2 over row chunks into
// partial[chunk][j]; stage two adds the chunk sums to out0[j] (and out1[j]). Deterministic.
constexpr int kColumnTile = 32;     // columns per block (threadIdx.x)
constexpr int kRowLanes = 8;        // rows in flight per block (threadIdx.y)
constexpr int64_t kChunkRows = 128; // rows per chunk
inline int64_t ColumnChunks(int64_t rows) { return (rows + kChunkRows - 1) / kChunkRows; }

template <typename Term>
__global__ void ColumnPartialKernel(Term term, int64_t rows, int64_t cols, float2* partial) {
  __shared__ float2 sums[kRowLanes][kColumnTile];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColumnTile + threadIdx.x;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * kChunkRows;
  const int64_t last = first + kChunkRows < rows ? first + kChunkRows : rows;
  float2 acc = make_float2(0.0f, 0.0f);
  if (j < cols) {
    for (int64_t r = first + threadIdx.y; r < last; r += kRowLanes) {
      const float2 t = term(r, j);
      acc.x += t.x;
      acc.y += t.y;
    }
  }
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    for (int i = 1; i < kRowLanes; ++i) {
      acc.x += sums[i][threadIdx.x].x;
      acc.y += sums[i][threadIdx.x].y;
    }
    partial[blockIdx.y * cols + j] = acc;
  }
}

template <typename T>
__global__ void ColumnFinishKernel(const float2* partial, int64_t chunks, int64_t cols, T* out0,
                                   T* out1) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < cols;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float2 s = make_float2(0.0f, 0.0f);
    for (int64_t c = 0; c < chunks; ++c) {
      s.x += partial[c * cols + j].x;
      s.y += partial[c * cols + j].y;
    }
    out0[j] = FromFloat<T>(ToFloat(out0[j]) + s.x);
    if (out1 != nullptr) out1[j] = FromFloat<T>(ToFloat(out1[j]) + s.y);
  }
}

// Enqueues both stages; partial holds ColumnChunks(rows) * cols float2 values.
template <typename T, typename Term>
void LaunchColumnReduce(Term term, int64_t rows, int64_t cols, float* partial, T* out0, T* out1,
                        cudaStream_t stream) {
  const int64_t chunks = ColumnChunks(rows);
  const dim3 grid(static_cast<unsigned>((cols + kColumnTile - 1) / kColumnTile),
                  static_cast<unsigned>(chunks));
  ColumnPartialKernel<<<grid, dim3(kColumnTile, kRowLanes), 0, stream>>>(
      term, rows, cols, reinterpret_cast<float2*>(partial));
  ColumnFinishKernel<T><<<Blocks(cols), kThreads, 0, stream>>>(
      reinterpret_cast<const float2*>(partial), chunks, cols, out0, out1);
}

}  // namespace pp::cuda
