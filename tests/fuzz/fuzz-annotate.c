/* fuzz-annotate.c — libFuzzer harness for gpux_image_annotate (a detector's answer drawn on an
 * image; a public function that takes any JSON and any image bytes): the input is the answer's
 * JSON, a NUL byte, then the image (PNG or JPEG). Boxes anywhere, NaN, huge or negative, must
 * only ever be clipped. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gpux/gpux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  if (!nul) return 0;
  void *png = NULL;
  size_t len = 0;
  if (!gpux_image_annotate(nul + 1, size - (size_t)(nul + 1 - data), (const char *)data, &png, &len)) gpux_free(png);
  return 0;
}
