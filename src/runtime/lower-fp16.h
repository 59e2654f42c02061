/* lower-fp16.h — the CPU backend's float16 graphs computed in float32 (lower-fp16.c): a rewrite
 * optimize.c runs on its copy of a main graph before its fusions, which then find float32 nodes. */
#ifndef GPUX_LOWER_FP16_H
#define GPUX_LOWER_FP16_H

#include "graph/ir.h"
#include <stddef.h>

/* Memory of `bytes` that graph g's owner frees with it; NULL when out of memory. */
typedef void *(*gpux__own_fn)(gpux__graph *g, size_t bytes);

/* Rewrites g (optimize.c's copy of a main graph, whose node table has room for *cap_nodes nodes)
 * so that every float16 value it computes is computed in float32, where every op of the graph is
 * one that computes the same in either type; leaves g as it is otherwise. May replace g->values
 * and g->nodes with larger tables (*cap_nodes and g->cap_values grow by what it added); names,
 * attributes and lists it adds come from arena, data from own (optimize.c passes
 * gpux__graph_own: handed in, so that the two files do not call each other). Sorts g again and
 * sets *changed when it rewrote anything. GPUX_LOWER_FP16=0 in the environment turns it off. 0 or a
 * negative error. */
int gpux__lower_fp16(gpux__graph *g, int *cap_nodes, gpux__arena *arena, gpux__own_fn own, int *changed);

#endif
