/* elementwise.c — operator family 'elementwise': numpy-broadcast binary ops (arithmetic, Pow,
 * Mod, bit shifts and bitwise ops, comparisons, logical ops), Where, the variadic Max/Min/Mean/
 * Sum; the unary math ops live in elementwise-unary.c and are registered here.
 *
 * Every kernel has three compute paths:
 *   - float32, typed loops over contiguous runs (the hot path, parallel for large tensors);
 *   - other floating types (double, float16, bfloat16, float8), element by element through double;
 *   - integer types (and bool), element by element through int64 with unsigned arithmetic, so
 *     int64/uint64 are exact and overflow wraps like two's complement.
 * Integer division or modulo by zero gives 0 (as numpy does) instead of trapping. */
#include "ops/op.h"
#include "ops/simd.h"
#include <math.h>

/* The unary math kernel (elementwise-unary.c): one function for every unary op, which picks the
 * op from the node's op_type. */
int gpux__ew_unary(gpux__kctx *k);

/* ---- broadcasting ---- */

#define BC_MAX_IN 3

/* Output elements visited as runs along the innermost dimension after size-1 dimensions are
 * dropped and neighbours that every input walks alike are merged; each input's innermost stride
 * is then 0 (broadcast) or 1. */
typedef struct {
  int n_in;
  int ndim;                              /* collapsed rank, >= 1 */
  int64_t dims[GPUX_MAX_DIMS];           /* collapsed output shape */
  int64_t st[BC_MAX_IN][GPUX_MAX_DIMS];  /* element strides of each input, 0 where broadcast */
  int64_t count;                         /* output elements */
} bcast;

/* One run: output elements [o, o+n), input i starting at off[i] and advancing by st[i]. */
typedef void (*seg_fn)(void *ctx, int64_t o, const int64_t *off, const int64_t *st, int64_t n);

static void bc_init(bcast *bc, int ndim, const int64_t *dims, int n_in, const int *in_ndim,
                    const int64_t *const *in_dims) {
  memset(bc, 0, sizeof *bc);
  bc->n_in = n_in;
  bc->count = gpux__shape_count(ndim, dims);
  /* full-rank strides of each input against the output shape, 0 where it is broadcast */
  int64_t full[BC_MAX_IN][GPUX_MAX_DIMS];
  for (int i = 0; i < n_in; i++) {
    int64_t istr[GPUX_MAX_DIMS];
    gpux__strides(in_ndim[i], in_dims[i], istr);
    for (int d = 0; d < ndim; d++) {
      int id = d - (ndim - in_ndim[i]);
      full[i][d] = id < 0 || in_dims[i][id] == 1 ? 0 : istr[id];
    }
  }
  /* drop size-1 dimensions and merge neighbours that every input walks alike */
  int nd = 0;
  for (int d = 0; d < ndim; d++) {
    if (dims[d] == 1) continue;
    int merge = nd > 0;
    for (int i = 0; i < n_in && merge; i++)
      if (bc->st[i][nd - 1] != full[i][d] * dims[d]) merge = 0;
    if (merge) {
      bc->dims[nd - 1] *= dims[d];
      for (int i = 0; i < n_in; i++) bc->st[i][nd - 1] = full[i][d];
    } else {
      bc->dims[nd] = dims[d];
      for (int i = 0; i < n_in; i++) bc->st[i][nd] = full[i][d];
      nd++;
    }
  }
  if (nd == 0) { /* a single element */
    bc->dims[0] = 1;
    for (int i = 0; i < n_in; i++) bc->st[i][0] = 0;
    nd = 1;
  }
  bc->ndim = nd;
}

typedef struct {
  const bcast *bc;
  seg_fn fn;
  void *ctx;
} walk_ctx;

