/* attention.c — attention operators: Attention (opsets 23-25: 3-D and 4-D inputs, grouped-query
 * heads, boolean or float masks, causal and sliding-window masking, padded KV caches, softcap,
 * past/present KV, qk_matmul_output), RotaryEmbedding, SwiGLU, LinearAttention and
 * ai.onnx.preview FlexAttention.
 *
 * Attention computes in float32 whatever the input type (bfloat16 rounds each step the way the
 * ONNX function body does): per (batch, KV head, block of rows of its query-head group), in
 * parallel, one product makes the scores over the keys the block can see, the masks and softmax
 * run row by row (one vectorized pass in float32), and a second product multiplies by V; the
 * [S, T] scores are never made, only each task's block of them. The products run on sgemm.c's
 * micro-kernels with K^T and V packed once per run where the machine has them and blocks have 6
 * rows or more (3-D float32 inputs, [B, S, H * D], read in place with strides: Q and Y by the
 * products, K and V by the packing), else on BLAS. A row whose every position is masked gets zero
 * probabilities (the function body's "safe softmax"), not NaN. */
#include "ops/simd.h"
#include "ops/gemm.h"
#include "core/scratch.h"
#include <cblas.h>
#include <math.h>

/* ---- float32 staging of any floating tensor ---- */

static int is_float_type(int dt) {
  return dt == GPUX_DT_FLOAT || dt == GPUX_DT_FLOAT16 || dt == GPUX_DT_BFLOAT16 || dt == GPUX_DT_DOUBLE;
}

/* n elements of t from element off, as float32. */
static void load_f32(const gpux_tensor *t, int64_t off, int64_t n, float *dst) {
  switch (t->dtype) {
  case GPUX_DT_FLOAT: memcpy(dst, (const float *)t->data + off, sizeof(float) * (size_t)n); return;
  case GPUX_DT_FLOAT16: {
    const uint16_t *s = (const uint16_t *)t->data + off;
    for (int64_t i = 0; i < n; i++) dst[i] = gpux__f16_to_f32(s[i]);
    return;
  }
  case GPUX_DT_BFLOAT16: {
    const uint16_t *s = (const uint16_t *)t->data + off;
    for (int64_t i = 0; i < n; i++) dst[i] = gpux__bf16_to_f32(s[i]);
    return;
  }
  case GPUX_DT_DOUBLE: {
    const double *s = (const double *)t->data + off;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
    return;
  }
  }
  for (int64_t i = 0; i < n; i++) dst[i] = (float)gpux__load_f64(t->dtype, t->data, off + i);
}

/* n float32 values into t from element off, rounded to t's type. */
static void store_f32(gpux_tensor *t, int64_t off, int64_t n, const float *src) {
  switch (t->dtype) {
  case GPUX_DT_FLOAT: memcpy((float *)t->data + off, src, sizeof(float) * (size_t)n); return;
  case GPUX_DT_FLOAT16: {
    uint16_t *d = (uint16_t *)t->data + off;
    for (int64_t i = 0; i < n; i++) d[i] = gpux__f32_to_f16(src[i]);
    return;
  }
  case GPUX_DT_BFLOAT16: {
    uint16_t *d = (uint16_t *)t->data + off;
    for (int64_t i = 0; i < n; i++) d[i] = gpux__f32_to_bf16(src[i]);
    return;
  }
  }
  for (int64_t i = 0; i < n; i++) gpux__store_f64(t->dtype, t->data, off + i, src[i]);
}

/* The whole of t as float32: t's own data when it already is, else a copy in *owned. */
static const float *f32_view(gpux__kctx *k, const gpux_tensor *t, float **owned) {
  *owned = NULL;
  if (t->dtype == GPUX_DT_FLOAT) return t->data;
  int64_t n = gpux_tensor_count(t);
  *owned = malloc(sizeof(float) * (size_t)GPUX__MAX(1, n));
  if (!*owned) {
    gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    return NULL;
  }
  load_f32(t, 0, n, *owned);
  return *owned;
}

static int blas_ok(gpux__kctx *k, int64_t a, int64_t b, int64_t c) {
  if (a > INT32_MAX || b > INT32_MAX || c > INT32_MAX)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "attention dimension above %d", INT32_MAX);
  return 0;
}

/* ---- Attention ---- */

typedef struct {
  int64_t B, Hq, Hkv, Sq, T, D, Dv, P;
  int three_d;               /* Q and Y are [B, S, H * D] instead of [B, H, S, D] */
  float scale, softcap;
  int causal, mode, has_past;
  int64_t left, right;       /* sliding window, -1 = unbounded */
  const float *q;            /* in Q's layout */
  const float *k, *v;        /* [B, Hkv, T, D], [B, Hkv, T, Dv]; with kv3, 3-D K and V read in place */
  int kv3;                   /* packed from 3-D float32 K [B, T, Hkv * D] and V [B, T, Hkv * Dv] */
  const float *ks;           /* the K the scores use: k, or k pre-scaled in bf16 mode */
  float *y;                  /* in Y's layout */
  float *qk;                 /* [B, Hq, Sq, T], NULL when qk_matmul_output is not wanted */
  const float *mask;         /* the attn_mask as additive bias (bool already 0 / -inf), or NULL */
  int64_t mstr[3], mask_t;   /* mask strides for batch, head, query row (0 = broadcast); its last dim */
  const int64_t *nonpad;     /* [B] valid KV lengths, or NULL */
  int bf16;                  /* round every step to bfloat16, as the function body does in T */
  int plain;                 /* none of bf16, softcap, qk: attn_row_f32 does the rows */
  int packed;                /* plain, and the products run on the packed micro-kernels (sgemm.c) */
  int row16;                 /* packed, on AVX-512: attn_row16 does the rows and applies the scale,
                              * the sums divide the output rows */
  int64_t nr, kpf, vpf;      /* their panel width; floats of one (batch, KV head)'s packed K^T, V */
  float *kpack, *vpack;      /* K^T [D, T] and V [T, Dv] packed per (batch, KV head) */
  int64_t rows;              /* rows (query head of the group, query position) per task */
  int64_t blocks;            /* tasks per (batch, KV head) */
  int failed;                /* a task could not get scratch memory */
} attn_job;

static float bf16_round(float x) { return gpux__bf16_to_f32(gpux__f32_to_bf16(x)); }

/* The keys [lo, hi) that the causal, window and padding terms leave to query row i of batch b;
 * everything outside gets -inf. The query's absolute position is i plus the number of keys
 * before the query block: the past length, or nonpad_kv_seqlen - Sq for an external cache. */
static void attn_row_range(const attn_job *a, int64_t b, int64_t i, int64_t *lo, int64_t *hi) {
  int64_t offset = a->has_past ? a->P : a->nonpad ? a->nonpad[b] - a->Sq : 0;
  int64_t pos = i + offset, l = 0, h = a->T;
  if (a->causal) h = GPUX__MIN(h, pos + 1);
  if (a->left >= 0) l = GPUX__MAX(l, pos - a->left);
  if (a->right >= 0) h = GPUX__MIN(h, pos + a->right + 1);
  if (a->nonpad) h = GPUX__MIN(h, a->nonpad[b]);
  l = GPUX__MIN(l, a->T);
  *lo = l;
  *hi = GPUX__MAX(h, l);
}

/* Adds the bias to columns [j0, j1) of one score row: -inf outside [lo, hi), the mask inside (a
 * mask shorter than the keys is padded with -inf). Returns whether any position is left. */
static int attn_bias_row(const attn_job *a, int64_t b, int64_t h, int64_t i, int64_t lo, int64_t hi, float *row,
                         int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < GPUX__MIN(lo, j1); j++) row[j] = -INFINITY;
  for (int64_t j = GPUX__MAX(hi, j0); j < j1; j++) row[j] = -INFINITY;
  if (!a->mask) return hi > lo;
  const float *mrow = a->mask + b * a->mstr[0] + h * a->mstr[1] + i * a->mstr[2];
  int any = 0;
  for (int64_t j = lo; j < hi; j++) {
    float bias = j < a->mask_t ? mrow[j] : -INFINITY;
    if (bias != -INFINITY) any = 1;
    row[j] = a->bf16 ? bf16_round(row[j] + bf16_round(bias)) : row[j] + bias;
  }
  return any;
}

