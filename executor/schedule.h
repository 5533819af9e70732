// Pipeline schedules: for each stage, the ordered list of ops it runs in one training step.
// One representation serves two interpreters: the simulator (predicted timeline) and the
// runtime (measured timeline). Each schedule kind implements ScheduleKind and registers in
// schedule.cc's table.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace pp {

enum class OpKind {
  kForward,   // F: forward of one micro-batch through the stage's layers
  kBackward,  // B: full backward (input and weight gradients) of one micro-batch
};
char OpKindLetter(OpKind kind);  // 'F' or 'B'

struct PipelineOp {
  OpKind kind = OpKind::kForward;
  int micro_batch = 0;
  bool operator==(const PipelineOp&) const = default;
};

struct Schedule {
  std::string name;
  int num_stages = 0;
  int num_micro_batches = 0;
  std::vector<std::vector<PipelineOp>> stages;  // stages[s] in execution order
};

class ScheduleKind {
 public:
  virtual ~ScheduleKind() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;  // one line for --help
  // Builds the op lists for `stages` >= 1 stages and `micro_batches` >= 1 micro-batches.
  virtual Schedule Build(int stages, int micro_batches) const = 0;
};

// The registered kinds, in the order --help lists them.
const std::vector<const ScheduleKind*>& ScheduleKinds();
// nullptr when unknown.
const ScheduleKind* FindScheduleKind(std::string_view name);
// "gpipe, 1f1b" for messages.
std::string ScheduleNames();
// Builds a schedule by name; an unknown name or a count < 1 is an error.
Result<Schedule> BuildSchedule(std::string_view name, int stages, int micro_batches);

// Checks that every stage runs F and B of each micro-batch exactly once, F before B.
Status ValidateSchedule(const Schedule& schedule);

// The largest number of micro-batches whose forward has run on stage s and whose backward has
// not: how many micro-batches' activations the stage holds at its peak.
std::vector<int> InFlightMicroBatches(const Schedule& schedule);

}  // namespace pp
