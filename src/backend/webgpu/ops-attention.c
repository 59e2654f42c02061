/* ops-attention.c — the Attention op (opsets 23+) in float32 on the GPU, with the CPU kernel's
 * semantics (ops/attention.c): 3-D or 4-D Q/K/V, grouped-query heads, past/present KV, boolean
 * or additive masks (a mask shorter than the keys is padded with -inf), causal and sliding-window
 * masking, nonpad_kv_seqlen, softcap, every qk_matmul_output_mode, and the "safe softmax" that
 * gives a fully masked row zero probabilities.
 *
 * The common case (no softcap, no qk_matmul_output, no nonpad_kv_seqlen, head sizes multiples of
 * 4 up to 256) takes a fused kernel that never writes the scores to memory: the probabilities come
 * from an online softmax (a running maximum and sum per query row, in f32, the partial output
 * rescaled when the maximum grows). It is flash-attention shaped: a workgroup per (batch, head,
 * block of 16 or 32 query rows), Q of the block and each tile of 32 keys and values staged in
 * workgroup memory, four threads per row each holding 8 scores of a tile and a quarter of the
 * row's output in registers. One or a few query rows (a decoder's step) get a workgroup each on
 * GPUs instead, its threads split over the keys. Software adapters (lavapipe) compute blocks of
 * rows as the backend's GEMM (software form), a softmax pass and the GEMM again, the scores in
 * scratch. Every other case takes the general kernel: one invocation per query row, scores into a
 * scratch row, softmax in place, then the weighted sum of V. GPUX_WEBGPU_ATTENTION=rows sends
 * every case to it (to compare). */
#include "backend/webgpu/wg.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef unsigned long long ull;

/* fused kernels: keys per tile and per chunk, threads of the one-row form */
#define TILE 32
#define CHUNK 256
#define ROW_THREADS 128

/* The node's shapes and settings. */
typedef struct attn {
  int three_d;
  int64_t B, Hq, Hkv, Sq, D, Dv, Skv, P, T, group; /* T = P + Skv keys */
  float scale, softcap;
  int causal, mode;
  int64_t left, right;                /* window sizes, -1: none */
  int64_t mst[3], mask_t;             /* mask strides (batch, head, row; 0: broadcast), its width */
  int has_mask, mask_bool, has_np, has_qk;
} attn;

/* bindings of the fused kernels' dispatch */
typedef struct attn_bind {
  int q, k, v, m, pk, pv, y;
} attn_bind;

static int64_t attr_i(wg_build *b, const char *name, int64_t dflt) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), name);
  return a ? a->i : dflt;
}

/* Reads the node into a; declines what no kernel takes. */
static int parse(wg_build *b, attn *a) {
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *Q = gpux__wg_in(b, 0), *K = gpux__wg_in(b, 1), *V = gpux__wg_in(b, 2), *M = gpux__wg_in(b, 3),
                    *PK = gpux__wg_in(b, 4), *PV = gpux__wg_in(b, 5);
  memset(a, 0, sizeof *a);
  if (!Q || !K || !V) return gpux__wg_decline(b, "missing Q, K or V");
  /* bfloat16 declines: the CPU kernel rounds every step of the function body to bfloat16 */
  if (!gpux__wg_is_f32(Q->dtype) || Q->dtype == GPUX_DT_BFLOAT16 || K->dtype != Q->dtype || V->dtype != Q->dtype)
    return gpux__wg_decline(b, "Attention on %s", gpux_dtype_name(Q->dtype));
  if (Q->ndim != K->ndim || Q->ndim != V->ndim || (Q->ndim != 3 && Q->ndim != 4)) return gpux__wg_decline(b, "bad ranks");
  a->three_d = Q->ndim == 3;
  a->B = Q->dims[0];
  if (a->three_d) {
    a->Hq = attr_i(b, "q_num_heads", 0);
    a->Hkv = attr_i(b, "kv_num_heads", 0);
    if (a->Hq <= 0 || a->Hkv <= 0 || Q->dims[2] % a->Hq || V->dims[2] % a->Hkv) return gpux__wg_decline(b, "bad head counts");
    a->Sq = Q->dims[1], a->D = Q->dims[2] / a->Hq, a->Skv = K->dims[1], a->Dv = V->dims[2] / a->Hkv;
  } else {
    a->Hq = Q->dims[1], a->Sq = Q->dims[2], a->D = Q->dims[3], a->Hkv = K->dims[1], a->Skv = K->dims[2], a->Dv = V->dims[3];
  }
  if (a->Hkv <= 0 || a->Hq % a->Hkv) return gpux__wg_decline(b, "bad head counts");
  if (!PK != !PV) return gpux__wg_decline(b, "past_key without past_value");
  if (PK) {
    if (PK->dtype != Q->dtype || PV->dtype != Q->dtype || PK->ndim != 4) return gpux__wg_decline(b, "bad past");
    a->P = PK->dims[2];
  }
  a->T = a->P + a->Skv, a->group = a->Hq / a->Hkv;
  const gpux__attr *sa = gpux__node_attr(n, "scale"), *ca = gpux__node_attr(n, "softcap");
  a->scale = sa ? sa->f : (a->D > 0 ? 1.0f / sqrtf((float)a->D) : 1.0f), a->softcap = ca ? ca->f : 0.0f;
  a->causal = attr_i(b, "is_causal", 0) != 0, a->mode = (int)attr_i(b, "qk_matmul_output_mode", 0);
  a->left = attr_i(b, "left_window_size", -1), a->right = attr_i(b, "right_window_size", -1);
  if (a->mode < 0 || a->mode > 3) return gpux__wg_decline(b, "qk_matmul_output_mode %d", a->mode);
  if (M) {
    int64_t md[4] = {1, 1, 1, 1};
    if (M->ndim < 1 || M->ndim > 4) return gpux__wg_decline(b, "bad mask rank");
    if (M->dtype == GPUX_DT_BOOL) a->mask_bool = 1;
    else if (!gpux__wg_is_f32(M->dtype)) return gpux__wg_decline(b, "mask of %s", gpux_dtype_name(M->dtype));
    for (int d = 0; d < M->ndim; d++) md[4 - M->ndim + d] = M->dims[d];
    a->has_mask = 1;
    a->mask_t = md[3];
    if (a->mask_t > a->T) return gpux__wg_decline(b, "mask wider than the keys");
    a->mst[2] = md[2] == 1 ? 0 : md[3];
    a->mst[1] = md[1] == 1 ? 0 : md[2] * md[3];
    a->mst[0] = md[0] == 1 ? 0 : md[1] * md[2] * md[3];
  }
  a->has_np = gpux__wg_in(b, 6) != NULL;
  a->has_qk = gpux__wg_out(b, 3) != NULL;
  return 0;
}

