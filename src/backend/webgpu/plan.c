/* plan.c — the WebGPU executor. A graph is planned once per input signature: the inputs'
 * shapes, and the values of the few small inputs found to decide shapes or a kernel's form
 * (gpux__wg_keyed_input; token ids and other data never key a plan):
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
#include "core/profile.h"
#include <stdio.h>
#include <time.h>

#define WG_MAX_BIND 16
#define WG_TIME_INF 0x7fffffff
#define WG_MAX_ITER_PLANS 64

enum { V_ABSENT = 0, V_CONST, V_HOST, V_GPU };
enum { P_NONE = 0, P_GPU, P_CPU, P_CONST, P_CTRL }; /* CTRL: If/Loop/Scan, bodies planned on their own */

typedef struct wg_obj {          /* a piece of GPU storage: a value, or a node's scratch */
  uint64_t bytes;
  int first, last;               /* liveness in plan time units; const: [0, INF] */
  int root;                      /* alias root (objects share the root's storage) */
  int buf;                       /* pool buffer index, -1 until placed */
  uint64_t off;
  int gpu_type;                  /* WG_F32 / WG_I32 (how the data is held) */
  int used;                      /* bound by some dispatch or aliased */
  void *init;                    /* a kernel's constant table (gpux__wg_const): written once */
  int shared;                    /* an initializer in the session's buffers (consts.c), not the pools */
  uint64_t cap;                  /* bytes its place holds (a root's; aliases share it) */
  int grow;                      /* its size changed from the plan this one derives from: placed with
                                    room to grow, and bound with all of it */
} wg_obj;

typedef struct wg_val {
  gpux_tensor t;                 /* dtype/shape; data for consts */
  int state;                     /* V_* */
  int owns;                      /* t.data owned by the plan */
  int gpu_used;                  /* some GPU node reads it */
  int gpu_type;
  int upload_seg, download_seg;  /* -1 when none; upload_seg -2: written by a control-flow step */
  int producer;                  /* node index, -1 */
  int keyed;                     /* a model input whose values are part of the key */
  int host_read;                 /* a node placed on the CPU reads it */
  int fixed;                     /* a constant that no input decides: an initializer, or folded
                                    from initializers only (the same in every plan of the graph) */
  int wide;                      /* feeds a logarithm: held f32 where floats are f16 (mark_wide) */
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
  uint32_t *params;              /* sizes the pipeline reads from a uniform array (reuse.c), or NULL */
  int n_params;                  /* (bound after the storage, a multiple of 4 values) */
  uint64_t param_off;            /* where they are in the plan's parameter buffer */
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
  int *flags, n_flags;           /* overflow flags of the segment's nodes (indices in plan->flags) */
  uint64_t flags_off;            /* where they are staged, after the downloads */
  WGPUBuffer staging;
  uint64_t staging_bytes;
  uint64_t staging_cap;          /* the buffer's size (room to grow in a derived plan) */
} wg_seg;

struct wg_ctrl;

typedef struct wg_nodeinfo {
  int place;                     /* P_* */
  struct wg_ctrl *ctrl;          /* P_CTRL: the bodies' plans */
  char why[200];
  int first_disp, n_disp;        /* in plan->disp */
  int *objs, n_objs;             /* storage the node's dispatches touch (values and scratch) */
  /* what its kernel made besides the dispatches, so that a plan derived from this one can take
     the node as it is when its inputs and outputs are the same (replay_node) */
  int scratch0, n_scratch;       /* its scratch objects, scratch0 .. scratch0 + n_scratch - 1 */
  int n_alias;
  signed char alias_out[16], alias_in[16];
  int flag_scratch;              /* 1 + the scratch id of its overflow flag, 0 if none */
  int half_disp;
  signed char in_held[64];       /* how each input was held when the kernel ran: its element type
                                    when an earlier node had bound it, -1 when none had, -2 absent */
} wg_nodeinfo;

struct wg_plan {
  unsigned char *key;
  size_t key_len;
  const gpux__graph *g;
  const int *in_ids;             /* values bound to the run's inputs, in order: the graph's inputs;
                                    for a body, its inputs and then the values it captures */
  int n_in_ids;
  int *own_ids;                  /* in_ids when the plan made them */
  int body;                      /* a control-flow body: an input given with data is a constant */
  uint64_t *want;                /* while planning the main graph: model inputs to key and plan again */
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
  int n_pool;                    /* of which the plan's own pools (the first), before the shared ones */
  WGPUBuffer params;             /* the dispatches' sizes, for pipelines reused across shapes */
  unsigned char *param_img;      /* what `params` holds (param_bytes), so that a derived plan writes
                                    the blocks that changed in one write */
  uint64_t param_bytes;
  void *run_mem;                 /* a run's per-value arrays (gpux__wg_plan_run), kept between runs and
                                    handed to the plan derived from this one */
  unsigned char *borrowed;       /* [n_bufs] the buffer is the session's (initializers), not the plan's */
  wg_consts *consts;             /* the session's initializers, or NULL: in the plan's pools */
  int declined;                  /* the graph runs on the CPU executor */
  char why[300];                 /* why, for every node (naming the node that decided it) */
  int declined_node;             /* the node that decided it, -1 */
  char node_why[300];            /* that node's own reason */
  int n_cpu, n_gpu, n_const;
  /* overflow flags: a word a node's kernel sets (to its node index + 1) when an exact integer
     result does not fit the 32 bits the GPU holds it in; such a run is redone on the CPU */
  struct { int obj, node; } *flags;
  int n_flags;
  int flag_noted;                /* the note about it was logged */
  uint64_t runs;
  uint64_t bytes;                /* device memory the plan holds: pools and read-back buffers */
  int half;                      /* WG_HALF_*: which float values are held as f16 (half.c) */
  wg_tuning *tuning;             /* the session's GEMM configurations (ops-linalg.c), or NULL */
  int half_disp;                 /* dispatches that read or write f16-held values */
  /* profiling with timestamp-query (made on first use): two timestamps per GPU node of the
     largest segment, resolved into ts_resolve and read back from ts_read */
  WGPUQuerySet qs;
  WGPUBuffer ts_resolve, ts_read;
  uint32_t ts_count;
  gpux_run_stats *stats;         /* of the run being planned or run (transfers are counted) */
  const gpux__host *host;        /* the runtime: shape inference and CPU nodes */
  const unsigned char *supported; /* [n_nodes] nodes the runtime placed here, or NULL */
  /* derivation: a plan for new input shapes made from the last one (a decoder's next step) */
  struct wg_plan *prev;          /* while planning: the previous plan of the graph, or NULL */
  int hollow;                    /* this plan gave its GPU objects to one derived from it */
  int n_replayed;                /* nodes taken from prev as they were (inputs and outputs the same) */
  int adopted;                   /* the GPU objects are prev's: same dispatches, sizes that fit */
  double shape_ms;               /* planning time in shape inference (GPUX_WEBGPU_VERBOSE) */
};
typedef struct wg_plan wg_plan;

enum { CTRL_IF = 1, CTRL_LOOP, CTRL_SCAN };

/* A control-flow node: each body is a plan of its own whose inputs are bound, per run, to views
 * of this plan's storage (values stay on the device), and whose results are copied back into it.
 * Only a condition or trip count is read to the host. */
typedef struct wg_ctrl {
  int kind;                      /* CTRL_* */
  wg_plan *sub[2];               /* If: then, else (NULL: the branch planning did not take);
                                    Loop, Scan: the body in sub[0] */
  int fixed;                     /* If: the branch chosen while planning (0 then, 1 else), -1: read
                                    the condition each run */
  int *cap, n_cap;               /* this plan's values that the bodies capture */
  int n_state, n_scan_out;       /* Loop: carried values; Scan: state values; scan outputs */
  int64_t iters;                 /* Scan; Loop with scan outputs: the iteration count */
  wg_plan **per_iter;            /* Loop whose body's shapes follow the iteration number (a known
                                    trip count of at most WG_MAX_ITER_PLANS): a plan per iteration */
  int n_per_iter;
  unsigned char *rev_in, *rev_out; /* Scan: scan inputs/outputs walked in reverse */
  int *uploads, n_uploads;       /* host values the bodies read, written to the device by this step */
} wg_ctrl;

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
  int flag_scratch;              /* 1 + the scratch id of the overflow flag, 0 if none */
  int alias_out[16], alias_in[16];
  int n_alias;
  int narrow_disp[16];           /* 1 + the dispatch that rounds output j itself, 0 if none */
  int declined;
  char why[200];
  int oom;
  uint64_t need;                 /* inputs whose values the kernel needs when planning */
  int half_disp;                 /* dispatches that use f16-held values */
};

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
int gpux__wg_node_index(wg_build *b) { return b->node; }
int gpux__wg_n_out(wg_build *b) { return b->n_out; }
const wg_device *gpux__wg_dev(wg_build *b) { return b->p->dev; }
wg_tuning *gpux__wg_tuning(wg_build *b) { return b->p->tuning; }

int gpux__wg_is_const(wg_build *b, int i) {
  const gpux__node *n = gpux__wg_node(b);
  if (i < 0 || i >= n->n_in || n->in[i] < 0) return 0;
  return b->p->vals[n->in[i]].state == V_CONST;
}

int gpux__wg_need_const(wg_build *b, int i) {
  if (gpux__wg_is_const(b, i)) return 0;
  if (i >= 0 && i < 64) b->need |= (uint64_t)1 << i;
  return gpux__wg_decline(b, "input %d is not known when planning", i);
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

/* How this plan holds values of dtype: WG_F32, WG_I32, WG_F16 (half.c), -1 when it does not. */
static int held_of(const wg_plan *p, int dtype) {
  return p->half & WG_HALF_EMULATED ? gpux__wg_held_type(dtype) : gpux__wg_held_as(dtype, p->half);
}

/* Whether values of dtype are f16 values in this plan (stored as f16, or rounded so when emulated). */
static int half_values(const wg_plan *p, int dtype) { return gpux__wg_held_as(dtype, p->half & ~WG_HALF_EMULATED) == WG_F16; }

/* Whether value v stays f32 in a plan that holds float32 values as f16: a float32 constant of
 * rank 0 or 1 (a bias, a per-channel scale, a scalar). They are few bytes, and they are where
 * float16's rounding costs most: a convolution's bias after BatchNorm is folded into it can be
 * large against a sum that nearly cancels it, so its rounding error (|bias| * 2^-11) becomes the
 * output's. On PaddleOCR's detector, biases rounded to float16 alone take the fp16 error from
 * 1.9e-3 to 7.8e-3 (relative L2), and with weights, input and activations rounded too to 1.2e-2,
 * past the fp16 gate; with them in f32 it is 2.2e-3. The values marked wide (mark_wide) stay f32
 * too: their range is float32's. */
static int keeps_f32(const wg_plan *p, int v) {
  const wg_val *val = &p->vals[v];
  return (p->half & ~WG_HALF_EMULATED) == WG_HALF_ALL && val->t.dtype == GPUX_DT_FLOAT &&
         ((val->state == V_CONST && val->t.ndim < 2) || val->wide);
}

/* Marks the values a Log's argument is computed from by Add, Sub, Mul, Div and Neg (the argument
 * and the values before it down to the first other op) to be held f32 where floats are f16
 * (keeps_f32). A logarithm of a scaled value compresses a range wider than float16's: Silero VAD
 * takes log(|STFT| * 2^20 + 1), whose argument reaches 10^8, past 65504; in f16 the infinities
 * became NaN and then zeros after a ReLU, reaching no output as inf/NaN, so the fp32 fallback did
 * not see them (relative L2 error 0.59 in fp16, 1e-3 with these values in f32). The logarithm's
 * result is small again and is held as usual. A Log of anything else (a Clip's floor, a softmax)
 * marks nothing. */
static void mark_wide(wg_plan *p) {
  static const char *const through[] = {"Add", "Sub", "Mul", "Div", "Neg"};
  const gpux__graph *g = p->g;
  size_t most = 1; /* pushes: each Log once, and each marked value's producer's inputs once */
  for (int i = 0; i < g->n_nodes; i++) most += 1 + (size_t)g->nodes[i].n_in;
  int *stack = gpux__calloc(most, sizeof *stack), top = 0;
  if (!stack) return; /* (no marks: only a rounding choice) */
  for (int i = 0; i < g->n_nodes; i++)
    if (!strcmp(g->nodes[i].op_type, "Log") && g->nodes[i].n_in > 0 && g->nodes[i].in[0] >= 0) stack[top++] = g->nodes[i].in[0];
  while (top) {
    int v = stack[--top];
    if (p->vals[v].wide || g->values[v].producer < 0) continue;
    const gpux__node *n = &g->nodes[g->values[v].producer];
    int go = 0;
    for (size_t k = 0; k < GPUX__ARRAY_LEN(through) && !go; k++) go = !strcmp(n->op_type, through[k]);
    if (!go) continue;
    p->vals[v].wide = 1;
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0 && !p->vals[n->in[j]].wide) stack[top++] = n->in[j];
  }
  free(stack);
}

/* How this plan holds value v (held_of, but see keeps_f32), whether it holds f16 values, and its bytes. */
static int val_held(const wg_plan *p, int v) { return keeps_f32(p, v) ? WG_F32 : held_of(p, p->vals[v].t.dtype); }
static int val_half(const wg_plan *p, int v) { return !keeps_f32(p, v) && half_values(p, p->vals[v].t.dtype); }
static uint64_t val_bytes(const wg_plan *p, int v) { return gpux__wg_held_bytes(gpux_tensor_count(&p->vals[v].t), val_held(p, v)); }

/* The form of value v's host data for gpux__wg_gpu_image: as held, except that an emulated plan
 * (f32 storage standing in for f16) rounds the float32 data of its f16 values (weights, inputs)
 * to float16 values, as f16 storage does, so the emulation gives f16 storage's numbers. */
static int image_form(const wg_plan *p, int v) {
  int held = p->objs[v].gpu_type;
  return (p->half & WG_HALF_EMULATED) && held == WG_F32 && val_half(p, v) ? WG_F32_R16 : held;
}

/* The bytes of a node's output t as this plan holds its dtype (outputs of device nodes are not constants). */
static uint64_t tensor_bytes(const wg_plan *p, const gpux_tensor *t) {
  return gpux__wg_held_bytes(gpux_tensor_count(t), held_of(p, t->dtype));
}

/* Whether binding k of the dispatch being built holds f16 values (see half_values). */
static int bound_half(const wg_build *b, int k) {
  int o = b->cur[k].obj;
  return o >= 0 && b->cur[k].type != WG_I32 && val_half(b->p, o);
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
  if (type == WG_VEC4 && obj >= 0 && val_half(b->p, obj))
    return gpux__wg_decline(b, "a vec4 binding of a value held as f16");
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
  } else if (!gpux__wg_is_f32(t->dtype)) {
    return gpux__wg_decline(b, "input %d is %s (the GPU path takes float32, float16 and bfloat16)", i, gpux_dtype_name(t->dtype));
  }
  int obj_type = type == WG_I32 ? WG_I32 : val_held(b->p, v);
  if (b->p->objs[v].used && b->p->objs[v].gpu_type != obj_type)
    return gpux__wg_decline(b, "input %d is used with two element types", i);
  return add_binding(b, v, type, val_bytes(b->p, v));
}

