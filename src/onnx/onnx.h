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
/* The memory behind a model's weights (mapped.c). Gives back the whole pages of [p, p + n) when
 * they lie in one of the model's file mappings (read again from the file when touched later):
 * for data that was copied or that kernels hold in a layout of their own. Returns the bytes let
 * go, 0 for memory that is not the model's mapping. */
size_t gpux__model_release(const gpux_model *m, const void *p, size_t n);
/* Maps SIZE bytes of the open file FD private and read-only, in small pages (see mapped.c);
 * MAP_FAILED on failure, with errno set. */
void *gpux__model_map(int fd, size_t size);
/* The bytes of the model's file mappings resident in memory now (0 where that is not known). */
size_t gpux__model_mapped_resident(const gpux_model *m);
/* The bytes of initializer data the model holds as copies (data not aligned in the file, data
 * of other encodings). */
size_t gpux__model_copied_bytes(const gpux_model *m);

/* The copies of a model's main-graph initializers (gpux__value.pb) that sessions hold. A session
 * that may read initializers holds them all (gpux__model_hold, which decodes again those let go
 * before); gpux__model_drop(m, v) says that it reads value v no more (its kernels hold it in a
 * layout of their own), and frees the copy when no holder is left: data becomes NULL, so only
 * sessions that held it may read the model's initializers after that. gpux__model_unhold at the
 * session's end for the values it did not drop (dropped[v] set for those it did, or NULL). */
int gpux__model_hold(gpux_model *m);
size_t gpux__model_drop(gpux_model *m, int v);
void gpux__model_unhold(gpux_model *m, const unsigned char *dropped);

/* A TensorProto's raw_data as it is in the buffer (not aligned, maybe), its bytes in *n; NULL
 * when it has none (typed fields, external data). For kernels that copy bytes (Gather). */
const void *gpux__tensor_raw(const uint8_t *data, size_t len, size_t *n);
/* SparseTensorProto → dense tensor. */
int gpux__sparse_from_pb(const uint8_t *data, size_t len, struct gpux_model *model, gpux_tensor *out);
/* SequenceProto / OptionalProto → value. */
int gpux__sequence_from_pb(const uint8_t *data, size_t len, gpux_tensor *out);
int gpux__optional_from_pb(const uint8_t *data, size_t len, gpux_tensor *out);

#endif
