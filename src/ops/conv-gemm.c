/* conv-gemm.c — float32 convolution (one group) as a product on packed weights with AVX-512
 * register blocks (sgemm.c's panel layout), the weights packed once (conv.c keeps them in the
 * node's state):
 *
 *   Y^T [P, M] = A [P, K] x W^T [K, M],   K = (tap, channel), tap = (i, j) of the window,
 *
 * A's row p being output position p's window. X is first copied, padded, channels last
 * ([row][column][C], 16 x 16 transposes, transpose16.h), so that a tap's C values of a position
 * are consecutive floats: every row of A is read in place, tap by tap, with no im2col, any
 * window, stride, padding or dilation. The kernel broadcasts A's values and reads W^T's panels
 * of 64 output channels as one sequential stream: each vector FMA serves 16 output channels of
 * one position, so small planes (7 x 7, 14 x 14) fill the register blocks as large ones do. A
 * panel of 48 channels or fewer (M = 24, 40; the last panel of M = 80, 112, 160) goes by blocks
 * of its own, 8 positions x 1-3 vectors, instead of computing all four of a wide block's.
 *
 * Tasks are tiles of positions x blocks of output channels. A task goes panel by panel; within a
 * panel, tap by tap in blocks of at most KC channels, whose KC x 64 floats of W^T (32 KB) stay in
 * L1 while every block of 6 (or 5, fives_from) positions of the tile passes over them, and the
 * next pass's W^T is asked into L2 a share a block (spread over a wide block's first k steps, a
 * line a step, where a burst of them waited for free fill buffers). FusedConv's epilogue runs on the tile's sums, [P][M],
 * 16 channels a vector while they are in cache (gpux__conv_finish_cl), before they are transposed
 * back into Y's planes (with a residual, which is read at Y's place: after).
 *
 * gpux.ConvNHWC's activations are channels last already (runtime/channels-last.c): X is read in
 * place, each tap's rows of a tile's positions looked up once (a tap in the padding reads a row
 * of zeros), with no padded copy, and the kernel
 * accumulates into Y's rows of M channels; a block's last pass applies the epilogue (bias, the
 * residual, asked into L1 a block ahead, the activation, clamp, scale and shift) while its rows
 * are in L1: a full block of 6 positions x 64 channels right after sgemm.c's assembly kernel
 * stored them (the compiled loop of the same FMAs kept some of its 24 sums on the stack: ResNet-50
 * at 1 thread 3-5% slower), other blocks on their sums in registers as they are stored. */
#include "core/scratch.h"
#include "ops/conv.h"
#include "ops/gemm.h"
#include <stdatomic.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/conv-epilogue16.h"
#include "ops/transpose16.h"
#define CGEMM 1
#define TARGET512 __attribute__((target("avx512f")))
#else
#define CGEMM 0
#endif

#define PANEL 64        /* output channels per panel of W^T (sgemm.c's AVX-512 panel) */
#define KC 128          /* channels of a tap per pass: KC x PANEL floats of W^T stay in L1 */
#define MR GPUX__SGEMM_MR

int gpux__conv_gemm_available(void) {
#if CGEMM
  static atomic_int ok = -1;
  int v = atomic_load_explicit(&ok, memory_order_relaxed);
  if (v < 0) {
    /* GPUX_CONV_DIRECT=avx2 or =0, or GPUX_CONV_GEMM=0, keeps the other kernels, for comparisons */
    const char *env = getenv("GPUX_CONV_DIRECT"), *off = getenv("GPUX_CONV_GEMM");
    v = gpux__sgemm_nr() == PANEL && !(env && (!strcmp(env, "avx2") || !strcmp(env, "0"))) && !(off && !strcmp(off, "0"));
    atomic_store_explicit(&ok, v, memory_order_relaxed);
  }
  return v;
#else
  return 0;
#endif
}

/* On larger planes the implicit GEMM of conv-direct.c is faster with few channels (openWakeWord's
 * embedding, 1x3 and 3x1 kernels of 24-96 channels on 76 x 32 to 19 x 8 planes, 0.85 -> 1.2 ms at
 * 1 thread on this path; PaddleOCR det 15 -> 22 ms, whose windows have 24 output channels: a
 * panel of 64 mostly empty), this one with more (ResNet-50's 3x3 convolutions of 128 channels
 * ending on 28 x 28, 8-13% less time at 1 thread), while the threads keep 96 positions each (on
 * 16 threads such a plane would split into tasks of 36 positions, and the implicit GEMM's are
 * even: kept there). */
int gpux__conv_gemm_first(int64_t c, int64_t m, int64_t taps, int64_t os) {
  return os <= 256 || (taps > 1 && c >= 128 && m >= PANEL && os <= 1024 && os >= 96 * (int64_t)gpux__thread_count());
}

/* Packing W [m, c, taps] a panel of PANEL output channels at a time: the panel's rows of W with
 * K reordered to (tap, channel) into a buffer of the task's own, then into the panel's place. */
typedef struct {
  const unsigned char *w;   /* W's bytes, maybe not aligned (a model file's in place) */
  float *dst;
  int64_t m, c, taps;
  atomic_int failed;
} pack_job;

static void pack_panels_of(void *ctx, int64_t p0, int64_t p1) {
  pack_job *j = ctx;
  int64_t c = j->c, taps = j->taps, kk = c * taps;
  float *wt = gpux__malloc((size_t)(PANEL * kk) * sizeof *wt); /* [PANEL][(tap, c)] */
  if (!wt) {
    atomic_store(&j->failed, 1);
    return;
  }
  for (int64_t pn = p0; pn < p1; pn++) {
    int64_t o0 = pn * PANEL, w = GPUX__MIN(PANEL, j->m - o0);
    for (int64_t o = 0; o < w; o++)
      for (int64_t ch = 0; ch < c; ch++)
        for (int64_t t = 0; t < taps; t++)
          memcpy(wt + o * kk + t * c + ch, j->w + (((o0 + o) * c + ch) * taps + t) * sizeof(float), sizeof(float));
    gpux__sgemm_b panel;
    gpux__sgemm_pack_into(&panel, j->dst + pn * kk * PANEL, wt, kk, 1, kk, w);
  }
  free(wt);
}

