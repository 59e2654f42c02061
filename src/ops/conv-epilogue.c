/* conv-epilogue.c — the output epilogue of gpux.FusedConv and gpux.FusedConvTranspose (conv.h),
 * run by conv.c's and conv-direct.c's kernels on each tile of output rows while it is in cache:
 * bias, residual, activation, clamp, then a per-channel scale and shift. On AVX-512 one pass of 16
 * lanes (conv-epilogue16.h) does all of it, Sigmoid and SiLU with an exp of FMAs and a division, or
 * on CPUs whose division is slow a reciprocal refined by a Newton step (both within 5 ulp of the
 * correctly rounded sigmoid), also on sums held channels last (gpux__conv_finish_cl, for
 * conv-gemm.c). */
#include "ops/simd.h"
#include "ops/conv.h"
#include "ops/fastmath.h"
#include <math.h>

/* the loop is asked for the full loop vectorizer and cloned for AVX-512 and AVX2 (simd.h) */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTORIZE __attribute__((optimize("tree-vectorize"))) GPUX_SIMD_CLONES
#else
#define VECTORIZE
#endif

/* The epilogue's hot loop, on output rows while they are in cache. HardSwish is
 * x * clip(x + 3, 0, 6) / 6, as the pattern it replaces; Sigmoid and Silu use the exp of the
 * Sigmoid op (fastmath.h). */
static inline __attribute__((always_inline)) void finish_row(float *y, const float *src, int64_t n, float bias,
                                                              const gpux__conv_epilogue *e, int64_t m) {
  const float a = e->p0, b = e->p1;
  switch (e->act) {
  case GPUX_EP_NONE:
    for (int64_t i = 0; i < n; i++) y[i] = src[i] + bias;
    break;
  case GPUX_EP_RELU:
    for (int64_t i = 0; i < n; i++) {
      float v = src[i] + bias;
      y[i] = v < 0.0f ? 0.0f : v;
    }
    break;
  case GPUX_EP_LEAKY:
    for (int64_t i = 0; i < n; i++) {
      float v = src[i] + bias;
      y[i] = v < 0.0f ? a * v : v;
    }
    break;
  case GPUX_EP_CLIP:
    for (int64_t i = 0; i < n; i++) {
      float v = src[i] + bias;
      v = v < a ? a : v;
      y[i] = v > b ? b : v;
    }
    break;
  case GPUX_EP_HARDSIGMOID:
    for (int64_t i = 0; i < n; i++) {
      float t = a * (src[i] + bias) + b;
      t = t < 0.0f ? 0.0f : t;
      y[i] = t > 1.0f ? 1.0f : t;
    }
    break;
  case GPUX_EP_HARDSWISH:
    for (int64_t i = 0; i < n; i++) {
      float v = src[i] + bias, t = v + 3.0f;
      t = t < 0.0f ? 0.0f : t;
      t = t > 6.0f ? 6.0f : t;
      y[i] = v * t * (1.0f / 6.0f);
    }
    break;
  case GPUX_EP_SIGMOID:
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + exp_f(-(src[i] + bias)));
    break;
  case GPUX_EP_SILU: /* x * Sigmoid(x), as the Mul of the Sigmoid it replaces computes it */
    for (int64_t i = 0; i < n; i++) {
      float v = src[i] + bias;
      y[i] = v * (1.0f / (1.0f + exp_f(-v)));
    }
    break;
  }
  if (e->clamp) {
    const float lo = e->lo, hi = e->hi;
    for (int64_t i = 0; i < n; i++) {
      float v = y[i] < lo ? lo : y[i];
      y[i] = v > hi ? hi : v;
    }
  }
  if (e->scale) {
    const float s = e->scale[m], t = e->shift[m];
    for (int64_t i = 0; i < n; i++) y[i] = y[i] * s + t;
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/conv-epilogue16.h"
#include <stdlib.h>
#include <string.h>

int gpux__sigmoid_by_reciprocal;

__attribute__((constructor)) static void choose_sigmoid(void) {
  const char *env = getenv("GPUX_DIVIDE");
  __builtin_cpu_init(); /* before __builtin_cpu_is in a constructor */
  gpux__sigmoid_by_reciprocal =
      env && !strcmp(env, "rcp") ? 1 : env && !strcmp(env, "div") ? 0 : __builtin_cpu_is("intel") > 0;
}
#define EP16 1
#define T512 GPUX_EP16_TARGET

/* gpux__conv_finish on 16 lanes, one pass a row */
T512 static void finish_rows16(float *y, int64_t ys, const float *src, int64_t ss, int64_t rows, int64_t n,
                               float bias, const gpux__conv_epilogue *e, int64_t m) {
  __m512 vb = _mm512_set1_ps(bias), vs = _mm512_set1_ps(e->scale ? e->scale[m] : 1.0f);
  __m512 vt = _mm512_set1_ps(e->scale ? e->shift[m] : 0.0f);
  for (int64_t r = 0; r < rows; r++) {
    float *yr = y + r * ys;
    gpux__ep16_run(yr, src + r * ss, e->res ? e->res + (yr - e->y0) : NULL, n, vb, vs, vt, e);
  }
}

/* c[q * ldc + 0:16] (lanes mk) = epilogue(c[q * ldc + 0:16] + vb (+ res[q * ldc + 0:16])) for q < np:
 * one block of 16 channels down the positions, the activation chosen once for the loop (a
 * constant act in gpux__ep16_vec) where a call a position chose it again for 16 values. The
 * same operations as gpux__ep16_run's. */
#define CL_ACT(A)                                                                                   \
  case A: {                                                                                         \
    gpux__conv_epilogue ea = *e;                                                                    \
    ea.act = A;                                                                                     \
    for (int64_t q = 0; q < np; q++) {                                                              \
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, c + q * ldc), vb);                         \
      if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + q * ldc));                      \
      _mm512_mask_storeu_ps(c + q * ldc, mk, gpux__ep16_vec(v, vs, vt, &ea));                       \
    }                                                                                               \
    break;                                                                                          \
  }
