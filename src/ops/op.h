/* op.h — how an operator is implemented in gpux. Every op is one function that both infers its
 * outputs' dtypes and shapes and, unless asked for shapes only, computes them on the CPU; op
 * families register their functions in tables (one per family file) that registry.c collects.
 *
 * A kernel reads inputs with IN(i) (NULL when an optional input is omitted), reads attributes
 * with the gpux__attr_* helpers, creates each output with gpux__out(), and returns 0 or a
 * negative gpux error set through gpux__kerr(). The pattern:
 *
 *   static int op_relu(gpux__kctx *k) {
 *     const gpux_tensor *x = IN(0);
 *     gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
 *     if (!y) return k->status;
 *     if (k->shape_only) return 0;
 *     ... compute ...
 *     return 0;
 *   }
 */
#ifndef GPUX_OP_H
#define GPUX_OP_H

#include "graph/ir.h"

typedef struct gpux__kctx gpux__kctx;
typedef int (*gpux__kernel_fn)(gpux__kctx *k);

/* What a kernel keeps for its node across runs of a session (weights packed once into the layout
 * its micro-kernels read): the kernel's own struct starting with this header; the session frees
 * it with `destroy` when it is freed. */
typedef struct gpux__node_state gpux__node_state;
struct gpux__node_state {
  void (*destroy)(gpux__node_state *s);
  uint64_t replaces;           /* inputs (bit i, i < 64), all initializers, that the state holds in
                                  its own form: the node never reads their data again, so the
                                  session may let the memory behind them go */
  uint64_t rereads;            /* of `replaces`, inputs the node may still read, rarely (to make
                                  another form for a shape the kept one does not serve): the
                                  session may give back the file pages behind them (read again
                                  from the file), but keeps their data */
  _Atomic size_t bytes;        /* the memory the state holds (weight accounting; a form made on
                                  a later run adds to it) */
};

typedef struct gpux__op_def {
  const char *domain;          /* "" for ai.onnx, "com.microsoft", ... */
  const char *op_type;
  gpux__kernel_fn run;
  int min_opset, max_opset;    /* opset range this kernel handles; 0 = unbounded */
} gpux__op_def;

/* Runs a nested graph (If/Loop/Scan bodies) in the scope of the current node: `inputs` bind to
 * the body's inputs in order, outputs are filled (owned by the caller). */
typedef int (*gpux__subgraph_fn)(gpux__kctx *k, const gpux__graph *body, const gpux_tensor *inputs,
                                int n_inputs, gpux_tensor *outputs, int n_outputs);

struct gpux__kctx {
  const gpux__node *node;
  int n_in, n_out;
  const gpux_tensor *const *in;  /* [n_in]; NULL entries for omitted optional inputs */
  gpux_tensor *const *out;       /* [n_out]; NULL entries for omitted optional outputs */
  int opset;                     /* the node's opset version */
  int shape_only;                /* infer dtypes/shapes, leave data NULL */
  uint64_t needed;               /* shape_only: inputs (bit i, i < 64) whose values decide the
                                    output shapes but were not known (gpux__need_data) */
  int status;                    /* last error set by gpux__kerr/gpux__out */
  gpux__subgraph_fn run_subgraph;
  void *exec;                    /* executor state for run_subgraph */
  struct gpux__buffers *buffers; /* the executor's freed buffers gpux__out reuses, or NULL */
  void *const *out_mem;          /* [n_out] the memory the executor's plan holds for each output
                                    (NULL entries: none), or NULL: no plan */
  const size_t *out_cap;         /* [n_out] its bytes; an output that does not fit goes elsewhere */
  gpux__node_state *_Atomic *state; /* this node's slot kept across the session's runs, or NULL:
                                       none kept (use gpux__state_get / gpux__state_keep) */
  uint64_t const_in;             /* inputs (bit i, i < 64) that are initializers: the same data in
                                    every run of the session */
};

/* The kernel context of node n over in[n->n_in] and out[n->n_out] (everything else zero): the
 * one way executors set a context up. */
void gpux__kctx_init(gpux__kctx *k, const gpux__node *n, const gpux_tensor *const *in, gpux_tensor *const *out);

/* The node's kept state, NULL when there is none yet or the node keeps none. */
gpux__node_state *gpux__state_get(const gpux__kctx *k);
/* Keeps st as the node's state and returns it; when another run kept one first, or the node keeps
 * none, st is destroyed and the kept one (or NULL) returned. */
gpux__node_state *gpux__state_keep(gpux__kctx *k, gpux__node_state *st);

#define IN(i) ((i) < k->n_in ? k->in[(i)] : NULL)
#define OUTPUT_WANTED(i) ((i) < k->n_out && k->out[(i)] != NULL)

