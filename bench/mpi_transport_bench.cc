// The mpi transport against plain MPI on the same ranks, and the host overhead per op of a
// distributed run. Run under mpirun with 2 ranks:
//   mpirun -np 2 mpi_transport_bench [--mib 64] [--repeats 10] [--stages-steps 20]
// Prints one JSON object (rank 0):
//   pingpong:  a message of MIB MiB to rank 1 and back, repeated; GB/s = 2 x bytes / time.
//              plain: MPI_Send / MPI_Recv of the buffer; transport: MpiTransport::Send and
//              Receive of the same bytes (Send copies into its own buffer first).
//   stream:    8 messages of MIB MiB from rank 0 to rank 1 back to back, then a 1-byte reply;
//              plain: MPI_Isend of each; transport: Send of each (its copy overlaps the
//              previous message's transfer).
//   overhead:  a 1f1b schedule of 2 stages x 64 micro-batches of empty ops (one float per
//              message) run by RunRank over MpiTransport: median step wall time / ops per
//              device, which counts the chunk runner, the transport and the message latency.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/stats.h"
#include "executor/host_clock.h"
#include "executor/mpi_transport.h"
#include "executor/pipeline_device.h"
#include "executor/rank_run.h"
#include "bench/empty_device.h"
#include "executor/schedule.h"

