/* norm.c — normalizations and the Softmax family: Softmax, LogSoftmax, Hardmax,
 * BatchNormalization, InstanceNormalization, GroupNormalization, LayerNormalization,
 * RMSNormalization, LpNormalization, MeanVarianceNormalization and LRN.
 *
 * float32 is the fast path for the ops that dominate real models (Softmax, LogSoftmax, the
 * Batch/Instance/Group/Layer/RMS normalizations): contiguous rows, vectorizable loops (also built
 * for AVX2), a vectorizable exp, sums in float lanes per block added in float64, and
 * gpux__parallel_for over rows or groups; Softmax along contiguous rows has its own AVX-512 loop
 * (exp with FMAs) where the CPU has it. Every other dtype goes through a plain float64 path,
 * except float16/bfloat16 Softmax and LogSoftmax, which round every step to the dtype like the
 * ONNX reference does. */
#include "ops/op.h"
#include "ops/simd.h"
#include <math.h>

enum { PAR_WORK = 1 << 14 };  /* elements per parallel task, at least */

static int is_float(const gpux_tensor *t) { return t && gpux__dtype_is_float(t->dtype); }

static int need_float(gpux__kctx *k, const gpux_tensor *x, int i) {
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input %d must be a tensor", i);
  if (!is_float(x))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input %d: %s not supported (float types only)", i,
                      gpux_dtype_name(x->dtype));
  return 0;
}

/* Grain for gpux__parallel_for over tasks of `per` elements each. */
static int64_t grain_for(int64_t per) { return per >= PAR_WORK ? 1 : PAR_WORK / (per > 0 ? per : 1); }

/* ---- float32 row helpers ---- */

static GPUX_SIMD_CLONES float row_max(const float *x, int64_t n) {
  float m[8];
  for (int j = 0; j < 8; j++) m[j] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
  float r = m[0];
  for (int j = 1; j < 8; j++) r = m[j] > r ? m[j] : r;
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  return r;
}

enum { SUM_BLOCK = 1024 };  /* float partial sums per block, blocks added in double */

static GPUX_SIMD_CLONES double row_sum(const float *x, int64_t n) {
  double total = 0;
  for (int64_t b = 0; b < n; b += SUM_BLOCK) {
    const float *p = x + b;
    int64_t m = GPUX__MIN(SUM_BLOCK, n - b), i = 0;
    float s[8] = {0};
    for (; i + 8 <= m; i += 8)
      for (int j = 0; j < 8; j++) s[j] += p[i + j];
    float r = 0;
    for (; i < m; i++) r += p[i];
    total += (double)r + (((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])));
  }
  return total;
}

/* sum((x - c)^2) */
static GPUX_SIMD_CLONES double row_sqdev(const float *x, int64_t n, float c) {
  double total = 0;
  for (int64_t b = 0; b < n; b += SUM_BLOCK) {
    const float *p = x + b;
    int64_t m = GPUX__MIN(SUM_BLOCK, n - b), i = 0;
    float s[8] = {0};
    for (; i + 8 <= m; i += 8)
      for (int j = 0; j < 8; j++) s[j] += (p[i + j] - c) * (p[i + j] - c);
    float r = 0;
    for (; i < m; i++) r += (p[i] - c) * (p[i] - c);
    total += (double)r + (((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])));
  }
  return total;
}

/* Mean and 1/sqrt(variance + eps) of a contiguous float run (two passes). */
static void row_moments(const float *x, int64_t n, float eps, float *mean, float *inv) {
  float m = (float)(row_sum(x, n) / (double)n);
  *mean = m;
  *inv = (float)(1.0 / sqrt(row_sqdev(x, n, m) / (double)n + eps));
}

/* y = exp(x - m), for x <= m */
static GPUX_SIMD_CLONES void vexp_sub(float *restrict y, const float *restrict x, int64_t n, float m) {
  FOR8(i, n, y[i] = gpux__exp_neg(x[i] - m));
}

/* y = (x - a) - b */
static GPUX_SIMD_CLONES void vsub2(float *restrict y, const float *restrict x, int64_t n, float a, float b) {
  FOR8(i, n, y[i] = (x[i] - a) - b);
}

/* y *= a */
static GPUX_SIMD_CLONES void vscale(float *y, int64_t n, float a) {
  FOR8(i, n, y[i] *= a);
}

/* y = x * a + b */
static GPUX_SIMD_CLONES void vaxpb(float *restrict y, const float *restrict x, int64_t n, float a, float b) {
  FOR8(i, n, y[i] = x[i] * a + b);
}

/* y = (x - m) * inv * sc (+ bi when given) */
static GPUX_SIMD_CLONES void vnorm(float *restrict y, const float *restrict x, int64_t n, float m, float inv,
                  const float *restrict sc, const float *restrict bi) {
  if (bi) FOR8(i, n, y[i] = (x[i] - m) * inv * sc[i] + bi[i]);
  else FOR8(i, n, y[i] = (x[i] - m) * inv * sc[i]);
}

/* Column helpers of the strided softmax, over w columns. */
static GPUX_SIMD_CLONES void vmax_into(float *restrict mx, const float *restrict x, int64_t w) {
  FOR8(i, w, mx[i] = x[i] > mx[i] ? x[i] : mx[i]);
}

static GPUX_SIMD_CLONES void vexp_acc(float *restrict y, const float *restrict x, const float *restrict mx,
                     double *restrict s, int64_t w) {
  FOR8(i, w, float v = gpux__exp_neg(x[i] - mx[i]); y[i] = v; s[i] += v);
}

