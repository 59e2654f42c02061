/* conv-depthwise.c — float32 depthwise convolution (one input and one output channel per group)
 * on AVX-512, checked at run time (conv-direct.c's AVX2 kernel runs elsewhere). Outputs 32 wide
 * or wider (24 for 5 x 5 windows) with column stride 1 or 2 go by rows of 16-output vectors
 * (below; 3 x 3 windows four output rows at a time and 5 x 5 ones two, each input vector loaded
 * once for every row it reaches; windows of stride 2 read X's rows as they are, the even and odd
 * columns parted in registers). The rest go 16
 * channels at a time: the 16 channels of a task's strip of input rows are interleaved, padded,
 * into scratch, [row][col][16] (a 16 x 16 transpose per block of 16 columns, transpose16.h), so
 * every tap of every output position is one vector FMA over the 16 channels with the tap's 16
 * weights: no lanes are wasted on small planes (7 x 7) or by strides, and no kernel row is a
 * special case at the borders. FusedConv's epilogue runs on the sums, [position][16], before
 * they are transposed back into Y's planes (after, where it adds a residual read at Y's place).
 *
 * Tasks are (image, block of 16 channels, strip of output rows); a strip's input (its rows plus
 * the kernel's halo) is at most about 96 KB, so it stays in L2 while each of its rows is read once
 * per kernel row. gpux.ConvNHWC's channels-last activations need no interleaving: its kernel
 * (below) reads X and writes Y in place, 16 channels of a position a vector. */
#include "core/scratch.h"
#include "ops/conv.h"
#include <stdatomic.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/conv-epilogue16.h"
#include "ops/transpose16.h"
#define DW16 1
#define TARGET512 __attribute__((target("avx512f,fma")))
#else
#define DW16 0
#endif

#if DW16

int gpux__conv_dw16_available(void) {
  static atomic_int ok = -1;
  int v = atomic_load_explicit(&ok, memory_order_relaxed);
  if (v < 0) {
    /* GPUX_CONV_DIRECT=avx2 keeps the AVX2 kernels, =0 conv.c's loops, for comparisons */
    const char *env = getenv("GPUX_CONV_DIRECT");
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") &&
        !(env && (!strcmp(env, "avx2") || !strcmp(env, "0")));
    atomic_store_explicit(&ok, v, memory_order_relaxed);
  }
  return v;
}

/* dst[j * 16 + c] = src[c * lds + j] for j < n, c < nc (lanes c >= nc are 0): nc rows of n floats
 * interleaved. */
TARGET512 static void interleave16(const float *src, int64_t lds, int nc, int64_t n, float *dst) {
  __m512 r[16];
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    int64_t left = n - j0;
    __mmask16 mk = gpux__lanes16(left);
    for (int c = 0; c < 16; c++) r[c] = c < nc ? _mm512_maskz_loadu_ps(mk, src + c * lds + j0) : _mm512_setzero_ps();
    gpux__transpose16(r);
    for (int64_t j = 0; j < 16 && j < left; j++) _mm512_store_ps(dst + (j0 + j) * 16, r[j]);
  }
}

/* dst[c * ldd + j] = src[j * 16 + c] for j < n, c < nc: the inverse. */
TARGET512 static void deinterleave16(const float *src, int64_t n, int nc, float *dst, int64_t ldd) {
  __m512 r[16];
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    int64_t left = n - j0;
    __mmask16 mk = gpux__lanes16(left);
    for (int j = 0; j < 16; j++) r[j] = j < left ? _mm512_load_ps(src + (j0 + j) * 16) : _mm512_setzero_ps();
    gpux__transpose16(r);
    for (int c = 0; c < nc; c++) _mm512_mask_storeu_ps(dst + c * ldd + j0, mk, r[c]);
  }
}

/* FusedConv's epilogue on sums [np][16] of channels c0 + lane (nc of them) as they are: each lane
 * its channel's bias, scale and shift. */
TARGET512 static void finish_interleaved(float *sums, int64_t np, int nc, int64_t c0, const gpux__conv2d *p) {
  const gpux__conv_epilogue *e = p->ep;
  __mmask16 mc = gpux__lanes16(nc);
  __m512 vb = p->b ? _mm512_maskz_loadu_ps(mc, p->b + c0) : _mm512_setzero_ps();
  __m512 vs = e->scale ? _mm512_maskz_loadu_ps(mc, e->scale + c0) : _mm512_set1_ps(1.0f);
  __m512 vt = e->scale ? _mm512_maskz_loadu_ps(mc, e->shift + c0) : _mm512_setzero_ps();
  gpux__ep16_run(sums, sums, NULL, np * 16, vb, vs, vt, e);
}

/* The kernel rows [*i0, *i1) of output row oh that read rows of X, not padding (the others add
 * only zeros: on planes a few rows high, most of a 5 x 5 window). */
static inline void live_rows(const gpux__conv2d *p, int64_t oh, int64_t *i0, int64_t *i1) {
  int64_t top = oh * p->sh - p->pt; /* X's row under kernel row 0 */
  if (p->dh == 1) { /* (no divisions: this runs for every output row) */
    *i0 = top >= 0 ? 0 : GPUX__MIN(p->kh, -top);
    *i1 = top >= p->h ? 0 : GPUX__MIN(p->kh, p->h - top);
  } else {
    *i0 = top >= 0 ? 0 : GPUX__MIN(p->kh, (-top + p->dh - 1) / p->dh);
    *i1 = top >= p->h ? 0 : GPUX__MIN(p->kh, (p->h - top + p->dh - 1) / p->dh);
  }
  if (*i1 < *i0) *i1 = *i0;
}

typedef struct {
  const gpux__conv2d *p;
  const float *wk;          /* [blocks][kh * kw][16] the weights interleaved */
  int64_t blocks;           /* blocks of 16 channels per image */
  int64_t wp;               /* columns of an interleaved input row: the padded width read */
  int64_t strip, strips;    /* output rows per task, tasks per plane */
  int64_t in_rows;          /* input rows of a strip at most */
  atomic_int failed;
} dw16_job;

/* out[q][16] = sum over taps (i, j) of w[i * kw + j] * in[(i * dh) * wp + q * sw + j * dw] for q
 * < NQ consecutive outputs of a row (in: the row's first input, [.][16]). The hot loop. */
/* The row kernels' sums acc[ROWS][NV] at zero; and output rows o < nr of them stored, ldo floats
 * apart, nout outputs a row (the last vector masked). */
#define DW_ZERO(ROWS, NV)                                                                              \
  _Pragma("GCC unroll 16") for (int a = 0; a < (ROWS) * (NV); a++) acc[a / (NV)][a % (NV)] = _mm512_setzero_ps();
#define DW_STORE(ROWS, NV, NR)                                                                         \
  _Pragma("GCC unroll 4") for (int o_ = 0; o_ < (ROWS); o_++) {                                         \
    if (o_ >= (NR)) break;                                                                             \
    _Pragma("GCC unroll 4") for (int v_ = 0; v_ < (NV); v_++)                                           \
      _mm512_mask_storeu_ps(out + o_ * ldo + v_ * 16, gpux__lanes16(nout - v_ * 16), acc[o_][v_]);       \
  }

/* The 5 x 5 row kernels' FMAs of input row r (of a call's rows, stride S): its five taps t[0..4] of
 * vector v into every output row o < DR5 whose window holds it (window row r - S o). */
#define DW_TAPS5(S)                                                                                    \
  _Pragma("GCC unroll 2") for (int o_ = 0; o_ < DR5; o_++) {                                            \
    int i_ = r - (S) * o_;                                                                             \
    if (i_ >= 0 && i_ < 5)                                                                             \
      _Pragma("GCC unroll 5") for (int j_ = 0; j_ < 5; j_++)                                            \
        acc[o_][v] = _mm512_fmadd_ps(_mm512_set1_ps(wt[i_ * 5 + j_]), t[j_], acc[o_][v]);               \
  }

#define DEF_DW_ROW(NAME, NQ)                                                                         \
  TARGET512 static void NAME(const float *in, const float *w, int64_t kh, int64_t kw, int64_t wp,     \
                             int64_t sw, int64_t dh, int64_t dw, float *out) {                       \
    __m512 acc[NQ];                                                                                 \
    _Pragma("GCC unroll 8") for (int q = 0; q < NQ; q++) acc[q] = _mm512_setzero_ps();            \
    for (int64_t i = 0; i < kh; i++) {                                                              \
      const float *ir = in + i * dh * wp * 16;                                                      \
      for (int64_t j = 0; j < kw; j++, w += 16) {                                                   \
        __m512 wv = _mm512_load_ps(w);                                                              \
        const float *ic = ir + j * dw * 16;                                                         \
        _Pragma("GCC unroll 8") for (int q = 0; q < NQ; q++)                                        \
          acc[q] = _mm512_fmadd_ps(wv, _mm512_load_ps(ic + q * sw * 16), acc[q]);                   \
      }                                                                                             \
    }                                                                                               \
    _Pragma("GCC unroll 8") for (int q = 0; q < NQ; q++) _mm512_store_ps(out + q * 16, acc[q]);   \
  }

DEF_DW_ROW(dw_row8, 8)
DEF_DW_ROW(dw_row4, 4)
DEF_DW_ROW(dw_row2, 2)
DEF_DW_ROW(dw_row1, 1)