/* Visits the output elements [begin, end) as runs along the innermost collapsed dimension. */
static void bc_walk(void *p, int64_t begin, int64_t end) {
  const walk_ctx *w = p;
  const bcast *bc = w->bc;
  int nd = bc->ndim, n_in = bc->n_in;
  int64_t inner = bc->dims[nd - 1];
  int64_t idx[GPUX_MAX_DIMS] = {0}, off[BC_MAX_IN] = {0}, ist[BC_MAX_IN] = {0};
  int64_t row = begin / inner, col = begin % inner;
  for (int d = nd - 2; d >= 0; d--) {
    idx[d] = row % bc->dims[d];
    row /= bc->dims[d];
  }
  for (int i = 0; i < n_in; i++) {
    ist[i] = bc->st[i][nd - 1];
    off[i] = col * ist[i];
    for (int d = 0; d < nd - 1; d++) off[i] += idx[d] * bc->st[i][d];
  }
  int64_t pos = begin;
  while (pos < end) {
    int64_t n = GPUX__MIN(inner - col, end - pos);
    w->fn(w->ctx, pos, off, ist, n);
    pos += n;
    if (pos >= end) break;
    for (int i = 0; i < n_in; i++) off[i] -= col * ist[i];
    col = 0;
    for (int d = nd - 2; d >= 0; d--) { /* odometer over the outer dimensions */
      idx[d]++;
      for (int i = 0; i < n_in; i++) off[i] += bc->st[i][d];
      if (idx[d] < bc->dims[d]) break;
      for (int i = 0; i < n_in; i++) off[i] -= bc->st[i][d] * bc->dims[d];
      idx[d] = 0;
    }
  }
}

/* The pool's work an output element is (gpux__parallel_for_elems): a float32 one read and written
 * by the typed loops, and the ones that go element by element through double or int64 or call
 * pow/fmod; a job worth one thread runs inline. */
#define UNITS_F32 gpux__elem_units()
#define UNITS_SLOW (8 * gpux__elem_units())
#define UNITS_INT (4 * gpux__elem_units())

static void bc_run(const bcast *bc, double units, seg_fn fn, void *ctx) {
  walk_ctx w = {bc, fn, ctx};
  gpux__parallel_for_elems(bc->count, units, 16, bc_walk, &w);
}

