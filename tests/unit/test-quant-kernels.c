/* test-quant-kernels.c — unit tests of the 8-bit integer kernels (ops/igemm.c and their drivers
 * in ops/quant.c) against plain int64 loops written here: ConvInteger over random 1-D and 2-D
 * shapes (groups, strides, dilations, asymmetric pads, rows wider than one 64-column panel, more
 * output channels than one block of rows), int8 and uint8 inputs and weights, per-tensor and
 * per-channel zero points; and MatMulInteger with batch broadcasting, per-row and per-column zero
 * points. Each runs with the plain C kernel and with the best the CPU has; results must be equal
 * to the last bit. QLinearConv and QLinearMatMul's requantization (vectorized) against the
 * scalar formula on their integer products: ties, saturation, bias, per-channel scales, NaN; and
 * constant weights packed once into the node's state, reused on later runs and not for others. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include "ops/igemm.h"
#include "ops/op.h"

static uint32_t rng = 4242;

static int64_t rnd(int64_t lo, int64_t hi) { /* [lo, hi] */
  rng = rng * 1664525u + 1013904223u;
  return lo + (int64_t)((rng >> 8) % (uint32_t)(hi - lo + 1));
}

static gpux_tensor rand_bytes(int dtype, int ndim, const int64_t *dims) {
  gpux_tensor t;
  assert_int_equal(gpux_tensor_init(&t, dtype, ndim, dims), 0);
  for (int64_t i = 0; i < gpux_tensor_count(&t); i++) ((uint8_t *)t.data)[i] = (uint8_t)rnd(0, 255);
  return t;
}

static int64_t byte_at(const gpux_tensor *t, int64_t i) {
  return t->dtype == GPUX_DT_INT8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}

static int run_op(const char *op_type, gpux__attr *attrs, int n_attrs, const gpux_tensor **in, int n_in, gpux_tensor *out) {
  gpux__node n = {.name = "t", .op_type = op_type, .domain = "", .opset = 13, .n_in = n_in, .n_out = 1,
                 .n_attrs = n_attrs, .attrs = attrs};
  n.op = gpux__op_find("", op_type, 13);
  assert_non_null(n.op);
  gpux_tensor *outs[1] = {out};
  gpux__kctx k = {.node = &n, .n_in = n_in, .n_out = 1, .in = in, .out = outs, .opset = 13};
  return n.op->run(&k);
}

static int conv_cases;

static void conv_case(int big) {
  int d2 = (int)rnd(0, 3) != 0;
  int64_t g = rnd(1, 3), cg = rnd(1, big ? 9 : 4), mg = big ? rnd(250, 270) : rnd(1, 6);
  int64_t h = d2 ? rnd(1, 9) : 1, w = rnd(1, big ? 20 : 150);
  int64_t k[2] = {d2 ? rnd(1, 3) : 1, rnd(1, 4)}, st[2] = {rnd(1, 3), rnd(1, 3)}, dl[2] = {rnd(1, 2), rnd(1, 2)};
  int64_t pads[4] = {rnd(0, 2), rnd(0, 2), rnd(0, 2), rnd(0, 2)};
  if (!d2) st[0] = dl[0] = 1, pads[0] = pads[2] = 0;
  int64_t oh = (h + pads[0] + pads[2] - (k[0] - 1) * dl[0] - 1), ow = (w + pads[1] + pads[3] - (k[1] - 1) * dl[1] - 1);
  if (oh < 0 || ow < 0) return;
  oh = oh / st[0] + 1, ow = ow / st[1] + 1;
  int xdt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8, wdt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8;
  int64_t n = rnd(1, 2), m = g * mg, c = g * cg;
  int64_t xd[4] = {n, c, h, w}, wd[4] = {m, cg, k[0], k[1]}, zd[1] = {rnd(0, 1) ? m : 1};
  int nd = d2 ? 4 : 3;
  if (!d2) xd[2] = w, wd[2] = k[1];
  gpux_tensor x = rand_bytes(xdt, nd, xd), wt = rand_bytes(wdt, nd, wd);
  gpux_tensor xz = rand_bytes(xdt, 0, NULL), wz = rand_bytes(wdt, 1, zd), y = {0};
  int64_t sp[2] = {st[d2 ? 0 : 1], st[1]}, dp[2] = {dl[d2 ? 0 : 1], dl[1]};
  int64_t pp[4] = {pads[d2 ? 0 : 1], d2 ? pads[1] : pads[3], pads[2], pads[3]};
  gpux__attr attrs[4] = {
    {.name = "group", .type = GPUX_ATTR_INT, .i = g},
    {.name = "strides", .type = GPUX_ATTR_INTS, .n = d2 ? 2 : 1, .ints = sp},
    {.name = "dilations", .type = GPUX_ATTR_INTS, .n = d2 ? 2 : 1, .ints = dp},
    {.name = "pads", .type = GPUX_ATTR_INTS, .n = d2 ? 4 : 2, .ints = pp},
  };
  const gpux_tensor *in[4] = {&x, &wt, &xz, &wz};
  assert_int_equal(run_op("ConvInteger", attrs, 4, in, 4, &y), 0);
  assert_int_equal(gpux_tensor_count(&y), n * m * oh * ow);
  int64_t xzv = byte_at(&xz, 0);
  for (int64_t b = 0; b < n; b++)
    for (int64_t oc = 0; oc < m; oc++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
          int64_t acc = 0, wzv = byte_at(&wz, zd[0] == 1 ? 0 : oc);
          for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t ki = 0; ki < k[0]; ki++)
              for (int64_t kj = 0; kj < k[1]; kj++) {
                int64_t ih = i * st[0] - pads[0] + ki * dl[0], iw = j * st[1] - pads[1] + kj * dl[1];
                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                int64_t xv = byte_at(&x, ((b * c + oc / mg * cg + ci) * h + ih) * w + iw) - xzv;
                acc += xv * (byte_at(&wt, ((oc * cg + ci) * k[0] + ki) * k[1] + kj) - wzv);
              }
          int32_t got = ((const int32_t *)y.data)[((b * m + oc) * oh + i) * ow + j];
          if (got != acc)
            fail_msg("ConvInteger %s x %s g %lld c %lld m %lld %lldx%lld k %lldx%lld s %lld,%lld d %lld,%lld: y[%lld,%lld,%lld,%lld] = %d, want %lld",
                     gpux_dtype_name(xdt), gpux_dtype_name(wdt), (long long)g, (long long)c, (long long)m, (long long)h,
                     (long long)w, (long long)k[0], (long long)k[1], (long long)st[0], (long long)st[1], (long long)dl[0],
                     (long long)dl[1], (long long)b, (long long)oc, (long long)i, (long long)j, got, (long long)acc);
        }
  conv_cases++;
  gpux_tensor *all[] = {&x, &wt, &xz, &wz, &y};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gpux_tensor_free(all[i]);
}

