/* ops-conv.c — WGSL kernels for sliding windows: Conv (implicit GEMM on the shared tiled kernel,
 * im2col done on the fly; a direct kernel for depthwise and other thin groups), ConvTranspose
 * (direct, gathering the taps that land on each output), MaxPool (with Indices), AveragePool,
 * LpPool and the global poolings. Window geometry (pads, auto_pad, ceil_mode) comes from the
 * same helpers as the CPU kernels, so both backends agree on shapes. 1-D to 3-D windows share
 * the code: lower ranks use unit dims in front. */
#include "backend/webgpu/wg.h"
#include "ops/conv.h"
#include <stdio.h>
#include <stdlib.h>

static int read_window(wg_build *b, const gpux_tensor *x, const int64_t *kernel, int forward, int ceil_mode, gpux__window *w) {
  gpux__kctx k;
  memset(&k, 0, sizeof k);
  k.node = gpux__wg_node(b);
  k.opset = gpux__wg_opset(b);
  if (gpux__window_read(&k, x, kernel, w) || (forward && gpux__window_forward(&k, w, ceil_mode)))
    return gpux__wg_decline(b, "%s", gpux_last_error());
  return 0;
}

static int64_t attr_i(wg_build *b, const char *name, int64_t dflt) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), name);
  return a ? (a->type == GPUX_ATTR_FLOAT ? (int64_t)a->f : a->i) : dflt;
}

typedef unsigned long long ull;

/* Emits "let o0 = ...; let o1 = ...; let o2 = ..." (i32) for the spatial coordinates of the
 * flat output position `p` (u32 expression) in the window's output extents. */
static void out_coords(wg_str *s, const gpux__window *w, const char *p) {
  gpux__wg_cat(s, "  let o2 = i32(%s %% %lluu);\n  let o1 = i32((%s / %lluu) %% %lluu);\n  let o0 = i32(%s / %lluu);\n", p,
               (ull)w->out[2], p, (ull)w->out[2], (ull)w->out[1], p, (ull)(w->out[2] * w->out[1]));
}

/* ---- the epilogue of gpux.FusedConv / gpux.FusedConvTranspose (runtime/optimize.c) ---- */

/* Binds the post_scale/post_bias inputs (3 and 4) and the residual (5) of a fused node; -2 when
 * absent. A residual must have the output's shape (one that broadcasts is left to the CPU). */
static int bind_post(wg_build *b, int *ps, int *pb, int *pr) {
  *ps = *pb = *pr = -2;
  if (strncmp(gpux__wg_node(b)->op_type, "Fused", 5)) return 0;
  if (gpux__wg_in(b, 3) && gpux__wg_in(b, 4)) {
    *ps = gpux__wg_bind_in(b, 3, WG_F32);
    *pb = gpux__wg_bind_in(b, 4, WG_F32);
    if (*ps < 0 || *pb < 0) return GPUX_E_UNSUPPORTED;
  }
  const gpux_tensor *r = gpux__wg_in(b, 5), *y = gpux__wg_out(b, 0);
  if (r) {
    if (!gpux__wg_is_f32(r->dtype) || r->dtype != y->dtype || r->ndim != y->ndim ||
        memcmp(r->dims, y->dims, (size_t)y->ndim * sizeof *y->dims))
      return gpux__wg_decline(b, "FusedConv residual of another shape or type");
    if ((*pr = gpux__wg_bind_in(b, 5, WG_F32)) < 0) return GPUX_E_UNSUPPORTED;
  }
  return 0;
}

/* Emits fn gx_epi(v, co, oi): Y = clamp(act(v + residual[oi])) * post_scale[co] + post_bias[co]
 * for a fused node (the CPU's order, conv-epilogue.c), v itself otherwise (v already holds the
 * bias); oi is the flat output index. */
