/* fastmath.h — branch-free float32 exp, log, tanh, erf and the two GELUs, inline so the loops that call
 * them vectorize (within 3 ulp of the correctly rounded result; libm's scalar tanhf/erff are ~25x
 * slower than memory): the unary ops (elementwise-unary.c) and the GEMM epilogue (gemm-epilogue.c)
 * compute with the same functions, so a fused node gives what the nodes it replaces give. */
#ifndef GPUX_OPS_FASTMATH_H
#define GPUX_OPS_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* always inlined: a call would keep the loops that use them from vectorizing (GCC does not inline
 * on its own into the AVX-512/AVX2 clones of a function) */
#if defined(__GNUC__)
#define FASTMATH static inline __attribute__((always_inline))
#else
#define FASTMATH static inline
#endif

FASTMATH float bits_to_f32(uint32_t b) {
  float f;
  memcpy(&f, &b, 4);
  return f;
}

FASTMATH uint32_t f32_to_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}

/* e^x: x = n*ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial (Cephes), 2^n applied in
 * two halves so that results near overflow and in the subnormal range stay right. */
FASTMATH float exp_f(float x) {
  float xc = x < -103.972084f ? -103.972084f : x; /* NaN passes through both clamps */
  xc = xc > 88.7228394f ? 88.7228394f : xc;
  float fn = xc * 1.44269504088896341f + 12582912.0f; /* rounds x*log2(e) to an integer */
  int32_t n = (int32_t)(f32_to_bits(fn) - 0x4B400000u);
  fn -= 12582912.0f;
  float r = xc - fn * 0.693359375f + fn * 2.12194440e-4f;
  float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
              4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t n1 = n / 2, n2 = n - n1;
  float s1 = bits_to_f32(((uint32_t)(n1 + 127) & 0xffu) << 23);
  float s2 = bits_to_f32(((uint32_t)(n2 + 127) & 0xffu) << 23);
  return p * s1 * s2;
}

/* ln x: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m by Cephes' degree-9 polynomial in m - 1,
 * e ln 2 added in two parts; subnormals are scaled by 2^23 first. 0 gives -inf, a negative x
 * (and -inf) NaN, +inf and NaN themselves. */
FASTMATH float log_f(float x) {
  int sub = x < 1.17549435e-38f;                       /* subnormal (or 0, negative: fixed below) */
  float xs = sub ? x * 8388608.0f : x;
  uint32_t b = f32_to_bits(xs);
  int32_t e = (int32_t)((b >> 23) & 0xffu) - 126 - (sub ? 23 : 0);
  float m = bits_to_f32((b & 0x007fffffu) | 0x3f000000u); /* [0.5, 1) */
  int low = m < 0.707106781186547524f;
  e -= low;
  m = (low ? m + m : m) - 1.0f;
  float z = m * m;
  float y = ((((((((7.0376836292e-2f * m - 1.1514610310e-1f) * m + 1.1676998740e-1f) * m -
                  1.2420140846e-1f) * m + 1.4249322787e-1f) * m - 1.6668057665e-1f) * m +
               2.0000714765e-1f) * m - 2.4999993993e-1f) * m + 3.3333331174e-1f) * m * z;
  float fe = (float)e;
  y = y + fe * -2.12194440e-4f - 0.5f * z;
  float r = m + y + fe * 0.693359375f;
  r = x == INFINITY ? x : r;
  r = x == 0.0f ? -INFINITY : r;
  return x < 0.0f || x != x ? (x != x ? x : NAN) : r;
}

/* tanh: an odd polynomial below 0.625 (Cephes), 1 - 2/(e^2|x| + 1) above. */
FASTMATH float tanh_f(float x) {
  float a = fabsf(x), z = x * x;
  float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                  1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
  float large = 1.0f - 2.0f / (exp_f(2.0f * a) + 1.0f);
  large = x < 0 ? -large : large;
  return a < 0.625f ? small : large;
}

/* erfc(a) for a >= 0, relative error about 1e-7 (Numerical Recipes' erfcc). */
FASTMATH float erfc_pos(float a) {
  float t = 1.0f / (1.0f + 0.5f * a);
  float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
            t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
            t * (-0.82215223f + t * 0.17087277f))))))));
  return t * exp_f(p - a * a);
}

/* erf: an odd polynomial below 1 (Cephes), 1 - erfc(|x|) above. */
FASTMATH float erf_f(float x) {
  float a = fabsf(x), z = x * x;
  float small = x * ((((((7.853861353153693e-5f * z - 8.010193625184903e-4f) * z +
                         5.188327685732524e-3f) * z - 2.685381193529856e-2f) * z +
                       1.128358514861418e-1f) * z - 3.761262582423300e-1f) * z + 1.128379165726710f);
  float large = 1.0f - erfc_pos(a);
  large = x < 0 ? -large : large;
  return a < 1.0f ? small : large;
}

/* Gelu through erfc, which keeps its accuracy for negative x where 1 + erf(x) cancels. */
FASTMATH float gelu_f(float v) {
  float e = erfc_pos(fabsf(v) * (float)M_SQRT1_2);
  return 0.5f * v * (v >= 0 ? 2.0f - e : e);
}

#define SQRT_2_OVER_PI 0.7978845608028654

FASTMATH float gelu_tanh_f(float v) {
  return 0.5f * v * (1.0f + tanh_f((float)SQRT_2_OVER_PI * (v + 0.044715f * v * v * v)));
}

#endif
