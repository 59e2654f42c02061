/* backend.c — the WebGPU backend as the runtime sees it (the gpux__backend_i table): a session's
 * context holds the process's device and the plans of its main graph, one per input signature
 * (a few are kept, least recently used dropped). Graphs it does not take (nested graphs, shapes
 * that depend on data) it declines, and the runtime runs them on the host. */
#include "backend/webgpu/wg.h"
#include <time.h>

typedef struct wg_plan wg_plan;
int gpux__wg_plan_key(const gpux__graph *g, const gpux_tensor *inputs, int n_inputs, uint64_t extra, unsigned char **key,
                      size_t *len);
int gpux__wg_plan_create(wg_device *dev, wg_consts *consts, const gpux__graph *g, const gpux__host *host,
                         const unsigned char *supported, const gpux_tensor *inputs, int n_inputs, uint64_t extra,
                         uint64_t budget, int half, wg_tuning *tuning, gpux_run_stats *stats, uint64_t *want,
                         unsigned char *key, size_t key_len, wg_plan *prev, wg_plan **out);
int gpux__wg_plan_hollow(const wg_plan *p);
uint64_t gpux__wg_plan_bytes(const wg_plan *p);
uint64_t gpux__wg_plan_half_dispatches(const wg_plan *p);
int gpux__wg_keyed_input(const gpux_tensor *t, int i, uint64_t extra);
void gpux__wg_plan_free(wg_plan *p);
const unsigned char *gpux__wg_plan_key_of(const wg_plan *p, size_t *len);
int gpux__wg_plan_declined(const wg_plan *p, const char **why);
int gpux__wg_plan_node_place(const wg_plan *p, int i, const char **why);
int gpux__wg_plan_run(wg_plan *p, const gpux__io *io);
int gpux__wg_plan_pipelines(const wg_plan *p, wg_pipeline **out, int cap);

#define WG_MAX_PLANS 4

typedef struct wg_ctx {
  wg_device *dev;
  const gpux__graph *g;           /* the main graph as the runtime optimized it */
  const gpux__host *host;        /* the runtime runs CPU kernels and shape inference */
  const unsigned char *supported; /* [g->n_nodes] the nodes the runtime placed here, or NULL */
  wg_plan *plans[WG_MAX_PLANS];  /* most recently used first */
  int n_plans;
  wg_plan *last;                 /* the plan of the last run */
  wg_consts *consts;             /* the initializers on the device, shared by the plans */
  uint64_t keyed;                /* model inputs whose values are part of the plan key: planning
                                    found that they decide shapes or a kernel's form */
  uint64_t budget;               /* gpu_memory: bytes the plans may hold, 0 = no limit */
  int fp16_asked;                /* the session asked for fp16 precision */
  int half;                      /* WG_HALF_*: float values the plans hold as f16 (half.c) */
  int overflowed;                /* fp16 gave inf/NaN outputs where fp32 gives none: fp32 from then on */
  int nonfinite_ok;              /* the model's fp32 outputs hold inf/NaN too: no more checks */
  int quantized;                 /* the graph has integer (quantized) arithmetic: fp32 */
  int noted;                     /* plans whose pipelines went into the graph's note (warm.c) */
  wg_tuning tuning;              /* GEMM configurations by shape, and the shapes planned */
} wg_ctx;

/* Which float values plans hold as f16: with fp16 precision every float32 and float16 value
 * where shaders may use f16, else none (float16 emulated on f32: narrow.c). Test hooks:
 * GPUX_WEBGPU_HALF=f16 also holds a float16 model's values as f16 without fp16 precision;
 * GPUX_WEBGPU_HALF=emulate gives fp16 precision in f32 storage, on any adapter, by rounding
 * every stored value, weight and input to f16 values (the same numbers, not the memory savings). The
 * caller holds the device's mutex. */
