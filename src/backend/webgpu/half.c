/* half.c — float values held as f16 on the WebGPU device (the adapter's shader-f16; which values
 * a plan holds so is value.c's gpux__wg_held_as): the shader rewrite that lets every kernel use
 * them unchanged.
 * Kernels are written for f32 bindings; for a binding held as array<f16>, each load
 * b<k>[i] becomes f32(b<k>[i]) and each store b<k>[i] = v becomes b<k>[i] = gx_h16(v). So the
 * memory traffic is f16 while arithmetic, accumulators (GEMM sums, reductions, softmax and
 * normalization statistics) and anything held in workgroup memory or scratch stay f32: products
 * and sums are only rounded to f16 when a tensor is stored, as the CPU kernels round their
 * float16 results. gx_h16 rounds with integer arithmetic on the bits (to nearest even, overflow
 * to infinity), so no GPU's own f32 -> f16 conversion decides a value, and a float16 model gives
 * the same values as with f32 emulation (narrow.c). */
#include "backend/webgpu/wg.h"
#include <ctype.h>

/* x rounded to the nearest f16 as an exact f32 (gx_r16: narrow.c's gx_f16 under its own name, since a shader may hold both), then converted. */
static const char *const round_fn = GPUX__WG_F16_ROUND_FN("gx_r16");
static const char *const half_fn = "fn gx_h16(x: f32) -> f16 { return f16(gx_r16(x)); }\n";

static int ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* The end of the bracketed text that starts after the '[' at i: the index of its ']', or -1. */
static long close_of(const char *s, long i, long end) {
  int depth = 0;
  for (long j = i; j < end; j++) {
    if (s[j] == '[') depth++;
    else if (s[j] == ']' && depth-- == 0) return j;
  }
  return -1;
}

/* The ';' that ends the statement whose expression starts at i (outside brackets), or -1. */
static long stmt_end(const char *s, long i, long end) {
  int depth = 0;
  for (long j = i; j < end; j++) {
    if (s[j] == '(' || s[j] == '[' || s[j] == '{') depth++;
    else if (s[j] == ')' || s[j] == ']' || s[j] == '}') depth--;
    else if (s[j] == ';' && depth <= 0) return j;
  }
  return -1;
}

/* Rewrites s[a, end) into out. */
static void rewrite(const char *s, long a, long end, const unsigned char *half, int n_half, int emu, wg_str *out) {
  long i = a, flushed = a;
  while (i < end && !out->oom) {
    if (s[i] != 'b' || (i > 0 && ident(s[i - 1])) || !isdigit((unsigned char)s[i + 1])) { i++; continue; }
    long j = i + 1;
    int k = 0;
    while (j < end && isdigit((unsigned char)s[j]) && k < 1000) k = k * 10 + (s[j++] - '0');
    if (j >= end || s[j] != '[' || k >= n_half || !half[k]) { i = j; continue; }
    long close = close_of(s, j + 1, end);
    if (close < 0) { i = j; continue; }
    gpux__wg_cat(out, "%.*s", (int)(i - flushed), s + flushed);
    long t = close + 1;
    while (t < end && s[t] == ' ') t++;
    int plain = t < end && s[t] == '=' && s[t + 1] != '=';
    int compound = t + 1 < end && strchr("+-*/", s[t]) && s[t] && s[t + 1] == '=';
    long semi = plain || compound ? stmt_end(s, t + (plain ? 1 : 2), end) : -1;
    if (semi >= 0) { /* a store: b<k>[i] = gx_h16(value) */
      gpux__wg_cat(out, "b%d[", k);
      rewrite(s, j + 1, close, half, n_half, emu, out);
      gpux__wg_cat(out, "] = %s(", emu ? "gx_r16" : "gx_h16");
      if (compound) {
        gpux__wg_cat(out, "%sb%d[", emu ? "(" : "f32(", k);
        rewrite(s, j + 1, close, half, n_half, emu, out);
        gpux__wg_cat(out, "]) %c (", s[t]);
      }
      rewrite(s, t + (plain ? 1 : 2), semi, half, n_half, emu, out);
      gpux__wg_cat(out, "%s);", compound ? ")" : "");
      i = flushed = semi + 1;
    } else { /* a load: f32(b<k>[i]) */
      gpux__wg_cat(out, "%sb%d[", emu ? "(" : "f32(", k);
      rewrite(s, j + 1, close, half, n_half, emu, out);
      gpux__wg_cat(out, "])");
      i = flushed = close + 1;
    }
  }
  if (flushed < end) gpux__wg_cat(out, "%.*s", (int)(end - flushed), s + flushed);
}

void gpux__wg_half_rewrite(const char *src, const unsigned char *half, int n_half, int emulated, wg_str *out) {
  gpux__wg_cat(out, "%s%s%s", emulated ? "" : "enable f16;\n", round_fn, emulated ? "" : half_fn);
  rewrite(src, 0, (long)strlen(src), half, n_half, emulated, out);
}
