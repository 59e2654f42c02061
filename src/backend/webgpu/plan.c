/* plan.c — the WebGPU executor. A graph is planned once per input signature (shapes, and the
 * values of small integer inputs, which usually decide shapes):
 *   1. shapes: the runtime infers every node's outputs (the host services of backend-impl.h:
 *      its kernel in shape-only mode); nodes whose inputs are all known (initializers,
 *      shape-derived values) the runtime computes once here ("const");
 *   2. placement: each remaining node the runtime placed here (supports_node) asks its WGSL
 *      kernel to emit dispatches, else the runtime runs it on the CPU (a fallback, with the
 *      reason kept for reports);
 *   3. order: host nodes that do not wait for GPU results run first, GPU nodes are grouped, and a
 *      CPU node that needs GPU data ends a segment (one submit, one read-back);
 *   4. memory: liveness intervals and a greedy best-offset assignment inside a few large buffers
 *      (bindings aligned to minStorageBufferOffsetAlignment); constants are uploaded once;
 *   5. pipelines (cached per device by WGSL text) and bind groups are created.
 * Per inference: inputs are written, each segment's dispatches are encoded into one command
 * buffer and submitted once, and its results are read back with one map. */
#include "backend/webgpu/wg.h"
#include <stdio.h>
#include <time.h>

#define WG_MAX_BIND 16
#define WG_TIME_INF 0x7fffffff

enum { V_ABSENT = 0, V_CONST, V_HOST, V_GPU };
enum { P_NONE = 0, P_GPU, P_CPU, P_CONST };

typedef struct wg_obj {          /* a piece of GPU storage: a value, or a node's scratch */
  uint64_t bytes;
  int first, last;               /* liveness in plan time units; const: [0, INF] */
  int root;                      /* alias root (objects share the root's storage) */
  int buf;                       /* pool buffer index, -1 until placed */
  uint64_t off;
  int gpu_type;                  /* WG_F32 / WG_I32 (how the data is held) */
  int used;                      /* bound by some dispatch or aliased */
  void *init;                    /* a kernel's constant table (gpux__wg_const): written once */
} wg_obj;

typedef struct wg_val {
  gpux_tensor t;                 /* dtype/shape; data for consts */
  int state;                     /* V_* */
  int owns;                      /* t.data owned by the plan */
  int gpu_used;                  /* some GPU node reads it */
  int gpu_type;
  int upload_seg, download_seg;  /* -1 when none */
  int producer;                  /* node index, -1 */
  int keyed;                     /* a small integer model input whose values are part of the key */
  int host_read;                 /* a node placed on the CPU reads it */
} wg_val;

typedef struct wg_bindref {
  int obj;
  int type;
} wg_bindref;

typedef struct wg_disp {
  wg_pipeline *pipe;
  int n_bind;
  wg_bindref bind[WG_MAX_BIND];
  uint32_t x, y, z;
  WGPUBindGroup bg;
} wg_disp;

typedef struct wg_step {
  int node;
  int gpu;
  int first_disp, n_disp;
  int seg;                       /* segment of a GPU step, -1 for host */
} wg_step;

typedef struct wg_seg {
  int first_step, last_step;
  int *uploads, n_uploads;
  int *downloads, n_downloads;
  uint64_t *dl_off;              /* offset of each download in the staging buffer */
  WGPUBuffer staging;
  uint64_t staging_bytes;
} wg_seg;

typedef struct wg_nodeinfo {
  int place;                     /* P_* */
  char why[200];
  int first_disp, n_disp;        /* in plan->disp */
  int *objs, n_objs;             /* storage the node's dispatches touch (values and scratch) */
} wg_nodeinfo;

struct wg_plan {
  unsigned char *key;
  size_t key_len;
  const gpux__graph *g;
  wg_device *dev;
  int nv;
  wg_val *vals;                  /* [nv] */
  wg_nodeinfo *nodes;            /* [n_nodes] */
  wg_obj *objs;                  /* [n_objs]: values first (index = value id), then scratch */
  int n_objs, cap_objs;
  wg_disp *disp;
  int n_disp, cap_disp;
  wg_step *steps;
  int n_steps;
  wg_seg *segs;
  int n_segs;
  WGPUBuffer *bufs;
  uint64_t *buf_size;
  int n_bufs;
  int declined;                  /* the graph runs on the CPU executor */
  char why[300];                 /* why, for every node (naming the node that decided it) */
  int declined_node;             /* the node that decided it, -1 */
  char node_why[300];            /* that node's own reason */
  int n_cpu, n_gpu, n_const;
  uint64_t runs;
  uint64_t bytes;                /* device memory the plan holds: pools and read-back buffers */
  gpux_run_stats *stats;         /* of the run being planned or run (transfers are counted) */
  const gpux__host *host;        /* the runtime: shape inference and CPU nodes */
  const unsigned char *supported; /* [n_nodes] nodes the runtime placed here, or NULL */
};
typedef struct wg_plan wg_plan;

struct wg_build {
  wg_plan *p;
  int node;
  const gpux_tensor *in[64], *out[16];
  int n_in, n_out;
  /* node-local, committed when the kernel succeeds */
  wg_bindref cur[WG_MAX_BIND];   /* bindings of the dispatch being built; obj < 0: scratch ~obj */
  int n_cur;
  wg_disp *disp;
  int n_disp, cap_disp;
  uint64_t scratch[16];
  void *scratch_init[16];        /* constant tables (owned until committed) */
  int n_scratch;
  int alias_out[16], alias_in[16];
  int n_alias;
  int declined;
  char why[200];
  int oom;
};

static int is_float_dtype(int dt) {
  return dt == GPUX_DT_FLOAT || dt == GPUX_DT_DOUBLE || dt == GPUX_DT_FLOAT16 || dt == GPUX_DT_BFLOAT16;
}

/* Integer and bool data the GPU may hold as i32 (int64 values are range-checked on upload). */
static int int_like(int dt) {
  return dt == GPUX_DT_BOOL || dt == GPUX_DT_INT8 || dt == GPUX_DT_UINT8 || dt == GPUX_DT_INT16 ||
         dt == GPUX_DT_UINT16 || dt == GPUX_DT_INT32 || dt == GPUX_DT_INT64;
}

/* ---- the builder interface (wg.h) ---- */

const gpux__node *gpux__wg_node(wg_build *b) { return &b->p->g->nodes[b->node]; }
int gpux__wg_opset(wg_build *b) { return gpux__wg_node(b)->opset; }
const gpux_tensor *gpux__wg_in(wg_build *b, int i) { return i >= 0 && i < b->n_in ? b->in[i] : NULL; }
const gpux_tensor *gpux__wg_out(wg_build *b, int i) { return i >= 0 && i < b->n_out ? b->out[i] : NULL; }
int gpux__wg_n_in(wg_build *b) { return b->n_in; }
int gpux__wg_n_out(wg_build *b) { return b->n_out; }
const wg_device *gpux__wg_dev(wg_build *b) { return b->p->dev; }

int gpux__wg_is_const(wg_build *b, int i) {
  const gpux__node *n = gpux__wg_node(b);
  if (i < 0 || i >= n->n_in || n->in[i] < 0) return 0;
  return b->p->vals[n->in[i]].state == V_CONST;
}

int gpux__wg_decline(wg_build *b, const char *fmt, ...) {
  if (!b->declined) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, sizeof b->why, fmt, ap);
    va_end(ap);
  }
  b->declined = 1;
  return GPUX_E_UNSUPPORTED;
}

static int alias_root(const wg_plan *p, int obj) {
  while (p->objs[obj].root != obj) obj = p->objs[obj].root;
  return obj;
}

static uint64_t tensor_bytes(const gpux_tensor *t) {
  return (uint64_t)gpux_tensor_count(t) * 4u;
}

static int add_binding(wg_build *b, int obj, int type, uint64_t bytes) {
  if (bytes > b->p->dev->limits.maxStorageBufferBindingSize)
    return gpux__wg_decline(b, "a tensor of %llu bytes is above this GPU's binding limit (%llu)",
                            (unsigned long long)bytes, (unsigned long long)b->p->dev->limits.maxStorageBufferBindingSize);
  int key = obj >= 0 ? alias_root(b->p, obj) : obj;
  for (int k = 0; k < b->n_cur; k++) {
    int other = b->cur[k].obj >= 0 ? alias_root(b->p, b->cur[k].obj) : b->cur[k].obj;
    if (other == key) {
      if (b->cur[k].type != type) return gpux__wg_decline(b, "one tensor bound with two element types");
      return k;
    }
  }
  if (b->n_cur == WG_MAX_BIND || (uint32_t)b->n_cur >= b->p->dev->limits.maxStorageBuffersPerShaderStage)
    return gpux__wg_decline(b, "more bindings than this GPU allows per shader");
  b->cur[b->n_cur] = (wg_bindref){obj, type};
  return b->n_cur++;
}

