/* index.c — operators that select, place or look up elements by index or by value: Gather,
 * GatherElements, GatherND, Scatter, ScatterElements, ScatterND, TensorScatter, OneHot, NonZero,
 * Compress, Unique, MaxRoiPool and TfIdfVectorizer, plus the ai.onnx.ml ArrayFeatureExtractor,
 * LabelEncoder and Binarizer.
 *
 * Every index read from a tensor is checked against the dimension it addresses (negative indices
 * count from the end where the spec allows it); an index out of range is an error, never a read or
 * write outside a buffer. Element copies work on raw bytes, so every dtype goes through the same
 * code; string tensors (char *[count]) are duplicated element by element. */
#include "ops/op.h"
#include <float.h>
#include <math.h>
#include <stdio.h>

/* ---- shared helpers ---- */

/* Elements of dims[from, to). */
static int64_t span(const int64_t *dims, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; d++) n *= dims[d];
  return n;
}

static int need_inputs(gpux__kctx *k, int n) {
  for (int i = 0; i < n; i++) {
    const gpux_tensor *t = IN(i);
    if (!t) return gpux__kerr(k, GPUX_E_INVALID, "input %d is required", i);
    if (t->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input %d must be a tensor", i);
  }
  return 0;
}

/* Indices of the Gather/Scatter family are int32 or int64. */
static int check_index_dtype(gpux__kctx *k, const gpux_tensor *t, const char *what) {
  if (t->dtype != GPUX_DT_INT32 && t->dtype != GPUX_DT_INT64)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s must be int32 or int64, got %s", what,
                      gpux_dtype_name(t->dtype));
  return 0;
}

static inline int64_t index_at(const gpux_tensor *t, int64_t i) {
  return t->dtype == GPUX_DT_INT32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
}

/* Checks an index against [-dim, dim-1] and makes it non-negative; -1 (with the error set) when
 * out of range. */
static int64_t fix_index(gpux__kctx *k, int64_t v, int64_t dim, const char *what, int64_t pos) {
  if (v < -dim || v >= dim) {
    gpux__kerr(k, GPUX_E_INVALID, "%s: index %lld at position %lld is out of range [%lld, %lld]",
               what, (long long)v, (long long)pos, (long long)-dim, (long long)dim - 1);
    return -1;
  }
  return v < 0 ? v + dim : v;
}

/* All indices of t, checked against dim and made non-negative, in a new array (free it). */
static int64_t *fixed_indices(gpux__kctx *k, const gpux_tensor *t, int64_t dim, const char *what) {
  int64_t n = gpux_tensor_count(t);
  int64_t *idx = gpux__malloc((size_t)(n ? n : 1) * sizeof *idx);
  if (!idx) {
    gpux__kerr(k, GPUX_E_NOMEM, "%s: out of memory", what);
    return NULL;
  }
  for (int64_t i = 0; i < n; i++)
    if ((idx[i] = fix_index(k, index_at(t, i), dim, what, i)) < 0) {
      free(idx);
      return NULL;
    }
  return idx;
}

static inline void copy_elem(void *dst, const void *src, size_t es) {
  switch (es) { /* fixed sizes so the compiler emits plain loads and stores */
  case 1: memcpy(dst, src, 1); break;
  case 2: memcpy(dst, src, 2); break;
  case 4: memcpy(dst, src, 4); break;
  case 8: memcpy(dst, src, 8); break;
  default: memcpy(dst, src, es); break;
  }
}

/* dst[di..di+n) = src[si..si+n) for any dtype; strings are duplicated (replacing what dst held). */
static int copy_elems(int dtype, void *dst, int64_t di, const void *src, int64_t si, int64_t n) {
  if (dtype == GPUX_DT_STRING) {
    char **d = (char **)dst + di;
    char *const *s = (char *const *)src + si;
    for (int64_t j = 0; j < n; j++) {
      char *c = gpux__strdup(s[j] ? s[j] : "");
      if (!c) return GPUX_E_NOMEM;
      free(d[j]);
      d[j] = c;
    }
    return 0;
  }
  size_t es = gpux_dtype_size(dtype);
  if (n > 0) memcpy((char *)dst + (size_t)di * es, (const char *)src + (size_t)si * es, (size_t)n * es);
  return 0;
}

/* The output starts as a copy of x (same dtype and element count). */
static int copy_tensor_data(gpux__kctx *k, gpux_tensor *y, const gpux_tensor *x) {
  if (copy_elems(x->dtype, y->data, 0, x->data, 0, gpux_tensor_count(x)))
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
  return 0;
}

static int elem_is_nonzero(int dt, const void *p, int64_t i) {
  switch (dt) {
  case GPUX_DT_FLOAT: return ((const float *)p)[i] != 0.0f;
  case GPUX_DT_BOOL: case GPUX_DT_UINT8: case GPUX_DT_INT8: return ((const uint8_t *)p)[i] != 0;
  case GPUX_DT_INT64: case GPUX_DT_UINT64: return ((const int64_t *)p)[i] != 0;
  case GPUX_DT_INT32: case GPUX_DT_UINT32: return ((const int32_t *)p)[i] != 0;
  case GPUX_DT_STRING: {
    const char *s = ((char *const *)p)[i];
    return s && s[0];
  }
  case GPUX_DT_COMPLEX64: return ((const float *)p)[2 * i] != 0.0f || ((const float *)p)[2 * i + 1] != 0.0f;
  case GPUX_DT_COMPLEX128:
    return ((const double *)p)[2 * i] != 0.0 || ((const double *)p)[2 * i + 1] != 0.0;
  default: return gpux__load_f64(dt, p, i) != 0.0; /* NaN counts as non-zero */
  }
}

/* Total order for sorting values of one dtype: NaN after every number and equal to NaN; strings
 * by bytes; uint64 unsigned. */
static int cmp_elem(int dt, const void *pa, int64_t a, const void *pb, int64_t b) {
  if (dt == GPUX_DT_STRING) {
    const char *x = ((char *const *)pa)[a], *y = ((char *const *)pb)[b];
    int c = strcmp(x ? x : "", y ? y : "");
    return (c > 0) - (c < 0);
  }
  if (dt == GPUX_DT_UINT64) {
    uint64_t x = ((const uint64_t *)pa)[a], y = ((const uint64_t *)pb)[b];
    return (x > y) - (x < y);
  }
  if (gpux__dtype_is_float(dt)) {
    double x = gpux__load_f64(dt, pa, a), y = gpux__load_f64(dt, pb, b);
    int nx = isnan(x), ny = isnan(y);
    if (nx || ny) return nx - ny;
    return (x > y) - (x < y);
  }
  int64_t x = gpux__load_i64(dt, pa, a), y = gpux__load_i64(dt, pb, b);
  return (x > y) - (x < y);
}

typedef int (*index_cmp_fn)(const void *ctx, int64_t a, int64_t b);

