/* conv-epilogue.c — the output epilogue of gpux.FusedConv and gpux.FusedConvTranspose (conv.h),
 * run by conv.c's and conv-direct.c's kernels on each tile of output rows while it is in cache:
 * bias, residual, activation, clamp, then a per-channel scale and shift. On AVX-512 one pass of 16
 * lanes does all of it, Sigmoid and SiLU with an exp of FMAs and a reciprocal refined by a Newton
 * step instead of a division (within 2 ulp of plain float arithmetic; the C loop's division costs
 * more than the rest of SiLU). */
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
#include <immintrin.h>
#define EP16 1
#define T512 __attribute__((target("avx512f,fma")))

static int have_avx512(void) {
  static int have = -1; /* a race writes the same value */
  if (have < 0) {
    __builtin_cpu_init();
    have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  }
  return have;
}

/* 1 / (1 + e^-v) on 16 lanes: e = e^-|v| in (0, 1] (x ln 2 + r, |r| <= ln 2 / 2, e^r by Cephes'
 * degree-6 polynomial, 2^n applied by scalef, which rounds results in the subnormal range right),
 * 1 / (1 + e) from rcp14 and one Newton step (about 2^-28 off before rounding); e / (1 + e) for v
 * < 0. NaN gives NaN. */
T512 static inline __m512 sigmoid16(__m512 v) {
  __m512 a = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)));
  a = _mm512_max_ps(_mm512_set1_ps(-104.0f), a); /* -|v|; NaN passes (max returns its second) */
  __m512 fn = _mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(0.693359375f), a);
  r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  __m512 e = _mm512_scalef_ps(p, fn);
  __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), e), q = _mm512_rcp14_ps(d);
  q = _mm512_fmadd_ps(q, _mm512_fnmadd_ps(d, q, _mm512_set1_ps(1.0f)), q);
  return _mm512_mask_mul_ps(q, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), q, e);
}

/* finish_row on 16 lanes in one pass (res: the residual's row, or NULL); the hot loop. Each
 * activation gets a loop of its own. */
#define ROW16(ACT)                                                                                     \
  for (int64_t i = 0; i < n; i += 16) {                                                              \
    __mmask16 mk = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);              \
    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, src + i), vb);                                \
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + i));                               \
    ACT;                                                                                             \
    if (e->clamp) v = _mm512_min_ps(vhi, _mm512_max_ps(vlo, v));                                     \
    if (e->scale) v = _mm512_fmadd_ps(v, vs, vt);                                                    \
    _mm512_mask_storeu_ps(y + i, mk, v);                                                             \
  }

T512 static void finish_row16(float *y, const float *src, const float *res, int64_t n, float bias,
                              const gpux__conv_epilogue *e, int64_t m) {
  const __m512 vb = _mm512_set1_ps(bias), va = _mm512_set1_ps(e->p0), vp1 = _mm512_set1_ps(e->p1);
  const __m512 vlo = _mm512_set1_ps(e->lo), vhi = _mm512_set1_ps(e->hi), zero = _mm512_setzero_ps();
  const __m512 vs = _mm512_set1_ps(e->scale ? e->scale[m] : 1.0f), vt = _mm512_set1_ps(e->scale ? e->shift[m] : 0.0f);
  switch (e->act) {
  case GPUX_EP_NONE: ROW16((void)0); break;
  case GPUX_EP_RELU: ROW16(v = _mm512_max_ps(zero, v)); break;
  case GPUX_EP_LEAKY: ROW16(v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, va)); break;
  case GPUX_EP_CLIP: ROW16(v = _mm512_min_ps(vp1, _mm512_max_ps(va, v))); break;
  case GPUX_EP_HARDSIGMOID:
    ROW16(v = _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(zero, _mm512_add_ps(_mm512_mul_ps(va, v), vp1))));
    break;
  case GPUX_EP_HARDSWISH:
    ROW16(__m512 t = _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(zero, _mm512_add_ps(v, _mm512_set1_ps(3.0f))));
          v = _mm512_mul_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(1.0f / 6.0f)));
    break;
  case GPUX_EP_SIGMOID: ROW16(v = sigmoid16(v)); break;
  case GPUX_EP_SILU: ROW16(v = _mm512_mul_ps(v, sigmoid16(v))); break;
  }
}
#undef ROW16
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