/* ---- the general kernel: one invocation per query row, scores in scratch ---- */

/* fn kval (which 0) or vval (1) (bb, h, j, d): K or V element (batch, kv head, key j, dim d),
 * past first */
static void kv_fn(wg_str *s, const attn *a, int which, int cur, int past) {
  int64_t dd = which ? a->Dv : a->D;
  gpux__wg_cat(s, "fn %s(bb: u32, h: u32, j: u32, d: u32) -> f32 {\n", which ? "vval" : "kval");
  if (past >= 0)
    gpux__wg_cat(s, "  if (j < %lluu) { return b%d[((bb * %lluu + h) * %lluu + j) * %lluu + d]; }\n", (ull)a->P, past, (ull)a->Hkv,
                 (ull)a->P, (ull)dd);
  if (a->three_d)
    gpux__wg_cat(s, "  return b%d[((bb * %lluu + (j - %lluu)) * %lluu + h) * %lluu + d];\n}\n", cur, (ull)a->Skv, (ull)a->P,
                 (ull)a->Hkv, (ull)dd);
  else
    gpux__wg_cat(s, "  return b%d[((bb * %lluu + h) * %lluu + (j - %lluu)) * %lluu + d];\n}\n", cur, (ull)a->Hkv, (ull)a->Skv,
                 (ull)a->P, (ull)dd);
}

static void kv_fns(wg_str *s, const attn *a, int bk, int bv, int bpk, int bpv) {
  kv_fn(s, a, 0, bk, bpk);
  kv_fn(s, a, 1, bv, bpv);
}

static int attn_rows(wg_build *b, const attn *a) {
  const gpux_tensor *M = gpux__wg_in(b, 3), *PK = gpux__wg_in(b, 4), *PV = gpux__wg_in(b, 5), *NP = gpux__wg_in(b, 6);
  int64_t P = a->P, T = a->T, Sq = a->Sq, Hq = a->Hq, D = a->D, Dv = a->Dv, rows = a->B * a->Hq * a->Sq;
  int bq = gpux__wg_bind_in(b, 0, WG_F32), bk = gpux__wg_bind_in(b, 1, WG_F32), bv = gpux__wg_bind_in(b, 2, WG_F32);
  int bm = M ? gpux__wg_bind_in(b, 3, a->mask_bool ? WG_I32 : WG_F32) : -2;
  int bpk = PK && P ? gpux__wg_bind_in(b, 4, WG_F32) : -2, bpv = PV && P ? gpux__wg_bind_in(b, 5, WG_F32) : -2;
  int bnp = NP ? gpux__wg_bind_in(b, 6, WG_I32) : -2;
  int by = gpux__wg_bind_out(b, 0, WG_F32);
  int bqk = a->has_qk ? gpux__wg_bind_out(b, 3, WG_F32) : -2;
  int sc = gpux__wg_scratch(b, (uint64_t)rows * (uint64_t)T * 4);
  int bs = sc >= 0 ? gpux__wg_bind_scratch(b, sc, WG_F32) : -1;
  if (bq < 0 || bk < 0 || bv < 0 || bm == -1 || bpk == -1 || bpv == -1 || bnp == -1 || by < 0 || bqk == -1 || bs < 0)
    return GPUX_E_UNSUPPORTED;
  int mode = a->mode;
  wg_str s = {0};
  char f1[48], f2[48];
  gpux__wg_decls(b, &s);
  kv_fns(&s, a, bk, bv, bpk, bpv);
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(rows + 63) / 64, &gx, &gy);
  gpux__wg_cat(&s, "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let r = (wid.y * %uu + wid.x) * 64u + li;\n  if (r >= %lluu) { return; }\n"
                   "  let i = r %% %lluu;\n  let h = (r / %lluu) %% %lluu;\n  let bb = r / %lluu;\n  let kvh = h / %lluu;\n",
               gx, (ull)rows, (ull)Sq, (ull)Sq, (ull)Hq, (ull)(Sq * Hq), (ull)a->group);
  if (a->three_d) gpux__wg_cat(&s, "  let qo = ((bb * %lluu + i) * %lluu + h) * %lluu;\n  let yo = ((bb * %lluu + i) * %lluu + h) * %lluu;\n",
                               (ull)Sq, (ull)Hq, (ull)D, (ull)Sq, (ull)Hq, (ull)Dv);
  else gpux__wg_cat(&s, "  let qo = ((bb * %lluu + h) * %lluu + i) * %lluu;\n  let yo = ((bb * %lluu + h) * %lluu + i) * %lluu;\n",
                    (ull)Hq, (ull)Sq, (ull)D, (ull)Hq, (ull)Sq, (ull)Dv);
  /* the keys this row may see */
  gpux__wg_cat(&s, "  var offset = 0;\n");
  if (P) gpux__wg_cat(&s, "  offset = %lldi;\n", (long long)P);
  else if (bnp >= 0) gpux__wg_cat(&s, "  offset = b%d[bb] - %lldi;\n", bnp, (long long)Sq);
  gpux__wg_cat(&s, "  let pos = i32(i) + offset;\n  var lo = 0;\n  var hi = %lldi;\n", (long long)T);
  if (a->causal) gpux__wg_cat(&s, "  hi = min(hi, pos + 1);\n");
  if (a->left >= 0) gpux__wg_cat(&s, "  lo = max(lo, pos - %lldi);\n", (long long)(a->left > (1 << 30) ? (1 << 30) : a->left));
  if (a->right >= 0) gpux__wg_cat(&s, "  hi = min(hi, pos + %lldi);\n", (long long)((a->right > (1 << 30) ? (1 << 30) : a->right) + 1));
  if (bnp >= 0) gpux__wg_cat(&s, "  hi = min(hi, b%d[bb]);\n", bnp);
  gpux__wg_cat(&s, "  lo = min(lo, %lldi);\n  hi = max(hi, lo);\n  let so = r * %lluu;\n  var any = false;\n  var mx = -gx_inf();\n",
               (long long)T, (ull)T);
  /* scores */
  gpux__wg_cat(&s, "  for (var j = 0u; j < %lluu; j = j + 1u) {\n    var sc = 0.0;\n"
                   "    for (var d = 0u; d < %lluu; d = d + 1u) { sc = sc + b%d[qo + d] * kval(bb, kvh, j, d); }\n    sc = sc * %s;\n",
               (ull)T, (ull)D, bq, gpux__wg_float(f1, a->scale));
  if (bqk >= 0 && mode == 0) gpux__wg_cat(&s, "    b%d[so + j] = sc;\n", bqk);
  if (a->softcap > 0)
    gpux__wg_cat(&s, "    sc = %s * tanh(clamp(sc / %s, -15.0, 15.0));\n", gpux__wg_float(f1, a->softcap), gpux__wg_float(f2, a->softcap));
  if (bqk >= 0 && mode == 1) gpux__wg_cat(&s, "    b%d[so + j] = sc;\n", bqk);
  gpux__wg_cat(&s, "    let ji = i32(j);\n    if (ji < lo || ji >= hi) { sc = -gx_inf(); }\n");
  if (bm >= 0) {
    gpux__wg_cat(&s, "    else {\n      var bias = -gx_inf();\n      if (j < %lluu) {\n        let mv = b%d[bb * %lluu + h * %lluu + i * %lluu + j];\n",
                 (ull)a->mask_t, bm, (ull)a->mst[0], (ull)a->mst[1], (ull)a->mst[2]);
    if (a->mask_bool) gpux__wg_cat(&s, "        bias = select(-gx_inf(), 0.0, mv != 0);\n");
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
  return rc;
}

