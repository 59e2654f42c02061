/* ops-quant.c — WGSL kernels for the 8-bit integer ops: DynamicQuantizeLinear (a min/max
 * reduction, then the quantization with the scale and zero point it found, never read back),
 * ConvInteger and QLinearConv (on GPUs the tiled f32 GEMM where its sums are exact, else direct,
 * one thread per output), MatMulInteger and QLinearMatMul
 * (one thread per output, numpy batch broadcasting). The device holds 8-bit tensors as i32 (see
 * value.c), so products and sums are exact i32 arithmetic, wrapping as the CPU kernels do; the
 * QLinear ops requantize in f32 (the CPU in double: a result may differ by one step where a
 * value falls within f32 rounding of a tie). QuantizeLinear and DequantizeLinear are
 * elementwise (ops-elementwise.c). */
#include "backend/webgpu/wg.h"
#include "ops/conv.h"
#include <stdio.h>

typedef unsigned long long ull;

enum { WG_SIZE = 64 };

/* Starts a shader over `total` threads: bindings, then main with `i` the flat thread index. */
static void shader_begin(wg_build *b, wg_str *s, uint64_t total, uint32_t *gx, uint32_t *gy) {
  gpux__wg_grid(b, (total + WG_SIZE - 1) / WG_SIZE, gx, gy);
  gpux__wg_decls(b, s);
  gpux__wg_cat(s, "@compute @workgroup_size(%d)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                  "  let i = (wid.y * %uu + wid.x) * %uu + li;\n  if (i >= %lluu) { return; }\n",
               WG_SIZE, *gx, (unsigned)WG_SIZE, (ull)total);
}

static int is_8bit(int dt) { return dt == GPUX_DT_UINT8 || dt == GPUX_DT_INT8; }

/* Writes into out the WGSL expression of input `slot` read at index `idx` (an u32 expression),
 * for a scale or zero point of one value or one per index: `dflt` when the input is omitted, a
 * literal when it is one value known when planning, else a binding. `count` is the number of
 * values allowed besides one. Returns 0 or declines. */
static int operand(wg_build *b, int slot, int type, const char *idx, int64_t count, const char *dflt, char *out, size_t n) {
  const gpux_tensor *t = gpux__wg_in(b, slot);
  if (!t) {
    snprintf(out, n, "%s", dflt);
    return 0;
  }
  int64_t c = gpux_tensor_count(t);
  if (c != 1 && c != count) return gpux__wg_decline(b, "input %d has %lld values, expected 1 or %lld", slot, (long long)c, (long long)count);
  if (type == WG_F32 && t->dtype != GPUX_DT_FLOAT) return gpux__wg_decline(b, "a scale of %s", gpux_dtype_name(t->dtype));
  if (c == 1 && gpux__wg_is_const(b, slot) && t->data) {
    if (type == WG_F32) {
      char f[48];
      snprintf(out, n, "f32(%s)", gpux__wg_float(f, ((const float *)t->data)[0])); /* f32 arithmetic, not abstract */
    } else {
      snprintf(out, n, "i32(%lld)", (long long)gpux__load_i64(t->dtype, t->data, 0));
    }
    return 0;
  }
  int k = gpux__wg_bind_in(b, slot, type);
  if (k < 0) return GPUX_E_UNSUPPORTED;
  snprintf(out, n, c == 1 ? "b%d[0]" : "b%d[%s]", k, idx);
  return 0;
}

/* The saturation range of an 8-bit output. */
static void range8(int dt, const char **lo, const char **hi) {
  *lo = dt == GPUX_DT_INT8 ? "-128" : "0";
  *hi = dt == GPUX_DT_INT8 ? "127" : "255";
}

/* ---- DynamicQuantizeLinear ---- */

/* y = saturate(round(x / scale) + zp) over uint8, scale = (max(x, 0) - min(x, 0)) / 255 (1 when
 * that is 0), zp = round(clamp(-min / scale, 0, 255)), computed as the CPU kernel does: the
 * range in P partial minima/maxima, then one thread for scale and zero point, then y. */
