// Errors as values. Libraries return Status or Result<T>; only tool/ turns an error into an
// exit code. A message is one line meant for the user, e.g.
//   "models/x.json: layers[3].hidden: must be a positive integer (got -5)".
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace pp {

class Status {
 public:
  Status() = default;  // success
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message), true); }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

  // Returns this error with "prefix: " in front (for adding a file name or a field path).
  Status Prefixed(const std::string& prefix) const {
    return ok() ? *this : Error(prefix + ": " + message_);
  }

 private:
  Status(std::string message, bool failed) : message_(std::move(message)), failed_(failed) {}
  std::string message_;
  bool failed_ = false;
};

// A value or the error that prevented it.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}                 // NOLINT: implicit by design
  Result(Status error) : error_(std::move(error)) {}            // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return error_; }
  const std::string& message() const { return error_.message(); }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status error_;
};

}  // namespace pp

// Returns early with the error when `expr` (a Status) failed.
#define PP_RETURN_IF_ERROR(expr)           \
  do {                                     \
    ::pp::Status pp_status_ = (expr);      \
    if (!pp_status_.ok()) return pp_status_; \
  } while (0)