/* Stable bottom-up merge sort of the index array a[n] by cmp; tmp has room for n entries. */
static void sort_indices(int64_t *a, int64_t *tmp, int64_t n, index_cmp_fn cmp, const void *ctx) {
  int64_t *src = a, *dst = tmp;
  for (int64_t w = 1; w < n; w *= 2) {
    for (int64_t lo = 0; lo < n; lo += 2 * w) {
      int64_t mid = GPUX__MIN(lo + w, n), hi = GPUX__MIN(lo + 2 * w, n), i = lo, j = mid, o = lo;
      while (i < mid && j < hi) dst[o++] = cmp(ctx, src[j], src[i]) < 0 ? src[j++] : src[i++];
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    int64_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

/* ---- Gather ---- */

typedef struct {
  const char *src;     /* data: (outer, axis_dim, row bytes) */
  char *dst;           /* (outer, n_idx, row bytes) */
  const int64_t *idx;  /* [n_idx], non-negative */
  int64_t n_idx, axis_dim;
  size_t row;          /* bytes of one inner run */
} gather_job;

static void gather_rows(void *ctx, int64_t begin, int64_t end) {
  const gather_job *g = ctx;
  /* hot loop: one memcpy per gathered row (embedding lookups land here with long rows) */
  for (int64_t r = begin; r < end; r++) {
    int64_t o = r / g->n_idx, j = r - o * g->n_idx;
    const char *s = g->src + (size_t)(o * g->axis_dim + g->idx[j]) * g->row;
    char *d = g->dst + (size_t)r * g->row;
    switch (g->row) {
    case 4: memcpy(d, s, 4); break;
    case 8: memcpy(d, s, 8); break;
    default: memcpy(d, s, g->row); break;
    }
  }
}

static int op_gather(gpux__kctx *k) {
  int rc = need_inputs(k, 2);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *ind = IN(1);
  if ((rc = check_index_dtype(k, ind, "indices"))) return rc;
  if (x->ndim < 1) return gpux__kerr(k, GPUX_E_SHAPE, "data must have rank >= 1");
  int axis;
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), x->ndim, &axis))) return rc;
  int ndim = x->ndim - 1 + ind->ndim;
  if (ndim > GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "output rank %d above %d", ndim, GPUX_MAX_DIMS);
  int64_t dims[GPUX_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < axis; d++) dims[n++] = x->dims[d];
  for (int d = 0; d < ind->ndim; d++) dims[n++] = ind->dims[d];
  for (int d = axis + 1; d < x->ndim; d++) dims[n++] = x->dims[d];
  gpux_tensor *y = gpux__out(k, 0, x->dtype, ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;

  int64_t outer = span(x->dims, 0, axis), axis_dim = x->dims[axis];
  int64_t inner = span(x->dims, axis + 1, x->ndim), n_idx = gpux_tensor_count(ind);
  int64_t *idx = fixed_indices(k, ind, axis_dim, "indices");
  if (!idx) return k->status;
  if (x->dtype == GPUX_DT_STRING) {
    for (int64_t o = 0; o < outer && !rc; o++)
      for (int64_t j = 0; j < n_idx && !rc; j++)
        rc = copy_elems(x->dtype, y->data, (o * n_idx + j) * inner, x->data,
                        (o * axis_dim + idx[j]) * inner, inner);
    if (rc) rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
  } else if (inner > 0) {
    gather_job g = {x->data, y->data, idx, n_idx, axis_dim, (size_t)inner * gpux_dtype_size(x->dtype)};
    int64_t grain = GPUX__MAX(1, (int64_t)(65536 / g.row));
    gpux__parallel_for(outer * n_idx, grain, gather_rows, &g);
  }
  free(idx);
  return rc;
}

/* ---- GatherElements ---- */

static int op_gather_elements(gpux__kctx *k) {
  int rc = need_inputs(k, 2);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *ind = IN(1);
  if ((rc = check_index_dtype(k, ind, "indices"))) return rc;
  int r = x->ndim, axis;
  if (r < 1 || ind->ndim != r)
    return gpux__kerr(k, GPUX_E_SHAPE, "data (rank %d) and indices (rank %d) must have the same rank >= 1",
                      r, ind->ndim);
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), r, &axis))) return rc;
  for (int d = 0; d < r; d++)
    if (d != axis && ind->dims[d] > x->dims[d])
      return gpux__kerr(k, GPUX_E_SHAPE, "indices dimension %d is %lld, above data's %lld", d,
                        (long long)ind->dims[d], (long long)x->dims[d]);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, r, ind->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;

  int64_t n = gpux_tensor_count(ind), xs[GPUX_MAX_DIMS], coord[GPUX_MAX_DIMS] = {0};
  gpux__strides(r, x->dims, xs);
  size_t es = gpux_dtype_size(x->dtype);
  int64_t base = 0; /* data offset of coord with coord[axis] taken as 0 */
  for (int64_t i = 0; i < n; i++) {
    int64_t v = fix_index(k, index_at(ind, i), x->dims[axis], "indices", i);
    if (v < 0) return k->status;
    int64_t src = base + v * xs[axis];
    if (x->dtype == GPUX_DT_STRING) {
      if (copy_elems(x->dtype, y->data, i, x->data, src, 1))
        return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
    } else {
      copy_elem((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)src * es, es);
    }
    for (int d = r - 1; d >= 0; d--) { /* next coordinate of indices */
      int64_t step = d == axis ? 0 : xs[d];
      if (++coord[d] < ind->dims[d]) {
        base += step;
        break;
      }
      base -= (coord[d] - 1) * step;
      coord[d] = 0;
    }
  }
  return 0;
}

/* ---- GatherND ---- */

static int op_gather_nd(gpux__kctx *k) {
  int rc = need_inputs(k, 2);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *ind = IN(1);
  if ((rc = check_index_dtype(k, ind, "indices"))) return rc;
  int r = x->ndim, q = ind->ndim;
  int64_t b = gpux__attr_int(k, "batch_dims", 0);
  if (r < 1 || q < 1) return gpux__kerr(k, GPUX_E_SHAPE, "data and indices must have rank >= 1");
  if (b < 0 || b >= GPUX__MIN(r, q))
    return gpux__kerr(k, GPUX_E_INVALID, "batch_dims %lld must be in [0, %d)", (long long)b, GPUX__MIN(r, q));
  int nb = (int)b;
  int64_t kk = ind->dims[q - 1];
  if (kk < 1 || kk > r - nb)
    return gpux__kerr(k, GPUX_E_SHAPE, "last dimension of indices (%lld) must be in [1, %d]", (long long)kk, r - nb);
  for (int d = 0; d < nb; d++)
    if (ind->dims[d] != x->dims[d])
      return gpux__kerr(k, GPUX_E_SHAPE, "batch dimension %d differs: data %lld, indices %lld", d,
                        (long long)x->dims[d], (long long)ind->dims[d]);
  int kn = (int)kk, ndim = q - 1 + r - nb - kn;
  if (ndim > GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "output rank %d above %d", ndim, GPUX_MAX_DIMS);
  int64_t dims[GPUX_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < q - 1; d++) dims[n++] = ind->dims[d];
  for (int d = nb + kn; d < r; d++) dims[n++] = x->dims[d];
  gpux_tensor *y = gpux__out(k, 0, x->dtype, ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;

  int64_t batches = span(x->dims, 0, nb), per_batch = span(ind->dims, nb, q - 1);
  int64_t slice = span(x->dims, nb + kn, r), x_batch = span(x->dims, nb, r), strides[GPUX_MAX_DIMS];
  for (int j = 0; j < kn; j++) strides[j] = span(x->dims, nb + j + 1, r);
  for (int64_t bi = 0; bi < batches; bi++)
    for (int64_t t = 0; t < per_batch; t++) {
      int64_t tuple = bi * per_batch + t, off = bi * x_batch;
      for (int j = 0; j < kn; j++) {
        int64_t v = fix_index(k, index_at(ind, tuple * kn + j), x->dims[nb + j], "indices", tuple * kn + j);
        if (v < 0) return k->status;
        off += v * strides[j];
      }
      if (copy_elems(x->dtype, y->data, tuple * slice, x->data, off, slice))
        return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
    }
  return 0;
}

/* ---- scatter reductions ---- */

enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

static int parse_reduction(gpux__kctx *k, int dtype, int *red) {
  const char *s = gpux__attr_string(k, "reduction", "none");
  if (!strcmp(s, "none")) *red = RED_NONE;
  else if (!strcmp(s, "add")) *red = RED_ADD;
  else if (!strcmp(s, "mul")) *red = RED_MUL;
  else if (!strcmp(s, "max")) *red = RED_MAX;
  else if (!strcmp(s, "min")) *red = RED_MIN;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "reduction '%s' is not one of none, add, mul, max, min", s);
  if (*red != RED_NONE &&
      (dtype == GPUX_DT_STRING || dtype == GPUX_DT_COMPLEX64 || dtype == GPUX_DT_COMPLEX128))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "reduction '%s' on %s", s, gpux_dtype_name(dtype));
  return 0;
}