static int half_mode(wg_ctx *c) {
  if (c->overflowed || c->quantized) return WG_HALF_NONE;
  const char *e = getenv("GPUX_WEBGPU_HALF");
  if (c->fp16_asked) {
    if (e && !strcmp(e, "emulate")) return WG_HALF_ALL | WG_HALF_EMULATED;
    return gpux__wg_f16_usable(c->dev) ? WG_HALF_ALL : WG_HALF_NONE;
  }
  return e && !strcmp(e, "f16") && gpux__wg_f16_usable(c->dev) ? WG_HALF_F16 : WG_HALF_NONE;
}

static int wg_init(void **ctx, const gpux_session_options *opts) {
  *ctx = NULL;
  wg_ctx *c = gpux__calloc(1, sizeof *c);
  if (!c) return GPUX_E_NOMEM;
  c->budget = opts ? opts->gpu_memory : 0;
  c->fp16_asked = opts && opts->precision == GPUX_PRECISION_FP16;
  int rc = gpux__wg_device_acquire(&c->dev);
  if (rc) {
    free(c);
    return rc;
  }
  if (!(c->consts = gpux__wg_consts_new(c->dev))) {
    gpux__wg_device_release(c->dev);
    free(c);
    return GPUX_E_NOMEM;
  }
  pthread_mutex_lock(&c->dev->mu);
  c->half = half_mode(c);
  pthread_mutex_unlock(&c->dev->mu);
  *ctx = c;
  return 0;
}

static void wg_release(void *ctx) {
  wg_ctx *c = ctx;
  if (!c) return;
  pthread_mutex_lock(&c->dev->mu);
  for (int i = 0; i < c->n_plans; i++) gpux__wg_plan_free(c->plans[i]);
  gpux__wg_consts_free(c->consts);
  pthread_mutex_unlock(&c->dev->mu);
  gpux__wg_device_release(c->dev);
  free(c->tuning.t);
  free(c->tuning.seen);
  free(c->tuning.seen_tuned);
  free(c);
}

static int wg_prefer_cpu(void *ctx) {
  const wg_ctx *c = ctx;
  return c && c->dev && c->dev->adapter_type == WGPUAdapterType_CPU;
}

/* Whether the graph does integer (quantized) arithmetic: int32 sums of int8 products cast to
 * float pass float16's range, so fp16 precision leaves such models in fp32. */
static int quantized_graph(const gpux__graph *g) {
  for (int i = 0; i < g->n_nodes; i++) {
    const char *op = g->nodes[i].op_type;
    if (strstr(op, "Integer") || strstr(op, "Quantize") || !strncmp(op, "QLinear", 7) || !strcmp(op, "QGemm")) return 1;
  }
  return 0;
}

static int wg_prepare(void *ctx, const gpux__graph *g, const gpux__host *host, const unsigned char *supported) {
  wg_ctx *c = ctx;
  if (c->fp16_asked && quantized_graph(g)) {
    pthread_mutex_lock(&c->dev->mu);
    c->quantized = 1;
    c->half = half_mode(c);
    pthread_mutex_unlock(&c->dev->mu);
  }
  c->g = g;
  c->host = host;
  c->supported = supported;
  /* the pipelines an earlier process's plans of this graph needed: started now, in the background */
  pthread_mutex_lock(&c->dev->mu);
  gpux__wg_warm_start(c->dev, g, c->half);
  pthread_mutex_unlock(&c->dev->mu);
  return 0;
}

static int wg_supports_node(void *ctx, const gpux__node *n, char *why, size_t why_len) {
  (void)ctx;
  return gpux__wg_supports(n, why, why_len);
}

static uint64_t plans_bytes(const wg_ctx *c) {
  uint64_t total = gpux__wg_consts_bytes(c->consts);
  for (int i = 0; i < c->n_plans; i++) total += gpux__wg_plan_bytes(c->plans[i]);
  return total;
}

/* Inputs bound to device values whose data the plan key needs (those that decide shapes) are
 * read to the host: ins[i] then owns that data and vals[i] is NULL. */
