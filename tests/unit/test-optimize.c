/* test-optimize.c — unit tests of the graph rewrite (runtime/optimize.c, fuse-transformer.c): small models
 * built in memory run with the rewrite and without it (GPUX_OPTIMIZE=0) must agree, and the
 * rewritten graph must hold the fused nodes expected (and keep the nodes that may not fuse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include "runtime/optimize.h"
#include "ops/conv.h"
#include "onnx-writer.h"

static uint32_t rng = 777;

static float rndf(void) {
  rng = rng * 1664525u + 1013904223u;
  return (float)((int)(rng >> 9) % 2001 - 1000) / 700.0f;
}

/* ---- model building ---- */

typedef struct {
  pbw g;                /* the GraphProto being written */
  int n_inits;
} model_b;

/* An attribute: ints (n > 0, i used when n == 0 and !is_float), or floats. */
typedef struct {
  const char *name;
  int type;             /* 1 float, 2 int, 7 ints */
  float f;
  int64_t i;
  int n;
  const int64_t *ints;
} attr_b;

static void node(model_b *m, const char *op, const char *const *in, int n_in, const char *out, const attr_b *attrs,
                 int n_attrs) {
  pbw n = {0};
  for (int i = 0; i < n_in; i++) pbw_str(&n, 1, in[i]);
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
    } else {
      for (int k = 0; k < attrs[a].n; k++) pbw_int(&at, 8, attrs[a].ints[k]);
    }
    pbw_int(&at, 20, attrs[a].type);
    pbw_msg(&n, 5, &at);
  }
  pbw_msg(&m->g, 1, &n);
}

/* A float32 initializer of random values (or all `fill` when fill is not NAN). */
static void init(model_b *m, const char *name, int ndim, const int64_t *dims, float fill) {
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) count *= dims[i];
  float *v = malloc((size_t)count * sizeof *v);
  for (int64_t i = 0; i < count; i++) v[i] = isnan(fill) ? rndf() : fill;
  pbw_tensor(&m->g, 5, name, GPUX_DT_FLOAT, ndim, dims, v, (size_t)count * sizeof *v);
  free(v);
}

/* A Constant node with a float32 tensor of random values. */
static void constant(model_b *m, const char *name, int ndim, const int64_t *dims) {
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) count *= dims[i];
  float *v = malloc((size_t)count * sizeof *v);
  for (int64_t i = 0; i < count; i++) v[i] = rndf();
  pbw n = {0}, at = {0};
  pbw_str(&n, 2, name);
  pbw_str(&n, 3, name);
  pbw_str(&n, 4, "Constant");
  pbw_str(&at, 1, "value");
  pbw_tensor(&at, 5, NULL, GPUX_DT_FLOAT, ndim, dims, v, (size_t)count * sizeof *v);
  pbw_int(&at, 20, 4);
  pbw_msg(&n, 5, &at);
  pbw_msg(&m->g, 1, &n);
  free(v);
}

static int opset = 17; /* of the models finish() writes */

/* Finishes the graph (input x of xdims, output `out`) and loads it. */
static gpux_model *finish(model_b *m, int ndim, const int64_t *xdims, const char *out) {
  pbw_str(&m->g, 2, "g");
  pbw_value_info(&m->g, 11, "x", GPUX_DT_FLOAT, ndim, xdims, NULL);
  pbw tt = {0}, tp = {0}, vi = {0};
  pbw_int(&tt, 1, GPUX_DT_FLOAT);
  pbw_msg(&tp, 1, &tt);
  pbw_str(&vi, 1, out);
  pbw_msg(&vi, 2, &tp);
  pbw_msg(&m->g, 12, &vi);
  pbw mp = {0}, os = {0};
  pbw_int(&mp, 1, 8);
  pbw_str(&os, 1, "");
  pbw_int(&os, 2, opset);
  pbw_msg(&mp, 8, &os);
  pbw_msg(&mp, 7, &m->g);
  gpux_model *model = NULL;
  if (gpux_model_load_buffer(mp.data, mp.len, "test", &model)) fail_msg("load: %s", gpux_last_error());
  free(mp.data);
  return model;
}

/* Runs model on x with the rewrite on or off. */
static gpux_tensor run(gpux_model *model, const gpux_tensor *x, int optimize) {
  setenv("GPUX_OPTIMIZE", optimize ? "1" : "0", 1);
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 1};
  gpux_session *s;
  if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
  gpux_tensor y;
  if (gpux_session_run(s, x, 1, &y, 1)) fail_msg("run: %s", gpux_last_error());
  gpux_session_free(s);
  unsetenv("GPUX_OPTIMIZE");
  return y;
}

/* The rewritten graph's count of nodes of op_type. */
static int count_ops(gpux_model *model, const char *op_type) {
  gpux__graph *g;
  assert_int_equal(gpux__graph_optimize(model->graph, &g), 0);
  const gpux__graph *use = g ? g : model->graph;
  int n = 0;
  for (int i = 0; i < use->n_nodes; i++) n += !strcmp(use->nodes[i].op_type, op_type);
  gpux__graph_optimized_free(g);
  return n;
}

/* How many FusedConv nodes of the rewritten graph read the weights named w as they are (not a
 * folded copy, which the rewrite makes only for weights it scales). */
static int fused_reading(gpux_model *model, const char *w) {
  gpux__graph *g;
  assert_int_equal(gpux__graph_optimize(model->graph, &g), 0);
  assert_non_null(g);
  int n = 0;
  for (int i = 0; i < g->n_nodes; i++)
    n += !strcmp(g->nodes[i].op_type, "FusedConv") && !strcmp(g->values[g->nodes[i].in[1]].name, w);
  gpux__graph_optimized_free(g);
  return n;
}

/* Both runs agree to float32 rounding. */
static void check_same(gpux_model *model, int ndim, const int64_t *xdims) {
  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, ndim, xdims), 0);
  for (int64_t i = 0; i < gpux_tensor_count(&x); i++) ((float *)x.data)[i] = rndf() * 3;
  gpux_tensor a = run(model, &x, 0), b = run(model, &x, 1);
  gpux_compare_report r;
  if (gpux_tensor_compare(&b, &a, 1e-4, 1e-5, &r)) fail_msg("optimized run differs: %s", r.message);
  gpux_tensor_free(&x), gpux_tensor_free(&a), gpux_tensor_free(&b);
}

static const int64_t xdims[4] = {1, 4, 7, 9};
static const int64_t ones4[4] = {1, 1, 1, 1};

/* Conv + BatchNormalization + x * clip(x + 3, 0, 6) / 6 + per-channel Mul + Add (from a Constant
 * node): one FusedConv. */
