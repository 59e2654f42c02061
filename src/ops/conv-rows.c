/* conv-rows.c — float32 convolution of few input channels (an image model's stem: 3 channels in,
 * ResNet-50's 7 x 7 window of stride 2) as a product on AVX-512 register blocks whose k loop goes
 * over the window's rows:
 *
 *   Y^T [P, M] = A [P, K] x W^T [K, M],   K = (i, j, channel), i and j the window's row and column,
 *
 * A's row p being output position p's window. X is first copied, padded, channels last
 * ([row][column][C]): with a dilation of 1 along W, row i of a window is one run of kw x C
 * consecutive floats, so a position's whole window is kh runs, one an input row apart. The
 * register block, 6 positions x 64 output channels (8 x 16-48 for narrower panels), sums all kh
 * runs in registers in one pass: W^T's panel of K x 64 floats (37 KB for 7 x 7 x 3) stays in L1
 * while every block of positions passes over it, and C is stored once, where conv-gemm.c, whose
 * passes go tap by tap over C channels, would load and store C 49 times for 3 channels a pass.
 * The weights are conv-gemm.c's packing (gpux__conv_gemm_pack: k = (i, j, channel) is the same
 * order). FusedConv's epilogue runs on a tile's sums, 16 channels a vector, before they are
 * transposed into Y's planes (with a residual, read at Y's place: after); with p->channels_last
 * the sums are Y's rows, finished in registers as a block stores them (the bias, the residual,
 * the activation, clamp, scale and shift: Y written once, not read back), and X is channels
 * last already unless p->x_planes (a channels-last region's first convolution, which reads the
 * graph's planes and writes the region's layout: their padded copy interleaves few channels by
 * permutes, C vectors of 16 positions a pass, where a 16 x 16 transpose moved 16 lanes for C). */
#include "core/scratch.h"
#include "ops/conv.h"
#include "ops/gemm.h"
#include <stdatomic.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/conv-epilogue16.h"
#include "ops/transpose16.h"
#define CROWS 1
#define TARGET512 __attribute__((target("avx512f,fma")))
#else
#define CROWS 0
#endif

#define PANEL 64        /* output channels per panel of W^T (sgemm.c's AVX-512 panel) */
#define MR 6            /* positions a block of a full panel */
#define NMR 8           /* positions a block of a panel of 48 channels or fewer */
#define MAX_C 15        /* input channels at most: from 16 conv-gemm.c's passes are long enough */
#define MAX_K 1024      /* K at most: a panel of W^T within 256 KB of L2 */
#define TILE 192        /* positions a task's tile of sums (NCHW Y): [TILE][M within 4 panels] */

int gpux__conv_rows_takes(const gpux__conv2d *p) {
  return CROWS && gpux__conv_gemm_available() && gpux__have_avx512_fma() && p->g == 1 && p->c <= MAX_C &&
         p->kh * p->kw > 1 && p->dw == 1 && p->kh * p->kw * p->c <= MAX_K && p->pt >= 0 && p->pl >= 0;
}

#if CROWS

typedef struct {
  const gpux__conv2d *p;
  const gpux__sgemm_b *wt;  /* W^T [kh * kw * c][m] packed */
  float *xt;                /* one image, padded, channels last [hp][wp][c] */
  int64_t hp, wp;
  const float *x;           /* that image: [c][h][w], or [h][w][c] channels last */
  int64_t n;                /* its index */
  int64_t tp, tiles;        /* positions per task, tasks along the positions */
  int64_t mt, mtiles;       /* output channels per task (whole panels), tasks along them */
  atomic_int failed;
} rows_job;

/* n positions of X's row at src (c <= MAX_PERMUTE channels, planes `plane` floats apart)
 * channels last at dst: for each 16 positions, c vectors of 16 interleaved floats, lane l of
 * vector v (position (16v + l) / c, channel (16v + l) % c) permuted out of the c planes' vectors,
 * c * c permutes, where a 16 x 16 transpose costs the same for 3 channels as for 16. */
