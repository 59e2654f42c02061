/* conv-winograd.c — float32 3x3 convolution of stride 1 and dilation 1, one group, channels last
 * (gpux.ConvNHWC), by Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, 2015): each 4 x 4
 * tile of output is
 *
 *   Y = A^T [ sum over c of (G g_c G^T) .* (B^T d_c B) ] A
 *
 * d_c being the tile's 6 x 6 window of input channel c and g_c the 3 x 3 weights. The 36 products
 * .* summed over channels are 36 GEMMs, one per point xi of the 6 x 6 transformed tile:
 *
 *   M_xi [tiles, M] = V_xi [tiles, C] x U_xi [C, M]
 *
 * 36 multiply-adds per channel pair and tile of 16 outputs, against 144 for the window itself.
 * The interpolation points are 0, 1, -1, 2, -2 and infinity (Lavin's matrices): B^T and A^T have
 * small integer entries, so the input and output transforms in float32 round no more than the
 * sums they add, and the fractions of G (1/4, 1/6, 1/12, 1/24) are applied once, in double, when
 * the weights are transformed. Against the float64 sum, errors up to about 1e-5 of the sum of the
 * products' magnitudes (tests/test-winograd.c bounds them); ResNet-50's output is as far from
 * ONNX Runtime's as with conv-gemm.c (relative L2 5.5e-7 and 5.7e-7). Points 0, +-1, +-1/2 (the
 * same operations, A^T's entries at most 1) gave a larger worst error in test-winograd's shapes
 * (1.6 against 0.76 of its former 1e-5 bound), though less on one tile of 256 random channels
 * (7.2e-7 against 1.1e-6 of the magnitudes); 0, +-1, 1/2, -2 less still there (3.8e-7) but with
 * a denser B^T, about twice the input transform's operations: not taken.
 *
 * The weights are transformed once, from W or from conv-gemm.c's packed W^T (conv.c keeps them
 * in the node's state, and packs W^T too only for a run that this kernel does not take):
 * U [36][panel][C][64], each U_xi in sgemm.c's panels of 64 output
 * channels, one sequential stream. A task takes a block of tiles (of any image: the tiles of a
 * batch are numbered across images) and a group of panels: it transforms the block's input,
 * 16 channels a vector (NHWC: a position's channels are consecutive floats), into V [tiles][36][C]
 * (a tile's 36 rows together: the transforms read and write a few pages, not 36), runs the 36
 * products on sgemm.c's register block (gpux__sgemm_block, whose rows of A and C are each tile's
 * row of the point) into M [tiles][36][panels' channels], and transforms M back into Y's tiles,
 * where FusedConv's epilogue (bias, activation, residual) runs on them while they are in cache. A
 * block's V and M are sized to stay in L2. With few tiles for the threads, three passes over all
 * tiles instead (gpux__conv2d_winograd).
 *
 * It pays where a weight is used by enough tiles: a 7 x 7 plane has 4 tiles an image, and its
 * 512 x 512 channels' U (37 MB) would be read from memory for 4 rows each; gpux__conv_wino_takes
 * weighs the busiest thread's multiply-adds and the weights it reads against conv-gemm.c's.
 * GPUX_WINOGRAD=0 in the environment turns the path off.
 *
 * The same machinery runs F(2x2, 3x3) (points 0, 1, -1 and infinity: a 4 x 4 window, 16 products,
 * U [16][panel][C][64]) where the cost rule finds it cheaper (gpux__conv_wino_tile says where)
 * or GPUX_WINO_TILE=2 asks for it. */
#include "core/scratch.h"
#include "ops/conv.h"
#include "ops/gemm.h"
#include <stdatomic.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/avx512.h"
#define WINO 1
#define TARGET512 __attribute__((target("avx512f,fma")))
#else
#define WINO 0
#endif

#define PANEL 64                  /* output channels per panel (sgemm.c's AVX-512 panel) */
#define KC 128                    /* input channels per pass: KC x PANEL floats of U stay in L1 */
#define MR GPUX__SGEMM_MR
#define BLOCK_FLOATS (384 * 1024) /* a task's V and M: 1.5 MB, within a 2 MB L2 */
#define LEAST_TILES 8             /* tiles a task must have for the path (rows each U line serves) */
/* The cost rule (wino_cost) in multiply-adds of one thread: a float of weights streamed from
 * memory costs WEIGHT_COST (one core reads about 13 GB/s from memory while it runs 60-95 G
 * multiply-adds a second), one read again from the caches WEIGHT_COST_L2; a multiply-add of the
 * tiles' products costs WINO_EFF with the transforms around them (ResNet-50's layers at 1 thread:
 * 1.3-1.6x the product's multiply-adds at the rate of a plain product's), one of conv-gemm.c's
 * GEMM_EFF. Threads reading different weights at once share memory's bandwidth: MEM_THREADS of
 * them stream as fast as MEM_SHARE x MEM_THREADS threads alone (2 threads here: 1.4-1.9x one). */
