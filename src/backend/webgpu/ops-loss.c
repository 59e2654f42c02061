/* ops-loss.c — WGSL kernels for NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (whose
 * expanded forms are common in the ONNX tests). One thread per (sample, position) row reads the
 * class its target names (after a log-softmax over the classes for SoftmaxCrossEntropyLoss,
 * written to the optional log_prob output), and for sum/mean a second dispatch adds the per-row
 * losses and weights. */
#include "backend/webgpu/wg.h"
#include <stdio.h>

typedef unsigned long long ull;

static int loss(wg_build *b, int softmax) {
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *t = gpux__wg_in(b, 1), *w = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  const gpux_tensor *lp = softmax ? gpux__wg_out(b, 1) : NULL;
  if (!x || !t || !y || x->ndim < 2 || t->ndim != x->ndim - 1) return gpux__wg_decline(b, "bad loss inputs");
  if (!gpux__wg_is_f32(x->dtype) || (w && w->dtype != x->dtype)) return gpux__wg_decline(b, "loss on %s", gpux_dtype_name(x->dtype));
  const gpux__attr *ra = gpux__node_attr(n, "reduction"), *ia = gpux__node_attr(n, "ignore_index");
  const char *red = ra && ra->s ? ra->s : "mean";
  int reduce = strcmp(red, "none") != 0, mean = !strcmp(red, "mean");
  if (reduce && strcmp(red, "sum") && !mean) return gpux__wg_decline(b, "reduction '%s'", red);
  int64_t N = x->dims[0], C = x->dims[1], NC = N * C, D = NC > 0 ? gpux_tensor_count(x) / NC : 0, rows = N * D;
  if (!rows || !C) return gpux__wg_decline(b, "empty loss input");
  int bx = gpux__wg_bind_in(b, 0, WG_F32), bt = gpux__wg_bind_in(b, 1, WG_I32), bw = w ? gpux__wg_bind_in(b, 2, WG_F32) : -2;
  if (bx < 0 || bt < 0 || bw == -1) return GPUX_E_UNSUPPORTED;
  /* log-probabilities go to log_prob (or a scratch buffer when it is not wanted) */
  int blp = -2, lp_scratch = -1;
  if (softmax) {
    if (lp) blp = gpux__wg_bind_out(b, 1, WG_F32);
    else {
      lp_scratch = gpux__wg_scratch(b, (uint64_t)gpux_tensor_count(x) * 4);
      if (lp_scratch < 0) return GPUX_E_UNSUPPORTED;
      blp = gpux__wg_bind_scratch(b, lp_scratch, WG_F32);
    }
    if (blp < 0) return GPUX_E_UNSUPPORTED;
  }
  int part = -1, by;
  if (reduce) {
    part = gpux__wg_scratch(b, (uint64_t)rows * 8); /* loss and weight per row */
    if (part < 0) return GPUX_E_UNSUPPORTED;
    by = gpux__wg_bind_scratch(b, part, WG_F32);
  } else {
    by = gpux__wg_bind_out(b, 0, WG_F32);
  }
  if (by < 0) return GPUX_E_UNSUPPORTED;
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(rows + 63) / 64, &gx, &gy);
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  gpux__wg_cat(&s, "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let r = (wid.y * %uu + wid.x) * 64u + li;\n  if (r >= %lluu) { return; }\n"
                   "  let nb = r / %lluu;\n  let d = r %% %lluu;\n  let base = nb * %lluu + d;\n",
               gx, (ull)rows, (ull)D, (ull)D, (ull)(C * D));
  const char *src = softmax ? "lpv" : "xv";
  if (softmax) {
    gpux__wg_cat(&s, "  var mx = -gx_inf();\n  for (var c = 0u; c < %lluu; c = c + 1u) { mx = max(mx, b%d[base + c * %lluu]); }\n"
                     "  var se = 0.0;\n  for (var c = 0u; c < %lluu; c = c + 1u) { se = se + exp(b%d[base + c * %lluu] - mx); }\n"
                     "  let ls = log(se) + mx;\n"
                     "  for (var c = 0u; c < %lluu; c = c + 1u) { b%d[base + c * %lluu] = b%d[base + c * %lluu] - ls; }\n",
                 (ull)C, bx, (ull)D, (ull)C, bx, (ull)D, (ull)C, blp, (ull)D, bx, (ull)D);
  }
  gpux__wg_cat(&s, "  let tc = b%d[r];\n  var loss = 0.0;\n  var wt = 0.0;\n", bt);
  if (ia) gpux__wg_cat(&s, "  if (tc != %lld && tc >= 0 && tc < %lld) {\n", (long long)ia->i, (long long)C);
  else gpux__wg_cat(&s, "  if (tc >= 0 && tc < %lld) {\n", (long long)C);
  gpux__wg_cat(&s, "    let k = base + u32(tc) * %lluu;\n", (ull)D);
  if (softmax) gpux__wg_cat(&s, "    let lpv = b%d[k];\n", blp);
  else gpux__wg_cat(&s, "    let xv = b%d[k];\n", bx);
  if (bw >= 0) gpux__wg_cat(&s, "    wt = b%d[u32(tc)];\n", bw);
  else gpux__wg_cat(&s, "    wt = 1.0;\n");
  gpux__wg_cat(&s, "    loss = -%s * wt;\n  }\n", src);
  if (reduce) gpux__wg_cat(&s, "  b%d[2u * r] = loss;\n  b%d[2u * r + 1u] = wt;\n}\n", by, by);
  else gpux__wg_cat(&s, "  b%d[r] = loss;\n}\n", by);
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  if (rc || !reduce) return rc;
  /* sum (and mean: divided by the summed weights) */
  int bp = gpux__wg_bind_scratch(b, part, WG_F32), bo = gpux__wg_bind_out(b, 0, WG_F32);
  if (bp < 0 || bo < 0) return GPUX_E_UNSUPPORTED;
  wg_str r = {0};
  gpux__wg_decls(b, &r);
  gpux__wg_cat(&r, "@compute @workgroup_size(1)\nfn main() {\n  var sl = 0.0;\n  var sw = 0.0;\n"
                   "  for (var i = 0u; i < %lluu; i = i + 1u) { sl = sl + b%d[2u * i]; sw = sw + b%d[2u * i + 1u]; }\n"
                   "  b%d[0] = %s;\n}\n",
               (ull)rows, bp, bp, bo, mean ? "sl / sw" : "sl");
  rc = gpux__wg_dispatch(b, &r, 1, 1, 1);
  gpux__wg_str_free(&r);
  return rc;
}

static int op_nll(wg_build *b) { return loss(b, 0); }
static int op_sce(wg_build *b) { return loss(b, 1); }

const wg_op gpux__wg_ops_loss[] = {
  {"NegativeLogLikelihoodLoss", op_nll},
  {"SoftmaxCrossEntropyLoss", op_sce},
  {0},
};
