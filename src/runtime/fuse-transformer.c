/* fuse-transformer.c — the graph rewrites for transformer blocks as exporters write them
 * (torch.onnx.export at opsets 14 to 18: BERT, ViT, GPT-2), run by optimize.c on its copy of the
 * graph after the Conv fusion:
 *
 *   1. GELU written out becomes one Gelu node (opset 20's, which both backends run):
 *        x * 0.5 * (1 + Erf(x / sqrt(2)))                               approximate = "none"
 *        x * 0.5 * (1 + Tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))      approximate = "tanh"
 *      with the three factors multiplied in any order, x / sqrt(2) also as x * (1 / sqrt(2)) and
 *      x^3 as Pow(x, 3) or x * x * x.
 *   2. LayerNorm written out (opsets before 17 have no LayerNormalization):
 *        d = x - ReduceMean(x); y = d / Sqrt(ReduceMean(d^2) + eps) * gamma + beta
 *      over the last axis, with constant gamma and beta [D], becomes LayerNormalization.
 *   3. A float32 MatMul or Gemm by constant 2-D weights, with the Add of a constant bias [N] after
 *      it (or a Gemm's C [N]), the Relu, Tanh or Gelu after that (also through a Reshape in
 *      between, as GPT-2's Conv1D writes it) and the residual Add of a computed value after that,
 *      any of them, becomes one gpux.FusedMatMul (linalg.c):
 *        Y = act(A x B + bias) + R
 *      whose bias, activation and residual run on each tile of the product while it is in cache
 *      (a residual that turns out to broadcast is added in a second pass, on the CPU). Weights
 *      that a Transpose of a constant makes (a tied embedding as the output layer) are read as
 *      they are, with transB: no Transpose per run, and the product alone is fused too.
 *
 * A pattern is rewritten only when the values inside it have no reader outside it (a graph output
 * or a value a nested graph captures counts as such a reader). The first node of a pattern becomes
 * the new node and the others are marked dead; optimize.c drops them and sorts the graph again. */
#include "runtime/fuse-transformer.h"
#include "runtime/rewrite.h"
#include "ops/op.h"
#include <math.h>
#include <stdlib.h>

/* The rewrites' state over one graph: who reads and who makes each value among the live nodes. */
typedef struct {
  gpux__graph *g;
  unsigned char *dead;     /* [n_nodes] nodes removed */
  gpux__arena *arena;      /* the rewritten nodes' input lists and attributes */
  int *uses;               /* [n_values] readers (a graph output or a capture counts as 1000) */
  int *start, *rd;         /* readers of value v: rd[start[v] .. start[v + 1]) */
  int *prod;               /* [n_values] the live node making v, or -1 */
} ft_ctx;

/* Readers and producers of every value among the live nodes. */
static int index_build(ft_ctx *f) {
  const gpux__graph *g = f->g;
  int nv = g->n_values;
  free(f->uses), free(f->start), free(f->rd), free(f->prod);
  f->uses = gpux__calloc((size_t)nv + 1, sizeof *f->uses);
  f->start = gpux__calloc((size_t)nv + 2, sizeof *f->start);
  f->prod = gpux__malloc(((size_t)nv + 1) * sizeof *f->prod);
  int total = 0;
  for (int i = 0; i < g->n_nodes; i++) total += f->dead[i] ? 0 : g->nodes[i].n_in;
  f->rd = gpux__malloc(((size_t)total + 1) * sizeof *f->rd);
  if (!f->uses || !f->start || !f->prod || !f->rd) return GPUX_E_NOMEM;
  for (int v = 0; v < nv; v++) f->prod[v] = -1;
  for (int i = 0; i < g->n_nodes; i++) {
    if (f->dead[i]) continue;
    const gpux__node *n = &g->nodes[i];
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0) f->start[n->in[j] + 1]++, f->uses[n->in[j]]++;
    for (int j = 0; j < n->n_out; j++)
      if (n->out[j] >= 0) f->prod[n->out[j]] = i;
    gpux__count_captures(n, f->uses, 1000);
  }
  for (int o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] >= 0) f->uses[g->outputs[o]] += 1000;
  for (int v = 0; v < nv; v++) f->start[v + 1] += f->start[v];
  int *fill = gpux__malloc(((size_t)nv + 1) * sizeof *fill);
  if (!fill) return GPUX_E_NOMEM;
  memcpy(fill, f->start, (size_t)nv * sizeof *fill);
  for (int i = 0; i < g->n_nodes; i++) {
    if (f->dead[i]) continue;
    const gpux__node *n = &g->nodes[i];
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0) f->rd[fill[n->in[j]]++] = i;
  }
  free(fill);
  return 0;
}

