/* sgemm.c — float32 GEMM against a B packed once (see gemm.h): MatMul's and Gemm's constant
 * weights are laid out on a node's first run into panels of NR columns, [panel][k][NR], zero-
 * padded past N, and kept in the node's state for the session's later runs. Each run then
 * computes C = A x B (+ bias, or + C; then gpux.FusedMatMul's activation and residual on each
 * block as it is stored) with register blocks of MR rows x NR columns that read a
 * panel as one sequential stream (B read in place, rows of N floats apart, walks a new page and
 * the same cache sets on every k step once N is large: the implicit GEMM's cliff on [768, 3072]
 * weights) and broadcast A's rows where they are.
 *
 * A task goes panel by panel; within a panel, in blocks of KC k steps whose 32 KB of panel stay
 * in L1 while every row block of the task passes over them (the panel's column of C, rows x NR,
 * stays in L2 between blocks). With eight panels or more, A is first packed into strips of MR
 * rows, block by block of KC k steps ([block][strip][KC][MR]), which the AVX-512 kernel reads as
 * one sequential stream; each row block asks for its share of the next block in L2; an A packed
 * of over 1 MB (K = 3072) is read block by block by groups of panels, so that it comes from L2
 * and not from memory for every panel; a tall A goes in parts of at most about 16 MB of strips,
 * so that a thread's scratch stays bounded. A B read transposed (an attention's
 * K^T) is packed by 16 x 16 transposes in registers (transpose16.h). One row of A goes to gemv.c.
 *
 *   AVX-512   MR 6 x NR 64: 24 zmm accumulators, 4 panel loads and 6 broadcasts per k step
 *             (six rows of A packed: kernel_pa6, in assembly)
 *   AVX2+FMA  MR 6 x NR 16: 12 ymm accumulators, 2 panel loads and 6 broadcasts per k step
 *
 * The instruction set is picked at run time (GPUX_SGEMM=avx2 forces the AVX2 kernel, =0 turns
 * the packed path off, for comparisons); a machine with neither keeps the unpacked paths. Threads
 * split C into tasks of row blocks x panels, panels first (a
 * task's panels are read from memory once), every task on the pool. */
#include "ops/gemm.h"
#include "core/scratch.h"
#include <stdatomic.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/transpose16.h"
#define PACKED 1
#else
#define PACKED 0
#endif

#define MR 6

enum { ISA_NONE, ISA_AVX2, ISA_AVX512 };

static int sgemm_isa(void) {
#if PACKED
  static atomic_int isa = -1;
  int v = atomic_load_explicit(&isa, memory_order_relaxed);
  if (v < 0) {
    const char *env = getenv("GPUX_SGEMM");
    __builtin_cpu_init();
    v = ISA_NONE;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) v = ISA_AVX2;
    if (v && __builtin_cpu_supports("avx512f")) v = ISA_AVX512;
    if (env && !strcmp(env, "avx2") && v) v = ISA_AVX2;
    if (env && !strcmp(env, "0")) v = ISA_NONE;
    atomic_store_explicit(&isa, v, memory_order_relaxed);
  }
  return v;
#else
  return ISA_NONE;
#endif
}

int64_t gpux__sgemm_nr(void) {
  int isa = sgemm_isa();
  return isa == ISA_AVX512 ? 64 : isa == ISA_AVX2 ? 16 : 0;
}

#if PACKED
/* One panel of 64 columns (w of them real, the rest zero) of a B read transposed ([n, k], rows
 * ldb apart, src its column j0's row) into dp [k][64], in 16 x 16 blocks transposed in registers:
 * an attention's K^T on every run. nw: the real columns of the next panel (0 for none). */
__attribute__((target("avx512f"))) static void pack_panel_t16(float *dp, const float *src, int64_t ldb, int64_t k,
                                                                int64_t w, int64_t nw) {
  for (int64_t r0 = 0; r0 < k; r0 += 16) {
    __mmask16 kr = gpux__lanes16(k - r0);
    for (int64_t jb = 0; jb < 64; jb += 16) {
      /* the next panel's block here (nw of its rows are real) asked for in L1: each block's 16
       * loads are 16 lines of rows far apart, which the core would otherwise wait on in turn */
      for (int64_t t = jb; t < jb + 16 && t < nw; t++) _mm_prefetch((const char *)(src + (64 + t) * ldb + r0), _MM_HINT_T0);
      __m512 v[16];
      for (int t = 0; t < 16; t++)
        v[t] = jb + t < w ? _mm512_maskz_loadu_ps(kr, src + (jb + t) * ldb + r0) : _mm512_setzero_ps();
      gpux__transpose16(v);
      for (int i = 0; i < 16 && r0 + i < k; i++) _mm512_store_ps(dp + (r0 + i) * 64 + jb, v[i]);
    }
  }
}
#endif

/* Panels [p0, p1) of B laid out for the kernel of width nr into dst (the whole packed B). */
static void pack_panels(float *dst, int64_t nr, const float *b, int64_t ldb, int trans_b, int64_t k, int64_t n,
                        int64_t p0, int64_t p1) {
  for (int64_t pn = p0; pn < p1; pn++) {
    int64_t j0 = pn * nr, w = GPUX__MIN(nr, n - j0);
    float *dp = dst + pn * k * nr;
#if PACKED
    if (trans_b && nr == 64) {
      pack_panel_t16(dp, b + j0 * ldb, ldb, k, w, pn + 1 < p1 ? GPUX__MIN(nr, n - j0 - nr) : 0);
      continue;
    }
#endif
    if (trans_b) { /* B is [n, k]: each of the panel's columns is a row of B */
      for (int64_t j = 0; j < w; j++) {
        const float *src = b + (j0 + j) * ldb;
        for (int64_t r = 0; r < k; r++) dp[r * nr + j] = src[r];
      }
      for (int64_t r = 0; r < k && w < nr; r++) memset(dp + r * nr + w, 0, (size_t)(nr - w) * sizeof *dp);
      continue;
    }
    for (int64_t r = 0; r < k; r++, dp += nr) {
#if PACKED
      if (r + 8 < k) /* rows far apart (an attention's V, [T, H * D]): eight rows ahead */
        for (int64_t i = 0; i < w; i += 16) _mm_prefetch((const char *)(b + (r + 8) * ldb + j0 + i), _MM_HINT_T0);
#endif
      memcpy(dp, b + r * ldb + j0, (size_t)w * sizeof *dp);
      if (w < nr) memset(dp + w, 0, (size_t)(nr - w) * sizeof *dp);
    }
  }
}

int gpux__sgemm_pack(gpux__sgemm_b *p, const float *b, int64_t ldb, int trans_b, int64_t k, int64_t n, int64_t nr) {
  memset(p, 0, sizeof *p);
  int64_t most = gpux__sgemm_nr();
  if (!nr) nr = most;
  if (!most || (nr != 16 && nr != 64) || nr > most || k < 1 || n < 1) return 1;
  int64_t panels = (n + nr - 1) / nr;
  size_t floats = (size_t)(panels * k * nr);
  float *d = gpux__alloc_mapped(floats * sizeof(float)); /* streamed each run: on huge pages */
  if (!d) return gpux__error(GPUX_E_NOMEM, "out of memory for packed weights (%zu bytes)", floats * sizeof(float));
  pack_panels(d, nr, b, ldb, trans_b, k, n, 0, panels);
  *p = (gpux__sgemm_b){.k = k, .n = n, .nr = nr, .data = d};
  return 0;
}

