/* test-lower-fp16.c — unit tests of the CPU backend's float16 rewrite (runtime/lower-fp16.c): small
 * float16 models built in memory, as float16 converters write them (float32 inputs and outputs
 * with Casts at them, or float16 ones), must be rewritten into float32 graphs that optimize.c's
 * fusions then take (a float16 Conv + BatchNormalization + Relu becomes one FusedConv reading
 * float32 weights), keep the model's input and output types, and give a float64 reference's
 * values within float16 rounding; a graph with an op the rewrite does not know stays as it is.
 * The rewrite's float32 weight copies are let go once the kernels keep them packed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "runtime/optimize.h"
#include "onnx-writer.h"

static uint32_t rng = 4242;

static float rndf(void) {
  rng = rng * 1664525u + 1013904223u;
  return (float)((int)(rng >> 9) % 2001 - 1000) / 1000.0f;
}

/* v as float16 would hold it */
static float h(float v) { return gpux__f16_to_f32(gpux__f32_to_f16(v)); }

/* ---- model building ---- */

typedef struct {
  const char *name;
  int type;             /* 1 float, 2 int, 4 tensor (float16 of n values), 7 ints */
  float f;
  int64_t i;
  int n;
  const int64_t *ints;
  const float *vals;    /* tensor: its float16 values, dims ints[n] (a scalar when n == 0) */
} attr_b;

/* A node `op` reading the comma-free names in[n_in] (NULL: omitted) and making out. */
static void node(pbw *g, const char *op, const char *const *in, int n_in, const char *out, const attr_b *attrs,
                 int n_attrs) {
  pbw n = {0};
  for (int i = 0; i < n_in; i++) pbw_str(&n, 1, in[i] ? in[i] : "");
  pbw_str(&n, 2, out);
  pbw_str(&n, 3, out);
  pbw_str(&n, 4, op);
  for (int a = 0; a < n_attrs; a++) {
    pbw at = {0};
    pbw_str(&at, 1, attrs[a].name);
    if (attrs[a].type == 1) {
      pbw_key(&at, 2, 5);
      pbw_bytes(&at, &attrs[a].f, 4);
    } else if (attrs[a].type == 2) {
      pbw_int(&at, 3, attrs[a].i);
    } else if (attrs[a].type == 4) {
      int64_t count = 1;
      for (int k = 0; k < attrs[a].n; k++) count *= attrs[a].ints[k];
      uint16_t *v = malloc((size_t)count * sizeof *v);
      for (int64_t k = 0; k < count; k++) v[k] = gpux__f32_to_f16(attrs[a].vals[k]);
      pbw_tensor(&at, 5, NULL, GPUX_DT_FLOAT16, attrs[a].n, attrs[a].ints, v, (size_t)count * sizeof *v);
      free(v);
    } else {
      for (int k = 0; k < attrs[a].n; k++) pbw_int(&at, 8, attrs[a].ints[k]);
    }
    pbw_int(&at, 20, attrs[a].type);
    pbw_msg(&n, 5, &at);
  }
  pbw_msg(g, 1, &n);
}

/* A float16 initializer of the values v (rounded to float16 in place, as the model holds them). */
static void init16(pbw *g, const char *name, int ndim, const int64_t *dims, float *v) {
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) count *= dims[i];
  uint16_t *b = malloc((size_t)count * sizeof *b);
  for (int64_t i = 0; i < count; i++) b[i] = gpux__f32_to_f16(v[i]), v[i] = gpux__f16_to_f32(b[i]);
  pbw_tensor(g, 5, name, GPUX_DT_FLOAT16, ndim, dims, b, (size_t)count * sizeof *b);
  free(b);
}

static void fill(float *v, int64_t n, float scale, float shift) {
  for (int64_t i = 0; i < n; i++) v[i] = shift + scale * rndf();
}

