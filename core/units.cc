#include "core/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>

namespace pp {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads a leading decimal number; returns the count of characters used (0 if none).
size_t ReadNumber(const std::string& s, double* out) {
  size_t i = 0;
  bool digits = false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, digits = true;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, digits = true;
  }
  if (!digits) return 0;
  *out = std::stod(s.substr(0, i));
  return i;
}

}  // namespace

Result<std::optional<uint64_t>> ParseByteSize(std::string_view text) {
  const std::string s = Lower(Trim(text));
  if (s == "none") return std::optional<uint64_t>();
  double value = 0;
  const size_t used = ReadNumber(s, &value);
  const std::string bad = "'" + Abbreviate(text) +
                          "' is not a size (examples: 80GiB, 85520809984, 512MB, none)";
  if (used == 0) return Status::Error(bad);
  const std::string unit = Trim(std::string_view(s).substr(used));
  struct Unit {
    const char* name;
    double factor;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},         {"b", 1},          {"k", 1e3},          {"kb", 1e3},
      {"m", 1e6},      {"mb", 1e6},       {"g", 1e9},          {"gb", 1e9},
      {"t", 1e12},     {"tb", 1e12},      {"kib", 1024.0},     {"mib", 1048576.0},
      {"gib", 1073741824.0}, {"tib", 1099511627776.0}, {"ki", 1024.0}, {"mi", 1048576.0},
      {"gi", 1073741824.0},  {"ti", 1099511627776.0}};
  for (const Unit& u : kUnits) {
    if (unit == u.name) {
      const double bytes = std::round(value * u.factor);
      if (!(bytes >= 1) || bytes > static_cast<double>(kMaxBytes)) {
        return Status::Error("'" + Abbreviate(text) + "' must be between 1 byte and 8 PiB");
      }
      return std::optional<uint64_t>(static_cast<uint64_t>(bytes));
    }
  }
  return Status::Error(bad);
}

Result<double> ParseFraction(std::string_view text) {
  std::string s = Trim(text);
  bool percent = false;
  if (!s.empty() && s.back() == '%') {
    percent = true;
    s = Trim(std::string_view(s).substr(0, s.size() - 1));
  }
  double value = 0;
  const size_t used = ReadNumber(s, &value);
  if (used == 0 || used != s.size() || !std::isfinite(value)) {
    return Status::Error("'" + Abbreviate(text) + "' is not a tolerance (examples: 2%, 0.02)");
  }
  return percent ? value / 100.0 : value;
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024.0 && unit < 6) v /= 1024.0, ++unit;
  char buf[64];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v,
                  kNames[unit]);
  }
  return buf;
}

std::string Printf(const char* format, double value) {
  char buf[128];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

std::string FormatMs(double ms, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f ms", digits, ms);
  return buf;
}

namespace {

std::string Escaped(std::string_view text, size_t max_chars, bool quote_marks) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    std::string piece;
    switch (c) {
      case '\n': piece = "\\n"; break;
      case '\r': piece = "\\r"; break;
      case '\t': piece = "\\t"; break;
      case '\\': piece = "\\\\"; break;
      default:
        if (c == '"' && quote_marks) {
          piece = "\\\"";
        } else if (c >= 0x20 && c < 0x7f) {
          piece = std::string(1, static_cast<char>(c));
        } else {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          piece = buf;
        }
    }
    if (out.size() + piece.size() > max_chars) return out + "...";
    out += piece;
  }
  return out;
}

}  // namespace

std::string Abbreviate(std::string_view text, size_t max_chars) {
  return Escaped(text, max_chars, false);
}

std::string Quote(std::string_view text, size_t max_chars) {
  return "\"" + Escaped(text, max_chars, true) + "\"";
}

std::string ShownPath(std::string_view path) { return Abbreviate(path, kShownPathChars); }

std::string FormatSeconds(double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g s", seconds);
  return buf;
}

}  // namespace pp