#define MAX_PERMUTE 4
TARGET512 static void interleave_row(float *dst, const float *src, int64_t plane, int64_t n, int64_t c) {
  int32_t at[MAX_PERMUTE][16];
  __mmask16 sel[MAX_PERMUTE][MAX_PERMUTE] = {{0}};
  for (int64_t v = 0; v < c; v++)
    for (int l = 0; l < 16; l++) {
      int64_t e = 16 * v + l;
      at[v][l] = (int32_t)(e / c);
      sel[v][e % c] |= (__mmask16)(1u << l);
    }
  __m512i idx[MAX_PERMUTE];
  for (int64_t v = 0; v < c; v++) idx[v] = _mm512_loadu_si512(at[v]);
  for (int64_t w0 = 0; w0 < n; w0 += 16) {
    __mmask16 wm = gpux__lanes16(n - w0);
    int64_t left = GPUX__MIN(16, n - w0) * c; /* floats to store */
    __m512 x[MAX_PERMUTE];
    for (int64_t ch = 0; ch < c; ch++) x[ch] = _mm512_maskz_loadu_ps(wm, src + ch * plane + w0);
    for (int64_t v = 0; v < c && 16 * v < left; v++) {
      __m512 o = _mm512_setzero_ps();
      for (int64_t ch = 0; ch < c; ch++) o = _mm512_mask_permutexvar_ps(o, sel[v][ch], idx[v], x[ch]);
      _mm512_mask_storeu_ps(dst + w0 * c + 16 * v, gpux__lanes16(left - 16 * v), o);
    }
  }
}

/* Rows [begin, end) of xt: zeros in the padding, X's rows channels last in between (a masked
 * 16 x 16 transpose a run of 16 columns: C is under 16; permutes for a few channels). */
TARGET512 static void pad_rows(void *ctx, int64_t begin, int64_t end) {
  const rows_job *j = ctx;
  const gpux__conv2d *p = j->p;
  int64_t c = p->c, plane = p->h * p->w_;
  for (int64_t r = begin; r < end; r++) {
    float *dst = j->xt + r * j->wp * c;
    int64_t ih = r - p->pt;
    if (ih < 0 || ih >= p->h) {
      memset(dst, 0, (size_t)(j->wp * c) * sizeof *dst);
      continue;
    }
    int64_t lo = GPUX__MIN(p->pl, j->wp), n = GPUX__MAX(0, GPUX__MIN(p->w_, j->wp - lo));
    memset(dst, 0, (size_t)(lo * c) * sizeof *dst);
    if (lo + n < j->wp) memset(dst + (lo + n) * c, 0, (size_t)((j->wp - lo - n) * c) * sizeof *dst);
    dst += lo * c;
    if (p->channels_last && !p->x_planes) {
      memcpy(dst, j->x + ih * p->w_ * c, (size_t)(n * c) * sizeof *dst);
      continue;
    }
    const float *src = j->x + ih * p->w_;
    if (c <= MAX_PERMUTE) {
      interleave_row(dst, src, plane, n, c);
      continue;
    }
    __mmask16 cm = gpux__lanes16(c);
    __m512 v[16];
    for (int64_t w0 = 0; w0 < n; w0 += 16) {
      __mmask16 wm = gpux__lanes16(n - w0);
      for (int q = 0; q < 16; q++) v[q] = q < c ? _mm512_maskz_loadu_ps(wm, src + q * plane + w0) : _mm512_setzero_ps();
      gpux__transpose16(v);
      for (int64_t q = 0; q < 16 && w0 + q < n; q++) _mm512_mask_storeu_ps(dst + (w0 + q) * c, cm, v[q]);
    }
  }
}

/* What a block applies to its sums as it stores them into a channels-last Y: FusedConv's
 * epilogue, its bias, scale and shift from the panel's first channel on, the residual at the
 * block's place (rows ldc apart, as C's). */
typedef struct {
  const gpux__conv_epilogue *e;
  const float *bias, *scale, *shift; /* the panel's, or NULL */
  const float *res;                  /* or NULL */
} rows_ep;

/* The register block: C[i, 0:nc] = sum over window rows r < kh and s < run of a[i][r * rs + s] *
 * b[(r * run + s) * 64 + 0:nc] for positions i < mr <= ROWS (a[i] from mr on repeat a valid
 * one: computed and dropped), NV = ceil(nc / 16) vectors a position; with ep, the epilogue on
 * the sums before they are stored, as gpux__conv_finish_nhwc would run it after: (sum + bias)
 * + R, then gpux__ep16_vec (the same operations, the same bits). The hot loop: ROWS x NV
 * accumulators, NV loads of the panel and ROWS broadcasts a k step. */
