/* backend-impl.h — the interface every execution backend implements (a table of functions plus
 * a context pointer, versioned so a backend built separately can be checked). The runtime
 * optimizes the graph once, asks a backend which nodes it takes (supports_node) and hands it the
 * graph; nodes it does not take run on their CPU kernels through the runtime's host services,
 * which also infer shapes, so a backend never calls a kernel itself. */
#ifndef GPUX_BACKEND_IMPL_H
#define GPUX_BACKEND_IMPL_H

#include "ops/op.h"

#define GPUX_BACKEND_INTERFACE_VERSION 5

/* run_graph's answer when a backend does not take a graph: the runtime then runs it node by node
 * through run_node. */
#define GPUX__DECLINED 1

/* Where a node ran (node_place). CPU_GRAPH: on the CPU only because another node sent the whole
 * graph there (its reason names that node). */
enum { GPUX__PLACE_UNKNOWN = 0, GPUX__PLACE_BACKEND, GPUX__PLACE_CPU, GPUX__PLACE_CONST, GPUX__PLACE_CPU_GRAPH };

/* Where a backend keeps tensors: host memory (the CPU backend) or a device of its own. */
enum { GPUX__DEVICE_HOST = 0, GPUX__DEVICE_GPU = 1 };

struct gpux__backend_i;

/* A matrix product as a device backend's GEMM kernel sees it: C[z](M x N) = A[z](M x K) x
 * B[z](K x N) for z < batch, whether k runs contiguously in A and n in B. MatMul, Gemm and
 * Conv as an implicit GEMM all come down to these. */
typedef struct gpux__gemm_shape {
  int64_t M, N, K, batch;
  int a_k_contig, b_n_contig;
} gpux__gemm_shape;

/* How the GEMM kernel is laid out (tuning, runtime/tune.c): the form, the threads of a
 * workgroup (tiled form: wx along n, wy along m; the simple form runs 64 threads in a row), each
 * thread's register tile of rm x rn results, and how many workgroups share K (tiled form; 1 =
 * none, the parts are then added by a second kernel). A backend checks a configuration against
 * its device's limits and uses its own default for a shape when it does not fit. */
enum { GPUX__GEMM_SIMPLE = 1, GPUX__GEMM_TILED = 2 };
typedef struct gpux__gemm_config {
  int form;                               /* GPUX__GEMM_* */
  int wx, wy;                             /* tiled: threads along n and m (tile: wy*rm x wx*rn) */
  int rm, rn;                             /* results per thread along m and n (1..8) */
  int split;                              /* tiled: K split over this many workgroups (1..16) */
} gpux__gemm_config;

/* A configuration to use for GEMMs of one shape. */
typedef struct gpux__gemm_tuned {
  gpux__gemm_shape shape;
  gpux__gemm_config cfg;
} gpux__gemm_tuned;

/* A value (gpux.h): a host tensor, or a buffer on a backend's device. */
struct gpux_device_tensor {
  gpux_tensor t;                          /* dtype and shape; the data of a host value */
  const struct gpux__backend_i *backend;   /* NULL: a host value */
  void *dev;                              /* the backend's device (the value holds a reference) */
  void *buf;                              /* the backend's buffer */
  uint64_t off;                           /* where the data starts in buf: 0, or inside a plan's
                                             storage for a view a control-flow body reads */
  uint64_t bytes;
  uint64_t cap;                           /* the size of buf (WebGPU: at least bytes, more for a
                                             buffer reused from a larger value) */
  int held;                               /* how the backend stores the elements (WebGPU: f32, i32
                                             or f16, see wg.h) */
};

/* One run's inputs and outputs as a backend sees them. */
typedef struct gpux__io {
  const gpux_tensor *inputs;              /* [n_inputs] in graph order; an input bound to a device
                                             value has its dtype and shape here and data NULL */
  const gpux_device_tensor *const *in_values;     /* [n_inputs] or NULL: non-NULL = bound to this
                                             backend's device value */
  int n_inputs;
  gpux_tensor *outputs;                   /* [n_outputs] host results, owned by the caller */
  int n_outputs;
  const unsigned char *keep;              /* [n_outputs] or NULL: 1 = output stays on the device */
  gpux_device_tensor **out_values;                /* [n_outputs]: where kept outputs go */
  gpux_run_stats *stats;                  /* transfers are counted here */
  struct gpux__prof *prof;                /* when not NULL: each node's time is added here */
} gpux__io;

