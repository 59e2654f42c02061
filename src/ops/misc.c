/* misc.c — operator family 'misc': NonMaxSuppression, RoiAlign, GridSample and AffineGrid, plus
 * the table that registers this family's kernels from resize.c (Resize, Upsample), signal.c
 * (DFT, STFT) and strings.c (StringNormalizer, StringConcat, StringSplit, RegexFullMatch). */
#include "ops/op.h"
#include <math.h>

/* kernels living in resize.c, signal.c and strings.c */
int gpux__op_resize(gpux__kctx *k);
int gpux__op_upsample(gpux__kctx *k);
int gpux__op_dft(gpux__kctx *k);
int gpux__op_stft(gpux__kctx *k);
int gpux__op_string_normalizer(gpux__kctx *k);
int gpux__op_string_concat(gpux__kctx *k);
int gpux__op_string_split(gpux__kctx *k);
int gpux__op_regex_full_match(gpux__kctx *k);

/* Loads a whole numeric tensor as doubles (NULL with an error on failure). */
static double *load_all(gpux__kctx *k, const gpux_tensor *t) {
  int64_t n = gpux_tensor_count(t);
  double *v = gpux__malloc((size_t)(n ? n : 1) * sizeof(double));
  if (!v) {
    gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    return NULL;
  }
  if (t->dtype == GPUX_DT_FLOAT)
    for (int64_t i = 0; i < n; i++) v[i] = ((const float *)t->data)[i];
  else
    for (int64_t i = 0; i < n; i++) v[i] = gpux__load_f64(t->dtype, t->data, i);
  return v;
}

/* ---- NonMaxSuppression ---- */

typedef struct {
  double y1, x1, y2, x2;   /* min corner, max corner */
} nms_box;

static int nms_suppress(const nms_box *a, const nms_box *b, double iou_threshold) {
  double area_a = (a->y2 - a->y1) * (a->x2 - a->x1);
  double area_b = (b->y2 - b->y1) * (b->x2 - b->x1);
  if (area_a <= 0 || area_b <= 0) return 0;
  double iy1 = GPUX__MAX(a->y1, b->y1), ix1 = GPUX__MAX(a->x1, b->x1);
  double iy2 = GPUX__MIN(a->y2, b->y2), ix2 = GPUX__MIN(a->x2, b->x2);
  if (iy2 <= iy1 || ix2 <= ix1) return 0;
  double inter = (iy2 - iy1) * (ix2 - ix1);
  double iou = inter / (area_a + area_b - inter);
  return iou > iou_threshold;
}

typedef struct {
  double score;
  int64_t index;
} nms_cand;

