/* last-position.c — the rewrite behind the session option last_position (gpux.h): text generation
 * reads only the last position of a decoder's logits [batch, seq, vocab], so the session's copy of
 * the graph computes that position alone:
 *
 *   logits = op_k(... op_1(head(h)))   becomes   logits = op_k(... op_1(head(Slice(h))))
 *
 * Slice keeps the last position of the sequence axis (the one before the vocabulary). head is the
 * output layer, a MatMul by 2-D weights (a constant, or a Transpose of one: tied embeddings) or a
 * gpux.FusedMatMul (fuse-transformer.c's, which a Gemm or MatMul with transB also becomes), or a
 * MatMulInteger or QLinearMatMul with A quantized per tensor, whose rows are each computed from
 * the same row of h alone. op_1 .. op_k are position-wise: each output
 * position reads the same position of the value before it and nothing else that varies along the
 * sequence — elementwise ops whose other operands are constants of lower rank with at most one
 * position (a bias [vocab], a temperature, a softcap's scalar), LayerNormalization,
 * RMSNormalization, Softmax and LogSoftmax over the vocabulary, Cast, QuantizeLinear and
 * DequantizeLinear per tensor or along the vocabulary. The cut moves back from the
 * output through these ops while the value it passes has no reader but the next op of the chain;
 * where the chain stops being provably position-wise (a Reshape, a Softmax over the sequence, an
 * operand computed at run time, a value another node also reads) the cut is made there — at worst
 * at the output itself, which still saves reading back the other positions. A batch's rows are
 * left-padded by the generator (mode-generate.c), so the last position is one index for all rows.
 * The prefill's output layer then multiplies one row instead of seq of them.
 *
 * Logits made by an If (a merged decoder, whose two branches are the decoder without and with the
 * cache) are cut in each branch alike: optimize.c rewrites copies of the branches with this file's
 * rewrite on the If's output, and the graph itself gets the ArgMax alone.
 *
 * One more graph output follows the model's: the ArgMax of the (cut) logits over the vocabulary,
 * int64 [batch, 1], the first index of the largest value as the host's gpux__argmax picks it, so
 * that greedy decoding reads 8 bytes a row and leaves the logits on the device. Only an output
 * declared of rank 3 is cut; another keeps its shape and gets the ArgMax alone. */
#include "runtime/last-position.h"
#include "runtime/rewrite.h"
#include "ops/op.h"
#include <stdio.h>

/* Who reads and who makes each value of the graph. */
typedef struct {
  gpux__graph *g;
  int *uses;                    /* [n_values] reads by nodes; a graph output or a capture by a
                                   nested graph counts 1000 */
  int *prod;                    /* [n_values] the node making it, or -1 */
} lp_ctx;

static int index_build(lp_ctx *c) {
  const gpux__graph *g = c->g;
  c->uses = gpux__calloc((size_t)g->n_values + 1, sizeof *c->uses);
  c->prod = gpux__malloc(((size_t)g->n_values + 1) * sizeof *c->prod);
  if (!c->uses || !c->prod) return GPUX_E_NOMEM;
  for (int v = 0; v < g->n_values; v++) c->prod[v] = -1;
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0) c->uses[n->in[j]]++;
    for (int j = 0; j < n->n_out; j++)
      if (n->out[j] >= 0) c->prod[n->out[j]] = i;
    gpux__count_captures(n, c->uses, 1000);
  }
  for (int o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] >= 0) c->uses[g->outputs[o]] += 1000;
  return 0;
}

static int is_one_of(const char *op, const char *const *list) {
  for (; *list; list++)
    if (!strcmp(op, *list)) return 1;
  return 0;
}

/* Operand v of an elementwise op on a chain value of rank r varies along no position: absent, or a
 * constant of lower rank whose second-to-last dimension, if it has one, is 1 (broadcasting aligns
 * dimensions from the last, so it meets every position alike). */
static int one_position(const gpux__graph *g, int v, int r) {
  if (v < 0) return 1;
  const gpux_tensor *t = gpux__graph_const(g, v);
  return t && t->ndim < r && (t->ndim < 2 || t->dims[t->ndim - 2] == 1);
}

/* An axis attribute (default `dflt`) that names the last of r axes. */
static int last_axis(const gpux__node *n, int64_t dflt, int r) {
  const gpux__attr *a = gpux__node_attr(n, "axis");
  int64_t ax = a ? a->i : dflt;
  return ax == -1 || ax == r - 1;
}

