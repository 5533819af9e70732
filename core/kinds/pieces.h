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

// `experts` independent linear maps in -> out over `tokens` rows in all, each expert taking
// tokens / experts of them (a grouped GEMM of a mixture-of-experts layer, load balanced).
Piece ExpertPiece(const KernelShape& sh, double tokens, double experts, double in, double out,
                  bool bias, const PieceNames& names);

// Places a piece that stands alone as a whole layer.
void AddPiece(const Piece& p, LayerKernels* k);

// One rank's share of a micro-batch under sh.par (docs/analytic.md, "Under parallelism").
struct RankSplit {
  int64_t tp = 1, cp = 1, ep = 1;
  int64_t etp = 1;     // the routed experts' tensor degree (ShardDegrees::expert_tp)
  bool sp = false;     // sequence parallelism in effect: tp > 1 and par.sequence_parallel
  double rows = 0;     // rows of the tensor-parallel region (matrix products): N / cp
  double sp_rows = 0;  // rows of the parts outside it (norms, residual adds): rows / tp with
                       // sequence parallelism, else rows
  double seq = 0;      // the rank's own sequence length: s / cp
};
RankSplit RankSplitOf(const KernelShape& sh);

// A rank's share of `count` items split over `parts` ranks: ceil(count / parts), exact when
// parts divides count (the largest share when it does not).
int64_t Share(int64_t count, int64_t parts);

// The shape with `rows` rows in place of sh.n (pieces count their rows from sh.n).
KernelShape WithRows(const KernelShape& sh, double rows);

}  // namespace pp
