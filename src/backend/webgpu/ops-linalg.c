/* ops-linalg.c — the tiled matrix product every GEMM-shaped op uses, and MatMul, Gemm and
 * gpux.FusedMatMul (bias and activation in the store) on it.
 * The product C[z](M x N) = A[z](M x K) x B[z](K x N) runs by default in workgroups of 16 x 16
 * threads that each hold a tile of C in registers (up to 4 x 4 values per thread), with K walked
 * in steps of 16 through workgroup memory; when that leaves a large GPU mostly idle, K is split
 * over more workgroups and a second kernel adds the parts. A session's tuning (gpux__gemm_config,
 * measured by `gpux build --tune`) may give a shape other workgroup sizes, register tiles and
 * splits. How A and B are read and C is written are WGSL
 * snippets from the op, so Conv's implicit GEMM (im2col on the fly) shares the same kernel. */
#include "backend/webgpu/wg.h"
#include <stdio.h>
#include <stdlib.h>

#define TK 16
/* split-K: aim for this many workgroups, each range at least SPLIT_MIN_K deep, at most SPLIT_MAX */
#define SPLIT_TARGET 256
#define SPLIT_MIN_K 256
#define SPLIT_MAX 16

/* The GEMM for software adapters (lavapipe, SwiftShader): each invocation computes an rm x rn
 * block (4 x 4 by default) straight from memory. A CPU's caches do what workgroup memory does on
 * a GPU, and shaders without barriers compile in a fraction of the time on LLVM-based drivers. */
static int gemm_simple(wg_build *b, const wg_gemm *g, const gpux__gemm_config *c) {
  unsigned long long M = (unsigned long long)g->M, N = (unsigned long long)g->N, K = (unsigned long long)g->K;
  int rm = c->rm, rn = c->rn;
  unsigned long long bm = (M + (unsigned)rm - 1) / (unsigned)rm, bn = (N + (unsigned)rn - 1) / (unsigned)rn, blocks = bm * bn;
  uint32_t gx, gy;
  gpux__wg_grid(b, (blocks + 63) / 64, &gx, &gy);
  if ((uint64_t)g->batch > gpux__wg_dev(b)->limits.maxComputeWorkgroupsPerDimension)
    return gpux__wg_decline(b, "GEMM batch above the dispatch limit");
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  if (g->prelude) gpux__wg_cat(&s, "%s", g->prelude);
  gpux__wg_cat(&s, "fn gx_load_a(z: u32, m: u32, k: u32) -> f32 { return %s; }\n"
                   "fn gx_load_b(z: u32, k: u32, n: u32) -> f32 { return %s; }\n", g->load_a, g->load_b);
  gpux__wg_cat(&s, "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let blk = (wid.y * %uu + wid.x) * 64u + li;\n  if (blk >= %lluu) { return; }\n  let z = wid.z;\n"
                   "  let mb = (blk / %lluu) * %du;\n  let nb = (blk %% %lluu) * %du;\n",
               gx, blocks, bn, rm, bn, rn);
  /* indices past the edge read the last row/column (in range); their results are not stored */
  for (int i = 0; i < (rm > rn ? rm : rn); i++) {
    if (i < rm) gpux__wg_cat(&s, "  let m%d = min(mb + %du, %lluu);\n", i, i, M - 1);
    if (i < rn) gpux__wg_cat(&s, "  let n%d = min(nb + %du, %lluu);\n", i, i, N - 1);
    for (int j = 0; j < rn && i < rm; j++) gpux__wg_cat(&s, "  var c%d%d = 0.0;\n", i, j);
  }
  gpux__wg_cat(&s, "  for (var k = 0u; k < %lluu; k = k + 1u) {\n", K);
  for (int i = 0; i < rm; i++) gpux__wg_cat(&s, "    let a%d = gx_load_a(z, m%d, k);\n", i, i);
  for (int j = 0; j < rn; j++) gpux__wg_cat(&s, "    let b%d_ = gx_load_b(z, k, n%d);\n", j, j);
  for (int i = 0; i < rm; i++)
    for (int j = 0; j < rn; j++) gpux__wg_cat(&s, "    c%d%d = fma(a%d, b%d_, c%d%d);\n", i, j, i, j, i, j);
  gpux__wg_cat(&s, "  }\n");
  for (int i = 0; i < rm; i++)
    for (int j = 0; j < rn; j++)
      gpux__wg_cat(&s, "  if (mb + %du < %lluu && nb + %du < %lluu) { let m = mb + %du; let n = nb + %du; let v = c%d%d; %s }\n", i, M, j, N,
                   i, j, i, j, g->store);
  gpux__wg_cat(&s, "}\n");
  int rc = gpux__wg_dispatch(b, &s, gx, gy, (uint32_t)g->batch);
  gpux__wg_str_free(&s);
  return rc;
}