int gpux__wg_bind_in(wg_build *b, int i, int type) {
  if (b->declined) return GPUX_E_UNSUPPORTED;
  const gpux__node *n = gpux__wg_node(b);
  if (i < 0 || i >= n->n_in || n->in[i] < 0 || !b->in[i]) return gpux__wg_decline(b, "input %d is missing", i);
  int v = n->in[i];
  const wg_val *val = &b->p->vals[v];
  const gpux_tensor *t = &val->t;
  if (t->kind != GPUX_KIND_TENSOR) return gpux__wg_decline(b, "input %d is not a tensor", i);
  if (type == WG_I32) {
    if (!int_like(t->dtype)) return gpux__wg_decline(b, "input %d: %s as i32", i, gpux_dtype_name(t->dtype));
  } else if (t->dtype != GPUX_DT_FLOAT) {
    return gpux__wg_decline(b, "input %d is %s (the GPU path takes float32)", i, gpux_dtype_name(t->dtype));
  }
  int obj_type = type == WG_I32 ? WG_I32 : WG_F32;
  if (b->p->objs[v].used && b->p->objs[v].gpu_type != obj_type)
    return gpux__wg_decline(b, "input %d is used with two element types", i);
  return add_binding(b, v, type, tensor_bytes(t));
}

int gpux__wg_bind_out(wg_build *b, int i, int type) {
  if (b->declined) return GPUX_E_UNSUPPORTED;
  const gpux__node *n = gpux__wg_node(b);
  if (i < 0 || i >= n->n_out || n->out[i] < 0 || !b->out[i]) return gpux__wg_decline(b, "output %d is not used", i);
  const gpux_tensor *t = b->out[i];
  if (t->kind != GPUX_KIND_TENSOR || (type == WG_I32 ? !int_like(t->dtype) : t->dtype != GPUX_DT_FLOAT))
    return gpux__wg_decline(b, "output %d is %s (the GPU path writes %s)", i, gpux_dtype_name(t->dtype),
                            type == WG_I32 ? "integers as i32" : "float32");
  return add_binding(b, n->out[i], type, tensor_bytes(t));
}

int gpux__wg_scratch(wg_build *b, uint64_t bytes) {
  if (b->n_scratch == (int)GPUX__ARRAY_LEN(b->scratch)) return gpux__wg_decline(b, "too many scratch buffers");
  b->scratch[b->n_scratch] = bytes ? bytes : 4;
  return b->n_scratch++;
}

int gpux__wg_const(wg_build *b, const void *data, uint64_t bytes) {
  int id = gpux__wg_scratch(b, bytes);
  if (id < 0) return id;
  b->scratch_init[id] = gpux__malloc(bytes ? (size_t)bytes : 4);
  if (!b->scratch_init[id]) { b->oom = 1; return gpux__wg_decline(b, "out of memory"); }
  if (bytes) memcpy(b->scratch_init[id], data, (size_t)bytes);
  return id;
}

int gpux__wg_bind_scratch(wg_build *b, int scratch, int type) {
  if (b->declined) return GPUX_E_UNSUPPORTED;
  if (scratch < 0 || scratch >= b->n_scratch) return gpux__wg_decline(b, "bad scratch id");
  return add_binding(b, ~scratch, type, b->scratch[scratch]);
}

void gpux__wg_decls(wg_build *b, wg_str *s) {
  static const char *const types[] = {"f32", "i32", "vec4<f32>"};
  for (int k = 0; k < b->n_cur; k++)
    gpux__wg_cat(s, "@group(0) @binding(%d) var<storage, read_write> b%d: array<%s>;\n", k, k, types[b->cur[k].type]);
}

int gpux__wg_dispatch(wg_build *b, wg_str *wgsl, uint32_t x, uint32_t y, uint32_t z) {
  int n_cur = b->n_cur;
  b->n_cur = 0;
  if (b->declined) return GPUX_E_UNSUPPORTED;
  if (wgsl->oom) { b->oom = 1; return gpux__wg_decline(b, "out of memory"); }
  if (!x || !y || !z) return 0; /* nothing to compute */
  uint32_t lim = b->p->dev->limits.maxComputeWorkgroupsPerDimension;
  if (x > lim || y > lim || z > lim) return gpux__wg_decline(b, "a dispatch of %ux%ux%u workgroups is above the limit %u", x, y, z, lim);
  const gpux__node *n = gpux__wg_node(b);
  char label[160];
  snprintf(label, sizeof label, "%s %s", n->op_type, n->name ? n->name : "");
  if ((strstr(wgsl->s, "gx_inf()") || strstr(wgsl->s, "gx_nan()")) && !strstr(wgsl->s, "fn gx_inf")) {
    wg_str full = {0};
    gpux__wg_cat(&full, "%s%s", gpux__wg_special_fns, wgsl->s);
    if (full.oom) { b->oom = 1; return gpux__wg_decline(b, "out of memory"); }
    gpux__wg_str_free(wgsl);
    *wgsl = full;
  }
  wg_pipeline *pipe = NULL;
  int rc = gpux__wg_pipeline(b->p->dev, wgsl->s, label, &pipe);
  if (rc) {
    if (rc == GPUX_E_NOMEM) b->oom = 1;
    return gpux__wg_decline(b, "%s", gpux_last_error());
  }
  if (b->n_disp == b->cap_disp) {
    int cap = b->cap_disp ? b->cap_disp * 2 : 4;
    wg_disp *nd = realloc(b->disp, (size_t)cap * sizeof *nd);
    if (!nd) { b->oom = 1; return gpux__wg_decline(b, "out of memory"); }
    b->disp = nd;
    b->cap_disp = cap;
  }
  wg_disp *d = &b->disp[b->n_disp++];
  memset(d, 0, sizeof *d);
  d->pipe = pipe;
  d->n_bind = n_cur;
  memcpy(d->bind, b->cur, (size_t)n_cur * sizeof *d->bind);
  d->x = x, d->y = y, d->z = z;
  return 0;
}

int gpux__wg_alias(wg_build *b, int out, int in) {
  if (b->declined) return GPUX_E_UNSUPPORTED;
  const gpux__node *n = gpux__wg_node(b);
  if (in < 0 || in >= n->n_in || n->in[in] < 0 || !b->in[in]) return gpux__wg_decline(b, "input %d is missing", in);
  if (out < 0 || out >= n->n_out || n->out[out] < 0) return 0; /* an unused output */
  const gpux_tensor *ti = b->in[in], *to = b->out[out];
  if (ti->kind != GPUX_KIND_TENSOR || ti->dtype != to->dtype || (ti->dtype != GPUX_DT_FLOAT && !int_like(ti->dtype)))
    return gpux__wg_decline(b, "%s data (the GPU path holds float32 and integers)", gpux_dtype_name(ti->dtype));
  int want = ti->dtype == GPUX_DT_FLOAT ? WG_F32 : WG_I32;
  if (b->p->objs[n->in[in]].used && b->p->objs[n->in[in]].gpu_type != want)
    return gpux__wg_decline(b, "input %d is used with two element types", in);
  if (gpux_tensor_count(ti) != gpux_tensor_count(to)) return gpux__wg_decline(b, "alias of a different size");
  if (b->n_alias == (int)GPUX__ARRAY_LEN(b->alias_out)) return gpux__wg_decline(b, "too many aliases");
  b->alias_out[b->n_alias] = out;
  b->alias_in[b->n_alias] = in;
  b->n_alias++;
  return 0;
}

int gpux__wg_software(wg_build *b) {
  const char *k = getenv("GPUX_WEBGPU_KERNELS");
  if (k && !strcmp(k, "gpu")) return 0;
  if (k && !strcmp(k, "software")) return 1;
  return b->p->dev->adapter_type == WGPUAdapterType_CPU;
}

void gpux__wg_grid(wg_build *b, uint64_t n_groups, uint32_t *x, uint32_t *y) {
  uint64_t lim = b->p->dev->limits.maxComputeWorkgroupsPerDimension;
  if (n_groups <= lim) {
    *x = (uint32_t)n_groups;
    *y = n_groups ? 1 : 0;
    return;
  }
  uint64_t yy = (n_groups + lim - 1) / lim;
  uint64_t xx = (n_groups + yy - 1) / yy;
  *x = (uint32_t)xx;
  *y = (uint32_t)yy;
}

/* ---- plan storage helpers ---- */

static int new_obj(wg_plan *p, uint64_t bytes) {
  if (p->n_objs == p->cap_objs) {
    int cap = p->cap_objs * 2 + 16;
    wg_obj *no = gpux__realloc(p->objs, (size_t)cap * sizeof *no);
    if (!no) return -1;
    p->objs = no;
    p->cap_objs = cap;
  }
  int id = p->n_objs++;
  p->objs[id] = (wg_obj){.bytes = bytes ? bytes : 4, .first = WG_TIME_INF, .last = -1, .root = id, .buf = -1};
  return id;
}

