/* image.c — images for vision models: PNG (libpng) and JPEG (libjpeg-turbo) decoding from
 * memory with errors caught through setjmp/longjmp, PNG encoding, channel conversion, resizing
 * (OpenCV-style bilinear and nearest, PIL-style antialiased bilinear), center crop, letterbox,
 * the preprocessing.image pipeline that ends in a float32 NCHW/NHWC tensor, and the map that
 * takes the tensor's pixel coordinates back to the image's. */
#include "prepost/prepost-impl.h"
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>

/* The most pixels an image may have (64 Mi: 256 MiB as RGBA), and per byte of a compressed file:
 * deflate expands at most 1032:1 and a PNG pixel may be one bit, so a PNG holds at most ~8256
 * pixels per byte; a JPEG of flat 8x8 blocks (even progressive, with end-of-band runs) stays far
 * below 4096. A file declaring more is a decompression bomb, refused before decoding. */
#define MAX_PIXELS ((int64_t)1 << 26)
#define PNG_PIXELS_PER_BYTE 8256
#define JPEG_PIXELS_PER_BYTE 4096
#define JPEG_MAX_MEMORY ((long)512 << 20) /* libjpeg's own buffers (progressive coefficients) */

/* 0 when width x height fits MAX_PIXELS and what `len` compressed bytes can hold. */
static int check_declared_size(const char *format, int64_t w, int64_t h, size_t len, int64_t per_byte) {
  int64_t budget = GPUX__MIN(MAX_PIXELS, ((int64_t)1 << 16) + (int64_t)GPUX__MIN(len, (size_t)1 << 40) * per_byte);
  if (w * h <= budget) return 0;
  if (w * h > MAX_PIXELS)
    return gpux__error(GPUX_E_INVALID, "%s image of %lldx%lld pixels is too large (at most %lld pixels)", format,
                       (long long)w, (long long)h, (long long)MAX_PIXELS);
  return gpux__error(GPUX_E_INVALID, "%s image declares %lldx%lld pixels, more than a file of %zu bytes can hold",
                     format, (long long)w, (long long)h, len);
}

int gpux__image_alloc(gpux__image *img, int width, int height, int channels) {
  memset(img, 0, sizeof *img);
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3 && channels != 4))
    return gpux__error(GPUX_E_INVALID, "bad image size %dx%d with %d channels", width, height,
                       channels);
  if ((int64_t)width * height > MAX_PIXELS)
    return gpux__error(GPUX_E_INVALID, "image of %dx%d pixels is too large", width, height);
  img->data = gpux__calloc((size_t)width * height, (size_t)channels);
  if (!img->data) return GPUX_E_NOMEM;
  img->width = width;
  img->height = height;
  img->channels = channels;
  return 0;
}

void gpux__image_free(gpux__image *img) {
  if (!img) return;
  free(img->data);
  memset(img, 0, sizeof *img);
}

/* ---- channel conversion ---- */