int gpux__wg_bind_out(wg_build *b, int i, int type) {
  if (b->declined) return GPUX_E_UNSUPPORTED;
  const gpux__node *n = gpux__wg_node(b);
  if (i < 0 || i >= n->n_out || n->out[i] < 0 || !b->out[i]) return gpux__wg_decline(b, "output %d is not used", i);
  const gpux_tensor *t = b->out[i];
  if (t->kind != GPUX_KIND_TENSOR || (type == WG_I32 ? !int_like(t->dtype) : !gpux__wg_is_f32(t->dtype)))
    return gpux__wg_decline(b, "output %d is %s (the GPU path writes %s)", i, gpux_dtype_name(t->dtype),
                            type == WG_I32 ? "integers as i32" : "floats as f32");
  uint64_t bytes = keeps_f32(b->p, n->out[i]) ? gpux__wg_held_bytes(gpux_tensor_count(t), WG_F32) : tensor_bytes(b->p, t);
  return add_binding(b, n->out[i], type, bytes);
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

int gpux__wg_overflow_flag(wg_build *b) {
  if (b->declined) return GPUX_E_UNSUPPORTED;
  if (!b->flag_scratch) {
    static const int32_t zero = 0;
    int id = gpux__wg_const(b, &zero, 4);
    if (id < 0) return id;
    b->flag_scratch = id + 1;
  }
  return gpux__wg_bind_scratch(b, b->flag_scratch - 1, WG_I32);
}

void gpux__wg_decls(wg_build *b, wg_str *s) {
  static const char *const types[] = {"f32", "i32", "vec4<f32>"};
  for (int k = 0; k < b->n_cur; k++)
    gpux__wg_cat(s, "@group(0) @binding(%d) var<storage, read_write> b%d: array<%s>;\n", k, k,
                 bound_half(b, k) && !(b->p->half & WG_HALF_EMULATED) ? "f16" : types[b->cur[k].type]);
}

void gpux__wg_touch_all(wg_build *b, wg_str *s) {
  for (int k = 0; k < b->n_cur; k++) gpux__wg_cat(s, "  _ = arrayLength(&b%d);\n", k);
}

int gpux__wg_rebind_last(wg_build *b) {
  if (b->declined) return GPUX_E_UNSUPPORTED;
  if (!b->n_disp) return gpux__wg_decline(b, "no dispatch to rebind");
  const wg_disp *d = &b->disp[b->n_disp - 1];
  memcpy(b->cur, d->bind, (size_t)d->n_bind * sizeof *b->cur);
  b->n_cur = d->n_bind;
  return 0;
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
  unsigned char half[WG_MAX_BIND];
  int any_half = 0;
  for (int k = 0; k < n_cur; k++) any_half |= half[k] = (unsigned char)bound_half(b, k);
  if (any_half) { /* f16 in memory, f32 in the kernel (half.c) */
    wg_str full = {0};
    gpux__wg_half_rewrite(wgsl->s, half, n_cur, (b->p->half & WG_HALF_EMULATED) != 0, &full);
    if (full.oom) { gpux__wg_str_free(&full); b->oom = 1; return gpux__wg_decline(b, "out of memory"); }
    gpux__wg_str_free(wgsl);
    *wgsl = full;
    b->half_disp++;
  }
  wg_pipeline *pipe = NULL;
  uint32_t *params = NULL;
  int n_params = 0;
  int rc = gpux__wg_pipeline_reuse(b->p->dev, wgsl->s, label, n_cur, &pipe, &params, &n_params);
  if (rc) {
    if (rc == GPUX_E_NOMEM) b->oom = 1;
    return gpux__wg_decline(b, "%s", gpux_last_error());
  }
  if (b->n_disp == b->cap_disp) {
    int cap = b->cap_disp ? b->cap_disp * 2 : 4;
    wg_disp *nd = realloc(b->disp, (size_t)cap * sizeof *nd);
    if (!nd) { free(params); b->oom = 1; return gpux__wg_decline(b, "out of memory"); }
    b->disp = nd;
    b->cap_disp = cap;
  }
  wg_disp *d = &b->disp[b->n_disp++];
  memset(d, 0, sizeof *d);
  d->pipe = pipe;
  d->n_bind = n_cur;
  memcpy(d->bind, b->cur, (size_t)n_cur * sizeof *d->bind);
  d->x = x, d->y = y, d->z = z;
  d->params = params;
  d->n_params = n_params;
  return 0;
}

int gpux__wg_alias(wg_build *b, int out, int in) {
  if (b->declined) return GPUX_E_UNSUPPORTED;
  const gpux__node *n = gpux__wg_node(b);
  if (in < 0 || in >= n->n_in || n->in[in] < 0 || !b->in[in]) return gpux__wg_decline(b, "input %d is missing", in);
  if (out < 0 || out >= n->n_out || n->out[out] < 0) return 0; /* an unused output */
  const gpux_tensor *ti = b->in[in], *to = b->out[out];
  int widen = to->dtype == GPUX_DT_FLOAT && gpux__wg_is_f32(ti->dtype); /* float16/bfloat16 values are float32 values */
  if (ti->kind != GPUX_KIND_TENSOR || (ti->dtype != to->dtype && !widen) || gpux__wg_held_type(ti->dtype) < 0)
    return gpux__wg_decline(b, "%s data (the GPU path holds floats and integers)", gpux_dtype_name(ti->dtype));
  int want = val_held(b->p, n->in[in]);
  if (want != held_of(b->p, to->dtype)) return gpux__wg_decline(b, "%s and %s are held differently", gpux_dtype_name(ti->dtype), gpux_dtype_name(to->dtype));
  if (b->p->objs[n->in[in]].used && b->p->objs[n->in[in]].gpu_type != want)
    return gpux__wg_decline(b, "input %d is used with two element types", in);
  if (gpux_tensor_count(ti) != gpux_tensor_count(to)) return gpux__wg_decline(b, "alias of a different size");
  if (b->n_alias == (int)GPUX__ARRAY_LEN(b->alias_out)) return gpux__wg_decline(b, "too many aliases");
  b->alias_out[b->n_alias] = out;
  b->alias_in[b->n_alias] = in;
  b->n_alias++;
  return 0;
}

const char *gpux__wg_narrow_in_kernel(wg_build *b, int out) {
  if (out < 0 || out >= b->n_out || !gpux__wg_narrow_needed(gpux__wg_node(b), b->in, b->n_in, b->out[out])) return NULL;
  b->narrow_disp[out] = b->n_disp + 1;
  return b->out[out]->dtype == GPUX_DT_FLOAT16 ? "gx_f16" : "gx_bf16";
}

/* Rounds float16/bfloat16 output `out` in place (narrow.c), after the kernel's dispatches. */
static int narrow_pass(wg_build *b, int out) {
  int64_t total = gpux_tensor_count(b->out[out]);
  if (total > 0x7fffffffLL) return gpux__wg_decline(b, "more than 2^31 elements");
  int by = gpux__wg_bind_out(b, out, WG_F32);
  if (by < 0) return GPUX_E_UNSUPPORTED;
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(total + 255) / 256, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  gpux__wg_narrow_main(&s, b->out[out]->dtype, by, gx, (uint64_t)total);
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
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
  if (p->params) { d->f.wgpuBufferDestroy(p->params); d->f.wgpuBufferRelease(p->params); }
  free(p->param_img);
  p->param_img = NULL;
  for (int i = 0; i < p->n_bufs; i++)
    if (p->bufs[i] && !(p->borrowed && p->borrowed[i])) { d->f.wgpuBufferDestroy(p->bufs[i]); d->f.wgpuBufferRelease(p->bufs[i]); }
  for (int s = 0; s < p->n_segs; s++)
    if (p->segs[s].staging) { d->f.wgpuBufferDestroy(p->segs[s].staging); d->f.wgpuBufferRelease(p->segs[s].staging); }
  if (p->qs) { d->f.wgpuQuerySetDestroy(p->qs); d->f.wgpuQuerySetRelease(p->qs); }
  if (p->ts_resolve) { d->f.wgpuBufferDestroy(p->ts_resolve); d->f.wgpuBufferRelease(p->ts_resolve); }
  if (p->ts_read) { d->f.wgpuBufferDestroy(p->ts_read); d->f.wgpuBufferRelease(p->ts_read); }
}

static void ctrl_free(struct wg_ctrl *c);

void gpux__wg_plan_free(wg_plan *p) {
  if (!p) return;
  plan_free_gpu(p);
  free(p->run_mem);
  if (p->vals)
    for (int v = 0; v < p->nv; v++)
      if (p->vals[v].owns) gpux_tensor_free(&p->vals[v].t);
  if (p->nodes)
    for (int i = 0; i < p->g->n_nodes; i++) {
      free(p->nodes[i].objs);
      ctrl_free(p->nodes[i].ctrl);
    }
  free(p->own_ids);
  for (int s = 0; s < p->n_segs; s++) {
    free(p->segs[s].uploads);
    free(p->segs[s].downloads);
    free(p->segs[s].dl_off);
    free(p->segs[s].flags);
  }
  free(p->flags);
  free(p->segs);
  free(p->steps);
  for (int i = 0; i < p->n_disp; i++) free(p->disp[i].params);
  free(p->disp);
  for (int o = 0; o < p->n_objs; o++) free(p->objs[o].init);
  free(p->objs);
  free(p->nodes);
  free(p->vals);
  free(p->bufs);
  free(p->buf_size);
  free(p->borrowed);
  free(p->key);
  free(p);
}

/* ---- 1. shapes and constants ---- */

/* Whether model input i's values are part of the plan key: only when planning found that they
 * decide shapes or a kernel's form (bit i of `keyed`, see want_inputs) and the tensor is small.
 * Everything else (token ids, masks, images) is data, written to the GPU per run. */
int gpux__wg_keyed_input(const gpux_tensor *t, int i, uint64_t keyed) {
  if (i < 0 || i >= 64 || !(keyed >> i & 1)) return 0;
  return t->kind == GPUX_KIND_TENSOR && t->dtype != GPUX_DT_STRING && gpux_dtype_size(t->dtype) != 0 &&
         gpux_tensor_count(t) <= 64;
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

static void want_inputs_of(wg_plan *p, int v);

/* Infers node i's outputs; computes them when every input is known. When shape inference needs
 * the values of inputs that are not known, *needed gets their bits. */
static int plan_shapes(wg_plan *p, int i, uint64_t *needed) {
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
  int rc = p->host->run_node(p->host->rt, n, in, out, !all_const, needed);
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
  if (all_const) {
    p->nodes[i].place = P_CONST;
    int fixed = !shape_of; /* (Shape reads an input's dims) */
    for (int j = 0; j < n->n_in; j++)
      if (in[j] && !p->vals[n->in[j]].fixed) fixed = 0;
    for (int j = 0; j < n->n_out; j++)
      if (n->out[j] >= 0) p->vals[n->out[j]].fixed = fixed;
  }
  return 0;
}

/* ---- 2. placement ---- */

static int commit_node(wg_plan *p, wg_build *b) {
  const gpux__node *n = &p->g->nodes[b->node];
  wg_nodeinfo *ni = &p->nodes[b->node];
  /* scratch objects (consecutive) */
  int scratch_obj[16];
  ni->scratch0 = p->n_objs;
  ni->n_scratch = b->n_scratch;
  ni->n_alias = b->n_alias;
  for (int a = 0; a < b->n_alias; a++) ni->alias_out[a] = (signed char)b->alias_out[a], ni->alias_in[a] = (signed char)b->alias_in[a];
  ni->flag_scratch = b->flag_scratch;
  ni->half_disp = b->half_disp;
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
    p->objs[vo].gpu_type = p->objs[vi].gpu_type = val_held(p, vi);
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
      if (o < p->nv) p->objs[o].gpu_type = dd->bind[k].type == WG_I32 ? WG_I32 : val_held(p, o);
      objs[n_objs++] = o;
    }
  }
  for (int a = 0; a < b->n_alias; a++) {
    objs[n_objs++] = n->in[b->alias_in[a]];
    objs[n_objs++] = n->out[b->alias_out[a]];
  }
  ni->objs = objs;
  ni->n_objs = n_objs;
  if (b->flag_scratch) {
    void *nf = gpux__realloc(p->flags, (size_t)(p->n_flags + 1) * sizeof *p->flags);
    if (!nf) return GPUX_E_NOMEM;
    p->flags = nf;
    p->flags[p->n_flags].obj = scratch_obj[b->flag_scratch - 1];
    p->flags[p->n_flags++].node = b->node;
  }
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
  p->half_disp += b->half_disp;
  return 0;
}

