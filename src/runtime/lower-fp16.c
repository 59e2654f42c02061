/* lower-fp16.c — the CPU backend's float16 graphs computed in float32 (lower-fp16.h). The CPU
 * kernels of float16 are reference loops (a double load and store a value, src/core/dtype.c) and
 * optimize.c's fusions and packed kernels take float32 only, so a float16 model ran several
 * times slower than the same model in float32. This rewrite, which optimize.c runs first on its
 * copy of a main graph, computes every float16 value in float32 instead:
 *
 *   - a float16 initializer the graph reads becomes a float32 copy the rewrite owns (the model's
 *     float16 data is then read by nothing, and the session lets it go; the copy goes too once
 *     the kernels reading it keep their own packed form of it, session.c); one that only Gathers
 *     read as their table, of 1 MiB or more (a language model's embedding), stays float16 and the
 *     rows a Gather takes are cast to float32 after it;
 *   - a float16 graph input is cast to float32 where the graph reads it, and a float16 graph
 *     output is computed in float32 and cast back where it leaves (the caller sees the model's
 *     types; these casts are what a run pays);
 *   - Cast(to=FLOAT16) becomes Cast(to=FLOAT) (but for one of another type than float32 into a
 *     graph output only, which stays), and a Cast that then converts a value to its own type goes
 *     (a converted model's Casts at its float32 inputs and outputs: none is left);
 *   - the nodes that make float16 values from attributes make float32 ones: a Constant becomes a
 *     float32 initializer, ConstantOfShape's value and EyeLike's dtype are float32.
 *
 * It does this only where every node of the graph is an op of `rules` (ops that compute the same
 * function in either type, whose output types it follows from their inputs and attributes) and
 * every value's type is known; any other op (If, Loop and Scan with their bodies among them, other
 * domains) leaves the graph as it is. bfloat16 values are left as they are. Rounding differs from
 * a float16 computation: each result is rounded to float32, not float16 (as ONNX Runtime's CPU EP
 * computes the float16 ops it has no kernel for). */
#include "runtime/lower-fp16.h"
#include "runtime/rewrite.h"
#include "ops/op.h"
#include <stdio.h>
#include <string.h>

enum { F16 = GPUX_DT_FLOAT16, F32 = GPUX_DT_FLOAT };

/* How an op's output types follow from its inputs and attributes. */
enum {
  R_SAME,   /* every output: input 0's type */
  R_BOOL,   /* output 0: bool */
  R_I64,    /* output 0: int64 */
  R_IN1,    /* every output: input 1's */
  R_IN2,    /* every output: input 2's */
  R_IDX,    /* output 0: input 0's, the others int64 indices (MaxPool, TopK, Unique) */
  R_DROP,   /* output 0: input 0's, output 1: a bool mask */
  R_FIRST,  /* output 0: input 0's, the others not known (LayerNormalization's statistics) */
  R_CAST,   /* attribute `to` */
  R_CONST,  /* Constant's value */
  R_COS,    /* ConstantOfShape: its value's type, float32 without one */
  R_EYE,    /* EyeLike: attribute `dtype`, else input 0's */
  R_ATTN,   /* Attention: output 2 (present value) input 2's, the others input 0's */
};

