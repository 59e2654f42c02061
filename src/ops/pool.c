/* pool.c — operator family 'pool', on conv.c's sliding-window geometry (conv.h): MaxPool (with
 * its Indices output), AveragePool, LpPool, GlobalMaxPool, GlobalAveragePool, GlobalLpPool,
 * MaxUnpool, gpux.GlobalAveragePoolNHWC and gpux.MaxPoolNHWC (of a channels-last X). float32 and float64 are read directly; float16, bfloat16, int8 and uint8 go through
 * float32 (exact for max pooling). float32 max and average pooling of 1 or 2 spatial dims run
 * vectorized loops over output rows (and windows that tile the input one loop over all rows);
 * the rest, and float64, a plain loop per output. */
#include "core/scratch.h"
#include "ops/simd.h"
#include "ops/conv.h"
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { POOL_MAX, POOL_AVG, POOL_LP };

typedef struct {
  gpux__window w;
  int kind;                 /* POOL_* */
  int count_include_pad;    /* AveragePool: padding counts in the divisor */
  double p;                 /* LpPool's exponent */
  int storage_order;        /* MaxPool Indices: 0 row-major, 1 column-major */
  int64_t is, os;           /* input and output plane sizes */
  const float *xf;          /* input [planes, is]: xf or xd */
  const double *xd;
  float *yf;                /* output [planes, os]: yf or yd */
  double *yd;
  int64_t *ind;             /* MaxPool Indices [planes, os], or NULL */
  int64_t *wtaps;           /* per output column: first tap, end tap, padded tap count [out[2], 3] */
  float *wcount;            /* pool2d: per output column, the taps counted by AveragePool [out[2]] */
  int empty_cols;           /* pool2d: some output column's window is all padding */
} pool_job;

/* Kernel taps t in [0, k) whose coordinate start + t * d lies in [lo, hi): [*t0, *t1). */
static void tap_range(int64_t start, int64_t d, int64_t k, int64_t lo, int64_t hi, int64_t *t0, int64_t *t1) {
  int64_t a = start >= lo ? 0 : (lo - start + d - 1) / d;
  int64_t b = start >= hi ? 0 : (hi - start + d - 1) / d;
  *t0 = GPUX__MIN(a, k);
  *t1 = GPUX__MIN(b, k);
  if (*t1 < *t0) *t1 = *t0;
}

/* The taps of dim i for output index o: [*t0, *t1) inside the input, and how many fall inside
 * the padded extent (AveragePool's count_include_pad divisor). */
static void dim_taps(const gpux__window *w, int i, int64_t o, int64_t *t0, int64_t *t1, int64_t *padded) {
  int64_t st = o * w->s[i] - w->pb[i], a, b;
  tap_range(st, w->d[i], w->k[i], 0, w->in[i], t0, t1);
  tap_range(st, w->d[i], w->k[i], -w->pb[i], w->in[i] + w->pe[i], &a, &b);
  *padded = b - a;
}

static void pool_planes(void *ctx, int64_t begin, int64_t end) {
  const pool_job *j = ctx;
  const gpux__window *w = &j->w;
  for (int64_t plane = begin; plane < end; plane++) {
    const float *xf = j->xf ? j->xf + plane * j->is : NULL;
    const double *xd = j->xd ? j->xd + plane * j->is : NULL;
    int64_t o = plane * j->os;
    for (int64_t od = 0; od < w->out[0]; od++) {
      int64_t d0, d1, dpad;
      dim_taps(w, 0, od, &d0, &d1, &dpad);
      for (int64_t oh = 0; oh < w->out[1]; oh++) {
        int64_t h0, h1, hpad;
        dim_taps(w, 1, oh, &h0, &h1, &hpad);
        for (int64_t ow = 0; ow < w->out[2]; ow++, o++) {
          int64_t w0 = j->wtaps[3 * ow], w1 = j->wtaps[3 * ow + 1], wpad = j->wtaps[3 * ow + 2];
          int64_t sd = od * w->s[0] - w->pb[0], sh = oh * w->s[1] - w->pb[1], sw = ow * w->s[2] - w->pb[2];
          double acc = j->kind == POOL_MAX ? -INFINITY : 0.0;
          int64_t best = -1;
          /* the window: taps inside the input only (padding adds nothing) */
          for (int64_t kd = d0; kd < d1; kd++) {
            int64_t id = sd + kd * w->d[0];
            for (int64_t kh = h0; kh < h1; kh++) {
              int64_t ih = sh + kh * w->d[1], base = (id * w->in[1] + ih) * w->in[2];
              for (int64_t kw = w0; kw < w1; kw++) {
                int64_t iw = sw + kw * w->d[2];
                double v = xf ? xf[base + iw] : xd[base + iw];
                if (j->kind == POOL_MAX && !j->ind) {
                  acc = v > acc ? v : acc; /* NaN never wins; branch-free max */
                } else if (j->kind == POOL_MAX) {
                  if (!isnan(v) && (best < 0 || v > acc)) {
                    acc = v;
                    best = j->storage_order ? id + (ih + iw * w->in[1]) * w->in[0] : base + iw;
                  }
                } else if (j->kind == POOL_AVG) {
                  acc += v;
                } else if (j->p == 1.0) {
                  acc += fabs(v);
                } else if (j->p == 2.0) {
                  acc += v * v;
                } else {
                  acc += pow(fabs(v), j->p);
                }
              }
            }
          }
          if (j->kind == POOL_MAX) {
            if ((d1 - d0) * (h1 - h0) * (w1 - w0) == 0) acc = 0.0; /* window entirely in padding */
            if (j->ind) j->ind[o] = best < 0 ? -1 : plane * j->is + best;
          } else if (j->kind == POOL_AVG) {
            int64_t count = j->count_include_pad ? dpad * hpad * wpad : (d1 - d0) * (h1 - h0) * (w1 - w0);
            acc = count ? acc / (double)count : NAN;
          } else {
            acc = j->p == 2.0 ? sqrt(acc) : j->p == 1.0 ? acc : pow(acc, 1.0 / j->p);
          }
          if (j->yf) j->yf[o] = (float)acc;
          else j->yd[o] = acc;
        }
      }
    }
  }
}

/* ---- float32 2-D max and average pooling ---- */

