/* test-core.c — unit tests of the core: dtype codecs (float16, bfloat16, float8, float4),
 * broadcasting, tensor copy and the ONNX comparison rule, the log handler, the version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include "core/internal.h"
#include "core/scratch.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static void test_f16_round_trip(void **state) {
  (void)state;
  const float exact[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f};
  for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
    assert_true(gpux__f16_to_f32(gpux__f32_to_f16(exact[i])) == exact[i]);
  assert_true(isinf(gpux__f16_to_f32(gpux__f32_to_f16(70000.0f))));
  assert_true(isnan(gpux__f16_to_f32(gpux__f32_to_f16(NAN))));
  /* 1 + 2^-11 is halfway between 1 and the next half: ties to even gives 1 */
  assert_int_equal(gpux__f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  assert_int_equal(gpux__f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
}

static void test_bf16(void **state) {
  (void)state;
  assert_int_equal(gpux__f32_to_bf16(1.0f), 0x3f80);
  assert_true(gpux__bf16_to_f32(0x3f80) == 1.0f);
  assert_true(isnan(gpux__bf16_to_f32(gpux__f32_to_bf16(NAN))));
}

static void test_minifloats(void **state) {
  (void)state;
  /* e4m3fn: max 448, no infinity; 0x7f is NaN */
  assert_true(gpux__minifloat_to_f32(GPUX_DT_FLOAT8E4M3FN, 0x7e) == 448.0f);
  assert_true(isnan(gpux__minifloat_to_f32(GPUX_DT_FLOAT8E4M3FN, 0x7f)));
  assert_int_equal(gpux__f32_to_minifloat(GPUX_DT_FLOAT8E4M3FN, 1000.0f, 1), 0x7e);
  assert_int_equal(gpux__f32_to_minifloat(GPUX_DT_FLOAT8E4M3FN, 1000.0f, 0), 0x7f);
  /* e5m2 has infinities */
  assert_true(isinf(gpux__minifloat_to_f32(GPUX_DT_FLOAT8E5M2, 0x7c)));
  /* float4e2m1 values are 0, .5, 1, 1.5, 2, 3, 4, 6 */
  assert_true(gpux__minifloat_to_f32(GPUX_DT_FLOAT4E2M1, 0x7) == 6.0f);
  assert_int_equal(gpux__f32_to_minifloat(GPUX_DT_FLOAT4E2M1, 2.9f, 1), 0x5);
  assert_true(gpux__minifloat_to_f32(GPUX_DT_FLOAT4E2M1, 0xf) == -6.0f);
  for (int c = 0; c < 256; c++) { /* every finite e4m3fnuz code round-trips */
    float v = gpux__minifloat_to_f32(GPUX_DT_FLOAT8E4M3FNUZ, (uint8_t)c);
    if (!isnan(v)) assert_int_equal(gpux__f32_to_minifloat(GPUX_DT_FLOAT8E4M3FNUZ, v, 1), c == 0x80 ? 0 : c);
  }
}

static void test_broadcast(void **state) {
  (void)state;
  int64_t a[] = {2, 1, 4}, b[] = {3, 1}, out[GPUX_MAX_DIMS];
  int n;
  assert_int_equal(gpux__broadcast_shape(3, a, 2, b, &n, out), 0);
  assert_int_equal(n, 3);
  assert_int_equal(out[0], 2);
  assert_int_equal(out[1], 3);
  assert_int_equal(out[2], 4);
  int64_t c[] = {5};
  assert_int_equal(gpux__broadcast_shape(3, a, 1, c, &n, out), GPUX_E_SHAPE);
}

static void test_compare(void **state) {
  (void)state;
  gpux_tensor a, b;
  int64_t dims[] = {2, 2};
  assert_int_equal(gpux_tensor_init(&a, GPUX_DT_FLOAT, 2, dims), 0);
  assert_int_equal(gpux_tensor_init(&b, GPUX_DT_FLOAT, 2, dims), 0);
  float *x = a.data, *y = b.data;
  x[0] = y[0] = 1.0f;
  x[1] = 1000.0f; y[1] = 1000.5f;   /* within rtol 1e-3 */
  x[2] = y[2] = NAN;                /* NaN equals NaN */
  x[3] = y[3] = INFINITY;
  gpux_compare_report r;
  assert_int_equal(gpux_tensor_compare(&a, &b, 1e-3, 1e-7, &r), 0);
  x[1] = 1002.0f;
  assert_int_equal(gpux_tensor_compare(&a, &b, 1e-3, 1e-7, &r), GPUX_E_MISMATCH);
  assert_int_equal(r.worst_index, 1);
  assert_non_null(strstr(r.message, "[0,1]"));
  x[1] = 1000.5f;
  x[3] = -INFINITY;
  assert_int_equal(gpux_tensor_compare(&a, &b, 1e-3, 1e-7, &r), GPUX_E_MISMATCH);
  gpux_tensor c;
  assert_int_equal(gpux_tensor_copy(&c, &a), 0);
  assert_int_equal(memcmp(c.data, a.data, a.nbytes), 0);
  int64_t d3[] = {4};
  gpux_tensor e;
  assert_int_equal(gpux_tensor_init(&e, GPUX_DT_FLOAT, 1, d3), 0);
  assert_int_equal(gpux_tensor_compare(&e, &a, 1e-3, 1e-7, &r), GPUX_E_MISMATCH); /* shape */
  gpux_tensor_free(&a);
  gpux_tensor_free(&b);
  gpux_tensor_free(&c);
  gpux_tensor_free(&e);
}

static void sum_range(void *ctx, int64_t begin, int64_t end) {
  int64_t *counts = ctx;
  for (int64_t i = begin; i < end; i++) counts[i]++;
}

static void test_parallel_for(void **state) {
  (void)state;
  enum { N = 100000 };
  int64_t *counts = calloc(N, sizeof *counts);
  gpux__parallel_for(N, 100, sum_range, counts);
  gpux__parallel_for(N, 100, sum_range, counts);
  for (int i = 0; i < N; i++) assert_int_equal(counts[i], 2);
  free(counts);
}

/* Which threads ran the chunks of a job. */
typedef struct {
  pthread_mutex_t mu;
  pthread_t seen[64];
  int n_seen;
} thread_log;

static void note_thread(void *ctx, int64_t begin, int64_t end) {
  thread_log *log = ctx;
  (void)begin, (void)end;
  usleep(200); /* long enough for idle workers to join */
  pthread_mutex_lock(&log->mu);
  int known = 0;
  for (int i = 0; i < log->n_seen; i++) known |= pthread_equal(log->seen[i], pthread_self());
  if (!known && log->n_seen < 64) log->seen[log->n_seen++] = pthread_self();
  pthread_mutex_unlock(&log->mu);
}

static int threads_used(int limit) {
  thread_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  int old = gpux__set_run_threads(limit);
  gpux__parallel_for(400, 1, note_thread, &log);
  assert_int_equal(gpux__set_run_threads(old), limit);
  return log.n_seen;
}

/* A session's `threads` caps the threads of its jobs, whatever the process-wide pool holds. */
/* A thread outside the pool (a server's request thread) takes kernel scratch: it is freed when
 * the thread exits (counted in glibc's bytes in use, heap and mapped, and in the huge-page
 * mappings of gpux__alloc_large; under AddressSanitizer its
 * leak check at exit is what fails instead; ThreadSanitizer's allocator is not glibc's). */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static size_t bytes_in_use(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd + gpux__large_bytes();
}
#endif
static void *scratch_user(void *arg) {
  void *p = gpux__scratch(GPUX__SCRATCH_CONV_IMAGE, (size_t)8 << 20);
  memset(p, 1, 4096);
  *(void **)arg = p;
  return NULL;
}

static void test_scratch_freed_at_thread_exit(void **state) {
  (void)state;
  void *p = NULL;
  pthread_t t;
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  size_t before = bytes_in_use();
#endif
  assert_int_equal(pthread_create(&t, NULL, scratch_user, &p), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_non_null(p);
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  assert_true(bytes_in_use() < before + ((size_t)1 << 20));
  /* and a block still held shows: this thread's own */
  void *q = gpux__scratch(GPUX__SCRATCH_CONV_IMAGE, (size_t)8 << 20);
  assert_non_null(q);
  assert_true(bytes_in_use() >= before + ((size_t)8 << 20));
  gpux__scratch_release();
  assert_true(bytes_in_use() < before + ((size_t)1 << 20));
#endif
}

static void test_run_threads(void **state) {
  (void)state;
  gpux__set_thread_count(4); /* the pool: the caller and 3 workers */
  assert_int_equal(gpux__thread_count(), 4);
  for (int rep = 0; rep < 3; rep++) {
    assert_int_equal(threads_used(1), 1);      /* only the caller */
    assert_true(threads_used(2) <= 2);
    assert_true(threads_used(3) <= 3);
    assert_true(threads_used(0) <= 4);
  }
}

/* gpux__alloc_mapped: a mapping of its own from 2 MiB up, starting on a 2 MiB boundary and
 * counted at its size rounded to a page (not to 2 MiB, as gpux__alloc_large's), given back whole
 * by gpux__free_mapped; below 2 MiB, a 64-byte-aligned heap block. */
static void test_alloc_mapped(void **state) {
  (void)state;
  const char *off = getenv("GPUX_HUGEPAGES");
  int mapped = !(off && !strcmp(off, "0"));
  size_t before = gpux__large_bytes(), n = ((size_t)8 << 20) + 4100; /* 4 huge pages and a bit */
  float *p = gpux__alloc_mapped(n);
  assert_non_null(p);
  memset(p, 1, n);
  assert_int_equal((uintptr_t)p % 64, 0);
#if defined(__linux__)
  if (mapped) {
    assert_int_equal((uintptr_t)p % ((uintptr_t)2 << 20), 0);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    assert_int_equal(gpux__large_bytes() - before, (n + page - 1) / page * page);
  }
#endif
  gpux__free_mapped(p, n);
  assert_int_equal(gpux__large_bytes(), before);
  void *q = gpux__alloc_mapped(1000);
  assert_non_null(q);
  assert_int_equal((uintptr_t)q % 64, 0);
  assert_int_equal(gpux__large_bytes(), before);
  gpux__free_mapped(q, 1000);
  (void)mapped;
}

static void test_errors(void **state) {
  (void)state;
  assert_string_equal(gpux_err_name(GPUX_E_UNSUPPORTED_OP), "UNSUPPORTED_OP");
  assert_string_equal(gpux_strerror(GPUX_E_SHAPE), "shape mismatch");
  assert_int_equal(gpux__error(GPUX_E_IO, "x%d", 1), GPUX_E_IO);
  assert_string_equal(gpux_last_error(), "x1");
}

/* The log handler gets the level and the whole message, long ones included; NULL restores the
 * default (stderr), which the handler must then stop receiving. */
typedef struct { int calls, level; char msg[4096]; } log_seen;

static void record_log(void *ctx, int level, const char *message) {
  log_seen *seen = ctx;
  seen->calls++;
  seen->level = level;
  snprintf(seen->msg, sizeof seen->msg, "%s", message);
}

static void test_log(void **state) {
  (void)state;
  log_seen seen = {0};
  gpux_set_log(record_log, &seen);
  gpux__log(GPUX_LOG_NOTE, "fell back on %s", "node 'a'");
  assert_int_equal(seen.calls, 1);
  assert_int_equal(seen.level, GPUX_LOG_NOTE);
  assert_string_equal(seen.msg, "fell back on node 'a'");
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  gpux__log(GPUX_LOG_DEBUG, "shader:\n%s", big);
  assert_int_equal(seen.level, GPUX_LOG_DEBUG);
  assert_int_equal(strlen(seen.msg), strlen(big) + 8);
  gpux_set_log(NULL, NULL);
  gpux__log(GPUX_LOG_DEBUG, "to stderr");
  assert_int_equal(seen.calls, 2);
  assert_string_equal(gpux_log_level_name(GPUX_LOG_WARNING), "warning");
  assert_string_equal(gpux_version(), GPUX_VERSION);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_f16_round_trip), cmocka_unit_test(test_bf16),
    cmocka_unit_test(test_minifloats),     cmocka_unit_test(test_broadcast),
    cmocka_unit_test(test_compare),        cmocka_unit_test(test_run_threads),
    cmocka_unit_test(test_parallel_for),   cmocka_unit_test(test_scratch_freed_at_thread_exit),
    cmocka_unit_test(test_errors),         cmocka_unit_test(test_log),
    cmocka_unit_test(test_alloc_mapped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
