/* avx512.h — what the AVX-512 kernels share: whether this CPU runs them and the mask of a vector's
 * first lanes. Include only on x86-64 with GCC or Clang. */
#ifndef GPUX_OPS_AVX512_H
#define GPUX_OPS_AVX512_H

#include <immintrin.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* Whether sigmoids (and SiLU) divide through a reciprocal, rcp14 and one Newton step, instead of
 * VDIVPS. Intel's cores (Skylake-SP to Sapphire Rapids) start a 16-lane division once per 10-16
 * cycles on one port, which then bounds a sigmoid's dozen other operations on two; AMD's Zen 4
 * and 5 divide several times faster, and there the reciprocal's two extra multiply-adds on the
 * FMA pipes cost more than the division. GPUX_DIVIDE=rcp or div chooses either on any CPU (to
 * compare them); asked once per file, as above. */
static inline int gpux__divide_by_reciprocal(void) {
  static atomic_int how = -1;
  int v = atomic_load_explicit(&how, memory_order_relaxed);
  if (v < 0) {
    const char *env = getenv("GPUX_DIVIDE");
    __builtin_cpu_init();
    v = env && !strcmp(env, "rcp") ? 1 : env && !strcmp(env, "div") ? 0 : __builtin_cpu_is("intel") > 0;
    atomic_store_explicit(&how, v, memory_order_relaxed);
  }
  return v;
}

/* The lanes [0, n) of a vector of 16 (none for n <= 0, all for n >= 16). */
static inline __mmask16 gpux__lanes16(int64_t n) {
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

#endif