#define WEIGHT_COST 30.0
#define WEIGHT_COST_L2 4.0
#define WINO_EFF 1.5
#define GEMM_EFF 1.15
#define MEM_THREADS 8
#define MEM_SHARE 0.75
#define WIDE_FLOATS (8 << 20)     /* the most V and M of all tiles take in the three passes: 32 MB */

int gpux__conv_wino_available(void) {
#if WINO
  static atomic_int ok = -1;
  int v = atomic_load_explicit(&ok, memory_order_relaxed);
  if (v < 0) {
    const char *env = getenv("GPUX_WINOGRAD");
    v = gpux__conv_gemm_available() && gpux__have_avx512_fma() && !(env && !strcmp(env, "0"));
    atomic_store_explicit(&ok, v, memory_order_relaxed);
  }
  return v;
#else
  return 0;
#endif
}

/* How a convolution splits into tasks: blocks of tb tiles x groups of mp panels. */
typedef struct {
  int64_t th, tw, tiles;  /* tiles along OH and OW, and in all (of every image) */
  int64_t tb, blocks;     /* tiles per block, blocks */
  int64_t mp, groups;     /* panels per group of output channels, groups */
  int64_t ldv, ldm;       /* floats between rows of V (C rounded up to 16) and of M (mp panels) */
  int64_t vts, mts;       /* floats between tiles in V and M: 36 rows and a line, so that a block
                             of 6 tiles' rows of a point do not all fall into the same L1 sets */
  int wide;               /* the three passes over all tiles (gpux__conv2d_winograd) */
  int r, np;              /* outputs a tile's side (4 or 2), and points of its transform (36 or 16) */
} wino_plan;

static void plan_of(const gpux__conv2d *p, int threads, int r, wino_plan *w) {
  int np = (r + 2) * (r + 2);
  w->r = r, w->np = np;
  w->th = (p->oh + r - 1) / r, w->tw = (p->ow + r - 1) / r;
  w->tiles = p->n * w->th * w->tw;
  w->ldv = (p->c + 15) / 16 * 16;
  int64_t panels = (p->m + PANEL - 1) / PANEL;
  /* groups of panels as few as leave V and M of at least LEAST_TILES tiles within the budget */
  w->mp = panels;
  while (w->mp > 1 && BLOCK_FLOATS / (np * (w->ldv + w->mp * PANEL)) < 2 * LEAST_TILES) w->mp = (w->mp + 1) / 2;
  w->ldm = w->mp * PANEL;
  int64_t most = GPUX__MAX(MR, BLOCK_FLOATS / (np * (w->ldv + w->ldm)));
  w->blocks = (w->tiles + most - 1) / most;
  w->groups = (panels + w->mp - 1) / w->mp;
  if (threads > 1 && w->blocks * w->groups < threads) { /* few tiles: the panels split first (each
                                                          task's tiles read its part of U) */
    int64_t want = GPUX__MIN(panels, (threads + w->blocks - 1) / w->blocks);
    w->mp = (panels + want - 1) / want;
    w->groups = (panels + w->mp - 1) / w->mp;
    w->ldm = w->mp * PANEL;
  }
  if (threads > 1 && (w->blocks * w->groups) % threads) { /* then the tiles: tasks a multiple of the
                                                            threads, while each keeps enough tiles */
    int64_t even = ((w->blocks * w->groups + threads - 1) / threads * threads + w->groups - 1) / w->groups;
    if ((w->tiles + even - 1) / even >= LEAST_TILES) w->blocks = even;
    else w->blocks = GPUX__MAX(w->blocks, GPUX__MIN(even, w->tiles / LEAST_TILES));
  }
  w->tb = (w->tiles + w->blocks - 1) / w->blocks;
  w->blocks = (w->tiles + w->tb - 1) / w->tb;
  /* threads still idle a fifth of the time or more (14 x 14 planes on 16 threads, or on 3): the
   * passes over all tiles, whose products split by point and panel, each reading its part of U
   * once */
  int64_t tasks = w->blocks * w->groups;
  w->wide = threads > 1 && 5 * tasks < 4 * threads * gpux__parallel_busiest(tasks, threads) && np * w->tiles * (w->ldv + panels * PANEL) <= WIDE_FLOATS;
  if (w->wide) w->tb = w->tiles, w->blocks = 1, w->mp = 1, w->groups = panels, w->ldm = panels * PANEL;
  w->vts = np * w->ldv + 16, w->mts = np * w->ldm + 16;
}