/* The default-domain ops whose float16 form computes what their float32 form does. */
static const struct {
  const char *op;
  unsigned char rule;
} rules[] = {
  {"Abs", R_SAME}, {"Acos", R_SAME}, {"Acosh", R_SAME}, {"Add", R_SAME}, {"AffineGrid", R_SAME}, {"And", R_BOOL},
  {"ArgMax", R_I64}, {"ArgMin", R_I64}, {"Asin", R_SAME}, {"Asinh", R_SAME}, {"Atan", R_SAME}, {"Atanh", R_SAME},
  {"Attention", R_ATTN}, {"AveragePool", R_SAME}, {"BatchNormalization", R_SAME}, {"Cast", R_CAST},
  {"CastLike", R_IN1}, {"Ceil", R_SAME}, {"Celu", R_SAME}, {"CenterCropPad", R_SAME}, {"Clip", R_SAME},
  {"Col2Im", R_SAME}, {"Compress", R_SAME}, {"Concat", R_SAME}, {"Constant", R_CONST}, {"ConstantOfShape", R_COS},
  {"Conv", R_SAME}, {"ConvTranspose", R_SAME}, {"Cos", R_SAME}, {"Cosh", R_SAME}, {"CumProd", R_SAME},
  {"CumSum", R_SAME}, {"DFT", R_SAME}, {"DeformConv", R_SAME}, {"DepthToSpace", R_SAME},
  {"DequantizeLinear", R_IN1}, {"Det", R_SAME}, {"Div", R_SAME}, {"Dropout", R_DROP}, {"Einsum", R_SAME},
  {"Elu", R_SAME}, {"Equal", R_BOOL}, {"Erf", R_SAME}, {"Exp", R_SAME}, {"Expand", R_SAME}, {"EyeLike", R_EYE},
  {"Flatten", R_SAME}, {"Floor", R_SAME}, {"GRU", R_SAME}, {"Gather", R_SAME}, {"GatherElements", R_SAME},
  {"GatherND", R_SAME}, {"Gelu", R_SAME}, {"Gemm", R_SAME}, {"GlobalAveragePool", R_SAME},
  {"GlobalLpPool", R_SAME}, {"GlobalMaxPool", R_SAME}, {"Greater", R_BOOL}, {"GreaterOrEqual", R_BOOL},
  {"GridSample", R_SAME}, {"GroupNormalization", R_SAME}, {"HardSigmoid", R_SAME}, {"HardSwish", R_SAME},
  {"Hardmax", R_SAME}, {"Identity", R_SAME}, {"InstanceNormalization", R_SAME}, {"IsInf", R_BOOL},
  {"IsNaN", R_BOOL}, {"LRN", R_SAME}, {"LSTM", R_SAME}, {"LayerNormalization", R_FIRST}, {"LeakyRelu", R_SAME},
  {"Less", R_BOOL}, {"LessOrEqual", R_BOOL}, {"Log", R_SAME}, {"LogSoftmax", R_SAME}, {"LpNormalization", R_SAME},
  {"LpPool", R_SAME}, {"MatMul", R_SAME}, {"Max", R_SAME}, {"MaxPool", R_IDX}, {"MaxRoiPool", R_SAME},
  {"MaxUnpool", R_SAME}, {"Mean", R_SAME}, {"MeanVarianceNormalization", R_SAME}, {"Min", R_SAME},
  {"Mish", R_SAME}, {"Mod", R_SAME}, {"Mul", R_SAME}, {"Neg", R_SAME}, {"NonMaxSuppression", R_I64},
  {"NonZero", R_I64}, {"Not", R_BOOL}, {"OneHot", R_IN2}, {"Or", R_BOOL}, {"PRelu", R_SAME}, {"Pad", R_SAME},
  {"Pow", R_SAME}, {"RMSNormalization", R_IN1}, {"RNN", R_SAME}, {"Range", R_SAME}, {"Reciprocal", R_SAME},
  {"ReduceL1", R_SAME}, {"ReduceL2", R_SAME}, {"ReduceLogSum", R_SAME}, {"ReduceLogSumExp", R_SAME},
  {"ReduceMax", R_SAME}, {"ReduceMean", R_SAME}, {"ReduceMin", R_SAME}, {"ReduceProd", R_SAME},
  {"ReduceSum", R_SAME}, {"ReduceSumSquare", R_SAME}, {"Relu", R_SAME}, {"Reshape", R_SAME}, {"Resize", R_SAME},
  {"ReverseSequence", R_SAME}, {"RoiAlign", R_SAME}, {"RotaryEmbedding", R_SAME}, {"Round", R_SAME},
  {"STFT", R_SAME}, {"Scatter", R_SAME}, {"ScatterElements", R_SAME}, {"ScatterND", R_SAME}, {"Selu", R_SAME},
  {"Shape", R_I64}, {"Shrink", R_SAME}, {"Sigmoid", R_SAME}, {"Sign", R_SAME}, {"Sin", R_SAME}, {"Sinh", R_SAME},
  {"Size", R_I64}, {"Slice", R_SAME}, {"Softmax", R_SAME}, {"Softplus", R_SAME}, {"Softsign", R_SAME},
  {"SpaceToDepth", R_SAME}, {"Split", R_SAME}, {"Sqrt", R_SAME}, {"Squeeze", R_SAME}, {"Sub", R_SAME},
  {"Sum", R_SAME}, {"Swish", R_SAME}, {"Tan", R_SAME}, {"Tanh", R_SAME}, {"ThresholdedRelu", R_SAME},
  {"Tile", R_SAME}, {"TopK", R_IDX}, {"Transpose", R_SAME}, {"Trilu", R_SAME}, {"Unique", R_IDX},
  {"Unsqueeze", R_SAME}, {"Upsample", R_SAME}, {"Where", R_IN1}, {"Xor", R_BOOL},
};

