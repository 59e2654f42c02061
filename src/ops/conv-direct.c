/* conv-direct.c — float32 convolution kernels for x86-64 with AVX2 and FMA (the implicit GEMM
 * with AVX-512 register blocks where the machine has them), checked at run time
 * (elsewhere, or with GPUX_CONV_DIRECT=0 in the environment, conv.c's im2col + BLAS and
 * depthwise loops run). Both first copy each input plane,
 * padded, into a scratch layout split by the strides into sh x sw sub-planes of width ws: sub-
 * plane (a, b) holds the padded rows a, a + sh, ... and columns b, b + sw, .... Then for output
 * p = oh * ws + ow of a grid ws wide, kernel tap (i, j) reads sub-plane ((i*dh) % sh, (j*dw) %
 * sw) at p + ((i*dh) / sh) * ws + (j*dw) / sw: consecutive outputs read consecutive floats for
 * every tap, any stride, padding or dilation, and the kernels need neither im2col nor edge
 * cases. The ws - ow columns at the end of each grid row are computed and dropped.
 *
 *   implicit GEMM  Y_g[M, P] = W_g[M, K] x B[K, P], row r = (c, i, j) of B being the run of tap
 *                  (i, j) in channel c's sub-planes at offset off[r]; a 4 x 24 register block
 *                  (12 accumulators; 8 x 48, 24 accumulators, with AVX-512) of FMAs reads B in place. Unpadded stride-1 convolutions
 *                  read X itself (1x1 kernels: a plain GEMM on X).
 *   depthwise      each output sums all taps of its plane in registers, 32 outputs at a time,
 *                  skipping kernel rows that only read padding.
 */
#include "core/scratch.h"
#include "ops/conv.h"
#include <stdatomic.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/avx512.h"
#include <immintrin.h>
#define DIRECT 1
#define TARGET __attribute__((target("avx2,fma")))
#else
#define DIRECT 0
#endif

int gpux__conv_direct_available(void) {
#if DIRECT
  static atomic_int ok = -1;
  int v = atomic_load_explicit(&ok, memory_order_relaxed);
  if (v < 0) {
    const char *env = getenv("GPUX_CONV_DIRECT"); /* 0: off, for comparisons */
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !(env && !strcmp(env, "0"));
    atomic_store_explicit(&ok, v, memory_order_relaxed);
  }
  return v;
#else
  return 0;
#endif
}

#if DIRECT

/* Per-thread scratch kept for the thread's next call (core/scratch.h): slot 0 for the calling
 * thread's padded image, slot 1 for each task's tile. */
static float *scratch_get(int slot, size_t n) {
  return gpux__scratch(slot ? GPUX__SCRATCH_CONV_TILE : GPUX__SCRATCH_CONV_IMAGE, (n ? n : 1) * sizeof(float));
}

/* ---- the split layout ---- */

#define SLACK 32        /* floats readable past the last sub-plane: a vector step's overread */

typedef struct {
  int64_t hp, wp;       /* padded extents: every window, and all of X */
  int64_t hs, ws;       /* sub-plane rows, ceil(hp / sh), and row length: ceil(wp / sw), or less
                           for stride 1 (see layout_init) */
  int64_t sub;          /* floats per sub-plane: hs * ws (stride 1: hs + 1 rows) */
  int64_t plane;        /* floats per channel: sh * sw * sub */
  uint64_t used;        /* sub-planes some tap reads: bit a * sw + b (all where sh * sw > 64) */
} split_layout;

static void layout_init(const gpux__conv2d *p, split_layout *l) {
  l->hp = GPUX__MAX((p->oh - 1) * p->sh + (p->kh - 1) * p->dh + 1, p->h + p->pt);
  l->wp = GPUX__MAX((p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1, p->w_ + p->pl);
  l->hs = (l->hp + p->sh - 1) / p->sh;
  l->ws = (l->wp + p->sw - 1) / p->sw;
  l->sub = l->hs * l->ws;
  if (p->sh == 1 && p->sw == 1) {
    /* one run of zeros between rows serves as the right padding of a row and the left padding
     * of the next: rows w + max(left, right) apart, and one more row of zeros at the end */
    l->ws = p->w_ + GPUX__MAX(p->pl, l->wp - p->pl - p->w_);
    l->sub = (l->hs + 1) * l->ws;
  }
  l->plane = p->sh * p->sw * l->sub;
  /* a 1x1 kernel of stride 2 reads one sub-plane of four: the others are neither zeroed nor
   * filled (a vector's lanes past a run, dropped, may read them) */
  l->used = p->sh * p->sw > 64 ? ~(uint64_t)0 : 0;
  for (int64_t i = 0; i < p->kh && p->sh * p->sw <= 64; i++)
    for (int64_t j = 0; j < p->kw; j++) l->used |= (uint64_t)1 << (((i * p->dh) % p->sh) * p->sw + (j * p->dw) % p->sw);
}

/* Whether some tap reads sub-plane s (a * sw + b) of l. */
static int sub_used(const split_layout *l, int64_t s) { return s >= 64 || (l->used >> s & 1); }

/* Where tap (i, j) of output 0 is, from its channel's first sub-plane. */
static int64_t tap_offset(const gpux__conv2d *p, const split_layout *l, int64_t i, int64_t j) {
  int64_t r = i * p->dh, c = j * p->dw;
  return ((r % p->sh) * p->sw + c % p->sw) * l->sub + (r / p->sh) * l->ws + c / p->sw;
}

/* ev[i] = src[2i], od[i] = src[2i + 1] for the n floats of src (either may be NULL: not written). */
TARGET static void deinterleave2(const float *src, int64_t n, float *ev, float *od) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = _mm256_loadu_ps(src + i), b = _mm256_loadu_ps(src + i + 8);
    __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* s0 s2 s8 s10 | s4 s6 s12 s14 */
    __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
    if (ev) _mm256_storeu_ps(ev + i / 2, e);
    if (od) _mm256_storeu_ps(od + i / 2, o);
  }
  for (; i < n; i++)
    if (i & 1 ? od : ev) (i & 1 ? od : ev)[i / 2] = src[i];
}

