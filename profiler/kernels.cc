#include "profiler/kernels.h"

#include <algorithm>

namespace pp {
namespace {

// Shapes shared by every kernel of one layer, as doubles.
struct Shape {
  double n = 0;  // rows: micro_batch_size x seq_len (or micro_batch_size)
  double b = 0;  // micro_batch_size
  double s = 0;  // seq_len (1 for feature models)
  double e = 0;  // bytes per element
};

void Add(std::vector<Kernel>& list, Kernel k) { list.push_back(k); }

// The kernels of one parameterised piece (a linear map or a norm), before they are placed in
// a layer's three lists.
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
Piece LinearPiece(const Shape& sh, double in, double out, bool bias, const PieceNames& names) {
  Piece p;
  p.forward = GemmKernel(names.forward, sh.n, in, out, sh.e);
  if (bias) p.forward.bytes += out * sh.e;
  p.input_grad = GemmKernel(names.input_grad, sh.n, out, in, sh.e);
  p.weight_grads.push_back(GemmKernel(names.weight_grad, in, sh.n, out, sh.e));
  if (bias) p.weight_grads.push_back(MemoryKernel(names.bias_grad, sh.n * out * sh.e + out * sh.e));
  return p;
}

// LayerNorm keeps mean and rstd (fp32, 8 bytes a row) and has a gain and a bias; RMSNorm
// keeps rstd (4 bytes a row) and has a gain only.
Piece NormPiece(const Shape& sh, NormKind norm, double h, const PieceNames& names) {
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

// Places a piece that stands alone as a whole layer.
void AddPiece(LayerKernels& k, const Piece& p) {
  Add(k.forward, p.forward);
  Add(k.backward_input, p.input_grad);
  for (const Kernel& w : p.weight_grads) Add(k.backward_weight, w);
}

void AddEmbedding(LayerKernels& k, const Layer& l, const Shape& sh) {
  const double h = static_cast<double>(l.hidden);
  const double row = h * sh.e;
  const bool types = l.token_types > 0;
  const double tables = 1 + (l.positions > 0 ? 1 : 0) + (types ? 1 : 0);
  const double id_streams = types ? 2 : 1;  // position ids come from the index, not memory
  // Reads the ids and one row of every table per token, writes the summed row.
  Add(k.forward,
      MemoryKernel("embedding_gather", sh.n * 4 * id_streams + tables * sh.n * row + sh.n * row));
  // No input gradient (the input is token ids). The backward is a scatter-add per table:
  // reads the output gradient (and the ids), then reads and writes each gradient row it
  // touches (at most one per token, at most the whole table).
  auto scatter = [&](std::string_view name, double table_rows, bool reads_ids) {
    const double touched = std::min(sh.n, table_rows);
    Add(k.backward_weight,
        MemoryKernel(name, sh.n * row + (reads_ids ? sh.n * 4 : 0) + 2 * touched * row));
  };
  scatter("embedding_scatter_add", static_cast<double>(l.vocab), true);
  if (l.positions > 0) scatter("position_scatter_add", sh.s, false);
  if (types) scatter("token_type_scatter_add", static_cast<double>(l.token_types), true);
}

void AddBlock(LayerKernels& k, const Layer& l, const Shape& sh) {
  const double h = static_cast<double>(l.hidden);
  const double f = static_cast<double>(l.ffn);
  const double a = static_cast<double>(l.heads);
  const double d = h / a;
  const double s = sh.s;
  const double heads = sh.b * a;               // independent attention problems
  const double act = sh.n * h * sh.e;          // one [N x h] tensor
  const double scores = heads * s * s * sh.e;  // one [b x a x s x s] tensor
  const double rows_f = sh.n * f * sh.e;       // one [N x f] tensor
  const double add = 3 * act;                  // residual add: reads two, writes one
  const bool gelu = l.mlp == MlpKind::kGelu;

  const Piece norm1 = NormPiece(sh, l.norm, h, {"norm1", "norm1_dgrad", "norm1_wgrad", ""});
  const Piece qkv =
      LinearPiece(sh, h, 3 * h, l.bias, {"qkv", "qkv_dgrad", "qkv_wgrad", "qkv_bias_grad"});
  const Piece proj =
      LinearPiece(sh, h, h, l.bias, {"proj", "proj_dgrad", "proj_wgrad", "proj_bias_grad"});
  const Piece norm2 = NormPiece(sh, l.norm, h, {"norm2", "norm2_dgrad", "norm2_wgrad", ""});
  // The gelu MLP's first map is fc1 (h -> f); swiglu's is gate and up fused (h -> 2f).
  const Piece fc1 =
      gelu ? LinearPiece(sh, h, f, l.bias, {"fc1", "fc1_dgrad", "fc1_wgrad", "fc1_bias_grad"})
           : LinearPiece(sh, h, 2 * f, l.bias,
                         {"gate_up", "gate_up_dgrad", "gate_up_wgrad", "gate_up_bias_grad"});
  const Piece fc2 =
      LinearPiece(sh, f, h, l.bias, {"fc2", "fc2_dgrad", "fc2_wgrad", "fc2_bias_grad"});

  // Forward: x -> norm1 -> qkv -> (rotary) -> QK^T -> softmax -> PV -> proj -> + x
  //            -> norm2 -> fc1 -> gelu | silu(gate) * up -> fc2 -> + residual.
  std::vector<Kernel>& fwd = k.forward;
  Add(fwd, norm1.forward);
  Add(fwd, qkv.forward);
  if (l.rotary) Add(fwd, MemoryKernel("rotary", 4 * act));  // reads q and k; writes both
  Add(fwd, BatchedGemmKernel("attention_scores", heads, s, d, s, sh.e));
  Add(fwd, MemoryKernel("softmax", 2 * scores));  // scale, mask and softmax in one pass
  Add(fwd, BatchedGemmKernel("attention_context", heads, s, s, d, sh.e));
  Add(fwd, proj.forward);
  Add(fwd, MemoryKernel("residual_add1", add));
  Add(fwd, norm2.forward);
  Add(fwd, fc1.forward);
  // gelu reads fc1's output and writes its own; swiglu reads gate and up, writes the product.
  Add(fwd, gelu ? MemoryKernel("gelu", 2 * rows_f) : MemoryKernel("swiglu", 3 * rows_f));
  Add(fwd, fc2.forward);
  Add(fwd, MemoryKernel("residual_add2", add));

  // Input gradient: the same chain backwards. Where a branch rejoins its skip connection the
  // two gradients are summed (reads two, writes one).
  std::vector<Kernel>& bwd = k.backward_input;
  Add(bwd, fc2.input_grad);
  // gelu: reads dy and fc1's output, writes dx. swiglu: reads d(product), gate and up,
  // writes d(gate) and d(up).
  Add(bwd,
      gelu ? MemoryKernel("gelu_dgrad", 3 * rows_f) : MemoryKernel("swiglu_dgrad", 5 * rows_f));
  Add(bwd, fc1.input_grad);
  Add(bwd, norm2.input_grad);
  Add(bwd, MemoryKernel("residual_grad_add2", add));
  Add(bwd, proj.input_grad);
  // Context = P.V: dP = dO.V^T and dV = P^T.dO.
  Add(bwd, BatchedGemmKernel("attention_context_dgrad_p", heads, s, d, s, sh.e));
  Add(bwd, BatchedGemmKernel("attention_context_dgrad_v", heads, s, s, d, sh.e));
  Add(bwd, MemoryKernel("softmax_dgrad", 3 * scores));  // reads dP and P; writes dS
  // Scores = Q.K^T: dQ = dS.K and dK = dS^T.Q.
  Add(bwd, BatchedGemmKernel("attention_scores_dgrad_q", heads, s, s, d, sh.e));
  Add(bwd, BatchedGemmKernel("attention_scores_dgrad_k", heads, s, s, d, sh.e));
  if (l.rotary) Add(bwd, MemoryKernel("rotary_dgrad", 4 * act));
  Add(bwd, qkv.input_grad);
  Add(bwd, norm1.input_grad);
  Add(bwd, MemoryKernel("residual_grad_add1", add));

  // Weight gradients, in the order the backward produces them.
  for (const Piece* p : {&fc2, &fc1, &norm2, &proj, &qkv, &norm1}) {
    for (const Kernel& w : p->weight_grads) Add(k.backward_weight, w);
  }
}

}  // namespace

Kernel GemmKernel(std::string_view name, double m, double k, double n, double element_bytes) {
  return Kernel{name, 2 * m * k * n, (m * k + k * n + m * n) * element_bytes};
}

Kernel BatchedGemmKernel(std::string_view name, double batch, double m, double k, double n,
                         double element_bytes) {
  Kernel one = GemmKernel(name, m, k, n, element_bytes);
  return Kernel{name, batch * one.flops, batch * one.bytes};
}

Kernel MemoryKernel(std::string_view name, double bytes) { return Kernel{name, 0, bytes}; }

LayerKernels ListKernels(const Layer& layer, const ModelInput& input, DType dtype) {
  Shape sh;
  sh.b = static_cast<double>(input.micro_batch_size);
  sh.s = input.tokens() ? static_cast<double>(input.seq_len) : 1.0;
  sh.n = sh.b * sh.s;
  sh.e = static_cast<double>(DTypeBytes(dtype));
  const double width = static_cast<double>(layer.in_width);
  const double tensor = sh.n * width * sh.e;  // one [N x in_width] tensor

  LayerKernels k;
  switch (layer.op) {
    case LayerKind::kEmbedding:
      AddEmbedding(k, layer, sh);
      break;
    case LayerKind::kLinear:
      AddPiece(k, LinearPiece(sh, static_cast<double>(layer.in), static_cast<double>(layer.out),
                              layer.bias,
                              {"linear", "linear_dgrad", "linear_wgrad", "linear_bias_grad"}));
      break;
    case LayerKind::kRelu:
    case LayerKind::kGelu: {
      const bool relu = layer.op == LayerKind::kRelu;
      Add(k.forward, MemoryKernel(relu ? "relu" : "gelu", 2 * tensor));
      // Reads dy and the kept input; writes dx.
      Add(k.backward_input, MemoryKernel(relu ? "relu_dgrad" : "gelu_dgrad", 3 * tensor));
      break;
    }
    case LayerKind::kLayerNorm:
    case LayerKind::kRmsNorm: {
      const bool ln = layer.op == LayerKind::kLayerNorm;
      const PieceNames names =
          ln ? PieceNames{"layernorm", "layernorm_dgrad", "layernorm_wgrad", ""}
             : PieceNames{"rmsnorm", "rmsnorm_dgrad", "rmsnorm_wgrad", ""};
      AddPiece(k, NormPiece(sh, ln ? NormKind::kLayerNorm : NormKind::kRmsNorm,
                            static_cast<double>(layer.hidden), names));
      break;
    }
    case LayerKind::kTransformerBlock:
      AddBlock(k, layer, sh);
      break;
    case LayerKind::kCrossEntropy:
      // Reads the logits and int32 labels; writes the softmax (kept) and an fp32 loss per row.
      Add(k.forward, MemoryKernel("cross_entropy", 2 * tensor + sh.n * 4 + sh.n * 4));
      // Reads the softmax and the labels; writes the logits' gradient.
      Add(k.backward_input, MemoryKernel("cross_entropy_dgrad", 2 * tensor + sh.n * 4));
      break;
    case LayerKind::kMse:
      // Reads the prediction and the target; writes the difference (kept) and the fp32 sum.
      Add(k.forward, MemoryKernel("mse", 3 * tensor + 4));
      // Reads the difference; writes the prediction's gradient.
      Add(k.backward_input, MemoryKernel("mse_dgrad", 2 * tensor));
      break;
  }
  return k;
}

double TotalFlops(const std::vector<Kernel>& kernels) {
  double total = 0;
  for (const Kernel& k : kernels) total += k.flops;
  return total;
}

double TotalBytes(const std::vector<Kernel>& kernels) {
  double total = 0;
  for (const Kernel& k : kernels) total += k.bytes;
  return total;
}

}  // namespace pp
