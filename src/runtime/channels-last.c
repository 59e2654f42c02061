/* channels-last.c — the CPU backend's activation layout: where consecutive convolutions run on
 * conv-gemm.c's kernel, their activations stay channels last (NHWC) from one to the next instead
 * of being turned from NCHW planes into channels-last order and back around every convolution.
 *
 * A convolution may join a region when it is a Conv or gpux.FusedConv on 2 spatial dims with
 * constant float32 weights, of one group with at least 16 input and 64 output channels (the
 * kernel's panels are 64 channels wide: fewer run mostly empty, where the planes' kernels are
 * faster), or depthwise (one input and one output channel a group) of at least 16 channels, any
 * window (conv-depthwise.c's channels-last kernel: 16 channels of a position a vector).
 * A residual must be made by another such convolution (a Transpose into the layout takes rank 4
 * only). Such convolutions connected through their X or residual inputs form a region; a region is
 * rewritten only where it pays: at least two convolutions, and at most one boundary (a Transpose
 * into or out of the layout, each about what one convolution's own copies cost) for every two of
 * them. ResNet-50's bottlenecks are one region of 52 convolutions with two boundaries: after the
 * stem's MaxPool and before the GlobalAveragePool; MobileNetV3-Large's bottlenecks of 80 channels
 * (no squeeze-excitation) one of 14. Squeeze-excitation blocks (their GlobalAveragePool and Mul
 * read the depthwise output as planes) end regions.
 *
 * In a region each convolution becomes gpux.ConvNHWC (conv.c), which reads and writes
 * [N, H, W, C]. A value the region reads from outside goes through one Transpose (perm 0,2,3,1)
 * into a new value; a value the region makes that anything outside reads (another node, a graph
 * output, a nested graph) keeps its id and its NCHW meaning, made by a Transpose (perm 0,3,1,2)
 * of a new channels-last value the convolution writes. Values only the region reads change
 * layout in place (their declared shape is dropped). */
#include "runtime/channels-last.h"
#include "runtime/rewrite.h"
#include "ops/op.h"
#include "ops/conv.h"
#include <stdio.h>

static int64_t to_nhwc_perm[4] = {0, 2, 3, 1}, to_nchw_perm[4] = {0, 3, 1, 2};

/* Whether node n may run as gpux.ConvNHWC. */
static int eligible(const gpux__graph *g, const gpux__node *n) {
  int fused = n->domain && !strcmp(n->domain, "gpux") && !strcmp(n->op_type, "FusedConv");
  if ((!fused && !gpux__node_is(n, "Conv")) || n->n_out != 1 || n->out[0] < 0 || n->n_in < 2 || n->in[0] < 0)
    return 0;
  const gpux_tensor *w = gpux__graph_const(g, n->in[1]);
  if (!w || w->dtype != GPUX_DT_FLOAT || w->ndim != 4) return 0;
  const gpux__attr *ga = gpux__node_attr(n, "group");
  int64_t group = ga ? ga->i : 1;
  if (group != 1 && !(group == w->dims[0] && w->dims[1] == 1 && group >= 16)) return 0; /* depthwise */
  if (group == 1 && (w->dims[1] < 16 || w->dims[0] < 64)) return 0;
  for (int i = 2; i < n->n_in && i < 5; i++) /* B, post_scale, post_bias */
    if (n->in[i] >= 0 && !gpux__graph_const(g, n->in[i])) return 0;
  return n->n_in <= 6;
}

/* The root of node i's region (union-find with path halving). */
static int root(int *up, int i) {
  while (up[i] != i) i = up[i] = up[up[i]];
  return i;
}

static const char *name_of(gpux__arena *a, const char *base, const char *suffix) {
  size_t len = strlen(base ? base : "") + strlen(suffix) + 1;
  char *s = gpux__arena_alloc(a, len);
  if (s) snprintf(s, len, "%s%s", base ? base : "", suffix);
  return s;
}

