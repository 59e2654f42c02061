/* test-last-position.c — unit tests of the last-position rewrite (runtime/last-position.c, the
 * session option last_position): small language-model heads built in memory, run on the CPU with
 * the option, must give the last position of the logits the model gives without it, and their
 * ArgMax as one more output; the Slice must sit before the output layer where the ops after it are
 * position-wise, and at the output where they are not (a Softmax over the sequence, a Reshape that
 * mixes axes, a dequantization per position) or where another output reads a value of the chain;
 * a quantized output layer (QDQ) is cut before its MatMul, and a merged decoder's If in each of its
 * branches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include "onnx/onnx.h"
#include "runtime/optimize.h"
#include "onnx-writer.h"

enum { S = 5, D = 8, V = 11 };

static uint32_t rng = 4242;

static float rndf(void) {
  rng = rng * 1664525u + 1013904223u;
  return (float)((int)(rng >> 9) % 2001 - 1000) / 700.0f;
}

/* ---- model building ---- */

static void node(pbw *g, const char *op, const char *const *in, int n_in, const char *out, const char *attr,
                 int64_t attr_i, const int64_t *ints, int n_ints) {
  pbw n = {0};
  for (int i = 0; i < n_in; i++) pbw_str(&n, 1, in[i]);
  pbw_str(&n, 2, out);
  pbw_str(&n, 3, out);
  pbw_str(&n, 4, op);
  if (attr) {
    pbw at = {0};
    pbw_str(&at, 1, attr);
    if (ints) {
      for (int k = 0; k < n_ints; k++) pbw_int(&at, 8, ints[k]);
      pbw_int(&at, 20, 7);
    } else {
      pbw_int(&at, 3, attr_i);
      pbw_int(&at, 20, 2);
    }
    pbw_msg(&n, 5, &at);
  }
  pbw_msg(g, 1, &n);
}

static void init_f32(pbw *g, const char *name, int ndim, const int64_t *dims) {
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) count *= dims[i];
  float *v = malloc((size_t)count * sizeof *v);
  for (int64_t i = 0; i < count; i++) v[i] = rndf();
  pbw_tensor(g, 5, name, GPUX_DT_FLOAT, ndim, dims, v, (size_t)count * sizeof *v);
  free(v);
}

static void init_i64(pbw *g, const char *name, int n, const int64_t *vals) {
  int64_t dims[1] = {n};
  pbw_tensor(g, 5, name, GPUX_DT_INT64, 1, dims, vals, (size_t)n * sizeof *vals);
}

/* Finishes graph g: input x [1, seq, D], outputs `outs` ([1, seq, V] when rank3, else undeclared
 * shape), and loads it. */
static gpux_model *finish(pbw *g, const char *const *outs, int n_outs, int rank3) {
  int64_t xd[3] = {1, -1, D}, yd[3] = {1, -1, V};
  pbw_str(g, 2, "g");
  pbw_value_info(g, 11, "x", GPUX_DT_FLOAT, 3, xd, "seq");
  for (int o = 0; o < n_outs; o++) {
    if (rank3) {
      pbw_value_info(g, 12, outs[o], GPUX_DT_FLOAT, 3, yd, "seq");
      continue;
    }
    pbw tt = {0}, tp = {0}, vi = {0};
    pbw_int(&tt, 1, GPUX_DT_FLOAT);
    pbw_msg(&tp, 1, &tt);
    pbw_str(&vi, 1, outs[o]);
    pbw_msg(&vi, 2, &tp);
    pbw_msg(g, 12, &vi);
  }
  pbw mp = {0};
  pbw_model(&mp, g);
  gpux_model *model = NULL;
  if (gpux_model_load_buffer(mp.data, mp.len, "test", &model)) fail_msg("load: %s", gpux_last_error());
  free(mp.data);
  return model;
}

/* ---- checks ---- */

/* Runs model on x [1, S, D]: without the option, all outputs (n_out); with it, the outputs and
 * the ArgMax after them. */
static void run(gpux_model *m, const gpux_tensor *x, const char *last, gpux_tensor *out, int n_out) {
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 1, .last_position = last};
  gpux_session *s;
  if (gpux_session_create(m, &o, &s)) fail_msg("session: %s", gpux_last_error());
  if (gpux_session_run(s, x, 1, out, n_out + (last != NULL))) fail_msg("run: %s", gpux_last_error());
  gpux_session_free(s);
}