static int read_keyed(wg_ctx *c, gpux_tensor *ins, const gpux_device_tensor **vals, unsigned char *owned, int n,
                      gpux_run_stats *stats) {
  for (int i = 0; i < n; i++) {
    if (!vals[i] || !gpux__wg_keyed_input(&ins[i], i, c->keyed)) continue;
    int rc = gpux__wg_value_read(vals[i], &ins[i], 1);
    if (rc) return rc;
    stats->downloads++, stats->download_bytes += vals[i]->bytes;
    owned[i] = 1;
    vals[i] = NULL;
  }
  return 0;
}

static void drop_plan(wg_ctx *c, int i) {
  if (c->last == c->plans[i]) c->last = NULL;
  gpux__wg_plan_free(c->plans[i]);
  memmove(&c->plans[i], &c->plans[i + 1], (size_t)(c->n_plans - i - 1) * sizeof *c->plans);
  c->n_plans--;
}

static int find_plan(wg_ctx *c, gpux_tensor *inputs, const gpux_device_tensor **vals, unsigned char *owned, int n_inputs,
                     gpux_run_stats *stats, wg_plan **out) {
  const gpux__graph *pg = c->g;
  for (int attempt = 0;; attempt++) {
    unsigned char *key;
    size_t len;
    int rc = read_keyed(c, inputs, vals, owned, n_inputs, stats);
    if (rc || (rc = gpux__wg_plan_key(pg, inputs, n_inputs, c->keyed, &key, &len))) return rc;
    for (int i = 0; i < c->n_plans; i++) {
      size_t klen;
      const unsigned char *k = gpux__wg_plan_key_of(c->plans[i], &klen);
      if (klen == len && !memcmp(k, key, len)) {
        wg_plan *p = c->plans[i];
        memmove(&c->plans[1], &c->plans[0], (size_t)i * sizeof *c->plans);
        c->plans[0] = p;
        free(key);
        *out = p;
        return 0;
      }
    }
    wg_plan *p = NULL;
    uint64_t want = 0;
    /* a plan for new shapes derives from the last one where it can (a decoder's next step, one
       cache position longer): nodes whose inputs did not change are taken as they were, and when
       only sizes changed it runs in that plan's GPU objects, which then leave the cache with it */
    wg_plan *prev = c->last;
    rc = gpux__wg_plan_create(c->dev, c->consts, pg, c->host, c->supported, inputs, n_inputs, c->keyed, c->budget, c->half,
                              &c->tuning, stats, &want, key, len, prev, &p);
    for (int i = 0; prev && i < c->n_plans; i++)
      if (c->plans[i] == prev && gpux__wg_plan_hollow(prev)) drop_plan(c, i);
    if (rc) {
      free(key);
      return rc;
    }
    /* inputs found to decide shapes: plan again with their values known (and in the key); the
       set only grows, and the session keeps it for later runs */
    if (want && attempt < 8 && gpux__wg_plan_declined(p, NULL)) {
      gpux__wg_plan_free(p);
      c->keyed |= want;
      continue;
    }
    stats->plans++;
    /* the next process that prepares this graph starts these pipelines at once (warm.c): the
       session's first plan replaces the graph's note, the next few add to it (a decoder's later
       steps reuse their pipelines) */
    if (c->noted < WG_MAX_PLANS && !gpux__wg_plan_declined(p, NULL)) {
      int cap = 4096;
      wg_pipeline **pipes = gpux__malloc((size_t)cap * sizeof *pipes);
      if (pipes) gpux__wg_warm_note(c->dev, pg, c->half, c->noted == 0, pipes, gpux__wg_plan_pipelines(p, pipes, cap));
      free(pipes);
      c->noted++;
    }
    if (c->n_plans == WG_MAX_PLANS) drop_plan(c, c->n_plans - 1);
    memmove(&c->plans[1], &c->plans[0], (size_t)c->n_plans * sizeof *c->plans);
    c->plans[0] = p;
    c->n_plans++;
    /* within the budget, plans of other input shapes give way, least recently used first */
    while (c->budget && c->n_plans > 1 && plans_bytes(c) > c->budget) drop_plan(c, c->n_plans - 1);
    *out = p;
    return 0;
  }
}