/* Gather tables of this many bytes or more stay float16 (see above). */
#define KEEP_TABLE_BYTES (1u << 20)

static int rule_of(const gpux__node *n) {
  if (n->domain[0]) return -1;
  for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
    if (!strcmp(rules[i].op, n->op_type)) return rules[i].rule;
  return -1;
}

static const gpux__attr *attr_of(const gpux__node *n, const char *name) { return gpux__node_attr(n, name); }

/* A Constant's output type, 0 when not known. */
static int constant_type(const gpux__node *n) {
  for (int a = 0; a < n->n_attrs; a++) {
    const gpux__attr *at = &n->attrs[a];
    if (!strcmp(at->name, "value") || !strcmp(at->name, "sparse_value"))
      return at->t && at->t->kind == GPUX_KIND_TENSOR ? at->t->dtype : 0;
    if (!strcmp(at->name, "value_float") || !strcmp(at->name, "value_floats")) return F32;
    if (!strcmp(at->name, "value_int") || !strcmp(at->name, "value_ints")) return GPUX_DT_INT64;
    if (!strcmp(at->name, "value_string") || !strcmp(at->name, "value_strings")) return GPUX_DT_STRING;
  }
  return 0;
}

/* Whether anything of g is float16: a value (initializer, declared input, output or
 * intermediate) or an attribute that makes one. */
static int mentions_fp16(const gpux__graph *g) {
  for (int v = 0; v < g->n_values; v++) {
    const gpux__value *x = &g->values[v];
    if ((x->is_const && x->init.dtype == F16) || (x->has_info && x->info.dtype == F16)) return 1;
  }
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    for (int a = 0; a < n->n_attrs; a++) {
      const gpux__attr *at = &n->attrs[a];
      if (at->t && at->t->dtype == F16) return 1;
      if (at->type == GPUX_ATTR_INT && at->i == F16 && (!strcmp(at->name, "to") || !strcmp(at->name, "dtype")))
        return 1;
    }
  }
  return 0;
}

typedef struct {
  gpux__graph *g;
  gpux__arena *a;
  gpux__own_fn own;     /* where converted weights' memory comes from (optimize.c's copy owns it) */
  const gpux__op_def *cast;
  int *map;             /* [cap_values] the value the rewritten graph reads for value v */
  int *ndt;             /* [cap_values] each value's type in the rewritten graph */
} lower;

static const char *name_of(gpux__arena *a, const char *base, const char *suffix) {
  size_t len = strlen(base) + strlen(suffix) + 1;
  char *s = gpux__arena_alloc(a, len);
  if (s) snprintf(s, len, "%s%s", base, suffix);
  return s;
}

/* A computed value named after v, declared as v is but of type dtype: its id or an error. */
static int new_value(lower *l, int v, const char *suffix, int dtype) {
  const char *name = name_of(l->a, l->g->values[v].name, suffix);
  if (!name) return GPUX_E_NOMEM;
  int id = gpux__graph_append_value(l->g, name);
  if (id < 0) return id;
  gpux__value *x = &l->g->values[id], *o = &l->g->values[v];
  if (o->has_info) x->info = o->info, x->has_info = 1, x->info.dtype = dtype;
  l->map[id] = id;
  l->ndt[id] = dtype;
  return id;
}

/* Cast(x, to) into y. */
static int cast_node(lower *l, int x, int y, int to, gpux__node *out) {
  int *in = gpux__arena_alloc(l->a, sizeof *in), *o = gpux__arena_alloc(l->a, sizeof *o);
  gpux__attr *at = gpux__arena_alloc(l->a, sizeof *at);
  const char *name = name_of(l->a, l->g->values[y].name, to == F32 ? "/cast_f32" : "/cast_f16");
  if (!in || !o || !at || !name) return GPUX_E_NOMEM;
  in[0] = x, o[0] = y;
  *at = (gpux__attr){.name = "to", .type = GPUX_ATTR_INT, .i = to};
  *out = (gpux__node){.name = name, .op_type = "Cast", .domain = "", .opset = 13, .n_in = 1, .n_out = 1, .in = in,
                      .out = o, .n_attrs = 1, .attrs = at, .op = l->cast};
  return 0;
}

