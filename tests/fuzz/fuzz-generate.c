/* fuzz-generate.c — libFuzzer harness for the text-generation endpoints' bodies (src/serve/
 * generate.c) as `gpux serve` receives them, without a socket: the first byte picks the API
 * (OpenAI completions, OpenAI chat, Triton generate), the rest is the body. An accepted request's
 * answer, streamed event and closing events are then made with the body itself standing in for
 * the run's JSON, so the answer builders see hostile JSON too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "serve/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static gpux__slot s;
  static int init;
  if (!init) {
    pthread_mutex_init(&s.mu, NULL);
    init = 1;
  }
  if (!size) return 0;
  int api = data[0] % 3;
  gpux__job *j = gpux__job_new(GPUX__JOB_GENERATE);
  if (!j) return 0;
  char err[1024] = "", model[128];
  const char *body = (const char *)data + 1;
  int st = gpux__gen_parse(api, body, size - 1, j, model, sizeof model, err, sizeof err);
  if (getenv("GPUX_FUZZ_VERBOSE")) fprintf(stderr, "status %d %s\n", st, st == 200 ? "" : err);   /* for seeds */
  if (st != 200 && !err[0]) abort();   /* every rejection says why */
  if (st == 200) {
    /* the prompt, or (Triton) the app's own inputs, read later */
    if (j->n_app_in == 0 ? api != GPUX__GEN_TRITON : j->n_app_in != 1 || !j->app_in[0].text) abort();
    char *run = gpux__strndup(body, size - 1);   /* NUL-terminated */
    char *a = gpux__gen_answer(api, model, "1", "id", run);
    char *e = gpux__gen_event(api, model, "1", "id", j->n_app_in ? j->app_in[0].text : "", 1);
    char *f = gpux__gen_final_events(api, model, "1", "id", run, data[0] & 4 ? "an error" : NULL);
    free(a);
    free(e);
    free(f);
    free(run);
  }
  gpux__job_release(&s, j);
  return 0;
}
