/* session.c — a model bound to a backend, and the executor: values live in a frame (one per
 * graph invocation; nested If/Loop/Scan bodies get child frames that see their parents' values),
 * nodes run in topological order, and each intermediate is freed right after its last use.
 * The main graph's host runs have a memory plan per input signature: the first run of a
 * signature records the bytes of every intermediate, core/memplan.c places them by liveness in
 * one arena, and later runs of that signature write each intermediate at its place, so a steady
 * state run allocates nothing (outputs given back with gpux_session_recycle included). A nested
 * body has one plan, made from the most bytes each of its intermediates took in any run so far
 * (its shapes may change with what it captures): one that grew is placed again. A node that only
 * reshapes (Reshape, Flatten, Squeeze, Unsqueeze, Identity) and is its input's last reader takes
 * the input's data instead of a copy, the plans keeping that data's place alive for it; one of a
 * graph input is a view of the caller's tensor. */
#include "backend/backend-impl.h"
#include "core/buffers.h"
#include "core/memplan.h"
#include "core/profile.h"
#include "onnx/onnx.h"
#include "runtime/optimize.h"
#include "runtime/rewrite.h"
#include "runtime/value.h"
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#define PLANS_MAX 4      /* input signatures whose memory plans a session keeps */
#define PLAN_ALIGN 64    /* bytes: a cache line, and every vector load aligned where kernels align */
#define BODY_PLANS 4     /* memory plans a nested body makes at most: one whose values keep growing
                            (a loop over a growing cache) then gets its outputs from the buffer cache */

/* Where the main graph's intermediates go in runs of one input signature. */
typedef struct {
  int64_t *sig;             /* [n_sig] per input: kind, dtype, ndim, dims[ndim] */
  int n_sig;
  size_t *off, *size;       /* [n_values] place in the arena and bytes (0: not planned) */
  unsigned char *moved;     /* [n_values] 1: takes its input's place (a reshape's output, see
                               move_input); that input's place lives as long as it does */
  unsigned char *arena;     /* [arena_size] aligned to PLAN_ALIGN */
  size_t arena_size;
  uint64_t used;            /* the session's run count when last used (the oldest goes first) */
} mem_plan;

/* The main graph's frame arrays, allocated once: what a run that holds them needs. */
typedef struct {
  gpux_tensor *vals;        /* [n_values] */
  unsigned char *borrowed;  /* [n_values] */
  unsigned char *is_output; /* [n_values] graph outputs */
  const gpux_tensor **in;   /* [max node inputs] */
  gpux_tensor **out;        /* [max node outputs] */
  void **out_mem;           /* [max node outputs] planned memory of each output */
  size_t *out_cap;          /* [max node outputs] */
  size_t *record;           /* [n_values] bytes of each intermediate in a recording run */
  int *writes;              /* [n_writes] the values a run sets: graph inputs and node outputs */
  int n_writes;
  uint64_t *const_in;       /* [n_nodes] inputs that are the same in every run (kctx const_in),
                               filled by the first run (a body's depend on its parents) */
  int const_known;          /* const_in is filled */
  unsigned char *in_local;  /* [node inputs, node by node] 1: a value of this graph's own frame
                               (neither an initializer nor captured from an enclosing graph) */
  unsigned char *moved;     /* [n_values] outputs that took their input's data in a recording run */
  unsigned char *movable;   /* [n_nodes] 1: a reshape whose output may take its input's data */
} frame_store;

struct gpux_session {
  gpux_model *model;
  const gpux__backend_i *backend;
  void *backend_ctx;
  int requested;            /* the gpux_backend_kind asked for */
  int precision;            /* the gpux_precision asked for */
  char backend_why[512];    /* why `auto` runs on the CPU ("" when it runs where asked) */
  char fallback_why[512];   /* gpux_session_fallback_summary of the last run, made when asked */
  int threads;              /* CPU threads its runs may use (0 = the whole pool) */
  int ran;                  /* a run finished: node placement is known */
  int ran_node_by_node;     /* the last run went through run_node (the backend declined the graph) */
  gpux__graph *og;          /* the main graph as rewritten once by runtime/optimize.c, or NULL */
  int *node_map;            /* [model nodes]: the node of og that computes node i's result, -1
                               when nothing does per run (folded away); NULL without og */
  unsigned char *supported; /* [og nodes]: the backend's supports_node answers, or NULL */
  gpux__host host;          /* what the backend asks the runtime to run */
  gpux__buffers buffers;    /* intermediates' freed data blocks, reused by later outputs */
  frame_store store;        /* the main graph's frame, for the run holding `planning` */
  gpux__node_state *_Atomic *node_state; /* [main graph nodes] what kernels keep across runs */
  int n_node_state;
  int held;                 /* the model's initializer copies are held (gpux__model_hold) */
  unsigned char *dropped;   /* [model values] copies this session let go, or NULL */
  atomic_int *unread;       /* [graph values] reads (node, input) of a copy not yet replaced by
                               a node's state; INT_MAX/2 for values never let go; NULL: none */
  atomic_uchar *replaced;   /* [graph nodes] the node's kept state was counted in `unread` */
  atomic_uchar *ready;      /* [graph values] unread reached 0 while another run was in flight */
  const void **raw;         /* [graph values] the file's bytes (not aligned, maybe) that the
                               session's own graph reads instead of the model's copy once that
                               goes: values that only Gathers read as their data (bytes copied),
                               besides readers that replace them; NULL entries for the others */
  atomic_int deferred;      /* some value is ready */
  atomic_size_t untrimmed;  /* bytes of the rewrite's copies freed since the heap was trimmed */
  pthread_mutex_t disown;   /* the rewrite's list of its copies: overlapping runs may free two */
  atomic_int running;       /* runs of the host executor in flight */
  struct body_store {       /* nested graph bodies' frames, for the run holding `planning` */
    const gpux__graph *g;
    int busy;               /* a frame of this body is running (a body inside itself) */
    frame_store st;
    gpux__node_state *_Atomic *node_state; /* [n_nodes] what its kernels keep across runs */
    int n_nodes;            /* g's (g may be freed before the store, with the optimized graph) */
    mem_plan plan;          /* where its intermediates go: placed from the most bytes each took in
                               any run so far (st.record), made again when one grew */
    int plans;              /* plans made (at most BODY_PLANS) */
  } **bodies;
  int n_bodies;
  mem_plan plans[PLANS_MAX];
  int n_plans;
  atomic_int planning;      /* 1 while a run uses `store` and the plans (runs may overlap) */
  gpux_run_stats stats;
  int profiling;            /* gpux_session_profile_enable: nodes are timed into prof */
  int profile_nodes;        /* GPUX_PROFILE_NODES: each timed node also one line on stderr */
  gpux__prof prof;
  gpux__prof_entry *prof_sorted; /* the last answer of gpux_session_profile */
};

/* GPUX_PROFILE_NODES: "node INDEX NAME OP MS SHAPE" for one timed node of the main graph, the
 * shape its first output's (one line a node a run: take the best or median per index). */
