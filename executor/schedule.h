// Pipeline schedules: for each stage, the ordered list of ops it runs in one training step.
// One representation serves two interpreters: the simulator (predicted timeline) and the
// runtime (measured timeline). Each schedule kind implements ScheduleKind in its own file,
// with every fact other code asks about it (ScheduleTraits, chunks per device, placement), and
// registers in schedule.cc's table; consumers ask the kind instead of comparing names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace pp {

enum class OpKind {
  kForward,         // F: forward of one micro-batch through the chunk's layers
  kBackward,        // B: full backward (input and weight gradients) of one micro-batch
  kBackwardInput,   // I: input gradient only (zero-bubble schedules); sends to the chunk before
  kBackwardWeight,  // W: weight gradient only; needs the same chunk's I, sends nothing
};
// 'F', 'B', 'I' or 'W' (torch.distributed.pipelining writes I as "I" and W as "W" too).
char OpKindLetter(OpKind kind);
// The kind for a letter of OpKindLetter; false when the letter is none of them.
bool OpKindFromLetter(char letter, OpKind* kind);

struct PipelineOp {
  OpKind kind = OpKind::kForward;
  int micro_batch = 0;
  // The model chunk c the op runs. 0 when every device runs one chunk (gpipe, 1f1b, zb-h1:
  // the chunk is then the device's own stage). With several chunks per device (interleaved,
  // zbv) it is the chunk's index in model order, 0 <= c < Schedule::chunk_device.size().
  int chunk = 0;
  bool operator==(const PipelineOp&) const = default;
};

class ScheduleKind;

struct Schedule {
  std::string name;
  int num_devices = 0;  // p
  int num_micro_batches = 0;
  std::vector<std::vector<PipelineOp>> device_ops;  // device_ops[d]: device d's ops in order
  // Empty when each device runs one chunk (chunk d = device d). Otherwise chunk_device[c] is
  // the device that runs model chunk c: c mod p for interleaved; the V shape of zbv puts
  // chunk c < p on device c and chunk c >= p on device 2p - 1 - c.
  std::vector<int> chunk_device = {};
  // The registered kind that built it (set by BuildSchedule; not owned, lives as long as the
  // program). nullptr for a schedule from elsewhere (read from a CSV by schedule_csv.h): ask
  // the functions below, which fall back on what the op lists show.
  const ScheduleKind* kind = nullptr;
};

// An op as text: "F3" (forward of micro-batch 3), or "5F3" with `chunk` >= 0 (chunk 5). The
// same form labels ops in reports, traces and charts.
std::string OpText(const PipelineOp& op, int chunk = -1);

// How many model chunks the schedule cuts the model into (p when chunk_device is empty).
int NumChunks(const Schedule& schedule);
// The model chunk that op `op` of device `device` runs.
int OpChunk(const Schedule& schedule, int device, const PipelineOp& op);
// The device that runs model chunk `chunk`.
int ChunkDevice(const Schedule& schedule, int chunk);

// Typical times of one chunk's ops and of one transfer, in ms, for kinds that shape their
// order by them (zbv); the default says: equal ops, transfers free.
struct OpTimesHint {
  double forward_ms = 1;
  double input_ms = 1;   // I, the input-gradient part of the backward
  double weight_ms = 1;  // W
  double transfer_ms = 0;
  double p2p_gap_ms = 0;  // per send and per receive (ChunkTimes::p2p_gap_ms)
  bool operator==(const OpTimesHint&) const = default;
};

// What some kinds need beyond p and m.
struct ScheduleOptions {
  int virtual_stages = 2;  // interleaved: model chunks per device (--virtual-stages V)
  OpTimesHint times = {};  // zbv: the op times its order is chosen for
};

// Which lower bounds the exact step search (partitioner/step_search.cc) applies.
enum class StepBoundsFamily {
  kGpipe,                 // gpipe: its closed form and dominance rule, and bounds 1-6
  kOneChunkFullBackward,  // one chunk per device and full backwards (1f1b): bounds 1-6
  kChunked,               // several chunks per device or a split backward: bounds 7-9
};

// How well a framework can run a plan made for a schedule kind.
enum class FrameworkFit {
  kNo,           // it cannot express the plan's stages (the export refuses)
  kOwnSchedule,  // it runs the same stages under its own schedule (the export says so)
  kSame,         // it runs this schedule
};