static GPUX_SIMD_CLONES void vmul(float *restrict y, const float *restrict f, int64_t w) {
  FOR8(i, w, y[i] *= f[i]);
}

static GPUX_SIMD_CLONES void vlogsm(float *restrict y, const float *restrict x, const float *restrict mx,
                   const float *restrict ls, int64_t w) {
  FOR8(i, w, y[i] = (x[i] - mx[i]) - ls[i]);
}

/* ---- Softmax, LogSoftmax, Hardmax ---- */

enum { SM_SOFT, SM_LOG, SM_HARD };
enum { SM_BLOCK = 64 };  /* columns per strided task */

typedef struct {
  const gpux_tensor *x;
  gpux_tensor *y;
  int64_t n, inner, blocks;  /* softmax runs along n (stride inner); blocks of SM_BLOCK columns */
  int mode;
} sm_ctx;

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define SM16 1
#define T512 __attribute__((target("avx512f,fma")))

/* Softmax of one contiguous row on 16 lanes: the max, then e = exp(x - max) written to y while
 * summed (float lanes per SUM_BLOCK, blocks added in double), then y scaled by 1 / sum. */
T512 static void sm_row16(const float *x, float *y, int64_t n) {
  __m512 m0 = _mm512_set1_ps(x[0]), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0), m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
    m2 = _mm512_max_ps(_mm512_loadu_ps(x + i + 32), m2), m3 = _mm512_max_ps(_mm512_loadu_ps(x + i + 48), m3);
  }
  for (; i < n; i += 16) m0 = _mm512_max_ps(_mm512_mask_loadu_ps(m0, gpux__lanes16(n - i), x + i), m0);
  const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3))));
  double total = 0;
  for (int64_t b = 0; b < n; b += SUM_BLOCK) {
    int64_t end = GPUX__MIN(n, b + SUM_BLOCK);
    total += (double)gpux__exp_sum16(x + b, y + b, end - b, vm);
  }
  const __m512 f = _mm512_set1_ps((float)(1.0 / total));
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), f));
  if (i < n) _mm512_mask_storeu_ps(y + i, gpux__lanes16(n - i), _mm512_mul_ps(_mm512_maskz_loadu_ps(gpux__lanes16(n - i), y + i), f));
}
#else
#define SM16 0
#endif

/* float32, contiguous rows [b, e) of length n. */
static void sm_rows_f32(void *ctx, int64_t b, int64_t e) {
  const sm_ctx *c = ctx;
  int64_t n = c->n;
#if SM16
  if (c->mode == SM_SOFT && gpux__have_avx512_fma()) {
    for (int64_t r = b; r < e; r++) sm_row16((const float *)c->x->data + r * n, (float *)c->y->data + r * n, n);
    return;
  }
#endif
  for (int64_t r = b; r < e; r++) {
    const float *x = (const float *)c->x->data + r * n;
    float *y = (float *)c->y->data + r * n;
    float m = row_max(x, n);
    vexp_sub(y, x, n, m);
    double s = row_sum(y, n);
    if (c->mode == SM_SOFT) vscale(y, n, (float)(1.0 / s));
    else vsub2(y, x, n, m, (float)log(s));
  }
}

/* float32 with inner > 1: tasks are (outer, column block); columns move together along n. */
static void sm_cols_f32(void *ctx, int64_t b, int64_t e) {
  const sm_ctx *c = ctx;
  int64_t n = c->n, inner = c->inner;
  float mx[SM_BLOCK], f[SM_BLOCK];
  double s[SM_BLOCK]; /* sums in float64: log(s) stays accurate when s is near 1 */
  for (int64_t t = b; t < e; t++) {
    int64_t o = t / c->blocks, c0 = (t % c->blocks) * SM_BLOCK, w = GPUX__MIN(SM_BLOCK, inner - c0);
    const float *x = (const float *)c->x->data + o * n * inner + c0;
    float *y = (float *)c->y->data + o * n * inner + c0;
    for (int64_t i = 0; i < w; i++) { mx[i] = x[i]; s[i] = 0; }
    for (int64_t j = 1; j < n; j++) vmax_into(mx, x + j * inner, w);
    for (int64_t j = 0; j < n; j++) vexp_acc(y + j * inner, x + j * inner, mx, s, w);
    if (c->mode == SM_SOFT) {
      for (int64_t i = 0; i < w; i++) f[i] = (float)(1.0 / s[i]);
      for (int64_t j = 0; j < n; j++) vmul(y + j * inner, f, w);
    } else {
      for (int64_t i = 0; i < w; i++) f[i] = (float)log(s[i]);
      for (int64_t j = 0; j < n; j++) vlogsm(y + j * inner, x + j * inner, mx, f, w);
    }
  }
}

/* Any float dtype, in float64: tasks are (outer, column) lines. */
static void sm_lines_f64(void *ctx, int64_t b, int64_t e) {
  const sm_ctx *c = ctx;
  int dt = c->x->dtype;
  const void *xd = c->x->data;
  void *yd = c->y->data;
  for (int64_t t = b; t < e; t++) {
    int64_t base = (t / c->inner) * c->n * c->inner + t % c->inner, st = c->inner;
    double m = gpux__load_f64(dt, xd, base);
    int64_t arg = 0;
    for (int64_t j = 1; j < c->n; j++) {
      double v = gpux__load_f64(dt, xd, base + j * st);
      if (v > m || (isnan(v) && !isnan(m))) { m = v; arg = j; }
    }
    if (c->mode == SM_HARD) {
      for (int64_t j = 0; j < c->n; j++) gpux__store_f64(dt, yd, base + j * st, j == arg);
      continue;
    }
    double s = 0;
    for (int64_t j = 0; j < c->n; j++) s += exp(gpux__load_f64(dt, xd, base + j * st) - m);
    for (int64_t j = 0; j < c->n; j++) {
      double d = gpux__load_f64(dt, xd, base + j * st) - m;
      gpux__store_f64(dt, yd, base + j * st, c->mode == SM_SOFT ? exp(d) / s : d - log(s));
    }
  }
}

