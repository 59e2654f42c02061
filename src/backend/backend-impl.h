/* backend-impl.h — the interface every execution backend implements (a table of functions plus
 * a context pointer, versioned so a backend built separately can be checked). The runtime asks a
 * backend which nodes it takes, and runs them through it; nodes it does not take run on the CPU
 * backend, which takes every node that has a kernel. */
#ifndef GPUX_BACKEND_IMPL_H
#define GPUX_BACKEND_IMPL_H

#include "ops/op.h"

#define GPUX_BACKEND_INTERFACE_VERSION 1

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
} gpux_backend_i;

extern const gpux_backend_i gpux__backend_cpu;

#endif
