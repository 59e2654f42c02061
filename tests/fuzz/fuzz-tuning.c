/* fuzz-tuning.c — libFuzzer harness for an image's GEMM tuning data (gpux-tuning.json) as a
 * registry serves it: the input is checked and read as gpux__tuning_read does when an image is
 * opened (records, adapter keys, configurations within their ranges); anything else is a
 * GPUX_E_PARSE with a message, never a crash. */
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "app/app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cJSON *doc = NULL;
  if (!gpux__tuning_read((const char *)data, size, "tuning data", &doc)) cJSON_Delete(doc);
  return 0;
}
