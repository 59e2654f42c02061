/* test-cpu-kernels.c — unit tests of the CPU kernels' fast paths against plain float64 loops:
 * the direct float32 convolutions (ops/conv-direct.c, conv-depthwise.c, and conv-gemm.c's product
 * on packed weights, directly and through a Conv node's state) with FusedConv's epilogue over random
 * shapes (kernel sizes, strides, dilations, asymmetric pads, groups, activations), and the GEMM
 * helper (ops/gemm.h) on the one-row and one-column products it runs as matrix-vector ones, and
 * the Conv, ConvTranspose, MaxPool, AveragePool and MatMul kernels on float32 against their
 * float64 paths, and the packed-weight GEMM (ops/sgemm.c) with its AVX2 and AVX-512 kernels,
 * directly, on one row (ops/gemv.c) and through MatMul's node state and through a 1-D Conv of one input channel whose
 * windows are its rows (an STFT's), and gpux.FusedMatMul's GELU epilogues (ops/gemm-epilogue.c),
 * whose AVX-512 rows must give gelu_f's and gelu_tanh_f's values bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include "ops/conv.h"
#include "ops/gemm.h"
#include "ops/op.h"
#include "ops/fastmath.h"
#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/conv-epilogue16.h"
#endif

#define CONV_REF_SEED 12345u
#include "conv-ref.h"

/* Y of p computed directly in float64, compared with p->y. */
static void check(const gpux__conv2d *p) {
  int64_t cg = p->c / p->g, mg = p->m / p->g;
  double worst = 0;
  for (int64_t n = 0; n < p->n; n++)
    for (int64_t m = 0; m < p->m; m++)
      for (int64_t oh = 0; oh < p->oh; oh++)
        for (int64_t ow = 0; ow < p->ow; ow++) {
          int64_t at = ((n * p->m + m) * p->oh + oh) * p->ow + ow;
          double acc = p->b ? p->b[m] : 0, mag = fabs(acc);
          if (p->ep->res) acc += p->ep->res[at], mag += fabs(p->ep->res[at]); /* R at Y's place */
          for (int64_t c = 0; c < cg; c++)
            for (int64_t i = 0; i < p->kh; i++)
              for (int64_t j = 0; j < p->kw; j++) {
                int64_t ih = oh * p->sh - p->pt + i * p->dh, iw = ow * p->sw - p->pl + j * p->dw;
                if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w_) continue;
                double v = (double)p->x[((n * p->c + m / mg * cg + c) * p->h + ih) * p->w_ + iw] *
                           p->w[((m * cg + c) * p->kh + i) * p->kw + j];
                acc += v, mag += fabs(v);
              }
          double want = act_ref(p->ep, acc);
          if (p->ep->clamp) want = want < p->ep->lo ? p->ep->lo : want > p->ep->hi ? p->ep->hi : want;
          if (p->ep->scale) want = want * p->ep->scale[m] + p->ep->shift[m];
          double got = p->y[at];
          double err = fabs(got - want) / (1e-5 * (mag + 1));
          if (err > worst) worst = err;
        }
  if (worst > 1) fail_msg("c %lld m %lld g %lld %lldx%lld k %lldx%lld s %lld,%lld d %lld,%lld: error %g of the bound",
                          (long long)p->c, (long long)p->m, (long long)p->g, (long long)p->h, (long long)p->w_,
                          (long long)p->kh, (long long)p->kw, (long long)p->sh, (long long)p->sw,
                          (long long)p->dh, (long long)p->dw, worst);
}

/* A random problem: depthwise when dw is set, else a grouped convolution. */
static void run_case(int dw) {
  gpux__conv_epilogue ep = {.act = (int)rnd(0, GPUX_EP_SILU), .p0 = -0.5f, .p1 = 1.5f};
  if (ep.act == GPUX_EP_LEAKY) ep.p0 = 0.1f;
  if (ep.act == GPUX_EP_HARDSIGMOID) ep.p0 = 0.2f, ep.p1 = 0.5f;
  if (!rnd(0, 2)) ep.clamp = 1, ep.lo = -0.3f, ep.hi = rnd(0, 1) ? 2.0f : INFINITY;
  gpux__conv2d p = {.n = rnd(1, 2), .kh = rnd(1, 5), .kw = rnd(1, 5), .dh = rnd(1, 2), .dw = rnd(1, 2), .ep = &ep};
  if (dw) {
    p.c = p.g = rnd(1, 9);
    p.m = p.c * rnd(1, 2);
    p.sh = rnd(1, 3), p.sw = rnd(1, 3);
  } else {
    p.g = rnd(1, 3);
    p.c = p.g * rnd(1, 12);
    p.m = p.g * rnd(1, 13);
    p.sh = rnd(0, 1) ? 1 : rnd(1, 3), p.sw = rnd(0, 1) ? 1 : rnd(1, 3);
  }
  p.h = rnd(1, 30), p.w_ = dw && !rnd(0, 3) ? rnd(40, 150) : rnd(1, 40); /* wide planes: rows of vectors */
  p.pt = rnd(0, 3), p.pl = rnd(0, 3);
  int64_t pb = rnd(0, 3), pr = rnd(0, 3);
  if (!rnd(0, 3)) p.pt = p.pl = pb = pr = 0; /* unpadded: the implicit GEMM reads X in place */
  int64_t span_h = p.h + p.pt + pb - ((p.kh - 1) * p.dh + 1), span_w = p.w_ + p.pl + pr - ((p.kw - 1) * p.dw + 1);
  if (span_h < 0 || span_w < 0) return;
  p.oh = span_h / p.sh + 1, p.ow = span_w / p.sw + 1;
  int64_t nx = p.n * p.c * p.h * p.w_, nw = p.m * (p.c / p.g) * p.kh * p.kw, ny = p.n * p.m * p.oh * p.ow;
  float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w);
  float *b = malloc((size_t)p.m * sizeof *b), *y = malloc((size_t)ny * sizeof *y);
  float *sc = malloc((size_t)p.m * sizeof *sc), *sh = malloc((size_t)p.m * sizeof *sh);
  for (int64_t i = 0; i < nx; i++) x[i] = rndf();
  for (int64_t i = 0; i < nw; i++) w[i] = rndf();
  for (int64_t i = 0; i < p.m; i++) b[i] = rndf(), sc[i] = rndf(), sh[i] = rndf();
  for (int64_t i = 0; i < ny; i++) y[i] = NAN;
  p.x = x, p.w = w, p.y = y, p.b = rnd(0, 1) ? b : NULL;
  if (rnd(0, 1)) ep.scale = sc, ep.shift = sh;
  float *r = NULL; /* a residual (FusedConv's R), for the implicit GEMM */
  if (!dw && rnd(0, 1)) {
    r = malloc((size_t)ny * sizeof *r);
    for (int64_t i = 0; i < ny; i++) r[i] = rndf();
    ep.res = r, ep.y0 = y;
  }
  int rc = dw ? gpux__conv2d_depthwise(&p) : gpux__conv2d_implicit(&p);
  /* tiny planes are left to conv.c, but for the AVX-512 depthwise kernel's shapes */
  assert_int_equal(rc, dw && gpux__conv_dw16_available() && p.m == p.c ? 0 : p.oh * p.ow < 16);
  if (!rc) check(&p);
  free(x), free(w), free(b), free(y), free(sc), free(sh), free(r);
}

static void test_implicit_gemm(void **state) {
  (void)state;
  if (!gpux__conv_direct_available()) skip();
  for (int i = 0; i < 300; i++) run_case(0);
}

static void test_depthwise(void **state) {
  (void)state;
  if (!gpux__conv_direct_available()) skip();
  for (int i = 0; i < 300; i++) run_case(1);
}

/* Shapes that cross the kernels' blocking: more than 256 taps, more than 128 output channels,
 * rows wider than a register block, and 1x1 kernels read in place from X whose last block ends
 * inside a vector. */
static void test_blocking(void **state) {
  (void)state;
  if (!gpux__conv_direct_available()) skip();
  static const int64_t shapes[][6] = {/* c, m, h, w, k, pad */
                                      {40, 136, 9, 27, 3, 1}, {300, 5, 4, 50, 1, 0}, {33, 7, 3, 70, 3, 0},
                                      {7, 9, 3, 11, 1, 0}, {5, 6, 1, 19, 1, 0}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t *d = shapes[s];
    gpux__conv_epilogue ep = {.act = GPUX_EP_RELU};
    gpux__conv2d p = {.n = 1, .c = d[0], .m = d[1], .g = 1, .h = d[2], .w_ = d[3], .kh = d[4], .kw = d[4],
                      .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pt = d[5], .pl = d[5], .ep = &ep};
    p.oh = p.h + 2 * d[5] - d[4] + 1, p.ow = p.w_ + 2 * d[5] - d[4] + 1;
    int64_t nx = p.c * p.h * p.w_, nw = p.m * p.c * p.kh * p.kw, ny = p.m * p.oh * p.ow;
    float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *y = malloc((size_t)ny * sizeof *y);
    for (int64_t i = 0; i < nx; i++) x[i] = rndf();
    for (int64_t i = 0; i < nw; i++) w[i] = rndf();
    p.x = x, p.w = w, p.y = y;
    assert_int_equal(gpux__conv2d_implicit(&p), 0);
    check(&p);
    free(x), free(w), free(y);
  }
}

/* Depthwise shapes of the mobile networks, with channel counts that end inside a block of 16 and
 * a residual in the epilogue: 7 x 7 and 14 x 14 planes, 3 x 3 and 5 x 5 windows, strides 1 and
 * 2, asymmetric pads, two images; wide 3 x 3 and 5 x 5 planes of 9 to 21 output rows, which the
 * rows' kernel takes four (3 x 3) or two (5 x 5) rows at a time and the rest one at a time, with
 * rows of more than 64 outputs (two calls a row) and of 26 and 28 (5 x 5 windows from 24 on, 3 x 3
 * of stride 2 from 12). */
