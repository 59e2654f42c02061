/* kernel.c — the helpers every op kernel uses: outputs, attributes, integer inputs, axes and
 * error messages that name the node. */
#include "ops/op.h"
#include "core/buffers.h"
#include "core/scratch.h"
#include <stdatomic.h>
#include <stdio.h>

int gpux__kerr(gpux__kctx *k, int err, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const gpux__node *n = k->node;
  if (n && n->name && n->name[0])
    gpux__error(err, "node '%s' (%s): %s", n->name, n->op_type, msg);
  else
    gpux__error(err, "%s: %s", n ? n->op_type : "op", msg);
  k->status = err;
  return err;
}

void gpux__kctx_init(gpux__kctx *k, const gpux__node *n, const gpux_tensor *const *in, gpux_tensor *const *out) {
  memset(k, 0, sizeof *k);
  k->node = n;
  k->n_in = n->n_in;
  k->n_out = n->n_out;
  k->in = in;
  k->out = out;
  k->opset = n->opset;
}

gpux__node_state *gpux__state_get(const gpux__kctx *k) {
  return k->state ? atomic_load_explicit(k->state, memory_order_acquire) : NULL;
}

gpux__node_state *gpux__state_keep(gpux__kctx *k, gpux__node_state *st) {
  gpux__node_state *none = NULL;
  if (k->state && atomic_compare_exchange_strong_explicit(k->state, &none, st, memory_order_acq_rel,
                                                          memory_order_acquire))
    return st;
  if (st) st->destroy(st);
  return none; /* the state another run kept, or NULL without a slot */
}

/* Where kernels write outputs the graph leaves out: the tensor's data is the thread's scratch
 * (core/scratch.h) when it comes from init_from_buffers, so nothing is left behind at thread exit
 * but strings. */
static _Thread_local gpux_tensor scratch_output;

/* t becomes a dense tensor of dtype and shape whose data is the memory the executor's plan
 * holds for output i when it fits (t does not own it then), else a block from the executor's
 * freed buffers; zero-filled when `zero` is set. */
static int init_from_buffers(gpux__kctx *k, int i, gpux_tensor *t, int dtype, int ndim, const int64_t *dims, int zero) {
  memset(t, 0, sizeof *t);
  size_t esize = gpux_dtype_size(dtype);
  if (!esize) return gpux__error(GPUX_E_UNSUPPORTED_DTYPE, "unsupported data type %d", dtype);
  int64_t count = 1;
  for (int d = 0; d < ndim; d++) {
    if (dims[d] < 0) return gpux__error(GPUX_E_SHAPE, "negative dimension %lld", (long long)dims[d]);
    if (dims[d] && count > INT64_MAX / 16 / dims[d])
      return gpux__error(GPUX_E_NOMEM, "tensor of %s is too large", gpux_dtype_name(dtype));
    count *= dims[d];
  }
  t->nbytes = (size_t)count * esize;
  if (k->out_mem && i < k->n_out && k->out_mem[i] && t->nbytes <= k->out_cap[i]) {
    t->data = k->out_mem[i];
  } else if (t == &scratch_output) { /* kept by the thread, not the tensor */
    t->data = gpux__scratch(GPUX__SCRATCH_OMITTED, t->nbytes);
    if (!t->data) return GPUX_E_NOMEM;
  } else {
    t->data = gpux__buffers_get(k->buffers, t->nbytes);
    if (!t->data) return GPUX_E_NOMEM;
    t->owns_data = 1;
  }
  if (zero) memset(t->data, 0, t->nbytes);
  t->kind = GPUX_KIND_TENSOR;
  t->dtype = dtype;
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++) t->dims[d] = dims[d];
  return 0;
}

