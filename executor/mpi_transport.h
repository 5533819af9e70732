// The `mpi` transport of the cpu backend and the collectives of a distributed run, over MPI.
// Every wait polls a non-blocking request against a deadline, so a rank that died, hangs or
// left early turns into an error naming what was awaited instead of a hang.
//
// Messages: an activation or gradient (MessageKey) travels from the rank holding the chunk
// that produces it to the rank holding `to_chunk`, with the tag (micro-batch x 2 + gradient)
// x chunks + to_chunk; MPI keeps messages of one tag between two ranks in order, so the
// steps never mix. Send copies into a buffer of its own per key (reused every step, so after
// the first step nothing allocates) and posts it with MPI_Isend in pieces of at most
// kPieceFloats, each as soon as it is copied, so the copy overlaps the transfer; Receive posts
// one MPI_Irecv per piece straight into the consumer's buffer and waits for them in order.
#pragma once

#include <mpi.h>

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "executor/rank_run.h"
#include "executor/transport.h"

namespace pp {

// Waits for `request` until `timeout_s` passes (then cancels it): polls MPI_Test, yielding
// the core while it waits. The error of a timeout is "waited longer than T s for WHAT".
Status WaitRequest(MPI_Request* request, double timeout_s, const std::string& what,
                   MPI_Status* status = nullptr);

// The text of an MPI error code.
std::string MpiErrorText(int code);

// Sends `count` floats from `mine` to rank `peer` of `comm` and receives as many from it into
// `theirs` (a pair of ranks swapping buffers: the tied weights' gradients), waiting up to
// `timeout_s` for each.
Status ExchangeWith(MPI_Comm comm, int peer, const float* mine, float* theirs, size_t count,
                    double timeout_s);

class MpiTransport final : public Transport {
 public:
  // `rank_of_chunk[c]`: the rank in `comm` that runs chunk c of this rank's pipeline.
  MpiTransport(MPI_Comm comm, std::vector<int> rank_of_chunk, double timeout_s);
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;

  // Ok when every tag of `micro_batches` fits under the job's MPI_TAG_UB.
  Status CheckTags(int micro_batches) const;

  Status Send(const MessageKey& key, const float* data, size_t count) override;
  Status Receive(const MessageKey& key, float* out, size_t count, double timeout_s) override;
  void Abort() override { aborted_ = true; }
  // Waits until every message sent has left (before the end of the run).
  Status Flush(double timeout_s);

 private:
  // 4 MiB of fp32: small enough that the first piece's copy is short beside the transfer,
  // large enough that a 64 MiB message is 16 requests.
  static constexpr size_t kPieceFloats = size_t{1} << 20;
  static size_t PieceCount(size_t count) {
    return count == 0 ? 1 : (count + kPieceFloats - 1) / kPieceFloats;
  }
  int TagOf(const MessageKey& key) const;
  int SourceOf(const MessageKey& key) const;
  struct Outgoing {
    std::vector<float> data;
    std::vector<MPI_Request> requests;
  };
  MPI_Comm comm_;
  std::vector<int> rank_of_chunk_;
  double timeout_s_;
  std::map<MessageKey, Outgoing> sends_;
  std::vector<MPI_Request> receives_;  // the pieces of the receive under way
  bool aborted_ = false;
};

// RankGroup over MPI: `world` holds every rank of the job, `replicas` the ranks of this
// rank's stage.
class MpiGroup final : public RankGroup {
 public:
  MpiGroup(MPI_Comm world, MPI_Comm replicas) : world_(world), replicas_(replicas) {}
  Status Barrier(double timeout_s) override;
  Status SumOverReplicas(float* data, size_t count, double timeout_s) override;
  Status ReplicaBarrier(double timeout_s) override;
  Status Gather(const std::vector<double>& mine, std::vector<std::vector<double>>* all,
                double timeout_s) override;

 private:
  MPI_Comm world_, replicas_;
};

}  // namespace pp
