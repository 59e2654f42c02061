/* test-weight-memory.c — a model's weights are in memory once on the CPU backend: a chain of
 * MatMuls with large constant weights and small biases (written to a file, so the model is memory-mapped; some
 * weights aligned in the file, most not, so the loader copies them) runs a few times, and then
 *   - the packed weights are all the weight memory left: the model's copies are let go and the
 *     file pages behind packed weights given back (gpux_session_memory), also where each weight
 *     has a small bias after it in the file that every run reads (on a page cache of large
 *     folios, a file mapped in huge pages would map 2 MB around each),
 *   - the process's resident memory grew by less than 1.3 times the weights at its peak (not
 *     under AddressSanitizer, whose shadow memory counts),
 *   - a weight that an unpacked consumer reads too (ReduceSum) stays and reads right every run,
 *   - a second session made after the first let its copies go decodes them again and answers
 *     the same, and the first keeps answering the same after it; a third's first runs on two
 *     threads at once answer the same, and its copies go too;
 *   - convolutions that the Winograd kernel takes let their copies go, and read the file's bytes
 *     in place when a later input needs conv-gemm.c's packing after all.
 * Where the CPU has no packed GEMM (no AVX2), nothing is packed and the test says so and passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "gpux/gpux.h"
#include "onnx-writer.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifndef ASAN
#define ASAN 0
#endif

enum { LAYERS = 24, K = 1024, ROWS = 16 };

static uint32_t seed = 12345;
static float rndf(void) {
  seed = seed * 1664525u + 1013904223u;
  return ((float)(seed >> 8) / 16777216.0f * 2.0f - 1.0f) * 1.7f / 32.0f; /* variance ~1/K */
}

static double w0_sum; /* the sum of w0's values, which ReduceSum must give */

/* Writes the model of graph g to path. */
static void save_model(const char *path, pbw *g) {
  pbw m = {0};
  pbw_model(&m, g);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(m.data, 1, m.len, f), m.len);
  fclose(f);
  free(m.data);
}

/* y = (..((x w0 + b0) w1 + b1) ... w23 + b23) and wsum = ReduceSum(w0), written to path; returns the weights' bytes. */
static size_t write_model(const char *path) {
  pbw g = {0};
  char in[16] = "x", out[16], w[16];
  float *v = malloc((size_t)K * K * sizeof *v);
  for (int l = 0; l < LAYERS; l++) {
    char b[16], mm[16];
    snprintf(w, sizeof w, "w%d", l);
    snprintf(b, sizeof b, "b%d", l);
    snprintf(mm, sizeof mm, "m%d", l);
    snprintf(out, sizeof out, l == LAYERS - 1 ? "y" : "h%d", l);
    pbw_node(&g, "MatMul", in, w, mm);
    pbw_node(&g, "Add", mm, b, out);
    for (size_t i = 0; i < (size_t)K * K; i++) v[i] = rndf();
    if (l == 0) {
      w0_sum = 0;
      for (size_t i = 0; i < (size_t)K * K; i++) w0_sum += v[i];
    }
    /* a doc_string of l % 4 bytes before the data: the weights land at every alignment */
    pbw t = {0};
    pbw_int(&t, 1, K), pbw_int(&t, 1, K), pbw_int(&t, 2, GPUX_DT_FLOAT), pbw_str(&t, 8, w);
    pbw_str(&t, 12, &"..."[3 - l % 4]);
    pbw_len(&t, 9, v, (size_t)K * K * sizeof *v);
    pbw_msg(&g, 5, &t);
    /* a small bias after each weight, read by every run: the file's pages are mapped small, so
     * reading it maps its page and not the large folio around it that holds most of a weight */
    pbw bt = {0};
    for (int i = 0; i < K; i++) v[i] = 1.0f / (float)(l + 1);
    pbw_int(&bt, 1, K), pbw_int(&bt, 2, GPUX_DT_FLOAT), pbw_str(&bt, 8, b);
    pbw_len(&bt, 9, v, (size_t)K * sizeof *v);
    pbw_msg(&g, 5, &bt);
    snprintf(in, sizeof in, "%s", out);
  }
  pbw_node(&g, "ReduceSum", "w0", NULL, "wsum");
  pbw_str(&g, 2, "g");
  int64_t xd[2] = {ROWS, K}, yd[2] = {ROWS, K}, sd[2] = {1, 1};
  pbw_value_info(&g, 11, "x", GPUX_DT_FLOAT, 2, xd, NULL);
  pbw_value_info(&g, 12, "y", GPUX_DT_FLOAT, 2, yd, NULL);
  pbw_value_info(&g, 12, "wsum", GPUX_DT_FLOAT, 2, sd, NULL);
  save_model(path, &g);
  free(v);
  return (size_t)LAYERS * K * K * sizeof(float);
}

