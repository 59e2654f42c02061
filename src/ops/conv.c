/* conv.c — operator family 'conv': Conv, ConvTranspose, DeformConv, CausalConvWithState and
 * Col2Im, gpux.FusedConv and gpux.FusedConvTranspose (a Conv or ConvTranspose with the
 * activation and per-channel scale and shift runtime/optimize.c folded into it), gpux.ConvNHWC
 * (a Conv or FusedConv on channels-last activations, runtime/channels-last.c), the
 * sliding-window geometry they share with pooling (pool.c), and the family's op table.
 * float32 Conv of 1 or 2 spatial dims runs on the AVX2 kernels of conv-direct.c where the machine
 * has them; otherwise as im2col + OpenBLAS sgemm tiled over output positions, with a direct loop
 * for depthwise convolutions. ConvTranspose whose kernel tiles the output is a 1x1 convolution on
 * those kernels, interleaved; otherwise sgemm + col2im. float16/bfloat16 are widened to float32;
 * float64 runs plain loops. */
#include "core/scratch.h"
#include "ops/simd.h"
#include "ops/conv.h"
#include "ops/gemm.h"
#include <limits.h>
#include <math.h>
#include <stdatomic.h>

/* GCC 12 at -O2 vectorizes only loops whose trip count is a known multiple of the vector width;
 * the few hot inner loops below ask for the full loop vectorizer, and are compiled for AVX-512
 * and AVX2 as well (simd.h). */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTORIZE __attribute__((optimize("tree-vectorize"))) GPUX_SIMD_CLONES
#else
#define VECTORIZE
#endif

/* ---- dtype helpers ---- */

static int is_conv_float(int dt) {
  return dt == GPUX_DT_FLOAT || dt == GPUX_DT_DOUBLE || dt == GPUX_DT_FLOAT16 || dt == GPUX_DT_BFLOAT16;
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* A per-thread scratch buffer of at least n floats (core/scratch.h), kept for the thread's next
 * call, so column buffers are not mapped and faulted in again on every call. NULL when out of
 * memory. Not for nested use. */
static float *scratch_f32(size_t n) { return gpux__scratch(GPUX__SCRATCH_CONV_COLS, (n ? n : 1) * sizeof(float)); }

/* ---- window geometry ---- */

int gpux__window_read(gpux__kctx *k, const gpux_tensor *x, const int64_t *kernel, gpux__window *w) {
  memset(w, 0, sizeof *w);
  int nsp = x->ndim - 2;
  if (nsp < 1 || nsp > GPUX_WIN_DIMS)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "input of rank %d: expected N x C and 1 to %d spatial dims",
                      x->ndim, GPUX_WIN_DIMS);
  w->nsp = nsp;
  for (int i = 0; i < GPUX_WIN_DIMS; i++) w->in[i] = w->out[i] = w->k[i] = w->s[i] = w->d[i] = 1;
  const int64_t *ks, *st, *dl, *pd;
  int nk = gpux__attr_ints(k, "kernel_shape", &ks), ns = gpux__attr_ints(k, "strides", &st);
  int nd = gpux__attr_ints(k, "dilations", &dl), np = gpux__attr_ints(k, "pads", &pd);
  if (nk && nk != nsp)
    return gpux__kerr(k, GPUX_E_INVALID, "kernel_shape has %d values for %d spatial dims", nk, nsp);
  if (!nk && !kernel) return gpux__kerr(k, GPUX_E_INVALID, "the kernel_shape attribute is required");
  if (ns && ns != nsp)
    return gpux__kerr(k, GPUX_E_INVALID, "strides has %d values for %d spatial dims", ns, nsp);
  if (nd && nd != nsp)
    return gpux__kerr(k, GPUX_E_INVALID, "dilations has %d values for %d spatial dims", nd, nsp);
  if (np && np != 2 * nsp)
    return gpux__kerr(k, GPUX_E_INVALID, "pads has %d values for %d spatial dims", np, nsp);
  for (int i = 0; i < nsp; i++) {
    int s = GPUX_WIN_DIMS - nsp + i;
    w->in[s] = x->dims[2 + i];
    w->k[s] = nk ? ks[i] : kernel[i];
    w->s[s] = ns ? st[i] : 1;
    w->d[s] = nd ? dl[i] : 1;
    w->pb[s] = np ? pd[i] : 0;
    w->pe[s] = np ? pd[nsp + i] : 0;
    if (w->k[s] < 1 || w->s[s] < 1 || w->d[s] < 1)
      return gpux__kerr(k, GPUX_E_INVALID, "kernel %lld, stride %lld and dilation %lld must be positive",
                        (long long)w->k[s], (long long)w->s[s], (long long)w->d[s]);
    if (w->pb[s] < 0 || w->pe[s] < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative pads");
  }
  return 0;
}

/* auto_pad as 0 NOTSET, 1 SAME_UPPER, 2 SAME_LOWER, 3 VALID; -1 (error set) otherwise. */
static int read_auto_pad(gpux__kctx *k) {
  const char *ap = gpux__attr_string(k, "auto_pad", "NOTSET");
  if (!ap[0] || !strcmp(ap, "NOTSET")) return 0;
  if (!strcmp(ap, "SAME_UPPER")) return 1;
  if (!strcmp(ap, "SAME_LOWER")) return 2;
  if (!strcmp(ap, "VALID")) return 3;
  gpux__kerr(k, GPUX_E_UNSUPPORTED, "auto_pad '%s'", ap);
  return -1;
}

int gpux__window_forward(gpux__kctx *k, gpux__window *w, int ceil_mode) {
  int ap = read_auto_pad(k);
  if (ap < 0) return k->status;
  for (int s = GPUX_WIN_DIMS - w->nsp; s < GPUX_WIN_DIMS; s++) {
    int64_t ek = (w->k[s] - 1) * w->d[s] + 1;
    if (ap == 1 || ap == 2) {
      w->out[s] = (w->in[s] + w->s[s] - 1) / w->s[s];
      int64_t total = (w->out[s] - 1) * w->s[s] + ek - w->in[s];
      if (total < 0) total = 0;
      w->pb[s] = ap == 1 ? total / 2 : total - total / 2;
      w->pe[s] = total - w->pb[s];
      continue;
    }
    if (ap == 3) w->pb[s] = w->pe[s] = 0;
    int64_t span = w->in[s] + w->pb[s] + w->pe[s] - ek;
    if (span < 0)
      return gpux__kerr(k, GPUX_E_SHAPE, "window of %lld is larger than the padded input of %lld",
                        (long long)ek, (long long)(w->in[s] + w->pb[s] + w->pe[s]));
    w->out[s] = (ceil_mode ? span + w->s[s] - 1 : span) / w->s[s] + 1;
    if (ceil_mode && (w->out[s] - 1) * w->s[s] >= w->in[s] + w->pb[s]) w->out[s]--;
  }
  return 0;
}

void gpux__window_out_dims(const gpux__window *w, int64_t n, int64_t c, int64_t *dims) {
  dims[0] = n;
  dims[1] = c;
  for (int i = 0; i < w->nsp; i++) dims[2 + i] = w->out[GPUX_WIN_DIMS - w->nsp + i];
}

/* The range [lo, hi) of positions o in [0, count) whose coordinate o * s + off lies in [0, n). */
static void valid_range(int64_t off, int64_t s, int64_t n, int64_t count, int64_t *lo, int64_t *hi) {
  int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
  int64_t h = n - 1 - off < 0 ? 0 : (n - 1 - off) / s + 1;
  *lo = GPUX__MIN(l, count);
  *hi = GPUX__MIN(h, count);
  if (*hi < *lo) *hi = *lo;
}

/* ---- Conv ---- */

typedef struct {
  gpux__window w;
  int64_t n, c, m, g;   /* batch, input channels, output channels, groups */
  int64_t cg, mg;       /* input and output channels per group */
  int64_t is, os, ks;   /* input, output and kernel spatial sizes */
  const float *xs;      /* input 6, x_scale: X's scale per image and channel [N * C], or NULL */
  int no_pack;          /* W is not the node's (scaled for xs): no packed weights */
} conv_dims;

static void conv_sizes(conv_dims *cd) {
  cd->cg = cd->c / cd->g;
  cd->mg = cd->m / cd->g;
  cd->is = cd->os = cd->ks = 1;
  for (int i = 0; i < GPUX_WIN_DIMS; i++) {
    cd->is *= cd->w.in[i];
    cd->os *= cd->w.out[i];
    cd->ks *= cd->w.k[i];
  }
}

/* Checks X (N, C, spatial), W (M, C/group, kernel) and B (M) and computes the window. */
static int conv_setup(gpux__kctx *k, const gpux_tensor *x, const gpux_tensor *w, const gpux_tensor *b,
                      conv_dims *cd) {
  if (!x || !w) return gpux__kerr(k, GPUX_E_INVALID, "inputs X and W are required");
  if (x->ndim < 3 || w->ndim != x->ndim)
    return gpux__kerr(k, GPUX_E_SHAPE, "X has rank %d and W rank %d: expected equal ranks of at least 3",
                      x->ndim, w->ndim);
  memset(cd, 0, sizeof *cd);
  cd->g = gpux__attr_int(k, "group", 1);
  cd->n = x->dims[0], cd->c = x->dims[1], cd->m = w->dims[0];
  if (cd->g < 1 || cd->c % cd->g || w->dims[1] * cd->g != cd->c || cd->m % cd->g)
    return gpux__kerr(k, GPUX_E_SHAPE, "X has %lld channels and W is %lld x %lld: inconsistent with group %lld",
                      (long long)cd->c, (long long)cd->m, (long long)w->dims[1], (long long)cd->g);
  if (b && (b->ndim != 1 || b->dims[0] != cd->m))
    return gpux__kerr(k, GPUX_E_SHAPE, "B must have shape (%lld)", (long long)cd->m);
  if (gpux__window_read(k, x, w->dims + 2, &cd->w)) return k->status;
  for (int i = 0; i < cd->w.nsp; i++)
    if (cd->w.k[GPUX_WIN_DIMS - cd->w.nsp + i] != w->dims[2 + i])
      return gpux__kerr(k, GPUX_E_SHAPE, "kernel_shape does not match W's spatial dims");
  if (gpux__window_forward(k, &cd->w, 0)) return k->status;
  conv_sizes(cd);
  return 0;
}

static const gpux__conv_epilogue no_epilogue = {.act = GPUX_EP_NONE};

typedef struct {
  const conv_dims *cd;
  const float *x, *w, *b;
  float *y;
  const gpux__conv_epilogue *ep;
  int64_t tile;         /* output (Conv) or input (ConvTranspose) positions per column tile */
  int64_t tiles;        /* Conv: tiles per image and group */
  int pointwise;        /* 1x1 kernel, unit strides, no padding: X itself is the column matrix */
  int split_gemm;       /* ConvTranspose: split each product over the pool */
  atomic_int failed;    /* a worker ran out of memory */
} conv_job;

/* im2col of one tile: col[r][p - p0] = the input value under kernel row r = (c, kd, kh, kw) for
 * output position p in [p0, p1), 0 in the padding. */
typedef struct {
  const conv_dims *cd;
  const float *x;       /* one group's input [cg, is] */
  float *col;           /* [cg * ks, p1 - p0] */
  int64_t p0, p1;
} im2col_job;

static void im2col_rows(const im2col_job *j, int64_t r0, int64_t r1) {
  const gpux__window *w = &j->cd->w;
  int64_t t = j->p1 - j->p0;
  for (int64_t r = r0; r < r1; r++) {
    int64_t c = r / j->cd->ks, kk = r % j->cd->ks;
    int64_t kw = kk % w->k[2], kh = kk / w->k[2] % w->k[1], kd = kk / (w->k[2] * w->k[1]);
    const float *xc = j->x + c * j->cd->is;
    float *dst = j->col + r * t;
    int64_t xoff = kw * w->d[2] - w->pb[2], lo, hi;
    valid_range(xoff, w->s[2], w->in[2], w->out[2], &lo, &hi);
    int64_t p = j->p0, ow = p % w->out[2], oh = p / w->out[2] % w->out[1];
    int64_t od = p / (w->out[2] * w->out[1]);
    while (p < j->p1) {
      int64_t run = GPUX__MIN(w->out[2] - ow, j->p1 - p);
      int64_t id = od * w->s[0] - w->pb[0] + kd * w->d[0];
      int64_t ih = oh * w->s[1] - w->pb[1] + kh * w->d[1];
      int64_t a = GPUX__MAX(ow, lo), e = GPUX__MIN(ow + run, hi);
      if (id < 0 || id >= w->in[0] || ih < 0 || ih >= w->in[1] || a >= e) {
        memset(dst, 0, (size_t)run * sizeof *dst);
      } else {
        const float *row = xc + (id * w->in[1] + ih) * w->in[2];
        for (int64_t o = ow; o < a; o++) dst[o - ow] = 0;
        if (w->s[2] == 1) {
          memcpy(dst + (a - ow), row + a + xoff, (size_t)(e - a) * sizeof *dst);
        } else {
          for (int64_t o = a; o < e; o++) dst[o - ow] = row[o * w->s[2] + xoff];
        }
        for (int64_t o = e; o < ow + run; o++) dst[o - ow] = 0;
      }
      dst += run;
      p += run;
      ow = 0;
      if (++oh == w->out[1]) oh = 0, od++;
    }
  }
}

/* One Conv task: output positions [p0, p1) of one image and group, as
 * Y_g[mg, p0:p1] = W_g[mg, cg*ks] x col[cg*ks, p1-p0] (+ bias), on the calling thread. */
static void conv_tile(const conv_job *j, int64_t task, float *col) {
  const conv_dims *cd = j->cd;
  int64_t ng = task / j->tiles, p0 = task % j->tiles * j->tile;
  int64_t p1 = GPUX__MIN(cd->os, p0 + j->tile), t = p1 - p0;
  int64_t n = ng / cd->g, g = ng % cd->g, kg = cd->cg * cd->ks;
  const float *xg = j->x + (n * cd->c + g * cd->cg) * cd->is;   /* [cg, is] */
  float *yg = j->y + (n * cd->m + g * cd->mg) * cd->os;         /* [mg, os] */
  gpux__gemm mm = {.m = cd->mg, .n = t, .k = kg, .alpha = 1, .beta = 0,
                   .a = j->w + g * cd->mg * kg, .lda = kg, .c = yg + p0, .ldc = cd->os};
  if (kg == 0) { /* no input channels: only the bias */
    for (int64_t m = 0; m < cd->mg; m++) memset(yg + m * cd->os + p0, 0, (size_t)t * sizeof *yg);
  } else if (j->pointwise) {
    mm.b = xg + p0, mm.ldb = cd->is;
    gpux__gemm_serial(&mm);
  } else {
    im2col_job ij = {cd, xg, col, p0, p1};
    im2col_rows(&ij, 0, kg);
    mm.b = col, mm.ldb = t;
    gpux__gemm_serial(&mm);
  }
  if (j->b || j->ep->act != GPUX_EP_NONE || j->ep->clamp || j->ep->scale || j->ep->res)
    for (int64_t m = 0; m < cd->mg; m++) {
      int64_t ch = g * cd->mg + m;
      float *row = yg + m * cd->os + p0;
      gpux__conv_finish(row, 0, row, 0, 1, t, j->b ? j->b[ch] : 0.0f, j->ep, ch);
    }
}

/* Workers: each chunk of tasks has its own column buffer. */
static void conv_tile_range(void *ctx, int64_t begin, int64_t end) {
  conv_job *j = ctx;
  float *col = NULL;
  if (!j->pointwise) {
    col = scratch_f32((size_t)(j->cd->cg * j->cd->ks * j->tile));
    if (!col) {
      atomic_store(&j->failed, 1);
      return;
    }
  }
  for (int64_t t = begin; t < end; t++) conv_tile(j, t, col);
}

/* y[i] += a * x[i * s] for i < n. */
VECTORIZE static void axpy_strided(float *restrict y, const float *restrict x, float a, int64_t n,
                                   int64_t s) {
  if (s == 1) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
  } else {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i * s];
  }
}

