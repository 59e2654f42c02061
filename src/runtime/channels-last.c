/* channels-last.c — the CPU backend's activation layout: where consecutive convolutions run on
 * conv-gemm.c's kernel, their activations stay channels last (NHWC) from one to the next instead
 * of being turned from NCHW planes into channels-last order and back around every convolution.
 *
 * A convolution may join a region when it is a Conv or gpux.FusedConv on 2 spatial dims with
 * constant float32 weights, of one group with at least 16 input and 64 output channels (the
 * kernel's panels are 64 channels wide: fewer run mostly empty, where the planes' kernels are
 * faster), or depthwise (one input and one output channel a group) of at least 16 channels, any
 * window (conv-depthwise.c's channels-last kernel: 16 channels of a position a vector), or of
 * one group with fewer than 16 input and at least 64 output channels on conv-rows.c's kernel (an
 * image model's stem): that one reads X's planes as they are (gpux.ConvNHWC with x_planes=1), so
 * a region may start at the graph's input without a Transpose. A MaxPool of 2 spatial dims
 * without Indices on a region's value joins it as gpux.MaxPoolNHWC (pool.c).
 * A residual must be made by another such convolution (a Transpose into the layout takes rank 4
 * only). Such convolutions connected through their X or residual inputs form a region; a region is
 * rewritten only where it pays: at least two convolutions, and at most one boundary (a Transpose
 * into or out of the layout, each about what one convolution's own copies cost) for every two of
 * them. ResNet-50's stem, its MaxPool and its bottlenecks are one region of 53 convolutions with
 * one boundary, before the GlobalAveragePool.
 *
 * A squeeze-excitation on a convolution's output v joins v's region: its GlobalAveragePool(v)
 * becomes gpux.GlobalAveragePoolNHWC (pool.c), which writes the same [N, C, 1, 1], and its
 * Mul(v, s), s made from that pool by 1x1 convolutions without pads (so [N, C, 1, 1]), multiplies
 * v channels last by a Transpose of s into [N, 1, 1, C] (C floats) and writes its product channels
 * last for the convolution after it. So 28 of MobileNetV3-Large's convolutions and 34 of
 * EfficientNet-B0's run in regions (the excitations' own 1x1 convolutions stay NCHW). Outside
 * the regions such a Mul goes into the Conv or FusedConv that alone reads it, as FusedConv's
 * x_scale (fold_excitations).
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

static int is_conv(const gpux__node *n) {
  return gpux__node_is(n, "Conv") || (n->domain && !strcmp(n->domain, "gpux") && !strcmp(n->op_type, "FusedConv"));
}

/* What a node is to a region: a convolution, a first convolution reading planes (of few input
 * channels), a squeeze-excitation's GlobalAveragePool or Mul, a MaxPool. */
enum { CL_NONE, CL_CONV, CL_POOL, CL_MUL, CL_STEM, CL_MAXPOOL };

/* Whether a node of kind `kind` writes its output channels last in a region. */
static int makes_nhwc(int kind) { return kind == CL_CONV || kind == CL_MUL || kind == CL_STEM || kind == CL_MAXPOOL; }

/* Whether node n, a convolution of one group and fewer than 16 input channels with W w, runs on
 * conv-rows.c's register blocks (at least 64 output channels: ResNet-50's 7 x 7 stem at about 180
 * GFLOP/s writing channels last, where 16 and 32 channels (MobileNetV3's and EfficientNet-B0's
 * 3 x 3 stems) keep most of a block's lanes empty and the implicit GEMM on the planes is faster). */
static int stem_takes(const gpux__node *n, const gpux_tensor *w) {
  const gpux__attr *d = gpux__node_attr(n, "dilations"), *pads = gpux__node_attr(n, "pads");
  gpux__conv2d p = {.g = 1, .c = w->dims[1], .m = w->dims[0], .kh = w->dims[2], .kw = w->dims[3], .dh = 1, .dw = 1};
  if (d && d->n == 2) p.dh = d->ints[0], p.dw = d->ints[1];
  if (pads && pads->n == 4) p.pt = pads->ints[0], p.pl = pads->ints[1];
  if (n->n_in > 5 && n->in[5] >= 0) return 0; /* no residual */
  return p.m >= 64 && gpux__conv_rows_takes(&p);
}