static int tensor_in(gpux__kctx *k, int i) {
  const gpux_tensor *t = IN(i);
  if (!t) return gpux__kerr(k, GPUX_E_INVALID, "input %d is missing", i);
  if (t->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input %d is not a tensor", i);
  return 0;
}

/* ---- binary ops ---- */

enum {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MOD, B_FMOD, B_SHL, B_SHR, B_BAND, B_BOR, B_BXOR,
  B_MAX, B_MIN, /* the ops above give the input type */
  B_EQ, B_GT, B_LT, B_GE, B_LE, B_AND, B_OR, B_XOR /* these give bool */
};

typedef struct {
  int op;
  const gpux_tensor *a, *b;
  gpux_tensor *y;
  int bits;   /* integer width of the input type (shifts) */
  int uns;    /* unsigned integer inputs */
} bin_ctx;

/* Python-style float modulo (numpy.mod): the result takes the sign of the divisor. */
static double py_fmod(double x, double z) {
  double r = fmod(x, z);
  if (z == 0 || isnan(r)) return r;
  if (r != 0) {
    if ((z < 0) != (r < 0)) r += z;
  } else {
    r = copysign(0.0, z);
  }
  return r;
}

static float py_fmodf(float x, float z) { return (float)py_fmod(x, z); }

static inline float square_f(float x, float z) {
  (void)z;
  return x * x;
}

/* The hot loops: one function per float32 op over a run of n elements, a and b advancing by
 * sa and sb (0 or 1), in blocks of 8 that GCC vectorizes at -O2 (the restrict parameters let it),
 * then the tail. */
#define BLOCKS(BODY)                                                  \
  do {                                                                \
    int64_t i = 0;                                                    \
    for (; i + 8 <= n; i += 8)                                        \
      for (int j = 0; j < 8; j++) { const int64_t e = i + j; BODY; }  \
    for (; i < n; i++) { const int64_t e = i; BODY; }                 \
  } while (0)

#define DEF_BIN(NAME, T_OUT, EXPR)                                                           \
  GPUX_SIMD_CLONES static void NAME(T_OUT *restrict y, const float *restrict a, int64_t sa,      \
                   const float *restrict b, int64_t sb, int64_t n) {                        \
    if (sa && sb) {                                                                          \
      BLOCKS(const float x = a[e]; const float z = b[e]; y[e] = (EXPR));                     \
    } else if (sa) {                                                                         \
      const float z = b[0];                                                                  \
      BLOCKS(const float x = a[e]; y[e] = (EXPR));                                           \
    } else if (sb) {                                                                         \
      const float x = a[0];                                                                  \
      BLOCKS(const float z = b[e]; y[e] = (EXPR));                                           \
    } else {                                                                                 \
      const float x = a[0], z = b[0];                                                        \
      const T_OUT v = (EXPR);                                                                \
      BLOCKS(y[e] = v);                                                                      \
    }                                                                                        \
  }

DEF_BIN(f32_add, float, x + z)
DEF_BIN(f32_sub, float, x - z)
DEF_BIN(f32_mul, float, x * z)
DEF_BIN(f32_div, float, x / z)
DEF_BIN(f32_square, float, square_f(x, z))
DEF_BIN(f32_pow, float, powf(x, z))
DEF_BIN(f32_mod, float, py_fmodf(x, z))
DEF_BIN(f32_fmod, float, fmodf(x, z))
DEF_BIN(f32_max, float, ((x != x) | (x > z)) ? x : z) /* NaN wins, as numpy's maximum */
DEF_BIN(f32_min, float, ((x != x) | (x < z)) ? x : z)
DEF_BIN(f32_eq, uint8_t, x == z)
DEF_BIN(f32_gt, uint8_t, x > z)
DEF_BIN(f32_lt, uint8_t, x < z)
DEF_BIN(f32_ge, uint8_t, x >= z)
DEF_BIN(f32_le, uint8_t, x <= z)

static void bin_f32_seg(void *p, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
  const bin_ctx *c = p;
  const float *a = (const float *)c->a->data + off[0], *b = (const float *)c->b->data + off[1];
  float *y = (float *)c->y->data + o;
  uint8_t *yb = (uint8_t *)c->y->data + o;
  int64_t sa = st[0], sb = st[1];
  switch (c->op) {
  case B_ADD: f32_add(y, a, sa, b, sb, n); break;
  case B_SUB: f32_sub(y, a, sa, b, sb, n); break;
  case B_MUL: f32_mul(y, a, sa, b, sb, n); break;
  case B_DIV: f32_div(y, a, sa, b, sb, n); break;
  case B_POW:
    if (!sb && b[0] == 2.0f) f32_square(y, a, sa, b, sb, n); /* x ** 2 is common */
    else f32_pow(y, a, sa, b, sb, n);
    break;
  case B_MOD: f32_mod(y, a, sa, b, sb, n); break;
  case B_FMOD: f32_fmod(y, a, sa, b, sb, n); break;
  case B_MAX: f32_max(y, a, sa, b, sb, n); break;
  case B_MIN: f32_min(y, a, sa, b, sb, n); break;
  case B_EQ: f32_eq(yb, a, sa, b, sb, n); break;
  case B_GT: f32_gt(yb, a, sa, b, sb, n); break;
  case B_LT: f32_lt(yb, a, sa, b, sb, n); break;
  case B_GE: f32_ge(yb, a, sa, b, sb, n); break;
  case B_LE: f32_le(yb, a, sa, b, sb, n); break;
  }
}

static double bin_f64(int op, double x, double z) {
  switch (op) {
  case B_ADD: return x + z;
  case B_SUB: return x - z;
  case B_MUL: return x * z;
  case B_DIV: return x / z;
  case B_POW: return pow(x, z);
  case B_MOD: return py_fmod(x, z);
  case B_FMOD: return fmod(x, z);
  case B_MAX: return (x != x || x > z) ? x : z;
  case B_MIN: return (x != x || x < z) ? x : z;
  case B_EQ: return x == z;
  case B_GT: return x > z;
  case B_LT: return x < z;
  case B_GE: return x >= z;
  case B_LE: return x <= z;
  }
  return NAN;
}

/* Other floating types: through double, element by element. */
static void bin_float_seg(void *p, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
  const bin_ctx *c = p;
  int adt = c->a->dtype, bdt = c->b->dtype, ydt = c->y->dtype;
  for (int64_t i = 0; i < n; i++) {
    double x = gpux__load_f64(adt, c->a->data, off[0] + i * st[0]);
    double z = gpux__load_f64(bdt, c->b->data, off[1] + i * st[1]);
    gpux__store_f64(ydt, c->y->data, o + i, bin_f64(c->op, x, z));
  }
}

/* x ** e for integers, wrapping; negative exponents truncate 1/x**|e| toward zero. */
static int64_t ipow(int64_t x, int64_t e, int e_unsigned) {
  if (e < 0 && !e_unsigned) {
    if (x == 1) return 1;
    if (x == -1) return (e & 1) ? -1 : 1;
    return 0;
  }
  uint64_t base = (uint64_t)x, r = 1, ue = (uint64_t)e;
  while (ue) {
    if (ue & 1) r *= base;
    base *= base;
    ue >>= 1;
  }
  return (int64_t)r;
}

static int64_t bin_i64(const bin_ctx *c, int64_t x, int64_t z) {
  uint64_t ux = (uint64_t)x, uz = (uint64_t)z;
  int uns = c->uns;
  switch (c->op) {
  case B_ADD: return (int64_t)(ux + uz);
  case B_SUB: return (int64_t)(ux - uz);
  case B_MUL: return (int64_t)(ux * uz);
  case B_DIV:
    if (z == 0) return 0;
    if (uns) return (int64_t)(ux / uz);
    if (z == -1) return (int64_t)(0 - ux); /* INT64_MIN / -1 wraps */
    return x / z;
  case B_FMOD: /* C remainder: sign of the dividend */
    if (z == 0) return 0;
    if (uns) return (int64_t)(ux % uz);
    if (z == -1) return 0;
    return x % z;
  case B_MOD: { /* Python remainder: sign of the divisor */
    if (z == 0) return 0;
    if (uns) return (int64_t)(ux % uz);
    if (z == -1) return 0;
    int64_t r = x % z;
    if (r != 0 && ((r < 0) != (z < 0))) r += z;
    return r;
  }
  case B_POW: return ipow(x, z, uns);
  case B_SHL:
    if ((!uns && z < 0) || uz >= (uint64_t)c->bits) return 0;
    return (int64_t)(ux << uz);
  case B_SHR:
    if ((!uns && z < 0) || uz >= (uint64_t)c->bits) return !uns && x < 0 ? -1 : 0;
    if (uns || x >= 0) return (int64_t)(ux >> uz);
    return (int64_t)~(~ux >> uz); /* arithmetic shift of a negative value */
  case B_BAND: return (int64_t)(ux & uz);
  case B_BOR: return (int64_t)(ux | uz);
  case B_BXOR: return (int64_t)(ux ^ uz);
  case B_MAX: return uns ? (ux > uz ? x : z) : (x > z ? x : z);
  case B_MIN: return uns ? (ux < uz ? x : z) : (x < z ? x : z);
  case B_EQ: return x == z;
  case B_GT: return uns ? ux > uz : x > z;
  case B_LT: return uns ? ux < uz : x < z;
  case B_GE: return uns ? ux >= uz : x >= z;
  case B_LE: return uns ? ux <= uz : x <= z;
  case B_AND: return x && z;
  case B_OR: return x || z;
  case B_XOR: return !x != !z;
  }
  return 0;
}

/* Integer (and bool) types: exact through int64. */
static void bin_int_seg(void *p, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
  const bin_ctx *c = p;
  int adt = c->a->dtype, bdt = c->b->dtype, ydt = c->y->dtype;
  for (int64_t i = 0; i < n; i++) {
    int64_t x = gpux__load_i64(adt, c->a->data, off[0] + i * st[0]);
    int64_t z = gpux__load_i64(bdt, c->b->data, off[1] + i * st[1]);
    gpux__store_i64(ydt, c->y->data, o + i, bin_i64(c, x, z));
  }
}

/* Pow with a base and an exponent of different kinds (integer base, float exponent or the
 * reverse): computed in double, stored in the base's type. */
static void bin_pow_mixed_seg(void *p, int64_t o, const int64_t *off, const int64_t *st,
                              int64_t n) {
  const bin_ctx *c = p;
  for (int64_t i = 0; i < n; i++) {
    double x = gpux__load_f64(c->a->dtype, c->a->data, off[0] + i * st[0]);
    double z = gpux__load_f64(c->b->dtype, c->b->data, off[1] + i * st[1]);
    gpux__store_f64(c->y->dtype, c->y->data, o + i, pow(x, z));
  }
}

/* Integer base, integer exponent of another integer type: exact. */
static void bin_pow_int_seg(void *p, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
  const bin_ctx *c = p;
  int e_uns = gpux__dtype_is_unsigned_int(c->b->dtype);
  for (int64_t i = 0; i < n; i++) {
    int64_t x = gpux__load_i64(c->a->dtype, c->a->data, off[0] + i * st[0]);
    int64_t z = gpux__load_i64(c->b->dtype, c->b->data, off[1] + i * st[1]);
    gpux__store_i64(c->y->dtype, c->y->data, o + i, ipow(x, z, e_uns));
  }
}

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static void bin_str_seg(void *p, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
  const bin_ctx *c = p;
  char *const *a = (char *const *)c->a->data, *const *b = (char *const *)c->b->data;
  uint8_t *y = (uint8_t *)c->y->data + o;
  for (int64_t i = 0; i < n; i++)
    y[i] = !strcmp(str_or_empty(a[off[0] + i * st[0]]), str_or_empty(b[off[1] + i * st[1]]));
}

enum { K_FLOAT = 1, K_INT = 2, K_BOOL = 4, K_STRING = 8, K_NUM = K_FLOAT | K_INT };

static int dtype_kind(int dt) {
  if (dt == GPUX_DT_STRING) return K_STRING;
  if (dt == GPUX_DT_BOOL) return K_BOOL;
  if (gpux__dtype_is_float(dt)) return K_FLOAT;
  if (gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt)) return K_INT;
  return 0;
}