/* Lays plane x [h, w] out as l describes into dst [sh * sw * sub] (zeros outside X). */
static void split_plane(const gpux__conv2d *p, const split_layout *l, const float *x, float *dst) {
  if (p->sh == 1 && p->sw == 1) { /* rows ws apart, zero only the padding */
    for (int64_t r = 0; r <= l->hp; r++) {
      float *d = dst + r * l->ws;
      int64_t ih = r - p->pt, n = ih >= 0 && ih < p->h ? p->w_ : 0, lo = n ? p->pl : l->ws;
      memset(d, 0, (size_t)lo * sizeof *d);
      if (!n) continue;
      memcpy(d + lo, x + ih * p->w_, (size_t)n * sizeof *d);
      memset(d + lo + n, 0, (size_t)(l->ws - lo - n) * sizeof *d);
    }
    return;
  }
  for (int64_t sp = 0; sp < p->sh * p->sw; sp++)
    if (sub_used(l, sp)) memset(dst + sp * l->sub, 0, (size_t)l->sub * sizeof *dst);
  for (int64_t ih = 0; ih < p->h; ih++) {
    int64_t r = ih + p->pt, a = r % p->sh, rs = r / p->sh, any = 0;
    for (int64_t b = 0; b < p->sw && !any; b++) any = sub_used(l, a * p->sw + b);
    if (!any) continue; /* no tap reads this row */
    const float *src = x + ih * p->w_;
    if (p->sw == 1) {
      memcpy(dst + a * l->sub + rs * l->ws + p->pl, src, (size_t)p->w_ * sizeof *src);
    } else if (p->sw == 2) { /* even input columns go to sub-plane pl % 2, odd ones to the other */
      int64_t be = p->pl % 2;
      float *ev = dst + (a * 2 + be) * l->sub + rs * l->ws + p->pl / 2;
      float *od = dst + (a * 2 + 1 - be) * l->sub + rs * l->ws + (1 + p->pl) / 2;
      deinterleave2(src, p->w_, sub_used(l, a * 2 + be) ? ev : NULL, sub_used(l, a * 2 + 1 - be) ? od : NULL);
    } else {
      for (int64_t b = 0; b < p->sw; b++) { /* the columns iw with (iw + pl) % sw == b */
        if (!sub_used(l, a * p->sw + b)) continue;
        int64_t iw0 = ((b - p->pl) % p->sw + p->sw) % p->sw;
        float *d = dst + (a * p->sw + b) * l->sub + rs * l->ws + (iw0 + p->pl) / p->sw;
        for (int64_t iw = iw0, o = 0; iw < p->w_; iw += p->sw, o++) d[o] = src[iw];
      }
    }
  }
}

/* ---- implicit GEMM ---- */

#define MR 4            /* output channels per register block */
#define MR512 8         /* the same with AVX-512 */
#define NR 24           /* output positions per register block (3 vectors) */
#define NR512 48        /* the same with AVX-512 (3 vectors of 16) */
#define KC 128          /* taps per pass over a block: the NR x KC floats of B stay in L1 */
#define MB_MAX 128      /* output channels per task: MB_MAX x KC floats of W stay in L2 */

/* Lanes [0, n) of a vector (none when n <= 0, all when n >= 8). */
TARGET static inline __m256i tail_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)GPUX__MAX(-1, GPUX__MIN(n, 8))), idx);
}

/* C[i, 0:nv] (+)= sum over r < kc of A_i[r] * B[off[r] + 0:nv] for rows i < mr (a[i] are the rows
 * of W, clamped to the last one when mr < MR), with nv in (8 * (NVEC - 1), 8 * NVEC]. Loads read
 * whole vectors (past the run's end into memory the caller keeps readable) unless MASKED, where
 * the last vector is masked to the run; a partial block is stored through a small buffer. The
 * hot loop: NVEC x MR accumulators, one broadcast per row and tap. */