/* Memory's bandwidth for `threads` threads, in threads alone. */
static double mem_threads(int threads) {
  return threads <= 1 ? 1.0 : MEM_SHARE * (double)GPUX__MIN(threads, MEM_THREADS);
}

/* The time of tiles of r x r outputs against conv-gemm.c's, or 0 where they do not pay at all:
 * each the longer of the busiest thread's work (its tasks' multiply-adds, and its weights read
 * from the caches) and of streaming the weights from memory once, on the bandwidth the threads
 * share. Where several threads take the same panels at once (blocks of tiles split, not groups of
 * panels), one stream from memory serves them all: F(2x2, 3x3) on ResNet-50's 14 x 14 x 256 at 2
 * threads (4.2 MB of U read by both, 51 M multiply-adds) takes 0.39-0.42 ms where F(4x4, 3x3)'s
 * two halves of 9.4 MB take 0.47-0.53 (38 M multiply-adds); at 1 thread 0.77-0.81 against
 * 0.69-0.76. */
static double wino_cost(const gpux__conv2d *p, int threads, int r, int force) {
  wino_plan w;
  plan_of(p, threads, r, &w);
  double np = (double)w.np;
  /* the tiles' products must save on the windows' 9 a position by half at least (edge tiles
   * compute outputs that are dropped: a 5 x 6 plane's 4 tiles, 64 outputs for 30), but for a
   * forced tile */
  if (!force && (w.tb < LEAST_TILES || w.np * w.tiles * 2 > 9 * p->n * p->oh * p->ow)) return 0;
  double c = (double)p->c, m = (double)p->m, panels = (double)((p->m + PANEL - 1) / PANEL), cols, rows, tasks;
  if (w.wide) { /* each task one point and one panel of all tiles */
    tasks = (double)gpux__parallel_busiest(w.np * ((p->m + PANEL - 1) / PANEL), threads);
    cols = (double)GPUX__MIN(p->m, PANEL), rows = (double)w.tiles;
  } else {
    tasks = np * (double)gpux__parallel_busiest(w.blocks * w.groups, threads);
    cols = (double)GPUX__MIN(p->m, w.mp * PANEL), rows = (double)w.tb;
  }
  double bw = mem_threads(threads), taps = 9.0 * c * m, pos = (double)(p->n * p->oh * p->ow);
  double wino = GPUX__MAX(tasks * c * cols * (WINO_EFF * rows + WEIGHT_COST_L2), WEIGHT_COST * np * c * panels * PANEL / bw);
  double gemm = GPUX__MAX(taps * (GEMM_EFF * pos + WEIGHT_COST_L2) / threads, WEIGHT_COST * taps / bw);
  return wino / gemm;
}

/* Whether the kernel runs p's shape at all: channels last, 3 x 3, stride and dilation 1, one
 * group, 16 channels or more in and out. */
static int wino_shape(const gpux__conv2d *p) {
  return gpux__conv_wino_available() && p->channels_last && p->g == 1 && p->kh == 3 && p->kw == 3 && p->sh == 1 &&
         p->sw == 1 && p->dh == 1 && p->dw == 1 && p->c >= 16 && p->m >= 16 && p->oh >= 1 && p->ow >= 1;
}

int gpux__conv_wino_tile(const gpux__conv2d *p) {
  if (!wino_shape(p)) return 0;
  int threads = gpux__thread_count();
  /* GPUX_WINO_TILE=2 or 4 in the environment: that tile wherever it can run, for comparisons.
   * Otherwise the tile of the lower cost (wino_cost), where it is below 0.9 of conv-gemm.c's.
   * F(2x2, 3x3) (16 products a tile of 4 outputs: 2.25x fewer multiplies than the window instead
   * of 4x, each weight serving 3x as many tiles, U 16/9 of W instead of 4x) wins where streaming
   * F(4x4)'s U from memory outlasts the products: on the bandwidth that several threads share
   * (ResNet-50's 14 x 14 x 256 from 2 threads on), not at 1 thread, nor on 56 x 56 and 28 x 28
   * planes, whose U is small (there F(2x2) was 1.3-1.6x slower, at 1 and 2 threads). */
  const char *env = getenv("GPUX_WINO_TILE");
  int force = env && (!strcmp(env, "2") || !strcmp(env, "4")) ? atoi(env) : 0;
  if (force) return wino_cost(p, threads, force, 1) > 0 ? force : 0;
  double k4 = wino_cost(p, threads, 4, 0), k2 = wino_cost(p, threads, 2, 0);
  if (k2 > 0 && (k4 <= 0 || k2 < k4)) return k2 < 0.9 ? 2 : 0;
  return k4 > 0 && k4 < 0.9 ? 4 : 0;
}

