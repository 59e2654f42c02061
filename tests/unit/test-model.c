/* test-model.c — loading and running models built in memory: symbolic dimensions serving several
 * shapes, input checks (dtype, rank, fixed and symbolic dims), unsupported ops, external data,
 * truncated or corrupted files that must fail cleanly, and an If's branches whose MatMuls keep
 * the parent's weights packed from run to run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include "gpux/gpux.h"
#include "onnx-writer.h"

/* these tests are about loading and checking models: the CPU backend is enough */
static const gpux_session_options cpu = {.backend = GPUX_BACKEND_CPU};

/* Y = Add(X, W) with X: float[batch, 3], W an initializer [3] = {1, 2, 3} */
static pbw add_model(const char *op) {
  pbw g = {0}, m = {0};
  float w[3] = {1, 2, 3};
  int64_t wd[] = {3}, xd[] = {-1, 3};
  pbw_node(&g, op, "X", "W", "Y");
  pbw_str(&g, 2, "add");
  pbw_tensor(&g, 5, "W", GPUX_DT_FLOAT, 1, wd, w, sizeof w);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw_model(&m, &g);
  return m;
}

static void run_add(gpux_session *s, int64_t batch) {
  gpux_tensor x, y;
  int64_t dims[] = {batch, 3};
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 2, dims), 0);
  for (int64_t i = 0; i < batch * 3; i++) ((float *)x.data)[i] = (float)i;
  assert_int_equal(gpux_session_run(s, &x, 1, &y, 1), 0);
  assert_int_equal(y.ndim, 2);
  assert_int_equal(y.dims[0], batch);
  for (int64_t i = 0; i < batch * 3; i++) assert_true(((float *)y.data)[i] == (float)i + (float)(i % 3 + 1));
  gpux_tensor_free(&x);
  gpux_tensor_free(&y);
}

static void test_symbolic_batch(void **state) {
  (void)state;
  pbw m = add_model("Add");
  gpux_model *model;
  assert_int_equal(gpux_model_load_buffer(m.data, m.len, "add.onnx", &model), 0);
  gpux_value_info info;
  assert_int_equal(gpux_model_input_info(model, 0, &info), 0);
  assert_string_equal(info.name, "X");
  assert_string_equal(info.dim_names[0], "batch");
  assert_int_equal(info.dims[1], 3);
  gpux_session *s;
  assert_int_equal(gpux_session_create(model, &cpu, &s), 0);
  run_add(s, 2); /* one model, several batch sizes */
  run_add(s, 5);
  run_add(s, 1);
  gpux_session_free(s);
  gpux_model_free(model);
  free(m.data);
}

static void test_bad_inputs(void **state) {
  (void)state;
  pbw m = add_model("Add");
  gpux_model *model;
  gpux_session *s;
  assert_int_equal(gpux_model_load_buffer(m.data, m.len, "add.onnx", &model), 0);
  assert_int_equal(gpux_session_create(model, &cpu, &s), 0);
  gpux_tensor x, y;
  int64_t dims[] = {2, 3}, bad_dims[] = {2, 4}, rank1[] = {6};
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_INT64, 2, dims), 0);
  assert_int_equal(gpux_session_run(s, &x, 1, &y, 1), GPUX_E_DTYPE);
  assert_non_null(strstr(gpux_last_error(), "input 'X'"));
  gpux_tensor_free(&x);
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 2, bad_dims), 0);
  assert_int_equal(gpux_session_run(s, &x, 1, &y, 1), GPUX_E_SHAPE);
  assert_non_null(strstr(gpux_last_error(), "dimension 1 must be 3"));
  gpux_tensor_free(&x);
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 1, rank1), 0);
  assert_int_equal(gpux_session_run(s, &x, 1, &y, 1), GPUX_E_SHAPE);
  gpux_tensor_free(&x);
  /* the session still works after bad input */
  run_add(s, 3);
  gpux_session_free(s);
  gpux_model_free(model);
  free(m.data);
}

static void test_unsupported_op(void **state) {
  (void)state;
  pbw m = add_model("NoSuchOp");
  gpux_model *model;
  gpux_session *s;
  assert_int_equal(gpux_model_load_buffer(m.data, m.len, "odd.onnx", &model), 0);
  assert_int_equal(gpux_model_check_ops(model), GPUX_E_UNSUPPORTED_OP);
  assert_int_equal(gpux_session_create(model, &cpu, &s), GPUX_E_UNSUPPORTED_OP);
  assert_non_null(strstr(gpux_last_error(), "NoSuchOp"));
  assert_non_null(strstr(gpux_last_error(), "odd.onnx"));
  gpux_model_free(model);
  free(m.data);
}