int gpux__wg_supports(const gpux__node *n, char *why, size_t why_len) {
  char tmp[8];
  if (!why) why = tmp, why_len = sizeof tmp;
  int ctrl = !n->domain[0] && (!strcmp(n->op_type, "If") || !strcmp(n->op_type, "Loop") || !strcmp(n->op_type, "Scan"));
  if (!ctrl && !gpux__wg_op_find(n->domain, n->op_type)) {
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

/* The dispatches of a node that was not committed. */
static void free_disps(wg_build *b) {
  for (int d = 0; d < b->n_disp; d++) free(b->disp[d].params);
  free(b->disp);
  b->disp = NULL;
}

/* ---- derivation: what a plan for new shapes takes from the previous plan as it is ---- */

static int same_meta(const gpux_tensor *a, const gpux_tensor *b) {
  if (a->kind != b->kind || a->dtype != b->dtype || a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d]) return 0;
  return 1;
}

/* Whether value v is the same in plan p so far as in q: absent or not, constant or not (with the
 * same data), its dtype and shape, and the storage it shares (alias root). */
static int same_value(const wg_plan *p, const wg_plan *q, int v) {
  const wg_val *a = &p->vals[v], *b = &q->vals[v];
  if ((a->state == V_ABSENT) != (b->state == V_ABSENT) || (a->state == V_CONST) != (b->state == V_CONST)) return 0;
  if (a->state == V_ABSENT) return 1;
  if (!same_meta(&a->t, &b->t) || a->t.kind != GPUX_KIND_TENSOR) return 0;
  if (alias_root(p, v) != alias_root(q, v)) return 0;
  if (a->state == V_CONST && a->t.data != b->t.data) {
    if (a->t.dtype == GPUX_DT_STRING || !a->t.data || !b->t.data) return 0;
    if (memcmp(a->t.data, b->t.data, (size_t)gpux_tensor_count(&a->t) * gpux_dtype_size(a->t.dtype))) return 0;
  }
  return 1;
}

/* Whether node i sees the same inputs in plan p as in the previous plan (so its shape inference
 * and its kernel give what they gave there). */
static int same_inputs(const wg_plan *p, int i) {
  const wg_plan *q = p->prev;
  if (!q) return 0;
  const gpux__node *n = &p->g->nodes[i];
  for (int j = 0; j < n->n_in; j++)
    if (n->in[j] >= 0 && !same_value(p, q, n->in[j])) return 0;
  return 1;
}

/* Node i's outputs as the previous plan inferred them, when its inputs are the same (no constant
 * outputs: those are computed). Returns 1 when it did. */
static int replay_shapes(wg_plan *p, int i) {
  const wg_plan *q = p->prev;
  const gpux__node *n = &p->g->nodes[i];
  if (!q || (q->nodes[i].place != P_GPU && q->nodes[i].place != P_CPU) || !same_inputs(p, i)) return 0;
  for (int j = 0; j < n->n_out; j++) {
    int v = n->out[j];
    if (v >= 0 && (q->vals[v].t.kind != GPUX_KIND_TENSOR || q->vals[v].state == V_CONST || q->vals[v].t.data)) return 0;
  }
  for (int j = 0; j < n->n_out; j++) {
    int v = n->out[j];
    if (v < 0) continue;
    wg_val *val = &p->vals[v];
    val->t = q->vals[v].t; /* dtype and shape only */
    val->t.owns_data = 0;
    val->producer = i;
    val->owns = 1;
    val->state = V_HOST; /* HOST until the node is placed on the GPU */
  }
  return 1;
}

/* Node i as the previous plan's kernel emitted it (the same dispatches, pipelines, sizes and
 * tables), when its inputs and outputs are the same: no WGSL is written. Returns 1 when it did. */
static int replay_node(wg_plan *p, int i) {
  const wg_plan *q = p->prev;
  const gpux__node *n = &p->g->nodes[i];
  if (!q || q->nodes[i].place != P_GPU || (p->supported && !p->supported[i]) || !same_inputs(p, i) ||
      memcmp(p->nodes[i].in_held, q->nodes[i].in_held, (size_t)(n->n_in < 64 ? n->n_in : 64)))
    return 0;
  for (int j = 0; j < n->n_out; j++) {
    int v = n->out[j];
    if (v >= 0 && (!same_meta(&p->vals[v].t, &q->vals[v].t) || (p->vals[v].state == V_ABSENT) != (q->vals[v].state == V_ABSENT)))
      return 0;
  }
  const wg_nodeinfo *qi = &q->nodes[i];
  wg_build b;
  memset(&b, 0, sizeof b);
  b.p = p;
  b.node = i;
  b.disp = gpux__calloc((size_t)qi->n_disp + 1, sizeof *b.disp);
  if (!b.disp) return GPUX_E_NOMEM;
  int rc = 0;
  for (int s = 0; s < qi->n_scratch && !rc; s++) {
    const wg_obj *o = &q->objs[qi->scratch0 + s];
    b.scratch[s] = o->bytes;
    if (o->init && !(b.scratch_init[s] = gpux__malloc((size_t)o->bytes))) rc = GPUX_E_NOMEM;
    else if (o->init) memcpy(b.scratch_init[s], o->init, (size_t)o->bytes);
  }
  b.n_scratch = qi->n_scratch;
  for (int d = 0; d < qi->n_disp && !rc; d++) {
    wg_disp *dd = &b.disp[d];
    *dd = q->disp[qi->first_disp + d];
    dd->bg = NULL;
    dd->param_off = 0;
    for (int k = 0; k < dd->n_bind; k++)
      if (dd->bind[k].obj >= q->nv) dd->bind[k].obj = ~(dd->bind[k].obj - qi->scratch0);
    dd->params = NULL;
    if (dd->n_params) {
      size_t bytes = (size_t)(dd->n_params + 3) / 4 * 16;
      if (!(dd->params = gpux__malloc(bytes))) rc = GPUX_E_NOMEM;
      else memcpy(dd->params, q->disp[qi->first_disp + d].params, bytes);
    }
    b.n_disp = d + 1;
  }
  b.n_alias = qi->n_alias;
  for (int a = 0; a < qi->n_alias; a++) b.alias_out[a] = qi->alias_out[a], b.alias_in[a] = qi->alias_in[a];
  b.flag_scratch = qi->flag_scratch;
  b.half_disp = qi->half_disp;
  if (rc) {
    for (int s = 0; s < b.n_scratch; s++) free(b.scratch_init[s]);
    free_disps(&b);
    return rc;
  }
  rc = commit_node(p, &b); /* the dispatches (their parameters) are the plan's now */
  free(b.disp);
  if (rc) return rc;
  p->n_replayed++;
  return 1;
}

static int plan_place(wg_plan *p, int i) {
  const gpux__node *n = &p->g->nodes[i];
  wg_nodeinfo *ni = &p->nodes[i];
  if (ni->place == P_CONST) return 0;
  for (int j = 0; j < n->n_in && j < 64; j++) { /* what the kernel sees of its inputs' storage so far */
    int v = n->in[j];
    ni->in_held[j] = (signed char)(v < 0 || p->vals[v].state == V_ABSENT ? -2 : p->objs[v].used ? p->objs[v].gpu_type : -1);
  }
  int replayed = replay_node(p, i);
  if (replayed) return replayed < 0 ? replayed : 0; /* taken from the previous plan */
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
  if (b.oom) { free_disps(&b); return GPUX_E_NOMEM; }
  for (int j = 0; j < n->n_in && j < 64 && b.need; j++) /* values the kernel must know: ask to key them */
    if (b.need >> j & 1) want_inputs_of(p, n->in[j]);
  for (int j = 0; j < n->n_out && !b.declined && rc == 0; j++) {
    if (!b.out[j]) continue;
    int made = 0; /* every output must be written by a dispatch or be an alias */
    for (int a = 0; a < b.n_alias; a++) made |= b.alias_out[a] == j;
    for (int d = 0; d < b.n_disp && !made; d++)
      for (int k = 0; k < b.disp[d].n_bind; k++) made |= b.disp[d].bind[k].obj == n->out[j];
    if (!made && gpux_tensor_count(b.out[j]) == 0) made = 1; /* empty: nothing to write */
    if (!made) gpux__wg_decline(&b, "output %d is not produced by the WGSL kernel", j);
    /* a float16/bfloat16 result the kernel computed in f32 is rounded to its type (narrow.c) */
    int aliased = 0, last = -1;
    for (int a = 0; a < b.n_alias; a++) aliased |= b.alias_out[a] == j;
    for (int d = 0; d < b.n_disp; d++)
      for (int k = 0; k < b.disp[d].n_bind; k++)
        if (b.disp[d].bind[k].obj == n->out[j]) last = d;
    int in_kernel = last >= 0 && b.narrow_disp[j] == last + 1; /* the last write already rounds */
    int stored_f16 = half_values(p, b.out[j]->dtype); /* f16 storage rounds every store (half.c) */
    if (!b.declined && !aliased && !in_kernel && !stored_f16 && gpux__wg_narrow_needed(n, b.in, b.n_in, b.out[j])) narrow_pass(&b, j);
  }
  if (!b.declined && rc == 0) {
    rc = commit_node(p, &b); /* the dispatches (their parameters) are the plan's now */
    free(b.disp);
    return rc;
  }
  free_disps(&b);
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

/* Whether node i, placed on the host or a control-flow node, reads input j on the host (a
 * control-flow node reads only its condition and trip count there). */
static int needs_host(const wg_plan *p, int i, int j) {
  const wg_ctrl *c = p->nodes[i].ctrl;
  if (p->nodes[i].place != P_CTRL) return 1;
  return (c->kind == CTRL_IF && j == 0) || (c->kind == CTRL_LOOP && j < 2);
}

static int host_like(const wg_plan *p, int i) { return p->nodes[i].place == P_CPU || p->nodes[i].place == P_CTRL; }

/* A host node is "blocked" while one of its inputs is GPU data not yet scheduled for read-back. */
static int host_blocked(const wg_plan *p, int i, const unsigned char *host_avail) {
  const gpux__node *n = &p->g->nodes[i];
  for (int j = 0; j < n->n_in; j++) {
    int v = n->in[j];
    if (v >= 0 && p->vals[v].state == V_GPU && !host_avail[v] && needs_host(p, i, j)) return 1;
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
  /* the nodes that read each value, once per read (inputs and captures): reads[first[v] ..
     first[v + 1] - 1] */
  int *first = gpux__calloc((size_t)p->nv + 2, sizeof *first), *reads = NULL, n_reads = 0;
  int *hosts = NULL; /* the host-like nodes, in order */
  p->steps = gpux__calloc((size_t)nn + 1, sizeof *p->steps);
  if (!pending || !done || !host_avail || !seg_of_node || !first || !p->steps) { rc = GPUX_E_NOMEM; goto out; }
  for (int i = 0; i < nn; i++) {
    const gpux__node *n = &g->nodes[i];
    const wg_ctrl *c = p->nodes[i].ctrl;
    for (int j = 0; j < n->n_in + (c ? c->n_cap : 0); j++) {
      int v = j < n->n_in ? n->in[j] : c->cap[j - n->n_in];
      if (v >= 0) first[v + 1]++, n_reads++;
      if (v >= 0 && p->vals[v].producer >= 0 && p->nodes[p->vals[v].producer].place != P_CONST) pending[i]++;
    }
  }
  for (int v = 0; v < p->nv; v++) first[v + 1] += first[v];
  if (!(reads = gpux__malloc(((size_t)n_reads + 1) * sizeof *reads))) { rc = GPUX_E_NOMEM; goto out; }
  {
    int *at = gpux__malloc(((size_t)p->nv + 1) * sizeof *at);
    if (!at) { rc = GPUX_E_NOMEM; goto out; }
    memcpy(at, first, (size_t)p->nv * sizeof *at);
    for (int i = 0; i < nn; i++) {
      const gpux__node *n = &g->nodes[i];
      const wg_ctrl *c = p->nodes[i].ctrl;
      for (int j = 0; j < n->n_in + (c ? c->n_cap : 0); j++) {
        int v = j < n->n_in ? n->in[j] : c->cap[j - n->n_in];
        if (v >= 0) reads[at[v]++] = i;
      }
    }
    free(at);
  }
  int lo = 0; /* every node before it is scheduled */
  int n_hosts = 0, hlo = 0;
  if (!(hosts = gpux__malloc(((size_t)nn + 1) * sizeof *hosts))) { rc = GPUX_E_NOMEM; goto out; }
  for (int i = 0; i < nn; i++)
    if (host_like(p, i)) hosts[n_hosts++] = i;
  for (int v = 0; v < p->nv; v++)
    if (p->vals[v].state == V_HOST || p->vals[v].state == V_CONST) host_avail[v] = 1;
  int cur_seg = -1, last_was_gpu = 0;
  for (int scheduled = 0;;) {
    /* pick: a runnable host node, else a GPU node, else release blocked host nodes */
    int pick = -1, pick_gpu = 0, any_blocked = 0;
    while (lo < nn && done[lo]) lo++;
    while (hlo < n_hosts && done[hosts[hlo]]) hlo++;
    for (int h = hlo; h < n_hosts && pick < 0; h++) {
      int i = hosts[h];
      if (done[i] || pending[i]) continue;
      if (host_blocked(p, i, host_avail)) any_blocked = 1;
      else pick = i;
    }
    if (pick < 0)
      for (int i = lo; i < nn; i++)
        if (!done[i] && !pending[i] && p->nodes[i].place == P_GPU) { pick = i, pick_gpu = 1; break; }
    if (pick < 0 && any_blocked) {
      /* read back what the blocked nodes need, at the end of the segments that produce it */
      for (int h = hlo; h < n_hosts; h++) {
        int i = hosts[h];
        if (done[i] || pending[i]) continue;
        const gpux__node *n = &g->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
          int v = n->in[j];
          if (v < 0 || p->vals[v].state != V_GPU || host_avail[v] || !needs_host(p, i, j)) continue;
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
        if (v >= p->nv || p->vals[v].state != V_HOST || p->vals[v].upload_seg != -1) continue;
        p->vals[v].upload_seg = cur_seg;
        if ((rc = add_int(&p->segs[cur_seg].uploads, &p->segs[cur_seg].n_uploads, v))) goto out;
      }
    }
    if (p->nodes[pick].place == P_CTRL) { /* host data its bodies read goes to the device once, here */
      const wg_nodeinfo *ni = &p->nodes[pick];
      for (int o = 0; o < ni->n_objs; o++) {
        int v = ni->objs[o];
        if (p->vals[v].state != V_HOST || p->vals[v].upload_seg != -1) continue;
        p->vals[v].upload_seg = -2;
        if ((rc = add_int(&ni->ctrl->uploads, &ni->ctrl->n_uploads, v))) goto out;
      }
    }
    last_was_gpu = pick_gpu;
    done[pick] = 1;
    scheduled++;
    for (int j = 0; j < n->n_out; j++) {
      int v = n->out[j];
      if (v < 0) continue;
      if (!pick_gpu) host_avail[v] = 1;
      for (int r = first[v]; r < first[v + 1]; r++)
        if (!done[reads[r]]) pending[reads[r]]--;
    }
  }
  /* GPU results the caller asked for are read back at the end of their segment */
  for (int o = 0; o < g->n_outputs; o++) {
    int v = g->outputs[o];
    if (p->vals[v].state != V_GPU || p->vals[v].download_seg >= 0) continue;
    if (p->nodes[p->vals[v].producer].place == P_CTRL) continue; /* read after the body runs */
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
  free(first);
  free(reads);
  free(hosts);
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

/* Whether object o is a constant the session's buffers hold for every plan: an initializer, or a
 * value folded from initializers only (a transposed weight), the same whatever the inputs. */
static int shared_const(const wg_plan *p, int o) {
  if (!p->consts || o >= p->nv || p->vals[o].state != V_CONST || !p->vals[o].fixed) return 0;
  return p->vals[o].t.kind == GPUX_KIND_TENSOR;
}

/* The bytes a binding of object o covers in plan p: the value's, or the scratch's. */
static uint64_t bind_bytes(const wg_plan *p, int o) {
  return o < p->nv ? val_bytes(p, o) : p->objs[o].bytes;
}

/* For each root object: whether it, or a value that shares its storage, has another size in p
 * than in q (allocated, n_objs entries). */
static unsigned char *resized_roots(const wg_plan *p, const wg_plan *q) {
  unsigned char *r = gpux__calloc((size_t)p->n_objs + 1, 1);
  for (int o = 0; r && o < p->n_objs; o++)
    if (p->objs[o].used && (p->objs[o].bytes != q->objs[o].bytes || bind_bytes(p, o) != bind_bytes(q, o)))
      r[alias_root(p, o)] = 1;
  return r;
}

/* Whether plan p, made for other input shapes, has q's structure: the same nodes in the same
 * places, the same dispatches of the same pipelines over the same storage objects, the same
 * order, segments and transfers. Then only sizes (the values in the pipelines' uniform
 * parameters, workgroup counts, bytes) differ, and p can run in q's GPU objects where they fit. */
static int same_structure(const wg_plan *p, const wg_plan *q) {
  if (p->n_objs != q->n_objs || p->n_disp != q->n_disp || p->n_steps != q->n_steps || p->n_segs != q->n_segs ||
      p->n_flags != q->n_flags || q->hollow || !q->n_pool)
    return 0;
  for (int i = 0; i < p->g->n_nodes; i++)
    if (p->nodes[i].place != q->nodes[i].place || p->nodes[i].place == P_CTRL) return 0;
  for (int i = 0; i < p->n_disp; i++) {
    const wg_disp *a = &p->disp[i], *b = &q->disp[i];
    if (a->pipe != b->pipe || a->n_bind != b->n_bind || a->n_params != b->n_params ||
        memcmp(a->bind, b->bind, (size_t)a->n_bind * sizeof *a->bind))
      return 0;
  }
  for (int o = 0; o < p->n_objs; o++) {
    const wg_obj *a = &p->objs[o], *b = &q->objs[o];
    if (a->used != b->used || alias_root(p, o) != alias_root(q, o) || a->gpu_type != b->gpu_type ||
        !a->init != !b->init || (a->used && shared_const(p, o) != b->shared))
      return 0;
  }
  for (int v = 0; v < p->nv; v++) {
    const wg_val *a = &p->vals[v], *b = &q->vals[v];
    if (a->state != b->state || a->upload_seg != b->upload_seg || a->download_seg != b->download_seg || a->host_read != b->host_read)
      return 0;
  }
  for (int s = 0; s < p->n_steps; s++)
    if (memcmp(&p->steps[s], &q->steps[s], sizeof p->steps[s])) return 0;
  for (int s = 0; s < p->n_segs; s++) {
    const wg_seg *a = &p->segs[s], *b = &q->segs[s];
    if (a->first_step != b->first_step || a->last_step != b->last_step || a->n_uploads != b->n_uploads ||
        a->n_downloads != b->n_downloads || memcmp(a->uploads, b->uploads, (size_t)a->n_uploads * sizeof *a->uploads) ||
        memcmp(a->downloads, b->downloads, (size_t)a->n_downloads * sizeof *a->downloads))
      return 0;
  }
  for (int f = 0; f < p->n_flags; f++)
    if (p->flags[f].obj != q->flags[f].obj || p->flags[f].node != q->flags[f].node) return 0;
  return 1;
}

/* Plan p (of q's structure) in q's places, when every object that changed size has room there
 * (it was placed to grow) and every other is as it was. Returns 1 when it did. */
static int adopt_places(wg_plan *p, const wg_plan *q, const unsigned char *resized, uint64_t align) {
  for (int o = 0; o < p->n_objs; o++) {
    if (!p->objs[o].used || alias_root(p, o) != o || q->objs[o].shared || !resized[o]) continue;
    if (!q->objs[o].grow || ((p->objs[o].bytes + align - 1) & ~(align - 1)) > q->objs[o].cap) return 0;
  }
  if (!(p->buf_size = gpux__calloc(64, sizeof *p->buf_size)) || !(p->bufs = gpux__calloc(64, sizeof *p->bufs))) {
    free(p->buf_size);
    p->buf_size = NULL;
    return 0;
  }
  for (int o = 0; o < p->n_objs; o++) {
    if (!p->objs[o].used) continue;
    wg_obj *a = &p->objs[o];
    const wg_obj *b = &q->objs[o];
    a->buf = b->buf, a->off = b->off, a->cap = b->cap, a->grow = b->grow;
    a->shared = b->shared;
  }
  p->n_bufs = p->n_pool = q->n_pool;
  memcpy(p->buf_size, q->buf_size, (size_t)q->n_pool * sizeof *p->buf_size);
  p->adopted = 1;
  return 1;
}

static int plan_memory(wg_plan *p) {
  wg_device *d = p->dev;
  /* value sizes and kinds */
  for (int v = 0; v < p->nv; v++) {
    wg_obj *o = &p->objs[v];
    if (!o->used) continue;
    o->bytes = val_bytes(p, v);
    if (!o->bytes) o->bytes = 4;
    if (p->vals[v].state == V_CONST) use_obj(p, v, 0), use_obj(p, v, WG_TIME_INF);
  }
  /* liveness from the order: step s runs at time 2s+1; uploads at 2*first, read-backs at 2*last+2 */
  for (int s = 0; s < p->n_steps; s++) {
    const wg_step *st = &p->steps[s];
    if (!st->gpu && p->nodes[st->node].place != P_CTRL) continue; /* control flow: inputs, captures, outputs */
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
  /* derived from the previous plan: its places when every size fits them, else new places with
     room for the sizes that change */
  const wg_plan *was = p->prev && same_structure(p, p->prev) ? p->prev : NULL;
  unsigned char *resized = was ? resized_roots(p, was) : NULL;
  if (was && !resized) return GPUX_E_NOMEM;
  if (was && adopt_places(p, was, resized, align)) {
    free(resized);
    return 0;
  }
  uint64_t cap = d->limits.maxBufferSize;
  if (cap > ((uint64_t)1 << 31)) cap = (uint64_t)1 << 31;
  if (cap < d->limits.maxStorageBufferBindingSize && d->limits.maxStorageBufferBindingSize <= ((uint64_t)1 << 31))
    cap = d->limits.maxStorageBufferBindingSize;
  cap &= ~(align - 1);
  int n_items = 0;
  size_item *items = gpux__calloc((size_t)p->n_objs + 1, sizeof *items);
  int *placed = gpux__calloc((size_t)p->n_objs + 1, sizeof *placed);
  if (!items || !placed) { free(items); free(placed); free(resized); return GPUX_E_NOMEM; }
  for (int o = 0; o < p->n_objs; o++) {
    if (!p->objs[o].used || alias_root(p, o) != o) continue;
    if (shared_const(p, o)) { /* in the session's buffers (plan_gpu) */
      p->objs[o].shared = 1;
      continue;
    }
    if (p->objs[o].last < 0) p->objs[o].first = p->objs[o].last = 0; /* bound but never live: still needs storage */
    uint64_t need = p->objs[o].bytes;
    if (was && (was->objs[o].grow || resized[o])) { /* twice its size: most later steps fit */
      p->objs[o].grow = 1;
      need = need * 2 > cap ? (need > cap ? need : cap) : need * 2;
    }
    p->objs[o].cap = (need + align - 1) & ~(align - 1);
    items[n_items++] = (size_item){o, p->objs[o].cap};
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
          uint64_t oend = other->off + other->cap;
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
  free(resized);
  if (rc) return rc;
  p->n_pool = p->n_bufs;
  /* aliases take their root's place */
  for (int o = 0; o < p->n_objs; o++) {
    if (!p->objs[o].used) continue;
    int r = alias_root(p, o);
    p->objs[o].buf = p->objs[r].buf;
    p->objs[o].off = p->objs[r].off;
    p->objs[o].cap = p->objs[r].cap;
    p->objs[o].grow = p->objs[r].grow;
  }
  return 0;
}

/* ---- 5. GPU objects ---- */

/* Writes constant value v's GPU image into its place in the buffers. */
static int write_const(wg_plan *p, int v) {
  wg_device *d = p->dev;
  void *img;
  size_t bytes;
  int owned, rc;
  if ((rc = gpux__wg_gpu_image(&p->vals[v].t, image_form(p, v), &img, &bytes, &owned))) return rc;
  d->f.wgpuQueueWriteBuffer(d->queue, p->bufs[p->objs[v].buf], p->objs[v].off, img, bytes);
  if (owned) free(img);
  p->stats->uploads++, p->stats->upload_bytes += bytes;
  return 0;
}

/* Writes object o's initial contents (a kernel's table) into its place in the buffers. */
static void write_init(wg_plan *p, int o) {
  wg_device *d = p->dev;
  d->f.wgpuQueueWriteBuffer(d->queue, p->bufs[p->objs[o].buf], p->objs[o].off, p->objs[o].init, (size_t)p->objs[o].bytes);
  p->stats->uploads++, p->stats->upload_bytes += p->objs[o].bytes;
}

/* Plan p takes over the GPU objects of the plan it derives from (adopt_places put every object
 * where it was there): the buffers, bind groups, the sizes' uniform buffer (values written where
 * they changed) and the read-back buffers that are large enough. The previous plan is hollow
 * after this, for the backend to drop. */
static int adopt_gpu(wg_plan *p) {
  wg_device *d = p->dev;
  wg_plan *q = p->prev;
  free(p->bufs);
  free(p->buf_size);
  p->bufs = q->bufs, p->buf_size = q->buf_size, p->borrowed = q->borrowed, p->n_bufs = q->n_bufs;
  q->bufs = NULL, q->buf_size = NULL, q->borrowed = NULL, q->n_bufs = 0;
  p->params = q->params, p->param_img = q->param_img, p->param_bytes = q->param_bytes;
  q->params = NULL, q->param_img = NULL;
  q->hollow = 1;
  uint64_t lo = UINT64_MAX, hi = 0; /* the blocks that changed, written at once */
  for (int i = 0; i < p->n_disp; i++) {
    wg_disp *a = &p->disp[i], *b = &q->disp[i];
    a->bg = b->bg;
    b->bg = NULL;
    a->param_off = b->param_off;
    size_t bytes = (size_t)(a->n_params + 3) / 4 * 16;
    if (!a->n_params || !memcmp(a->params, b->params, bytes)) continue;
    if (a->param_off + bytes > p->param_bytes) return gpux__error(GPUX_E_INTERNAL, "WebGPU planner: sizes past their buffer");
    memcpy(p->param_img + a->param_off, a->params, bytes);
    if (a->param_off < lo) lo = a->param_off;
    if (a->param_off + bytes > hi) hi = a->param_off + bytes;
  }
  if (hi > lo) d->f.wgpuQueueWriteBuffer(d->queue, p->params, lo, p->param_img + lo, (size_t)(hi - lo));
  /* constants that follow from the inputs' shapes, and kernels' tables, where they changed */
  for (int v = 0; v < p->nv; v++) {
    if (!p->objs[v].used || p->vals[v].state != V_CONST || alias_root(p, v) != v || p->objs[v].shared) continue;
    const gpux_tensor *t = &p->vals[v].t;
    size_t n = (size_t)gpux_tensor_count(t) * gpux_dtype_size(t->dtype);
    const gpux_tensor *was = &q->vals[v].t; /* the same data (of the same size) needs no write */
    if (!n || (was->data && t->data && was->dtype == t->dtype && gpux_tensor_count(was) == gpux_tensor_count(t) &&
               !memcmp(t->data, was->data, n)))
      continue;
    int rc = write_const(p, v);
    if (rc) return rc;
  }
  for (int o = p->nv; o < p->n_objs; o++)
    if (p->objs[o].init && (p->objs[o].bytes != q->objs[o].bytes || memcmp(p->objs[o].init, q->objs[o].init, (size_t)p->objs[o].bytes)))
      write_init(p, o);
  return 0;
}

/* The read-back buffer of each segment: where each download and overflow flag goes in it; the
 * previous plan's when it is large enough (a derived plan), else a new one, with room to grow
 * when the plan derives from another. */
static int plan_staging(wg_plan *p) {
  wg_device *d = p->dev;
  for (int s = 0; s < p->n_segs; s++) {
    wg_seg *sg = &p->segs[s];
    for (int f = 0; f < p->n_flags; f++) {
      int in_seg = 0;
      for (int t = sg->first_step; t <= sg->last_step && !in_seg; t++) in_seg = p->steps[t].node == p->flags[f].node;
      if (in_seg && add_int(&sg->flags, &sg->n_flags, f)) return GPUX_E_NOMEM;
    }
    if (!sg->n_downloads && !sg->n_flags) continue;
    sg->dl_off = gpux__calloc((size_t)sg->n_downloads + 1, sizeof *sg->dl_off);
    if (!sg->dl_off) return GPUX_E_NOMEM;
    uint64_t off = 0;
    for (int k = 0; k < sg->n_downloads; k++) {
      sg->dl_off[k] = off;
      off += (val_bytes(p, sg->downloads[k]) + 15) & ~(uint64_t)15;
    }
    sg->flags_off = off;
    off += (uint64_t)sg->n_flags * 4;
    sg->staging_bytes = off ? (off + 15) & ~(uint64_t)15 : 16;
    wg_seg *old = p->prev && p->prev->n_segs == p->n_segs && p->adopted ? &p->prev->segs[s] : NULL;
    if (old && old->staging && old->staging_cap >= sg->staging_bytes) {
      sg->staging = old->staging, sg->staging_cap = old->staging_cap;
      old->staging = NULL;
      continue;
    }
    sg->staging_cap = p->prev ? sg->staging_bytes * 2 : sg->staging_bytes;
    sg->staging = gpux__wg_buffer(d, sg->staging_cap, WGPUBufferUsage_MapRead | WGPUBufferUsage_CopyDst, "gpux read-back");
    if (!sg->staging) return gpux__error(GPUX_E_NOMEM, "WebGPU: could not allocate a read-back buffer");
  }
  return 0;
}

/* plan_gpu's and plan_build's answer when a pipeline failed after its node was placed on the
 * GPU: plan again (positive: never a gpux error code). */
#define WG_REPLAN 1

/* Waits for the pipelines the kernels started (Dawn's threads made them meanwhile). One that
 * failed (past its shader module, which fails at once) keeps its reason and the graph is planned
 * again (WG_REPLAN): its node then runs on the CPU. */
static int pipes_ready(wg_plan *p) {
  int rc = gpux__wg_pipelines_finish(p->dev);
  if (rc) return rc;
  for (int i = 0; i < p->n_disp; i++)
    if (!p->disp[i].pipe->pipeline)
      return gpux__error(GPUX_E_DEVICE, "%s", p->disp[i].pipe->error ? p->disp[i].pipe->error : "no pipeline"), WG_REPLAN;
  return 0;
}

/* The plan's buffers, weights and bind groups. The pipelines are waited for only before the bind
 * groups need their layouts: Dawn's threads make them while the buffers are created and the
 * weights written. */
static int plan_gpu(wg_plan *p) {
  wg_device *d = p->dev;
  if (p->adopted) {
    int rc = pipes_ready(p);
    if (!rc) rc = adopt_gpu(p);
    if (!rc) rc = plan_staging(p);
    return rc ? rc : gpux__wg_check(d, "preparing the model on the GPU");
  }
  for (int b = 0; b < p->n_bufs; b++) {
    p->bufs[b] = gpux__wg_buffer(d, p->buf_size[b], WGPUBufferUsage_Storage | WGPUBufferUsage_CopySrc | WGPUBufferUsage_CopyDst, "gpux tensors");
    if (!p->bufs[b]) return gpux__error(GPUX_E_NOMEM, "WebGPU: could not allocate %llu bytes", (unsigned long long)p->buf_size[b]);
  }
  int rc = gpux__wg_check(d, "allocating GPU memory");
  if (rc) return rc;
  /* initializers: the session's buffers, made and written the first time a plan asks */
  int n_shared = 0;
  for (int o = 0; o < p->n_objs; o++) n_shared += p->objs[o].shared;
  if (n_shared) {
    int nb = p->n_bufs + n_shared;
    WGPUBuffer *bufs = gpux__realloc(p->bufs, (size_t)nb * sizeof *bufs);
    if (bufs) p->bufs = bufs;
    uint64_t *sizes = bufs ? gpux__realloc(p->buf_size, (size_t)nb * sizeof *sizes) : NULL;
    if (sizes) p->buf_size = sizes;
    if (!bufs || !sizes || !(p->borrowed = gpux__calloc((size_t)nb, 1))) return GPUX_E_NOMEM;
    for (int o = 0; o < p->n_objs; o++) {
      if (!p->objs[o].shared) continue;
      int b = p->n_bufs;
      if ((rc = gpux__wg_consts_get(p->consts, p->g, o, &p->vals[o].t, image_form(p, o), p->stats, &p->bufs[b], &p->buf_size[b])))
        return rc;
      p->borrowed[b] = 1;
      p->n_bufs++;
      p->objs[o].buf = b;
      p->objs[o].off = 0;
    }
    for (int o = 0; o < p->n_objs; o++) /* and what aliases them */
      if (p->objs[o].used && p->objs[alias_root(p, o)].shared) {
        p->objs[o].buf = p->objs[alias_root(p, o)].buf;
        p->objs[o].off = 0;
      }
  }
  /* constants the GPU reads, written once */
  for (int v = 0; v < p->nv; v++) {
    if (!p->objs[v].used || p->vals[v].state != V_CONST || alias_root(p, v) != v || p->objs[v].shared) continue;
    if (gpux_tensor_count(&p->vals[v].t) && (rc = write_const(p, v))) return rc;
  }
  for (int o = p->nv; o < p->n_objs; o++)
    if (p->objs[o].init) write_init(p, o);
  /* sizes of the pipelines reused across shapes: one uniform buffer, a block per dispatch */
  uint64_t ualign = d->limits.minUniformBufferOffsetAlignment ? d->limits.minUniformBufferOffsetAlignment : 256, ubytes = 0;
  for (int i = 0; i < p->n_disp; i++)
    if (p->disp[i].n_params) {
      p->disp[i].param_off = ubytes;
      ubytes += ((uint64_t)(p->disp[i].n_params + 3) / 4 * 16 + ualign - 1) / ualign * ualign;
    }
  if (ubytes) {
    p->params = gpux__wg_buffer(d, ubytes, WGPUBufferUsage_Uniform | WGPUBufferUsage_CopyDst, "gpux sizes");
    if (!p->params) return gpux__error(GPUX_E_NOMEM, "WebGPU: could not allocate %llu bytes", (unsigned long long)ubytes);
    if (!(p->param_img = gpux__calloc((size_t)ubytes, 1))) return GPUX_E_NOMEM;
    p->param_bytes = ubytes;
    for (int i = 0; i < p->n_disp; i++)
      if (p->disp[i].n_params)
        memcpy(p->param_img + p->disp[i].param_off, p->disp[i].params, (size_t)(p->disp[i].n_params + 3) / 4 * 16);
    d->f.wgpuQueueWriteBuffer(d->queue, p->params, 0, p->param_img, (size_t)ubytes);
  }
  if ((rc = pipes_ready(p))) return rc;
  /* bind groups */
  for (int i = 0; i < p->n_disp; i++) {
    wg_disp *ds = &p->disp[i];
    WGPUBindGroupEntry e[WG_MAX_BIND + 1];
    memset(e, 0, sizeof e);
    for (int k = 0; k < ds->n_bind; k++) {
      const wg_obj *o = &p->objs[ds->bind[k].obj];
      uint64_t bytes = bind_bytes(p, ds->bind[k].obj);
      if (o->grow) bytes = o->cap; /* all its room: the bind group serves the plans derived from this one */
      if (bytes < 4) bytes = 4;
      if (ds->bind[k].type == WG_VEC4) bytes = bytes < 16 ? 16 : bytes & ~(uint64_t)15;
      e[k].binding = (uint32_t)k;
      e[k].buffer = p->bufs[o->buf];
      e[k].offset = o->off;
      e[k].size = bytes;
      if (o->off + bytes > p->buf_size[o->buf]) e[k].size = p->buf_size[o->buf] - o->off;
    }
    if (ds->n_params) {
      e[ds->n_bind].binding = (uint32_t)ds->n_bind;
      e[ds->n_bind].buffer = p->params;
      e[ds->n_bind].offset = ds->param_off;
      e[ds->n_bind].size = (uint64_t)(ds->n_params + 3) / 4 * 16;
    }
    WGPUBindGroupDescriptor bd;
    memset(&bd, 0, sizeof bd);
    bd.layout = ds->pipe->layout;
    bd.entryCount = (size_t)ds->n_bind + (ds->n_params ? 1 : 0);
    bd.entries = e;
    ds->bg = d->f.wgpuDeviceCreateBindGroup(d->device, &bd);
    if (!ds->bg) return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a bind group");
  }
  if ((rc = plan_staging(p))) return rc;
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
    for (int k = 0; k < sg->n_downloads; k++) off += (val_bytes(p, sg->downloads[k]) + 15) & ~(uint64_t)15;
    total += off ? off : 16;
  }
  return total;
}

/* "Op 'name'" as reasons name nodes; a node without a name by what it makes (its index here is
 * not the model's: the runtime's rewrite renumbers nodes). */
static const char *node_label(const gpux__graph *g, int i, char *buf, size_t len) {
  const gpux__node *n = &g->nodes[i];
  if (n->name && n->name[0]) snprintf(buf, len, "%s '%s'", n->op_type, n->name);
  else if (n->n_out > 0 && n->out[0] >= 0) snprintf(buf, len, "%s making '%s'", n->op_type, g->values[n->out[0]].name);
  else snprintf(buf, len, "%s", n->op_type);
  return buf;
}

/* The whole graph goes to the CPU executor because of node i (which gets `fmt` as its reason). */
static void decline_at(wg_plan *p, int i, const char *fmt, ...) {
  char label[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->node_why, sizeof p->node_why, fmt, ap);
  va_end(ap);
  p->declined = 1;
  p->declined_node = i;
  snprintf(p->why, sizeof p->why, "the graph runs on the CPU because of %s", node_label(p->g, i, label, sizeof label));
}

static int plan_control(wg_plan *p, int i);

/* Whether a new plan of graph g may derive from plan q: q planned the same graph on the GPU, in
 * the same precision, without control flow (whose bodies have plans of their own), and still
 * holds its GPU objects. GPUX_WEBGPU_DERIVE=0 turns derivation off (every plan made whole). */
static int derivable(const wg_plan *q, const gpux__graph *g, int half) {
  const char *off = getenv("GPUX_WEBGPU_DERIVE");
  if (!q || q->g != g || q->declined || q->half != half || q->hollow || q->body || (off && !strcmp(off, "0"))) return 0;
  for (int i = 0; i < g->n_nodes; i++)
    if (q->nodes[i].place == P_CTRL) return 0;
  return 1;
}

static double ms_between(const struct timespec *a, const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Plans graph g for these inputs (bound to the values in_ids). A body plan (body = 1) takes an
 * input given with data as a constant; the main graph keys small integer inputs instead. */
static int plan_build(wg_device *dev, wg_consts *consts, const gpux__graph *g, const gpux__host *host,
                      const unsigned char *supported, const int *in_ids, int n_ids, int body, const gpux_tensor *inputs,
                      int n_inputs, uint64_t extra, uint64_t budget, int half, wg_tuning *tuning, gpux_run_stats *stats,
                      uint64_t *want, wg_plan *prev, wg_plan **out) {
  *want = 0;
  *out = NULL;
  wg_plan *p = gpux__calloc(1, sizeof *p);
  if (!p) return GPUX_E_NOMEM;
  p->half = half;
  p->prev = derivable(prev, g, half) ? prev : NULL;
  p->tuning = tuning;
  p->want = body ? NULL : want;
  p->consts = consts;
  p->stats = stats;
  p->host = host;
  p->supported = supported;
  p->in_ids = in_ids;
  p->n_in_ids = n_ids;
  p->body = body;
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
      p->vals[v].fixed = 1;
    }
  }
  mark_wide(p);
  for (int i = 0; i < n_ids; i++) {
    int v = in_ids[i];
    wg_val *val = &p->vals[v];
    if (i >= n_inputs || inputs[i].kind == GPUX_KIND_NONE) { val->state = V_ABSENT; continue; }
    const gpux_tensor *t = &inputs[i];
    if (t->kind != GPUX_KIND_TENSOR) {
      p->declined = 1;
      snprintf(p->why, sizeof p->why, "input '%s' is a sequence: the graph runs on the CPU", g->values[v].name);
      *out = p;
      return 0;
    }
    if (body ? t->data != NULL : gpux__wg_keyed_input(t, i, extra)) {
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
  struct timespec t_start, t_now;
  clock_gettime(CLOCK_MONOTONIC, &t_start);
  uint64_t made0 = dev->compiled;
  int told = 0; /* progress reported (planning took long: pipelines compiling) */
  uint64_t loaded0 = dev->pipes_loaded, compiled0 = dev->pipes_compiled, pipe_ns0 = dev->pipe_ns, pipe_cpu0 = dev->pipe_cpu_ns;
  uint64_t cpu_start = gpux__wg_cpu_ns();
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    clock_gettime(CLOCK_MONOTONIC, &t_now);
    if (told || (t_now.tv_sec - t_start.tv_sec) * 1000000000L + (t_now.tv_nsec - t_start.tv_nsec) > 500000000L)
      gpux__progress("compile", i, g->n_nodes), told = 1;
    if (has_subgraph(n)) {
      if ((rc = plan_control(p, i))) goto fail;
      if (p->declined) {
        *out = p;
        return 0;
      }
      continue;
    }
    uint64_t needed = 0;
    struct timespec ta, tb;
    clock_gettime(CLOCK_MONOTONIC, &ta);
    rc = replay_shapes(p, i) ? 0 : plan_shapes(p, i, &needed);
    clock_gettime(CLOCK_MONOTONIC, &tb);
    p->shape_ms += ms_between(&ta, &tb);
    if (rc) {
      /* the inputs whose values decide the shapes (all of them when the op did not say which):
       * the model inputs they are computed from are asked to key the plan */
      for (int j = 0; j < n->n_in; j++)
        if (!needed || (j < 64 && needed >> j & 1)) want_inputs_of(p, n->in[j]);
      decline_at(p, i, "output shapes depend on data: %s", gpux_last_error());
      *out = p;
      return 0;
    }
    if ((rc = plan_place(p, i))) goto fail;
    if (p->want && (*p->want & ~extra)) { /* a kernel needs values that could key the plan: plan again */
      p->declined = 1;
      snprintf(p->why, sizeof p->why, "planned again with more inputs known");
      *out = p;
      return 0;
    }
  }
  if (told) gpux__progress("compile", g->n_nodes, g->n_nodes);
  for (int i = 0; i < g->n_nodes; i++) {
    int pl = p->nodes[i].place;
    p->n_cpu += pl == P_CPU;
    p->n_gpu += pl == P_GPU;
    p->n_const += pl == P_CONST;
  }
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    if (!host_like(p, i)) continue;
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0 && needs_host(p, i, j)) p->vals[n->in[j]].host_read = 1;
  }
  struct timespec t_kernels, t_memory;
  clock_gettime(CLOCK_MONOTONIC, &t_kernels);
  if ((rc = plan_order(p))) goto fail;
  if ((rc = plan_memory(p))) goto fail;
  clock_gettime(CLOCK_MONOTONIC, &t_memory);
  p->bytes = plan_bytes(p);
  for (int i = 0; i < g->n_nodes; i++) { /* the bodies' plans */
    const wg_ctrl *c = p->nodes[i].ctrl;
    for (int b = 0; c && b < 2; b++)
      if (c->sub[b]) p->bytes += c->sub[b]->bytes;
    for (int k = 0; c && k < c->n_per_iter; k++) p->bytes += c->per_iter[k]->bytes;
  }
  if (budget && p->bytes > budget) {
    char need[32], have[32];
    rc = gpux__error(GPUX_E_DEVICE, "model needs %s of device memory, the gpu_memory limit allows %s",
                     gpux__format_bytes(need, p->bytes), gpux__format_bytes(have, budget));
    goto fail;
  }
  /* plan_gpu's own time, without its wait for the pipelines (counted with them) */
  uint64_t gpu_t0 = gpux__wg_now_ns() - dev->pipe_ns, gpu_c0 = gpux__wg_cpu_ns() - dev->pipe_cpu_ns;
  if ((rc = plan_gpu(p)) == WG_REPLAN) {
    gpux__wg_plan_free(p);
    return WG_REPLAN;
  }
  if (rc) goto fail;
  uint64_t gpu_t1 = gpux__wg_now_ns() - dev->pipe_ns, gpu_c1 = gpux__wg_cpu_ns() - dev->pipe_cpu_ns;
  if (getenv("GPUX_WEBGPU_VERBOSE") && (dev->pipes_loaded > loaded0 || dev->pipes_compiled > compiled0))
    gpux__log(GPUX_LOG_DEBUG, "webgpu: pipelines for %d nodes: %llu new (%llu loaded from the pipeline cache, %llu compiled) "
              "in %.1f ms (cpu %.1f)", g->n_nodes, (unsigned long long)(dev->pipes_loaded - loaded0 + dev->pipes_compiled - compiled0),
              (unsigned long long)(dev->pipes_loaded - loaded0), (unsigned long long)(dev->pipes_compiled - compiled0),
              (double)(dev->pipe_ns - pipe_ns0) / 1e6, (double)(dev->pipe_cpu_ns - pipe_cpu0) / 1e6);
  /* the weights the session's plans share (uploaded by plan_gpu) count against the budget too */
  if (budget && p->bytes + gpux__wg_consts_bytes(p->consts) > budget) {
    char need[32], have[32];
    rc = gpux__error(GPUX_E_DEVICE, "model needs %s of device memory, the gpu_memory limit allows %s",
                     gpux__format_bytes(need, p->bytes + gpux__wg_consts_bytes(p->consts)), gpux__format_bytes(have, budget));
    goto fail;
  }
  if (getenv("GPUX_WEBGPU_VERBOSE")) {
    uint64_t total = 0;
    for (int b = 0; b < p->n_bufs; b++) total += p->buf_size[b];
    clock_gettime(CLOCK_MONOTONIC, &t_now);
    gpux__log(GPUX_LOG_DEBUG, "webgpu: planned %d nodes (%d gpu, %d cpu, %d const), %d dispatches, %d pipelines compiled, %d segments, %.1f MiB in %d buffers, in %.1f ms (cpu %.1f; "
            "shapes %.1f ms, kernels %.1f, order and memory %.1f, buffers, uploads and bind groups %.1f ms, cpu %.1f); derived: %d nodes as before, %s",
            g->n_nodes, p->n_gpu, p->n_cpu, p->n_const, p->n_disp, (int)(dev->compiled - made0), p->n_segs, (double)total / 1048576.0, p->n_bufs,
            ms_between(&t_start, &t_now), (double)(gpux__wg_cpu_ns() - cpu_start) / 1e6, p->shape_ms,
            ms_between(&t_start, &t_kernels) - p->shape_ms, ms_between(&t_kernels, &t_memory), (double)(gpu_t1 - gpu_t0) / 1e6,
            (double)(gpu_c1 - gpu_c0) / 1e6, p->n_replayed, p->adopted ? "GPU objects kept" : "GPU objects made");
    for (int i = 0; i < g->n_nodes; i++)
      if (p->nodes[i].place == P_CPU)
        gpux__log(GPUX_LOG_DEBUG, "webgpu:   cpu: %s (%s): %s", g->nodes[i].name, g->nodes[i].op_type, p->nodes[i].why);
  }
  *out = p;
  return 0;
fail:
  gpux__wg_plan_free(p);
  return rc;
}

int gpux__wg_plan_pipelines(const wg_plan *p, wg_pipeline **out, int cap) {
  int n = 0;
  for (int i = 0; i < p->n_disp && n < cap; i++) out[n++] = p->disp[i].pipe;
  return n;
}

int gpux__wg_plan_create(wg_device *dev, wg_consts *consts, const gpux__graph *g, const gpux__host *host,
                         const unsigned char *supported, const gpux_tensor *inputs, int n_inputs, uint64_t extra,
                         uint64_t budget, int half, wg_tuning *tuning, gpux_run_stats *stats, uint64_t *want,
                         unsigned char *key, size_t key_len, wg_plan *prev, wg_plan **out) {
  int rc, tries = 0;
  while ((rc = plan_build(dev, consts, g, host, supported, g->inputs, g->n_inputs, 0, inputs, n_inputs, extra, budget,
                          half, tuning, stats, want, prev, out)) == WG_REPLAN && ++tries < 16) {}
  if (rc == WG_REPLAN) rc = gpux__error(GPUX_E_DEVICE, "WebGPU: pipelines kept failing to compile: %s", gpux_last_error());
  *want &= ~extra; /* only inputs not keyed yet call for planning again */
  if (!rc && (*out)->prev && (*out)->prev->nv == (*out)->nv && !(*out)->run_mem) { /* its run's arrays too */
    (*out)->run_mem = (*out)->prev->run_mem;
    (*out)->prev->run_mem = NULL;
  }
  if (!rc) (*out)->prev = NULL; /* used while planning only */
  if (!rc) {
    (*out)->key = key; /* the caller keeps the key on failure */
    (*out)->key_len = key_len;
  }
  return rc;
}

/* ---- control flow: planning ---- */

static void ctrl_free(wg_ctrl *c) {
  if (!c) return;
  gpux__wg_plan_free(c->sub[0]);
  gpux__wg_plan_free(c->sub[1]);
  for (int k = 0; k < c->n_per_iter; k++) gpux__wg_plan_free(c->per_iter[k]);
  free(c->per_iter);
  free(c->cap);
  free(c->rev_in);
  free(c->rev_out);
  free(c->uploads);
  free(c);
}

static int scalar_true(const gpux_tensor *t) {
  return t && t->kind == GPUX_KIND_TENSOR && t->data && gpux_tensor_count(t) > 0 && gpux__load_f64(t->dtype, t->data, 0) != 0;
}

/* t's dtype and shape without its data (what a body is planned with for a value known per run). */
static gpux_tensor meta_of(const gpux_tensor *t) {
  gpux_tensor m = *t;
  m.data = NULL;
  m.owns_data = 0;
  m.items = NULL;
  return m;
}

static int same_shape(const gpux_tensor *a, const gpux_tensor *b) {
  if (a->kind != b->kind || a->dtype != b->dtype || a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d]) return 0;
  return 1;
}

/* Plans body b of node i: its inputs are `first` (b->n_inputs of them), then the values it
 * captures from this plan (constants with their data, the rest by dtype and shape). When the body
 * cannot be planned, the whole graph is declined because of node i (*out NULL, 0 returned). */
static int plan_body(wg_plan *p, int i, const gpux__graph *b, const char *what, const gpux_tensor *first, wg_plan **out) {
  *out = NULL;
  const gpux__node *n = &p->g->nodes[i];
  int n_ids = b->n_inputs;
  for (int v = 0; v < b->n_values; v++) n_ids += b->values[v].outer >= 0;
  int *ids = gpux__calloc((size_t)n_ids + 1, sizeof *ids);
  gpux_tensor *ins = gpux__calloc((size_t)n_ids + 1, sizeof *ins);
  wg_ctrl *c = p->nodes[i].ctrl;
  int *cap = gpux__realloc(c->cap, (size_t)(c->n_cap + n_ids + 1) * sizeof *cap);
  if (cap) c->cap = cap;
  if (!ids || !ins || !cap) {
    free(ids);
    free(ins);
    return GPUX_E_NOMEM;
  }
  int k = 0;
  for (; k < b->n_inputs; k++) ids[k] = b->inputs[k], ins[k] = first[k];
  for (int v = 0; v < b->n_values; v++) {
    int pv = b->values[v].outer;
    if (pv < 0) continue;
    ids[k] = v;
    const wg_val *pval = &p->vals[pv];
    if (pval->state == V_ABSENT) ins[k].kind = GPUX_KIND_NONE;
    else ins[k] = pval->state == V_CONST ? pval->t : meta_of(&pval->t);
    k++;
    int seen = 0;
    for (int q = 0; q < c->n_cap; q++) seen |= c->cap[q] == pv;
    if (!seen) c->cap[c->n_cap++] = pv;
  }
  uint64_t want;
  wg_plan *sp = NULL;
  int rc, tries = 0;
  while ((rc = plan_build(p->dev, p->consts, b, p->host, NULL, ids, n_ids, 1, ins, n_ids, 0, 0, p->half, p->tuning, p->stats,
                          &want, NULL, &sp)) == WG_REPLAN && ++tries < 16) {}
  if (rc == WG_REPLAN) rc = gpux__error(GPUX_E_DEVICE, "WebGPU: pipelines kept failing to compile: %s", gpux_last_error());
  free(ins);
  if (rc) {
    free(ids);
    return rc;
  }
  sp->own_ids = ids;
  if (sp->declined) {
    if (sp->declined_node >= 0) {
      char label[160];
      decline_at(p, i, "%s: %s: %s", what, node_label(b, sp->declined_node, label, sizeof label), sp->node_why);
    } else {
      decline_at(p, i, "%s: %s", what, sp->why);
    }
    gpux__wg_plan_free(sp);
    return 0;
  }
  /* a body node on the CPU: the control-flow node is reported there */
  for (int q = 0; q < b->n_nodes && !p->nodes[i].why[0]; q++) {
    const wg_nodeinfo *ni = &sp->nodes[q];
    if (ni->place == P_CPU || (ni->place == P_CTRL && ni->why[0]))
    {
      char label[160];
      snprintf(p->nodes[i].why, sizeof p->nodes[i].why, "%s: %s: %s", what, node_label(b, q, label, sizeof label), ni->why);
    }
  }
  (void)n;
  *out = sp;
  return 0;
}

/* Output j of node i: t's dtype and shape, or t itself when `constant` (a body computed it
 * while planning). */
static int set_out(wg_plan *p, int i, int j, const gpux_tensor *t, int constant) {
  int v = p->g->nodes[i].out[j];
  if (v < 0) return 0;
  wg_val *val = &p->vals[v];
  val->producer = i;
  if (constant) {
    int rc = gpux_tensor_copy(&val->t, t);
    if (rc) return rc;
    val->owns = 1;
    val->state = V_CONST;
    return 0;
  }
  val->t = meta_of(t);
  val->state = V_HOST; /* V_GPU once placed */
  return 0;
}

static int plan_if(wg_plan *p, int i, wg_ctrl *c) {
  const gpux__node *n = &p->g->nodes[i];
  const gpux__attr *a[2] = {gpux__node_attr(n, "then_branch"), gpux__node_attr(n, "else_branch")};
  static const char *const names[2] = {"then_branch", "else_branch"};
  if (!a[0] || !a[0]->g || !a[1] || !a[1]->g || n->n_in < 1 || n->in[0] < 0)
    return gpux__error(GPUX_E_MODEL, "node '%s' (If): a condition and then_branch/else_branch are required", n->name);
  const wg_val *cond = &p->vals[n->in[0]];
  if (cond->state == V_CONST) c->fixed = scalar_true(&cond->t) ? 0 : 1; /* a constant or shape-derived condition */
  for (int b = 0; b < 2; b++) {
    if (c->fixed >= 0 && c->fixed != b) continue;
    if (a[b]->g->n_outputs != n->n_out)
      return gpux__error(GPUX_E_MODEL, "node '%s' (If): %s has %d outputs, the node %d", n->name, names[b],
                         a[b]->g->n_outputs, n->n_out);
    int rc = plan_body(p, i, a[b]->g, names[b], NULL, &c->sub[b]);
    if (rc || p->declined) return rc;
  }
  int b0 = c->fixed >= 0 ? c->fixed : 0;
  for (int j = 0; j < n->n_out; j++) {
    const wg_val *r0 = &c->sub[b0]->vals[a[b0]->g->outputs[j]];
    if (r0->state == V_ABSENT || r0->t.kind != GPUX_KIND_TENSOR) {
      decline_at(p, i, "%s: output %d is not a tensor", names[b0], j);
      return 0;
    }
    if (c->fixed < 0 && !same_shape(&r0->t, &c->sub[1]->vals[a[1]->g->outputs[j]].t)) {
      char s0[96], s1[96];
      decline_at(p, i, "its branches give output %d as %s and %s", j, gpux_tensor_describe(&r0->t, s0, sizeof s0),
                 gpux_tensor_describe(&c->sub[1]->vals[a[1]->g->outputs[j]].t, s1, sizeof s1));
      return 0;
    }
    int rc = set_out(p, i, j, &r0->t, c->fixed >= 0 && r0->state == V_CONST);
    if (rc) return rc;
  }
  return 0;
}

/* Asks to key (and plan again with) the small model inputs that value v is computed from,
 * following producers back and stopping at values known when planning (initializers, the
 * results of Shape and what is folded from them). */
static void want_inputs_of(wg_plan *p, int v) {
  const gpux__graph *g = p->g;
  if (!p->want || v < 0) return;
  unsigned char *seen = gpux__calloc((size_t)p->nv + 1, 1);
  int *stack = gpux__calloc((size_t)p->nv + 1, sizeof *stack), top = 0;
  if (seen && stack) stack[top++] = v, seen[v] = 1;
  while (top > 0) {
    int u = stack[--top], prod = p->vals[u].producer;
    if (p->vals[u].state == V_CONST || p->vals[u].state == V_ABSENT) continue;
    for (int q = 0; g->values[u].is_graph_input && q < g->n_inputs && q < 64; q++)
      if (g->inputs[q] == u && p->vals[u].state == V_HOST && gpux_tensor_count(&p->vals[u].t) <= 64)
        *p->want |= (uint64_t)1 << q;
    for (int j = 0; prod >= 0 && j < g->nodes[prod].n_in; j++) {
      int w = g->nodes[prod].in[j];
      if (w >= 0 && !seen[w]) seen[w] = 1, stack[top++] = w;
    }
  }
  free(seen);
  free(stack);
}

/* The body of Loop node i could not be planned with the iteration number unknown (it decides a
 * shape, as a Slice at the iteration does): one plan per iteration, each knowing its number. On
 * success the node is no longer declined. */
static int plan_per_iteration(wg_plan *p, int i, wg_ctrl *c, const gpux__graph *b, gpux_tensor *first, int64_t trips) {
  char why[300], node_why[300];
  int declined_node = p->declined_node;
  snprintf(why, sizeof why, "%s", p->why);
  snprintf(node_why, sizeof node_why, "%s", p->node_why);
  if (!(c->per_iter = gpux__calloc((size_t)trips, sizeof *c->per_iter))) return GPUX_E_NOMEM;
  p->declined = 0;
  for (int64_t it = 0; it < trips && !p->declined; it++) {
    first[0].data = &it; /* copied by the plan */
    int rc = plan_body(p, i, b, "body", first, &c->per_iter[it]);
    first[0].data = NULL;
    if (rc) return rc;
    if (!p->declined) c->n_per_iter++;
  }
  if (p->declined) { /* the first reason is the one to give */
    p->declined_node = declined_node;
    snprintf(p->why, sizeof p->why, "%s", why);
    snprintf(p->node_why, sizeof p->node_why, "%s", node_why);
  }
  return 0;
}

static int plan_loop(wg_plan *p, int i, wg_ctrl *c) {
  const gpux__node *n = &p->g->nodes[i];
  const gpux__attr *a = gpux__node_attr(n, "body");
  if (!a || !a->g) return gpux__error(GPUX_E_MODEL, "node '%s' (Loop): no body", n->name);
  const gpux__graph *b = a->g;
  int n_carried = n->n_in > 2 ? n->n_in - 2 : 0, n_scan = b->n_outputs - 1 - n_carried;
  if (b->n_inputs != n_carried + 2 || n_scan < 0 || n->n_out != n_carried + n_scan)
    return gpux__error(GPUX_E_MODEL, "node '%s' (Loop): the body takes %d inputs and gives %d outputs for %d loop-carried values",
                       n->name, b->n_inputs, b->n_outputs, n_carried);
  c->n_state = n_carried;
  c->n_scan_out = n_scan;
  int mv = n->n_in > 0 ? n->in[0] : -1, cv = n->n_in > 1 ? n->in[1] : -1;
  int has_m = mv >= 0 && p->vals[mv].state != V_ABSENT, has_cond = cv >= 0 && p->vals[cv].state != V_ABSENT;
  int64_t trips = -1; /* -1: known per run */
  if (!has_m) trips = INT64_MAX;
  else if (p->vals[mv].state == V_CONST && p->vals[mv].t.data && gpux_tensor_count(&p->vals[mv].t) > 0)
    trips = gpux__load_i64(p->vals[mv].t.dtype, p->vals[mv].t.data, 0);
  int cond0 = !has_cond ? 1 : p->vals[cv].state == V_CONST ? scalar_true(&p->vals[cv].t) : -1;
  static const uint8_t yes = 1;
  gpux_tensor *first = gpux__calloc((size_t)n_carried + 3, sizeof *first);
  if (!first) return GPUX_E_NOMEM;
  first[0] = (gpux_tensor){.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_INT64, .nbytes = 8}; /* the iteration: per run */
  first[1] = (gpux_tensor){.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_BOOL, .nbytes = 1};
  if (cond0 == 1) first[1].data = (void *)&yes; /* true on entry, and on every later entry */
  int rc = 0;
  for (int k = 0; k < n_carried; k++) {
    const wg_val *iv = &p->vals[n->in[2 + k]];
    if (n->in[2 + k] < 0 || iv->state == V_ABSENT || iv->t.kind != GPUX_KIND_TENSOR) {
      decline_at(p, i, "loop-carried value %d is not a tensor", k);
      goto out;
    }
    first[2 + k] = meta_of(&iv->t);
  }
  if ((rc = plan_body(p, i, b, "body", first, &c->sub[0]))) goto out;
  if (p->declined && has_m && trips < 0) want_inputs_of(p, mv); /* a plan per iteration needs the count */
  if (p->declined && trips >= 1 && trips <= WG_MAX_ITER_PLANS && (rc = plan_per_iteration(p, i, c, b, first, trips))) goto out;
  if (p->declined) goto out;
  const wg_plan *sp = c->sub[0] ? c->sub[0] : c->per_iter[0];
  for (int q = 0; q < (c->n_per_iter ? c->n_per_iter : 1); q++)
    for (int k = 0; k < n_carried; k++) {
      const gpux_tensor *o = &(c->n_per_iter ? c->per_iter[q] : sp)->vals[b->outputs[1 + k]].t;
      if (same_shape(o, &first[2 + k])) continue;
      char s0[96], s1[96];
      decline_at(p, i, "loop-carried value %d goes from %s to %s", k, gpux_tensor_describe(&first[2 + k], s0, sizeof s0),
                 gpux_tensor_describe(o, s1, sizeof s1));
      goto out;
    }
  for (int k = 0; k < n_carried; k++)
    if ((rc = set_out(p, i, k, &first[2 + k], 0))) goto out;
  if (n_scan) { /* stacked per iteration: the count must be known while planning */
    int body_cond = 1;
    for (int q = 0; q < (c->n_per_iter ? c->n_per_iter : 1); q++) {
      const wg_val *co = &(c->n_per_iter ? c->per_iter[q] : sp)->vals[b->outputs[0]];
      int bc = co->state == V_CONST ? scalar_true(&co->t) : -1;
      if (bc != 1) body_cond = bc < 0 || body_cond < 0 ? -1 : 0;
    }
    int64_t iters = -1;
    if (cond0 == 0 || trips == 0) iters = 0;
    else if (trips >= 0 && trips != INT64_MAX && cond0 == 1 && body_cond >= 0) iters = body_cond ? trips : 1;
    if (iters < 0 || iters > ((int64_t)1 << 24)) {
      if (has_m && trips < 0) want_inputs_of(p, mv); /* a count or condition from small inputs: key them */
      if (has_cond && cond0 < 0) want_inputs_of(p, cv);
      decline_at(p, i, "scan outputs of a loop whose iteration count depends on data");
      goto out;
    }
    c->iters = iters;
    for (int s = 0; s < n_scan; s++) {
      const gpux_tensor *o = &sp->vals[b->outputs[1 + n_carried + s]].t;
      if (o->kind != GPUX_KIND_TENSOR || o->ndim + 1 > GPUX_MAX_DIMS) {
        decline_at(p, i, "scan output %d is not a tensor", s);
        goto out;
      }
      gpux_tensor st = meta_of(o);
      st.ndim = o->ndim + 1;
      st.dims[0] = iters;
      for (int d = 0; d < o->ndim; d++) st.dims[d + 1] = o->dims[d];
      if ((rc = set_out(p, i, n_carried + s, &st, 0))) goto out;
    }
  }
out:
  free(first);
  return rc;
}

/* Scan (opset 9+) along axis 0 of its scan inputs and outputs, either direction. */
static int plan_scan(wg_plan *p, int i, wg_ctrl *c) {
  const gpux__node *n = &p->g->nodes[i];
  const gpux__attr *a = gpux__node_attr(n, "body"), *ns = gpux__node_attr(n, "num_scan_inputs");
  if (!a || !a->g || !ns) return gpux__error(GPUX_E_MODEL, "node '%s' (Scan): body and num_scan_inputs are required", n->name);
  if (n->opset < 9) {
    decline_at(p, i, "Scan before opset 9 (a batch axis and sequence lengths)");
    return 0;
  }
  const gpux__graph *b = a->g;
  int m = (int)ns->i, n_state = n->n_in - m, n_scan = b->n_outputs - n_state;
  if (m > 64) {
    decline_at(p, i, "more than 64 scan inputs");
    return 0;
  }
  if (m < 1 || n_state < 0 || n_scan < 0 || b->n_inputs != n->n_in || n->n_out != b->n_outputs)
    return gpux__error(GPUX_E_MODEL, "node '%s' (Scan): the body does not match %d state and %d scan inputs", n->name, n_state, m);
  static const char *const axes_names[2] = {"scan_input_axes", "scan_output_axes"};
  for (int q = 0; q < 2; q++) {
    const gpux__attr *ax = gpux__node_attr(n, axes_names[q]);
    for (int k = 0; ax && k < ax->n; k++) {
      int rank = q == 0 && k < m && n->in[n_state + k] >= 0 ? p->vals[n->in[n_state + k]].t.ndim : -1;
      if (ax->ints[k] != 0 && !(rank > 0 && ax->ints[k] == -rank)) {
        decline_at(p, i, "%s other than 0", axes_names[q]);
        return 0;
      }
    }
  }
  c->n_state = n_state;
  c->n_scan_out = n_scan;
  c->rev_in = gpux__calloc((size_t)m + 1, 1);
  c->rev_out = gpux__calloc((size_t)n_scan + 1, 1);
  gpux_tensor *first = gpux__calloc((size_t)n->n_in + 1, sizeof *first);
  int rc = 0;
  if (!c->rev_in || !c->rev_out || !first) { rc = GPUX_E_NOMEM; goto out; }
  const gpux__attr *di = gpux__node_attr(n, "scan_input_directions"), *dout = gpux__node_attr(n, "scan_output_directions");
  for (int k = 0; di && k < di->n && k < m; k++) c->rev_in[k] = di->ints[k] != 0;
  for (int k = 0; dout && k < dout->n && k < n_scan; k++) c->rev_out[k] = dout->ints[k] != 0;
  c->iters = -1;
  for (int k = 0; k < n->n_in; k++) {
    const wg_val *iv = n->in[k] >= 0 ? &p->vals[n->in[k]] : NULL;
    if (!iv || iv->state == V_ABSENT || iv->t.kind != GPUX_KIND_TENSOR || (k >= n_state && iv->t.ndim < 1)) {
      decline_at(p, i, "input %d is not a tensor%s", k, k >= n_state ? " of rank 1 or more" : "");
      goto out;
    }
    first[k] = meta_of(&iv->t);
    if (k < n_state) continue;
    if (c->iters >= 0 && iv->t.dims[0] != c->iters) {
      rc = gpux__error(GPUX_E_SHAPE, "node '%s' (Scan): scan inputs of %lld and %lld steps", n->name, (long long)c->iters,
                       (long long)iv->t.dims[0]);
      goto out;
    }
    c->iters = iv->t.dims[0];
    first[k].ndim--; /* one step's slice */
    for (int d = 0; d < first[k].ndim; d++) first[k].dims[d] = iv->t.dims[d + 1];
  }
  if ((rc = plan_body(p, i, b, "body", first, &c->sub[0])) || p->declined) goto out;
  const wg_plan *sp = c->sub[0];
  for (int k = 0; k < n_state; k++) {
    const gpux_tensor *o = &sp->vals[b->outputs[k]].t;
    if (!same_shape(o, &first[k])) {
      char s0[96], s1[96];
      decline_at(p, i, "state %d goes from %s to %s", k, gpux_tensor_describe(&first[k], s0, sizeof s0),
                 gpux_tensor_describe(o, s1, sizeof s1));
      goto out;
    }
    if ((rc = set_out(p, i, k, &first[k], 0))) goto out;
  }
  for (int s = 0; s < n_scan; s++) {
    const gpux_tensor *o = &sp->vals[b->outputs[n_state + s]].t;
    if (o->kind != GPUX_KIND_TENSOR || o->ndim + 1 > GPUX_MAX_DIMS) {
      decline_at(p, i, "scan output %d is not a tensor", s);
      goto out;
    }
    gpux_tensor st = meta_of(o);
    st.ndim = o->ndim + 1;
    st.dims[0] = c->iters;
    for (int d = 0; d < o->ndim; d++) st.dims[d + 1] = o->dims[d];
    if ((rc = set_out(p, i, n_state + s, &st, 0))) goto out;
  }
out:
  free(first);
  return rc;
}

/* Node i has nested graphs: If, Loop and Scan get plans for their bodies (P_CTRL); anything else,
 * or a body that cannot be planned, sends the graph to the CPU. */
static int plan_control(wg_plan *p, int i) {
  const gpux__node *n = &p->g->nodes[i];
  wg_nodeinfo *ni = &p->nodes[i];
  char why[160];
  int kind = n->domain[0] ? 0 : !strcmp(n->op_type, "If") ? CTRL_IF : !strcmp(n->op_type, "Loop") ? CTRL_LOOP
                              : !strcmp(n->op_type, "Scan") ? CTRL_SCAN : 0;
  if (!kind) {
    decline_at(p, i, "a nested graph, which only If, Loop and Scan run on the GPU");
    return 0;
  }
  if (p->supported ? !p->supported[i] : !gpux__wg_supports(n, why, sizeof why)) {
    gpux__wg_supports(n, why, sizeof why);
    decline_at(p, i, "%s", why);
    return 0;
  }
  wg_ctrl *c = gpux__calloc(1, sizeof *c);
  if (!c) return GPUX_E_NOMEM;
  ni->ctrl = c;
  c->kind = kind;
  c->fixed = -1;
  int rc = kind == CTRL_IF ? plan_if(p, i, c) : kind == CTRL_LOOP ? plan_loop(p, i, c) : plan_scan(p, i, c);
  if (rc || p->declined) return rc;
  /* outputs live in this plan's storage, written by copies after the body runs */
  int *objs = gpux__calloc((size_t)(n->n_in + n->n_out + c->n_cap + 1), sizeof *objs);
  if (!objs) return GPUX_E_NOMEM;
  ni->objs = objs;
  for (int j = 0; j < n->n_out; j++) {
    int v = n->out[j];
    if (v < 0 || p->vals[v].state == V_CONST) continue;
    int type = val_held(p, v);
    if (type < 0) {
      decline_at(p, i, "output %d is %s, which the GPU path does not hold", j, gpux_dtype_name(p->vals[v].t.dtype));
      return 0;
    }
    p->vals[v].state = V_GPU;
    p->objs[v].used = 1;
    p->objs[v].gpu_type = type;
    objs[ni->n_objs++] = v;
  }
  ni->place = P_CTRL; /* (needs_host asks) */
  for (int j = 0; j < n->n_in + c->n_cap; j++) { /* device data the bodies read; host data goes there once */
    int v = j < n->n_in ? n->in[j] : c->cap[j - n->n_in];
    if (v < 0 || (j < n->n_in && needs_host(p, i, j))) continue;
    wg_val *val = &p->vals[v];
    int type = val_held(p, v);
    if (val->state == V_HOST && val->t.kind == GPUX_KIND_TENSOR && type >= 0 && (!p->objs[v].used || p->objs[v].gpu_type == type)) {
      p->objs[v].used = 1;
      p->objs[v].gpu_type = type;
    } else if (val->state != V_GPU) {
      continue;
    }
    val->gpu_used = 1;
    int dup = 0;
    for (int q = 0; q < ni->n_objs; q++) dup |= objs[q] == v;
    if (!dup) objs[ni->n_objs++] = v;
  }
  int all_const = 1;
  for (int j = 0; j < n->n_out; j++) all_const &= n->out[j] < 0 || p->vals[n->out[j]].state == V_CONST;
  ni->place = all_const ? P_CONST : P_CTRL;
  return 0;
}

uint64_t gpux__wg_plan_bytes(const wg_plan *p) { return p->bytes; }
int gpux__wg_plan_hollow(const wg_plan *p) { return p->hollow; }

/* Dispatches of the plan and its bodies that read or write f16-held values. */
uint64_t gpux__wg_plan_half_dispatches(const wg_plan *p) {
  if (!p) return 0;
  uint64_t n = (uint64_t)p->half_disp;
  for (int i = 0; p->nodes && i < p->g->n_nodes; i++) {
    const wg_ctrl *c = p->nodes[i].ctrl;
    if (!c) continue;
    n += gpux__wg_plan_half_dispatches(c->sub[0]) + gpux__wg_plan_half_dispatches(c->sub[1]);
    for (int k = 0; k < c->n_per_iter; k++) n += gpux__wg_plan_half_dispatches(c->per_iter[k]);
  }
  return n;
}

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
  case P_CTRL: /* on the CPU where a node of a body is */
    if (!p->nodes[i].why[0]) return GPUX__PLACE_BACKEND;
    if (why) *why = p->nodes[i].why;
    return GPUX__PLACE_CPU;
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
  return p->host->run_node(p->host->rt, n, in, out, 0, NULL);
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
  if ((rc = gpux__wg_gpu_image(t, image_form(p, v), &img, &bytes, &owned))) {
    if (rc != GPUX_E_UNSUPPORTED) return rc;
    /* an integer beyond the 32 bits the GPU holds: this run is computed on the CPU, exactly */
    if (!p->flag_noted)
      gpux__log(GPUX_LOG_NOTE, "'%s': %s; this run is computed on the CPU", p->g->values[v].name, gpux_last_error());
    p->flag_noted = 1;
    return GPUX__DECLINED;
  }
  d->f.wgpuQueueWriteBuffer(d->queue, p->bufs[o->buf], o->off, img, bytes);
  if (owned) free(img);
  p->stats->uploads++, p->stats->upload_bytes += bytes;
  return 0;
}

/* Each node of the segment submitted and waited for alone: its wall time goes to prof (profiling
 * without timestamp-query) and, with GPUX_WEBGPU_PROFILE, to the log. This is the segment's run:
 * it is not encoded again (a second run would read inputs whose buffers later nodes reused or
 * wrote in place), only its results are copied out. */
static void profile_segment(wg_plan *p, const wg_seg *sg, gpux__prof *prof) {
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
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (prof) gpux__prof_add(prof, n->op_type, "webgpu", ms, GPUX__PROF_WALL);
    if (getenv("GPUX_WEBGPU_PROFILE"))
      gpux__log(GPUX_LOG_DEBUG, "webgpu: %8.3f ms  %-20s %-30s %d dispatch%s, first %ux%ux%u", ms, n->op_type, n->name,
                st->n_disp, st->n_disp == 1 ? "" : "es", d0->x, d0->y, d0->z);
  }
}

/* The query set and buffers of timestamp profiling, made on first use. */
static int ts_prepare(wg_plan *p) {
  wg_device *d = p->dev;
  if (p->qs) return 0;
  int most = 1;
  for (int s = 0; s < p->n_segs; s++) {
    int n = 0;
    for (int k = p->segs[s].first_step; k <= p->segs[s].last_step; k++) n += p->steps[k].n_disp > 0;
    if (n > most) most = n;
  }
  uint32_t count = 2u * (uint32_t)most;
  int rc = gpux__wg_query_set(d, count, &p->qs);
  if (rc) return rc;
  p->ts_resolve = gpux__wg_buffer(d, 8u * count, WGPUBufferUsage_QueryResolve | WGPUBufferUsage_CopySrc, "gpux timestamps");
  p->ts_read = gpux__wg_buffer(d, 8u * count, WGPUBufferUsage_MapRead | WGPUBufferUsage_CopyDst, "gpux timestamps read-back");
  rc = gpux__wg_check(d, "preparing timestamp queries");
  if (!rc && (!p->ts_resolve || !p->ts_read)) rc = gpux__error(GPUX_E_DEVICE, "WebGPU: no timestamp buffers");
  p->ts_count = rc ? 0 : count;
  return rc;
}

/* Encodes the segment's dispatches: into one pass, or, when profiling with timestamps, one pass
 * per node with its start and end written to the query set (then resolved for reading back).
 * Returns the number of nodes timed. */
static int encode_segment(wg_plan *p, const wg_seg *sg, WGPUCommandEncoder enc, int timed) {
  wg_device *d = p->dev;
  WGPUComputePassEncoder pass = timed ? NULL : d->f.wgpuCommandEncoderBeginComputePass(enc, NULL);
  uint32_t n_timed = 0;
  const wg_pipeline *last = NULL;
  /* the hot loop: every dispatch of the segment into one pass */
  for (int s = sg->first_step; s <= sg->last_step; s++) {
    const wg_step *st = &p->steps[s];
    if (timed && st->n_disp) {
      WGPUPassTimestampWrites tw = {NULL, p->qs, 2 * n_timed, 2 * n_timed + 1};
      WGPUComputePassDescriptor pd = {NULL, {NULL, WGPU_STRLEN}, &tw};
      pass = d->f.wgpuCommandEncoderBeginComputePass(enc, &pd);
      n_timed++;
      last = NULL; /* a new pass */
    }
    for (int q = 0; q < st->n_disp; q++) {
      const wg_disp *ds = &p->disp[st->first_disp + q];
      if (ds->pipe != last) d->f.wgpuComputePassEncoderSetPipeline(pass, ds->pipe->pipeline); /* (a pass keeps it) */
      last = ds->pipe;
      d->f.wgpuComputePassEncoderSetBindGroup(pass, 0, ds->bg, 0, NULL);
      d->f.wgpuComputePassEncoderDispatchWorkgroups(pass, ds->x, ds->y, ds->z);
    }
    if (timed && st->n_disp) {
      d->f.wgpuComputePassEncoderEnd(pass);
      d->f.wgpuComputePassEncoderRelease(pass);
    }
  }
  if (!timed) {
    d->f.wgpuComputePassEncoderEnd(pass);
    d->f.wgpuComputePassEncoderRelease(pass);
  } else if (n_timed) {
    d->f.wgpuCommandEncoderResolveQuerySet(enc, p->qs, 0, 2 * n_timed, p->ts_resolve, 0);
    d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, p->ts_resolve, 0, p->ts_read, 0, 16u * n_timed);
  }
  return (int)n_timed;
}

