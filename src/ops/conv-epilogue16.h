/* conv-epilogue16.h — FusedConv's epilogue (conv.h) on 16 float32 lanes with AVX-512, for the
 * epilogue itself (conv-epilogue.c) and for kernels that hold outputs in vectors of another
 * layout (conv-depthwise.c: 16 channels of one position). Include only on x86-64 with GCC or
 * Clang, and call only where the CPU has AVX-512F and FMA. */
#ifndef GPUX_OPS_CONV_EPILOGUE16_H
#define GPUX_OPS_CONV_EPILOGUE16_H

#include "ops/conv.h"
#include "ops/avx512.h"
#include <immintrin.h>

#define GPUX_EP16_TARGET __attribute__((target("avx512f,fma")))

/* Whether the Sigmoid and SiLU epilogues divide through a reciprocal (gpux__sigmoid16_rcp) instead
 * of VDIVPS (gpux__sigmoid16). Intel's cores (Skylake-SP to Sapphire Rapids) start a 16-lane
 * division once per 10-16 cycles on one port, which then bounds a sigmoid's dozen other operations
 * on two (by the vendors' instruction tables; not yet timed here). On AMD's Zen 5 the division is
 * the faster of the two (EfficientNet-B0 at 1 thread: the reciprocal 3-5% slower), its two extra
 * multiply-adds on the FMA pipes costing more than the division; AMD's other cores keep the
 * division too, unmeasured. Set once as the library loads (conv-epilogue.c), from the CPU's vendor
 * or GPUX_DIVIDE=rcp or div (to compare them on any CPU): a plain variable, so that kernels that
 * finish sums in registers read it with no call, which would make the compiler keep their
 * accumulators in memory. */
extern int gpux__sigmoid_by_reciprocal;

/* e^-|v| on 16 lanes, 2^t with t = -|v| log2(e) = n + f, n an integer and |f| <= 1/2 (f from two
 * FMAs, log2(e) in two parts, so that f is right to about 2^-24 however large n), 2^f by a
 * degree-5 polynomial (fitted for relative error: 2.2e-7 at most), 2^n applied by scalef (which
 * rounds results in the subnormal range right and gives 0 below it). NaN gives NaN. */
GPUX_EP16_TARGET static inline __m512 gpux__exp_neg_abs16(__m512 v) {
  __m512 a = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)));
  a = _mm512_max_ps(_mm512_set1_ps(-150.0f), a); /* -|v|, -inf to -150; NaN passes (max returns its second) */
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fmsub_ps(a, _mm512_set1_ps(1.44269504088896341f), n);
  f = _mm512_fmadd_ps(a, _mm512_set1_ps(1.925963033e-8f), f); /* log2(e) - (float)log2(e) */
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.3276471291e-03f), f, _mm512_set1_ps(9.6755409613e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5507130921e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022120237e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314694405e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000001192e+00f));
  return _mm512_scalef_ps(p, n);
}

/* 1 / (1 + e^-v) on 16 lanes with e = e^-|v|: one division, 1 / (1 + e) for v >= 0 and e / (1 + e)
 * for v < 0. Within 4.2 ulp of the correctly rounded sigmoid (checked against float64 on every
 * 7th float); NaN gives NaN, -inf 0, inf 1. */
GPUX_EP16_TARGET static inline __m512 gpux__sigmoid16(__m512 v) {
  __m512 e = gpux__exp_neg_abs16(v);
  __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
  __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_set1_ps(1.0f), e);
  return _mm512_div_ps(num, d);
}

/* The same sigmoid without a division, for CPUs whose division is slow (gpux__sigmoid_by_reciprocal):
 * 1 + e lies in [1, 2], so rcp14's estimate r (relative error below 2^-14) and one Newton step,
 * r + r (1 - (1 + e) r), give 1 / (1 + e) to about an ulp, with no zeros, infinities or
 * subnormals to care for; then the multiply by e for v < 0. NaN gives NaN, -inf 0, inf 1. */
GPUX_EP16_TARGET static inline __m512 gpux__sigmoid16_rcp(__m512 v) {
  __m512 e = gpux__exp_neg_abs16(v);
  __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
  return _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), r, e);
}