static uint8_t gray_of(const uint8_t *p) {
  return (uint8_t)((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
}

int gpux__image_convert(const gpux__image *src, int channels, gpux__image *out) {
  int rc = gpux__image_alloc(out, src->width, src->height, channels);
  if (rc) return rc;
  size_t n = (size_t)src->width * src->height;
  int sc = src->channels;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *s = src->data + i * sc;
    uint8_t *d = out->data + i * channels;
    uint8_t rgba[4];
    if (sc == 1) rgba[0] = rgba[1] = rgba[2] = s[0], rgba[3] = 255;
    else if (sc == 2) rgba[0] = rgba[1] = rgba[2] = s[0], rgba[3] = s[1];
    else rgba[0] = s[0], rgba[1] = s[1], rgba[2] = s[2], rgba[3] = sc == 4 ? s[3] : 255;
    if (channels == 1) d[0] = sc <= 2 ? s[0] : gray_of(rgba);
    else memcpy(d, rgba, (size_t)channels);
  }
  return 0;
}

/* Takes raw decoded pixels with `have` channels (1..4, 2 = gray+alpha) into an image with
 * `want` channels (0 = as stored, gray+alpha becoming RGBA). Frees `raw` in every case. */
static int finish_decode(uint8_t *raw, int w, int h, int have, int want, gpux__image *out) {
  if (want == 0) want = have == 2 ? 4 : have;
  if (want == have) {
    out->data = raw;
    out->width = w;
    out->height = h;
    out->channels = have;
    return 0;
  }
  gpux__image tmp = {.width = w, .height = h, .channels = have, .data = raw};
  int rc = gpux__image_convert(&tmp, want, out);
  free(raw);
  return rc;
}

/* ---- PNG ---- */

typedef struct {
  const uint8_t *data;
  size_t len, pos;
  char message[200];
  uint8_t *pixels;               /* (height, width, channels) */
  png_bytep *rows;
  int width, height, channels;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
  png_ctx *c = png_get_error_ptr(png);
  snprintf(c->message, sizeof c->message, "%s", msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_on_read(png_structp png, png_bytep out, size_t n) {
  png_ctx *c = png_get_io_ptr(png);
  if (n > c->len - c->pos) png_error(png, "truncated file");
  memcpy(out, c->data + c->pos, n);
  c->pos += n;
}

/* The part that runs under setjmp: everything it allocates is kept in c, so the caller frees
 * it whatever happened. */
static int png_decode_inner(png_ctx *c) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
  if (!png) return gpux__error(GPUX_E_NOMEM, "out of memory starting the PNG decoder");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    return gpux__error(GPUX_E_NOMEM, "out of memory starting the PNG decoder");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    return gpux__error(GPUX_E_PARSE, "corrupt PNG: %s", c->message[0] ? c->message : "error");
  }
  png_set_read_fn(png, c, png_on_read);
  png_set_user_limits(png, 1u << 20, 1u << 20);
  png_set_chunk_malloc_max(png, (png_alloc_size_t)64 << 20);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int rc = check_declared_size("PNG", w, h, c->len, PNG_PIXELS_PER_BYTE);
  if (rc) {
    png_destroy_read_struct(&png, &info, NULL);
    return rc;
  }
  png_set_expand(png);           /* palette -> RGB, gray < 8 bits -> 8 bits, tRNS -> alpha */
  png_set_scale_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int ch = png_get_channels(png, info);
  if (ch < 1 || ch > 4 || png_get_bit_depth(png, info) != 8) png_error(png, "unexpected pixel format");
  c->width = (int)w;
  c->height = (int)h;
  c->channels = ch;
  size_t stride = (size_t)w * ch;
  if (png_get_rowbytes(png, info) != stride) png_error(png, "unexpected row size");
  c->pixels = malloc(stride * h);
  c->rows = malloc(sizeof *c->rows * h);
  if (!c->pixels || !c->rows) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->pixels + y * stride;
  png_read_image(png, c->rows);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  return 0;
}

static int png_decode(const void *bytes, size_t len, int want, gpux__image *out) {
  png_ctx c = {.data = bytes, .len = len};
  int rc = png_decode_inner(&c);
  free(c.rows);
  if (rc) {
    free(c.pixels);
    return rc;
  }
  return finish_decode(c.pixels, c.width, c.height, c.channels, want, out);
}

typedef struct {
  gpux__pp_buf out;
  int failed;
  char message[200];
} png_write_ctx;

static void png_on_write(png_structp png, png_bytep data, size_t n) {
  png_write_ctx *c = png_get_io_ptr(png);
  if (gpux__pp_buf_put(&c->out, data, n)) png_error(png, "out of memory");
}
static void png_on_flush(png_structp png) { (void)png; }

static void png_on_write_error(png_structp png, png_const_charp msg) {
  png_write_ctx *c = png_get_error_ptr(png);
  snprintf(c->message, sizeof c->message, "%s", msg);
  png_longjmp(png, 1);
}

static int png_encode_inner(const gpux__image *img, png_write_ctx *c) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, png_on_write_error,
                                            png_on_warning);
  if (!png) return gpux__error(GPUX_E_NOMEM, "out of memory starting the PNG encoder");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    return gpux__error(GPUX_E_NOMEM, "out of memory starting the PNG encoder");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return gpux__error(GPUX_E_IO, "PNG encoding failed: %s", c->message);
  }
  static const int types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                              PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_write_fn(png, c, png_on_write, png_on_flush);
  png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
               types[img->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < img->height; y++)
    png_write_row(png, img->data + (size_t)y * img->width * img->channels);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return 0;
}

int gpux__image_encode_png(const gpux__image *img, void **png, size_t *len) {
  *png = NULL;
  *len = 0;
  if (!img->data || img->width <= 0 || img->height <= 0 || img->channels < 1 || img->channels > 4)
    return gpux__error(GPUX_E_INVALID, "cannot encode an empty image");
  png_write_ctx c = {0};
  int rc = png_encode_inner(img, &c);
  if (rc) {
    free(c.out.data);
    return rc;
  }
  *png = c.out.data;
  *len = c.out.len;
  return 0;
}