/* What the runtime does for a backend: runs a node's CPU kernel, or with shape_only infers its
 * outputs' dtypes and shapes. Backends never call kernels themselves, so shape inference and
 * host execution (kernel contexts, the session's buffers, error messages) happen in one place.
 * When shape inference fails because an input's values decide the output shapes and are not
 * known (gpux__need_data), *needed (when not NULL) gets that input's bit (inputs 0..63). */
typedef struct gpux__host {
  int (*run_node)(void *rt, const gpux__node *n, const gpux_tensor *const *in, gpux_tensor *const *out, int shape_only,
                  uint64_t *needed);
  void *rt;
} gpux__host;

typedef struct gpux__backend_i {
  int version;                                   /* GPUX_BACKEND_INTERFACE_VERSION */
  const char *name;                              /* "cpu", "webgpu" */
  int device_type;                               /* GPUX__DEVICE_* */
  /* Creates the backend's context; an error when the device is not usable. */
  int (*init)(void **ctx, const gpux_session_options *opts);
  void (*release)(void *ctx);
  /* (optional) Whether this backend runs node n; NULL means every node with a kernel. On false,
   * `why` (may be NULL) receives a short reason for inspect/verify reports. The runtime asks it
   * for every node when the session is created. */
  int (*supports_node)(void *ctx, const gpux__node *n, char *why, size_t why_len);
  /* (optional) Runs one node of a graph the runtime executes node by node: inputs and outputs
   * as the kernel context describes. NULL: the runtime runs the node's CPU kernel itself. */
  int (*run_node)(void *ctx, gpux__kctx *k);
  /* (optional) Takes the main graph once, before the first run (the runtime's optimized form,
   * the graph run_graph is then given), the host services (kept until release), and which nodes
   * the runtime placed on this backend: supported[i] says what supports_node answered for node
   * i (NULL: every node). Nodes not placed here run through host. */
  int (*prepare)(void *ctx, const gpux__graph *g, const gpux__host *host, const unsigned char *supported);
  /* (optional) Runs the whole main graph (planned per input signature, nodes the backend cannot
   * run falling back to their CPU kernels). GPUX__DECLINED when the backend does not take the
   * graph (then no input was touched and no output made). */
  int (*run_graph)(void *ctx, const gpux__graph *g, const gpux__io *io);
  /* (optional) Where node i of the main graph ran in the last run_graph (GPUX__PLACE_*); `why`
   * receives the reason of a CPU fallback. */
  int (*node_place)(void *ctx, int i, const char **why);
  /* (optional, device backends) A host tensor copied into a new device value; GPUX__DECLINED
   * when the device does not hold this dtype (the value then stays on the host). */
  int (*value_upload)(void *ctx, const gpux_tensor *t, gpux_device_tensor **out, gpux_run_stats *stats);
  /* (device backends) A device value copied to the host; its buffer freed. */
  int (*value_read)(const gpux_device_tensor *v, gpux_tensor *out);
  void (*value_free)(gpux_device_tensor *v);
  /* (optional) Whether the session is better off on the CPU backend when AUTO was asked for
   * (a software rasterizer on the CPU). */
  int (*prefer_cpu)(void *ctx);
  /* (optional) The float precision the backend computes in: "fp32" or "fp16". When fp16 was asked
   * for and is not used, *why (may be NULL) says why ("" otherwise). NULL: fp32. */
  const char *(*precision)(void *ctx, const char **why);
  /* (optional, backends with a tunable GEMM) The configurations the session's GEMMs of the
   * given shapes use from now on (copied; n = 0: the backend's defaults everywhere). Plans
   * made before are dropped. */
  int (*set_gemm_tuning)(void *ctx, const gpux__gemm_tuned *t, int n);
  /* (optional) The distinct GEMM shapes the plans made so far contained, at most cap of them
   * into out (may be NULL), and how many of those used a configuration set_gemm_tuning gave
   * (*n_tuned); returns the count of shapes. */
  int (*gemm_shapes)(void *ctx, gpux__gemm_shape *out, int cap, int *n_tuned);
} gpux__backend_i;

extern const gpux__backend_i gpux__backend_cpu;
extern const gpux__backend_i gpux__backend_webgpu;

#endif
