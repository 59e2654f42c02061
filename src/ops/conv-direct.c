/* conv-direct.c — float32 convolution kernels for x86-64 with AVX2 and FMA, checked at run time
 * (elsewhere conv.c's im2col + BLAS and depthwise loops run). Both copy the input once into a
 * padded scratch image laid out so that, for every kernel tap, the inputs under consecutive
 * output positions are consecutive floats; the kernels then need neither im2col nor edge cases.
 *
 *   implicit GEMM  stride-1 convolutions, any kernel and dilation. In the padded image xp
 *                  [c, Hp, Wp], output position p = oh * Wp + ow of a padded-width grid reads
 *                  xp[c][p + i*dh*Wp + j*dw] for tap r = (c, i, j): Y_g[M, P] = W_g[M, K] x
 *                  B[K, P] with row r of B a run of xp at offset off[r]. A 4 x 24 register
 *                  block (12 accumulators) of FMAs reads B in place; the Wp - OW columns of each
 *                  row that lie outside the output are computed and dropped when a tile is
 *                  written out through the epilogue.
 *   depthwise      each padded plane is split by the strides into sh x sw sub-planes of width
 *                  Ws, so that tap (i, j) of output p = oh * Ws + ow is a run of one sub-plane
 *                  again; each output sums all taps in registers, 32 outputs at a time.
 */
#include "ops/conv.h"
#include <stdatomic.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DIRECT 1
#define TARGET __attribute__((target("avx2,fma")))
#else
#define DIRECT 0
#endif

int gpux__conv_direct_available(void) {
#if DIRECT
  static int ok = -1;
  if (ok < 0) {
    __builtin_cpu_init();
    ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return ok;
#else
  return 0;
#endif
}

#if DIRECT

/* Per-thread scratch kept for the thread's next call (pool threads live as long as the process):
 * slot 0 for the calling thread's padded image, slot 1 for each task's tile. */
static _Thread_local float *scratch[2];
static _Thread_local size_t scratch_cap[2];

static float *scratch_get(int slot, size_t n) {
  if (n > scratch_cap[slot]) {
    free(scratch[slot]);
    scratch[slot] = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    scratch_cap[slot] = scratch[slot] ? n : 0;
  }
  return scratch[slot];
}

/* ---- implicit GEMM ---- */

#define MR 4            /* output channels per register block */
#define NR 24           /* output positions per register block (3 vectors) */
#define KC 256          /* taps per pass over a block: NR x KC floats of B stay in L1 */
#define MB_MAX 128      /* output channels per task: MB_MAX x KC floats of W stay in L2 */

/* Lanes [0, n) of a vector (none when n <= 0, all when n >= 8). */
TARGET static inline __m256i tail_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)GPUX__MAX(-1, GPUX__MIN(n, 8))), idx);
}

/* C[i, 0:nv] (+)= sum over r < kc of A_i[r] * B[off[r] + 0:nv] for rows i < mr (a[i] are the rows
 * of W, clamped to the last one when mr < MR), with nv in (8 * (NVEC - 1), 8 * NVEC]; the last
 * vector is masked when nv is not a multiple of 8 (masked loads never touch memory past the
 * run). The hot loop: NVEC x MR accumulators, one broadcast per row and tap. */
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
      _Pragma("GCC unroll 3") for (int v = 0; v < NVEC; v++) {                                  \
        if (MASKED && v == NVEC - 1) {                                                          \
          __m256 t = add ? _mm256_add_ps(_mm256_maskload_ps(ci + 8 * v, mk), acc[i][v]) : acc[i][v]; \
          _mm256_maskstore_ps(ci + 8 * v, mk, t);                                               \
        } else {                                                                                \
          __m256 t = add ? _mm256_add_ps(_mm256_loadu_ps(ci + 8 * v), acc[i][v]) : acc[i][v];   \
          _mm256_storeu_ps(ci + 8 * v, t);                                                      \
        }                                                                                       \
      }                                                                                         \
    }                                                                                           \
  }

