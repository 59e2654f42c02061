/* fuse-attention.c — the optimizer's attention rewrite: scaled dot-product attention as
 * torch.onnx exports it, five to nine nodes, becomes one Attention node (opset-23 semantics,
 * ops/attention.c, and WebGPU's tiled kernel) that never makes the [S, T] scores; every backend
 * runs it (GPUX_FUSE_ATTENTION=0 turns it off, runtime/session.c). The pattern:
 *
 *   Q [B, H, S, D]        (optionally Mul / Div by a scalar: the scale applied to Q)
 *   K^T [B, H, D, T]      Transpose(x) with 4 axes, or Reshape(Transpose(x, last two swapped))
 *                         to 4 axes (the dynamo exporter); optionally scaled like Q
 *   s = MatMul(Q, K^T)    then Mul / Div by scalars (the scale after the product)
 *   s = Add(s, mask)      any number of additive masks of any broadcastable shape, and
 *   s = Where(c, s, f)    Where masks with a fill f <= -1e4 (-inf, finfo.min, -1e9, -1e4) on
 *       Where(c, f, s)      either side, and GPT-2's first form s * b - c * (1 - b) with b a
 *                           constant 0/1 table (or a Slice of one) and c >= 1e4
 *   P = Softmax(s, -1)    optionally with torch's NaN clean-up Where(IsNaN(P), 0, P)
 *   Y = MatMul(P, V)      V [B, H, T, Dv]
 *
 * becomes Y = Attention(Q, K, V, attn_mask) with scale = the product of the scales. K comes from
 * the same Transpose with its last two axes swapped back (none left: the Transpose goes), or the
 * dynamo Reshape reading x with the last two target dims swapped. The masks are re-expressed
 * additively on their own: the first Where (or Sub) reads a zero in the scores' place (the Mul
 * s * b goes), an Add that comes first is dropped and its other operand is the mask, and the
 * later mask nodes read the mask so far, so the mask nodes that remain compute [B, 1, S, T] (or
 * whatever their shape is) once instead of [B, H, S, T], and Attention adds the result. A Where
 * with a fill of -1e9 or less is exact that way: s + f rounds to f, even in a row that is masked
 * everywhere. When the only mask is Where(tril, s, f) with tril a constant lower-triangular
 * boolean (or a Slice of one from its top left corner), is_causal is set as well, so the kernel
 * skips the keys after each query.
 *
 * A rewrite happens only when the match is exact: every intermediate has no other reader (nor is
 * a graph output), Q, K^T and V have four axes as far as the graph shows, the scores are float32
 * (a float32 scale or fill says so), and the Softmax is over the last axis. One gap: a mask whose
 * last axis is 1 at run time (declared shapes rule it out where there are any) is read as padded
 * with -inf by Attention, where Add would broadcast it; attention masks have the keys there. A
 * KV cache that Concat's the past to the new keys stays as it is; Attention reads its result as K
 * and V.
 *
 * Then the heads' Transposes: where Q, K and V are Transpose(x, [0, 2, 1, 3]) of x [B, S, H, D]
 * (the projections' outputs with the heads split off by a Reshape) and the output goes back by the
 * same perm, the Attention node reads and writes [B, S, H * D] with q_num_heads and kv_num_heads
 * instead, and the four Transposes become Reshapes, which cost nothing (heads_in_place).
 * GPUX_ATTENTION_4D set in the environment keeps the 4-D form, for comparisons. */
#include "runtime/fuse-attention.h"
#include "runtime/rewrite.h"
#include "ops/op.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_STEPS 8

typedef struct {
  gpux__graph *g;
  gpux__arena *arena;
  unsigned char *dead;
  int *uses;                 /* readers of each value among the live nodes (outputs count 1000) */
  int zero;                  /* the float32 scalar 0 made for Where masks, -1 until needed */
  const gpux__op_def *attention, *reshape;
  int made[64], n_made;      /* the mask nodes rewritten so far (in graph order) */
} fa_ctx;

typedef struct {
  int node, side;            /* a node between Q K^T and the Softmax, and its input on that path */
  int keep;                  /* for s * b - c * (1 - b): the Mul s * b before the Sub, else -1 */
} fa_step;

typedef struct {
  int pv, sm, nan_where, nan_isnan, qk;
  int n_steps;
  fa_step steps[MAX_STEPS];  /* from the Softmax's input back towards the product's output */
} fa_match;

/* How K is read back from K^T. */
enum { K_TRANSPOSE, K_SAME, K_RESHAPE };

typedef struct {
  int kind;                  /* K_* */
  int t, r;                  /* the Transpose node, the dynamo Reshape node (K_RESHAPE) */
  int src;                   /* the value the Transpose reads */
  int64_t perm[4];           /* K_TRANSPOSE: the Transpose's new perm */
  int64_t shape[4];          /* K_RESHAPE: the Reshape's new shape */
} k_plan;