static void plan_free_gpu(wg_plan *p) {
  wg_device *d = p->dev;
  for (int i = 0; i < p->n_disp; i++)
    if (p->disp[i].bg) d->f.wgpuBindGroupRelease(p->disp[i].bg);
  for (int i = 0; i < p->n_bufs; i++)
    if (p->bufs[i]) { d->f.wgpuBufferDestroy(p->bufs[i]); d->f.wgpuBufferRelease(p->bufs[i]); }
  for (int s = 0; s < p->n_segs; s++)
    if (p->segs[s].staging) { d->f.wgpuBufferDestroy(p->segs[s].staging); d->f.wgpuBufferRelease(p->segs[s].staging); }
}

void gpux__wg_plan_free(wg_plan *p) {
  if (!p) return;
  plan_free_gpu(p);
  if (p->vals)
    for (int v = 0; v < p->nv; v++)
      if (p->vals[v].owns) gpux_tensor_free(&p->vals[v].t);
  if (p->nodes)
    for (int i = 0; i < p->g->n_nodes; i++) free(p->nodes[i].objs);
  for (int s = 0; s < p->n_segs; s++) {
    free(p->segs[s].uploads);
    free(p->segs[s].downloads);
    free(p->segs[s].dl_off);
  }
  free(p->segs);
  free(p->steps);
  free(p->disp);
  for (int o = 0; o < p->n_objs; o++) free(p->objs[o].init);
  free(p->objs);
  free(p->nodes);
  free(p->vals);
  free(p->bufs);
  free(p->buf_size);
  free(p->key);
  free(p);
}

/* ---- 1. shapes and constants ---- */

/* Small integer/bool model inputs are part of the plan key: they usually carry shapes, axes,
 * pads or counts, and knowing them lets shapes be computed while planning. */
int gpux__wg_keyed_input(const gpux_tensor *t, int i, uint64_t extra) {
  if (t->kind != GPUX_KIND_TENSOR || t->dtype == GPUX_DT_STRING || gpux_dtype_size(t->dtype) == 0 || gpux_tensor_count(t) > 64)
    return 0;
  /* floats too when planning showed that they decide shapes (Resize scales) */
  return !is_float_dtype(t->dtype) || (i < 64 && (extra >> i & 1));
}

static int foldable(const gpux__node *n) {
  const char *op = n->op_type;
  if (!strncmp(op, "Random", 6) || !strcmp(op, "Multinomial") || !strcmp(op, "Bernoulli")) return 0;
  if (!strcmp(op, "Dropout")) return 0; /* training mode draws random masks */
  return 1;
}

static int has_subgraph(const gpux__node *n) {
  for (int a = 0; a < n->n_attrs; a++)
    if (n->attrs[a].type == GPUX_ATTR_GRAPH || n->attrs[a].type == GPUX_ATTR_GRAPHS) return 1;
  return 0;
}

/* Infers node i's outputs; computes them when every input is known. */
static int plan_shapes(wg_plan *p, int i) {
  const gpux__node *n = &p->g->nodes[i];
  if (n->n_in > 64 || n->n_out > 16) return gpux__error(GPUX_E_UNSUPPORTED, "node '%s' has too many inputs", n->name);
  const gpux_tensor *in[64];
  gpux_tensor *out[16], outs[16];
  for (int j = 0; j < n->n_in; j++) {
    int v = n->in[j];
    in[j] = v < 0 || p->vals[v].state == V_ABSENT ? NULL : &p->vals[v].t;
  }
  for (int j = 0; j < n->n_out; j++) {
    memset(&outs[j], 0, sizeof outs[j]);
    out[j] = n->out[j] >= 0 ? &outs[j] : NULL;
  }
  int all_const = foldable(n);
  for (int j = 0; j < n->n_in; j++)
    if (in[j] && p->vals[n->in[j]].state != V_CONST) all_const = 0;
  int shape_of = !strcmp(n->op_type, "Shape") || !strcmp(n->op_type, "Size");
  if (shape_of && in[0] && in[0]->kind == GPUX_KIND_TENSOR) all_const = 1; /* reads dims only */
  /* the runtime infers (or, for constants, computes) the outputs */
  int rc = p->host->run_node(p->host->rt, n, in, out, !all_const);
  if (rc) {
    for (int j = 0; j < n->n_out; j++) gpux_tensor_free(&outs[j]);
    return rc;
  }
  for (int j = 0; j < n->n_out; j++) {
    int v = n->out[j];
    if (v < 0) continue;
    wg_val *val = &p->vals[v];
    val->t = outs[j];
    val->producer = i;
    val->owns = 1;
    val->state = all_const ? V_CONST : V_HOST; /* HOST until the node is placed on the GPU */
  }
  if (all_const) p->nodes[i].place = P_CONST;
  return 0;
}

/* ---- 2. placement ---- */

static int commit_node(wg_plan *p, wg_build *b) {
  const gpux__node *n = &p->g->nodes[b->node];
  wg_nodeinfo *ni = &p->nodes[b->node];
  /* scratch objects */
  int scratch_obj[16];
  for (int s = 0; s < b->n_scratch; s++) {
    scratch_obj[s] = new_obj(p, b->scratch[s]);
    if (scratch_obj[s] < 0) return GPUX_E_NOMEM;
    p->objs[scratch_obj[s]].used = 1;
    p->objs[scratch_obj[s]].init = b->scratch_init[s];
    b->scratch_init[s] = NULL;
  }
  /* aliases */
  for (int a = 0; a < b->n_alias; a++) {
    int vo = n->out[b->alias_out[a]], vi = n->in[b->alias_in[a]];
    p->objs[vo].root = alias_root(p, vi);
    p->objs[vo].used = 1;
    p->objs[vi].used = 1;
    p->objs[vo].gpu_type = p->objs[vi].gpu_type = p->vals[vi].t.dtype == GPUX_DT_FLOAT ? WG_F32 : WG_I32;
    p->vals[vi].gpu_used = 1;
    p->vals[vo].state = V_GPU;
  }
  /* dispatches */
  if (p->n_disp + b->n_disp > p->cap_disp) {
    int cap = (p->n_disp + b->n_disp) * 2 + 16;
    wg_disp *nd = gpux__realloc(p->disp, (size_t)cap * sizeof *nd);
    if (!nd) return GPUX_E_NOMEM;
    p->disp = nd;
    p->cap_disp = cap;
  }
  ni->first_disp = p->n_disp;
  ni->n_disp = b->n_disp;
  int *objs = gpux__calloc((size_t)(b->n_disp * WG_MAX_BIND + b->n_alias * 2 + 1), sizeof *objs);
  if (!objs) return GPUX_E_NOMEM;
  int n_objs = 0;
  for (int d = 0; d < b->n_disp; d++) {
    wg_disp *dd = &p->disp[p->n_disp++];
    *dd = b->disp[d];
    for (int k = 0; k < dd->n_bind; k++) {
      int o = dd->bind[k].obj;
      if (o < 0) o = scratch_obj[~o];
      dd->bind[k].obj = o;
      p->objs[o].used = 1;
      if (o < p->nv) p->objs[o].gpu_type = dd->bind[k].type == WG_I32 ? WG_I32 : WG_F32;
      objs[n_objs++] = o;
    }
  }
  for (int a = 0; a < b->n_alias; a++) {
    objs[n_objs++] = n->in[b->alias_in[a]];
    objs[n_objs++] = n->out[b->alias_out[a]];
  }
  ni->objs = objs;
  ni->n_objs = n_objs;
  /* values: inputs the GPU reads, outputs it writes */
  for (int j = 0; j < n->n_in; j++) {
    int v = n->in[j];
    if (v < 0) continue;
    for (int o = 0; o < n_objs; o++)
      if (objs[o] == v) { p->vals[v].gpu_used = 1; break; }
  }
  for (int j = 0; j < n->n_out; j++)
    if (n->out[j] >= 0) p->vals[n->out[j]].state = V_GPU;
  ni->place = P_GPU;
  return 0;
}

int gpux__wg_supports(const gpux__node *n, char *why, size_t why_len) {
  char tmp[8];
  if (!why) why = tmp, why_len = sizeof tmp;
  if (!gpux__wg_op_find(n->domain, n->op_type)) {
    snprintf(why, why_len, "no WGSL kernel for %s", n->op_type);
    return 0;
  }
  const char *forced = getenv("GPUX_WEBGPU_CPU_OPS"); /* "CumSum,Resize": run these on the CPU (debugging, tests) */
  size_t len = strlen(n->op_type);
  for (const char *q = forced; q && (q = strstr(q, n->op_type)); q += len)
    if ((q == forced || q[-1] == ',') && (q[len] == ',' || !q[len])) {
      snprintf(why, why_len, "%s is on GPUX_WEBGPU_CPU_OPS", n->op_type);
      return 0;
    }
  return 1;
}

