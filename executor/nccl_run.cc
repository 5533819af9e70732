#include "executor/nccl_run.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <chrono>
#include <memory>
#include <utility>

#include "executor/cuda_stage.h"
#include "executor/mpi_job.h"
#include "executor/mpi_transport.h"
#include "executor/nccl_transport.h"
#include "executor/plan_context.h"
#include "executor/rank_run.h"
#include "layers/cuda_layer.h"

namespace pp {
namespace {

using Clock = std::chrono::steady_clock;

// A communicator over the ranks of `mpi` (NCCL rank = rank in `mpi`): its rank 0 makes the
// id and broadcasts it.
Result<ncclComm_t> CommOver(MPI_Comm mpi) {
  int rank = 0, size = 1;
  MPI_Comm_rank(mpi, &rank);
  MPI_Comm_size(mpi, &size);
  ncclUniqueId id{};
  if (rank == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) return Status::Error("ncclGetUniqueId: " + NcclErrorText(r));
  }
  if (MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi) != MPI_SUCCESS) {
    return Status::Error("could not broadcast the NCCL id over MPI");
  }
  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRank(&comm, size, id, rank);
  if (r != ncclSuccess) return Status::Error("ncclCommInitRank: " + NcclErrorText(r));
  return comm;
}

// The rank's GPU: its local rank's, one GPU per rank.
Result<int> GpuOf(const MpiRunRequest& request, const MpiJob& job) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    return Status::Error("no CUDA GPU is visible on host " + job.host + " for rank " +
                         std::to_string(job.rank) +
                         (e != cudaSuccess ? std::string(": ") + cudaGetErrorString(e) : ""));
  }
  const int local = request.launch.local_rank;
  if (local >= count) {
    return Status::Error("rank " + std::to_string(job.rank) + " is local rank " +
                         std::to_string(local) + " on host " + job.host + ", which has " +
                         std::to_string(count) + " GPUs (the nccl transport takes one GPU per "
                         "rank)");
  }
  return local;
}

