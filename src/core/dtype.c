/* dtype.c — element types: names, sizes, 16-bit and 8/4-bit float codecs, and generic element
 * load/store used by kernels that work on any numeric type. */
#include "core/internal.h"
#include <math.h>

static const struct { const char *name; size_t size; } dtype_table[GPUX_DT_COUNT] = {
  [GPUX_DT_UNDEFINED] = {"undefined", 0},   [GPUX_DT_FLOAT] = {"float32", 4},
  [GPUX_DT_UINT8] = {"uint8", 1},           [GPUX_DT_INT8] = {"int8", 1},
  [GPUX_DT_UINT16] = {"uint16", 2},         [GPUX_DT_INT16] = {"int16", 2},
  [GPUX_DT_INT32] = {"int32", 4},           [GPUX_DT_INT64] = {"int64", 8},
  [GPUX_DT_STRING] = {"string", sizeof(char *)}, [GPUX_DT_BOOL] = {"bool", 1},
  [GPUX_DT_FLOAT16] = {"float16", 2},       [GPUX_DT_DOUBLE] = {"float64", 8},
  [GPUX_DT_UINT32] = {"uint32", 4},         [GPUX_DT_UINT64] = {"uint64", 8},
  [GPUX_DT_COMPLEX64] = {"complex64", 8},   [GPUX_DT_COMPLEX128] = {"complex128", 16},
  [GPUX_DT_BFLOAT16] = {"bfloat16", 2},     [GPUX_DT_FLOAT8E4M3FN] = {"float8e4m3fn", 1},
  [GPUX_DT_FLOAT8E4M3FNUZ] = {"float8e4m3fnuz", 1}, [GPUX_DT_FLOAT8E5M2] = {"float8e5m2", 1},
  [GPUX_DT_FLOAT8E5M2FNUZ] = {"float8e5m2fnuz", 1}, [GPUX_DT_UINT4] = {"uint4", 1},
  [GPUX_DT_INT4] = {"int4", 1},             [GPUX_DT_FLOAT4E2M1] = {"float4e2m1", 1},
  [GPUX_DT_FLOAT8E8M0] = {"float8e8m0", 1}, [GPUX_DT_UINT2] = {"uint2", 1},
  [GPUX_DT_INT2] = {"int2", 1},
};

const char *gpux_dtype_name(int dtype) {
  if (dtype < 0 || dtype >= GPUX_DT_COUNT) return "unknown";
  return dtype_table[dtype].name;
}

size_t gpux_dtype_size(int dtype) {
  if (dtype < 0 || dtype >= GPUX_DT_COUNT) return 0;
  return dtype_table[dtype].size;
}

bool gpux__dtype_is_float(int dt) {
  switch (dt) {
  case GPUX_DT_FLOAT: case GPUX_DT_DOUBLE: case GPUX_DT_FLOAT16: case GPUX_DT_BFLOAT16:
  case GPUX_DT_FLOAT8E4M3FN: case GPUX_DT_FLOAT8E4M3FNUZ: case GPUX_DT_FLOAT8E5M2:
  case GPUX_DT_FLOAT8E5M2FNUZ: case GPUX_DT_FLOAT8E8M0: case GPUX_DT_FLOAT4E2M1:
    return true;
  }
  return false;
}

bool gpux__dtype_is_signed_int(int dt) {
  return dt == GPUX_DT_INT8 || dt == GPUX_DT_INT16 || dt == GPUX_DT_INT32 ||
         dt == GPUX_DT_INT64 || dt == GPUX_DT_INT4 || dt == GPUX_DT_INT2;
}

bool gpux__dtype_is_unsigned_int(int dt) {
  return dt == GPUX_DT_UINT8 || dt == GPUX_DT_UINT16 || dt == GPUX_DT_UINT32 ||
         dt == GPUX_DT_UINT64 || dt == GPUX_DT_UINT4 || dt == GPUX_DT_UINT2 || dt == GPUX_DT_BOOL;
}

