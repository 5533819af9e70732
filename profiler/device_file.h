// A device file ("pp-partition.device/v1", docs/profiling.md): one device's DeviceSpec fields
// and its efficiency table as JSON, written by `profile --backend cuda --calibrate -o F` and
// read by `profile --device-file F` and `plan --device-file F` instead of a built-in device.
//
// Every field is required except "source", "fp8_flops_per_s" (default 0: no fp8),
// "efficiency.source" and "efficiency.gemm_points" (default none); unknown fields are errors.
// Errors name the file and the JSON path of the first bad field, on one line.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_util.h"
#include "core/status.h"
#include "profiler/device_table.h"

namespace pp {

inline constexpr std::string_view kDeviceFormat = "pp-partition.device/v1";
inline constexpr size_t kMaxGemmPoints = 4096;

// A device read from a file: owns the text and the measured points `spec` refers to, so it
// is neither copied nor moved (hold it by the shared pointer the loader returns).
struct LoadedDevice {
  LoadedDevice() = default;
  LoadedDevice(const LoadedDevice&) = delete;
  LoadedDevice& operator=(const LoadedDevice&) = delete;

  std::string key, name, source, efficiency_source;
  std::vector<GemmPoint> gemm_points;
  DeviceSpec spec;  // its string views and span point into the members above
};

// Parses and validates a device document; errors name the JSON path ("efficiency.memory: ...").
Result<std::shared_ptr<const LoadedDevice>> DeviceFromJson(const Json& doc);
// Reads a device file; errors are prefixed with the file name.
Result<std::shared_ptr<const LoadedDevice>> LoadDeviceFile(const std::string& path);
// The document of `device` (every field, measured points included).
Json DeviceToJson(const DeviceSpec& device);

}  // namespace pp