/* Reads back the timestamps of a submitted segment: each node's GPU time goes to prof. */
static int read_timestamps(wg_plan *p, const wg_seg *sg, int n_timed, gpux__prof *prof) {
  wg_device *d = p->dev;
  const void *mapped = NULL;
  int rc = gpux__wg_map_read(d, p->ts_read, 16u * (size_t)n_timed, &mapped);
  if (rc) return rc;
  const uint64_t *t = mapped;
  int q = 0;
  for (int s = sg->first_step; s <= sg->last_step && q < n_timed; s++) {
    const wg_step *st = &p->steps[s];
    if (!st->n_disp) continue;
    uint64_t b = t[2 * q], e = t[2 * q + 1];
    gpux__prof_add(prof, p->g->nodes[st->node].op_type, "webgpu", e > b ? (double)(e - b) / 1e6 : 0, GPUX__PROF_TIMESTAMPS);
    q++;
  }
  d->f.wgpuBufferUnmap(p->ts_read);
  return 0;
}

/* One run's bindings: host values, device values bound to model inputs, and where results go. */
typedef struct wg_run {
  gpux_tensor *hv;               /* [nv] host data */
  const gpux_device_tensor **dev_in;     /* [nv] the device value bound to a model input */
  unsigned char *want_host;      /* [nv] an output the caller wants on the host */
  unsigned char *want_dev;       /* [nv] an output the caller keeps on the device */
  gpux_device_tensor **dev_out;          /* [nv] kept results, copied out in their segment */
  gpux_run_stats *stats;
  gpux__prof *prof;              /* profiling: node times go here, else NULL */
} wg_run;