/* y[i] = epilogue(src[i] + bias (+ res[i])) for i < n, in one pass of 16 lanes: lane l of each
 * vector gets bias, scale and shift from lane l of vb, vs and vt (vs, vt only where e->scale is
 * set), so the lanes may be one channel's positions or 16 channels of one position (res: at y's
 * place in R, or NULL). The hot loop; each activation gets a loop of its own, which goes two
 * whole vectors a step without masks, with e's clamp and scale read once (the stores may alias
 * *e, so the compiler read both again for every vector): the same operations on every value. */
#define GPUX__EP16_ONE(ACT)                                                                        \
  do {                                                                                             \
    ACT;                                                                                           \
    if (clamp) v = _mm512_min_ps(vhi, _mm512_max_ps(vlo, v));                                      \
    if (scale) v = _mm512_fmadd_ps(v, vs, vt);                                                     \
  } while (0)
#define GPUX__EP16_LOOP(ACT)                                                                       \
  {                                                                                                \
    int64_t i = 0;                                                                                 \
    for (; i + 32 <= n; i += 32) {                                                                 \
      __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(src + i), vb);                                     \
      __m512 v1 = _mm512_add_ps(_mm512_loadu_ps(src + i + 16), vb);                                \
      if (res) {                                                                                   \
        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(res + i));                                          \
        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(res + i + 16));                                     \
      }                                                                                            \
      __m512 v = v0;                                                                               \
      GPUX__EP16_ONE(ACT);                                                                         \
      v0 = v, v = v1;                                                                              \
      GPUX__EP16_ONE(ACT);                                                                         \
      _mm512_storeu_ps(y + i, v0);                                                                 \
      _mm512_storeu_ps(y + i + 16, v);                                                             \
    }                                                                                              \
    for (; i < n; i += 16) {                                                                       \
      __mmask16 mk = gpux__lanes16(n - i);                                                         \
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, src + i), vb);                            \
      if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + i));                           \
      GPUX__EP16_ONE(ACT);                                                                         \
      _mm512_mask_storeu_ps(y + i, mk, v);                                                         \
    }                                                                                              \
  }

/* The switch over e->act with LOOP(ACT) in each case, ACT the activation on a vector v (va, vp1
 * and zero in scope). */
#define GPUX__EP16_SWITCH(LOOP)                                                                    \
  switch (e->act) {                                                                                \
  case GPUX_EP_NONE: LOOP((void)0); break;                                                         \
  case GPUX_EP_RELU: LOOP(v = _mm512_max_ps(zero, v)); break;                                      \
  case GPUX_EP_LEAKY: LOOP(v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, va)); break; \
  case GPUX_EP_CLIP: LOOP(v = _mm512_min_ps(vp1, _mm512_max_ps(va, v))); break;                     \
  case GPUX_EP_HARDSIGMOID:                                                                        \
    LOOP(v = _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(zero, _mm512_add_ps(_mm512_mul_ps(va, v), vp1)))); \
    break;                                                                                         \
  case GPUX_EP_HARDSWISH:                                                                          \
    LOOP(__m512 t = _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(zero, _mm512_add_ps(v, _mm512_set1_ps(3.0f)))); \
         v = _mm512_mul_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(1.0f / 6.0f)));                     \
    break;                                                                                         \
  case GPUX_EP_SIGMOID:                                                                             \
    if (gpux__sigmoid_by_reciprocal) LOOP(v = gpux__sigmoid16_rcp(v)) else LOOP(v = gpux__sigmoid16(v)); \
    break;                                                                                         \
  case GPUX_EP_SILU:                                                                               \
    if (gpux__sigmoid_by_reciprocal) LOOP(v = _mm512_mul_ps(v, gpux__sigmoid16_rcp(v)))           \
    else LOOP(v = _mm512_mul_ps(v, gpux__sigmoid16(v)));                                           \
    break;                                                                                         \
  }

GPUX_EP16_TARGET static inline __attribute__((always_inline)) void gpux__ep16_run(float *y, const float *src, const float *res, int64_t n, __m512 vb,
                                                   __m512 vs, __m512 vt, const gpux__conv_epilogue *e) {
  const __m512 va = _mm512_set1_ps(e->p0), vp1 = _mm512_set1_ps(e->p1);
  const __m512 vlo = _mm512_set1_ps(e->lo), vhi = _mm512_set1_ps(e->hi), zero = _mm512_setzero_ps();
  const int clamp = e->clamp, scale = e->scale != NULL;
  GPUX__EP16_SWITCH(GPUX__EP16_LOOP)
}