/* A float32 initializer holding the float16 tensor t, named after value v: its id or an error. */
static int f32_const(lower *l, int v, const gpux_tensor *t) {
  int64_t count = gpux_tensor_count(t);
  float *d = l->own(l->g, (size_t)count * sizeof *d);
  const char *name = name_of(l->a, l->g->values[v].name, "/f32");
  if (!d || !name) return GPUX_E_NOMEM;
  const uint16_t *h = t->data;
  for (int64_t i = 0; i < count; i++) d[i] = gpux__f16_to_f32(h[i]);
  int id = gpux__graph_append_const(l->g, name, F32, t->ndim, t->dims, d, (size_t)count * sizeof *d);
  if (id >= 0) l->map[id] = id, l->ndt[id] = F32;
  return id;
}

/* n's attributes, a copy of them with attribute `name` (an INT) set to i. */
static gpux__attr *attrs_with_int(gpux__arena *a, const gpux__node *n, const char *name, int64_t i) {
  gpux__attr *at = gpux__arena_alloc(a, (size_t)n->n_attrs * sizeof *at);
  if (!at) return NULL;
  memcpy(at, n->attrs, (size_t)n->n_attrs * sizeof *at);
  for (int k = 0; k < n->n_attrs; k++)
    if (!strcmp(at[k].name, name)) at[k].i = i;
  return at;
}

/* ConstantOfShape's attributes with its float16 value as float32. */
static gpux__attr *attrs_f32_value(gpux__arena *a, const gpux__node *n) {
  gpux__attr *at = gpux__arena_alloc(a, (size_t)n->n_attrs * sizeof *at);
  if (!at) return NULL;
  memcpy(at, n->attrs, (size_t)n->n_attrs * sizeof *at);
  for (int k = 0; k < n->n_attrs; k++) {
    if (strcmp(at[k].name, "value") || !at[k].t) continue;
    const gpux_tensor *t = at[k].t;
    int64_t count = gpux_tensor_count(t);
    gpux_tensor *c = gpux__arena_alloc(a, sizeof *c);
    float *d = gpux__arena_alloc(a, (size_t)(count ? count : 1) * sizeof *d);
    if (!c || !d) return NULL;
    *c = *t;
    for (int64_t i = 0; i < count; i++) d[i] = gpux__f16_to_f32(((const uint16_t *)t->data)[i]);
    c->dtype = F32, c->data = d, c->nbytes = (size_t)count * sizeof *d, c->owns_data = 0;
    at[k].t = c;
  }
  return at;
}

/* Each value's type in g as its nodes make it (dt[v], 0 when not known): 0 when every node is an
 * op of `rules` reading values of known types and every graph output's type is known, else 1. */
static int infer_types(const gpux__graph *g, int *dt) {
  for (int v = 0; v < g->n_values; v++) {
    const gpux__value *x = &g->values[v];
    if (x->is_const && x->init.kind == GPUX_KIND_TENSOR && (x->init.data || !gpux_tensor_count(&x->init)))
      dt[v] = x->init.dtype;
  }
  for (int i = 0; i < g->n_inputs; i++) {
    const gpux__value *x = &g->values[g->inputs[i]];
    dt[g->inputs[i]] = x->has_info && x->info.kind == GPUX_KIND_TENSOR ? x->info.dtype : 0;
    /* an optional float16 input may come absent, which a Cast at it would not take */
    if (x->has_info && x->info.optional && dt[g->inputs[i]] == F16) dt[g->inputs[i]] = 0;
  }
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    int r = rule_of(n);
    if (r < 0) return 1;
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0 && !dt[n->in[j]]) return 1;
    int t0 = n->n_in > 0 && n->in[0] >= 0 ? dt[n->in[0]] : 0;
    int t1 = n->n_in > 1 && n->in[1] >= 0 ? dt[n->in[1]] : 0;
    int t2 = n->n_in > 2 && n->in[2] >= 0 ? dt[n->in[2]] : 0;
    const gpux__attr *at;
    for (int k = 0; k < n->n_out; k++) {
      if (n->out[k] < 0) continue;
      int t = 0;
      switch (r) {
      case R_SAME: t = t0; break;
      case R_BOOL: t = k ? 0 : GPUX_DT_BOOL; break;
      case R_I64: t = k ? 0 : GPUX_DT_INT64; break;
      case R_IN1: /* DequantizeLinear with output_dtype: the graph is left alone */
        if ((at = attr_of(n, "output_dtype")) && at->i) return 1;
        t = t1;
        break;
      case R_IN2: t = t2; break;
      case R_IDX: t = k ? GPUX_DT_INT64 : t0; break;
      case R_DROP: t = k == 0 ? t0 : k == 1 ? GPUX_DT_BOOL : 0; break;
      case R_FIRST: t = k ? 0 : t0; break;
      case R_CAST: t = !k && (at = attr_of(n, "to")) && at->type == GPUX_ATTR_INT ? (int)at->i : 0; break;
      case R_CONST:
        t = k ? 0 : constant_type(n);
        if (t == F16) { /* made into an initializer: one output, data to convert */
          if (!(at = attr_of(n, "value"))) at = attr_of(n, "sparse_value");
          if (n->n_out != 1 || !at || !at->t || (!at->t->data && gpux_tensor_count(at->t))) return 1;
        }
        break;
      case R_COS: t = k ? 0 : (at = attr_of(n, "value")) ? (at->t ? at->t->dtype : 0) : F32; break;
      case R_EYE: t = k ? 0 : (at = attr_of(n, "dtype")) ? (int)at->i : t0; break;
      case R_ATTN: t = k == 2 ? t2 : t0; break;
      }
      dt[n->out[k]] = t;
    }
  }
  for (int o = 0; o < g->n_outputs; o++)
    if (!dt[g->outputs[o]]) return 1;
  return 0;
}