/* A float32 constant of one element, of rank 4 at most: its value in *v. */
static int scalar_f32(const gpux__graph *g, int id, float *v) {
  const gpux_tensor *t = gpux__graph_const(g, id);
  return t && t->ndim <= 4 && gpux__graph_const_f32(g, id, v);
}

/* A Where fill that masks: a float32 scalar of -1e4 or less. */
static int fill_ok(const gpux__graph *g, int id) {
  float f;
  return scalar_f32(g, id, &f) && f <= -1e4f;
}

static int producer(const fa_ctx *c, int id) {
  if (id < 0) return -1;
  int p = c->g->values[id].producer;
  return p >= 0 && !c->dead[p] ? p : -1;
}

static int64_t attr_i(const gpux__node *n, const char *name, int64_t dflt) {
  const gpux__attr *a = gpux__node_attr(n, name);
  return a ? a->i : dflt;
}

/* The rank of value id as far as the graph tells without running it (-1: unknown), its dims in
 * dims[] (-1 where unknown): declared types, constants, and Transpose / Reshape to a constant
 * shape / Concat / scaling by a scalar of those. */
static int shape_of(const fa_ctx *c, int id, int64_t *dims, int depth) {
  const gpux__graph *g = c->g;
  if (id < 0 || depth > 12) return -1;
  const gpux_tensor *t = gpux__graph_const(g, id);
  if (t) {
    for (int i = 0; i < t->ndim; i++) dims[i] = t->dims[i];
    return t->ndim;
  }
  const gpux__value *v = &g->values[id];
  if (v->has_info && v->info.ndim >= 0 && v->info.ndim <= GPUX_MAX_DIMS) {
    for (int i = 0; i < v->info.ndim; i++) dims[i] = v->info.dims[i] >= 0 ? v->info.dims[i] : -1;
    return v->info.ndim;
  }
  int p = producer(c, id);
  if (p < 0) return -1;
  const gpux__node *n = &g->nodes[p];
  int64_t in[GPUX_MAX_DIMS];
  float k;
  if (gpux__node_is(n, "Transpose") && n->n_in == 1) {
    const gpux__attr *perm = gpux__node_attr(n, "perm");
    int r = shape_of(c, n->in[0], in, depth + 1);
    if (!perm || perm->type != GPUX_ATTR_INTS || perm->n > GPUX_MAX_DIMS || (r >= 0 && r != perm->n)) return -1;
    for (int i = 0; i < perm->n; i++) {
      if (perm->ints[i] < 0 || perm->ints[i] >= perm->n) return -1;
      dims[i] = r >= 0 ? in[perm->ints[i]] : -1;
    }
    return perm->n;
  }
  if (gpux__node_is(n, "Reshape") && n->n_in == 2) {
    const gpux_tensor *s = gpux__graph_const(g, n->in[1]);
    if (!s || s->dtype != GPUX_DT_INT64 || s->ndim != 1 || s->dims[0] > GPUX_MAX_DIMS) return -1;
    int r = shape_of(c, n->in[0], in, depth + 1), allowzero = attr_i(n, "allowzero", 0) != 0;
    const int64_t *sd = s->data;
    for (int i = 0; i < s->dims[0]; i++)
      dims[i] = sd[i] > 0 ? sd[i] : sd[i] == 0 && allowzero ? 0 : sd[i] == 0 && i < r ? in[i] : -1;
    return (int)s->dims[0];
  }
  if (gpux__node_is(n, "Concat")) { /* the rank of its inputs */
    for (int i = 0; i < n->n_in; i++) {
      int r = shape_of(c, n->in[i], in, depth + 1);
      if (r < 0) continue;
      for (int d = 0; d < r; d++) dims[d] = -1;
      return r;
    }
    return -1;
  }
  if ((gpux__node_is(n, "Mul") || gpux__node_is(n, "Div")) && n->n_in == 2 && scalar_f32(g, n->in[1], &k))
    return shape_of(c, n->in[0], dims, depth + 1);
  if (gpux__node_is(n, "Mul") && n->n_in == 2 && scalar_f32(g, n->in[0], &k)) return shape_of(c, n->in[1], dims, depth + 1);
  return -1;
}

/* The element type a value is declared or known to have, 0 when unknown. */
static int dtype_of(const gpux__graph *g, int id) {
  const gpux_tensor *t = gpux__graph_const(g, id);
  if (t) return t->dtype;
  const gpux__value *v = &g->values[id];
  return v->has_info ? v->info.dtype : 0;
}

/* GPT-2's first exports mask with s * b - c * (1 - b), b a slice of a constant 0/1 table: for
 * the c * (1 - b) value id (a Mul by a scalar c >= 1e4 of Sub(1, b)), b's value id, else -1. */
