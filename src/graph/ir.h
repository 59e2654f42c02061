/* ir.h — gpux's in-memory graph (IR): values, nodes with attributes, nested graphs, and the model
 * that owns them. Built by the ONNX reader; read by shape inference, backends and the executor. */
#ifndef GPUX_IR_H
#define GPUX_IR_H

#include "core/internal.h"
#include <pthread.h>

struct gpux__op_def;
struct gpux__graph;

/* Attribute types, numbered as ONNX's AttributeProto.AttributeType. */
enum {
  GPUX_ATTR_UNDEFINED = 0, GPUX_ATTR_FLOAT = 1, GPUX_ATTR_INT = 2, GPUX_ATTR_STRING = 3,
  GPUX_ATTR_TENSOR = 4, GPUX_ATTR_GRAPH = 5, GPUX_ATTR_FLOATS = 6, GPUX_ATTR_INTS = 7,
  GPUX_ATTR_STRINGS = 8, GPUX_ATTR_TENSORS = 9, GPUX_ATTR_GRAPHS = 10,
  GPUX_ATTR_SPARSE_TENSOR = 11, GPUX_ATTR_SPARSE_TENSORS = 12, GPUX_ATTR_TYPE_PROTO = 13,
  GPUX_ATTR_TYPE_PROTOS = 14
};

typedef struct gpux__attr {
  const char *name;
  int type;                    /* GPUX_ATTR_* */
  int64_t i;                   /* INT */
  float f;                     /* FLOAT */
  const char *s;               /* STRING (NUL-terminated copy; s_len for embedded NULs) */
  size_t s_len;
  int n;                       /* element count of the list kinds below */
  int64_t *ints;               /* INTS */
  float *floats;               /* FLOATS */
  const char **strings;        /* STRINGS */
  gpux_tensor *t;              /* TENSOR, SPARSE_TENSOR (densified) */
  gpux_tensor *tensors;        /* TENSORS [n] */
  struct gpux__graph *g;        /* GRAPH */
  struct gpux__graph **graphs;  /* GRAPHS [n] */
  int tp_kind, tp_dtype;       /* TYPE_PROTO: value kind and element type */
} gpux__attr;

typedef struct gpux__node {
  const char *name;
  const char *op_type;
  const char *domain;          /* "" for the default ONNX domain */
  int opset;                   /* opset version of the node's domain in this model */
  int n_in, n_out;
  int *in;                     /* value ids [n_in]; -1 for an omitted optional input */
  int *out;                    /* value ids [n_out]; -1 for an omitted optional output */
  int n_attrs;
  gpux__attr *attrs;
  const struct gpux__op_def *op; /* resolved kernel, NULL when none */
} gpux__node;

typedef struct gpux__value {
  const char *name;
  gpux_value_info info;        /* declared type (graph inputs/outputs/value_info) */
  int has_info;
  int is_const;                /* an initializer: `init` holds it */
  gpux_tensor init;
  int is_graph_input;
  int outer;                   /* >= 0: id of the value of the same name in the parent graph */
  int producer;                /* node index, -1 for inputs/constants */
  int last_use;                /* index of the last node reading it, -1 if none */
  const uint8_t *pb;           /* an initializer whose data is a copy (not aligned in the file,
                                  another encoding): its TensorProto, to make the copy again
                                  after onnx/mapped.c let it go; NULL otherwise */
  size_t pb_len;
  int holders;                 /* sessions that may read that copy (gpux__model_hold) */
} gpux__value;

typedef struct gpux__graph {
  const char *name;
  struct gpux__graph *parent;   /* enclosing graph of a subgraph (If/Loop/Scan body) */
  struct gpux_model *model;
  int n_values, cap_values;
  gpux__value *values;
  int n_nodes;
  gpux__node *nodes;            /* topologically sorted */
  int n_inputs, n_outputs;
  int *inputs;                 /* value ids of graph inputs (initializers excluded) */
  int *outputs;
  int *dead_start;             /* [n_nodes + 1] values to free after node i: */
  int *dead_after;             /*   dead_after[dead_start[i] .. dead_start[i+1]) */
  int *hash;                   /* open-addressing index name -> value id (+1), hash_cap slots */
  int hash_cap;
} gpux__graph;

typedef struct gpux__opset_entry {
  const char *domain;
  int64_t version;
} gpux__opset_entry;

struct gpux_model {
  char *path;                  /* file the model came from ("<buffer>" otherwise) */
  char *dir;                   /* folder for external data */
  gpux__arena arena;           /* every string, node and attribute of the model */
  void *map;                   /* the mmap'ed file (weights point into it) */
  size_t map_size;
  int64_t ir_version;
  int n_opsets;
  gpux__opset_entry *opsets;
  gpux__graph *graph;
  int n_graphs;                /* every graph, nested ones included, for release */
  gpux__graph **graphs;
  int n_ext_maps;              /* memory-mapped external data files */
  void **ext_maps;
  size_t *ext_sizes;
  pthread_mutex_t lock;        /* the copies sessions hold and let go (onnx/mapped.c) */
};

/* Value lookup by name in one graph (not its parents); -1 when absent. */
int gpux__graph_find(const gpux__graph *g, const char *name);
/* Adds a value named `name` to g (or returns the existing one). */
int gpux__graph_add_value(gpux__graph *g, const char *name);
/* Orders nodes topologically, fills producer/last_use; errors name a cycle or a missing value. */
int gpux__graph_finalize(gpux__graph *g);

const gpux__attr *gpux__node_attr(const gpux__node *n, const char *name);

#endif