static void test_depthwise_blocks(void **state) {
  (void)state;
  if (!gpux__conv_direct_available()) skip();
  static const int64_t shapes[][7] = {/* c, h, w, k, stride, pad top/left, pad bottom/right */
                                      {16, 7, 7, 5, 1, 2, 2}, {17, 14, 14, 3, 2, 1, 1}, {40, 7, 9, 3, 1, 1, 1},
                                      {33, 14, 14, 5, 2, 2, 1}, {48, 29, 31, 3, 1, 0, 2}, {5, 3, 4, 3, 1, 1, 1},
                                      {1, 20, 70, 5, 1, 2, 2}, {96, 17, 19, 3, 2, 1, 0}, {24, 9, 60, 3, 1, 1, 1},
                                      {20, 11, 113, 5, 2, 2, 2}, {3, 6, 130, 3, 2, 0, 1}, {17, 30, 30, 5, 1, 2, 2},
                                      {5, 13, 100, 3, 1, 1, 1}, {6, 21, 150, 3, 2, 1, 1}, {4, 18, 40, 3, 2, 0, 0},
                                      {9, 27, 56, 5, 2, 2, 2}, {12, 9, 26, 5, 1, 2, 2}, {3, 12, 90, 5, 1, 2, 2},
                                      /* 3 x 3 of stride 2 read from X's rows: 1-4 vectors a call, rows
                                       * in fours and the rest, pads 0-2 */
                                      {7, 23, 67, 3, 2, 1, 0}, {2, 10, 224, 3, 2, 2, 2}, {16, 112, 112, 3, 2, 1, 1},
                                      {3, 9, 95, 3, 2, 1, 2}, {2, 16, 64, 3, 2, 0, 1}, {24, 28, 28, 3, 2, 1, 1},
                                      {5, 9, 25, 3, 2, 1, 1}, {3, 13, 67, 5, 2, 2, 2}, {4, 10, 50, 5, 2, 1, 2},
                                      /* 3 x 3 of stride 1 read from X's rows: edge vectors first, last,
                                       * both, pads 0-3, rows that end inside a vector */
                                      {2, 11, 112, 3, 1, 1, 1}, {3, 9, 33, 3, 1, 0, 2}, {5, 10, 47, 3, 1, 2, 0},
                                      {1, 7, 160, 3, 1, 2, 2}, {2, 6, 40, 3, 1, 3, 3}, {4, 5, 66, 3, 1, 0, 0},
                                      /* channels last: borders 4 blocks of 16 a call, the last one part */
                                      {184, 14, 14, 3, 1, 1, 1}, {72, 7, 7, 5, 1, 2, 2}, {200, 14, 14, 3, 2, 0, 1},
                                      {40, 9, 11, 5, 2, 2, 1}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t *d = shapes[s];
    gpux__conv_epilogue ep = {.act = s % 2 ? GPUX_EP_SILU : GPUX_EP_RELU};
    gpux__conv2d p = {.n = 2, .c = d[0], .m = d[0], .g = d[0], .h = d[1], .w_ = d[2], .kh = d[3], .kw = d[3],
                      .sh = d[4], .sw = d[4], .dh = 1, .dw = 1, .pt = d[5], .pl = d[5], .ep = &ep};
    p.oh = (p.h + d[5] + d[6] - p.kh) / p.sh + 1, p.ow = (p.w_ + d[5] + d[6] - p.kw) / p.sw + 1;
    int64_t nx = p.n * p.c * p.h * p.w_, nw = p.m * p.kh * p.kw, ny = p.n * p.m * p.oh * p.ow;
    float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *y = malloc((size_t)ny * sizeof *y);
    float *b = malloc((size_t)p.m * sizeof *b), *r = malloc((size_t)ny * sizeof *r), *want = malloc((size_t)ny * sizeof *want);
    for (int64_t i = 0; i < nx; i++) x[i] = rndf();
    for (int64_t i = 0; i < nw; i++) w[i] = rndf();
    for (int64_t i = 0; i < p.m; i++) b[i] = rndf();
    for (int64_t i = 0; i < ny; i++) r[i] = rndf(), y[i] = NAN;
    p.x = x, p.w = w, p.b = b, p.y = y;
    int rc = gpux__conv2d_depthwise(&p);
    if (rc == 1) { /* a tiny plane on the AVX2 kernel: left to conv.c */
      assert_true(p.oh * p.ow < 16);
    } else {
      assert_int_equal(rc, 0);
      check(&p);
      if (p.c >= 16 && gpux__conv_dw16_available()) { /* channels last (gpux.ConvNHWC) against the planes' result */
        int64_t hw = p.h * p.w_, os = p.oh * p.ow;
        float *xl = malloc((size_t)nx * sizeof *xl), *yl = malloc((size_t)ny * sizeof *yl);
        for (int64_t n = 0; n < p.n; n++)
          for (int64_t q = 0; q < hw; q++)
            for (int64_t ch = 0; ch < p.c; ch++) xl[(n * hw + q) * p.c + ch] = x[(n * p.c + ch) * hw + q];
        for (int64_t i = 0; i < ny; i++) yl[i] = NAN;
        gpux__conv2d pl = p;
        pl.x = xl, pl.y = yl, pl.channels_last = 1;
        assert_int_equal(gpux__conv2d_depthwise_nhwc(&pl), 0);
        for (int64_t n = 0; n < p.n; n++)
          for (int64_t q = 0; q < os; q++)
            for (int64_t ch = 0; ch < p.c; ch++) {
              float want_y = y[(n * p.c + ch) * os + q], got = yl[(n * os + q) * p.c + ch];
              if (!(fabsf(got - want_y) <= 1e-5f * (1 + fabsf(want_y))))
                fail_msg("channels last c %lld %lldx%lld k %lld s %lld: position %lld channel %lld %g, not %g",
                         (long long)p.c, (long long)p.h, (long long)p.w_, (long long)p.kh, (long long)p.sh,
                         (long long)q, (long long)ch, got, want_y);
            }
        free(xl), free(yl);
      }
      /* the same with the residual: Y - R before the activation must be what it was */
      gpux__conv_epilogue plain = {.act = GPUX_EP_NONE}, with_res = {.act = GPUX_EP_NONE, .res = r, .y0 = want};
      p.ep = &plain, p.y = y;
      assert_int_equal(gpux__conv2d_depthwise(&p), 0);
      p.ep = &with_res, p.y = want;
      assert_int_equal(gpux__conv2d_depthwise(&p), 0);
      for (int64_t i = 0; i < ny; i++) assert_true(fabsf(want[i] - (y[i] + r[i])) <= 1e-5f * (1 + fabsf(want[i])));
    }
    free(x), free(w), free(y), free(b), free(r), free(want);
  }
}

/* The product on packed weights (ops/conv-gemm.c) over random shapes of one group and 16 or more
 * input channels: windows of 1 to 5 taps a side, strides, dilations, asymmetric pads, output
 * channel counts that end inside a panel of 64, positions that end inside a block of 6, planes
 * that go in blocks of 6 and 5 (7 x 7, 14 x 14, 5 x 10) or leave a rest of 1-4 (3 x 3, 2 x 7),
 * planes down to one position, and the residual in the epilogue. */
static void test_conv_gemm(void **state) {
  (void)state;
  if (!gpux__conv_gemm_available()) skip();
  for (int i = 0; i < 60; i++) {
    gpux__conv_epilogue ep = {.act = (int)rnd(0, GPUX_EP_SILU), .p0 = -0.5f, .p1 = 1.5f};
    if (ep.act == GPUX_EP_LEAKY) ep.p0 = 0.1f;
    if (ep.act == GPUX_EP_HARDSIGMOID) ep.p0 = 0.2f, ep.p1 = 0.5f;
    gpux__conv2d p = {.n = rnd(1, 2), .c = rnd(16, 40), .m = rnd(1, 150), .g = 1, .kh = rnd(1, 5), .kw = rnd(1, 5),
                      .sh = rnd(1, 3), .sw = rnd(1, 3), .dh = rnd(1, 2), .dw = rnd(1, 2), .ep = &ep};
    if (i % 4 == 0) p.kh = p.kw = 1, p.dh = p.dw = 1; /* pointwise, strided or not */
    if (i % 5 == 0) p.c = 160;                        /* more channels than a pass over a tap */
    p.h = rnd(1, 20), p.w_ = rnd(1, 20), p.pt = rnd(0, 3), p.pl = rnd(0, 3);
    int64_t pb = rnd(0, 3), pr = rnd(0, 3);
    if (i % 6 == 1) /* one position of a 1 x 1 X and one image: a product of one row (gemv.c) */
      p.n = 1, p.h = p.w_ = 1, p.kh = p.kw = 1, p.dh = p.dw = 1, p.pt = p.pl = pb = pr = 0;
    if (i % 6 == 3) { /* a plane of np positions: 6a + 5b, or too few for that */
      static const int64_t planes[][2] = {{7, 7}, {14, 14}, {5, 10}, {3, 3}, {2, 7}, {5, 5}, {4, 5}, {5, 11}};
      const int64_t *pl = planes[i / 6 % 8];
      p.h = pl[0], p.w_ = pl[1], p.sh = p.sw = 1, p.dh = p.dw = 1, p.pt = p.pl = pb = pr = 0;
      if (p.kh > 1) p.kh = p.kw = 3, p.pt = p.pl = pb = pr = 1;
    }
    int64_t span_h = p.h + p.pt + pb - ((p.kh - 1) * p.dh + 1), span_w = p.w_ + p.pl + pr - ((p.kw - 1) * p.dw + 1);
    if (span_h < 0 || span_w < 0) continue;
    p.oh = span_h / p.sh + 1, p.ow = span_w / p.sw + 1;
    int64_t nx = p.n * p.c * p.h * p.w_, nw = p.m * p.c * p.kh * p.kw, ny = p.n * p.m * p.oh * p.ow;
    float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *y = malloc((size_t)ny * sizeof *y);
    float *b = malloc((size_t)p.m * sizeof *b), *r = malloc((size_t)ny * sizeof *r), *want = malloc((size_t)ny * sizeof *want);
    for (int64_t q = 0; q < nx; q++) x[q] = rndf();
    for (int64_t q = 0; q < nw; q++) w[q] = rndf();
    for (int64_t q = 0; q < p.m; q++) b[q] = rndf();
    for (int64_t q = 0; q < ny; q++) r[q] = rndf(), y[q] = NAN;
    p.x = x, p.w = w, p.y = y, p.b = rnd(0, 1) ? b : NULL;
    gpux__sgemm_b wt;
    assert_int_equal(gpux__conv_gemm_pack(w, p.m, p.c, p.kh * p.kw, &wt), 0);
    p.w = NULL; /* the kernel reads the packed weights only */
    assert_int_equal(gpux__conv2d_gemm(&p, &wt), 0);
    p.w = w;
    check(&p);
    /* with the residual: Y - R before the activation must be what it was without */
    gpux__conv_epilogue plain = {.act = GPUX_EP_NONE}, with_res = {.act = GPUX_EP_NONE, .res = r, .y0 = want};
    p.ep = &plain;
    assert_int_equal(gpux__conv2d_gemm(&p, &wt), 0);
    p.ep = &with_res, p.y = want;
    assert_int_equal(gpux__conv2d_gemm(&p, &wt), 0);
    for (int64_t q = 0; q < ny; q++) assert_true(fabsf(want[q] - (y[q] + r[q])) <= 1e-5f * (1 + fabsf(want[q])));
    gpux__conv_gemm_free(&wt);
    free(x), free(w), free(y), free(b), free(r), free(want);
  }
}

/* The same product with X, Y and the residual channels last (gpux.ConvNHWC's layout), whose
 * blocks finish their sums on the last pass (bias, residual, activation, clamp, scale and shift;
 * in registers, or on a full block's rows in L1 after the assembly kernel), against the planes' path on the same shapes, transposed: panels of 64
 * channels and partial ones (narrow ones of 48 or fewer too), several passes over a tap, planes
 * of 1 to 400 positions (blocks of 1 to 6, tiles of up to 258; planes of 49, 50, 196 positions
 * and others in blocks of 6 and 5), on 1 and 2 threads. */