/* The rewritten graph's Slice (the one the rewrite made): where its result goes — the op of the
 * node reading it, or "output" when it is a graph output. */
static const char *slice_goes_to(gpux_model *m) {
  gpux__graph *g;
  assert_int_equal(gpux__model_hold(m), 0); /* the weights, as a session holds them */
  assert_int_equal(gpux__graph_optimize_with(m->graph, &(gpux__optimize_opts){.last_position = 0}, &g), 0);
  gpux__model_unhold(m, NULL);
  assert_non_null(g);
  assert_int_equal(g->n_outputs, m->graph->n_outputs + 1);
  static char where[64];
  snprintf(where, sizeof where, "none");
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    if (strcmp(n->op_type, "Slice") || !strstr(g->values[n->out[0]].name, "/last")) continue;
    for (int k = 0; k < g->n_nodes; k++) /* (the ArgMax reads the output) */
      for (int j = 0; j < g->nodes[k].n_in; j++)
        if (g->nodes[k].in[j] == n->out[0]) snprintf(where, sizeof where, "%s", g->nodes[k].op_type);
    for (int o = 0; o < g->n_outputs; o++)
      if (g->outputs[o] == n->out[0]) snprintf(where, sizeof where, "output");
  }
  gpux__graph_optimized_free(g);
  return where;
}

/* The model's logits (output 0) with and without the option agree on the last position, and the
 * ArgMax is that row's. */
static void check_values(gpux_model *m, int n_out) {
  int64_t xd[3] = {1, S, D};
  gpux_tensor x, full[4] = {0}, last[5] = {0};
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 3, xd), 0);
  for (int i = 0; i < S * D; i++) ((float *)x.data)[i] = rndf();
  run(m, &x, NULL, full, n_out);
  run(m, &x, "y", last, n_out);
  assert_int_equal(full[0].ndim, 3);
  assert_int_equal(full[0].dims[1], S);
  assert_int_equal(last[0].ndim, 3);
  assert_int_equal(last[0].dims[1], 1);
  assert_int_equal(last[0].dims[2], V);
  const float *want = (const float *)full[0].data + (S - 1) * V, *got = last[0].data;
  int best = 0;
  for (int v = 0; v < V; v++) {
    assert_true(fabsf(want[v] - got[v]) <= 1e-4f * (1 + fabsf(want[v])));
    if (want[v] > want[best]) best = v;
  }
  const gpux_tensor *am = &last[n_out];
  assert_int_equal(am->dtype, GPUX_DT_INT64);
  assert_int_equal(gpux_tensor_count(am), 1);
  assert_int_equal(((const int64_t *)am->data)[0], best);
  for (int o = 1; o < n_out; o++) { /* the other outputs are as they were */
    assert_int_equal(full[o].nbytes, last[o].nbytes);
    assert_memory_equal(full[o].data, last[o].data, full[o].nbytes);
  }
  for (int o = 0; o < n_out; o++) gpux_tensor_free(&full[o]);
  for (int o = 0; o <= n_out; o++) gpux_tensor_free(&last[o]);
  gpux_tensor_free(&x);
}

/* ---- cases ---- */

/* LayerNormalization, the output layer by a tied embedding (MatMul by a Transpose of [V, D]), a
 * bias, a temperature and a softcap (Div, Tanh, Mul): the cut goes before the MatMul. */
static void test_position_wise_chain(void **st) {
  (void)st;
  pbw g = {0};
  int64_t dd[1] = {D}, wd[2] = {V, D}, vd[1] = {V}, one[1] = {1};
  init_f32(&g, "gamma", 1, dd);
  init_f32(&g, "beta", 1, dd);
  init_f32(&g, "wte", 2, wd);
  init_f32(&g, "bias", 1, vd);
  init_f32(&g, "temp", 1, one);
  init_f32(&g, "cap", 0, NULL);
  node(&g, "LayerNormalization", (const char *[]){"x", "gamma", "beta"}, 3, "ln", "axis", -1, NULL, 0);
  node(&g, "Transpose", (const char *[]){"wte"}, 1, "wT", "perm", 0, (const int64_t[]){1, 0}, 2);
  node(&g, "MatMul", (const char *[]){"ln", "wT"}, 2, "mm", NULL, 0, NULL, 0);
  node(&g, "Add", (const char *[]){"bias", "mm"}, 2, "biased", NULL, 0, NULL, 0);
  node(&g, "Div", (const char *[]){"biased", "temp"}, 2, "t", NULL, 0, NULL, 0);
  node(&g, "Div", (const char *[]){"t", "cap"}, 2, "c", NULL, 0, NULL, 0);
  node(&g, "Tanh", (const char *[]){"c"}, 1, "th", NULL, 0, NULL, 0);
  node(&g, "Mul", (const char *[]){"th", "cap"}, 2, "y", NULL, 0, NULL, 0);
  gpux_model *m = finish(&g, (const char *[]){"y"}, 1, 1);
  const char *where = slice_goes_to(m);
  /* the MatMul by the Transpose became a gpux.FusedMatMul with transB */
  assert_true(!strcmp(where, "FusedMatMul") || !strcmp(where, "MatMul"));
  check_values(m, 1);
  setenv("GPUX_OPTIMIZE", "0", 1); /* the other rewrites off: the plain MatMul is the head */
  assert_string_equal(slice_goes_to(m), "MatMul");
  check_values(m, 1);
  unsetenv("GPUX_OPTIMIZE");
  gpux_model_free(m);
}