static void profile_node_line(int i, const gpux__node *n, const gpux_tensor *y, double ms) {
  char shape[96] = "";
  size_t len = 0;
  if (y && y->kind == GPUX_KIND_TENSOR)
    for (int d = 0; d < y->ndim && len + 24 < sizeof shape; d++)
      len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", d ? "x" : "", (long long)y->dims[d]);
  fprintf(stderr, "node %d %s %s %.4f %s\n", i, n->name[0] ? n->name : "-", n->op_type, ms, len ? shape : "-");
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct frame {
  const gpux__graph *g;
  gpux_tensor *vals;        /* [n_values] values computed or bound in this invocation */
  unsigned char *borrowed;  /* [n_values] 1: vals[v] is a view of caller memory; 2: omitted */
  struct frame *parent;
  gpux_session *s;
  frame_store *store;       /* the arrays to use, or NULL: allocated for this invocation */
  const mem_plan *plan;     /* where intermediates go, or NULL */
  size_t *record;           /* [n_values] bytes of each intermediate made, or NULL */
  int grew;                 /* some intermediate took more bytes than `record` said before */
  gpux__node_state *_Atomic *node_state; /* a body's: [g nodes] its kernels' kept state, or NULL */
} frame;

static const gpux_tensor *frame_value(const frame *f, int id) {
  const gpux__value *v = &f->g->values[id];
  if (v->is_const) return &v->init;
  if (v->outer >= 0 && f->parent) return frame_value(f->parent, v->outer);
  return &f->vals[id];
}

static int run_graph(frame *f, const gpux_tensor *inputs, int n_inputs, gpux_tensor *outputs, int n_outputs);

/* Value id is the same in every run: an initializer of its graph or of one it is nested in. */
static int value_const(const frame *f, int id) {
  const gpux__value *v = &f->g->values[id];
  if (v->is_const) return 1;
  return v->outer >= 0 && f->parent ? value_const(f->parent, v->outer) : 0;
}

/* Lets go of the model's copy of value v, which no node of this session reads (but Gathers, and
 * nodes that may read it again, which read the file's bytes in place then), or of the rewrite's
 * own copy (a weight folded or converted to float32), which nothing reads then. */
static void drop_copy(gpux_session *s, int v) {
  size_t freed = 0;
  if (s->og) { /* the rewrite's own copy */
    pthread_mutex_lock(&s->disown);
    freed = gpux__graph_disown(s->og, v);
    pthread_mutex_unlock(&s->disown);
  }
  if (freed) {
    atomic_fetch_add(&s->untrimmed, freed);
    return;
  }
  if (s->raw && s->raw[v]) s->og->values[v].init.data = (void *)s->raw[v];
  s->dropped[v] = 1;
  gpux__model_drop(s->model, v);
}

/* A node just kept a state that holds some of its initializer inputs in a layout of its own
 * (packed weights): the file pages behind them can go (another reader, should there be one, reads
 * them again from the file), and the model's copy of one (or the rewrite's) once every node
 * reading it here holds it so and reads it no more (a node may keep reading one, rarely:
 * `rereads`). A run that started before that may still be packing from the copy: with other runs
 * in flight, the last of them to end lets it go (end_run). */
static void let_go_replaced(gpux_session *s, const gpux__kctx *k, int node) {
  const gpux__node_state *st = gpux__state_get(k);
  if (!st || (s->replaced && atomic_exchange(&s->replaced[node], 1))) return;
  for (int j = 0; j < k->n_in && j < 64; j++) {
    if (!(st->replaces >> j & 1) || !(k->const_in >> j & 1) || !k->in[j]) continue;
    if (k->in[j]->data) gpux__model_release(s->model, k->in[j]->data, k->in[j]->nbytes);
    int v = k->node->in[j];
    /* a node that may read it again reads the file's bytes in its place once the copy goes (as
     * Gathers do), or the copy stays */
    if ((st->rereads >> j & 1) && !(s->raw && s->raw[v])) continue;
    if (!s->unread || atomic_fetch_sub(&s->unread[v], 1) != 1) continue;
    if (atomic_load(&s->running) == 1) {
      drop_copy(s, v);
    } else {
      atomic_store(&s->ready[v], 1);
      atomic_store(&s->deferred, 1);
    }
  }
}

/* The end of a host run: with no other run in flight, the copies made ready are let go. */
static void end_run(gpux_session *s, const gpux__graph *g) {
  if (atomic_load(&s->deferred) && atomic_load(&s->running) == 1 && atomic_exchange(&s->deferred, 0))
    for (int v = 0; v < g->n_values; v++)
      if (atomic_exchange(&s->ready[v], 0)) drop_copy(s, v);
#ifdef __GLIBC__
  /* freed blocks in the middle of the heap stay resident until it is trimmed (copies.c): once a
   * run, not for each, as trimming walks the heap */
  if (atomic_load(&s->untrimmed) >= (size_t)1 << 20 && atomic_exchange(&s->untrimmed, 0) >= (size_t)1 << 20)
    malloc_trim(0);
#endif
  atomic_fetch_sub(&s->running, 1);
}

static int store_init(frame_store *st, const gpux__graph *g);
static int plan_place(mem_plan *p, const gpux__graph *g, const size_t *record, const unsigned char *moved);
static void plan_free(mem_plan *p);

/* Runs a nested graph (If, Loop, Scan bodies) in a child frame: in a run that holds the
 * session's frames, with the arrays kept for that body (made on its first run). */
static int run_subgraph(gpux__kctx *k, const gpux__graph *body, const gpux_tensor *inputs, int n_inputs,
                        gpux_tensor *outputs, int n_outputs) {
  frame *parent = k->exec;
  gpux_session *s = parent->s;
  frame child = {.g = body, .parent = parent, .s = s};
  struct body_store *b = NULL;
  if (parent->store) {
    for (int i = 0; i < s->n_bodies && !b; i++)
      if (s->bodies[i]->g == body && !s->bodies[i]->busy) b = s->bodies[i];
    struct body_store **grown = b ? NULL : gpux__realloc(s->bodies, (size_t)(s->n_bodies + 1) * sizeof *grown);
    if (grown) {
      s->bodies = grown;
      b = gpux__calloc(1, sizeof *b);
      if (b && !(b->node_state = gpux__calloc((size_t)body->n_nodes + 1, sizeof *b->node_state))) {
        free(b);
        b = NULL;
      }
      if (b && !store_init(&b->st, body)) {
        b->g = body;
        b->n_nodes = body->n_nodes;
        s->bodies[s->n_bodies++] = b;
      } else if (b) {
        free((void *)b->node_state);
        free(b);
        b = NULL;
      }
    }
  }
  if (b) {
    b->busy = 1;
    child.store = &b->st;
    child.node_state = b->node_state;
    /* the shapes in a body can change from run to run (the values it captures, a loop's state):
     * an intermediate larger than the plan's place for it goes to the buffer cache, and the
     * record keeps the most bytes each took, for the next plan */
    child.record = b->st.record;
    if (b->plans) child.plan = &b->plan;
  }
  int rc = run_graph(&child, inputs, n_inputs, outputs, n_outputs);
  if (b) {
    if (!rc && child.grew && b->plans < BODY_PLANS) {
      mem_plan p = {0};
      if (!plan_place(&p, body, b->st.record, b->st.moved)) {
        plan_free(&b->plan);
        b->plan = p;
        b->plans++;
        gpux__buffers_trim(&s->buffers); /* the blocks the arena replaces */
      } else {
        plan_free(&p); /* no plan: later runs go on with the last one, or without */
      }
    }
    b->busy = 0;
  }
  return rc;
}

/* Frees the values whose last use is node i. */
static void release_dead(frame *f, int i, const unsigned char *is_output) {
  const gpux__graph *g = f->g;
  const int *dead = g->dead_after + g->dead_start[i];
  int n = g->dead_start[i + 1] - g->dead_start[i];
  for (int j = 0; j < n; j++) {
    int id = dead[j];
    if (is_output[id] || f->borrowed[id]) continue;
    gpux__buffers_put(&f->s->buffers, &f->vals[id]);
  }
}

enum { MOVE_NONE, MOVE_DATA, MOVE_VIEW };

/* Whether node i only gives its input a new shape (Reshape, Flatten, Squeeze, Unsqueeze,
 * Identity), its output not being a graph output: MOVE_DATA when it is the last reader of an
 * input some node of g made (not a graph output either), whose data its output then takes
 * instead of a copy (move_input); MOVE_VIEW when the input is a graph input, which the caller
 * holds for the whole run and nothing writes, so the output can be a view of it. */
static int movable(const gpux__graph *g, int i, const unsigned char *is_output) {
  static const char *const ops[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"};
  const gpux__node *n = &g->nodes[i];
  if (n->domain[0] || n->n_in < 1 || n->n_out != 1 || n->in[0] < 0 || n->out[0] < 0) return MOVE_NONE;
  int x = n->in[0], y = n->out[0], known = 0;
  for (size_t o = 0; o < sizeof ops / sizeof ops[0] && !known; o++) known = !strcmp(n->op_type, ops[o]);
  const gpux__value *xv = &g->values[x];
  if (!known || xv->is_const || xv->outer >= 0 || is_output[y]) return MOVE_NONE;
  if (xv->is_graph_input && xv->producer < 0) return MOVE_VIEW;
  return xv->producer >= 0 && xv->last_use == i && !is_output[x] ? MOVE_DATA : MOVE_NONE;
}

/* After a movable node ran for shapes only: its output takes the data of input x, which no
 * later node reads (a planned place only where the plan extended that place's life for it,
 * else a block x owns), and x is left empty; or, for MOVE_VIEW, views x. 0 when it cannot: the
 * node then runs again. */
static int move_input(frame *f, int how, int x_id, gpux_tensor *y, int y_id) {
  gpux_tensor *x = &f->vals[x_id];
  if (x->kind != GPUX_KIND_TENSOR || x->dtype == GPUX_DT_STRING || !x->data || y->kind != GPUX_KIND_TENSOR ||
      y->data || y->dtype != x->dtype || gpux_tensor_count(y) != gpux_tensor_count(x))
    return 0;
  if (how == MOVE_VIEW) { /* a view of the caller's input, held for the whole run */
    if (f->borrowed[x_id] != 1) return 0;
    y->data = x->data;
    y->nbytes = x->nbytes;
    y->owns_data = 0;
    return 1;
  }
  if (!x->owns_data && !(f->plan && f->plan->moved[y_id])) return 0;
  y->data = x->data;
  y->nbytes = x->nbytes;
  y->owns_data = x->owns_data;
  memset(x, 0, sizeof *x);
  return 1;
}

static int max_node_io(const gpux__graph *g, int *max_in, int *max_out) {
  *max_in = *max_out = 1;
  for (int i = 0; i < g->n_nodes; i++) {
    *max_in = GPUX__MAX(*max_in, g->nodes[i].n_in);
    *max_out = GPUX__MAX(*max_out, g->nodes[i].n_out);
  }
  return 0;
}

static void store_free(frame_store *st) {
  free(st->vals);
  free(st->borrowed);
  free(st->is_output);
  free(st->in);
  free(st->out);
  free(st->out_mem);
  free(st->out_cap);
  free(st->record);
  free(st->writes);
  free(st->const_in);
  free(st->in_local);
  free(st->moved);
  free(st->movable);
  memset(st, 0, sizeof *st);
}

static int store_init(frame_store *st, const gpux__graph *g) {
  int nv = g->n_values, max_in, max_out;
  max_node_io(g, &max_in, &max_out);
  st->vals = gpux__calloc((size_t)nv + 1, sizeof *st->vals);
  st->borrowed = gpux__calloc((size_t)nv + 1, 1);
  st->is_output = gpux__calloc((size_t)nv + 1, 1);
  st->in = gpux__calloc((size_t)max_in, sizeof *st->in);
  st->out = gpux__calloc((size_t)max_out, sizeof *st->out);
  st->out_mem = gpux__calloc((size_t)max_out, sizeof *st->out_mem);
  st->out_cap = gpux__calloc((size_t)max_out, sizeof *st->out_cap);
  st->record = gpux__calloc((size_t)nv + 1, sizeof *st->record);
  int n_writes = g->n_inputs, n_reads = 0;
  for (int i = 0; i < g->n_nodes; i++) n_writes += g->nodes[i].n_out, n_reads += g->nodes[i].n_in;
  st->writes = gpux__calloc((size_t)n_writes + 1, sizeof *st->writes);
  st->const_in = gpux__calloc((size_t)g->n_nodes + 1, sizeof *st->const_in);
  st->in_local = gpux__calloc((size_t)n_reads + 1, 1);
  st->moved = gpux__calloc((size_t)nv + 1, 1);
  st->movable = gpux__calloc((size_t)g->n_nodes + 1, 1);
  if (!st->vals || !st->borrowed || !st->is_output || !st->in || !st->out || !st->out_mem || !st->out_cap ||
      !st->record || !st->writes || !st->const_in || !st->in_local || !st->moved || !st->movable) {
    store_free(st);
    return GPUX_E_NOMEM;
  }
  for (int o = 0; o < g->n_outputs; o++) st->is_output[g->outputs[o]] = 1;
  /* each value once (the borrowed array marks those listed; it is cleared again below) */
  for (int i = 0; i < g->n_inputs; i++)
    if (g->inputs[i] >= 0 && !st->borrowed[g->inputs[i]]) st->borrowed[g->inputs[i]] = 1, st->writes[st->n_writes++] = g->inputs[i];
  for (int i = 0; i < g->n_nodes; i++)
    for (int j = 0; j < g->nodes[i].n_out; j++) {
      int id = g->nodes[i].out[j];
      if (id >= 0 && !st->borrowed[id]) st->borrowed[id] = 1, st->writes[st->n_writes++] = id;
    }
  memset(st->borrowed, 0, (size_t)nv);
  for (int i = 0, at = 0; i < g->n_nodes; i++)
    for (int j = 0; j < g->nodes[i].n_in; j++, at++) {
      int id = g->nodes[i].in[j];
      st->in_local[at] = id >= 0 && !g->values[id].is_const && g->values[id].outer < 0;
    }
  for (int i = 0; i < g->n_nodes; i++) st->movable[i] = movable(g, i, st->is_output);
  return 0;
}

/* The hot loop of every graph invocation: one kernel call per node, intermediates released at
 * their last use. */
static int run_graph(frame *f, const gpux_tensor *inputs, int n_inputs, gpux_tensor *outputs, int n_outputs) {
  const gpux__graph *g = f->g;
  int rc = 0;
  frame_store local = {0}, *st = f->store;
  if (!st) {
    if ((rc = store_init(&local, g))) return rc;
    st = &local;
  }
  /* st->vals and st->borrowed are all zeros here: a run leaves them so (done:) */
  f->vals = st->vals;
  f->borrowed = st->borrowed;
  const unsigned char *is_output = st->is_output;
  const gpux_tensor **in = st->in;
  gpux_tensor **out = st->out;
  if (n_inputs > g->n_inputs) { rc = gpux__error(GPUX_E_INVALID, "%d inputs given, graph '%s' takes %d", n_inputs, g->name, g->n_inputs); goto done; }
  for (int i = 0; i < g->n_inputs; i++) {
    int id = g->inputs[i];
    if (i < n_inputs) {
      f->vals[id] = inputs[i]; /* a view: the caller keeps ownership */
      f->borrowed[id] = 1;
    } else {
      f->vals[id].kind = GPUX_KIND_NONE; /* an omitted optional input: kernels see NULL */
      f->borrowed[id] = 2;
    }
  }
  gpux__kctx k;
  const unsigned char *in_local = st->in_local;
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    if ((rc = gpux__cancelled())) goto done;   /* gpux_interrupt, gpux_app_cancel */
    for (int j = 0; j < n->n_in; j++) {
      int id = n->in[j];
      in[j] = id < 0 || f->borrowed[id] == 2 ? NULL : in_local[j] ? &f->vals[id] : frame_value(f, id);
    }
    in_local += n->n_in;
    for (int j = 0; j < n->n_out; j++) out[j] = n->out[j] >= 0 ? &f->vals[n->out[j]] : NULL;
    gpux__kctx_init(&k, n, in, out);
    if (!st->const_known) {
      uint64_t mask = 0;
      for (int j = 0; j < n->n_in && j < 64; j++)
        if (n->in[j] >= 0 && value_const(f, n->in[j])) mask |= (uint64_t)1 << j;
      st->const_in[i] = mask;
    }
    k.const_in = st->const_in[i];
    if (!f->parent && f->s->node_state && i < f->s->n_node_state) k.state = &f->s->node_state[i];
    if (f->parent && f->node_state) k.state = &f->node_state[i];
    k.run_subgraph = run_subgraph;
    k.exec = f;
    k.buffers = &f->s->buffers;
    if (f->plan) {
      for (int j = 0; j < n->n_out; j++) {
        int id = n->out[j];
        size_t size = id >= 0 ? f->plan->size[id] : 0;
        st->out_mem[j] = size ? f->plan->arena + f->plan->off[id] : NULL;
        st->out_cap[j] = size;
      }
      k.out_mem = st->out_mem;
      k.out_cap = st->out_cap;
    }
    if (!n->op) {
      rc = gpux__error(GPUX_E_UNSUPPORTED_OP, "node '%s': operator %s%s%s is not supported", n->name,
                       n->domain, n->domain[0] ? "::" : "", n->op_type);
      goto done;
    }
    double t0 = f->s->profiling ? now_ms() : 0;
    int had_state = !k.state || gpux__state_get(&k), moved = 0;
    if (st->movable[i]) { /* a reshape: shapes only, then the input's data moves over */
      k.shape_only = 1;
      moved = !n->op->run(&k) && move_input(f, st->movable[i], n->in[0], out[0], n->out[0]);
      k.shape_only = 0, k.status = 0, k.needed = 0;
      if (!moved) gpux_tensor_free(out[0]); /* it runs as any other node */
      else if (st->movable[i] == MOVE_DATA) st->moved[n->out[0]] = 1;
    }
    if (!moved) rc = f->s->backend->run_node ? f->s->backend->run_node(f->s->backend_ctx, &k) : n->op->run(&k);
    if (!had_state && !rc && !f->parent) let_go_replaced(f->s, &k, i); /* a body's node: the weights stay */
    if (f->s->profiling && !rc) {
      double ms = now_ms() - t0;
      gpux__prof_add(&f->s->prof, n->op_type, "cpu", ms, GPUX__PROF_NONE);
      if (f->s->profile_nodes && !f->parent) profile_node_line(i, n, out[0], ms);
    }
    if (rc) {
      if (!k.status) gpux__error_prefix(rc, "node '%s' (%s): ", n->name, n->op_type);
      goto done;
    }
    if (f->record && !moved) /* the bytes of each plain intermediate, for the plan of this signature */
      for (int j = 0; j < n->n_out; j++) {
        int id = n->out[j];
        const gpux_tensor *t = id >= 0 ? &f->vals[id] : NULL;
        if (t && !is_output[id] && t->kind == GPUX_KIND_TENSOR && t->dtype != GPUX_DT_STRING && t->data &&
            t->owns_data && t->nbytes > f->record[id])
          f->record[id] = t->nbytes, f->grew = 1;
      }
    /* release what no later node reads (subgraph captures count as reads) */
    release_dead(f, i, is_output);
  }
  st->const_known = 1;
  for (int o = 0; o < n_outputs && o < g->n_outputs; o++) {
    int id = g->outputs[o];
    const gpux__value *v = &g->values[id];
    if (v->is_const || v->outer >= 0 || f->borrowed[id] || (f->vals[id].data && !f->vals[id].owns_data)) {
      if ((rc = gpux_tensor_copy(&outputs[o], frame_value(f, id)))) goto done;
    } else {
      outputs[o] = f->vals[id]; /* move */
      memset(&f->vals[id], 0, sizeof f->vals[id]);
    }
  }
done:
  /* only the values a run sets can hold anything: each is freed (its block kept) and zeroed */
  for (int w = 0; w < st->n_writes; w++) {
    int v = st->writes[w];
    if (f->borrowed[v]) {
      memset(&f->vals[v], 0, sizeof f->vals[v]);
      f->borrowed[v] = 0;
    } else if (f->vals[v].data || f->vals[v].items) {
      gpux__buffers_put(&f->s->buffers, &f->vals[v]);
    } else if (f->vals[v].kind || f->vals[v].dtype || f->vals[v].ndim) { /* else freed already */
      memset(&f->vals[v], 0, sizeof f->vals[v]);
    }
  }
  if (st == &local) store_free(&local);
  f->vals = NULL;
  f->borrowed = NULL;
  return rc;
}

/* ---- memory plans ---- */

static int plan_matches(const mem_plan *p, const gpux_tensor *in, int n) {
  int at = 0;
  for (int i = 0; i < n; i++) {
    const gpux_tensor *t = &in[i];
    if (at + 3 + t->ndim > p->n_sig || p->sig[at] != t->kind || p->sig[at + 1] != t->dtype || p->sig[at + 2] != t->ndim)
      return 0;
    for (int d = 0; d < t->ndim; d++)
      if (p->sig[at + 3 + d] != t->dims[d]) return 0;
    at += 3 + t->ndim;
  }
  return at == p->n_sig;
}

static void plan_free(mem_plan *p) {
  free(p->sig);
  free(p->off);
  free(p->size);
  free(p->moved);
  gpux__free_large(p->arena, p->arena_size);
  memset(p, 0, sizeof *p);
}

/* The plan for these inputs, or NULL. */
static mem_plan *plan_find(gpux_session *s, const gpux_tensor *in, int n) {
  for (int i = 0; i < s->n_plans; i++)
    if (plan_matches(&s->plans[i], in, n)) return &s->plans[i];
  return NULL;
}

/* Makes the plan of a signature from what its recording run made (record[v]: bytes of v), in
 * place of the oldest plan when the session keeps PLANS_MAX already. Intermediate v lives from
 * its producer to its last reader; graph outputs are not planned (they go to the caller). */
/* Places g's intermediates (record[v]: bytes of v) by liveness in p's arena: p->off, p->size and
 * p->arena. Intermediate v lives from its producer to its last reader. */
static int plan_place(mem_plan *p, const gpux__graph *g, const size_t *record, const unsigned char *moved) {
  int nv = g->n_values, rc = 0;
  p->off = gpux__calloc((size_t)nv + 1, sizeof *p->off);
  p->size = gpux__calloc((size_t)nv + 1, sizeof *p->size);
  p->moved = gpux__calloc((size_t)nv + 1, 1);
  gpux__memblock *b = gpux__calloc((size_t)nv + 1, sizeof *b);
  int *root = gpux__calloc((size_t)nv + 1, sizeof *root);
  if (!p->off || !p->size || !p->moved || !b || !root) { rc = GPUX_E_NOMEM; goto done; }
  for (int v = 0; v < nv; v++) {
    const gpux__value *val = &g->values[v];
    root[v] = v;
    if (!record[v] || val->producer < 0) continue;
    b[v] = (gpux__memblock){record[v], val->producer, GPUX__MAX(val->producer, val->last_use), 0};
  }
  /* an output that took its input's data lives in the place of the value that data was made
   * for (a chain of reshapes: the first), which then lives until the last of them is read */
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    int y = n->n_out > 0 ? n->out[0] : -1, x = n->n_in > 0 ? n->in[0] : -1;
    if (y < 0 || x < 0 || !moved[y]) continue;
    int r = root[x];
    if (!b[r].size) continue; /* the data had no place of its own: y gets none either */
    root[y] = r;
    p->moved[y] = 1;
    b[y].size = 0;
    b[r].last = GPUX__MAX(b[r].last, GPUX__MAX(i, g->values[y].last_use));
  }
  p->arena_size = gpux__memplan(b, nv, PLAN_ALIGN);
  if (p->arena_size == SIZE_MAX) { p->arena_size = 0; rc = GPUX_E_NOMEM; goto done; }
  if (p->arena_size) {
    p->arena = gpux__alloc_large(p->arena_size); /* 64-byte aligned (PLAN_ALIGN); huge pages */
    if (!p->arena) { p->arena_size = 0; rc = GPUX_E_NOMEM; goto done; }
  }
  for (int v = 0; v < nv; v++) p->off[v] = b[v].off, p->size[v] = b[v].size;
done:
  free(b);
  free(root);
  return rc;
}