/* y[i] += w[0] * x[i * s] + w[1] * x[i * s + d] + w[2] * x[i * s + 2 * d] for i < n: three
 * taps of a depthwise row in one pass over y. */
VECTORIZE static void dw_row3(float *restrict y, const float *restrict x, const float *w, int64_t n,
                              int64_t s, int64_t d) {
  float w0 = w[0], w1 = w[1], w2 = w[2];
  const float *x1 = x + d, *x2 = x + 2 * d;
  if (s == 1) {
    for (int64_t i = 0; i < n; i++) y[i] += w0 * x[i] + w1 * x1[i] + w2 * x2[i];
  } else {
    for (int64_t i = 0; i < n; i++) y[i] += w0 * x[i * s] + w1 * x1[i * s] + w2 * x2[i * s];
  }
}

/* The same for five taps. */
VECTORIZE static void dw_row5(float *restrict y, const float *restrict x, const float *w, int64_t n,
                              int64_t s, int64_t d) {
  float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4];
  const float *x1 = x + d, *x2 = x + 2 * d, *x3 = x + 3 * d, *x4 = x + 4 * d;
  if (s == 1) {
    for (int64_t i = 0; i < n; i++) y[i] += w0 * x[i] + w1 * x1[i] + w2 * x2[i] + w3 * x3[i] + w4 * x4[i];
  } else {
    for (int64_t i = 0; i < n; i++)
      y[i] += w0 * x[i * s] + w1 * x1[i * s] + w2 * x2[i * s] + w3 * x3[i * s] + w4 * x4[i * s];
  }
}

#define DW_MAX_KW 64

/* Depthwise (one input channel per group): each output row accumulates the input rows under
 * it; where every tap of a kernel row is inside the input, 3- and 5-wide rows run fused, the
 * rest tap by tap. */
static void conv_depthwise_planes(void *ctx, int64_t begin, int64_t end) {
  const conv_job *j = ctx;
  const conv_dims *cd = j->cd;
  const gpux__window *w = &cd->w;
  int64_t lo[DW_MAX_KW], hi[DW_MAX_KW], nkw = GPUX__MIN(w->k[2], DW_MAX_KW);
  int64_t all_lo = 0, all_hi = w->out[2]; /* output columns where every tap is inside */
  for (int64_t kw = 0; kw < nkw; kw++) {
    valid_range(kw * w->d[2] - w->pb[2], w->s[2], w->in[2], w->out[2], &lo[kw], &hi[kw]);
    all_lo = GPUX__MAX(all_lo, lo[kw]);
    all_hi = GPUX__MIN(all_hi, hi[kw]);
  }
  int fused = (w->k[2] == 3 || w->k[2] == 5) && all_lo < all_hi;
  for (int64_t plane = begin; plane < end; plane++) {
    int64_t n = plane / cd->m, m = plane % cd->m, g = m / cd->mg;
    const float *xc = j->x + (n * cd->c + g) * cd->is;   /* [in0, in1, in2] */
    const float *wk = j->w + m * cd->ks;                 /* [k0, k1, k2] */
    float *yp = j->y + plane * cd->os;                   /* [out0, out1, out2] */
    float bias = j->b ? j->b[m] : 0.0f;
    for (int64_t od = 0; od < w->out[0]; od++)
      for (int64_t oh = 0; oh < w->out[1]; oh++) {
        float *yr = yp + (od * w->out[1] + oh) * w->out[2];
        for (int64_t ow = 0; ow < w->out[2]; ow++) yr[ow] = bias;
        for (int64_t kd = 0; kd < w->k[0]; kd++) {
          int64_t id = od * w->s[0] - w->pb[0] + kd * w->d[0];
          if (id < 0 || id >= w->in[0]) continue;
          for (int64_t kh = 0; kh < w->k[1]; kh++) {
            int64_t ih = oh * w->s[1] - w->pb[1] + kh * w->d[1];
            if (ih < 0 || ih >= w->in[1]) continue;
            const float *xr = xc + (id * w->in[1] + ih) * w->in[2];
            const float *wr = wk + (kd * w->k[1] + kh) * w->k[2];
            if (fused) {
              const float *xs = xr + all_lo * w->s[2] - w->pb[2];
              if (w->k[2] == 3) dw_row3(yr + all_lo, xs, wr, all_hi - all_lo, w->s[2], w->d[2]);
              else dw_row5(yr + all_lo, xs, wr, all_hi - all_lo, w->s[2], w->d[2]);
            }
            for (int64_t kw = 0; kw < w->k[2]; kw++) {
              int64_t xoff = kw * w->d[2] - w->pb[2], l, h;
              if (kw < DW_MAX_KW) l = lo[kw], h = hi[kw];
              else valid_range(xoff, w->s[2], w->in[2], w->out[2], &l, &h);
              if (fused) { /* only the edges outside [all_lo, all_hi) are left */
                if (l < all_lo) axpy_strided(yr + l, xr + l * w->s[2] + xoff, wr[kw], all_lo - l, w->s[2]);
                if (all_hi < h) axpy_strided(yr + all_hi, xr + all_hi * w->s[2] + xoff, wr[kw], h - all_hi, w->s[2]);
              } else if (l < h) {
                axpy_strided(yr + l, xr + l * w->s[2] + xoff, wr[kw], h - l, w->s[2]);
              }
            }
          }
        }
        if (j->ep->act != GPUX_EP_NONE || j->ep->clamp || j->ep->scale || j->ep->res)
          gpux__conv_finish(yr, 0, yr, 0, 1, w->out[2], 0.0f, j->ep, m);
      }
  }
}

typedef struct {
  const float *b;       /* [m] or NULL */
  float *y;             /* [planes, os] */
  int64_t m, os;
  const gpux__conv_epilogue *ep;
} bias_job;

/* The bias and epilogue of whole output planes (ConvTranspose). */
static void finish_planes(void *ctx, int64_t begin, int64_t end) {
  const bias_job *j = ctx;
  for (int64_t plane = begin; plane < end; plane++) {
    float *yp = j->y + plane * j->os;
    gpux__conv_finish(yp, 0, yp, 0, 1, j->os, j->b ? j->b[plane % j->m] : 0.0f, j->ep, plane % j->m);
  }
}

static int blas_fits(gpux__kctx *k, int64_t a, int64_t b, int64_t c) {
  if (a > INT_MAX || b > INT_MAX || c > INT_MAX)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "matrix dimension above %d", INT_MAX);
  return 0;
}

/* A 1-D convolution of one input channel without padding or dilation (an STFT as a Conv: a
 * kernel of 256-512 taps, a stride of a hop) is a product whose A needs no im2col: output
 * position p's window is the input's floats [p * stride, p * stride + K), so the windows are the
 * rows of A [os, K], `stride` floats apart, read in place. Y^T [os, M] = A x W^T on the packed
 * sgemm (W [M, 1, K] packed once as B = W^T [K, M]), into scratch, then transposed into Y [M, os]
 * with the bias and the epilogue. 1 when not taken (W not a packed initializer). */
static int conv_windows(gpux__kctx *k, const conv_dims *cd, const float *x, const float *b, float *y,
                        const gpux__conv_epilogue *ep) {
  const gpux__window *w = &cd->w;
  int s = GPUX_WIN_DIMS - 1;
  if (!k || w->nsp != 1 || cd->g != 1 || cd->c != 1 || cd->ks < 16 || w->d[s] != 1 || w->pb[s] || w->pe[s]) return 1;
  const gpux__sgemm_b *pw = gpux__sgemm_weights_as(k, 1, 1, cd->m, cd->ks);
  if (!pw) return 1;
  float *c = gpux__scratch(GPUX__SCRATCH_CONV_COLS, (size_t)(cd->os * cd->m) * sizeof(float));
  if (!c) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory for a product of windows");
  int finish = b || ep != &no_epilogue;
  for (int64_t n = 0; n < cd->n; n++) {
    float *yn = y + n * cd->m * cd->os; /* c [os, M] -> yn [M, os] */
    gpux__sgemm_run(cd->os, x + n * cd->is, w->s[s], pw, c, cd->m, NULL, 0);
    for (int64_t p0 = 0; p0 < cd->os; p0 += 16) {
      int64_t p1 = GPUX__MIN(cd->os, p0 + 16);
      for (int64_t m = 0; m < cd->m; m++)
        for (int64_t p = p0; p < p1; p++) yn[m * cd->os + p] = c[p * cd->m + m];
    }
    if (finish)
      for (int64_t m = 0; m < cd->m; m++)
        gpux__conv_finish(yn + m * cd->os, 0, yn + m * cd->os, 0, 1, cd->os, b ? b[m] : 0.0f, ep, m);
  }
  return 0;
}

/* The weights of a Conv or FusedConv of one group packed once for conv-gemm.c's kernel, kept in
 * the node's state. A window of more than one tap always takes that kernel once its weights are
 * packed (the conditions below depend on W alone), so W's data is never read again and the
 * session may let it go. A 1x1 kernel takes it on planes of at most 64 outputs (7 x 7), where
 * conv-direct.c's blocks of 48 positions run partly empty; on larger ones, where the channels-
 * last copy of X and the transposed sums cost more than they save, conv-direct.c's product
 * reads X and W in place, so W stays; gpux.ConvNHWC takes the kernel on any plane (any_plane),
 * so its W goes too, and a first convolution of a region (X's planes in, any_plane 2) of fewer
 * channels for conv-rows.c, which reads the same packing.
 *
 * A gpux.ConvNHWC whose first run conv-winograd.c takes keeps W transformed for that kernel
 * instead, and packs it for conv-gemm.c only on a run that kernel declines (another batch or
 * plane, fewer threads): W's file pages go, and the model's copy of it, where the file holds its
 * bytes to read in their place (rereads). Each form is
 * made once, by the first run that needs it (runs at once may both make it: one keeps its own,
 * the other frees its own and reads the kept one). */
typedef struct {
  gpux__node_state base;
  const gpux_tensor *src;           /* the weights (an initializer): with base.rereads, its data is
                                       read again to pack it (maybe the model file's bytes then,
                                       not aligned: the session's copy let go) */
  int64_t m, c, ks;                 /* W [m, c, ks taps] */
  gpux__sgemm_b *_Atomic packed;    /* for conv-gemm.c's kernel, or NULL (not made yet: rereads) */
  gpux__conv_wino_w *_Atomic wino;  /* the same transformed for conv-winograd.c, or NULL */
} conv_weights_state;