static int emit_epilogue(wg_build *b, wg_str *s, int ps, int pb, int pr) {
  const gpux__node *n = gpux__wg_node(b);
  const char *narrow = gpux__wg_narrow_in_kernel(b, 0); /* a float16/bfloat16 Y is rounded here */
  if (narrow) gpux__wg_cat(s, "%s", gpux__wg_narrow_fns);
  gpux__wg_cat(s, "fn gx_epi(v: f32, co: u32, oi: u32) -> f32 {\n  var y = v;\n");
  if (pr >= 0) gpux__wg_cat(s, "  y = y + b%d[oi];\n", pr);
  if (!strncmp(n->op_type, "Fused", 5)) {
    const gpux__attr *aa = gpux__node_attr(n, "activation"), *pa = gpux__node_attr(n, "activation_params"),
                    *ca = gpux__node_attr(n, "clamp");
    const char *act = aa && aa->s ? aa->s : "";
    float p0 = pa && pa->n > 0 ? pa->floats[0] : 0, p1 = pa && pa->n > 1 ? pa->floats[1] : 0;
    char f0[48], f1[48];
    gpux__wg_float(f0, p0);
    gpux__wg_float(f1, p1);
    if (!strcmp(act, "Relu")) gpux__wg_cat(s, "  y = max(y, 0.0);\n");
    else if (!strcmp(act, "LeakyRelu")) gpux__wg_cat(s, "  y = select(y, %s * y, y < 0.0);\n", f0);
    else if (!strcmp(act, "Clip")) gpux__wg_cat(s, "  y = min(max(y, %s), %s);\n", f0, f1);
    else if (!strcmp(act, "HardSigmoid")) gpux__wg_cat(s, "  y = max(0.0, min(1.0, %s * y + %s));\n", f0, f1);
    else if (!strcmp(act, "HardSwish")) gpux__wg_cat(s, "  y = y * max(0.0, min(1.0, y * f32(0.16666667) + 0.5));\n");
    else if (!strcmp(act, "Sigmoid")) gpux__wg_cat(s, "  y = 1.0 / (1.0 + exp(-y));\n");
    else if (!strcmp(act, "Silu")) gpux__wg_cat(s, "  y = y * (1.0 / (1.0 + exp(-y)));\n");
    else if (act[0]) return gpux__wg_decline(b, "fused activation '%s'", act);
    if (ca && ca->n == 2) {
      gpux__wg_float(f0, ca->floats[0]);
      gpux__wg_float(f1, ca->floats[1]);
      gpux__wg_cat(s, "  y = min(max(y, %s), %s);\n", f0, f1);
    }
    if (ps >= 0) gpux__wg_cat(s, "  y = y * b%d[co] + b%d[co];\n", ps, pb);
  }
  if (narrow) gpux__wg_cat(s, "  return %s(y);\n}\n", narrow);
  else gpux__wg_cat(s, "  return y;\n}\n");
  return 0;
}

/* ---- Conv ---- */

