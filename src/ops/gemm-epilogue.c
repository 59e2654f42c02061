/* gemm-epilogue.c — the output epilogue of gpux.FusedMatMul (a MatMul or Gemm by constant weights
 * with the bias Add, the activation and the residual Add after it, made by
 * runtime/fuse-transformer.c): bias, Relu, GELU or Tanh, then the residual, on a block of C while
 * it is in cache. The packed GEMM (sgemm.c) runs it on each register block as it stores it; the
 * other paths on rows of C after the product. */
#include "ops/simd.h"
#include "ops/fastmath.h"
#include "ops/gemm.h"

int gpux__gemm_act_of(const char *activation, const char *approximate) {
  if (!activation || !activation[0]) return GPUX_GEMM_ACT_NONE;
  if (!strcmp(activation, "Relu")) return GPUX_GEMM_ACT_RELU;
  if (!strcmp(activation, "Tanh")) return GPUX_GEMM_ACT_TANH;
  if (strcmp(activation, "Gelu")) return -1;
  if (!approximate || !strcmp(approximate, "none")) return GPUX_GEMM_ACT_GELU;
  return !strcmp(approximate, "tanh") ? GPUX_GEMM_ACT_GELU_TANH : -1;
}

/* One row: the hot loop, n floats of C. */
static inline __attribute__((always_inline)) void finish_row(float *restrict y, int64_t n, const float *restrict bias,
                                                              int act, const float *restrict res) {
  if (bias) FOR8(i, n, y[i] += bias[i]);
  switch (act) {
  case GPUX_GEMM_ACT_RELU: FOR8(i, n, y[i] = y[i] < 0.0f ? 0.0f : y[i]); break;
  case GPUX_GEMM_ACT_GELU: FOR8(i, n, y[i] = gelu_f(y[i])); break;
  case GPUX_GEMM_ACT_GELU_TANH: FOR8(i, n, y[i] = gelu_tanh_f(y[i])); break;
  case GPUX_GEMM_ACT_TANH: FOR8(i, n, y[i] = tanh_f(y[i])); break;
  default: break;
  }
  if (res) FOR8(i, n, y[i] += res[i]);
}

GPUX_VECTORIZE void gpux__gemm_finish(float *c, int64_t ldc, int64_t rows, int64_t n, const float *bias,
                                      const gpux__gemm_epilogue *e, int64_t row0, int64_t col0) {
  int act = e ? e->act : GPUX_GEMM_ACT_NONE;
  const float *res = e && e->res ? e->res + row0 * e->ldr + col0 : NULL;
  for (int64_t r = 0; r < rows; r++) finish_row(c + r * ldc, n, bias, act, res ? res + r * e->ldr : NULL);
}
