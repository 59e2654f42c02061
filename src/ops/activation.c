/* activation.c — operator family 'activation': Relu, LeakyRelu, PRelu, Elu, Selu, Celu, Gelu,
 * Clip, HardSigmoid, HardSwish, Softplus, Softsign, Mish, Swish, ThresholdedRelu, Shrink.
 * Gelu and Swish run in the unary kernel of elementwise-unary.c, next to the fast exp/erf/tanh
 * they use. float32 runs typed loops in parallel (the hot path); other floating types go through
 * double; integer inputs (Relu, PRelu, Clip) are exact in int64, Shrink on integers goes through
 * double. */
#include "ops/op.h"
#include "ops/simd.h"
#include <float.h>
#include <math.h>

/* The unary kernel of elementwise-unary.c (Gelu, Swish). */
int gpux__ew_unary(gpux__kctx *k);

enum {
  A_RELU, A_LEAKY, A_ELU, A_SELU, A_CELU, A_HARDSIGMOID, A_HARDSWISH, A_SOFTPLUS, A_SOFTSIGN,
  A_MISH, A_THRESHOLDED, A_SHRINK
};

typedef struct {
  int op;
  float alpha, beta, gamma;   /* per op: slope, offset, scale (see read_params) */
  const gpux_tensor *x;
  gpux_tensor *y;
} act_ctx;

/* max(0, min(1, t)), NaN kept as numpy's clip does */
static inline float clamp01(float t) { return t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t; }

static inline float softplus_f(float v) { return v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v)); }

/* The hot loops: one function per op over n float32 elements, in blocks of 8 that GCC
 * vectorizes where the expression allows (the restrict parameters let it), then the tail. */
#define DEF_MAP(NAME, EXPR)                                                                \
  GPUX_SIMD_CLONES static void NAME(float *restrict y, const float *restrict x, int64_t n,     \
                              const act_ctx *c) {                                        \
    const float alpha = c->alpha, beta = c->beta, gamma = c->gamma;                        \
    (void)alpha, (void)beta, (void)gamma;                                                  \
    int64_t i = 0;                                                                         \
    for (; i + 8 <= n; i += 8)                                                             \
      for (int j = 0; j < 8; j++) { const float v = x[i + j]; y[i + j] = (EXPR); }         \
    for (; i < n; i++) { const float v = x[i]; y[i] = (EXPR); }                            \
  }

DEF_MAP(map_relu, v < 0.0f ? 0.0f : v)
DEF_MAP(map_leaky, v < 0.0f ? alpha * v : v)
DEF_MAP(map_elu, v < 0.0f ? alpha * expm1f(v) : v)
DEF_MAP(map_selu, v <= 0.0f ? gamma * alpha * expm1f(v) : gamma * v)
DEF_MAP(map_celu, v > 0.0f ? v : alpha * expm1f(v / alpha))
DEF_MAP(map_hardsigmoid, clamp01(alpha * v + beta))
DEF_MAP(map_hardswish, v * clamp01(v * (1.0f / 6.0f) + 0.5f))
DEF_MAP(map_softplus, softplus_f(v))
DEF_MAP(map_softsign, v / (1.0f + fabsf(v)))
DEF_MAP(map_mish, v * tanhf(softplus_f(v)))
DEF_MAP(map_thresholded, v > alpha ? v : 0.0f)
DEF_MAP(map_shrink, v < -alpha ? v + beta : v > alpha ? v - beta : 0.0f)

