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

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define GELU16 1

/* The 16-lane functions below work on NV vectors in lockstep, each step on all of them before the
 * next: one vector's value is a chain of some fifty dependent operations, which the core overlaps
 * with other vectors' only as far as its scheduler reaches; side by side, 8 chains keep both
 * vector ports busy. Each lane is still computed in the scalar function's order, none fused. */
#define NV 8
#define EACH(...) _Pragma("GCC unroll 8") for (int q = 0; q < NV; q++) { __VA_ARGS__; }

/* exp_f on NV x 16 lanes, in place: its operations in its order, so every lane is what exp_f
 * gives. exp_f's p * 2^(n/2) * 2^(n - n/2) is one scaling by 2^n here (vscalefps): p * 2^(n/2)
 * is exact (p in [0.7, 1.5), n/2 in [-75, 64]), so both round p * 2^n once, to the same float,
 * subnormals and infinities included. */
__attribute__((target("avx512f"), always_inline)) static inline void exp16(__m512 *x) {
  const __m512 lo = _mm512_set1_ps(-103.972084f), hi = _mm512_set1_ps(88.7228394f), big = _mm512_set1_ps(12582912.0f);
  __m512 r[NV], p[NV], fn[NV];
  /* max and min give their second operand where either is NaN: NaN passes */
  EACH(x[q] = _mm512_min_ps(hi, _mm512_max_ps(lo, x[q])))
  EACH(fn[q] = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x[q], _mm512_set1_ps(1.44269504088896341f)), big), big))
  EACH(r[q] = _mm512_add_ps(_mm512_sub_ps(x[q], _mm512_mul_ps(fn[q], _mm512_set1_ps(0.693359375f))),
                            _mm512_mul_ps(fn[q], _mm512_set1_ps(2.12194440e-4f))))
  EACH(p[q] = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(1.9875691500e-4f), r[q]), _mm512_set1_ps(1.3981999507e-3f)))
  EACH(p[q] = _mm512_add_ps(_mm512_mul_ps(p[q], r[q]), _mm512_set1_ps(8.3334519073e-3f)))
  EACH(p[q] = _mm512_add_ps(_mm512_mul_ps(p[q], r[q]), _mm512_set1_ps(4.1665795894e-2f)))
  EACH(p[q] = _mm512_add_ps(_mm512_mul_ps(p[q], r[q]), _mm512_set1_ps(1.6666665459e-1f)))
  EACH(p[q] = _mm512_add_ps(_mm512_mul_ps(p[q], r[q]), _mm512_set1_ps(5.0000001201e-1f)))
  EACH(p[q] = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p[q], _mm512_mul_ps(r[q], r[q])), r[q]), _mm512_set1_ps(1.0f)))
  EACH(x[q] = _mm512_scalef_ps(p[q], fn[q]))
}

/* gelu_f on NV x 16 lanes, in place, exactly as gelu_f computes each. */
__attribute__((target("avx512f"), always_inline)) static inline void gelu16(__m512 *v) {
  static const float c[10] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                              -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f};
  __m512 a[NV], t[NV], p[NV];
  EACH(a[q] = _mm512_mul_ps(_mm512_abs_ps(v[q]), _mm512_set1_ps((float)M_SQRT1_2)))
  EACH(t[q] = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(_mm512_set1_ps(0.5f), a[q]))))
  EACH(p[q] = _mm512_mul_ps(t[q], _mm512_set1_ps(c[0])))
  for (int i = 1; i < 9; i++) EACH(p[q] = _mm512_mul_ps(t[q], _mm512_add_ps(_mm512_set1_ps(c[i]), p[q])))
  EACH(p[q] = _mm512_sub_ps(_mm512_add_ps(_mm512_set1_ps(c[9]), p[q]), _mm512_mul_ps(a[q], a[q])))
  exp16(p);
  EACH(__m512 e = _mm512_mul_ps(t[q], p[q]);
       __mmask16 pos = _mm512_cmp_ps_mask(v[q], _mm512_setzero_ps(), _CMP_GE_OQ);
       __m512 sel = _mm512_mask_blend_ps(pos, e, _mm512_sub_ps(_mm512_set1_ps(2.0f), e));
       v[q] = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v[q]), sel))
}

