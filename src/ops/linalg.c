/* linalg.c — operator family 'linalg': MatMul (numpy batch broadcasting), Gemm, Einsum, Det, and
 * gpux.FusedMatMul (MatMul by constant weights + bias + activation, gemm-epilogue.c).
 * float32 and float64 products run as batched GEMMs (gemm.c: OpenBLAS, one-row and one-column
 * ones as matrix-vector products, float32 MatMul by one B on the direct convolution kernels
 * where the machine has them); float16/bfloat16 are widened to float32 first. Integer products
 * are exact, with the wrap-around of the output type. */
#include "ops/gemm.h"
#include <limits.h>
#include <math.h>

/* ---- dtype helpers ---- */

static int is_int_dtype(int dt) {
  return dt != GPUX_DT_BOOL && (gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt));
}

/* A new int64 copy of t's elements (any integer dtype). */
static int64_t *widen_i64(const gpux_tensor *t) {
  int64_t n = gpux_tensor_count(t);
  int64_t *p = gpux__malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  if (!p) return NULL;
  for (int64_t i = 0; i < n; i++) p[i] = gpux__load_i64(t->dtype, t->data, i);
  return p;
}

static int blas_dims_ok(gpux__kctx *k, int64_t m, int64_t n, int64_t kk) {
  if (m > INT_MAX || n > INT_MAX || kk > INT_MAX)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "matrix dimension above %d", INT_MAX);
  return 0;
}

/* ---- exact integer products ---- */

/* C[i] = A[i] * B[i] over int64 copies, with wrap-around (unsigned arithmetic). */
typedef struct {
  const int64_t *a, *b;
  int64_t *c;
  int64_t m, n, k;
  int nb;
  int64_t bdims[GPUX_MAX_DIMS], astr[GPUX_MAX_DIMS], bstr[GPUX_MAX_DIMS];
} imm;

static void imm_rows(void *ctx, int64_t begin, int64_t end) {
  const imm *g = ctx;
  for (int64_t r = begin; r < end; r++) {
    int64_t i = r / g->m, row = r % g->m, ao = 0, bo = 0, rem = i;
    for (int d = g->nb - 1; d >= 0; d--) {
      int64_t idx = rem % g->bdims[d];
      rem /= g->bdims[d];
      ao += idx * g->astr[d];
      bo += idx * g->bstr[d];
    }
    const int64_t *arow = g->a + ao + row * g->k;   /* [k] */
    const int64_t *bm = g->b + bo;                  /* [k, n] */
    uint64_t *crow = (uint64_t *)(g->c + r * g->n); /* [n] */
    for (int64_t j = 0; j < g->n; j++) crow[j] = 0;
    for (int64_t p = 0; p < g->k; p++) {
      uint64_t av = (uint64_t)arow[p];
      const int64_t *brow = bm + p * g->n;
      for (int64_t j = 0; j < g->n; j++) crow[j] += av * (uint64_t)brow[j];
    }
  }
}

/* ---- MatMul ---- */

static int matmul_dtype_ok(int dt) {
  return dt == GPUX_DT_FLOAT || dt == GPUX_DT_DOUBLE || dt == GPUX_DT_FLOAT16 ||
         dt == GPUX_DT_BFLOAT16 || is_int_dtype(dt);
}