static void test_conv_gemm_nhwc(void **state) {
  (void)state;
  if (!gpux__conv_gemm_available()) skip();
  int threads = gpux__set_run_threads(0); /* the run caps below: the pool has started */
  for (int i = 0; i < 60; i++) {
    gpux__set_run_threads(1 + i % 2);
    int64_t m = i % 3 == 0 ? rnd(100, 300) : i % 6 == 4 ? rnd(64, 150) : rnd(1, 150);
    float *sc = malloc((size_t)m * sizeof *sc), *sh = malloc((size_t)m * sizeof *sh);
    for (int64_t q = 0; q < m; q++) sc[q] = rndf(), sh[q] = rndf();
    gpux__conv_epilogue ep = {.act = (int)rnd(0, GPUX_EP_SILU), .p0 = -0.5f, .p1 = 1.5f, .clamp = rnd(0, 1),
                              .lo = -0.75f, .hi = 0.75f, .scale = rnd(0, 1) ? sc : NULL};
    if (ep.act == GPUX_EP_LEAKY) ep.p0 = 0.1f;
    if (ep.act == GPUX_EP_HARDSIGMOID) ep.p0 = 0.2f, ep.p1 = 0.5f;
    ep.shift = ep.scale ? sh : NULL;
    gpux__conv2d p = {.n = rnd(1, 2), .c = rnd(16, 40), .m = m, .g = 1, .kh = rnd(1, 3), .kw = rnd(1, 3),
                      .sh = rnd(1, 2), .sw = rnd(1, 2), .dh = 1, .dw = 1};
    if (i % 4 < 2) p.kh = p.kw = 1; /* pointwise, strided or not */
    if (i % 5 == 0) p.c = 160;      /* more channels than a pass over a tap */
    p.h = rnd(1, 20), p.w_ = rnd(1, 20), p.pt = p.pl = p.kh > 1 ? 1 : 0;
    if (i % 6 == 3 || i % 6 == 4) { /* planes in blocks of 6 and 5 (or too few for that), strides of 1 */
      static const int64_t planes[][2] = {{7, 7}, {14, 14}, {5, 10}, {5, 5}, {2, 7}, {4, 4}, {3, 17}, {8, 8}};
      const int64_t *pl = planes[(i / 6 * 2 + i % 6 - 3) % 8];
      p.h = pl[0], p.w_ = pl[1], p.sh = p.sw = 1;
    }
    p.oh = (p.h + 2 * p.pt - p.kh) / p.sh + 1, p.ow = (p.w_ + 2 * p.pl - p.kw) / p.sw + 1;
    if (p.oh < 1 || p.ow < 1) {
      free(sc), free(sh);
      continue;
    }
    int64_t hw = p.h * p.w_, os = p.oh * p.ow, nx = p.n * p.c * hw, nw = p.m * p.c * p.kh * p.kw, ny = p.n * p.m * os;
    float *x = malloc((size_t)nx * sizeof *x), *xl = malloc((size_t)nx * sizeof *xl), *w = malloc((size_t)nw * sizeof *w);
    float *b = malloc((size_t)p.m * sizeof *b), *r = malloc((size_t)ny * sizeof *r), *rl = malloc((size_t)ny * sizeof *rl);
    float *y = malloc((size_t)ny * sizeof *y), *yl = malloc((size_t)ny * sizeof *yl);
    for (int64_t q = 0; q < nx; q++) x[q] = rndf();
    for (int64_t q = 0; q < nw; q++) w[q] = rndf();
    for (int64_t q = 0; q < p.m; q++) b[q] = rndf();
    for (int64_t q = 0; q < ny; q++) r[q] = rndf(), y[q] = yl[q] = NAN;
    for (int64_t n = 0; n < p.n; n++) /* [n][c][hw] -> [n][hw][c], and R [n][m][os] -> [n][os][m] */
      for (int64_t q = 0; q < hw; q++)
        for (int64_t ch = 0; ch < p.c; ch++) xl[(n * hw + q) * p.c + ch] = x[(n * p.c + ch) * hw + q];
    for (int64_t n = 0; n < p.n; n++)
      for (int64_t q = 0; q < os; q++)
        for (int64_t o = 0; o < p.m; o++) rl[(n * os + q) * p.m + o] = r[(n * p.m + o) * os + q];
    int res = (int)rnd(0, 1);
    gpux__sgemm_b wt;
    assert_int_equal(gpux__conv_gemm_pack(w, p.m, p.c, p.kh * p.kw, &wt), 0);
    p.b = rnd(0, 1) ? b : NULL;
    ep.res = res ? r : NULL, ep.y0 = y;
    p.x = x, p.y = y, p.ep = &ep;
    assert_int_equal(gpux__conv2d_gemm(&p, &wt), 0);
    gpux__conv_epilogue epl = ep;
    epl.res = res ? rl : NULL, epl.y0 = yl;
    p.x = xl, p.y = yl, p.ep = &epl, p.channels_last = 1;
    assert_int_equal(gpux__conv2d_gemm(&p, &wt), 0);
    for (int64_t n = 0; n < p.n; n++)
      for (int64_t q = 0; q < os; q++)
        for (int64_t o = 0; o < p.m; o++) {
          float want = y[(n * p.m + o) * os + q], got = yl[(n * os + q) * p.m + o];
          if (!(fabsf(got - want) <= 1e-5f * (1 + fabsf(want))))
            fail_msg("c %lld m %lld %lldx%lld k %lldx%lld s %lld,%lld act %d clamp %d scale %d res %d: position %lld channel %lld %g, not %g",
                     (long long)p.c, (long long)p.m, (long long)p.h, (long long)p.w_, (long long)p.kh, (long long)p.kw,
                     (long long)p.sh, (long long)p.sw, ep.act, ep.clamp, ep.scale != NULL, res, (long long)q, (long long)o, got, want);
        }
    gpux__conv_gemm_free(&wt);
    free(x), free(xl), free(w), free(b), free(r), free(rl), free(y), free(yl), free(sc), free(sh);
  }
  gpux__set_run_threads(threads);
}

/* gpux__sgemm_block_pf (the register block asking the next pass's lines into L2 as it runs, as
 * conv-winograd.c's products do where their blocks are few) stores what gpux__sgemm_block stores,
 * bit for bit, with C added or not: 1-6 rows, 1-64 channels, 1-130 k steps. */
static void test_sgemm_block_pf(void **state) {
  (void)state;
  if (gpux__sgemm_nr() != 64) skip();
  float *b = aligned_alloc(64, 130 * 64 * sizeof(float)), *pf = aligned_alloc(64, 130 * 256 * sizeof(float));
  float av[6][130], c0[6 * 80], c1[6 * 80];
  for (int q = 0; q < 130 * 64; q++) b[q] = rndf();
  for (int q = 0; q < 130 * 256; q++) pf[q] = 0;
  for (int i = 0; i < 6; i++)
    for (int r = 0; r < 130; r++) av[i][r] = rndf();
  for (int t = 0; t < 60; t++) {
    int mr = (int)rnd(1, 6), add = (int)rnd(0, 1);
    int64_t nc = t % 3 == 0 ? rnd(1, 16) : rnd(17, 64), kc = rnd(1, 130);
    const float *a[6];
    for (int i = 0; i < 6; i++) a[i] = av[GPUX__MIN(i, mr - 1)];
    for (int q = 0; q < 6 * 80; q++) c0[q] = c1[q] = rndf();
    gpux__sgemm_block(kc, a, b, c0, 80, mr, nc, add);
    gpux__sgemm_block_pf(kc, a, b, c1, 80, mr, nc, add, pf);
    assert_memory_equal(c0, c1, sizeof c0);
  }
  free(b), free(pf);
}

/* conv-rows.c (a stem: few input channels, a window of several taps) with Y channels last: X
 * read from its planes (x_planes, a region's first convolution: interleaved into the padded copy
 * by permutes for 1-4 channels, by 16 x 16 transposes for 5-15) and X channels last (copied),
 * every block finishing its sums in registers (bias, residual, activation, clamp, scale and
 * shift). Against the float64 sums (check, on the planes' path of the same kernel), and the two
 * channels-last results bit for bit, panels of 16-48 and 64 channels and partial ones, on 1 and
 * 2 threads; the kernel must take every shape. */
static void test_conv_rows_nhwc(void **state) {
  (void)state;
  gpux__conv2d probe = {.n = 1, .c = 3, .m = 64, .g = 1, .h = 8, .w_ = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                        .dh = 1, .dw = 1, .oh = 6, .ow = 6};
  if (!gpux__conv_rows_takes(&probe)) skip();
  int threads = gpux__set_run_threads(0); /* the run caps below: the pool has started */
  for (int i = 0; i < 40; i++) {
    gpux__set_run_threads(1 + i % 2);
    int64_t m = i % 4 == 0 ? rnd(65, 200) : i % 4 == 1 ? 64 : rnd(1, 48);
    float *sc = malloc((size_t)m * sizeof *sc), *sh = malloc((size_t)m * sizeof *sh);
    for (int64_t q = 0; q < m; q++) sc[q] = rndf(), sh[q] = rndf();
    gpux__conv_epilogue ep = {.act = (int)rnd(0, GPUX_EP_SILU), .p0 = -0.5f, .p1 = 1.5f, .clamp = rnd(0, 1),
                              .lo = -0.75f, .hi = 0.75f, .scale = rnd(0, 1) ? sc : NULL};
    if (ep.act == GPUX_EP_LEAKY) ep.p0 = 0.1f;
    if (ep.act == GPUX_EP_HARDSIGMOID) ep.p0 = 0.2f, ep.p1 = 0.5f;
    ep.shift = ep.scale ? sh : NULL;
    int64_t k = (int64_t[]){3, 5, 7}[i % 3];
    gpux__conv2d p = {.n = rnd(1, 2), .c = i < 30 ? rnd(1, 4) : rnd(5, 15), .m = m, .g = 1, .kh = k, .kw = k,
                      .sh = rnd(1, 2), .sw = rnd(1, 2), .dh = 1, .dw = 1};
    p.h = rnd(k, 40), p.w_ = rnd(k, 40), p.pt = rnd(0, k / 2), p.pl = rnd(0, k / 2);
    p.oh = (p.h + 2 * p.pt - p.kh) / p.sh + 1, p.ow = (p.w_ + 2 * p.pl - p.kw) / p.sw + 1;
    assert_true(gpux__conv_rows_takes(&p));
    int64_t hw = p.h * p.w_, os = p.oh * p.ow, nx = p.n * p.c * hw, nw = p.m * p.c * p.kh * p.kw, ny = p.n * p.m * os;
    float *x = malloc((size_t)nx * sizeof *x), *xl = malloc((size_t)nx * sizeof *xl), *w = malloc((size_t)nw * sizeof *w);
    float *b = malloc((size_t)p.m * sizeof *b), *r = malloc((size_t)ny * sizeof *r), *rl = malloc((size_t)ny * sizeof *rl);
    float *y = malloc((size_t)ny * sizeof *y), *yl = malloc((size_t)ny * sizeof *yl), *yc = malloc((size_t)ny * sizeof *yc);
    for (int64_t q = 0; q < nx; q++) x[q] = rndf();
    for (int64_t q = 0; q < nw; q++) w[q] = rndf();
    for (int64_t q = 0; q < p.m; q++) b[q] = rndf();
    for (int64_t q = 0; q < ny; q++) r[q] = rndf(), y[q] = yl[q] = yc[q] = NAN;
    for (int64_t n = 0; n < p.n; n++) /* [n][c][hw] -> [n][hw][c], and R [n][m][os] -> [n][os][m] */
      for (int64_t q = 0; q < hw; q++)
        for (int64_t ch = 0; ch < p.c; ch++) xl[(n * hw + q) * p.c + ch] = x[(n * p.c + ch) * hw + q];
    for (int64_t n = 0; n < p.n; n++)
      for (int64_t q = 0; q < os; q++)
        for (int64_t o = 0; o < p.m; o++) rl[(n * os + q) * p.m + o] = r[(n * p.m + o) * os + q];
    gpux__sgemm_b wt;
    assert_int_equal(gpux__conv_gemm_pack(w, p.m, p.c, p.kh * p.kw, &wt), 0);
    p.b = rnd(0, 1) ? b : NULL;
    /* the planes' path, without the residual: against the float64 sums */
    p.x = x, p.y = y, p.w = w, p.ep = &ep;
    assert_int_equal(gpux__conv2d_rows(&p, &wt), 0);
    check(&p);
    /* channels last, X's planes and X channels last, with the residual or not */
    int res = (int)rnd(0, 1);
    gpux__conv_epilogue epl = ep, epc = ep;
    epl.res = res ? rl : NULL, epl.y0 = yl;
    epc.res = res ? rl : NULL, epc.y0 = yc;
    p.w = NULL; /* the kernel reads the packed weights only */
    p.x = x, p.y = yl, p.ep = &epl, p.channels_last = 1, p.x_planes = 1;
    assert_int_equal(gpux__conv2d_rows(&p, &wt), 0);
    p.x = xl, p.y = yc, p.ep = &epc, p.x_planes = 0;
    assert_int_equal(gpux__conv2d_rows(&p, &wt), 0);
    assert_memory_equal(yl, yc, (size_t)ny * sizeof *yl);
    /* the planes' result again with the residual added before the epilogue, transposed */
    gpux__conv_epilogue epr = ep;
    epr.res = res ? r : NULL, epr.y0 = y;
    p.x = x, p.y = y, p.ep = &epr, p.channels_last = 0;
    assert_int_equal(gpux__conv2d_rows(&p, &wt), 0);
    for (int64_t n = 0; n < p.n; n++)
      for (int64_t q = 0; q < os; q++)
        for (int64_t o = 0; o < p.m; o++) {
          float want = y[(n * p.m + o) * os + q], got = yl[(n * os + q) * p.m + o];
          if (!(fabsf(got - want) <= 1e-5f * (1 + fabsf(want))))
            fail_msg("c %lld m %lld %lldx%lld k %lld s %lld,%lld act %d clamp %d scale %d res %d: position %lld channel %lld %g, not %g",
                     (long long)p.c, (long long)p.m, (long long)p.h, (long long)p.w_, (long long)p.kh, (long long)p.sh,
                     (long long)p.sw, ep.act, ep.clamp, ep.scale != NULL, res, (long long)q, (long long)o, got, want);
        }
    gpux__conv_gemm_free(&wt);
    free(x), free(xl), free(w), free(b), free(r), free(rl), free(y), free(yl), free(yc), free(sc), free(sh);
  }
  gpux__set_run_threads(threads);
}