static void test_truncated_and_corrupt(void **state) {
  (void)state;
  pbw m = add_model("Add");
  for (size_t n = 0; n < m.len; n++) { /* every truncation fails cleanly */
    gpux_model *model = NULL;
    int rc = gpux_model_load_buffer(m.data, n, "cut.onnx", &model);
    if (rc == 0) gpux_model_free(model);
    else assert_true(rc == GPUX_E_PARSE || rc == GPUX_E_MODEL);
  }
  uint8_t *copy = malloc(m.len);
  for (size_t i = 0; i < m.len; i++) { /* every single-byte corruption: no crash, no leak */
    memcpy(copy, m.data, m.len);
    copy[i] ^= 0xA5;
    gpux_model *model = NULL;
    if (gpux_model_load_buffer(copy, m.len, "flip.onnx", &model) == 0) {
      gpux_session *s;
      if (gpux_session_create(model, &cpu, &s) == 0) gpux_session_free(s);
      gpux_model_free(model);
    }
  }
  free(copy);
  free(m.data);
  gpux_model *model;
  assert_int_equal(gpux_model_load("/nonexistent/model.onnx", &model), GPUX_E_NOTFOUND);
  assert_non_null(strstr(gpux_last_error(), "/nonexistent/model.onnx"));
}

/* W stored in an external file next to the model */
static void test_external_data(void **state) {
  (void)state;
  char dir[] = "/tmp/gpux-ext-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256], wpath[256];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  snprintf(wpath, sizeof wpath, "%s/weights.bin", dir);
  float pad = 0, w[3] = {1, 2, 3};
  FILE *f = fopen(wpath, "wb");
  fwrite(&pad, 4, 1, f); /* offset 4 */
  fwrite(w, 4, 3, f);
  fclose(f);
  pbw g = {0}, m = {0}, t = {0};
  int64_t xd[] = {-1, 3};
  pbw_node(&g, "Add", "X", "W", "Y");
  pbw_int(&t, 1, 3);
  pbw_int(&t, 2, GPUX_DT_FLOAT);
  pbw_str(&t, 8, "W");
  const char *kv[][2] = {{"location", "weights.bin"}, {"offset", "4"}, {"length", "12"}};
  for (int i = 0; i < 3; i++) {
    pbw e = {0};
    pbw_str(&e, 1, kv[i][0]);
    pbw_str(&e, 2, kv[i][1]);
    pbw_msg(&t, 13, &e);
  }
  pbw_int(&t, 14, 1);
  pbw_msg(&g, 5, &t);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw_model(&m, &g);
  f = fopen(path, "wb");
  fwrite(m.data, 1, m.len, f);
  fclose(f);
  gpux_model *model;
  gpux_session *s;
  assert_int_equal(gpux_model_load(path, &model), 0);
  assert_int_equal(gpux_session_create(model, &cpu, &s), 0);
  run_add(s, 2);
  gpux_session_free(s);
  gpux_model_free(model);
  unlink(wpath);
  assert_int_equal(gpux_model_load(path, &model), GPUX_E_NOTFOUND);
  assert_non_null(strstr(gpux_last_error(), "weights.bin"));
  unlink(path);
  rmdir(dir);
  free(m.data);
}

/* value_info describes values without defining them: an intermediate (declared before the node
 * that produces it), a graph output, and a value a subgraph captures from its parent; exporters
 * (the dynamo exporter, the float16 converter, the quantizer) write all three. */
