// What the step search's lower bounds read off a schedule's op lists (docs/cost-model.md,
// "Bounds"): every bound is the length of a chain of ops that must run one after another, and
// these are the counts and shapes of those chains. partitioner/step_bounds_*.cc combine them.
#pragma once

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "executor/schedule.h"
#include "partitioner/cost_model.h"

namespace pp {

// rows[r][j], r in [1, max_r]: the least, over splits of layers [j, n-1] into the last r
// stages p-r..p-1 (non-empty), of the largest stage cost; infinity when n - j < r.
// `cost(r, i, e)` is the cost of layers [i, e] as stage p-r; it must not decrease as the range
// grows, nor (for one range) as r falls (later stages cost at least as much). Then
// rows[r-1][x] does not increase with x on the x that can still be split, so the best end of
// the first stage is where its rising cost crosses the falling rest: a binary search.
template <typename Cost>
std::vector<std::vector<double>> MinMaxRows(int n, int max_r, Cost cost) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> rows(max_r + 1, std::vector<double>(n + 1, kInf));
  if (max_r < 1) return rows;
  for (int j = 0; j < n; ++j) rows[1][j] = cost(1, j, n - 1);
  for (int r = 2; r <= max_r; ++r) {
    const std::vector<double>& rest = rows[r - 1];
    for (int j = 0; j + r <= n; ++j) {
      int lo = j, hi = n - r;  // first stage [j, e]; the rest [e + 1, n - 1] needs r - 1 layers
      while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (cost(r, j, mid) >= rest[mid + 1]) hi = mid;
        else lo = mid + 1;
      }
      double best = std::max(cost(r, j, lo), rest[lo + 1]);
      if (lo > j) best = std::min(best, std::max(cost(r, j, lo - 1), rest[lo]));
      rows[r][j] = best;
    }
  }
  return rows;
}

// Bound 1 of a stage over layers [i, e] with `m` micro-batches, transfers left out: the
// first forward reaches it through every layer before i, then it runs its 2m ops.
inline double FirstPathMs(const CostModel& cost, int m, int i, int e) {
  return (i == 0 ? 0.0 : cost.StageMs(0, i - 1)) + m * cost.StageMs(i, e);
}

// Bound 2: m - (the forwards device list `ops` runs before its first backward).
double ForwardsLeftAtFirstBackward(const std::vector<PipelineOp>& ops, int micro_batches);

// beta_s of bound 5: with i the micro-batch of the list's last forward, the backwards before
// that forward plus those from B(i) on, less one; 0 (bound 3) when the list is not of that
// shape (B(i) before the last forward, or missing).
double LastForwardBackwards(const std::vector<PipelineOp>& ops);

// Bound 6: the forwards and backwards from the list's first backward to its last forward,
// inclusive; (0, 0) when the first backward comes after the last forward.
std::pair<double, double> FirstBackwardToLastForward(const std::vector<PipelineOp>& ops);

// Bound 6 of a stage over layers [i, e] with those counts (nf, nb), less T + 2 sum t + 2 x the
// transfers from the stage on: the layers after the stage once more, and the segment. With a
// count of zero the term for the later layers is left out, so that the value still grows
// with the range.
double FirstBackwardToLastForwardMs(const CostModel& cost, double nf, double nb, int i, int e);

// Bounds 8 and 9 (several chunks per device): where each chunk runs and what each device's
// list starts and ends with.
struct DeviceLists {
  explicit DeviceLists(const Schedule& schedule);
  std::vector<int> chunk_device;  // per chunk
  // Per device: the chunks of its first and last ops, whether the first is a forward and the
  // last a gradient op (B or I).
  std::vector<int> first_op_chunk, last_op_chunk;
  std::vector<char> first_op_forward, last_op_gradient;
  std::vector<std::vector<char>> later_has;    // [k][d]: device d runs a chunk after chunk k
  std::vector<std::vector<int>> later_devices;  // [k]: those devices
};

// Bound 7, for schedules other than gpipe and 1f1b: for every chunk, chains "reach op a; run
// the chunk's ops from a to z (the device's other ops in between are left out); go on from z
// to the end". Reaching a forward needs the forwards of the layers before; a backward or input
// gradient needs its micro-batch's forward through every layer and the gradient back from the
// layers after (a weight gradient also its own I before it); after a forward come the
// forwards of the layers after, the gradients back through them, the chunk's own and those of
// the layers before; after B or I the gradients of the layers before; nothing after W. What a
// and z add depends only on their kind (F; B or I; W), and a longer run only adds ops, so for
// each pair of kinds the longest run, from the first op of a's kind to the last of z's, is the
// one kept: at most nine shapes per chunk. Gradients of other chunks count as their I when the
// schedule splits backwards anywhere, else as whole backwards. Transfers are left out.
class ChainShapes {
 public:
  // `cost`: times at most every stage's own. `input_lower`, `weight_lower`: per layer, lower
  // bounds on its part of a chunk's I and W (SplitContext); empty: half of each backward.
  ChainShapes(const CostModel& cost, const Schedule& schedule,
              const std::vector<double>& input_lower, const std::vector<double>& weight_lower);

  // The longest chain through chunk c over layers [first, last].
  double Value(int c, int first, int last) const;
  // The first chunk whose shapes are chunk c's (c itself when no earlier chunk's are): its
  // Value is chunk c's for every range. Interleaved chunks mostly share their shapes, so a
  // least Value over many chunks needs only one per class.
  int ShapeClass(int c) const { return shape_class_[c]; }
  // A lower bound on the gradient ops' time through layers [first, last] (B, or I when the
  // schedule splits backwards); 0 for an empty range.
  double GradMs(int first, int last) const;

 private:
  // A chain through chunk c over layers [i, e] is worth
  //   cf F + cb B + ci I + cw W + hf F(before) + hg G(before) + tf F(after) + tg G(after)
  //   + kf F(all),
  // with F, B, I, W the chunk's own times and "before"/"after" the layers outside it.
  struct Shape {
    double cf = 0, cb = 0, ci = 0, cw = 0, hf = 0, hg = 0, tf = 0, tg = 0, kf = 0;
    bool operator==(const Shape&) const = default;
  };
  double ShapeValue(const Shape& x, int i, int e) const;

  const CostModel& cost_;
  int n_ = 0;
  bool splits_ = false;                // some op is an I or a W
  std::vector<double> input_, weight_;  // prefix sums of the I and W lower bounds
  double all_f_ = 0;                    // every layer's forward
  std::vector<std::vector<Shape>> shapes_;  // per chunk
  std::vector<int> shape_class_;            // per chunk: ShapeClass
};

}  // namespace pp