static int plan_place(wg_plan *p, int i) {
  const gpux__node *n = &p->g->nodes[i];
  wg_nodeinfo *ni = &p->nodes[i];
  if (ni->place == P_CONST) return 0;
  wg_op_fn fn = gpux__wg_op_find(n->domain, n->op_type);
  char why[160];
  if (p->supported ? !p->supported[i] : !gpux__wg_supports(n, why, sizeof why)) fn = NULL;
  wg_build b;
  memset(&b, 0, sizeof b);
  b.p = p;
  b.node = i;
  b.n_in = n->n_in;
  b.n_out = n->n_out;
  for (int j = 0; j < n->n_in; j++) b.in[j] = n->in[j] < 0 || p->vals[n->in[j]].state == V_ABSENT ? NULL : &p->vals[n->in[j]].t;
  for (int j = 0; j < n->n_out; j++) b.out[j] = n->out[j] < 0 ? NULL : &p->vals[n->out[j]].t;
  int rc = 0;
  if (!fn) {
    gpux__wg_supports(n, why, sizeof why); /* the runtime placed it on the CPU: say why */
    gpux__wg_decline(&b, "%s", why);
  } else {
    int any_out = 0;
    for (int j = 0; j < n->n_out; j++) any_out |= b.out[j] != NULL;
    if (!any_out) gpux__wg_decline(&b, "no output is used");
    else rc = fn(&b);
  }
  if (b.oom || b.declined || rc) /* tables of a declined kernel */
    for (int k = 0; k < b.n_scratch; k++) free(b.scratch_init[k]), b.scratch_init[k] = NULL;
  if (b.oom) { free(b.disp); return GPUX_E_NOMEM; }
  for (int j = 0; j < n->n_out && !b.declined && rc == 0; j++) {
    if (!b.out[j]) continue;
    int made = 0; /* every output must be written by a dispatch or be an alias */
    for (int a = 0; a < b.n_alias; a++) made |= b.alias_out[a] == j;
    for (int d = 0; d < b.n_disp && !made; d++)
      for (int k = 0; k < b.disp[d].n_bind; k++) made |= b.disp[d].bind[k].obj == n->out[j];
    if (!made && gpux_tensor_count(b.out[j]) == 0) made = 1; /* empty: nothing to write */
    if (!made) gpux__wg_decline(&b, "output %d is not produced by the WGSL kernel", j);
  }
  if (!b.declined && rc == 0) {
    rc = commit_node(p, &b);
    free(b.disp);
    return rc;
  }
  free(b.disp);
  ni->place = P_CPU;
  snprintf(ni->why, sizeof ni->why, "%s", b.declined ? b.why : gpux_last_error());
  return 0;
}

/* ---- 3. order and segments ---- */

static int add_int(int **arr, int *n, int v) {
  for (int i = 0; i < *n; i++)
    if ((*arr)[i] == v) return 0;
  int *na = realloc(*arr, (size_t)(*n + 1) * sizeof *na);
  if (!na) return GPUX_E_NOMEM;
  na[(*n)++] = v;
  *arr = na;
  return 0;
}

/* A host node is "blocked" while one of its inputs is GPU data not yet scheduled for read-back. */
static int host_blocked(const wg_plan *p, int i, const unsigned char *host_avail) {
  const gpux__node *n = &p->g->nodes[i];
  for (int j = 0; j < n->n_in; j++) {
    int v = n->in[j];
    if (v >= 0 && p->vals[v].state == V_GPU && !host_avail[v]) return 1;
  }
  return 0;
}

static int plan_order(wg_plan *p) {
  const gpux__graph *g = p->g;
  int nn = g->n_nodes, rc = 0;
  int *pending = gpux__calloc((size_t)nn + 1, sizeof *pending);     /* unscheduled producers */
  unsigned char *done = gpux__calloc((size_t)nn + 1, 1);
  unsigned char *host_avail = gpux__calloc((size_t)p->nv + 1, 1);
  int *seg_of_node = gpux__calloc((size_t)nn + 1, sizeof *seg_of_node);
  p->steps = gpux__calloc((size_t)nn + 1, sizeof *p->steps);
  if (!pending || !done || !host_avail || !seg_of_node || !p->steps) { rc = GPUX_E_NOMEM; goto out; }
  for (int i = 0; i < nn; i++) {
    const gpux__node *n = &g->nodes[i];
    for (int j = 0; j < n->n_in; j++) {
      int v = n->in[j];
      if (v >= 0 && p->vals[v].producer >= 0 && p->nodes[p->vals[v].producer].place != P_CONST) pending[i]++;
    }
  }
  for (int v = 0; v < p->nv; v++)
    if (p->vals[v].state == V_HOST || p->vals[v].state == V_CONST) host_avail[v] = 1;
  int cur_seg = -1, last_was_gpu = 0;
  for (int scheduled = 0;;) {
    /* pick: a runnable host node, else a GPU node, else release blocked host nodes */
    int pick = -1, pick_gpu = 0, any_blocked = 0;
    for (int i = 0; i < nn && pick < 0; i++) {
      if (done[i] || pending[i] || p->nodes[i].place != P_CPU) continue;
      if (host_blocked(p, i, host_avail)) any_blocked = 1;
      else pick = i;
    }
    if (pick < 0)
      for (int i = 0; i < nn; i++)
        if (!done[i] && !pending[i] && p->nodes[i].place == P_GPU) { pick = i, pick_gpu = 1; break; }
    if (pick < 0 && any_blocked) {
      /* read back what the blocked nodes need, at the end of the segments that produce it */
      for (int i = 0; i < nn; i++) {
        if (done[i] || pending[i] || p->nodes[i].place != P_CPU) continue;
        const gpux__node *n = &g->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
          int v = n->in[j];
          if (v < 0 || p->vals[v].state != V_GPU || host_avail[v]) continue;
          int prod = p->vals[v].producer, s = seg_of_node[prod];
          p->vals[v].download_seg = s;
          if ((rc = add_int(&p->segs[s].downloads, &p->segs[s].n_downloads, v))) goto out;
          host_avail[v] = 1;
        }
      }
      continue;
    }
    if (pick < 0) break;
    const gpux__node *n = &g->nodes[pick];
    wg_step *st = &p->steps[p->n_steps++];
    st->node = pick;
    st->gpu = pick_gpu;
    st->seg = -1;
    if (pick_gpu) {
      if (!last_was_gpu) {
        wg_seg *ns = gpux__realloc(p->segs, (size_t)(p->n_segs + 1) * sizeof *ns);
        if (!ns) { rc = GPUX_E_NOMEM; goto out; }
        p->segs = ns;
        memset(&p->segs[p->n_segs], 0, sizeof *p->segs);
        p->segs[p->n_segs].first_step = p->n_steps - 1;
        cur_seg = p->n_segs++;
      }
      p->segs[cur_seg].last_step = p->n_steps - 1;
      st->seg = cur_seg;
      seg_of_node[pick] = cur_seg;
      st->first_disp = p->nodes[pick].first_disp;
      st->n_disp = p->nodes[pick].n_disp;
      /* host data this node reads on the GPU is written before the segment runs */
      const wg_nodeinfo *ni = &p->nodes[pick];
      for (int o = 0; o < ni->n_objs; o++) {
        int v = ni->objs[o];
        if (v >= p->nv || p->vals[v].state != V_HOST || p->vals[v].upload_seg >= 0) continue;
        p->vals[v].upload_seg = cur_seg;
        if ((rc = add_int(&p->segs[cur_seg].uploads, &p->segs[cur_seg].n_uploads, v))) goto out;
      }
    }
    last_was_gpu = pick_gpu;
    done[pick] = 1;
    scheduled++;
    for (int j = 0; j < n->n_out; j++) {
      int v = n->out[j];
      if (v < 0) continue;
      if (!pick_gpu) host_avail[v] = 1;
      for (int i = 0; i < nn; i++) {
        if (done[i]) continue;
        const gpux__node *c = &g->nodes[i];
        for (int q = 0; q < c->n_in; q++)
          if (c->in[q] == v) pending[i]--;
      }
    }
  }
  /* GPU results the caller asked for are read back at the end of their segment */
  for (int o = 0; o < g->n_outputs; o++) {
    int v = g->outputs[o];
    if (p->vals[v].state != V_GPU || p->vals[v].download_seg >= 0) continue;
    int s = seg_of_node[p->vals[v].producer];
    p->vals[v].download_seg = s;
    if ((rc = add_int(&p->segs[s].downloads, &p->segs[s].n_downloads, v))) goto out;
  }
  for (int i = 0; i < nn; i++)
    if (!done[i] && p->nodes[i].place != P_CONST) {
      rc = gpux__error(GPUX_E_INTERNAL, "WebGPU planner: node '%s' could not be scheduled", g->nodes[i].name);
      goto out;
    }