static int check_kind(gpux__kctx *k, int i, int allowed) {
  int dt = IN(i)->dtype;
  if (!(dtype_kind(dt) & allowed))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input %d: %s is not supported", i,
                      gpux_dtype_name(dt));
  return 0;
}

/* Computes y = op(a, b) with broadcasting into an already created y of the broadcast shape;
 * y must not share memory with a or b. */
static void bin_compute(int op, const gpux_tensor *a, const gpux_tensor *b, gpux_tensor *y,
                        int a_ndim, const int64_t *a_dims, int b_ndim, const int64_t *b_dims) {
  bcast bc;
  int nds[2] = {a_ndim, b_ndim};
  const int64_t *dims[2] = {a_dims, b_dims};
  bc_init(&bc, y->ndim, y->dims, 2, nds, dims);
  bin_ctx c = {op, a, b, y, (int)gpux_dtype_size(a->dtype) * 8,
               gpux__dtype_is_unsigned_int(a->dtype)};
  int ak = dtype_kind(a->dtype), bk = dtype_kind(b->dtype);
  if (a->dtype == GPUX_DT_STRING)
    bc_run(&bc, 0, bin_str_seg, &c);
  else if (op == B_POW && ak != bk)
    bc_run(&bc, UNITS_SLOW, ak == K_FLOAT || bk == K_FLOAT ? bin_pow_mixed_seg : bin_pow_int_seg, &c);
  else if (op == B_POW && a->dtype != b->dtype)
    bc_run(&bc, UNITS_SLOW, ak == K_FLOAT ? bin_pow_mixed_seg : bin_pow_int_seg, &c);
  else if (a->dtype == GPUX_DT_FLOAT)
    bc_run(&bc, op == B_POW || op == B_MOD || op == B_FMOD ? UNITS_SLOW : UNITS_F32, bin_f32_seg, &c);
  else if (ak == K_FLOAT)
    bc_run(&bc, UNITS_SLOW, bin_float_seg, &c);
  else
    bc_run(&bc, UNITS_INT, bin_int_seg, &c);
}

