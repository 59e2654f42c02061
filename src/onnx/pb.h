/* pb.h — a small zero-copy reader of the protobuf wire format, enough for ONNX files: fields are
 * visited in order, length-delimited payloads point into the caller's buffer (usually mmap'ed).
 * Every read is bounds-checked, so truncated or corrupt files become GPUX_E_PARSE, not crashes. */
#ifndef GPUX_PB_H
#define GPUX_PB_H

#include "core/internal.h"

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

typedef struct {
  const uint8_t *p, *end;
} gpux__pb;

typedef struct {
  uint32_t field;
  int wire;
  uint64_t u;            /* PB_VARINT, PB_I64, PB_I32 */
  const uint8_t *data;   /* PB_LEN payload */
  size_t len;
} gpux__pb_field;

static inline gpux__pb gpux__pb_init(const void *data, size_t len) {
  const uint8_t *p = data;
  gpux__pb r = {p, p ? p + len : p}; /* NULL + 0 is undefined behaviour */
  return r;
}

/* Reads the next field: 1 when one was read, 0 at the end, GPUX_E_PARSE when corrupt. */
int gpux__pb_next(gpux__pb *r, gpux__pb_field *f);
/* Reads a varint from a packed payload; 0 on success. */
int gpux__pb_varint(gpux__pb *r, uint64_t *out);
/* Counts the elements of a repeated scalar field that may be packed or not. */
static inline gpux__pb gpux__pb_sub(const gpux__pb_field *f) { return gpux__pb_init(f->data, f->len); }

#endif