DEF_BLOCK(block_x8, 1, 0)
DEF_BLOCK(block_x16, 2, 0)
DEF_BLOCK(block_x24, 3, 0)
DEF_BLOCK(block_x8m, 1, 1)
DEF_BLOCK(block_x16m, 2, 1)
DEF_BLOCK(block_x24m, 3, 1)

typedef void (*block_fn)(int64_t kc, const float *b, const int64_t *off, const float *const *a, float *c,
                         int64_t ldc, int mr, int add, int64_t nv);

/* The block for nv positions (1 <= nv <= NR). */
static block_fn block_for(int64_t nv) {
  static const block_fn full[3] = {block_x8, block_x16, block_x24}, masked[3] = {block_x8m, block_x16m, block_x24m};
  return (nv % 8 ? masked : full)[(nv + 7) / 8 - 1];
}

typedef struct {
  const gpux__conv2d *p;
  const float *xp;          /* the padded image of one batch item [c, hp, wp] (or X itself) */
  int64_t n;                /* that batch item */
  int64_t hp, wp;           /* padded extents */
  const int64_t *off;       /* [K] offset of each tap's run in xp, relative to the group */
  int64_t cg, mg, kk;       /* input and output channels per group, taps (K) */
  int64_t mb, mblocks;      /* output channels per task and tasks per group along M */
  int64_t rows, rblocks;    /* output rows per task and tasks per group along the rows */
  int direct_out;           /* wp == ow: tiles are written straight into Y */
  atomic_int failed;        /* a task found no memory for its tile */
} igemm_job;