static inline float reduce_f32(float a, float b, int red) {
  switch (red) {
  case RED_ADD: return a + b;
  case RED_MUL: return a * b;
  case RED_MAX: return isnan(a) || isnan(b) ? NAN : b > a ? b : a;
  case RED_MIN: return isnan(a) || isnan(b) ? NAN : b < a ? b : a;
  }
  return b;
}

/* d[di] = d[di] (red) s[si] for one element of a numeric dtype other than float32. */
static void reduce_elem(int dt, void *d, int64_t di, const void *s, int64_t si, int red) {
  if (gpux__dtype_is_float(dt)) {
    double a = gpux__load_f64(dt, d, di), b = gpux__load_f64(dt, s, si);
    switch (red) {
    case RED_ADD: a += b; break;
    case RED_MUL: a *= b; break;
    case RED_MAX: a = isnan(a) || isnan(b) ? NAN : b > a ? b : a; break;
    case RED_MIN: a = isnan(a) || isnan(b) ? NAN : b < a ? b : a; break;
    }
    gpux__store_f64(dt, d, di, a);
  } else if (dt == GPUX_DT_UINT64) {
    uint64_t a = ((uint64_t *)d)[di], b = ((const uint64_t *)s)[si];
    switch (red) {
    case RED_ADD: a += b; break;
    case RED_MUL: a *= b; break;
    case RED_MAX: a = b > a ? b : a; break;
    case RED_MIN: a = b < a ? b : a; break;
    }
    ((uint64_t *)d)[di] = a;
  } else {
    int64_t a = gpux__load_i64(dt, d, di), b = gpux__load_i64(dt, s, si);
    switch (red) { /* wrapping arithmetic, as the fixed-width types do */
    case RED_ADD: a = (int64_t)((uint64_t)a + (uint64_t)b); break;
    case RED_MUL: a = (int64_t)((uint64_t)a * (uint64_t)b); break;
    case RED_MAX: a = b > a ? b : a; break;
    case RED_MIN: a = b < a ? b : a; break;
    }
    gpux__store_i64(dt, d, di, a);
  }
}

/* y[yi..yi+n) (red)= u[ui..ui+n). */
static int scatter_run(int dt, void *y, int64_t yi, const void *u, int64_t ui, int64_t n, int red) {
  if (red == RED_NONE) return copy_elems(dt, y, yi, u, ui, n);
  if (dt == GPUX_DT_FLOAT) {
    float *yf = (float *)y + yi;
    const float *uf = (const float *)u + ui;
    for (int64_t j = 0; j < n; j++) yf[j] = reduce_f32(yf[j], uf[j], red);
  } else {
    for (int64_t j = 0; j < n; j++) reduce_elem(dt, y, yi + j, u, ui + j, red);
  }
  return 0;
}

/* ---- ScatterElements and Scatter ---- */

static int op_scatter_elements(gpux__kctx *k) {
  int rc = need_inputs(k, 3);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *ind = IN(1), *upd = IN(2);
  if ((rc = check_index_dtype(k, ind, "indices"))) return rc;
  if (upd->dtype != x->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "updates are %s, data is %s", gpux_dtype_name(upd->dtype),
                      gpux_dtype_name(x->dtype));
  int r = x->ndim, axis, red;
  if (r < 1 || ind->ndim != r || upd->ndim != r)
    return gpux__kerr(k, GPUX_E_SHAPE, "data, indices and updates must have the same rank >= 1 (%d, %d, %d)",
                      r, ind->ndim, upd->ndim);
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), r, &axis))) return rc;
  if ((rc = parse_reduction(k, x->dtype, &red))) return rc;
  for (int d = 0; d < r; d++) {
    if (upd->dims[d] != ind->dims[d])
      return gpux__kerr(k, GPUX_E_SHAPE, "updates and indices differ in dimension %d (%lld vs %lld)", d,
                        (long long)upd->dims[d], (long long)ind->dims[d]);
    if (d != axis && ind->dims[d] > x->dims[d])
      return gpux__kerr(k, GPUX_E_SHAPE, "indices dimension %d is %lld, above data's %lld", d,
                        (long long)ind->dims[d], (long long)x->dims[d]);
  }
  gpux_tensor *y = gpux__out(k, 0, x->dtype, r, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if ((rc = copy_tensor_data(k, y, x))) return rc;

  int64_t n = gpux_tensor_count(ind), ys[GPUX_MAX_DIMS], coord[GPUX_MAX_DIMS] = {0};
  gpux__strides(r, x->dims, ys);
  int64_t base = 0; /* output offset of coord with coord[axis] taken as 0 */
  for (int64_t i = 0; i < n; i++) {
    int64_t v = fix_index(k, index_at(ind, i), x->dims[axis], "indices", i);
    if (v < 0) return k->status;
    if (scatter_run(x->dtype, y->data, base + v * ys[axis], upd->data, i, 1, red))
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
    for (int d = r - 1; d >= 0; d--) {
      int64_t step = d == axis ? 0 : ys[d];
      if (++coord[d] < ind->dims[d]) {
        base += step;
        break;
      }
      base -= (coord[d] - 1) * step;
      coord[d] = 0;
    }
  }
  return 0;
}

/* ---- ScatterND ---- */

static int op_scatter_nd(gpux__kctx *k) {
  int rc = need_inputs(k, 3);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *ind = IN(1), *upd = IN(2);
  if ((rc = check_index_dtype(k, ind, "indices"))) return rc;
  if (upd->dtype != x->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "updates are %s, data is %s", gpux_dtype_name(upd->dtype),
                      gpux_dtype_name(x->dtype));
  int r = x->ndim, q = ind->ndim, red;
  if (r < 1 || q < 1) return gpux__kerr(k, GPUX_E_SHAPE, "data and indices must have rank >= 1");
  if ((rc = parse_reduction(k, x->dtype, &red))) return rc;
  int64_t kk = ind->dims[q - 1];
  if (kk < 1 || kk > r)
    return gpux__kerr(k, GPUX_E_SHAPE, "last dimension of indices (%lld) must be in [1, %d]", (long long)kk, r);
  int kn = (int)kk;
  /* updates: indices.shape[:-1] + data.shape[k:] */
  int urank = q - 1 + r - kn, ok = upd->ndim == urank;
  for (int d = 0; ok && d < q - 1; d++) ok = upd->dims[d] == ind->dims[d];
  for (int d = kn; ok && d < r; d++) ok = upd->dims[q - 1 + d - kn] == x->dims[d];
  if (!ok) return gpux__kerr(k, GPUX_E_SHAPE, "updates must have shape indices.shape[:-1] + data.shape[%d:]", kn);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, r, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if ((rc = copy_tensor_data(k, y, x))) return rc;

  int64_t tuples = span(ind->dims, 0, q - 1), slice = span(x->dims, kn, r), strides[GPUX_MAX_DIMS];
  for (int j = 0; j < kn; j++) strides[j] = span(x->dims, j + 1, r);
  for (int64_t t = 0; t < tuples; t++) {
    int64_t off = 0;
    for (int j = 0; j < kn; j++) {
      int64_t v = fix_index(k, index_at(ind, t * kn + j), x->dims[j], "indices", t * kn + j);
      if (v < 0) return k->status;
      off += v * strides[j];
    }
    if (scatter_run(x->dtype, y->data, off, upd->data, t * slice, slice, red))
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
  }
  return 0;
}

/* ---- TensorScatter (KV-cache update) ---- */

