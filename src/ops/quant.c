/* quant.c — quantization operators: QuantizeLinear and DequantizeLinear (per-tensor, per-axis
 * and blocked scales; 16/8/4/2-bit integers, float8 and float4 targets), DynamicQuantizeLinear,
 * and the integer kernels MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv.
 *
 * Integer matmul and 1-D/2-D convolution run on the packed 8-bit GEMM of igemm.c (AVX-512 VNNI
 * where the CPU has it), convolution packing its im2col columns straight into the GEMM's panels;
 * other convolutions are plain direct loops. Sums wrap to int32 the way the ONNX reference does;
 * the QLinear ops then requantize in double. */
#include "ops/simd.h"
#include "ops/igemm.h"
#include "core/scratch.h"
#include <math.h>
#include <stdatomic.h>

/* ---- dtype helpers ---- */

static int is_int_quant_type(int dt) {
  switch (dt) {
  case GPUX_DT_UINT8: case GPUX_DT_INT8: case GPUX_DT_UINT16: case GPUX_DT_INT16:
  case GPUX_DT_UINT4: case GPUX_DT_INT4: case GPUX_DT_UINT2: case GPUX_DT_INT2:
    return 1;
  }
  return 0;
}

static int is_float8_type(int dt) {
  return dt == GPUX_DT_FLOAT8E4M3FN || dt == GPUX_DT_FLOAT8E4M3FNUZ || dt == GPUX_DT_FLOAT8E5M2 ||
         dt == GPUX_DT_FLOAT8E5M2FNUZ || dt == GPUX_DT_FLOAT8E8M0;
}

static int is_real_type(int dt) {
  return dt == GPUX_DT_FLOAT || dt == GPUX_DT_DOUBLE || dt == GPUX_DT_FLOAT16 || dt == GPUX_DT_BFLOAT16;
}

/* The saturation range of an integer quantized type. */
static void int_range(int dt, int64_t *lo, int64_t *hi) {
  switch (dt) {
  case GPUX_DT_UINT8: *lo = 0; *hi = 255; return;
  case GPUX_DT_INT8: *lo = -128; *hi = 127; return;
  case GPUX_DT_UINT16: *lo = 0; *hi = 65535; return;
  case GPUX_DT_INT16: *lo = -32768; *hi = 32767; return;
  case GPUX_DT_UINT4: *lo = 0; *hi = 15; return;
  case GPUX_DT_INT4: *lo = -8; *hi = 7; return;
  case GPUX_DT_UINT2: *lo = 0; *hi = 3; return;
  case GPUX_DT_INT2: *lo = -2; *hi = 1; return;
  }
  *lo = INT32_MIN;
  *hi = INT32_MAX;
}

/* Rounds v to the precision of a floating dtype (the precision arithmetic happens in). */
static double round_to(int dt, double v) {
  switch (dt) {
  case GPUX_DT_FLOAT: return (float)v;
  case GPUX_DT_FLOAT16: return gpux__f16_to_f32(gpux__f32_to_f16((float)v));
  case GPUX_DT_BFLOAT16: return gpux__bf16_to_f32(gpux__f32_to_bf16((float)v));
  }
  return v;
}

/* numpy's promotion between two real dtypes: the type arithmetic between them happens in. */
static int promote_real(int a, int b) {
  if (a == GPUX_DT_DOUBLE || b == GPUX_DT_DOUBLE) return GPUX_DT_DOUBLE;
  if (a == GPUX_DT_FLOAT || b == GPUX_DT_FLOAT) return GPUX_DT_FLOAT;
  if (a == b) return a;
  return GPUX_DT_FLOAT; /* float16 with bfloat16 */
}

/* Value rounded to nearest even, saturated into [lo, hi]. */
static int64_t sat_rint(double v, int64_t lo, int64_t hi) {
  if (isnan(v)) return 0 < lo ? lo : (0 > hi ? hi : 0);
  v = nearbyint(v);
  if (v <= (double)lo) return lo;
  if (v >= (double)hi) return hi;
  return (int64_t)v;
}

/* y[i] = acc[i] (+ add, wrapping as int32) requantized into 8 bits: acc * mult + yz (a product,
 * then a sum, each rounded to double) rounded to nearest even and saturated, as sat_rint does it:
 * the hot loop of QLinearConv and QLinearMatMul, once per output channel or tensor. */
static void requant8_c(const int32_t *acc, int64_t n, int32_t add, double mult, double yz, int out_dt, void *y) {
  int64_t lo = out_dt == GPUX_DT_UINT8 ? 0 : -128, hi = out_dt == GPUX_DT_UINT8 ? 255 : 127;
  for (int64_t i = 0; i < n; i++) {
    int64_t v = sat_rint((double)(int32_t)((uint32_t)acc[i] + (uint32_t)add) * mult + yz, lo, hi);
    if (out_dt == GPUX_DT_UINT8) ((uint8_t *)y)[i] = (uint8_t)v;
    else ((int8_t *)y)[i] = (int8_t)v;
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* The same with AVX2, 8 at a time (GCC leaves nearbyint scalar): the same product, sum and
 * round-half-even (NaN as 0), so the same bytes. */
__attribute__((target("avx2"))) static void requant8_avx2(const int32_t *acc, int64_t n, int32_t add, double mult,
                                                           double yz, int out_dt, void *y) {
  int u8 = out_dt == GPUX_DT_UINT8;
  const __m256d m = _mm256_set1_pd(mult), z = _mm256_set1_pd(yz), lo = _mm256_set1_pd(u8 ? 0 : -128),
                hi = _mm256_set1_pd(u8 ? 255 : 127);
  const __m256i a = _mm256_set1_epi32(add);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i s = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(acc + i)), a);
    __m256d v[2] = {_mm256_cvtepi32_pd(_mm256_castsi256_si128(s)), _mm256_cvtepi32_pd(_mm256_extracti128_si256(s, 1))};
    __m128i q[2];
    for (int h = 0; h < 2; h++) {
      __m256d t = _mm256_add_pd(_mm256_mul_pd(v[h], m), z);
      t = _mm256_andnot_pd(_mm256_cmp_pd(t, t, _CMP_UNORD_Q), t); /* NaN -> 0 */
      t = _mm256_round_pd(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q[h] = _mm256_cvttpd_epi32(_mm256_min_pd(_mm256_max_pd(t, lo), hi));
    }
    __m128i w = _mm_packs_epi32(q[0], q[1]); /* in [-128, 255]: no saturation here */
    _mm_storel_epi64((__m128i *)((uint8_t *)y + i), u8 ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w));
  }
  requant8_c(acc + i, n - i, add, mult, yz, out_dt, (uint8_t *)y + i);
}
#endif

static void requant8(const int32_t *acc, int64_t n, int32_t add, double mult, double yz, int out_dt, void *y) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    requant8_avx2(acc, n, add, mult, yz, out_dt, y);
    return;
  }
#endif
  requant8_c(acc, n, add, mult, yz, out_dt, y);
}

/* ---- quantization granularity ----
 * x is viewed as [outer, len, inner] around the axis. The scale (and zero point) element that
 * applies to x[o, j, r] is: 0 per tensor; j per axis; (o * s_len + j / block) * inner + r when
 * blocked. */
typedef struct {
  int mode;                    /* 0 per tensor, 1 per axis, 2 blocked */
  int64_t outer, len, inner;   /* x around the axis */
  int64_t block, s_len;        /* blocked: block size and the scale's length along the axis */
} qgrain;

static int qgrain_init(gpux__kctx *k, const gpux_tensor *x, const gpux_tensor *scale, int64_t axis_attr,
                       int64_t block_size, qgrain *g) {
  memset(g, 0, sizeof *g);
  int64_t sc = gpux_tensor_count(scale);
  g->outer = 1;
  g->len = 1;
  g->inner = gpux_tensor_count(x);
  if (sc == 1) return 0; /* per tensor (a scalar, or one value of any shape) */
  if (x->ndim == 0) return gpux__kerr(k, GPUX_E_SHAPE, "a scalar input needs a scalar scale");
  int axis;
  int rc = gpux__axis(k, axis_attr, x->ndim, &axis);
  if (rc) return rc;
  g->outer = gpux__shape_count(axis, x->dims);
  g->len = x->dims[axis];
  g->inner = gpux__shape_count(x->ndim - axis - 1, x->dims + axis + 1);
  if (block_size > 0) {
    if (scale->ndim != x->ndim)
      return gpux__kerr(k, GPUX_E_SHAPE, "blocked quantization needs a scale of rank %d, got rank %d", x->ndim, scale->ndim);
    int64_t want = (g->len + block_size - 1) / block_size;
    for (int d = 0; d < x->ndim; d++) {
      int64_t e = d == axis ? want : x->dims[d];
      if (scale->dims[d] != e)
        return gpux__kerr(k, GPUX_E_SHAPE, "blocked scale dim %d is %lld, expected %lld (block_size %lld)", d,
                          (long long)scale->dims[d], (long long)e, (long long)block_size);
    }
    g->mode = 2;
    g->block = block_size;
    g->s_len = want;
    return 0;
  }
  if (block_size < 0) return gpux__kerr(k, GPUX_E_INVALID, "block_size %lld is negative", (long long)block_size);
  if (scale->ndim != 1 || scale->dims[0] != g->len)
    return gpux__kerr(k, GPUX_E_SHAPE, "per-axis scale must be 1-D of %lld values (axis %d), got %lld values",
                      (long long)g->len, axis, (long long)sc);
  g->mode = 1;
  return 0;
}