/* ---- the fused kernels ---- */

/* Whether the fused kernels take the node. */
static int fused_ok(const attn *a) {
  const char *e = getenv("GPUX_WEBGPU_ATTENTION");
  if (e && !strcmp(e, "rows")) return 0;
  return a->softcap <= 0 && !a->has_qk && !a->has_np && a->D > 0 && a->D % 4 == 0 && a->D <= 256 && a->Dv > 0 && a->Dv % 4 == 0 &&
         a->Dv <= 256 && a->T < (1ll << 30) && a->B * a->Hq * a->Sq * (a->D > a->Dv ? a->D : a->Dv) < (1ll << 32) &&
         a->B * a->Hkv * a->T * (a->D > a->Dv ? a->D : a->Dv) < (1ll << 32);
}

/* The WGSL functions the fused kernels share: gx_qo / gx_yo(bb, h, i), the offsets of a row of Q
 * and of Y; gx_klo / gx_khi(i), the keys row i sees, [lo, hi); gx_score(x, bb, h, i, j, lo, hi),
 * key j's score from its product x (scaled, masked: -inf where the row may not see it). */
static void offset_fns(wg_str *s, const attn *a) {
  ull Sq = (ull)a->Sq, Hq = (ull)a->Hq;
  if (a->three_d)
    gpux__wg_cat(s, "fn gx_qo(bb: u32, h: u32, i: u32) -> u32 { return ((bb * %lluu + i) * %lluu + h) * %lluu; }\n"
                    "fn gx_yo(bb: u32, h: u32, i: u32) -> u32 { return ((bb * %lluu + i) * %lluu + h) * %lluu; }\n",
                 Sq, Hq, (ull)a->D, Sq, Hq, (ull)a->Dv);
  else
    gpux__wg_cat(s, "fn gx_qo(bb: u32, h: u32, i: u32) -> u32 { return ((bb * %lluu + h) * %lluu + i) * %lluu; }\n"
                    "fn gx_yo(bb: u32, h: u32, i: u32) -> u32 { return ((bb * %lluu + h) * %lluu + i) * %lluu; }\n",
                 Hq, Sq, (ull)a->D, Hq, Sq, (ull)a->Dv);
}

static void fused_fns(wg_str *s, const attn *a, const attn_bind *bd) {
  char f[48];
  offset_fns(s, a);
  long long T = (long long)a->T, P = (long long)a->P;
  gpux__wg_cat(s, "fn gx_klo(i: u32) -> i32 {\n  var lo = 0i;\n");
  if (a->left >= 0)
    gpux__wg_cat(s, "  lo = max(lo, i32(i) + %lldi - %lldi);\n", P, (long long)(a->left > (1 << 30) ? (1 << 30) : a->left));
  gpux__wg_cat(s, "  return min(lo, %lldi);\n}\n", T);
  gpux__wg_cat(s, "fn gx_khi(i: u32) -> i32 {\n  var hi = %lldi;\n", T);
  if (a->causal) gpux__wg_cat(s, "  hi = min(hi, i32(i) + %lldi + 1i);\n", P);
  if (a->right >= 0)
    gpux__wg_cat(s, "  hi = min(hi, i32(i) + %lldi + %lldi);\n", P, (long long)((a->right > (1 << 30) ? (1 << 30) : a->right) + 1));
  gpux__wg_cat(s, "  return max(hi, gx_klo(i));\n}\n");
  gpux__wg_cat(s, "fn gx_score(x: f32, bb: u32, h: u32, i: u32, j: u32, lo: i32, hi: i32) -> f32 {\n"
                  "  if (i32(j) < lo || i32(j) >= hi) { return -gx_inf(); }\n");
  if (a->has_mask) {
    gpux__wg_cat(s, "  if (j >= %lluu) { return -gx_inf(); }\n  let mv = b%d[bb * %lluu + h * %lluu + i * %lluu + j];\n",
                 (ull)a->mask_t, bd->m, (ull)a->mst[0], (ull)a->mst[1], (ull)a->mst[2]);
    if (a->mask_bool) gpux__wg_cat(s, "  if (mv == 0) { return -gx_inf(); }\n  return x * %s;\n}\n", gpux__wg_float(f, a->scale));
    else gpux__wg_cat(s, "  return x * %s + mv;\n}\n", gpux__wg_float(f, a->scale));
  } else {
    gpux__wg_cat(s, "  return x * %s;\n}\n", gpux__wg_float(f, a->scale));
  }
}