static int op_tensor_scatter(gpux__kctx *k) {
  int rc = need_inputs(k, 2);
  if (rc) return rc;
  const gpux_tensor *past = IN(0), *upd = IN(1), *wi = IN(2);
  int r = past->ndim, axis;
  if (r < 2 || upd->ndim != r)
    return gpux__kerr(k, GPUX_E_SHAPE, "past_cache (rank %d) and update (rank %d) must have the same rank >= 2",
                      r, upd->ndim);
  if (upd->dtype != past->dtype)
    return gpux__kerr(k, GPUX_E_DTYPE, "update is %s, past_cache is %s", gpux_dtype_name(upd->dtype),
                      gpux_dtype_name(past->dtype));
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", -2), r, &axis))) return rc;
  if (axis == 0) return gpux__kerr(k, GPUX_E_INVALID, "axis may not be 0 (the batch dimension)");
  const char *mode = gpux__attr_string(k, "mode", "linear");
  int circular = !strcmp(mode, "circular");
  if (!circular && strcmp(mode, "linear"))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "mode '%s' is not linear or circular", mode);
  for (int d = 0; d < r; d++)
    if (d == axis ? upd->dims[d] > past->dims[d] : upd->dims[d] != past->dims[d])
      return gpux__kerr(k, GPUX_E_SHAPE, "update dimension %d (%lld) does not fit past_cache's (%lld)", d,
                        (long long)upd->dims[d], (long long)past->dims[d]);
  int64_t batch = past->dims[0];
  if (wi) {
    if ((rc = check_index_dtype(k, wi, "write_indices"))) return rc;
    if (gpux_tensor_count(wi) != batch)
      return gpux__kerr(k, GPUX_E_SHAPE, "write_indices has %lld values for batch %lld",
                        (long long)gpux_tensor_count(wi), (long long)batch);
  }
  gpux_tensor *y = gpux__out(k, 0, past->dtype, r, past->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if ((rc = copy_tensor_data(k, y, past))) return rc;

  int64_t prefix = span(past->dims, 0, axis), per_batch = batch ? prefix / batch : 0;
  int64_t max_seq = past->dims[axis], seq = upd->dims[axis], inner = span(past->dims, axis + 1, r);
  for (int64_t p = 0; p < prefix; p++) {
    int64_t b = p / per_batch, w = wi ? index_at(wi, b) : 0;
    if (w < 0 || (!circular && w + seq > max_seq))
      return gpux__kerr(k, GPUX_E_INVALID, "write index %lld for batch %lld does not fit %lld + %lld in %lld",
                        (long long)w, (long long)b, (long long)w, (long long)seq, (long long)max_seq);
    for (int64_t s = 0; s < seq; s++) {
      int64_t pos = circular ? (w + s) % max_seq : w + s;
      if (copy_elems(past->dtype, y->data, (p * max_seq + pos) * inner, upd->data, (p * seq + s) * inner, inner))
        return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
    }
  }
  return 0;
}

/* ---- OneHot ---- */

static int op_one_hot(gpux__kctx *k) {
  int rc = need_inputs(k, 3);
  if (rc) return rc;
  const gpux_tensor *ind = IN(0), *depth_t = IN(1), *vals = IN(2);
  if (gpux_tensor_count(depth_t) != 1)
    return gpux__kerr(k, GPUX_E_SHAPE, "depth must hold exactly one value");
  if (gpux_tensor_count(vals) != 2)
    return gpux__kerr(k, GPUX_E_SHAPE, "values must hold [off_value, on_value]");
  if (depth_t->dtype == GPUX_DT_STRING || ind->dtype == GPUX_DT_STRING)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "indices and depth must be numeric");
  int r = ind->ndim, axis;
  if (r + 1 > GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "output rank %d above %d", r + 1, GPUX_MAX_DIMS);
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", -1), r + 1, &axis))) return rc;
  if ((rc = gpux__need_data(k, 1))) return rc;
  double dv = gpux__load_f64(depth_t->dtype, depth_t->data, 0);
  if (!(dv >= 0) || dv > 1e15) return gpux__kerr(k, GPUX_E_INVALID, "depth %g is not a valid size", dv);
  int64_t depth = (int64_t)dv, dims[GPUX_MAX_DIMS];
  for (int d = 0, n = 0; d <= r; d++) dims[d] = d == axis ? depth : ind->dims[n++];
  gpux_tensor *y = gpux__out(k, 0, vals->dtype, r + 1, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;

  /* y: (outer, depth, inner) with indices (outer, inner) */
  int64_t outer = span(ind->dims, 0, axis), inner = span(ind->dims, axis, r), total = outer * depth * inner;
  int str = vals->dtype == GPUX_DT_STRING;
  size_t es = gpux_dtype_size(vals->dtype);
  for (int64_t i = 0; i < total && !str; i++) copy_elem((char *)y->data + (size_t)i * es, vals->data, es);
  for (int64_t i = 0; i < total && str; i++)
    if (copy_elems(vals->dtype, y->data, i, vals->data, 0, 1)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t v = gpux__load_i64(ind->dtype, ind->data, o * inner + i);
      if (v < 0) v += depth;
      if (v < 0 || v >= depth) continue; /* out of range: all off_value, as the spec says */
      if (copy_elems(vals->dtype, y->data, (o * depth + v) * inner + i, vals->data, 1, 1))
        return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
  return 0;
}

/* ---- NonZero ---- */

static int op_nonzero(gpux__kctx *k) {
  int rc = need_inputs(k, 1);
  if (rc) return rc;
  const gpux_tensor *x = IN(0);
  if ((rc = gpux__need_data(k, 0))) return rc;
  int r = x->ndim, rows = r ? r : 1; /* a scalar is read as a 1-D tensor of one element */
  int64_t n = gpux_tensor_count(x), nnz = 0;
  if (!x->data && n > 0) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "input has no data");
  for (int64_t i = 0; i < n; i++) nnz += elem_is_nonzero(x->dtype, x->data, i);
  int64_t dims[2] = {rows, nnz};
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_INT64, 2, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t *out = y->data, col = 0; /* (rows, nnz) */
  for (int64_t i = 0; i < n; i++) {
    if (!elem_is_nonzero(x->dtype, x->data, i)) continue;
    int64_t rem = i;
    for (int d = rows - 1; d >= 0; d--) {
      int64_t dim = r ? x->dims[d] : 1;
      out[d * nnz + col] = rem % dim;
      rem /= dim;
    }
    col++;
  }
  return 0;
}

/* ---- Compress ---- */

static int op_compress(gpux__kctx *k) {
  int rc = need_inputs(k, 2);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *cond = IN(1);
  if ((rc = gpux__need_data(k, 1))) return rc;
  if (cond->dtype == GPUX_DT_STRING) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "condition must be bool");
  if (cond->ndim > 1) return gpux__kerr(k, GPUX_E_SHAPE, "condition must be 1-D, got rank %d", cond->ndim);
  int has_axis = gpux__has_attr(k, "axis"), axis = 0;
  if (has_axis) {
    if (x->ndim < 1) return gpux__kerr(k, GPUX_E_SHAPE, "input must have rank >= 1 with an axis");
    if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), x->ndim, &axis))) return rc;
  }
  int64_t len = has_axis ? x->dims[axis] : gpux_tensor_count(x), nc = gpux_tensor_count(cond), kept = 0;
  for (int64_t i = 0; i < nc; i++) {
    if (!elem_is_nonzero(cond->dtype, cond->data, i)) continue;
    if (i >= len)
      return gpux__kerr(k, GPUX_E_INVALID, "condition selects position %lld of %lld", (long long)i, (long long)len);
    kept++;
  }
  int64_t dims[GPUX_MAX_DIMS];
  int ndim = has_axis ? x->ndim : 1;
  if (has_axis) memcpy(dims, x->dims, sizeof dims);
  dims[axis] = kept;
  gpux_tensor *y = gpux__out(k, 0, x->dtype, ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;

  /* x: (outer, len, inner) -> y: (outer, kept, inner) */
  int64_t outer = has_axis ? span(x->dims, 0, axis) : 1, inner = has_axis ? span(x->dims, axis + 1, x->ndim) : 1;
  int64_t m = GPUX__MIN(nc, len);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0, j = 0; i < m; i++) {
      if (!elem_is_nonzero(cond->dtype, cond->data, i)) continue;
      if (copy_elems(x->dtype, y->data, (o * kept + j++) * inner, x->data, (o * len + i) * inner, inner))
        return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
    }
  return 0;
}

/* ---- Unique ---- */

