/* shape.c — operators that move data without computing on it: Reshape, Flatten, Squeeze,
 * Unsqueeze, Transpose, Concat, Split, Slice, Expand, Tile, Pad, DepthToSpace, SpaceToDepth,
 * Shape, Size, Identity, Dropout, Trilu, CenterCropPad and ReverseSequence.
 *
 * Almost all of them are one "box copy": an n-D block of elements read with one set of strides
 * and written with another (strides 0 to broadcast, negative to reverse). copy_box merges the
 * dims that are contiguous in both, moves whole rows with memcpy, transposes in cache-sized tiles
 * when the innermost output dim is strided in the source (4-byte elements 16 x 16 in AVX-512
 * registers where the CPU has them), and spreads rows over the thread pool.
 * Elements are moved as raw bytes, so every dtype works; string tensors get their pointers copied
 * and then duplicated (own_strings) so that the output owns its strings. */
#include "ops/op.h"
#include <stdatomic.h>
#include <time.h>

#define MAXR (2 * GPUX_MAX_DIMS) /* rank of the views used here (Tile doubles the rank) */

/* ---- box copies: the engine under every op in this file ---- */

typedef struct {
  size_t es;                  /* element size in bytes */
  int nd;                     /* rank after merging, >= 1 */
  int64_t dims[MAXR];
  int64_t ds[MAXR], ss[MAXR]; /* destination / source strides, in elements */
  char *dst;
  const char *src;
  int tp;                     /* tiled transpose: the dim whose source stride is 1, else -1 */
  int64_t tile;               /* tile edge in elements: one 64-byte cache line (8 at least) */
  int64_t ntiles;             /* tiles along dim tp */
} box_copy;

#define COPY_RUN(T)                                                   \
  for (int64_t i = 0; i < n; i++) memcpy(dst + i * dstep, src + i * sstep, T)

/* n elements from src (every ss elements) to dst (every ds elements). */
static void copy_run(size_t es, char *dst, int64_t ds, const char *src, int64_t ss, int64_t n) {
  if (ds == 1 && ss == 1) {
    memcpy(dst, src, (size_t)n * es);
    return;
  }
  ptrdiff_t dstep = (ptrdiff_t)(ds * (int64_t)es), sstep = (ptrdiff_t)(ss * (int64_t)es);
  switch (es) {
  case 1: COPY_RUN(1); break;
  case 2: COPY_RUN(2); break;
  case 4: COPY_RUN(4); break;
  case 8: COPY_RUN(8); break;
  case 16: COPY_RUN(16); break;
  default: COPY_RUN(es); break;
  }
}

