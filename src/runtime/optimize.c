/* optimize.c — the graph rewrite a session runs once when it is created, on a copy of the model's
 * main graph (the model keeps the graph as loaded):
 *
 *   0. Asked for (the CPU backend): a float16 graph is computed in float32 (lower-fp16.c), so
 *      that the passes below, which take float32, apply to it.
 *   1. Constant nodes holding a tensor become initializers, so they are not copied on every run
 *      and the rewrites below can read them; so do Identity nodes of a constant (exporters that
 *      share equal initializers, e.g. the zero biases of freshly folded BatchNorms, read the
 *      shared one through an Identity per use), as views of the same data.
 *   2. A float32 Conv (or ConvTranspose) with constant weights absorbs the chain of nodes that
 *      only it feeds:
 *        BatchNormalization (inference), Mul / Add / Sub / Div by a per-channel or scalar
 *        constant                              -> folded into the weights and bias,
 *        Relu, LeakyRelu, Clip, HardSigmoid, HardSwish, Sigmoid, x * clip(x + 3, 0, 6) / 6, and
 *        x * Sigmoid(x)                        -> the activation,
 *        Max / Min with a scalar               -> a clamp after it (or the activation Clip),
 *        then Mul / Add / Sub / Div by per-channel constants -> a scale and shift after it,
 *        Add of a computed value made before the Conv, before the activation -> a residual,
 *      and becomes one gpux.FusedConv (FusedConvTranspose) node (conv.c):
 *        Y = clamp(act(Conv(X, W') + B')) * post_scale + post_bias.
 *      The intermediate tensors are never made, and the activation runs on each tile of the
 *      convolution's output while it is in cache.
 *      The weights are copied only when something folds into them: a FusedConv whose weights
 *      nothing scales (a model exported with its BatchNorms folded) reads the model's W as it is.
 *   3. Squeeze-and-excitation's x + x * s, where a FusedConv makes s for this alone, becomes
 *      x * s' with s' = s + 1 folded into that FusedConv: one pass over x instead of two.
 *   4. Scaled dot-product attention (MatMul, scale, masks, Softmax, MatMul) becomes one Attention
 *      node (fuse-attention.c).
 *   5. Asked for (a text generator's session): a language model's logits are computed for the
 *      last position only, with their ArgMax as one more output (last-position.c).
 *   6. Asked for (the CPU backend): regions of consecutive convolutions keep their activations
 *      channels last (channels-last.c), before pass 5.
 *
 * Nested graphs (If, Loop and Scan bodies) are rewritten alike, as copies their node points to;
 * a body's Conv may take weights it captures from an enclosing graph. Value ids stay as they are
 * (new values are appended), so nested graphs that capture values by id read the copies alike. */
#include "runtime/optimize.h"
#include "runtime/channels-last.h"
#include "runtime/fuse-attention.h"
#include "runtime/fuse-expand-dw.h"
#include "runtime/fuse-transformer.h"
#include "runtime/last-position.h"
#include "runtime/lower-fp16.h"
#include "runtime/rewrite.h"
#include "ops/op.h"
#include <float.h>
#include <math.h>
#include <stdio.h>

typedef struct {
  gpux__graph g;           /* the rewritten graph; first, so the gpux__graph * handed out is ours */
  gpux__arena arena;      /* nodes' input lists, attributes and names the rewrite made */
  int n_owned, cap_owned;
  void **owned;           /* data of the tensors the rewrite made (folded weights) */
  size_t owned_bytes;     /* their bytes */
  int n_subs;
  gpux__graph **subs;      /* rewritten copies of nested graphs (If/Loop/Scan bodies) */
} opt_graph;

/* ---- helpers ---- */

static void *own(opt_graph *o, size_t bytes) {
  if (o->n_owned == o->cap_owned) {
    int cap = o->cap_owned ? o->cap_owned * 2 : 64;
    void **p = gpux__realloc(o->owned, (size_t)cap * sizeof *p);
    if (!p) return NULL;
    o->owned = p;
    o->cap_owned = cap;
  }
  void *d = gpux__malloc(bytes ? bytes : 1);
  if (d) o->owned[o->n_owned++] = d, o->owned_bytes += bytes;
  return d;
}

void *gpux__graph_own(gpux__graph *g, size_t bytes) { return own((opt_graph *)g, bytes); }

/* Where p is among the data of the tensors the rewrite made (which it may change), or -1. */
static int owned_at(const opt_graph *o, const void *p) {
  for (int i = 0; i < o->n_owned; i++)
    if (o->owned[i] == p) return i;
  return -1;
}

static int is_owned(const opt_graph *o, const void *p) { return p && owned_at(o, p) >= 0; }

int gpux__graph_owns(const gpux__graph *g, const void *data) { return is_owned((const opt_graph *)g, data); }

size_t gpux__graph_disown(gpux__graph *g, int v) {
  opt_graph *o = (opt_graph *)g;
  gpux_tensor *t = &g->values[v].init;
  int i = t->data ? owned_at(o, t->data) : -1;
  if (i < 0) return 0;
  free(t->data);
  t->data = NULL;
  o->owned[i] = o->owned[--o->n_owned];
  o->owned_bytes -= t->nbytes;
  return t->nbytes;
}

/* Appends a constant float32 value of `count` elements (shape `ndim`, `dims`) whose data the
 * graph owns; returns its id (data in *data) or a negative error. */
