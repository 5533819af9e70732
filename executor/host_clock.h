// The clock of a device whose ops run on the host thread itself (the cpu backend, the tests'
// fakes): steady_clock marks per op, in ms from the step's start. Sized once at setup; marking
// never allocates. Used from the device's thread only.
#pragma once

#include <chrono>
#include <vector>

#include "executor/pipeline_device.h"

namespace pp {

class HostClock {
 public:
  void Resize(int ops) { spans_.assign(static_cast<size_t>(ops), OpSpan{}); }
  void StartStep() { step_start_ = std::chrono::steady_clock::now(); }
  void MarkStart(int index) { spans_[index].start_ms = Now(); }
  void MarkEnd(int index) { spans_[index].end_ms = Now(); }
  // The marks of ops 0..ops-1 of this step.
  void Read(int ops, std::vector<OpSpan>* spans) const {
    spans->assign(spans_.begin(), spans_.begin() + ops);
  }
  int size() const { return static_cast<int>(spans_.size()); }

 private:
  double Now() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                     step_start_)
        .count();
  }
  std::chrono::steady_clock::time_point step_start_;
  std::vector<OpSpan> spans_;
};

}  // namespace pp