/* y[i] = max(y[i], x[i * s]) and y[i] += x[i * s] for i < n: one kernel tap over a run of
 * output columns (NaN never wins the max, as in pool_planes). */
static inline __attribute__((always_inline)) void max_run(float *restrict y, const float *restrict x, int64_t n,
                                                          int64_t s) {
  if (s == 1) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > y[i] ? x[i] : y[i];
  } else if (s == 2) {
    for (int64_t i = 0; i < n; i++) y[i] = x[2 * i] > y[i] ? x[2 * i] : y[i];
  } else {
    for (int64_t i = 0; i < n; i++) y[i] = x[i * s] > y[i] ? x[i * s] : y[i];
  }
}

static inline __attribute__((always_inline)) void sum_run(float *restrict y, const float *restrict x, int64_t n,
                                                          int64_t s) {
  if (s == 1) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
  } else if (s == 2) {
    for (int64_t i = 0; i < n; i++) y[i] += x[2 * i];
  } else {
    for (int64_t i = 0; i < n; i++) y[i] += x[i * s];
  }
}

/* MaxPool without Indices and AveragePool on float32 planes with 1 or 2 spatial dims and no
 * dilation: each output row accumulates the input rows under it tap by tap, over the columns
 * whose tap lies inside the input, in the output row itself. */
GPUX_VECTORIZE static void pool2d_plane(const pool_job *j, const float *x, float *y) {
  const gpux__window *w = &j->w;
  int64_t iw_ = w->in[2], ow_ = w->out[2], kw_ = w->k[2], sw = w->s[2];
  int max = j->kind == POOL_MAX;
  for (int64_t oh = 0; oh < w->out[1]; oh++) {
    int64_t h0, h1, hpad;
    dim_taps(w, 1, oh, &h0, &h1, &hpad);
    float *yr = y + oh * ow_;
    for (int64_t i = 0; i < ow_; i++) yr[i] = max ? -INFINITY : 0.0f;
    for (int64_t kh = h0; kh < h1; kh++) {
      const float *xr = x + (oh * w->s[1] - w->pb[1] + kh) * iw_;
      for (int64_t kw = 0; kw < kw_; kw++) {
        /* the columns ow whose tap ow * sw - pb + kw is inside the input */
        int64_t off = kw - w->pb[2], lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
        int64_t hi = iw_ - 1 - off < 0 ? 0 : (iw_ - 1 - off) / sw + 1;
        hi = GPUX__MIN(hi, ow_);
        if (lo >= hi) continue;
        if (max) max_run(yr + lo, xr + lo * sw + off, hi - lo, sw);
        else sum_run(yr + lo, xr + lo * sw + off, hi - lo, sw);
      }
    }
    if (max && (h1 == h0 || j->empty_cols)) { /* windows entirely in padding give 0 */
      for (int64_t ow = 0; ow < ow_; ow++)
        if (h1 == h0 || j->wtaps[3 * ow + 1] == j->wtaps[3 * ow]) yr[ow] = 0.0f;
    } else if (!max) { /* count 0 gives NaN */
      const float rows = (float)(j->count_include_pad ? hpad : h1 - h0), *wc = j->wcount;
      for (int64_t ow = 0; ow < ow_; ow++) yr[ow] = yr[ow] / (rows * wc[ow]);
    }
  }
}

/* MaxPool windows of 1x2, 2x1 or 2x2 that tile the input (stride = kernel, no padding): output
 * row r of all planes (r = plane * out1 + oh) reads input rows kh * r ... of the same planes when
 * the rows fit exactly, so the rows of all planes run as one loop; each output folds its taps in
 * order as pool_planes does (NaN never wins). */
static inline __attribute__((always_inline)) float max2(float acc, float v) { return v > acc ? v : acc; }

GPUX_VECTORIZE static void maxpool_tiles(const float *restrict x, float *restrict y, int64_t rows, int64_t ow,
                                         int64_t iw, int64_t kh, int64_t kw) {
  for (int64_t r = 0; r < rows; r++) {
    const float *a = x + r * kh * iw, *b = a + iw;
    float *yr = y + r * ow;
    if (kh == 2 && kw == 2) {
      for (int64_t i = 0; i < ow; i++)
        yr[i] = max2(max2(max2(max2(-INFINITY, a[2 * i]), a[2 * i + 1]), b[2 * i]), b[2 * i + 1]);
    } else if (kw == 2) {
      for (int64_t i = 0; i < ow; i++) yr[i] = max2(max2(-INFINITY, a[2 * i]), a[2 * i + 1]);
    } else {
      for (int64_t i = 0; i < ow; i++) yr[i] = max2(max2(-INFINITY, a[i]), b[i]);
    }
  }
}