/* Device values bound to inputs that a segment reads: copied into the plan's storage on the GPU. */
/* Copies the inputs bound to device values into the plan's storage: into `into`, the encoder of
 * the segment's work, or when NULL, in a command buffer of their own submitted now. */
static int copy_bound_inputs(wg_plan *p, const wg_seg *sg, const wg_run *r, WGPUCommandEncoder into) {
  wg_device *d = p->dev;
  WGPUCommandEncoder enc = into;
  for (int u = 0; u < sg->n_uploads; u++) {
    int v = sg->uploads[u];
    const gpux_device_tensor *dv = r->dev_in[v];
    if (!dv) continue;
    uint64_t bytes = val_bytes(p, v);
    if (dv->bytes != bytes || dv->held != p->objs[v].gpu_type)
      return gpux__error(GPUX_E_INTERNAL, "WebGPU: the value bound to '%s' does not match the plan", p->g->values[v].name);
    if (!bytes) continue;
    if (!enc && !(enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL)))
      return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a command encoder");
    const wg_obj *o = &p->objs[v];
    d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, dv->buf, dv->off, p->bufs[o->buf], o->off, bytes);
  }
  if (!enc || enc == into) return 0;
  WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(enc, NULL);
  d->f.wgpuCommandEncoderRelease(enc);
  if (!cmd) return gpux__error(GPUX_E_DEVICE, "WebGPU: encoding a copy failed");
  d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
  d->f.wgpuCommandBufferRelease(cmd);
  return 0;
}