/* A line of /proc/self/status in kB (-1 when unknown). */
static long status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  size_t n = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, n) && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
  if (f) fclose(f);
  return kb;
}

static void run(gpux_session *s, const gpux_tensor *x, float *y, float *wsum) {
  gpux_tensor out[2];
  if (gpux_session_run(s, x, 1, out, 2)) fail_msg("run: %s", gpux_last_error());
  assert_int_equal(out[0].nbytes, (size_t)ROWS * K * sizeof(float));
  memcpy(y, out[0].data, out[0].nbytes);
  *wsum = ((const float *)out[1].data)[0];
  gpux_session_recycle(s, &out[0]);
  gpux_session_recycle(s, &out[1]);
}

typedef struct {
  gpux_session *s;
  const gpux_tensor *x;
  const float *want;
  int same;              /* the output was want */
} concurrent;

static void *run_thread(void *arg) {
  concurrent *c = arg;
  gpux_tensor out[2];
  if (gpux_session_run(c->s, c->x, 1, out, 2)) return NULL;
  c->same = out[0].nbytes == (size_t)ROWS * K * sizeof(float) && !memcmp(out[0].data, c->want, out[0].nbytes);
  gpux_tensor_free(&out[0]), gpux_tensor_free(&out[1]);
  return NULL;
}