/* The node that alone reads v (once), or -1. */
static int only_reader(const ft_ctx *f, int v) { return v >= 0 && f->uses[v] == 1 ? f->rd[f->start[v]] : -1; }

/* The live node making v when it has one output, or -1. */
static int producer(const ft_ctx *f, int v) {
  int p = v >= 0 ? f->prod[v] : -1;
  return p >= 0 && !f->dead[p] && f->g->nodes[p].n_out == 1 ? p : -1;
}

/* A one-element constant (float32, or an integer for exponents) within a relative 1e-4 of want,
 * or want rounded to float16 (a float16 model's constant computed in float32, lower-fp16.c). */
static int near(const gpux__graph *g, int id, double want) {
  const gpux_tensor *t = gpux__graph_const(g, id);
  if (!t || gpux_tensor_count(t) != 1) return 0;
  double v;
  if (t->dtype == GPUX_DT_FLOAT) v = ((const float *)t->data)[0];
  else if (t->dtype == GPUX_DT_INT64) v = (double)((const int64_t *)t->data)[0];
  else if (t->dtype == GPUX_DT_INT32) v = ((const int32_t *)t->data)[0];
  else return 0;
  return fabs(v - want) <= 1e-4 * fabs(want) || v == gpux__f16_to_f32(gpux__f32_to_f16((float)want));
}

/* Node i is the binary op `op` (one output) with x as one operand: the other one, else -1. */
static int other_of(const ft_ctx *f, int i, const char *op, int x) {
  if (i < 0 || f->dead[i]) return -1;
  const gpux__node *n = &f->g->nodes[i];
  if (!gpux__node_is(n, op) || n->n_in != 2 || n->n_out != 1 || n->out[0] < 0) return -1;
  if (n->in[0] == x && n->in[1] != x) return n->in[1];
  if (n->in[1] == x && n->in[0] != x) return n->in[0];
  return -1;
}

/* The operand of the binary node i (op `op`) that is not the constant near `c`, or -1. */
static int operand_by_const(const ft_ctx *f, int i, const char *op, double c) {
  if (i < 0 || f->dead[i]) return -1;
  const gpux__node *n = &f->g->nodes[i];
  if (!gpux__node_is(n, op) || n->n_in != 2 || n->n_out != 1) return -1;
  if (near(f->g, n->in[1], c)) return n->in[0];
  if (near(f->g, n->in[0], c) && strcmp(op, "Div") && strcmp(op, "Sub") && strcmp(op, "Pow")) return n->in[1];
  return -1;
}

/* Rewrites node i into a node of op `op_type` reading in[n_in] and making `out`, with attrs. */
static int rewrite(ft_ctx *f, int i, const char *domain, const char *op_type, int opset, const int *in, int n_in, int out,
                   const gpux__attr *attrs, int n_attrs) {
  gpux__node *n = &f->g->nodes[i];
  const gpux__op_def *def = gpux__op_find(domain, op_type, opset);
  int *ins = gpux__arena_alloc(f->arena, (size_t)n_in * sizeof *ins);
  int *outs = gpux__arena_alloc(f->arena, sizeof *outs);
  gpux__attr *as = n_attrs ? gpux__arena_alloc(f->arena, (size_t)n_attrs * sizeof *as) : NULL;
  if (!def || !ins || !outs || (n_attrs && !as)) return def ? GPUX_E_NOMEM : gpux__error(GPUX_E_INTERNAL, "no kernel for %s", op_type);
  memcpy(ins, in, (size_t)n_in * sizeof *ins);
  outs[0] = out;
  if (n_attrs) memcpy(as, attrs, (size_t)n_attrs * sizeof *as);
  n->domain = domain, n->op_type = op_type, n->opset = opset, n->op = def;
  n->n_in = n_in, n->in = ins, n->n_out = 1, n->out = outs;
  n->n_attrs = n_attrs, n->attrs = as;
  return 0;
}

static gpux__attr str_attr(const char *name, const char *s) {
  return (gpux__attr){.name = name, .type = GPUX_ATTR_STRING, .s = s, .s_len = strlen(s)};
}

/* ---- 1. GELU ---- */

/* p = the "1 + Erf" or "1 + Tanh" factor; finds p * x * 0.5 in any order of the two Muls: the
 * value it ends in (nodes in m[2]), or -1. */
