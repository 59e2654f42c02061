/* optimize.h — the graph rewrite a session runs once (optimize.c): Constant nodes become
 * initializers, and a Conv (ConvTranspose) followed by the per-channel affine ops,
 * BatchNormalization and activation it feeds becomes one gpux.FusedConv (FusedConvTranspose)
 * node, and so on; asked for, a language model's logits are cut to the last position
 * (last-position.c). The model's own graph is not touched: the session runs a rewritten copy. */
#ifndef GPUX_OPTIMIZE_H
#define GPUX_OPTIMIZE_H

#include "graph/ir.h"

/* Makes *out a rewritten copy of g (a model's main graph) that shares g's attributes and weights
 * and owns what the rewrite made (nested graphs rewritten as well included); free it with
 * gpux__graph_optimized_free. Values keep their ids, so nested graphs that capture values of g
 * read the copy's values alike. *out is NULL (and 0 returned) when nothing was rewritten or
 * GPUX_OPTIMIZE=0 is set in the environment. */
int gpux__graph_optimize(const gpux__graph *g, gpux__graph **out);

/* Rewrites a backend may go without (gpux__optimize_opts's `skip`). */
enum {
  GPUX__OPT_ATTENTION = 1 << 0, /* fuse-attention.c: the Attention node */
};
/* What a session asks of the rewrite besides the defaults. */
typedef struct {
  unsigned skip;                /* GPUX__OPT_* rewrites to go without */
  int last_position;            /* last-position.c on this output of the main graph, or -1: done
                                   also under GPUX_OPTIMIZE=0 (the session's outputs depend on it),
                                   after the other rewrites */
  int channels_last;            /* channels-last.c's layout (the CPU backend's) */
  int lower_fp16;               /* lower-fp16.c: float16 computed in float32 (the CPU backend's) */
} gpux__optimize_opts;
/* gpux__graph_optimize as `opts` says. */
int gpux__graph_optimize_with(const gpux__graph *g, const gpux__optimize_opts *opts, gpux__graph **out);
void gpux__graph_optimized_free(gpux__graph *g);
/* The bytes of the constants the rewrite made (folded weights), nested graphs' included. */
size_t gpux__graph_optimized_bytes(const gpux__graph *g);

#endif
