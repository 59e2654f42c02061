/* rewrite.c — what the optimizer's graph rewrites share (rewrite.h): op tests, constant
 * lookups, counting nested graphs' captures and appending the values a rewrite makes. */
#include "runtime/rewrite.h"
#include <string.h>

int gpux__node_is(const gpux__node *n, const char *op) { return !n->domain[0] && !strcmp(n->op_type, op); }

const gpux_tensor *gpux__graph_const(const gpux__graph *g, int id) {
  if (id < 0) return NULL;
  while (!g->values[id].is_const && g->values[id].outer >= 0 && g->parent) {
    id = g->values[id].outer;
    g = g->parent;
  }
  if (!g->values[id].is_const) return NULL;
  const gpux_tensor *t = &g->values[id].init;
  return t->kind == GPUX_KIND_TENSOR && t->data ? t : NULL;
}

int gpux__graph_const_f32(const gpux__graph *g, int id, float *v) {
  const gpux_tensor *t = gpux__graph_const(g, id);
  if (!t || t->dtype != GPUX_DT_FLOAT || gpux_tensor_count(t) != 1) return 0;
  *v = ((const float *)t->data)[0];
  return 1;
}

void gpux__count_captures(const gpux__node *n, int *uses, int weight) {
  for (int a = 0; a < n->n_attrs; a++) {
    const gpux__attr *at = &n->attrs[a];
    int count = at->g ? 1 : at->type == GPUX_ATTR_GRAPHS ? at->n : 0;
    for (int s = 0; s < count; s++) {
      const gpux__graph *sub = at->g ? at->g : at->graphs[s];
      for (int v = 0; v < sub->n_values; v++)
        if (sub->values[v].outer >= 0) uses[sub->values[v].outer] += weight;
    }
  }
}

int gpux__graph_append_value(gpux__graph *g, const char *name) {
  if (g->n_values == g->cap_values) return gpux__error(GPUX_E_INVALID, "optimize: value table full");
  int id = g->n_values++;
  gpux__value *v = &g->values[id];
  memset(v, 0, sizeof *v);
  v->name = name;
  v->info.ndim = -1;
  v->outer = v->producer = v->last_use = -1;
  return id;
}

int gpux__graph_append_const(gpux__graph *g, const char *name, int dtype, int ndim, const int64_t *dims, void *data,
                             size_t nbytes) {
  int id = gpux__graph_append_value(g, name);
  if (id < 0) return id;
  gpux__value *v = &g->values[id];
  v->is_const = 1;
  gpux_tensor *t = &v->init;
  t->kind = GPUX_KIND_TENSOR;
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->dims[i] = dims[i];
  t->data = data;
  t->nbytes = nbytes;
  t->owns_data = 0;
  return id;
}
