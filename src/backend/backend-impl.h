/* backend-impl.h — the interface every execution backend implements (a table of functions plus
 * a context pointer, versioned so a backend built separately can be checked). The runtime asks a
 * backend which nodes it takes, and runs them through it; nodes it does not take run on the CPU
 * backend, which takes every node that has a kernel. */
#ifndef GPUX_BACKEND_IMPL_H
#define GPUX_BACKEND_IMPL_H

#include "ops/op.h"

#define GPUX_BACKEND_INTERFACE_VERSION 2

/* run_graph's answer when a backend does not take a graph: the runtime then runs it node by node
 * through run_node. */
#define GPUX__DECLINED 1

/* Where a node ran (node_place). */
enum { GPUX__PLACE_UNKNOWN = 0, GPUX__PLACE_BACKEND, GPUX__PLACE_CPU, GPUX__PLACE_CONST };

typedef struct gpux_backend_i {
  int version;                                   /* GPUX_BACKEND_INTERFACE_VERSION */
  const char *name;                              /* "cpu", "webgpu" */
  /* Creates the backend's context; an error when the device is not usable. */
  int (*init)(void **ctx, const gpux_session_options *opts);
  void (*release)(void *ctx);
  /* (optional) Whether this backend runs node n; NULL means every node with a kernel. On false,
   * `why` (may be NULL) receives a short reason for inspect/verify reports. */
  int (*supports_node)(void *ctx, const gpux_node *n, char *why, size_t why_len);
  /* Runs one node: inputs and outputs as the kernel context describes. */
  int (*run_node)(void *ctx, gpux_kctx *k);
  /* (optional) Takes the model's main graph once, before the first run. */
  int (*prepare)(void *ctx, const gpux_graph *g);
  /* (optional) Runs the whole main graph (planned per input signature, nodes the backend cannot
   * run falling back to their CPU kernels): inputs in graph order, outputs filled and owned by the
   * caller. GPUX__DECLINED when the backend does not take the graph. */
  int (*run_graph)(void *ctx, const gpux_graph *g, const gpux_tensor *inputs, int n_inputs,
                   gpux_tensor *outputs, int n_outputs);
  /* (optional) Where node i of the main graph ran in the last run_graph (GPUX__PLACE_*); `why`
   * receives the reason of a CPU fallback. */
  int (*node_place)(void *ctx, int i, const char **why);
} gpux_backend_i;

extern const gpux_backend_i gpux__backend_cpu;
extern const gpux_backend_i gpux__backend_webgpu;
/* The WebGPU adapter is a software rasterizer on the CPU (lavapipe, SwiftShader): AUTO prefers
 * the CPU backend then. Valid after a successful init. */
int gpux__webgpu_is_software(void *ctx);

#endif
