/* simd.h — what lets the float32 hot loops of the CPU kernels vectorize with plain C: include it
 * first in a kernel file.
 *
 * - The kernels never read floating-point exception flags or errno; without no-trapping-math and
 *   no-math-errno GCC will not if-convert float compares nor inline sqrtf, so compare, max/min
 *   and select loops would stay scalar.
 * - GPUX_SIMD_CLONES compiles a function for AVX-512 and AVX2 as well and picks one at load time
 *   (GCC function clones, x86-64 Linux). The build is ISO C, where GCC does not contract a*b+c
 *   into FMA, so every clone gives bit-identical results.
 * - FOR8 runs a statement over [0, n) in blocks of 8, a fixed trip count that GCC vectorizes at
 *   -O2, then the tail. Use it in functions whose pointers are restrict. */
#ifndef GPUX_OPS_SIMD_H
#define GPUX_OPS_SIMD_H

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "no-math-errno")
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define GPUX_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GPUX_SIMD_CLONES
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

#endif
