/* conv-ref.h — what the convolution kernels' unit tests (test-cpu-kernels.c, test-winograd.c)
 * share: a small seeded generator of random shapes and values, and FusedConv's activations in
 * float64, the reference the kernels' epilogues are checked against. Header-only, test-only;
 * a test defines CONV_REF_SEED before including it to get its own sequence. */
#ifndef GPUX_TEST_CONV_REF_H
#define GPUX_TEST_CONV_REF_H
#include <math.h>
#include <stdint.h>
#include "ops/conv.h"

static uint32_t rng = CONV_REF_SEED;

static int64_t rnd(int64_t lo, int64_t hi) { /* [lo, hi] */
  rng = rng * 1664525u + 1013904223u;
  return lo + (int64_t)((rng >> 8) % (uint32_t)(hi - lo + 1));
}

static float rndf(void) { return (float)rnd(-1000, 1000) / 500.0f; }

static double act_ref(const gpux__conv_epilogue *e, double v) {
  switch (e->act) {
  case GPUX_EP_RELU: return v < 0 ? 0 : v;
  case GPUX_EP_LEAKY: return v < 0 ? e->p0 * v : v;
  case GPUX_EP_CLIP: return v < e->p0 ? e->p0 : v > e->p1 ? e->p1 : v;
  case GPUX_EP_HARDSIGMOID: { double t = e->p0 * v + e->p1; return t < 0 ? 0 : t > 1 ? 1 : t; }
  case GPUX_EP_HARDSWISH: { double t = v + 3; t = t < 0 ? 0 : t > 6 ? 6 : t; return v * t / 6; }
  case GPUX_EP_SIGMOID: return 1 / (1 + exp(-v));
  case GPUX_EP_SILU: return v / (1 + exp(-v));
  }
  return v;
}

#endif
