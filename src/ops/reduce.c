/* reduce.c — reductions along axes: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare,
 * ArgMax/ArgMin, the scans CumSum/CumProd, and TopK.
 *
 * The Reduce* ops share one engine. The input's dims are simplified (size-1 dims dropped,
 * neighbours that are both reduced or both kept merged), so that e.g. a reduction over the last
 * axis becomes [kept, reduced] and one over a middle axis [kept, reduced, kept]. A walker visits
 * every contiguous innermost run and hands it to an inner loop: a "row" loop when the innermost
 * dim is reduced (the run folds into one accumulator) or a "column" loop when it is kept (element
 * j folds into accumulator j). Threads split a kept dim, so they never share an accumulator; a
 * reduction to one value splits the input into chunks whose partial results are combined in order.
 *
 * Values are read as float32 (directly) or float64 (float64 directly, other float dtypes converted
 * first) with float64 accumulators, or as integers in uint64 with wrapping arithmetic (exact for
 * every integer dtype; signed values are biased for Max/Min so unsigned comparison orders them). */
#include "core/scratch.h"
#include "ops/op.h"
#include "ops/simd.h"
#include <math.h>

/* ---- the Reduce* engine ---- */

enum { /* Reduce* operators */
  R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQ
};

enum { /* how one value folds into an accumulator */
  ACC_SUM,   /* a += v */
  ACC_ABS,   /* a += |v| */
  ACC_SQ,    /* a += v*v */
  ACC_PROD,  /* a *= v */
  ACC_MAX,   /* a = max(a, v), NaN wins */
  ACC_MIN,   /* a = min(a, v), NaN wins */
  ACC_EXP    /* a += exp(v - shift[o]) */
};

enum { VAL_F32, VAL_F64, VAL_U64 };

typedef struct {
  int m;                            /* merged rank, >= 1 */
  int64_t dims[GPUX_MAX_DIMS];      /* merged dims */
  int red[GPUX_MAX_DIMS];           /* 1 when merged dim d is reduced */
  int64_t xstride[GPUX_MAX_DIMS];   /* input strides (innermost 1) */
  int64_t ostride[GPUX_MAX_DIMS];   /* output strides, 0 for reduced dims */
} reduce_geom;

typedef struct red_ctx red_ctx;
typedef void (*inner_fn)(const red_ctx *c, int64_t xoff, int64_t ooff, int64_t n);

struct red_ctx {
  const reduce_geom *g;
  int acc;                /* ACC_* */
  const void *x;          /* float / double / uint64_t values [input count] */
  void *a;                /* double or uint64_t accumulators [output count] */
  const double *shift;    /* ACC_EXP: per-output shift [output count] */
  inner_fn inner;
  int split;              /* merged dim split across threads */
  int64_t chunk;          /* whole-tensor reductions: elements per chunk */
};

/* Builds the merged geometry of a tensor with per-dim reduce flags. */
static void geom_build(reduce_geom *g, int rank, const int64_t *dims, const int *red) {
  int m = 0;
  for (int d = 0; d < rank; d++) {
    if (dims[d] == 1) continue;
    if (m > 0 && g->red[m - 1] == red[d]) {
      g->dims[m - 1] *= dims[d];
    } else {
      g->dims[m] = dims[d];
      g->red[m] = red[d];
      m++;
    }
  }
  if (m == 0) {
    g->dims[0] = 1;
    g->red[0] = 0;
    m = 1;
  }
  g->m = m;
  int64_t xs = 1, os = 1;
  for (int d = m - 1; d >= 0; d--) {
    g->xstride[d] = xs;
    xs *= g->dims[d];
    g->ostride[d] = g->red[d] ? 0 : os;
    if (!g->red[d]) os *= g->dims[d];
  }
}

/* Visits every innermost run with merged dim `split` limited to [b, e) (split < 0: no limit). */
static void geom_walk(const red_ctx *c, int split, int64_t b, int64_t e) {
  const reduce_geom *g = c->g;
  int last = g->m - 1;
  int64_t lo[GPUX_MAX_DIMS], hi[GPUX_MAX_DIMS], idx[GPUX_MAX_DIMS];
  for (int d = 0; d <= last; d++) {
    lo[d] = d == split ? b : 0;
    hi[d] = d == split ? e : g->dims[d];
    if (lo[d] >= hi[d]) return;
    idx[d] = lo[d];
  }
  for (;;) {
    int64_t xo = lo[last], oo = lo[last] * g->ostride[last];
    for (int d = 0; d < last; d++) {
      xo += idx[d] * g->xstride[d];
      oo += idx[d] * g->ostride[d];
    }
    c->inner(c, xo, oo, hi[last] - lo[last]);
    int d = last - 1;
    while (d >= 0 && ++idx[d] >= hi[d]) {
      idx[d] = lo[d];
      d--;
    }
    if (d < 0) return;
  }
}

static double combine_f(int acc, double a, double b);

enum { ROW_BLOCK = 1024 };  /* float32 rows: 8 float lanes per block, blocks added in float64 */