/* Softmax of columns [j0, j1) of one row in place, over the unmasked [lo, hi); a fully masked
 * row becomes zeros. */
static void attn_softmax_row(float *row, int64_t j0, int64_t j1, int64_t lo, int64_t hi, int any, int bf16) {
  if (!any || hi <= lo) {
    memset(row + j0, 0, sizeof(float) * (size_t)(j1 - j0));
    return;
  }
  for (int64_t j = j0; j < lo; j++) row[j] = 0.0f;
  for (int64_t j = hi; j < j1; j++) row[j] = 0.0f;
  float mx = -INFINITY, sum = 0.0f;
  for (int64_t j = lo; j < hi; j++) mx = row[j] > mx ? row[j] : mx;
  if (bf16) { /* each operation rounded to bfloat16, the sum accumulated in order */
    for (int64_t j = lo; j < hi; j++) {
      row[j] = bf16_round(expf(bf16_round(row[j] - mx)));
      sum = bf16_round(sum + row[j]);
    }
    for (int64_t j = lo; j < hi; j++) row[j] = bf16_round(row[j] / sum);
    return;
  }
  for (int64_t j = lo; j < hi; j++) {
    row[j] = expf(row[j] - mx);
    sum += row[j];
  }
  float inv = 1.0f / sum;
  for (int64_t j = lo; j < hi; j++) row[j] *= inv;
}

/* The float32 path of one score row (no bfloat16 rounding, softcap or qk_matmul_output): adds
 * mask[lo, hi), softmax over [lo, hi) and zeros in the rest of [j0, j1); a row whose every
 * position is -inf gets zeros. Vectorized (simd.h). */
static GPUX_SIMD_CLONES void attn_row_f32(float *restrict row, const float *restrict mask, int64_t j0, int64_t j1,
                                          int64_t lo, int64_t hi) {
  int64_t n = hi - lo, i;
  float *restrict x = row + lo;
  if (mask) {
    const float *restrict m = mask + lo;
    FOR8(k, n, x[k] += m[k]);
  }
  float mx[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  for (i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) mx[j] = x[i + j] > mx[j] ? x[i + j] : mx[j];
  float m = -INFINITY;
  for (int j = 0; j < 8; j++) m = mx[j] > m ? mx[j] : m;
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  if (m == -INFINITY) { /* nothing left to see (or no keys): zeros */
    memset(row + j0, 0, sizeof(float) * (size_t)(j1 - j0));
    return;
  }
  float sm[8] = {0};
  for (i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) {
      x[i + j] = gpux__exp_neg(x[i + j] - m);
      sm[j] += x[i + j];
    }
  float sum = ((sm[0] + sm[4]) + (sm[1] + sm[5])) + ((sm[2] + sm[6]) + (sm[3] + sm[7]));
  for (; i < n; i++) {
    x[i] = gpux__exp_neg(x[i] - m);
    sum += x[i];
  }
  float inv = 1.0f / sum;
  FOR8(k, n, x[k] *= inv);
  if (lo > j0) memset(row + j0, 0, sizeof(float) * (size_t)(lo - j0));
  if (j1 > hi) memset(row + hi, 0, sizeof(float) * (size_t)(j1 - hi));
}

#if defined(__GNUC__) && defined(__x86_64__)
#define ROW16 1

/* attn_row_f32 on 16 lanes with FMAs, the scale applied here (Q is not scaled first), but for
 * the division: x = scale * row + mask on [lo, hi), its max, e = exp(x - max) stored, and
 * 1 / sum e returned, which the caller applies to the row's output (Dv values, not the T
 * probabilities: P V / sum is P / sum V up to rounding); zeros in the rest of [j0, j1), and in
 * all of it when every position is -inf (returning 0). x is made twice, for the max and for e,
 * rather than stored between: one pass over the row less. */
__attribute__((target("avx512f,fma"))) static float attn_row16(float *row, const float *mask, float scale, int64_t j0,
                                                                 int64_t j1, int64_t lo, int64_t hi) {
  int64_t n = hi - lo, i;
  float *x = row + lo;
  const float *mk = mask ? mask + lo : NULL;
  const __m512 vs = _mm512_set1_ps(scale);
#define SCORE(V, I, K) (mk ? _mm512_fmadd_ps(V, vs, _mm512_maskz_loadu_ps(K, mk + (I))) : _mm512_mul_ps(V, vs))
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
  for (i = 0; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(m0, SCORE(_mm512_loadu_ps(x + i), i, 0xffff));
    m1 = _mm512_max_ps(m1, SCORE(_mm512_loadu_ps(x + i + 16), i + 16, 0xffff));
  }
  for (; i < n; i += 16) {
    __mmask16 k = gpux__lanes16(n - i);
    m0 = _mm512_mask_max_ps(m0, k, m0, SCORE(_mm512_maskz_loadu_ps(k, x + i), i, k));
  }
  float m = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  if (m == -INFINITY) { /* nothing left to see (or no keys): zeros */
    memset(row + j0, 0, sizeof(float) * (size_t)(j1 - j0));
    return 0.0f;
  }
  const __m512 vm = _mm512_set1_ps(m);
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  for (i = 0; i + 32 <= n; i += 32) {
    __m512 e0 = gpux__exp_neg16(_mm512_sub_ps(SCORE(_mm512_loadu_ps(x + i), i, 0xffff), vm));
    __m512 e1 = gpux__exp_neg16(_mm512_sub_ps(SCORE(_mm512_loadu_ps(x + i + 16), i + 16, 0xffff), vm));
    _mm512_storeu_ps(x + i, e0), _mm512_storeu_ps(x + i + 16, e1);
    s0 = _mm512_add_ps(s0, e0), s1 = _mm512_add_ps(s1, e1);
  }
  for (; i < n; i += 16) {
    __mmask16 k = gpux__lanes16(n - i);
    __m512 e = _mm512_maskz_mov_ps(k, gpux__exp_neg16(_mm512_sub_ps(SCORE(_mm512_maskz_loadu_ps(k, x + i), i, k), vm)));
    _mm512_mask_storeu_ps(x + i, k, e);
    s0 = _mm512_add_ps(s0, e);
  }
#undef SCORE
  if (lo > j0) memset(row + j0, 0, sizeof(float) * (size_t)(lo - j0));
  if (j1 > hi) memset(row + hi, 0, sizeof(float) * (size_t)(j1 - hi));
  return 1.0f / _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* y[r * ldy + 0:n] *= inv[r] for r < rows: the softmax's division on the output rows. */
__attribute__((target("avx512f"))) static void attn_scale_rows(float *y, int64_t ldy, int64_t rows, int64_t n,
                                                                 const float *inv) {
  for (int64_t r = 0; r < rows; r++) {
    const __m512 v = _mm512_set1_ps(inv[r]);
    float *yr = y + r * ldy;
    for (int64_t i = 0; i < n; i += 16) {
      __mmask16 k = gpux__lanes16(n - i);
      _mm512_mask_storeu_ps(yr + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, yr + i), v));
    }
  }
}
#else
#define ROW16 0
#endif

#define ATTN_MAX_ROWS 128

_Atomic long long gpux__attention_kv_strided;

/* K^T and V of (batch, KV head) [begin, end) laid out for the micro-kernels, once per run. */
static void attn_pack(void *ctx, int64_t begin, int64_t end) {
  attn_job *a = ctx;
  gpux__sgemm_b p;
  if (a->kv3) gpux__attention_kv_strided += end - begin;
  for (int64_t bh = begin; bh < end; bh++) {
    int64_t b = bh / a->Hkv, h = bh % a->Hkv, T = a->T, D = a->D, Dv = a->Dv, H = a->Hkv;
    if (a->kv3) { /* head h's columns of [B, T, H * D], rows H * D apart */
      gpux__sgemm_pack_into(&p, a->kpack + bh * a->kpf, a->ks + b * T * H * D + h * D, H * D, 1, D, T);
      gpux__sgemm_pack_into(&p, a->vpack + bh * a->vpf, a->v + b * T * H * Dv + h * Dv, H * Dv, 0, T, Dv);
    } else {
      gpux__sgemm_pack_into(&p, a->kpack + bh * a->kpf, a->ks + bh * T * D, D, 1, D, T);
      gpux__sgemm_pack_into(&p, a->vpack + bh * a->vpf, a->v + bh * T * Dv, Dv, 0, T, Dv);
    }
  }
}

