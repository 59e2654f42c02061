/* conv-epilogue.c — the output epilogue of gpux.FusedConv and gpux.FusedConvTranspose (conv.h),
 * run by conv.c's and conv-direct.c's kernels on each tile of output rows while it is in cache:
 * bias, residual, activation, clamp, then a per-channel scale and shift. On AVX-512 one pass of 16
 * lanes (conv-epilogue16.h) does all of it, Sigmoid and SiLU with an exp of FMAs and a reciprocal
 * refined by a Newton step instead of a division (within 2 ulp of plain float arithmetic; the C
 * loop's division costs more than the rest of SiLU). */
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
#define EP16 1
#define T512 GPUX_EP16_TARGET

static int have_avx512(void) {
  static int have = -1; /* a race writes the same value */
  if (have < 0) {
    __builtin_cpu_init();
    have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  }
  return have;
}

/* finish_row on 16 lanes in one pass (res: the residual's row, or NULL) */
T512 static void finish_row16(float *y, const float *src, const float *res, int64_t n, float bias,
                              const gpux__conv_epilogue *e, int64_t m) {
  gpux__ep16_run(y, src, res, n, _mm512_set1_ps(bias), _mm512_set1_ps(e->scale ? e->scale[m] : 1.0f),
                 _mm512_set1_ps(e->scale ? e->shift[m] : 0.0f), e);
}
#else
#define EP16 0
#endif

VECTORIZE void gpux__conv_finish(float *y, int64_t ys, const float *src, int64_t ss, int64_t rows, int64_t n,
                                 float bias, const gpux__conv_epilogue *e, int64_t m) {
#if EP16
  if (have_avx512()) {
    for (int64_t r = 0; r < rows; r++) {
      float *yr = y + r * ys;
      finish_row16(yr, src + r * ss, e->res ? e->res + (yr - e->y0) : NULL, n, bias, e, m);
    }
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