/* Finishes the graph: input x (xtype, xdims), output y (ytype) and loads it. */
static gpux_model *finish(pbw *g, int xtype, int ndim, const int64_t *xdims, int ytype) {
  pbw_str(g, 2, "g");
  pbw_value_info(g, 11, "x", xtype, ndim, xdims, NULL);
  pbw tt = {0}, tp = {0}, vi = {0};
  pbw_int(&tt, 1, ytype);
  pbw_msg(&tp, 1, &tt);
  pbw_str(&vi, 1, "y");
  pbw_msg(&vi, 2, &tp);
  pbw_msg(g, 12, &vi);
  pbw mp = {0};
  pbw_model(&mp, g);
  gpux_model *model = NULL;
  if (gpux_model_load_buffer(mp.data, mp.len, "test", &model)) fail_msg("load: %s", gpux_last_error());
  free(mp.data);
  return model;
}

/* The CPU backend's rewrite of model's graph (NULL: none). */
static gpux__graph *lowered(gpux_model *model) {
  gpux__graph *g;
  gpux__optimize_opts oo = {.last_position = -1, .lower_fp16 = 1};
  assert_int_equal(gpux__graph_optimize_with(model->graph, &oo, &g), 0);
  return g;
}

static int count_ops(const gpux__graph *g, const char *op) {
  int n = 0;
  for (int i = 0; i < g->n_nodes; i++) n += !strcmp(g->nodes[i].op_type, op);
  return n;
}

/* Whether any node of g reads or makes a float16 value, other than the Casts at its inputs and
 * outputs. */
static int computes_fp16(const gpux__graph *g) {
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    if (!strcmp(n->op_type, "Cast")) continue;
    for (int j = 0; j < n->n_in; j++) {
      const gpux__value *v = n->in[j] >= 0 ? &g->values[n->in[j]] : NULL;
      if (v && ((v->is_const && v->init.dtype == GPUX_DT_FLOAT16) || (v->has_info && v->info.dtype == GPUX_DT_FLOAT16)))
        return 1;
    }
  }
  return 0;
}

/* One CPU session's run of model on x (GPUX_LOWER_FP16 as `lower` says). */
static gpux_tensor run(gpux_model *model, const gpux_tensor *x, int lower) {
  setenv("GPUX_LOWER_FP16", lower ? "1" : "0", 1);
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 1};
  gpux_session *s;
  if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
  gpux_tensor y;
  if (gpux_session_run(s, x, 1, &y, 1)) fail_msg("run: %s", gpux_last_error());
  gpux_session_free(s);
  unsetenv("GPUX_LOWER_FP16");
  return y;
}

static double value_at(const gpux_tensor *t, int64_t i) {
  return t->dtype == GPUX_DT_FLOAT16 ? gpux__f16_to_f32(((const uint16_t *)t->data)[i]) : ((const float *)t->data)[i];
}

/* y against the float64 reference within float16 rounding: |y - ref| <= tol * (|ref| + scale). */
static void expect_near(const gpux_tensor *y, const double *ref, int64_t count, double tol, double scale) {
  assert_int_equal(gpux_tensor_count(y), count);
  for (int64_t i = 0; i < count; i++) {
    double got = value_at(y, i);
    if (!(fabs(got - ref[i]) <= tol * (fabs(ref[i]) + scale)))
      fail_msg("element %lld: got %.7g, reference %.7g", (long long)i, got, ref[i]);
  }
}

/* float64 Conv of x [1, C, H, W] with w [M, C, 3, 3], b [M], pads 1, stride 1, into y [M, H, W] */
static void conv3x3(const float *x, int64_t c, int64_t hh, int64_t ww, const float *w, const float *b, int64_t m,
                    double *y) {
  for (int64_t o = 0; o < m; o++)
    for (int64_t i = 0; i < hh; i++)
      for (int64_t j = 0; j < ww; j++) {
        double s = b[o];
        for (int64_t ci = 0; ci < c; ci++)
          for (int64_t ki = 0; ki < 3; ki++)
            for (int64_t kj = 0; kj < 3; kj++) {
              int64_t yi = i + ki - 1, xj = j + kj - 1;
              if (yi >= 0 && yi < hh && xj >= 0 && xj < ww)
                s += (double)w[((o * c + ci) * 3 + ki) * 3 + kj] * x[(ci * hh + yi) * ww + xj];
            }
        y[(o * hh + i) * ww + j] = s;
      }
}

