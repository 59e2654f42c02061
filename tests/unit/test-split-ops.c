/* test-split-ops.c — elementwise ops, GlobalAveragePool and gpux.GlobalAveragePoolNHWC split over the thread pool by
 * its cost model (gpux__parallel_for_elems, the strips of rows of pool.c): the same values as a
 * scalar reference on odd sizes at 1, 2, 3 and 16 threads, broadcast or not; the channels-last
 * depthwise convolution split by rows and groups of channels, and the implicit GEMM's tiles of
 * positions: the same bits at any threads. The
 * pool has 16 threads here, whatever the machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include "core/internal.h"
#include "ops/conv.h"
#include "ops/op.h"
#include <string.h>

static const int caps[] = {1, 2, 3, 16};

static int group_setup(void **state) {
  (void)state;
  gpux__set_thread_count(16);
  return gpux__thread_count() == 16 ? 0 : -1;
}

static uint32_t seed = 12345;
static float rndf(void) {
  seed = seed * 1664525u + 1013904223u;
  return (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static gpux_tensor rand_tensor(int ndim, const int64_t *dims) {
  gpux_tensor t;
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_FLOAT, ndim, dims), 0);
  for (int64_t i = 0; i < gpux_tensor_count(&t); i++) ((float *)t.data)[i] = rndf();
  return t;
}

static int run_op(const char *domain, const char *op_type, const gpux_tensor **in, int n_in, gpux_tensor *out) {
  gpux__node n = {.name = "t", .op_type = op_type, .domain = domain, .opset = 17, .n_in = n_in, .n_out = 1};
  n.op = gpux__op_find(domain, op_type, 17);
  assert_non_null(n.op);
  gpux_tensor *outs[1] = {out};
  gpux__kctx k = {.node = &n, .n_in = n_in, .n_out = 1, .in = in, .out = outs, .opset = 17};
  return n.op->run(&k);
}

/* Mul and Add of [1, C, H, W] by [1, C, 1, 1] (an excitation's scale), of [1, H, W, C] by [C],
 * and of two equal shapes; HardSwish and HardSigmoid of the same: every element as the scalar
 * expression gives it, whatever the threads. */
static void test_elementwise_split(void **state) {
  (void)state;
  const int64_t shapes[][4] = {{1, 960, 7, 7}, {1, 672, 7, 7}, {1, 1, 1, 1}, {1, 3, 5, 7},
                               {1, 72, 28, 28}, {2, 17, 13, 11}, {1, 120, 29, 31}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t *d = shapes[s];
    int64_t bd[4] = {1, d[1], 1, 1}, cl[4] = {d[0], d[2], d[3], d[1]}, cd[1] = {d[1]};
    gpux_tensor x = rand_tensor(4, d), b = rand_tensor(4, bd), z = rand_tensor(4, d);
    gpux_tensor xc = rand_tensor(4, cl), bc = rand_tensor(1, cd);
    int64_t n = gpux_tensor_count(&x), c = d[1], hw = d[2] * d[3];
    for (size_t t = 0; t < sizeof caps / sizeof *caps; t++) {
      int old = gpux__set_run_threads(caps[t]);
      gpux_tensor y = {0}, yc = {0}, ya = {0}, yh = {0};
      const gpux_tensor *in[2] = {&x, &b}, *inc[2] = {&xc, &bc}, *ina[2] = {&x, &z}, *inh[1] = {&x};
      assert_int_equal(run_op("", "Mul", in, 2, &y), 0);
      assert_int_equal(run_op("", "Mul", inc, 2, &yc), 0);
      assert_int_equal(run_op("", "Add", ina, 2, &ya), 0);
      assert_int_equal(run_op("", "HardSwish", inh, 1, &yh), 0);
      const float *px = x.data, *pb = b.data, *pz = z.data, *pxc = xc.data, *pbc = bc.data;
      for (int64_t i = 0; i < n; i++) {
        float v = px[i], hs = v * fminf(fmaxf(v * (1.0f / 6.0f) + 0.5f, 0.0f), 1.0f);
        assert_true(((float *)y.data)[i] == v * pb[i / hw % c]);
        assert_true(((float *)yc.data)[i] == pxc[i] * pbc[i % c]);
        assert_true(((float *)ya.data)[i] == v + pz[i]);
        assert_true(fabsf(((float *)yh.data)[i] - hs) <= 1e-6f);
      }
      gpux_tensor_free(&y), gpux_tensor_free(&yc), gpux_tensor_free(&ya), gpux_tensor_free(&yh);
      gpux__set_run_threads(old);
    }
    gpux_tensor_free(&x), gpux_tensor_free(&b), gpux_tensor_free(&z), gpux_tensor_free(&xc), gpux_tensor_free(&bc);
  }
}

/* GlobalAveragePoolNHWC by blocks of channels and by strips of rows: each mean within float
 * rounding of the sum in double, at 1, 2, 3 and 16 threads (strips of 1 row up to the whole X). */
