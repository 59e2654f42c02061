/* cpu.c — the CPU backend: runs each node's plain C kernel (the op table's function), which is
 * also the reference every other backend is tested against. Threads come from the shared pool. */
#include "backend/backend-impl.h"
#include <cblas.h>

static int cpu_init(void **ctx, const gpux_session_options *opts) {
  /* The pool is the only source of threads: kernels split BLAS work into pool tasks, and
   * OpenBLAS's own workers would otherwise spin on the cores the pool uses (and on the one core
   * of a single-threaded session). */
  openblas_set_num_threads(1);
  *ctx = NULL;
  return 0;
}

static void cpu_release(void *ctx) { (void)ctx; }

static int cpu_run_node(void *ctx, gpux__kctx *k) {
  (void)ctx;
  return k->node->op->run(k);
}

const gpux__backend_i gpux__backend_cpu = {
  /* .version       = */ GPUX_BACKEND_INTERFACE_VERSION,
  /* .name          = */ "cpu",
  /* .device_type   = */ GPUX__DEVICE_HOST,
  /* .init          = */ cpu_init,
  /* .release       = */ cpu_release,
  /* .supports_node = */ NULL,
  /* .run_node      = */ cpu_run_node,
};