static int plan_make(gpux_session *s, const gpux__graph *g, const gpux_tensor *in, int n, const size_t *record,
                     const unsigned char *moved) {
  mem_plan p = {0};
  int rc = 0;
  for (int i = 0; i < n; i++) p.n_sig += 3 + (in[i].ndim > 0 ? in[i].ndim : 0);
  p.sig = gpux__calloc((size_t)p.n_sig + 1, sizeof *p.sig);
  if (!p.sig) { rc = GPUX_E_NOMEM; goto done; }
  for (int i = 0, at = 0; i < n; i++) {
    p.sig[at++] = in[i].kind, p.sig[at++] = in[i].dtype, p.sig[at++] = in[i].ndim;
    for (int d = 0; d < in[i].ndim; d++) p.sig[at++] = in[i].dims[d];
  }
  if ((rc = plan_place(&p, g, record, moved))) goto done;
  int slot = s->n_plans;
  if (slot == PLANS_MAX) {
    slot = 0;
    for (int i = 1; i < s->n_plans; i++)
      if (s->plans[i].used < s->plans[slot].used) slot = i;
    plan_free(&s->plans[slot]);
  } else {
    s->n_plans++;
  }
  p.used = s->stats.runs;
  s->plans[slot] = p;
  memset(&p, 0, sizeof p);
  /* the blocks the recording run left in the cache are what the arena replaces */
  gpux__buffers_trim(&s->buffers);
done:
  plan_free(&p);
  return rc;
}

