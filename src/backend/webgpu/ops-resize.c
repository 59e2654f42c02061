/* ops-resize.c — Resize (opsets 10+) and Upsample as a WGSL kernel: per resized axis a table of
 * taps (input index and weight per output index, computed while planning by the CPU kernel's own
 * code, ops/resize.h: every coordinate transformation mode, nearest rounding modes, linear and
 * cubic, antialias, exclude_outside, extrapolation), written once to the GPU; each
 * output value is the weighted sum over the taps of its resized axes. Scales, sizes and roi must
 * be known when planning (initializers or small model inputs). */
#include "backend/webgpu/wg.h"
#include "ops/resize.h"
#include <math.h>
#include <stdio.h>

/* The taps of one axis (ops/resize.h, the CPU kernel's own computation) as the GPU reads them,
 * into idx/w [out * n]: idx -1 in tap 0 means the extrapolation value; nearest mode keeps the one
 * tap of weight 1 (n = 1). *identity: output o is input o. 0, GPUX_E_UNSUPPORTED or GPUX_E_NOMEM. */
static int axis_taps(const gpux__resize_params *p, int64_t in, int64_t out, double scale, double roi0, double roi1,
                     int32_t **idx_out, float **w_out, int *n_out, int *identity) {
  gpux__resize_taps t;
  int rc = gpux__resize_taps_build(p, in, out, scale, roi0, roi1, &t);
  if (rc) return rc;
  int n = t.n, nn = p->mode == GPUX__RESIZE_NEAREST ? 1 : n;
  if (nn > 4096) { /* a table that large is not worth a GPU pass */
    gpux__resize_taps_free(&t);
    return GPUX_E_UNSUPPORTED;
  }
  int32_t *idx = malloc((size_t)(out ? out : 1) * (size_t)nn * sizeof *idx);
  float *wt = malloc((size_t)(out ? out : 1) * (size_t)nn * sizeof *wt);
  if (!idx || !wt) {
    free(idx), free(wt);
    gpux__resize_taps_free(&t);
    return GPUX_E_NOMEM;
  }
  *identity = t.identity;
  for (int64_t o = 0; o < out; o++) {
    const int64_t *ii = t.idx + o * n;
    const double *w = t.w + o * n;
    if (t.extrap[o]) {
      for (int k = 0; k < nn; k++) idx[o * nn + k] = k == 0 ? -1 : 0, wt[o * nn + k] = 0;
    } else if (nn == 1) { /* nearest: the tap of weight 1 */
      int best = 0;
      for (int k = 1; k < n; k++)
        if (w[k] > w[best]) best = k;
      idx[o] = (int32_t)ii[best];
      wt[o] = 1;
    } else {
      for (int k = 0; k < n; k++) idx[o * n + k] = (int32_t)ii[k], wt[o * n + k] = (float)w[k];
    }
  }
  gpux__resize_taps_free(&t);
  *idx_out = idx;
  *w_out = wt;
  *n_out = nn;
  return 0;
}

static int parse_enum(wg_build *b, const char *attr, const char *dflt, const char *const *names, int count, int *out) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), attr);
  const char *s = a && a->s ? a->s : dflt;
  for (int i = 0; i < count; i++)
    if (!strcmp(s, names[i])) return *out = i, 0;
  return gpux__wg_decline(b, "%s '%s'", attr, s);
}

static float attr_f(wg_build *b, const char *name, float dflt) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), name);
  return a ? (a->type == GPUX_ATTR_INT ? (float)a->i : a->f) : dflt;
}

static int64_t attr_i(wg_build *b, const char *name, int64_t dflt) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), name);
  return a ? a->i : dflt;
}

