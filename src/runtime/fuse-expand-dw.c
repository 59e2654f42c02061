/* fuse-expand-dw.c — an inverted residual block's 1x1 expansion and its depthwise convolution as
 * one gpux.ExpandDepthwise node (fuse-expand-dw.h), which conv-depthwise.c runs per strip of
 * output rows so that the expansion's output, the block's largest activation, is never written
 * out: MobileNetV3's 64 x 112 x 112 and EfficientNet-B0's 96 x 112 x 112 (3.2 and 4.8 MB) stay
 * in L2 a strip at a time. Only what the kernel takes is fused; any shape it declines at run
 * time still runs (the two convolutions one after the other). Per node, at
 * real-time priority on a 2-core machine (three rounds, ms before -> after): MobileNetV3's five
 * fused blocks 1.26-1.28 -> 1.21-1.23 at 1 thread and 0.73-0.74 -> 0.69-0.70 at 2,
 * EfficientNet-B0's four 2.82-2.83 -> 2.77-2.82 and 1.50-1.53 -> 1.44-1.45. GPUX_EXPAND_DW=0
 * turns the rewrite off. */
#include "runtime/fuse-expand-dw.h"
#include "runtime/rewrite.h"
#include "ops/op.h"
#include "ops/conv.h"
#include <stdio.h>

static int is_conv(const gpux__node *n) {
  return gpux__node_is(n, "Conv") || (!strcmp(n->domain, "gpux") && !strcmp(n->op_type, "FusedConv"));
}

/* Whether attribute list ints are all v (an absent attribute is). */
static int all_ints(const gpux__node *n, const char *name, int64_t v) {
  const gpux__attr *a = gpux__node_attr(n, name);
  for (int i = 0; a && i < a->n; i++)
    if (a->ints[i] != v) return 0;
  return 1;
}

/* Whether n is a convolution of constant float32 weights [m, c, k, k] (its W) and constant or no B,
 * with no epilogue but an activation and clamp: no post_scale, post_bias, residual or x_scale,
 * and no attribute but a convolution's and those. */
static const gpux_tensor *plain_conv(const gpux__graph *g, const gpux__node *n) {
  static const char *const known[] = {"kernel_shape", "strides", "pads",  "dilations", "group",
                                      "auto_pad",     "activation", "activation_params", "clamp"};
  if (!is_conv(n) || n->n_out != 1 || n->out[0] < 0 || n->n_in < 2 || n->in[0] < 0) return NULL;
  for (int i = 3; i < n->n_in; i++)
    if (n->in[i] >= 0) return NULL;
  if (n->n_in > 2 && n->in[2] >= 0 && !gpux__graph_const(g, n->in[2])) return NULL;
  for (int a = 0; a < n->n_attrs; a++) {
    size_t i = 0;
    while (i < GPUX__ARRAY_LEN(known) && strcmp(known[i], n->attrs[a].name)) i++;
    if (i == GPUX__ARRAY_LEN(known)) return NULL;
  }
  const gpux_tensor *w = gpux__graph_const(g, n->in[1]);
  if (!w || w->dtype != GPUX_DT_FLOAT || w->ndim != 4 || w->dims[2] != w->dims[3]) return NULL;
  return w;
}

/* Whether n is an expansion: one group, 1x1, stride 1, no pads. */
static int expansion(const gpux__graph *g, const gpux__node *n, int64_t *m) {
  const gpux_tensor *w = plain_conv(g, n);
  const gpux__attr *ap = gpux__node_attr(n, "auto_pad");
  if (!w || w->dims[2] != 1 || !all_ints(n, "group", 1) || !all_ints(n, "strides", 1) || !all_ints(n, "pads", 0) ||
      (ap && ap->s && strcmp(ap->s, "NOTSET") && strcmp(ap->s, "VALID")))
    return 0;
  const gpux__attr *ga = gpux__node_attr(n, "group");
  if (ga && ga->i != 1) return 0;
  *m = w->dims[0];
  return 1;
}

