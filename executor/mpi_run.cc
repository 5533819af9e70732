#include "executor/mpi_run.h"

#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include "executor/cpu_runner.h"
#include "executor/mpi_transport.h"
#include "executor/rank_run.h"
#include "layers/cpu_math.h"

namespace pp {
namespace {

// The line a rank prints when the launcher ends it (SIGTERM, SIGINT): where it was.
RankWhere* g_where = nullptr;

extern "C" void OnLauncherSignal(int signal_number) {
  if (g_where != nullptr) {
    const std::string& line = g_where->Line();
    ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
  }
  _exit(128 + signal_number);
}

void CatchLauncherSignals(RankWhere* where) {
  g_where = where;
  struct sigaction action {};
  action.sa_handler = OnLauncherSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

Status InitMpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return Status::Ok();
  int provided = 0;
  const int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SINGLE, &provided);
  if (code != MPI_SUCCESS) return Status::Error("MPI_Init failed: " + MpiErrorText(code));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return Status::Ok();
}

std::string HostName() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int length = 0;
  if (MPI_Get_processor_name(name, &length) != MPI_SUCCESS) return "";
  return std::string(name, static_cast<size_t>(length));
}

std::string HostsOf(const RunResult& run) {
  // "on host a" or "on hosts a, b": from the rank names, in rank order, each once.
  std::vector<std::string> hosts;
  for (const std::string& name : run.rank_names) {
    const size_t at = name.find("host ");
    if (at == std::string::npos) continue;
    std::string host = name.substr(at + 5);
    if (!host.empty() && host.back() == ')') host.pop_back();
    bool seen = false;
    for (const std::string& h : hosts) seen |= h == host;
    if (!seen) hosts.push_back(host);
  }
  std::string text;
  for (const std::string& h : hosts) text += (text.empty() ? "" : ", ") + h;
  return (hosts.size() == 1 ? "host " : "hosts ") + text;
}

}  // namespace

Result<RunResult> RunOnMpi(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options,
                           const MpiRunRequest& request) {
  if (request.backend != "cpu" || request.transport != "mpi") {
    return Status::Error("the " + request.transport + " transport on the " + request.backend +
                         " backend is not in this MPI module (the mpi transport runs the cpu "
                         "backend)");
  }
  PP_RETURN_IF_ERROR(InitMpi());
  const RankLayout& layout = request.layout;
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != layout.ranks()) {
    return Status::Error("this plan needs " + std::to_string(layout.stages) + " × " +
                         std::to_string(layout.replicas) + " ranks, got " + std::to_string(size));
  }
  PP_RETURN_IF_ERROR(CheckRun(schedule, chunks));
  const int stage = layout.StageOf(rank), replica = layout.ReplicaOf(rank);
  MPI_Comm replicas = MPI_COMM_NULL;
  if (MPI_Comm_split(MPI_COMM_WORLD, stage, replica, &replicas) != MPI_SUCCESS) {
    return Status::Error("could not split the job into the replicas of each stage");
  }
  MPI_Comm_set_errhandler(replicas, MPI_ERRORS_RETURN);
  std::vector<int> rank_of_chunk;
  for (int c = 0; c < static_cast<int>(chunks.size()); ++c) {
    rank_of_chunk.push_back(layout.RankOf(ChunkDevice(schedule, c), replica));
  }
  const std::string host = HostName();
  MpiTransport transport(MPI_COMM_WORLD, rank_of_chunk, options.timeout_s);
  PP_RETURN_IF_ERROR(transport.CheckTags(schedule.num_micro_batches));
  MpiGroup group(MPI_COMM_WORLD, replicas);
  ReplicaAverager averager(&group, layout.replicas, options.timeout_s);
  CpuDeviceHooks hooks;
  hooks.micro_batch_offset = replica * schedule.num_micro_batches;
  if (layout.replicas > 1) {
    hooks.reduce_gradients = [&averager](float* g, size_t n) { return averager(g, n); };
  }
  static RankWhere where;  // read by the signal handler until the process ends
  where.Build(schedule, layout, rank, host);
  CatchLauncherSignals(&where);
  RankRunRequest rank_request;
  rank_request.layout = layout;
  rank_request.rank = rank;
  rank_request.host = host;
  rank_request.where = &where;
  rank_request.averager = layout.replicas > 1 ? &averager : nullptr;
  // One rank per core: each does its matrix products single-threaded.
  const int blas_threads = cpu::SetBlasThreads(1);
  Result<RunResult> result =
      RunRank(schedule, model.input.micro_batch_size, chunks,
              MakeCpuDevice(model, options, &transport, std::move(hooks)), group, rank_request,
              options);
  cpu::SetBlasThreads(blas_threads);
  if (result.ok()) {
    if (Status s = transport.Flush(options.timeout_s); !s.ok()) {
      return s.Prefixed(RankName(layout, rank, host));
    }
  }
  if (result.ok() && result->root) {
    result->device = "CPU (fp32), " + std::to_string(size) + " MPI ranks = " +
                     std::to_string(layout.stages) + " stages × " +
                     std::to_string(layout.replicas) + " replicas on " + HostsOf(*result) +
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
