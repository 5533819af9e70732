#include "partitioner/step_chains.h"

namespace pp {
namespace {

double Diff(const std::vector<double>& prefix, int first, int last) {
  return first > last ? 0.0 : prefix[last + 1] - prefix[first];
}

}  // namespace

double ForwardsLeftAtFirstBackward(const std::vector<PipelineOp>& ops, int micro_batches) {
  int forwards = 0;
  while (forwards < static_cast<int>(ops.size()) && ops[forwards].kind == OpKind::kForward) {
    ++forwards;
  }
  return static_cast<double>(micro_batches - forwards);
}

double LastForwardBackwards(const std::vector<PipelineOp>& ops) {
  int last_forward = -1;
  for (int x = 0; x < static_cast<int>(ops.size()); ++x) {
    if (ops[x].kind == OpKind::kForward) last_forward = x;
  }
  if (last_forward < 0) return 0;
  const int i = ops[last_forward].micro_batch;
  int count = 0, own = -1;
  for (int x = 0; x < static_cast<int>(ops.size()); ++x) {
    if (ops[x].kind != OpKind::kBackward) continue;
    if (ops[x].micro_batch == i && own < 0) own = x;
    if (x < last_forward || (own >= 0 && x >= own)) ++count;
  }
  if (own < last_forward) return 0;
  return std::max(0, count - 1);
}

std::pair<double, double> FirstBackwardToLastForward(const std::vector<PipelineOp>& ops) {
  int first_backward = -1, last_forward = -1;
  for (int x = 0; x < static_cast<int>(ops.size()); ++x) {
    if (ops[x].kind == OpKind::kForward) last_forward = x;
    if (ops[x].kind == OpKind::kBackward && first_backward < 0) first_backward = x;
  }
  if (first_backward < 0 || last_forward < first_backward) return {0.0, 0.0};
  double nf = 0, nb = 0;
  for (int x = first_backward; x <= last_forward; ++x) {
    (ops[x].kind == OpKind::kForward ? nf : nb) += 1;
  }
  return {nf, nb};
}

double FirstBackwardToLastForwardMs(const CostModel& cost, double nf, double nb, int i, int e) {
  const double own = nf * cost.ForwardMs(i, e) + nb * cost.BackwardMs(i, e);
  if (nf < 1 || nb < 1) return own;
  const int n = cost.num_layers();
  return own + (e + 1 < n ? cost.StageMs(e + 1, n - 1) : 0.0);
}

DeviceLists::DeviceLists(const Schedule& schedule) {
  const int chunks = NumChunks(schedule), devices = schedule.num_devices;
  for (int c = 0; c < chunks; ++c) chunk_device.push_back(ChunkDevice(schedule, c));
  for (int d = 0; d < devices; ++d) {
    const std::vector<PipelineOp>& ops = schedule.device_ops[d];
    first_op_chunk.push_back(ops.empty() ? -1 : OpChunk(schedule, d, ops.front()));
    last_op_chunk.push_back(ops.empty() ? -1 : OpChunk(schedule, d, ops.back()));
    first_op_forward.push_back(!ops.empty() && ops.front().kind == OpKind::kForward);
    last_op_gradient.push_back(!ops.empty() && (ops.back().kind == OpKind::kBackward ||
                                                ops.back().kind == OpKind::kBackwardInput));
  }
  later_has.assign(chunks, std::vector<char>(devices, 0));
  later_devices.assign(chunks, {});
  for (int k = chunks - 2; k >= 0; --k) {
    later_has[k] = later_has[k + 1];
    later_has[k][chunk_device[k + 1]] = 1;
    for (int d = 0; d < devices; ++d) {
      if (later_has[k][d]) later_devices[k].push_back(d);
    }
  }
}

ChainShapes::ChainShapes(const CostModel& cost, const Schedule& schedule,
                         const std::vector<double>& input_lower,
                         const std::vector<double>& weight_lower)
    : cost_(cost), n_(cost.num_layers()) {
  for (const auto& ops : schedule.device_ops) {
    for (const PipelineOp& op : ops) {
      splits_ |= op.kind != OpKind::kForward && op.kind != OpKind::kBackward;
    }
  }
  // Prefix sums of the per-layer I and W lower bounds (halves of B without them, as the
  // simulator splits).
  input_.assign(n_ + 1, 0.0);
  weight_.assign(n_ + 1, 0.0);
  const bool given = static_cast<int>(input_lower.size()) == n_ &&
                     static_cast<int>(weight_lower.size()) == n_;
  for (int l = 0; l < n_; ++l) {
    const double half = cost_.BackwardMs(l, l) / 2;
    input_[l + 1] = input_[l] + (given ? input_lower[l] : half);
    weight_[l + 1] = weight_[l] + (given ? weight_lower[l] : half);
  }
  all_f_ = n_ > 0 ? cost_.ForwardMs(0, n_ - 1) : 0.0;

  const auto kind_class = [](OpKind k) {
    return k == OpKind::kForward ? 0 : k == OpKind::kBackwardWeight ? 2 : 1;
  };
  const int chunks = NumChunks(schedule);
  shapes_.assign(chunks, {});
  for (int c = 0; c < chunks; ++c) {
    std::vector<OpKind> kinds;  // chunk c's ops in its device's order
    const int d = ChunkDevice(schedule, c);
    for (const PipelineOp& op : schedule.device_ops[d]) {
      if (OpChunk(schedule, d, op) == c) kinds.push_back(op.kind);
    }
    bool whole = false;
    for (OpKind k : kinds) whole |= k == OpKind::kBackward;
    int first[3] = {-1, -1, -1}, last[3] = {-1, -1, -1};
    for (int x = 0; x < static_cast<int>(kinds.size()); ++x) {
      const int k = kind_class(kinds[x]);
      if (first[k] < 0) first[k] = x;
      last[k] = x;
    }
    for (int h = 0; h < 3; ++h) {
      for (int t = 0; t < 3; ++t) {
        const int a = first[h], z = last[t];
        if (a < 0 || z < a) continue;
        Shape y;
        if (h == 0) {
          y.hf = 1;
        } else {
          y.kf = 1;
          y.tg = 1;
          if (h == 2) y.ci += 1;  // the W's own I ran before it
        }
        for (int x = a; x <= z; ++x) {
          switch (kinds[x]) {
            case OpKind::kForward: y.cf += 1; break;
            case OpKind::kBackward: y.cb += 1; break;
            case OpKind::kBackwardInput: y.ci += 1; break;
            case OpKind::kBackwardWeight: y.cw += 1; break;
          }
        }
        if (t == 0) {  // the forward's way down and back, through this chunk's gradient too
          y.tf += 1;
          y.tg += 1;
          y.hg += 1;
          (whole ? y.cb : y.ci) += 1;
        } else if (t == 1) {
          y.hg += 1;
        }
        // A coefficient outside the chunk above its own would let the value fall as the chunk
        // grows; lowering it keeps a valid (smaller) chain and makes it monotone. A layer's G
        // is at most its B, and with splits at most its I.
        const double own_g = splits_ ? y.cb + y.ci : y.cb;
        y.hf = std::min(y.hf, y.cf);
        y.tf = std::min(y.tf, y.cf);
        y.hg = std::min(y.hg, own_g);
        y.tg = std::min(y.tg, own_g);
        shapes_[c].push_back(y);
      }
    }
  }
  for (int c = 0; c < chunks; ++c) {
    int same = c;
    for (int x = 0; x < c && same == c; ++x) {
      if (shape_class_[x] == x && shapes_[x] == shapes_[c]) same = x;
    }
    shape_class_.push_back(same);
  }
}

double ChainShapes::GradMs(int first, int last) const {
  if (first > last) return 0.0;
  return splits_ ? Diff(input_, first, last) : cost_.BackwardMs(first, last);
}

double ChainShapes::ShapeValue(const Shape& x, int i, int e) const {
  const double before_f = i == 0 ? 0.0 : cost_.ForwardMs(0, i - 1);
  const double after_f = e + 1 >= n_ ? 0.0 : cost_.ForwardMs(e + 1, n_ - 1);
  return x.cf * cost_.ForwardMs(i, e) + x.cb * cost_.BackwardMs(i, e) +
         x.ci * Diff(input_, i, e) + x.cw * Diff(weight_, i, e) + x.hf * before_f +
         x.hg * GradMs(0, i - 1) + x.tf * after_f + x.tg * GradMs(e + 1, n_ - 1) +
         x.kf * all_f_;
}

double ChainShapes::Value(int c, int first, int last) const {
  double best = 0;
  for (const Shape& x : shapes_[c]) best = std::max(best, ShapeValue(x, first, last));
  return best;
}

}  // namespace pp
