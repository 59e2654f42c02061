/* wg.h — what the files of the WebGPU backend share: the device (a WebGPU implementation loaded
 * at run time, one adapter and device per process, errors turned into gpux errors), the WGSL
 * text builder, and the interface between the planner and the op kernels that emit compute
 * dispatches. Names are gpux__wg_* (internal). */
#ifndef GPUX_WG_H
#define GPUX_WG_H

#include "backend/backend-impl.h"
#include "backend/webgpu/webgpu-abi.h"
#include <pthread.h>

/* ---- the device ---- */

/* A pipeline being made in the background: what its callback reports. */
typedef struct wg_pipeline_job {
  WGPUFuture future;
  volatile int done;
  WGPUEnum status;               /* WGPUCreatePipelineAsyncStatus */
  WGPUComputePipeline pipeline;
  char label[128];
  char message[1024];
} wg_pipeline_job;

typedef struct wg_pipeline {
  uint64_t hash;                 /* of the WGSL text */
  char *wgsl;
  WGPUComputePipeline pipeline;  /* NULL while job is under way */
  WGPUBindGroupLayout layout;    /* group 0, derived from the shader */
  wg_pipeline_job *job;          /* the creation under way, or NULL once finished */
  char *error;                   /* why it could not be made (asked again, it fails at once), or NULL */
} wg_pipeline;

typedef struct wg_cache wg_cache;
typedef struct wg_reuse wg_reuse;

#define WG_MAX_SPARE 64
typedef struct wg_device {
  gpux__wgpu_table f;            /* resolved wgpu* functions */
  void *lib;
  char lib_path[512];
  WGPUInstance instance;
  WGPUAdapter adapter;
  WGPUDevice device;
  WGPUQueue queue;
  WGPULimits limits;             /* of the device */
  int timed_wait;                /* wgpuInstanceWaitAny may block with a timeout */
  int has_f16, has_subgroups, has_subgroup_matrix;
  char features[512];           /* every feature the adapter offers, by name or number */
  char matrix_configs[256];     /* subgroup matrix shapes: "f16*f16->f32 8x8x8, ..." */
  int f16_usable;                /* 1: a shader with `enable f16;` compiled, -1: it did not (the
                                    adapter lists shader-f16 but the library's WGSL compiler
                                    rejects the extension), 0: not tried yet */
  char f16_why[384];             /* why f16 shaders do or do not work here (gpux__wg_f16_usable) */
  int has_timestamps;            /* timestamp-query: profiled runs time passes on the GPU */
  wg_cache *cache;               /* Dawn's blob cache on disk (cache.c), or NULL */
  char name[256], driver[256], vendor[64], architecture[64];
  int backend_type, adapter_type;
  int backend_asked;             /* the WGPUBackendType the adapter was asked of (0: any) */
  uint32_t vendor_id, device_id, subgroup_min, subgroup_max;
  uint64_t timeout_ns;           /* how long a wait may take before it counts as a hang */
  /* errors reported by the device's callbacks, turned into gpux errors by gpux__wg_check */
  int err_type;                  /* WGPUErrorType of the first error not yet reported, 0 if none */
  char err_msg[1024];
  int lost;
  char lost_msg[512];
  /* compiled pipelines, keyed by their WGSL text (each allocated once: plans keep pointers) */
  wg_pipeline **pipes;
  int n_pipes, cap_pipes;
  /* pipelines made so far: those whose compiled form Dawn loaded from the blob cache, those it
     compiled, and the time (wall and process CPU) spent making them */
  uint64_t pipes_loaded, pipes_compiled, pipe_ns, pipe_cpu_ns;
  uint64_t compiled;             /* pipelines compiled so far (GPUX_WEBGPU_VERBOSE reports) */
  int n_pending;                 /* pipelines started and not finished */
  uint64_t batch_made, batch_hits, batch_misses; /* since none was pending: made, and the cache's counts then */
  uint64_t buffers;              /* buffers created so far (the same) */
  wg_reuse *reuse;               /* skeletons of the WGSL seen, for reuse across shapes (reuse.c) */
  void (*reuse_free)(wg_reuse *r); /* set by reuse.c with `reuse`: the device frees it through this,
                                      since reuse.c calls into device.c and not the other way */
  /* buffers of freed values kept for the next values of their size (value.c): a decoder's cache
     is given back every step and made again one position longer */
  WGPUBuffer spare[WG_MAX_SPARE];
  uint64_t spare_size[WG_MAX_SPARE]; /* each buffer's size */
  int n_spare;
  uint64_t spare_bytes;
  int refs;
  pthread_mutex_t mu;            /* one session plans or runs on the device at a time */
} wg_device;

