/* transpose16.h — a 16 x 16 float32 transpose in AVX-512 registers, for the kernels that move
 * data between rows and columns a block at a time: convolution data between planes (NCHW) and
 * channels interleaved in vectors (conv-depthwise.c, conv-gemm.c), a B read transposed into
 * panels (sgemm.c), Transpose's tiles (shape.c), and a tile of sums of positions x channels back
 * into NCHW planes (conv-gemm.c, conv-rows.c). Include only on x86-64 with GCC or Clang. */
#ifndef GPUX_OPS_TRANSPOSE16_H
#define GPUX_OPS_TRANSPOSE16_H

#include "ops/avx512.h"
#include <immintrin.h>

/* r[i][j] -> r[j][i] for 16 vectors of 16. */
__attribute__((target("avx512f"))) static inline void gpux__transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
  }
}

/* y[m * ldy + q] = ct[q * ldc + m] for q < np, m < nm: a tile's sums (a row of nm channels for
 * each of np positions) back into Y's planes, 16 x 16 at a time. */
__attribute__((target("avx512f"))) static inline void gpux__rows_to_planes(const float *ct, int64_t ldc, int64_t np,
                                                                          int64_t nm, float *y, int64_t ldy) {
  __m512 v[16];
  for (int64_t m0 = 0; m0 < nm; m0 += 16) {
    __mmask16 mm = gpux__lanes16(nm - m0);
    int64_t nmv = nm - m0 < 16 ? nm - m0 : 16;
    for (int64_t q0 = 0; q0 < np; q0 += 16) {
      __mmask16 qm = gpux__lanes16(np - q0);
      for (int q = 0; q < 16; q++)
        v[q] = q0 + q < np ? _mm512_maskz_loadu_ps(mm, ct + (q0 + q) * ldc + m0) : _mm512_setzero_ps();
      gpux__transpose16(v);
      for (int64_t m = 0; m < nmv; m++) _mm512_mask_storeu_ps(y + (m0 + m) * ldy + q0, qm, v[m]);
    }
  }
}

#endif
