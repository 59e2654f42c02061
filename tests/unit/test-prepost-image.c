/* test-prepost-image.c — unit tests of image pre-processing: PNG and JPEG decoding of images
 * made here (libpng's and libjpeg's own encoders: gray, RGB, RGBA, palette, 16-bit, interlaced),
 * corrupt and truncated files (every prefix of a file), resizing numerics (OpenCV bilinear and
 * nearest, PIL antialiased bilinear), center crop, and the tensor pipeline (PaddleOCR rec recipe,
 * BGR, NHWC, padding, uint8), letterbox and the map from tensor pixels back to the image. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <png.h>
#include <jpeglib.h>
#include "core/internal.h"
#include "prepost/prepost.h"

/* A w x h image with a gradient in each channel. */
static void gradient(gpux__image *img, int w, int h, int channels) {
  assert_int_equal(gpux__image_alloc(img, w, h, channels), 0);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < channels; c++)
        img->data[((size_t)y * w + x) * channels + c] = (uint8_t)((x * 7 + y * 13 + c * 50) & 0xff);
}

/* PNG with libpng's simplified API (any format it offers). */
static void *png_simplified(const void *pixels, int w, int h, png_uint_32 format, const void *colormap,
                            int colormap_entries, size_t *len) {
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  im.width = (png_uint_32)w;
  im.height = (png_uint_32)h;
  im.format = format;
  im.colormap_entries = (png_uint_32)colormap_entries;
  png_alloc_size_t size = 0;
  assert_true(png_image_write_to_memory(&im, NULL, &size, 0, pixels, 0, colormap));
  void *buf = malloc(size);
  assert_true(png_image_write_to_memory(&im, buf, &size, 0, pixels, 0, colormap));
  *len = size;
  return buf;
}