static int half_x_times(const ft_ctx *f, int x, int p, int m[2]) {
  int r = only_reader(f, p), o = other_of(f, r, "Mul", p);
  if (o < 0) return -1;
  const gpux__graph *g = f->g;
  int ro = g->nodes[r].out[0];
  m[0] = r;
  if (o == x) { /* (x * p) * 0.5 */
    int r2 = only_reader(f, ro);
    if (other_of(f, r2, "Mul", ro) < 0 || operand_by_const(f, r2, "Mul", 0.5) != ro) return -1;
    m[1] = r2;
    return g->nodes[r2].out[0];
  }
  if (near(g, o, 0.5)) { /* (p * 0.5) * x */
    int r2 = only_reader(f, ro);
    if (other_of(f, r2, "Mul", ro) != x) return -1;
    m[1] = r2;
    return g->nodes[r2].out[0];
  }
  int h = producer(f, o); /* (x * 0.5) * p */
  if (h < 0 || only_reader(f, o) != r || operand_by_const(f, h, "Mul", 0.5) != x) return -1;
  m[1] = h;
  return ro;
}

/* The Erf node e of 0.5 * x * (1 + Erf(x / sqrt(2))). */
static int fuse_gelu_erf(ft_ctx *f, int e) {
  const gpux__graph *g = f->g;
  const gpux__node *en = &g->nodes[e];
  if (!gpux__node_is(en, "Erf") || en->n_in != 1 || en->n_out != 1) return 0;
  int u = en->in[0], d = producer(f, u), x;
  if (d < 0 || only_reader(f, u) != e) return 0;
  if ((x = operand_by_const(f, d, "Div", M_SQRT2)) < 0 && (x = operand_by_const(f, d, "Mul", M_SQRT1_2)) < 0) return 0;
  int a = only_reader(f, en->out[0]), p, m[2];
  if (a < 0 || operand_by_const(f, a, "Add", 1.0) != en->out[0]) return 0;
  p = g->nodes[a].out[0];
  int y = half_x_times(f, x, p, m);
  if (y < 0 || gpux__graph_const(g, x)) return 0;
  int rc = rewrite(f, d, "", "Gelu", 20, &x, 1, y, NULL, 0);
  if (rc) return rc;
  f->dead[e] = f->dead[a] = f->dead[m[0]] = f->dead[m[1]] = 1;
  return 0;
}

/* x^3 as Pow(x, 3), x * (x * x) or (x * x) * x: x (nodes in c[2], c[1] -1 for Pow), or -1. */
static int cube_of(const ft_ctx *f, int v, int c[2]) {
  int i = producer(f, v);
  if (i < 0) return -1;
  const gpux__node *n = &f->g->nodes[i];
  c[0] = i, c[1] = -1;
  if (gpux__node_is(n, "Pow") && n->n_in == 2 && near(f->g, n->in[1], 3.0)) return n->in[0];
  if (!gpux__node_is(n, "Mul") || n->n_in != 2) return -1;
  for (int s = 0; s < 2; s++) {
    int sq = n->in[s], x = n->in[1 - s], j = producer(f, sq);
    if (j < 0 || only_reader(f, sq) != i) continue;
    const gpux__node *q = &f->g->nodes[j];
    if (gpux__node_is(q, "Mul") && q->n_in == 2 && q->in[0] == x && q->in[1] == x) {
      c[1] = j;
      return x;
    }
  }
  return -1;
}

/* The Tanh node t of 0.5 * x * (1 + Tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))). */
static int fuse_gelu_tanh(ft_ctx *f, int t) {
  const gpux__graph *g = f->g;
  const gpux__node *tn = &g->nodes[t];
  if (!gpux__node_is(tn, "Tanh") || tn->n_in != 1 || tn->n_out != 1) return 0;
  int u = tn->in[0], m1 = producer(f, u);
  if (m1 < 0 || only_reader(f, u) != t) return 0;
  int s = operand_by_const(f, m1, "Mul", 0.7978845608028654), ad = producer(f, s);
  if (s < 0 || ad < 0 || only_reader(f, s) != m1) return 0;
  const gpux__node *an = &g->nodes[ad];
  if (!gpux__node_is(an, "Add") || an->n_in != 2) return 0;
  for (int side = 0; side < 2; side++) {
    int x = an->in[side], k3 = an->in[1 - side], m2 = producer(f, k3), c[2] = {-1, -1};
    if (m2 < 0 || only_reader(f, k3) != ad) continue;
    int cube = operand_by_const(f, m2, "Mul", 0.044715);
    if (cube < 0 || only_reader(f, cube) != m2 || cube_of(f, cube, c) != x) continue;
    int a1 = only_reader(f, tn->out[0]), m[2];
    if (a1 < 0 || operand_by_const(f, a1, "Add", 1.0) != tn->out[0]) return 0;
    int y = half_x_times(f, x, g->nodes[a1].out[0], m);
    if (y < 0 || gpux__graph_const(g, x)) return 0;
    gpux__attr ap = str_attr("approximate", "tanh");
    int rc = rewrite(f, c[0], "", "Gelu", 20, &x, 1, y, &ap, 1);
    if (rc) return rc;
    if (c[1] >= 0) f->dead[c[1]] = 1;
    f->dead[m2] = f->dead[ad] = f->dead[m1] = f->dead[t] = f->dead[a1] = f->dead[m[0]] = f->dead[m[1]] = 1;
    return 0;
  }
  return 0;
}