static int op_dynamic_quantize(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || !gpux__wg_out(b, 1) || !gpux__wg_out(b, 2)) return gpux__wg_decline(b, "missing input or output");
  if (x->dtype != GPUX_DT_FLOAT) return gpux__wg_decline(b, "DynamicQuantizeLinear of %s", gpux_dtype_name(x->dtype));
  int64_t n = gpux_tensor_count(x);
  uint64_t parts = (uint64_t)GPUX__MAX(1, GPUX__MIN(4096, (n + 255) / 256));
  int part = gpux__wg_scratch(b, parts * 8);
  if (part < 0) return GPUX_E_UNSUPPORTED;
  uint32_t gx, gy;
  int rc;
  /* 1: partial (min, max) of x[t], x[t + P], ..., starting from 0; NaN is skipped */
  {
    int bx = gpux__wg_bind_in(b, 0, WG_F32), bp = gpux__wg_bind_scratch(b, part, WG_F32);
    if (bx < 0 || bp < 0) return GPUX_E_UNSUPPORTED;
    wg_str s = {0};
    shader_begin(b, &s, parts, &gx, &gy);
    gpux__wg_cat(&s, "  var lo = 0.0;\n  var hi = 0.0;\n  for (var e = i; e < %lluu; e = e + %lluu) {\n"
                     "    let v = b%d[e];\n    lo = select(lo, v, v < lo);\n    hi = select(hi, v, v > hi);\n  }\n"
                     "  b%d[2u * i] = lo;\n  b%d[2u * i + 1u] = hi;\n}\n",
                 (ull)n, (ull)parts, bx, bp, bp);
    rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
    gpux__wg_str_free(&s);
    if (rc) return rc;
  }
  /* 2: one thread: the range, scale and zero point */
  {
    int bp = gpux__wg_bind_scratch(b, part, WG_F32), bs = gpux__wg_bind_out(b, 1, WG_F32), bz = gpux__wg_bind_out(b, 2, WG_I32);
    if (bp < 0 || bs < 0 || bz < 0) return GPUX_E_UNSUPPORTED;
    wg_str s = {0};
    gpux__wg_decls(b, &s);
    gpux__wg_cat(&s, "@compute @workgroup_size(1)\nfn main() {\n  var lo = 0.0;\n  var hi = 0.0;\n"
                     "  for (var t = 0u; t < %lluu; t = t + 1u) {\n    lo = min(lo, b%d[2u * t]);\n    hi = max(hi, b%d[2u * t + 1u]);\n  }\n"
                     "  let scale = select((hi - lo) / 255.0, 1.0, hi == lo);\n"
                     "  b%d[0] = scale;\n  b%d[0] = i32(round(clamp(0.0 - lo / scale, 0.0, 255.0)));\n}\n",
                 (ull)parts, bp, bp, bs, bz);
    rc = gpux__wg_dispatch(b, &s, 1, 1, 1);
    gpux__wg_str_free(&s);
    if (rc) return rc;
  }
  /* 3: y */
  if (!n) return 0;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), bs = gpux__wg_bind_out(b, 1, WG_F32), bz = gpux__wg_bind_out(b, 2, WG_I32);
  int by = gpux__wg_bind_out(b, 0, WG_I32);
  if (bx < 0 || bs < 0 || bz < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  shader_begin(b, &s, (uint64_t)n, &gx, &gy);
  gpux__wg_cat(&s, "  b%d[i] = i32(clamp(round(b%d[i] / b%d[0]) + f32(b%d[0]), 0.0, 255.0));\n}\n", by, bx, bs, bz);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* ---- ConvInteger and QLinearConv ---- */

static int op_conv_integer(wg_build *b) {
  int ql = !strcmp(gpux__wg_node(b)->op_type, "QLinearConv");
  /* input slots: x, w, x_zero_point, w_zero_point; QLinearConv adds scales, y's and the bias */
  int sx = 0, sw = ql ? 3 : 1, sxz = 2, swz = ql ? 5 : 3;
  const gpux_tensor *x = gpux__wg_in(b, sx), *wt = gpux__wg_in(b, sw), *y = gpux__wg_out(b, 0);
  if (!x || !wt || !y || x->ndim < 3 || wt->ndim != x->ndim) return gpux__wg_decline(b, "bad inputs");
  if (!is_8bit(x->dtype) || !is_8bit(wt->dtype) || (ql && !is_8bit(y->dtype)))
    return gpux__wg_decline(b, "%s of %s and %s", gpux__wg_node(b)->op_type, gpux_dtype_name(x->dtype), gpux_dtype_name(wt->dtype));
  gpux__kctx k;
  memset(&k, 0, sizeof k);
  k.node = gpux__wg_node(b);
  k.opset = gpux__wg_opset(b);
  gpux__window w;
  if (gpux__window_read(&k, x, wt->dims + 2, &w) || gpux__window_forward(&k, &w, 0))
    return gpux__wg_decline(b, "%s", gpux_last_error());
  const gpux__attr *ga = gpux__node_attr(gpux__wg_node(b), "group");
  int64_t G = ga ? ga->i : 1, C = x->dims[1], M = wt->dims[0];
  if (G < 1 || C % G || M % G || wt->dims[1] * G != C) return gpux__wg_decline(b, "bad group");
  int64_t cg = C / G, mg = M / G, os = w.out[0] * w.out[1] * w.out[2], is = w.in[0] * w.in[1] * w.in[2];
  int64_t ks = w.k[0] * w.k[1] * w.k[2], total = gpux_tensor_count(y);
  if (!total) return 0;
  char xz[64], wz[64], xs[64] = "", ws[64] = "", ys[64] = "", yz[64] = "", bias[64] = "0";
  int bx = gpux__wg_bind_in(b, sx, WG_I32), bw = gpux__wg_bind_in(b, sw, WG_I32);
  if (bx < 0 || bw < 0) return GPUX_E_UNSUPPORTED;
  int rc = operand(b, sxz, WG_I32, "0u", 1, "0", xz, sizeof xz);
  if (!rc) rc = operand(b, swz, WG_I32, "co", M, "0", wz, sizeof wz);
  if (!rc && ql) {
    if (!gpux__wg_in(b, 1) || !gpux__wg_in(b, 4) || !gpux__wg_in(b, 6)) return gpux__wg_decline(b, "missing scale");
    if ((rc = operand(b, 1, WG_F32, "0u", 1, "1.0", xs, sizeof xs)) || (rc = operand(b, 4, WG_F32, "co", M, "1.0", ws, sizeof ws)) ||
        (rc = operand(b, 6, WG_F32, "0u", 1, "1.0", ys, sizeof ys)) || (rc = operand(b, 7, WG_I32, "0u", 1, "0", yz, sizeof yz)))
      return rc;
    const gpux_tensor *bt = gpux__wg_in(b, 8);
    if (bt && (bt->dtype != GPUX_DT_INT32 || gpux_tensor_count(bt) != M)) return gpux__wg_decline(b, "bias of %s", gpux_dtype_name(bt->dtype));
    if (bt && (rc = operand(b, 8, WG_I32, "co", M, "0", bias, sizeof bias))) return rc;
  }
  if (rc) return rc;
  int by = gpux__wg_bind_out(b, 0, WG_I32);
  if (by < 0) return GPUX_E_UNSUPPORTED;
  const char *lo, *hi;
  range8(y->dtype, &lo, &hi);
  int64_t K = cg * ks;
  if (mg >= 16 && K <= 258 && x->dims[0] * G <= 65535 && !gpux__wg_software(b)) {
    /* On GPUs, the tiled f32 GEMM per (image, group), [mg x K] weights times [K x os] im2col
     * columns, both minus their zero points: products of at most 255 x 255 summed over at most
     * 258 of them stay below 2^24, so every f32 sum is exact and v is the integer result. */
    wg_str pre = {0};
    gpux__wg_cat(&pre, "fn wload(z: u32, m: u32, k: u32) -> f32 {\n  let co = (z %% %lluu) * %lluu + m;\n"
                       "  return f32(b%d[co * %lluu + k] - %s);\n}\n",
                 (ull)G, (ull)mg, bw, (ull)K, wz);
    gpux__wg_cat(&pre, "fn xload(z: u32, k: u32, n: u32) -> f32 {\n  let nb = z / %lluu;\n  let grp = z %% %lluu;\n"
                       "  let ci = k / %lluu;\n  let kr = k %% %lluu;\n",
                 (ull)G, (ull)G, (ull)ks, (ull)ks);
    gpux__wg_cat(&pre, "  let k2 = i32(kr %% %lluu);\n  let k1 = i32((kr / %lluu) %% %lluu);\n  let k0 = i32(kr / %lluu);\n",
                 (ull)w.k[2], (ull)w.k[2], (ull)w.k[1], (ull)(w.k[2] * w.k[1]));
    gpux__wg_cat(&pre, "  let o2 = i32(n %% %lluu);\n  let o1 = i32((n / %lluu) %% %lluu);\n  let o0 = i32(n / %lluu);\n", (ull)w.out[2],
                 (ull)w.out[2], (ull)w.out[1], (ull)(w.out[2] * w.out[1]));
    for (int d = 0; d < 3; d++)
      gpux__wg_cat(&pre, "  let i%d = o%d * %lld - %lld + k%d * %lld;\n", d, d, (long long)w.s[d], (long long)w.pb[d], d, (long long)w.d[d]);
    gpux__wg_cat(&pre, "  if (i0 < 0 || i0 >= %lldi || i1 < 0 || i1 >= %lldi || i2 < 0 || i2 >= %lldi) { return 0.0; }\n",
                 (long long)w.in[0], (long long)w.in[1], (long long)w.in[2]);
    gpux__wg_cat(&pre, "  return f32(b%d[((nb * %lluu + grp * %lluu + ci) * %lluu + u32(i0)) * %lluu + u32(i1 * %lld + i2)] - %s);\n}\n", bx,
                 (ull)C, (ull)cg, (ull)w.in[0], (ull)(w.in[1] * w.in[2]), (long long)w.in[2], xz);
    char st[600];
    if (ql)
      snprintf(st, sizeof st, "let co = (z %% %lluu) * %lluu + m; let mult = (%s * %s) / %s; "
               "b%d[((z / %lluu) * %lluu + co) * %lluu + n] = i32(clamp(round(f32(i32(v) + %s) * mult) + f32(%s), %s.0, %s.0));",
               (ull)G, (ull)mg, xs, ws, ys, by, (ull)G, (ull)M, (ull)os, bias, yz, lo, hi);
    else
      snprintf(st, sizeof st, "let co = (z %% %lluu) * %lluu + m; b%d[((z / %lluu) * %lluu + co) * %lluu + n] = i32(v);", (ull)G, (ull)mg,
               by, (ull)G, (ull)M, (ull)os);
    wg_gemm gm = {.M = mg, .N = os, .K = K, .batch = x->dims[0] * G, .load_a = "wload(z, m, k)", .load_b = "xload(z, k, n)",
                  .store = st, .a_k_contig = 1, .b_n_contig = 1, .prelude = pre.s};
    rc = pre.oom ? gpux__wg_decline(b, "out of memory") : gpux__wg_gemm(b, &gm);
    gpux__wg_str_free(&pre);
    return rc;
  }
  /* direct: one thread per output value */
  uint32_t gx, gy;
  wg_str s = {0};
  shader_begin(b, &s, (uint64_t)total, &gx, &gy);
  gpux__wg_cat(&s, "  let p = i %% %lluu;\n  let co = (i / %lluu) %% %lluu;\n  let nb = i / %lluu;\n  let grp = co / %lluu;\n",
               (ull)os, (ull)os, (ull)M, (ull)(os * M), (ull)mg);
  gpux__wg_cat(&s, "  let o2 = i32(p %% %lluu);\n  let o1 = i32((p / %lluu) %% %lluu);\n  let o0 = i32(p / %lluu);\n", (ull)w.out[2],
               (ull)w.out[2], (ull)w.out[1], (ull)(w.out[2] * w.out[1]));
  gpux__wg_cat(&s, "  let xz = %s;\n  let wz = %s;\n  var acc = 0;\n  for (var ci = 0u; ci < %lluu; ci = ci + 1u) {\n"
                   "    let xb = (nb * %lluu + grp * %lluu + ci) * %lluu;\n    let wb = (co * %lluu + ci) * %lluu;\n",
               xz, wz, (ull)cg, (ull)C, (ull)cg, (ull)is, (ull)cg, (ull)ks);
  for (int d = 0; d < 3; d++)
    gpux__wg_cat(&s, "    for (var k%d = 0; k%d < %lld; k%d = k%d + 1) {\n      let i%d = o%d * %lld - %lld + k%d * %lld;\n"
                     "      if (i%d < 0 || i%d >= %lldi) { continue; }\n",
                 d, d, (long long)w.k[d], d, d, d, d, (long long)w.s[d], (long long)w.pb[d], d, (long long)w.d[d], d, d,
                 (long long)w.in[d]);
  gpux__wg_cat(&s, "      acc = acc + (b%d[xb + u32((i0 * %lld + i1) * %lld + i2)] - xz) * (b%d[wb + u32((k0 * %lld + k1) * %lld + k2)] - wz);\n"
                   "    }}}\n  }\n",
               bx, (long long)w.in[1], (long long)w.in[2], bw, (long long)w.k[1], (long long)w.k[2]);
  if (ql) {
    gpux__wg_cat(&s, "  let mult = (%s * %s) / %s;\n  b%d[i] = i32(clamp(round(f32(acc + %s) * mult) + f32(%s), %s.0, %s.0));\n}\n", xs, ws,
                 ys, by, bias, yz, lo, hi);
  } else {
    gpux__wg_cat(&s, "  b%d[i] = acc;\n}\n", by);
  }
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* ---- MatMulInteger and QLinearMatMul ---- */

static int op_matmul_integer(wg_build *b) {
  int ql = !strcmp(gpux__wg_node(b)->op_type, "QLinearMatMul");
  int sa = 0, sb = ql ? 3 : 1, saz = 2, sbz = ql ? 5 : 3;
  const gpux_tensor *a = gpux__wg_in(b, sa), *bt = gpux__wg_in(b, sb), *y = gpux__wg_out(b, 0);
  if (!a || !bt || !y || a->ndim < 1 || bt->ndim < 1) return gpux__wg_decline(b, "bad inputs");
  if (!is_8bit(a->dtype) || !is_8bit(bt->dtype) || (ql && !is_8bit(y->dtype)))
    return gpux__wg_decline(b, "%s of %s and %s", gpux__wg_node(b)->op_type, gpux_dtype_name(a->dtype), gpux_dtype_name(bt->dtype));
  /* numpy matmul: 1-D a gets a leading 1, 1-D b a trailing 1; batch dims broadcast */
  int64_t ad[GPUX_MAX_DIMS + 1], bd[GPUX_MAX_DIMS + 1];
  int an = a->ndim, bn = bt->ndim;
  if (an == 1) ad[0] = 1, ad[1] = a->dims[0], an = 2;
  else memcpy(ad, a->dims, sizeof(int64_t) * (size_t)an);
  if (bn == 1) bd[0] = bt->dims[0], bd[1] = 1, bn = 2;
  else memcpy(bd, bt->dims, sizeof(int64_t) * (size_t)bn);
  int64_t M = ad[an - 2], K = ad[an - 1], N = bd[bn - 1];
  if (bd[bn - 2] != K) return gpux__wg_decline(b, "inner dimensions differ");
  int nb = GPUX__MAX(an, bn) - 2;
  int64_t total = gpux_tensor_count(y);
  if (!total) return 0;
  char az[64], bz[64], as[64] = "", bs[64] = "", ys[64] = "", yz[64] = "";
  int ba = gpux__wg_bind_in(b, sa, WG_I32), bb = gpux__wg_bind_in(b, sb, WG_I32);
  if (ba < 0 || bb < 0) return GPUX_E_UNSUPPORTED;
  int rc = operand(b, saz, WG_I32, "m", M, "0", az, sizeof az);
  if (!rc) rc = operand(b, sbz, WG_I32, "n", N, "0", bz, sizeof bz);
  if (!rc && ql) {
    if (!gpux__wg_in(b, 1) || !gpux__wg_in(b, 4) || !gpux__wg_in(b, 6)) return gpux__wg_decline(b, "missing scale");
    if ((rc = operand(b, 1, WG_F32, "m", M, "1.0", as, sizeof as)) || (rc = operand(b, 4, WG_F32, "n", N, "1.0", bs, sizeof bs)) ||
        (rc = operand(b, 6, WG_F32, "0u", 1, "1.0", ys, sizeof ys)) || (rc = operand(b, 7, WG_I32, "0u", 1, "0", yz, sizeof yz)))
      return rc;
  }
  if (rc) return rc;
  int by = gpux__wg_bind_out(b, 0, WG_I32);
  if (by < 0) return GPUX_E_UNSUPPORTED;
  uint32_t gx, gy;
  wg_str s = {0};
  shader_begin(b, &s, (uint64_t)total, &gx, &gy);
  gpux__wg_cat(&s, "  let n = i %% %lluu;\n  let m = (i / %lluu) %% %lluu;\n  var z = i / %lluu;\n  var ao = 0u;\n  var bo = 0u;\n",
               (ull)N, (ull)N, (ull)M, (ull)(M * N));
  /* batch offsets, the last batch dim first */
  int64_t astr = M * K, bstr = K * N;
  for (int d = nb - 1; d >= 0; d--) {
    int ai = d - (nb - (an - 2)), bi = d - (nb - (bn - 2));
    int64_t xa = ai >= 0 ? ad[ai] : 1, xb = bi >= 0 ? bd[bi] : 1;
    if (xa != xb && xa != 1 && xb != 1) {
      gpux__wg_str_free(&s);
      return gpux__wg_decline(b, "batch dimensions do not broadcast");
    }
    int64_t dim = xa == 1 ? xb : xa;
    gpux__wg_cat(&s, "  {\n    let c = z %% %lluu;\n    z = z / %lluu;\n", (ull)dim, (ull)dim);
    if (xa != 1) gpux__wg_cat(&s, "    ao = ao + c * %lluu;\n", (ull)astr);
    if (xb != 1) gpux__wg_cat(&s, "    bo = bo + c * %lluu;\n", (ull)bstr);
    gpux__wg_cat(&s, "  }\n");
    astr *= xa, bstr *= xb;
  }
  gpux__wg_cat(&s, "  let az = %s;\n  let bz = %s;\n  var acc = 0;\n  for (var k = 0u; k < %lluu; k = k + 1u) {\n"
                   "    acc = acc + (b%d[ao + m * %lluu + k] - az) * (b%d[bo + k * %lluu + n] - bz);\n  }\n",
               az, bz, (ull)K, ba, (ull)K, bb, (ull)N);
  if (ql) {
    const char *lo, *hi;
    range8(y->dtype, &lo, &hi);
    gpux__wg_cat(&s, "  let mult = (%s * %s) / %s;\n  b%d[i] = i32(clamp(round(f32(acc) * mult) + f32(%s), %s.0, %s.0));\n}\n", as, bs, ys,
                 by, yz, lo, hi);
  } else {
    gpux__wg_cat(&s, "  b%d[i] = acc;\n}\n", by);
  }
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

const wg_op gpux__wg_ops_quant[] = {
  {"DynamicQuantizeLinear", op_dynamic_quantize},
  {"ConvInteger", op_conv_integer},
  {"QLinearConv", op_conv_integer},
  {"MatMulInteger", op_matmul_integer},
  {"QLinearMatMul", op_matmul_integer},
  {0},
};