static int add_const(opt_graph *o, const char *base, const char *suffix, int ndim, const int64_t *dims,
                     float **data) {
  gpux__graph *g = &o->g;
  if (g->n_values == g->cap_values) return gpux__error(GPUX_E_INVALID, "optimize: value table full");
  int64_t count = gpux__shape_count(ndim, dims);
  float *d = own(o, (size_t)count * sizeof *d);
  size_t len = strlen(base) + strlen(suffix) + 1;
  char *name = gpux__arena_alloc(&o->arena, len);
  if (!d || !name) return GPUX_E_NOMEM;
  snprintf(name, len, "%s%s", base, suffix);
  *data = d; /* freed with the graph (owned[]) */
  return gpux__graph_append_const(g, name, GPUX_DT_FLOAT, ndim, dims, d, (size_t)count * sizeof *d);
}

/* ---- pass 1: Constant nodes, and Identity nodes of constants, become initializers ---- */

static void fold_constants(opt_graph *o, unsigned char *dead) {
  gpux__graph *g = &o->g;
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    if (!gpux__node_is(n, "Constant") || n->n_out != 1 || n->out[0] < 0) continue;
    const gpux__attr *a = gpux__node_attr(n, "value");
    if (!a || !a->t || a->t->kind != GPUX_KIND_TENSOR || a->t->dtype == GPUX_DT_STRING) continue;
    if (!a->t->data && gpux_tensor_count(a->t) > 0) continue;
    gpux__value *v = &g->values[n->out[0]];
    if (v->outer >= 0 || v->is_graph_input) continue;
    v->init = *a->t;        /* a view of the attribute's tensor, which the model owns */
    v->init.owns_data = 0;
    v->is_const = 1;
    dead[i] = 1;
  }
  /* in node order, so a chain of Identity nodes folds in one pass */
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    if (!gpux__node_is(n, "Identity") || n->n_in != 1 || n->n_out != 1 || n->out[0] < 0) continue;
    const gpux_tensor *src = gpux__graph_const(g, n->in[0]);
    gpux__value *v = &g->values[n->out[0]];
    if (!src || src->dtype == GPUX_DT_STRING || v->outer >= 0 || v->is_graph_input) continue;
    v->init = *src;         /* a view: the source stays alive as long as the graph */
    v->init.owns_data = 0;
    v->is_const = 1;
    dead[i] = 1;
  }
}

/* ---- pass 2: Conv + affine + activation ---- */

/* Readers of each value: how many (graph outputs and captures by nested graphs count as many
 * readers, so such values are never fused away) and the first two nodes. */
typedef struct {
  int *uses;
  int (*readers)[2];
} use_map;

static void add_reader(use_map *u, int id, int node, int weight) {
  if (id < 0) return;
  if (u->uses[id] < 2) u->readers[id][u->uses[id]] = node;
  u->uses[id] += weight;
}

/* Counts the readers among the nodes not marked dead. */
static int use_map_build(const gpux__graph *g, const unsigned char *dead, use_map *u) {
  free(u->uses);
  free(u->readers);
  u->uses = gpux__calloc((size_t)g->n_values + 1, sizeof *u->uses);
  u->readers = gpux__calloc((size_t)g->n_values + 1, sizeof *u->readers);
  if (!u->uses || !u->readers) return GPUX_E_NOMEM;
  for (int i = 0; i < g->n_nodes; i++) {
    if (dead[i]) continue;
    const gpux__node *n = &g->nodes[i];
    for (int j = 0; j < n->n_in; j++) add_reader(u, n->in[j], i, 1);
    for (int a = 0; a < n->n_attrs; a++) { /* nested graphs' captures */
      const gpux__attr *at = &n->attrs[a];
      int count = at->g ? 1 : at->type == GPUX_ATTR_GRAPHS ? at->n : 0;
      for (int s = 0; s < count; s++) {
        const gpux__graph *sub = at->g ? at->g : at->graphs[s];
        for (int v = 0; v < sub->n_values; v++) add_reader(u, sub->values[v].outer, -1, 1000);
      }
    }
  }
  for (int o = 0; o < g->n_outputs; o++) add_reader(u, g->outputs[o], -1, 1000);
  return 0;
}

/* The node that alone reads value id, or -1. */
static int only_reader(const use_map *u, int id) { return u->uses[id] == 1 ? u->readers[id][0] : -1; }

/* A constant operand that is a scalar or per-channel ([M, 1, 1], [1, M, 1, 1], ...) for an
 * output of rank `rank` with M channels: its values (count 1 or M) or NULL. */
static const float *channel_const(const gpux__graph *g, int id, int64_t m, int rank, int64_t *count) {
  const gpux_tensor *t = gpux__graph_const(g, id);
  if (!t || t->dtype != GPUX_DT_FLOAT || t->ndim > rank) return NULL;
  for (int i = 0; i < t->ndim; i++) {
    int d = rank - t->ndim + i;
    if (t->dims[i] != 1 && !(d == 1 && t->dims[i] == m)) return NULL;
  }
  *count = gpux_tensor_count(t);
  return *count == 1 || *count == m ? t->data : NULL;
}

/* A float scalar constant equal to want. */
static int is_scalar(const gpux__graph *g, int id, float want) {
  const gpux_tensor *t = gpux__graph_const(g, id);
  return t && t->dtype == GPUX_DT_FLOAT && gpux_tensor_count(t) == 1 && ((const float *)t->data)[0] == want;
}

enum { ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_HARDSIGMOID, ACT_HARDSWISH, ACT_SIGMOID, ACT_SILU };
static const char *const act_names[] = {"", "Relu", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid",
                                        "Silu"};

