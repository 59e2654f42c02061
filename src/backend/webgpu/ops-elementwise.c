/* ops-elementwise.c — WGSL kernels for elementwise ops: unary math and activations, binary and
 * variadic arithmetic with numpy broadcasting, Clip, PRelu, Where, and the no-copy ones
 * (Identity, Dropout at inference, Cast float->float). One generator serves them all: the
 * expression over a0, a1, ... is baked into a shader with the shapes as constants; dimensions
 * that are contiguous in every input are merged so that the index math stays short. */
#include "backend/webgpu/wg.h"
#include <math.h>
#include <stdio.h>

/* Helper functions a kernel expression may call (included when named in the expression). */
static const struct {
  const char *name, *text;
} helpers[] = {
  {"gx_erf",
   "fn gx_erf(x: f32) -> f32 {\n"
   "  let a = abs(x);\n"
   "  if (a < 0.5) {\n"
   "    let x2 = x * x;\n"
   "    return x * (1.1283791670955126 + x2 * (-0.37612638903183754 + x2 * (0.11283791670955126 + x2 * (-0.026866170645131252\n"
   "      + x2 * (0.005223977625442188 + x2 * (-0.0008548327023450852 + x2 * 0.00012055332981789664))))));\n"
   "  }\n"
   "  let t = 1.0 / (1.0 + 0.5 * a);\n"
   "  let y = t * exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806\n"
   "    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));\n"
   "  return select(1.0 - y, y - 1.0, x < 0.0);\n"
   "}\n"},
  {"gx_pow",
   "fn gx_pow(a: f32, b: f32) -> f32 {\n"
   "  if (b == 0.0) { return 1.0; }\n"
   "  if (a == 0.0) { return select(0.0, gx_inf(), b < 0.0); }\n"
   "  if (b == 1.0) { return a; }\n"
   "  if (b == 2.0) { return a * a; }\n"
   "  let r = exp2(b * log2(abs(a)));\n"
   "  if (a > 0.0) { return r; }\n"
   "  if (floor(b) != b) { return gx_nan(); }\n"
   "  let odd = abs(b) < 16777216.0 && (i32(abs(b)) & 1) == 1;\n"
   "  return select(r, -r, odd);\n"
   "}\n"},
  {"gx_tanh",
   "fn gx_tanh(x: f32) -> f32 {\n"
   "  let a = abs(x);\n"
   "  if (a < 0.55) {\n"
   "    let x2 = x * x;\n"
   "    return x * (1.0 + x2 * (-0.33333334 + x2 * (0.13333334 + x2 * (-0.053968254 + x2 * (0.021869488 + x2 * -0.008863236)))));\n"
   "  }\n"
   "  let e = exp(-2.0 * min(a, 15.0));\n"
   "  let t = (1.0 - e) / (1.0 + e);\n"
   "  return select(t, -t, x < 0.0);\n"
   "}\n"},
  /* GPUs' log and exp are only accurate to ~2^-21 absolute near 1 and 0 (Vulkan's precision
   * rules): small arguments take the series */
  {"gx_log1p", "fn gx_log1p(y: f32) -> f32 {\n  if (abs(y) < 0.015) { return y * (1.0 + y * (-0.5 + y * (0.33333334 + y * (-0.25 + y * 0.2)))); }\n"
               "  return log(1.0 + y);\n}\n"},
  {"gx_expm1", "fn gx_expm1(x: f32) -> f32 {\n  if (abs(x) < 0.015) { return x * (1.0 + x * (0.5 + x * (0.16666667 + x * (0.041666668 + x * 0.008333334)))); }\n"
               "  return exp(x) - 1.0;\n}\n"},
  {"gx_softplus", "fn gx_softplus(x: f32) -> f32 { return max(x, 0.0) + gx_log1p(exp(-abs(x))); }\n"},
  {"gx_sigmoid", "fn gx_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }\n"},
  {"gx_fmod", "fn gx_fmod(a: f32, b: f32) -> f32 { return a - b * trunc(a / b); }\n"},
  {"gx_imod", "fn gx_imod(a: i32, b: i32) -> i32 {\n  if (b == 0) { return 0; }\n  let r = a % b;\n"
              "  return select(r, r + b, r != 0 && ((r < 0) != (b < 0)));\n}\n"},
};

void gpux__wg_math_helpers(wg_str *s, const char *expr) {
  int want[GPUX__ARRAY_LEN(helpers)] = {0};
  for (size_t h = 0; h < GPUX__ARRAY_LEN(helpers); h++)
    if (strstr(expr, helpers[h].name)) want[h] = 1;
  /* helpers may call helpers listed before them */
  for (size_t h = GPUX__ARRAY_LEN(helpers); h-- > 0;)
    if (want[h])
      for (size_t q = 0; q < h; q++)
        if (strstr(helpers[h].text, helpers[q].name)) want[q] = 1;
  for (size_t h = 0; h < GPUX__ARRAY_LEN(helpers); h++)
    if (want[h]) gpux__wg_cat(s, "%s", helpers[h].text);
}

void gpux__wg_strides(const gpux_tensor *t, int64_t *strides) {
  int64_t st = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    strides[d] = st;
    st *= t->dims[d];
  }
}

/* Numpy broadcasting strides of an input against the output shape (0 where broadcast). */
void gpux__wg_bcast_strides(const gpux_tensor *in, const gpux_tensor *out, int64_t *strides) {
  int r = out->ndim, ri = in->ndim;
  int64_t st = 1;
  for (int d = r - 1; d >= 0; d--) {
    int di = d - (r - ri);
    if (di < 0) { strides[d] = 0; continue; }
    strides[d] = in->dims[di] == 1 && out->dims[d] != 1 ? 0 : st;
    st *= in->dims[di];
  }
}

