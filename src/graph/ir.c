/* ir.c — building and finishing the graph IR: value table, attribute lookup, and the
 * topological order with liveness (last use) that the executor frees intermediates by. */
#include "graph/ir.h"

static uint32_t name_hash(const char *s) {
  uint32_t h = 2166136261u; /* FNV-1a */
  while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
  return h;
}

int gpux__graph_find(const gpux__graph *g, const char *name) {
  if (!g->hash_cap) return -1;
  for (uint32_t i = name_hash(name) & (uint32_t)(g->hash_cap - 1);; i = (i + 1) & (uint32_t)(g->hash_cap - 1)) {
    int id = g->hash[i] - 1;
    if (id < 0) return -1;
    if (!strcmp(g->values[id].name, name)) return id;
  }
}

static void hash_insert(gpux__graph *g, int id) {
  uint32_t mask = (uint32_t)(g->hash_cap - 1), i = name_hash(g->values[id].name) & mask;
  while (g->hash[i]) i = (i + 1) & mask;
  g->hash[i] = id + 1;
}

/* keeps the index at most half full */
static int hash_reserve(gpux__graph *g, int n_values) {
  if (n_values * 2 < g->hash_cap) return 0;
  int cap = g->hash_cap ? g->hash_cap * 2 : 128;
  while (n_values * 2 >= cap) cap *= 2;
  int *h = gpux__calloc((size_t)cap, sizeof *h);
  if (!h) return GPUX_E_NOMEM;
  free(g->hash);
  g->hash = h;
  g->hash_cap = cap;
  for (int id = 0; id < g->n_values; id++) hash_insert(g, id);
  return 0;
}

int gpux__graph_add_value(gpux__graph *g, const char *name) {
  int id = gpux__graph_find(g, name);
  if (id >= 0) return id;
  if (g->n_values == g->cap_values) {
    int cap = g->cap_values ? g->cap_values * 2 : 64;
    gpux__value *v = gpux__realloc(g->values, (size_t)cap * sizeof *v);
    if (!v) return GPUX_E_NOMEM;
    g->values = v;
    g->cap_values = cap;
  }
  gpux__value *v = &g->values[g->n_values];
  memset(v, 0, sizeof *v);
  v->info.name = NULL;
  v->name = gpux__arena_strndup(&g->model->arena, name, strlen(name));
  if (!v->name) return GPUX_E_NOMEM;
  v->outer = -1;
  v->producer = -1;
  v->last_use = -1;
  v->info.ndim = -1;
  if (hash_reserve(g, g->n_values + 1)) return GPUX_E_NOMEM;
  hash_insert(g, g->n_values);
  return g->n_values++;
}

const gpux__attr *gpux__node_attr(const gpux__node *n, const char *name) {
  for (int i = 0; i < n->n_attrs; i++) /* kernels look up attributes on every run: first letters first */
    if (n->attrs[i].name[0] == name[0] && !strcmp(n->attrs[i].name, name)) return &n->attrs[i];
  return NULL;
}

/* Values of g that node n's subgraphs (If/Loop/Scan bodies) capture from g: they count as the
 * node's inputs for ordering and liveness. Calls fn(ctx, id) for each. */
static void node_captures(const gpux__node *n, void (*fn)(void *ctx, int id), void *ctx) {
  for (int a = 0; a < n->n_attrs; a++) {
    const gpux__attr *at = &n->attrs[a];
    int count = at->g ? 1 : at->type == GPUX_ATTR_GRAPHS ? at->n : 0;
    for (int j = 0; j < count; j++) {
      const gpux__graph *sub = at->g ? at->g : at->graphs[j];
      for (int v = 0; v < sub->n_values; v++)
        if (sub->values[v].outer >= 0) fn(ctx, sub->values[v].outer);
    }
  }
}

typedef struct {
  const char *ready;
  int ok;
} ready_check;

static void check_ready(void *ctx, int id) {
  ready_check *c = ctx;
  if (!c->ready[id]) c->ok = 0;
}

typedef struct {
  gpux__graph *g;
  int node;
} use_mark;

static void mark_use(void *ctx, int id) {
  use_mark *u = ctx;
  u->g->values[id].last_use = u->node;
}