typedef struct {
  int conv;             /* node index */
  int64_t m, per;       /* output channels, weights per output channel */
  int transposed;       /* ConvTranspose: W is [C, M / group, kernel] */
  int64_t cg, mg, ks;   /* ConvTranspose: input and output channels per group, kernel taps */
  int rank;             /* output rank */
  const gpux_tensor *w0; /* the Conv's weights, read as they are until something scales them */
  const char *base;     /* the name the folded copies' names start with */
  float *w, *b;         /* folded weights [m, per] (NULL until scaled: W itself) and bias [m] */
  int wid;              /* the value of w */
  int act;              /* ACT_* */
  float params[2];
  int n_params;
  int clamp;            /* clamp to [lo, hi] after the activation */
  float lo, hi;
  float *ps, *pb;       /* scale and shift after the activation [m], NULL until needed */
  int res;              /* a computed value added before the activation, or -1 */
  int out;              /* value the chain ends in so far */
  int n_fused;          /* nodes absorbed */
} chain;

/* The folded weights, made from W the first time something scales them (a Conv whose weights
 * nothing scales reads the model's W as it is: no copy of the largest tensors of a CNN). */
static int own_weights(opt_graph *o, chain *c) {
  if (c->w) return 0;
  float *w;
  int wid = add_const(o, c->base, "/fused_w", c->w0->ndim, c->w0->dims, &w);
  if (wid < 0) return wid;
  memcpy(w, c->w0->data, (size_t)gpux_tensor_count(c->w0) * sizeof *w);
  c->w = w, c->wid = wid;
  return 0;
}

/* Multiplies output channel m's weights by s (own_weights first). */
static void scale_weights(chain *c, int64_t m, double s) {
  if (!c->transposed) {
    for (int64_t i = 0; i < c->per; i++) c->w[m * c->per + i] = (float)(c->w[m * c->per + i] * s);
    return;
  }
  int64_t g = m / c->mg, mi = m % c->mg;
  for (int64_t ci = g * c->cg; ci < (g + 1) * c->cg; ci++)
    for (int64_t t = 0; t < c->ks; t++) c->w[(ci * c->mg + mi) * c->ks + t] = (float)(c->w[(ci * c->mg + mi) * c->ks + t] * s);
}

/* The operands of a binary node reading x: the other one as a per-channel constant. */
static const float *other_operand(const gpux__graph *g, const gpux__node *n, int x, const chain *c,
                                  int64_t *count, int *x_first) {
  if (n->n_in != 2 || n->n_out != 1) return NULL;
  *x_first = n->in[0] == x;
  int other = *x_first ? n->in[1] : n->in[0];
  if (other == x) return NULL;
  return channel_const(g, other, c->m, c->rank, count);
}

/* Scale (by s) and shift (by a) the channels: before the activation into the weights and bias,
 * after it into post_scale and post_bias. */
static int fold_affine(opt_graph *o, chain *c, const float *s, int64_t ns, const float *a, int64_t na,
                       float a_sign) {
  if (c->act == ACT_NONE) {
    int rc = s ? own_weights(o, c) : 0;
    if (rc) return rc;
    for (int64_t m = 0; m < c->m; m++) {
      float sv = s ? s[ns == 1 ? 0 : m] : 1.0f;
      if (s) {
        scale_weights(c, m, sv);
        c->b[m] *= sv;
      }
      if (a) c->b[m] += a_sign * a[na == 1 ? 0 : m];
    }
    return 0;
  }
  if (!c->ps) {
    c->ps = own(o, (size_t)c->m * sizeof *c->ps);
    c->pb = own(o, (size_t)c->m * sizeof *c->pb);
    if (!c->ps || !c->pb) return GPUX_E_NOMEM;
    for (int64_t m = 0; m < c->m; m++) c->ps[m] = 1.0f, c->pb[m] = 0.0f;
  }
  for (int64_t m = 0; m < c->m; m++) {
    if (s) c->ps[m] *= s[ns == 1 ? 0 : m], c->pb[m] *= s[ns == 1 ? 0 : m];
    if (a) c->pb[m] += a_sign * a[na == 1 ? 0 : m];
  }
  return 0;
}