/* Node n's kind as a convolution: CL_CONV where it may run as gpux.ConvNHWC, CL_STEM where as
 * gpux.ConvNHWC reading X's planes (x_planes), or CL_NONE. */
static int eligible(const gpux__graph *g, const gpux__node *n) {
  if (!is_conv(n) || n->n_out != 1 || n->out[0] < 0 || n->n_in < 2 || n->in[0] < 0)
    return 0;
  const gpux_tensor *w = gpux__graph_const(g, n->in[1]);
  if (!w || w->dtype != GPUX_DT_FLOAT || w->ndim != 4) return 0;
  const gpux__attr *ga = gpux__node_attr(n, "group");
  int64_t group = ga ? ga->i : 1;
  if (group != 1 && !(group == w->dims[0] && w->dims[1] == 1 && group >= 16)) return 0; /* depthwise */
  for (int i = 2; i < n->n_in && i < 5; i++) /* B, post_scale, post_bias */
    if (n->in[i] >= 0 && !gpux__graph_const(g, n->in[i])) return 0;
  if (n->n_in > 6) return 0;
  if (group == 1 && w->dims[1] < 16) return stem_takes(n, w) ? CL_STEM : CL_NONE;
  return group == 1 && w->dims[0] < 64 ? CL_NONE : CL_CONV;
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

/* Whether s is made from GlobalAveragePool(v) by 1x1 convolutions without pads (so it is
 * [N, M, 1, 1]): a squeeze-excitation's scale of v. */
static int se_scale(const gpux__graph *g, const int *prod, int s, int v) {
  for (int depth = 0; depth < 4; depth++) {
    int p = s >= 0 ? prod[s] : -1;
    if (p < 0) return 0;
    const gpux__node *n = &g->nodes[p];
    if (gpux__node_is(n, "GlobalAveragePool")) return depth > 0 && n->n_in == 1 && n->in[0] == v;
    if (!is_conv(n) || n->n_in < 2) return 0;
    const gpux_tensor *w = gpux__graph_const(g, n->in[1]);
    if (!w || w->ndim != 4 || w->dims[2] != 1 || w->dims[3] != 1) return 0;
    const gpux__attr *pads = gpux__node_attr(n, "pads");
    for (int i = 0; pads && i < pads->n; i++)
      if (pads->ints[i]) return 0;
    s = n->in[0];
  }
  return 0;
}

/* Whether a node of kind `kind` (its Mul's region input `slot`) reads its input s channels last. */
static int reads_nhwc(int kind, int slot, int s) {
  return (kind == CL_CONV && (s == 0 || s == 5)) || ((kind == CL_POOL || kind == CL_MAXPOOL) && s == 0) ||
         (kind == CL_MUL && s == slot);
}

/* Whether n is a MaxPool that gpux.MaxPoolNHWC runs: 2 spatial dims, no Indices. */
static int maxpool_takes(const gpux__node *n) {
  const gpux__attr *ks = gpux__node_attr(n, "kernel_shape");
  return gpux__node_is(n, "MaxPool") && n->n_in == 1 && n->in[0] >= 0 && (n->n_out == 1 || (n->n_out == 2 && n->out[1] < 0)) &&
         n->out[0] >= 0 && ks && ks->n == 2;
}

/* Whether n, a convolution of a region, is 1 x 1 of one group, stride 1 and no padding, with room
 * for input 6: gpux.ConvNHWC then takes a squeeze-excitation's scale of X there (conv-gemm.c
 * scales the rows of X each task reads). */
static int pointwise(const gpux__graph *g, const gpux__node *n) {
  const gpux_tensor *w = n->n_in > 1 && n->in[1] >= 0 ? gpux__graph_const(g, n->in[1]) : NULL;
  const gpux__attr *ga = gpux__node_attr(n, "group"), *st = gpux__node_attr(n, "strides");
  const gpux__attr *pads = gpux__node_attr(n, "pads");
  if (!w || w->ndim != 4 || w->dims[2] != 1 || w->dims[3] != 1 || (ga && ga->i != 1) || n->n_in > 6) return 0;
  for (int i = 0; st && i < st->n; i++)
    if (st->ints[i] != 1) return 0;
  for (int i = 0; pads && i < pads->n; i++)
    if (pads->ints[i]) return 0;
  return 1;
}

/* Adds to uses[v] the reads of each value by the first nn nodes (inputs, captures) and the graph's
 * outputs, and sets reader[v] to the node reading v as its first input, -1 where some node reads
 * it as another input (meaningful where uses[v] is 1). */
static void count_readers(const gpux__graph *g, int nn, int *uses, int *reader) {
  for (int i = 0; i < nn; i++) {
    const gpux__node *n = &g->nodes[i];
    for (int s = 0; s < n->n_in; s++)
      if (n->in[s] >= 0) uses[n->in[s]]++, reader[n->in[s]] = s ? -1 : i;
    gpux__count_captures(n, uses, 1);
  }
  for (int o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] >= 0) uses[g->outputs[o]]++;
}