static void act_f32_range(void *p, int64_t begin, int64_t end) {
  const act_ctx *c = p;
  const float *x = (const float *)c->x->data + begin;
  float *y = (float *)c->y->data + begin;
  int64_t n = end - begin;
  switch (c->op) {
  case A_RELU: map_relu(y, x, n, c); break;
  case A_LEAKY: map_leaky(y, x, n, c); break;
  case A_ELU: map_elu(y, x, n, c); break;
  case A_SELU: map_selu(y, x, n, c); break;
  case A_CELU: map_celu(y, x, n, c); break;
  case A_HARDSIGMOID: map_hardsigmoid(y, x, n, c); break;
  case A_HARDSWISH: map_hardswish(y, x, n, c); break;
  case A_SOFTPLUS: map_softplus(y, x, n, c); break;
  case A_SOFTSIGN: map_softsign(y, x, n, c); break;
  case A_MISH: map_mish(y, x, n, c); break;
  case A_THRESHOLDED: map_thresholded(y, x, n, c); break;
  case A_SHRINK: map_shrink(y, x, n, c); break;
  }
}

static double clamp01_d(double t) { return t < 0 ? 0 : t > 1 ? 1 : t; }

static double softplus_d(double v) { return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v)); }

static double act_f64(const act_ctx *c, double v) {
  const double alpha = c->alpha, beta = c->beta, gamma = c->gamma;
  switch (c->op) {
  case A_RELU: return v < 0 ? 0 : v;
  case A_LEAKY: return v < 0 ? alpha * v : v;
  case A_ELU: return v < 0 ? alpha * expm1(v) : v;
  case A_SELU: return v <= 0 ? gamma * alpha * expm1(v) : gamma * v;
  case A_CELU: return v > 0 ? v : alpha * expm1(v / alpha);
  case A_HARDSIGMOID: return clamp01_d(alpha * v + beta);
  case A_HARDSWISH: return v * clamp01_d(v / 6.0 + 0.5);
  case A_SOFTPLUS: return softplus_d(v);
  case A_SOFTSIGN: return v / (1.0 + fabs(v));
  case A_MISH: return v * tanh(softplus_d(v));
  case A_THRESHOLDED: return v > alpha ? v : 0;
  case A_SHRINK: return v < -alpha ? v + beta : v > alpha ? v - beta : 0;
  }
  return NAN;
}

static void act_float_range(void *p, int64_t begin, int64_t end) {
  const act_ctx *c = p;
  int xdt = c->x->dtype, ydt = c->y->dtype;
  for (int64_t i = begin; i < end; i++)
    gpux__store_f64(ydt, c->y->data, i, act_f64(c, gpux__load_f64(xdt, c->x->data, i)));
}

/* Relu on integers: exact. */
static void relu_int_range(void *p, int64_t begin, int64_t end) {
  const act_ctx *c = p;
  int dt = c->x->dtype;
  for (int64_t i = begin; i < end; i++) {
    int64_t v = gpux__load_i64(dt, c->x->data, i);
    gpux__store_i64(dt, c->y->data, i, v < 0 ? 0 : v);
  }
}

static int is_int(int dt) { return gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt); }

static int check_x(gpux__kctx *k, int allow_int) {
  const gpux_tensor *x = IN(0);
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input 0 must be a tensor");
  if (gpux__dtype_is_float(x->dtype) || (allow_int && is_int(x->dtype) && x->dtype != GPUX_DT_BOOL))
    return 0;
  return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s is not supported", gpux_dtype_name(x->dtype));
}