/* Emits out[i] = expr(a0, a1, ...) (see wg_ew in wg.h). */
int gpux__wg_ew2(wg_build *b, const wg_ew *e) {
  const gpux_tensor *out = gpux__wg_out(b, e->out);
  if (!out) return gpux__wg_decline(b, "output %d is not used", e->out);
  int n = e->n;
  if (n > 8) return gpux__wg_decline(b, "more than 8 inputs");
  int r = e->view_ndim ? e->view_ndim : out->ndim;
  int64_t dims[GPUX_MAX_DIMS], st[8][GPUX_MAX_DIMS];
  for (int d = 0; d < r; d++) dims[d] = e->view_ndim ? e->view_dims[d] : out->dims[d];
  for (int k = 0; k < n; k++) {
    const gpux_tensor *t = gpux__wg_in(b, e->in[k]);
    if (!t) return gpux__wg_decline(b, "input %d is missing", e->in[k]);
    if (e->custom) memcpy(st[k], e->strides[k], sizeof st[k]);
    else {
      if (t->ndim > r) return gpux__wg_decline(b, "input rank above output rank");
      gpux__wg_bcast_strides(t, out, st[k]);
    }
  }
  /* drop size-1 dims, merge dims contiguous in every input */
  int m = 0;
  for (int d = 0; d < r; d++) {
    if (dims[d] == 1) continue;
    if (m > 0) {
      int merge = 1;
      for (int k = 0; k < n && merge; k++) merge = st[k][m - 1] == st[k][d] * dims[d];
      if (merge) {
        dims[m - 1] *= dims[d];
        for (int k = 0; k < n; k++) st[k][m - 1] = st[k][d];
        continue;
      }
    }
    dims[m] = dims[d];
    for (int k = 0; k < n; k++) st[k][m] = st[k][d];
    m++;
  }
  int64_t total = gpux_tensor_count(out);
  if (total > 0x7fffffffLL) return gpux__wg_decline(b, "more than 2^31 elements");
  int bind_in[8];
  for (int k = 0; k < n; k++) {
    bind_in[k] = gpux__wg_bind_in(b, e->in[k], e->type[k]);
    if (bind_in[k] < 0) return GPUX_E_UNSUPPORTED;
  }
  int bo = gpux__wg_bind_out(b, e->out, e->out_type);
  if (bo < 0) return GPUX_E_UNSUPPORTED;
  int bf = e->overflow ? gpux__wg_overflow_flag(b) : -1;
  if (e->overflow && bf < 0) return GPUX_E_UNSUPPORTED;
  const char *narrow = e->out_type == WG_F32 ? gpux__wg_narrow_in_kernel(b, e->out) : NULL; /* float16 result */
  const int wg = 256;
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(total + wg - 1) / wg, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  gpux__wg_math_helpers(&s, e->expr);
  if (narrow) gpux__wg_cat(&s, "%s", gpux__wg_narrow_fns);
  gpux__wg_cat(&s, "@compute @workgroup_size(%d)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, "
                   "@builtin(local_invocation_index) li: u32) {\n"
                   "  let i = (wid.y * %uu + wid.x) * %du + li;\n  if (i >= %lluu) { return; }\n",
               wg, gx, wg, (unsigned long long)total);
  int need_coords = 0;
  for (int k = 0; k < n; k++) {
    int scalar = 1, same = 1;
    int64_t expect = 1;
    for (int d = m - 1; d >= 0; d--) {
      scalar &= st[k][d] == 0;
      same &= st[k][d] == expect;
      expect *= dims[d];
    }
    if (!scalar && !same) need_coords = 1;
  }
  if (need_coords) {
    gpux__wg_cat(&s, "  var r = i;\n");
    for (int d = m - 1; d >= 1; d--)
      gpux__wg_cat(&s, "  let c%d = i32(r %% %lluu); r = r / %lluu;\n", d, (unsigned long long)dims[d], (unsigned long long)dims[d]);
    if (m >= 1) gpux__wg_cat(&s, "  let c0 = i32(r);\n");
  }
  for (int k = 0; k < n; k++) {
    int scalar = 1, same = 1;
    int64_t expect = 1;
    for (int d = m - 1; d >= 0; d--) {
      scalar &= st[k][d] == 0;
      same &= st[k][d] == expect;
      expect *= dims[d];
    }
    int64_t base = e->custom ? e->base[k] : 0;
    gpux__wg_cat(&s, "  let a%d = b%d[", k, bind_in[k]);
    /* sizes as typed literals ("12i"), which pipelines reused across shapes take as parameters */
    if (scalar) gpux__wg_cat(&s, "%lldi", (long long)base);
    else if (same) gpux__wg_cat(&s, base ? "i + %lldu" : "i", (long long)base);
    else {
      gpux__wg_cat(&s, "u32(%lldi", (long long)base);
      for (int d = 0; d < m; d++)
        if (st[k][d]) gpux__wg_cat(&s, " + c%d * %lldi", d, (long long)st[k][d]);
      gpux__wg_cat(&s, ")");
    }
    gpux__wg_cat(&s, "];\n");
  }
  if (narrow) gpux__wg_cat(&s, "  b%d[i] = %s(%s);\n}\n", bo, narrow, e->expr);
  else if (e->overflow)
    gpux__wg_cat(&s, "  let v = %s;\n  if (%s) { b%d[0] = %d; }\n  b%d[i] = v;\n}\n", e->expr, e->overflow, bf,
                 gpux__wg_node_index(b) + 1, bo);
  else gpux__wg_cat(&s, "  b%d[i] = %s;\n}\n", bo, e->expr);
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

int gpux__wg_ew(wg_build *b, int n, const int *in, const int *types, const int64_t (*strides)[GPUX_MAX_DIMS],
                const char *expr, int out_idx) {
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = n;
  for (int k = 0; k < n && k < 8; k++) {
    e.in[k] = in[k];
    e.type[k] = types ? types[k] : WG_F32;
    if (strides) memcpy(e.strides[k], strides[k], sizeof e.strides[k]);
  }
  e.custom = strides != NULL;
  e.expr = expr;
  e.out = out_idx;
  e.out_type = WG_F32;
  return gpux__wg_ew2(b, &e);
}

static int unary(wg_build *b, const char *expr) {
  int in = 0;
  return gpux__wg_ew(b, 1, &in, NULL, NULL, expr, 0);
}

#define FLT(name, v) char name##_buf[48]; const char *name = gpux__wg_float(name##_buf, (v))

static float attr_f(wg_build *b, const char *name, float dflt) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), name);
  if (!a) return dflt;
  return a->type == GPUX_ATTR_INT ? (float)a->i : a->f;
}

