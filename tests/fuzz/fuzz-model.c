/* fuzz-model.c — libFuzzer harness for untrusted ONNX models: the input is loaded as a model and,
 * when it loads, run once on the CPU backend with inputs of its declared types and shapes
 * (symbolic dimensions 1, zeros; skipped when an input would exceed 4096 elements). Built with
 * clang's -fsanitize=fuzzer by `make fuzz`, and with replay.c as test-fuzz-model by ctest. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gpux/gpux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_IO = 16, MAX_ELEMENTS = 4096 };

/* Zeros (empty strings) of the declared type; 0 when the input cannot be made. */
static int make_input(const gpux_value_info *vi, gpux_tensor *t) {
  if (vi->kind != GPUX_KIND_TENSOR) return 0;
  int64_t dims[GPUX_MAX_DIMS], count = 1;
  int ndim = vi->ndim < 0 ? 1 : vi->ndim;
  for (int d = 0; d < ndim; d++) {
    dims[d] = vi->ndim < 0 || vi->dims[d] < 0 ? 1 : vi->dims[d];
    if (dims[d] > MAX_ELEMENTS || (count *= dims[d]) > MAX_ELEMENTS) return 0;
  }
  if (gpux_tensor_init(t, vi->dtype ? vi->dtype : GPUX_DT_FLOAT, ndim, dims)) return 0;
  if (t->dtype == GPUX_DT_STRING)
    for (int64_t i = 0; i < count; i++) ((char **)t->data)[i] = strdup("");
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gpux_model *m = NULL;
  if (gpux_model_load_buffer(data, size, "fuzz.onnx", &m)) return 0;
  const gpux_session_options o = {.backend = GPUX_BACKEND_CPU, .threads = 1};
  gpux_session *s = NULL;
  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m);
  if (n_in <= MAX_IO && n_out <= MAX_IO && !gpux_session_create(m, &o, &s)) {
    gpux_tensor in[MAX_IO], out[MAX_IO];
    memset(in, 0, sizeof in);
    int ok = 1;
    for (int i = 0; i < n_in && ok; i++) {
      gpux_value_info vi;
      ok = !gpux_model_input_info(m, i, &vi) && make_input(&vi, &in[i]);
    }
    if (ok && !gpux_session_run(s, in, n_in, out, n_out))
      for (int i = 0; i < n_out; i++) gpux_tensor_free(&out[i]);
    for (int i = 0; i < n_in; i++) gpux_tensor_free(&in[i]);
    gpux_session_free(s);
  }
  gpux_model_free(m);
  return 0;
}