static pbw value_info_model(int clash) {
  pbw g = {0}, m = {0};
  float w[3] = {1, 2, 3};
  int64_t wd[] = {3}, xd[] = {-1, 3};
  pbw_str(&g, 2, "vi");
  pbw_value_info(&g, 13, "T", GPUX_DT_FLOAT, 2, xd, "batch"); /* before its producer */
  pbw_value_info(&g, 13, "Y", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw_value_info(&g, 13, "unused", GPUX_DT_FLOAT, 1, wd, NULL);
  pbw_node(&g, "Add", "X", "W", "T");
  if (clash == 1) pbw_node(&g, "Sub", "X", "W", "T"); /* a second producer */
  if (clash == 2) pbw_node(&g, "Sub", "X", "X", "W"); /* overwrites an initializer */
  /* Y = If(C) then { Identity(T) } else { Identity(T) } with T declared in the branch too */
  pbw branch = {0}, attr = {0}, node = {0};
  pbw_str(&branch, 2, "branch");
  pbw_value_info(&branch, 13, "T", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw_node(&branch, "Mul", "T", "W", "Z");
  pbw_value_info(&branch, 12, "Z", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw sub = {0};
  pbw_bytes(&sub, branch.data, branch.len);
  pbw_str(&attr, 1, "then_branch");
  pbw_msg(&attr, 6, &branch);
  pbw_int(&attr, 20, 5);
  pbw attr2 = {0};
  pbw_str(&attr2, 1, "else_branch");
  pbw_msg(&attr2, 6, &sub);
  pbw_int(&attr2, 20, 5);
  pbw_str(&node, 1, "C");
  pbw_str(&node, 2, "Y");
  pbw_str(&node, 3, "if");
  pbw_str(&node, 4, "If");
  pbw_msg(&node, 5, &attr);
  pbw_msg(&node, 5, &attr2);
  pbw_msg(&g, 1, &node);
  pbw_tensor(&g, 5, "W", GPUX_DT_FLOAT, 1, wd, w, sizeof w);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 2, xd, "batch");
  int64_t cd[] = {1};
  pbw_value_info(&g, 11, "C", GPUX_DT_BOOL, 1, cd, NULL);
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw_model(&m, &g);
  return m;
}

static void test_value_info(void **state) {
  (void)state;
  pbw m = value_info_model(0);
  gpux_model *model;
  assert_int_equal(gpux_model_load_buffer(m.data, m.len, "vi.onnx", &model), 0);
  free(m.data);
  gpux_session *s;
  assert_int_equal(gpux_session_create(model, &cpu, &s), 0);
  gpux_tensor in[2], y;
  int64_t xd[] = {2, 3}, cd[] = {1};
  assert_int_equal(gpux_tensor_init(&in[0], GPUX_DT_FLOAT, 2, xd), 0);
  assert_int_equal(gpux_tensor_init(&in[1], GPUX_DT_BOOL, 1, cd), 0);
  for (int i = 0; i < 6; i++) ((float *)in[0].data)[i] = (float)i;
  ((unsigned char *)in[1].data)[0] = 1;
  assert_int_equal(gpux_session_run(s, in, 2, &y, 1), 0);
  for (int i = 0; i < 6; i++) {
    float w = (float)(i % 3 + 1);
    assert_true(((float *)y.data)[i] == ((float)i + w) * w); /* (X + W) * W */
  }
  gpux_tensor_free(&y);
  gpux_tensor_free(&in[0]);
  gpux_tensor_free(&in[1]);
  gpux_session_free(s);
  gpux_model_free(model);
  /* a value defined twice is still refused, value_info or not */
  for (int clash = 1; clash <= 2; clash++) {
    m = value_info_model(clash);
    assert_int_equal(gpux_model_load_buffer(m.data, m.len, "vi.onnx", &model), GPUX_E_MODEL);
    assert_non_null(strstr(gpux_last_error(), clash == 1 ? "output 'T' is already defined" : "output 'W' is already defined"));
    free(m.data);
  }
}

/* Y = If(C) then { MatMul(X, W) + 0 } else { MatMul(X, V) + 0 }, W [8, 5] and V [8, 70] (and the
 * zero biases, which the optimizer folds into the MatMuls: the session runs rewritten bodies)
 * initializers of the main graph that the branches capture. */
static pbw if_matmul_model(void) {
  pbw g = {0}, m = {0};
  static float w[8 * 5], v[8 * 70];
  for (int i = 0; i < 8 * 5; i++) w[i] = sinf((float)i * 0.37f);
  for (int i = 0; i < 8 * 70; i++) v[i] = cosf((float)i * 0.11f);
  int64_t wd[] = {8, 5}, vd[] = {8, 70}, xd[] = {-1, 8}, yd[] = {-1, -1};
  pbw_str(&g, 2, "ifmm");
  const char *names[2] = {"then_branch", "else_branch"}, *weights[2] = {"W", "V"};
  pbw node = {0};
  pbw_str(&node, 1, "C");
  pbw_str(&node, 2, "Y");
  pbw_str(&node, 3, "if");
  pbw_str(&node, 4, "If");
  for (int b = 0; b < 2; b++) {
    pbw branch = {0}, attr = {0};
    pbw_str(&branch, 2, names[b]);
    pbw_node(&branch, "MatMul", "X", weights[b], b ? "Mb" : "Ma");
    pbw_node(&branch, "Add", b ? "Mb" : "Ma", b ? "Zero70" : "Zero5", b ? "Zb" : "Za"); /* a bias: rewritten */
    pbw_value_info(&branch, 12, b ? "Zb" : "Za", GPUX_DT_FLOAT, 2, yd, "rows");
    pbw_str(&attr, 1, names[b]);
    pbw_msg(&attr, 6, &branch);
    pbw_int(&attr, 20, 5);
    pbw_msg(&node, 5, &attr);
  }
  pbw_msg(&g, 1, &node);
  pbw_tensor(&g, 5, "W", GPUX_DT_FLOAT, 2, wd, w, sizeof w);
  pbw_tensor(&g, 5, "V", GPUX_DT_FLOAT, 2, vd, v, sizeof v);
  static const float zeros[70];
  int64_t z5[] = {5}, z70[] = {70};
  pbw_tensor(&g, 5, "Zero5", GPUX_DT_FLOAT, 1, z5, zeros, 5 * sizeof(float));
  pbw_tensor(&g, 5, "Zero70", GPUX_DT_FLOAT, 1, z70, zeros, sizeof zeros);
  int64_t cd[] = {1};
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 2, xd, "rows");
  pbw_value_info(&g, 11, "C", GPUX_DT_BOOL, 1, cd, NULL);
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 2, yd, "rows");
  pbw_model(&m, &g);
  return m;
}

