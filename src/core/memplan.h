/* memplan.h — placing blocks of memory with known lifetimes in one arena (memplan.c): the
 * liveness-based reuse that the CPU executor's memory plan (runtime/session.c) is made of, in
 * core so that any backend can place its buffers the same way. Blocks alive at the same time
 * never overlap; blocks whose lifetimes are disjoint may share bytes. */
#ifndef GPUX_MEMPLAN_H
#define GPUX_MEMPLAN_H

#include "core/internal.h"

typedef struct {
  size_t size;        /* bytes (0: not placed) */
  int first, last;    /* alive from step first to step last, both included */
  size_t off;         /* out: offset in the arena, a multiple of the alignment */
} gpux__memblock;

/* Places the n blocks (greedy: largest first, each at the lowest offset that overlaps no block
 * placed before it and alive at the same time), every offset a multiple of align (a power of
 * two). Returns the arena size needed, or SIZE_MAX when out of memory (error set). */
size_t gpux__memplan(gpux__memblock *blocks, int n, size_t align);

#endif
