/* output.c — `gpux run --output [NAME=]FILE`: writes a run's answer to a file, the format by its
 * extension: .json (the whole answer, every output's data), .npy (one output as a NumPy array)
 * or .png (one output that is an image or a map: [H,W], [1,H,W], [C,H,W] or [H,W,C] with C 1 or
 * 3 after leading 1s; a one-channel map over the input image, when that was a PNG of the same
 * size, is drawn in red on it; a detector's boxes are drawn on the input image, PNG or JPEG).
 * The answer comes from gpux_app_run with full_outputs set. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

static const char *ext_of(const char *path) {
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  return dot && (!slash || dot > slash) ? dot : "";
}

int cli_output_check(const char *spec) {
  const char *eq = strchr(spec, '='), *file = eq ? eq + 1 : spec;
  const char *e = ext_of(file);
  if (!*file || (strcmp(e, ".json") && strcmp(e, ".npy") && strcmp(e, ".png"))) {
    cli_error(0, "--output %s: the file must end in .json, .npy or .png", spec);
    return -1;
  }
  return 0;
}

/* The output named `name`, or the first one (with `want_image`: the first that is an image). */
static const cJSON *pick(const cJSON *res, const char *name, size_t nl, int (*fits)(const cJSON *)) {
  const cJSON *o, *first = NULL;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(res, "outputs")) {
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(o, "name"));
    if (name) {
      if (n && strlen(n) == nl && !strncmp(n, name, nl)) return o;
    } else if (!fits || fits(o)) {
      if (!first) first = o;
    }
  }
  return first;
}

/* An output's shape without leading 1s (keeping at least 2 dimensions): [1,3,H,W] -> [3,H,W]. */
static int squeezed(const cJSON *o, int64_t *dims) {
  int64_t all[16];
  int n = 0, k = 0;
  const cJSON *d;
  cJSON_ArrayForEach(d, cJSON_GetObjectItem(o, "shape")) if (n < 16) all[n++] = (int64_t)d->valuedouble;
  while (n - k > 2 && all[k] == 1) k++;
  for (int i = k; i < n; i++) dims[i - k] = all[i];
  return n - k;
}

/* Image geometry of an output: height, width, channels, and whether channels come first. */
static int image_geometry(const cJSON *o, int64_t *h, int64_t *w, int *c, int *chw) {
  int64_t d[16];
  int n = squeezed(o, d);
  if (n == 2) { *h = d[0]; *w = d[1]; *c = 1; *chw = 1; }
  else if (n == 3 && (d[0] == 1 || d[0] == 3)) { *h = d[1]; *w = d[2]; *c = (int)d[0]; *chw = 1; }
  else if (n == 3 && (d[2] == 1 || d[2] == 3)) { *h = d[0]; *w = d[1]; *c = (int)d[2]; *chw = 0; }
  else return 0;
  return *h > 1 && *w > 1 && *h <= 16384 && *w <= 16384 && cJSON_IsArray(cJSON_GetObjectItem(o, "data"));
}

static int is_image(const cJSON *o) {
  int64_t h, w;
  int c, chw;
  return image_geometry(o, &h, &w, &c, &chw);
}

static int write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) { cli_error(0, "--output %s: %s", path, strerror(errno)); return EXIT_INPUT; }
  int bad = fwrite(data, 1, len, f) != len;
  bad |= fclose(f) != 0;
  if (bad) { cli_error(0, "--output %s: write error", path); return EXIT_RUNTIME; }
  return EXIT_OK;
}