static int op_conv(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *wt = gpux__wg_in(b, 1), *bias = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  if (!x || !wt || !y || x->ndim < 3 || wt->ndim != x->ndim) return gpux__wg_decline(b, "bad Conv inputs");
  if (!gpux__wg_is_f32(x->dtype) || wt->dtype != x->dtype || (bias && bias->dtype != x->dtype))
    return gpux__wg_decline(b, "Conv on %s", gpux_dtype_name(x->dtype));
  gpux__window w;
  int rc = read_window(b, x, wt->dims + 2, 1, 0, &w);
  if (rc) return rc;
  int64_t G = attr_i(b, "group", 1), N = x->dims[0], C = x->dims[1], M = wt->dims[0];
  if (G < 1 || C % G || M % G || wt->dims[1] * G != C) return gpux__wg_decline(b, "bad group");
  int64_t cg = C / G, mg = M / G, ks = w.k[0] * w.k[1] * w.k[2], os = w.out[0] * w.out[1] * w.out[2];
  int64_t is = w.in[0] * w.in[1] * w.in[2], K = cg * ks;
  if (!gpux_tensor_count(y)) return 0;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), bw = gpux__wg_bind_in(b, 1, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  int bb = bias && gpux_tensor_count(bias) ? gpux__wg_bind_in(b, 2, WG_F32) : -2;
  int ps, pb, pr;
  if (bx < 0 || bw < 0 || by < 0 || bb == -1 || bind_post(b, &ps, &pb, &pr)) return GPUX_E_UNSUPPORTED;
  char biasx[64] = "0.0";
  if (bb >= 0) snprintf(biasx, sizeof biasx, "b%d[co]", bb);
  int pointwise = ks == 1 && w.s[0] == 1 && w.s[1] == 1 && w.s[2] == 1 && !w.pb[0] && !w.pb[1] && !w.pb[2] && os == is;
  /* implicit GEMM on GPUs; on software adapters the direct kernel, whose shaders JIT-compile in a
   * fraction of the time (first runs there are compile-bound) */
  int software = gpux__wg_software(b);
  if (mg >= 16 && N * G <= 65535 && !software) {
    /* implicit GEMM per (image, group): [mg x K] weights times [K x os] input columns */
    wg_str pre = {0};
    if ((rc = emit_epilogue(b, &pre, ps, pb, pr))) { gpux__wg_str_free(&pre); return rc; }
    if (!pointwise) {
      gpux__wg_cat(&pre, "fn xload(z: u32, k: u32, n: u32) -> f32 {\n  let nb = z / %lluu;\n  let grp = z %% %lluu;\n"
                         "  let ci = k / %lluu;\n  let kr = k %% %lluu;\n",
                   (ull)G, (ull)G, (ull)ks, (ull)ks);
      gpux__wg_cat(&pre, "  let k2 = i32(kr %% %lluu);\n  let k1 = i32((kr / %lluu) %% %lluu);\n  let k0 = i32(kr / %lluu);\n",
                   (ull)w.k[2], (ull)w.k[2], (ull)w.k[1], (ull)(w.k[2] * w.k[1]));
      out_coords(&pre, &w, "n");
      for (int d = 0; d < 3; d++)
        gpux__wg_cat(&pre, "  let i%d = o%d * %lld - %lld + k%d * %lld;\n", d, d, (long long)w.s[d], (long long)w.pb[d], d, (long long)w.d[d]);
      gpux__wg_cat(&pre, "  if (i0 < 0 || i0 >= %lldi || i1 < 0 || i1 >= %lldi || i2 < 0 || i2 >= %lldi) { return 0.0; }\n",
                   (long long)w.in[0], (long long)w.in[1], (long long)w.in[2]);
      gpux__wg_cat(&pre, "  return b%d[((nb * %lluu + grp * %lluu + ci) * %lluu + u32(i0)) * %lluu + u32(i1 * %lldi + i2)];\n}\n", bx, (ull)C,
                   (ull)cg, (ull)w.in[0], (ull)(w.in[1] * w.in[2]), (long long)w.in[2]);
    }
    char la[200], lb[200], st[300];
    snprintf(la, sizeof la, "b%d[((z %% %lluu) * %lluu + m) * %lluu + k]", bw, (ull)G, (ull)mg, (ull)K);
    if (pointwise) snprintf(lb, sizeof lb, "b%d[((z / %lluu) * %lluu + (z %% %lluu) * %lluu + k) * %lluu + n]", bx, (ull)G, (ull)C, (ull)G, (ull)cg, (ull)os);
    else snprintf(lb, sizeof lb, "xload(z, k, n)");
    snprintf(st, sizeof st, "let co = (z %% %lluu) * %lluu + m; let oi = ((z / %lluu) * %lluu + co) * %lluu + n; b%d[oi] = gx_epi(v + %s, co, oi);",
             (ull)G, (ull)mg, (ull)G, (ull)M, (ull)os, by, biasx);
    wg_gemm g = {.M = mg, .N = os, .K = K, .batch = N * G, .load_a = la, .load_b = lb, .store = st, .a_k_contig = 1,
                 .b_n_contig = 1, .prelude = pre.s};
    rc = pre.oom ? gpux__wg_decline(b, "out of memory") : gpux__wg_gemm(b, &g);
    gpux__wg_str_free(&pre);
    return rc;
  }
  /* direct: one thread per output value */
  int64_t total = gpux_tensor_count(y);
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(total + 127) / 128, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  if ((rc = emit_epilogue(b, &s, ps, pb, pr))) { gpux__wg_str_free(&s); return rc; }
  gpux__wg_cat(&s, "@compute @workgroup_size(128)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let i = (wid.y * %uu + wid.x) * 128u + li;\n  if (i >= %lluu) { return; }\n"
                   "  let p = i %% %lluu;\n  let co = (i / %lluu) %% %lluu;\n  let nb = i / %lluu;\n  let grp = co / %lluu;\n",
               gx, (ull)total, (ull)os, (ull)os, (ull)M, (ull)(os * M), (ull)mg);
  out_coords(&s, &w, "p");
  gpux__wg_cat(&s, "  var acc = %s;\n  for (var ci = 0u; ci < %lluu; ci = ci + 1u) {\n"
                   "    let xb = (nb * %lluu + grp * %lluu + ci) * %lluu;\n    let wb = (co * %lluu + ci) * %lluu;\n",
               biasx, (ull)cg, (ull)C, (ull)cg, (ull)is, (ull)cg, (ull)ks);
  for (int d = 0; d < 3; d++)
    gpux__wg_cat(&s, "    for (var k%d = 0; k%d < %lld; k%d = k%d + 1) {\n      let i%d = o%d * %lld - %lld + k%d * %lld;\n"
                     "      if (i%d < 0 || i%d >= %lldi) { continue; }\n",
                 d, d, (long long)w.k[d], d, d, d, d, (long long)w.s[d], (long long)w.pb[d], d, (long long)w.d[d], d, d,
                 (long long)w.in[d]);
  gpux__wg_cat(&s, "      acc = fma(b%d[xb + u32((i0 * %lldi + i1) * %lldi + i2)], b%d[wb + u32((k0 * %lld + k1) * %lld + k2)], acc);\n",
               bx, (long long)w.in[1], (long long)w.in[2], bw, (long long)w.k[1], (long long)w.k[2]);
  gpux__wg_cat(&s, "    }}}\n  }\n  b%d[i] = gx_epi(acc, co, i);\n}\n", by);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* ---- ConvTranspose ---- */

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b) && ((a < 0) != (b < 0))); }