static void igemm_tasks(void *ctx, int64_t begin, int64_t end) {
  igemm_job *j = ctx;
  const gpux__conv2d *p = j->p;
  int64_t os = p->oh * p->ow;
  for (int64_t t = begin; t < end; t++) {
    int64_t g = t / (j->mblocks * j->rblocks), rem = t % (j->mblocks * j->rblocks);
    int64_t m0 = rem / j->rblocks * j->mb, m1 = GPUX__MIN(j->mg, m0 + j->mb);
    int64_t oh0 = rem % j->rblocks * j->rows, oh1 = GPUX__MIN(p->oh, oh0 + j->rows);
    /* positions [q0, q1) of the padded-width grid; the last row stops at its last output */
    int64_t q0 = oh0 * j->wp, q1 = (oh1 - 1) * j->wp + p->ow, np = q1 - q0;
    const float *xg = j->xp + g * j->cg * j->hp * j->wp;        /* [cg, hp, wp] */
    const float *wg = p->w + (g * j->mg) * j->kk;               /* [mg, K] */
    float *yg = p->y + (j->n * p->m + g * j->mg) * os;           /* [mg, oh, ow] */
    float *c;
    int64_t ldc;
    if (j->direct_out) {
      c = yg + m0 * os + q0, ldc = os;
    } else {
      c = scratch_get(1, (size_t)((m1 - m0) * np));
      if (!c) {
        atomic_store(&j->failed, 1);
        return;
      }
      ldc = np;
    }
    for (int64_t k0 = 0; k0 < j->kk; k0 += KC) {
      int64_t kc = GPUX__MIN(KC, j->kk - k0);
      for (int64_t pt = q0; pt < q1; pt += NR) {
        int64_t nv = GPUX__MIN(NR, q1 - pt);
        block_fn block = block_for(nv);
        for (int64_t mt = m0; mt < m1; mt += MR) {
          int mr = (int)GPUX__MIN(MR, m1 - mt);
          const float *a[MR];
          for (int i = 0; i < MR; i++) a[i] = wg + (mt + GPUX__MIN(i, mr - 1)) * j->kk + k0;
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
        gpux__conv_finish_row(row, row, np, bias, p->ep, ch);
        continue;
      }
      for (int64_t oh = oh0; oh < oh1; oh++)
        gpux__conv_finish_row(yg + m * os + oh * p->ow, c + (m - m0) * ldc + (oh - oh0) * j->wp, p->ow, bias,
                              p->ep, ch);
    }
  }
}

typedef struct {
  const gpux__conv2d *p;
  const float *x;           /* one batch item [c, h, w] */
  float *xp;                /* its padded copy [c, hp, wp] */
  int64_t hp, wp;
} pad_job;

static void pad_planes(void *ctx, int64_t begin, int64_t end) {
  const pad_job *j = ctx;
  const gpux__conv2d *p = j->p;
  for (int64_t c = begin; c < end; c++) {
    const float *src = j->x + c * p->h * p->w_;
    float *dst = j->xp + c * j->hp * j->wp;
    for (int64_t r = 0; r < j->hp; r++) {
      float *d = dst + r * j->wp;
      int64_t ir = r - p->pt;
      if (ir < 0 || ir >= p->h) {
        memset(d, 0, (size_t)j->wp * sizeof *d);
        continue;
      }
      int64_t lo = GPUX__MIN(p->pl, j->wp), n = GPUX__MIN(p->w_, j->wp - lo);
      memset(d, 0, (size_t)lo * sizeof *d);
      memcpy(d + lo, src + ir * p->w_, (size_t)n * sizeof *d);
      memset(d + lo + n, 0, (size_t)(j->wp - lo - n) * sizeof *d);
    }
  }
}

int gpux__conv2d_implicit(const gpux__conv2d *p) {
  if (!gpux__conv_direct_available() || p->sh != 1 || p->sw != 1 || p->oh < 1 || p->ow < 1) return 1;
  int64_t cg = p->c / p->g, mg = p->m / p->g, kk = cg * p->kh * p->kw;
  int64_t hp = p->oh + (p->kh - 1) * p->dh, wp = p->ow + (p->kw - 1) * p->dw;
  if (kk < 1 || p->pt < 0 || p->pl < 0) return 1;
  /* X itself when it needs no padding (a 1x1 kernel, or taps along H only with no padding) */
  int in_place = p->pt == 0 && p->pl == 0 && hp == p->h && wp == p->w_;
  int threads = gpux__thread_count();
  igemm_job j = {.p = p, .hp = hp, .wp = wp, .cg = cg, .mg = mg, .kk = kk, .direct_out = wp == p->ow};
  /* tasks: blocks of output channels, and of rows such that a tile is at most ~64K floats,
   * with about four tasks per thread when the image allows */
  j.mblocks = (mg + MB_MAX - 1) / MB_MAX;
  j.mb = (mg + j.mblocks - 1) / j.mblocks;
  j.mb = (j.mb + MR - 1) / MR * MR;
  int64_t rows = GPUX__MAX(1, 65536 / (j.mb * wp));
  int64_t want = (4 * threads + p->g * j.mblocks - 1) / (p->g * j.mblocks);
  if (threads > 1) rows = GPUX__MIN(rows, GPUX__MAX(1, (p->oh + want - 1) / want));
  j.rows = GPUX__MIN(rows, p->oh);
  j.rblocks = (p->oh + j.rows - 1) / j.rows;
  int64_t *off = gpux__malloc((size_t)kk * sizeof *off);
  if (!off) return GPUX_E_NOMEM;
  for (int64_t c = 0, r = 0; c < cg; c++)
    for (int64_t i = 0; i < p->kh; i++)
      for (int64_t jj = 0; jj < p->kw; jj++) off[r++] = c * hp * wp + i * p->dh * wp + jj * p->dw;
  j.off = off;
  atomic_init(&j.failed, 0);
  int rc = 0;
  float *xp = NULL;
  if (!in_place && !(xp = scratch_get(0, (size_t)(p->c * hp * wp)))) rc = gpux__error(GPUX_E_NOMEM, "out of memory");
  for (int64_t n = 0; !rc && n < p->n; n++) {
    const float *x = p->x + n * p->c * p->h * p->w_;
    if (!in_place) {
      pad_job pj = {p, x, xp, hp, wp};
      gpux__parallel_for(p->c, GPUX__MAX(1, 16384 / (hp * wp)), pad_planes, &pj);
    }
    j.xp = in_place ? x : xp;
    j.n = n;
    gpux__parallel_for(p->g * j.mblocks * j.rblocks, 1, igemm_tasks, &j);
  }
  free(off);
  if (!rc && atomic_load(&j.failed)) rc = gpux__error(GPUX_E_NOMEM, "out of memory for a convolution tile");
  return rc;
}


/* ---- depthwise ---- */

#define DW_VEC 32       /* outputs per step: four vectors */

typedef struct {
  const gpux__conv2d *p;
  int64_t hp, wp;           /* padded plane */
  int64_t hs, ws;           /* sub-plane extents: ceil(hp / sh), ceil(wp / sw) */
  int64_t sub;              /* floats per sub-plane, with room for the last step's overread */
  int64_t ntaps, np;        /* taps; outputs of the sub-plane-width grid (last row cut at ow) */
  const int64_t *toff;      /* [ntaps] offset of each tap's run from its sub-plane's origin */
  atomic_int failed;
} dw_job;

/* ev[i] = src[2i], od[i] = src[2i + 1] for the n floats of src. */
TARGET static void deinterleave2(const float *src, int64_t n, float *ev, float *od) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = _mm256_loadu_ps(src + i), b = _mm256_loadu_ps(src + i + 8);
    __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* s0 s2 s8 s10 | s4 s6 s12 s14 */
    __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
    _mm256_storeu_ps(ev + i / 2, e);
    _mm256_storeu_ps(od + i / 2, o);
  }
  for (; i < n; i++) (i & 1 ? od : ev)[i / 2] = src[i];
}