/* The K range each of `split` workgroups takes: a whole number of TK steps, so a tile never
 * reads into the next range; *parts receives how many ranges that makes. */
static unsigned long long split_range(int64_t K, uint64_t split, uint64_t *parts) {
  unsigned long long k = (unsigned long long)K;
  if (split <= 1) {
    *parts = 1;
    return k;
  }
  unsigned long long ks = ((k + split - 1) / split + TK - 1) / TK * TK;
  *parts = (k + ks - 1) / ks;
  return ks;
}

/* Whether configuration c fits shape g on this device (limits on workgroups, workgroup memory
 * and the split's scratch). */
static int config_fits(wg_build *b, const wg_gemm *g, const gpux__gemm_config *c) {
  const wg_device *d = gpux__wg_dev(b);
  uint32_t lim = d->limits.maxComputeWorkgroupsPerDimension;
  if (c->rm < 1 || c->rm > 8 || c->rn < 1 || c->rn > 8) return 0;
  if (c->form == GPUX__GEMM_SIMPLE) return c->split <= 1 && (uint64_t)g->batch <= lim;
  if (c->form != GPUX__GEMM_TILED) return 0;
  if (c->wx < 4 || c->wx > 32 || c->wy < 4 || c->wy > 32 || (c->wx & (c->wx - 1)) || (c->wy & (c->wy - 1))) return 0;
  if ((uint32_t)(c->wx * c->wy) > d->limits.maxComputeInvocationsPerWorkgroup || (uint32_t)c->wx > d->limits.maxComputeWorkgroupSizeX ||
      (uint32_t)c->wy > d->limits.maxComputeWorkgroupSizeY)
    return 0;
  int tm = c->wy * c->rm, tn = c->wx * c->rn;
  if (tm > 128 || tn > 128 || (uint64_t)TK * (uint64_t)(tm + tn) * 4 > d->limits.maxComputeWorkgroupStorageSize) return 0;
  if (c->split < 1 || c->split > SPLIT_MAX) return 0;
  uint64_t parts;
  split_range(g->K, (uint64_t)c->split, &parts);
  uint64_t gx = ((uint64_t)g->N + (uint64_t)tn - 1) / (uint64_t)tn, gy = ((uint64_t)g->M + (uint64_t)tm - 1) / (uint64_t)tm;
  if (gx > lim || gy > lim || (uint64_t)g->batch * parts > lim) return 0;
  if (parts > 1 && parts * (uint64_t)g->batch * (uint64_t)g->M * (uint64_t)g->N * 4 > d->limits.maxStorageBufferBindingSize) return 0;
  return 1;
}

/* The configuration a shape gets untuned: on software adapters the simple form's 4 x 4 blocks;
 * on GPUs 16 x 16 threads with the largest tile up to 64 x 64 that still gives a large GPU
 * enough workgroups, and K split when even the small tiles give few. */