/* C = alpha op(A) op(B) + beta C through gpux__gemm_serial, for every transposition, with
 * padded leading dimensions, against float64 loops. */
static void gemm_case(int64_t m, int64_t n, int64_t k, int ta, int tb) {
  int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
  int64_t ra = ta ? k : m, rb = tb ? n : k; /* rows of A and B as stored */
  float *a = malloc((size_t)(ra * lda) * sizeof *a), *b = malloc((size_t)(rb * ldb) * sizeof *b);
  float *c = malloc((size_t)(m * ldc) * sizeof *c), *c0 = malloc((size_t)(m * ldc) * sizeof *c0);
  for (int64_t i = 0; i < ra * lda; i++) a[i] = rndf();
  for (int64_t i = 0; i < rb * ldb; i++) b[i] = rndf();
  for (int64_t i = 0; i < m * ldc; i++) c[i] = c0[i] = rndf();
  gpux__gemm g = {.trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = k, .alpha = 0.5, .beta = 2.0,
                  .a = a, .b = b, .c = c, .lda = lda, .ldb = ldb, .ldc = ldc};
  gpux__gemm_serial(&g);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < ldc; j++) {
      double want = c0[i * ldc + j], mag = fabs(want) * 2;
      if (j < n) {
        double acc = 0;
        for (int64_t p = 0; p < k; p++) {
          double v = (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
          acc += v, mag += fabs(v) / 2;
        }
        want = 0.5 * acc + 2.0 * want;
      }
      if (fabs(c[i * ldc + j] - want) > 1e-5 * (mag + 1))
        fail_msg("gemm %lldx%lldx%lld ta %d tb %d: C[%lld, %lld] = %g, want %g", (long long)m, (long long)n,
                 (long long)k, ta, tb, (long long)i, (long long)j, c[i * ldc + j], want);
    }
  free(a), free(b), free(c), free(c0);
}

static void test_gemm_vector_shapes(void **state) {
  (void)state;
  static const int64_t shapes[][3] = {{1, 7, 5}, {6, 1, 9}, {1, 1, 4}, {1, 130, 33}, {3, 5, 2}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int t = 0; t < 4; t++) gemm_case(shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t >> 1);
}

/* ---- the packed-weight GEMM (ops/sgemm.c) ---- */

/* C = A B (+ bias or + C) with B packed for the kernel of panel width nr, against float64; rows
 * of A and C with gaps (lda, ldc) that the kernel must neither read nor write. One row of A with
 * gemv: the one-row product (ops/gemv.c) instead of the GEMM. */
static void sgemm_case_on(int64_t m, int64_t k, int64_t n, int trans_b, int extra, int64_t nr, int gemv) {
  int64_t lda = k + rnd(0, 3), ldc = n + rnd(0, 3), ldb = (trans_b ? k : n) + rnd(0, 2);
  float *a = malloc((size_t)(m * lda) * sizeof *a), *b = malloc((size_t)((trans_b ? n : k) * ldb) * sizeof *b);
  float *c = malloc((size_t)(m * ldc) * sizeof *c), *c0 = malloc((size_t)(m * ldc) * sizeof *c0);
  float *bias = malloc((size_t)n * sizeof *bias);
  assert_true(a && b && c && c0 && bias);
  for (int64_t i = 0; i < m * lda; i++) a[i] = rndf();
  for (int64_t i = 0; i < (trans_b ? n : k) * ldb; i++) b[i] = rndf();
  for (int64_t i = 0; i < m * ldc; i++) c[i] = c0[i] = rndf();
  for (int64_t i = 0; i < n; i++) bias[i] = rndf();
  gpux__sgemm_b pb;
  int rc = gpux__sgemm_pack(&pb, b, ldb, trans_b, k, n, nr);
  if (rc == 1) { /* no such kernel on this machine */
    free(a), free(b), free(c), free(c0), free(bias);
    return;
  }
  assert_int_equal(rc, 0);
  if (gemv && m == 1) gpux__sgemv_run(a, &pb, c, extra == 1 ? bias : NULL, extra == 2, NULL);
  else gpux__sgemm_run(m, a, lda, &pb, c, ldc, extra == 1 ? bias : NULL, extra == 2);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < ldc; j++) {
      if (j >= n) { /* the gap between rows of C */
        if (c[i * ldc + j] != c0[i * ldc + j]) fail_msg("sgemm wrote C[%lld, %lld] past n = %lld", (long long)i, (long long)j, (long long)n);
        continue;
      }
      double want = extra == 1 ? bias[j] : extra == 2 ? c0[i * ldc + j] : 0, mag = fabs(want);
      for (int64_t p = 0; p < k; p++) {
        double v = (double)a[i * lda + p] * (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
        want += v, mag += fabs(v);
      }
      if (fabs(c[i * ldc + j] - want) > 1e-5 * (mag + 1))
        fail_msg("sgemm nr %lld %lldx%lldx%lld tb %d extra %d: C[%lld, %lld] = %g, want %g", (long long)nr, (long long)m,
                 (long long)k, (long long)n, trans_b, extra, (long long)i, (long long)j, c[i * ldc + j], want);
    }
  gpux__sgemm_b_free(&pb);
  free(a), free(b), free(c), free(c0), free(bias);
}

static void sgemm_case(int64_t m, int64_t k, int64_t n, int trans_b, int extra, int64_t nr) {
  sgemm_case_on(m, k, n, trans_b, extra, nr, 0);
}

/* The one-row product (ops/gemv.c) on the packed weights of this machine: against float64 with
 * bias or C, and with gpux.FusedMatMul's epilogue (activation, residual) against the GEMM's. */
static void test_gemv_packed(void **state) {
  (void)state;
  int64_t nr = gpux__sgemm_nr();
  if (!nr) return;
  for (int i = 0; i < 60; i++) sgemm_case_on(1, rnd(1, 700), rnd(1, 300), (int)rnd(0, 1), (int)rnd(0, 2), nr, 1);
  sgemm_case_on(1, 1, 1, 0, 1, nr, 1);
  sgemm_case_on(1, 3, 5 * nr, 1, 2, nr, 1);
  sgemm_case_on(1, 1283, 9 * nr + 7, 0, 1, nr, 1); /* several panels a thread, a partial last one */
  for (int act = GPUX_GEMM_ACT_NONE; act <= GPUX_GEMM_ACT_TANH; act++) {
    int64_t k = rnd(1, 400), n = rnd(1, 200);
    float *a = malloc((size_t)k * sizeof *a), *b = malloc((size_t)(k * n) * sizeof *b), *bias = malloc((size_t)n * sizeof *bias);
    float *res = malloc((size_t)n * sizeof *res), *c = malloc((size_t)n * sizeof *c), *c0 = malloc((size_t)n * sizeof *c0);
    assert_true(a && b && bias && res && c && c0);
    for (int64_t j = 0; j < k; j++) a[j] = rndf();
    for (int64_t j = 0; j < k * n; j++) b[j] = rndf();
    for (int64_t j = 0; j < n; j++) bias[j] = rndf(), res[j] = rndf();
    gpux__sgemm_b pb;
    assert_int_equal(gpux__sgemm_pack(&pb, b, n, 0, k, n, nr), 0);
    gpux__gemm_epilogue ep = {.act = act, .res = act % 2 ? res : NULL, .ldr = n};
    gpux__sgemm_run_ep(1, a, k, &pb, c0, n, bias, 0, &ep);
    gpux__sgemv_run(a, &pb, c, bias, 0, &ep);
    for (int64_t j = 0; j < n; j++)
      if (fabs(c[j] - c0[j]) > 1e-5 * (fabs(c0[j]) + 1)) fail_msg("gemv act %d: c[%lld] = %g, want %g", act, (long long)j, c[j], c0[j]);
    gpux__sgemm_b_free(&pb);
    free(a), free(b), free(bias), free(res), free(c), free(c0);
  }
  /* 128 KB-1 MB of weights (a squeeze-excitation's): a panel or more a thread, on 1 and 2 threads */
  for (int t = 1; t <= 2; t++) {
    int threads = gpux__set_run_threads(t);
    sgemm_case_on(1, 960, 3 * nr + 48, 0, 1, nr, 1);
    sgemm_case_on(1, 700, 5 * nr + 3, 1, 2, nr, 1);
    gpux__set_run_threads(threads);
  }
}