/* Tasks [begin, end): each is a block of the rows (query head g of the group, query i) that
 * share one (batch, KV head), so grouped heads read their K and V once. Only the key columns
 * [j0, j1) that some row of the block can see are computed, unless qk_matmul_output wants them
 * all. The hot loop. */
static void attn_tasks(void *ctx, int64_t begin, int64_t end) {
  attn_job *a = ctx;
  int64_t T = a->T, D = a->D, Dv = a->Dv, group = a->Hq / a->Hkv;
  /* scratch: scores [rows, ldS], the block's Q rows [rows, D] and Y rows [rows, Dv]; ldS is T
   * rounded up to whole lines of 16 floats on the packed path, so that the register blocks'
   * stores, the row passes and the second product's rows of A do not straddle lines (T = 197 in
   * ViT-B/16) */
  int64_t ldS = a->packed ? (T + 15) / 16 * 16 : T;
  float *s = aligned_alloc(64, (sizeof(float) * (size_t)GPUX__MAX(1, a->rows * (ldS + D + Dv)) + 63) / 64 * 64);
  if (!s) {
    a->failed = 1;
    return;
  }
  float *qb0 = s + a->rows * ldS, *yb0 = qb0 + a->rows * D;
  for (int64_t task = begin; task < end; task++) {
    int64_t bk = task / a->blocks, blk = task % a->blocks;
    int64_t b = bk / a->Hkv, kvh = bk % a->Hkv;
    int64_t r0 = blk * a->rows, n = GPUX__MIN(group * a->Sq, r0 + a->rows) - r0;
    const float *kp = a->ks + (b * a->Hkv + kvh) * T * D, *vp = a->v + (b * a->Hkv + kvh) * T * Dv;
    gpux__sgemm_b kpk = {.k = D, .n = T, .nr = a->nr, .data = a->kpack ? a->kpack + bk * a->kpf : NULL};
    gpux__sgemm_b vpk = {.k = T, .n = Dv, .nr = a->nr, .data = a->vpack ? a->vpack + bk * a->vpf : NULL};
    int64_t hs[ATTN_MAX_ROWS], is[ATTN_MAX_ROWS], yoff[ATTN_MAX_ROWS], lo[ATTN_MAX_ROWS], hi[ATTN_MAX_ROWS];
    float inv[ATTN_MAX_ROWS]; /* with attn_row16: each row's 1 / sum, applied to its output */
    int64_t j0 = T, j1 = 0;
    /* with attn_row16 (the scale applied to the scores), the block's Q rows are read and its Y
     * rows written in place where they are evenly spaced: always in [B, H, S, D] (a group's
     * heads are consecutive), within one head in [B, S, H * D] */
    int in_place = a->row16 && (!a->three_d || r0 / a->Sq == (r0 + n - 1) / a->Sq);
    float *qb = qb0, *yb = yb0;
    int64_t ldq = D, ldy = Dv;
    for (int64_t r = 0; r < n; r++) {
      int64_t h = kvh * group + (r0 + r) / a->Sq, i = (r0 + r) % a->Sq;
      int64_t qoff = a->three_d ? ((b * a->Sq + i) * a->Hq + h) * D : ((b * a->Hq + h) * a->Sq + i) * D;
      hs[r] = h;
      is[r] = i;
      yoff[r] = a->three_d ? ((b * a->Sq + i) * a->Hq + h) * Dv : ((b * a->Hq + h) * a->Sq + i) * Dv;
      if (in_place && r == 0) {
        qb = (float *)a->q + qoff, yb = a->y + yoff[0];
        ldq = a->three_d ? a->Hq * D : D, ldy = a->three_d ? a->Hq * Dv : Dv;
      } else if (in_place) {
      } else if (a->packed && !a->row16) { /* the kernels have no alpha: the scale goes on Q */
        for (int64_t d = 0; d < D; d++) qb[r * D + d] = a->q[qoff + d] * a->scale;
      } else {
        memcpy(qb + r * D, a->q + qoff, sizeof(float) * (size_t)D);
      }
      attn_row_range(a, b, i, &lo[r], &hi[r]);
      if (hi[r] > lo[r]) {
        j0 = GPUX__MIN(j0, lo[r]);
        j1 = GPUX__MAX(j1, hi[r]);
      }
    }
    if (a->qk) {
      j0 = 0;
      j1 = T;
    }
    if (j1 <= j0) { /* every row fully masked */
      for (int64_t r = 0; r < n; r++) memset(a->y + yoff[r], 0, sizeof(float) * (size_t)Dv);
      continue;
    }
    int64_t w = j1 - j0;
    /* scores[:, j0:j1] = scale * Q K[j0:j1]^T (with attn_row16: Q K[j0:j1]^T, scaled there) */
    if (a->packed)
      gpux__sgemm_run_part(n, qb, ldq, &kpk, 0, D, j0 / a->nr * a->nr, j1, s, ldS);
    else if (D > 0 && n == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)w, (int)D, a->scale, kp + j0 * D, (int)D, qb, 1, 0.0f, s + j0, 1);
    else if (D > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)w, (int)D, a->scale, qb, (int)D, kp + j0 * D,
                  (int)D, 0.0f, s + j0, (int)ldS);
    else
      for (int64_t r = 0; r < n; r++) memset(s + r * ldS + j0, 0, sizeof(float) * (size_t)w);
    for (int64_t r = 0; r < n && a->plain; r++) { /* the float32 hot loop */
      const float *mrow = a->mask ? a->mask + b * a->mstr[0] + hs[r] * a->mstr[1] + is[r] * a->mstr[2] : NULL;
      int64_t hi_r = a->mask ? GPUX__MIN(hi[r], a->mask_t) : hi[r]; /* -inf past a short mask */
#if ROW16
      if (a->row16) {
        inv[r] = attn_row16(s + r * ldS, mrow, a->scale, j0, j1, lo[r], GPUX__MAX(lo[r], hi_r));
        continue;
      }
#endif
      attn_row_f32(s + r * ldS, mrow, j0, j1, lo[r], GPUX__MAX(lo[r], hi_r));
    }
    for (int64_t r = 0; r < n && !a->plain; r++) {
      int64_t h = hs[r], i = is[r];
      float *row = s + r * ldS;
      float *qk = a->qk ? a->qk + ((b * a->Hq + h) * a->Sq + i) * T : NULL;
      if (a->bf16)
        for (int64_t j = j0; j < j1; j++) row[j] = bf16_round(row[j]);
      if (qk && a->mode == 0) memcpy(qk, row, sizeof(float) * (size_t)T);
      if (a->softcap > 0 && a->bf16)
        for (int64_t j = j0; j < j1; j++) row[j] = bf16_round(a->softcap * bf16_round(tanhf(bf16_round(row[j] / a->softcap))));
      else if (a->softcap > 0) /* before the mask, so -inf stays -inf */
        for (int64_t j = j0; j < j1; j++) row[j] = a->softcap * tanhf(row[j] / a->softcap);
      if (qk && a->mode == 1) memcpy(qk, row, sizeof(float) * (size_t)T);
      int any = attn_bias_row(a, b, h, i, lo[r], hi[r], row, j0, j1);
      if (qk && a->mode == 2) memcpy(qk, row, sizeof(float) * (size_t)T);
      attn_softmax_row(row, j0, j1, lo[r], hi[r], any, a->bf16);
      if (qk && a->mode == 3) memcpy(qk, row, sizeof(float) * (size_t)T);
    }
    /* Y = P[:, j0:j1] V[j0:j1] (with attn_row16, then divided by the rows' sums) */
    if (a->packed) {
      gpux__sgemm_run_part(n, s, ldS, &vpk, j0, j1, 0, Dv, yb, ldy);
#if ROW16
      if (a->row16) attn_scale_rows(yb, ldy, n, Dv, inv);
#endif
    }
    else if (Dv > 0 && n == 1)
      cblas_sgemv(CblasRowMajor, CblasTrans, (int)w, (int)Dv, 1.0f, vp + j0 * Dv, (int)Dv, s + j0, 1, 0.0f, yb, 1);
    else if (Dv > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)Dv, (int)w, 1.0f, s + j0, (int)ldS, vp + j0 * Dv,
                  (int)Dv, 0.0f, yb, (int)Dv);
    for (int64_t r = 0; r < n && !in_place; r++) memcpy(a->y + yoff[r], yb + r * Dv, sizeof(float) * (size_t)Dv);
  }
  free(s);
}