/* Sum of f(x) over a float32 run (f by acc: v, |v| or v*v), float lanes per block. */
static GPUX_SIMD_CLONES double row_sum_f32(const float *restrict x, int64_t n, int acc) {
  double total = 0;
  for (int64_t b = 0; b < n; b += ROW_BLOCK) {
    const float *restrict p = x + b;
    int64_t m = GPUX__MIN(ROW_BLOCK, n - b), i = 0;
    float s[8] = {0};
    if (acc == ACC_SUM)
      for (; i + 8 <= m; i += 8)
        for (int j = 0; j < 8; j++) s[j] += p[i + j];
    else if (acc == ACC_ABS)
      for (; i + 8 <= m; i += 8)
        for (int j = 0; j < 8; j++) s[j] += p[i + j] < 0 ? -p[i + j] : p[i + j];
    else
      for (; i + 8 <= m; i += 8)
        for (int j = 0; j < 8; j++) s[j] += p[i + j] * p[i + j];
    double t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < m; i++) t += acc == ACC_SUM ? p[i] : acc == ACC_ABS ? fabsf(p[i]) : p[i] * p[i];
    total += t;
  }
  return total;
}

/* Max (or min) of a float32 run; NaN when it holds one. */
static GPUX_SIMD_CLONES float row_extreme_f32(const float *restrict x, int64_t n, int want_max) {
  float m[8];
  int nan[8] = {0};
  for (int j = 0; j < 8; j++) m[j] = x[0];
  int64_t i = 0;
  if (want_max)
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) {
        m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
        nan[j] |= x[i + j] != x[i + j];
      }
  else
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) {
        m[j] = x[i + j] < m[j] ? x[i + j] : m[j];
        nan[j] |= x[i + j] != x[i + j];
      }
  float r = m[0];
  int any_nan = 0;
  for (int j = 0; j < 8; j++) {
    r = want_max ? (m[j] > r ? m[j] : r) : (m[j] < r ? m[j] : r);
    any_nan |= nan[j];
  }
  for (; i < n; i++) {
    r = want_max ? (x[i] > r ? x[i] : r) : (x[i] < r ? x[i] : r);
    any_nan |= x[i] != x[i];
  }
  return any_nan ? NAN : r;
}

/* float32 ROW: the run x[0..n) folds into a[0]. */
static void row_f32(const red_ctx *c, int64_t xo, int64_t oo, int64_t n) {
  const float *x = (const float *)c->x + xo;
  double *a = (double *)c->a + oo, v = 0;
  switch (c->acc) {
  case ACC_SUM: case ACC_ABS: case ACC_SQ: *a += row_sum_f32(x, n, c->acc); return;
  case ACC_MAX: case ACC_MIN:
    if (n > 0) *a = combine_f(c->acc, *a, row_extreme_f32(x, n, c->acc == ACC_MAX));
    return;
  case ACC_PROD:
    v = *a;
    for (int64_t i = 0; i < n; i++) v *= x[i];
    *a = v;
    return;
  case ACC_EXP:
    for (int64_t i = 0; i < n; i++) v += exp((double)x[i] - c->shift[oo]);
    *a += v;
    return;
  }
}

/* float32 COL: x[j] folds into a[j]. */
static GPUX_SIMD_CLONES void col_fold_f32(double *restrict a, const float *restrict x, const double *restrict sh, int64_t n, int acc) {
  switch (acc) {
  case ACC_SUM: FOR8(j, n, a[j] += x[j]); break;
  case ACC_ABS: FOR8(j, n, a[j] += x[j] < 0 ? -(double)x[j] : x[j]); break;
  case ACC_SQ: FOR8(j, n, a[j] += (double)x[j] * x[j]); break;
  case ACC_PROD: FOR8(j, n, a[j] *= x[j]); break;
  case ACC_MAX: FOR8(j, n, double v = x[j]; a[j] = (v > a[j]) | (v != v) ? v : a[j]); break;
  case ACC_MIN: FOR8(j, n, double v = x[j]; a[j] = (v < a[j]) | (v != v) ? v : a[j]); break;
  case ACC_EXP: for (int64_t j = 0; j < n; j++) a[j] += exp((double)x[j] - sh[j]); break;
  }
}

static void col_f32(const red_ctx *c, int64_t xo, int64_t oo, int64_t n) {
  col_fold_f32((double *)c->a + oo, (const float *)c->x + xo, c->shift ? c->shift + oo : NULL, n, c->acc);
}

/* float64 ROW and COL (float64 input, and other float dtypes converted to it). */
static void row_f64(const red_ctx *c, int64_t xo, int64_t oo, int64_t n) {
  const double *x = (const double *)c->x + xo;
  double *a = (double *)c->a + oo, v = *a, s = 0;
  for (int64_t i = 0; i < n; i++) {
    switch (c->acc) {
    case ACC_SUM: s += x[i]; break;
    case ACC_ABS: s += fabs(x[i]); break;
    case ACC_SQ: s += x[i] * x[i]; break;
    case ACC_EXP: s += exp(x[i] - c->shift[oo]); break;
    default: v = combine_f(c->acc, v, x[i]); break;
    }
  }
  *a = c->acc == ACC_PROD || c->acc == ACC_MAX || c->acc == ACC_MIN ? v : v + s;
}

static void col_f64(const red_ctx *c, int64_t xo, int64_t oo, int64_t n) {
  const double *x = (const double *)c->x + xo;
  double *a = (double *)c->a + oo;
  for (int64_t j = 0; j < n; j++) {
    switch (c->acc) {
    case ACC_SUM: a[j] += x[j]; break;
    case ACC_ABS: a[j] += fabs(x[j]); break;
    case ACC_SQ: a[j] += x[j] * x[j]; break;
    case ACC_EXP: a[j] += exp(x[j] - c->shift[oo + j]); break;
    default: a[j] = combine_f(c->acc, a[j], x[j]); break;
    }
  }
}