static void maxpool_tile_planes(void *ctx, int64_t begin, int64_t end) {
  const pool_job *j = ctx;
  const gpux__window *w = &j->w;
  int64_t oh = w->out[1], ow = w->out[2], kh = w->k[1], kw = w->k[2];
  const float *x = j->xf + begin * j->is;
  float *y = j->yf + begin * j->os;
  if (w->in[1] != oh * kh || w->in[2] != ow * kw) { /* rows or columns left over: plane by plane */
    for (int64_t plane = begin; plane < end; plane++)
      maxpool_tiles(j->xf + plane * j->is, j->yf + plane * j->os, oh, ow, w->in[2], kh, kw);
  } else if (kh == 1) { /* 1x2: all outputs of the planes as one row */
    maxpool_tiles(x, y, 1, (end - begin) * j->os, 0, 1, 2);
  } else {              /* the output rows of all the planes */
    maxpool_tiles(x, y, (end - begin) * oh, ow, w->in[2], kh, kw);
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/avx512.h"
#define MAXROWS 1
/* Padded row widths at most of max_rows16's row buffers (on the stack). */
#define MAXROWS_WIDTH 4096

/* Whether max_rows16 runs j: 2-D MaxPool of float32 without Indices, no dilation, a stride of 1
 * or 2 along W, rows that fit its buffers, on AVX-512. */
static int max_rows_takes(const pool_job *j) {
  const gpux__window *w = &j->w;
  int64_t span = GPUX__MAX((w->out[2] - 1) * w->s[2] + w->k[2], w->pb[2] + w->in[2]);
  return gpux__have_avx512f() && j->kind == POOL_MAX && !j->ind && w->nsp == 2 && w->d[1] == 1 && w->d[2] == 1 &&
         (w->s[2] == 1 || w->s[2] == 2) && span + 64 <= MAXROWS_WIDTH;
}

/* MaxPool of one plane a output row at a time, 16 outputs a vector: the window's input rows
 * folded into one padded row t (-inf in the padding), then, stride 2, t split into its even and
 * odd columns, each output the max of kw consecutive-column loads. The same values as
 * pool2d_plane: the max of the taps inside X, where NaN never wins (t starts at -inf and takes a
 * value only where it is greater), 0 where the window is all padding. The hot loop. */
__attribute__((target("avx512f"))) static void max_rows16(const pool_job *j, const float *x, float *y) {
  const gpux__window *w = &j->w;
  int64_t iw = w->in[2], ow = w->out[2], kw = w->k[2], sw = w->s[2], pl = w->pb[2];
  int64_t span = (GPUX__MAX((ow - 1) * sw + kw, pl + iw) + 63) / 32 * 32; /* t's floats, and slack */
  float t[MAXROWS_WIDTH] __attribute__((aligned(64))), ev[MAXROWS_WIDTH / 2] __attribute__((aligned(64)));
  float od[MAXROWS_WIDTH / 2] __attribute__((aligned(64)));
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < span; i += 16) _mm512_store_ps(t + i, ninf);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int64_t oh = 0; oh < w->out[1]; oh++) {
    int64_t h0, h1, hpad;
    dim_taps(w, 1, oh, &h0, &h1, &hpad);
    float *yr = y + oh * ow;
    if (h1 == h0) { /* the windows are all padding */
      memset(yr, 0, (size_t)ow * sizeof *yr);
      continue;
    }
    for (int64_t i = 0; i < iw; i += 16) { /* t[pl + i] = max over the window's rows */
      __mmask16 m = gpux__lanes16(iw - i);
      __m512 acc = ninf;
      for (int64_t kh = h0; kh < h1; kh++)
        acc = _mm512_max_ps(_mm512_maskz_loadu_ps(m, x + (oh * w->s[1] - w->pb[1] + kh) * iw + i), acc);
      _mm512_mask_storeu_ps(t + pl + i, m, acc);
    }
    const float *e = t, *o = t;
    if (sw == 2) {
      for (int64_t i = 0; i < span; i += 32) {
        __m512 a = _mm512_load_ps(t + i), b = _mm512_load_ps(t + i + 16);
        _mm512_store_ps(ev + i / 2, _mm512_permutex2var_ps(a, even, b));
        _mm512_store_ps(od + i / 2, _mm512_permutex2var_ps(a, odd, b));
      }
      e = ev, o = od;
    }
    for (int64_t i = 0; i < ow; i += 16) { /* tap k of output i: t[i * sw + k] */
      __m512 acc = ninf;
      for (int64_t k = 0; k < kw; k++)
        acc = _mm512_max_ps(_mm512_loadu_ps(sw == 2 ? (k & 1 ? o : e) + i + k / 2 : t + i + k), acc);
      _mm512_mask_storeu_ps(yr + i, gpux__lanes16(ow - i), acc);
    }
    if (j->empty_cols)
      for (int64_t i = 0; i < ow; i++)
        if (j->wtaps[3 * i + 1] == j->wtaps[3 * i]) yr[i] = 0.0f;
  }
}

_Atomic long long gpux__maxpool_rows_planes;

static void max_rows_planes(void *ctx, int64_t begin, int64_t end) {
  const pool_job *j = ctx;
  gpux__maxpool_rows_planes += end - begin;
  for (int64_t plane = begin; plane < end; plane++) max_rows16(j, j->xf + plane * j->is, j->yf + plane * j->os);
}
#else
#define MAXROWS 0
_Atomic long long gpux__maxpool_rows_planes;
#endif

static void pool2d_planes(void *ctx, int64_t begin, int64_t end) {
  const pool_job *j = ctx;
  for (int64_t plane = begin; plane < end; plane++)
    pool2d_plane(j, j->xf + plane * j->is, j->yf + plane * j->os); /* [in1, in2] -> [out1, out2] */
}

/* Runs the pooling of x into y (and indices into ind when not NULL), widening dtypes other than
 * float32/float64 to float32. */
static int pool_run(gpux__kctx *k, pool_job *j, const gpux_tensor *x, gpux_tensor *y) {
  j->is = j->os = 1;
  for (int i = 0; i < GPUX_WIN_DIMS; i++) j->is *= j->w.in[i], j->os *= j->w.out[i];
  int64_t planes = x->dims[0] * x->dims[1];
  int64_t work = j->os * j->w.k[0] * j->w.k[1] * j->w.k[2];
  int64_t grain = GPUX__MAX(1, 32768 / (work + 1));
  if (planes == 0 || j->os == 0) return 0;
  j->wtaps = gpux__scratch(GPUX__SCRATCH_POOL_TAPS, (size_t)j->w.out[2] * 3 * sizeof *j->wtaps);
  if (!j->wtaps) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  j->wcount = gpux__scratch(GPUX__SCRATCH_POOL_COUNT, (size_t)j->w.out[2] * sizeof *j->wcount);
  if (!j->wcount) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int64_t ow = 0; ow < j->w.out[2]; ow++) {
    int64_t *t = &j->wtaps[3 * ow];
    dim_taps(&j->w, 2, ow, &t[0], &t[1], &t[2]);
    j->wcount[ow] = (float)(j->count_include_pad ? t[2] : t[1] - t[0]);
    if (t[1] == t[0]) j->empty_cols = 1;
  }
  int rc = 0;
  int fast = x->dtype == GPUX_DT_FLOAT && !j->ind && (j->kind == POOL_MAX || j->kind == POOL_AVG) &&
             j->w.nsp <= 2 && j->w.d[1] == 1 && j->w.d[2] == 1;
  int tiles = fast && j->kind == POOL_MAX && j->w.k[1] * j->w.k[2] > 1 && j->w.k[1] <= 2 && j->w.k[2] <= 2;
  for (int s = 1; s < GPUX_WIN_DIMS; s++)
    if (j->w.s[s] != j->w.k[s] || j->w.pb[s] || j->w.pe[s] || j->w.out[s] * j->w.s[s] > j->w.in[s]) tiles = 0;
  if (x->dtype == GPUX_DT_FLOAT || x->dtype == GPUX_DT_DOUBLE) {
    if (x->dtype == GPUX_DT_FLOAT) j->xf = x->data, j->yf = y->data;
    else j->xd = x->data, j->yd = y->data;
    void (*fn)(void *, int64_t, int64_t) = tiles ? maxpool_tile_planes : fast ? pool2d_planes : pool_planes;
#if MAXROWS
    if (fast && !tiles && x->dtype == GPUX_DT_FLOAT && max_rows_takes(j)) fn = max_rows_planes;
#endif
    gpux__parallel_for(planes, grain, fn, j);
  } else {
    float *xf = gpux__widen_f32(x), *yf = gpux__malloc((size_t)(planes * j->os) * sizeof *yf);
    if (xf && yf) {
      j->xf = xf, j->yf = yf;
      gpux__parallel_for(planes, grain, pool_planes, j);
      gpux__narrow_f32(y->dtype, y->data, yf, planes * j->os);
    } else {
      rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
    free(xf); free(yf);
  }
  return rc;
}