static void test_conv_chain(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[4] = {6, 4, 3, 3}, cd[1] = {6}, pc[4] = {1, 6, 1, 1}, pads[4] = {1, 1, 1, 1};
  init(&m, "w", 4, wd, NAN), init(&m, "b", 1, cd, NAN);
  init(&m, "sc", 1, cd, NAN), init(&m, "bb", 1, cd, NAN), init(&m, "mu", 1, cd, NAN), init(&m, "var", 1, cd, 0.7f);
  init(&m, "three", 0, NULL, 3), init(&m, "zero", 0, NULL, 0), init(&m, "six", 0, NULL, 6);
  init(&m, "k", 4, pc, NAN);
  constant(&m, "shift", 0, NULL);
  attr_b pa = {.name = "pads", .type = 7, .n = 4, .ints = pads};
  node(&m, "Conv", (const char *[]){"x", "w", "b"}, 3, "c", &pa, 1);
  node(&m, "BatchNormalization", (const char *[]){"c", "sc", "bb", "mu", "var"}, 5, "bn", NULL, 0);
  node(&m, "Add", (const char *[]){"bn", "three"}, 2, "t1", NULL, 0);
  node(&m, "Clip", (const char *[]){"t1", "zero", "six"}, 3, "t2", NULL, 0);
  node(&m, "Mul", (const char *[]){"bn", "t2"}, 2, "t3", NULL, 0);
  node(&m, "Div", (const char *[]){"t3", "six"}, 2, "hs", NULL, 0);
  node(&m, "Mul", (const char *[]){"k", "hs"}, 2, "t4", NULL, 0);
  node(&m, "Add", (const char *[]){"t4", "shift"}, 2, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, xdims, "y");
  assert_int_equal(count_ops(model, "FusedConv"), 1);
  assert_int_equal(count_ops(model, "Mul") + count_ops(model, "Add") + count_ops(model, "Constant"), 0);
  assert_int_equal(fused_reading(model, "w"), 0); /* scaled by the BatchNormalization: a copy */
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* A Conv output read twice (by a Relu and as a graph output... here by a second branch) keeps
 * its Relu; a depthwise Conv + LeakyRelu fuses. */
static void test_conv_shared_output(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[4] = {4, 1, 3, 3}, pads[4] = {1, 1, 1, 1};
  init(&m, "w", 4, wd, NAN);
  attr_b attrs[2] = {{.name = "pads", .type = 7, .n = 4, .ints = pads}, {.name = "group", .type = 2, .i = 4}};
  attr_b alpha = {.name = "alpha", .type = 1, .f = 0.1f};
  node(&m, "Conv", (const char *[]){"x", "w"}, 2, "c", attrs, 2);
  node(&m, "Relu", (const char *[]){"c"}, 1, "r", NULL, 0);
  node(&m, "Add", (const char *[]){"c", "r"}, 2, "s", NULL, 0);
  node(&m, "Conv", (const char *[]){"s", "w"}, 2, "c2", attrs, 2);
  node(&m, "LeakyRelu", (const char *[]){"c2"}, 1, "y", &alpha, 1);
  gpux_model *model = finish(&m, 4, xdims, "y");
  assert_int_equal(count_ops(model, "Relu"), 1);
  assert_int_equal(count_ops(model, "Conv"), 1);
  assert_int_equal(count_ops(model, "FusedConv"), 1);
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* Two Convs whose weights and bias come through Identity nodes of one shared initializer (as
 * exporters write equal initializers once): the Identity nodes fold away and each Conv + Relu
 * fuses. */
static void test_conv_identity_weights(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[4] = {4, 4, 3, 3}, cd[1] = {4}, pads[4] = {1, 1, 1, 1};
  init(&m, "w", 4, wd, NAN), init(&m, "b", 1, cd, 0);
  node(&m, "Identity", (const char *[]){"w"}, 1, "w1", NULL, 0);
  node(&m, "Identity", (const char *[]){"w1"}, 1, "w2", NULL, 0);
  node(&m, "Identity", (const char *[]){"b"}, 1, "b1", NULL, 0);
  node(&m, "Identity", (const char *[]){"b"}, 1, "b2", NULL, 0);
  attr_b pa = {.name = "pads", .type = 7, .n = 4, .ints = pads};
  node(&m, "Conv", (const char *[]){"x", "w1", "b1"}, 3, "c", &pa, 1);
  node(&m, "Relu", (const char *[]){"c"}, 1, "r", NULL, 0);
  node(&m, "Conv", (const char *[]){"r", "w2", "b2"}, 3, "c2", &pa, 1);
  node(&m, "Relu", (const char *[]){"c2"}, 1, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, xdims, "y");
  assert_int_equal(count_ops(model, "FusedConv"), 2);
  assert_int_equal(count_ops(model, "Identity") + count_ops(model, "Relu") + count_ops(model, "Conv"), 0);
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* Grouped ConvTranspose + Add (bias) + BatchNormalization + Relu: one FusedConvTranspose. */
static void test_conv_transpose_chain(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[4] = {4, 3, 2, 2}, cd[1] = {6}, pc[3] = {6, 1, 1}, st[2] = {2, 2};
  init(&m, "w", 4, wd, NAN), init(&m, "k", 3, pc, NAN);
  init(&m, "sc", 1, cd, NAN), init(&m, "bb", 1, cd, NAN), init(&m, "mu", 1, cd, NAN), init(&m, "var", 1, cd, 1.3f);
  attr_b attrs[2] = {{.name = "strides", .type = 7, .n = 2, .ints = st}, {.name = "group", .type = 2, .i = 2}};
  node(&m, "ConvTranspose", (const char *[]){"x", "w"}, 2, "c", attrs, 2);
  node(&m, "Add", (const char *[]){"c", "k"}, 2, "cb", NULL, 0);
  node(&m, "BatchNormalization", (const char *[]){"cb", "sc", "bb", "mu", "var"}, 5, "bn", NULL, 0);
  node(&m, "Relu", (const char *[]){"bn"}, 1, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, xdims, "y");
  assert_int_equal(count_ops(model, "FusedConvTranspose"), 1);
  assert_int_equal(count_ops(model, "Relu") + count_ops(model, "BatchNormalization"), 0);
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* SiLU as torch exports it, Conv -> Sigmoid -> Mul(x, s), and the Mul's operands swapped after a
 * depthwise Conv with stride 2: each one FusedConv; where the Sigmoid's result is read again (here
 * by an Add), the nodes stay. */
static void test_conv_silu(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[4] = {4, 4, 3, 3}, dw[4] = {4, 1, 5, 5}, cd[1] = {4}, pads[4] = {1, 1, 1, 1}, p2[4] = {2, 2, 2, 2};
  int64_t st[2] = {2, 2};
  init(&m, "w", 4, wd, NAN), init(&m, "b", 1, cd, NAN), init(&m, "dw", 4, dw, NAN);
  attr_b pa = {.name = "pads", .type = 7, .n = 4, .ints = pads};
  attr_b da[3] = {{.name = "pads", .type = 7, .n = 4, .ints = p2}, {.name = "group", .type = 2, .i = 4},
                  {.name = "strides", .type = 7, .n = 2, .ints = st}};
  node(&m, "Conv", (const char *[]){"x", "w", "b"}, 3, "c", &pa, 1);
  node(&m, "Sigmoid", (const char *[]){"c"}, 1, "s", NULL, 0);
  node(&m, "Mul", (const char *[]){"c", "s"}, 2, "a", NULL, 0);
  node(&m, "Conv", (const char *[]){"a", "dw"}, 2, "c2", da, 3);
  node(&m, "Sigmoid", (const char *[]){"c2"}, 1, "s2", NULL, 0);
  node(&m, "Mul", (const char *[]){"s2", "c2"}, 2, "a2", NULL, 0);
  node(&m, "Conv", (const char *[]){"a2", "w", "b"}, 3, "c3", &pa, 1);
  node(&m, "Sigmoid", (const char *[]){"c3"}, 1, "s3", NULL, 0);
  node(&m, "Mul", (const char *[]){"c3", "s3"}, 2, "a3", NULL, 0);
  node(&m, "Add", (const char *[]){"a3", "s3"}, 2, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, xdims, "y");
  assert_int_equal(count_ops(model, "FusedConv"), 2);
  assert_int_equal(count_ops(model, "Conv"), 1);
  assert_int_equal(count_ops(model, "Sigmoid") + count_ops(model, "Mul"), 2);
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* ResNet's shortcuts: Conv -> Add(y, r) -> Relu with r made before the Conv fuses (r added before
 * the activation); in a downsampling block, where the main branch's last Conv comes before the
 * projection Conv, the Add fuses into the projection; a residual that broadcasts ([1, 4, 1, 1])
 * is added in a second pass; and no per-channel constant after the residual folds into W. */
static void test_conv_residual(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[4] = {4, 4, 3, 3}, w1[4] = {4, 4, 1, 1}, cd[1] = {4}, pads[4] = {1, 1, 1, 1}, pc[4] = {1, 4, 1, 1};
  init(&m, "w", 4, wd, NAN), init(&m, "b", 1, cd, NAN), init(&m, "w1", 4, w1, NAN), init(&m, "k", 4, pc, NAN);
  init(&m, "bc", 4, pc, NAN);
  attr_b pa = {.name = "pads", .type = 7, .n = 4, .ints = pads};
  node(&m, "Relu", (const char *[]){"x"}, 1, "x0", NULL, 0);
  node(&m, "Conv", (const char *[]){"x0", "w", "b"}, 3, "c1", &pa, 1);
  node(&m, "Add", (const char *[]){"c1", "x0"}, 2, "a1", NULL, 0);
  node(&m, "Relu", (const char *[]){"a1"}, 1, "r1", NULL, 0);            /* fused: Conv + Add + Relu */
  node(&m, "Conv", (const char *[]){"r1", "w", "b"}, 3, "c2", &pa, 1);  /* main branch, before ... */
  node(&m, "Conv", (const char *[]){"r1", "w1", "b"}, 3, "c3", NULL, 0); /* ... the projection */
  node(&m, "Add", (const char *[]){"c2", "c3"}, 2, "a2", NULL, 0);
  node(&m, "Relu", (const char *[]){"a2"}, 1, "r2", NULL, 0);            /* fused into the projection */
  node(&m, "Sigmoid", (const char *[]){"r2"}, 1, "s", NULL, 0);
  node(&m, "Mul", (const char *[]){"s", "bc"}, 2, "sb", NULL, 0);        /* [1, 4, 1, 1], computed */
  node(&m, "Conv", (const char *[]){"r2", "w1"}, 2, "c4", NULL, 0);
  node(&m, "Add", (const char *[]){"sb", "c4"}, 2, "a4", NULL, 0);       /* broadcast residual */
  node(&m, "Mul", (const char *[]){"a4", "k"}, 2, "y", NULL, 0);         /* stays a Mul */
  gpux_model *model = finish(&m, 4, xdims, "y");
  assert_int_equal(count_ops(model, "FusedConv"), 3);
  assert_int_equal(count_ops(model, "Conv"), 1); /* the main branch's last, with nothing to fuse */
  assert_int_equal(count_ops(model, "Add"), 0);
  assert_int_equal(count_ops(model, "Relu"), 1);
  assert_int_equal(count_ops(model, "Mul"), 2);
  /* nothing scales their weights: the FusedConvs read the model's w and w1, no copies */
  assert_int_equal(fused_reading(model, "w") + fused_reading(model, "w1"), 3);
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* Squeeze-and-excitation: x + x * hardsigmoid(conv(pool(x))) becomes one Mul. */
static void test_squeeze_excitation(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[4] = {4, 4, 1, 1}, cd[1] = {4};
  init(&m, "w", 4, wd, NAN), init(&m, "b", 1, cd, NAN);
  node(&m, "GlobalAveragePool", (const char *[]){"x"}, 1, "p", NULL, 0);
  node(&m, "Conv", (const char *[]){"p", "w", "b"}, 3, "c", NULL, 0);
  node(&m, "HardSigmoid", (const char *[]){"c"}, 1, "s", NULL, 0);
  node(&m, "Mul", (const char *[]){"x", "s"}, 2, "xs", NULL, 0);
  node(&m, "Add", (const char *[]){"xs", "x"}, 2, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, xdims, "y");
  assert_int_equal(count_ops(model, "Mul"), 1);
  assert_int_equal(count_ops(model, "Add"), 0);
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* Conv + LeakyRelu + Max and Min with scalars (a clamp after the activation), and Conv + Max
 * with a scalar (the activation Clip) then a Relu that may not fuse after it. */
static void test_conv_bounds(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[4] = {5, 4, 1, 3}, pads[4] = {0, 1, 0, 1};
  init(&m, "w", 4, wd, NAN), init(&m, "lo", 0, NULL, -0.4f), init(&m, "hi", 0, NULL, 1.5f);
  attr_b pa = {.name = "pads", .type = 7, .n = 4, .ints = pads}, alpha = {.name = "alpha", .type = 1, .f = 0.2f};
  node(&m, "Conv", (const char *[]){"x", "w"}, 2, "c", &pa, 1);
  node(&m, "LeakyRelu", (const char *[]){"c"}, 1, "l", &alpha, 1);
  node(&m, "Max", (const char *[]){"l", "lo"}, 2, "mx", NULL, 0);
  node(&m, "Min", (const char *[]){"hi", "mx"}, 2, "a", NULL, 0);
  int64_t w2d[4] = {3, 5, 1, 1};
  init(&m, "w2", 4, w2d, NAN);
  node(&m, "Conv", (const char *[]){"a", "w2"}, 2, "c2", NULL, 0);
  node(&m, "Max", (const char *[]){"c2", "lo"}, 2, "m2", NULL, 0);
  node(&m, "Relu", (const char *[]){"m2"}, 1, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, xdims, "y");
  assert_int_equal(count_ops(model, "FusedConv"), 2);
  assert_int_equal(count_ops(model, "Max") + count_ops(model, "Min") + count_ops(model, "LeakyRelu"), 0);
  assert_int_equal(count_ops(model, "Relu"), 1);
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* A Conv + Relu inside an If branch, on weights the branch captures from the main graph, fuses
 * in the branch. */
static void test_nested_graph(void **state) {
  (void)state;
  model_b m = {0}, then_b = {0}, else_b = {0};
  int64_t wd[4] = {3, 4, 3, 3}, pads[4] = {1, 1, 1, 1};
  init(&m, "w", 4, wd, NAN);
  uint8_t yes = 1;
  pbw_tensor(&m.g, 5, "cond", 9 /* bool */, 0, NULL, &yes, 1);
  attr_b pa = {.name = "pads", .type = 7, .n = 4, .ints = pads};
  node(&then_b, "Conv", (const char *[]){"x", "w"}, 2, "tc", &pa, 1);
  node(&then_b, "Relu", (const char *[]){"tc"}, 1, "ty", NULL, 0);
  node(&else_b, "Conv", (const char *[]){"x", "w"}, 2, "ey", &pa, 1);
  model_b *branches[2] = {&then_b, &else_b};
  const char *outs[2] = {"ty", "ey"}, *names[2] = {"then_branch", "else_branch"};
  pbw n = {0};
  pbw_str(&n, 1, "cond");
  pbw_str(&n, 2, "y");
  pbw_str(&n, 3, "if");
  pbw_str(&n, 4, "If");
  for (int b = 0; b < 2; b++) {
    pbw tt = {0}, tp = {0}, vi = {0}, at = {0};
    pbw_str(&branches[b]->g, 2, names[b]);
    pbw_int(&tt, 1, GPUX_DT_FLOAT);
    pbw_msg(&tp, 1, &tt);
    pbw_str(&vi, 1, outs[b]);
    pbw_msg(&vi, 2, &tp);
    pbw_msg(&branches[b]->g, 12, &vi);
    pbw_str(&at, 1, names[b]);
    pbw_msg(&at, 6, &branches[b]->g);
    pbw_int(&at, 20, 5);
    pbw_msg(&n, 5, &at);
  }
  pbw_msg(&m.g, 1, &n);
  gpux_model *model = finish(&m, 4, xdims, "y");
  gpux__graph *g;
  assert_int_equal(gpux__graph_optimize(model->graph, &g), 0);
  assert_non_null(g);
  const gpux__attr *tb = gpux__node_attr(&g->nodes[0], "then_branch");
  assert_non_null(tb);
  assert_int_equal(tb->g->n_nodes, 1);
  assert_string_equal(tb->g->nodes[0].op_type, "FusedConv");
  gpux__graph_optimized_free(g);
  check_same(model, 4, xdims);
  gpux_model_free(model);
}

/* ---- transformer blocks (runtime/fuse-transformer.c) ---- */

static const int64_t tdims[3] = {2, 7, 16}; /* [batch, sequence, hidden] */

/* x * 0.5 * (1 + Erf(x / sqrt(2))) as torch writes it: out = gelu(in). */
static void gelu_erf(model_b *m, const char *in, const char *out, const char *tag) {
  char a[5][32];
  for (int i = 0; i < 5; i++) snprintf(a[i], sizeof a[i], "%s_g%d", tag, i);
  node(m, "Div", (const char *[]){in, "sqrt2"}, 2, a[0], NULL, 0);
  node(m, "Erf", (const char *[]){a[0]}, 1, a[1], NULL, 0);
  node(m, "Add", (const char *[]){a[1], "one"}, 2, a[2], NULL, 0);
  node(m, "Mul", (const char *[]){in, a[2]}, 2, a[3], NULL, 0);
  node(m, "Mul", (const char *[]){a[3], "half"}, 2, out, NULL, 0);
}

/* LayerNorm over the last axis written out (torch before opset 17): out = ln(in) * g + b, with
 * ReduceMean's axes an attribute (opset < 18) or an input (opset 18). */
static void layernorm(model_b *m, const char *in, const char *g, const char *b, const char *out, const char *tag) {
  char a[8][32];
  for (int i = 0; i < 8; i++) snprintf(a[i], sizeof a[i], "%s_l%d", tag, i);
  int64_t last[1] = {-1};
  attr_b ax = {.name = "axes", .type = 7, .n = 1, .ints = last};
  if (opset >= 18) {
    node(m, "ReduceMean", (const char *[]){in, "axes"}, 2, a[0], NULL, 0);
  } else {
    node(m, "ReduceMean", (const char *[]){in}, 1, a[0], &ax, 1);
  }
  node(m, "Sub", (const char *[]){in, a[0]}, 2, a[1], NULL, 0);
  node(m, "Pow", (const char *[]){a[1], "two"}, 2, a[2], NULL, 0);
  if (opset >= 18) node(m, "ReduceMean", (const char *[]){a[2], "axes"}, 2, a[3], NULL, 0);
  else node(m, "ReduceMean", (const char *[]){a[2]}, 1, a[3], &ax, 1);
  node(m, "Add", (const char *[]){a[3], "eps"}, 2, a[4], NULL, 0);
  node(m, "Sqrt", (const char *[]){a[4]}, 1, a[5], NULL, 0);
  node(m, "Div", (const char *[]){a[1], a[5]}, 2, a[6], NULL, 0);
  node(m, "Mul", (const char *[]){a[6], g}, 2, a[7], NULL, 0);
  node(m, "Add", (const char *[]){a[7], b}, 2, out, NULL, 0);
}

static void transformer_consts(model_b *m) {
  init(m, "sqrt2", 0, NULL, (float)M_SQRT2), init(m, "one", 0, NULL, 1), init(m, "half", 0, NULL, 0.5f);
  init(m, "two", 0, NULL, 2), init(m, "eps", 0, NULL, 1e-5f), init(m, "three", 0, NULL, 3);
  init(m, "c0", 0, NULL, 0.044715f), init(m, "c1", 0, NULL, 0.7978845608f);
  int64_t one[1] = {1};
  int64_t minus1 = -1;
  pbw_tensor(&m->g, 5, "axes", GPUX_DT_INT64, 1, one, &minus1, sizeof minus1);
}

/* A BERT layer's feed-forward half: MatMul + bias + exact GELU, MatMul + bias + the residual Add,
 * and a written-out LayerNorm: two FusedMatMul and one LayerNormalization; at opset 17 and 18. */
static void test_bert_ffn(void **state) {
  (void)state;
  for (int o = 17; o <= 18; o++) {
    opset = o;
    model_b m = {0};
    int64_t w1d[2] = {16, 64}, b1d[1] = {64}, w2d[2] = {64, 16}, hd[1] = {16};
    transformer_consts(&m);
    init(&m, "w1", 2, w1d, NAN), init(&m, "b1", 1, b1d, NAN), init(&m, "w2", 2, w2d, NAN), init(&m, "b2", 1, hd, NAN);
    init(&m, "g", 1, hd, NAN), init(&m, "b", 1, hd, NAN);
    node(&m, "MatMul", (const char *[]){"x", "w1"}, 2, "h1", NULL, 0);
    node(&m, "Add", (const char *[]){"b1", "h1"}, 2, "h2", NULL, 0);
    gelu_erf(&m, "h2", "h3", "a");
    node(&m, "MatMul", (const char *[]){"h3", "w2"}, 2, "h4", NULL, 0);
    node(&m, "Add", (const char *[]){"h4", "b2"}, 2, "h5", NULL, 0);
    node(&m, "Add", (const char *[]){"x", "h5"}, 2, "h6", NULL, 0);
    layernorm(&m, "h6", "g", "b", "y", "n");
    gpux_model *model = finish(&m, 3, tdims, "y");
    assert_int_equal(count_ops(model, "FusedMatMul"), 2);
    assert_int_equal(count_ops(model, "LayerNormalization"), 1);
    assert_int_equal(count_ops(model, "Add"), 0); /* the residual is the second FusedMatMul's */
    assert_int_equal(count_ops(model, "MatMul") + count_ops(model, "Erf") + count_ops(model, "Gelu") +
                     count_ops(model, "ReduceMean") + count_ops(model, "Mul") + count_ops(model, "Div"), 0);
    check_same(model, 3, tdims);
    gpux_model_free(model);
  }
  opset = 17;
}

/* GPT-2's MLP: Gemm (Conv1D) on the flattened rows, a Reshape back, then the tanh GELU written
 * with Pow: one FusedMatMul before the Reshape. Then the tanh GELU with x * x * x on a value that
 * no MatMul makes: one Gelu. */
static void test_gpt2_mlp(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[2] = {16, 48}, bd[1] = {48}, flat[2] = {14, 16}, back[3] = {2, 7, 48};
  transformer_consts(&m);
  init(&m, "w", 2, wd, NAN), init(&m, "bias", 1, bd, NAN);
  pbw_tensor(&m.g, 5, "flat", GPUX_DT_INT64, 1, (int64_t[]){2}, flat, sizeof flat);
  pbw_tensor(&m.g, 5, "back", GPUX_DT_INT64, 1, (int64_t[]){3}, back, sizeof back);
  node(&m, "Reshape", (const char *[]){"x", "flat"}, 2, "x2", NULL, 0);
  node(&m, "Gemm", (const char *[]){"x2", "w", "bias"}, 3, "h", NULL, 0);
  node(&m, "Reshape", (const char *[]){"h", "back"}, 2, "h3", NULL, 0);
  for (int k = 0; k < 2; k++) { /* 0.5 * x * (1 + tanh(c1 * (x + c0 * x^3))) on h3, then on its result */
    const char *in = k ? "y1" : "h3";
    char t[9][16];
    for (int i = 0; i < 9; i++) snprintf(t[i], sizeof t[i], "t%d_%d", k, i);
    node(&m, "Mul", (const char *[]){"half", in}, 2, t[0], NULL, 0);
    if (!k) {
      node(&m, "Pow", (const char *[]){in, "three"}, 2, t[1], NULL, 0);
    } else {
      node(&m, "Mul", (const char *[]){in, in}, 2, t[8], NULL, 0);
      node(&m, "Mul", (const char *[]){t[8], in}, 2, t[1], NULL, 0);
    }
    node(&m, "Mul", (const char *[]){"c0", t[1]}, 2, t[2], NULL, 0);
    node(&m, "Add", (const char *[]){in, t[2]}, 2, t[3], NULL, 0);
    node(&m, "Mul", (const char *[]){"c1", t[3]}, 2, t[4], NULL, 0);
    node(&m, "Tanh", (const char *[]){t[4]}, 1, t[5], NULL, 0);
    node(&m, "Add", (const char *[]){"one", t[5]}, 2, t[6], NULL, 0);
    node(&m, "Mul", (const char *[]){t[0], t[6]}, 2, k ? "y" : "y1", NULL, 0);
  }
  gpux_model *model = finish(&m, 3, tdims, "y");
  assert_int_equal(count_ops(model, "FusedMatMul"), 1);
  assert_int_equal(count_ops(model, "Gelu"), 1);
  assert_int_equal(count_ops(model, "Reshape"), 2);
  assert_int_equal(count_ops(model, "Gemm") + count_ops(model, "Tanh") + count_ops(model, "Pow") +
                   count_ops(model, "Mul") + count_ops(model, "Add"), 0);
  check_same(model, 3, tdims);
  gpux_model_free(model);
}

/* The dynamo exporter's GPT-2 MLP: a Gemm without C (no bias), a Reshape, the exact GELU; a
 * MatMul + Relu with no bias; a Gemm + Tanh (BERT's pooler). */
static void test_no_bias(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[2] = {16, 48}, w2d[2] = {48, 16}, flat[2] = {14, 16}, back[3] = {2, 7, 48};
  transformer_consts(&m);
  init(&m, "w", 2, wd, NAN), init(&m, "w2", 2, w2d, NAN);
  pbw_tensor(&m.g, 5, "flat", GPUX_DT_INT64, 1, (int64_t[]){2}, flat, sizeof flat);
  pbw_tensor(&m.g, 5, "back", GPUX_DT_INT64, 1, (int64_t[]){3}, back, sizeof back);
  node(&m, "Reshape", (const char *[]){"x", "flat"}, 2, "x2", NULL, 0);
  node(&m, "Gemm", (const char *[]){"x2", "w"}, 2, "h", NULL, 0);
  node(&m, "Reshape", (const char *[]){"h", "back"}, 2, "h3", NULL, 0);
  gelu_erf(&m, "h3", "h4", "a");
  node(&m, "MatMul", (const char *[]){"h4", "w2"}, 2, "h5", NULL, 0);
  node(&m, "Relu", (const char *[]){"h5"}, 1, "h6", NULL, 0);
  init(&m, "w3", 2, (int64_t[]){16, 16}, NAN), init(&m, "b3", 1, (int64_t[]){16}, NAN);
  node(&m, "Reshape", (const char *[]){"h6", "flat"}, 2, "h6f", NULL, 0);
  node(&m, "Gemm", (const char *[]){"h6f", "w3", "b3"}, 3, "h7", NULL, 0); /* BERT's pooler */
  node(&m, "Tanh", (const char *[]){"h7"}, 1, "y", NULL, 0);
  gpux_model *model = finish(&m, 3, tdims, "y");
  assert_int_equal(count_ops(model, "FusedMatMul"), 3);
  assert_int_equal(count_ops(model, "Reshape"), 3);
  assert_int_equal(count_ops(model, "Gemm") + count_ops(model, "MatMul") + count_ops(model, "Relu") + count_ops(model, "Erf") +
                   count_ops(model, "Tanh"), 0);
  check_same(model, 3, tdims);
  gpux_model_free(model);
}

/* A residual of another shape than the product's ([7, 16] for [2, 7, 16]) fuses too and is
 * broadcast when run; a MatMul with only a residual after it fuses. */
static void test_residual_broadcast(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[2] = {16, 16}, bd[1] = {16}, ax0[1] = {0};
  init(&m, "w", 2, wd, NAN), init(&m, "bias", 1, bd, NAN);
  attr_b attrs[2] = {{.name = "axes", .type = 7, .n = 1, .ints = ax0}, {.name = "keepdims", .type = 2, .i = 0}};
  node(&m, "ReduceMean", (const char *[]){"x"}, 1, "r", attrs, 2);  /* [7, 16] */
  node(&m, "MatMul", (const char *[]){"x", "w"}, 2, "p", NULL, 0);
  node(&m, "Add", (const char *[]){"p", "bias"}, 2, "pb", NULL, 0);
  node(&m, "Add", (const char *[]){"r", "pb"}, 2, "h", NULL, 0);
  node(&m, "MatMul", (const char *[]){"h", "w"}, 2, "q", NULL, 0);
  node(&m, "Add", (const char *[]){"q", "h"}, 2, "y", NULL, 0);
  gpux_model *model = finish(&m, 3, tdims, "y");
  assert_int_equal(count_ops(model, "FusedMatMul"), 2);
  assert_int_equal(count_ops(model, "Add") + count_ops(model, "MatMul"), 0);
  check_same(model, 3, tdims);
  gpux_model_free(model);
}

/* The logits of a tied embedding: MatMul by Transpose(wte) (perm [1, 0], and without perm) becomes
 * a FusedMatMul reading wte with transB, no Transpose left; wte's other reader (the Gather of the
 * token embeddings) keeps it. A Transpose another node reads too stays, and so does its MatMul. */
static void test_tied_embedding(void **state) {
  (void)state;
  for (int with_perm = 0; with_perm < 2; with_perm++) {
    model_b m = {0};
    int64_t ed[2] = {24, 16}, idd[1] = {1};
    int64_t perm[2] = {1, 0}, ids = 3;
    init(&m, "wte", 2, ed, NAN);
    init(&m, "wte2", 2, ed, NAN);
    pbw_tensor(&m.g, 5, "ids", GPUX_DT_INT64, 1, idd, &ids, sizeof ids);
    attr_b pa = {.name = "perm", .type = 7, .n = 2, .ints = perm};
    node(&m, "Gather", (const char *[]){"wte", "ids"}, 2, "emb", NULL, 0);
    node(&m, "Add", (const char *[]){"x", "emb"}, 2, "h", NULL, 0);
    node(&m, "Transpose", (const char *[]){"wte"}, 1, "wteT", &pa, with_perm);
    node(&m, "MatMul", (const char *[]){"h", "wteT"}, 2, "logits", NULL, 0);
    /* a Transpose that something else reads as well stays */
    node(&m, "Transpose", (const char *[]){"wte2"}, 1, "w2T", &pa, with_perm);
    node(&m, "MatMul", (const char *[]){"h", "w2T"}, 2, "l2", NULL, 0);
    node(&m, "ReduceSum", (const char *[]){"w2T"}, 1, "s", NULL, 0);
    node(&m, "Add", (const char *[]){"l2", "s"}, 2, "l3", NULL, 0);
    node(&m, "Add", (const char *[]){"logits", "l3"}, 2, "y", NULL, 0);
    gpux_model *model = finish(&m, 3, tdims, "y");
    assert_int_equal(count_ops(model, "FusedMatMul"), 1);
    assert_int_equal(count_ops(model, "Transpose"), 1);
    assert_int_equal(count_ops(model, "MatMul"), 1);
    check_same(model, 3, tdims);
    gpux_model_free(model);
  }
}

/* What may not fuse: a MatMul whose product is also read elsewhere, a bias of the wrong shape, a
 * GELU whose inner value is a graph output, a LayerNorm over another axis. MatMul + bias + Relu
 * with the bias first fuses. */
static void test_transformer_unfused(void **state) {
  (void)state;
  model_b m = {0};
  int64_t wd[2] = {16, 16}, bd[1] = {16}, b2d[2] = {7, 16}, one[1] = {1};
  transformer_consts(&m);
  init(&m, "w", 2, wd, NAN), init(&m, "bias", 1, bd, NAN), init(&m, "bias2", 2, b2d, NAN);
  init(&m, "g", 1, bd, NAN), init(&m, "b", 1, bd, NAN);
  node(&m, "MatMul", (const char *[]){"x", "w"}, 2, "p", NULL, 0);
  node(&m, "Add", (const char *[]){"p", "bias"}, 2, "pb", NULL, 0);
  node(&m, "Add", (const char *[]){"p", "pb"}, 2, "s1", NULL, 0);     /* p read twice */
  node(&m, "MatMul", (const char *[]){"s1", "w"}, 2, "q", NULL, 0);
  node(&m, "Add", (const char *[]){"q", "bias2"}, 2, "qb", NULL, 0);  /* [7, 16] bias */
  node(&m, "MatMul", (const char *[]){"qb", "w"}, 2, "r", NULL, 0);
  node(&m, "Add", (const char *[]){"bias", "r"}, 2, "rb", NULL, 0);
  node(&m, "Relu", (const char *[]){"rb"}, 1, "rr", NULL, 0);         /* fuses */
  gelu_erf(&m, "rr", "ge", "e");
  node(&m, "Add", (const char *[]){"ge", "e_g2"}, 2, "s2", NULL, 0);  /* e_g2 read outside */
  int64_t ax1[1] = {1};
  attr_b ax = {.name = "axes", .type = 7, .n = 1, .ints = ax1};
  node(&m, "ReduceMean", (const char *[]){"s2"}, 1, "mu", &ax, 1);   /* over axis 1 */
  node(&m, "Sub", (const char *[]){"s2", "mu"}, 2, "d", NULL, 0);
  node(&m, "Pow", (const char *[]){"d", "two"}, 2, "d2", NULL, 0);
  node(&m, "ReduceMean", (const char *[]){"d2"}, 1, "var", &ax, 1);
  node(&m, "Add", (const char *[]){"var", "eps"}, 2, "ve", NULL, 0);
  node(&m, "Sqrt", (const char *[]){"ve"}, 1, "sd", NULL, 0);
  node(&m, "Div", (const char *[]){"d", "sd"}, 2, "nd", NULL, 0);
  node(&m, "Mul", (const char *[]){"nd", "g"}, 2, "ng", NULL, 0);
  node(&m, "Add", (const char *[]){"ng", "b"}, 2, "y", NULL, 0);
  (void)one;
  gpux_model *model = finish(&m, 3, tdims, "y");
  assert_int_equal(count_ops(model, "FusedMatMul"), 1);
  assert_int_equal(count_ops(model, "MatMul"), 2);
  assert_int_equal(count_ops(model, "Relu") + count_ops(model, "Gelu") + count_ops(model, "LayerNormalization"), 0);
  assert_int_equal(count_ops(model, "Erf") + count_ops(model, "ReduceMean"), 3);
  check_same(model, 3, tdims);
  gpux_model_free(model);
}

/* Nothing to rewrite: no copy is made. */
static void test_nothing(void **state) {
  (void)state;
  model_b m = {0};
  node(&m, "Relu", (const char *[]){"x"}, 1, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, ones4, "y");
  gpux__graph *g = NULL;
  assert_int_equal(gpux__graph_optimize(model->graph, &g), 0);
  assert_null(g);
  gpux_model_free(model);
}

/* The rewritten graph's count of nodes of op_type with the CPU backend's channels-last layout. */
static int count_ops_cl(gpux_model *model, const char *op_type) {
  gpux__graph *g;
  gpux__optimize_opts oo = {.last_position = -1, .channels_last = 1};
  assert_int_equal(gpux__graph_optimize_with(model->graph, &oo, &g), 0);
  const gpux__graph *use = g ? g : model->graph;
  int n = 0;
  for (int i = 0; i < use->n_nodes; i++) n += !strcmp(use->nodes[i].op_type, op_type);
  gpux__graph_optimized_free(g);
  return n;
}

/* Runs model on the CPU (2 threads) with GPUX_CHANNELS_LAST=on. */
static gpux_tensor run_cl(gpux_model *model, const gpux_tensor *x, const char *on) {
  setenv("GPUX_CHANNELS_LAST", on, 1);
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 2};
  gpux_session *s;
  if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
  gpux_tensor y;
  if (gpux_session_run(s, x, 1, &y, 1)) fail_msg("run: %s", gpux_last_error());
  gpux_session_free(s);
  unsetenv("GPUX_CHANNELS_LAST");
  return y;
}

/* model's output on random X of dims xd is the same with channels-last regions as without, to
 * within atol + 1e-4 of the value */
static void expect_close_with_channels_last(gpux_model *model, const int64_t xd[4], double atol) {
  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 4, xd), 0);
  for (int64_t i = 0; i < gpux_tensor_count(&x); i++) ((float *)x.data)[i] = rndf();
  gpux_tensor a = run_cl(model, &x, "0"), b = run_cl(model, &x, "1");
  assert_int_equal(b.ndim, 4);
  assert_memory_equal(a.dims, b.dims, 4 * sizeof *a.dims);
  gpux_compare_report r;
  if (gpux_tensor_compare(&b, &a, 1e-4, atol, &r)) fail_msg("channels-last run differs: %s", r.message);
  gpux_tensor_free(&x), gpux_tensor_free(&a), gpux_tensor_free(&b);
}

static void expect_same_with_channels_last(gpux_model *model, const int64_t xd[4]) {
  expect_close_with_channels_last(model, xd, 1e-4);
}

/* runtime/channels-last.c: on a batch of 2, nine convolutions of 16 to 64 channels (3x3 with
 * stride 2 and pads, 1x1, a window of the whole plane whose [2, 64, 1, 1] is a residual that
 * broadcasts, a residual of Y's shape, a value read in the middle by a Sigmoid): the eight whose
 * residuals are made by convolutions become one region of gpux.ConvNHWC with three Transposes
 * (x in, c2 and c7 out); c8, whose residual s is made outside, stays. The result is the NCHW
 * one's. Two convolutions alone form no region, nor do any with GPUX_CHANNELS_LAST=0 (where
 * conv-gemm.c's kernel runs at all). */
static void test_channels_last(void **state) {
  (void)state;
  model_b m = {0};
  int64_t w3[4] = {64, 16, 3, 3}, w33[4] = {64, 64, 3, 3}, w1[4] = {64, 64, 1, 1}, wp[4] = {64, 64, 5, 6};
  int64_t cd[1] = {64}, pads[4] = {1, 1, 1, 1}, s2[2] = {2, 2}, xd[4] = {2, 16, 10, 12};
  init(&m, "wa", 4, w3, NAN), init(&m, "wb", 4, w33, NAN), init(&m, "wc", 4, w1, NAN), init(&m, "b", 1, cd, NAN);
  init(&m, "wp", 4, wp, NAN);
  attr_b pa = {.name = "pads", .type = 7, .n = 4, .ints = pads};
  attr_b st[2] = {{.name = "pads", .type = 7, .n = 4, .ints = pads}, {.name = "strides", .type = 7, .n = 2, .ints = s2}};
  node(&m, "Conv", (const char *[]){"x", "wa", "b"}, 3, "c1", st, 2);
  node(&m, "Relu", (const char *[]){"c1"}, 1, "r1", NULL, 0);
  node(&m, "Conv", (const char *[]){"r1", "wc", "b"}, 3, "c2", NULL, 0);
  node(&m, "Add", (const char *[]){"c2", "r1"}, 2, "a2", NULL, 0);
  node(&m, "Relu", (const char *[]){"a2"}, 1, "r2", NULL, 0);
  node(&m, "Sigmoid", (const char *[]){"r2"}, 1, "s", NULL, 0);             /* read outside */
  node(&m, "Conv", (const char *[]){"r2", "wb", "b"}, 3, "c3", &pa, 1);
  node(&m, "Conv", (const char *[]){"c3", "wc"}, 2, "c4", NULL, 0);
  node(&m, "Conv", (const char *[]){"c4", "wb", "b"}, 3, "c5", &pa, 1);
  node(&m, "Relu", (const char *[]){"c5"}, 1, "r5", NULL, 0);
  node(&m, "Conv", (const char *[]){"r5", "wp"}, 2, "cp", NULL, 0);        /* [2, 64, 1, 1] */
  node(&m, "Conv", (const char *[]){"r5", "wc", "b"}, 3, "c6", NULL, 0);
  node(&m, "Add", (const char *[]){"c6", "cp"}, 2, "a6", NULL, 0);         /* broadcast residual */
  node(&m, "Relu", (const char *[]){"a6"}, 1, "r6", NULL, 0);
  node(&m, "Conv", (const char *[]){"r6", "wb", "b"}, 3, "c7", &pa, 1);
  node(&m, "Conv", (const char *[]){"c7", "wc", "b"}, 3, "c8", NULL, 0);
  node(&m, "Add", (const char *[]){"c8", "s"}, 2, "y", NULL, 0);           /* residual from outside */
  gpux_model *model = finish(&m, 4, xd, "y");
  if (count_ops_cl(model, "ConvNHWC") == 0) { /* no conv-gemm.c kernel on this machine */
    gpux_model_free(model);
    skip();
  }
  assert_int_equal(count_ops_cl(model, "ConvNHWC"), 8);
  assert_int_equal(count_ops_cl(model, "FusedConv"), 1);
  assert_int_equal(count_ops_cl(model, "Transpose"), 3);
  setenv("GPUX_CHANNELS_LAST", "0", 1);
  assert_int_equal(count_ops_cl(model, "ConvNHWC"), 0);
  unsetenv("GPUX_CHANNELS_LAST");
  expect_same_with_channels_last(model, xd);
  gpux_model_free(model);

  model_b m2 = {0};
  init(&m2, "wa", 4, w3, NAN), init(&m2, "wc", 4, w1, NAN);
  node(&m2, "Conv", (const char *[]){"x", "wa"}, 2, "c1", st, 2);
  node(&m2, "Conv", (const char *[]){"c1", "wc"}, 2, "y", NULL, 0);
  model = finish(&m2, 4, xd, "y");
  assert_int_equal(count_ops_cl(model, "ConvNHWC"), 0);
  gpux_model_free(model);
}

/* runtime/channels-last.c with depthwise convolutions (group = channels) in a region, on a batch
 * of 2 and 72 channels (four and a half vectors): a 1x1 of 16 -> 72 channels, a depthwise 3x3 of
 * stride 2 with pads, a depthwise 5x5 of dilation 2 with uneven pads, a 1x1 whose residual is the
 * 5x5's output, a depthwise 3x3 of stride (1, 2) without pads, and a squeeze-excitation between
 * the two depthwise convolutions (GlobalAveragePool, 1x1 of 72 -> 24 and 24 -> 72, Mul by the
 * scale): one region of five gpux.ConvNHWC, the excitation's pool and Mul in it, one Transpose in,
 * one out and one of the scale, the result the NCHW one's. */
static void test_channels_last_depthwise(void **state) {
  (void)state;
  model_b m = {0};
  int64_t w1[4] = {72, 16, 1, 1}, w2[4] = {72, 72, 1, 1}, wd3[4] = {72, 1, 3, 3}, wd5[4] = {72, 1, 5, 5};
  int64_t cd[1] = {72}, pads1[4] = {1, 1, 1, 1}, pads2[4] = {2, 3, 1, 4}, s2[2] = {2, 2}, s12[2] = {1, 2};
  int64_t d2[2] = {2, 2}, xd[4] = {2, 16, 23, 19};
  init(&m, "w1", 4, w1, NAN), init(&m, "w2", 4, w2, NAN), init(&m, "wd3", 4, wd3, NAN);
  init(&m, "wd5", 4, wd5, NAN), init(&m, "b", 1, cd, NAN);
  int64_t ws1[4] = {24, 72, 1, 1}, ws2[4] = {72, 24, 1, 1};
  init(&m, "ws1", 4, ws1, NAN), init(&m, "ws2", 4, ws2, NAN);
  attr_b a3[3] = {{.name = "pads", .type = 7, .n = 4, .ints = pads1}, {.name = "strides", .type = 7, .n = 2, .ints = s2},
                  {.name = "group", .type = 2, .i = 72}};
  attr_b a5[3] = {{.name = "pads", .type = 7, .n = 4, .ints = pads2}, {.name = "dilations", .type = 7, .n = 2, .ints = d2},
                  {.name = "group", .type = 2, .i = 72}};
  attr_b av[2] = {{.name = "strides", .type = 7, .n = 2, .ints = s12}, {.name = "group", .type = 2, .i = 72}};
  node(&m, "Conv", (const char *[]){"x", "w1", "b"}, 3, "c1", NULL, 0);
  node(&m, "HardSwish", (const char *[]){"c1"}, 1, "h1", NULL, 0);
  node(&m, "Conv", (const char *[]){"h1", "wd3", "b"}, 3, "c2", a3, 3);
  node(&m, "Relu", (const char *[]){"c2"}, 1, "r2", NULL, 0);
  node(&m, "GlobalAveragePool", (const char *[]){"r2"}, 1, "g2", NULL, 0);
  node(&m, "Conv", (const char *[]){"g2", "ws1"}, 2, "e1", NULL, 0);
  node(&m, "Relu", (const char *[]){"e1"}, 1, "e1r", NULL, 0);
  node(&m, "Conv", (const char *[]){"e1r", "ws2", "b"}, 3, "e2", NULL, 0);
  node(&m, "Sigmoid", (const char *[]){"e2"}, 1, "e2s", NULL, 0);
  node(&m, "Mul", (const char *[]){"e2s", "r2"}, 2, "m2", NULL, 0);
  node(&m, "Conv", (const char *[]){"m2", "wd5"}, 2, "c3", a5, 3);
  node(&m, "Conv", (const char *[]){"c3", "w2", "b"}, 3, "c4", NULL, 0);
  node(&m, "Add", (const char *[]){"c4", "c3"}, 2, "a4", NULL, 0);
  node(&m, "Conv", (const char *[]){"a4", "wd3", "b"}, 3, "y", av, 2);
  gpux_model *model = finish(&m, 4, xd, "y");
  if (count_ops_cl(model, "ConvNHWC") == 0) { /* no conv-gemm.c kernel on this machine */
    gpux_model_free(model);
    skip();
  }
  assert_int_equal(count_ops_cl(model, "ConvNHWC"), 5);
  assert_int_equal(count_ops_cl(model, "GlobalAveragePoolNHWC"), 1);
  assert_int_equal(count_ops_cl(model, "FusedConv"), 2);
  assert_int_equal(count_ops_cl(model, "Transpose"), 3);
  expect_same_with_channels_last(model, xd);
  gpux_model_free(model);
}

/* Whether the rewritten graph has a gpux.ConvNHWC reading X's planes (x_planes=1). */
static int has_planes_conv(gpux_model *model) {
  gpux__graph *g;
  gpux__optimize_opts oo = {.last_position = -1, .channels_last = 1};
  assert_int_equal(gpux__graph_optimize_with(model->graph, &oo, &g), 0);
  int n = 0;
  for (int i = 0; g && i < g->n_nodes; i++) {
    const gpux__attr *a = gpux__node_attr(&g->nodes[i], "x_planes");
    n += !strcmp(g->nodes[i].op_type, "ConvNHWC") && a && a->i == 1;
  }
  gpux__graph_optimized_free(g);
  return n;
}

/* runtime/channels-last.c with a region starting at a stem (a convolution of c < 16 input
 * channels into 64, on conv-rows.c, reading the graph's NCHW input without a Transpose) and a
 * MaxPool inside it: stem kxk (stride s, pads sp), Relu, MaxPool (mk, ms, mp, ceil_mode, dilation
 * md along W), then on its output a 3x3 of 64 -> 64 and a 1x1 whose residual is the 3x3's (both
 * read the MaxPool's value, so sums stay small enough for the comparison). One region: 3
 * gpux.ConvNHWC (one of them x_planes), 1 gpux.MaxPoolNHWC, one Transpose (the output), and the
 * result the NCHW one's. */
static void stem_case(const int64_t xd[4], int64_t k, int64_t s, const int64_t sp[4], const int64_t mk[2],
                      const int64_t ms[2], const int64_t mp[4], int64_t ceil_mode, int64_t md) {
  model_b m = {0};
  int64_t ws[4] = {64, xd[1], k, k}, w1[4] = {64, 64, 1, 1}, w3[4] = {64, 64, 3, 3}, cd[1] = {64};
  int64_t st[2] = {s, s}, dil[2] = {1, md}, pads1[4] = {1, 1, 1, 1};
  init(&m, "ws", 4, ws, NAN), init(&m, "w1", 4, w1, NAN), init(&m, "w3", 4, w3, NAN), init(&m, "b", 1, cd, NAN);
  attr_b as[2] = {{.name = "pads", .type = 7, .n = 4, .ints = sp}, {.name = "strides", .type = 7, .n = 2, .ints = st}};
  attr_b am[5] = {{.name = "kernel_shape", .type = 7, .n = 2, .ints = mk}, {.name = "strides", .type = 7, .n = 2, .ints = ms},
                  {.name = "pads", .type = 7, .n = 4, .ints = mp}, {.name = "ceil_mode", .type = 2, .i = ceil_mode},
                  {.name = "dilations", .type = 7, .n = 2, .ints = dil}};
  attr_b a3 = {.name = "pads", .type = 7, .n = 4, .ints = pads1};
  node(&m, "Conv", (const char *[]){"x", "ws", "b"}, 3, "c0", as, 2);
  node(&m, "Relu", (const char *[]){"c0"}, 1, "r0", NULL, 0);
  node(&m, "MaxPool", (const char *[]){"r0"}, 1, "p0", am, 5);
  node(&m, "Conv", (const char *[]){"p0", "w3", "b"}, 3, "c1", &a3, 1);
  node(&m, "Conv", (const char *[]){"p0", "w1", "b"}, 3, "c2", NULL, 0);
  node(&m, "Add", (const char *[]){"c2", "c1"}, 2, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, xd, "y");
  if (count_ops_cl(model, "ConvNHWC") == 0) { /* no conv-gemm.c kernel on this machine */
    gpux_model_free(model);
    skip();
  }
  assert_int_equal(count_ops_cl(model, "ConvNHWC"), 3);
  assert_int_equal(has_planes_conv(model), 1);
  assert_int_equal(count_ops_cl(model, "MaxPoolNHWC"), 1);
  assert_int_equal(count_ops_cl(model, "MaxPool"), 0);
  assert_int_equal(count_ops_cl(model, "Transpose"), 1);
  /* sums of 147 and 576 products of values up to 1.4 reach a few hundred: rounding in another
   * order differs by about 1e-6 of that */
  expect_close_with_channels_last(model, xd, 2e-3);
  gpux_model_free(model);
}

/* ResNet's stem (7x7 stride 2 of 3 channels, MaxPool 3x3 stride 2 pads 1) on a batch of 2 and
 * odd planes, and a 5x5 stride-1 stem of 5 channels with uneven pads into a MaxPool of 2 x 3
 * windows, strides (2, 1), dilation 2 along W, uneven pads and ceil_mode. */
static void test_channels_last_stem(void **state) {
  (void)state;
  const int64_t xa[4] = {2, 3, 37, 41}, pa[4] = {3, 3, 3, 3}, ka[2] = {3, 3}, sa[2] = {2, 2}, qa[4] = {1, 1, 1, 1};
  stem_case(xa, 7, 2, pa, ka, sa, qa, 0, 1);
  const int64_t xb[4] = {1, 5, 19, 23}, pb[4] = {2, 1, 0, 2}, kb[2] = {2, 3}, sb[2] = {2, 1}, qb[4] = {0, 1, 1, 0};
  stem_case(xb, 5, 1, pb, kb, sb, qb, 1, 2);
}

/* The rewritten graph's FusedConv nodes with an x_scale (input 6). */
static int count_x_scaled(gpux_model *model) {
  gpux__graph *g;
  gpux__optimize_opts oo = {.last_position = -1, .channels_last = 1};
  assert_int_equal(gpux__graph_optimize_with(model->graph, &oo, &g), 0);
  int n = 0;
  for (int i = 0; g && i < g->n_nodes; i++) n += g->nodes[i].n_in > 6 && g->nodes[i].in[6] >= 0;
  gpux__graph_optimized_free(g);
  return n;
}

/* runtime/channels-last.c folds a squeeze-excitation's Mul outside the regions into the
 * convolution after it (FusedConv's x_scale): a depthwise 3x3 of 16 channels (alone: no region),
 * GlobalAveragePool, 1x1 of 16 -> 4 and 4 -> 16 with HardSigmoid, Mul, then a convolution of 16 ->
 * 8 channels: its kxk window (k = 1, a Conv becoming a FusedConv; 3 with pads) on an image of
 * side h, batch n. 1x1 on one image scales W as it is, 3x3 on 50 x 50 the packed weights, two
 * images X. The Mul goes, one FusedConv takes x_scale, and the result is the one without. */
static void excitation_case(int64_t n, int64_t h, int64_t k) {
  model_b m = {0};
  int64_t wd[4] = {16, 1, 3, 3}, ws1[4] = {4, 16, 1, 1}, ws2[4] = {16, 4, 1, 1}, wp[4] = {8, 16, k, k};
  int64_t cd[1] = {16}, pads[4] = {1, 1, 1, 1}, xd[4] = {n, 16, h, h};
  init(&m, "wd", 4, wd, NAN), init(&m, "ws1", 4, ws1, NAN), init(&m, "ws2", 4, ws2, NAN), init(&m, "wp", 4, wp, NAN);
  init(&m, "b", 1, cd, NAN);
  attr_b ad[2] = {{.name = "pads", .type = 7, .n = 4, .ints = pads}, {.name = "group", .type = 2, .i = 16}};
  attr_b ap = {.name = "pads", .type = 7, .n = 4, .ints = pads};
  node(&m, "Conv", (const char *[]){"x", "wd", "b"}, 3, "c1", ad, 2);
  node(&m, "Relu", (const char *[]){"c1"}, 1, "r1", NULL, 0);
  node(&m, "GlobalAveragePool", (const char *[]){"r1"}, 1, "g1", NULL, 0);
  node(&m, "Conv", (const char *[]){"g1", "ws1"}, 2, "e1", NULL, 0);
  node(&m, "Relu", (const char *[]){"e1"}, 1, "e1r", NULL, 0);
  node(&m, "Conv", (const char *[]){"e1r", "ws2", "b"}, 3, "e2", NULL, 0);
  node(&m, "HardSigmoid", (const char *[]){"e2"}, 1, "e2s", NULL, 0);
  node(&m, "Mul", (const char *[]){"r1", "e2s"}, 2, "m1", NULL, 0);
  node(&m, "Conv", (const char *[]){"m1", "wp"}, 2, "y", k > 1 ? &ap : NULL, k > 1);
  gpux_model *model = finish(&m, 4, xd, "y");
  if (!gpux__conv_gemm_available()) { /* no channels-last pass on this machine */
    gpux_model_free(model);
    skip();
  }
  assert_int_equal(count_ops_cl(model, "Mul"), 0);
  assert_int_equal(count_ops_cl(model, "ConvNHWC"), 0);
  assert_int_equal(count_ops_cl(model, "FusedConv"), 4);
  assert_int_equal(count_x_scaled(model), 1);
  setenv("GPUX_CHANNELS_LAST", "0", 1);
  assert_int_equal(count_ops_cl(model, "Mul"), 1);
  unsetenv("GPUX_CHANNELS_LAST");
  expect_same_with_channels_last(model, xd);
  gpux_model_free(model);
}

static void test_excitation_fold(void **state) {
  (void)state;
  excitation_case(1, 20, 1);
  excitation_case(1, 50, 3);
  excitation_case(2, 12, 1);
}

/* The rewritten graph's gpux.ConvNHWC nodes with an x_scale (input 6). */
static int count_nhwc_x_scaled(gpux_model *model) {
  gpux__graph *g;
  gpux__optimize_opts oo = {.last_position = -1, .channels_last = 1};
  assert_int_equal(gpux__graph_optimize_with(model->graph, &oo, &g), 0);
  int n = 0;
  for (int i = 0; g && i < g->n_nodes; i++)
    n += !strcmp(g->nodes[i].op_type, "ConvNHWC") && g->nodes[i].n_in > 6 && g->nodes[i].in[6] >= 0;
  gpux__graph_optimized_free(g);
  return n;
}

/* The rewritten graph's gpux.GlobalAveragePoolNHWC nodes that take the row sums of the depthwise
 * gpux.ConvNHWC making their X (its output 1, their input 1). */
static int count_pool_row_sums(gpux_model *model) {
  gpux__graph *g;
  gpux__optimize_opts oo = {.last_position = -1, .channels_last = 1};
  assert_int_equal(gpux__graph_optimize_with(model->graph, &oo, &g), 0);
  int n = 0;
  for (int i = 0; g && i < g->n_nodes; i++) {
    const gpux__node *p = &g->nodes[i];
    if (strcmp(p->op_type, "GlobalAveragePoolNHWC") || p->n_in != 2) continue;
    for (int j = 0; j < i; j++)
      n += !strcmp(g->nodes[j].op_type, "ConvNHWC") && g->nodes[j].n_out == 2 && g->nodes[j].out[0] == p->in[0] &&
           g->nodes[j].out[1] == p->in[1];
  }
  gpux__graph_optimized_free(g);
  return n;
}

/* runtime/channels-last.c folds a squeeze-excitation's Mul inside a region into the 1 x 1
 * convolution after it (gpux.ConvNHWC's x_scale, which conv-gemm.c applies to the rows of X each
 * task reads): 1x1 of 16 -> 72, depthwise 3x3, Relu, GlobalAveragePool, 1x1 72 -> 24 -> 72 with
 * Sigmoid, Mul, then the projection 1x1 72 -> 64 (stride s) and a 1x1 64 -> 64, on a batch of n
 * images of side h. With s = 1 the Mul and the scale's Transpose go (two Transposes left, x in and
 * y out) and the projection takes x_scale; with s = 2 (X's rows not read in place), or with a
 * second 1x1 on the Mul's product (`shared`, added to y), the Mul stays in the region. The pool
 * takes the depthwise convolution's row sums. The result is the NCHW one's either way. */
static void region_excitation_case(int64_t n, int64_t h, int64_t s, int shared) {
  model_b m = {0};
  int64_t w1[4] = {72, 16, 1, 1}, wd[4] = {72, 1, 3, 3}, ws1[4] = {24, 72, 1, 1}, ws2[4] = {72, 24, 1, 1};
  int64_t wp[4] = {64, 72, 1, 1}, w2[4] = {64, 64, 1, 1}, c72[1] = {72}, c64[1] = {64}, pads[4] = {1, 1, 1, 1};
  int64_t st[2] = {s, s}, xd[4] = {n, 16, h, h};
  init(&m, "w1", 4, w1, NAN), init(&m, "wd", 4, wd, NAN), init(&m, "ws1", 4, ws1, NAN), init(&m, "ws2", 4, ws2, NAN);
  init(&m, "wp", 4, wp, NAN), init(&m, "w2", 4, w2, NAN), init(&m, "b", 1, c72, NAN), init(&m, "b64", 1, c64, NAN);
  attr_b ad[2] = {{.name = "pads", .type = 7, .n = 4, .ints = pads}, {.name = "group", .type = 2, .i = 72}};
  attr_b as = {.name = "strides", .type = 7, .n = 2, .ints = st};
  node(&m, "Conv", (const char *[]){"x", "w1", "b"}, 3, "c1", NULL, 0);
  node(&m, "Conv", (const char *[]){"c1", "wd", "b"}, 3, "c2", ad, 2);
  node(&m, "Relu", (const char *[]){"c2"}, 1, "r2", NULL, 0);
  node(&m, "GlobalAveragePool", (const char *[]){"r2"}, 1, "g2", NULL, 0);
  node(&m, "Conv", (const char *[]){"g2", "ws1"}, 2, "e1", NULL, 0);
  node(&m, "Relu", (const char *[]){"e1"}, 1, "e1r", NULL, 0);
  node(&m, "Conv", (const char *[]){"e1r", "ws2", "b"}, 3, "e2", NULL, 0);
  node(&m, "Sigmoid", (const char *[]){"e2"}, 1, "e2s", NULL, 0);
  node(&m, "Mul", (const char *[]){"r2", "e2s"}, 2, "m2", NULL, 0);
  node(&m, "Conv", (const char *[]){"m2", "wp", "b64"}, 3, "c3", &as, 1);
  node(&m, "Conv", (const char *[]){"c3", "w2", "b64"}, 3, shared ? "y1" : "y", NULL, 0);
  if (shared) { /* a second 1x1 on the Mul's product, added to the first's: a residual in the region */
    node(&m, "Conv", (const char *[]){"m2", "wp", "b64"}, 3, "c5", NULL, 0);
    node(&m, "Add", (const char *[]){"y1", "c5"}, 2, "y", NULL, 0);
  }
  gpux_model *model = finish(&m, 4, xd, "y");
  if (count_ops_cl(model, "ConvNHWC") == 0) { /* no conv-gemm.c kernel on this machine */
    gpux_model_free(model);
    skip();
  }
  int folded = s == 1 && !shared;
  assert_int_equal(count_ops_cl(model, "ConvNHWC"), 4 + shared);
  assert_int_equal(count_ops_cl(model, "GlobalAveragePoolNHWC"), 1);
  assert_int_equal(count_pool_row_sums(model), 1); /* the pool adds up the depthwise's row sums */
  assert_int_equal(count_ops_cl(model, "Mul"), !folded);
  assert_int_equal(count_nhwc_x_scaled(model), folded);
  assert_int_equal(count_ops_cl(model, "Transpose"), folded ? 2 : 3);
  /* on 40 x 40 the planes' kernels and the channels-last ones differ by up to 4e-3 of a value,
   * with the Mul or without (rows of X scaled in the wrong place would be off by far more) */
  expect_close_with_channels_last(model, xd, h > 20 ? 1e-2 : 1e-4);
  gpux_model_free(model);
}

static void test_region_excitation_fold(void **state) {
  (void)state;
  region_excitation_case(1, 14, 1, 0);
  region_excitation_case(2, 9, 1, 0);
  region_excitation_case(1, 7, 1, 0);
  region_excitation_case(1, 14, 2, 0);
  region_excitation_case(1, 14, 1, 1);
  region_excitation_case(1, 40, 1, 0); /* 1600 positions: tiles of X's rows from p0 > 0 */
}

/* Runs model on the CPU (threads) with GPUX_EXPAND_DW=on. */
static gpux_tensor run_xdw(gpux_model *model, const gpux_tensor *x, const char *on, int threads) {
  setenv("GPUX_EXPAND_DW", on, 1);
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = threads};
  gpux_session *s;
  if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
  gpux_tensor y;
  if (gpux_session_run(s, x, 1, &y, 1)) fail_msg("run: %s", gpux_last_error());
  gpux_session_free(s);
  unsetenv("GPUX_EXPAND_DW");
  return y;
}

/* runtime/fuse-expand-dw.c: on a batch of 2 and planes of 30 x 33, an expansion 16 -> 24 (Relu)
 * into a 3x3 depthwise convolution of stride 2 (HardSwish), a projection 24 -> 8, then an
 * expansion 8 -> 20 (x * Sigmoid(x)) into a 5x5 depthwise convolution of stride 1 with uneven pads
 * and no activation; and an expansion whose output a second node also reads (a Relu), which
 * stays. Two gpux.ExpandDepthwise, the fused kernel ran, and the result is the one of the
 * convolutions unfused (GPUX_EXPAND_DW=0) at 1 and 2 threads. */
static void test_expand_depthwise(void **state) {
  (void)state;
  if (!gpux__conv_dw16_available()) skip();
  model_b m = {0};
  int64_t w1[4] = {24, 16, 1, 1}, wd1[4] = {24, 1, 3, 3}, wp[4] = {8, 24, 1, 1}, w2[4] = {20, 8, 1, 1};
  int64_t wd2[4] = {20, 1, 5, 5}, w3[4] = {20, 8, 1, 1}, c24[1] = {24}, c20[1] = {20}, c8[1] = {8};
  int64_t pads1[4] = {1, 1, 1, 1}, pads2[4] = {2, 1, 2, 3}, s2[2] = {2, 2}, xd[4] = {2, 16, 30, 33};
  init(&m, "w1", 4, w1, NAN), init(&m, "wd1", 4, wd1, NAN), init(&m, "wp", 4, wp, NAN), init(&m, "w2", 4, w2, NAN);
  init(&m, "wd2", 4, wd2, NAN), init(&m, "w3", 4, w3, NAN), init(&m, "b24", 1, c24, NAN), init(&m, "b20", 1, c20, NAN);
  init(&m, "b8", 1, c8, NAN);
  attr_b a1[3] = {{.name = "pads", .type = 7, .n = 4, .ints = pads1}, {.name = "strides", .type = 7, .n = 2, .ints = s2},
                  {.name = "group", .type = 2, .i = 24}};
  attr_b a2[2] = {{.name = "pads", .type = 7, .n = 4, .ints = pads2}, {.name = "group", .type = 2, .i = 20}};
  node(&m, "Conv", (const char *[]){"x", "w1", "b24"}, 3, "e1", NULL, 0);
  node(&m, "Relu", (const char *[]){"e1"}, 1, "r1", NULL, 0);
  node(&m, "Conv", (const char *[]){"r1", "wd1", "b24"}, 3, "d1", a1, 3);
  node(&m, "HardSwish", (const char *[]){"d1"}, 1, "h1", NULL, 0);
  node(&m, "Conv", (const char *[]){"h1", "wp", "b8"}, 3, "p1", NULL, 0);
  node(&m, "Conv", (const char *[]){"p1", "w2", "b20"}, 3, "e2", NULL, 0);
  node(&m, "Sigmoid", (const char *[]){"e2"}, 1, "s2", NULL, 0);
  node(&m, "Mul", (const char *[]){"e2", "s2"}, 2, "m2", NULL, 0);
  node(&m, "Conv", (const char *[]){"m2", "wd2"}, 2, "d2", a2, 2);
  node(&m, "Conv", (const char *[]){"p1", "w3", "b20"}, 3, "e3", NULL, 0); /* read twice: stays */
  node(&m, "Conv", (const char *[]){"e3", "wd2"}, 2, "d3", a2, 2);
  node(&m, "Relu", (const char *[]){"e3"}, 1, "r3", NULL, 0);
  node(&m, "Add", (const char *[]){"d2", "d3"}, 2, "a", NULL, 0);
  node(&m, "Add", (const char *[]){"a", "r3"}, 2, "y", NULL, 0);
  gpux_model *model = finish(&m, 4, xd, "y");
  assert_int_equal(count_ops_cl(model, "ExpandDepthwise"), 2);
  setenv("GPUX_EXPAND_DW", "0", 1);
  assert_int_equal(count_ops_cl(model, "ExpandDepthwise"), 0);
  unsetenv("GPUX_EXPAND_DW");
  gpux_tensor x;
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 4, xd), 0);
  for (int64_t i = 0; i < gpux_tensor_count(&x); i++) ((float *)x.data)[i] = rndf();
  for (int t = 1; t <= 2; t++) {
    long long before = gpux__expand_dw_tasks;
    gpux_tensor a = run_xdw(model, &x, "0", t);
    assert_true(gpux__expand_dw_tasks == before);
    gpux_tensor b = run_xdw(model, &x, "1", t);
    assert_true(gpux__expand_dw_tasks > before);
    gpux_compare_report r;
    /* the unfused depthwise convolutions of these narrow outputs take the 16-channel kernel, whose
     * sums go in another order than the fused rows': 1.5e-5 apart on a value of 0.77 (after the
     * layers that follow) for some of the inputs that other tests' use of the random stream gives */
    if (gpux_tensor_compare(&b, &a, 1e-5, 2e-5, &r)) fail_msg("fused run differs at %d threads: %s", t, r.message);
    gpux_tensor_free(&a), gpux_tensor_free(&b);
  }
  gpux_tensor_free(&x);
  gpux_model_free(model);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_conv_chain),
    cmocka_unit_test(test_conv_shared_output),
    cmocka_unit_test(test_conv_identity_weights),
    cmocka_unit_test(test_conv_transpose_chain),
    cmocka_unit_test(test_conv_silu),
    cmocka_unit_test(test_conv_residual),
    cmocka_unit_test(test_squeeze_excitation),
    cmocka_unit_test(test_conv_bounds),
    cmocka_unit_test(test_nested_graph),
    cmocka_unit_test(test_bert_ffn),
    cmocka_unit_test(test_gpt2_mlp),
    cmocka_unit_test(test_no_bias),
    cmocka_unit_test(test_residual_broadcast),
    cmocka_unit_test(test_transformer_unfused),
    cmocka_unit_test(test_tied_embedding),
    cmocka_unit_test(test_nothing),
    cmocka_unit_test(test_channels_last),
    cmocka_unit_test(test_channels_last_depthwise),
    cmocka_unit_test(test_channels_last_stem),
    cmocka_unit_test(test_excitation_fold),
    cmocka_unit_test(test_region_excitation_fold),
    cmocka_unit_test(test_expand_depthwise),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