template <typename T>
Result<RunResult> RunTyped(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options,
                           const MpiRunRequest& request, const MpiJob& job, int gpu) {
  const RankLayout& layout = request.layout;
  const int num_chunks = static_cast<int>(chunks.size());
  Result<ncclComm_t> world = CommOver(MPI_COMM_WORLD);
  if (!world.ok()) return world.status();
  ncclComm_t replicas = nullptr;
  if (layout.replicas > 1) {
    Result<ncclComm_t> made = CommOver(job.replicas);
    if (!made.ok()) return made.status();
    replicas = *made;
  }
  std::vector<int> rank_of_chunk;
  for (int c = 0; c < num_chunks; ++c) {
    rank_of_chunk.push_back(layout.RankOf(ChunkDevice(schedule, c), job.replica));
  }
  auto transport = std::make_unique<NcclTransport>(*world, rank_of_chunk, job.stage);
  // Channels: activations c-1 -> c, gradients c -> c-1 (when chunk c's head passes one).
  for (int c = 1; c < num_chunks; ++c) {
    const int from = ChunkDevice(schedule, c - 1), to = ChunkDevice(schedule, c);
    if (from != job.stage && to != job.stage) continue;
    auto tail = MakeCudaLayer<T>(model.layers[chunks[c - 1].last_layer], model.input);
    auto head = MakeCudaLayer<T>(model.layers[chunks[c].first_layer], model.input);
    if (!tail.ok()) return tail.status();
    if (!head.ok()) return head.status();
    const int64_t act = static_cast<int64_t>(sizeof(T)) * (*tail)->output_count();
    const int64_t grad = static_cast<int64_t>(sizeof(T)) * (*head)->rows() *
                         std::max<int64_t>((*head)->in_width(), 1);
    const int m = schedule.num_micro_batches;
    Status s;
    if (from == to) {
      s = transport->AddLocalChannel(c, false, act, m);
      if (s.ok() && (*head)->has_input_gradient()) {
        s = transport->AddLocalChannel(c - 1, true, grad, m);
      }
    } else {
      s = transport->AddChannel(c, false, act, m, from == job.stage);
      if (s.ok() && (*head)->has_input_gradient()) {
        s = transport->AddChannel(c - 1, true, grad, m, to == job.stage);
      }
    }
    if (!s.ok()) return s.Prefixed(RankName(layout, job.rank, job.host));
  }
  double allreduce_ms = 0;
  CudaDeviceHooks hooks;
  hooks.micro_batch_offset = job.replica * schedule.num_micro_batches;
  RankRunRequest rank_request;
  if (replicas != nullptr) {
    hooks.reduce_gradients = [&](void* g, int64_t n, size_t element_bytes, cudaStream_t stream) {
      const Clock::time_point start = Clock::now();
      const ncclDataType_t type = element_bytes == 4 ? ncclFloat32 : ncclBfloat16;
      const ncclResult_t r =
          ncclAllReduce(g, g, static_cast<size_t>(n), type, ncclAvg, replicas, stream);
      if (r != ncclSuccess) return Status::Error("ncclAllReduce: " + NcclErrorText(r));
      const cudaError_t e = cudaStreamSynchronize(stream);
      if (e != cudaSuccess) {
        return Status::Error(std::string("all-reduce: ") + cudaGetErrorString(e));
      }
      allreduce_ms += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      return Status::Ok();
    };
    rank_request.take_allreduce_ms = [&] {
      const double ms = allreduce_ms;
      allreduce_ms = 0;
      return ms;
    };
  }
  // A tied weight's two sides swap their gradients over the world communicator, after every
  // message of the step on both ranks (so the pair's operations match in order).
  hooks.exchange_tied = [&](const TiedWeight& t, bool embedding_side, const void* mine,
                            void* theirs, size_t element_bytes, cudaStream_t stream) -> Status {
    const int chunk = ChunkOfLayer(chunks, embedding_side ? t.linear : t.embedding);
    if (chunk < 0) return Status::Error("no chunk runs the other side of a tied weight (a bug)");
    const int peer = layout.RankOf(ChunkDevice(schedule, chunk), job.replica);
    const ncclDataType_t type = element_bytes == 4 ? ncclFloat32 : ncclBfloat16;
    const size_t n = static_cast<size_t>(t.count());
    ncclResult_t r = ncclGroupStart();
    if (r == ncclSuccess) r = ncclSend(mine, n, type, peer, *world, stream);
    if (r == ncclSuccess) r = ncclRecv(theirs, n, type, peer, *world, stream);
    const ncclResult_t ended = ncclGroupEnd();
    if (r == ncclSuccess) r = ended;
    if (r != ncclSuccess) return Status::Error("the tied weight's gradients: " + NcclErrorText(r));
    return Status::Ok();
  };
  static RankWhere where;
  where.Build(schedule, layout, job.rank, job.host);
  CatchLauncherSignals(&where);
  rank_request.layout = layout;
  rank_request.rank = job.rank;
  rank_request.host = job.host;
  rank_request.where = &where;
  MpiGroup group(MPI_COMM_WORLD, job.replicas);
  const CudaPlace place{job.stage, gpu, nullptr, -1};
  Result<RunResult> result = RunRank(
      schedule, model.input.micro_batch_size, chunks,
      std::make_unique<CudaDevice<T>>(model, options, transport.get(), place, std::move(hooks)),
      group, rank_request, options);
  if (result.ok()) {
    if (Status s = transport->Drain(options.timeout_s); !s.ok()) return s;
  }
  transport.reset();
  (void)ncclCommDestroy(*world);
  if (replicas != nullptr) (void)ncclCommDestroy(replicas);
  if (result.ok() && result->root) {
    cudaDeviceProp prop{};
    (void)cudaGetDeviceProperties(&prop, gpu);
    result->device = std::string(prop.name) + " (" + (sizeof(T) == 4 ? "fp32" : "bf16") +
                     "), " + RanksText(*result, layout) +
                     ", one GPU per rank, nccl transport; clocks per rank, from a barrier at "
                     "each step's start";
  }
  return result;
}

}  // namespace

Result<RunResult> RunOnMpiOrNccl(const Model& model, const std::vector<ChunkRange>& chunks,
                                 const Schedule& schedule, const RunOptions& options,
                                 const MpiRunRequest& request) {
  if (request.backend != "cuda") return RunOnMpi(model, chunks, schedule, options, request);
  if (request.transport != "nccl") {
    return Status::Error("--transport " + request.transport + " does not carry the cuda "
                         "backend's tensors between ranks (use nccl)");
  }
  Result<MpiJob> job = JoinMpiJob(request.layout);
  if (!job.ok()) return job.status();
  PP_RETURN_IF_ERROR(CheckRun(schedule, chunks));
  for (const ChunkRange& c : chunks) {
    if (c.recompute) {
      return Status::Error("recomputation on the cuda backend is not available yet");
    }
  }
  Result<int> gpu = GpuOf(request, *job);
  if (!gpu.ok()) return gpu.status();
  if (cudaSetDevice(*gpu) != cudaSuccess) return Status::Error("cudaSetDevice failed");
  return request.dtype == DType::kBf16
             ? RunTyped<__nv_bfloat16>(model, chunks, schedule, options, request, *job, *gpu)
             : RunTyped<float>(model, chunks, schedule, options, request, *job, *gpu);
}

}  // namespace pp