/* Tries to absorb node r (the only reader of c->out); returns 1 when it did. */
static int absorb(opt_graph *o, const use_map *u, chain *c, int r, unsigned char *dead, int *err) {
  gpux__graph *g = &o->g;
  const gpux__node *n = &g->nodes[r];
  int x = c->out, x_first;
  int64_t cnt;
  if (n->domain[0] || n->n_out < 1 || n->out[0] < 0) return 0;
  for (int j = 1; j < n->n_out; j++)
    if (n->out[j] >= 0) return 0;
  const float *k;
  float k1;
  /* after a residual, nothing folds into the weights and bias: only the activation may follow */
  if (c->res >= 0 && c->act == ACT_NONE &&
      (gpux__node_is(n, "Mul") || gpux__node_is(n, "Div") || gpux__node_is(n, "Add") || gpux__node_is(n, "Sub") || gpux__node_is(n, "BatchNormalization")))
    return 0;
  if (gpux__node_is(n, "Mul") && (k = other_operand(g, n, x, c, &cnt, &x_first))) {
    *err = fold_affine(o, c, k, cnt, NULL, 0, 1.0f);
  } else if (gpux__node_is(n, "Div") && (k = other_operand(g, n, x, c, &cnt, &x_first)) && x_first) {
    float inv[1];
    if (cnt != 1) return 0; /* per-channel division: rare, left alone */
    inv[0] = 1.0f / k[0];
    *err = fold_affine(o, c, inv, 1, NULL, 0, 1.0f);
  } else if ((gpux__node_is(n, "Add") || gpux__node_is(n, "Sub")) && (k = other_operand(g, n, x, c, &cnt, &x_first))) {
    if (gpux__node_is(n, "Sub") && !x_first) return 0;
    *err = fold_affine(o, c, NULL, 0, k, cnt, gpux__node_is(n, "Sub") ? -1.0f : 1.0f);
  } else if (gpux__node_is(n, "BatchNormalization") && c->act == ACT_NONE && n->n_in == 5 && n->in[0] == x) {
    const float *v[4];
    for (int i = 0; i < 4; i++) {
      const gpux_tensor *t = gpux__graph_const(g, n->in[1 + i]);
      if (!t || t->dtype != GPUX_DT_FLOAT || gpux_tensor_count(t) != c->m) return 0;
      v[i] = t->data;
    }
    const gpux__attr *tm = gpux__node_attr(n, "training_mode");
    if (tm && tm->i) return 0;
    const gpux__attr *ep = gpux__node_attr(n, "epsilon");
    double eps = ep ? ep->f : 1e-5;
    if ((*err = own_weights(o, c))) return 0;
    /* y = (x - mean) / sqrt(var + eps) * scale + bias */
    for (int64_t m = 0; m < c->m; m++) {
      double s = v[0][m] / sqrt((double)v[3][m] + eps);
      scale_weights(c, m, s);
      c->b[m] = (float)((c->b[m] - v[2][m]) * s + v[1][m]);
    }
  } else if ((gpux__node_is(n, "Max") || gpux__node_is(n, "Min")) && n->n_in == 2 && !c->ps &&
             ((n->in[0] == x && gpux__graph_const_f32(g, n->in[1], &k1)) || (n->in[1] == x && gpux__graph_const_f32(g, n->in[0], &k1)))) {
    /* a bound: the activation Clip when there is none yet, else a clamp after it */
    int max = gpux__node_is(n, "Max");
    if (c->act == ACT_NONE) {
      c->act = ACT_CLIP, c->params[0] = max ? k1 : -FLT_MAX, c->params[1] = max ? FLT_MAX : k1, c->n_params = 2;
    } else {
      if (!c->clamp) c->clamp = 1, c->lo = -INFINITY, c->hi = INFINITY;
      if (max) c->lo = c->lo > k1 ? c->lo : k1;
      else c->hi = c->hi < k1 ? c->hi : k1;
    }
  } else if (c->act != ACT_NONE) {
    return 0;
  } else if (gpux__node_is(n, "Relu") && n->n_in == 1) {
    c->act = ACT_RELU;
  } else if (gpux__node_is(n, "LeakyRelu") && n->n_in == 1) {
    const gpux__attr *a = gpux__node_attr(n, "alpha");
    c->act = ACT_LEAKY, c->params[0] = a ? a->f : 0.01f, c->n_params = 1;
  } else if (gpux__node_is(n, "Sigmoid") && n->n_in == 1) {
    c->act = ACT_SIGMOID;
  } else if (gpux__node_is(n, "HardSigmoid") && n->n_in == 1) {
    const gpux__attr *a = gpux__node_attr(n, "alpha"), *b = gpux__node_attr(n, "beta");
    c->act = ACT_HARDSIGMOID, c->params[0] = a ? a->f : 0.2f, c->params[1] = b ? b->f : 0.5f, c->n_params = 2;
  } else if (gpux__node_is(n, "HardSwish") && n->n_in == 1) {
    c->act = ACT_HARDSWISH;
  } else if (gpux__node_is(n, "Clip") && n->in[0] == x) {
    float lo = -FLT_MAX, hi = FLT_MAX;
    if (n->opset < 11) {
      const gpux__attr *a = gpux__node_attr(n, "min"), *b = gpux__node_attr(n, "max");
      if (a) lo = a->f;
      if (b) hi = b->f;
    } else {
      for (int i = 1; i < n->n_in && i < 3; i++) {
        if (n->in[i] < 0) continue;
        const gpux_tensor *t = gpux__graph_const(g, n->in[i]);
        if (!t || t->dtype != GPUX_DT_FLOAT || gpux_tensor_count(t) != 1) return 0;
        *(i == 1 ? &lo : &hi) = ((const float *)t->data)[0];
      }
    }
    c->act = ACT_CLIP, c->params[0] = lo, c->params[1] = hi, c->n_params = 2;
  } else {
    return 0;
  }
  if (*err) return 0;
  dead[r] = 1;
  c->out = n->out[0];
  c->n_fused++;
  return 1;
}

/* x * clip(x + 3, 0, 6) / 6 written as Add, Clip, Mul and Div (or Mul by 1/6), with x read by the
 * Add and the Mul only: the HardSwish activation. */
