/* cast.c — operator family 'cast': Cast and CastLike between every pair of element types
 * (strings, bool, integers, float16/bfloat16, float8 with `saturate`, float8e8m0 with
 * `round_mode`, and the sub-byte int4/uint4/int2/uint2/float4e2m1, held one per byte), and
 * BitCast, which reinterprets the bits between types of the same width.
 *
 * Conversion rules: integer to integer is exact and wraps to the target width; floating to
 * integer truncates toward zero (NaN gives 0, out-of-range values saturate to int64 and then
 * wrap to the target width); anything to bool is `value != 0`; strings parse as decimal or
 * scientific numbers, "INF"/"+INF"/"-INF"/"NaN" in any case, and "true"/"false" for bool; numbers
 * print as the shortest decimal that reads back to the same value ("0.1", "1.0", "1e-05"),
 * "INF"/"-INF"/"NaN", integers in decimal, bools as "1"/"0". */
#include "ops/op.h"
#include "ops/simd.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>

enum { ROUND_UP, ROUND_DOWN, ROUND_NEAREST };

typedef struct {
  const gpux_tensor *x;
  gpux_tensor *y;
  int saturate;     /* float8 targets: clamp out-of-range values to the largest finite value */
  int round_mode;   /* float8e8m0 targets */
  int failed;       /* out of memory making strings */
} cast_ctx;

static int is_float8(int dt) {
  return dt == GPUX_DT_FLOAT8E4M3FN || dt == GPUX_DT_FLOAT8E4M3FNUZ || dt == GPUX_DT_FLOAT8E5M2 ||
         dt == GPUX_DT_FLOAT8E5M2FNUZ;
}

static int is_int(int dt) { return gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt); }

/* float32 -> float8e8m0 (a bare power-of-two exponent), rounding on the float32 bits as the
 * ONNX reference does: the sign is ignored, inf/NaN give NaN (0xFF), and without saturation a
 * value rounding up past 2^127 becomes NaN. */
static uint8_t f32_to_e8m0(float f, int saturate, int mode) {
  uint32_t b;
  memcpy(&b, &f, 4);
  uint32_t e = (b >> 23) & 0xff, inc = 0;
  if (e == 0xff) return 0xff;
  if (mode == ROUND_UP) {
    inc = (b & 0x7fffff) != 0;
  } else if (mode == ROUND_NEAREST) {
    int g = (b & 0x400000) != 0, r = (b & 0x200000) != 0, s = (b & 0x1fffff) != 0, lsb = e > 0;
    inc = g && (r || s || lsb);
  }
  if (saturate && e == 0xfe) inc = 0;
  return (uint8_t)(e + inc);
}

/* Stores a floating value into element i of the target, honouring saturate/round_mode. */
static void store_float(const cast_ctx *c, int64_t i, double v) {
  int dt = c->y->dtype;
  if (dt == GPUX_DT_FLOAT8E8M0)
    ((uint8_t *)c->y->data)[i] = f32_to_e8m0((float)v, c->saturate, c->round_mode);
  else if (is_float8(dt))
    ((uint8_t *)c->y->data)[i] = gpux__f32_to_minifloat(dt, (float)v, c->saturate);
  else if (dt == GPUX_DT_FLOAT4E2M1)
    ((uint8_t *)c->y->data)[i] = gpux__f32_to_minifloat(dt, (float)v, 1);
  else
    gpux__store_f64(dt, c->y->data, i, v);
}

/* ---- float32 <-> float16/bfloat16, branch-free so that the loops vectorize ---- */

static inline float bits_to_f32(uint32_t b) {
  float f;
  memcpy(&f, &b, 4);
  return f;
}

static inline uint32_t f32_to_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}