typedef struct {
  int dtype;
  const void *data;          /* (outer, n, inner) */
  int64_t outer, n, inner;
} unique_view;

/* Compares slices a and b along the axis, element by element in row-major order. */
static int unique_cmp(const void *ctx, int64_t a, int64_t b) {
  const unique_view *u = ctx;
  for (int64_t o = 0; o < u->outer; o++)
    for (int64_t i = 0; i < u->inner; i++) {
      int c = cmp_elem(u->dtype, u->data, (o * u->n + a) * u->inner + i, u->data, (o * u->n + b) * u->inner + i);
      if (c) return c;
    }
  return 0;
}

static int unique_first_cmp(const void *ctx, int64_t a, int64_t b) {
  const int64_t *first = ctx;
  return (first[a] > first[b]) - (first[a] < first[b]);
}

static int op_unique(gpux__kctx *k) {
  int rc = need_inputs(k, 1);
  if (rc) return rc;
  const gpux_tensor *x = IN(0);
  if ((rc = gpux__need_data(k, 0))) return rc;
  if (x->dtype == GPUX_DT_COMPLEX64 || x->dtype == GPUX_DT_COMPLEX128)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "Unique of %s", gpux_dtype_name(x->dtype));
  int has_axis = gpux__has_attr(k, "axis"), axis = 0, sorted = gpux__attr_int(k, "sorted", 1) != 0;
  unique_view u = {x->dtype, x->data, 1, gpux_tensor_count(x), 1};
  if (has_axis) {
    if (x->ndim < 1) return gpux__kerr(k, GPUX_E_SHAPE, "input must have rank >= 1 with an axis");
    if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), x->ndim, &axis))) return rc;
    u.outer = span(x->dims, 0, axis);
    u.n = x->dims[axis];
    u.inner = span(x->dims, axis + 1, x->ndim);
  }
  if (!x->data && gpux_tensor_count(x) > 0) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "input has no data");
  int64_t n = u.n;
  size_t cap = (size_t)(n ? n : 1);
  int64_t *order = gpux__malloc(cap * sizeof *order), *tmp = gpux__malloc(cap * sizeof *tmp);
  int64_t *group = gpux__malloc(cap * sizeof *group);     /* [n] group of each slice */
  int64_t *first = gpux__malloc(cap * sizeof *first);     /* [groups] first slice of each */
  int64_t *count = gpux__malloc(cap * sizeof *count);     /* [groups] */
  int64_t *pos = gpux__malloc(cap * sizeof *pos);         /* [groups] output position */
  int64_t *out_order = gpux__malloc(cap * sizeof *out_order); /* [groups] group at each position */
  if (!order || !tmp || !group || !first || !count || !pos || !out_order) {
    rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    goto done;
  }
  for (int64_t i = 0; i < n; i++) order[i] = i;
  sort_indices(order, tmp, n, unique_cmp, &u);
  int64_t groups = 0;
  for (int64_t i = 0; i < n; i++) {
    if (i == 0 || unique_cmp(&u, order[i - 1], order[i]) != 0) {
      first[groups] = order[i]; /* the sort is stable: the earliest slice leads its group */
      count[groups++] = 0;
    }
    group[order[i]] = groups - 1;
    count[groups - 1]++;
  }
  for (int64_t g = 0; g < groups; g++) out_order[g] = g;
  if (!sorted) sort_indices(out_order, tmp, groups, unique_first_cmp, first);
  for (int64_t p = 0; p < groups; p++) pos[out_order[p]] = p;

  int64_t dims[GPUX_MAX_DIMS];
  int ndim = has_axis ? x->ndim : 1;
  if (has_axis) memcpy(dims, x->dims, sizeof dims);
  dims[axis] = groups;
  gpux_tensor *y = gpux__out(k, 0, x->dtype, ndim, dims);
  gpux_tensor *yi = y ? gpux__out(k, 1, GPUX_DT_INT64, 1, &groups) : NULL;
  gpux_tensor *yinv = yi ? gpux__out(k, 2, GPUX_DT_INT64, 1, &n) : NULL;
  gpux_tensor *yc = yinv ? gpux__out(k, 3, GPUX_DT_INT64, 1, &groups) : NULL;
  if (!yc) {
    rc = k->status;
    goto done;
  }
  if (k->shape_only) goto done;
  for (int64_t p = 0; p < groups; p++) {
    int64_t g = out_order[p];
    ((int64_t *)yi->data)[p] = first[g];
    ((int64_t *)yc->data)[p] = count[g];
    for (int64_t o = 0; o < u.outer && !rc; o++)
      if (copy_elems(x->dtype, y->data, (o * groups + p) * u.inner, x->data, (o * n + first[g]) * u.inner, u.inner))
        rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
  }
  for (int64_t i = 0; i < n; i++) ((int64_t *)yinv->data)[i] = pos[group[i]];
done:
  free(order);
  free(tmp);
  free(group);
  free(first);
  free(count);
  free(pos);
  free(out_order);
  return rc;
}

/* ---- MaxRoiPool ---- */

static int op_max_roi_pool(gpux__kctx *k) {
  int rc = need_inputs(k, 2);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *rois = IN(1);
  if (!gpux__dtype_is_float(x->dtype) || !gpux__dtype_is_float(rois->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "X and rois must be floating point");
  if (x->ndim != 4) return gpux__kerr(k, GPUX_E_SHAPE, "X must be (N, C, H, W), got rank %d", x->ndim);
  if (rois->ndim != 2 || rois->dims[1] != 5)
    return gpux__kerr(k, GPUX_E_SHAPE, "rois must be (num_rois, 5)");
  const int64_t *ps;
  if (gpux__attr_ints(k, "pooled_shape", &ps) != 2)
    return gpux__kerr(k, GPUX_E_INVALID, "pooled_shape must hold two values");
  if (ps[0] < 1 || ps[1] < 1) return gpux__kerr(k, GPUX_E_INVALID, "pooled_shape must be positive");
  float scale = gpux__attr_float(k, "spatial_scale", 1.0f);
  int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], R = rois->dims[0];
  int64_t PH = ps[0], PW = ps[1], dims[4] = {R, C, PH, PW};
  gpux_tensor *y = gpux__out(k, 0, x->dtype, 4, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;

  for (int64_t r = 0; r < R; r++) {
    double roi[5];
    for (int j = 0; j < 5; j++) roi[j] = gpux__load_f64(rois->dtype, rois->data, r * 5 + j);
    if (!(roi[0] >= 0 && roi[0] < (double)N))
      return gpux__kerr(k, GPUX_E_INVALID, "roi %lld has batch index %g outside [0, %lld)", (long long)r, roi[0],
                        (long long)N);
    int64_t n = (int64_t)roi[0];
    int64_t w0 = (int64_t)round(roi[1] * scale), h0 = (int64_t)round(roi[2] * scale);
    int64_t w1 = (int64_t)round(roi[3] * scale), h1 = (int64_t)round(roi[4] * scale);
    double bin_h = (double)GPUX__MAX(h1 - h0 + 1, 1) / (double)PH;
    double bin_w = (double)GPUX__MAX(w1 - w0 + 1, 1) / (double)PW;
    for (int64_t c = 0; c < C; c++) {
      int64_t plane = (n * C + c) * H * W;
      for (int64_t ph = 0; ph < PH; ph++)
        for (int64_t pw = 0; pw < PW; pw++) {
          int64_t hs = GPUX__MIN(GPUX__MAX((int64_t)floor((double)ph * bin_h) + h0, 0), H);
          int64_t he = GPUX__MIN(GPUX__MAX((int64_t)ceil((double)(ph + 1) * bin_h) + h0, 0), H);
          int64_t ws = GPUX__MIN(GPUX__MAX((int64_t)floor((double)pw * bin_w) + w0, 0), W);
          int64_t we = GPUX__MIN(GPUX__MAX((int64_t)ceil((double)(pw + 1) * bin_w) + w0, 0), W);
          double m = he <= hs || we <= ws ? 0.0 : -DBL_MAX;
          for (int64_t h = hs; h < he; h++)
            for (int64_t w = ws; w < we; w++) {
              double v = x->dtype == GPUX_DT_FLOAT ? ((const float *)x->data)[plane + h * W + w]
                                                   : gpux__load_f64(x->dtype, x->data, plane + h * W + w);
              if (v > m) m = v;
            }
          gpux__store_f64(x->dtype, y->data, ((r * C + c) * PH + ph) * PW + pw, m);
        }
    }
  }
  return 0;
}

/* ---- TfIdfVectorizer ---- */

/* One n-gram of the pool: n items starting at `off` in the pool's ids. */
typedef struct {
  int64_t n, off;
  int64_t order;   /* position among all n-grams of the pool; later ones win over equal earlier */
  int64_t column;  /* output column (ngram_indexes[order]) */
} tfidf_gram;

typedef struct {
  const int64_t *ids;   /* pool items as ids */
  const tfidf_gram *grams;
} tfidf_pool;

static int tfidf_gram_cmp(const void *ctx, int64_t a, int64_t b) {
  const tfidf_pool *p = ctx;
  const tfidf_gram *x = &p->grams[a], *y = &p->grams[b];
  if (x->n != y->n) return (x->n > y->n) - (x->n < y->n);
  for (int64_t j = 0; j < x->n; j++) {
    int64_t u = p->ids[x->off + j], v = p->ids[y->off + j];
    if (u != v) return (u > v) - (u < v);
  }
  return (x->order > y->order) - (x->order < y->order);
}

typedef struct {
  const char *const *strs;
} string_list;

static int string_list_cmp(const void *ctx, int64_t a, int64_t b) {
  const string_list *l = ctx;
  int c = strcmp(l->strs[a], l->strs[b]);
  return (c > 0) - (c < 0);
}

/* Finds the n-gram of size n made of items[0], items[skip], ... among the sorted grams; returns
 * its output column or -1. */
static int64_t tfidf_find(const tfidf_pool *p, const int64_t *sorted, int64_t n_grams, int64_t n,
                          const int64_t *items, int64_t skip) {
  int64_t lo = 0, hi = n_grams; /* first gram > the probe (ties broken towards the last) */
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2, c = 0;
    const tfidf_gram *g = &p->grams[sorted[mid]];
    if (g->n != n) c = g->n > n ? 1 : -1;
    for (int64_t j = 0; !c && j < n; j++) {
      int64_t u = p->ids[g->off + j], v = items[j * skip];
      if (u != v) c = u > v ? 1 : -1;
    }
    if (c > 0) hi = mid;
    else lo = mid + 1;
  }
  if (lo == 0) return -1;
  const tfidf_gram *g = &p->grams[sorted[lo - 1]];
  if (g->n != n) return -1;
  for (int64_t j = 0; j < n; j++)
    if (p->ids[g->off + j] != items[j * skip]) return -1;
  return g->column;
}

