/* sgemm-shapes.c — the packed GEMM (ops/sgemm.c) on the transformers' products (ViT-B/16 at 197
 * tokens, BERT-base at 128, GPT-2 at 64: projections, MLP up and down) and a few odd shapes, on
 * one thread, timed by its CPU time. Each line: the shape, ms per call, GFLOP/s, and the
 * largest difference from a float64 product. Every call reads its own copy of the weights of
 * several (32 MB or more in all), so that they come from past L2 as in a model. A first line
 * measures the machine's FMA peak on one thread (registers only).
 *
 *   cmake --build build --target sgemm-shapes && build/sgemm-shapes [REPS]
 */
#include "ops/gemm.h"
#include "core/internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

#if defined(__GNUC__) && defined(__x86_64__)
/* GFLOP/s of 24 independent 16-lane FMA chains on one thread. */
__attribute__((target("avx512f,fma"))) static double fma_peak(void) {
  __m512 s[24], x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 24; i++) s[i] = _mm512_set1_ps((float)i);
  long iters = 20000000;
  double t0 = cpu_ms();
  for (long it = 0; it < iters; it++) {
    _Pragma("GCC unroll 24") for (int i = 0; i < 24; i++) s[i] = _mm512_fmadd_ps(s[i], x, y);
  }
  double t = cpu_ms() - t0;
  float sink = 0;
  for (int i = 0; i < 24; i++) sink += _mm512_reduce_add_ps(s[i]);
  if (sink == 1.2345f) printf(" ");
  return (double)iters * 24 * 32 / t * 1e-6;
}
#endif

int main(int argc, char **argv) {
  static const struct { const char *name; int64_t m, k, n; } shapes[] = {
      {"vit qkv/proj", 197, 768, 768},  {"vit mlp up", 197, 768, 3072},  {"vit mlp down", 197, 3072, 768},
      {"bert proj", 128, 768, 768},     {"bert mlp up", 128, 768, 3072}, {"bert mlp down", 128, 3072, 768},
      {"gpt2 qkv", 64, 768, 2304},      {"gpt2 mlp up", 64, 768, 3072},  {"gpt2 mlp down", 64, 3072, 768},
      {"odd", 77, 333, 517},            {"conv-ish", 784, 1152, 128},    {"thin", 13, 100, 1000},
  };
  int reps = argc > 1 ? atoi(argv[1]) : 20;
  gpux__set_thread_count(1);
  if (!gpux__sgemm_nr()) {
    printf("no packed kernel on this machine\n");
    return 0;
  }
#if defined(__GNUC__) && defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) printf("FMA peak, one thread: %.1f GFLOP/s\n", fma_peak());
#endif
  srand(1);
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    int64_t m = shapes[s].m, k = shapes[s].k, n = shapes[s].n;
    int copies = (int)GPUX__MAX(2, (32 << 20) / (k * n * 4));
    float *b = malloc((size_t)(k * n) * sizeof *b), *a = malloc((size_t)(m * k) * sizeof *a);
    float *bias = malloc((size_t)n * sizeof *bias), *c = malloc((size_t)(m * n) * sizeof *c);
    for (int64_t i = 0; i < k * n; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int64_t i = 0; i < m * k; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int64_t i = 0; i < n; i++) bias[i] = (float)rand() / RAND_MAX;
    gpux__sgemm_b *pk = malloc((size_t)copies * sizeof *pk);
    for (int i = 0; i < copies; i++) gpux__sgemm_pack(&pk[i], b, n, 0, k, n, 0);
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
      double t0 = cpu_ms();
      for (int r = 0; r < reps; r++) gpux__sgemm_run(m, a, k, &pk[r % copies], c, n, bias, 0);
      double t = (cpu_ms() - t0) / reps;
      if (t < best) best = t;
    }
    double diff = 0;
    for (int64_t i = 0; i < m; i += GPUX__MAX(1, m / 7))
      for (int64_t j = 0; j < n; j++) {
        double ref = bias[j];
        for (int64_t r = 0; r < k; r++) ref += (double)a[i * k + r] * (double)b[r * n + j];
        diff = fmax(diff, fabs(ref - (double)c[i * n + j]));
      }
    printf("%-14s %4lld x %4lld x %4lld  %.4f ms  %6.1f GFLOP/s  diff %.2g\n", shapes[s].name, (long long)m,
           (long long)k, (long long)n, best, 2.0 * (double)(m * k * n) / best * 1e-6, diff);
    for (int i = 0; i < copies; i++) gpux__sgemm_b_free(&pk[i]);
    free(pk), free(b), free(a), free(bias), free(c);
  }
  return 0;
}