/* ---- JPEG ---- */

typedef struct {
  struct jpeg_error_mgr mgr;     /* first: libjpeg sees this struct as its error manager */
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
} jpeg_err;

typedef struct {
  jpeg_err err;
  struct jpeg_decompress_struct cinfo; /* here, not on the stack of the function that setjmps */
  uint8_t *pixels;               /* (height, width, channels) */
  int width, height, channels;
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
  jpeg_err *e = (jpeg_err *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, e->message);
  longjmp(e->jump, 1);
}

/* Warnings (level -1) are libjpeg noticing corrupt data, which it would otherwise paper over (a
 * damaged file decoded as a flat grey image): they are errors. Trace messages are ignored. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level == -1) jpeg_on_error(cinfo);
}

static int jpeg_decode_inner(const void *bytes, size_t len, int want, jpeg_ctx *c) {
  j_decompress_ptr ci = &c->cinfo;
  ci->err = jpeg_std_error(&c->err.mgr);
  c->err.mgr.error_exit = jpeg_on_error;
  c->err.mgr.emit_message = jpeg_on_message;
  if (setjmp(c->err.jump)) {
    jpeg_destroy_decompress(ci);
    return gpux__error(GPUX_E_PARSE, "corrupt JPEG: %s", c->err.message);
  }
  jpeg_create_decompress(ci);
  ci->mem->max_memory_to_use = JPEG_MAX_MEMORY;
  jpeg_mem_src(ci, bytes, (unsigned long)len);
  jpeg_read_header(ci, TRUE);
  int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
  if (cmyk) ci->out_color_space = JCS_CMYK;
  else if (ci->jpeg_color_space == JCS_GRAYSCALE && (want == 0 || want == 1))
    ci->out_color_space = JCS_GRAYSCALE;
  else ci->out_color_space = JCS_RGB;
  jpeg_calc_output_dimensions(ci);
  int rc = check_declared_size("JPEG", ci->image_width, ci->image_height, len, JPEG_PIXELS_PER_BYTE);
  if (rc) {
    jpeg_destroy_decompress(ci);
    return rc;
  }
  jpeg_start_decompress(ci);
  int ch = ci->output_components;
  size_t stride = (size_t)ci->output_width * ch;
  c->pixels = malloc(stride * ci->output_height);
  if (!c->pixels) {
    jpeg_destroy_decompress(ci);
    return gpux__error(GPUX_E_NOMEM, "out of memory decoding a JPEG image");
  }
  c->width = (int)ci->output_width;
  c->height = (int)ci->output_height;
  while (ci->output_scanline < ci->output_height) {
    JSAMPROW row = c->pixels + (size_t)ci->output_scanline * stride;
    jpeg_read_scanlines(ci, &row, 1);
  }
  jpeg_finish_decompress(ci);
  jpeg_destroy_decompress(ci);
  if (cmyk) { /* Adobe's inverted CMYK: R = C * K / 255 */
    size_t n = (size_t)c->width * c->height;
    for (size_t i = 0; i < n; i++) {
      const uint8_t *s = c->pixels + i * 4;
      uint8_t *d = c->pixels + i * 3;
      uint8_t r = (uint8_t)((s[0] * s[3] + 127) / 255), g = (uint8_t)((s[1] * s[3] + 127) / 255),
              b = (uint8_t)((s[2] * s[3] + 127) / 255);
      d[0] = r, d[1] = g, d[2] = b;
    }
    ch = 3;
  }
  c->channels = ch;
  return 0;
}

static int jpeg_decode(const void *bytes, size_t len, int want, gpux__image *out) {
  jpeg_ctx c;
  memset(&c, 0, sizeof c);
  int rc = jpeg_decode_inner(bytes, len, want, &c);
  if (rc) {
    free(c.pixels);
    return rc;
  }
  return finish_decode(c.pixels, c.width, c.height, c.channels, want, out);
}

int gpux__image_decode(const void *bytes, size_t len, int want_channels, gpux__image *out) {
  memset(out, 0, sizeof *out);
  if (want_channels != 0 && want_channels != 1 && want_channels != 3 && want_channels != 4)
    return gpux__error(GPUX_E_INVALID, "cannot decode an image into %d channels", want_channels);
  const uint8_t *b = bytes;
  static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (len >= 8 && memcmp(b, png_magic, 8) == 0) return png_decode(bytes, len, want_channels, out);
  if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
    return jpeg_decode(bytes, len, want_channels, out);
  if (len == 0) return gpux__error(GPUX_E_PARSE, "empty image data");
  return gpux__error(GPUX_E_UNSUPPORTED, "image data is neither PNG nor JPEG");
}