static const char *attr_s(wg_build *b, const char *name, const char *dflt) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), name);
  return a && a->s ? a->s : dflt;
}

static int op_unary(wg_build *b) {
  const char *op = gpux__wg_node(b)->op_type;
  static const struct {
    const char *op, *expr;
  } simple[] = {
    {"Relu", "max(a0, 0.0)"},           {"Sigmoid", "gx_sigmoid(a0)"},
    {"Tanh", "gx_tanh(a0)"},            {"Erf", "gx_erf(a0)"},
    {"Exp", "exp(a0)"},                 {"Log", "log(a0)"},
    {"Sqrt", "sqrt(a0)"},               {"Abs", "abs(a0)"},
    {"Neg", "-a0"},                     {"Reciprocal", "1.0 / a0"},
    {"Floor", "floor(a0)"},             {"Ceil", "ceil(a0)"},
    {"Round", "round(a0)"},             {"Sign", "sign(a0)"},
    {"Sin", "sin(a0)"},                 {"Cos", "cos(a0)"},
    {"Tan", "tan(a0)"},                 {"Asin", "asin(a0)"},
    {"Acos", "acos(a0)"},               {"Atan", "atan(a0)"},
    {"Sinh", "sinh(a0)"},               {"Cosh", "cosh(a0)"},
    {"Asinh", "asinh(a0)"},             {"Acosh", "acosh(a0)"},
    {"Atanh", "atanh(a0)"},             {"Softplus", "gx_softplus(a0)"},
    {"Softsign", "a0 / (1.0 + abs(a0))"}, {"Mish", "a0 * gx_tanh(gx_softplus(a0))"},
  };
  for (size_t i = 0; i < GPUX__ARRAY_LEN(simple); i++)
    if (!strcmp(op, simple[i].op)) return unary(b, simple[i].expr);
  char expr[512];
  if (!strcmp(op, "LeakyRelu")) {
    FLT(al, attr_f(b, "alpha", 0.01f));
    snprintf(expr, sizeof expr, "select(a0, %s * a0, a0 < 0.0)", al);
  } else if (!strcmp(op, "Elu")) {
    FLT(al, attr_f(b, "alpha", 1.0f));
    snprintf(expr, sizeof expr, "select(a0, %s * gx_expm1(a0), a0 < 0.0)", al);
  } else if (!strcmp(op, "Selu")) {
    FLT(al, attr_f(b, "alpha", 1.67326319217681884765625f));
    FLT(ga, attr_f(b, "gamma", 1.05070102214813232421875f));
    snprintf(expr, sizeof expr, "select(%s * a0, %s * %s * gx_expm1(a0), a0 <= 0.0)", ga, ga, al);
  } else if (!strcmp(op, "Celu")) {
    float a = attr_f(b, "alpha", 1.0f);
    FLT(al, a);
    snprintf(expr, sizeof expr, "max(0.0, a0) + min(0.0, %s * gx_expm1(a0 / %s))", al, al);
  } else if (!strcmp(op, "ThresholdedRelu")) {
    FLT(al, attr_f(b, "alpha", 1.0f));
    snprintf(expr, sizeof expr, "select(0.0, a0, a0 > %s)", al);
  } else if (!strcmp(op, "HardSigmoid")) {
    FLT(al, attr_f(b, "alpha", 0.2f));
    FLT(be, attr_f(b, "beta", 0.5f));
    snprintf(expr, sizeof expr, "max(0.0, min(1.0, %s * a0 + %s))", al, be);
  } else if (!strcmp(op, "HardSwish")) {
    snprintf(expr, sizeof expr, "a0 * max(0.0, min(1.0, a0 * %s + 0.5))", "f32(0.16666667)");
  } else if (!strcmp(op, "Shrink")) {
    FLT(bi, attr_f(b, "bias", 0.0f));
    FLT(la, attr_f(b, "lambd", 0.5f));
    snprintf(expr, sizeof expr, "select(select(0.0, a0 - %s, a0 > %s), a0 + %s, a0 < -%s)", bi, la, bi, la);
  } else if (!strcmp(op, "Swish")) {
    FLT(al, attr_f(b, "alpha", 1.0f));
    snprintf(expr, sizeof expr, "a0 / (1.0 + exp(-%s * a0))", al);
  } else if (!strcmp(op, "Gelu")) {
    const char *ap = attr_s(b, "approximate", "none");
    if (!strcmp(ap, "tanh"))
      snprintf(expr, sizeof expr, "0.5 * a0 * (1.0 + gx_tanh(0.7978845608028654 * (a0 + 0.044715 * a0 * a0 * a0)))");
    else if (!strcmp(ap, "none"))
      snprintf(expr, sizeof expr, "0.5 * a0 * (1.0 + gx_erf(a0 * 0.7071067811865476))");
    else
      return gpux__wg_decline(b, "Gelu approximate='%s'", ap);
  } else {
    return gpux__wg_decline(b, "no WGSL kernel for %s", op);
  }
  return unary(b, expr);
}

