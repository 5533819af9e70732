#include "profiler/device_table.h"

#include <string>

namespace pp {
namespace {

// The collective bandwidths are provisional (nccl-tests orders of magnitude) until the
// efficiency model gives each its source.
// The link latencies are not datasheet figures: they are the order of magnitude of a small
// device-to-device copy (about 10 us over NVLink, 20 us over PCIe) and only matter for
// small activations.
constexpr DeviceSpec kDevices[] = {
    {
        .key = "h100",
        .name = "NVIDIA H100 80GB HBM3",
        .bf16_flops_per_s = 989.4e12,
        .fp32_flops_per_s = 66.9e12,
        .memory_bytes_per_s = 3.35e12,
        .memory_bytes = 85520809984,
        .link_bytes_per_s = 4.5e11,
        .link_latency_ms = 0.01,
        .node_bus_bytes_per_s = 3.6e11,
        .node_latency_ms = 0.008,
        .network_bus_bytes_per_s = 4.5e10,
        .network_latency_ms = 0.015,
        .source = "NVIDIA H100 Tensor Core GPU datasheet, SXM5 column: 1979 TFLOPS bf16 "
                  "with sparsity (989.4 dense), 67 TFLOPS fp32 (66.9 in the H100 "
                  "architecture whitepaper), 3.35 TB/s HBM3, NVLink 900 GB/s (450 GB/s "
                  "each way); memory as the CUDA runtime reports it for the 80 GB part",
    },
    {
        .key = "h200",
        .name = "NVIDIA H200",
        .bf16_flops_per_s = 989.4e12,
        .fp32_flops_per_s = 66.9e12,
        .memory_bytes_per_s = 4.8e12,
        .memory_bytes = 141000000000,
        .link_bytes_per_s = 4.5e11,
        .link_latency_ms = 0.01,
        .node_bus_bytes_per_s = 3.6e11,
        .node_latency_ms = 0.008,
        .network_bus_bytes_per_s = 4.5e10,
        .network_latency_ms = 0.015,
        .source = "NVIDIA H200 Tensor Core GPU datasheet, SXM column: same compute as the "
                  "H100 SXM (989.4 TFLOPS dense bf16, 66.9 TFLOPS fp32), 141 GB HBM3e at "
                  "4.8 TB/s, NVLink 900 GB/s (450 GB/s each way); memory is the "
                  "datasheet's decimal 141 GB",
    },
    {
        .key = "a100",
        .name = "NVIDIA A100-SXM4-80GB",
        .bf16_flops_per_s = 312e12,
        .fp32_flops_per_s = 19.5e12,
        .memory_bytes_per_s = 2.039e12,
        .memory_bytes = 80000000000,
        .link_bytes_per_s = 3e11,
        .link_latency_ms = 0.01,
        .node_bus_bytes_per_s = 2.3e11,
        .node_latency_ms = 0.008,
        .network_bus_bytes_per_s = 2.2e10,
        .network_latency_ms = 0.015,
        .source = "NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM column: 312 TFLOPS "
                  "bf16 dense, 19.5 TFLOPS fp32, 2039 GB/s HBM2e, third-generation NVLink "
                  "600 GB/s (300 GB/s each way); memory is the datasheet's decimal 80 GB "
                  "(the device reports somewhat more)",
    },
    {
        .key = "l40s",
        .name = "NVIDIA L40S",
        .bf16_flops_per_s = 362.05e12,
        .fp32_flops_per_s = 91.6e12,
        .memory_bytes_per_s = 8.64e11,
        .memory_bytes = 48000000000,
        .link_bytes_per_s = 3.2e10,
        .link_latency_ms = 0.02,
        .node_bus_bytes_per_s = 2.4e10,
        .node_latency_ms = 0.02,
        .network_bus_bytes_per_s = 2.2e10,
        .network_latency_ms = 0.015,
        .source = "NVIDIA L40S datasheet: 733 TFLOPS bf16 with sparsity (362.05 dense), "
                  "91.6 TFLOPS fp32, 48 GB GDDR6 at 864 GB/s; no NVLink, so stages talk "
                  "over PCIe 4.0 x16 (64 GB/s both ways, 32 GB/s each way); memory is the "
                  "datasheet's decimal 48 GB",
    },
};

}  // namespace

std::span<const DeviceSpec> AllDevices() { return kDevices; }

const DeviceSpec* FindDevice(std::string_view key) {
  for (const DeviceSpec& d : kDevices) {
    if (d.key == key) return &d;
  }
  return nullptr;
}

std::string KnownDeviceKeys() {
  std::string keys;
  for (const DeviceSpec& d : kDevices) {
    if (!keys.empty()) keys += ", ";
    keys += d.key;
  }
  return keys;
}

}  // namespace pp