static void test_sgemm_packed(void **state) {
  (void)state;
  for (int nr = 16; nr <= 64; nr *= 4) {
    for (int i = 0; i < 60; i++) sgemm_case(rnd(1, 20), rnd(1, 300), rnd(1, 150), (int)rnd(0, 1), (int)rnd(0, 2), nr);
    /* large enough to run as several tasks on the pool, with a partial last panel and row block */
    sgemm_case(131, 700, 2 * nr + 5, 0, 1, nr);
    sgemm_case(7, 1030, 9 * nr - 3, 1, 2, nr);
    /* a last panel of 1 and of 16 columns (the narrow block), over several row blocks */
    sgemm_case(22, 512, 4 * nr + 1, 1, 0, nr);
    sgemm_case(13, 90, nr + 16, 0, 2, nr);
    /* A packed in strips (eight panels or more read it): several depth blocks and a partial
     * one, a last panel of 5 columns and a last row block of 2; an A of over 1 MB packed, whose
     * panels go in groups reading it block by block, on one thread (two groups of panels) and
     * on the pool */
    sgemm_case(26, 1283, 8 * nr + 5, 0, 1, nr);
    sgemm_case(200, 1500, 17 * nr + 5, 1, 2, nr);
    int threads = gpux__set_run_threads(1);
    sgemm_case(200, 1500, 17 * nr + 5, 0, 1, nr);
    gpux__set_run_threads(threads);
    /* one row (the single-row kernel): odd and even depths, several depth blocks, bias and C */
    sgemm_case(1, 1, 37, 0, 0, nr);
    sgemm_case(1, 301, 150, 1, 1, nr);
    sgemm_case(1, 700, 2 * nr + 5, 0, 2, nr);
  }
}

/* ---- whole ops: the float32 paths against the float64 ones ---- */

static gpux_tensor rand_tensor(int dtype, int ndim, const int64_t *dims) {
  gpux_tensor t;
  assert_int_equal(gpux_tensor_init(&t, dtype, ndim, dims), 0);
  for (int64_t i = 0; i < gpux_tensor_count(&t); i++) {
    float v = rndf();
    if (dtype == GPUX_DT_FLOAT) ((float *)t.data)[i] = v;
    else ((double *)t.data)[i] = v;
  }
  return t;
}

static gpux_tensor to_f64(const gpux_tensor *t) {
  gpux_tensor d;
  assert_int_equal(gpux_tensor_init(&d, GPUX_DT_DOUBLE, t->ndim, t->dims), 0);
  for (int64_t i = 0; i < gpux_tensor_count(t); i++) ((double *)d.data)[i] = ((const float *)t->data)[i];
  return d;
}

/* Runs op_type on `in` with the node attributes, into *out. */
static int run_op(const char *op_type, gpux__attr *attrs, int n_attrs, const gpux_tensor **in, int n_in, gpux_tensor *out) {
  gpux__node n = {.name = "t", .op_type = op_type, .domain = "", .opset = 17, .n_in = n_in, .n_out = 1,
                 .n_attrs = n_attrs, .attrs = attrs};
  n.op = gpux__op_find("", op_type, 17);
  assert_non_null(n.op);
  gpux_tensor *outs[1] = {out};
  gpux__kctx k = {.node = &n, .n_in = n_in, .n_out = 1, .in = in, .out = outs, .opset = 17};
  return n.op->run(&k);
}

static int ops_compared; /* op cases that ran (not rejected as invalid shapes) */

/* Conv or ConvTranspose on float32 and on float64 copies of the same random inputs. */
static void op_case(const char *op_type, int transposed) {
  int64_t g = rnd(1, 2), cg = rnd(1, 5), mg = rnd(1, 5), h = rnd(1, 9), w = rnd(1, 11);
  int64_t k[2] = {rnd(1, 3), rnd(1, 3)}, st[2] = {rnd(1, 3), rnd(1, 3)}, dl[2] = {rnd(1, 2), rnd(1, 2)};
  int64_t pads[4] = {rnd(0, 1), rnd(0, 1), rnd(0, 1), rnd(0, 1)}, opad[2] = {0, 0};
  if (transposed && rnd(0, 1)) { /* kernel = stride, no padding: the direct block path */
    for (int i = 0; i < 2; i++) st[i] = k[i], dl[i] = 1, pads[i] = pads[i + 2] = 0;
  } else if (transposed) {
    opad[0] = rnd(0, st[0] - 1), opad[1] = rnd(0, st[1] - 1);
    if (opad[0] >= dl[0]) opad[0] = 0; /* output_padding below the stride or the dilation */
    if (opad[1] >= dl[1]) opad[1] = 0;
  }
  if (!transposed && (h + pads[0] + pads[2] < (k[0] - 1) * dl[0] + 1 || w + pads[1] + pads[3] < (k[1] - 1) * dl[1] + 1))
    return;
  int64_t xd[4] = {rnd(1, 2), g * cg, h, w};
  int64_t wd[4] = {transposed ? g * cg : g * mg, transposed ? mg : cg, k[0], k[1]}, bd[1] = {g * mg};
  gpux_tensor x = rand_tensor(GPUX_DT_FLOAT, 4, xd), wt = rand_tensor(GPUX_DT_FLOAT, 4, wd);
  gpux_tensor b = rand_tensor(GPUX_DT_FLOAT, 1, bd);
  gpux_tensor x64 = to_f64(&x), w64 = to_f64(&wt), b64 = to_f64(&b), y = {0}, y64 = {0};
  gpux__attr attrs[5] = {
    {.name = "group", .type = GPUX_ATTR_INT, .i = g},
    {.name = "strides", .type = GPUX_ATTR_INTS, .n = 2, .ints = st},
    {.name = "dilations", .type = GPUX_ATTR_INTS, .n = 2, .ints = dl},
    {.name = "pads", .type = GPUX_ATTR_INTS, .n = 4, .ints = pads},
    {.name = "output_padding", .type = GPUX_ATTR_INTS, .n = 2, .ints = opad},
  };
  const gpux_tensor *in[3] = {&x, &wt, &b}, *in64[3] = {&x64, &w64, &b64};
  int rc = run_op(op_type, attrs, transposed ? 5 : 4, in, 3, &y);
  assert_int_equal(rc, run_op(op_type, attrs, transposed ? 5 : 4, in64, 3, &y64));
  if (!rc) {
    ops_compared++;
    assert_int_equal(gpux_tensor_count(&y), gpux_tensor_count(&y64));
    for (int64_t i = 0; i < gpux_tensor_count(&y); i++) {
      double want = ((double *)y64.data)[i], got = ((float *)y.data)[i];
      if (fabs(got - want) > 1e-4 * (fabs(want) + 1))
        fail_msg("%s g %lld cg %lld mg %lld %lldx%lld k %lldx%lld s %lld,%lld: y[%lld] = %g, want %g", op_type,
                 (long long)g, (long long)cg, (long long)mg, (long long)h, (long long)w, (long long)k[0],
                 (long long)k[1], (long long)st[0], (long long)st[1], (long long)i, got, want);
    }
  }
  gpux_tensor *all[] = {&x, &wt, &b, &x64, &w64, &b64, &y, &y64};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gpux_tensor_free(all[i]);
}

static void test_conv_ops(void **state) {
  (void)state;
  for (int i = 0; i < 150; i++) op_case("Conv", 0);
  for (int i = 0; i < 150; i++) op_case("ConvTranspose", 1);
  assert_true(ops_compared > 200);
}

/* MaxPool or AveragePool on float32 (the 2-D fast paths) and on float64 (the generic loop). */
static void pool_case(const char *op_type) {
  int64_t k[2] = {rnd(1, 3), rnd(1, 3)}, st[2] = {rnd(1, 3), rnd(1, 3)}, pads[4] = {0, 0, 0, 0};
  if (rnd(0, 1)) { /* windows that tile the input */
    k[0] = rnd(1, 2), k[1] = k[0] == 1 ? 2 : rnd(1, 2), st[0] = k[0], st[1] = k[1];
  } else {
    for (int i = 0; i < 4; i++) pads[i] = rnd(0, k[i % 2] - 1);
  }
  int64_t xd[4] = {rnd(1, 2), rnd(1, 5), rnd(k[0], 12), rnd(k[1], 13)};
  if (!rnd(0, 3)) xd[3] = rnd(k[1], 70); /* rows of several vectors */
  gpux_tensor x = rand_tensor(GPUX_DT_FLOAT, 4, xd);
  if (!strcmp(op_type, "MaxPool"))
    for (int64_t i = 0; i < gpux_tensor_count(&x); i += rnd(5, 40)) ((float *)x.data)[i] = NAN;
  gpux_tensor x64 = to_f64(&x), y = {0}, y64 = {0};
  gpux__attr attrs[5] = {
    {.name = "kernel_shape", .type = GPUX_ATTR_INTS, .n = 2, .ints = k},
    {.name = "strides", .type = GPUX_ATTR_INTS, .n = 2, .ints = st},
    {.name = "pads", .type = GPUX_ATTR_INTS, .n = 4, .ints = pads},
    {.name = "ceil_mode", .type = GPUX_ATTR_INT, .i = rnd(0, 1)},
    {.name = "count_include_pad", .type = GPUX_ATTR_INT, .i = rnd(0, 1)},
  };
  int na = strcmp(op_type, "MaxPool") ? 5 : 4;
  const gpux_tensor *in[1] = {&x}, *in64[1] = {&x64};
  int rc = run_op(op_type, attrs, na, in, 1, &y);
  assert_int_equal(rc, run_op(op_type, attrs, na, in64, 1, &y64));
  if (!rc) {
    ops_compared++;
    assert_int_equal(gpux_tensor_count(&y), gpux_tensor_count(&y64));
    for (int64_t i = 0; i < gpux_tensor_count(&y); i++) {
      double want = ((double *)y64.data)[i], got = ((float *)y.data)[i];
      if (!(fabs(got - want) <= 1e-5 * (fabs(want) + 1)) && !(isnan(got) && isnan(want)) && got != want)
        fail_msg("%s k %lldx%lld s %lld,%lld: y[%lld] = %g, want %g", op_type, (long long)k[0], (long long)k[1],
                 (long long)st[0], (long long)st[1], (long long)i, got, want);
    }
  }
  gpux_tensor_free(&x), gpux_tensor_free(&x64), gpux_tensor_free(&y), gpux_tensor_free(&y64);
}

static void test_pool_ops(void **state) {
  (void)state;
  ops_compared = 0;
  long long rows0 = gpux__maxpool_rows_planes;
  for (int i = 0; i < 200; i++) pool_case("MaxPool");
  /* MaxPool of stride 1 or 2 along W takes pool.c's AVX-512 rows kernel where the CPU has it */
  if (gpux__conv_gemm_available()) assert_true(gpux__maxpool_rows_planes - rows0 > 100);
  for (int i = 0; i < 200; i++) pool_case("AveragePool");
  assert_true(ops_compared > 300);
}

/* gpux.MaxPoolNHWC on random channels-last X (1 to 150 channels: blocks of 64 and a masked rest;
 * windows up to 4 x 4, strides, dilations, pads, ceil_mode, NaNs) against MaxPool on the same
 * values as planes: the same bits at every output. */