out:
  free(pending);
  free(done);
  free(host_avail);
  free(seg_of_node);
  return rc;
}

/* ---- 4. memory ---- */

static void use_obj(wg_plan *p, int o, int t) {
  wg_obj *ob = &p->objs[o];
  if (t < ob->first) ob->first = t;
  if (t > ob->last) ob->last = t;
}

typedef struct {
  int obj;
  uint64_t bytes;
} size_item;

static int cmp_size_desc(const void *a, const void *b) {
  const size_item *x = a, *y = b;
  if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
  return x->obj - y->obj;
}

static int plan_memory(wg_plan *p) {
  wg_device *d = p->dev;
  /* value sizes and kinds */
  for (int v = 0; v < p->nv; v++) {
    wg_obj *o = &p->objs[v];
    if (!o->used) continue;
    o->bytes = tensor_bytes(&p->vals[v].t);
    if (!o->bytes) o->bytes = 4;
    if (p->vals[v].state == V_CONST) use_obj(p, v, 0), use_obj(p, v, WG_TIME_INF);
  }
  /* liveness from the order: step s runs at time 2s+1; uploads at 2*first, read-backs at 2*last+2 */
  for (int s = 0; s < p->n_steps; s++) {
    const wg_step *st = &p->steps[s];
    if (!st->gpu) continue;
    const wg_nodeinfo *ni = &p->nodes[st->node];
    for (int o = 0; o < ni->n_objs; o++) use_obj(p, ni->objs[o], 2 * s + 1);
  }
  for (int o = p->nv; o < p->n_objs; o++)
    if (p->objs[o].init) use_obj(p, o, 0), use_obj(p, o, WG_TIME_INF);
  for (int s = 0; s < p->n_segs; s++) {
    for (int u = 0; u < p->segs[s].n_uploads; u++) use_obj(p, p->segs[s].uploads[u], 2 * p->segs[s].first_step);
    for (int u = 0; u < p->segs[s].n_downloads; u++) use_obj(p, p->segs[s].downloads[u], 2 * p->segs[s].last_step + 2);
  }
  /* alias groups share their root's storage for the union of their lifetimes */
  for (int o = 0; o < p->n_objs; o++) {
    if (!p->objs[o].used) continue;
    int r = alias_root(p, o);
    if (r == o) continue;
    p->objs[r].used = 1;
    if (p->objs[o].first < p->objs[r].first) p->objs[r].first = p->objs[o].first;
    if (p->objs[o].last > p->objs[r].last) p->objs[r].last = p->objs[o].last;
    if (p->objs[o].bytes > p->objs[r].bytes) p->objs[r].bytes = p->objs[o].bytes;
  }
  uint64_t align = d->limits.minStorageBufferOffsetAlignment;
  if (align < 256) align = 256;
  uint64_t cap = d->limits.maxBufferSize;
  if (cap > ((uint64_t)1 << 31)) cap = (uint64_t)1 << 31;
  if (cap < d->limits.maxStorageBufferBindingSize && d->limits.maxStorageBufferBindingSize <= ((uint64_t)1 << 31))
    cap = d->limits.maxStorageBufferBindingSize;
  cap &= ~(align - 1);
  int n_items = 0;
  size_item *items = gpux__calloc((size_t)p->n_objs + 1, sizeof *items);
  int *placed = gpux__calloc((size_t)p->n_objs + 1, sizeof *placed);
  if (!items || !placed) { free(items); free(placed); return GPUX_E_NOMEM; }
  for (int o = 0; o < p->n_objs; o++) {
    if (!p->objs[o].used || alias_root(p, o) != o) continue;
    if (p->objs[o].last < 0) p->objs[o].first = p->objs[o].last = 0; /* bound but never live: still needs storage */
    items[n_items++] = (size_item){o, (p->objs[o].bytes + align - 1) & ~(align - 1)};
  }
  qsort(items, (size_t)n_items, sizeof *items, cmp_size_desc);
  int n_placed = 0, rc = 0;
  p->buf_size = gpux__calloc(64, sizeof *p->buf_size);
  p->bufs = gpux__calloc(64, sizeof *p->bufs);
  if (!p->buf_size || !p->bufs) rc = GPUX_E_NOMEM;
  for (int it = 0; it < n_items && !rc; it++) {
    wg_obj *ob = &p->objs[items[it].obj];
    uint64_t need = items[it].bytes;
    if (need > cap) { rc = gpux__error(GPUX_E_NOMEM, "WebGPU: a tensor of %llu bytes is above this GPU's buffer limit", (unsigned long long)need); break; }
    for (int b = 0;; b++) {
      if (b == 64) { rc = gpux__error(GPUX_E_NOMEM, "WebGPU: the model needs more than 64 GPU buffers"); break; }
      /* lowest offset in buffer b that overlaps no placed object alive at the same time */
      uint64_t off = 0;
      for (int moved = 1; moved;) {
        moved = 0;
        for (int q = 0; q < n_placed; q++) {
          const wg_obj *other = &p->objs[placed[q]];
          if (other->buf != b || other->last < ob->first || other->first > ob->last) continue;
          uint64_t oend = other->off + ((other->bytes + align - 1) & ~(align - 1));
          if (other->off < off + need && off < oend) { off = oend; moved = 1; }
        }
      }
      if (off + need > cap) continue;
      ob->buf = b;
      ob->off = off;
      if (b >= p->n_bufs) p->n_bufs = b + 1;
      if (off + need > p->buf_size[b]) p->buf_size[b] = off + need;
      placed[n_placed++] = items[it].obj;
      break;
    }
  }
  free(items);
  free(placed);
  if (rc) return rc;
  /* aliases take their root's place */
  for (int o = 0; o < p->n_objs; o++) {
    if (!p->objs[o].used) continue;
    int r = alias_root(p, o);
    p->objs[o].buf = p->objs[r].buf;
    p->objs[o].off = p->objs[r].off;
  }
  return 0;
}

/* ---- 5. GPU objects ---- */

static int plan_gpu(wg_plan *p) {
  wg_device *d = p->dev;
  for (int b = 0; b < p->n_bufs; b++) {
    p->bufs[b] = gpux__wg_buffer(d, p->buf_size[b], WGPUBufferUsage_Storage | WGPUBufferUsage_CopySrc | WGPUBufferUsage_CopyDst, "gpux tensors");
    if (!p->bufs[b]) return gpux__error(GPUX_E_NOMEM, "WebGPU: could not allocate %llu bytes", (unsigned long long)p->buf_size[b]);
  }
  int rc = gpux__wg_check(d, "allocating GPU memory");
  if (rc) return rc;
  /* constants the GPU reads, written once */
  for (int v = 0; v < p->nv; v++) {
    if (!p->objs[v].used || p->vals[v].state != V_CONST || alias_root(p, v) != v) continue;
    const gpux_tensor *t = &p->vals[v].t;
    if (!gpux_tensor_count(t)) continue;
    void *img;
    size_t bytes;
    int owned;
    if ((rc = gpux__wg_gpu_image(t, p->objs[v].gpu_type, &img, &bytes, &owned))) return rc;
    d->f.wgpuQueueWriteBuffer(d->queue, p->bufs[p->objs[v].buf], p->objs[v].off, img, bytes);
    if (owned) free(img);
    p->stats->uploads++, p->stats->upload_bytes += bytes;
  }
  for (int o = p->nv; o < p->n_objs; o++)
    if (p->objs[o].init) {
      d->f.wgpuQueueWriteBuffer(d->queue, p->bufs[p->objs[o].buf], p->objs[o].off, p->objs[o].init, (size_t)p->objs[o].bytes);
      p->stats->uploads++, p->stats->upload_bytes += p->objs[o].bytes;
    }
  /* bind groups */
  for (int i = 0; i < p->n_disp; i++) {
    wg_disp *ds = &p->disp[i];
    WGPUBindGroupEntry e[WG_MAX_BIND];
    memset(e, 0, sizeof e);
    for (int k = 0; k < ds->n_bind; k++) {
      const wg_obj *o = &p->objs[ds->bind[k].obj];
      uint64_t bytes = o->bytes;
      if (ds->bind[k].obj < p->nv) bytes = tensor_bytes(&p->vals[ds->bind[k].obj].t);
      if (bytes < 4) bytes = 4;
      if (ds->bind[k].type == WG_VEC4) bytes = bytes < 16 ? 16 : bytes & ~(uint64_t)15;
      e[k].binding = (uint32_t)k;
      e[k].buffer = p->bufs[o->buf];
      e[k].offset = o->off;
      e[k].size = bytes;
      if (o->off + bytes > p->buf_size[o->buf]) e[k].size = p->buf_size[o->buf] - o->off;
    }
    WGPUBindGroupDescriptor bd;
    memset(&bd, 0, sizeof bd);
    bd.layout = ds->pipe->layout;
    bd.entryCount = (size_t)ds->n_bind;
    bd.entries = e;
    ds->bg = d->f.wgpuDeviceCreateBindGroup(d->device, &bd);
    if (!ds->bg) return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a bind group");
  }
  /* staging buffers for read-backs */
  for (int s = 0; s < p->n_segs; s++) {
    wg_seg *sg = &p->segs[s];
    if (!sg->n_downloads) continue;
    sg->dl_off = gpux__calloc((size_t)sg->n_downloads, sizeof *sg->dl_off);
    if (!sg->dl_off) return GPUX_E_NOMEM;
    uint64_t off = 0;
    for (int k = 0; k < sg->n_downloads; k++) {
      sg->dl_off[k] = off;
      off += (tensor_bytes(&p->vals[sg->downloads[k]].t) + 15) & ~(uint64_t)15;
    }
    sg->staging_bytes = off ? off : 16;
    sg->staging = gpux__wg_buffer(d, sg->staging_bytes, WGPUBufferUsage_MapRead | WGPUBufferUsage_CopyDst, "gpux read-back");
    if (!sg->staging) return gpux__error(GPUX_E_NOMEM, "WebGPU: could not allocate a read-back buffer");
  }
  return gpux__wg_check(d, "preparing the model on the GPU");
}