static int absorb_hardswish(opt_graph *o, const use_map *u, chain *c, unsigned char *dead) {
  gpux__graph *g = &o->g;
  int x = c->out;
  if (c->act != ACT_NONE || u->uses[x] != 2) return 0;
  for (int first = 0; first < 2; first++) {
    int ia = u->readers[x][first], im = u->readers[x][1 - first];
    const gpux__node *add = &g->nodes[ia], *mul = &g->nodes[im];
    if (!gpux__node_is(add, "Add") || add->n_in != 2 || add->n_out != 1) continue;
    if (!((add->in[0] == x && is_scalar(g, add->in[1], 3.0f)) || (add->in[1] == x && is_scalar(g, add->in[0], 3.0f))))
      continue;
    int ic = only_reader(u, add->out[0]);
    if (ic < 0) continue;
    const gpux__node *clip = &g->nodes[ic];
    if (!gpux__node_is(clip, "Clip") || clip->n_out != 1) continue;
    if (clip->opset < 11) {
      const gpux__attr *a = gpux__node_attr(clip, "min"), *b = gpux__node_attr(clip, "max");
      if (!a || !b || a->f != 0.0f || b->f != 6.0f) continue;
    } else if (clip->n_in < 3 || !is_scalar(g, clip->in[1], 0.0f) || !is_scalar(g, clip->in[2], 6.0f)) {
      continue;
    }
    if (!gpux__node_is(mul, "Mul") || mul->n_in != 2 || mul->n_out != 1) continue;
    int t2 = clip->out[0];
    if (!((mul->in[0] == x && mul->in[1] == t2) || (mul->in[1] == x && mul->in[0] == t2))) continue;
    if (only_reader(u, t2) != im) continue;
    int id = only_reader(u, mul->out[0]);
    if (id < 0) continue;
    const gpux__node *div = &g->nodes[id];
    int ok = div->n_in == 2 && div->n_out == 1 && div->in[0] == mul->out[0] &&
             ((gpux__node_is(div, "Div") && is_scalar(g, div->in[1], 6.0f)) ||
              (gpux__node_is(div, "Mul") && is_scalar(g, div->in[1], 1.0f / 6.0f)));
    if (!ok && gpux__node_is(div, "Mul") && div->in[1] == mul->out[0] && is_scalar(g, div->in[0], 1.0f / 6.0f)) ok = 1;
    if (!ok) continue;
    (void)o;
    dead[ia] = dead[ic] = dead[im] = dead[id] = 1;
    c->act = ACT_HARDSWISH;
    c->out = div->out[0];
    c->n_fused += 4;
    return 1;
  }
  return 0;
}

/* x * Sigmoid(x) (SiLU or Swish, as torch exports it), with x read by the Sigmoid and the Mul only and
 * the Sigmoid's result by the Mul only: the Silu activation. */
static int absorb_silu(const gpux__graph *g, const use_map *u, chain *c, unsigned char *dead) {
  int x = c->out;
  if (c->act != ACT_NONE || u->uses[x] != 2) return 0;
  for (int first = 0; first < 2; first++) {
    int is = u->readers[x][first], im = u->readers[x][1 - first];
    const gpux__node *sig = &g->nodes[is], *mul = &g->nodes[im];
    if (!gpux__node_is(sig, "Sigmoid") || sig->n_in != 1 || sig->n_out != 1 || sig->in[0] != x) continue;
    int s = sig->out[0];
    if (!gpux__node_is(mul, "Mul") || mul->n_in != 2 || mul->n_out != 1 || only_reader(u, s) != im) continue;
    if (!((mul->in[0] == x && mul->in[1] == s) || (mul->in[1] == x && mul->in[0] == s))) continue;
    dead[is] = dead[im] = 1;
    c->act = ACT_SILU;
    c->out = mul->out[0];
    c->n_fused += 2;
    return 1;
  }
  return 0;
}

/* Add(y, r) of a computed r after a Conv (ResNet's shortcut), before any activation: r is added
 * in the epilogue. r must be made before node i (the fused node runs where the Conv ran): a
 * graph input, a value of an enclosing graph, or the output of a live node before i. */
static int absorb_residual(const gpux__graph *g, const use_map *u, chain *c, int i, unsigned char *dead) {
  int x = c->out, r = only_reader(u, x);
  if (c->transposed || c->res >= 0 || c->act != ACT_NONE || c->ps || r < 0) return 0;
  const gpux__node *add = &g->nodes[r];
  if (!gpux__node_is(add, "Add") || add->domain[0] || add->n_in != 2 || add->n_out != 1 || add->out[0] < 0) return 0;
  int other = add->in[0] == x ? add->in[1] : add->in[0];
  if (other < 0 || other == x || gpux__graph_const(g, other)) return 0;
  for (int j = i; j < g->n_nodes; j++) {
    if (dead[j]) continue;
    for (int q = 0; q < g->nodes[j].n_out; q++)
      if (g->nodes[j].out[q] == other) return 0;
  }
  dead[r] = 1;
  c->res = other;
  c->out = add->out[0];
  c->n_fused++;
  return 1;
}

/* Turns node i (a Conv or ConvTranspose) and what follows it into a FusedConv or
 * FusedConvTranspose when anything can be absorbed. */
