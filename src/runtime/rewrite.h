/* rewrite.h — what the optimizer's graph rewrites share (optimize.c, fuse-attention.c,
 * fuse-transformer.c): recognising a node's op, reading a value's constant, counting the values
 * nested graphs capture, and appending a constant or computed value the rewrite made to the graph
 * copy. */
#ifndef GPUX_REWRITE_H
#define GPUX_REWRITE_H

#include "graph/ir.h"

/* Whether n is the default-domain (ai.onnx) op `op`. */
int gpux__node_is(const gpux__node *n, const char *op);

/* The constant tensor of value id (in a nested graph, also an initializer of an enclosing graph
 * that it captures), or NULL when it is computed, id < 0, or the value is not a dense tensor. */
const gpux_tensor *gpux__graph_const(const gpux__graph *g, int id);

/* A float32 constant of one element: 1 and its value in *v, else 0. */
int gpux__graph_const_f32(const gpux__graph *g, int id, float *v);

/* Counts the values that n's nested graphs (If, Loop, Scan bodies) capture from the graph as read
 * from outside: adds `weight` to uses[v] for each capture of value v. */
void gpux__count_captures(const gpux__node *n, int *uses, int weight);

/* Appends a constant value named `name` holding `data` (nbytes, dtype, shape ndim/dims) to the
 * rewrite's copy g, within its spare capacity and not indexed by name: the caller keeps name and
 * data alive as long as g (they are not freed with the tensor). Returns its id or a negative
 * error (the value table is full). */
int gpux__graph_append_const(gpux__graph *g, const char *name, int dtype, int ndim, const int64_t *dims, void *data,
                             size_t nbytes);

/* Appends a computed value named `name` (kept alive by the caller, as above) to the rewrite's copy
 * g, within its spare capacity: its id or a negative error. */
int gpux__graph_append_value(gpux__graph *g, const char *name);

/* Memory of `bytes` that the rewrite's copy g (optimize.c's) owns: freed with it and counted in
 * gpux__graph_optimized_bytes; NULL when out of memory. */
void *gpux__graph_own(gpux__graph *g, size_t bytes);

/* Whether data is memory the rewrite's copy g owns (gpux__graph_own, a folded or converted
 * weight). */
int gpux__graph_owns(const gpux__graph *g, const void *data);

/* Frees value v's data, memory g owns that nothing reads any more (kernels keep their own form of
 * it), and clears it: the bytes freed, 0 when g does not own it. */
size_t gpux__graph_disown(gpux__graph *g, int v);

#endif