// What consumers need to know about a kind; each kind states them once, in its own file.
struct ScheduleTraits {
  bool splits_backward = false;  // runs I and W instead of B (SplitsBackward of every build)
  StepBoundsFamily step_bounds = StepBoundsFamily::kChunked;
  // `plan --recompute all` is available (full backwards); `auto` too with one chunk per device
  bool per_stage_recompute = false;
  bool searched_by_default = true;   // `plan --stages auto` tries it without --schedule
  std::string_view torch_class;      // its torch.distributed.pipelining class; empty: none
  FrameworkFit megatron = FrameworkFit::kNo;    // Megatron-LM (chunk c on stage c mod p)
  FrameworkFit torchgpipe = FrameworkFit::kNo;  // torchgpipe / fairscale Pipe (one chunk each)
  // What the simulator charges the devices per stage-to-stage transfer (docs/schedules.md,
  // "What a transfer costs"). One chunk per device: nothing, a transfer is a pure delay.
  // Several chunks per device: each send and each receive costs its device a launch gap, and
  // the sender waits for this share (0 to 1) of each transfer it starts before its next op
  // (1: the runtime that runs the kind blocks on every exchange, as Megatron-LM's
  // interleaved schedule does; 0: sends are posted asynchronously).
  bool pays_transfer_gaps = false;
  double exposed_transfer_share = 0;
};

class ScheduleKind {
 public:
  virtual ~ScheduleKind() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;  // one line for --help
  virtual ScheduleTraits traits() const = 0;
  // Whether the options suit the kind (e.g. interleaved needs V >= 2), whatever p and m.
  virtual Status CheckOptions(const ScheduleOptions& /*options*/) const { return Status::Ok(); }
  // Whether the kind can build for these counts (e.g. interleaved needs m a multiple of p);
  // CheckOptions must have passed.
  virtual Status Check(int /*stages*/, int /*micro_batches*/,
                       const ScheduleOptions& /*options*/) const {
    return Status::Ok();
  }
  // Model chunks per device (1; V for interleaved; 2 for zbv); CheckOptions must have passed.
  virtual int ChunksPerDevice(const ScheduleOptions& /*options*/) const { return 1; }
  // The device of model chunk `chunk` (0 <= chunk < stages * ChunksPerDevice) on `stages`
  // devices: the chunk itself with one chunk per device. Build's chunk_device follows it.
  virtual int ChunkDevice(int chunk, int /*stages*/, const ScheduleOptions& /*options*/) const {
    return chunk;
  }
  // Builds the op lists for `stages` >= 1 devices and `micro_batches` >= 1 micro-batches;
  // CheckOptions and Check must have passed. Leaves Schedule::kind to BuildSchedule.
  virtual Schedule Build(int stages, int micro_batches, const ScheduleOptions& options) const = 0;
};

// The registered kinds, in the order --help lists them.
const std::vector<const ScheduleKind*>& ScheduleKinds();
// nullptr when unknown.
const ScheduleKind* FindScheduleKind(std::string_view name);
// "gpipe, 1f1b, ..." for messages and --help.
std::string ScheduleNames();
// The kinds whose traits say `plan --stages auto` tries them by default, in registry order.
std::vector<std::string> SearchedScheduleNames();
// Builds a schedule by name and sets its `kind`; an unknown name, a count < 1 or a failed
// CheckOptions or Check is an error.
Result<Schedule> BuildSchedule(std::string_view name, int stages, int micro_batches,
                               const ScheduleOptions& options = {});

// Whether the schedule runs separate input- and weight-gradient ops (I and W) instead of B.
bool SplitsBackward(const Schedule& schedule);
// The kind's step-search bounds; for a schedule without a kind, kOneChunkFullBackward when it
// has one chunk per device and no split backward, else kChunked.
StepBoundsFamily StepBoundsOf(const Schedule& schedule);
// Whether `--recompute all` is available (`auto` too when the schedule has one chunk per
// device); without a kind, when the schedule has no split backward.
bool SupportsPerStageRecompute(const Schedule& schedule);

// Checks that every chunk runs, on its own device, F of each micro-batch exactly once and
// then either B once or I once followed by W once.
Status ValidateSchedule(const Schedule& schedule);

// Per device: the largest number of (chunk, micro-batch) pairs whose forward has run on the
// device and whose B (or W) has not: how many micro-batches' activations it holds at its peak.
std::vector<int> InFlightMicroBatches(const Schedule& schedule);
// Per chunk: the same count restricted to the chunk's own ops (the chunk's peak).
std::vector<int> InFlightPerChunk(const Schedule& schedule);

}  // namespace pp