static void conv_weights_free(gpux__node_state *s) {
  conv_weights_state *st = (conv_weights_state *)s;
  gpux__sgemm_b *pk = atomic_load(&st->packed);
  if (pk) gpux__conv_gemm_free(pk), free(pk);
  gpux__conv_wino_w *u = atomic_load(&st->wino);
  if (u) gpux__conv_wino_free(u), free(u);
  free(st);
}

/* The node's weights packed for conv-gemm.c, packed now from w when the node has not yet. */
static const gpux__sgemm_b *conv_pack_from(conv_weights_state *st, const void *w) {
  gpux__sgemm_b *pk = atomic_load(&st->packed), *none = NULL;
  if (pk || !w) return pk;
  if (!(pk = gpux__calloc(1, sizeof *pk))) return NULL;
  if (gpux__conv_gemm_pack(w, st->m, st->c, st->ks, pk)) {
    free(pk);
    return NULL;
  }
  if (!atomic_compare_exchange_strong(&st->packed, &none, pk)) { /* another run packed them first */
    gpux__conv_gemm_free(pk), free(pk);
    return none;
  }
  st->base.bytes += (size_t)gpux__sgemm_packed_floats(st->c * st->ks, st->m) * sizeof(float);
  return pk;
}

/* W's data where the node may read it again (rereads), else NULL. */
static const void *conv_rereads(const conv_weights_state *st) {
  return st->base.rereads >> 1 & 1 ? st->src->data : NULL;
}

/* The node's packed weights, packed now (from W, rereads) when the node has not yet. */
static const gpux__sgemm_b *conv_packed(conv_weights_state *st) { return conv_pack_from(st, conv_rereads(st)); }

/* The node's state, made on its first run (NULL: not a float32 initializer of a convolution of
 * one group and at least 16 input channels on 1 or 2 spatial dims, a 1x1 kernel on a large
 * plane, a first run that gpux__conv_gemm_first leaves to the implicit GEMM (large planes of few
 * channels), no state kept for the node, no such kernel here, or memory short: the other paths,
 * which need none). With wino (a gpux.ConvNHWC's problem) that conv-winograd.c takes, W is not
 * packed but kept to be; else packed now. Once made, the state stays the node's way for any plane
 * (the session may have let W's data go). */
static conv_weights_state *conv_weights(gpux__kctx *k, const conv_dims *cd, int any_plane, const gpux__conv2d *wino) {
  const gpux_tensor *w = k ? IN(1) : NULL;
  if (!w || cd->no_pack || !k->state || !(k->const_in >> 1 & 1) || w->dtype != GPUX_DT_FLOAT || cd->g != 1 ||
      (cd->cg < 16 && any_plane < 2) ||
      cd->w.nsp > 2 || (cd->ks == 1 && cd->os > 64 && !any_plane) || !gpux__conv_gemm_available())
    return NULL;
  conv_weights_state *st = (conv_weights_state *)gpux__state_get(k);
  if (!st) {
    if ((!any_plane && !gpux__conv_gemm_first(cd->c, cd->m, cd->ks, cd->os)) || !w->data ||
        !(st = gpux__calloc(1, sizeof *st)))
      return NULL;
    st->base.destroy = conv_weights_free;
    st->src = w;
    st->m = cd->m, st->c = cd->c, st->ks = cd->ks;
    st->base.replaces = cd->ks > 1 || any_plane ? (uint64_t)1 << 1 : 0;
    if (wino && gpux__conv_wino_takes(wino)) {
      st->base.rereads = st->base.replaces;
    } else if (!conv_pack_from(st, w->data)) {
      free(st);
      return NULL;
    }
    st = (conv_weights_state *)gpux__state_keep(k, &st->base);
  }
  if (!st || st->base.destroy != conv_weights_free || st->src != w || st->c != cd->c || st->ks != cd->ks ||
      st->m != cd->m)
    return NULL;
  return st;
}

/* The node's packed weights (conv_weights), or NULL. */
static const gpux__sgemm_b *conv_gemm_weights(gpux__kctx *k, const conv_dims *cd, int any_plane) {
  conv_weights_state *st = conv_weights(k, cd, any_plane, NULL);
  return st ? conv_packed(st) : NULL;
}

/* The node's weights transformed for conv-winograd.c (from W, or from the packed weights where W
 * may be gone), made on the first run that p takes that kernel; NULL where it does not take p or
 * memory is short. */
static const gpux__conv_wino_w *conv_wino_weights(conv_weights_state *st, const gpux__conv2d *p) {
  int tile = gpux__conv_wino_tile(p);
  if (!tile) return NULL;
  gpux__conv_wino_w *u = atomic_load(&st->wino), *none = NULL;
  if (u) return u;
  const void *w = conv_rereads(st);
  const gpux__sgemm_b *pk = w ? NULL : atomic_load(&st->packed);
  if (!(u = gpux__calloc(1, sizeof *u))) return NULL;
  if (gpux__conv_wino_pack(w, pk, p->c, p->m, tile, u)) {
    free(u);
    return NULL;
  }
  if (!atomic_compare_exchange_strong(&st->wino, &none, u)) { /* another run made them first */
    gpux__conv_wino_free(u), free(u);
    return none;
  }
  st->base.bytes += (size_t)((tile + 2) * (tile + 2) * u->panels * u->c * 64) * sizeof(float);
  return u;
}

/* float32 Conv. All threads are the pool's: depthwise planes, or tiles of output positions that
 * each do their own im2col and single-threaded sgemm (so the tile's columns stay in cache). */
static int conv_f32_scaled(gpux__kctx *k, const conv_dims *cd, const float *x, const float *w, const float *b,
                           float *y, const gpux__conv_epilogue *ep);

static int conv_f32(gpux__kctx *k, const conv_dims *cd, const float *x, const float *w, const float *b,
                    float *y, const gpux__conv_epilogue *ep) {
  if (cd->xs) return conv_f32_scaled(k, cd, x, w, b, y, ep);
  conv_job j = {.cd = cd, .x = x, .w = w, .b = b, .y = y, .ep = ep};
  atomic_init(&j.failed, 0);
  int taken = conv_windows(k, cd, x, b, y, ep);
  if (taken <= 0) return taken;
  if (cd->w.nsp <= 2) { /* the direct kernels (conv-direct.c), where the machine has them */
    const gpux__window *win = &cd->w;
    gpux__conv2d p = {.x = x, .w = w, .b = b, .y = y, .n = cd->n, .c = cd->c, .m = cd->m, .g = cd->g,
                      .h = win->in[1], .w_ = win->in[2], .kh = win->k[1], .kw = win->k[2],
                      .oh = win->out[1], .ow = win->out[2], .sh = win->s[1], .sw = win->s[2],
                      .dh = win->d[1], .dw = win->d[2], .pt = win->pb[1], .pl = win->pb[2], .ep = ep};
    const gpux__sgemm_b *packed = conv_gemm_weights(k, cd, 0);
    int rc = packed ? gpux__conv2d_gemm(&p, packed)
             : cd->cg == 1 && cd->g > 1 ? gpux__conv2d_depthwise(&p) : gpux__conv2d_implicit(&p);
    if (rc < 0) return gpux__kerr(k, rc, "%s", gpux_last_error());
    if (rc == 0) return 0;
  }
  if (cd->cg == 1 && cd->g > 1) {
    int64_t grain = GPUX__MAX(1, 65536 / (cd->os * cd->ks + 1));
    gpux__parallel_for(cd->n * cd->m, grain, conv_depthwise_planes, &j);
    return 0;
  }
  int64_t kg = cd->cg * cd->ks, threads = gpux__thread_count();
  if (blas_fits(k, cd->mg, cd->os, kg)) return k->status;
  j.pointwise = cd->ks == 1;
  for (int i = 0; i < GPUX_WIN_DIMS; i++)
    if (cd->w.s[i] != 1 || cd->w.pb[i] || cd->w.pe[i]) j.pointwise = 0;
  /* tile: at most 2 MB of columns, about two tasks per thread, at least ~128K MACs each */
  int64_t tile = j.pointwise ? cd->os : GPUX__MAX(1, ((int64_t)1 << 19) / GPUX__MAX(kg, 1));
  int64_t per_task = (cd->n * cd->g * cd->os + 2 * threads - 1) / (2 * threads);
  int64_t min_tile = GPUX__MAX(16, 131072 / (cd->mg * kg + 1));
  tile = GPUX__MIN(tile, GPUX__MAX(per_task, min_tile));
  j.tile = GPUX__MAX(1, GPUX__MIN(tile, cd->os));
  j.tiles = (cd->os + j.tile - 1) / j.tile;
  gpux__parallel_for_blas(cd->n * cd->g * j.tiles, 1, conv_tile_range, &j);
  if (atomic_load(&j.failed)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory for a column buffer");
  return 0;
}

/* ---- a squeeze-excitation's scale of X (input 6, x_scale) ----
 * runtime/channels-last.c folds Mul(X, s), s [N, C, 1, 1], into the one FusedConv that reads
 * its product: Conv(X * s, W) = Conv(X, W * s), W's input channel c scaled by s[c], for each
 * image. With one image whose weights are few against X's values, they are scaled, into the
 * calling thread's scratch, and X is read as it is: no pass over X at all (EfficientNet-B0's
 * 144 x 56 x 56 excitation into 24 channels: 3.5K weights, 451K values of X). Otherwise X is
 * scaled into scratch, the pass the Mul made. */

/* The weights are scaled where they are at most 1 / SCALE_W_AT_MOST of X's values: they come
 * from memory (a model's weights pass the caches from one run to the next), and a pass over them
 * before the product, which would stream them as it computes, costs about what the Mul saves
 * where they are as many as X's values (MobileNetV3's 672-112@14 as a test, 86K packed weights
 * and 131K values: 0.20 -> 0.24 ms, the Mul 0.025). */
#define SCALE_W_AT_MOST 4

/* d[i] = x[i] * f for i < n. */
VECTORIZE static void scale_run(float *restrict d, const float *restrict x, int64_t n, float f) {
  for (int64_t i = 0; i < n; i++) d[i] = x[i] * f;
}

/* d[i] = x[i] * s[i] for i < n. */
VECTORIZE static void mul_run(float *restrict d, const float *restrict x, const float *restrict s, int64_t n) {
  for (int64_t i = 0; i < n; i++) d[i] = x[i] * s[i];
}

typedef struct {
  const float *x, *s;       /* X [planes][is], s [planes] */
  float *d;                 /* [planes][is] */
  int64_t is;
} scale_job;

static void scale_planes(void *ctx, int64_t begin, int64_t end) {
  const scale_job *j = ctx;
  for (int64_t q = begin; q < end; q++) scale_run(j->d + q * j->is, j->x + q * j->is, j->is, j->s[q]);
}

/* X [N, C, spatial] times s [N, C] into scratch, on the pool (as the Mul would run). */
static float *scale_x(const float *x, const float *s, int64_t n, int64_t c, int64_t is) {
  float *d = gpux__scratch(GPUX__SCRATCH_CONV_SCALED, (size_t)(n * c * is) * sizeof *d);
  if (!d) return NULL;
  scale_job j = {x, s, d, is};
  gpux__parallel_for_work(n * c, (double)(n * c) * (double)is, scale_planes, &j);
  return d;
}

/* conv_f32 with cd->xs: the weights or X scaled, then the convolution as usual. */
static int conv_f32_scaled(gpux__kctx *k, const conv_dims *cd, const float *x, const float *w, const float *b,
                           float *y, const gpux__conv_epilogue *ep) {
  conv_dims plain = *cd;
  plain.xs = NULL;
  /* packed weights, which W may have been let go for, are many against X where conv.c packs them */
  const gpux__sgemm_b *packed = conv_gemm_weights(k, cd, 0);
  if (!packed && w && cd->n == 1 && cd->g == 1 && SCALE_W_AT_MOST * cd->m * cd->c * cd->ks <= cd->c * cd->is) {
    float *ws = gpux__scratch(GPUX__SCRATCH_CONV_SCALED, (size_t)(cd->m * cd->c * cd->ks) * sizeof *ws);
    if (!ws) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    for (int64_t m = 0; m < cd->m; m++)
      if (cd->ks == 1)
        mul_run(ws + m * cd->c, w + m * cd->c, cd->xs, cd->c);
      else
        for (int64_t c = 0; c < cd->c; c++)
          scale_run(ws + (m * cd->c + c) * cd->ks, w + (m * cd->c + c) * cd->ks, cd->ks, cd->xs[c]);
    plain.no_pack = 1;
    return conv_f32(k, &plain, x, ws, b, y, ep);
  }
  float *xc = scale_x(x, cd->xs, cd->n, cd->c, cd->is);
  if (!xc) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  return conv_f32(k, &plain, xc, w, b, y, ep);
}

/* FusedConv's input 6: x_scale, N * C floats, into cd->xs. */
static int read_x_scale(gpux__kctx *k, conv_dims *cd) {
  const gpux_tensor *s = IN(6);
  if (!s) return 0;
  if (s->dtype != GPUX_DT_FLOAT || gpux_tensor_count(s) != cd->n * cd->c)
    return gpux__kerr(k, GPUX_E_SHAPE, "x_scale must be float32 of %lld values (N x C)", (long long)(cd->n * cd->c));
  cd->xs = s->data;
  return 0;
}

/* float64: a plain direct convolution, one output plane per task. */
typedef struct {
  const conv_dims *cd;
  const double *x, *w, *b;
  double *y;
} conv64_job;

static void conv_f64_planes(void *ctx, int64_t begin, int64_t end) {
  const conv64_job *j = ctx;
  const conv_dims *cd = j->cd;
  const gpux__window *w = &cd->w;
  for (int64_t plane = begin; plane < end; plane++) {
    int64_t n = plane / cd->m, m = plane % cd->m, g = m / cd->mg;
    double *yp = j->y + plane * cd->os;
    for (int64_t od = 0; od < w->out[0]; od++)
      for (int64_t oh = 0; oh < w->out[1]; oh++)
        for (int64_t ow = 0; ow < w->out[2]; ow++) {
          double acc = j->b ? j->b[m] : 0.0;
          for (int64_t c = 0; c < cd->cg; c++) {
            const double *xc = j->x + (n * cd->c + g * cd->cg + c) * cd->is;
            const double *wc = j->w + (m * cd->cg + c) * cd->ks;
            for (int64_t kd = 0; kd < w->k[0]; kd++) {
              int64_t id = od * w->s[0] - w->pb[0] + kd * w->d[0];
              if (id < 0 || id >= w->in[0]) continue;
              for (int64_t kh = 0; kh < w->k[1]; kh++) {
                int64_t ih = oh * w->s[1] - w->pb[1] + kh * w->d[1];
                if (ih < 0 || ih >= w->in[1]) continue;
                for (int64_t kw = 0; kw < w->k[2]; kw++) {
                  int64_t iw = ow * w->s[2] - w->pb[2] + kw * w->d[2];
                  if (iw < 0 || iw >= w->in[2]) continue;
                  acc += xc[(id * w->in[1] + ih) * w->in[2] + iw] * wc[(kd * w->k[1] + kh) * w->k[2] + kw];
                }
              }
            }
          }
          yp[(od * w->out[1] + oh) * w->out[2] + ow] = acc;
        }
  }
}

/* Conv, and FusedConv when ep is not NULL (float32 only). */
static int conv_op(gpux__kctx *k, const gpux__conv_epilogue *ep) {
  const gpux_tensor *x = IN(0), *w = IN(1), *b = IN(2);
  conv_dims cd;
  if (conv_setup(k, x, w, b, &cd)) return k->status;
  if (!is_conv_float(x->dtype) || (ep && x->dtype != GPUX_DT_FLOAT))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s on %s", k->node->op_type, gpux_dtype_name(x->dtype));
  if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
    return gpux__kerr(k, GPUX_E_DTYPE, "X, W and B must share a dtype");
  int64_t dims[GPUX_MAX_DIMS];
  gpux__window_out_dims(&cd.w, cd.n, cd.m, dims);
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, x->ndim, dims); /* every path writes all of Y */
  if (!y) return k->status;
  if (k->shape_only || gpux_tensor_count(y) == 0) return 0;
  gpux__conv_epilogue with_res;
  if (ep && ep->res) with_res = *ep, with_res.y0 = y->data, ep = &with_res;
  if (ep && x->dtype == GPUX_DT_FLOAT && read_x_scale(k, &cd)) return k->status;
  if (x->dtype == GPUX_DT_FLOAT)
    return conv_f32(k, &cd, x->data, w->data, b ? b->data : NULL, y->data, ep ? ep : &no_epilogue);
  if (x->dtype == GPUX_DT_DOUBLE) {
    conv64_job j = {&cd, x->data, w->data, b ? b->data : NULL, y->data};
    gpux__parallel_for(cd.n * cd.m, 1, conv_f64_planes, &j);
    return 0;
  }
  float *xf = gpux__widen_f32(x), *wf = gpux__widen_f32(w), *bf = b ? gpux__widen_f32(b) : NULL;
  float *yf = gpux__malloc((size_t)gpux_tensor_count(y) * sizeof *yf);
  int rc = xf && wf && yf && (!b || bf) ? conv_f32(k, &cd, xf, wf, bf, yf, &no_epilogue)
                                        : gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  if (!rc) gpux__narrow_f32(y->dtype, y->data, yf, gpux_tensor_count(y));
  free(xf); free(wf); free(bf); free(yf);
  return rc;
}