/* ---- IEEE half and bfloat16 ---- */

float gpux__f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do { mant <<= 1; e++; } while (!(mant & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t gpux__f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, mant = x & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into inf: correct */
  return (uint16_t)(sign | half);
}

float gpux__bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t gpux__f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

/* ---- minifloats ---- */

typedef struct {
  int exp_bits, mant_bits, bias;
  int ieee_specials;   /* all-ones exponent = inf/NaN (e5m2) */
  int nan_all_ones;    /* S.1111.111 is NaN, no inf (e4m3fn) */
  int uz;              /* 0x80 is the only NaN, no negative zero (fnuz) */
  int total_bits;
} minifloat_fmt;

static const minifloat_fmt *minifloat_format(int dtype) {
  static const minifloat_fmt e4m3fn = {4, 3, 7, 0, 1, 0, 8}, e4m3fnuz = {4, 3, 8, 0, 0, 1, 8},
                             e5m2 = {5, 2, 15, 1, 0, 0, 8}, e5m2fnuz = {5, 2, 16, 0, 0, 1, 8},
                             e2m1 = {2, 1, 1, 0, 0, 0, 4};
  switch (dtype) {
  case GPUX_DT_FLOAT8E4M3FN: return &e4m3fn;
  case GPUX_DT_FLOAT8E4M3FNUZ: return &e4m3fnuz;
  case GPUX_DT_FLOAT8E5M2: return &e5m2;
  case GPUX_DT_FLOAT8E5M2FNUZ: return &e5m2fnuz;
  case GPUX_DT_FLOAT4E2M1: return &e2m1;
  }
  return NULL;
}

/* Decodes a code of fmt; *special = 1 for NaN, 2 for inf. */
static float minifloat_decode(const minifloat_fmt *m, unsigned code, int *special) {
  unsigned sign_bit = 1u << (m->total_bits - 1);
  unsigned exp_mask = (1u << m->exp_bits) - 1, mant_mask = (1u << m->mant_bits) - 1;
  unsigned exp = (code >> m->mant_bits) & exp_mask, mant = code & mant_mask;
  int neg = (code & sign_bit) != 0;
  *special = 0;
  if (m->uz && code == sign_bit) { *special = 1; return NAN; }
  if (m->ieee_specials && exp == exp_mask) {
    *special = mant ? 1 : 2;
    return mant ? NAN : (neg ? -INFINITY : INFINITY);
  }
  if (m->nan_all_ones && exp == exp_mask && mant == mant_mask) { *special = 1; return NAN; }
  float v = exp == 0 ? ldexpf((float)mant, 1 - m->bias - m->mant_bits)
                     : ldexpf((float)(mant | (1u << m->mant_bits)), (int)exp - m->bias - m->mant_bits);
  return neg ? -v : v;
}

float gpux__minifloat_to_f32(int dtype, uint8_t bits) {
  if (dtype == GPUX_DT_FLOAT8E8M0) return bits == 0xff ? NAN : ldexpf(1.0f, (int)bits - 127);
  const minifloat_fmt *m = minifloat_format(dtype);
  int special;
  return m ? minifloat_decode(m, bits, &special) : NAN;
}

uint8_t gpux__f32_to_minifloat(int dtype, float f, int saturate) {
  if (dtype == GPUX_DT_FLOAT8E8M0) { /* round to nearest power of two, ties up */
    if (isnan(f) || f <= 0) return isnan(f) ? 0xff : 0;
    int e;
    float mant = frexpf(f, &e); /* f = mant * 2^e, mant in [0.5, 1) */
    int p = mant > 0.75f ? e : e - 1;
    if (mant == 0.75f) p = e;
    p += 127;
    if (p < 0) return 0;
    if (p > 254) return saturate ? 254 : 0xff;
    return (uint8_t)p;
  }
  const minifloat_fmt *m = minifloat_format(dtype);
  if (!m) return 0;
  unsigned sign_bit = 1u << (m->total_bits - 1), ncodes = sign_bit;
  int neg = signbit(f) != 0;
  unsigned nan_code = m->uz ? sign_bit : (m->ieee_specials ? 0x7f : (m->nan_all_ones ? 0x7f : 0));
  if (isnan(f)) return (uint8_t)(m->total_bits == 4 ? 0 : nan_code);
  float a = fabsf(f);
  /* largest finite positive code */
  unsigned max_code = 0;
  float max_val = 0;
  int special;
  for (unsigned c = 0; c < ncodes; c++) {
    float v = minifloat_decode(m, c, &special);
    if (!special && v > max_val) { max_val = v; max_code = c; }
  }
  unsigned code;
  if (a > max_val) {
    /* above the largest finite value: overflow unless rounding brings it back */
    float prev = minifloat_decode(m, max_code - 1, &special);
    float ulp = max_val - prev;
    int overflow = isinf(a) || a > max_val + ulp / 2 || (a == max_val + ulp / 2 && (max_code & 1));
    if (!overflow || saturate || m->total_bits == 4) code = max_code;
    else if (m->ieee_specials) code = 0x7c;          /* inf */
    else code = nan_code;
  } else {
    /* nearest finite code, ties to even */
    unsigned best = 0;
    float best_d = INFINITY;
    for (unsigned c = 0; c <= max_code; c++) {
      float v = minifloat_decode(m, c, &special);
      if (special) continue;
      float d = fabsf(v - a);
      if (d < best_d || (d == best_d && !(c & 1))) { best_d = d; best = c; }
    }
    code = best;
  }
  if (neg && !(m->uz && code == 0)) code |= sign_bit;
  if (m->total_bits == 8 && !m->uz && code == nan_code) code |= neg ? sign_bit : 0;
  return (uint8_t)code;
}

/* ---- generic element access ---- */

double gpux__load_f64(int dt, const void *p, int64_t i) {
  switch (dt) {
  case GPUX_DT_FLOAT: return ((const float *)p)[i];
  case GPUX_DT_DOUBLE: return ((const double *)p)[i];
  case GPUX_DT_FLOAT16: return gpux__f16_to_f32(((const uint16_t *)p)[i]);
  case GPUX_DT_BFLOAT16: return gpux__bf16_to_f32(((const uint16_t *)p)[i]);
  case GPUX_DT_INT8: case GPUX_DT_INT4: case GPUX_DT_INT2: return ((const int8_t *)p)[i];
  case GPUX_DT_UINT8: case GPUX_DT_UINT4: case GPUX_DT_UINT2: case GPUX_DT_BOOL:
    return ((const uint8_t *)p)[i];
  case GPUX_DT_INT16: return ((const int16_t *)p)[i];
  case GPUX_DT_UINT16: return ((const uint16_t *)p)[i];
  case GPUX_DT_INT32: return ((const int32_t *)p)[i];
  case GPUX_DT_UINT32: return ((const uint32_t *)p)[i];
  case GPUX_DT_INT64: return (double)((const int64_t *)p)[i];
  case GPUX_DT_UINT64: return (double)((const uint64_t *)p)[i];
  case GPUX_DT_FLOAT8E4M3FN: case GPUX_DT_FLOAT8E4M3FNUZ: case GPUX_DT_FLOAT8E5M2:
  case GPUX_DT_FLOAT8E5M2FNUZ: case GPUX_DT_FLOAT8E8M0: case GPUX_DT_FLOAT4E2M1:
    return gpux__minifloat_to_f32(dt, ((const uint8_t *)p)[i]);
  }
  return NAN;
}

/* double -> integer of `bits` with C-like wrap for in-range values and saturation outside, so
 * that NaN/inf never reach undefined behaviour. */
static int64_t f64_to_i64_sat(double v) {
  if (isnan(v)) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}

void gpux__store_f64(int dt, void *p, int64_t i, double v) {
  switch (dt) {
  case GPUX_DT_FLOAT: ((float *)p)[i] = (float)v; return;
  case GPUX_DT_DOUBLE: ((double *)p)[i] = v; return;
  case GPUX_DT_FLOAT16: ((uint16_t *)p)[i] = gpux__f32_to_f16((float)v); return;
  case GPUX_DT_BFLOAT16: ((uint16_t *)p)[i] = gpux__f32_to_bf16((float)v); return;
  case GPUX_DT_BOOL: ((uint8_t *)p)[i] = v != 0; return;
  case GPUX_DT_UINT64:
    ((uint64_t *)p)[i] = v <= 0 || isnan(v) ? 0 : v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;
    return;
  case GPUX_DT_FLOAT8E4M3FN: case GPUX_DT_FLOAT8E4M3FNUZ: case GPUX_DT_FLOAT8E5M2:
  case GPUX_DT_FLOAT8E5M2FNUZ: case GPUX_DT_FLOAT8E8M0: case GPUX_DT_FLOAT4E2M1:
    ((uint8_t *)p)[i] = gpux__f32_to_minifloat(dt, (float)v, 1);
    return;
  default: gpux__store_i64(dt, p, i, f64_to_i64_sat(v)); return;
  }
}

int64_t gpux__load_i64(int dt, const void *p, int64_t i) {
  switch (dt) {
  case GPUX_DT_INT64: return ((const int64_t *)p)[i];
  case GPUX_DT_UINT64: return (int64_t)((const uint64_t *)p)[i];
  case GPUX_DT_INT32: return ((const int32_t *)p)[i];
  case GPUX_DT_UINT32: return ((const uint32_t *)p)[i];
  case GPUX_DT_INT16: return ((const int16_t *)p)[i];
  case GPUX_DT_UINT16: return ((const uint16_t *)p)[i];
  case GPUX_DT_INT8: case GPUX_DT_INT4: case GPUX_DT_INT2: return ((const int8_t *)p)[i];
  case GPUX_DT_UINT8: case GPUX_DT_UINT4: case GPUX_DT_UINT2: case GPUX_DT_BOOL:
    return ((const uint8_t *)p)[i];
  }
  return f64_to_i64_sat(gpux__load_f64(dt, p, i));
}

void gpux__store_i64(int dt, void *p, int64_t i, int64_t v) {
  switch (dt) {
  case GPUX_DT_INT64: ((int64_t *)p)[i] = v; return;
  case GPUX_DT_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; return;
  case GPUX_DT_INT32: ((int32_t *)p)[i] = (int32_t)(uint32_t)v; return;
  case GPUX_DT_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; return;
  case GPUX_DT_INT16: ((int16_t *)p)[i] = (int16_t)(uint16_t)v; return;
  case GPUX_DT_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; return;
  case GPUX_DT_INT8: ((int8_t *)p)[i] = (int8_t)(uint8_t)v; return;
  case GPUX_DT_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; return;
  case GPUX_DT_BOOL: ((uint8_t *)p)[i] = v != 0; return;
  /* sub-byte ints wrap into their range, sign-extended */
  case GPUX_DT_INT4: ((int8_t *)p)[i] = (int8_t)((int8_t)((uint8_t)v << 4) >> 4); return;
  case GPUX_DT_UINT4: ((uint8_t *)p)[i] = (uint8_t)(v & 0xf); return;
  case GPUX_DT_INT2: ((int8_t *)p)[i] = (int8_t)((int8_t)((uint8_t)v << 6) >> 6); return;
  case GPUX_DT_UINT2: ((uint8_t *)p)[i] = (uint8_t)(v & 0x3); return;
  default: gpux__store_f64(dt, p, i, (double)v); return;
  }
}
