/* elementwise-unary.c — the unary math ops of the 'elementwise' family (Sqrt, Exp, Log, Erf,
 * Tanh, Sigmoid, trigonometry, rounding, IsNaN/IsInf, Not, BitwiseNot, ...) and the two
 * activations built on exp/erf/tanh (Gelu, Swish). One kernel, gpux__ew_unary, serves them all
 * and picks the op from the node's op_type; elementwise.c and activation.c register it.
 *
 * float32 runs in parallel over blocks of 8 elements that the compiler turns into SIMD code at
 * -O2; Exp, Log, Sigmoid, Tanh, Erf, Gelu and Swish use the branch-free exp/log/tanh/erf of fastmath.h (within
 * 3 ulp of the correctly rounded result) because libm's scalar tanhf/erff are ~25x slower than
 * memory. Other floating types go through double and libm; integer ops (Abs, Neg, Sign,
 * BitwiseNot) work exactly in int64 with wrapping. */
#include "ops/op.h"
#include "ops/simd.h"
#include "ops/fastmath.h"
#include <math.h>

int gpux__ew_unary(gpux__kctx *k);

enum {
  U_SQRT, U_EXP, U_LOG, U_ERF, U_TANH, U_SIGMOID, U_ABS, U_NEG, U_RECIPROCAL, U_FLOOR, U_CEIL,
  U_ROUND, U_SIGN, U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH, U_ACOSH,
  U_ATANH, U_ISNAN, U_ISINF, U_NOT, U_BITNOT, U_GELU, U_GELU_TANH, U_SWISH
};

enum { T_FLOAT = 1, T_INT = 2, T_BOOL = 4 };

static const struct {
  const char *name;
  int op;
  int types;      /* accepted input kinds */
  int out_bool;   /* output is bool */
} unary_ops[] = {
  {"Sqrt", U_SQRT, T_FLOAT, 0},       {"Exp", U_EXP, T_FLOAT, 0},
  {"Log", U_LOG, T_FLOAT, 0},         {"Erf", U_ERF, T_FLOAT, 0},
  {"Tanh", U_TANH, T_FLOAT, 0},       {"Sigmoid", U_SIGMOID, T_FLOAT, 0},
  {"Abs", U_ABS, T_FLOAT | T_INT, 0}, {"Neg", U_NEG, T_FLOAT | T_INT, 0},
  {"Reciprocal", U_RECIPROCAL, T_FLOAT, 0},
  {"Floor", U_FLOOR, T_FLOAT, 0},     {"Ceil", U_CEIL, T_FLOAT, 0},
  {"Round", U_ROUND, T_FLOAT, 0},     {"Sign", U_SIGN, T_FLOAT | T_INT, 0},
  {"Sin", U_SIN, T_FLOAT, 0},         {"Cos", U_COS, T_FLOAT, 0},
  {"Tan", U_TAN, T_FLOAT, 0},         {"Asin", U_ASIN, T_FLOAT, 0},
  {"Acos", U_ACOS, T_FLOAT, 0},       {"Atan", U_ATAN, T_FLOAT, 0},
  {"Sinh", U_SINH, T_FLOAT, 0},       {"Cosh", U_COSH, T_FLOAT, 0},
  {"Asinh", U_ASINH, T_FLOAT, 0},     {"Acosh", U_ACOSH, T_FLOAT, 0},
  {"Atanh", U_ATANH, T_FLOAT, 0},     {"IsNaN", U_ISNAN, T_FLOAT, 1},
  {"IsInf", U_ISINF, T_FLOAT, 1},     {"Not", U_NOT, T_BOOL, 1},
  {"BitwiseNot", U_BITNOT, T_INT, 0}, {"Gelu", U_GELU, T_FLOAT, 0},
  {"Swish", U_SWISH, T_FLOAT, 0},
};

typedef struct {
  int op;
  const gpux_tensor *x;
  gpux_tensor *y;
  int detect_neg, detect_pos;   /* IsInf */
  float alpha;                  /* Swish */
} unary_ctx;

/* The hot loops: one function per op, n float32 elements in blocks of 8 (which GCC turns into
 * SIMD code at -O2; the restrict parameters let it), then the tail. */
#define DEF_MAP(NAME, T_OUT, EXPR)                                                        \
  GPUX_SIMD_CLONES static void NAME(T_OUT *restrict y, const float *restrict x, int64_t n,       \
                              const unary_ctx *c) {                                      \
    (void)c;                                                                              \
    int64_t i = 0;                                                                        \
    for (; i + 8 <= n; i += 8)                                                            \
      for (int j = 0; j < 8; j++) { const float v = x[i + j]; y[i + j] = (EXPR); }        \
    for (; i < n; i++) { const float v = x[i]; y[i] = (EXPR); }                           \
  }