static int op_conv(gpux__kctx *k) { return conv_op(k, NULL); }

/* gpux.FusedConv, which runtime/optimize.c makes of a Conv and the nodes after it: Conv's inputs
 * X, W, B and attributes, plus
 *   activation         "" (none), Relu, LeakyRelu, Clip, HardSigmoid, HardSwish or Sigmoid
 *   activation_params  LeakyRelu: alpha; Clip: min, max; HardSigmoid: alpha, beta
 *   clamp              (optional) [lo, hi] applied after the activation
 *   inputs 3 and 4     (optional) post_scale and post_bias, float32 [M]
 *   input 5            (optional) a residual R added before the activation (numpy broadcasting)
 *   input 6            (optional) x_scale, float32 [N, C, 1, 1]: X's scale per image and channel
 *                      (a squeeze-excitation's Mul, folded in by runtime/channels-last.c)
 * Y = clamp(act(Conv(X * x_scale, W) + B (+ R))) * post_scale + post_bias. */
/* The activation and clamp of an epilogue from the attributes `prefix`activation,
 * `prefix`activation_params and `prefix`clamp, prefix "" or "expand_" (expand). Every run of
 * every FusedConv reads them, so the names are constants: formatting them cost a small model's
 * dozens of FusedConvs microseconds a run. */
static int read_activation(gpux__kctx *k, int expand, gpux__conv_epilogue *ep) {
  static const char *const names[] = {"", "Relu", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "Silu"};
  const char *an = expand ? "expand_activation" : "activation";
  const char *pn = expand ? "expand_activation_params" : "activation_params";
  const char *cn = expand ? "expand_clamp" : "clamp";
  *ep = (gpux__conv_epilogue){.act = GPUX_EP_NONE};
  const char *act = gpux__attr_string(k, an, "");
  while (ep->act < (int)GPUX__ARRAY_LEN(names) && strcmp(names[ep->act], act)) ep->act++;
  if (ep->act == (int)GPUX__ARRAY_LEN(names)) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "activation '%s'", act);
  const float *p;
  int np = gpux__attr_floats(k, pn, &p);
  if (np != (ep->act == GPUX_EP_LEAKY ? 1 : ep->act == GPUX_EP_CLIP || ep->act == GPUX_EP_HARDSIGMOID ? 2 : 0))
    return gpux__kerr(k, GPUX_E_INVALID, "activation %s with %d parameters", act, np);
  if (np > 0) ep->p0 = p[0];
  if (np > 1) ep->p1 = p[1];
  const float *cl;
  int ncl = gpux__attr_floats(k, cn, &cl);
  if (ncl && ncl != 2) return gpux__kerr(k, GPUX_E_INVALID, "clamp takes 2 values, not %d", ncl);
  if (ncl) ep->clamp = 1, ep->lo = cl[0], ep->hi = cl[1];
  return 0;
}

/* FusedConv's and FusedConvTranspose's epilogue from the node: `m` output channels. */
static int read_epilogue(gpux__kctx *k, int64_t m, gpux__conv_epilogue *ep) {
  if (read_activation(k, 0, ep)) return k->status;
  const gpux_tensor *ps = IN(3), *pb = IN(4);
  if (!ps != !pb) return gpux__kerr(k, GPUX_E_INVALID, "post_scale and post_bias go together");
  if (ps) {
    if (ps->dtype != GPUX_DT_FLOAT || pb->dtype != GPUX_DT_FLOAT || gpux_tensor_count(ps) != m ||
        gpux_tensor_count(pb) != m)
      return gpux__kerr(k, GPUX_E_SHAPE, "post_scale and post_bias must be float32 [%lld]", (long long)m);
    ep->scale = ps->data, ep->shift = pb->data;
  }
  return 0;
}

/* FusedConv with a residual R (input 5) that does not have the convolution's shape: the
 * convolution and bias, then Y = that + R with numpy broadcasting and the rest of the epilogue
 * over Y, channels on the convolution's axis 1, in a second pass. */
static int fused_conv_broadcast(gpux__kctx *k, const gpux__conv_epilogue *ep, const gpux_tensor *r) {
  gpux__conv_epilogue first = {.act = GPUX_EP_NONE};
  if (conv_op(k, &first)) return k->status;
  if (r->dtype != GPUX_DT_FLOAT) return gpux__kerr(k, GPUX_E_DTYPE, "residual must be float32");
  const gpux_tensor *yc = k->out[0];
  if (!yc) return 0;
  int cn = yc->ndim;
  int64_t odims[GPUX_MAX_DIMS];
  int nout;
  if (gpux__broadcast_shape(yc->ndim, yc->dims, r->ndim, r->dims, &nout, odims))
    return gpux__kerr(k, GPUX_E_SHAPE, "residual does not broadcast with the convolution's output");
  if (k->shape_only) return gpux__out_raw(k, 0, GPUX_DT_FLOAT, nout, odims) ? 0 : k->status;
  gpux_tensor t;
  if (gpux_tensor_copy(&t, yc)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  gpux_tensor *y = gpux__out_raw(k, 0, GPUX_DT_FLOAT, nout, odims);
  if (!y) {
    gpux_tensor_free(&t);
    return k->status;
  }
  /* each operand's stride along each of Y's axes (0 where it broadcasts) */
  int64_t ts[GPUX_MAX_DIMS], rs[GPUX_MAX_DIMS], st = 1, sr = 1;
  for (int d = nout - 1; d >= 0; d--) {
    int dt = d - (nout - t.ndim), dr = d - (nout - r->ndim);
    ts[d] = dt >= 0 && t.dims[dt] != 1 ? st : 0;
    rs[d] = dr >= 0 && r->dims[dr] != 1 ? sr : 0;
    if (dt >= 0) st *= t.dims[dt];
    if (dr >= 0) sr *= r->dims[dr];
  }
  float *yd = y->data;
  const float *td = t.data, *rd = r->data;
  int64_t count = gpux_tensor_count(y), idx[GPUX_MAX_DIMS] = {0}, ot = 0, orr = 0;
  for (int64_t i = 0; i < count; i++) {
    yd[i] = td[ot] + rd[orr];
    for (int d = nout - 1; d >= 0; d--) {
      ot += ts[d], orr += rs[d];
      if (++idx[d] < odims[d]) break;
      ot -= ts[d] * odims[d], orr -= rs[d] * odims[d], idx[d] = 0;
    }
  }
  gpux_tensor_free(&t);
  gpux__conv_epilogue rest = *ep;
  rest.res = NULL;
  int ca = nout - cn + 1; /* the convolution's channel axis in Y */
  int64_t plane = 1;
  for (int d = ca + 1; d < nout; d++) plane *= odims[d];
  if (count > 0 && plane > 0)
    for (int64_t p = 0; p < count / plane; p++)
      gpux__conv_finish(yd + p * plane, 0, yd + p * plane, 0, 1, plane, 0.0f, &rest, p % odims[ca]);
  return 0;
}

static int op_fused_conv(gpux__kctx *k) {
  gpux__conv_epilogue ep;
  const gpux_tensor *w = IN(1), *x = IN(0), *r = IN(5);
  if (read_epilogue(k, w && w->ndim > 0 ? w->dims[0] : -1, &ep)) return k->status;
  if (!r) return conv_op(k, &ep);
  /* the residual: read in the epilogue where it has Y's shape, else added in a second pass */
  conv_dims cd;
  if (!x || !w || conv_setup(k, x, w, IN(2), &cd)) return k->status;
  int64_t dims[GPUX_MAX_DIMS];
  gpux__window_out_dims(&cd.w, cd.n, cd.m, dims);
  if (r->dtype != GPUX_DT_FLOAT || r->ndim != x->ndim || memcmp(r->dims, dims, (size_t)x->ndim * sizeof *dims))
    return fused_conv_broadcast(k, &ep, r);
  ep.res = r->data; /* conv_op sets ep.y0 */
  return conv_op(k, &ep);
}

/* ---- gpux.ExpandDepthwise ---- */

/* gpux.ExpandDepthwise, which runtime/fuse-expand-dw.c makes of an inverted residual block's 1x1
 * expansion (Conv or FusedConv of one group, stride 1, no pads) and the depthwise Conv or
 * FusedConv that alone reads its output:
 *   input 0            X [N, C, H, W], the expansion's input
 *   inputs 1 and 2     the depthwise convolution's W [M, 1, kh, kw] and B [M] (optional)
 *   inputs 3 and 4     the expansion's W [M, C, 1, 1] and B [M] (optional)
 *   attributes         the depthwise convolution's (kernel_shape, strides, pads, dilations,
 *                      group, activation, activation_params, clamp), and the expansion's
 *                      expand_activation, expand_activation_params, expand_clamp
 * Y = dw(act_e(Conv1x1(X, W_e) + B_e)): the same values as the two nodes, computed per strip of
 * Y's rows without writing the expansion out (conv-depthwise.c). */
static int op_expand_dw(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *w = IN(1), *b = IN(2), *we = IN(3), *be = IN(4);
  if (!x || !w || !we) return gpux__kerr(k, GPUX_E_INVALID, "ExpandDepthwise needs X, W and the expansion's W");
  if (x->dtype != GPUX_DT_FLOAT || w->dtype != GPUX_DT_FLOAT || we->dtype != GPUX_DT_FLOAT ||
      (b && b->dtype != GPUX_DT_FLOAT) || (be && be->dtype != GPUX_DT_FLOAT))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "ExpandDepthwise on float32 only");
  if (x->ndim != 4 || we->ndim != 4 || we->dims[1] != x->dims[1] || we->dims[2] != 1 || we->dims[3] != 1 ||
      (be && gpux_tensor_count(be) != we->dims[0]))
    return gpux__kerr(k, GPUX_E_SHAPE, "ExpandDepthwise: X [N, C, H, W] and a 1x1 expansion [M, C, 1, 1]");
  gpux__conv_epilogue ep, epe;
  if (read_activation(k, 0, &ep) || read_activation(k, 1, &epe)) return k->status;
  gpux_tensor xe = *x; /* the expansion's output, as the depthwise convolution's X (shape only) */
  xe.dims[1] = we->dims[0], xe.data = NULL;
  conv_dims cd;
  if (conv_setup(k, &xe, w, b, &cd)) return k->status;
  if (cd.g != cd.c || cd.m != cd.c)
    return gpux__kerr(k, GPUX_E_SHAPE, "ExpandDepthwise's second convolution is not depthwise");
  int64_t dims[GPUX_MAX_DIMS];
  gpux__window_out_dims(&cd.w, cd.n, cd.m, dims);
  gpux_tensor *y = gpux__out_raw(k, 0, GPUX_DT_FLOAT, 4, dims);
  if (!y) return k->status;
  if (k->shape_only || gpux_tensor_count(y) == 0) return 0;
  const gpux__window *win = &cd.w;
  gpux__conv2d pe = {.x = x->data, .w = we->data, .b = be ? be->data : NULL, .n = cd.n, .c = x->dims[1], .m = cd.c,
                     .g = 1, .h = win->in[1], .w_ = win->in[2], .kh = 1, .kw = 1, .oh = win->in[1], .ow = win->in[2],
                     .sh = 1, .sw = 1, .dh = 1, .dw = 1, .ep = &epe};
  gpux__conv2d pd = {.w = w->data, .b = b ? b->data : NULL, .y = y->data, .n = cd.n, .c = cd.c, .m = cd.m, .g = cd.g,
                     .h = win->in[1], .w_ = win->in[2], .kh = win->k[1], .kw = win->k[2], .oh = win->out[1],
                     .ow = win->out[2], .sh = win->s[1], .sw = win->s[2], .dh = win->d[1], .dw = win->d[2],
                     .pt = win->pb[1], .pl = win->pb[2], .ep = &ep};
  int rc = gpux__conv2d_expand_dw(&pe, &pd);
  if (rc == 1) { /* a shape the fused kernel does not take: the expansion written out, then read */
    float *t = gpux__malloc((size_t)(cd.n * cd.c * cd.is) * sizeof *t);
    if (!t) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    pe.y = t, pd.x = t;
    rc = gpux__conv2d_implicit(&pe);
    if (rc == 0 && (rc = gpux__conv2d_depthwise16(&pd)) == 1) rc = gpux__conv2d_depthwise(&pd);
    free(t);
    if (rc == 1) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "ExpandDepthwise has no kernel on this machine");
  }
  if (rc < 0) return gpux__kerr(k, rc, "%s", gpux_last_error());
  return 0;
}