enum { C = 3, M = 4, H = 6, W = 7 };
static const int64_t xdims[4] = {1, C, H, W}, wdims[4] = {M, C, 3, 3}, mdims[1] = {M};

/* A converted model with float32 input and output (keep_io_types): Cast to float16, Conv +
 * BatchNormalization + Relu in float16, Cast to float32. The rewrite leaves no Cast and the
 * fusion makes one FusedConv of float32 weights. */
static void test_keep_io_conv(void **state) {
  (void)state;
  float w[M * C * 9], b[M], s[M], sh[M], mu[M], var[M];
  fill(w, M * C * 9, 0.5f, 0), fill(b, M, 0.2f, 0), fill(s, M, 0.3f, 1), fill(sh, M, 0.2f, 0);
  fill(mu, M, 0.2f, 0), fill(var, M, 0.2f, 0.8f);
  pbw g = {0};
  init16(&g, "w", 4, wdims, w), init16(&g, "b", 1, mdims, b);
  init16(&g, "s", 1, mdims, s), init16(&g, "sh", 1, mdims, sh), init16(&g, "mu", 1, mdims, mu), init16(&g, "var", 1, mdims, var);
  const int64_t pads[4] = {1, 1, 1, 1};
  node(&g, "Cast", (const char *[]){"x"}, 1, "xh", &(attr_b){"to", 2, .i = GPUX_DT_FLOAT16}, 1);
  node(&g, "Conv", (const char *[]){"xh", "w", "b"}, 3, "c", &(attr_b){"pads", 7, .n = 4, .ints = pads}, 1);
  node(&g, "BatchNormalization", (const char *[]){"c", "s", "sh", "mu", "var"}, 5, "bn", &(attr_b){"epsilon", 1, .f = 1e-3f}, 1);
  node(&g, "Relu", (const char *[]){"bn"}, 1, "r", NULL, 0);
  node(&g, "Cast", (const char *[]){"r"}, 1, "y", &(attr_b){"to", 2, .i = GPUX_DT_FLOAT}, 1);
  gpux_model *model = finish(&g, GPUX_DT_FLOAT, 4, xdims, GPUX_DT_FLOAT);

  gpux__graph *lg = lowered(model);
  assert_non_null(lg);
  assert_int_equal(lg->n_nodes, 1);
  assert_int_equal(count_ops(lg, "FusedConv"), 1);
  const gpux__node *fc = &lg->nodes[0];
  assert_int_equal(lg->values[fc->in[1]].init.dtype, GPUX_DT_FLOAT);
  assert_int_equal(lg->values[fc->in[2]].init.dtype, GPUX_DT_FLOAT);
  assert_string_equal(lg->values[fc->out[0]].name, "y");
  assert_false(computes_fp16(lg));
  gpux__graph_optimized_free(lg);

  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 4, xdims), 0);
  float *xv = x.data, xr[C * H * W];
  fill(xv, C * H * W, 2.0f, 0);
  for (int i = 0; i < C * H * W; i++) xr[i] = h(xv[i]); /* the model's Cast to float16 */
  double ref[M * H * W];
  conv3x3(xr, C, H, W, w, b, M, ref);
  for (int o = 0; o < M; o++)
    for (int i = 0; i < H * W; i++) {
      double v = (ref[o * H * W + i] - mu[o]) / sqrt((double)var[o] + 1e-3) * s[o] + sh[o];
      ref[o * H * W + i] = v > 0 ? v : 0;
    }
  gpux_tensor y = run(model, &x, 1), y0 = run(model, &x, 0);
  assert_int_equal(y.dtype, GPUX_DT_FLOAT);
  /* float16's unit roundoff is 2^-11; the input's rounding to float16 is gone (x itself is read) */
  expect_near(&y, ref, M * H * W, 4e-3, 1.0);
  expect_near(&y0, ref, M * H * W, 4e-3, 1.0); /* the float16 graph as it was */
  gpux_tensor_free(&x), gpux_tensor_free(&y), gpux_tensor_free(&y0);
  gpux_model_free(model);
}