static void default_config(wg_build *b, const wg_gemm *g, gpux__gemm_config *c) {
  *c = (gpux__gemm_config){.form = GPUX__GEMM_SIMPLE, .wx = 0, .wy = 0, .rm = 4, .rn = 4, .split = 1};
  if (gpux__wg_software(b)) return;
  int tm = g->M <= 16 ? 16 : g->M <= 32 ? 32 : 64;
  int tn = g->N <= 16 ? 16 : g->N <= 32 ? 32 : 64;
  /* smaller tiles when big ones would leave most of a large GPU idle */
  for (int shrink = 0; shrink < 2; shrink++) {
    uint64_t groups = ((uint64_t)(g->N + tn - 1) / (uint64_t)tn) * ((uint64_t)(g->M + tm - 1) / (uint64_t)tm) * (uint64_t)g->batch;
    if (groups >= 256) break;
    if (tm >= tn && tm > 16) tm /= 2;
    else if (tn > 16) tn /= 2;
    else if (tm > 16) tm /= 2;
  }
  *c = (gpux__gemm_config){.form = GPUX__GEMM_TILED, .wx = 16, .wy = 16, .rm = tm / 16, .rn = tn / 16, .split = 1};
  /* split-K: when even the small tiles give few workgroups (batch 1: a late convolution layer's
   * 512 x 49 outputs over K = 4608, a transformer's 128-token rows), K is cut into `split` ranges
   * whose partial products go to scratch, and a second kernel adds them and stores. */
  uint64_t gx = ((uint64_t)g->N + (uint64_t)tn - 1) / (uint64_t)tn, gy = ((uint64_t)g->M + (uint64_t)tm - 1) / (uint64_t)tm;
  uint64_t groups = gx * gy * (uint64_t)g->batch, split = 1;
  const char *split_env = getenv("GPUX_WEBGPU_SPLIT_K"); /* "0": off, to measure what it gives */
  if (groups < SPLIT_TARGET && g->K >= 2 * SPLIT_MIN_K && !(split_env && !strcmp(split_env, "0"))) {
    split = (SPLIT_TARGET + groups - 1) / groups;
    if (split > (uint64_t)g->K / SPLIT_MIN_K) split = (uint64_t)g->K / SPLIT_MIN_K;
    if (split > SPLIT_MAX) split = SPLIT_MAX;
    uint64_t part_bytes = split * (uint64_t)g->batch * (uint64_t)g->M * (uint64_t)g->N * 4;
    if (split < 2 || part_bytes > gpux__wg_dev(b)->limits.maxStorageBufferBindingSize ||
        (uint64_t)g->batch * split > gpux__wg_dev(b)->limits.maxComputeWorkgroupsPerDimension)
      split = 1;
  }
  c->split = (int)split;
}

/* The tiled GEMM: workgroups of wx x wy threads that each hold an rm x rn tile of C in
 * registers, K walked in steps of TK through workgroup memory, optionally split over several
 * workgroups whose parts a second kernel adds. */