static int act_run(gpux__kctx *k, int op) {
  int allow_int = op == A_RELU || op == A_SHRINK;
  int rc = check_x(k, allow_int);
  if (rc) return rc;
  const gpux_tensor *x = IN(0);
  act_ctx c = {op, 0, 0, 0, x, NULL};
  switch (op) {
  case A_LEAKY: c.alpha = gpux__attr_float(k, "alpha", 0.01f); break;
  case A_ELU: case A_CELU: case A_THRESHOLDED:
    c.alpha = gpux__attr_float(k, "alpha", 1.0f);
    break;
  case A_SELU:
    c.alpha = gpux__attr_float(k, "alpha", 1.67326319217681884765625f);
    c.gamma = gpux__attr_float(k, "gamma", 1.05070102214813232421875f);
    break;
  case A_HARDSIGMOID:
    c.alpha = gpux__attr_float(k, "alpha", 0.2f);
    c.beta = gpux__attr_float(k, "beta", 0.5f);
    break;
  case A_SHRINK: /* alpha = lambd, beta = bias */
    c.alpha = gpux__attr_float(k, "lambd", 0.5f);
    c.beta = gpux__attr_float(k, "bias", 0.0f);
    break;
  }
  if (op == A_CELU && c.alpha == 0) return gpux__kerr(k, GPUX_E_INVALID, "alpha must not be 0");
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  c.y = y;
  int64_t n = gpux_tensor_count(x);
  /* the pool's work an element is: the maps of a few vector operations as a float32 Mul's,
   * those through exp, log or tanh four times that, element by element through double eight */
  double e = gpux__elem_units();
  int heavy = op == A_ELU || op == A_SELU || op == A_CELU || op == A_SOFTPLUS || op == A_MISH;
  if (x->dtype == GPUX_DT_FLOAT)
    gpux__parallel_for_elems(n, heavy ? 4 * e : e, 16, act_f32_range, &c);
  else if (op == A_RELU && is_int(x->dtype))
    gpux__parallel_for_elems(n, 4 * e, 16, relu_int_range, &c);
  else
    gpux__parallel_for_elems(n, 8 * e, 16, act_float_range, &c);
  return 0;
}

static int op_relu(gpux__kctx *k) { return act_run(k, A_RELU); }
static int op_leaky_relu(gpux__kctx *k) { return act_run(k, A_LEAKY); }
static int op_elu(gpux__kctx *k) { return act_run(k, A_ELU); }
static int op_selu(gpux__kctx *k) { return act_run(k, A_SELU); }
static int op_celu(gpux__kctx *k) { return act_run(k, A_CELU); }
static int op_hard_sigmoid(gpux__kctx *k) { return act_run(k, A_HARDSIGMOID); }
static int op_hard_swish(gpux__kctx *k) { return act_run(k, A_HARDSWISH); }
static int op_softplus(gpux__kctx *k) { return act_run(k, A_SOFTPLUS); }
static int op_softsign(gpux__kctx *k) { return act_run(k, A_SOFTSIGN); }
static int op_mish(gpux__kctx *k) { return act_run(k, A_MISH); }
static int op_thresholded_relu(gpux__kctx *k) { return act_run(k, A_THRESHOLDED); }
static int op_shrink(gpux__kctx *k) { return act_run(k, A_SHRINK); }

/* ---- PRelu: y = x < 0 ? slope * x : x, slope broadcast onto x ---- */

typedef struct {
  const gpux_tensor *x, *slope;
  gpux_tensor *y;
  int ndim;                       /* rank of x (at least 1) */
  int64_t dims[GPUX_MAX_DIMS];    /* shape of x */
  int64_t sst[GPUX_MAX_DIMS];     /* slope strides against x's dimensions, 0 where broadcast */
  int64_t inner;                  /* x's innermost dimension: one row */
} prelu_ctx;

/* One row of float32, the slope advancing by s_in (0 or 1); vectorized in blocks of 8. */
GPUX_SIMD_CLONES static void prelu_f32(float *restrict y, const float *restrict x,
                                  const float *restrict s, int64_t s_in, int64_t n) {
  int64_t i = 0;
  if (s_in) {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) y[i + j] = x[i + j] < 0 ? s[i + j] * x[i + j] : x[i + j];
    for (; i < n; i++) y[i] = x[i] < 0 ? s[i] * x[i] : x[i];
  } else {
    const float s0 = s[0];
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) y[i + j] = x[i + j] < 0 ? s0 * x[i + j] : x[i + j];
    for (; i < n; i++) y[i] = x[i] < 0 ? s0 * x[i] : x[i];
  }
}