static void test_maxpool_nhwc(void **state) {
  (void)state;
  const gpux__op_def *def = gpux__op_find("gpux", "MaxPoolNHWC", 1);
  assert_non_null(def);
  int compared = 0;
  for (int it = 0; it < 200; it++) {
    int64_t k[2] = {rnd(1, 4), rnd(1, 4)}, st[2] = {rnd(1, 3), rnd(1, 3)}, dl[2] = {rnd(1, 2), rnd(1, 2)};
    int64_t pads[4];
    for (int i = 0; i < 4; i++) pads[i] = rnd(0, k[i % 2] - 1);
    int64_t n = rnd(1, 2), c = rnd(0, 3) ? rnd(1, 150) : 64, h = rnd(1, 12), w = rnd(1, 20);
    int64_t xd[4] = {n, c, h, w}, xl[4] = {n, h, w, c};
    gpux_tensor x = rand_tensor(GPUX_DT_FLOAT, 4, xd), xc = rand_tensor(GPUX_DT_FLOAT, 4, xl), y = {0}, yc = {0};
    for (int64_t i = 0; i < gpux_tensor_count(&x); i += rnd(5, 40)) ((float *)x.data)[i] = NAN;
    const float *xv = x.data;
    float *xcv = xc.data;
    for (int64_t b = 0; b < n; b++) /* xc: x channels last */
      for (int64_t ch = 0; ch < c; ch++)
        for (int64_t q = 0; q < h * w; q++) xcv[(b * h * w + q) * c + ch] = xv[(b * c + ch) * h * w + q];
    gpux__attr attrs[5] = {
      {.name = "kernel_shape", .type = GPUX_ATTR_INTS, .n = 2, .ints = k},
      {.name = "strides", .type = GPUX_ATTR_INTS, .n = 2, .ints = st},
      {.name = "pads", .type = GPUX_ATTR_INTS, .n = 4, .ints = pads},
      {.name = "dilations", .type = GPUX_ATTR_INTS, .n = 2, .ints = dl},
      {.name = "ceil_mode", .type = GPUX_ATTR_INT, .i = rnd(0, 1)},
    };
    const gpux_tensor *in[1] = {&x}, *inc[1] = {&xc};
    int rc = run_op("MaxPool", attrs, 5, in, 1, &y);
    gpux__node nd = {.name = "t", .op_type = "MaxPoolNHWC", .domain = "gpux", .opset = 1, .n_in = 1, .n_out = 1,
                     .n_attrs = 5, .attrs = attrs, .op = def};
    gpux_tensor *outs[1] = {&yc};
    gpux__kctx kc = {.node = &nd, .n_in = 1, .n_out = 1, .in = inc, .out = outs, .opset = 1};
    assert_int_equal(rc, def->run(&kc));
    if (!rc) {
      compared++;
      int64_t oh = y.dims[2], ow = y.dims[3];
      assert_int_equal(yc.dims[1], oh);
      assert_int_equal(yc.dims[2], ow);
      assert_int_equal(yc.dims[3], c);
      const float *yv = y.data, *ycv = yc.data;
      for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++)
          for (int64_t q = 0; q < oh * ow; q++) {
            float want = yv[(b * c + ch) * oh * ow + q], got = ycv[(b * oh * ow + q) * c + ch];
            if (memcmp(&want, &got, sizeof got))
              fail_msg("MaxPoolNHWC c %lld %lldx%lld k %lldx%lld s %lld,%lld d %lld,%lld: y[%lld,%lld,%lld] = %g, want %g",
                       (long long)c, (long long)h, (long long)w, (long long)k[0], (long long)k[1], (long long)st[0],
                       (long long)st[1], (long long)dl[0], (long long)dl[1], (long long)b, (long long)ch, (long long)q,
                       got, want);
          }
    }
    gpux_tensor_free(&x), gpux_tensor_free(&xc), gpux_tensor_free(&y), gpux_tensor_free(&yc);
  }
  assert_true(compared > 100);
}

/* Transpose of random 2-D to 4-D float32 tensors (4-byte elements: 16 x 16 register tiles where
 * the CPU has AVX-512, partial tiles at the edges) against the float64 copy (element by element). */
static void test_transpose(void **state) {
  (void)state;
  for (int c = 0; c < 300; c++) {
    int r = (int)rnd(2, 4);
    int64_t dims[4], perm[4];
    for (int d = 0; d < r; d++) dims[d] = rnd(1, d == r - 1 || d == 0 ? 70 : 6), perm[d] = d;
    for (int d = r - 1; d > 0; d--) { /* a random permutation */
      int e = (int)rnd(0, d);
      int64_t t = perm[d];
      perm[d] = perm[e], perm[e] = t;
    }
    gpux_tensor x = rand_tensor(GPUX_DT_FLOAT, r, dims), x64 = to_f64(&x), y = {0}, y64 = {0};
    gpux__attr attrs[1] = {{.name = "perm", .type = GPUX_ATTR_INTS, .n = r, .ints = perm}};
    const gpux_tensor *in[1] = {&x}, *in64[1] = {&x64};
    assert_int_equal(run_op("Transpose", attrs, 1, in, 1, &y), 0);
    assert_int_equal(run_op("Transpose", attrs, 1, in64, 1, &y64), 0);
    assert_int_equal(gpux_tensor_count(&y), gpux_tensor_count(&x));
    for (int64_t i = 0; i < gpux_tensor_count(&y); i++)
      if (((float *)y.data)[i] != (float)((double *)y64.data)[i])
        fail_msg("Transpose case %d rank %d: y[%lld] = %g, want %g", c, r, (long long)i, ((float *)y.data)[i],
                 ((double *)y64.data)[i]);
    gpux_tensor_free(&x), gpux_tensor_free(&x64), gpux_tensor_free(&y), gpux_tensor_free(&y64);
  }
}

/* MatMul of a (batched) A by one B on float32 (the direct kernels for M >= 8, N >= 16) and on
 * float64 (OpenBLAS). */
/* A [b, m, k] times B [k, n], or with `batched` B [b, k, n] (a product per item) */
static void matmul_case(int batched) {
  int64_t b = rnd(1, 5), m = rnd(1, 40), kk = rnd(1, 300), n = rnd(1, 90);
  int64_t ad[3] = {b, m, kk}, bd[3] = {b, kk, n};
  gpux_tensor a = rand_tensor(GPUX_DT_FLOAT, 3, ad), bm = rand_tensor(GPUX_DT_FLOAT, batched ? 3 : 2, bd + !batched);
  gpux_tensor a64 = to_f64(&a), b64 = to_f64(&bm), y = {0}, y64 = {0};
  const gpux_tensor *in[2] = {&a, &bm}, *in64[2] = {&a64, &b64};
  assert_int_equal(run_op("MatMul", NULL, 0, in, 2, &y), 0);
  assert_int_equal(run_op("MatMul", NULL, 0, in64, 2, &y64), 0);
  for (int64_t i = 0; i < gpux_tensor_count(&y); i++) {
    double want = ((double *)y64.data)[i], got = ((float *)y.data)[i];
    if (fabs(got - want) > 1e-4 * (fabs(want) + sqrt((double)kk)))
      fail_msg("MatMul %lldx%lldx%lldx%lld: y[%lld] = %g, want %g", (long long)b, (long long)m, (long long)kk,
               (long long)n, (long long)i, got, want);
  }
  gpux_tensor_free(&a), gpux_tensor_free(&bm), gpux_tensor_free(&a64), gpux_tensor_free(&b64);
  gpux_tensor_free(&y), gpux_tensor_free(&y64);
}

static void test_matmul(void **state) {
  (void)state;
  for (int i = 0; i < 100; i++) matmul_case(0);
  for (int i = 0; i < 100; i++) matmul_case(1);
}

/* MatMul with constant weights, as a session runs it: packed into the node's state on the first
 * run and read from there on the next; weights not marked constant, or other than those packed,
 * go the unpacked way. Every run must match the float64 product. */
static void test_matmul_packed_weights(void **state) {
  (void)state;
  int64_t ad[3] = {2, 9, 70}, bd[2] = {70, 45};
  gpux_tensor a = rand_tensor(GPUX_DT_FLOAT, 3, ad), bm = rand_tensor(GPUX_DT_FLOAT, 2, bd), b2 = rand_tensor(GPUX_DT_FLOAT, 2, bd);
  gpux__node n = {.name = "t", .op_type = "MatMul", .domain = "", .opset = 17, .n_in = 2, .n_out = 1};
  n.op = gpux__op_find("", "MatMul", 17);
  gpux__node_state *_Atomic slot = NULL;
  for (int run = 0; run < 4; run++) {
    const gpux_tensor *bw = run == 3 ? &b2 : &bm; /* the last run: other weights than those packed */
    gpux_tensor y = {0}, *outs[1] = {&y};
    const gpux_tensor *in[2] = {&a, bw};
    gpux__kctx k = {.node = &n, .n_in = 2, .n_out = 1, .in = in, .out = outs, .opset = 17, .state = &slot,
                    .const_in = run == 2 ? 0 : 2};
    assert_int_equal(n.op->run(&k), 0);
    if (gpux__sgemm_nr()) assert_non_null(atomic_load(&slot));
    for (int64_t i = 0; i < 18; i++)
      for (int64_t j = 0; j < 45; j++) {
        double want = 0, mag = 0;
        for (int64_t p = 0; p < 70; p++) {
          double v = (double)((float *)a.data)[i * 70 + p] * ((float *)bw->data)[p * 45 + j];
          want += v, mag += fabs(v);
        }
        double got = ((float *)y.data)[i * 45 + j];
        if (fabs(got - want) > 1e-5 * (mag + 1)) fail_msg("run %d: y[%lld, %lld] = %g, want %g", run, (long long)i, (long long)j, got, want);
      }
    gpux_tensor_free(&y);
  }
  gpux__node_state *st = atomic_load(&slot);
  if (st) st->destroy(st);
  gpux_tensor_free(&a), gpux_tensor_free(&bm), gpux_tensor_free(&b2);
}

/* A 1-D Conv of one input channel with constant weights (an STFT's: K taps, a hop's stride, no
 * padding), as a session runs it: its windows are the rows of the product on weights packed into
 * the node's state on the first run. Every run must match the float64 Conv. */
