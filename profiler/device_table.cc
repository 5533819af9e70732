#include "profiler/device_table.h"

#include <string>

namespace pp {
namespace {

// Sources of the achieved rates (docs/cost-model.md "Efficiency" gives each formula):
// [MAMF] S. Bekman, Machine Learning Engineering, compute/accelerator/README.md, "Maximum
//   Achievable Matmul FLOPS comparison table" (github.com/stas00/ml-engineering): the best
//   torch.matmul TFLOPS over a search of shapes, mean of 100 runs after 50 warm-up runs.
// [FA2] T. Dao, FlashAttention-2 (arXiv 2307.08691): 50-73 % of the A100's peak.
// [FA3] J. Shah et al., FlashAttention-3 (arXiv 2407.08608): H100 FP16 forward up to 740
//   TFLOPS/s (75 %, at head dimension 256), FP8 close to 1.2 PFLOPS/s.
// [FA3-128] pytorch/benchmark commit ff65cb6752 (pull request 2391, 2024-07), measured output
//   of FlashAttention-3's forward on an H100 at head dimension 128 with the FA3 paper's
//   sizing (batch x sequence 16k, 16 heads): 590.2 TFLOPS at sequence 4096 (565.5 at 2048,
//   620.7 at 16384). Head dimension 128 is what Llama, Qwen, Mixtral and GPT-3 use.
// [NCCL212] NVIDIA/nccl-tests issue 212, maintainer's answer: NVLink4 line rate 450 GB/s,
//   about 20 % protocol overhead, 370 GB/s bus bandwidth for rings (all-gather,
//   reduce-scatter, NCCL_ALGO=RING); NVIDIA/nccl issue 1455 measured 365-370 GB/s ring on
//   8 H100 SXM.
// [NCCL149] NVIDIA/nccl-tests issue 149, maintainer's answer: 12 NVLink3 links of about
//   20 GB/s effective each, limited to about 230 GB/s bus bandwidth on A100.
// [NET-HDR] NVIDIA/nccl issue 412 (maintainer: 24 GB/s inter-node per 200 Gb/s HDR NIC) and
//   issue 1576 quoting issue 812 (DGX A100, 8 x 200 Gb/s: 192 GB/s all-reduce bus bandwidth,
//   24 GB/s per GPU).
// [NET-NDR] NVIDIA/nccl-tests issue 290 (maintainer: 46-48 GB/s per 400 Gb/s NDR NIC) and
//   issue 267 (48-49 GB/s per CX-7 NIC); DGX H100 has one NDR NIC per GPU.
// [NCCL-LAT] NCCL's tuning model (src/graph/tuning.cc), ring algorithm, Simple protocol:
//   3.4 us per NVLink step, 9.6 us per network step.
// [BW] mli/transformers-benchmarks issue 4: an 80 GB A800 (A100-class HBM2e) streams
//   1727 GB/s of its 1935 GB/s, 89 %; no H100 measurement was found, so H100 and H200 use
//   the same fraction until calibrated.
// [LAUNCH] ahrefs/ocannl issue 488: asynchronous enqueue of one kernel 2.6-2.8 us (CUDA 13).
// [XLA-SWEEP] OpenXLA's GEMM cost model table, xla/service/gpu/model/matmul_interpolator_data.h
//   (2025-26), its "sm_90" entries: measured bf16 x bf16 -> bf16 products on an H100 over
//   batch {1, 2, 4} x m, n, k in {256 ... 4096}. Its fp8 entries reach up to 2,593 TFLOPS,
//   past the 1,979 dense peak, so they are not used.
// Fused attention's forward on Hopper: [FA3-128].
constexpr double kHopperAttentionForward = 590.2 / 989.4;
// A Hopper product's fixed time and depth, fitted to [XLA-SWEEP]'s 155 bf16 products of 4M
// outputs or more (docs/cost-model.md "Efficiency"): 5 us in all per product, of which
// launch_ms is 2.7, and k0 = 100. An fp8 tile's main loop covers twice the depth in the same
// time and its prologue and epilogue take as long, so its k0 is 200.
constexpr double kHopperGemmFixedMs = 0.0023;
constexpr double kHopperGemmDepthK = 100;
constexpr char kHopperEfficiency[] =
    "gemm bf16 0.803 = 794.5/989 TFLOPS, fp8 0.709 = 1402.6/1979 (H100 SXM) and 0.734 = "
    "1453.4/1979 (H200 SXM) [MAMF]; attention forward bf16 0.597 = 590.2/989.4 (head "
    "dimension 128, sequence 4096) [FA3-128], fp8 0.606 = "
    "1200/1979 [FA3], backward = forward x 0.50/0.73 (the backward-to-forward ratio of "
    "[FA2], FA3 gives no backward figure); memory 0.89 [BW]; launch 0.0027 ms [LAUNCH]; "
    "a product's fixed time 0.0023 ms and depth k0 100 (bf16; 200 fp8), fitted to OpenXLA's "
    "measured H100 products [XLA-SWEEP]; 132 SMs (H100 architecture whitepaper, SXM5)";
constexpr char kAmpereEfficiency[] =
    "gemm bf16 0.869 = 271.2/312 TFLOPS [MAMF]; no fp8; attention forward 0.73, backward "
    "0.50 (the two ends of [FA2]'s 50-73 %); memory 0.89 [BW]; launch 0.0027 ms [LAUNCH]; "
    "108 SMs (A100 architecture whitepaper)";

constexpr DeviceSpec kDevices[] = {
    {
        .key = "h100",
        .name = "NVIDIA H100 80GB HBM3",
        .bf16_flops_per_s = 989.4e12,
        .fp32_flops_per_s = 66.9e12,
        .fp8_flops_per_s = 1979e12,
        .memory_bytes_per_s = 3.35e12,
        .memory_bytes = 85520809984,
        .link_bytes_per_s = 4.5e11,
        .link_latency_ms = 0.01,
        .node_bus_bytes_per_s = 3.7e11,
        .node_latency_ms = 0.0034,
        .network_bus_bytes_per_s = 4.7e10,
        .network_latency_ms = 0.0096,
        .source = "NVIDIA H100 Tensor Core GPU datasheet, SXM5 column: 1979 TFLOPS bf16 "
                  "with sparsity (989.4 dense), 3958 TFLOPS fp8 with sparsity (1979 "
                  "dense), 67 TFLOPS fp32 (66.9 in the H100 architecture whitepaper), "
                  "3.35 TB/s HBM3, NVLink 900 GB/s (450 GB/s each way); memory as the CUDA "
                  "runtime reports it for the 80 GB part; collectives: 370 GB/s NVLink bus "
                  "[NCCL212], 47 GB/s per GPU over NDR InfiniBand [NET-NDR], latency per "
                  "ring step 3.4 us NVLink, 9.6 us network [NCCL-LAT]",
        .efficiency = {.gemm_bf16 = 0.803,
                       .gemm_fp32 = 1,
                       .gemm_fp8 = 0.709,
                       .attention_forward_bf16 = kHopperAttentionForward,
                       .attention_backward_bf16 = kHopperAttentionForward * 0.50 / 0.73,
                       .attention_forward_fp8 = 1200.0 / 1979.0,
                       .attention_backward_fp8 = 1200.0 / 1979.0 * 0.50 / 0.73,
                       .memory = 0.89,
                       .launch_ms = 0.0027,
                       .gemm_fixed_ms = kHopperGemmFixedMs,
                       .gemm_depth_k_bf16 = kHopperGemmDepthK,
                       .gemm_depth_k_fp32 = 0,
                       .gemm_depth_k_fp8 = 2 * kHopperGemmDepthK,
                       .sm_count = 132,
                       .gemm_points = {},
                       .source = kHopperEfficiency},
    },
    {
        .key = "h200",
        .name = "NVIDIA H200",
        .bf16_flops_per_s = 989.4e12,
        .fp32_flops_per_s = 66.9e12,
        .fp8_flops_per_s = 1979e12,
        .memory_bytes_per_s = 4.8e12,
        .memory_bytes = 141000000000,
        .link_bytes_per_s = 4.5e11,
        .link_latency_ms = 0.01,
        .node_bus_bytes_per_s = 3.7e11,
        .node_latency_ms = 0.0034,
        .network_bus_bytes_per_s = 4.7e10,
        .network_latency_ms = 0.0096,
        .source = "NVIDIA H200 Tensor Core GPU datasheet, SXM column: same compute as the "
                  "H100 SXM (989.4 TFLOPS dense bf16, 1979 dense fp8, 66.9 TFLOPS fp32), "
                  "141 GB HBM3e at 4.8 TB/s, NVLink 900 GB/s (450 GB/s each way); memory "
                  "is the datasheet's decimal 141 GB; collectives as the H100 (same NVLink4 "
                  "and NDR network): [NCCL212], [NET-NDR], [NCCL-LAT]",
        .efficiency = {.gemm_bf16 = 0.803,
                       .gemm_fp32 = 1,
                       .gemm_fp8 = 0.734,
                       .attention_forward_bf16 = kHopperAttentionForward,
                       .attention_backward_bf16 = kHopperAttentionForward * 0.50 / 0.73,
                       .attention_forward_fp8 = 1200.0 / 1979.0,
                       .attention_backward_fp8 = 1200.0 / 1979.0 * 0.50 / 0.73,
                       .memory = 0.89,
                       .launch_ms = 0.0027,
                       .gemm_fixed_ms = kHopperGemmFixedMs,
                       .gemm_depth_k_bf16 = kHopperGemmDepthK,
                       .gemm_depth_k_fp32 = 0,
                       .gemm_depth_k_fp8 = 2 * kHopperGemmDepthK,
                       .sm_count = 132,
                       .gemm_points = {},
                       .source = kHopperEfficiency},
    },
    {
        .key = "a100",
        .name = "NVIDIA A100-SXM4-80GB",
        .bf16_flops_per_s = 312e12,
        .fp32_flops_per_s = 19.5e12,
        .fp8_flops_per_s = 0,
        .memory_bytes_per_s = 2.039e12,
        .memory_bytes = 80000000000,
        .link_bytes_per_s = 3e11,
        .link_latency_ms = 0.01,
        .node_bus_bytes_per_s = 2.3e11,
        .node_latency_ms = 0.0034,
        .network_bus_bytes_per_s = 2.4e10,
        .network_latency_ms = 0.0096,
        .source = "NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM column: 312 TFLOPS "
                  "bf16 dense, 19.5 TFLOPS fp32, no fp8, 2039 GB/s HBM2e, third-generation "
                  "NVLink 600 GB/s (300 GB/s each way); memory is the datasheet's decimal "
                  "80 GB (the device reports somewhat more); collectives: 230 GB/s NVLink "
                  "bus [NCCL149], 24 GB/s per GPU over HDR InfiniBand (DGX A100: 8 x 200 "
                  "Gb/s) [NET-HDR], latency per ring step [NCCL-LAT]",
        .efficiency = {.gemm_bf16 = 0.869,
                       .gemm_fp32 = 1,
                       .gemm_fp8 = 1,
                       .attention_forward_bf16 = 0.73,
                       .attention_backward_bf16 = 0.50,
                       .attention_forward_fp8 = 1,
                       .attention_backward_fp8 = 1,
                       .memory = 0.89,
                       .launch_ms = 0.0027,
                       .sm_count = 108,
                       .gemm_points = {},
                       .source = kAmpereEfficiency},
    },
    {
        .key = "l40s",
        .name = "NVIDIA L40S",
        .bf16_flops_per_s = 362.05e12,
        .fp32_flops_per_s = 91.6e12,
        .fp8_flops_per_s = 733e12,
        .memory_bytes_per_s = 8.64e11,
        .memory_bytes = 48000000000,
        .link_bytes_per_s = 3.2e10,
        .link_latency_ms = 0.02,
        .node_bus_bytes_per_s = 2.4e10,
        .node_latency_ms = 0.02,
        .network_bus_bytes_per_s = 2.2e10,
        .network_latency_ms = 0.015,
        .source = "NVIDIA L40S datasheet: 733 TFLOPS bf16 with sparsity (362.05 dense), "
                  "1466 TFLOPS fp8 with sparsity (733 dense), 91.6 TFLOPS fp32, 48 GB "
                  "GDDR6 at 864 GB/s; no NVLink, so stages talk over PCIe 4.0 x16 (64 GB/s "
                  "both ways, 32 GB/s each way); memory is the datasheet's decimal 48 GB; "
                  "collective bandwidths are PCIe orders of magnitude, not measurements",
        .efficiency = {.gemm_bf16 = 1,
                       .gemm_fp32 = 1,
                       .gemm_fp8 = 1,
                       .attention_forward_bf16 = 1,
                       .attention_backward_bf16 = 1,
                       .attention_forward_fp8 = 1,
                       .attention_backward_fp8 = 1,
                       .memory = 1,
                       .launch_ms = 0,
                       .sm_count = 0,
                       .gemm_points = {},
                       .source = "none: no published measurements in the table, so the "
                                 "achieved rates are the peaks (calibrate to replace)"},
    },
};

}  // namespace

double PeakFlops(const DeviceSpec& device, DType dtype) {
  switch (dtype) {
    case DType::kBf16: return device.bf16_flops_per_s;
    case DType::kFp32: return device.fp32_flops_per_s;
    case DType::kFp8: return device.fp8_flops_per_s;
  }
  return 0;
}

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
