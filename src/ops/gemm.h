/* gemm.h — row-major GEMM on OpenBLAS with the threading in gpux's pool (gemm.c), used by
 * linalg.c, conv.c and rnn.c, float32 GEMM on constant weights packed once (sgemm.c; products of
 * one row: gemv.c), and the bias and activation epilogue of gpux.FusedMatMul (gemm-epilogue.c).
 * BLAS runs single-threaded inside pool tasks, so OpenBLAS's own worker threads never spin on the
 * cores the pool is using. */
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
/* The element offsets into A and B of batch item i (its index in bdims, row-major). */
static inline void gpux__gemm_batch_offsets(const gpux__gemm_batch *g, int64_t i, int64_t *ao, int64_t *bo) {
  *ao = *bo = 0;
  for (int d = g->nb - 1; d >= 0; d--) {
    int64_t idx = i % g->bdims[d];
    i /= g->bdims[d];
    *ao += idx * g->astr[d];
    *bo += idx * g->bstr[d];
  }
}
/* Runs every product of the batch as one parallel loop over (batch item, tile of C); A's batch
 * folds into its rows when B is shared. */
void gpux__gemm_batched(const gpux__gemm_batch *g);

/* ---- the epilogue of gpux.FusedMatMul (gemm-epilogue.c) ---- */

/* The activation after the bias: none, Relu, Gelu (erf), Gelu with approximate = "tanh", or Tanh
 * (BERT's pooler). */
enum { GPUX_GEMM_ACT_NONE, GPUX_GEMM_ACT_RELU, GPUX_GEMM_ACT_GELU, GPUX_GEMM_ACT_GELU_TANH, GPUX_GEMM_ACT_TANH };

/* What follows the product and its bias: the activation, then the residual R added. */
typedef struct {
  int act;                  /* GPUX_GEMM_ACT_* */
  const float *res;         /* R [rows, ldr] aligned with C, or NULL */
  int64_t ldr;
} gpux__gemm_epilogue;

/* The GPUX_GEMM_ACT_* of a FusedMatMul node's activation and approximate attributes, or -1 when
 * they name none of them. */
int gpux__gemm_act_of(const char *activation, const char *approximate);
/* c[r * ldc + j] = act(c[r * ldc + j] + bias[j]) + R[row0 + r][col0 + j] for r < rows, j < n
 * (bias and e->res may be NULL): on a block of C while it is in cache. */
void gpux__gemm_finish(float *c, int64_t ldc, int64_t rows, int64_t n, const float *bias, const gpux__gemm_epilogue *e,
                       int64_t row0, int64_t col0);

/* ---- float32 GEMM on B packed once (sgemm.c) ---- */

/* B [k, n] laid out for the micro-kernels: panels of nr columns, [panel][k][nr], zero past n. */
typedef struct {
  int64_t k, n, nr;
  float *data;                        /* 64-byte aligned */
} gpux__sgemm_b;

/* Panel width of this machine's kernel: 64 (AVX-512), 16 (AVX2 and FMA), or 0: no packed kernel
 * here (GPUX_SGEMM=0 in the environment turns it off, =avx2 picks AVX2 on AVX-512 machines). */
int64_t gpux__sgemm_nr(void);
/* Packs B (row-major [k, n], or [n, k] read transposed with trans_b; rows ldb apart) for the
 * kernel of panel width nr (0: this machine's; 16 runs the AVX2 kernel on AVX-512 machines too):
 * 0, 1 when this machine has no such kernel, or GPUX_E_NOMEM. */
int gpux__sgemm_pack(gpux__sgemm_b *p, const float *b, int64_t ldb, int trans_b, int64_t k, int64_t n, int64_t nr);
void gpux__sgemm_b_free(gpux__sgemm_b *p);
/* Floats a packed [k, n] B takes with this machine's panel width (0 when it has no kernel). */
int64_t gpux__sgemm_packed_floats(int64_t k, int64_t n);
/* Packs B like gpux__sgemm_pack with this machine's panel width, into dst (64-byte aligned,
 * gpux__sgemm_packed_floats(k, n) of them) instead of new memory, on the calling thread. */