static void test_png_round_trip(void **state) {
  (void)state;
  for (int ch = 1; ch <= 4; ch++) {
    if (ch == 2) continue;
    gpux__image img, back;
    gradient(&img, 37, 23, ch);
    void *png;
    size_t len;
    assert_int_equal(gpux__image_encode_png(&img, &png, &len), 0);
    assert_int_equal(gpux__image_decode(png, len, 0, &back), 0);
    assert_int_equal(back.width, 37);
    assert_int_equal(back.height, 23);
    assert_int_equal(back.channels, ch);
    assert_memory_equal(back.data, img.data, (size_t)37 * 23 * ch);
    gpux__image_free(&back);
    /* to RGB: gray is replicated, alpha dropped */
    assert_int_equal(gpux__image_decode(png, len, 3, &back), 0);
    assert_int_equal(back.channels, 3);
    for (int i = 0; i < 37 * 23; i++)
      for (int c = 0; c < 3; c++) assert_int_equal(back.data[i * 3 + c], img.data[i * ch + (ch == 1 ? 0 : c)]);
    gpux__image_free(&back);
    /* to gray */
    assert_int_equal(gpux__image_decode(png, len, 1, &back), 0);
    assert_int_equal(back.channels, 1);
    const uint8_t *p = img.data + 5 * ch;
    int want = ch == 1 ? p[0] : (299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000;
    assert_int_equal(back.data[5], want);
    gpux__image_free(&back);
    free(png);
    gpux__image_free(&img);
  }
}

static void test_png_formats(void **state) {
  (void)state;
  /* 16-bit RGB: reduced to 8 bits (scaled: 0xffff -> 255, 0x8080 -> 128) */
  uint16_t px16[2 * 2 * 3] = {0xffff, 0, 0x8080, 0, 0xffff, 0, 0, 0, 0xffff, 0x1010, 0x2020, 0x3030};
  size_t len;
  void *png = png_simplified(px16, 2, 2, PNG_FORMAT_RGB | PNG_FORMAT_FLAG_LINEAR, NULL, 0, &len);
  gpux__image img;
  assert_int_equal(gpux__image_decode(png, len, 0, &img), 0);
  /* the simplified API stores linear 16-bit values; the decoder only scales them */
  assert_int_equal(img.channels, 3);
  assert_int_equal(img.data[0], 255);
  assert_int_equal(img.data[1], 0);
  gpux__image_free(&img);
  free(png);
  /* palette with transparency -> RGBA */
  uint8_t cmap[3 * 4] = {255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0};
  uint8_t idx[4] = {0, 1, 2, 1};
  png = png_simplified(idx, 2, 2, PNG_FORMAT_RGBA | PNG_FORMAT_FLAG_COLORMAP, cmap, 3, &len);
  assert_int_equal(gpux__image_decode(png, len, 0, &img), 0);
  assert_int_equal(img.channels, 4);
  assert_int_equal(img.data[0], 255);
  assert_int_equal(img.data[3], 255);
  assert_int_equal(img.data[4 + 1], 255);
  assert_int_equal(img.data[4 + 3], 128);
  gpux__image_free(&img);
  free(png);
  /* gray + alpha -> RGBA when asked for "as stored" */
  uint8_t ga[2 * 1 * 2] = {10, 200, 30, 40};
  png = png_simplified(ga, 2, 1, PNG_FORMAT_GA, NULL, 0, &len);
  assert_int_equal(gpux__image_decode(png, len, 0, &img), 0);
  assert_int_equal(img.channels, 4);
  const uint8_t want[] = {10, 10, 10, 200, 30, 30, 30, 40};
  assert_memory_equal(img.data, want, 8);
  gpux__image_free(&img);
  free(png);
}

/* An interlaced PNG written with libpng's full API. */
static void test_png_interlaced(void **state) {
  (void)state;
  FILE *f = tmpfile();
  assert_non_null(f);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, f);
  png_set_IHDR(png, info, 9, 7, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  gpux__image img;
  gradient(&img, 9, 7, 3);
  png_bytep rows[7];
  for (int y = 0; y < 7; y++) rows[y] = img.data + y * 27;
  png_set_rows(png, info, rows);
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
  png_destroy_write_struct(&png, &info);
  long len = ftell(f);
  rewind(f);
  void *buf = malloc((size_t)len);
  assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  gpux__image back;
  assert_int_equal(gpux__image_decode(buf, (size_t)len, 3, &back), 0);
  assert_memory_equal(back.data, img.data, 9 * 7 * 3);
  gpux__image_free(&back);
  gpux__image_free(&img);
  free(buf);
}

/* JPEG with libjpeg's encoder. */
static void *jpeg_encode(const gpux__image *img, int quality, size_t *len) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char *out = NULL;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &out, &size);
  c.image_width = (JDIMENSION)img->width;
  c.image_height = (JDIMENSION)img->height;
  c.input_components = img->channels;
  c.in_color_space = img->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = img->data + (size_t)c.next_scanline * img->width * img->channels;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  *len = size;
  return out;
}

static void test_jpeg(void **state) {
  (void)state;
  gpux__image img, back;
  assert_int_equal(gpux__image_alloc(&img, 64, 48, 3), 0);
  for (int y = 0; y < 48; y++) /* smooth: JPEG keeps it within a few levels */
    for (int x = 0; x < 64; x++) {
      uint8_t *p = img.data + (y * 64 + x) * 3;
      p[0] = (uint8_t)(x * 4), p[1] = (uint8_t)(y * 5), p[2] = 128;
    }
  size_t len;
  void *jpg = jpeg_encode(&img, 100, &len);
  assert_int_equal(gpux__image_decode(jpg, len, 0, &back), 0);
  assert_int_equal(back.width, 64);
  assert_int_equal(back.height, 48);
  assert_int_equal(back.channels, 3);
  int worst = 0;
  for (int i = 0; i < 64 * 48 * 3; i++) worst = GPUX__MAX(worst, abs(back.data[i] - img.data[i]));
  assert_true(worst <= 4);
  gpux__image_free(&back);
  /* truncated: every prefix is an error, never a crash */
  for (size_t n = 0; n < len; n += (n < 700 ? 1 : 97)) {
    int rc = gpux__image_decode(jpg, n, 0, &back);
    assert_true(rc < 0);
    assert_null(back.data);
    assert_null(strchr(gpux_last_error(), '\n'));
  }
  assert_int_equal(gpux__image_decode(jpg, len / 2, 3, &back), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "JPEG"));
  /* corrupted bytes: an error or an image, never a crash */
  uint8_t *bad = malloc(len);
  for (int k = 0; k < 200; k++) {
    memcpy(bad, jpg, len);
    bad[3 + (k * 7919) % (len - 3)] ^= (uint8_t)(1 + k);
    if (gpux__image_decode(bad, len, 0, &back) == 0) gpux__image_free(&back);
  }
  free(bad);
  free(jpg);
  /* grayscale JPEG: 1 channel as stored, 3 on request */
  gpux__image gray;
  gradient(&gray, 16, 16, 1);
  jpg = jpeg_encode(&gray, 95, &len);
  assert_int_equal(gpux__image_decode(jpg, len, 0, &back), 0);
  assert_int_equal(back.channels, 1);
  gpux__image_free(&back);
  assert_int_equal(gpux__image_decode(jpg, len, 3, &back), 0);
  assert_int_equal(back.channels, 3);
  assert_int_equal(back.data[0], back.data[1]);
  gpux__image_free(&back);
  free(jpg);
  gpux__image_free(&gray);
  gpux__image_free(&img);
}