/* ---- planning ---- */

int gpux__wg_plan_key(const gpux__graph *g, const gpux_tensor *inputs, int n_inputs, uint64_t extra, unsigned char **key, size_t *len) {
  size_t cap = 64, n = 0;
  unsigned char *k = malloc(cap);
  if (!k) return GPUX_E_NOMEM;
#define PUT(ptr, sz)                                                         \
  do {                                                                       \
    size_t sz_ = (sz);                                                       \
    while (n + sz_ > cap) {                                                  \
      cap *= 2;                                                              \
      unsigned char *nk = realloc(k, cap);                                   \
      if (!nk) { free(k); return GPUX_E_NOMEM; }                             \
      k = nk;                                                                \
    }                                                                        \
    memcpy(k + n, (ptr), sz_);                                               \
    n += sz_;                                                                \
  } while (0)
  PUT(&n_inputs, sizeof n_inputs);
  for (int i = 0; i < n_inputs && i < g->n_inputs; i++) {
    const gpux_tensor *t = &inputs[i];
    int hdr[3] = {t->kind, t->dtype, t->ndim};
    PUT(hdr, sizeof hdr);
    if (t->kind == GPUX_KIND_TENSOR) {
      PUT(t->dims, sizeof t->dims[0] * (size_t)(t->ndim > 0 ? t->ndim : 0));
      if (gpux__wg_keyed_input(t, i, extra) && t->data) PUT(t->data, (size_t)gpux_tensor_count(t) * gpux_dtype_size(t->dtype));
    } else if (t->kind == GPUX_KIND_SEQUENCE) {
      PUT(&t->n_items, sizeof t->n_items);
    }
  }
#undef PUT
  *key = k;
  *len = n;
  return 0;
}

/* Device memory the plan will hold: its pools and the read-back buffers of its segments. */
static uint64_t plan_bytes(const wg_plan *p) {
  uint64_t total = 0;
  for (int b = 0; b < p->n_bufs; b++) total += p->buf_size[b];
  for (int s = 0; s < p->n_segs; s++) {
    const wg_seg *sg = &p->segs[s];
    if (!sg->n_downloads) continue;
    uint64_t off = 0;
    for (int k = 0; k < sg->n_downloads; k++) off += (tensor_bytes(&p->vals[sg->downloads[k]].t) + 15) & ~(uint64_t)15;
    total += off ? off : 16;
  }
  return total;
}

/* The whole graph goes to the CPU executor because of node i (which gets `fmt` as its reason). */
static void decline_at(wg_plan *p, int i, const char *fmt, ...) {
  const gpux__node *n = &p->g->nodes[i];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->node_why, sizeof p->node_why, fmt, ap);
  va_end(ap);
  p->declined = 1;
  p->declined_node = i;
  snprintf(p->why, sizeof p->why, "the graph runs on the CPU because of %s '%s'", n->op_type, n->name ? n->name : "");
}

int gpux__wg_plan_create(wg_device *dev, const gpux__graph *g, const gpux__host *host, const unsigned char *supported,
                         const gpux_tensor *inputs, int n_inputs, uint64_t extra, uint64_t budget, gpux_run_stats *stats, uint64_t *want, unsigned char *key, size_t key_len,
                         wg_plan **out) {
  *want = 0;
  *out = NULL;
  wg_plan *p = gpux__calloc(1, sizeof *p);
  if (!p) return GPUX_E_NOMEM;
  p->stats = stats;
  p->host = host;
  p->supported = supported;
  p->key = key;
  p->key_len = key_len;
  p->g = g;
  p->dev = dev;
  p->declined_node = -1;
  p->nv = g->n_values;
  p->vals = gpux__calloc((size_t)p->nv + 1, sizeof *p->vals);
  p->nodes = gpux__calloc((size_t)g->n_nodes + 1, sizeof *p->nodes);
  int rc = 0;
  if (!p->vals || !p->nodes) { rc = GPUX_E_NOMEM; goto fail; }
  for (int v = 0; v < p->nv; v++) {
    p->vals[v].producer = -1;
    p->vals[v].upload_seg = p->vals[v].download_seg = -1;
    if (new_obj(p, 4) != v) { rc = GPUX_E_NOMEM; goto fail; }
    const gpux__value *gv = &g->values[v];
    if (gv->is_const) {
      p->vals[v].t = gv->init; /* borrowed from the model */
      p->vals[v].state = V_CONST;
    }
  }
  for (int i = 0; i < g->n_inputs; i++) {
    int v = g->inputs[i];
    wg_val *val = &p->vals[v];
    if (i >= n_inputs || inputs[i].kind == GPUX_KIND_NONE) { val->state = V_ABSENT; continue; }
    const gpux_tensor *t = &inputs[i];
    if (t->kind != GPUX_KIND_TENSOR) {
      p->declined = 1;
      snprintf(p->why, sizeof p->why, "input '%s' is a sequence: the graph runs on the CPU", g->values[v].name);
      *out = p;
      return 0;
    }
    if (gpux__wg_keyed_input(t, i, extra)) {
      if ((rc = gpux_tensor_copy(&val->t, t))) goto fail;
      val->owns = 1;
      val->keyed = 1;
      val->state = V_CONST;
    } else {
      val->t = *t;
      val->t.data = NULL;
      val->t.owns_data = 0;
      val->t.items = NULL;
      val->state = V_HOST;
    }
  }
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    if (has_subgraph(n)) {
      decline_at(p, i, "control flow (a nested graph)");
      *out = p;
      return 0;
    }
    if ((rc = plan_shapes(p, i))) {
      /* small float model inputs read by this node may decide shapes: ask to key them */
      for (int j = 1; j < n->n_in; j++) {
        int v = n->in[j];
        if (v < 0 || !g->values[v].is_graph_input || p->vals[v].state != V_HOST) continue;
        for (int q = 0; q < g->n_inputs && q < 64 && q < n_inputs; q++)
          if (g->inputs[q] == v && inputs[q].kind == GPUX_KIND_TENSOR && gpux_tensor_count(&inputs[q]) <= 64 &&
              !(extra >> q & 1))
            *want |= (uint64_t)1 << q;
      }
      decline_at(p, i, "output shapes depend on data: %s", gpux_last_error());
      *out = p;
      return 0;
    }
    if ((rc = plan_place(p, i))) goto fail;
  }
  for (int i = 0; i < g->n_nodes; i++) {
    int pl = p->nodes[i].place;
    p->n_cpu += pl == P_CPU;
    p->n_gpu += pl == P_GPU;
    p->n_const += pl == P_CONST;
  }
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    if (p->nodes[i].place != P_CPU) continue;
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0) p->vals[n->in[j]].host_read = 1;
  }
  if ((rc = plan_order(p))) goto fail;
  if ((rc = plan_memory(p))) goto fail;
  p->bytes = plan_bytes(p);
  if (budget && p->bytes > budget) {
    char need[32], have[32];
    rc = gpux__error(GPUX_E_DEVICE, "model needs %s of device memory, the gpu_memory limit allows %s",
                     gpux__format_bytes(need, p->bytes), gpux__format_bytes(have, budget));
    goto fail;
  }
  if ((rc = plan_gpu(p))) goto fail;
  if (getenv("GPUX_WEBGPU_VERBOSE")) {
    uint64_t total = 0;
    for (int b = 0; b < p->n_bufs; b++) total += p->buf_size[b];
    gpux__log(GPUX_LOG_DEBUG, "webgpu: planned %d nodes (%d gpu, %d cpu, %d const), %d dispatches, %d segments, %.1f MiB in %d buffers",
            g->n_nodes, p->n_gpu, p->n_cpu, p->n_const, p->n_disp, p->n_segs, (double)total / 1048576.0, p->n_bufs);
    for (int i = 0; i < g->n_nodes; i++)
      if (p->nodes[i].place == P_CPU)
        gpux__log(GPUX_LOG_DEBUG, "webgpu:   cpu: %s (%s): %s", g->nodes[i].name, g->nodes[i].op_type, p->nodes[i].why);
  }
  *out = p;
  return 0;
