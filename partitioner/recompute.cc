#include "partitioner/recompute.h"

#include <limits>
#include <string>

#include "core/units.h"
#include "partitioner/split_helpers.h"

namespace pp {
namespace {

// Stage s over [first, last]: its time under `mode`, or infinity when it cannot fit.
double StageCost(RecomputeMode mode, const StageSetup& setup, const std::vector<int>& in_flight,
                 const RecomputeInput& keep, int s, int first, int last) {
  const CostModel& c = *setup.cost[s];
  const std::optional<uint64_t>& limit = setup.memory_limit[s];
  auto fits = [&](bool recompute) {
    return !limit || StagePeak(c, first, last, in_flight[s], recompute, keep) <= WideBytes{*limit};
  };
  const double plain = c.StageMs(first, last);
  const double again = plain + RecomputeForwardMs(c, first, last, keep);
  switch (mode) {
    case RecomputeMode::kNone:
      return fits(false) ? plain : std::numeric_limits<double>::infinity();
    case RecomputeMode::kAll:
      return fits(true) ? again : std::numeric_limits<double>::infinity();
    case RecomputeMode::kAuto:
      return fits(false) ? plain : fits(true) ? again : std::numeric_limits<double>::infinity();
  }
  return std::numeric_limits<double>::infinity();
}

// Whether some split into stages 0..p-1 has every stage's peak (under `mode`) within its
// limit (`common_limit` for every stage when given, else the setup's own).
bool SomeSplitFits(RecomputeMode mode, const StageSetup& setup, const std::vector<int>& in_flight,
                   const RecomputeInput& keep, std::optional<WideBytes> common_limit) {
  const int n = setup.cost[0]->num_layers();
  const int p = static_cast<int>(in_flight.size());
  const auto fits = [&](int s, int first, int last) {
    std::optional<WideBytes> limit = common_limit;
    if (!limit && setup.memory_limit[s]) limit = WideBytes{*setup.memory_limit[s]};
    if (!limit) return true;
    const auto peak = [&](bool again) {
      return StagePeak(*setup.cost[s], first, last, in_flight[s], again, keep);
    };
    switch (mode) {
      case RecomputeMode::kNone: return peak(false) <= *limit;
      case RecomputeMode::kAll: return peak(true) <= *limit;
      case RecomputeMode::kAuto: return peak(false) <= *limit || peak(true) <= *limit;
    }
    return false;
  };
  // A stage's peak grows with its last layer; with recomputation not with its first.
  return CanFinishTable(p, n, fits, /*monotone_start=*/false)[0][0] != 0;
}

}  // namespace

bool RecomputeSplitExists(RecomputeMode mode, const StageSetup& setup,
                          const std::vector<int>& in_flight, const RecomputeInput& keep) {
  return SomeSplitFits(mode, setup, in_flight, keep, std::nullopt);
}

WideBytes RecomputeLeastLimit(RecomputeMode mode, const CostModel& cost,
                              const std::vector<int>& in_flight, const RecomputeInput& keep) {
  const StageSetup setup =
      StageSetup::Uniform(cost, static_cast<int>(in_flight.size()), std::nullopt);
  WideBytes lo = 0, hi = 1;
  while (!SomeSplitFits(mode, setup, in_flight, keep, hi)) hi *= 2;
  while (lo < hi) {  // the least limit that fits lies in (lo, hi]
    const WideBytes mid = lo + (hi - lo) / 2;
    if (SomeSplitFits(mode, setup, in_flight, keep, mid)) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return hi;
}

std::string RecomputeInfeasibleMessage(RecomputeMode mode, const StageSetup& setup,
                                       const std::vector<int>& in_flight,
                                       const RecomputeInput& keep) {
  const int n = setup.cost[0]->num_layers();
  const int p = static_cast<int>(in_flight.size());
  std::string message = "no split of the " + std::to_string(n) + " layers into " +
                        std::to_string(p) + " stages fits the memory limit, even with " +
                        "--recompute " + (mode == RecomputeMode::kAll ? "all" : "auto");
  if (setup.SameDevices()) {
    const WideBytes least = RecomputeLeastLimit(mode, *setup.cost[0], in_flight, keep);
    const uint64_t shown = least > WideBytes{~uint64_t{0}} ? ~uint64_t{0}
                                                          : static_cast<uint64_t>(least);
    message += "; the smallest limit that fits is " + FormatBytes(shown) + " (" +
               std::to_string(shown) + " bytes)";
  }
  return message;
}

std::optional<RecomputeMode> ParseRecomputeMode(std::string_view name) {
  if (name == "none") return RecomputeMode::kNone;
  if (name == "all") return RecomputeMode::kAll;
  if (name == "auto") return RecomputeMode::kAuto;
  return std::nullopt;
}

Result<uint64_t> ModelInputBytes(const std::optional<Model>& model, const Profile& profile) {
  if (!model) {
    return Status::Error("--recompute needs the model's input size; plan from a model file");
  }
  const int64_t mbs = profile.micro_batch_size;
  if (model->input.tokens()) return static_cast<uint64_t>(4 * mbs * model->input.seq_len);
  return static_cast<uint64_t>(mbs * model->input.features * DTypeBytes(profile.dtype));
}

double RecomputeForwardMs(const CostModel& cost, int first, int last, const RecomputeInput& keep) {
  switch (keep.unit) {
    case RecomputeUnit::kBlock:
      return cost.BlocksOf(first, last, keep.blocks).forward_ms;
    case RecomputeUnit::kSelective:
      return cost.SelectiveMs(first, last);
    case RecomputeUnit::kStage:
    case RecomputeUnit::kLayer:
      break;
  }
  return cost.ForwardMs(first, last);
}

std::optional<RecomputeModule> MissingModule(const Profile& profile, RecomputeModules modules) {
  for (RecomputeModule m : modules.List()) {
    bool found = false;
    for (const LayerProfile& l : profile.layers) found |= l.module(m) && l.module(m)->bytes > 0;
    if (!found) return m;
  }
  return std::nullopt;
}

WideBytes StagePeak(const CostModel& cost, int first, int last, int in_flight, bool recompute,
                    const RecomputeInput& keep) {
  return ChunkMemoryOf(cost, first, last, recompute, keep).Peak(in_flight);
}

ChunkMemory ChunkMemoryOf(const CostModel& cost, int first, int last, bool recompute,
                          const RecomputeInput& keep) {
  ChunkMemory m;
  m.state = cost.StateMemory(first, last);
  if (recompute && keep.unit == RecomputeUnit::kSelective) {
    m.per_micro_batch = cost.ActivationBytes(first, last) - cost.SelectiveBytes(first, last);
    m.transient = cost.MaxSelectiveBytes(first, last);
  } else if (recompute && keep.unit == RecomputeUnit::kBlock) {
    const FirstBlocks blocks = cost.BlocksOf(first, last, keep.blocks);
    m.per_micro_batch = cost.ActivationBytes(first, last) - blocks.activations + blocks.inputs +
                        WideBytes{blocks.at_layer_zero ? keep.model_input : 0};
    m.transient = blocks.most_activation;
  } else if (recompute && keep.unit == RecomputeUnit::kLayer) {
    m.per_micro_batch =
        cost.LayerInputBytes(first, last) + WideBytes{first == 0 ? keep.model_input : 0};
    m.transient = cost.MaxLayerActivationBytes(first, last);
  } else if (recompute) {
    m.per_micro_batch = WideBytes{first == 0 ? keep.model_input : cost.SendBytes(first - 1)};
    m.transient = cost.ActivationBytes(first, last);
  } else {
    m.per_micro_batch = cost.ActivationBytes(first, last);
  }
  m.transient += cost.GatherBufferBytes(first, last);  // beside a rebuilt layer's, if any
  return m;
}

std::vector<char> RecomputeStages(RecomputeMode mode, const StageSetup& setup,
                                  const std::vector<int>& in_flight,
                                  const std::vector<int>& boundaries, const RecomputeInput& keep) {
  const int p = static_cast<int>(boundaries.size()) + 1;
  std::vector<char> out(p, mode == RecomputeMode::kAll);
  if (mode != RecomputeMode::kAuto) return out;
  const int n = setup.cost[0]->num_layers();
  for (int s = 0; s < p; ++s) {
    const int first = s == 0 ? 0 : boundaries[s - 1];
    const int last = s + 1 == p ? n - 1 : boundaries[s] - 1;
    const std::optional<uint64_t>& limit = setup.memory_limit[s];
    out[s] = limit &&
             StagePeak(*setup.cost[s], first, last, in_flight[s], false, keep) > WideBytes{*limit};
  }
  return out;
}

Result<std::vector<int>> RecomputeBottleneckSplit(RecomputeMode mode, const StageSetup& setup,
                                                  const std::vector<int>& in_flight,
                                                  const RecomputeInput& keep) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const int n = setup.cost[0]->num_layers();
  const int p = static_cast<int>(in_flight.size());
  if (static_cast<double>(p) * n * n > kMaxRecomputeWork) {
    return Status::Error("--recompute with " + std::to_string(n) + " layers and " +
                         std::to_string(p) + " stages is not available yet (too large)");
  }
  // best[s][j]: least max stage time over splits of layers [0, j] into stages 0..s.
  std::vector<std::vector<double>> best(p, std::vector<double>(n, kInf));
  std::vector<std::vector<int>> from(p, std::vector<int>(n, -1));
  for (int j = 0; j < n; ++j) best[0][j] = StageCost(mode, setup, in_flight, keep, 0, 0, j);
  for (int s = 1; s < p; ++s) {
    for (int j = s; j < n; ++j) {
      for (int i = s; i <= j; ++i) {  // stage s is [i, j]
        if (best[s - 1][i - 1] == kInf) continue;
        const double v =
            std::max(best[s - 1][i - 1], StageCost(mode, setup, in_flight, keep, s, i, j));
        if (v < best[s][j]) {
          best[s][j] = v;
          from[s][j] = i;
        }
      }
    }
  }
  if (best[p - 1][n - 1] == kInf) {
    return Status::Error(RecomputeInfeasibleMessage(mode, setup, in_flight, keep));
  }
  std::vector<int> boundaries(p - 1);
  int end = n - 1;
  for (int s = p - 1; s >= 1; --s) {
    boundaries[s - 1] = from[s][end];
    end = from[s][end] - 1;
  }
  return boundaries;
}

}  // namespace pp
