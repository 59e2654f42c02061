/* gemm.h — row-major GEMM on OpenBLAS with the threading in gpux's pool (gemm.c), used by
 * linalg.c, conv.c and rnn.c. BLAS runs single-threaded inside pool tasks, so OpenBLAS's
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

/* C[i] = alpha * op(A[i]) * op(B[i]) + beta * C[i] for every batch index i of a broadcast batch
 * shape; each matrix is row-major and C is dense (batch, m, n). */
typedef struct {
  int dbl;                            /* float64 (dgemm) instead of float32 (sgemm) */
  const void *a, *b;
  void *c;
  int64_t m, n, k;
  int trans_a, trans_b;
  int64_t lda, ldb;
  double alpha, beta;
  int nb;                             /* batch rank */
  int64_t bdims[GPUX_MAX_DIMS];       /* batch shape */
  int64_t astr[GPUX_MAX_DIMS];        /* A's element stride per batch dim (0 = broadcast) */
  int64_t bstr[GPUX_MAX_DIMS];
  int64_t batch;                      /* product of bdims */
} gpux__gemm_batch;
/* Runs every product of the batch as one parallel loop over (batch item, tile of C); A's batch
 * folds into its rows when B is shared. */
void gpux__gemm_batched(const gpux__gemm_batch *g);

#endif