/* Dawn's blob cache on disk for this device's adapter, driver and library (cache.c): NULL when
 * it is off or cannot be made. The load and store functions are Dawn's callbacks. */
wg_cache *gpux__wg_cache_open(const wg_device *d);
void gpux__wg_cache_close(wg_cache *c);
/* What the cache has served (hits), not found (misses) and stored since it was opened. */
void gpux__wg_cache_counts(wg_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *stores);
/* Facts about this device key kept beside the entries ("self-test.ok"): whether one is there, and
 * setting one. */
int gpux__wg_cache_marked(const wg_cache *c, const char *mark);
void gpux__wg_cache_mark(wg_cache *c, const char *mark);
/* A note kept beside the entries (name with a dot): read whole (allocated, NUL after it; -1 when
 * there is none), or written whole (a temporary file renamed into place). */
int gpux__wg_cache_note_read(const wg_cache *c, const char *name, char **data, size_t *size);
void gpux__wg_cache_note_write(wg_cache *c, const char *name, const void *data, size_t size);
size_t gpux__wg_cache_load(const void *key, size_t key_size, void *value, size_t value_size, void *userdata);
void gpux__wg_cache_store(const void *key, size_t key_size, const void *value, size_t value_size, void *userdata);

/* The process's device, created on first use (library loaded, adapter and device requested,
 * self-test run) and shared by every session; an error (GPUX_E_DEVICE with a message that says
 * what is missing) when there is no usable WebGPU device. */
int gpux__wg_device_acquire(wg_device **out);
void gpux__wg_device_release(wg_device *d);
/* Whether shaders may use f16 (shader-f16 listed, the device made with it, and a probe shader
 * compiles; tried once), with d->f16_why saying which it is. The caller holds d->mu. */
int gpux__wg_f16_usable(wg_device *d);
/* One more reference to a device already held (a value made on it). */
void gpux__wg_device_ref(wg_device *d);
/* Returns the first error the device reported since the last check (as GPUX_E_DEVICE or
 * GPUX_E_NOMEM with the implementation's message, prefixed by `what`), else 0. */
int gpux__wg_check(wg_device *d, const char *what);
/* Whether the device was lost (a lost device is replaced by the next gpux__wg_device_acquire). */
int gpux__wg_device_lost(wg_device *d);
/* Test hook: with GPUX_TEST_DEVICE_LOST=N, the N-th WebGPU model run of the process loses its
 * device (Dawn's wgpuDeviceForceLoss, else the lost flag the device-lost callback sets). */
void gpux__wg_test_device_loss(wg_device *d);
/* The compute pipeline for this WGSL (entry point "main"), compiled once per device; compile
 * errors come back as GPUX_E_DEVICE with the compiler's messages. */
int gpux__wg_pipeline(wg_device *d, const char *wgsl, const char *label, wg_pipeline **out);
/* The same, started: the shader module is made (WGSL that does not compile fails here) and the
 * pipeline is made on Dawn's worker threads while the caller goes on; its pipeline and layout are
 * NULL until gpux__wg_pipelines_finish waits for every pipeline started. One that failed then
 * keeps its reason in `error` (and starting it again fails at once); finish itself fails only for
 * the device (lost, out of memory, an error it reported meanwhile). */