static void test_corrupt_png(void **state) {
  (void)state;
  gpux__image img, back;
  gradient(&img, 40, 30, 3);
  void *png;
  size_t len;
  assert_int_equal(gpux__image_encode_png(&img, &png, &len), 0);
  for (size_t n = 0; n < len; n++) { /* every truncation */
    int rc = gpux__image_decode(png, n, 0, &back);
    assert_true(rc < 0);
    assert_null(back.data);
  }
  assert_int_equal(gpux__image_decode(png, len - 20, 0, &back), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "PNG"));
  uint8_t *bad = malloc(len);
  for (size_t k = 8; k < len; k++) { /* every byte flipped: CRCs catch most */
    memcpy(bad, png, len);
    bad[k] ^= 0x5a;
    if (gpux__image_decode(bad, len, 0, &back) == 0) gpux__image_free(&back);
  }
  /* a huge declared size is refused before allocating */
  memcpy(bad, png, len);
  bad[16] = 0x7f, bad[20] = 0x7f; /* width, height in IHDR (the CRC no longer matches either) */
  assert_true(gpux__image_decode(bad, len, 0, &back) < 0);
  free(bad);
  free(png);
  assert_int_equal(gpux__image_decode("GIF89a....", 10, 0, &back), GPUX_E_UNSUPPORTED);
  assert_int_equal(gpux__image_decode("", 0, 0, &back), GPUX_E_PARSE);
  assert_int_equal(gpux__image_decode("\x89PNG", 4, 0, &back), GPUX_E_UNSUPPORTED);
  assert_int_equal(gpux__image_load("/nonexistent/x.png", 0, &back), GPUX_E_NOTFOUND);
  assert_non_null(strstr(gpux_last_error(), "/nonexistent/x.png"));
  gpux__image_free(&img);
}