/* Round to nearest even, as gpux__f32_to_f16 (F. Giesen's float_to_half_fast3_rtne). */
static inline uint16_t f32_to_f16(float v) {
  uint32_t f = f32_to_bits(v), sign = f & 0x80000000u;
  f ^= sign;
  uint32_t normal = (f + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((f >> 13) & 1)) >> 13;
  /* subnormal halves: adding 0.5f lines the mantissa up and lets the FPU round it */
  uint32_t sub = f32_to_bits(bits_to_f32(f) + 0.5f) - 0x3f000000u;
  uint32_t o = f < (113u << 23) ? sub : normal;
  o = f >= (143u << 23) ? (f > 0x7f800000u ? 0x7e00u : 0x7c00u) : o;
  return (uint16_t)(o | (sign >> 16));
}

static inline float f16_to_f32(uint16_t h) {
  uint32_t o = (uint32_t)(h & 0x7fff) << 13, e = o & (0x7c00u << 13);
  o += (uint32_t)(127 - 15) << 23;
  uint32_t inf_nan = o + ((uint32_t)(128 - 16) << 23);
  uint32_t sub = f32_to_bits(bits_to_f32(o + (1u << 23)) - bits_to_f32(113u << 23));
  o = e == (0x7c00u << 13) ? inf_nan : e == 0 ? sub : o;
  return bits_to_f32(o | ((uint32_t)(h & 0x8000) << 16));
}

static inline uint16_t f32_to_bf16(float v) {
  uint32_t x = f32_to_bits(v);
  uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1)) >> 16;
  return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? (x >> 16) | 0x40 : rounded);
}

#define DEF_CONVERT(NAME, T_IN, T_OUT, EXPR)                                         \
  GPUX_SIMD_CLONES static void NAME(T_OUT *restrict y, const T_IN *restrict x, int64_t n) { \
    int64_t i = 0;                                                                  \
    for (; i + 8 <= n; i += 8)                                                      \
      for (int j = 0; j < 8; j++) { const T_IN v = x[i + j]; y[i + j] = (EXPR); }   \
    for (; i < n; i++) { const T_IN v = x[i]; y[i] = (EXPR); }                      \
  }

DEF_CONVERT(convert_f32_f16, float, uint16_t, f32_to_f16(v))
DEF_CONVERT(convert_f16_f32, uint16_t, float, f16_to_f32(v))
DEF_CONVERT(convert_f32_bf16, float, uint16_t, f32_to_bf16(v))
DEF_CONVERT(convert_bf16_f32, uint16_t, float, bits_to_f32((uint32_t)v << 16))

/* ---- numbers <-> strings ---- */

static int parse_special(const char *s, double *v) {
  if (*s == '+' && !strcasecmp(s + 1, "inf")) { *v = INFINITY; return 1; }
  if (!strcasecmp(s, "inf")) { *v = INFINITY; return 1; }
  if (!strcasecmp(s, "-inf")) { *v = -INFINITY; return 1; }
  if (!strcasecmp(s, "nan") || !strcasecmp(s, "+nan") || !strcasecmp(s, "-nan")) {
    *v = NAN;
    return 1;
  }
  return 0;
}

static void store_from_string(const cast_ctx *c, int64_t i, const char *s) {
  int dt = c->y->dtype;
  if (!s) s = "";
  while (*s == ' ' || *s == '\t') s++;
  double v;
  if (dt == GPUX_DT_BOOL) {
    if (!strcasecmp(s, "true")) { ((uint8_t *)c->y->data)[i] = 1; return; }
    if (!strcasecmp(s, "false")) { ((uint8_t *)c->y->data)[i] = 0; return; }
  }
  if (is_int(dt) && !parse_special(s, &v)) { /* exact integers first */
    char *end;
    errno = 0;
    if (gpux__dtype_is_unsigned_int(dt) && *s != '-') {
      unsigned long long u = strtoull(s, &end, 10);
      if (end != s && !*end && !errno) { gpux__store_i64(dt, c->y->data, i, (int64_t)u); return; }
    } else {
      long long q = strtoll(s, &end, 10);
      if (end != s && !*end && !errno) { gpux__store_i64(dt, c->y->data, i, q); return; }
    }
  }
  if (!parse_special(s, &v)) v = strtod(s, NULL);
  store_float(c, i, v);
}

