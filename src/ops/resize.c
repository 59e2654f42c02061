/* resize.c — Resize (opsets 10-19) and Upsample (7-9): nearest, linear and cubic interpolation
 * with every coordinate transformation mode, antialiasing, axes and aspect-ratio policies. Each
 * resized axis gets a table of taps (input indices and weights per output index); float32 data
 * takes a nearest-neighbour gather or a 2-D tap kernel over the last two axes, anything else goes
 * through separable passes in double. Registered in misc.c's table. */
#include "ops/resize.h"
#include <math.h>

void gpux__resize_taps_free(gpux__resize_taps *a) {
  free(a->idx);
  free(a->w);
  free(a->extrap);
  memset(a, 0, sizeof *a);
}

static double cubic_kernel(double x, double A) {
  x = fabs(x);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

/* Number of taps and their offset from floor-ish base for one axis (the ONNX reference's
 * coefficient footprint). */
static int tap_count(const gpux__resize_params *p, double scale, int *first) {
  double s = scale < 1 ? scale : 1;
  if (p->antialias && p->mode != GPUX__RESIZE_NEAREST) {
    double start = floor((p->mode == GPUX__RESIZE_LINEAR ? -1 : -2) / s) + 1;
    if (start < -32768) return -1;   /* a footprint that large is not a sensible resize */
    *first = (int)start;
    return 2 - 2 * (int)start;
  }
  if (p->mode == GPUX__RESIZE_CUBIC) {
    *first = -1;
    return 4;
  }
  *first = 0;
  return 2;
}

/* Source coordinate of output index x along one axis; returns 1 when it lies outside the crop
 * (tf_crop_and_resize). */
static int source_coord(const gpux__resize_params *p, double x, int64_t in, int64_t out_int, double scale,
                        double roi0, double roi1, double *xo) {
  double out_w = scale * (double)in;
  switch (p->ctm) {
  case GPUX__RESIZE_CT_ALIGN_CORNERS:
    *xo = out_w == 1 ? 0 : x * (double)(in - 1) / (out_w - 1);
    return 0;
  case GPUX__RESIZE_CT_ASYMMETRIC:
    *xo = x / scale;
    return 0;
  case GPUX__RESIZE_CT_TF_HALF_PIXEL_FOR_NN:
    *xo = (x + 0.5) / scale;
    return 0;
  case GPUX__RESIZE_CT_TF_CROP_AND_RESIZE:
    if (out_w == 1)
      *xo = (roi1 - roi0) * (double)(in - 1) / 2;
    else
      *xo = x * (roi1 - roi0) * (double)(in - 1) / (out_w - 1);
    *xo += roi0 * (double)(in - 1);
    return *xo < 0 || *xo > (double)(in - 1);
  case GPUX__RESIZE_CT_PYTORCH_HALF_PIXEL:
    *xo = out_w == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    return 0;
  case GPUX__RESIZE_CT_HALF_PIXEL_SYMMETRIC: {
    double adjustment = (double)out_int / out_w;
    double center = (double)in / 2;
    *xo = center * (1 - adjustment) + (x + 0.5) / scale - 0.5;
    return 0;
  }
  default:
    *xo = (x + 0.5) / scale - 0.5;
    return 0;
  }
}

int gpux__resize_taps_build(const gpux__resize_params *p, int64_t in, int64_t out, double scale, double roi0,
                      double roi1, gpux__resize_taps *a) {
  memset(a, 0, sizeof *a);
  int first;
  int n = tap_count(p, scale, &first);
  if (n < 0) return GPUX_E_UNSUPPORTED;
  a->in = in;
  a->out = out;
  a->n = n;
  a->idx = gpux__malloc((size_t)(out ? out : 1) * (size_t)n * sizeof *a->idx);
  a->w = gpux__malloc((size_t)(out ? out : 1) * (size_t)n * sizeof *a->w);
  a->extrap = gpux__calloc((size_t)(out ? out : 1), 1);
  if (!a->idx || !a->w || !a->extrap) {
    gpux__resize_taps_free(a);
    return GPUX_E_NOMEM;
  }
  double s_aa = scale < 1 ? scale : 1;
  a->identity = in == out;
  for (int64_t o = 0; o < out; o++) {
    int64_t *idx = a->idx + o * n;
    double *w = a->w + o * n;
    double xo;
    if (source_coord(p, (double)o, in, out, scale, roi0, roi1, &xo) || !(fabs(xo) < 1e15)) {
      a->extrap[o] = 1;
      a->identity = 0;
      for (int t = 0; t < n; t++) idx[t] = 0, w[t] = 0;
      continue;
    }
    /* base index b and ratio in (0, 1]: the reference prefers the pixel left of xo */
    double fl = floor(xo);
    int64_t b;
    double ratio;
    if (xo == fl) {
      b = (int64_t)fl - 1;
      ratio = 1;
    } else {
      b = (int64_t)fl;
      ratio = xo - fl;
    }
    double sum = 0;
    for (int t = 0; t < n; t++) {
      int64_t j = first + t;   /* offset from b */
      double c;
      if (p->mode == GPUX__RESIZE_NEAREST) {
        int right;
        if (ratio == 1) right = 1;
        else if (p->nearest_mode == GPUX__RESIZE_NM_ROUND_PREFER_FLOOR) right = ratio > 0.5;
        else if (p->nearest_mode == GPUX__RESIZE_NM_ROUND_PREFER_CEIL) right = ratio >= 0.5;
        else if (p->nearest_mode == GPUX__RESIZE_NM_FLOOR) right = 0;
        else right = 1;
        c = (t == 1) == right;
      } else if (p->mode == GPUX__RESIZE_LINEAR) {
        if (p->antialias) {
          double v = 1 - fabs(((double)j - ratio) * s_aa);
          c = v < 0 ? 0 : v > 1 ? 1 : v;
        } else {
          c = t == 0 ? 1 - ratio : ratio;
        }
      } else {
        c = cubic_kernel(((double)j - ratio) * (p->antialias ? s_aa : 1), p->cubic_a);
      }
      int64_t i = b + j;
      if (p->exclude_outside && p->mode != GPUX__RESIZE_NEAREST && (i < 0 || i >= in)) c = 0;
      idx[t] = i < 0 ? 0 : i >= in ? in - 1 : i;
      w[t] = c;
      sum += c;
    }
    if ((p->antialias || p->exclude_outside) && p->mode != GPUX__RESIZE_NEAREST && sum != 0)
      for (int t = 0; t < n; t++) w[t] /= sum;
    if (a->identity) {
      for (int t = 0; t < n; t++)
        if ((w[t] != 0 && idx[t] != o) || (idx[t] == o && w[t] != 0 && w[t] != 1)) a->identity = 0;
    }
  }
  return 0;
}

/* ---- nearest: a pure gather of elements of any size ---- */

typedef struct {
  int rank;
  int64_t out_dims[GPUX_MAX_DIMS];
  int64_t in_strides[GPUX_MAX_DIMS];
  const int64_t *pick[GPUX_MAX_DIMS];  /* per axis: input index per output index, -1 = extrapolate */
  const char *src;
  char *dst;
  size_t esize;
  int dtype;
  double extrap;
  int64_t up;   /* > 0: the last axis repeats each input element `up` times (an integer upscale) */
} nearest_job;

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/avx512.h"
#include <immintrin.h>
#define UP2_512 1
/* d[2x] = d[2x + 1] = s[x] for x < n, 16 inputs a step. */
__attribute__((target("avx512f"))) static void repeat2_512(uint32_t *d, const uint32_t *s, int64_t n) {
  const __m512i lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  int64_t x = 0;
  for (; x + 16 <= n; x += 16) {
    __m512i v = _mm512_loadu_si512(s + x);
    _mm512_storeu_si512(d + 2 * x, _mm512_permutexvar_epi32(lo, v));
    _mm512_storeu_si512(d + 2 * x + 16, _mm512_permutexvar_epi32(hi, v));
  }
  for (; x < n; x++) d[2 * x] = d[2 * x + 1] = s[x];
}

#else
#define UP2_512 0
#endif

/* 4-byte elements of one output row of an integer upscale: each of the ow / up inputs up times. */
static void repeat4(uint32_t *d, const uint32_t *s, int64_t ow, int64_t up) {
#if UP2_512
  if (up == 2 && gpux__have_avx512f()) {
    repeat2_512(d, s, ow / 2);
    return;
  }
#endif
  for (int64_t x = 0; x < ow / up; x++)
    for (int64_t r = 0; r < up; r++) d[x * up + r] = s[x];
}

static void nearest_rows(void *ctx, int64_t begin, int64_t end) {
  const nearest_job *j = ctx;
  int last = j->rank - 1;
  int64_t ow = j->out_dims[last];
  const int64_t *px = j->pick[last];
  int64_t prev_off = -1;   /* source offset of the previous row of this range, -1 = none */
  for (int64_t r = begin; r < end; r++) {
    int64_t rem = r, off = 0;
    int outside = 0;
    for (int d = last - 1; d >= 0; d--) {
      int64_t c = rem % j->out_dims[d];
      rem /= j->out_dims[d];
      int64_t s = j->pick[d][c];
      if (s < 0) outside = 1;
      else off += s * j->in_strides[d];
    }
    char *dst = j->dst + (size_t)(r * ow) * j->esize;
    if (outside) {
      for (int64_t x = 0; x < ow; x++) gpux__store_f64(j->dtype, j->dst, r * ow + x, j->extrap);
      prev_off = -1;
      continue;
    }
    if (off == prev_off) {   /* same source row as the row above (upsampling): copy it */
      memcpy(dst, dst - (size_t)ow * j->esize, (size_t)ow * j->esize);
      continue;
    }
    prev_off = off;
    const char *src = j->src + (size_t)off * j->esize;
    int64_t sx = j->in_strides[last];
    switch (j->esize) {
    case 4: {
      const uint32_t *s4 = (const uint32_t *)src;
      uint32_t *d4 = (uint32_t *)dst;
      if (j->up) {
        repeat4(d4, s4, ow, j->up);
        break;
      }
      for (int64_t x = 0; x < ow; x++) {
        if (px[x] < 0) gpux__store_f64(j->dtype, j->dst, r * ow + x, j->extrap);
        else d4[x] = s4[px[x] * sx];
      }
      break;
    }
    case 1:
      for (int64_t x = 0; x < ow; x++) {
        if (px[x] < 0) gpux__store_f64(j->dtype, j->dst, r * ow + x, j->extrap);
        else dst[x] = src[px[x] * sx];
      }
      break;
    default:
      for (int64_t x = 0; x < ow; x++) {
        if (px[x] < 0) gpux__store_f64(j->dtype, j->dst, r * ow + x, j->extrap);
        else memcpy(dst + (size_t)x * j->esize, src + (size_t)(px[x] * sx) * j->esize, j->esize);
      }
    }
  }
}

static int run_nearest(gpux__kctx *k, const gpux_tensor *x, gpux_tensor *y, const gpux__resize_taps *taps,
                       double extrap) {
  nearest_job j;
  memset(&j, 0, sizeof j);
  int64_t *picks[GPUX_MAX_DIMS] = {0};
  int rc = 0;
  j.rank = x->ndim;
  gpux__strides(x->ndim, x->dims, j.in_strides);
  for (int d = 0; d < x->ndim; d++) {
    j.out_dims[d] = y->dims[d];
    picks[d] = gpux__malloc((size_t)(y->dims[d] ? y->dims[d] : 1) * sizeof(int64_t));
    if (!picks[d]) { rc = GPUX_E_NOMEM; goto done; }
    const gpux__resize_taps *a = &taps[d];
    for (int64_t o = 0; o < a->out; o++) {
      if (a->extrap[o]) { picks[d][o] = -1; continue; }
      /* the tap whose weight is 1 */
      int best = 0;
      for (int t = 1; t < a->n; t++)
        if (a->w[o * a->n + t] > a->w[o * a->n + best]) best = t;
      picks[d][o] = a->idx[o * a->n + best];
    }
    j.pick[d] = picks[d];
  }
  /* an integer upscale of the last axis (output index o reads input o / up): rows by repeats */
  int last = x->ndim - 1;
  if (x->ndim > 0 && x->dims[last] > 0 && y->dims[last] % x->dims[last] == 0) {
    int64_t up = y->dims[last] / x->dims[last], o = 0;
    while (o < y->dims[last] && picks[last][o] == o / up) o++;
    if (o == y->dims[last]) j.up = up;
  }
  j.src = x->data;
  j.dst = y->data;
  j.esize = gpux_dtype_size(x->dtype);
  j.dtype = x->dtype;
  j.extrap = extrap;
  int64_t rows = gpux_tensor_count(y) / (y->dims[x->ndim - 1] ? y->dims[x->ndim - 1] : 1);
  if (gpux_tensor_count(y) > 0)
    gpux__parallel_for(rows, GPUX__MAX(1, 16384 / (y->dims[x->ndim - 1] + 1)), nearest_rows, &j);
done:
  for (int d = 0; d < x->ndim; d++) free(picks[d]);
  if (rc) return gpux__kerr(k, rc, "out of memory building nearest tables");
  return 0;
}

/* ---- float32 fast path: taps over the last two axes (rows H, columns W) ----
 * Separable: each source row a chunk needs is resampled horizontally once (kept in a small
 * FIFO cache of rows), then output rows are weighted sums of those resampled rows. */

#define TAP2D_ROWS 32   /* output rows per work item */

typedef struct {
  const float *src;   /* (planes, ih, iw) */
  float *dst;         /* (planes, oh, ow) */
  int64_t ih, iw, oh, ow;
  int ny, nx;
  const int64_t *iy, *ix;   /* [oh * ny], [ow * nx] */
  const float *wy, *wx;     /* [oh * ny], [ow * nx] */
  const unsigned char *ey, *ex;
  float extrap;
  int64_t chunks;           /* work items per plane */
  int nslots;               /* cached resampled rows per work item */
  int any_ex;               /* some column is extrapolated */
} tap2d_job;

/* d = w * h and d += w * h over n floats, four lanes at a time (GCC/Clang vector extensions;
 * -O2 does not vectorize these loops by itself). */
typedef float v4sf __attribute__((vector_size(16)));

static void row_scale(float *d, const float *h, float w, int64_t n) {
  int64_t i = 0;
  v4sf wv = {w, w, w, w};
  for (; i + 4 <= n; i += 4) {
    v4sf hv;
    memcpy(&hv, h + i, sizeof hv);
    hv *= wv;
    memcpy(d + i, &hv, sizeof hv);
  }
  for (; i < n; i++) d[i] = w * h[i];
}

static void row_axpy(float *d, const float *h, float w, int64_t n) {
  int64_t i = 0;
  v4sf wv = {w, w, w, w};
  for (; i + 4 <= n; i += 4) {
    v4sf hv, dv;
    memcpy(&hv, h + i, sizeof hv);
    memcpy(&dv, d + i, sizeof dv);
    dv += wv * hv;
    memcpy(d + i, &dv, sizeof dv);
  }
  for (; i < n; i++) d[i] += w * h[i];
}

/* Resamples one source row along W into out[ow]. */
static void tap2d_hrow(const tap2d_job *j, const float *row, float *out) {
  const int64_t *ix = j->ix;
  const float *wx = j->wx;
  if (j->nx == 2) {
    for (int64_t ox = 0; ox < j->ow; ox++) out[ox] = row[ix[2 * ox]] * wx[2 * ox] + row[ix[2 * ox + 1]] * wx[2 * ox + 1];
    return;
  }
  int nx = j->nx;
  for (int64_t ox = 0; ox < j->ow; ox++) {
    float s = 0;
    for (int t = 0; t < nx; t++) s += row[ix[ox * nx + t]] * wx[ox * nx + t];
    out[ox] = s;
  }
}

static void tap2d_items(void *ctx, int64_t begin, int64_t end) {
  const tap2d_job *j = ctx;
  float *cache = gpux__malloc((size_t)j->nslots * (size_t)(j->ow ? j->ow : 1) * sizeof(float));
  int64_t tags[64];
  if (!cache) return;   /* out of memory: the output keeps its zeros */
  for (int64_t item = begin; item < end; item++) {
    int64_t plane = item / j->chunks, chunk = item % j->chunks;
    int64_t oy0 = chunk * TAP2D_ROWS, oy1 = GPUX__MIN(j->oh, oy0 + TAP2D_ROWS);
    const float *src = j->src + plane * j->ih * j->iw;
    int next = 0;
    for (int s = 0; s < j->nslots; s++) tags[s] = -1;
    for (int64_t oy = oy0; oy < oy1; oy++) {
      float *dst = j->dst + (plane * j->oh + oy) * j->ow;
      if (j->ey[oy]) {
        for (int64_t ox = 0; ox < j->ow; ox++) dst[ox] = j->extrap;
        continue;
      }
      const int64_t *iy = j->iy + oy * j->ny;
      const float *wy = j->wy + oy * j->ny;
      int first = 1;
      for (int t = 0; t < j->ny; t++) {
        if (wy[t] == 0) continue;
        int s = 0;
        while (s < j->nslots && tags[s] != iy[t]) s++;
        if (s == j->nslots) {   /* miss: resample that source row into the oldest slot */
          s = next;
          next = (next + 1) % j->nslots;
          tags[s] = iy[t];
          tap2d_hrow(j, src + iy[t] * j->iw, cache + s * j->ow);
        }
        const float *h = cache + s * j->ow;
        float w = wy[t];
        if (first) row_scale(dst, h, w, j->ow);
        else row_axpy(dst, h, w, j->ow);
        first = 0;
      }
      if (j->any_ex)
        for (int64_t ox = 0; ox < j->ow; ox++)
          if (j->ex[ox]) dst[ox] = j->extrap;
    }
  }
  free(cache);
}

static int run_tap2d(gpux__kctx *k, const gpux_tensor *x, gpux_tensor *y, const gpux__resize_taps *ty,
                     const gpux__resize_taps *tx, double extrap) {
  float *wy = gpux__malloc((size_t)(ty->out * ty->n + 1) * sizeof(float));
  float *wx = gpux__malloc((size_t)(tx->out * tx->n + 1) * sizeof(float));
  if (!wy || !wx) {
    free(wy);
    free(wx);
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
  for (int64_t i = 0; i < ty->out * ty->n; i++) wy[i] = (float)ty->w[i];
  for (int64_t i = 0; i < tx->out * tx->n; i++) wx[i] = (float)tx->w[i];
  tap2d_job j = {
    .src = x->data, .dst = y->data, .ih = ty->in, .iw = tx->in, .oh = ty->out, .ow = tx->out,
    .ny = ty->n, .nx = tx->n, .iy = ty->idx, .ix = tx->idx, .wy = wy, .wx = wx,
    .ey = ty->extrap, .ex = tx->extrap, .extrap = (float)extrap,
    .chunks = (ty->out + TAP2D_ROWS - 1) / TAP2D_ROWS,
    .nslots = GPUX__MIN(64, 2 * ty->n),
  };
  for (int64_t ox = 0; ox < tx->out; ox++) j.any_ex |= tx->extrap[ox];
  int64_t planes = (ty->in * tx->in) != 0 ? gpux_tensor_count(x) / (ty->in * tx->in) : 0;
  gpux__parallel_for(planes * j.chunks, 1, tap2d_items, &j);
  free(wy);
  free(wx);
  return 0;
}

/* ---- generic path: one separable pass per resized axis, in double ---- */

typedef struct {
  const double *src;  /* (outer, in, inner) */
  double *dst;        /* (outer, out, inner) */
  int64_t inner;
  const gpux__resize_taps *a;
  double extrap;
} pass_job;

static void pass_rows(void *ctx, int64_t begin, int64_t end) {
  const pass_job *j = ctx;
  const gpux__resize_taps *a = j->a;
  for (int64_t r = begin; r < end; r++) {
    int64_t o = r / a->out, oi = r % a->out;
    double *dst = j->dst + r * j->inner;
    if (a->extrap[oi]) {
      for (int64_t i = 0; i < j->inner; i++) dst[i] = j->extrap;
      continue;
    }
    for (int t = 0; t < a->n; t++) {
      double w = a->w[oi * a->n + t];
      if (w == 0) continue;
      const double *src = j->src + (o * a->in + a->idx[oi * a->n + t]) * j->inner;
      for (int64_t i = 0; i < j->inner; i++) dst[i] += w * src[i];
    }
  }
}

static int run_generic(gpux__kctx *k, const gpux_tensor *x, gpux_tensor *y, const gpux__resize_taps *taps,
                       double extrap) {
  int rank = x->ndim;
  int64_t n = gpux_tensor_count(x);
  int64_t dims[GPUX_MAX_DIMS];
  for (int d = 0; d < rank; d++) dims[d] = x->dims[d];
  double *cur = gpux__malloc((size_t)(n ? n : 1) * sizeof(double));
  if (!cur) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) cur[i] = gpux__load_f64(x->dtype, x->data, i);
  for (int d = 0; d < rank; d++) {
    if (taps[d].identity) continue;
    int64_t outer = 1, inner = 1;
    for (int e = 0; e < d; e++) outer *= dims[e];
    for (int e = d + 1; e < rank; e++) inner *= dims[e];
    int64_t m = outer * taps[d].out * inner;
    double *next = gpux__calloc((size_t)(m ? m : 1), sizeof(double));
    if (!next) {
      free(cur);
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
    pass_job j = {cur, next, inner, &taps[d], extrap};
    gpux__parallel_for(outer * taps[d].out, GPUX__MAX(1, 16384 / (inner * taps[d].n + 1)), pass_rows, &j);
    free(cur);
    cur = next;
    dims[d] = taps[d].out;
  }
  int64_t m = gpux_tensor_count(y);
  if (y->dtype == GPUX_DT_FLOAT) {
    float *yf = y->data;
    for (int64_t i = 0; i < m; i++) yf[i] = (float)cur[i];
  } else {
    for (int64_t i = 0; i < m; i++) gpux__store_f64(y->dtype, y->data, i, cur[i]);
  }
  free(cur);
  return 0;
}

/* ---- the op ---- */

static int parse_enum(gpux__kctx *k, const char *attr, const char *dflt, const char *const *names,
                      int count, int *out) {
  const char *s = gpux__attr_string(k, attr, dflt);
  for (int i = 0; i < count; i++)
    if (!strcmp(s, names[i])) {
      *out = i;
      return 0;
    }
  return gpux__kerr(k, GPUX_E_UNSUPPORTED, "%s '%s' is not supported", attr, s);
}

/* Shared by Resize and Upsample once the per-axis scales (and output sizes) are known. */
static int resize_run(gpux__kctx *k, const gpux__resize_params *p, const double *scales,
                      const int64_t *out_dims, const double *roi) {
  const gpux_tensor *x = IN(0);
  int rank = x->ndim;
  gpux_tensor *y = gpux__out(k, 0, x->dtype, rank, out_dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (x->dtype == GPUX_DT_STRING || !gpux_dtype_size(x->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "Resize of %s", gpux_dtype_name(x->dtype));
  if (gpux_tensor_count(y) == 0) return 0;
  if (gpux_tensor_count(x) == 0) return gpux__kerr(k, GPUX_E_SHAPE, "cannot resize an empty input to a non-empty output");
  gpux__resize_taps taps[GPUX_MAX_DIMS];
  memset(taps, 0, sizeof taps);
  int rc = 0;
  for (int d = 0; d < rank; d++) {
    rc = gpux__resize_taps_build(p, x->dims[d], out_dims[d], scales[d], roi ? roi[d] : 0, roi ? roi[rank + d] : 1, &taps[d]);
    if (rc) {
      rc = gpux__kerr(k, rc, rc == GPUX_E_NOMEM ? "out of memory building tables"
                                                : "antialias filter too wide for scale %g", scales[d]);
      goto done;
    }
  }
  if (p->mode == GPUX__RESIZE_NEAREST) {
    rc = run_nearest(k, x, y, taps, p->extrapolation);
    goto done;
  }
  int only_last2 = rank >= 2;
  for (int d = 0; d < rank - 2 && only_last2; d++)
    if (!taps[d].identity) only_last2 = 0;
  if (x->dtype == GPUX_DT_FLOAT && only_last2)
    rc = run_tap2d(k, x, y, &taps[rank - 2], &taps[rank - 1], p->extrapolation);
  else
    rc = run_generic(k, x, y, taps, p->extrapolation);
done:
  for (int d = 0; d < rank; d++) gpux__resize_taps_free(&taps[d]);
  return rc;
}

static int read_floats(gpux__kctx *k, const gpux_tensor *t, double *vals, int cap, const char *what) {
  if (!t) return 0;
  if (!t->data && gpux_tensor_count(t) > 0)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "%s is not known before running", what);
  int64_t n = gpux_tensor_count(t);
  if (n > cap) return gpux__kerr(k, GPUX_E_SHAPE, "%s has %lld values, at most %d expected", what, (long long)n, cap);
  if (!gpux__dtype_is_float(t->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s must be a float tensor, got %s", what, gpux_dtype_name(t->dtype));
  for (int64_t i = 0; i < n; i++) vals[i] = gpux__load_f64(t->dtype, t->data, i);
  return (int)n;
}

static int op_resize(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "missing input X");
  int rank = x->ndim;
  if (rank < 1) return gpux__kerr(k, GPUX_E_SHAPE, "Resize needs an input of rank >= 1");
  gpux__resize_params p;
  static const char *const modes[] = {"nearest", "linear", "cubic"};
  static const char *const ctms[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                     "align_corners", "asymmetric", "tf_crop_and_resize",
                                     "tf_half_pixel_for_nn"};
  static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  static const char *const policies[] = {"stretch", "not_larger", "not_smaller"};
  int rc = parse_enum(k, "mode", "nearest", modes, 3, &p.mode);
  if (rc) return rc;
  const gpux_tensor *roi_t = NULL, *scales_t, *sizes_t = NULL;
  int policy = 0;
  if (k->opset < 11) {
    /* Resize-10: (X, scales), asymmetric coordinates, nearest rounds down */
    p.ctm = GPUX__RESIZE_CT_ASYMMETRIC;
    p.nearest_mode = GPUX__RESIZE_NM_FLOOR;
    p.cubic_a = -0.75;
    p.antialias = p.exclude_outside = 0;
    p.extrapolation = 0;
    scales_t = IN(1);
    if (p.mode == GPUX__RESIZE_CUBIC) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "mode 'cubic' needs opset 11");
  } else {
    if ((rc = parse_enum(k, "coordinate_transformation_mode", "half_pixel", ctms, 7, &p.ctm))) return rc;
    if ((rc = parse_enum(k, "nearest_mode", "round_prefer_floor", nms, 4, &p.nearest_mode))) return rc;
    if ((rc = parse_enum(k, "keep_aspect_ratio_policy", "stretch", policies, 3, &policy))) return rc;
    p.cubic_a = gpux__attr_float(k, "cubic_coeff_a", -0.75f);
    p.exclude_outside = (int)gpux__attr_int(k, "exclude_outside", 0);
    p.extrapolation = gpux__attr_float(k, "extrapolation_value", 0.0f);
    p.antialias = (int)gpux__attr_int(k, "antialias", 0);
    roi_t = IN(1);
    scales_t = IN(2);
    sizes_t = IN(3);
  }
  /* axes (opset 18+) */
  int axes[GPUX_MAX_DIMS];
  int naxes = rank;
  const int64_t *axes_attr;
  int n_axes_attr = gpux__attr_ints(k, "axes", &axes_attr);
  if (n_axes_attr > 0) {
    if (n_axes_attr > rank) return gpux__kerr(k, GPUX_E_INVALID, "%d axes for rank %d", n_axes_attr, rank);
    naxes = n_axes_attr;
    for (int i = 0; i < naxes; i++) {
      if ((rc = gpux__axis(k, axes_attr[i], rank, &axes[i]))) return rc;
      for (int j = 0; j < i; j++)
        if (axes[j] == axes[i]) return gpux__kerr(k, GPUX_E_INVALID, "axis %d repeated", axes[i]);
    }
  } else {
    for (int i = 0; i < rank; i++) axes[i] = i;
  }
  double scales[GPUX_MAX_DIMS], roi[2 * GPUX_MAX_DIMS];
  int64_t out_dims[GPUX_MAX_DIMS];
  for (int d = 0; d < rank; d++) {
    scales[d] = 1;
    out_dims[d] = x->dims[d];
    roi[d] = 0;
    roi[rank + d] = 1;
  }
  if (p.ctm == GPUX__RESIZE_CT_TF_CROP_AND_RESIZE && roi_t && gpux_tensor_count(roi_t) > 0) {
    double rv[2 * GPUX_MAX_DIMS];
    int nr = read_floats(k, roi_t, rv, 2 * GPUX_MAX_DIMS, "roi");
    if (nr < 0) return nr;
    if (nr != 2 * naxes) return gpux__kerr(k, GPUX_E_SHAPE, "roi has %d values, expected %d", nr, 2 * naxes);
    for (int i = 0; i < naxes; i++) {
      roi[axes[i]] = rv[i];
      roi[rank + axes[i]] = rv[naxes + i];
    }
  }
  int64_t nscales = scales_t ? gpux_tensor_count(scales_t) : 0;
  int64_t nsizes = sizes_t ? gpux_tensor_count(sizes_t) : 0;
  if (nscales > 0) {
    if ((rc = gpux__need_data(k, k->opset < 11 ? 1 : 2))) return rc;
    double sv[GPUX_MAX_DIMS];
    int ns = read_floats(k, scales_t, sv, GPUX_MAX_DIMS, "scales");
    if (ns < 0) return ns;
    if (ns != naxes) return gpux__kerr(k, GPUX_E_SHAPE, "scales has %d values, expected %d", ns, naxes);
    for (int i = 0; i < naxes; i++) {
      int d = axes[i];
      if (!(sv[i] > 0) || !(sv[i] < 1e12)) return gpux__kerr(k, GPUX_E_INVALID, "scale %g on axis %d is not a positive finite value", sv[i], d);
      scales[d] = sv[i];
      double len = (double)x->dims[d] * sv[i];
      if (p.ctm == GPUX__RESIZE_CT_TF_CROP_AND_RESIZE) len *= roi[rank + d] - roi[d];
      if (!(len < 1e15)) return gpux__kerr(k, GPUX_E_INVALID, "output length on axis %d is not finite", d);
      out_dims[d] = len > 0 ? (int64_t)floor(len) : 0;
    }
  } else if (nsizes > 0) {
    if ((rc = gpux__need_data(k, 3))) return rc;
    int64_t sz[GPUX_MAX_DIMS];
    int ns = gpux__read_ints(k, sizes_t, sz, GPUX_MAX_DIMS);
    if (ns < 0) return ns;
    if (ns != naxes) return gpux__kerr(k, GPUX_E_SHAPE, "sizes has %d values, expected %d", ns, naxes);
    for (int i = 0; i < naxes; i++) {
      if (sz[i] < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative size %lld", (long long)sz[i]);
      if (x->dims[axes[i]] == 0 && sz[i] > 0) return gpux__kerr(k, GPUX_E_SHAPE, "cannot resize an empty axis");
    }
    if (policy == 0) {
      for (int i = 0; i < naxes; i++) {
        int d = axes[i];
        out_dims[d] = sz[i];
        scales[d] = x->dims[d] ? (double)sz[i] / (double)x->dims[d] : 1;
      }
    } else {
      double s = 0;
      for (int i = 0; i < naxes; i++) {
        int d = axes[i];
        double r = x->dims[d] ? (double)sz[i] / (double)x->dims[d] : 1;
        if (i == 0 || (policy == 1 ? r < s : r > s)) s = r;
      }
      for (int i = 0; i < naxes; i++) {
        int d = axes[i];
        scales[d] = s;
        out_dims[d] = (int64_t)(s * (double)x->dims[d] + 0.5);
      }
    }
  } else {
    return gpux__kerr(k, GPUX_E_INVALID, "Resize needs scales or sizes");
  }
  return resize_run(k, &p, scales, out_dims, roi);
}

static int op_upsample(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "missing input X");
  int rank = x->ndim;
  gpux__resize_params p = {0};
  const char *mode = gpux__attr_string(k, "mode", "nearest");
  if (!strcmp(mode, "nearest")) p.mode = GPUX__RESIZE_NEAREST;
  else if (!strcmp(mode, "linear") || !strcmp(mode, "bilinear")) p.mode = GPUX__RESIZE_LINEAR;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "mode '%s' is not supported", mode);
  p.ctm = GPUX__RESIZE_CT_ASYMMETRIC;
  p.nearest_mode = GPUX__RESIZE_NM_FLOOR;
  p.cubic_a = -0.75;
  double sv[GPUX_MAX_DIMS];
  int ns;
  if (k->opset < 9) {
    const float *fs;
    ns = gpux__attr_floats(k, "scales", &fs);
    if (ns > GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_SHAPE, "too many scales");
    for (int i = 0; i < ns; i++) sv[i] = fs[i];
  } else {
    int rc = gpux__need_data(k, 1);
    if (rc) return rc;
    ns = read_floats(k, IN(1), sv, GPUX_MAX_DIMS, "scales");
    if (ns < 0) return ns;
  }
  if (ns != rank) return gpux__kerr(k, GPUX_E_SHAPE, "scales has %d values, expected %d", ns, rank);
  int64_t out_dims[GPUX_MAX_DIMS];
  for (int d = 0; d < rank; d++) {
    if (!(sv[d] > 0) || !(sv[d] < 1e12)) return gpux__kerr(k, GPUX_E_INVALID, "scale %g is not a positive finite value", sv[d]);
    out_dims[d] = (int64_t)floor((double)x->dims[d] * sv[d]);
  }
  return resize_run(k, &p, sv, out_dims, NULL);
}

int gpux__op_resize(gpux__kctx *k);
int gpux__op_upsample(gpux__kctx *k);
int gpux__op_resize(gpux__kctx *k) { return op_resize(k); }
int gpux__op_upsample(gpux__kctx *k) { return op_upsample(k); }