/* A model with a float16 input and output: Conv + SiLU, ConstantOfShape's float16 value added,
 * ReduceMean, times a float16 Constant. The rewrite casts the input to float32 where the graph
 * reads it and the output back to float16 where it leaves: two Casts, nothing in float16
 * between them, and the output still float16. */
static void test_fp16_io(void **state) {
  (void)state;
  float w[M * C * 9], b[M], k[M];
  fill(w, M * C * 9, 0.5f, 0), fill(b, M, 0.2f, 0), fill(k, M, 1.0f, 0);
  for (int i = 0; i < M; i++) k[i] = h(k[i]);
  pbw g = {0};
  init16(&g, "w", 4, wdims, w), init16(&g, "b", 1, mdims, b);
  const int64_t pads[4] = {1, 1, 1, 1}, axes[2] = {2, 3}, one[1] = {1};
  const float quarter = 0.25f;
  node(&g, "Conv", (const char *[]){"x", "w", "b"}, 3, "c", &(attr_b){"pads", 7, .n = 4, .ints = pads}, 1);
  node(&g, "Sigmoid", (const char *[]){"c"}, 1, "sg", NULL, 0);
  node(&g, "Mul", (const char *[]){"c", "sg"}, 2, "silu", NULL, 0);
  node(&g, "Shape", (const char *[]){"silu"}, 1, "shp", NULL, 0);
  node(&g, "ConstantOfShape", (const char *[]){"shp"}, 1, "q", &(attr_b){"value", 4, .n = 1, .ints = one, .vals = &quarter}, 1);
  node(&g, "Add", (const char *[]){"silu", "q"}, 2, "a", NULL, 0);
  node(&g, "ReduceMean", (const char *[]){"a"}, 1, "rm", (attr_b[]){{"axes", 7, .n = 2, .ints = axes}, {"keepdims", 2, .i = 0}}, 2);
  node(&g, "Constant", NULL, 0, "k", &(attr_b){"value", 4, .n = 1, .ints = (const int64_t[]){M}, .vals = k}, 1);
  node(&g, "Mul", (const char *[]){"rm", "k"}, 2, "y", NULL, 0);
  gpux_model *model = finish(&g, GPUX_DT_FLOAT16, 4, xdims, GPUX_DT_FLOAT16);

  gpux__graph *lg = lowered(model);
  assert_non_null(lg);
  assert_int_equal(count_ops(lg, "Cast"), 2);
  assert_int_equal(count_ops(lg, "FusedConv"), 1);
  assert_int_equal(count_ops(lg, "Constant"), 0);
  assert_false(computes_fp16(lg));
  gpux__graph_optimized_free(lg);

  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT16, 4, xdims), 0);
  float xr[C * H * W];
  fill(xr, C * H * W, 2.0f, 0);
  for (int i = 0; i < C * H * W; i++) ((uint16_t *)x.data)[i] = gpux__f32_to_f16(xr[i]), xr[i] = h(xr[i]);
  double c[M * H * W], ref[M];
  conv3x3(xr, C, H, W, w, b, M, c);
  for (int o = 0; o < M; o++) {
    double sum = 0;
    for (int i = 0; i < H * W; i++) sum += c[o * H * W + i] / (1 + exp(-c[o * H * W + i])) + 0.25;
    ref[o] = sum / (H * W) * k[o];
  }
  gpux_tensor y = run(model, &x, 1), y0 = run(model, &x, 0);
  assert_int_equal(y.dtype, GPUX_DT_FLOAT16);
  assert_int_equal(y.ndim, 2);
  /* computed in float32 and rounded to float16 once, at the output */
  expect_near(&y, ref, M, 1.0 / 1024, 0.0);
  expect_near(&y0, ref, M, 1e-2, 0.1);
  gpux_tensor_free(&x), gpux_tensor_free(&y), gpux_tensor_free(&y0);
  gpux_model_free(model);
}