int gpux__conv_wino_takes(const gpux__conv2d *p) { return gpux__conv_wino_tile(p) != 0; }

/* Whether weights transformed for `tile` (on an earlier run, maybe of another plane or thread
 * count) pay on p: the cost rule's bound for that tile, or the tile GPUX_WINO_TILE forces. */
static int tile_pays(const gpux__conv2d *p, int tile) {
  const char *env = getenv("GPUX_WINO_TILE");
  int force = env && (!strcmp(env, "2") || !strcmp(env, "4")) ? atoi(env) : 0;
  if (force) return force == tile && wino_cost(p, gpux__thread_count(), tile, 1) > 0;
  double k = wino_cost(p, gpux__thread_count(), tile, 0);
  return k > 0 && k < 0.9;
}

/* G [6][3]: the weights' transform, u = G g G^T. */
static const double G[6][3] = {{1.0 / 4, 0, 0},
                               {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                               {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 24, 1.0 / 12, 1.0 / 6},
                               {1.0 / 24, -1.0 / 12, 1.0 / 6},
                               {0, 0, 1}};
/* G2 [4][3]: F(2x2, 3x3)'s, points 0, 1, -1 and infinity. */
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

/* Transforming the weights: item i = pn * c + ch is input channel ch of panel pn, its 64 lanes'
 * 3 x 3 weights from W [m][c][3][3] (w) or from W^T packed by conv-gemm.c (wt). */
typedef struct {
  const unsigned char *w;   /* W's bytes, maybe not aligned (a model file's in place), or NULL */
  const gpux__sgemm_b *wt;
  int64_t c, m, panels;
  int n;                    /* points a side: 6 or 4 */
  float *u;
} wino_pack_job;

/* W's float i from its bytes. */
static inline float w_at(const unsigned char *w, int64_t i) {
  float f;
  memcpy(&f, w + i * (int64_t)sizeof f, sizeof f);
  return f;
}

static void wino_pack_items(void *ctx, int64_t begin, int64_t end) {
  const wino_pack_job *j = ctx;
  int64_t c = j->c, panels = j->panels;
  int n = j->n;
  for (int64_t it = begin; it < end; it++) { /* a panel's 64 lanes at a time, rows of 64 floats */
    int64_t pn = it / c, ch = it % c;
    double g[3][3][PANEL], t[6][3][PANEL]; /* lanes past m are zero */
    for (int tap = 0; tap < 9; tap++)
      for (int l = 0; l < PANEL; l++)
        g[tap / 3][tap % 3][l] = j->w ? (pn * PANEL + l < j->m ? w_at(j->w, ((pn * PANEL + l) * c + ch) * 9 + tap) : 0.0f)
                                      : j->wt->data[(pn * j->wt->k + tap * c + ch) * PANEL + l];
    const double(*gm)[3] = n == 6 ? G : G2;
    for (int i = 0; i < n; i++) /* t = G g */
      for (int jj = 0; jj < 3; jj++)
        for (int l = 0; l < PANEL; l++) t[i][jj][l] = gm[i][0] * g[0][jj][l] + gm[i][1] * g[1][jj][l] + gm[i][2] * g[2][jj][l];
    for (int i = 0; i < n; i++) /* u = t G^T */
      for (int jj = 0; jj < n; jj++) {
        float *d = j->u + (((int64_t)(i * n + jj) * panels + pn) * c + ch) * PANEL;
        for (int l = 0; l < PANEL; l++) d[l] = (float)(t[i][0][l] * gm[jj][0] + t[i][1][l] * gm[jj][1] + t[i][2][l] * gm[jj][2]);
      }
  }
}

int gpux__conv_wino_pack(const void *w, const gpux__sgemm_b *wt, int64_t c, int64_t m, int tile,
                         gpux__conv_wino_w *out) {
  memset(out, 0, sizeof *out);
  if (!gpux__conv_wino_available() || c < 1 || m < 1 || (tile != 4 && tile != 2)) return 1;
  int n = tile + 2;
  if (!w && (!wt || !wt->data || wt->nr != PANEL || wt->k != 9 * c || wt->n != m)) return 1;
  int64_t panels = (m + PANEL - 1) / PANEL;
  size_t bytes = (size_t)(n * n * panels * c * PANEL) * sizeof(float);
  float *u = gpux__alloc_large(bytes); /* on huge pages: every run streams them */
  if (!u) return GPUX_E_NOMEM;
  /* on the run's threads: the pages are new (zeroed by the system as they are first written), a
   * few ms per 10 MB on one core; an item is 64 lanes of about 200 operations in double */
  wino_pack_job j = {.w = w, .wt = w ? NULL : wt, .c = c, .m = m, .panels = panels, .n = n, .u = u};
  gpux__parallel_for_work(panels * c, (double)(panels * c) * PANEL * 200.0, wino_pack_items, &j);
  out->c = c, out->m = m, out->panels = panels, out->tile = tile, out->data = u;
  return 0;
}

void gpux__conv_wino_free(gpux__conv_wino_w *u) {
  if (u->data) gpux__free_large(u->data, (size_t)((u->tile + 2) * (u->tile + 2) * u->panels * u->c * PANEL) * sizeof(float));
  u->data = NULL;
}

#if WINO

typedef struct {
  const gpux__conv2d *p;
  const gpux__conv_wino_w *u;
  wino_plan w;
  float *v, *mo;            /* the wide passes' V and M of all tiles */
  atomic_int failed;
} wino_job;

/* r = B^T d for six vectors d (one column or row of a tile):
 *   r0 = 4 d0 - 5 d2 + d4          r3 = (d4 - d2) - 2 (d1 - d3)
 *   r1 = (d3 + d4) - 4 (d1 + d2)   r4 = (d4 - d2) + 2 (d1 - d3)
 *   r2 = (d4 - d3) + 4 (d1 - d2)   r5 = 4 d1 - 5 d3 + d5 */
TARGET512 static inline void bt6(const __m512 *d, __m512 *r) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(-5.0f), two = _mm512_set1_ps(2.0f);
  __m512 s12 = _mm512_add_ps(d[1], d[2]), s34 = _mm512_add_ps(d[3], d[4]);
  __m512 d12 = _mm512_sub_ps(d[1], d[2]), d43 = _mm512_sub_ps(d[4], d[3]);
  __m512 d42 = _mm512_sub_ps(d[4], d[2]), d13 = _mm512_sub_ps(d[1], d[3]);
  r[0] = _mm512_fmadd_ps(five, d[2], _mm512_fmadd_ps(four, d[0], d[4]));
  r[1] = _mm512_fnmadd_ps(four, s12, s34);
  r[2] = _mm512_fmadd_ps(four, d12, d43);
  r[3] = _mm512_fnmadd_ps(two, d13, d42);
  r[4] = _mm512_fmadd_ps(two, d13, d42);
  r[5] = _mm512_fmadd_ps(five, d[3], _mm512_fmadd_ps(four, d[1], d[5]));
}