int64_t gpux__sgemm_packed_floats(int64_t k, int64_t n) {
  int64_t nr = gpux__sgemm_nr();
  return nr ? (n + nr - 1) / nr * nr * k : 0;
}

void gpux__sgemm_pack_into(gpux__sgemm_b *p, float *dst, const float *b, int64_t ldb, int trans_b, int64_t k, int64_t n) {
  int64_t nr = gpux__sgemm_nr();
  pack_panels(dst, nr, b, ldb, trans_b, k, n, 0, (n + nr - 1) / nr);
  *p = (gpux__sgemm_b){.k = k, .n = n, .nr = nr, .data = dst};
}

void gpux__sgemm_b_free(gpux__sgemm_b *p) {
  if (p->data) gpux__free_mapped(p->data, (size_t)((p->n + p->nr - 1) / p->nr * p->nr * p->k) * sizeof(float));
  p->data = NULL;
}

#if PACKED

/* One register block: C[i, 0:nc] = init_i + sum over r < kc of a[i][r] * b[r * NR + 0:nc] for
 * rows i < mr, where init_i is C's row (load_c), the bias (when not NULL) or zero. a[i] for i
 * >= mr repeat the last row (computed and dropped). pf, when not NULL, is the next block of the
 * panel (kc rows of NR floats): the AVX-512 kernel asks for it in L2 while it computes, so that
 * weights streamed from memory arrive before the block that reads them. */
typedef void (*kernel_fn)(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr,
                          int64_t nc, int load_c, const float *bias, const float *pf);

__attribute__((target("avx512f,fma"))) static void kernel_avx512(int64_t kc, const float *const *a, const float *b,
                                                                   float *c, int64_t ldc, int mr, int64_t nc,
                                                                   int load_c, const float *bias, const float *pf) {
  __mmask16 mk[4];
  for (int v = 0; v < 4; v++) {
    int64_t left = nc - 16 * v;
    mk[v] = gpux__lanes16(left);
  }
  if (mr == 1) { /* one row (a classifier's or a decoder step's product): no repeated rows */
    const float *a0 = a[0];
    __m512 s[8];
    for (int v = 0; v < 4; v++) {
      s[v] = load_c ? _mm512_maskz_loadu_ps(mk[v], c + 16 * v) : bias ? _mm512_maskz_loadu_ps(mk[v], bias + 16 * v) : _mm512_setzero_ps();
      s[4 + v] = _mm512_setzero_ps();
    }
    int64_t r = 0;
    for (; r + 1 < kc; r += 2, b += 128) { /* two rows of B at a time: eight independent sums */
      __m512 x0 = _mm512_set1_ps(a0[r]), x1 = _mm512_set1_ps(a0[r + 1]);
      for (int v = 0; v < 4; v++) {
        s[v] = _mm512_fmadd_ps(x0, _mm512_load_ps(b + 16 * v), s[v]);
        s[4 + v] = _mm512_fmadd_ps(x1, _mm512_load_ps(b + 64 + 16 * v), s[4 + v]);
      }
    }
    if (r < kc) {
      __m512 x0 = _mm512_set1_ps(a0[r]);
      for (int v = 0; v < 4; v++) s[v] = _mm512_fmadd_ps(x0, _mm512_load_ps(b + 16 * v), s[v]);
    }
    for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(c + 16 * v, mk[v], _mm512_add_ps(s[v], s[4 + v]));
    return;
  }
  if (nc <= 16) { /* a panel's last 1-16 columns (N = 257: one in the fifth panel): one vector a row */
    __m512 s[MR];
    for (int i = 0; i < MR; i++)
      s[i] = load_c && i < mr ? _mm512_maskz_loadu_ps(mk[0], c + i * ldc) : bias ? _mm512_maskz_loadu_ps(mk[0], bias) : _mm512_setzero_ps();
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t r = 0; r < kc; r++, b += 64) {
      __m512 bv = _mm512_load_ps(b);
      s[0] = _mm512_fmadd_ps(_mm512_set1_ps(a0[r]), bv, s[0]);
      s[1] = _mm512_fmadd_ps(_mm512_set1_ps(a1[r]), bv, s[1]);
      s[2] = _mm512_fmadd_ps(_mm512_set1_ps(a2[r]), bv, s[2]);
      s[3] = _mm512_fmadd_ps(_mm512_set1_ps(a3[r]), bv, s[3]);
      s[4] = _mm512_fmadd_ps(_mm512_set1_ps(a4[r]), bv, s[4]);
      s[5] = _mm512_fmadd_ps(_mm512_set1_ps(a5[r]), bv, s[5]);
    }
    for (int i = 0; i < mr; i++) _mm512_mask_storeu_ps(c + i * ldc, mk[0], s[i]);
    return;
  }
  __m512 acc[MR][4];
  _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {
      if (load_c && i < mr) acc[i][v] = _mm512_maskz_loadu_ps(mk[v], c + i * ldc + 16 * v);
      else if (bias) acc[i][v] = _mm512_maskz_loadu_ps(mk[v], bias + 16 * v);
      else acc[i][v] = _mm512_setzero_ps();
    }
  }
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
#define ROW(I, AP)                                                                        \
  do {                                                                                    \
    __m512 av = _mm512_set1_ps(AP[r]);                                                    \
    acc[I][0] = _mm512_fmadd_ps(av, b0, acc[I][0]);                                       \
    acc[I][1] = _mm512_fmadd_ps(av, b1, acc[I][1]);                                       \
    acc[I][2] = _mm512_fmadd_ps(av, b2, acc[I][2]);                                       \
    acc[I][3] = _mm512_fmadd_ps(av, b3, acc[I][3]);                                       \
  } while (0)
  /* the k loop over ROWS (ROW statements): the panel's row r, then each row of A */
#define K_LOOP(ROWS)                                                                      \
  for (int64_t r = 0; r < kc; r++, b += 64) {                                             \
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32), \
           b3 = _mm512_load_ps(b + 48);                                                   \
    if (pf) { /* the next block's row r: four lines */                                    \
      const char *q = (const char *)(pf + r * 64);                                        \
      _mm_prefetch(q, _MM_HINT_T1);                                                       \
      _mm_prefetch(q + 64, _MM_HINT_T1);                                                  \
      _mm_prefetch(q + 128, _MM_HINT_T1);                                                 \
      _mm_prefetch(q + 192, _MM_HINT_T1);                                                 \
    }                                                                                     \
    ROWS;                                                                                 \
  }
  if (mr <= 4) { /* a last block of 2-4 rows (64 = 10 x 6 + 4 tokens): four rows, not six */
    K_LOOP(ROW(0, a0); ROW(1, a1); ROW(2, a2); ROW(3, a3))
  } else {
    K_LOOP(ROW(0, a0); ROW(1, a1); ROW(2, a2); ROW(3, a3); ROW(4, a4); ROW(5, a5))
  }
#undef K_LOOP
#undef ROW
  _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
    if (i >= mr) break;
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk[v], acc[i][v]);
  }
}