/* tanh_f on NV x 16 lanes, in place, exactly as tanh_f computes each. */
__attribute__((target("avx512f"), always_inline)) static inline void tanh16(__m512 *x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 z[NV], small[NV], e[NV];
  EACH(z[q] = _mm512_mul_ps(x[q], x[q]))
  EACH(small[q] = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(-5.70498872745e-3f), z[q]), _mm512_set1_ps(2.06390887954e-2f)))
  EACH(small[q] = _mm512_sub_ps(_mm512_mul_ps(small[q], z[q]), _mm512_set1_ps(5.37397155531e-2f)))
  EACH(small[q] = _mm512_add_ps(_mm512_mul_ps(small[q], z[q]), _mm512_set1_ps(1.33314422036e-1f)))
  EACH(small[q] = _mm512_sub_ps(_mm512_mul_ps(small[q], z[q]), _mm512_set1_ps(3.33332819422e-1f)))
  EACH(small[q] = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(small[q], z[q]), x[q]), x[q]))
  EACH(e[q] = _mm512_mul_ps(_mm512_set1_ps(2.0f), _mm512_abs_ps(x[q])))
  exp16(e);
  EACH(__m512 large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e[q], one)));
       __mmask16 neg = _mm512_cmp_ps_mask(x[q], _mm512_setzero_ps(), _CMP_LT_OQ);
       __m512i lb = _mm512_castps_si512(large);
       large = _mm512_castsi512_ps(_mm512_mask_xor_epi32(lb, neg, lb, _mm512_set1_epi32((int)0x80000000u)));
       __mmask16 below = _mm512_cmp_ps_mask(_mm512_abs_ps(x[q]), _mm512_set1_ps(0.625f), _CMP_LT_OQ);
       x[q] = _mm512_mask_blend_ps(below, large, small[q]))
}

/* gelu_tanh_f on NV x 16 lanes, in place, exactly as gelu_tanh_f computes each. */
__attribute__((target("avx512f"), always_inline)) static inline void gelu_tanh16(__m512 *v) {
  __m512 t[NV];
  EACH(__m512 cube = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v[q]), v[q]), v[q]);
       t[q] = _mm512_mul_ps(_mm512_set1_ps((float)SQRT_2_OVER_PI), _mm512_add_ps(v[q], cube)))
  tanh16(t);
  EACH(v[q] = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v[q]), _mm512_add_ps(_mm512_set1_ps(1.0f), t[q])))
}

/* GELU (erf, or tanh with tanh set) on rows rows of n floats of y, ldy apart, NV vectors of 16
 * at a time: the same values as finish_row's loop, faster (-O2 keeps that loop to 8 lanes, one
 * polynomial chain at a time). */
__attribute__((target("avx512f"))) static void gelu_rows16(float *y, int64_t ldy, int64_t rows, int64_t n, int tanh) {
  float *at[NV];
  __mmask16 mk[NV];
  int used = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < n; i += 16) {
      at[used] = y + r * ldy + i;
      mk[used] = gpux__lanes16(n - i);
      if (++used < NV && (r + 1 < rows || i + 16 < n)) continue;
      for (int q = used; q < NV; q++) at[q] = at[0], mk[q] = 0; /* computed on zeros, not stored */
      __m512 v[NV];
      EACH(v[q] = _mm512_maskz_loadu_ps(mk[q], at[q]))
      if (tanh) gelu_tanh16(v);
      else gelu16(v);
      EACH(_mm512_mask_storeu_ps(at[q], mk[q], v[q]))
      used = 0;
    }
}
#undef EACH
#undef NV

#else
#define GELU16 0
#endif

GPUX_VECTORIZE void gpux__gemm_finish(float *c, int64_t ldc, int64_t rows, int64_t n, const float *bias,
                                      const gpux__gemm_epilogue *e, int64_t row0, int64_t col0) {
  int act = e ? e->act : GPUX_GEMM_ACT_NONE;
  const float *res = e && e->res ? e->res + row0 * e->ldr + col0 : NULL;
#if GELU16
  if ((act == GPUX_GEMM_ACT_GELU || act == GPUX_GEMM_ACT_GELU_TANH) && gpux__have_avx512f()) {
    for (int64_t r = 0; r < rows && bias; r++) {
      float *restrict y = c + r * ldc;
      FOR8(i, n, y[i] += bias[i]);
    }
    gelu_rows16(c, ldc, rows, n, act == GPUX_GEMM_ACT_GELU_TANH);
    for (int64_t r = 0; r < rows && res; r++) {
      float *restrict y = c + r * ldc;
      const float *restrict rr = res + r * e->ldr;
      FOR8(i, n, y[i] += rr[i]);
    }
    return;
  }
#endif
  for (int64_t r = 0; r < rows; r++) finish_row(c + r * ldc, n, bias, act, res ? res + r * e->ldr : NULL);
}
