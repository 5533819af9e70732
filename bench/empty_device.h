// A pipeline device that does no math: each op receives its input and sends its output, one
// float each, and is timed on the host clock. The benchmarks use it to measure what the chunk
// runner and a transport cost per op.
#pragma once

#include <cstdint>
#include <vector>

#include "executor/host_clock.h"
#include "executor/pipeline_device.h"
#include "executor/transport.h"

namespace pp::bench {

class EmptyDevice final : public PipelineDevice {
 public:
  explicit EmptyDevice(Transport* transport) : transport_(transport) {}
  Status Setup(const DeviceChunks& layout) override {
    clock_.Resize(layout.ops_per_step);
    return Status::Ok();
  }
  bool PassesGradient(int) const override { return true; }
  Status BeginStep(int) override {
    clock_.StartStep();
    return Status::Ok();
  }
  Status Receive(const OpCall& call) override {
    float v = 0;
    return transport_->Receive(*call.input, &v, 1, 10);
  }
  Status MarkStart(const OpCall& call) override {
    clock_.MarkStart(call.index);
    return Status::Ok();
  }
  Status MarkEnd(const OpCall& call) override {
    clock_.MarkEnd(call.index);
    return Status::Ok();
  }
  Status Forward(const OpCall&) override { return Status::Ok(); }
  Status Recompute(const OpCall&) override { return Status::Ok(); }
  Status Backward(const OpCall&) override { return Status::Ok(); }
  Status BackwardInput(const OpCall&) override { return Status::Ok(); }
  Status BackwardWeight(const OpCall&) override { return Status::Ok(); }
  Status Send(const OpCall& call) override {
    const float v = 0;
    return transport_->Send(*call.output, &v, 1);
  }
  Status EndStep(int ops, std::vector<OpSpan>* spans, double* loss) override {
    clock_.Read(ops, spans);
    *loss = 0;
    return Status::Ok();
  }
  uint64_t allocated_bytes() const override { return 0; }
  void CopyGradients(std::vector<std::vector<float>>*,
                     std::vector<std::vector<float>>*) const override {}

 private:
  Transport* transport_;
  HostClock clock_;
};

}  // namespace pp::bench
