#include "executor/rank_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "core/stats.h"
#include "executor/chunk_runner.h"

namespace pp {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// The rank's record that reaches rank 0, as doubles:
//   stage, replica, allocated bytes, steps, host name length, its characters,
//   per step: loss sum, all-reduce ms, op count, then per op kind, micro-batch, chunk,
//             start ms, end ms,
//   layer count, then per layer: index, n, n gradients, n parameters (keep_gradients, and
//   replica 0 only; 0 layers otherwise).
constexpr int kOpFields = 5;

struct RankRecord {
  int stage = 0, replica = 0;
  double allocated = 0;
  std::string host;
  std::vector<double> loss, allreduce_ms;
  std::vector<std::vector<OpTiming>> ops;  // per step
  std::vector<int> layers;
  std::vector<std::vector<float>> gradients, parameters;
};

std::vector<double> Encode(const RankRecord& r) {
  std::vector<double> out = {double(r.stage), double(r.replica), r.allocated,
                             double(r.ops.size()), double(r.host.size())};
  for (char c : r.host) out.push_back(static_cast<unsigned char>(c));
  for (size_t s = 0; s < r.ops.size(); ++s) {
    out.push_back(r.loss[s]);
    out.push_back(r.allreduce_ms[s]);
    out.push_back(double(r.ops[s].size()));
    for (const OpTiming& t : r.ops[s]) {
      out.insert(out.end(), {double(static_cast<int>(t.op.kind)), double(t.op.micro_batch),
                             double(t.op.chunk), t.start_ms, t.end_ms});
    }
  }
  out.push_back(double(r.layers.size()));
  for (size_t l = 0; l < r.layers.size(); ++l) {
    out.push_back(r.layers[l]);
    out.push_back(double(r.gradients[l].size()));
    out.insert(out.end(), r.gradients[l].begin(), r.gradients[l].end());
    out.insert(out.end(), r.parameters[l].begin(), r.parameters[l].end());
  }
  return out;
}

Result<RankRecord> Decode(const std::vector<double>& in, int rank) {
  RankRecord r;
  size_t at = 0;
  const Status bad = Status::Error("rank " + std::to_string(rank) + " sent a malformed record");
  auto take = [&](double* v) {
    if (at >= in.size()) return false;
    *v = in[at++];
    return true;
  };
  double stage, replica, steps, host;
  if (!take(&stage) || !take(&replica) || !take(&r.allocated) || !take(&steps) ||
      !take(&host) || at + static_cast<size_t>(host) > in.size()) {
    return bad;
  }
  for (int i = 0; i < static_cast<int>(host); ++i) r.host.push_back(static_cast<char>(in[at++]));
  r.stage = static_cast<int>(stage);
  r.replica = static_cast<int>(replica);
  for (int s = 0; s < static_cast<int>(steps); ++s) {
    double loss, ar, n;
    if (!take(&loss) || !take(&ar) || !take(&n)) return bad;
    r.loss.push_back(loss);
    r.allreduce_ms.push_back(ar);
    std::vector<OpTiming> ops;
    if (at + kOpFields * static_cast<size_t>(n) > in.size()) return bad;
    for (int i = 0; i < static_cast<int>(n); ++i) {
      OpTiming t;
      t.device = r.stage;
      t.rank = rank;
      t.replica = r.replica;
      t.op.kind = static_cast<OpKind>(static_cast<int>(in[at]));
      t.op.micro_batch = static_cast<int>(in[at + 1]);
      t.op.chunk = static_cast<int>(in[at + 2]);
      t.start_ms = in[at + 3];
      t.end_ms = in[at + 4];
      at += kOpFields;
      ops.push_back(t);
    }
    r.ops.push_back(std::move(ops));
  }
  double layers;
  if (!take(&layers)) return bad;
  for (int l = 0; l < static_cast<int>(layers); ++l) {
    double index, n;
    if (!take(&index) || !take(&n) || at + 2 * static_cast<size_t>(n) > in.size()) return bad;
    r.layers.push_back(static_cast<int>(index));
    const auto count = static_cast<ptrdiff_t>(n);
    r.gradients.emplace_back(in.begin() + at, in.begin() + at + count);
    r.parameters.emplace_back(in.begin() + at + count, in.begin() + at + 2 * count);
    at += 2 * count;
  }
  return r;
}

// Rank 0: the whole run from every rank's record.
Result<RunResult> Assemble(const std::vector<std::vector<double>>& all, const Schedule& schedule,
                           int64_t micro_batch_size, const RankLayout& layout,
                           const RunOptions& options) {
  const int p = layout.stages, r = layout.replicas, n = layout.ranks();
  const int total_steps = options.warmup_steps + options.steps;
  std::vector<RankRecord> records;
  for (int k = 0; k < n; ++k) {
    Result<RankRecord> rec = Decode(all[k], k);
    if (!rec.ok()) return rec.status();
    if (static_cast<int>(rec->ops.size()) != total_steps) {
      return Status::Error("rank " + std::to_string(k) + " ran " +
                           std::to_string(rec->ops.size()) + " steps, not " +
                           std::to_string(total_steps));
    }
    records.push_back(std::move(*rec));
  }
  RunResult result;
  result.warmup_steps = options.warmup_steps;
  result.replicas = r;
  for (int k = 0; k < n; ++k) {
    result.rank_names.push_back(RankName(layout, k, records[k].host));
    if (std::find(result.hosts.begin(), result.hosts.end(), records[k].host) ==
        result.hosts.end()) {
      result.hosts.push_back(records[k].host);
    }
  }
  result.steps.resize(total_steps);
  std::vector<double> step_ms, bubble, allreduce;
  std::vector<std::vector<double>> busy(p);
  for (int s = 0; s < total_steps; ++s) {
    StepTiming& st = result.steps[s];
    st.busy_ms.assign(p, 0.0);
    double busy_total = 0;
    for (const RankRecord& rec : records) {
      for (const OpTiming& op : rec.ops[s]) {
        st.ops.push_back(op);
        st.step_ms = std::max(st.step_ms, op.end_ms);
        st.busy_ms[rec.stage] += (op.end_ms - op.start_ms) / r;
        busy_total += op.end_ms - op.start_ms;
      }
      st.loss += rec.loss[s];
      st.allreduce_ms = std::max(st.allreduce_ms, rec.allreduce_ms[s]);
    }
    st.loss /= double(schedule.num_micro_batches) * r;
    st.bubble_ratio = st.step_ms > 0 ? 1.0 - busy_total / (n * st.step_ms) : 0.0;
    if (s >= options.warmup_steps) {
      step_ms.push_back(st.step_ms);
      bubble.push_back(st.bubble_ratio);
      allreduce.push_back(st.allreduce_ms);
      for (int d = 0; d < p; ++d) busy[d].push_back(st.busy_ms[d]);
    }
  }
  result.step_ms = Median(step_ms);
  result.bubble_ratio = Median(bubble);
  result.allreduce_ms = Median(allreduce);
  // Every replica trains micro-batches of its own: the global batch is r times one pipeline's.
  result.throughput_samples_per_s =
      result.step_ms > 0 ? 1000.0 * schedule.num_micro_batches * r *
                               static_cast<double>(micro_batch_size) / result.step_ms
                         : 0.0;
  result.peak_memory_bytes.assign(p, 0);
  for (int d = 0; d < p; ++d) result.busy_ms.push_back(Median(busy[d]));
  for (const RankRecord& rec : records) {
    const auto bytes = static_cast<uint64_t>(rec.allocated);
    result.peak_memory_bytes[rec.stage] = std::max(result.peak_memory_bytes[rec.stage], bytes);
    for (size_t l = 0; l < rec.layers.size(); ++l) {
      const size_t index = static_cast<size_t>(rec.layers[l]);
      if (result.gradients.size() <= index) {
        result.gradients.resize(index + 1);
        result.parameters.resize(index + 1);
      }
      result.gradients[index] = rec.gradients[l];
      result.parameters[index] = rec.parameters[l];
    }
  }
  return result;
}

// "<who>, op <op> (chunk c, micro-batch k)": where a rank stands, for its error lines.
std::string AtOp(const std::string& who, const PipelineOp& op, int chunk) {
  return who + ", op " + OpText(op, chunk) + " (chunk " + std::to_string(chunk) +
         ", micro-batch " + std::to_string(op.micro_batch) + ")";
}

}  // namespace