static int op_matmul(gpux__kctx *k) {
  const gpux_tensor *a = IN(0), *b = IN(1);
  if (!a || !b) return gpux__kerr(k, GPUX_E_INVALID, "MatMul needs inputs A and B");
  if (a->dtype != b->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "A is %s but B is %s", gpux_dtype_name(a->dtype),
                      gpux_dtype_name(b->dtype));
  if (!matmul_dtype_ok(a->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "MatMul on %s", gpux_dtype_name(a->dtype));
  if (a->ndim < 1 || b->ndim < 1)
    return gpux__kerr(k, GPUX_E_SHAPE, "MatMul operands must have rank >= 1 (got %d and %d)",
                      a->ndim, b->ndim);
  /* 1-D A is a row (1, K); 1-D B is a column (K, 1); both extra dims are dropped again */
  int64_t m = a->ndim >= 2 ? a->dims[a->ndim - 2] : 1, ka = a->dims[a->ndim - 1];
  int64_t kb = b->ndim >= 2 ? b->dims[b->ndim - 2] : b->dims[0];
  int64_t n = b->ndim >= 2 ? b->dims[b->ndim - 1] : 1;
  if (ka != kb)
    return gpux__kerr(k, GPUX_E_SHAPE, "MatMul inner dimensions differ: %lld vs %lld",
                      (long long)ka, (long long)kb);
  int na = a->ndim >= 2 ? a->ndim - 2 : 0, nbb = b->ndim >= 2 ? b->ndim - 2 : 0, nb;
  int64_t bdims[GPUX_MAX_DIMS], odims[GPUX_MAX_DIMS];
  if (gpux__broadcast_shape(na, a->dims, nbb, b->dims, &nb, bdims))
    return gpux__kerr(k, GPUX_E_SHAPE, "MatMul batch dimensions: %s", gpux_last_error());
  int nout = nb;
  memcpy(odims, bdims, sizeof(int64_t) * (size_t)nb);
  if (a->ndim >= 2) {
    if (nout >= GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "output rank too large");
    odims[nout++] = m;
  }
  if (b->ndim >= 2) {
    if (nout >= GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "output rank too large");
    odims[nout++] = n;
  }
  /* every product below writes all of Y; an empty sum (K = 0) leaves it zero */
  gpux_tensor *y = (ka > 0 ? gpux__out_raw : gpux__out)(k, 0, a->dtype, nout, odims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t batch = gpux__shape_count(nb, bdims);
  if (batch == 0 || m == 0 || n == 0 || ka == 0) return 0; /* empty, or zero sums */

  /* per batch dim, each operand's matrix stride (0 where it broadcasts) */
  int64_t astr[GPUX_MAX_DIMS], bstr[GPUX_MAX_DIMS];
  int64_t sa = m * ka, sb = ka * n;
  for (int d = nb - 1; d >= 0; d--) {
    int ia = d - (nb - na), ib = d - (nb - nbb);
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    astr[d] = da == 1 ? 0 : sa;
    bstr[d] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
  }

  if (is_int_dtype(a->dtype)) {
    imm g = {.m = m, .n = n, .k = ka, .nb = nb};
    memcpy(g.bdims, bdims, sizeof g.bdims);
    memcpy(g.astr, astr, sizeof g.astr);
    memcpy(g.bstr, bstr, sizeof g.bstr);
    int64_t *ai = widen_i64(a), *bi = widen_i64(b), *ci = gpux__malloc((size_t)(batch * m * n) * 8);
    if (!ai || !bi || !ci) {
      free(ai); free(bi); free(ci);
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
    g.a = ai, g.b = bi, g.c = ci;
    gpux__parallel_for(batch * m, GPUX__MAX(1, 16384 / (n * ka + 1)), imm_rows, &g);
    for (int64_t i = 0; i < batch * m * n; i++) gpux__store_i64(y->dtype, y->data, i, ci[i]);
    free(ai); free(bi); free(ci);
    return 0;
  }

  /* constant 2-D float32 weights: packed on the node's first run (A's batch folds into its rows) */
  const gpux__sgemm_b *pb = a->dtype == GPUX_DT_FLOAT && b->ndim == 2 ? gpux__sgemm_weights(k, 1, 0) : NULL;
  if (pb) {
    if (batch * m == 1) gpux__sgemv_run(a->data, pb, y->data, NULL, 0, NULL);
    else gpux__sgemm_run(batch * m, a->data, ka, pb, y->data, n, NULL, 0);
    return 0;
  }
  if (blas_dims_ok(k, m * batch, n, ka)) return k->status;
  gpux__gemm_batch g = {.dbl = a->dtype == GPUX_DT_DOUBLE, .m = m, .n = n, .k = ka, .lda = ka, .ldb = n,
             .alpha = 1, .beta = 0, .nb = nb, .batch = batch};
  memcpy(g.bdims, bdims, sizeof g.bdims);
  memcpy(g.astr, astr, sizeof g.astr);
  memcpy(g.bstr, bstr, sizeof g.bstr);
  if (a->dtype == GPUX_DT_FLOAT || a->dtype == GPUX_DT_DOUBLE) {
    g.a = a->data, g.b = b->data, g.c = y->data;
    gpux__gemm_batched(&g);
    return 0;
  }
  /* float16 / bfloat16: compute in float32 */
  float *af = gpux__widen_f32(a), *bf = gpux__widen_f32(b);
  float *cf = gpux__malloc((size_t)(batch * m * n) * sizeof *cf);
  if (!af || !bf || !cf) {
    free(af); free(bf); free(cf);
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
  g.a = af, g.b = bf, g.c = cf;
  gpux__gemm_batched(&g);
  gpux__narrow_f32(y->dtype, y->data, cf, batch * m * n);
  free(af); free(bf); free(cf);
  return 0;
}

/* ---- gpux.FusedMatMul ---- */

typedef struct {
  float *y;
  int64_t n;
  const float *bias;
  const gpux__gemm_epilogue *ep;
} finish_job;

static void finish_rows(void *ctx, int64_t begin, int64_t end) {
  const finish_job *j = ctx;
  gpux__gemm_finish(j->y + begin * j->n, j->n, end - begin, j->n, j->bias, j->ep, begin, 0);
}

/* out = y + r with numpy broadcasting (out has the broadcast shape of y's and r's). */
static void add_broadcast(float *out, int nd, const int64_t *od, const float *y, int yn, const int64_t *yd,
                          const float *r, int rn, const int64_t *rd) {
  int64_t ys[GPUX_MAX_DIMS], rs[GPUX_MAX_DIMS], idx[GPUX_MAX_DIMS] = {0}, sy = 1, sr = 1;
  for (int d = nd - 1; d >= 0; d--) {
    int dy = d - (nd - yn), dr = d - (nd - rn);
    ys[d] = dy >= 0 && yd[dy] != 1 ? sy : 0;
    rs[d] = dr >= 0 && rd[dr] != 1 ? sr : 0;
    if (dy >= 0) sy *= yd[dy];
    if (dr >= 0) sr *= rd[dr];
  }
  int64_t total = gpux__shape_count(nd, od), oy = 0, orr = 0;
  for (int64_t i = 0; i < total; i++) {
    out[i] = y[oy] + r[orr];
    for (int d = nd - 1; d >= 0; d--) { /* the next index, odometer-wise */
      oy += ys[d], orr += rs[d];
      if (++idx[d] < od[d]) break;
      oy -= ys[d] * od[d], orr -= rs[d] * od[d];
      idx[d] = 0;
    }
  }
}

/* gpux.FusedMatMul, which runtime/fuse-transformer.c makes of a MatMul (or Gemm) by constant 2-D
 * weights, the Add of a bias, the activation and the residual Add after it:
 * Y = act(A x op(B) + bias) + R, float32. A [..., K] (its batch dims fold into rows), B [K, N]
 * ([N, K] with transB), bias [N] (any shape of N elements) or absent, R of the product's shape
 * (else broadcast in a second pass) or absent; attributes activation ("", "Relu", "Gelu",
 * "Tanh"), approximate ("none", "tanh") and transB. */
static int op_fused_matmul(gpux__kctx *k) {
  const gpux_tensor *a = IN(0), *b = IN(1), *bias = IN(2), *res = IN(3);
  if (!a || !b) return gpux__kerr(k, GPUX_E_INVALID, "FusedMatMul needs inputs A and B");
  if (a->dtype != GPUX_DT_FLOAT || b->dtype != GPUX_DT_FLOAT || (bias && bias->dtype != GPUX_DT_FLOAT) ||
      (res && res->dtype != GPUX_DT_FLOAT))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "FusedMatMul on %s", gpux_dtype_name(a->dtype));
  int tb = gpux__attr_int(k, "transB", 0) != 0;
  int act = gpux__gemm_act_of(gpux__attr_string(k, "activation", ""), gpux__attr_string(k, "approximate", "none"));
  if (act < 0) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "activation '%s'", gpux__attr_string(k, "activation", ""));
  if (a->ndim < 1 || b->ndim != 2) return gpux__kerr(k, GPUX_E_SHAPE, "FusedMatMul needs A of rank >= 1 and 2-D B");
  int64_t ka = a->dims[a->ndim - 1], kb = tb ? b->dims[1] : b->dims[0], n = tb ? b->dims[0] : b->dims[1];
  if (ka != kb)
    return gpux__kerr(k, GPUX_E_SHAPE, "FusedMatMul inner dimensions differ: %lld vs %lld", (long long)ka, (long long)kb);
  if (bias && gpux_tensor_count(bias) != n)
    return gpux__kerr(k, GPUX_E_SHAPE, "FusedMatMul bias has %lld values for %lld columns", (long long)gpux_tensor_count(bias),
                      (long long)n);
  int64_t pdims[GPUX_MAX_DIMS], odims[GPUX_MAX_DIMS]; /* the product's shape, the output's */
  memcpy(pdims, a->dims, sizeof(int64_t) * (size_t)a->ndim);
  pdims[a->ndim - 1] = n;
  int nout = a->ndim, same = 1;
  memcpy(odims, pdims, sizeof odims);
  if (res) {
    if (gpux__broadcast_shape(a->ndim, pdims, res->ndim, res->dims, &nout, odims))
      return gpux__kerr(k, GPUX_E_SHAPE, "FusedMatMul residual: %s", gpux_last_error());
    same = res->ndim == a->ndim && !memcmp(res->dims, pdims, sizeof(int64_t) * (size_t)a->ndim);
  }
  gpux_tensor *y = gpux__out_raw(k, 0, GPUX_DT_FLOAT, nout, odims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t rows = gpux__shape_count(a->ndim - 1, a->dims);
  if (!gpux_tensor_count(y)) return 0;
  float *p = y->data; /* the product: Y itself, unless the residual broadcasts */
  if (!same && !(p = gpux__malloc((size_t)(rows * n) * sizeof *p + 1))) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  const float *bf = bias ? bias->data : NULL;
  gpux__gemm_epilogue ep = {.act = act, .res = res && same ? res->data : NULL, .ldr = n};
  /* the packed weights: the epilogue runs on each register block as it is stored */
  const gpux__sgemm_b *pb = ka > 0 && rows && n ? gpux__sgemm_weights(k, 1, tb) : NULL;
  if (pb) {
    if (rows == 1) gpux__sgemv_run(a->data, pb, p, bf, 0, &ep);
    else gpux__sgemm_run_ep(rows, a->data, ka, pb, p, n, bf, 0, &ep);
  } else if (rows && n) {
    if (ka > 0) {
      if (blas_dims_ok(k, rows, n, ka)) {
        if (p != y->data) free(p);
        return k->status;
      }
      gpux__gemm_batch g = {.a = a->data, .b = b->data, .c = p, .m = rows, .n = n, .k = ka, .trans_b = tb,
                            .lda = ka, .ldb = tb ? ka : n, .alpha = 1, .beta = 0, .nb = 0, .batch = 1};
      gpux__gemm_batched(&g);
    } else {
      memset(p, 0, (size_t)(rows * n) * sizeof *p);
    }
    finish_job j = {.y = p, .n = n, .bias = bf, .ep = &ep};
    gpux__parallel_for(rows, GPUX__MAX(1, 16384 / n), finish_rows, &j);
  }
  if (p != y->data) {
    add_broadcast(y->data, nout, odims, p, a->ndim, pdims, res->data, res->ndim, res->dims);
    free(p);
  }
  return 0;
}

/* ---- Gemm ---- */

static int op_gemm(gpux__kctx *k) {
  const gpux_tensor *a = IN(0), *b = IN(1), *c = IN(2);
  if (!a || !b) return gpux__kerr(k, GPUX_E_INVALID, "Gemm needs inputs A and B");
  if (a->dtype != b->dtype || (c && c->dtype != a->dtype))
    return gpux__kerr(k, GPUX_E_DTYPE, "Gemm inputs differ in dtype (%s, %s%s%s)",
                      gpux_dtype_name(a->dtype), gpux_dtype_name(b->dtype), c ? ", " : "",
                      c ? gpux_dtype_name(c->dtype) : "");
  if (!matmul_dtype_ok(a->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "Gemm on %s", gpux_dtype_name(a->dtype));
  if (a->ndim != 2 || b->ndim != 2)
    return gpux__kerr(k, GPUX_E_SHAPE, "Gemm needs 2-D A and B (got rank %d and %d)", a->ndim,
                      b->ndim);
  int ta = gpux__attr_int(k, "transA", 0) != 0, tb = gpux__attr_int(k, "transB", 0) != 0;
  double alpha = gpux__attr_float(k, "alpha", 1.0f), beta = gpux__attr_float(k, "beta", 1.0f);
  int64_t m = ta ? a->dims[1] : a->dims[0], ka = ta ? a->dims[0] : a->dims[1];
  int64_t kb = tb ? b->dims[1] : b->dims[0], n = tb ? b->dims[0] : b->dims[1];
  if (ka != kb)
    return gpux__kerr(k, GPUX_E_SHAPE, "Gemm inner dimensions differ: %lld vs %lld",
                      (long long)ka, (long long)kb);
  /* C broadcasts unidirectionally to (M, N) */
  int64_t cm = 1, cn = 1;
  if (c) {
    if (c->ndim > 2) return gpux__kerr(k, GPUX_E_SHAPE, "Gemm C has rank %d (at most 2)", c->ndim);
    if (c->ndim >= 1) cn = c->dims[c->ndim - 1];
    if (c->ndim == 2) cm = c->dims[0];
    if ((cm != 1 && cm != m) || (cn != 1 && cn != n))
      return gpux__kerr(k, GPUX_E_SHAPE, "Gemm C of shape (%lld, %lld) does not broadcast to (%lld, %lld)",
                        (long long)cm, (long long)cn, (long long)m, (long long)n);
  }
  int64_t odims[2] = {m, n};
  gpux_tensor *y = gpux__out(k, 0, a->dtype, 2, odims);
  if (!y) return k->status;
  if (k->shape_only || m == 0 || n == 0) return 0;

  if (is_int_dtype(a->dtype)) {
    int64_t *ai = widen_i64(a), *bi = widen_i64(b), *ci = c ? widen_i64(c) : NULL;
    if (!ai || !bi || (c && !ci)) {
      free(ai); free(bi); free(ci);
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
    int exact = alpha == 1.0 && (beta == 1.0 || !c);
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        uint64_t acc = 0;
        for (int64_t p = 0; p < ka; p++) {
          int64_t av = ta ? ai[p * m + i] : ai[i * ka + p];
          int64_t bv = tb ? bi[j * ka + p] : bi[p * n + j];
          acc += (uint64_t)av * (uint64_t)bv;
        }
        int64_t cv = c ? ci[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)] : 0;
        if (exact)
          gpux__store_i64(y->dtype, y->data, i * n + j, (int64_t)(acc + (uint64_t)cv));
        else
          gpux__store_f64(y->dtype, y->data, i * n + j, alpha * (double)(int64_t)acc + beta * (double)cv);
      }
    free(ai); free(bi); free(ci);
    return 0;
  }

  if (blas_dims_ok(k, m, n, ka)) return k->status;
  int dbl = a->dtype == GPUX_DT_DOUBLE;
  int direct = dbl || a->dtype == GPUX_DT_FLOAT;
  void *af = (void *)a->data, *bf = (void *)b->data, *yf = y->data, *cf = c ? c->data : NULL;
  if (!direct) {
    af = gpux__widen_f32(a), bf = gpux__widen_f32(b), cf = c ? gpux__widen_f32(c) : NULL;
    yf = gpux__malloc((size_t)(m * n) * sizeof(float));
    if (!af || !bf || !yf || (c && !cf)) {
      free(af); free(bf); free(cf); free(yf);
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
  }
  /* Y = beta * C (broadcast), then Y += alpha * A' B' */
  if (c) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        int64_t ci = (cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j);
        if (dbl) ((double *)yf)[i * n + j] = beta * ((const double *)cf)[ci];
        else ((float *)yf)[i * n + j] = (float)beta * ((const float *)cf)[ci];
      }
  }
  const gpux__sgemm_b *pb = a->dtype == GPUX_DT_FLOAT && !ta && alpha == 1.0 && ka > 0 ? gpux__sgemm_weights(k, 1, tb) : NULL;
  if (pb) {
    if (m == 1) gpux__sgemv_run(af, pb, yf, NULL, c != NULL, NULL);
    else gpux__sgemm_run(m, af, ka, pb, yf, n, NULL, c != NULL);
  } else if (ka > 0) {
    gpux__gemm_batch g = {.dbl = dbl, .a = af, .b = bf, .c = yf, .m = m, .n = n, .k = ka, .trans_a = ta,
               .trans_b = tb, .lda = ta ? m : ka, .ldb = tb ? ka : n, .alpha = alpha,
               .beta = c ? 1.0 : 0.0, .nb = 0, .batch = 1};
    gpux__gemm_batched(&g);
  }
  if (!direct) {
    gpux__narrow_f32(y->dtype, y->data, yf, m * n);
    free(af); free(bf); free(cf); free(yf);
  }
  return 0;
}

/* ---- Einsum ---- */

/* Labels: 'A'..'Z' are 0..25, 'a'..'z' 26..51 (so label order is ASCII order), and the
 * broadcast dims of an ellipsis are 52.. (right-aligned across operands). */
#define EIN_LETTERS 52
#define EIN_LABELS (EIN_LETTERS + GPUX_MAX_DIMS)
#define EIN_MAX_IN 16

typedef struct {
  int n_in;
  int rank[EIN_MAX_IN];
  int lab[EIN_MAX_IN][GPUX_MAX_DIMS];  /* label of each input dim */
  int n_out;
  int out[GPUX_MAX_DIMS];              /* labels of the output dims */
  int64_t size[EIN_LABELS];            /* each label's extent (-1 unused) */
  int n_sum;
  int sum[EIN_LABELS];                 /* labels summed over */
} einsum_plan;

static int label_of(char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return 26 + ch - 'a';
  return -1;
}

/* Parses one term ("ab...c") into letter labels with -2 marking the ellipsis. */
static int parse_term(gpux__kctx *k, const char *s, size_t len, int *labs, int *nlab) {
  int n = 0, ell = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '.') {
      if (ell || i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.')
        return gpux__kerr(k, GPUX_E_INVALID, "Einsum: bad ellipsis in '%.*s'", (int)len, s);
      ell = 1;
      i += 2;
      if (n >= GPUX_MAX_DIMS + 1) return gpux__kerr(k, GPUX_E_INVALID, "Einsum: term too long");
      labs[n++] = -2;
      continue;
    }
    int l = label_of(s[i]);
    if (l < 0) return gpux__kerr(k, GPUX_E_INVALID, "Einsum: bad character '%c' in equation", s[i]);
    if (n >= GPUX_MAX_DIMS + 1) return gpux__kerr(k, GPUX_E_INVALID, "Einsum: term too long");
    labs[n++] = l;
  }
  *nlab = n;
  return 0;
}

static int einsum_parse(gpux__kctx *k, const char *eq_in, einsum_plan *p) {
  char eq[512];
  size_t len = 0;
  for (const char *c = eq_in; *c; c++) {
    if (*c == ' ' || *c == '\t' || *c == '\n') continue;
    if (len + 1 >= sizeof eq) return gpux__kerr(k, GPUX_E_INVALID, "Einsum: equation too long");
    eq[len++] = *c;
  }
  eq[len] = 0;
  const char *arrow = strstr(eq, "->");
  size_t lhs_len = arrow ? (size_t)(arrow - eq) : len;

  for (int l = 0; l < EIN_LABELS; l++) p->size[l] = -1;
  int ell_rank = 0, ti = 0;
  int terms[EIN_MAX_IN][GPUX_MAX_DIMS + 1], nterm[EIN_MAX_IN];
  size_t start = 0;
  for (size_t i = 0; i <= lhs_len; i++) {
    if (i < lhs_len && eq[i] != ',') continue;
    if (ti >= EIN_MAX_IN || ti >= p->n_in)
      return gpux__kerr(k, GPUX_E_INVALID, "Einsum: equation has more terms than the %d inputs", p->n_in);
    if (parse_term(k, eq + start, i - start, terms[ti], &nterm[ti])) return k->status;
    ti++;
    start = i + 1;
  }
  if (ti != p->n_in)
    return gpux__kerr(k, GPUX_E_INVALID, "Einsum: equation has %d terms for %d inputs", ti, p->n_in);
  /* ellipsis ranks */
  int er[EIN_MAX_IN];
  for (int i = 0; i < ti; i++) {
    int letters = 0, has_ell = 0;
    for (int j = 0; j < nterm[i]; j++) {
      if (terms[i][j] == -2) has_ell = 1;
      else letters++;
    }
    if (letters > p->rank[i] || (!has_ell && letters != p->rank[i]))
      return gpux__kerr(k, GPUX_E_SHAPE, "Einsum: term %d has %d labels for an input of rank %d",
                        i, letters, p->rank[i]);
    er[i] = has_ell ? p->rank[i] - letters : 0;
    if (er[i] > ell_rank) ell_rank = er[i];
  }
  /* each input dim's label */
  for (int i = 0; i < ti; i++) {
    int d = 0;
    for (int j = 0; j < nterm[i]; j++) {
      if (terms[i][j] == -2) {
        for (int e = 0; e < er[i]; e++) p->lab[i][d++] = EIN_LETTERS + (ell_rank - er[i]) + e;
      } else {
        p->lab[i][d++] = terms[i][j];
      }
    }
  }
  /* output labels */
  int count[EIN_LABELS] = {0};
  for (int i = 0; i < ti; i++)
    for (int d = 0; d < p->rank[i]; d++) count[p->lab[i][d]]++;
  p->n_out = 0;
  int in_out[EIN_LABELS] = {0};
  if (arrow) {
    int labs[GPUX_MAX_DIMS + 1], n;
    const char *rhs = arrow + 2;
    if (parse_term(k, rhs, strlen(rhs), labs, &n)) return k->status;
    for (int j = 0; j < n; j++) {
      if (labs[j] == -2) {
        for (int e = 0; e < ell_rank; e++) {
          if (p->n_out >= GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "Einsum: output rank too large");
          p->out[p->n_out++] = EIN_LETTERS + e;
          in_out[EIN_LETTERS + e] = 1;
        }
        continue;
      }
      if (!count[labs[j]])
        return gpux__kerr(k, GPUX_E_INVALID, "Einsum: output label '%c' is not in any input",
                          labs[j] < 26 ? 'A' + labs[j] : 'a' + labs[j] - 26);
      if (in_out[labs[j]]) return gpux__kerr(k, GPUX_E_INVALID, "Einsum: output label repeated");
      if (p->n_out >= GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "Einsum: output rank too large");
      p->out[p->n_out++] = labs[j];
      in_out[labs[j]] = 1;
    }
  } else {
    for (int e = 0; e < ell_rank; e++) {
      p->out[p->n_out++] = EIN_LETTERS + e;
      in_out[EIN_LETTERS + e] = 1;
    }
    for (int l = 0; l < EIN_LETTERS; l++)
      if (count[l] == 1) {
        if (p->n_out >= GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "Einsum: output rank too large");
        p->out[p->n_out++] = l;
        in_out[l] = 1;
      }
  }
  p->n_sum = 0;
  for (int l = 0; l < EIN_LABELS; l++)
    if (count[l] && !in_out[l]) p->sum[p->n_sum++] = l;
  return 0;
}

/* Label extents, with numpy broadcasting of size-1 dims. */
static int einsum_sizes(gpux__kctx *k, einsum_plan *p, const gpux_tensor *const *in) {
  for (int i = 0; i < p->n_in; i++)
    for (int d = 0; d < p->rank[i]; d++) {
      int l = p->lab[i][d];
      int64_t s = in[i]->dims[d];
      if (p->size[l] < 0 || p->size[l] == 1) p->size[l] = s;
      else if (s != 1 && s != p->size[l])
        return gpux__kerr(k, GPUX_E_SHAPE, "Einsum: dimension %d of input %d is %lld, expected %lld",
                          d, i, (long long)s, (long long)p->size[l]);
    }
  return 0;
}

/* Generic evaluation: every output element sums the product of the inputs over the summed labels;
 * repeated labels of one input add their strides (diagonals), broadcast dims get stride 0. */
typedef struct {
  const einsum_plan *p;
  int is_int;
  const double *fin[EIN_MAX_IN];
  const int64_t *iin[EIN_MAX_IN];
  int64_t ostr[EIN_MAX_IN][GPUX_MAX_DIMS];   /* per input, stride for each output dim */
  int64_t sstr[EIN_MAX_IN][EIN_LABELS];      /* per input, stride for each summed label */
  double *fout;
  int64_t *iout;
} einsum_eval;

static void einsum_range(void *ctx, int64_t begin, int64_t end) {
  const einsum_eval *e = ctx;
  const einsum_plan *p = e->p;
  int ni = p->n_in;
  for (int64_t o = begin; o < end; o++) {
    int64_t base[EIN_MAX_IN] = {0}, rem = o;
    for (int d = p->n_out - 1; d >= 0; d--) {
      int64_t ext = p->size[p->out[d]];
      int64_t idx = rem % ext;
      rem /= ext;
      for (int i = 0; i < ni; i++) base[i] += idx * e->ostr[i][d];
    }
    int64_t sidx[EIN_LABELS] = {0}, off[EIN_MAX_IN];
    for (int i = 0; i < ni; i++) off[i] = base[i];
    double facc = 0;
    uint64_t iacc = 0;
    for (;;) {
      if (e->is_int) {
        uint64_t prod = 1;
        for (int i = 0; i < ni; i++) prod *= (uint64_t)e->iin[i][off[i]];
        iacc += prod;
      } else {
        double prod = 1;
        for (int i = 0; i < ni; i++) prod *= e->fin[i][off[i]];
        facc += prod;
      }
      /* odometer over the summed labels, last fastest */
      int s = p->n_sum - 1;
      for (; s >= 0; s--) {
        for (int i = 0; i < ni; i++) off[i] += e->sstr[i][s];
        if (++sidx[s] < p->size[p->sum[s]]) break;
        for (int i = 0; i < ni; i++) off[i] -= e->sstr[i][s] * sidx[s];
        sidx[s] = 0;
      }
      if (s < 0) break;
    }
    if (e->is_int) e->iout[o] = (int64_t)iacc;
    else e->fout[o] = facc;
  }
}

/* Copies src (dims in its own order) into dst laid out in the order perm: dst dim j is src dim
 * perm[j]. Elements are es bytes. */
static void permute_copy(void *dst, const void *src, size_t es, int nd, const int64_t *dims,
                         const int *perm) {
  int64_t sstr[GPUX_MAX_DIMS], pd[GPUX_MAX_DIMS], ps[GPUX_MAX_DIMS], idx[GPUX_MAX_DIMS] = {0};
  gpux__strides(nd, dims, sstr);
  for (int j = 0; j < nd; j++) pd[j] = dims[perm[j]], ps[j] = sstr[perm[j]];
  int64_t total = gpux__shape_count(nd, dims), off = 0;
  char *d = dst;
  const char *s = src;
  for (int64_t i = 0; i < total; i++) {
    memcpy(d + (size_t)i * es, s + (size_t)off * es, es);
    for (int j = nd - 1; j >= 0; j--) {
      off += ps[j];
      if (++idx[j] < pd[j]) break;
      off -= ps[j] * idx[j];
      idx[j] = 0;
    }
  }
}

/* Two operands without diagonals or broadcasting: permute to [batch, M, K] x [batch, K, N],
 * run a batched GEMM and permute the [batch, M, N] result into the output order. Returns 1 when
 * done, 0 when the equation does not fit, negative on error. `in` are float32 (or float64). */
static int einsum_gemm(gpux__kctx *k, const einsum_plan *p, const gpux_tensor *const *t,
                       const void *a_data, const void *b_data, void *out_data, int dbl) {
  if (p->n_in != 2) return 0;
  int where[EIN_LABELS] = {0};  /* bit 0: in A, bit 1: in B, bit 2: in output */
  for (int i = 0; i < 2; i++)
    for (int d = 0; d < p->rank[i]; d++) {
      int l = p->lab[i][d];
      if (where[l] & (1 << i)) return 0;                       /* diagonal */
      if (t[i]->dims[d] != p->size[l]) return 0;                /* broadcast */
      where[l] |= 1 << i;
    }
  for (int d = 0; d < p->n_out; d++) where[p->out[d]] |= 4;
  int bl[EIN_LABELS], ml[EIN_LABELS], nl[EIN_LABELS], kl[EIN_LABELS], nbt = 0, nm = 0, nn = 0, nk = 0;
  int64_t batch = 1, m = 1, n = 1, kk = 1;
  /* keep each group in output order (batch, M, N) or A's order (K) to limit permutes */
  for (int d = 0; d < p->n_out; d++) {
    int l = p->out[d];
    if (where[l] == 7) bl[nbt++] = l, batch *= p->size[l];
  }
  for (int d = 0; d < p->n_out; d++) {
    int l = p->out[d];
    if (where[l] == 5) ml[nm++] = l, m *= p->size[l];
    else if (where[l] == 6) nl[nn++] = l, n *= p->size[l];
  }
  for (int d = 0; d < p->rank[0]; d++) {
    int l = p->lab[0][d];
    if (where[l] == 3) kl[nk++] = l, kk *= p->size[l];
    else if (where[l] == 1) return 0;                            /* summed over A only */
  }
  for (int d = 0; d < p->rank[1]; d++)
    if (where[p->lab[1][d]] == 2) return 0;                      /* summed over B only */
  if (m > INT_MAX || n > INT_MAX || kk > INT_MAX || m * batch > INT_MAX) return 0;

  size_t es = dbl ? sizeof(double) : sizeof(float);
  /* the permutations: A -> [batch, M, K], B -> [batch, K, N], [batch, M, N] -> output */
  int pa[GPUX_MAX_DIMS], pb[GPUX_MAX_DIMS], na = 0, nb = 0;
  int order_a[EIN_LABELS], order_b[EIN_LABELS], noa = 0, nob = 0;
  for (int j = 0; j < nbt; j++) order_a[noa++] = bl[j], order_b[nob++] = bl[j];
  for (int j = 0; j < nm; j++) order_a[noa++] = ml[j];
  for (int j = 0; j < nk; j++) order_a[noa++] = kl[j], order_b[nob++] = kl[j];
  for (int j = 0; j < nn; j++) order_b[nob++] = nl[j];
  for (int j = 0; j < noa; j++)
    for (int d = 0; d < p->rank[0]; d++)
      if (p->lab[0][d] == order_a[j]) pa[na++] = d;
  for (int j = 0; j < nob; j++)
    for (int d = 0; d < p->rank[1]; d++)
      if (p->lab[1][d] == order_b[j]) pb[nb++] = d;
  int ident_a = 1, ident_b = 1;
  for (int j = 0; j < na; j++) ident_a &= pa[j] == j;
  for (int j = 0; j < nb; j++) ident_b &= pb[j] == j;
  /* result dims in [batch, M, N] order and the permutation to the output order */
  int rl[EIN_LABELS], nr = 0, po[GPUX_MAX_DIMS], ident_o = 1;
  int64_t rdims[GPUX_MAX_DIMS];
  for (int j = 0; j < nbt; j++) rl[nr++] = bl[j];
  for (int j = 0; j < nm; j++) rl[nr++] = ml[j];
  for (int j = 0; j < nn; j++) rl[nr++] = nl[j];
  for (int j = 0; j < nr; j++) rdims[j] = p->size[rl[j]];
  for (int d = 0; d < p->n_out; d++) {
    for (int j = 0; j < nr; j++)
      if (rl[j] == p->out[d]) po[d] = j;
    ident_o &= po[d] == d;
  }
  int64_t na_el = gpux_tensor_count(t[0]), nb_el = gpux_tensor_count(t[1]), nr_el = batch * m * n;
  void *ta = ident_a ? NULL : gpux__malloc((size_t)na_el * es + 1);
  void *tb = ident_b ? NULL : gpux__malloc((size_t)nb_el * es + 1);
  void *tr = ident_o ? NULL : gpux__malloc((size_t)nr_el * es + 1);
  if ((!ident_a && !ta) || (!ident_b && !tb) || (!ident_o && !tr)) {
    free(ta); free(tb); free(tr);
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
  if (ta) permute_copy(ta, a_data, es, t[0]->ndim, t[0]->dims, pa);
  if (tb) permute_copy(tb, b_data, es, t[1]->ndim, t[1]->dims, pb);
  void *res = tr ? tr : out_data;
  if (kk == 0) {
    memset(res, 0, (size_t)nr_el * es);
  } else {
    gpux__gemm_batch g = {.dbl = dbl, .a = ta ? ta : a_data, .b = tb ? tb : b_data, .c = res, .m = m,
               .n = n, .k = kk, .lda = kk, .ldb = n, .alpha = 1, .beta = 0, .nb = 1,
               .bdims = {batch}, .astr = {m * kk}, .bstr = {kk * n}, .batch = batch};
    gpux__gemm_batched(&g);
  }
  if (tr) permute_copy(out_data, tr, es, nr, rdims, po);
  free(ta); free(tb); free(tr);
  return 1;
}

static int op_einsum(gpux__kctx *k) {
  einsum_plan p;
  memset(&p, 0, sizeof p);
  p.n_in = k->n_in;
  if (p.n_in < 1 || p.n_in > EIN_MAX_IN)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "Einsum with %d inputs", p.n_in);
  const gpux_tensor *in[EIN_MAX_IN];
  for (int i = 0; i < p.n_in; i++) {
    in[i] = IN(i);
    if (!in[i]) return gpux__kerr(k, GPUX_E_INVALID, "Einsum input %d is missing", i);
    if (in[i]->dtype != in[0]->dtype)
      return gpux__kerr(k, GPUX_E_DTYPE, "Einsum inputs differ in dtype (%s vs %s)",
                        gpux_dtype_name(in[0]->dtype), gpux_dtype_name(in[i]->dtype));
    p.rank[i] = in[i]->ndim;
  }
  int dt = in[0]->dtype;
  if (!gpux__dtype_is_float(dt) && !is_int_dtype(dt))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "Einsum on %s", gpux_dtype_name(dt));
  const char *eq = gpux__attr_string(k, "equation", NULL);
  if (!eq) return gpux__kerr(k, GPUX_E_INVALID, "Einsum needs the 'equation' attribute");
  if (einsum_parse(k, eq, &p) || einsum_sizes(k, &p, in)) return k->status;
  int64_t odims[GPUX_MAX_DIMS];
  for (int d = 0; d < p.n_out; d++) odims[d] = p.size[p.out[d]];
  gpux_tensor *y = gpux__out(k, 0, dt, p.n_out, odims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t total = gpux_tensor_count(y);
  if (total == 0) return 0;
  for (int i = 0; i < p.n_in; i++)
    if (gpux_tensor_count(in[i]) == 0) return 0; /* empty sum: zeros */

  /* float fast path: a batched GEMM */
  if (p.n_in == 2 && (dt == GPUX_DT_FLOAT || dt == GPUX_DT_DOUBLE)) {
    int rc = einsum_gemm(k, &p, in, in[0]->data, in[1]->data, y->data, dt == GPUX_DT_DOUBLE);
    if (rc) return rc < 0 ? rc : 0;
  } else if (p.n_in == 2 && (dt == GPUX_DT_FLOAT16 || dt == GPUX_DT_BFLOAT16)) {
    float *a = gpux__widen_f32(in[0]), *b = gpux__widen_f32(in[1]), *c = gpux__malloc((size_t)total * sizeof(float));
    int rc = a && b && c ? einsum_gemm(k, &p, in, a, b, c, 0)
                         : gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    if (rc == 1) gpux__narrow_f32(dt, y->data, c, total);
    free(a); free(b); free(c);
    if (rc) return rc < 0 ? rc : 0;
  }

  einsum_eval e;
  memset(&e, 0, sizeof e);
  e.p = &p;
  e.is_int = is_int_dtype(dt);
  int rc = 0;
  for (int i = 0; i < p.n_in; i++) {
    int64_t str[GPUX_MAX_DIMS];
    gpux__strides(in[i]->ndim, in[i]->dims, str);
    for (int d = 0; d < p.rank[i]; d++) {
      int l = p.lab[i][d];
      int64_t s = in[i]->dims[d] == 1 ? 0 : str[d];
      for (int o = 0; o < p.n_out; o++)
        if (p.out[o] == l) e.ostr[i][o] += s;
      for (int q = 0; q < p.n_sum; q++)
        if (p.sum[q] == l) e.sstr[i][q] += s;
    }
    if (e.is_int) {
      e.iin[i] = widen_i64(in[i]);
      if (!e.iin[i]) rc = GPUX_E_NOMEM;
    } else {
      e.fin[i] = gpux__widen_f64(in[i]);
      if (!e.fin[i]) rc = GPUX_E_NOMEM;
    }
  }
  if (e.is_int) e.iout = gpux__malloc((size_t)total * sizeof(int64_t));
  else e.fout = gpux__malloc((size_t)total * sizeof(double));
  if (!e.iout && !e.fout) rc = GPUX_E_NOMEM;
  /* a label summed with extent 0 would make the odometer run once; sums are zero then */
  for (int q = 0; q < p.n_sum; q++)
    if (p.size[p.sum[q]] == 0) rc = rc ? rc : 1;
  if (rc == 0) {
    int64_t inner = 1;
    for (int q = 0; q < p.n_sum; q++) inner *= p.size[p.sum[q]];
    gpux__parallel_for(total, GPUX__MAX(1, 8192 / (inner * p.n_in)), einsum_range, &e);
    for (int64_t o = 0; o < total; o++) {
      if (e.is_int) gpux__store_i64(dt, y->data, o, e.iout[o]);
      else gpux__store_f64(dt, y->data, o, e.fout[o]);
    }
  }
  for (int i = 0; i < p.n_in; i++) {
    free((void *)e.fin[i]);
    free((void *)e.iin[i]);
  }
  free(e.fout);
  free(e.iout);
  if (rc < 0) return gpux__kerr(k, rc, "out of memory");
  return 0;
}

/* ---- Det ---- */

/* Determinant of an n x n matrix by LU decomposition with partial pivoting (destroys a). */
static double det_lu(double *a, int64_t n) {
  double det = 1.0;
  for (int64_t c = 0; c < n; c++) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; r++)
      if (fabs(a[r * n + c]) > fabs(a[piv * n + c])) piv = r;
    if (a[piv * n + c] == 0.0) return 0.0;
    if (piv != c) {
      for (int64_t j = 0; j < n; j++) {
        double t = a[c * n + j];
        a[c * n + j] = a[piv * n + j];
        a[piv * n + j] = t;
      }
      det = -det;
    }
    double d = a[c * n + c];
    det *= d;
    for (int64_t r = c + 1; r < n; r++) {
      double f = a[r * n + c] / d;
      if (f == 0.0) continue;
      for (int64_t j = c + 1; j < n; j++) a[r * n + j] -= f * a[c * n + j];
    }
  }
  return det;
}

static int op_det(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "Det needs an input");
  if (!gpux__dtype_is_float(x->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "Det on %s", gpux_dtype_name(x->dtype));
  if (x->ndim < 2 || x->dims[x->ndim - 1] != x->dims[x->ndim - 2])
    return gpux__kerr(k, GPUX_E_SHAPE, "Det needs square matrices in the last two dims");
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim - 2, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t n = x->dims[x->ndim - 1], count = gpux_tensor_count(y);
  double *a = gpux__malloc((size_t)(n * n > 0 ? n * n : 1) * sizeof *a);
  if (!a) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int64_t b = 0; b < count; b++) {
    for (int64_t i = 0; i < n * n; i++) a[i] = gpux__load_f64(x->dtype, x->data, b * n * n + i);
    gpux__store_f64(y->dtype, y->data, b, det_lu(a, n));
  }
  free(a);
  return 0;
}

const gpux__op_def gpux__ops_linalg[] = {
  {"", "MatMul", op_matmul, 1, 0},
  {"", "Gemm", op_gemm, 1, 0},
  {"", "Einsum", op_einsum, 12, 0},
  {"", "Det", op_det, 11, 0},
  {"gpux", "FusedMatMul", op_fused_matmul, 1, 0},
  {0},
};