int gpux__conv_gemm_pack(const void *w, int64_t m, int64_t c, int64_t taps, gpux__sgemm_b *out) {
  memset(out, 0, sizeof *out);
  if (!gpux__conv_gemm_available()) return 1;
  int64_t kk = c * taps, panels = (m + PANEL - 1) / PANEL;
  size_t bytes = (size_t)gpux__sgemm_packed_floats(kk, m) * sizeof(float);
  /* on huge pages: every run streams them, 64 columns at a time */
  pack_job j = {.w = w, .dst = gpux__alloc_large(bytes), .m = m, .c = c, .taps = taps};
  if (!j.dst) return GPUX_E_NOMEM;
  atomic_init(&j.failed, 0);
  /* on the run's threads, a panel a task: the pages are new (zeroed by the system as they are
   * first written) */
  gpux__parallel_for_work(panels, (double)(m * kk) * 8.0, pack_panels_of, &j);
  if (atomic_load(&j.failed)) {
    gpux__free_large(j.dst, bytes);
    return GPUX_E_NOMEM;
  }
  *out = (gpux__sgemm_b){.k = kk, .n = m, .nr = PANEL, .data = j.dst};
  return 0;
}

void gpux__conv_gemm_free(gpux__sgemm_b *wt) {
  if (wt->data) gpux__free_large(wt->data, (size_t)gpux__sgemm_packed_floats(wt->k, wt->n) * sizeof(float));
  wt->data = NULL;
}

#if CGEMM

/* GPUX_CONV_TASKS=N (1-16): about N tasks a thread as balanced as whole tasks allow, the split
 * before split_by_cost (for comparisons); 0 where unset: about 3, or split_by_cost's. */
static int tasks_per_thread(void) {
  static atomic_int n = -1;
  int v = atomic_load_explicit(&n, memory_order_relaxed);
  if (v < 0) {
    const char *env = getenv("GPUX_CONV_TASKS");
    v = env && atoi(env) > 0 ? GPUX__MIN(atoi(env), 16) : 0;
    atomic_store_explicit(&n, v, memory_order_relaxed);
  }
  return v;
}

/* A float read again, in multiply-adds of one position (a row of A): W^T from memory (a core
 * streams about 13 GB/s while its blocks run 60-90 G multiply-adds a second), W^T from L3 (where
 * the convolution's W^T is 4 MB or less), W^T from L2 (where what a thread reads again fits in
 * half of it), and a row of A from L3 for each panel of a task (where its rows do not fit there:
 * 2 tasks of 198 positions x 128 channels took 0.32-0.36 ms on ResNet-50's 14 x 14 1x1 of 1024
 * channels, 2 tasks of 102 x 256 0.30-0.34 at 2 threads). */
#define W_COST 24
#define W_COST_L3 8
#define W_COST_L2 4
#define A_COST_L3 6
#define HALF_L2 (512 * 1024)

/* The time of a split of a convolution into tiles of `tiles` x tp positions x groups of mt
 * channels on `threads` threads, its busiest thread's: its tasks (counted whole) times each one's
 * positions x channels x K, with each panel's pass over the task's rows of A where they do not
 * stay in L2; and its share of W^T read, once by the first tile of positions and again by each
 * other tile. Where W^T is large against the positions (7 x 7 and 14 x 14 planes of 256-512
 * channels: 1-9 MB of weights for 49-196 positions) the panels split first, each thread's part
 * read once: ResNet-50's 3x3 512 on 7 x 7 at 2 threads went as 3 tiles x 2 groups of 256
 * channels, each half of W^T read three times from memory, and goes as 2 tasks of all 49
 * positions; on 16 threads it goes as 2 tiles of 30 positions x 8 panels (the busiest thread 30
 * positions x 64 channels and two reads of 1/16 of W^T, against 54 x 64 and one for 8 tasks of
 * 49, or 2 x 18 x 64 and three for 24 tasks). */
static double split_cost(const gpux__conv2d *p, int threads, int64_t mt, int64_t tp, int64_t tiles) {
  int64_t k = p->kh * p->kw * p->c, mp = mt / PANEL, mtiles = (p->m + mt - 1) / mt, cols = GPUX__MIN(mt, p->m);
  double wtot = (double)(p->m * k);
  /* a thread's tasks go from group to group, unless there is one */
  double again = (double)(mtiles > 1 ? p->m : cols) * (double)k * sizeof(float) <= HALF_L2 ? W_COST_L2
                 : wtot * sizeof(float) <= 4 << 20                                      ? W_COST_L3
                                                                                        : W_COST;
  double arows = (double)(tp * k) * sizeof(float) <= HALF_L2 ? 0 : A_COST_L3 * (double)mp;
  return (double)gpux__parallel_busiest(tiles * mtiles, threads) * (double)(tp * k) * ((double)cols + arows) +
         (W_COST + (double)(tiles - 1) * again) * wtot / threads;
}

/* The split of the least time (split_cost) into groups of 1, 2 or 4 panels, or of fewest tasks
 * within 1/16 of it, in out[] (channels a task, groups, positions a tile, tiles); its time.
 * Positions go in whole blocks of 6, as equal as they allow, at most 48K floats of sums a task
 * (a channels-last plane of up to 258 positions in one tile), and at least 4 blocks a task of
 * several panels. */