/* Runs the main graph on the host: with the session's frame and memory plan when no other run
 * holds them, recording a plan for a new input signature. */
static int run_main(gpux_session *s, const gpux__graph *g, const gpux_tensor *in, int n_inputs, gpux_tensor *outputs,
                    int n_outputs) {
  frame f = {.g = g, .s = s};
  atomic_fetch_add(&s->running, 1);
  if (!s->store.vals || atomic_exchange(&s->planning, 1)) {
    int rc = run_graph(&f, in, n_inputs, outputs, n_outputs);
    end_run(s, g);
    return rc;
  }
  f.store = &s->store;
  mem_plan *p = plan_find(s, in, n_inputs);
  if (p) {
    f.plan = p;
    p->used = s->stats.runs;
  } else {
    f.record = s->store.record;
    memset(f.record, 0, (size_t)g->n_values * sizeof *f.record);
    memset(s->store.moved, 0, (size_t)g->n_values);
  }
  int rc = run_graph(&f, in, n_inputs, outputs, n_outputs);
  if (!rc && f.record) {
    rc = plan_make(s, g, in, n_inputs, f.record, s->store.moved);
    if (rc) { /* no plan: the outputs are good, later runs go without one */
      gpux__log(GPUX_LOG_NOTE, "%s: no memory plan: %s", s->model->path, gpux_last_error());
      rc = 0;
    }
  }
  atomic_store(&s->planning, 0);
  end_run(s, g);
  return rc;
}