/* Rows [begin, end) of x's innermost dimension. */
static void prelu_rows(void *p, int64_t begin, int64_t end) {
  const prelu_ctx *c = p;
  int nd = c->ndim, dt = c->x->dtype;
  int64_t inner = c->inner, s_in = c->sst[nd - 1];
  for (int64_t r = begin; r < end; r++) {
    int64_t so = 0, rem = r; /* the slope offset of this row */
    for (int d = nd - 2; d >= 0; d--) {
      so += (rem % c->dims[d]) * c->sst[d];
      rem /= c->dims[d];
    }
    int64_t o = r * inner;
    if (dt == GPUX_DT_FLOAT) {
      prelu_f32((float *)c->y->data + o, (const float *)c->x->data + o,
                (const float *)c->slope->data + so, s_in, inner);
    } else if (is_int(dt)) {
      for (int64_t i = 0; i < inner; i++) {
        int64_t v = gpux__load_i64(dt, c->x->data, o + i);
        int64_t s = gpux__load_i64(dt, c->slope->data, so + i * s_in);
        gpux__store_i64(dt, c->y->data, o + i, v < 0 ? (int64_t)((uint64_t)v * (uint64_t)s) : v);
      }
    } else {
      for (int64_t i = 0; i < inner; i++) {
        double v = gpux__load_f64(dt, c->x->data, o + i);
        double s = gpux__load_f64(dt, c->slope->data, so + i * s_in);
        gpux__store_f64(dt, c->y->data, o + i, v < 0 ? s * v : v);
      }
    }
  }
}

static int op_prelu(gpux__kctx *k) {
  int rc = check_x(k, 1);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *slope = IN(1);
  if (!slope || slope->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "slope is missing");
  if (slope->dtype != x->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "slope is %s but X is %s", gpux_dtype_name(slope->dtype),
                      gpux_dtype_name(x->dtype));
  int ndim;
  int64_t dims[GPUX_MAX_DIMS];
  if ((rc = gpux__broadcast_shape(x->ndim, x->dims, slope->ndim, slope->dims, &ndim, dims)))
    return gpux__kerr(k, rc, "%s", gpux_last_error());
  if (ndim != x->ndim || memcmp(dims, x->dims, sizeof(int64_t) * (size_t)ndim))
    return gpux__kerr(k, GPUX_E_SHAPE, "slope does not broadcast to the shape of X");
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  prelu_ctx c = {x, slope, y, x->ndim ? x->ndim : 1, {1}, {0}, 1};
  if (x->ndim) {
    int64_t sstr[GPUX_MAX_DIMS];
    gpux__strides(slope->ndim, slope->dims, sstr);
    for (int d = 0; d < x->ndim; d++) {
      int sd = d - (x->ndim - slope->ndim);
      c.dims[d] = x->dims[d];
      c.sst[d] = sd < 0 || slope->dims[sd] == 1 ? 0 : sstr[sd];
    }
    c.inner = x->dims[x->ndim - 1];
  }
  int64_t rows = c.inner ? gpux_tensor_count(x) / c.inner : 0;
  gpux__parallel_for(rows, GPUX__MAX(1, 16384 / GPUX__MAX(c.inner, 1)), prelu_rows, &c);
  return 0;
}

/* ---- Clip: min/max attributes before opset 11, optional scalar inputs from 11 ---- */

typedef struct {
  const gpux_tensor *x;
  gpux_tensor *y;
  double lo, hi;              /* floating bounds */
  int64_t ilo, ihi;           /* integer bounds */
  int has_lo, has_hi;
} clip_ctx;

/* The hot loop (Relu6 in many CNNs), vectorized in blocks of 8. NaN stays NaN. */
GPUX_SIMD_CLONES static void clip_f32(float *restrict y, const float *restrict x, int64_t n, float lo,
                                 float hi) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) {
      float v = x[i + j] < lo ? lo : x[i + j];
      y[i + j] = v > hi ? hi : v;
    }
  for (; i < n; i++) {
    float v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  }
}

