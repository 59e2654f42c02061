/* cpu.c — the CPU backend: runs each node's plain C kernel (the op table's function), which is
 * also the reference every other backend is tested against. Threads come from the shared pool. */
#include "backend/backend-impl.h"

static int cpu_init(void **ctx, const gpux_session_options *opts) {
  if (opts && opts->threads > 0) gpux__set_thread_count(opts->threads);
  *ctx = NULL;
  return 0;
}

static void cpu_release(void *ctx) { (void)ctx; }

static int cpu_run_node(void *ctx, gpux_kctx *k) {
  (void)ctx;
  return k->node->op->run(k);
}

const gpux_backend_i gpux__backend_cpu = {
  /* .version       = */ GPUX_BACKEND_INTERFACE_VERSION,
  /* .name          = */ "cpu",
  /* .init          = */ cpu_init,
  /* .release       = */ cpu_release,
  /* .supports_node = */ NULL,
  /* .run_node      = */ cpu_run_node,
};