#define DEF_BLOCK(NAME, NVEC, MASKED)                                                             \
  TARGET static void NAME(int64_t kc, const float *b, const int64_t *off, const float *const *a,  \
                          float *c, int64_t ldc, int mr, int add, int64_t nv) {                   \
    __m256 acc[MR][NVEC], bv[NVEC];                                                             \
    _Pragma("GCC unroll 4") for (int i = 0; i < MR; i++)                                        \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) acc[i][v] = _mm256_setzero_ps();   \
    const __m256i mk = tail_mask(nv - 8 * (NVEC - 1));                                          \
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];                                 \
    for (int64_t r = 0; r < kc; r++) {                                                          \
      const float *br = b + off[r];                                                             \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++)                                    \
        bv[v] = MASKED && v == NVEC - 1 ? _mm256_maskload_ps(br + 8 * v, mk) : _mm256_loadu_ps(br + 8 * v); \
      __m256 av = _mm256_broadcast_ss(a0 + r);                                                  \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) acc[0][v] = _mm256_fmadd_ps(av, bv[v], acc[0][v]); \
      av = _mm256_broadcast_ss(a1 + r);                                                         \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) acc[1][v] = _mm256_fmadd_ps(av, bv[v], acc[1][v]); \
      av = _mm256_broadcast_ss(a2 + r);                                                         \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) acc[2][v] = _mm256_fmadd_ps(av, bv[v], acc[2][v]); \
      av = _mm256_broadcast_ss(a3 + r);                                                         \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) acc[3][v] = _mm256_fmadd_ps(av, bv[v], acc[3][v]); \
    }                                                                                           \
    _Pragma("GCC unroll 4") for (int i = 0; i < MR; i++) {                                      \
      if (i >= mr) break;                                                                       \
      float *ci = c + i * ldc;                                                                  \
      if (nv == 8 * NVEC) {                                                                     \
        _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) {                                \
          __m256 t = add ? _mm256_add_ps(_mm256_loadu_ps(ci + 8 * v), acc[i][v]) : acc[i][v];   \
          _mm256_storeu_ps(ci + 8 * v, t);                                                      \
        }                                                                                       \
      } else {                                                                                  \
        float t[8 * NVEC];                                                                      \
        _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) _mm256_storeu_ps(t + 8 * v, acc[i][v]); \
        for (int64_t q = 0; q < nv; q++) ci[q] = add ? ci[q] + t[q] : t[q];                     \
      }                                                                                         \
    }                                                                                           \
  }

DEF_BLOCK(block_x8, 1, 0)
DEF_BLOCK(block_x16, 2, 0)
DEF_BLOCK(block_x24, 3, 0)
DEF_BLOCK(block_x8m, 1, 1)
DEF_BLOCK(block_x16m, 2, 1)
DEF_BLOCK(block_x24m, 3, 1)

/* The same block on AVX-512 with twice the rows: MR512 x NVEC accumulators (24 of the 32 vector
 * registers for NVEC 3, so each tap's B vectors feed 8 rows of FMAs and the loads stay well under
 * the FMAs), NVEC vectors of 16 positions (up to NR512), the last masked to the run with MASKED,
 * and partial blocks stored through a mask. */
#define TARGET512 __attribute__((target("avx512f,fma")))
#define DEF_BLOCK512(NAME, NVEC, MASKED)                                                          \
  TARGET512 static void NAME(int64_t kc, const float *b, const int64_t *off, const float *const *a, \
                             float *c, int64_t ldc, int mr, int add, int64_t nv) {                \
    __m512 acc[MR512][NVEC], bv[NVEC];                                                          \
    __mmask16 sm[NVEC];                                                                         \
    _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) {                                    \
      int64_t left = nv - 16 * v;                                                               \
      sm[v] = gpux__lanes16(left); \
    }                                                                                           \
    _Pragma("GCC unroll 8") for (int i = 0; i < MR512; i++)                                     \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) acc[i][v] = _mm512_setzero_ps();   \
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];                                 \
    const float *a4 = a[4], *a5 = a[5], *a6 = a[6], *a7 = a[7];                                 \
    for (int64_t r = 0; r < kc; r++) {                                                          \
      const float *br = b + off[r];                                                             \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++)                                    \
        bv[v] = MASKED && v == NVEC - 1 ? _mm512_maskz_loadu_ps(sm[v], br + 16 * v) : _mm512_loadu_ps(br + 16 * v); \
      ROW512(0, a0, NVEC) ROW512(1, a1, NVEC) ROW512(2, a2, NVEC) ROW512(3, a3, NVEC)                                   \
      ROW512(4, a4, NVEC) ROW512(5, a5, NVEC) ROW512(6, a6, NVEC) ROW512(7, a7, NVEC)                                   \
    }                                                                                           \
    _Pragma("GCC unroll 8") for (int i = 0; i < MR512; i++) {                                   \
      if (i >= mr) break;                                                                       \
      float *ci = c + i * ldc;                                                                  \
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) {                                  \
        __m512 t = add ? _mm512_add_ps(_mm512_maskz_loadu_ps(sm[v], ci + 16 * v), acc[i][v]) : acc[i][v]; \
        _mm512_mask_storeu_ps(ci + 16 * v, sm[v], t);                                           \
      }                                                                                         \
    }                                                                                           \
  }
