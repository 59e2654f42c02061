/* test-fuse-attention.c — unit tests of the attention rewrite (runtime/fuse-attention.c): small
 * BERT-, ViT- and GPT-2-like attention blocks written the ways torch.onnx exports them (the
 * TorchScript and dynamo exporters, additive, Where and Mul/Sub masks, torch's NaN clean-up, a KV
 * cache) must become one Attention node each, and run the same with the rewrite and without it
 * (GPUX_OPTIMIZE=0) to 1e-5 relative; a block whose intermediate has another reader must not.
 * Where the heads are split by Reshape + Transpose [0, 2, 1, 3] and merged back the same way, the
 * Attention node reads and writes [B, S, H * D] (q_num_heads) and no Transpose is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include "runtime/optimize.h"
#include "onnx-writer.h"

/* from ops/gemm.h (whose op.h has its own IN) */
extern _Atomic long long gpux__attention_kv_strided;
int64_t gpux__sgemm_nr(void);

enum { B = 2, S = 37, H = 2, D = 20, E = H * D, P = 3, MAXPOS = 48 }; /* S and D past the kernels' blocks */

static uint32_t rng = 4242;

static float rndf(void) {
  rng = rng * 1664525u + 1013904223u;
  return (float)((int)(rng >> 9) % 2001 - 1000) / 1000.0f;
}

/* ---- model building ---- */

typedef struct {
  pbw g;
  int n_inputs;
  gpux_tensor inputs[4];   /* the values the runs feed, in the graph's input order */
} mb;

/* A node with outputs out (comma-free, one) and optional int / ints attributes. */
static void node(mb *m, const char *op, const char *const *in, int n_in, const char *out, const char *attr,
                 int n_ints, const int64_t *ints) {
  pbw n = {0};
  for (int i = 0; i < n_in; i++) pbw_str(&n, 1, in[i]);
  pbw_str(&n, 2, out);
  pbw_str(&n, 3, out);
  pbw_str(&n, 4, op);
  if (attr) {
    pbw at = {0};
    pbw_str(&at, 1, attr);
    if (n_ints < 0) {
      pbw_int(&at, 3, ints[0]);
      pbw_int(&at, 20, 2);
    } else {
      for (int k = 0; k < n_ints; k++) pbw_int(&at, 8, ints[k]);
      pbw_int(&at, 20, 7);
    }
    pbw_msg(&n, 5, &at);
  }
  pbw_msg(&m->g, 1, &n);
}

#define IN(...) ((const char *const[]){__VA_ARGS__}), (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

static void op(mb *m, const char *type, const char *const *in, int n_in, const char *out) {
  node(m, type, in, n_in, out, NULL, 0, NULL);
}

static void transpose(mb *m, const char *x, const char *out, int64_t p0, int64_t p1, int64_t p2, int64_t p3) {
  int64_t perm[4] = {p0, p1, p2, p3};
  node(m, "Transpose", IN(x), out, "perm", 4, perm);
}

static void init_f32(mb *m, const char *name, int ndim, const int64_t *dims, const float *v) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= dims[i];
  pbw_tensor(&m->g, 5, name, GPUX_DT_FLOAT, ndim, dims, v, (size_t)n * sizeof *v);
}

static void scalar(mb *m, const char *name, float v) { pbw_tensor(&m->g, 5, name, GPUX_DT_FLOAT, 0, NULL, &v, sizeof v); }

static void ints(mb *m, const char *name, int n, const int64_t *v) {
  int64_t dims[1] = {n};
  pbw_tensor(&m->g, 5, name, GPUX_DT_INT64, 1, dims, v, (size_t)n * sizeof *v);
}

static void weight(mb *m, const char *name) {
  float w[E * E];
  for (int i = 0; i < E * E; i++) w[i] = rndf() / sqrtf((float)E); /* scores of a trained model's size */
  int64_t dims[2] = {E, E};
  init_f32(m, name, 2, dims, w);
}

