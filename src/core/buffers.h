/* buffers.h — a cache of freed buffers (buffers.c), one per session, for the tensors the
 * executor's memory plan does not place (runs of an input signature before its plan is made,
 * nested graph bodies, outputs handed to the caller and given back with gpux_session_recycle).
 * The executor hands such an intermediate's data back here after its last use, and the kernels'
 * gpux__out takes the next output's data from here, so a run reuses the blocks the previous
 * nodes and runs freed instead of mapping, faulting in and zeroing fresh memory. Blocks are
 * plain malloc blocks, so a tensor holding one is freed as any other (gpux_tensor_free). It is in
 * core because both the kernels (ops) and the executor (runtime) use it. */
#ifndef GPUX_BUFFERS_H
#define GPUX_BUFFERS_H

#include "core/internal.h"
#include <pthread.h>

#define GPUX__BUFFERS_MAX 128     /* blocks kept at most */

typedef struct gpux__buffers {
  pthread_mutex_t lock;           /* runs of one session may overlap */
  int n;                          /* blocks kept */
  void *p[GPUX__BUFFERS_MAX];     /* the blocks */
  size_t size[GPUX__BUFFERS_MAX]; /* their sizes in bytes */
} gpux__buffers;

void gpux__buffers_init(gpux__buffers *b);
/* Frees every block kept (and the lock). */
void gpux__buffers_release(gpux__buffers *b);
/* Frees every block kept; b stays usable. */
void gpux__buffers_trim(gpux__buffers *b);
/* A block of at least `size` bytes, uninitialized: a kept one when one fits without wasting
 * more than half of it (or 256 bytes), else a new one. NULL (GPUX_E_NOMEM set) when out of
 * memory. */
void *gpux__buffers_get(gpux__buffers *b, size_t size);
/* Frees t, keeping its data block when it is one plain buffer that t owns (not strings, not a
 * sequence, not a view). */
void gpux__buffers_put(gpux__buffers *b, gpux_tensor *t);

#endif