/* The shortest %.*e form of element i that reads back to the same value in its own type,
 * laid out as Python prints floats: positional for 1e-4 <= |v| < 1e16, else d.ddde+XX. */
static void format_float(int dt, const void *data, int64_t i, char *out, size_t cap) {
  double v = gpux__load_f64(dt, data, i);
  if (isnan(v)) { snprintf(out, cap, "NaN"); return; }
  if (isinf(v)) { snprintf(out, cap, v > 0 ? "INF" : "-INF"); return; }
  char buf[64];
  int max_digits = dt == GPUX_DT_DOUBLE ? 17 : 9;
  for (int p = 1; p <= max_digits; p++) {
    snprintf(buf, sizeof buf, "%.*e", p - 1, v);
    double back = strtod(buf, NULL);
    uint64_t want = 0, got = 0;
    gpux__store_f64(dt, &want, 0, v);
    gpux__store_f64(dt, &got, 0, back);
    if (dt == GPUX_DT_DOUBLE ? back == v : want == got) break;
  }
  /* buf is [-]d[.ddd]e[+-]XX: split into sign, digits and exponent */
  const char *s = buf;
  int neg = *s == '-';
  if (neg) s++;
  char digits[32];
  int nd = 0;
  for (; *s && *s != 'e'; s++)
    if (*s != '.' && nd < 31) digits[nd++] = *s;
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  digits[nd] = 0;
  int exp10 = *s == 'e' ? atoi(s + 1) : 0;
  char *o = out, *oend = out + cap - 1;
#define PUT(ch) do { if (o < oend) *o++ = (ch); } while (0)
  if (neg) PUT('-');
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      PUT('0'); PUT('.');
      for (int z = 0; z < -exp10 - 1; z++) PUT('0');
      for (int d = 0; d < nd; d++) PUT(digits[d]);
    } else {
      for (int d = 0; d <= exp10; d++) PUT(d < nd ? digits[d] : '0');
      PUT('.');
      if (nd > exp10 + 1) for (int d = exp10 + 1; d < nd; d++) PUT(digits[d]);
      else PUT('0');
    }
    *o = 0;
  } else {
    PUT(digits[0]);
    if (nd > 1) {
      PUT('.');
      for (int d = 1; d < nd; d++) PUT(digits[d]);
    }
    *o = 0;
    snprintf(o, (size_t)(oend - o) + 1, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
  }
#undef PUT
}

static char *number_to_string(int dt, const void *data, int64_t i) {
  char buf[96];
  if (dt == GPUX_DT_BOOL)
    snprintf(buf, sizeof buf, "%d", ((const uint8_t *)data)[i] != 0);
  else if (gpux__dtype_is_unsigned_int(dt))
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)(uint64_t)gpux__load_i64(dt, data, i));
  else if (is_int(dt))
    snprintf(buf, sizeof buf, "%lld", (long long)gpux__load_i64(dt, data, i));
  else
    format_float(dt, data, i, buf, sizeof buf);
  return gpux__strdup(buf);
}

/* ---- the conversion loops ---- */