/* A node of the segment set its overflow flag: an integer result (int64 held as i32) did not fit
 * 32 bits. The flags are cleared and the run declined, so that the runtime computes it on the CPU
 * exactly; the next run tries the GPU again. */
static int overflowed(wg_plan *p, const wg_seg *sg, int node) {
  wg_device *d = p->dev;
  static const int32_t zero = 0;
  for (int f = 0; f < sg->n_flags; f++) {
    const wg_obj *o = &p->objs[alias_root(p, p->flags[sg->flags[f]].obj)];
    d->f.wgpuQueueWriteBuffer(d->queue, p->bufs[o->buf], o->off, &zero, 4);
  }
  if (!p->flag_noted) {
    char label[200];
    const char *name = node >= 0 && node < p->g->n_nodes ? node_label(p->g, node, label, sizeof label) : "a node";
    gpux__log(GPUX_LOG_NOTE, "%s: an integer result does not fit the 32 bits the GPU holds it in; this run is computed on the CPU", name);
    p->flag_noted = 1;
  }
  return GPUX__DECLINED;
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
  /* profiling: GPU timestamps around each node's pass, else wall times of nodes run alone */
  int logged = getenv("GPUX_WEBGPU_PROFILE") != NULL;
  int timed = !logged && r->prof && d->has_timestamps && !ts_prepare(p);
  int alone = logged || (r->prof && !timed);
  if (alone) { /* the nodes run one by one, their inputs copied before: the segment's only run */
    if ((rc = copy_bound_inputs(p, sg, r, NULL))) return rc;
    profile_segment(p, sg, r->prof);
  }
  WGPUCommandEncoder enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL);
  if (!enc) return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a command encoder");
  if (!alone && (rc = copy_bound_inputs(p, sg, r, enc))) { /* in the same command buffer, before the pass */
    d->f.wgpuCommandEncoderRelease(enc);
    return rc;
  }
  int n_timed = alone ? 0 : encode_segment(p, sg, enc, timed);
  /* results: kept ones copied into their own buffers on the GPU, the rest staged for the host */
  int n_staged = 0;
  for (int k = 0; k < sg->n_downloads; k++) {
    int v = sg->downloads[k];
    uint64_t bytes = val_bytes(p, v);
    const wg_obj *o = &p->objs[v];
    if (r->want_dev[v] && !r->dev_out[v]) {
      if ((rc = gpux__wg_value_new(d, &p->vals[v].t, val_held(p, v), &r->dev_out[v]))) {
        d->f.wgpuCommandEncoderRelease(enc);
        return rc;
      }
      if (bytes) d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, p->bufs[o->buf], o->off, r->dev_out[v]->buf, 0, bytes);
    }
    if (!bytes || !(r->want_host[v] || p->vals[v].host_read)) continue; /* empty: made on the host */
    d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, p->bufs[o->buf], o->off, sg->staging, sg->dl_off[k], (bytes + 3) & ~(uint64_t)3);
    n_staged++;
  }
  for (int f = 0; f < sg->n_flags; f++) { /* overflow flags come back with the results */
    const wg_obj *o = &p->objs[alias_root(p, p->flags[sg->flags[f]].obj)];
    d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, p->bufs[o->buf], o->off, sg->staging, sg->flags_off + 4 * (uint64_t)f, 4);
    n_staged++;
  }
  WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(enc, NULL);
  d->f.wgpuCommandEncoderRelease(enc);
  if (!cmd) return gpux__wg_check(d, "encoding") ? GPUX_E_DEVICE : gpux__error(GPUX_E_DEVICE, "WebGPU: encoding failed");
  d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
  d->f.wgpuCommandBufferRelease(cmd);
  if ((rc = gpux__wg_check(d, "running the model"))) return rc;
  if (n_timed && (rc = read_timestamps(p, sg, n_timed, r->prof))) return rc;
  for (int k = 0; k < sg->n_downloads && !rc; k++) { /* empty results are made on the host */
    int v = sg->downloads[k];
    const gpux_tensor *t = &p->vals[v].t;
    if (val_bytes(p, v) || !(r->want_host[v] || p->vals[v].host_read)) continue;
    gpux_tensor_free(&hv[v]);
    rc = gpux_tensor_init(&hv[v], t->dtype, t->ndim, t->dims);
  }
  if (rc || !n_staged) return rc;
  const void *mapped = NULL;
  if ((rc = gpux__wg_map_read(d, sg->staging, (size_t)sg->staging_bytes, &mapped))) return rc;
  for (int k = 0; k < sg->n_downloads && !rc; k++) {
    int v = sg->downloads[k];
    const gpux_tensor *t = &p->vals[v].t;
    uint64_t bytes = val_bytes(p, v);
    if (!bytes || !(r->want_host[v] || p->vals[v].host_read)) continue;
    gpux_tensor_free(&hv[v]);
    if ((rc = gpux_tensor_init(&hv[v], t->dtype, t->ndim, t->dims))) break;
    r->stats->downloads++, r->stats->download_bytes += bytes;
    const void *src = (const char *)mapped + sg->dl_off[k];
    if (p->objs[v].gpu_type == WG_F16) {
      gpux__wg_from_f16(t->dtype, hv[v].data, src, gpux_tensor_count(t));
    } else if (t->dtype == GPUX_DT_FLOAT) {
      memcpy(hv[v].data, src, (size_t)bytes);
    } else if (gpux__wg_is_f32(t->dtype)) { /* float16/bfloat16: exact, the values are already rounded */
      gpux__narrow_f32(t->dtype, hv[v].data, src, gpux_tensor_count(t));
    } else {
      int64_t cnt = gpux_tensor_count(t);
      for (int64_t e = 0; e < cnt; e++) gpux__store_i64(t->dtype, hv[v].data, e, ((const int32_t *)src)[e]);
    }
  }
  int32_t over = 0;
  for (int f = 0; f < sg->n_flags && !over; f++) memcpy(&over, (const char *)mapped + sg->flags_off + 4 * (uint64_t)f, 4);
  d->f.wgpuBufferUnmap(sg->staging);
  if (!rc && over) rc = overflowed(p, sg, over - 1);
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
      if (first->backend) return gpux__wg_value_copy(p->dev, first->buf, first->off, &first->t, first->held, out);
      break;
    }
  if (r->dev_in[v]) return gpux__wg_value_copy(p->dev, r->dev_in[v]->buf, r->dev_in[v]->off, &r->dev_in[v]->t, r->dev_in[v]->held, out);
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

