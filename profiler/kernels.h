// The kernels each layer launches in its forward pass, its backward pass for the input
// gradient, and its backward pass for the weight gradients, each described by the work it
// does (core/kernel_cost.h: Kernel, its conventions and the GEMM and memory builders). Each
// kind's entry lists its own (core/kind_entry.h); the analytic backend turns them into times
// with a roofline (analytic.h); docs/analytic.md lists every kernel and its formula.
#pragma once

#include "core/kernel_cost.h"
#include "core/model.h"

namespace pp {

// Every kernel `layer` launches for one micro-batch of `input` in `dtype`. `layer` must come
// from a loaded Model (its in_width is filled in). A layer with nothing to do in a part (the
// input gradient of an embedding, the weight gradient of a relu) has an empty list there.
// `options` splits the layer over tensor, context and expert ranks (one rank's kernels and its
// collectives) and fuses attention.
struct KernelOptions {
  ShardDegrees par;
  bool flash_attention = false;
  bool fused_cross_entropy = true;  // ParallelLayout::fused_cross_entropy
};
KernelShape KernelShapeOf(const ModelInput& input, DType dtype, const KernelOptions& options);
// Bytes per element that the kernels of a `dtype` model read and write: DTypeBytes, except
// for fp8, whose kernels move bf16's 2. Transformer Engine's FP8 training feeds only the
// linear layers' products with fp8 operands; the norms, activations, residual adds, rotary
// embeddings and attention read and write bf16. The products' own fp8 operands are counted
// at 2 bytes too: an upper bound on their traffic, which leaves their time alone wherever
// they are compute-bound. Its tensor-parallel all-gathers move the quantized tensor, one
// byte per element (Transformer Engine quantizes a column-parallel layer's input before it
// gathers it: pytorch/module/layernorm_linear.py); its reduce-scatters and all-reduces, of
// bf16 product outputs, two. What a layer keeps and passes on counts the same, except the
// linear layers' inputs kept for the weight gradients, which an fp8 layer keeps quantized
// (AnalyticLayerMemory).
double KernelTrafficBytes(DType dtype);
// The quantizations an fp8 step adds to a layer's kernels, as Transformer Engine's current
// scaling runs them on Hopper (transformer_engine/pytorch/csrc/quantizer.cpp and
// extensions/normalization.cpp): every fp8 product's input in the forward and the gradient of
// its output in the backward is quantized by an amax pass (reads the bf16 tensor), a scale
// kernel, and a cast that reads it again and writes the fp8 copy and its transpose (the
// weight gradient's operand). A product right after a norm (qkv, a dense block's first MLP
// product) takes its amax from the norm's own kernel. A sequence-parallel column-parallel
// product's input, and a row-parallel product's output gradient, is quantized on the rank's
// share before its all-gather. The router's and unfused attention's products run in bf16
// (ComputeDType) and are not quantized. The casts go at
// the end of the forward and input-gradient lists; the weights' own casts (once per step)
// are not counted.
void AddFp8Casts(const ShardDegrees& par, LayerKernels* kernels);
LayerKernels ListKernels(const Layer& layer, const ModelInput& input, DType dtype,
                         const KernelOptions& options = {});

}  // namespace pp