/* A graph input with the tensor the runs feed it: float32 random, or bool from `keep`. */
static void input(mb *m, const char *name, int dtype, int ndim, const int64_t *dims, int (*keep)(const int64_t *)) {
  gpux_tensor *t = &m->inputs[m->n_inputs++];
  assert_int_equal(gpux_tensor_init(t, dtype, ndim, dims), 0);
  int64_t n = gpux_tensor_count(t), idx[4];
  for (int64_t i = 0; i < n; i++) {
    int64_t r = i;
    for (int d = ndim - 1; d >= 0; d--) idx[d] = r % dims[d], r /= dims[d];
    if (dtype == GPUX_DT_BOOL) ((uint8_t *)t->data)[i] = (uint8_t)keep(idx);
    else ((float *)t->data)[i] = rndf() * 2;
  }
  pbw_value_info(&m->g, 11, name, dtype, ndim, dims, NULL);
}

static gpux_model *finish(mb *m, const char *const *outs, int n_outs) {
  pbw_str(&m->g, 2, "g");
  for (int o = 0; o < n_outs; o++) {
    pbw tt = {0}, tp = {0}, vi = {0};
    pbw_int(&tt, 1, GPUX_DT_FLOAT);
    pbw_msg(&tp, 1, &tt);
    pbw_str(&vi, 1, outs[o]);
    pbw_msg(&vi, 2, &tp);
    pbw_msg(&m->g, 12, &vi);
  }
  pbw mp = {0};
  pbw_model(&mp, &m->g);
  gpux_model *model = NULL;
  if (gpux_model_load_buffer(mp.data, mp.len, "test", &model)) fail_msg("load: %s", gpux_last_error());
  free(mp.data);
  return model;
}

/* x [B, S, E] through weight w to heads [B, H, S, D] (Reshape + Transpose), named out. */
static void heads(mb *m, const char *x, const char *w, const char *out) {
  char mm[64], rs[64];
  snprintf(mm, sizeof mm, "%s_mm", out);
  snprintf(rs, sizeof rs, "%s_rs", out);
  op(m, "MatMul", IN(x, w), mm);
  op(m, "Reshape", IN(mm, "heads_shape"), rs);
  transpose(m, rs, out, 0, 2, 1, 3);
}

/* The common start: input x, the three projections' weights, the head shape. */
static void start(mb *m) {
  memset(m, 0, sizeof *m);
  int64_t xd[3] = {B, S, E}, hs[4] = {0, 0, H, D}, merge[3] = {0, 0, E};
  input(m, "x", GPUX_DT_FLOAT, 3, xd, NULL);
  weight(m, "wq");
  weight(m, "wk");
  weight(m, "wv");
  ints(m, "heads_shape", 4, hs);
  ints(m, "merge_shape", 3, merge);
}

/* Y [B, H, S, D] back to [B, S, E] as graph output "y". */
static void merge(mb *m, const char *y) {
  transpose(m, y, "y_t", 0, 2, 1, 3);
  op(m, "Reshape", IN("y_t", "merge_shape"), "y");
}

/* ---- running ---- */

static void run(gpux_model *model, const mb *m, int optimize, gpux_tensor *out, int n_out) {
  setenv("GPUX_OPTIMIZE", optimize ? "1" : "0", 1);
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 2};
  gpux_session *s;
  if (gpux_session_create(model, &o, &s)) fail_msg("session: %s", gpux_last_error());
  if (gpux_session_run(s, m->inputs, m->n_inputs, out, n_out)) fail_msg("run: %s", gpux_last_error());
  gpux_session_free(s);
  unsetenv("GPUX_OPTIMIZE");
}

static int count_ops(gpux_model *model, const char *op_type, int *total) { /* total: nodes after */
  gpux__graph *g;
  assert_int_equal(gpux__graph_optimize(model->graph, &g), 0);
  const gpux__graph *use = g ? g : model->graph;
  int n = 0;
  for (int i = 0; i < use->n_nodes; i++) n += !strcmp(use->nodes[i].op_type, op_type);
  if (total) *total = use->n_nodes;
  gpux__graph_optimized_free(g);
  return n;
}

/* The rewritten graph holds `attention` Attention nodes and no Softmax when it fused; both runs
 * agree to 1e-5 relative. */