static int keep_of(const fa_ctx *c, int id) {
  const gpux__graph *g = c->g;
  int p = producer(c, id);
  if (p < 0 || c->uses[id] != 1) return -1;
  const gpux__node *n = &g->nodes[p];
  if (!gpux__node_is(n, "Mul") || n->n_in != 2 || n->n_out != 1) return -1;
  float k;
  int side; /* the input that is not c */
  if (scalar_f32(g, n->in[0], &k)) side = 1;
  else if (scalar_f32(g, n->in[1], &k)) side = 0;
  else return -1;
  if (k < 1e4f) return -1;
  int ps = producer(c, n->in[side]);
  if (ps < 0 || c->uses[n->in[side]] != 1) return -1;
  const gpux__node *sub = &g->nodes[ps];
  float one;
  if (!gpux__node_is(sub, "Sub") || sub->n_in != 2 || sub->n_out != 1 || !scalar_f32(g, sub->in[0], &one) || one != 1.0f) return -1;
  int b = sub->in[1];
  const gpux_tensor *t = gpux__graph_const(g, b);
  int pb = producer(c, b);
  if (!t && pb >= 0 && gpux__node_is(&g->nodes[pb], "Slice") && g->nodes[pb].n_in >= 3) t = gpux__graph_const(g, g->nodes[pb].in[0]);
  if (!t || t->dtype != GPUX_DT_FLOAT) return -1;
  for (int64_t i = 0; i < gpux_tensor_count(t); i++) {
    float v = ((const float *)t->data)[i];
    if (v != 0.0f && v != 1.0f) return -1;
  }
  return b;
}

/* Follows value x back from the Softmax's input to the Q K^T MatMul through scalings and masks,
 * every value on the way read once; records the path in m. */
static int trace(const fa_ctx *c, fa_match *m, int x, int depth) {
  const gpux__graph *g = c->g;
  if (x < 0 || c->uses[x] != 1) return 0;
  int p = producer(c, x);
  if (p < 0) return 0;
  const gpux__node *n = &g->nodes[p];
  if (n->domain[0] || n->n_out != 1) return 0;
  if (gpux__node_is(n, "MatMul") && n->n_in == 2) {
    m->qk = p;
    return 1;
  }
  if (depth >= MAX_STEPS) return 0;
  int sides[2], ns = 0;
  float k;
  if ((gpux__node_is(n, "Mul") || gpux__node_is(n, "Div")) && n->n_in == 2) {
    if (scalar_f32(g, n->in[1], &k)) sides[ns++] = 0;
    else if (gpux__node_is(n, "Mul") && scalar_f32(g, n->in[0], &k)) sides[ns++] = 1;
  } else if (gpux__node_is(n, "Add") && n->n_in == 2 && n->in[0] != n->in[1]) {
    sides[ns++] = 0;
    sides[ns++] = 1;
  } else if (gpux__node_is(n, "Where") && n->n_in == 3) {
    if (fill_ok(g, n->in[2])) sides[ns++] = 1;
    else if (fill_ok(g, n->in[1])) sides[ns++] = 2;
  } else if (gpux__node_is(n, "Sub") && n->n_in == 2) { /* s * b - c * (1 - b) */
    int b = keep_of(c, n->in[1]), pm = producer(c, n->in[0]);
    const gpux__node *mul = pm >= 0 ? &g->nodes[pm] : NULL;
    if (b < 0 || !mul || c->uses[n->in[0]] != 1 || !gpux__node_is(mul, "Mul") || mul->n_in != 2 || mul->n_out != 1 ||
        (mul->in[0] != b && mul->in[1] != b))
      return 0;
    m->steps[m->n_steps++] = (fa_step){p, 0, pm};
    if (trace(c, m, mul->in[mul->in[0] == b ? 1 : 0], depth + 1)) return 1;
    m->n_steps--;
  }
  for (int s = 0; s < ns; s++) {
    m->steps[m->n_steps++] = (fa_step){p, sides[s], -1};
    if (trace(c, m, n->in[sides[s]], depth + 1)) return 1;
    m->n_steps--;
  }
  return 0;
}

static int is_scale_step(const gpux__node *n) { return gpux__node_is(n, "Mul") || gpux__node_is(n, "Div"); }

/* The factor a scaling node applies to its input on the path. */
static double step_factor(const gpux__graph *g, const gpux__node *n, int side) {
  float k = 1.0f;
  scalar_f32(g, n->in[1 - side], &k);
  return gpux__node_is(n, "Div") ? 1.0 / k : (double)k;
}

/* Value x, or what a scalar Mul / Div read once made it from (the factor into *scale). */
static int unscale(const fa_ctx *c, int x, double *scale, int *f32) {
  int p = producer(c, x);
  if (p < 0 || c->uses[x] != 1) return x;
  const gpux__node *n = &c->g->nodes[p];
  float k;
  if (n->n_out != 1 || n->n_in != 2) return x;
  if ((gpux__node_is(n, "Mul") || gpux__node_is(n, "Div")) && scalar_f32(c->g, n->in[1], &k)) {
    *scale *= gpux__node_is(n, "Div") ? 1.0 / k : (double)k;
    *f32 = 1;
    return n->in[0];
  }
  if (gpux__node_is(n, "Mul") && scalar_f32(c->g, n->in[0], &k)) {
    *scale *= k;
    *f32 = 1;
    return n->in[1];
  }
  return x;
}

