/* gpux.h — the public C API of libgpux: the whole contract between the library and its users
 * (the gpux command included). Objects are opaque handles named gpux_<object>_<verb>; every
 * function that can fail returns a negative gpux error code, described by gpux_strerror(), and a
 * detailed one-line message is available from gpux_last_error() on the calling thread. */
#ifndef GPUX_GPUX_H
#define GPUX_GPUX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; gpux_version() is the version of the library actually loaded. The
 * shared library's SOVERSION is GPUX_VERSION_MAJOR. */
#define GPUX_VERSION_MAJOR 0
#define GPUX_VERSION_MINOR 1
#define GPUX_VERSION_PATCH 0
#define GPUX_VERSION "0.1.0"
/* One number that compares: GPUX_VERSION_NUMBER >= GPUX_VERSION_AT(0, 1, 0). */
#define GPUX_VERSION_AT(major, minor, patch) ((major) * 10000 + (minor) * 100 + (patch))
#define GPUX_VERSION_NUMBER GPUX_VERSION_AT(GPUX_VERSION_MAJOR, GPUX_VERSION_MINOR, GPUX_VERSION_PATCH)

/* Marks what libgpux exports: the library is built with hidden visibility, so only declarations
 * in this header carrying GPUX_API are visible in libgpux.so. */
#ifndef GPUX_API
#if defined(__GNUC__) || defined(__clang__)
#define GPUX_API __attribute__((visibility("default")))
#else
#define GPUX_API
#endif
#endif

/* The library's version string ("0.1.0"), which may differ from the GPUX_VERSION this program
 * was compiled with. */
GPUX_API const char *gpux_version(void);
/* The operator-set versions of `domain` ("" or "ai.onnx", "ai.onnx.ml") that models may import:
 * those of the ONNX release whose node tests gpux passes (src/ops/registry.c). 0, or
 * GPUX_E_NOTFOUND for a domain gpux has no operators of. */
GPUX_API int gpux_opset_range(const char *domain, int *min, int *max);

/* Error codes: negative, stable, never renumbered. X(name, value, message). */
#define GPUX_ERRNO_MAP(X)                                                           \
  X(OK, 0, "success")                                                               \
  X(NOMEM, -1, "out of memory")                                                     \
  X(IO, -2, "input/output error")                                                   \
  X(NOTFOUND, -3, "not found")                                                      \
  X(PARSE, -4, "malformed file")                                                    \
  X(INVALID, -5, "invalid argument")                                                \
  X(UNSUPPORTED_OP, -6, "unsupported operator")                                     \
  X(UNSUPPORTED_DTYPE, -7, "unsupported data type")                                 \
  X(UNSUPPORTED, -8, "unsupported feature")                                         \
  X(SHAPE, -9, "shape mismatch")                                                    \
  X(DTYPE, -10, "data type mismatch")                                               \
  X(MODEL, -11, "invalid model")                                                    \
  X(DEVICE, -12, "device error")                                                    \
  X(INTERNAL, -13, "internal error")                                                \
  X(MISMATCH, -14, "outputs differ")                                                \
  X(CANCELLED, -15, "cancelled")                                                    \
  X(HANDLER, -16, "handler failed")

typedef enum {
#define GPUX__ERR_ENUM(name, value, msg) GPUX_E_##name = value,
  GPUX_ERRNO_MAP(GPUX__ERR_ENUM)
#undef GPUX__ERR_ENUM
} gpux_error;

GPUX_API const char *gpux_strerror(int err);    /* "unsupported operator" */
GPUX_API const char *gpux_err_name(int err);    /* "UNSUPPORTED_OP" */
GPUX_API const char *gpux_last_error(void);     /* the detailed message of this thread's last failure */

/* Asks every run in progress in this process to stop at its next node: they fail with
 * GPUX_E_CANCELLED, and so does every run started later. Async-signal-safe, for a SIGINT or
 * SIGTERM handler. */
GPUX_API void gpux_interrupt(void);

/* ---- log messages ----
 * What the library has to say outside a call's return value (a fallback to the CPU, debugging
 * output asked for with GPUX_WEBGPU_VERBOSE and friends) goes to one handler per process. The
 * default writes "gpux: note: MESSAGE" (error/warning/note/debug) to stderr. */
typedef enum { GPUX_LOG_ERROR = 0, GPUX_LOG_WARNING = 1, GPUX_LOG_NOTE = 2, GPUX_LOG_DEBUG = 3 } gpux_log_level;
/* message has no trailing newline; it may span lines (a shader dump). Called from any thread. */
typedef void (*gpux_log_handler)(void *ctx, int level, const char *message);
/* Replaces the handler (a handler filters by level itself); fn NULL restores the default. */
GPUX_API void gpux_set_log(gpux_log_handler fn, void *ctx);
GPUX_API const char *gpux_log_level_name(int level);   /* "error", "warning", "note", "debug" */

/* Element types, numbered as ONNX's TensorProto.DataType. Sub-byte types (int4, uint4, int2,
 * uint2, float4e2m1) are held unpacked, one byte per element; 16-bit floats as raw bits. */