static int pool_dtype_ok(int dt, int ints) {
  return dt == GPUX_DT_FLOAT || dt == GPUX_DT_DOUBLE || dt == GPUX_DT_FLOAT16 || dt == GPUX_DT_BFLOAT16 ||
         (ints && (dt == GPUX_DT_INT8 || dt == GPUX_DT_UINT8));
}

/* MaxPool, AveragePool and LpPool: window attributes, output shape, then the pooling. */
static int pool_op(gpux__kctx *k, int kind) {
  const gpux_tensor *x = IN(0);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "input X is required");
  if (!pool_dtype_ok(x->dtype, kind == POOL_MAX))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "pooling on %s", gpux_dtype_name(x->dtype));
  pool_job j;
  memset(&j, 0, sizeof j);
  j.kind = kind;
  if (gpux__window_read(k, x, NULL, &j.w)) return k->status;
  int64_t ceil_mode = gpux__attr_int(k, "ceil_mode", 0);
  if (gpux__window_forward(k, &j.w, ceil_mode != 0)) return k->status;
  j.count_include_pad = gpux__attr_int(k, "count_include_pad", 0) != 0;
  j.p = gpux__attr_float(k, "p", 2.0f);
  if (kind == POOL_LP && !(j.p > 0))
    return gpux__kerr(k, GPUX_E_INVALID, "LpPool p must be positive (got %g)", j.p);
  int64_t so = gpux__attr_int(k, "storage_order", 0);
  if (so != 0 && so != 1) return gpux__kerr(k, GPUX_E_INVALID, "storage_order %lld", (long long)so);
  j.storage_order = (int)so;
  int64_t dims[GPUX_MAX_DIMS];
  gpux__window_out_dims(&j.w, x->dims[0], x->dims[1], dims);
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, x->ndim, dims); /* pool_planes writes all */
  if (!y) return k->status;
  if (kind == POOL_MAX && OUTPUT_WANTED(1)) {
    gpux_tensor *ind = gpux__out_raw(k, 1, GPUX_DT_INT64, x->ndim, dims);
    if (!ind) return k->status;
    j.ind = ind->data;
  }
  if (k->shape_only) return 0;
  return pool_run(k, &j, x, y);
}

static int op_maxpool(gpux__kctx *k) { return pool_op(k, POOL_MAX); }
static int op_averagepool(gpux__kctx *k) { return pool_op(k, POOL_AVG); }
static int op_lppool(gpux__kctx *k) { return pool_op(k, POOL_LP); }

/* ---- global pooling: one value per (n, c) plane ---- */

typedef struct {
  int kind;
  double p;
  int64_t size;             /* plane size */
  const float *xf;
  const double *xd;
  float *yf;
  double *yd;
} global_job;

/* The sum of x[0, n): float32 partial sums of 8 lanes over blocks of 256, added up in double. */
GPUX_VECTORIZE static double sum_blocks(const float *restrict x, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; i += 256) {
    int64_t m = GPUX__MIN(256, n - i), m8 = m & ~(int64_t)7;
    float part[8] = {0};
    for (int64_t b = 0; b < m8; b += 8)
      for (int l = 0; l < 8; l++) part[l] += x[i + b + l];
    for (int l = 0; l < 8; l++) acc += part[l];
    for (int64_t b = m8; b < m; b++) acc += x[i + b];
  }
  return acc;
}

static void global_planes(void *ctx, int64_t begin, int64_t end) {
  const global_job *j = ctx;
  for (int64_t plane = begin; plane < end; plane++) {
    const float *xf = j->xf ? j->xf + plane * j->size : NULL;
    const double *xd = j->xd ? j->xd + plane * j->size : NULL;
    double acc = j->kind == POOL_MAX ? -INFINITY : 0.0;
    if (xf && j->kind == POOL_AVG) {
      acc = sum_blocks(xf, j->size); /* float32 sums in blocks keep vectorized speed and double accuracy */
    } else {
      for (int64_t i = 0; i < j->size; i++) {
        double v = xf ? xf[i] : xd[i];
        if (j->kind == POOL_MAX) acc = v > acc || isnan(v) ? v : acc;
        else if (j->kind == POOL_AVG) acc += v;
        else acc += j->p == 2.0 ? v * v : pow(fabs(v), j->p);
      }
    }
    if (j->kind == POOL_AVG) acc = j->size ? acc / (double)j->size : NAN;
    else if (j->kind == POOL_LP) acc = j->p == 2.0 ? sqrt(acc) : pow(acc, 1.0 / j->p);
    if (j->yf) j->yf[plane] = (float)acc;
    else j->yd[plane] = acc;
  }
}

