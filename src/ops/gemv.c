/* gemv.c — float32 products of one row of A by constant weights packed once (sgemm.c's panels,
 * gpux__sgemm_b): a classifier's Gemm, a decoder step's MatMuls at one token. Such a product reads
 * each weight once for one multiply-add, so its time is the time to stream the weights: the
 * packed B, [panel][k][nr], is one sequential stream, read here panel by panel over the whole of
 * k with 16 (AVX-512) or 8 (AVX2) independent sums and the lines 8 KB ahead asked for into L2,
 * and each panel's nr outputs are stored once, with the bias (or C) added and gpux.FusedMatMul's
 * epilogue run on them while they are in cache. Threads take runs of neighbouring panels.
 *
 *   c[0, n] = init + a[0, k] x B[k, n]    (init: C itself, the bias, or zero) */
#include "ops/gemm.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/avx512.h"
#include <immintrin.h>
#define GEMV_X86 1
#else
#define GEMV_X86 0
#endif

/* How far ahead of the loads (bytes of the panel stream) lines are asked for, into L2 (which
 * keeps more misses in flight than L1), where the weights come from memory: packed weights of
 * more than PREFETCH_ABOVE bytes. Smaller ones stay in a 2 MB L2 from one run to the next, and
 * there the prefetches, one a line, take load slots from the loads (with them, openWakeWord's
 * heads under 1 MB took 15 us instead of 12, and timer's products of 1-2 MB 29.3 us instead of
 * 26.5). Weights of more than SPLIT_ABOVE bytes are split over the threads by their work; those
 * of more than SPLIT_PANELS_ABOVE (GPUX_GEMV_SPLIT bytes), one panel a thread or more. */
#define AHEAD 8192
#define PREFETCH_ABOVE (2 << 20)
#define SPLIT_ABOVE (1 << 20)
#define SPLIT_PANELS_ABOVE (128 << 10)

typedef struct {
  const float *a;           /* [k] */
  const gpux__sgemm_b *b;
  float *c;                 /* [n] */
  const float *bias;        /* [n] or NULL */
  int load_c;
  const gpux__gemm_epilogue *ep;
  int prefetch;             /* ask for the weights' lines AHEAD bytes ahead */
} gemv_job;

#if GEMV_X86
/* One panel of 64 columns: c[0:nc] = init[0:nc] + sum over r < k of a[r] * b[r * 64 + 0:nc]. The
 * hot loop: four k steps (1 KB of panel) a turn into four sets of four sums. Inlined into one
 * copy with prefetches and one without. */
__attribute__((target("avx512f,fma"), always_inline)) static inline void panel64(const float *a, const float *b, int64_t k,
                                                                                float *c, int64_t nc, const float *init,
                                                                                const int prefetch) {
  __m512 s[4][4];
  for (int u = 0; u < 4; u++)
    for (int v = 0; v < 4; v++) s[u][v] = _mm512_setzero_ps();
  int64_t r = 0;
  for (; r + 4 <= k; r += 4, b += 256) {
    const char *q = (const char *)b + AHEAD;
    if (prefetch)
      for (int l = 0; l < 16; l++) _mm_prefetch(q + 64 * l, _MM_HINT_T1);
    for (int u = 0; u < 4; u++) {
      __m512 x = _mm512_set1_ps(a[r + u]);
      for (int v = 0; v < 4; v++) s[u][v] = _mm512_fmadd_ps(x, _mm512_load_ps(b + 64 * u + 16 * v), s[u][v]);
    }
  }
  for (; r < k; r++, b += 64) {
    __m512 x = _mm512_set1_ps(a[r]);
    for (int v = 0; v < 4; v++) s[0][v] = _mm512_fmadd_ps(x, _mm512_load_ps(b + 16 * v), s[0][v]);
  }
  for (int v = 0; v < 4; v++) {
    int64_t left = nc - 16 * v;
    if (left <= 0) break;
    __mmask16 mk = gpux__lanes16(left);
    __m512 t = _mm512_add_ps(_mm512_add_ps(s[0][v], s[1][v]), _mm512_add_ps(s[2][v], s[3][v]));
    if (init) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(mk, init + 16 * v));
    _mm512_mask_storeu_ps(c + 16 * v, mk, t);
  }
}