typedef enum {
  GPUX_DT_UNDEFINED = 0, GPUX_DT_FLOAT = 1, GPUX_DT_UINT8 = 2, GPUX_DT_INT8 = 3,
  GPUX_DT_UINT16 = 4, GPUX_DT_INT16 = 5, GPUX_DT_INT32 = 6, GPUX_DT_INT64 = 7,
  GPUX_DT_STRING = 8, GPUX_DT_BOOL = 9, GPUX_DT_FLOAT16 = 10, GPUX_DT_DOUBLE = 11,
  GPUX_DT_UINT32 = 12, GPUX_DT_UINT64 = 13, GPUX_DT_COMPLEX64 = 14, GPUX_DT_COMPLEX128 = 15,
  GPUX_DT_BFLOAT16 = 16, GPUX_DT_FLOAT8E4M3FN = 17, GPUX_DT_FLOAT8E4M3FNUZ = 18,
  GPUX_DT_FLOAT8E5M2 = 19, GPUX_DT_FLOAT8E5M2FNUZ = 20, GPUX_DT_UINT4 = 21, GPUX_DT_INT4 = 22,
  GPUX_DT_FLOAT4E2M1 = 23, GPUX_DT_FLOAT8E8M0 = 24, GPUX_DT_UINT2 = 25, GPUX_DT_INT2 = 26,
  GPUX_DT_COUNT
} gpux_dtype;

GPUX_API const char *gpux_dtype_name(int dtype);   /* "float32", "int64", ... */
GPUX_API size_t gpux_dtype_size(int dtype);        /* bytes per element as held in memory; 0 if unknown */

#define GPUX_MAX_DIMS 8

/* What a value is: a tensor, a sequence of values, or an empty optional. */
typedef enum { GPUX_KIND_TENSOR = 0, GPUX_KIND_SEQUENCE = 1, GPUX_KIND_NONE = 2 } gpux_kind;

/* A value passed in and out of the library. The caller owns what it creates; free with
 * gpux_tensor_free (frees data when owns_data is set, and sequence items). */
typedef struct gpux_tensor {
  int kind;                      /* gpux_kind */
  int dtype;                     /* gpux_dtype; for a sequence, its elements' dtype */
  int ndim;
  int64_t dims[GPUX_MAX_DIMS];
  void *data;                    /* dense, row-major; STRING: char *[count] (each malloc'ed) */
  size_t nbytes;
  int owns_data;                 /* data (and strings) freed by gpux_tensor_free */
  int n_items;                   /* GPUX_KIND_SEQUENCE: the items */
  struct gpux_tensor *items;
} gpux_tensor;

GPUX_API int64_t gpux_tensor_count(const gpux_tensor *t);   /* number of elements */
/* Makes t a new zero-filled tensor owning its data. */
GPUX_API int gpux_tensor_init(gpux_tensor *t, int dtype, int ndim, const int64_t *dims);
GPUX_API void gpux_tensor_free(gpux_tensor *t);
/* Deep copy. */
GPUX_API int gpux_tensor_copy(gpux_tensor *dst, const gpux_tensor *src);
/* Reads a serialized onnx TensorProto (kind GPUX_KIND_TENSOR), SequenceProto
 * (GPUX_KIND_SEQUENCE) or OptionalProto (GPUX_KIND_NONE) from a file. */
GPUX_API int gpux_tensor_load_pb(const char *path, int kind, gpux_tensor *out);
/* Element i as double (any numeric dtype). */
GPUX_API double gpux_tensor_get_f64(const gpux_tensor *t, int64_t i);
/* Writes "float32[1,3,224,224]" into buf. */
GPUX_API const char *gpux_tensor_describe(const gpux_tensor *t, char *buf, size_t len);

/* Comparison the way ONNX's backend runner does it: floats |a-b| <= atol + rtol*|b| (NaN equals
 * NaN, infinities must match), everything else exactly. Returns 0 when equal, GPUX_E_MISMATCH
 * when not (with where and how much in `report`), or another error for kind/shape/dtype. */
typedef struct {
  int64_t worst_index;           /* flat index of the worst element, -1 if none */
  double worst_abs, worst_rel;   /* its absolute and relative error */
  double got, want;
  int64_t n_bad;                 /* elements outside tolerance */
  char message[256];
} gpux_compare_report;
GPUX_API int gpux_tensor_compare(const gpux_tensor *got, const gpux_tensor *want, double rtol,
                        double atol, gpux_compare_report *report);

/* ---- models ---- */
typedef struct gpux_model gpux_model;

/* Loads an ONNX model. Weights are memory-mapped, not copied. External data files are resolved
 * against the model's folder. */
GPUX_API int gpux_model_load(const char *path, gpux_model **out);
GPUX_API int gpux_model_load_buffer(const void *data, size_t size, const char *name, gpux_model **out);
GPUX_API void gpux_model_free(gpux_model *m);

typedef struct {
  const char *name;
  int kind;                      /* gpux_kind */
  int dtype;                     /* GPUX_DT_UNDEFINED when not declared */
  int ndim;                      /* -1 when the rank is unknown */
  int64_t dims[GPUX_MAX_DIMS];   /* -1 for a symbolic or unknown dimension */
  const char *dim_names[GPUX_MAX_DIMS]; /* symbolic names ("batch"), NULL when fixed */
  int optional;                  /* declared optional: may be absent (GPUX_KIND_NONE) */
} gpux_value_info;