/* Picks the backend: CPU when asked; WebGPU when asked (its errors are the session's); AUTO takes
 * a WebGPU device when one works and is a real GPU (a software adapter such as lavapipe is slower
 * than the CPU backend), else the CPU, saying why once when a WebGPU device was found but failed. */
static int pick_backend(gpux_session *s, const gpux_session_options *opts) {
  static int auto_note_said;
  int rc;
  if (opts->backend == GPUX_BACKEND_WEBGPU || opts->backend == GPUX_BACKEND_AUTO) {
    rc = gpux__backend_webgpu.init(&s->backend_ctx, opts);
    if (!rc && (opts->backend == GPUX_BACKEND_WEBGPU || !gpux__backend_webgpu.prefer_cpu ||
                !gpux__backend_webgpu.prefer_cpu(s->backend_ctx))) {
      s->backend = &gpux__backend_webgpu;
      return 0;
    }
    if (!rc) gpux__backend_webgpu.release(s->backend_ctx);
    s->backend_ctx = NULL;
    if (rc && opts->backend == GPUX_BACKEND_WEBGPU) return rc;
    if (!rc)
      snprintf(s->backend_why, sizeof s->backend_why,
               "the only WebGPU adapter is a software renderer on the CPU, slower than the CPU backend");
    else
      snprintf(s->backend_why, sizeof s->backend_why, "no usable WebGPU device: %s", gpux_last_error());
    if (rc && !auto_note_said && !strstr(gpux_last_error(), "no WebGPU library") && !strstr(gpux_last_error(), "no adapter")) {
      auto_note_said = 1;
      gpux__log(GPUX_LOG_NOTE, "the WebGPU device failed, running on the CPU: %s", gpux_last_error());
    }
  }
  s->backend = &gpux__backend_cpu;
  return s->backend->init(&s->backend_ctx, opts);
}

/* The runtime's host services (backend-impl.h): one node's CPU kernel, or its shapes only. */
static int host_run_node(void *rt, const gpux__node *n, const gpux_tensor *const *in, gpux_tensor *const *out,
                         int shape_only, uint64_t *needed) {
  gpux_session *s = rt;
  if (!n->op) return gpux__error(GPUX_E_UNSUPPORTED_OP, "node '%s': operator %s is not supported", n->name, n->op_type);
  gpux__kctx k;
  gpux__kctx_init(&k, n, in, out);
  k.shape_only = shape_only;
  k.buffers = &s->buffers;
  int old = gpux__set_run_threads(s->threads); /* as in a run: at most the session's threads */
  int rc = n->op->run(&k);
  gpux__set_run_threads(old);
  if (rc && !k.status) gpux__error_prefix(rc, "node '%s' (%s): ", n->name, n->op_type);
  if (needed) *needed = k.needed;
  return rc;
}

/* The node of the rewritten graph that makes value v, following v's consumers in the original
 * graph when the rewrite folded the node away (-1: nothing computes it per run). */
static int producer_in(const gpux__graph *g, const gpux__graph *og, int v, int depth) {
  if (v < 0 || v >= og->n_values || depth > 16) return -1;
  if (og->values[v].producer >= 0) return og->values[v].producer;
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    for (int j = 0; j < n->n_in; j++) {
      if (n->in[j] != v) continue;
      for (int k = 0; k < n->n_out; k++) {
        int p = producer_in(g, og, n->out[k], depth + 1);
        if (p >= 0) return p;
      }
    }
  }
  return -1;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)*(const void *const *)a, y = (uintptr_t)*(const void *const *)b;
  return x < y ? -1 : x > y;
}

/* What of the model's initializers this session can let go, and when (CPU sessions of models
 * without nested graphs, which may capture any value). An initializer the graph that runs no
 * longer reads, itself or through a view (the rewrite folded it into a copy of its own: Conv
 * weights with a BatchNormalization), goes now: its file pages, and the model's copy of it. One
 * every reader of which is a node that keeps it in a layout of its own goes when the last of them
 * has (let_go_replaced); `unread` counts those reads. Gathers that read a copy as their data copy
 * rows of bytes, which need no alignment: in a rewritten graph (the session's own), they read the
 * file's bytes in place once the copy goes, and do not count. The rewrite's own copies (weights it
 * folded a BatchNormalization into, or converted from float16) go alike, but stay where a reader
 * may read them again (no file bytes stand in for them). Graph outputs never go. */
static int plan_let_go(gpux_session *s, const gpux__graph *eg) {
  const gpux__graph *g = s->model->graph;
  if (s->backend != &gpux__backend_cpu || s->model->n_graphs > 1) return 0;
  const void **data = gpux__calloc((size_t)eg->n_values + 1, sizeof *data);
  s->dropped = gpux__calloc((size_t)g->n_values + 1, 1);
  s->unread = gpux__calloc((size_t)eg->n_values + 1, sizeof *s->unread);
  s->ready = gpux__calloc((size_t)eg->n_values + 1, sizeof *s->ready);
  s->replaced = gpux__calloc((size_t)eg->n_nodes + 1, sizeof *s->replaced);
  int *reads = gpux__calloc((size_t)eg->n_values + 1, sizeof *reads);
  int *gathers = gpux__calloc((size_t)eg->n_values + 1, sizeof *gathers);
  if (s->og) s->raw = gpux__calloc((size_t)eg->n_values + 1, sizeof *s->raw);
  if (!data || !reads || !gathers || !s->dropped || !s->unread || !s->ready || !s->replaced || (s->og && !s->raw)) {
    free(data);
    free(reads);
    free(gathers);
    return GPUX_E_NOMEM;
  }
  /* data two constants share (a view) is read through either */
  int n = 0;
  for (int v = 0; v < eg->n_values; v++)
    if (eg->values[v].is_const && eg->values[v].init.data) data[n++] = eg->values[v].init.data;
  qsort(data, (size_t)n, sizeof *data, cmp_ptr);
  for (int i = 0; i < eg->n_nodes; i++) {
    const gpux__node *nd = &eg->nodes[i];
    int gather = !nd->domain[0] && !strcmp(nd->op_type, "Gather");
    for (int j = 0; j < nd->n_in; j++)
      if (nd->in[j] >= 0) (gather && j == 0 ? gathers : reads)[nd->in[j]]++;
  }
  for (int i = 0; i < eg->n_outputs; i++) reads[eg->outputs[i]] = INT_MAX / 2;
  for (int v = 0; v < eg->n_values; v++) {
    const gpux_tensor *t = &eg->values[v].init;
    int mine = eg->values[v].is_const && t->data && t->nbytes;
    if (mine) {
      const void **at = bsearch(&t->data, data, (size_t)n, sizeof *data, cmp_ptr);
      mine = (at == data || at[-1] != t->data) && (at == data + n - 1 || at[1] != t->data);
    }
    /* the model's copy, which this graph reads as it is (the rewrite's views do not count) */
    int copy = mine && v < g->n_values && g->values[v].pb && g->values[v].init.data == t->data;
    /* or a copy the rewrite made (a folded or converted weight), which it frees alike */
    int owned = mine && !copy && s->og && gpux__graph_owns(s->og, t->data);
    size_t n_raw = 0;
    /* Gathers copy rows of bytes; a node that keeps its own form of the data but may read it
     * again (a convolution's fallback) reads it by bytes too */
    if (copy && s->raw && ((gathers[v] && t->dtype != GPUX_DT_STRING) || t->dtype == GPUX_DT_FLOAT)) {
      s->raw[v] = gpux__tensor_raw(g->values[v].pb, g->values[v].pb_len, &n_raw);
      if (n_raw != t->nbytes) s->raw[v] = NULL;
    }
    if (!s->raw || !s->raw[v]) reads[v] += gathers[v];
    if (mine && !reads[v]) { /* read by nothing that runs, or Gathers only */
      if (!owned) gpux__model_release(s->model, t->data, t->nbytes);
      if (copy || owned) drop_copy(s, v);
    }
    if (!(copy || owned) || !reads[v]) reads[v] = INT_MAX / 2;
  }
  for (int v = 0; v < eg->n_values; v++) atomic_init(&s->unread[v], reads[v]);
  free(data);
  free(reads);
  free(gathers);
  return 0;
}