/* Whether n is a depthwise convolution of m channels the fused kernel takes. */
static int depthwise(const gpux__graph *g, const gpux__node *n, int64_t m) {
  const gpux_tensor *w = plain_conv(g, n);
  const gpux__attr *ga = gpux__node_attr(n, "group"), *st = gpux__node_attr(n, "strides");
  if (!w || w->dims[0] != m || w->dims[1] != 1 || !ga || ga->i != m || !(w->dims[2] == 3 || w->dims[2] == 5) ||
      !all_ints(n, "dilations", 1))
    return 0;
  if (st && (st->n != 2 || st->ints[0] != st->ints[1] || (st->ints[0] != 1 && st->ints[0] != 2))) return 0;
  return 1;
}

int gpux__fuse_expand_dw(gpux__graph *g, gpux__arena *arena, int *changed) {
  const char *env = getenv("GPUX_EXPAND_DW");
  const gpux__op_def *def = gpux__op_find("gpux", "ExpandDepthwise", 1);
  if ((env && !strcmp(env, "0")) || !def || !gpux__conv_dw16_available()) return 0;
  int nn = g->n_nodes, nv = g->n_values;
  int *uses = gpux__calloc((size_t)nv + 1, sizeof *uses), *prod = gpux__malloc(((size_t)nv + 1) * sizeof *prod);
  unsigned char *drop = gpux__calloc((size_t)nn + 1, 1);
  int rc = 0;
  if (!uses || !prod || !drop) {
    rc = GPUX_E_NOMEM;
    goto out;
  }
  for (int v = 0; v < nv; v++) prod[v] = -1;
  for (int i = 0; i < nn; i++) {
    const gpux__node *n = &g->nodes[i];
    for (int s = 0; s < n->n_in; s++)
      if (n->in[s] >= 0) uses[n->in[s]]++;
    gpux__count_captures(n, uses, 1);
    for (int j = 0; j < n->n_out; j++)
      if (n->out[j] >= 0) prod[n->out[j]] = i;
  }
  for (int o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] >= 0) uses[g->outputs[o]]++;
  for (int i = 0; i < nn; i++) {
    gpux__node *d = &g->nodes[i];
    int v = d->n_in > 0 ? d->in[0] : -1, p = v >= 0 ? prod[v] : -1;
    int64_t m;
    if (p < 0 || drop[p] || uses[v] != 1 || !expansion(g, &g->nodes[p], &m) || !depthwise(g, d, m)) continue;
    const gpux__node *e = &g->nodes[p];
    int *ins = gpux__arena_alloc(arena, 5 * sizeof *ins);
    gpux__attr *at = gpux__arena_alloc(arena, (size_t)(d->n_attrs + 3) * sizeof *at);
    if (!ins || !at) {
      rc = GPUX_E_NOMEM;
      goto out;
    }
    ins[0] = e->in[0], ins[1] = d->in[1], ins[2] = d->n_in > 2 ? d->in[2] : -1;
    ins[3] = e->in[1], ins[4] = e->n_in > 2 ? e->in[2] : -1;
    int na = 0;
    for (int a = 0; a < d->n_attrs; a++) at[na++] = d->attrs[a];
    static const char *const acts[] = {"activation", "activation_params", "clamp"};
    static const char *const renamed[] = {"expand_activation", "expand_activation_params", "expand_clamp"};
    for (int k = 0; k < 3; k++) {
      const gpux__attr *a = gpux__node_attr(e, acts[k]);
      if (a) at[na] = *a, at[na++].name = renamed[k];
    }
    d->in = ins, d->n_in = 5, d->attrs = at, d->n_attrs = na;
    d->op_type = "ExpandDepthwise", d->domain = "gpux", d->op = def;
    drop[p] = 1;
    *changed = 1;
  }
  int kept = 0;
  for (int i = 0; i < nn; i++)
    if (!drop[i]) g->nodes[kept++] = g->nodes[i];
  g->n_nodes = kept;
out:
  free(uses), free(prod), free(drop);
  return rc;
}