/* A lost device is replaced: this session's plans go with it and are made again on the new one
 * (the run that found the loss failed with GPUX_E_DEVICE; this is the next one). */
static int renew_device(wg_ctx *c) {
  wg_device *nd;
  int rc = gpux__wg_device_acquire(&nd);   /* a new device: the lost one is not current any more */
  if (rc) return rc;
  wg_consts *consts = gpux__wg_consts_new(nd);
  if (!consts) {
    gpux__wg_device_release(nd);
    return GPUX_E_NOMEM;
  }
  pthread_mutex_lock(&c->dev->mu);
  for (int i = 0; i < c->n_plans; i++) gpux__wg_plan_free(c->plans[i]);
  gpux__wg_consts_free(c->consts);
  c->consts = consts;
  pthread_mutex_unlock(&c->dev->mu);
  c->n_plans = 0;
  c->last = NULL;
  gpux__wg_device_release(c->dev);
  c->dev = nd;
  pthread_mutex_lock(&c->dev->mu);
  c->half = half_mode(c);
  pthread_mutex_unlock(&c->dev->mu);
  gpux__log(GPUX_LOG_NOTE, "the WebGPU device was lost; continuing on a new one (%s)", nd->name);
  return 0;
}

/* Whether a float output of the run holds an infinity or a NaN. */
static int nonfinite_outputs(const gpux__io *io) {
  for (int o = 0; o < io->n_outputs; o++) {
    const gpux_tensor *t = &io->outputs[o];
    if (t->kind != GPUX_KIND_TENSOR || !t->data || !gpux__wg_is_f32(t->dtype)) continue;
    int64_t n = gpux_tensor_count(t);
    for (int64_t i = 0; i < n; i++) {
      uint32_t bits;
      if (t->dtype == GPUX_DT_FLOAT) memcpy(&bits, (const float *)t->data + i, 4), bits = (bits >> 23) & 0xff;
      else bits = ((const uint16_t *)t->data)[i] >> (t->dtype == GPUX_DT_FLOAT16 ? 10 : 7) & (t->dtype == GPUX_DT_FLOAT16 ? 0x1f : 0xff);
      if (bits == (t->dtype == GPUX_DT_FLOAT16 ? 0x1fu : 0xffu)) return 1;
    }
  }
  return 0;
}

static void free_outputs(const gpux__io *io) {
  for (int o = 0; o < io->n_outputs; o++) gpux_tensor_free(&io->outputs[o]);
}

/* Plans (or finds the plan) for these inputs and runs it. */
static int run_once(wg_ctx *c, gpux_tensor *ins, const gpux_device_tensor **vals, unsigned char *owned, int n,
                    const gpux__io *io) {
  wg_plan *p = NULL;
  int rc = find_plan(c, ins, vals, owned, n, io->stats, &p);
  if (rc) return rc;
  c->last = p;
  if (gpux__wg_plan_declined(p, NULL)) return GPUX__DECLINED;
  gpux__io run = *io;
  run.inputs = ins;
  run.in_values = vals;
  gpux__wg_test_device_loss(c->dev);
  rc = gpux__wg_plan_run(p, &run);
  io->stats->f16_dispatches = gpux__wg_plan_half_dispatches(p);
  return rc;
}