static gpux_tensor *make_out(gpux__kctx *k, int i, int dtype, int ndim, const int64_t *dims, int zero) {
  gpux_tensor *t = i < k->n_out ? k->out[i] : NULL;
  if (!t) { /* omitted optional output: give the kernel somewhere harmless to write */
    gpux_tensor_free(&scratch_output);
    t = &scratch_output;
  } else {
    gpux_tensor_free(t);
  }
  if (k->shape_only) {
    memset(t, 0, sizeof *t);
    if (ndim < 0 || ndim > GPUX_MAX_DIMS) {
      gpux__kerr(k, GPUX_E_UNSUPPORTED, "rank %d above %d", ndim, GPUX_MAX_DIMS);
      return NULL;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->dims[d] = dims[d];
    return t;
  }
  int rc = ndim < 0 || ndim > GPUX_MAX_DIMS || !k->buffers || dtype == GPUX_DT_STRING
               ? gpux_tensor_init(t, dtype, ndim, dims)
               : init_from_buffers(k, i, t, dtype, ndim, dims, zero);
  if (rc) {
    gpux__kerr(k, rc, "output %d: %s", i, gpux_last_error());
    return NULL;
  }
  return t;
}

gpux_tensor *gpux__out(gpux__kctx *k, int i, int dtype, int ndim, const int64_t *dims) {
  return make_out(k, i, dtype, ndim, dims, 1);
}

gpux_tensor *gpux__out_raw(gpux__kctx *k, int i, int dtype, int ndim, const int64_t *dims) {
  return make_out(k, i, dtype, ndim, dims, 0);
}

int gpux__out_copy(gpux__kctx *k, int i, const gpux_tensor *src) {
  gpux_tensor *t = i < k->n_out ? k->out[i] : NULL;
  if (!t) return 0;
  if (src->kind == GPUX_KIND_TENSOR && src->dtype != GPUX_DT_STRING && (src->data || k->shape_only) &&
      src->ndim >= 0 && src->ndim <= GPUX_MAX_DIMS) {
    /* a dense tensor: through gpux__out, so the copy lands where the executor plans it */
    gpux_tensor *o = gpux__out_raw(k, i, src->dtype, src->ndim, src->dims);
    if (!o) return k->status;
    if (o->data && o->nbytes) memcpy(o->data, src->data, o->nbytes);
    return 0;
  }
  gpux_tensor_free(t);
  if (k->shape_only && src->kind == GPUX_KIND_TENSOR) {
    *t = *src;
    t->data = NULL;
    t->owns_data = 0;
    return 0;
  }
  int rc = gpux_tensor_copy(t, src);
  if (rc) return gpux__kerr(k, rc, "output %d: %s", i, gpux_last_error());
  return 0;
}

int gpux__need_data(gpux__kctx *k, int i) {
  const gpux_tensor *t = IN(i);
  if (t && !t->data && t->kind == GPUX_KIND_TENSOR && gpux_tensor_count(t) > 0) {
    if (i >= 0 && i < 64) k->needed |= (uint64_t)1 << i;
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "input %d decides the output shape but is not known before running", i);
  }
  return 0;
}

static const gpux__attr *find_attr(const gpux__kctx *k, const char *name) {
  return gpux__node_attr(k->node, name);
}

int gpux__has_attr(const gpux__kctx *k, const char *name) { return find_attr(k, name) != NULL; }

int64_t gpux__attr_int(const gpux__kctx *k, const char *name, int64_t dflt) {
  const gpux__attr *a = find_attr(k, name);
  if (!a) return dflt;
  if (a->type == GPUX_ATTR_FLOAT) return (int64_t)a->f;
  return a->i;
}

float gpux__attr_float(const gpux__kctx *k, const char *name, float dflt) {
  const gpux__attr *a = find_attr(k, name);
  if (!a) return dflt;
  if (a->type == GPUX_ATTR_INT) return (float)a->i;
  return a->f;
}

const char *gpux__attr_string(const gpux__kctx *k, const char *name, const char *dflt) {
  const gpux__attr *a = find_attr(k, name);
  return a && a->s ? a->s : dflt;
}

int gpux__attr_ints(const gpux__kctx *k, const char *name, const int64_t **vals) {
  const gpux__attr *a = find_attr(k, name);
  *vals = a ? a->ints : NULL;
  return a && a->type == GPUX_ATTR_INTS ? a->n : 0;
}

int gpux__attr_floats(const gpux__kctx *k, const char *name, const float **vals) {
  const gpux__attr *a = find_attr(k, name);
  *vals = a ? a->floats : NULL;
  return a && a->type == GPUX_ATTR_FLOATS ? a->n : 0;
}

int gpux__attr_strings(const gpux__kctx *k, const char *name, const char *const **vals) {
  const gpux__attr *a = find_attr(k, name);
  *vals = a ? (const char *const *)a->strings : NULL;
  return a && a->type == GPUX_ATTR_STRINGS ? a->n : 0;
}

const gpux_tensor *gpux__attr_tensor(const gpux__kctx *k, const char *name) {
  const gpux__attr *a = find_attr(k, name);
  return a ? a->t : NULL;
}

const gpux__graph *gpux__attr_graph(const gpux__kctx *k, const char *name) {
  const gpux__attr *a = find_attr(k, name);
  return a ? a->g : NULL;
}

int gpux__read_ints(gpux__kctx *k, const gpux_tensor *t, int64_t *vals, int cap) {
  if (!t) return 0;
  if (!t->data && gpux_tensor_count(t) > 0)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "integer input is not known before running");
  if (t->ndim > 1) return gpux__kerr(k, GPUX_E_SHAPE, "expected a 1-D integer tensor, got rank %d", t->ndim);
  int64_t n = gpux_tensor_count(t);
  if (n > cap) return gpux__kerr(k, GPUX_E_SHAPE, "expected at most %d values, got %lld", cap, (long long)n);
  for (int64_t i = 0; i < n; i++) vals[i] = gpux__load_i64(t->dtype, t->data, i);
  return (int)n;
}

int gpux__axis(gpux__kctx *k, int64_t axis, int rank, int *out) {
  if (axis < -rank || axis >= (rank ? rank : 1))
    return gpux__kerr(k, GPUX_E_INVALID, "axis %lld out of range for rank %d", (long long)axis, rank);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return 0;
}