int gpux__wg_pipeline_start(wg_device *d, const char *wgsl, const char *label, wg_pipeline **out);
int gpux__wg_pipelines_finish(wg_device *d);
/* The pipeline for a dispatch's WGSL, reused across shapes (reuse.c): when the text differs from
 * one seen before only in sizes, a pipeline that reads them from a uniform array at `binding`
 * (the first binding the dispatch does not use) is returned with the values to bind there
 * (*params, allocated, a multiple of 4 of them, *n_params used); else the text's own pipeline and
 * *n_params 0. GPUX_WEBGPU_REUSE=0 turns it off. The pipeline is started (gpux__wg_pipeline_start):
 * the planner finishes every one before it makes bind groups. */
int gpux__wg_pipeline_reuse(wg_device *d, const char *wgsl, const char *label, int binding, wg_pipeline **out,
                            uint32_t **params, int *n_params);
WGPUBuffer gpux__wg_buffer(wg_device *d, uint64_t size, WGPUFlags usage, const char *label);
/* The same, mapped at creation when `mapped` (wgpuBufferGetMappedRange, then wgpuBufferUnmap). */
WGPUBuffer gpux__wg_buffer_made(wg_device *d, uint64_t size, WGPUFlags usage, int mapped, const char *label);
/* A timestamp query set of `count` queries; an error (and d->has_timestamps cleared) when the
 * device turns it down although it listed timestamp-query, as Dawn does on some adapters. */
int gpux__wg_query_set(wg_device *d, uint32_t count, WGPUQuerySet *out);
/* Copies `size` bytes at `offset` of a GPU buffer into dst (one copy, one map). */
int gpux__wg_read_buffer(wg_device *d, WGPUBuffer src, uint64_t offset, void *dst, size_t size);
/* Waits until the GPU has finished the work submitted so far. */
int gpux__wg_queue_idle(wg_device *d);
/* Clocks for GPUX_WEBGPU_VERBOSE's breakdowns: the monotonic clock, and the CPU time of the whole
 * process (its threads and the driver's: on a software adapter the GPU's work is CPU time). */
uint64_t gpux__wg_now_ns(void);
uint64_t gpux__wg_cpu_ns(void);
/* Maps `staging` (MAP_READ) after the submitted work that writes it finishes. */
int gpux__wg_map_read(wg_device *d, WGPUBuffer staging, size_t size, const void **data);

/* A session's initializers on the device, shared by its plans (consts.c). */
typedef struct wg_consts wg_consts;
wg_consts *gpux__wg_consts_new(wg_device *d);
void gpux__wg_consts_free(wg_consts *c);
uint64_t gpux__wg_consts_bytes(const wg_consts *c);
/* The buffer holding initializer v of graph g (data t) as `type` (WG_F32, WG_I32): made and
 * written the first time it is asked for (the upload counted in stats). */
int gpux__wg_consts_get(wg_consts *c, const void *g, int v, const gpux_tensor *t, int type, gpux_run_stats *stats,
                        WGPUBuffer *buf, uint64_t *bytes);

/* ---- pipelines started before a session's first run (warm.c) ---- */

/* A session was prepared with graph g (at precision `half`): the pipelines its plans needed in an
 * earlier process (a note in the pipeline cache's folder) are started now, in the background, so
 * they are ready or under way when the first run plans. The caller holds the device's mutex. */
void gpux__wg_warm_start(wg_device *d, const gpux__graph *g, int half);
/* A plan of graph g was made with these pipelines: they replace g's note for the next process
 * (fresh: the session's first plan) or join it. */
void gpux__wg_warm_note(wg_device *d, const gpux__graph *g, int half, int fresh, wg_pipeline *const *pipes, int n);

/* ---- WGSL text ---- */

typedef struct wg_str {
  char *s;
  size_t len, cap;
  int oom;
} wg_str;
void gpux__wg_cat(wg_str *s, const char *fmt, ...) GPUX__PRINTF(2, 3);
void gpux__wg_str_free(wg_str *s);
extern const char *const gpux__wg_special_fns;
/* A float as a WGSL literal that round-trips ("1.5", "-3.4028235e+38", "bitcast<f32>(0x7fc00000u)"). */
const char *gpux__wg_float(char buf[48], float v);

/* ---- kernels: how an op emits its dispatches ---- */

typedef struct wg_build wg_build;

