// Writes the seeds of device_file_fuzz into the folder its argument names: the device file of
// every device in the table (DeviceToJson), and the first one again with a measured point of
// each dtype, so that the fuzzer starts from documents the reader accepts.
#include <cstdio>
#include <fstream>
#include <string>

#include "profiler/device_file.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: device_file_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  bool first = true;
  for (const std::string_view key : {"h100", "h200", "a100", "l40s"}) {
    const pp::DeviceSpec* device = pp::FindDevice(key);
    if (device == nullptr) continue;
    pp::Json doc = pp::DeviceToJson(*device);
    std::ofstream(dir + "/" + std::string(key) + ".json") << doc.dump(1);
    if (first) {
      first = false;
      for (const char* dtype : {"bf16", "fp32", "fp8"}) {
        doc["efficiency"]["gemm_points"].push_back(
            {{"dtype", dtype}, {"m", 4096}, {"n", 4096}, {"k", 4096}, {"batch", 1},
             {"flops_per_s", 5e14}});
      }
      std::ofstream(dir + "/" + std::string(key) + "-points.json") << doc.dump(1);
    }
  }
  return 0;
}