/* ---- control flow: running ---- */

int gpux__wg_plan_run(wg_plan *p, const gpux__io *io);

/* A view of value v in this plan's storage, for a body to read. */
static void view_of(const wg_plan *p, int v, gpux_device_tensor *dv) {
  memset(dv, 0, sizeof *dv);
  const wg_obj *o = &p->objs[v];
  dv->t = meta_of(&p->vals[v].t);
  dv->backend = &gpux__backend_webgpu;
  dv->dev = p->dev;
  dv->buf = p->bufs[o->buf];
  dv->off = o->off;
  dv->bytes = val_bytes(p, v);
  dv->held = val_held(p, v);
}

/* Value v of this plan as a body's input: a view of the device storage, host data, or absent. */
static void bind_value(const wg_plan *p, const wg_run *r, int v, gpux_tensor *t, const gpux_device_tensor **dv,
                       gpux_device_tensor *view) {
  *dv = NULL;
  memset(t, 0, sizeof *t);
  const wg_val *val = v >= 0 ? &p->vals[v] : NULL;
  if (!val || val->state == V_ABSENT) t->kind = GPUX_KIND_NONE;
  else if (val->state == V_CONST) *t = val->t;
  else if (val->state == V_GPU || (val->upload_seg != -1 && p->objs[v].buf >= 0)) { /* on the device by now */
    view_of(p, v, view);
    *t = view->t;
    *dv = view;
  } else if (r->dev_in[v]) { /* a model input bound to a device value */
    *t = meta_of(&r->dev_in[v]->t);
    *dv = r->dev_in[v];
  } else {
    *t = r->hv[v];
  }
}

static int submit(wg_plan *p, WGPUCommandEncoder *enc) {
  wg_device *d = p->dev;
  if (!*enc) return 0;
  WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(*enc, NULL);
  d->f.wgpuCommandEncoderRelease(*enc);
  *enc = NULL;
  if (!cmd) return gpux__error(GPUX_E_DEVICE, "WebGPU: encoding a copy failed");
  d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
  d->f.wgpuCommandBufferRelease(cmd);
  return 0;
}

/* The host data of value v that a control-flow node reads on the host (its segment read it back). */
static const gpux_tensor *host_value(const wg_plan *p, const wg_run *r, int v) {
  return p->vals[v].state == V_CONST ? &p->vals[v].t : &r->hv[v];
}