static void test_weights_once(void **state) {
  (void)state;
  char path[] = "/tmp/gpux-weight-memory-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  size_t weights = write_model(path);

  /* the peak from here on: what the model, session and runs add */
  FILE *clear = fopen("/proc/self/clear_refs", "w");
  int peak_reset = clear && fputs("5", clear) >= 0;
  if (clear) peak_reset = fclose(clear) == 0 && peak_reset;
  long base_kb = status_kb("VmRSS");

  gpux_model *model;
  if (gpux_model_load(path, &model)) fail_msg("load: %s", gpux_last_error());
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 2};
  gpux_session *s;
  if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
  gpux_memory_stats mem;
  gpux_session_memory(s, &mem);
  size_t copied_at_load = mem.weights_copied;
  assert_true(copied_at_load > 0); /* the loader copied the weights not aligned in the file */

  float *x = malloc((size_t)ROWS * K * sizeof *x), *y1 = malloc((size_t)ROWS * K * sizeof *y1),
        *y = malloc((size_t)ROWS * K * sizeof *y);
  for (size_t i = 0; i < (size_t)ROWS * K; i++) x[i] = rndf() * 32.0f;
  gpux_tensor xt = {.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_FLOAT, .ndim = 2, .dims = {ROWS, K},
                    .data = x, .nbytes = (size_t)ROWS * K * sizeof *x};
  float wsum;
  run(s, &xt, y1, &wsum);
  assert_true(fabs(wsum - w0_sum) <= 1e-3 * (1.0 + fabs(w0_sum)));
  for (int r = 0; r < 4; r++) {
    run(s, &xt, y, &wsum);
    assert_memory_equal(y, y1, (size_t)ROWS * K * sizeof *y);
    assert_true(fabs(wsum - w0_sum) <= 1e-3 * (1.0 + fabs(w0_sum)));
  }
  gpux_session_memory(s, &mem);
  long peak_kb = status_kb("VmHWM");
  printf("weights %zu kB in the file: mapped %llu kB, copied %llu kB (%zu kB at load), packed %llu kB; "
         "peak RSS %ld kB over %ld kB before loading\n",
         weights / 1024, (unsigned long long)mem.weights_mapped / 1024, (unsigned long long)mem.weights_copied / 1024,
         copied_at_load / 1024, (unsigned long long)mem.weights_packed / 1024, peak_kb, base_kb);
  if (!mem.weights_packed) {
    printf("no packed GEMM on this CPU: nothing to let go\n");
  } else {
    assert_true(mem.weights_packed >= weights);
    /* w0 stays: ReduceSum reads it every run (a copy, or its mapped pages); of the file, little
     * more (pages around the data that the kernel maps with it) */
    size_t w0 = (size_t)K * K * sizeof(float), biases = (size_t)LAYERS * K * sizeof(float);
    assert_true(mem.weights_copied <= w0 + biases);
    assert_true(mem.weights_mapped <= w0 + weights / 8);
    if (!ASAN && peak_reset && base_kb > 0 && peak_kb > 0)
      assert_true((double)(peak_kb - base_kb) * 1024.0 < 1.3 * (double)weights);
  }

  /* a second session of the model: the copies come back for it, and both answer alike */
  gpux_session *s2;
  if (gpux_session_create(model, &o, &s2)) fail_msg("second session: %s", gpux_last_error());
  run(s2, &xt, y, &wsum);
  assert_memory_equal(y, y1, (size_t)ROWS * K * sizeof *y);
  run(s, &xt, y, &wsum);
  assert_memory_equal(y, y1, (size_t)ROWS * K * sizeof *y);
  gpux_session_free(s);
  run(s2, &xt, y, &wsum);
  assert_memory_equal(y, y1, (size_t)ROWS * K * sizeof *y);
  gpux_session_free(s2);
  /* and a third after both are gone, its first runs on two threads at once: each packs while
   * the other may, so the copies go when the last of them ends, or with a later run */
  if (gpux_session_create(model, &o, &s)) fail_msg("third session: %s", gpux_last_error());
  concurrent c[2] = {{s, &xt, y1}, {s, &xt, y1}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, run_thread, &c[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  assert_int_equal(c[0].same + c[1].same, 2);
  run(s, &xt, y, &wsum);
  assert_memory_equal(y, y1, (size_t)ROWS * K * sizeof *y);
  assert_true(fabs(wsum - w0_sum) <= 1e-3 * (1.0 + fabs(w0_sum)));
  gpux_session_memory(s, &mem);
  if (mem.weights_packed) assert_true(mem.weights_copied <= (size_t)K * K * sizeof(float) + (size_t)LAYERS * K * sizeof(float));
  gpux_session_free(s);

  gpux_model_free(model);
  free(x), free(y), free(y1);
  unlink(path);
}

/* An embedding not aligned in the file that only a Gather reads (the token embedding of a BERT):
 * the session's graph (rewritten: a MatMul + bias beside it fuses) reads the file's bytes in
 * place, no copy is left, and the rows are right in every run and in a second session. */
static void test_gather_in_place(void **state) {
  (void)state;
  enum { V = 4096, D = 256 };
  char path[] = "/tmp/gpux-weight-memory-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  float *emb = malloc((size_t)V * D * sizeof *emb), w[D * 4], b[4];
  for (size_t i = 0; i < (size_t)V * D; i++) emb[i] = rndf();
  for (int i = 0; i < D * 4; i++) w[i] = rndf();
  for (int i = 0; i < 4; i++) b[i] = rndf();
  pbw g = {0}, t = {0};
  pbw_node(&g, "Gather", "emb", "ids", "rows");
  pbw_node(&g, "MatMul", "rows", "w", "p");
  pbw_node(&g, "Add", "p", "b", "y");
  pbw_int(&t, 1, V), pbw_int(&t, 1, D), pbw_int(&t, 2, GPUX_DT_FLOAT), pbw_str(&t, 8, "emb");
  pbw_str(&t, 12, "."); /* not aligned */
  pbw_len(&t, 9, emb, (size_t)V * D * sizeof *emb);
  pbw_msg(&g, 5, &t);
  pbw_tensor(&g, 5, "w", GPUX_DT_FLOAT, 2, (int64_t[]){D, 4}, w, sizeof w);
  pbw_tensor(&g, 5, "b", GPUX_DT_FLOAT, 1, (int64_t[]){4}, b, sizeof b);
  pbw_str(&g, 2, "g");
  pbw_value_info(&g, 11, "ids", GPUX_DT_INT64, 1, (int64_t[]){5}, NULL);
  pbw_value_info(&g, 12, "rows", GPUX_DT_FLOAT, 2, (int64_t[]){5, D}, NULL);
  pbw_value_info(&g, 12, "y", GPUX_DT_FLOAT, 2, (int64_t[]){5, 4}, NULL);
  save_model(path, &g);

  gpux_model *model;
  if (gpux_model_load(path, &model)) fail_msg("load: %s", gpux_last_error());
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 2};
  { /* without the rewrite the graph is the model's own, and the model's copy is what it reads */
    setenv("GPUX_OPTIMIZE", "0", 1);
    gpux_session *s0;
    if (gpux_session_create(model, &o, &s0)) fail_msg("session: %s", gpux_last_error());
    unsetenv("GPUX_OPTIMIZE");
    gpux_memory_stats mem;
    gpux_session_memory(s0, &mem);
    assert_true(mem.weights_copied >= (size_t)V * D * sizeof(float)); /* copied: not aligned */
    gpux_session_free(s0);
  }
  int64_t ids[5] = {0, 4095, 17, 2048, 17};
  gpux_tensor it = {.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_INT64, .ndim = 1, .dims = {5}, .data = ids, .nbytes = sizeof ids};
  for (int k = 0; k < 2; k++) { /* a second session after the first let the copy go */
    gpux_session *s;
    if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
    for (int r = 0; r < 3; r++) {
      gpux_tensor out[2];
      if (gpux_session_run(s, &it, 1, out, 2)) fail_msg("run: %s", gpux_last_error());
      for (int i = 0; i < 5; i++)
        assert_memory_equal((const float *)out[0].data + i * D, emb + ids[i] * D, D * sizeof(float));
      for (int i = 0; i < 5; i++)
        for (int c = 0; c < 4; c++) {
          double want = b[c];
          for (int j = 0; j < D; j++) want += (double)emb[ids[i] * D + j] * w[j * 4 + c];
          assert_true(fabs(((const float *)out[1].data)[i * 4 + c] - want) < 1e-4);
        }
      gpux_session_recycle(s, &out[0]), gpux_session_recycle(s, &out[1]);
    }
    gpux_memory_stats mem;
    gpux_session_memory(s, &mem);
    assert_true(mem.weights_copied < (size_t)V * D * sizeof(float)); /* the embedding is not copied */
    gpux_session_free(s);
  }
  gpux_model_free(model);
  free(emb);
  unlink(path);
}