/* A Softmax over the sequence axis after the output layer: each position reads all of them, so
 * the cut is at the output. */
static void test_softmax_over_sequence(void **st) {
  (void)st;
  pbw g = {0};
  int64_t wd[2] = {D, V};
  init_f32(&g, "w", 2, wd);
  node(&g, "MatMul", (const char *[]){"x", "w"}, 2, "mm", NULL, 0, NULL, 0);
  node(&g, "Softmax", (const char *[]){"mm"}, 1, "y", "axis", 1, NULL, 0);
  gpux_model *m = finish(&g, (const char *[]){"y"}, 1, 1);
  assert_string_equal(slice_goes_to(m), "output");
  check_values(m, 1);
  gpux_model_free(m);
}

/* A Transpose and a Reshape that mix the sequence and vocabulary axes ([1, S, V] -> [1, V, S] ->
 * [1, S, V] read in the other order): the cut is at the output. */
static void test_reshape_mixing_axes(void **st) {
  (void)st;
  pbw g = {0};
  int64_t wd[2] = {D, V};
  init_f32(&g, "w", 2, wd);
  init_i64(&g, "shape", 3, (const int64_t[]){1, -1, V});
  node(&g, "MatMul", (const char *[]){"x", "w"}, 2, "mm", NULL, 0, NULL, 0);
  node(&g, "Transpose", (const char *[]){"mm"}, 1, "tr", "perm", 0, (const int64_t[]){0, 2, 1}, 3);
  node(&g, "Reshape", (const char *[]){"tr", "shape"}, 2, "y", NULL, 0, NULL, 0);
  gpux_model *m = finish(&g, (const char *[]){"y"}, 1, 1);
  assert_string_equal(slice_goes_to(m), "output");
  check_values(m, 1);
  gpux_model_free(m);
}

/* A bias computed at run time (from x: it varies along the sequence): not provably position-wise,
 * so the cut stays after the Add that reads it. */
static void test_computed_operand(void **st) {
  (void)st;
  pbw g = {0};
  int64_t wd[2] = {D, V}, wd2[2] = {D, V};
  init_f32(&g, "w", 2, wd);
  init_f32(&g, "w2", 2, wd2);
  node(&g, "MatMul", (const char *[]){"x", "w"}, 2, "mm", NULL, 0, NULL, 0);
  node(&g, "MatMul", (const char *[]){"x", "w2"}, 2, "other", NULL, 0, NULL, 0);
  node(&g, "Add", (const char *[]){"mm", "other"}, 2, "y", NULL, 0, NULL, 0);
  gpux_model *m = finish(&g, (const char *[]){"y"}, 1, 1);
  assert_string_equal(slice_goes_to(m), "output");
  check_values(m, 1);
  gpux_model_free(m);
}

/* The output layer's result is a graph output too: the cut stays after it (the other output keeps
 * every position), before the bias Add. */
static void test_value_read_elsewhere(void **st) {
  (void)st;
  pbw g = {0};
  int64_t wd[2] = {D, V}, vd[1] = {V};
  init_f32(&g, "w", 2, wd);
  init_f32(&g, "bias", 1, vd);
  node(&g, "MatMul", (const char *[]){"x", "w"}, 2, "mm", NULL, 0, NULL, 0);
  node(&g, "Add", (const char *[]){"mm", "bias"}, 2, "y", NULL, 0, NULL, 0);
  gpux_model *m = finish(&g, (const char *[]){"y", "mm"}, 2, 1);
  setenv("GPUX_OPTIMIZE", "0", 1); /* else MatMul and Add fuse */
  assert_string_equal(slice_goes_to(m), "Add");
  check_values(m, 2);
  unsetenv("GPUX_OPTIMIZE");
  gpux_model_free(m);
}

