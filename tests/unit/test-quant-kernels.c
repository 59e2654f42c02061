/* test-quant-kernels.c — unit tests of the 8-bit integer kernels (ops/igemm.c and their drivers
 * in ops/quant.c) against plain int64 loops written here: ConvInteger over random 1-D and 2-D
 * shapes (groups, strides, dilations, asymmetric pads, rows wider than one 64-column panel, more
 * output channels than one block of rows), int8 and uint8 inputs and weights, per-tensor and
 * per-channel zero points; and MatMulInteger with batch broadcasting, per-row and per-column zero
 * points. Each runs with the plain C kernel and with the best the CPU has; results must be equal
 * to the last bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_conv_integer),
    cmocka_unit_test(test_matmul_integer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