/* Rounds a float to float16 or bfloat16 and back. */
static float round16(int dt, float v) {
  return dt == GPUX_DT_FLOAT16 ? gpux__f16_to_f32(gpux__f32_to_f16(v)) : gpux__bf16_to_f32(gpux__f32_to_bf16(v));
}

/* float16 and bfloat16 Softmax/LogSoftmax, rounding each step to the dtype the way the ONNX
 * reference (numpy) computes them, so that graphs chaining 16-bit ops agree with it:
 * d = R(x - max), e = R(exp(d)), s = sum of e (float16: summed in float32 then rounded; bfloat16:
 * rounded at every addition), y = R(e / s) or R(d - R(log s)). */
static void sm_lines_16(void *ctx, int64_t b, int64_t e) {
  const sm_ctx *c = ctx;
  int dt = c->x->dtype;
  const uint16_t *xd = c->x->data;
  uint16_t *yd = c->y->data;
  float (*load)(uint16_t) = dt == GPUX_DT_FLOAT16 ? gpux__f16_to_f32 : gpux__bf16_to_f32;
  uint16_t (*store)(float) = dt == GPUX_DT_FLOAT16 ? gpux__f32_to_f16 : gpux__f32_to_bf16;
  for (int64_t t = b; t < e; t++) {
    int64_t base = (t / c->inner) * c->n * c->inner + t % c->inner, st = c->inner;
    float m = load(xd[base]);
    for (int64_t j = 1; j < c->n; j++) {
      float v = load(xd[base + j * st]);
      if (v > m || (isnan(v) && !isnan(m))) m = v;
    }
    float s = 0;
    for (int64_t j = 0; j < c->n; j++) {
      float ej = round16(dt, expf(round16(dt, load(xd[base + j * st]) - m)));
      s = dt == GPUX_DT_BFLOAT16 ? round16(dt, s + ej) : s + ej;
    }
    s = round16(dt, s);
    float ls = round16(dt, logf(s));
    for (int64_t j = 0; j < c->n; j++) {
      float d = round16(dt, load(xd[base + j * st]) - m);
      yd[base + j * st] = store(c->mode == SM_SOFT ? round16(dt, expf(d)) / s : d - ls);
    }
  }
}

static int softmax_run(gpux__kctx *k, int mode) {
  const gpux_tensor *x = IN(0);
  if (need_float(k, x, 0)) return k->status;
  int old = k->opset < 13; /* before 13: coerce to 2-D [prod(dims[:axis]), prod(dims[axis:])] */
  int axis = 0;
  if (x->ndim > 0 && gpux__axis(k, gpux__attr_int(k, "axis", old ? 1 : -1), x->ndim, &axis))
    return k->status;
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  sm_ctx c = {.x = x, .y = y, .mode = mode};
  int64_t outer = gpux__shape_count(axis, x->dims);
  if (x->ndim == 0) {
    c.n = c.inner = 1;
  } else if (old) {
    c.n = gpux__shape_count(x->ndim - axis, x->dims + axis);
    c.inner = 1;
  } else {
    c.n = x->dims[axis];
    c.inner = gpux__shape_count(x->ndim - axis - 1, x->dims + axis + 1);
  }
  if (gpux_tensor_count(x) == 0) return 0;
  if (x->dtype == GPUX_DT_FLOAT && mode != SM_HARD) {
    if (c.inner == 1) {
      gpux__parallel_for(outer, grain_for(c.n), sm_rows_f32, &c);
    } else {
      c.blocks = (c.inner + SM_BLOCK - 1) / SM_BLOCK;
      gpux__parallel_for(outer * c.blocks, grain_for(c.n * GPUX__MIN(c.inner, SM_BLOCK)), sm_cols_f32, &c);
    }
  } else if ((x->dtype == GPUX_DT_FLOAT16 || x->dtype == GPUX_DT_BFLOAT16) && mode != SM_HARD) {
    gpux__parallel_for(outer * c.inner, grain_for(c.n), sm_lines_16, &c);
  } else {
    gpux__parallel_for(outer * c.inner, grain_for(c.n), sm_lines_f64, &c);
  }
  return 0;
}

static int op_softmax(gpux__kctx *k) { return softmax_run(k, SM_SOFT); }
static int op_log_softmax(gpux__kctx *k) { return softmax_run(k, SM_LOG); }
static int op_hardmax(gpux__kctx *k) { return softmax_run(k, SM_HARD); }

/* ---- parameters broadcast over a shape ---- */

/* Expands t (unidirectionally broadcastable to shape [nd, dims]) into a float64 array of
 * prod(dims) values. Returns NULL with k->status set on failure. */
