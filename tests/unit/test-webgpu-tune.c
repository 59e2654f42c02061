/* test-webgpu-tune.c — the tunable WebGPU GEMM (lavapipe on machines without a GPU): every
 * candidate configuration the tuner tries on awkward shapes (edges that are not multiples of the
 * tiles, transposed layouts, a batch) is taken by the plans (none unfit) and gives the default
 * kernel's product up to float reassociation (none rejected), and a spent budget leaves the
 * default. Times are not checked: which candidate wins is the machine's business. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include "runtime/tune.h"

static int have_webgpu(void) {
  gpux_device_info info[4];
  int n = gpux_devices(info, 4, NULL, 0);
  for (int i = 0; i < n && i < 4; i++)
    if (!strcmp(info[i].backend, "webgpu")) return 1;
  return 0;
}

static void tune_shapes(const gpux__gemm_shape *shapes, int n) {
  gpux__tune_result r[8];
  gpux__tune_options o = {.budget_ms = 600000, .software = 1, .once = 1};
  assert_int_equal(gpux__tune_gemms(shapes, n, &o, r), 0);
  for (int i = 0; i < n; i++) {
    if (r[i].rejected || r[i].unfit)
      fprintf(stderr, "shape %lldx%lldx%lld batch %lld: %d tried, %d rejected, %d unfit\n", (long long)r[i].shape.M,
              (long long)r[i].shape.N, (long long)r[i].shape.K, (long long)r[i].shape.batch, r[i].tried, r[i].rejected,
              r[i].unfit);
    assert_true(r[i].measured);
    assert_true(r[i].tried > 0);
    assert_int_equal(r[i].rejected, 0);
    assert_int_equal(r[i].unfit, 0);
    if (r[i].improved) assert_true(r[i].best_ms < r[i].default_ms);
  }
}

/* every candidate of every shape matches the default kernel: transposed layouts with edges past
 * the tiles, and a batch (splits of K: tests/app/tune.sh forces them into a model's GEMMs) */
static void test_candidates_agree(void **state) {
  (void)state;
  if (!have_webgpu()) skip();
  gpux__gemm_shape shapes[] = {
    {.M = 37, .N = 29, .K = 300, .batch = 1, .a_k_contig = 0, .b_n_contig = 0},
    {.M = 20, .N = 9, .K = 33, .batch = 3, .a_k_contig = 1, .b_n_contig = 1},
  };
  tune_shapes(shapes, 2);
}

/* a budget spent on the default's measurement tries no candidate and keeps the default */
static void test_budget(void **state) {
  (void)state;
  if (!have_webgpu()) skip();
  gpux__gemm_shape sh = {.M = 24, .N = 24, .K = 40, .batch = 1, .a_k_contig = 1, .b_n_contig = 1};
  gpux__tune_result r;
  gpux__tune_options o = {.budget_ms = 1}; /* the default's measurement only */
  assert_int_equal(gpux__tune_gemms(&sh, 1, &o, &r), 0);
  assert_true(r.measured);
  assert_false(r.improved);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_candidates_agree),
    cmocka_unit_test(test_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