static int global_pool(gpux__kctx *k, int kind) {
  const gpux_tensor *x = IN(0);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "input X is required");
  if (!pool_dtype_ok(x->dtype, 0))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "global pooling on %s", gpux_dtype_name(x->dtype));
  if (x->ndim < 2) return gpux__kerr(k, GPUX_E_SHAPE, "input must be N x C x spatial (rank %d)", x->ndim);
  global_job j = {.kind = kind, .p = gpux__attr_float(k, "p", 2.0f)};
  if (kind == POOL_LP && !(j.p > 0))
    return gpux__kerr(k, GPUX_E_INVALID, "GlobalLpPool p must be positive (got %g)", j.p);
  int64_t dims[GPUX_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) dims[i] = i < 2 ? x->dims[i] : 1;
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, x->ndim, dims); /* one value per plane, all written */
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t planes = x->dims[0] * x->dims[1];
  j.size = gpux__shape_count(x->ndim - 2, x->dims + 2);
  if (planes == 0) return 0;
  /* planes by the pool's cost model: a float32 element read is an elementwise op's (the sums of
   * a 49-float plane cost more than their loads: twice that), a fixed grain of 65536 elements
   * kept 960 planes of 7 x 7 on one thread while X sat in the other threads' caches */
  double units = (double)(j.size + 1) * 2 * gpux__elem_units();
  if (x->dtype == GPUX_DT_FLOAT || x->dtype == GPUX_DT_DOUBLE) {
    if (x->dtype == GPUX_DT_FLOAT) j.xf = x->data, j.yf = y->data;
    else j.xd = x->data, j.yd = y->data;
    gpux__parallel_for_elems(planes, units, 1, global_planes, &j);
    return 0;
  }
  int64_t grain = GPUX__MAX(1, 65536 / (j.size + 1));
  float *xf = gpux__widen_f32(x), *yf = gpux__malloc((size_t)planes * sizeof *yf);
  if (!xf || !yf) {
    free(xf); free(yf);
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
  j.xf = xf, j.yf = yf;
  gpux__parallel_for(planes, grain, global_planes, &j);
  gpux__narrow_f32(y->dtype, y->data, yf, planes);
  free(xf); free(yf);
  return 0;
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* acc[i] += the sum over hw rows (ldx floats apart) of x[i] for i < nc <= 64, in double. */
__attribute__((target("avx512f"))) static void sum_rows64(const float *x, int64_t ldx, int64_t hw, int64_t nc,
                                                          double *acc) {
  __m512d s[8];
  __mmask16 mk[4];
  for (int b = 0; b < 4; b++) {
    mk[b] = gpux__lanes16(nc - b * 16);
    s[2 * b] = s[2 * b + 1] = _mm512_setzero_pd();
  }
  for (int64_t q = 0; q < hw; q++, x += ldx)
    for (int b = 0; b < 4; b++) {
      __m512 v = _mm512_maskz_loadu_ps(mk[b], x + b * 16);
      s[2 * b] = _mm512_add_pd(s[2 * b], _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
      s[2 * b + 1] = _mm512_add_pd(s[2 * b + 1],
                                   _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
  for (int64_t i = 0; i < nc; i += 8) {
    __mmask8 m = (__mmask8)(nc - i >= 8 ? 0xff : (1u << (nc - i)) - 1);
    _mm512_mask_storeu_pd(acc + i, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, acc + i), s[i / 8]));
  }
}

/* y[i] = the mean over hw rows (ldx floats apart) of x[i] for i < nc <= 64 (lanes past nc are
 * left alone): the sums in double, then scaled. */
__attribute__((target("avx512f"))) static void mean_rows64(const float *x, int64_t ldx, int64_t hw, int64_t nc,
                                                           float *y) {
  double acc[64] = {0};
  sum_rows64(x, ldx, hw, nc, acc);
  double inv = 1.0 / (double)hw;
  for (int64_t i = 0; i < nc; i++) y[i] = (float)(acc[i] * inv);
}
#define MEAN_ROWS64 1
#else
#define MEAN_ROWS64 0
#endif

/* gpux.GlobalAveragePoolNHWC, which runtime/channels-last.c makes of a GlobalAveragePool that
 * reads a value kept channels last: X [N, H, W, C] float32, Y GlobalAveragePool's [N, C, 1, 1],
 * each channel's sum in double as there, 64 channels at a time down the positions. With input 1,
 * the sums of X's rows [N, H, C] that the depthwise convolution making X added up as it wrote
 * them (gpux.ConvNHWC's output 1), only those are added (in double): X is not read. The blocks of
 * 64 channels are tasks on the pool: X was just written by a convolution's threads and sits in
 * their caches, where one thread reading all of it waits on every line (MobileNetV3 at 16 threads:
 * 28 us a call on one thread). */
typedef struct {
  const float *x;
  float *y;
  int64_t c, hw, blocks;
} gap_nhwc_job;

static void gap_nhwc_blocks(void *ctx, int64_t begin, int64_t end) {
  const gap_nhwc_job *j = ctx;
  for (int64_t t = begin; t < end; t++) {
    int64_t b = t / j->blocks, c0 = t % j->blocks * 64, nc = GPUX__MIN(64, j->c - c0);
    const float *x = j->x + b * j->hw * j->c + c0;
    float *y = j->y + b * j->c + c0;
#if MEAN_ROWS64
    if (gpux__have_avx512f() && j->hw > 0) {
      mean_rows64(x, j->c, j->hw, nc, y);
      continue;
    }
#endif
    for (int64_t ch = 0; ch < nc; ch++) {
      double acc = 0.0;
      for (int64_t q = 0; q < j->hw; q++) acc += x[q * j->c + ch];
      y[ch] = j->hw ? (float)(acc / (double)j->hw) : NAN;
    }
  }
}

/* The same split by strips of X's rows, as the depthwise convolution before it splits its output
 * (each thread then reads mostly what it wrote): strip s's channel sums go to part[s] (double),
 * then the strips' sums are added in strip order, a pool job over blocks of 64 channels. */
typedef struct {
  const float *x;
  float *y;
  double *part;            /* [n, strips, c] */
  int64_t c, hw, w, h, strips, rows; /* rows: X's rows a strip */
} gap_rows_job;

static void gap_rows_strips(void *ctx, int64_t begin, int64_t end) {
  const gap_rows_job *j = ctx;
  for (int64_t t = begin; t < end; t++) {
    int64_t b = t / j->strips, r0 = t % j->strips * j->rows, nr = GPUX__MIN(j->rows, j->h - r0);
    const float *x = j->x + (b * j->hw + r0 * j->w) * j->c;
    double *acc = j->part + t * j->c;
    memset(acc, 0, (size_t)j->c * sizeof *acc);
    int64_t q = nr * j->w;
#if MEAN_ROWS64
    if (gpux__have_avx512f()) {
      for (int64_t c0 = 0; c0 < j->c; c0 += 64) sum_rows64(x + c0, j->c, q, GPUX__MIN(64, j->c - c0), acc + c0);
      continue;
    }
#endif
    for (int64_t p = 0; p < q; p++)
      for (int64_t ch = 0; ch < j->c; ch++) acc[ch] += x[p * j->c + ch];
  }
}

/* y[ch] = the sum over s < parts of part[s * c + ch] (in that order, in double) / hw, for channels
 * [c0, c1) of at most 64: partial sums of an image's channels (strips of rows, or single rows)
 * into the mean. */
static void mean_of_parts(const double *part, int64_t parts, int64_t c, int64_t c0, int64_t c1, int64_t hw, float *y) {
  double acc[64] = {0};
  for (int64_t s = 0; s < parts; s++)
    for (int64_t ch = c0; ch < c1; ch++) acc[ch - c0] += part[s * c + ch];
  for (int64_t ch = c0; ch < c1; ch++) y[ch] = (float)(acc[ch - c0] / (double)hw);
}

static void gap_rows_sum(void *ctx, int64_t begin, int64_t end) {
  const gap_rows_job *j = ctx;
  int64_t blocks = (j->c + 63) / 64;
  for (int64_t t = begin; t < end; t++) {
    int64_t b = t / blocks, c0 = t % blocks * 64;
    mean_of_parts(j->part + b * j->strips * j->c, j->strips, j->c, c0, GPUX__MIN(c0 + 64, j->c), j->hw,
                  j->y + b * j->c);
  }
}

/* GPUX_GAP_ROWS=1 splits by strips of rows (one a thread, at most one a row), unset or 0 by
 * blocks of channels: which is faster shows only on many cores (bench/pool-bench.sh AB_ENV). */
static atomic_int gap_rows = -1;

static int gap_rows_setting(void) {
  int r = atomic_load(&gap_rows);
  if (r < 0) {
    const char *e = getenv("GPUX_GAP_ROWS");
    r = e && atoi(e) > 0;
    atomic_store(&gap_rows, r);
  }
  return r;
}

int gpux__gap_rows_set(int rows) {
  int old = gap_rows_setting();
  atomic_store(&gap_rows, rows ? 1 : 0);
  return old;
}

static int op_globalaveragepool_nhwc(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "input X is required");
  if (x->dtype != GPUX_DT_FLOAT || x->ndim != 4)
    return gpux__kerr(k, GPUX_E_SHAPE, "GlobalAveragePoolNHWC takes float32 of rank 4");
  int64_t n = x->dims[0], c = x->dims[3], hw = x->dims[1] * x->dims[2], dims[4] = {n, c, 1, 1};
  gpux_tensor *y = gpux__out_raw(k, 0, GPUX_DT_FLOAT, 4, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t blocks = (c + 63) / 64, h = x->dims[1];
  if (n * blocks * hw <= 0) {
    if (n * c > 0) { /* no positions: NaN means */
      for (int64_t i = 0; i < n * c; i++) ((float *)y->data)[i] = NAN;
    }
    return 0;
  }
  const gpux_tensor *sums = IN(1);
  if (sums) { /* the convolution that made X added up its rows: [N, H, C] */
    if (sums->dtype != GPUX_DT_DOUBLE || sums->ndim != 3 || sums->dims[0] != n || sums->dims[1] != h ||
        sums->dims[2] != c)
      return gpux__kerr(k, GPUX_E_SHAPE, "GlobalAveragePoolNHWC's row sums (input 1) must be float64 [N, H, C] of X");
    for (int64_t b = 0; b < n; b++)
      for (int64_t c0 = 0; c0 < c; c0 += 64)
        mean_of_parts((const double *)sums->data + b * h * c, h, c, c0, GPUX__MIN(c0 + 64, c), hw,
                      (float *)y->data + b * c);
    return 0;
  }
  int t = gpux__thread_count();
  if (gap_rows_setting() && h > 1 && t > 1) {
    int64_t strips = GPUX__MIN(h, GPUX__MAX(1, (int64_t)t / n));
    int64_t per = (h + strips - 1) / strips;
    strips = (h + per - 1) / per;
    double *part = gpux__malloc((size_t)(n * strips * c) * sizeof *part);
    if (!part) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    gap_rows_job r = {.x = x->data, .y = y->data, .part = part, .c = c, .hw = hw, .w = x->dims[2], .h = h,
                      .strips = strips, .rows = per};
    gpux__parallel_for(n * strips, 1, gap_rows_strips, &r);
    gpux__parallel_for_elems(n * blocks, (double)(strips * 64) * gpux__elem_units(), 1, gap_rows_sum, &r);
    free(part);
    return 0;
  }
  gap_nhwc_job j = {.x = x->data, .y = y->data, .c = c, .hw = hw, .blocks = blocks};
  gpux__parallel_for(n * blocks, 1, gap_nhwc_blocks, &j);
  return 0;
}

/* gpux.MaxPoolNHWC, which runtime/channels-last.c makes of a MaxPool inside a region of
 * activations kept channels last: MaxPool's attributes (any kernel, strides, pads, dilations,
 * ceil_mode; no Indices) on 2 spatial dims, X [N, H, W, C] and Y [N, OH, OW, C] float32. Each
 * output position is the max over its window's positions inside X, 16 channels a vector (NaN never
 * wins; 0 for a window all in the padding), as MaxPool's planes are. Tasks are output rows. */
typedef struct {
  const float *x;
  float *y;
  const gpux__window *w;
  int64_t c;
} maxpool_nhwc_job;

#if MAXROWS
__attribute__((target("avx512f"))) static void maxpool_nhwc_pos(const float *x, int64_t rs, int64_t cs, int64_t c,
                                                                 int64_t nh, int64_t nw, float *y) {
  for (int64_t c0 = 0; c0 < c; c0 += 16) {
    __mmask16 m = c - c0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (c - c0)) - 1);
    __m512 acc = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < nh; i++)
      for (int64_t t = 0; t < nw; t++) /* max(v, acc): acc where v is NaN */
        acc = _mm512_max_ps(_mm512_maskz_loadu_ps(m, x + i * rs + t * cs + c0), acc);
    if (!nh || !nw) acc = _mm512_setzero_ps();
    _mm512_mask_storeu_ps(y + c0, m, acc);
  }
}