/* Optimizes the main graph once (with the last-position rewrite on output `last_position` when
 * not NULL), maps the model's nodes onto the result, asks the backend which nodes it takes and
 * hands it the graph. */
static int session_prepare(gpux_session *s, const char *last_position) {
  const gpux__graph *g = s->model->graph;
  /* the attention rewrite runs on every backend: on an H100 the fused WebGPU kernel took 0.052 ms
   * for BERT-base's attention (seq 128) against 0.056 ms for the five nodes it replaces, with four
   * dispatches fewer (bench/attention-bench.sh); GPUX_FUSE_ATTENTION=0 or 1 turns it off or on */
  const char *fa = getenv("GPUX_FUSE_ATTENTION");
  unsigned skip = 0;
  if (fa && *fa) skip = strcmp(fa, "0") ? 0 : GPUX__OPT_ATTENTION;
  int cpu = s->backend == &gpux__backend_cpu;
  gpux__optimize_opts oo = {.skip = skip, .last_position = -1, .channels_last = cpu, .lower_fp16 = cpu};
  if (last_position) {
    for (int o = 0; o < g->n_outputs && oo.last_position < 0; o++)
      if (!strcmp(g->values[g->outputs[o]].name, last_position)) oo.last_position = o;
    if (oo.last_position < 0)
      return gpux__error(GPUX_E_INVALID, "session option last_position: the model has no output '%s'", last_position);
  }
  int rc = gpux__model_hold(s->model);
  if (rc) return rc;
  s->held = 1;
  if ((rc = gpux__graph_optimize_with(g, &oo, &s->og))) return rc;
  if (s->og) {
    if (!(s->node_map = gpux__calloc((size_t)g->n_nodes + 1, sizeof *s->node_map))) return GPUX_E_NOMEM;
    for (int i = 0; i < g->n_nodes; i++) {
      s->node_map[i] = -1;
      for (int k = 0; k < g->nodes[i].n_out && s->node_map[i] < 0; k++)
        s->node_map[i] = producer_in(g, s->og, g->nodes[i].out[k], 0);
    }
  }
  const gpux__graph *eg = s->og ? s->og : g;
  if ((rc = plan_let_go(s, eg))) return rc;
  if (s->backend->supports_node) {
    if (!(s->supported = gpux__calloc((size_t)eg->n_nodes + 1, 1))) return GPUX_E_NOMEM;
    for (int i = 0; i < eg->n_nodes; i++)
      s->supported[i] = s->backend->supports_node(s->backend_ctx, &eg->nodes[i], NULL, 0) != 0;
  }
  s->host = (gpux__host){host_run_node, s};
  if (!(s->node_state = gpux__calloc((size_t)eg->n_nodes + 1, sizeof *s->node_state))) return GPUX_E_NOMEM;
  s->n_node_state = eg->n_nodes;
  int rc2 = store_init(&s->store, eg);
  if (rc2) return rc2;
  return s->backend->prepare ? s->backend->prepare(s->backend_ctx, eg, &s->host, s->supported) : 0;
}