DEF_MAP(map_sqrt, float, sqrtf(v))
DEF_MAP(map_exp, float, exp_f(v))
DEF_MAP(map_log, float, log_f(v))
DEF_MAP(map_erf, float, erf_f(v))
DEF_MAP(map_tanh, float, tanh_f(v))
DEF_MAP(map_sigmoid, float, 1.0f / (1.0f + exp_f(-v)))
DEF_MAP(map_abs, float, fabsf(v))
DEF_MAP(map_neg, float, -v)
DEF_MAP(map_reciprocal, float, 1.0f / v)
DEF_MAP(map_floor, float, floorf(v))
DEF_MAP(map_ceil, float, ceilf(v))
DEF_MAP(map_round, float, nearbyintf(v)) /* ties to even under the default rounding mode */
DEF_MAP(map_sign, float, v > 0 ? 1.0f : v < 0 ? -1.0f : v)
DEF_MAP(map_sin, float, sinf(v))
DEF_MAP(map_cos, float, cosf(v))
DEF_MAP(map_tan, float, tanf(v))
DEF_MAP(map_asin, float, asinf(v))
DEF_MAP(map_acos, float, acosf(v))
DEF_MAP(map_atan, float, atanf(v))
DEF_MAP(map_sinh, float, sinhf(v))
DEF_MAP(map_cosh, float, coshf(v))
DEF_MAP(map_asinh, float, asinhf(v))
DEF_MAP(map_acosh, float, acoshf(v))
DEF_MAP(map_atanh, float, atanhf(v))
DEF_MAP(map_isnan, uint8_t, v != v)
DEF_MAP(map_isinf, uint8_t, ((v == INFINITY) & c->detect_pos) | ((v == -INFINITY) & c->detect_neg))
DEF_MAP(map_gelu, float, gelu_f(v))
DEF_MAP(map_gelu_tanh, float, gelu_tanh_f(v))
DEF_MAP(map_swish, float, v / (1.0f + exp_f(-c->alpha * v)))

static void unary_f32_range(void *p, int64_t begin, int64_t end) {
  const unary_ctx *c = p;
  const int64_t n = end - begin;
  const float *x = (const float *)c->x->data + begin;
  float *y = (float *)c->y->data + begin;
  uint8_t *yb = (uint8_t *)c->y->data + begin;
  switch (c->op) {
  case U_SQRT: map_sqrt(y, x, n, c); break;
  case U_EXP: map_exp(y, x, n, c); break;
  case U_LOG: map_log(y, x, n, c); break;
  case U_ERF: map_erf(y, x, n, c); break;
  case U_TANH: map_tanh(y, x, n, c); break;
  case U_SIGMOID: map_sigmoid(y, x, n, c); break;
  case U_ABS: map_abs(y, x, n, c); break;
  case U_NEG: map_neg(y, x, n, c); break;
  case U_RECIPROCAL: map_reciprocal(y, x, n, c); break;
  case U_FLOOR: map_floor(y, x, n, c); break;
  case U_CEIL: map_ceil(y, x, n, c); break;
  case U_ROUND: map_round(y, x, n, c); break;
  case U_SIGN: map_sign(y, x, n, c); break;
  case U_SIN: map_sin(y, x, n, c); break;
  case U_COS: map_cos(y, x, n, c); break;
  case U_TAN: map_tan(y, x, n, c); break;
  case U_ASIN: map_asin(y, x, n, c); break;
  case U_ACOS: map_acos(y, x, n, c); break;
  case U_ATAN: map_atan(y, x, n, c); break;
  case U_SINH: map_sinh(y, x, n, c); break;
  case U_COSH: map_cosh(y, x, n, c); break;
  case U_ASINH: map_asinh(y, x, n, c); break;
  case U_ACOSH: map_acosh(y, x, n, c); break;
  case U_ATANH: map_atanh(y, x, n, c); break;
  case U_ISNAN: map_isnan(yb, x, n, c); break;
  case U_ISINF: map_isinf(yb, x, n, c); break;
  case U_GELU: map_gelu(y, x, n, c); break;
  case U_GELU_TANH: map_gelu_tanh(y, x, n, c); break;
  case U_SWISH: map_swish(y, x, n, c); break;
  }
}