/* Appends Transpose(x) with perm: into a new value named after x (out < 0), whose id it returns,
 * or into value `out`; a negative error. */
static int add_transpose(gpux__graph *g, int cap_nodes, gpux__arena *a, const gpux__op_def *def, int x, int64_t *perm,
                         int out) {
  if (g->n_nodes >= cap_nodes) return gpux__error(GPUX_E_INTERNAL, "channels last: no room for a node");
  const char *name = name_of(a, g->values[out >= 0 ? out : x].name, out >= 0 ? "/to_nchw" : "/to_nhwc");
  int *ins = gpux__arena_alloc(a, sizeof *ins), *outs = gpux__arena_alloc(a, sizeof *outs);
  gpux__attr *at = gpux__arena_alloc(a, sizeof *at);
  if (!name || !ins || !outs || !at) return GPUX_E_NOMEM;
  int v = out;
  if (v < 0 && (v = gpux__graph_append_value(g, name)) < 0) return v;
  ins[0] = x, outs[0] = v;
  *at = (gpux__attr){.name = "perm", .type = GPUX_ATTR_INTS, .n = 4, .ints = perm};
  g->nodes[g->n_nodes++] = (gpux__node){.name = name, .op_type = "Transpose", .domain = "", .opset = 13, .n_in = 1,
                                        .n_out = 1, .in = ins, .out = outs, .n_attrs = 1, .attrs = at, .op = def};
  return v;
}

