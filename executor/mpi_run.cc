#include "executor/mpi_run.h"

#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include "executor/cpu_runner.h"
#include "executor/mpi_job.h"
#include "executor/mpi_transport.h"
#include "executor/plan_context.h"
#include "executor/rank_run.h"
#include "layers/cpu_math.h"

namespace pp {
namespace {

RankWhere* g_where = nullptr;

extern "C" void OnLauncherSignal(int signal_number) {
  if (g_where != nullptr) {
    const std::string& line = g_where->Line();
    ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
  }
  _exit(128 + signal_number);
}

std::string HostName() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int length = 0;
  if (MPI_Get_processor_name(name, &length) != MPI_SUCCESS) return "";
  return std::string(name, static_cast<size_t>(length));
}

}  // namespace

Result<MpiJob> JoinMpiJob(const RankLayout& layout) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    const int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SINGLE, &provided);
    if (code != MPI_SUCCESS) return Status::Error("MPI_Init failed: " + MpiErrorText(code));
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  MpiJob job;
  MPI_Comm_rank(MPI_COMM_WORLD, &job.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &job.size);
  if (job.size != layout.ranks()) {
    return LayoutRanks(layout.stages, job.size, layout.replicas).status();
  }
  job.stage = layout.StageOf(job.rank);
  job.replica = layout.ReplicaOf(job.rank);
  if (MPI_Comm_split(MPI_COMM_WORLD, job.stage, job.replica, &job.replicas) != MPI_SUCCESS) {
    return Status::Error("could not split the job into the replicas of each stage");
  }
  MPI_Comm_set_errhandler(job.replicas, MPI_ERRORS_RETURN);
  if (MPI_Comm_dup(MPI_COMM_WORLD, &job.ties) != MPI_SUCCESS) {
    return Status::Error("could not make the communicator of the tied weights");
  }
  MPI_Comm_set_errhandler(job.ties, MPI_ERRORS_RETURN);
  job.host = HostName();
  return job;
}

void CatchLauncherSignals(RankWhere* where) {
  g_where = where;
  struct sigaction action {};
  action.sa_handler = OnLauncherSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

std::string RanksText(const RunResult& run, const RankLayout& layout) {
  std::string text;
  for (const std::string& h : run.hosts) text += (text.empty() ? "" : ", ") + h;
  return std::to_string(layout.ranks()) + " MPI ranks = " + std::to_string(layout.stages) +
         " stages × " + std::to_string(layout.replicas) + " replicas on " +
         (run.hosts.size() == 1 ? "host " : "hosts ") + text;
}

Result<RunResult> RunOnMpi(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options,
                           const MpiRunRequest& request) {
  if (request.backend != "cpu" || request.transport != "mpi") {
    return Status::Error("the " + request.transport + " transport on the " + request.backend +
                         " backend is not in this pp-partition's MPI module (the nccl module "
                         "pp-partition-nccl.so runs the cuda backend where it was built)");
  }
  const RankLayout& layout = request.layout;
  Result<MpiJob> job = JoinMpiJob(layout);
  if (!job.ok()) return job.status();
  PP_RETURN_IF_ERROR(CheckRun(schedule, chunks));
  std::vector<int> rank_of_chunk;
  for (int c = 0; c < static_cast<int>(chunks.size()); ++c) {
    rank_of_chunk.push_back(layout.RankOf(ChunkDevice(schedule, c), job->replica));
  }
  MpiTransport transport(MPI_COMM_WORLD, rank_of_chunk, options.timeout_s);
  PP_RETURN_IF_ERROR(transport.CheckTags(schedule.num_micro_batches));
  MpiGroup group(MPI_COMM_WORLD, job->replicas);
  ReplicaAverager averager(&group, layout.replicas, options.timeout_s);
  CpuDeviceHooks hooks;
  hooks.micro_batch_offset = job->replica * schedule.num_micro_batches;
  RankRunRequest rank_request;
  if (layout.replicas > 1) {
    hooks.reduce_gradients = [&averager](float* g, size_t n) { return averager(g, n); };
    rank_request.take_allreduce_ms = [&averager] { return averager.TakeMs(); };
  }
  hooks.exchange_tied = [&](const TiedWeight& t, bool embedding_side, const float* mine,
                            float* theirs) {
    const int chunk = ChunkOfLayer(chunks, embedding_side ? t.linear : t.embedding);
    if (chunk < 0) return Status::Error("no chunk runs the other side of a tied weight (a bug)");
    const int peer = layout.RankOf(ChunkDevice(schedule, chunk), job->replica);
    return ExchangeWith(job->ties, peer, mine, theirs, static_cast<size_t>(t.count()),
                        options.timeout_s);
  };
  static RankWhere where;  // read by the signal handler until the process ends
  where.Build(schedule, layout, job->rank, job->host);
  CatchLauncherSignals(&where);
  rank_request.layout = layout;
  rank_request.rank = job->rank;
  rank_request.host = job->host;
  rank_request.where = &where;
  // One rank per core: each does its matrix products single-threaded.
  const int blas_threads = cpu::SetBlasThreads(1);
  Result<RunResult> result =
      RunRank(schedule, model.input.micro_batch_size, chunks,
              MakeCpuDevice(model, options, &transport, std::move(hooks)), group, rank_request,
              options);
  cpu::SetBlasThreads(blas_threads);
  if (result.ok()) {
    if (Status s = transport.Flush(options.timeout_s); !s.ok()) {
      return s.Prefixed(RankName(layout, job->rank, job->host));
    }
  }
  if (result.ok() && result->root) {
    result->device = "CPU (fp32), " + RanksText(*result, layout) +
                     ", mpi transport; clocks per rank, from a barrier at each step's start";
  }
  return result;
}

void EndRanks(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  g_where = nullptr;
  if (exit_code == 0) {
    MPI_Finalize();
  } else {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
  }
}

}  // namespace pp