static void cast_range(void *p, int64_t begin, int64_t end) {
  cast_ctx *c = p;
  int xdt = c->x->dtype, ydt = c->y->dtype;
  const void *xd = c->x->data;
  void *yd = c->y->data;
  if (ydt == GPUX_DT_STRING) {
    for (int64_t i = begin; i < end; i++) {
      const char *s = xdt == GPUX_DT_STRING ? ((char *const *)xd)[i] : NULL;
      char *r = xdt == GPUX_DT_STRING ? gpux__strdup(s ? s : "") : number_to_string(xdt, xd, i);
      if (!r) c->failed = 1;
      ((char **)yd)[i] = r;
    }
    return;
  }
  if (xdt == GPUX_DT_STRING) {
    for (int64_t i = begin; i < end; i++) store_from_string(c, i, ((char *const *)xd)[i]);
    return;
  }
  /* common pairs as plain typed loops (64-bit integers to float32 rounded once) */
  int64_t n = end - begin;
  if (xdt == GPUX_DT_FLOAT && ydt == GPUX_DT_FLOAT16) {
    convert_f32_f16((uint16_t *)yd + begin, (const float *)xd + begin, n);
  } else if (xdt == GPUX_DT_FLOAT16 && ydt == GPUX_DT_FLOAT) {
    convert_f16_f32((float *)yd + begin, (const uint16_t *)xd + begin, n);
  } else if (xdt == GPUX_DT_FLOAT && ydt == GPUX_DT_BFLOAT16) {
    convert_f32_bf16((uint16_t *)yd + begin, (const float *)xd + begin, n);
  } else if (xdt == GPUX_DT_BFLOAT16 && ydt == GPUX_DT_FLOAT) {
    convert_bf16_f32((float *)yd + begin, (const uint16_t *)xd + begin, n);
  } else if (xdt == GPUX_DT_FLOAT && ydt == GPUX_DT_DOUBLE) {
    for (int64_t i = begin; i < end; i++) ((double *)yd)[i] = ((const float *)xd)[i];
  } else if (xdt == GPUX_DT_DOUBLE && ydt == GPUX_DT_FLOAT) {
    for (int64_t i = begin; i < end; i++) ((float *)yd)[i] = (float)((const double *)xd)[i];
  } else if (xdt == GPUX_DT_INT64 && ydt == GPUX_DT_FLOAT) {
    for (int64_t i = begin; i < end; i++) ((float *)yd)[i] = (float)((const int64_t *)xd)[i];
  } else if (xdt == GPUX_DT_INT32 && ydt == GPUX_DT_FLOAT) {
    for (int64_t i = begin; i < end; i++) ((float *)yd)[i] = (float)((const int32_t *)xd)[i];
  } else if (xdt == GPUX_DT_BOOL && ydt == GPUX_DT_FLOAT) {
    for (int64_t i = begin; i < end; i++) ((float *)yd)[i] = ((const uint8_t *)xd)[i] ? 1.0f : 0.0f;
  } else if (xdt == GPUX_DT_UINT64 && ydt == GPUX_DT_FLOAT) {
    for (int64_t i = begin; i < end; i++) ((float *)yd)[i] = (float)((const uint64_t *)xd)[i];
  } else if (is_int(xdt) && is_int(ydt)) { /* exact, wrapping */
    for (int64_t i = begin; i < end; i++) gpux__store_i64(ydt, yd, i, gpux__load_i64(xdt, xd, i));
  } else if (gpux__dtype_is_float(ydt)) {
    for (int64_t i = begin; i < end; i++) store_float(c, i, gpux__load_f64(xdt, xd, i));
  } else { /* floating to integer or bool */
    for (int64_t i = begin; i < end; i++) gpux__store_f64(ydt, yd, i, gpux__load_f64(xdt, xd, i));
  }
}

static int castable(int dt) {
  return dt == GPUX_DT_STRING || dt == GPUX_DT_BOOL || is_int(dt) || gpux__dtype_is_float(dt);
}

static int cast_run(gpux__kctx *k, int to) {
  const gpux_tensor *x = IN(0);
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input 0 must be a tensor");
  if (!castable(x->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "cannot cast from %s", gpux_dtype_name(x->dtype));
  if (to <= 0 || to >= GPUX_DT_COUNT || !castable(to))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "cannot cast to %s (%d)", gpux_dtype_name(to), to);
  cast_ctx c = {x, NULL, gpux__attr_int(k, "saturate", 1) != 0, ROUND_UP, 0};
  const char *mode = gpux__attr_string(k, "round_mode", "up");
  if (!strcmp(mode, "down")) c.round_mode = ROUND_DOWN;
  else if (!strcmp(mode, "nearest")) c.round_mode = ROUND_NEAREST;
  else if (strcmp(mode, "up"))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "round_mode must be up, down or nearest, got '%s'", mode);
  gpux_tensor *y = gpux__out(k, 0, to, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  c.y = y;
  int64_t n = gpux_tensor_count(x);
  if (x->dtype == to && to != GPUX_DT_STRING) {
    memcpy(y->data, x->data, y->nbytes);
    return 0;
  }
  int strings = x->dtype == GPUX_DT_STRING || to == GPUX_DT_STRING;
  gpux__parallel_for(n, strings ? n : 16384, cast_range, &c);
  if (c.failed) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory making strings");
  return 0;
}

