/* fuse-transformer.h — the transformer rewrites of the session's graph copy (fuse-transformer.c):
 * written-out GELU and LayerNorm become Gelu and LayerNormalization nodes, and a MatMul by
 * constant weights with its bias Add and activation becomes one gpux.FusedMatMul. */
#ifndef GPUX_FUSE_TRANSFORMER_H
#define GPUX_FUSE_TRANSFORMER_H

#include "graph/ir.h"

/* Rewrites g (optimize.c's copy) in place: rewritten nodes take their new input lists and
 * attributes from arena, which lives as long as g, and nodes made redundant are set in
 * dead[n_nodes] (the caller drops them and sorts the graph again). 0 or a negative error. */
int gpux__fuse_transformer(gpux__graph *g, unsigned char *dead, gpux__arena *arena);

#endif