static void dw16_tasks(void *ctx, int64_t begin, int64_t end) {
  dw16_job *j = ctx;
  const gpux__conv2d *p = j->p;
  int64_t wp = j->wp, os = p->oh * p->ow;
  /* the strip's input [in_rows][wp][16], then its sums [strip * ow][16] */
  float *buf = gpux__scratch(GPUX__SCRATCH_CONV_TILE, (size_t)(j->in_rows * wp + j->strip * p->ow) * 16 * sizeof(float));
  if (!buf) {
    atomic_store(&j->failed, 1);
    return;
  }
  float *sums = buf + j->in_rows * wp * 16;
  for (int64_t t = begin; t < end; t++) {
    int64_t n = t / (j->blocks * j->strips), rem = t % (j->blocks * j->strips);
    int64_t blk = rem / j->strips, oh0 = rem % j->strips * j->strip, oh1 = GPUX__MIN(p->oh, oh0 + j->strip);
    int64_t c0 = blk * 16;
    int nc = (int)GPUX__MIN(16, p->c - c0);
    /* input rows [r0, r1) (padded coordinates: row r is X's row r - pt) */
    int64_t r0 = oh0 * p->sh, r1 = (oh1 - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    const float *xc = p->x + (n * p->c + c0) * p->h * p->w_;
    int64_t lo = GPUX__MIN(p->pl, wp), w_in = GPUX__MAX(0, GPUX__MIN(p->w_, wp - p->pl));
    for (int64_t r = r0; r < r1; r++) {
      float *dst = buf + (r - r0) * wp * 16;
      int64_t ih = r - p->pt;
      if (ih < 0 || ih >= p->h) {
        memset(dst, 0, (size_t)wp * 16 * sizeof *dst);
        continue;
      }
      memset(dst, 0, (size_t)lo * 16 * sizeof *dst);
      interleave16(xc + ih * p->w_, p->h * p->w_, nc, w_in, dst + lo * 16);
      if (lo + w_in < wp) memset(dst + (lo + w_in) * 16, 0, (size_t)(wp - lo - w_in) * 16 * sizeof *dst);
    }
    const float *wb = j->wk + blk * p->kh * p->kw * 16;
    for (int64_t oh = oh0; oh < oh1; oh++) {
      int64_t i0, i1;
      live_rows(p, oh, &i0, &i1);
      const float *in = buf + (oh * p->sh - r0 + i0 * p->dh) * wp * 16, *wr = wb + i0 * p->kw * 16;
      int64_t kh = i1 - i0;
      float *out = sums + (oh - oh0) * p->ow * 16;
      int64_t q = 0;
      for (; q + 8 <= p->ow; q += 8) dw_row8(in + q * p->sw * 16, wr, kh, p->kw, wp, p->sw, p->dh, p->dw, out + q * 16);
      if (q + 4 <= p->ow) dw_row4(in + q * p->sw * 16, wr, kh, p->kw, wp, p->sw, p->dh, p->dw, out + q * 16), q += 4;
      if (q + 2 <= p->ow) dw_row2(in + q * p->sw * 16, wr, kh, p->kw, wp, p->sw, p->dh, p->dw, out + q * 16), q += 2;
      if (q < p->ow) dw_row1(in + q * p->sw * 16, wr, kh, p->kw, wp, p->sw, p->dh, p->dw, out + q * 16);
    }
    /* back into Y's planes: the strip's rows are one run of each plane */
    int64_t np = (oh1 - oh0) * p->ow;
    float *y = p->y + (n * p->m + c0) * os + oh0 * p->ow;
    const gpux__conv_epilogue *e = p->ep;
    if (!e->res) {
      finish_interleaved(sums, np, nc, c0, p);
      deinterleave16(sums, np, nc, y, os);
      continue;
    }
    deinterleave16(sums, np, nc, y, os); /* R is read at Y's place: the epilogue on Y's planes */
    for (int c = 0; c < nc; c++)
      gpux__conv_finish(y + c * os, 0, y + c * os, 0, 1, np, p->b ? p->b[c0 + c] : 0.0f, e, c0 + c);
  }
}

/* ---- rows of 16-output vectors, for wide planes ----
 * For column strides 1 and 2 and wide outputs, a task (a plane's strip of output rows) copies its
 * input rows into scratch, padded with zeros (each row once, plain copies, no transposes); then 16
 * consecutive outputs of a row are one vector and each tap one FMA of the tap's weight with 16
 * inputs loaded from the padded row (stride 2: from its even or odd columns, which the copy puts
 * apart, each half a row; but 3 x 3 and 5 x 5 windows of stride 2, and those of stride 1 with
 * (k - 1) / 2 columns of left padding, read X's rows without a copy: the copy's stream of X was
 * 40% of the 3 x 3 stride-2 ones' time, a fifth of the 3 x 3 stride-1 ones', and more than a third
 * of the 5 x 5 ones' on 28 x 28 planes, copied 28 floats a call). The sums are
 * stored into Y's rows, where the epilogue runs on them while they are in L1. */

typedef struct {
  const gpux__conv2d *p;
  int64_t strip, strips;    /* output rows per task, tasks per plane */
  int64_t in_rows;          /* input rows of a strip at most */
  int64_t wp;               /* floats of a padded row: pl zeros, X's row, zeros past every read */
  int direct;               /* 3 x 3 and 5 x 5 windows of stride 2, and of stride 1 with (k - 1) / 2
                               columns of left padding: read from X's rows (no copies) */
  atomic_int failed;
} dwr_job;

/* out[v * 16 + l] (for v * 16 + l < nout) = sum over kernel rows i < kh and columns j < kw of
 * w[i * kw + j] * in[i * dh * wp + SW * (v * 16 + l) + j * dw] (in: the padded input at the first
 * output's first tap; with SW 2 each row of wp floats holds the padded row's even columns, then
 * its odd ones from wp / 2 on, so that the 16 inputs of a tap are one load): NV vectors of one
 * output row. The kernel rows go to RS sets of
 * accumulators in turn (NV * RS chains of FMAs, enough to keep the FMA units busy), summed at the
 * end. The hot loop. */
#define DEF_DWR(NAME, NV, SW, RS)                                                                        \
  TARGET512 static void NAME(const float *in, int64_t wp, const float *w, int64_t kh, int64_t kw,      \
                             int64_t dh, int64_t dw, float *out, int64_t nout) {                         \
    __m512 acc[RS][NV];                                                                                  \
    DW_ZERO(RS, NV)                                                                                  \
    int64_t i = 0;                                                                                       \
    for (; i < kh; i += RS) {                                                                            \
      _Pragma("GCC unroll 4") for (int a = 0; a < RS; a++) {                                            \
        if (i + a >= kh) break;                                                                          \
        const float *ir = in + (i + a) * dh * wp, *wr = w + (i + a) * kw;                                \
        for (int64_t j = 0; j < kw; j++) {                                                               \
          __m512 wv = _mm512_set1_ps(wr[j]);                                                             \
          int64_t o = j * dw; /* stride 2: the tap's column in the row's even or odd half */            \
          const float *ic = SW == 2 ? ir + (o & 1) * (wp / 2) + (o >> 1) : ir + o;                        \
          _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                          \
            acc[a][v] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(ic + v * 16), acc[a][v]);                    \
        }                                                                                                \
      }                                                                                                  \
    }                                                                                                    \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                              \
      __m512 sum = acc[0][v];                                                                            \
      _Pragma("GCC unroll 4") for (int a = 1; a < RS; a++) sum = _mm512_add_ps(sum, acc[a][v]);         \
      _mm512_mask_storeu_ps(out + v * 16, gpux__lanes16(nout - v * 16), sum);                            \
    }                                                                                                    \
  }

DEF_DWR(dwr1_4, 4, 1, 2)
DEF_DWR(dwr1_3, 3, 1, 3)
DEF_DWR(dwr1_2, 2, 1, 3)
DEF_DWR(dwr1_1, 1, 1, 4)
DEF_DWR(dwr2_4, 4, 2, 2)
DEF_DWR(dwr2_3, 3, 2, 3)
DEF_DWR(dwr2_2, 2, 2, 3)
DEF_DWR(dwr2_1, 1, 2, 4)

/* The same for a K x K window (3 or 5) of stride and dilation 1, ROWS output rows at a time
 * (output row o reading the padded rows o to o + K - 1 of in): each vector of inputs loaded serves
 * every output row whose window covers its row, with the K x K weights held in registers, so that
 * a load (most of them unaligned, across two lines) feeds up to min(K, ROWS) FMAs instead of one.
 * ROWS x NV accumulators, the outputs' rows ldo floats apart. 3 x 3 windows go DR rows a call, 5 x
 * 5 ones DR5 (the 25 weights and DR5 x NV sums take 29 of the 32 registers with NV = 2). */
#define DR 4
#define DR5 2
#define DEF_DWRK(NAME, K, ROWS, NV)                                                                     \
  TARGET512 static void NAME(const float *in, int64_t wp, const float *w, float *out, int64_t ldo,       \
                             int64_t nout) {                                                             \
    __m512 wv[K * K], acc[ROWS][NV];                                                                     \
    _Pragma("GCC unroll 25") for (int t = 0; t < K * K; t++) wv[t] = _mm512_set1_ps(w[t]);              \
    DW_ZERO(ROWS, NV)                                                                                \
    _Pragma("GCC unroll 9") for (int r = 0; r < ROWS - 1 + K; r++) {                                    \
      const float *ir = in + r * wp;                                                                     \
      _Pragma("GCC unroll 5") for (int j = 0; j < K; j++) {                                             \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                          \
          __m512 x = _mm512_loadu_ps(ir + j + v * 16);                                                   \
          __asm__("" : "+v"(x)); /* one load for all its FMAs, not one folded into each */             \
          _Pragma("GCC unroll 4") for (int o = 0; o < ROWS; o++) {                                      \
            int i = r - o; /* the kernel row through which row r reaches output row o */                \
            if (i >= 0 && i < K) acc[o][v] = _mm512_fmadd_ps(wv[i * K + j], x, acc[o][v]);               \
          }                                                                                              \
        }                                                                                                \
      }                                                                                                  \
    }                                                                                                    \
    DW_STORE(ROWS, NV, ROWS)                                                                         \
  }

DEF_DWRK(dwr3s1_4, 3, DR, 4)
DEF_DWRK(dwr3s1_3, 3, DR, 3)
DEF_DWRK(dwr3s1_2, 3, DR, 2)
DEF_DWRK(dwr3s1_1, 3, DR, 1)
DEF_DWRK(dwr5s1_2, 5, DR5, 2)
DEF_DWRK(dwr5s1_1, 5, DR5, 1)

typedef void (*dwr3_fn)(const float *, int64_t, const float *, float *, int64_t, int64_t);
/* (stride 1: those of stride 2 read X's rows, below) */
static const dwr3_fn dwr5_fns[2] = {dwr5s1_1, dwr5s1_2};
static const dwr3_fn dwr3_fns[4] = {dwr3s1_1, dwr3s1_2, dwr3s1_3, dwr3s1_4};

/* How far ahead in X (bytes) a strip's row copies ask for lines. */
#define AHEAD 2048

/* x[s .. s + 15] with zeros outside [0, n). */
TARGET512 static inline __m512 load_padded(const float *x, int64_t n, int64_t s) {
  if (s >= 0) return _mm512_maskz_loadu_ps(gpux__lanes16(n - s), x + s);
  if (s <= -16) return _mm512_setzero_ps();
  __m512 u = _mm512_maskz_loadu_ps(gpux__lanes16(n), x); /* x[0 .. 15] to lanes -s .. 15 */
  __m512i idx = _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32((int)s));
  return _mm512_maskz_permutexvar_ps((__mmask16)(0xffffu << -s), idx, u);
}

