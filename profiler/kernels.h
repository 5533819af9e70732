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
// bf16 product outputs, two. What a layer keeps (AnalyticLayerMemory) stays at DTypeBytes.
double KernelTrafficBytes(DType dtype);
LayerKernels ListKernels(const Layer& layer, const ModelInput& input, DType dtype,
                         const KernelOptions& options = {});

}  // namespace pp