/* B of a product has rank 2: a 2-D constant, one made of a 2-D constant by an op that keeps the
 * rank (Transpose, DequantizeLinear, Cast, Identity), or a value declared 2-D. */
static int rank2(const lp_ctx *c, int b) {
  static const char *const keep_rank[] = {"Transpose", "DequantizeLinear", "Cast", "Identity", NULL};
  const gpux__graph *g = c->g;
  const gpux_tensor *t = gpux__graph_const(g, b);
  if (t) return t->ndim == 2;
  int p = b >= 0 ? c->prod[b] : -1;
  if (p >= 0 && !g->nodes[p].domain[0] && is_one_of(g->nodes[p].op_type, keep_rank) &&
      (t = gpux__graph_const(g, g->nodes[p].in[0])))
    return t->ndim == 2;
  return b >= 0 && g->values[b].has_info && g->values[b].info.ndim == 2;
}

/* A scalar constant (one element). */
static int scalar(const gpux__graph *g, int v) {
  const gpux_tensor *t = gpux__graph_const(g, v);
  return t && gpux_tensor_count(t) == 1;
}

/* QuantizeLinear or DequantizeLinear node n on a value of rank r quantizes each position alike:
 * a constant scale and zero point per tensor, or per axis along the last axis; not blocked. */
static int quant_position_wise(const gpux__graph *g, const gpux__node *n, int r) {
  const gpux__attr *bs = gpux__node_attr(n, "block_size");
  if (n->n_in < 2 || (bs && bs->i) || !gpux__graph_const(g, n->in[1])) return 0;
  if (n->n_in > 2 && n->in[2] >= 0 && !gpux__graph_const(g, n->in[2])) return 0;
  return scalar(g, n->in[1]) || last_axis(n, 1, r);
}

/* Node i computes each position of its output (rank r) from the same position of one input and
 * nothing else that varies along the sequence: that input's index, else -1. *head is set when i is
 * the output layer, past which the cut goes no further. */
static int chain_input(const lp_ctx *c, int i, int r, int *head) {
  static const char *const unary[] = {"Cast", "Identity", "Neg", "Abs", "Relu", "LeakyRelu", "Elu", "Selu", "Celu",
                                      "Sigmoid", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Tanh", "Exp",
                                      "Log", "Sqrt", "Reciprocal", "Erf", "Gelu", "Floor", "Ceil", "Round", "Sign",
                                      "Clip", "Mish", NULL};
  static const char *const nary[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu",
                                     "Where", NULL};
  const gpux__graph *g = c->g;
  const gpux__node *n = &g->nodes[i];
  *head = 0;
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return -1;
  for (int k = 1; k < n->n_out; k++)
    if (n->out[k] >= 0) return -1; /* also makes another value (LayerNormalization's mean) */
  if (!strcmp(n->domain, "gpux") && !strcmp(n->op_type, "FusedMatMul")) {
    /* Y = act(A x B + bias) + R: B is 2-D, so A has Y's rank; bias [N] and R must not vary */
    if (n->n_in < 2 || !one_position(g, n->n_in > 2 ? n->in[2] : -1, r) || !one_position(g, n->n_in > 3 ? n->in[3] : -1, r))
      return -1;
    *head = 1;
    return 0;
  }
  if (n->domain[0]) return -1;
  const char *op = n->op_type;
  if (!strcmp(op, "MatMul")) {
    if (n->n_in != 2 || !rank2(c, n->in[1])) return -1; /* with 2-D B, A has Y's rank and Y's rows are A's */
    *head = 1;
    return 0;
  }
  if (!strcmp(op, "MatMulInteger") || !strcmp(op, "QLinearMatMul")) {
    /* the integer products: A's scale and zero point per tensor (MatMulInteger's may be per row) */
    int ql = op[0] == 'Q', b = ql ? 3 : 1;
    if (n->n_in <= b || !rank2(c, n->in[b])) return -1;
    for (int k = 1; k < n->n_in; k++)
      if (k != b && n->in[k] >= 0 && (ql ? k == 1 || k == 2 || k >= 6 : k == 2) && !scalar(g, n->in[k])) return -1;
    for (int k = b + 1; k < (ql ? 6 : 4) && k < n->n_in; k++) /* B's scale and zero point */
      if (n->in[k] >= 0 && !gpux__graph_const(g, n->in[k])) return -1;
    *head = 1;
    return 0;
  }
  if (!strcmp(op, "QuantizeLinear") || !strcmp(op, "DequantizeLinear")) return quant_position_wise(g, n, r) ? 0 : -1;
  if (!strcmp(op, "CastLike")) return 0; /* its second input gives the type alone */
  if (is_one_of(op, unary)) {
    for (int k = 1; k < n->n_in; k++) /* Clip's bounds */
      if (!one_position(g, n->in[k], r)) return -1;
    return 0;
  }
  if (!strcmp(op, "LayerNormalization") || !strcmp(op, "RMSNormalization")) {
    if (!last_axis(n, -1, r)) return -1;
    for (int k = 1; k < n->n_in; k++) /* scale, bias [vocab] */
      if (!one_position(g, n->in[k], r)) return -1;
    return 0;
  }
  if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax")) /* before opset 13: over the axes from `axis` on */
    return n->n_in == 1 && last_axis(n, n->opset >= 13 ? -1 : 1, r) ? 0 : -1;
  if (is_one_of(op, nary)) { /* one computed operand (maybe read twice), the others not varying */
    int x = -1, at = -1;
    for (int k = 0; k < n->n_in; k++) {
      int v = n->in[k];
      if (v == x || one_position(g, v, r)) continue;
      if (x >= 0 || gpux__graph_const(g, v)) return -1;
      x = v, at = k;
    }
    if (!strcmp(op, "Where") && at == 0) return -1; /* the condition is bool: the chain is not */
    return at;
  }
  return -1;
}