/* The lanes l of a vector of 16 with 0 <= s + l < n: a load at x + s, masked by them, reads x's
 * floats [0, n) and zeros elsewhere (a masked load neither reads nor faults on the lanes it drops). */
static inline __mmask16 inside16(int64_t s, int64_t n) {
  return (__mmask16)(gpux__lanes16(n - s) & ~(s < 0 ? gpux__lanes16(-s) : 0u));
}

/* dst[e] = row[2e], dst[half + e] = row[2e + 1] for e < half (a multiple of 16), row being X's
 * row x of n floats after lo zeros and zeros after it: the padded row split into its even and
 * odd columns. */
TARGET512 static void split_even_odd(const float *x, int64_t n, int64_t lo, int64_t half, float *dst) {
  const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int64_t e = 0; e < half; e += 16) {
    __m512 a = load_padded(x, n, 2 * e - lo), b = load_padded(x, n, 2 * e + 16 - lo);
    _mm512_storeu_ps(dst + e, _mm512_permutex2var_ps(a, ev, b));
    _mm512_storeu_ps(dst + half + e, _mm512_permutex2var_ps(a, od, b));
  }
}

/* A 3 x 3 window of stride 2 along both axes (dilation 1) read from X's rows as they are, without
 * the rows' even / odd copy: rows[r] (r < 2 * DR + 1) is the row under padded row r of the call
 * (a row of zeros where the window reaches the padding), w floats long; output column q of the
 * call reads the row's columns s0 + 2q + j for j < 3 (outside [0, w): zeros). Per row and vector
 * of 16 outputs, two loads of 32 consecutive floats give the even columns (tap 0) and the odd ones
 * (tap 1) in one permute each, and tap 2 (the even columns one on) is the even ones shifted down a
 * lane with the next float in lane 15. Output rows o < nr of the DR are stored, ldo floats apart.
 * The hot loop. */
#define DEF_DWR3S2X(NAME, NV)                                                                           \
  TARGET512 static void NAME(const float *const *rows, int64_t w, int64_t s0, const float *wt, float *out, \
                             int64_t ldo, int64_t nout, int nr) {                                        \
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);      \
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);      \
    __m512 wv[9], acc[DR][NV];                                                                           \
    _Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) wv[t] = _mm512_set1_ps(wt[t]);                  \
    DW_ZERO(DR, NV)                                                                                  \
    _Pragma("GCC unroll 9") for (int r = 0; r < 2 * DR + 1; r++) {                                      \
      const float *x = rows[r];                                                                          \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                            \
        int64_t s = s0 + 32 * v;                                                                         \
        __m512 a = load_padded(x, w, s), b = load_padded(x, w, s + 16);                                  \
        __m512 c = _mm512_set1_ps((uint64_t)(s + 32) < (uint64_t)w ? x[s + 32] : 0.0f);                 \
        __m512 t0 = _mm512_permutex2var_ps(a, ev, b), t1 = _mm512_permutex2var_ps(a, od, b);             \
        __m512 t2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(c), _mm512_castps_si512(t0), 1)); \
        _Pragma("GCC unroll 4") for (int o = 0; o < DR; o++) {                                          \
          int i = r - 2 * o; /* the kernel row through which row r reaches output row o */              \
          if (i >= 0 && i < 3) {                                                                         \
            acc[o][v] = _mm512_fmadd_ps(wv[i * 3], t0, acc[o][v]);                                       \
            acc[o][v] = _mm512_fmadd_ps(wv[i * 3 + 1], t1, acc[o][v]);                                   \
            acc[o][v] = _mm512_fmadd_ps(wv[i * 3 + 2], t2, acc[o][v]);                                   \
          }                                                                                              \
        }                                                                                                \
      }                                                                                                  \
    }                                                                                                    \
    DW_STORE(DR, NV, nr)                                                                             \
  }

DEF_DWR3S2X(dwr3s2x_4, 4)
DEF_DWR3S2X(dwr3s2x_3, 3)
DEF_DWR3S2X(dwr3s2x_2, 2)
DEF_DWR3S2X(dwr3s2x_1, 1)

/* The same with one column of padding on the left (output column c reads columns 2c - 1 to
 * 2c + 1), the call's outputs [q, q + nout) (q a multiple of 16): per row, the 2 NV vectors of 16
 * columns from 2q on (and the one before, for tap 0's first lane) are loaded masked to [0, w) on
 * the row's vector boundaries (aligned where the row is: the odd start of the loads above crosses
 * a cache line each time; no lanes outside the row are read), the even columns are tap 1, the odd
 * ones tap 2, and tap 0 is the odd ones one lane on with the float before in lane 0. */
#define DEF_DWR3S2A(NAME, NV)                                                                           \
  TARGET512 static void NAME(const float *const *rows, int64_t w, int64_t q, const float *wt, float *out, \
                             int64_t ldo, int64_t nout, int nr) {                                        \
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);      \
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);      \
    __m512 wv[9], acc[DR][NV];                                                                           \
    __mmask16 mk[2 * NV + 1];                                                                            \
    _Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) wv[t] = _mm512_set1_ps(wt[t]);                  \
    DW_ZERO(DR, NV)                                                                                  \
    _Pragma("GCC unroll 9") for (int v = 0; v < 2 * NV + 1; v++) mk[v] = inside16(2 * q + 16 * (v - 1), w); \
    _Pragma("GCC unroll 9") for (int r = 0; r < 2 * DR + 1; r++) {                                      \
      const float *x = rows[r] + 2 * q;                                                                  \
      __m512 prev = _mm512_maskz_loadu_ps(mk[0], x - 16);                                                \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                            \
        __m512 a = _mm512_maskz_loadu_ps(mk[2 * v + 1], x + 32 * v);                                     \
        __m512 b = _mm512_maskz_loadu_ps(mk[2 * v + 2], x + 32 * v + 16);                                \
        __m512 t1 = _mm512_permutex2var_ps(a, ev, b), t2 = _mm512_permutex2var_ps(a, od, b);             \
        __m512 t0 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(t2), _mm512_castps_si512(prev), 15)); \
        prev = b;                                                                                        \
        _Pragma("GCC unroll 4") for (int o = 0; o < DR; o++) {                                          \
          int i = r - 2 * o; /* the kernel row through which row r reaches output row o */              \
          if (i >= 0 && i < 3) {                                                                         \
            acc[o][v] = _mm512_fmadd_ps(wv[i * 3], t0, acc[o][v]);                                       \
            acc[o][v] = _mm512_fmadd_ps(wv[i * 3 + 1], t1, acc[o][v]);                                   \
            acc[o][v] = _mm512_fmadd_ps(wv[i * 3 + 2], t2, acc[o][v]);                                   \
          }                                                                                              \
        }                                                                                                \
      }                                                                                                  \
    }                                                                                                    \
    DW_STORE(DR, NV, nr)                                                                             \
  }

DEF_DWR3S2A(dwr3s2a_4, 4)
DEF_DWR3S2A(dwr3s2a_3, 3)
DEF_DWR3S2A(dwr3s2a_2, 2)
DEF_DWR3S2A(dwr3s2a_1, 1)

/* The same for a 5 x 5 window of stride 2, DR5 output rows a call: taps 2 to 4 are the even and
 * odd columns shifted down a lane or two, the floats past them from a third load. */
#define DEF_DWR5S2X(NAME, NV)                                                                           \
  TARGET512 static void NAME(const float *const *rows, int64_t w, int64_t s0, const float *wt, float *out, \
                             int64_t ldo, int64_t nout, int nr) {                                        \
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);      \
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);      \
    __m512 wv[25], acc[DR5][NV];                                                                         \
    _Pragma("GCC unroll 25") for (int t = 0; t < 25; t++) wv[t] = _mm512_set1_ps(wt[t]);                \
    DW_ZERO(DR5, NV)                                                                                 \
    _Pragma("GCC unroll 7") for (int r = 0; r < 2 * DR5 + 3; r++) {                                     \
      const float *x = rows[r];                                                                          \
      _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {                                            \
        int64_t s = s0 + 32 * v;                                                                         \
        __m512 a = load_padded(x, w, s), b = load_padded(x, w, s + 16), c = load_padded(x, w, s + 32);   \
        __m512 t[5];                                                                                     \
        t[0] = _mm512_permutex2var_ps(a, ev, b), t[1] = _mm512_permutex2var_ps(a, od, b);                \
        __m512i ce = _mm512_castps_si512(_mm512_permutexvar_ps(ev, c));                                  \
        __m512i co = _mm512_castps_si512(_mm512_permutexvar_ps(od, c));                                  \
        t[2] = _mm512_castsi512_ps(_mm512_alignr_epi32(ce, _mm512_castps_si512(t[0]), 1));                \
        t[3] = _mm512_castsi512_ps(_mm512_alignr_epi32(co, _mm512_castps_si512(t[1]), 1));                \
        t[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(ce, _mm512_castps_si512(t[0]), 2));                \
        _Pragma("GCC unroll 2") for (int o = 0; o < DR5; o++) {                                         \
          int i = r - 2 * o;                                                                             \
          if (i >= 0 && i < 5)                                                                           \
            _Pragma("GCC unroll 5") for (int j = 0; j < 5; j++)                                         \
              acc[o][v] = _mm512_fmadd_ps(wv[i * 5 + j], t[j], acc[o][v]);                               \
        }                                                                                                \
      }                                                                                                  \
    }                                                                                                    \
    DW_STORE(DR5, NV, nr)                                                                            \
  }

DEF_DWR5S2X(dwr5s2x_2, 2)
DEF_DWR5S2X(dwr5s2x_1, 1)

/* The same with two columns of padding on the left (output column c reads columns 2c - 2 to
 * 2c + 2), the call's outputs [q, q + nout) (q a multiple of 16), loaded as DEF_DWR3S2A's: per
 * row the 16 columns before 2q, the 2 NV vectors from 2q on and the one after, masked to [0, w)
 * on the row's vector boundaries; the even columns are tap 2, the odd ones tap 3, taps 0 and 1
 * the even and odd ones one lane on with the floats before in lane 0 (from the vector before,
 * or the last call's), tap 4 the even ones one lane back with the next float in lane 15. */