GPUX_API int gpux_model_input_count(const gpux_model *m);
GPUX_API int gpux_model_output_count(const gpux_model *m);
GPUX_API int gpux_model_input_info(const gpux_model *m, int i, gpux_value_info *info);
GPUX_API int gpux_model_output_info(const gpux_model *m, int i, gpux_value_info *info);
GPUX_API int gpux_model_node_count(const gpux_model *m);
/* Operator of node i as "Conv" or "com.microsoft::Gelu". */
GPUX_API const char *gpux_model_node_op(const gpux_model *m, int i);
/* Name of node i ("" when the model gives none); NULL when i is out of range. */
GPUX_API const char *gpux_model_node_name(const gpux_model *m, int i);
GPUX_API int64_t gpux_model_ir_version(const gpux_model *m);
GPUX_API int64_t gpux_model_opset(const gpux_model *m, const char *domain);
/* Returns 0 when every op of the model (nested graphs included) has a kernel, else
 * GPUX_E_UNSUPPORTED_OP naming the first one missing. */
GPUX_API int gpux_model_check_ops(const gpux_model *m);

/* ---- sessions: a model ready to run on a backend ---- */
typedef struct gpux_session gpux_session;

typedef enum { GPUX_BACKEND_AUTO = 0, GPUX_BACKEND_CPU = 1, GPUX_BACKEND_WEBGPU = 2 } gpux_backend_kind;
typedef enum { GPUX_PRECISION_FP32 = 0, GPUX_PRECISION_FP16 = 1 } gpux_precision;

typedef struct {
  int backend;                   /* gpux_backend_kind */
  int threads;                   /* CPU threads this session's runs use at most, the calling
                                    thread included; 0 = all of the process's pool
                                    ($GPUX_THREADS, default the number of cores) */
  uint64_t gpu_memory;           /* device memory a WebGPU session's plans may hold, in bytes;
                                    0 = no limit. A run whose plan needs more fails with
                                    GPUX_E_DEVICE naming both numbers. */
  int precision;                 /* gpux_precision. FP16: on a WebGPU adapter with shader-f16,
                                    float32 weights are converted to float16 once when planning,
                                    activations are stored as float16 and kernels compute in
                                    float32 registers; inputs and outputs stay float32. Without
                                    shader-f16 (and on the CPU) the session computes in float32:
                                    gpux_session_precision says so. */
  const char *last_position;     /* text generation: the name of an output [batch, seq, vocab] (a
                                    language model's logits) of which the caller reads only the
                                    last position of each row. Runs give it as [batch, 1, vocab]:
                                    the sequence is cut as early as is exact (before the output
                                    layer when only position-wise ops follow it), so the other
                                    positions' logits are never computed. The session also gives
                                    one output more than the model declares, after the others
                                    (index gpux_model_output_count): the ArgMax of that output over
                                    its last axis, int64 [batch, 1] (greedy decoding reads it and
                                    keeps the logits on the device). An output not declared of rank
                                    3 keeps its shape and gets the ArgMax alone. NULL: off. */
} gpux_session_options;

GPUX_API int gpux_session_create(gpux_model *m, const gpux_session_options *opts, gpux_session **out);
GPUX_API void gpux_session_free(gpux_session *s);
/* Runs one inference. inputs are in the model's input order (n_inputs may be fewer when trailing
 * inputs are optional); outputs (n_outputs = the model's output count) are filled and owned by the
 * caller. */
GPUX_API int gpux_session_run(gpux_session *s, const gpux_tensor *inputs, int n_inputs,
                     gpux_tensor *outputs, int n_outputs);
/* Frees an output of s's runs as gpux_tensor_free does, but keeps its memory for the outputs of
 * s's later runs. On the CPU a session plans its intermediates' memory once per input signature,
 * so a loop that runs a model and recycles what it gets back allocates nothing after its first
 * runs. */
GPUX_API void gpux_session_recycle(gpux_session *s, gpux_tensor *t);
GPUX_API const char *gpux_session_backend_name(const gpux_session *s);
/* The float precision the session computes in: "fp16" or "fp32". When fp16 was asked for and is
 * not used, *why (may be NULL) says why ("the adapter has no shader-f16", "the CPU backend
 * computes in float32"); "" otherwise. */
GPUX_API const char *gpux_session_precision(const gpux_session *s, const char **why);
/* Why a session asked for GPUX_BACKEND_AUTO runs on the CPU: no usable WebGPU device (and the
 * reason), a software adapter only, or a device that failed during a run. On a WebGPU session
 * whose last run put nodes on the CPU: gpux_session_fallback_summary's text. "" when the session
 * runs where it was asked to, every node on that backend. */
GPUX_API const char *gpux_session_backend_reason(const gpux_session *s);
/* Which nodes of the last run went to the CPU on a device backend and why, grouped by operator
 * and reason, as "3 nodes on the CPU: If 'cond_1' (its condition ...), Cast 'c' and 1 more
 * (input 0 is float16 ...)". Writes "" and returns 0 when none did (or before the first run);
 * returns the number of such nodes. */