/* A name made of `base` and `suffix` in the arena. */
static const char *name_of(gpux__arena *a, const char *base, const char *suffix) {
  size_t len = strlen(base ? base : "") + strlen(suffix) + 1;
  char *s = gpux__arena_alloc(a, len);
  if (s) snprintf(s, len, "%s%s", base ? base : "", suffix);
  return s;
}

/* Appends node op_type (opset `opset`, default domain) reading in[n_in] and making one new value
 * named after `base`; its id, or a negative error. */
static int add_node(gpux__graph *g, int cap_nodes, gpux__arena *a, const char *op_type, int opset, const int *in, int n_in,
                    const gpux__attr *attrs, int n_attrs, const char *base, const char *suffix) {
  if (g->n_nodes >= cap_nodes) return gpux__error(GPUX_E_INTERNAL, "last position: no room for a node");
  const gpux__op_def *def = gpux__op_find("", op_type, opset);
  if (!def) return gpux__error(GPUX_E_INTERNAL, "last position: no kernel for %s", op_type);
  const char *name = name_of(a, base, suffix);
  int *ins = gpux__arena_alloc(a, (size_t)n_in * sizeof *ins), *outs = gpux__arena_alloc(a, sizeof *outs);
  gpux__attr *as = n_attrs ? gpux__arena_alloc(a, (size_t)n_attrs * sizeof *as) : NULL;
  if (!name || !ins || !outs || (n_attrs && !as)) return GPUX_E_NOMEM;
  int v = gpux__graph_append_value(g, name);
  if (v < 0) return v;
  memcpy(ins, in, (size_t)n_in * sizeof *ins);
  if (n_attrs) memcpy(as, attrs, (size_t)n_attrs * sizeof *as);
  outs[0] = v;
  g->nodes[g->n_nodes++] = (gpux__node){.name = name, .op_type = op_type, .domain = "", .opset = opset, .n_in = n_in,
                                        .n_out = 1, .in = ins, .out = outs, .n_attrs = n_attrs, .attrs = as, .op = def};
  return v;
}

/* Slice(x, starts [-1], ends [max], axes [-2]): the last position. The constants' data is static. */
static int add_slice(gpux__graph *g, int cap_nodes, gpux__arena *a, int x) {
  static int64_t starts[1] = {-1}, ends[1] = {INT64_MAX}, axes[1] = {-2};
  const int64_t one = 1;
  const char *base = g->values[x].name;
  int in[4] = {x, -1, -1, -1};
  const char *sn = name_of(a, base, "/last_starts"), *en = name_of(a, base, "/last_ends"), *an = name_of(a, base, "/last_axes");
  if (!sn || !en || !an) return GPUX_E_NOMEM;
  if ((in[1] = gpux__graph_append_const(g, sn, GPUX_DT_INT64, 1, &one, starts, sizeof starts)) < 0) return in[1];
  if ((in[2] = gpux__graph_append_const(g, en, GPUX_DT_INT64, 1, &one, ends, sizeof ends)) < 0) return in[2];
  if ((in[3] = gpux__graph_append_const(g, an, GPUX_DT_INT64, 1, &one, axes, sizeof axes)) < 0) return in[3];
  return add_node(g, cap_nodes, a, "Slice", 13, in, 4, NULL, 0, base, "/last");
}