static void test_conv_windows(void **state) {
  (void)state;
  for (int c = 0; c < 12; c++) {
    int64_t nb = rnd(1, 2), kk = rnd(16, 90), m = rnd(1, 140), st = rnd(1, 40), len = kk + rnd(0, 300);
    int64_t xd[3] = {nb, 1, len}, wd[3] = {m, 1, kk}, bd[1] = {m}, stv[1] = {st}, one[1] = {1}, pads[2] = {0, 0};
    gpux_tensor x = rand_tensor(GPUX_DT_FLOAT, 3, xd), wt = rand_tensor(GPUX_DT_FLOAT, 3, wd), b = rand_tensor(GPUX_DT_FLOAT, 1, bd);
    gpux_tensor x64 = to_f64(&x), w64 = to_f64(&wt), b64 = to_f64(&b), y64 = {0};
    gpux__attr attrs[3] = {
      {.name = "strides", .type = GPUX_ATTR_INTS, .n = 1, .ints = stv},
      {.name = "dilations", .type = GPUX_ATTR_INTS, .n = 1, .ints = one},
      {.name = "pads", .type = GPUX_ATTR_INTS, .n = 2, .ints = pads},
    };
    int with_b = c % 3 != 0;
    const gpux_tensor *in64[3] = {&x64, &w64, &b64};
    assert_int_equal(run_op("Conv", attrs, 3, in64, with_b ? 3 : 2, &y64), 0);
    gpux__node n = {.name = "t", .op_type = "Conv", .domain = "", .opset = 17, .n_in = with_b ? 3 : 2, .n_out = 1,
                   .n_attrs = 3, .attrs = attrs};
    n.op = gpux__op_find("", "Conv", 17);
    gpux__node_state *_Atomic slot = NULL;
    for (int run = 0; run < 3; run++) {
      gpux_tensor y = {0}, *outs[1] = {&y};
      const gpux_tensor *in[3] = {&x, &wt, &b};
      gpux__kctx k = {.node = &n, .n_in = n.n_in, .n_out = 1, .in = in, .out = outs, .opset = 17, .state = &slot,
                      .const_in = 2};
      assert_int_equal(n.op->run(&k), 0);
      if (gpux__sgemm_nr()) assert_non_null(atomic_load(&slot));
      assert_int_equal(gpux_tensor_count(&y), gpux_tensor_count(&y64));
      for (int64_t i = 0; i < gpux_tensor_count(&y); i++) {
        double want = ((double *)y64.data)[i], got = ((float *)y.data)[i];
        if (fabs(got - want) > 1e-4 * (fabs(want) + 1))
          fail_msg("case %d run %d (n %lld, K %lld, M %lld, stride %lld, L %lld): y[%lld] = %g, want %g", c, run,
                   (long long)nb, (long long)kk, (long long)m, (long long)st, (long long)len, (long long)i, got, want);
      }
      gpux_tensor_free(&y);
    }
    gpux__node_state *sp = atomic_load(&slot);
    if (sp) sp->destroy(sp);
    gpux_tensor *all[] = {&x, &wt, &b, &x64, &w64, &b64, &y64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gpux_tensor_free(all[i]);
  }
}

/* A Conv of one group with constant weights, as a session runs it: a 3x3 window and a 1x1 one on
 * a 7 x 7 plane take the product on weights packed into the node's state on the first run; a 1x1
 * on a larger plane keeps its weights and the in-place product. Every run must match the float64
 * Conv. */
static void test_conv_packed_node(void **state) {
  (void)state;
  static const int64_t shapes[][6] = {/* c, m, h, w, k, stride */
                                      {24, 70, 9, 11, 3, 1}, {17, 65, 7, 7, 1, 1}, {32, 20, 13, 9, 3, 2},
                                      {16, 8, 20, 20, 1, 1}, {40, 130, 14, 14, 1, 2}};
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
    const int64_t *d = shapes[c];
    int64_t pad = d[4] / 2, xd[4] = {2, d[0], d[2], d[3]}, wd[4] = {d[1], d[0], d[4], d[4]}, bd[1] = {d[1]};
    int64_t stv[2] = {d[5], d[5]}, one[2] = {1, 1}, pads[4] = {pad, pad, pad, pad};
    gpux_tensor x = rand_tensor(GPUX_DT_FLOAT, 4, xd), wt = rand_tensor(GPUX_DT_FLOAT, 4, wd), b = rand_tensor(GPUX_DT_FLOAT, 1, bd);
    gpux_tensor x64 = to_f64(&x), w64 = to_f64(&wt), b64 = to_f64(&b), y64 = {0};
    gpux__attr attrs[3] = {
      {.name = "strides", .type = GPUX_ATTR_INTS, .n = 2, .ints = stv},
      {.name = "dilations", .type = GPUX_ATTR_INTS, .n = 2, .ints = one},
      {.name = "pads", .type = GPUX_ATTR_INTS, .n = 4, .ints = pads},
    };
    const gpux_tensor *in64[3] = {&x64, &w64, &b64};
    assert_int_equal(run_op("Conv", attrs, 3, in64, 3, &y64), 0);
    gpux__node n = {.name = "t", .op_type = "Conv", .domain = "", .opset = 17, .n_in = 3, .n_out = 1, .n_attrs = 3,
                    .attrs = attrs};
    n.op = gpux__op_find("", "Conv", 17);
    gpux__node_state *_Atomic slot = NULL;
    int64_t os = ((d[2] + 2 * pad - d[4]) / d[5] + 1) * ((d[3] + 2 * pad - d[4]) / d[5] + 1);
    for (int run = 0; run < 3; run++) {
      gpux_tensor y = {0}, *outs[1] = {&y};
      const gpux_tensor *in[3] = {&x, &wt, &b};
      gpux__kctx k = {.node = &n, .n_in = 3, .n_out = 1, .in = in, .out = outs, .opset = 17, .state = &slot,
                      .const_in = 2};
      assert_int_equal(n.op->run(&k), 0);
      if (gpux__conv_gemm_available()) assert_int_equal(atomic_load(&slot) != NULL, d[4] > 1 || os <= 64);
      assert_int_equal(gpux_tensor_count(&y), gpux_tensor_count(&y64));
      for (int64_t i = 0; i < gpux_tensor_count(&y); i++) {
        double want = ((double *)y64.data)[i], got = ((float *)y.data)[i];
        if (fabs(got - want) > 1e-4 * (fabs(want) + 1))
          fail_msg("shape %zu run %d: y[%lld] = %g, want %g", c, run, (long long)i, got, want);
      }
      gpux_tensor_free(&y);
    }
    gpux__node_state *sp = atomic_load(&slot);
    if (sp) sp->destroy(sp);
    gpux_tensor *all[] = {&x, &wt, &b, &x64, &w64, &b64, &y64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gpux_tensor_free(all[i]);
  }
}

/* ---- gpux.FusedMatMul's epilogue (ops/gemm-epilogue.c) ---- */

/* bias, GELU (erf, and with approximate = "tanh") and the residual on blocks of odd widths (the 16-lane rows' masked tails),
 * over values from -20 to 20 and the special ones: each the scalar gelu_f's (gelu_tanh_f's) bits,
 * and near x Phi(x) in float64 (erf). */
static void test_gemm_finish_gelu(void **state) {
  (void)state;
  const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f, -1.0f, 0.70710677f, 5.0f, -5.0f, 9.0f,
                           -9.0f, -13.5f, -14.0f, 30.0f, -30.0f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN};
  enum { ROWS = 5, LD = 83 };
  for (int64_t n = 1; n <= LD; n += 7) {
    float c[ROWS * LD], want[ROWS * LD], bias[LD], res[ROWS * LD];
    for (int64_t j = 0; j < n; j++) bias[j] = (float)rnd(-100, 100) / 1000.0f;
    for (int64_t i = 0; i < ROWS * LD; i++) {
      c[i] = i % 11 == 3 ? special[rnd(0, 19)] : (float)rnd(-20000, 20000) / 1000.0f;
      res[i] = (float)rnd(-100, 100) / 100.0f;
    }
    for (int with = 0; with < 8; with++) { /* with bias (1), residual (2), tanh (4) */
      float y[ROWS * LD];
      memcpy(y, c, sizeof y);
      for (int64_t r = 0; r < ROWS; r++)
        for (int64_t j = 0; j < n; j++) {
          float v = c[r * LD + j];
          if (with & 1) v += bias[j];
          v = with & 4 ? gelu_tanh_f(v) : gelu_f(v);
          if (with & 2) v += res[r * LD + j];
          want[r * LD + j] = v;
        }
      gpux__gemm_epilogue ep = {.act = with & 4 ? GPUX_GEMM_ACT_GELU_TANH : GPUX_GEMM_ACT_GELU, .res = with & 2 ? res : NULL, .ldr = LD};
      gpux__gemm_finish(y, LD, ROWS, n, with & 1 ? bias : NULL, &ep, 0, 0);
      for (int64_t r = 0; r < ROWS; r++)
        for (int64_t j = 0; j < LD; j++) {
          float got = y[r * LD + j], w = j < n ? want[r * LD + j] : c[r * LD + j];
          if (memcmp(&got, &w, sizeof got) && !(isnan(got) && isnan(w)))
            fail_msg("GELU epilogue n %lld with %d: [%lld, %lld] of %g = %.9g, want %.9g", (long long)n, with,
                     (long long)r, (long long)j, (double)c[r * LD + j], (double)got, (double)w);
        }
      if (with) continue;
      for (int64_t i = 0; i < n; i++) { /* and near the exact value */
        double x = c[i], ref = 0.5 * x * erfc(-x / sqrt(2.0));
        if (isfinite(x) && fabs(y[i] - ref) > 1e-5 * fabs(ref) + 1e-7)
          fail_msg("GELU(%.9g) = %.9g, want %.9g", x, (double)y[i], ref);
      }
    }
  }
}

/* ---- fastmath.h's log_f (the Log op) ---- */

/* Within 2 ulp of ln x in float64 over every 97th float from the smallest subnormal up to +inf,
 * and the special values as libm gives them (0 and -0: -inf; negatives, -inf and NaN: NaN). */
static void test_log_f(void **state) {
  (void)state;
  for (uint32_t b = 1; b < 0x7f800000u; b += 97) {
    float x, y;
    memcpy(&x, &b, 4);
    y = log_f(x);
    double ref = log((double)x), ulp = nextafterf((float)ref, INFINITY) - (float)ref;
    if (fabs((double)y - ref) > 2 * fabs(ulp) + 1e-45)
      fail_msg("log_f(%.9g) = %.9g, want %.9g", (double)x, (double)y, ref);
  }
  const float special[] = {0.0f, -0.0f, -1e-30f, -1.0f, -INFINITY, INFINITY, NAN, 1.0f};
  for (int i = 0; i < 8; i++) {
    float got = log_f(special[i]), want = logf(special[i]);
    if (memcmp(&got, &want, 4) && !(isnan(got) && isnan(want)))
      fail_msg("log_f(%g) = %g, want %g", (double)special[i], (double)got, (double)want);
  }
}

/* ---- conv-epilogue16.h's two sigmoids (FusedConv's Sigmoid and SiLU epilogues) ---- */

#if defined(__GNUC__) && defined(__x86_64__)
/* Both sigmoids, the division and the reciprocal (gpux__divide_by_reciprocal picks one per CPU),
 * within 5 ulp of 1 / (1 + e^-x) in float64 over every 1009th float of either sign, and exact
 * at the ends: -inf 0, inf 1, NaN NaN. */
GPUX_EP16_TARGET static void sigmoids16(const float *x, float *div, float *rcp) {
  __m512 v = _mm512_loadu_ps(x);
  _mm512_storeu_ps(div, gpux__sigmoid16(v));
  _mm512_storeu_ps(rcp, gpux__sigmoid16_rcp(v));
}
#endif

