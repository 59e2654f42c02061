/* conv-epilogue.c — the output epilogue of gpux.FusedConv and gpux.FusedConvTranspose (conv.h),
 * run by conv.c's and conv-direct.c's kernels on each tile of output rows while it is in cache:
 * bias, residual, activation, clamp, then a per-channel scale and shift. */
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
      y[i] = v * t / 6.0f;
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

VECTORIZE void gpux__conv_finish(float *y, int64_t ys, const float *src, int64_t ss, int64_t rows, int64_t n,
                                 float bias, const gpux__conv_epilogue *e, int64_t m) {
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