/* ---- the AVX-512 kernel on A packed into strips ----
 *
 * A's rows are laid out once per product in strips of MR, [strip][k][MR] (rows past m are never
 * read), so that a register block reads its broadcasts as one sequential stream of MR floats a
 * k step: no rows far apart (K = 3072: six rows 12 KB apart fall into the same L1 sets as each
 * other and the panel's block). The sums start at zero and C (or the bias) is added as the block is
 * stored: its loads wait on nothing and are issued long before the k loop ends. */

/* n16 runs of 16 k steps of six rows r[0..5] (from k step k0) interleaved into d[16 n16][6]:
 * output vector v of a run, floats 16v..16v+15, takes lane l (f = 16v + l) from row f % 6 at
 * k = f / 6. The rows of even i and of odd i are permuted in pairs with one index vector (k, or
 * 16 + k from the odd row), and the three pairs' results blended (rows 2-3 where f % 6 is 2 or
 * 3, rows 4-5 where it is 4 or 5). The index vectors are made once for all the runs. */
__attribute__((target("avx512f"))) static void pack_a16(float *d, const float *const *r, int64_t k0, int64_t n16) {
  static const int32_t idx[3][16] = {{0, 16, 0, 16, 0, 16, 1, 17, 1, 17, 1, 17, 2, 18, 2, 18},
                                     {2, 18, 3, 19, 3, 19, 3, 19, 4, 20, 4, 20, 4, 20, 5, 21},
                                     {5, 21, 5, 21, 6, 22, 6, 22, 6, 22, 7, 23, 7, 23, 7, 23}};
  static const __mmask16 m23[3] = {0xc30c, 0x0c30, 0x30c3}, m45[3] = {0x0c30, 0x30c3, 0xc30c};
  __m512i ix[6];
  for (int v = 0; v < 6; v++) /* vectors 3-5 are 0-2 eight k steps on */
    ix[v] = _mm512_add_epi32(_mm512_loadu_si512(idx[v % 3]), _mm512_set1_epi32(v / 3 * 8));
  const float *r0 = r[0] + k0, *r1 = r[1] + k0, *r2 = r[2] + k0, *r3 = r[3] + k0, *r4 = r[4] + k0, *r5 = r[5] + k0;
  for (int64_t j = 0; j < n16; j++, d += 16 * MR) {
    __m512 x0 = _mm512_loadu_ps(r0 + 16 * j), x1 = _mm512_loadu_ps(r1 + 16 * j), x2 = _mm512_loadu_ps(r2 + 16 * j),
           x3 = _mm512_loadu_ps(r3 + 16 * j), x4 = _mm512_loadu_ps(r4 + 16 * j), x5 = _mm512_loadu_ps(r5 + 16 * j);
    _Pragma("GCC unroll 6") for (int v = 0; v < 6; v++) {
      __m512 y = _mm512_permutex2var_ps(x0, ix[v], x1);
      y = _mm512_mask_blend_ps(m23[v % 3], y, _mm512_permutex2var_ps(x2, ix[v], x3));
      y = _mm512_mask_blend_ps(m45[v % 3], y, _mm512_permutex2var_ps(x4, ix[v], x5));
      _mm512_storeu_ps(d + 16 * v, y);
    }
  }
}

/* Strips [s0, s1) of A [m, k] (rows lda apart) packed into dst in blocks of kc k steps, each
 * block [strips][kc][MR] (the last block's kc what is left of k): a block's strips are one
 * sequential stream, which every panel then reads in that order. */
static void pack_a(float *dst, const float *a, int64_t lda, int64_t m, int64_t k, int64_t kc, int64_t s0, int64_t s1) {
  int64_t strips = (m + MR - 1) / MR;
  for (int64_t s = s0; s < s1; s++) {
    int64_t row = s * MR, mr = GPUX__MIN(MR, m - row);
    const float *src[MR];
    for (int i = 0; i < MR; i++) src[i] = a + (row + GPUX__MIN(i, mr - 1)) * lda;
    for (int64_t k0 = 0; k0 < k; k0 += kc) {
      int64_t kb = GPUX__MIN(kc, k - k0), r = 0;
      float *d = dst + k0 * strips * MR + s * kb * MR;
      if (kb >= 16) { /* a short last strip packs its last row again */
        pack_a16(d, src, k0, kb / 16);
        r = kb / 16 * 16;
      }
      for (; r < kb; r++)
        for (int i = 0; i < MR; i++) d[r * MR + i] = i < mr ? src[i][k0 + r] : 0.0f;
    }
  }
}

/* One register block of ROWS (1-6, a constant where it is inlined) rows: C[i, 0:nc] = init_i +
 * sum over r < kc of ap[r * MR + i] * b[r * 64 + 0:nc], init_i being C's row (add_c), the bias
 * (when not NULL) or zero. The first npf k steps each ask for one line of pf in L2 (more than kc
 * lines: four a step): the part of the panel's next block that this block brings in. */
__attribute__((target("avx512f,fma"), always_inline)) static inline void
kernel_pa(const int ROWS, int64_t kc, const float *ap, const float *b, float *c, int64_t ldc, int64_t nc, int add_c,
          const float *bias, const char *pf, int64_t npf) {
  __m512 acc[MR][4];
  _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++)
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) acc[i][v] = _mm512_setzero_ps();
#define STEP                                                                              \
  do {                                                                                    \
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32), \
           b3 = _mm512_load_ps(b + 48);                                                   \
    _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++) {                              \
      __m512 av = _mm512_set1_ps(ap[i]);                                                  \
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);                                     \
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);                                     \
      acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);                                     \
      acc[i][3] = _mm512_fmadd_ps(av, b3, acc[i][3]);                                     \
    }                                                                                     \
    ap += MR, b += 64;                                                                    \
  } while (0)
  /* two k steps, one pointer update */
#define STEP2                                                                             \
  do {                                                                                    \
    _Pragma("GCC unroll 2") for (int u = 0; u < 2; u++) {                                 \
      __m512 b0 = _mm512_load_ps(b + 64 * u), b1 = _mm512_load_ps(b + 64 * u + 16),       \
             b2 = _mm512_load_ps(b + 64 * u + 32), b3 = _mm512_load_ps(b + 64 * u + 48);  \
      _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++) {                            \
        __m512 av = _mm512_set1_ps(ap[MR * u + i]);                                       \
        acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);                                   \
        acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);                                   \
        acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);                                   \
        acc[i][3] = _mm512_fmadd_ps(av, b3, acc[i][3]);                                   \
      }                                                                                   \
    }                                                                                     \
    ap += 2 * MR, b += 128;                                                               \
  } while (0)
  int64_t r = 0;
  if (npf > kc) { /* four lines a step */
    for (int64_t n4 = GPUX__MIN(kc, (npf + 3) / 4); r < n4; r++, pf += 256) {
      _mm_prefetch(pf, _MM_HINT_T1);
      _mm_prefetch(pf + 64, _MM_HINT_T1);
      _mm_prefetch(pf + 128, _MM_HINT_T1);
      _mm_prefetch(pf + 192, _MM_HINT_T1);
      STEP;
    }
  } else if (npf > 0) { /* one line every kc / npf steps: a few requests in flight at a time */
    int64_t every = kc / npf;
    for (int64_t l = 0; l < npf; l++, pf += 64) {
      _mm_prefetch(pf, _MM_HINT_T1);
      int64_t e = r + every;
      for (; r + 2 <= e; r += 2) STEP2;
      for (; r < e; r++) STEP;
    }
  }
  for (; r + 2 <= kc; r += 2) STEP2;
  for (; r < kc; r++) STEP;