/* Each branch's MatMul packs its captured weights on its first run and reads them from its state
 * on the next ones: every run, on either branch, must give the product. */
static void test_if_branch_state(void **state) {
  (void)state;
  pbw m = if_matmul_model();
  gpux_model *model;
  assert_int_equal(gpux_model_load_buffer(m.data, m.len, "ifmm.onnx", &model), 0);
  free(m.data);
  gpux_session *s;
  assert_int_equal(gpux_session_create(model, &cpu, &s), 0);
  for (int run = 0; run < 6; run++) {
    int then = run % 3 != 2, rows = 1 + run % 4, n = then ? 5 : 70;
    gpux_tensor in[2], y;
    int64_t xd[] = {rows, 8}, cd[] = {1};
    assert_int_equal(gpux_tensor_init(&in[0], GPUX_DT_FLOAT, 2, xd), 0);
    assert_int_equal(gpux_tensor_init(&in[1], GPUX_DT_BOOL, 1, cd), 0);
    for (int i = 0; i < rows * 8; i++) ((float *)in[0].data)[i] = (float)((i * 7 + run) % 11) - 5.0f;
    ((unsigned char *)in[1].data)[0] = (unsigned char)then;
    assert_int_equal(gpux_session_run(s, in, 2, &y, 1), 0);
    assert_int_equal(y.dims[0], rows);
    assert_int_equal(y.dims[1], n);
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < n; j++) {
        double want = 0;
        for (int p = 0; p < 8; p++)
          want += (double)((float *)in[0].data)[i * 8 + p] * (then ? sinf((float)(p * 5 + j) * 0.37f) : cosf((float)(p * 70 + j) * 0.11f));
        double got = ((float *)y.data)[i * n + j];
        if (fabs(got - want) > 1e-4 * (fabs(want) + 1)) fail_msg("run %d: y[%d, %d] = %g, want %g", run, i, j, got, want);
      }
    gpux_tensor_free(&y);
    gpux_tensor_free(&in[0]);
    gpux_tensor_free(&in[1]);
  }
  gpux_session_free(s);
  gpux_model_free(model);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_symbolic_batch),        cmocka_unit_test(test_bad_inputs),
    cmocka_unit_test(test_unsupported_op),        cmocka_unit_test(test_truncated_and_corrupt),
    cmocka_unit_test(test_external_data),        cmocka_unit_test(test_value_info),
    cmocka_unit_test(test_if_branch_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