static void matmul_case(void) {
  int64_t ba = rnd(1, 3), bb = rnd(0, 1) ? ba : 1, m = rnd(1, 150), kk = rnd(1, 70), n = rnd(1, rnd(0, 3) ? 40 : 300);
  int adt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8, bdt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8;
  int64_t ad[3] = {ba, m, kk}, bd[3] = {bb, kk, n}, azd[1] = {rnd(0, 1) ? m : 1}, bzd[1] = {rnd(0, 1) ? n : 1};
  gpux_tensor a = rand_bytes(adt, 3, ad), b = rand_bytes(bdt, bb > 1 ? 3 : 2, bb > 1 ? bd : bd + 1);
  gpux_tensor az = rand_bytes(adt, 1, azd), bz = rand_bytes(bdt, 1, bzd), y = {0};
  const gpux_tensor *in[4] = {&a, &b, &az, &bz};
  assert_int_equal(run_op("MatMulInteger", NULL, 0, in, 4, &y), 0);
  for (int64_t bi = 0; bi < ba; bi++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        int64_t acc = 0;
        for (int64_t p = 0; p < kk; p++)
          acc += (byte_at(&a, (bi * m + i) * kk + p) - byte_at(&az, azd[0] == 1 ? 0 : i)) *
                 (byte_at(&b, ((bb > 1 ? bi : 0) * kk + p) * n + j) - byte_at(&bz, bzd[0] == 1 ? 0 : j));
        int32_t got = ((const int32_t *)y.data)[(bi * m + i) * n + j];
        if (got != acc)
          fail_msg("MatMulInteger %s x %s %lldx%lldx%lldx%lld: y[%lld,%lld,%lld] = %d, want %lld", gpux_dtype_name(adt),
                   gpux_dtype_name(bdt), (long long)ba, (long long)m, (long long)kk, (long long)n, (long long)bi,
                   (long long)i, (long long)j, got, (long long)acc);
      }
  gpux_tensor *all[] = {&a, &b, &az, &bz, &y};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gpux_tensor_free(all[i]);
}

static void both_kernels(void (*cases)(void)) {
  const char *best = gpux__igemm_select(NULL);
  cases();
  if (strcmp(best, "c")) {
    assert_string_equal(gpux__igemm_select("c"), "c");
    cases();
  }
  gpux__igemm_select(NULL);
}

static void conv_cases_run(void) {
  conv_cases = 0;
  for (int i = 0; i < 120; i++) conv_case(0);
  for (int i = 0; i < 4; i++) conv_case(1);
  assert_true(conv_cases > 80);
}

