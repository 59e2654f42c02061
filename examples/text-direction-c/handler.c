/* handler.c — the business rules around text-direction's scores, as a shared library: rotate a
 * line only when the model is sure it is upside down, send unsure lines to a person. gpux loads
 * it in a worker process of its own (docs/handlers.md).
 *   cc -shared -fPIC -O2 -I ../../include handler.c -o handler.so */
#include <gpux/gpux.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SURE 0.9f

static int postprocess(void *state, const gpux_handler_tensor *outputs, int n_outputs,
                       const gpux_handler_value *request, int n_request, char **json, char *err,
                       size_t err_len) {
  (void)state; (void)request; (void)n_request;
  const gpux_handler_tensor *t = NULL;
  for (int i = 0; i < n_outputs; i++)
    if (!strcmp(outputs[i].name, "softmax_0.tmp_0")) t = &outputs[i];
  if (!t || t->dtype != GPUX_DT_FLOAT || t->ndim != 2 || t->dims[1] != 2) {
    snprintf(err, err_len, "expected softmax_0.tmp_0 as float32 [batch, 2]");
    return 1;
  }
  const float *p = t->data;                 /* [p(0 degrees), p(180 degrees)] of the first row */
  int best = p[1] > p[0];
  float confidence = p[best];
  const char *action = confidence < SURE ? "review" : best ? "rotate" : "keep";
  char buf[128];
  snprintf(buf, sizeof buf, "{\"angle\":%d,\"confidence\":%.4f,\"action\":\"%s\"}", best ? 180 : 0, confidence, action);
  if (!(*json = strdup(buf))) {
    snprintf(err, err_len, "out of memory");
    return 1;
  }
  return 0;
}

static void release(void *state, void *p) {
  (void)state;
  free(p);
}

const struct gpux_handler_v1 gpux_handler_v1 = {
  /* .abi_version = */ GPUX_HANDLER_ABI_VERSION,
  /* .init        = */ NULL,
  /* .preprocess  = */ NULL,
  /* .postprocess = */ postprocess,
  /* .free        = */ release,
};