static double *expand_param(gpux__kctx *k, const gpux_tensor *t, const char *what, int nd, const int64_t *dims) {
  if (t->ndim > nd) {
    gpux__kerr(k, GPUX_E_SHAPE, "%s of rank %d does not broadcast to rank %d", what, t->ndim, nd);
    return NULL;
  }
  int64_t tstr[GPUX_MAX_DIMS], s = 1;
  for (int d = nd - 1; d >= 0; d--) {
    int td = d - (nd - t->ndim);
    if (td < 0) { tstr[d] = 0; continue; }
    if (t->dims[td] != dims[d] && t->dims[td] != 1) {
      gpux__kerr(k, GPUX_E_SHAPE, "%s dim %d is %lld, expected %lld or 1", what, td,
                 (long long)t->dims[td], (long long)dims[d]);
      return NULL;
    }
    tstr[d] = t->dims[td] == 1 ? 0 : s;
    s *= t->dims[td];
  }
  int64_t n = gpux__shape_count(nd, dims);
  double *v = gpux__malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
  if (!v) {
    gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    return NULL;
  }
  int64_t idx[GPUX_MAX_DIMS] = {0}, off = 0;
  for (int64_t i = 0; i < n; i++) {
    v[i] = gpux__load_f64(t->dtype, t->data, off);
    for (int d = nd - 1; d >= 0; d--) { /* odometer */
      off += tstr[d];
      if (++idx[d] < dims[d]) break;
      off -= tstr[d] * dims[d];
      idx[d] = 0;
    }
  }
  return v;
}

/* A per-channel parameter of C values (shape [C] or broadcastable to it, e.g. [1]). */
static double *channel_param(gpux__kctx *k, const gpux_tensor *t, const char *what, int64_t C) {
  if (!t) {
    gpux__kerr(k, GPUX_E_INVALID, "missing %s", what);
    return NULL;
  }
  if (!is_float(t)) {
    gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s: %s not supported", what, gpux_dtype_name(t->dtype));
    return NULL;
  }
  int64_t n = gpux_tensor_count(t);
  if (n != C && n != 1) {
    gpux__kerr(k, GPUX_E_SHAPE, "%s has %lld values, expected %lld", what, (long long)n, (long long)C);
    return NULL;
  }
  double *v = gpux__malloc((size_t)(C > 0 ? C : 1) * sizeof *v);
  if (!v) {
    gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    return NULL;
  }
  for (int64_t c = 0; c < C; c++) v[c] = gpux__load_f64(t->dtype, t->data, n == 1 ? 0 : c);
  return v;
}

/* ---- affine per channel: y = x * a[c] + b[c] over [N, C, S] (BatchNormalization inference) ---- */

typedef struct {
  const gpux_tensor *x;
  gpux_tensor *y;
  int64_t C, S;
  const double *a, *b;   /* [C] */
} affine_ctx;

static void affine_range(void *ctx, int64_t b, int64_t e) {
  const affine_ctx *c = ctx;
  for (int64_t t = b; t < e; t++) { /* t = n * C + ch */
    int64_t ch = t % c->C, base = t * c->S;
    if (c->x->dtype == GPUX_DT_FLOAT) {
      vaxpb((float *)c->y->data + base, (const float *)c->x->data + base, c->S, (float)c->a[ch], (float)c->b[ch]);
    } else {
      for (int64_t i = 0; i < c->S; i++)
        gpux__store_f64(c->y->dtype, c->y->data, base + i,
                        gpux__load_f64(c->x->dtype, c->x->data, base + i) * c->a[ch] + c->b[ch]);
    }
  }
}

/* ---- per-group normalization over [N, G, L] runs (Instance/Group/Batch statistics) ---- */

typedef struct {
  const gpux_tensor *x;
  gpux_tensor *y;
  int64_t G, cpg, S;       /* groups, channels per group, spatial size: a run is cpg * S values */
  const double *scale, *bias; /* [G * cpg] per channel */
  double eps;
} group_ctx;

static void group_range(void *ctx, int64_t b, int64_t e) {
  const group_ctx *c = ctx;
  int64_t L = c->cpg * c->S;
  for (int64_t t = b; t < e; t++) { /* t = n * G + g */
    int64_t g = t % c->G, base = t * L;
    if (c->x->dtype == GPUX_DT_FLOAT) {
      const float *x = (const float *)c->x->data + base;
      float *y = (float *)c->y->data + base, mean, inv;
      row_moments(x, L, (float)c->eps, &mean, &inv);
      for (int64_t j = 0; j < c->cpg; j++) {
        int64_t ch = g * c->cpg + j;
        float a = inv * (float)c->scale[ch], bb = (float)c->bias[ch] - mean * a;
        vaxpb(y + j * c->S, x + j * c->S, c->S, a, bb);
      }
    } else {
      int dt = c->x->dtype;
      double s = 0, q = 0;
      for (int64_t i = 0; i < L; i++) s += gpux__load_f64(dt, c->x->data, base + i);
      double mean = L ? s / (double)L : 0;
      for (int64_t i = 0; i < L; i++) {
        double d = gpux__load_f64(dt, c->x->data, base + i) - mean;
        q += d * d;
      }
      double inv = 1.0 / sqrt((L ? q / (double)L : 0) + c->eps);
      for (int64_t j = 0; j < c->cpg; j++) {
        int64_t ch = g * c->cpg + j;
        for (int64_t i = 0; i < c->S; i++) {
          int64_t at = base + j * c->S + i;
          double v = (gpux__load_f64(dt, c->x->data, at) - mean) * inv;
          gpux__store_f64(c->y->dtype, c->y->data, at, v * c->scale[ch] + c->bias[ch]);
        }
      }
    }
  }
}

