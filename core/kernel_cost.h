// The work of one kernel, as the analytic profiler counts it: floating-point operations and
// bytes moved to and from device memory. Each layer kind lists the kernels it launches
// (core/kind_entry.h); the analytic backend turns them into times with a roofline
// (profiler/analytic.h); docs/analytic.md lists every kernel and its formula.
//
// Conventions, per micro-batch: N = input.rows() (micro_batch_size x seq_len, or
// micro_batch_size for feature models), e = element size of the dtype (2 for bf16, 4 for
// fp32). `flops` counts the multiply-adds of matrix products (2 per multiply-add) and nothing
// else: elementwise and reduction kernels are charged by their bytes alone. `bytes` counts
// every tensor the kernel reads plus every tensor it writes, once each (no cache reuse).
// All counts are doubles: exact below 2^53, finite (if inexact) beyond.
#pragma once

#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/parallelism.h"
#include "core/recompute_modules.h"

namespace pp {

// What kind of work a kernel is, for the efficiency model (profiler/): a matrix product (its
// shape below decides its achieved rate), a fused attention kernel (flash-style: scores never
// reach memory), or a memory-bound kernel (its bytes at the achieved bandwidth).
enum class KernelClass { kGemm, kAttention, kMemory };

struct Kernel {
  std::string_view name;  // a static label such as "qkv" or "softmax_dgrad"
  double flops = 0;       // floating-point operations
  double bytes = 0;       // bytes read + bytes written
  KernelClass cls = KernelClass::kMemory;
  // Matrix products: batch independent [m x k] . [k x n] products (0 for other kernels).
  double m = 0, k = 0, n = 0, batch = 0;
  // One of the routed experts' kernels (their products and activation): what runs between
  // the dispatch and the combine of the experts' tokens (Megatron-LM's "mlp" node of a MoE
  // layer; profiler/efficiency.h PartsMs).
  bool routed_expert = false;
  // The recomputation modules this kernel belongs to (bits of ModuleBit, core/
  // recompute_modules.h): what selective recomputation of them runs again in the backward.
  uint8_t modules = 0;
};

// The kernels of one micro-batch on one rank, and the collectives the rank waits for in each
// part (core/parallelism.h; empty without tensor, context or expert parallelism).
struct LayerKernels {
  std::vector<Kernel> forward;
  std::vector<Kernel> backward_input;   // gradient with respect to the layer's input
  std::vector<Kernel> backward_weight;  // gradients of the layer's own parameters
  std::vector<Collective> forward_comm;
  std::vector<Collective> backward_input_comm;
  std::vector<Collective> backward_weight_comm;
};

// The shapes every kernel and memory term of one micro-batch uses, as doubles.
struct KernelShape {
  double n = 0;  // rows: micro_batch_size x seq_len (or micro_batch_size)
  double b = 0;  // micro_batch_size
  double s = 0;  // seq_len (1 for feature models)
  double e = 0;  // bytes per element of the dtype
  // How the layer is split over ranks (default: not at all). Every count a kind reports for
  // this shape is one rank's: its kernels, its parameters and its activations.
  ShardDegrees par;
  // Attention as one fused kernel per direction (flash-style: the s x s scores are neither
  // written nor kept; causal masking halves the work). Off: the unfused kernels the CPU and
  // CUDA layers run.
  bool flash_attention = false;
  // The loss's cross entropy as one fused kernel per direction; off: Megatron-Core's unfused
  // passes (ParallelLayout::fused_cross_entropy).
  bool fused_cross_entropy = true;
  // Bytes per element of what a layer keeps of its linear layers' inputs for their weight
  // gradients, where that differs from e: an fp8 model's layer keeps them quantized
  // (AnalyticLayerMemory). KernelShapeOf sets it to e.
  double e_inputs = 0;
};
KernelShape KernelShapeOf(const ModelInput& input, DType dtype);

// A matrix product [m x k] . [k x n] in elements of `element_bytes` bytes:
// flops 2mkn, bytes (mk + kn + mn) x element_bytes.
Kernel GemmKernel(std::string_view name, double m, double k, double n, double element_bytes);

// `batch` independent products of the same shape (attention heads): batch x GemmKernel.
Kernel BatchedGemmKernel(std::string_view name, double batch, double m, double k, double n,
                         double element_bytes);

// A memory-bound kernel: no counted flops, `bytes` read + written.
Kernel MemoryKernel(std::string_view name, double bytes);

// Sums over a list.
double TotalFlops(const std::vector<Kernel>& kernels);
double TotalBytes(const std::vector<Kernel>& kernels);

}  // namespace pp
