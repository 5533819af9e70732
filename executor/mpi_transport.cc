#include "executor/mpi_transport.h"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>
#include <utility>

#include "core/units.h"

namespace pp {
namespace {

using Clock = std::chrono::steady_clock;

Status Check(int code, const std::string& what) {
  if (code == MPI_SUCCESS) return Status::Ok();
  return Status::Error(what + ": " + MpiErrorText(code));
}

}  // namespace

std::string MpiErrorText(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) {
    return "MPI error " + std::to_string(code);
  }
  return std::string(text, static_cast<size_t>(length));
}

Status WaitRequest(MPI_Request* request, double timeout_s, const std::string& what,
                   MPI_Status* status) {
  const Clock::time_point start = Clock::now();
  const auto limit = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(timeout_s));
  MPI_Status local;
  MPI_Status* st = status != nullptr ? status : &local;
  // Spin for the first ~50 us (a message that is nearly there), then yield the core between
  // polls, then sleep between polls, 50 us and from 20 ms on 200 us: ranks may share cores
  // (--oversubscribe), and a long wait should cost them little.
  for (long polls = 0;; ++polls) {
    int done = 0;
    const int code = MPI_Test(request, &done, st);
    if (code != MPI_SUCCESS) return Status::Error(what + ": " + MpiErrorText(code));
    if (done) return Status::Ok();
    const Clock::duration waited = Clock::now() - start;
    if (waited > limit) {
      MPI_Cancel(request);
      MPI_Request_free(request);
      return Status::Error("waited longer than " + FormatSeconds(timeout_s) + " for " + what);
    }
    if (waited > std::chrono::microseconds(2000)) {
      const timespec nap{0, (waited > std::chrono::milliseconds(20) ? 200 : 50) * 1000};
      nanosleep(&nap, nullptr);
    } else if (waited > std::chrono::microseconds(50)) {
      sched_yield();
    }
  }
}

MpiTransport::MpiTransport(MPI_Comm comm, std::vector<int> rank_of_chunk, double timeout_s)
    : comm_(comm), rank_of_chunk_(std::move(rank_of_chunk)), timeout_s_(timeout_s) {}

int MpiTransport::TagOf(const MessageKey& key) const {
  return (key.micro_batch * 2 + (key.gradient ? 1 : 0)) * static_cast<int>(rank_of_chunk_.size()) +
         key.to_chunk;
}

int MpiTransport::SourceOf(const MessageKey& key) const {
  return rank_of_chunk_[key.gradient ? key.to_chunk + 1 : key.to_chunk - 1];
}

Status MpiTransport::CheckTags(int micro_batches) const {
  void* value = nullptr;
  int found = 0;
  MPI_Comm_get_attr(comm_, MPI_TAG_UB, &value, &found);
  const long tag_ub = found ? *static_cast<int*>(value) : 32767;
  const long needed = 2L * micro_batches * static_cast<long>(rank_of_chunk_.size());
  if (needed - 1 <= tag_ub) return Status::Ok();
  return Status::Error(std::to_string(micro_batches) + " micro-batches of " +
                       std::to_string(rank_of_chunk_.size()) + " chunks need MPI tags up to " +
                       std::to_string(needed - 1) + ", beyond this MPI's MPI_TAG_UB " +
                       std::to_string(tag_ub));
}