static int fuse_conv(opt_graph *o, const use_map *u, int i, unsigned char *dead, const gpux__op_def *fused_def,
                     const gpux__op_def *fused_t_def) {
  gpux__graph *g = &o->g;
  gpux__node *n = &g->nodes[i];
  int transposed = gpux__node_is(n, "ConvTranspose");
  if ((!transposed && !gpux__node_is(n, "Conv")) || n->n_in < 2 || n->n_out != 1 || n->out[0] < 0) return 0;
  if (!(transposed ? fused_t_def : fused_def)) return 0;
  const gpux_tensor *w = gpux__graph_const(g, n->in[1]), *b = n->n_in > 2 ? gpux__graph_const(g, n->in[2]) : NULL;
  if (!w || w->dtype != GPUX_DT_FLOAT || w->ndim < 3 || w->dims[0] < 1 || w->dims[1] < 1) return 0;
  const gpux__attr *ga = gpux__node_attr(n, "group");
  int64_t groups = ga ? ga->i : 1;
  if (groups < 1 || (transposed && w->dims[0] % groups)) return 0;
  int64_t cm = transposed ? w->dims[1] * groups : w->dims[0];
  if (n->n_in > 2 && n->in[2] >= 0 && (!b || b->dtype != GPUX_DT_FLOAT || gpux_tensor_count(b) != cm))
    return 0;
  int x = n->out[0], r = only_reader(u, x);
  if (r < 0 && u->uses[x] != 2) return 0;
  char base[256];
  snprintf(base, sizeof base, "%s", g->values[x].name);
  chain c = {.conv = i, .m = cm, .rank = w->ndim, .out = x, .act = ACT_NONE, .transposed = transposed, .res = -1,
             .w0 = w, .base = base, .wid = n->in[1]};
  c.per = gpux_tensor_count(w) / c.m;
  c.cg = w->dims[0] / groups, c.mg = w->dims[1], c.ks = gpux_tensor_count(w) / (w->dims[0] * w->dims[1]);
  /* the folded bias (the weights are copied when something scales them) */
  int64_t bd[1] = {c.m};
  int bid = add_const(o, base, "/fused_b", 1, bd, &c.b);
  if (bid < 0) return bid;
  for (int64_t m = 0; m < c.m; m++) c.b[m] = b ? ((const float *)b->data)[m] : 0.0f;
  int err = 0;
  for (;;) {
    if (absorb_hardswish(o, u, &c, dead) || absorb_silu(g, u, &c, dead) || absorb_residual(g, u, &c, i, dead)) continue;
    r = only_reader(u, c.out);
    if (r < 0 || !absorb(o, u, &c, r, dead, &err)) break;
  }
  if (err) return err;
  if (!c.n_fused) { /* nothing followed: keep the Conv, drop the copies */
    g->n_values -= c.w ? 2 : 1;
    return 0;
  }
  /* the FusedConv node: X, W', B' [, post_scale, post_bias [, residual]]; Conv's attributes +
   * activation */
  int n_in = c.res >= 0 ? 6 : c.ps ? 5 : 3;
  int *in = gpux__arena_alloc(&o->arena, (size_t)n_in * sizeof *in);
  int *out = gpux__arena_alloc(&o->arena, sizeof *out);
  gpux__attr *attrs = gpux__arena_alloc(&o->arena, (size_t)(n->n_attrs + 3) * sizeof *attrs);
  if (!in || !out || !attrs) return GPUX_E_NOMEM;
  in[0] = n->in[0], in[1] = c.wid, in[2] = bid;
  if (c.res >= 0) in[3] = in[4] = -1, in[5] = c.res;
  if (c.ps) {
    float *ps, *pb;
    int sid = add_const(o, base, "/post_scale", 1, bd, &ps);
    if (sid < 0) return sid;
    int pid = add_const(o, base, "/post_bias", 1, bd, &pb);
    if (pid < 0) return pid;
    memcpy(ps, c.ps, (size_t)c.m * sizeof *ps);
    memcpy(pb, c.pb, (size_t)c.m * sizeof *pb);
    in[3] = sid, in[4] = pid;
  }
  out[0] = c.out;
  memcpy(attrs, n->attrs, (size_t)n->n_attrs * sizeof *attrs);
  int na = n->n_attrs;
  if (c.act != ACT_NONE) {
    attrs[na++] = (gpux__attr){.name = "activation", .type = GPUX_ATTR_STRING, .s = act_names[c.act],
                              .s_len = strlen(act_names[c.act])};
    if (c.n_params) {
      float *p = gpux__arena_alloc(&o->arena, sizeof c.params);
      if (!p) return GPUX_E_NOMEM;
      memcpy(p, c.params, sizeof c.params);
      attrs[na++] = (gpux__attr){.name = "activation_params", .type = GPUX_ATTR_FLOATS, .n = c.n_params, .floats = p};
    }
  }
  if (c.clamp) {
    float *p = gpux__arena_alloc(&o->arena, 2 * sizeof *p);
    if (!p) return GPUX_E_NOMEM;
    p[0] = c.lo, p[1] = c.hi;
    attrs[na++] = (gpux__attr){.name = "clamp", .type = GPUX_ATTR_FLOATS, .n = 2, .floats = p};
  }
  n->op_type = transposed ? "FusedConvTranspose" : "FusedConv";
  n->domain = "gpux";
  n->op = transposed ? fused_t_def : fused_def;
  n->n_in = n_in, n->in = in;
  n->out = out;
  n->n_attrs = na, n->attrs = attrs;
  return 0;
}

/* ---- pass 3: squeeze-and-excitation ---- */

/* x + x * s, with s from a FusedConv read by nothing else, becomes x * s' with s' = s + 1 made
 * by that FusedConv (its post_bias): one pass over x instead of two. */
static int fuse_se(opt_graph *o, const use_map *u, int ia, unsigned char *dead) {
  gpux__graph *g = &o->g;
  gpux__node *add = &g->nodes[ia];
  if (!gpux__node_is(add, "Add") || add->n_in != 2 || add->n_out != 1) return 0;
  for (int side = 0; side < 2; side++) {
    int x = add->in[side], m = add->in[1 - side];
    if (x < 0 || m < 0 || only_reader(u, m) != ia) continue;
    int im = g->values[m].producer;
    if (im < 0 || dead[im]) continue;
    const gpux__node *mul = &g->nodes[im];
    if (!gpux__node_is(mul, "Mul") || mul->n_in != 2 || mul->n_out != 1) continue;
    int sv = mul->in[0] == x ? mul->in[1] : mul->in[1] == x ? mul->in[0] : -1;
    int ic = sv >= 0 && only_reader(u, sv) == im ? g->values[sv].producer : -1;
    if (ic < 0 || dead[ic] || sv == x) continue;
    gpux__node *fc = &g->nodes[ic];
    if (strcmp(fc->op_type, "FusedConv") || strcmp(fc->domain, "gpux") || fc->out[0] != sv) continue;
    const gpux_tensor *fb = fc->n_in >= 3 ? gpux__graph_const(g, fc->in[2]) : NULL;
    if (!fb || !is_owned(o, fb->data)) continue; /* not made above (a model's own FusedConv) */
    /* s' = s + 1 in the FusedConv's shift */
    int64_t cm = gpux_tensor_count(&g->values[fc->in[2]].init), bd[1] = {cm};
    if (fc->n_in < 5) {
      float *ps, *pb;
      int *in = gpux__arena_alloc(&o->arena, 5 * sizeof *in);
      if (!in) return GPUX_E_NOMEM;
      int sid = add_const(o, g->values[sv].name, "/post_scale", 1, bd, &ps);
      if (sid < 0) return sid;
      int pid = add_const(o, g->values[sv].name, "/post_bias", 1, bd, &pb);
      if (pid < 0) return pid;
      for (int64_t c = 0; c < cm; c++) ps[c] = 1.0f, pb[c] = 0.0f;
      memcpy(in, fc->in, 3 * sizeof *in);
      in[3] = sid, in[4] = pid;
      fc->in = in, fc->n_in = 5;
    }
    float *shift = g->values[fc->in[4]].init.data; /* made by fuse_conv or just above */
    for (int64_t c = 0; c < cm; c++) shift[c] += 1.0f;
    /* the Add becomes the Mul x * s' */
    int *out = add->out;
    *add = *mul;
    add->out = out;
    dead[im] = 1;
    return 0;
  }
  return 0;
}