/* The same for a panel of 16 columns (AVX2): eight k steps (512 bytes) a turn into eight sums. */
__attribute__((target("avx2,fma"), always_inline)) static inline void panel16(const float *a, const float *b, int64_t k,
                                                                             float *c, int64_t nc, const float *init,
                                                                             const int prefetch) {
  __m256 s[8][2];
  for (int u = 0; u < 8; u++) s[u][0] = s[u][1] = _mm256_setzero_ps();
  int64_t r = 0;
  for (; r + 8 <= k; r += 8, b += 128) {
    const char *q = (const char *)b + AHEAD;
    if (prefetch)
      for (int l = 0; l < 8; l++) _mm_prefetch(q + 64 * l, _MM_HINT_T1);
    for (int u = 0; u < 8; u++) {
      __m256 x = _mm256_set1_ps(a[r + u]);
      s[u][0] = _mm256_fmadd_ps(x, _mm256_load_ps(b + 16 * u), s[u][0]);
      s[u][1] = _mm256_fmadd_ps(x, _mm256_load_ps(b + 16 * u + 8), s[u][1]);
    }
  }
  for (; r < k; r++, b += 16) {
    __m256 x = _mm256_set1_ps(a[r]);
    s[0][0] = _mm256_fmadd_ps(x, _mm256_load_ps(b), s[0][0]);
    s[0][1] = _mm256_fmadd_ps(x, _mm256_load_ps(b + 8), s[0][1]);
  }
  float out[16];
  for (int h = 0; h < 2; h++) {
    __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0][h], s[1][h]), _mm256_add_ps(s[2][h], s[3][h])),
                             _mm256_add_ps(_mm256_add_ps(s[4][h], s[5][h]), _mm256_add_ps(s[6][h], s[7][h])));
    _mm256_storeu_ps(out + 8 * h, t);
  }
  for (int64_t j = 0; j < nc; j++) c[j] = out[j] + (init ? init[j] : 0.0f);
}

__attribute__((target("avx512f,fma"))) static void panel64_prefetch(const float *a, const float *b, int64_t k, float *c,
                                                                    int64_t nc, const float *init) {
  panel64(a, b, k, c, nc, init, 1);
}
__attribute__((target("avx512f,fma"))) static void panel64_cached(const float *a, const float *b, int64_t k, float *c,
                                                                  int64_t nc, const float *init) {
  panel64(a, b, k, c, nc, init, 0);
}
__attribute__((target("avx2,fma"))) static void panel16_prefetch(const float *a, const float *b, int64_t k, float *c,
                                                                 int64_t nc, const float *init) {
  panel16(a, b, k, c, nc, init, 1);
}
__attribute__((target("avx2,fma"))) static void panel16_cached(const float *a, const float *b, int64_t k, float *c,
                                                               int64_t nc, const float *init) {
  panel16(a, b, k, c, nc, init, 0);
}
#endif

/* Panels [begin, end) of the job. */
static void gemv_panels(void *ctx, int64_t begin, int64_t end) {
  const gemv_job *j = ctx;
  const gpux__sgemm_b *b = j->b;
  int64_t nr = b->nr;
  for (int64_t p = begin; p < end; p++) {
    int64_t j0 = p * nr, nc = GPUX__MIN(nr, b->n - j0);
    const float *bp = b->data + p * b->k * nr;
    const float *init = j->load_c ? j->c + j0 : j->bias ? j->bias + j0 : NULL;
#if GEMV_X86
    if (nr == 64) (j->prefetch ? panel64_prefetch : panel64_cached)(j->a, bp, b->k, j->c + j0, nc, init);
    else (j->prefetch ? panel16_prefetch : panel16_cached)(j->a, bp, b->k, j->c + j0, nc, init);
#else
    (void)bp, (void)init;
#endif
    if (j->ep) gpux__gemm_finish(j->c + j0, b->n, 1, nc, NULL, j->ep, 0, j0);
  }
}

/* Bytes of weights above which they go over the threads a panel or more each (GPUX_GEMV_SPLIT
 * overrides, to compare: 1048576 runs them on the calling thread up to SPLIT_ABOVE). */
static double split_panels_above(void) {
  static _Atomic double v = -1;
  double x = atomic_load_explicit(&v, memory_order_relaxed);
  if (x < 0) {
    const char *env = getenv("GPUX_GEMV_SPLIT");
    x = env && atof(env) > 0 ? atof(env) : SPLIT_PANELS_ABOVE;
    atomic_store_explicit(&v, x, memory_order_relaxed);
  }
  return x;
}

void gpux__sgemv_run(const float *a, const gpux__sgemm_b *b, float *c, const float *bias, int load_c,
                     const gpux__gemm_epilogue *ep) {
  if (ep && ep->act == GPUX_GEMM_ACT_NONE && !ep->res) ep = NULL;
  int64_t panels = (b->n + b->nr - 1) / b->nr;
  double bytes = (double)b->k * (double)(panels * b->nr) * sizeof(float);
  gemv_job j = {.a = a, .b = b, .c = c, .bias = bias, .load_c = load_c, .ep = ep, .prefetch = bytes > PREFETCH_ABOVE};
  /* Weights that stay in the caller's L2 from run to run stream from there faster than a second
   * thread joins (openWakeWord's heads at 2 threads: 13 -> 18 us when they were split); larger
   * ones come from memory, and a multiply-add is a weight streamed in: about what a unit of the
   * pool's work costs. In between (a squeeze-excitation's 1x1 convolutions, 120 KB-1 MB), the
   * weights of a model larger than L2 come from L3 or memory each run, and on one thread they
   * held the others idle: MobileNetV3's twelve took 0.41 ms a run at any thread count (at 16
   * threads a sixth of the run); a panel (64 outputs) or more a thread. */
  if (bytes <= split_panels_above()) gemv_panels(&j, 0, panels);
  else if (bytes <= SPLIT_ABOVE) gpux__parallel_for(panels, 1, gemv_panels, &j);
  else gpux__parallel_for_work(panels, (double)b->k * (double)(panels * b->nr), gemv_panels, &j);
}