/* Binding types a kernel asks for; WG_F16 is only a way values are held (below), and WG_F32_R16
 * only a form of host data for gpux__wg_gpu_image: float32 rounded to float16 values, held as f32
 * (what f16 storage would hold, for the emulated form). */
enum { WG_F32 = 0, WG_I32 = 1, WG_VEC4 = 2, WG_F16 = 3, WG_F32_R16 = 4 };

/* Which float values a plan holds as f16 on the device (with the adapter's shader-f16): none
 * (f32 storage, float16 emulated: narrow.c), float16 ones, or float32 and float16 ones (the
 * session's fp16 precision). Kernels need not know: they bind values as WG_F32 and read and
 * write f32, and gpux__wg_half_rewrite turns their loads and stores of f16-held bindings into
 * conversions (f16 in memory, f32 in registers). */
enum { WG_HALF_NONE = 0, WG_HALF_F16 = 1, WG_HALF_ALL = 2 };
/* Added to a WG_HALF_* mode: the values stay in f32 storage and only their stores are rounded to
 * f16, the same numbers as f16 storage gives (a test mode for adapters whose WGSL compiler has
 * no f16: GPUX_WEBGPU_HALF=emulate). */
#define WG_HALF_EMULATED 4
/* How a plan in `half` mode holds dtype: WG_F32, WG_I32, WG_F16, or -1 when it does not. */
int gpux__wg_held_as(int dtype, int half);
/* Bytes of `count` elements held as `held` (f16 rounded up to a multiple of 4, as bindings need). */
uint64_t gpux__wg_held_bytes(int64_t count, int held);
/* The shader text `src` with every access to binding b<k> for which half[k] is set (an
 * array<f16>) converted: loads to f32(b<k>[i]), stores (=, +=, -=, *=, /=) to
 * b<k>[i] = gx_h16(value), gx_h16 rounding as narrow.c does (to nearest even, overflow to
 * infinity); "enable f16;" and gx_h16 come first. With emulated set the bindings stay f32: loads
 * are left alone and stores become b<k>[i] = gx_r16(value), the f32 that f16 storage would give
 * back. Sets out->oom on failure. */
void gpux__wg_half_rewrite(const char *src, const unsigned char *half, int n_half, int emulated, wg_str *out);

/* ---- values held on the device between runs (value.c) ---- */

/* How the device holds a dtype: WG_F32, WG_I32, or -1 when it does not. */
int gpux__wg_held_type(int dtype);
/* float32, float16 and bfloat16: the dtypes the device holds as floats (f32, or f16 in a plan
 * that holds them so: narrow.c). */
int gpux__wg_is_f32(int dtype);
/* Host data as the device holds it: float32 as is, float16/bfloat16 widened to f32, integers as
 * i32 (range-checked), or with WG_F16 floats as float16 bits (float32 rounded to nearest even);
 * with WG_F32_R16 as WG_F32 but float32 rounded to the nearest float16 value. *owned says whether
 * *buf was allocated. */
int gpux__wg_gpu_image(const gpux_tensor *t, int gpu_type, void **buf, size_t *bytes, int *owned);
/* n elements held as f16 (float16 bits) into host data of a float dtype. */
void gpux__wg_from_f16(int dtype, void *dst, const void *src, int64_t n);
/* A new value of meta's dtype and shape, its elements held as `held` (WG_F32, WG_I32, WG_F16),
 * with an uninitialized buffer. The caller holds d->mu for these two. */
int gpux__wg_value_new(wg_device *d, const gpux_tensor *meta, int held, gpux_device_tensor **out);
/* A host tensor copied into a new value; GPUX__DECLINED for dtypes the device does not hold. */
int gpux__wg_value_from_host(wg_device *d, const gpux_tensor *t, gpux_device_tensor **out, gpux_run_stats *stats);
/* A new value holding a copy of meta's size (held as `held`) of src at off (one GPU-to-GPU copy). */
int gpux__wg_value_copy(wg_device *d, WGPUBuffer src, uint64_t off, const gpux_tensor *meta, int held, gpux_device_tensor **out);
/* `locked`: the caller holds d->mu (else these take it). */
int gpux__wg_value_read(const gpux_device_tensor *v, gpux_tensor *out, int locked);
void gpux__wg_value_free(gpux_device_tensor *v, int locked);