static double split_by_cost(const gpux__conv2d *p, int threads, int64_t most, int64_t out[4]) {
  int64_t os = p->oh * p->ow;
  double best = 0, cost[3][64], chosen = 0;
  for (int pass = 0; pass < 2; pass++) {
    int64_t fewest = 0;
    for (int level = 0; level < 3; level++) {
      int64_t mp = GPUX__MIN(most, (int64_t)4 >> level);
      if (level && mp == GPUX__MIN(most, (int64_t)4 >> (level - 1))) continue;
      int64_t mt = mp * PANEL, mtiles = (p->m + mt - 1) / mt;
      int64_t cap = GPUX__MAX(MR, 49152 / mt / MR * MR), least = mp > 1 ? 4 * MR : 2 * MR;
      if (p->channels_last && os <= 43 * MR) cap = GPUX__MAX(cap, 43 * MR);
      cap = GPUX__MIN(cap, (os + MR - 1) / MR * MR);
      int64_t first = (os + cap - 1) / cap;
      for (int64_t i = 0; i < 64; i++) {
        int64_t tiles = first + i, tp = ((os + tiles - 1) / tiles + MR - 1) / MR * MR;
        if (pass == 0) cost[level][i] = -1;
        if ((os + tp - 1) / tp != tiles || (tiles > first && tp < least)) continue;
        int64_t tasks = tiles * mtiles;
        if (pass == 0) {
          cost[level][i] = split_cost(p, threads, mt, tp, tiles);
          if (best == 0 || cost[level][i] < best) best = cost[level][i];
        } else if (cost[level][i] >= 0 && cost[level][i] <= best * (17.0 / 16.0) && (!fewest || tasks < fewest)) {
          fewest = tasks, chosen = cost[level][i];
          out[0] = mt, out[1] = mtiles, out[2] = tp, out[3] = tiles;
        }
      }
    }
  }
  return chosen;
}

typedef struct {
  const gpux__conv2d *p;
  const gpux__sgemm_b *wt;  /* W^T [taps * c][m] packed */
  float *xt;                /* one image, padded, channels last [hp][wp][c]; NULL where X is
                               read in place with its padding at zeros (direct) */
  int64_t hp, wp;
  const float *x;           /* that image [c][h][w] (channels last: [h][w][c]) */
  const float *zeros;       /* direct: c zeros, the row of a tap in the padding */
  int64_t n;                /* its index */
  const int64_t *toff;      /* [taps] where tap (i, j) of position 0 is in xt */
  int64_t tp, tiles;        /* positions per task, tasks along the positions */
  int64_t mt, mtiles;       /* output channels per task (a multiple of PANEL), tasks along them */
  atomic_int failed;
} cgemm_job;

/* Row r of xt, [wp][c]: zeros where it is padding, and NULL for a row of padding only; else
 * where the n columns of X's row *ih go, between zeros, for the caller to fill. */
static inline float *pad_row(const cgemm_job *j, int64_t r, int64_t *ih, int64_t *n) {
  const gpux__conv2d *p = j->p;
  int64_t c = p->c;
  float *dst = j->xt + r * j->wp * c;
  *ih = r - p->pt;
  if (*ih < 0 || *ih >= p->h) {
    memset(dst, 0, (size_t)(j->wp * c) * sizeof *dst);
    return NULL;
  }
  int64_t lo = GPUX__MIN(p->pl, j->wp);
  *n = GPUX__MAX(0, GPUX__MIN(p->w_, j->wp - lo));
  memset(dst, 0, (size_t)(lo * c) * sizeof *dst);
  if (lo + *n < j->wp) memset(dst + (lo + *n) * c, 0, (size_t)((j->wp - lo - *n) * c) * sizeof *dst);
  return dst + lo * c;
}

/* Rows [begin, end) of xt: zeros in the padding, X's rows transposed in between. */
TARGET512 static void to_channels_last(void *ctx, int64_t begin, int64_t end) {
  const cgemm_job *j = ctx;
  const gpux__conv2d *p = j->p;
  int64_t c = p->c, plane = p->h * p->w_;
  for (int64_t r = begin; r < end; r++) {
    int64_t ih = 0, n = 0;
    float *dst = pad_row(j, r, &ih, &n);
    if (!dst) continue;
    const float *src = j->x + ih * p->w_;
    __m512 v[16];
    for (int64_t c0 = 0; c0 < c; c0 += 16) {
      __mmask16 cm = gpux__lanes16(c - c0);
      int nc = (int)GPUX__MIN(16, c - c0);
      for (int64_t w0 = 0; w0 < n; w0 += 16) {
        __mmask16 wm = gpux__lanes16(n - w0);
        for (int q = 0; q < 16; q++)
          v[q] = q < nc ? _mm512_maskz_loadu_ps(wm, src + (c0 + q) * plane + w0) : _mm512_setzero_ps();
        gpux__transpose16(v);
        for (int64_t q = 0; q < 16 && w0 + q < n; q++) _mm512_mask_storeu_ps(dst + (w0 + q) * c + c0, cm, v[q]);
      }
    }
  }
}

/* The same from a channels-last image [h][w][c]: its rows copied between zeros. */
static void pad_channels_last(void *ctx, int64_t begin, int64_t end) {
  const cgemm_job *j = ctx;
  int64_t c = j->p->c;
  for (int64_t r = begin; r < end; r++) {
    int64_t ih = 0, n = 0;
    float *dst = pad_row(j, r, &ih, &n);
    if (dst) memcpy(dst, j->x + ih * j->p->w_ * c, (size_t)(n * c) * sizeof *dst);
  }
}

/* A register block for a panel of at most 48 output channels (M = 16, 24, 40: the last panel of
 * M = 72, 144), where sgemm.c's block, four vectors of 16 channels a position, would compute one
 * to three of them for nothing: C[i, 0:nc] = (C[i, 0:nc] with add) + sum over r < kc of a[i][r] *
 * b[r * PANEL + 0:nc] for positions i < mr <= NMR, with NV = ceil(nc / 16) vectors a position
 * and NMR positions (a[i] from mr on repeat a valid row: computed and dropped). The hot loop:
 * NMR x NV accumulators, one broadcast a position and k step. */