static int op_tfidf(gpux__kctx *k) {
  int rc = need_inputs(k, 1);
  if (rc) return rc;
  const gpux_tensor *x = IN(0);
  int str = x->dtype == GPUX_DT_STRING;
  if (!str && x->dtype != GPUX_DT_INT32 && x->dtype != GPUX_DT_INT64)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input must be string, int32 or int64, got %s",
                      gpux_dtype_name(x->dtype));
  if (x->ndim > 2) return gpux__kerr(k, GPUX_E_SHAPE, "input must be [C] or [N, C], got rank %d", x->ndim);
  int64_t min_n = gpux__attr_int(k, "min_gram_length", 0), max_n = gpux__attr_int(k, "max_gram_length", 0);
  int64_t max_skip = gpux__attr_int(k, "max_skip_count", 0);
  const char *mode_s = gpux__attr_string(k, "mode", "");
  int mode = !strcmp(mode_s, "TF") ? 1 : !strcmp(mode_s, "IDF") ? 2 : !strcmp(mode_s, "TFIDF") ? 3 : 0;
  if (!mode) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "mode '%s' is not TF, IDF or TFIDF", mode_s);
  if (min_n < 1 || max_n < min_n || max_skip < 0)
    return gpux__kerr(k, GPUX_E_INVALID, "need 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0");
  const int64_t *counts, *indexes, *pool_i = NULL;
  const float *weights;
  const char *const *pool_s = NULL;
  int n_counts = gpux__attr_ints(k, "ngram_counts", &counts);
  int n_indexes = gpux__attr_ints(k, "ngram_indexes", &indexes);
  int n_weights = gpux__attr_floats(k, "weights", &weights);
  int n_pool = str ? gpux__attr_strings(k, "pool_strings", &pool_s) : gpux__attr_ints(k, "pool_int64s", &pool_i);
  if (n_indexes < 1) return gpux__kerr(k, GPUX_E_INVALID, "ngram_indexes is required");
  int64_t out_size = 0;
  for (int i = 0; i < n_indexes; i++) {
    if (indexes[i] < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative ngram_indexes value");
    out_size = GPUX__MAX(out_size, indexes[i] + 1);
  }
  if (n_weights && n_weights < out_size)
    return gpux__kerr(k, GPUX_E_INVALID, "weights has %d values for %lld outputs", n_weights, (long long)out_size);
  int64_t rows = x->ndim == 2 ? x->dims[0] : 1, C = x->ndim == 0 ? 1 : x->dims[x->ndim - 1];
  int64_t dims[2] = {rows, out_size};
  gpux_tensor *y = x->ndim == 2 ? gpux__out(k, 0, GPUX_DT_FLOAT, 2, dims) : gpux__out(k, 0, GPUX_DT_FLOAT, 1, &out_size);
  if (!y) return k->status;
  if (k->shape_only) return 0;

  size_t pcap = (size_t)(n_pool ? n_pool : 1), xcap = (size_t)GPUX__MAX(rows * C, 1);
  int64_t *ids = gpux__malloc(pcap * sizeof *ids);         /* [n_pool] pool items as ids */
  int64_t *sorted = gpux__malloc(pcap * sizeof *sorted);   /* [n_pool] */
  int64_t *tmp = gpux__malloc(pcap * sizeof *tmp);         /* [n_pool] */
  tfidf_gram *grams = gpux__malloc(pcap * sizeof *grams);  /* [n_grams] */
  int64_t *items = gpux__malloc(xcap * sizeof *items);     /* (rows, C) input items as ids */
  int64_t *freq = gpux__calloc((size_t)GPUX__MAX(rows * out_size, 1), sizeof *freq);
  if (!ids || !sorted || !tmp || !grams || !items || !freq) {
    rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    goto done;
  }
  /* items as ids: int64 values as they are; strings as their rank among the pool's distinct
   * strings, -1 when absent from the pool */
  string_list sl = {pool_s};
  if (str) {
    for (int i = 0; i < n_pool; i++) sorted[i] = i;
    sort_indices(sorted, tmp, n_pool, string_list_cmp, &sl);
    for (int i = 0; i < n_pool; i++)
      ids[sorted[i]] = i > 0 && !strcmp(pool_s[sorted[i]], pool_s[sorted[i - 1]]) ? ids[sorted[i - 1]] : i;
    for (int64_t i = 0; i < rows * C; i++) {
      const char *s = ((char *const *)x->data)[i];
      int64_t lo = 0, hi = n_pool;
      if (!s) s = "";
      while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (strcmp(pool_s[sorted[mid]], s) < 0) lo = mid + 1;
        else hi = mid;
      }
      items[i] = lo < n_pool && !strcmp(pool_s[sorted[lo]], s) ? ids[sorted[lo]] : -1;
    }
  } else {
    for (int i = 0; i < n_pool; i++) ids[i] = pool_i[i];
    for (int64_t i = 0; i < rows * C; i++) items[i] = index_at(x, i);
  }
  /* the pool's n-grams: ngram_counts[i] is where the (i+1)-grams start */
  int64_t n_grams = 0, order = 0;
  for (int i = 0; i < n_counts; i++) {
    int64_t start = counts[i], end = i + 1 < n_counts ? counts[i + 1] : n_pool, n = i + 1;
    if (start < 0 || end < start || end > n_pool) {
      rc = gpux__kerr(k, GPUX_E_INVALID, "ngram_counts are not increasing offsets into the pool");
      goto done;
    }
    for (int64_t g = 0; g < (end - start) / n; g++, order++) {
      if (n < min_n || n > max_n) continue;
      if (order >= n_indexes) {
        rc = gpux__kerr(k, GPUX_E_INVALID, "ngram_indexes has %d values, fewer than the pool's n-grams", n_indexes);
        goto done;
      }
      grams[n_grams++] = (tfidf_gram){n, start + g * n, order, indexes[order]};
    }
  }
  tfidf_pool pool = {ids, grams};
  for (int64_t g = 0; g < n_grams; g++) sorted[g] = g;
  sort_indices(sorted, tmp, n_grams, tfidf_gram_cmp, &pool);

  /* count: for each skip distance, every n-gram start; unigrams only once (skip 1) */
  for (int64_t row = 0; row < rows; row++) {
    const int64_t *it = items + row * C;
    int64_t first_n = min_n;
    for (int64_t skip = 1; skip <= max_skip + 1; skip++) {
      for (int64_t s = 0; s < C; s++)
        for (int64_t n = first_n; n <= max_n && s + (n - 1) * skip < C; n++) {
          int64_t col = tfidf_find(&pool, sorted, n_grams, n, it + s, skip);
          if (col >= 0) freq[row * out_size + col]++;
        }
      if (first_n == 1 && ++first_n > max_n) break;
    }
  }
  float *out = y->data; /* (rows, out_size) */
  for (int64_t row = 0; row < rows; row++)
    for (int64_t c = 0; c < out_size; c++) {
      int64_t f = freq[row * out_size + c];
      float w = n_weights ? weights[c] : 1.0f;
      out[row * out_size + c] = mode == 1 ? (float)f : mode == 2 ? (f > 0 ? w : 0.0f) : w * (float)f;
    }