static void check(gpux_model *model, mb *m, int attention, int n_out) {
  assert_int_equal(count_ops(model, "Attention", NULL), attention);
  if (attention) assert_int_equal(count_ops(model, "Softmax", NULL), 0);
  gpux_tensor a[2], b[2];
  run(model, m, 0, a, n_out);
  run(model, m, 1, b, n_out);
  for (int i = 0; i < n_out; i++) {
    gpux_compare_report r;
    if (gpux_tensor_compare(&b[i], &a[i], 1e-5, 1e-6, &r)) fail_msg("output %d: fused run differs: %s", i, r.message);
    gpux_tensor_free(&a[i]);
    gpux_tensor_free(&b[i]);
  }
  for (int i = 0; i < m->n_inputs; i++) gpux_tensor_free(&m->inputs[i]);
  gpux_model_free(model);
}

/* The causal attribute of the rewritten graph's Attention node (-1: none there). */
static int causal_of(gpux_model *model) {
  gpux__graph *g;
  assert_int_equal(gpux__graph_optimize(model->graph, &g), 0);
  int c = -1;
  for (int i = 0; g && i < g->n_nodes; i++)
    if (!strcmp(g->nodes[i].op_type, "Attention")) {
      const gpux__attr *a = gpux__node_attr(&g->nodes[i], "is_causal");
      c = a ? (int)a->i : 0;
    }
  gpux__graph_optimized_free(g);
  return c;
}

/* The q_num_heads of the rewritten graph's first Attention node (0: none, -1: no Attention). */
static int64_t heads_of(gpux_model *model) {
  gpux__graph *g;
  assert_int_equal(gpux__graph_optimize(model->graph, &g), 0);
  int64_t h = -1;
  for (int i = 0; g && i < g->n_nodes && h < 0; i++)
    if (!strcmp(g->nodes[i].op_type, "Attention")) {
      const gpux__attr *a = gpux__node_attr(&g->nodes[i], "q_num_heads");
      h = a ? a->i : 0;
    }
  gpux__graph_optimized_free(g);
  return h;
}

/* Attention on [B, S, H * D]: H heads there, no Transpose left, and the fused run packed its
 * keys and values from the 3-D inputs (B * H of them) where the machine has the packed kernels. */
static void check_in_place(gpux_model *model, mb *m, int n_out) {
  assert_int_equal(heads_of(model), H);
  assert_int_equal(count_ops(model, "Transpose", NULL), 0);
  long long before = gpux__attention_kv_strided;
  check(model, m, 1, n_out);
  if (gpux__sgemm_nr()) assert_int_equal(gpux__attention_kv_strided - before, B * H);
}

/* ---- the blocks ---- */

/* BERT as the TorchScript exporter wrote it before SDPA: K^T by Transpose [0, 2, 3, 1],
 * Div by sqrt(D), Add of an additive [B, 1, 1, mask_keys] mask. The Softmax may be a graph output
 * too. */
static gpux_model *bert(mb *m, int softmax_out, int64_t mask_keys) {
  start(m);
  int64_t md[4] = {B, 1, 1, mask_keys};
  input(m, "mask", GPUX_DT_FLOAT, 4, md, NULL);
  scalar(m, "sqrt_d", sqrtf((float)D));
  heads(m, "x", "wq", "q");
  heads(m, "x", "wv", "v");
  op(m, "MatMul", IN("x", "wk"), "k_mm");
  op(m, "Reshape", IN("k_mm", "heads_shape"), "k_rs");
  transpose(m, "k_rs", "kt", 0, 2, 3, 1);
  op(m, "MatMul", IN("q", "kt"), "s");
  op(m, "Div", IN("s", "sqrt_d"), "s_scaled");
  op(m, "Add", IN("s_scaled", "mask"), "s_masked");
  int64_t axis = -1;
  node(m, "Softmax", IN("s_masked"), "p", "axis", -1, &axis);
  op(m, "MatMul", IN("p", "v"), "ctx");
  merge(m, "ctx");
  return softmax_out ? finish(m, IN("y", "p")) : finish(m, IN("y"));
}

static void test_bert(void **state) {
  (void)state;
  mb m;
  check_in_place(bert(&m, 0, S), &m, 1);
}

static void test_bert_softmax_read_twice(void **state) {
  (void)state;
  mb m;
  check(bert(&m, 1, S), &m, 0, 2);
}

/* A mask declared with one key broadcasts over the keys in Add; Attention would pad it with -inf. */
static void test_bert_mask_of_one_key(void **state) {
  (void)state;
  mb m;
  check(bert(&m, 0, 1), &m, 0, 1);
}