/* IEEE half from a double (round to nearest even; overflow to infinity). */
static uint16_t to_half(double v) {
  float f = (float)v;
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
  if (e == 0xff) return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
  int ee = (int)e - 127 + 15;
  if (ee >= 31) return (uint16_t)(sign | 0x7c00);
  if (ee <= 0) {
    if (ee < -10) return (uint16_t)sign;
    m |= 0x800000;
    uint32_t shift = (uint32_t)(14 - ee), h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = (uint32_t)ee << 10 | m >> 13, rem = m & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

static int write_npy(const char *path, const cJSON *o) {
  static const struct { const char *dtype, *descr; int size; } map[] = {
    {"float32", "<f4", 4}, {"float64", "<f8", 8}, {"float16", "<f2", 2}, {"int8", "|i1", 1}, {"uint8", "|u1", 1},
    {"int16", "<i2", 2}, {"uint16", "<u2", 2}, {"int32", "<i4", 4}, {"uint32", "<u4", 4}, {"int64", "<i8", 8},
    {"uint64", "<u8", 8}, {"bool", "|b1", 1},
  };
  const char *dt = cJSON_GetStringValue(cJSON_GetObjectItem(o, "dtype")), *name = cJSON_GetStringValue(cJSON_GetObjectItem(o, "name"));
  const cJSON *data = cJSON_GetObjectItem(o, "data");
  int k = -1;
  for (size_t i = 0; dt && i < sizeof map / sizeof *map; i++) if (!strcmp(dt, map[i].dtype)) k = (int)i;
  if (k < 0) { cli_error(0, "--output %s: output '%s' is %s, which .npy cannot hold (use .json)", path, name, dt ? dt : "not a tensor"); return EXIT_INPUT; }
  if (!cJSON_IsArray(data)) { cli_error(0, "--output %s: output '%s' has no data", path, name); return EXIT_INPUT; }
  char hdr[512];
  int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", map[k].descr);
  const cJSON *d;
  int nd = 0;
  cJSON_ArrayForEach(d, cJSON_GetObjectItem(o, "shape")) {
    if (hl < 400) hl += snprintf(hdr + hl, sizeof hdr - (size_t)hl, "%lld, ", (long long)d->valuedouble);
    nd++;
  }
  if (nd) hl -= nd == 1 ? 1 : 2;   /* "(3,)" for one dimension, "(2, 3)" otherwise */
  hl += snprintf(hdr + hl, sizeof hdr - (size_t)hl, "), }");
  int total = 10 + hl + 1, pad = (64 - total % 64) % 64;   /* the data starts 64-byte aligned */
  size_t n = (size_t)cJSON_GetArraySize(data), bytes = (size_t)(total + pad) + n * (size_t)map[k].size;
  unsigned char *buf = malloc(bytes);
  if (!buf) { cli_error(0, "out of memory"); return EXIT_RUNTIME; }
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)((hl + pad + 1) & 0xff);
  buf[9] = (unsigned char)((hl + pad + 1) >> 8);
  memcpy(buf + 10, hdr, (size_t)hl);
  memset(buf + 10 + hl, ' ', (size_t)pad);
  buf[10 + hl + pad] = '\n';
  unsigned char *p = buf + total + pad;
  cJSON_ArrayForEach(d, data) {
    double v = cJSON_IsNumber(d) ? d->valuedouble : cJSON_IsBool(d) ? cJSON_IsTrue(d) : NAN;   /* null: not finite */
    union { float f; double g; int8_t i8; uint8_t u8; int16_t i16; uint16_t u16; int32_t i32; uint32_t u32; int64_t i64; uint64_t u64; } u;
    switch (k) {
    case 0: u.f = (float)v; break;
    case 1: u.g = v; break;
    case 2: u.u16 = to_half(v); break;
    case 3: u.i8 = (int8_t)v; break;
    case 4: case 11: u.u8 = (uint8_t)v; break;
    case 5: u.i16 = (int16_t)v; break;
    case 6: u.u16 = (uint16_t)v; break;
    case 7: u.i32 = (int32_t)v; break;
    case 8: u.u32 = (uint32_t)v; break;
    case 9: u.i64 = (int64_t)v; break;
    default: u.u64 = (uint64_t)v; break;
    }
    memcpy(p, &u, (size_t)map[k].size);   /* little-endian hosts only, as gpux is */
    p += map[k].size;
  }
  int rc = write_file(path, buf, bytes);
  free(buf);
  return rc;
}

/* The input image, when it was a PNG: RGB pixels (free()), else NULL. */
static unsigned char *read_png_rgb(const void *bytes, size_t len, int64_t *w, int64_t *h) {
  if (!bytes || len < 8 || memcmp(bytes, "\x89PNG", 4)) return NULL;
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes, len)) return NULL;
  img.format = PNG_FORMAT_RGB;
  unsigned char *px = malloc(PNG_IMAGE_SIZE(img));
  if (!px || !png_image_finish_read(&img, NULL, px, 0, NULL)) { png_image_free(&img); free(px); return NULL; }
  *w = img.width;
  *h = img.height;
  return px;
}

