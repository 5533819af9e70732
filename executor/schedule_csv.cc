#include "executor/schedule_csv.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "core/units.h"

namespace pp {
namespace {

constexpr int kMaxIndex = 1'000'000;  // larger stage or micro-batch indices are typos

// torch.distributed.pipelining's other actions, which only its communication-aware format has.
constexpr std::string_view kCommActions[] = {"UNSHARD", "RESHARD", "SEND_F",
                                             "RECV_F",  "SEND_B",  "RECV_B"};

struct Cell {
  int stage = 0;
  PipelineOp op;  // chunk not yet set
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Reads the decimal digits at the front of `s` into `value`; false when there are none or
// the number exceeds kMaxIndex.
bool TakeIndex(std::string_view* s, int* value, bool* too_large) {
  size_t n = 0;
  long long v = 0;
  while (n < s->size() && std::isdigit(static_cast<unsigned char>((*s)[n]))) {
    v = std::min<long long>(v * 10 + ((*s)[n] - '0'), kMaxIndex + 1LL);
    ++n;
  }
  if (n == 0) return false;
  *too_large = v > kMaxIndex;
  *value = static_cast<int>(v);
  s->remove_prefix(n);
  return true;
}

// Parses one non-empty cell; on failure returns the problem (without the place).
std::string ParseCell(std::string_view text, Cell* cell) {
  std::string_view s = text;
  bool too_large = false;
  if (!TakeIndex(&s, &cell->stage, &too_large)) {
    return "expected STAGE LETTER MICRO_BATCH such as 0F1";
  }
  if (too_large) return "stage index too large";
  for (std::string_view comm : kCommActions) {
    if (s.substr(0, comm.size()) == comm) {
      return "communication and resharding actions are not simulated; dump the compute-only "
             "schedule";
    }
  }
  if (s.empty()) return "missing op letter";
  if (!OpKindFromLetter(s.front(), &cell->op.kind)) {
    return std::string("unknown op letter '") + s.front() + "' (F, B, I or W)";
  }
  s.remove_prefix(1);
  if (!TakeIndex(&s, &cell->op.micro_batch, &too_large)) return "missing micro-batch index";
  if (too_large) return "micro-batch index too large";
  if (!s.empty()) return "unexpected text after the micro-batch index";
  return "";
}

// The rows of `text`: lines split at '\n' with a trailing '\r' removed; the empty piece after
// a final newline is not a row.
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::string Count(int n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

}  // namespace

Result<Schedule> ScheduleFromCsv(std::string_view text, const ScheduleCsvOptions& options) {
  const std::string& src = options.source;
  const std::vector<std::string_view> lines = Lines(text);
  const int rows = static_cast<int>(lines.size());
  if (rows == 0) return Status::Error(src + ": empty schedule (one row per rank expected)");
  if (options.num_devices && rows != *options.num_devices) {
    return Status::Error(src + ": " + Count(rows, "row") + " (ranks); the plan has " +
                         Count(*options.num_devices, "device"));
  }
  std::vector<std::vector<Cell>> cells(rows);
  std::vector<int> stage_rank;  // stage -> the rank that runs it, -1 not seen yet
  int max_micro_batch = -1;
  for (int r = 0; r < rows; ++r) {
    const std::string line_place = src + ":" + std::to_string(r + 1);
    std::string_view rest = lines[r];
    for (int index = 1;; ++index) {
      const size_t comma = rest.find(',');
      const std::string_view raw = Trim(rest.substr(0, comma));
      std::string_view cell_text = raw;
      if (cell_text.size() >= 2 && cell_text.front() == '"' && cell_text.back() == '"') {
        cell_text = Trim(cell_text.substr(1, cell_text.size() - 2));
      }
      if (!cell_text.empty()) {
        const std::string place =
            line_place + ": cell " + std::to_string(index) + " " + Quote(raw);
        Cell cell;
        const std::string problem = ParseCell(cell_text, &cell);
        if (!problem.empty()) return Status::Error(place + ": " + problem);
        if (options.num_chunks && cell.stage >= *options.num_chunks) {
          return Status::Error(place + ": stage " + std::to_string(cell.stage) +
                               " out of range (the plan has " +
                               Count(*options.num_chunks, "stage") + ")");
        }
        if (cell.stage >= static_cast<int>(stage_rank.size())) {
          stage_rank.resize(cell.stage + 1, -1);
        }
        int& owner = stage_rank[cell.stage];
        if (owner >= 0 && owner != r) {
          return Status::Error(place + ": stage " + std::to_string(cell.stage) +
                               " already runs on rank " + std::to_string(owner) + " (line " +
                               std::to_string(owner + 1) + ")");
        }
        owner = r;
        if (options.num_micro_batches && cell.op.micro_batch >= *options.num_micro_batches) {
          return Status::Error(place + ": micro-batch " + std::to_string(cell.op.micro_batch) +
                               " out of range (the plan has " +
                               Count(*options.num_micro_batches, "micro-batch") + ")");
        }
        max_micro_batch = std::max(max_micro_batch, cell.op.micro_batch);
        cells[r].push_back(cell);
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  const int chunks = options.num_chunks.value_or(static_cast<int>(stage_rank.size()));
  stage_rank.resize(chunks, -1);
  for (int c = 0; c < chunks; ++c) {
    if (stage_rank[c] < 0) {
      return Status::Error(src + ": stage " + std::to_string(c) + " has no ops");
    }
  }
  Schedule schedule;
  schedule.name = options.name;
  schedule.num_devices = rows;
  schedule.num_micro_batches = options.num_micro_batches.value_or(max_micro_batch + 1);
  bool one_chunk_per_device = chunks == rows;
  for (int c = 0; c < chunks && one_chunk_per_device; ++c) {
    one_chunk_per_device = stage_rank[c] == c;
  }
  if (!one_chunk_per_device) schedule.chunk_device = stage_rank;
  schedule.device_ops.resize(rows);
  for (int r = 0; r < rows; ++r) {
    for (Cell& cell : cells[r]) {
      cell.op.chunk = one_chunk_per_device ? 0 : cell.stage;
      schedule.device_ops[r].push_back(cell.op);
    }
  }
  if (Status s = ValidateSchedule(schedule); !s.ok()) return s.Prefixed(src);
  return schedule;
}

std::string ScheduleToCsv(const Schedule& schedule) {
  std::string out;
  for (int d = 0; d < static_cast<int>(schedule.device_ops.size()); ++d) {
    bool first = true;
    for (const PipelineOp& op : schedule.device_ops[d]) {
      if (!first) out += ',';
      first = false;
      out += OpText(op, OpChunk(schedule, d, op));
    }
    out += '\n';
  }
  return out;
}

}  // namespace pp