/* K or V with the past prepended, as float32 [B, H, P + S, D] into out: the present output's own
 * buffer when it is float32 and wanted, else a new one (*owned). cur is [B, H, S, D] or, when
 * three_d, [B, S, H * D]. */
static float *gather_kv(const gpux_tensor *past, const gpux_tensor *cur, gpux_tensor *present, int three_d,
                        int64_t B, int64_t H, int64_t P, int64_t S, int64_t D, float **owned) {
  int64_t T = P + S;
  float *out;
  *owned = NULL;
  if (present && present->dtype == GPUX_DT_FLOAT) out = present->data;
  else if (!(out = *owned = malloc(sizeof(float) * (size_t)GPUX__MAX(1, B * H * T * D)))) return NULL;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      float *dst = out + (b * H + h) * T * D;
      if (P > 0) load_f32(past, (b * H + h) * P * D, P * D, dst);
      for (int64_t t = 0; t < S; t++) {
        int64_t src = three_d ? ((b * S + t) * H + h) * D : ((b * H + h) * S + t) * D;
        load_f32(cur, src, D, dst + (P + t) * D);
      }
    }
  return out;
}

static int op_attention(gpux__kctx *k) {
  const gpux_tensor *Q = IN(0), *K = IN(1), *V = IN(2), *mask = IN(3), *past_k = IN(4), *past_v = IN(5),
                    *nonpad = IN(6);
  if (!Q || !K || !V) return gpux__kerr(k, GPUX_E_INVALID, "Q, K and V are required");
  if (!is_float_type(Q->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "Q of type %s", gpux_dtype_name(Q->dtype));
  if (K->dtype != Q->dtype || V->dtype != Q->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "Q, K and V must share a type (%s, %s, %s)", gpux_dtype_name(Q->dtype),
                      gpux_dtype_name(K->dtype), gpux_dtype_name(V->dtype));
  if (Q->ndim != K->ndim || Q->ndim != V->ndim || (Q->ndim != 3 && Q->ndim != 4))
    return gpux__kerr(k, GPUX_E_SHAPE, "Q, K and V must all be 3-D or all 4-D (ranks %d, %d, %d)", Q->ndim, K->ndim, V->ndim);
  attn_job a;
  memset(&a, 0, sizeof a);
  a.three_d = Q->ndim == 3;
  a.B = Q->dims[0];
  int64_t Skv;
  if (a.three_d) {
    a.Hq = gpux__attr_int(k, "q_num_heads", 0);
    a.Hkv = gpux__attr_int(k, "kv_num_heads", 0);
    if (a.Hq <= 0 || a.Hkv <= 0)
      return gpux__kerr(k, GPUX_E_INVALID, "3-D inputs need positive q_num_heads and kv_num_heads");
    if (Q->dims[2] % a.Hq || K->dims[2] % a.Hkv || V->dims[2] % a.Hkv)
      return gpux__kerr(k, GPUX_E_SHAPE, "hidden sizes %lld, %lld, %lld do not split into %lld / %lld heads",
                        (long long)Q->dims[2], (long long)K->dims[2], (long long)V->dims[2], (long long)a.Hq, (long long)a.Hkv);
    a.Sq = Q->dims[1];
    a.D = Q->dims[2] / a.Hq;
    Skv = K->dims[1];
    if (K->dims[2] / a.Hkv != a.D) return gpux__kerr(k, GPUX_E_SHAPE, "Q and K head sizes differ");
    if (V->dims[1] != Skv) return gpux__kerr(k, GPUX_E_SHAPE, "K and V sequence lengths differ");
    a.Dv = V->dims[2] / a.Hkv;
  } else {
    a.Hq = Q->dims[1];
    a.Sq = Q->dims[2];
    a.D = Q->dims[3];
    a.Hkv = K->dims[1];
    Skv = K->dims[2];
    if (K->dims[3] != a.D) return gpux__kerr(k, GPUX_E_SHAPE, "Q head size %lld, K head size %lld", (long long)a.D, (long long)K->dims[3]);
    if (V->dims[1] != a.Hkv || V->dims[2] != Skv) return gpux__kerr(k, GPUX_E_SHAPE, "K and V heads or lengths differ");
    a.Dv = V->dims[3];
  }
  if (K->dims[0] != a.B || V->dims[0] != a.B) return gpux__kerr(k, GPUX_E_SHAPE, "Q, K and V batch sizes differ");
  if (a.Hkv <= 0 || a.Hq % a.Hkv)
    return gpux__kerr(k, GPUX_E_SHAPE, "%lld query heads are not a multiple of %lld KV heads", (long long)a.Hq, (long long)a.Hkv);
  /* KV cache */
  if (!past_k != !past_v) return gpux__kerr(k, GPUX_E_INVALID, "past_key and past_value go together");
  if (past_k) {
    if (past_k->ndim != 4 || past_v->ndim != 4 || past_k->dtype != Q->dtype || past_v->dtype != Q->dtype)
      return gpux__kerr(k, GPUX_E_SHAPE, "past_key and past_value must be 4-D of Q's type");
    a.P = past_k->dims[2];
    if (past_k->dims[0] != a.B || past_k->dims[1] != a.Hkv || past_k->dims[3] != a.D || past_v->dims[0] != a.B ||
        past_v->dims[1] != a.Hkv || past_v->dims[2] != a.P || past_v->dims[3] != a.Dv)
      return gpux__kerr(k, GPUX_E_SHAPE, "past_key/past_value shapes do not match [%lld, %lld, P, %lld/%lld]", (long long)a.B,
                        (long long)a.Hkv, (long long)a.D, (long long)a.Dv);
    a.has_past = 1;
  }
  a.T = a.P + Skv;
  /* attributes */
  a.scale = gpux__has_attr(k, "scale") ? gpux__attr_float(k, "scale", 1.0f) : (a.D > 0 ? 1.0f / sqrtf((float)a.D) : 1.0f);
  a.softcap = gpux__attr_float(k, "softcap", 0.0f);
  a.causal = gpux__attr_int(k, "is_causal", 0) != 0;
  a.mode = (int)gpux__attr_int(k, "qk_matmul_output_mode", 0);
  /* windows and lengths are clamped to +-2^40 so position arithmetic cannot overflow */
  const int64_t far = (int64_t)1 << 40;
  a.left = GPUX__MIN(gpux__attr_int(k, "left_window_size", -1), far);
  a.right = GPUX__MIN(gpux__attr_int(k, "right_window_size", -1), far);
  if (a.left < 0) a.left = -1;
  if (a.right < 0) a.right = -1;
  if (a.mode < 0 || a.mode > 3) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "qk_matmul_output_mode %d", a.mode);
  int prec = (int)gpux__attr_int(k, "softmax_precision", 0);
  if (prec && !is_float_type(prec)) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "softmax_precision %d", prec);
  /* mask: broadcast to [B, Hq, Sq, T]; a shorter last dim is padded with -inf */
  int64_t mdims[4] = {1, 1, 1, 1};
  if (mask) {
    if (mask->ndim < 1 || mask->ndim > 4) return gpux__kerr(k, GPUX_E_SHAPE, "attn_mask of rank %d", mask->ndim);
    if (mask->dtype != GPUX_DT_BOOL && !is_float_type(mask->dtype))
      return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "attn_mask of type %s", gpux_dtype_name(mask->dtype));
    for (int d = 0; d < mask->ndim; d++) mdims[4 - mask->ndim + d] = mask->dims[d];
    int64_t want[3] = {a.B, a.Hq, a.Sq};
    for (int d = 0; d < 3; d++)
      if (mdims[d] != 1 && mdims[d] != want[d])
        return gpux__kerr(k, GPUX_E_SHAPE, "attn_mask dim %d is %lld, expected 1 or %lld", d - (4 - mask->ndim),
                          (long long)mdims[d], (long long)want[d]);
    if (mdims[3] > a.T)
      return gpux__kerr(k, GPUX_E_SHAPE, "attn_mask covers %lld keys, more than the %lld there are", (long long)mdims[3], (long long)a.T);
    a.mask_t = mdims[3];
    a.mstr[2] = mdims[2] == 1 ? 0 : mdims[3];
    a.mstr[1] = mdims[1] == 1 ? 0 : mdims[2] * mdims[3];
    a.mstr[0] = mdims[0] == 1 ? 0 : mdims[1] * mdims[2] * mdims[3];
  }
  if (nonpad) {
    if (nonpad->ndim != 1 || nonpad->dims[0] != a.B || (nonpad->dtype != GPUX_DT_INT64 && nonpad->dtype != GPUX_DT_INT32))
      return gpux__kerr(k, GPUX_E_SHAPE, "nonpad_kv_seqlen must be an integer vector of %lld lengths", (long long)a.B);
  }
  /* outputs */
  int64_t ydims[4], kvdims[4] = {a.B, a.Hkv, a.T, a.D}, vdims[4] = {a.B, a.Hkv, a.T, a.Dv}, qkdims[4] = {a.B, a.Hq, a.Sq, a.T};
  if (a.three_d) {
    ydims[0] = a.B; ydims[1] = a.Sq; ydims[2] = a.Hq * a.Dv;
  } else {
    ydims[0] = a.B; ydims[1] = a.Hq; ydims[2] = a.Sq; ydims[3] = a.Dv;
  }
  gpux_tensor *Y = gpux__out(k, 0, Q->dtype, Q->ndim, ydims);
  if (!Y) return k->status;
  gpux_tensor *PK = NULL, *PV = NULL, *QK = NULL;
  if (OUTPUT_WANTED(1) && !(PK = gpux__out(k, 1, K->dtype, 4, kvdims))) return k->status;
  if (OUTPUT_WANTED(2) && !(PV = gpux__out(k, 2, V->dtype, 4, vdims))) return k->status;
  if (OUTPUT_WANTED(3) && !(QK = gpux__out(k, 3, Q->dtype, 4, qkdims))) return k->status;
  if (k->shape_only) return 0;
  int rc = blas_ok(k, a.T, a.D, a.Dv);
  if (rc) return rc;

  float *q_own = NULL, *k_own = NULL, *ks_own = NULL, *v_own = NULL, *mask_own = NULL, *y_own = NULL, *qk_own = NULL;
  int64_t *nonpad_v = NULL;
  a.q = f32_view(k, Q, &q_own);
  if (!a.q) goto fail;
  /* float32 K and V without a past are read where they are: 4-D ones as they are, 3-D ones by
   * the packing (attn_pack) when the products will run packed and no present output wants them
   * gathered; the conditions here are those of a.packed below, bf16 aside (not float32) */
  int64_t group_rows = a.Hq / a.Hkv * a.Sq;
  a.nr = gpux__sgemm_nr();
  a.kv3 = a.three_d && Q->dtype == GPUX_DT_FLOAT && !past_k && !PK && !PV && !QK && !(a.softcap > 0) && a.nr && a.D > 0 &&
          a.Dv > 0 && a.T > 0 && group_rows >= 6;
  if (Q->dtype == GPUX_DT_FLOAT && !past_k && (!a.three_d || a.kv3)) {
    a.k = K->data;
    a.v = V->data;
  } else {
    a.k = gather_kv(past_k, K, PK, a.three_d, a.B, a.Hkv, a.P, Skv, a.D, &k_own);
    a.v = gather_kv(past_v, V, PV, a.three_d, a.B, a.Hkv, a.P, Skv, a.Dv, &v_own);
    if (!a.k || !a.v) { gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto fail; }
  }
  if (mask) {
    int64_t mc = gpux_tensor_count(mask);
    if (mask->dtype == GPUX_DT_BOOL) {
      mask_own = malloc(sizeof(float) * (size_t)GPUX__MAX(1, mc));
      if (!mask_own) { gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto fail; }
      for (int64_t i = 0; i < mc; i++) mask_own[i] = ((const uint8_t *)mask->data)[i] ? 0.0f : -INFINITY;
      a.mask = mask_own;
    } else if (!(a.mask = f32_view(k, mask, &mask_own))) {
      goto fail;
    }
  }
  /* bfloat16 without a wider softmax_precision: the function body rounds each step to
   * bfloat16, and the expected outputs do too; scale Q and K by sqrt(scale) as it does */
  a.ks = a.k;
  a.bf16 = Q->dtype == GPUX_DT_BFLOAT16 && (prec == 0 || prec == GPUX_DT_BFLOAT16);
  if (a.bf16) {
    float s16 = bf16_round(sqrtf(a.scale));
    int64_t nq = gpux_tensor_count(Q), nk = a.B * a.Hkv * a.T * a.D;
    if (!q_own || !(ks_own = malloc(sizeof(float) * (size_t)GPUX__MAX(1, nk)))) { gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto fail; }
    for (int64_t i = 0; i < nq; i++) q_own[i] = bf16_round(q_own[i] * s16);
    for (int64_t i = 0; i < nk; i++) ks_own[i] = bf16_round(a.k[i] * s16);
    a.ks = ks_own;
    a.scale = 1.0f;
  }
  if (nonpad) {
    nonpad_v = malloc(sizeof(int64_t) * (size_t)GPUX__MAX(1, a.B));
    if (!nonpad_v) { gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto fail; }
    for (int64_t b = 0; b < a.B; b++) {
      int64_t len = gpux__load_i64(nonpad->dtype, nonpad->data, b);
      nonpad_v[b] = GPUX__MAX(-far, GPUX__MIN(far, len));
    }
    a.nonpad = nonpad_v;
  }
  int64_t ny = gpux_tensor_count(Y), nqk = QK ? gpux_tensor_count(QK) : 0;
  if (Y->dtype == GPUX_DT_FLOAT) a.y = Y->data;
  else if (!(a.y = y_own = malloc(sizeof(float) * (size_t)GPUX__MAX(1, ny)))) { gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto fail; }
  if (QK && QK->dtype == GPUX_DT_FLOAT) a.qk = QK->data;
  else if (QK && !(a.qk = qk_own = malloc(sizeof(float) * (size_t)GPUX__MAX(1, nqk)))) { gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto fail; }

  a.plain = !a.bf16 && !(a.softcap > 0) && !a.qk;
  /* blocks of query rows small enough that their scores stay in cache */
  a.rows = GPUX__MAX(1, GPUX__MIN(ATTN_MAX_ROWS, 65536 / GPUX__MAX(1, a.T)));
  if (a.causal || a.right >= 0) /* smaller blocks see fewer keys past their last row */
    a.rows = GPUX__MIN(a.rows, 32);
  a.blocks = (group_rows + a.rows - 1) / a.rows;
  int64_t tasks = a.B * a.Hkv * a.blocks;
  /* with blocks of 6 rows or more, K^T and V packed once for the micro-kernels (into the calling
   * thread's scratch); single query rows (decoding) stay on BLAS's matrix-vector products */
  a.packed = a.plain && a.nr && a.D > 0 && a.Dv > 0 && a.T > 0 && group_rows >= 6;