T512 static void cl_block16(float *c, int64_t ldc, int64_t np, __mmask16 mk, const float *res, __m512 vb, __m512 vs,
                            __m512 vt, const gpux__conv_epilogue *e) {
  switch (e->act) {
    CL_ACT(GPUX_EP_NONE)
    CL_ACT(GPUX_EP_RELU)
    CL_ACT(GPUX_EP_LEAKY)
    CL_ACT(GPUX_EP_CLIP)
    CL_ACT(GPUX_EP_HARDSIGMOID)
    CL_ACT(GPUX_EP_HARDSWISH)
    CL_ACT(GPUX_EP_SIGMOID)
    CL_ACT(GPUX_EP_SILU)
  }
}
#undef CL_ACT

/* The epilogue on a channels-last tile, c[q * ldc + i] being channel m0 + i of position q: 16
 * channels a vector, each lane its channel's bias, scale and shift. With a residual (written
 * layers before: from L3 or memory) position by position, asking for R's lines three positions
 * ahead, where 16 channels at a time down all positions read R's lines ldc floats apart; without,
 * a block of 16 channels down all positions at a time (cl_block16). */
T512 static void finish_cl16(float *c, int64_t ldc, int64_t np, int64_t m0, int64_t nm, const float *bias,
                             const gpux__conv_epilogue *e) {
  const float *res = e->res ? e->res + (c - e->y0) : NULL; /* with a residual, c is in Y */
  if (res && nm > 16) {
    for (int64_t q = 0; q < np; q++)
      for (int64_t i = 0; i < nm; i += 16) {
        int64_t n = GPUX__MIN(16, nm - i);
        __mmask16 mk = gpux__lanes16(n);
        if (q + 3 < np) _mm_prefetch((const char *)(res + (q + 3) * ldc + i), _MM_HINT_T0);
        __m512 vb = bias ? _mm512_maskz_loadu_ps(mk, bias + m0 + i) : _mm512_setzero_ps();
        __m512 vs = e->scale ? _mm512_maskz_loadu_ps(mk, e->scale + m0 + i) : _mm512_set1_ps(1.0f);
        __m512 vt = e->scale ? _mm512_maskz_loadu_ps(mk, e->shift + m0 + i) : _mm512_setzero_ps();
        gpux__ep16_run(c + q * ldc + i, c + q * ldc + i, res + q * ldc + i, n, vb, vs, vt, e);
      }
    return;
  }
  for (int64_t i = 0; i < nm; i += 16) {
    int64_t n = GPUX__MIN(16, nm - i);
    __mmask16 mk = gpux__lanes16(n);
    __m512 vb = bias ? _mm512_maskz_loadu_ps(mk, bias + m0 + i) : _mm512_setzero_ps();
    __m512 vs = e->scale ? _mm512_maskz_loadu_ps(mk, e->scale + m0 + i) : _mm512_set1_ps(1.0f);
    __m512 vt = e->scale ? _mm512_maskz_loadu_ps(mk, e->shift + m0 + i) : _mm512_setzero_ps();
    if (ldc == 16 && n == 16) /* one run: a vector a position */
      gpux__ep16_run(c + i, c + i, res ? res + i : NULL, np * n, vb, vs, vt, e);
    else
      cl_block16(c + i, ldc, np, mk, res ? res + i : NULL, vb, vs, vt, e);
  }
}
#else
#define EP16 0
#endif

