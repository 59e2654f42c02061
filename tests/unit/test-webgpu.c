/* test-webgpu.c — the WebGPU backend's contract: a missing library is an error with a message
 * (and AUTO falls back to the CPU), an adapter is found (lavapipe on machines without a GPU —
 * this test fails, not skips, when there is none), models run with one plan per input shape
 * (and per value of the inputs that decide shapes, never of token ids),
 * CPU fallbacks in the middle of a graph, and device errors (shader compile errors, validation
 * errors, a lost device) come back as gpux errors instead of crashes or hangs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include "backend/webgpu/wg.h"
#include "onnx-writer.h"

static const gpux_session_options webgpu = {.backend = GPUX_BACKEND_WEBGPU};

/* A node with any number of inputs, one output and int/float/ints attributes. */
typedef struct {
  const char *name;
  int type; /* GPUX_ATTR_INT, GPUX_ATTR_FLOAT, GPUX_ATTR_INTS */
  int64_t i;
  float f;
  int n;
  const int64_t *ints;
} attr;

static void node(pbw *g, const char *op, const char *const *in, int n_in, const char *out, const attr *attrs, int n_attrs) {
  pbw n = {0};
  for (int i = 0; i < n_in; i++) pbw_str(&n, 1, in[i]);
  pbw_str(&n, 2, out);
  pbw_str(&n, 3, out);
  pbw_str(&n, 4, op);
  for (int a = 0; a < n_attrs; a++) {
    pbw at = {0};
    pbw_str(&at, 1, attrs[a].name);
    if (attrs[a].type == GPUX_ATTR_INT) pbw_int(&at, 3, attrs[a].i);
    else if (attrs[a].type == GPUX_ATTR_FLOAT) {
      pbw_key(&at, 2, 5);
      pbw_bytes(&at, &attrs[a].f, 4);
    } else
      for (int k = 0; k < attrs[a].n; k++) pbw_int(&at, 8, attrs[a].ints[k]);
    pbw_int(&at, 20, attrs[a].type);
    pbw_msg(&n, 5, &at);
  }
  pbw_msg(g, 1, &n);
}

static void model(pbw *m, pbw *g, int opset) {
  pbw os = {0};
  pbw_int(m, 1, 8);
  pbw_str(&os, 1, "");
  pbw_int(&os, 2, opset);
  pbw_msg(m, 8, &os);
  pbw_msg(m, 7, g);
}

/* Y = Relu(X) -> TopK-free CPU op (Mod on int? no: CumSum has no WGSL kernel) -> Add(., 1) */
static gpux_model *chain_model(void) {
  pbw g = {0}, m = {0};
  int64_t xd[] = {-1, 4}, one = 1;
  float onef = 1.0f;
  const char *a[] = {"X"}, *b[] = {"R", "axis"}, *c[] = {"C", "one"};
  node(&g, "Relu", a, 1, "R", NULL, 0);
  node(&g, "CumSum", b, 2, "C", NULL, 0); /* forced to the CPU below: a fallback in the middle */
  node(&g, "Add", c, 2, "Y", NULL, 0);
  pbw_str(&g, 2, "chain");
  int64_t sd[] = {0};
  pbw_tensor(&g, 5, "axis", GPUX_DT_INT64, 0, sd, &one, sizeof one);
  pbw_tensor(&g, 5, "one", GPUX_DT_FLOAT, 0, sd, &onef, sizeof onef);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 2, xd, "batch");
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 2, xd, "batch");
  model(&m, &g, 17);
  gpux_model *out = NULL;
  assert_int_equal(gpux_model_load_buffer(m.data, m.len, "chain.onnx", &out), 0);
  free(m.data);
  return out;
}

static void run_chain(gpux_session *s, int64_t batch) {
  gpux_tensor x, y;
  int64_t dims[] = {batch, 4};
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 2, dims), 0);
  float *xv = x.data;
  for (int64_t i = 0; i < batch * 4; i++) xv[i] = (float)((i * 7) % 11) - 5.0f;
  int rc = gpux_session_run(s, &x, 1, &y, 1);
  if (rc) fail_msg("run: %s", gpux_last_error());
  assert_int_equal(y.ndim, 2);
  assert_int_equal(y.dims[0], batch);
  const float *yv = y.data;
  for (int64_t r = 0; r < batch; r++) {
    float acc = 0;
    for (int c = 0; c < 4; c++) {
      float v = xv[r * 4 + c] > 0 ? xv[r * 4 + c] : 0;
      acc += v;
      assert_true(yv[r * 4 + c] == acc + 1.0f);
    }
  }
  gpux_tensor_free(&x);
  gpux_tensor_free(&y);
}