static void test_gap_nhwc_split(void **state) {
  (void)state;
  const int64_t shapes[][4] = {{1, 7, 7, 960}, {1, 14, 14, 72}, {2, 7, 7, 70}, {1, 1, 1, 17},
                               {1, 13, 3, 1}, {2, 5, 9, 65}, {1, 17, 1, 130}, {3, 2, 2, 64}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t *d = shapes[s];
    gpux_tensor x = rand_tensor(4, d);
    int64_t n = d[0], hw = d[1] * d[2], c = d[3];
    for (int rows = 0; rows < 2; rows++)
      for (size_t t = 0; t < sizeof caps / sizeof *caps; t++) {
        int old = gpux__set_run_threads(caps[t]), was = gpux__gap_rows_set(rows);
        gpux_tensor y = {0};
        const gpux_tensor *in[1] = {&x};
        assert_int_equal(run_op("gpux", "GlobalAveragePoolNHWC", in, 1, &y), 0);
        assert_int_equal(y.ndim, 4);
        assert_int_equal(y.dims[1], c);
        for (int64_t b = 0; b < n; b++)
          for (int64_t ch = 0; ch < c; ch++) {
            double acc = 0;
            for (int64_t q = 0; q < hw; q++) acc += ((const float *)x.data)[(b * hw + q) * c + ch];
            float want = (float)(acc / (double)hw), got = ((float *)y.data)[b * c + ch];
            if (!(fabsf(got - want) <= 1e-6f)) fail_msg("shape %zu rows %d threads %d: [%lld, %lld] %g, want %g", s, rows,
                                                        caps[t], (long long)b, (long long)ch, got, want);
          }
        gpux_tensor_free(&y);
        gpux__gap_rows_set(was);
        gpux__set_run_threads(old);
      }
    gpux_tensor_free(&x);
  }
}

/* GlobalAveragePool of planes, split by the cost model: each mean as the double sum gives it, odd
 * plane counts and sizes, 1, 2, 3 and 16 threads. */
static void test_gap_planes_split(void **state) {
  (void)state;
  const int64_t shapes[][4] = {{1, 960, 7, 7}, {1, 72, 28, 28}, {2, 17, 13, 11}, {1, 1, 1, 1}, {1, 1001, 3, 5}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    gpux_tensor x = rand_tensor(4, shapes[s]);
    int64_t planes = shapes[s][0] * shapes[s][1], hw = shapes[s][2] * shapes[s][3];
    for (size_t t = 0; t < sizeof caps / sizeof *caps; t++) {
      int old = gpux__set_run_threads(caps[t]);
      gpux_tensor y = {0};
      const gpux_tensor *in[1] = {&x};
      assert_int_equal(run_op("", "GlobalAveragePool", in, 1, &y), 0);
      for (int64_t p = 0; p < planes; p++) {
        double acc = 0;
        for (int64_t q = 0; q < hw; q++) acc += ((const float *)x.data)[p * hw + q];
        float want = (float)(acc / (double)hw), got = ((float *)y.data)[p];
        if (!(fabsf(got - want) <= 1e-6f))
          fail_msg("shape %zu threads %d: plane %lld %g, want %g", s, caps[t], (long long)p, got, want);
      }
      gpux_tensor_free(&y);
      gpux__set_run_threads(old);
    }
    gpux_tensor_free(&x);
  }
}

/* gpux.ConvNHWC's depthwise kernel (conv-depthwise.c) splits one image's rows, and where rows
 * are few against the threads also their channels, into groups of blocks of 16: every output is
 * the same FMAs in the same order whatever the split, so 2, 3, 4 and 16 threads give the bits of
 * one (7 x 7 and 14 x 14 planes of MobileNetV3 and EfficientNet-B0, odd channel counts, a last
 * block of fewer than 16 channels, stride 2, a residual). */