/* Sets k->status and the thread's error message (prefixed with the node), returns err. */
int gpux__kerr(gpux__kctx *k, int err, const char *fmt, ...) GPUX__PRINTF(3, 4);

/* Makes output i a tensor of this dtype/shape: zero-filled data unless shape_only. Returns NULL
 * (with k->status set) on failure, and a scratch tensor when output i is omitted so kernels need
 * not check. */
gpux_tensor *gpux__out(gpux__kctx *k, int i, int dtype, int ndim, const int64_t *dims);
/* The same with the data left uninitialized, for kernels that write every element. */
gpux_tensor *gpux__out_raw(gpux__kctx *k, int i, int dtype, int ndim, const int64_t *dims);
/* Output i becomes a deep copy of src (sequences included). */
int gpux__out_copy(gpux__kctx *k, int i, const gpux_tensor *src);
/* In shape_only mode, an input whose values decide output shapes may not be known yet:
 * returns GPUX_E_UNSUPPORTED ("needs data") when IN(i) has no data, noting i in k->needed,
 * else 0. */
int gpux__need_data(gpux__kctx *k, int i);

/* Attributes, with the default when the attribute is absent. */
int64_t gpux__attr_int(const gpux__kctx *k, const char *name, int64_t dflt);
float gpux__attr_float(const gpux__kctx *k, const char *name, float dflt);
const char *gpux__attr_string(const gpux__kctx *k, const char *name, const char *dflt);
/* Lists: returns the count (0 when absent) and sets *vals (NULL when absent). */
int gpux__attr_ints(const gpux__kctx *k, const char *name, const int64_t **vals);
int gpux__attr_floats(const gpux__kctx *k, const char *name, const float **vals);
int gpux__attr_strings(const gpux__kctx *k, const char *name, const char *const **vals);
const gpux_tensor *gpux__attr_tensor(const gpux__kctx *k, const char *name);
const gpux__graph *gpux__attr_graph(const gpux__kctx *k, const char *name);
int gpux__has_attr(const gpux__kctx *k, const char *name);

/* Reads a 1-D (or scalar) integer tensor into a caller array of at most `cap` entries; returns
 * the count or a negative error. */
int gpux__read_ints(gpux__kctx *k, const gpux_tensor *t, int64_t *vals, int cap);
/* Normalizes a possibly negative axis against rank; error when out of range. */
int gpux__axis(gpux__kctx *k, int64_t axis, int rank, int *out);

/* The op tables of each family, collected by registry.c. Each ends with a {0} entry. */
extern const gpux__op_def gpux__ops_elementwise[];
extern const gpux__op_def gpux__ops_activation[];
extern const gpux__op_def gpux__ops_cast[];
extern const gpux__op_def gpux__ops_linalg[];     /* MatMul, Gemm, Einsum, ... */
extern const gpux__op_def gpux__ops_conv[];       /* Conv, ConvTranspose, DeformConv, Col2Im */
extern const gpux__op_def gpux__ops_pool[];       /* MaxPool, AveragePool, LpPool, Global*, MaxUnpool */
extern const gpux__op_def gpux__ops_norm[];       /* normalizations, Softmax family */
extern const gpux__op_def gpux__ops_reduce[];     /* Reduce*, ArgMax/Min, CumSum, TopK */
extern const gpux__op_def gpux__ops_shape[];      /* Reshape, Transpose, Concat, Slice, ... */
extern const gpux__op_def gpux__ops_index[];      /* Gather*, Scatter*, NonZero, OneHot, ... */
extern const gpux__op_def gpux__ops_generator[];  /* Constant*, Range, EyeLike, windows, ... */
extern const gpux__op_def gpux__ops_control[];    /* If, Loop, Scan, sequences, optionals */
extern const gpux__op_def gpux__ops_quant[];      /* Quantize/Dequantize*, *Integer, QLinear* */
extern const gpux__op_def gpux__ops_quant_contrib[]; /* com.microsoft QLinearAdd, QGemm, ... */
extern const gpux__op_def gpux__ops_rnn[];        /* RNN, LSTM, GRU */
extern const gpux__op_def gpux__ops_misc[];       /* Resize, NMS, RoiAlign, DFT, strings, ... */
extern const gpux__op_def gpux__ops_attention[];  /* Attention, RotaryEmbedding, ... */
extern const gpux__op_def gpux__ops_loss[];       /* NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss, optimizers */

/* How gpux.GlobalAveragePoolNHWC splits X over the pool: 1 by strips of rows, 0 by blocks of
 * channels (pool.c; $GPUX_GAP_ROWS, default 0). Returns the previous setting. */
int gpux__gap_rows_set(int rows);

/* Finds the kernel for op_type in domain at opset; NULL when none. */
const gpux__op_def *gpux__op_find(const char *domain, const char *op_type, int opset);

#endif