#define DEF_DWR5S2A(NAME, NV)                                                                           \
  TARGET512 static void NAME(const float *const *rows, int64_t w, int64_t q, const float *wt, float *out, \
                             int64_t ldo, int64_t nout, int nr) {                                        \
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);      \
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);      \
    /* lane 14 (15) of the vector before, then lanes 0-14 of the even (odd) columns */                 \
    const __m512i pe = _mm512_set_epi32(30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 14); \
    const __m512i po = _mm512_set_epi32(30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15); \
    __m512 acc[DR5][NV];                                                                                 \
    __mmask16 mk[2 * NV + 2];                                                                            \
    DW_ZERO(DR5, NV)                                                                                 \
    _Pragma("GCC unroll 6") for (int v = 0; v < 2 * NV + 2; v++) mk[v] = inside16(2 * q + 16 * (v - 1), w); \
    _Pragma("GCC unroll 7") for (int r = 0; r < 2 * DR5 + 3; r++) {                                     \
      const float *x = rows[r] + 2 * q;                                                                  \
      __m512 e[NV + 1], o[NV];                                                                           \
      _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {                                            \
        __m512 a = _mm512_maskz_loadu_ps(mk[2 * v + 1], x + 32 * v);                                     \
        __m512 b = _mm512_maskz_loadu_ps(mk[2 * v + 2], x + 32 * v + 16);                                \
        e[v] = _mm512_permutex2var_ps(a, ev, b), o[v] = _mm512_permutex2var_ps(a, od, b);                \
      }                                                                                                  \
      e[NV] = _mm512_maskz_loadu_ps(mk[2 * NV + 1], x + 32 * NV); /* lane 0: the even column after */   \
      __m512 before = _mm512_maskz_loadu_ps(mk[0], x - 16);                                              \
      _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {                                            \
        __m512 t[5];                                                                                     \
        t[0] = v ? _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(e[v]), _mm512_castps_si512(e[v - 1]), 15)) \
                 : _mm512_permutex2var_ps(before, pe, e[0]);                                             \
        t[1] = v ? _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(o[v]), _mm512_castps_si512(o[v - 1]), 15)) \
                 : _mm512_permutex2var_ps(before, po, o[0]);                                             \
        t[2] = e[v], t[3] = o[v];                                                                        \
        t[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(e[v + 1]), _mm512_castps_si512(e[v]), 1)); \
        DW_TAPS5(2)                                                                                      \
      }                                                                                                  \
    }                                                                                                    \
    DW_STORE(DR5, NV, nr)                                                                            \
  }

DEF_DWR5S2A(dwr5s2a_2, 2)
DEF_DWR5S2A(dwr5s2a_1, 1)

typedef void (*dwr3x_fn)(const float *const *, int64_t, int64_t, const float *, float *, int64_t, int64_t, int);
static const dwr3x_fn dwr3x_fns[4] = {dwr3s2x_1, dwr3s2x_2, dwr3s2x_3, dwr3s2x_4};
static const dwr3x_fn dwr3s2a_fns[4] = {dwr3s2a_1, dwr3s2a_2, dwr3s2a_3, dwr3s2a_4};
static const dwr3x_fn dwr5s2a_fns[2] = {dwr5s2a_1, dwr5s2a_2};
static const dwr3x_fn dwr5x_fns[2] = {dwr5s2x_1, dwr5s2x_2};

/* A 3 x 3 window of stride and dilation 1 with one column of padding on the left, read from X's
 * rows as they are, without the rows' padded copies: rows[r] (r < DR + 2) is the row under padded
 * row r of the call (a row of zeros where the window reaches the padding), w floats long; the
 * call's outputs are columns [q, q + nout) (q a multiple of 16), output column c reading columns
 * c - 1 to c + 1 (outside [0, w): zeros). Per row, the NV + 2 vectors of 16 columns from q - 16 on
 * are loaded once (masked to [0, w): the loads start on the row's vector boundaries, aligned
 * where the row is, and drop the lanes outside it without touching them); a vector's taps 0 and 2
 * are it shifted a lane with its neighbours' lanes (valignd) where three loads across cache
 * lines gave them (15% slower here). Each tap serves every output row whose window covers its
 * row, as DEF_DWRK's. Output rows o < nr of the DR are stored, ldo floats apart: rows past them
 * are summed and dropped, so that every output row is summed in the same order, whatever the
 * strips. The hot loop. */
#define DEF_DWR3S1A(NAME, NV)                                                                           \
  TARGET512 static void NAME(const float *const *rows, int64_t w, int64_t q, const float *wt, float *out, \
                             int64_t ldo, int64_t nout, int nr) {                                        \
    __m512 wv[9], acc[DR][NV];                                                                           \
    __mmask16 mk[NV + 2];                                                                                \
    _Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) wv[t] = _mm512_set1_ps(wt[t]);                  \
    DW_ZERO(DR, NV)                                                                                  \
    _Pragma("GCC unroll 6") for (int v = 0; v < NV + 2; v++) mk[v] = inside16(q + 16 * (v - 1), w);      \
    _Pragma("GCC unroll 6") for (int r = 0; r < DR + 2; r++) {                                          \
      const float *x = rows[r] + q;                                                                      \
      __m512i c[NV + 2];                                                                                 \
      _Pragma("GCC unroll 6") for (int v = 0; v < NV + 2; v++)                                          \
        c[v] = _mm512_castps_si512(_mm512_maskz_loadu_ps(mk[v], x + 16 * (v - 1)));                      \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                            \
        __m512 t[3] = {_mm512_castsi512_ps(_mm512_alignr_epi32(c[v + 1], c[v], 15)), _mm512_castsi512_ps(c[v + 1]), \
                       _mm512_castsi512_ps(_mm512_alignr_epi32(c[v + 2], c[v + 1], 1))};                 \
        _Pragma("GCC unroll 3") for (int j = 0; j < 3; j++)                                             \
          _Pragma("GCC unroll 4") for (int o = 0; o < DR; o++) {                                        \
            int i = r - o; /* the kernel row through which row r reaches output row o */                \
            if (i >= 0 && i < 3) acc[o][v] = _mm512_fmadd_ps(wv[i * 3 + j], t[j], acc[o][v]);            \
          }                                                                                              \
      }                                                                                                  \
    }                                                                                                    \
    DW_STORE(DR, NV, nr)                                                                             \
  }

/* The same for a 5 x 5 window with two columns of padding on the left, DR5 output rows a call:
 * taps 0, 1, 3 and 4 are a vector shifted two or one lanes with its neighbours' lanes. */
#define DEF_DWR5S1A(NAME, NV)                                                                           \
  TARGET512 static void NAME(const float *const *rows, int64_t w, int64_t q, const float *wt, float *out, \
                             int64_t ldo, int64_t nout, int nr) {                                        \
    __m512 acc[DR5][NV];                                                                                 \
    __mmask16 mk[NV + 2];                                                                                \
    DW_ZERO(DR5, NV)                                                                                 \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV + 2; v++) mk[v] = inside16(q + 16 * (v - 1), w);      \
    _Pragma("GCC unroll 6") for (int r = 0; r < DR5 + 4; r++) {                                         \
      const float *x = rows[r] + q;                                                                      \
      __m512i c[NV + 2];                                                                                 \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV + 2; v++)                                          \
        c[v] = _mm512_castps_si512(_mm512_maskz_loadu_ps(mk[v], x + 16 * (v - 1)));                     \
      _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {                                            \
        __m512 t[5] = {_mm512_castsi512_ps(_mm512_alignr_epi32(c[v + 1], c[v], 14)),                     \
                       _mm512_castsi512_ps(_mm512_alignr_epi32(c[v + 1], c[v], 15)), _mm512_castsi512_ps(c[v + 1]), \
                       _mm512_castsi512_ps(_mm512_alignr_epi32(c[v + 2], c[v + 1], 1)),                  \
                       _mm512_castsi512_ps(_mm512_alignr_epi32(c[v + 2], c[v + 1], 2))};                 \
        DW_TAPS5(1)                                                                                      \
      }                                                                                                  \
    }                                                                                                    \
    DW_STORE(DR5, NV, nr)                                                                            \
  }

DEF_DWR5S1A(dwr5s1a_2, 2)
DEF_DWR5S1A(dwr5s1a_1, 1)
static const dwr3x_fn dwr5s1a_fns[2] = {dwr5s1a_1, dwr5s1a_2};

DEF_DWR3S1A(dwr3s1a_4, 4)
DEF_DWR3S1A(dwr3s1a_3, 3)
DEF_DWR3S1A(dwr3s1a_2, 2)
DEF_DWR3S1A(dwr3s1a_1, 1)
static const dwr3x_fn dwr3s1a_fns[4] = {dwr3s1a_1, dwr3s1a_2, dwr3s1a_3, dwr3s1a_4};

typedef void (*dwr_fn)(const float *, int64_t, const float *, int64_t, int64_t, int64_t, int64_t, float *, int64_t);
static const dwr_fn dwr_fns[2][4] = {{dwr1_1, dwr1_2, dwr1_3, dwr1_4}, {dwr2_1, dwr2_2, dwr2_3, dwr2_4}};

/* Output rows [oh0, oh1) of channel ch's plane y from x, which holds the plane's rows [x_r0, x_r1)
 * (every row the strip's outputs read inside X; a call's rows past them, whose sums it does not
 * store, read zeros); buf: the strip's padded rows [in_rows][wp], of which
 * the first w_ floats are zeros where j->direct; x_end: where the lines asked for ahead stop (NULL:
 * none asked for). */