/* ---- gpux.ConvNHWC ---- */

/* A depthwise gpux.ConvNHWC's W interleaved once for conv-depthwise.c's channels-last kernel
 * (gpux__conv_dw_pack), kept in the node's state, where each run interleaved it again on the
 * calling thread before the kernel's job (MobileNetV3's 960 channels of 5 x 5: 24K floats a run
 * that no other thread could share). W stays: the planes' way reads it. */
typedef struct {
  gpux__node_state base;
  const gpux_tensor *src;           /* the weights (an initializer) */
  int64_t c, taps;                  /* W [c, taps] */
  float *wk;                        /* [gpux__conv_dw_packed_floats(c, taps)], 64-byte aligned */
} dw_weights_state;

static void dw_weights_free(gpux__node_state *s) {
  dw_weights_state *st = (dw_weights_state *)s;
  free(st->wk);
  free(st);
}

/* The node's W interleaved (made on its first run), or NULL: no state kept for the node, W not an
 * initializer, no such kernel here, memory short. */
static const float *dw_weights(gpux__kctx *k, const gpux_tensor *w, int64_t c, int64_t taps) {
  if (!k->state || !(k->const_in >> 1 & 1) || !w->data || w->dtype != GPUX_DT_FLOAT) return NULL;
  dw_weights_state *st = (dw_weights_state *)gpux__state_get(k);
  if (!st) {
    size_t bytes = (size_t)gpux__conv_dw_packed_floats(c, taps) * sizeof(float);
    if (!(st = gpux__calloc(1, sizeof *st))) return NULL;
    if (!(st->wk = aligned_alloc(64, bytes)) || gpux__conv_dw_pack(w->data, c, taps, st->wk)) {
      free(st->wk), free(st);
      return NULL;
    }
    st->base.destroy = dw_weights_free;
    st->base.bytes = bytes;
    st->src = w, st->c = c, st->taps = taps;
    st = (dw_weights_state *)gpux__state_keep(k, &st->base);
  }
  if (!st || st->base.destroy != dw_weights_free || st->src != w || st->c != c || st->taps != taps) return NULL;
  return st->wk;
}

/* dst[n][c][q] = src[n][q][c] for q < hw (to_planes), or the other way round. */
static void swap_layout(const float *src, float *dst, int64_t n, int64_t hw, int64_t c, int to_planes) {
  for (int64_t b = 0; b < n; b++, src += hw * c, dst += hw * c)
    for (int64_t q = 0; q < hw; q++)
      for (int64_t ch = 0; ch < c; ch++) {
        if (to_planes) dst[ch * hw + q] = src[q * c + ch];
        else dst[q * c + ch] = src[ch * hw + q];
      }
}

/* sums[(i * oh + r) * m + ch] = the sum over positions q < ow of y[((i * oh + r) * ow + q) * m + ch],
 * in double and in position order: what conv-depthwise.c's channels-last kernel makes as it
 * finishes each output row (the same bits), for the kernels that do not. */
static void row_sums_of(const float *y, int64_t n, int64_t oh, int64_t ow, int64_t m, double *sums) {
  for (int64_t row = 0; row < n * oh; row++) {
    double *s = sums + row * m;
    for (int64_t ch = 0; ch < m; ch++) s[ch] = 0.0;
    for (int64_t q = 0; q < ow; q++)
      for (int64_t ch = 0; ch < m; ch++) s[ch] += y[(row * ow + q) * m + ch];
  }
}

/* The convolution of op_conv_nhwc into y, with the epilogue ep (its residual of Y's shape); with
 * row_sums, Y's row sums [n, oh, m] where conv-depthwise.c's kernel made them (*summed set). */
static int conv_nhwc_run(gpux__kctx *k, const conv_dims *cd, const gpux_tensor *x, const gpux_tensor *w,
                         const float *bd, gpux_tensor *y, gpux__conv_epilogue *ep, int x_planes, double *row_sums,
                         int *summed) {
  const gpux__window *win = &cd->w;
  gpux__conv2d p = {.x = x->data, .w = w->data, .b = bd, .y = y->data, .n = cd->n, .c = cd->c, .m = cd->m,
                    .g = cd->g, .h = win->in[1], .w_ = win->in[2], .kh = win->k[1], .kw = win->k[2],
                    .oh = win->out[1], .ow = win->out[2], .sh = win->s[1], .sw = win->s[2],
                    .dh = win->d[1], .dw = win->d[2], .pt = win->pb[1], .pl = win->pb[2], .ep = ep,
                    .channels_last = 1, .x_planes = x_planes > 0, .xs = cd->xs};
  conv_weights_state *st = conv_weights(k, cd, x_planes ? 2 : 1, x_planes > 0 ? NULL : &p);
  /* conv-winograd.c's transformed weights where it takes p, else the packed ones */
  const gpux__conv_wino_w *u = st && x_planes <= 0 && !cd->xs ? conv_wino_weights(st, &p) : NULL;
  const gpux__sgemm_b *packed = st && !u ? conv_packed(st) : NULL;
  if (x_planes > 0) { /* X [N, C, H, W]: conv-rows.c reads it so; else its channels-last copy (-1) */
    int rc = packed && cd->w.nsp == 2 ? gpux__conv2d_rows(&p, packed) : 1;
    if (rc < 0) return gpux__kerr(k, rc, "%s", gpux_last_error());
    if (rc == 0) return 0;
    gpux_tensor xc = *x;
    xc.dims[1] = x->dims[2], xc.dims[2] = x->dims[3], xc.dims[3] = x->dims[1];
    if (!(xc.data = gpux__malloc((size_t)gpux_tensor_count(x) * sizeof(float))))
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    swap_layout(x->data, xc.data, cd->n, cd->is, cd->c, 0);
    rc = conv_nhwc_run(k, cd, &xc, w, bd, y, ep, -1, NULL, NULL);
    free(xc.data);
    return rc;
  }
  int dw = cd->g > 1 && cd->cg == 1 && cd->m == cd->c && cd->w.nsp == 2 && w->data;
  if (dw && !cd->xs) p.wk = dw_weights(k, w, cd->c, win->k[1] * win->k[2]);
  if (u || packed || dw) {
    /* X's scale: conv-gemm.c's product alone takes it (on 1 x 1 windows), else the planes' way */
    int rc = u ? gpux__conv2d_winograd(&p, u) : 1;
    if (rc > 0 && st && !packed) packed = conv_packed(st); /* declined after all */
    if (rc > 0 && packed) rc = gpux__conv2d_gemm(&p, packed);
    else if (rc > 0 && dw && !cd->xs) {
      p.row_sums = row_sums; /* conv-depthwise.c's kernel adds up Y's rows as it finishes them */
      rc = gpux__conv2d_depthwise_nhwc(&p);
      if (rc == 0 && row_sums) *summed = 1;
    }
    if (rc < 0) return gpux__kerr(k, rc, "%s", gpux_last_error());
    if (rc == 0) return 0;
  }
  if (!w->data || (uintptr_t)w->data % sizeof(float)) /* let go (or the file's bytes in their place) */
    return gpux__kerr(k, GPUX_E_INTERNAL, "ConvNHWC: the weights were let go");
  /* the planes' way */
  int64_t xn = gpux_tensor_count(x), yn = gpux_tensor_count(y);
  float *xc = gpux__malloc((size_t)xn * sizeof *xc), *yc = gpux__malloc((size_t)yn * sizeof *yc);
  float *rc_ = ep->res ? gpux__malloc((size_t)yn * sizeof *rc_) : NULL;
  int rc = 0;
  if (!xc || !yc || (ep->res && !rc_)) {
    rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  } else {
    swap_layout(x->data, xc, cd->n, cd->is, cd->c, 1);
    if (ep->res) swap_layout(ep->res, rc_, cd->n, cd->os, cd->m, 1), ep->res = rc_, ep->y0 = yc;
    rc = conv_f32(k, cd, xc, w->data, bd, yc, ep);
    if (!rc) swap_layout(yc, y->data, cd->n, cd->os, cd->m, 0);
  }
  free(xc); free(yc); free(rc_);
  return rc;
}

/* gpux.ConvNHWC, which runtime/channels-last.c makes of a Conv or FusedConv of one group, or
 * depthwise (one input and output channel a group), on 2 spatial dims inside a region of
 * activations kept channels last: FusedConv's inputs and attributes, with X [N, H, W, C], Y and
 * the residual R (input 5) [N, OH, OW, M] (R may have dims of 1 that broadcast: then added in a
 * second pass); W stays [M, C / group, KH, KW]. float32 only. It runs on conv-gemm.c's kernel or
 * conv-depthwise.c's channels-last one, which read and write that layout; where they do not take
 * it, X and R are turned into planes, the NCHW kernels run and Y is turned back. With x_planes=1
 * (a region's first convolution, of few input channels) X is [N, C, H, W], read so by
 * conv-rows.c, whose register blocks write Y's channels-last rows. Input 6, x_scale [N, C, 1, 1]
 * (a squeeze-excitation's Mul in the region, folded in by runtime/channels-last.c), scales X per
 * image and channel: conv-gemm.c scales the rows of X each task reads, once each, as the Mul
 * would have (the same products); other kernels run the planes' way (FusedConv's x_scale). */