static int gemm_tiled(wg_build *b, const wg_gemm *g, const gpux__gemm_config *c) {
  int wx = c->wx, wy = c->wy, rm = c->rm, rn = c->rn, nt = wx * wy;
  int tm = wy * rm, tn = wx * rn;
  uint64_t gx = ((uint64_t)g->N + (uint64_t)tn - 1) / (uint64_t)tn, gy = ((uint64_t)g->M + (uint64_t)tm - 1) / (uint64_t)tm;
  uint32_t lim = gpux__wg_dev(b)->limits.maxComputeWorkgroupsPerDimension;
  unsigned long long M = (unsigned long long)g->M, N = (unsigned long long)g->N, K = (unsigned long long)g->K;
  uint64_t split;
  unsigned long long ks = split_range(g->K, (uint64_t)c->split, &split);
  if (gx > lim || gy > lim || (uint64_t)g->batch * split > lim) return gpux__wg_decline(b, "GEMM grid above the dispatch limit");
  int part = -2;
  if (split > 1 && (part = gpux__wg_scratch(b, split * (uint64_t)g->batch * M * N * 4)) < 0) return GPUX_E_UNSUPPORTED;
  int pb = split > 1 ? gpux__wg_bind_scratch(b, part, WG_F32) : -2;
  if (pb == -1) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  if (g->prelude) gpux__wg_cat(&s, "%s", g->prelude);
  gpux__wg_cat(&s, "var<workgroup> As: array<f32, %d>;\nvar<workgroup> Bs: array<f32, %d>;\n", TK * tm, TK * tn);
  gpux__wg_cat(&s, "@compute @workgroup_size(%d, %d, 1)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, "
                   "@builtin(local_invocation_id) lid: vec3<u32>) {\n"
                   "  let z = wid.z / %lluu;\n  let kpart = wid.z %% %lluu;\n  let kbeg = kpart * %lluu;\n"
                   "  let kend = min(kbeg + %lluu, %lluu);\n"
                   "  let m0 = wid.y * %du;\n  let n0 = wid.x * %du;\n  let tid = lid.y * %du + lid.x;\n",
               wx, wy, (unsigned long long)split, (unsigned long long)split, ks, ks, K, tm, tn, wx);
  if (split > 1) gpux__wg_touch_all(b, &s); /* the output, which only the second kernel writes */
  for (int i = 0; i < rm; i++)
    for (int j = 0; j < rn; j++) gpux__wg_cat(&s, "  var c%d%d = 0.0;\n", i, j);
  gpux__wg_cat(&s, "  for (var k0 = kbeg; k0 < kend; k0 = k0 + %du) {\n", TK);
  /* A tile: tm x TK values, spread over the nt threads; consecutive threads walk the contiguous
   * axis (a tile that does not divide evenly leaves the last threads idle) */
  for (int q = 0; q * nt < tm * TK; q++) {
    int guard = (q + 1) * nt > tm * TK;
    if (g->a_k_contig) gpux__wg_cat(&s, "    { let e = tid + %du; let mm = e / %du; let kk = e %% %du;\n", q * nt, TK, TK);
    else gpux__wg_cat(&s, "    { let e = tid + %du; let kk = e / %du; let mm = e %% %du;\n", q * nt, tm, tm);
    if (guard) gpux__wg_cat(&s, "      if (e < %du) {\n", tm * TK);
    gpux__wg_cat(&s, "      let m = m0 + mm; let k = k0 + kk;\n      var v = 0.0;\n      if (m < %lluu && k < kend) { v = %s; }\n"
                     "      As[kk * %du + mm] = v; }\n",
                 M, g->load_a, tm);
    if (guard) gpux__wg_cat(&s, "    }\n");
  }
  for (int q = 0; q * nt < tn * TK; q++) {
    int guard = (q + 1) * nt > tn * TK;
    if (g->b_n_contig) gpux__wg_cat(&s, "    { let e = tid + %du; let kk = e / %du; let nn = e %% %du;\n", q * nt, tn, tn);
    else gpux__wg_cat(&s, "    { let e = tid + %du; let nn = e / %du; let kk = e %% %du;\n", q * nt, TK, TK);
    if (guard) gpux__wg_cat(&s, "      if (e < %du) {\n", tn * TK);
    gpux__wg_cat(&s, "      let n = n0 + nn; let k = k0 + kk;\n      var v = 0.0;\n      if (n < %lluu && k < kend) { v = %s; }\n"
                     "      Bs[kk * %du + nn] = v; }\n",
                 N, g->load_b, tn);
    if (guard) gpux__wg_cat(&s, "    }\n");
  }
  gpux__wg_cat(&s, "    workgroupBarrier();\n    for (var kk = 0u; kk < %du; kk = kk + 1u) {\n", TK);
  for (int i = 0; i < rm; i++) gpux__wg_cat(&s, "      let a%d = As[kk * %du + lid.y + %du];\n", i, tm, i * wy);
  for (int j = 0; j < rn; j++) gpux__wg_cat(&s, "      let b%d_ = Bs[kk * %du + lid.x + %du];\n", j, tn, j * wx);
  for (int i = 0; i < rm; i++)
    for (int j = 0; j < rn; j++) gpux__wg_cat(&s, "      c%d%d = fma(a%d, b%d_, c%d%d);\n", i, j, i, j, i, j);
  gpux__wg_cat(&s, "    }\n    workgroupBarrier();\n  }\n");
  for (int i = 0; i < rm; i++)
    for (int j = 0; j < rn; j++) {
      gpux__wg_cat(&s, "  { let m = m0 + lid.y + %du; let n = n0 + lid.x + %du;\n    if (m < %lluu && n < %lluu) { let v = c%d%d; ",
                   i * wy, j * wx, M, N, i, j);
      if (split > 1) gpux__wg_cat(&s, "b%d[((kpart * %lluu + z) * %lluu + m) * %lluu + n] = v; } }\n", pb, (unsigned long long)g->batch, M, N);
      else gpux__wg_cat(&s, "%s } }\n", g->store);
    }
  gpux__wg_cat(&s, "}\n");
  int rc = gpux__wg_dispatch(b, &s, (uint32_t)gx, (uint32_t)gy, (uint32_t)(g->batch * split));
  gpux__wg_str_free(&s);
  if (rc || split == 1) return rc;
  /* the sum of the ranges, then the op's store (its epilogue, bias, layout) */
  if ((rc = gpux__wg_rebind_last(b))) return rc;
  uint64_t total = (uint64_t)g->batch * M * N;
  uint32_t ex, ey;
  gpux__wg_grid(b, (total + 255) / 256, &ex, &ey);
  wg_str r = {0};
  gpux__wg_decls(b, &r);
  if (g->prelude) gpux__wg_cat(&r, "%s", g->prelude);
  gpux__wg_cat(&r, "@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n");
  gpux__wg_touch_all(b, &r);
  gpux__wg_cat(&r, "  let e = (wid.y * %uu + wid.x) * 256u + li;\n  if (e >= %lluu) { return; }\n"
                   "  let z = e / %lluu;\n  let m = (e / %lluu) %% %lluu;\n  let n = e %% %lluu;\n  var v = 0.0;\n"
                   "  for (var p = 0u; p < %lluu; p = p + 1u) { v = v + b%d[p * %lluu + e]; }\n  %s\n}\n",
               ex, (unsigned long long)total, M * N, N, M, N, (unsigned long long)split, pb, (unsigned long long)total, g->store);
  rc = gpux__wg_dispatch(b, &r, ex, ey, 1);
  gpux__wg_str_free(&r);
  return rc;
}

