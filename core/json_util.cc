#include "core/json_util.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <vector>

#include "core/units.h"

namespace pp {
namespace {

// Nesting depth of JSON text, ignoring brackets inside strings. Stops early past `limit`.
int NestingDepth(std::string_view text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) max_depth = depth;
      if (max_depth > limit) return max_depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

// Line and column (1-based) of byte offset `pos`.
void LineColumn(std::string_view text, size_t pos, size_t* line, size_t* column) {
  *line = 1;
  *column = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) {
    if (text[i] == '\n') ++*line, *column = 1;
    else ++*column;
  }
}

std::string TypeName(const Json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number_float()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_null()) return "null";
  if (v.is_array()) return "an array";
  return "an object";
}


}  // namespace

Result<Json> ParseJsonText(std::string_view text) {
  if (text.size() > kMaxDocumentBytes) {
    return Status::Error("document is larger than 1 GiB");
  }
  if (NestingDepth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return Status::Error("document nests deeper than " + std::to_string(kMaxJsonDepth) +
                         " levels");
  }
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    size_t line = 0, column = 0;
    LineColumn(text, e.byte == 0 ? 0 : e.byte - 1, &line, &column);
    std::string what = e.what();
    // nlohmann's text reads "[json.exception.parse_error.101] parse error at line 1, column
    // 5: syntax error while parsing value - <detail>"; keep only the detail.
    const size_t dash = what.rfind(" - ");
    std::string detail = dash == std::string::npos ? what : what.substr(dash + 3);
    return Status::Error("invalid JSON at line " + std::to_string(line) + ", column " +
                         std::to_string(column) + ": " + Abbreviate(detail, 120));
  } catch (const std::exception& e) {
    return Status::Error(std::string("invalid JSON: ") + Abbreviate(e.what(), 120));
  }
}

Result<Json> ReadJsonFile(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::Error(ShownPath(path) + ": cannot open: " + std::strerror(errno));
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    if (size < 0) return Status::Error(ShownPath(path) + ": cannot read");
    if (static_cast<uint64_t>(size) > kMaxDocumentBytes) {
      return Status::Error(ShownPath(path) + ": file is larger than 1 GiB");
    }
    in.seekg(0, std::ios::beg);
    text.resize(static_cast<size_t>(size));
    if (size > 0 && !in.read(text.data(), size)) {
      return Status::Error(ShownPath(path) + ": cannot read");
    }
  }
  Result<Json> doc = ParseJsonText(text);
  if (!doc.ok()) return doc.status().Prefixed(ShownPath(path));
  return doc;
}

std::string DumpJson(const Json& doc) {
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}


std::string DescribeValue(const Json& value) {
  if (value.is_string()) return Quote(value.get<std::string>());
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return Abbreviate(value.dump(), 48);
}

std::string NameProblem(std::string_view name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > kMaxNameChars) {
    return "is " + std::to_string(name.size()) + " characters long; at most 256 are allowed";
  }
  for (char c : name) {
    if (!std::isprint(static_cast<unsigned char>(c))) {
      return "must hold printable characters only";
    }
  }
  return "";
}

FieldReader::FieldReader(const Json& object, std::string path)
    : object_(object), path_(std::move(path)) {
  if (!object_.is_object()) {
    error_ = Status::Error((path_.empty() ? std::string("document") : path_) +
                           ": must be an object, got " + TypeName(object_));
  }
}

std::string FieldReader::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void FieldReader::Fail(std::string_view key, const std::string& problem) {
  if (error_.ok()) error_ = Status::Error(PathOf(key) + ": " + problem);
}

const Json* FieldReader::Find(std::string_view key) const {
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(std::string(key));
  return it == object_.end() ? nullptr : &*it;
}

const Json* FieldReader::Required(std::string_view key) {
  const Json* v = Find(key);
  if (v == nullptr) Fail(key, "is missing");
  return v;
}

std::string FieldReader::String(std::string_view key) {
  const Json* v = Required(key);
  if (v == nullptr) return "";
  if (!v->is_string()) {
    Fail(key, "must be a string, got " + TypeName(*v));
    return "";
  }
  return v->get<std::string>();
}

std::optional<std::string> FieldReader::OptString(std::string_view key) {
  if (!Has(key)) return std::nullopt;
  return String(key);
}

