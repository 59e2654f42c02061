/* wgsl.c — building WGSL text: an append-only string with printf, and float literals that
 * round-trip exactly (kernels bake shapes and attribute values into their shaders). */
#include "backend/webgpu/wg.h"
#include <math.h>
#include <stdio.h>

/* Room for `more` bytes and a NUL after the text. */
static int reserve(wg_str *s, size_t more) {
  if (s->s && s->len + more < s->cap) return 1;
  size_t cap = s->cap ? s->cap * 2 : 1024;
  while (cap < s->len + more + 1) cap *= 2;
  char *p = realloc(s->s, cap);
  if (!p) {
    s->oom = 1;
    return 0;
  }
  s->s = p;
  s->cap = cap;
  return 1;
}

static void put(wg_str *s, const char *p, size_t n) {
  if (!reserve(s, n)) return;
  memcpy(s->s + s->len, p, n);
  s->len += n;
  s->s[s->len] = 0;
}

static void put_int(wg_str *s, unsigned long long u, int neg) {
  char buf[24];
  int i = (int)sizeof buf;
  do buf[--i] = (char)('0' + u % 10); while ((u /= 10));
  if (neg) buf[--i] = '-';
  put(s, buf + i, sizeof buf - (size_t)i);
}

/* Whether fmt has only the conversions `cat_fast` writes itself: %d %i %u %s %c %% (with l, ll or
 * z before the integer ones) and %.*s. Kernels write thousands of such lines while planning, and
 * the C library's printf is most of that time. */
static int fast_format(const char *f) {
  while ((f = strchr(f, '%'))) {
    f++;
    if (*f == '%') { f++; continue; }
    if (f[0] == '.' && f[1] == '*' && f[2] == 's') { f += 3; continue; }
    if (*f == 'z') f++;
    else for (int l = 0; l < 2 && *f == 'l'; l++) f++;
    if (!*f || !strchr("diucs", *f)) return 0;
    f++;
  }
  return 1;
}

static void cat_fast(wg_str *s, const char *f, va_list ap) {
  while (*f && !s->oom) {
    const char *pc = strchr(f, '%');
    if (!pc) { put(s, f, strlen(f)); return; }
    if (pc > f) put(s, f, (size_t)(pc - f));
    f = pc + 1;
    if (*f == '%') { put(s, "%", 1); f++; continue; }
    if (f[0] == '.' && f[1] == '*' && f[2] == 's') {
      int n = va_arg(ap, int);
      const char *str = va_arg(ap, const char *);
      size_t len = strlen(str);
      put(s, str, n >= 0 && (size_t)n < len ? (size_t)n : len);
      f += 3;
      continue;
    }
    int z = 0, l = 0;
    if (*f == 'z') z = 1, f++;
    else while (*f == 'l' && l < 2) l++, f++;
    char c = *f++;
    if (c == 's') {
      const char *str = va_arg(ap, const char *);
      put(s, str ? str : "(null)", strlen(str ? str : "(null)"));
    } else if (c == 'c') {
      char ch = (char)va_arg(ap, int);
      put(s, &ch, 1);
    } else if (c == 'u') {
      unsigned long long u = z ? va_arg(ap, size_t) : l == 2 ? va_arg(ap, unsigned long long) : l ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
      put_int(s, u, 0);
    } else { /* d, i */
      long long v = z ? (long long)va_arg(ap, size_t) : l == 2 ? va_arg(ap, long long) : l ? va_arg(ap, long) : va_arg(ap, int);
      put_int(s, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v, v < 0);
    }
  }
}

void gpux__wg_cat(wg_str *s, const char *fmt, ...) {
  if (s->oom) return;
  if (fast_format(fmt)) {
    va_list ap;
    va_start(ap, fmt);
    cat_fast(s, fmt, ap);
    va_end(ap);
    return;
  }
  for (;;) {
    size_t room = s->cap - s->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->s ? s->s + s->len : NULL, s->s ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) { s->oom = 1; return; }
    if (s->s && (size_t)n < room) { s->len += (size_t)n; return; }
    size_t cap = (s->cap ? s->cap * 2 : 1024);
    while (cap < s->len + (size_t)n + 1) cap *= 2;
    char *p = realloc(s->s, cap);
    if (!p) { s->oom = 1; return; }
    s->s = p;
    s->cap = cap;
  }
}

void gpux__wg_str_free(wg_str *s) {
  free(s->s);
  memset(s, 0, sizeof *s);
}

/* Infinity and NaN cannot be WGSL constant expressions: shaders get them from these functions,
 * added by gpux__wg_dispatch when named. */
const char *const gpux__wg_special_fns =
  "fn gx_inf() -> f32 { var u = 0x7f800000u; return bitcast<f32>(u); }\n"
  "fn gx_nan() -> f32 { var u = 0x7fc00000u; return bitcast<f32>(u); }\n";

const char *gpux__wg_float(char buf[48], float v) {
  if (isnan(v)) return snprintf(buf, 48, "gx_nan()"), buf;
  if (isinf(v)) return snprintf(buf, 48, "%sgx_inf()", v > 0 ? "" : "-"), buf;
  if (v != 0 && fabsf(v) < 1.17549435e-38f) { /* subnormal: WGSL may flush literals; keep the bits */
    uint32_t u;
    memcpy(&u, &v, 4);
    return snprintf(buf, 48, "bitcast<f32>(0x%08xu)", u), buf;
  }
  snprintf(buf, 48, "%.9g", (double)v);
  /* make it a float literal: "2" -> "2.0", "1e+10" stays valid as an abstract float */
  if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
  char tmp[48];
  snprintf(tmp, sizeof tmp, "f32(%s)", buf);
  memcpy(buf, tmp, strlen(tmp) + 1);
  return buf;
}
