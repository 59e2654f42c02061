/* last-position.h — the rewrite behind the session option last_position (last-position.c): a
 * language model's logits [batch, seq, vocab] computed for the last position only, the sequence
 * cut as early as is exact, and their ArgMax over the vocabulary as one more graph output. */
#ifndef GPUX_LAST_POSITION_H
#define GPUX_LAST_POSITION_H

#include "graph/ir.h"

/* Rewrites g (optimize.c's copy of a main graph, whose node table has room for cap_nodes nodes)
 * for graph output `output`: nodes it adds and their input lists, attributes and names come from
 * arena, which lives as long as g; g->outputs gets one more entry (the ArgMax). The caller sorts
 * the graph again. 0 or a negative error. */
int gpux__last_position(gpux__graph *g, int cap_nodes, gpux__arena *arena, int output);

#endif