/* A boolean key mask: batch 1 masks keys 3 and 4, and every key of query row 1 (a fully masked
 * row, which torch's clean-up turns into zeros). */
static int key_mask(const int64_t *i) { return !(i[0] == 1 && i[3] >= 3) && !(i[0] == 1 && i[2] == 1); }

/* BERT / ViT through torch's scaled_dot_product_attention (TorchScript exporter): sqrt(scale)
 * on Q and on K^T, Add of Where(mask, 0, -inf), Softmax, Where(IsNaN(P), 0, P). */
static void test_bert_sdpa(void **state) {
  (void)state;
  mb m;
  start(&m);
  int64_t md[4] = {B, 1, S, S};
  input(&m, "keep", GPUX_DT_BOOL, 4, md, key_mask);
  scalar(&m, "half", 1.0f / sqrtf(sqrtf((float)D)));
  scalar(&m, "zero", 0.0f);
  scalar(&m, "ninf", -INFINITY);
  heads(&m, "x", "wq", "q");
  heads(&m, "x", "wv", "v");
  op(&m, "MatMul", IN("x", "wk"), "k_mm");
  op(&m, "Reshape", IN("k_mm", "heads_shape"), "k_rs");
  transpose(&m, "k_rs", "kt", 0, 2, 3, 1);
  op(&m, "Mul", IN("q", "half"), "qs");
  op(&m, "Mul", IN("kt", "half"), "ks");
  op(&m, "MatMul", IN("qs", "ks"), "s");
  op(&m, "Where", IN("keep", "zero", "ninf"), "bias");
  op(&m, "Add", IN("s", "bias"), "s_masked");
  int64_t axis = -1;
  node(&m, "Softmax", IN("s_masked"), "p0", "axis", -1, &axis);
  op(&m, "IsNaN", IN("p0"), "nan");
  op(&m, "Where", IN("nan", "zero", "p0"), "p");
  op(&m, "MatMul", IN("p", "v"), "ctx");
  merge(&m, "ctx");
  check_in_place(finish(&m, IN("y")), &m, 1);
}

/* ViT through the dynamo exporter: no mask, K^T as Reshape(Transpose(Reshape(K, [-1, S, D]),
 * [0, 2, 1]), [B, H, D, S]) with constant shapes. */
static void test_vit_dynamo(void **state) {
  (void)state;
  mb m;
  start(&m);
  int64_t flat[3] = {-1, S, D}, kt4[4] = {B, H, D, S};
  ints(&m, "flat", 3, flat);
  ints(&m, "kt_shape", 4, kt4);
  scalar(&m, "half", 1.0f / sqrtf(sqrtf((float)D)));
  heads(&m, "x", "wq", "q");
  heads(&m, "x", "wk", "k");
  heads(&m, "x", "wv", "v");
  op(&m, "Reshape", IN("k", "flat"), "k3");
  int64_t perm[3] = {0, 2, 1};
  node(&m, "Transpose", IN("k3"), "k3t", "perm", 3, perm);
  op(&m, "Reshape", IN("k3t", "kt_shape"), "kt");
  op(&m, "Mul", IN("q", "half"), "qs");
  op(&m, "Mul", IN("kt", "half"), "ks");
  op(&m, "MatMul", IN("qs", "ks"), "s");
  int64_t axis = -1;
  node(&m, "Softmax", IN("s"), "p", "axis", -1, &axis);
  op(&m, "MatMul", IN("p", "v"), "ctx");
  merge(&m, "ctx");
  check(finish(&m, IN("y")), &m, 1, 1);
}

/* GPT-2 as tests/models/gpt.mjs writes it: a causal mask Slice'd from a constant [MAXPOS, MAXPOS]
 * lower-triangular table, Mul by the scale after the product, Where(mask, s, -1e4). */