#undef STEP2
#undef STEP
  if (nc >= 64) {
    _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++) {
      _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {
        float *cp = c + i * ldc + 16 * v;
        __m512 x = acc[i][v];
        if (add_c) x = _mm512_add_ps(x, _mm512_loadu_ps(cp));
        else if (bias) x = _mm512_add_ps(x, _mm512_loadu_ps(bias + 16 * v));
        _mm512_storeu_ps(cp, x);
      }
    }
    return;
  }
  __mmask16 mk[4];
  for (int v = 0; v < 4; v++) {
    int64_t left = nc - 16 * v;
    mk[v] = gpux__lanes16(left);
  }
  _Pragma("GCC unroll 6") for (int i = 0; i < ROWS; i++) {
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {
      float *cp = c + i * ldc + 16 * v;
      __m512 x = acc[i][v];
      if (add_c) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk[v], cp));
      else if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk[v], bias + 16 * v));
      _mm512_mask_storeu_ps(cp, mk[v], x);
    }
  }
}

/* kernel_pa of six rows and 64 columns in assembly: the 24 sums in zmm0-23, the panel's row in
 * zmm24-27, the broadcasts in zmm28-31, two k steps an iteration. The compiler's own schedule of
 * the same loop moves sums between registers every other step (it runs out of the 32 with the
 * next step's panel row loaded early): in L1, one process alternating the two, 175-177 against
 * 182-189 GFLOP/s (a loaded machine; 188-193 against 201-206 quiet). The same FMAs in the same
 * order as kernel_pa, the sums then the bias or C added, so the same bits. The prefetch: one
 * line of pf every `every` iterations (npf <= kc / 2), or eight (npf above that), npf lines in
 * all. */
#define SG_FM(B, A, C) "vfmadd231ps %%zmm" #B ", %%zmm" #A ", %%zmm" #C "\n\t"
#define SG_ROW(OFF, BR, C0, C1, C2, C3)                                                       \
  "vbroadcastss " #OFF "(%[ap]), %%zmm" #BR "\n\t" SG_FM(24, BR, C0) SG_FM(25, BR, C1)        \
      SG_FM(26, BR, C2) SG_FM(27, BR, C3)
#define SG_STEP(AO, BO)                                                                       \
  "vmovaps " #BO "(%[b]), %%zmm24\n\t"                                                        \
  "vmovaps " #BO "+64(%[b]), %%zmm25\n\t"                                                     \
  "vmovaps " #BO "+128(%[b]), %%zmm26\n\t"                                                    \
  "vmovaps " #BO "+192(%[b]), %%zmm27\n\t" SG_ROW(AO, 28, 0, 1, 2, 3) SG_ROW(AO + 4, 29, 4, 5, 6, 7) \
      SG_ROW(AO + 8, 30, 8, 9, 10, 11) SG_ROW(AO + 12, 31, 12, 13, 14, 15)                      \
          SG_ROW(AO + 16, 28, 16, 17, 18, 19) SG_ROW(AO + 20, 29, 20, 21, 22, 23)
#define SG_ZERO(R) "vpxord %%zmm" #R ", %%zmm" #R ", %%zmm" #R "\n\t"
#define SG_OUT(C0, C1, C2, C3)                                                                \
  "vaddps (%[ini]), %%zmm" #C0 ", %%zmm" #C0 "\n\t"                                           \
  "vaddps 64(%[ini]), %%zmm" #C1 ", %%zmm" #C1 "\n\t"                                         \
  "vaddps 128(%[ini]), %%zmm" #C2 ", %%zmm" #C2 "\n\t"                                        \
  "vaddps 192(%[ini]), %%zmm" #C3 ", %%zmm" #C3 "\n\t"                                        \
  "vmovups %%zmm" #C0 ", (%[c])\n\t"                                                          \
  "vmovups %%zmm" #C1 ", 64(%[c])\n\t"                                                        \
  "vmovups %%zmm" #C2 ", 128(%[c])\n\t"                                                       \
  "vmovups %%zmm" #C3 ", 192(%[c])\n\t"                                                       \
  "add %[ldc], %[c]\n\t"                                                                      \
  "add %[istr], %[ini]\n\t"

/* the 24 sums at zero; all of them stored, six rows of four vectors; what the kernels clobber */
#define SG_ZERO24                                                                             \
  SG_ZERO(0) SG_ZERO(1) SG_ZERO(2) SG_ZERO(3) SG_ZERO(4) SG_ZERO(5) SG_ZERO(6) SG_ZERO(7) SG_ZERO(8) \
      SG_ZERO(9) SG_ZERO(10) SG_ZERO(11) SG_ZERO(12) SG_ZERO(13) SG_ZERO(14) SG_ZERO(15) SG_ZERO(16) \
          SG_ZERO(17) SG_ZERO(18) SG_ZERO(19) SG_ZERO(20) SG_ZERO(21) SG_ZERO(22) SG_ZERO(23)
#define SG_OUT24                                                                              \
  SG_OUT(0, 1, 2, 3) SG_OUT(4, 5, 6, 7) SG_OUT(8, 9, 10, 11) SG_OUT(12, 13, 14, 15) SG_OUT(16, 17, 18, 19) \
      SG_OUT(20, 21, 22, 23)
#define SG_CLOBBERS                                                                           \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
      "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",     \
      "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "memory", "cc"

/* The end of an iteration of the hot loop: every `every` iterations a group of one line of pf
 * asked into L2 (eight with wide), `groups` groups in all; then the loop's count. */
#define SG_LOOP_END                                                                           \
  "dec %[cnt]\n\t"                                                                            \
  "jnz 2f\n\t"                                                                                \
  "prefetcht1 (%[pf])\n\t"                                                                    \
  "cmpq $0, %[wide]\n\t"                                                                      \
  "je 4f\n\t"                                                                                 \
  "prefetcht1 64(%[pf])\n\t"                                                                  \
  "prefetcht1 128(%[pf])\n\t"                                                                 \
  "prefetcht1 192(%[pf])\n\t"                                                                 \
  "prefetcht1 256(%[pf])\n\t"                                                                 \
  "prefetcht1 320(%[pf])\n\t"                                                                 \
  "prefetcht1 384(%[pf])\n\t"                                                                 \
  "prefetcht1 448(%[pf])\n\t"                                                                 \
  "add $448, %[pf]\n\t"                                                                       \
  "4:\n\t"                                                                                    \
  "add $64, %[pf]\n\t"                                                                        \
  "mov %[every], %[cnt]\n\t"                                                                  \
  "decq %[groups]\n\t"                                                                        \
  "jnz 2f\n\t"                                                                                \
  "mov $-1, %[cnt]\n\t"                                                                       \
  "2:\n\t"                                                                                    \
  "dec %[n]\n\t"                                                                              \
  "jnz 1b\n\t"                                                                                \
  "3:\n\t"

/* what a block of no bias and no C starts from: -0 + x is x for every x, -0 included */
static const float neg_zeros[64] __attribute__((aligned(64))) = {
    -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f,
    -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f,
    -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f,
    -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f, -0.f};