static int binary_op(gpux__kctx *k, int op, int allowed) {
  int rc;
  if ((rc = tensor_in(k, 0)) || (rc = tensor_in(k, 1))) return rc;
  const gpux_tensor *a = IN(0), *b = IN(1);
  if ((rc = check_kind(k, 0, allowed)) || (rc = check_kind(k, 1, allowed))) return rc;
  if (op != B_POW && a->dtype != b->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "inputs have different types: %s and %s",
                      gpux_dtype_name(a->dtype), gpux_dtype_name(b->dtype));
  /* opset < 7: B broadcasts onto A from `axis` when broadcast=1 (legacy rule) */
  int b_ndim = b->ndim;
  int64_t b_dims[GPUX_MAX_DIMS];
  memcpy(b_dims, b->dims, sizeof b_dims);
  if (k->opset < 7 && gpux__attr_int(k, "broadcast", 0)) {
    int64_t axis = gpux__attr_int(k, "axis", a->ndim - b->ndim);
    if (axis < 0) axis += a->ndim;
    if (axis < 0 || axis + b->ndim > a->ndim)
      return gpux__kerr(k, GPUX_E_SHAPE, "legacy broadcast axis %lld does not fit", (long long)axis);
    for (int d = b->ndim; d < a->ndim - axis; d++) b_dims[d] = 1;
    b_ndim = (int)(a->ndim - axis);
  }
  int ndim;
  int64_t dims[GPUX_MAX_DIMS];
  if ((rc = gpux__broadcast_shape(a->ndim, a->dims, b_ndim, b_dims, &ndim, dims)))
    return gpux__kerr(k, rc, "%s", gpux_last_error());
  int ydt = op >= B_EQ ? GPUX_DT_BOOL : a->dtype;
  gpux_tensor *y = gpux__out_raw(k, 0, ydt, ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  bin_compute(op, a, b, y, a->ndim, a->dims, b_ndim, b_dims);
  return 0;
}

static int op_add(gpux__kctx *k) { return binary_op(k, B_ADD, K_NUM); }
static int op_sub(gpux__kctx *k) { return binary_op(k, B_SUB, K_NUM); }
static int op_mul(gpux__kctx *k) { return binary_op(k, B_MUL, K_NUM); }
static int op_div(gpux__kctx *k) { return binary_op(k, B_DIV, K_NUM); }
static int op_pow(gpux__kctx *k) { return binary_op(k, B_POW, K_NUM); }

static int op_mod(gpux__kctx *k) {
  int64_t fmod_attr = gpux__attr_int(k, "fmod", 0);
  if (fmod_attr != 0 && fmod_attr != 1)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "fmod must be 0 or 1, got %lld", (long long)fmod_attr);
  return binary_op(k, fmod_attr ? B_FMOD : B_MOD, K_NUM);
}