int gpux__image_load(const char *path, int want_channels, gpux__image *out) {
  memset(out, 0, sizeof *out);
  char *data;
  size_t len;
  int rc = gpux__pp_read_file(path, &data, &len);
  if (rc) return rc;
  rc = gpux__image_decode(data, len, want_channels, out);
  free(data);
  if (rc) return gpux__error_prefix(rc, "%s: ", path);
  return 0;
}

/* ---- resizing ---- */

static uint8_t clamp_u8(float v) {
  if (!(v > 0.0f)) return 0;
  if (v >= 255.0f) return 255;
  return (uint8_t)lrintf(v);
}

/* OpenCV INTER_LINEAR source coordinate: index and weight of the right neighbour. */
static void cv_coord(int d, double scale, int ssize, int *s0, float *f) {
  double fx = (d + 0.5) * scale - 0.5;
  int sx = (int)floor(fx);
  fx -= sx;
  if (sx < 0) sx = 0, fx = 0;
  if (sx >= ssize - 1) sx = ssize - 1, fx = 0;
  *s0 = sx;
  *f = (float)fx;
}

static void resize_bilinear(const gpux__image *s, gpux__image *d) {
  int C = s->channels;
  double sx = (double)s->width / d->width, sy = (double)s->height / d->height;
  int *x0 = malloc(sizeof(int) * d->width);
  float *fx = malloc(sizeof(float) * d->width);
  if (!x0 || !fx) goto done;
  for (int x = 0; x < d->width; x++) cv_coord(x, sx, s->width, &x0[x], &fx[x]);
  for (int y = 0; y < d->height; y++) {
    int y0;
    float fy;
    cv_coord(y, sy, s->height, &y0, &fy);
    int y1 = y0 + 1 < s->height ? y0 + 1 : y0;
    const uint8_t *r0 = s->data + (size_t)y0 * s->width * C, *r1 = s->data + (size_t)y1 * s->width * C;
    uint8_t *o = d->data + (size_t)y * d->width * C;
    for (int x = 0; x < d->width; x++) {
      int xa = x0[x], xb = xa + 1 < s->width ? xa + 1 : xa;
      float wx = fx[x];
      for (int c = 0; c < C; c++) {
        float top = r0[xa * C + c] * (1 - wx) + r0[xb * C + c] * wx;
        float bot = r1[xa * C + c] * (1 - wx) + r1[xb * C + c] * wx;
        o[x * C + c] = clamp_u8(top * (1 - fy) + bot * fy);
      }
    }
  }
done:
  free(x0);
  free(fx);
}

static void resize_nearest(const gpux__image *s, gpux__image *d) {
  int C = s->channels;
  double sx = (double)s->width / d->width, sy = (double)s->height / d->height;
  for (int y = 0; y < d->height; y++) {
    int ys = GPUX__MIN((int)floor(y * sy), s->height - 1);
    for (int x = 0; x < d->width; x++) {
      int xs = GPUX__MIN((int)floor(x * sx), s->width - 1);
      memcpy(d->data + ((size_t)y * d->width + x) * C, s->data + ((size_t)ys * s->width + xs) * C,
             (size_t)C);
    }
  }
}

/* PIL's resampling along one axis: for output i, a triangle filter of support `scale` (at least
 * 1) centered at (i + 0.5) * scale, weights normalized. */
typedef struct {
  int first, count;
  float *w;
} aa_taps;

