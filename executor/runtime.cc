#include "executor/runtime.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/stats.h"
#include "executor/chunk_runner.h"
#include "executor/pipeline_device.h"

namespace pp {

namespace {

using Clock = std::chrono::steady_clock;

// When a run started at `start` must end: far in the future for no limit.
Clock::time_point DeadlineOf(Clock::time_point start, double limit_s) {
  constexpr double kNever = 1e9;  // about 30 years: within every clock's range
  const double s = limit_s > 0 && std::isfinite(limit_s) ? std::min(limit_s, kNever) : kNever;
  return start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

std::string TimeLimitMessage(double time_limit_s) {
  std::ostringstream out;
  out << "the run took longer than its time limit of " << time_limit_s
      << " s (--time-limit) and was stopped";
  return out.str();
}

Status CheckRun(const Schedule& schedule, const std::vector<ChunkRange>& chunks) {
  PP_RETURN_IF_ERROR(ValidateSchedule(schedule));
  if (static_cast<int>(chunks.size()) != NumChunks(schedule)) {
    return Status::Error("the plan has " + std::to_string(chunks.size()) +
                         " chunks but its schedule runs " + std::to_string(NumChunks(schedule)));
  }
  return Status::Ok();
}

Result<RunResult> RunPipeline(const Schedule& schedule, int64_t micro_batch_size,
                              const std::vector<ChunkRange>& chunks,
                              std::vector<std::unique_ptr<PipelineDevice>> devices,
                              const AbortRun& abort, const RunOptions& options) {
  const Clock::time_point deadline = DeadlineOf(Clock::now(), options.time_limit_s);
  const int p = schedule.num_devices;
  if (static_cast<int>(devices.size()) != p) {
    return Status::Error("the runtime needs one backend per device");
  }
  PP_RETURN_IF_ERROR(CheckRun(schedule, chunks));
  std::vector<std::unique_ptr<ChunkRunner>> runners;
  for (int d = 0; d < p; ++d) {
    runners.push_back(std::make_unique<ChunkRunner>(schedule, d, std::move(devices[d])));
    const Status s = runners.back()->Setup(chunks);
    if (!s.ok()) return s.Prefixed("device " + std::to_string(d));
  }
  if (Clock::now() >= deadline) return Status::Error(TimeLimitMessage(options.time_limit_s));
  const int total_steps = options.warmup_steps + options.steps;

  std::mutex error_mu;
  Status first_error;
  std::atomic<bool> failed{false};
  auto fail = [&](const Status& s) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (!failed.exchange(true)) {
      first_error = s;
      if (abort) abort();
    }
  };

  std::vector<StepTiming> steps(total_steps);
  std::vector<std::vector<double>> losses(total_steps, std::vector<double>(p, 0.0));
  std::vector<std::vector<std::vector<OpTiming>>> timings(
      total_steps, std::vector<std::vector<OpTiming>>(p));
  std::barrier sync(p);

  // One step of device d; false once the run has failed (this device's error or another's).
  auto device_step = [&](int d, int step) {
    ChunkRunner& runner = *runners[d];
    const std::string where = "device " + std::to_string(d);
    Status s = runner.BeginStep(step);
    if (!s.ok()) {
      fail(s.Prefixed(where + ", start of step " + std::to_string(step)));
      return false;
    }
    for (int i = 0; i < runner.num_ops(); ++i) {
      if (failed) return false;
      s = runner.Run(i);
      if (!s.ok()) {
        const PipelineOp& op = runner.op(i);
        const int chunk = runner.chunk_of(i);
        fail(s.Prefixed(where + ", op " + OpText(op, chunk) + " (chunk " + std::to_string(chunk) +
                        ", micro-batch " + std::to_string(op.micro_batch) + ")"));
        return false;
      }
    }
    if (failed) return false;
    s = runner.EndStep(&timings[step][d], &losses[step][d]);
    if (!s.ok()) fail(s.Prefixed(where + ", end of step"));
    return s.ok();
  };
  auto device_main = [&](int d) {
    for (int step = 0; step < total_steps; ++step) {
      sync.arrive_and_wait();  // every device starts the step together
      if (failed || !device_step(d, step)) break;
    }
    // Leaves the barrier: a device still in a step starts no later one waiting for this one,
    // and once the run has failed no device passes the remaining steps' barriers one by one.
    sync.arrive_and_drop();
  };

  // The watchdog: at the deadline it fails the run, which aborts every wait; each device
  // stops after its current op.
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(done_mu);
    if (!done_cv.wait_until(lock, deadline, [&] { return done; })) {
      fail(Status::Error(TimeLimitMessage(options.time_limit_s)));
    }
  });
  std::vector<std::thread> threads;
  for (int d = 0; d < p; ++d) threads.emplace_back(device_main, d);
  for (std::thread& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(done_mu);
    done = true;
  }
  done_cv.notify_one();
  watchdog.join();
  if (failed) return first_error;

  RunResult result;
  result.warmup_steps = options.warmup_steps;
  std::vector<double> step_ms, bubble;
  std::vector<std::vector<double>> busy(p);
  for (int step = 0; step < total_steps; ++step) {
    StepTiming& st = steps[step];
    st.busy_ms.assign(p, 0.0);
    double busy_total = 0;
    for (int d = 0; d < p; ++d) {
      for (const OpTiming& op : timings[step][d]) {
        st.ops.push_back(op);
        st.step_ms = std::max(st.step_ms, op.end_ms);
        st.busy_ms[d] += op.end_ms - op.start_ms;
      }
      busy_total += st.busy_ms[d];
      st.loss += losses[step][d];
    }
    st.loss /= schedule.num_micro_batches;
    st.bubble_ratio = st.step_ms > 0 ? 1.0 - busy_total / (p * st.step_ms) : 0.0;
    if (step >= options.warmup_steps) {
      step_ms.push_back(st.step_ms);
      bubble.push_back(st.bubble_ratio);
      for (int d = 0; d < p; ++d) busy[d].push_back(st.busy_ms[d]);
    }
  }
  result.steps = std::move(steps);
  result.step_ms = Median(step_ms);
  result.bubble_ratio = Median(bubble);
  result.throughput_samples_per_s =
      result.step_ms > 0 ? 1000.0 * schedule.num_micro_batches *
                               static_cast<double>(micro_batch_size) / result.step_ms
                         : 0.0;
  for (int d = 0; d < p; ++d) {
    result.busy_ms.push_back(Median(busy[d]));
    result.peak_memory_bytes.push_back(runners[d]->backend().allocated_bytes());
  }
  if (options.keep_gradients) {
    for (const auto& r : runners) {
      r->backend().CopyGradients(&result.gradients, &result.parameters);
    }
  }
  return result;
}

}  // namespace pp