static int op_bitshift(gpux__kctx *k) {
  const char *dir = gpux__attr_string(k, "direction", NULL);
  if (!dir) return gpux__kerr(k, GPUX_E_INVALID, "attribute 'direction' is required");
  int op;
  if (!strcmp(dir, "LEFT")) op = B_SHL;
  else if (!strcmp(dir, "RIGHT")) op = B_SHR;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "direction must be LEFT or RIGHT, got '%s'", dir);
  return binary_op(k, op, K_INT);
}

static int op_bitwise_and(gpux__kctx *k) { return binary_op(k, B_BAND, K_INT | K_BOOL); }
static int op_bitwise_or(gpux__kctx *k) { return binary_op(k, B_BOR, K_INT | K_BOOL); }
static int op_bitwise_xor(gpux__kctx *k) { return binary_op(k, B_BXOR, K_INT | K_BOOL); }
static int op_equal(gpux__kctx *k) { return binary_op(k, B_EQ, K_NUM | K_BOOL | K_STRING); }
static int op_greater(gpux__kctx *k) { return binary_op(k, B_GT, K_NUM | K_BOOL); }
static int op_less(gpux__kctx *k) { return binary_op(k, B_LT, K_NUM | K_BOOL); }
static int op_greater_equal(gpux__kctx *k) { return binary_op(k, B_GE, K_NUM | K_BOOL); }
static int op_less_equal(gpux__kctx *k) { return binary_op(k, B_LE, K_NUM | K_BOOL); }
static int op_and(gpux__kctx *k) { return binary_op(k, B_AND, K_BOOL); }
static int op_or(gpux__kctx *k) { return binary_op(k, B_OR, K_BOOL); }
static int op_xor(gpux__kctx *k) { return binary_op(k, B_XOR, K_BOOL); }

/* ---- variadic Max, Min, Sum, Mean ---- */

typedef struct {
  gpux_tensor *y;
  double n;
} mean_ctx;

static void mean_divide(void *p, int64_t begin, int64_t end) {
  const mean_ctx *c = p;
  if (c->y->dtype == GPUX_DT_FLOAT) {
    float *y = c->y->data, n = (float)c->n;
    for (int64_t i = begin; i < end; i++) y[i] /= n;
  } else {
    for (int64_t i = begin; i < end; i++)
      gpux__store_f64(c->y->dtype, c->y->data, i,
                      gpux__load_f64(c->y->dtype, c->y->data, i) / c->n);
  }
}

