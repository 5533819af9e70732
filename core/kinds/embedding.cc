// embedding: {"vocab", "hidden", "positions" (0: none), "token_types" (0: none)}. Reads token
// ids; y[r] = token[id[r]] + position[r mod seq_len] + token_type[0]. Output width: hidden.
// Under tensor parallelism the token table is vocabulary-parallel (Megatron's
// VocabParallelEmbedding): each rank holds ceil(vocab / tp) rows, looks up the tokens that
// fall in its rows (rows / tp of them, on average) and the partial outputs are summed over the
// tensor ranks (a reduce-scatter onto the sequence-parallel shares, or an all-reduce); the
// position and token-type tables are whole on every rank.
#include <algorithm>

#include "core/kind_entry.h"
#include "core/kinds/pieces.h"

namespace pp {
namespace {

class Embedding final : public LayerKindEntry {
 public:
  std::string_view name() const override { return "embedding"; }
  bool reads_token_ids() const override { return true; }

  void Read(FieldReader& r, Layer* spec) const override {
    spec->vocab = r.Int("vocab", 1, kMaxDim);
    spec->hidden = r.Int("hidden", 1, kMaxDim);
    spec->positions = r.OptInt("positions", 0, kMaxDim).value_or(0);
    spec->token_types = r.OptInt("token_types", 0, kMaxDim).value_or(0);
  }

  void Write(const Layer& s, Json* out) const override {
    Json& l = *out;
    l["vocab"] = s.vocab;
    l["hidden"] = s.hidden;
    if (s.positions > 0) l["positions"] = s.positions;
    if (s.token_types > 0) l["token_types"] = s.token_types;
  }

  Result<int64_t> OutWidth(const Layer& l, const WidthContext& c) const override {
    if (l.positions > 0 && l.positions < c.input().seq_len) {
      return c.Fail("positions", std::to_string(l.positions) +
                                     " positions are fewer than input.seq_len " +
                                     std::to_string(c.input().seq_len));
    }
    return l.hidden;
  }

  int64_t ParamCount(const Layer& l) const override { return RankParamCount(l, ShardDegrees{}); }
  int64_t RankParamCount(const Layer& l, const ShardDegrees& par) const override {
    return (Share(l.vocab, par.tp) + l.positions + l.token_types) * l.hidden;
  }
  int64_t IdRange(const Layer& l) const override { return l.vocab; }

  double ActivationBytes(const Layer& l, const KernelShape& sh) const override {
    // int32 token (and token type) ids of the rank's rows.
    return RankSplitOf(sh).rows * 4 * (l.token_types > 0 ? 2 : 1);
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    const RankSplit r = RankSplitOf(sh);
    const double n = r.rows;
    const double tp = static_cast<double>(r.tp);
    const double h = static_cast<double>(l.hidden);
    const double row = h * sh.e;
    const bool types = l.token_types > 0;
    const double tables = 1 + (l.positions > 0 ? 1 : 0) + (types ? 1 : 0);
    const double id_streams = types ? 2 : 1;  // position ids come from the index, not memory
    // Reads the ids and one row of every table per token (of the token table, only the rows
    // this rank holds), writes the summed row.
    k->forward.push_back(MemoryKernel(
        "embedding_gather",
        n * 4 * id_streams + (tables - 1 + 1 / tp) * n * row + n * row));
    // No input gradient (the input is token ids). The backward is a scatter-add per table:
    // reads the output gradient (and the ids), then reads and writes each gradient row it
    // touches (at most one per token, at most the whole table).
    auto scatter = [&](std::string_view kernel, double tokens, double table_rows,
                       bool reads_ids) {
      const double touched = std::min(tokens, table_rows);
      k->backward_weight.push_back(MemoryKernel(
          kernel, n * row + (reads_ids ? n * 4 : 0) + 2 * touched * row));
    };
    scatter("embedding_scatter_add", n / tp, static_cast<double>(Share(l.vocab, r.tp)), true);
    if (l.positions > 0) scatter("position_scatter_add", n, r.seq, false);
    if (types) scatter("token_type_scatter_add", n, static_cast<double>(l.token_types), true);
    if (r.tp == 1) return;
    const double out = n * row;  // the summed [rows x h] output
    if (r.sp) {
      k->forward_comm.push_back({"embedding_reducescatter", CollectiveKind::kReduceScatter,
                                 CommGroup::kTensor, out, ""});
      // The tables' gradients need the whole output gradient.
      k->backward_weight_comm.push_back({"embedding_dgrad_allgather", CollectiveKind::kAllGather,
                                         CommGroup::kTensor, out, ""});
    } else {
      k->forward_comm.push_back(
          {"embedding_allreduce", CollectiveKind::kAllReduce, CommGroup::kTensor, out, ""});
    }
  }
};

}  // namespace

const LayerKindEntry& EmbeddingKind() {
  static const Embedding* const kEntry = new Embedding();
  return *kEntry;
}

}  // namespace pp