static void test_gpt_causal(void **state) {
  (void)state;
  mb m;
  start(&m);
  uint8_t tril[MAXPOS * MAXPOS];
  for (int i = 0; i < MAXPOS; i++)
    for (int j = 0; j < MAXPOS; j++) tril[i * MAXPOS + j] = j <= i;
  int64_t td[2] = {MAXPOS, MAXPOS}, zeros[2] = {0, 0}, ends[2] = {S, S}, axes[2] = {0, 1};
  pbw_tensor(&m.g, 5, "tril", GPUX_DT_BOOL, 2, td, tril, sizeof tril);
  ints(&m, "starts", 2, zeros);
  ints(&m, "ends", 2, ends);
  ints(&m, "axes", 2, axes);
  scalar(&m, "scale", 1.0f / sqrtf((float)D));
  scalar(&m, "masked", -1e4f);
  op(&m, "Slice", IN("tril", "starts", "ends", "axes"), "causal");
  heads(&m, "x", "wq", "q");
  heads(&m, "x", "wk", "k");
  heads(&m, "x", "wv", "v");
  transpose(&m, "k", "kt", 0, 1, 3, 2);
  op(&m, "MatMul", IN("q", "kt"), "s");
  op(&m, "Mul", IN("s", "scale"), "s_scaled");
  op(&m, "Where", IN("causal", "s_scaled", "masked"), "s_masked");
  int64_t axis = -1;
  node(&m, "Softmax", IN("s_masked"), "p", "axis", -1, &axis);
  op(&m, "MatMul", IN("p", "v"), "ctx");
  merge(&m, "ctx");
  gpux_model *model = finish(&m, IN("y"));
  assert_int_equal(causal_of(model), 1);
  check_in_place(model, &m, 1);
}

/* GPT-2 as its first exports wrote it: K^T by Transpose [0, 2, 3, 1], Div by sqrt(D),
 * s * b - 1e4 * (1 - b) with b a Slice of a constant float [1, 1, MAXPOS, MAXPOS] 0/1 table, then
 * the additive attention mask. */
static void test_gpt2_mul_sub(void **state) {
  (void)state;
  mb m;
  start(&m);
  int64_t md[4] = {B, 1, 1, S};
  input(&m, "mask", GPUX_DT_FLOAT, 4, md, NULL);
  float bias[MAXPOS * MAXPOS];
  for (int i = 0; i < MAXPOS; i++)
    for (int j = 0; j < MAXPOS; j++) bias[i * MAXPOS + j] = j <= i ? 1.0f : 0.0f;
  int64_t bd[4] = {1, 1, MAXPOS, MAXPOS}, zeros[2] = {0, 0}, ends[2] = {S, S}, axes[2] = {2, 3};
  init_f32(&m, "bias", 4, bd, bias);
  ints(&m, "starts", 2, zeros);
  ints(&m, "ends", 2, ends);
  ints(&m, "axes", 2, axes);
  scalar(&m, "sqrt_d", sqrtf((float)D));
  scalar(&m, "one", 1.0f);
  scalar(&m, "big", 1e4f);
  op(&m, "Slice", IN("bias", "starts", "ends", "axes"), "b");
  heads(&m, "x", "wq", "q");
  heads(&m, "x", "wv", "v");
  op(&m, "MatMul", IN("x", "wk"), "k_mm");
  op(&m, "Reshape", IN("k_mm", "heads_shape"), "k_rs");
  transpose(&m, "k_rs", "kt", 0, 2, 3, 1);
  op(&m, "MatMul", IN("q", "kt"), "s");
  op(&m, "Div", IN("s", "sqrt_d"), "s_scaled");
  op(&m, "Mul", IN("s_scaled", "b"), "s_kept");
  op(&m, "Sub", IN("one", "b"), "not_b");
  op(&m, "Mul", IN("big", "not_b"), "drop");
  op(&m, "Sub", IN("s_kept", "drop"), "s_causal");
  op(&m, "Add", IN("s_causal", "mask"), "s_masked");
  int64_t axis = -1;
  node(&m, "Softmax", IN("s_masked"), "p", "axis", -1, &axis);
  op(&m, "MatMul", IN("p", "v"), "ctx");
  merge(&m, "ctx");
  check(finish(&m, IN("y")), &m, 1, 1);
}

/* Query i of the new S sees keys up to P + i; batch 1's first key is padding. */
static int kv_masked(const int64_t *i) { return i[3] > P + i[2] || (i[0] == 1 && i[3] == 0); }

/* GPT-2 with a KV cache: present = Concat(past, new) (graph outputs too), K^T by Transpose
 * [0, 1, 3, 2] of present, Div by sqrt(D), Where(Cast(Not(keep)), -1e9, s). */
