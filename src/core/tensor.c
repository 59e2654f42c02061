/* tensor.c — gpux_tensor: creation, copy, release, shape helpers, float32/float64 working
 * copies, description, and comparison with ONNX's rule (floats within atol + rtol*|expected|,
 * everything else exactly). */
#include "core/internal.h"
#include <math.h>
#include <stdio.h>

int64_t gpux__shape_count(int ndim, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= dims[i];
  return n;
}

int64_t gpux_tensor_count(const gpux_tensor *t) { return gpux__shape_count(t->ndim, t->dims); }

void gpux__strides(int ndim, const int64_t *dims, int64_t *strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
}

int gpux__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                          int64_t *out) {
  int n = GPUX__MAX(na, nb);
  int64_t res[GPUX_MAX_DIMS]; /* out may alias a or b */
  if (n > GPUX_MAX_DIMS) return gpux__error(GPUX_E_SHAPE, "rank %d exceeds %d", n, GPUX_MAX_DIMS);
  for (int i = 0; i < n; i++) {
    int64_t da = i < n - na ? 1 : a[i - (n - na)];
    int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
    if (da != db && da != 1 && db != 1)
      return gpux__error(GPUX_E_SHAPE, "cannot broadcast dimension %d: %lld vs %lld", i,
                         (long long)da, (long long)db);
    res[i] = da == 1 ? db : da;
  }
  memcpy(out, res, (size_t)n * sizeof *out);
  *nout = n;
  return 0;
}

int gpux_tensor_init(gpux_tensor *t, int dtype, int ndim, const int64_t *dims) {
  int rc = gpux__tensor_init_view(t, dtype, ndim, dims, NULL);
  if (rc) return rc;
  t->data = gpux__calloc(1, t->nbytes ? t->nbytes : 1);
  if (!t->data) return GPUX_E_NOMEM;
  t->owns_data = 1;
  return 0;
}

int gpux__tensor_init_view(gpux_tensor *t, int dtype, int ndim, const int64_t *dims, void *data) {
  memset(t, 0, sizeof *t);
  if (ndim < 0 || ndim > GPUX_MAX_DIMS)
    return gpux__error(GPUX_E_UNSUPPORTED, "tensor rank %d is above the supported %d", ndim,
                       GPUX_MAX_DIMS);
  size_t esize = gpux_dtype_size(dtype);
  if (!esize) return gpux__error(GPUX_E_UNSUPPORTED_DTYPE, "unsupported data type %d", dtype);
  t->kind = GPUX_KIND_TENSOR;
  t->dtype = dtype;
  t->ndim = ndim;
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] < 0) return gpux__error(GPUX_E_SHAPE, "negative dimension %lld", (long long)dims[i]);
    t->dims[i] = dims[i];
    if (dims[i] && count > INT64_MAX / 16 / dims[i])
      return gpux__error(GPUX_E_NOMEM, "tensor of %s is too large", gpux_dtype_name(dtype));
    count *= dims[i];
  }
  t->nbytes = (size_t)count * esize;
  t->data = data;
  return 0;
}

void gpux_tensor_free(gpux_tensor *t) {
  if (!t) return;
  if (t->owns_data && t->data) {
    if (t->dtype == GPUX_DT_STRING) {
      int64_t n = gpux_tensor_count(t);
      for (int64_t i = 0; i < n; i++) free(((char **)t->data)[i]);
    }
    free(t->data);
  }
  for (int i = 0; i < t->n_items; i++) gpux_tensor_free(&t->items[i]);
  free(t->items);
  memset(t, 0, sizeof *t);
}

int gpux_tensor_copy(gpux_tensor *dst, const gpux_tensor *src) {
  memset(dst, 0, sizeof *dst);
  if (src->kind == GPUX_KIND_NONE) {
    dst->kind = GPUX_KIND_NONE;
    dst->dtype = src->dtype;
    return 0;
  }
  if (src->kind == GPUX_KIND_SEQUENCE) {
    dst->kind = GPUX_KIND_SEQUENCE;
    dst->dtype = src->dtype;
    if (src->n_items) {
      dst->items = gpux__calloc((size_t)src->n_items, sizeof *dst->items);
      if (!dst->items) return GPUX_E_NOMEM;
    }
    for (int i = 0; i < src->n_items; i++) {
      int rc = gpux_tensor_copy(&dst->items[i], &src->items[i]);
      dst->n_items = i + 1;
      if (rc) { gpux_tensor_free(dst); return rc; }
    }
    return 0;
  }
  int rc = gpux_tensor_init(dst, src->dtype, src->ndim, src->dims);
  if (rc) return rc;
  if (src->dtype == GPUX_DT_STRING) {
    int64_t n = gpux_tensor_count(src);
    for (int64_t i = 0; i < n; i++) {
      const char *s = ((char *const *)src->data)[i];
      if (s && !(((char **)dst->data)[i] = gpux__strdup(s))) { gpux_tensor_free(dst); return GPUX_E_NOMEM; }
    }
  } else if (src->nbytes) {
    memcpy(dst->data, src->data, src->nbytes);
  }
  return 0;
}

