// Device files (profiler/device_file.h): the round trip of every built-in device, measured
// points standing in for the model's rate, field-by-field rejections, and the CLI's
// --device-file on profile and plan (and --calibrate without a GPU).
#include "profiler/device_file.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/kernel_cost.h"
#include "profiler/analytic.h"
#include "profiler/efficiency.h"
#include "test_util.h"

namespace pp {
namespace {

using testing::RunTool;
using testing::TempDir;
using testing::WriteText;

void ExpectSameSpec(const DeviceSpec& a, const DeviceSpec& b) {
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.bf16_flops_per_s, b.bf16_flops_per_s);
  EXPECT_EQ(a.fp32_flops_per_s, b.fp32_flops_per_s);
  EXPECT_EQ(a.fp8_flops_per_s, b.fp8_flops_per_s);
  EXPECT_EQ(a.memory_bytes_per_s, b.memory_bytes_per_s);
  EXPECT_EQ(a.memory_bytes, b.memory_bytes);
  EXPECT_EQ(a.link_bytes_per_s, b.link_bytes_per_s);
  EXPECT_EQ(a.link_latency_ms, b.link_latency_ms);
  EXPECT_EQ(a.node_bus_bytes_per_s, b.node_bus_bytes_per_s);
  EXPECT_EQ(a.node_latency_ms, b.node_latency_ms);
  EXPECT_EQ(a.network_bus_bytes_per_s, b.network_bus_bytes_per_s);
  EXPECT_EQ(a.network_latency_ms, b.network_latency_ms);
  const DeviceEfficiency &x = a.efficiency, &y = b.efficiency;
  EXPECT_EQ(x.gemm_bf16, y.gemm_bf16);
  EXPECT_EQ(x.gemm_fp32, y.gemm_fp32);
  EXPECT_EQ(x.gemm_fp8, y.gemm_fp8);
  EXPECT_EQ(x.attention_forward_bf16, y.attention_forward_bf16);
  EXPECT_EQ(x.attention_backward_bf16, y.attention_backward_bf16);
  EXPECT_EQ(x.attention_forward_fp8, y.attention_forward_fp8);
  EXPECT_EQ(x.attention_backward_fp8, y.attention_backward_fp8);
  EXPECT_EQ(x.memory, y.memory);
  EXPECT_EQ(x.launch_ms, y.launch_ms);
  EXPECT_EQ(x.sm_count, y.sm_count);
  EXPECT_EQ(x.gemm_fixed_ms, y.gemm_fixed_ms);
  EXPECT_EQ(x.gemm_depth_k_bf16, y.gemm_depth_k_bf16);
  EXPECT_EQ(x.gemm_depth_k_fp32, y.gemm_depth_k_fp32);
  EXPECT_EQ(x.gemm_depth_k_fp8, y.gemm_depth_k_fp8);
  EXPECT_EQ(x.source, y.source);
  ASSERT_EQ(x.gemm_points.size(), y.gemm_points.size());
}

TEST(DeviceFileTest, EveryBuiltInDeviceRoundTrips) {
  for (const DeviceSpec& d : AllDevices()) {
    const Json doc = DeviceToJson(d);
    EXPECT_EQ(doc["format"], "pp-partition.device/v1");
    Result<std::shared_ptr<const LoadedDevice>> back = DeviceFromJson(doc);
    ASSERT_TRUE(back.ok()) << d.key << ": " << back.message();
    ExpectSameSpec((*back)->spec, d);
    EXPECT_EQ(DumpJson(DeviceToJson((*back)->spec)), DumpJson(doc));
  }
}

Json H100Doc() { return DeviceToJson(*FindDevice("h100")); }

TEST(DeviceFileTest, MeasuredPointsGiveTheRateOfTheNearestShape) {
  Json doc = H100Doc();
  doc["efficiency"]["gemm_points"] = Json::parse(R"([
      {"dtype": "bf16", "m": 1024, "n": 1024, "k": 1024, "batch": 1, "flops_per_s": 4e14},
      {"dtype": "bf16", "m": 8192, "n": 8192, "k": 8192, "batch": 1, "flops_per_s": 7e14},
      {"dtype": "fp32", "m": 8192, "n": 8192, "k": 8192, "batch": 1, "flops_per_s": 5e13}])");
  Result<std::shared_ptr<const LoadedDevice>> d = DeviceFromJson(doc);
  ASSERT_TRUE(d.ok()) << d.message();
  const DeviceSpec& s = (*d)->spec;
  ASSERT_EQ(s.efficiency.gemm_points.size(), 3u);
  // 6144^3 is nearer 8192^3 than 1024^3 in log space: 7e14 FLOP/s, compute-bound.
  const Kernel k = GemmKernel("g", 6144, 6144, 6144, 2);
  EXPECT_DOUBLE_EQ(KernelTimeMs(k, s, DType::kBf16, Direction::kForward, Rates::kAchieved),
                   1000 * 2.0 * 6144 * 6144 * 6144 / 7e14 + 0.0027);
  // 1536^3 is nearer 1024^3: 4e14.
  const Kernel small = GemmKernel("g", 1536, 1536, 1536, 2);
  EXPECT_DOUBLE_EQ(KernelTimeMs(small, s, DType::kBf16, Direction::kForward, Rates::kAchieved),
                   1000 * 2.0 * 1536 * 1536 * 1536 / 4e14 + 0.0027);
  // fp8 has no points: the table's fraction, waves and depth (k0 = 200), and its fixed time.
  EXPECT_DOUBLE_EQ(AchievedFlops(k, s, DType::kFp8, Direction::kForward),
                   1979e12 * 0.709 * WaveEfficiency(k, 132) * (6144.0 / (6144 + 200)));
  EXPECT_EQ(ProductFixedMs(k, s, DType::kFp8), 0.0023);
  EXPECT_EQ(ProductFixedMs(k, s, DType::kBf16), 0);  // the measured point holds it
  // And the points survive the round trip.
  Result<std::shared_ptr<const LoadedDevice>> again = DeviceFromJson(DeviceToJson(s));
  ASSERT_TRUE(again.ok());
  ASSERT_EQ((*again)->spec.efficiency.gemm_points.size(), 3u);
  EXPECT_EQ((*again)->spec.efficiency.gemm_points[2].dtype, DType::kFp32);
  EXPECT_EQ((*again)->spec.efficiency.gemm_points[1].flops_per_s, 7e14);
  EXPECT_EQ(DumpJson(DeviceToJson((*again)->spec)), DumpJson(DeviceToJson(s)));
}

