// Factories of the CPU reference layers, one per implementation file (layers/<impl>.cc),
// named by PP_LAYER_KINDS (core/layer_kinds.h); MakeCpuLayer (layer.cc) picks one by kind.
#pragma once

#include <memory>

#include "layers/layer.h"

namespace pp {

#define PP_DECLARE_CPU_FACTORY(Name, Impl) \
  template <typename T>                    \
  std::unique_ptr<CpuLayer<T>> MakeCpu##Impl(const Layer& l, const ModelInput& in);
PP_LAYER_KINDS(PP_DECLARE_CPU_FACTORY)
#undef PP_DECLARE_CPU_FACTORY

}  // namespace pp