/* How K [B, H, T, D] comes back from kt = K^T (read once); 0 when it cannot. */
static int plan_k(const fa_ctx *c, int kt, k_plan *k) {
  const gpux__graph *g = c->g;
  int p = producer(c, kt);
  if (p < 0 || c->uses[kt] != 1) return 0;
  const gpux__node *n = &g->nodes[p];
  if (n->n_out != 1) return 0;
  if (gpux__node_is(n, "Transpose") && n->n_in == 1) {
    const gpux__attr *perm = gpux__node_attr(n, "perm");
    if (!perm || perm->type != GPUX_ATTR_INTS || perm->n != 4) return 0;
    int identity = 1;
    for (int i = 0; i < 4; i++) {
      k->perm[i] = perm->ints[i ^ (i >= 2)]; /* the last two swapped back */
      identity &= k->perm[i] == i;
    }
    k->kind = identity ? K_SAME : K_TRANSPOSE;
    k->t = p;
    k->src = n->in[0];
    return 1;
  }
  /* the dynamo exporter: Reshape(Transpose(x, last two swapped), [b, h, D, T]) with x [..., T, D] */
  if (gpux__node_is(n, "Reshape") && n->n_in == 2) {
    const gpux_tensor *s = gpux__graph_const(g, n->in[1]);
    int tr = producer(c, n->in[0]);
    if (!s || s->dtype != GPUX_DT_INT64 || s->ndim != 1 || s->dims[0] != 4 || tr < 0 || c->uses[n->in[0]] != 1)
      return 0;
    const int64_t *sd = s->data;
    const gpux__node *t = &g->nodes[tr];
    const gpux__attr *perm = gpux__node_attr(t, "perm");
    if (!gpux__node_is(t, "Transpose") || t->n_in != 1 || t->n_out != 1 || !perm || perm->type != GPUX_ATTR_INTS || perm->n < 2)
      return 0;
    int r = perm->n;
    for (int i = 0; i < r; i++)
      if (perm->ints[i] != (i < r - 2 ? i : i == r - 2 ? r - 1 : r - 2)) return 0;
    int64_t xd[GPUX_MAX_DIMS];
    if (shape_of(c, t->in[0], xd, 0) != r || sd[2] <= 0 || sd[3] <= 0 || xd[r - 2] != sd[3] || xd[r - 1] != sd[2]) return 0;
    k->kind = K_RESHAPE;
    k->t = tr;
    k->r = p;
    k->src = t->in[0];
    k->shape[0] = sd[0], k->shape[1] = sd[1], k->shape[2] = sd[3], k->shape[3] = sd[2];
    return 1;
  }
  return 0;
}

/* Whether mask value c (of a Where keeping where it is true) is a constant lower-triangular
 * boolean [.., R, C] (leading dims 1) with cond[i][j] == (j <= i), or a Slice of one from row 0
 * and column 0 in steps of 1. */
static int is_tril(const fa_ctx *c, int id) {
  const gpux__graph *g = c->g;
  const gpux_tensor *t = gpux__graph_const(g, id);
  int p = producer(c, id);
  if (!t && p >= 0) { /* Slice(data, starts, ends[, axes[, steps]]) */
    const gpux__node *n = &g->nodes[p];
    if (!gpux__node_is(n, "Slice") || n->n_in < 3 || n->opset < 10) return 0;
    t = gpux__graph_const(g, n->in[0]);
    const gpux_tensor *st = gpux__graph_const(g, n->in[1]), *sp = n->n_in > 4 ? gpux__graph_const(g, n->in[4]) : NULL;
    if (!t || !st || (n->n_in > 4 && n->in[4] >= 0 && !sp)) return 0;
    for (int64_t i = 0; i < gpux_tensor_count(st); i++)
      if (gpux__load_i64(st->dtype, st->data, i) != 0) return 0;
    for (int64_t i = 0; sp && i < gpux_tensor_count(sp); i++)
      if (gpux__load_i64(sp->dtype, sp->data, i) != 1) return 0;
  }
  if (!t || t->dtype != GPUX_DT_BOOL || t->ndim < 2) return 0;
  for (int i = 0; i < t->ndim - 2; i++)
    if (t->dims[i] != 1) return 0;
  int64_t R = t->dims[t->ndim - 2], C = t->dims[t->ndim - 1];
  const uint8_t *d = t->data;
  for (int64_t i = 0; i < R; i++)
    for (int64_t j = 0; j < C; j++)
      if ((d[i * C + j] != 0) != (j <= i)) return 0;
  return R > 0 && C > 0;
}