#if ROW16
  a.row16 = a.packed && a.nr == 64 && gpux__have_avx512_fma();
#endif
  if (a.kv3 && !a.packed) { /* cannot happen: kv3 asks for what packed does */
    gpux__kerr(k, GPUX_E_INVALID, "3-D keys read in place off the packed path");
    goto fail;
  }
  if (a.packed) {
    a.kpf = gpux__sgemm_packed_floats(a.D, a.T);
    a.vpf = gpux__sgemm_packed_floats(a.T, a.Dv);
    int64_t bh = a.B * a.Hkv;
    if (!(a.kpack = gpux__scratch(GPUX__SCRATCH_ATTENTION, sizeof(float) * (size_t)(bh * (a.kpf + a.vpf))))) {
      gpux__kerr(k, GPUX_E_NOMEM, "out of memory for packed keys and values");
      goto fail;
    }
    a.vpack = a.kpack + bh * a.kpf;
    gpux__parallel_for(bh, 1, attn_pack, &a);
  }
  if (tasks > 1 && a.packed) { /* no BLAS in the tasks */
    gpux__parallel_for(tasks, 1, attn_tasks, &a);
  } else if (tasks > 1) {
    int saved = openblas_get_num_threads();
    if (saved > 1) openblas_set_num_threads(1);
    gpux__parallel_for(tasks, 1, attn_tasks, &a);
    if (saved > 1) openblas_set_num_threads(saved);
  } else if (tasks == 1) {
    attn_tasks(&a, 0, 1);
  }
  if (a.failed) { gpux__kerr(k, GPUX_E_NOMEM, "out of memory for attention scores"); goto fail; }
  if (y_own) store_f32(Y, 0, ny, y_own);
  if (qk_own) store_f32(QK, 0, nqk, qk_own);
  if (PK && PK->data != a.k) store_f32(PK, 0, gpux_tensor_count(PK), a.k);
  if (PV && PV->data != a.v) store_f32(PV, 0, gpux_tensor_count(PV), a.v);
  rc = 0;
  goto done;
