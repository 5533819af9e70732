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

// The process umask, read once. /proc/self/status states it without changing it; where that is
// unavailable, umask() must set a value to return the old one, which is done once, before
// any output file is written.
mode_t ProcessUmask() {
  static const mode_t mask = [] {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Umask:", 0) != 0) continue;
      try {
        return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8) & 0777);
      } catch (const std::exception&) {
        break;
      }
    }
    const mode_t old = ::umask(022);
    ::umask(old);
    return old;
  }();
  return mask;
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

namespace {

// Temporary files being written, for the SIGINT/SIGTERM handler to remove. A slot is claimed
// (kClaimed) while its path is copied in, and only a kPending slot's path is read by the
// handler, which does nothing but unlink and re-raise (async-signal-safe).
constexpr int kFree = 0, kClaimed = 1, kPending = 2;
constexpr int kMaxPendingFiles = 64;
struct PendingSlot {
  std::atomic<int> state{kFree};
  char path[4096] = {};
};
PendingSlot g_pending[kMaxPendingFiles];
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void RemovePendingOnSignal(int sig) {
  for (PendingSlot& slot : g_pending) {
    if (slot.state.load() == kPending) ::unlink(slot.path);
  }
  // SA_RESETHAND restored the default action: the signal ends the process as it would have.
  ::raise(sig);
}

// Installs the handler for SIGINT and SIGTERM where their action is the default (a signal the
// process ignores stays ignored).
void InstallCleanupHandlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGINT, SIGTERM}) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;
      struct sigaction action {};
      action.sa_handler = RemovePendingOnSignal;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESETHAND;
      ::sigaction(sig, &action, nullptr);
    }
  });
}

// Writes `content` to a new temporary file beside `path`, with the mode any newly created file
// gets; `*temporary` is its name, tracked until RemoveTemporary or the rename.
Status WriteTemporary(const std::string& path, const std::string& content, std::string* temporary,
                      int* slot) {
  std::string tmpl = path + ".tmp.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) return Status::Error(path + ": cannot create: " + std::strerror(errno));
  *temporary = name.data();
  *slot = TrackTemporaryFile(*temporary);
  auto fail = [&](const std::string& what) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    std::remove(name.data());
    UntrackTemporaryFile(*slot);
    return Status::Error(path + ": " + what + ": " + why);
  };
  // mkstemp creates the file 0600; give it the mode any newly created file gets.
  if (::fchmod(fd, static_cast<mode_t>(0666) & ~ProcessUmask()) != 0) {
    return fail("cannot set permissions");
  }
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write failed");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(name.data());
    UntrackTemporaryFile(*slot);
    return Status::Error(path + ": cannot write: " + why);
  }
  return Status::Ok();
}

}  // namespace

int TrackTemporaryFile(const std::string& path) {
  if (path.size() >= sizeof(PendingSlot::path)) return -1;
  InstallCleanupHandlers();
  for (int i = 0; i < kMaxPendingFiles; ++i) {
    int expected = kFree;
    if (!g_pending[i].state.compare_exchange_strong(expected, kClaimed)) continue;
    std::memcpy(g_pending[i].path, path.c_str(), path.size() + 1);
    g_pending[i].state.store(kPending);
    return i;
  }
  return -1;
}

void UntrackTemporaryFile(int slot) {
  if (slot >= 0 && slot < kMaxPendingFiles) g_pending[slot].state.store(kFree);
}

Status CheckOutputPath(const std::string& path) {
  if (path.empty() || path == "-") return Status::Ok();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::Error(path + ": cannot write: it is a folder");
  }
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (::stat(folder.c_str(), &st) != 0) {
    return Status::Error(path + ": cannot write: folder " + folder + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return Status::Error(path + ": cannot write: " + folder + " is not a folder");
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    return Status::Error(path + ": cannot write: folder " + folder + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status CheckOutputPaths(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) PP_RETURN_IF_ERROR(CheckOutputPath(path));
  return Status::Ok();
}

void OutputSet::Add(std::string path, std::string content) {
  if (path.empty()) return;
  files_.push_back({std::move(path), std::move(content)});
}

Status OutputSet::Commit() {
  struct Staged {
    const std::string* path;
    std::string temporary;
    int slot = -1;
  };
  std::vector<Staged> staged;
  std::vector<const std::string*> to_stdout;
  auto discard = [&staged](size_t from) {
    for (size_t i = from; i < staged.size(); ++i) {
      std::remove(staged[i].temporary.c_str());
      UntrackTemporaryFile(staged[i].slot);
    }
  };
  for (const auto& [path, content] : files_) {
    if (path == "-") {
      to_stdout.push_back(&content);
      continue;
    }
    Staged s{&path, "", -1};
    if (Status st = WriteTemporary(path, content, &s.temporary, &s.slot); !st.ok()) {
      discard(0);
      return st;
    }
    staged.push_back(std::move(s));
  }
  if (before_rename_) before_rename_();
  for (size_t i = 0; i < staged.size(); ++i) {
    if (std::rename(staged[i].temporary.c_str(), staged[i].path->c_str()) != 0) {
      const std::string why = std::strerror(errno);
      discard(i);
      return Status::Error(*staged[i].path + ": cannot write: " + why);
    }
    UntrackTemporaryFile(staged[i].slot);
  }
  for (const std::string* content : to_stdout) std::cout << *content;
  std::cout << std::flush;
  if (!std::cout) return Status::Error("stdout: write failed");
  files_.clear();
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& content) {
  OutputSet set;
  set.Add(path, content);
  return set.Commit();
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