static void test_depthwise_nhwc_split(void **state) {
  (void)state;
  if (!gpux__conv_dw16_available()) skip();
  static const int64_t shapes[][5] = {/* c, h (= w), k, stride, residual */
                                      {960, 7, 5, 1, 0}, {1152, 7, 3, 1, 1}, {672, 14, 3, 1, 0}, {672, 14, 5, 2, 0},
                                      {200, 14, 3, 1, 1}, {184, 14, 3, 1, 0}, {1000, 7, 5, 1, 0}, {77, 9, 3, 1, 1},
                                      {480, 14, 5, 1, 0}, {240, 28, 3, 2, 0}};
  static const int threads[] = {1, 2, 3, 4, 16};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t *d = shapes[s];
    int64_t pad = d[2] / 2;
    gpux__conv_epilogue ep = {.act = s % 2 ? GPUX_EP_SILU : GPUX_EP_HARDSWISH};
    gpux__conv2d p = {.n = 1, .c = d[0], .m = d[0], .g = d[0], .h = d[1], .w_ = d[1], .kh = d[2], .kw = d[2],
                      .sh = d[3], .sw = d[3], .dh = 1, .dw = 1, .pt = pad, .pl = pad, .ep = &ep, .channels_last = 1};
    p.oh = p.ow = (d[1] + 2 * pad - d[2]) / d[3] + 1;
    int64_t nx = p.c * p.h * p.w_, ny = p.m * p.oh * p.ow, nw = p.m * p.kh * p.kw;
    float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *b = malloc((size_t)p.m * sizeof *b);
    float *r = malloc((size_t)ny * sizeof *r), *y1 = malloc((size_t)ny * sizeof *y1), *y = malloc((size_t)ny * sizeof *y);
    for (int64_t i = 0; i < nx; i++) x[i] = rndf();
    for (int64_t i = 0; i < nw; i++) w[i] = rndf();
    for (int64_t i = 0; i < p.m; i++) b[i] = rndf();
    for (int64_t i = 0; i < ny; i++) r[i] = rndf();
    p.x = x, p.w = w, p.b = b;
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
      float *out = t ? y : y1;
      for (int64_t i = 0; i < ny; i++) out[i] = NAN;
      if (d[4]) ep.res = r, ep.y0 = out;
      p.y = out;
      int old = gpux__set_run_threads(threads[t]);
      assert_int_equal(gpux__conv2d_depthwise_nhwc(&p), 0);
      gpux__set_run_threads(old);
      if (t && memcmp(y, y1, (size_t)ny * sizeof *y))
        fail_msg("c %lld %lldx%lld k %lld s %lld: %d threads differ from 1", (long long)d[0], (long long)d[1],
                 (long long)d[1], (long long)d[2], (long long)d[3], threads[t]);
    }
    free(x), free(w), free(b), free(r), free(y1), free(y);
  }
}

/* conv-direct.c's implicit GEMM, whose tiles of positions are capped at 64K floats of sums, takes
 * more, smaller ones where the capped ones leave the threads unevenly busy (MobileNetV3's 16 -> 64
 * channels and EfficientNet-B0's 16 -> 96 on 112 x 112, its 3 x 3 stem of stride 2): every output
 * is the same sum whatever its tile, so 2, 3, 4 and 16 threads give the bits of one. */
static void test_implicit_split(void **state) {
  (void)state;
  if (!gpux__conv_direct_available()) skip();
  static const int64_t shapes[][5] = {/* c, m, h (= w), k, stride */
                                      {16, 64, 112, 1, 1}, {16, 96, 112, 1, 1}, {3, 32, 224, 3, 2}, {24, 72, 56, 1, 1}};
  static const int threads[] = {1, 2, 3, 4, 16};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t *d = shapes[s];
    int64_t pad = d[3] / 2;
    gpux__conv_epilogue ep = {.act = GPUX_EP_RELU};
    gpux__conv2d p = {.n = 1, .c = d[0], .m = d[1], .g = 1, .h = d[2], .w_ = d[2], .kh = d[3], .kw = d[3],
                      .sh = d[4], .sw = d[4], .dh = 1, .dw = 1, .pt = pad, .pl = pad, .ep = &ep};
    p.oh = p.ow = (d[2] + 2 * pad - d[3]) / d[4] + 1;
    int64_t nx = p.c * p.h * p.w_, ny = p.m * p.oh * p.ow, nw = p.m * p.c * p.kh * p.kw;
    float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *b = malloc((size_t)p.m * sizeof *b);
    float *y1 = malloc((size_t)ny * sizeof *y1), *y = malloc((size_t)ny * sizeof *y);
    for (int64_t i = 0; i < nx; i++) x[i] = rndf();
    for (int64_t i = 0; i < nw; i++) w[i] = rndf();
    for (int64_t i = 0; i < p.m; i++) b[i] = rndf();
    p.x = x, p.w = w, p.b = b;
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
      float *out = t ? y : y1;
      for (int64_t i = 0; i < ny; i++) out[i] = NAN;
      p.y = out;
      int old = gpux__set_run_threads(threads[t]);
      assert_int_equal(gpux__conv2d_implicit(&p), 0);
      gpux__set_run_threads(old);
      if (t && memcmp(y, y1, (size_t)ny * sizeof *y))
        fail_msg("c %lld m %lld %lldx%lld k %lld: %d threads differ from 1", (long long)d[0], (long long)d[1],
                 (long long)d[2], (long long)d[2], (long long)d[3], threads[t]);
    }
    free(x), free(w), free(b), free(y1), free(y);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_elementwise_split),
    cmocka_unit_test(test_gap_nhwc_split),
    cmocka_unit_test(test_gap_planes_split),
    cmocka_unit_test(test_depthwise_nhwc_split),
    cmocka_unit_test(test_implicit_split),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
