/* pb.c — protobuf wire-format decoding (see pb.h). */
#include "onnx/pb.h"

int gpux__pb_varint(gpux__pb *r, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) return gpux__error(GPUX_E_PARSE, "truncated varint");
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) { *out = v; return 0; }
  }
  return gpux__error(GPUX_E_PARSE, "varint longer than 10 bytes");
}

int gpux__pb_next(gpux__pb *r, gpux__pb_field *f) {
  if (r->p >= r->end) return 0;
  uint64_t key;
  if (gpux__pb_varint(r, &key)) return GPUX_E_PARSE;
  f->field = (uint32_t)(key >> 3);
  f->wire = (int)(key & 7);
  f->data = NULL;
  f->len = 0;
  f->u = 0;
  if (f->field == 0) return gpux__error(GPUX_E_PARSE, "field number 0");
  switch (f->wire) {
  case PB_VARINT:
    return gpux__pb_varint(r, &f->u) ? GPUX_E_PARSE : 1;
  case PB_I64:
    if (r->end - r->p < 8) return gpux__error(GPUX_E_PARSE, "truncated 64-bit field %u", f->field);
    memcpy(&f->u, r->p, 8);
    r->p += 8;
    return 1;
  case PB_I32: {
    uint32_t v;
    if (r->end - r->p < 4) return gpux__error(GPUX_E_PARSE, "truncated 32-bit field %u", f->field);
    memcpy(&v, r->p, 4);
    f->u = v;
    r->p += 4;
    return 1;
  }
  case PB_LEN: {
    uint64_t len;
    if (gpux__pb_varint(r, &len)) return GPUX_E_PARSE;
    if (len > (uint64_t)(r->end - r->p))
      return gpux__error(GPUX_E_PARSE, "field %u claims %llu bytes but only %zu remain", f->field,
                         (unsigned long long)len, (size_t)(r->end - r->p));
    f->data = r->p;
    f->len = (size_t)len;
    r->p += len;
    return 1;
  }
  }
  return gpux__error(GPUX_E_PARSE, "unsupported wire type %d in field %u", f->wire, f->field);
}
