// Reading and writing the project's JSON documents safely.
//
// Reading: ParseJsonDocument rejects oversized or deeply nested text before parsing, so a
// hostile file costs one linear scan. FieldReader walks one JSON object and records the first
// problem as "<path>: <problem>", where path is a JSON path such as layers[3].hidden.
// Writing: DumpJson gives byte-identical text for equal documents (insertion-ordered keys,
// shortest round-trip doubles). Output files (atomic writes, sets of files written together,
// checks of output paths) are core/output_files.h, included here for every writer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/output_files.h"
#include "core/status.h"

namespace pp {

using Json = nlohmann::ordered_json;

inline constexpr size_t kMaxDocumentBytes = size_t{1} << 30;  // 1 GiB
inline constexpr int kMaxJsonDepth = 64;
inline constexpr size_t kMaxNameChars = 256;

// Parses `text`; errors read "invalid JSON at line L, column C: ..." (no file name).
Result<Json> ParseJsonText(std::string_view text);

// Reads and parses a file; errors are prefixed with the file name. "-" reads standard input.
Result<Json> ReadJsonFile(const std::string& path);

// Two-space indented, trailing newline.
std::string DumpJson(const Json& doc);

// Quotes a JSON value for an error message, shortened.
std::string DescribeValue(const Json& value);

// Reads the fields of one JSON object. Each getter returns a default after a failure and the
// first failure is kept; check ok() once after reading every field.
class FieldReader {
 public:
  // `object` must outlive the reader. `path` is this object's JSON path ("" for the root).
  FieldReader(const Json& object, std::string path);

  bool ok() const { return error_.ok(); }
  const Status& status() const { return error_; }
  std::string PathOf(std::string_view key) const;

  // Records a failure for `key` (first one wins).
  void Fail(std::string_view key, const std::string& problem);
  const Json* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }

  std::string String(std::string_view key);
  std::optional<std::string> OptString(std::string_view key);
  // 1..256 printable characters.
  std::string Name(std::string_view key);
  // An integer in [min, max].
  int64_t Int(std::string_view key, int64_t min, int64_t max);
  std::optional<int64_t> OptInt(std::string_view key, int64_t min, int64_t max);
  // A byte count: an integer in [0, 2^53].
  uint64_t Bytes(std::string_view key);
  std::optional<uint64_t> OptBytes(std::string_view key);
  // A finite number >= 0 (a time in ms, for instance).
  double NonNegative(std::string_view key);
  std::optional<double> OptNonNegative(std::string_view key);
  // A finite number > 0.
  double Positive(std::string_view key);
  bool Bool(std::string_view key, bool default_value);
  // An array (possibly empty); nullptr after a failure.
  const Json* Array(std::string_view key);
  // An object; nullptr after a failure.
  const Json* Object(std::string_view key);
  // Checks "format" equals `expected`.
  void Format(std::string_view expected);

 private:
  const Json* Required(std::string_view key);
  const Json& object_;
  std::string path_;
  Status error_;
};

// Validates a name: 1..256 printable ASCII characters. Returns the problem, or "" when fine.
std::string NameProblem(std::string_view name);

}  // namespace pp