/* ---- 2. LayerNorm ---- */

/* Node i is a ReduceMean over the last axis only, keeping dims: its input, else -1. */
static int mean_last(const ft_ctx *f, int i) {
  if (i < 0 || f->dead[i]) return -1;
  const gpux__node *n = &f->g->nodes[i];
  if (!gpux__node_is(n, "ReduceMean") || n->n_out != 1 || n->n_in < 1) return -1;
  const gpux__attr *kd = gpux__node_attr(n, "keepdims");
  if (kd && !kd->i) return -1;
  int64_t axis;
  if (n->opset >= 18) {
    const gpux_tensor *t = n->n_in > 1 ? gpux__graph_const(f->g, n->in[1]) : NULL;
    if (!t || t->dtype != GPUX_DT_INT64 || gpux_tensor_count(t) != 1) return -1;
    axis = ((const int64_t *)t->data)[0];
  } else {
    const gpux__attr *ax = gpux__node_attr(n, "axes");
    if (n->n_in != 1 || !ax || ax->n != 1) return -1;
    axis = ax->ints[0];
  }
  int x = n->in[0];
  const gpux__value *v = &f->g->values[x];
  int last = axis == -1 || (v->has_info && v->info.ndim > 0 && axis == v->info.ndim - 1);
  return last ? x : -1;
}

/* A float32 1-D constant of at least two values: its count, else 0. */
static int64_t vector_len(const gpux__graph *g, int id) {
  const gpux_tensor *t = gpux__graph_const(g, id);
  return t && t->dtype == GPUX_DT_FLOAT && t->ndim == 1 && t->dims[0] > 1 ? t->dims[0] : 0;
}

/* The Sqrt node q of (x - mean(x)) / Sqrt(mean((x - mean(x))^2) + eps) * gamma + beta. */
static int fuse_layernorm(ft_ctx *f, int q) {
  const gpux__graph *g = f->g;
  const gpux__node *qn = &g->nodes[q];
  if (!gpux__node_is(qn, "Sqrt") || qn->n_in != 1 || qn->n_out != 1) return 0;
  int e = qn->in[0], ia = producer(f, e);
  float eps;
  if (ia < 0 || only_reader(f, e) != q) return 0;
  const gpux__node *an = &g->nodes[ia];
  if (!gpux__node_is(an, "Add") || an->n_in != 2) return 0;
  int var = gpux__graph_const_f32(g, an->in[1], &eps) ? an->in[0] : gpux__graph_const_f32(g, an->in[0], &eps) ? an->in[1] : -1;
  int r2 = producer(f, var);
  if (var < 0 || r2 < 0 || only_reader(f, var) != ia || eps < 0) return 0;
  int sq = mean_last(f, r2), ip = producer(f, sq);
  if (sq < 0 || ip < 0 || only_reader(f, sq) != r2) return 0;
  const gpux__node *pn = &g->nodes[ip];
  int d = operand_by_const(f, ip, "Pow", 2.0);
  if (d < 0 && gpux__node_is(pn, "Mul") && pn->n_in == 2 && pn->in[0] == pn->in[1]) d = pn->in[0];
  int is = producer(f, d);
  if (d < 0 || is < 0 || f->uses[d] != (gpux__node_is(pn, "Mul") ? 3 : 2)) return 0;
  const gpux__node *sn = &g->nodes[is];
  if (!gpux__node_is(sn, "Sub") || sn->n_in != 2) return 0;
  int x = sn->in[0], mean = sn->in[1], r1 = producer(f, mean);
  if (r1 < 0 || only_reader(f, mean) != is || mean_last(f, r1) != x) return 0;
  /* d's readers: the square and the Div by the Sqrt */
  int id = -1;
  for (int k = f->start[d]; k < f->start[d + 1]; k++)
    if (f->rd[k] != ip) id = f->rd[k];
  if (id < 0 || f->dead[id] || !gpux__node_is(&g->nodes[id], "Div") || g->nodes[id].n_in != 2 || g->nodes[id].in[0] != d ||
      g->nodes[id].in[1] != qn->out[0] || only_reader(f, qn->out[0]) != id)
    return 0;
  int normed = g->nodes[id].out[0], im = only_reader(f, normed);
  int gamma = other_of(f, im, "Mul", normed);
  int64_t dim = vector_len(g, gamma);
  if (!dim) return 0;
  int y = g->nodes[im].out[0], ib = only_reader(f, y), beta = other_of(f, ib, "Add", y);
  if (vector_len(g, beta) != dim) ib = -1, beta = -1;
  else y = g->nodes[ib].out[0];
  int in[3] = {x, gamma, beta};
  gpux__attr attrs[2] = {{.name = "axis", .type = GPUX_ATTR_INT, .i = -1},
                         {.name = "epsilon", .type = GPUX_ATTR_FLOAT, .f = eps}};
  int rc = rewrite(f, r1, "", "LayerNormalization", 17, in, beta >= 0 ? 3 : 2, y, attrs, 2);
  if (rc) return rc;
  f->dead[is] = f->dead[ip] = f->dead[r2] = f->dead[ia] = f->dead[q] = f->dead[id] = f->dead[im] = 1;
  if (ib >= 0) f->dead[ib] = 1;
  return 0;
}

