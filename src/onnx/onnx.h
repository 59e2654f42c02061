/* onnx.h — the ONNX reader's internal interface: TensorProto decoding shared by the model loader
 * (initializers, attribute tensors) and the test-data reader. */
#ifndef GPUX_ONNX_H
#define GPUX_ONNX_H

#include "graph/ir.h"
#include "onnx/pb.h"

/* Decodes a TensorProto. With `model` set, external data is resolved against its folder and raw
 * data may be referenced in place (zero-copy) when `borrow` is set; otherwise data is copied. */
int gpux__tensor_from_pb(const uint8_t *data, size_t len, struct gpux_model *model, int borrow,
                         gpux_tensor *out, const char **name, size_t *name_len);
/* SparseTensorProto → dense tensor. */
int gpux__sparse_from_pb(const uint8_t *data, size_t len, struct gpux_model *model, gpux_tensor *out);
/* SequenceProto / OptionalProto → value. */
int gpux__sequence_from_pb(const uint8_t *data, size_t len, gpux_tensor *out);
int gpux__optional_from_pb(const uint8_t *data, size_t len, gpux_tensor *out);

#endif