// The file `profile --backend cuda --calibrate` wrote on an H200 (bench/data/h200-calibrated.json,
// 2026-12-04) loads, and each product it measured is timed at its own measured rate.
TEST(DeviceFileTest, ACalibrationMadeOnAnH200Loads) {
  Result<std::shared_ptr<const LoadedDevice>> d =
      LoadDeviceFile(std::string(PP_SOURCE_DIR) + "/bench/data/h200-calibrated.json");
  ASSERT_TRUE(d.ok()) << d.message();
  const DeviceSpec& s = (*d)->spec;
  EXPECT_EQ(s.name, "NVIDIA H200");
  EXPECT_EQ(s.efficiency.sm_count, 132);
  ASSERT_GE(s.efficiency.gemm_points.size(), 48u);
  for (const GemmPoint& p : s.efficiency.gemm_points) {
    const Kernel k = GemmKernel("g", p.m, p.k, p.n, 2);
    EXPECT_DOUBLE_EQ(KernelTimeMs(k, s, p.dtype, Direction::kForward, Rates::kAchieved),
                     1000 * 2 * p.m * p.n * p.k / p.flops_per_s + s.efficiency.launch_ms)
        << p.m << " x " << p.n << " x " << p.k;
  }
}

// The error of loading `doc`, or "" when it loads.
std::string ErrorOf(const Json& doc) {
  Result<std::shared_ptr<const LoadedDevice>> d = DeviceFromJson(doc);
  return d.ok() ? "" : d.message();
}