fail:
  p->key = NULL; /* the caller keeps the key on failure */
  gpux__wg_plan_free(p);
  return rc;
}

uint64_t gpux__wg_plan_bytes(const wg_plan *p) { return p->bytes; }

const unsigned char *gpux__wg_plan_key_of(const wg_plan *p, size_t *len) {
  *len = p->key_len;
  return p->key;
}

int gpux__wg_plan_declined(const wg_plan *p, const char **why) {
  if (why) *why = p->why;
  return p->declined;
}

int gpux__wg_plan_node_place(const wg_plan *p, int i, const char **why) {
  if (why) *why = NULL;
  if (p && p->declined && i < p->g->n_nodes) { /* i < 0: a node the runtime folded away */
    if (why) *why = i == p->declined_node ? p->node_why : p->why;
    return i == p->declined_node || p->declined_node < 0 ? GPUX__PLACE_CPU : GPUX__PLACE_CPU_GRAPH;
  }
  if (!p || i < 0 || i >= p->g->n_nodes) return 0;
  switch (p->nodes[i].place) {
  case P_GPU: return GPUX__PLACE_BACKEND;
  case P_CONST: return GPUX__PLACE_CONST;
  case P_CPU:
    if (why) *why = p->nodes[i].why;
    return GPUX__PLACE_CPU;
  }
  return 0;
}

/* ---- running ---- */

/* A node placed on the CPU: the runtime runs its kernel on host data. */
static int run_host_node(wg_plan *p, int i, gpux_tensor *hv) {
  const gpux__node *n = &p->g->nodes[i];
  const gpux_tensor *in[64];
  gpux_tensor *out[16];
  for (int j = 0; j < n->n_in; j++) {
    int v = n->in[j];
    if (v < 0 || p->vals[v].state == V_ABSENT) in[j] = NULL;
    else if (p->vals[v].state == V_CONST) in[j] = &p->vals[v].t;
    else in[j] = &hv[v];
  }
  for (int j = 0; j < n->n_out; j++) out[j] = n->out[j] >= 0 ? &hv[n->out[j]] : NULL;
  return p->host->run_node(p->host->rt, n, in, out, 0);
}

static int upload_value(wg_plan *p, int v, const gpux_tensor *t) {
  wg_device *d = p->dev;
  const wg_obj *o = &p->objs[v];
  if (t->kind != GPUX_KIND_TENSOR || t->dtype != p->vals[v].t.dtype || t->ndim != p->vals[v].t.ndim)
    return gpux__error(GPUX_E_INTERNAL, "WebGPU: value '%s' changed type between planning and running", p->g->values[v].name);
  if (!gpux_tensor_count(t)) return 0;
  void *img;
  size_t bytes;
  int owned, rc;
  if ((rc = gpux__wg_gpu_image(t, o->gpu_type, &img, &bytes, &owned))) return rc;
  d->f.wgpuQueueWriteBuffer(d->queue, p->bufs[o->buf], o->off, img, bytes);
  if (owned) free(img);
  p->stats->uploads++, p->stats->upload_bytes += bytes;
  return 0;
}

/* GPUX_WEBGPU_PROFILE: each node submitted and waited for alone, times printed per op type. */
static void profile_segment(wg_plan *p, const wg_seg *sg) {
  wg_device *d = p->dev;
  for (int s = sg->first_step; s <= sg->last_step; s++) {
    const wg_step *st = &p->steps[s];
    if (!st->n_disp) continue;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    WGPUCommandEncoder enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL);
    WGPUComputePassEncoder pass = d->f.wgpuCommandEncoderBeginComputePass(enc, NULL);
    for (int q = 0; q < st->n_disp; q++) {
      const wg_disp *ds = &p->disp[st->first_disp + q];
      d->f.wgpuComputePassEncoderSetPipeline(pass, ds->pipe->pipeline);
      d->f.wgpuComputePassEncoderSetBindGroup(pass, 0, ds->bg, 0, NULL);
      d->f.wgpuComputePassEncoderDispatchWorkgroups(pass, ds->x, ds->y, ds->z);
    }
    d->f.wgpuComputePassEncoderEnd(pass);
    d->f.wgpuComputePassEncoderRelease(pass);
    WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(enc, NULL);
    d->f.wgpuCommandEncoderRelease(enc);
    d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
    d->f.wgpuCommandBufferRelease(cmd);
    gpux__wg_queue_idle(d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const gpux__node *n = &p->g->nodes[st->node];
    const wg_disp *d0 = &p->disp[st->first_disp];
    gpux__log(GPUX_LOG_DEBUG, "webgpu: %8.3f ms  %-20s %-30s %d dispatch%s, first %ux%ux%u",
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6, n->op_type, n->name,
            st->n_disp, st->n_disp == 1 ? "" : "es", d0->x, d0->y, d0->z);
  }
}

/* One run's bindings: host values, device values bound to model inputs, and where results go. */
typedef struct wg_run {
  gpux_tensor *hv;               /* [nv] host data */
  const gpux_device_tensor **dev_in;     /* [nv] the device value bound to a model input */
  unsigned char *want_host;      /* [nv] an output the caller wants on the host */
  unsigned char *want_dev;       /* [nv] an output the caller keeps on the device */
  gpux_device_tensor **dev_out;          /* [nv] kept results, copied out in their segment */
  gpux_run_stats *stats;
} wg_run;

/* Device values bound to inputs that a segment reads: copied into the plan's storage on the GPU. */
static int copy_bound_inputs(wg_plan *p, const wg_seg *sg, const wg_run *r) {
  wg_device *d = p->dev;
  WGPUCommandEncoder enc = NULL;
  for (int u = 0; u < sg->n_uploads; u++) {
    int v = sg->uploads[u];
    const gpux_device_tensor *dv = r->dev_in[v];
    if (!dv) continue;
    uint64_t bytes = tensor_bytes(&p->vals[v].t);
    if (dv->bytes != bytes || gpux__wg_held_type(dv->t.dtype) != p->objs[v].gpu_type)
      return gpux__error(GPUX_E_INTERNAL, "WebGPU: the value bound to '%s' does not match the plan", p->g->values[v].name);
    if (!bytes) continue;
    if (!enc && !(enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL)))
      return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a command encoder");
    const wg_obj *o = &p->objs[v];
    d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, dv->buf, 0, p->bufs[o->buf], o->off, bytes);
  }
  if (!enc) return 0;
  WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(enc, NULL);
  d->f.wgpuCommandEncoderRelease(enc);
  if (!cmd) return gpux__error(GPUX_E_DEVICE, "WebGPU: encoding a copy failed");
  d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
  d->f.wgpuCommandBufferRelease(cmd);
  return 0;
}