done:
  free(ids);
  free(sorted);
  free(tmp);
  free(grams);
  free(items);
  free(freq);
  return rc;
}

/* ---- ai.onnx.ml: ArrayFeatureExtractor ---- */

static int op_array_feature_extractor(gpux__kctx *k) {
  int rc = need_inputs(k, 2);
  if (rc) return rc;
  const gpux_tensor *x = IN(0), *ind = IN(1);
  if ((rc = check_index_dtype(k, ind, "indices"))) return rc;
  if (x->ndim < 1) return gpux__kerr(k, GPUX_E_SHAPE, "X must have rank >= 1");
  int64_t n_idx = gpux_tensor_count(ind), last = x->dims[x->ndim - 1], dims[GPUX_MAX_DIMS];
  int ndim = x->ndim == 1 ? 2 : x->ndim;
  if (x->ndim == 1) dims[0] = 1; /* a 1-D X gives (1, n_idx) */
  else memcpy(dims, x->dims, sizeof dims);
  dims[ndim - 1] = n_idx;
  gpux_tensor *y = gpux__out(k, 0, x->dtype, ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t rows = span(x->dims, 0, x->ndim - 1);
  for (int64_t j = 0; j < n_idx; j++) {
    int64_t v = index_at(ind, j);
    if (v < 0 || v >= last)
      return gpux__kerr(k, GPUX_E_INVALID, "index %lld at position %lld is out of range [0, %lld)", (long long)v,
                        (long long)j, (long long)last);
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n_idx; j++)
      if (copy_elems(x->dtype, y->data, r * n_idx + j, x->data, r * last + index_at(ind, j), 1))
        return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
  return 0;
}

/* ---- ai.onnx.ml: Binarizer ---- */

static int op_binarizer(gpux__kctx *k) {
  int rc = need_inputs(k, 1);
  if (rc) return rc;
  const gpux_tensor *x = IN(0);
  if (x->dtype == GPUX_DT_STRING || x->dtype == GPUX_DT_COMPLEX64 || x->dtype == GPUX_DT_COMPLEX128)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "Binarizer of %s", gpux_dtype_name(x->dtype));
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  float t = gpux__attr_float(k, "threshold", 0.0f);
  int64_t n = gpux_tensor_count(x);
  if (x->dtype == GPUX_DT_FLOAT) {
    const float *xf = x->data;
    float *yf = y->data;
    for (int64_t i = 0; i < n; i++) yf[i] = xf[i] > t ? 1.0f : 0.0f;
  } else {
    for (int64_t i = 0; i < n; i++)
      gpux__store_f64(x->dtype, y->data, i, gpux__load_f64(x->dtype, x->data, i) > (double)t ? 1.0 : 0.0);
  }
  return 0;
}

/* ---- ai.onnx.ml: LabelEncoder ---- */

/* Keys or values as one array: an attribute list or a tensor attribute. */
typedef struct {
  int dtype;          /* GPUX_DT_STRING / INT64 / FLOAT for lists, the tensor's dtype otherwise */
  const void *data;   /* [n] */
  int64_t n;
  int present;
} le_list;

static le_list le_pick(const gpux__kctx *k, const char *prefix) {
  char name[32];
  const gpux_tensor *t;
  snprintf(name, sizeof name, "%s_tensor", prefix);
  if ((t = gpux__attr_tensor(k, name)) != NULL) return (le_list){t->dtype, t->data, gpux_tensor_count(t), 1};
  snprintf(name, sizeof name, "%s_strings", prefix);
  if (gpux__has_attr(k, name)) {
    const char *const *s;
    int n = gpux__attr_strings(k, name, &s);
    return (le_list){GPUX_DT_STRING, s, n, 1};
  }
  snprintf(name, sizeof name, "%s_int64s", prefix);
  if (gpux__has_attr(k, name)) {
    const int64_t *v;
    int n = gpux__attr_ints(k, name, &v);
    return (le_list){GPUX_DT_INT64, v, n, 1};
  }
  snprintf(name, sizeof name, "%s_floats", prefix);
  if (gpux__has_attr(k, name)) {
    const float *v;
    int n = gpux__attr_floats(k, name, &v);
    return (le_list){GPUX_DT_FLOAT, v, n, 1};
  }
  return (le_list){0};
}

enum { LE_STRING, LE_INT, LE_FLOAT };

/* How input elements of dtype a meet keys of dtype b. */
static int le_mode(int a, int b) {
  if (a == GPUX_DT_STRING || b == GPUX_DT_STRING) return LE_STRING;
  return gpux__dtype_is_float(a) || gpux__dtype_is_float(b) ? LE_FLOAT : LE_INT;
}

/* Compares element i of (dt_a, a) with element j of (dt_b, b) under mode; NaN equals NaN. */
static int le_cmp(int mode, int dt_a, const void *a, int64_t i, int dt_b, const void *b, int64_t j) {
  if (mode == LE_STRING) {
    const char *x = ((char *const *)a)[i], *y = ((char *const *)b)[j];
    int c = strcmp(x ? x : "", y ? y : "");
    return (c > 0) - (c < 0);
  }
  if (mode == LE_INT) {
    int64_t x = gpux__load_i64(dt_a, a, i), y = gpux__load_i64(dt_b, b, j);
    return (x > y) - (x < y);
  }
  double x = gpux__load_f64(dt_a, a, i), y = gpux__load_f64(dt_b, b, j);
  if (isnan(x) || isnan(y)) return isnan(x) - isnan(y);
  return (x > y) - (x < y);
}

typedef struct {
  int mode;
  const le_list *keys;
} le_sort_ctx;

static int le_key_cmp(const void *ctx, int64_t a, int64_t b) {
  const le_sort_ctx *c = ctx;
  return le_cmp(c->mode, c->keys->dtype, c->keys->data, a, c->keys->dtype, c->keys->data, b);
}