/* Integer inner loops (uint64, wrapping; |v| is taken and Max/Min bias applied when loading). */
static void row_u64(const red_ctx *c, int64_t xo, int64_t oo, int64_t n) {
  const uint64_t *x = (const uint64_t *)c->x + xo;
  uint64_t *a = (uint64_t *)c->a + oo, v = *a;
  switch (c->acc) {
  case ACC_SUM: case ACC_ABS: for (int64_t i = 0; i < n; i++) v += x[i]; break;
  case ACC_SQ: for (int64_t i = 0; i < n; i++) v += x[i] * x[i]; break;
  case ACC_PROD: for (int64_t i = 0; i < n; i++) v *= x[i]; break;
  case ACC_MAX: for (int64_t i = 0; i < n; i++) v = x[i] > v ? x[i] : v; break;
  case ACC_MIN: for (int64_t i = 0; i < n; i++) v = x[i] < v ? x[i] : v; break;
  }
  *a = v;
}

static void col_u64(const red_ctx *c, int64_t xo, int64_t oo, int64_t n) {
  const uint64_t *x = (const uint64_t *)c->x + xo;
  uint64_t *a = (uint64_t *)c->a + oo;
  switch (c->acc) {
  case ACC_SUM: case ACC_ABS: for (int64_t j = 0; j < n; j++) a[j] += x[j]; break;
  case ACC_SQ: for (int64_t j = 0; j < n; j++) a[j] += x[j] * x[j]; break;
  case ACC_PROD: for (int64_t j = 0; j < n; j++) a[j] *= x[j]; break;
  case ACC_MAX: for (int64_t j = 0; j < n; j++) a[j] = x[j] > a[j] ? x[j] : a[j]; break;
  case ACC_MIN: for (int64_t j = 0; j < n; j++) a[j] = x[j] < a[j] ? x[j] : a[j]; break;
  }
}

static double combine_f(int acc, double a, double b) {
  switch (acc) {
  case ACC_PROD: return a * b;
  case ACC_MAX: return isnan(a) || b > a || isnan(b) ? (isnan(a) ? a : b) : a;
  case ACC_MIN: return isnan(a) || b < a || isnan(b) ? (isnan(a) ? a : b) : a;
  default: return a + b;
  }
}

static uint64_t combine_u(int acc, uint64_t a, uint64_t b) {
  switch (acc) {
  case ACC_PROD: return a * b;
  case ACC_MAX: return b > a ? b : a;
  case ACC_MIN: return b < a ? b : a;
  default: return a + b;
  }
}

static void walk_range(void *ctx, int64_t b, int64_t e) {
  const red_ctx *c = ctx;
  geom_walk(c, c->split, b, e);
}

/* Whole-tensor reduction: chunk i folds into partial accumulator i. */
static void chunk_range(void *ctx, int64_t b, int64_t e) {
  const red_ctx *c = ctx;
  int64_t n = c->g->dims[0];
  for (int64_t i = b; i < e; i++) {
    int64_t lo = i * c->chunk, len = GPUX__MIN(c->chunk, n - lo);
    c->inner(c, lo, i, len);
  }
}

enum { PAR_MIN_WORK = 1 << 15, CHUNK_WORK = 1 << 16 };

/* Folds every input value into its output accumulator (a[] holds the identity on entry). */
static int reduce_fold(gpux__kctx *k, const reduce_geom *g, int vt, int acc, const void *x,
                       void *a, const double *shift, int64_t n_in) {
  int last = g->m - 1;
  red_ctx c = {.g = g, .acc = acc, .x = x, .a = a, .shift = shift, .split = -1};
  if (vt == VAL_U64) c.inner = g->red[last] ? row_u64 : col_u64;
  else if (vt == VAL_F64) c.inner = g->red[last] ? row_f64 : col_f64;
  else c.inner = g->red[last] ? row_f32 : col_f32;

  if (n_in < PAR_MIN_WORK || gpux__thread_count() == 1) {
    geom_walk(&c, -1, 0, 0);
    return 0;
  }
  if (g->m == 1 && g->red[0]) { /* everything into one value: per-chunk partials, in order */
    int64_t n_chunks = (n_in + CHUNK_WORK - 1) / CHUNK_WORK;
    size_t esz = vt == VAL_U64 ? sizeof(uint64_t) : sizeof(double);
    void *part = gpux__scratch(GPUX__SCRATCH_REDUCE_C, (size_t)n_chunks * esz);
    if (!part) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < n_chunks; i++) memcpy((char *)part + i * esz, a, esz);
    red_ctx pc = c;
    pc.a = part;
    pc.chunk = CHUNK_WORK;
    double *shifts = NULL; /* chunk i reads shift[i]: all are the one output's shift */
    if (shift) {
      shifts = gpux__scratch(GPUX__SCRATCH_REDUCE_D, (size_t)n_chunks * sizeof(double));
      if (!shifts) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
      for (int64_t i = 0; i < n_chunks; i++) shifts[i] = shift[0];
      pc.shift = shifts;
    }
    gpux__parallel_for(n_chunks, 1, chunk_range, &pc);
    if (vt == VAL_U64) {
      uint64_t r = ((uint64_t *)part)[0];
      for (int64_t i = 1; i < n_chunks; i++) r = combine_u(acc, r, ((uint64_t *)part)[i]);
      *(uint64_t *)a = r;
    } else {
      /* a[0] held the identity, which every partial started from */
      double r = ((double *)part)[0];
      for (int64_t i = 1; i < n_chunks; i++) r = combine_f(acc, r, ((double *)part)[i]);
      *(double *)a = r;
    }
    return 0;
  }
  /* split the outermost kept dim, or the largest kept one */
  int split = g->red[0] ? -1 : 0;
  for (int d = 1; d <= last && g->red[0]; d++)
    if (!g->red[d] && (split < 0 || g->dims[d] > g->dims[split])) split = d;
  if (split < 0 || g->dims[split] < 2) {
    geom_walk(&c, -1, 0, 0);
    return 0;
  }
  c.split = split;
  int64_t per = n_in / g->dims[split];
  int64_t grain = per >= PAR_MIN_WORK / 2 ? 1 : (PAR_MIN_WORK / 2) / (per ? per : 1);
  gpux__parallel_for(g->dims[split], grain, walk_range, &c);
  return 0;
}