static int write_png(const char *path, const cJSON *o, const void *input, size_t input_len) {
  int64_t h, w;
  int c, chw;
  const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(o, "name"));
  if (!image_geometry(o, &h, &w, &c, &chw)) {
    cli_error(0, "--output %s: output '%s' is not an image or a map ([H,W], [C,H,W] or [H,W,C] with C 1 or 3)", path, name ? name : "?");
    return EXIT_INPUT;
  }
  const cJSON *data = cJSON_GetObjectItem(o, "data"), *d;
  size_t n = (size_t)(h * w * c), i = 0;
  if ((size_t)cJSON_GetArraySize(data) != n) { cli_error(0, "--output %s: output '%s' has no data", path, name); return EXIT_INPUT; }
  double *v = malloc(n * sizeof *v), lo = INFINITY, hi = -INFINITY;
  unsigned char *px = malloc((size_t)(h * w) * 3);
  if (!v || !px) { free(v); free(px); cli_error(0, "out of memory"); return EXIT_RUNTIME; }
  cJSON_ArrayForEach(d, data) {
    v[i] = cJSON_IsNumber(d) ? d->valuedouble : 0;
    if (v[i] < lo) lo = v[i];
    if (v[i] > hi) hi = v[i];
    i++;
  }
  /* values in [0,1] are probabilities or normalized pixels, [0,255] pixels; others are stretched */
  double scale = 255, off = 0;
  if (lo >= 0 && hi <= 1) scale = 255;
  else if (lo >= 0 && hi <= 255) scale = 1;
  else if (hi > lo) { scale = 255 / (hi - lo); off = -lo; }
  int64_t iw = 0, ih = 0;
  unsigned char *under = c == 1 ? read_png_rgb(input, input_len, &iw, &ih) : NULL;
  if (under && (iw != w || ih != h)) { free(under); under = NULL; }
  for (int64_t y = 0; y < h; y++)
    for (int64_t x = 0; x < w; x++)
      for (int ch = 0; ch < 3; ch++) {
        int src = c == 1 ? 0 : ch;
        size_t at = chw ? (size_t)((src * h + y) * w + x) : (size_t)((y * w + x) * c + src);
        double p = (v[at] + off) * scale;
        p = p < 0 ? 0 : p > 255 ? 255 : p;
        size_t o3 = (size_t)(y * w + x) * 3 + (size_t)ch;
        if (under) /* the map in red over the input, half and half */
          px[o3] = (unsigned char)(ch == 0 ? under[o3] / 2 + p / 2 : under[o3] / 2 + (255 - p) * under[o3] / 510);
        else
          px[o3] = (unsigned char)(p + 0.5);
      }
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = (png_uint_32)w;
  img.height = (png_uint_32)h;
  img.format = PNG_FORMAT_RGB;
  int ok = png_image_write_to_file(&img, path, 0, px, 0, NULL);
  free(under);
  free(v);
  free(px);
  if (!ok) { cli_error(0, "--output %s: %s", path, img.message); return EXIT_INPUT; }
  return EXIT_OK;
}

static int has_detections(const cJSON *o) { return cJSON_IsArray(cJSON_GetObjectItem(o, "detections")); }

/* A detector's answer: its boxes drawn on the input image. */
static int write_annotated(const char *path, const char *result_json, const void *input, size_t input_len) {
  if (!input) {
    cli_error(0, "--output %s: the boxes are drawn on the input image; give it as a file (--input photo.jpg)", path);
    return EXIT_INPUT;
  }
  void *png = NULL;
  size_t len = 0;
  if (gpux_image_annotate(input, input_len, result_json, &png, &len)) {
    cli_error(0, "--output %s: %s", path, gpux_last_error());
    return EXIT_INPUT;
  }
  int rc = write_file(path, png, len);
  gpux_free(png);
  return rc;
}

int cli_write_output(const char *spec, const char *result_json, const void *input, size_t input_len) {
  const char *eq = strchr(spec, '='), *path = eq ? eq + 1 : spec, *e = ext_of(path);
  if (!strcmp(e, ".json")) {
    size_t n = strlen(result_json);
    char *text = malloc(n + 2);
    if (!text) { cli_error(0, "out of memory"); return EXIT_RUNTIME; }
    memcpy(text, result_json, n);
    text[n] = '\n';
    int rc = write_file(path, text, n + 1);
    free(text);
    return rc;
  }
  cJSON *res = cJSON_Parse(result_json);
  const cJSON *o_det;
  if (!res) { cli_error(0, "--output %s: the answer is not JSON", path); return EXIT_RUNTIME; }
  int png = !strcmp(e, ".png");
  if (png && (o_det = pick(res, eq ? spec : NULL, eq ? (size_t)(eq - spec) : 0, has_detections)) &&
      cJSON_IsArray(cJSON_GetObjectItem(o_det, "detections"))) {
    cJSON_Delete(res);
    return write_annotated(path, result_json, input, input_len);
  }
  const cJSON *o = pick(res, eq ? spec : NULL, eq ? (size_t)(eq - spec) : 0, png ? is_image : NULL);
  int rc;
  if (!o && eq) { cli_error(0, "--output %s: no output named '%.*s'", spec, (int)(eq - spec), spec); rc = EXIT_INPUT; }
  else if (!o) { cli_error(0, "--output %s: no output %s", path, png ? "is an image or a map ([H,W], [C,H,W], [H,W,C])" : "to write"); rc = EXIT_INPUT; }
  else rc = png ? write_png(path, o, input, input_len) : write_npy(path, o);
  cJSON_Delete(res);
  return rc;
}