/* ---- driver ---- */

size_t gpux__graph_optimized_bytes(const gpux__graph *g) {
  if (!g) return 0;
  const opt_graph *o = (const opt_graph *)g;
  size_t total = o->owned_bytes;
  for (int i = 0; i < o->n_subs; i++) total += gpux__graph_optimized_bytes(o->subs[i]);
  return total;
}

void gpux__graph_optimized_free(gpux__graph *g) {
  if (!g) return;
  opt_graph *o = (opt_graph *)g;
  for (int i = 0; i < o->n_subs; i++) gpux__graph_optimized_free(o->subs[i]);
  free(o->subs);
  for (int i = 0; i < o->n_owned; i++) free(o->owned[i]);
  free(o->owned);
  free(g->values);
  free(g->nodes);
  free(g->dead_start);
  free(g->dead_after);
  gpux__arena_free(&o->arena);
  free(o);
}

static int optimize(const gpux__graph *src, unsigned skip, int fuse, int last_position, int rank, int argmax,
                    int channels_last, int lower_fp16, gpux__graph **out);

/* Keeps an optimized copy of a body graph with o (freed with it); frees the copy when it can't. */
static int keep_sub(opt_graph *o, gpux__graph *sub) {
  gpux__graph **subs = gpux__realloc(o->subs, (size_t)(o->n_subs + 1) * sizeof *subs);
  if (!subs) {
    gpux__graph_optimized_free(sub);
    return GPUX_E_NOMEM;
  }
  o->subs = subs;
  o->subs[o->n_subs++] = sub;
  return 0;
}

/* Nested graphs of node i rewritten: the node gets its own attribute list (and graph lists)
 * pointing at the copies, which o->subs keeps. Sets *changed when any was rewritten. */
static int optimize_subgraphs(opt_graph *o, int i, unsigned skip, int *changed) {
  gpux__node *n = &o->g.nodes[i];
  int own_attrs = 0; /* n->attrs is this graph's copy */
  for (int a = 0; a < n->n_attrs; a++) {
    int count = n->attrs[a].g ? 1 : n->attrs[a].type == GPUX_ATTR_GRAPHS ? n->attrs[a].n : 0;
    int own_list = 0;  /* n->attrs[a].graphs is this graph's copy */
    for (int k = 0; k < count; k++) {
      gpux__graph *sub;
      int rc = optimize(n->attrs[a].g ? n->attrs[a].g : n->attrs[a].graphs[k], skip, 1, -1, -1, 0, 0, 0, &sub);
      if (rc) return rc;
      if (!sub) continue;
      if ((rc = keep_sub(o, sub))) return rc;
      if (!own_attrs) {
        gpux__attr *attrs = gpux__arena_alloc(&o->arena, (size_t)n->n_attrs * sizeof *attrs);
        if (!attrs) return GPUX_E_NOMEM;
        memcpy(attrs, n->attrs, (size_t)n->n_attrs * sizeof *attrs);
        n->attrs = attrs;
        own_attrs = 1;
      }
      gpux__attr *at = &n->attrs[a];
      if (at->g) {
        at->g = sub;
      } else {
        if (!own_list) {
          struct gpux__graph **gs = gpux__arena_alloc(&o->arena, (size_t)at->n * sizeof *gs);
          if (!gs) return GPUX_E_NOMEM;
          memcpy(gs, at->graphs, (size_t)at->n * sizeof *gs);
          at->graphs = gs;
          own_list = 1;
        }
        at->graphs[k] = sub;
      }
      *changed = 1;
    }
  }
  return 0;
}

/* Pass 5 on the If (node i) whose output `which` the graph's output is: each branch is replaced by
 * a copy cut on its output `which` (rank: the If output's, for a branch that does not declare its
 * own). *cut is cleared when both were, so the graph itself adds only the ArgMax. */
static int last_position_branches(opt_graph *o, int i, int which, unsigned skip, int rank, int *cut) {
  gpux__node *n = &o->g.nodes[i];
  gpux__attr *attrs = gpux__arena_alloc(&o->arena, (size_t)n->n_attrs * sizeof *attrs);
  if (!attrs) return GPUX_E_NOMEM;
  memcpy(attrs, n->attrs, (size_t)n->n_attrs * sizeof *attrs);
  int done = 0;
  for (int a = 0; a < n->n_attrs; a++) {
    if (!attrs[a].g || (strcmp(attrs[a].name, "then_branch") && strcmp(attrs[a].name, "else_branch"))) continue;
    if (which >= attrs[a].g->n_outputs) return 0;
    gpux__graph *sub;
    int rc = optimize(attrs[a].g, skip, 0, which, rank, 0, 0, 0, &sub);
    if (rc) return rc;
    if ((rc = keep_sub(o, sub))) return rc;
    attrs[a].g = sub;
    done++;
  }
  n->attrs = attrs;
  *cut = done != 2;
  return 0;
}