/* Largest and smallest value of an integer dtype (bool: 1 and 0). */
static void int_limits(int dt, int64_t *lo, uint64_t *hi) {
  switch (dt) {
  case GPUX_DT_INT8: *lo = INT8_MIN; *hi = INT8_MAX; return;
  case GPUX_DT_INT16: *lo = INT16_MIN; *hi = INT16_MAX; return;
  case GPUX_DT_INT32: *lo = INT32_MIN; *hi = INT32_MAX; return;
  case GPUX_DT_INT64: *lo = INT64_MIN; *hi = INT64_MAX; return;
  case GPUX_DT_INT4: *lo = -8; *hi = 7; return;
  case GPUX_DT_INT2: *lo = -2; *hi = 1; return;
  case GPUX_DT_UINT8: *lo = 0; *hi = UINT8_MAX; return;
  case GPUX_DT_UINT16: *lo = 0; *hi = UINT16_MAX; return;
  case GPUX_DT_UINT32: *lo = 0; *hi = UINT32_MAX; return;
  case GPUX_DT_UINT64: *lo = 0; *hi = UINT64_MAX; return;
  case GPUX_DT_UINT4: *lo = 0; *hi = 15; return;
  case GPUX_DT_UINT2: *lo = 0; *hi = 3; return;
  default: *lo = 0; *hi = 1; return; /* bool */
  }
}

static int is_int_dtype(int dt) { return gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt); }

/* Reads axes (from input 1 or the "axes" attribute) into per-dim reduce flags. */
static int reduce_axes(gpux__kctx *k, const gpux_tensor *x, int *red) {
  int rank = x->ndim;
  int64_t axes[4 * GPUX_MAX_DIMS];
  int n;
  if (IN(1)) {
    if (k->shape_only && gpux__need_data(k, 1)) return k->status;
    n = gpux__read_ints(k, IN(1), axes, (int)GPUX__ARRAY_LEN(axes));
    if (n < 0) return n;
  } else {
    const int64_t *av;
    n = gpux__attr_ints(k, "axes", &av);
    if (n > (int)GPUX__ARRAY_LEN(axes)) return gpux__kerr(k, GPUX_E_INVALID, "%d axes for rank %d", n, rank);
    for (int i = 0; i < n; i++) axes[i] = av[i];
  }
  for (int d = 0; d < rank; d++) red[d] = 0;
  if (n == 0) {
    int noop = gpux__attr_int(k, "noop_with_empty_axes", 0) != 0;
    for (int d = 0; d < rank; d++) red[d] = !noop;
    return 0;
  }
  for (int i = 0; i < n; i++) {
    int ax;
    if (gpux__axis(k, axes[i], rank, &ax)) return k->status;
    if (rank == 0) continue; /* axis 0/-1 of a scalar: nothing to reduce */
    if (red[ax]) return gpux__kerr(k, GPUX_E_INVALID, "axis %lld repeated", (long long)axes[i]);
    red[ax] = 1;
  }
  return 0;
}

static int acc_of(int op) {
  switch (op) {
  case R_MAX: case R_LOGSUMEXP: return ACC_MAX;
  case R_MIN: return ACC_MIN;
  case R_PROD: return ACC_PROD;
  case R_L1: return ACC_ABS;
  case R_L2: case R_SUMSQ: return ACC_SQ;
  default: return ACC_SUM;
  }
}

static double identity_f(int acc) {
  switch (acc) {
  case ACC_PROD: return 1;
  case ACC_MAX: return -INFINITY;
  case ACC_MIN: return INFINITY;
  default: return 0;
  }
}

/* Turns a float accumulator into the op's result (n = count of values reduced). */
static double finish_f(int op, double a, int64_t n, double mx) {
  switch (op) {
  case R_MEAN: return a / (double)n;
  case R_L2: return sqrt(a);
  case R_LOGSUM: return log(a);
  case R_LOGSUMEXP: return isfinite(mx) ? log(a) + mx : mx;
  default: return a;
  }
}

