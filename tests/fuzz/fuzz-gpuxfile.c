/* fuzz-gpuxfile.c — libFuzzer harness for GPUXfiles (parsed by `gpux build` from a folder someone
 * else wrote): the input is parsed and validated as YAML; a spec that parses is written as the
 * image config's JSON and read back, as `gpux run` of the built image does. */
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gpux__spec *s = NULL, *back = NULL;
  if (gpux__spec_parse_yaml((const char *)data, size, "GPUXfile", ".", &s)) return 0;
  cJSON *j = gpux__spec_to_json(s);
  if (j && !gpux__spec_from_json(j, "image config", ".", &back)) gpux__spec_free(back);
  cJSON_Delete(j);
  gpux__spec_free(s);
  return 0;
}