#define NMR 8
#define DEF_NARROW(NAME, NV)                                                                          \
  TARGET512 static void NAME(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc,  \
                             int mr, int64_t nc, int add) {                                          \
    __m512 acc[NMR][NV];                                                                            \
    __mmask16 mk[NV];                                                                               \
    _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) mk[v] = gpux__lanes16(nc - 16 * v);       \
    _Pragma("GCC unroll 8") for (int i = 0; i < NMR; i++)                                          \
      _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();        \
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5], *a6 = a[6],  \
                *a7 = a[7];                                                                         \
    for (int64_t r = 0; r < kc; r++, b += PANEL) {                                                  \
      __m512 bv[NV];                                                                                \
      _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(b + 16 * v);     \
      NROW(0, a0, NV) NROW(1, a1, NV) NROW(2, a2, NV) NROW(3, a3, NV)                               \
      NROW(4, a4, NV) NROW(5, a5, NV) NROW(6, a6, NV) NROW(7, a7, NV)                               \
    }                                                                                               \
    _Pragma("GCC unroll 8") for (int i = 0; i < NMR; i++) {                                        \
      if (i >= mr) break;                                                                           \
      _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) {                                       \
        float *ci = c + i * ldc + 16 * v;                                                           \
        __m512 t = add ? _mm512_add_ps(_mm512_maskz_loadu_ps(mk[v], ci), acc[i][v]) : acc[i][v];    \
        _mm512_mask_storeu_ps(ci, mk[v], t);                                                        \
      }                                                                                             \
    }                                                                                               \
  }
#define NROW(I, AI, NV)                                                                               \
  {                                                                                                 \
    __m512 av = _mm512_set1_ps(AI[r]);                                                              \
    _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) acc[I][v] = _mm512_fmadd_ps(av, bv[v], acc[I][v]); \
  }

DEF_NARROW(narrow16, 1)
DEF_NARROW(narrow32, 2)
DEF_NARROW(narrow48, 3)

typedef void (*narrow_fn)(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr,
                          int64_t nc, int add);

/* What a block applies to its sums as it stores them, on the last pass over its panel of a
 * channels-last Y: FusedConv's epilogue, its bias, scale and shift from the panel's first
 * channel on, the residual at the block's place (rows ldc apart, as C's). */
typedef struct {
  const gpux__conv_epilogue *e;
  const float *bias, *scale, *shift; /* the panel's, or NULL */
  const float *res;                  /* or NULL */
} block_ep;

/* What a block asks into L1 for the next one, a line a k step (of its first steps): the next block's rows of R (its
 * epilogue reads them) and of Y (where the first pass stores them), rows ldc floats apart. */
typedef struct {
  const float *res, *y;  /* or NULL */
  int rows, lines;       /* lines of 16 floats a row */
} block_next;

/* The register block, ROWS positions (rows of A, the last repeated where mr < ROWS) x nc <= 64
 * output channels: c[i * ldc + 0:nc] (+)= sum over r < kc of a[i][r] * b[r * 64 + 0:nc], then,
 * with ep, the epilogue on the sums before they are stored (Y written once, not read back).
 * Lines pf[0, npf) (the next pass's W^T, 64 bytes each) are asked into L2 a few each k step
 * while the FMAs run, not in one burst that waits for free fill buffers. The hot loop. */
GPUX_EP16_TARGET static inline __attribute__((always_inline)) void
block_rows(const int ROWS, int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr, int64_t nc,
           int add, const char *pf, int64_t npf, const block_ep *ep, const block_next *nx) {
  __mmask16 mk[4];
  for (int v = 0; v < 4; v++) mk[v] = gpux__lanes16(nc - 16 * v);
  __m512 acc[MR][4];
  _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++)
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
      acc[i][v] = add && i < mr ? _mm512_maskz_loadu_ps(mk[v], c + i * ldc + 16 * v) : _mm512_setzero_ps();
  const float *ap[MR];
  _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++) ap[i] = a[i];
  int64_t per = (npf + kc - 1) / kc; /* lines a k step, for the first npf / per steps */
  int64_t nl = nx ? nx->lines : 1, nn = nx ? nx->rows * nl : 0;
  int64_t n1 = GPUX__MIN(kc, GPUX__MAX(per ? (npf + per - 1) / per : 0, nn));
#define STEP(R)                                                                                                  \
  do {                                                                                                           \
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32),                      \
           b3 = _mm512_load_ps(b + 48);                                                                          \
    _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++) {                                                     \
      __m512 av = _mm512_set1_ps(ap[i][R]);                                                                      \
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);                                                            \
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);                                                            \
      acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);                                                            \
      acc[i][3] = _mm512_fmadd_ps(av, b3, acc[i][3]);                                                            \
    }                                                                                                            \
  } while (0)
  /* the first steps ask for lines, the rest only multiply */
  for (int64_t r = 0, row = 0, line = 0; r < n1; r++, b += 64) {
    if (r * per < npf)
      for (int64_t q = 0; q < per; q++) _mm_prefetch(pf + (r * per + q) * 64, _MM_HINT_T1);
    if (r < nn) {
      if (nx->res) _mm_prefetch((const char *)(nx->res + row * ldc + 16 * line), _MM_HINT_T0);
      if (nx->y) __builtin_prefetch(nx->y + row * ldc + 16 * line, 1, 3);
      if (++line == nl) line = 0, row++;
    }
    STEP(r);
  }
  for (int64_t r = n1; r < kc; r++, b += 64) STEP(r);
#undef STEP
  if (!ep) {
    _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++) {
      if (i >= mr) break;
      _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk[v], acc[i][v]);
    }
    return;
  }
  const gpux__conv_epilogue *e = ep->e;
  for (int v = 0; v < 4; v++) { /* (sum + bias) + R, then the rest, as gpux__ep16_run */
    if (!mk[v]) break;
    __m512 vb = ep->bias ? _mm512_maskz_loadu_ps(mk[v], ep->bias + 16 * v) : _mm512_setzero_ps();
    __m512 vs = ep->scale ? _mm512_maskz_loadu_ps(mk[v], ep->scale + 16 * v) : _mm512_set1_ps(1.0f);
    __m512 vt = ep->scale ? _mm512_maskz_loadu_ps(mk[v], ep->shift + 16 * v) : _mm512_setzero_ps();
    _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++) {
      if (i >= mr) break;
      __m512 x = _mm512_add_ps(acc[i][v], vb);
      if (ep->res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk[v], ep->res + i * ldc + 16 * v));
      _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk[v], gpux__ep16_vec(x, vs, vt, e));
    }
  }
}