/* o = A^T m for six vectors m:
 *   o0 = m0 + (m1 + m2) + (m3 + m4)     o2 = (m1 + m2) + 4 (m3 + m4)
 *   o1 = (m1 - m2) + 2 (m3 - m4)        o3 = (m1 - m2) + 8 (m3 - m4) + m5 */
TARGET512 static inline void at6(const __m512 *m, __m512 *o) {
  __m512 s12 = _mm512_add_ps(m[1], m[2]), s34 = _mm512_add_ps(m[3], m[4]);
  __m512 d12 = _mm512_sub_ps(m[1], m[2]), d34 = _mm512_sub_ps(m[3], m[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
  o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
  o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m[5]);
}

/* r = B^T d for four vectors d, F(2x2, 3x3)'s:
 *   r0 = d0 - d2   r1 = d1 + d2   r2 = d2 - d1   r3 = d1 - d3 */
TARGET512 static inline void bt4(const __m512 *d, __m512 *r) {
  r[0] = _mm512_sub_ps(d[0], d[2]);
  r[1] = _mm512_add_ps(d[1], d[2]);
  r[2] = _mm512_sub_ps(d[2], d[1]);
  r[3] = _mm512_sub_ps(d[1], d[3]);
}

/* o = A^T m for four vectors m: o0 = m0 + m1 + m2, o1 = m1 - m2 - m3 */
TARGET512 static inline void at4(const __m512 *m, __m512 *o) {
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]);
  o[1] = _mm512_sub_ps(_mm512_sub_ps(m[1], m[2]), m[3]);
}