Status ReplicaAverager::operator()(float* gradients, size_t count) {
  if (!arrived_) {
    PP_RETURN_IF_ERROR(group_->ReplicaBarrier(timeout_s_));
    arrived_ = true;
  }
  const Clock::time_point start = Clock::now();
  PP_RETURN_IF_ERROR(group_->SumOverReplicas(gradients, count, timeout_s_));
  const float scale = 1.0f / static_cast<float>(replicas_);
  for (size_t i = 0; i < count; ++i) gradients[i] *= scale;
  ms_ += MsSince(start);
  return Status::Ok();
}

double ReplicaAverager::TakeMs() {
  const double ms = ms_;
  ms_ = 0;
  arrived_ = false;
  return ms;
}

std::string RankName(const RankLayout& layout, int rank, const std::string& host) {
  std::string name = "rank " + std::to_string(rank) + " (stage " +
                     std::to_string(layout.StageOf(rank));
  if (layout.replicas > 1) name += ", replica " + std::to_string(layout.ReplicaOf(rank));
  if (!host.empty()) name += ", host " + host;
  return name + ")";
}

void RankWhere::Build(const Schedule& schedule, const RankLayout& layout, int rank,
                      const std::string& host) {
  const int stage = layout.StageOf(rank), replica = layout.ReplicaOf(rank);
  const std::string who = "pp-partition: " + RankName(layout, rank, host) + ", device " +
                          std::to_string(stage);
  const std::string why = ": ended by the launcher (another rank of the job failed, died or was "
                          "killed)\n";
  lines_.clear();
  for (const PipelineOp& op : schedule.device_ops[stage]) {
    const int chunk = OpChunk(schedule, stage, op);
    std::string line = AtOp(who, op, chunk);
    // The rank it waits on for the op's input, if any.
    int from = -1;
    if (op.kind == OpKind::kForward && chunk > 0) from = ChunkDevice(schedule, chunk - 1);
    if ((op.kind == OpKind::kBackward || op.kind == OpKind::kBackwardInput) &&
        chunk + 1 < NumChunks(schedule)) {
      from = ChunkDevice(schedule, chunk + 1);
    }
    if (from >= 0 && from != stage) {
      line += ", its input from rank " + std::to_string(layout.RankOf(from, replica)) +
              " (device " + std::to_string(from) + ")";
    }
    lines_.push_back(line + why);
  }
  lines_.push_back(who + ", outside an op" + why);
}