int gpux__channels_last(gpux__graph *g, int cap_nodes, gpux__arena *arena, int *changed) {
  const char *env = getenv("GPUX_CHANNELS_LAST");
  if ((env && !strcmp(env, "0")) || !gpux__conv_gemm_available()) return 0;
  const gpux__op_def *conv_def = gpux__op_find("gpux", "ConvNHWC", 1), *tr_def = gpux__op_find("", "Transpose", 13);
  if (!conv_def || !tr_def) return 0;
  int nn = g->n_nodes, nv = g->n_values, rc = 0;
  int *up = gpux__malloc(((size_t)nn + 1) * sizeof *up), *prod = gpux__malloc(((size_t)nv + 1) * sizeof *prod);
  int *outside = gpux__calloc((size_t)nv + 1, sizeof *outside), *nhwc = gpux__malloc(((size_t)nv + 1) * sizeof *nhwc);
  int *convs = gpux__calloc((size_t)nn + 1, sizeof *convs), *bounds = gpux__calloc((size_t)nn + 1, sizeof *bounds);
  unsigned char *elig = gpux__calloc((size_t)nn + 1, 1), *counted = gpux__calloc((size_t)nv + 1, 1);
  if (!up || !prod || !outside || !nhwc || !convs || !bounds || !elig || !counted) {
    rc = GPUX_E_NOMEM;
    goto out;
  }
  for (int v = 0; v < nv; v++) prod[v] = -1, nhwc[v] = -1;
  for (int i = 0; i < nn; i++) {
    up[i] = i;
    elig[i] = (unsigned char)eligible(g, &g->nodes[i]);
    for (int j = 0; j < g->nodes[i].n_out; j++)
      if (g->nodes[i].out[j] >= 0) prod[g->nodes[i].out[j]] = i;
  }
  /* a residual made outside the convolutions that may join (of any rank, which a Transpose of 4
   * axes would not take) keeps its reader out */
  for (int again = 1; again;) {
    again = 0;
    for (int i = 0; i < nn; i++) {
      const gpux__node *n = &g->nodes[i];
      int v = n->n_in > 5 ? n->in[5] : -1;
      if (elig[i] && v >= 0 && (prod[v] < 0 || !elig[prod[v]])) elig[i] = 0, again = 1;
    }
  }
  /* regions: eligible nodes joined through X (input 0) and the residual (input 5) */
  for (int i = 0; i < nn; i++) {
    if (!elig[i]) continue;
    const gpux__node *n = &g->nodes[i];
    for (int s = 0; s < 6; s += 5) {
      int v = s < n->n_in ? n->in[s] : -1, p = v >= 0 ? prod[v] : -1;
      if (p >= 0 && elig[p]) up[root(up, i)] = root(up, p);
    }
  }
  /* what reads each value from outside its producer's region: other inputs of any node, nodes of
   * no region or another, graph outputs, nested graphs */
  for (int i = 0; i < nn; i++) {
    const gpux__node *n = &g->nodes[i];
    for (int s = 0; s < n->n_in; s++) {
      int v = n->in[s], p = v >= 0 ? prod[v] : -1;
      if (p < 0 || !elig[p]) continue;
      if (!elig[i] || (s != 0 && s != 5) || root(up, i) != root(up, p)) outside[v] = 1;
    }
    gpux__count_captures(n, outside, 1);
  }
  for (int o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] >= 0) outside[g->outputs[o]] = 1;
  /* each region's convolutions and boundaries */
  for (int i = 0; i < nn; i++) {
    if (!elig[i]) continue;
    const gpux__node *n = &g->nodes[i];
    int r = root(up, i);
    convs[r]++;
    if (outside[n->out[0]]) bounds[r]++;
    for (int s = 0; s < 6; s += 5) {
      int v = s < n->n_in ? n->in[s] : -1;
      if (v >= 0 && (prod[v] < 0 || !elig[prod[v]]) && !counted[v]) counted[v] = 1, bounds[r]++;
    }
  }
  for (int i = 0; i < nn; i++)
    if (elig[i]) {
      int r = root(up, i);
      elig[i] = convs[r] >= 2 && 2 * bounds[r] <= convs[r];
    }
  /* the outputs first (readers may come before their producer in this order), then the inputs */
  for (int i = 0; i < nn && !rc; i++) {
    if (!elig[i]) continue;
    gpux__node *n = &g->nodes[i];
    int v = n->out[0], *outs = gpux__arena_alloc(arena, sizeof *outs);
    if (!outs) { rc = GPUX_E_NOMEM; break; }
    if (outside[v]) {
      const char *name = name_of(arena, g->values[v].name, "/nhwc");
      int x = name ? gpux__graph_append_value(g, name) : GPUX_E_NOMEM;
      if (x < 0 || (rc = add_transpose(g, cap_nodes, arena, tr_def, x, to_nchw_perm, v)) < 0) {
        rc = x < 0 ? x : rc;
        break;
      }
      rc = 0;
      nhwc[v] = x;
    } else {
      nhwc[v] = v;
      g->values[v].has_info = 0; /* declared NCHW */
    }
    outs[0] = nhwc[v];
    n->out = outs;
  }
  for (int i = 0; i < nn && !rc; i++) {
    if (!elig[i]) continue;
    gpux__node *n = &g->nodes[i];
    int *ins = gpux__arena_alloc(arena, (size_t)n->n_in * sizeof *ins);
    if (!ins) { rc = GPUX_E_NOMEM; break; }
    memcpy(ins, n->in, (size_t)n->n_in * sizeof *ins);
    for (int s = 0; s < 6 && !rc; s += 5) {
      int v = s < n->n_in ? ins[s] : -1;
      if (v < 0) continue;
      if (nhwc[v] < 0) { /* from outside: one Transpose per value */
        int x = add_transpose(g, cap_nodes, arena, tr_def, v, to_nhwc_perm, -1);
        if (x < 0) { rc = x; break; }
        nhwc[v] = x;
      }
      ins[s] = nhwc[v];
    }
    n->in = ins;
    n->op_type = "ConvNHWC";
    n->domain = "gpux";
    n->op = conv_def;
    *changed = 1;
  }
out:
  free(up); free(prod); free(outside); free(nhwc); free(convs); free(bounds); free(elig); free(counted);
  return rc;
}
