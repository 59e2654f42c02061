/* conv-plan-note.c — GPUX_CONV_PLAN=1: one log line per convolution run saying how its kernel
 * split the work (threads, tasks, positions x channels per task, how busy the busiest thread is).
 * A file of its own, below the kernels that call it, so that conv.c (which calls the kernels)
 * and the kernels do not call each other in a circle. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv.h"

void gpux__conv_plan_note(const char *kernel, const gpux__conv2d *p, int threads, int64_t tasks, int64_t positions,
                          int64_t channels, double macs_per_task) {
  static atomic_int on = -1;
  int v = atomic_load_explicit(&on, memory_order_relaxed);
  if (v < 0) {
    const char *env = getenv("GPUX_CONV_PLAN");
    v = env && strcmp(env, "0") != 0;
    atomic_store_explicit(&on, v, memory_order_relaxed);
  }
  if (!v) return;
  int64_t busiest = gpux__parallel_busiest(tasks, threads);
  gpux__log(GPUX_LOG_NOTE,
            "conv plan %s: c %lld m %lld g %lld %lldx%lld -> %lldx%lld k %lldx%lld s %lld: %d threads, %lld tasks "
            "of %lld positions x %lld channels, %.3f M MACs each, %d%% busy",
            kernel, (long long)p->c, (long long)p->m, (long long)p->g, (long long)p->h, (long long)p->w_,
            (long long)p->oh, (long long)p->ow, (long long)p->kh, (long long)p->kw, (long long)p->sh, threads,
            (long long)tasks, (long long)positions, (long long)channels, macs_per_task / 1e6,
            (int)(100.0 * (double)tasks / (double)(GPUX__MAX(1, busiest) * GPUX__MAX(1, threads))));
}
