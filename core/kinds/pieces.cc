#include "core/kinds/pieces.h"

#include <algorithm>

namespace pp {

Piece LinearPiece(const KernelShape& sh, double in, double out, bool bias,
                  const PieceNames& names) {
  Piece p;
  p.forward = GemmKernel(names.forward, sh.n, in, out, sh.e);
  if (bias) p.forward.bytes += out * sh.e;
  p.input_grad = GemmKernel(names.input_grad, sh.n, out, in, sh.e);
  p.weight_grads.push_back(GemmKernel(names.weight_grad, in, sh.n, out, sh.e));
  if (bias) p.weight_grads.push_back(MemoryKernel(names.bias_grad, sh.n * out * sh.e + out * sh.e));
  return p;
}

Piece NormPiece(const KernelShape& sh, NormKind norm, double h, const PieceNames& names) {
  const bool ln = norm == NormKind::kLayerNorm;
  const double stats = sh.n * (ln ? 8.0 : 4.0);
  const double params = (ln ? 2.0 : 1.0) * h * sh.e;
  const double rows = sh.n * h * sh.e;  // one [N x h] tensor
  Piece p;
  // Reads x and the parameters; writes y and the statistics.
  p.forward = MemoryKernel(names.forward, rows + params + rows + stats);
  // Reads dy, x, the statistics and the gain; writes dx.
  p.input_grad = MemoryKernel(names.input_grad, 2 * rows + stats + h * sh.e + rows);
  // Reads dy, x and the statistics; writes the parameter gradients.
  p.weight_grads.push_back(MemoryKernel(names.weight_grad, 2 * rows + stats + params));
  return p;
}

Piece ExpertPiece(const KernelShape& sh, double tokens, double experts, double in, double out,
                  bool bias, const PieceNames& names) {
  const double per = tokens / experts;  // rows of one expert
  Piece p;
  p.forward = BatchedGemmKernel(names.forward, experts, per, in, out, sh.e);
  if (bias) p.forward.bytes += experts * out * sh.e;
  p.input_grad = BatchedGemmKernel(names.input_grad, experts, per, out, in, sh.e);
  p.weight_grads.push_back(BatchedGemmKernel(names.weight_grad, experts, in, per, out, sh.e));
  if (bias) {
    p.weight_grads.push_back(
        MemoryKernel(names.bias_grad, tokens * out * sh.e + experts * out * sh.e));
  }
  return p;
}

RankSplit RankSplitOf(const KernelShape& sh) {
  RankSplit r;
  r.tp = std::max(1, sh.par.tp);
  r.cp = std::max(1, sh.par.cp);
  r.ep = std::max(1, sh.par.ep);
  r.etp = std::max(1, sh.par.expert_tp());
  r.sp = r.tp > 1 && sh.par.sequence_parallel;
  r.rows = sh.n / static_cast<double>(r.cp);
  r.sp_rows = r.sp ? r.rows / static_cast<double>(r.tp) : r.rows;
  r.seq = sh.s / static_cast<double>(r.cp);
  return r;
}

int64_t Share(int64_t count, int64_t parts) {
  return parts <= 1 ? count : (count + parts - 1) / parts;
}

KernelShape WithRows(const KernelShape& sh, double rows) {
  KernelShape out = sh;
  out.n = rows;
  return out;
}

void AddPiece(const Piece& p, LayerKernels* k) {
  k->forward.push_back(p.forward);
  k->backward_input.push_back(p.input_grad);
  for (const Kernel& w : p.weight_grads) k->backward_weight.push_back(w);
}

}  // namespace pp
