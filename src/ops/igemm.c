/* igemm.c — the packed 8-bit integer GEMM (see igemm.h): packing of the signed rows, and the
 * panel kernel, with AVX-512 VNNI (vpdpbusd: 64 byte products a instruction, summed into int32
 * without saturation) where the CPU has it, checked at run time, else plain C that the compiler
 * vectorizes for the machine (GCC function clones). GPUX_IGEMM=c in the environment forces the
 * plain C kernel, for comparisons. */
#include "ops/simd.h"
#include "ops/igemm.h"
#include <stdatomic.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h>
#define VNNI 1
#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#else
#define VNNI 0
#endif

void gpux__igemm_pack_rows(const void *w, int uint8, int64_t m, int64_t k, int64_t ldr, int64_t ldc,
                           int32_t *rows, int32_t *rowsum) {
  int64_t k4 = (k + 3) / 4;
  for (int64_t r = 0; r < m; r++) {
    uint8_t *dst = (uint8_t *)(rows + r * k4); /* [k4 * 4] signed bytes */
    int32_t sum = 0;
    for (int64_t p = 0; p < k4 * 4; p++) {
      int v = 0;
      if (p < k) {
        int64_t at = r * ldr + p * ldc;
        v = uint8 ? (int)((const uint8_t *)w)[at] - 128 : (int)((const int8_t *)w)[at];
      }
      dst[p] = (uint8_t)(int8_t)v;
      sum += v;
    }
    rowsum[r] = sum;
  }
}

/* ---- plain C: one row at a time over the panel's columns ---- */

GPUX_SIMD_CLONES
static void panel_c(const int32_t *rows, int64_t m, int64_t k4, const uint8_t *restrict panel, int32_t *restrict c,
                    int32_t *restrict colsum) {
  enum { NT = GPUX__IGEMM_NT };
  for (int64_t r = 0; r < m; r++) {
    int32_t acc[NT] = {0};
    const int8_t *w = (const int8_t *)(rows + r * k4);
    for (int64_t q = 0; q < k4; q++) {
      const uint8_t *p = panel + q * NT * 4;
      int32_t w0 = w[q * 4], w1 = w[q * 4 + 1], w2 = w[q * 4 + 2], w3 = w[q * 4 + 3];
      for (int j = 0; j < NT; j++) acc[j] += p[j * 4] * w0 + p[j * 4 + 1] * w1 + p[j * 4 + 2] * w2 + p[j * 4 + 3] * w3;
    }
    memcpy(c + r * NT, acc, sizeof acc);
  }
  if (colsum) {
    int32_t acc[NT] = {0};
    for (int64_t q = 0; q < k4; q++) {
      const uint8_t *p = panel + q * NT * 4;
      for (int j = 0; j < NT; j++) acc[j] += p[j * 4] + p[j * 4 + 1] + p[j * 4 + 2] + p[j * 4 + 3];
    }
    memcpy(colsum, acc, sizeof acc);
  }
}

