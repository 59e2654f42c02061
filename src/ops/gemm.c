/* gemm.c — row-major GEMM on OpenBLAS with the threading in gpux's pool (see gemm.h): one
 * product on the calling thread (one-row and one-column products as matrix-vector products),
 * one product cut into tiles of C run in parallel, and a broadcast batch of products run as one
 * parallel loop over (item, tile). float32 products of at least 8 rows go to the packed-B
 * kernels (sgemm.c) where the machine has them, else those with one A to the direct convolution
 * kernels (conv-direct.c) as 1x1 convolutions. */
#include "ops/gemm.h"
#include "ops/conv.h"
#include <cblas.h>
#include <math.h>

/* A product with one row or one column of C as a matrix-vector product, which OpenBLAS runs
 * without packing the matrix (its GEMM copies all of B even for one row of A). */
static void gemm_as_gemv(const gpux__gemm *g) {
  const void *mat, *vec;
  int trans, rows, cols, lda, incx, incy;
  if (g->m == 1) { /* c[1, n] = a[1, k] op(B): op(B)^T a */
    mat = g->b, lda = (int)g->ldb;
    trans = !g->trans_b; /* B is [k, n] (transposed use) or [n, k] */
    rows = g->trans_b ? (int)g->n : (int)g->k, cols = g->trans_b ? (int)g->k : (int)g->n;
    vec = g->a, incx = g->trans_a ? (int)g->lda : 1;
    incy = 1;
  } else { /* c[m, 1] = op(A) b[k, 1] */
    mat = g->a, lda = (int)g->lda;
    trans = g->trans_a; /* A is [m, k] or [k, m] */
    rows = g->trans_a ? (int)g->k : (int)g->m, cols = g->trans_a ? (int)g->m : (int)g->k;
    vec = g->b, incx = g->trans_b ? 1 : (int)g->ldb;
    incy = (int)g->ldc;
  }
  enum CBLAS_TRANSPOSE t = trans ? CblasTrans : CblasNoTrans;
  if (g->dbl)
    cblas_dgemv(CblasRowMajor, t, rows, cols, g->alpha, mat, lda, vec, incx, g->beta, g->c, incy);
  else
    cblas_sgemv(CblasRowMajor, t, rows, cols, (float)g->alpha, mat, lda, vec, incx, (float)g->beta, g->c, incy);
}

void gpux__gemm_serial(const gpux__gemm *g) {
  if ((g->m == 1 || g->n == 1) && g->k > 0) {
    gemm_as_gemv(g);
    return;
  }
  enum CBLAS_TRANSPOSE ta = g->trans_a ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = g->trans_b ? CblasTrans : CblasNoTrans;
  if (g->dbl)
    cblas_dgemm(CblasRowMajor, ta, tb, (int)g->m, (int)g->n, (int)g->k, g->alpha, g->a, (int)g->lda,
                g->b, (int)g->ldb, g->beta, g->c, (int)g->ldc);
  else
    cblas_sgemm(CblasRowMajor, ta, tb, (int)g->m, (int)g->n, (int)g->k, (float)g->alpha, g->a,
                (int)g->lda, g->b, (int)g->ldb, (float)g->beta, g->c, (int)g->ldc);
}

void gpux__parallel_for_blas(int64_t n, int64_t grain, gpux__range_fn fn, void *ctx) {
  int saved = openblas_get_num_threads();
  if (saved > 1) openblas_set_num_threads(1);
  gpux__parallel_for(n, grain, fn, ctx);
  if (saved > 1) openblas_set_num_threads(saved);
}

/* How a product is cut: C in mb x nb tiles of at most mt x nt. */
typedef struct {
  int64_t mt, nt, mb, nb;
} gemm_tiling;

/* About `want` near-square tiles (nb / mb close to n / m), each with at least ~128K
 * multiply-adds. */
static gemm_tiling gemm_tile_plan(int64_t m, int64_t n, int64_t k, int64_t want) {
  double work = (double)m * (double)n * (double)k;
  int64_t tiles = GPUX__MAX(1, GPUX__MIN(want, (int64_t)(work / 131072.0)));
  int64_t nb = (int64_t)(sqrt((double)tiles * (double)n / (double)(m > 0 ? m : 1)) + 0.5);
  nb = GPUX__MAX(1, GPUX__MIN(nb, tiles));
  int64_t mb = (tiles + nb - 1) / nb;
  gemm_tiling t = {(m + mb - 1) / mb, (n + nb - 1) / nb, 0, 0};
  if (t.nt > 16 && t.nt < n) t.nt = (t.nt + 15) / 16 * 16; /* whole SIMD panels */
  t.mt = GPUX__MAX(t.mt, 1), t.nt = GPUX__MAX(t.nt, 1);
  t.mb = (m + t.mt - 1) / t.mt;
  t.nb = (n + t.nt - 1) / t.nt;
  return t;
}

/* Runs tile `t` (row-major over the mb x nb grid) of g on the calling thread. */
static void gemm_run_tile(const gpux__gemm *g, const gemm_tiling *p, int64_t t) {
  size_t es = g->dbl ? sizeof(double) : sizeof(float);
  int64_t m0 = t / p->nb * p->mt, n0 = t % p->nb * p->nt;
  gpux__gemm tile = *g;
  tile.m = GPUX__MIN(g->m - m0, p->mt);
  tile.n = GPUX__MIN(g->n - n0, p->nt);
  tile.a = (const char *)g->a + (size_t)(g->trans_a ? m0 : m0 * g->lda) * es;
  tile.b = (const char *)g->b + (size_t)(g->trans_b ? n0 * g->ldb : n0) * es;
  tile.c = (char *)g->c + (size_t)(m0 * g->ldc + n0) * es;
  gpux__gemm_serial(&tile);
}