/* Index of the scale element for x[o, j, r0] and its step along r. */
static int64_t qgrain_index(const qgrain *g, int64_t o, int64_t j, int64_t *step) {
  switch (g->mode) {
  case 1: *step = 0; return j;
  case 2: *step = 1; return (o * g->s_len + j / g->block) * g->inner;
  }
  *step = 0;
  return 0;
}

static int check_same_shape(gpux__kctx *k, const gpux_tensor *a, const gpux_tensor *b, const char *what) {
  int same = a->ndim == b->ndim;
  for (int d = 0; same && d < a->ndim; d++) same = a->dims[d] == b->dims[d];
  if (!same && !(gpux_tensor_count(a) == 1 && gpux_tensor_count(b) == 1))
    return gpux__kerr(k, GPUX_E_SHAPE, "%s must have the scale's shape", what);
  return 0;
}

/* ---- QuantizeLinear ---- */

typedef struct {
  const gpux_tensor *x, *scale, *zp;
  gpux_tensor *y;
  qgrain g;
  int out_dt, prec_dt, saturate;
  int64_t lo, hi;
} quant_job;

/* Elements [begin, end) of x, walked as segments of rows x[o, j, r0:r1]. */
static void quantize_range(void *ctx, int64_t begin, int64_t end) {
  const quant_job *q = ctx;
  const qgrain *g = &q->g;
  int xdt = q->x->dtype, sdt = q->scale->dtype, odt = q->out_dt;
  int fast = xdt == GPUX_DT_FLOAT && sdt == GPUX_DT_FLOAT && q->prec_dt == GPUX_DT_FLOAT && is_int_quant_type(odt);
  for (int64_t e = begin; e < end;) {
    int64_t row = e / g->inner, r0 = e % g->inner, r1 = GPUX__MIN(g->inner, r0 + (end - e));
    int64_t o = row / g->len, j = row % g->len, step;
    int64_t si = qgrain_index(g, o, j, &step);
    int64_t base = row * g->inner;
    e += r1 - r0;
    if (fast && step == 0 && (odt == GPUX_DT_UINT8 || odt == GPUX_DT_INT8)) {
      /* float32 to 8 bits with one scale for the segment: the hot loop */
      const float *x = (const float *)q->x->data + base;
      float s = ((const float *)q->scale->data)[si], lo = (float)q->lo, hi = (float)q->hi;
      float zp = q->zp ? (float)gpux__load_i64(q->zp->dtype, q->zp->data, si) : 0.0f;
      for (int64_t r = r0; r < r1; r++) {
        float v = nearbyintf(x[r] / s) + zp;
        v = v < lo ? lo : v > hi ? hi : v;
        if (odt == GPUX_DT_UINT8) ((uint8_t *)q->y->data)[base + r] = (uint8_t)v;
        else ((int8_t *)q->y->data)[base + r] = (int8_t)v;
      }
      continue;
    }
    if (fast) { /* float32 in, float32 scale, integer out */
      const float *x = (const float *)q->x->data + base, *s = (const float *)q->scale->data + si;
      for (int64_t r = r0; r < r1; r++) {
        int64_t zp = q->zp ? gpux__load_i64(q->zp->dtype, q->zp->data, si + r * step) : 0;
        float v = x[r] / s[r * step];
        int64_t iv = sat_rint((double)v, INT32_MIN, INT32_MAX) + zp;
        gpux__store_i64(odt, q->y->data, base + r, iv < q->lo ? q->lo : iv > q->hi ? q->hi : iv);
      }
      continue;
    }
    for (int64_t r = r0; r < r1; r++) {
      int64_t idx = si + r * step;
      double v = round_to(q->prec_dt, gpux__load_f64(xdt, q->x->data, base + r) / gpux__load_f64(sdt, q->scale->data, idx));
      if (is_int_quant_type(odt)) {
        int64_t zp = q->zp ? gpux__load_i64(q->zp->dtype, q->zp->data, idx) : 0;
        int64_t iv = sat_rint(v, INT32_MIN, INT32_MAX) + zp;
        gpux__store_i64(odt, q->y->data, base + r, iv < q->lo ? q->lo : iv > q->hi ? q->hi : iv);
      } else { /* minifloats: float4 adds its zero point, float8 ignores it (as the reference) */
        if (odt == GPUX_DT_FLOAT4E2M1 && q->zp) v += gpux__load_f64(q->zp->dtype, q->zp->data, idx);
        int sat = odt == GPUX_DT_FLOAT4E2M1 ? 1 : q->saturate;
        ((uint8_t *)q->y->data)[base + r] = gpux__f32_to_minifloat(odt, (float)v, sat);
      }
    }
  }
}

static int op_quantize_linear(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *scale = IN(1), *zp = IN(2);
  if (!x || !scale) return gpux__kerr(k, GPUX_E_INVALID, "x and y_scale are required");
  if (!is_real_type(x->dtype) && x->dtype != GPUX_DT_INT32)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "x of type %s", gpux_dtype_name(x->dtype));
  if (!is_real_type(scale->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "y_scale of type %s", gpux_dtype_name(scale->dtype));
  int out_dt = (int)gpux__attr_int(k, "output_dtype", 0);
  if (zp) {
    if (out_dt && out_dt != zp->dtype)
      return gpux__kerr(k, GPUX_E_DTYPE, "output_dtype %d differs from y_zero_point's %s", out_dt, gpux_dtype_name(zp->dtype));
    out_dt = zp->dtype;
  }
  if (!out_dt) out_dt = GPUX_DT_UINT8;
  if (!is_int_quant_type(out_dt) && !is_float8_type(out_dt) && out_dt != GPUX_DT_FLOAT4E2M1)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "cannot quantize to %s", gpux_dtype_name(out_dt));
  quant_job q = {x, scale, zp, NULL, {0}, out_dt, 0, (int)gpux__attr_int(k, "saturate", 1), 0, 0};
  int rc = qgrain_init(k, x, scale, gpux__attr_int(k, "axis", 1), gpux__attr_int(k, "block_size", 0), &q.g);
  if (rc) return rc;
  if (zp && (rc = check_same_shape(k, zp, scale, "y_zero_point"))) return rc;
  int prec = (int)gpux__attr_int(k, "precision", 0);
  if (prec && !is_real_type(prec))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "precision %d is not a floating type", prec);
  q.prec_dt = prec ? prec : promote_real(is_real_type(x->dtype) ? x->dtype : GPUX_DT_DOUBLE, scale->dtype);
  int_range(out_dt, &q.lo, &q.hi);
  gpux_tensor *y = gpux__out(k, 0, out_dt, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  q.y = y;
  gpux__parallel_for(gpux_tensor_count(x), 16384, quantize_range, &q);
  return 0;
}

/* ---- DequantizeLinear ---- */

typedef struct {
  const gpux_tensor *x, *scale, *zp;
  gpux_tensor *y;
  qgrain g;
  int use_zp, calc_double;
} dequant_job;