/* The node being built and its inputs and outputs: shapes and dtypes, and data for inputs known
 * when planning (initializers, folded constants, small integer model inputs). */
const gpux__node *gpux__wg_node(wg_build *b);
int gpux__wg_opset(wg_build *b);
const gpux_tensor *gpux__wg_in(wg_build *b, int i);   /* NULL when omitted */
const gpux_tensor *gpux__wg_out(wg_build *b, int i);  /* NULL when omitted */
int gpux__wg_n_in(wg_build *b);
int gpux__wg_n_out(wg_build *b);
int gpux__wg_is_const(wg_build *b, int i);            /* input i has data when planning */
const wg_device *gpux__wg_dev(wg_build *b);
/* Input i's values decide the kernel's form (an axis, a count): 0 when they are known when
 * planning, else the node is declined and the planner asks for the model inputs they come from
 * to key the plan (then plans again, with them known). */
int gpux__wg_need_const(wg_build *b, int i);
/* Declines the node (it runs on the CPU); `why` is kept for reports. Returns GPUX_E_UNSUPPORTED. */
int gpux__wg_decline(wg_build *b, const char *fmt, ...) GPUX__PRINTF(2, 3);

/* Storage the next dispatch binds, as binding numbers (0, 1, ...): the same storage asked twice
 * gets the same number, since WebGPU forbids two writable bindings of one range. Inputs must be
 * float32/float16/bfloat16, held as f32 (or, with WG_I32, integer data converted to i32 when
 * uploaded); outputs are written as f32 too (a float16/bfloat16 output is rounded to its type
 * after the node's dispatches: see narrow.c). */
int gpux__wg_bind_in(wg_build *b, int i, int type);
int gpux__wg_bind_out(wg_build *b, int i, int type);
/* A temporary buffer of `bytes` that lives for this node's dispatches: returns a scratch id to
 * bind with gpux__wg_bind_scratch (ids stay valid across dispatches of the node). */
int gpux__wg_scratch(wg_build *b, uint64_t bytes);
int gpux__wg_bind_scratch(wg_build *b, int scratch, int type);
/* A constant table the kernel computed while planning (bytes copied, written to the GPU once):
 * an id to bind with gpux__wg_bind_scratch. */
int gpux__wg_const(wg_build *b, const void *data, uint64_t bytes);
/* The node's overflow flag bound for the next dispatch (a binding number, array<i32>): a kernel
 * whose exact integer result may not fit the i32 the GPU holds it in (int64 arithmetic) stores
 * its node index + 1 at [0] when one does not, and that run is then computed on the CPU. */
int gpux__wg_overflow_flag(wg_build *b);
int gpux__wg_node_index(wg_build *b);
/* Writes the declarations of the bindings asked for so far ("@group(0) @binding(k) var<storage,
 * read_write> bk: array<f32>;"), to start the shader text. */
void gpux__wg_decls(wg_build *b, wg_str *s);
/* Emits a dispatch of the shader (entry point main) over the bindings asked for since the last
 * dispatch, then starts a new binding list. */
int gpux__wg_dispatch(wg_build *b, wg_str *wgsl, uint32_t x, uint32_t y, uint32_t z);
/* Starts the next dispatch's binding list as a copy of the last dispatch's, so a second kernel
 * of the node reaches the same storage under the same binding numbers (more can be bound after). */
int gpux__wg_rebind_last(wg_build *b);
/* Emits, inside an entry point, a use of every binding asked for so far: a kernel that reads only
 * some of a rebound list still declares the others, and automatic layouts keep only used ones. */
void gpux__wg_touch_all(wg_build *b, wg_str *s);
/* Output `out` is input `in` reinterpreted (Reshape, Squeeze, Identity...): no copy. The dtypes
 * must match, except float16/bfloat16 -> float32, whose values the f32 storage holds exactly. */