fail:
  rc = k->status ? k->status : GPUX_E_NOMEM;
done:
  free(q_own);
  free(k_own);
  free(ks_own);
  free(v_own);
  free(mask_own);
  free(y_own);
  free(qk_own);
  free(nonpad_v);
  return rc;
}

/* ---- RotaryEmbedding ---- */

static int op_rotary_embedding(gpux__kctx *k) {
  const gpux_tensor *X = IN(0), *cosc = IN(1), *sinc = IN(2), *pos = IN(3);
  if (!X || !cosc || !sinc) return gpux__kerr(k, GPUX_E_INVALID, "input, cos_cache and sin_cache are required");
  if (!is_float_type(X->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input of type %s", gpux_dtype_name(X->dtype));
  if (!is_float_type(cosc->dtype) || !is_float_type(sinc->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "cos_cache/sin_cache must be floating");
  int64_t B, H, S, D;
  int three_d = X->ndim == 3;
  if (X->ndim == 4) {
    B = X->dims[0]; H = X->dims[1]; S = X->dims[2]; D = X->dims[3];
  } else if (three_d) {
    H = gpux__attr_int(k, "num_heads", 0);
    if (H <= 0) return gpux__kerr(k, GPUX_E_INVALID, "a 3-D input needs num_heads");
    if (X->dims[2] % H) return gpux__kerr(k, GPUX_E_SHAPE, "hidden size %lld does not split into %lld heads", (long long)X->dims[2], (long long)H);
    B = X->dims[0]; S = X->dims[1]; D = X->dims[2] / H;
  } else {
    return gpux__kerr(k, GPUX_E_SHAPE, "input must be 3-D or 4-D, got rank %d", X->ndim);
  }
  int64_t rot = gpux__attr_int(k, "rotary_embedding_dim", 0);
  if (rot == 0) rot = D;
  if (rot < 0 || rot > D || rot % 2) return gpux__kerr(k, GPUX_E_INVALID, "rotary_embedding_dim %lld for head size %lld", (long long)rot, (long long)D);
  int64_t half = rot / 2;
  int interleaved = gpux__attr_int(k, "interleaved", 0) != 0;
  /* caches: [max_position, half] with position_ids [B, S], else [B, S, half] */
  int64_t max_pos = 0;
  if (pos) {
    if (pos->ndim != 2 || pos->dims[0] != B || pos->dims[1] != S)
      return gpux__kerr(k, GPUX_E_SHAPE, "position_ids must be [%lld, %lld]", (long long)B, (long long)S);
    if (cosc->ndim != 2 || sinc->ndim != 2 || cosc->dims[1] != half || sinc->dims[1] != half || sinc->dims[0] != cosc->dims[0])
      return gpux__kerr(k, GPUX_E_SHAPE, "cos_cache/sin_cache must be [max_position, %lld]", (long long)half);
    max_pos = cosc->dims[0];
  } else {
    if (cosc->ndim != 3 || sinc->ndim != 3 || cosc->dims[0] != B || cosc->dims[1] != S || cosc->dims[2] != half ||
        sinc->dims[0] != B || sinc->dims[1] != S || sinc->dims[2] != half)
      return gpux__kerr(k, GPUX_E_SHAPE, "without position_ids, cos_cache/sin_cache must be [%lld, %lld, %lld]", (long long)B,
                        (long long)S, (long long)half);
  }
  gpux_tensor *Y = gpux__out(k, 0, X->dtype, X->ndim, X->dims);
  if (!Y) return k->status;
  if (k->shape_only) return 0;
  float *x = malloc(sizeof(float) * (size_t)GPUX__MAX(1, D)), *o = malloc(sizeof(float) * (size_t)GPUX__MAX(1, D));
  float *c = malloc(sizeof(float) * (size_t)GPUX__MAX(1, half)), *s = malloc(sizeof(float) * (size_t)GPUX__MAX(1, half));
  int rc = 0;
  if (!x || !o || !c || !s) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  for (int64_t b = 0; b < B && !rc; b++)
    for (int64_t t = 0; t < S; t++) {
      int64_t crow;
      if (pos) {
        int64_t p = gpux__load_i64(pos->dtype, pos->data, b * S + t);
        if (p < 0 || p >= max_pos) { rc = gpux__kerr(k, GPUX_E_INVALID, "position id %lld outside [0, %lld)", (long long)p, (long long)max_pos); break; }
        crow = p * half;
      } else {
        crow = (b * S + t) * half;
      }
      load_f32(cosc, crow, half, c);
      load_f32(sinc, crow, half, s);
      for (int64_t h = 0; h < H; h++) {
        int64_t off = three_d ? ((b * S + t) * H + h) * D : ((b * H + h) * S + t) * D;
        load_f32(X, off, D, x);
        for (int64_t i = 0; i < half; i++) {
          int64_t i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
          float x1 = x[i1], x2 = x[i2];
          o[i1] = c[i] * x1 - s[i] * x2;
          o[i2] = s[i] * x1 + c[i] * x2;
        }
        for (int64_t i = rot; i < D; i++) o[i] = x[i];
        store_f32(Y, off, D, o);
      }
    }
done:
  free(x);
  free(o);
  free(c);
  free(s);
  return rc;
}

/* ---- SwiGLU: Swish_alpha(A) * B ---- */

typedef struct {
  const gpux_tensor *a, *b;
  gpux_tensor *y;
  float alpha;
} swiglu_job;

static void swiglu_range(void *ctx, int64_t begin, int64_t end) {
  const swiglu_job *j = ctx;
  if (j->a->dtype == GPUX_DT_FLOAT) { /* the hot loop */
    const float *a = j->a->data, *b = j->b->data;
    float *y = j->y->data;
    for (int64_t i = begin; i < end; i++) y[i] = a[i] / (1.0f + expf(-j->alpha * a[i])) * b[i];
    return;
  }
  float a[256], b[256];
  for (int64_t i = begin; i < end; i += 256) {
    int64_t n = GPUX__MIN(256, end - i);
    load_f32(j->a, i, n, a);
    load_f32(j->b, i, n, b);
    for (int64_t r = 0; r < n; r++) a[r] = a[r] / (1.0f + expf(-j->alpha * a[r])) * b[r];
    store_f32(j->y, i, n, a);
  }
}

static int op_swiglu(gpux__kctx *k) {
  const gpux_tensor *A = IN(0), *B = IN(1);
  if (!A || !B) return gpux__kerr(k, GPUX_E_INVALID, "A and B are required");
  if (!is_float_type(A->dtype) || A->dtype != B->dtype)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "A and B must share a floating type (%s, %s)", gpux_dtype_name(A->dtype),
                      gpux_dtype_name(B->dtype));
  int same = A->ndim == B->ndim;
  for (int d = 0; same && d < A->ndim; d++) same = A->dims[d] == B->dims[d];
  if (!same) return gpux__kerr(k, GPUX_E_SHAPE, "A and B must have identical shapes");
  gpux_tensor *Y = gpux__out(k, 0, A->dtype, A->ndim, A->dims);
  if (!Y) return k->status;
  if (k->shape_only) return 0;
  swiglu_job j = {A, B, Y, gpux__attr_float(k, "alpha", 1.0f)};
  gpux__parallel_for(gpux_tensor_count(A), 16384, swiglu_range, &j);
  return 0;
}

/* ---- LinearAttention: recurrent state S [d_k, d_v] per KV head ----
 * linear:      S += k v^T
 * gated:       S = exp(g) S + k v^T
 * delta:       S += k (beta (v - S^T k))^T
 * gated_delta: S = exp(g) S;  S += k (beta (v - S^T k))^T
 * and o = scale q^T S for each query head of the KV head's group. */

enum { LA_LINEAR, LA_GATED, LA_DELTA, LA_GATED_DELTA };

typedef struct {
  int64_t B, T, Hq, Hkv, dk, dv;
  int rule;
  float scale;
  const float *q, *kk, *v;     /* [B, T, Hq * dk], [B, T, Hkv * dk], [B, T, Hkv * dv] */
  const float *decay, *beta;   /* [B, T, Hkv * dg] with dg = dk or 1; [B, T, Hkv or 1]; or NULL */
  int64_t decay_w, beta_w;     /* values per token: Hkv * dg, and Hkv or 1 */
  const float *past;           /* [B, Hkv, dk, dv] or NULL */
  float *out;                  /* [B, T, Hq * dv] */
  float *state;                /* [B, Hkv, dk, dv] */
  int failed;                  /* a task could not get scratch memory */
} linattn_job;

static void linattn_heads(void *ctx, int64_t begin, int64_t end) {
  linattn_job *j = ctx;
  int64_t dk = j->dk, dv = j->dv, group = j->Hq / j->Hkv;
  float *tmp = malloc(sizeof(float) * (size_t)GPUX__MAX(1, dv)); /* [dv] */
  if (!tmp) {
    j->failed = 1;
    return;
  }
  for (int64_t bh = begin; bh < end; bh++) {
    int64_t b = bh / j->Hkv, h = bh % j->Hkv;
    float *S = j->state + bh * dk * dv;
    if (j->past) memcpy(S, j->past + bh * dk * dv, sizeof(float) * (size_t)(dk * dv));
    else memset(S, 0, sizeof(float) * (size_t)(dk * dv));
    for (int64_t t = 0; t < j->T; t++) {
      const float *kt = j->kk + ((b * j->T + t) * j->Hkv + h) * dk, *vt = j->v + ((b * j->T + t) * j->Hkv + h) * dv;
      if (j->rule == LA_GATED || j->rule == LA_GATED_DELTA) {
        int64_t per_head = j->decay_w / j->Hkv; /* dk or 1 */
        const float *g = j->decay + (b * j->T + t) * j->decay_w + h * per_head;
        for (int64_t i = 0; i < dk; i++) {
          float e = expf(g[per_head == 1 ? 0 : i]);
          for (int64_t c = 0; c < dv; c++) S[i * dv + c] *= e;
        }
      }
      const float *w = vt; /* the row written into S along k */
      if (j->rule == LA_DELTA || j->rule == LA_GATED_DELTA) {
        float beta = j->beta[(b * j->T + t) * j->beta_w + (j->beta_w == 1 ? 0 : h)];
        for (int64_t c = 0; c < dv; c++) tmp[c] = 0.0f;
        for (int64_t i = 0; i < dk; i++)
          for (int64_t c = 0; c < dv; c++) tmp[c] += S[i * dv + c] * kt[i];
        for (int64_t c = 0; c < dv; c++) tmp[c] = beta * (vt[c] - tmp[c]);
        w = tmp;
      }
      for (int64_t i = 0; i < dk; i++)
        for (int64_t c = 0; c < dv; c++) S[i * dv + c] += kt[i] * w[c];
      for (int64_t g = 0; g < group; g++) {
        int64_t hq = h * group + g;
        const float *qt = j->q + ((b * j->T + t) * j->Hq + hq) * dk;
        float *o = j->out + ((b * j->T + t) * j->Hq + hq) * dv;
        for (int64_t c = 0; c < dv; c++) o[c] = 0.0f;
        for (int64_t i = 0; i < dk; i++)
          for (int64_t c = 0; c < dv; c++) o[c] += qt[i] * S[i * dv + c];
        for (int64_t c = 0; c < dv; c++) o[c] *= j->scale;
      }
    }
  }
  free(tmp);
}

static int op_linear_attention(gpux__kctx *k) {
  const gpux_tensor *Q = IN(0), *K = IN(1), *V = IN(2), *past = IN(3), *decay = IN(4), *beta = IN(5);
  if (!Q || !K || !V) return gpux__kerr(k, GPUX_E_INVALID, "query, key and value are required");
  if (!is_float_type(Q->dtype) || K->dtype != Q->dtype || V->dtype != Q->dtype)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "query, key and value must share a floating type");
  linattn_job j;
  memset(&j, 0, sizeof j);
  const char *rule = gpux__attr_string(k, "update_rule", "gated_delta");
  if (!strcmp(rule, "linear")) j.rule = LA_LINEAR;
  else if (!strcmp(rule, "gated")) j.rule = LA_GATED;
  else if (!strcmp(rule, "delta")) j.rule = LA_DELTA;
  else if (!strcmp(rule, "gated_delta")) j.rule = LA_GATED_DELTA;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "update_rule '%s'", rule);
  j.Hq = gpux__attr_int(k, "q_num_heads", 0);
  j.Hkv = gpux__attr_int(k, "kv_num_heads", 0);
  if (j.Hq <= 0 || j.Hkv <= 0 || j.Hq % j.Hkv)
    return gpux__kerr(k, GPUX_E_INVALID, "q_num_heads %lld must be a positive multiple of kv_num_heads %lld", (long long)j.Hq, (long long)j.Hkv);
  if (Q->ndim != 3 || K->ndim != 3 || V->ndim != 3) return gpux__kerr(k, GPUX_E_SHAPE, "query, key and value must be 3-D");
  j.B = Q->dims[0];
  j.T = Q->dims[1];
  if (K->dims[0] != j.B || V->dims[0] != j.B || K->dims[1] != j.T || V->dims[1] != j.T)
    return gpux__kerr(k, GPUX_E_SHAPE, "query, key and value batch or length differ");
  if (Q->dims[2] % j.Hq || V->dims[2] % j.Hkv) return gpux__kerr(k, GPUX_E_SHAPE, "hidden sizes do not split into heads");
  j.dk = Q->dims[2] / j.Hq;
  j.dv = V->dims[2] / j.Hkv;
  if (K->dims[2] != j.Hkv * j.dk) return gpux__kerr(k, GPUX_E_SHAPE, "key hidden size %lld, expected %lld", (long long)K->dims[2], (long long)(j.Hkv * j.dk));
  int need_decay = j.rule == LA_GATED || j.rule == LA_GATED_DELTA, need_beta = j.rule == LA_DELTA || j.rule == LA_GATED_DELTA;
  if (need_decay) {
    if (!decay) return gpux__kerr(k, GPUX_E_INVALID, "update_rule '%s' needs decay", rule);
    if (decay->ndim != 3 || decay->dims[0] != j.B || decay->dims[1] != j.T || (decay->dims[2] != j.Hkv * j.dk && decay->dims[2] != j.Hkv))
      return gpux__kerr(k, GPUX_E_SHAPE, "decay must be [B, T, kv_num_heads * d_k] or [B, T, kv_num_heads]");
    j.decay_w = decay->dims[2];
  }
  if (need_beta) {
    if (!beta) return gpux__kerr(k, GPUX_E_INVALID, "update_rule '%s' needs beta", rule);
    if (beta->ndim != 3 || beta->dims[0] != j.B || beta->dims[1] != j.T || (beta->dims[2] != j.Hkv && beta->dims[2] != 1))
      return gpux__kerr(k, GPUX_E_SHAPE, "beta must be [B, T, kv_num_heads] or [B, T, 1]");
    j.beta_w = beta->dims[2];
  }
  int64_t sdims[4] = {j.B, j.Hkv, j.dk, j.dv}, odims[3] = {j.B, j.T, j.Hq * j.dv};
  if (past) {
    if (!is_float_type(past->dtype) || past->ndim != 4 || memcmp(past->dims, sdims, sizeof sdims))
      return gpux__kerr(k, GPUX_E_SHAPE, "past_state must be [%lld, %lld, %lld, %lld]", (long long)j.B, (long long)j.Hkv,
                        (long long)j.dk, (long long)j.dv);
  }
  j.scale = gpux__has_attr(k, "scale") ? gpux__attr_float(k, "scale", 1.0f) : (j.dk > 0 ? 1.0f / sqrtf((float)j.dk) : 1.0f);
  gpux_tensor *O = gpux__out(k, 0, Q->dtype, 3, odims);
  if (!O) return k->status;
  gpux_tensor *PS = NULL;
  if (OUTPUT_WANTED(1) && !(PS = gpux__out(k, 1, past ? past->dtype : Q->dtype, 4, sdims))) return k->status;
  if (k->shape_only) return 0;
  float *own[6] = {0}, *out = NULL, *state = NULL;
  int rc = 0;
  if (!(j.q = f32_view(k, Q, &own[0])) || !(j.kk = f32_view(k, K, &own[1])) || !(j.v = f32_view(k, V, &own[2])) ||
      (past && !(j.past = f32_view(k, past, &own[3]))) || (need_decay && !(j.decay = f32_view(k, decay, &own[4]))) ||
      (need_beta && !(j.beta = f32_view(k, beta, &own[5])))) {
    rc = k->status;
    goto done;
  }
  out = malloc(sizeof(float) * (size_t)GPUX__MAX(1, gpux_tensor_count(O)));
  state = malloc(sizeof(float) * (size_t)GPUX__MAX(1, j.B * j.Hkv * j.dk * j.dv));
  if (!out || !state) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  j.out = out;
  j.state = state;
  gpux__parallel_for(j.B * j.Hkv, 1, linattn_heads, &j);
  if (j.failed) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  store_f32(O, 0, gpux_tensor_count(O), out);
  if (PS) store_f32(PS, 0, gpux_tensor_count(PS), state);
done:
  for (int i = 0; i < 6; i++) free(own[i]);
  free(out);
  free(state);
  return rc;
}