static int variadic_op(gpux__kctx *k, int op, int is_mean) {
  int n = k->n_in, rc;
  if (n < 1) return gpux__kerr(k, GPUX_E_INVALID, "needs at least one input");
  int ndim = 0;
  int64_t dims[GPUX_MAX_DIMS];
  for (int i = 0; i < n; i++) {
    if ((rc = tensor_in(k, i))) return rc;
    if ((rc = check_kind(k, i, is_mean ? K_FLOAT : K_NUM))) return rc;
    if (IN(i)->dtype != IN(0)->dtype)
      return gpux__kerr(k, GPUX_E_DTYPE, "input %d is %s, input 0 is %s", i,
                        gpux_dtype_name(IN(i)->dtype), gpux_dtype_name(IN(0)->dtype));
    if (i == 0) {
      ndim = IN(0)->ndim;
      memcpy(dims, IN(0)->dims, sizeof dims);
    } else if ((rc = gpux__broadcast_shape(ndim, dims, IN(i)->ndim, IN(i)->dims, &ndim, dims))) {
      return gpux__kerr(k, rc, "%s", gpux_last_error());
    }
  }
  gpux_tensor *y = gpux__out(k, 0, IN(0)->dtype, ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (n == 1) {
    memcpy(y->data, IN(0)->data, y->nbytes);
    return 0;
  }
  /* fold the inputs pairwise; with three or more, partial results alternate between y and a
   * scratch tensor so that no kernel reads and writes the same buffer */
  gpux_tensor scratch = {0}, *acc = y, *next = &scratch;
  if (n > 2) {
    if ((rc = gpux_tensor_init(&scratch, y->dtype, y->ndim, y->dims)))
      return gpux__kerr(k, rc, "%s", gpux_last_error());
    if (n % 2) { acc = &scratch; next = y; } /* so that the last fold lands in y */
  }
  bin_compute(op, IN(0), IN(1), acc, IN(0)->ndim, IN(0)->dims, IN(1)->ndim, IN(1)->dims);
  for (int i = 2; i < n; i++) {
    bin_compute(op, acc, IN(i), next, acc->ndim, acc->dims, IN(i)->ndim, IN(i)->dims);
    gpux_tensor *t = acc;
    acc = next;
    next = t;
  }
  gpux_tensor_free(&scratch);
  if (is_mean) {
    mean_ctx c = {y, (double)n};
    gpux__parallel_for_elems(gpux_tensor_count(y), UNITS_F32, 16, mean_divide, &c);
  }
  return 0;
}

static int op_max(gpux__kctx *k) { return variadic_op(k, B_MAX, 0); }
static int op_min(gpux__kctx *k) { return variadic_op(k, B_MIN, 0); }
static int op_sum(gpux__kctx *k) { return variadic_op(k, B_ADD, 0); }
static int op_mean(gpux__kctx *k) { return variadic_op(k, B_ADD, 1); }

/* ---- Where ---- */

typedef struct {
  const gpux_tensor *cond, *x, *z;
  gpux_tensor *y;
  int failed;   /* string copy ran out of memory */
} where_ctx;

#define WHERE_RUN(T)                                                                 \
  do {                                                                               \
    const T *x = (const T *)c->x->data + off[1], *z = (const T *)c->z->data + off[2]; \
    T *y = (T *)c->y->data + o;                                                      \
    for (int64_t i = 0; i < n; i++) y[i] = cond[i * st[0]] ? x[i * st[1]] : z[i * st[2]]; \
  } while (0)

static void where_seg(void *p, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
  where_ctx *c = p;
  const uint8_t *cond = (const uint8_t *)c->cond->data + off[0];
  if (c->y->dtype == GPUX_DT_STRING) {
    char *const *x = (char *const *)c->x->data + off[1];
    char *const *z = (char *const *)c->z->data + off[2];
    char **y = (char **)c->y->data + o;
    for (int64_t i = 0; i < n; i++) {
      y[i] = gpux__strdup(str_or_empty(cond[i * st[0]] ? x[i * st[1]] : z[i * st[2]]));
      if (!y[i]) c->failed = 1;
    }
    return;
  }
  switch (gpux_dtype_size(c->y->dtype)) {
  case 1: WHERE_RUN(uint8_t); break;
  case 2: WHERE_RUN(uint16_t); break;
  case 4: WHERE_RUN(uint32_t); break;
  case 8: WHERE_RUN(uint64_t); break;
  case 16: {
    size_t es = 16;
    for (int64_t i = 0; i < n; i++) {
      const gpux_tensor *src = cond[i * st[0]] ? c->x : c->z;
      int64_t si = cond[i * st[0]] ? off[1] + i * st[1] : off[2] + i * st[2];
      memcpy((char *)c->y->data + (o + i) * es, (const char *)src->data + si * es, es);
    }
    break;
  }
  }
}

static int op_where(gpux__kctx *k) {
  int rc;
  for (int i = 0; i < 3; i++)
    if ((rc = tensor_in(k, i))) return rc;
  const gpux_tensor *cond = IN(0), *x = IN(1), *z = IN(2);
  if (cond->dtype != GPUX_DT_BOOL)
    return gpux__kerr(k, GPUX_E_DTYPE, "condition must be bool, got %s", gpux_dtype_name(cond->dtype));
  if (x->dtype != z->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "X is %s but Y is %s", gpux_dtype_name(x->dtype),
                      gpux_dtype_name(z->dtype));
  if (!gpux_dtype_size(x->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s is not supported", gpux_dtype_name(x->dtype));
  int ndim;
  int64_t dims[GPUX_MAX_DIMS];
  if ((rc = gpux__broadcast_shape(cond->ndim, cond->dims, x->ndim, x->dims, &ndim, dims)) ||
      (rc = gpux__broadcast_shape(ndim, dims, z->ndim, z->dims, &ndim, dims)))
    return gpux__kerr(k, rc, "%s", gpux_last_error());
  gpux_tensor *y = gpux__out(k, 0, x->dtype, ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  bcast bc;
  int nds[3] = {cond->ndim, x->ndim, z->ndim};
  const int64_t *ds[3] = {cond->dims, x->dims, z->dims};
  bc_init(&bc, ndim, dims, 3, nds, ds);
  where_ctx c = {cond, x, z, y, 0};
  bc_run(&bc, x->dtype == GPUX_DT_STRING ? 0 : UNITS_F32, where_seg, &c);
  if (c.failed) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
  return 0;
}

const gpux__op_def gpux__ops_elementwise[] = {
  {"", "Add", op_add, 0, 0},
  {"", "Sub", op_sub, 0, 0},
  {"", "Mul", op_mul, 0, 0},
  {"", "Div", op_div, 0, 0},
  {"", "Pow", op_pow, 0, 0},
  {"", "Mod", op_mod, 0, 0},
  {"", "BitShift", op_bitshift, 0, 0},
  {"", "BitwiseAnd", op_bitwise_and, 0, 0},
  {"", "BitwiseOr", op_bitwise_or, 0, 0},
  {"", "BitwiseXor", op_bitwise_xor, 0, 0},
  {"", "Equal", op_equal, 0, 0},
  {"", "Greater", op_greater, 0, 0},
  {"", "Less", op_less, 0, 0},
  {"", "GreaterOrEqual", op_greater_equal, 0, 0},
  {"", "LessOrEqual", op_less_equal, 0, 0},
  {"", "And", op_and, 0, 0},
  {"", "Or", op_or, 0, 0},
  {"", "Xor", op_xor, 0, 0},
  {"", "Where", op_where, 0, 0},
  {"", "Max", op_max, 0, 0},
  {"", "Min", op_min, 0, 0},
  {"", "Sum", op_sum, 0, 0},
  {"", "Mean", op_mean, 0, 0},
  {"", "Sqrt", gpux__ew_unary, 0, 0},
  {"", "Exp", gpux__ew_unary, 0, 0},
  {"", "Log", gpux__ew_unary, 0, 0},
  {"", "Erf", gpux__ew_unary, 0, 0},
  {"", "Tanh", gpux__ew_unary, 0, 0},
  {"", "Sigmoid", gpux__ew_unary, 0, 0},
  {"", "Abs", gpux__ew_unary, 0, 0},
  {"", "Neg", gpux__ew_unary, 0, 0},
  {"", "Reciprocal", gpux__ew_unary, 0, 0},
  {"", "Floor", gpux__ew_unary, 0, 0},
  {"", "Ceil", gpux__ew_unary, 0, 0},
  {"", "Round", gpux__ew_unary, 0, 0},
  {"", "Sign", gpux__ew_unary, 0, 0},
  {"", "Sin", gpux__ew_unary, 0, 0},
  {"", "Cos", gpux__ew_unary, 0, 0},
  {"", "Tan", gpux__ew_unary, 0, 0},
  {"", "Asin", gpux__ew_unary, 0, 0},
  {"", "Acos", gpux__ew_unary, 0, 0},
  {"", "Atan", gpux__ew_unary, 0, 0},
  {"", "Sinh", gpux__ew_unary, 0, 0},
  {"", "Cosh", gpux__ew_unary, 0, 0},
  {"", "Asinh", gpux__ew_unary, 0, 0},
  {"", "Acosh", gpux__ew_unary, 0, 0},
  {"", "Atanh", gpux__ew_unary, 0, 0},
  {"", "IsNaN", gpux__ew_unary, 0, 0},
  {"", "IsInf", gpux__ew_unary, 0, 0},
  {"", "Not", gpux__ew_unary, 0, 0},
  {"", "BitwiseNot", gpux__ew_unary, 0, 0},
  {0},
};