/* A Gather table of 1 MiB stays float16 (the rows a run takes are cast after the Gather); a
 * small one becomes float32. */
static void test_gather_table(void **state) {
  (void)state;
  enum { ROWS = 1024, D = 512 };
  const int64_t tdims[2] = {ROWS, D}, sdims[2] = {8, D}, idims[2] = {1, 3};
  float *t = malloc((size_t)ROWS * D * sizeof *t), small[8 * D];
  fill(t, (int64_t)ROWS * D, 1.0f, 0), fill(small, 8 * D, 1.0f, 0);
  pbw g = {0};
  init16(&g, "table", 2, tdims, t), init16(&g, "small", 2, sdims, small);
  node(&g, "Gather", (const char *[]){"table", "x"}, 2, "e", NULL, 0);
  node(&g, "Gather", (const char *[]){"small", "x"}, 2, "f", NULL, 0);
  node(&g, "Add", (const char *[]){"e", "f"}, 2, "sum", NULL, 0);
  node(&g, "Cast", (const char *[]){"sum"}, 1, "y", &(attr_b){"to", 2, .i = GPUX_DT_FLOAT}, 1);
  gpux_model *model = finish(&g, GPUX_DT_INT64, 2, idims, GPUX_DT_FLOAT);

  gpux__graph *lg = lowered(model);
  assert_non_null(lg);
  assert_int_equal(count_ops(lg, "Cast"), 1); /* after the large table's Gather */
  for (int i = 0; i < lg->n_nodes; i++) {
    const gpux__node *n = &lg->nodes[i];
    if (strcmp(n->op_type, "Gather")) continue;
    const gpux_tensor *tab = &lg->values[n->in[0]].init;
    assert_int_equal(tab->dtype, tab->dims[0] == ROWS ? GPUX_DT_FLOAT16 : GPUX_DT_FLOAT);
  }
  gpux__graph_optimized_free(lg);

  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_INT64, 2, idims), 0);
  const int64_t ids[3] = {5, 0, 7}; /* rows of both tables */
  memcpy(x.data, ids, sizeof ids);
  double ref[3 * D];
  for (int r = 0; r < 3; r++)
    for (int d = 0; d < D; d++) ref[r * D + d] = (double)t[ids[r] * D + d] + small[ids[r] * D + d];
  gpux_tensor y = run(model, &x, 1);
  assert_int_equal(y.dtype, GPUX_DT_FLOAT);
  expect_near(&y, ref, 3 * D, 1e-7, 0.0); /* float16 values added in float32: exact but for one rounding */
  free(t);
  gpux_tensor_free(&x), gpux_tensor_free(&y);
  gpux_model_free(model);
}

/* A float16 graph with ops the rewrite does not know (SplitToSequence, ConcatFromSequence: a
 * sequence of float16 tensors) stays as it is: its Conv stays a float16 Conv, not fused with the
 * Relu, and the output is as before. */
