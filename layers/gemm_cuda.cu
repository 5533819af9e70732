// Row-major GEMM through cuBLASLt (see cuda_gemm.h). A row-major matrix read as column-major
// is its transpose, so D = op(A) op(B) is computed as the column-major D^T = op(B)^T op(A)^T:
// the operands swap places and m and n swap.
#include <nvtx3/nvToolsExt.h>

#include <algorithm>

#include "layers/cuda_check.h"
#include "layers/cuda_gemm.h"
#include "layers/cuda_kernels.h"

namespace pp {

struct GemmPlanCache::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool use_lt = false;  // false: no cuBLASLt algorithm, use cublasGemmStridedBatchedEx
};

GemmPlanCache::~GemmPlanCache() {
  for (auto& [key, plan] : plans_) {
    if (plan->desc) cublasLtMatmulDescDestroy(plan->desc);
    for (cublasLtMatrixLayout_t l : {plan->a, plan->b, plan->c, plan->d}) {
      if (l) cublasLtMatrixLayoutDestroy(l);
    }
    delete plan;
  }
}

GemmPlanCache::Plan* GemmPlanCache::Find(const Key& key) {
  auto it = plans_.find(key);
  return it == plans_.end() ? nullptr : it->second;
}

GemmPlanCache::Plan* GemmPlanCache::Insert(const Key& key, Plan* plan) {
  plans_[key] = plan;
  return plan;
}

namespace {

size_t TypeBytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

// The largest power of two (up to 256) dividing every address the operand can start at.
int64_t Alignment(const void* p, int64_t stride_elems, size_t elem_bytes, int batch) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | 256;
  if (batch > 1) bits |= static_cast<uint64_t>(stride_elems) * elem_bytes;
  return static_cast<int64_t>(bits & (~bits + 1));
}

Status MakeLayout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, int64_t rows,
                  int64_t cols, int64_t ld, int batch, int64_t stride) {
  PP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(layout, type, static_cast<uint64_t>(rows),
                                             static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t count = batch;
    PP_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                     &count, sizeof count));
    PP_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
        *layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
  }
  return Status::Ok();
}

// Builds the descriptors for `g` (in column-major terms) and asks the heuristic for one
// algorithm. The plan owns what it created even when it fails half way.
Status BuildPlan(CudaContext& ctx, const GemmArgs& g, GemmPlanCache::Plan* plan) {
  const cublasOperation_t op_a = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // A' = B
  const cublasOperation_t op_b = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // B' = A
  const int64_t m = g.n, n = g.m, k = g.k;
  PP_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  PP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a,
                                                 sizeof op_a));
  PP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b,
                                                 sizeof op_b));
  if (g.bias != nullptr) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    PP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                   &epilogue, sizeof epilogue));
    PP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                   &g.bias, sizeof g.bias));
  }
  const bool ta = op_a == CUBLAS_OP_T, tb = op_b == CUBLAS_OP_T;
  PP_RETURN_IF_ERROR(MakeLayout(&plan->a, g.in, ta ? k : m, ta ? m : k, g.ldb, g.batch, g.stride_b));
  PP_RETURN_IF_ERROR(MakeLayout(&plan->b, g.in, tb ? n : k, tb ? k : n, g.lda, g.batch, g.stride_a));
  const int64_t ldc = g.c != nullptr ? g.ldc : g.ldd;
  PP_RETURN_IF_ERROR(MakeLayout(&plan->c, g.out, m, n, ldc, g.batch, g.stride_d));
  PP_RETURN_IF_ERROR(MakeLayout(&plan->d, g.out, m, n, g.ldd, g.batch, g.stride_d));

  cublasLtMatmulPreference_t pref = nullptr;
  PP_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = ctx.gemm_workspace_bytes();
  const size_t in_bytes = TypeBytes(g.in), out_bytes = TypeBytes(g.out);
  const uint32_t align[4] = {
      static_cast<uint32_t>(Alignment(g.b, g.stride_b, in_bytes, g.batch)),
      static_cast<uint32_t>(Alignment(g.a, g.stride_a, in_bytes, g.batch)),
      static_cast<uint32_t>(Alignment(g.c != nullptr ? g.c : g.d, g.stride_d, out_bytes, g.batch)),
      static_cast<uint32_t>(Alignment(g.d, g.stride_d, out_bytes, g.batch))};
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  const cublasLtMatmulPreferenceAttributes_t keys[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; ++i) {
    st = cublasLtMatmulPreferenceSetAttribute(pref, keys[i], &align[i], sizeof align[i]);
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (st == CUBLAS_STATUS_SUCCESS) {
    st = cublasLtMatmulAlgoGetHeuristic(ctx.lt(), plan->desc, plan->a, plan->b, plan->c, plan->d,
                                        pref, 1, &result, &found);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  // NOT_SUPPORTED (or nothing found) means cuBLASLt has no kernel for this case: fall back.
  if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
    return cuda::CublasError(st, __FILE__, __LINE__, "cublasLtMatmulAlgoGetHeuristic");
  }
  plan->use_lt = st == CUBLAS_STATUS_SUCCESS && found > 0;
  if (plan->use_lt) plan->algo = result.algo;
  return Status::Ok();
}