TEST(DeviceFileTest, EachBadFieldIsNamed) {
  struct Case {
    const char* what;
    std::function<void(Json&)> edit;
    const char* expect;
  };
  const Case cases[] = {
      {"format", [](Json& d) { d["format"] = "pp-partition.device/v0"; }, "format"},
      {"missing rate", [](Json& d) { d.erase("memory_bytes_per_s"); }, "memory_bytes_per_s"},
      {"negative", [](Json& d) { d["bf16_flops_per_s"] = -1; }, "bf16_flops_per_s"},
      {"zero memory", [](Json& d) { d["memory_bytes"] = 0; }, "memory_bytes"},
      {"text rate", [](Json& d) { d["node_bus_bytes_per_s"] = "fast"; }, "node_bus_bytes_per_s"},
      {"unknown", [](Json& d) { d["colour"] = "green"; }, "colour"},
      {"no efficiency", [](Json& d) { d.erase("efficiency"); }, "efficiency"},
      {"fraction", [](Json& d) { d["efficiency"]["gemm"]["bf16"] = 1.5; }, "efficiency.gemm.bf16"},
      {"attention fp32", [](Json& d) { d["efficiency"]["attention_forward"]["fp32"] = 0.5; },
       "efficiency.attention_forward.fp32"},
      {"memory", [](Json& d) { d["efficiency"]["memory"] = 0; }, "efficiency.memory"},
      {"sm_count", [](Json& d) { d["efficiency"]["sm_count"] = 1.5; }, "efficiency.sm_count"},
      {"fixed", [](Json& d) { d["efficiency"]["gemm_fixed_ms"] = -0.001; },
       "efficiency.gemm_fixed_ms"},
      {"depth", [](Json& d) { d["efficiency"]["gemm_depth_k"]["fp8"] = -1; },
       "efficiency.gemm_depth_k.fp8"},
      {"depth dtype", [](Json& d) { d["efficiency"]["gemm_depth_k"]["int8"] = 1; },
       "efficiency.gemm_depth_k.int8"},
      {"point dtype",
       [](Json& d) {
         d["efficiency"]["gemm_points"] =
             Json::parse(R"([{"dtype": "int4", "m": 1, "n": 1, "k": 1, "flops_per_s": 1}])");
       },
       "efficiency.gemm_points[0].dtype"},
      {"point rate",
       [](Json& d) {
         d["efficiency"]["gemm_points"] =
             Json::parse(R"([{"dtype": "bf16", "m": 1, "n": 1, "k": 1, "flops_per_s": 0}])");
       },
       "efficiency.gemm_points[0].flops_per_s"},
      {"key", [](Json& d) { d["key"] = ""; }, "key"},
  };
  ASSERT_EQ(ErrorOf(H100Doc()), "");
  for (const Case& c : cases) {
    Json doc = H100Doc();
    c.edit(doc);
    const std::string error = ErrorOf(doc);
    EXPECT_NE(error, "") << c.what;
    EXPECT_EQ(error.rfind(c.expect, 0), 0u) << c.what << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << c.what << ": " << error;
  }
  // A file written before the products' fixed time and depth existed loads without them.
  Json older = H100Doc();
  older["efficiency"].erase("gemm_fixed_ms");
  older["efficiency"].erase("gemm_depth_k");
  Result<std::shared_ptr<const LoadedDevice>> old_file = DeviceFromJson(older);
  ASSERT_TRUE(old_file.ok()) << old_file.message();
  EXPECT_EQ((*old_file)->spec.efficiency.gemm_fixed_ms, 0);
  EXPECT_EQ((*old_file)->spec.efficiency.gemm_depth_k_bf16, 0);
  // fp8 may be left out: no fp8.
  Json no_fp8 = H100Doc();
  no_fp8.erase("fp8_flops_per_s");
  Result<std::shared_ptr<const LoadedDevice>> d = DeviceFromJson(no_fp8);
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_FALSE(CheckDType((*d)->spec, DType::kFp8).ok());
}

TEST(DeviceFileTest, FileErrorsNameTheFile) {
  const std::string dir = TempDir();
  Json doc = H100Doc();
  doc["efficiency"]["launch_ms"] = -2;
  WriteText(dir + "/bad.json", DumpJson(doc));
  Result<std::shared_ptr<const LoadedDevice>> d = LoadDeviceFile(dir + "/bad.json");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("bad.json: efficiency.launch_ms"), std::string::npos) << d.message();
}

