/* test-webgpu-half.c — float values held as f16 on the WebGPU device, without a GPU: which dtypes
 * a plan holds as f16 in each mode and their sizes, the shader rewrite (backend/webgpu/half.c:
 * loads widened, stores of every form rounded, other bindings and look-alike names untouched,
 * the emulated form), and the host side (float32 weights rounded to float16 bits to nearest
 * even, float16 data as is, and back). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include "backend/webgpu/wg.h"

static void test_held(void **state) {
  (void)state;
  assert_int_equal(gpux__wg_held_as(GPUX_DT_FLOAT, WG_HALF_NONE), WG_F32);
  assert_int_equal(gpux__wg_held_as(GPUX_DT_FLOAT16, WG_HALF_NONE), WG_F32);
  assert_int_equal(gpux__wg_held_as(GPUX_DT_FLOAT, WG_HALF_F16), WG_F32);
  assert_int_equal(gpux__wg_held_as(GPUX_DT_FLOAT16, WG_HALF_F16), WG_F16);
  assert_int_equal(gpux__wg_held_as(GPUX_DT_FLOAT, WG_HALF_ALL), WG_F16);
  assert_int_equal(gpux__wg_held_as(GPUX_DT_BFLOAT16, WG_HALF_ALL), WG_F32); /* its range is not float16's */
  assert_int_equal(gpux__wg_held_as(GPUX_DT_INT64, WG_HALF_ALL), WG_I32);
  assert_int_equal(gpux__wg_held_as(GPUX_DT_STRING, WG_HALF_ALL), -1);
  assert_int_equal(gpux__wg_held_bytes(3, WG_F16), 8); /* 6 bytes, bindings take multiples of 4 */
  assert_int_equal(gpux__wg_held_bytes(4, WG_F16), 8);
  assert_int_equal(gpux__wg_held_bytes(3, WG_F32), 12);
}

static char *rewrite(const char *src, int emulated) {
  unsigned char half[4] = {1, 0, 1, 0};
  wg_str out = {0};
  gpux__wg_half_rewrite(src, half, 4, emulated, &out);
  assert_false(out.oom);
  return out.s;
}

/* the text after the helper functions the rewrite puts first */
static const char *body(const char *s) {
  const char *b = strstr(s, "@compute");
  assert_non_null(b);
  return b;
}

static void test_rewrite(void **state) {
  (void)state;
  char *s = rewrite("@compute fn main() {\n"
                    "  let x = b0[i] + b1[i];\n"
                    "  b2[u32(b0[i + 1u])] = x * b0[j];\n"
                    "  b2[k] += 1.0;\n"
                    "  if (b0[i] == b1[i]) { b2[0] = select(b0[1], 2.0, b0[2] <= 0.0); }\n"
                    "  let y = sb0[i] + b10[i] + b0_ + b3[i];\n"
                    "}\n", 0);
  assert_non_null(strstr(s, "enable f16;"));
  assert_non_null(strstr(s, "fn gx_h16(x: f32) -> f16"));
  const char *b = body(s);
  assert_non_null(strstr(b, "let x = f32(b0[i]) + b1[i];"));
  assert_non_null(strstr(b, "b2[u32(f32(b0[i + 1u]))] = gx_h16( x * f32(b0[j]));"));
  assert_non_null(strstr(b, "b2[k] = gx_h16(f32(b2[k]) + ( 1.0));"));
  assert_non_null(strstr(b, "if (f32(b0[i]) == b1[i]) { b2[0] = gx_h16( select(f32(b0[1]), 2.0, f32(b0[2]) <= 0.0)); }"));
  /* other names that contain b0 / b1, and bindings not held as f16, stay as they are */
  assert_non_null(strstr(b, "let y = sb0[i] + b10[i] + b0_ + b3[i];"));
  free(s);
  s = rewrite("@compute fn main() { b2[i] = b0[i] * 2.0; }\n", 1);
  assert_null(strstr(s, "enable f16;"));
  assert_null(strstr(s, "f16("));
  assert_non_null(strstr(body(s), "b2[i] = gx_r16( (b0[i]) * 2.0);"));
  free(s);
}

static void test_host_images(void **state) {
  (void)state;
  float w[5] = {1.0f, 1.0f + 1.0f / 4096.0f, 65520.0f, -2.5e-8f, 3.0e-8f};
  int64_t dims[1] = {5};
  gpux_tensor t;
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_FLOAT, 1, dims), 0);
  memcpy(t.data, w, sizeof w);
  void *img;
  size_t bytes;
  int owned;
  assert_int_equal(gpux__wg_gpu_image(&t, WG_F16, &img, &bytes, &owned), 0);
  assert_int_equal(bytes, 12);
  assert_true(owned);
  const uint16_t *h = img;
  assert_int_equal(h[0], 0x3c00);
  assert_int_equal(h[1], 0x3c00); /* 1 + 2^-12 is halfway between 1 and 1 + 2^-10: to even */
  assert_int_equal(h[2], 0x7c00); /* above the largest float16: infinity */
  assert_int_equal(h[3], 0x8000); /* below half the smallest subnormal: -0 */
  assert_int_equal(h[4], 0x0001); /* nearest subnormal, 2^-24 */
  float back[5];
  gpux__wg_from_f16(GPUX_DT_FLOAT, back, img, 5);
  assert_true(back[0] == 1.0f && back[1] == 1.0f && back[4] == 5.9604645e-8f);
  uint16_t same[5];
  gpux__wg_from_f16(GPUX_DT_FLOAT16, same, img, 5);
  assert_memory_equal(same, img, 10);
  free(img);
  gpux_tensor_free(&t);
  /* float16 data goes as it is, when its size needs no padding */
  int64_t four[1] = {4};
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_FLOAT16, 1, four), 0);
  assert_int_equal(gpux__wg_gpu_image(&t, WG_F16, &img, &bytes, &owned), 0);
  assert_false(owned);
  assert_ptr_equal(img, t.data);
  gpux_tensor_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_held),
    cmocka_unit_test(test_rewrite),
    cmocka_unit_test(test_host_images),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