static int reduce_run(gpux__kctx *k, int op) {
  const gpux_tensor *x = IN(0);
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input 0 must be a tensor");
  int dt = x->dtype;
  int is_int = is_int_dtype(dt);
  if (!is_int && !gpux__dtype_is_float(dt))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s input not supported", gpux_dtype_name(dt));
  if (dt == GPUX_DT_BOOL && op != R_MAX && op != R_MIN)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "bool input only for ReduceMax/ReduceMin");
  int red[GPUX_MAX_DIMS];
  if (reduce_axes(k, x, red)) return k->status;
  int keepdims = gpux__attr_int(k, "keepdims", 1) != 0;
  int64_t odims[GPUX_MAX_DIMS], n_red = 1;
  int on = 0;
  for (int d = 0; d < x->ndim; d++) {
    if (red[d]) n_red *= x->dims[d];
    if (!red[d]) odims[on++] = x->dims[d];
    else if (keepdims) odims[on++] = 1;
  }
  gpux_tensor *y = gpux__out(k, 0, dt, on, odims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t n_out = gpux_tensor_count(y), n_in = gpux_tensor_count(x);
  if (n_out == 0) return 0;

  reduce_geom g;
  geom_build(&g, x->ndim, x->dims, red);
  int acc = acc_of(op);
  int vt = dt == GPUX_DT_FLOAT ? VAL_F32 : dt == GPUX_DT_DOUBLE ? VAL_F64
           : is_int && op != R_LOGSUMEXP ? VAL_U64 : VAL_F64;
  /* the values, converted when not float32/float64 */
  const void *vals = x->data;
  void *conv = NULL;
  int flip = is_int && gpux__dtype_is_signed_int(dt) && (acc == ACC_MAX || acc == ACC_MIN);
  if (n_in > 0 && dt != GPUX_DT_FLOAT && dt != GPUX_DT_DOUBLE) {
    conv = gpux__scratch(GPUX__SCRATCH_REDUCE_E, (size_t)n_in * 8);
    if (!conv) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    if (vt == VAL_U64) {
      uint64_t *u = conv;
      for (int64_t i = 0; i < n_in; i++) {
        int64_t v = gpux__load_i64(dt, x->data, i);
        if (acc == ACC_ABS && v < 0) v = (int64_t)(0 - (uint64_t)v);
        u[i] = (uint64_t)v ^ (flip ? UINT64_C(1) << 63 : 0);
      }
    } else {
      double *f = conv;
      for (int64_t i = 0; i < n_in; i++) f[i] = gpux__load_f64(dt, x->data, i);
    }
    vals = conv;
  }
  int rc = 0;
  if (vt == VAL_U64) {
    uint64_t *a = gpux__scratch(GPUX__SCRATCH_REDUCE_A, (size_t)n_out * sizeof *a);
    if (!a) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    int64_t lo; uint64_t hi;
    int_limits(dt, &lo, &hi);
    uint64_t init = acc == ACC_PROD ? 1 : 0;
    if (acc == ACC_MAX) init = (uint64_t)lo ^ (flip ? UINT64_C(1) << 63 : 0);
    if (acc == ACC_MIN) init = flip ? (uint64_t)(int64_t)hi ^ (UINT64_C(1) << 63) : hi;
    for (int64_t o = 0; o < n_out; o++) a[o] = init;
    rc = reduce_fold(k, &g, vt, acc, vals, a, NULL, n_in);
    for (int64_t o = 0; rc == 0 && o < n_out; o++) {
      uint64_t v = a[o] ^ (flip ? UINT64_C(1) << 63 : 0);
      double fv = gpux__dtype_is_unsigned_int(dt) ? (double)v : (double)(int64_t)v;
      switch (op) {
      case R_MEAN: gpux__store_f64(dt, y->data, o, fv / (double)n_red); break;
      case R_L2: gpux__store_f64(dt, y->data, o, sqrt((double)v)); break;
      case R_LOGSUM: gpux__store_f64(dt, y->data, o, log(fv)); break;
      default: gpux__store_i64(dt, y->data, o, (int64_t)v); break;
      }
    }
  } else {
    double *a = gpux__scratch(GPUX__SCRATCH_REDUCE_A, (size_t)n_out * sizeof *a * (op == R_LOGSUMEXP ? 2 : 1));
    if (!a) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    double *mx = NULL;
    for (int64_t o = 0; o < n_out; o++) a[o] = identity_f(acc);
    rc = reduce_fold(k, &g, vt, acc, vals, a, NULL, n_in);
    if (rc == 0 && op == R_LOGSUMEXP) { /* a = max; then sum exp(v - max) */
      mx = a + n_out;
      memcpy(mx, a, (size_t)n_out * sizeof *a);
      for (int64_t o = 0; o < n_out; o++) a[o] = 0;
      double *sh = gpux__scratch(GPUX__SCRATCH_REDUCE_B, (size_t)n_out * sizeof *sh);
      if (!sh) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
      for (int64_t o = 0; o < n_out; o++) sh[o] = isfinite(mx[o]) ? mx[o] : 0;
      rc = reduce_fold(k, &g, vt, ACC_EXP, vals, a, sh, n_in);
    }
    if (rc == 0) {
      if (dt == GPUX_DT_FLOAT) {
        float *yf = y->data;
        for (int64_t o = 0; o < n_out; o++) yf[o] = (float)finish_f(op, a[o], n_red, mx ? mx[o] : 0);
      } else {
        for (int64_t o = 0; o < n_out; o++)
          gpux__store_f64(dt, y->data, o, finish_f(op, a[o], n_red, mx ? mx[o] : 0));
      }
    }
  }
  return rc;
}

static int op_reduce_sum(gpux__kctx *k) { return reduce_run(k, R_SUM); }
static int op_reduce_mean(gpux__kctx *k) { return reduce_run(k, R_MEAN); }
static int op_reduce_max(gpux__kctx *k) { return reduce_run(k, R_MAX); }
static int op_reduce_min(gpux__kctx *k) { return reduce_run(k, R_MIN); }
static int op_reduce_prod(gpux__kctx *k) { return reduce_run(k, R_PROD); }
static int op_reduce_l1(gpux__kctx *k) { return reduce_run(k, R_L1); }
static int op_reduce_l2(gpux__kctx *k) { return reduce_run(k, R_L2); }
static int op_reduce_log_sum(gpux__kctx *k) { return reduce_run(k, R_LOGSUM); }
static int op_reduce_log_sum_exp(gpux__kctx *k) { return reduce_run(k, R_LOGSUMEXP); }
static int op_reduce_sum_square(gpux__kctx *k) { return reduce_run(k, R_SUMSQ); }