/* Must run first: the library is chosen when the process's device is created. */
static void test_missing_library(void **state) {
  (void)state;
  gpux_model *m = chain_model();
  gpux_session *s = NULL;
  setenv("GPUX_WEBGPU_LIB", "/nonexistent/libwebgpu_dawn.so", 1);
  int rc = gpux_session_create(m, &webgpu, &s);
  assert_int_equal(rc, GPUX_E_DEVICE);
  assert_non_null(strstr(gpux_last_error(), "no WebGPU library"));
  gpux_session_options autoo = {.backend = GPUX_BACKEND_AUTO};
  assert_int_equal(gpux_session_create(m, &autoo, &s), 0);
  assert_string_equal(gpux_session_backend_name(s), "cpu");
  run_chain(s, 3);
  gpux_session_free(s);
  unsetenv("GPUX_WEBGPU_LIB");
  gpux_model_free(m);
}

static void test_adapter_found(void **state) {
  (void)state;
  gpux_device_info devs[8];
  char note[1024];
  int n = gpux_devices(devs, 8, note, sizeof note);
  int gpus = 0;
  for (int i = 0; i < n && i < 8; i++) gpus += !strcmp(devs[i].backend, "webgpu");
  if (!gpus)
    fail_msg("no WebGPU adapter (%s): the WebGPU tests need one; on machines without a GPU install Mesa's lavapipe "
             "(scripts/install-deps.sh does)", note);
  assert_string_equal(devs[n - 1].backend, "cpu");
  assert_true(devs[0].max_storage_buffer_binding_size >= 128u << 20);
}

static void test_run_with_fallback(void **state) {
  (void)state;
  setenv("GPUX_WEBGPU_CPU_OPS", "Gather,CumSum", 1);
  gpux_model *m = chain_model();
  gpux_session *s = NULL;
  if (gpux_session_create(m, &webgpu, &s)) fail_msg("%s", gpux_last_error());
  assert_string_equal(gpux_session_backend_name(s), "webgpu");
  assert_null(gpux_session_node_device(s, 0, NULL)); /* nothing ran yet */
  run_chain(s, 2); /* one plan per batch size, reused */
  run_chain(s, 5);
  run_chain(s, 2);
  run_chain(s, 1);
  const char *why = NULL;
  assert_string_equal(gpux_session_node_device(s, 0, NULL), "webgpu");
  assert_string_equal(gpux_session_node_device(s, 1, &why), "cpu");
  assert_non_null(why);
  assert_string_equal(gpux_session_node_device(s, 2, NULL), "webgpu");
  gpux_session_free(s);
  gpux_model_free(m);
  unsetenv("GPUX_WEBGPU_CPU_OPS");
}

/* Weights written into buffers mapped at creation (GPUX_WEBGPU_UPLOAD=mapped) or by the queue
 * give the same products: Y = MatMul(X, W) with W a [4, 3] initializer. */
static void test_weights_mapped(void **state) {
  (void)state;
  static const float w[12] = {1, -2, 3, 0.5f, 4, -1, 2, 2, -3, 0.25f, 1, 5};
  pbw g = {0}, mb = {0};
  int64_t xd[] = {2, 4}, wd[] = {4, 3}, yd[] = {2, 3};
  const char *in[] = {"X", "W"};
  node(&g, "MatMul", in, 2, "Y", NULL, 0);
  pbw_str(&g, 2, "weights");
  pbw_tensor(&g, 5, "W", GPUX_DT_FLOAT, 2, wd, w, sizeof w);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 2, xd, NULL);
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 2, yd, NULL);
  model(&mb, &g, 17);
  gpux_model *m = NULL;
  assert_int_equal(gpux_model_load_buffer(mb.data, mb.len, "weights.onnx", &m), 0);
  free(mb.data);
  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 2, xd), 0);
  for (int i = 0; i < 8; i++) ((float *)x.data)[i] = (float)(i % 5) - 2.0f;
  for (int mapped = 0; mapped < 2; mapped++) {
    if (mapped) setenv("GPUX_WEBGPU_UPLOAD", "mapped", 1);
    gpux_session *s = NULL;
    if (gpux_session_create(m, &webgpu, &s)) fail_msg("%s", gpux_last_error());
    gpux_tensor y;
    if (gpux_session_run(s, &x, 1, &y, 1)) fail_msg("run: %s", gpux_last_error());
    assert_string_equal(gpux_session_node_device(s, 0, NULL), "webgpu");
    for (int r = 0; r < 2; r++)
      for (int c = 0; c < 3; c++) {
        float want = 0;
        for (int k = 0; k < 4; k++) want += ((float *)x.data)[r * 4 + k] * w[k * 3 + c];
        assert_float_equal(((float *)y.data)[r * 3 + c], want, 1e-5);
      }
    gpux_tensor_free(&y);
    gpux_session_free(s);
    unsetenv("GPUX_WEBGPU_UPLOAD");
  }
  gpux_tensor_free(&x);
  gpux_model_free(m);
}