/* Taps a window at most for maxpool_nhwc_run's table of offsets (on the stack). */
#define NHWC_TAPS 256

/* n output positions of one row whose windows lie wholly inside X along W (and whose rows inside X
 * are the same): position q's window at x + q * step, its taps at the offsets off[0, taps) floats
 * from there, c channels a position, Y's positions c floats apart from y. Up to 64 channels a
 * block of 4 accumulators folding the taps (4 independent chains of max, each tap 4 loads), so
 * that the loads, not the max's latency nor the window's arithmetic, set the pace: per position
 * only a pointer step. The same values as maxpool_nhwc_pos (max(v, acc): NaN never wins). */
__attribute__((target("avx512f"))) static void maxpool_nhwc_run(const float *x, const int64_t *off, int64_t taps,
                                                                 int64_t step, int64_t c, int64_t n, float *y) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  for (int64_t q = 0; q < n; q++, x += step, y += c) {
    int64_t c0 = 0;
    for (; c0 + 64 <= c; c0 += 64) {
      __m512 a0 = ninf, a1 = ninf, a2 = ninf, a3 = ninf;
      for (int64_t t = 0; t < taps; t++) {
        const float *p = x + off[t] + c0;
        a0 = _mm512_max_ps(_mm512_loadu_ps(p), a0);
        a1 = _mm512_max_ps(_mm512_loadu_ps(p + 16), a1);
        a2 = _mm512_max_ps(_mm512_loadu_ps(p + 32), a2);
        a3 = _mm512_max_ps(_mm512_loadu_ps(p + 48), a3);
      }
      _mm512_storeu_ps(y + c0, a0);
      _mm512_storeu_ps(y + c0 + 16, a1);
      _mm512_storeu_ps(y + c0 + 32, a2);
      _mm512_storeu_ps(y + c0 + 48, a3);
    }
    if (c0 < c) { /* the last channels, under 64: masked */
      __mmask16 m0 = gpux__lanes16(c - c0), m1 = gpux__lanes16(c - c0 - 16), m2 = gpux__lanes16(c - c0 - 32),
                m3 = gpux__lanes16(c - c0 - 48);
      __m512 a0 = ninf, a1 = ninf, a2 = ninf, a3 = ninf;
      for (int64_t t = 0; t < taps; t++) {
        const float *p = x + off[t] + c0;
        a0 = _mm512_max_ps(_mm512_maskz_loadu_ps(m0, p), a0);
        if (m1) a1 = _mm512_max_ps(_mm512_maskz_loadu_ps(m1, p + 16), a1);
        if (m2) a2 = _mm512_max_ps(_mm512_maskz_loadu_ps(m2, p + 32), a2);
        if (m3) a3 = _mm512_max_ps(_mm512_maskz_loadu_ps(m3, p + 48), a3);
      }
      _mm512_mask_storeu_ps(y + c0, m0, a0);
      _mm512_mask_storeu_ps(y + c0 + 16, m1, a1);
      _mm512_mask_storeu_ps(y + c0 + 32, m2, a2);
      _mm512_mask_storeu_ps(y + c0 + 48, m3, a3);
    }
  }
}
#endif