/* Tile t's position: its image, and where its window starts in X (may be in the padding). */
static inline void tile_at(const wino_job *j, int64_t t, int64_t *n, int64_t *y0, int64_t *x0) {
  int64_t per = j->w.th * j->w.tw, r = t % per;
  *n = t / per;
  *y0 = r / j->w.tw * j->w.r;
  *x0 = r % j->w.tw * j->w.r;
}

/* V[xi][t - t0][c] = (B^T d B)[xi] for tiles [t0, t1), d the tile's N x N window of X (zero
 * outside X, and in the lanes past C), BT the N-point B^T: F(4x4, 3x3)'s 6 x 6 windows and
 * F(2x2, 3x3)'s 4 x 4 ones. */
#define DEF_INPUT_TRANSFORM(NAME, N, BT)                                                             \
  TARGET512 static void NAME(const wino_job *j, int64_t t0, int64_t t1, float *v) {                 \
    const gpux__conv2d *p = j->p;                                                                    \
    int64_t c = p->c, ldv = j->w.ldv, vts = j->w.vts;                                                \
    for (int64_t t = t0; t < t1; t++) {                                                              \
      int64_t n, oy, ox;                                                                             \
      tile_at(j, t, &n, &oy, &ox);                                                                   \
      int64_t iy = oy - p->pt, ix = ox - p->pl;                                                      \
      const float *xn = p->x + n * p->h * p->w_ * c;                                                 \
      int inside = iy >= 0 && ix >= 0 && iy + N <= p->h && ix + N <= p->w_;                          \
      float *vt = v + (t - t0) * vts;                                                                \
      for (int64_t c0 = 0; c0 < c; c0 += 16) {                                                       \
        __mmask16 cm = gpux__lanes16(c - c0);                                                        \
        __m512 r[N][N], col[N], out[N];                                                              \
        for (int b = 0; b < N; b++) { /* columns: r[.][b] = B^T d[.][b], d loaded a column at a time */ \
          int64_t x = ix + b;                                                                        \
          for (int a = 0; a < N; a++) {                                                              \
            int64_t y = iy + a;                                                                      \
            col[a] = inside || (y >= 0 && y < p->h && x >= 0 && x < p->w_)                           \
                         ? _mm512_maskz_loadu_ps(cm, xn + (y * p->w_ + x) * c + c0)                  \
                         : _mm512_setzero_ps();                                                      \
          }                                                                                          \
          BT(col, out);                                                                              \
          for (int a = 0; a < N; a++) r[a][b] = out[a];                                              \
        }                                                                                            \
        for (int a = 0; a < N; a++) { /* rows: (B^T d) B */                                          \
          BT(r[a], out);                                                                             \
          for (int b = 0; b < N; b++) _mm512_store_ps(vt + (a * N + b) * ldv + c0, out[b]);         \
        }                                                                                            \
      }                                                                                              \
    }                                                                                                \
  }
DEF_INPUT_TRANSFORM(input_transform, 6, bt6)
DEF_INPUT_TRANSFORM(input_transform2, 4, bt4)

/* M[xi] [nt, panels pn0..pn1) = V[xi] [nt, C] x U[xi] [C, panels pn0..pn1) for points xi in
 * [x0, x1), panel pn at column (pn - pbase) * 64 of M. */