/* one float type everywhere (all held as f32), or one integer type everywhere (held as i32:
 * int8/int16 sign-extended, uint8/uint16 zero-extended, int64 when it fits; *dtype says which) */
static int common_type(wg_build *b, int n, int *type, int *dtype) {
  int dt = -1;
  for (int k = 0; k < n; k++) {
    const gpux_tensor *t = gpux__wg_in(b, k);
    if (!t) return gpux__wg_decline(b, "input %d is missing", k);
    if (dt < 0) dt = t->dtype;
    else if (t->dtype != dt) return gpux__wg_decline(b, "mixed input types");
  }
  *dtype = dt;
  if (gpux__wg_is_f32(dt)) *type = WG_F32;
  else if (dt == GPUX_DT_INT32 || dt == GPUX_DT_INT64 || dt == GPUX_DT_INT8 || dt == GPUX_DT_INT16 ||
           dt == GPUX_DT_UINT8 || dt == GPUX_DT_UINT16) *type = WG_I32;
  else return gpux__wg_decline(b, "%s arithmetic (the GPU holds floats and integers of at most 32 bits)", gpux_dtype_name(dt));
  return 0;
}

/* An integer result computed in i32 (which wraps) brought to its type as the CPU stores it:
 * int8/int16 sign-extended from their width, uint8/uint16 masked; int32 and int64 as they are
 * (int64 results that leave i32 are caught by the overflow flag). */
static void wrap_int(char *out, size_t len, int dtype, const char *x) {
  switch (dtype) {
  case GPUX_DT_INT8: snprintf(out, len, "(((%s) << 24u) >> 24u)", x); break;
  case GPUX_DT_INT16: snprintf(out, len, "(((%s) << 16u) >> 16u)", x); break;
  case GPUX_DT_UINT8: snprintf(out, len, "((%s) & 255)", x); break;
  case GPUX_DT_UINT16: snprintf(out, len, "((%s) & 65535)", x); break;
  default: snprintf(out, len, "(%s)", x); break;
  }
}

static int int_bits(int dtype) {
  switch (dtype) {
  case GPUX_DT_INT8: case GPUX_DT_UINT8: return 8;
  case GPUX_DT_INT16: case GPUX_DT_UINT16: return 16;
  case GPUX_DT_INT64: return 64;
  default: return 32;
  }
}

static int ew_checked(wg_build *b, int n, int type, const char *expr, const char *overflow) {
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = n;
  for (int k = 0; k < n; k++) e.in[k] = k, e.type[k] = type;
  e.expr = expr;
  e.overflow = overflow;
  e.out = 0;
  e.out_type = type;
  return gpux__wg_ew2(b, &e);
}

static int ew_typed(wg_build *b, int n, int type, const char *expr) { return ew_checked(b, n, type, expr, NULL); }

#define I32_MIN "bitcast<i32>(0x80000000u)"

/* Add, Sub, Mul, Div, Mod on integers: exact as the CPU computes them (in int64, stored wrapped
 * to the type); int64 results that leave the i32 range set the overflow flag. */
static int int_binary(wg_build *b, const char *op, int dtype) {
  int i64 = dtype == GPUX_DT_INT64;
  const char *raw = NULL, *over = NULL;
  if (!strcmp(op, "Add")) raw = "a0 + a1", over = "((a0 ^ v) & (a1 ^ v)) < 0";
  else if (!strcmp(op, "Sub")) raw = "a0 - a1", over = "((a0 ^ a1) & (a0 ^ v)) < 0";
  else if (!strcmp(op, "Mul")) raw = "a0 * a1", over = "a0 != 0 && (v / a0 != a1 || (a0 == -1 && a1 == " I32_MIN "))";
  else if (!strcmp(op, "Div")) raw = "select(a0 / a1, 0, a1 == 0)", over = "a1 == -1 && a0 == " I32_MIN;
  else if (!strcmp(op, "Mod")) {
    const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), "fmod");
    raw = a && a->i ? "select(a0 % a1, 0, a1 == 0 || a1 == -1)" : "select(gx_imod(a0, a1), 0, a1 == -1)";
  }
  if (!raw) return gpux__wg_decline(b, "no WGSL kernel for %s on %s", op, gpux_dtype_name(dtype));
  char expr[256];
  wrap_int(expr, sizeof expr, dtype, raw);
  return ew_checked(b, 2, WG_I32, expr, i64 ? over : NULL);
}

static int op_binary(wg_build *b) {
  const char *op = gpux__wg_node(b)->op_type;
  if (gpux__wg_n_in(b) != 2) return gpux__wg_decline(b, "%s with %d inputs", op, gpux__wg_n_in(b));
  int type, dtype, rc = common_type(b, 2, &type, &dtype);
  if (rc) return rc;
  if (type == WG_I32) return int_binary(b, op, dtype);
  const char *expr = NULL;
  if (!strcmp(op, "Add")) expr = "a0 + a1";
  else if (!strcmp(op, "Sub")) expr = "a0 - a1";
  else if (!strcmp(op, "Mul")) expr = "a0 * a1";
  else if (!strcmp(op, "Div")) expr = "a0 / a1";
  else if (!strcmp(op, "Pow")) expr = "gx_pow(a0, a1)";
  else if (!strcmp(op, "PRelu")) expr = "select(a0, a0 * a1, a0 < 0.0)";
  else if (!strcmp(op, "Mod")) {
    const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), "fmod");
    if (!(a && a->i)) return gpux__wg_decline(b, "Mod with fmod=0 on floats");
    expr = "gx_fmod(a0, a1)";
  }
  if (!expr) return gpux__wg_decline(b, "no WGSL kernel for %s on floats", op);
  return ew_typed(b, 2, type, expr);
}