GPUX_API int gpux_session_fallback_summary(const gpux_session *s, char *buf, size_t len);
/* Where node i of the model's main graph ran in the last gpux_session_run: "webgpu", "cpu" (on
 * a WebGPU session: a fallback, with the reason in *why when why is not NULL) or "const"
 * (computed once when the session planned the model for these input shapes). NULL before the
 * first run or when i is out of range. */
GPUX_API const char *gpux_session_node_device(const gpux_session *s, int i, const char **why);

/* ---- device tensors and IO binding ----
 * A gpux_device_tensor is a tensor held on a session's device (on the CPU backend: in host
 * memory). A run may take device tensors as inputs and keep outputs on the device, so that a
 * result feeding the next run (a recurrent state, a KV cache) never travels through host memory;
 * gpux_device_tensor_read is the explicit copy to the host. They belong to the device, not to a
 * session: they stay valid after the session that made them is freed and can be given to any
 * session (one on another device reads them over the host). */
typedef struct gpux_device_tensor gpux_device_tensor;

/* One input of gpux_session_run_values: a host tensor or a device tensor (at most one set;
 * neither is an omitted optional input). */
typedef struct {
  const gpux_tensor *tensor;
  const gpux_device_tensor *device;
} gpux_input;

/* One output: with keep = 0 it comes back in `tensor` (owned by the caller); with keep = 1 it
 * stays on the device as a new `device` tensor (free with gpux_device_tensor_free). */
typedef struct {
  int keep;
  gpux_tensor tensor;
  gpux_device_tensor *device;
} gpux_output;

/* gpux_session_run with inputs and outputs bound as above. */
GPUX_API int gpux_session_run_values(gpux_session *s, const gpux_input *inputs, int n_inputs,
                            gpux_output *outputs, int n_outputs);
/* Copies a host tensor to the session's device (e.g. an initial state). */
GPUX_API int gpux_device_tensor_upload(gpux_session *s, const gpux_tensor *t, gpux_device_tensor **out);
/* Copies it to the host: out becomes a new tensor owned by the caller. */
GPUX_API int gpux_device_tensor_read(const gpux_device_tensor *v, gpux_tensor *out);
/* Its kind, dtype and shape (out->data is NULL). */
GPUX_API void gpux_device_tensor_describe(const gpux_device_tensor *v, gpux_tensor *out);
/* Where it is held: "webgpu" or "cpu". */
GPUX_API const char *gpux_device_tensor_backend(const gpux_device_tensor *v);
GPUX_API void gpux_device_tensor_free(gpux_device_tensor *v);

/* What a session has done so far. Transfers count the tensors copied between host memory and
 * the device by the session's runs, plans (weights included) and gpux_device_tensor_upload; a CPU
 * session makes none. gpux_device_tensor_read is explicit and not counted. */
typedef struct {
  uint64_t runs;
  uint64_t uploads, upload_bytes;       /* host -> device */
  uint64_t downloads, download_bytes;   /* device -> host */
  uint64_t device_memory;               /* bytes of device memory the session's plans hold now */
  uint64_t device_memory_peak;          /* the most they held at once */
  uint64_t plans;                       /* times the graph was planned for the device (one plan per
                                           input shape and per value of the few inputs that decide
                                           shapes); 0 on the CPU */
  uint64_t f16_dispatches;              /* GPU dispatches of the last run's plan that read or write
                                           values stored as float16 (fp16 precision, float16
                                           models); 0 on the CPU */
} gpux_run_stats;

GPUX_API void gpux_session_stats(const gpux_session *s, gpux_run_stats *out);

/* Where a session's weights are in host memory now, in bytes. Reading it costs a pass over the
 * process's memory map (Linux), so it is for reports, not for every run. */
typedef struct {
  uint64_t weights_mapped;              /* of the model's memory-mapped files (the model and its
                                           external data), the pages resident now; pages whose data
                                           was copied or packed are given back (0 where the system
                                           does not say) */
  uint64_t weights_copied;              /* initializers the model holds as copies (data not
                                           aligned in the file, other encodings) */
  uint64_t weights_folded;              /* constants the session's graph rewrite made (Conv
                                           weights with a BatchNormalization folded in, float16
                                           weights as float32) that it still holds: not those
                                           its kernels hold packed and read no more */
  uint64_t weights_packed;              /* weights the session's kernels keep in a layout of their
                                           own (packed float32 GEMM weights, made on a node's
                                           first run) */
  uint64_t peak_rss;                    /* the whole process's peak resident memory (getrusage) */
} gpux_memory_stats;

GPUX_API void gpux_session_memory(const gpux_session *s, gpux_memory_stats *out);

/* Profiling: the time each op type took, per device, over the runs made while it is on. */
typedef struct {
  const char *op_type;                  /* "MatMul" (valid until the next call that changes the
                                           profile: enable, a run, free) */
  const char *device;                   /* where it ran: "webgpu", "cpu" */
  uint64_t count;                       /* node executions timed */
  double total_ms;                      /* their total time */
} gpux_op_profile;