static void test_resize(void **state) {
  (void)state;
  gpux__image src, dst;
  assert_int_equal(gpux__image_alloc(&src, 2, 2, 1), 0);
  src.data[0] = 0, src.data[1] = 100, src.data[2] = 200, src.data[3] = 255;
  /* OpenCV INTER_LINEAR 2x2 -> 4x4: x weights 0, .25, .75, 0 (clamped at the edges) */
  assert_int_equal(gpux__image_resize(&src, 4, 4, GPUX__INTERP_BILINEAR, &dst), 0);
  const uint8_t row0[] = {0, 25, 75, 100}, row3[] = {200, 214, 241, 255};
  assert_memory_equal(dst.data, row0, 4);
  assert_memory_equal(dst.data + 12, row3, 4);
  /* row 1 = 0.75 row0 + 0.25 row3 */
  assert_int_equal(dst.data[4], 50);
  assert_int_equal(dst.data[7], 139);
  gpux__image_free(&dst);
  assert_int_equal(gpux__image_resize(&src, 4, 4, GPUX__INTERP_NEAREST, &dst), 0);
  const uint8_t nn[] = {0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 255, 255, 200, 200, 255, 255};
  assert_memory_equal(dst.data, nn, 16);
  gpux__image_free(&dst);
  gpux__image_free(&src);
  /* PIL bilinear (antialiased) 4 -> 2: weights .75 .75 .25 over 1.75 */
  assert_int_equal(gpux__image_alloc(&src, 4, 1, 1), 0);
  src.data[0] = 0, src.data[1] = 0, src.data[2] = 255, src.data[3] = 255;
  assert_int_equal(gpux__image_resize(&src, 2, 1, GPUX__INTERP_BILINEAR_AA, &dst), 0);
  assert_int_equal(dst.data[0], 36);
  assert_int_equal(dst.data[1], 219);
  gpux__image_free(&dst);
  /* OpenCV bilinear 4 -> 2 samples between pixels 0,1 and 2,3 without antialias */
  assert_int_equal(gpux__image_resize(&src, 2, 1, GPUX__INTERP_BILINEAR, &dst), 0);
  assert_int_equal(dst.data[0], 0);
  assert_int_equal(dst.data[1], 255);
  gpux__image_free(&dst);
  gpux__image_free(&src);
  /* constant images stay constant under every filter and size */
  assert_int_equal(gpux__image_alloc(&src, 13, 7, 3), 0);
  memset(src.data, 77, 13 * 7 * 3);
  for (int interp = 0; interp < 3; interp++) {
    assert_int_equal(gpux__image_resize(&src, 31, 3, interp, &dst), 0);
    for (int i = 0; i < 31 * 3 * 3; i++) assert_int_equal(dst.data[i], 77);
    gpux__image_free(&dst);
  }
  assert_int_equal(gpux__image_resize(&src, 0, 3, 0, &dst), GPUX_E_INVALID);
  gpux__image_free(&src);
}

static void test_center_crop(void **state) {
  (void)state;
  gpux__image src, dst;
  gradient(&src, 10, 8, 1);
  assert_int_equal(gpux__image_center_crop(&src, 4, 4, &dst), 0);
  assert_int_equal(dst.data[0], src.data[2 * 10 + 3]); /* top 2, left 3 */
  gpux__image_free(&dst);
  assert_int_equal(gpux__image_center_crop(&src, 12, 8, &dst), 0); /* wider: zero borders */
  assert_int_equal(dst.data[0], 0);
  assert_int_equal(dst.data[2], src.data[1]);
  gpux__image_free(&dst);
  gpux__image_free(&src);
}

static float at_nchw(const gpux_tensor *t, int c, int y, int x) {
  return ((float *)t->data)[((int64_t)c * t->dims[2] + y) * t->dims[3] + x];
}

static void test_pipeline_ocr_rec(void **state) {
  (void)state;
  /* the PaddleOCR recognition recipe on a 100x20 RGB image: BGR, height 48, width ceil(48*5)
   * = 240, tensor width max(320, 240), (px/255 - .5)/.5, zero padding on the right, NCHW */
  gpux__image img;
  assert_int_equal(gpux__image_alloc(&img, 100, 20, 3), 0);
  for (int i = 0; i < 100 * 20; i++) img.data[i * 3] = 255, img.data[i * 3 + 1] = 0, img.data[i * 3 + 2] = 51;
  void *png;
  size_t len;
  assert_int_equal(gpux__image_encode_png(&img, &png, &len), 0);
  gpux__image_config c;
  gpux__image_config_default(&c);
  c.resize = GPUX__RESIZE_HEIGHT;
  c.height = 48;
  c.min_width = 320;
  c.bgr = 1;
  for (int i = 0; i < 3; i++) c.mean[i] = 0.5f, c.std[i] = 0.5f;
  gpux_tensor t;
  assert_int_equal(gpux__image_preprocess(&c, png, len, &t), 0);
  assert_int_equal(t.dtype, GPUX_DT_FLOAT);
  assert_int_equal(t.ndim, 4);
  assert_int_equal(t.dims[1], 3);
  assert_int_equal(t.dims[2], 48);
  assert_int_equal(t.dims[3], 320);
  assert_true(at_nchw(&t, 0, 10, 10) == (51.0f / 255.0f - 0.5f) / 0.5f); /* B first */
  assert_true(at_nchw(&t, 1, 10, 10) == -1.0f);
  assert_true(at_nchw(&t, 2, 47, 239) == 1.0f);                          /* R last */
  assert_true(at_nchw(&t, 2, 47, 240) == 0.0f);                          /* padding */
  gpux_tensor_free(&t);
  /* a long line keeps its aspect: 400x20 -> 960 wide; max_width squeezes it */
  gpux__image wide;
  assert_int_equal(gpux__image_alloc(&wide, 400, 20, 3), 0);
  assert_int_equal(gpux__image_to_tensor(&c, &wide, &t), 0);
  assert_int_equal(t.dims[3], 960);
  gpux_tensor_free(&t);
  c.max_width = 800;
  assert_int_equal(gpux__image_to_tensor(&c, &wide, &t), 0);
  assert_int_equal(t.dims[3], 800);
  gpux_tensor_free(&t);
  gpux__image_free(&wide);
  /* the direction classifier: a fixed [1,3,48,192] */
  gpux__image_config d = c;
  d.resize = GPUX__RESIZE_EXACT;
  d.width = 192;
  assert_int_equal(gpux__image_to_tensor(&d, &img, &t), 0);
  assert_int_equal(t.dims[2], 48);
  assert_int_equal(t.dims[3], 192);
  gpux_tensor_free(&t);
  free(png);
  gpux__image_free(&img);
}