/* BitwiseAnd/Or/Xor, BitwiseNot and BitShift on integers held as i32: and, or, xor and not keep
 * sign- and zero-extension (not is masked back for unsigned types); shifts follow the CPU kernel
 * (a negative or too large count gives 0, or the sign for a right shift of a signed type). */
static int op_bitwise(wg_build *b) {
  const char *op = gpux__wg_node(b)->op_type;
  int unary = !strcmp(op, "BitwiseNot");
  int n = unary ? 1 : 2;
  if (gpux__wg_n_in(b) != n) return gpux__wg_decline(b, "%s with %d inputs", op, gpux__wg_n_in(b));
  int type, dtype, rc = common_type(b, n, &type, &dtype);
  if (rc) return rc;
  if (type != WG_I32) return gpux__wg_decline(b, "%s on %s", op, gpux_dtype_name(dtype));
  int uns = dtype == GPUX_DT_UINT8 || dtype == GPUX_DT_UINT16, bits = int_bits(dtype);
  char expr[512], sh[160];
  const char *over = NULL;
  if (unary) wrap_int(expr, sizeof expr, dtype, "~a0");
  else if (!strcmp(op, "BitwiseAnd")) snprintf(expr, sizeof expr, "a0 & a1");
  else if (!strcmp(op, "BitwiseOr")) snprintf(expr, sizeof expr, "a0 | a1");
  else if (!strcmp(op, "BitwiseXor")) snprintf(expr, sizeof expr, "a0 ^ a1");
  else {
    const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), "direction");
    const char *dir = a && a->s ? a->s : "";
    if (!strcmp(dir, "LEFT")) {
      if (bits == 64) {
        /* int64 held as i32: counts of 32 and more leave 0 or a value beyond i32 (the flag) */
        snprintf(expr, sizeof expr, "select(select(0, a0 << u32(a1), a1 < 32), 0, a1 < 0 || a1 >= 64)");
        over = "a1 >= 0 && a1 < 64 && select(countTrailingZeros(a0) < 64 - a1, (v >> u32(a1)) != a0, a1 < 32)";
      } else {
        wrap_int(sh, sizeof sh, dtype, "a0 << u32(a1)");
        snprintf(expr, sizeof expr, "select(%s, 0, a1 < 0 || a1 >= %d)", sh, bits);
      }
    } else if (!strcmp(dir, "RIGHT")) {
      if (uns) snprintf(expr, sizeof expr, "select(a0 >> u32(a1), 0, a1 >= %d)", bits);
      else snprintf(expr, sizeof expr, "select(a0 >> u32(min(a1, 31)), a0 >> 31u, a1 < 0)"); /* sign-extended: 31 is the sign */
    } else {
      return gpux__wg_decline(b, "BitShift direction '%s'", dir);
    }
  }
  return ew_checked(b, n, WG_I32, expr, over);
}

static int op_compare(wg_build *b) {
  const char *op = gpux__wg_node(b)->op_type;
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_in(b, 1);
  if (!x || !y || x->dtype != y->dtype) return gpux__wg_decline(b, "mixed input types");
  int type;
  if (gpux__wg_is_f32(x->dtype)) type = WG_F32;
  else if (x->dtype == GPUX_DT_INT32 || x->dtype == GPUX_DT_INT64 || x->dtype == GPUX_DT_BOOL || x->dtype == GPUX_DT_INT8 ||
           x->dtype == GPUX_DT_UINT8 || x->dtype == GPUX_DT_INT16 || x->dtype == GPUX_DT_UINT16) type = WG_I32;
  else return gpux__wg_decline(b, "%s on %s", op, gpux_dtype_name(x->dtype));
  const char *cmp = NULL;
  if (!strcmp(op, "Equal")) cmp = "a0 == a1";
  else if (!strcmp(op, "Less")) cmp = "a0 < a1";
  else if (!strcmp(op, "Greater")) cmp = "a0 > a1";
  else if (!strcmp(op, "LessOrEqual")) cmp = "a0 <= a1";
  else if (!strcmp(op, "GreaterOrEqual")) cmp = "a0 >= a1";
  else if (type == WG_I32 && !strcmp(op, "And")) cmp = "(a0 != 0) && (a1 != 0)";
  else if (type == WG_I32 && !strcmp(op, "Or")) cmp = "(a0 != 0) || (a1 != 0)";
  else if (type == WG_I32 && !strcmp(op, "Xor")) cmp = "(a0 != 0) != (a1 != 0)";
  if (!cmp) return gpux__wg_decline(b, "no WGSL kernel for %s", op);
  char expr[128];
  snprintf(expr, sizeof expr, "select(0, 1, %s)", cmp);
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = 2;
  e.in[1] = 1;
  e.type[0] = e.type[1] = type;
  e.expr = expr;
  e.out_type = WG_I32;
  return gpux__wg_ew2(b, &e);
}

static int op_not(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0);
  if (!x || x->dtype != GPUX_DT_BOOL) return gpux__wg_decline(b, "Not on non-bool");
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = 1;
  e.type[0] = WG_I32;
  e.expr = "select(1, 0, a0 != 0)";
  e.out_type = WG_I32;
  return gpux__wg_ew2(b, &e);
}