/* Output position o2 of row r (window rows from hs, nh of them inside X) by the plain loops. */
static void maxpool_nhwc_one(const maxpool_nhwc_job *j, int64_t n, int64_t hs, int64_t nh, int64_t r, int64_t o2) {
  const gpux__window *w = j->w;
  int64_t c = j->c, ih = w->in[1], iw = w->in[2], w0, w1, pad;
  dim_taps(w, 2, o2, &w0, &w1, &pad);
  int64_t ws = o2 * w->s[2] - w->pb[2] + w0 * w->d[2];
  const float *x = j->x + ((n * ih + hs) * iw + ws) * c;
  float *y = j->y + (r * w->out[2] + o2) * c;
  int64_t rs = w->d[1] * iw * c, cs = w->d[2] * c, nw = w1 - w0;
#if MAXROWS
  if (gpux__have_avx512f()) {
    maxpool_nhwc_pos(x, rs, cs, c, nh, nw, y);
    return;
  }
#endif
  for (int64_t ch = 0; ch < c; ch++) {
    float acc = -INFINITY;
    for (int64_t i = 0; i < nh; i++)
      for (int64_t t = 0; t < nw; t++) {
        float v = x[i * rs + t * cs + ch];
        acc = v > acc ? v : acc;
      }
    y[ch] = nh && nw ? acc : 0.0f;
  }
}

static void maxpool_nhwc_rows(void *ctx, int64_t begin, int64_t end) {
  const maxpool_nhwc_job *j = ctx;
  const gpux__window *w = j->w;
  int64_t c = j->c, ih = w->in[1], iw = w->in[2], oh = w->out[1], ow = w->out[2];
  /* the output columns whose windows lie wholly inside X along W: [lo, hi) */
  int64_t sw = w->s[2], pl = w->pb[2], span = (w->k[2] - 1) * w->d[2];
  int64_t lo = GPUX__MIN(ow, (pl + sw - 1) / sw), hi = iw - 1 - span + pl < 0 ? 0 : (iw - 1 - span + pl) / sw + 1;
  hi = GPUX__MAX(lo, GPUX__MIN(hi, ow));
  for (int64_t r = begin; r < end; r++) {
    int64_t n = r / oh, o1 = r % oh, h0, h1, pad;
    dim_taps(w, 1, o1, &h0, &h1, &pad);
    int64_t hs = o1 * w->s[1] - w->pb[1] + h0 * w->d[1], nh = h1 - h0; /* the first row inside X */
    int64_t o2 = 0;
#if MAXROWS
    int64_t taps = nh * w->k[2];
    if (gpux__have_avx512f() && hi > lo && nh > 0 && taps <= NHWC_TAPS) {
      int64_t off[NHWC_TAPS];
      for (int64_t i = 0; i < nh; i++)
        for (int64_t t = 0; t < w->k[2]; t++) off[i * w->k[2] + t] = (i * w->d[1] * iw + t * w->d[2]) * c;
      for (; o2 < lo; o2++) maxpool_nhwc_one(j, n, hs, nh, r, o2);
      maxpool_nhwc_run(j->x + ((n * ih + hs) * iw + lo * sw - pl) * c, off, taps, sw * c, c, hi - lo,
                       j->y + (r * ow + lo) * c);
      o2 = hi;
    }
#endif
    for (; o2 < ow; o2++) maxpool_nhwc_one(j, n, hs, nh, r, o2);
  }
}