const std::string& RankWhere::Line() const {
  const int op = op_.load(std::memory_order_relaxed);
  return op >= 0 && op + 1 < static_cast<int>(lines_.size()) ? lines_[op] : lines_.back();
}

Result<RunResult> RunRank(const Schedule& schedule, int64_t micro_batch_size,
                          const std::vector<ChunkRange>& chunks,
                          std::unique_ptr<PipelineDevice> device, RankGroup& group,
                          const RankRunRequest& request, const RunOptions& options) {
  const RankLayout& layout = request.layout;
  const int rank = request.rank, stage = layout.StageOf(rank);
  const std::string who = RankName(layout, rank, request.host) + ", device " +
                          std::to_string(stage);
  if (schedule.num_devices != layout.stages) {
    return Status::Error("the schedule has " + std::to_string(schedule.num_devices) +
                         " devices for " + std::to_string(layout.stages) + " stages");
  }
  PP_RETURN_IF_ERROR(CheckRun(schedule, chunks));
  const Clock::time_point started = Clock::now();
  auto past_limit = [&] {
    return options.time_limit_s > 0 && MsSince(started) > 1000.0 * options.time_limit_s;
  };
  ChunkRunner runner(schedule, stage, std::move(device));
  if (Status s = runner.Setup(chunks); !s.ok()) return s.Prefixed(who + ", setup");
  RankRecord record;
  record.stage = stage;
  record.replica = layout.ReplicaOf(rank);
  record.host = request.host;
  const int total_steps = options.warmup_steps + options.steps;
  const auto at_op = [&](int i) { return AtOp(who, runner.op(i), runner.chunk_of(i)); };
  for (int step = 0; step < total_steps; ++step) {
    if (past_limit()) return Status::Error(who + ": " + TimeLimitMessage(options.time_limit_s));
    // Every rank starts the step together; its clock starts as it leaves the barrier. A rank
    // that waits there in vain names the op it was about to run.
    if (Status s = group.Barrier(options.timeout_s); !s.ok()) {
      return s.Prefixed(runner.num_ops() > 0
                            ? at_op(0) + " at the start of step " + std::to_string(step)
                            : who + ", start of step " + std::to_string(step));
    }
    if (Status s = runner.BeginStep(step); !s.ok()) {
      return s.Prefixed(who + ", start of step " + std::to_string(step));
    }
    for (int i = 0; i < runner.num_ops(); ++i) {
      if (past_limit()) return Status::Error(who + ": " + TimeLimitMessage(options.time_limit_s));
      if (request.where != nullptr) request.where->Set(i);
      const Status s = runner.Run(i);
      if (!s.ok()) return s.Prefixed(at_op(i));
    }
    if (request.where != nullptr) request.where->Set(-1);
    std::vector<OpTiming> timings;
    double loss_sum = 0;
    if (Status s = runner.EndStep(&timings, &loss_sum); !s.ok()) {
      return s.Prefixed(who + ", end of step " + std::to_string(step));
    }
    record.ops.push_back(std::move(timings));
    record.loss.push_back(loss_sum);
    record.allreduce_ms.push_back(request.take_allreduce_ms ? request.take_allreduce_ms() : 0);
  }
  record.allocated = static_cast<double>(runner.backend().allocated_bytes());
  if (options.keep_gradients && record.replica == 0) {
    std::vector<std::vector<float>> gradients, parameters;
    runner.backend().CopyGradients(&gradients, &parameters);
    for (int c = 0; c < static_cast<int>(chunks.size()); ++c) {
      if (ChunkDevice(schedule, c) != stage) continue;
      for (int l = chunks[c].first_layer; l <= chunks[c].last_layer; ++l) {
        record.layers.push_back(l);
        record.gradients.push_back(gradients[l]);
        record.parameters.push_back(parameters[l]);
      }
    }
  }
  std::vector<std::vector<double>> all;
  if (Status s = group.Gather(Encode(record), &all, options.timeout_s); !s.ok()) {
    return s.Prefixed(who + ", gathering the timings on rank 0");
  }
  if (rank != 0) {
    RunResult none;
    none.root = false;
    return none;
  }
  return Assemble(all, schedule, micro_batch_size, layout, options);
}

}  // namespace pp