/* The offset of element 0 of key (or value) j of (bb, kvh) as a WGSL expression: in the past
 * (j < P) or in the current K/V. */
static void kv_base(char *buf, size_t len, const attn *a, int value, int past, const char *j) {
  ull dd = (ull)(value ? a->Dv : a->D);
  if (past) snprintf(buf, len, "((bb * %lluu + kvh) * %lluu + %s) * %lluu", (ull)a->Hkv, (ull)a->P, j, dd);
  else if (a->three_d) snprintf(buf, len, "((bb * %lluu + (%s - %lluu)) * %lluu + kvh) * %lluu", (ull)a->Skv, j, (ull)a->P, (ull)a->Hkv, dd);
  else snprintf(buf, len, "((bb * %lluu + kvh) * %lluu + (%s - %lluu)) * %lluu", (ull)a->Hkv, (ull)a->Skv, j, (ull)a->P, dd);
}

/* GPUs, one or a few query rows (a decoder's step): a workgroup per row, ROW_THREADS threads.
 * Keys go in chunks of CHUNK: each thread scores CHUNK / ROW_THREADS of them (q in workgroup
 * memory), the chunk's maximum and sum come from tree reductions, then the threads split as
 * 16 vec4 columns of the output x 8 groups of the chunk's keys for the weighted sum of V; the
 * groups' parts are added at the end. */
