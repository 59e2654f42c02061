/* ops-reduce.c — WGSL kernels that work on rows: the Reduce* family, ArgMax/ArgMin, Softmax,
 * LogSoftmax, Hardmax, LayerNormalization, RMSNormalization, InstanceNormalization,
 * GroupNormalization, LpNormalization, MeanVarianceNormalization, and BatchNormalization
 * (inference, as an elementwise kernel). A "row" is the set of elements that one output (or one
 * normalization) reads: the input's axes split into kept axes (which number the rows) and reduced
 * axes (which number the elements of a row), in any combination. One workgroup handles one row:
 * its threads stride over the row and combine partial results in workgroup memory. */
#include "backend/webgpu/wg.h"
#include <math.h>
#include <stdio.h>

/* Threads that share a row: 128 on GPUs; 1 on software adapters (lavapipe), where every thread
 * takes a row of its own: a CPU gains nothing from cooperating threads, and shaders without
 * barriers compile far faster on LLVM-based drivers. */
static int row_threads(wg_build *b) { return gpux__wg_software(b) ? 1 : 128; }

typedef struct rows {
  int64_t n_rows, len;            /* rows, elements per row */
} rows;

/* Emits fn row_base(o) and fn seg_off(j): the flat input index of element j of row o is
 * row_base(o) + seg_off(j). `red` marks the reduced axes of x. */
static rows emit_rows(wg_str *s, const gpux_tensor *x, const unsigned char *red) {
  int64_t st[GPUX_MAX_DIMS], st1 = 1;
  for (int d = x->ndim - 1; d >= 0; d--) st[d] = st1, st1 *= x->dims[d];
  rows r = {1, 1};
  for (int pass = 0; pass < 2; pass++) {
    const char *name = pass == 0 ? "row_base" : "seg_off";
    gpux__wg_cat(s, "fn %s(k: u32) -> u32 {\n  var q = k;\n  var idx = 0u;\n", name);
    for (int d = x->ndim - 1; d >= 0; d--) {
      int is_red = red[d] != 0;
      if (is_red != pass || x->dims[d] == 1) continue;
      gpux__wg_cat(s, "  idx = idx + (q %% %lluu) * %lluu; q = q / %lluu;\n", (unsigned long long)x->dims[d], (unsigned long long)st[d],
                   (unsigned long long)x->dims[d]);
      if (pass == 0) r.n_rows *= x->dims[d];
      else r.len *= x->dims[d];
    }
    gpux__wg_cat(s, "  return idx;\n}\n");
  }
  for (int d = 0; d < x->ndim; d++)
    if (x->dims[d] == 0) (red[d] ? (r.len = 0) : (r.n_rows = 0));
  return r;
}

/* The start of a row kernel: o is the row (uniform in the workgroup), li the thread. */
static void row_head(wg_build *b, wg_str *s, int64_t n_rows, uint32_t *gx, uint32_t *gy) {
  int wgs = row_threads(b);
  if (wgs == 1) {
    gpux__wg_grid(b, (uint64_t)(n_rows + 63) / 64, gx, gy);
    gpux__wg_cat(s, "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, "
                    "@builtin(local_invocation_index) lt: u32) {\n"
                    "  let o = (wid.y * %uu + wid.x) * 64u + lt;\n  if (o >= %lluu) { return; }\n  let li = 0u;\n  let base = row_base(o);\n",
                 *gx, (unsigned long long)n_rows);
    return;
  }
  gpux__wg_grid(b, (uint64_t)n_rows, gx, gy);
  gpux__wg_cat(s, "var<workgroup> sh: array<f32, %d>;\nvar<workgroup> shi: array<i32, %d>;\n", wgs, wgs);
  gpux__wg_cat(s, "@compute @workgroup_size(%d)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, "
                  "@builtin(local_invocation_index) li: u32) {\n"
                  "  let o = wid.y * %uu + wid.x;\n  if (o >= %lluu) { return; }\n  let base = row_base(o);\n",
               wgs, *gx, (unsigned long long)n_rows);
}

/* Combines each thread's `acc` across the workgroup with op(a, b) (a WGSL expression over a and
 * b); the result is in `var name` for every thread. */