static int op_conv_nhwc(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *w = IN(1), *b = IN(2), *r = IN(5);
  if (!x || !w) return gpux__kerr(k, GPUX_E_INVALID, "inputs X and W are required");
  if (x->ndim != 4 || w->ndim != 4)
    return gpux__kerr(k, GPUX_E_SHAPE, "ConvNHWC takes X and W of rank 4, not %d and %d", x->ndim, w->ndim);
  if (x->dtype != GPUX_DT_FLOAT || w->dtype != GPUX_DT_FLOAT || (b && b->dtype != GPUX_DT_FLOAT))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "ConvNHWC on %s", gpux_dtype_name(x->dtype));
  int x_planes = gpux__attr_int(k, "x_planes", 0) != 0;
  gpux_tensor xp = *x; /* X's dims as NCHW, for the window */
  if (!x_planes) xp.dims[1] = x->dims[3], xp.dims[2] = x->dims[1], xp.dims[3] = x->dims[2];
  conv_dims cd;
  if (conv_setup(k, &xp, w, b, &cd)) return k->status;
  gpux__conv_epilogue ep;
  if (read_epilogue(k, cd.m, &ep)) return k->status;
  if (read_x_scale(k, &cd)) return k->status;
  if (cd.xs && x_planes) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "ConvNHWC takes no x_scale (input 6) with x_planes");
  int64_t dims[4] = {cd.n, cd.w.out[1], cd.w.out[2], cd.m};
  int bcast = 0; /* a residual with dims of 1 where Y's are larger, added in a second pass */
  if (r && (r->dtype != GPUX_DT_FLOAT || r->ndim != 4))
    return gpux__kerr(k, GPUX_E_SHAPE, "ConvNHWC's residual must be float32 of rank 4");
  for (int d = 0; r && d < 4; d++)
    if (r->dims[d] != dims[d]) {
      if (r->dims[d] != 1) return gpux__kerr(k, GPUX_E_SHAPE, "ConvNHWC's residual does not broadcast to Y");
      bcast = 1;
    }
  gpux_tensor *y = gpux__out_raw(k, 0, GPUX_DT_FLOAT, 4, dims);
  if (!y) return k->status;
  /* output 1: Y's row sums [N, OH, M], float64 (runtime/channels-last.c asks for them for a
   * GlobalAveragePool of Y: gpux.GlobalAveragePoolNHWC's input 1) */
  int64_t rdims[3] = {cd.n, dims[1], cd.m};
  gpux_tensor *sums = OUTPUT_WANTED(1) ? gpux__out_raw(k, 1, GPUX_DT_DOUBLE, 3, rdims) : NULL;
  if (OUTPUT_WANTED(1) && !sums) return k->status;
  if (k->shape_only || gpux_tensor_count(y) == 0) {
    if (sums && !k->shape_only && gpux_tensor_count(sums) > 0)
      memset(sums->data, 0, (size_t)gpux_tensor_count(sums) * sizeof(double));
    return 0;
  }
  gpux__conv_epilogue rest = ep;
  if (bcast) ep = (gpux__conv_epilogue){.act = GPUX_EP_NONE}, rest.res = NULL;
  else if (r) ep.res = r->data, ep.y0 = y->data;
  int summed = 0;
  if (conv_nhwc_run(k, &cd, x, w, b ? b->data : NULL, y, &ep, x_planes, sums && !bcast ? sums->data : NULL, &summed))
    return k->status;
  if (!bcast) {
    if (sums && !summed) row_sums_of(y->data, cd.n, dims[1], dims[2], cd.m, sums->data);
    return 0;
  }
  /* Y = rest(conv + B + R), R read with a stride of 0 along its dims of 1 */
  float *yd = y->data;
  const float *rd = r->data;
  int64_t rs[4], st = 1;
  for (int d = 3; d >= 0; d--) rs[d] = r->dims[d] == 1 ? 0 : st, st *= r->dims[d];
  for (int64_t i0 = 0, q = 0; i0 < dims[0]; i0++)
    for (int64_t i1 = 0; i1 < dims[1]; i1++)
      for (int64_t i2 = 0; i2 < dims[2]; i2++, q++)
        for (int64_t i3 = 0; i3 < dims[3]; i3++)
          yd[q * dims[3] + i3] += rd[i0 * rs[0] + i1 * rs[1] + i2 * rs[2] + i3 * rs[3]];
  gpux__conv_finish_nhwc(yd, cd.m, dims[0] * dims[1] * dims[2], 0, cd.m, NULL, &rest);
  if (sums) row_sums_of(yd, cd.n, dims[1], dims[2], cd.m, sums->data);
  return 0;
}

/* ---- ConvTranspose ---- */

/* Checks X (N, C, spatial), W (C, M/group, kernel), B (M) and computes the output extents and
 * pads from pads, output_padding, output_shape and auto_pad. cd->w.in are X's extents. */
static int convt_setup(gpux__kctx *k, const gpux_tensor *x, const gpux_tensor *w, const gpux_tensor *b,
                       conv_dims *cd) {
  if (!x || !w) return gpux__kerr(k, GPUX_E_INVALID, "inputs X and W are required");
  if (x->ndim < 3 || w->ndim != x->ndim)
    return gpux__kerr(k, GPUX_E_SHAPE, "X has rank %d and W rank %d: expected equal ranks of at least 3",
                      x->ndim, w->ndim);
  memset(cd, 0, sizeof *cd);
  cd->g = gpux__attr_int(k, "group", 1);
  cd->n = x->dims[0], cd->c = x->dims[1];
  if (cd->g < 1 || cd->c % cd->g || w->dims[0] != cd->c)
    return gpux__kerr(k, GPUX_E_SHAPE, "X has %lld channels and W %lld: inconsistent with group %lld",
                      (long long)cd->c, (long long)w->dims[0], (long long)cd->g);
  cd->m = w->dims[1] * cd->g;
  if (b && (b->ndim != 1 || b->dims[0] != cd->m))
    return gpux__kerr(k, GPUX_E_SHAPE, "B must have shape (%lld)", (long long)cd->m);
  gpux__window *win = &cd->w;
  if (gpux__window_read(k, x, w->dims + 2, win)) return k->status;
  int nsp = win->nsp, off = GPUX_WIN_DIMS - nsp;
  for (int i = 0; i < nsp; i++)
    if (win->k[off + i] != w->dims[2 + i])
      return gpux__kerr(k, GPUX_E_SHAPE, "kernel_shape does not match W's spatial dims");
  const int64_t *opad, *oshape;
  int nop = gpux__attr_ints(k, "output_padding", &opad), nos = gpux__attr_ints(k, "output_shape", &oshape);
  if (nop && nop != nsp)
    return gpux__kerr(k, GPUX_E_INVALID, "output_padding has %d values for %d spatial dims", nop, nsp);
  if (nos == nsp + 2) oshape += 2, nos = nsp; /* a full N, C, spatial shape */
  if (nos && nos != nsp)
    return gpux__kerr(k, GPUX_E_INVALID, "output_shape has %d values for %d spatial dims", nos, nsp);
  int ap = read_auto_pad(k);
  if (ap < 0) return k->status;
  for (int i = 0; i < nsp; i++) {
    int s = off + i;
    int64_t ek = (win->k[s] - 1) * win->d[s] + 1, op = nop ? opad[i] : 0;
    int64_t full = win->s[s] * (win->in[s] - 1) + op + ek; /* output extent with no padding */
    if (nos || ap == 1 || ap == 2) {
      win->out[s] = nos ? oshape[i] : win->in[s] * win->s[s];
      int64_t total = full - win->out[s];
      win->pb[s] = ap == 1 ? floor_div(total, 2) : total - floor_div(total, 2);
      win->pe[s] = total - win->pb[s];
    } else {
      if (ap == 3) win->pb[s] = win->pe[s] = 0;
      win->out[s] = full - win->pb[s] - win->pe[s];
    }
    if (win->out[s] < 0)
      return gpux__kerr(k, GPUX_E_SHAPE, "negative output extent %lld", (long long)win->out[s]);
  }
  conv_sizes(cd);
  return 0;
}

/* col2im of one tile of input positions [p0, p1): Y_g[m] += col[(m, kd, kh, kw)][p - p0] at the
 * output position each input position and tap lands on. Tasks are output channels. */
typedef struct {
  const conv_dims *cd;
  const float *col;     /* [mg * ks, p1 - p0] */
  float *y;             /* one group's output [mg, os] */
  int64_t p0, p1;
} col2im_job;

static void col2im_channels(void *ctx, int64_t m0, int64_t m1) {
  const col2im_job *j = ctx;
  const gpux__window *w = &j->cd->w;
  int64_t t = j->p1 - j->p0;
  for (int64_t m = m0; m < m1; m++) {
    float *ym = j->y + m * j->cd->os;
    for (int64_t kk = 0; kk < j->cd->ks; kk++) {
      int64_t kw = kk % w->k[2], kh = kk / w->k[2] % w->k[1], kd = kk / (w->k[2] * w->k[1]);
      const float *src = j->col + (m * j->cd->ks + kk) * t;
      int64_t xoff = kw * w->d[2] - w->pb[2], lo, hi;
      valid_range(xoff, w->s[2], w->out[2], w->in[2], &lo, &hi);
      int64_t p = j->p0, iw = p % w->in[2], ih = p / w->in[2] % w->in[1];
      int64_t id = p / (w->in[2] * w->in[1]);
      while (p < j->p1) {
        int64_t run = GPUX__MIN(w->in[2] - iw, j->p1 - p);
        int64_t od = id * w->s[0] - w->pb[0] + kd * w->d[0];
        int64_t oh = ih * w->s[1] - w->pb[1] + kh * w->d[1];
        if (od >= 0 && od < w->out[0] && oh >= 0 && oh < w->out[1]) {
          float *yr = ym + (od * w->out[1] + oh) * w->out[2];
          int64_t a = GPUX__MAX(iw, lo), e = GPUX__MIN(iw + run, hi);
          for (int64_t i = a; i < e; i++) yr[i * w->s[2] + xoff] += src[i - iw];
        }
        src += run;
        p += run;
        iw = 0;
        if (++ih == w->in[1]) ih = 0, id++;
      }
    }
  }
}

/* One image n and group g of a ConvTranspose: col[mg*ks, is] = W_g^T x X_g, then col2im. */
static void convt_group(conv_job *j, int64_t task, float *col) {
  const conv_dims *cd = j->cd;
  int64_t n = task / cd->g, g = task % cd->g, rows = cd->mg * cd->ks;
  const float *xg = j->x + (n * cd->c + g * cd->cg) * cd->is;   /* [cg, is] */
  const float *wg = j->w + g * cd->cg * rows;                   /* [cg, mg * ks] */
  float *yg = j->y + (n * cd->m + g * cd->mg) * cd->os;         /* [mg, os] */
  for (int64_t p0 = 0; p0 < cd->is; p0 += j->tile) {
    int64_t p1 = GPUX__MIN(cd->is, p0 + j->tile), t = p1 - p0;
    gpux__gemm mm = {.trans_a = 1, .m = rows, .n = t, .k = cd->cg, .alpha = 1, .beta = 0,
                     .a = wg, .lda = rows, .b = xg + p0, .ldb = cd->is, .c = col, .ldc = t};
    if (j->split_gemm) gpux__gemm_parallel(&mm);
    else gpux__gemm_serial(&mm);
    col2im_job cj = {cd, col, yg, p0, p1};
    gpux__parallel_for(cd->mg, 1, col2im_channels, &cj);
  }
}

static void convt_group_range(void *ctx, int64_t begin, int64_t end) {
  conv_job *j = ctx;
  float *col = scratch_f32((size_t)(j->cd->mg * j->cd->ks * j->tile));
  if (!col) {
    atomic_store(&j->failed, 1);
    return;
  }
  for (int64_t t = begin; t < end; t++) convt_group(j, t, col);
}

/* ConvTranspose whose kernel tiles the output (2-D, kernel = stride, no padding, no dilation):
 * every input position lands on its own kh x kw block of Y, so Y is the 1x1 convolution of X
 * with W^T (per group [mg * kh * kw, cg]) on the direct kernels, interleaved into place with the
 * bias and epilogue. 1 when the shape is not one of these. */
typedef struct {
  const conv_dims *cd;
  const float *col;     /* [n, m, kh, kw, in1, in2] */
  const float *b;
  float *y;             /* [n, m, out1, out2] */
  const gpux__conv_epilogue *ep;
} convt_block_job;

static void convt_block_planes(void *ctx, int64_t begin, int64_t end) {
  const convt_block_job *j = ctx;
  const gpux__window *w = &j->cd->w;
  int64_t kh = w->k[1], kw = w->k[2], ih_ = w->in[1], iw_ = w->in[2], ow_ = w->out[2];
  for (int64_t plane = begin; plane < end; plane++) {
    int64_t m = plane % j->cd->m;
    const float *src = j->col + plane * kh * kw * j->cd->is; /* [kh, kw, in1, in2] */
    float *yp = j->y + plane * j->cd->os;
    for (int64_t ih = 0; ih < ih_; ih++)
      for (int64_t i = 0; i < kh; i++) {
        float *yr = yp + (ih * kh + i) * ow_;
        for (int64_t jj = 0; jj < kw; jj++) {
          const float *sr = src + ((i * kw + jj) * ih_ + ih) * iw_;
          for (int64_t iw = 0; iw < iw_; iw++) yr[iw * kw + jj] = sr[iw];
        }
        gpux__conv_finish(yr, 0, yr, 0, 1, ow_, j->b ? j->b[m] : 0.0f, j->ep, m);
      }
  }
}

