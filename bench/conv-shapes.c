/* conv-shapes.c — GFLOP/s of the float32 convolution kernels (ops/conv-direct.c) on one thread
 * for the convolution shapes of ResNet-50, EfficientNet-B0 and MobileNetV3-Large at 224x224
 * (bench/cnn-cases.mjs's models), timed by the thread's CPU time, so that a loaded machine still
 * gives usable numbers. Each line: the shape, ms per call, GFLOP/s (2 x multiply-adds), and the
 * shape's share of its model's convolution FLOPs (count x FLOPs).
 *
 *   cmake --build build --target conv-shapes && build/conv-shapes [FILTER]
 * FILTER keeps the lines whose name contains it (resnet, effnet, mnv3, dw, 1x1 ...);
 * CONV_SHAPES_NOACT=1 in the environment drops the activations (the epilogue's share),
 * CONV_SHAPES_IMPLICIT=1 runs conv-direct.c's implicit GEMM where conv.c runs conv-gemm.c's,
 * CONV_SHAPES_GEMM=1 runs conv-gemm.c's product on every shape of one group and 16 channels or more,
 * CONV_SHAPES_NHWC=1 that product, and the depthwise kernel, with X and Y channels last
 * (gpux.ConvNHWC's layout; with CONV_SHAPES_ROWS=1 CONV_SHAPES_XPLANES=1, X NCHW: a region's stem), CONV_SHAPES_WINO=1 with it conv-winograd.c's kernel where it takes the shape,
 * CONV_SHAPES_COLD=1 times each call after 1 GB of other writes (the operands out of the caches,
 * as in a model), CONV_SHAPES_REPS=F times F times as many calls (for perf record; cold ones too),
 * CONV_SHAPES_EXPAND=1 the expansions and depthwise convolutions after them, the two kernels against
 * gpux.ExpandDepthwise's fused one, CONV_SHAPES_THREADS=N runs on N threads by the wall clock, CONV_SHAPES_PLAN=1 prints how each
 * kernel splits each shape on GPUX_THREADS threads (GPUX_CONV_PLAN) and a hash of Y instead of
 * times. */
#include "ops/conv.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  const char *name;
  int count;                        /* times the shape occurs in its model */
  int64_t c, m, g, h, k, s, act;    /* square input h, kernel k, stride s; act GPUX_EP_* */
  int res;                          /* a residual in the epilogue */
} shape;