/* Splits plane x [h, w] padded by (pt, pl) into sh x sw sub-planes: sub (a, b) holds the padded
 * rows a, a + sh, ... and columns b, b + sw, ... (zeros where outside the input). */
static void dw_split(const dw_job *j, const float *x, float *subs) {
  const gpux__conv2d *p = j->p;
  memset(subs, 0, (size_t)(p->sh * p->sw * j->sub) * sizeof *subs);
  for (int64_t ih = 0; ih < p->h; ih++) {
    int64_t r = ih + p->pt, a = r % p->sh, rs = r / p->sh;
    const float *src = x + ih * p->w_;
    if (p->sw == 1) {
      memcpy(subs + a * j->sub + rs * j->ws + p->pl, src, (size_t)p->w_ * sizeof *src);
      continue;
    }
    if (p->sw == 2) { /* even input columns go to sub-plane pl % 2, odd ones to the other */
      int64_t be = p->pl % 2;
      float *ev = subs + (a * 2 + be) * j->sub + rs * j->ws + p->pl / 2;
      float *od = subs + (a * 2 + 1 - be) * j->sub + rs * j->ws + (1 + p->pl) / 2;
      deinterleave2(src, p->w_, ev, od);
      continue;
    }
    for (int64_t b = 0; b < p->sw; b++) { /* the columns iw with (iw + pl) % sw == b */
      int64_t iw0 = ((b - p->pl) % p->sw + p->sw) % p->sw;
      float *dst = subs + (a * p->sw + b) * j->sub + rs * j->ws + (iw0 + p->pl) / p->sw;
      for (int64_t iw = iw0, o = 0; iw < p->w_; iw += p->sw, o++) dst[o] = src[iw];
    }
  }
}