/* Rows [begin, end) of the box: every index of dims[0..nd-2], each moving dims[nd-1] elements. */
static void copy_rows(void *ctx, int64_t begin, int64_t end) {
  const box_copy *b = ctx;
  int last = b->nd - 1;
  int64_t idx[MAXR], doff = 0, soff = 0, r = begin;
  for (int d = last - 1; d >= 0; d--) {
    idx[d] = r % b->dims[d];
    r /= b->dims[d];
    doff += idx[d] * b->ds[d];
    soff += idx[d] * b->ss[d];
  }
  int64_t es = (int64_t)b->es;
  for (int64_t row = begin; row < end; row++) {
    copy_run(b->es, b->dst + doff * es, b->ds[last], b->src + soff * es, b->ss[last], b->dims[last]);
    for (int d = last - 1; d >= 0; d--) {
      doff += b->ds[d];
      soff += b->ss[d];
      if (++idx[d] < b->dims[d]) break;
      doff -= b->dims[d] * b->ds[d];
      soff -= b->dims[d] * b->ss[d];
      idx[d] = 0;
    }
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include "ops/transpose16.h"
#define TILE16 1
/* A tile of 4-byte elements, ni x nj of at most 16 x 16: dst[i * dstride + j] = src[i + j *
 * sstride], in registers (16 loads, one transpose, 16 stores) instead of element by element. */
__attribute__((target("avx512f"))) static void tile16(float *dst, int64_t dstride, const float *src, int64_t sstride,
                                                      int64_t ni, int64_t nj) {
  __m512 v[16];
  __mmask16 mi = gpux__lanes16(ni), mj = gpux__lanes16(nj);
  for (int j = 0; j < 16; j++) v[j] = j < nj ? _mm512_maskz_loadu_ps(mi, src + j * sstride) : _mm512_setzero_ps();
  gpux__transpose16(v);
  for (int i = 0; i < ni; i++) _mm512_mask_storeu_ps(dst + i * dstride, mj, v[i]);
}
#else
#define TILE16 0
#endif

/* Items [begin, end) of a tiled transpose: item = (index over the dims other than tp and the
 * last) * ntiles + tile along tp. A tile is `tile` x `tile` elements: one cache line of each of
 * `tile` source rows (contiguous along tp) goes to one cache line of each of `tile` output rows. */
static void copy_tiles(void *ctx, int64_t begin, int64_t end) {
  const box_copy *b = ctx;
  int last = b->nd - 1, p = b->tp;
  int64_t es = (int64_t)b->es, n_last = b->dims[last];
  for (int64_t item = begin; item < end; item++) {
    int64_t o = item / b->ntiles, t = item % b->ntiles, doff = 0, soff = 0;
    for (int d = last - 1; d >= 0; d--) {
      if (d == p) continue;
      int64_t i = o % b->dims[d];
      o /= b->dims[d];
      doff += i * b->ds[d];
      soff += i * b->ss[d];
    }
    int64_t i0 = t * b->tile, i1 = GPUX__MIN(i0 + b->tile, b->dims[p]);
#if TILE16
    if (es == 4 && b->tile == 16 && gpux__have_avx512f()) { /* source stride 1 along tp, output along last */
      for (int64_t j0 = 0; j0 < n_last; j0 += 16)
        tile16((float *)b->dst + doff + i0 * b->ds[p] + j0, b->ds[p],
               (const float *)b->src + soff + i0 + j0 * b->ss[last], b->ss[last], i1 - i0, GPUX__MIN(16, n_last - j0));
      continue;
    }
#endif
    for (int64_t j0 = 0; j0 < n_last; j0 += b->tile) {
      int64_t nj = GPUX__MIN(j0 + b->tile, n_last) - j0;
      for (int64_t i = i0; i < i1; i++)
        copy_run(b->es, b->dst + (doff + i * b->ds[p] + j0) * es, 1,
                 b->src + (soff + i * b->ss[p] + j0 * b->ss[last]) * es, b->ss[last], nj);
    }
  }
}

/* Copies the box dims[nd] from src (strides ss) to dst (strides ds); strides in elements. */
static void copy_box(size_t es, int nd, const int64_t *dims, void *dst, const int64_t *ds,
                     const void *src, const int64_t *ss) {
  box_copy b = {.es = es, .dst = dst, .src = src, .tp = -1};
  int n = 0;
  for (int d = 0; d < nd; d++) {
    if (dims[d] == 0) return;
    if (dims[d] == 1) continue;
    if (n > 0 && b.ds[n - 1] == ds[d] * dims[d] && b.ss[n - 1] == ss[d] * dims[d]) {
      b.dims[n - 1] *= dims[d]; /* contiguous with the dim before in both: merge */
      b.ds[n - 1] = ds[d];
      b.ss[n - 1] = ss[d];
    } else {
      b.dims[n] = dims[d];
      b.ds[n] = ds[d];
      b.ss[n] = ss[d];
      n++;
    }
  }
  if (n == 0) { /* a single element */
    b.dims[0] = 1;
    b.ds[0] = b.ss[0] = 1;
    n = 1;
  }
  b.nd = n;
  int last = n - 1;
  int64_t total = gpux__shape_count(n, b.dims), inner = b.dims[last];
  if (n >= 2 && b.ds[last] == 1 && b.ss[last] != 1 && inner >= 4) {
    for (int d = 0; d < last; d++)
      if (b.ss[d] == 1 && b.dims[d] >= 4) b.tp = d;
  }
  if (b.tp >= 0) {
    b.tile = GPUX__MAX(8, 64 / (int64_t)es);
    b.ntiles = (b.dims[b.tp] + b.tile - 1) / b.tile;
    int64_t items = total / inner / b.dims[b.tp] * b.ntiles;
    gpux__parallel_for(items, GPUX__MAX(1, 32768 / (b.tile * inner)), copy_tiles, &b);
  } else {
    gpux__parallel_for(total / inner, GPUX__MAX(1, 32768 / inner), copy_rows, &b);
  }
}

/* After raw pointer copies into a string tensor, gives every element its own copy (NULL
 * elements become ""), so that the output owns its strings. */
static int own_strings(gpux__kctx *k, gpux_tensor *t) {
  if (t->dtype != GPUX_DT_STRING || !t->data) return 0;
  char **p = t->data;
  int64_t n = gpux_tensor_count(t);
  for (int64_t i = 0; i < n; i++) {
    p[i] = gpux__strdup(p[i] ? p[i] : "");
    if (!p[i]) {
      for (int64_t j = i + 1; j < n; j++) p[j] = NULL; /* still borrowed: not ours to free */
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory copying strings");
    }
  }
  return 0;
}

/* Copies all of src's elements into y (same count), row-major. */
static int copy_all(gpux__kctx *k, gpux_tensor *y, const gpux_tensor *x) {
  int64_t n = gpux_tensor_count(x);
  if (n > 0) memcpy(y->data, x->data, (size_t)n * gpux_dtype_size(x->dtype));
  return own_strings(k, y);
}

/* Fills n elements at dst with the es-byte pattern at val (doubling memcpy). */
static void fill_elems(char *dst, const void *val, size_t es, int64_t n) {
  if (n <= 0) return;
  memcpy(dst, val, es);
  size_t done = es, total = (size_t)n * es;
  while (done < total) {
    size_t c = GPUX__MIN(done, total - done);
    memcpy(dst + done, dst, c);
    done += c;
  }
}

/* ---- inputs ---- */

/* Numeric dtypes: those gpux__load_f64/store_f64 handle. */
static int numeric(int dt) {
  return gpux__dtype_is_float(dt) || gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt);
}

/* Input i as a tensor, or NULL with an error when it is missing or not a tensor. */
static const gpux_tensor *tensor_in(gpux__kctx *k, int i) {
  const gpux_tensor *t = IN(i);
  if (!t) {
    gpux__kerr(k, GPUX_E_INVALID, "input %d is missing", i);
    return NULL;
  }
  if (t->kind != GPUX_KIND_TENSOR) {
    gpux__kerr(k, GPUX_E_INVALID, "input %d is not a tensor", i);
    return NULL;
  }
  if (!gpux_dtype_size(t->dtype)) {
    gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input %d has unsupported data type %d", i, t->dtype);
    return NULL;
  }
  return t;
}

/* Reads integer input i (1-D or scalar) into vals; the values decide output shapes, so they are
 * needed in shape_only mode too. Returns the count (0 when the input is omitted) or an error. */
static int ints_in(gpux__kctx *k, int i, int64_t *vals, int cap) {
  const gpux_tensor *t = IN(i);
  if (!t) return 0;
  if (t->kind != GPUX_KIND_TENSOR ||
      !(gpux__dtype_is_signed_int(t->dtype) || gpux__dtype_is_unsigned_int(t->dtype)))
    return gpux__kerr(k, GPUX_E_DTYPE, "input %d must be an integer tensor, got %s", i,
                      gpux_dtype_name(t->dtype));
  int rc = gpux__need_data(k, i);
  if (rc) return rc;
  return gpux__read_ints(k, t, vals, cap);
}

/* Integer list from attribute `name` into vals; returns the count or an error. */
static int ints_attr(gpux__kctx *k, const char *name, int64_t *vals, int cap) {
  const int64_t *a;
  int n = gpux__attr_ints(k, name, &a);
  if (n > cap) return gpux__kerr(k, GPUX_E_INVALID, "attribute %s has %d values, at most %d", name, n, cap);
  for (int i = 0; i < n; i++) vals[i] = a[i];
  return n;
}

/* Normalizes n axes against rank into out[], rejecting duplicates. */
static int norm_axes(gpux__kctx *k, const int64_t *axes, int n, int rank, int *out) {
  int seen[MAXR] = {0};
  for (int i = 0; i < n; i++) {
    int rc = gpux__axis(k, axes[i], rank, &out[i]);
    if (rc) return rc;
    if (rank == 0 || seen[out[i]]) return gpux__kerr(k, GPUX_E_INVALID, "axis %lld repeated or out of range", (long long)axes[i]);
    seen[out[i]] = 1;
  }
  return 0;
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze: same data, new shape ---- */

/* Output 0 becomes x's data under the shape dims[nd]. */
static int reshaped(gpux__kctx *k, const gpux_tensor *x, int nd, const int64_t *dims) {
  if (gpux__shape_count(nd, dims) != gpux_tensor_count(x))
    return gpux__kerr(k, GPUX_E_SHAPE, "cannot give %lld elements a shape of %lld",
                      (long long)gpux_tensor_count(x), (long long)gpux__shape_count(nd, dims));
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, nd, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  return copy_all(k, y, x);
}

static int op_reshape(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int64_t shape[GPUX_MAX_DIMS], dims[GPUX_MAX_DIMS];
  int n = k->opset < 5 ? ints_attr(k, "shape", shape, GPUX_MAX_DIMS) : ints_in(k, 1, shape, GPUX_MAX_DIMS);
  if (n < 0) return n;
  if (k->opset >= 5 && !IN(1)) return gpux__kerr(k, GPUX_E_INVALID, "the shape input is missing");
  int allowzero = (int)gpux__attr_int(k, "allowzero", 0), infer = -1;
  int64_t known = 1, total = gpux_tensor_count(x);
  for (int i = 0; i < n; i++) {
    int64_t v = shape[i];
    if (v == 0 && !allowzero) {
      if (i >= x->ndim) return gpux__kerr(k, GPUX_E_SHAPE, "shape[%d] = 0 copies a dimension the input (rank %d) lacks", i, x->ndim);
      v = x->dims[i];
    }
    if (v == -1) {
      if (infer >= 0) return gpux__kerr(k, GPUX_E_SHAPE, "more than one -1 in the shape");
      infer = i;
      continue;
    }
    if (v < 0) return gpux__kerr(k, GPUX_E_SHAPE, "invalid dimension %lld in the shape", (long long)v);
    if (v && known > INT64_MAX / v) return gpux__kerr(k, GPUX_E_SHAPE, "the shape's element count overflows");
    dims[i] = v;
    known *= v;
  }
  if (infer >= 0) {
    if (known == 0) {
      if (total != 0) return gpux__kerr(k, GPUX_E_SHAPE, "cannot infer -1: the other dimensions hold 0 elements");
      dims[infer] = 0;
    } else {
      if (total % known) return gpux__kerr(k, GPUX_E_SHAPE, "cannot reshape %lld elements with -1 and %lld", (long long)total, (long long)known);
      dims[infer] = total / known;
    }
  }
  return reshaped(k, x, n, dims);
}

static int op_flatten(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int64_t axis = gpux__attr_int(k, "axis", 1);
  if (axis < -x->ndim || axis > x->ndim)
    return gpux__kerr(k, GPUX_E_INVALID, "axis %lld out of range for rank %d", (long long)axis, x->ndim);
  if (axis < 0) axis += x->ndim;
  int64_t dims[2] = {gpux__shape_count((int)axis, x->dims),
                     gpux__shape_count(x->ndim - (int)axis, x->dims + axis)};
  return reshaped(k, x, 2, dims);
}

static int op_squeeze(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int64_t axes[MAXR];
  int n = k->opset < 13 ? ints_attr(k, "axes", axes, MAXR) : ints_in(k, 1, axes, MAXR);
  if (n < 0) return n;
  int drop[MAXR] = {0}, ax[MAXR];
  if (n == 0) { /* no axes: every dimension of size 1 */
    for (int d = 0; d < x->ndim; d++) drop[d] = x->dims[d] == 1;
  } else {
    int rc = norm_axes(k, axes, n, x->ndim, ax);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
      if (x->dims[ax[i]] != 1)
        return gpux__kerr(k, GPUX_E_SHAPE, "cannot squeeze axis %d of size %lld", ax[i], (long long)x->dims[ax[i]]);
      drop[ax[i]] = 1;
    }
  }
  int64_t dims[GPUX_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < x->ndim; d++)
    if (!drop[d]) dims[nd++] = x->dims[d];
  return reshaped(k, x, nd, dims);
}

static int op_unsqueeze(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int64_t axes[MAXR];
  int n = k->opset < 13 ? ints_attr(k, "axes", axes, MAXR) : ints_in(k, 1, axes, MAXR);
  if (n < 0) return n;
  int rank = x->ndim + n, ax[MAXR], added[MAXR] = {0};
  if (rank > GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "output rank %d above %d", rank, GPUX_MAX_DIMS);
  int rc = norm_axes(k, axes, n, rank, ax);
  if (rc) return rc;
  for (int i = 0; i < n; i++) added[ax[i]] = 1;
  int64_t dims[GPUX_MAX_DIMS];
  for (int d = 0, j = 0; d < rank; d++) dims[d] = added[d] ? 1 : x->dims[j++];
  return reshaped(k, x, rank, dims);
}

/* ---- Transpose ---- */

static int op_transpose(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int r = x->ndim, perm[GPUX_MAX_DIMS], used[GPUX_MAX_DIMS] = {0};
  const int64_t *p;
  int n = gpux__attr_ints(k, "perm", &p);
  if (n && n != r) return gpux__kerr(k, GPUX_E_INVALID, "perm has %d entries for rank %d", n, r);
  for (int i = 0; i < r; i++) {
    int64_t v = n ? p[i] : r - 1 - i;
    if (v < 0 || v >= r || used[v]) return gpux__kerr(k, GPUX_E_INVALID, "perm is not a permutation of 0..%d", r - 1);
    used[v] = 1;
    perm[i] = (int)v;
  }
  int64_t dims[GPUX_MAX_DIMS], xs[GPUX_MAX_DIMS], ss[GPUX_MAX_DIMS], ys[GPUX_MAX_DIMS];
  for (int i = 0; i < r; i++) dims[i] = x->dims[perm[i]];
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, r, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  gpux__strides(r, x->dims, xs);
  gpux__strides(r, dims, ys);
  for (int i = 0; i < r; i++) ss[i] = xs[perm[i]];
  copy_box(gpux_dtype_size(x->dtype), r, dims, y->data, ys, x->data, ss);
  return own_strings(k, y);
}

/* ---- Concat, Split ---- */

static int op_concat(gpux__kctx *k) {
  if (k->n_in < 1) return gpux__kerr(k, GPUX_E_INVALID, "no inputs");
  int ref = 0;
  for (int i = 0; i < k->n_in; i++) {
    if (!tensor_in(k, i)) return k->status;
    if (IN(i)->dtype != IN(0)->dtype)
      return gpux__kerr(k, GPUX_E_DTYPE, "input %d is %s, input 0 is %s", i, gpux_dtype_name(IN(i)->dtype), gpux_dtype_name(IN(0)->dtype));
  }
  /* the shape reference: the first input that holds elements (empty ones of another rank are
   * skipped, as exporters emit them) */
  for (int i = 0; i < k->n_in; i++)
    if (gpux_tensor_count(IN(i)) > 0) { ref = i; break; }
  const gpux_tensor *x0 = IN(ref);
  int r = x0->ndim, axis;
  if (r == 0) return gpux__kerr(k, GPUX_E_SHAPE, "cannot concatenate scalars");
  int rc = gpux__axis(k, gpux__attr_int(k, "axis", k->opset < 4 ? 1 : 0), r, &axis);
  if (rc) return rc;
  int64_t dims[GPUX_MAX_DIMS];
  memcpy(dims, x0->dims, sizeof dims);
  dims[axis] = 0;
  for (int i = 0; i < k->n_in; i++) {
    const gpux_tensor *t = IN(i);
    int same = t->ndim == r;
    for (int d = 0; same && d < r; d++) same = d == axis || t->dims[d] == x0->dims[d];
    if (!same) {
      if (gpux_tensor_count(t) == 0) continue;
      return gpux__kerr(k, GPUX_E_SHAPE, "input %d does not match input %d outside axis %d", i, ref, axis);
    }
    dims[axis] += t->dims[axis];
  }
  gpux_tensor *y = gpux__out_raw(k, 0, x0->dtype, r, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  size_t es = gpux_dtype_size(y->dtype);
  int64_t ys[GPUX_MAX_DIMS], xs[GPUX_MAX_DIMS], at = 0;
  gpux__strides(r, dims, ys);
  for (int i = 0; i < k->n_in; i++) {
    const gpux_tensor *t = IN(i);
    if (t->ndim != r || gpux_tensor_count(t) == 0) continue;
    gpux__strides(r, t->dims, xs);
    copy_box(es, r, t->dims, (char *)y->data + at * ys[axis] * (int64_t)es, ys, t->data, xs);
    at += t->dims[axis];
  }
  return own_strings(k, y);
}

/* The size of each of the nout parts of dimension len: from the split input (opset >= 13, or
 * opset 1's optional input), the split attribute, or equal parts (from opset 18 the last part
 * may be smaller). */
static int split_sizes(gpux__kctx *k, int64_t len, int nout, int64_t *sizes) {
  int n;
  if (k->opset >= 13 || IN(1)) {
    n = ints_in(k, 1, sizes, nout);
    if (n < 0) return n;
  } else {
    const int64_t *a;
    n = gpux__attr_ints(k, "split", &a);
    if (n > nout) return gpux__kerr(k, GPUX_E_INVALID, "split has %d entries for %d outputs", n, nout);
    for (int i = 0; i < n; i++) sizes[i] = a[i];
  }
  if (n > 0) {
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
      if (sizes[i] < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative split size %lld", (long long)sizes[i]);
      sum += sizes[i];
    }
    if (n != nout || sum != len)
      return gpux__kerr(k, GPUX_E_SHAPE, "split sizes (%d, sum %lld) do not fit %d outputs of dimension %lld",
                        n, (long long)sum, nout, (long long)len);
    return 0;
  }
  int64_t parts = gpux__attr_int(k, "num_outputs", nout), chunk = (len + nout - 1) / nout;
  if (parts != nout) return gpux__kerr(k, GPUX_E_INVALID, "num_outputs %lld but %d outputs", (long long)parts, nout);
  if (k->opset < 18 && len % nout)
    return gpux__kerr(k, GPUX_E_SHAPE, "dimension %lld does not split into %d equal parts", (long long)len, nout);
  if (len > 0 && nout > 1 && chunk * (nout - 1) >= len)
    return gpux__kerr(k, GPUX_E_SHAPE, "dimension %lld cannot give %d non-empty parts", (long long)len, nout);
  for (int i = 0; i < nout; i++) sizes[i] = GPUX__MIN(chunk, len - chunk * i);
  return 0;
}

static int op_split(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int r = x->ndim, axis, nout = k->n_out;
  if (r == 0) return gpux__kerr(k, GPUX_E_SHAPE, "cannot split a scalar");
  if (nout < 1) return gpux__kerr(k, GPUX_E_INVALID, "no outputs");
  int rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), r, &axis);
  if (rc) return rc;
  int64_t *sizes = gpux__calloc((size_t)nout, sizeof *sizes); /* [nout] */
  if (!sizes) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  rc = split_sizes(k, x->dims[axis], nout, sizes);
  size_t es = gpux_dtype_size(x->dtype);
  int64_t xs[GPUX_MAX_DIMS], ys[GPUX_MAX_DIMS], at = 0;
  gpux__strides(r, x->dims, xs);
  for (int i = 0; i < nout && !rc; i++) {
    int64_t dims[GPUX_MAX_DIMS];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = sizes[i];
    gpux_tensor *y = OUTPUT_WANTED(i) ? gpux__out(k, i, x->dtype, r, dims) : NULL;
    if (OUTPUT_WANTED(i) && !y) rc = k->status;
    if (y && !k->shape_only) {
      gpux__strides(r, dims, ys);
      copy_box(es, r, dims, y->data, ys, (const char *)x->data + at * xs[axis] * (int64_t)es, xs);
      rc = own_strings(k, y);
    }
    at += sizes[i];
  }
  free(sizes);
  return rc;
}