/* A gpux.GlobalAveragePoolNHWC of v that a depthwise gpux.ConvNHWC makes (a squeeze-excitation's,
 * after the depthwise convolution of an inverted residual block) takes the convolution's row
 * sums instead of v: the convolution gets an output 1, v's sums over each output row's positions
 * [N, OH, C] (conv-depthwise.c adds up each row while it is in L1, as it finishes it), and the
 * pool, as its input 1, adds up only those, without its own pass over v and its pool job (11 of
 * EfficientNet-B0's squeeze-excitations and 8 of MobileNetV3-Large's, those in regions). */
static int pool_row_sums(gpux__graph *g, gpux__arena *arena, int *changed) {
  for (int i = 0; i < g->n_nodes; i++) {
    gpux__node *pool = &g->nodes[i];
    if (!pool->domain || strcmp(pool->domain, "gpux") || strcmp(pool->op_type, "GlobalAveragePoolNHWC") ||
        pool->n_in != 1 || pool->in[0] < 0)
      continue;
    int v = pool->in[0];
    gpux__node *conv = NULL;
    for (int j = 0; j < i && !conv; j++)
      for (int o = 0; o < g->nodes[j].n_out; o++)
        if (g->nodes[j].out[o] == v) conv = &g->nodes[j];
    if (!conv || !conv->domain || strcmp(conv->domain, "gpux") || strcmp(conv->op_type, "ConvNHWC") ||
        conv->n_out != 1 || conv->n_in < 2 || gpux__node_attr(conv, "x_planes"))
      continue;
    const gpux_tensor *w = gpux__graph_const(g, conv->in[1]);
    const gpux__attr *ga = gpux__node_attr(conv, "group");
    if (!w || w->ndim != 4 || w->dims[1] != 1 || !ga || ga->i != w->dims[0] || ga->i < 2) continue; /* depthwise */
    const char *name = name_of(arena, g->values[v].name, "/row_sums");
    int *outs = gpux__arena_alloc(arena, 2 * sizeof *outs), *ins = gpux__arena_alloc(arena, 2 * sizeof *ins);
    if (!name || !outs || !ins) return GPUX_E_NOMEM;
    int rs = gpux__graph_append_value(g, name);
    if (rs < 0) break; /* no room for the value: the pools left read v, as before */
    outs[0] = v, outs[1] = rs, ins[0] = v, ins[1] = rs;
    conv->out = outs, conv->n_out = 2;
    pool->in = ins, pool->n_in = 2;
    *changed = 1;
  }
  return 0;
}

/* A squeeze-excitation's Mul(v, s) (se[i]: 1 + v's input; nodes [0, nn) of g, with the regions
 * made) whose product only a Conv or FusedConv of one group outside the regions reads, as its X,
 * goes into that convolution as its input 6, x_scale (conv.c): the convolution reads v and
 * scales its weights by s per input channel, and the Mul is dropped, with its pass over v (a
 * Conv becomes a gpux.FusedConv for it). Such convolutions are the network's first ones, on the
 * large planes where the weights are few against v's values (EfficientNet-B0's 32 x 112 x 112
 * into 16 channels); in the regions, on 14 x 14 and 7 x 7 planes, they are about as many, and
 * scaling either costs what the Mul does. */