static int op_isnan_isinf(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0);
  if (!x || !gpux__wg_is_f32(x->dtype)) return gpux__wg_decline(b, "not a float");
  char expr[200];
  if (!strcmp(gpux__wg_node(b)->op_type, "IsNaN")) snprintf(expr, sizeof expr, "select(0, 1, (bitcast<u32>(a0) & 0x7fffffffu) > 0x7f800000u)");
  else {
    const gpux__attr *dn = gpux__node_attr(gpux__wg_node(b), "detect_negative"), *dp = gpux__node_attr(gpux__wg_node(b), "detect_positive");
    int neg = dn ? (int)dn->i : 1, pos = dp ? (int)dp->i : 1;
    snprintf(expr, sizeof expr, "select(0, 1, %s || %s)", pos ? "bitcast<u32>(a0) == 0x7f800000u" : "false",
             neg ? "bitcast<u32>(a0) == 0xff800000u" : "false");
  }
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = 1;
  e.expr = expr;
  e.out_type = WG_I32;
  return gpux__wg_ew2(b, &e);
}

static int op_variadic(wg_build *b) {
  const char *op = gpux__wg_node(b)->op_type;
  int n = gpux__wg_n_in(b), in[8];
  if (n < 1 || n > 8) return gpux__wg_decline(b, "%s with %d inputs", op, n);
  char expr[512] = "";
  size_t len = 0;
  int type, dtype, rc = common_type(b, n, &type, &dtype);
  if (rc) return rc;
  if (type == WG_I32 && !strcmp(op, "Mean")) return gpux__wg_decline(b, "Mean on integers");
  if (type == WG_I32 && !strcmp(op, "Sum") && n > 1 && dtype != GPUX_DT_INT32)
    return gpux__wg_decline(b, "Sum on %s", gpux_dtype_name(dtype)); /* Max and Min keep the type */
  for (int k = 0; k < n; k++) in[k] = k;
  if (!strcmp(op, "Sum") || !strcmp(op, "Mean")) {
    len += (size_t)snprintf(expr + len, sizeof expr - len, "(a0");
    for (int k = 1; k < n; k++) len += (size_t)snprintf(expr + len, sizeof expr - len, " + a%d", k);
    snprintf(expr + len, sizeof expr - len, !strcmp(op, "Mean") ? ") / %d.0" : ")", n);
  } else {
    const char *fn = !strcmp(op, "Max") ? "max" : "min";
    for (int k = 1; k < n; k++) len += (size_t)snprintf(expr + len, sizeof expr - len, "%s(", fn);
    len += (size_t)snprintf(expr + len, sizeof expr - len, "a0");
    for (int k = 1; k < n; k++) len += (size_t)snprintf(expr + len, sizeof expr - len, ", a%d)", k);
  }
  (void)in;
  return ew_typed(b, n, type, expr);
}

static int op_swiglu(wg_build *b) {
  const gpux_tensor *a = gpux__wg_in(b, 0), *c = gpux__wg_in(b, 1);
  if (!a || !c || a->ndim != c->ndim || gpux_tensor_count(a) != gpux_tensor_count(c)) return gpux__wg_decline(b, "A and B differ");
  char expr[128];
  FLT(al, attr_f(b, "alpha", 1.0f));
  snprintf(expr, sizeof expr, "a0 / (1.0 + exp(-%s * a0)) * a1", al);
  int in[2] = {0, 1};
  return gpux__wg_ew(b, 2, in, NULL, NULL, expr, 0);
}

static int op_clip(wg_build *b) {
  char expr[256];
  if (gpux__wg_opset(b) < 11) {
    FLT(lo, attr_f(b, "min", -INFINITY));
    FLT(hi, attr_f(b, "max", INFINITY));
    snprintf(expr, sizeof expr, "min(max(a0, %s), %s)", lo, hi);
    return unary(b, expr);
  }
  int in[3] = {0, 0, 0}, n = 1;
  char lo[64] = "", hi[64] = "";
  const gpux_tensor *x0 = gpux__wg_in(b, 0);
  if (!x0) return gpux__wg_decline(b, "missing input");
  /* integers (held as i32, any bound fits the type) compare exactly as i32 */
  int ity = x0->dtype == GPUX_DT_INT32 || x0->dtype == GPUX_DT_INT64 || x0->dtype == GPUX_DT_INT8 ||
            x0->dtype == GPUX_DT_INT16 || x0->dtype == GPUX_DT_UINT8 || x0->dtype == GPUX_DT_UINT16;
  if (!ity && !gpux__wg_is_f32(x0->dtype)) return gpux__wg_decline(b, "Clip on %s", gpux_dtype_name(x0->dtype));
  for (int k = 1; k <= 2; k++) {
    const gpux_tensor *t = gpux__wg_in(b, k);
    char *dst = k == 1 ? lo : hi;
    if (!t) continue;
    if (gpux_tensor_count(t) != 1) return gpux__wg_decline(b, "Clip bound with %lld values", (long long)gpux_tensor_count(t));
    if (t->dtype != x0->dtype) return gpux__wg_decline(b, "Clip bound of another type");
    if (ity && gpux__wg_is_const(b, k)) {
      int64_t v = gpux__load_i64(t->dtype, t->data, 0);
      if (v < INT32_MIN || v > INT32_MAX) return gpux__wg_decline(b, "Clip bound beyond 32 bits");
      snprintf(dst, 64, v == INT32_MIN ? I32_MIN : "%lld", (long long)v);
    } else if (gpux__wg_is_const(b, k) && gpux__wg_is_f32(t->dtype)) {
      char fb[48];
      snprintf(dst, 64, "%s", gpux__wg_float(fb, (float)gpux__load_f64(t->dtype, t->data, 0)));
    } else {
      in[n] = k;
      snprintf(dst, 64, "a%d", n);
      n++;
    }
  }
  if (lo[0] && hi[0]) snprintf(expr, sizeof expr, "min(max(a0, %s), %s)", lo, hi);
  else if (lo[0]) snprintf(expr, sizeof expr, "max(a0, %s)", lo);
  else if (hi[0]) snprintf(expr, sizeof expr, "min(a0, %s)", hi);
  else snprintf(expr, sizeof expr, "a0");
  /* bounds are scalars: read at index 0 */
  int64_t st[3][GPUX_MAX_DIMS];
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  gpux__wg_bcast_strides(x, y, st[0]);
  memset(st[1], 0, sizeof st[1]);
  memset(st[2], 0, sizeof st[2]);
  if (ity) {
    wg_ew e;
    memset(&e, 0, sizeof e);
    e.n = n;
    for (int k = 0; k < n; k++) e.in[k] = in[k], e.type[k] = WG_I32, memcpy(e.strides[k], st[k], sizeof e.strides[k]);
    e.custom = 1;
    e.expr = expr;
    e.out_type = WG_I32;
    return gpux__wg_ew2(b, &e);
  }
  return gpux__wg_ew(b, n, in, NULL, (const int64_t(*)[GPUX_MAX_DIMS])st, expr, 0);
}