static void dwr_strip(const dwr_job *j, const float *x, int64_t x_r0, int64_t x_r1, int64_t ch, int64_t oh0,
                      int64_t oh1, float *y, float *buf, const char *x_end) {
  const gpux__conv2d *p = j->p;
  int64_t taps = p->kh * p->kw, wp = j->wp;
  const float *zeros = buf, *w = p->w + ch * taps;
  int64_t lo = GPUX__MIN(p->pl, wp), w_in = GPUX__MAX(0, GPUX__MIN(p->w_, wp - p->pl));
  {
    /* input rows [r0, r1) in padded coordinates (row r is X's row r - pt) */
    int64_t r0 = oh0 * p->sh, r1 = (oh1 - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    if (j->direct && p->sh == 1) { /* stride 1: from X's rows, DR (3 x 3) or DR5 (5 x 5) output rows a call */
      int five = p->kh == 5, dr = five ? DR5 : DR;
      int64_t span = five ? 32 : 64;
      for (int64_t oh = oh0; oh < oh1; oh += dr) {
        const float *rows[2 * DR + 1];
        for (int r = 0; r < dr + p->kh - 1; r++) {
          int64_t ih = oh + r - p->pt;
          rows[r] = ih >= x_r0 && ih < x_r1 ? x + (ih - x_r0) * p->w_ : zeros;
        }
        int nr = (int)GPUX__MIN(dr, oh1 - oh);
        for (int64_t q = 0; q < p->ow; q += span) {
          int64_t nout = GPUX__MIN(span, p->ow - q);
          (five ? dwr5s1a_fns : dwr3s1a_fns)[(nout + 15) / 16 - 1](rows, p->w_, q, w, y + oh * p->ow + q, p->ow, nout,
                                                                   nr);
        }
      }
      float *ys = y + oh0 * p->ow;
      gpux__conv_finish(ys, 0, ys, 0, 1, (oh1 - oh0) * p->ow, p->b ? p->b[ch] : 0.0f, p->ep, ch);
      return;
    }
    if (j->direct) { /* stride 2: from X's rows, DR (3 x 3) or DR5 (5 x 5) output rows a call */
      int five = p->kh == 5, dr = five ? DR5 : DR, span = five ? 32 : 64;
      for (int64_t oh = oh0; oh < oh1; oh += dr) {
        const float *rows[2 * DR + 1];
        for (int r = 0; r < 2 * dr + p->kh - 2; r++) {
          int64_t ih = oh * 2 + r - p->pt;
          rows[r] = ih >= x_r0 && ih < x_r1 ? x + (ih - x_r0) * p->w_ : zeros;
        }
        int nr = (int)GPUX__MIN(dr, oh1 - oh);
        for (int64_t q = 0; q < p->ow; q += span) {
          int64_t nout = GPUX__MIN(span, p->ow - q);
          if (p->pl == (five ? 2 : 1))
            (five ? dwr5s2a_fns : dwr3s2a_fns)[(nout + 15) / 16 - 1](rows, p->w_, q, w, y + oh * p->ow + q, p->ow, nout,
                                                                     nr);
          else
            (five ? dwr5x_fns : dwr3x_fns)[(nout + 15) / 16 - 1](rows, p->w_, 2 * q - p->pl, w, y + oh * p->ow + q,
                                                                 p->ow, nout, nr);
        }
      }
      float *ys = y + oh0 * p->ow;
      gpux__conv_finish(ys, 0, ys, 0, 1, (oh1 - oh0) * p->ow, p->b ? p->b[ch] : 0.0f, p->ep, ch);
      return;
    }
    for (int64_t r = r0; r < r1; r++) {
      float *dst = buf + (r - r0) * wp;
      int64_t ih = r - p->pt;
      if (ih < 0 || ih >= p->h) {
        memset(dst, 0, (size_t)wp * sizeof *dst);
        continue;
      }
      /* the lines AHEAD bytes on (the rest of the plane, the next plane's first rows) asked for
       * now: the stream of X crosses a page every few rows, where the hardware's prefetch stops */
      const char *src = (const char *)(x + (ih - x_r0) * p->w_), *ahead = src + AHEAD;
      for (int64_t l = 0; x_end && l < w_in * 4 && ahead + l < x_end; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T0);
      if (p->sw == 2) {
        split_even_odd((const float *)src, w_in, lo, wp / 2, dst);
        continue;
      }
      memset(dst, 0, (size_t)lo * sizeof *dst);
      memcpy(dst + lo, src, (size_t)w_in * sizeof *dst);
      memset(dst + lo + w_in, 0, (size_t)(wp - lo - w_in) * sizeof *dst);
    }
    /* 3 x 3 windows of stride 1, DR rows at a time, and 5 x 5 ones DR5 (stride 2 went above) */
    int rows3 = p->kh == 3 && p->kw == 3 && p->dh == 1 && p->dw == 1 && p->sh == 1 && p->sw == 1;
    int rows5 = p->kh == 5 && p->kw == 5 && p->dh == 1 && p->dw == 1 && p->sh == 1 && p->sw == 1;
    for (int64_t oh = oh0; oh < oh1; oh++) {
      if (rows5 && oh + DR5 <= oh1) {
        const float *in = buf + (oh * p->sh - r0) * wp;
        float *yr = y + oh * p->ow;
        for (int64_t q = 0; q < p->ow; q += 32) {
          int64_t nout = GPUX__MIN(32, p->ow - q);
          dwr5_fns[(nout + 15) / 16 - 1](in + q, wp, w, yr + q, p->ow, nout);
        }
        oh += DR5 - 1;
        continue;
      }
      if (rows3 && oh + DR <= oh1) {
        const float *in = buf + (oh * p->sh - r0) * wp;
        float *yr = y + oh * p->ow;
        for (int64_t q = 0; q < p->ow; q += 64) {
          int64_t nout = GPUX__MIN(64, p->ow - q);
          dwr3_fns[(nout + 15) / 16 - 1](in + q, wp, w, yr + q, p->ow, nout);
        }
        oh += DR - 1;
        continue;
      }
      int64_t i0, i1;
      live_rows(p, oh, &i0, &i1);
      const float *in = buf + (oh * p->sh - r0 + i0 * p->dh) * wp, *wr = w + i0 * p->kw;
      float *yr = y + oh * p->ow;
      for (int64_t q = 0; q < p->ow; q += 64) {
        int64_t nout = GPUX__MIN(64, p->ow - q);
        dwr_fns[p->sw - 1][(nout + 15) / 16 - 1](in + q, wp, wr, i1 - i0, p->kw, p->dh, p->dw, yr + q, nout);
      }
    }
    float *ys = y + oh0 * p->ow;
    gpux__conv_finish(ys, 0, ys, 0, 1, (oh1 - oh0) * p->ow, p->b ? p->b[ch] : 0.0f, p->ep, ch);
  }
}

static void dwr_tasks(void *ctx, int64_t begin, int64_t end) {
  dwr_job *j = ctx;
  const gpux__conv2d *p = j->p;
  /* the strip's padded rows [in_rows][wp] */
  float *buf = gpux__scratch(GPUX__SCRATCH_CONV_TILE, (size_t)(j->in_rows * j->wp) * sizeof(float));
  if (!buf) {
    atomic_store(&j->failed, 1);
    return;
  }
  if (j->direct) memset(buf, 0, (size_t)p->w_ * sizeof *buf); /* a row of zeros for the padding's rows */
  const char *x_end = (const char *)(p->x + p->n * p->c * p->h * p->w_);
  for (int64_t t = begin; t < end; t++) {
    int64_t plane = t / j->strips, oh0 = t % j->strips * j->strip, oh1 = GPUX__MIN(p->oh, oh0 + j->strip);
    dwr_strip(j, p->x + plane * p->h * p->w_, 0, p->h, plane % p->c, oh0, oh1, p->y + plane * p->oh * p->ow, buf,
              x_end);
  }
}

/* j's padded row length and whether its rows are read from X directly. */
static void dwr_rows(dwr_job *j) {
  const gpux__conv2d *p = j->p;
  /* a row is read up to the last vector's last lane: 16 * ceil(ow / 16) outputs; with stride 2,
   * in each half, the even columns and the odd ones, both as long (a multiple of 16) */
  int64_t vec_end = (p->ow + 15) / 16 * 16 + (p->kw - 1) * p->dw;
  int64_t half_end = (p->ow + 15) / 16 * 16 + (p->kw - 1) * p->dw / 2;
  if (p->sw == 2) j->wp = 2 * ((GPUX__MAX(half_end, (p->pl + p->w_ + 1) / 2) + 15) / 16 * 16);
  else j->wp = GPUX__MAX(vec_end, p->pl + p->w_);
  j->direct = (p->kh == 3 || p->kh == 5) && p->kw == p->kh && p->dh == 1 && p->dw == 1 && p->sh == p->sw &&
              (p->sh == 2 || (p->sh == 1 && p->pl == p->kh / 2));
  if (j->direct) j->wp = GPUX__MAX(j->wp, p->w_);
}

static int conv2d_depthwise_rows(const gpux__conv2d *p) {
  dwr_job j = {.p = p};
  dwr_rows(&j);
  int64_t halo = (p->kh - 1) * p->dh + 1;
  /* strips of about 32 KB of output and 16 KB of input: what a row of outputs reads, and the
   * epilogue, find in L1 (64 KB of input: stride 2 on 112 x 112, 20% slower) */
  int64_t by_in = ((4096 / j.wp) - halo) / p->sh + 1;
  j.strip = GPUX__MAX(1, GPUX__MIN(p->oh, GPUX__MIN(8192 / p->ow, by_in)));
  /* the threads its work is worth: the multiply-adds, the epilogue and the rows' copies */
  double outs = (double)(p->n * p->c) * (double)(p->oh * p->ow);
  double work = outs * ((double)(p->kh * p->kw) * GPUX__DW_MAC_WORK + gpux__conv_ep_work(p->ep)) +
                (double)(p->n * p->c) * (double)(p->h * p->w_);
  int threads = gpux__threads_for(work);
  if (threads > 1 && p->n * p->c < 3 * threads) /* few planes: split them into more strips */
    j.strip = GPUX__MAX(1, GPUX__MIN(j.strip, (p->oh * p->n * p->c + 3 * threads - 1) / (3 * threads)));
  j.strips = (p->oh + j.strip - 1) / j.strip;
  j.in_rows = (j.strip - 1) * p->sh + halo;
  gpux__conv_plan_note("dw-rows", p, threads, p->n * p->c * j.strips, j.strip * p->ow, 1,
                       (double)(j.strip * p->ow) * (double)(p->kh * p->kw));
  atomic_init(&j.failed, 0);
  gpux__parallel_for_work(p->n * p->c * j.strips, work, dwr_tasks, &j);
  if (atomic_load(&j.failed)) return gpux__error(GPUX_E_NOMEM, "out of memory for a depthwise strip");
  return 0;
}

int gpux__conv2d_depthwise16(const gpux__conv2d *p) {
  if (!gpux__conv_dw16_available() || p->c != p->g || p->m != p->c || p->pt < 0 || p->pl < 0) return 1;
  /* rows of two vectors or more: in place (on 28 x 28 and smaller planes, where more of each
   * vector is wasted on the row's end, the interleaved channels are as fast or faster, but for
   * 5 x 5 windows from 24 outputs on, two rows a call: bench/conv-shapes, 1 thread, ms
   * interleaved / rows: effnet dw5x5s2 144@56 0.32/0.24, dw5x5 240@28 0.30/0.24, mnv3 dw5x5s2
   * 72@56 0.14/0.11, dw5x5 120@28 0.13/0.10; 14 outputs wide, 0.14/0.17), and 3 x 3 windows of
   * stride 2 (read from X's rows, no copies) from 12 outputs wide (dw3x3s2 240@28, 14 wide:
   * 0.083-0.096/0.050-0.063) */
  int five = p->kh == 5 && p->kw == 5 && p->dh == 1 && p->dw == 1 && p->sh == p->sw; /* two rows a call */
  int s2 = p->kh == 3 && p->kw == 3 && p->dh == 1 && p->dw == 1 && p->sh == 2 && p->sw == 2;
  if ((p->sw == 1 || p->sw == 2) && p->ow >= (five ? 24 : s2 ? 12 : 32)) return conv2d_depthwise_rows(p);
  dw16_job j = {.p = p, .blocks = (p->c + 15) / 16};
  j.wp = (p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1;
  /* about 96 KB of interleaved input per strip (in L2; a row's kh passes find it in L1) */
  int64_t row_bytes = j.wp * 16 * (int64_t)sizeof(float), halo = (p->kh - 1) * p->dh + 1;
  j.strip = GPUX__MAX(1, GPUX__MIN(p->oh, ((98304 / row_bytes) - halo) / p->sh + 1));
  /* the threads its work is worth (a small one runs on fewer): the multiply-adds, the epilogue,
   * the input's and output's transposes */
  double outs = (double)(p->n * j.blocks * 16) * (double)(p->oh * p->ow);
  double work = outs * ((double)(p->kh * p->kw) * GPUX__DW_MAC_WORK + gpux__conv_ep_work(p->ep) + 1.0) +
                (double)(p->n * j.blocks * 16) * (double)(p->h * p->w_);
  int threads = gpux__threads_for(work);
  int64_t want = threads > 1 ? 3 * threads : 1; /* tasks, with threads: split the rows further */
  if (p->n * j.blocks < want) {
    int64_t per = (p->oh * p->n * j.blocks + want - 1) / want;
    j.strip = GPUX__MAX(1, GPUX__MIN(j.strip, per));
  }
  j.strips = (p->oh + j.strip - 1) / j.strip;
  j.in_rows = (j.strip - 1) * p->sh + halo;
  int64_t taps = p->kh * p->kw;
  gpux__conv_plan_note("dw16", p, threads, p->n * j.blocks * j.strips, j.strip * p->ow, 16,
                       (double)(j.strip * p->ow * 16) * (double)taps);
  float *wk = gpux__scratch(GPUX__SCRATCH_CONV_TAPS, (size_t)(j.blocks * taps * 16) * sizeof *wk);
  if (!wk) return GPUX_E_NOMEM;
  for (int64_t b = 0; b < j.blocks; b++)
    interleave16(p->w + b * 16 * taps, taps, (int)GPUX__MIN(16, p->c - b * 16), taps, wk + b * taps * 16);
  j.wk = wk;
  atomic_init(&j.failed, 0);
  gpux__parallel_for_work(p->n * j.blocks * j.strips, work, dw16_tasks, &j);
  if (atomic_load(&j.failed)) return gpux__error(GPUX_E_NOMEM, "out of memory for a depthwise strip");
  return 0;
}

/* ---- an expansion's 1x1 convolution and the depthwise convolution that alone reads it ----
 * An inverted residual block's expansion writes C x H x W floats (MobileNetV3's 64 x 112 x 112:
 * 3.2 MB) that its depthwise convolution reads back once. Here a task (image, strip of output
 * rows, block of XB channels) computes the expansion on the input rows its strip reads only,
 * with its epilogue in registers, into scratch (XB x rows x W floats, in L2), and then runs the
 * depthwise rows' kernels above on each channel's rows, so the expanded values never leave the
 * thread's caches. Strips overlap by the window's halo, whose rows are computed twice; strips are
 * long enough that this is at most about a sixteenth of the expansion. A strip's X rows (C x rows x
 * W) are read by each of its channel blocks: tasks of one strip are neighbours, so a thread's run
 * of them finds those rows in L2. The expansion's sums go over the input channels in order, one
 * FMA each from zero, then its bias and epilogue: as conv-direct.c's implicit GEMM. */

_Atomic long long gpux__expand_dw_tasks;

#define XB 8 /* expansion channels a call */

/* e[i * ld + q] = epilogue(sum over c < nc (in order) of w[i * nc + c] * x[c * xs + q] + bias[i])
 * for i < NB and q < np: NB channels (the first m) of the expansion over np consecutive
 * positions, 48 at a time (NB x 3 sums: each input vector feeds NB FMAs, as conv-direct.c's
 * blocks), the bias and epilogue (no residual) on the sums in registers, the same operations as
 * gpux__conv_finish's. The hot loop. NAME runs NAME_act with the activation a constant (a switch
 * once a call), on a copy of the epilogue whose fields stay in registers: with ep itself,
 * gpux__ep16_vec read the activation, clamp and scale again for every vector (the stores may
 * alias *ep) and chose the activation anew each time. */
#define DEF_EXPAND(NAME, NB)                                                                         \
  TARGET512 static inline __attribute__((always_inline)) void NAME##_act(                             \
      const float *x, int64_t xs, int64_t nc, const float *w, const float *bias,                     \
      const gpux__conv_epilogue *ep, int act, int64_t m, float *e, int64_t ld, int64_t np) {         \
    gpux__conv_epilogue ea = *ep;                                                                   \
    ea.act = act;                                                                                   \
    __m512 vb[NB], vs[NB], vt[NB];                                                                  \
    _Pragma("GCC unroll 8") for (int i = 0; i < NB; i++) {                                          \
      vb[i] = _mm512_set1_ps(bias ? bias[m + i] : 0.0f);                                            \
      vs[i] = _mm512_set1_ps(ea.scale ? ea.scale[m + i] : 1.0f);                                    \
      vt[i] = _mm512_set1_ps(ea.scale ? ea.shift[m + i] : 0.0f);                                    \
    }                                                                                               \
    for (int64_t q = 0; q < np; q += 48) {                                                          \
      __mmask16 k[3];                                                                               \
      _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++) k[v] = gpux__lanes16(np - q - 16 * v);    \
      __m512 acc[NB][3], xv[3];                                                                     \
      _Pragma("GCC unroll 8") for (int i = 0; i < NB; i++)                                          \
        _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++) acc[i][v] = _mm512_setzero_ps();        \
      int full = np - q >= 48; /* whole vectors: plain loads, no masks held across the loop */      \
      for (int64_t c = 0; c < nc; c++) {                                                            \
        const float *xc = x + c * xs + q;                                                           \
        if (full)                                                                                   \
          _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++) xv[v] = _mm512_loadu_ps(xc + 16 * v); \
        else                                                                                        \
          _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++) xv[v] = _mm512_maskz_loadu_ps(k[v], xc + 16 * v); \
        _Pragma("GCC unroll 8") for (int i = 0; i < NB; i++) {                                      \
          __m512 wv = _mm512_set1_ps(w[i * nc + c]);                                                \
          _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++) acc[i][v] = _mm512_fmadd_ps(wv, xv[v], acc[i][v]); \
        }                                                                                           \
      }                                                                                             \
      _Pragma("GCC unroll 8") for (int i = 0; i < NB; i++)                                          \
        _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++)                                         \
          _mm512_mask_storeu_ps(e + i * ld + q + 16 * v, k[v],                                      \
                                gpux__ep16_vec(_mm512_add_ps(acc[i][v], vb[i]), vs[i], vt[i], &ea)); \
    }                                                                                               \
  }                                                                                                 \
  TARGET512 static void NAME(const float *x, int64_t xs, int64_t nc, const float *w, const float *bias, \
                             const gpux__conv_epilogue *ep, int64_t m, float *e, int64_t ld, int64_t np) { \
    switch (ep->act) {                                                                              \
    case GPUX_EP_RELU: NAME##_act(x, xs, nc, w, bias, ep, GPUX_EP_RELU, m, e, ld, np); break;       \
    case GPUX_EP_HARDSWISH: NAME##_act(x, xs, nc, w, bias, ep, GPUX_EP_HARDSWISH, m, e, ld, np); break; \
    case GPUX_EP_SILU: NAME##_act(x, xs, nc, w, bias, ep, GPUX_EP_SILU, m, e, ld, np); break;       \
    case GPUX_EP_CLIP: NAME##_act(x, xs, nc, w, bias, ep, GPUX_EP_CLIP, m, e, ld, np); break;       \
    default: NAME##_act(x, xs, nc, w, bias, ep, ep->act, m, e, ld, np); break;                      \
    }                                                                                               \
  }

