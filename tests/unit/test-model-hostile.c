/* test-model-hostile.c — hand-made hostile ONNX models that once crashed or exhausted the loader:
 * types nested thousands deep (stack overflow), attribute lists of 10^5 values (memory quadratic
 * in the length), an attribute declared GRAPHS that carries ints, a Scan whose state input
 * has an empty name, a Reshape whose shape overflows int64, and external data reached through a
 * symlink out of the model's folder or a FIFO. Each loads (or runs) into a one-line error or a correct result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "gpux/gpux.h"
#include "onnx-writer.h"

static const gpux_session_options cpu = {.backend = GPUX_BACKEND_CPU};

/* Y = Identity(X), X and Y float[2]; `attr` (may be NULL) is added to the node as field 5 */
static pbw identity_model(pbw *attr) {
  pbw g = {0}, m = {0}, n = {0};
  int64_t d[] = {2};
  pbw_str(&n, 1, "X");
  pbw_str(&n, 2, "Y");
  pbw_str(&n, 4, "Identity");
  if (attr) pbw_msg(&n, 5, attr);
  pbw_msg(&g, 1, &n);
  pbw_str(&g, 2, "g");
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 1, d, NULL);
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 1, d, NULL);
  pbw_model(&m, &g);
  return m;
}

static int load(pbw *m, gpux_model **model) {
  int rc = gpux_model_load_buffer(m->data, m->len, "hostile.onnx", model);
  free(m->data);
  memset(m, 0, sizeof *m);
  return rc;
}

/* An input whose type is a sequence of a sequence of ... 5000 deep. */
static void test_deep_type(void **state) {
  (void)state;
  pbw type = {0}, tensor = {0};
  pbw_int(&tensor, 1, GPUX_DT_FLOAT);
  pbw_msg(&type, 1, &tensor);
  for (int i = 0; i < 5000; i++) { /* TypeProto{sequence_type(4){elem_type(1): previous}} */
    pbw seq = {0}, outer = {0};
    pbw_msg(&seq, 1, &type);
    pbw_msg(&outer, 4, &seq);
    type = outer;
  }
  pbw vi = {0}, g = {0}, m = {0};
  pbw_str(&vi, 1, "X");
  pbw_msg(&vi, 2, &type);
  pbw_msg(&g, 11, &vi);
  pbw_node(&g, "Identity", "X", NULL, "Y");
  pbw_model(&m, &g);
  gpux_model *model = NULL;
  assert_int_equal(load(&m, &model), GPUX_E_UNSUPPORTED);
  assert_non_null(strstr(gpux_last_error(), "types nested deeper than 16"));
}

/* 100,000 ints, unpacked (one field each) and packed: linear time and memory */
static void test_long_attribute(void **state) {
  (void)state;
  for (int packed = 0; packed < 2; packed++) {
    pbw a = {0}, run = {0};
    pbw_str(&a, 1, "junk");
    pbw_int(&a, 20, 7); /* INTS */
    for (int i = 0; i < 100000; i++) {
      if (packed) pbw_varint(&run, (uint64_t)i);
      else pbw_int(&a, 8, i);
    }
    if (packed) pbw_msg(&a, 8, &run);
    pbw m = identity_model(&a);
    gpux_model *model = NULL;
    assert_int_equal(load(&m, &model), 0);
    gpux_model_free(model);
  }
}

static void expect_attr_error(pbw *a, const char *needle) {
  pbw m = identity_model(a);
  gpux_model *model = NULL;
  int rc = load(&m, &model);
  if (rc == 0) gpux_model_free(model);
  assert_true(rc < 0);
  assert_non_null(strstr(gpux_last_error(), needle));
}

