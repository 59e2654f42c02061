/* gemv-shapes.c — products of one row by packed constant weights (ops/gemv.c against the packed
 * GEMM, sgemm.c, that ran them before) on the calling thread, timed by its CPU time: MobileNetV3's
 * classifier, EfficientNet-B0's and GPT-2's layers at one token. Each line: the shape, ms per call
 * of each path, the weights' GB/s, and the largest difference of their outputs. Every call reads
 * its own copy of the weights of several (32 MB or more in all), so that they come from past L2
 * as in a model.
 *
 *   cmake --build build --target gemv-shapes && build/gemv-shapes [REPS]
 */
#include "ops/gemm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

int main(int argc, char **argv) {
  static const struct { const char *name; int64_t k, n; } shapes[] = {
      {"mnv3 960->1280", 960, 1280}, {"mnv3 1280->1000", 1280, 1000}, {"effnet 1280->1000", 1280, 1000},
      {"gpt2 768->2304", 768, 2304}, {"gpt2 768->768", 768, 768},     {"gpt2 768->3072", 768, 3072},
      {"gpt2 3072->768", 3072, 768}, {"small 64->100", 64, 100},      {"odd 77->33", 77, 33},
  };
  int reps = argc > 1 ? atoi(argv[1]) : 200;
  if (!gpux__sgemm_nr()) {
    printf("no packed kernel on this machine\n");
    return 0;
  }
  srand(1);
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    int64_t k = shapes[s].k, n = shapes[s].n;
    int copies = (int)GPUX__MAX(2, (32 << 20) / (k * n * 4));
    float *b = malloc((size_t)(k * n) * sizeof *b), *a = malloc((size_t)k * sizeof *a);
    float *bias = malloc((size_t)n * sizeof *bias), *c0 = malloc((size_t)n * sizeof *c0), *c1 = malloc((size_t)n * sizeof *c1);
    for (int64_t i = 0; i < k * n; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int64_t i = 0; i < k; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int64_t i = 0; i < n; i++) bias[i] = (float)rand() / RAND_MAX;
    gpux__sgemm_b *pk = malloc((size_t)copies * sizeof *pk);
    for (int i = 0; i < copies; i++) gpux__sgemm_pack(&pk[i], b, n, 0, k, n, 0);
    double best[2] = {1e30, 1e30};
    for (int round = 0; round < 5; round++)
      for (int path = 0; path < 2; path++) {
        double t0 = cpu_ms();
        for (int r = 0; r < reps; r++) {
          const gpux__sgemm_b *p = &pk[r % copies];
          if (path) gpux__sgemv_run(a, p, c1, bias, 0, NULL);
          else gpux__sgemm_run(1, a, k, p, c0, n, bias, 0);
        }
        double t = (cpu_ms() - t0) / reps;
        if (t < best[path]) best[path] = t;
      }
    double diff = 0;
    for (int64_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)c0[i] - (double)c1[i]));
    printf("%-20s sgemm %.4f ms  gemv %.4f ms  %.1f -> %.1f GB/s  diff %.2g\n", shapes[s].name, best[0], best[1],
           (double)(k * n * 4) / best[0] * 1e-6, (double)(k * n * 4) / best[1] * 1e-6, diff);
    for (int i = 0; i < copies; i++) gpux__sgemm_b_free(&pk[i]);
    free(pk), free(b), free(a), free(bias), free(c0), free(c1);
  }
  return 0;
}