#define DEF_BLOCK(NAME, ROWS, NV)                                                                             \
  GPUX_EP16_TARGET static void NAME(const float *const *a, int64_t kh, int64_t run, int64_t rs, const float *b,  \
                                    float *c, int64_t ldc, int mr, int64_t nc, const rows_ep *ep) {           \
    __m512 acc[ROWS][NV];                                                                                    \
    __mmask16 mk[NV];                                                                                        \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) mk[v] = gpux__lanes16(nc - 16 * v);                \
    _Pragma("GCC unroll 8") for (int i = 0; i < ROWS; i++)                                                  \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();                 \
    for (int64_t r = 0; r < kh; r++) {                                                                       \
      const float *ap[ROWS];                                                                                 \
      _Pragma("GCC unroll 8") for (int i = 0; i < ROWS; i++) ap[i] = a[i] + r * rs;                         \
      for (int64_t s = 0; s < run; s++, b += PANEL) {                                                        \
        __m512 bv[NV];                                                                                       \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(b + 16 * v);            \
        _Pragma("GCC unroll 8") for (int i = 0; i < ROWS; i++) {                                            \
          __m512 av = _mm512_set1_ps(ap[i][s]);                                                              \
          _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]); \
        }                                                                                                    \
      }                                                                                                      \
    }                                                                                                        \
    if (!ep) {                                                                                               \
      _Pragma("GCC unroll 8") for (int i = 0; i < ROWS; i++) {                                              \
        if (i >= mr) break;                                                                                  \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk[v], acc[i][v]); \
      }                                                                                                      \
      return;                                                                                                \
    }                                                                                                        \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                                  \
      if (!mk[v]) break;                                                                                     \
      __m512 vb = ep->bias ? _mm512_maskz_loadu_ps(mk[v], ep->bias + 16 * v) : _mm512_setzero_ps();        \
      __m512 vs = ep->scale ? _mm512_maskz_loadu_ps(mk[v], ep->scale + 16 * v) : _mm512_set1_ps(1.0f);     \
      __m512 vt = ep->scale ? _mm512_maskz_loadu_ps(mk[v], ep->shift + 16 * v) : _mm512_setzero_ps();      \
      _Pragma("GCC unroll 8") for (int i = 0; i < ROWS; i++) {                                              \
        if (i >= mr) break;                                                                                  \
        __m512 x = _mm512_add_ps(acc[i][v], vb);                                                             \
        if (ep->res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk[v], ep->res + i * ldc + 16 * v));         \
        _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk[v], gpux__ep16_vec(x, vs, vt, ep->e));               \
      }                                                                                                      \
    }                                                                                                        \
  }

DEF_BLOCK(block64, MR, 4)
DEF_BLOCK(block48, NMR, 3)
DEF_BLOCK(block32, NMR, 2)
DEF_BLOCK(block16, NMR, 1)

typedef void (*block_fn)(const float *const *a, int64_t kh, int64_t run, int64_t rs, const float *b, float *c,
                         int64_t ldc, int mr, int64_t nc, const rows_ep *ep);

static void rows_tasks(void *ctx, int64_t begin, int64_t end) {
  rows_job *j = ctx;
  const gpux__conv2d *p = j->p;
  const gpux__sgemm_b *wt = j->wt;
  int64_t os = p->oh * p->ow, c = p->c;
  int64_t run = p->kw * c, rs = p->dh * j->wp * c; /* a window row's floats, and from one to the next */
  /* the tile's sums [tp][mt] (NCHW Y) */
  float *ct = p->channels_last ? NULL : gpux__scratch(GPUX__SCRATCH_CONV_TILE, (size_t)(j->tp * j->mt) * sizeof(float));
  if (!p->channels_last && !ct) {
    atomic_store(&j->failed, 1);
    return;
  }
  for (int64_t t = begin; t < end; t++) {
    int64_t p0 = t / j->mtiles * j->tp, p1 = GPUX__MIN(os, p0 + j->tp), np = p1 - p0;
    int64_t m0 = t % j->mtiles * j->mt, m1 = GPUX__MIN(p->m, m0 + j->mt);
    float *yt = p->channels_last ? p->y + (j->n * os + p0) * p->m + m0 : ct;
    int64_t ldc = p->channels_last ? p->m : j->mt;
    for (int64_t pn = m0 / PANEL; pn * PANEL < m1; pn++) {
      int64_t nc = GPUX__MIN(PANEL, p->m - pn * PANEL);
      static const block_fn narrow[3] = {block16, block32, block48};
      block_fn bf = nc <= 48 ? narrow[(nc + 15) / 16 - 1] : block64;
      int64_t step = nc <= 48 ? NMR : MR;
      const float *b = wt->data + pn * wt->k * PANEL;
      float *cp = yt + (pn * PANEL - m0);
      /* a channels-last Y: each block finishes its sums as it stores them */
      rows_ep ep = {.e = p->ep};
      if (p->channels_last) {
        ep.bias = p->b ? p->b + pn * PANEL : NULL;
        ep.scale = p->ep->scale ? p->ep->scale + pn * PANEL : NULL;
        ep.shift = p->ep->scale ? p->ep->shift + pn * PANEL : NULL;
      }
      /* the hot loop: blocks of positions over the panel, which stays in L1 */
      int64_t oh = p0 / p->ow, ow = p0 % p->ow;
      for (int64_t s = 0; s < np; s += step) {
        int mr = (int)GPUX__MIN(step, np - s);
        const float *a[NMR];
        for (int i = 0; i < step; i++) {
          if (i < mr) {
            a[i] = j->xt + (oh * p->sh * j->wp + ow * p->sw) * c;
            if (++ow == p->ow) ow = 0, oh++;
          } else {
            a[i] = a[mr - 1];
          }
        }
        if (p->channels_last && p->ep->res) ep.res = p->ep->res + (cp + s * ldc - p->ep->y0);
        bf(a, p->kh, run, rs, b, cp + s * ldc, ldc, mr, nc, p->channels_last ? &ep : NULL);
      }
    }
    if (p->channels_last) continue; /* Y is finished */
    /* the bias and the epilogue on the sums, then back into Y's planes (with a residual: on Y) */
    float *y = p->y + (j->n * p->m + m0) * os + p0;
    int later = gpux__conv_finish_cl(ct, j->mt, np, m0, m1 - m0, p->b, p->ep);
    gpux__rows_to_planes(ct, j->mt, np, m1 - m0, y, os);
    for (int64_t m = m0; later && m < m1; m++)
      gpux__conv_finish(y + (m - m0) * os, 0, y + (m - m0) * os, 0, 1, np, p->b ? p->b[m] : 0.0f, p->ep, m);
  }
}