namespace pp {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

using bench::EmptyDevice;


void Die(const Status& s) {
  std::fprintf(stderr, "mpi_transport_bench: %s\n", s.message().c_str());
  MPI_Abort(MPI_COMM_WORLD, 1);
}

int Main(int argc, char** argv) {
  int mib = 64, repeats = 10, steps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mib") mib = std::atoi(argv[i + 1]);
    else if (a == "--repeats") repeats = std::atoi(argv[i + 1]);
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
  }
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) std::fprintf(stderr, "mpi_transport_bench: run it with 2 ranks\n");
    MPI_Finalize();
    return 2;
  }
  const size_t count = static_cast<size_t>(mib) * (1 << 20) / sizeof(float);
  const double bytes = static_cast<double>(count * sizeof(float));
  std::vector<float> buffer(count, 1.0f), back(count, 0.0f);
  const int peer = 1 - rank;
  // chunk 0 on rank 0, chunk 1 on rank 1: activations go up, gradients come down.
  MpiTransport transport(MPI_COMM_WORLD, {0, 1}, 60);
  const MessageKey up{1, false, 0}, down{0, true, 0};

  auto plain_pingpong = [&] {
    if (rank == 0) {
      MPI_Send(buffer.data(), static_cast<int>(count), MPI_FLOAT, peer, 1, MPI_COMM_WORLD);
      MPI_Recv(back.data(), static_cast<int>(count), MPI_FLOAT, peer, 2, MPI_COMM_WORLD,
               MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(back.data(), static_cast<int>(count), MPI_FLOAT, peer, 1, MPI_COMM_WORLD,
               MPI_STATUS_IGNORE);
      MPI_Send(back.data(), static_cast<int>(count), MPI_FLOAT, peer, 2, MPI_COMM_WORLD);
    }
  };
  auto transport_pingpong = [&] {
    Status s;
    if (rank == 0) {
      s = transport.Send(up, buffer.data(), count);
      if (s.ok()) s = transport.Receive(down, back.data(), count, 60);
    } else {
      s = transport.Receive(up, back.data(), count, 60);
      if (s.ok()) s = transport.Send(down, back.data(), count);
    }
    if (!s.ok()) Die(s);
  };
  constexpr int kStream = 8;
  std::vector<MPI_Request> requests(kStream);
  auto plain_stream = [&] {
    char ack = 0;
    if (rank == 0) {
      for (int k = 0; k < kStream; ++k) {
        MPI_Isend(buffer.data(), static_cast<int>(count), MPI_FLOAT, peer, 10 + k, MPI_COMM_WORLD,
                  &requests[k]);
      }
      MPI_Waitall(kStream, requests.data(), MPI_STATUSES_IGNORE);
      MPI_Recv(&ack, 1, MPI_CHAR, peer, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      for (int k = 0; k < kStream; ++k) {
        MPI_Recv(back.data(), static_cast<int>(count), MPI_FLOAT, peer, 10 + k, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
      }
      MPI_Send(&ack, 1, MPI_CHAR, peer, 3, MPI_COMM_WORLD);
    }
  };
  auto transport_stream = [&] {
    char ack = 0;
    Status s;
    for (int k = 0; k < kStream && s.ok(); ++k) {
      const MessageKey key{1, false, k};
      s = rank == 0 ? transport.Send(key, buffer.data(), count)
                    : transport.Receive(key, back.data(), count, 60);
    }
    if (!s.ok()) Die(s);
    if (rank == 0) {
      MPI_Recv(&ack, 1, MPI_CHAR, peer, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Send(&ack, 1, MPI_CHAR, peer, 3, MPI_COMM_WORLD);
    }
  };
  // The median seconds of `repeats` runs of `f`, after one untimed.
  auto time = [&](auto f) {
    f();
    std::vector<double> s;
    for (int r = 0; r < repeats; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      const Clock::time_point start = Clock::now();
      f();
      s.push_back(SecondsSince(start));
    }
    return Median(s);
  };
  const double plain_pp = time(plain_pingpong), transport_pp = time(transport_pingpong);
  const double plain_st = time(plain_stream), transport_st = time(transport_stream);
  if (Status s = transport.Flush(60); !s.ok()) Die(s);

  // Host overhead per op of a distributed run of empty ops.
  const int m = 64;
  Result<Schedule> schedule = BuildSchedule("1f1b", 2, m);
  if (!schedule.ok()) Die(schedule.status());
  MpiTransport messages(MPI_COMM_WORLD, {0, 1}, 60);
  MpiGroup group(MPI_COMM_WORLD, MPI_COMM_SELF);
  RankRunRequest request;
  request.layout = RankLayout{2, 1};
  request.rank = rank;
  RunOptions options;
  options.steps = steps;
  options.warmup_steps = 2;
  options.optimizer = false;
  std::vector<double> wall;
  Result<RunResult> run = RunRank(*schedule, 1, {{0, 0}, {1, 1}},
                                  std::make_unique<EmptyDevice>(&messages), group, request,
                                  options);
  if (!run.ok()) Die(run.status());
  if (Status s = messages.Flush(60); !s.ok()) Die(s);
  if (rank == 0) {
    const double ops = static_cast<double>(schedule->device_ops[0].size());
    const double per_op_us = 1000.0 * run->step_ms / ops;
    const double gb = 1e-9;
    std::printf(
        "{\"mib\": %d, \"repeats\": %d,\n"
        " \"pingpong_gb_per_s\": {\"plain_mpi\": %.3f, \"mpi_transport\": %.3f, \"ratio\": %.3f},\n"
        " \"stream_gb_per_s\": {\"plain_mpi\": %.3f, \"mpi_transport\": %.3f, \"ratio\": %.3f},\n"
        " \"overhead\": {\"schedule\": \"1f1b\", \"stages\": 2, \"micro_batches\": %d, "
        "\"ops_per_device\": %d, \"step_ms\": %.4f, \"per_op_us\": %.2f}}\n",
        mib, repeats, 2 * bytes / plain_pp * gb, 2 * bytes / transport_pp * gb,
        plain_pp / transport_pp, kStream * bytes / plain_st * gb,
        kStream * bytes / transport_st * gb, plain_st / transport_st, m,
        static_cast<int>(ops), run->step_ms, per_op_us);
  }
  MPI_Finalize();
  return 0;
}

}  // namespace
}  // namespace pp

int main(int argc, char** argv) { return pp::Main(argc, argv); }