static double unary_f64(const unary_ctx *c, double v) {
  switch (c->op) {
  case U_SQRT: return sqrt(v);
  case U_EXP: return exp(v);
  case U_LOG: return log(v);
  case U_ERF: return erf(v);
  case U_TANH: return tanh(v);
  case U_SIGMOID: return 1.0 / (1.0 + exp(-v));
  case U_ABS: return fabs(v);
  case U_NEG: return -v;
  case U_RECIPROCAL: return 1.0 / v;
  case U_FLOOR: return floor(v);
  case U_CEIL: return ceil(v);
  case U_ROUND: return nearbyint(v);
  case U_SIGN: return v > 0 ? 1.0 : v < 0 ? -1.0 : v;
  case U_SIN: return sin(v);
  case U_COS: return cos(v);
  case U_TAN: return tan(v);
  case U_ASIN: return asin(v);
  case U_ACOS: return acos(v);
  case U_ATAN: return atan(v);
  case U_SINH: return sinh(v);
  case U_COSH: return cosh(v);
  case U_ASINH: return asinh(v);
  case U_ACOSH: return acosh(v);
  case U_ATANH: return atanh(v);
  case U_ISNAN: return v != v;
  case U_ISINF: return isinf(v) && (v > 0 ? c->detect_pos : c->detect_neg);
  case U_GELU: return 0.5 * v * erfc(-v * M_SQRT1_2);
  case U_GELU_TANH: return 0.5 * v * (1.0 + tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
  case U_SWISH: return v / (1.0 + exp(-c->alpha * v));
  }
  return NAN;
}

/* Other floating types, through double. */
static void unary_float_range(void *p, int64_t begin, int64_t end) {
  const unary_ctx *c = p;
  int xdt = c->x->dtype, ydt = c->y->dtype;
  for (int64_t i = begin; i < end; i++)
    gpux__store_f64(ydt, c->y->data, i, unary_f64(c, gpux__load_f64(xdt, c->x->data, i)));
}

/* Integer and bool types, exact through int64 with wrapping. */
static void unary_int_range(void *p, int64_t begin, int64_t end) {
  const unary_ctx *c = p;
  int xdt = c->x->dtype, ydt = c->y->dtype, uns = gpux__dtype_is_unsigned_int(xdt);
  for (int64_t i = begin; i < end; i++) {
    int64_t v = gpux__load_i64(xdt, c->x->data, i), r = 0;
    uint64_t uv = (uint64_t)v;
    switch (c->op) {
    case U_ABS: r = uns || v >= 0 ? v : (int64_t)(0 - uv); break;
    case U_NEG: r = (int64_t)(0 - uv); break;
    case U_SIGN: r = uns ? uv != 0 : (v > 0) - (v < 0); break;
    case U_NOT: r = !v; break;
    case U_BITNOT: r = (int64_t)~uv; break;
    }
    gpux__store_i64(ydt, c->y->data, i, r);
  }
}

int gpux__ew_unary(gpux__kctx *k) {
  const char *op_type = k->node ? k->node->op_type : NULL;
  int u = -1;
  for (size_t i = 0; op_type && u < 0 && i < GPUX__ARRAY_LEN(unary_ops); i++)
    if (unary_ops[i].name[0] == op_type[0] && !strcmp(unary_ops[i].name, op_type)) u = (int)i;
  if (u < 0) return gpux__kerr(k, GPUX_E_INTERNAL, "not a unary op");
  const gpux_tensor *x = IN(0);
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input 0 must be a tensor");
  int dt = x->dtype;
  int kind = dt == GPUX_DT_BOOL ? T_BOOL
             : gpux__dtype_is_float(dt) ? T_FLOAT
             : gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt) ? T_INT : 0;
  if (!(kind & unary_ops[u].types))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s is not supported", gpux_dtype_name(dt));
  unary_ctx c = {unary_ops[u].op, x, NULL, 1, 1, 1.0f};
  if (c.op == U_ISINF) {
    c.detect_neg = gpux__attr_int(k, "detect_negative", 1) != 0;
    c.detect_pos = gpux__attr_int(k, "detect_positive", 1) != 0;
  } else if (c.op == U_SWISH) {
    c.alpha = gpux__attr_float(k, "alpha", 1.0f);
  } else if (c.op == U_GELU) {
    const char *approx = gpux__attr_string(k, "approximate", "none");
    if (!strcmp(approx, "tanh")) c.op = U_GELU_TANH;
    else if (strcmp(approx, "none"))
      return gpux__kerr(k, GPUX_E_UNSUPPORTED, "approximate must be 'none' or 'tanh', got '%s'", approx);
  }
  gpux_tensor *y = gpux__out_raw(k, 0, unary_ops[u].out_bool ? GPUX_DT_BOOL : dt, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  c.y = y;
  int64_t n = gpux_tensor_count(x);
  if (kind == T_FLOAT && dt == GPUX_DT_FLOAT)
    gpux__parallel_for(n, 16384, unary_f32_range, &c);
  else if (kind == T_FLOAT)
    gpux__parallel_for(n, 4096, unary_float_range, &c);
  else
    gpux__parallel_for(n, 8192, unary_int_range, &c);
  return 0;
}