/* out[q] = sum over taps t of w[t] * base_t[q] for q < np (rounded up to DW_VEC). The hot loop. */
TARGET static void dw_plane(const dw_job *j, const float *subs, const float *w, float *out) {
  const int64_t *toff = j->toff;
  for (int64_t q = 0; q < j->np; q += DW_VEC) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t t = 0; t < j->ntaps; t++) {
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

static void dw_planes(void *ctx, int64_t begin, int64_t end) {
  dw_job *j = ctx;
  const gpux__conv2d *p = j->p;
  int64_t mg = p->m / p->g, nsub = p->sh * p->sw, nout = (j->np + DW_VEC - 1) / DW_VEC * DW_VEC;
  float *subs = scratch_get(1, (size_t)(nsub * j->sub + nout));
  if (!subs) {
    atomic_store(&j->failed, 1);
    return;
  }
  float *out = subs + nsub * j->sub;
  for (int64_t plane = begin; plane < end; plane++) {
    int64_t n = plane / p->m, m = plane % p->m;
    dw_split(j, p->x + (n * p->c + m / mg) * p->h * p->w_, subs);
    dw_plane(j, subs, p->w + m * p->kh * p->kw, out);
    float *y = p->y + plane * p->oh * p->ow;
    float bias = p->b ? p->b[m] : 0.0f;
    for (int64_t oh = 0; oh < p->oh; oh++)
      gpux__conv_finish_row(y + oh * p->ow, out + oh * j->ws, p->ow, bias, p->ep, m);
  }
}

int gpux__conv2d_depthwise(const gpux__conv2d *p) {
  if (!gpux__conv_direct_available() || p->c != p->g || p->oh < 1 || p->ow < 1 || p->pt < 0 || p->pl < 0)
    return 1;
  dw_job j = {.p = p, .ntaps = p->kh * p->kw};
  j.hp = (p->oh - 1) * p->sh + (p->kh - 1) * p->dh + 1;
  j.wp = (p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1;
  /* the input may reach past the last window (pads after it): those rows and columns are unused */
  j.hp = GPUX__MAX(j.hp, p->h + p->pt);
  j.wp = GPUX__MAX(j.wp, p->w_ + p->pl);
  j.hs = (j.hp + p->sh - 1) / p->sh;
  j.ws = (j.wp + p->sw - 1) / p->sw;
  j.np = (p->oh - 1) * j.ws + p->ow;
  int64_t *toff = gpux__malloc((size_t)j.ntaps * sizeof *toff), max_off = 0;
  if (!toff) return GPUX_E_NOMEM;
  j.sub = j.hs * j.ws;
  for (int64_t i = 0; i < p->kh; i++)
    for (int64_t jj = 0; jj < p->kw; jj++) {
      int64_t r = i * p->dh, c = jj * p->dw;
      int64_t o = (r / p->sh) * j.ws + c / p->sw;
      toff[i * p->kw + jj] = o;
      max_off = GPUX__MAX(max_off, o);
    }
  /* the last step reads up to DW_VEC - 1 floats past the last output of each tap's run */
  j.sub = GPUX__MAX(j.sub, max_off + (j.np + DW_VEC - 1) / DW_VEC * DW_VEC);
  for (int64_t i = 0; i < p->kh; i++)
    for (int64_t jj = 0; jj < p->kw; jj++) {
      int64_t r = i * p->dh, c = jj * p->dw;
      toff[i * p->kw + jj] += ((r % p->sh) * p->sw + c % p->sw) * j.sub;
    }
  j.toff = toff;
  atomic_init(&j.failed, 0);
  int64_t work = j.np * j.ntaps + j.hp * j.wp;
  gpux__parallel_for(p->n * p->m, GPUX__MAX(1, 32768 / (work + 1)), dw_planes, &j);
  free(toff);
  if (atomic_load(&j.failed)) return gpux__error(GPUX_E_NOMEM, "out of memory for a depthwise plane");
  return 0;
}

#else

int gpux__conv2d_implicit(const gpux__conv2d *p) { (void)p; return 1; }
int gpux__conv2d_depthwise(const gpux__conv2d *p) { (void)p; return 1; }

#endif /* DIRECT */