int gpux__conv2d_rows(const gpux__conv2d *p, const gpux__sgemm_b *wt) {
  int64_t taps = p->kh * p->kw;
  if (!gpux__conv_rows_takes(p) || !wt || !wt->data || wt->nr != PANEL || wt->k != taps * p->c || wt->n != p->m)
    return 1;
  rows_job j = {.p = p, .wt = wt};
  /* every window, and all of X */
  j.hp = GPUX__MAX((p->oh - 1) * p->sh + (p->kh - 1) * p->dh + 1, p->h + p->pt);
  j.wp = GPUX__MAX((p->ow - 1) * p->sw + p->kw, p->w_ + p->pl);
  int64_t os = p->oh * p->ow;
  /* tasks: at most 4 panels of output channels, and tiles of up to TILE positions, about three
   * a thread, whole blocks each */
  int threads = gpux__thread_count();
  int64_t panels = (p->m + PANEL - 1) / PANEL;
  j.mt = GPUX__MIN(panels, 4) * PANEL;
  j.mtiles = (p->m + j.mt - 1) / j.mt;
  int64_t want = threads > 1 ? (3 * threads + j.mtiles - 1) / j.mtiles : 1;
  j.tp = GPUX__MIN(TILE, GPUX__MAX(NMR, (os + want - 1) / want));
  j.tp = (j.tp + 23) / 24 * 24; /* whole blocks of 6 and of 8 */
  j.tiles = (os + j.tp - 1) / j.tp;
  gpux__conv_plan_note("rows", p, threads, j.tiles * j.mtiles, j.tp, j.mt, (double)(j.tp * j.mt) * (double)(taps * p->c));
  float *xt = gpux__scratch(GPUX__SCRATCH_CONV_IMAGE, (size_t)(j.hp * j.wp * p->c + 16) * sizeof *xt);
  if (!xt) return gpux__error(GPUX_E_NOMEM, "out of memory for a convolution's input");
  j.xt = xt;
  atomic_init(&j.failed, 0);
  for (int64_t n = 0; n < p->n; n++) {
    j.n = n, j.x = p->x + n * p->c * p->h * p->w_;
    gpux__parallel_for(j.hp, GPUX__MAX(1, 16384 / (j.wp * p->c + 1)), pad_rows, &j);
    gpux__parallel_for(j.tiles * j.mtiles, 1, rows_tasks, &j);
  }
  if (atomic_load(&j.failed)) return gpux__error(GPUX_E_NOMEM, "out of memory for a convolution tile");
  return 0;
}

#else

int gpux__conv2d_rows(const gpux__conv2d *p, const gpux__sgemm_b *wt) { (void)p, (void)wt; return 1; }

#endif /* CROWS */
