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
   "  if (a == 0.0) { return select(0.0, bitcast<f32>(0x7f800000u), b < 0.0); }\n"
   "  if (b == 1.0) { return a; }\n"
   "  if (b == 2.0) { return a * a; }\n"
   "  let r = exp2(b * log2(abs(a)));\n"
   "  if (a > 0.0) { return r; }\n"
   "  if (floor(b) != b) { return bitcast<f32>(0x7fc00000u); }\n"
   "  let odd = abs(b) < 16777216.0 && (i32(abs(b)) & 1) == 1;\n"
   "  return select(r, -r, odd);\n"
   "}\n"},
  {"gx_tanh", "fn gx_tanh(x: f32) -> f32 { return tanh(clamp(x, -10.0, 10.0)); }\n"},
  {"gx_softplus", "fn gx_softplus(x: f32) -> f32 { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }\n"},
  {"gx_sigmoid", "fn gx_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }\n"},
  {"gx_fmod", "fn gx_fmod(a: f32, b: f32) -> f32 { return a - b * trunc(a / b); }\n"},
};

void gpux__wg_helpers(wg_str *s, const char *expr) {
  for (size_t h = 0; h < GPUX__ARRAY_LEN(helpers); h++)
    if (strstr(expr, helpers[h].name)) gpux__wg_cat(s, "%s", helpers[h].text);
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

/* Emits out[i] = expr(a0, a1, ...) over output `out_idx`, where a_k = input in[k] read at
 * sum(coord[d] * strides[k][d]) (numpy broadcasting when strides is NULL). Inputs bound as
 * WG_I32 are read as i32 (an expression uses them through f32() or comparisons). */
int gpux__wg_ew(wg_build *b, int n, const int *in, const int *types, const int64_t (*strides)[GPUX_MAX_DIMS],
                const char *expr, int out_idx) {
  const gpux_tensor *out = gpux__wg_out(b, out_idx);
  if (!out) return gpux__wg_decline(b, "output %d is not used", out_idx);
  if (n > 8) return gpux__wg_decline(b, "more than 8 inputs");
  int r = out->ndim;
  int64_t dims[GPUX_MAX_DIMS], st[8][GPUX_MAX_DIMS];
  for (int d = 0; d < r; d++) dims[d] = out->dims[d];
  for (int k = 0; k < n; k++) {
    const gpux_tensor *t = gpux__wg_in(b, in[k]);
    if (!t) return gpux__wg_decline(b, "input %d is missing", in[k]);
    if (strides) memcpy(st[k], strides[k], sizeof st[k]);
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
  if (total > 0xffffffffLL) return gpux__wg_decline(b, "more than 2^32 elements");
  int bind_in[8];
  for (int k = 0; k < n; k++) {
    bind_in[k] = gpux__wg_bind_in(b, in[k], types ? types[k] : WG_F32);
    if (bind_in[k] < 0) return GPUX_E_UNSUPPORTED;
  }
  int bo = gpux__wg_bind_out(b, out_idx, WG_F32);
  if (bo < 0) return GPUX_E_UNSUPPORTED;
  const int wg = 256;
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(total + wg - 1) / wg, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  gpux__wg_helpers(&s, expr);
  gpux__wg_cat(&s, "@compute @workgroup_size(%d)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, "
                   "@builtin(local_invocation_index) li: u32) {\n"
                   "  let i = (wid.y * %uu + wid.x) * %du + li;\n  if (i >= %lluu) { return; }\n",
               wg, gx, wg, (unsigned long long)total);
  int need_coords = 0;
  for (int k = 0; k < n; k++) {
    int contiguous = m <= 1 && (m == 0 || st[k][0] == 1);
    int scalar = 1;
    for (int d = 0; d < m; d++) scalar &= st[k][d] == 0;
    if (!contiguous && !scalar) need_coords = 1;
  }
  if (need_coords) {
    gpux__wg_cat(&s, "  var r = i;\n");
    for (int d = m - 1; d >= 1; d--) gpux__wg_cat(&s, "  let c%d = r %% %lluu; r = r / %lluu;\n", d, (unsigned long long)dims[d], (unsigned long long)dims[d]);
    if (m >= 1) gpux__wg_cat(&s, "  let c0 = r;\n");
  }
  for (int k = 0; k < n; k++) {
    int scalar = 1, same = 1;
    int64_t expect = 1;
    for (int d = m - 1; d >= 0; d--) {
      scalar &= st[k][d] == 0;
      same &= st[k][d] == expect;
      expect *= dims[d];
    }
    gpux__wg_cat(&s, "  let a%d = b%d[", k, bind_in[k]);
    if (scalar) gpux__wg_cat(&s, "0");
    else if (same) gpux__wg_cat(&s, "i");
    else {
      int first = 1;
      for (int d = 0; d < m; d++) {
        if (!st[k][d]) continue;
        gpux__wg_cat(&s, "%sc%d * %lluu", first ? "" : " + ", d, (unsigned long long)st[k][d]);
        first = 0;
      }
    }
    gpux__wg_cat(&s, "];\n");
  }
  gpux__wg_cat(&s, "  b%d[i] = %s;\n}\n", bo, expr);
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int unary(wg_build *b, const char *expr) {
  int in = 0;
  return gpux__wg_ew(b, 1, &in, NULL, NULL, expr, 0);
}

#define FLT(name, v) char name##_buf[48]; const char *name = gpux__wg_float(name##_buf, (v))

static float attr_f(wg_build *b, const char *name, float dflt) {
  const gpux_attr *a = gpux__node_attr(gpux__wg_node(b), name);
  if (!a) return dflt;
  return a->type == GPUX_ATTR_INT ? (float)a->i : a->f;
}

static const char *attr_s(wg_build *b, const char *name, const char *dflt) {
  const gpux_attr *a = gpux__node_attr(gpux__wg_node(b), name);
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
    snprintf(expr, sizeof expr, "select(a0, %s * (exp(a0) - 1.0), a0 < 0.0)", al);
  } else if (!strcmp(op, "Selu")) {
    FLT(al, attr_f(b, "alpha", 1.67326319217681884765625f));
    FLT(ga, attr_f(b, "gamma", 1.05070102214813232421875f));
    snprintf(expr, sizeof expr, "select(%s * a0, %s * (%s * exp(a0) - %s), a0 <= 0.0)", ga, ga, al, al);
  } else if (!strcmp(op, "Celu")) {
    float a = attr_f(b, "alpha", 1.0f);
    FLT(al, a);
    snprintf(expr, sizeof expr, "max(0.0, a0) + min(0.0, %s * (exp(a0 / %s) - 1.0))", al, al);
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

static int op_binary(wg_build *b) {
  const char *op = gpux__wg_node(b)->op_type;
  const char *expr = NULL;
  if (!strcmp(op, "Add")) expr = "a0 + a1";
  else if (!strcmp(op, "Sub")) expr = "a0 - a1";
  else if (!strcmp(op, "Mul")) expr = "a0 * a1";
  else if (!strcmp(op, "Div")) expr = "a0 / a1";
  else if (!strcmp(op, "Pow")) expr = "gx_pow(a0, a1)";
  else if (!strcmp(op, "PRelu")) expr = "select(a0, a0 * a1, a0 < 0.0)";
  else if (!strcmp(op, "Mod")) {
    const gpux_attr *a = gpux__node_attr(gpux__wg_node(b), "fmod");
    if (!a || !a->i) return gpux__wg_decline(b, "Mod with fmod=0 on floats");
    expr = "gx_fmod(a0, a1)";
  }
  if (!expr) return gpux__wg_decline(b, "no WGSL kernel for %s", op);
  if (gpux__wg_n_in(b) != 2) return gpux__wg_decline(b, "%s with %d inputs", op, gpux__wg_n_in(b));
  int in[2] = {0, 1};
  return gpux__wg_ew(b, 2, in, NULL, NULL, expr, 0);
}

static int op_variadic(wg_build *b) {
  const char *op = gpux__wg_node(b)->op_type;
  int n = gpux__wg_n_in(b), in[8];
  if (n < 1 || n > 8) return gpux__wg_decline(b, "%s with %d inputs", op, n);
  char expr[512] = "";
  size_t len = 0;
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
  return gpux__wg_ew(b, n, in, NULL, NULL, expr, 0);
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
  for (int k = 1; k <= 2; k++) {
    const gpux_tensor *t = gpux__wg_in(b, k);
    char *dst = k == 1 ? lo : hi;
    if (!t) continue;
    if (gpux_tensor_count(t) != 1) return gpux__wg_decline(b, "Clip bound with %lld values", (long long)gpux_tensor_count(t));
    if (gpux__wg_is_const(b, k) && t->dtype == GPUX_DT_FLOAT) {
      char fb[48];
      snprintf(dst, 64, "%s", gpux__wg_float(fb, *(const float *)t->data));
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
  return gpux__wg_ew(b, n, in, NULL, (const int64_t(*)[GPUX_MAX_DIMS])st, expr, 0);
}

static int op_where(wg_build *b) {
  int in[3] = {0, 1, 2}, types[3] = {WG_I32, WG_F32, WG_F32};
  const gpux_tensor *c = gpux__wg_in(b, 0);
  if (!c || c->dtype != GPUX_DT_BOOL) return gpux__wg_decline(b, "Where condition is not bool");
  return gpux__wg_ew(b, 3, in, types, NULL, "select(a2, a1, a0 != 0)", 0);
}

static int op_identity(wg_build *b) {
  if (!strcmp(gpux__wg_node(b)->op_type, "Dropout")) {
    if (gpux__wg_n_out(b) > 1 && gpux__wg_out(b, 1)) return gpux__wg_decline(b, "Dropout mask requested");
    const gpux_tensor *tm = gpux__wg_in(b, 2);
    if (tm) {
      if (!gpux__wg_is_const(b, 2)) return gpux__wg_decline(b, "Dropout training_mode not known");
      if (gpux__load_i64(tm->dtype, tm->data, 0)) return gpux__wg_decline(b, "Dropout in training mode");
    }
  }
  return gpux__wg_alias(b, 0, 0);
}

static int op_cast(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || x->dtype != GPUX_DT_FLOAT || y->dtype != GPUX_DT_FLOAT)
    return gpux__wg_decline(b, "Cast %s to %s", x ? gpux_dtype_name(x->dtype) : "?", y ? gpux_dtype_name(y->dtype) : "?");
  return gpux__wg_alias(b, 0, 0);
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
  {"Shrink", op_unary},    {"Gelu", op_unary},
  {"Add", op_binary},      {"Sub", op_binary},      {"Mul", op_binary},     {"Div", op_binary},
  {"Pow", op_binary},      {"PRelu", op_binary},    {"Mod", op_binary},
  {"Sum", op_variadic},    {"Mean", op_variadic},   {"Max", op_variadic},   {"Min", op_variadic},
  {"Clip", op_clip},       {"Where", op_where},
  {"Identity", op_identity}, {"Dropout", op_identity}, {"Cast", op_cast},
  {0},
};