/* A quantized output layer as QDQ exports write it: A and the result quantized per tensor, the
 * weights int8 dequantized: the cut goes before the MatMul; with the result dequantized per
 * position (axis 1, the sequence) it stays at the output. */
static void test_quantized_head(void **st) {
  (void)st;
  for (int per_position = 0; per_position < 2; per_position++) {
    pbw g = {0};
    int64_t wd[2] = {D, V}, sd[1] = {S};
    int8_t w[D * V];
    for (int i = 0; i < D * V; i++) w[i] = (int8_t)((i * 37) % 255 - 127);
    pbw_tensor(&g, 5, "wq", GPUX_DT_INT8, 2, wd, w, sizeof w);
    float scales[S] = {0.02f, 0.03f, 0.05f, 0.07f, 0.11f}, one_scale = 0.02f, out_scale = 0.05f;
    uint8_t zp = 128;
    pbw_tensor(&g, 5, "xs", GPUX_DT_FLOAT, 0, NULL, &one_scale, 4);
    pbw_tensor(&g, 5, "xz", GPUX_DT_UINT8, 0, NULL, &zp, 1);
    pbw_tensor(&g, 5, "ws", GPUX_DT_FLOAT, 0, NULL, &one_scale, 4);
    pbw_tensor(&g, 5, "ys", GPUX_DT_FLOAT, 0, NULL, &out_scale, 4);
    pbw_tensor(&g, 5, "yz", GPUX_DT_UINT8, 0, NULL, &zp, 1);
    pbw_tensor(&g, 5, "ps", GPUX_DT_FLOAT, 1, sd, scales, sizeof scales);
    node(&g, "QuantizeLinear", (const char *[]){"x", "xs", "xz"}, 3, "xq", NULL, 0, NULL, 0);
    node(&g, "DequantizeLinear", (const char *[]){"xq", "xs", "xz"}, 3, "xd", NULL, 0, NULL, 0);
    node(&g, "DequantizeLinear", (const char *[]){"wq", "ws"}, 2, "wd", NULL, 0, NULL, 0);
    node(&g, "MatMul", (const char *[]){"xd", "wd"}, 2, "mm", NULL, 0, NULL, 0);
    node(&g, "QuantizeLinear", (const char *[]){"mm", "ys", "yz"}, 3, "yq", NULL, 0, NULL, 0);
    if (per_position) node(&g, "DequantizeLinear", (const char *[]){"yq", "ps"}, 2, "y", "axis", 1, NULL, 0);
    else node(&g, "DequantizeLinear", (const char *[]){"yq", "ys", "yz"}, 3, "y", NULL, 0, NULL, 0);
    gpux_model *m = finish(&g, (const char *[]){"y"}, 1, 1);
    assert_string_equal(slice_goes_to(m), per_position ? "output" : "MatMul");
    check_values(m, 1);
    gpux_model_free(m);
  }
}

/* A merged decoder's If (then: the output layer; else: the output layer, a bias and a
 * temperature) whose branches read x and the weights from the graph: each branch is cut before its
 * MatMul, whichever the condition picks, and the graph adds the ArgMax. */