/* A new constant value of the graph (data copied into the arena): its id or a negative error. */
static int add_const(fa_ctx *c, const char *base, int dtype, int ndim, const int64_t *dims, const void *data,
                     size_t nbytes) {
  gpux__graph *g = c->g;
  if (g->n_values == g->cap_values) return gpux__error(GPUX_E_INVALID, "optimize: value table full");
  size_t len = strlen(base) + 16;
  char *name = gpux__arena_alloc(c->arena, len);
  void *d = gpux__arena_alloc(c->arena, nbytes ? nbytes : 1);
  if (!name || !d) return GPUX_E_NOMEM;
  snprintf(name, len, "%s/attn_const", base);
  memcpy(d, data, nbytes);
  return gpux__graph_append_const(g, name, dtype, ndim, dims, d, nbytes); /* the arena's, freed with the graph */
}

/* Node i's input list made the rewrite's own (it may be the model's), so it can change. */
static int own_inputs(fa_ctx *c, gpux__node *n) {
  int *in = gpux__arena_alloc(c->arena, (size_t)GPUX__MAX(1, n->n_in) * sizeof *in);
  if (!in) return GPUX_E_NOMEM;
  memcpy(in, n->in, (size_t)n->n_in * sizeof *in);
  n->in = in;
  return 0;
}

/* An earlier rewritten mask node computing what n now does (the same op on the same values, no
 * attributes), or -1: the layers of a decoder rebuild one mask each from the same inputs. */
static int same_mask(const fa_ctx *c, const gpux__node *n) {
  if (n->n_out != 1 || n->n_attrs) return -1;
  for (int k = 0; k < c->n_made; k++) {
    const gpux__node *o = &c->g->nodes[c->made[k]];
    if (c->dead[c->made[k]] || strcmp(o->op_type, n->op_type) || strcmp(o->domain, n->domain) || o->n_in != n->n_in ||
        o->n_out != 1 || o->n_attrs)
      continue;
    int same = 1;
    for (int j = 0; j < n->n_in && same; j++) same = o->in[j] == n->in[j];
    if (same) return c->made[k];
  }
  return -1;
}

/* A value whose producer now computes something of another shape: its declared type is gone. */
static void forget_info(gpux__graph *g, int id) {
  g->values[id].has_info = 0;
  g->values[id].info.ndim = -1;
}