static void test_declined(void **state) {
  (void)state;
  float w[M * C * 9], b[M];
  fill(w, M * C * 9, 0.5f, 0), fill(b, M, 0.2f, 0);
  pbw g = {0};
  init16(&g, "w", 4, wdims, w), init16(&g, "b", 1, mdims, b);
  const int64_t pads[4] = {1, 1, 1, 1};
  node(&g, "Conv", (const char *[]){"x", "w", "b"}, 3, "c", &(attr_b){"pads", 7, .n = 4, .ints = pads}, 1);
  node(&g, "Relu", (const char *[]){"c"}, 1, "r", NULL, 0);
  node(&g, "SplitToSequence", (const char *[]){"r"}, 1, "seq", &(attr_b){"axis", 2, .i = 1}, 1);
  node(&g, "ConcatFromSequence", (const char *[]){"seq"}, 1, "y", &(attr_b){"axis", 2, .i = 1}, 1);
  gpux_model *model = finish(&g, GPUX_DT_FLOAT16, 4, xdims, GPUX_DT_FLOAT16);
  gpux__graph *lg = lowered(model);
  assert_null(lg); /* nothing rewritten: the float16 Conv + Relu do not fuse either */
  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT16, 4, xdims), 0);
  float xr[C * H * W];
  fill(xr, C * H * W, 2.0f, 0);
  for (int i = 0; i < C * H * W; i++) ((uint16_t *)x.data)[i] = gpux__f32_to_f16(xr[i]), xr[i] = h(xr[i]);
  double ref[M * H * W];
  conv3x3(xr, C, H, W, w, b, M, ref);
  for (int i = 0; i < M * H * W; i++) ref[i] = ref[i] > 0 ? ref[i] : 0;
  gpux_tensor y = run(model, &x, 1);
  assert_int_equal(y.dtype, GPUX_DT_FLOAT16);
  expect_near(&y, ref, M * H * W, 1e-2, 0.1);
  gpux_tensor_free(&x), gpux_tensor_free(&y);
  gpux_model_free(model);
}

/* y = Relu(x w1 + b1) w2 in float16 with float32 input and output (Casts at them): the rewrite's
 * float32 copies of w1 and w2 are let go once the MatMuls keep them packed (gpux_session_memory's
 * weights_folded falls to the bias), and later runs, a second session's and runs on two threads
 * at once in a third answer the same. */
enum { MR = 8, MK = 256 };

typedef struct {
  gpux_session *s;
  const gpux_tensor *x;
  const gpux_tensor *want;
  int same;
} first_run;

static void *run_first(void *arg) {
  first_run *r = arg;
  gpux_tensor y;
  if (gpux_session_run(r->s, r->x, 1, &y, 1)) return NULL;
  r->same = y.nbytes == r->want->nbytes && !memcmp(y.data, r->want->data, y.nbytes);
  gpux_tensor_free(&y);
  return NULL;
}