int gpux_session_create(gpux_model *m, const gpux_session_options *opts, gpux_session **out) {
  *out = NULL;
  gpux_session_options defaults = {0};
  if (!opts) opts = &defaults;
  int rc = gpux_model_check_ops(m);
  if (rc) return rc;
  gpux_session *s = gpux__calloc(1, sizeof *s);
  if (!s) return GPUX_E_NOMEM;
  s->model = m;
  s->requested = opts->backend;
  s->precision = opts->precision;
  s->threads = opts->threads;
  if ((rc = pick_backend(s, opts))) { free(s); return rc; }
  if (s->backend->version != GPUX_BACKEND_INTERFACE_VERSION)
    rc = gpux__error(GPUX_E_INTERNAL, "backend '%s' implements interface version %d, this runtime needs %d",
                     s->backend->name, s->backend->version, GPUX_BACKEND_INTERFACE_VERSION);
  gpux__buffers_init(&s->buffers);
  gpux__prof_init(&s->prof);
  pthread_mutex_init(&s->disown, NULL);
  if (rc || (rc = session_prepare(s, opts->last_position))) {
    gpux_session_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void gpux_session_free(gpux_session *s) {
  if (!s) return;
  s->backend->release(s->backend_ctx);
  gpux__graph_optimized_free(s->og);
  free(s->node_map);
  free(s->supported);
  store_free(&s->store);
  for (int i = 0; s->node_state && i < s->n_node_state; i++) {
    gpux__node_state *st = atomic_load(&s->node_state[i]);
    if (st) st->destroy(st);
  }
  free((void *)s->node_state);
  if (s->held) gpux__model_unhold(s->model, s->dropped);
  free(s->dropped);
  free((void *)s->unread);
  free((void *)s->ready);
  free((void *)s->replaced);
  free((void *)s->raw);
  for (int i = 0; i < s->n_bodies; i++) {
    struct body_store *b = s->bodies[i];
    for (int j = 0; j < b->n_nodes; j++) {
      gpux__node_state *st = atomic_load(&b->node_state[j]);
      if (st) st->destroy(st);
    }
    free((void *)b->node_state);
    store_free(&b->st);
    plan_free(&b->plan);
    free(b);
  }
  free(s->bodies);
  for (int i = 0; i < s->n_plans; i++) plan_free(&s->plans[i]);
  gpux__buffers_release(&s->buffers);
  gpux__prof_release(&s->prof);
  pthread_mutex_destroy(&s->disown);
  free(s->prof_sorted);
  free(s);
}

const char *gpux_session_backend_name(const gpux_session *s) { return s->backend->name; }

int gpux__session_set_gemm_tuning(gpux_session *s, const gpux__gemm_tuned *t, int n) {
  if (!s->backend->set_gemm_tuning) return GPUX_E_UNSUPPORTED;
  return s->backend->set_gemm_tuning(s->backend_ctx, t, n);
}

int gpux__session_gemm_shapes(gpux_session *s, gpux__gemm_shape *out, int cap, int *n_tuned) {
  if (n_tuned) *n_tuned = 0;
  if (!s->backend->gemm_shapes) return 0;
  return s->backend->gemm_shapes(s->backend_ctx, out, cap, n_tuned);
}

const char *gpux_session_precision(const gpux_session *s, const char **why) {
  const char *w = "";
  const char *prec = s->backend->precision ? s->backend->precision(s->backend_ctx, &w) : "fp32";
  if (!s->backend->precision && s->precision == GPUX_PRECISION_FP16) w = "the CPU backend computes in float32";
  if (why) *why = w ? w : "";
  return prec;
}

const char *gpux_session_backend_reason(const gpux_session *s) {
  if (s->backend_why[0]) return s->backend_why;
  /* a session is never defined const: the buffer is the session's own, filled on demand */
  gpux_session *w = (gpux_session *)s;
  gpux_session_fallback_summary(s, w->fallback_why, sizeof w->fallback_why);
  return w->fallback_why;
}

/* One group of the fallback summary: nodes of one operator that fell back for one reason. */
typedef struct fb_group {
  const char *op, *why;
  int first, count;
  int follows;              /* there only because another node sent the whole graph to the CPU */
} fb_group;

static int cmp_group(const void *a, const void *b) {
  const fb_group *x = a, *y = b;
  if (x->follows != y->follows) return x->follows - y->follows; /* the causes first */
  if (x->count != y->count) return x->count < y->count ? -1 : 1; /* the rare, specific causes first */
  return x->first - y->first;
}

int gpux_session_fallback_summary(const gpux_session *s, char *buf, size_t len) {
  if (len) buf[0] = 0;
  if (!s || !s->ran || s->backend->device_type == GPUX__DEVICE_HOST) return 0;
  const gpux__graph *g = s->model->graph;
  fb_group groups[16];
  int n_groups = 0, n_cpu = 0, more = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    const char *why = NULL, *dev = gpux_session_node_device(s, i, &why);
    if (!dev || strcmp(dev, "cpu")) continue;
    n_cpu++;
    if (!why || !why[0]) why = "no kernel on this backend";
    const char *op = g->nodes[i].op_type;
    int j = s->node_map ? s->node_map[i] : i, k;
    int follows = s->backend->node_place && s->backend->node_place(s->backend_ctx, j, NULL) == GPUX__PLACE_CPU_GRAPH;
    /* a node the rewrite folded into another one (a Constant into its reader) shares its fate */
    const gpux__graph *eg = s->og ? s->og : g;
    if (j >= 0 && j < eg->n_nodes && strcmp(eg->nodes[j].op_type, op)) follows = 1;
    for (k = 0; k < n_groups && (strcmp(groups[k].op, op) || strcmp(groups[k].why, why)); k++) {}
    if (k < n_groups) groups[k].count++;
    else if (n_groups < (int)GPUX__ARRAY_LEN(groups)) groups[n_groups++] = (fb_group){op, why, i, 1, follows};
    else more++;
  }
  if (!n_cpu || !len) return n_cpu;
  qsort(groups, (size_t)n_groups, sizeof *groups, cmp_group);
  size_t at = 0;
#define PUT(...) (at += (size_t)snprintf(buf + at, at < len ? len - at : 0, __VA_ARGS__), at = at < len ? at : len)
  PUT("%d node%s on the CPU:", n_cpu, n_cpu == 1 ? "" : "s");
  for (int k = 0; k < n_groups; k++) {
    const char *name = g->nodes[groups[k].first].name;
    if (name && name[0]) PUT("%s %s '%s'", k ? "," : "", groups[k].op, name);
    else PUT("%s %s #%d", k ? "," : "", groups[k].op, groups[k].first);
    if (groups[k].count > 1) PUT(" and %d more", groups[k].count - 1);
    PUT(" (%s)", groups[k].why);
  }
  if (more) PUT(", and %d more", more);
#undef PUT
  return n_cpu;
}

const char *gpux_session_node_device(const gpux_session *s, int i, const char **why) {
  if (why) *why = NULL;
  if (!s || !s->ran || i < 0 || i >= s->model->graph->n_nodes) return NULL;
  if (s->backend->device_type == GPUX__DEVICE_HOST) return s->backend->name;
  int j = s->node_map ? s->node_map[i] : i; /* the node of the graph that ran */
  if (s->ran_node_by_node || !s->backend->node_place) {
    /* the backend declined the graph: a folded node (j < 0) gets the graph's reason */
    if (why && s->backend->node_place) s->backend->node_place(s->backend_ctx, j, why);
    return "cpu";
  }
  if (j < 0) return "const";
  switch (s->backend->node_place(s->backend_ctx, j, why)) {
  case GPUX__PLACE_BACKEND: return s->backend->name;
  case GPUX__PLACE_CONST: return "const";
  case GPUX__PLACE_CPU:
  case GPUX__PLACE_CPU_GRAPH: return "cpu";
  }
  return NULL;
}

/* Checks a caller's input against the model's declaration: kind, dtype, rank, fixed dims, and
 * that a symbolic dimension ("batch") has one value across all inputs. */
static int check_input(const gpux__graph *g, int i, const gpux_tensor *t, const char **sym_names,
                       int64_t *sym_vals, int *n_syms) {
  const gpux__value *v = &g->values[g->inputs[i]];
  if (!v->has_info) return 0;
  const gpux_value_info *info = &v->info;
  char have[128];
  if (t->kind == GPUX_KIND_NONE) return 0; /* optional inputs may be absent */
  if (info->kind != t->kind)
    return gpux__error(GPUX_E_DTYPE, "input '%s': expected a %s, got %s", v->name,
                       info->kind == GPUX_KIND_SEQUENCE ? "sequence" : "tensor", gpux_tensor_describe(t, have, sizeof have));
  if (info->dtype && t->dtype != info->dtype && t->kind == GPUX_KIND_TENSOR)
    return gpux__error(GPUX_E_DTYPE, "input '%s': expected %s, got %s", v->name, gpux_dtype_name(info->dtype),
                       gpux_tensor_describe(t, have, sizeof have));
  if (t->kind != GPUX_KIND_TENSOR || info->ndim < 0) return 0;
  if (info->ndim != t->ndim)
    return gpux__error(GPUX_E_SHAPE, "input '%s': expected rank %d, got %s", v->name, info->ndim,
                       gpux_tensor_describe(t, have, sizeof have));
  for (int d = 0; d < t->ndim; d++) {
    if (info->dims[d] >= 0 && !info->dim_names[d]) {
      if (info->dims[d] != t->dims[d])
        return gpux__error(GPUX_E_SHAPE, "input '%s': dimension %d must be %lld, got %s", v->name, d,
                           (long long)info->dims[d], gpux_tensor_describe(t, have, sizeof have));
    } else if (info->dim_names[d] && info->dim_names[d][0]) {
      int j;
      for (j = 0; j < *n_syms && strcmp(sym_names[j], info->dim_names[d]); j++) {}
      if (j < *n_syms && sym_vals[j] != t->dims[d])
        return gpux__error(GPUX_E_SHAPE, "input '%s': dimension '%s' is %lld here but %lld in another input",
                           v->name, info->dim_names[d], (long long)t->dims[d], (long long)sym_vals[j]);
      if (j == *n_syms && *n_syms < 64) {
        sym_names[j] = info->dim_names[d];
        sym_vals[j] = t->dims[d];
        (*n_syms)++;
      }
    }
  }
  return 0;
}

/* Runs the main graph: in_t are the inputs (host tensors, or the dtype and shape of those bound
 * to in_v, values of this session's backend); outputs with keep set come back in out_values. */
static int session_exec(gpux_session *s, const gpux_tensor *in_t, const gpux_device_tensor *const *in_v, int n_inputs,
                        gpux_tensor *outputs, const unsigned char *keep, gpux_device_tensor **out_values, int n_outputs) {
  const gpux__graph *g = s->model->graph;
  for (int o = 0; o < n_outputs; o++) memset(&outputs[o], 0, sizeof outputs[o]);
  if (n_inputs > g->n_inputs)
    return gpux__error(GPUX_E_INVALID, "%d inputs given, the model takes %d", n_inputs, g->n_inputs);
  const char *sym_names[64];
  int64_t sym_vals[64];
  int n_syms = 0, rc;
  for (int i = 0; i < n_inputs; i++)
    if ((rc = check_input(g, i, &in_t[i], sym_names, sym_vals, &n_syms))) return rc;
  if ((rc = gpux__cancelled())) return rc;
  rc = GPUX__DECLINED;
  const gpux__graph *eg = s->og ? s->og : g; /* what runs */
  if (s->backend->run_graph) {
    gpux__io io = {in_t, in_v, n_inputs, outputs, n_outputs, keep, out_values, &s->stats,
                   s->profiling ? &s->prof : NULL};
    rc = s->backend->run_graph(s->backend_ctx, eg, &io);
    if (rc == GPUX_E_DEVICE && s->requested == GPUX_BACKEND_AUTO && !in_v) {
      /* the GPU failed (lost, out of memory): this session continues on the CPU */
      gpux__log(GPUX_LOG_NOTE, "%s; continuing on the CPU", gpux_last_error());
      snprintf(s->backend_why, sizeof s->backend_why, "the WebGPU device failed: %s", gpux_last_error());
      for (int o = 0; o < n_outputs; o++) gpux_tensor_free(&outputs[o]);
      s->backend->release(s->backend_ctx);
      s->backend = &gpux__backend_cpu;
      s->backend->init(&s->backend_ctx, &(gpux_session_options){.backend = GPUX_BACKEND_CPU});
      rc = GPUX__DECLINED;
    }
  }
  s->ran_node_by_node = rc == GPUX__DECLINED;
  if (rc == GPUX__DECLINED) {
    /* the executor here runs on the host: values bound on the device come over first */
    gpux_tensor *host = NULL;
    rc = 0;
    if (in_v) {
      host = gpux__calloc((size_t)n_inputs + 1, sizeof *host);
      if (!host) rc = GPUX_E_NOMEM;
      for (int i = 0; i < n_inputs && !rc; i++) {
        if (!in_v[i]) {
          host[i] = in_t[i];
          continue;
        }
        rc = gpux_device_tensor_read(in_v[i], &host[i]);
        s->stats.downloads++, s->stats.download_bytes += in_v[i]->bytes;
      }
    }
    if (!rc) rc = run_main(s, eg, host ? host : in_t, n_inputs, outputs, n_outputs);
    for (int i = 0; host && i < n_inputs; i++)
      if (in_v[i]) gpux_tensor_free(&host[i]);
    free(host);
    /* kept outputs: onto the device when the backend has one, else host values */
    for (int o = 0; o < n_outputs && keep && !rc; o++) {
      if (!keep[o]) continue;
      int up = GPUX__DECLINED;
      if (s->backend->value_upload && outputs[o].kind == GPUX_KIND_TENSOR) {
        up = s->backend->value_upload(s->backend_ctx, &outputs[o], &out_values[o], &s->stats);
        if (!up) gpux_tensor_free(&outputs[o]);
      }
      if (up == GPUX__DECLINED) up = gpux__value_host(&outputs[o], &out_values[o]);
      rc = up;
    }
  }
  s->ran = 1;
  if (rc) {
    for (int o = 0; o < n_outputs; o++) {
      gpux_tensor_free(&outputs[o]);
      if (out_values) gpux_device_tensor_free(out_values[o]), out_values[o] = NULL;
    }
    return gpux__error_prefix(rc, "%s: ", s->model->path);
  }
  s->stats.runs++;
  return 0;
}

int gpux_session_run(gpux_session *s, const gpux_tensor *inputs, int n_inputs, gpux_tensor *outputs,
                     int n_outputs) {
  /* the process has one pool of CPU threads; this session's runs use at most its own number */
  int old = gpux__set_run_threads(s->threads);
  gpux__pool_hold(1);
  int rc = session_exec(s, inputs, NULL, n_inputs, outputs, NULL, NULL, n_outputs);
  gpux__pool_hold(0);
  gpux__set_run_threads(old);
  return rc;
}

int gpux_session_run_values(gpux_session *s, const gpux_input *inputs, int n_inputs, gpux_output *outputs,
                            int n_outputs) {
  for (int o = 0; o < n_outputs; o++) {
    memset(&outputs[o].tensor, 0, sizeof outputs[o].tensor);
    outputs[o].device = NULL;
  }
  if (n_inputs < 0 || n_outputs < 0) return gpux__error(GPUX_E_INVALID, "negative input or output count");
  int rc = 0, any_dev = 0;
  gpux_tensor *in_t = gpux__calloc((size_t)n_inputs + 1, sizeof *in_t);
  const gpux_device_tensor **in_v = gpux__calloc((size_t)n_inputs + 1, sizeof *in_v);
  unsigned char *owned = gpux__calloc((size_t)n_inputs + 1, 1);
  gpux_tensor *outs = gpux__calloc((size_t)n_outputs + 1, sizeof *outs);
  unsigned char *keep = gpux__calloc((size_t)n_outputs + 1, 1);
  gpux_device_tensor **vals = gpux__calloc((size_t)n_outputs + 1, sizeof *vals);
  if (!in_t || !in_v || !owned || !outs || !keep || !vals) rc = GPUX_E_NOMEM;
  for (int i = 0; i < n_inputs && !rc; i++) {
    const gpux_device_tensor *v = inputs[i].device;
    if (inputs[i].tensor && v)
      rc = gpux__error(GPUX_E_INVALID, "input %d: both a tensor and a value given", i);
    else if (inputs[i].tensor) in_t[i] = *inputs[i].tensor;
    else if (!v) in_t[i].kind = GPUX_KIND_NONE;
    else if (!v->backend) in_t[i] = v->t;  /* a host value: a view */
    else if (v->backend == s->backend) {   /* on this session's device: bound as it is */
      gpux_device_tensor_describe(v, &in_t[i]);
      in_v[i] = v;
      any_dev = 1;
    } else {                               /* another backend's device: over the host */
      rc = gpux_device_tensor_read(v, &in_t[i]);
      owned[i] = !rc;
      s->stats.downloads++, s->stats.download_bytes += v->bytes;
    }
  }
  for (int o = 0; o < n_outputs && !rc; o++) keep[o] = outputs[o].keep != 0;
  if (!rc) {
    int old = gpux__set_run_threads(s->threads);
    gpux__pool_hold(1);
    rc = session_exec(s, in_t, any_dev ? in_v : NULL, n_inputs, outs, keep, vals, n_outputs);
    gpux__pool_hold(0);
    gpux__set_run_threads(old);
  }
  for (int o = 0; o < n_outputs && !rc; o++) {
    outputs[o].tensor = outs[o];
    outputs[o].device = vals[o];
  }
  for (int i = 0; i < n_inputs && owned; i++)
    if (owned[i]) gpux_tensor_free(&in_t[i]);
  free(in_t);
  free(in_v);
  free(owned);
  free(outs);
  free(keep);
  free(vals);
  return rc;
}

int gpux_device_tensor_upload(gpux_session *s, const gpux_tensor *t, gpux_device_tensor **out) {
  *out = NULL;
  if (t->kind != GPUX_KIND_TENSOR) return gpux__error(GPUX_E_INVALID, "only a tensor can be uploaded");
  int rc = GPUX__DECLINED;
  if (s->backend->value_upload) rc = s->backend->value_upload(s->backend_ctx, t, out, &s->stats);
  if (rc != GPUX__DECLINED) return rc;
  gpux_tensor copy;
  if ((rc = gpux_tensor_copy(&copy, t))) return rc;
  return gpux__value_host(&copy, out);
}

void gpux_session_stats(const gpux_session *s, gpux_run_stats *out) { *out = s->stats; }

void gpux_session_memory(const gpux_session *s, gpux_memory_stats *out) {
  memset(out, 0, sizeof *out);
  out->weights_mapped = gpux__model_mapped_resident(s->model);
  out->weights_copied = gpux__model_copied_bytes(s->model);
  out->weights_folded = gpux__graph_optimized_bytes(s->og);
  for (int i = 0; s->node_state && i < s->n_node_state; i++) {
    const gpux__node_state *st = atomic_load(&s->node_state[i]);
    if (st) out->weights_packed += st->bytes;
  }
  struct rusage ru;
  if (!getrusage(RUSAGE_SELF, &ru)) out->peak_rss = (uint64_t)ru.ru_maxrss * 1024; /* kB on Linux */
}

void gpux_session_recycle(gpux_session *s, gpux_tensor *t) {
  if (!t) return;
  if (s) gpux__buffers_put(&s->buffers, t);
  else gpux_tensor_free(t);
}

int gpux_session_profile_enable(gpux_session *s, int on) {
  if (on) gpux__prof_clear(&s->prof);
  const char *pn = getenv("GPUX_PROFILE_NODES");
  s->profile_nodes = on && pn && pn[0] && strcmp(pn, "0");
  s->profiling = on != 0;
  return 0;
}

static int cmp_prof(const void *a, const void *b) {
  const gpux__prof_entry *x = a, *y = b;
  return (x->ms < y->ms) - (x->ms > y->ms);
}

int gpux_session_profile(gpux_session *s, gpux_op_profile *out, int cap, const char **method) {
  static const char *const methods[] = {"", "timestamp-query", "wall-clock"};
  pthread_mutex_lock(&s->prof.lock);
  int n = s->prof.n;
  if (method) *method = methods[s->prof.method];
  gpux__prof_entry *sorted = gpux__calloc((size_t)n + 1, sizeof *sorted);
  if (!sorted) {
    pthread_mutex_unlock(&s->prof.lock);
    return GPUX_E_NOMEM;
  }
  if (n) memcpy(sorted, s->prof.e, (size_t)n * sizeof *sorted);
  pthread_mutex_unlock(&s->prof.lock);
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_prof);
  free(s->prof_sorted);
  s->prof_sorted = sorted;
  for (int i = 0; i < n && i < cap; i++)
    out[i] = (gpux_op_profile){sorted[i].op, sorted[i].device, sorted[i].count, sorted[i].ms};
  return n;
}
