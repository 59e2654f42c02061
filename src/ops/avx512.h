/* avx512.h — what the AVX-512 kernels share: whether this CPU runs them and the mask of a vector's
 * first lanes. Include only on x86-64 with GCC or Clang. */
#ifndef GPUX_OPS_AVX512_H
#define GPUX_OPS_AVX512_H

#include <immintrin.h>
#include <stdatomic.h>
#include <stdint.h>

/* Whether this CPU has AVX-512F (kernels of no FMAs); asked once per file that calls it (threads
 * asking at once write the same value: relaxed atomics, so that this is no data race). */
static inline int gpux__have_avx512f(void) {
  static atomic_int have = -1;
  int v = atomic_load_explicit(&have, memory_order_relaxed);
  if (v < 0) {
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx512f");
    atomic_store_explicit(&have, v, memory_order_relaxed);
  }
  return v;
}

/* Whether this CPU runs the AVX-512 kernels with FMAs (AVX-512F and FMA), the same way. */
static inline int gpux__have_avx512_fma(void) {
  static atomic_int have = -1;
  int v = atomic_load_explicit(&have, memory_order_relaxed);
  if (v < 0) {
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    atomic_store_explicit(&have, v, memory_order_relaxed);
  }
  return v;
}

/* The lanes [0, n) of a vector of 16 (none for n <= 0, all for n >= 16). */
static inline __mmask16 gpux__lanes16(int64_t n) {
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

#endif
