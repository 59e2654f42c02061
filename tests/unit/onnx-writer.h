/* onnx-writer.h — builds small ONNX models in memory for the unit tests: a protobuf writer and
 * helpers for the ModelProto/GraphProto/NodeProto fields the tests need. Header-only, test-only. */
#ifndef GPUX_TEST_ONNX_WRITER_H
#define GPUX_TEST_ONNX_WRITER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  uint8_t *data;
  size_t len, cap;
} pbw;

static inline void pbw_bytes(pbw *w, const void *p, size_t n) {
  if (w->len + n > w->cap) {
    w->cap = (w->len + n) * 2 + 64;
    w->data = realloc(w->data, w->cap);
  }
  if (n) memcpy(w->data + w->len, p, n);
  w->len += n;
}

static inline void pbw_varint(pbw *w, uint64_t v) {
  uint8_t b[10];
  int n = 0;
  do {
    b[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) b[n] |= 0x80;
    n++;
  } while (v);
  pbw_bytes(w, b, (size_t)n);
}

static inline void pbw_key(pbw *w, int field, int wire) { pbw_varint(w, (uint64_t)field << 3 | (uint64_t)wire); }
static inline void pbw_int(pbw *w, int field, int64_t v) { pbw_key(w, field, 0); pbw_varint(w, (uint64_t)v); }
static inline void pbw_len(pbw *w, int field, const void *p, size_t n) { pbw_key(w, field, 2); pbw_varint(w, n); pbw_bytes(w, p, n); }
static inline void pbw_str(pbw *w, int field, const char *s) { pbw_len(w, field, s, strlen(s)); }
static inline void pbw_msg(pbw *w, int field, pbw *sub) { pbw_len(w, field, sub->data, sub->len); free(sub->data); memset(sub, 0, sizeof *sub); }

/* TensorProto with raw data */
static inline void pbw_tensor(pbw *w, int field, const char *name, int dtype, int ndim, const int64_t *dims, const void *raw, size_t n) {
  pbw t = {0};
  for (int i = 0; i < ndim; i++) pbw_int(&t, 1, dims[i]);
  pbw_int(&t, 2, dtype);
  if (name) pbw_str(&t, 8, name);
  pbw_len(&t, 9, raw, n);
  pbw_msg(w, field, &t);
}

/* ValueInfoProto for a tensor; a dim < 0 is written as the symbolic name in sym */
static inline void pbw_value_info(pbw *w, int field, const char *name, int dtype, int ndim, const int64_t *dims, const char *sym) {
  pbw shape = {0}, tt = {0}, tp = {0}, vi = {0};
  for (int i = 0; i < ndim; i++) {
    pbw d = {0};
    if (dims[i] >= 0) pbw_int(&d, 1, dims[i]);
    else pbw_str(&d, 2, sym ? sym : "N");
    pbw_msg(&shape, 1, &d);
  }
  pbw_int(&tt, 1, dtype);
  pbw_msg(&tt, 2, &shape);
  pbw_msg(&tp, 1, &tt);
  pbw_str(&vi, 1, name);
  pbw_msg(&vi, 2, &tp);
  pbw_msg(w, field, &vi);
}

/* NodeProto with up to 3 inputs and 1 output and no attributes */
static inline void pbw_node(pbw *w, const char *op, const char *in0, const char *in1, const char *out) {
  pbw n = {0};
  if (in0) pbw_str(&n, 1, in0);
  if (in1) pbw_str(&n, 1, in1);
  pbw_str(&n, 2, out);
  pbw_str(&n, 3, out);
  pbw_str(&n, 4, op);
  pbw_msg(w, 1, &n);
}

/* ModelProto around a graph, opset 17 */
static inline void pbw_model(pbw *w, pbw *graph) {
  pbw opset = {0};
  pbw_int(w, 1, 8);
  pbw_str(&opset, 1, "");
  pbw_int(&opset, 2, 17);
  pbw_msg(w, 8, &opset);
  pbw_msg(w, 7, graph);
}

#endif