DEF_EXPAND(expand8, XB)
DEF_EXPAND(expand1, 1)

typedef struct {
  dwr_job d;                /* the depthwise convolution's rows (d.p->x unused) */
  const gpux__conv2d *e;    /* the expansion: X [n, c, h, w] -> [n, m, h, w], 1 x 1 */
  int64_t blocks;           /* blocks of XB channels */
  int64_t ex_rows;          /* X rows of a strip at most */
} xdw_job;

static void xdw_tasks(void *ctx, int64_t begin, int64_t end) {
  xdw_job *j = ctx;
  const gpux__conv2d *d = j->d.p, *e = j->e;
  static const gpux__conv_epilogue none = {.act = GPUX_EP_NONE};
  const gpux__conv_epilogue *ep = e->ep ? e->ep : &none;
  int64_t hw = e->h * e->w_, per_image = j->d.strips * j->blocks;
  float *buf = gpux__scratch(GPUX__SCRATCH_CONV_TILE, (size_t)(j->d.in_rows * j->d.wp) * sizeof(float));
  float *ex = gpux__scratch(GPUX__SCRATCH_CONV_EXPAND, (size_t)(XB * j->ex_rows * e->w_) * sizeof(float));
  if (!buf || !ex) {
    atomic_store(&j->d.failed, 1);
    return;
  }
  if (j->d.direct) memset(buf, 0, (size_t)d->w_ * sizeof *buf);
  for (int64_t t = begin; t < end; t++) {
    int64_t n = t / per_image, si = t % per_image / j->blocks, b = t % j->blocks;
    int64_t oh0 = si * j->d.strip, oh1 = GPUX__MIN(d->oh, oh0 + j->d.strip);
    /* the X rows [e0, e1) the strip's outputs read */
    int64_t e0 = GPUX__MAX(0, oh0 * d->sh - d->pt);
    int64_t e1 = GPUX__MIN(d->h, (oh1 - 1) * d->sh - d->pt + (d->kh - 1) * d->dh + 1);
    int64_t np = GPUX__MAX(0, e1 - e0) * e->w_, m0 = b * XB, m1 = GPUX__MIN(e->m, m0 + XB);
    const float *x = e->x + n * e->c * hw + e0 * e->w_;
    int64_t m = m0;
    if (np > 0) {
      for (; m + XB <= m1; m += XB) expand8(x, hw, e->c, e->w + m * e->c, e->b, ep, m, ex + (m - m0) * np, np, np);
      for (; m < m1; m++) expand1(x, hw, e->c, e->w + m * e->c, e->b, ep, m, ex + (m - m0) * np, np, np);
    }
    for (m = m0; m < m1; m++) {
      float *er = ex + (m - m0) * np;
      dwr_strip(&j->d, er, e0, e1, m, oh0, oh1, d->y + (n * d->m + m) * d->oh * d->ow, buf, NULL);
    }
  }
  gpux__expand_dw_tasks += end - begin;
}

