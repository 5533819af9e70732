// The devices the analytic backend can model: peak rates, memory and the link between two
// neighbouring pipeline stages, each taken from the vendor's datasheet (see `source`).
//
// Units: FLOP/s, bytes/s, bytes, milliseconds. Rates are dense (no structured sparsity) and
// per GPU; link bandwidth is per direction, as one stage sends to the next.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pp {

struct DeviceSpec {
  std::string_view key;         // lowercase, as given to --device ("h100")
  std::string_view name;        // as the CUDA runtime names the device
  double bf16_flops_per_s = 0;  // dense tensor-core bf16 with fp32 accumulation
  double fp32_flops_per_s = 0;  // fp32 without tensor cores
  double memory_bytes_per_s = 0;
  uint64_t memory_bytes = 0;
  double link_bytes_per_s = 0;  // one direction between two GPUs
  double link_latency_ms = 0;
  // Collectives (core/parallelism.h CollectiveMs): the bus bandwidth a group reaches inside
  // one node (NVLink / NVSwitch) and across nodes (the network, per GPU), and the latency per
  // ring step on each.
  double node_bus_bytes_per_s = 0;
  double node_latency_ms = 0;
  double network_bus_bytes_per_s = 0;
  double network_latency_ms = 0;
  std::string_view source;  // where the numbers come from
};

// The table, in a fixed order. Entries live for the whole program.
std::span<const DeviceSpec> AllDevices();

// The entry whose key equals `key` (exactly, lowercase), or nullptr.
const DeviceSpec* FindDevice(std::string_view key);

// "h100, h200, a100, l40s": the keys, for error messages.
std::string KnownDeviceKeys();

}  // namespace pp