/* Notes that the plan has a GEMM of shape sh (and whether a tuned configuration served it). */
static void note_shape(wg_tuning *tu, const gpux__gemm_shape *sh, int tuned) {
  for (int i = 0; i < tu->n_seen; i++)
    if (!memcmp(&tu->seen[i], sh, sizeof *sh)) {
      tu->seen_tuned[i] |= (unsigned char)tuned;
      return;
    }
  if (tu->n_seen == tu->cap_seen) {
    int cap = tu->cap_seen ? tu->cap_seen * 2 : 16;
    gpux__gemm_shape *s = realloc(tu->seen, (size_t)cap * sizeof *s);
    if (!s) return;
    tu->seen = s;
    unsigned char *t = realloc(tu->seen_tuned, (size_t)cap);
    if (!t) return;
    tu->seen_tuned = t;
    tu->cap_seen = cap;
  }
  tu->seen[tu->n_seen] = *sh;
  tu->seen_tuned[tu->n_seen++] = (unsigned char)tuned;
}

/* Emits and dispatches the GEMM described by g (see wg_gemm in wg.h), in the configuration the
 * session's tuning gives its shape, else the default one. */
int gpux__wg_gemm(wg_build *b, const wg_gemm *g) {
  if (g->M <= 0 || g->N <= 0 || g->batch <= 0) return 0;
  if (g->M > 0x7fffffff || g->N > 0x7fffffff || g->K > 0x7fffffff) return gpux__wg_decline(b, "matrix too large");
  gpux__gemm_shape sh;
  memset(&sh, 0, sizeof sh); /* compared with memcmp: no stray padding */
  sh.M = g->M, sh.N = g->N, sh.K = g->K, sh.batch = g->batch, sh.a_k_contig = !!g->a_k_contig, sh.b_n_contig = !!g->b_n_contig;
  gpux__gemm_config c;
  default_config(b, g, &c);
  int tuned = 0;
  wg_tuning *tu = gpux__wg_tuning(b);
  for (int i = 0; tu && i < tu->n; i++)
    if (!memcmp(&tu->t[i].shape, &sh, sizeof sh)) {
      if (config_fits(b, g, &tu->t[i].cfg)) c = tu->t[i].cfg, tuned = 1;
      break;
    }
  if (tu) note_shape(tu, &sh, tuned);
  return c.form == GPUX__GEMM_SIMPLE ? gemm_simple(b, g, &c) : gemm_tiled(b, g, &c);
}

/* fn NAME(z: u32) -> u32: the element offset of batch z of an operand whose batch dims
 * broadcast (numpy rules) to the output's batch dims `ob`; each batch holds `mat` elements. */
static void batch_offset_fn(wg_str *s, const char *name, int nob, const int64_t *ob, int nab, const int64_t *ab, int64_t mat) {
  gpux__wg_cat(s, "fn %s(z: u32) -> u32 {\n  var q = z;\n  var off = 0u;\n", name);
  int64_t st = mat;
  for (int d = nob - 1; d >= 0; d--) {
    int da = d - (nob - nab);
    int64_t adim = da >= 0 ? ab[da] : 1;
    if (adim == ob[d] && ob[d] != 1) gpux__wg_cat(s, "  off = off + (q %% %lluu) * %lluu;\n", (unsigned long long)ob[d], (unsigned long long)st);
    gpux__wg_cat(s, "  q = q / %lluu;\n", (unsigned long long)ob[d]);
    st *= adim;
  }
  gpux__wg_cat(s, "  return off;\n}\n");
}