static int const_floats(wg_build *b, int slot, double *vals, int cap) {
  const gpux_tensor *t = gpux__wg_in(b, slot);
  if (!t || !gpux_tensor_count(t)) return 0;
  if (gpux__wg_need_const(b, slot)) return GPUX_E_UNSUPPORTED;
  int64_t n = gpux_tensor_count(t);
  if (n > cap) return gpux__wg_decline(b, "input %d has too many values", slot);
  for (int64_t i = 0; i < n; i++) vals[i] = gpux__load_f64(t->dtype, t->data, i);
  return (int)n;
}

static int op_resize(wg_build *b) {
  const gpux__node *node = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || x->ndim < 1 || x->ndim != y->ndim) return gpux__wg_decline(b, "bad Resize input");
  int type;
  if (gpux__wg_is_f32(x->dtype)) type = WG_F32;
  else return gpux__wg_decline(b, "Resize of %s", gpux_dtype_name(x->dtype));
  int rank = x->ndim, rc;
  gpux__resize_params p = {0};
  static const char *const modes[] = {"nearest", "linear", "cubic"};
  static const char *const ctms[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                     "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn"};
  static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  double scales[GPUX_MAX_DIMS], roi[2 * GPUX_MAX_DIMS];
  for (int d = 0; d < rank; d++) scales[d] = 1, roi[d] = 0, roi[rank + d] = 1;
  int is_upsample = !strcmp(node->op_type, "Upsample");
  if (is_upsample || node->opset < 11) {
    const gpux__attr *ma = gpux__node_attr(node, "mode");
    const char *m = ma && ma->s ? ma->s : "nearest";
    if (!strcmp(m, "nearest")) p.mode = GPUX__RESIZE_NEAREST;
    else if (!strcmp(m, "linear") || !strcmp(m, "bilinear")) p.mode = GPUX__RESIZE_LINEAR;
    else return gpux__wg_decline(b, "mode '%s'", m);
    p.ctm = GPUX__RESIZE_CT_ASYMMETRIC;
    p.nearest_mode = GPUX__RESIZE_NM_FLOOR;
    p.cubic_a = -0.75;
    double sv[GPUX_MAX_DIMS];
    int ns;
    if (is_upsample && node->opset < 9) {
      const gpux__attr *sa = gpux__node_attr(node, "scales");
      ns = sa ? sa->n : 0;
      for (int i = 0; i < ns && i < GPUX_MAX_DIMS; i++) sv[i] = sa->floats[i];
    } else {
      ns = const_floats(b, 1, sv, GPUX_MAX_DIMS);
      if (ns < 0) return GPUX_E_UNSUPPORTED;
    }
    if (ns != rank) return gpux__wg_decline(b, "scales has %d values", ns);
    for (int d = 0; d < rank; d++) scales[d] = sv[d];
  } else {
    if ((rc = parse_enum(b, "mode", "nearest", modes, 3, &p.mode))) return rc;
    if ((rc = parse_enum(b, "coordinate_transformation_mode", "half_pixel", ctms, 7, &p.ctm))) return rc;
    if ((rc = parse_enum(b, "nearest_mode", "round_prefer_floor", nms, 4, &p.nearest_mode))) return rc;
    p.cubic_a = attr_f(b, "cubic_coeff_a", -0.75f);
    p.exclude_outside = (int)attr_i(b, "exclude_outside", 0);
    p.extrapolation = attr_f(b, "extrapolation_value", 0.0f);
    p.antialias = (int)attr_i(b, "antialias", 0);
    const gpux__attr *kp = gpux__node_attr(node, "keep_aspect_ratio_policy");
    int policy = !kp || !kp->s || !strcmp(kp->s, "stretch") ? 0 : !strcmp(kp->s, "not_larger") ? 1 : 2;
    int axes[GPUX_MAX_DIMS], naxes = rank;
    const gpux__attr *aa = gpux__node_attr(node, "axes");
    if (aa && aa->type == GPUX_ATTR_INTS && aa->n > 0) {
      if (aa->n > rank) return gpux__wg_decline(b, "bad axes");
      naxes = aa->n;
      for (int i = 0; i < naxes; i++) axes[i] = (int)(aa->ints[i] < 0 ? aa->ints[i] + rank : aa->ints[i]);
    } else {
      for (int i = 0; i < rank; i++) axes[i] = i;
    }
    if (p.ctm == GPUX__RESIZE_CT_TF_CROP_AND_RESIZE) {
      double rv[2 * GPUX_MAX_DIMS];
      int nr = const_floats(b, 1, rv, 2 * GPUX_MAX_DIMS);
      if (nr < 0) return GPUX_E_UNSUPPORTED;
      if (nr == 2 * naxes)
        for (int i = 0; i < naxes; i++) roi[axes[i]] = rv[i], roi[rank + axes[i]] = rv[naxes + i];
    }
    double sv[GPUX_MAX_DIMS];
    int ns = const_floats(b, 2, sv, GPUX_MAX_DIMS);
    if (ns < 0) return GPUX_E_UNSUPPORTED;
    if (ns > 0) {
      if (ns != naxes) return gpux__wg_decline(b, "bad scales");
      for (int i = 0; i < naxes; i++) scales[axes[i]] = sv[i];
    } else {
      /* sizes: the scales follow from the output the shape inference made, except under an aspect
       * policy (one scale for every axis) */
      const gpux_tensor *st = gpux__wg_in(b, 3);
      if (!st) return gpux__wg_decline(b, "Resize sizes not given");
      if (gpux__wg_need_const(b, 3)) return GPUX_E_UNSUPPORTED;
      int64_t sz[GPUX_MAX_DIMS];
      if (gpux_tensor_count(st) != naxes) return gpux__wg_decline(b, "bad sizes");
      for (int i = 0; i < naxes; i++) sz[i] = gpux__load_i64(st->dtype, st->data, i);
      if (policy == 0) {
        for (int i = 0; i < naxes; i++) scales[axes[i]] = x->dims[axes[i]] ? (double)sz[i] / (double)x->dims[axes[i]] : 1;
      } else {
        double s = 0;
        for (int i = 0; i < naxes; i++) {
          double r = x->dims[axes[i]] ? (double)sz[i] / (double)x->dims[axes[i]] : 1;
          if (i == 0 || (policy == 1 ? r < s : r > s)) s = r;
        }
        for (int i = 0; i < naxes; i++) scales[axes[i]] = s;
      }
    }
  }
  int64_t total = gpux_tensor_count(y);
  if (!total) return 0;
  if (!gpux_tensor_count(x)) return gpux__wg_decline(b, "resizing an empty input");
  /* tables: i32 indices and f32 weights of every non-identity axis, back to back */
  int32_t *idx[GPUX_MAX_DIMS] = {0};
  float *wts[GPUX_MAX_DIMS] = {0};
  int ntap[GPUX_MAX_DIMS] = {0}, ident[GPUX_MAX_DIMS] = {0};
  int64_t off[GPUX_MAX_DIMS] = {0}, tot_taps = 0;
  rc = 0;
  for (int d = 0; d < rank && !rc; d++) {
    int r = axis_taps(&p, x->dims[d], y->dims[d], scales[d], roi[d], roi[rank + d], &idx[d], &wts[d], &ntap[d], &ident[d]);
    if (r == GPUX_E_UNSUPPORTED) rc = gpux__wg_decline(b, "antialias filter too wide");
    else if (r) rc = r;
    if (!rc && !ident[d]) off[d] = tot_taps, tot_taps += y->dims[d] * ntap[d];
  }
  int32_t *ti = NULL;
  float *tw = NULL;
  if (!rc) {
    ti = malloc((size_t)(tot_taps ? tot_taps : 1) * sizeof *ti);
    tw = malloc((size_t)(tot_taps ? tot_taps : 1) * sizeof *tw);
    if (!ti || !tw) rc = GPUX_E_NOMEM;
  }
  for (int d = 0; d < rank && !rc; d++)
    if (!ident[d]) {
      memcpy(ti + off[d], idx[d], (size_t)(y->dims[d] * ntap[d]) * sizeof *ti);
      memcpy(tw + off[d], wts[d], (size_t)(y->dims[d] * ntap[d]) * sizeof *tw);
    }
  for (int d = 0; d < rank; d++) free(idx[d]), free(wts[d]);
  if (rc == GPUX_E_NOMEM) { free(ti); free(tw); return gpux__wg_decline(b, "out of memory"); }
  if (rc) { free(ti); free(tw); return rc; }
  int ci = gpux__wg_const(b, ti, (uint64_t)(tot_taps ? tot_taps : 1) * 4), cw = gpux__wg_const(b, tw, (uint64_t)(tot_taps ? tot_taps : 1) * 4);
  free(ti);
  free(tw);
  if (ci < 0 || cw < 0) return GPUX_E_UNSUPPORTED;
  int bx = gpux__wg_bind_in(b, 0, type), by = gpux__wg_bind_out(b, 0, type);
  int bi = gpux__wg_bind_scratch(b, ci, WG_I32), bw = gpux__wg_bind_scratch(b, cw, WG_F32);
  if (bx < 0 || by < 0 || bi < 0 || bw < 0) return GPUX_E_UNSUPPORTED;
  int64_t ist[GPUX_MAX_DIMS];
  gpux__wg_strides(x, ist);
  uint32_t gx, gy;
  gpux__wg_grid(b, (uint64_t)(total + 255) / 256, &gx, &gy);
  wg_str s = {0};
  char fb[48];
  gpux__wg_decls(b, &s);
  gpux__wg_cat(&s, "@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n"
                   "  let i = (wid.y * %uu + wid.x) * 256u + li;\n  if (i >= %lluu) { return; }\n  var r = i;\n",
               gx, (unsigned long long)total);
  for (int d = rank - 1; d >= 0; d--)
    gpux__wg_cat(&s, "  let c%d = r %% %lluu; r = r / %lluu;\n", d, (unsigned long long)y->dims[d], (unsigned long long)y->dims[d]);
  gpux__wg_cat(&s, "  var acc = 0.0;\n  var outside = false;\n");
  /* nested loops over the taps of each resized axis; identity axes read their own coordinate */
  int depth = 0;
  gpux__wg_cat(&s, "  {\n  let base0 = 0u;\n");
  char wexpr[512] = "1.0";
  for (int d = 0; d < rank; d++) {
    if (ident[d]) {
      gpux__wg_cat(&s, "  let base%d = base%d + c%d * %lluu;\n", d + 1, d, d, (unsigned long long)ist[d]);
      continue;
    }
    gpux__wg_cat(&s, "  for (var t%d = 0u; t%d < %du; t%d = t%d + 1u) {\n    let k%d = %lluu + c%d * %du + t%d;\n"
                     "    let j%d = b%d[k%d];\n    if (j%d < 0) { outside = true; break; }\n"
                     "    let base%d = base%d + u32(j%d) * %lluu;\n",
                 d, d, ntap[d], d, d, d, (unsigned long long)off[d], d, ntap[d], d, d, bi, d, d, d + 1, d, d,
                 (unsigned long long)ist[d]);
    size_t l = strlen(wexpr);
    snprintf(wexpr + l, sizeof wexpr - l, " * b%d[k%d]", bw, d);
    depth++;
  }
  gpux__wg_cat(&s, "  { let wgt = %s;\n    if (wgt != 0.0) { acc = acc + wgt * b%d[base%d]; } }\n", wexpr, bx, rank);
  for (int q = 0; q < depth; q++) gpux__wg_cat(&s, "  }\n");
  gpux__wg_cat(&s, "  }\n  b%d[i] = select(acc, %s, outside);\n}\n", by, gpux__wg_float(fb, (float)p.extrapolation));
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

const wg_op gpux__wg_ops_resize[] = {
  {"Resize", op_resize},
  {"Upsample", op_resize},
  {0},
};