static void matmul_cases_run(void) {
  for (int i = 0; i < 60; i++) matmul_case();
}

static void test_conv_integer(void **state) {
  (void)state;
  both_kernels(conv_cases_run);
}

static void test_matmul_integer(void **state) {
  (void)state;
  both_kernels(matmul_cases_run);
}

/* The requantized byte of an int32 product: acc * mult + yz rounded half to even and saturated
 * (NaN as 0), mult = (a_scale * b_scale) / y_scale, each step rounded to float. */
static int64_t requant_ref(int64_t acc, float s1, float s2, float ys, int64_t yz, int out_dt) {
  double mult = (float)((double)(float)((double)s1 * s2) / ys);
  double v = (double)(int32_t)(uint32_t)acc * mult + (double)yz;
  int64_t lo = out_dt == GPUX_DT_UINT8 ? 0 : -128, hi = out_dt == GPUX_DT_UINT8 ? 255 : 127;
  if (isnan(v)) return 0;
  v = nearbyint(v);
  return v <= (double)lo ? lo : v >= (double)hi ? hi : (int64_t)v;
}

static gpux_tensor scalar_f32(float v) {
  gpux_tensor t;
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_FLOAT, 0, NULL), 0);
  *(float *)t.data = v;
  return t;
}

/* Scales: powers of two (products on exact halves: ties), random ones, or a zero y_scale (NaN and
 * infinities). */
static float pick_scale(int kind) {
  if (kind == 0) return ldexpf(1.0f, (int)rnd(-6, 1));
  return (float)rnd(1, 1000) / 4096.0f;
}

static void qlinear_case(int conv) {
  int kind = (int)rnd(0, 2);
  int xdt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8, wdt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8;
  int ydt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8;
  gpux_tensor x, wt, acc = {0}, y = {0};
  int64_t m, per; /* output channels (conv) and values per channel */
  gpux__attr attrs[1] = {{.name = "pads", .type = GPUX_ATTR_INTS, .n = 4}};
  int64_t pads[4] = {1, 0, 0, 1};
  attrs[0].ints = pads;
  if (conv) {
    int64_t c = rnd(1, 4), h = rnd(1, 7), w = rnd(1, 30);
    m = rnd(1, 9);
    int64_t xd[4] = {1, c, h, w}, wd[4] = {m, c, 2, 2};
    x = rand_bytes(xdt, 4, xd), wt = rand_bytes(wdt, 4, wd);
    per = (h + 1 - 1) * (w + 1 - 1);
  } else {
    int64_t rows = rnd(1, 20), kk = rnd(1, 30), cols = rnd(1, 40);
    int64_t ad[2] = {rows, kk}, bd[2] = {kk, cols};
    x = rand_bytes(xdt, 2, ad), wt = rand_bytes(wdt, 2, bd);
    m = 1, per = rows * cols;
  }
  gpux_tensor xz = rand_bytes(xdt, 0, NULL), wz = rand_bytes(wdt, 0, NULL), yz = rand_bytes(ydt, 0, NULL);
  float xs = pick_scale(kind), ys = kind == 2 && rnd(0, 3) == 0 ? 0.0f : pick_scale(kind);
  int64_t sd[1] = {m}, bdims[1] = {m};
  gpux_tensor xst = scalar_f32(xs), yst = scalar_f32(ys), wst, bias;
  assert_int_equal(gpux_tensor_init(&wst, GPUX_DT_FLOAT, 1, sd), 0);
  assert_int_equal(gpux_tensor_init(&bias, GPUX_DT_INT32, 1, bdims), 0);
  for (int64_t i = 0; i < m; i++) {
    ((float *)wst.data)[i] = pick_scale(kind);
    ((int32_t *)bias.data)[i] = (int32_t)rnd(-3000, 3000);
  }
  if (!conv) *(float *)wst.data = pick_scale(kind), wst.ndim = 0;
  const gpux_tensor *iin[4] = {&x, &wt, &xz, &wz};
  assert_int_equal(run_op(conv ? "ConvInteger" : "MatMulInteger", attrs, conv, iin, 4, &acc), 0);
  const gpux_tensor *qin[9] = {&x, &xst, &xz, &wt, &wst, &wz, &yst, &yz, &bias};
  assert_int_equal(run_op(conv ? "QLinearConv" : "QLinearMatMul", attrs, conv, qin, conv ? 9 : 8, &y), 0);
  assert_int_equal(gpux_tensor_count(&y), gpux_tensor_count(&acc));
  assert_int_equal(y.dtype, ydt);
  per = gpux_tensor_count(&acc) / m;
  for (int64_t i = 0; i < gpux_tensor_count(&acc); i++) {
    int64_t oc = i / per, a = ((const int32_t *)acc.data)[i] + (conv ? ((const int32_t *)bias.data)[oc] : 0);
    int64_t want = requant_ref(a, xs, ((const float *)wst.data)[conv ? oc : 0], ys, byte_at(&yz, 0), ydt);
    if (byte_at(&y, i) != want)
      fail_msg("%s %s -> %s, scales %g %g %g: y[%lld] = %lld, want %lld (product %lld)", conv ? "QLinearConv" : "QLinearMatMul",
               gpux_dtype_name(xdt), gpux_dtype_name(ydt), xs, ((const float *)wst.data)[conv ? oc : 0], ys, (long long)i,
               (long long)byte_at(&y, i), (long long)want, (long long)a);
  }
  gpux_tensor *all[] = {&x, &wt, &xz, &wz, &yz, &xst, &yst, &wst, &bias, &acc, &y};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gpux_tensor_free(all[i]);
}