static int nms_cand_cmp(const void *pa, const void *pb) {
  const nms_cand *a = pa, *b = pb;
  if (a->score != b->score) return a->score > b->score ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

static int op_nms(gpux__kctx *k) {
  const gpux_tensor *boxes = IN(0), *scores = IN(1);
  if (!boxes || !scores) return gpux__kerr(k, GPUX_E_INVALID, "boxes and scores are required");
  if (boxes->ndim != 3 || boxes->dims[2] != 4)
    return gpux__kerr(k, GPUX_E_SHAPE, "boxes must be [batches, boxes, 4]");
  if (scores->ndim != 3 || scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
    return gpux__kerr(k, GPUX_E_SHAPE, "scores must be [batches, classes, boxes]");
  for (int i = 0; i < 5; i++) {
    int rc = gpux__need_data(k, i);
    if (rc) return rc;
  }
  int64_t max_out = 0;
  double iou_th = 0, score_th = -INFINITY;
  if (IN(2) && gpux_tensor_count(IN(2)) > 0) max_out = gpux__load_i64(IN(2)->dtype, IN(2)->data, 0);
  if (IN(3) && gpux_tensor_count(IN(3)) > 0) iou_th = gpux__load_f64(IN(3)->dtype, IN(3)->data, 0);
  int has_score_th = IN(4) && gpux_tensor_count(IN(4)) > 0;
  if (has_score_th) score_th = gpux__load_f64(IN(4)->dtype, IN(4)->data, 0);
  int center = (int)gpux__attr_int(k, "center_point_box", 0);
  if (center != 0 && center != 1) return gpux__kerr(k, GPUX_E_INVALID, "center_point_box %d", center);
  int64_t nb = boxes->dims[0], nc = scores->dims[1], ns = boxes->dims[1];
  if (max_out < 0) max_out = 0;
  if (max_out > ns) max_out = ns;
  int64_t cap = nb * nc * max_out;
  int64_t *sel = gpux__malloc((size_t)(cap * 3 + 1) * sizeof(int64_t));   /* (cap, 3) */
  nms_box *bx = gpux__malloc((size_t)(ns + 1) * sizeof(nms_box));
  nms_cand *cand = gpux__malloc((size_t)(ns + 1) * sizeof(nms_cand));
  int64_t *kept = gpux__malloc((size_t)(max_out + 1) * sizeof(int64_t));
  if (!sel || !bx || !cand || !kept) {
    free(sel); free(bx); free(cand); free(kept);
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
  int64_t nsel = 0;
  for (int64_t b = 0; b < nb && max_out > 0; b++) {
    for (int64_t i = 0; i < ns; i++) {
      double v[4];
      for (int j = 0; j < 4; j++) v[j] = gpux__load_f64(boxes->dtype, boxes->data, (b * ns + i) * 4 + j);
      nms_box *o = &bx[i];
      if (center) {
        o->x1 = v[0] - v[2] / 2, o->x2 = v[0] + v[2] / 2;
        o->y1 = v[1] - v[3] / 2, o->y2 = v[1] + v[3] / 2;
      } else {
        o->y1 = GPUX__MIN(v[0], v[2]), o->y2 = GPUX__MAX(v[0], v[2]);
        o->x1 = GPUX__MIN(v[1], v[3]), o->x2 = GPUX__MAX(v[1], v[3]);
      }
    }
    for (int64_t c = 0; c < nc; c++) {
      int64_t n = 0;
      for (int64_t i = 0; i < ns; i++) {
        double s = gpux__load_f64(scores->dtype, scores->data, (b * nc + c) * ns + i);
        if (has_score_th && !(s > score_th)) continue;
        cand[n].score = s;
        cand[n].index = i;
        n++;
      }
      qsort(cand, (size_t)n, sizeof *cand, nms_cand_cmp);
      int64_t nk = 0;
      for (int64_t i = 0; i < n && nk < max_out; i++) {
        int keep = 1;
        for (int64_t j = 0; j < nk && keep; j++)
          if (nms_suppress(&bx[cand[i].index], &bx[kept[j]], iou_th)) keep = 0;
        if (!keep) continue;
        kept[nk++] = cand[i].index;
        sel[nsel * 3] = b;
        sel[nsel * 3 + 1] = c;
        sel[nsel * 3 + 2] = cand[i].index;
        nsel++;
      }
    }
  }
  int64_t dims[2] = {nsel, 3};
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_INT64, 2, dims);
  if (y && !k->shape_only) memcpy(y->data, sel, (size_t)(nsel * 3) * sizeof(int64_t));
  free(sel); free(bx); free(cand); free(kept);
  return y ? 0 : k->status;
}

/* ---- RoiAlign ---- */

typedef struct {
  int64_t pos[4];
  double w[4];
} roi_sample;

static int op_roi_align(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *rois = IN(1), *bidx = IN(2);
  if (!x || !rois || !bidx) return gpux__kerr(k, GPUX_E_INVALID, "X, rois and batch_indices are required");
  if (x->ndim != 4) return gpux__kerr(k, GPUX_E_SHAPE, "X must be [N, C, H, W]");
  if (rois->ndim != 2 || rois->dims[1] != 4) return gpux__kerr(k, GPUX_E_SHAPE, "rois must be [num_rois, 4]");
  if (bidx->ndim != 1 || bidx->dims[0] != rois->dims[0])
    return gpux__kerr(k, GPUX_E_SHAPE, "batch_indices must be [num_rois]");
  const char *mode = gpux__attr_string(k, "mode", "avg");
  int is_max;
  if (!strcmp(mode, "avg")) is_max = 0;
  else if (!strcmp(mode, "max")) is_max = 1;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "mode '%s'", mode);
  const char *ctm = gpux__attr_string(k, "coordinate_transformation_mode", k->opset < 16 ? "output_half_pixel" : "half_pixel");
  int half_pixel;
  if (!strcmp(ctm, "half_pixel")) half_pixel = 1;
  else if (!strcmp(ctm, "output_half_pixel")) half_pixel = 0;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "coordinate_transformation_mode '%s'", ctm);
  int64_t oh = gpux__attr_int(k, "output_height", 1), ow = gpux__attr_int(k, "output_width", 1);
  int64_t sampling = gpux__attr_int(k, "sampling_ratio", 0);
  double sscale = gpux__attr_float(k, "spatial_scale", 1.0f);
  if (oh <= 0 || ow <= 0 || sampling < 0) return gpux__kerr(k, GPUX_E_INVALID, "bad output size or sampling_ratio");
  int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], R = rois->dims[0];
  int64_t dims[4] = {R, C, oh, ow};
  gpux_tensor *y = gpux__out(k, 0, x->dtype, 4, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (!gpux__dtype_is_float(x->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s", gpux_dtype_name(x->dtype));
  if ((H == 0 || W == 0) && gpux_tensor_count(y) > 0)
    return gpux__kerr(k, GPUX_E_SHAPE, "cannot pool from an empty feature map");
  double *xv = load_all(k, x), *rv = xv ? load_all(k, rois) : NULL;
  if (!rv) { free(xv); return k->status; }
  double offset = half_pixel ? 0.5 : 0;
  int rc = 0;
  for (int64_t r = 0; r < R && !rc; r++) {
    int64_t b = gpux__load_i64(bidx->dtype, bidx->data, r);
    if (b < 0 || b >= N) {
      rc = gpux__kerr(k, GPUX_E_INVALID, "batch index %lld out of range", (long long)b);
      break;
    }
    double sw = rv[r * 4] * sscale - offset, sh = rv[r * 4 + 1] * sscale - offset;
    double ew = rv[r * 4 + 2] * sscale - offset, eh = rv[r * 4 + 3] * sscale - offset;
    double rw = ew - sw, rh = eh - sh;
    if (!half_pixel) {
      rw = GPUX__MAX(rw, 1.0);
      rh = GPUX__MAX(rh, 1.0);
    }
    double bh = rh / (double)oh, bw = rw / (double)ow;
    double ghd = sampling > 0 ? (double)sampling : ceil(rh / (double)oh);
    double gwd = sampling > 0 ? (double)sampling : ceil(rw / (double)ow);
    if (!isfinite(ghd) || !isfinite(gwd) || ghd * gwd * (double)(oh * ow) > 1e9) {
      rc = gpux__kerr(k, GPUX_E_INVALID, "roi %lld is not finite or needs too many samples", (long long)r);
      break;
    }
    int64_t gh = ghd > 0 ? (int64_t)ghd : 0, gw = gwd > 0 ? (int64_t)gwd : 0;
    double count = (double)GPUX__MAX(gh * gw, 1);
    int64_t ns = oh * ow * gh * gw;
    roi_sample *smp = gpux__malloc((size_t)(ns + 1) * sizeof *smp);
    if (!smp) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); break; }
    /* bilinear sample positions and weights, shared by all channels */
    int64_t si = 0;
    for (int64_t ph = 0; ph < oh; ph++)
      for (int64_t pw = 0; pw < ow; pw++)
        for (int64_t iy = 0; iy < gh; iy++) {
          double yy = sh + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
          for (int64_t ix = 0; ix < gw; ix++, si++) {
            double xx = sw + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
            roi_sample *s = &smp[si];
            if (!(yy >= -1.0 && yy <= (double)H && xx >= -1.0 && xx <= (double)W)) {   /* NaN too */
              memset(s, 0, sizeof *s);
              continue;
            }
            double py = yy <= 0 ? 0 : yy, px = xx <= 0 ? 0 : xx;
            int64_t y0 = (int64_t)py, x0 = (int64_t)px, y1, x1;
            if (y0 >= H - 1) y1 = y0 = H - 1, py = (double)y0;
            else y1 = y0 + 1;
            if (x0 >= W - 1) x1 = x0 = W - 1, px = (double)x0;
            else x1 = x0 + 1;
            double ly = py - (double)y0, lx = px - (double)x0, hy = 1 - ly, hx = 1 - lx;
            s->pos[0] = y0 * W + x0, s->pos[1] = y0 * W + x1;
            s->pos[2] = y1 * W + x0, s->pos[3] = y1 * W + x1;
            s->w[0] = hy * hx, s->w[1] = hy * lx, s->w[2] = ly * hx, s->w[3] = ly * lx;
          }
        }
    for (int64_t c = 0; c < C; c++) {
      const double *plane = xv + (b * C + c) * H * W;
      for (int64_t p = 0; p < oh * ow; p++) {
        const roi_sample *s = smp + p * gh * gw;
        double acc = 0;
        for (int64_t q = 0; q < gh * gw; q++) {
          const roi_sample *t = &s[q];
          if (is_max) {
            double v = t->w[0] * plane[t->pos[0]];
            for (int j = 1; j < 4; j++) v = GPUX__MAX(v, t->w[j] * plane[t->pos[j]]);
            acc = q == 0 ? v : GPUX__MAX(acc, v);
          } else {
            acc += t->w[0] * plane[t->pos[0]] + t->w[1] * plane[t->pos[1]] + t->w[2] * plane[t->pos[2]] +
                   t->w[3] * plane[t->pos[3]];
          }
        }
        if (!is_max) acc /= count;
        gpux__store_f64(y->dtype, y->data, (r * C + c) * oh * ow + p, acc);
      }
    }
    free(smp);
  }
  free(xv);
  free(rv);
  return rc;
}

