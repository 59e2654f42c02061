/* fuzz-tensorproto.c — libFuzzer harness for TensorProto bytes (POST /predict bodies, `gpux run
 * --input x.pb`, initializers): the input is decoded as a TensorProto, a SparseTensorProto, a
 * SequenceProto and an OptionalProto, and every decoded value is described and freed. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "onnx/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink; /* keeps the reads below from being optimized away */

static void consume(gpux_tensor *t) {
  char buf[256];
  gpux_tensor_describe(t, buf, sizeof buf);
  if (t->kind == GPUX_KIND_TENSOR && t->dtype == GPUX_DT_STRING) /* touch every string */
    for (int64_t i = 0; i < gpux_tensor_count(t); i++)
      if (((char **)t->data)[i]) sink += strlen(((char **)t->data)[i]);
  gpux_tensor_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gpux_tensor t;
  const char *name;
  size_t name_len;
  if (!gpux__tensor_from_pb(data, size, NULL, 0, &t, &name, &name_len)) consume(&t);
  if (!gpux__sparse_from_pb(data, size, NULL, &t)) consume(&t);
  if (!gpux__sequence_from_pb(data, size, &t)) consume(&t);
  if (!gpux__optional_from_pb(data, size, &t)) consume(&t);
  return 0;
}