#define ROW512(I, AI, NVEC)                                                                         \
  {                                                                                             \
    __m512 av = _mm512_set1_ps(AI[r]);                                                          \
    _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) acc[I][v] = _mm512_fmadd_ps(av, bv[v], acc[I][v]); \
  }

DEF_BLOCK512(block_z16, 1, 0)
DEF_BLOCK512(block_z32, 2, 0)
DEF_BLOCK512(block_z48, 3, 0)
DEF_BLOCK512(block_z16m, 1, 1)
DEF_BLOCK512(block_z32m, 2, 1)
DEF_BLOCK512(block_z48m, 3, 1)

typedef void (*block_fn)(int64_t kc, const float *b, const int64_t *off, const float *const *a, float *c,
                         int64_t ldc, int mr, int add, int64_t nv);

/* Positions per register block: NR512 where the machine has AVX-512 (GPUX_CONV_DIRECT=avx2 keeps
 * the AVX2 blocks, for comparisons), else NR. */
static int64_t block_width(void) {
  static atomic_int w = -1;
  int v = atomic_load_explicit(&w, memory_order_relaxed);
  if (v < 0) {
    const char *env = getenv("GPUX_CONV_DIRECT");
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx512f") && !(env && !strcmp(env, "avx2")) ? NR512 : NR;
    atomic_store_explicit(&w, v, memory_order_relaxed);
  }
  return v;
}

/* The block for nv positions (1 <= nv <= width, NR or NR512); masked loads only where B may end
 * with the run. */
static block_fn block_for(int64_t nv, int masked, int64_t width) {
  /* [masked][vectors - 1]: one table each (UBSan took `(c ? a : b)[i]` on two arrays for a read
   * past one of them) */
  static const block_fn x[2][3] = {{block_x8, block_x16, block_x24}, {block_x8m, block_x16m, block_x24m}};
  static const block_fn z[2][3] = {{block_z16, block_z32, block_z48}, {block_z16m, block_z32m, block_z48m}};
  if (width == NR512) return z[masked && nv % 16][(nv + 15) / 16 - 1];
  return x[masked && nv % 8][(nv + 7) / 8 - 1];
}

typedef struct {
  const gpux__conv2d *p;
  split_layout l;           /* of the scratch copy; in place: hp = h, wp = ws = w */
  const float *xp;          /* one batch item laid out by l [c, plane] (or X itself) */
  int64_t n;                /* that batch item */
  const int64_t *off;       /* [K] offset of each tap's run in xp, relative to the group */
  int64_t cg, mg, kk;       /* input and output channels per group, taps (K) */
  int64_t mb, mblocks;      /* output channels per task and tasks per group along M */
  int64_t rows, rblocks;    /* output rows per task and tasks per group along the rows; where the
                               grid has no extra columns (direct_out), `rows` counts positions */
  int direct_out;           /* ws == ow: tiles are written straight into Y */
  int in_place;             /* xp is X itself, which may end with the last run (else SLACK) */
  int64_t span;             /* in place: offset of the last tap in a plane */
  int64_t nr;               /* positions per register block (block_width) */
  int64_t mr;               /* output channels per register block: MR512 with NR512, else MR */
  atomic_int failed;        /* a task found no memory for its tile */
} igemm_job;