static void clip_range(void *p, int64_t begin, int64_t end) {
  const clip_ctx *c = p;
  int dt = c->x->dtype;
  if (dt == GPUX_DT_FLOAT) {
    clip_f32((float *)c->y->data + begin, (const float *)c->x->data + begin, end - begin,
             c->has_lo ? (float)c->lo : -INFINITY, c->has_hi ? (float)c->hi : INFINITY);
  } else if (is_int(dt)) {
    int uns = gpux__dtype_is_unsigned_int(dt);
    for (int64_t i = begin; i < end; i++) {
      int64_t v = gpux__load_i64(dt, c->x->data, i);
      if (c->has_lo && (uns ? (uint64_t)v < (uint64_t)c->ilo : v < c->ilo)) v = c->ilo;
      if (c->has_hi && (uns ? (uint64_t)v > (uint64_t)c->ihi : v > c->ihi)) v = c->ihi;
      gpux__store_i64(dt, c->y->data, i, v);
    }
  } else {
    for (int64_t i = begin; i < end; i++) {
      double v = gpux__load_f64(dt, c->x->data, i);
      if (c->has_lo && v < c->lo) v = c->lo;
      if (c->has_hi && v > c->hi) v = c->hi;
      gpux__store_f64(dt, c->y->data, i, v);
    }
  }
}

static int clip_bound(gpux__kctx *k, int i, int *has, double *f, int64_t *iv) {
  const gpux_tensor *t = IN(i);
  if (!t) return 0;
  if (t->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input %d must be a tensor", i);
  if (t->dtype != IN(0)->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "input %d is %s but X is %s", i, gpux_dtype_name(t->dtype),
                      gpux_dtype_name(IN(0)->dtype));
  int64_t n = gpux_tensor_count(t);
  if (n == 0) return 0; /* an empty bound is no bound */
  if (n != 1)
    return gpux__kerr(k, GPUX_E_SHAPE, "input %d must be a scalar, has %lld elements", i,
                      (long long)n);
  if (!t->data) return 0; /* shape inference only */
  *has = 1;
  *f = gpux__load_f64(t->dtype, t->data, 0);
  *iv = gpux__load_i64(t->dtype, t->data, 0);
  return 0;
}

static int op_clip(gpux__kctx *k) {
  int rc = check_x(k, 1);
  if (rc) return rc;
  const gpux_tensor *x = IN(0);
  clip_ctx c = {x, NULL, 0, 0, 0, 0, 0, 0};
  if (k->opset < 11) {
    c.has_lo = gpux__has_attr(k, "min");
    c.has_hi = gpux__has_attr(k, "max");
    c.lo = gpux__attr_float(k, "min", -FLT_MAX);
    c.hi = gpux__attr_float(k, "max", FLT_MAX);
    c.ilo = (int64_t)fmax(c.lo, -9.2e18);
    c.ihi = (int64_t)fmin(c.hi, 9.2e18);
  } else if ((rc = clip_bound(k, 1, &c.has_lo, &c.lo, &c.ilo)) ||
             (rc = clip_bound(k, 2, &c.has_hi, &c.hi, &c.ihi))) {
    return rc;
  }
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  c.y = y;
  gpux__parallel_for_elems(gpux_tensor_count(x), gpux__elem_units(), 16, clip_range, &c);
  return 0;
}

const gpux__op_def gpux__ops_activation[] = {
  {"", "Relu", op_relu, 0, 0},
  {"", "LeakyRelu", op_leaky_relu, 0, 0},
  {"", "PRelu", op_prelu, 0, 0},
  {"", "Elu", op_elu, 0, 0},
  {"", "Selu", op_selu, 0, 0},
  {"", "Celu", op_celu, 0, 0},
  {"", "Gelu", gpux__ew_unary, 0, 0},
  {"", "Clip", op_clip, 0, 0},
  {"", "HardSigmoid", op_hard_sigmoid, 0, 0},
  {"", "HardSwish", op_hard_swish, 0, 0},
  {"", "Softplus", op_softplus, 0, 0},
  {"", "Softsign", op_softsign, 0, 0},
  {"", "Mish", op_mish, 0, 0},
  {"", "Swish", gpux__ew_unary, 0, 0},
  {"", "ThresholdedRelu", op_thresholded_relu, 0, 0},
  {"", "Shrink", op_shrink, 0, 0},
  {0},
};