static int fused_row(wg_build *b, const attn *a, const attn_bind *bd) {
  int64_t rows = a->B * a->Hq * a->Sq, V4 = a->Dv / 4, NC = (V4 + 15) / 16;
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)rows, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  fused_fns(&s, a, bd);
  gpux__wg_cat(&s, "var<workgroup> gx_q: array<f32, %lld>;\nvar<workgroup> gx_s: array<f32, %d>;\nvar<workgroup> gx_r: array<f32, %d>;\n"
                   "var<workgroup> gx_o: array<vec4<f32>, %lld>;\n",
               (long long)a->D, CHUNK, ROW_THREADS, (long long)(128 * NC));
  gpux__wg_cat(&s, "@compute @workgroup_size(%d)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let row = wid.y * %uu + wid.x;\n"
                   "  let i = row %% %lluu;\n  let h = (row / %lluu) %% %lluu;\n  let bb = row / %lluu;\n  let kvh = h / %lluu;\n"
                   "  let qo = gx_qo(bb, h, i);\n"
                   "  for (var e = li; e < %lluu; e = e + %du) { gx_q[e] = b%d[qo + e]; }\n"
                   "  let lo = gx_klo(i);\n  let hi = gx_khi(i);\n  let cl = li %% 16u;\n  let kg = li / 16u;\n"
                   "  var m = -gx_inf();\n  var l = 0.0;\n",
               ROW_THREADS, gx, (ull)a->Sq, (ull)a->Sq, (ull)a->Hq, (ull)(a->Sq * a->Hq), (ull)a->group, (ull)a->D, ROW_THREADS, bd->q);
  for (int64_t c = 0; c < NC; c++) gpux__wg_cat(&s, "  var o%lld = vec4<f32>(0.0);\n", (long long)c);
  gpux__wg_cat(&s, "  workgroupBarrier();\n  for (var c0 = lo; c0 < hi; c0 = c0 + %di) {\n    var lm = -gx_inf();\n", CHUNK);
  char kb[200], vb[200];
  /* scores */
  for (int u = 0; u < CHUNK / ROW_THREADS; u++) {
    gpux__wg_cat(&s, "    {\n      let jj = li + %du;\n      let j = u32(c0) + jj;\n      var sc = -gx_inf();\n      if (i32(j) < hi) {\n"
                     "        var x = 0.0;\n",
                 u * ROW_THREADS);
    for (int past = 1; past >= 0; past--) {
      if (past && bd->pk < 0) continue;
      kv_base(kb, sizeof kb, a, 0, past, "j");
      if (past) gpux__wg_cat(&s, "        if (j < %lluu) {\n", (ull)a->P);
      else if (bd->pk >= 0) gpux__wg_cat(&s, "        else {\n");
      else gpux__wg_cat(&s, "        {\n");
      gpux__wg_cat(&s, "          let ko = %s;\n          for (var d = 0u; d < %lluu; d = d + 1u) { x = fma(gx_q[d], b%d[ko + d], x); }\n        }\n",
                   kb, (ull)a->D, past ? bd->pk : bd->k);
    }
    gpux__wg_cat(&s, "        sc = gx_score(x, bb, h, i, j, lo, hi);\n      }\n      gx_s[jj] = sc;\n      lm = max(lm, sc);\n    }\n");
  }
  /* the chunk's maximum, the probabilities, their sum */
  gpux__wg_cat(&s, "    gx_r[li] = lm;\n    workgroupBarrier();\n"
                   "    for (var st = %du; st > 0u; st = st >> 1u) { if (li < st) { gx_r[li] = max(gx_r[li], gx_r[li + st]); } workgroupBarrier(); }\n"
                   "    let mn = max(m, gx_r[0]);\n    workgroupBarrier();\n"
                   "    let al = select(0.0, exp(m - mn), m != -gx_inf());\n    var ls = 0.0;\n",
               ROW_THREADS / 2);
  for (int u = 0; u < CHUNK / ROW_THREADS; u++)
    gpux__wg_cat(&s, "    { let jj = li + %du; let sv = gx_s[jj]; let p = select(0.0, exp(sv - mn), sv != -gx_inf()); gx_s[jj] = p; ls = ls + p; }\n",
                 u * ROW_THREADS);
  gpux__wg_cat(&s, "    gx_r[li] = ls;\n    workgroupBarrier();\n"
                   "    for (var st = %du; st > 0u; st = st >> 1u) { if (li < st) { gx_r[li] = gx_r[li] + gx_r[li + st]; } workgroupBarrier(); }\n"
                   "    l = l * al + gx_r[0];\n    m = mn;\n",
               ROW_THREADS / 2);
  for (int64_t c = 0; c < NC; c++) gpux__wg_cat(&s, "    o%lld = o%lld * al;\n", (long long)c, (long long)c);
  /* the weighted values: columns cl + 16 c, every eighth key of the chunk from kg */
  gpux__wg_cat(&s, "    let cnt = u32(min(%di, hi - c0));\n    for (var jj = kg; jj < cnt; jj = jj + 8u) {\n"
                   "      let p = vec4<f32>(gx_s[jj]);\n      let j = u32(c0) + jj;\n",
               CHUNK);
  for (int past = 1; past >= 0; past--) {
    if (past && bd->pv < 0) continue;
    int vbuf = past ? bd->pv : bd->v;
    kv_base(vb, sizeof vb, a, 1, past, "j");
    if (past) gpux__wg_cat(&s, "      if (j < %lluu) {\n", (ull)a->P);
    else if (bd->pv >= 0) gpux__wg_cat(&s, "      else {\n");
    else gpux__wg_cat(&s, "      {\n");
    gpux__wg_cat(&s, "        let vo = %s + cl * 4u;\n", vb);
    for (int64_t c = 0; c < NC; c++) {
      int guard = 16 * (c + 1) > V4;
      if (guard) gpux__wg_cat(&s, "        if (cl + %lldu < %lluu) {\n", (long long)(16 * c), (ull)V4);
      gpux__wg_cat(&s, "        { let e = vo + %lldu; o%lld = fma(p, vec4<f32>(b%d[e], b%d[e + 1u], b%d[e + 2u], b%d[e + 3u]), o%lld); }\n",
                   (long long)(64 * c), (long long)c, vbuf, vbuf, vbuf, vbuf, (long long)c);
      if (guard) gpux__wg_cat(&s, "        }\n");
    }
    gpux__wg_cat(&s, "      }\n");
  }
  gpux__wg_cat(&s, "    }\n    workgroupBarrier();\n  }\n");
  /* the key groups' parts added */
  for (int64_t c = 0; c < NC; c++) gpux__wg_cat(&s, "  gx_o[kg * %lldu + cl + %lldu] = o%lld;\n", (long long)(16 * NC), (long long)(16 * c), (long long)c);
  gpux__wg_cat(&s, "  workgroupBarrier();\n  if (li < %lluu) {\n    var t = gx_o[li];\n"
                   "    for (var g = 1u; g < 8u; g = g + 1u) { t = t + gx_o[g * %lldu + li]; }\n"
                   "    let v = t * select(0.0, 1.0 / l, l > 0.0);\n    let o = gx_yo(bb, h, i) + li * 4u;\n"
                   "    b%d[o] = v.x;\n    b%d[o + 1u] = v.y;\n    b%d[o + 2u] = v.z;\n    b%d[o + 3u] = v.w;\n  }\n}\n",
               (ull)V4, (long long)(16 * NC), bd->y, bd->y, bd->y, bd->y);
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* Workgroup memory of the tiled kernel for blocks of R rows. */
static uint64_t tiled_bytes(const attn *a, int R) {
  uint64_t dvc = (uint64_t)((a->Dv / 4 + 3) / 4 * 4);
  return 4 * ((uint64_t)R * (uint64_t)a->D + (uint64_t)a->D * (TILE / 4 + 1) * 4 + TILE * dvc * 4 + (uint64_t)R * (TILE + 1) +
              2 * 4 * (uint64_t)R);
}

/* GPUs: a workgroup per (batch, head, block of R query rows), 4 R threads. Thread t owns row
 * t / 4 of the block; of each tile of TILE keys it scores 8 (t % 4 picks which) and it holds the
 * row's output columns (vec4s) t % 4, t % 4 + 4, ... Workgroup memory: the block's Q (gx_q, R x D),
 * the tile's K transposed (gx_k, D x TILE/4 vec4s, one vec4 of padding per row), its V (gx_v,
 * TILE x DVC vec4s, zero past Dv), the probabilities (gx_p, R x (TILE + 1)) and the per-thread
 * maxima and sums that make each row's (gx_rm, gx_rs). */