/* ---- 3. MatMul + bias + activation ---- */

/* Node i: a Relu, Tanh or Gelu of either kind: its op type (a Gelu's approximate in *approx,
 * else NULL there), or NULL. */
static const char *activation(const ft_ctx *f, int i, const char **approx) {
  *approx = NULL;
  if (i < 0 || f->dead[i]) return NULL;
  const gpux__node *n = &f->g->nodes[i];
  if (n->n_in != 1 || n->n_out != 1 || n->out[0] < 0) return NULL;
  if (gpux__node_is(n, "Relu") || gpux__node_is(n, "Tanh")) return n->op_type;
  if (!gpux__node_is(n, "Gelu")) return NULL;
  const gpux__attr *a = gpux__node_attr(n, "approximate");
  *approx = a && a->s ? a->s : "none";
  return !strcmp(*approx, "none") || !strcmp(*approx, "tanh") ? n->op_type : NULL;
}

/* Value b, which node i alone reads, is a Transpose of constant 2-D weights (a tied embedding
 * read as the output layer): that Transpose node, else -1. The product reads the weights as they
 * are, transposed, so they are packed once instead of transposed and packed again every run. */
static int transposed_const(const ft_ctx *f, int i, int b) {
  int t = producer(f, b);
  if (t < 0 || only_reader(f, b) != i) return -1;
  const gpux__node *n = &f->g->nodes[t];
  if (!gpux__node_is(n, "Transpose") || n->n_in != 1) return -1;
  const gpux_tensor *w = gpux__graph_const(f->g, n->in[0]);
  const gpux__attr *perm = gpux__node_attr(n, "perm");
  if (!w || w->ndim != 2 || (perm && (perm->n != 2 || perm->ints[0] != 1 || perm->ints[1] != 0))) return -1;
  return t;
}