/* The block on ROWS of 6, 5, 4 or 2 (mr of 2-6, nc of 17-64); a single row (the last of a tile
 * of 7, 13 or 19 positions, fives_from) goes to sgemm.c's block, which has a loop of its own for
 * it, then to the epilogue (m0: the panel's first channel). */
GPUX_EP16_TARGET static void block(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr,
                                   int64_t nc, int add, const char *pf, int64_t npf, const block_ep *ep,
                                   const block_next *nx, int64_t m0) {
  if (mr == 1 || nc <= 16) {
    for (int64_t l = 0; l < npf; l++) _mm_prefetch(pf + l * 64, _MM_HINT_T1);
    gpux__sgemm_block(kc, a, b, c, ldc, mr, nc, add);
    if (ep) gpux__conv_finish_nhwc(c, ldc, mr, m0, nc, ep->bias ? ep->bias - m0 : NULL, ep->e);
    return;
  }
  if (mr == MR && nc == PANEL) { /* sgemm.c's block in assembly, then the epilogue on its rows in L1 */
    gpux__sgemm_block6(kc, a, b, c, ldc, add, ep && !add ? ep->bias : NULL, pf, npf);
    /* the next block's rows of R and Y, asked for between its kernel and this block's epilogue
     * (without them, ResNet-50's 1x1 of 64 -> 256 on 56 x 56 with its residual took 1.29 x as long) */
    if (nx)
      for (int i = 0; i < nx->rows; i++)
        for (int l = 0; l < nx->lines; l++) {
          if (nx->res) _mm_prefetch((const char *)(nx->res + i * ldc + 16 * l), _MM_HINT_T0);
          if (nx->y) __builtin_prefetch(nx->y + i * ldc + 16 * l, 1, 3);
        }
    const gpux__conv_epilogue *e = ep ? ep->e : NULL;
    if (e && ((add && ep->bias) || ep->res || e->act != GPUX_EP_NONE || e->clamp || e->scale))
      gpux__ep16_rows(c, ldc, MR, PANEL, add ? ep->bias : NULL, ep->scale, ep->shift, ep->res, e);
    return;
  }
  if (mr == 5) block_rows(5, kc, a, b, c, ldc, mr, nc, add, pf, npf, ep, nx);
  else if (mr > 4) block_rows(6, kc, a, b, c, ldc, mr, nc, add, pf, npf, ep, nx);
  else if (mr > 2) block_rows(4, kc, a, b, c, ldc, mr, nc, add, pf, npf, ep, nx);
  else block_rows(2, kc, a, b, c, ldc, mr, nc, add, pf, npf, ep, nx);
}

/* A plane's os positions go in register blocks of 6 and what is left, except that a rest of one
 * position (a 7 x 7 plane: 49 = 8 x 6 + 1) goes with the four blocks before it as five blocks of
 * 5 (49 = 4 x 6 + 5 x 5) where there are four (os of 25 or more): a single row goes to the
 * one-row path and then its own epilogue, which took about 7% of a 1152 -> 192 1x1's time on
 * 7 x 7 (conv-shapes at 1 thread: ResNet-50's and EfficientNet-B0's convolutions on 7 x 7 5-13%
 * less time). Other rests (56, 63, 70, 77 positions on 7 x 7-11 planes, 196 = 31 x 6 + 2 x 5)
 * took no less time in blocks of 5, the last of 2-5 rows costing about its rows (block_rows):
 * kept. The first position of the blocks of 5 (os where there are none). The blocks are as many
 * as ceil(os / 6) either way, and tiles take whole blocks (block_pos), tp / 6 of them (the last
 * what is left), so that a tile is at most tp positions and the tiles as many as before. */
static inline int64_t fives_from(int64_t os) { return os % MR == 1 && os >= 5 * 5 ? os - 5 * 5 : os; }

/* The first position of block i of the plane (i up to its count of blocks), the blocks of 5 from
 * s5 (fives_from). */
static inline int64_t block_pos(int64_t i, int64_t os, int64_t s5) {
  return s5 == os || i * MR <= s5 ? GPUX__MIN(i * MR, os) : s5 + (i - s5 / MR) * 5;
}

/* The rows of the block at position s of a tile of np, its blocks of 5 from s5. */
static inline int block_len(int64_t s, int64_t np, int64_t s5) { return (int)(s < s5 ? GPUX__MIN(MR, np - s) : 5); }

/* Whether a channels-last X with padding is read in place (GPUX_CONV_PAD_COPY=1: copied). */
static int direct_on(void) {
  static atomic_int on = -1;
  int v = atomic_load_explicit(&on, memory_order_relaxed);
  if (v < 0) {
    const char *env = getenv("GPUX_CONV_PAD_COPY");
    v = !(env && !strcmp(env, "1"));
    atomic_store_explicit(&on, v, memory_order_relaxed);
  }
  return v;
}

/* d[r * PANEL + 0:PANEL] = b[r * PANEL + 0:PANEL] * s[r] for r < kc: a pass's panel of W^T with
 * X's scale on its rows, so that sum over r of x[r] * (s[r] * w[r]) stands for the product of
 * Mul(X, s) with W (each term rounded once more in another order: within 2^-23 of |x s w|). */
TARGET512 static void scale_panel(float *restrict d, const float *restrict b, const float *restrict s, int64_t kc) {
  for (int64_t r = 0; r < kc; r++) {
    __m512 sv = _mm512_set1_ps(s[r]);
    _Pragma("GCC unroll 4") for (int v = 0; v < PANEL / 16; v++)
      _mm512_store_ps(d + r * PANEL + 16 * v, _mm512_mul_ps(_mm512_load_ps(b + r * PANEL + 16 * v), sv));
  }
}

/* d[q][ch] = x[q][ch] * s[ch] for q < np, ch < c: one rounding each, as Mul(X, s) gives. */
TARGET512 static void scale_rows(float *restrict d, const float *restrict x, const float *restrict s, int64_t np,
                                 int64_t c) {
  for (int64_t q = 0; q < np; q++)
    for (int64_t ch = 0; ch < c; ch += 16) {
      __mmask16 mk = gpux__lanes16(c - ch);
      _mm512_mask_storeu_ps(d + q * c + ch, mk,
                            _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + q * c + ch), _mm512_maskz_loadu_ps(mk, s + ch)));
    }
}