/* The epilogue on rows of channels-last sums in place: y[i * ldy + j] = epilogue(y[i * ldy + j]
 * + bias[j] (+ res[i * ldy + j])) for i < rows, j < n <= 64 (bias, scale and shift from the
 * block's first channel, each NULL where there is none), 16 channels a vector, the activation's
 * switch once for the block (a register block's rows, in L1 after its kernel stored them). */
#define GPUX__EP16_ROWS(ACT)                                                                       \
  for (int u = 0; u < 4 && u * 16 < n; u++) {                                                      \
    __mmask16 mk = gpux__lanes16(n - 16 * u);                                                      \
    __m512 vb = bias ? _mm512_maskz_loadu_ps(mk, bias + 16 * u) : zero;                            \
    __m512 vs = scale ? _mm512_maskz_loadu_ps(mk, scale + 16 * u) : zero;                          \
    __m512 vt = scale ? _mm512_maskz_loadu_ps(mk, shift + 16 * u) : zero;                          \
    for (int i = 0; i < rows; i++) {                                                               \
      float *yp = y + i * ldy + 16 * u;                                                            \
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, yp), vb);                                 \
      if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + i * ldy + 16 * u));            \
      GPUX__EP16_ONE(ACT);                                                                         \
      _mm512_mask_storeu_ps(yp, mk, v);                                                            \
    }                                                                                              \
  }
GPUX_EP16_TARGET static inline void gpux__ep16_rows(float *y, int64_t ldy, int rows, int64_t n, const float *bias,
                                                    const float *scale, const float *shift, const float *res,
                                                    const gpux__conv_epilogue *e) {
  const __m512 va = _mm512_set1_ps(e->p0), vp1 = _mm512_set1_ps(e->p1);
  const __m512 vlo = _mm512_set1_ps(e->lo), vhi = _mm512_set1_ps(e->hi), zero = _mm512_setzero_ps();
  const int clamp = e->clamp;
  GPUX__EP16_SWITCH(GPUX__EP16_ROWS)
}
#undef GPUX__EP16_ROWS
#undef GPUX__EP16_SWITCH
#undef GPUX__EP16_LOOP
#undef GPUX__EP16_ONE

/* The same epilogue on one vector v that has its bias (and residual) added already: the
 * activation, the clamp and the scale, the same operations as gpux__ep16_run's, for kernels that
 * finish their sums in registers (conv-gemm.c). */
GPUX_EP16_TARGET static inline __attribute__((always_inline)) __m512 gpux__ep16_vec(__m512 v, __m512 vs, __m512 vt,
                                                                                   const gpux__conv_epilogue *e) {
  const __m512 zero = _mm512_setzero_ps();
  switch (e->act) {
  case GPUX_EP_NONE: break;
  case GPUX_EP_RELU: v = _mm512_max_ps(zero, v); break;
  case GPUX_EP_LEAKY: v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, _mm512_set1_ps(e->p0)); break;
  case GPUX_EP_CLIP: v = _mm512_min_ps(_mm512_set1_ps(e->p1), _mm512_max_ps(_mm512_set1_ps(e->p0), v)); break;
  case GPUX_EP_HARDSIGMOID:
    v = _mm512_min_ps(_mm512_set1_ps(1.0f),
                      _mm512_max_ps(zero, _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(e->p0), v), _mm512_set1_ps(e->p1))));
    break;
  case GPUX_EP_HARDSWISH: {
    __m512 t = _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(zero, _mm512_add_ps(v, _mm512_set1_ps(3.0f))));
    v = _mm512_mul_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(1.0f / 6.0f));
    break;
  }
  case GPUX_EP_SIGMOID: v = gpux__sigmoid_by_reciprocal ? gpux__sigmoid16_rcp(v) : gpux__sigmoid16(v); break;
  case GPUX_EP_SILU: v = _mm512_mul_ps(v, gpux__sigmoid_by_reciprocal ? gpux__sigmoid16_rcp(v) : gpux__sigmoid16(v)); break;
  }
  if (e->clamp) v = _mm512_min_ps(_mm512_set1_ps(e->hi), _mm512_max_ps(_mm512_set1_ps(e->lo), v));
  if (e->scale) v = _mm512_fmadd_ps(v, vs, vt);
  return v;
}

#endif
