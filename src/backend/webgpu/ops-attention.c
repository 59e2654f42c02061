/* ops-attention.c — the Attention op (opsets 23+) in float32 on the GPU, with the CPU kernel's
 * semantics (ops/attention.c): 3-D or 4-D Q/K/V, grouped-query heads, past/present KV, boolean
 * or additive masks (a mask shorter than the keys is padded with -inf), causal and sliding-window
 * masking, nonpad_kv_seqlen, softcap, every qk_matmul_output_mode, and the "safe softmax" that
 * gives a fully masked row zero probabilities. One invocation handles one query row: scores into
 * a scratch row, softmax in place, then the weighted sum of V. */
#include "backend/webgpu/wg.h"
#include <math.h>
#include <stdio.h>

typedef unsigned long long ull;

static int64_t attr_i(wg_build *b, const char *name, int64_t dflt) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), name);
  return a ? a->i : dflt;
}

static int op_attention(wg_build *b) {
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *Q = gpux__wg_in(b, 0), *K = gpux__wg_in(b, 1), *V = gpux__wg_in(b, 2), *M = gpux__wg_in(b, 3),
                    *PK = gpux__wg_in(b, 4), *PV = gpux__wg_in(b, 5), *NP = gpux__wg_in(b, 6);
  if (!Q || !K || !V) return gpux__wg_decline(b, "missing Q, K or V");
  /* bfloat16 declines: the CPU kernel rounds every step of the function body to bfloat16 */
  if (!gpux__wg_is_f32(Q->dtype) || Q->dtype == GPUX_DT_BFLOAT16 || K->dtype != Q->dtype || V->dtype != Q->dtype)
    return gpux__wg_decline(b, "Attention on %s", gpux_dtype_name(Q->dtype));
  if (Q->ndim != K->ndim || Q->ndim != V->ndim || (Q->ndim != 3 && Q->ndim != 4)) return gpux__wg_decline(b, "bad ranks");
  int three_d = Q->ndim == 3;
  int64_t B = Q->dims[0], Hq, Hkv, Sq, D, Dv, Skv, P = 0;
  if (three_d) {
    Hq = attr_i(b, "q_num_heads", 0);
    Hkv = attr_i(b, "kv_num_heads", 0);
    if (Hq <= 0 || Hkv <= 0 || Q->dims[2] % Hq || V->dims[2] % Hkv) return gpux__wg_decline(b, "bad head counts");
    Sq = Q->dims[1], D = Q->dims[2] / Hq, Skv = K->dims[1], Dv = V->dims[2] / Hkv;
  } else {
    Hq = Q->dims[1], Sq = Q->dims[2], D = Q->dims[3], Hkv = K->dims[1], Skv = K->dims[2], Dv = V->dims[3];
  }
  if (Hkv <= 0 || Hq % Hkv) return gpux__wg_decline(b, "bad head counts");
  if (!PK != !PV) return gpux__wg_decline(b, "past_key without past_value");
  if (PK) {
    if (PK->dtype != Q->dtype || PV->dtype != Q->dtype || PK->ndim != 4) return gpux__wg_decline(b, "bad past");
    P = PK->dims[2];
  }
  int64_t T = P + Skv, group = Hq / Hkv;
  const gpux__attr *sa = gpux__node_attr(n, "scale"), *ca = gpux__node_attr(n, "softcap");
  float scale = sa ? sa->f : (D > 0 ? 1.0f / sqrtf((float)D) : 1.0f), softcap = ca ? ca->f : 0.0f;
  int causal = attr_i(b, "is_causal", 0) != 0, mode = (int)attr_i(b, "qk_matmul_output_mode", 0);
  int64_t left = attr_i(b, "left_window_size", -1), right = attr_i(b, "right_window_size", -1);
  if (mode < 0 || mode > 3) return gpux__wg_decline(b, "qk_matmul_output_mode %d", mode);
  int64_t mdims[4] = {1, 1, 1, 1}, mst[3] = {0, 0, 0}, mask_t = 0;
  int mask_bool = 0;
  if (M) {
    if (M->ndim < 1 || M->ndim > 4) return gpux__wg_decline(b, "bad mask rank");
    if (M->dtype == GPUX_DT_BOOL) mask_bool = 1;
    else if (!gpux__wg_is_f32(M->dtype)) return gpux__wg_decline(b, "mask of %s", gpux_dtype_name(M->dtype));
    for (int d = 0; d < M->ndim; d++) mdims[4 - M->ndim + d] = M->dims[d];
    mask_t = mdims[3];
    if (mask_t > T) return gpux__wg_decline(b, "mask wider than the keys");
    mst[2] = mdims[2] == 1 ? 0 : mdims[3];
    mst[1] = mdims[1] == 1 ? 0 : mdims[2] * mdims[3];
    mst[0] = mdims[0] == 1 ? 0 : mdims[1] * mdims[2] * mdims[3];
  }
  int64_t rows = B * Hq * Sq;
  if (!rows) return 0;
  if (!T) return gpux__wg_decline(b, "no keys");
  /* bindings */
  int bq = gpux__wg_bind_in(b, 0, WG_F32), bk = gpux__wg_bind_in(b, 1, WG_F32), bv = gpux__wg_bind_in(b, 2, WG_F32);
  int bm = M ? gpux__wg_bind_in(b, 3, mask_bool ? WG_I32 : WG_F32) : -2;
  int bpk = PK && P ? gpux__wg_bind_in(b, 4, WG_F32) : -2, bpv = PV && P ? gpux__wg_bind_in(b, 5, WG_F32) : -2;
  int bnp = NP ? gpux__wg_bind_in(b, 6, WG_I32) : -2;
  int by = gpux__wg_bind_out(b, 0, WG_F32);
  int bqk = gpux__wg_out(b, 3) ? gpux__wg_bind_out(b, 3, WG_F32) : -2;
  int sc = gpux__wg_scratch(b, (uint64_t)rows * (uint64_t)T * 4);
  int bs = sc >= 0 ? gpux__wg_bind_scratch(b, sc, WG_F32) : -1;
  if (bq < 0 || bk < 0 || bv < 0 || bm == -1 || bpk == -1 || bpv == -1 || bnp == -1 || by < 0 || bqk == -1 || bs < 0)
    return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  char f1[48], f2[48];
  gpux__wg_decls(b, &s);
  /* K and V element (batch, kv head, key j, dim d), past first */
  for (int which = 0; which < 2; which++) {
    int cur = which ? bv : bk, past = which ? bpv : bpk;
    int64_t dd = which ? Dv : D;
    gpux__wg_cat(&s, "fn %s(bb: u32, h: u32, j: u32, d: u32) -> f32 {\n", which ? "vval" : "kval");
    if (past >= 0) gpux__wg_cat(&s, "  if (j < %lluu) { return b%d[((bb * %lluu + h) * %lluu + j) * %lluu + d]; }\n", (ull)P, past, (ull)Hkv, (ull)P, (ull)dd);
    if (three_d) gpux__wg_cat(&s, "  return b%d[((bb * %lluu + (j - %lluu)) * %lluu + h) * %lluu + d];\n}\n", cur, (ull)Skv, (ull)P, (ull)Hkv, (ull)dd);
    else gpux__wg_cat(&s, "  return b%d[((bb * %lluu + h) * %lluu + (j - %lluu)) * %lluu + d];\n}\n", cur, (ull)Hkv, (ull)Skv, (ull)P, (ull)dd);
  }
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(rows + 63) / 64, &gx, &gy);
  gpux__wg_cat(&s, "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let r = (wid.y * %uu + wid.x) * 64u + li;\n  if (r >= %lluu) { return; }\n"
                   "  let i = r %% %lluu;\n  let h = (r / %lluu) %% %lluu;\n  let bb = r / %lluu;\n  let kvh = h / %lluu;\n",
               gx, (ull)rows, (ull)Sq, (ull)Sq, (ull)Hq, (ull)(Sq * Hq), (ull)group);
  if (three_d) gpux__wg_cat(&s, "  let qo = ((bb * %lluu + i) * %lluu + h) * %lluu;\n  let yo = ((bb * %lluu + i) * %lluu + h) * %lluu;\n",
                            (ull)Sq, (ull)Hq, (ull)D, (ull)Sq, (ull)Hq, (ull)Dv);
  else gpux__wg_cat(&s, "  let qo = ((bb * %lluu + h) * %lluu + i) * %lluu;\n  let yo = ((bb * %lluu + h) * %lluu + i) * %lluu;\n",
                    (ull)Hq, (ull)Sq, (ull)D, (ull)Hq, (ull)Sq, (ull)Dv);
  /* the keys this row may see */
  gpux__wg_cat(&s, "  var offset = 0;\n");
  if (P) gpux__wg_cat(&s, "  offset = %lld;\n", (long long)P);
  else if (bnp >= 0) gpux__wg_cat(&s, "  offset = b%d[bb] - %lld;\n", bnp, (long long)Sq);
  gpux__wg_cat(&s, "  let pos = i32(i) + offset;\n  var lo = 0;\n  var hi = %lld;\n", (long long)T);
  if (causal) gpux__wg_cat(&s, "  hi = min(hi, pos + 1);\n");
  if (left >= 0) gpux__wg_cat(&s, "  lo = max(lo, pos - %lld);\n", (long long)(left > (1 << 30) ? (1 << 30) : left));
  if (right >= 0) gpux__wg_cat(&s, "  hi = min(hi, pos + %lld);\n", (long long)((right > (1 << 30) ? (1 << 30) : right) + 1));
  if (bnp >= 0) gpux__wg_cat(&s, "  hi = min(hi, b%d[bb]);\n", bnp);
  gpux__wg_cat(&s, "  lo = min(lo, %lld);\n  hi = max(hi, lo);\n  let so = r * %lluu;\n  var any = false;\n  var mx = -gx_inf();\n",
               (long long)T, (ull)T);
  /* scores */
  gpux__wg_cat(&s, "  for (var j = 0u; j < %lluu; j = j + 1u) {\n    var sc = 0.0;\n"
                   "    for (var d = 0u; d < %lluu; d = d + 1u) { sc = sc + b%d[qo + d] * kval(bb, kvh, j, d); }\n    sc = sc * %s;\n",
               (ull)T, (ull)D, bq, gpux__wg_float(f1, scale));
  if (bqk >= 0 && mode == 0) gpux__wg_cat(&s, "    b%d[so + j] = sc;\n", bqk);
  if (softcap > 0) gpux__wg_cat(&s, "    sc = %s * tanh(clamp(sc / %s, -15.0, 15.0));\n", gpux__wg_float(f1, softcap), gpux__wg_float(f2, softcap));
  if (bqk >= 0 && mode == 1) gpux__wg_cat(&s, "    b%d[so + j] = sc;\n", bqk);
  gpux__wg_cat(&s, "    let ji = i32(j);\n    if (ji < lo || ji >= hi) { sc = -gx_inf(); }\n");
  if (bm >= 0) {
    gpux__wg_cat(&s, "    else {\n      var bias = -gx_inf();\n      if (j < %lluu) {\n        let mv = b%d[bb * %lluu + h * %lluu + i * %lluu + j];\n",
                 (ull)mask_t, bm, (ull)mst[0], (ull)mst[1], (ull)mst[2]);
    if (mask_bool) gpux__wg_cat(&s, "        bias = select(-gx_inf(), 0.0, mv != 0);\n");
    else gpux__wg_cat(&s, "        bias = mv;\n");
    gpux__wg_cat(&s, "      }\n      if (bias != -gx_inf()) { any = true; }\n      sc = sc + bias;\n    }\n");
  } else {
    gpux__wg_cat(&s, "    else { any = true; }\n");
  }
  if (bqk >= 0 && mode == 2) gpux__wg_cat(&s, "    b%d[so + j] = sc;\n", bqk);
  gpux__wg_cat(&s, "    b%d[so + j] = sc;\n    if (ji >= lo && ji < hi) { mx = max(mx, sc); }\n  }\n", bs);
  /* softmax over [lo, hi); a row with nothing left gets zeros */
  gpux__wg_cat(&s, "  var sum = 0.0;\n  for (var j = 0u; j < %lluu; j = j + 1u) {\n    let ji = i32(j);\n    var e = 0.0;\n"
                   "    if (any && ji >= lo && ji < hi && mx != -gx_inf()) { e = exp(b%d[so + j] - mx); }\n"
                   "    b%d[so + j] = e;\n    sum = sum + e;\n  }\n"
                   "  let inv = select(0.0, 1.0 / sum, sum > 0.0);\n",
               (ull)T, bs, bs);
  gpux__wg_cat(&s, "  for (var j = 0u; j < %lluu; j = j + 1u) { b%d[so + j] = b%d[so + j] * inv; }\n", (ull)T, bs, bs);
  if (bqk >= 0 && mode == 3) gpux__wg_cat(&s, "  for (var j = 0u; j < %lluu; j = j + 1u) { b%d[so + j] = b%d[so + j]; }\n", (ull)T, bqk, bs);
  /* Y = P V */
  gpux__wg_cat(&s, "  for (var d = 0u; d < %lluu; d = d + 1u) {\n    var acc = 0.0;\n"
                   "    for (var j = 0u; j < %lluu; j = j + 1u) { let p = b%d[so + j]; if (p != 0.0) { acc = acc + p * vval(bb, kvh, j, d); } }\n"
                   "    b%d[yo + d] = acc;\n  }\n}\n",
               (ull)Dv, (ull)T, bs, by);
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  if (rc) return rc;
  /* present_key / present_value: the past followed by the current keys and values */
  for (int which = 0; which < 2; which++) {
    if (!gpux__wg_out(b, 1 + which)) continue;
    int64_t dd = which ? Dv : D, total = B * Hkv * T * dd;
    int cur = gpux__wg_bind_in(b, which ? 2 : 1, WG_F32), past = P ? gpux__wg_bind_in(b, which ? 5 : 4, WG_F32) : -2;
    int out = gpux__wg_bind_out(b, 1 + which, WG_F32);
    if (cur < 0 || past == -1 || out < 0) return GPUX_E_UNSUPPORTED;
    wg_str t = {0};
    gpux__wg_decls(b, &t);
    gpux__wg_grid(b, (uint64_t)(total + 255) / 256, &gx, &gy);
    gpux__wg_cat(&t, "@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                     "  let e = (wid.y * %uu + wid.x) * 256u + li;\n  if (e >= %lluu) { return; }\n"
                     "  let d = e %% %lluu;\n  let j = (e / %lluu) %% %lluu;\n  let h = (e / %lluu) %% %lluu;\n  let bb = e / %lluu;\n",
                 gx, (ull)total, (ull)dd, (ull)dd, (ull)T, (ull)(dd * T), (ull)Hkv, (ull)(dd * T * Hkv));
    if (past >= 0) gpux__wg_cat(&t, "  if (j < %lluu) { b%d[e] = b%d[((bb * %lluu + h) * %lluu + j) * %lluu + d]; return; }\n", (ull)P, out, past,
                                (ull)Hkv, (ull)P, (ull)dd);
    if (three_d) gpux__wg_cat(&t, "  b%d[e] = b%d[((bb * %lluu + (j - %lluu)) * %lluu + h) * %lluu + d];\n}\n", out, cur, (ull)Skv, (ull)P, (ull)Hkv, (ull)dd);
    else gpux__wg_cat(&t, "  b%d[e] = b%d[((bb * %lluu + h) * %lluu + (j - %lluu)) * %lluu + d];\n}\n", out, cur, (ull)Hkv, (ull)Skv, (ull)P, (ull)dd);
    rc = gpux__wg_dispatch(b, &t, gx, gy, 1);
    gpux__wg_str_free(&t);
    if (rc) return rc;
  }
  return 0;
}

const wg_op gpux__wg_ops_attention[] = {
  {"Attention", op_attention},
  {0},
};