static int op_where(wg_build *b) {
  const gpux_tensor *c = gpux__wg_in(b, 0), *x = gpux__wg_in(b, 1), *y = gpux__wg_in(b, 2);
  if (!c || c->dtype != GPUX_DT_BOOL) return gpux__wg_decline(b, "Where condition is not bool");
  if (!x || !y || x->dtype != y->dtype) return gpux__wg_decline(b, "mixed input types");
  int type = gpux__wg_is_f32(x->dtype) ? WG_F32 : WG_I32;
  if (type == WG_I32 && gpux__wg_held_type(x->dtype) != WG_I32) /* it selects: any integer held as i32 */
    return gpux__wg_decline(b, "Where on %s", gpux_dtype_name(x->dtype));
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = 3;
  e.in[1] = 1, e.in[2] = 2;
  e.type[0] = WG_I32, e.type[1] = e.type[2] = type;
  e.expr = "select(a2, a1, a0 != 0)";
  e.out_type = type;
  return gpux__wg_ew2(b, &e);
}

static int op_identity(wg_build *b) {
  if (!strcmp(gpux__wg_node(b)->op_type, "Dropout")) {
    if (gpux__wg_n_out(b) > 1 && gpux__wg_out(b, 1)) return gpux__wg_decline(b, "Dropout mask requested");
    const gpux_tensor *tm = gpux__wg_in(b, 2);
    if (tm) {
      if (gpux__wg_need_const(b, 2)) return GPUX_E_UNSUPPORTED;
      if (gpux__load_i64(tm->dtype, tm->data, 0)) return gpux__wg_decline(b, "Dropout in training mode");
    }
  }
  return gpux__wg_alias(b, 0, 0);
}

static int op_cast(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int from = x->dtype, to = y->dtype;
  /* float32, float16 and bfloat16 are all held as f32: widening is a no-copy alias, narrowing a
   * copy that the planner rounds to the narrower type (narrow.c) */
  int from_f = gpux__wg_is_f32(from), to_f = gpux__wg_is_f32(to);
  if (from == to && (from_f || from == GPUX_DT_INT32 || from == GPUX_DT_INT64 || from == GPUX_DT_BOOL))
    return gpux__wg_alias(b, 0, 0);
  if (from_f && to == GPUX_DT_FLOAT) return gpux__wg_alias(b, 0, 0);
  const char *expr = NULL;
  int in_type = WG_I32, out_type = WG_I32;
  /* integers held as i32 (int64 among them: its values fit, or they would not be on the GPU) */
  int from_int = from == GPUX_DT_INT32 || from == GPUX_DT_BOOL || from == GPUX_DT_INT8 || from == GPUX_DT_UINT8 ||
                 from == GPUX_DT_INT16 || from == GPUX_DT_UINT16 || from == GPUX_DT_INT64;
  int to_int = to == GPUX_DT_INT32 || to == GPUX_DT_INT8 || to == GPUX_DT_UINT8 || to == GPUX_DT_INT16 ||
               to == GPUX_DT_UINT16 || to == GPUX_DT_INT64;
  char wrapped[64];
  if (from_f && to_f) expr = "a0", in_type = out_type = WG_F32;
  else if (from_f && to == GPUX_DT_BOOL) expr = "select(0, 1, a0 != 0.0)", in_type = WG_F32;
  else if (from_f && to == GPUX_DT_INT32) expr = "i32(trunc(a0))", in_type = WG_F32;
  /* as the CPU: truncated, then wrapped to the narrow width (values beyond i32 saturate first) */
  else if (from_f && to == GPUX_DT_UINT8) expr = "i32(trunc(a0)) & 255", in_type = WG_F32;
  else if (from_f && to == GPUX_DT_INT8) expr = "(i32(trunc(a0)) << 24u) >> 24u", in_type = WG_F32;
  else if (from_int && to_f) expr = "f32(a0)", out_type = WG_F32;
  else if (from_int && to == GPUX_DT_BOOL) expr = "select(0, 1, a0 != 0)";
  else if (from == GPUX_DT_BOOL && to_int) expr = "a0";
  else if (from_int && to_int) { /* to a narrower type: wrapped as the CPU stores it */
    wrap_int(wrapped, sizeof wrapped, to, "a0");
    expr = wrapped;
  }
  if (!expr) return gpux__wg_decline(b, "Cast %s to %s", gpux_dtype_name(from), gpux_dtype_name(to));
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = 1;
  e.type[0] = in_type;
  e.expr = expr;
  e.out_type = out_type;
  return gpux__wg_ew2(b, &e);
}