double gpux_tensor_get_f64(const gpux_tensor *t, int64_t i) { return gpux__load_f64(t->dtype, t->data, i); }

const char *gpux_tensor_describe(const gpux_tensor *t, char *buf, size_t len) {
  if (t->kind == GPUX_KIND_NONE) { snprintf(buf, len, "none"); return buf; }
  if (t->kind == GPUX_KIND_SEQUENCE) {
    snprintf(buf, len, "sequence<%s>[%d items]", gpux_dtype_name(t->dtype), t->n_items);
    return buf;
  }
  size_t n = (size_t)snprintf(buf, len, "%s[", gpux_dtype_name(t->dtype));
  for (int i = 0; i < t->ndim && n < len; i++)
    n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? "," : "", (long long)t->dims[i]);
  if (n < len) snprintf(buf + n, len - n, "]");
  return buf;
}

static int compare_fail(gpux_compare_report *r, int err, const char *fmt, ...) GPUX__PRINTF(3, 4);
static int compare_fail(gpux_compare_report *r, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->message, sizeof r->message, fmt, ap);
  va_end(ap);
  return err;
}

int gpux_tensor_compare(const gpux_tensor *got, const gpux_tensor *want, double rtol,
                        double atol, gpux_compare_report *r) {
  gpux_compare_report local;
  if (!r) r = &local;
  memset(r, 0, sizeof *r);
  r->worst_index = -1;
  char a[96], b[96];
  if (got->kind != want->kind)
    return compare_fail(r, GPUX_E_MISMATCH, "got %s, expected %s", gpux_tensor_describe(got, a, sizeof a),
                        gpux_tensor_describe(want, b, sizeof b));
  if (want->kind == GPUX_KIND_NONE) return 0;
  if (want->kind == GPUX_KIND_SEQUENCE) {
    if (got->n_items != want->n_items)
      return compare_fail(r, GPUX_E_MISMATCH, "sequence of %d items, expected %d", got->n_items, want->n_items);
    for (int i = 0; i < want->n_items; i++) {
      int rc = gpux_tensor_compare(&got->items[i], &want->items[i], rtol, atol, r);
      if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "item %d: %s", i, r->message);
        memcpy(r->message, msg, sizeof msg);
        return rc;
      }
    }
    return 0;
  }
  int same_shape = got->ndim == want->ndim && got->dtype == want->dtype;
  for (int i = 0; same_shape && i < want->ndim; i++) same_shape = got->dims[i] == want->dims[i];
  if (!same_shape)
    return compare_fail(r, GPUX_E_MISMATCH, "got %s, expected %s", gpux_tensor_describe(got, a, sizeof a),
                        gpux_tensor_describe(want, b, sizeof b));
  int64_t n = gpux_tensor_count(want);
  if (want->dtype == GPUX_DT_STRING) {
    for (int64_t i = 0; i < n; i++) {
      const char *x = ((char *const *)got->data)[i], *y = ((char *const *)want->data)[i];
      if (strcmp(x ? x : "", y ? y : "")) {
        r->n_bad++;
        if (r->worst_index < 0) {
          r->worst_index = i;
          snprintf(r->message, sizeof r->message, "at %lld: \"%.80s\" != \"%.80s\"", (long long)i,
                   x ? x : "", y ? y : "");
        }
      }
    }
    return r->n_bad ? GPUX_E_MISMATCH : 0;
  }
  int is_float = gpux__dtype_is_float(want->dtype);
  int is_complex = want->dtype == GPUX_DT_COMPLEX64 || want->dtype == GPUX_DT_COMPLEX128;
  if (is_complex) { /* compare the real and imaginary parts as floats */
    int part = want->dtype == GPUX_DT_COMPLEX64 ? GPUX_DT_FLOAT : GPUX_DT_DOUBLE;
    n *= 2;
    is_float = 1;
    gpux_tensor g2 = *got, w2 = *want;
    g2.dtype = w2.dtype = part;
    g2.ndim = w2.ndim = 1;
    g2.dims[0] = w2.dims[0] = n;
    return gpux_tensor_compare(&g2, &w2, rtol, atol, r);
  }
  double worst_excess = -1;
  for (int64_t i = 0; i < n; i++) {
    int bad;
    double x, y, diff = 0;
    if (is_float) {
      x = gpux__load_f64(got->dtype, got->data, i);
      y = gpux__load_f64(want->dtype, want->data, i);
      if (isnan(y)) bad = !isnan(x);
      else if (isinf(y)) bad = x != y;
      else {
        diff = fabs(x - y);
        bad = !(diff <= atol + rtol * fabs(y));
      }
    } else {
      int64_t xi = gpux__load_i64(got->dtype, got->data, i), yi = gpux__load_i64(want->dtype, want->data, i);
      x = (double)xi;
      y = (double)yi;
      bad = xi != yi;
      diff = fabs(x - y);
    }
    if (!bad) continue;
    r->n_bad++;
    double excess = isnan(diff) || isnan(x) ? INFINITY : diff - (atol + rtol * fabs(y));
    if (excess > worst_excess || r->worst_index < 0) {
      worst_excess = excess;
      r->worst_index = i;
      r->worst_abs = diff;
      r->worst_rel = y != 0 ? diff / fabs(y) : diff;
      r->got = x;
      r->want = y;
    }
  }
  if (!r->n_bad) return 0;
  /* the worst element's multi-dimensional index reads better than the flat one */
  int64_t strides[GPUX_MAX_DIMS], rem = r->worst_index;
  gpux__strides(want->ndim, want->dims, strides);
  char where[96] = "[";
  size_t w = 1;
  for (int d = 0; d < want->ndim && w < sizeof where; d++) {
    w += (size_t)snprintf(where + w, sizeof where - w, "%s%lld", d ? "," : "", (long long)(rem / strides[d]));
    rem %= strides[d];
  }
  if (w < sizeof where) snprintf(where + w, sizeof where - w, "]");
  snprintf(r->message, sizeof r->message, "%lld of %lld elements differ; worst at %s: got %.9g, expected %.9g (abs %.3g, rel %.3g)",
           (long long)r->n_bad, (long long)n, where, r->got, r->want, r->worst_abs, r->worst_rel);
  return GPUX_E_MISMATCH;
}