int gpux__wg_alias(wg_build *b, int out, int in);

/* float16 and bfloat16 emulated on f32 storage (narrow.c): every value a float16 (bfloat16)
 * tensor holds on the device is a float16 (bfloat16) value widened to f32, so f32 kernels take
 * them unchanged; a kernel's float16/bfloat16 output is rounded to its type (round to nearest
 * even, overflow to infinity, as the CPU kernels narrow) by the kernel's store or by one more
 * in-place dispatch, unless the op only moves or selects values of inputs of that same type
 * (gpux__wg_narrow_needed says whether node n's output y needs it). */
int gpux__wg_narrow_needed(const gpux__node *n, const gpux_tensor *const *in, int n_in, const gpux_tensor *y);
/* The rounding dispatch's shader after its binding declarations: b<binding>[i] rounded in place
 * to dtype over `total` elements, 256 per workgroup, gx workgroups per grid row. */
void gpux__wg_narrow_main(wg_str *s, int dtype, int binding, uint32_t gx, uint64_t total);
/* For a kernel that rounds output `out` itself in its next dispatch (its store wraps the value in
 * the returned WGSL function, defined by gpux__wg_narrow_fns): "gx_f16" or "gx_bf16", and the
 * planner adds no rounding dispatch as long as no later dispatch of the node writes `out`; NULL
 * when the output needs no rounding. */
const char *gpux__wg_narrow_in_kernel(wg_build *b, int out);
/* WGSL `fn NAME(x: f32) -> f32`: x rounded to the nearest float16, as an exact f32, by integer
 * arithmetic on the bits (no dependence on how a GPU converts f32 -> f16 or flushes subnormals;
 * float16 subnormals are multiples of 2^-24: scaled by 2^24, rounded half to even, scaled back). */
#define GPUX__WG_F16_ROUND_FN(NAME)                                                                   \
  "fn " NAME "(x: f32) -> f32 {\n"                                                                    \
  "  let u = bitcast<u32>(x);\n"                                                                     \
  "  let s = u & 0x80000000u;\n"                                                                     \
  "  let a = u & 0x7fffffffu;\n"                                                                     \
  "  if (a >= 0x7f800000u) { return x; }\n"                                                         \
  "  if (a >= 0x477ff000u) { return bitcast<f32>(s | 0x7f800000u); }\n"                             \
  "  if (a < 0x38800000u) {\n"                                                                       \
  "    let m = round(bitcast<f32>(a) * 16777216.0) * 5.9604644775390625e-8;\n"                        \
  "    return bitcast<f32>(s | bitcast<u32>(m));\n"                                                  \
  "  }\n"                                                                                            \
  "  return bitcast<f32>(s | ((a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u));\n"                   \
  "}\n"
/* The WGSL functions gx_f16(x) and gx_bf16(x): x rounded to the nearest float16/bfloat16. */
extern const char *const gpux__wg_narrow_fns;

/* Whether kernels take their software-adapter form (lavapipe, SwiftShader: no workgroup memory
 * or barriers, which JIT-compile slowly and gain nothing on a CPU) rather than their GPU form.
 * GPUX_WEBGPU_KERNELS=gpu or =software overrides (tests run the GPU forms on lavapipe). */
int gpux__wg_software(wg_build *b);

/* Splits n workgroups over x and y (each at most the device's per-dimension limit); the shader
 * recovers the flat workgroup index as wid.y * x + wid.x. */
void gpux__wg_grid(wg_build *b, uint64_t n_groups, uint32_t *x, uint32_t *y);

/* Shared generators (ops-elementwise.c). gpux__wg_ew emits out[i] = expr(a0, a1, ...) where a_k
 * is input in[k] (bound as types[k], WG_F32 when types is NULL) read at sum(coord[d] *
 * strides[k][d]) over the output's coordinates; numpy broadcasting when strides is NULL. */
int gpux__wg_ew(wg_build *b, int n, const int *in, const int *types, const int64_t (*strides)[GPUX_MAX_DIMS],
                const char *expr, int out_idx);
