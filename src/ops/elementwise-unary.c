/* elementwise-unary.c — the unary math ops of the 'elementwise' family (Sqrt, Exp, Log, Erf,
 * Tanh, Sigmoid, trigonometry, rounding, IsNaN/IsInf, Not, BitwiseNot, ...). One kernel,
 * gpux__ew_unary, serves them all and picks the op from the node's op_type; elementwise.c
 * registers it. float32 runs typed loops in parallel; other floating types go through double;
 * integer ops (Abs, Neg, Sign, BitwiseNot) work exactly in int64 with wrapping. */
#include "ops/op.h"
#include <math.h>

int gpux__ew_unary(gpux_kctx *k);

enum {
  U_SQRT, U_EXP, U_LOG, U_ERF, U_TANH, U_SIGMOID, U_ABS, U_NEG, U_RECIPROCAL, U_FLOOR, U_CEIL,
  U_ROUND, U_SIGN, U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH, U_ACOSH,
  U_ATANH, U_ISNAN, U_ISINF, U_NOT, U_BITNOT
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
  {"BitwiseNot", U_BITNOT, T_INT, 0},
};

typedef struct {
  int op;
  const gpux_tensor *x;
  gpux_tensor *y;
  int detect_neg, detect_pos;   /* IsInf */
} unary_ctx;

/* The hot loop: float32 in, float32 (or bool) out, over [begin, end). */
#define MAP_F32(EXPR) \
  for (int64_t i = begin; i < end; i++) { const float v = x[i]; y[i] = (EXPR); } break
#define MAP_BOOL(EXPR) \
  for (int64_t i = begin; i < end; i++) { const float v = x[i]; yb[i] = (EXPR); } break

static void unary_f32_range(void *p, int64_t begin, int64_t end) {
  const unary_ctx *c = p;
  const float *x = c->x->data;
  float *y = c->y->data;
  uint8_t *yb = c->y->data;
  switch (c->op) {
  case U_SQRT: MAP_F32(sqrtf(v));
  case U_EXP: MAP_F32(expf(v));
  case U_LOG: MAP_F32(logf(v));
  case U_ERF: MAP_F32(erff(v));
  case U_TANH: MAP_F32(tanhf(v));
  case U_SIGMOID: MAP_F32(1.0f / (1.0f + expf(-v)));
  case U_ABS: MAP_F32(fabsf(v));
  case U_NEG: MAP_F32(-v);
  case U_RECIPROCAL: MAP_F32(1.0f / v);
  case U_FLOOR: MAP_F32(floorf(v));
  case U_CEIL: MAP_F32(ceilf(v));
  case U_ROUND: MAP_F32(nearbyintf(v)); /* ties to even under the default rounding mode */
  case U_SIGN: MAP_F32(v > 0 ? 1.0f : v < 0 ? -1.0f : v);
  case U_SIN: MAP_F32(sinf(v));
  case U_COS: MAP_F32(cosf(v));
  case U_TAN: MAP_F32(tanf(v));
  case U_ASIN: MAP_F32(asinf(v));
  case U_ACOS: MAP_F32(acosf(v));
  case U_ATAN: MAP_F32(atanf(v));
  case U_SINH: MAP_F32(sinhf(v));
  case U_COSH: MAP_F32(coshf(v));
  case U_ASINH: MAP_F32(asinhf(v));
  case U_ACOSH: MAP_F32(acoshf(v));
  case U_ATANH: MAP_F32(atanhf(v));
  case U_ISNAN: MAP_BOOL(v != v);
  case U_ISINF: MAP_BOOL(isinf(v) && (v > 0 ? c->detect_pos : c->detect_neg));
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

int gpux__ew_unary(gpux_kctx *k) {
  const char *op_type = k->node ? k->node->op_type : NULL;
  int u = -1;
  for (size_t i = 0; op_type && i < GPUX__ARRAY_LEN(unary_ops); i++)
    if (!strcmp(unary_ops[i].name, op_type)) u = (int)i;
  if (u < 0) return gpux__kerr(k, GPUX_E_INTERNAL, "not a unary op");
  const gpux_tensor *x = IN(0);
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input 0 must be a tensor");
  int dt = x->dtype;
  int kind = dt == GPUX_DT_BOOL ? T_BOOL
             : gpux__dtype_is_float(dt) ? T_FLOAT
             : gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt) ? T_INT : 0;
  if (!(kind & unary_ops[u].types))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s is not supported", gpux_dtype_name(dt));
  gpux_tensor *y = gpux__out(k, 0, unary_ops[u].out_bool ? GPUX_DT_BOOL : dt, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  unary_ctx c = {unary_ops[u].op, x, y, 1, 1};
  if (c.op == U_ISINF) {
    c.detect_neg = gpux__attr_int(k, "detect_negative", 1) != 0;
    c.detect_pos = gpux__attr_int(k, "detect_positive", 1) != 0;
  }
  int64_t n = gpux_tensor_count(x);
  if (kind == T_FLOAT && dt == GPUX_DT_FLOAT)
    gpux__parallel_for(n, 16384, unary_f32_range, &c);
  else if (kind == T_FLOAT)
    gpux__parallel_for(n, 4096, unary_float_range, &c);
  else
    gpux__parallel_for(n, 8192, unary_int_range, &c);
  return 0;
}