static int run_segment(wg_plan *p, const wg_seg *sg, wg_run *r) {
  wg_device *d = p->dev;
  gpux_tensor *hv = r->hv;
  int rc;
  for (int u = 0; u < sg->n_uploads; u++) {
    int v = sg->uploads[u];
    if (r->dev_in[v]) continue;
    if ((rc = upload_value(p, v, &hv[v]))) return rc;
  }
  if ((rc = copy_bound_inputs(p, sg, r))) return rc;
  if (getenv("GPUX_WEBGPU_PROFILE")) profile_segment(p, sg);
  WGPUCommandEncoder enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL);
  if (!enc) return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a command encoder");
  WGPUComputePassEncoder pass = d->f.wgpuCommandEncoderBeginComputePass(enc, NULL);
  /* the hot loop: every dispatch of the segment into one pass */
  for (int s = sg->first_step; s <= sg->last_step; s++) {
    const wg_step *st = &p->steps[s];
    for (int q = 0; q < st->n_disp; q++) {
      const wg_disp *ds = &p->disp[st->first_disp + q];
      d->f.wgpuComputePassEncoderSetPipeline(pass, ds->pipe->pipeline);
      d->f.wgpuComputePassEncoderSetBindGroup(pass, 0, ds->bg, 0, NULL);
      d->f.wgpuComputePassEncoderDispatchWorkgroups(pass, ds->x, ds->y, ds->z);
    }
  }
  d->f.wgpuComputePassEncoderEnd(pass);
  d->f.wgpuComputePassEncoderRelease(pass);
  /* results: kept ones copied into their own buffers on the GPU, the rest staged for the host */
  int n_staged = 0;
  for (int k = 0; k < sg->n_downloads; k++) {
    int v = sg->downloads[k];
    uint64_t bytes = tensor_bytes(&p->vals[v].t);
    const wg_obj *o = &p->objs[v];
    if (r->want_dev[v] && !r->dev_out[v]) {
      if ((rc = gpux__wg_value_new(d, &p->vals[v].t, &r->dev_out[v]))) {
        d->f.wgpuCommandEncoderRelease(enc);
        return rc;
      }
      if (bytes) d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, p->bufs[o->buf], o->off, r->dev_out[v]->buf, 0, bytes);
    }
    if (!bytes || !(r->want_host[v] || p->vals[v].host_read)) continue; /* empty: made on the host */
    d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, p->bufs[o->buf], o->off, sg->staging, sg->dl_off[k], (bytes + 3) & ~(uint64_t)3);
    n_staged++;
  }
  WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(enc, NULL);
  d->f.wgpuCommandEncoderRelease(enc);
  if (!cmd) return gpux__wg_check(d, "encoding") ? GPUX_E_DEVICE : gpux__error(GPUX_E_DEVICE, "WebGPU: encoding failed");
  d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
  d->f.wgpuCommandBufferRelease(cmd);
  if ((rc = gpux__wg_check(d, "running the model"))) return rc;
  for (int k = 0; k < sg->n_downloads && !rc; k++) { /* empty results are made on the host */
    int v = sg->downloads[k];
    const gpux_tensor *t = &p->vals[v].t;
    if (tensor_bytes(t) || !(r->want_host[v] || p->vals[v].host_read)) continue;
    gpux_tensor_free(&hv[v]);
    rc = gpux_tensor_init(&hv[v], t->dtype, t->ndim, t->dims);
  }
  if (rc || !n_staged) return rc;
  const void *mapped = NULL;
  if ((rc = gpux__wg_map_read(d, sg->staging, (size_t)sg->staging_bytes, &mapped))) return rc;
  for (int k = 0; k < sg->n_downloads && !rc; k++) {
    int v = sg->downloads[k];
    const gpux_tensor *t = &p->vals[v].t;
    uint64_t bytes = tensor_bytes(t);
    if (!bytes || !(r->want_host[v] || p->vals[v].host_read)) continue;
    gpux_tensor_free(&hv[v]);
    if ((rc = gpux_tensor_init(&hv[v], t->dtype, t->ndim, t->dims))) break;
    r->stats->downloads++, r->stats->download_bytes += bytes;
    const void *src = (const char *)mapped + sg->dl_off[k];
    if (t->dtype == GPUX_DT_FLOAT) {
      memcpy(hv[v].data, src, (size_t)bytes);
    } else {
      int64_t cnt = gpux_tensor_count(t);
      for (int64_t e = 0; e < cnt; e++) gpux__store_i64(t->dtype, hv[v].data, e, ((const int32_t *)src)[e]);
    }
  }
  d->f.wgpuBufferUnmap(sg->staging);
  return rc;
}

/* A kept output that no segment copied out: a constant, a CPU node's result, a bound input
 * passed through, an absent optional, or the second listing of one value. */
static int keep_output(wg_plan *p, const gpux__io *io, wg_run *r, int o, gpux_device_tensor **out) {
  const gpux__graph *g = p->g;
  int v = g->outputs[o];
  const wg_val *val = &p->vals[v];
  *out = NULL;
  for (int q = 0; q < o; q++)
    if (g->outputs[q] == v && io->keep[q] && io->out_values[q]) {
      const gpux_device_tensor *first = io->out_values[q];
      if (first->backend) return gpux__wg_value_copy(p->dev, first->buf, 0, &first->t, out);
      break;
    }
  if (r->dev_in[v]) return gpux__wg_value_copy(p->dev, r->dev_in[v]->buf, 0, &r->dev_in[v]->t, out);
  gpux_tensor host = {0};
  const gpux_tensor *src = val->state == V_CONST ? &val->t : &r->hv[v];
  if (val->state == V_ABSENT) host.kind = GPUX_KIND_NONE;
  else {
    int rc = gpux__wg_value_from_host(p->dev, src, out, r->stats);
    if (rc != GPUX__DECLINED) return rc;
    if ((rc = gpux_tensor_copy(&host, src))) return rc;
  }
  /* data the device does not hold stays a host value */
  gpux_device_tensor *hvv = gpux__calloc(1, sizeof *hvv);
  if (!hvv) {
    gpux_tensor_free(&host);
    return GPUX_E_NOMEM;
  }
  hvv->t = host;
  *out = hvv;
  return 0;
}

static void drop_value(gpux_device_tensor *v) {
  if (!v) return;
  if (v->backend) gpux__wg_value_free(v, 1);
  else {
    gpux_tensor_free(&v->t);
    free(v);
  }
}

int gpux__wg_plan_run(wg_plan *p, const gpux__io *io) {
  const gpux__graph *g = p->g;
  int rc = 0, nv = p->nv, n_outputs = io->n_outputs;
  wg_run r = {.stats = io->stats};
  p->stats = io->stats;
  r.hv = gpux__calloc((size_t)nv + 1, sizeof *r.hv);
  r.dev_in = gpux__calloc((size_t)nv + 1, sizeof *r.dev_in);
  r.want_host = gpux__calloc((size_t)nv + 1, 1);
  r.want_dev = gpux__calloc((size_t)nv + 1, 1);
  r.dev_out = gpux__calloc((size_t)nv + 1, sizeof *r.dev_out);
  unsigned char *borrowed = gpux__calloc((size_t)nv + 1, 1);
  gpux_tensor *hv = r.hv;
  if (!r.hv || !r.dev_in || !r.want_host || !r.want_dev || !r.dev_out || !borrowed) { rc = GPUX_E_NOMEM; goto done; }
  for (int i = 0; i < g->n_inputs && i < io->n_inputs; i++) {
    int v = g->inputs[i];
    hv[v] = io->inputs[i];
    borrowed[v] = 1;
    if (!io->in_values || !io->in_values[i]) continue;
    r.dev_in[v] = io->in_values[i];
    if (p->vals[v].host_read) { /* a node on the CPU reads it: one copy to the host */
      borrowed[v] = 0;
      memset(&hv[v], 0, sizeof hv[v]);
      if ((rc = gpux__wg_value_read(r.dev_in[v], &hv[v], 1))) goto done;
      r.stats->downloads++, r.stats->download_bytes += r.dev_in[v]->bytes;
    }
  }
  for (int o = 0; o < n_outputs && o < g->n_outputs; o++) {
    if (io->keep && io->keep[o]) r.want_dev[g->outputs[o]] = 1;
    else r.want_host[g->outputs[o]] = 1;
  }
  for (int s = 0; s < p->n_steps && !rc; s++) {
    const wg_step *st = &p->steps[s];
    if (!st->gpu) {
      rc = run_host_node(p, st->node, hv);
      continue;
    }
    const wg_seg *sg = &p->segs[st->seg];
    if (s != sg->first_step) continue;
    rc = run_segment(p, sg, &r);
    s = sg->last_step;
  }
  for (int o = 0; o < n_outputs && o < g->n_outputs && !rc; o++) {
    int v = g->outputs[o];
    const wg_val *val = &p->vals[v];
    gpux_tensor *out = &io->outputs[o];
    if (io->keep && io->keep[o]) {
      if (r.dev_out[v]) {
        io->out_values[o] = r.dev_out[v];
        r.dev_out[v] = NULL;
      } else {
        rc = keep_output(p, io, &r, o, &io->out_values[o]);
      }
    } else if (val->state == V_CONST) rc = gpux_tensor_copy(out, &val->t);
    else if (val->state == V_ABSENT) out->kind = GPUX_KIND_NONE;
    else if (borrowed[v] && r.dev_in[v]) {
      rc = gpux__wg_value_read(r.dev_in[v], out, 1);
      if (!rc) r.stats->downloads++, r.stats->download_bytes += r.dev_in[v]->bytes;
    } else if (borrowed[v]) rc = gpux_tensor_copy(out, &hv[v]);
    else {
      int dup = 0; /* the same value may be listed twice as an output */
      for (int q = 0; q < o; q++) dup |= g->outputs[q] == v && !(io->keep && io->keep[q]);
      if (dup) rc = gpux_tensor_copy(out, &hv[v]);
      else {
        *out = hv[v];
        memset(&hv[v], 0, sizeof hv[v]);
      }
    }
  }
  p->runs++;
done:
  if (rc && io->out_values)
    for (int o = 0; o < n_outputs; o++) {
      drop_value(io->out_values[o]);
      io->out_values[o] = NULL;
    }
  for (int v = 0; v < nv; v++) {
    if (hv && borrowed && !borrowed[v]) gpux_tensor_free(&hv[v]);
    if (r.dev_out) drop_value(r.dev_out[v]);
  }
  free(r.hv);
  free(r.dev_in);
  free(r.want_host);
  free(r.want_dev);
  free(r.dev_out);
  free(borrowed);
  return rc;
}