static void products(const wino_job *j, int64_t nt, const float *v, float *mo, int x0, int x1, int64_t pn0,
                     int64_t pn1, int64_t pbase) {
  const gpux__conv_wino_w *u = j->u;
  int64_t c = u->c, ldv = j->w.ldv, ldm = j->w.ldm, vts = j->w.vts, mts = j->w.mts;
  for (int xi = x0; xi < x1; xi++) {
    const float *ux = u->data + (int64_t)xi * u->panels * c * PANEL;
    const float *vx = v + xi * ldv;
    float *mx = mo + xi * ldm;
    for (int64_t pn = pn0; pn < pn1; pn++) {
      int64_t nc = GPUX__MIN(PANEL, u->m - pn * PANEL);
      const float *bp = ux + pn * c * PANEL;
      float *cp = mx + (pn - pbase) * PANEL;
      for (int64_t c0 = 0; c0 < c; c0 += KC) {
        int64_t kc = GPUX__MIN(KC, c - c0);
        /* the next pass's U (the same stream), asked into L2 while this pass computes: a share a
         * block, in a burst before it; where the shares are large (few blocks: a burst of more
         * than 64 lines waited for free fill buffers), all of it four lines a k step of the first
         * block (ResNet-50's 14 x 14 x 256, 16 tiles, 3 blocks: 0.92-0.99 -> 0.80-0.85 ms with U
         * in L3, 1.57-1.91 -> 1.35-1.63 from memory; 56 x 56 x 64, 19 lines a block, was slower
         * so), unless the first block has one row or 16 channels or fewer (the register block's
         * other loops, which ask for none) */
        const char *next = (const char *)(bp + (c0 + kc) * PANEL);
        int64_t lines = kc * PANEL * (int64_t)sizeof(float) / 64;
        int64_t blocks = (nt + MR - 1) / MR, per = (lines + blocks - 1) / blocks;
        int spread = per > 64 && GPUX__MIN(MR, nt) > 1 && nc > 16;
        /* the hot loop: 6 tiles x 64 output channels a block */
        for (int64_t s = 0; s < nt; s += MR) {
          int mr = (int)GPUX__MIN(MR, nt - s);
          const float *a[MR];
          for (int i = 0; i < MR; i++) a[i] = vx + (s + GPUX__MIN(i, mr - 1)) * vts + c0;
          if (spread && s == 0) {
            gpux__sgemm_block_pf(kc, a, bp + c0 * PANEL, cp, mts, mr, nc, c0 > 0, (const float *)next);
            continue;
          }
          for (int64_t l = s / MR * per, le = GPUX__MIN(spread ? 0 : lines, l + per); l < le; l++)
            _mm_prefetch(next + l * 64, _MM_HINT_T1);
          gpux__sgemm_block(kc, a, bp + c0 * PANEL, cp + s * mts, mts, mr, nc, c0 > 0);
        }
      }
    }
  }
}

/* Y's tiles [t0, t1), channels [m0, m1) = A^T M[.][t - t0] A, R x R outputs a tile from N x N
 * points (AT the N-point A^T), then the bias and the epilogue on the tile's rows in Y. */
#define DEF_OUTPUT_TRANSFORM(NAME, N, R, AT)                                                         \
  TARGET512 static void NAME(const wino_job *j, int64_t t0, int64_t t1, const float *mo, int64_t m0, \
                             int64_t m1) {                                                           \
    const gpux__conv2d *p = j->p;                                                                    \
    int64_t m = p->m, ldm = j->w.ldm, mts = j->w.mts;                                                \
    for (int64_t t = t0; t < t1; t++) {                                                              \
      int64_t n, oy, ox;                                                                             \
      tile_at(j, t, &n, &oy, &ox);                                                                   \
      int64_t rows = GPUX__MIN(R, p->oh - oy), cols = GPUX__MIN(R, p->ow - ox);                      \
      float *yt = p->y + ((n * p->oh + oy) * p->ow + ox) * m;                                        \
      const float *mt = mo + (t - t0) * mts;                                                         \
      for (int64_t c0 = m0; c0 < m1; c0 += 16) {                                                     \
        __mmask16 cm = gpux__lanes16(m1 - c0);                                                       \
        __m512 r[R][N], col[N], out[R];                                                              \
        for (int b = 0; b < N; b++) { /* columns: r[.][b] = A^T s[.][b], s loaded a column at a time */ \
          for (int a = 0; a < N; a++) col[a] = _mm512_load_ps(mt + (a * N + b) * ldm + (c0 - m0));   \
          AT(col, out);                                                                              \
          for (int a = 0; a < R; a++) r[a][b] = out[a];                                              \
        }                                                                                            \
        for (int a = 0; a < rows; a++) { /* rows: (A^T s) A */                                       \
          AT(r[a], out);                                                                             \
          for (int b = 0; b < cols; b++) _mm512_mask_storeu_ps(yt + (a * p->ow + b) * m + c0, cm, out[b]); \
        }                                                                                            \
      }                                                                                              \
      for (int64_t a = 0; a < rows; a++)                                                             \
        gpux__conv_finish_nhwc(yt + a * p->ow * m + m0, m, cols, m0, m1 - m0, p->b, p->ep);          \
    }                                                                                                \
  }
DEF_OUTPUT_TRANSFORM(output_transform, 6, 4, at6)
DEF_OUTPUT_TRANSFORM(output_transform2, 4, 2, at4)

static void inputs(const wino_job *j, int64_t t0, int64_t t1, float *v) {
  if (j->w.r == 2) input_transform2(j, t0, t1, v);
  else input_transform(j, t0, t1, v);
}