/* ---- GridSample ---- */

enum { GS_LINEAR, GS_NEAREST, GS_CUBIC };
enum { PAD_ZEROS, PAD_BORDER, PAD_REFLECTION };

static double gs_reflect(double x, double lo, double hi) {
  double rng = hi - lo;
  if (rng <= 0) return lo;
  if (x < lo) {
    double dx = lo - x;
    int64_t n = (int64_t)(dx / rng);
    double r = dx - (double)n * rng;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    int64_t n = (int64_t)(dx / rng);
    double r = dx - (double)n * rng;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

/* Index i along an axis of length len after padding; -1 for a zero (outside) sample. */
static int64_t gs_index(int64_t i, int64_t len, int pad, double lo, double hi) {
  if (pad == PAD_ZEROS) return i >= 0 && i < len ? i : -1;
  if (pad == PAD_BORDER) return i < 0 ? 0 : i >= len ? len - 1 : i;
  int64_t j = (int64_t)gs_reflect((double)i, lo, hi);
  return j < 0 ? 0 : j >= len ? len - 1 : j;
}

static void gs_cubic_coeffs(double t, double c[4]) {
  const double A = -0.75;
  double x = fabs(t);
  c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
  c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = ((A * (2 - x) - 5 * A) * (2 - x) + 8 * A) * (2 - x) - 4 * A;
}

typedef struct {
  int sd, mode, pad, align;
  int64_t N, C, in_count, out_count;
  int64_t in_len[3];
  double lo[3], hi[3];
  const float *xf;    /* float32 input (N, C, spatial...), or NULL and then xv */
  const double *xv;
  const double *gv;   /* (N, out spatial..., sd) */
  float *yf;          /* float32 output, or NULL and then y through store */
  gpux_tensor *y;
} gs_job;

/* One item per (batch, output position): taps once, then every channel. */
static void gs_positions(void *ctx, int64_t begin, int64_t end) {
  const gs_job *j = ctx;
  int sd = j->sd, mode = j->mode, pad = j->pad;
  for (int64_t item = begin; item < end; item++) {
    int64_t n = item / j->out_count, o = item % j->out_count;
    const double *g = j->gv + item * sd;
    double pos[3];
    for (int d = 0; d < sd; d++) {
      double nv = (float)g[sd - 1 - d];
      double len = (double)j->in_len[d];
      double v = j->align ? (nv + 1) / 2.0 * (len - 1) : ((nv + 1) * len - 1) / 2.0;
      v = (float)v;   /* the reference works in float32 here */
      if (!(fabs(v) < 1e15)) v = v > 0 ? j->hi[d] + 2 : j->lo[d] - 2;   /* inf, NaN: outside */
      if (mode == GS_NEAREST) v = nearbyint(v);   /* half to even, as the test data has it */
      if (v < j->lo[d] || v > j->hi[d]) {
        if (pad == PAD_BORDER) v = v < 0 ? 0 : v > len - 1 ? len - 1 : v;
        else if (pad == PAD_REFLECTION) v = gs_reflect(v, j->lo[d], j->hi[d]);
      }
      pos[d] = v;
    }
    int nt = mode == GS_NEAREST ? 1 : mode == GS_LINEAR ? 2 : 4;
    int64_t ti[3][4] = {{0}};
    double tw[3][4] = {{0}};
    int cnt[3] = {1, 1, 1};
    for (int d = 0; d < sd; d++) {
      cnt[d] = nt;
      if (mode == GS_NEAREST) {
        ti[d][0] = gs_index((int64_t)pos[d], j->in_len[d], pad, j->lo[d], j->hi[d]);
        tw[d][0] = 1;
        continue;
      }
      double f = floor(pos[d]);
      int64_t i0 = (int64_t)f;
      double t = pos[d] - f;
      if (mode == GS_LINEAR) {
        tw[d][0] = 1 - t, tw[d][1] = t;
        for (int q = 0; q < 2; q++) ti[d][q] = gs_index(i0 + q, j->in_len[d], pad, j->lo[d], j->hi[d]);
      } else {
        gs_cubic_coeffs(t, tw[d]);
        for (int q = 0; q < 4; q++) ti[d][q] = gs_index(i0 - 1 + q, j->in_len[d], pad, j->lo[d], j->hi[d]);
      }
    }
    /* flatten the taps to (offset, weight) pairs, dropping zero-padded ones */
    int64_t offs[64];
    double ws[64];
    int m = 0;
    for (int a = 0; a < cnt[0]; a++)
      for (int b = 0; b < cnt[1]; b++)
        for (int e = 0; e < cnt[2]; e++) {
          if (ti[0][a] < 0 || (sd > 1 && ti[1][b] < 0) || (sd > 2 && ti[2][e] < 0)) continue;
          int64_t off = ti[0][a];
          double w = tw[0][a];
          if (sd > 1) off = off * j->in_len[1] + ti[1][b], w *= tw[1][b];
          if (sd > 2) off = off * j->in_len[2] + ti[2][e], w *= tw[2][e];
          offs[m] = off;
          ws[m++] = w;
        }
    for (int64_t c = 0; c < j->C; c++) {
      int64_t base = (n * j->C + c) * j->in_count;
      double acc = 0;
      if (j->xf)
        for (int q = 0; q < m; q++) acc += ws[q] * j->xf[base + offs[q]];
      else
        for (int q = 0; q < m; q++) acc += ws[q] * j->xv[base + offs[q]];
      int64_t at = (n * j->C + c) * j->out_count + o;
      if (j->yf) j->yf[at] = (float)acc;
      else gpux__store_f64(j->y->dtype, j->y->data, at, acc);
    }
  }
}

static int op_grid_sample(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *grid = IN(1);
  if (!x || !grid) return gpux__kerr(k, GPUX_E_INVALID, "X and grid are required");
  int sd = x->ndim - 2;   /* spatial dims */
  if (sd < 1 || sd > 3) return gpux__kerr(k, GPUX_E_SHAPE, "X must be [N, C, spatial...] with 1-3 spatial dims");
  if (grid->ndim != x->ndim || grid->dims[0] != x->dims[0] || grid->dims[grid->ndim - 1] != sd)
    return gpux__kerr(k, GPUX_E_SHAPE, "grid must be [N, out spatial..., %d]", sd);
  const char *ms = gpux__attr_string(k, "mode", k->opset < 20 ? "bilinear" : "linear");
  int mode;
  if (!strcmp(ms, "bilinear") || !strcmp(ms, "linear")) mode = GS_LINEAR;
  else if (!strcmp(ms, "nearest")) mode = GS_NEAREST;
  else if (!strcmp(ms, "bicubic") || !strcmp(ms, "cubic")) mode = GS_CUBIC;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "mode '%s'", ms);
  const char *ps = gpux__attr_string(k, "padding_mode", "zeros");
  int pad;
  if (!strcmp(ps, "zeros")) pad = PAD_ZEROS;
  else if (!strcmp(ps, "border")) pad = PAD_BORDER;
  else if (!strcmp(ps, "reflection")) pad = PAD_REFLECTION;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "padding_mode '%s'", ps);
  int align = (int)gpux__attr_int(k, "align_corners", 0);
  if (mode == GS_CUBIC && sd != 2) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "cubic mode needs 2 spatial dims");
  int64_t N = x->dims[0], C = x->dims[1];
  int64_t dims[GPUX_MAX_DIMS];
  dims[0] = N;
  dims[1] = C;
  for (int d = 0; d < sd; d++) dims[2 + d] = grid->dims[1 + d];
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (!gpux__dtype_is_float(x->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s", gpux_dtype_name(x->dtype));
  gs_job j;
  memset(&j, 0, sizeof j);
  j.sd = sd, j.mode = mode, j.pad = pad, j.align = align, j.N = N, j.C = C;
  j.in_count = j.out_count = 1;
  for (int d = 0; d < sd; d++) {
    j.in_len[d] = x->dims[2 + d];  /* d = 0 is the outermost (D or H); grid coords are reversed */
    j.in_count *= j.in_len[d];
    j.out_count *= grid->dims[1 + d];
    j.lo[d] = align ? 0 : -0.5;
    j.hi[d] = align ? (double)j.in_len[d] - 1 : (double)j.in_len[d] - 0.5;
  }
  if (j.in_count == 0 && gpux_tensor_count(y) > 0)
    return gpux__kerr(k, GPUX_E_SHAPE, "cannot sample from an empty input");
  double *xv = NULL, *gv = load_all(k, grid);
  if (!gv) return k->status;
  if (x->dtype == GPUX_DT_FLOAT) {
    j.xf = x->data;
    j.yf = y->data;
  } else if (!(xv = load_all(k, x))) {
    free(gv);
    return k->status;
  }
  j.xv = xv, j.gv = gv, j.y = y;
  gpux__parallel_for(N * j.out_count, GPUX__MAX(1, 4096 / (C + 1)), gs_positions, &j);
  free(xv);
  free(gv);
  return 0;
}

/* ---- AffineGrid ---- */

static double grid_base(int64_t i, int64_t len, int align) {
  if (align) return len > 1 ? -1 + 2.0 * (double)i / (double)(len - 1) : -1;
  return -1 + (2.0 * (double)i + 1) / (double)len;
}

static int op_affine_grid(gpux__kctx *k) {
  const gpux_tensor *theta = IN(0), *size = IN(1);
  if (!theta || !size) return gpux__kerr(k, GPUX_E_INVALID, "theta and size are required");
  int rc = gpux__need_data(k, 1);
  if (rc) return rc;
  int64_t sz[5];
  int n = gpux__read_ints(k, size, sz, 5);
  if (n < 0) return n;
  if (n != 4 && n != 5) return gpux__kerr(k, GPUX_E_SHAPE, "size must have 4 or 5 values");
  int sd = n - 2;
  if (theta->ndim != 3 || theta->dims[0] != sz[0] || theta->dims[1] != sd || theta->dims[2] != sd + 1)
    return gpux__kerr(k, GPUX_E_SHAPE, "theta must be [N, %d, %d]", sd, sd + 1);
  int align = (int)gpux__attr_int(k, "align_corners", 0);
  int64_t dims[5];
  dims[0] = sz[0];
  for (int d = 0; d < sd; d++) {
    if (sz[2 + d] < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative size");
    dims[1 + d] = sz[2 + d];
  }
  dims[1 + sd] = sd;
  gpux_tensor *y = gpux__out(k, 0, theta->dtype, sd + 2, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (!gpux__dtype_is_float(theta->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s", gpux_dtype_name(theta->dtype));
  double *tv = load_all(k, theta);
  if (!tv) return k->status;
  int64_t D = sd == 3 ? sz[2] : 1, H = sz[n - 2], W = sz[n - 1];
  int64_t oi = 0;
  for (int64_t b = 0; b < sz[0]; b++) {
    const double *t = tv + b * sd * (sd + 1);
    for (int64_t zd = 0; zd < D; zd++)
      for (int64_t yh = 0; yh < H; yh++)
        for (int64_t xw = 0; xw < W; xw++) {
          double base[4] = {grid_base(xw, W, align), grid_base(yh, H, align), 0, 1};
          if (sd == 3) base[2] = grid_base(zd, D, align);
          else base[2] = 1;
          for (int r = 0; r < sd; r++) {
            double v = 0;
            for (int c = 0; c <= sd; c++) v += t[r * (sd + 1) + c] * base[c];
            gpux__store_f64(y->dtype, y->data, oi++, v);
          }
        }
  }
  free(tv);
  return 0;
}

const gpux__op_def gpux__ops_misc[] = {
  {"", "Resize", gpux__op_resize, 10, 0},
  {"", "Upsample", gpux__op_upsample, 7, 0},
  {"", "NonMaxSuppression", op_nms, 10, 0},
  {"", "RoiAlign", op_roi_align, 10, 0},
  {"", "GridSample", op_grid_sample, 16, 0},
  {"", "AffineGrid", op_affine_grid, 20, 0},
  {"", "DFT", gpux__op_dft, 17, 0},
  {"", "STFT", gpux__op_stft, 17, 0},
  {"", "StringNormalizer", gpux__op_string_normalizer, 10, 0},
  {"", "StringConcat", gpux__op_string_concat, 20, 0},
  {"", "StringSplit", gpux__op_string_split, 20, 0},
  {"", "RegexFullMatch", gpux__op_regex_full_match, 20, 0},
  {0},
};
