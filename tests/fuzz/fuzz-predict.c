/* fuzz-predict.c — libFuzzer harness for POST /predict bodies as `gpux serve` receives them,
 * without a socket: the first byte picks the Content-Type (JSON, PNG, WAV, octet-stream, none,
 * multipart), the rest is the body. It is parsed against the app in tests/fuzz/apps/media (an
 * image input resized to 8x8, a 16 kHz audio input of 1600 samples, a string tensor) and, when
 * accepted, run as gpux serve's worker runs it: decoding, the model on the CPU, the JSON answer. */
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
    if (gpux_app_open(NULL, GPUX_FUZZ_APPS "/media", &o, &s.app)) {
      fprintf(stderr, "fuzz-predict: %s\n", gpux_last_error());
      abort();
    }
    pthread_mutex_init(&s.mu, NULL);
    snprintf(s.name, sizeof s.name, "media");
    snprintf(s.version, sizeof s.version, "1");
  }
  return &s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const types[] = {"application/json", "image/png", "audio/wav", "application/octet-stream",
                                      NULL, "multipart/form-data; boundary=x"};
  if (!size) return 0;
  gpux__slot *s = slot();
  gpux__job *j = gpux__job_new(GPUX__JOB_APP);
  if (!j) return 0;
  char err[1024] = "";
  const char *ct = types[data[0] % (sizeof types / sizeof *types)];
  int st = gpux__predict_parse(s, ct, (const char *)data + 1, size - 1, j, err, sizeof err);
  if (getenv("GPUX_FUZZ_VERBOSE")) fprintf(stderr, "status %d %s\n", st, st == 200 ? "" : err);   /* for seeds */
  if (st != 200 && !err[0] && st != 500) abort();   /* every rejection says why */
  if (st == 200) {
    char *json = NULL;
    if (!gpux_app_run(s->app, j->app_in, j->n_app_in, &json, NULL) && !json) abort();
    free(json);
  }
  gpux__job_release(s, j);
  return 0;
}