static void outputs(const wino_job *j, int64_t t0, int64_t t1, const float *mo, int64_t m0, int64_t m1) {
  if (j->w.r == 2) output_transform2(j, t0, t1, mo, m0, m1);
  else output_transform(j, t0, t1, mo, m0, m1);
}

static void wino_tasks(void *ctx, int64_t begin, int64_t end) {
  wino_job *j = ctx;
  const wino_plan *w = &j->w;
  float *v = gpux__scratch(GPUX__SCRATCH_CONV_WINO, (size_t)(w->tb * (w->vts + w->mts)) * sizeof(float));
  if (!v) {
    atomic_store(&j->failed, 1);
    return;
  }
  float *mo = v + w->tb * w->vts;
  int64_t panels = j->u->panels, last_block = -1;
  for (int64_t t = begin; t < end; t++) {
    int64_t b = t / w->groups, g = t % w->groups;
    int64_t t0 = b * w->tb, t1 = GPUX__MIN(w->tiles, t0 + w->tb);
    int64_t pn0 = g * w->mp, pn1 = GPUX__MIN(panels, pn0 + w->mp);
    if (b != last_block) inputs(j, t0, t1, v); /* a task's groups share their block's V */
    last_block = b;
    products(j, t1 - t0, v, mo, 0, w->np, pn0, pn1, pn0);
    outputs(j, t0, t1, mo, pn0 * PANEL, GPUX__MIN(j->p->m, pn1 * PANEL));
  }
}

/* The wide passes: the input transform of tiles [begin, end), the products of points and panels
 * (task t: point t / panels, panel t % panels) over all tiles, the output transform of tiles. */
static void wide_inputs(void *ctx, int64_t begin, int64_t end) {
  const wino_job *j = ctx;
  inputs(j, begin, end, j->v + begin * j->w.vts);
}

static void wide_products(void *ctx, int64_t begin, int64_t end) {
  const wino_job *j = ctx;
  for (int64_t t = begin; t < end; t++) {
    int64_t pn = t % j->u->panels;
    products(j, j->w.tiles, j->v, j->mo, (int)(t / j->u->panels), (int)(t / j->u->panels) + 1, pn, pn + 1, 0);
  }
}

static void wide_outputs(void *ctx, int64_t begin, int64_t end) {
  const wino_job *j = ctx;
  outputs(j, begin, end, j->mo + begin * j->w.mts, 0, j->p->m);
}

int gpux__conv2d_winograd(const gpux__conv2d *p, const gpux__conv_wino_w *u) {
  /* (tile_pays: the tile of U pays here, so gpux__conv_wino_takes(p) holds without its costs) */
  if (!wino_shape(p) || !u || !u->data || u->c != p->c || u->m != p->m || !tile_pays(p, u->tile)) return 1;
  wino_job j = {.p = p, .u = u};
  int threads = gpux__thread_count();
  plan_of(p, threads, u->tile, &j.w);
  int64_t tasks = j.w.wide ? j.w.np * u->panels : j.w.blocks * j.w.groups;
  gpux__conv_plan_note(j.w.wide ? (u->tile == 2 ? "winograd2-wide" : "winograd-wide") : u->tile == 2 ? "winograd2" : "winograd", p, threads, tasks, j.w.tb, j.w.mp * PANEL,
                       (j.w.wide ? 1.0 : (double)j.w.np) * (double)(j.w.tb * p->c) * (double)GPUX__MIN(p->m, j.w.mp * PANEL));
  if (j.w.wide) { /* V and M of all tiles, on the calling thread's block */
    j.v = gpux__scratch(GPUX__SCRATCH_CONV_WINO_WIDE, (size_t)(j.w.tiles * (j.w.vts + j.w.mts)) * sizeof(float));
    if (!j.v) return gpux__error(GPUX_E_NOMEM, "out of memory for a Winograd convolution's tiles");
    j.mo = j.v + j.w.tiles * j.w.vts;
    gpux__parallel_for(j.w.tiles, 1, wide_inputs, &j);
    gpux__parallel_for(tasks, 1, wide_products, &j);
    gpux__parallel_for(j.w.tiles, 1, wide_outputs, &j);
    return 0;
  }
  atomic_init(&j.failed, 0);
  gpux__parallel_for(tasks, 1, wino_tasks, &j);
  if (atomic_load(&j.failed)) return gpux__error(GPUX_E_NOMEM, "out of memory for a Winograd convolution's tiles");
  return 0;
}

#else

int gpux__conv2d_winograd(const gpux__conv2d *p, const gpux__conv_wino_w *u) { (void)p, (void)u; return 1; }

#endif /* WINO */