static void test_pipeline_layouts(void **state) {
  (void)state;
  gpux__image img;
  gradient(&img, 5, 3, 3);
  gpux__image_config c;
  gpux__image_config_default(&c);
  c.layout = GPUX__LAYOUT_NHWC;
  c.mean[0] = 0.485f, c.mean[1] = 0.456f, c.mean[2] = 0.406f;
  c.std[0] = 0.229f, c.std[1] = 0.224f, c.std[2] = 0.225f;
  c.pad_multiple = 4;
  c.pad_value = -9;
  gpux_tensor t;
  assert_int_equal(gpux__image_to_tensor(&c, &img, &t), 0);
  assert_int_equal(t.dims[1], 4); /* H 3 -> 4 */
  assert_int_equal(t.dims[2], 8); /* W 5 -> 8 */
  assert_int_equal(t.dims[3], 3);
  const float *f = t.data;
  /* pixel (y 2, x 4), channel 1 */
  float px = img.data[(2 * 5 + 4) * 3 + 1];
  float want = (px / 255.0f - 0.456f) / 0.224f;
  assert_true(fabsf(f[(2 * 8 + 4) * 3 + 1] - want) < 1e-6f);
  assert_true(f[(3 * 8 + 0) * 3 + 0] == -9.0f); /* padded row */
  assert_true(f[(0 * 8 + 5) * 3 + 2] == -9.0f); /* padded column */
  gpux_tensor_free(&t);
  /* uint8 tensors, gray, shorter-side resize then crop */
  gpux__image_config_default(&c);
  c.dtype = GPUX_DT_UINT8;
  c.channels = 1;
  c.resize = GPUX__RESIZE_SHORTER;
  c.size = 6;
  c.crop_width = c.crop_height = 6;
  assert_int_equal(gpux__image_to_tensor(&c, &img, &t), 0);
  assert_int_equal(t.dtype, GPUX_DT_UINT8);
  assert_int_equal(t.dims[1], 1);
  assert_int_equal(t.dims[2], 6);
  assert_int_equal(t.dims[3], 6);
  gpux_tensor_free(&t);
  /* bad configs are named */
  gpux__image_config_default(&c);
  c.std[1] = 0;
  assert_int_equal(gpux__image_to_tensor(&c, &img, &t), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "std[1]"));
  gpux__image_config_default(&c);
  c.resize = GPUX__RESIZE_EXACT;
  assert_int_equal(gpux__image_config_check(&c), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "width"));
  gpux__image_free(&img);
}

/* Letterbox (Ultralytics' recipe, values worked out by hand here) and the map back to the image:
 * a 100 x 50 image into 64 x 64 scales by 0.64 to 64 x 32 with 16 rows of fill above and below;
 * 101 x 40 scales by 64/101 to 64 x round(25.35) = 25, 39 rows of border split round(19.5 - 0.1)
 * = 19 above and 20 below. */