__attribute__((target("avx512f,fma"))) static void kernel_pa6(int64_t kc, const float *ap, const float *b, float *c,
                                                                int64_t ldc, int add_c, const float *bias,
                                                                const char *pf, int64_t npf) {
  const float *ini = add_c ? c : bias ? bias : neg_zeros;
  int64_t istr = add_c ? ldc * (int64_t)sizeof(float) : 0, ldcb = ldc * (int64_t)sizeof(float);
  int64_t iters = kc / 2, odd = kc & 1, wide = npf > iters, per = wide ? 8 : 1;
  int64_t groups = npf > 0 ? GPUX__MIN(iters, (npf + per - 1) / per) : 0;
  int64_t every = groups ? GPUX__MAX(1, iters / groups) : 0, cnt = groups ? every : -1;
  __asm__ volatile(SG_ZERO24
                   "test %[n], %[n]\n\t"
                   "jz 3f\n\t"
                   "1:\n\t" /* the hot loop: two k steps */
                   SG_STEP(0, 0) SG_STEP(24, 256)
                   "add $48, %[ap]\n\t"
                   "add $512, %[b]\n\t"
                   SG_LOOP_END
                   "cmpq $0, %[odd]\n\t"
                   "je 5f\n\t" SG_STEP(0, 0) "5:\n\t" SG_OUT24
                   : [ap] "+r"(ap), [b] "+r"(b), [n] "+r"(iters), [cnt] "+r"(cnt), [pf] "+r"(pf), [groups] "+r"(groups),
                     [c] "+r"(c), [ini] "+r"(ini)
                   : [every] "rm"(every), [wide] "rm"(wide), [odd] "rm"(odd), [ldc] "rm"(ldcb), [istr] "rm"(istr)
                   : SG_CLOBBERS);
}
/* The same block on six rows gathered from anywhere (a[0..5]: a convolution's positions, each
 * tap's rows looked up in X), k steps kc: c[i * ldc + 0:64] = sum over r < kc of a[i][r] *
 * b[r * 64 + 0:64] + ini_i, ini_i being C's row (add), the bias (not NULL) or -0. The six rows are
 * read at one index (their own base registers), so the loop is kernel_pa6's with the broadcasts
 * from six streams, and the same prefetch of pf. conv-gemm.c's compiled block of the same loop
 * kept its 24 sums partly on the stack around its epilogue and prefetches. */
#define SG_GROW(A, OFF, BR, C0, C1, C2, C3)                                                   \
  "vbroadcastss " #OFF "(%[" #A "],%[k],4), %%zmm" #BR "\n\t" SG_FM(24, BR, C0) SG_FM(25, BR, C1) \
      SG_FM(26, BR, C2) SG_FM(27, BR, C3)
#define SG_GSTEP(AO, BO)                                                                      \
  "vmovaps " #BO "(%[b]), %%zmm24\n\t"                                                        \
  "vmovaps " #BO "+64(%[b]), %%zmm25\n\t"                                                     \
  "vmovaps " #BO "+128(%[b]), %%zmm26\n\t"                                                    \
  "vmovaps " #BO "+192(%[b]), %%zmm27\n\t" SG_GROW(a0, AO, 28, 0, 1, 2, 3) SG_GROW(a1, AO, 29, 4, 5, 6, 7) \
      SG_GROW(a2, AO, 30, 8, 9, 10, 11) SG_GROW(a3, AO, 31, 12, 13, 14, 15)                       \
          SG_GROW(a4, AO, 28, 16, 17, 18, 19) SG_GROW(a5, AO, 29, 20, 21, 22, 23)

__attribute__((target("avx512f,fma"))) static void kernel_g6(int64_t kc, const float *const *a, const float *b,
                                                               float *c, int64_t ldc, int add, const float *bias,
                                                               const char *pf, int64_t npf) {
  const float *ini = add ? c : bias ? bias : neg_zeros;
  int64_t istr = add ? ldc * (int64_t)sizeof(float) : 0, ldcb = ldc * (int64_t)sizeof(float);
  int64_t iters = kc / 2, odd = kc & 1, wide = npf > iters, per = wide ? 8 : 1, k = 0;
  int64_t groups = npf > 0 ? GPUX__MIN(iters, (npf + per - 1) / per) : 0;
  int64_t every = groups ? GPUX__MAX(1, iters / groups) : 0, cnt = groups ? every : -1;
  __asm__ volatile(SG_ZERO24
                   "test %[n], %[n]\n\t"
                   "jz 3f\n\t"
                   "1:\n\t" /* the hot loop: two k steps */
                   SG_GSTEP(0, 0) SG_GSTEP(4, 256)
                   "add $2, %[k]\n\t"
                   "add $512, %[b]\n\t"
                   SG_LOOP_END
                   "cmpq $0, %[odd]\n\t"
                   "je 5f\n\t" SG_GSTEP(0, 0) "5:\n\t" SG_OUT24
                   : [k] "+r"(k), [b] "+r"(b), [n] "+r"(iters), [cnt] "+r"(cnt), [pf] "+r"(pf), [groups] "+rm"(groups),
                     [c] "+r"(c), [ini] "+r"(ini)
                   : [a0] "r"(a[0]), [a1] "r"(a[1]), [a2] "r"(a[2]), [a3] "r"(a[3]), [a4] "r"(a[4]), [a5] "r"(a[5]),
                     [every] "rm"(every), [wide] "rm"(wide), [odd] "rm"(odd), [ldc] "rm"(ldcb), [istr] "rm"(istr)
                   : SG_CLOBBERS);
}
#undef SG_GSTEP
#undef SG_GROW
#undef SG_LOOP_END
#undef SG_ZERO24
#undef SG_OUT24
#undef SG_CLOBBERS
#undef SG_OUT
#undef SG_ZERO
#undef SG_STEP
#undef SG_ROW
#undef SG_FM

/* kernel_pa for a block of mr rows. */
__attribute__((target("avx512f,fma"))) static void kernel_pa_rows(int mr, int64_t kc, const float *ap, const float *b,
                                                                    float *c, int64_t ldc, int64_t nc, int add_c,
                                                                    const float *bias, const char *pf, int64_t npf) {
  switch (mr) {
  case 1: kernel_pa(1, kc, ap, b, c, ldc, nc, add_c, bias, pf, npf); break;
  case 2: kernel_pa(2, kc, ap, b, c, ldc, nc, add_c, bias, pf, npf); break;
  case 3: kernel_pa(3, kc, ap, b, c, ldc, nc, add_c, bias, pf, npf); break;
  case 4: kernel_pa(4, kc, ap, b, c, ldc, nc, add_c, bias, pf, npf); break;
  case 5: kernel_pa(5, kc, ap, b, c, ldc, nc, add_c, bias, pf, npf); break;
  default:
    if (nc >= 64) kernel_pa6(kc, ap, b, c, ldc, add_c, bias, pf, npf);
    else kernel_pa(6, kc, ap, b, c, ldc, nc, add_c, bias, pf, npf);
    break;
  }
}

/* Lanes [0, n) of a vector (none when n <= 0, all when n >= 8). */
__attribute__((target("avx2,fma"))) static inline __m256i lanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)GPUX__MAX(-1, GPUX__MIN(n, 8))), idx);
}

