// What every harness of fuzz/ shares: libFuzzer's entry point hands over raw bytes, which the
// harnesses read as text. A harness passes the bytes to one reader and ignores the answer: any
// input must give a value or an error, never a crash, an exception or undefined behaviour.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pp {

inline std::string_view FuzzText(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace pp
