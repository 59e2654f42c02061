/* onnx.h — the ONNX reader's internal interface: the model loader behind gpux_model_load
 * (runtime/model.c), and TensorProto decoding shared by the loader (initializers, attribute
 * tensors) and the test-data reader. */
#ifndef GPUX_ONNX_H
#define GPUX_ONNX_H

#include "graph/ir.h"
#include "onnx/pb.h"

/* Reads an ONNX file (memory-mapped) or a private copy of a buffer into the graph IR. Nodes are
 * left unbound (node->op NULL): the loader knows no kernels. Errors are prefixed with the path
 * (or name, "<buffer>" when NULL). */
int gpux__onnx_load(const char *path, gpux_model **out);
int gpux__onnx_load_buffer(const void *data, size_t size, const char *name, gpux_model **out);

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