static void test_if_branches(void **st) {
  (void)st;
  for (int cond = 0; cond < 2; cond++) {
    pbw g = {0}, then_g = {0}, else_g = {0};
    int64_t wd[2] = {D, V}, vd[1] = {V};
    uint8_t c = (uint8_t)cond;
    float temp = 0.7f;
    init_f32(&g, "w", 2, wd);
    init_f32(&g, "bias", 1, vd);
    pbw_tensor(&g, 5, "temp", GPUX_DT_FLOAT, 0, NULL, &temp, 4);
    pbw_tensor(&g, 5, "cond", GPUX_DT_BOOL, 0, NULL, &c, 1);
    node(&then_g, "MatMul", (const char *[]){"x", "w"}, 2, "yt", NULL, 0, NULL, 0);
    node(&else_g, "MatMul", (const char *[]){"x", "w"}, 2, "me", NULL, 0, NULL, 0);
    node(&else_g, "Add", (const char *[]){"me", "bias"}, 2, "ae", NULL, 0, NULL, 0);
    node(&else_g, "Div", (const char *[]){"ae", "temp"}, 2, "ye", NULL, 0, NULL, 0);
    pbw *branches[2] = {&then_g, &else_g};
    const char *names[2] = {"then_branch", "else_branch"}, *outs[2] = {"yt", "ye"};
    pbw n = {0};
    pbw_str(&n, 1, "cond");
    pbw_str(&n, 2, "y");
    pbw_str(&n, 3, "if");
    pbw_str(&n, 4, "If");
    for (int b = 0; b < 2; b++) { /* the branch's output typed, its shape not declared */
      pbw tt = {0}, tp = {0}, vi = {0}, at = {0};
      pbw_str(branches[b], 2, names[b]);
      pbw_int(&tt, 1, GPUX_DT_FLOAT);
      pbw_msg(&tp, 1, &tt);
      pbw_str(&vi, 1, outs[b]);
      pbw_msg(&vi, 2, &tp);
      pbw_msg(branches[b], 12, &vi);
      pbw_str(&at, 1, names[b]);
      pbw_msg(&at, 6, branches[b]);
      pbw_int(&at, 20, 5);
      pbw_msg(&n, 5, &at);
    }
    pbw_msg(&g, 1, &n);
    gpux_model *m = finish(&g, (const char *[]){"y"}, 1, 1);
    gpux__graph *og;
    assert_int_equal(gpux__model_hold(m), 0);
    assert_int_equal(gpux__graph_optimize_with(m->graph, &(gpux__optimize_opts){.last_position = 0}, &og), 0);
    gpux__model_unhold(m, NULL);
    int ifs = 0, slices = 0, cut_before_product = 0;
    for (int i = 0; i < og->n_nodes; i++) {
      const gpux__node *in = &og->nodes[i];
      slices += !strcmp(in->op_type, "Slice");
      if (strcmp(in->op_type, "If")) continue;
      ifs++;
      for (int a = 0; a < in->n_attrs; a++) {
        const gpux__graph *b = in->attrs[a].g;
        for (int k = 0; b && k < b->n_nodes; k++) {
          if (strcmp(b->nodes[k].op_type, "Slice")) continue;
          for (int q = 0; q < b->n_nodes; q++)
            cut_before_product += (!strcmp(b->nodes[q].op_type, "MatMul") || !strcmp(b->nodes[q].op_type, "FusedMatMul")) &&
                                  b->nodes[q].in[0] == b->nodes[k].out[0];
        }
      }
    }
    assert_int_equal(ifs, 1);
    assert_int_equal(slices, 0); /* none in the graph itself */
    assert_int_equal(cut_before_product, 2);
    assert_int_equal(og->n_outputs, 2);
    gpux__graph_optimized_free(og);
    check_values(m, 1);
    gpux_model_free(m);
  }
}

/* Logits not declared [batch, seq, vocab]: no cut (the rows may be a batch), the ArgMax alone. */
static void test_undeclared_rank(void **st) {
  (void)st;
  pbw g = {0};
  int64_t wd[2] = {D, V};
  init_f32(&g, "w", 2, wd);
  node(&g, "MatMul", (const char *[]){"x", "w"}, 2, "y", NULL, 0, NULL, 0);
  gpux_model *m = finish(&g, (const char *[]){"y"}, 1, 0);
  assert_string_equal(slice_goes_to(m), "none");
  int64_t xd[3] = {1, S, D};
  gpux_tensor x, out[2] = {0};
  assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 3, xd), 0);
  for (int i = 0; i < S * D; i++) ((float *)x.data)[i] = rndf();
  run(m, &x, "y", out, 1);
  assert_int_equal(out[0].dims[1], S);
  assert_int_equal(gpux_tensor_count(&out[1]), S);
  gpux_tensor_free(&out[0]);
  gpux_tensor_free(&out[1]);
  gpux_tensor_free(&x);
  /* an output that is not the model's: an error naming it */
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .last_position = "nope"};
  gpux_session *s = NULL;
  assert_int_equal(gpux_session_create(m, &o, &s), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "'nope'"));
  gpux_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_position_wise_chain),  cmocka_unit_test(test_softmax_over_sequence),
    cmocka_unit_test(test_reshape_mixing_axes),  cmocka_unit_test(test_computed_operand),
    cmocka_unit_test(test_value_read_elsewhere), cmocka_unit_test(test_quantized_head),
    cmocka_unit_test(test_if_branches),          cmocka_unit_test(test_undeclared_rank),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
