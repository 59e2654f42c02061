/* fuse-expand-dw.h — the CPU backend's fusion of an inverted residual block's 1x1 expansion with
 * the depthwise convolution that alone reads it, as gpux.ExpandDepthwise (fuse-expand-dw.c). */
#ifndef GPUX_FUSE_EXPAND_DW_H
#define GPUX_FUSE_EXPAND_DW_H

#include "graph/ir.h"

/* Rewrites g (optimize.c's copy of a main graph, after its fusions and channels-last regions):
 * every expansion E (a Conv or gpux.FusedConv of one group with a 1x1 kernel, stride 1, no pads,
 * constant float32 weights, an activation or none and no other epilogue) whose output only a
 * depthwise Conv or FusedConv D reads (3 x 3 or 5 x 5, stride 1 or 2, dilation 1, constant
 * weights, an activation or none), and nothing else (no graph output, no nested graph), becomes
 * one gpux.ExpandDepthwise node in D's place, and E goes. Names it adds come from arena. Sets
 * *changed when it rewrote anything. GPUX_EXPAND_DW=0 in the environment turns it off. 0 or a
 * negative error. */
int gpux__fuse_expand_dw(gpux__graph *g, gpux__arena *arena, int *changed);

#endif