__attribute__((target("avx2,fma"))) static void kernel_avx2(int64_t kc, const float *const *a, const float *b,
                                                              float *c, int64_t ldc, int mr, int64_t nc, int load_c,
                                                              const float *bias, const float *pf) {
  (void)pf;
  const __m256i m0 = lanes(nc), m1 = lanes(nc - 8);
  __m256 acc[MR][2];
  _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
    if (load_c && i < mr) {
      acc[i][0] = _mm256_maskload_ps(c + i * ldc, m0);
      acc[i][1] = _mm256_maskload_ps(c + i * ldc + 8, m1);
    } else if (bias) {
      acc[i][0] = _mm256_maskload_ps(bias, m0);
      acc[i][1] = _mm256_maskload_ps(bias + 8, m1);
    } else {
      acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    }
  }
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
  for (int64_t r = 0; r < kc; r++, b += 16) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#define ROW(I, AP)                                                                        \
  do {                                                                                    \
    __m256 av = _mm256_broadcast_ss(AP + r);                                              \
    acc[I][0] = _mm256_fmadd_ps(av, b0, acc[I][0]);                                       \
    acc[I][1] = _mm256_fmadd_ps(av, b1, acc[I][1]);                                       \
  } while (0)
    ROW(0, a0);
    ROW(1, a1);
    ROW(2, a2);
    ROW(3, a3);
    ROW(4, a4);
    ROW(5, a5);
#undef ROW
  }
  _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {
    if (i >= mr) break;
    if (nc >= 16) {
      _mm256_storeu_ps(c + i * ldc, acc[i][0]);
      _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
    } else {
      _mm256_maskstore_ps(c + i * ldc, m0, acc[i][0]);
      _mm256_maskstore_ps(c + i * ldc + 8, m1, acc[i][1]);
    }
  }
}

typedef struct {
  int64_t m;
  const float *a;
  int64_t lda;
  const gpux__sgemm_b *b;
  float *c;
  int64_t ldc;
  const float *bias;
  int load_c;
  const gpux__gemm_epilogue *ep; /* on each block as it is stored, or NULL */
  kernel_fn kernel;
  const float *pa;          /* A packed in strips (pack_a) for kernel_pa, or NULL */
  int64_t kc;               /* k steps per block */
  int64_t strips, panels;   /* row blocks of MR and panels of NR */
  int64_t sper, pper;       /* of them per task */
  int64_t tn;               /* tasks along the panels */
  int64_t pgroup;           /* most panels whose column of C a task keeps in L2 (with pa) */
} sgemm_job;

/* Row blocks [s0, s1) x panels [p0, p1) of a product whose A is packed in strips: panels in
 * groups whose column of C (rows x pgroup x NR) stays in L2, and within a group block by block of
 * kc k steps, each panel's block in L1 while the row blocks pass over it: A's block of kc steps
 * (every strip's) is read from L2 by every panel of the group, not from memory panel by panel
 * (at K = 3072, A packed is 2.4 MB for 197 rows). Each row block asks for its share of the next
 * block's lines (the group's next panel, or its first panel's next kc steps, or the next group's). */
static void tasks_pa(const sgemm_job *j, int64_t s0, int64_t s1, int64_t p0, int64_t p1) {
  const gpux__sgemm_b *b = j->b;
  int64_t nr = b->nr, K = b->k, strips = j->strips;
  int64_t groups = (p1 - p0 + j->pgroup - 1) / j->pgroup, per = (p1 - p0 + groups - 1) / groups;
  for (int64_t g0 = p0; g0 < p1; g0 += per) {
    int64_t g1 = GPUX__MIN(p1, g0 + per);
    for (int64_t k0 = 0; k0 < K; k0 += j->kc) {
      int64_t kc = GPUX__MIN(j->kc, K - k0);
      const float *pa = j->pa + k0 * strips * MR;
      for (int64_t p = g0; p < g1; p++) {
        int64_t nc = GPUX__MIN(nr, b->n - p * nr);
        const float *bp = b->data + (p * K + k0) * nr;
        const float *bias = !k0 && j->bias ? j->bias + p * nr : NULL;
        const float *next = NULL;
        int64_t rows = 0; /* k steps in the next block */
        if (p + 1 < g1) next = bp + K * nr, rows = kc;
        else if (k0 + kc < K) next = b->data + (g0 * K + k0 + kc) * nr, rows = GPUX__MIN(j->kc, K - k0 - kc);
        else if (g1 < p1) next = b->data + g1 * K * nr, rows = GPUX__MIN(j->kc, K);
        int64_t lines = rows * nr / 16, share = (lines + (s1 - s0) - 1) / (s1 - s0);
        for (int64_t s = s0; s < s1; s++) {
          int64_t row = s * MR, first = (s - s0) * share;
          kernel_pa_rows((int)GPUX__MIN(MR, j->m - row), kc, pa + s * kc * MR, bp, j->c + row * j->ldc + p * nr,
                         j->ldc, nc, j->load_c || k0 > 0, bias, next ? (const char *)next + first * 64 : NULL,
                         GPUX__MAX(0, GPUX__MIN(share, lines - first)));
          if (j->ep && k0 + kc >= K)
            gpux__gemm_finish(j->c + row * j->ldc + p * nr, j->ldc, GPUX__MIN(MR, j->m - row), nc, NULL, j->ep, row, p * nr);
        }
      }
    }
  }
}

static void sgemm_tasks(void *ctx, int64_t begin, int64_t end) {
  const sgemm_job *j = ctx;
  const gpux__sgemm_b *b = j->b;
  int64_t nr = b->nr;
  for (int64_t t = begin; t < end; t++) {
    int64_t s0 = t / j->tn * j->sper, s1 = GPUX__MIN(j->strips, s0 + j->sper);
    int64_t p0 = t % j->tn * j->pper, p1 = GPUX__MIN(j->panels, p0 + j->pper);
    if (j->pa) {
      tasks_pa(j, s0, s1, p0, p1);
      continue;
    }
    for (int64_t p = p0; p < p1; p++) {
      int64_t nc = GPUX__MIN(nr, b->n - p * nr);
      for (int64_t k0 = 0; k0 < b->k; k0 += j->kc) {
        int64_t kc = GPUX__MIN(j->kc, b->k - k0);
        const float *bp = b->data + (p * b->k + k0) * nr;
        const float *bias = !k0 && j->bias ? j->bias + p * nr : NULL;
        /* the block after this one (the panel's next kc rows, or the next panel's first), asked
         * for by the first row block */
        const float *next = k0 + kc < b->k ? bp + kc * nr : p + 1 < p1 ? b->data + (p + 1) * b->k * nr : NULL;
        for (int64_t s = s0; s < s1; s++) {
          int64_t row = s * MR;
          int mr = (int)GPUX__MIN(MR, j->m - row);
          const float *a[MR];
          for (int i = 0; i < MR; i++) a[i] = j->a + (row + GPUX__MIN(i, mr - 1)) * j->lda + k0;
          j->kernel(kc, a, bp, j->c + row * j->ldc + p * nr, j->ldc, mr, nc, j->load_c || k0 > 0, bias,
                    s == s0 ? next : NULL);
          if (j->ep && k0 + kc >= b->k) gpux__gemm_finish(j->c + row * j->ldc + p * nr, j->ldc, mr, nc, NULL, j->ep, row, p * nr);
        }
      }
    }
  }
}