static int fold_excitations(gpux__graph *g, gpux__arena *arena, const unsigned char *se, int nn, int *changed) {
  const gpux__op_def *fused_def = gpux__op_find("gpux", "FusedConv", 1);
  int *uses = gpux__calloc((size_t)g->n_values + 1, sizeof *uses), *reader = gpux__malloc(((size_t)g->n_values + 1) * sizeof *reader);
  unsigned char *drop = gpux__calloc((size_t)g->n_nodes + 1, 1);
  if (!uses || !reader || !drop) {
    free(uses), free(reader), free(drop);
    return GPUX_E_NOMEM;
  }
  count_readers(g, g->n_nodes, uses, reader);
  int rc = 0;
  for (int i = 0; i < nn && !rc; i++) {
    gpux__node *m = &g->nodes[i];
    int u = m->n_out == 1 ? m->out[0] : -1;
    if (!se[i] || !fused_def || u < 0 || uses[u] != 1 || reader[u] < 0) continue;
    gpux__node *c = &g->nodes[reader[u]];
    const gpux__attr *ga = gpux__node_attr(c, "group");
    const gpux_tensor *w = c->n_in > 1 && c->in[1] >= 0 ? gpux__graph_const(g, c->in[1]) : NULL;
    int conv = gpux__node_is(c, "Conv") || (c->domain && !strcmp(c->domain, "gpux") && !strcmp(c->op_type, "FusedConv"));
    if (!conv || c->n_in > 6 || (ga && ga->i != 1) || !w || w->dtype != GPUX_DT_FLOAT || w->ndim != 4) continue;
    int *ins = gpux__arena_alloc(arena, 7 * sizeof *ins);
    if (!ins) {
      rc = GPUX_E_NOMEM;
      break;
    }
    for (int s = 0; s < 7; s++) ins[s] = s < c->n_in ? c->in[s] : -1;
    ins[0] = m->in[se[i] - 1], ins[6] = m->in[2 - se[i]];
    c->in = ins, c->n_in = 7;
    if (!c->domain || strcmp(c->domain, "gpux")) c->op_type = "FusedConv", c->domain = "gpux", c->op = fused_def;
    drop[i] = 1;
    *changed = 1;
  }
  int kept = 0;
  for (int i = 0; i < g->n_nodes; i++)
    if (!drop[i]) g->nodes[kept++] = g->nodes[i];
  g->n_nodes = kept;
  free(uses), free(reader), free(drop);
  return rc;
}

