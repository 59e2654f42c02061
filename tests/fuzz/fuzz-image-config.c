/* fuzz-image-config.c — libFuzzer harness for image configs as a registry serves them: the input
 * is parsed as JSON, its "spec" read as an image's spec and checked against the layers
 * model.onnx and labels.txt (paths confined to the layers, postprocessing normalized). */
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cJSON *cfg = cJSON_ParseWithLength((const char *)data, size);
  const cJSON *spec_j = cJSON_GetObjectItem(cfg, "spec");
  gpux__spec *s = NULL;
  static const char *const layers[] = {"model.onnx", "labels.txt"};
  if (spec_j && !gpux__spec_from_json(spec_j, "image config", "/nonexistent", &s)) {
    gpux__spec_check_image(s, layers, 2);
    gpux__spec_free(s);
  }
  cJSON_Delete(cfg);
  return 0;
}