static void cgemm_tasks(void *ctx, int64_t begin, int64_t end) {
  cgemm_job *j = ctx;
  const gpux__conv2d *p = j->p;
  const gpux__sgemm_b *wt = j->wt;
  int64_t os = p->oh * p->ow, taps = p->kh * p->kw, c = p->c;
  /* the tile's sums [tp][mt], then the positions' offsets in xt [tp] (direct: each tap's rows of
   * the positions in X, or the zeros, [taps][tp]) */
  size_t rows = j->xt ? 0 : (size_t)(taps * j->tp) * sizeof(const float *);
  /* with X's scale (1 x 1, X read in place), a pass's panel of W^T scaled, [KC][PANEL], then the
   * tile's rows of X scaled, [tp][c], each 64-byte aligned */
  size_t head = ((size_t)(j->tp * j->mt) * sizeof(float) + (size_t)j->tp * sizeof(int64_t) + rows + 63) / 64 * 64;
  size_t scaled = p->xs ? (size_t)(KC * PANEL + j->tp * c) * sizeof(float) : 0;
  float *ct = gpux__scratch(GPUX__SCRATCH_CONV_TILE, head + scaled);
  if (!ct) {
    atomic_store(&j->failed, 1);
    return;
  }
  int64_t *base = (int64_t *)(ct + j->tp * j->mt);
  const float **trow = j->xt ? NULL : (const float **)(base + j->tp);
  float *wbuf = p->xs ? (float *)((char *)ct + head) : NULL, *xbuf = wbuf ? wbuf + KC * PANEL : NULL;
  for (int64_t t = begin; t < end; t++) {
    /* the tile's whole blocks of the plane, those of 5 from s5 on (both relative to the tile) */
    int64_t f5 = fives_from(os), bt = j->tp / MR, nbp = (f5 + MR - 1) / MR + (os - f5) / 5, tile = t / j->mtiles;
    int64_t p0 = block_pos(tile * bt, os, f5), p1 = block_pos(GPUX__MIN(nbp, (tile + 1) * bt), os, f5), np = p1 - p0;
    int64_t s5 = GPUX__MIN(np, GPUX__MAX(0, f5 - p0)), nblocks = (s5 + MR - 1) / MR + (np - s5) / 5;
    int64_t m0 = t % j->mtiles * j->mt, m1 = GPUX__MIN(p->m, m0 + j->mt);
    /* with X's scale, whichever is fewer products: the task's rows of X scaled into xbuf before
     * the passes (np x c), as the Mul it stands for wrote them; or X's rows read in place and each
     * pass's panel of W^T scaled on its rows into wbuf (s * W: panels x 64 x c), where the pass
     * over X's rows, loads that waited on X from L2 with no FMAs to hide them behind, cost more
     * (14 x 14 x 672 -> 112: 198 rows, two panels) */
    int64_t panels = (m1 - m0 + PANEL - 1) / PANEL;
    float *wsc = wbuf && panels * PANEL < np ? wbuf : NULL;
    const float *xt = wbuf ? j->x + p0 * c : j->xt, *xs = wbuf ? p->xs + j->n * c : NULL;
    if (wbuf && !wsc) {
      scale_rows(xbuf, xt, xs, np, c);
      xt = xbuf;
    }
    for (int64_t q = p0; q < p1; q++) {
      int64_t oh = q / p->ow, ow = q % p->ow;
      base[q - p0] = wbuf ? (q - p0) * c : (oh * p->sh * j->wp + ow * p->sw) * c;
      for (int64_t tap = 0; trow && tap < taps; tap++) {
        int64_t ih = oh * p->sh - p->pt + tap / p->kw * p->dh, iw = ow * p->sw - p->pl + tap % p->kw * p->dw;
        trow[tap * j->tp + q - p0] = ih >= 0 && ih < p->h && iw >= 0 && iw < p->w_ ? j->x + (ih * p->w_ + iw) * c : j->zeros;
      }
    }
    /* the tile's sums: in ct, or channels last in Y itself */
    float *yt = p->channels_last ? p->y + (j->n * os + p0) * p->m + m0 : ct;
    int64_t ldc = p->channels_last ? p->m : j->mt;
    /* the end of the task's panels of W^T */
    const float *wend = wt->data + ((m1 + PANEL - 1) / PANEL) * wt->k * PANEL;
    for (int64_t pn = m0 / PANEL; pn * PANEL < m1; pn++) {
      int64_t nc = GPUX__MIN(PANEL, p->m - pn * PANEL);
      float *cp = yt + (pn * PANEL - m0);
      /* a panel of 48 channels or fewer: the narrow blocks of NMR positions */
      static const narrow_fn narrow[3] = {narrow16, narrow32, narrow48};
      narrow_fn nb = nc <= 48 ? narrow[(nc + 15) / 16 - 1] : NULL;
      int64_t step = nb ? NMR : MR;
      for (int64_t tap = 0; tap < taps; tap++)
        for (int64_t c0 = 0; c0 < c; c0 += KC) {
          int64_t kc = GPUX__MIN(KC, c - c0);
          const float *b = wt->data + (pn * wt->k + tap * c + c0) * PANEL, *bw = b;
          const float *xa = xt ? xt + j->toff[tap] + c0 : NULL;
          const float *const *tr = trow ? trow + tap * j->tp : NULL;
          /* the next pass's W^T (the panels are one stream), asked into L2 a share a block while
           * this pass computes: from memory, the first block of a pass would wait for all of it */
          const char *next = (const char *)(bw + kc * PANEL);
          int64_t lines = GPUX__MAX(0, GPUX__MIN(kc * PANEL, wend - (bw + kc * PANEL))) * (int64_t)sizeof(float) / 64;
          if (wsc) { /* (taps = 1) */
            scale_panel(wsc, bw, xs + c0, kc);
            b = wsc;
          }
          int64_t blocks = nb ? (np + step - 1) / step : nblocks, per = (lines + blocks - 1) / blocks;
          if (nb) { /* NMR x 16-48 a block, the next pass's W^T asked for a share a block */
            for (int64_t s = 0; s < np; s += step) {
              int mr = (int)GPUX__MIN(step, np - s);
              const float *a[NMR];
              for (int i = 0; i < step; i++) {
                int64_t q = s + GPUX__MIN(i, mr - 1);
                a[i] = tr ? tr[q] + c0 : xa + base[q];
              }
              for (int64_t l = s / step * per, le = GPUX__MIN(lines, l + per); l < le; l++)
                _mm_prefetch(next + l * 64, _MM_HINT_T1);
              nb(kc, a, b, cp + s * ldc, ldc, mr, nc, tap > 0 || c0 > 0);
            }
            continue;
          }
          /* on a channels-last Y, the last pass finishes the blocks' sums as it stores them */
          int fin = p->channels_last && tap == taps - 1 && c0 + kc >= c;
          block_ep ep = {.e = p->ep};
          if (fin) {
            ep.bias = p->b ? p->b + pn * PANEL : NULL;
            ep.scale = p->ep->scale ? p->ep->scale + pn * PANEL : NULL;
            ep.shift = p->ep->scale ? p->ep->shift + pn * PANEL : NULL;
          }
          /* 6 or 5 positions x 64 output channels a block, each asking for its share of the
           * next pass's W^T, and the next block's rows of R (last pass) or of Y (first pass) */
          for (int64_t s = 0, bi = 0, mr; s < np; s += mr, bi++) {
            mr = block_len(s, np, s5);
            const float *a[MR];
            for (int i = 0; i < MR; i++) {
              int64_t q = s + GPUX__MIN(i, mr - 1);
              a[i] = tr ? tr[q] + c0 : xa + base[q];
            }
            float *cb = cp + s * ldc;
            if (fin && p->ep->res) ep.res = p->ep->res + (cb - p->ep->y0);
            int64_t l0 = GPUX__MIN(lines, bi * per);
            block_next nx = {.rows = s + mr < np ? block_len(s + mr, np, s5) : 0, .lines = (int)(nc + 15) / 16};
            if (nx.rows > 0 && fin && p->ep->res) nx.res = ep.res + mr * ldc;
            if (nx.rows > 0 && p->channels_last && tap == 0 && c0 == 0) nx.y = cb + mr * ldc;
            block(kc, a, b, cb, ldc, (int)mr, nc, tap > 0 || c0 > 0, next + l0 * 64, GPUX__MIN(per, lines - l0),
                  fin ? &ep : NULL, nx.res || nx.y ? &nx : NULL, pn * PANEL);
          }
        }
      if (nb && p->channels_last) /* the narrow panel's sums are in Y: the bias and the epilogue there */
        gpux__conv_finish_nhwc(cp, ldc, np, pn * PANEL, nc, p->b, p->ep);
    }
    if (p->channels_last) continue; /* Y is finished */
    /* the bias and the epilogue on the sums, then back into Y's planes (with a residual: on Y) */
    float *y = p->y + (j->n * p->m + m0) * os + p0;
    if (!gpux__conv_finish_cl(ct, j->mt, np, m0, m1 - m0, p->b, p->ep)) {
      gpux__rows_to_planes(ct, j->mt, np, m1 - m0, y, os);
      continue;
    }
    gpux__rows_to_planes(ct, j->mt, np, m1 - m0, y, os);
    for (int64_t m = m0; m < m1; m++)
      gpux__conv_finish(y + (m - m0) * os, 0, y + (m - m0) * os, 0, 1, np, p->b ? p->b[m] : 0.0f, p->ep, m);
  }
}