/* Stores value j of vals (or the default when j < 0) as element i of y. */
static int le_store(gpux_tensor *y, int64_t i, const le_list *vals, int64_t j, const void *dflt) {
  if (j < 0) {
    if (y->dtype == GPUX_DT_STRING) {
      const char *const *d = dflt;
      return copy_elems(GPUX_DT_STRING, y->data, i, d, 0, 1);
    }
    copy_elem((char *)y->data + (size_t)i * gpux_dtype_size(y->dtype), dflt, gpux_dtype_size(y->dtype));
    return 0;
  }
  if (vals->dtype == y->dtype) return copy_elems(y->dtype, y->data, i, vals->data, j, 1);
  if (gpux__dtype_is_float(vals->dtype)) gpux__store_f64(y->dtype, y->data, i, gpux__load_f64(vals->dtype, vals->data, j));
  else gpux__store_i64(y->dtype, y->data, i, gpux__load_i64(vals->dtype, vals->data, j));
  return 0;
}

/* LabelEncoder-1: classes_strings maps strings to their position and positions back to strings. */
static int label_encoder_v1(gpux__kctx *k, const gpux_tensor *x) {
  const char *const *classes;
  int n = gpux__attr_strings(k, "classes_strings", &classes);
  int to_int = x->dtype == GPUX_DT_STRING;
  if (!to_int && x->dtype != GPUX_DT_INT64 && x->dtype != GPUX_DT_INT32)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input must be string or int64, got %s", gpux_dtype_name(x->dtype));
  gpux_tensor *y = gpux__out(k, 0, to_int ? GPUX_DT_INT64 : GPUX_DT_STRING, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t count = gpux_tensor_count(x), dflt_i = gpux__attr_int(k, "default_int64", -1);
  const char *dflt_s = gpux__attr_string(k, "default_string", "_Unused");
  for (int64_t i = 0; i < count; i++) {
    if (to_int) {
      const char *s = ((char *const *)x->data)[i];
      int64_t v = dflt_i;
      for (int j = 0; j < n; j++)
        if (!strcmp(classes[j], s ? s : "")) v = j;
      ((int64_t *)y->data)[i] = v;
    } else {
      int64_t v = gpux__load_i64(x->dtype, x->data, i);
      const char *s = v >= 0 && v < n ? classes[v] : dflt_s;
      if (copy_elems(GPUX_DT_STRING, y->data, i, &s, 0, 1)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    }
  }
  return 0;
}

static int op_label_encoder(gpux__kctx *k) {
  int rc = need_inputs(k, 1);
  if (rc) return rc;
  const gpux_tensor *x = IN(0);
  le_list keys = le_pick(k, "keys"), vals = le_pick(k, "values");
  if (!keys.present && gpux__has_attr(k, "classes_strings")) return label_encoder_v1(k, x);
  if (!keys.present || !vals.present) return gpux__kerr(k, GPUX_E_INVALID, "needs one keys_* and one values_* attribute");
  if (keys.n != vals.n)
    return gpux__kerr(k, GPUX_E_INVALID, "%lld keys but %lld values", (long long)keys.n, (long long)vals.n);
  if ((x->dtype == GPUX_DT_STRING) != (keys.dtype == GPUX_DT_STRING))
    return gpux__kerr(k, GPUX_E_DTYPE, "input is %s but keys are %s", gpux_dtype_name(x->dtype),
                      gpux_dtype_name(keys.dtype));
  int ydt = vals.dtype;
  if (!gpux_dtype_size(ydt) || ydt == GPUX_DT_COMPLEX64 || ydt == GPUX_DT_COMPLEX128 ||
      x->dtype == GPUX_DT_COMPLEX64 || x->dtype == GPUX_DT_COMPLEX128)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "LabelEncoder from %s to %s", gpux_dtype_name(x->dtype),
                      gpux_dtype_name(ydt));
  gpux_tensor *y = gpux__out(k, 0, ydt, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;

  /* the default, held as one element of the output dtype */
  union { char *s; double d; int64_t i; unsigned char b[16]; } dflt;
  memset(&dflt, 0, sizeof dflt);
  const gpux_tensor *dt = gpux__attr_tensor(k, "default_tensor");
  if (dt) {
    if (gpux_tensor_count(dt) != 1) return gpux__kerr(k, GPUX_E_INVALID, "default_tensor must hold one value");
    if ((dt->dtype == GPUX_DT_STRING) != (ydt == GPUX_DT_STRING))
      return gpux__kerr(k, GPUX_E_DTYPE, "default_tensor is %s, values are %s", gpux_dtype_name(dt->dtype),
                        gpux_dtype_name(ydt));
    if (ydt == GPUX_DT_STRING) dflt.s = ((char *const *)dt->data)[0];
    else if (gpux__dtype_is_float(dt->dtype)) gpux__store_f64(ydt, dflt.b, 0, gpux__load_f64(dt->dtype, dt->data, 0));
    else gpux__store_i64(ydt, dflt.b, 0, gpux__load_i64(dt->dtype, dt->data, 0));
  } else if (ydt == GPUX_DT_STRING) {
    dflt.s = (char *)gpux__attr_string(k, "default_string", "_Unused");
  } else if (gpux__dtype_is_float(ydt)) {
    gpux__store_f64(ydt, dflt.b, 0, gpux__attr_float(k, "default_float", -0.0f));
  } else {
    gpux__store_i64(ydt, dflt.b, 0, gpux__attr_int(k, "default_int64", -1));
  }
  const void *dflt_p = ydt == GPUX_DT_STRING ? (const void *)&dflt.s : (const void *)dflt.b;

  int mode = le_mode(x->dtype, keys.dtype);
  size_t cap = (size_t)(keys.n ? keys.n : 1);
  int64_t *sorted = gpux__malloc(cap * sizeof *sorted), *tmp = gpux__malloc(cap * sizeof *tmp);
  if (!sorted || !tmp) {
    rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    goto done;
  }
  for (int64_t j = 0; j < keys.n; j++) sorted[j] = j;
  le_sort_ctx sc = {mode, &keys};
  sort_indices(sorted, tmp, keys.n, le_key_cmp, &sc); /* stable: equal keys stay in order */
  int64_t count = gpux_tensor_count(x);
  for (int64_t i = 0; i < count && !rc; i++) {
    int64_t lo = 0, hi = keys.n; /* first key above x; the one before it is the last equal key */
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      if (le_cmp(mode, keys.dtype, keys.data, sorted[mid], x->dtype, x->data, i) > 0) hi = mid;
      else lo = mid + 1;
    }
    int64_t j = lo > 0 && !le_cmp(mode, keys.dtype, keys.data, sorted[lo - 1], x->dtype, x->data, i) ? sorted[lo - 1] : -1;
    if (le_store(y, i, &vals, j, dflt_p)) rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
done:
  free(sorted);
  free(tmp);
  return rc;
}

const gpux__op_def gpux__ops_index[] = {
  {"", "Gather", op_gather, 1, 0},
  {"", "GatherElements", op_gather_elements, 11, 0},
  {"", "GatherND", op_gather_nd, 11, 0},
  {"", "Scatter", op_scatter_elements, 9, 11},
  {"", "ScatterElements", op_scatter_elements, 11, 0},
  {"", "ScatterND", op_scatter_nd, 11, 0},
  {"", "TensorScatter", op_tensor_scatter, 24, 0},
  {"", "OneHot", op_one_hot, 9, 0},
  {"", "NonZero", op_nonzero, 9, 0},
  {"", "Compress", op_compress, 9, 0},
  {"", "Unique", op_unique, 11, 0},
  {"", "MaxRoiPool", op_max_roi_pool, 1, 0},
  {"", "TfIdfVectorizer", op_tfidf, 9, 0},
  {"ai.onnx.ml", "ArrayFeatureExtractor", op_array_feature_extractor, 1, 0},
  {"ai.onnx.ml", "Binarizer", op_binarizer, 1, 0},
  {"ai.onnx.ml", "LabelEncoder", op_label_encoder, 1, 0},
  {0},
};