static void test_attribute_kinds(void **state) {
  (void)state;
  pbw a = {0};
  /* declared GRAPHS (10), carries ints: the ints were counted as graphs */
  pbw_str(&a, 1, "body");
  pbw_int(&a, 20, 10);
  for (int i = 0; i < 3; i++) pbw_int(&a, 8, 1000 + i);
  expect_attr_error(&a, "attribute 'body' is declared as type 10 but carries ints");
  /* two list kinds at once */
  pbw_str(&a, 1, "mixed");
  pbw_int(&a, 8, 1);
  pbw_str(&a, 9, "s");
  expect_attr_error(&a, "attribute 'mixed' carries both ints and strings");
  /* a tensor or graph declared and absent */
  pbw_str(&a, 1, "value");
  pbw_int(&a, 20, 4);
  expect_attr_error(&a, "attribute 'value' is declared a tensor but has none");
  pbw_str(&a, 1, "then_branch");
  pbw_int(&a, 20, 5);
  expect_attr_error(&a, "attribute 'then_branch' is declared a graph but has none");
  /* a packed floats run that is not whole */
  pbw_str(&a, 1, "f");
  pbw_len(&a, 7, "\0\0\0\0\0", 5);
  expect_attr_error(&a, "truncated floats attribute");
  /* an empty list of the declared kind is fine */
  pbw_str(&a, 1, "empty");
  pbw_int(&a, 20, 7);
  pbw m = identity_model(&a);
  gpux_model *model = NULL;
  assert_int_equal(load(&m, &model), 0);
  gpux_model_free(model);
}

/* Scan(state, X) with body (s, x) -> (s, x): once with the state input's name empty */
static pbw scan_model(const char *state_name) {
  pbw body = {0}, g = {0}, m = {0}, n = {0}, a_body = {0}, a_num = {0};
  int64_t d1[] = {2}, d2[] = {3, 2};
  pbw_node(&body, "Identity", "s", NULL, "s_out");
  pbw_node(&body, "Identity", "x", NULL, "y_out");
  pbw_str(&body, 2, "body");
  pbw_value_info(&body, 11, "s", GPUX_DT_FLOAT, 1, d1, NULL);
  pbw_value_info(&body, 11, "x", GPUX_DT_FLOAT, 1, d1, NULL);
  pbw_value_info(&body, 12, "s_out", GPUX_DT_FLOAT, 1, d1, NULL);
  pbw_value_info(&body, 12, "y_out", GPUX_DT_FLOAT, 1, d1, NULL);
  pbw_str(&a_body, 1, "body");
  pbw_int(&a_body, 20, 5);
  pbw_msg(&a_body, 6, &body);
  pbw_str(&a_num, 1, "num_scan_inputs");
  pbw_int(&a_num, 20, 2);
  pbw_int(&a_num, 3, 1);
  pbw_str(&n, 1, state_name);
  pbw_str(&n, 1, "X");
  pbw_str(&n, 2, "S");
  pbw_str(&n, 2, "Y");
  pbw_str(&n, 4, "Scan");
  pbw_msg(&n, 5, &a_body);
  pbw_msg(&n, 5, &a_num);
  pbw_msg(&g, 1, &n);
  pbw_str(&g, 2, "g");
  if (*state_name) pbw_value_info(&g, 11, "S0", GPUX_DT_FLOAT, 1, d1, NULL);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 2, d2, NULL);
  pbw_value_info(&g, 12, "S", GPUX_DT_FLOAT, 1, d1, NULL);
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 2, d2, NULL);
  pbw_model(&m, &g);
  return m;
}

static void test_scan_missing_state(void **state) {
  (void)state;
  int64_t d1[] = {2}, d2[] = {3, 2};
  for (int hostile = 0; hostile < 2; hostile++) {
    pbw m = scan_model(hostile ? "" : "S0");
    gpux_model *model = NULL;
    assert_int_equal(load(&m, &model), 0);
    gpux_session *s;
    assert_int_equal(gpux_session_create(model, &cpu, &s), 0);
    gpux_tensor in[2], out[2];
    assert_int_equal(gpux_tensor_init(&in[0], GPUX_DT_FLOAT, 1, d1), 0);
    assert_int_equal(gpux_tensor_init(&in[1], GPUX_DT_FLOAT, 2, d2), 0);
    for (int i = 0; i < 6; i++) ((float *)in[1].data)[i] = (float)i;
    int rc = hostile ? gpux_session_run(s, &in[1], 1, out, 2) : gpux_session_run(s, in, 2, out, 2);
    if (hostile) {
      assert_true(rc < 0);
      assert_non_null(strstr(gpux_last_error(), "(a state) is missing"));
    } else {
      assert_int_equal(rc, 0);
      assert_true(((float *)out[1].data)[5] == 5.0f);
      gpux_tensor_free(&out[0]);
      gpux_tensor_free(&out[1]);
    }
    gpux_tensor_free(&in[0]);
    gpux_tensor_free(&in[1]);
    gpux_session_free(s);
    gpux_model_free(model);
  }
}