static void test_letterbox(void **state) {
  (void)state;
  gpux__image img;
  gradient(&img, 100, 50, 3);
  gpux__image_config c;
  gpux__image_config_default(&c);
  c.resize = GPUX__RESIZE_LETTERBOX;
  c.width = c.height = 64;
  c.dtype = GPUX_DT_UINT8;
  gpux_tensor t;
  assert_int_equal(gpux__image_to_tensor(&c, &img, &t), 0);
  assert_int_equal(t.dims[2], 64);
  assert_int_equal(t.dims[3], 64);
  const uint8_t *u = t.data;
  for (int ch = 0; ch < 3; ch++) { /* NCHW: rows 0..15 and 48..63 are fill, 16..47 the image */
    assert_int_equal(u[ch * 4096 + 15 * 64 + 10], 114);
    assert_int_equal(u[ch * 4096 + 48 * 64 + 63], 114);
  }
  /* row 16 is the image's first row resized: the same as resizing alone */
  gpux__image small;
  assert_int_equal(gpux__image_resize(&img, 64, 32, GPUX__INTERP_BILINEAR, &small), 0);
  for (int x = 0; x < 64; x++) assert_int_equal(u[1 * 4096 + 16 * 64 + x], small.data[(size_t)x * 3 + 1]);
  for (int x = 0; x < 64; x++) assert_int_equal(u[2 * 4096 + 47 * 64 + x], small.data[((size_t)31 * 64 + x) * 3 + 2]);
  gpux__image_free(&small);
  gpux_tensor_free(&t);
  gpux__image_map m;
  gpux__image_map_of(&c, 100, 50, &m);
  assert_true(m.valid && m.image_width == 100 && m.image_height == 50 && m.tensor_width == 64 && m.tensor_height == 64);
  assert_true(fabs(m.scale_x - 0.64) < 1e-12 && fabs(m.scale_y - 0.64) < 1e-12 && m.pad_x == 0 && m.pad_y == 16);
  float box[4] = {6.4f, 16 + 3.2f, 32, 48};
  gpux__image_map_box(&m, box);
  assert_true(fabsf(box[0] - 10) < 1e-4f && fabsf(box[1] - 5) < 1e-4f && fabsf(box[2] - 50) < 1e-4f && fabsf(box[3] - 50) < 1e-4f);
  float out_of[4] = {-5, 2, 70, 70}; /* in the borders: clipped to the image */
  gpux__image_map_box(&m, out_of);
  assert_true(out_of[0] == 0 && out_of[1] == 0 && out_of[2] == 100 && out_of[3] == 50);
  gpux__image_free(&img);
  /* an odd border, a colour fill, float tensors normalized like pixels */
  gradient(&img, 101, 40, 3);
  c.dtype = GPUX_DT_FLOAT;
  c.fill[0] = 10, c.fill[1] = 20, c.fill[2] = 30;
  assert_int_equal(gpux__image_to_tensor(&c, &img, &t), 0);
  const float *f = t.data;
  assert_true(f[0 * 4096 + 18 * 64 + 5] == 10 / 255.0f && f[1 * 4096 + 18 * 64 + 5] == 20 / 255.0f);
  assert_true(f[2 * 4096 + 44 * 64 + 5] == 30 / 255.0f && f[2 * 4096 + 63 * 64 + 5] == 30 / 255.0f);
  assert_true(f[0 * 4096 + 19 * 64 + 5] != 10 / 255.0f || f[0 * 4096 + 43 * 64 + 5] != 10 / 255.0f);
  gpux_tensor_free(&t);
  gpux__image_map_of(&c, 101, 40, &m);
  assert_true(fabs(m.scale_x - 64.0 / 101) < 1e-12 && m.pad_y == 19 && m.pad_x == 0);
  /* a tall image: columns of border, 40 x 101 -> 25 x 64, left round(19.5 - 0.1) = 19 */
  gpux__image_map_of(&c, 40, 101, &m);
  assert_true(m.pad_x == 19 && m.pad_y == 0);
  gpux__image_free(&img);
  /* the map of the other resizes: shorter side then a centre crop */
  gpux__image_config_default(&c);
  c.resize = GPUX__RESIZE_SHORTER;
  c.size = 256;
  c.crop_width = c.crop_height = 224;
  gpux__image_map_of(&c, 512, 300, &m); /* -> 436 x 256 (floor(256 * 512 / 300)), crop left 106, top 16 */
  assert_true(fabs(m.scale_x - 436.0 / 512) < 1e-12 && fabs(m.scale_y - 256.0 / 300) < 1e-12);
  assert_true(m.pad_x == -106 && m.pad_y == -16 && m.tensor_width == 224 && m.tensor_height == 224);
  float b2[4] = {0, 0, 224, 224};
  gpux__image_map_box(&m, b2);
  assert_true(fabsf(b2[0] - 106 * 512 / 436.0f) < 1e-3f && fabsf(b2[3] - 240 * 300 / 256.0f) < 1e-3f);
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

static void put_be32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v; }