/* ---- AVX-512 VNNI: the hot loop, 4 rows x 64 columns (16 accumulators) per pass over k ---- */
#if VNNI
TARGET_VNNI
static void panel_vnni(const int32_t *rows, int64_t m, int64_t k4, const uint8_t *panel, int32_t *c, int32_t *colsum) {
  _Static_assert(GPUX__IGEMM_NT == 64, "the VNNI kernel reads 4 vectors of 16 columns");
  int64_t r = 0;
  for (; r + 4 <= m; r += 4) {
    __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00,
            a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    const int32_t *w0 = rows + r * k4, *w1 = w0 + k4, *w2 = w1 + k4, *w3 = w2 + k4;
    for (int64_t q = 0; q < k4; q++) {
      const uint8_t *p = panel + q * 256;
      __m512i b0 = _mm512_loadu_si512(p), b1 = _mm512_loadu_si512(p + 64), b2 = _mm512_loadu_si512(p + 128),
              b3 = _mm512_loadu_si512(p + 192);
      __m512i w = _mm512_set1_epi32(w0[q]);
      a00 = _mm512_dpbusd_epi32(a00, b0, w), a01 = _mm512_dpbusd_epi32(a01, b1, w);
      a02 = _mm512_dpbusd_epi32(a02, b2, w), a03 = _mm512_dpbusd_epi32(a03, b3, w);
      w = _mm512_set1_epi32(w1[q]);
      a10 = _mm512_dpbusd_epi32(a10, b0, w), a11 = _mm512_dpbusd_epi32(a11, b1, w);
      a12 = _mm512_dpbusd_epi32(a12, b2, w), a13 = _mm512_dpbusd_epi32(a13, b3, w);
      w = _mm512_set1_epi32(w2[q]);
      a20 = _mm512_dpbusd_epi32(a20, b0, w), a21 = _mm512_dpbusd_epi32(a21, b1, w);
      a22 = _mm512_dpbusd_epi32(a22, b2, w), a23 = _mm512_dpbusd_epi32(a23, b3, w);
      w = _mm512_set1_epi32(w3[q]);
      a30 = _mm512_dpbusd_epi32(a30, b0, w), a31 = _mm512_dpbusd_epi32(a31, b1, w);
      a32 = _mm512_dpbusd_epi32(a32, b2, w), a33 = _mm512_dpbusd_epi32(a33, b3, w);
    }
    int32_t *o = c + r * 64;
    _mm512_storeu_si512(o, a00), _mm512_storeu_si512(o + 16, a01), _mm512_storeu_si512(o + 32, a02), _mm512_storeu_si512(o + 48, a03);
    o += 64;
    _mm512_storeu_si512(o, a10), _mm512_storeu_si512(o + 16, a11), _mm512_storeu_si512(o + 32, a12), _mm512_storeu_si512(o + 48, a13);
    o += 64;
    _mm512_storeu_si512(o, a20), _mm512_storeu_si512(o + 16, a21), _mm512_storeu_si512(o + 32, a22), _mm512_storeu_si512(o + 48, a23);
    o += 64;
    _mm512_storeu_si512(o, a30), _mm512_storeu_si512(o + 16, a31), _mm512_storeu_si512(o + 32, a32), _mm512_storeu_si512(o + 48, a33);
  }
  /* the last rows one at a time; colsum as one more row of ones */
  const int32_t ones = 0x01010101;
  for (; r < m + (colsum != NULL); r++) {
    int sum = r == m;
    const int32_t *w0 = rows + r * k4;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t q = 0; q < k4; q++) {
      const uint8_t *p = panel + q * 256;
      __m512i w = _mm512_set1_epi32(sum ? ones : w0[q]);
      a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(p), w), a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(p + 64), w);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_loadu_si512(p + 128), w), a3 = _mm512_dpbusd_epi32(a3, _mm512_loadu_si512(p + 192), w);
    }
    int32_t *o = sum ? colsum : c + r * 64;
    _mm512_storeu_si512(o, a0), _mm512_storeu_si512(o + 16, a1), _mm512_storeu_si512(o + 32, a2), _mm512_storeu_si512(o + 48, a3);
  }
}
#endif


static int have_vnni(void) {
#if VNNI
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
#else
  return 0;
#endif
}

/* 0: not chosen yet, 1: plain C, 2: VNNI */
static atomic_int chosen;

const char *gpux__igemm_select(const char *name) {
  int v = have_vnni() && !(name && !strcmp(name, "c")) ? 2 : 1;
  atomic_store_explicit(&chosen, v, memory_order_relaxed);
  return v == 2 ? "avx512-vnni" : "c";
}

void gpux__igemm_panel(const int32_t *rows, int64_t m, int64_t k4, const uint8_t *panel, int32_t *c, int32_t *colsum) {
  int v = atomic_load_explicit(&chosen, memory_order_relaxed);
  if (!v) {
    gpux__igemm_select(getenv("GPUX_IGEMM"));
    v = atomic_load_explicit(&chosen, memory_order_relaxed);
  }
#if VNNI
  if (v == 2) {
    panel_vnni(rows, m, k4, panel, c, colsum);
    return;
  }
#endif
  panel_c(rows, m, k4, panel, c, colsum);
}