static int convt_blocks(gpux__kctx *k, const conv_dims *cd, const float *x, const float *w, const float *b,
                        float *y, const gpux__conv_epilogue *ep) {
  const gpux__window *win = &cd->w;
  if (win->nsp > 2 || !gpux__conv_direct_available()) return 1;
  for (int s = 1; s < GPUX_WIN_DIMS; s++)
    if (win->k[s] != win->s[s] || win->d[s] != 1 || win->pb[s] || win->pe[s] || win->out[s] != win->in[s] * win->s[s])
      return 1;
  int64_t ks = win->k[1] * win->k[2], rows = cd->mg * ks; /* per group */
  float *buf = gpux__scratch(GPUX__SCRATCH_CONVT,
                             (size_t)(cd->g * rows * cd->cg + cd->n * cd->m * ks * cd->is) * sizeof *buf);
  if (!buf) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory for ConvTranspose");
  float *wt = buf, *col = buf + cd->g * rows * cd->cg;
  /* wt[g][(mi, i, j)][c] = W[g * cg + c][mi][i][j] */
  for (int64_t g = 0; g < cd->g; g++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cd->cg; c++) wt[(g * rows + r) * cd->cg + c] = w[(g * cd->cg + c) * rows + r];
  gpux__conv2d p = {.x = x, .w = wt, .b = NULL, .y = col, .n = cd->n, .c = cd->c, .m = cd->g * rows, .g = cd->g,
                    .h = win->in[1], .w_ = win->in[2], .kh = 1, .kw = 1, .oh = win->in[1], .ow = win->in[2],
                    .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pt = 0, .pl = 0, .ep = &no_epilogue};
  int rc = gpux__conv2d_implicit(&p);
  if (rc < 0) return gpux__kerr(k, rc, "%s", gpux_last_error());
  if (rc) return 1;
  convt_block_job j = {cd, col, b, y, ep};
  gpux__parallel_for(cd->n * cd->m, GPUX__MAX(1, 32768 / (cd->os + 1)), convt_block_planes, &j);
  return 0;
}

static int convt_f32(gpux__kctx *k, const conv_dims *cd, const float *x, const float *w, const float *b,
                     float *y, const gpux__conv_epilogue *ep) {
  if (cd->cg > 0) {
    int rc = convt_blocks(k, cd, x, w, b, y, ep);
    if (rc <= 0) return rc;
  }
  memset(y, 0, (size_t)(cd->n * cd->m * cd->os) * sizeof *y); /* col2im adds into Y */
  conv_job j = {.cd = cd, .x = x, .w = w, .b = b, .y = y};
  atomic_init(&j.failed, 0);
  int64_t rows = cd->mg * cd->ks, tasks = cd->n * cd->g;
  if (blas_fits(k, rows, cd->is, cd->cg)) return k->status;
  int parallel = tasks > 1 && tasks >= gpux__thread_count();
  int64_t budget = parallel ? (int64_t)1 << 19 : (int64_t)1 << 21; /* column floats */
  j.tile = GPUX__MAX(1, GPUX__MIN(cd->is, budget / GPUX__MAX(rows, 1)));
  j.split_gemm = !parallel;
  if (cd->is > 0 && rows > 0 && cd->cg > 0) {
    if (parallel) {
      gpux__parallel_for_blas(tasks, 1, convt_group_range, &j);
    } else {
      float *col = scratch_f32((size_t)(rows * j.tile));
      if (!col) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory for the column buffer");
      for (int64_t t = 0; t < tasks; t++) convt_group(&j, t, col);
    }
  }
  if (atomic_load(&j.failed)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory for a column buffer");
  if (b || ep->act != GPUX_EP_NONE || ep->clamp || ep->scale) {
    bias_job bj = {b, y, cd->m, cd->os, ep};
    gpux__parallel_for(cd->n * cd->m, GPUX__MAX(1, 65536 / (cd->os + 1)), finish_planes, &bj);
  }
  return 0;
}

/* float64: each output element gathers the input positions and taps that land on it. */
static void convt_f64_planes(void *ctx, int64_t begin, int64_t end) {
  const conv64_job *j = ctx;
  const conv_dims *cd = j->cd;
  const gpux__window *w = &cd->w;
  for (int64_t plane = begin; plane < end; plane++) {
    int64_t n = plane / cd->m, m = plane % cd->m, g = m / cd->mg, mi = m % cd->mg;
    double *yp = j->y + plane * cd->os;
    for (int64_t od = 0; od < w->out[0]; od++)
      for (int64_t oh = 0; oh < w->out[1]; oh++)
        for (int64_t ow = 0; ow < w->out[2]; ow++) {
          double acc = j->b ? j->b[m] : 0.0;
          for (int64_t kd = 0; kd < w->k[0]; kd++) {
            int64_t nd = od + w->pb[0] - kd * w->d[0];
            if (nd < 0 || nd % w->s[0] || nd / w->s[0] >= w->in[0]) continue;
            for (int64_t kh = 0; kh < w->k[1]; kh++) {
              int64_t nh = oh + w->pb[1] - kh * w->d[1];
              if (nh < 0 || nh % w->s[1] || nh / w->s[1] >= w->in[1]) continue;
              for (int64_t kw = 0; kw < w->k[2]; kw++) {
                int64_t nw = ow + w->pb[2] - kw * w->d[2];
                if (nw < 0 || nw % w->s[2] || nw / w->s[2] >= w->in[2]) continue;
                int64_t ip = (nd / w->s[0] * w->in[1] + nh / w->s[1]) * w->in[2] + nw / w->s[2];
                int64_t kp = (kd * w->k[1] + kh) * w->k[2] + kw;
                for (int64_t c = 0; c < cd->cg; c++) {
                  int64_t ci = g * cd->cg + c;
                  acc += j->x[(n * cd->c + ci) * cd->is + ip] * j->w[(ci * cd->mg + mi) * cd->ks + kp];
                }
              }
            }
          }
          yp[(od * w->out[1] + oh) * w->out[2] + ow] = acc;
        }
  }
}

/* ConvTranspose, and FusedConvTranspose when ep is not NULL (float32 only). */
static int convt_op(gpux__kctx *k, const gpux__conv_epilogue *ep) {
  const gpux_tensor *x = IN(0), *w = IN(1), *b = IN(2);
  conv_dims cd;
  if (convt_setup(k, x, w, b, &cd)) return k->status;
  if (!is_conv_float(x->dtype) || (ep && x->dtype != GPUX_DT_FLOAT))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s on %s", k->node->op_type, gpux_dtype_name(x->dtype));
  if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
    return gpux__kerr(k, GPUX_E_DTYPE, "X, W and B must share a dtype");
  int64_t dims[GPUX_MAX_DIMS];
  gpux__window_out_dims(&cd.w, cd.n, cd.m, dims);
  /* float32 writes all of Y (convt_f32 zeroes it where col2im adds up); the rest accumulates */
  gpux_tensor *y = (x->dtype == GPUX_DT_FLOAT ? gpux__out_raw : gpux__out)(k, 0, x->dtype, x->ndim, dims);
  if (!y) return k->status;
  if (k->shape_only || gpux_tensor_count(y) == 0) return 0;
  if (x->dtype == GPUX_DT_FLOAT)
    return convt_f32(k, &cd, x->data, w->data, b ? b->data : NULL, y->data, ep ? ep : &no_epilogue);
  if (x->dtype == GPUX_DT_DOUBLE) {
    conv64_job j = {&cd, x->data, w->data, b ? b->data : NULL, y->data};
    gpux__parallel_for(cd.n * cd.m, 1, convt_f64_planes, &j);
    return 0;
  }
  float *xf = gpux__widen_f32(x), *wf = gpux__widen_f32(w), *bf = b ? gpux__widen_f32(b) : NULL;
  float *yf = gpux__calloc((size_t)gpux_tensor_count(y), sizeof *yf);
  int rc = xf && wf && yf && (!b || bf) ? convt_f32(k, &cd, xf, wf, bf, yf, &no_epilogue)
                                        : gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  if (!rc) gpux__narrow_f32(y->dtype, y->data, yf, gpux_tensor_count(y));
  free(xf); free(wf); free(bf); free(yf);
  return rc;
}

static int op_conv_transpose(gpux__kctx *k) { return convt_op(k, NULL); }

/* gpux.FusedConvTranspose (runtime/optimize.c): ConvTranspose's inputs and attributes with
 * FusedConv's activation, activation_params, post_scale and post_bias. */
static int op_fused_conv_transpose(gpux__kctx *k) {
  gpux__conv_epilogue ep;
  const gpux_tensor *w = IN(1);
  if (read_epilogue(k, w && w->ndim > 1 ? w->dims[1] * gpux__attr_int(k, "group", 1) : -1, &ep)) return k->status;
  return convt_op(k, &ep);
}

/* ---- DeformConv ---- */

/* Bilinear sample of plane[h, w] at (y, x), zero outside. */
static double bilinear(const double *plane, int64_t h, int64_t w, double y, double x) {
  if (!(y > -1.0 && y < (double)h && x > -1.0 && x < (double)w)) return 0.0; /* also NaN */
  double y0f = floor(y), x0f = floor(x);
  int64_t y0 = (int64_t)y0f, x0 = (int64_t)x0f;
  double fy = y - y0f, fx = x - x0f, v = 0;
  for (int dy = 0; dy < 2; dy++) {
    int64_t yy = y0 + dy;
    if (yy < 0 || yy >= h) continue;
    double wy = dy ? fy : 1 - fy;
    for (int dx = 0; dx < 2; dx++) {
      int64_t xx = x0 + dx;
      if (xx < 0 || xx >= w) continue;
      v += wy * (dx ? fx : 1 - fx) * plane[yy * w + xx];
    }
  }
  return v;
}

typedef struct {
  const conv_dims *cd;
  const double *x, *offset, *mask;
  double *col;          /* [c * ks, os] for one image */
  int64_t n, og;        /* image, offset groups */
} deform_job;

/* Fills the columns of input channels [c0, c1): sampled values times the mask. */
static void deform_im2col(void *ctx, int64_t c0, int64_t c1) {
  const deform_job *j = ctx;
  const conv_dims *cd = j->cd;
  const gpux__window *w = &cd->w;
  int64_t ks = cd->ks, os = cd->os, cpg = cd->c / j->og;
  for (int64_t c = c0; c < c1; c++) {
    int64_t grp = c / cpg;
    const double *plane = j->x + (j->n * cd->c + c) * cd->is;
    const double *off = j->offset + (j->n * j->og + grp) * ks * 2 * os;   /* [ks, 2, os] */
    const double *msk = j->mask ? j->mask + (j->n * j->og + grp) * ks * os : NULL;
    for (int64_t kk = 0; kk < ks; kk++) {
      int64_t kh = kk / w->k[2], kw = kk % w->k[2];
      double *dst = j->col + (c * ks + kk) * os;
      for (int64_t oh = 0; oh < w->out[1]; oh++)
        for (int64_t ow = 0; ow < w->out[2]; ow++) {
          int64_t p = oh * w->out[2] + ow;
          double yy = (double)(oh * w->s[1] - w->pb[1] + kh * w->d[1]) + off[(kk * 2) * os + p];
          double xx = (double)(ow * w->s[2] - w->pb[2] + kw * w->d[2]) + off[(kk * 2 + 1) * os + p];
          double v = bilinear(plane, w->in[1], w->in[2], yy, xx);
          dst[p] = msk ? v * msk[kk * os + p] : v;
        }
    }
  }
}

static int op_deform_conv(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *w = IN(1), *off = IN(2), *b = IN(3), *mask = IN(4);
  if (!off) return gpux__kerr(k, GPUX_E_INVALID, "DeformConv needs the offset input");
  conv_dims cd;
  if (conv_setup(k, x, w, b, &cd)) return k->status;
  if (cd.w.nsp != 2) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "DeformConv on %d spatial dims (2 supported)", cd.w.nsp);
  if (!is_conv_float(x->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "DeformConv on %s", gpux_dtype_name(x->dtype));
  if (w->dtype != x->dtype || off->dtype != x->dtype || (b && b->dtype != x->dtype) || (mask && mask->dtype != x->dtype))
    return gpux__kerr(k, GPUX_E_DTYPE, "DeformConv inputs must share a dtype");
  int64_t og = gpux__attr_int(k, "offset_group", 1);
  if (og < 1 || cd.c % og) return gpux__kerr(k, GPUX_E_SHAPE, "offset_group %lld does not divide %lld channels", (long long)og, (long long)cd.c);
  int64_t oh = cd.w.out[1], ow = cd.w.out[2];
  if (off->ndim != 4 || off->dims[0] != cd.n || off->dims[1] != og * cd.ks * 2 || off->dims[2] != oh || off->dims[3] != ow)
    return gpux__kerr(k, GPUX_E_SHAPE, "offset must have shape (%lld, %lld, %lld, %lld)", (long long)cd.n,
                      (long long)(og * cd.ks * 2), (long long)oh, (long long)ow);
  if (mask && (mask->ndim != 4 || mask->dims[0] != cd.n || mask->dims[1] != og * cd.ks || mask->dims[2] != oh || mask->dims[3] != ow))
    return gpux__kerr(k, GPUX_E_SHAPE, "mask must have shape (%lld, %lld, %lld, %lld)", (long long)cd.n,
                      (long long)(og * cd.ks), (long long)oh, (long long)ow);
  int64_t dims[GPUX_MAX_DIMS];
  gpux__window_out_dims(&cd.w, cd.n, cd.m, dims);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, dims);
  if (!y) return k->status;
  if (k->shape_only || gpux_tensor_count(y) == 0) return 0;
  if (blas_fits(k, cd.mg, cd.os, cd.cg * cd.ks)) return k->status;
  int64_t ycount = gpux_tensor_count(y);
  double *xd = gpux__widen_f64(x), *wd = gpux__widen_f64(w), *od = gpux__widen_f64(off);
  double *md = mask ? gpux__widen_f64(mask) : NULL, *bd = b ? gpux__widen_f64(b) : NULL;
  double *col = gpux__malloc((size_t)(cd.c * cd.ks * cd.os) * sizeof *col);
  double *yd = gpux__malloc((size_t)ycount * sizeof *yd);
  int rc = 0;
  if (!xd || !wd || !od || (mask && !md) || (b && !bd) || !col || !yd) {
    rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  } else {
    int64_t kg = cd.cg * cd.ks;
    for (int64_t n = 0; n < cd.n; n++) {
      deform_job j = {&cd, xd, od, md, col, n, og};
      gpux__parallel_for(cd.c, 1, deform_im2col, &j);
      for (int64_t g = 0; g < cd.g; g++) {
        gpux__gemm mm = {.dbl = 1, .m = cd.mg, .n = cd.os, .k = kg, .alpha = 1, .beta = 0,
                         .a = wd + g * cd.mg * kg, .lda = kg, .b = col + g * kg * cd.os, .ldb = cd.os,
                         .c = yd + (n * cd.m + g * cd.mg) * cd.os, .ldc = cd.os};
        gpux__gemm_parallel(&mm);
      }
    }
    for (int64_t i = 0; i < ycount; i++) {
      double v = yd[i] + (bd ? bd[i / cd.os % cd.m] : 0.0);
      if (y->dtype == GPUX_DT_FLOAT) ((float *)y->data)[i] = (float)v;
      else gpux__store_f64(y->dtype, y->data, i, v);
    }
  }
  free(xd); free(wd); free(od); free(md); free(bd); free(col); free(yd);
  return rc;
}