static void test_qlinear_requant(void **state) {
  (void)state;
  for (int i = 0; i < 80; i++) qlinear_case(i & 1);
}

/* Runs op_type with a state slot, the inputs in `konst` marked initializers. */
static int run_op_state(const char *op_type, gpux__attr *attrs, int n_attrs, const gpux_tensor **in, int n_in,
                        uint64_t konst, gpux__node_state *_Atomic *slot, gpux_tensor *out) {
  gpux__node n = {.name = "t", .op_type = op_type, .domain = "", .opset = 13, .n_in = n_in, .n_out = 1,
                 .n_attrs = n_attrs, .attrs = attrs};
  n.op = gpux__op_find("", op_type, 13);
  assert_non_null(n.op);
  gpux_tensor *outs[1] = {out};
  gpux__kctx k = {.node = &n, .n_in = n_in, .n_out = 1, .in = in, .out = outs, .opset = 13, .state = slot,
                  .const_in = konst};
  return n.op->run(&k);
}

/* ConvInteger and MatMulInteger with constant weights and zero points: packed on the first run,
 * read from the state on the next ones; the last run passes other weights, which must not be
 * read from the state. Every run equals the stateless op's output. */
static void test_kept_weights(void **state) {
  (void)state;
  for (int c = 0; c < 16; c++) {
    int conv = c & 1, xdt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8, wdt = rnd(0, 1) ? GPUX_DT_INT8 : GPUX_DT_UINT8;
    int64_t m = rnd(1, 40), kk = rnd(1, 30), rows = rnd(1, 70);
    int64_t xd4[4] = {1, kk, 3, rnd(1, 20)}, wd4[4] = {m, kk, 1, 2}, xd2[2] = {rows, kk}, wd2[2] = {kk, m}, zd[1] = {m};
    gpux_tensor x = conv ? rand_bytes(xdt, 4, xd4) : rand_bytes(xdt, 2, xd2);
    gpux_tensor w = conv ? rand_bytes(wdt, 4, wd4) : rand_bytes(wdt, 2, wd2), w2 = conv ? rand_bytes(wdt, 4, wd4) : rand_bytes(wdt, 2, wd2);
    gpux_tensor xz = rand_bytes(xdt, 0, NULL), wz = rand_bytes(wdt, 1, zd);
    gpux_tensor ref = {0}, ref2 = {0};
    const gpux_tensor *in[4] = {&x, &w, &xz, &wz}, *in2[4] = {&x, &w2, &xz, &wz};
    const char *op = conv ? "ConvInteger" : "MatMulInteger";
    assert_int_equal(run_op(op, NULL, 0, in, 4, &ref), 0);
    assert_int_equal(run_op(op, NULL, 0, in2, 4, &ref2), 0);
    gpux__node_state *_Atomic slot = NULL;
    for (int run = 0; run < 4; run++) {
      gpux_tensor y = {0};
      assert_int_equal(run_op_state(op, NULL, 0, run == 3 ? in2 : in, 4, 2 | 8, &slot, &y), 0);
      assert_non_null(atomic_load(&slot));
      const gpux_tensor *want = run == 3 ? &ref2 : &ref;
      assert_int_equal(gpux_tensor_count(&y), gpux_tensor_count(want));
      assert_memory_equal(y.data, want->data, (size_t)gpux_tensor_count(want) * sizeof(int32_t));
      gpux_tensor_free(&y);
    }
    gpux__node_state *st = atomic_load(&slot);
    st->destroy(st);
    gpux_tensor *all[] = {&x, &w, &w2, &xz, &wz, &ref, &ref2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gpux_tensor_free(all[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_conv_integer),
    cmocka_unit_test(test_matmul_integer),
    cmocka_unit_test(test_qlinear_requant),
    cmocka_unit_test(test_kept_weights),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
