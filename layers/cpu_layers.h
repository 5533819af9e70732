// Factories of the CPU reference layers, one per file; MakeCpuLayer (layer.cc) picks one.
#pragma once

#include <memory>

#include "layers/layer.h"

namespace pp {

template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuEmbedding(const Layer& l, const ModelInput& in);  // embedding.cc
template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuLinear(const Layer& l, const ModelInput& in);  // linear.cc
template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuActivation(const Layer& l, const ModelInput& in);  // activation.cc
template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuNorm(const Layer& l, const ModelInput& in);  // norm.cc
template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuLoss(const Layer& l, const ModelInput& in);  // loss.cc
template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuTransformerBlock(const Layer& l, const ModelInput& in);  // transformer_block.cc

}  // namespace pp