/* ---- CausalConvWithState ---- */

/* y[b, c, t] = act(bias[c] + sum_k w[c, 0, k] * seq[t + k]) with seq = past_state ++ x along the
 * length; present_state = the last kernel - 1 positions of seq. */
typedef struct {
  const double *x, *w, *bias, *past;
  double *y, *present;
  int64_t c, len, kern;
  int silu;
  int dtype;            /* the output dtype: the convolution is rounded to it before the SiLU */
} causal_job;

static double round_to(int dtype, double v) {
  if (dtype == GPUX_DT_FLOAT) return (float)v;
  if (dtype == GPUX_DT_FLOAT16) return gpux__f16_to_f32(gpux__f32_to_f16((float)v));
  if (dtype == GPUX_DT_BFLOAT16) return gpux__bf16_to_f32(gpux__f32_to_bf16((float)v));
  return v;
}

static void causal_rows(void *ctx, int64_t begin, int64_t end) {
  const causal_job *j = ctx;
  int64_t km1 = j->kern - 1;
  for (int64_t r = begin; r < end; r++) {
    int64_t ch = r % j->c;
    const double *wk = j->w + ch * j->kern;         /* [kern] */
    const double *xr = j->x + r * j->len;           /* [len] */
    const double *pr = j->past ? j->past + r * km1 : NULL; /* [kern - 1] */
    for (int64_t t = 0; t < j->len; t++) {
      double acc = j->bias ? j->bias[ch] : 0.0;
      for (int64_t i = 0; i < j->kern; i++) {
        int64_t q = t + i; /* position in seq = past ++ x */
        double v = q >= km1 ? xr[q - km1] : pr ? pr[q] : 0.0;
        acc += wk[i] * v;
      }
      if (j->silu) {
        acc = round_to(j->dtype, acc);
        acc = acc / (1.0 + exp(-acc));
      }
      j->y[r * j->len + t] = acc;
    }
    for (int64_t i = 0; i < km1; i++) { /* the last kern - 1 positions of seq */
      int64_t q = j->len + i;
      j->present[r * km1 + i] = q >= km1 ? xr[q - km1] : pr ? pr[q] : 0.0;
    }
  }
}

static int op_causal_conv_with_state(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *w = IN(1), *bias = IN(2), *past = IN(3);
  if (!x || !w) return gpux__kerr(k, GPUX_E_INVALID, "inputs input and weight are required");
  if (!is_conv_float(x->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "CausalConvWithState on %s", gpux_dtype_name(x->dtype));
  if (w->dtype != x->dtype || (bias && bias->dtype != x->dtype) || (past && past->dtype != x->dtype))
    return gpux__kerr(k, GPUX_E_DTYPE, "inputs must share a dtype");
  if (x->ndim != 3) return gpux__kerr(k, GPUX_E_SHAPE, "input must be (batch, channels, length)");
  int64_t nb = x->dims[0], c = x->dims[1], len = x->dims[2];
  if (w->ndim != 3 || w->dims[0] != c || w->dims[1] != 1 || w->dims[2] < 1)
    return gpux__kerr(k, GPUX_E_SHAPE, "weight must be (%lld, 1, kernel)", (long long)c);
  int64_t kern = w->dims[2];
  if (bias && (bias->ndim != 1 || bias->dims[0] != c))
    return gpux__kerr(k, GPUX_E_SHAPE, "bias must be (%lld)", (long long)c);
  if (past && (past->ndim != 3 || past->dims[0] != nb || past->dims[1] != c || past->dims[2] != kern - 1))
    return gpux__kerr(k, GPUX_E_SHAPE, "past_state must be (%lld, %lld, %lld)", (long long)nb,
                      (long long)c, (long long)(kern - 1));
  const char *act = gpux__attr_string(k, "activation", "none");
  int silu = !strcmp(act, "silu") || !strcmp(act, "swish");
  if (!silu && strcmp(act, "none") && act[0])
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "activation '%s'", act);
  int64_t sdims[3] = {nb, c, kern - 1};
  gpux_tensor *y = gpux__out(k, 0, x->dtype, 3, x->dims);
  if (!y) return k->status;
  gpux_tensor *ps = gpux__out(k, 1, x->dtype, 3, sdims);
  if (!ps) return k->status;
  if (k->shape_only) return 0;
  int64_t ny = gpux_tensor_count(y), nps = gpux_tensor_count(ps);
  causal_job j = {.c = c, .len = len, .kern = kern, .silu = silu, .dtype = x->dtype};
  double *xd = gpux__widen_f64(x), *wd = gpux__widen_f64(w), *bd = bias ? gpux__widen_f64(bias) : NULL;
  double *pd = past ? gpux__widen_f64(past) : NULL;
  double *yd = gpux__malloc((size_t)(ny > 0 ? ny : 1) * sizeof *yd);
  double *sd = gpux__malloc((size_t)(nps > 0 ? nps : 1) * sizeof *sd);
  int rc = 0;
  if (!xd || !wd || (bias && !bd) || (past && !pd) || !yd || !sd) {
    rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  } else {
    j.x = xd, j.w = wd, j.bias = bd, j.past = pd, j.y = yd, j.present = sd;
    gpux__parallel_for(nb * c, GPUX__MAX(1, 16384 / ((len + 1) * kern)), causal_rows, &j);
    for (int64_t i = 0; i < ny; i++) gpux__store_f64(y->dtype, y->data, i, yd[i]);
    for (int64_t i = 0; i < nps; i++) gpux__store_f64(ps->dtype, ps->data, i, sd[i]);
  }
  free(xd); free(wd); free(bd); free(pd); free(yd); free(sd);
  return rc;
}

/* ---- Col2Im ---- */

#define COL2IM_DIMS (GPUX_MAX_DIMS - 2)

static int op_col2im(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *ishape = IN(1), *bshape = IN(2);
  if (!x || !ishape || !bshape)
    return gpux__kerr(k, GPUX_E_INVALID, "Col2Im needs input, image_shape and block_shape");
  if (gpux__need_data(k, 1) || gpux__need_data(k, 2)) return k->status;
  int64_t img[COL2IM_DIMS], blk[COL2IM_DIMS];
  int nsp = gpux__read_ints(k, ishape, img, COL2IM_DIMS);
  if (nsp < 0) return nsp;
  int nb = gpux__read_ints(k, bshape, blk, COL2IM_DIMS);
  if (nb < 0) return nb;
  if (nsp < 1 || nb != nsp)
    return gpux__kerr(k, GPUX_E_SHAPE, "image_shape has %d values and block_shape %d", nsp, nb);
  if (x->ndim != 3) return gpux__kerr(k, GPUX_E_SHAPE, "input must be (N, C * prod(block_shape), L)");
  const int64_t *st, *dl, *pd;
  int ns = gpux__attr_ints(k, "strides", &st), nd = gpux__attr_ints(k, "dilations", &dl);
  int np = gpux__attr_ints(k, "pads", &pd);
  if ((ns && ns != nsp) || (nd && nd != nsp) || (np && np != 2 * nsp))
    return gpux__kerr(k, GPUX_E_INVALID, "strides, dilations or pads do not match %d spatial dims", nsp);
  int64_t s[COL2IM_DIMS], d[COL2IM_DIMS], pb[COL2IM_DIMS], nblk[COL2IM_DIMS], ks = 1, L = 1;
  for (int i = 0; i < nsp; i++) {
    s[i] = ns ? st[i] : 1;
    d[i] = nd ? dl[i] : 1;
    pb[i] = np ? pd[i] : 0;
    int64_t pe = np ? pd[nsp + i] : 0;
    if (s[i] < 1 || d[i] < 1 || blk[i] < 1 || img[i] < 0 || pb[i] < 0 || pe < 0)
      return gpux__kerr(k, GPUX_E_INVALID, "bad stride, dilation, pad, block or image extent");
    int64_t span = img[i] + pb[i] + pe - (d[i] * (blk[i] - 1) + 1);
    nblk[i] = span < 0 ? 0 : span / s[i] + 1;
    ks *= blk[i];
    L *= nblk[i];
  }
  if (x->dims[1] % ks || x->dims[2] != L)
    return gpux__kerr(k, GPUX_E_SHAPE, "input is (%lld, %lld, %lld): expected C * %lld rows and %lld blocks",
                      (long long)x->dims[0], (long long)x->dims[1], (long long)x->dims[2], (long long)ks, (long long)L);
  int64_t c = x->dims[1] / ks, dims[GPUX_MAX_DIMS] = {x->dims[0], c};
  for (int i = 0; i < nsp; i++) dims[2 + i] = img[i];
  gpux_tensor *y = gpux__out(k, 0, x->dtype, nsp + 2, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t isz = gpux__shape_count(nsp, img), ycount = gpux_tensor_count(y);
  double *xd = gpux__widen_f64(x), *yd = gpux__calloc((size_t)(ycount > 0 ? ycount : 1), sizeof *yd);
  if (!xd || !yd) {
    free(xd); free(yd);
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
  for (int64_t plane = 0; plane < x->dims[0] * c; plane++) {
    double *yp = yd + plane * isz;
    for (int64_t kk = 0; kk < ks; kk++) {
      const double *src = xd + (plane * ks + kk) * L;
      int64_t koff[COL2IM_DIMS], rem = kk;
      for (int i = nsp - 1; i >= 0; i--) koff[i] = rem % blk[i], rem /= blk[i];
      for (int64_t l = 0; l < L; l++) {
        int64_t pos = 0, r = l, inside = 1, idx[COL2IM_DIMS];
        for (int i = nsp - 1; i >= 0; i--) idx[i] = r % nblk[i], r /= nblk[i];
        for (int i = 0; i < nsp && inside; i++) {
          int64_t q = idx[i] * s[i] - pb[i] + koff[i] * d[i];
          if (q < 0 || q >= img[i]) inside = 0;
          pos = pos * img[i] + q;
        }
        if (inside) yp[pos] += src[l];
      }
    }
  }
  for (int64_t i = 0; i < ycount; i++) gpux__store_f64(y->dtype, y->data, i, yd[i]);
  free(xd); free(yd);
  return 0;
}

const gpux__op_def gpux__ops_conv[] = {
  {"", "Conv", op_conv, 1, 0},
  {"gpux", "FusedConv", op_fused_conv, 1, 0},
  {"gpux", "ConvNHWC", op_conv_nhwc, 1, 0},
  {"gpux", "ExpandDepthwise", op_expand_dw, 1, 0},
  {"", "ConvTranspose", op_conv_transpose, 1, 0},
  {"gpux", "FusedConvTranspose", op_fused_conv_transpose, 1, 0},
  {"", "DeformConv", op_deform_conv, 19, 0},
  {"", "CausalConvWithState", op_causal_conv_with_state, 1, 0},
  {"", "Col2Im", op_col2im, 18, 0},
  {0},
};