void gpux__sgemm_pack_into(gpux__sgemm_b *p, float *dst, const float *b, int64_t ldb, int trans_b, int64_t k, int64_t n);
/* Part of a product on the calling thread alone (inside a pool task): C[m, n0:n1] = A[m, k0:k1]
 * x B[k0:k1, n0:n1], A's rows lda apart from its column 0, C's ldc apart from its column 0. n0 is
 * a multiple of b->nr; columns past n1 up to the end of its panel (and before b->n) are written
 * too. Nothing is written when k1 <= k0. */
void gpux__sgemm_run_part(int64_t m, const float *a, int64_t lda, const gpux__sgemm_b *b, int64_t k0, int64_t k1,
                          int64_t n0, int64_t n1, float *c, int64_t ldc);
/* Rows per register block of the kernels. */
#define GPUX__SGEMM_MR 6
/* One register block of the AVX-512 kernel (panels of nr 64; only where gpux__sgemm_nr() is 64),
 * on the calling thread: C[i, 0:nc] = (C[i, 0:nc] with add) + sum over r < kc of a[i][r] *
 * b[r * 64 + 0:nc] for rows i < mr <= GPUX__SGEMM_MR, C's rows ldc apart. a has GPUX__SGEMM_MR
 * rows, those from mr on repeating a valid one (computed and dropped): the caller's own A, any
 * row anywhere, for products whose rows are gathered (a convolution's positions). */
void gpux__sgemm_block(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr, int64_t nc,
                       int add);
/* The same, asking lines pf[0, 4 kc) (64 bytes each: the next kc rows of a panel stream) into L2,
 * four a k step while the FMAs run, for rows 2-6 and nc > 16 (else none are asked for). */
void gpux__sgemm_block_pf(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int mr,
                          int64_t nc, int add, const float *pf);
/* The block of six rows and 64 columns, in assembly: C[i, 0:64] = sum over r < kc of a[i][r] *
 * b[r * 64 + 0:64] + (C[i, 0:64] with add, else bias[0:64] when not NULL), for i < 6, asking
 * lines pf[0, npf) (64 bytes each) into L2 along the way. */
void gpux__sgemm_block6(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int add,
                        const float *bias, const void *pf, int64_t npf);
/* C[m, n] = A[m, k] x B (+ bias[n] when not NULL, or + C itself with load_c), rows of A lda
 * apart and of C ldc apart, in parallel on the pool. */
void gpux__sgemm_run(int64_t m, const float *a, int64_t lda, const gpux__sgemm_b *b, float *c, int64_t ldc,
                     const float *bias, int load_c);
/* The same with gpux.FusedMatMul's epilogue (activation, residual) applied to each register
 * block of C as it is stored, not in a second pass over C. */
void gpux__sgemm_run_ep(int64_t m, const float *a, int64_t lda, const gpux__sgemm_b *b, float *c, int64_t ldc,
                        const float *bias, int load_c, const gpux__gemm_epilogue *ep);
/* One row: c[0, n] = a[0, k] x B (+ bias[n] when not NULL, or + c itself with load_c; then the
 * epilogue ep when not NULL), streaming the packed B once, in parallel on the pool (gemv.c). */
void gpux__sgemv_run(const float *a, const gpux__sgemm_b *b, float *c, const float *bias, int load_c,
                     const gpux__gemm_epilogue *ep);
/* A float32 batch (gpux__gemm_batch, alpha 1, beta 0 or 1, A not transposed, at least 16 rows)
 * with each item's B packed on the call into scratch: 0 when done, 1 when not taken (the caller
 * runs it otherwise), or GPUX_E_NOMEM. */
int gpux__sgemm_batch(const gpux__gemm_batch *g);
/* Input `input` (2-D float32 [k, n], or [n, k] with trans_b) packed once and kept in the node's
 * state: NULL when the input is not an initializer, the session keeps no state for the node,
 * this machine has no packed kernel, or memory is short (the caller takes its other paths). */
const gpux__sgemm_b *gpux__sgemm_weights(gpux__kctx *k, int input, int trans_b);
/* The same for an initializer of any rank read as a row-major [rows, cols] matrix (a Conv's
 * weights [M, C, kernel...] as [M, C * kernel]): NULL also when its count is not rows * cols. */
const gpux__sgemm_b *gpux__sgemm_weights_as(gpux__kctx *k, int input, int trans_b, int64_t rows, int64_t cols);

/* (batch, KV head)s whose keys and values Attention (attention.c) packed straight from 3-D
 * [B, T, H * D] inputs, with strides, since the process started: tests see the path ran. */
extern _Atomic long long gpux__attention_kv_strided;

#endif