static void igemm_tasks(void *ctx, int64_t begin, int64_t end) {
  igemm_job *j = ctx;
  const gpux__conv2d *p = j->p;
  int64_t os = p->oh * p->ow, ws = j->l.ws;
  for (int64_t t = begin; t < end; t++) {
    int64_t g = t / (j->mblocks * j->rblocks), rem = t % (j->mblocks * j->rblocks);
    int64_t m0 = rem / j->rblocks * j->mb, m1 = GPUX__MIN(j->mg, m0 + j->mb);
    /* positions [q0, q1) of the grid: any run of Y's positions when Y is the grid, else whole
     * rows (the last stopping at its last output) */
    int64_t oh0 = rem % j->rblocks * j->rows, oh1 = GPUX__MIN(p->oh, oh0 + j->rows), q0, q1;
    if (j->direct_out) q0 = oh0, q1 = GPUX__MIN(os, oh0 + j->rows);
    else q0 = oh0 * ws, q1 = (oh1 - 1) * ws + p->ow;
    int64_t np = q1 - q0;
    const float *xg = j->xp + g * j->cg * j->l.plane;           /* [cg, plane] */
    const float *wg = p->w + (g * j->mg) * j->kk;               /* [mg, K] */
    float *yg = p->y + (j->n * p->m + g * j->mg) * os;           /* [mg, oh, ow] */
    float *c;
    int64_t ldc;
    if (j->direct_out) {
      c = yg + m0 * os + q0, ldc = os;
    } else {
      /* the size of the job's largest tile, so that a thread's block grows once per job, not
       * again whenever it happens to take a larger tile than before */
      c = scratch_get(1, (size_t)(j->mb * ((j->rows - 1) * ws + p->ow)));
      if (!c) {
        atomic_store(&j->failed, 1);
        return;
      }
      ldc = np;
    }
    /* Y as the grid and one pass over K: a register block's rows of output channels at a time
     * over all the task's positions, each row finished while in L1, so that Y is written as 8
     * sequential runs at a time. Position blocks outermost write all of the task's 64-128 rows
     * at once, more runs than the hardware prefetches lines for where Y comes from memory
     * (MobileNetV3's 16-64@112, 3.2 MB of Y: 1.57 -> 0.71 ms with bench/conv-shapes' cold
     * caches, 0.41 -> 0.34 ms in the model). */
    if (j->direct_out && j->kk <= KC) {
      for (int64_t mt = m0; mt < m1; mt += j->mr) {
        int mr = (int)GPUX__MIN(j->mr, m1 - mt);
        const float *a[MR512];
        for (int i = 0; i < MR512; i++) a[i] = wg + (mt + GPUX__MIN(i, mr - 1)) * j->kk;
        for (int64_t pt = q0; pt < q1; pt += j->nr) {
          int64_t nv = GPUX__MIN(j->nr, q1 - pt), vec = j->nr == NR512 ? 16 : 8;
          block_fn block = block_for(nv, j->in_place && pt + (nv + vec - 1) / vec * vec + j->span > j->l.plane, j->nr);
          block(j->kk, xg + pt, j->off, a, c + (mt - m0) * ldc + (pt - q0), ldc, mr, 0, nv);
        }
        for (int64_t m = mt; m < mt + mr; m++) {
          float *row = yg + m * os + q0;
          gpux__conv_finish(row, 0, row, 0, 1, np, p->b ? p->b[g * j->mg + m] : 0.0f, p->ep, g * j->mg + m);
        }
      }
      continue;
    }
    for (int64_t k0 = 0; k0 < j->kk; k0 += KC) {
      int64_t kc = GPUX__MIN(KC, j->kk - k0);
      for (int64_t pt = q0; pt < q1; pt += j->nr) {
        int64_t nv = GPUX__MIN(j->nr, q1 - pt), vec = j->nr == NR512 ? 16 : 8;
        /* in X itself, whole vectors may run past the end of the last plane: masked there */
        block_fn block = block_for(nv, j->in_place && pt + (nv + vec - 1) / vec * vec + j->span > j->l.plane, j->nr);
        for (int64_t mt = m0; mt < m1; mt += j->mr) {
          int mr = (int)GPUX__MIN(j->mr, m1 - mt);
          const float *a[MR512];
          for (int i = 0; i < MR512; i++) a[i] = wg + (mt + GPUX__MIN(i, mr - 1)) * j->kk + k0;
          block(kc, xg + pt, j->off + k0, a, c + (mt - m0) * ldc + (pt - q0), ldc, mr, k0 > 0, nv);
        }
      }
    }
    /* bias, activation, and (from the scratch tile) the output columns only */
    for (int64_t m = m0; m < m1; m++) {
      int64_t ch = g * j->mg + m;
      float bias = p->b ? p->b[ch] : 0.0f;
      if (j->direct_out) {
        float *row = yg + m * os + q0;
        gpux__conv_finish(row, 0, row, 0, 1, np, bias, p->ep, ch);
      } else {
        gpux__conv_finish(yg + m * os + oh0 * p->ow, p->ow, c + (m - m0) * ldc, ws, oh1 - oh0, p->ow, bias, p->ep, ch);
      }
    }
  }
}

typedef struct {
  const gpux__conv2d *p;
  const split_layout *l;
  const float *x;           /* one batch item [c, h, w] */
  float *xp;                /* its split copy [c, plane] */
} split_job;

static void split_planes(void *ctx, int64_t begin, int64_t end) {
  const split_job *j = ctx;
  for (int64_t c = begin; c < end; c++)
    split_plane(j->p, j->l, j->x + c * j->p->h * j->p->w_, j->xp + c * j->l->plane);
}