Status MpiTransport::Send(const MessageKey& key, const float* data, size_t count) {
  if (aborted_) return Status::Error("aborted");
  if (key.to_chunk < 0 || key.to_chunk >= static_cast<int>(rank_of_chunk_.size())) {
    return Status::Error("a message to chunk " + std::to_string(key.to_chunk) + ", which the plan "
                         "does not have");
  }
  Outgoing& out = sends_[key];
  const int to = rank_of_chunk_[key.to_chunk];
  // The previous step's message of this key must have left before its buffer is reused.
  std::string what;  // built only when there is something to wait for
  for (MPI_Request& request : out.requests) {
    if (request == MPI_REQUEST_NULL) continue;
    if (what.empty()) what = "rank " + std::to_string(to) + " to take the previous step's message";
    PP_RETURN_IF_ERROR(WaitRequest(&request, timeout_s_, what));
  }
  out.data.resize(count);
  out.requests.assign(PieceCount(count), MPI_REQUEST_NULL);
  // Copy a piece, post it, copy the next: the copy of piece k+1 overlaps the transfer of
  // piece k, so a large message costs one piece's copy more than MPI's own transfer.
  for (size_t k = 0; k < out.requests.size(); ++k) {
    const size_t begin = k * kPieceFloats, n = std::min(kPieceFloats, count - begin);
    std::copy(data + begin, data + begin + n, out.data.data() + begin);
    PP_RETURN_IF_ERROR(Check(MPI_Isend(out.data.data() + begin, static_cast<int>(n), MPI_FLOAT, to,
                                       TagOf(key), comm_, &out.requests[k]),
                             "sending to rank " + std::to_string(to)));
    // One turn of the progress engine, so that the piece is on its way before this rank
    // copies the next one or computes its next op.
    int done = 0;
    PP_RETURN_IF_ERROR(Check(MPI_Test(&out.requests[k], &done, MPI_STATUS_IGNORE),
                             "sending to rank " + std::to_string(to)));
  }
  return Status::Ok();
}

Status MpiTransport::Receive(const MessageKey& key, float* out, size_t count, double timeout_s) {
  if (aborted_) return Status::Error("aborted");
  const int last = static_cast<int>(rank_of_chunk_.size()) - 1;
  if (key.to_chunk < 0 || key.to_chunk > last || (key.gradient && key.to_chunk == last) ||
      (!key.gradient && key.to_chunk == 0)) {
    return Status::Error("no chunk sends the message to chunk " + std::to_string(key.to_chunk));
  }
  const int from = SourceOf(key);
  // The pieces of one key arrive in the order they were sent (MPI does not overtake messages
  // of one tag between two ranks), each into its place in `out`. The request list is the
  // transport's own, reused by every receive.
  std::vector<MPI_Request>& requests = receives_;
  requests.assign(PieceCount(count), MPI_REQUEST_NULL);
  // Drops the requests from `k` on, after an error.
  auto drop_from = [&](size_t k) {
    for (; k < requests.size(); ++k) {
      if (requests[k] == MPI_REQUEST_NULL) continue;
      MPI_Cancel(&requests[k]);
      MPI_Request_free(&requests[k]);
    }
  };
  for (size_t k = 0; k < requests.size(); ++k) {
    const size_t begin = k * kPieceFloats, n = std::min(kPieceFloats, count - begin);
    const Status posted = Check(MPI_Irecv(out + begin, static_cast<int>(n), MPI_FLOAT, from,
                                          TagOf(key), comm_, &requests[k]),
                                "receiving from rank " + std::to_string(from));
    if (!posted.ok()) {
      drop_from(0);
      return posted;
    }
  }
  const std::string what =
      "its input from rank " + std::to_string(from) + " (that rank died, hangs or left early)";
  size_t got_total = 0;
  for (size_t k = 0; k < requests.size(); ++k) {
    MPI_Status status;
    const Status waited = WaitRequest(&requests[k], timeout_s, what, &status);
    if (!waited.ok()) {
      drop_from(k + 1);
      return waited;
    }
    int got = 0;
    MPI_Get_count(&status, MPI_FLOAT, &got);
    got_total += static_cast<size_t>(got);
    if (static_cast<size_t>(got) != std::min(kPieceFloats, count - k * kPieceFloats)) {
      drop_from(k + 1);
      return Status::Error("received " + std::to_string(got_total) + " values from rank " +
                           std::to_string(from) + ", expected " + std::to_string(count));
    }
  }
  return Status::Ok();
}

Status MpiTransport::Flush(double timeout_s) {
  for (auto& [key, out] : sends_) {
    for (MPI_Request& request : out.requests) {
      if (request == MPI_REQUEST_NULL) continue;
      PP_RETURN_IF_ERROR(WaitRequest(&request, timeout_s,
                                     "rank " + std::to_string(rank_of_chunk_[key.to_chunk]) +
                                         " to take its last message"));
    }
  }
  return Status::Ok();
}