static int aa_plan(int in, int out, aa_taps **taps_out, float **wbuf_out) {
  double scale = (double)in / out, filterscale = scale < 1 ? 1 : scale;
  double support = 1.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  aa_taps *taps = calloc((size_t)out, sizeof *taps);
  float *wbuf = calloc((size_t)out * ksize, sizeof *wbuf);
  if (!taps || !wbuf) {
    free(taps);
    free(wbuf);
    return gpux__error(GPUX_E_NOMEM, "out of memory resizing an image");
  }
  for (int i = 0; i < out; i++) {
    double center = (i + 0.5) * scale;
    int lo = (int)floor(center - support + 0.5), hi = (int)floor(center + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    if (hi - lo > ksize) hi = lo + ksize;
    float *w = wbuf + (size_t)i * ksize;
    double total = 0;
    for (int k = lo; k < hi; k++) {
      double t = (k - center + 0.5) / filterscale;
      double v = t < 0 ? -t : t;
      v = v < 1 ? 1 - v : 0;
      w[k - lo] = (float)v;
      total += v;
    }
    for (int k = 0; k < hi - lo && total > 0; k++) w[k] = (float)(w[k] / total);
    taps[i].first = lo;
    taps[i].count = hi - lo;
    taps[i].w = w;
  }
  *taps_out = taps;
  *wbuf_out = wbuf;
  return 0;
}

static int resize_aa(const gpux__image *s, gpux__image *d) {
  int C = s->channels, rc;
  aa_taps *tx = NULL, *ty = NULL;
  float *wx = NULL, *wy = NULL;
  uint8_t *mid = NULL;           /* (s->height, d->width, C): after the horizontal pass */
  if ((rc = aa_plan(s->width, d->width, &tx, &wx)) || (rc = aa_plan(s->height, d->height, &ty, &wy)))
    goto done;
  mid = gpux__malloc((size_t)s->height * d->width * C);
  if (!mid) {
    rc = GPUX_E_NOMEM;
    goto done;
  }
  for (int y = 0; y < s->height; y++)
    for (int x = 0; x < d->width; x++)
      for (int c = 0; c < C; c++) {
        float acc = 0;
        const uint8_t *row = s->data + (size_t)y * s->width * C;
        for (int k = 0; k < tx[x].count; k++) acc += tx[x].w[k] * row[(tx[x].first + k) * C + c];
        mid[((size_t)y * d->width + x) * C + c] = clamp_u8(acc);
      }
  for (int y = 0; y < d->height; y++)
    for (int x = 0; x < d->width; x++)
      for (int c = 0; c < C; c++) {
        float acc = 0;
        for (int k = 0; k < ty[y].count; k++)
          acc += ty[y].w[k] * mid[((size_t)(ty[y].first + k) * d->width + x) * C + c];
        d->data[((size_t)y * d->width + x) * C + c] = clamp_u8(acc);
      }
done:
  free(tx), free(ty), free(wx), free(wy), free(mid);
  return rc;
}

int gpux__image_resize(const gpux__image *src, int width, int height, int interp, gpux__image *out) {
  memset(out, 0, sizeof *out);
  if (!src->data) return gpux__error(GPUX_E_INVALID, "resize of an empty image");
  if (interp < GPUX__INTERP_BILINEAR || interp > GPUX__INTERP_BILINEAR_AA)
    return gpux__error(GPUX_E_INVALID, "unknown interpolation %d", interp);
  int rc = gpux__image_alloc(out, width, height, src->channels);
  if (rc) return rc;
  if (width == src->width && height == src->height) {
    memcpy(out->data, src->data, (size_t)width * height * src->channels);
    return 0;
  }
  if (interp == GPUX__INTERP_NEAREST) resize_nearest(src, out);
  else if (interp == GPUX__INTERP_BILINEAR) resize_bilinear(src, out);
  else if ((rc = resize_aa(src, out)) != 0) gpux__image_free(out);
  return rc;
}

int gpux__image_center_crop(const gpux__image *src, int width, int height, gpux__image *out) {
  memset(out, 0, sizeof *out);
  if (!src->data) return gpux__error(GPUX_E_INVALID, "crop of an empty image");
  int rc = gpux__image_alloc(out, width, height, src->channels);
  if (rc) return rc;
  /* torchvision: top = int(round((H - h) / 2)), negative when padding */
  int top = (int)lrint((src->height - height) / 2.0), left = (int)lrint((src->width - width) / 2.0);
  int C = src->channels;
  for (int y = 0; y < height; y++) {
    int sy = y + top;
    if (sy < 0 || sy >= src->height) continue;
    for (int x = 0; x < width; x++) {
      int sx = x + left;
      if (sx < 0 || sx >= src->width) continue;
      memcpy(out->data + ((size_t)y * width + x) * C, src->data + ((size_t)sy * src->width + sx) * C,
             (size_t)C);
    }
  }
  return 0;
}

/* ---- the preprocessing.image pipeline ---- */

void gpux__image_config_default(gpux__image_config *c) {
  memset(c, 0, sizeof *c);
  c->channels = 3;
  c->resize = GPUX__RESIZE_NONE;
  c->interp = GPUX__INTERP_BILINEAR;
  c->scale = 255.0f;
  for (int i = 0; i < 4; i++) c->std[i] = 1.0f;
  c->layout = GPUX__LAYOUT_NCHW;
  c->fill[0] = c->fill[1] = c->fill[2] = 114;
  c->dtype = GPUX_DT_FLOAT;
}

int gpux__image_config_check(const gpux__image_config *c) {
  if (c->channels != 1 && c->channels != 3)
    return gpux__error(GPUX_E_INVALID, "image channels must be 1 or 3, not %d", c->channels);
  if (c->interp < GPUX__INTERP_BILINEAR || c->interp > GPUX__INTERP_BILINEAR_AA)
    return gpux__error(GPUX_E_INVALID, "unknown image interpolation %d", c->interp);
  switch (c->resize) {
  case GPUX__RESIZE_NONE: break;
  case GPUX__RESIZE_EXACT:
  case GPUX__RESIZE_LETTERBOX:
    if (c->width <= 0 || c->height <= 0)
      return gpux__error(GPUX_E_INVALID, "image resize needs a positive width and height, not %dx%d",
                         c->width, c->height);
    break;
  case GPUX__RESIZE_SHORTER:
  case GPUX__RESIZE_LONGER:
    if (c->size <= 0)
      return gpux__error(GPUX_E_INVALID, "image resize needs a positive size, not %d", c->size);
    break;
  case GPUX__RESIZE_HEIGHT:
    if (c->height <= 0)
      return gpux__error(GPUX_E_INVALID, "image resize needs a positive height, not %d", c->height);
    if (c->min_width < 0 || c->max_width < 0 || (c->max_width && c->max_width < c->min_width))
      return gpux__error(GPUX_E_INVALID, "image min_width %d / max_width %d are inconsistent",
                         c->min_width, c->max_width);
    break;
  default: return gpux__error(GPUX_E_INVALID, "unknown image resize mode %d", c->resize);
  }
  if (c->crop_width < 0 || c->crop_height < 0 || (!c->crop_width != !c->crop_height))
    return gpux__error(GPUX_E_INVALID, "image crop needs both a width and a height, not %dx%d",
                       c->crop_width, c->crop_height);
  if (c->dtype != GPUX_DT_FLOAT && c->dtype != GPUX_DT_UINT8)
    return gpux__error(GPUX_E_INVALID, "image tensors are float32 or uint8, not %s",
                       gpux_dtype_name(c->dtype));
  if (c->dtype == GPUX_DT_FLOAT) {
    if (!(c->scale != 0.0f) || !isfinite(c->scale))
      return gpux__error(GPUX_E_INVALID, "image scale must be non-zero");
    for (int i = 0; i < c->channels; i++)
      if (!(c->std[i] != 0.0f) || !isfinite(c->std[i]) || !isfinite(c->mean[i]))
        return gpux__error(GPUX_E_INVALID, "image std[%d] must be non-zero and mean/std finite", i);
  }
  if (c->pad_multiple < 0 || c->pad_multiple > 4096)
    return gpux__error(GPUX_E_INVALID, "image pad multiple %d is out of range", c->pad_multiple);
  if (c->layout != GPUX__LAYOUT_NCHW && c->layout != GPUX__LAYOUT_NHWC)
    return gpux__error(GPUX_E_INVALID, "unknown image layout %d", c->layout);
  return 0;
}

static int clamp_dim(double v) {
  if (!(v >= 1)) return 1;
  if (v > 1 << 20) return 1 << 20;
  return (int)v;
}

/* The size an image of w x h is resized to, and for a letterbox where it lies in the canvas. */
typedef struct {
  int w, h;                      /* the resized image */
  int tensor_min_w;              /* HEIGHT: the tensor's least width */
  int left, top;                 /* LETTERBOX: the resized image's place in the width x height canvas */
  double gain;                   /* LETTERBOX: the one scale of both axes */
} resize_plan;

static void plan_resize(const gpux__image_config *c, int w, int h, resize_plan *p) {
  memset(p, 0, sizeof *p);
  switch (c->resize) {
  case GPUX__RESIZE_EXACT: w = c->width, h = c->height; break;
  case GPUX__RESIZE_SHORTER:
  case GPUX__RESIZE_LONGER: {
    int shorter = (w < h) == (c->resize == GPUX__RESIZE_SHORTER);
    if (shorter) { /* width is the side set to size (torchvision: the other is int(size * ratio)) */
      h = clamp_dim(floor((double)c->size * h / w));
      w = c->size;
    } else {
      w = clamp_dim(floor((double)c->size * w / h));
      h = c->size;
    }
    break;
  }
  case GPUX__RESIZE_HEIGHT: {
    double ratio = (double)w / (double)h; /* as PaddleOCR: ceil(imgH * ratio) */
    int rw = clamp_dim(ceil(c->height * ratio));
    if (c->max_width && rw > c->max_width) rw = c->max_width;
    w = rw, h = c->height;
    p->tensor_min_w = c->min_width;
    break;
  }
  case GPUX__RESIZE_LETTERBOX: {
    /* Ultralytics: r = min(H/h, W/w), new size int(round(w r)) (Python rounds halves to even,
       as nearbyint does), borders top = round(dh - 0.1), left = round(dw - 0.1) */
    double r = fmin((double)c->height / h, (double)c->width / w);
    int nw = GPUX__MIN(c->width, clamp_dim(nearbyint(w * r))), nh = GPUX__MIN(c->height, clamp_dim(nearbyint(h * r)));
    p->left = (int)nearbyint((c->width - nw) / 2.0 - 0.1);
    p->top = (int)nearbyint((c->height - nh) / 2.0 - 0.1);
    p->gain = r;
    w = nw, h = nh;
    break;
  }
  default: break;
  }
  p->w = w;
  p->h = h;
}

/* The letterbox canvas: c->width x c->height of the fill colour with img at (left, top). */
static int letterbox_canvas(const gpux__image_config *c, const gpux__image *img, const resize_plan *p, gpux__image *out) {
  int rc = gpux__image_alloc(out, c->width, c->height, img->channels);
  if (rc) return rc;
  int C = img->channels;
  size_t n = (size_t)c->width * c->height;
  for (size_t i = 0; i < n; i++)
    for (int ch = 0; ch < C; ch++) out->data[i * C + ch] = C == 1 ? c->fill[0] : c->fill[ch];
  for (int y = 0; y < img->height; y++)
    memcpy(out->data + ((size_t)(y + p->top) * c->width + p->left) * C, img->data + (size_t)y * img->width * C,
           (size_t)img->width * C);
  return 0;
}

void gpux__image_map_of(const gpux__image_config *c, int width, int height, gpux__image_map *m) {
  memset(m, 0, sizeof *m);
  resize_plan p;
  plan_resize(c, width, height, &p);
  m->valid = 1;
  m->image_width = width;
  m->image_height = height;
  if (c->resize == GPUX__RESIZE_LETTERBOX) {
    m->scale_x = m->scale_y = p.gain;
    m->pad_x = p.left;
    m->pad_y = p.top;
  } else {
    m->scale_x = (double)p.w / width;
    m->scale_y = (double)p.h / height;
  }
  int w = c->resize == GPUX__RESIZE_LETTERBOX ? c->width : p.w, h = c->resize == GPUX__RESIZE_LETTERBOX ? c->height : p.h;
  if (c->crop_width) { /* as gpux__image_center_crop places its window */
    m->pad_x -= (int)lrint((w - c->crop_width) / 2.0);
    m->pad_y -= (int)lrint((h - c->crop_height) / 2.0);
    w = c->crop_width, h = c->crop_height;
  }
  w = GPUX__MAX(w, p.tensor_min_w);
  if (c->pad_multiple > 1) {
    w = (w + c->pad_multiple - 1) / c->pad_multiple * c->pad_multiple;
    h = (h + c->pad_multiple - 1) / c->pad_multiple * c->pad_multiple;
  }
  m->tensor_width = w;
  m->tensor_height = h;
}

void gpux__image_map_box(const gpux__image_map *m, float box[4]) {
  if (!m->valid) return;
  for (int k = 0; k < 4; k++) {
    double v = k % 2 ? (box[k] - m->pad_y) / m->scale_y : (box[k] - m->pad_x) / m->scale_x;
    double hi = k % 2 ? m->image_height : m->image_width;
    box[k] = (float)(v < 0 ? 0 : v > hi ? hi : v); /* NaN stays NaN */
  }
}

int gpux__image_to_tensor(const gpux__image_config *c, const gpux__image *img, gpux_tensor *out) {
  memset(out, 0, sizeof *out);
  int rc = gpux__image_config_check(c);
  if (rc) return rc;
  if (!img->data) return gpux__error(GPUX_E_INVALID, "empty image");
  gpux__image conv = {0}, sized = {0}, boxed = {0}, cropped = {0};
  const gpux__image *cur = img;
  int C = c->channels;
  if (cur->channels != C) {
    if ((rc = gpux__image_convert(cur, C, &conv))) goto done;
    cur = &conv;
  }
  /* resize (letterbox: into a canvas of the fill colour) */
  resize_plan rp;
  plan_resize(c, cur->width, cur->height, &rp);
  int tensor_min_w = rp.tensor_min_w;
  if (rp.w != cur->width || rp.h != cur->height) {
    if ((rc = gpux__image_resize(cur, rp.w, rp.h, c->interp, &sized))) goto done;
    cur = &sized;
  }
  if (c->resize == GPUX__RESIZE_LETTERBOX) {
    if ((rc = letterbox_canvas(c, cur, &rp, &boxed))) goto done;
    cur = &boxed;
  }
  if (c->crop_width) {
    if ((rc = gpux__image_center_crop(cur, c->crop_width, c->crop_height, &cropped))) goto done;
    cur = &cropped;
  }
  /* tensor size: at least min width, then rounded up to the pad multiple */
  int64_t TW = GPUX__MAX(cur->width, tensor_min_w), TH = cur->height;
  if (c->pad_multiple > 1) {
    TW = (TW + c->pad_multiple - 1) / c->pad_multiple * c->pad_multiple;
    TH = (TH + c->pad_multiple - 1) / c->pad_multiple * c->pad_multiple;
  }
  int64_t dims[4] = {1, C, TH, TW};
  if (c->layout == GPUX__LAYOUT_NHWC) dims[1] = TH, dims[2] = TW, dims[3] = C;
  if ((rc = gpux_tensor_init(out, c->dtype, 4, dims))) goto done;
  /* element (ch, y, x) lives at chs * ch + ys * y + x * xs */
  int64_t chs, ys, xs;
  if (c->layout == GPUX__LAYOUT_NCHW) chs = TH * TW, ys = TW, xs = 1;
  else chs = 1, ys = TW * C, xs = C;
  if (c->dtype == GPUX_DT_UINT8) {
    uint8_t *o = out->data;
    for (int y = 0; y < cur->height; y++)
      for (int x = 0; x < cur->width; x++)
        for (int ch = 0; ch < C; ch++) {
          int src_ch = c->bgr && C == 3 ? 2 - ch : ch;
          o[chs * ch + ys * y + xs * x] = cur->data[((size_t)y * cur->width + x) * C + src_ch];
        }
    goto done;
  }
  float *o = out->data;
  int64_t total = TH * TW * C;
  if (c->pad_value != 0.0f)
    for (int64_t i = 0; i < total; i++) o[i] = c->pad_value;
  /* a lookup table per channel: the same float32 steps as (px / scale - mean) / std */
  float lut[3][256];
  for (int ch = 0; ch < C; ch++)
    for (int v = 0; v < 256; v++) {
      float f = (float)v / c->scale;
      f -= c->mean[ch];
      f /= c->std[ch];
      lut[ch][v] = f;
    }
  for (int y = 0; y < cur->height; y++)
    for (int x = 0; x < cur->width; x++) {
      const uint8_t *p = cur->data + ((size_t)y * cur->width + x) * C;
      for (int ch = 0; ch < C; ch++) {
        int src_ch = c->bgr && C == 3 ? 2 - ch : ch;
        o[chs * ch + ys * y + xs * x] = lut[ch][p[src_ch]];
      }
    }
done:
  gpux__image_free(&conv);
  gpux__image_free(&sized);
  gpux__image_free(&boxed);
  gpux__image_free(&cropped);
  if (rc) gpux_tensor_free(out);
  return rc;
}

int gpux__image_preprocess(const gpux__image_config *c, const void *bytes, size_t len,
                           gpux_tensor *out) {
  return gpux__image_preprocess_map(c, bytes, len, out, NULL);
}

int gpux__image_preprocess_map(const gpux__image_config *c, const void *bytes, size_t len,
                               gpux_tensor *out, gpux__image_map *map) {
  memset(out, 0, sizeof *out);
  if (map) memset(map, 0, sizeof *map);
  int rc = gpux__image_config_check(c);
  if (rc) return rc;
  gpux__image img;
  if ((rc = gpux__image_decode(bytes, len, c->channels, &img))) return rc;
  rc = gpux__image_to_tensor(c, &img, out);
  if (!rc && map) gpux__image_map_of(c, img.width, img.height, map);
  gpux__image_free(&img);
  return rc;
}