int gpux__last_position_rank(const gpux__graph *g, int output, int rank) {
  const gpux__value *ov = &g->values[g->outputs[output]];
  return ov->has_info && ov->info.ndim >= 0 ? ov->info.ndim : rank;
}

int gpux__last_position_if(const gpux__graph *g, int output, int *which) {
  lp_ctx c = {.g = (gpux__graph *)g};
  int out = g->outputs[output], p = -1;
  if (!index_build(&c) && c.uses[out] == 1000 && c.prod[out] >= 0 && gpux__node_is(&g->nodes[c.prod[out]], "If")) {
    p = c.prod[out];
    for (int j = 0; j < g->nodes[p].n_out; j++)
      if (g->nodes[p].out[j] == out) *which = j;
  }
  free(c.uses);
  free(c.prod);
  return p;
}

int gpux__last_position(gpux__graph *g, int cap_nodes, gpux__arena *arena, int output, int rank, int cut, int argmax) {
  if (output < 0 || output >= g->n_outputs || g->outputs[output] < 0)
    return gpux__error(GPUX_E_INVALID, "last position: no output %d", output);
  lp_ctx c = {.g = g};
  int rc = index_build(&c), out = g->outputs[output];
  int r = gpux__last_position_rank(g, output, rank);
  int at = -1, x = -1; /* the cut: node `at`'s input x gets sliced; none yet: the output */
  for (int v = out, next = -1; !rc && cut && r == 3;) {
    /* v may be cut only when nothing but the chain reads it: the output, or node `next` */
    int reads = 0;
    if (next >= 0)
      for (int k = 0; k < g->nodes[next].n_in; k++) reads += g->nodes[next].in[k] == v;
    if (c.uses[v] != (next < 0 ? 1000 : reads) || c.prod[v] < 0) break;
    int head, p = c.prod[v], j = chain_input(&c, p, r, &head);
    if (j < 0) break;
    at = p, x = g->nodes[p].in[j];
    if (head) break;
    next = p, v = x;
  }
  if (!rc && cut && r == 3) {
    int s = add_slice(g, cap_nodes, arena, at >= 0 ? x : out);
    if (s < 0) rc = s;
    else if (at < 0) { /* the output is the Slice's, in a list of the rewrite's own */
      int *outputs = gpux__arena_alloc(arena, ((size_t)g->n_outputs + 1) * sizeof *outputs);
      if (!outputs) rc = GPUX_E_NOMEM;
      else {
        memcpy(outputs, g->outputs, (size_t)g->n_outputs * sizeof *outputs);
        outputs[output] = s;
        g->outputs = outputs;
      }
    } else { /* node `at` reads the last position instead of x (wherever it reads x) */
      gpux__node *n = &g->nodes[at];
      int *in = gpux__arena_alloc(arena, (size_t)n->n_in * sizeof *in);
      if (!in) rc = GPUX_E_NOMEM;
      for (int k = 0; !rc && k < n->n_in; k++) in[k] = n->in[k] == x ? s : n->in[k];
      if (!rc) n->in = in;
    }
  }
  if (!rc && argmax) {
    gpux__attr attrs[2] = {{.name = "axis", .type = GPUX_ATTR_INT, .i = -1},
                           {.name = "keepdims", .type = GPUX_ATTR_INT, .i = 0}};
    int *outputs = gpux__arena_alloc(arena, ((size_t)g->n_outputs + 1) * sizeof *outputs);
    int am = outputs ? add_node(g, cap_nodes, arena, "ArgMax", 13, &g->outputs[output], 1, attrs, 2, g->values[out].name, "/argmax")
                     : GPUX_E_NOMEM;
    if (am < 0) rc = am;
    else {
      memcpy(outputs, g->outputs, (size_t)g->n_outputs * sizeof *outputs);
      outputs[g->n_outputs++] = am;
      g->outputs = outputs;
    }
  }
  free(c.uses);
  free(c.prod);
  return rc;
}