static void test_gpt_kv_cache(void **state) {
  (void)state;
  mb m;
  start(&m);
  int64_t pd[4] = {B, H, P, D}, md[4] = {B, 1, S, P + S};
  input(&m, "past_k", GPUX_DT_FLOAT, 4, pd, NULL);
  input(&m, "past_v", GPUX_DT_FLOAT, 4, pd, NULL);
  input(&m, "masked", GPUX_DT_BOOL, 4, md, kv_masked);
  scalar(&m, "sqrt_d", sqrtf((float)D));
  scalar(&m, "fill", -1e9f);
  heads(&m, "x", "wq", "q");
  heads(&m, "x", "wk", "k");
  heads(&m, "x", "wv", "v");
  int64_t axis2 = 2, axis = -1, to_bool = GPUX_DT_BOOL;
  node(&m, "Concat", IN("past_k", "k"), "present_k", "axis", -1, &axis2);
  node(&m, "Concat", IN("past_v", "v"), "present_v", "axis", -1, &axis2);
  transpose(&m, "present_k", "kt", 0, 1, 3, 2);
  op(&m, "MatMul", IN("q", "kt"), "s");
  op(&m, "Div", IN("s", "sqrt_d"), "s_scaled");
  op(&m, "Not", IN("masked"), "keep");
  op(&m, "Not", IN("keep"), "drop");
  node(&m, "Cast", IN("drop"), "drop_b", "to", -1, &to_bool);
  op(&m, "Where", IN("drop_b", "fill", "s_scaled"), "s_masked");
  node(&m, "Softmax", IN("s_masked"), "p", "axis", -1, &axis);
  op(&m, "MatMul", IN("p", "present_v"), "ctx");
  merge(&m, "ctx");
  gpux_model *model = finish(&m, IN("y", "present_k", "present_v"));
  assert_int_equal(causal_of(model), 0);
  gpux_tensor a[3], b[3];
  assert_int_equal(count_ops(model, "Attention", NULL), 1);
  run(model, &m, 0, a, 3);
  run(model, &m, 1, b, 3);
  for (int i = 0; i < 3; i++) {
    gpux_compare_report r;
    if (gpux_tensor_compare(&b[i], &a[i], 1e-5, 1e-6, &r)) fail_msg("output %d: fused run differs: %s", i, r.message);
    gpux_tensor_free(&a[i]);
    gpux_tensor_free(&b[i]);
  }
  for (int i = 0; i < m.n_inputs; i++) gpux_tensor_free(&m.inputs[i]);
  gpux_model_free(model);
}

/* Two layers masked by the same Where condition: the mask, re-expressed without the scores, is
 * the same in both, and the rewritten graph computes it once. */
static int later_key(const int64_t *i) { return i[3] > i[2]; }

static void layer(mb *m, const char *x, const char *tag, const char *out) {
  char q[32], k[32], v[32], kt[32], sc[32], sd[32], sm[32], p[32], c[32], ct[32];
  snprintf(q, sizeof q, "q%s", tag), snprintf(k, sizeof k, "k%s", tag), snprintf(v, sizeof v, "v%s", tag);
  snprintf(kt, sizeof kt, "kt%s", tag), snprintf(sc, sizeof sc, "s%s", tag), snprintf(sd, sizeof sd, "sd%s", tag);
  snprintf(sm, sizeof sm, "sm%s", tag), snprintf(p, sizeof p, "p%s", tag), snprintf(c, sizeof c, "c%s", tag);
  snprintf(ct, sizeof ct, "ct%s", tag);
  heads(m, x, "wq", q);
  heads(m, x, "wk", k);
  heads(m, x, "wv", v);
  transpose(m, k, kt, 0, 1, 3, 2);
  op(m, "MatMul", IN(q, kt), sc);
  op(m, "Div", IN(sc, "sqrt_d"), sd);
  op(m, "Where", IN("masked", "fill", sd), sm);
  int64_t axis = -1;
  node(m, "Softmax", IN(sm), p, "axis", -1, &axis);
  op(m, "MatMul", IN(p, v), c);
  transpose(m, c, ct, 0, 2, 1, 3);
  op(m, "Reshape", IN(ct, "merge_shape"), out);
}