int gpux__conv2d_implicit(const gpux__conv2d *p) {
  /* under 16 outputs per plane the register blocks run mostly empty: BLAS does better */
  if (!gpux__conv_direct_available() || p->oh * p->ow < 16 || p->pt < 0 || p->pl < 0) return 1;
  int64_t cg = p->c / p->g, mg = p->m / p->g, kk = cg * p->kh * p->kw;
  if (kk < 1) return 1;
  igemm_job j = {.p = p, .cg = cg, .mg = mg, .kk = kk};
  layout_init(p, &j.l);
  /* X itself when it needs neither padding nor splitting */
  j.in_place = p->sh == 1 && p->sw == 1 && p->pt == 0 && p->pl == 0 && j.l.hp == p->h && j.l.wp == p->w_;
  if (j.in_place) j.l.sub = j.l.plane = p->h * p->w_; /* X's planes, w apart */
  j.direct_out = j.l.ws == p->ow;
  j.span = (p->kh - 1) * p->dh * j.l.ws + (p->kw - 1) * p->dw;
  /* the threads this product is worth (one batch item's multiply-adds and epilogue; a small one
   * runs on fewer) */
  double macs = (double)p->m * (double)(p->oh * p->ow) * ((double)kk + gpux__conv_ep_work(p->ep));
  int threads = gpux__threads_for(macs);
  /* tasks: blocks of output channels (at most MB_MAX) and of rows (tiles of at most ~64K
   * floats); with threads, about three tasks per thread, split along the rows while each keeps 8
   * register blocks of positions and then along the channels while each keeps 4 */
  int64_t want = threads > 1 ? (3 * threads + p->g - 1) / p->g : 1; /* per group */
  const int64_t nr = j.nr = block_width();
  const int64_t mrw = j.mr = nr == NR512 ? MR512 : MR;
  /* where that leaves the threads unevenly busy (late layers: 7 x 7 to 28 x 28 planes, or few
   * output channels), the least task halves, along both, down to one register block: the split
   * whose busiest thread has the least share of the work (its tasks over all of them, counting
   * the last, smaller ones as whole), unless a coarser one is within 1/16 of it */
  double best = 0;
  int64_t keep[4] = {0};
  for (int level = 0; level < (threads > 1 ? 4 : 1); level++) {
    int64_t min_pos = (8 * nr) >> level, min_ch = GPUX__MAX(mrw, (4 * mrw) >> level);
    int64_t rblocks = GPUX__MAX(1, GPUX__MIN(want, p->oh * j.l.ws / min_pos));
    j.mblocks = GPUX__MAX((mg + MB_MAX - 1) / MB_MAX, GPUX__MIN((want + rblocks - 1) / rblocks, mg / min_ch));
    j.mb = (mg + j.mblocks - 1) / j.mblocks;
    j.mb = (j.mb + mrw - 1) / mrw * mrw;
    j.mblocks = (mg + j.mb - 1) / j.mb;
    /* runs of positions in whole register blocks (direct_out), else of rows; then, where the cap
     * of 64K floats a tile made more tiles than asked for and the threads do not share them
     * evenly, up to threads - 1 more, smaller tiles: the count whose busiest thread has the fewest
     * positions (the first of those; tiles not capped stay as they were). MobileNetV3's 16 -> 64 channels on 112 x 112 (12544 positions, tiles of at most
     * 1024): 13 tiles of 1008, the busiest thread 4032 positions on 4 threads (81%) and 7056 on 2
     * (92%); 16 tiles of 784: 3136, and 14 of 896: 6272, the ideal; on 16 threads 30 tiles of 432
     * x 2 blocks of channels, 1728 (93%) -> 32 of 400, 1600 (98%). 1 thread: one tile's count,
     * as before. */
    int64_t extent = j.direct_out ? p->oh * p->ow : p->oh, unit = j.direct_out ? nr : 1;
    int64_t cap = j.direct_out ? GPUX__MAX(nr, 65536 / j.mb / nr * nr) : GPUX__MAX(1, 65536 / (j.mb * j.l.ws));
    j.rows = GPUX__MIN(cap, ((extent + rblocks - 1) / rblocks + unit - 1) / unit * unit);
    j.rblocks = (extent + j.rows - 1) / j.rows;
    if (threads > 1 && j.rows == cap && j.rblocks > rblocks) {
      int64_t fewest = INT64_MAX, first = j.rblocks;
      for (int64_t r = first; r < first + threads; r++) {
        int64_t rows = ((extent + r - 1) / r + unit - 1) / unit * unit, rb = (extent + rows - 1) / rows;
        int64_t busiest = gpux__parallel_busiest(p->g * j.mblocks * rb, threads) * rows;
        if (busiest < fewest) fewest = busiest, j.rows = rows, j.rblocks = rb;
      }
    }
    int64_t tasks = p->g * j.mblocks * j.rblocks;
    double cost = (double)gpux__parallel_busiest(tasks, threads) / (double)tasks; /* of all the work */
    if (level == 0 || cost < best * (15.0 / 16.0)) {
      best = cost;
      keep[0] = j.mblocks, keep[1] = j.mb, keep[2] = j.rows, keep[3] = j.rblocks;
    }
  }
  j.mblocks = keep[0], j.mb = keep[1], j.rows = keep[2], j.rblocks = keep[3];
  int64_t task_pos = j.direct_out ? j.rows : j.rows * p->ow;
  gpux__conv_plan_note("implicit", p, threads, p->g * j.mblocks * j.rblocks, task_pos, j.mb,
                       (double)(task_pos * j.mb) * (double)kk);
  int64_t *off = gpux__scratch(GPUX__SCRATCH_CONV_TAPS, (size_t)kk * sizeof *off);
  if (!off) return GPUX_E_NOMEM;
  for (int64_t c = 0, r = 0; c < cg; c++)
    for (int64_t i = 0; i < p->kh; i++)
      for (int64_t jj = 0; jj < p->kw; jj++) off[r++] = c * j.l.plane + tap_offset(p, &j.l, i, jj);
  j.off = off;
  atomic_init(&j.failed, 0);
  int rc = 0;
  float *xp = NULL;
  if (!j.in_place && !(xp = scratch_get(0, (size_t)(p->c * j.l.plane + SLACK))))
    rc = gpux__error(GPUX_E_NOMEM, "out of memory");
  for (int64_t n = 0; !rc && n < p->n; n++) {
    const float *x = p->x + n * p->c * p->h * p->w_;
    if (!j.in_place) {
      split_job sj = {p, &j.l, x, xp};
      gpux__parallel_for(p->c, GPUX__MAX(1, 65536 / (j.l.plane + 1)), split_planes, &sj);
    }
    j.xp = j.in_place ? x : xp;
    j.n = n;
    gpux__parallel_for_work(p->g * j.mblocks * j.rblocks, macs, igemm_tasks, &j);
  }
  if (!rc && atomic_load(&j.failed)) rc = gpux__error(GPUX_E_NOMEM, "out of memory for a convolution tile");
  return rc;
}