static void test_shader_errors(void **state) {
  (void)state;
  wg_device *d = NULL;
  if (gpux__wg_device_acquire(&d)) fail_msg("%s", gpux_last_error());
  wg_pipeline *p = NULL;
  int rc = gpux__wg_pipeline(d, "@compute @workgroup_size(1) fn main() { let x: f32 = undefined_thing; }", "broken", &p);
  assert_int_equal(rc, GPUX_E_DEVICE);
  assert_non_null(strstr(gpux_last_error(), "does not compile"));
  /* a validation error (a buffer above every limit) is reported, and then cleared */
  WGPUBuffer b = gpux__wg_buffer(d, (uint64_t)1 << 52, WGPUBufferUsage_Storage, "too big");
  rc = gpux__wg_check(d, "allocating");
  assert_true(rc == GPUX_E_DEVICE || rc == GPUX_E_NOMEM);
  if (b) d->f.wgpuBufferRelease(b);
  assert_int_equal(gpux__wg_check(d, "nothing"), 0);
  /* the device still works */
  rc = gpux__wg_pipeline(d, "@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n"
                            "@compute @workgroup_size(1) fn main() { a[0] = 1.0; }", "fine", &p);
  assert_int_equal(rc, 0);
  gpux__wg_device_release(d);
}

/* Pipelines started in the background: several at once, finished together; one whose shader
 * module is fine but whose pipeline is not (a workgroup above the device's limit) fails at the
 * finish, keeps its reason, and fails at once when started again or asked for in one go. */
static void test_pipelines_started(void **state) {
  (void)state;
  wg_device *d = NULL;
  if (gpux__wg_device_acquire(&d)) fail_msg("%s", gpux_last_error());
  wg_pipeline *p[4] = {NULL};
  char wgsl[4][256];
  for (int i = 0; i < 3; i++) {
    snprintf(wgsl[i], sizeof wgsl[i], "@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n"
             "@compute @workgroup_size(1) fn main() { a[0] = %d.0; }", 1000 + i);
    assert_int_equal(gpux__wg_pipeline_start(d, wgsl[i], "started", &p[i]), 0);
    assert_non_null(p[i]);
  }
  snprintf(wgsl[3], sizeof wgsl[3], "@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n"
           "@compute @workgroup_size(%u) fn main() { a[0] = 2.0; }", d->limits.maxComputeInvocationsPerWorkgroup * 2);
  assert_int_equal(gpux__wg_pipeline_start(d, wgsl[3], "too wide", &p[3]), 0);
  assert_int_equal(gpux__wg_pipelines_finish(d), 0); /* the device is fine: the pipeline keeps its error */
  assert_non_null(p[3]->error);
  assert_non_null(strstr(p[3]->error, "does not compile"));
  for (int i = 0; i < 3; i++) {
    assert_non_null(p[i]->pipeline);
    assert_non_null(p[i]->layout);
    wg_pipeline *again = NULL; /* made once: the same one */
    assert_int_equal(gpux__wg_pipeline(d, wgsl[i], "started", &again), 0);
    assert_ptr_equal(again, p[i]);
  }
  assert_null(p[3]->pipeline);
  wg_pipeline *q = NULL;
  assert_int_equal(gpux__wg_pipeline_start(d, wgsl[3], "too wide", &q), GPUX_E_DEVICE);
  assert_null(q);
  assert_int_equal(gpux__wg_pipeline(d, wgsl[3], "too wide", &q), GPUX_E_DEVICE);
  assert_non_null(strstr(gpux_last_error(), "does not compile"));
  assert_int_equal(gpux__wg_pipelines_finish(d), 0);
  assert_int_equal(gpux__wg_check(d, "nothing"), 0);
  gpux__wg_device_release(d);
}

static void test_device_lost(void **state) {
  (void)state;
  gpux_model *m = chain_model();
  gpux_session *s = NULL;
  if (gpux_session_create(m, &webgpu, &s)) fail_msg("%s", gpux_last_error());
  run_chain(s, 2);
  wg_device *d = NULL;
  assert_int_equal(gpux__wg_device_acquire(&d), 0);
  if (!d->f.wgpuDeviceForceLoss) {
    gpux__wg_device_release(d);
    gpux_session_free(s);
    gpux_model_free(m);
    skip();
  }
  d->f.wgpuDeviceForceLoss(d->device, WGPUDeviceLostReason_Unknown, (WGPUStringView){"test", 4});
  gpux_tensor x, y;
  int64_t dims[] = {3, 4};
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 2, dims), 0);
  /* the session finds the device lost before its next run and replaces it: the run answers
   * (a loss during a run fails that run: tests/webgpu/device-loss.sh) */
  int rc = gpux_session_run(s, &x, 1, &y, 1);
  if (rc) fail_msg("%s", gpux_last_error());
  assert_int_equal(y.dims[0], 3);
  gpux_tensor_free(&y);
  gpux_tensor_free(&x);
  gpux_session_free(s);
  gpux__wg_device_release(d);
  /* a new session gets a new device */
  assert_int_equal(gpux_session_create(m, &webgpu, &s), 0);
  run_chain(s, 3);
  gpux_session_free(s);
  gpux_model_free(m);
}