int gpux__conv2d_expand_dw(const gpux__conv2d *e, const gpux__conv2d *d) {
  if (!gpux__conv_dw16_available() || e->g != 1 || e->kh != 1 || e->kw != 1 || e->sh != 1 || e->sw != 1 || e->pt ||
      e->pl || e->oh != e->h || e->ow != e->w_ || e->channels_last || d->c != e->m || d->g != d->c || d->m != d->c ||
      d->n != e->n || d->h != e->h || d->w_ != e->w_ || d->pt < 0 || d->pl < 0 || d->channels_last ||
      (d->ep && d->ep->res) || (e->ep && e->ep->res) || !(d->kh == 3 || d->kh == 5) || d->kw != d->kh ||
      d->dh != 1 || d->dw != 1 || d->sh != d->sw || (d->sh != 1 && d->sh != 2))
    return 1;
  xdw_job j = {.d = {.p = d}, .e = e, .blocks = (e->m + XB - 1) / XB};
  dwr_rows(&j.d);
  /* strips: the halo's rows (computed for two strips) at most a sixteenth of a strip's rows, and
   * a block's expanded rows at most 128 KB */
  int64_t halo = d->kh - d->sh, max_rows = GPUX__MAX(d->kh, 32768 / (XB * e->w_));
  int64_t strip = GPUX__MAX(1, (16 * halo + d->sh - 1) / d->sh);
  strip = GPUX__MIN(strip, GPUX__MAX(1, (max_rows - d->kh) / d->sh + 1));
  double macs = (double)(e->n * e->m) * (double)(e->h * e->w_) * (double)e->c, outs = (double)(d->n * d->c) * (double)(d->oh * d->ow);
  double work = macs + (double)(e->n * e->m) * (double)(e->h * e->w_) * gpux__conv_ep_work(e->ep) +
                outs * ((double)(d->kh * d->kw) * GPUX__DW_MAC_WORK + gpux__conv_ep_work(d->ep));
  int threads = gpux__threads_for(work);
  int64_t want = threads > 1 ? 3 * threads : 1; /* tasks */
  if (e->n * j.blocks * ((d->oh + strip - 1) / strip) < want) /* few tasks: shorter strips */
    strip = GPUX__MAX(1, GPUX__MIN(strip, (d->oh * e->n * j.blocks + want - 1) / want));
  /* strips of equal rows: 28 rows as 24 and 4 left one of 2 threads six times the other's work */
  j.d.strips = (d->oh + GPUX__MIN(d->oh, strip) - 1) / GPUX__MIN(d->oh, strip);
  j.d.strip = (d->oh + j.d.strips - 1) / j.d.strips;
  j.d.strips = (d->oh + j.d.strip - 1) / j.d.strip;
  /* stride 1: strips of whole groups of the rows' kernels (DR or DR5 rows, whose sums round
   * otherwise than the one-row kernel's), so that every output row takes the kernel it takes in
   * one strip of all rows, whatever the threads */
  int64_t group = d->kh == 3 ? DR : DR5;
  if (d->sh == 1 && j.d.strips > 1 && j.d.strip % group) {
    j.d.strip = j.d.strip > group ? j.d.strip / group * group : group;
    j.d.strips = (d->oh + j.d.strip - 1) / j.d.strip;
  }
  j.d.in_rows = (j.d.strip - 1) * d->sh + d->kh;
  j.ex_rows = GPUX__MIN(d->h, j.d.in_rows);
  gpux__conv_plan_note("expand-dw", d, threads, e->n * j.blocks * j.d.strips, j.d.strip * d->ow, XB,
                       (double)(j.d.strip * d->ow * XB) * (double)(d->kh * d->kw + e->c));
  atomic_init(&j.d.failed, 0);
  gpux__parallel_for_work(e->n * j.d.strips * j.blocks, work, xdw_tasks, &j);
  if (atomic_load(&j.d.failed)) return gpux__error(GPUX_E_NOMEM, "out of memory for an expansion's strip");
  return 0;
}

/* ---- channels last (gpux.ConvNHWC) ---- */

/* X [n, h, w, c] and Y [n, oh, ow, c] need no copies: each output position's 16 channels are one
 * vector, each tap one FMA with the tap's 16 weights ([block][tap][16], as above). Tasks are
 * (image, strip of output rows); a row's positions whose every tap lies inside X's columns go
 * 8 or 4 at a time (one weight load for 8 FMAs), the rest one at a time over their taps inside X,
 * 4 blocks of 16 channels a call; a row goes 4 blocks at a time (their weights in L1: 960 channels'
 * 5 x 5 weights are 96 KB); FusedConv's epilogue runs on each output row while it is in L1. */
typedef struct {
  const gpux__conv2d *p;
  const float *wk;
  int64_t blocks, strip, strips;
  int64_t gb, groups;       /* a task's blocks of 16 channels (the last group fewer), groups a row */
} dwcl_job;

/* y[q * ldc] (16 lanes, mk) = sum over taps (i in [i0, i1), j < kw) of w[i * kw + j] *
 * x[(i * dh) * ldr + (q * sw + j * dw) * ldc] for q < NQ (x: the first output's first tap's column
 * in row 0 of the kernel, whose rows are ldr floats apart). */
#define DEF_DWCL(NAME, NQ, MASKED)                                                                   \
  TARGET512 static void NAME(const float *x, const float *w, int64_t i0, int64_t i1, int64_t kw,       \
                             int64_t ldr, int64_t ldc, int64_t sw, int64_t dh, int64_t dw, __mmask16 mk, \
                             float *y) {                                                             \
    __m512 acc[NQ];                                                                                 \
    _Pragma("GCC unroll 8") for (int q = 0; q < NQ; q++) acc[q] = _mm512_setzero_ps();            \
    for (int64_t i = i0; i < i1; i++) {                                                             \
      const float *xr = x + i * dh * ldr, *wr = w + i * kw * 16;                                    \
      for (int64_t j = 0; j < kw; j++) {                                                            \
        __m512 wv = _mm512_load_ps(wr + j * 16);                                                    \
        const float *xc = xr + j * dw * ldc;                                                        \
        _Pragma("GCC unroll 8") for (int q = 0; q < NQ; q++)                                        \
          acc[q] = _mm512_fmadd_ps(wv, MASKED ? _mm512_maskz_loadu_ps(mk, xc + q * sw * ldc)          \
                                              : _mm512_loadu_ps(xc + q * sw * ldc), acc[q]);         \
      }                                                                                             \
    }                                                                                               \
    _Pragma("GCC unroll 8") for (int q = 0; q < NQ; q++) _mm512_mask_storeu_ps(y + q * ldc, mk, acc[q]); \
  }

DEF_DWCL(dwcl8, 8, 0)
DEF_DWCL(dwcl4, 4, 0)
/* the same for a last block of fewer than 16 channels (mk), the loads masked */
DEF_DWCL(dwcl8m, 8, 1)
DEF_DWCL(dwcl4m, 4, 1)

/* One output position whose taps of columns [j0, j1) lie inside X, for DB blocks of 16 channels
 * at once (x, w and y at the first block's; the blocks' weights wb floats apart; lanes at or past
 * channel nc of the first block masked off): DB independent chains of FMAs where one block alone
 * waits on each FMA's latency (on 7 x 7 and 14 x 14 planes most positions are borders). */
#define DB 4
TARGET512 static void dwcl1(const float *x, const float *w, int64_t wb, int64_t i0, int64_t i1, int64_t j0,
                            int64_t j1, int64_t kw, int64_t ldr, int64_t ldc, int64_t dh, int64_t dw, int64_t nc,
                            float *y) {
  __m512 acc[DB];
  __mmask16 mk[DB];
  _Pragma("GCC unroll 4") for (int b = 0; b < DB; b++) acc[b] = _mm512_setzero_ps(), mk[b] = gpux__lanes16(nc - b * 16);
  if (nc >= DB * 16) { /* whole blocks: plain loads, which the FMAs take as operands, no masks held */
    for (int64_t i = i0; i < i1; i++)
      for (int64_t j = j0; j < j1; j++) {
        const float *wt = w + (i * kw + j) * 16, *xt = x + i * dh * ldr + j * dw * ldc;
        _Pragma("GCC unroll 4") for (int b = 0; b < DB; b++)
          acc[b] = _mm512_fmadd_ps(_mm512_load_ps(wt + b * wb), _mm512_loadu_ps(xt + b * 16), acc[b]);
      }
    _Pragma("GCC unroll 4") for (int b = 0; b < DB; b++) _mm512_storeu_ps(y + b * 16, acc[b]);
    return;
  }
  for (int64_t i = i0; i < i1; i++)
    for (int64_t j = j0; j < j1; j++) {
      const float *wt = w + (i * kw + j) * 16, *xt = x + i * dh * ldr + j * dw * ldc;
      _Pragma("GCC unroll 4") for (int b = 0; b < DB; b++)
        acc[b] = _mm512_fmadd_ps(_mm512_maskz_load_ps(mk[b], wt + b * wb), _mm512_maskz_loadu_ps(mk[b], xt + b * 16),
                                 acc[b]);
    }
  _Pragma("GCC unroll 4") for (int b = 0; b < DB; b++) _mm512_mask_storeu_ps(y + b * 16, mk[b], acc[b]);
}

/* The first tap index t in [0, k) with 0 <= at + t * d (a negative at), and one past the last with
 * at + t * d < n. */
static inline void taps_inside(int64_t at, int64_t k, int64_t d, int64_t n, int64_t *t0, int64_t *t1) {
  int64_t lo = at < 0 ? (-at + d - 1) / d : 0, hi = at < n ? (n - at + d - 1) / d : 0;
  *t0 = GPUX__MIN(lo, k), *t1 = GPUX__MAX(*t0, GPUX__MIN(hi, k));
}

/* sums[ch] = y[0 * c + ch] + y[1 * c + ch] + ... over ow positions, in double and in that order,
 * for channels [c0, c1): a finished output row, in L1, added up for a GlobalAveragePool of Y. */