// cublasGemmStridedBatchedEx for shapes cuBLASLt declined. C must be D there, so a distinct C
// is first copied into D; the bias is added by a kernel afterwards.
Status FallbackGemm(CudaContext& ctx, const GemmArgs& g) {
  const size_t out_bytes = TypeBytes(g.out);
  if (g.c != nullptr && g.c != g.d && g.beta != 0) {
    PP_CUDA_CHECK(cudaMemcpy2DAsync(g.d, g.ldd * out_bytes, g.c, g.ldc * out_bytes,
                                    g.n * out_bytes, g.m, cudaMemcpyDeviceToDevice, ctx.stream()));
  }
  PP_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      ctx.blas(), g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(g.n), static_cast<int>(g.m), static_cast<int>(g.k), &g.alpha, g.b, g.in,
      static_cast<int>(g.ldb), g.stride_b, g.a, g.in, static_cast<int>(g.lda), g.stride_a, &g.beta,
      g.d, g.out, static_cast<int>(g.ldd), g.stride_d, g.batch, CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
  if (g.bias != nullptr) {
    if (g.out == CUDA_R_32F) {
      return AddBias(ctx, static_cast<float*>(g.d), static_cast<const float*>(g.bias), g.m, g.n, g.ldd);
    }
    return AddBias(ctx, static_cast<__nv_bfloat16*>(g.d),
                   static_cast<const __nv_bfloat16*>(g.bias), g.m, g.n, g.ldd);
  }
  return Status::Ok();
}

}  // namespace

Status Gemm(CudaContext& ctx, const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0 || g.k <= 0 || g.batch < 1) {
    return Status::Error("Gemm: empty or negative shape");
  }
  const size_t in_bytes = TypeBytes(g.in), out_bytes = TypeBytes(g.out);
  const GemmPlanCache::Key key = {
      g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.c != nullptr ? g.ldc : g.ldd, g.ldd,
      g.stride_a, g.stride_b, g.stride_d, g.batch, g.bias != nullptr, g.in, g.out,
      Alignment(g.a, g.stride_a, in_bytes, g.batch), Alignment(g.b, g.stride_b, in_bytes, g.batch),
      Alignment(g.c != nullptr ? g.c : g.d, g.stride_d, out_bytes, g.batch),
      Alignment(g.d, g.stride_d, out_bytes, g.batch)};
  GemmPlanCache::Plan* plan = ctx.gemm_plans().Find(key);
  if (plan == nullptr) {
    plan = ctx.gemm_plans().Insert(key, new GemmPlanCache::Plan());
    const Status built = BuildPlan(ctx, g, plan);
    if (!built.ok()) plan->use_lt = false;
    PP_RETURN_IF_ERROR(built);
  }
  if (!plan->use_lt) return FallbackGemm(ctx, g);
  if (g.bias != nullptr) {
    PP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                   &g.bias, sizeof g.bias));
  }
  PP_CUBLAS_CHECK(cublasLtMatmul(ctx.lt(), plan->desc, &g.alpha, g.b, plan->a, g.a, plan->b,
                                 &g.beta, g.c != nullptr ? g.c : g.d, plan->c, g.d, plan->d,
                                 &plan->algo, ctx.gemm_workspace(), ctx.gemm_workspace_bytes(),
                                 ctx.stream()));
  return Status::Ok();
}

}  // namespace pp