/* Matches the pattern ending in MatMul node pv (P x V) and rewrites it: 1 when it did. */
static int fuse_one(fa_ctx *c, int pv) {
  gpux__graph *g = c->g;
  gpux__node *n = &g->nodes[pv];
  if (!gpux__node_is(n, "MatMul") || n->n_in != 2 || n->n_out != 1 || n->out[0] < 0) return 0;
  fa_match m;
  memset(&m, 0, sizeof m);
  m.pv = pv, m.nan_where = m.nan_isnan = -1;
  int pr = n->in[0], v = n->in[1];
  if (pr < 0 || v < 0 || c->uses[pr] != 1) return 0;
  int sm = producer(c, pr);
  if (sm < 0) return 0;
  const gpux__node *s = &g->nodes[sm];
  /* torch's clean-up after the Softmax: Where(IsNaN(P), 0, P) */
  if (gpux__node_is(s, "Where") && s->n_in == 3 && s->n_out == 1) {
    float z;
    int p0 = s->in[2], isn = producer(c, s->in[0]);
    if (isn < 0 || c->uses[s->in[0]] != 1 || !scalar_f32(g, s->in[1], &z) || z != 0.0f || p0 < 0 || c->uses[p0] != 2)
      return 0;
    const gpux__node *in = &g->nodes[isn];
    if (!gpux__node_is(in, "IsNaN") || in->n_in != 1 || in->in[0] != p0 || in->n_out != 1) return 0;
    m.nan_where = sm, m.nan_isnan = isn;
    sm = producer(c, p0);
    if (sm < 0) return 0;
    s = &g->nodes[sm];
  }
  if (!gpux__node_is(s, "Softmax") || s->n_in != 1 || s->n_out != 1) return 0;
  const gpux__attr *ax = gpux__node_attr(s, "axis");
  if (ax ? ax->i != -1 && ax->i != 3 : s->opset < 13) return 0;
  m.sm = sm;
  if (!trace(c, &m, s->in[0], 0)) return 0;
  /* scalings next to the product, masks after them */
  double scale = 1.0;
  int f32 = 0, n_masks = 0, tril = 0;
  for (int i = m.n_steps - 1; i >= 0; i--) {
    const gpux__node *st = &g->nodes[m.steps[i].node];
    if (is_scale_step(st)) {
      if (n_masks) return 0;
      scale *= step_factor(g, st, m.steps[i].side);
      f32 = 1;
    } else {
      /* Attention takes masks of 1 to 4 axes and pads one shorter than the keys with -inf where
       * Add or Where would broadcast it: a mask operand known to have a last axis of 1 stays */
      int64_t md[GPUX_MAX_DIMS];
      int mo = gpux__node_is(st, "Where") ? st->in[0] : st->in[1 - m.steps[i].side], r = shape_of(c, mo, md, 0);
      if (r > 4 || (r == 0 && n_masks == 0) || (r > 0 && md[r - 1] == 1)) return 0;
      if (gpux__node_is(st, "Where")) tril = m.steps[i].side == 1 && is_tril(c, st->in[0]);
      if (!gpux__node_is(st, "Add")) f32 = 1; /* a float32 fill or c */
      n_masks++;
    }
  }
  /* Q, K^T and V */
  const gpux__node *qk = &g->nodes[m.qk];
  int q = unscale(c, qk->in[0], &scale, &f32), kt = unscale(c, qk->in[1], &scale, &f32);
  k_plan kp;
  memset(&kp, 0, sizeof kp);
  int64_t qd[GPUX_MAX_DIMS], vd[GPUX_MAX_DIMS], kd[GPUX_MAX_DIMS];
  if (shape_of(c, q, qd, 0) != 4 || shape_of(c, v, vd, 0) != 4 || !plan_k(c, kt, &kp)) return 0;
  /* MatMul broadcasts a batch of 1 where Attention wants equal batches */
  if (shape_of(c, kt, kd, 0) == 4 && qd[0] >= 0 && kd[0] >= 0 && qd[0] != kd[0]) return 0;
  if (qd[0] >= 0 && vd[0] >= 0 && qd[0] != vd[0]) return 0;
  int dq = dtype_of(g, q), dv = dtype_of(g, v);
  if ((dq && dq != GPUX_DT_FLOAT) || (dv && dv != GPUX_DT_FLOAT)) return 0;
  if (!f32 && dq != GPUX_DT_FLOAT && dv != GPUX_DT_FLOAT) return 0;
  if (!isfinite(scale) || scale == 0.0) return 0;

  /* the match is exact: rewrite. K first. */
  int k = -1, rc;
  if (kp.kind == K_SAME) {
    k = kp.src;
    c->dead[kp.t] = 1;
  } else if (kp.kind == K_TRANSPOSE) {
    gpux__node *t = &g->nodes[kp.t];
    gpux__attr *attrs = gpux__arena_alloc(c->arena, (size_t)t->n_attrs * sizeof *attrs);
    int64_t *perm = gpux__arena_alloc(c->arena, 4 * sizeof *perm);
    if (!attrs || !perm) return GPUX_E_NOMEM;
    memcpy(attrs, t->attrs, (size_t)t->n_attrs * sizeof *attrs);
    memcpy(perm, kp.perm, sizeof kp.perm);
    for (int a = 0; a < t->n_attrs; a++)
      if (!strcmp(attrs[a].name, "perm")) attrs[a].ints = perm;
    t->attrs = attrs;
    k = t->out[0];
    forget_info(g, k);
  } else {
    gpux__node *r = &g->nodes[kp.r];
    int64_t sdims[1] = {4};
    int sid = add_const(c, g->values[r->out[0]].name, GPUX_DT_INT64, 1, sdims, kp.shape, sizeof kp.shape);
    if (sid < 0) return sid;
    if ((rc = own_inputs(c, r))) return rc;
    r->in[0] = kp.src, r->in[1] = sid;
    c->dead[kp.t] = 1;
    k = r->out[0];
    forget_info(g, k);
  }
  /* masks, from the product's side: the first one without the scores, the rest on the mask */
  int mask = -1;
  for (int i = m.n_steps - 1; i >= 0; i--) {
    gpux__node *st = &g->nodes[m.steps[i].node];
    int side = m.steps[i].side;
    if (is_scale_step(st)) {
      c->dead[m.steps[i].node] = 1;
      continue;
    }
    if (m.steps[i].keep >= 0) c->dead[m.steps[i].keep] = 1; /* s * b: the Sub reads the mask instead */
    if (mask < 0 && gpux__node_is(st, "Add")) {
      mask = st->in[1 - side];
      c->dead[m.steps[i].node] = 1;
      continue;
    }
    if (mask < 0) { /* a Where first: a zero in the scores' place */
      if (c->zero < 0) {
        float z = 0.0f;
        int64_t one[1] = {1};
        if ((c->zero = add_const(c, "where_mask", GPUX_DT_FLOAT, 1, one, &z, sizeof z)) < 0) return c->zero;
      }
      mask = c->zero;
    }
    if ((rc = own_inputs(c, st))) return rc;
    st->in[side] = mask;
    int same = same_mask(c, st);
    if (same >= 0) { /* computed already for an earlier attention: read that */
      c->dead[m.steps[i].node] = 1;
      mask = g->nodes[same].out[0];
      continue;
    }
    if (c->n_made < (int)GPUX__ARRAY_LEN(c->made)) c->made[c->n_made++] = m.steps[i].node;
    mask = st->out[0];
    forget_info(g, mask);
  }
  /* Q K^T, the Softmax and the clean-up go; the P x V MatMul becomes the Attention node */
  c->dead[m.qk] = c->dead[m.sm] = 1;
  if (m.nan_where >= 0) c->dead[m.nan_where] = c->dead[m.nan_isnan] = 1;
  for (int i = 0; i < 2; i++) { /* the scalings of Q and K */
    int x = qk->in[i], p = producer(c, x);
    if (x != (i ? kt : q) && p >= 0) c->dead[p] = 1;
  }
  int n_in = mask >= 0 ? 4 : 3;
  int *in = gpux__arena_alloc(c->arena, (size_t)n_in * sizeof *in);
  gpux__attr *attrs = gpux__arena_alloc(c->arena, 2 * sizeof *attrs);
  if (!in || !attrs) return GPUX_E_NOMEM;
  in[0] = q, in[1] = k, in[2] = v;
  if (mask >= 0) in[3] = mask;
  int na = 0;
  attrs[na++] = (gpux__attr){.name = "scale", .type = GPUX_ATTR_FLOAT, .f = (float)scale};
  if (tril && n_masks == 1) attrs[na++] = (gpux__attr){.name = "is_causal", .type = GPUX_ATTR_INT, .i = 1};
  n->op_type = "Attention";
  n->domain = "";
  n->opset = 23;
  n->op = c->attention;
  n->n_in = n_in, n->in = in;
  n->n_attrs = na, n->attrs = attrs;
  return 1;
}