typedef struct {
  const gpux__gemm *g;
  gemm_tiling p;
} gemm_split;

static void gemm_tiles(void *ctx, int64_t begin, int64_t end) {
  const gemm_split *s = ctx;
  for (int64_t t = begin; t < end; t++) gemm_run_tile(s->g, &s->p, t);
}

void gpux__gemm_parallel(const gpux__gemm *g) {
  if (g->m == 0 || g->n == 0) return;
  gemm_split s = {g, gemm_tile_plan(g->m, g->n, g->k, gpux__thread_count())};
  if (s.p.mb * s.p.nb <= 1) {
    gpux__gemm_serial(g);
    return;
  }
  gpux__parallel_for_blas(s.p.mb * s.p.nb, 1, gemm_tiles, &s);
}

/* ---- batched GEMM ---- */


/* The plain GEMM of batch item i (rows m of A folded when m_rows > g->m). */
static gpux__gemm bgemm_item(const gpux__gemm_batch *g, int64_t i, int64_t m_rows) {
  size_t es = g->dbl ? sizeof(double) : sizeof(float);
  int64_t ao, bo;
  gpux__gemm_batch_offsets(g, i, &ao, &bo);
  gpux__gemm one = {.dbl = g->dbl, .trans_a = g->trans_a, .trans_b = g->trans_b, .m = m_rows,
                    .n = g->n, .k = g->k, .alpha = g->alpha, .beta = g->beta,
                    .a = (const char *)g->a + (size_t)ao * es, .b = (const char *)g->b + (size_t)bo * es,
                    .c = (char *)g->c + (size_t)(i * g->m * g->n) * es, .lda = g->lda, .ldb = g->ldb,
                    .ldc = g->n};
  return one;
}

typedef struct {
  const gpux__gemm_batch *g;
  gemm_tiling p;
} bgemm_split;

static void bgemm_tiles(void *ctx, int64_t begin, int64_t end) {
  const bgemm_split *s = ctx;
  int64_t per_item = s->p.mb * s->p.nb;
  for (int64_t t = begin; t < end; t++) {
    gpux__gemm one = bgemm_item(s->g, t / per_item, s->g->m);
    gemm_run_tile(&one, &s->p, t % per_item);
  }
}

/* Runs the batch as one parallel loop over (batch item, tile of C): A's batch folds into its
 * rows when B is shared; items are cut into tiles only as far as the pool needs. */
void gpux__gemm_batched(const gpux__gemm_batch *g) {
  if (g->batch == 0 || g->m == 0 || g->n == 0) return;
  int a_dense = 1, b_zero = 1;
  int64_t prod = g->m * g->k;
  for (int d = g->nb - 1; d >= 0; d--) {
    if (g->bstr[d] != 0 && g->bdims[d] > 1) b_zero = 0;
    if (g->bdims[d] > 1 && g->astr[d] != prod) a_dense = 0;
    prod *= g->bdims[d];
  }
  gpux__gemm_batch folded;
  if (g->batch > 1 && b_zero && a_dense && !g->trans_a) {
    folded = *g;
    folded.m = g->m * g->batch;
    folded.nb = 0;
    folded.batch = 1;
    g = &folded;
  }
  /* float32: on the packed-B kernels (sgemm.c) where the machine has them */
  if (!g->dbl && gpux__sgemm_batch(g) == 0) return;
  /* float32 products with one A (or A's batch folded into its rows) run on the direct
   * convolution kernels (ops/conv-direct.c): B read in place as the K channels of a 1 x N image,
   * A as the weights of a 1x1 convolution */
  if (!g->dbl && g->batch == 1 && !g->trans_a && !g->trans_b && g->alpha == 1.0 && g->beta == 0.0 &&
      g->lda == g->k && g->ldb == g->n && g->m >= 8 && g->n >= 16 && g->k > 0) {
    static const gpux__conv_epilogue none = {.act = GPUX_EP_NONE};
    gpux__conv2d p = {.x = g->b, .w = g->a, .y = g->c, .n = 1, .c = g->k, .m = g->m, .g = 1, .h = 1, .w_ = g->n,
                      .kh = 1, .kw = 1, .oh = 1, .ow = g->n, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .ep = &none};
    if (gpux__conv2d_implicit(&p) == 0) return; /* else (no AVX2, out of memory) OpenBLAS */
  }
  int64_t threads = gpux__thread_count();
  int64_t want = (2 * threads + g->batch - 1) / g->batch; /* tiles per item */
  bgemm_split s = {g, gemm_tile_plan(g->m, g->n, g->k, want)};
  int64_t tasks = g->batch * s.p.mb * s.p.nb;
  double work = (double)g->m * (double)g->n * (double)g->k / (double)(s.p.mb * s.p.nb);
  if (tasks == 1) {
    gpux__gemm one = bgemm_item(g, 0, g->m);
    gpux__gemm_serial(&one);
    return;
  }
  gpux__parallel_for_blas(tasks, (int64_t)(65536.0 / (work + 1.0)) + 1, bgemm_tiles, &s);
}