/* ---- whole tensors widened to float32 / float64 working copies ---- */

float *gpux__widen_f32(const gpux_tensor *t) {
  int64_t n = gpux_tensor_count(t);
  float *p = gpux__malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  if (!p) return NULL;
  if (t->dtype == GPUX_DT_FLOAT) {
    memcpy(p, t->data, (size_t)n * sizeof *p);
  } else if (t->dtype == GPUX_DT_FLOAT16) {
    const uint16_t *s = t->data;
    for (int64_t i = 0; i < n; i++) p[i] = gpux__f16_to_f32(s[i]);
  } else if (t->dtype == GPUX_DT_BFLOAT16) {
    const uint16_t *s = t->data;
    for (int64_t i = 0; i < n; i++) p[i] = gpux__bf16_to_f32(s[i]);
  } else {
    for (int64_t i = 0; i < n; i++) p[i] = (float)gpux__load_f64(t->dtype, t->data, i);
  }
  return p;
}

void gpux__narrow_f32(int dtype, void *dst, const float *src, int64_t n) {
  if (dtype == GPUX_DT_FLOAT) {
    memcpy(dst, src, (size_t)n * sizeof *src);
  } else if (dtype == GPUX_DT_FLOAT16) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = gpux__f32_to_f16(src[i]);
  } else if (dtype == GPUX_DT_BFLOAT16) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = gpux__f32_to_bf16(src[i]);
  } else {
    for (int64_t i = 0; i < n; i++) gpux__store_f64(dtype, dst, i, src[i]);
  }
}

double *gpux__widen_f64(const gpux_tensor *t) {
  int64_t n = gpux_tensor_count(t);
  double *p = gpux__malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  if (!p) return NULL;
  if (t->dtype == GPUX_DT_FLOAT) {
    const float *s = t->data;
    for (int64_t i = 0; i < n; i++) p[i] = s[i];
  } else if (t->dtype == GPUX_DT_DOUBLE) {
    memcpy(p, t->data, (size_t)n * sizeof *p);
  } else {
    for (int64_t i = 0; i < n; i++) p[i] = gpux__load_f64(t->dtype, t->data, i);
  }
  return p;
}