static void test_mask_shared_by_layers(void **state) {
  (void)state;
  mb m;
  start(&m);
  int64_t md[4] = {B, 1, S, S};
  input(&m, "masked", GPUX_DT_BOOL, 4, md, later_key);
  scalar(&m, "sqrt_d", sqrtf((float)D));
  scalar(&m, "fill", -1e9f);
  layer(&m, "x", "1", "x2");
  layer(&m, "x2", "2", "y");
  gpux_model *model = finish(&m, IN("y"));
  assert_int_equal(count_ops(model, "Where", NULL), 1);
  assert_int_equal(count_ops(model, "Transpose", NULL), 0);
  check(model, &m, 2, 1);
}

/* GPT-2 as Hugging Face writes it: the heads' shape x.size()[:-1] + (H, D), Concat(Slice(Shape(x),
 * 0, -1), [H, D]), known only at run time but for its constant last part. The heads go in place
 * unless `extra` gives one of Q (1) or the output before its Transpose back (2) another reader,
 * or the output goes back by another perm (3). */
static gpux_model *gpt_hf(mb *m, int extra) {
  start(m);
  int64_t hd[2] = {H, D}, zero[1] = {0}, minus1[1] = {-1};
  ints(m, "hd", 2, hd);
  ints(m, "zero", 1, zero);
  ints(m, "minus1", 1, minus1);
  scalar(m, "sqrt_d", sqrtf((float)D));
  const char *w[3] = {"wq", "wk", "wv"}, *names[3] = {"q", "k", "v"};
  for (int i = 0; i < 3; i++) {
    char mm[16], sh[16], sl[16], cs[16], rs[16];
    snprintf(mm, sizeof mm, "%s_mm", names[i]), snprintf(sh, sizeof sh, "%s_sh", names[i]);
    snprintf(sl, sizeof sl, "%s_sl", names[i]), snprintf(cs, sizeof cs, "%s_cs", names[i]);
    snprintf(rs, sizeof rs, "%s_rs", names[i]);
    op(m, "MatMul", IN("x", w[i]), mm);
    op(m, "Shape", IN(mm), sh);
    op(m, "Slice", IN(sh, "zero", "minus1"), sl);
    int64_t axis0 = 0;
    node(m, "Concat", IN(sl, "hd"), cs, "axis", -1, &axis0);
    op(m, "Reshape", IN(mm, cs), rs);
    transpose(m, rs, names[i], 0, 2, 1, 3);
  }
  transpose(m, "k", "kt", 0, 1, 3, 2);
  op(m, "MatMul", IN("q", "kt"), "s");
  op(m, "Div", IN("s", "sqrt_d"), "s_scaled");
  int64_t axis = -1;
  node(m, "Softmax", IN("s_scaled"), "p", "axis", -1, &axis);
  op(m, "MatMul", IN("p", "v"), "ctx");
  if (extra == 3) {
    transpose(m, "ctx", "y_t", 0, 2, 3, 1);
    op(m, "Reshape", IN("y_t", "merge_shape"), "y");
  } else {
    merge(m, "ctx");
  }
  if (extra == 1) return finish(m, IN("y", "q"));
  if (extra == 2) return finish(m, IN("y", "ctx"));
  return finish(m, IN("y"));
}

static void test_gpt_hf_heads(void **state) {
  (void)state;
  mb m;
  check_in_place(gpt_hf(&m, 0), &m, 1);
}

static void test_heads_read_elsewhere(void **state) {
  (void)state;
  for (int extra = 1; extra <= 3; extra++) {
    mb m;
    gpux_model *model = gpt_hf(&m, extra);
    assert_int_equal(heads_of(model), 0);
    assert_int_equal(count_ops(model, "Transpose", NULL), 4);
    check(model, &m, 1, extra < 3 ? 2 : 1);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bert),
    cmocka_unit_test(test_bert_softmax_read_twice),
    cmocka_unit_test(test_bert_mask_of_one_key),
    cmocka_unit_test(test_bert_sdpa),
    cmocka_unit_test(test_vit_dynamo),
    cmocka_unit_test(test_gpt_causal),
    cmocka_unit_test(test_gpt_kv_cache),
    cmocka_unit_test(test_gpt2_mul_sub),
    cmocka_unit_test(test_mask_shared_by_layers),
    cmocka_unit_test(test_gpt_hf_heads),
    cmocka_unit_test(test_heads_read_elsewhere),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