/* X is [N, C, spatial...]: N, C and the spatial size S. */
static int nc_dims(gpux__kctx *k, const gpux_tensor *x, int64_t *N, int64_t *C, int64_t *S) {
  if (x->ndim < 2) return gpux__kerr(k, GPUX_E_SHAPE, "input must be [N, C, ...], got rank %d", x->ndim);
  *N = x->dims[0];
  *C = x->dims[1];
  *S = gpux__shape_count(x->ndim - 2, x->dims + 2);
  return 0;
}

static int group_norm_run(gpux__kctx *k, gpux_tensor *y, int64_t G, double *scale, double *bias) {
  const gpux_tensor *x = IN(0);
  int64_t N = 0, C = 0, S = 0;
  nc_dims(k, x, &N, &C, &S);
  if (G == 0) { /* no channels: nothing to do */
    free(scale);
    free(bias);
    return 0;
  }
  group_ctx c = {.x = x, .y = y, .G = G, .cpg = C / G, .S = S, .scale = scale, .bias = bias,
                 .eps = gpux__attr_float(k, "epsilon", 1e-5f)};
  gpux__parallel_for(N * G, grain_for(c.cpg * S), group_range, &c);
  free(scale);
  free(bias);
  return 0;
}

static int op_instance_norm(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (need_float(k, x, 0)) return k->status;
  int64_t N = 0, C = 0, S = 0;
  if (nc_dims(k, x, &N, &C, &S)) return k->status;
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  double *scale = channel_param(k, IN(1), "scale", C);
  if (!scale) return k->status;
  double *bias = channel_param(k, IN(2), "B", C);
  if (!bias) { free(scale); return k->status; }
  return group_norm_run(k, y, C, scale, bias);
}

static int op_group_norm(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (need_float(k, x, 0)) return k->status;
  int64_t N = 0, C = 0, S = 0;
  if (nc_dims(k, x, &N, &C, &S)) return k->status;
  if (!gpux__has_attr(k, "num_groups")) return gpux__kerr(k, GPUX_E_INVALID, "missing attribute num_groups");
  int64_t G = gpux__attr_int(k, "num_groups", 1);
  if (G <= 0 || C % G) return gpux__kerr(k, GPUX_E_INVALID, "num_groups %lld does not divide %lld channels",
                                         (long long)G, (long long)C);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  /* opset 21: scale and bias per channel [C]; opset 18: per group [G] */
  const gpux_tensor *ts = IN(1), *tb = IN(2);
  if (!ts || !tb) return gpux__kerr(k, GPUX_E_INVALID, "missing scale or bias");
  int64_t n = gpux_tensor_count(ts);
  int per_group = n != C || (k->opset < 21 && n == G);
  double *scale = channel_param(k, ts, "scale", per_group ? G : C);
  if (!scale) return k->status;
  double *bias = channel_param(k, tb, "bias", per_group ? G : C);
  if (!bias) { free(scale); return k->status; }
  if (per_group && G != C) { /* spread each group's value over its channels */
    double *s2 = gpux__malloc((size_t)C * sizeof *s2), *b2 = gpux__malloc((size_t)C * sizeof *b2);
    if (!s2 || !b2) {
      free(s2); free(b2); free(scale); free(bias);
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
    for (int64_t ch = 0; ch < C; ch++) {
      s2[ch] = scale[ch / (C / G)];
      b2[ch] = bias[ch / (C / G)];
    }
    free(scale);
    free(bias);
    scale = s2;
    bias = b2;
  }
  return group_norm_run(k, y, G, scale, bias);
}

/* ---- BatchNormalization ---- */

static int op_batch_norm(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (need_float(k, x, 0)) return k->status;
  int64_t N = 0, C = 0, S = 0;
  if (x->ndim == 1) { /* [C]: parameters per element */
    N = 1; C = x->dims[0]; S = 1;
  } else if (nc_dims(k, x, &N, &C, &S)) {
    return k->status;
  }
  for (int i = 1; i <= 4; i++)
    if (!IN(i)) return gpux__kerr(k, GPUX_E_INVALID, "missing input %d", i);
  const gpux_tensor *mean_in = IN(3), *var_in = IN(4);
  /* spatial = 0 (before opset 9): parameters per [C, spatial...] element */
  int64_t P = gpux_tensor_count(IN(1));
  if (P == C * S && S > 1) { C *= S; S = 1; }
  int training;
  if (k->opset >= 14) training = gpux__attr_int(k, "training_mode", 0) != 0;
  else if (k->opset < 7 && gpux__attr_int(k, "is_test", 0)) training = 0;
  else training = OUTPUT_WANTED(1);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  int n_stats = k->opset >= 14 ? 2 : 4;
  for (int i = 1; i <= n_stats && i < k->n_out; i++) {
    const gpux_tensor *like = i % 2 ? mean_in : var_in;
    if (!gpux__out(k, i, like->dtype, like->ndim, like->dims)) return k->status;
  }
  if (k->shape_only) return 0;
  double eps = gpux__attr_float(k, "epsilon", 1e-5f), mom = gpux__attr_float(k, "momentum", 0.9f);
  double *scale = channel_param(k, IN(1), "scale", C), *bias = NULL, *mean = NULL, *var = NULL;
  double *a = NULL, *b = NULL;
  int rc = 0;
  if (!scale || !(bias = channel_param(k, IN(2), "B", C)) || !(mean = channel_param(k, mean_in, "mean", C)) ||
      !(var = channel_param(k, var_in, "var", C))) {
    rc = k->status;
    goto done;
  }
  a = gpux__malloc((size_t)(C + 1) * sizeof *a);
  b = gpux__malloc((size_t)(C + 1) * sizeof *b);
  if (!a || !b) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  if (training) {
    /* batch statistics per channel over N and S; running stats = old * momentum + batch * (1 - momentum) */
    int64_t cnt = N * S;
    for (int64_t ch = 0; ch < C; ch++) {
      double s = 0, q = 0;
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < S; i++) s += gpux__load_f64(x->dtype, x->data, (n * C + ch) * S + i);
      double m = cnt ? s / (double)cnt : 0;
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < S; i++) {
          double d = gpux__load_f64(x->dtype, x->data, (n * C + ch) * S + i) - m;
          q += d * d;
        }
      double v = cnt ? q / (double)cnt : 0;
      a[ch] = scale[ch] / sqrt(v + eps);
      b[ch] = bias[ch] - m * a[ch];
      if (OUTPUT_WANTED(1)) gpux__store_f64(k->out[1]->dtype, k->out[1]->data, ch, mean[ch] * mom + m * (1 - mom));
      if (OUTPUT_WANTED(2)) gpux__store_f64(k->out[2]->dtype, k->out[2]->data, ch, var[ch] * mom + v * (1 - mom));
      if (n_stats == 4 && OUTPUT_WANTED(3)) gpux__store_f64(k->out[3]->dtype, k->out[3]->data, ch, m);
      if (n_stats == 4 && OUTPUT_WANTED(4)) gpux__store_f64(k->out[4]->dtype, k->out[4]->data, ch, v);
    }
  } else {
    for (int64_t ch = 0; ch < C; ch++) {
      a[ch] = scale[ch] / sqrt(var[ch] + eps);
      b[ch] = bias[ch] - mean[ch] * a[ch];
    }
    /* statistics outputs asked for outside training: pass the inputs through */
    for (int i = 1; i <= n_stats && i < k->n_out; i++)
      if (OUTPUT_WANTED(i) && (rc = gpux__out_copy(k, i, i % 2 ? mean_in : var_in))) goto done;
  }
  affine_ctx c = {.x = x, .y = y, .C = C, .S = S, .a = a, .b = b};
  gpux__parallel_for(N * C, grain_for(S), affine_range, &c);