static int op_conv_transpose(wg_build *b) {
  const gpux__node *node = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *wt = gpux__wg_in(b, 1), *bias = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  if (!x || !wt || !y || x->ndim < 3 || wt->ndim != x->ndim) return gpux__wg_decline(b, "bad ConvTranspose inputs");
  if (!gpux__wg_is_f32(x->dtype) || wt->dtype != x->dtype) return gpux__wg_decline(b, "ConvTranspose on %s", gpux_dtype_name(x->dtype));
  gpux__window w;
  int rc = read_window(b, x, wt->dims + 2, 0, 0, &w);
  if (rc) return rc;
  int64_t G = attr_i(b, "group", 1), N = x->dims[0], C = x->dims[1];
  if (G < 1 || C % G || wt->dims[0] != C) return gpux__wg_decline(b, "bad group");
  int64_t cg = C / G, mg = wt->dims[1], M = mg * G;
  int nsp = w.nsp, off = 3 - nsp;
  const gpux__attr *opa = gpux__node_attr(node, "output_padding"), *osa = gpux__node_attr(node, "output_shape");
  const gpux__attr *apa = gpux__node_attr(node, "auto_pad");
  const char *ap = apa && apa->s ? apa->s : "NOTSET";
  int nos = osa ? osa->n : 0;
  const int64_t *oshape = osa ? osa->ints : NULL;
  if (nos == nsp + 2) oshape += 2, nos = nsp;
  for (int i = 0; i < nsp; i++) {
    int sl = off + i;
    int64_t ek = (w.k[sl] - 1) * w.d[sl] + 1, op = opa && opa->n == nsp ? opa->ints[i] : 0;
    int64_t full = w.s[sl] * (w.in[sl] - 1) + op + ek;
    int upper = !strcmp(ap, "SAME_UPPER"), lower = !strcmp(ap, "SAME_LOWER");
    if (nos || upper || lower) {
      w.out[sl] = nos ? oshape[i] : w.in[sl] * w.s[sl];
      int64_t total = full - w.out[sl];
      w.pb[sl] = upper ? floor_div(total, 2) : total - floor_div(total, 2);
      w.pe[sl] = total - w.pb[sl];
    } else {
      if (!strcmp(ap, "VALID")) w.pb[sl] = w.pe[sl] = 0;
      w.out[sl] = full - w.pb[sl] - w.pe[sl];
    }
  }
  int64_t os = w.out[0] * w.out[1] * w.out[2], is = w.in[0] * w.in[1] * w.in[2], ks = w.k[0] * w.k[1] * w.k[2];
  if (N * M * os != gpux_tensor_count(y)) return gpux__wg_decline(b, "output size disagrees");
  if (!gpux_tensor_count(y)) return 0;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), bw = gpux__wg_bind_in(b, 1, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  int bb = bias && gpux_tensor_count(bias) ? gpux__wg_bind_in(b, 2, WG_F32) : -2;
  int ps, pb, pr;
  if (bx < 0 || bw < 0 || by < 0 || bb == -1 || bind_post(b, &ps, &pb, &pr)) return GPUX_E_UNSUPPORTED;
  int64_t total = gpux_tensor_count(y);
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(total + 127) / 128, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  if ((rc = emit_epilogue(b, &s, ps, pb, pr))) { gpux__wg_str_free(&s); return rc; }
  gpux__wg_cat(&s, "@compute @workgroup_size(128)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let i = (wid.y * %uu + wid.x) * 128u + li;\n  if (i >= %lluu) { return; }\n"
                   "  let p = i %% %lluu;\n  let co = (i / %lluu) %% %lluu;\n  let nb = i / %lluu;\n  let grp = co / %lluu;\n  let com = co %% %lluu;\n",
               gx, (ull)total, (ull)os, (ull)os, (ull)M, (ull)(os * M), (ull)mg, (ull)mg);
  out_coords(&s, &w, "p");
  gpux__wg_cat(&s, "  var acc = %s;\n", bb >= 0 ? "0.0" : "0.0");
  if (bb >= 0) gpux__wg_cat(&s, "  acc = b%d[co];\n", bb);
  gpux__wg_cat(&s, "  for (var ci = 0u; ci < %lluu; ci = ci + 1u) {\n    let cin = grp * %lluu + ci;\n"
                   "    let xb = (nb * %lluu + cin) * %lluu;\n    let wb = (cin * %lluu + com) * %lluu;\n",
               (ull)cg, (ull)cg, (ull)C, (ull)is, (ull)mg, (ull)ks);
  for (int d = 0; d < 3; d++)
    gpux__wg_cat(&s, "    for (var k%d = 0; k%d < %lld; k%d = k%d + 1) {\n      let t%d = o%d + %lld - k%d * %lld;\n"
                     "      if (t%d < 0 || t%d %% %lld != 0 || t%d / %lld >= %lldi) { continue; }\n      let i%d = t%d / %lld;\n",
                 d, d, (long long)w.k[d], d, d, d, d, (long long)w.pb[d], d, (long long)w.d[d], d, d, (long long)w.s[d], d,
                 (long long)w.s[d], (long long)w.in[d], d, d, (long long)w.s[d]);
  gpux__wg_cat(&s, "      acc = fma(b%d[xb + u32((i0 * %lldi + i1) * %lldi + i2)], b%d[wb + u32((k0 * %lld + k1) * %lld + k2)], acc);\n",
               bx, (long long)w.in[1], (long long)w.in[2], bw, (long long)w.k[1], (long long)w.k[2]);
  gpux__wg_cat(&s, "    }}}\n  }\n  b%d[i] = gx_epi(acc, co, i);\n}\n", by);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* ---- pooling ---- */

enum { POOL_MAX, POOL_AVG, POOL_LP };

static int pool(wg_build *b, int kind) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0), *ind = gpux__wg_out(b, 1);
  if (!x || !y || x->ndim < 3) return gpux__wg_decline(b, "bad pooling input");
  if (!gpux__wg_is_f32(x->dtype)) return gpux__wg_decline(b, "pooling on %s", gpux_dtype_name(x->dtype));
  gpux__window w;
  int rc = read_window(b, x, NULL, 1, attr_i(b, "ceil_mode", 0) != 0, &w);
  if (rc) return rc;
  int cip = attr_i(b, "count_include_pad", 0) != 0, so = (int)attr_i(b, "storage_order", 0);
  const gpux__attr *pa = gpux__node_attr(gpux__wg_node(b), "p");
  float p = pa ? (pa->type == GPUX_ATTR_INT ? (float)pa->i : pa->f) : 2.0f;
  int64_t os = w.out[0] * w.out[1] * w.out[2], is = w.in[0] * w.in[1] * w.in[2];
  int64_t total = gpux_tensor_count(y);
  if (total != x->dims[0] * x->dims[1] * os) return gpux__wg_decline(b, "output size disagrees");
  if (!total) return 0;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  int bi = kind == POOL_MAX && ind ? gpux__wg_bind_out(b, 1, WG_I32) : -2;
  if (bx < 0 || by < 0 || bi == -1) return GPUX_E_UNSUPPORTED;
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(total + 127) / 128, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  gpux__wg_cat(&s, "@compute @workgroup_size(128)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let i = (wid.y * %uu + wid.x) * 128u + li;\n  if (i >= %lluu) { return; }\n"
                   "  let pos = i %% %lluu;\n  let plane = i / %lluu;\n  let xb = plane * %lluu;\n",
               gx, (ull)total, (ull)os, (ull)os, (ull)is);
  out_coords(&s, &w, "pos");
  gpux__wg_cat(&s, "  var acc = %s;\n  var cnt = 0;\n  var pcnt = 0;\n  var best = -1;\n", kind == POOL_MAX ? "-gx_inf()" : "0.0");
  for (int d = 0; d < 3; d++)
    gpux__wg_cat(&s, "  for (var k%d = 0; k%d < %lld; k%d = k%d + 1) {\n    let i%d = o%d * %lld - %lld + k%d * %lld;\n"
                     "    if (i%d < -%lld || i%d >= %lldi) { continue; }\n",
                 d, d, (long long)w.k[d], d, d, d, d, (long long)w.s[d], (long long)w.pb[d], d, (long long)w.d[d], d,
                 (long long)w.pb[d], d, (long long)(w.in[d] + w.pe[d]));
  gpux__wg_cat(&s, "    pcnt = pcnt + 1;\n    if (i0 < 0 || i0 >= %lldi || i1 < 0 || i1 >= %lldi || i2 < 0 || i2 >= %lldi) { continue; }\n"
                   "    cnt = cnt + 1;\n    let flat = (i0 * %lldi + i1) * %lldi + i2;\n    let v = b%d[xb + u32(flat)];\n",
               (long long)w.in[0], (long long)w.in[1], (long long)w.in[2], (long long)w.in[1], (long long)w.in[2], bx);
  if (kind == POOL_MAX) {
    const char *idx = so ? "i0 + (i1 + i2 * %lldi) * %lldi" : "flat";
    char ib[96];
    snprintf(ib, sizeof ib, idx, (long long)w.in[1], (long long)w.in[0]);
    gpux__wg_cat(&s, "    if (v == v && (best < 0 || v > acc)) { acc = v; best = %s; }\n", ib);
  } else if (kind == POOL_AVG) {
    gpux__wg_cat(&s, "    acc = acc + v;\n");
  } else {
    char pb[48];
    if (p == 1.0f) gpux__wg_cat(&s, "    acc = acc + abs(v);\n");
    else if (p == 2.0f) gpux__wg_cat(&s, "    acc = acc + v * v;\n");
    else gpux__wg_cat(&s, "    acc = acc + pow(abs(v), %s);\n", gpux__wg_float(pb, p));
  }
  gpux__wg_cat(&s, "  }}}\n");
  if (kind == POOL_MAX) {
    gpux__wg_cat(&s, "  if (cnt == 0) { acc = 0.0; }\n  b%d[i] = acc;\n", by);
    if (bi >= 0) gpux__wg_cat(&s, "  b%d[i] = select(-1, i32(xb) + best, best >= 0);\n", bi);
  } else if (kind == POOL_AVG) {
    gpux__wg_cat(&s, "  let n = %s;\n  b%d[i] = select(gx_nan(), acc / f32(n), n > 0);\n", cip ? "pcnt" : "cnt", by);
  } else {
    char pb[48];
    if (p == 1.0f) gpux__wg_cat(&s, "  b%d[i] = acc;\n", by);
    else if (p == 2.0f) gpux__wg_cat(&s, "  b%d[i] = sqrt(acc);\n", by);
    else gpux__wg_cat(&s, "  b%d[i] = pow(acc, %s);\n", by, gpux__wg_float(pb, 1.0f / p));
  }
  gpux__wg_cat(&s, "}\n");
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_maxpool(wg_build *b) { return pool(b, POOL_MAX); }
static int op_avgpool(wg_build *b) { return pool(b, POOL_AVG); }
static int op_lppool(wg_build *b) { return pool(b, POOL_LP); }