static int op_matmul(wg_build *b) {
  const gpux_tensor *a = gpux__wg_in(b, 0), *bb = gpux__wg_in(b, 1), *y = gpux__wg_out(b, 0);
  if (!a || !bb || !y) return gpux__wg_decline(b, "missing input");
  if (!gpux__wg_is_f32(a->dtype) || bb->dtype != a->dtype) return gpux__wg_decline(b, "MatMul on %s", gpux_dtype_name(a->dtype));
  if (a->ndim < 1 || bb->ndim < 1) return gpux__wg_decline(b, "MatMul of a scalar");
  int a1 = a->ndim == 1, b1 = bb->ndim == 1;
  int64_t M = a1 ? 1 : a->dims[a->ndim - 2], K = a->dims[a->ndim - 1];
  int64_t N = b1 ? 1 : bb->dims[bb->ndim - 1];
  if ((b1 ? bb->dims[0] : bb->dims[bb->ndim - 2]) != K) return gpux__wg_decline(b, "inner dims differ");
  int nab = a1 ? 0 : a->ndim - 2, nbb = b1 ? 0 : bb->ndim - 2;
  int nob = nab > nbb ? nab : nbb;
  int64_t ob[GPUX_MAX_DIMS], batch = 1;
  for (int d = 0; d < nob; d++) {
    int da = d - (nob - nab), db = d - (nob - nbb);
    int64_t x = da >= 0 ? a->dims[da] : 1, z = db >= 0 ? bb->dims[db] : 1;
    ob[d] = x == 1 ? z : x;
    batch *= ob[d];
  }
  if (batch * M * N != gpux_tensor_count(y)) return gpux__wg_decline(b, "output size disagrees");
  if (!gpux_tensor_count(y)) return 0;
  if (K == 0) return gpux__wg_decline(b, "K = 0");
  int ba = gpux__wg_bind_in(b, 0, WG_F32), bbn = gpux__wg_bind_in(b, 1, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  if (ba < 0 || bbn < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str pre = {0};
  batch_offset_fn(&pre, "aoff", nob, ob, nab, a->dims, M * K);
  batch_offset_fn(&pre, "boff", nob, ob, nbb, bb->dims, K * N);
  const char *narrow = gpux__wg_narrow_in_kernel(b, 0); /* a float16/bfloat16 product is rounded as stored */
  if (narrow) gpux__wg_cat(&pre, "%s", gpux__wg_narrow_fns);
  char la[160], lb[160], st[160];
  snprintf(la, sizeof la, "b%d[aoff(z) + m * %lluu + k]", ba, (unsigned long long)K);
  snprintf(lb, sizeof lb, "b%d[boff(z) + k * %lluu + n]", bbn, (unsigned long long)N);
  snprintf(st, sizeof st, "b%d[(z * %lluu + m) * %lluu + n] = %s%sv%s;", by, (unsigned long long)M, (unsigned long long)N,
           narrow ? narrow : "", narrow ? "(" : "", narrow ? ")" : "");
  wg_gemm g = {.M = M, .N = N, .K = K, .batch = batch, .load_a = la, .load_b = lb, .store = st,
               .a_k_contig = 1, .b_n_contig = 1, .prelude = pre.s};
  int rc = pre.oom ? gpux__wg_decline(b, "out of memory") : gpux__wg_gemm(b, &g);
  gpux__wg_str_free(&pre);
  return rc;
}

static int op_gemm(wg_build *b) {
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *a = gpux__wg_in(b, 0), *bb = gpux__wg_in(b, 1), *c = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  if (!a || !bb || !y || a->ndim != 2 || bb->ndim != 2) return gpux__wg_decline(b, "Gemm needs 2-D A and B");
  if (!gpux__wg_is_f32(a->dtype) || bb->dtype != a->dtype) return gpux__wg_decline(b, "Gemm on %s", gpux_dtype_name(a->dtype));
  const gpux__attr *ta = gpux__node_attr(n, "transA"), *tb = gpux__node_attr(n, "transB");
  const gpux__attr *al = gpux__node_attr(n, "alpha"), *be = gpux__node_attr(n, "beta");
  int tra = ta && ta->i, trb = tb && tb->i;
  float alpha = al ? al->f : 1.0f, beta = be ? be->f : 1.0f;
  int64_t M = tra ? a->dims[1] : a->dims[0], K = tra ? a->dims[0] : a->dims[1];
  int64_t N = trb ? bb->dims[0] : bb->dims[1];
  if ((trb ? bb->dims[1] : bb->dims[0]) != K) return gpux__wg_decline(b, "inner dims differ");
  if (!gpux_tensor_count(y)) return 0;
  if (K == 0) return gpux__wg_decline(b, "K = 0");
  int ba = gpux__wg_bind_in(b, 0, WG_F32), bbn = gpux__wg_bind_in(b, 1, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  int bc = c && beta != 0.0f && gpux_tensor_count(c) ? gpux__wg_bind_in(b, 2, WG_F32) : -2;
  if (ba < 0 || bbn < 0 || by < 0 || bc == -1) return GPUX_E_UNSUPPORTED;
  const char *narrow = gpux__wg_narrow_in_kernel(b, 0); /* a float16/bfloat16 Y is rounded as stored */
  char la[160], lb[160], st[400], cidx[120] = "0u", fa[48], fb[48];
  snprintf(la, sizeof la, tra ? "b%d[k * %lluu + m]" : "b%d[m * %lluu + k]", ba, (unsigned long long)(tra ? M : K));
  snprintf(lb, sizeof lb, trb ? "b%d[n * %lluu + k]" : "b%d[k * %lluu + n]", bbn, (unsigned long long)(trb ? K : N));
  if (bc >= 0) {
    /* C broadcasts (numpy, right-aligned) to M x N */
    int64_t cm = c->ndim >= 2 ? c->dims[c->ndim - 2] : 1, cn = c->ndim >= 1 ? c->dims[c->ndim - 1] : 1;
    if ((cm != 1 && cm != M) || (cn != 1 && cn != N)) return gpux__wg_decline(b, "C does not broadcast");
    if (cm == M && M != 1 && cn == N && N != 1) snprintf(cidx, sizeof cidx, "m * %lluu + n", (unsigned long long)N);
    else if (cm == M && M != 1) snprintf(cidx, sizeof cidx, "m");
    else if (cn == N && N != 1) snprintf(cidx, sizeof cidx, "n");
    else snprintf(cidx, sizeof cidx, "0u");
    snprintf(st, sizeof st, "b%d[m * %lluu + n] = %s%s%s * v + %s * b%d[%s]%s;", by, (unsigned long long)N, narrow ? narrow : "",
             narrow ? "(" : "", gpux__wg_float(fa, alpha), gpux__wg_float(fb, beta), bc, cidx, narrow ? ")" : "");
  } else {
    snprintf(st, sizeof st, "b%d[m * %lluu + n] = %s%s%s * v%s;", by, (unsigned long long)N, narrow ? narrow : "", narrow ? "(" : "",
             gpux__wg_float(fa, alpha), narrow ? ")" : "");
  }
  wg_gemm g = {.M = M, .N = N, .K = K, .batch = 1, .load_a = la, .load_b = lb, .store = st,
               .a_k_contig = !tra, .b_n_contig = !trb, .prelude = narrow ? gpux__wg_narrow_fns : NULL};
  return gpux__wg_gemm(b, &g);
}

/* gpux.FusedMatMul (runtime/fuse-transformer.c): Y = act(A x op(B) + bias) + R with A [..., K]
 * (its batch dims fold into rows), constant B [K, N] ([N, K] with transB), bias [N] and R of the
 * product's shape (a residual that broadcasts is left to the CPU); the bias, activation and
 * residual are in the GEMM's store, which the split-K reduction kernel runs when K is split. */
static int op_fused_matmul(wg_build *b) {
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *a = gpux__wg_in(b, 0), *bb = gpux__wg_in(b, 1), *bias = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  const gpux_tensor *res = gpux__wg_n_in(b) > 3 ? gpux__wg_in(b, 3) : NULL;
  if (!a || !bb || !y || a->ndim < 1 || bb->ndim != 2) return gpux__wg_decline(b, "FusedMatMul needs A and 2-D B");
  if (!gpux__wg_is_f32(a->dtype) || bb->dtype != a->dtype || (bias && bias->dtype != a->dtype) ||
      (res && res->dtype != a->dtype))
    return gpux__wg_decline(b, "FusedMatMul on %s", gpux_dtype_name(a->dtype));
  const gpux__attr *ta = gpux__node_attr(n, "transB"), *aa = gpux__node_attr(n, "activation"),
                   *ap = gpux__node_attr(n, "approximate");
  int trb = ta && ta->i;
  const char *act = aa && aa->s ? aa->s : "", *approx = ap && ap->s ? ap->s : "none";
  int64_t K = a->dims[a->ndim - 1], N = trb ? bb->dims[0] : bb->dims[1];
  if ((trb ? bb->dims[1] : bb->dims[0]) != K) return gpux__wg_decline(b, "inner dims differ");
  if (bias && gpux_tensor_count(bias) != N) return gpux__wg_decline(b, "bias of %lld values", (long long)gpux_tensor_count(bias));
  if (!gpux_tensor_count(y)) return 0;
  if (K == 0) return gpux__wg_decline(b, "K = 0");
  int64_t M = gpux_tensor_count(a) / K;
  if (M * N != gpux_tensor_count(y)) return gpux__wg_decline(b, "output size disagrees");
  if (res && (res->ndim != a->ndim || memcmp(res->dims, a->dims, sizeof(int64_t) * (size_t)(a->ndim - 1)) ||
              res->dims[a->ndim - 1] != N))
    return gpux__wg_decline(b, "FusedMatMul residual broadcasts");
  wg_str pre = {0};
  gpux__wg_cat(&pre, "fn gx_act(x: f32) -> f32 {\n");
  if (!act[0]) gpux__wg_cat(&pre, "  return x;\n");
  else if (!strcmp(act, "Relu")) gpux__wg_cat(&pre, "  return max(x, 0.0);\n");
  else if (!strcmp(act, "Tanh")) gpux__wg_cat(&pre, "  return gx_tanh(x);\n");
  else if (!strcmp(act, "Gelu") && !strcmp(approx, "tanh"))
    gpux__wg_cat(&pre, "  return 0.5 * x * (1.0 + gx_tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));\n");
  else if (!strcmp(act, "Gelu") && !strcmp(approx, "none"))
    gpux__wg_cat(&pre, "  return 0.5 * x * (1.0 + gx_erf(x * 0.7071067811865476));\n");
  else {
    gpux__wg_str_free(&pre);
    return gpux__wg_decline(b, "FusedMatMul activation '%s'", act);
  }
  gpux__wg_cat(&pre, "}\n");
  wg_str body = {0};
  gpux__wg_math_helpers(&body, pre.s ? pre.s : "");
  gpux__wg_cat(&body, "%s", pre.s ? pre.s : "");
  gpux__wg_str_free(&pre);
  const char *narrow = gpux__wg_narrow_in_kernel(b, 0); /* a float16/bfloat16 Y is rounded as stored */
  if (narrow) gpux__wg_cat(&body, "%s", gpux__wg_narrow_fns);
  int ba = gpux__wg_bind_in(b, 0, WG_F32), bbn = gpux__wg_bind_in(b, 1, WG_F32), by = gpux__wg_bind_out(b, 0, WG_F32);
  int bc = bias && gpux_tensor_count(bias) ? gpux__wg_bind_in(b, 2, WG_F32) : -2;
  int br = res ? gpux__wg_bind_in(b, 3, WG_F32) : -2;
  if (ba < 0 || bbn < 0 || by < 0 || bc == -1 || br == -1) {
    gpux__wg_str_free(&body);
    return GPUX_E_UNSUPPORTED;
  }
  char la[160], lb[160], st[300], bx[48] = "", rx[64] = "";
  snprintf(la, sizeof la, "b%d[m * %lluu + k]", ba, (unsigned long long)K);
  snprintf(lb, sizeof lb, trb ? "b%d[n * %lluu + k]" : "b%d[k * %lluu + n]", bbn, (unsigned long long)(trb ? K : N));
  if (bc >= 0) snprintf(bx, sizeof bx, " + b%d[n]", bc);
  if (br >= 0) snprintf(rx, sizeof rx, " + b%d[m * %lluu + n]", br, (unsigned long long)N);
  snprintf(st, sizeof st, "b%d[m * %lluu + n] = %s%sgx_act(v%s)%s%s;", by, (unsigned long long)N, narrow ? narrow : "",
           narrow ? "(" : "", bx, rx, narrow ? ")" : "");
  wg_gemm g = {.M = M, .N = N, .K = K, .batch = 1, .load_a = la, .load_b = lb, .store = st,
               .a_k_contig = 1, .b_n_contig = !trb, .prelude = body.s};
  int rc = body.oom ? gpux__wg_decline(b, "out of memory") : gpux__wg_gemm(b, &g);
  gpux__wg_str_free(&body);
  return rc;
}

const wg_op gpux__wg_ops_linalg[] = {
  {"MatMul", op_matmul},
  {"Gemm", op_gemm},
  {"gpux.FusedMatMul", op_fused_matmul},
  {0},
};