/* Elements [begin, end) of x, walked as segments of rows x[o, j, r0:r1]. */
static void dequantize_range(void *ctx, int64_t begin, int64_t end) {
  const dequant_job *q = ctx;
  const qgrain *g = &q->g;
  int xdt = q->x->dtype, sdt = q->scale->dtype, ydt = q->y->dtype;
  int fast = sdt == GPUX_DT_FLOAT && ydt == GPUX_DT_FLOAT && (xdt == GPUX_DT_INT8 || xdt == GPUX_DT_UINT8);
  for (int64_t e = begin; e < end;) {
    int64_t row = e / g->inner, r0 = e % g->inner, r1 = GPUX__MIN(g->inner, r0 + (end - e));
    int64_t o = row / g->len, j = row % g->len, step;
    int64_t si = qgrain_index(g, o, j, &step);
    int64_t base = row * g->inner;
    e += r1 - r0;
    if (fast) { /* 8-bit integers to float32: the hot loop */
      const float *s = (const float *)q->scale->data + si;
      float *y = (float *)q->y->data + base;
      if (step == 0) {
        float sv = s[0];
        int32_t zp = q->use_zp ? (int32_t)gpux__load_i64(q->zp->dtype, q->zp->data, si) : 0;
        if (xdt == GPUX_DT_INT8) {
          const int8_t *x = (const int8_t *)q->x->data + base;
          for (int64_t r = r0; r < r1; r++) y[r] = (float)(x[r] - zp) * sv;
        } else {
          const uint8_t *x = (const uint8_t *)q->x->data + base;
          for (int64_t r = r0; r < r1; r++) y[r] = (float)(x[r] - zp) * sv;
        }
        continue;
      }
      for (int64_t r = r0; r < r1; r++) {
        int64_t zp = q->use_zp ? gpux__load_i64(q->zp->dtype, q->zp->data, si + r) : 0;
        int64_t xv = xdt == GPUX_DT_INT8 ? ((const int8_t *)q->x->data)[base + r] : ((const uint8_t *)q->x->data)[base + r];
        y[r] = (float)(xv - zp) * s[r];
      }
      continue;
    }
    for (int64_t r = r0; r < r1; r++) {
      int64_t idx = si + r * step;
      /* as the reference: x as float32, minus the zero point, times the scale */
      double dx = (float)gpux__load_f64(xdt, q->x->data, base + r);
      if (q->use_zp) dx -= (double)gpux__load_i64(q->zp->dtype, q->zp->data, idx);
      if (!q->calc_double) dx = (float)dx;
      double v = dx * gpux__load_f64(sdt, q->scale->data, idx);
      if (!q->calc_double) v = (float)v;
      gpux__store_f64(ydt, q->y->data, base + r, v);
    }
  }
}

static int op_dequantize_linear(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *scale = IN(1), *zp = IN(2);
  if (!x || !scale) return gpux__kerr(k, GPUX_E_INVALID, "x and x_scale are required");
  if (!is_int_quant_type(x->dtype) && !is_float8_type(x->dtype) && x->dtype != GPUX_DT_FLOAT4E2M1 &&
      x->dtype != GPUX_DT_INT32)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "cannot dequantize %s", gpux_dtype_name(x->dtype));
  if (!is_real_type(scale->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "x_scale of type %s", gpux_dtype_name(scale->dtype));
  int out_dt = (int)gpux__attr_int(k, "output_dtype", 0);
  if (!out_dt) out_dt = scale->dtype;
  if (!is_real_type(out_dt)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "output_dtype %d", out_dt);
  dequant_job q = {x, scale, zp, NULL, {0}, 0, 0};
  int rc = qgrain_init(k, x, scale, gpux__attr_int(k, "axis", 1), gpux__attr_int(k, "block_size", 0), &q.g);
  if (rc) return rc;
  if (zp) {
    if ((rc = check_same_shape(k, zp, scale, "x_zero_point"))) return rc;
    /* float8 and float4 zero points carry only the type; the reference ignores their value */
    q.use_zp = is_int_quant_type(x->dtype) || x->dtype == GPUX_DT_INT32;
    if (q.use_zp && zp->dtype != x->dtype)
      return gpux__kerr(k, GPUX_E_DTYPE, "x_zero_point is %s, x is %s", gpux_dtype_name(zp->dtype), gpux_dtype_name(x->dtype));
  }
  /* numpy promotes float32 minus an int32 zero point, or times a double scale, to double */
  q.calc_double = scale->dtype == GPUX_DT_DOUBLE || (q.use_zp && x->dtype == GPUX_DT_INT32);
  gpux_tensor *y = gpux__out(k, 0, out_dt, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  q.y = y;
  gpux__parallel_for(gpux_tensor_count(x), 16384, dequantize_range, &q);
  return 0;
}

/* ---- DynamicQuantizeLinear: uint8, scale and zero point from the data's range ---- */

typedef struct {
  const float *x;   /* [n] */
  uint8_t *y;       /* [n] */
  float scale, zp;
} dynq_job;

static void dynq_quantize(const float *restrict x, uint8_t *restrict y, int64_t n, float scale, float zp) {
  for (int64_t i = 0; i < n; i++) {
    float q = nearbyintf(x[i] / scale) + zp;
    y[i] = (uint8_t)(q > 0.0f ? (q < 255.0f ? q : 255.0f) : 0.0f);
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* The same with AVX2, 8 at a time (GCC leaves the loop above scalar): the same division and
 * round-half-even, so the same bytes. */
__attribute__((target("avx2"))) static void dynq_quantize_avx2(const float *x, uint8_t *y, int64_t n, float scale, float zp) {
  __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp), lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, z), lo), hi);
    __m256i v = _mm256_cvttps_epi32(q);
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)(y + i), _mm_packus_epi16(w, w));
  }
  dynq_quantize(x + i, y + i, n - i, scale, zp);
}
#endif

static void dynq_range(void *ctx, int64_t begin, int64_t end) {
  const dynq_job *j = ctx;
#if defined(__GNUC__) && defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    dynq_quantize_avx2(j->x + begin, j->y + begin, end - begin, j->scale, j->zp);
    return;
  }
#endif
  dynq_quantize(j->x + begin, j->y + begin, end - begin, j->scale, j->zp);
}

/* The range of x[n] widened to include 0 (NaN ignored), in 8 lanes. */
GPUX_SIMD_CLONES
static void dynq_minmax(const float *restrict x, int64_t n, float *minx, float *maxx) {
  float lo[8] = {0}, hi[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      lo[l] = x[i + l] < lo[l] ? x[i + l] : lo[l];
      hi[l] = x[i + l] > hi[l] ? x[i + l] : hi[l];
    }
  for (; i < n; i++) {
    lo[0] = x[i] < lo[0] ? x[i] : lo[0];
    hi[0] = x[i] > hi[0] ? x[i] : hi[0];
  }
  for (int l = 1; l < 8; l++) {
    lo[0] = lo[l] < lo[0] ? lo[l] : lo[0];
    hi[0] = hi[l] > hi[0] ? hi[l] : hi[0];
  }
  *minx = lo[0];
  *maxx = hi[0];
}

static int op_dynamic_quantize_linear(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "x is required");
  if (!is_real_type(x->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "x of type %s", gpux_dtype_name(x->dtype));
  gpux_tensor *y = gpux__out_raw(k, 0, GPUX_DT_UINT8, x->ndim, x->dims);
  if (!y) return k->status;
  gpux_tensor *ys = gpux__out(k, 1, x->dtype, 0, NULL);
  if (!ys) return k->status;
  gpux_tensor *yz = gpux__out(k, 2, GPUX_DT_UINT8, 0, NULL);
  if (!yz) return k->status;
  if (k->shape_only) return 0;
  int64_t n = gpux_tensor_count(x);
  float *own = NULL;
  const float *xf = x->data;
  if (x->dtype != GPUX_DT_FLOAT) {
    if (!(own = malloc(sizeof(float) * (size_t)GPUX__MAX(1, n)))) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) own[i] = (float)gpux__load_f64(x->dtype, x->data, i);
    xf = own;
  }
  float maxx, minx; /* the range always includes 0 */
  dynq_minmax(xf, n, &minx, &maxx);
  /* all zeros: an empty range, scale 1 (so zero point 0 and y 0) */
  float scale = maxx == minx ? 1.0f : (maxx - minx) / 255.0f;
  float izp = 0.0f - minx / scale;
  dynq_job j = {xf, y->data, scale, nearbyintf(izp < 0 ? 0 : izp > 255 ? 255 : izp)};
  gpux__parallel_for(n, 32768, dynq_range, &j);
  gpux__store_f64(x->dtype, ys->data, 0, scale);
  ((uint8_t *)yz->data)[0] = (uint8_t)j.zp;
  free(own);
  return 0;
}

/* ---- integer matmul shared by MatMulInteger and QLinearMatMul ----
 * Numpy matmul shapes: 1-D operands get a dimension prepended (a) or appended (b) and removed
 * from the result; batch dimensions broadcast. */
typedef struct {
  int64_t m, kk, n;                 /* per-matrix sizes */
  int out_ndim;
  int64_t out_dims[GPUX_MAX_DIMS];
  int batch_ndim;
  int64_t batch_dims[GPUX_MAX_DIMS];
  int64_t a_bstr[GPUX_MAX_DIMS], b_bstr[GPUX_MAX_DIMS]; /* batch strides in matrices, 0 when broadcast */
  int64_t batch;                    /* product of batch_dims */
} mm_shape;