static int wg_run_graph(void *ctx, const gpux__graph *g, const gpux__io *io) {
  wg_ctx *c = ctx;
  if (g != c->g) return GPUX__DECLINED;
  int n = io->n_inputs, rc = 0;
  if (gpux__wg_device_lost(c->dev) && (rc = renew_device(c))) return rc;
  gpux_tensor *ins = gpux__calloc((size_t)n + 1, sizeof *ins);
  const gpux_device_tensor **vals = gpux__calloc((size_t)n + 1, sizeof *vals);
  unsigned char *owned = gpux__calloc((size_t)n + 1, 1);
  if (!ins || !vals || !owned) rc = GPUX_E_NOMEM;
  for (int i = 0; i < n && !rc; i++) {
    ins[i] = io->inputs[i];
    vals[i] = io->in_values ? io->in_values[i] : NULL;
  }
  /* sessions on other threads share the device: one plans or runs at a time */
  pthread_mutex_lock(&c->dev->mu);
  int verbose = getenv("GPUX_WEBGPU_VERBOSE") != NULL;
  gpux_run_stats s0 = *io->stats;
  uint64_t compiled0 = c->dev->compiled, buffers0 = c->dev->buffers;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t cpu0 = verbose ? gpux__wg_cpu_ns() : 0;
  if (!rc) rc = run_once(c, ins, vals, owned, n, io);
  /* float16 overflows past 65504 (an audio front end's power spectrum, say) and its infinities
     come out as inf/NaN outputs: such a run is made again in fp32, and when that one is finite
     the session stays in fp32 (gpux_session_precision says why) */
  int keeps = 0;
  for (int o = 0; io->keep && o < io->n_outputs; o++) keeps |= io->keep[o];
  if (!rc && (c->half & ~WG_HALF_EMULATED) == WG_HALF_ALL && !c->nonfinite_ok && !keeps && nonfinite_outputs(io)) {
    free_outputs(io);
    while (c->n_plans) drop_plan(c, c->n_plans - 1);
    c->overflowed = 1;
    c->half = half_mode(c);
    rc = run_once(c, ins, vals, owned, n, io);
    if (!rc && nonfinite_outputs(io)) { /* the model's own inf/NaN: fp16 was not the cause */
      c->overflowed = 0;
      c->nonfinite_ok = 1;
      c->half = half_mode(c);
      while (c->n_plans) drop_plan(c, c->n_plans - 1);
    } else if (!rc) {
      gpux__log(GPUX_LOG_NOTE, "float16 overflowed in this model's values (inf/NaN outputs): it runs in fp32");
    }
  }
  if (verbose && !rc) { /* what one run cost: the numbers to watch when shapes change run to run */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    gpux__log(GPUX_LOG_DEBUG, "webgpu: run: %.1f ms, %s plan, %llu pipelines compiled, %llu buffers created, "
              "%llu bytes up in %llu writes, %llu bytes down in %llu reads, cpu %.1f ms",
              (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
              io->stats->plans > s0.plans ? "new" : "cached", (unsigned long long)(c->dev->compiled - compiled0),
              (unsigned long long)(c->dev->buffers - buffers0), (unsigned long long)(io->stats->upload_bytes - s0.upload_bytes),
              (unsigned long long)(io->stats->uploads - s0.uploads),
              (unsigned long long)(io->stats->download_bytes - s0.download_bytes),
              (unsigned long long)(io->stats->downloads - s0.downloads), (double)(gpux__wg_cpu_ns() - cpu0) / 1e6);
  }
  io->stats->device_memory = plans_bytes(c);
  if (io->stats->device_memory > io->stats->device_memory_peak) io->stats->device_memory_peak = io->stats->device_memory;
  pthread_mutex_unlock(&c->dev->mu);
  for (int i = 0; i < n && ins; i++)
    if (owned && owned[i]) gpux_tensor_free(&ins[i]);
  free(ins);
  free(vals);
  free(owned);
  return rc;
}

static int wg_value_upload(void *ctx, const gpux_tensor *t, gpux_device_tensor **out, gpux_run_stats *stats) {
  wg_ctx *c = ctx;
  pthread_mutex_lock(&c->dev->mu);
  int rc = gpux__wg_value_from_host(c->dev, t, out, stats);
  pthread_mutex_unlock(&c->dev->mu);
  return rc;
}

static int wg_value_read(const gpux_device_tensor *v, gpux_tensor *out) { return gpux__wg_value_read(v, out, 0); }

static void wg_value_free(gpux_device_tensor *v) { gpux__wg_value_free(v, 0); }

static const char *wg_precision(void *ctx, const char **why) {
  const wg_ctx *c = ctx;
  *why = "";
  if (c->half & WG_HALF_EMULATED) {
    *why = "emulated (GPUX_WEBGPU_HALF=emulate): values rounded to float16 in float32 storage";
    return "fp16";
  }
  if (c->half == WG_HALF_ALL) return "fp16";
  if (!c->fp16_asked) return "fp32";
  if (c->quantized) *why = "a quantized model (integer arithmetic, whose sums pass float16's range): fp16 is for float models";
  else if (c->overflowed) *why = "float16 overflowed in this model's values (inf/NaN outputs where fp32 has none)";
  else *why = c->dev->f16_why[0] ? c->dev->f16_why : "no f16 shaders on this WebGPU device"; /* f16_why: see half_mode */
  return "fp32";
}

static int wg_set_gemm_tuning(void *ctx, const gpux__gemm_tuned *t, int n) {
  wg_ctx *c = ctx;
  gpux__gemm_tuned *copy = NULL;
  if (n > 0 && !(copy = gpux__calloc((size_t)n, sizeof *copy))) return GPUX_E_NOMEM;
  for (int i = 0; i < n; i++) {
    memset(&copy[i].shape, 0, sizeof copy[i].shape); /* shapes are compared with memcmp */
    copy[i].shape.M = t[i].shape.M, copy[i].shape.N = t[i].shape.N, copy[i].shape.K = t[i].shape.K;
    copy[i].shape.batch = t[i].shape.batch;
    copy[i].shape.a_k_contig = !!t[i].shape.a_k_contig, copy[i].shape.b_n_contig = !!t[i].shape.b_n_contig;
    copy[i].cfg = t[i].cfg;
  }
  pthread_mutex_lock(&c->dev->mu);
  while (c->n_plans) drop_plan(c, c->n_plans - 1);
  free(c->tuning.t);
  c->tuning.t = copy;
  c->tuning.n = n > 0 ? n : 0;
  c->tuning.n_seen = 0;
  pthread_mutex_unlock(&c->dev->mu);
  return 0;
}

static int wg_gemm_shapes(void *ctx, gpux__gemm_shape *out, int cap, int *n_tuned) {
  wg_ctx *c = ctx;
  pthread_mutex_lock(&c->dev->mu);
  int n = c->tuning.n_seen, tuned = 0;
  for (int i = 0; i < n; i++) {
    tuned += c->tuning.seen_tuned[i];
    if (out && i < cap) out[i] = c->tuning.seen[i];
  }
  pthread_mutex_unlock(&c->dev->mu);
  if (n_tuned) *n_tuned = tuned;
  return n;
}

static int wg_node_place(void *ctx, int i, const char **why) {
  wg_ctx *c = ctx;
  if (why) *why = NULL;
  if (!c->last) return GPUX__PLACE_UNKNOWN;
  return gpux__wg_plan_node_place(c->last, i, why);
}

const gpux__backend_i gpux__backend_webgpu = {
  /* .version       = */ GPUX_BACKEND_INTERFACE_VERSION,
  /* .name          = */ "webgpu",
  /* .device_type   = */ GPUX__DEVICE_GPU,
  /* .init          = */ wg_init,
  /* .release       = */ wg_release,
  /* .supports_node = */ wg_supports_node,
  /* .run_node      = */ NULL,
  /* .prepare       = */ wg_prepare,
  /* .run_graph     = */ wg_run_graph,
  /* .node_place    = */ wg_node_place,
  /* .value_upload  = */ wg_value_upload,
  /* .value_read    = */ wg_value_read,
  /* .value_free    = */ wg_value_free,
  /* .prefer_cpu    = */ wg_prefer_cpu,
  /* .precision     = */ wg_precision,
  /* .set_gemm_tuning = */ wg_set_gemm_tuning,
  /* .gemm_shapes   = */ wg_gemm_shapes,
};