/* ---- shared helpers for single-axis ops ---- */

/* Splits dims around `axis`: outer = prod(dims[:axis]), n = dims[axis], inner = prod(dims[axis+1:]). */
static void split_axis(const gpux_tensor *t, int axis, int64_t *outer, int64_t *n, int64_t *inner) {
  *outer = gpux__shape_count(axis, t->dims);
  *n = t->ndim ? t->dims[axis] : 1;
  *inner = t->ndim ? gpux__shape_count(t->ndim - axis - 1, t->dims + axis + 1) : 1;
}

static int check_numeric(gpux__kctx *k, const gpux_tensor *x) {
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input 0 must be a tensor");
  if (!is_int_dtype(x->dtype) && !gpux__dtype_is_float(x->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s input not supported", gpux_dtype_name(x->dtype));
  return 0;
}

/* ---- ArgMax / ArgMin ---- */

typedef struct {
  const gpux_tensor *x;
  int64_t *y;                 /* [outer, inner] */
  int64_t n, inner;
  int want_max, last, is_int, is_u64;
} arg_ctx;

/* 1 when value a beats the best so far b (NaN beats numbers, like numpy). */
static inline int arg_better_f(double a, double b, int want_max, int last) {
  if (isnan(b)) return 0;
  if (isnan(a)) return 1;
  if (a == b) return last;
  return want_max ? a > b : a < b;
}

static void arg_range(void *ctx, int64_t b, int64_t e) {
  const arg_ctx *c = ctx;
  int dt = c->x->dtype;
  const void *xd = c->x->data;
  for (int64_t r = b; r < e; r++) {
    int64_t o = r / c->inner, i = r % c->inner, base = o * c->n * c->inner + i, best = 0;
    if (dt == GPUX_DT_FLOAT) {
      const float *x = (const float *)xd + base;
      float bv = x[0];
      for (int64_t j = 1; j < c->n; j++) {
        float v = x[j * c->inner];
        if (arg_better_f(v, bv, c->want_max, c->last)) { bv = v; best = j; }
      }
    } else if (c->is_int) {
      uint64_t flip = c->is_u64 ? 0 : UINT64_C(1) << 63;
      uint64_t bv = (uint64_t)gpux__load_i64(dt, xd, base) ^ flip;
      for (int64_t j = 1; j < c->n; j++) {
        uint64_t v = (uint64_t)gpux__load_i64(dt, xd, base + j * c->inner) ^ flip;
        int better = v == bv ? c->last : c->want_max ? v > bv : v < bv;
        if (better) { bv = v; best = j; }
      }
    } else {
      double bv = gpux__load_f64(dt, xd, base);
      for (int64_t j = 1; j < c->n; j++) {
        double v = gpux__load_f64(dt, xd, base + j * c->inner);
        if (arg_better_f(v, bv, c->want_max, c->last)) { bv = v; best = j; }
      }
    }
    c->y[r] = best;
  }
}

static int arg_run(gpux__kctx *k, int want_max) {
  const gpux_tensor *x = IN(0);
  if (check_numeric(k, x)) return k->status;
  int axis;
  if (gpux__axis(k, gpux__attr_int(k, "axis", 0), x->ndim, &axis)) return k->status;
  int keepdims = gpux__attr_int(k, "keepdims", 1) != 0;
  int last = gpux__attr_int(k, "select_last_index", 0) != 0;
  int64_t odims[GPUX_MAX_DIMS];
  int on = 0;
  for (int d = 0; d < x->ndim; d++) {
    if (d != axis) odims[on++] = x->dims[d];
    else if (keepdims) odims[on++] = 1;
  }
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_INT64, on, odims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  arg_ctx c = {.x = x, .y = y->data, .want_max = want_max, .last = last,
               .is_int = is_int_dtype(x->dtype), .is_u64 = gpux__dtype_is_unsigned_int(x->dtype)};
  int64_t outer;
  split_axis(x, axis, &outer, &c.n, &c.inner);
  if (gpux_tensor_count(y) == 0) return 0;
  if (c.n == 0) return gpux__kerr(k, GPUX_E_SHAPE, "ArgMax/ArgMin over an empty axis");
  int64_t rows = outer * c.inner;
  gpux__parallel_for(rows, GPUX__MAX(1, PAR_MIN_WORK / c.n), arg_range, &c);
  return 0;
}

static int op_argmax(gpux__kctx *k) { return arg_run(k, 1); }
static int op_argmin(gpux__kctx *k) { return arg_run(k, 0); }

/* ---- CumSum / CumProd ---- */

typedef struct {
  const gpux_tensor *x;
  gpux_tensor *y;
  int64_t n, inner;
  int prod, exclusive, reverse, mode; /* mode: VAL_F32, VAL_F64 or VAL_U64 */
} scan_ctx;

enum { SCAN_BLOCK = 256 };

/* Scans outer slices [b, e): each is [n, inner], scanned along n for a block of inner at once. */
static void scan_range(void *ctx, int64_t b, int64_t e) {
  const scan_ctx *c = ctx;
  int64_t n = c->n, inner = c->inner;
  int dt = c->x->dtype;
  double af[SCAN_BLOCK];    /* running values of the block */
  uint64_t au[SCAN_BLOCK];
  for (int64_t o = b; o < e; o++) {
    for (int64_t i0 = 0; i0 < inner; i0 += SCAN_BLOCK) {
      int64_t bn = GPUX__MIN(SCAN_BLOCK, inner - i0);
      for (int64_t i = 0; i < bn; i++) {
        af[i] = c->prod ? 1 : 0;
        au[i] = c->prod ? 1 : 0;
      }
      for (int64_t t = 0; t < n; t++) {
        int64_t j = c->reverse ? n - 1 - t : t, base = (o * n + j) * inner + i0;
        if (c->mode == VAL_F32) {
          const float *x = (const float *)c->x->data + base;
          float *y = (float *)c->y->data + base;
          for (int64_t i = 0; i < bn; i++) {
            double prev = af[i];
            af[i] = c->prod ? af[i] * x[i] : af[i] + x[i];
            y[i] = (float)(c->exclusive ? prev : af[i]);
          }
        } else if (c->mode == VAL_U64) {
          for (int64_t i = 0; i < bn; i++) {
            uint64_t prev = au[i], v = (uint64_t)gpux__load_i64(dt, c->x->data, base + i);
            au[i] = c->prod ? au[i] * v : au[i] + v;
            gpux__store_i64(dt, c->y->data, base + i, (int64_t)(c->exclusive ? prev : au[i]));
          }
        } else {
          for (int64_t i = 0; i < bn; i++) {
            double prev = af[i], v = gpux__load_f64(dt, c->x->data, base + i);
            af[i] = c->prod ? af[i] * v : af[i] + v;
            gpux__store_f64(dt, c->y->data, base + i, c->exclusive ? prev : af[i]);
          }
        }
      }
    }
  }
}

static int scan_run(gpux__kctx *k, int prod) {
  const gpux_tensor *x = IN(0), *ax = IN(1);
  if (check_numeric(k, x)) return k->status;
  if (x->dtype == GPUX_DT_BOOL) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "bool input not supported");
  if (!ax) return gpux__kerr(k, GPUX_E_INVALID, "missing axis input");
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (ax->dtype != GPUX_DT_INT32 && ax->dtype != GPUX_DT_INT64)
    return gpux__kerr(k, GPUX_E_DTYPE, "axis must be int32 or int64");
  int64_t av;
  int na = gpux__read_ints(k, ax, &av, 1);
  if (na < 0) return na;
  if (na != 1) return gpux__kerr(k, GPUX_E_SHAPE, "axis must hold one value");
  if (x->ndim == 0) return gpux__kerr(k, GPUX_E_SHAPE, "input must have rank >= 1");
  int axis;
  if (gpux__axis(k, av, x->ndim, &axis)) return k->status;
  scan_ctx c = {.x = x, .y = y, .prod = prod,
                .exclusive = gpux__attr_int(k, "exclusive", 0) != 0,
                .reverse = gpux__attr_int(k, "reverse", 0) != 0};
  c.mode = x->dtype == GPUX_DT_FLOAT ? VAL_F32 : is_int_dtype(x->dtype) ? VAL_U64 : VAL_F64;
  int64_t outer;
  split_axis(x, axis, &outer, &c.n, &c.inner);
  if (gpux_tensor_count(x) == 0) return 0;
  gpux__parallel_for(outer, GPUX__MAX(1, PAR_MIN_WORK / (c.n * c.inner)), scan_range, &c);
  return 0;
}

static int op_cumsum(gpux__kctx *k) { return scan_run(k, 0); }
static int op_cumprod(gpux__kctx *k) { return scan_run(k, 1); }

/* ---- TopK ---- */

typedef struct {
  union { double f; uint64_t u; } v;   /* the value: float, or integer biased for unsigned order */
  int64_t i;                           /* its index along the axis */
} topk_item;

typedef struct {
  const gpux_tensor *x;
  gpux_tensor *vals, *idx;
  int64_t n, inner, kk;
  int largest, is_int;
  size_t esz;
  int64_t rows, tasks;       /* rows (outer * inner) shared out as `tasks` equal runs */
  topk_item *heaps;          /* [tasks, kk] */
} topk_ctx;

/* 1 when a ranks before b: larger (or smaller) value first, NaN as the largest, lower index on ties. */
static inline int topk_before(const topk_ctx *c, const topk_item *a, const topk_item *b) {
  if (c->is_int) {
    if (a->v.u != b->v.u) return c->largest ? a->v.u > b->v.u : a->v.u < b->v.u;
  } else {
    int an = isnan(a->v.f), bn = isnan(b->v.f);
    if (an || bn) {
      if (an && bn) return a->i < b->i;
      return c->largest ? an : bn;
    }
    if (a->v.f != b->v.f) return c->largest ? a->v.f > b->v.f : a->v.f < b->v.f;
  }
  return a->i < b->i;
}

/* Restores the heap (root = the item ranked last among those kept) below position p. */
static void topk_sift(const topk_ctx *c, topk_item *h, int64_t n, int64_t p) {
  for (;;) {
    int64_t l = 2 * p + 1, r = l + 1, w = p;
    if (l < n && topk_before(c, &h[w], &h[l])) w = l;
    if (r < n && topk_before(c, &h[w], &h[r])) w = r;
    if (w == p) return;
    topk_item t = h[p];
    h[p] = h[w];
    h[w] = t;
    p = w;
  }
}

/* Selects rows [b, e) with heap h [kk]. */
static void topk_rows(const topk_ctx *c, topk_item *h, int64_t b, int64_t e) {
  int dt = c->x->dtype;
  uint64_t flip = gpux__dtype_is_signed_int(dt) ? UINT64_C(1) << 63 : 0;
  for (int64_t r = b; r < e; r++) {
    int64_t o = r / c->inner, in = r % c->inner, base = o * c->n * c->inner + in;
    int64_t cnt = 0;
    for (int64_t j = 0; j < c->n; j++) {
      topk_item it = {.i = j};
      int64_t at = base + j * c->inner;
      if (dt == GPUX_DT_FLOAT) it.v.f = ((const float *)c->x->data)[at];
      else if (c->is_int) it.v.u = (uint64_t)gpux__load_i64(dt, c->x->data, at) ^ flip;
      else it.v.f = gpux__load_f64(dt, c->x->data, at);
      if (cnt < c->kk) { /* fill, then heapify once full */
        h[cnt++] = it;
        if (cnt == c->kk)
          for (int64_t p = cnt / 2 - 1; p >= 0; p--) topk_sift(c, h, cnt, p);
      } else if (topk_before(c, &it, &h[0])) {
        h[0] = it;
        topk_sift(c, h, cnt, 0);
      }
    }
    /* heap-sort the kept items: pop the last-ranked to the end */
    if (cnt < c->kk) /* kk == n, not yet heapified */
      for (int64_t p = cnt / 2 - 1; p >= 0; p--) topk_sift(c, h, cnt, p);
    for (int64_t m = cnt - 1; m > 0; m--) {
      topk_item t = h[0];
      h[0] = h[m];
      h[m] = t;
      topk_sift(c, h, m, 0);
    }
    for (int64_t t = 0; t < cnt; t++) {
      int64_t out_at = (o * c->kk + t) * c->inner + in;
      memcpy((char *)c->vals->data + out_at * c->esz,
             (const char *)c->x->data + (base + h[t].i * c->inner) * c->esz, c->esz);
      ((int64_t *)c->idx->data)[out_at] = h[t].i;
    }
  }
}

static void topk_range(void *ctx, int64_t b, int64_t e) {
  const topk_ctx *c = ctx;
  for (int64_t t = b; t < e; t++)
    topk_rows(c, c->heaps + t * c->kk, t * c->rows / c->tasks, (t + 1) * c->rows / c->tasks);
}

static int op_topk(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (check_numeric(k, x)) return k->status;
  if (x->ndim == 0) return gpux__kerr(k, GPUX_E_SHAPE, "input must have rank >= 1");
  int axis;
  if (gpux__axis(k, gpux__attr_int(k, "axis", -1), x->ndim, &axis)) return k->status;
  int64_t kk;
  if (k->opset < 10 && !IN(1)) {
    if (!gpux__has_attr(k, "k")) return gpux__kerr(k, GPUX_E_INVALID, "missing attribute k");
    kk = gpux__attr_int(k, "k", 0);
  } else {
    if (!IN(1)) return gpux__kerr(k, GPUX_E_INVALID, "missing input K");
    if (gpux__need_data(k, 1)) return k->status;
    int n = gpux__read_ints(k, IN(1), &kk, 1);
    if (n < 0) return n;
    if (n != 1) return gpux__kerr(k, GPUX_E_SHAPE, "K must hold one value");
  }
  if (kk < 0 || kk > x->dims[axis])
    return gpux__kerr(k, GPUX_E_INVALID, "K = %lld out of range for axis of size %lld",
                      (long long)kk, (long long)x->dims[axis]);
  int64_t odims[GPUX_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) odims[d] = d == axis ? kk : x->dims[d];
  gpux_tensor *vals = gpux__out(k, 0, x->dtype, x->ndim, odims);
  if (!vals) return k->status;
  gpux_tensor *idx = gpux__out(k, 1, GPUX_DT_INT64, x->ndim, odims);
  if (!idx) return k->status;
  if (k->shape_only) return 0;
  topk_ctx c = {.x = x, .vals = vals, .idx = idx, .kk = kk,
                .largest = gpux__attr_int(k, "largest", 1) != 0, .is_int = is_int_dtype(x->dtype),
                .esz = gpux_dtype_size(x->dtype)};
  int64_t outer;
  split_axis(x, axis, &outer, &c.n, &c.inner);
  if (kk == 0 || gpux_tensor_count(vals) == 0) return 0;
  c.rows = outer * c.inner;
  c.tasks = c.rows * c.n < PAR_MIN_WORK ? 1 : GPUX__MIN(c.rows, 4 * gpux__thread_count());
  c.heaps = gpux__malloc((size_t)(c.tasks * kk) * sizeof *c.heaps);
  if (!c.heaps) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  gpux__parallel_for(c.tasks, 1, topk_range, &c);
  free(c.heaps);
  return 0;
}

const gpux__op_def gpux__ops_reduce[] = {
  {"", "ReduceSum", op_reduce_sum, 1, 0},
  {"", "ReduceMean", op_reduce_mean, 1, 0},
  {"", "ReduceMax", op_reduce_max, 1, 0},
  {"", "ReduceMin", op_reduce_min, 1, 0},
  {"", "ReduceProd", op_reduce_prod, 1, 0},
  {"", "ReduceL1", op_reduce_l1, 1, 0},
  {"", "ReduceL2", op_reduce_l2, 1, 0},
  {"", "ReduceLogSum", op_reduce_log_sum, 1, 0},
  {"", "ReduceLogSumExp", op_reduce_log_sum_exp, 1, 0},
  {"", "ReduceSumSquare", op_reduce_sum_square, 1, 0},
  {"", "ArgMax", op_argmax, 1, 0},
  {"", "ArgMin", op_argmin, 1, 0},
  {"", "CumSum", op_cumsum, 1, 0},
  {"", "CumProd", op_cumprod, 1, 0},
  {"", "TopK", op_topk, 1, 0},
  {0},
};