int gpux__lower_fp16(gpux__graph *g, int *cap_nodes, gpux__arena *arena, gpux__own_fn own, int *changed) {
  const char *env = getenv("GPUX_LOWER_FP16");
  if ((env && !strcmp(env, "0")) || g->parent || !mentions_fp16(g)) return 0;
  int nv = g->n_values, nn = g->n_nodes, rc = 0, any = 0;
  int *dt = gpux__calloc((size_t)nv + 1, sizeof *dt), *reads = gpux__calloc((size_t)nv + 1, sizeof *reads);
  int *gathers = gpux__calloc((size_t)nv + 1, sizeof *gathers);
  unsigned char *keep = gpux__calloc((size_t)nv + 1, 1);
  lower l = {.g = g, .a = arena, .own = own, .cast = gpux__op_find("", "Cast", 13)};
  gpux__node *nodes = NULL;
  int *exit_o = NULL, *exit_src = NULL;
  unsigned char *is_out = NULL, *drop = NULL;
  int *prod = NULL;
  if (!dt || !reads || !gathers || !keep) { rc = GPUX_E_NOMEM; goto out; }
  if (!l.cast) { rc = gpux__error(GPUX_E_INTERNAL, "lower-fp16: no Cast kernel"); goto out; }
  if (infer_types(g, dt)) goto out; /* an op or a type it does not know: left as it is */
  for (int v = 0; v < nv; v++) any |= dt[v] == F16;
  if (!any) goto out;
  /* what reads each value, and what the rewrite adds */
  int extra_v = 0, extra_n = 0;
  for (int i = 0; i < nn; i++) {
    const gpux__node *n = &g->nodes[i];
    int gather = gpux__node_is(n, "Gather");
    for (int j = 0; j < n->n_in; j++)
      if (n->in[j] >= 0) reads[n->in[j]]++, gathers[n->in[j]] += gather && j == 0;
    if (gpux__node_is(n, "Constant") && n->n_out == 1 && n->out[0] >= 0 && dt[n->out[0]] == F16) extra_v++;
  }
  for (int v = 0; v < nv; v++) {
    const gpux__value *x = &g->values[v];
    if (dt[v] != F16 || !reads[v]) continue;
    if (x->is_graph_input) {
      extra_v++, extra_n++;
    } else if (x->is_const) {
      if (reads[v] == gathers[v] && x->init.nbytes >= KEEP_TABLE_BYTES) keep[v] = 1, extra_v += reads[v], extra_n += reads[v];
      else extra_v++;
    }
  }
  extra_v += g->n_outputs, extra_n += g->n_outputs;
  /* room for them */
  int cap_v = g->cap_values + extra_v, cap_n = *cap_nodes + extra_n;
  gpux__value *values = gpux__realloc(g->values, (size_t)cap_v * sizeof *values);
  if (!values) { rc = GPUX_E_NOMEM; goto out; }
  memset(values + g->cap_values, 0, (size_t)extra_v * sizeof *values);
  g->values = values, g->cap_values = cap_v;
  l.map = gpux__calloc((size_t)cap_v, sizeof *l.map);
  l.ndt = gpux__calloc((size_t)cap_v, sizeof *l.ndt);
  nodes = gpux__calloc((size_t)cap_n + 1, sizeof *nodes);
  exit_o = gpux__calloc((size_t)g->n_outputs + 1, sizeof *exit_o);
  exit_src = gpux__calloc((size_t)g->n_outputs + 1, sizeof *exit_src);
  is_out = gpux__calloc((size_t)cap_v, 1);
  if (!l.map || !l.ndt || !nodes || !exit_o || !exit_src || !is_out) { rc = GPUX_E_NOMEM; goto out; }
  for (int v = 0; v < nv; v++) l.map[v] = v, l.ndt[v] = dt[v] == F16 ? F32 : dt[v];
  for (int o = 0; o < g->n_outputs; o++) is_out[g->outputs[o]] = 1;
  int k = 0, n_exit = 0;
  /* float16 inputs cast to float32 where the graph reads them */
  for (int i = 0; i < g->n_inputs; i++) {
    int v = g->inputs[i];
    if (dt[v] != F16 || !reads[v] || l.map[v] != v) continue;
    int id = new_value(&l, v, "/f32", F32);
    if (id < 0 || (rc = cast_node(&l, v, id, F32, &nodes[k]))) { rc = id < 0 ? id : rc; goto out; }
    k++;
    l.map[v] = id, l.ndt[v] = F16;
  }
  /* float16 initializers as float32 copies (large Gather tables kept) */
  for (int v = 0; v < nv; v++) {
    const gpux__value *x = &g->values[v];
    if (dt[v] != F16 || !reads[v] || x->is_graph_input || !x->is_const) continue;
    if (keep[v]) {
      l.ndt[v] = F16;
      continue;
    }
    int id = f32_const(&l, v, &g->values[v].init);
    if (id < 0) { rc = id; goto out; }
    l.map[v] = id;
  }
  for (int i = 0; i < nn; i++) {
    gpux__node m = g->nodes[i];
    int *in = gpux__arena_alloc(arena, (size_t)(m.n_in + 1) * sizeof *in);
    if (!in) { rc = GPUX_E_NOMEM; goto out; }
    int gather_kept = gpux__node_is(&m, "Gather") && m.n_in > 0 && m.in[0] >= 0 && keep[m.in[0]];
    for (int j = 0; j < m.n_in; j++) in[j] = m.in[j] < 0 || (gather_kept && j == 0) ? m.in[j] : l.map[m.in[j]];
    m.in = in;
    int alias = -1; /* the node goes: its output is this value */
    const gpux__attr *at;
    if (gpux__node_is(&m, "Cast") && (at = attr_of(&m, "to")) && at->i == F16 && m.out[0] >= 0 && is_out[m.out[0]] &&
        !reads[m.out[0]] && m.in[0] >= 0 && l.ndt[m.in[0]] != F32) {
      nodes[k++] = m; /* a double or an integer into a float16 graph output: one rounding, as it was */
      continue;
    } else if (gpux__node_is(&m, "Cast") && (at = attr_of(&m, "to"))) {
      int to = (int)at->i;
      if (to == F16 && !(m.attrs = attrs_with_int(arena, &m, "to", to = F32))) { rc = GPUX_E_NOMEM; goto out; }
      if (m.in[0] >= 0 && l.ndt[m.in[0]] == to) alias = m.in[0];
    } else if (gpux__node_is(&m, "Constant") && dt[m.out[0]] == F16) {
      at = attr_of(&m, "value");
      if (!at) at = attr_of(&m, "sparse_value");
      if ((alias = f32_const(&l, m.out[0], at->t)) < 0) { rc = alias; goto out; }
    } else if (gpux__node_is(&m, "ConstantOfShape") && dt[m.out[0]] == F16) {
      if (!(m.attrs = attrs_f32_value(arena, &m))) { rc = GPUX_E_NOMEM; goto out; }
    } else if (gpux__node_is(&m, "EyeLike") && dt[m.out[0]] == F16 && attr_of(&m, "dtype")) {
      if (!(m.attrs = attrs_with_int(arena, &m, "dtype", F32))) { rc = GPUX_E_NOMEM; goto out; }
    } else if (gather_kept && m.out[0] >= 0) {
      /* the float16 table's rows, cast to float32 after the Gather */
      int o = m.out[0], g16 = new_value(&l, o, "/f16", F16);
      int *out = gpux__arena_alloc(arena, sizeof *out);
      if (g16 < 0 || !out) { rc = g16 < 0 ? g16 : GPUX_E_NOMEM; goto out; }
      out[0] = g16;
      m.out = out;
      nodes[k++] = m;
      if ((rc = cast_node(&l, g16, o, F32, &m))) goto out;
    }
    if (alias >= 0 && m.n_out == 1 && m.out[0] >= 0) {
      int o = m.out[0];
      if (!is_out[o]) {
        l.map[o] = alias;
        continue;
      }
      if (dt[o] == F16) { /* a float16 graph output: cast where it leaves */
        l.map[o] = alias;
        exit_o[n_exit] = o, exit_src[n_exit++] = alias;
        continue;
      }
      /* a graph output of another type: the node stays (a copy the pass below may take away) */
    }
    int *out = NULL;
    for (int j = 0; j < m.n_out; j++) {
      int o = m.out[j];
      if (o < 0 || dt[o] != F16) continue;
      if (!is_out[o]) {
        if (g->values[o].has_info) g->values[o].info.dtype = F32;
        continue;
      }
      if (!out) {
        if (!(out = gpux__arena_alloc(arena, (size_t)m.n_out * sizeof *out))) { rc = GPUX_E_NOMEM; goto out; }
        memcpy(out, m.out, (size_t)m.n_out * sizeof *out);
      }
      int o32 = new_value(&l, o, "/f32", F32);
      if (o32 < 0) { rc = o32; goto out; }
      out[j] = o32, l.map[o] = o32;
      exit_o[n_exit] = o, exit_src[n_exit++] = o32;
    }
    if (out) m.out = out;
    nodes[k++] = m;
  }
  for (int e = 0; e < n_exit; e++)
    if ((rc = cast_node(&l, exit_src[e], exit_o[e], F16, &nodes[k++]))) goto out;
  /* a Cast to its input's type into a graph output (a converted model's Casts back to float32):
   * its input, computed by a node and no graph output, becomes the graph output itself */
  prod = gpux__malloc((size_t)cap_v * sizeof *prod);
  drop = gpux__calloc((size_t)k + 1, 1);
  if (!prod || !drop) { rc = GPUX_E_NOMEM; goto out; }
  for (int v = 0; v < cap_v; v++) prod[v] = -1;
  for (int i = 0; i < k; i++)
    for (int j = 0; j < nodes[i].n_out; j++)
      if (nodes[i].out[j] >= 0) prod[nodes[i].out[j]] = i;
  for (int i = 0; i < k; i++) {
    gpux__node *c = &nodes[i];
    const gpux__attr *at = gpux__node_is(c, "Cast") && c->n_in == 1 && c->n_out == 1 ? attr_of(c, "to") : NULL;
    int s = c->n_in ? c->in[0] : -1, o = c->out[0];
    if (!at || s < 0 || o < 0 || l.ndt[s] != at->i || !is_out[o] || is_out[s] || prod[s] < 0) continue;
    gpux__node *p = &nodes[prod[s]];
    int *pout = gpux__arena_alloc(arena, (size_t)p->n_out * sizeof *pout);
    if (!pout) { rc = GPUX_E_NOMEM; goto out; }
    for (int j = 0; j < p->n_out; j++) pout[j] = p->out[j] == s ? o : p->out[j];
    p->out = pout;
    for (int r = 0; r < k; r++) /* in lists are the rewrite's copies */
      for (int j = 0; j < nodes[r].n_in; j++)
        if (nodes[r].in[j] == s) nodes[r].in[j] = o;
    prod[o] = prod[s], prod[s] = -1;
    drop[i] = 1;
  }
  int kept = 0;
  for (int i = 0; i < k; i++)
    if (!drop[i]) nodes[kept++] = nodes[i];
  free(g->nodes);
  g->nodes = nodes, g->n_nodes = kept, *cap_nodes = cap_n;
  nodes = NULL;
  *changed = 1;
  rc = gpux__graph_finalize(g);
out:
  free(dt);
  free(reads);
  free(gathers);
  free(keep);
  free(l.map);
  free(l.ndt);
  free(nodes);
  free(exit_o);
  free(exit_src);
  free(is_out);
  free(prod);
  free(drop);
  return rc;
}