/* ---- heads in place: [B, S, H * D] in and out ---- */

/* The Transpose with perm [0, 2, 1, 3] that makes value x, x's only reader being the Attention
 * node, whose input is known to be [B, S, H, D] with H known (in *heads): the node, else -1. */
static int heads_swap(const fa_ctx *c, int x, int64_t *heads) {
  int p = producer(c, x);
  if (p < 0 || c->uses[x] != 1) return -1;
  const gpux__node *t = &c->g->nodes[p];
  const gpux__attr *perm = gpux__node_attr(t, "perm");
  if (!gpux__node_is(t, "Transpose") || t->n_in != 1 || t->n_out != 1 || t->in[0] < 0 || !perm ||
      perm->type != GPUX_ATTR_INTS || perm->n != 4 || perm->ints[0] != 0 || perm->ints[1] != 2 || perm->ints[2] != 1 ||
      perm->ints[3] != 3)
    return -1;
  int64_t d[GPUX_MAX_DIMS];
  int r = shape_of(c, t->in[0], d, 0);
  if (r == 4 && d[2] > 0) {
    *heads = d[2];
    return p;
  }
  if (r >= 0 && r != 4) return -1;
  /* a Reshape to Concat(..., [H, D]), as x.size()[:-1] + (heads, head size) exports: four axes
   * (the perm says so), so the constant last part's second to last entry is H */
  int rs = producer(c, t->in[0]), cc = rs >= 0 ? producer(c, c->g->nodes[rs].in[1]) : -1;
  if (rs < 0 || !gpux__node_is(&c->g->nodes[rs], "Reshape") || c->g->nodes[rs].n_in != 2 || cc < 0) return -1;
  const gpux__node *cn = &c->g->nodes[cc];
  const gpux_tensor *last = cn->n_in > 0 ? gpux__graph_const(c->g, cn->in[cn->n_in - 1]) : NULL;
  if (!gpux__node_is(cn, "Concat") || !last || last->dtype != GPUX_DT_INT64 || last->ndim != 1 || last->dims[0] < 2 ||
      last->dims[0] > 4 || ((const int64_t *)last->data)[last->dims[0] - 2] <= 0)
    return -1;
  *heads = ((const int64_t *)last->data)[last->dims[0] - 2];
  return p;
}

/* Transpose node t becomes Reshape(its input, shape) (a view of the input where it is the last
 * reader, runtime/session.c). */
static int to_reshape(fa_ctx *c, int t, const int64_t *shape, int rank) {
  gpux__node *n = &c->g->nodes[t];
  int64_t sd[1] = {rank};
  int sid = add_const(c, c->g->values[n->out[0]].name, GPUX_DT_INT64, 1, sd, shape, (size_t)rank * sizeof *shape);
  if (sid < 0) return sid;
  int *in = gpux__arena_alloc(c->arena, 2 * sizeof *in);
  if (!in) return GPUX_E_NOMEM;
  in[0] = n->in[0], in[1] = sid;
  n->in = in, n->n_in = 2;
  n->op_type = "Reshape";
  n->domain = "";
  n->opset = 14;
  n->op = c->reshape;
  n->n_attrs = 0, n->attrs = NULL;
  return 0;
}

/* An Attention node on [B, H, S, D] inputs that Transposes with perm [0, 2, 1, 3] make from [B,
 * S, H, D] (the projections' outputs with the heads split off), whose output a Transpose with the
 * same perm turns back, reads and writes [B, S, H * D] instead, with q_num_heads and kv_num_heads
 * (ops/attention.c reads Q, K and V in place with strides, and so does WebGPU's kernel): the four
 * Transposes become Reshapes, to [B, S, H * D] (shape [0, 0, -1]) before it and back to [B, S, H,
 * Dv] (shape [0, 0, H, -1]) after it. Only for an Attention with one output and no past, whose
 * Q, K, V and Y have no other reader; the mask is the same for both forms. 1 when it did. */
