/* scale.c — a shared-library handler for tests/app/handler.sh around scale.onnx (x float[batch,4]
 * -> x * 10): preprocess reads numbers from the request's text, postprocess sums the output; the
 * words "crash", "hang", "fail" and "garbage" make it misbehave in those ways. */
#include <gpux/gpux.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pre(void *state, const gpux_handler_value *req, int n_req, gpux_handler_tensor **out, int *n_out,
               char *err, size_t err_len) {
  (void)state;
  if (n_req < 1 || !req[0].is_text) { snprintf(err, err_len, "expected text"); return 1; }
  const char *text = req[0].data;
  if (!strcmp(text, "crash")) return *(volatile int *)0;
  if (!strcmp(text, "hang")) for (volatile int i = 0;; i++) {}
  if (!strcmp(text, "fail")) { snprintf(err, err_len, "cannot read '%s'", text); return 1; }
  gpux_handler_tensor *t = calloc(1, sizeof *t);
  float *x = calloc(4, sizeof *x);
  if (!t || !x) { free(t); free(x); snprintf(err, err_len, "out of memory"); return 1; }
  char *end;
  for (int i = 0; i < 4; i++, text = end) x[i] = strtof(text, &end);
  t->name = "x";
  t->dtype = GPUX_DT_FLOAT;
  t->ndim = 2;
  t->dims[0] = 1;
  t->dims[1] = 4;
  t->data = x;
  t->nbytes = strcmp(req[0].data, "garbage") ? 4 * sizeof *x : 3;
  *out = t;
  *n_out = 1;
  return 0;
}

static int post(void *state, const gpux_handler_tensor *outs, int n_outs, const gpux_handler_value *req, int n_req,
                char **json, char *err, size_t err_len) {
  (void)state; (void)req; (void)n_req;
  if (n_outs != 1 || outs[0].dtype != GPUX_DT_FLOAT) { snprintf(err, err_len, "expected one float32 output"); return 1; }
  const float *y = outs[0].data;
  double sum = 0;
  for (size_t i = 0; i < outs[0].nbytes / sizeof *y; i++) sum += y[i];
  if (sum == 1230) { *json = strdup("{not json"); return 0; }
  char buf[64];
  snprintf(buf, sizeof buf, "{\"sum\":%g}", sum);
  *json = strdup(buf);
  return 0;
}

static void release(void *state, void *p) {
  (void)state;
  free(p);
}

const struct gpux_handler_v1 gpux_handler_v1 = {GPUX_HANDLER_ABI_VERSION, NULL, pre, post, release};