/* Rewrites src: with `fuse`, passes 1 to 4 (and nested graphs); with last_position >= 0, pass 5
 * on that output (`rank` and `argmax` as gpux__last_position takes them; through an If into its
 * branches). */
static int optimize(const gpux__graph *src, unsigned skip, int fuse, int last_position, int rank, int argmax,
                    int channels_last, int lower_fp16, gpux__graph **out) {
  *out = NULL;
  const gpux__op_def *fused_def = gpux__op_find("gpux", "FusedConv", 1);
  const gpux__op_def *fused_t_def = gpux__op_find("gpux", "FusedConvTranspose", 1);
  opt_graph *o = gpux__calloc(1, sizeof *o);
  if (!o) return GPUX_E_NOMEM;
  gpux__graph *g = &o->g;
  *g = *src;
  g->hash = NULL, g->hash_cap = 0;   /* lookups by name go to the model's graph */
  g->dead_start = g->dead_after = NULL;
  g->cap_values = src->n_values + 6 * src->n_nodes + 16;
  /* pass 5 adds two; pass 6 one Transpose for each of a convolution's X, residual and Y at most */
  int cap_nodes = src->n_nodes + 3 + (channels_last ? 3 * src->n_nodes : 0);
  g->values = gpux__calloc((size_t)g->cap_values, sizeof *g->values);
  g->nodes = gpux__calloc((size_t)cap_nodes, sizeof *g->nodes);
  unsigned char *dead = NULL;
  use_map u = {0};
  int rc = 0, changed = 0;
  if (!g->values || !g->nodes) { rc = GPUX_E_NOMEM; goto out; }
  if (src->n_values) memcpy(g->values, src->values, (size_t)src->n_values * sizeof *g->values); /* may be NULL */
  if (src->n_nodes) memcpy(g->nodes, src->nodes, (size_t)src->n_nodes * sizeof *g->nodes);
  if (fuse && lower_fp16 && (rc = gpux__lower_fp16(g, &cap_nodes, &o->arena, gpux__graph_own, &changed))) goto out;
  if (!(dead = gpux__calloc((size_t)g->n_nodes + 1, 1))) { rc = GPUX_E_NOMEM; goto out; }
  if (fuse) {
    for (int i = 0; i < g->n_nodes; i++)
      if ((rc = optimize_subgraphs(o, i, skip, &changed))) goto out;
    fold_constants(o, dead);
    if ((rc = use_map_build(g, dead, &u))) goto out;
    for (int i = 0; i < g->n_nodes; i++)
      if (!dead[i] && (rc = fuse_conv(o, &u, i, dead, fused_def, fused_t_def))) goto out;
    /* producers again, for the FusedConv nodes just made */
    for (int i = 0; i < g->n_nodes; i++)
      for (int j = 0; j < g->nodes[i].n_out && !dead[i]; j++)
        if (g->nodes[i].out[j] >= 0) g->values[g->nodes[i].out[j]].producer = i;
    if ((rc = use_map_build(g, dead, &u))) goto out;
    for (int i = 0; i < g->n_nodes; i++)
      if (!dead[i] && (rc = fuse_se(o, &u, i, dead))) goto out;
    if ((rc = gpux__fuse_transformer(g, dead, &o->arena))) goto out; /* GELU, LayerNorm, MatMul + bias + act */
    if (!(skip & GPUX__OPT_ATTENTION) && (rc = gpux__fuse_attention(g, &o->arena, dead))) goto out;
  }
  int kept = 0;
  for (int i = 0; i < g->n_nodes; i++)
    if (!dead[i]) g->nodes[kept++] = g->nodes[i];
  changed |= kept != g->n_nodes;
  g->n_nodes = kept;
  if (fuse && channels_last && (rc = gpux__channels_last(g, cap_nodes, &o->arena, &changed))) goto out;
  if (fuse && channels_last && (rc = gpux__fuse_expand_dw(g, &o->arena, &changed))) goto out;
  if (last_position >= 0) {
    int which = -1, i = gpux__last_position_if(g, last_position, &which), cut = 1;
    int r = gpux__last_position_rank(g, last_position, rank);
    if (i >= 0 && r == 3 && (rc = last_position_branches(o, i, which, skip, r, &cut))) goto out;
    if ((rc = gpux__last_position(g, cap_nodes, &o->arena, last_position, rank, cut, argmax))) goto out;
    changed = 1;
  }
  if (changed) rc = gpux__graph_finalize(g);
out:
  free(dead);
  free(u.uses);
  free(u.readers);
  if (rc || !changed) {
    gpux__graph_optimized_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

int gpux__graph_optimize_with(const gpux__graph *src, const gpux__optimize_opts *opts, gpux__graph **out) {
  *out = NULL;
  const char *env = getenv("GPUX_OPTIMIZE");
  int fuse = !(env && !strcmp(env, "0"));
  if (!fuse && opts->last_position < 0) return 0;
  return optimize(src, opts->skip, fuse, opts->last_position, -1, 1, opts->channels_last, opts->lower_fp16, out);
}

int gpux__graph_optimize(const gpux__graph *src, gpux__graph **out) {
  return gpux__graph_optimize_with(src, &(gpux__optimize_opts){.last_position = -1}, out);
}
