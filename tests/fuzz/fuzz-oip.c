/* fuzz-oip.c — libFuzzer harness for Open Inference Protocol v2 infer requests as `gpux serve`
 * receives them, without a socket: the body is parsed against the app in tests/fuzz/apps/tensors
 * (inputs x FP32 [N,3], k INT64 [N], s BYTES [N]; outputs with labels), and when it is accepted
 * the app runs it on the CPU and the response is built. A body that starts with '{' is JSON
 * alone; otherwise its first two bytes (little endian) are the Inference-Header-Content-Length
 * and binary tensor data follows the JSON header. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "serve/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gpux__slot *slot(void) {
  static gpux__slot s;
  static int tried;
  if (!tried) {
    tried = 1;
    const gpux_app_options o = {.backend = GPUX_BACKEND_CPU};
    if (gpux_app_open(NULL, GPUX_FUZZ_APPS "/tensors", &o, &s.app)) {
      fprintf(stderr, "fuzz-oip: %s\n", gpux_last_error());
      abort();
    }
    snprintf(s.name, sizeof s.name, "tensors");
    snprintf(s.version, sizeof s.version, "1");
    s.batchable = 1;
  }
  return &s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gpux__slot *s = slot();
  const char *body = (const char *)data;
  size_t len = size, json_len = 0;
  if (size && data[0] != '{') {
    if (size < 2) return 0;
    json_len = (size_t)data[0] | (size_t)data[1] << 8;
    body += 2;
    len -= 2;
  }
  gpux__named_tensors in, out = {0};
  gpux__oip_request rq;
  int64_t rows;
  char err[1024];
  int st = gpux__oip_parse(s, body, len, json_len, &in, &rows, &rq, err, sizeof err);
  if (getenv("GPUX_FUZZ_VERBOSE")) fprintf(stderr, "status %d %s\n", st, st == 200 ? "" : err);   /* for seeds */
  if (st != 200) {
    if (!err[0]) abort();   /* every rejection says why */
    return 0;
  }
  double ms;
  if (!gpux__app_infer(s->app, &in, &out, &ms)) {
    char *resp = NULL;
    size_t rlen, jl;
    if (gpux__oip_response(s, &rq, &out, &resp, &rlen, &jl, err, sizeof err) == 200 && (!resp || jl > rlen)) abort();
    free(resp);
  }
  gpux__named_tensors_free(&in);
  gpux__named_tensors_free(&out);
  gpux__oip_request_free(&rq);
  return 0;
}
