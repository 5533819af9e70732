// Units used everywhere: times in milliseconds (double), sizes in bytes (uint64_t).
// Parsing and formatting of the human forms the CLI accepts ("80GiB", "2%").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace pp {

// Largest byte count a document may hold: every such integer reads back exactly as a double.
inline constexpr uint64_t kMaxBytes = uint64_t{1} << 53;

// Parses "85520809984", "80GiB", "80 GB", "512MiB", "1.5TiB" (binary and decimal suffixes,
// B optional). "none" (any case) returns std::nullopt meaning "no limit".
Result<std::optional<uint64_t>> ParseByteSize(std::string_view text);

// Parses "2%", "2.5 %" or "0.02" into a fraction (0.02). Must be finite and >= 0.
Result<double> ParseFraction(std::string_view text);

// "1.50 GiB", "512.0 MiB", "12 B": three significant digits, binary units.
std::string FormatBytes(uint64_t bytes);

// printf-style formatting of one number, e.g. Printf("%.2f %%", 12.3).
std::string Printf(const char* format, double value);

// "12.345 ms" style with `digits` decimals.
std::string FormatMs(double ms, int digits = 3);

// How much of a user's text one error message shows: a value or name, and a file path.
inline constexpr size_t kShownChars = 48;
inline constexpr size_t kShownPathChars = 160;

// The one way a message shows text a user gave (a flag's value, a document's string, a
// path): every byte that is not printable ASCII becomes an escape (\n, \r, \t, \\, \x1b),
// so the message stays one line, and the result is cut to at most `max_chars` characters
// (escapes count in full, none is split) followed by "..." when anything was left out.
std::string Abbreviate(std::string_view text, size_t max_chars = kShownChars);
// Abbreviate(text, max_chars) between double quotes (a '"' inside is escaped as \").
std::string Quote(std::string_view text, size_t max_chars = kShownChars);
// A path as messages show it: Abbreviate(path, kShownPathChars), unquoted.
std::string ShownPath(std::string_view path);

// Seconds as given, for messages: "0.001 s", "60 s", "86400 s" (up to 6 significant digits).
std::string FormatSeconds(double seconds);

}  // namespace pp