VECTORIZE void gpux__conv_finish(float *y, int64_t ys, const float *src, int64_t ss, int64_t rows, int64_t n,
                                 float bias, const gpux__conv_epilogue *e, int64_t m) {
#if EP16
  if (gpux__have_avx512_fma()) {
    finish_rows16(y, ys, src, ss, rows, n, bias, e, m);
    return;
  }
#endif
  if (e->res) { /* (conv + bias) + R, as the Add it replaces computes it, then the rest in place */
    for (int64_t r = 0; r < rows; r++) {
      float *yr = y + r * ys;
      const float *sr = src + r * ss, *rr = e->res + (yr - e->y0);
      for (int64_t i = 0; i < n; i++) yr[i] = (sr[i] + bias) + rr[i];
      finish_row(yr, yr, n, 0.0f, e, m);
    }
    return;
  }
  for (int64_t r = 0; r < rows; r++) finish_row(y + r * ys, src + r * ss, n, bias, e, m);
}

int gpux__conv_finish_cl(float *c, int64_t ldc, int64_t np, int64_t m0, int64_t nm, const float *bias,
                         const gpux__conv_epilogue *e) {
#if EP16
  if (e->res || !gpux__have_avx512_fma()) return 1;
  finish_cl16(c, ldc, np, m0, nm, bias, e);
  return 0;
#else
  (void)c, (void)ldc, (void)np, (void)m0, (void)nm, (void)bias, (void)e;
  return 1;
#endif
}

void gpux__conv_finish_nhwc(float *y, int64_t ldy, int64_t np, int64_t m0, int64_t nm, const float *bias,
                            const gpux__conv_epilogue *e) {
#if EP16
  if (gpux__have_avx512_fma()) {
    finish_cl16(y, ldy, np, m0, nm, bias, e);
    return;
  }
#endif
  /* one element at a time: the channel changes along a row */
  for (int64_t q = 0; q < np; q++)
    for (int64_t i = 0; i < nm; i++) {
      float *v = y + q * ldy + i;
      gpux__conv_finish(v, 0, v, 0, 1, 1, bias ? bias[m0 + i] : 0.0f, e, m0 + i);
    }
}