static int mm_shape_init(gpux__kctx *k, const gpux_tensor *a, const gpux_tensor *b, mm_shape *s) {
  memset(s, 0, sizeof *s);
  if (a->ndim < 1 || b->ndim < 1) return gpux__kerr(k, GPUX_E_SHAPE, "matmul operands must have rank >= 1");
  int64_t ad[GPUX_MAX_DIMS + 1], bd[GPUX_MAX_DIMS + 1];
  int an = a->ndim, bn = b->ndim;
  if (an == 1) { ad[0] = 1; ad[1] = a->dims[0]; an = 2; }
  else memcpy(ad, a->dims, sizeof(int64_t) * (size_t)an);
  if (bn == 1) { bd[0] = b->dims[0]; bd[1] = 1; bn = 2; }
  else memcpy(bd, b->dims, sizeof(int64_t) * (size_t)bn);
  s->m = ad[an - 2];
  s->kk = ad[an - 1];
  s->n = bd[bn - 1];
  if (bd[bn - 2] != s->kk)
    return gpux__kerr(k, GPUX_E_SHAPE, "matmul inner dimensions differ: %lld vs %lld", (long long)s->kk, (long long)bd[bn - 2]);
  int abn = an - 2, bbn = bn - 2;
  int nb = GPUX__MAX(abn, bbn);
  if (nb + 2 > GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "matmul rank above %d", GPUX_MAX_DIMS);
  s->batch_ndim = nb;
  int64_t astr = 1, bstr = 1;
  for (int d = nb - 1; d >= 0; d--) {
    int ai = d - (nb - abn), bi = d - (nb - bbn);
    int64_t x = ai >= 0 ? ad[ai] : 1, y = bi >= 0 ? bd[bi] : 1;
    if (x != y && x != 1 && y != 1)
      return gpux__kerr(k, GPUX_E_SHAPE, "matmul batch dimensions %lld and %lld do not broadcast", (long long)x, (long long)y);
    s->batch_dims[d] = x == 1 ? y : x;
    s->a_bstr[d] = x == 1 ? 0 : astr;
    s->b_bstr[d] = y == 1 ? 0 : bstr;
    astr *= x;
    bstr *= y;
  }
  s->batch = gpux__shape_count(nb, s->batch_dims);
  int on = 0;
  for (int d = 0; d < nb; d++) s->out_dims[on++] = s->batch_dims[d];
  if (a->ndim > 1) s->out_dims[on++] = s->m;
  if (b->ndim > 1) s->out_dims[on++] = s->n;
  s->out_ndim = on;
  return 0;
}

/* Matrix indices of a and b for output batch index bi. */
static void mm_batch_index(const mm_shape *s, int64_t bi, int64_t *ai, int64_t *bj) {
  int64_t a = 0, b = 0;
  for (int d = s->batch_ndim - 1; d >= 0; d--) {
    int64_t c = bi % s->batch_dims[d];
    bi /= s->batch_dims[d];
    a += c * s->a_bstr[d];
    b += c * s->b_bstr[d];
  }
  *ai = a;
  *bj = b;
}

/* A zero point that applies per row of a ([M] values, or one) or per column of b ([N]). */
static int zero_point_vector(gpux__kctx *k, const gpux_tensor *zp, int64_t len, const char *what, int64_t *out) {
  if (!zp) { for (int64_t i = 0; i < len; i++) out[i] = 0; return 0; }
  int64_t c = gpux_tensor_count(zp);
  if (c != 1 && c != len)
    return gpux__kerr(k, GPUX_E_SHAPE, "%s has %lld values, expected 1 or %lld", what, (long long)c, (long long)len);
  if (!zp->data) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "%s is not known", what);
  for (int64_t i = 0; i < len; i++) out[i] = gpux__load_i64(zp->dtype, zp->data, c == 1 ? 0 : i);
  return 0;
}

/* The unsigned/signed forms igemm.h computes in: an int8 panel value is stored plus 128 (ox),
 * a uint8 row value minus 128 (ow). With x0 = ox + x's zero point and w0 = ow - w's zero point,
 *   sum_k (x - xz)(w - wz) = sum_k xu*ws + w0 * sum_k xu - x0 * (sum_k ws + K * w0)
 * (xu, ws the stored bytes), every term in wrapping 32-bit arithmetic as the reference's int32. */
static int32_t igemm_fix(int32_t dot, int32_t colsum, int32_t x0, int32_t w0, int32_t rowsum, int64_t kk) {
  uint32_t v = (uint32_t)dot + (uint32_t)w0 * (uint32_t)colsum;
  v -= (uint32_t)x0 * ((uint32_t)rowsum + (uint32_t)kk * (uint32_t)w0);
  return (int32_t)v;
}

/* Scratch of one igemm task: a panel and the products of up to IGEMM_ROWS rows with it. */
#define IGEMM_ROWS 256
typedef struct {
  uint8_t *panel;   /* [k4][NT][4] */
  int32_t *c;       /* [IGEMM_ROWS][NT] */
  int32_t colsum[GPUX__IGEMM_NT];
} igemm_scratch;

/* The task's thread's scratch blocks (kept for its next task: no allocation in steady runs). */
static int igemm_scratch_init(igemm_scratch *t, int64_t k4) {
  t->panel = gpux__scratch(GPUX__SCRATCH_IGEMM_PANEL, (size_t)GPUX__MAX(1, k4) * GPUX__IGEMM_NT * 4);
  t->c = gpux__scratch(GPUX__SCRATCH_IGEMM_C, sizeof(int32_t) * IGEMM_ROWS * GPUX__IGEMM_NT);
  return t->panel && t->c ? 0 : -1;
}

static void igemm_scratch_free(igemm_scratch *t) { (void)t; }

/* Multiply-adds a task of the 8-bit GEMM takes at least: a job for the pool costs waking a worker
 * and waiting for it, a few microseconds, in which VNNI does about a million. */
#define IGEMM_TASK_MACS 1048576

typedef struct {
  const mm_shape *s;
  const uint8_t *a;      /* [batch_a, m, kk] bytes */
  uint8_t aflip;         /* 0x80 when a is int8 */
  const int32_t *rows;   /* [batch_b, n, k4]: b's columns packed as rows */
  const int32_t *rowsum; /* [batch_b, n] */
  const int32_t *x0;     /* [m] per row of a */
  const int32_t *w0;     /* [n] per column of b */
  int need_colsum;
  int32_t *y;            /* [batch, m, n] */
  atomic_int failed;
} imm_job;

/* Tasks t = (batch item, run of NT rows of a): a's rows are the panel's columns. */
static void imm_tiles(void *ctx, int64_t begin, int64_t end) {
  imm_job *j = ctx;
  const mm_shape *s = j->s;
  enum { NT = GPUX__IGEMM_NT };
  int64_t k4 = (s->kk + 3) / 4, mt = (s->m + NT - 1) / NT;
  igemm_scratch t;
  if (igemm_scratch_init(&t, k4)) {
    atomic_store(&j->failed, 1);
    igemm_scratch_free(&t);
    return;
  }
  for (int64_t task = begin; task < end; task++) {
    int64_t bi = task / mt, m0 = (task % mt) * NT, nv = GPUX__MIN(NT, s->m - m0), ai, bj;
    mm_batch_index(s, bi, &ai, &bj);
    /* the panel: 4 consecutive bytes of a row of a make one column's word (zero past kk, and
     * in the columns past nv) */
    const uint8_t *a = j->a + (ai * s->m + m0) * s->kk;
    uint32_t flip = j->aflip * 0x01010101u;
    int64_t full = s->kk / 4, pn = s->kk - full * 4;
    for (int64_t c = 0; c < nv; c++) {
      const uint8_t *ar = a + c * s->kk;
      uint32_t *d = (uint32_t *)t.panel + c;
      for (int64_t q = 0; q < full; q++) {
        uint32_t v;
        memcpy(&v, ar + q * 4, 4);
        d[q * NT] = v ^ flip;
      }
      if (pn) {
        uint32_t v = 0;
        for (int64_t e = 0; e < pn; e++) v |= (uint32_t)(uint8_t)(ar[full * 4 + e] ^ j->aflip) << (8 * e);
        d[full * NT] = v;
      }
    }
    if (nv < NT)
      for (int64_t q = 0; q < k4; q++) memset(t.panel + (q * NT + nv) * 4, 0, (size_t)(NT - nv) * 4);
    int32_t *y = j->y + (bi * s->m + m0) * s->n;
    for (int64_t n0 = 0; n0 < s->n; n0 += IGEMM_ROWS) {
      int64_t nr = GPUX__MIN(IGEMM_ROWS, s->n - n0);
      gpux__igemm_panel(j->rows + (bj * s->n + n0) * k4, nr, k4, t.panel, t.c, j->need_colsum && n0 == 0 ? t.colsum : NULL);
      const int32_t *rs = j->rowsum + bj * s->n;
      for (int64_t c = 0; c < nv; c++)
        for (int64_t r = 0; r < nr; r++)
          y[c * s->n + n0 + r] = igemm_fix(t.c[r * NT + c], j->need_colsum ? t.colsum[c] : 0, j->x0[m0 + c], j->w0[n0 + r],
                                           rs[n0 + r], s->kk);
    }
  }
  igemm_scratch_free(&t);
}

