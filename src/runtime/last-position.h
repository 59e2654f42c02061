/* last-position.h — the rewrite behind the session option last_position (last-position.c): a
 * language model's logits [batch, seq, vocab] computed for the last position only, the sequence
 * cut as early as is exact, and their ArgMax over the vocabulary as one more graph output. */
#ifndef GPUX_LAST_POSITION_H
#define GPUX_LAST_POSITION_H

#include "graph/ir.h"

/* Rewrites g (optimize.c's copy of a graph, whose node table has room for cap_nodes nodes) for
 * graph output `output`: cuts it to the last position unless `cut` is 0 (an If's branches were
 * cut instead), and with `argmax` appends the ArgMax output. `rank` is the output's rank when g
 * does not declare it (a branch whose If's output does), else -1. Nodes it adds and their input
 * lists, attributes and names come from arena, which lives as long as g; with `argmax`,
 * g->outputs is a new list with one entry more. The caller sorts the graph again. 0 or a
 * negative error. */
int gpux__last_position(gpux__graph *g, int cap_nodes, gpux__arena *arena, int output, int rank, int cut, int argmax);

/* The rank gpux__last_position cuts output `output` of g by (declared, else `rank`): 3, or
 * another number when it leaves the output as it is. */
int gpux__last_position_rank(const gpux__graph *g, int output, int rank);

/* The If node (index) of g whose result output `output` is, read by nothing else, or -1; *which
 * is which of the If's outputs it is. Its branches may be cut on that output instead of g. */
int gpux__last_position_if(const gpux__graph *g, int output, int *which);

#endif
