#include "core/kernel_cost.h"

namespace pp {

KernelShape KernelShapeOf(const ModelInput& input, DType dtype) {
  KernelShape sh;
  sh.b = static_cast<double>(input.micro_batch_size);
  sh.s = input.tokens() ? static_cast<double>(input.seq_len) : 1.0;
  sh.n = sh.b * sh.s;
  sh.e = static_cast<double>(DTypeBytes(dtype));
  sh.e_inputs = sh.e;
  return sh;
}

Kernel GemmKernel(std::string_view name, double m, double k, double n, double element_bytes) {
  Kernel g{name, 2 * m * k * n, (m * k + k * n + m * n) * element_bytes};
  g.cls = KernelClass::kGemm;
  g.m = m;
  g.k = k;
  g.n = n;
  g.batch = 1;
  return g;
}

Kernel BatchedGemmKernel(std::string_view name, double batch, double m, double k, double n,
                         double element_bytes) {
  Kernel g = GemmKernel(name, m, k, n, element_bytes);
  g.flops *= batch;
  g.bytes *= batch;
  g.batch = batch;
  return g;
}

Kernel MemoryKernel(std::string_view name, double bytes) { return Kernel{name, 0, bytes}; }

double TotalFlops(const std::vector<Kernel>& kernels) {
  double total = 0;
  for (const Kernel& k : kernels) total += k.flops;
  return total;
}

double TotalBytes(const std::vector<Kernel>& kernels) {
  double total = 0;
  for (const Kernel& k : kernels) total += k.bytes;
  return total;
}

}  // namespace pp