static void wg_combine(wg_str *s, int wgs, const char *acc, const char *op, const char *name) {
  if (wgs == 1) {
    gpux__wg_cat(s, "  let %s = %s;\n", name, acc);
    return;
  }
  gpux__wg_cat(s, "  sh[li] = %s;\n  workgroupBarrier();\n", acc);
  gpux__wg_cat(s, "  for (var w = %uu; w > 0u; w = w >> 1u) {\n    if (li < w) { let a = sh[li]; let b = sh[li + w]; sh[li] = %s; }\n"
                  "    workgroupBarrier();\n  }\n  let %s = sh[0];\n  workgroupBarrier();\n", wgs / 2, op, name);
}

static int dtype_f32(wg_build *b, int slot) {
  const gpux_tensor *t = gpux__wg_in(b, slot);
  if (!t || !gpux__wg_is_f32(t->dtype)) return gpux__wg_decline(b, "input %d is %s", slot, t ? gpux_dtype_name(t->dtype) : "missing");
  return 0;
}

/* ---- Reduce* ---- */

/* The axes of a reduction: attribute or input 1 (by opset); all axes when none are given. */
static int reduce_axes(wg_build *b, int rank, unsigned char *red, int *noop) {
  const gpux__node *n = gpux__wg_node(b);
  int64_t axes[GPUX_MAX_DIMS];
  int na = 0;
  int from_input = !strcmp(n->op_type, "ReduceSum") ? n->opset >= 13 : n->opset >= 18;
  const gpux__attr *ne = gpux__node_attr(n, "noop_with_empty_axes");
  *noop = 0;
  if (from_input) {
    const gpux_tensor *t = gpux__wg_in(b, 1);
    if (t && gpux_tensor_count(t) > 0) {
      if (gpux__wg_need_const(b, 1)) return GPUX_E_UNSUPPORTED;
      na = (int)gpux_tensor_count(t);
      if (na > GPUX_MAX_DIMS) return gpux__wg_decline(b, "too many axes");
      for (int i = 0; i < na; i++) axes[i] = gpux__load_i64(t->dtype, t->data, i);
    }
  } else {
    const gpux__attr *a = gpux__node_attr(n, "axes");
    if (a && a->type == GPUX_ATTR_INTS) {
      na = a->n;
      if (na > GPUX_MAX_DIMS) return gpux__wg_decline(b, "too many axes");
      for (int i = 0; i < na; i++) axes[i] = a->ints[i];
    }
  }
  memset(red, 0, GPUX_MAX_DIMS);
  if (na == 0) {
    if (ne && ne->i) { *noop = 1; return 0; }
    memset(red, 1, (size_t)rank);
    return 0;
  }
  for (int i = 0; i < na; i++) {
    int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (a < 0 || a >= rank) return gpux__wg_decline(b, "bad axis");
    red[a] = 1;
  }
  return 0;
}