/* Turns timing of every node on (dropping what was gathered before) or off. Device nodes are
 * timed with GPU timestamp queries where the adapter has `timestamp-query`; otherwise each is
 * submitted alone and timed by the wall clock, which makes profiled runs slower. */
GPUX_API int gpux_session_profile_enable(gpux_session *s, int on);
/* What was gathered, the most time first: fills at most cap entries and returns how many there
 * are. *method (may be NULL) says how device nodes were timed: "timestamp-query", "wall-clock",
 * or "" when none ran on a device. */
GPUX_API int gpux_session_profile(gpux_session *s, gpux_op_profile *out, int cap, const char **method);

/* ---- devices ---- */
typedef struct {
  char backend[16];              /* "webgpu" or "cpu" */
  char name[256];                /* "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)" */
  char vendor[64], architecture[64];
  char driver[256];              /* driver description */
  char api[16];                  /* what WebGPU runs on: "Vulkan", "Metal", "D3D12", ... */
  char type[16];                 /* "discrete", "integrated", "cpu", "unknown" */
  char library[512];             /* the WebGPU implementation that was loaded */
  uint32_t vendor_id, device_id;
  uint64_t max_buffer_size, max_storage_buffer_binding_size;
  uint32_t max_compute_workgroup_storage_size, max_compute_invocations_per_workgroup;
  uint32_t max_compute_workgroup_size[3], max_compute_workgroups_per_dimension;
  uint32_t max_storage_buffers_per_stage, min_storage_buffer_offset_alignment;
  uint32_t subgroup_min_size, subgroup_max_size;
  int shader_f16, subgroups, subgroup_matrix;   /* features the adapter offers */
  int threads;                   /* cpu: worker threads */
  char features[512];            /* webgpu: every feature the adapter offers ("shader-f16 subgroups
                                    0x50001 ..."; those gpux does not use by number) */
  char matrix_configs[256];      /* webgpu, with subgroup matrices: "f16*f16->f32 16x16x16, ..." */
} gpux_device_info;

/* Lists the devices gpux can run on: the WebGPU adapters, then the CPU. Fills at most cap
 * entries and returns how many there are. When no WebGPU adapter is listed, `note` (may be
 * NULL) says why: no library, no adapter, ... */
GPUX_API int gpux_devices(gpux_device_info *out, int cap, char *note, size_t note_len);
/* Whether this machine's WebGPU device runs fp16 sessions in float16 (shader-f16 listed and an
 * f16 shader compiles): 1 or 0, with `why` (may be NULL) saying which adapter or why not. Makes
 * the process's device when it does not exist yet. */
GPUX_API int gpux_fp16_available(char *why, size_t why_len);
/* Starts making the process's GPU device on a thread of its own, for a session on `backend`
 * (a gpux_backend_kind: WEBGPU or AUTO; CPU does nothing) created later: called before
 * gpux_model_load, the device's creation (the WebGPU library, adapter and device) overlaps the
 * model's loading, and gpux_session_create finds it made (or waits for it). Returns at once, at
 * most once a process; errors surface when the session is created. GPUX_WEBGPU_WARM=0 turns it
 * off. */
GPUX_API void gpux_device_warm(int backend);

/* ---- the local image store: $GPUX_HOME (default ~/.gpux) in OCI image-layout form ---- */
typedef struct gpux_store gpux_store;

/* Opens (creating when missing) the store at `home`; NULL means $GPUX_HOME, else ~/.gpux. */
GPUX_API int gpux_store_open(const char *home, gpux_store **out);
GPUX_API void gpux_store_close(gpux_store *st);
GPUX_API const char *gpux_store_path(const gpux_store *st);
/* Images as a JSON array: [{"name","tag","digest","size","created"}]; free with gpux_free. */
GPUX_API int gpux_store_list(gpux_store *st, char **json);
/* Removes the tag `ref` (NAME[:TAG], TAG defaults to "latest"); blobs no image uses are deleted. */
GPUX_API int gpux_store_remove(gpux_store *st, const char *ref);
GPUX_API int gpux_store_tag(gpux_store *st, const char *src, const char *dst);
/* Everything about one image as JSON: spec, build record, layers and digests. */
GPUX_API int gpux_store_inspect(gpux_store *st, const char *ref, char **json);

/* ---- building images from a folder with a GPUXfile ---- */
/* Progress of long steps: `done` of `total` (total 0 when unknown). */
typedef void (*gpux_progress_fn)(void *ctx, const char *step, int64_t done, int64_t total);
/* Long steps inside other calls report to one handler per process (NULL, the default: nowhere):
 * step "compile" when planning a model for the GPU takes more than half a second (its nodes'
 * pipelines compiled, `done` of `total` nodes; a last call with done == total). Any thread. */
GPUX_API void gpux_set_progress(gpux_progress_fn fn, void *ctx);

