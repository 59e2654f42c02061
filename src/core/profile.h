/* profile.h — per-operator time tallies for profiling (gpux bench --profile): how many times each
 * op type ran on each device and how long it took, over the runs a session was asked to time. The
 * executor adds the nodes it runs on the host, a backend the nodes it runs on its device (from GPU
 * timestamps where it has them, else wall-clock times of nodes submitted one by one). It is in
 * core because the runtime and the backends both fill it. */
#ifndef GPUX_PROFILE_H
#define GPUX_PROFILE_H

#include "core/internal.h"
#include <pthread.h>

typedef struct gpux__prof_entry {
  char op[64];                    /* op type ("MatMul") */
  char device[16];                /* where it ran: "webgpu", "cpu" */
  uint64_t count;                 /* node executions */
  double ms;                      /* their total time */
} gpux__prof_entry;

/* How device nodes were timed (the weakest method used wins). */
enum { GPUX__PROF_NONE = 0, GPUX__PROF_TIMESTAMPS, GPUX__PROF_WALL };

typedef struct gpux__prof {
  pthread_mutex_t lock;           /* runs of one session may overlap */
  gpux__prof_entry *e;            /* [n] in first-seen order */
  int n, cap;
  int method;                     /* GPUX__PROF_* for device nodes */
} gpux__prof;

void gpux__prof_init(gpux__prof *p);
void gpux__prof_release(gpux__prof *p);
/* Drops what was gathered. */
void gpux__prof_clear(gpux__prof *p);
/* One execution of an op on a device; `method` says how a device time was measured
 * (GPUX__PROF_NONE for host nodes). Out of memory drops the sample. */
void gpux__prof_add(gpux__prof *p, const char *op, const char *device, double ms, int method);

#endif