static const shape shapes[] = {
  {"resnet 7x7s2 stem 3-64@224", 1, 3, 64, 1, 224, 7, 2, GPUX_EP_RELU, 0},
  {"resnet 1x1 64-64@56", 1, 64, 64, 1, 56, 1, 1, GPUX_EP_RELU, 0},
  {"resnet 3x3 64-64@56", 3, 64, 64, 1, 56, 3, 1, GPUX_EP_RELU, 0},
  {"resnet 1x1 64-256@56 res", 3, 64, 256, 1, 56, 1, 1, GPUX_EP_RELU, 1},
  {"resnet 1x1 256-64@56", 2, 256, 64, 1, 56, 1, 1, GPUX_EP_RELU, 0},
  {"resnet 1x1 256-128@56", 1, 256, 128, 1, 56, 1, 1, GPUX_EP_RELU, 0},
  {"resnet 3x3s2 128-128@56", 1, 128, 128, 1, 56, 3, 2, GPUX_EP_RELU, 0},
  {"resnet 1x1s2 256-512@56", 1, 256, 512, 1, 56, 1, 2, GPUX_EP_NONE, 0},
  {"resnet 1x1 128-512@28 res", 4, 128, 512, 1, 28, 1, 1, GPUX_EP_RELU, 1},
  {"resnet 1x1 512-128@28", 3, 512, 128, 1, 28, 1, 1, GPUX_EP_RELU, 0},
  {"resnet 3x3 128-128@28", 3, 128, 128, 1, 28, 3, 1, GPUX_EP_RELU, 0},
  {"resnet 1x1 512-256@28", 1, 512, 256, 1, 28, 1, 1, GPUX_EP_RELU, 0},
  {"resnet 3x3s2 256-256@28", 1, 256, 256, 1, 28, 3, 2, GPUX_EP_RELU, 0},
  {"resnet 1x1s2 512-1024@28", 1, 512, 1024, 1, 28, 1, 2, GPUX_EP_NONE, 0},
  {"resnet 1x1 256-1024@14 res", 6, 256, 1024, 1, 14, 1, 1, GPUX_EP_RELU, 1},
  {"resnet 1x1 1024-256@14", 5, 1024, 256, 1, 14, 1, 1, GPUX_EP_RELU, 0},
  {"resnet 3x3 256-256@14", 5, 256, 256, 1, 14, 3, 1, GPUX_EP_RELU, 0},
  {"resnet 1x1 1024-512@14", 1, 1024, 512, 1, 14, 1, 1, GPUX_EP_RELU, 0},
  {"resnet 3x3s2 512-512@14", 1, 512, 512, 1, 14, 3, 2, GPUX_EP_RELU, 0},
  {"resnet 1x1s2 1024-2048@14", 1, 1024, 2048, 1, 14, 1, 2, GPUX_EP_NONE, 0},
  {"resnet 1x1 512-2048@7 res", 3, 512, 2048, 1, 7, 1, 1, GPUX_EP_RELU, 1},
  {"resnet 1x1 2048-512@7", 2, 2048, 512, 1, 7, 1, 1, GPUX_EP_RELU, 0},
  {"resnet 3x3 512-512@7", 2, 512, 512, 1, 7, 3, 1, GPUX_EP_RELU, 0},
  {"effnet 3x3s2 stem 3-32@224", 1, 3, 32, 1, 224, 3, 2, GPUX_EP_SILU, 0},
  {"effnet dw3x3 32@112", 1, 32, 32, 32, 112, 3, 1, GPUX_EP_SILU, 0},
  {"effnet 1x1 32-16@112", 1, 32, 16, 1, 112, 1, 1, GPUX_EP_NONE, 0},
  {"effnet 1x1 16-96@112", 1, 16, 96, 1, 112, 1, 1, GPUX_EP_SILU, 0},
  {"effnet dw3x3s2 96@112", 1, 96, 96, 96, 112, 3, 2, GPUX_EP_SILU, 0},
  {"effnet 1x1 96-24@56", 1, 96, 24, 1, 56, 1, 1, GPUX_EP_NONE, 0},
  {"effnet 1x1 24-144@56", 2, 24, 144, 1, 56, 1, 1, GPUX_EP_SILU, 0},
  {"effnet dw3x3 144@56", 1, 144, 144, 144, 56, 3, 1, GPUX_EP_SILU, 0},
  {"effnet 1x1 144-24@56 res", 1, 144, 24, 1, 56, 1, 1, GPUX_EP_NONE, 1},
  {"effnet dw5x5s2 144@56", 1, 144, 144, 144, 56, 5, 2, GPUX_EP_SILU, 0},
  {"effnet 1x1 144-40@28", 1, 144, 40, 1, 28, 1, 1, GPUX_EP_NONE, 0},
  {"effnet 1x1 40-240@28", 2, 40, 240, 1, 28, 1, 1, GPUX_EP_SILU, 0},
  {"effnet dw5x5 240@28", 1, 240, 240, 240, 28, 5, 1, GPUX_EP_SILU, 0},
  {"effnet 1x1 240-40@28 res", 1, 240, 40, 1, 28, 1, 1, GPUX_EP_NONE, 1},
  {"effnet dw3x3s2 240@28", 1, 240, 240, 240, 28, 3, 2, GPUX_EP_SILU, 0},
  {"effnet 1x1 240-80@14", 1, 240, 80, 1, 14, 1, 1, GPUX_EP_NONE, 0},
  {"effnet 1x1 80-480@14", 3, 80, 480, 1, 14, 1, 1, GPUX_EP_SILU, 0},
  {"effnet dw3x3 480@14", 2, 480, 480, 480, 14, 3, 1, GPUX_EP_SILU, 0},
  {"effnet 1x1 480-80@14 res", 2, 480, 80, 1, 14, 1, 1, GPUX_EP_NONE, 1},
  {"effnet dw5x5 480@14", 1, 480, 480, 480, 14, 5, 1, GPUX_EP_SILU, 0},
  {"effnet 1x1 480-112@14", 1, 480, 112, 1, 14, 1, 1, GPUX_EP_NONE, 0},
  {"effnet 1x1 112-672@14", 3, 112, 672, 1, 14, 1, 1, GPUX_EP_SILU, 0},
  {"effnet dw5x5 672@14", 2, 672, 672, 672, 14, 5, 1, GPUX_EP_SILU, 0},
  {"effnet 1x1 672-112@14 res", 2, 672, 112, 1, 14, 1, 1, GPUX_EP_NONE, 1},
  {"effnet dw5x5s2 672@14", 1, 672, 672, 672, 14, 5, 2, GPUX_EP_SILU, 0},
  {"effnet 1x1 672-192@7", 1, 672, 192, 1, 7, 1, 1, GPUX_EP_NONE, 0},
  {"effnet 1x1 192-1152@7", 4, 192, 1152, 1, 7, 1, 1, GPUX_EP_SILU, 0},
  {"effnet dw5x5 1152@7", 3, 1152, 1152, 1152, 7, 5, 1, GPUX_EP_SILU, 0},
  {"effnet 1x1 1152-192@7 res", 3, 1152, 192, 1, 7, 1, 1, GPUX_EP_NONE, 1},
  {"effnet dw3x3 1152@7", 1, 1152, 1152, 1152, 7, 3, 1, GPUX_EP_SILU, 0},
  {"effnet 1x1 1152-320@7", 1, 1152, 320, 1, 7, 1, 1, GPUX_EP_NONE, 0},
  {"effnet 1x1 320-1280@7", 1, 320, 1280, 1, 7, 1, 1, GPUX_EP_SILU, 0},
  {"mnv3 3x3s2 stem 3-16@224", 1, 3, 16, 1, 224, 3, 2, GPUX_EP_HARDSWISH, 0},
  {"mnv3 1x1 16-16@112 res", 1, 16, 16, 1, 112, 1, 1, GPUX_EP_NONE, 1},
  {"mnv3 1x1 16-64@112", 1, 16, 64, 1, 112, 1, 1, GPUX_EP_RELU, 0},
  {"mnv3 1x1 64-24@56", 1, 64, 24, 1, 56, 1, 1, GPUX_EP_NONE, 0},
  {"mnv3 1x1 24-72@56", 2, 24, 72, 1, 56, 1, 1, GPUX_EP_RELU, 0},
  {"mnv3 1x1 72-24@56 res", 1, 72, 24, 1, 56, 1, 1, GPUX_EP_NONE, 1},
  {"mnv3 1x1 72-40@28", 1, 72, 40, 1, 28, 1, 1, GPUX_EP_NONE, 0},
  {"mnv3 1x1 40-120@28", 2, 40, 120, 1, 28, 1, 1, GPUX_EP_RELU, 0},
  {"mnv3 1x1 120-40@28 res", 2, 120, 40, 1, 28, 1, 1, GPUX_EP_NONE, 1},
  {"mnv3 dw5x5 960@7", 2, 960, 960, 960, 7, 5, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 1x1 960-160@7 res", 2, 960, 160, 1, 7, 1, 1, GPUX_EP_NONE, 1},
  {"mnv3 1x1 160-960@7", 2, 160, 960, 1, 7, 1, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 1x1 40-240@28", 1, 40, 240, 1, 28, 1, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 1x1 240-80@14", 1, 240, 80, 1, 14, 1, 1, GPUX_EP_NONE, 0},
  {"mnv3 1x1 80-200@14", 1, 80, 200, 1, 14, 1, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 1x1 200-80@14 res", 1, 200, 80, 1, 14, 1, 1, GPUX_EP_NONE, 1},
  {"mnv3 1x1 80-184@14", 2, 80, 184, 1, 14, 1, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 1x1 184-80@14 res", 2, 184, 80, 1, 14, 1, 1, GPUX_EP_NONE, 1},
  {"mnv3 1x1 80-480@14", 1, 80, 480, 1, 14, 1, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 dw3x3 72@56", 1, 72, 72, 72, 56, 3, 1, GPUX_EP_RELU, 0},
  {"mnv3 dw3x3 16@112", 1, 16, 16, 16, 112, 3, 1, GPUX_EP_RELU, 0},
  {"mnv3 dw3x3s2 64@112", 1, 64, 64, 64, 112, 3, 2, GPUX_EP_RELU, 0},
  {"mnv3 dw5x5s2 72@56", 1, 72, 72, 72, 56, 5, 2, GPUX_EP_RELU, 0},
  {"mnv3 dw5x5 120@28", 2, 120, 120, 120, 28, 5, 1, GPUX_EP_RELU, 0},
  {"mnv3 dw3x3s2 240@28", 1, 240, 240, 240, 28, 3, 2, GPUX_EP_HARDSWISH, 0},
  {"mnv3 dw3x3 200@14", 1, 200, 200, 200, 14, 3, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 dw3x3 184@14", 2, 184, 184, 184, 14, 3, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 dw3x3 480@14", 1, 480, 480, 480, 14, 3, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 dw3x3 672@14", 1, 672, 672, 672, 14, 3, 1, GPUX_EP_HARDSWISH, 0},
  {"mnv3 dw5x5s2 672@14", 1, 672, 672, 672, 14, 5, 2, GPUX_EP_HARDSWISH, 0},
  {"effnet se 1152-48@1", 4, 1152, 48, 1, 1, 1, 1, GPUX_EP_SILU, 0},
  {"effnet se 48-1152@1", 4, 48, 1152, 1, 1, 1, 1, GPUX_EP_SIGMOID, 0},
  {"effnet se 672-28@1", 3, 672, 28, 1, 1, 1, 1, GPUX_EP_SILU, 0},
  {"effnet se 28-672@1", 3, 28, 672, 1, 1, 1, 1, GPUX_EP_SIGMOID, 0},
  {"mnv3 se 960-240@1", 2, 960, 240, 1, 1, 1, 1, GPUX_EP_RELU, 0},
  {"mnv3 se 240-960@1", 2, 240, 960, 1, 1, 1, 1, GPUX_EP_HARDSIGMOID, 0},
  {"mnv3 se 672-168@1", 2, 672, 168, 1, 1, 1, 1, GPUX_EP_RELU, 0},
  {"mnv3 se 168-672@1", 2, 168, 672, 1, 1, 1, 1, GPUX_EP_HARDSIGMOID, 0},
};

static int wall; /* CONV_SHAPES_THREADS: wall-clock time, not the thread's CPU time */

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static float *randoms(int64_t n, float scale) {
  float *v = malloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++) v[i] = ((float)rand() / RAND_MAX * 2 - 1) * scale;
  return v;
}

/* CONV_SHAPES_EXPAND=1: the mobile networks' expansions with the depthwise convolution after each
 * (gpux.ExpandDepthwise's pairs), the two kernels one after the other against the fused one
 * (conv-depthwise.c), turn about in one loop so that both see the same machine; CONV_SHAPES_COLD
 * as above. Each line: ms a call of each, and the largest difference of their outputs. */
static int expand_pairs(const char *filter, float *cold, size_t cold_n) {
  static const struct { const char *name; int64_t c, m, h, k, s; int act; } pairs[] = {
      {"mnv3 16-64@112 dw3x3s2", 16, 64, 112, 3, 2, GPUX_EP_RELU},
      {"mnv3 24-72@56 dw3x3", 24, 72, 56, 3, 1, GPUX_EP_RELU},
      {"mnv3 24-72@56 dw5x5s2", 24, 72, 56, 5, 2, GPUX_EP_RELU},
      {"mnv3 40-120@28 dw5x5", 40, 120, 28, 5, 1, GPUX_EP_RELU},
      {"effnet 16-96@112 dw3x3s2", 16, 96, 112, 3, 2, GPUX_EP_SILU},
      {"effnet 24-144@56 dw3x3", 24, 144, 56, 3, 1, GPUX_EP_SILU},
      {"effnet 24-144@56 dw5x5s2", 24, 144, 56, 5, 2, GPUX_EP_SILU},
      {"effnet 40-240@28 dw5x5", 40, 240, 28, 5, 1, GPUX_EP_SILU},
  };
  double reps = getenv("CONV_SHAPES_REPS") ? atof(getenv("CONV_SHAPES_REPS")) : 1;
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    if (!strstr(pairs[i].name, filter)) continue;
    int64_t c = pairs[i].c, m = pairs[i].m, h = pairs[i].h, k = pairs[i].k, st = pairs[i].s, pad = (k - 1) / 2;
    int64_t o = (h + 2 * pad - k) / st + 1;
    float *x = randoms(c * h * h, 1), *we = randoms(m * c, 0.3f), *be = randoms(m, 0.1f), *mid = randoms(m * h * h, 0);
    float *wd = randoms(m * k * k, 0.3f), *bd = randoms(m, 0.1f), *y0 = randoms(m * o * o, 0), *y1 = randoms(m * o * o, 0);
    gpux__conv_epilogue ep = {.act = pairs[i].act};
    gpux__conv2d e = {.x = x, .w = we, .b = be, .y = mid, .n = 1, .c = c, .m = m, .g = 1, .h = h, .w_ = h, .kh = 1,
                      .kw = 1, .oh = h, .ow = h, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .ep = &ep};
    gpux__conv2d d = {.x = mid, .w = wd, .b = bd, .y = y0, .n = 1, .c = m, .m = m, .g = m, .h = h, .w_ = h, .kh = k,
                      .kw = k, .oh = o, .ow = o, .sh = st, .sw = st, .dh = 1, .dw = 1, .pt = pad, .pl = pad, .ep = &ep};
    gpux__conv2d df = d;
    df.x = NULL, df.y = y1;
    double flops = 2.0 * (double)(m * h * h) * (double)c + 2.0 * (double)(m * o * o) * (double)(k * k);
    int runs = cold ? (int)(8 * reps + 0.5) : (int)(2e8 / flops * reps) + 3, rc = 0;
    double ms[2] = {0, 0};
    for (int q = -1; q < runs && !rc; q++)
      for (int f = 0; f < 2 && !rc; f++) {
        if (cold)
          for (size_t z = 0; z < cold_n; z += 16) cold[z] += 1.0f;
        double t0 = cpu_ms();
        if (f) rc = gpux__conv2d_expand_dw(&e, &df);
        else if (!(rc = gpux__conv2d_implicit(&e)) && (rc = gpux__conv2d_depthwise16(&d)) == 1) rc = gpux__conv2d_depthwise(&d);
        if (q >= 0) ms[f] += cpu_ms() - t0;
      }
    float diff = 0;
    for (int64_t z = 0; z < m * o * o; z++) diff = fmaxf(diff, fabsf(y0[z] - y1[z]));
    if (rc) printf("%-28s not taken (%d)\n", pairs[i].name, rc);
    else printf("%-28s two %8.3f ms  fused %8.3f ms  (%+.1f%%)  diff %.1e\n", pairs[i].name, ms[0] / runs, ms[1] / runs,
                100 * (ms[1] - ms[0]) / ms[0], diff);
    free(x), free(we), free(be), free(mid), free(wd), free(bd), free(y0), free(y1);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *filter = argc > 1 ? argv[1] : "";
  /* CONV_SHAPES_PLAN=1: each shape once on GPUX_THREADS threads, as conv.c picks its kernel, with
   * GPUX_CONV_PLAN=1's notes of how the kernel splits it (task counts, not times) */
  int plan = getenv("CONV_SHAPES_PLAN") != NULL;
  /* CONV_SHAPES_THREADS=N: each shape on N threads, timed by the wall clock (on an idle machine:
   * how each shape scales, 1 against 16) */
  const char *threads = getenv("CONV_SHAPES_THREADS");
  wall = threads && atoi(threads) > 0;
  if (plan) setenv("GPUX_CONV_PLAN", "1", 1);
  else gpux__set_thread_count(wall ? atoi(threads) : 1);
  size_t cold_n = (size_t)256 << 20; /* floats: 1 GB */
  float *cold = getenv("CONV_SHAPES_COLD") ? calloc(cold_n, sizeof(float)) : NULL;
  if (getenv("CONV_SHAPES_EXPAND")) {
    expand_pairs(filter, cold, cold_n);
    free(cold);
    return 0;
  }
  double total[2] = {0, 0}, flops_all[2] = {0, 0};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const shape *s = &shapes[i];
    int model = !strncmp(s->name, "resnet", 6) ? 0 : 1;
    int64_t pad = (s->k - 1) / 2, o = (s->h + 2 * pad - s->k) / s->s + 1;
    double flops = 2.0 * (double)s->m * (double)(s->c / s->g) * (double)(s->k * s->k) * (double)(o * o);
    if (!strstr(s->name, filter)) continue;
    float *x = randoms(s->c * s->h * s->h, 1), *w = randoms(s->m * (s->c / s->g) * s->k * s->k, 0.1f);
    float *b = randoms(s->m, 0.1f), *y = randoms(s->m * o * o, 0), *r = randoms(s->m * o * o, 1);
    gpux__conv_epilogue ep = {.act = getenv("CONV_SHAPES_NOACT") ? GPUX_EP_NONE : (int)s->act, .res = s->res ? r : NULL, .y0 = y};
    gpux__conv2d p = {.x = x, .w = w, .b = b, .y = y, .n = 1, .c = s->c, .m = s->m, .g = s->g, .h = s->h,
                      .w_ = s->h, .kh = s->k, .kw = s->k, .oh = o, .ow = o, .sh = s->s, .sw = s->s, .dh = 1,
                      .dw = 1, .pt = pad, .pl = pad, .ep = &ep, .channels_last = getenv("CONV_SHAPES_NHWC") != NULL,
                      .x_planes = getenv("CONV_SHAPES_NHWC") && getenv("CONV_SHAPES_XPLANES")};
    int dw = s->g > 1 && s->g == s->c;
    /* one group and 16 channels or more, a window or a small plane, where a first run takes it
     * (gpux__conv_gemm_first): the product on packed weights, as conv.c runs it */
    gpux__sgemm_b wt = {0};
    int rows = getenv("CONV_SHAPES_ROWS") && gpux__conv_rows_takes(&p) &&
               !gpux__conv_gemm_pack(w, s->m, s->c, s->k * s->k, &wt);
    int gemm = !rows && s->g == 1 && s->c >= 16 && !getenv("CONV_SHAPES_IMPLICIT") &&
               (getenv("CONV_SHAPES_GEMM") || p.channels_last ||
                ((s->k > 1 || o * o <= 64) && gpux__conv_gemm_first(s->c, s->m, s->k * s->k, o * o))) &&
               !gpux__conv_gemm_pack(w, s->m, s->c, s->k * s->k, &wt);
    /* CONV_SHAPES_WINO=1 (with CONV_SHAPES_NHWC=1): conv-winograd.c's kernel where it takes the
     * shape, on the packed weights transformed */
    gpux__conv_wino_w u = {0};
    int wino = gemm && p.channels_last && getenv("CONV_SHAPES_WINO") && gpux__conv_wino_takes(&p) &&
               !gpux__conv_wino_pack(NULL, &wt, s->c, s->m, gpux__conv_wino_tile(&p), &u);
    double reps = getenv("CONV_SHAPES_REPS") ? atof(getenv("CONV_SHAPES_REPS")) : 1;
    int runs = plan ? 0 : cold ? (int)(4 * reps + 0.5) : (int)(2e8 / flops * reps) + 3, rc = 0;
#define RUN()                                                                                      \
  (wino ? gpux__conv2d_winograd(&p, &u) : gemm ? gpux__conv2d_gemm(&p, &wt) : rows ? gpux__conv2d_rows(&p, &wt) \
   : dw ? (p.channels_last ? gpux__conv2d_depthwise_nhwc(&p) : gpux__conv2d_depthwise(&p))            \
        : gpux__conv2d_implicit(&p))
    if (plan) {
      rc = RUN();
      uint64_t hash = 14695981039346656037u; /* FNV-1a of Y's bytes: the same on any thread count */
      const unsigned char *yb = (const unsigned char *)y;
      for (size_t z = 0; z < (size_t)(s->m * o * o) * sizeof *y; z++) hash = (hash ^ yb[z]) * 1099511628211u;
      if (rc) printf("%-30s not taken (%d)\n", s->name, rc);
      else printf("%-30s Y %016llx\n", s->name, (unsigned long long)hash);
      gpux__conv_gemm_free(&wt);
      free(x), free(w), free(b), free(y), free(r);
      continue;
    }
    for (int q = 0; q < 2 && !rc; q++) rc = RUN();
    double ms = 0;
    for (int q = 0; q < runs && !rc; q++) {
      if (cold) /* X, W and Y out of the caches, as a model's layers find them */
        for (size_t z = 0; z < cold_n; z += 16) cold[z] += 1.0f;
      double t0 = cpu_ms();
      rc = RUN();
      ms += cpu_ms() - t0;
    }
    ms /= runs;
    if (rc) printf("%-30s not taken (%d)\n", s->name, rc);
    else printf("%-30s x%d %9.3f ms %7.1f GFLOP/s  %6.2f ms in model\n", s->name, s->count, ms, flops / ms / 1e6,
                ms * s->count);
    total[model] += ms * s->count;
    flops_all[model] += flops * s->count;
    gpux__conv_gemm_free(&wt);
    gpux__conv_wino_free(&u);
    free(x), free(w), free(b), free(y), free(r);
  }
  for (int m = 0; m < 2; m++)
    if (total[m] > 0)
      printf("%-30s %9.3f ms of convolutions, %.2f GFLOP, %.1f GFLOP/s\n", m ? "effnet, mnv3 listed" : "resnet50",
             total[m], flops_all[m] / 1e9, flops_all[m] / total[m] / 1e6);
  free(cold);
  return 0;
}
