/* igemm.h — the packed 8-bit integer GEMM behind ConvInteger, MatMulInteger, QLinearConv and
 * QLinearMatMul (igemm.c): int32 dot products of unsigned bytes (the panel: activations, im2col
 * columns) with signed bytes (the rows: weights), 4 bytes at a time, as AVX-512 VNNI's vpdpbusd
 * computes them; int32 sums wrap as the ONNX reference's int32 arithmetic does.
 *
 * Operands of either 8-bit type are shifted into that form: an int8 panel value v is stored as
 * v + 128 (unsigned), a uint8 row value as v - 128 (signed). The caller undoes the shifts and the
 * zero points with the rows' and columns' sums (see gpux__igemm_fix). */
#ifndef GPUX_OPS_IGEMM_H
#define GPUX_OPS_IGEMM_H

#include "ops/op.h"

/* Columns of one panel: the product is computed GPUX__IGEMM_NT columns at a time. */
#define GPUX__IGEMM_NT 64

/* A panel of NT columns over k = 4 * k4 rows, laid out [k4][NT][4] (byte t of column j of row
 * group q at (q * NT + j) * 4 + t): what one vpdpbusd lane reads. */
static inline int64_t gpux__igemm_panel_at(int64_t k, int64_t j) {
  return ((k >> 2) * GPUX__IGEMM_NT + j) * 4 + (k & 3);
}

/* Rows packed as int32 words of 4 signed bytes: rows[m][k4], zero beyond k. rowsum[r] is the sum
 * of row r's signed bytes. Elements of row r, column p are at w[r * ldr + p * ldc], of dtype
 * int8 (as is) or uint8 (minus 128). */
void gpux__igemm_pack_rows(const void *w, int uint8, int64_t m, int64_t k, int64_t ldr, int64_t ldc,
                           int32_t *rows, int32_t *rowsum);

/* c[m][NT] = rows[m][k4] . panel[k4][NT][4] and, when colsum is not NULL, colsum[NT] = the sum of
 * each panel column's bytes. */
void gpux__igemm_panel(const int32_t *rows, int64_t m, int64_t k4, const uint8_t *panel, int32_t *c, int32_t *colsum);

/* Chooses the kernel gpux__igemm_panel runs: "c" the plain C one, anything else (NULL) the best
 * the CPU has; returns its name ("avx512-vnni" or "c"). Without a call, the first product
 * chooses by $GPUX_IGEMM. Tests use it to compare the kernels. */
const char *gpux__igemm_select(const char *name);

#endif