static int fuse_matmul(ft_ctx *f, int i) {
  const gpux__graph *g = f->g;
  const gpux__node *n = &g->nodes[i];
  int gemm = gpux__node_is(n, "Gemm");
  if ((!gemm && !gpux__node_is(n, "MatMul")) || n->n_in < 2 || n->n_out != 1 || n->out[0] < 0) return 0;
  int wid = n->in[1], t = transposed_const(f, i, wid);
  if (t >= 0) wid = g->nodes[t].in[0]; /* the weights as they are, read transposed */
  const gpux_tensor *w = gpux__graph_const(g, wid);
  if (!w || w->dtype != GPUX_DT_FLOAT || w->ndim != 2) return 0;
  int tb = t >= 0, y = n->out[0], bias = -1, ia = -1;
  int64_t cols = w->dims[tb ? 0 : 1];
  int has_c = gemm && n->n_in > 2 && n->in[2] >= 0;
  if (gemm) {
    const gpux__attr *ta = gpux__node_attr(n, "transA"), *tba = gpux__node_attr(n, "transB");
    const gpux__attr *al = gpux__node_attr(n, "alpha"), *be = gpux__node_attr(n, "beta");
    if ((ta && ta->i) || (al && al->f != 1.0f) || (has_c && be && be->f != 1.0f)) return 0;
    tb ^= tba && tba->i;
    cols = w->dims[tb ? 0 : 1];
  }
  if (has_c) {
    const gpux_tensor *c = gpux__graph_const(g, n->in[2]);
    if (!c || c->dtype != GPUX_DT_FLOAT || gpux_tensor_count(c) != cols || c->ndim < 1 || c->ndim > 2 ||
        c->dims[c->ndim - 1] != cols)
      return 0;
    bias = n->in[2];
  } else { /* the bias Add after it, if any */
    ia = only_reader(f, y);
    bias = other_of(f, ia, "Add", y);
    const gpux_tensor *c = gpux__graph_const(g, bias);
    if (c && c->dtype == GPUX_DT_FLOAT && c->ndim == 1 && c->dims[0] == cols) y = g->nodes[ia].out[0];
    else ia = bias = -1;
  }
  /* the activation, directly or through one Reshape */
  int r = only_reader(f, y), ir = -1;
  const char *approx, *act = activation(f, r, &approx);
  if (!act && r >= 0 && !f->dead[r] && gpux__node_is(&g->nodes[r], "Reshape") && g->nodes[r].in[0] == y &&
      g->nodes[r].n_out == 1 && (act = activation(f, only_reader(f, g->nodes[r].out[0]), &approx)))
    ir = r, r = only_reader(f, g->nodes[r].out[0]);
  int out = act && ir < 0 ? g->nodes[r].out[0] : y;
  /* the residual: an Add of a computed value of the product's shape (checked when run) */
  int ires = ir < 0 ? only_reader(f, out) : -1, res = other_of(f, ires, "Add", out);
  if (res >= 0 && gpux__graph_const(g, res)) res = -1;
  if (res >= 0) out = g->nodes[ires].out[0];
  /* nothing follows (a Gemm has its bias already), nor is a Transpose saved */
  if (!act && res < 0 && (has_c || bias < 0) && t < 0) return 0;
  gpux__attr attrs[3];
  int na = 0;
  if (act) attrs[na++] = str_attr("activation", act);
  if (approx) attrs[na++] = str_attr("approximate", approx);
  if (tb) attrs[na++] = (gpux__attr){.name = "transB", .type = GPUX_ATTR_INT, .i = 1};
  int in[4] = {n->in[0], wid, bias, res};
  if (ir >= 0) { /* the Reshape now makes what the activation made */
    int *ro = gpux__arena_alloc(f->arena, sizeof *ro);
    if (!ro) return GPUX_E_NOMEM;
    ro[0] = g->nodes[r].out[0];
    g->nodes[ir].out = ro;
  }
  int rc = rewrite(f, i, "gpux", "FusedMatMul", 1, in, res >= 0 ? 4 : bias >= 0 ? 3 : 2, out, attrs, na);
  if (rc) return rc;
  if (ia >= 0) f->dead[ia] = 1;
  if (act) f->dead[r] = 1;
  if (res >= 0) f->dead[ires] = 1;
  if (t >= 0) f->dead[t] = 1;
  return 0;
}

/* ---- driver ---- */

int gpux__fuse_transformer(gpux__graph *g, unsigned char *dead, gpux__arena *arena) {
  ft_ctx f = {.g = g, .dead = dead, .arena = arena};
  int rc = 0;
  const char *env = getenv("GPUX_FUSE_TRANSFORMER"); /* "0": off, to measure what it gives */
  if (env && !strcmp(env, "0")) return 0;
  /* each pass on readers counted afresh: a pass's rewrites change what the next one matches */
  static int (*const passes[])(ft_ctx *, int) = {fuse_gelu_erf, fuse_gelu_tanh, fuse_layernorm, fuse_matmul};
  for (size_t p = 0; p < GPUX__ARRAY_LEN(passes) && !rc; p++) {
    if ((rc = index_build(&f))) break;
    for (int i = 0; i < g->n_nodes && !rc; i++)
      if (!dead[i]) rc = passes[p](&f, i);
  }
  free(f.uses), free(f.start), free(f.rd), free(f.prod);
  return rc;
}
