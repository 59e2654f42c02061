/* scratch.h — per-thread scratch memory for kernels (scratch.c): a few numbered slots per thread,
 * each a block kept and grown for the thread's next call, so a kernel's temporary buffers (column
 * buffers, padded copies, tap tables, partial sums) cost no allocation in steady-state runs. A
 * thread's blocks are freed when it exits (a pool worker lives as long as the process; a server's
 * request thread does not). Each slot has one user at a time on a thread: a kernel takes a slot
 * no code it calls while holding the block also takes. */
#ifndef GPUX_SCRATCH_H
#define GPUX_SCRATCH_H

#include "core/internal.h"

enum {
  GPUX__SCRATCH_CONV_COLS,     /* conv.c: im2col / col2im column buffers (pool tasks) */
  GPUX__SCRATCH_CONVT,         /* conv.c: ConvTranspose's transposed weights and columns */
  GPUX__SCRATCH_CONV_IMAGE,    /* conv-direct.c: the calling thread's padded, split image */
  GPUX__SCRATCH_CONV_TILE,     /* conv-direct.c: each task's output tile or depthwise planes
                                  (pool tasks) */
  GPUX__SCRATCH_CONV_EXPAND,   /* conv-depthwise.c: each task's expanded rows (pool tasks) */
  GPUX__SCRATCH_CONV_TAPS,     /* conv-direct.c: the calling thread's tap offset table */
  GPUX__SCRATCH_CONV_SCALED,   /* conv.c: weights or X scaled by a folded squeeze-excitation */
  GPUX__SCRATCH_CONV_WINO,     /* conv-winograd.c: each task's transformed tiles (pool tasks) */
  GPUX__SCRATCH_CONV_WINO_WIDE, /* conv-winograd.c: the calling thread's tiles of all tasks */
  GPUX__SCRATCH_POOL_TAPS,     /* pool.c: the column window tables */
  GPUX__SCRATCH_POOL_COUNT,
  GPUX__SCRATCH_REDUCE_A,      /* reduce.c: accumulators, shifts, partials, converted input */
  GPUX__SCRATCH_REDUCE_B,
  GPUX__SCRATCH_REDUCE_C,
  GPUX__SCRATCH_REDUCE_D,
  GPUX__SCRATCH_REDUCE_E,
  GPUX__SCRATCH_OMITTED,       /* kernel.c: data of outputs the graph leaves out */
  GPUX__SCRATCH_SGEMM_B,       /* sgemm.c: the calling thread's B packed for one product */
  GPUX__SCRATCH_SGEMM_ITEM_B,  /* sgemm.c: each task's B of a batch item (pool tasks) */
  GPUX__SCRATCH_SGEMM_A,       /* sgemm.c: the calling thread's A packed in strips */
  GPUX__SCRATCH_ATTENTION,     /* attention.c: the calling thread's packed K^T and V */
  GPUX__SCRATCH_IGEMM_PANEL,   /* quant.c: each task's 8-bit panel (pool tasks) */
  GPUX__SCRATCH_IGEMM_C,       /* quant.c: each task's int32 products with it (pool tasks) */
  GPUX__SCRATCH_SLOTS
};

/* The calling thread's block of slot `slot`, at least `bytes` long and 64-byte aligned, its
 * contents undefined (a grown block is new). Valid until the next call for that slot on this
 * thread. NULL (GPUX_E_NOMEM set) when out of memory. */
void *gpux__scratch(int slot, size_t bytes);
/* Grows the calling thread's blocks of the slots pool tasks use to the largest size any thread
 * has asked for: what a pool worker does when it joins a job. */
void gpux__scratch_sync(void);
/* Frees the calling thread's blocks now (they are freed at thread exit anyway). */
void gpux__scratch_release(void);

#endif