done:
  free(scale); free(bias); free(mean); free(var); free(a); free(b);
  return rc;
}

/* ---- LayerNormalization, RMSNormalization ---- */

typedef struct {
  const gpux_tensor *x;
  gpux_tensor *y, *mean, *inv;   /* mean/inv: [rows] (LayerNorm outputs 1 and 2) */
  int64_t n;                     /* row length */
  const double *scale, *bias;    /* [n] or [rows * n] (pstride) */
  const float *scale32, *bias32; /* float32 copies for the fast path */
  int64_t pstride;               /* 0: parameters shared by rows; n: per row */
  double eps;
  int rms;
} ln_ctx;

static void ln_range(void *ctx, int64_t b, int64_t e) {
  const ln_ctx *c = ctx;
  int64_t n = c->n;
  for (int64_t r = b; r < e; r++) {
    double mean_v, inv_v;
    if (c->x->dtype == GPUX_DT_FLOAT) {
      const float *x = (const float *)c->x->data + r * n;
      float *y = (float *)c->y->data + r * n;
      const float *sc = c->scale32 + r * c->pstride, *bi = c->bias32 ? c->bias32 + r * c->pstride : NULL;
      float m = 0, inv;
      if (c->rms) inv = (float)(1.0 / sqrt(row_sqdev(x, n, 0) / (double)n + c->eps));
      else row_moments(x, n, (float)c->eps, &m, &inv);
      vnorm(y, x, n, m, inv, sc, bi);
      mean_v = m;
      inv_v = inv;
    } else {
      int dt = c->x->dtype;
      const double *sc = c->scale + r * c->pstride, *bi = c->bias ? c->bias + r * c->pstride : NULL;
      double s = 0, q = 0, m = 0;
      if (!c->rms) {
        for (int64_t i = 0; i < n; i++) s += gpux__load_f64(dt, c->x->data, r * n + i);
        m = s / (double)n;
      }
      for (int64_t i = 0; i < n; i++) {
        double d = gpux__load_f64(dt, c->x->data, r * n + i) - m;
        q += d * d;
      }
      double inv = 1.0 / sqrt(q / (double)n + c->eps);
      for (int64_t i = 0; i < n; i++) {
        double v = (gpux__load_f64(dt, c->x->data, r * n + i) - m) * inv * sc[i] + (bi ? bi[i] : 0);
        gpux__store_f64(c->y->dtype, c->y->data, r * n + i, v);
      }
      mean_v = m;
      inv_v = inv;
    }
    if (c->mean) gpux__store_f64(c->mean->dtype, c->mean->data, r, mean_v);
    if (c->inv) gpux__store_f64(c->inv->dtype, c->inv->data, r, inv_v);
  }
}

/* Scale or bias of Layer/RMSNormalization: broadcast to X[axis:] (shared by all rows) when it
 * fits, else to all of X (per row). */