/* ---- depthwise ---- */

#define DW_VEC 32       /* outputs per step: four vectors */

typedef struct {
  const gpux__conv2d *p;
  split_layout l;
  int64_t ntaps;            /* kh * kw */
  const int64_t *toff;      /* [ntaps] offset of each tap's run (tap_offset) */
  atomic_int failed;
} dw_job;

/* out[q] = sum over taps t < ntaps of w[t] * subs[toff[t] + q] for q in [q0, q1) (rounded up to
 * DW_VEC). The hot loop. */
TARGET static void dw_run(const float *subs, const float *w, const int64_t *toff, int64_t ntaps, int64_t q0,
                          int64_t q1, float *out) {
  for (int64_t q = q0; q < q1; q += DW_VEC) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t t = 0; t < ntaps; t++) {
      const float *s = subs + toff[t] + q;
      __m256 wv = _mm256_broadcast_ss(w + t);
      a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s), a0);
      a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + 8), a1);
      a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + 16), a2);
      a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + 24), a3);
    }
    _mm256_storeu_ps(out + q, a0);
    _mm256_storeu_ps(out + q + 8, a1);
    _mm256_storeu_ps(out + q + 16, a2);
    _mm256_storeu_ps(out + q + 24, a3);
  }
}

/* The kernel rows [*i0, *i1) whose input row is inside X for output row oh. */
static void dw_rows(const gpux__conv2d *p, int64_t oh, int64_t *i0, int64_t *i1) {
  int64_t top = oh * p->sh - p->pt; /* input row of kernel row 0 */
  *i0 = top >= 0 ? 0 : (-top + p->dh - 1) / p->dh;
  *i1 = top >= p->h ? 0 : (p->h - top + p->dh - 1) / p->dh;
  *i0 = GPUX__MIN(*i0, p->kh);
  *i1 = GPUX__MIN(*i1, p->kh);
  if (*i1 < *i0) *i1 = *i0;
}

/* Output rows oh and oh + 1 of a plane with row stride and dilation 1, which read kernel rows
 * [i0a, i1a) and [i0b, i1b) (those whose input rows are inside X): input row oh + r serves kernel
 * row r of the first and r - 1 of the second (one grid row, ws floats, on in the same
 * sub-plane), so a load feeds both where both use it (8 accumulators: 32 outputs of each row).
 * Steps run from the row's end backwards: a step's first-row sums spill into the start of the
 * second row, which a later step (an earlier position) then writes with its true values. */
TARGET static void dw_run2(const float *subs, const float *w, const int64_t *toff, int64_t kw, int64_t ws,
                           int64_t oh, int64_t ow, int64_t i0a, int64_t i1a, int64_t i0b, int64_t i1b, float *out) {
  int64_t q0 = oh * ws, steps = (ow + DW_VEC - 1) / DW_VEC;
  int64_t r0 = GPUX__MIN(i0a, i0b + 1), r1 = GPUX__MAX(i1a, i1b + 1);
  for (int64_t st = steps - 1; st >= 0; st--) {
    int64_t q = q0 + st * DW_VEC;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (int64_t r = r0; r < r1; r++) {
      int ua = r >= i0a && r < i1a, ub = r > i0b && r <= i1b;
      const float *wa = w + r * kw, *wb = w + (r - 1) * kw;
      for (int64_t c = 0; c < kw; c++) {
        const float *s = subs + toff[c] + r * ws + q;
        __m256 v0 = _mm256_loadu_ps(s), v1 = _mm256_loadu_ps(s + 8);
        __m256 v2 = _mm256_loadu_ps(s + 16), v3 = _mm256_loadu_ps(s + 24);
        if (ua) {
          __m256 wv = _mm256_broadcast_ss(wa + c);
          a0 = _mm256_fmadd_ps(wv, v0, a0), a1 = _mm256_fmadd_ps(wv, v1, a1);
          a2 = _mm256_fmadd_ps(wv, v2, a2), a3 = _mm256_fmadd_ps(wv, v3, a3);
        }
        if (ub) {
          __m256 wv = _mm256_broadcast_ss(wb + c);
          b0 = _mm256_fmadd_ps(wv, v0, b0), b1 = _mm256_fmadd_ps(wv, v1, b1);
          b2 = _mm256_fmadd_ps(wv, v2, b2), b3 = _mm256_fmadd_ps(wv, v3, b3);
        }
      }
    }
    _mm256_storeu_ps(out + q, a0), _mm256_storeu_ps(out + q + 8, a1);
    _mm256_storeu_ps(out + q + 16, a2), _mm256_storeu_ps(out + q + 24, a3);
    _mm256_storeu_ps(out + q + ws, b0), _mm256_storeu_ps(out + q + ws + 8, b1);
    _mm256_storeu_ps(out + q + ws + 16, b2), _mm256_storeu_ps(out + q + ws + 24, b3);
  }
}