typedef struct {
  const char *tag;               /* NAME[:TAG]; NULL = the GPUXfile's name and version */
  int backend;                   /* gpux_backend_kind to compile and smoke-run on */
  gpux_progress_fn progress;     /* may be NULL */
  void *progress_ctx;
  int no_smoke;                  /* 1 = no smoke run: the models are loaded and their operators
                                    checked, but nothing runs and nothing is measured */
  int allow_outside;             /* 0: every file copied into the image (models, external data,
                                    labels, vocabularies, handlers) must be inside the build
                                    folder once symlinks are resolved; 1: anywhere */
  int tune;                      /* GEMM tuning for this machine's GPU, stored in the image
                                    (docs/gpuxfile.md): 0 = when the models run on WebGPU on an
                                    adapter that is not a CPU; 1 = whenever they run on WebGPU
                                    (an error otherwise); -1 = never */
  double tune_seconds;           /* the tuning's time budget; 0 = 30 s */
} gpux_build_options;

/* Parses and validates `context`/GPUXfile, loads the model(s), smoke-runs them, and writes an
 * image into the store. *summary_json (free with gpux_free) describes the result: name, tag,
 * digest, size, device, backend, latency, nodes that fell back to the CPU and why. */
GPUX_API int gpux_build(gpux_store *st, const char *context, const gpux_build_options *o, char **summary_json);
/* Tunes image `ref`'s GEMMs (MatMul, Gemm, Conv) for this machine's WebGPU adapter: the image's
 * models are smoke-run on WebGPU as gpux_build does, candidate tile configurations of each
 * distinct GEMM shape are timed within o->seconds and checked against the default kernel's
 * results, and the image is written again with its tuning holding this adapter's record (the
 * records of other adapters kept); `ref` then names the new image. *summary_json: reference,
 * digest, adapter, gemm_shapes, tuned, seconds. Progress goes to o->progress (step "tune"). */
typedef struct {
  double seconds;                /* time budget; 0 = 30 s */
  gpux_progress_fn progress;     /* may be NULL */
  void *progress_ctx;
} gpux_tune_options;
GPUX_API int gpux_tune(gpux_store *st, const char *ref, const gpux_tune_options *o, char **summary_json);
/* An image from a Hugging Face model repository, ref "hf:OWNER/REPO[/FILE.onnx][@REVISION]":
 * the repository's GPUXfile and the files it names, or else its ONNX model (FILE, model.onnx or
 * onnx/model.onnx) as a bare model, fetched from $HF_ENDPOINT (default https://huggingface.co)
 * and built as gpux_build does, named o->tag or OWNER/REPO:REVISION (:latest for main). */
GPUX_API int gpux_pull_hub(gpux_store *st, const char *ref, const gpux_build_options *o, char **summary_json);

/* ---- apps: an image (or a GPUXfile folder) ready to answer requests ---- */
typedef struct gpux_app gpux_app;

typedef struct {
  int backend;                   /* gpux_backend_kind; AUTO = the GPUXfile's runtime.backend */
  int allow_handler;             /* run an image's handler code even when it was not built here
                                    and its digest is not in $GPUX_HOME/trusted-handlers */
  int full_outputs;              /* 1 = answers carry every output's data however large (no
                                    "data_omitted"); 2 = and the text shows every value (no "...") */
  int precision;                 /* 0 = the GPUXfile's runtime.precision; else 1 + a gpux_precision
                                    (1: fp32, 2: fp16) */
} gpux_app_options;

/* Opens an image by reference (NAME[:TAG] or sha256:DIGEST) or a folder/GPUXfile path. */
GPUX_API int gpux_app_open(gpux_store *st, const char *ref_or_path, const gpux_app_options *o, gpux_app **out);
GPUX_API void gpux_app_close(gpux_app *a);

typedef struct {
  const char *name;              /* the input's name; NULL = the next input in declared order */
  const char *text;              /* a value as a person types it: text, numbers, JSON */
  const void *bytes;             /* or a file's contents (image, WAV, tensor .pb/.npy) */
  size_t len;
} gpux_app_input;

/* Runs pre-processing, the model(s) and post-processing. *result_json holds the outputs (name,
 * dtype, shape, data), labels or text when post-processing gives them, and timings;
 * *result_text is what a person wants to read. Either pointer may be NULL. */
GPUX_API int gpux_app_run(gpux_app *a, const gpux_app_input *inputs, int n_inputs, char **result_json,
                 char **result_text);
/* Runs the app on a request as `POST /predict` takes it (docs/serve.md): a JSON object
 * {"text": "..."}, {"image": "<base64>"}, {"audio": "<base64>"} or {"inputs": {"NAME": value}};
 * strings are never taken as file paths. Answers as gpux_app_run does. */
GPUX_API int gpux_app_run_request(gpux_app *a, const char *request, size_t len, char **result_json,
                         char **result_text);
/* Runs n_items requests of n_inputs inputs each (inputs[k * n_inputs + i] is item k's i-th) as
 * one batch: when the model has a leading batch dimension and the items' prepared inputs agree
 * on the other dimensions they are stacked into one run and the outputs split back, otherwise
 * they run one after another. results_json[k] / results_text[k] (arrays of n_items, either may
 * be NULL; free each with gpux_free) answer item k as gpux_app_run would, with "batch_size" (the
 * rows of the run it was part of) in the JSON. */
GPUX_API int gpux_app_run_batch(gpux_app *a, const gpux_app_input *inputs, int n_inputs, int n_items,
                       char **results_json, char **results_text);
