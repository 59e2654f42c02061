/* value.c — the public side of gpux_device_tensor: host values (a tensor in memory, what the CPU backend
 * keeps) handled here, device values handed to the backend that made them. */
#include "runtime/value.h"

int gpux__value_host(gpux_tensor *t, gpux_device_tensor **out) {
  *out = gpux__calloc(1, sizeof **out);
  if (!*out) {
    gpux_tensor_free(t);
    return GPUX_E_NOMEM;
  }
  (*out)->t = *t;
  memset(t, 0, sizeof *t);
  return 0;
}

int gpux_device_tensor_read(const gpux_device_tensor *v, gpux_tensor *out) {
  if (!v) {
    memset(out, 0, sizeof *out);
    return gpux__error(GPUX_E_INVALID, "no value to read");
  }
  if (!v->backend) return gpux_tensor_copy(out, &v->t);
  return v->backend->value_read(v, out);
}

void gpux_device_tensor_describe(const gpux_device_tensor *v, gpux_tensor *out) {
  memset(out, 0, sizeof *out);
  if (!v) return;
  out->kind = v->t.kind;
  out->dtype = v->t.dtype;
  out->ndim = v->t.ndim;
  memcpy(out->dims, v->t.dims, sizeof out->dims);
  out->n_items = v->t.n_items;
  if (!v->backend) out->nbytes = v->t.nbytes;
}

const char *gpux_device_tensor_backend(const gpux_device_tensor *v) { return v && v->backend ? v->backend->name : "cpu"; }

void gpux_device_tensor_free(gpux_device_tensor *v) {
  if (!v) return;
  if (v->backend) {
    v->backend->value_free(v);
    return;
  }
  gpux_tensor_free(&v->t);
  free(v);
}