static int heads_in_place(fa_ctx *c, int i) {
  gpux__graph *g = c->g;
  gpux__node *n = &g->nodes[i];
  if (!gpux__node_is(n, "Attention") || strcmp(n->domain, "") || n->n_in < 3 || n->n_in > 4 || n->n_out != 1 || n->out[0] < 0 ||
      c->uses[n->out[0]] != 1 || gpux__node_attr(n, "q_num_heads") || gpux__node_attr(n, "kv_num_heads"))
    return 0;
  int64_t hq, hk, hv, dy[GPUX_MAX_DIMS];
  int tq = heads_swap(c, n->in[0], &hq), tk = heads_swap(c, n->in[1], &hk), tv = heads_swap(c, n->in[2], &hv);
  if (tq < 0 || tk < 0 || tv < 0 || tq == tk || tq == tv || tk == tv || hk != hv) return 0;
  int ty = -1;
  for (int j = 0; j < g->n_nodes && ty < 0; j++) /* the output's reader */
    if (!c->dead[j] && j != i && g->nodes[j].n_in >= 1 && g->nodes[j].in[0] == n->out[0]) ty = j;
  if (ty < 0) return 0;
  const gpux__node *t = &g->nodes[ty];
  const gpux__attr *perm = gpux__node_attr(t, "perm");
  if (!gpux__node_is(t, "Transpose") || t->n_in != 1 || t->n_out != 1 || !perm || perm->type != GPUX_ATTR_INTS ||
      perm->n != 4 || perm->ints[0] != 0 || perm->ints[1] != 2 || perm->ints[2] != 1 || perm->ints[3] != 3)
    return 0;
  if (shape_of(c, n->out[0], dy, 0) > 0 && dy[1] >= 0 && dy[1] != hq) return 0;
  const int64_t flat[3] = {0, 0, -1}, split[4] = {0, 0, hq, -1};
  int rc;
  if ((rc = to_reshape(c, tq, flat, 3)) || (rc = to_reshape(c, tk, flat, 3)) || (rc = to_reshape(c, tv, flat, 3)) ||
      (rc = to_reshape(c, ty, split, 4)))
    return rc;
  forget_info(g, n->in[0]);
  forget_info(g, n->in[1]);
  forget_info(g, n->in[2]);
  forget_info(g, n->out[0]);
  gpux__attr *attrs = gpux__arena_alloc(c->arena, ((size_t)n->n_attrs + 2) * sizeof *attrs);
  if (!attrs) return GPUX_E_NOMEM;
  if (n->n_attrs) memcpy(attrs, n->attrs, (size_t)n->n_attrs * sizeof *attrs);
  attrs[n->n_attrs] = (gpux__attr){.name = "q_num_heads", .type = GPUX_ATTR_INT, .i = hq};
  attrs[n->n_attrs + 1] = (gpux__attr){.name = "kv_num_heads", .type = GPUX_ATTR_INT, .i = hk};
  n->attrs = attrs, n->n_attrs += 2;
  return 1;
}

/* Readers of every value among the live nodes (a graph output or a capture counts 1000), and
 * every live node's outputs' producer. */
static int count_uses(fa_ctx *c) {
  gpux__graph *g = c->g;
  free(c->uses);
  c->uses = gpux__calloc((size_t)g->cap_values + 1, sizeof *c->uses);
  if (!c->uses) return GPUX_E_NOMEM;
  for (int i = 0; i < g->n_nodes; i++)
    for (int j = 0; j < g->nodes[i].n_out && !c->dead[i]; j++)
      if (g->nodes[i].out[j] >= 0) g->values[g->nodes[i].out[j]].producer = i;
  for (int i = 0; i < g->n_nodes; i++) {
    if (c->dead[i]) continue;
    const gpux__node *n = &g->nodes[i];
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0) c->uses[n->in[j]]++;
    gpux__count_captures(n, c->uses, 1000);
  }
  for (int o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] >= 0) c->uses[g->outputs[o]] += 1000;
  return 0;
}

int gpux__fuse_attention(gpux__graph *g, gpux__arena *arena, unsigned char *dead) {
  fa_ctx c = {.g = g, .arena = arena, .dead = dead, .zero = -1, .attention = gpux__op_find("", "Attention", 23),
              .reshape = gpux__op_find("", "Reshape", 14)};
  if (!c.attention) return 0;
  int rc = count_uses(&c); /* producers after the rewrites before this one */
  for (int i = 0; i < g->n_nodes && rc >= 0; i++)
    if (!dead[i]) rc = fuse_one(&c, i);
  if (rc >= 0 && c.reshape && !getenv("GPUX_ATTENTION_4D")) { /* then the heads' Transposes, on fresh counts */
    rc = count_uses(&c);
    for (int i = 0; i < g->n_nodes && rc >= 0; i++)
      if (!dead[i]) rc = heads_in_place(&c, i);
  }
  free(c.uses);
  return rc < 0 ? rc : 0;
}
