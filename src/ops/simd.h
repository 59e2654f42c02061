/* simd.h — what lets the float32 hot loops of the CPU kernels vectorize with plain C: include it
 * first in a kernel file.
 *
 * - The kernels never read floating-point exception flags or errno; without no-trapping-math and
 *   no-math-errno GCC will not if-convert float compares nor inline sqrtf, so compare, max/min
 *   and select loops would stay scalar.
 * - GPUX_SIMD_CLONES compiles a function for AVX-512 and AVX2 as well and picks one at load time
 *   (GCC function clones, x86-64 Linux). The build is ISO C, where GCC does not contract a*b+c
 *   into FMA, so every clone gives bit-identical results. GPUX_VECTORIZE adds GCC's full loop
 *   vectorizer (tree-vectorize) for the loops -O2's cheaper one leaves scalar.
 * - gpux__exp_neg is exp(x) for x <= 0 in plain float arithmetic, so softmax loops vectorize;
 *   gpux__exp_neg16 is the same on 16 lanes with FMAs and gpux__exp_sum16 a softmax row's
 *   exponentials and their sum by it, for AVX-512 kernels, which gpux__have_avx512_fma
 *   (avx512.h) says the CPU can run.
 * - FOR8 runs a statement over [0, n) in blocks of 8, a fixed trip count that GCC vectorizes at
 *   -O2, then the tail. Use it in functions whose pointers are restrict. */
#ifndef GPUX_OPS_SIMD_H
#define GPUX_OPS_SIMD_H

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "no-math-errno")
#endif

/* (not under ThreadSanitizer: the clones' ifunc resolvers run before its runtime is up) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_THREAD__)
#define GPUX_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GPUX_SIMD_CLONES
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define GPUX_VECTORIZE __attribute__((optimize("tree-vectorize"))) GPUX_SIMD_CLONES
#else
#define GPUX_VECTORIZE
#endif

#define FOR8(i, n, ...)                                                   \
  do {                                                                    \
    int64_t i##_b = 0;                                                    \
    for (; i##_b + 8 <= (n); i##_b += 8)                                  \
      for (int i##_j = 0; i##_j < 8; i##_j++) {                           \
        int64_t i = i##_b + i##_j;                                        \
        __VA_ARGS__;                                                      \
      }                                                                   \
    for (int64_t i = i##_b; i < (n); i++) { __VA_ARGS__; }                \
  } while (0)

#include <stdint.h>
#include <string.h>

/* exp(x) for x <= 0, within 2 ulp; below -88.03 (and -inf) it gives 0. Branch-free so loops
 * calling it vectorize: the clamp compares the float's bits, the scale 2^n is built in the
 * exponent field. Softmax (norm.c) and Attention (attention.c) use it. */
static inline float gpux__exp_neg(float x) {
  uint32_t xb;
  memcpy(&xb, &x, 4);
  xb = xb > 0xc2b00f34u ? 0xc2b00f34u : xb; /* x < -88.0296919 (= -127 ln 2): clamp, gives 0 */
  memcpy(&x, &xb, 4);
  float t = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23 + round(x / ln 2) */
  float n = t - 12582912.0f;
  float r = x - n * 0.693359375f;                   /* x - n ln 2, in two parts */
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;                       /* exp(r) on [-ln2/2, ln2/2] (Cephes) */
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t bits;
  memcpy(&bits, &t, 4);
  bits = (bits - 0x4b400000u + 127u) << 23;         /* 2^n; n = -127 gives +0 */
  float s;
  memcpy(&s, &bits, 4);
  return p * s;
}

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/avx512.h"

/* gpux__exp_neg on 16 lanes (x <= 0) with FMAs, for AVX-512 kernels (within 2 ulp; not bit for
 * bit the scalar one): the same clamp, reduction and Cephes polynomial. */
__attribute__((target("avx512f,fma"), always_inline)) static inline __m512 gpux__exp_neg16(__m512 x) {
  x = _mm512_castsi512_ps(_mm512_min_epu32(_mm512_castps_si512(x), _mm512_set1_epi32((int)0xc2b00f34u)));
  __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.0f));
  __m512 fn = _mm512_sub_ps(t, _mm512_set1_ps(12582912.0f));
  __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32((int)(127u - 0x4b400000u))), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

/* y[i] = e^(x[i] - m) for i < n (vm: m in every lane; y may be x) and their sum, two vectors of
 * sums added at the end: a softmax row's exponentials, for the AVX-512 kernels. */
__attribute__((target("avx512f,fma"), always_inline)) static inline float gpux__exp_sum16(const float *x, float *y,
                                                                                          int64_t n, __m512 vm) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 e0 = gpux__exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    __m512 e1 = gpux__exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm));
    _mm512_storeu_ps(y + i, e0), _mm512_storeu_ps(y + i + 16, e1);
    s0 = _mm512_add_ps(s0, e0), s1 = _mm512_add_ps(s1, e1);
  }
  for (; i < n; i += 16) {
    __mmask16 k = gpux__lanes16(n - i);
    __m512 e = _mm512_maskz_mov_ps(k, gpux__exp_neg16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm)));
    _mm512_mask_storeu_ps(y + i, k, e);
    s0 = _mm512_add_ps(s0, e);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
#endif

#endif