TARGET512 static void row_sums16(const float *y, int64_t c, int64_t ow, int64_t c0, int64_t c1, double *sums) {
  for (int64_t ch = c0; ch < c1; ch += 32) {
    __mmask16 mk[2];
    __m512d acc[4];
    for (int v = 0; v < 2; v++) mk[v] = gpux__lanes16(c1 - ch - 16 * v);
    for (int a = 0; a < 4; a++) acc[a] = _mm512_setzero_pd();
    for (int64_t q = 0; q < ow; q++)
      for (int v = 0; v < 2; v++) {
        __m512 x = _mm512_maskz_loadu_ps(mk[v], y + q * c + ch + 16 * v);
        acc[2 * v] = _mm512_add_pd(acc[2 * v], _mm512_cvtps_pd(_mm512_castps512_ps256(x)));
        acc[2 * v + 1] = _mm512_add_pd(acc[2 * v + 1], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))));
      }
    for (int v = 0; v < 2; v++) {
      _mm512_mask_storeu_pd(sums + ch + 16 * v, (__mmask8)(mk[v] & 0xff), acc[2 * v]);
      _mm512_mask_storeu_pd(sums + ch + 16 * v + 8, (__mmask8)(mk[v] >> 8), acc[2 * v + 1]);
    }
  }
}

static void dwcl_tasks(void *ctx, int64_t begin, int64_t end) {
  const dwcl_job *j = ctx;
  const gpux__conv2d *p = j->p;
  int64_t c = p->c, taps = p->kh * p->kw, ldr = p->w_ * c;
  /* positions [q0, q1) have every tap inside X's columns */
  int64_t q0 = GPUX__MIN(p->ow, p->pl > 0 ? (p->pl + p->sw - 1) / p->sw : 0);
  int64_t last = p->w_ - 1 + p->pl - (p->kw - 1) * p->dw;
  int64_t q1 = last < 0 ? q0 : GPUX__MAX(q0, GPUX__MIN(p->ow, last / p->sw + 1));
  for (int64_t t = begin; t < end; t++) {
    int64_t g = t % j->groups, rt = t / j->groups;
    int64_t n = rt / j->strips, r0 = rt % j->strips * j->strip, r1 = GPUX__MIN(p->oh, r0 + j->strip);
    int64_t bg0 = g * j->gb, bg1 = GPUX__MIN(j->blocks, bg0 + j->gb), c0 = bg0 * 16, c1 = GPUX__MIN(c, bg1 * 16);
    const float *xn = p->x + n * p->h * ldr;
    for (int64_t r = r0; r < r1; r++) {
      int64_t ih = r * p->sh - p->pt, i0, i1;
      taps_inside(ih, p->kh, p->dh, p->h, &i0, &i1);
      float *yr = p->y + (n * p->oh + r) * p->ow * c;
      const float *xr = xn + ih * ldr; /* row of the kernel's first row: read only at rows i0 on */
      int64_t inner = q1 - q0 >= 4 ? (q1 - q0) / 4 * 4 : 0; /* positions [q0, q0 + inner) in 8s and 4s */
      for (int64_t b0 = bg0; b0 < bg1; b0 += DB) { /* DB blocks' weights stay in L1 along the row */
        for (int64_t b = b0; b < GPUX__MIN(b0 + DB, bg1); b++) {
          __mmask16 mk = gpux__lanes16(c - b * 16);
          const float *wb = j->wk + b * taps * 16, *xb = xr + b * 16;
          float *yb = yr + b * 16;
          for (int64_t q = q0; q < q0 + inner; q += 4) {
            const float *xq = xb + (q * p->sw - p->pl) * c;
            if (q + 8 <= q0 + inner) {
              (mk == 0xffff ? dwcl8 : dwcl8m)(xq, wb, i0, i1, p->kw, ldr, c, p->sw, p->dh, p->dw, mk, yb + q * c);
              q += 4;
            } else {
              (mk == 0xffff ? dwcl4 : dwcl4m)(xq, wb, i0, i1, p->kw, ldr, c, p->sw, p->dh, p->dw, mk, yb + q * c);
            }
          }
        }
        /* the rest one at a time over their taps inside X, DB blocks a call */
        for (int64_t q = 0; q < p->ow; q++) {
          if (q == q0 && inner > 0) q += inner;
          if (q >= p->ow) break;
          int64_t iw = q * p->sw - p->pl, j0, j1;
          taps_inside(iw, p->kw, p->dw, p->w_, &j0, &j1);
          dwcl1(xr + iw * c + b0 * 16, j->wk + b0 * taps * 16, taps * 16, i0, i1, j0, j1, p->kw, ldr, c, p->dh, p->dw,
                GPUX__MIN(c1, (b0 + DB) * 16) - b0 * 16, yr + q * c + b0 * 16);
        }
      }
      gpux__conv_finish_nhwc(yr + c0, c, p->ow, c0, c1 - c0, p->b, p->ep);
      if (p->row_sums) row_sums16(yr, c, p->ow, c0, c1, p->row_sums + (n * p->oh + r) * c);
    }
  }
}

int gpux__conv2d_depthwise_nhwc(const gpux__conv2d *p) {
  if (!gpux__conv_dw16_available() || !p->channels_last || p->c != p->g || p->m != p->c || p->pt < 0 ||
      p->pl < 0)
    return 1;
  dwcl_job j = {.p = p, .blocks = (p->c + 15) / 16, .groups = 1};
  j.gb = j.blocks;
  int64_t taps = p->kh * p->kw;
  double outs = (double)(p->n * p->c) * (double)(p->oh * p->ow);
  double work = outs * ((double)taps * GPUX__DW_MAC_WORK + gpux__conv_ep_work(p->ep));
  int threads = gpux__threads_for(work);
  int64_t want = threads > 1 ? 3 * threads : 1; /* tasks */
  j.strip = p->n >= want ? p->oh : GPUX__MAX(1, (p->oh * p->n + want - 1) / want);
  if (threads > 1 && p->n < want) {
    /* the strip whose busiest thread has the fewest rows, the largest of those (fewest tasks):
     * 14 rows on 2 threads went as 5 strips of 3, one thread 9 rows; now 14 of 1 */
    int64_t best = INT64_MAX, keep = j.strip;
    for (int64_t s = j.strip; s >= 1; s--) {
      int64_t rows = gpux__parallel_busiest(p->n * ((p->oh + s - 1) / s), threads) * s;
      if (rows < best) best = rows, keep = s;
    }
    j.strip = keep;
    /* Rows alone leave a thread more than its share where they are few against the threads (7 x 7
     * and 14 x 14 planes): rows of one row may also split their channels into G groups of gb
     * blocks of 16 (gb at least DB, whose blocks go together along a row), where the busiest
     * thread's rows x blocks are fewer by more than 1/16 (a coarser split within that is kept:
     * fewer, larger tasks). With B blocks and R rows, the busiest thread has (parallel_busiest):
     *   t = 1: one task, as before.
     *   t = 2: R = 14: 7 x B rows and blocks, the ideal; kept. R = 7: 4 x B (one thread 4 rows of
     *          7), where 2 groups give 14 tasks of B / 2: 3.5 x B, the ideal.
     *   t = 4: R = 14, B = 42 (672 channels): 4 x 42 = 168 (2 strips of 2 rows, 7 strips on 4
     *          threads), 2 groups of 21: 28 tasks, 7 x 21 = 147, the ideal; B = 30: 120 -> 105.
     *          R = 7, B = 60: 2 x 60 = 120, 4 groups of 15: 28 tasks, 7 x 15 = 105, the ideal.
     *          B = 13 (200 channels): 4 x 13 = 52; no group of 4 blocks or more comes under 48.75.
     *   t = 16: R = 14, B = 42: 42 (one row a thread, 2 threads idle); 9 groups of 5: 40, kept
     *          as it was (not under 39.4). R = 7, B = 60: 60 (7 of 16 threads busy, 43%),
     *          15 groups of 4: 105 tasks, 7 x 4 = 28 (ideal 26.25, 94%). */
    int64_t rows = p->n * p->oh, most = GPUX__MIN(j.blocks / DB, 4 * (int64_t)threads);
    double work_best = (double)best * (double)j.blocks;
    for (int64_t groups = 2; groups <= most; groups++) {
      int64_t gb = (j.blocks + groups - 1) / groups;
      if ((j.blocks + gb - 1) / gb != groups) continue; /* the same groups as fewer of them */
      double w = (double)gpux__parallel_busiest(rows * groups, threads) * (double)gb;
      if (w < work_best * (15.0 / 16.0)) work_best = w, j.strip = 1, j.gb = gb, j.groups = groups;
    }
  }
  j.strips = (p->oh + j.strip - 1) / j.strip;
  gpux__conv_plan_note("dw-nhwc", p, threads, p->n * j.strips * j.groups, j.strip * p->ow, j.gb * 16 < p->c ? j.gb * 16 : p->c,
                       (double)(j.strip * p->ow * GPUX__MIN(j.gb * 16, p->c)) * (double)taps);
  if (!(j.wk = p->wk)) { /* interleaved here, on the calling thread, where the node keeps none */
    float *wk = gpux__scratch(GPUX__SCRATCH_CONV_TAPS, (size_t)gpux__conv_dw_packed_floats(p->c, taps) * sizeof *wk);
    if (!wk) return GPUX_E_NOMEM;
    gpux__conv_dw_pack(p->w, p->c, taps, wk);
    j.wk = wk;
  }
  gpux__parallel_for_work(p->n * j.strips * j.groups, work, dwcl_tasks, &j);
  return 0;
}

int64_t gpux__conv_dw_packed_floats(int64_t c, int64_t taps) { return (c + 15) / 16 * taps * 16; }

int gpux__conv_dw_pack(const float *w, int64_t c, int64_t taps, float *dst) {
  if (!gpux__conv_dw16_available()) return 1;
  for (int64_t b = 0; b < (c + 15) / 16; b++)
    interleave16(w + b * 16 * taps, taps, (int)GPUX__MIN(16, c - b * 16), taps, dst + b * taps * 16);
  return 0;
}

#else

int gpux__conv_dw16_available(void) { return 0; }
int gpux__conv2d_depthwise16(const gpux__conv2d *p) { (void)p; return 1; }
int gpux__conv2d_depthwise_nhwc(const gpux__conv2d *p) { (void)p; return 1; }
int64_t gpux__conv_dw_packed_floats(int64_t c, int64_t taps) { return (c + 15) / 16 * taps * 16; }
int gpux__conv_dw_pack(const float *w, int64_t c, int64_t taps, float *dst) { (void)w, (void)c, (void)taps, (void)dst; return 1; }
_Atomic long long gpux__expand_dw_tasks;
int gpux__conv2d_expand_dw(const gpux__conv2d *e, const gpux__conv2d *d) { (void)e, (void)d; return 1; }

#endif /* DW16 */