/* Reshape to [2^40, 2^40, 2^40]: the element count overflowed int64 */
static void test_reshape_overflow(void **state) {
  (void)state;
  pbw g = {0}, m = {0};
  int64_t d1[] = {2}, d3[] = {3}, shape[3] = {(int64_t)1 << 40, (int64_t)1 << 40, (int64_t)1 << 40};
  pbw_node(&g, "Reshape", "X", "S", "Y");
  pbw_str(&g, 2, "g");
  pbw_tensor(&g, 5, "S", GPUX_DT_INT64, 1, d3, shape, sizeof shape);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 1, d1, NULL);
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, -1, NULL, NULL);
  pbw_model(&m, &g);
  gpux_model *model = NULL;
  assert_int_equal(load(&m, &model), 0);
  gpux_session *s = NULL;
  int rc = gpux_session_create(model, &cpu, &s);
  if (!rc) {
    gpux_tensor x, y;
    assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 1, d1), 0);
    rc = gpux_session_run(s, &x, 1, &y, 1);
    gpux_tensor_free(&x);
    gpux_session_free(s);
  }
  assert_true(rc < 0);
  assert_non_null(strstr(gpux_last_error(), "the shape's element count overflows"));
  gpux_model_free(model);
}

/* Y = Add(X, W) with W[3] in the external file "w.bin" of `dir` */
static void write_external_model(const char *dir) {
  pbw g = {0}, m = {0}, t = {0}, e = {0};
  int64_t xd[] = {3};
  pbw_node(&g, "Add", "X", "W", "Y");
  pbw_str(&g, 2, "g");
  pbw_int(&t, 1, 3);
  pbw_int(&t, 2, GPUX_DT_FLOAT);
  pbw_str(&t, 8, "W");
  pbw_str(&e, 1, "location");
  pbw_str(&e, 2, "w.bin");
  pbw_msg(&t, 13, &e);
  pbw_int(&t, 14, 1);
  pbw_msg(&g, 5, &t);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 1, xd, NULL);
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 1, xd, NULL);
  pbw_model(&m, &g);
  char path[256];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  FILE *f = fopen(path, "wb");
  fwrite(m.data, 1, m.len, f);
  fclose(f);
  free(m.data);
}

/* External data reached through a symlink out of the model's folder, or a FIFO (which blocked
 * open()), is refused; a symlink that stays inside the folder is fine. */
static void test_external_data_escapes(void **state) {
  (void)state;
  char dir[] = "/tmp/gpux-ext-XXXXXX", outside[] = "/tmp/gpux-out-XXXXXX";
  assert_non_null(mkdtemp(dir));
  int fd = mkstemp(outside);
  assert_true(fd >= 0);
  float w[3] = {1, 2, 3};
  assert_int_equal(write(fd, w, sizeof w), (ssize_t)sizeof w);
  close(fd);
  write_external_model(dir);
  char model[256], data[256], inside[256];
  snprintf(model, sizeof model, "%s/model.onnx", dir);
  snprintf(data, sizeof data, "%s/w.bin", dir);
  snprintf(inside, sizeof inside, "%s/real.bin", dir);
  gpux_model *m = NULL;
  assert_int_equal(symlink(outside, data), 0);
  assert_int_equal(gpux_model_load(model, &m), GPUX_E_MODEL);
  assert_non_null(strstr(gpux_last_error(), "outside the model's folder"));
  unlink(data);
  assert_int_equal(mkfifo(data, 0600), 0);
  assert_int_equal(gpux_model_load(model, &m), GPUX_E_MODEL);
  assert_non_null(strstr(gpux_last_error(), "is not a regular file"));
  unlink(data);
  FILE *f = fopen(inside, "wb");
  fwrite(w, sizeof w, 1, f);
  fclose(f);
  assert_int_equal(symlink("real.bin", data), 0);
  assert_int_equal(gpux_model_load(model, &m), 0);
  gpux_model_free(m);
  unlink(data);
  unlink(inside);
  unlink(model);
  unlink(outside);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_deep_type),       cmocka_unit_test(test_long_attribute),
    cmocka_unit_test(test_attribute_kinds), cmocka_unit_test(test_scan_missing_state),
    cmocka_unit_test(test_reshape_overflow), cmocka_unit_test(test_external_data_escapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