/* Text generation (a GPUXfile with `generate:`): settings for one run over the GPUXfile's, and a
 * callback that receives each piece of text as soon as it is produced (UTF-8, never a split
 * character). The callback returns nonzero to stop the generation there. */
typedef int (*gpux_token_fn)(void *ctx, const char *text, int64_t token);
typedef struct {
  int max_new_tokens;            /* > 0 overrides generate.max_new_tokens */
  double temperature;            /* >= 0 overrides (0 = greedy); -1 = the GPUXfile's */
  int top_k;                     /* >= 0 overrides (0 = every token); -1 = the GPUXfile's */
  double top_p;                  /* in (0, 1] overrides; 0 = the GPUXfile's */
  double repetition_penalty;     /* > 0 overrides; 0 = the GPUXfile's */
  int64_t seed;                  /* >= 0 overrides; -1 = the GPUXfile's */
  const char *const *stop;       /* n_stop texts that end the generation, instead of the GPUXfile's */
  int n_stop;
  gpux_token_fn on_token;        /* may be NULL */
  void *ctx;
} gpux_generate_options;
/* Every setting "the GPUXfile's", no callback. */
GPUX_API void gpux_generate_options_init(gpux_generate_options *o);
/* gpux_app_run with generation settings and streaming; an app without `generate:` ignores them.
 * The answer adds "text", "tokens", "prompt_tokens", "generated_tokens", "finish_reason" ("stop"
 * or "length"), "time_to_first_token_ms", "tokens_per_second" and "download_bytes_per_token"
 * (bytes read back from the device per token; for `generate:` the decode steps' alone, the
 * prefill's in "prefill_download_bytes"). */
GPUX_API int gpux_app_generate(gpux_app *a, const gpux_app_input *inputs, int n_inputs,
                               const gpux_generate_options *o, char **result_json, char **result_text);
/* Whether the app generates text (its GPUXfile has `generate:`). */
GPUX_API int gpux_app_generates(const gpux_app *a);
/* The app's declared inputs and outputs as JSON (for help texts and OpenAPI). */
GPUX_API const char *gpux_app_describe(gpux_app *a);
/* Draws a detector's answer (result_json from gpux_app_run, whose outputs have "detections") on
 * the image it answered (PNG or JPEG bytes): each box outlined in its class's colour with its
 * label and score, written as PNG into *png (free with gpux_free). The boxes must be in that
 * image's pixels (docs/gpuxfile.md, postprocessing.detect). */
GPUX_API int gpux_image_annotate(const void *image, size_t len, const char *result_json, void **png, size_t *png_len);
/* cancel = 1: a gpux_app_run in progress (on another thread) stops at its next node and fails
 * with GPUX_E_CANCELLED, as do runs started later; cancel = 0 lets runs go again. Async-signal-safe.
 * gpux serve cancels a run whose requests have all passed their deadline. */
GPUX_API void gpux_app_cancel(gpux_app *a, int cancel);

/* ---- handlers: custom pre/post-processing code in a shared library (`handler: ./x.so`) ----
 * The library exports `const struct gpux_handler_v1 gpux_handler_v1 = {GPUX_HANDLER_ABI_VERSION,
 * ...}`. gpux loads it with dlopen in a worker process of its own (never in the process that
 * serves), one call at a time; a crash or a call past handler.timeout kills that worker only.
 * Functions return 0, or non-zero with a one-line message in err. Every slot but abi_version
 * may be NULL. docs/handlers.md has an example. */
#define GPUX_HANDLER_ABI_VERSION 1

typedef struct {
  const char *name;              /* a model input's name (preprocess) or output's (postprocess) */
  int dtype;                     /* gpux_dtype; not strings */
  int ndim;
  int64_t dims[GPUX_MAX_DIMS];
  void *data;                    /* dense, row-major */
  size_t nbytes;                 /* element count times gpux_dtype_size(dtype) */
} gpux_handler_tensor;

typedef struct {
  const char *name;              /* the request's key: the input's name, or "input" */
  const void *data;              /* text (also NUL-terminated) or a file's bytes */
  size_t len;
  int is_text;
} gpux_handler_value;

struct gpux_handler_v1 {
  uint32_t abi_version;          /* GPUX_HANDLER_ABI_VERSION */
  /* Once per worker: dir is the image's folder (its files by their names); *state goes to every
   * later call. */
  int (*init)(void **state, const char *dir, char *err, size_t err_len);
  /* The request's values -> the model's inputs: *out, an array of *n_out tensors allocated by the
   * handler (the array and each data are handed to free). */
  int (*preprocess)(void *state, const gpux_handler_value *request, int n_request,
                    gpux_handler_tensor **out, int *n_out, char *err, size_t err_len);
  /* The model's outputs -> *json, a NUL-terminated JSON text allocated by the handler (handed to
   * free): the answer's "result". */
  int (*postprocess)(void *state, const gpux_handler_tensor *outputs, int n_outputs,
                     const gpux_handler_value *request, int n_request, char **json, char *err,
                     size_t err_len);
  /* Frees one pointer preprocess or postprocess returned. */
  void (*free)(void *state, void *p);
};