Status ExchangeWith(MPI_Comm comm, int peer, const float* mine, float* theirs, size_t count,
                    double timeout_s) {
  if (count > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Status::Error("a tied weight of " + std::to_string(count) +
                         " parameters is more than one MPI message holds");
  }
  const int n = static_cast<int>(count);
  MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  PP_RETURN_IF_ERROR(
      Check(MPI_Irecv(theirs, n, MPI_FLOAT, peer, 0, comm, &requests[1]), "tied gradient receive"));
  PP_RETURN_IF_ERROR(
      Check(MPI_Isend(const_cast<float*>(mine), n, MPI_FLOAT, peer, 0, comm, &requests[0]),
            "tied gradient send"));
  const std::string from = "rank " + std::to_string(peer);
  PP_RETURN_IF_ERROR(WaitRequest(
      &requests[1], timeout_s,
      "the tied weight's gradient from " + from + " (that rank died, hangs or left early)"));
  return WaitRequest(&requests[0], timeout_s, from + " to take the tied weight's gradient");
}

Status MpiGroup::Barrier(double timeout_s) {
  MPI_Request request = MPI_REQUEST_NULL;
  PP_RETURN_IF_ERROR(Check(MPI_Ibarrier(world_, &request), "barrier"));
  return WaitRequest(&request, timeout_s, "every rank at the barrier (a rank died, hangs or "
                                          "left early)");
}

Status MpiGroup::ReplicaBarrier(double timeout_s) {
  MPI_Request request = MPI_REQUEST_NULL;
  PP_RETURN_IF_ERROR(Check(MPI_Ibarrier(replicas_, &request), "replica barrier"));
  return WaitRequest(&request, timeout_s, "every replica of the stage at the gradient "
                                          "all-reduce (a rank died, hangs or left early)");
}

Status MpiGroup::SumOverReplicas(float* data, size_t count, double timeout_s) {
  MPI_Request request = MPI_REQUEST_NULL;
  PP_RETURN_IF_ERROR(Check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_FLOAT,
                                          MPI_SUM, replicas_, &request),
                           "gradient all-reduce"));
  return WaitRequest(&request, timeout_s, "the gradient all-reduce over the replicas (a rank "
                                          "died, hangs or left early)");
}

Status MpiGroup::Gather(const std::vector<double>& mine, std::vector<std::vector<double>>* all,
                        double timeout_s) {
  int rank = 0, size = 1;
  MPI_Comm_rank(world_, &rank);
  MPI_Comm_size(world_, &size);
  int count = static_cast<int>(mine.size());
  std::vector<int> counts(rank == 0 ? size : 0), offsets(rank == 0 ? size : 0);
  MPI_Request request = MPI_REQUEST_NULL;
  PP_RETURN_IF_ERROR(Check(MPI_Igather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world_,
                                       &request),
                           "gather"));
  PP_RETURN_IF_ERROR(WaitRequest(&request, timeout_s, "every rank's timings"));
  std::vector<double> joined;
  if (rank == 0) {
    int total = 0;
    for (int k = 0; k < size; ++k) {
      offsets[k] = total;
      total += counts[k];
    }
    joined.resize(static_cast<size_t>(total));
  }
  PP_RETURN_IF_ERROR(Check(MPI_Igatherv(mine.data(), count, MPI_DOUBLE, joined.data(),
                                        counts.data(), offsets.data(), MPI_DOUBLE, 0, world_,
                                        &request),
                           "gather"));
  PP_RETURN_IF_ERROR(WaitRequest(&request, timeout_s, "every rank's timings"));
  all->clear();
  if (rank == 0) {
    for (int k = 0; k < size; ++k) {
      all->emplace_back(joined.begin() + offsets[k], joined.begin() + offsets[k] + counts[k]);
    }
  }
  return Status::Ok();
}

}  // namespace pp