TEST(DeviceFileTest, ProfileAndPlanTakeADeviceFile) {
  const std::string dir = TempDir();
  const std::string file = dir + "/h100.json";
  WriteText(file, DumpJson(H100Doc()));
  const std::string model = std::string(PP_SOURCE_DIR) + "/models/gpt2-small.json";
  // The file of the h100 entry profiles exactly as --device h100.
  testing::CommandResult from_file =
      RunTool("profile " + model + " --device-file " + file + " --format json");
  testing::CommandResult from_table = RunTool("profile " + model + " --device h100 --format json");
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  ASSERT_EQ(from_table.exit_code, 0) << from_table.err;
  EXPECT_EQ(from_file.out, from_table.out);
  // Peak rates on request, faster than achieved.
  testing::CommandResult peak = RunTool("profile " + model + " --rates peak --format json");
  ASSERT_EQ(peak.exit_code, 0) << peak.err;
  Result<Json> pj = ParseJsonText(peak.out);
  Result<Json> aj = ParseJsonText(from_table.out);
  ASSERT_TRUE(pj.ok() && aj.ok());
  EXPECT_LT((*pj)["layers"][1]["forward_ms"].get<double>(),
            (*aj)["layers"][1]["forward_ms"].get<double>());
  testing::CommandResult bad_rates = RunTool("profile " + model + " --rates fast");
  EXPECT_EQ(bad_rates.exit_code, 2);
  EXPECT_NE(bad_rates.err.find("--rates"), std::string::npos) << bad_rates.err;
  // Both --device and --device-file: refused.
  testing::CommandResult both =
      RunTool("profile " + model + " --device a100 --device-file " + file);
  EXPECT_EQ(both.exit_code, 2);
  // A bad file: one line naming the file and the field, exit 2.
  Json doc = H100Doc();
  doc["efficiency"]["gemm"]["bf16"] = 2;
  WriteText(dir + "/bad.json", DumpJson(doc));
  testing::CommandResult bad = RunTool("profile " + model + " --device-file " + dir + "/bad.json");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bad.json: efficiency.gemm.bf16"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find('\n'), bad.err.size() - 1) << bad.err;
  // plan reads it at the one place it chooses the device.
  testing::CommandResult plan = RunTool("plan " + model +
                                        " --stages 2 --micro-batches 4 "
                                        "--device-file " +
                                        file + " --format json");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  testing::CommandResult plan_bad = RunTool("plan " + model +
                                            " --stages 2 --micro-batches 4 "
                                            "--device-file " +
                                            dir + "/bad.json");
  EXPECT_EQ(plan_bad.exit_code, 2);
  EXPECT_NE(plan_bad.err.find("bad.json: efficiency.gemm.bf16"), std::string::npos) << plan_bad.err;
  // fp8 on an A100 device file: refused in one line.
  WriteText(dir + "/a100.json", DumpJson(DeviceToJson(*FindDevice("a100"))));
  testing::CommandResult fp8 =
      RunTool("profile " + model + " --device-file " + dir + "/a100.json --dtype fp8");
  EXPECT_EQ(fp8.exit_code, 2);
  EXPECT_NE(fp8.err.find("fp8"), std::string::npos) << fp8.err;
}

TEST(DeviceFileTest, CalibrateWithoutAGpuSaysNoCudaDevice) {
  const std::string dir = TempDir();
  testing::CommandResult r =
      RunTool("profile --backend cuda --calibrate -o " + dir + "/device.json");
  if (r.exit_code == 0) GTEST_SKIP() << "a GPU is visible: calibration ran";
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("no CUDA device"), std::string::npos) << r.err;
  testing::CommandResult no_backend = RunTool("profile --calibrate -o " + dir + "/d.json");
  EXPECT_EQ(no_backend.exit_code, 2);
  EXPECT_NE(no_backend.err.find("--backend cuda"), std::string::npos) << no_backend.err;
}

}  // namespace
}  // namespace pp