/* One plane. With row stride and dilation 1, output rows go two at a time; otherwise runs of
 * rows whose windows cover the same kernel rows of input (the interior, and each border row)
 * go together. Either way, kernel rows that would only read padding are skipped. */
static void dw_plane(const dw_job *j, const float *subs, const float *w, float *out) {
  const gpux__conv2d *p = j->p;
  int64_t a = 0, i0, i1, b0, b1;
  if (p->sh == 1 && p->dh == 1)
    for (; a + 1 < p->oh; a += 2) {
      dw_rows(p, a, &i0, &i1);
      dw_rows(p, a + 1, &b0, &b1);
      dw_run2(subs, w, j->toff, p->kw, j->l.ws, a, p->ow, i0, i1, b0, b1, out);
    }
  while (a < p->oh) {
    int64_t b = a + 1;
    dw_rows(p, a, &i0, &i1);
    while (b < p->oh && (dw_rows(p, b, &b0, &b1), b0 == i0 && b1 == i1)) b++;
    dw_run(subs, w + i0 * p->kw, j->toff + i0 * p->kw, (i1 - i0) * p->kw, a * j->l.ws, (b - 1) * j->l.ws + p->ow,
           out);
    a = b;
  }
}

static void dw_planes(void *ctx, int64_t begin, int64_t end) {
  dw_job *j = ctx;
  const gpux__conv2d *p = j->p;
  /* the plane's split copy (with SLACK), then the sums: a run's last step ends up to DW_VEC - 1
   * past the last output */
  int64_t mg = p->m / p->g, nout = p->oh * j->l.ws + 2 * DW_VEC;
  float *subs = scratch_get(1, (size_t)(j->l.plane + SLACK + nout));
  if (!subs) {
    atomic_store(&j->failed, 1);
    return;
  }
  float *out = subs + j->l.plane + SLACK;
  for (int64_t plane = begin; plane < end; plane++) {
    int64_t n = plane / p->m, m = plane % p->m;
    split_plane(p, &j->l, p->x + (n * p->c + m / mg) * p->h * p->w_, subs);
    dw_plane(j, subs, p->w + m * p->kh * p->kw, out);
    float *y = p->y + plane * p->oh * p->ow;
    float bias = p->b ? p->b[m] : 0.0f;
    gpux__conv_finish(y, p->ow, out, j->l.ws, p->oh, p->ow, bias, p->ep, m);
  }
}

int gpux__conv2d_depthwise(const gpux__conv2d *p) {
  int rc = gpux__conv2d_depthwise16(p); /* the AVX-512 kernel, where it takes the shape */
  if (rc <= 0) return rc;
  /* under 16 outputs per plane, copying planes costs more than it saves */
  if (!gpux__conv_direct_available() || p->c != p->g || p->oh * p->ow < 16 || p->pt < 0 || p->pl < 0) return 1;
  dw_job j = {.p = p, .ntaps = p->kh * p->kw};
  layout_init(p, &j.l);
  int64_t *toff = gpux__scratch(GPUX__SCRATCH_CONV_TAPS, (size_t)j.ntaps * sizeof *toff);
  if (!toff) return GPUX_E_NOMEM;
  for (int64_t i = 0; i < p->kh; i++)
    for (int64_t jj = 0; jj < p->kw; jj++) toff[i * p->kw + jj] = tap_offset(p, &j.l, i, jj);
  j.toff = toff;
  atomic_init(&j.failed, 0);
  double work = (double)(p->oh * j.l.ws * j.ntaps) * GPUX__DW_MAC_WORK + (double)j.l.plane +
                (double)(p->oh * p->ow) * gpux__conv_ep_work(p->ep);
  gpux__parallel_for_work(p->n * p->m, (double)(p->n * p->m) * work, dw_planes, &j);
  if (atomic_load(&j.failed)) return gpux__error(GPUX_E_NOMEM, "out of memory for a depthwise plane");
  return 0;
}

#else

int gpux__conv2d_implicit(const gpux__conv2d *p) { (void)p; return 1; }
int gpux__conv2d_depthwise(const gpux__conv2d *p) { (void)p; return 1; }

#endif /* DIRECT */