/* Before opset 6, `to` was a string naming the type ("FLOAT", "INT64", ...). */
static int dtype_from_name(const char *name) {
  static const char *const names[] = {
    "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING",
    "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
  };
  for (int i = 1; i < (int)GPUX__ARRAY_LEN(names); i++)
    if (!strcasecmp(name, names[i])) return i;
  return 0;
}

static int op_cast(gpux__kctx *k) {
  if (!gpux__has_attr(k, "to")) return gpux__kerr(k, GPUX_E_INVALID, "attribute 'to' is required");
  const gpux__attr *to = gpux__node_attr(k->node, "to");
  if (to->type == GPUX_ATTR_STRING) return cast_run(k, to->s ? dtype_from_name(to->s) : 0);
  return cast_run(k, (int)gpux__attr_int(k, "to", 0));
}

static int op_cast_like(gpux__kctx *k) {
  const gpux_tensor *like = IN(1);
  if (!like) return gpux__kerr(k, GPUX_E_INVALID, "target_type input is missing");
  return cast_run(k, like->dtype);
}

/* ---- BitCast ---- */

static int dtype_bits(int dt) {
  switch (dt) {
  case GPUX_DT_INT4: case GPUX_DT_UINT4: case GPUX_DT_FLOAT4E2M1: return 4;
  case GPUX_DT_INT2: case GPUX_DT_UINT2: return 2;
  case GPUX_DT_STRING: return 0;
  }
  return (int)gpux_dtype_size(dt) * 8;
}

static int op_bitcast(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input 0 must be a tensor");
  if (!gpux__has_attr(k, "to")) return gpux__kerr(k, GPUX_E_INVALID, "attribute 'to' is required");
  int to = (int)gpux__attr_int(k, "to", 0);
  if (to <= 0 || to >= GPUX_DT_COUNT || !dtype_bits(to) || !dtype_bits(x->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "cannot bitcast %s to %s", gpux_dtype_name(x->dtype),
                      gpux_dtype_name(to));
  if (dtype_bits(to) != dtype_bits(x->dtype))
    return gpux__kerr(k, GPUX_E_DTYPE, "%s and %s differ in width", gpux_dtype_name(x->dtype),
                      gpux_dtype_name(to));
  gpux_tensor *y = gpux__out(k, 0, to, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int bits = dtype_bits(to);
  if (bits >= 8) {
    memcpy(y->data, x->data, y->nbytes);
    return 0;
  }
  /* sub-byte types, one per byte: keep the low bits, sign-extend for int4/int2 */
  const uint8_t *xs = x->data;
  uint8_t *ys = y->data, mask = (uint8_t)((1u << bits) - 1);
  int64_t n = gpux_tensor_count(x);
  for (int64_t i = 0; i < n; i++) {
    uint8_t v = xs[i] & mask;
    if ((to == GPUX_DT_INT4 || to == GPUX_DT_INT2) && (v >> (bits - 1))) v |= (uint8_t)~mask;
    ys[i] = v;
  }
  return 0;
}

const gpux__op_def gpux__ops_cast[] = {
  {"", "Cast", op_cast, 0, 0},
  {"", "CastLike", op_cast_like, 0, 0},
  {"", "BitCast", op_bitcast, 0, 0},
  {0},
};