static double *ln_param(gpux__kctx *k, const gpux_tensor *t, const char *what, int axis, int64_t *pstride) {
  const gpux_tensor *x = IN(0);
  if (!is_float(t)) {
    gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s: %s not supported", what, gpux_dtype_name(t->dtype));
    return NULL;
  }
  int nd = x->ndim - axis;
  int fits = t->ndim <= nd;
  for (int d = 0; fits && d < t->ndim; d++) {
    int64_t want = x->dims[axis + nd - t->ndim + d];
    fits = t->dims[d] == want || t->dims[d] == 1;
  }
  if (fits) {
    *pstride = 0;
    return expand_param(k, t, what, nd, x->dims + axis);
  }
  *pstride = gpux__shape_count(nd, x->dims + axis);
  return expand_param(k, t, what, x->ndim, x->dims);
}

/* t is float32 with the shape of X[axis:] (leading ones allowed): shared by all rows as it is. */
static int ln_tail_f32(const gpux_tensor *t, const gpux_tensor *x, int axis) {
  if (t->dtype != GPUX_DT_FLOAT || !t->data) return 0;
  for (int d = 0; d < t->ndim; d++) { /* right-aligned against X */
    int xd = x->ndim - t->ndim + d;
    if (xd < axis ? t->dims[d] != 1 : t->dims[d] != x->dims[xd]) return 0;
  }
  return gpux_tensor_count(t) == gpux__shape_count(x->ndim - axis, x->dims + axis);
}

static int ln_run(gpux__kctx *k, int rms) {
  const gpux_tensor *x = IN(0), *ts = IN(1), *tb = rms ? NULL : IN(2);
  if (need_float(k, x, 0)) return k->status;
  if (!ts) return gpux__kerr(k, GPUX_E_INVALID, "missing scale");
  if (x->ndim == 0) return gpux__kerr(k, GPUX_E_SHAPE, "input must have rank >= 1");
  int axis;
  if (gpux__axis(k, gpux__attr_int(k, "axis", -1), x->ndim, &axis)) return k->status;
  int64_t stash = gpux__attr_int(k, "stash_type", 1);
  if (stash != GPUX_DT_FLOAT && stash != GPUX_DT_DOUBLE && stash != GPUX_DT_FLOAT16 && stash != GPUX_DT_BFLOAT16)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "stash_type %lld", (long long)stash);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  ln_ctx c = {.x = x, .y = y, .rms = rms, .eps = gpux__attr_float(k, "epsilon", 1e-5f)};
  if (!rms) { /* Mean and InvStdDev: X.shape[:axis] + [1] * (rank - axis), of stash_type */
    int64_t sdims[GPUX_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) sdims[d] = d < axis ? x->dims[d] : 1;
    if (k->n_out > 1 && !(c.mean = gpux__out(k, 1, (int)stash, x->ndim, sdims))) return k->status;
    if (k->n_out > 2 && !(c.inv = gpux__out(k, 2, (int)stash, x->ndim, sdims))) return k->status;
    if (!OUTPUT_WANTED(1)) c.mean = NULL;
    if (!OUTPUT_WANTED(2)) c.inv = NULL;
  }
  if (k->shape_only) return 0;
  int64_t rows = gpux__shape_count(axis, x->dims);
  c.n = gpux__shape_count(x->ndim - axis, x->dims + axis);
  if (rows == 0 || c.n == 0) return 0;
  if (x->dtype == GPUX_DT_FLOAT && ln_tail_f32(ts, x, axis) && (!tb || ln_tail_f32(tb, x, axis))) {
    /* float32 scale and bias of the normalized shape (what exporters and the graph rewrite
     * write): read where they are, nothing copied or allocated */
    c.scale32 = ts->data;
    c.bias32 = tb ? tb->data : NULL;
    gpux__parallel_for(rows, grain_for(c.n), ln_range, &c);
    return 0;
  }
  int64_t bstride = 0;
  double *scale = ln_param(k, ts, "scale", axis, &c.pstride), *bias = NULL;
  if (!scale) return k->status;
  if (tb && !(bias = ln_param(k, tb, "bias", axis, &bstride))) { free(scale); return k->status; }
  if (bias && bstride != c.pstride) { /* one per row, the other shared: make both per row */
    free(scale); free(bias);
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "scale and bias broadcast differently");
  }
  c.scale = scale;
  c.bias = bias;
  float *s32 = NULL, *b32 = NULL;
  if (x->dtype == GPUX_DT_FLOAT) {
    int64_t pn = c.pstride ? rows * c.n : c.n;
    s32 = gpux__malloc((size_t)pn * sizeof *s32);
    b32 = bias ? gpux__malloc((size_t)pn * sizeof *b32) : NULL;
    if (!s32 || (bias && !b32)) {
      free(s32); free(b32); free(scale); free(bias);
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < pn; i++) {
      s32[i] = (float)scale[i];
      if (b32) b32[i] = (float)bias[i];
    }
    c.scale32 = s32;
    c.bias32 = b32;
  }
  gpux__parallel_for(rows, grain_for(c.n), ln_range, &c);
  free(s32); free(b32); free(scale); free(bias);
  return 0;
}

static int op_layer_norm(gpux__kctx *k) { return ln_run(k, 0); }
static int op_rms_norm(gpux__kctx *k) { return ln_run(k, 1); }

/* ---- LpNormalization ---- */

