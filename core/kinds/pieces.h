// Kernel lists that several kinds share: a linear map and a norm, each with its forward,
// input-gradient and weight-gradient kernels (the linear kind, the norm kinds and the
// transformer block are built from them). Conventions: core/kernel_cost.h.
#pragma once

#include <string_view>
#include <vector>

#include "core/kernel_cost.h"

namespace pp {

// The kernels of one parameterised piece, before they are placed in a layer's three lists.
struct Piece {
  Kernel forward;
  Kernel input_grad;
  std::vector<Kernel> weight_grads;
};

// Static labels of one piece's kernels.
struct PieceNames {
  std::string_view forward, input_grad, weight_grad, bias_grad;
};

// A linear map [N x in] . [in x out]: forward, input-gradient and weight-gradient GEMMs. A
// bias is added in the forward GEMM's epilogue (read once, no counted flops); its gradient
// is a column sum of the [N x out] output gradient.
Piece LinearPiece(const KernelShape& sh, double in, double out, bool bias,
                  const PieceNames& names);

// LayerNorm keeps mean and rstd (fp32, 8 bytes a row) and has a gain and a bias; RMSNorm
// keeps rstd (4 bytes a row) and has a gain only.
Piece NormPiece(const KernelShape& sh, NormKind norm, double h, const PieceNames& names);

// Places a piece that stands alone as a whole layer.
void AddPiece(const Piece& p, LayerKernels* k);

}  // namespace pp
