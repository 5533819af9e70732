// Schedules as data: the per-rank op lists in the CSV form that torch.distributed.pipelining
// dumps and loads for its compute-only schedules (docs/schedules.md, "Schedules as CSV").
//
// One row per rank (device), in rank order, no header. Each cell is one action written
// STAGE LETTER MICRO_BATCH, e.g. "0F1", "3I0", "5W2": torch's stage index (pp-partition's
// model chunk), an op letter of OpKindLetter, the micro-batch. An empty cell is an idle slot
// and is skipped; spaces around a cell are ignored; lines may end in "\r\n".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "executor/schedule.h"

namespace pp {

struct ScheduleCsvOptions {
  std::string source = "schedule.csv";  // names the text in messages
  std::string name = "csv";             // Schedule::name of the result
  // When set, the CSV must have exactly this many rows (devices), stages (chunks) or
  // micro-batches; otherwise they are read from it (micro-batches: the largest index + 1).
  std::optional<int> num_devices;
  std::optional<int> num_chunks;
  std::optional<int> num_micro_batches;
};

// Parses and validates (ValidateSchedule) a schedule. When stage d runs on rank d for every d
// the result has one chunk per device (PipelineOp::chunk 0, chunk_device empty), as the
// built-in one-chunk schedules do; otherwise chunk_device maps each stage to the one rank
// that runs it. Errors name the place: "FILE:3: cell 5 \"2X1\": unknown op letter 'X'".
Result<Schedule> ScheduleFromCsv(std::string_view text, const ScheduleCsvOptions& options = {});

// One row per device, cells "CHUNKLETTERMICRO_BATCH" joined by commas, lines ending in "\n";
// no idle cells. ScheduleFromCsv reads it back to the same op lists.
std::string ScheduleToCsv(const Schedule& schedule);

}  // namespace pp