static int op_reduce(wg_build *b) {
  int wgs = row_threads(b);
  const char *op = gpux__wg_node(b)->op_type + 6; /* after "Reduce" */
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int rc = dtype_f32(b, 0);
  if (rc) return rc;
  unsigned char red[GPUX_MAX_DIMS];
  int noop;
  if ((rc = reduce_axes(b, x->ndim, red, &noop))) return rc;
  const char *init, *map, *comb, *fin;
  if (!strcmp(op, "Sum")) init = "0.0", map = "v", comb = "a + b", fin = "r";
  else if (!strcmp(op, "Mean")) init = "0.0", map = "v", comb = "a + b", fin = "r / LEN";
  else if (!strcmp(op, "Max")) init = "(-gx_inf())", map = "v", comb = "max(a, b)", fin = "r";
  else if (!strcmp(op, "Min")) init = "gx_inf()", map = "v", comb = "min(a, b)", fin = "r";
  else if (!strcmp(op, "Prod")) init = "1.0", map = "v", comb = "a * b", fin = "r";
  else if (!strcmp(op, "SumSquare")) init = "0.0", map = "v * v", comb = "a + b", fin = "r";
  else if (!strcmp(op, "L1")) init = "0.0", map = "abs(v)", comb = "a + b", fin = "r";
  else if (!strcmp(op, "L2")) init = "0.0", map = "v * v", comb = "a + b", fin = "sqrt(r)";
  else if (!strcmp(op, "LogSum")) init = "0.0", map = "v", comb = "a + b", fin = "log(r)";
  else if (!strcmp(op, "LogSumExp")) init = "0.0", map = "exp(v - m)", comb = "a + b", fin = "log(r) + m";
  else return gpux__wg_decline(b, "no WGSL kernel for Reduce%s", op);
  if (noop) {
    if (gpux_tensor_count(x) != gpux_tensor_count(y)) return gpux__wg_decline(b, "noop reduction changes the size");
    int in = 0;
    const char *e = !strcmp(op, "SumSquare") || !strcmp(op, "L2") ? (!strcmp(op, "L2") ? "abs(a0)" : "a0 * a0")
                    : !strcmp(op, "L1") ? "abs(a0)" : !strcmp(op, "LogSum") || !strcmp(op, "LogSumExp") ? (!strcmp(op, "LogSum") ? "log(a0)" : "a0")
                    : "a0";
    return gpux__wg_ew(b, 1, &in, NULL, NULL, e, 0);
  }
  int64_t len = 1;
  for (int d = 0; d < x->ndim; d++)
    if (red[d]) len *= x->dims[d];
  if (len == 0) { /* an empty reduction: the identity of the operation */
    char expr[64];
    if (!strcmp(op, "Mean")) snprintf(expr, sizeof expr, "gx_nan()");
    else if (!strcmp(op, "LogSum") || !strcmp(op, "LogSumExp")) snprintf(expr, sizeof expr, "-gx_inf()");
    else snprintf(expr, sizeof expr, "%s", init);
    wg_ew e;
    memset(&e, 0, sizeof e);
    e.expr = expr;
    return gpux__wg_ew2(b, &e);
  }
  int bx = gpux__wg_bind_in(b, 0, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  rows rw = emit_rows(&s, x, red);
  if (rw.n_rows != gpux_tensor_count(y)) {
    gpux__wg_str_free(&s);
    return gpux__wg_decline(b, "reduction output size disagrees");
  }
  uint32_t gx, gy;
  row_head(b, &s, rw.n_rows, &gx, &gy);
  char lens[48];
  snprintf(lens, sizeof lens, "f32(%lluu)", (unsigned long long)rw.len);
  if (!strcmp(op, "LogSumExp")) {
    gpux__wg_cat(&s, "  var mx = (-gx_inf());\n  for (var j = li; j < %lluu; j = j + %uu) { mx = max(mx, b%d[base + seg_off(j)]); }\n",
                 (unsigned long long)rw.len, wgs, bx);
    wg_combine(&s, wgs, "mx", "max(a, b)", "m0");
    gpux__wg_cat(&s, "  let m = select(m0, 0.0, abs(m0) == gx_inf());\n");
  }
  gpux__wg_cat(&s, "  var acc = %s;\n  for (var j = li; j < %lluu; j = j + %uu) {\n    let v = b%d[base + seg_off(j)];\n"
                   "    let a = acc; let b = %s; acc = %s;\n  }\n",
               init, (unsigned long long)rw.len, wgs, bx, map, comb);
  wg_combine(&s, wgs, "acc", comb, "r");
  /* fin may name LEN */
  char fin_s[128];
  const char *p = strstr(fin, "LEN");
  if (p) snprintf(fin_s, sizeof fin_s, "%.*s%s%s", (int)(p - fin), fin, lens, p + 3);
  else snprintf(fin_s, sizeof fin_s, "%s", fin);
  gpux__wg_cat(&s, "  if (li == 0u) { b%d[o] = %s; }\n}\n", by, fin_s);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_argmax(wg_build *b) {
  int wgs = row_threads(b);
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int rc = dtype_f32(b, 0);
  if (rc) return rc;
  const gpux__attr *aa = gpux__node_attr(n, "axis"), *la = gpux__node_attr(n, "select_last_index");
  int64_t ax = aa ? aa->i : 0;
  if (ax < 0) ax += x->ndim;
  if (ax < 0 || ax >= x->ndim) return gpux__wg_decline(b, "bad axis");
  int last = la && la->i, is_max = !strcmp(n->op_type, "ArgMax");
  unsigned char red[GPUX_MAX_DIMS] = {0};
  red[ax] = 1;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), by = gpux__wg_bind_out(b, 0, WG_I32);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  rows rw = emit_rows(&s, x, red);
  if (rw.len == 0) {
    gpux__wg_str_free(&s);
    return gpux__wg_decline(b, "arg of an empty axis");
  }
  uint32_t gx, gy;
  row_head(b, &s, rw.n_rows, &gx, &gy);
  const char *better = is_max ? (last ? ">=" : ">") : (last ? "<=" : "<");
  gpux__wg_cat(&s, "  var bv = b%d[base + seg_off(li %% %lluu)];\n  var bi = i32(li %% %lluu);\n", bx, (unsigned long long)rw.len,
               (unsigned long long)rw.len);
  gpux__wg_cat(&s, "  for (var j = li; j < %lluu; j = j + %uu) {\n    let v = b%d[base + seg_off(j)];\n"
                   "    if (v %s bv || (v == bv && %s)) { bv = v; bi = i32(j); }\n  }\n",
               (unsigned long long)rw.len, wgs, bx, better, last ? "i32(j) > bi" : "i32(j) < bi");
  if (wgs == 1) gpux__wg_cat(&s, "  b%d[o] = bi;\n}\n", by);
  else
    gpux__wg_cat(&s, "  sh[li] = bv;\n  shi[li] = bi;\n  workgroupBarrier();\n"
                     "  for (var w = %uu; w > 0u; w = w >> 1u) {\n    if (li < w) {\n"
                     "      let v = sh[li + w]; let k = shi[li + w];\n"
                     "      if (v %s sh[li] || (v == sh[li] && %s)) { sh[li] = v; shi[li] = k; }\n"
                     "    }\n    workgroupBarrier();\n  }\n"
                     "  if (li == 0u) { b%d[o] = shi[0]; }\n}\n",
                 wgs / 2, better, last ? "k > shi[li]" : "k < shi[li]", by);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* ---- Softmax family ---- */

static int op_softmax(wg_build *b) {
  int wgs = row_threads(b);
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int rc = dtype_f32(b, 0);
  if (rc) return rc;
  const gpux__attr *aa = gpux__node_attr(n, "axis");
  int64_t ax = aa ? aa->i : (n->opset >= 13 ? -1 : 1);
  if (ax < 0) ax += x->ndim;
  if (x->ndim == 0) ax = 0;
  if (ax < 0 || (x->ndim && ax >= x->ndim)) return gpux__wg_decline(b, "bad axis");
  unsigned char red[GPUX_MAX_DIMS] = {0};
  if (n->opset >= 13) red[ax] = 1;
  else for (int d = (int)ax; d < x->ndim; d++) red[d] = 1; /* coerced to 2-D at axis */
  if (!gpux_tensor_count(x)) return 0;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  rows rw = emit_rows(&s, x, red);
  int narrow = y->dtype == GPUX_DT_FLOAT16 || y->dtype == GPUX_DT_BFLOAT16;
  if (narrow) gpux__wg_cat(&s, "%s", gpux__wg_narrow_fns);
  uint32_t gx, gy;
  row_head(b, &s, rw.n_rows, &gx, &gy);
  unsigned long long L = (unsigned long long)rw.len;
  if (!strcmp(n->op_type, "Hardmax")) {
    gpux__wg_cat(&s, "  var bv = -gx_inf();\n  var bi = 0x7fffffff;\n"
                     "  for (var j = li; j < %lluu; j = j + %uu) { let v = b%d[base + seg_off(j)]; if (v > bv || (v == bv && i32(j) < bi)) { bv = v; bi = i32(j); } }\n",
                 L, wgs, bx);
    if (wgs == 1) gpux__wg_cat(&s, "  let win = bi;\n");
    else
      gpux__wg_cat(&s, "  sh[li] = bv;\n  shi[li] = bi;\n  workgroupBarrier();\n"
                       "  for (var w = %uu; w > 0u; w = w >> 1u) {\n    if (li < w) { let v = sh[li + w]; let k = shi[li + w];\n"
                       "      if (v > sh[li] || (v == sh[li] && k < shi[li])) { sh[li] = v; shi[li] = k; } }\n    workgroupBarrier();\n  }\n"
                       "  let win = shi[0];\n",
                   wgs / 2);
    gpux__wg_cat(&s, "  for (var j = li; j < %lluu; j = j + %uu) { b%d[base + seg_off(j)] = select(0.0, 1.0, i32(j) == win); }\n}\n",
                 L, wgs, by);
  } else if (narrow) {
    /* the CPU kernel's and the ONNX reference's float16/bfloat16 softmax: every step rounded to
     * the dtype, d = R(x - max), e = R(exp(d)), s = R(sum e) (bfloat16: rounded at every
     * addition, in order where one thread does a row), y = R(e / s) or d - R(log s) */
    int logsm = !strcmp(n->op_type, "LogSoftmax");
    const char *R = y->dtype == GPUX_DT_FLOAT16 ? "gx_f16" : "gx_bf16";
    gpux__wg_cat(&s, "  var mx = (-gx_inf());\n  for (var j = li; j < %lluu; j = j + %uu) { mx = max(mx, b%d[base + seg_off(j)]); }\n",
                 L, wgs, bx);
    wg_combine(&s, wgs, "mx", "max(a, b)", "m");
    int bf = y->dtype == GPUX_DT_BFLOAT16;
    gpux__wg_cat(&s, "  var acc = 0.0;\n  for (var j = li; j < %lluu; j = j + %uu) { acc = %s(acc + %s(exp(%s(b%d[base + seg_off(j)] - m)))); }\n",
                 L, wgs, bf ? R : "", R, R, bx);
    wg_combine(&s, wgs, "acc", "a + b", "sum0");
    gpux__wg_cat(&s, "  let sum = %s(sum0);\n", R);
    if (logsm)
      gpux__wg_cat(&s, "  let ls = %s(log(sum));\n  for (var j = li; j < %lluu; j = j + %uu) { let k = base + seg_off(j); b%d[k] = %s(b%d[k] - m) - ls; }\n}\n",
                   R, L, wgs, by, R, bx);
    else
      gpux__wg_cat(&s, "  for (var j = li; j < %lluu; j = j + %uu) { let k = base + seg_off(j); b%d[k] = %s(exp(%s(b%d[k] - m))) / sum; }\n}\n",
                   L, wgs, by, R, R, bx);
  } else {
    int logsm = !strcmp(n->op_type, "LogSoftmax");
    gpux__wg_cat(&s, "  var mx = (-gx_inf());\n  for (var j = li; j < %lluu; j = j + %uu) { mx = max(mx, b%d[base + seg_off(j)]); }\n",
                 L, wgs, bx);
    wg_combine(&s, wgs, "mx", "max(a, b)", "m");
    gpux__wg_cat(&s, "  var acc = 0.0;\n  for (var j = li; j < %lluu; j = j + %uu) { acc = acc + exp(b%d[base + seg_off(j)] - m); }\n",
                 L, wgs, bx);
    wg_combine(&s, wgs, "acc", "a + b", "sum");
    if (logsm)
      gpux__wg_cat(&s, "  let ls = log(sum);\n  for (var j = li; j < %lluu; j = j + %uu) { let k = base + seg_off(j); b%d[k] = b%d[k] - m - ls; }\n}\n",
                   L, wgs, by, bx);
    else
      gpux__wg_cat(&s, "  let inv = 1.0 / sum;\n  for (var j = li; j < %lluu; j = j + %uu) { let k = base + seg_off(j); b%d[k] = exp(b%d[k] - m) * inv; }\n}\n",
                   L, wgs, by, bx);
  }
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* ---- normalizations ---- */

/* Index of the element of a per-row-element parameter (scale, bias) for element j of a row:
 * the parameter broadcasts against the reduced dims (numpy rules, right-aligned). Emits
 * fn par_off(j) for parameter number `which`. */
static int emit_param_off(wg_str *s, const gpux_tensor *x, const unsigned char *red, const gpux_tensor *p, int which) {
  /* the reduced dims, in order */
  int64_t rd[GPUX_MAX_DIMS];
  int nr = 0;
  for (int d = 0; d < x->ndim; d++)
    if (red[d]) rd[nr++] = x->dims[d];
  if (p->ndim > nr) {
    /* leading dims of size 1 only */
    for (int d = 0; d < p->ndim - nr; d++)
      if (p->dims[d] != 1) return -1;
  }
  gpux__wg_cat(s, "fn par_off%d(k: u32) -> u32 {\n  var q = k;\n  var idx = 0u;\n", which);
  int64_t pst = 1;
  for (int d = nr - 1; d >= 0; d--) {
    int pd = d - (nr - p->ndim);
    int64_t pdim = pd >= 0 ? p->dims[pd] : 1;
    if (pdim != 1 && pdim != rd[d]) return -1;
    if (pdim == rd[d] && rd[d] != 1) gpux__wg_cat(s, "  idx = idx + (q %% %lluu) * %lluu;\n", (unsigned long long)rd[d], (unsigned long long)pst);
    gpux__wg_cat(s, "  q = q / %lluu;\n", (unsigned long long)rd[d]);
    pst *= pdim;
  }
  gpux__wg_cat(s, "  return idx;\n}\n");
  return 0;
}

/* Writes the stats of a row: mean (in `mean`) and the inverse standard deviation (`inv`). */
static void emit_mean_inv(wg_str *s, int wgs, int bx, unsigned long long L, const char *eps, int rms) {
  if (rms) {
    gpux__wg_cat(s, "  var acc = 0.0;\n  for (var j = li; j < %lluu; j = j + %uu) { let v = b%d[base + seg_off(j)]; acc = acc + v * v; }\n", L, wgs, bx);
    wg_combine(s, wgs, "acc", "a + b", "ss");
    gpux__wg_cat(s, "  let mean = 0.0;\n  let inv = inverseSqrt(ss / %llu.0 + %s);\n", L, eps);
    return;
  }
  gpux__wg_cat(s, "  var acc = 0.0;\n  for (var j = li; j < %lluu; j = j + %uu) { acc = acc + b%d[base + seg_off(j)]; }\n", L, wgs, bx);
  wg_combine(s, wgs, "acc", "a + b", "tot");
  gpux__wg_cat(s, "  let mean = tot / %llu.0;\n  var acc2 = 0.0;\n"
                  "  for (var j = li; j < %lluu; j = j + %uu) { let d = b%d[base + seg_off(j)] - mean; acc2 = acc2 + d * d; }\n",
               L, L, wgs, bx);
  wg_combine(s, wgs, "acc2", "a + b", "var2");
  gpux__wg_cat(s, "  let inv = inverseSqrt(var2 / %llu.0 + %s);\n", L, eps);
}

static int op_layernorm(wg_build *b) {
  int wgs = row_threads(b);
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *sc = gpux__wg_in(b, 1), *bi = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int rms = !strcmp(n->op_type, "RMSNormalization");
  int rc = dtype_f32(b, 0);
  if (rc) return rc;
  const gpux__attr *aa = gpux__node_attr(n, "axis"), *ea = gpux__node_attr(n, "epsilon");
  int64_t ax = aa ? aa->i : -1;
  if (ax < 0) ax += x->ndim;
  if (ax < 0 || ax >= x->ndim) return gpux__wg_decline(b, "bad axis");
  unsigned char red[GPUX_MAX_DIMS] = {0};
  for (int d = (int)ax; d < x->ndim; d++) red[d] = 1;
  char eps[48];
  gpux__wg_float(eps, ea ? ea->f : 1e-5f);
  if (!gpux_tensor_count(x)) return gpux__wg_decline(b, "empty input");
  int bx = gpux__wg_bind_in(b, 0, WG_F32), bs = sc ? gpux__wg_bind_in(b, 1, WG_F32) : -2,
      bb = bi ? gpux__wg_bind_in(b, 2, WG_F32) : -2, by = gpux__wg_bind_out(b, 0, WG_F32);
  const gpux_tensor *om = rms ? NULL : gpux__wg_out(b, 1), *oi = rms ? NULL : gpux__wg_out(b, 2);
  int bm = om ? gpux__wg_bind_out(b, 1, WG_F32) : -2, bv = oi ? gpux__wg_bind_out(b, 2, WG_F32) : -2;
  if (bx < 0 || bs == -1 || bb == -1 || by < 0 || bm == -1 || bv == -1) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  rows rw = emit_rows(&s, x, red);
  if ((sc && emit_param_off(&s, x, red, sc, 0)) || (bi && emit_param_off(&s, x, red, bi, 1))) {
    gpux__wg_str_free(&s);
    return gpux__wg_decline(b, "scale/bias do not broadcast to the normalized shape");
  }
  uint32_t gx, gy;
  row_head(b, &s, rw.n_rows, &gx, &gy);
  unsigned long long L = (unsigned long long)rw.len;
  emit_mean_inv(&s, wgs, bx, L, eps, rms);
  gpux__wg_cat(&s, "  for (var j = li; j < %lluu; j = j + %uu) {\n    let k = base + seg_off(j);\n    var v = (b%d[k] - mean) * inv;\n", L, wgs, bx);
  if (bs >= 0) gpux__wg_cat(&s, "    v = v * b%d[par_off0(j)];\n", bs);
  if (bb >= 0) gpux__wg_cat(&s, "    v = v + b%d[par_off1(j)];\n", bb);
  gpux__wg_cat(&s, "    b%d[k] = v;\n  }\n", by);
  if (bm >= 0) gpux__wg_cat(&s, "  if (li == 0u) { b%d[o] = mean; }\n", bm);
  if (bv >= 0) gpux__wg_cat(&s, "  if (li == 0u) { b%d[o] = inv; }\n", bv);
  gpux__wg_cat(&s, "}\n");
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* InstanceNormalization (groups = C) and GroupNormalization: rows are (n, group); the scale and
 * bias are per channel (or per group for GroupNormalization before opset 21). */
static int op_groupnorm(wg_build *b) {
  int wgs = row_threads(b);
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *sc = gpux__wg_in(b, 1), *bi = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  if (!x || !sc || !bi || !y || x->ndim < 2) return gpux__wg_decline(b, "missing input");
  int rc = dtype_f32(b, 0);
  if (rc) return rc;
  int inst = !strcmp(n->op_type, "InstanceNormalization");
  int64_t C = x->dims[1], N = x->dims[0], G = C, spatial = 1;
  for (int d = 2; d < x->ndim; d++) spatial *= x->dims[d];
  if (!inst) {
    const gpux__attr *ga = gpux__node_attr(n, "num_groups");
    G = ga ? ga->i : 0;
    if (G <= 0 || C % G) return gpux__wg_decline(b, "bad num_groups");
  }
  int per_group = !inst && n->opset < 21 && gpux_tensor_count(sc) == G && G != C;
  const gpux__attr *ea = gpux__node_attr(n, "epsilon");
  char eps[48];
  gpux__wg_float(eps, ea ? ea->f : 1e-5f);
  if (!gpux_tensor_count(x)) return gpux__wg_decline(b, "empty input");
  int bx = gpux__wg_bind_in(b, 0, WG_F32), bs = gpux__wg_bind_in(b, 1, WG_F32), bb = gpux__wg_bind_in(b, 2, WG_F32),
      by = gpux__wg_bind_out(b, 0, WG_F32);
  if (bx < 0 || bs < 0 || bb < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  int64_t cpg = C / G, L = cpg * spatial;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  /* row o = n * G + g covers channels g*cpg .. and all spatial positions: contiguous */
  gpux__wg_cat(&s, "fn row_base(k: u32) -> u32 { return k * %lluu; }\nfn seg_off(j: u32) -> u32 { return j; }\n", (unsigned long long)L);
  uint32_t gx, gy;
  row_head(b, &s, N * G, &gx, &gy);
  emit_mean_inv(&s, wgs, bx, (unsigned long long)L, eps, 0);
  gpux__wg_cat(&s, "  for (var j = li; j < %lluu; j = j + %uu) {\n    let k = base + j;\n", (unsigned long long)L, wgs);
  if (per_group) gpux__wg_cat(&s, "    let c = o %% %lluu;\n", (unsigned long long)G);
  else gpux__wg_cat(&s, "    let c = (o %% %lluu) * %lluu + j / %lluu;\n", (unsigned long long)G, (unsigned long long)cpg, (unsigned long long)spatial);
  gpux__wg_cat(&s, "    b%d[k] = (b%d[k] - mean) * inv * b%d[c] + b%d[c];\n  }\n}\n", by, bx, bs, bb);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_lpnorm(wg_build *b) {
  int wgs = row_threads(b);
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int rc = dtype_f32(b, 0);
  if (rc) return rc;
  const gpux__attr *aa = gpux__node_attr(n, "axis"), *pa = gpux__node_attr(n, "p");
  int64_t ax = aa ? aa->i : -1, p = pa ? pa->i : 2;
  if (ax < 0) ax += x->ndim;
  if (ax < 0 || ax >= x->ndim || (p != 1 && p != 2)) return gpux__wg_decline(b, "bad axis or p");
  unsigned char red[GPUX_MAX_DIMS] = {0};
  red[ax] = 1;
  if (!gpux_tensor_count(x)) return 0;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  rows rw = emit_rows(&s, x, red);
  uint32_t gx, gy;
  row_head(b, &s, rw.n_rows, &gx, &gy);
  unsigned long long L = (unsigned long long)rw.len;
  gpux__wg_cat(&s, "  var acc = 0.0;\n  for (var j = li; j < %lluu; j = j + %uu) { let v = b%d[base + seg_off(j)]; acc = acc + %s; }\n", L, wgs, bx,
               p == 1 ? "abs(v)" : "v * v");
  wg_combine(&s, wgs, "acc", "a + b", "tot");
  gpux__wg_cat(&s, "  let nrm = %s;\n  for (var j = li; j < %lluu; j = j + %uu) { let k = base + seg_off(j); b%d[k] = select(b%d[k] / nrm, 0.0, nrm == 0.0); }\n}\n",
               p == 1 ? "tot" : "sqrt(tot)", L, wgs, by, bx);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_mvn(wg_build *b) {
  int wgs = row_threads(b);
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int rc = dtype_f32(b, 0);
  if (rc) return rc;
  unsigned char red[GPUX_MAX_DIMS] = {0};
  const gpux__attr *aa = gpux__node_attr(n, "axes");
  if (aa && aa->type == GPUX_ATTR_INTS) {
    for (int i = 0; i < aa->n; i++) {
      int64_t a = aa->ints[i] < 0 ? aa->ints[i] + x->ndim : aa->ints[i];
      if (a < 0 || a >= x->ndim) return gpux__wg_decline(b, "bad axis");
      red[a] = 1;
    }
  } else {
    if (x->ndim != 4) return gpux__wg_decline(b, "default axes need 4-D");
    red[0] = red[2] = red[3] = 1;
  }
  if (!gpux_tensor_count(x)) return 0;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  rows rw = emit_rows(&s, x, red);
  uint32_t gx, gy;
  row_head(b, &s, rw.n_rows, &gx, &gy);
  unsigned long long L = (unsigned long long)rw.len;
  /* the function body: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9) */
  gpux__wg_cat(&s, "  var acc = 0.0;\n  var acc2 = 0.0;\n  for (var j = li; j < %lluu; j = j + %uu) { let v = b%d[base + seg_off(j)]; acc = acc + v; acc2 = acc2 + v * v; }\n",
               L, wgs, bx);
  wg_combine(&s, wgs, "acc", "a + b", "tot");
  wg_combine(&s, wgs, "acc2", "a + b", "tot2");
  gpux__wg_cat(&s, "  let mean = tot / %llu.0;\n  let sd = sqrt(max(tot2 / %llu.0 - mean * mean, 0.0)) + 1e-9;\n"
                   "  for (var j = li; j < %lluu; j = j + %uu) { let k = base + seg_off(j); b%d[k] = (b%d[k] - mean) / sd; }\n}\n",
               L, L, L, wgs, by, bx);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_batchnorm(wg_build *b) {
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || x->ndim < 2) return gpux__wg_decline(b, "missing input");
  const gpux__attr *ta = gpux__node_attr(n, "training_mode");
  if ((ta && ta->i) || (gpux__wg_n_out(b) > 1 && gpux__wg_out(b, 1))) return gpux__wg_decline(b, "BatchNormalization in training mode");
  for (int k = 0; k < 5; k++) {
    const gpux_tensor *t = gpux__wg_in(b, k);
    if (!t || !gpux__wg_is_f32(t->dtype)) return gpux__wg_decline(b, "input %d is %s", k, t ? gpux_dtype_name(t->dtype) : "missing");
    if (k && gpux_tensor_count(t) != x->dims[1]) return gpux__wg_decline(b, "per-channel parameter of another size");
  }
  const gpux__attr *ea = gpux__node_attr(n, "epsilon");
  char eps[48], expr[160];
  gpux__wg_float(eps, ea ? ea->f : 1e-5f);
  snprintf(expr, sizeof expr, "(a0 - a3) * inverseSqrt(a4 + %s) * a1 + a2", eps);
  int64_t st[5][GPUX_MAX_DIMS];
  memset(st, 0, sizeof st);
  gpux__wg_strides(x, st[0]);
  for (int k = 1; k < 5; k++) st[k][1] = 1;
  int in[5] = {0, 1, 2, 3, 4};
  return gpux__wg_ew(b, 5, in, NULL, (const int64_t(*)[GPUX_MAX_DIMS])st, expr, 0);
}

const wg_op gpux__wg_ops_reduce[] = {
  {"ReduceSum", op_reduce},     {"ReduceMean", op_reduce},   {"ReduceMax", op_reduce},   {"ReduceMin", op_reduce},
  {"ReduceProd", op_reduce},    {"ReduceSumSquare", op_reduce}, {"ReduceL1", op_reduce}, {"ReduceL2", op_reduce},
  {"ReduceLogSum", op_reduce},  {"ReduceLogSumExp", op_reduce},
  {"ArgMax", op_argmax},        {"ArgMin", op_argmax},
  {0},
};

const wg_op gpux__wg_ops_norm[] = {
  {"Softmax", op_softmax},      {"LogSoftmax", op_softmax},  {"Hardmax", op_softmax},
  {"LayerNormalization", op_layernorm}, {"RMSNormalization", op_layernorm},
  {"InstanceNormalization", op_groupnorm}, {"GroupNormalization", op_groupnorm},
  {"LpNormalization", op_lpnorm}, {"MeanVarianceNormalization", op_mvn},
  {"BatchNormalization", op_batchnorm},
  {0},
};
