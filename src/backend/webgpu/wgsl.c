/* wgsl.c — building WGSL text: an append-only string with printf, and float literals that
 * round-trip exactly (kernels bake shapes and attribute values into their shaders). */
#include "backend/webgpu/wg.h"
#include <math.h>
#include <stdio.h>

void gpux__wg_cat(wg_str *s, const char *fmt, ...) {
  if (s->oom) return;
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
