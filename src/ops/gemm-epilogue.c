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

/* exp_f on 16 lanes: its operations in its order, none fused, so every lane is what exp_f gives. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 exp16(__m512 x) {
  __m512 lo = _mm512_set1_ps(-103.972084f), hi = _mm512_set1_ps(88.7228394f), big = _mm512_set1_ps(12582912.0f);
  __m512 xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), x, lo); /* NaN passes */
  xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xc, hi, _CMP_GT_OQ), xc, hi);
  __m512 fn = _mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), big);
  __m512i n = _mm512_sub_epi32(_mm512_castps_si512(fn), _mm512_set1_epi32(0x4B400000));
  fn = _mm512_sub_ps(fn, big);
  __m512 r = _mm512_add_ps(_mm512_sub_ps(xc, _mm512_mul_ps(fn, _mm512_set1_ps(0.693359375f))),
                           _mm512_mul_ps(fn, _mm512_set1_ps(2.12194440e-4f)));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), _mm512_set1_ps(1.0f));
  /* n / 2 rounded toward zero, as C's division */
  __m512i n1 = _mm512_srai_epi32(_mm512_add_epi32(n, _mm512_srli_epi32(n, 31)), 1), n2 = _mm512_sub_epi32(n, n1);
  __m512i b127 = _mm512_set1_epi32(127), m8 = _mm512_set1_epi32(0xff);
  __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_and_si512(_mm512_add_epi32(n1, b127), m8), 23));
  __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_and_si512(_mm512_add_epi32(n2, b127), m8), 23));
  return _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
}

/* gelu_f on 16 lanes, exactly as gelu_f computes each. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 gelu16(__m512 v) {
  __m512 a = _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps((float)M_SQRT1_2));
  __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(_mm512_set1_ps(0.5f), a)));
  static const float c[10] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                              -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f};
  __m512 p = _mm512_mul_ps(t, _mm512_set1_ps(c[0]));
  for (int i = 1; i < 9; i++) p = _mm512_mul_ps(t, _mm512_add_ps(_mm512_set1_ps(c[i]), p));
  p = _mm512_add_ps(_mm512_set1_ps(c[9]), p);
  __m512 e = _mm512_mul_ps(t, exp16(_mm512_sub_ps(p, _mm512_mul_ps(a, a))));
  __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
  __m512 sel = _mm512_mask_blend_ps(pos, e, _mm512_sub_ps(_mm512_set1_ps(2.0f), e));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), sel);
}

/* tanh_f on 16 lanes, exactly as tanh_f computes each. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 tanh16(__m512 x) {
  __m512 a = _mm512_abs_ps(x), z = _mm512_mul_ps(x, x);
  __m512 small = _mm512_set1_ps(-5.70498872745e-3f);
  small = _mm512_add_ps(_mm512_mul_ps(small, z), _mm512_set1_ps(2.06390887954e-2f));
  small = _mm512_sub_ps(_mm512_mul_ps(small, z), _mm512_set1_ps(5.37397155531e-2f));
  small = _mm512_add_ps(_mm512_mul_ps(small, z), _mm512_set1_ps(1.33314422036e-1f));
  small = _mm512_sub_ps(_mm512_mul_ps(small, z), _mm512_set1_ps(3.33332819422e-1f));
  small = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(small, z), x), x);
  __m512 one = _mm512_set1_ps(1.0f);
  __m512 large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f),
                                                  _mm512_add_ps(exp16(_mm512_mul_ps(_mm512_set1_ps(2.0f), a)), one)));
  __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  __m512i lb = _mm512_castps_si512(large);
  large = _mm512_castsi512_ps(_mm512_mask_xor_epi32(lb, neg, lb, _mm512_set1_epi32((int)0x80000000u)));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_LT_OQ), large, small);
}

/* gelu_tanh_f on 16 lanes, exactly as gelu_tanh_f computes each. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 gelu_tanh16(__m512 v) {
  __m512 cube = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), v), v);
  __m512 t = tanh16(_mm512_mul_ps(_mm512_set1_ps((float)SQRT_2_OVER_PI), _mm512_add_ps(v, cube)));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
}

/* GELU (erf, or tanh with tanh set) on a row of n floats, 16 at a time: the same values as
 * finish_row's loop, faster (-O2 keeps that loop to 8 lanes, one polynomial chain at a time). */
#define GELU_ROW(NAME, F)                                                                   \
  __attribute__((target("avx512f"))) static void NAME(float *y, int64_t n) {                \
    int64_t i = 0;                                                                          \
    for (; i + 64 <= n; i += 64) { /* four chains at a time: each is a long dependent chain */ \
      __m512 a = F(_mm512_loadu_ps(y + i)), b = F(_mm512_loadu_ps(y + i + 16));             \
      __m512 c = F(_mm512_loadu_ps(y + i + 32)), d = F(_mm512_loadu_ps(y + i + 48));        \
      _mm512_storeu_ps(y + i, a);                                                           \
      _mm512_storeu_ps(y + i + 16, b);                                                      \
      _mm512_storeu_ps(y + i + 32, c);                                                      \
      _mm512_storeu_ps(y + i + 48, d);                                                      \
    }                                                                                       \
    for (; i + 32 <= n; i += 32) { /* two chains at a time */                               \
      __m512 a = F(_mm512_loadu_ps(y + i)), b = F(_mm512_loadu_ps(y + i + 16));             \
      _mm512_storeu_ps(y + i, a);                                                           \
      _mm512_storeu_ps(y + i + 16, b);                                                      \
    }                                                                                       \
    for (; i < n; i += 16) {                                                                \
      __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);    \
      _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, y + i)));                 \
    }                                                                                       \
  }
GELU_ROW(gelu_row16, gelu16)
GELU_ROW(gelu_tanh_row16, gelu_tanh16)
#undef GELU_ROW

static int have_avx512(void) {
  static int have = -1;
  if (have < 0) {
    __builtin_cpu_init();
    have = __builtin_cpu_supports("avx512f") ? 1 : 0;
  }
  return have;
}
#else
#define GELU16 0
#endif

GPUX_VECTORIZE void gpux__gemm_finish(float *c, int64_t ldc, int64_t rows, int64_t n, const float *bias,
                                      const gpux__gemm_epilogue *e, int64_t row0, int64_t col0) {
  int act = e ? e->act : GPUX_GEMM_ACT_NONE;
  const float *res = e && e->res ? e->res + row0 * e->ldr + col0 : NULL;
#if GELU16
  if ((act == GPUX_GEMM_ACT_GELU || act == GPUX_GEMM_ACT_GELU_TANH) && have_avx512()) {
    for (int64_t r = 0; r < rows; r++) {
      float *restrict y = c + r * ldc;
      const float *restrict rr = res ? res + r * e->ldr : NULL;
      if (bias) FOR8(i, n, y[i] += bias[i]);
      if (act == GPUX_GEMM_ACT_GELU) gelu_row16(y, n);
      else gelu_tanh_row16(y, n);
      if (rr) FOR8(i, n, y[i] += rr[i]);
    }
    return;
  }
#endif
  for (int64_t r = 0; r < rows; r++) finish_row(c + r * ldc, n, bias, act, res ? res + r * e->ldr : NULL);
}