/* ---- Slice ---- */

static int op_slice(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int r = x->ndim;
  int64_t starts[MAXR], ends[MAXR], axes[MAXR], steps[MAXR];
  int ns, ne, na, nst = 0;
  if (k->opset < 10) {
    ns = ints_attr(k, "starts", starts, MAXR);
    ne = ints_attr(k, "ends", ends, MAXR);
    na = ints_attr(k, "axes", axes, MAXR);
  } else {
    ns = ints_in(k, 1, starts, MAXR);
    ne = ns < 0 ? ns : ints_in(k, 2, ends, MAXR);
    na = ne < 0 ? ne : ints_in(k, 3, axes, MAXR);
    nst = na < 0 ? na : ints_in(k, 4, steps, MAXR);
  }
  if (ns < 0 || ne < 0 || na < 0 || nst < 0) return k->status;
  int has_axes = k->opset < 10 ? gpux__has_attr(k, "axes") : IN(3) != NULL;
  if (ns != ne || (has_axes && na != ns) || (nst && nst != ns))
    return gpux__kerr(k, GPUX_E_INVALID, "starts, ends, axes and steps have different lengths (%d, %d, %d, %d)", ns, ne, na, nst);
  int ax[MAXR];
  if (!has_axes)
    for (int i = 0; i < ns; i++) axes[i] = i;
  int rc = norm_axes(k, axes, ns, r, ax);
  if (rc) return rc;
  int64_t dims[GPUX_MAX_DIMS], first[GPUX_MAX_DIMS], step[GPUX_MAX_DIMS];
  for (int d = 0; d < r; d++) {
    dims[d] = x->dims[d];
    first[d] = 0;
    step[d] = 1;
  }
  for (int i = 0; i < ns; i++) {
    int a = ax[i];
    int64_t dim = x->dims[a], s = starts[i], e = ends[i], st = nst ? steps[i] : 1, len;
    if (st == 0) return gpux__kerr(k, GPUX_E_INVALID, "step 0 on axis %d", a);
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (st > 0) {
      s = GPUX__MAX(0, GPUX__MIN(s, dim));
      e = GPUX__MAX(0, GPUX__MIN(e, dim));
      len = e > s ? (e - s - 1) / st + 1 : 0;
    } else {
      s = GPUX__MAX(0, GPUX__MIN(s, dim - 1));
      e = GPUX__MAX(-1, GPUX__MIN(e, dim - 1));
      len = s > e ? (s - e - 1) / -(st == INT64_MIN ? INT64_MAX : st) + 1 : 0;
    }
    if (dim == 0) len = 0;
    dims[a] = len;
    first[a] = len ? s : 0;
    step[a] = len > 1 ? st : 1;
  }
  gpux_tensor *y = gpux__out_raw(k, 0, x->dtype, r, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  size_t es = gpux_dtype_size(x->dtype);
  int64_t xs[GPUX_MAX_DIMS], ys[GPUX_MAX_DIMS], ss[GPUX_MAX_DIMS], off = 0;
  gpux__strides(r, x->dims, xs);
  gpux__strides(r, dims, ys);
  for (int d = 0; d < r; d++) {
    off += first[d] * xs[d];
    ss[d] = step[d] * xs[d];
  }
  copy_box(es, r, dims, y->data, ys, (const char *)x->data + off * (int64_t)es, ss);
  return own_strings(k, y);
}

/* ---- Expand, Tile ---- */

static int op_expand(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int64_t shape[GPUX_MAX_DIMS], dims[GPUX_MAX_DIMS];
  if (!IN(1)) return gpux__kerr(k, GPUX_E_INVALID, "the shape input is missing");
  int n = ints_in(k, 1, shape, GPUX_MAX_DIMS), r;
  if (n < 0) return n;
  for (int i = 0; i < n; i++)
    if (shape[i] < 0) return gpux__kerr(k, GPUX_E_SHAPE, "negative dimension %lld in the shape", (long long)shape[i]);
  if (gpux__broadcast_shape(x->ndim, x->dims, n, shape, &r, dims))
    return gpux__kerr(k, GPUX_E_SHAPE, "%s", gpux_last_error());
  gpux_tensor *y = gpux__out(k, 0, x->dtype, r, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t xs[GPUX_MAX_DIMS], ys[GPUX_MAX_DIMS], ss[GPUX_MAX_DIMS];
  gpux__strides(x->ndim, x->dims, xs);
  gpux__strides(r, dims, ys);
  for (int d = 0; d < r; d++) {
    int xd = d - (r - x->ndim);
    ss[d] = xd >= 0 && x->dims[xd] != 1 ? xs[xd] : 0;
  }
  copy_box(gpux_dtype_size(x->dtype), r, dims, y->data, ys, x->data, ss);
  return own_strings(k, y);
}

static int op_tile(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int r = x->ndim;
  int64_t reps[GPUX_MAX_DIMS], dims[GPUX_MAX_DIMS];
  if (!IN(1)) return gpux__kerr(k, GPUX_E_INVALID, "the repeats input is missing");
  int n = ints_in(k, 1, reps, GPUX_MAX_DIMS);
  if (n < 0) return n;
  if (n != r) return gpux__kerr(k, GPUX_E_SHAPE, "repeats has %d values for rank %d", n, r);
  for (int d = 0; d < r; d++) {
    if (reps[d] < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative repeat %lld", (long long)reps[d]);
    dims[d] = x->dims[d] * reps[d];
  }
  gpux_tensor *y = gpux__out(k, 0, x->dtype, r, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  /* the output seen as [reps0, d0, reps1, d1, ...]: the repeat dims read with stride 0 */
  int64_t xs[GPUX_MAX_DIMS], vd[MAXR], vs[MAXR], vy[MAXR];
  gpux__strides(r, x->dims, xs);
  for (int d = 0; d < r; d++) {
    vd[2 * d] = reps[d];
    vd[2 * d + 1] = x->dims[d];
    vs[2 * d] = 0;
    vs[2 * d + 1] = xs[d];
  }
  gpux__strides(2 * r, vd, vy);
  copy_box(gpux_dtype_size(x->dtype), 2 * r, vd, y->data, vy, x->data, vs);
  return own_strings(k, y);
}

/* ---- Pad ---- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

typedef struct {
  int r;
  size_t es;
  const int64_t *ydims;
  int64_t xs[GPUX_MAX_DIMS];
  int64_t *map[GPUX_MAX_DIMS]; /* per axis, output coordinate -> input coordinate, -1 for the pad value */
  int64_t run_at, run_len;     /* last axis: output [run_at, run_at+run_len) maps to a contiguous input run */
  const char *x;
  char *y;
  const void *val;             /* the pad value's bytes */
  int val_zero;                /* the value is all zero bytes (the output already is) */
} pad_job;

static void pad_rows(void *ctx, int64_t begin, int64_t end) {
  const pad_job *p = ctx;
  int last = p->r - 1;
  int64_t w = p->ydims[last], es = (int64_t)p->es;
  const int64_t *lmap = p->map[last];
  for (int64_t row = begin; row < end; row++) {
    char *y = p->y + row * w * es;
    int64_t rest = row, soff = 0;
    int outside = 0;
    for (int d = last - 1; d >= 0; d--) {
      int64_t i = p->map[d][rest % p->ydims[d]];
      rest /= p->ydims[d];
      if (i < 0) outside = 1;
      soff += i * p->xs[d];
    }
    if (outside) {
      if (!p->val_zero) fill_elems(y, p->val, p->es, w);
      continue;
    }
    const char *x = p->x + soff * es;
    for (int64_t j = 0; j < w; j++) {
      if (j == p->run_at && p->run_len > 0) {
        memcpy(y + j * es, x + lmap[j] * es, (size_t)(p->run_len * es));
        j += p->run_len - 1;
      } else if (lmap[j] >= 0) {
        memcpy(y + j * es, x + lmap[j] * es, p->es);
      } else if (!p->val_zero) {
        memcpy(y + j * es, p->val, p->es);
      }
    }
  }
}

/* Maps output coordinate o of one axis to the input: the input keeps [lo, lo+n) after negative
 * pads crop it, and `before` positions are added in front. */
static int64_t pad_index(int mode, int64_t o, int64_t before, int64_t lo, int64_t n) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return lo + i;
  switch (mode) {
  case PAD_EDGE: return lo + (i < 0 ? 0 : n - 1);
  case PAD_WRAP: return lo + ((i % n) + n) % n;
  case PAD_REFLECT: {
    if (n == 1) return lo;
    int64_t period = 2 * (n - 1), m = ((i % period) + period) % period;
    return lo + (m >= n ? period - m : m);
  }
  }
  return -1;
}

static int op_pad(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int r = x->ndim;
  const char *mname = gpux__attr_string(k, "mode", "constant");
  int mode = !strcmp(mname, "constant") ? PAD_CONSTANT : !strcmp(mname, "reflect") ? PAD_REFLECT
           : !strcmp(mname, "edge") ? PAD_EDGE : !strcmp(mname, "wrap") ? PAD_WRAP : -1;
  if (mode < 0) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "unsupported pad mode '%s'", mname);
  int64_t pads[2 * MAXR], axes[MAXR];
  int np, na = 0;
  if (k->opset < 11) {
    np = ints_attr(k, gpux__has_attr(k, "pads") ? "pads" : "paddings", pads, 2 * MAXR);
  } else {
    if (!IN(1)) return gpux__kerr(k, GPUX_E_INVALID, "the pads input is missing");
    np = ints_in(k, 1, pads, 2 * MAXR);
    na = np < 0 ? np : ints_in(k, 3, axes, MAXR);
  }
  if (np < 0 || na < 0) return k->status;
  int has_axes = k->opset >= 11 && IN(3) != NULL, ax[MAXR];
  if (!has_axes) {
    na = r;
    for (int i = 0; i < r; i++) axes[i] = i;
  }
  if (np != 2 * na) return gpux__kerr(k, GPUX_E_INVALID, "pads has %d values for %d axes", np, na);
  int rc = norm_axes(k, axes, na, r, ax);
  if (rc) return rc;
  int64_t before[GPUX_MAX_DIMS] = {0}, after[GPUX_MAX_DIMS] = {0}, dims[GPUX_MAX_DIMS];
  for (int i = 0; i < na; i++) {
    before[ax[i]] = pads[i];
    after[ax[i]] = pads[na + i];
  }
  for (int d = 0; d < r; d++) {
    dims[d] = x->dims[d] + before[d] + after[d];
    if (dims[d] < 0) return gpux__kerr(k, GPUX_E_SHAPE, "pads make axis %d negative", d);
    int64_t n = x->dims[d] - GPUX__MAX(0, -before[d]) - GPUX__MAX(0, -after[d]);
    if (mode != PAD_CONSTANT && n <= 0 && dims[d] > 0)
      return gpux__kerr(k, GPUX_E_INVALID, "cannot pad an empty axis %d in %s mode", d, mname);
  }
  gpux_tensor *y = gpux__out(k, 0, x->dtype, r, dims);
  if (!y) return k->status;
  if (k->shape_only || gpux_tensor_count(y) == 0) return 0;
  if (r == 0) return copy_all(k, y, x);

  /* the pad value, as bytes of the dtype */
  size_t es = gpux_dtype_size(x->dtype);
  unsigned char val[16] = {0};
  const char *sval = "";
  const gpux_tensor *cv = k->opset >= 11 ? IN(2) : NULL;
  if (x->dtype == GPUX_DT_STRING) {
    if (cv && cv->dtype == GPUX_DT_STRING && cv->data && gpux_tensor_count(cv) > 0 && ((char **)cv->data)[0])
      sval = ((char **)cv->data)[0];
    memcpy(val, &sval, sizeof sval);
  } else if (cv && cv->kind == GPUX_KIND_TENSOR && cv->data && gpux_tensor_count(cv) > 0) {
    if (cv->dtype == x->dtype) memcpy(val, cv->data, es);
    else gpux__store_f64(x->dtype, val, 0, gpux__load_f64(cv->dtype, cv->data, 0));
  } else if (k->opset < 11) {
    gpux__store_f64(x->dtype, val, 0, gpux__attr_float(k, "value", 0.0f));
  }
  pad_job p = {.r = r, .es = es, .ydims = dims, .x = x->data, .y = y->data, .val = val, .val_zero = 1};
  for (size_t i = 0; i < es; i++)
    if (val[i]) p.val_zero = 0;
  gpux__strides(r, x->dims, p.xs);
  int64_t total = 0;
  for (int d = 0; d < r; d++) total += dims[d];
  int64_t *maps = gpux__malloc((size_t)total * sizeof *maps);
  if (!maps) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  int64_t at = 0;
  for (int d = 0; d < r; d++) {
    p.map[d] = maps + at;
    at += dims[d];
    int64_t lo = GPUX__MAX(0, -before[d]), n = x->dims[d] - lo - GPUX__MAX(0, -after[d]), b = GPUX__MAX(0, before[d]);
    for (int64_t o = 0; o < dims[d]; o++) p.map[d][o] = pad_index(mode, o, b, lo, n);
    if (d == r - 1) {
      p.run_at = b;
      p.run_len = GPUX__MAX(0, n);
    }
  }
  int64_t rows = gpux_tensor_count(y) / dims[r - 1];
  gpux__parallel_for(rows, GPUX__MAX(1, 32768 / dims[r - 1]), pad_rows, &p);
  free(maps);
  return own_strings(k, y);
}

/* ---- DepthToSpace, SpaceToDepth ---- */

/* blocksize and mode (0 = DCR, 1 = CRD) of a 4-D op; NULL input on error. */
static const gpux_tensor *space_depth_args(gpux__kctx *k, int64_t *b, int *crd) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return NULL;
  if (x->ndim != 4) {
    gpux__kerr(k, GPUX_E_SHAPE, "expected a 4-D input, got rank %d", x->ndim);
    return NULL;
  }
  *b = gpux__attr_int(k, "blocksize", 0);
  if (*b <= 0) {
    gpux__kerr(k, GPUX_E_INVALID, "blocksize %lld must be positive", (long long)*b);
    return NULL;
  }
  const char *mode = gpux__attr_string(k, "mode", "DCR");
  if (strcmp(mode, "DCR") && strcmp(mode, "CRD")) {
    gpux__kerr(k, GPUX_E_UNSUPPORTED, "unsupported mode '%s'", mode);
    return NULL;
  }
  *crd = !strcmp(mode, "CRD");
  return x;
}