/* QuantizeLinear / DequantizeLinear, per tensor or per axis (blocked quantization declines):
 * y = (x - zero_point) * scale, x = saturate(round_half_even(y / scale) + zero_point). */
static int op_quant(wg_build *b) {
  const gpux__node *n = gpux__wg_node(b);
  int dq = !strcmp(n->op_type, "DequantizeLinear");
  const gpux_tensor *x = gpux__wg_in(b, 0), *sc = gpux__wg_in(b, 1), *zp = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  if (!x || !sc || !y) return gpux__wg_decline(b, "missing input");
  const gpux__attr *ba = gpux__node_attr(n, "block_size");
  if (ba && ba->i) return gpux__wg_decline(b, "blocked quantization");
  if (sc->dtype != GPUX_DT_FLOAT) return gpux__wg_decline(b, "scale of %s", gpux_dtype_name(sc->dtype));
  int qt = dq ? x->dtype : y->dtype;
  const char *lo, *hi;
  switch (qt) {
  case GPUX_DT_UINT8: lo = "0", hi = "255"; break;
  case GPUX_DT_INT8: lo = "-128", hi = "127"; break;
  case GPUX_DT_UINT16: lo = "0", hi = "65535"; break;
  case GPUX_DT_INT16: lo = "-32768", hi = "32767"; break;
  default: return gpux__wg_decline(b, "quantized type %s", gpux_dtype_name(qt));
  }
  if (dq ? y->dtype != GPUX_DT_FLOAT : x->dtype != GPUX_DT_FLOAT) return gpux__wg_decline(b, "float type is not float32");
  if (zp && zp->dtype != qt) return gpux__wg_decline(b, "zero point of another type");
  int64_t per = gpux_tensor_count(sc);
  int ax = -1;
  if (per > 1) {
    const gpux__attr *aa = gpux__node_attr(n, "axis");
    int64_t a = aa ? aa->i : 1;
    if (a < 0) a += x->ndim;
    if (a < 0 || a >= x->ndim || x->dims[a] != per || sc->ndim != 1) return gpux__wg_decline(b, "bad quantization axis");
    ax = (int)a;
  }
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = zp ? 3 : 2;
  e.in[0] = 0, e.in[1] = 1, e.in[2] = 2;
  e.type[0] = dq ? WG_I32 : WG_F32, e.type[1] = WG_F32, e.type[2] = WG_I32;
  e.custom = 1;
  gpux__wg_strides(x, e.strides[0]);
  if (ax >= 0) e.strides[1][ax] = e.strides[2][ax] = 1;
  char expr[256];
  const char *z = zp ? "a2" : "0";
  if (dq) snprintf(expr, sizeof expr, "f32(a0 - %s) * a1", z);
  else snprintf(expr, sizeof expr, "clamp(i32(round(a0 / a1)) + %s, %s, %s)", z, lo, hi);
  e.expr = expr;
  e.out_type = dq ? WG_F32 : WG_I32;
  return gpux__wg_ew2(b, &e);
}

const wg_op gpux__wg_ops_elementwise[] = {
  {"Relu", op_unary},      {"Sigmoid", op_unary},   {"Tanh", op_unary},     {"Erf", op_unary},
  {"Exp", op_unary},       {"Log", op_unary},       {"Sqrt", op_unary},     {"Abs", op_unary},
  {"Neg", op_unary},       {"Reciprocal", op_unary}, {"Floor", op_unary},   {"Ceil", op_unary},
  {"Round", op_unary},     {"Sign", op_unary},      {"Sin", op_unary},      {"Cos", op_unary},
  {"Tan", op_unary},       {"Asin", op_unary},      {"Acos", op_unary},     {"Atan", op_unary},
  {"Sinh", op_unary},      {"Cosh", op_unary},      {"Asinh", op_unary},    {"Acosh", op_unary},
  {"Atanh", op_unary},     {"Softplus", op_unary},  {"Softsign", op_unary}, {"Mish", op_unary},
  {"LeakyRelu", op_unary}, {"Elu", op_unary},       {"Selu", op_unary},     {"Celu", op_unary},
  {"ThresholdedRelu", op_unary}, {"HardSigmoid", op_unary}, {"HardSwish", op_unary},
  {"Shrink", op_unary},    {"Gelu", op_unary},      {"Swish", op_unary},    {"SwiGLU", op_swiglu},
  {"Add", op_binary},      {"Sub", op_binary},      {"Mul", op_binary},     {"Div", op_binary},
  {"Pow", op_binary},      {"PRelu", op_binary},    {"Mod", op_binary},
  {"Sum", op_variadic},    {"Mean", op_variadic},   {"Max", op_variadic},   {"Min", op_variadic},
  {"Clip", op_clip},       {"Where", op_where},
  {"Equal", op_compare},   {"Less", op_compare},    {"Greater", op_compare}, {"LessOrEqual", op_compare},
  {"GreaterOrEqual", op_compare}, {"And", op_compare}, {"Or", op_compare},   {"Xor", op_compare},
  {"Not", op_not},         {"IsNaN", op_isnan_isinf}, {"IsInf", op_isnan_isinf},
  {"BitwiseAnd", op_bitwise}, {"BitwiseOr", op_bitwise}, {"BitwiseXor", op_bitwise}, {"BitwiseNot", op_bitwise},
  {"BitShift", op_bitwise},
  {"QuantizeLinear", op_quant}, {"DequantizeLinear", op_quant},
  {"Identity", op_identity}, {"Dropout", op_identity}, {"Cast", op_cast},   {"CastLike", op_cast},
  {0},
};
