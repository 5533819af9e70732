// One rank of a distributed run (mpirun, srun): the rank runs its pipeline device's op list
// through the one ChunkRunner, with every message and collective behind two interfaces, so
// this file knows nothing of MPI or NCCL (executor/mpi_run.cc provides them):
//   - the backend's Transport or DeviceTransport carries activations and gradients;
//   - RankGroup carries the barrier at each step's start, the sum of gradients over the
//     replicas of a stage, and the gathering of every rank's timings on rank 0.
// Clocks are per rank: each rank times its ops from its own exit of the barrier that starts
// the step, so times of different ranks are comparable to within that barrier's skew.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "executor/launch.h"
#include "executor/pipeline_device.h"
#include "executor/runtime.h"
#include "executor/schedule.h"

namespace pp {

class RankGroup {
 public:
  virtual ~RankGroup() = default;
  // Returns once every rank of the job arrived, or an error after `timeout_s`.
  virtual Status Barrier(double timeout_s) = 0;
  // Sums `count` floats in place over the ranks that run this rank's stage (its replicas).
  virtual Status SumOverReplicas(float* data, size_t count, double timeout_s) = 0;
  // Returns once every replica of this rank's stage arrived.
  virtual Status ReplicaBarrier(double timeout_s) = 0;
  // Rank 0 gets every rank's `mine`, indexed by rank; the other ranks get nothing.
  virtual Status Gather(const std::vector<double>& mine, std::vector<std::vector<double>>* all,
                        double timeout_s) = 0;
};

// Averages a stage's gradients over its replicas (the sum of RankGroup, divided by r) and
// times it: the hook the backend calls for each parameter tensor before the optimizer. The
// first call of a step first waits for every replica to get there (untimed), so the time is
// the all-reduce's own, not the wait for the slowest replica's step.
class ReplicaAverager {
 public:
  ReplicaAverager(RankGroup* group, int replicas, double timeout_s)
      : group_(group), replicas_(replicas), timeout_s_(timeout_s) {}
  Status operator()(float* gradients, size_t count);
  // Milliseconds spent in it since the last call (then starts again from 0).
  double TakeMs();

 private:
  RankGroup* group_;
  int replicas_;
  double timeout_s_;
  double ms_ = 0;
  bool arrived_ = false;  // this step's replica barrier passed
};

// Where a rank is, for the line it prints when the launcher ends it because another rank
// failed: one fixed line per op of the device's list, built at setup, and the index of the
// op in progress, so that a signal handler can print it without allocating.
class RankWhere {
 public:
  // Lines for `ops` of device `stage` run by `rank`; `host` names the machine.
  void Build(const Schedule& schedule, const RankLayout& layout, int rank,
             const std::string& host);
  void Set(int op) { op_.store(op, std::memory_order_relaxed); }
  // The line of the op in progress (or of setup / between steps), ending in a newline.
  const std::string& Line() const;

 private:
  std::vector<std::string> lines_;  // per op, then one for "not inside an op"
  std::atomic<int> op_{-1};
};

// Names the rank for errors: "rank 3 (stage 1, replica 1, host h)".
std::string RankName(const RankLayout& layout, int rank, const std::string& host);

// Runs this rank's device (stage layout.StageOf(rank)) of `schedule` for warm-up + timed
// steps on `device`, whose messages go through the transport it was made with, and whose
// gradient hook averages over the replicas. Every rank's
// timings, losses and bytes reach rank 0, which returns the whole run as RunResult (steps
// with every rank's ops, busy time per stage averaged over the replicas, the all-reduce time,
// and with keep_gradients every layer's gradients and parameters); the other ranks return a
// RunResult with `root` false. An error names the rank, its device, the op and micro-batch.
struct RankRunRequest {
  RankLayout layout;
  int rank = 0;
  std::string host;
  RankWhere* where = nullptr;  // updated as ops run; may be nullptr
  // With replicas: the milliseconds the backend's gradient average took since the last call
  // (ReplicaAverager::TakeMs on the cpu backend); empty with one replica.
  std::function<double()> take_allreduce_ms;
};
Result<RunResult> RunRank(const Schedule& schedule, int64_t micro_batch_size,
                          const std::vector<ChunkRange>& chunks,
                          std::unique_ptr<PipelineDevice> device, RankGroup& group,
                          const RankRunRequest& request, const RunOptions& options);

}  // namespace pp