int gpux__channels_last(gpux__graph *g, int cap_nodes, gpux__arena *arena, int *changed) {
  const char *env = getenv("GPUX_CHANNELS_LAST");
  if ((env && !strcmp(env, "0")) || !gpux__conv_gemm_available()) return 0;
  const gpux__op_def *conv_def = gpux__op_find("gpux", "ConvNHWC", 1), *tr_def = gpux__op_find("", "Transpose", 13);
  const gpux__op_def *pool_def = gpux__op_find("gpux", "GlobalAveragePoolNHWC", 1);
  const gpux__op_def *max_def = gpux__op_find("gpux", "MaxPoolNHWC", 1);
  if (!conv_def || !tr_def || !pool_def || !max_def) return 0;
  int nn = g->n_nodes, nv = g->n_values, rc = 0;
  int *up = gpux__malloc(((size_t)nn + 1) * sizeof *up), *prod = gpux__malloc(((size_t)nv + 1) * sizeof *prod);
  int *outside = gpux__calloc((size_t)nv + 1, sizeof *outside), *nhwc = gpux__malloc(((size_t)nv + 1) * sizeof *nhwc);
  int *convs = gpux__calloc((size_t)nn + 1, sizeof *convs), *bounds = gpux__calloc((size_t)nn + 1, sizeof *bounds);
  unsigned char *elig = gpux__calloc((size_t)nn + 1, 1), *counted = gpux__calloc((size_t)nv + 1, 1);
  unsigned char *slot = gpux__calloc((size_t)nn + 1, 1); /* a Mul's input of the region's value */
  unsigned char *se = gpux__calloc((size_t)nn + 1, 1);   /* a squeeze-excitation's Mul: 1 + its v's input */
  int *into = gpux__calloc((size_t)nn + 1, sizeof *into); /* a Mul folded into convolution into[i] - 1 */
  int *uses = gpux__calloc((size_t)nv + 1, sizeof *uses), *reader = gpux__malloc(((size_t)nv + 1) * sizeof *reader);
  if (!up || !prod || !outside || !nhwc || !convs || !bounds || !elig || !counted || !slot || !se || !into || !uses ||
      !reader) {
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
      /* a MaxPool on a convolution's output reads it channels last */
      int mp = maxpool_takes(n) && prod[n->in[0]] >= 0 && makes_nhwc(elig[prod[n->in[0]]]) ? CL_MAXPOOL : CL_NONE;
      if (maxpool_takes(n) && elig[i] != mp) elig[i] = (unsigned char)mp, again = 1;
    }
  }
  /* squeeze-excitation on a convolution's output v: GlobalAveragePool(v) reads it channels last,
   * and Mul(v, s) by its [N, C, 1, 1] scale s (turned into [N, 1, 1, C]) writes it so */
  for (int i = 0; i < nn; i++) {
    const gpux__node *n = &g->nodes[i];
    if (n->n_out != 1 || n->out[0] < 0 || (n->domain && n->domain[0])) continue;
    if (gpux__node_is(n, "GlobalAveragePool") && n->n_in == 1 && n->in[0] >= 0 && prod[n->in[0]] >= 0 &&
        elig[prod[n->in[0]]] == CL_CONV)
      elig[i] = CL_POOL;
    for (int d = 0; d < 2 && gpux__node_is(n, "Mul") && n->n_in == 2 && !se[i]; d++) {
      int v = n->in[d], p = v >= 0 ? prod[v] : -1;
      if (p < 0 || !se_scale(g, prod, n->in[1 - d], v)) continue;
      se[i] = (unsigned char)(d + 1);
      if (elig[p] == CL_CONV) elig[i] = CL_MUL, slot[i] = (unsigned char)d;
    }
  }
  /* regions: convolutions joined through X (input 0) and the residual (input 5) to the
   * convolutions and Muls that make them; a GlobalAveragePool and a Mul join their value's maker */
  for (int i = 0; i < nn; i++) {
    if (!elig[i]) continue;
    const gpux__node *n = &g->nodes[i];
    for (int s = 0; s < 6; s++) {
      int v = s < n->n_in ? n->in[s] : -1, p = v >= 0 ? prod[v] : -1;
      if (p >= 0 && reads_nhwc(elig[i], slot[i], s) && makes_nhwc(elig[p]))
        up[root(up, i)] = root(up, p);
    }
  }
  /* what reads each value from outside its producer's region: other inputs of any node, nodes of
   * no region or another, graph outputs, nested graphs */
  for (int i = 0; i < nn; i++) {
    const gpux__node *n = &g->nodes[i];
    for (int s = 0; s < n->n_in; s++) {
      int v = n->in[s], p = v >= 0 ? prod[v] : -1;
      if (p < 0 || !makes_nhwc(elig[p])) continue;
      if (!reads_nhwc(elig[i], slot[i], s) || root(up, i) != root(up, p)) outside[v] = 1;
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
    if (elig[i] == CL_POOL) continue;
    convs[r] += elig[i] == CL_CONV || elig[i] == CL_STEM;
    if (outside[n->out[0]]) bounds[r]++;
    for (int s = 0; s < 6; s++) {
      int v = s < n->n_in ? n->in[s] : -1, p = v >= 0 ? prod[v] : -1;
      if (v >= 0 && reads_nhwc(elig[i], slot[i], s) && (p < 0 || !makes_nhwc(elig[p])) &&
          !counted[v])
        counted[v] = 1, bounds[r]++;
    }
  }
  for (int i = 0; i < nn; i++)
    if (elig[i]) {
      int r = root(up, i);
      if (convs[r] < 2 || 2 * bounds[r] > convs[r]) elig[i] = CL_NONE;
    }
  /* a squeeze-excitation's Mul in a region whose product only a 1 x 1 convolution of the region
   * reads, as its X, goes into that convolution as x_scale (input 6): the convolution reads v and
   * scales the rows of v each of its tasks reads, in cache, or its block of W where that is less
   * to scale (conv-gemm.c), and the Mul, its pass over v and its job on the pool are gone
   * (MobileNetV3's last five excitations, EfficientNet-B0's last eleven, each before its 1x1
   * projection) */
  count_readers(g, nn, uses, reader);
  for (int i = 0; i < nn; i++) {
    int u = g->nodes[i].out[0], r = elig[i] == CL_MUL && !outside[u] && uses[u] == 1 ? reader[u] : -1;
    if (r >= 0 && elig[r] == CL_CONV && root(up, r) == root(up, i) && pointwise(g, &g->nodes[r])) into[i] = r + 1;
  }
  /* the outputs first (readers may come before their producer in this order), then the inputs */
  for (int i = 0; i < nn && !rc; i++) {
    if (!elig[i] || elig[i] == CL_POOL || into[i]) continue;
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
    n->out = outs, n->n_out = 1;
  }
  for (int i = 0; i < nn && !rc; i++) { /* the folded Muls' convolutions: X = v, x_scale = s */
    if (!into[i]) continue;
    gpux__node *m = &g->nodes[i], *c = &g->nodes[into[i] - 1];
    int *ins = gpux__arena_alloc(arena, 7 * sizeof *ins);
    if (!ins) { rc = GPUX_E_NOMEM; break; }
    for (int s = 0; s < 7; s++) ins[s] = s < c->n_in ? c->in[s] : -1;
    ins[0] = m->in[slot[i]], ins[6] = m->in[1 - slot[i]];
    c->in = ins, c->n_in = 7;
  }
  for (int i = 0; i < nn && !rc; i++) {
    if (!elig[i] || into[i]) continue;
    gpux__node *n = &g->nodes[i];
    int *ins = gpux__arena_alloc(arena, (size_t)n->n_in * sizeof *ins);
    if (!ins) { rc = GPUX_E_NOMEM; break; }
    memcpy(ins, n->in, (size_t)n->n_in * sizeof *ins);
    for (int s = 0; s < n->n_in && !rc; s++) {
      int v = ins[s];
      /* a Mul's scale [N, C, 1, 1] goes in as [N, 1, 1, C] */
      if (v < 0 || !(reads_nhwc(elig[i], slot[i], s) || (elig[i] == CL_MUL && s != slot[i]))) continue;
      if (nhwc[v] < 0) { /* from outside: one Transpose per value */
        int x = add_transpose(g, cap_nodes, arena, tr_def, v, to_nhwc_perm, -1);
        if (x < 0) { rc = x; break; }
        nhwc[v] = x;
      }
      ins[s] = nhwc[v];
    }
    n->in = ins;
    *changed = 1;
    if (elig[i] == CL_MUL) continue;
    if (elig[i] == CL_STEM) { /* X stays planes */
      gpux__attr *at = gpux__arena_alloc(arena, ((size_t)n->n_attrs + 1) * sizeof *at);
      if (!at) { rc = GPUX_E_NOMEM; break; }
      if (n->n_attrs) memcpy(at, n->attrs, (size_t)n->n_attrs * sizeof *at);
      at[n->n_attrs++] = (gpux__attr){.name = "x_planes", .type = GPUX_ATTR_INT, .i = 1};
      n->attrs = at;
    }
    int conv = elig[i] == CL_CONV || elig[i] == CL_STEM;
    n->op_type = conv ? "ConvNHWC" : elig[i] == CL_MAXPOOL ? "MaxPoolNHWC" : "GlobalAveragePoolNHWC";
    n->domain = "gpux";
    n->op = conv ? conv_def : elig[i] == CL_MAXPOOL ? max_def : pool_def;
  }
  if (!rc) { /* the folded Muls go (se[] follows the nodes [0, nn) that stay) */
    int kept = 0, kept_nn = 0;
    for (int i = 0; i < g->n_nodes; i++) {
      if (i < nn && into[i]) continue;
      if (i < nn) se[kept_nn++] = se[i];
      g->nodes[kept++] = g->nodes[i];
    }
    g->n_nodes = kept, nn = kept_nn;
  }
  if (!rc) rc = fold_excitations(g, arena, se, nn, changed);
  if (!rc) rc = pool_row_sums(g, arena, changed);
out:
  free(up); free(prod); free(outside); free(nhwc); free(convs); free(bounds); free(elig); free(counted); free(slot);
  free(se); free(into); free(uses); free(reader);
  return rc;
}
