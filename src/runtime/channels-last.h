/* channels-last.h — the CPU backend's activation layout (channels-last.c): regions of consecutive
 * convolutions whose activations stay channels last (NHWC) between them, as gpux.ConvNHWC nodes,
 * with one Transpose into the layout where a region reads a value and one back where a value
 * leaves it. */
#ifndef GPUX_CHANNELS_LAST_H
#define GPUX_CHANNELS_LAST_H

#include "graph/ir.h"

/* Rewrites g (optimize.c's copy of a main graph, after its fusions, whose node table has room for
 * cap_nodes nodes): every region that pays becomes channels last. Nodes and names it adds come
 * from arena, which lives as long as g. Values keep their ids and their NCHW meaning wherever
 * anything outside a region reads them (graph outputs, other nodes, nested graphs); values only
 * a region reads change layout. Sets *changed when it rewrote anything; the caller sorts the
 * graph again. GPUX_CHANNELS_LAST=0 in the environment turns it off. 0 or a negative error. */
int gpux__channels_last(gpux__graph *g, int cap_nodes, gpux__arena *arena, int *changed);

#endif