/* ---- FlexAttention (ai.onnx.preview): scores -> score_mod -> softmax -> prob_mod -> x V ----
 * Computed in double; the score_mod/prob_mod subgraphs see float32 tensors (double for double
 * inputs), as the function body's casts do. */

/* Runs a [B, H, L, S] modifier subgraph on buf in place. */
static int flex_modify(gpux__kctx *k, const gpux__graph *body, const char *what, int dtype, const int64_t dims[4], double *buf) {
  if (!k->run_subgraph) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "%s needs a subgraph runner", what);
  int64_t n = gpux__shape_count(4, dims);
  gpux_tensor in, out;
  memset(&out, 0, sizeof out);
  int rc = gpux_tensor_init(&in, dtype, 4, dims);
  if (rc) return gpux__kerr(k, rc, "%s: %s", what, gpux_last_error());
  for (int64_t i = 0; i < n; i++) gpux__store_f64(dtype, in.data, i, buf[i]);
  rc = k->run_subgraph(k, body, &in, 1, &out, 1);
  if (!rc) {
    int same = out.kind == GPUX_KIND_TENSOR && out.ndim == 4 && gpux__dtype_is_float(out.dtype);
    for (int d = 0; same && d < 4; d++) same = out.dims[d] == dims[d];
    if (!same) rc = gpux__kerr(k, GPUX_E_SHAPE, "%s must return a floating tensor of the scores' shape", what);
    else
      for (int64_t i = 0; i < n; i++) buf[i] = gpux__load_f64(out.dtype, out.data, i);
  } else if (!k->status) {
    k->status = rc;
  }
  gpux_tensor_free(&in);
  gpux_tensor_free(&out);
  return rc;
}