static void test_sigmoid16(void **state) {
  (void)state;
#if defined(__GNUC__) && defined(__x86_64__)
  if (!gpux__have_avx512_fma()) skip();
  /* the choice the epilogues read follows GPUX_DIVIDE (test-cpu-kernels-avx2 sets rcp) */
  const char *env = getenv("GPUX_DIVIDE");
  if (env) assert_int_equal(gpux__sigmoid_by_reciprocal, !strcmp(env, "rcp"));
  float x[16], div[16], rcp[16];
  int k = 0;
  for (uint64_t b = 0; b < 0xffffffffu; b += 1009) {
    uint32_t u = (uint32_t)b;
    memcpy(&x[k], &u, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) x[k] = 0.5f; /* NaN and the infinities below */
    if (++k < 16) continue;
    k = 0;
    sigmoids16(x, div, rcp);
    for (int i = 0; i < 16; i++) {
      double ref = 1 / (1 + exp(-(double)x[i])), ulp = fabs(nextafterf((float)ref, INFINITY) - (float)ref);
      if (fabs((double)div[i] - ref) > 5 * ulp + 1e-45 || fabs((double)rcp[i] - ref) > 5 * ulp + 1e-45)
        fail_msg("sigmoid(%.9g): division %.9g, reciprocal %.9g, want %.9g", (double)x[i], (double)div[i],
                 (double)rcp[i], ref);
    }
  }
  for (int i = 0; i < 16; i++) x[i] = i % 4 == 0 ? -INFINITY : i % 4 == 1 ? INFINITY : i % 4 == 2 ? NAN : 0.0f;
  sigmoids16(x, div, rcp);
  for (int i = 0; i < 16; i++) {
    float want = i % 4 == 0 ? 0.0f : i % 4 == 1 ? 1.0f : i % 4 == 2 ? NAN : 0.5f;
    if ((isnan(want) ? !isnan(div[i]) || !isnan(rcp[i]) : div[i] != want || rcp[i] != want))
      fail_msg("sigmoid(%g): division %g, reciprocal %g, want %g", (double)x[i], (double)div[i], (double)rcp[i],
               (double)want);
  }
#else
  skip();
#endif
}

/* gpux.ExpandDepthwise's kernel (an expansion's 1x1 convolution and the depthwise one that alone
 * reads it, per strip of output rows) against the two kernels one after the other (the implicit
 * GEMM's expansion written out, then the depthwise kernel): 3 x 3 and 5 x 5 windows of stride 1
 * and 2, uneven pads, channel counts off the blocks of 8, widths from 9 to 112, two images, every
 * activation of the expansion, on 1 and 2 threads (the strips split over both). The expansion's
 * sums go in the implicit GEMM's order: the first five shapes (the models' and like them) give
 * the same bits; where the depthwise kernel alone takes another path (outputs under 32 wide, 16
 * channels interleaved) the sums differ in order, so the test allows 1e-6 relative. It fails if
 * the fused kernel did not run. */
static void test_expand_dw(void **state) {
  (void)state;
  if (!gpux__conv_dw16_available() || !gpux__conv_direct_available()) skip();
  static const int64_t shapes[][8] = {/* c, m, h, w, k, stride, pad top/left, pad bottom/right */
                                      {16, 64, 112, 112, 3, 2, 1, 1}, {24, 72, 56, 56, 3, 1, 1, 1},
                                      {24, 72, 56, 56, 5, 2, 2, 2},   {40, 120, 28, 28, 5, 1, 2, 2},
                                      {16, 96, 40, 41, 3, 2, 0, 1},   {5, 13, 9, 70, 5, 1, 2, 1},
                                      {7, 20, 33, 9, 3, 1, 1, 1},     {3, 9, 17, 64, 5, 2, 1, 2}};
  static const int acts[] = {GPUX_EP_RELU, GPUX_EP_HARDSWISH, GPUX_EP_SILU, GPUX_EP_NONE, GPUX_EP_HARDSIGMOID,
                             GPUX_EP_SIGMOID};
  int threads = gpux__set_run_threads(0); /* the run caps below: the pool has started */
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int t = 1; t <= 2; t++) {
      gpux__set_run_threads(t);
      const int64_t *d = shapes[s];
      gpux__conv_epilogue epe = {.act = acts[(s + t) % 6], .p0 = 0.2f, .p1 = 0.5f}, epd = {.act = acts[s % 6], .p0 = 0.2f, .p1 = 0.5f};
      gpux__conv2d e = {.n = 2, .c = d[0], .m = d[1], .g = 1, .h = d[2], .w_ = d[3], .kh = 1, .kw = 1, .oh = d[2],
                        .ow = d[3], .sh = 1, .sw = 1, .dh = 1, .dw = 1, .ep = &epe};
      gpux__conv2d p = {.n = 2, .c = d[1], .m = d[1], .g = d[1], .h = d[2], .w_ = d[3], .kh = d[4], .kw = d[4],
                        .sh = d[5], .sw = d[5], .dh = 1, .dw = 1, .pt = d[6], .pl = d[6], .ep = &epd};
      p.oh = (p.h + d[6] + d[7] - p.kh) / p.sh + 1, p.ow = (p.w_ + d[6] + d[7] - p.kw) / p.sw + 1;
      int64_t nx = e.n * e.c * e.h * e.w_, ne = e.n * e.m * e.h * e.w_, ny = p.n * p.m * p.oh * p.ow;
      float *x = malloc((size_t)nx * sizeof *x), *we = malloc((size_t)(e.m * e.c) * sizeof *we);
      float *be = malloc((size_t)e.m * sizeof *be), *wd = malloc((size_t)(p.m * p.kh * p.kw) * sizeof *wd);
      float *bd = malloc((size_t)p.m * sizeof *bd), *mid = malloc((size_t)ne * sizeof *mid);
      float *want = malloc((size_t)ny * sizeof *want), *got = malloc((size_t)ny * sizeof *got);
      for (int64_t i = 0; i < nx; i++) x[i] = rndf();
      for (int64_t i = 0; i < e.m * e.c; i++) we[i] = rndf();
      for (int64_t i = 0; i < e.m; i++) be[i] = rndf(), bd[i] = rndf();
      for (int64_t i = 0; i < p.m * p.kh * p.kw; i++) wd[i] = rndf();
      for (int64_t i = 0; i < ny; i++) want[i] = got[i] = NAN;
      e.x = x, e.w = we, e.b = be, e.y = mid;
      p.x = mid, p.w = wd, p.b = bd, p.y = want;
      assert_int_equal(gpux__conv2d_implicit(&e), 0);
      int rc = gpux__conv2d_depthwise16(&p);
      if (rc == 1) rc = gpux__conv2d_depthwise(&p);
      assert_int_equal(rc, 0);
      e.y = NULL, p.x = NULL, p.y = got;
      long long before = gpux__expand_dw_tasks;
      assert_int_equal(gpux__conv2d_expand_dw(&e, &p), 0);
      assert_true(gpux__expand_dw_tasks > before);
      for (int64_t i = 0; i < ny; i++)
        if (!(fabsf(got[i] - want[i]) <= 1e-6f * (1 + fabsf(want[i]))))
          fail_msg("expand-dw %lld-%lld %lldx%lld k %lld s %lld, %d threads: output %lld %g, not %g", (long long)e.c,
                   (long long)e.m, (long long)e.h, (long long)e.w_, (long long)p.kh, (long long)p.sh, t, (long long)i,
                   got[i], want[i]);
      free(x), free(we), free(be), free(wd), free(bd), free(mid), free(want), free(got);
    }
  gpux__set_run_threads(threads);
}

/* gpux.ExpandDepthwise's output is the same bits at any thread count (its strips of rows are
 * whole groups of the depthwise rows' kernels): PaddleOCR cls's small planes, one image. */
static void test_expand_dw_threads(void **state) {
  (void)state;
  if (!gpux__conv_dw16_available() || !gpux__conv_direct_available()) skip();
  static const int64_t shapes[][6] = {/* c, m, h, w, k, pad */
                                      {8, 32, 6, 96, 3, 1}, {16, 88, 3, 96, 5, 2}, {16, 40, 3, 96, 5, 2},
                                      {24, 72, 13, 20, 3, 1}, {24, 72, 11, 20, 5, 2}};
  int old = gpux__set_run_threads(0);
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t *d = shapes[s];
    gpux__conv_epilogue epe = {.act = GPUX_EP_HARDSWISH}, epd = {.act = GPUX_EP_RELU};
    gpux__conv2d e = {.n = 1, .c = d[0], .m = d[1], .g = 1, .h = d[2], .w_ = d[3], .kh = 1, .kw = 1, .oh = d[2],
                      .ow = d[3], .sh = 1, .sw = 1, .dh = 1, .dw = 1, .ep = &epe};
    gpux__conv2d p = {.n = 1, .c = d[1], .m = d[1], .g = d[1], .h = d[2], .w_ = d[3], .kh = d[4], .kw = d[4],
                      .oh = d[2], .ow = d[3], .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pt = d[5], .pl = d[5], .ep = &epd};
    int64_t nx = e.c * e.h * e.w_, ny = p.m * p.oh * p.ow;
    float *x = malloc((size_t)nx * sizeof *x), *we = malloc((size_t)(e.m * e.c) * sizeof *we);
    float *wd = malloc((size_t)(p.m * p.kh * p.kw) * sizeof *wd), *bd = malloc((size_t)p.m * sizeof *bd);
    float *one = malloc((size_t)ny * sizeof *one), *got = malloc((size_t)ny * sizeof *got);
    for (int64_t i = 0; i < nx; i++) x[i] = rndf();
    for (int64_t i = 0; i < e.m * e.c; i++) we[i] = rndf();
    for (int64_t i = 0; i < p.m * p.kh * p.kw; i++) wd[i] = rndf();
    for (int64_t i = 0; i < p.m; i++) bd[i] = rndf();
    e.x = x, e.w = we, p.w = wd, p.b = bd;
    for (int t = 1; t <= 4; t++) {
      gpux__set_run_threads(t); /* up to the pool's size (GPUX_THREADS or the cores) */
      p.y = t == 1 ? one : got;
      assert_int_equal(gpux__conv2d_expand_dw(&e, &p), 0);
      if (t > 1 && memcmp(one, got, (size_t)ny * sizeof *got))
        fail_msg("expand-dw %lld-%lld %lldx%lld k %lld: %d threads differ from 1", (long long)e.c, (long long)e.m,
                 (long long)e.h, (long long)e.w_, (long long)p.kh, t);
    }
    free(x), free(we), free(wd), free(bd), free(one), free(got);
  }
  gpux__set_run_threads(old);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_log_f),
    cmocka_unit_test(test_sigmoid16),
    cmocka_unit_test(test_transpose),
    cmocka_unit_test(test_conv_gemm),
    cmocka_unit_test(test_conv_gemm_nhwc),
    cmocka_unit_test(test_conv_rows_nhwc),
    cmocka_unit_test(test_sgemm_block_pf),
    cmocka_unit_test(test_conv_packed_node),
    cmocka_unit_test(test_implicit_gemm),
    cmocka_unit_test(test_depthwise),
    cmocka_unit_test(test_blocking),
    cmocka_unit_test(test_gemm_vector_shapes),
    cmocka_unit_test(test_conv_ops),
    cmocka_unit_test(test_depthwise_blocks),
    cmocka_unit_test(test_expand_dw),
    cmocka_unit_test(test_expand_dw_threads),
    cmocka_unit_test(test_pool_ops),
    cmocka_unit_test(test_matmul),
    cmocka_unit_test(test_sgemm_packed),
    cmocka_unit_test(test_gemv_packed),
    cmocka_unit_test(test_gemm_finish_gelu),
    cmocka_unit_test(test_matmul_packed_weights),
    cmocka_unit_test(test_conv_windows),
    cmocka_unit_test(test_maxpool_nhwc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
