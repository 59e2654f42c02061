/* fuzz-image.c — libFuzzer harness for PNG and JPEG inputs (`gpux run --input`, /predict bodies):
 * the input is decoded as stored and as RGB, and run through a resize-and-normalize pipeline. */
#include <stddef.h>
#include <stdint.h>
#include "prepost/prepost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gpux__image img;
  if (!gpux__image_decode(data, size, 0, &img)) gpux__image_free(&img);
  gpux__image_config c;
  gpux__image_config_default(&c);
  c.resize = GPUX__RESIZE_EXACT;
  c.width = 32;
  c.height = 32;
  gpux_tensor t;
  if (!gpux__image_preprocess(&c, data, size, &t)) gpux_tensor_free(&t);
  return 0;
}