static int op_depth_to_space(gpux__kctx *k) {
  int64_t b;
  int crd;
  const gpux_tensor *x = space_depth_args(k, &b, &crd);
  if (!x) return k->status;
  int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
  if (c % (b * b)) return gpux__kerr(k, GPUX_E_SHAPE, "channels %lld not divisible by blocksize^2 = %lld", (long long)c, (long long)(b * b));
  int64_t co = c / (b * b), dims[4] = {n, co, h * b, w * b};
  gpux_tensor *y = gpux__out(k, 0, x->dtype, 4, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  /* output as [N, C', H, b1, W, b2]; input channel = (b1*b + b2)*C' + c (DCR) or c*b*b + b1*b + b2 (CRD) */
  int64_t hw = h * w;
  int64_t vd[6] = {n, co, h, b, w, b}, vy[6];
  int64_t vs[6] = {c * hw, crd ? b * b * hw : hw, w, crd ? b * hw : b * co * hw, 1, crd ? hw : co * hw};
  gpux__strides(6, vd, vy);
  copy_box(gpux_dtype_size(x->dtype), 6, vd, y->data, vy, x->data, vs);
  return own_strings(k, y);
}

static int op_space_to_depth(gpux__kctx *k) {
  int64_t b;
  int crd;
  const gpux_tensor *x = space_depth_args(k, &b, &crd);
  if (!x) return k->status;
  int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
  if (h % b || w % b) return gpux__kerr(k, GPUX_E_SHAPE, "spatial size %lldx%lld not divisible by blocksize %lld", (long long)h, (long long)w, (long long)b);
  int64_t ho = h / b, wo = w / b, dims[4] = {n, c * b * b, ho, wo};
  gpux_tensor *y = gpux__out(k, 0, x->dtype, 4, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  /* output channels as [b1, b2, C] (DCR) or [C, b1, b2] (CRD); input (n, c, ho*b + b1, wo*b + b2) */
  int64_t sn = c * h * w, sc = h * w, sb1 = w, sb2 = 1, sho = b * w, swo = b;
  int64_t vd[6], vs[6], vy[6];
  if (crd) {
    int64_t d6[6] = {n, c, b, b, ho, wo}, s6[6] = {sn, sc, sb1, sb2, sho, swo};
    memcpy(vd, d6, sizeof vd);
    memcpy(vs, s6, sizeof vs);
  } else {
    int64_t d6[6] = {n, b, b, c, ho, wo}, s6[6] = {sn, sb1, sb2, sc, sho, swo};
    memcpy(vd, d6, sizeof vd);
    memcpy(vs, s6, sizeof vs);
  }
  gpux__strides(6, vd, vy);
  copy_box(gpux_dtype_size(x->dtype), 6, vd, y->data, vy, x->data, vs);
  return own_strings(k, y);
}

/* ---- Shape, Size, Identity ---- */

static int op_shape(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int64_t r = x->ndim, start = gpux__attr_int(k, "start", 0), end = gpux__attr_int(k, "end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = GPUX__MAX(0, GPUX__MIN(start, r));
  end = GPUX__MAX(0, GPUX__MIN(end, r));
  int64_t n = GPUX__MAX(0, end - start);
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_INT64, 1, &n);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  for (int64_t i = 0; i < n; i++) ((int64_t *)y->data)[i] = x->dims[start + i];
  return 0;
}

static int op_size(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_INT64, 0, NULL);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  *(int64_t *)y->data = gpux_tensor_count(x);
  return 0;
}

static int op_identity(gpux__kctx *k) {
  if (!IN(0)) return gpux__kerr(k, GPUX_E_INVALID, "input 0 is missing");
  return gpux__out_copy(k, 0, IN(0));
}

/* ---- Dropout ---- */

/* MT19937 seeded as numpy's RandomState(seed): a seeded Dropout in training mode draws the same
 * mask as the ONNX reference implementation. */
typedef struct {
  uint32_t mt[624];
  int pos;
} mt19937;

static void mt_seed(mt19937 *g, uint32_t seed) {
  g->mt[0] = seed;
  for (uint32_t i = 1; i < 624; i++) g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + i;
  g->pos = 624;
}

static uint32_t mt_next(mt19937 *g) {
  if (g->pos >= 624) {
    for (int i = 0; i < 624; i++) {
      uint32_t y = (g->mt[i] & 0x80000000u) | (g->mt[(i + 1) % 624] & 0x7fffffffu);
      g->mt[i] = g->mt[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0);
    }
    g->pos = 0;
  }
  uint32_t y = g->mt[g->pos++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  return y ^ (y >> 18);
}

/* Uniform double in [0, 1) with 53 random bits (numpy's random_sample). */
static double mt_double(mt19937 *g) {
  uint32_t a = mt_next(g) >> 5, b = mt_next(g) >> 6;
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

static int op_dropout(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  if (!numeric(x->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "dropout of %s", gpux_dtype_name(x->dtype));
  double ratio = gpux__attr_float(k, "ratio", 0.5f);
  int training = 0;
  if (k->opset >= 12) {
    const gpux_tensor *rt = IN(1), *tm = IN(2);
    if (rt && rt->data && gpux_tensor_count(rt) > 0) ratio = gpux__load_f64(rt->dtype, rt->data, 0);
    if (tm && tm->data && gpux_tensor_count(tm) > 0) training = gpux__load_f64(tm->dtype, tm->data, 0) != 0;
  }
  if (training && !(ratio >= 0 && ratio < 1)) return gpux__kerr(k, GPUX_E_INVALID, "ratio %g outside [0, 1)", ratio);
  if (training && ratio == 0) training = 0;
  int mask_dt = k->opset >= 10 ? GPUX_DT_BOOL : x->dtype;
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  gpux_tensor *m = NULL;
  if (OUTPUT_WANTED(1) && !(m = gpux__out(k, 1, mask_dt, x->ndim, x->dims))) return k->status;
  if (k->shape_only) return 0;
  int64_t n = gpux_tensor_count(x);
  if (!training) {
    if (m) for (int64_t i = 0; i < n; i++) gpux__store_f64(mask_dt, m->data, i, 1.0);
    return copy_all(k, y, x);
  }
  if (!gpux__dtype_is_float(x->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "training-mode dropout of %s", gpux_dtype_name(x->dtype));
  static atomic_uint counter; /* unseeded runs differ from each other */
  uint32_t seed = gpux__has_attr(k, "seed") ? (uint32_t)gpux__attr_int(k, "seed", 0)
                                            : (uint32_t)time(NULL) ^ (atomic_fetch_add(&counter, 1) + 1) * 2654435761u;
  mt19937 g;
  mt_seed(&g, seed);
  float scale = (float)(1.0 / (1.0 - ratio));
  for (int64_t i = 0; i < n; i++) {
    int keep = mt_double(&g) >= ratio;
    if (m) gpux__store_f64(mask_dt, m->data, i, keep);
    if (x->dtype == GPUX_DT_FLOAT)
      ((float *)y->data)[i] = keep ? ((const float *)x->data)[i] * scale : 0.0f;
    else
      gpux__store_f64(x->dtype, y->data, i, keep ? gpux__load_f64(x->dtype, x->data, i) * scale : 0.0);
  }
  return 0;
}

/* ---- Trilu ---- */

static int op_trilu(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  if (x->ndim < 2) return gpux__kerr(k, GPUX_E_SHAPE, "expected rank >= 2, got %d", x->ndim);
  int upper = gpux__attr_int(k, "upper", 1) != 0;
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t diag = 0;
  const gpux_tensor *kt = IN(1);
  if (kt && kt->data && gpux_tensor_count(kt) > 0) diag = gpux__load_i64(kt->dtype, kt->data, 0);
  int64_t h = x->dims[x->ndim - 2], w = x->dims[x->ndim - 1], n = gpux_tensor_count(x);
  size_t es = gpux_dtype_size(x->dtype);
  /* row i keeps columns j - i >= diag (upper) or j - i <= diag (lower); the rest stays zero */
  for (int64_t row = 0; h && w && row < n / w; row++) {
    int64_t i = row % h, j0, j1;
    if (upper) {
      j0 = i + diag < 0 ? 0 : GPUX__MIN(w, i + diag);
      j1 = w;
    } else {
      j0 = 0;
      j1 = i + diag + 1 < 0 ? 0 : GPUX__MIN(w, i + diag + 1);
    }
    if (j1 > j0)
      memcpy((char *)y->data + (size_t)(row * w + j0) * es, (const char *)x->data + (size_t)(row * w + j0) * es, (size_t)(j1 - j0) * es);
  }
  return own_strings(k, y);
}

/* ---- CenterCropPad, ReverseSequence ---- */

static int op_center_crop_pad(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0);
  if (!x) return k->status;
  int r = x->ndim, ax[MAXR];
  int64_t shape[MAXR], axes[MAXR];
  if (!IN(1)) return gpux__kerr(k, GPUX_E_INVALID, "the shape input is missing");
  int n = ints_in(k, 1, shape, MAXR);
  if (n < 0) return n;
  int na = ints_attr(k, "axes", axes, MAXR);
  if (na < 0) return na;
  if (!gpux__has_attr(k, "axes")) {
    na = r;
    for (int i = 0; i < r; i++) axes[i] = i;
  }
  if (n != na) return gpux__kerr(k, GPUX_E_SHAPE, "shape has %d values for %d axes", n, na);
  int rc = norm_axes(k, axes, na, r, ax);
  if (rc) return rc;
  int64_t dims[GPUX_MAX_DIMS];
  memcpy(dims, x->dims, sizeof dims);
  for (int i = 0; i < na; i++) {
    if (shape[i] < 0) return gpux__kerr(k, GPUX_E_SHAPE, "negative size %lld", (long long)shape[i]);
    dims[ax[i]] = shape[i];
  }
  gpux_tensor *y = gpux__out(k, 0, x->dtype, r, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  /* the overlap: centered in the larger of input and output along each axis */
  size_t es = gpux_dtype_size(x->dtype);
  int64_t xs[GPUX_MAX_DIMS], ys[GPUX_MAX_DIMS], box[GPUX_MAX_DIMS], xoff = 0, yoff = 0;
  gpux__strides(r, x->dims, xs);
  gpux__strides(r, dims, ys);
  for (int d = 0; d < r; d++) {
    box[d] = GPUX__MIN(x->dims[d], dims[d]);
    if (x->dims[d] > dims[d]) xoff += (x->dims[d] - dims[d]) / 2 * xs[d];
    else yoff += (dims[d] - x->dims[d]) / 2 * ys[d];
  }
  copy_box(es, r, box, (char *)y->data + yoff * (int64_t)es, ys, (const char *)x->data + xoff * (int64_t)es, xs);
  return own_strings(k, y);
}

static int op_reverse_sequence(gpux__kctx *k) {
  const gpux_tensor *x = tensor_in(k, 0), *lens = IN(1);
  if (!x) return k->status;
  if (x->ndim < 2) return gpux__kerr(k, GPUX_E_SHAPE, "expected rank >= 2, got %d", x->ndim);
  int64_t ba = gpux__attr_int(k, "batch_axis", 1), ta = gpux__attr_int(k, "time_axis", 0);
  if (!((ba == 0 && ta == 1) || (ba == 1 && ta == 0)))
    return gpux__kerr(k, GPUX_E_INVALID, "batch_axis %lld and time_axis %lld must be 0 and 1", (long long)ba, (long long)ta);
  int64_t nb = x->dims[ba], nt = x->dims[ta];
  if (!lens || lens->kind != GPUX_KIND_TENSOR || gpux_tensor_count(lens) != nb)
    return gpux__kerr(k, GPUX_E_SHAPE, "sequence_lens must hold %lld values", (long long)nb);
  gpux_tensor *y = gpux__out(k, 0, x->dtype, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  size_t es = gpux_dtype_size(x->dtype);
  int64_t xs[GPUX_MAX_DIMS], block = gpux__shape_count(x->ndim - 2, x->dims + 2);
  gpux__strides(x->ndim, x->dims, xs);
  for (int64_t b = 0; b < nb; b++) {
    int64_t len = gpux__load_i64(lens->dtype, lens->data, b);
    if (len < 0 || len > nt) return gpux__kerr(k, GPUX_E_INVALID, "sequence length %lld outside [0, %lld]", (long long)len, (long long)nt);
    for (int64_t t = 0; t < nt; t++) {
      int64_t src_t = t < len ? len - 1 - t : t;
      size_t yo = (size_t)(b * xs[ba] + t * xs[ta]) * es, xo = (size_t)(b * xs[ba] + src_t * xs[ta]) * es;
      memcpy((char *)y->data + yo, (const char *)x->data + xo, (size_t)block * es);
    }
  }
  return own_strings(k, y);
}

const gpux__op_def gpux__ops_shape[] = {
  {"", "Reshape", op_reshape, 1, 0},
  {"", "Flatten", op_flatten, 1, 0},
  {"", "Squeeze", op_squeeze, 1, 0},
  {"", "Unsqueeze", op_unsqueeze, 1, 0},
  {"", "Transpose", op_transpose, 1, 0},
  {"", "Concat", op_concat, 1, 0},
  {"", "Split", op_split, 1, 0},
  {"", "Slice", op_slice, 1, 0},
  {"", "Expand", op_expand, 8, 0},
  {"", "Tile", op_tile, 6, 0},
  {"", "Pad", op_pad, 1, 0},
  {"", "DepthToSpace", op_depth_to_space, 1, 0},
  {"", "SpaceToDepth", op_space_to_depth, 1, 0},
  {"", "Shape", op_shape, 1, 0},
  {"", "Size", op_size, 1, 0},
  {"", "Identity", op_identity, 1, 0},
  {"", "Dropout", op_dropout, 1, 0},
  {"", "Trilu", op_trilu, 14, 0},
  {"", "CenterCropPad", op_center_crop_pad, 18, 0},
  {"", "ReverseSequence", op_reverse_sequence, 10, 0},
  {0},
};