typedef struct {
  float *dst;
  const float *a;
  int64_t lda, m, k, kc;
} pack_a_job;

static void pack_a_tasks(void *ctx, int64_t begin, int64_t end) {
  const pack_a_job *j = ctx;
  pack_a(j->dst, j->a, j->lda, j->m, j->k, j->kc, begin, end);
}

void gpux__sgemm_run_ep(int64_t m, const float *a, int64_t lda, const gpux__sgemm_b *b, float *c, int64_t ldc,
                        const float *bias, int load_c, const gpux__gemm_epilogue *ep) {
  if (m < 1) return;
  if (ep && ep->act == GPUX_GEMM_ACT_NONE && !ep->res) ep = NULL;
  /* A packed in strips takes as much scratch as A: a tall A goes in parts of at most about 16 MB
   * of it (1365 rows at K = 3072), each its own product over the whole of B */
  int64_t part = GPUX__MAX(16 * MR, (int64_t)(4 << 20) / b->k / MR * MR);
  if (b->nr == 64 && m > part) {
    for (int64_t r = 0; r < m; r += part) {
      gpux__gemm_epilogue e = ep ? *ep : (gpux__gemm_epilogue){0};
      if (e.res) e.res += r * e.ldr;
      gpux__sgemm_run_ep(GPUX__MIN(part, m - r), a + r * lda, lda, b, c + r * ldc, ldc, bias, load_c, ep ? &e : NULL);
    }
    return;
  }
  sgemm_job j = {.m = m, .a = a, .lda = lda, .b = b, .c = c, .ldc = ldc, .bias = bias, .load_c = load_c, .ep = ep,
                 .kernel = b->nr == 64 ? kernel_avx512 : kernel_avx2, .kc = 8192 / b->nr};
  j.strips = (m + MR - 1) / MR;
  j.panels = (b->n + b->nr - 1) / b->nr;
  /* about three tasks a thread, each at least ~256K multiply-adds: along the panels first. A
   * block of fewer than MR rows costs what a full one does (the one-row kernel, streaming its
   * panel from L2 for two FMAs a vector, no less), so rows count in whole blocks: a classifier's
   * one row of [3264, 128] weights (1.7 MB) splits over the threads instead of streaming on one. */
  int64_t threads = gpux__thread_count();
  double work = (double)(j.strips * MR) * (double)b->n * (double)b->k;
  int64_t want = threads > 1 ? GPUX__MAX(1, GPUX__MIN(3 * threads, (int64_t)(work / 262144.0))) : 1;
  j.tn = GPUX__MIN(j.panels, want);
  int64_t tm = GPUX__MIN(j.strips, (want + j.tn - 1) / j.tn);
  j.pper = (j.panels + j.tn - 1) / j.tn;
  j.tn = (j.panels + j.pper - 1) / j.pper;
  j.sper = (j.strips + tm - 1) / tm;
  tm = (j.strips + j.sper - 1) / j.sper;
  /* A packed into strips when its rows are read by eight panels or more (fewer do not repay the
   * packing: a short-time transform's [22, 512] x [512, 257] was 10% slower packed) */
  if (b->nr == 64 && m >= 2 * MR && j.panels >= 8) {
    float *pa = gpux__scratch(GPUX__SCRATCH_SGEMM_A, (size_t)(j.strips * MR * b->k) * sizeof(float));
    if (pa) {
      pack_a_job pj = {.dst = pa, .a = a, .lda = lda, .m = m, .k = b->k, .kc = j.kc};
      if (threads > 1) gpux__parallel_for(j.strips, GPUX__MAX(1, 16384 / (MR * b->k)), pack_a_tasks, &pj);
      else pack_a(pa, a, lda, m, b->k, j.kc, 0, j.strips);
      j.pa = pa;
      /* a task's A packed that would not stay in L2 from panel to panel (over 1 MB: 197 rows at
       * K = 3072) is read block by block by a group of panels, whose column of C, rows x panels x
       * NR, is kept within about 768 KB of L2; a smaller A stays in L2 panel after panel */
      int64_t bytes = j.sper * MR * b->k * (int64_t)sizeof(float);
      j.pgroup = bytes <= (1 << 20) ? 1 : GPUX__MAX(1, (768 << 10) / (int64_t)(j.sper * MR * b->nr * sizeof(float)));
    }
  }
  if (tm * j.tn == 1) sgemm_tasks(&j, 0, 1);
  else gpux__parallel_for(tm * j.tn, 1, sgemm_tasks, &j);
}

void gpux__sgemm_run_part(int64_t m, const float *a, int64_t lda, const gpux__sgemm_b *b, int64_t k0, int64_t k1,
                          int64_t n0, int64_t n1, float *c, int64_t ldc) {
  int64_t nr = b->nr, kcb = 8192 / nr;
  kernel_fn kernel = nr == 64 ? kernel_avx512 : kernel_avx2;
  k1 = GPUX__MIN(k1, b->k);
  n1 = GPUX__MIN(n1, b->n);
  for (int64_t p = n0 / nr; p * nr < n1; p++) {
    int64_t nc = GPUX__MIN(nr, b->n - p * nr);
    for (int64_t kb = k0; kb < k1; kb += kcb) {
      int64_t kc = GPUX__MIN(kcb, k1 - kb);
      const float *bp = b->data + (p * b->k + kb) * nr;
      for (int64_t row = 0; row < m; row += MR) {
        int mr = (int)GPUX__MIN(MR, m - row);
        const float *ap[MR];
        for (int i = 0; i < MR; i++) ap[i] = a + (row + GPUX__MIN(i, mr - 1)) * lda + kb;
        kernel(kc, ap, bp, c + row * ldc + p * nr, ldc, mr, nc, kb > k0, NULL, NULL);
      }
    }
  }
}

void gpux__sgemm_block(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr, int64_t nc,
                       int add) {
  kernel_avx512(kc, a, b, c, ldc, mr, nc, add, NULL, NULL);
}
void gpux__sgemm_block_pf(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr,
                          int64_t nc, int add, const float *pf) {
  kernel_avx512(kc, a, b, c, ldc, mr, nc, add, NULL, pf);
}
void gpux__sgemm_block6(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int add,
                        const float *bias, const void *pf, int64_t npf) {
  kernel_g6(kc, a, b, c, ldc, add, bias, pf, npf);
}

#else

void gpux__sgemm_block(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr, int64_t nc,
                       int add) {
  (void)kc, (void)a, (void)b, (void)c, (void)ldc, (void)mr, (void)nc, (void)add;
}

void gpux__sgemm_block_pf(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr,
                          int64_t nc, int add, const float *pf) {
  (void)kc, (void)a, (void)b, (void)c, (void)ldc, (void)mr, (void)nc, (void)add, (void)pf;
}
void gpux__sgemm_block6(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int add,
                        const float *bias, const void *pf, int64_t npf) {
  (void)kc, (void)a, (void)b, (void)c, (void)ldc, (void)add, (void)bias, (void)pf, (void)npf;
}