/* Decompression bombs: small files declaring huge images are refused before decoding (a 250-byte
 * JPEG declaring 16384x16384 took 0.9 GB, a 1 MB PNG 1.9 GB); a JPEG whose scan data is damaged is an error, not a
 * flat grey image. */
static void test_bombs_and_corruption(void **state) {
  (void)state;
  gpux__image img, back;
  gradient(&img, 40, 30, 3);
  void *png;
  size_t len;
  assert_int_equal(gpux__image_encode_png(&img, &png, &len), 0);
  uint8_t *p = png;
  put_be32(p + 16, 8192); /* IHDR width and height, with a valid CRC */
  put_be32(p + 20, 8192);
  put_be32(p + 29, crc32_of(p + 12, 17));
  assert_int_equal(gpux__image_decode(png, len, 0, &back), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "PNG image declares 8192x8192 pixels, more than a file of"));
  put_be32(p + 16, 1 << 20);
  put_be32(p + 20, 1 << 20);
  put_be32(p + 29, crc32_of(p + 12, 17));
  assert_true(gpux__image_decode(png, len, 0, &back) < 0);
  assert_null(back.data);
  free(png);

  size_t jlen;
  uint8_t *jpg = jpeg_encode(&img, 90, &jlen);
  size_t sof = 0, sos = 0;
  for (size_t i = 2; i + 1 < jlen && !sos; i++) {
    if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) sof = i;
    if (jpg[i] == 0xff && jpg[i + 1] == 0xda) sos = i;
  }
  assert_true(sof && sos);
  uint8_t *bomb = malloc(jlen);
  memcpy(bomb, jpg, jlen);
  bomb[sof + 5] = 0x20, bomb[sof + 6] = 0; /* height 8192 */
  bomb[sof + 7] = 0x20, bomb[sof + 8] = 0; /* width 8192 */
  assert_int_equal(gpux__image_decode(bomb, jlen, 0, &back), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "JPEG image declares 8192x8192 pixels, more than a file of"));
  assert_null(back.data);
  bomb[sof + 5] = 0x40, bomb[sof + 7] = 0x40; /* 16384x16384: above the limit for any file */
  assert_int_equal(gpux__image_decode(bomb, jlen, 0, &back), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "is too large (at most 67108864 pixels)"));
  assert_null(back.data);
  /* the scan cut short but the file still ends with EOI */
  size_t cut = sos + 2 + ((size_t)jpg[sos + 2] << 8 | jpg[sos + 3]) + 16;
  memcpy(bomb, jpg, cut);
  bomb[cut] = 0xff, bomb[cut + 1] = 0xd9;
  assert_int_equal(gpux__image_decode(bomb, cut + 2, 0, &back), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "corrupt JPEG"));
  assert_null(back.data);
  free(bomb);
  free(jpg);
  gpux__image_free(&img);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_png_round_trip),   cmocka_unit_test(test_png_formats),
      cmocka_unit_test(test_png_interlaced),   cmocka_unit_test(test_jpeg),
      cmocka_unit_test(test_corrupt_png),      cmocka_unit_test(test_resize),
      cmocka_unit_test(test_center_crop),      cmocka_unit_test(test_pipeline_ocr_rec),
      cmocka_unit_test(test_pipeline_layouts), cmocka_unit_test(test_bombs_and_corruption),
      cmocka_unit_test(test_letterbox),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