static int op_lp_norm(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (need_float(k, x, 0)) return k->status;
  if (x->ndim == 0) return gpux__kerr(k, GPUX_E_SHAPE, "input must have rank >= 1");
  int axis;
  if (gpux__axis(k, gpux__attr_int(k, "axis", -1), x->ndim, &axis)) return k->status;
  int64_t p = gpux__attr_int(k, "p", 2);
  if (p != 1 && p != 2) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "p = %lld (only 1 and 2)", (long long)p);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t outer = gpux__shape_count(axis, x->dims), n = x->dims[axis];
  int64_t inner = gpux__shape_count(x->ndim - axis - 1, x->dims + axis + 1);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * n * inner + i;
      double s = 0;
      for (int64_t j = 0; j < n; j++) {
        double v = gpux__load_f64(x->dtype, x->data, base + j * inner);
        s += p == 1 ? fabs(v) : v * v;
      }
      double norm = p == 1 ? s : sqrt(s);
      for (int64_t j = 0; j < n; j++) { /* a zero norm gives zeros */
        double v = gpux__load_f64(x->dtype, x->data, base + j * inner);
        gpux__store_f64(y->dtype, y->data, base + j * inner, norm == 0 ? 0 : v / norm);
      }
    }
  return 0;
}

/* ---- MeanVarianceNormalization: (X - mean) / (sqrt(mean(X^2) - mean^2) + 1e-9) over axes ---- */

static int op_mvn(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (need_float(k, x, 0)) return k->status;
  int rank = x->ndim, red[GPUX_MAX_DIMS] = {0};
  const int64_t *axes, dflt[3] = {0, 2, 3};
  int na = gpux__attr_ints(k, "axes", &axes);
  if (!gpux__has_attr(k, "axes")) {
    axes = dflt;
    na = 3;
  }
  for (int i = 0; i < na; i++) {
    int ax;
    if (gpux__axis(k, axes[i], rank, &ax)) return k->status;
    red[ax] = 1;
  }
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  /* kept-index strides: element i's statistics slot is sum(idx[d] * ks[d]) */
  int64_t ks[GPUX_MAX_DIMS], nk = 1, nr = 1;
  for (int d = rank - 1; d >= 0; d--) {
    ks[d] = red[d] ? 0 : nk;
    if (red[d]) nr *= x->dims[d];
    else nk *= x->dims[d];
  }
  int64_t n = gpux_tensor_count(x);
  if (n == 0) return 0;
  double *st = gpux__calloc((size_t)nk * 2, sizeof *st); /* [nk] sums, [nk] sums of squares */
  if (!st) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int pass = 0; pass < 2; pass++) {
    int64_t idx[GPUX_MAX_DIMS] = {0}, slot = 0;
    for (int64_t i = 0; i < n; i++) {
      double v = gpux__load_f64(x->dtype, x->data, i);
      if (pass == 0) {
        st[slot] += v;
        st[nk + slot] += v * v;
      } else {
        double mean = st[slot] / (double)nr;
        double sd = sqrt(st[nk + slot] / (double)nr - mean * mean);
        gpux__store_f64(y->dtype, y->data, i, (v - mean) / (sd + 1e-9));
      }
      for (int d = rank - 1; d >= 0; d--) {
        slot += ks[d];
        if (++idx[d] < x->dims[d]) break;
        slot -= ks[d] * x->dims[d];
        idx[d] = 0;
      }
    }
  }
  free(st);
  return 0;
}

/* ---- LRN: y = x / (bias + alpha / size * sum of x^2 over nearby channels)^beta ---- */

static int op_lrn(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (need_float(k, x, 0)) return k->status;
  int64_t N = 0, C = 0, S = 0;
  if (nc_dims(k, x, &N, &C, &S)) return k->status;
  if (!gpux__has_attr(k, "size")) return gpux__kerr(k, GPUX_E_INVALID, "missing attribute size");
  int64_t size = gpux__attr_int(k, "size", 1);
  if (size <= 0) return gpux__kerr(k, GPUX_E_INVALID, "size = %lld", (long long)size);
  double alpha = gpux__attr_float(k, "alpha", 1e-4f), beta = gpux__attr_float(k, "beta", 0.75f);
  double bias = gpux__attr_float(k, "bias", 1.0f);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t lo_off = (size - 1) / 2, hi_off = size - 1 - lo_off; /* floor and ceil of (size-1)/2 */
  for (int64_t n = 0; n < N; n++)
    for (int64_t ch = 0; ch < C; ch++)
      for (int64_t i = 0; i < S; i++) {
        double s = 0;
        for (int64_t c2 = GPUX__MAX(0, ch - lo_off); c2 <= GPUX__MIN(C - 1, ch + hi_off); c2++) {
          double v = gpux__load_f64(x->dtype, x->data, (n * C + c2) * S + i);
          s += v * v;
        }
        int64_t at = (n * C + ch) * S + i;
        double v = gpux__load_f64(x->dtype, x->data, at);
        gpux__store_f64(y->dtype, y->data, at, v / pow(bias + alpha / (double)size * s, beta));
      }
  return 0;
}

const gpux__op_def gpux__ops_norm[] = {
  {"", "Softmax", op_softmax, 1, 0},
  {"", "LogSoftmax", op_log_softmax, 1, 0},
  {"", "Hardmax", op_hardmax, 1, 0},
  {"", "BatchNormalization", op_batch_norm, 1, 0},
  {"", "InstanceNormalization", op_instance_norm, 1, 0},
  {"", "GroupNormalization", op_group_norm, 1, 0},
  {"", "LayerNormalization", op_layer_norm, 1, 0},
  {"", "RMSNormalization", op_rms_norm, 1, 0},
  {"", "LpNormalization", op_lp_norm, 1, 0},
  {"", "MeanVarianceNormalization", op_mvn, 1, 0},
  {"", "LRN", op_lrn, 1, 0},
  {0},
};