/* Weights as igemm rows: rows[nb * nrows][k4] with their sums, and per row w0 = the shift of
 * the weights' type less its zero point (see igemm_fix). Made on every call, or once and kept in
 * the node's state when the weights and their zero point are initializers. */
typedef struct {
  gpux__node_state base;
  const gpux_tensor *w, *wz;  /* what was packed (kept: the initializers, checked on later runs) */
  int64_t nb, nrows, kk;      /* matrices, rows each, values per row */
  int32_t *rows, *rowsum, *w0;
  int need_colsum;            /* some w0 is not zero */
} igemm_weights;

static void igemm_weights_free(igemm_weights *iw) {
  free(iw->rows), free(iw->rowsum), free(iw->w0);
  iw->rows = iw->rowsum = iw->w0 = NULL;
}

static void igemm_weights_destroy(gpux__node_state *st) {
  igemm_weights_free((igemm_weights *)st);
  free(st);
}

/* Packs nb matrices of w: conv, rows of kk values ([nrows, kk] each, a convolution's weights);
 * otherwise columns ([kk, nrows] each, a matmul's B); wz one zero point, or one per row. */
static int igemm_weights_make(gpux__kctx *k, igemm_weights *iw, const gpux_tensor *w, const gpux_tensor *wz, int64_t nb,
                              int64_t nrows, int64_t kk, int conv, const char *zp_name) {
  int64_t k4 = (kk + 3) / 4;
  iw->w = w, iw->wz = wz, iw->nb = nb, iw->nrows = nrows, iw->kk = kk, iw->need_colsum = 0;
  iw->rows = malloc(sizeof(int32_t) * (size_t)GPUX__MAX(1, nb * nrows * k4));
  iw->rowsum = malloc(sizeof(int32_t) * (size_t)GPUX__MAX(1, nb * nrows));
  iw->w0 = malloc(sizeof(int32_t) * (size_t)GPUX__MAX(1, nrows));
  int64_t *z = malloc(sizeof(int64_t) * (size_t)GPUX__MAX(1, nrows));
  int rc = iw->rows && iw->rowsum && iw->w0 && z ? zero_point_vector(k, wz, nrows, zp_name, z)
                                                 : gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  if (!rc) {
    int u8 = w->dtype == GPUX_DT_UINT8;
    for (int64_t i = 0; i < nb; i++)
      gpux__igemm_pack_rows((const uint8_t *)w->data + i * kk * nrows, u8, nrows, kk, conv ? kk : 1, conv ? 1 : nrows,
                            iw->rows + i * nrows * k4, iw->rowsum + i * nrows);
    for (int64_t r = 0; r < nrows; r++) iw->need_colsum |= (iw->w0[r] = (int32_t)((u8 ? 128 : 0) - z[r])) != 0;
  }
  free(z);
  if (rc) igemm_weights_free(iw);
  return rc;
}

/* The packed weights of input win (zero point input zin) for this call: the node's kept ones when
 * both are initializers (made on the first run), else made into *local (igemm_weights_free after).
 * NULL on error (k's status set). */
static const igemm_weights *igemm_weights_get(gpux__kctx *k, int win, int zin, igemm_weights *local, int64_t nb,
                                              int64_t nrows, int64_t kk, int conv, const char *zp_name) {
  const gpux_tensor *w = IN(win), *wz = IN(zin);
  memset(local, 0, sizeof *local);
  int keep = k->state && win < 64 && zin < 64 && (k->const_in >> win & 1) && (!wz || (k->const_in >> zin & 1));
  igemm_weights *st = keep ? (igemm_weights *)gpux__state_get(k) : NULL;
  if (keep && !st) {
    if (!(st = gpux__calloc(1, sizeof *st))) return NULL;
    st->base.destroy = igemm_weights_destroy;
    if (igemm_weights_make(k, st, w, wz, nb, nrows, kk, conv, zp_name)) {
      free(st);
      return NULL;
    }
    st->base.bytes = sizeof(int32_t) * (size_t)(nb * nrows * ((kk + 3) / 4) + nb * nrows + nrows);
    st = (igemm_weights *)gpux__state_keep(k, &st->base);
  }
  if (st && st->base.destroy == igemm_weights_destroy && st->w == w && st->wz == wz && st->nb == nb &&
      st->nrows == nrows && st->kk == kk)
    return st;
  return igemm_weights_make(k, local, w, wz, nb, nrows, kk, conv, zp_name) ? NULL : local;
}

/* y[batch, m, n] = (a - azp) x (b - bzp) in int32 (wrapping as the reference's int32 matmul);
 * azp per row of a, bzp per column of b (inputs bin and bin + 2 of the node). b's columns are
 * packed as igemm rows, a's rows make the panels. */
static int int_matmul(gpux__kctx *k, const mm_shape *s, const gpux_tensor *a, int bin, const gpux_tensor *azp,
                      int32_t *y) {
  const gpux_tensor *b = IN(bin);
  int64_t nb = (s->kk * s->n) != 0 ? gpux_tensor_count(b) / (s->kk * s->n) : 0;
  int32_t *x0 = malloc(sizeof(int32_t) * (size_t)GPUX__MAX(1, s->m));
  int64_t *az = malloc(sizeof(int64_t) * (size_t)GPUX__MAX(1, s->m));
  igemm_weights local;
  const igemm_weights *iw = NULL;
  int rc = 0;
  if (!x0 || !az) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  if ((rc = zero_point_vector(k, azp, s->m, "a_zero_point", az))) goto done;
  if (!(iw = igemm_weights_get(k, bin, bin + 2, &local, nb, s->n, s->kk, 0, "b_zero_point"))) { rc = k->status; goto done; }
  for (int64_t i = 0; i < s->m; i++) x0[i] = (int32_t)((a->dtype == GPUX_DT_INT8 ? 128 : 0) + az[i]);
  int64_t mt = (s->m + GPUX__IGEMM_NT - 1) / GPUX__IGEMM_NT;
  imm_job j = {s, a->data, a->dtype == GPUX_DT_INT8 ? 0x80 : 0, iw->rows, iw->rowsum, x0, iw->w0, iw->need_colsum, y, 0};
  gpux__parallel_for(s->batch * mt, GPUX__MAX(1, IGEMM_TASK_MACS / GPUX__MAX(1, GPUX__IGEMM_NT * s->kk * s->n)), imm_tiles, &j);
  if (atomic_load(&j.failed)) rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
done:
  if (iw == &local) igemm_weights_free(&local);
  free(x0);
  free(az);
  return rc;
}

static int is_8bit(int dt) { return dt == GPUX_DT_INT8 || dt == GPUX_DT_UINT8; }

