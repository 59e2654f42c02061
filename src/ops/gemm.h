/* gemm.h — row-major GEMM on OpenBLAS with the threading in gpux's pool, shared by linalg.c
 * (which implements it) and conv.c. BLAS runs single-threaded inside pool tasks, so OpenBLAS's
 * own worker threads never spin on the cores the pool is using. */
#ifndef GPUX_OPS_GEMM_H
#define GPUX_OPS_GEMM_H

#include "ops/op.h"

/* C = alpha * op(A) * op(B) + beta * C, with op(A) m x k and op(B) k x n. */
typedef struct {
  int dbl;                  /* float64 (dgemm) instead of float32 (sgemm) */
  int trans_a, trans_b;
  int64_t m, n, k;
  double alpha, beta;
  const void *a, *b;
  void *c;
  int64_t lda, ldb, ldc;
} gpux__gemm;

/* One BLAS call on the calling thread. Dimensions must fit in int. */
void gpux__gemm_serial(const gpux__gemm *g);
/* The product split into tiles of C run in parallel on the pool. */
void gpux__gemm_parallel(const gpux__gemm *g);
/* gpux__parallel_for with OpenBLAS held to one thread meanwhile, for tasks that call BLAS. */
void gpux__parallel_for_blas(int64_t n, int64_t grain, gpux__range_fn fn, void *ctx);

#endif