std::string FieldReader::Name(std::string_view key) {
  std::string s = String(key);
  if (!ok()) return s;
  const std::string problem = NameProblem(s);
  if (!problem.empty()) Fail(key, "name " + problem);
  return s;
}

int64_t FieldReader::Int(std::string_view key, int64_t min, int64_t max) {
  const Json* v = Required(key);
  if (v == nullptr) return min;
  int64_t value = 0;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    value = u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    value = v->get<int64_t>();
  } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
             v->get<double>() == std::floor(v->get<double>()) &&
             std::fabs(v->get<double>()) < 9.2e18) {
    value = static_cast<int64_t>(v->get<double>());
  } else {
    Fail(key, "must be an integer, got " + TypeName(*v) +
                  (v->is_primitive() ? " " + DescribeValue(*v) : ""));
    return min;
  }
  if (value < min || value > max) {
    std::string range = min == 1 ? "a positive integer" : "an integer";
    Fail(key, "must be " + range + " between " + std::to_string(min) + " and " +
                  std::to_string(max) + " (got " + DescribeValue(*v) + ")");
    return min;
  }
  return value;
}

std::optional<int64_t> FieldReader::OptInt(std::string_view key, int64_t min, int64_t max) {
  if (!Has(key)) return std::nullopt;
  return Int(key, min, max);
}

uint64_t FieldReader::Bytes(std::string_view key) {
  const Json* v = Required(key);
  if (v == nullptr) return 0;
  if (v->is_number_float() || !v->is_number()) {
    Fail(key, "must be a whole number of bytes, got " + TypeName(*v) +
                  (v->is_primitive() ? " " + DescribeValue(*v) : ""));
    return 0;
  }
  if (v->is_number_integer() && !v->is_number_unsigned() && v->get<int64_t>() < 0) {
    Fail(key, "must not be negative (got " + DescribeValue(*v) + ")");
    return 0;
  }
  const uint64_t value = v->get<uint64_t>();
  if (value > kMaxBytes) {
    Fail(key, "is over 2^53 bytes (got " + DescribeValue(*v) + ")");
    return 0;
  }
  return value;
}

std::optional<uint64_t> FieldReader::OptBytes(std::string_view key) {
  if (!Has(key)) return std::nullopt;
  return Bytes(key);
}

double FieldReader::NonNegative(std::string_view key) {
  const Json* v = Required(key);
  if (v == nullptr) return 0;
  if (!v->is_number()) {
    Fail(key, "must be a number, got " + TypeName(*v) +
                  (v->is_primitive() ? " " + DescribeValue(*v) : ""));
    return 0;
  }
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < 0) {
    Fail(key, "must be a finite number >= 0 (got " + DescribeValue(*v) + ")");
    return 0;
  }
  return d;
}

std::optional<double> FieldReader::OptNonNegative(std::string_view key) {
  if (!Has(key)) return std::nullopt;
  return NonNegative(key);
}

double FieldReader::Positive(std::string_view key) {
  const double d = NonNegative(key);
  if (ok() && !(d > 0)) Fail(key, "must be greater than 0");
  return d;
}

bool FieldReader::Bool(std::string_view key, bool default_value) {
  const Json* v = Find(key);
  if (v == nullptr) return default_value;
  if (!v->is_boolean()) {
    Fail(key, "must be true or false, got " + TypeName(*v));
    return default_value;
  }
  return v->get<bool>();
}

const Json* FieldReader::Array(std::string_view key) {
  const Json* v = Required(key);
  if (v != nullptr && !v->is_array()) {
    Fail(key, "must be an array, got " + TypeName(*v));
    return nullptr;
  }
  return v;
}

const Json* FieldReader::Object(std::string_view key) {
  const Json* v = Required(key);
  if (v != nullptr && !v->is_object()) {
    Fail(key, "must be an object, got " + TypeName(*v));
    return nullptr;
  }
  return v;
}

void FieldReader::Format(std::string_view expected) {
  const std::string got = String("format");
  if (ok() && got != expected) {
    Fail("format", "unknown format " + DescribeValue(Json(got)) + "; expected \"" +
                       std::string(expected) + "\"");
  }
}

}  // namespace pp