/* A chain of four 3x3 convolutions of 64 channels (a channels-last region, gpux.ConvNHWC), each W
 * not aligned in the file (the loader copies it), on square planes of any size: on 40 x 40 input
 * the Winograd kernel takes them, and the session lets the copies go (the kernel keeps its own
 * transformed weights); then a 9 x 9 input, whose 7 x 7 to 1 x 1 planes that kernel declines,
 * packs W for conv-gemm.c from the file's bytes read in place, and answers as a session whose
 * first run packed from the copies does, bit for bit; the large input then answers as before. */
static void test_winograd_copies_let_go(void **state) {
  (void)state;
  enum { CH = 64, CONVS = 4 };
  char path[] = "/tmp/gpux-weight-memory-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  pbw g = {0};
  float *w = malloc((size_t)CH * CH * 9 * sizeof *w);
  for (int l = 0; l < CONVS; l++) {
    char in[16], wn[16], out[16];
    snprintf(in, sizeof in, l ? "h%d" : "x", l - 1);
    snprintf(wn, sizeof wn, "w%d", l);
    snprintf(out, sizeof out, l == CONVS - 1 ? "y" : "h%d", l);
    pbw_node(&g, "Conv", in, wn, out);
    for (int i = 0; i < CH * CH * 9; i++) w[i] = rndf() * 4.0f;
    pbw t = {0};
    pbw_int(&t, 1, CH), pbw_int(&t, 1, CH), pbw_int(&t, 1, 3), pbw_int(&t, 1, 3);
    pbw_int(&t, 2, GPUX_DT_FLOAT), pbw_str(&t, 8, wn);
    pbw_str(&t, 12, &"..."[l % 3]); /* 3, 2 or 1 bytes before the data: not aligned */
    pbw_len(&t, 9, w, (size_t)CH * CH * 9 * sizeof *w);
    pbw_msg(&g, 5, &t);
  }
  free(w);
  pbw_str(&g, 2, "g");
  int64_t xd[4] = {1, CH, -1, -1};
  pbw_value_info(&g, 11, "x", GPUX_DT_FLOAT, 4, xd, "S");
  pbw_value_info(&g, 12, "y", GPUX_DT_FLOAT, 4, xd, "T");
  save_model(path, &g);

  gpux_model *model;
  if (gpux_model_load(path, &model)) fail_msg("load: %s", gpux_last_error());
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 1};
  gpux_session *s, *ref;
  if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
  gpux_memory_stats mem;
  gpux_session_memory(s, &mem);
  size_t w_bytes = (size_t)CH * CH * 9 * sizeof(float), u_bytes = 36 * w_bytes / 9;
  size_t copied_at_load = mem.weights_copied;
  assert_true(copied_at_load >= w_bytes); /* some not aligned in the file */
  float *xb = malloc((size_t)CH * 40 * 40 * sizeof *xb), *xs = malloc((size_t)CH * 9 * 9 * sizeof *xs);
  for (int i = 0; i < CH * 40 * 40; i++) xb[i] = rndf() * 32.0f;
  for (int i = 0; i < CH * 9 * 9; i++) xs[i] = rndf() * 32.0f;
  gpux_tensor big = {.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_FLOAT, .ndim = 4, .dims = {1, CH, 40, 40},
                     .data = xb, .nbytes = (size_t)CH * 40 * 40 * sizeof *xb};
  gpux_tensor small = {.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_FLOAT, .ndim = 4, .dims = {1, CH, 9, 9},
                       .data = xs, .nbytes = (size_t)CH * 9 * 9 * sizeof *xs};
  gpux_tensor yb1, yb2, ys, ys_ref;
  if (gpux_session_run(s, &big, 1, &yb1, 1)) fail_msg("run: %s", gpux_last_error());
  assert_int_equal(yb1.dims[2], 32);
  gpux_session_memory(s, &mem);
  printf("winograd: copied %zu kB at load, %llu kB after a run, packed %llu kB (W %zu kB, U %zu kB a "
         "convolution)\n", copied_at_load / 1024, (unsigned long long)mem.weights_copied / 1024, (unsigned long long)mem.weights_packed / 1024,
         w_bytes / 1024, u_bytes / 1024);
  if (mem.weights_packed == CONVS * u_bytes) { /* all four on the Winograd kernel */
    assert_true(mem.weights_copied < w_bytes); /* the copies went */
    if (gpux_session_run(s, &small, 1, &ys, 1)) fail_msg("run: %s", gpux_last_error());
    gpux_session_memory(s, &mem);
    assert_true(mem.weights_packed > CONVS * u_bytes); /* packed for the small planes */
    if (gpux_session_create(model, &o, &ref)) fail_msg("session: %s", gpux_last_error());
    if (gpux_session_run(ref, &small, 1, &ys_ref, 1)) fail_msg("run: %s", gpux_last_error());
    assert_int_equal(ys.nbytes, ys_ref.nbytes);
    assert_memory_equal(ys.data, ys_ref.data, ys.nbytes);
    gpux_tensor_free(&ys), gpux_tensor_free(&ys_ref);
    gpux_session_free(ref);
  } else {
    printf("the Winograd kernel does not take these here: nothing to check\n");
  }
  if (gpux_session_run(s, &big, 1, &yb2, 1)) fail_msg("run: %s", gpux_last_error());
  assert_memory_equal(yb2.data, yb1.data, yb1.nbytes);
  gpux_tensor_free(&yb1), gpux_tensor_free(&yb2);
  gpux_session_free(s);
  gpux_model_free(model);
  free(xb), free(xs);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_weights_once),
    cmocka_unit_test(test_gather_in_place),
    cmocka_unit_test(test_winograd_copies_let_go),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
