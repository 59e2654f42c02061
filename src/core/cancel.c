/* cancel.c — stopping a run between nodes: the process-wide interrupt (gpux_interrupt, from a
 * signal handler) and the flag of the run on this thread (an app's, raised by gpux_app_cancel when
 * gpux serve's deadline for it passes). The executor asks gpux__cancelled before every node. */
#include "core/internal.h"

static atomic_int interrupted;
static _Thread_local const atomic_int *run_flag;

void gpux_interrupt(void) { atomic_store(&interrupted, 1); }

const atomic_int *gpux__cancel_enter(const atomic_int *flag) {
  const atomic_int *old = run_flag;
  run_flag = flag;
  return old;
}

void gpux__cancel_leave(const atomic_int *old) { run_flag = old; }

int gpux__cancelled(void) {
  if (atomic_load_explicit(&interrupted, memory_order_relaxed))
    return gpux__error(GPUX_E_CANCELLED, "interrupted");
  if (run_flag && atomic_load_explicit(run_flag, memory_order_relaxed))
    return gpux__error(GPUX_E_CANCELLED, "cancelled");
  return 0;
}