static int op_maxpool_nhwc(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "input X is required");
  if (x->dtype != GPUX_DT_FLOAT || x->ndim != 4)
    return gpux__kerr(k, GPUX_E_SHAPE, "MaxPoolNHWC takes float32 of rank 4");
  gpux_tensor xp = *x; /* X's dims as NCHW, for the window */
  xp.dims[1] = x->dims[3], xp.dims[2] = x->dims[1], xp.dims[3] = x->dims[2];
  gpux__window w;
  if (gpux__window_read(k, &xp, NULL, &w)) return k->status;
  if (gpux__window_forward(k, &w, gpux__attr_int(k, "ceil_mode", 0) != 0)) return k->status;
  if (w.nsp != 2) return gpux__kerr(k, GPUX_E_SHAPE, "MaxPoolNHWC takes 2 spatial dims");
  int64_t dims[4] = {x->dims[0], w.out[1], w.out[2], x->dims[3]};
  gpux_tensor *y = gpux__out_raw(k, 0, GPUX_DT_FLOAT, 4, dims);
  if (!y) return k->status;
  if (k->shape_only || gpux_tensor_count(y) == 0) return 0;
  maxpool_nhwc_job j = {.x = x->data, .y = y->data, .w = &w, .c = x->dims[3]};
  int64_t work = w.out[2] * x->dims[3] * w.k[1] * w.k[2];
  gpux__parallel_for(dims[0] * dims[1], GPUX__MAX(1, 32768 / (work + 1)), maxpool_nhwc_rows, &j);
  return 0;
}

static int op_globalmaxpool(gpux__kctx *k) { return global_pool(k, POOL_MAX); }
static int op_globalaveragepool(gpux__kctx *k) { return global_pool(k, POOL_AVG); }
static int op_globallppool(gpux__kctx *k) { return global_pool(k, POOL_LP); }

/* ---- MaxUnpool ---- */

/* Y (zeros) gets each X value at its flat index from I. Indices count in the inferred shape
 * ((in - 1) * stride - pads + kernel); a given output_shape holds that block at its origin. */
static int op_maxunpool(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *ind = IN(1), *oshape = IN(2);
  if (!x || !ind) return gpux__kerr(k, GPUX_E_INVALID, "inputs X and I are required");
  if (ind->dtype != GPUX_DT_INT64) return gpux__kerr(k, GPUX_E_DTYPE, "I must be int64");
  if (ind->ndim != x->ndim || memcmp(ind->dims, x->dims, sizeof(int64_t) * (size_t)x->ndim))
    return gpux__kerr(k, GPUX_E_SHAPE, "I must have X's shape");
  size_t es = gpux_dtype_size(x->dtype);
  if (x->dtype == GPUX_DT_STRING || es == 0)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "MaxUnpool on %s", gpux_dtype_name(x->dtype));
  gpux__window w;
  if (gpux__window_read(k, x, NULL, &w)) return k->status;
  int64_t inferred[GPUX_MAX_DIMS], dims[GPUX_MAX_DIMS];
  inferred[0] = x->dims[0];
  inferred[1] = x->dims[1];
  for (int i = 0; i < w.nsp; i++) {
    int s = GPUX_WIN_DIMS - w.nsp + i;
    inferred[2 + i] = (w.in[s] - 1) * w.s[s] - (w.pb[s] + w.pe[s]) + w.k[s];
    if (inferred[2 + i] < 0) return gpux__kerr(k, GPUX_E_SHAPE, "negative output extent");
  }
  memcpy(dims, inferred, sizeof dims);
  if (oshape) {
    if (gpux__need_data(k, 2)) return k->status;
    int n = gpux__read_ints(k, oshape, dims, GPUX_MAX_DIMS);
    if (n < 0) return n;
    if (n != x->ndim) return gpux__kerr(k, GPUX_E_SHAPE, "output_shape has %d values for rank %d", n, x->ndim);
    for (int i = 0; i < n; i++)
      if (dims[i] < 0) return gpux__kerr(k, GPUX_E_SHAPE, "negative output_shape");
  }
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t total = gpux__shape_count(x->ndim, inferred), n = gpux_tensor_count(x);
  const int64_t *iv = ind->data;
  for (int64_t i = 0; i < n; i++) {
    if (iv[i] < 0 || iv[i] >= total)
      return gpux__kerr(k, GPUX_E_INVALID, "index %lld outside the unpooled %lld elements",
                        (long long)iv[i], (long long)total);
    /* the index's coordinates in the inferred shape, placed in the output's */
    int64_t rem = iv[i], pos = 0, stride = 1, inside = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
      int64_t c = rem % inferred[d];
      rem /= inferred[d];
      if (c >= dims[d]) inside = 0;
      pos += c * stride;
      stride *= dims[d];
    }
    if (inside) memcpy((char *)y->data + (size_t)pos * es, (const char *)x->data + (size_t)i * es, es);
  }
  return 0;
}

const gpux__op_def gpux__ops_pool[] = {
  {"", "MaxPool", op_maxpool, 1, 0},
  {"", "AveragePool", op_averagepool, 1, 0},
  {"", "LpPool", op_lppool, 1, 0},
  {"", "GlobalMaxPool", op_globalmaxpool, 1, 0},
  {"", "GlobalAveragePool", op_globalaveragepool, 1, 0},
  {"", "GlobalLpPool", op_globallppool, 1, 0},
  {"gpux", "GlobalAveragePoolNHWC", op_globalaveragepool_nhwc, 1, 0},
  {"gpux", "MaxPoolNHWC", op_maxpool_nhwc, 1, 0},
  {"", "MaxUnpool", op_maxunpool, 9, 0},
  {0},
};