static void test_copies_let_go(void **state) {
  (void)state;
  static float w1[MK * MK], w2[MK * MK], b1[MK];
  fill(w1, MK * MK, 0.1f, 0), fill(w2, MK * MK, 0.1f, 0), fill(b1, MK, 0.2f, 0);
  const int64_t wd[2] = {MK, MK}, bd[1] = {MK}, xd[2] = {MR, MK};
  pbw g = {0};
  init16(&g, "w1", 2, wd, w1), init16(&g, "w2", 2, wd, w2), init16(&g, "b1", 1, bd, b1);
  node(&g, "Cast", (const char *[]){"x"}, 1, "xh", &(attr_b){"to", 2, .i = GPUX_DT_FLOAT16}, 1);
  node(&g, "MatMul", (const char *[]){"xh", "w1"}, 2, "m1", NULL, 0);
  node(&g, "Add", (const char *[]){"m1", "b1"}, 2, "a1", NULL, 0);
  node(&g, "Relu", (const char *[]){"a1"}, 1, "r1", NULL, 0);
  node(&g, "MatMul", (const char *[]){"r1", "w2"}, 2, "m2", NULL, 0);
  node(&g, "Cast", (const char *[]){"m2"}, 1, "y", &(attr_b){"to", 2, .i = GPUX_DT_FLOAT}, 1);
  gpux_model *model = finish(&g, GPUX_DT_FLOAT, 2, xd, GPUX_DT_FLOAT);

  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 2, xd), 0);
  float *xv = x.data;
  fill(xv, MR * MK, 1.0f, 0);
  double ref[MR * MK], hid[MK];
  for (int r = 0; r < MR; r++) {
    for (int n = 0; n < MK; n++) {
      double a = b1[n];
      for (int k = 0; k < MK; k++) a += (double)xv[r * MK + k] * w1[k * MK + n];
      hid[n] = a > 0 ? a : 0;
    }
    for (int n = 0; n < MK; n++) {
      double a = 0;
      for (int k = 0; k < MK; k++) a += hid[k] * w2[k * MK + n];
      ref[r * MK + n] = a;
    }
  }
  const uint64_t weights = 2 * MK * MK * sizeof(float);
  setenv("GPUX_LOWER_FP16", "1", 1);
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 1};
  gpux_session *s, *s2, *s3;
  gpux_memory_stats mem;
  if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
  gpux_session_memory(s, &mem);
  assert_true(mem.weights_folded >= weights); /* the float32 copies */
  gpux_tensor y, y2;
  if (gpux_session_run(s, &x, 1, &y, 1)) fail_msg("run: %s", gpux_last_error());
  expect_near(&y, ref, MR * MK, 4e-3, 1.0);
  gpux_session_memory(s, &mem);
  if (!mem.weights_packed) { /* no packed GEMM on this CPU: nothing to let go */
    print_message("no packed weights here: the copies stay\n");
  } else {
    assert_true(mem.weights_folded < weights / 8); /* b1 is left */
  }
  for (int i = 0; i < 2; i++) { /* later runs read the packed weights alone */
    if (gpux_session_run(s, &x, 1, &y2, 1)) fail_msg("run: %s", gpux_last_error());
    assert_memory_equal(y2.data, y.data, y.nbytes);
    gpux_tensor_free(&y2);
  }
  /* a second session converts its own copies, and lets them go alike */
  if (gpux_session_create(model, &o, &s2)) fail_msg("session: %s", gpux_last_error());
  if (gpux_session_run(s2, &x, 1, &y2, 1)) fail_msg("run: %s", gpux_last_error());
  assert_memory_equal(y2.data, y.data, y.nbytes);
  gpux_tensor_free(&y2);
  gpux_session_memory(s2, &mem);
  if (mem.weights_packed) assert_true(mem.weights_folded < weights / 8);
  gpux_session_free(s2);
  if (gpux_session_run(s, &x, 1, &y2, 1)) fail_msg("run: %s", gpux_last_error());
  assert_memory_equal(y2.data, y.data, y.nbytes);
  gpux_tensor_free(&y2);
  gpux_session_free(s);
  /* a third's first runs at once: the copies go when the last of them ends */
  if (gpux_session_create(model, &o, &s3)) fail_msg("session: %s", gpux_last_error());
  first_run r[2] = {{s3, &x, &y, 0}, {s3, &x, &y, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, run_first, &r[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  assert_true(r[0].same && r[1].same);
  if (gpux_session_run(s3, &x, 1, &y2, 1)) fail_msg("run: %s", gpux_last_error());
  assert_memory_equal(y2.data, y.data, y.nbytes);
  gpux_tensor_free(&y2);
  gpux_session_memory(s3, &mem);
  if (mem.weights_packed) assert_true(mem.weights_folded < weights / 8);
  gpux_session_free(s3);
  unsetenv("GPUX_LOWER_FP16");
  gpux_tensor_free(&x), gpux_tensor_free(&y);
  gpux_model_free(model);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_keep_io_conv),
    cmocka_unit_test(test_fp16_io),
    cmocka_unit_test(test_gather_table),
    cmocka_unit_test(test_declined),
    cmocka_unit_test(test_copies_let_go),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