/* The general form: out[i] = expr over a0..a(n-1), each input read at base[k] + sum(coord[d] *
 * strides[k][d]) where coord are the coordinates of i in the output (or in view_dims, a view of
 * the output with the same element count); strides may be negative. */
typedef struct wg_ew {
  int n;                             /* inputs read */
  int in[8];                         /* their input slots */
  int type[8];                       /* binding types: WG_F32 (0) or WG_I32 */
  int custom;                        /* strides and base are given (else numpy broadcasting) */
  int64_t strides[8][GPUX_MAX_DIMS];
  int64_t base[8];
  int view_ndim;                     /* 0: the output's own shape */
  int64_t view_dims[GPUX_MAX_DIMS];
  const char *expr;                  /* of the output's type */
  const char *overflow;              /* NULL, or a bool over a0.. and the result v: v is not exact */
  int out, out_type;                 /* output slot, WG_F32 or WG_I32 */
} wg_ew;
int gpux__wg_ew2(wg_build *b, const wg_ew *e);
/* Row-major element strides of a tensor. */
void gpux__wg_strides(const gpux_tensor *t, int64_t *strides);
/* Appends the WGSL helper functions (gx_erf, gx_pow, gx_tanh, ...) that `expr` names, for
 * kernels outside ops-elementwise.c whose snippets call them (FusedMatMul's GELU). */
void gpux__wg_math_helpers(wg_str *s, const char *expr);
void gpux__wg_bcast_strides(const gpux_tensor *in, const gpux_tensor *out, int64_t *strides);

/* A batched matrix product C[z] = A[z] x B[z] (ops-linalg.c): the op supplies how elements are
 * read and written as WGSL snippets over u32 z, m, n, k, so layouts (transposes, broadcast
 * batches, Conv's implicit im2col) stay the op's business. */
typedef struct wg_gemm {
  int64_t M, N, K, batch;
  const char *load_a;                /* A(z, m, k): an f32 expression (indices in range) */
  const char *load_b;                /* B(z, k, n) */
  const char *store;                 /* statements that store f32 v at (z, m, n) */
  int a_k_contig, b_n_contig;        /* k runs contiguously in A, n in B (coalesced loads) */
  const char *prelude;               /* WGSL functions the snippets call (may be NULL) */
} wg_gemm;
int gpux__wg_gemm(wg_build *b, const wg_gemm *g);

/* A session's GEMM tuning (backend.c owns it, plans point at it): the configurations to use by
 * shape, and the shapes the plans' GEMMs had, with whether a tuned configuration was used. */
typedef struct wg_tuning {
  gpux__gemm_tuned *t;
  int n;
  gpux__gemm_shape *seen;
  unsigned char *seen_tuned;
  int n_seen, cap_seen;
} wg_tuning;
/* The tuning the plan being built follows (NULL: none). */
wg_tuning *gpux__wg_tuning(wg_build *b);

/* An op kernel: emits the node's dispatches, or declines. */
typedef int (*wg_op_fn)(wg_build *b);
typedef struct wg_op {
  const char *op_type;           /* default domain */
  wg_op_fn fn;
} wg_op;
wg_op_fn gpux__wg_op_find(const char *domain, const char *op_type);
/* Whether the backend takes node n (a WGSL kernel exists and GPUX_WEBGPU_CPU_OPS does not name
 * it): the backend table's supports_node. A kernel may still decline the node when planning. */
int gpux__wg_supports(const gpux__node *n, char *why, size_t why_len);

/* The op families (each table ends with {0}). */
extern const wg_op gpux__wg_ops_elementwise[];
extern const wg_op gpux__wg_ops_shape[];
extern const wg_op gpux__wg_ops_linalg[];
extern const wg_op gpux__wg_ops_conv[];
extern const wg_op gpux__wg_ops_norm[];
extern const wg_op gpux__wg_ops_reduce[];
extern const wg_op gpux__wg_ops_resize[];
extern const wg_op gpux__wg_ops_loss[];
extern const wg_op gpux__wg_ops_attention[];
extern const wg_op gpux__wg_ops_quant[];

extern const gpux__backend_i gpux__backend_webgpu;

#endif