void gpux__sgemm_run_part(int64_t m, const float *a, int64_t lda, const gpux__sgemm_b *b, int64_t k0, int64_t k1,
                          int64_t n0, int64_t n1, float *c, int64_t ldc) {
  (void)m, (void)a, (void)lda, (void)b, (void)k0, (void)k1, (void)n0, (void)n1, (void)c, (void)ldc;
}

void gpux__sgemm_run_ep(int64_t m, const float *a, int64_t lda, const gpux__sgemm_b *b, float *c, int64_t ldc,
                        const float *bias, int load_c, const gpux__gemm_epilogue *ep) {
  (void)m, (void)a, (void)lda, (void)b, (void)c, (void)ldc, (void)bias, (void)load_c, (void)ep;
}

#endif /* PACKED */

void gpux__sgemm_run(int64_t m, const float *a, int64_t lda, const gpux__sgemm_b *b, float *c, int64_t ldc,
                     const float *bias, int load_c) {
  gpux__sgemm_run_ep(m, a, lda, b, c, ldc, bias, load_c, NULL);
}

/* ---- products whose B is packed on every call ---- */

typedef struct {
  const gpux__gemm_batch *g;
  gpux__sgemm_b b;          /* the packed B (its data: the calling thread's scratch) */
  int64_t ldb;
} pack_job;

static void pack_tasks(void *ctx, int64_t begin, int64_t end) {
  const pack_job *j = ctx;
  pack_panels(j->b.data, j->b.nr, j->g->b, j->ldb, j->g->trans_b, j->b.k, j->b.n, begin, end);
}

/* Item i of the batch: its A, B and C. */
static void batch_item(const gpux__gemm_batch *g, int64_t i, const float **a, const float **b, float **c) {
  int64_t ao, bo;
  gpux__gemm_batch_offsets(g, i, &ao, &bo);
  *a = (const float *)g->a + ao, *b = (const float *)g->b + bo, *c = (float *)g->c + i * g->m * g->n;
}

typedef struct {
  const gpux__gemm_batch *g;
  int64_t nr;
  atomic_int failed;
} items_job;

/* Whole items, each packing its B into the thread's task scratch (the product runs inline). */
static void item_tasks(void *ctx, int64_t begin, int64_t end) {
  items_job *j = ctx;
  const gpux__gemm_batch *g = j->g;
  int64_t panels = (g->n + j->nr - 1) / j->nr;
  float *pb = gpux__scratch(GPUX__SCRATCH_SGEMM_ITEM_B, (size_t)(panels * g->k * j->nr) * sizeof(float));
  if (!pb) {
    atomic_store(&j->failed, 1);
    return;
  }
  for (int64_t i = begin; i < end; i++) {
    const float *a, *b;
    float *c;
    batch_item(g, i, &a, &b, &c);
    pack_panels(pb, j->nr, b, g->ldb, g->trans_b, g->k, g->n, 0, panels);
    gpux__sgemm_b packed = {.k = g->k, .n = g->n, .nr = j->nr, .data = pb};
    gpux__sgemm_run(g->m, a, g->lda, &packed, c, g->n, NULL, g->beta != 0.0);
  }
}

int gpux__sgemm_batch(const gpux__gemm_batch *g) {
  int64_t nr = gpux__sgemm_nr();
  /* under 16 rows of A, packing B costs about what the product saves */
  if (!nr || g->dbl || g->trans_a || g->alpha != 1.0 || (g->beta != 0.0 && g->beta != 1.0) || g->m < 16 || g->n < 1 ||
      g->k < 1)
    return 1;
  int64_t panels = (g->n + nr - 1) / nr, threads = gpux__thread_count();
  size_t bytes = (size_t)(panels * g->k * nr) * sizeof(float);
  if (g->batch >= threads && g->batch > 1) { /* one item per task */
    items_job j = {.g = g, .nr = nr};
    atomic_init(&j.failed, 0);
    double work = (double)g->m * (double)g->n * (double)g->k;
    gpux__parallel_for(g->batch, GPUX__MAX(1, (int64_t)(262144.0 / (work + 1.0))), item_tasks, &j);
    return atomic_load(&j.failed) ? gpux__error(GPUX_E_NOMEM, "out of memory for a packed matrix") : 0;
  }
  float *pb = gpux__scratch(GPUX__SCRATCH_SGEMM_B, bytes);
  if (!pb) return GPUX_E_NOMEM;
  for (int64_t i = 0; i < g->batch; i++) { /* items in turn, each product on every thread */
    const float *a, *b;
    float *c;
    batch_item(g, i, &a, &b, &c);
    gpux__gemm_batch one = *g;
    one.b = b;
    pack_job pj = {.g = &one, .b = {.k = g->k, .n = g->n, .nr = nr, .data = pb}, .ldb = g->ldb};
    gpux__parallel_for(panels, GPUX__MAX(1, 16384 / (g->k * nr)), pack_tasks, &pj);
    gpux__sgemm_run(g->m, a, g->lda, &pj.b, c, g->n, NULL, g->beta != 0.0);
  }
  return 0;
}

/* ---- the node's packed weights ---- */

typedef struct {
  gpux__node_state base;
  const gpux_tensor *src;   /* the weights packed (an initializer); once packed, its data is
                               never read again and may go (the session lets it) */
  int input, trans_b;
  gpux__sgemm_b packed;
} packed_state;

static void packed_state_free(gpux__node_state *s) {
  packed_state *p = (packed_state *)s;
  gpux__sgemm_b_free(&p->packed);
  free(p);
}

const gpux__sgemm_b *gpux__sgemm_weights(gpux__kctx *k, int input, int trans_b) {
  const gpux_tensor *b = IN(input);
  if (!b || b->ndim != 2) return NULL;
  return gpux__sgemm_weights_as(k, input, trans_b, b->dims[0], b->dims[1]);
}

const gpux__sgemm_b *gpux__sgemm_weights_as(gpux__kctx *k, int input, int trans_b, int64_t rows, int64_t cols) {
  const gpux_tensor *b = IN(input);
  packed_state *st = (packed_state *)gpux__state_get(k);
  if (!k->state || input >= 64 || !(k->const_in >> input & 1) || !b || b->dtype != GPUX_DT_FLOAT || rows < 1 ||
      cols < 1 || gpux_tensor_count(b) != rows * cols || (!st && !b->data) || !gpux__sgemm_nr())
    return NULL;
  int64_t kk = trans_b ? cols : rows, n = trans_b ? rows : cols;
  if (!st) {
    if (!(st = gpux__calloc(1, sizeof *st))) return NULL;
    st->base.destroy = packed_state_free;
    st->src = b, st->input = input, st->trans_b = trans_b;
    if (gpux__sgemm_pack(&st->packed, b->data, cols, trans_b, kk, n, 0)) {
      free(st);
      return NULL; /* out of memory: the unpacked paths, which need none */
    }
    st->base.replaces = (uint64_t)1 << input;
    st->base.bytes = (size_t)((n + st->packed.nr - 1) / st->packed.nr * st->packed.nr * kk) * sizeof(float);
    st = (packed_state *)gpux__state_keep(k, &st->base);
  }
  /* the state is this node's; what it packed must still be what the node reads */
  if (!st || st->base.destroy != packed_state_free || st->src != b || st->input != input ||
      st->trans_b != trans_b || st->packed.k != kk || st->packed.n != n)
    return NULL;
  return &st->packed;
}