/* ---- registries: sharing images through any OCI distribution-spec registry ---- */
typedef struct {
  const char *username;          /* NULL = the stored credentials ($GPUX_HOME/auth.json, then
                                    ~/.docker/config.json), else anonymous */
  const char *password;          /* never printed or logged */
  int insecure;                  /* allow plain HTTP for hosts other than localhost/127.0.0.1 */
  int64_t chunk_size;            /* push: blobs larger than this go up in PATCH chunks of this
                                    size; 0 = 32 MiB */
  int64_t max_rate;              /* bytes per second for transfers; 0 = unlimited */
  /* Per blob: step is "upload:TITLE", "exists:TITLE" (already in the registry), "download:TITLE",
     "have:TITLE" (already in the store, verified) or "manifest"; done/total in bytes. */
  gpux_progress_fn progress;     /* may be NULL */
  void *progress_ctx;
} gpux_registry_options;

/* Pushes the local image `local_ref` (NAME[:TAG] or sha256:DIGEST) to `remote_ref`
 * ([HOST[:PORT]/]NAMESPACE/NAME[:TAG]; NULL = local_ref). Blobs the registry has are skipped.
 * *summary_json (free with gpux_free): reference, digest, size, uploaded_bytes, blobs_uploaded,
 * blobs_skipped. */
GPUX_API int gpux_push(gpux_store *st, const char *local_ref, const char *remote_ref,
              const gpux_registry_options *o, char **summary_json);
/* Pulls `remote_ref` ([HOST[:PORT]/]NAMESPACE/NAME[:TAG|@sha256:HEX]) into the store; every blob
 * is verified against its digest before it is stored; blobs already stored (an interrupted pull)
 * are not fetched again. *summary_json: reference (the local name), digest, size,
 * downloaded_bytes, blobs_downloaded, blobs_present. */
GPUX_API int gpux_pull(gpux_store *st, const char *remote_ref, const gpux_registry_options *o,
              char **summary_json);
/* Checks username/password against `host` and stores them in $GPUX_HOME/auth.json (mode 0600). */
GPUX_API int gpux_login(gpux_store *st, const char *host, const gpux_registry_options *o);
/* Forgets the credentials stored for `host` by gpux_login (GPUX_E_NOTFOUND when there are none). */
GPUX_API int gpux_logout(gpux_store *st, const char *host);

/* ---- serving: apps behind an HTTP server (`gpux serve`) ----
 * One server answers for several apps: the friendly POST /predict, the Open Inference Protocol v2
 * (/v2/...), health, Prometheus /metrics and /openapi.json (docs/serve.md). It binds at once and
 * loads and warms the apps in the background (readiness is false until then); runs of each app
 * are serialized by one worker per app, which batches requests when the app's model has a batch
 * dimension and max_batch_size > 1. */
typedef struct gpux_server gpux_server;

/* One line for the access/error log (no trailing newline). */
typedef void (*gpux_log_fn)(void *ctx, const char *line);

typedef struct {
  const char *host;              /* address to bind; NULL = "127.0.0.1" */
  int port;                      /* 0 = any free port; -1 = the first image's serving.port (8080) */
  int backend;                   /* gpux_backend_kind for every app; AUTO = each GPUXfile's */
  int http_threads;              /* 0 = a thread per connection; N = a pool of N (epoll) */
  size_t max_body;               /* request body limit in bytes (413 above); 0 = 64 MiB */
  int max_batch_size;            /* 0 = each GPUXfile's serving.max_batch_size */
  double max_queue_delay_ms;     /* < 0 = each GPUXfile's serving.max_queue_delay_ms */
  int max_queue;                 /* requests waiting per app before 503; 0 = 256 */
  double timeout_s;              /* per request (504 after it); 0 = each GPUXfile's serving.timeout */
  double grace_s;                /* on stop: how long in-flight requests may finish; 0 = 30 */
  gpux_log_fn log;               /* access lines and errors; NULL = none */
  void *log_ctx;
  int allow_handler;             /* as gpux_app_options.allow_handler, for every app */
  const char *cors_origin;       /* answers carry Access-Control-Allow-Origin: this ("*" = any
                                    page) and OPTIONS preflights are answered; NULL = no CORS */
} gpux_server_options;

/* Binds the address and starts loading `refs` (NAME[:TAG] or GPUXfile folders, as gpux_app_open
 * takes) in the background. `st` must stay open until gpux_server_wait_ready returns. */
GPUX_API int gpux_server_start(gpux_store *st, const char *const *refs, int n_refs, const gpux_server_options *o,
                      gpux_server **out);
/* Waits until every app is loaded and warmed up; returns the first load error, if any. */
GPUX_API int gpux_server_wait_ready(gpux_server *s);
GPUX_API int gpux_server_port(const gpux_server *s);
GPUX_API uint64_t gpux_server_requests(const gpux_server *s);   /* requests answered so far */
/* Stops accepting connections, lets in-flight requests finish (at most grace_s), frees. */
GPUX_API void gpux_server_stop(gpux_server *s);

/* Frees strings returned by the library. */
GPUX_API void gpux_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
