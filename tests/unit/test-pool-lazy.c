/* test-pool-lazy.c — the CPU thread pool (core/threadpool.c) starts only the workers that jobs ask
 * for: a session of 1 thread runs a model (a Conv and MatMuls whose weights are packed on the
 * first run, products worth many threads) and the process has started no worker and has no
 * thread more than before; a session of 3 threads then starts 2, and one of the whole pool (4
 * here) the third. A process of its own: any job of another test would start workers first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "gpux/gpux.h"
#include "onnx-writer.h"

enum { C = 128, HW = 30, K = 512 };

static uint32_t seed = 777;
static float rndf(void) {
  seed = seed * 1664525u + 1013904223u;
  return ((float)(seed >> 8) / 16777216.0f * 2.0f - 1.0f) / 16.0f;
}

/* y = MatMul(MatMul(Reshape(Conv(x, wc), [196, K]), w0), w1): x [1, C, HW, HW], wc [C, C, 3, 3]
 * (a 28 x 28 plane of C channels: conv-gemm.c packs wc on the first run), w0 and w1 [K, K]. */
static pbw model_bytes(void) {
  pbw g = {0};
  float *v = malloc((size_t)K * K * sizeof *v); /* K * K >= C * C * 9 */
  int64_t wcd[4] = {C, C, 3, 3}, wd[2] = {K, K}, shape[2] = {C * 28 * 28 / K, K}, sd[1] = {2};
  pbw_node(&g, "Conv", "x", "wc", "c");
  pbw_node(&g, "Reshape", "c", "shape", "r");
  pbw_node(&g, "MatMul", "r", "w0", "h");
  pbw_node(&g, "MatMul", "h", "w1", "y");
  for (int i = 0; i < C * C * 9; i++) v[i] = rndf();
  pbw_tensor(&g, 5, "wc", GPUX_DT_FLOAT, 4, wcd, v, (size_t)C * C * 9 * sizeof *v);
  for (int l = 0; l < 2; l++) {
    for (int i = 0; i < K * K; i++) v[i] = rndf();
    pbw_tensor(&g, 5, l ? "w1" : "w0", GPUX_DT_FLOAT, 2, wd, v, (size_t)K * K * sizeof *v);
  }
  pbw_tensor(&g, 5, "shape", GPUX_DT_INT64, 1, sd, shape, sizeof shape);
  pbw_str(&g, 2, "g");
  int64_t xd[4] = {1, C, HW, HW}, yd[2] = {shape[0], K};
  pbw_value_info(&g, 11, "x", GPUX_DT_FLOAT, 4, xd, NULL);
  pbw_value_info(&g, 12, "y", GPUX_DT_FLOAT, 2, yd, NULL);
  pbw m = {0};
  pbw_model(&m, &g);
  free(v);
  return m;
}

/* The process's threads now (/proc/self/status; -1 where unknown). */
static long process_threads(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long n = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "Threads:", 8)) n = strtol(line + 8, NULL, 10);
  if (f) fclose(f);
  return n;
}

/* Three runs of a session of `threads` threads on m. */
static void runs(gpux_model *m, int threads) {
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = threads};
  gpux_session *s;
  if (gpux_session_create(m, &o, &s)) fail_msg("session: %s", gpux_last_error());
  int64_t xd[4] = {1, C, HW, HW};
  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 4, xd), 0);
  for (int64_t i = 0; i < gpux_tensor_count(&x); i++) ((float *)x.data)[i] = rndf();
  for (int r = 0; r < 3; r++) {
    gpux_tensor y;
    if (gpux_session_run(s, &x, 1, &y, 1)) fail_msg("run: %s", gpux_last_error());
    assert_int_equal(gpux_tensor_count(&y), (int64_t)C * 28 * 28);
    gpux_tensor_free(&y);
  }
  gpux_tensor_free(&x);
  gpux_session_free(s);
}

static void test_workers_started_lazily(void **state) {
  (void)state;
  gpux__set_thread_count(4);
  assert_int_equal(gpux__thread_count(), 4);
  pbw bytes = model_bytes();
  gpux_model *m;
  if (gpux_model_load_buffer(bytes.data, bytes.len, "lazy", &m)) fail_msg("load: %s", gpux_last_error());
  free(bytes.data);
  long before = process_threads();
  runs(m, 1);
  assert_int_equal(gpux__pool_started(), 0);
  if (before > 0) assert_int_equal(process_threads(), before);
  runs(m, 3);
  assert_int_equal(gpux__pool_started(), 2);
  if (before > 0) assert_int_equal(process_threads(), before + 2);
  runs(m, 0);
  assert_int_equal(gpux__pool_started(), 3);
  gpux_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_workers_started_lazily),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