int gpux__conv2d_gemm(const gpux__conv2d *p, const gpux__sgemm_b *wt) {
  int64_t taps = p->kh * p->kw;
  if (!gpux__conv_gemm_available() || p->g != 1 || p->pt < 0 || p->pl < 0 || !wt || wt->nr != PANEL ||
      wt->k != taps * p->c || wt->n != p->m)
    return 1;
  /* one position of one image from a 1 x 1 X (a squeeze-excitation's 1x1 convolutions): a
   * product of one row on gemv.c, which streams the panels with 16 sums a turn, on the calling
   * thread (below 1 MB), instead of blocks of 6 positions for one with a pass over C per 128
   * channels (MobileNetV3's 960-240@1 in bench/conv-shapes at 1 thread: 0.024 -> 0.014 ms,
   * 0.12 -> 0.09 with CONV_SHAPES_COLD; EfficientNet's 1152-48@1 0.011 -> 0.004, 0.06 -> 0.04;
   * at 2 threads 0.016-0.024 -> 0.014) */
  /* X's scale: on the rows of X a task reads, where they are X's own (1 x 1 of stride 1, no
   * padding, channels last) */
  if (p->xs && !(p->channels_last && !p->x_planes && taps == 1 && p->sh == 1 && p->sw == 1 && !p->pt && !p->pl &&
                 p->oh == p->h && p->ow == p->w_ && p->oh * p->ow > 1))
    return 1;
  if (p->n == 1 && p->h == 1 && p->w_ == 1 && taps == 1 && p->oh == 1 && p->ow == 1 && !p->pt && !p->pl) {
    gpux__sgemv_run(p->x, wt, p->y, p->b, 0, NULL);
    gpux__conv_finish_nhwc(p->y, p->m, 1, 0, p->m, NULL, p->ep);
    return 0;
  }
  cgemm_job j = {.p = p, .wt = wt};
  /* every window, and all of X */
  j.hp = GPUX__MAX((p->oh - 1) * p->sh + (p->kh - 1) * p->dh + 1, p->h + p->pt);
  j.wp = GPUX__MAX((p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1, p->w_ + p->pl);
  int64_t os = p->oh * p->ow;
  /* channels: whole panels, at most 256 a task; positions: whole blocks of 6 (tiles of a plane
   * in blocks of 6 and 5 take as many blocks: fives_from), about 48K floats
   * of sums a task (channels last, with no tile of sums, a plane of up to 258 positions in one
   * tile); with threads, about three tasks a thread; in tiles as equal as whole blocks allow.
   * Every tile of positions reads all of W^T again: at 1 thread a 14 x 14 plane went as 192
   * positions and then 4, and that tile read ResNet-50's 1 MB of weights for 4 positions (larger
   * tiles on its 56 x 56 planes, whose weights stay in L2, took 5% more time).
   * Where that leaves the threads unevenly busy (7 x 7 and 14 x 14 planes), tasks may take
   * fewer panels, down to one, and then as few as two blocks of positions: the split whose
   * busiest thread has the least share of the work (its tasks over all of them, counting the
   * last, smaller ones as whole), unless a coarser one is within 1/16 of it. */
  int threads = gpux__thread_count();
  int asked = tasks_per_thread(), per_thread = asked ? asked : 3;
  int64_t most = GPUX__MIN((p->m + PANEL - 1) / PANEL, 4);
  static const int64_t panels[4] = {4, 2, 1, 1}, least[4] = {4 * MR, 4 * MR, 4 * MR, 2 * MR};
  double best = 0;
  int64_t keep[4] = {0};
  for (int level = 0, first = 1; level < 4; level++) {
    int64_t mp = GPUX__MIN(most, panels[level]);
    if (!first && (threads <= 1 || (mp == GPUX__MIN(most, panels[level - 1]) && least[level] == least[level - 1])))
      continue; /* the same split as the level before, or no threads to balance */
    j.mt = mp * PANEL;
    j.mtiles = (p->m + j.mt - 1) / j.mt;
    j.tp = GPUX__MAX(MR, 49152 / j.mt / MR * MR);
    if (p->channels_last && os <= 43 * MR) j.tp = GPUX__MAX(j.tp, 43 * MR);
    if (threads > 1) {
      int64_t want = (per_thread * threads + j.mtiles - 1) / j.mtiles;
      j.tp = GPUX__MIN(j.tp, GPUX__MAX(least[level], ((os + want - 1) / want + MR - 1) / MR * MR));
    }
    j.tp = GPUX__MIN(j.tp, (os + MR - 1) / MR * MR);
    j.tiles = (os + j.tp - 1) / j.tp;
    j.tp = ((os + j.tiles - 1) / j.tiles + MR - 1) / MR * MR; /* as equal as whole blocks allow */
    j.tiles = (os + j.tp - 1) / j.tp;
    double cost = (double)gpux__parallel_busiest(j.tiles * j.mtiles, threads) / (double)(j.tiles * j.mtiles);
    if (first || cost < best * (15.0 / 16.0)) {
      best = cost;
      keep[0] = j.mt, keep[1] = j.mtiles, keep[2] = j.tp, keep[3] = j.tiles;
    }
    first = 0;
  }
  /* with threads and W^T of 1 MB or more (weights that come from L3 or memory on every run, and
   * again for every tile of positions), split_by_cost's split where it takes 1/16 less time than
   * that one (unless GPUX_CONV_TASKS asks for the former). Smaller W^T keep the former split: on
   * MobileNetV3's 7 x 7 1x1 of 160 -> 960 channels (614 KB) split_by_cost's 4 tasks of 54
   * positions for 8 of 30 left the depthwise convolution after it 0.047 -> 0.083 ms at 2 threads */
  int64_t other[4];
  if (threads > 1 && !asked && (double)(p->m * taps * p->c) * sizeof(float) >= 1 << 20 &&
      split_by_cost(p, threads, most, other) < split_cost(p, threads, keep[0], keep[2], keep[3]) * (15.0 / 16.0))
    memcpy(keep, other, sizeof keep);
  j.mt = keep[0], j.mtiles = keep[1], j.tp = keep[2], j.tiles = keep[3];
  gpux__conv_plan_note("gemm", p, threads, j.tiles * j.mtiles, j.tp, j.mt, (double)(j.tp * j.mt) * (double)(taps * p->c));
  /* a channels-last X is read in place: as it is where it needs no padding, else each tile's
   * positions a row a tap, those in the padding at a row of zeros (direct), with no padded copy
   * (ResNet-50's 3x3 of stride 2 on 56 x 56 x 128: 1.7 MB written and read again) */
  int in_place = p->channels_last && p->pt == 0 && p->pl == 0 && j.hp == p->h && j.wp == p->w_;
  int direct = p->channels_last && !in_place && direct_on();
  int64_t *toff = gpux__scratch(GPUX__SCRATCH_CONV_TAPS, (size_t)taps * sizeof *toff);
  float *xt = in_place ? NULL
                       : gpux__scratch(GPUX__SCRATCH_CONV_IMAGE,
                                       (size_t)(direct ? p->c : j.hp * j.wp * p->c) * sizeof *xt);
  if (!toff || (!xt && !in_place)) return gpux__error(GPUX_E_NOMEM, "out of memory for a convolution's input");
  if (direct) memset(xt, 0, (size_t)p->c * sizeof *xt), j.zeros = xt, xt = NULL;
  for (int64_t i = 0; i < p->kh; i++)
    for (int64_t jj = 0; jj < p->kw; jj++) toff[i * p->kw + jj] = (i * p->dh * j.wp + jj * p->dw) * p->c;
  j.toff = toff, j.xt = xt;
  atomic_init(&j.failed, 0);
  for (int64_t n = 0; n < p->n; n++) {
    j.n = n, j.x = p->x + n * p->c * p->h * p->w_;
    if (in_place)
      j.xt = (float *)j.x; /* only read */
    else if (!direct)
      gpux__parallel_for(j.hp, GPUX__MAX(1, 16384 / (j.wp * p->c + 1)),
                         p->channels_last ? pad_channels_last : to_channels_last, &j);
    gpux__parallel_for(j.tiles * j.mtiles, 1, cgemm_tasks, &j);
  }
  if (atomic_load(&j.failed)) return gpux__error(GPUX_E_NOMEM, "out of memory for a convolution tile");
  return 0;
}

#else

int gpux__conv2d_gemm(const gpux__conv2d *p, const gpux__sgemm_b *wt) { (void)p, (void)wt; return 1; }

#endif /* CGEMM */