static double *f64_copy(const gpux_tensor *t) {
  int64_t n = gpux_tensor_count(t);
  double *d = malloc(sizeof(double) * (size_t)GPUX__MAX(1, n));
  if (d)
    for (int64_t i = 0; i < n; i++) d[i] = gpux__load_f64(t->dtype, t->data, i);
  return d;
}

static int op_flex_attention(gpux__kctx *k) {
  const gpux_tensor *Q = IN(0), *K = IN(1), *V = IN(2);
  if (!Q || !K || !V) return gpux__kerr(k, GPUX_E_INVALID, "Q, K and V are required");
  if (!is_float_type(Q->dtype) || K->dtype != Q->dtype || V->dtype != Q->dtype)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "Q, K and V must share a floating type");
  if (Q->ndim != 4 || K->ndim != 4 || V->ndim != 4) return gpux__kerr(k, GPUX_E_SHAPE, "Q, K and V must be 4-D");
  int64_t B = Q->dims[0], Hq = Q->dims[1], L = Q->dims[2], D = Q->dims[3], Hkv = K->dims[1], S = K->dims[2], Dv = V->dims[3];
  if (K->dims[0] != B || V->dims[0] != B || K->dims[3] != D || V->dims[1] != Hkv || V->dims[2] != S)
    return gpux__kerr(k, GPUX_E_SHAPE, "Q, K and V shapes do not fit together");
  if (Hkv <= 0 || Hq % Hkv)
    return gpux__kerr(k, GPUX_E_SHAPE, "%lld query heads are not a multiple of %lld KV heads", (long long)Hq, (long long)Hkv);
  int64_t ydims[4] = {B, Hq, L, Dv}, sdims[4] = {B, Hq, L, S};
  gpux_tensor *Y = gpux__out(k, 0, Q->dtype, 4, ydims);
  if (!Y) return k->status;
  if (k->shape_only) return 0;
  int rc = blas_ok(k, L, S, GPUX__MAX(D, Dv));
  if (rc) return rc;
  double scale = gpux__has_attr(k, "scale") ? gpux__attr_float(k, "scale", 1.0f) : (D > 0 ? 1.0 / sqrt((double)D) : 1.0);
  const gpux__graph *score_mod = gpux__attr_graph(k, "score_mod"), *prob_mod = gpux__attr_graph(k, "prob_mod");
  int mod_dt = Q->dtype == GPUX_DT_DOUBLE ? GPUX_DT_DOUBLE : GPUX_DT_FLOAT;
  double *q = f64_copy(Q), *kk = f64_copy(K), *v = f64_copy(V);
  double *s = malloc(sizeof(double) * (size_t)GPUX__MAX(1, B * Hq * L * S));
  double *y = malloc(sizeof(double) * (size_t)GPUX__MAX(1, B * Hq * L * Dv));
  if (!q || !kk || !v || !s || !y) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  int64_t group = Hq / Hkv;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++) {
      const double *kp = kk + (b * Hkv + h / group) * S * D;
      if (L > 0 && S > 0 && D > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)L, (int)S, (int)D, scale, q + (b * Hq + h) * L * D, (int)D, kp,
                    (int)D, 0.0, s + (b * Hq + h) * L * S, (int)S);
      else
        memset(s + (b * Hq + h) * L * S, 0, sizeof(double) * (size_t)(L * S));
    }
  if (mod_dt == GPUX_DT_FLOAT) /* the scores are float32 from here on, as in the function body */
    for (int64_t i = 0; i < B * Hq * L * S; i++) s[i] = (float)s[i];
  if (score_mod && (rc = flex_modify(k, score_mod, "score_mod", mod_dt, sdims, s))) goto done;
  for (int64_t r = 0; r < B * Hq * L; r++) {
    double *row = s + r * S, mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < S; j++) mx = row[j] > mx ? row[j] : mx;
    for (int64_t j = 0; j < S; j++) sum += row[j] = exp(row[j] - mx);
    for (int64_t j = 0; j < S; j++) row[j] /= sum;
  }
  if (prob_mod && (rc = flex_modify(k, prob_mod, "prob_mod", mod_dt, sdims, s))) goto done;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++) {
      const double *vp = v + (b * Hkv + h / group) * S * Dv;
      if (L > 0 && S > 0 && Dv > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)L, (int)Dv, (int)S, 1.0, s + (b * Hq + h) * L * S, (int)S, vp,
                    (int)Dv, 0.0, y + (b * Hq + h) * L * Dv, (int)Dv);
      else
        memset(y + (b * Hq + h) * L * Dv, 0, sizeof(double) * (size_t)(L * Dv));
    }
  for (int64_t i = 0; i < B * Hq * L * Dv; i++) gpux__store_f64(Y->dtype, Y->data, i, y[i]);
done:
  free(q);
  free(kk);
  free(v);
  free(s);
  free(y);
  return rc;
}

const gpux__op_def gpux__ops_attention[] = {
  {"", "Attention", op_attention, 23, 0},
  {"", "RotaryEmbedding", op_rotary_embedding, 23, 0},
  {"", "SwiGLU", op_swiglu, 28, 0},
  {"", "LinearAttention", op_linear_attention, 27, 0},
  {"ai.onnx.preview", "FlexAttention", op_flex_attention, 1, 0},
  {0},
};