int gpux__graph_finalize(gpux__graph *g) {
  int nv = g->n_values, nn = g->n_nodes, rc = 0;
  /* a value is ready when it is a graph input, a constant, an outer-scope value, or produced */
  char *ready = gpux__calloc((size_t)nv + 1, 1);
  char *done = gpux__calloc((size_t)nn + 1, 1);
  gpux__node *sorted = gpux__calloc((size_t)nn + 1, sizeof *sorted);
  if (!ready || !done || !sorted) { rc = GPUX_E_NOMEM; goto out; }
  for (int v = 0; v < nv; v++) {
    gpux__value *val = &g->values[v];
    val->producer = -1;
    val->last_use = -1;
    if (val->is_const || val->is_graph_input || val->outer >= 0) ready[v] = 1;
  }
  int n_sorted = 0;
  for (int progress = 1; progress && n_sorted < nn;) {
    progress = 0;
    for (int i = 0; i < nn; i++) {
      if (done[i]) continue;
      gpux__node *n = &g->nodes[i];
      int ok = 1;
      for (int j = 0; j < n->n_in && ok; j++) ok = n->in[j] < 0 || ready[n->in[j]];
      ready_check rc_ = {ready, ok};
      if (ok) node_captures(n, check_ready, &rc_);
      if (!rc_.ok) continue;
      for (int j = 0; j < n->n_out; j++)
        if (n->out[j] >= 0) ready[n->out[j]] = 1;
      sorted[n_sorted++] = *n;
      done[i] = 1;
      progress = 1;
    }
  }
  if (n_sorted < nn) {
    for (int i = 0; i < nn; i++) {
      if (done[i]) continue;
      const gpux__node *n = &g->nodes[i];
      for (int j = 0; j < n->n_in; j++)
        if (n->in[j] >= 0 && !ready[n->in[j]]) {
          rc = gpux__error(GPUX_E_MODEL, "node '%s' (%s): input '%s' is never produced (or the graph has a cycle)",
                           n->name ? n->name : "", n->op_type, g->values[n->in[j]].name);
          goto out;
        }
    }
    rc = gpux__error(GPUX_E_MODEL, "graph '%s' has a cycle", g->name ? g->name : "");
    goto out;
  }
  memcpy(g->nodes, sorted, (size_t)nn * sizeof *sorted);
  for (int i = 0; i < nn; i++) {
    gpux__node *n = &g->nodes[i];
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0) g->values[n->in[j]].last_use = i;
    use_mark u = {g, i};
    node_captures(n, mark_use, &u);
    for (int j = 0; j < n->n_out; j++)
      if (n->out[j] >= 0) g->values[n->out[j]].producer = i;
  }
  /* liveness: the values each node is the last reader of (computed ones only) */
  free(g->dead_start);
  free(g->dead_after);
  g->dead_start = gpux__calloc((size_t)nn + 2, sizeof(int));
  g->dead_after = gpux__calloc((size_t)nv + 1, sizeof(int));
  if (!g->dead_start || !g->dead_after) { rc = GPUX_E_NOMEM; goto out; }
  for (int v = 0; v < nv; v++) {
    const gpux__value *val = &g->values[v];
    if (val->last_use >= 0 && !val->is_const && val->outer < 0) g->dead_start[val->last_use + 1]++;
  }
  for (int i = 0; i < nn; i++) g->dead_start[i + 1] += g->dead_start[i];
  {
    int *fill = gpux__calloc((size_t)nn + 1, sizeof(int));
    if (!fill) { rc = GPUX_E_NOMEM; goto out; }
    for (int v = 0; v < nv; v++) {
      const gpux__value *val = &g->values[v];
      if (val->last_use >= 0 && !val->is_const && val->outer < 0)
        g->dead_after[g->dead_start[val->last_use] + fill[val->last_use]++] = v;
    }
    free(fill);
  }
  for (int o = 0; o < g->n_outputs; o++)
    if (!ready[g->outputs[o]]) {
      rc = gpux__error(GPUX_E_MODEL, "graph output '%s' is never produced", g->values[g->outputs[o]].name);
      goto out;
    }
out:
  free(ready);
  free(done);
  free(sorted);
  return rc;
}