static int op_global_pool(wg_build *b) {
  const char *op = gpux__wg_node(b)->op_type;
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || x->ndim < 2 || !gpux__wg_is_f32(x->dtype)) return gpux__wg_decline(b, "bad global pooling input");
  int64_t planes = x->dims[0] * x->dims[1], size = gpux_tensor_count(x) / (planes ? planes : 1);
  if (!planes) return 0;
  int bx = gpux__wg_bind_in(b, 0, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  float p = 2.0f;
  const gpux__attr *pa = gpux__node_attr(gpux__wg_node(b), "p");
  if (pa) p = pa->type == GPUX_ATTR_INT ? (float)pa->i : pa->f;
  int kind = !strcmp(op, "GlobalMaxPool") ? POOL_MAX : !strcmp(op, "GlobalAveragePool") ? POOL_AVG : POOL_LP;
  /* a workgroup per plane on GPUs; a thread per plane on software adapters (no barriers) */
  int coop = !gpux__wg_software(b);
  uint32_t gx, gy;
  gpux__wg_grid(b, coop ? (uint64_t)planes : (uint64_t)(planes + 63) / 64, &gx, &gy);
  wg_str s = {0};
  char pb[48];
  gpux__wg_decls(b, &s);
  const char *init = kind == POOL_MAX ? "-gx_inf()" : "0.0";
  const char *comb = kind == POOL_MAX ? "max(a, b)" : "a + b";
  if (coop)
    gpux__wg_cat(&s, "var<workgroup> sh: array<f32, 64>;\n@compute @workgroup_size(64)\n"
                     "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                     "  let o = wid.y * %uu + wid.x;\n  if (o >= %lluu) { return; }\n  var acc = %s;\n"
                     "  for (var j = li; j < %lluu; j = j + 64u) {\n    let v = b%d[o * %lluu + j];\n",
                 gx, (ull)planes, init, (ull)size, bx, (ull)size);
  else
    gpux__wg_cat(&s, "@compute @workgroup_size(64)\n"
                     "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lt: u32) {\n"
                     "  let o = (wid.y * %uu + wid.x) * 64u + lt;\n  if (o >= %lluu) { return; }\n  var acc = %s;\n"
                     "  for (var j = 0u; j < %lluu; j = j + 1u) {\n    let v = b%d[o * %lluu + j];\n",
                 gx, (ull)planes, init, (ull)size, bx, (ull)size);
  if (kind == POOL_MAX) gpux__wg_cat(&s, "    acc = max(acc, v);\n");
  else if (kind == POOL_AVG || p == 1.0f) gpux__wg_cat(&s, "    acc = acc + %s;\n", kind == POOL_AVG ? "v" : "abs(v)");
  else if (p == 2.0f) gpux__wg_cat(&s, "    acc = acc + v * v;\n");
  else gpux__wg_cat(&s, "    acc = acc + pow(abs(v), %s);\n", gpux__wg_float(pb, p));
  if (coop)
    gpux__wg_cat(&s, "  }\n  sh[li] = acc;\n  workgroupBarrier();\n"
                     "  for (var w = 32u; w > 0u; w = w >> 1u) {\n    if (li < w) { let a = sh[li]; let b = sh[li + w]; sh[li] = %s; }\n"
                     "    workgroupBarrier();\n  }\n  if (li == 0u) {\n    let r = sh[0];\n",
                 comb);
  else
    gpux__wg_cat(&s, "  }\n  {\n    let r = acc;\n");
  if (kind == POOL_MAX) gpux__wg_cat(&s, "    b%d[o] = r;\n", by);
  else if (kind == POOL_AVG) gpux__wg_cat(&s, "    b%d[o] = r / %llu.0;\n", by, (ull)size);
  else if (p == 1.0f) gpux__wg_cat(&s, "    b%d[o] = r;\n", by);
  else if (p == 2.0f) gpux__wg_cat(&s, "    b%d[o] = sqrt(r);\n", by);
  else gpux__wg_cat(&s, "    b%d[o] = pow(r, %s);\n", by, gpux__wg_float(pb, 1.0f / p));
  gpux__wg_cat(&s, "  }\n}\n");
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

const wg_op gpux__wg_ops_conv[] = {
  {"Conv", op_conv},             {"ConvTranspose", op_conv_transpose},
  {"gpux.FusedConv", op_conv},   {"gpux.FusedConvTranspose", op_conv_transpose},
  {"MaxPool", op_maxpool},       {"AveragePool", op_avgpool},      {"LpPool", op_lppool},
  {"GlobalMaxPool", op_global_pool}, {"GlobalAveragePool", op_global_pool}, {"GlobalLpPool", op_global_pool},
  {0},
};
