// A one-line progress bar on stderr for long measurements; silent when disabled (the caller
// enables it only when stderr is a terminal).
#pragma once

#include <cstdio>
#include <string>

namespace pp {

class ProgressBar {
 public:
  ProgressBar(bool enabled, int total) : enabled_(enabled), total_(total) {}
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Shows that item `done` (0-based) of total is starting, named `what`.
  void Update(int done, const std::string& what) {
    if (!enabled_ || total_ <= 0) return;
    constexpr int kWidth = 30;
    const int filled = kWidth * done / total_;
    std::fprintf(stderr, "\r[%s%s] %d/%d %-24.24s", std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), done, total_, what.c_str());
    std::fflush(stderr);
  }
  void Done() {
    if (enabled_ && total_ > 0) std::fprintf(stderr, "\r%*s\r", 70, "");
  }

 private:
  bool enabled_;
  int total_;
};

}  // namespace pp