/* Writes src (a device value or a host one) into value v's storage, `at` bytes in. */
static int store_into(wg_plan *p, int v, const gpux_device_tensor *src, uint64_t at, WGPUCommandEncoder *enc) {
  wg_device *d = p->dev;
  const wg_obj *o = &p->objs[v];
  if (!src->backend || src->held != o->gpu_type) {
    /* data the device does not hold came back as a host value; a value held otherwise (f32 where
       this plan holds f16: a body's constant or CPU result) goes over the host */
    gpux_tensor host = {0};
    const gpux_tensor *t = &src->t;
    if (src->backend) {
      int rc = submit(p, enc); /* copies into src encoded so far */
      if (!rc) rc = gpux__wg_value_read(src, &host, 1);
      if (rc) return rc;
      t = &host;
    }
    if (!gpux_tensor_count(t)) return 0;
    void *img;
    size_t bytes;
    int owned, rc = gpux__wg_gpu_image(t, o->gpu_type, &img, &bytes, &owned);
    if (!rc) {
      d->f.wgpuQueueWriteBuffer(d->queue, p->bufs[o->buf], o->off + at, img, bytes);
      if (owned) free(img);
      p->stats->uploads++, p->stats->upload_bytes += bytes;
    }
    gpux_tensor_free(&host);
    return rc;
  }
  if (!src->bytes) return 0;
  gpux_device_tensor *tmp = NULL;
  if (src->buf == p->bufs[o->buf]) { /* within one buffer (a loop that ran no iteration): over a copy */
    int rc = gpux__wg_value_copy(d, src->buf, src->off, &src->t, src->held, &tmp);
    if (rc) return rc;
    src = tmp;
  }
  if (!*enc && !(*enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL))) {
    if (tmp) gpux__wg_value_free(tmp, 1);
    return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a command encoder");
  }
  d->f.wgpuCommandEncoderCopyBufferToBuffer(*enc, src->buf, src->off, p->bufs[o->buf], o->off + at, src->bytes);
  if (tmp) { /* the copy out of it is submitted before the buffer goes */
    int rc = submit(p, enc);
    gpux__wg_value_free(tmp, 1);
    return rc;
  }
  return 0;
}


/* After node i wrote its outputs into this plan's storage: the ones read on the host come back,
 * the ones the caller keeps on the device are copied out. */
static int ctrl_outputs(wg_plan *p, int i, wg_run *r) {
  const gpux__node *n = &p->g->nodes[i];
  int rc = 0;
  for (int j = 0; j < n->n_out && !rc; j++) {
    int v = n->out[j];
    if (v < 0 || p->vals[v].state != V_GPU) continue;
    gpux_device_tensor view;
    view_of(p, v, &view);
    if (p->vals[v].host_read || r->want_host[v]) {
      gpux_tensor_free(&r->hv[v]);
      if (!(rc = gpux__wg_value_read(&view, &r->hv[v], 1))) r->stats->downloads++, r->stats->download_bytes += view.bytes;
    }
    if (!rc && r->want_dev[v] && !r->dev_out[v]) rc = gpux__wg_value_copy(p->dev, view.buf, view.off, &view.t, view.held, &r->dev_out[v]);
  }
  return rc;
}

/* One run of body plan sp: inputs bound as given, every output kept on the device except those
 * with host[o] set, which come back in outs[o]. */
static int run_body(wg_plan *sp, const gpux_tensor *ins, const gpux_device_tensor *const *dvs, gpux_tensor *outs,
                    const unsigned char *keep, gpux_device_tensor **vals, gpux_run_stats *stats) {
  gpux__io io = {ins, dvs, sp->n_in_ids, outs, sp->g->n_outputs, keep, vals, stats};
  for (int o = 0; o < sp->g->n_outputs; o++) vals[o] = NULL, memset(&outs[o], 0, sizeof outs[o]);
  return gpux__wg_plan_run(sp, &io);
}

typedef struct ctrl_io {         /* one body's bindings, sized for its plan */
  gpux_tensor *ins, *outs;
  const gpux_device_tensor **dvs;
  gpux_device_tensor *views, **vals;
  unsigned char *keep;
} ctrl_io;

static int ctrl_io_init(ctrl_io *b, const wg_plan *sp) {
  size_t ni = (size_t)sp->n_in_ids + 1, no = (size_t)sp->g->n_outputs + 1;
  b->ins = gpux__calloc(ni, sizeof *b->ins);
  b->dvs = gpux__calloc(ni, sizeof *b->dvs);
  b->views = gpux__calloc(ni, sizeof *b->views);
  b->outs = gpux__calloc(no, sizeof *b->outs);
  b->vals = gpux__calloc(no, sizeof *b->vals);
  b->keep = gpux__calloc(no, 1);
  return b->ins && b->dvs && b->views && b->outs && b->vals && b->keep ? 0 : GPUX_E_NOMEM;
}

static void ctrl_io_free(ctrl_io *b, int n_out) {
  for (int o = 0; b->outs && o < n_out; o++) gpux_tensor_free(&b->outs[o]);
  for (int o = 0; b->vals && o < n_out; o++) drop_value(b->vals[o]);
  free(b->ins);
  free(b->dvs);
  free(b->views);
  free(b->outs);
  free(b->vals);
  free(b->keep);
}

/* The captured values of body plan sp, bound from this plan (they follow the body's inputs). */
static void bind_captures(const wg_plan *p, const wg_run *r, const wg_plan *sp, ctrl_io *b) {
  for (int k = sp->g->n_inputs; k < sp->n_in_ids; k++)
    bind_value(p, r, sp->g->values[sp->in_ids[k]].outer, &b->ins[k], &b->dvs[k], &b->views[k]);
}

static int run_if(wg_plan *p, int i, wg_ctrl *c, wg_run *r) {
  const gpux__node *n = &p->g->nodes[i];
  int br = c->fixed >= 0 ? c->fixed : scalar_true(host_value(p, r, n->in[0])) ? 0 : 1; /* the one read-back */
  wg_plan *sp = c->sub[br];
  ctrl_io b = {0};
  WGPUCommandEncoder enc = NULL;
  int rc = ctrl_io_init(&b, sp);
  if (!rc) {
    bind_captures(p, r, sp, &b);
    for (int j = 0; j < n->n_out; j++) b.keep[j] = 1;
    rc = run_body(sp, b.ins, b.dvs, b.outs, b.keep, b.vals, r->stats);
  }
  for (int j = 0; j < n->n_out && !rc; j++)
    if (n->out[j] >= 0 && p->vals[n->out[j]].state == V_GPU && b.vals[j]) rc = store_into(p, n->out[j], b.vals[j], 0, &enc);
  if (!rc) rc = submit(p, &enc);
  else if (enc) p->dev->f.wgpuCommandEncoderRelease(enc);
  ctrl_io_free(&b, sp->g->n_outputs);
  return rc;
}

/* Loop and Scan: the body runs once per iteration; the state (loop-carried values) moves from one
 * iteration's kept outputs to the next one's inputs without leaving the device. */
static int run_iterations(wg_plan *p, int i, wg_ctrl *c, wg_run *r) {
  const gpux__node *n = &p->g->nodes[i];
  wg_plan *sp = c->sub[0] ? c->sub[0] : c->per_iter[0];
  int loop = c->kind == CTRL_LOOP, first = loop ? 2 : 0; /* where the state starts among the node's inputs */
  int n_state = c->n_state, in0 = loop ? 2 : 0;         /* ... and among the body's inputs */
  int m = loop ? 0 : n->n_in - n_state, out0 = loop ? 1 : 0;
  int64_t trips = c->kind == CTRL_SCAN ? c->iters : INT64_MAX;
  int cond = 1;
  if (loop) {
    int mv = n->in[0], cv = n->n_in > 1 ? n->in[1] : -1;
    if (mv >= 0 && p->vals[mv].state != V_ABSENT) {
      const gpux_tensor *t = host_value(p, r, mv);
      if (t->data && gpux_tensor_count(t) > 0) trips = gpux__load_i64(t->dtype, t->data, 0);
    }
    if (cv >= 0 && p->vals[cv].state != V_ABSENT) cond = scalar_true(host_value(p, r, cv));
  }
  ctrl_io b = {0};
  gpux_device_tensor **state = gpux__calloc((size_t)n_state + 1, sizeof *state); /* owned: the last iteration's */
  WGPUCommandEncoder enc = NULL;
  int rc = ctrl_io_init(&b, sp);
  if (!rc && !state) rc = GPUX_E_NOMEM;
  if (!rc) {
    bind_captures(p, r, sp, &b);
    for (int k = 0; k < n_state; k++) bind_value(p, r, n->in[first + k], &b.ins[in0 + k], &b.dvs[in0 + k], &b.views[in0 + k]);
    for (int o = out0; o < sp->g->n_outputs; o++) b.keep[o] = 1; /* a Loop's condition comes to the host */
  }
  int64_t it = 0, iter_val = 0;
  uint8_t cond_val = 1;
  gpux_device_tensor scan_views[64];
  for (; !rc && it < trips && cond; it++) {
    if (loop) {
      iter_val = it;
      b.ins[0] = (gpux_tensor){.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_INT64, .data = &iter_val, .nbytes = 8};
      b.ins[1] = (gpux_tensor){.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_BOOL, .data = &cond_val, .nbytes = 1};
    }
    for (int k = 0; k < m && k < 64; k++) { /* Scan: this step's slice of each scan input */
      int v = n->in[n_state + k];
      int64_t step = c->rev_in[k] ? c->iters - 1 - it : it;
      gpux_tensor whole;
      const gpux_device_tensor *dv;
      gpux_device_tensor view;
      bind_value(p, r, v, &whole, &dv, &view);
      gpux_tensor *t = &b.ins[n_state + k];
      *t = meta_of(&sp->vals[sp->in_ids[n_state + k]].t);
      int64_t elems = gpux_tensor_count(t);
      if (dv) {
        scan_views[k] = *dv;
        scan_views[k].t = meta_of(t);
        scan_views[k].off = dv->off + (uint64_t)(step * elems) * 4u;
        scan_views[k].bytes = (uint64_t)elems * 4u;
        b.dvs[n_state + k] = &scan_views[k];
        t->data = NULL;
      } else {
        t->data = (char *)whole.data + (size_t)(step * elems) * gpux_dtype_size(t->dtype);
        t->owns_data = 0;
        b.dvs[n_state + k] = NULL;
      }
    }
    gpux_device_tensor **vals = b.vals;
    if (c->n_per_iter && it >= c->n_per_iter) {
      rc = gpux__error(GPUX_E_INTERNAL, "WebGPU: loop '%s' went past its %d planned iterations", n->name, c->n_per_iter);
      break;
    }
    if ((rc = run_body(c->n_per_iter ? c->per_iter[it] : sp, b.ins, b.dvs, b.outs, b.keep, vals, r->stats))) break;
    if (loop) {
      cond = scalar_true(&b.outs[0]);
      cond_val = (uint8_t)cond;
      gpux_tensor_free(&b.outs[0]);
    }
    for (int k = 0; k < n_state; k++) { /* the next iteration reads this one's state */
      drop_value(state[k]);
      state[k] = vals[out0 + k];
      vals[out0 + k] = NULL;
      b.dvs[in0 + k] = state[k]->backend ? state[k] : NULL;
      b.ins[in0 + k] = state[k]->backend ? meta_of(&state[k]->t) : state[k]->t;
    }
    for (int s = 0; s < c->n_scan_out && !rc; s++) { /* this step's slice of each scan output */
      int v = n->out[n_state + s];
      gpux_device_tensor *o = vals[out0 + n_state + s];
      if (v >= 0 && o) {
        int64_t step = c->rev_out && c->rev_out[s] ? c->iters - 1 - it : it;
        rc = store_into(p, v, o, (uint64_t)(step * gpux_tensor_count(&o->t)) * 4u, &enc);
      }
    }
    if (!rc) rc = submit(p, &enc);
    for (int s = 0; s < c->n_scan_out; s++) drop_value(vals[out0 + n_state + s]), vals[out0 + n_state + s] = NULL;
  }
  if (!rc && loop && c->n_scan_out && it != c->iters)
    rc = gpux__error(GPUX_E_INTERNAL, "WebGPU: loop '%s' ran %lld iterations, %lld planned", n->name, (long long)it,
                     (long long)c->iters);
  for (int k = 0; k < n_state && !rc; k++) { /* the final state: the last iteration's, or the initial one */
    int v = n->out[k];
    if (v < 0 || p->vals[v].state != V_GPU) continue;
    gpux_device_tensor host = {0};
    const gpux_device_tensor *src = b.dvs[in0 + k];
    if (!src) { /* host data */
      host.t = b.ins[in0 + k];
      src = &host;
    }
    rc = store_into(p, v, src, 0, &enc);
  }
  if (!rc) rc = submit(p, &enc);
  else if (enc) p->dev->f.wgpuCommandEncoderRelease(enc);
  for (int k = 0; k < n_state && state; k++) drop_value(state[k]);
  free(state);
  ctrl_io_free(&b, sp->g->n_outputs);
  return rc;
}

static int run_ctrl(wg_plan *p, int i, wg_run *r) {
  wg_ctrl *c = p->nodes[i].ctrl;
  int rc = 0;
  WGPUCommandEncoder enc = NULL;
  for (int k = 0; k < c->n_uploads && !rc; k++) { /* host data the bodies read, once per run */
    int v = c->uploads[k];
    if (!r->dev_in[v]) {
      rc = upload_value(p, v, &r->hv[v]);
      continue;
    }
    if (r->dev_in[v]->bytes != val_bytes(p, v) || r->dev_in[v]->held != p->objs[v].gpu_type)
      rc = gpux__error(GPUX_E_INTERNAL, "WebGPU: the value bound to '%s' does not match the plan", p->g->values[v].name);
    else
      rc = store_into(p, v, r->dev_in[v], 0, &enc);
  }
  if (!rc) rc = submit(p, &enc);
  else if (enc) p->dev->f.wgpuCommandEncoderRelease(enc);
  if (!rc) rc = c->kind == CTRL_IF ? run_if(p, i, c, r) : run_iterations(p, i, c, r);
  if (!rc) rc = ctrl_outputs(p, i, r);
  if (rc && !gpux_last_error()[0]) rc = gpux__error(rc, "node '%s' (%s) failed", p->g->nodes[i].name, p->g->nodes[i].op_type);
  return rc;
}

int gpux__wg_plan_run(wg_plan *p, const gpux__io *io) {
  const gpux__graph *g = p->g;
  int rc = 0, nv = p->nv, n_outputs = io->n_outputs;
  wg_run r = {.stats = io->stats, .prof = io->prof};
  p->stats = io->stats;
  /* the per-value arrays, in one block the plan keeps (cleared here: a run may not allocate) */
  size_t n1 = (size_t)nv + 1, mem = n1 * (sizeof *r.hv + sizeof *r.dev_in + sizeof *r.dev_out) + 3 * n1;
  if (!p->run_mem) p->run_mem = gpux__malloc(mem);
  unsigned char *borrowed = NULL;
  if (p->run_mem) {
    memset(p->run_mem, 0, mem);
    r.hv = p->run_mem;
    r.dev_in = (const gpux_device_tensor **)(r.hv + n1);
    r.dev_out = (gpux_device_tensor **)(r.dev_in + n1);
    r.want_host = (unsigned char *)(r.dev_out + n1);
    r.want_dev = r.want_host + n1;
    borrowed = r.want_dev + n1;
  }
  gpux_tensor *hv = r.hv;
  if (!p->run_mem) { rc = GPUX_E_NOMEM; goto done; }
  for (int i = 0; i < p->n_in_ids && i < io->n_inputs; i++) {
    int v = p->in_ids[i];
    hv[v] = io->inputs[i];
    borrowed[v] = 1;
    if (!io->in_values || !io->in_values[i]) continue;
    r.dev_in[v] = io->in_values[i];
    /* a node on the CPU reads it, or the plan holds its dtype otherwise (f16 or f32): one copy to
       the host (and in the second case from there to the device as the plan holds it) */
    int other_form = r.dev_in[v]->held != val_held(p, v);
    if (p->vals[v].host_read || other_form) {
      const gpux_device_tensor *dv = r.dev_in[v];
      if (other_form) r.dev_in[v] = NULL;
      borrowed[v] = 0;
      memset(&hv[v], 0, sizeof hv[v]);
      if ((rc = gpux__wg_value_read(dv, &hv[v], 1))) goto done;
      r.stats->downloads++, r.stats->download_bytes += dv->bytes;
    }
  }
  for (int o = 0; o < n_outputs && o < g->n_outputs; o++) {
    if (io->keep && io->keep[o]) r.want_dev[g->outputs[o]] = 1;
    else r.want_host[g->outputs[o]] = 1;
  }
  for (int s = 0; s < p->n_steps && !rc; s++) {
    const wg_step *st = &p->steps[s];
    if (!st->gpu) {
      struct timespec t0, t1;
      if (r.prof) clock_gettime(CLOCK_MONOTONIC, &t0);
      rc = p->nodes[st->node].place == P_CTRL ? run_ctrl(p, st->node, &r) : run_host_node(p, st->node, hv);
      if (r.prof && !rc) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        gpux__prof_add(r.prof, p->g->nodes[st->node].op_type, "cpu",
                       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6, GPUX__PROF_NONE);
      }
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
  return rc;
}