static int fused_tiled(wg_build *b, const attn *a, const attn_bind *bd, int R) {
  int NT = 4 * R;
  int64_t V4 = a->Dv / 4, DVC = (V4 + 3) / 4 * 4, CPT = DVC / 4, nb = (a->Sq + R - 1) / R;
  ull D = (ull)a->D, KS = TILE / 4 + 1;
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(a->B * a->Hq * nb), &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  fused_fns(&s, a, bd);
  kv_fns(&s, a, bd->k, bd->v, bd->pk, bd->pv);
  gpux__wg_cat(&s, "fn gx_kat(bb: u32, kvh: u32, j: u32, d: u32) -> f32 { if (j >= %lluu) { return 0.0; } return kval(bb, kvh, j, d); }\n",
               (ull)a->T);
  gpux__wg_cat(&s, "var<workgroup> gx_q: array<f32, %lld>;\nvar<workgroup> gx_k: array<vec4<f32>, %llu>;\n"
                   "var<workgroup> gx_v: array<vec4<f32>, %lld>;\nvar<workgroup> gx_p: array<f32, %d>;\n"
                   "var<workgroup> gx_rm: array<f32, %d>;\nvar<workgroup> gx_rs: array<f32, %d>;\n",
               (long long)(R * a->D), D * KS, (long long)(TILE * DVC), R * (TILE + 1), NT, NT);
  gpux__wg_cat(&s, "@compute @workgroup_size(%d)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let wg = wid.y * %uu + wid.x;\n  let blk = wg %% %lluu;\n  let h = (wg / %lluu) %% %lluu;\n  let bb = wg / %lluu;\n"
                   "  let kvh = h / %lluu;\n  let r = li / 4u;\n  let g = li %% 4u;\n  let i0 = blk * %du;\n  let i = i0 + r;\n"
                   "  let i1 = min(i0 + %du, %lluu) - 1u;\n  let wlo = gx_klo(i0);\n  let whi = gx_khi(i1);\n"
                   "  var lo = 0i;\n  var hi = 0i;\n  if (i < %lluu) { lo = gx_klo(i); hi = gx_khi(i); }\n",
               NT, gx, (ull)nb, (ull)nb, (ull)a->Hq, (ull)(nb * a->Hq), (ull)a->group, R, R, (ull)a->Sq, (ull)a->Sq);
  gpux__wg_cat(&s, "  for (var e = li; e < %lluu; e = e + %du) {\n    let ii = i0 + e / %lluu;\n    var v = 0.0;\n"
                   "    if (ii < %lluu) { v = b%d[gx_qo(bb, h, ii) + e %% %lluu]; }\n    gx_q[e] = v;\n  }\n",
               (ull)R * D, NT, D, (ull)a->Sq, bd->q, D);
  gpux__wg_cat(&s, "  var m = -gx_inf();\n  var l = 0.0;\n");
  for (int64_t c = 0; c < CPT; c++) gpux__wg_cat(&s, "  var o%lld = vec4<f32>(0.0);\n", (long long)c);
  gpux__wg_cat(&s, "  for (var kt = u32(wlo) / %du * %du; i32(kt) < whi; kt = kt + %du) {\n", TILE, TILE, TILE);
  /* the tile: K transposed (4 keys of one dim a vec4), V as vec4 columns */
  gpux__wg_cat(&s, "    for (var e = li; e < %lluu; e = e + %du) {\n      let dd = e %% %lluu;\n      let jq = e / %lluu;\n      let j = kt + jq * 4u;\n"
                   "      gx_k[dd * %lluu + jq] = vec4<f32>(gx_kat(bb, kvh, j, dd), gx_kat(bb, kvh, j + 1u, dd), gx_kat(bb, kvh, j + 2u, dd), "
                   "gx_kat(bb, kvh, j + 3u, dd));\n    }\n",
               D * (TILE / 4), NT, D, D, KS);
  gpux__wg_cat(&s, "    for (var e = li; e < %lluu; e = e + %du) {\n      let c = e %% %lluu;\n      let j = kt + e / %lluu;\n      var v = vec4<f32>(0.0);\n"
                   "      if (c < %lluu && j < %lluu) { v = vec4<f32>(vval(bb, kvh, j, c * 4u), vval(bb, kvh, j, c * 4u + 1u), vval(bb, kvh, j, c * 4u + 2u), "
                   "vval(bb, kvh, j, c * 4u + 3u)); }\n      gx_v[e] = v;\n    }\n    workgroupBarrier();\n",
               (ull)(TILE * DVC), NT, (ull)DVC, (ull)DVC, (ull)V4, (ull)a->T);
  /* 8 scores: keys kt + 8 g .. kt + 8 g + 7 */
  gpux__wg_cat(&s, "    var sa = vec4<f32>(0.0);\n    var sb = vec4<f32>(0.0);\n"
                   "    for (var d = 0u; d < %lluu; d = d + 1u) {\n      let qv = vec4<f32>(gx_q[r * %lluu + d]);\n"
                   "      sa = fma(qv, gx_k[d * %lluu + g * 2u], sa);\n      sb = fma(qv, gx_k[d * %lluu + g * 2u + 1u], sb);\n    }\n"
                   "    let j0 = kt + g * 8u;\n",
               D, D, KS, KS);
  static const char comp[4] = {'x', 'y', 'z', 'w'};
  for (int k = 0; k < 8; k++)
    gpux__wg_cat(&s, "    let s%d = gx_score(s%c.%c, bb, h, i, j0 + %du, lo, hi);\n", k, k < 4 ? 'a' : 'b', comp[k % 4], k);
  gpux__wg_cat(&s, "    gx_rm[li] = max(max(max(s0, s1), max(s2, s3)), max(max(s4, s5), max(s6, s7)));\n    workgroupBarrier();\n"
                   "    let rb = r * 4u;\n"
                   "    let mn = max(m, max(max(gx_rm[rb], gx_rm[rb + 1u]), max(gx_rm[rb + 2u], gx_rm[rb + 3u])));\n"
                   "    let al = select(0.0, exp(m - mn), m != -gx_inf());\n");
  for (int k = 0; k < 8; k++)
    gpux__wg_cat(&s, "    let p%d = select(0.0, exp(s%d - mn), s%d != -gx_inf());\n    gx_p[r * %du + g * 8u + %du] = p%d;\n", k, k, k, TILE + 1,
                 k, k);
  gpux__wg_cat(&s, "    gx_rs[li] = ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7));\n    workgroupBarrier();\n"
                   "    l = l * al + ((gx_rs[rb] + gx_rs[rb + 1u]) + (gx_rs[rb + 2u] + gx_rs[rb + 3u]));\n    m = mn;\n");
  for (int64_t c = 0; c < CPT; c++) gpux__wg_cat(&s, "    o%lld = o%lld * al;\n", (long long)c, (long long)c);
  gpux__wg_cat(&s, "    for (var jj = 0u; jj < %du; jj = jj + 1u) {\n      let p = vec4<f32>(gx_p[r * %du + jj]);\n      let vb = jj * %lluu + g;\n",
               TILE, TILE + 1, (ull)DVC);
  for (int64_t c = 0; c < CPT; c++) gpux__wg_cat(&s, "      o%lld = fma(p, gx_v[vb + %lldu], o%lld);\n", (long long)c, (long long)(4 * c), (long long)c);
  gpux__wg_cat(&s, "    }\n    workgroupBarrier();\n  }\n");
  /* the row's output columns */
  gpux__wg_cat(&s, "  if (i < %lluu) {\n    let inv = select(0.0, 1.0 / l, l > 0.0);\n    let yo = gx_yo(bb, h, i);\n", (ull)a->Sq);
  for (int64_t c = 0; c < CPT; c++)
    gpux__wg_cat(&s, "    { let col = g + %lldu; if (col < %lluu) { let v = o%lld * inv; let o = yo + col * 4u; b%d[o] = v.x; b%d[o + 1u] = v.y; "
                     "b%d[o + 2u] = v.z; b%d[o + 3u] = v.w; } }\n",
                 (long long)(4 * c), (ull)V4, (long long)c, bd->y, bd->y, bd->y, bd->y);
  gpux__wg_cat(&s, "  }\n}\n");
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* Software adapters (lavapipe), a block of rows or more: the scores Q K^T (scaled, masked) into
 * scratch, a softmax pass per row, then the product with V; the products are the backend's GEMM,
 * whose software form (4 x 4 blocks per invocation, no workgroup memory) a CPU's SIMD lanes run
 * faster than the tiled kernel's barriers. 1 when the scores do not fit one binding. */
static int attn_gemm(wg_build *b, const attn *a) {
  ull Sq = (ull)a->Sq, Hq = (ull)a->Hq, T = (ull)a->T, G = (ull)a->group;
  uint64_t rows = (uint64_t)(a->B * a->Hq * a->Sq), bytes = rows * T * 4;
  if (bytes > gpux__wg_dev(b)->limits.maxStorageBufferBindingSize) return 1;
  int sc = gpux__wg_scratch(b, bytes);
  if (sc < 0) return GPUX_E_UNSUPPORTED;
  char la[200], lb[200], st[300];
  /* the scores */
  attn_bind bd = {-2, -2, -2, -2, -2, -2, -2};
  bd.q = gpux__wg_bind_in(b, 0, WG_F32), bd.k = gpux__wg_bind_in(b, 1, WG_F32);
  bd.m = a->has_mask ? gpux__wg_bind_in(b, 3, a->mask_bool ? WG_I32 : WG_F32) : -2;
  bd.pk = a->P ? gpux__wg_bind_in(b, 4, WG_F32) : -2;
  int bs = gpux__wg_bind_scratch(b, sc, WG_F32);
  if (bd.q < 0 || bd.k < 0 || bd.m == -1 || bd.pk == -1 || bs < 0) return GPUX_E_UNSUPPORTED;
  wg_str pre = {0};
  fused_fns(&pre, a, &bd);
  kv_fn(&pre, a, 0, bd.k, bd.pk);
  gpux__wg_cat(&pre, "fn gx_kz(z: u32, j: u32, d: u32) -> f32 { return kval(z / %lluu, (z %% %lluu) / %lluu, j, d); }\n", Hq, Hq, G);
  snprintf(la, sizeof la, "b%d[gx_qo(z / %lluu, z %% %lluu, m) + k]", bd.q, Hq, Hq);
  snprintf(lb, sizeof lb, "gx_kz(z, n, k)");
  snprintf(st, sizeof st, "b%d[(z * %lluu + m) * %lluu + n] = gx_score(v, z / %lluu, z %% %lluu, m, n, gx_klo(m), gx_khi(m));", bs, Sq, T,
           Hq, Hq);
  wg_gemm g = {.M = a->Sq, .N = a->T, .K = a->D, .batch = a->B * a->Hq, .load_a = la, .load_b = lb, .store = st,
               .a_k_contig = 1, .b_n_contig = 0, .prelude = pre.s};
  int rc = pre.oom ? GPUX_E_NOMEM : gpux__wg_gemm(b, &g);
  gpux__wg_str_free(&pre);
  if (rc) return rc;
  /* softmax per row; a row with nothing left gets zeros */
  if ((bs = gpux__wg_bind_scratch(b, sc, WG_F32)) < 0) return GPUX_E_UNSUPPORTED;
  uint32_t gx, gy;
  gpux__wg_grid(b, (rows + 63) / 64, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  gpux__wg_cat(&s, "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let r = (wid.y * %uu + wid.x) * 64u + li;\n  if (r >= %lluu) { return; }\n  let o = r * %lluu;\n"
                   "  var mx = -gx_inf();\n  for (var j = 0u; j < %lluu; j = j + 1u) { mx = max(mx, b%d[o + j]); }\n"
                   "  var sum = 0.0;\n  for (var j = 0u; j < %lluu; j = j + 1u) {\n    let sv = b%d[o + j];\n"
                   "    let e = select(0.0, exp(sv - mx), sv != -gx_inf() && mx != -gx_inf());\n    b%d[o + j] = e;\n    sum = sum + e;\n  }\n"
                   "  let inv = select(0.0, 1.0 / sum, sum > 0.0);\n"
                   "  for (var j = 0u; j < %lluu; j = j + 1u) { b%d[o + j] = b%d[o + j] * inv; }\n}\n",
               gx, (ull)rows, T, T, bs, T, bs, bs, T, bs, bs);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  if (rc) return rc;
  /* Y = P V */
  int bv = gpux__wg_bind_in(b, 2, WG_F32), bpv = a->P ? gpux__wg_bind_in(b, 5, WG_F32) : -2;
  bs = gpux__wg_bind_scratch(b, sc, WG_F32);
  int by = gpux__wg_bind_out(b, 0, WG_F32);
  if (bv < 0 || bpv == -1 || bs < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  offset_fns(&pre, a);
  kv_fn(&pre, a, 1, bv, bpv);
  gpux__wg_cat(&pre, "fn gx_vz(z: u32, j: u32, d: u32) -> f32 { return vval(z / %lluu, (z %% %lluu) / %lluu, j, d); }\n", Hq, Hq, G);
  snprintf(la, sizeof la, "b%d[(z * %lluu + m) * %lluu + k]", bs, Sq, T);
  snprintf(lb, sizeof lb, "gx_vz(z, k, n)");
  snprintf(st, sizeof st, "b%d[gx_yo(z / %lluu, z %% %lluu, m) + n] = v;", by, Hq, Hq);
  wg_gemm g2 = {.M = a->Sq, .N = a->Dv, .K = a->T, .batch = a->B * a->Hq, .load_a = la, .load_b = lb, .store = st,
                .a_k_contig = 1, .b_n_contig = 1, .prelude = pre.s};
  rc = pre.oom ? GPUX_E_NOMEM : gpux__wg_gemm(b, &g2);
  gpux__wg_str_free(&pre);
  return rc;
}

/* The fused kernels, or the general one where they do not fit the device. Software adapters
 * (lavapipe) run the general kernel for one or a few rows (their workgroups run on one CPU
 * thread, so a workgroup per row gains nothing there) and the GEMM form for more. */
static int attn_fused(wg_build *b, const attn *a) {
  const wg_device *dev = gpux__wg_dev(b);
  uint64_t smem = dev->limits.maxComputeWorkgroupStorageSize, lim = dev->limits.maxComputeWorkgroupsPerDimension;
  int rowwise = a->Sq < 4, R = 0;
  if (rowwise) {
    if (gpux__wg_software(b) || (uint64_t)(a->D + CHUNK + ROW_THREADS + 512 * ((a->Dv / 4 + 15) / 16)) * 4 > smem ||
        dev->limits.maxComputeInvocationsPerWorkgroup < ROW_THREADS || (uint64_t)(a->B * a->Hq * a->Sq) > lim * lim)
      return attn_rows(b, a);
  } else {
    int rc = gpux__wg_software(b) ? attn_gemm(b, a) : 1;
    if (rc <= 0) return rc;
    /* blocks of 32 rows where that still gives a large GPU enough workgroups */
    R = a->B * a->Hq * ((a->Sq + 31) / 32) >= 256 ? 32 : 16;
    if (tiled_bytes(a, R) > smem) R = 16;
    if (tiled_bytes(a, R) > smem || dev->limits.maxComputeInvocationsPerWorkgroup < 4u * R) return attn_rows(b, a);
  }
  attn_bind bd;
  bd.q = gpux__wg_bind_in(b, 0, WG_F32), bd.k = gpux__wg_bind_in(b, 1, WG_F32), bd.v = gpux__wg_bind_in(b, 2, WG_F32);
  bd.m = a->has_mask ? gpux__wg_bind_in(b, 3, a->mask_bool ? WG_I32 : WG_F32) : -2;
  bd.pk = a->P ? gpux__wg_bind_in(b, 4, WG_F32) : -2, bd.pv = a->P ? gpux__wg_bind_in(b, 5, WG_F32) : -2;
  bd.y = gpux__wg_bind_out(b, 0, WG_F32);
  if (bd.q < 0 || bd.k < 0 || bd.v < 0 || bd.m == -1 || bd.pk == -1 || bd.pv == -1 || bd.y < 0) return GPUX_E_UNSUPPORTED;
  return rowwise ? fused_row(b, a, &bd) : fused_tiled(b, a, &bd, R);
}

static int op_attention(wg_build *b) {
  attn a;
  int rc = parse(b, &a);
  if (rc) return rc;
  if (a.B * a.Hq * a.Sq == 0) return 0;
  if (!a.T) return gpux__wg_decline(b, "no keys");
  if ((rc = fused_ok(&a) ? attn_fused(b, &a) : attn_rows(b, &a))) return rc;
  /* present_key / present_value: the past followed by the current keys and values */
  int64_t P = a.P, T = a.T;
  for (int which = 0; which < 2; which++) {
    if (!gpux__wg_out(b, 1 + which)) continue;
    int64_t dd = which ? a.Dv : a.D, total = a.B * a.Hkv * T * dd;
    int cur = gpux__wg_bind_in(b, which ? 2 : 1, WG_F32), past = P ? gpux__wg_bind_in(b, which ? 5 : 4, WG_F32) : -2;
    int out = gpux__wg_bind_out(b, 1 + which, WG_F32);
    if (cur < 0 || past == -1 || out < 0) return GPUX_E_UNSUPPORTED;
    wg_str t = {0};
    uint32_t gx, gy;
    gpux__wg_decls(b, &t);
    gpux__wg_grid(b, (uint64_t)(total + 255) / 256, &gx, &gy);
    gpux__wg_cat(&t, "@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                     "  let e = (wid.y * %uu + wid.x) * 256u + li;\n  if (e >= %lluu) { return; }\n"
                     "  let d = e %% %lluu;\n  let j = (e / %lluu) %% %lluu;\n  let h = (e / %lluu) %% %lluu;\n  let bb = e / %lluu;\n",
                 gx, (ull)total, (ull)dd, (ull)dd, (ull)T, (ull)(dd * T), (ull)a.Hkv, (ull)(dd * T * a.Hkv));
    if (past >= 0)
      gpux__wg_cat(&t, "  if (j < %lluu) { b%d[e] = b%d[((bb * %lluu + h) * %lluu + j) * %lluu + d]; return; }\n", (ull)P, out, past,
                   (ull)a.Hkv, (ull)P, (ull)dd);
    if (a.three_d)
      gpux__wg_cat(&t, "  b%d[e] = b%d[((bb * %lluu + (j - %lluu)) * %lluu + h) * %lluu + d];\n}\n", out, cur, (ull)a.Skv, (ull)P, (ull)a.Hkv,
                   (ull)dd);
    else
      gpux__wg_cat(&t, "  b%d[e] = b%d[((bb * %lluu + h) * %lluu + (j - %lluu)) * %lluu + d];\n}\n", out, cur, (ull)a.Hkv, (ull)a.Skv, (ull)P,
                   (ull)dd);
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