/* Y = Reshape(Gather(E, ids), shape): token ids are data, `shape` decides the output's shape. */
static gpux_model *embed_model(void) {
  pbw g = {0}, m = {0};
  int64_t idd[] = {1, -1}, ed[] = {16, 4}, sd[] = {2}, yd[] = {-1, -1};
  float e[64];
  for (int i = 0; i < 64; i++) e[i] = (float)i * 0.5f - 3.0f;
  const char *a[] = {"E", "ids"}, *b[] = {"G", "shape"};
  node(&g, "Gather", a, 2, "G", NULL, 0);
  node(&g, "Reshape", b, 2, "Y", NULL, 0);
  pbw_str(&g, 2, "embed");
  pbw_tensor(&g, 5, "E", GPUX_DT_FLOAT, 2, ed, e, sizeof e);
  pbw_value_info(&g, 11, "ids", GPUX_DT_INT64, 2, idd, "seq");
  pbw_value_info(&g, 11, "shape", GPUX_DT_INT64, 1, sd, NULL);
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 2, yd, "n");
  model(&m, &g, 17);
  gpux_model *out = NULL;
  assert_int_equal(gpux_model_load_buffer(m.data, m.len, "embed.onnx", &out), 0);
  free(m.data);
  return out;
}

/* Runs embed_model on ids [1,6] (first + 2k mod 16) reshaped to (rows, 24/rows); checks Y. */
static void run_embed(gpux_session *s, int64_t first, int64_t rows) {
  gpux_tensor in[2], y;
  int64_t idd[] = {1, 6}, sd[] = {2};
  assert_int_equal(gpux_tensor_init(&in[0], GPUX_DT_INT64, 2, idd), 0);
  assert_int_equal(gpux_tensor_init(&in[1], GPUX_DT_INT64, 1, sd), 0);
  int64_t *ids = in[0].data, *shape = in[1].data;
  for (int k = 0; k < 6; k++) ids[k] = (first + 2 * k) % 16;
  shape[0] = rows, shape[1] = 24 / rows;
  if (gpux_session_run(s, in, 2, &y, 1)) fail_msg("run: %s", gpux_last_error());
  assert_int_equal(y.ndim, 2);
  assert_int_equal(y.dims[0], rows);
  const float *yv = y.data;
  for (int k = 0; k < 24; k++) assert_true(yv[k] == (float)(ids[k / 4] * 4 + k % 4) * 0.5f - 3.0f);
  gpux_tensor_free(&in[0]);
  gpux_tensor_free(&in[1]);
  gpux_tensor_free(&y);
}

/* Token ids do not key a plan (two prompts, one plan, the lookup on the GPU); an input whose
 * values decide a shape does (a new shape value, a new plan). */
static void test_plan_key(void **state) {
  (void)state;
  gpux_model *m = embed_model();
  gpux_session *s = NULL;
  if (gpux_session_create(m, &webgpu, &s)) fail_msg("%s", gpux_last_error());
  gpux_run_stats st;
  run_embed(s, 1, 6);
  gpux_session_stats(s, &st);
  assert_int_equal(st.plans, 1);
  assert_string_equal(gpux_session_node_device(s, 0, NULL), "webgpu"); /* not folded into a constant */
  run_embed(s, 4, 6);
  run_embed(s, 9, 6);
  gpux_session_stats(s, &st);
  assert_int_equal(st.plans, 1);
  run_embed(s, 3, 4);
  gpux_session_stats(s, &st);
  assert_int_equal(st.plans, 2);
  assert_string_equal(gpux_session_node_device(s, 0, NULL), "webgpu");
  gpux_session_free(s);
  gpux_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_missing_library), cmocka_unit_test(test_adapter_found),
    cmocka_unit_test(test_run_with_fallback), cmocka_unit_test(test_weights_mapped), cmocka_unit_test(test_shader_errors), cmocka_unit_test(test_pipelines_started),
    cmocka_unit_test(test_device_lost), cmocka_unit_test(test_plan_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