static int op_matmul_integer(gpux__kctx *k) {
  const gpux_tensor *a = IN(0), *b = IN(1), *azp = IN(2); /* b_zero_point (3): int_matmul */
  if (!a || !b) return gpux__kerr(k, GPUX_E_INVALID, "A and B are required");
  if (!is_8bit(a->dtype) || !is_8bit(b->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "MatMulInteger of %s and %s", gpux_dtype_name(a->dtype), gpux_dtype_name(b->dtype));
  mm_shape s;
  int rc = mm_shape_init(k, a, b, &s);
  if (rc) return rc;
  gpux_tensor *y = gpux__out_raw(k, 0, GPUX_DT_INT32, s.out_ndim, s.out_dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  return int_matmul(k, &s, a, 1, azp, y->data);
}

/* A scale that applies per tensor or per row/column: `len` doubles. */
static int scale_vector(gpux__kctx *k, const gpux_tensor *t, int64_t len, const char *what, double *out) {
  if (!t) return gpux__kerr(k, GPUX_E_INVALID, "%s is required", what);
  if (!is_real_type(t->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s of type %s", what, gpux_dtype_name(t->dtype));
  int64_t c = gpux_tensor_count(t);
  if (c != 1 && c != len)
    return gpux__kerr(k, GPUX_E_SHAPE, "%s has %lld values, expected 1 or %lld", what, (long long)c, (long long)len);
  for (int64_t i = 0; i < len; i++) out[i] = gpux__load_f64(t->dtype, t->data, c == 1 ? 0 : i);
  return 0;
}

/* The requantization multiplier a_scale * b_scale / y_scale, rounded at each step to the scales'
 * type as numpy does. */
static double requant_multiplier(int dt, double as, double bs, double ys) {
  return round_to(dt, round_to(dt, as * bs) / ys);
}

static int op_qlinear_matmul(gpux__kctx *k) {
  const gpux_tensor *a = IN(0), *as = IN(1), *azp = IN(2), *b = IN(3), *bs = IN(4), *ys = IN(6),
                    *yzp = IN(7);
  if (!a || !b || !as || !bs || !ys) return gpux__kerr(k, GPUX_E_INVALID, "a, b and the scales are required");
  if (!is_8bit(a->dtype) || !is_8bit(b->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "QLinearMatMul of %s and %s", gpux_dtype_name(a->dtype), gpux_dtype_name(b->dtype));
  int out_dt = yzp ? yzp->dtype : a->dtype;
  if (!is_8bit(out_dt)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "QLinearMatMul output %s", gpux_dtype_name(out_dt));
  mm_shape s;
  int rc = mm_shape_init(k, a, b, &s);
  if (rc) return rc;
  gpux_tensor *y = gpux__out_raw(k, 0, out_dt, s.out_ndim, s.out_dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t nacc = s.batch * s.m * s.n;
  int32_t *acc = malloc(sizeof(int32_t) * (size_t)GPUX__MAX(1, nacc));
  double *sa = malloc(sizeof(double) * (size_t)GPUX__MAX(1, s.m)), *sb = malloc(sizeof(double) * (size_t)GPUX__MAX(1, s.n));
  if (!acc || !sa || !sb) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  if ((rc = scale_vector(k, as, s.m, "a_scale", sa)) || (rc = scale_vector(k, bs, s.n, "b_scale", sb))) goto done;
  if (gpux_tensor_count(ys) != 1) { rc = gpux__kerr(k, GPUX_E_SHAPE, "y_scale must be a scalar"); goto done; }
  if ((rc = int_matmul(k, &s, a, 3, azp, acc))) goto done;
  double ysv = gpux__load_f64(ys->dtype, ys->data, 0);
  double yz = yzp ? (double)gpux__load_i64(yzp->dtype, yzp->data, 0) : 0;
  int dt = promote_real(as->dtype, promote_real(bs->dtype, ys->dtype));
  int64_t lo, hi;
  int_range(out_dt, &lo, &hi);
  if (gpux_tensor_count(as) == 1 && gpux_tensor_count(bs) == 1) { /* one multiplier for all */
    requant8(acc, nacc, 0, requant_multiplier(dt, sa[0], sb[0], ysv), yz, out_dt, y->data);
    goto done;
  }
  for (int64_t i = 0; i < nacc; i++) {
    int64_t r = (i / s.n) % s.m, c = i % s.n;
    double v = acc[i] * requant_multiplier(dt, sa[r], sb[c], ysv) + yz;
    gpux__store_i64(out_dt, y->data, i, sat_rint(v, lo, hi));
  }
done:
  free(acc);
  free(sa);
  free(sb);
  return rc;
}

/* ---- integer convolution shared by ConvInteger and QLinearConv ---- */

typedef struct {
  int nsp;                               /* spatial rank */
  int64_t n, c, m, group;                /* batch, input channels, output channels, groups */
  int64_t in[GPUX_MAX_DIMS], ks[GPUX_MAX_DIMS], out[GPUX_MAX_DIMS];
  int64_t stride[GPUX_MAX_DIMS], dil[GPUX_MAX_DIMS], pad[GPUX_MAX_DIMS]; /* pad: at the beginning */
} conv_geom;

static int conv_geometry(gpux__kctx *k, const gpux_tensor *x, const gpux_tensor *w, conv_geom *g) {
  memset(g, 0, sizeof *g);
  if (x->ndim < 3 || w->ndim != x->ndim)
    return gpux__kerr(k, GPUX_E_SHAPE, "conv needs x of rank >= 3 and w of the same rank (got %d and %d)", x->ndim, w->ndim);
  g->nsp = x->ndim - 2;
  g->n = x->dims[0];
  g->c = x->dims[1];
  g->m = w->dims[0];
  g->group = gpux__attr_int(k, "group", 1);
  if (g->group < 1 || g->c % g->group || g->m % g->group || w->dims[1] * g->group != g->c)
    return gpux__kerr(k, GPUX_E_SHAPE, "group %lld does not fit %lld input channels, w of %lld x %lld", (long long)g->group,
                      (long long)g->c, (long long)g->m, (long long)w->dims[1]);
  const int64_t *kshape, *strides, *dils, *pads;
  int nk = gpux__attr_ints(k, "kernel_shape", &kshape), ns = gpux__attr_ints(k, "strides", &strides),
      nd = gpux__attr_ints(k, "dilations", &dils), np = gpux__attr_ints(k, "pads", &pads);
  if ((nk && nk != g->nsp) || (ns && ns != g->nsp) || (nd && nd != g->nsp) || (np && np != 2 * g->nsp))
    return gpux__kerr(k, GPUX_E_INVALID, "kernel_shape/strides/dilations/pads do not match %d spatial dims", g->nsp);
  const char *auto_pad = gpux__attr_string(k, "auto_pad", "NOTSET");
  for (int d = 0; d < g->nsp; d++) {
    g->in[d] = x->dims[d + 2];
    g->ks[d] = w->dims[d + 2];
    if (nk && kshape[d] != g->ks[d]) return gpux__kerr(k, GPUX_E_SHAPE, "kernel_shape differs from w's shape");
    g->stride[d] = ns ? strides[d] : 1;
    g->dil[d] = nd ? dils[d] : 1;
    if (g->stride[d] < 1 || g->dil[d] < 1) return gpux__kerr(k, GPUX_E_INVALID, "strides and dilations must be positive");
    int64_t ek = (g->ks[d] - 1) * g->dil[d] + 1;
    if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER")) {
      g->out[d] = (g->in[d] + g->stride[d] - 1) / g->stride[d];
      int64_t total = GPUX__MAX(0, (g->out[d] - 1) * g->stride[d] + ek - g->in[d]);
      g->pad[d] = !strcmp(auto_pad, "SAME_UPPER") ? total / 2 : total - total / 2;
    } else if (!strcmp(auto_pad, "VALID")) {
      g->pad[d] = 0;
      g->out[d] = g->in[d] >= ek ? (g->in[d] - ek) / g->stride[d] + 1 : 0;
    } else if (!strcmp(auto_pad, "NOTSET")) {
      int64_t pb = np ? pads[d] : 0, pe = np ? pads[d + g->nsp] : 0;
      if (pb < 0 || pe < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative pads");
      g->pad[d] = pb;
      int64_t span = g->in[d] + pb + pe;
      g->out[d] = span >= ek ? (span - ek) / g->stride[d] + 1 : 0;
    } else {
      return gpux__kerr(k, GPUX_E_UNSUPPORTED, "auto_pad '%s'", auto_pad);
    }
  }
  return 0;
}

typedef struct {
  const conv_geom *g;
  const int32_t *x;   /* [n, c, in...] with the zero point subtracted */
  const int32_t *w;   /* [m, c / group, ks...] with the zero point subtracted */
  int32_t *y;         /* [n, m, out...] */
} iconv_job;

/* One (batch, output channel) plane per item; direct loops over kernel and input channels. */
static void iconv_planes(void *ctx, int64_t begin, int64_t end) {
  const iconv_job *j = ctx;
  const conv_geom *g = j->g;
  int nsp = g->nsp;
  int64_t out_count = gpux__shape_count(nsp, g->out), in_count = gpux__shape_count(nsp, g->in);
  int64_t k_count = gpux__shape_count(nsp, g->ks), cpg = g->c / g->group, mpg = g->m / g->group;
  for (int64_t plane = begin; plane < end; plane++) {
    int64_t b = plane / g->m, oc = plane % g->m, grp = oc / mpg;
    int32_t *y = j->y + plane * out_count;
    for (int64_t o = 0; o < out_count; o++) {
      int64_t oidx[GPUX_MAX_DIMS], rem = o;
      for (int d = nsp - 1; d >= 0; d--) { oidx[d] = rem % g->out[d]; rem /= g->out[d]; }
      int64_t acc = 0;
      for (int64_t kp = 0; kp < k_count; kp++) {
        int64_t kidx[GPUX_MAX_DIMS], krem = kp, off = 0, inside = 1;
        for (int d = nsp - 1; d >= 0; d--) { kidx[d] = krem % g->ks[d]; krem /= g->ks[d]; }
        for (int d = 0; d < nsp && inside; d++) {
          int64_t p = oidx[d] * g->stride[d] - g->pad[d] + kidx[d] * g->dil[d];
          if (p < 0 || p >= g->in[d]) inside = 0;
          off = off * g->in[d] + p;
        }
        if (!inside) continue;
        for (int64_t ci = 0; ci < cpg; ci++) {
          int64_t xc = grp * cpg + ci;
          acc += (int64_t)j->x[(b * g->c + xc) * in_count + off] * j->w[(oc * cpg + ci) * k_count + kp];
        }
      }
      y[o] = (int32_t)(uint32_t)acc;
    }
  }
}

/* 1-D and 2-D convolution as packed integer GEMM: Y_g[M, P] = W_g[M, K] x B[K, P], with the
 * im2col columns B of a run of NT outputs of one output row packed straight into an igemm panel. */

/* Im2col row k = (ci, i, jk) of a group, worked out once per call. */
typedef struct {
  int64_t plane;        /* ci * ih * iw: its input channel */
  int64_t dy;           /* i * dh: its input row, less oh * sh - ph */
  int64_t off;          /* jk * dw - pw: its input column, less c * sw */
  int64_t lo, hi;       /* the outputs c of a row whose column c * sw + off is inside the input */
} iconv_krow;

typedef struct {
  const conv_geom *g;
  const uint8_t *x;                      /* [n, c, ih, iw] bytes */
  uint8_t xflip, xpad;                   /* 0x80 when x is int8; padding: the zero point, stored */
  const int32_t *rows, *rowsum, *w0;     /* [m, k4], [m], [m] */
  int32_t x0;
  int need_colsum;
  int64_t kk, k4, tiles_per_row;
  int64_t ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw; /* as 2-D (1-D: height 1) */
  const iconv_krow *krow;                /* [kk]: the im2col rows */
  int32_t *y;                            /* [n, m, oh, ow] */
  atomic_int failed;
} iconv_gemm_job;

/* The im2col rows of iconv_gemm_job.krow, kk of them. */
static void iconv_rows(const iconv_gemm_job *j, iconv_krow *t) {
  int64_t khw = j->kh * j->kw;
  for (int64_t kr = 0; kr < j->kk; kr++, t++) {
    int64_t ci = kr / khw, i = kr % khw / j->kw, jk = kr % j->kw, off = jk * j->dw - j->pw;
    t->plane = ci * j->ih * j->iw;
    t->dy = i * j->dh;
    t->off = off;
    t->lo = off >= 0 ? 0 : (-off + j->sw - 1) / j->sw;
    t->hi = j->iw - 1 - off < 0 ? 0 : (j->iw - 1 - off) / j->sw + 1;
    if (t->hi < t->lo) t->hi = t->lo;
  }
}

/* The panel of outputs [ow0, ow0 + nv) of output row oh: im2col row k = (ci, i, jk) holds
 * x[ci, oh*sh - ph + i*dh, (ow0 + c)*sw - pw + jk*dw] (the zero point where that is padding),
 * rows past kk zero, columns past nv zero (their products are dropped). Each group of 4 rows is
 * gathered as 4 byte rows, then interleaved into the panel's words. */
GPUX_VECTORIZE
static void iconv_pack(const iconv_gemm_job *j, uint8_t *panel, int64_t b, int64_t grp, int64_t oh, int64_t ow0, int64_t nv) {
  enum { NT = GPUX__IGEMM_NT };
  const conv_geom *g = j->g;
  int64_t cpg = g->c / g->group, row0 = oh * j->sh - j->ph;
  const uint8_t *xg = j->x + (b * g->c + grp * cpg) * j->ih * j->iw;
  uint8_t rb[4][NT];
  memset(rb, 0, sizeof rb);
  for (int64_t q = 0; q < j->k4; q++) {
    for (int e = 0; e < 4; e++) {
      uint8_t *restrict t = rb[e];
      int64_t kr = q * 4 + e;
      if (kr >= j->kk) {
        memset(t, 0, NT);
        continue;
      }
      const iconv_krow *kt = j->krow + kr;
      int64_t r = row0 + kt->dy;
      int64_t lo = nv, hi = nv; /* outputs [lo, hi) read inside the row */
      if (r >= 0 && r < j->ih) {
        lo = GPUX__MIN(nv, GPUX__MAX(0, kt->lo - ow0));
        hi = GPUX__MAX(lo, GPUX__MIN(nv, kt->hi - ow0));
      }
      if (hi > lo) {
        const uint8_t *restrict xr = xg + kt->plane + r * j->iw + kt->off + ow0 * j->sw;
        if (j->sw == 1) {
          memcpy(t + lo, xr + lo, (size_t)(hi - lo));
        } else if (j->sw == 2) {
          for (int64_t c = lo; c < hi; c++) t[c] = xr[c * 2];
        } else {
          for (int64_t c = lo; c < hi; c++) t[c] = xr[c * j->sw];
        }
        if (j->xflip) /* int8 x into the unsigned form */
          for (int64_t c = lo; c < hi; c++) t[c] ^= 0x80;
      }
      memset(t, j->xpad, (size_t)lo);
      memset(t + hi, j->xpad, (size_t)(nv - hi));
    }
    uint32_t *restrict d = (uint32_t *)(panel + q * NT * 4);
    for (int c = 0; c < NT; c++)
      d[c] = (uint32_t)rb[0][c] | (uint32_t)rb[1][c] << 8 | (uint32_t)rb[2][c] << 16 | (uint32_t)rb[3][c] << 24;
  }
}

/* Tasks t = (batch, group, output row, run of NT outputs in it). */
static void iconv_tiles(void *ctx, int64_t begin, int64_t end) {
  iconv_gemm_job *j = ctx;
  const conv_geom *g = j->g;
  enum { NT = GPUX__IGEMM_NT };
  int64_t mpg = g->m / g->group, plane = j->oh * j->ow;
  igemm_scratch t;
  if (igemm_scratch_init(&t, j->k4)) {
    atomic_store(&j->failed, 1);
    igemm_scratch_free(&t);
    return;
  }
  for (int64_t task = begin; task < end; task++) {
    int64_t tc = task % j->tiles_per_row, rest = task / j->tiles_per_row;
    int64_t oh = rest % j->oh, grp = (rest / j->oh) % g->group, b = rest / j->oh / g->group;
    int64_t ow0 = tc * NT, nv = GPUX__MIN(NT, j->ow - ow0);
    iconv_pack(j, t.panel, b, grp, oh, ow0, nv);
    for (int64_t r0 = 0; r0 < mpg; r0 += IGEMM_ROWS) {
      int64_t nr = GPUX__MIN(IGEMM_ROWS, mpg - r0), oc0 = grp * mpg + r0;
      gpux__igemm_panel(j->rows + oc0 * j->k4, nr, j->k4, t.panel, t.c, j->need_colsum && r0 == 0 ? t.colsum : NULL);
      for (int64_t r = 0; r < nr; r++) {
        int64_t oc = oc0 + r;
        int32_t *y = j->y + (b * g->m + oc) * plane + oh * j->ow + ow0;
        const int32_t *c = t.c + r * NT;
        uint32_t cst = (uint32_t)j->x0 * ((uint32_t)j->rowsum[oc] + (uint32_t)j->kk * (uint32_t)j->w0[oc]);
        if (j->need_colsum) {
          uint32_t w0 = (uint32_t)j->w0[oc];
          for (int64_t q = 0; q < nv; q++) y[q] = (int32_t)((uint32_t)c[q] + w0 * (uint32_t)t.colsum[q] - cst);
        } else {
          for (int64_t q = 0; q < nv; q++) y[q] = (int32_t)((uint32_t)c[q] - cst);
        }
      }
    }
  }
  igemm_scratch_free(&t);
}

/* The weights are the node's input win, their zero point input win + 2. */
static int int_conv_gemm(gpux__kctx *k, const conv_geom *g, const gpux_tensor *x, int win, int64_t xz, int32_t *y) {
  int64_t cpg = g->c / g->group, kk = cpg * gpux__shape_count(g->nsp, g->ks), k4 = (kk + 3) / 4;
  iconv_krow *krow = malloc(sizeof(iconv_krow) * (size_t)GPUX__MAX(1, kk));
  if (!krow) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  igemm_weights local;
  const igemm_weights *iw = igemm_weights_get(k, win, win + 2, &local, 1, g->m, kk, 1, "w_zero_point");
  if (!iw) {
    free(krow);
    return k->status;
  }
  int x_i8 = x->dtype == GPUX_DT_INT8;
  const int32_t *rows = iw->rows, *rowsum = iw->rowsum, *w0 = iw->w0;
  int need_colsum = iw->need_colsum;
  int d2 = g->nsp == 2; /* else 1-D, as 2-D of height 1 */
  iconv_gemm_job j = {
    .g = g, .x = x->data, .xflip = x_i8 ? 0x80 : 0, .xpad = (uint8_t)(xz + (x_i8 ? 128 : 0)),
    .rows = rows, .rowsum = rowsum, .w0 = w0, .x0 = (int32_t)(xz + (x_i8 ? 128 : 0)), .need_colsum = need_colsum,
    .kk = kk, .k4 = k4, .ih = d2 ? g->in[0] : 1, .iw = g->in[d2], .oh = d2 ? g->out[0] : 1, .ow = g->out[d2],
    .kh = d2 ? g->ks[0] : 1, .kw = g->ks[d2], .sh = d2 ? g->stride[0] : 1, .sw = g->stride[d2],
    .dh = d2 ? g->dil[0] : 1, .dw = g->dil[d2], .ph = d2 ? g->pad[0] : 0, .pw = g->pad[d2], .y = y, .failed = 0,
  };
  iconv_rows(&j, krow);
  j.krow = krow;
  j.tiles_per_row = (j.ow + GPUX__IGEMM_NT - 1) / GPUX__IGEMM_NT;
  int64_t tasks = g->n * g->group * j.oh * j.tiles_per_row;
  gpux__parallel_for(tasks, GPUX__MAX(1, IGEMM_TASK_MACS / GPUX__MAX(1, GPUX__IGEMM_NT * kk * (g->m / g->group))), iconv_tiles, &j);
  if (iw == &local) igemm_weights_free(&local);
  free(krow);
  return atomic_load(&j.failed) ? gpux__kerr(k, GPUX_E_NOMEM, "out of memory") : 0;
}

/* y = conv(x - xzp, w - wzp) in int32; xzp one value, wzp one or one per output channel. w is
 * the node's input win, wzp input win + 2. */
static int int_conv(gpux__kctx *k, const conv_geom *g, const gpux_tensor *x, int win, const gpux_tensor *xzp,
                    int32_t *y) {
  const gpux_tensor *w = IN(win), *wzp = IN(win + 2);
  if (xzp && gpux_tensor_count(xzp) != 1) return gpux__kerr(k, GPUX_E_SHAPE, "x_zero_point must be a scalar");
  int64_t xz = xzp ? gpux__load_i64(xzp->dtype, xzp->data, 0) : 0;
  if (g->nsp <= 2) return int_conv_gemm(k, g, x, win, xz, y);
  int64_t xc = gpux_tensor_count(x), wc = gpux_tensor_count(w);
  int64_t *wz = malloc(sizeof(int64_t) * (size_t)GPUX__MAX(1, g->m));
  int32_t *xd = NULL, *wd = NULL;
  int rc = 0;
  if (!wz) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  if ((rc = zero_point_vector(k, wzp, g->m, "w_zero_point", wz))) goto done;
  /* other ranks: direct loops over (x - xz) and (w - wz) widened to int32 */
  xd = malloc(sizeof(int32_t) * (size_t)GPUX__MAX(1, xc)), wd = malloc(sizeof(int32_t) * (size_t)GPUX__MAX(1, wc));
  if (!xd || !wd) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  for (int64_t i = 0; i < xc; i++) xd[i] = (int32_t)(gpux__load_i64(x->dtype, x->data, i) - xz);
  int64_t per_m = g->m ? wc / g->m : 0;
  for (int64_t i = 0; i < wc; i++) wd[i] = (int32_t)(gpux__load_i64(w->dtype, w->data, i) - wz[i / GPUX__MAX(1, per_m)]);
  iconv_job j = {g, xd, wd, y};
  gpux__parallel_for(g->n * g->m, 1, iconv_planes, &j);
done:
  free(xd);
  free(wd);
  free(wz);
  return rc;
}

static int conv_output(gpux__kctx *k, const conv_geom *g, int dtype, gpux_tensor **y) {
  int64_t dims[GPUX_MAX_DIMS];
  dims[0] = g->n;
  dims[1] = g->m;
  for (int d = 0; d < g->nsp; d++) dims[d + 2] = g->out[d];
  *y = gpux__out_raw(k, 0, dtype, g->nsp + 2, dims);
  return *y ? 0 : k->status;
}

static int op_conv_integer(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *w = IN(1), *xzp = IN(2); /* w_zero_point (3): int_conv */
  if (!x || !w) return gpux__kerr(k, GPUX_E_INVALID, "x and w are required");
  if (!is_8bit(x->dtype) || !is_8bit(w->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "ConvInteger of %s and %s", gpux_dtype_name(x->dtype), gpux_dtype_name(w->dtype));
  conv_geom g;
  gpux_tensor *y;
  int rc = conv_geometry(k, x, w, &g);
  if (rc || (rc = conv_output(k, &g, GPUX_DT_INT32, &y))) return rc;
  if (k->shape_only) return 0;
  return int_conv(k, &g, x, 1, xzp, y->data);
}

static int op_qlinear_conv(gpux__kctx *k) {
  const gpux_tensor *x = IN(0), *xs = IN(1), *xzp = IN(2), *w = IN(3), *ws = IN(4), *ys = IN(6),
                    *yzp = IN(7), *bias = IN(8);
  if (!x || !w || !xs || !ws || !ys) return gpux__kerr(k, GPUX_E_INVALID, "x, w and the scales are required");
  if (!is_8bit(x->dtype) || !is_8bit(w->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "QLinearConv of %s and %s", gpux_dtype_name(x->dtype), gpux_dtype_name(w->dtype));
  int out_dt = yzp ? yzp->dtype : x->dtype;
  if (!is_8bit(out_dt)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "QLinearConv output %s", gpux_dtype_name(out_dt));
  conv_geom g;
  gpux_tensor *y;
  int rc = conv_geometry(k, x, w, &g);
  if (rc || (rc = conv_output(k, &g, out_dt, &y))) return rc;
  if (k->shape_only) return 0;
  if (bias && gpux_tensor_count(bias) != g.m)
    return gpux__kerr(k, GPUX_E_SHAPE, "B has %lld values, expected %lld", (long long)gpux_tensor_count(bias), (long long)g.m);
  int64_t n_out = gpux_tensor_count(y), plane = g.m ? n_out / GPUX__MAX(1, g.n * g.m) : 0;
  int32_t *acc = malloc(sizeof(int32_t) * (size_t)GPUX__MAX(1, n_out));
  double *sw = malloc(sizeof(double) * (size_t)GPUX__MAX(1, g.m));
  if (!acc || !sw) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  if ((rc = scale_vector(k, ws, g.m, "w_scale", sw))) goto done;
  if (gpux_tensor_count(xs) != 1 || gpux_tensor_count(ys) != 1) { rc = gpux__kerr(k, GPUX_E_SHAPE, "x_scale and y_scale must be scalars"); goto done; }
  if ((rc = int_conv(k, &g, x, 3, xzp, acc))) goto done;
  double xsv = gpux__load_f64(xs->dtype, xs->data, 0), ysv = gpux__load_f64(ys->dtype, ys->data, 0);
  double yz = yzp ? (double)gpux__load_i64(yzp->dtype, yzp->data, 0) : 0;
  int dt = promote_real(xs->dtype, promote_real(ws->dtype, ys->dtype));
  for (int64_t p = 0; plane > 0 && p < g.n * g.m; p++) { /* one output plane: one channel's multiplier */
    int64_t oc = p % g.m;
    int32_t add = bias ? (int32_t)(uint32_t)gpux__load_i64(bias->dtype, bias->data, oc) : 0;
    requant8(acc + p * plane, plane, add, requant_multiplier(dt, xsv, sw[oc], ysv), yz, out_dt,
             (uint8_t *)y->data + p * plane);
  }
done:
  free(acc);
  free(sw);
  return rc;
}

const gpux__op_def gpux__ops_quant[] = {
  {"", "QuantizeLinear", op_quantize_linear, 10, 0},
  {"", "DequantizeLinear", op_dequantize_linear, 10, 0},
  {"", "DynamicQuantizeLinear", op_dynamic_quantize_linear, 11, 0},
  {"", "MatMulInteger", op_matmul_integer, 10, 0},
  {"", "ConvInteger", op_conv_integer, 10, 0},
  {"", "QLinearMatMul", op_qlinear_matmul, 10, 0},
  {"", "QLinearConv", op_qlinear_conv, 10, 0},
  {0},
};
