/* generator.c — operators that make tensors from attributes or a few scalars: Constant,
 * ConstantOfShape, Range, EyeLike, the Hann/Hamming/Blackman windows and MelWeightMatrix.
 * Inputs that decide an output's shape (ConstantOfShape's shape, Range's scalars, a window's
 * size, MelWeightMatrix's bin counts) are needed in shape_only mode too (gpux__need_data). */
#include "ops/op.h"
#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Numeric dtypes: those gpux__load_f64/store_f64 handle. */
static int numeric(int dt) {
  return gpux__dtype_is_float(dt) || gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt);
}

static int is_int(int dt) { return gpux__dtype_is_signed_int(dt) || gpux__dtype_is_unsigned_int(dt); }

/* Input i as a tensor holding one element (a scalar or a 1-element tensor) whose value is known,
 * even in shape_only mode. NULL with an error otherwise. */
static const gpux_tensor *scalar_in(gpux__kctx *k, int i) {
  const gpux_tensor *t = IN(i);
  if (!t || t->kind != GPUX_KIND_TENSOR) {
    gpux__kerr(k, GPUX_E_INVALID, "input %d is missing or not a tensor", i);
    return NULL;
  }
  if (gpux_tensor_count(t) != 1) {
    gpux__kerr(k, GPUX_E_SHAPE, "input %d must hold one value, it holds %lld", i, (long long)gpux_tensor_count(t));
    return NULL;
  }
  if (!numeric(t->dtype)) {
    gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input %d is %s, expected a number", i, gpux_dtype_name(t->dtype));
    return NULL;
  }
  if (gpux__need_data(k, i)) return NULL;
  return t;
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

/* ---- Constant, ConstantOfShape ---- */

static int op_constant(gpux__kctx *k) {
  const gpux_tensor *v = gpux__attr_tensor(k, "value");
  if (!v) v = gpux__attr_tensor(k, "sparse_value"); /* densified by the loader */
  if (v) return gpux__out_copy(k, 0, v);
  gpux_tensor *y;
  int64_t n;
  if (gpux__has_attr(k, "value_float")) {
    if (!(y = gpux__out(k, 0, GPUX_DT_FLOAT, 0, NULL))) return k->status;
    if (!k->shape_only) *(float *)y->data = gpux__attr_float(k, "value_float", 0);
  } else if (gpux__has_attr(k, "value_int")) {
    if (!(y = gpux__out(k, 0, GPUX_DT_INT64, 0, NULL))) return k->status;
    if (!k->shape_only) *(int64_t *)y->data = gpux__attr_int(k, "value_int", 0);
  } else if (gpux__has_attr(k, "value_floats")) {
    const float *f;
    n = gpux__attr_floats(k, "value_floats", &f);
    if (!(y = gpux__out(k, 0, GPUX_DT_FLOAT, 1, &n))) return k->status;
    if (!k->shape_only && n) memcpy(y->data, f, (size_t)n * sizeof *f);
  } else if (gpux__has_attr(k, "value_ints")) {
    const int64_t *iv;
    n = gpux__attr_ints(k, "value_ints", &iv);
    if (!(y = gpux__out(k, 0, GPUX_DT_INT64, 1, &n))) return k->status;
    if (!k->shape_only && n) memcpy(y->data, iv, (size_t)n * sizeof *iv);
  } else if (gpux__has_attr(k, "value_string")) {
    if (!(y = gpux__out(k, 0, GPUX_DT_STRING, 0, NULL))) return k->status;
    if (!k->shape_only && !(*(char **)y->data = gpux__strdup(gpux__attr_string(k, "value_string", ""))))
      return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  } else if (gpux__has_attr(k, "value_strings")) {
    const char *const *sv;
    n = gpux__attr_strings(k, "value_strings", &sv);
    if (!(y = gpux__out(k, 0, GPUX_DT_STRING, 1, &n))) return k->status;
    for (int64_t i = 0; !k->shape_only && i < n; i++)
      if (!(((char **)y->data)[i] = gpux__strdup(sv[i] ? sv[i] : "")))
        return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  } else {
    return gpux__kerr(k, GPUX_E_INVALID, "Constant has no value attribute");
  }
  return 0;
}

static int op_constant_of_shape(gpux__kctx *k) {
  const gpux_tensor *v = gpux__attr_tensor(k, "value"), *s = IN(0);
  if (v && (v->kind != GPUX_KIND_TENSOR || gpux_tensor_count(v) != 1))
    return gpux__kerr(k, GPUX_E_INVALID, "value must hold exactly one element");
  if (!s || s->kind != GPUX_KIND_TENSOR || !is_int(s->dtype))
    return gpux__kerr(k, GPUX_E_INVALID, "input 0 must be an integer shape tensor");
  int rc = gpux__need_data(k, 0);
  if (rc) return rc;
  int64_t dims[GPUX_MAX_DIMS];
  int n = gpux__read_ints(k, s, dims, GPUX_MAX_DIMS);
  if (n < 0) return n;
  for (int i = 0; i < n; i++)
    if (dims[i] < 0) return gpux__kerr(k, GPUX_E_SHAPE, "negative dimension %lld", (long long)dims[i]);
  int dt = v ? v->dtype : GPUX_DT_FLOAT;
  gpux_tensor *y = gpux__out(k, 0, dt, n, dims);
  if (!y) return k->status;
  if (k->shape_only || !v) return 0;
  int64_t count = gpux_tensor_count(y);
  if (dt == GPUX_DT_STRING) {
    const char *str = ((char *const *)v->data)[0];
    for (int64_t i = 0; i < count; i++)
      if (!(((char **)y->data)[i] = gpux__strdup(str ? str : "")))
        return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    return 0;
  }
  size_t es = gpux_dtype_size(dt);
  const unsigned char *b = v->data;
  for (size_t i = 0; i < es; i++)
    if (b[i]) { /* the output is already zero: fill only a non-zero value */
      fill_elems(y->data, b, es, count);
      break;
    }
  return 0;
}

/* ---- Range, EyeLike ---- */

static int op_range(gpux__kctx *k) {
  const gpux_tensor *ts = scalar_in(k, 0), *tl = ts ? scalar_in(k, 1) : NULL, *td = tl ? scalar_in(k, 2) : NULL;
  if (!td) return k->status;
  int dt = ts->dtype;
  if (tl->dtype != dt || td->dtype != dt)
    return gpux__kerr(k, GPUX_E_DTYPE, "start, limit and delta must have one type");
  int64_t n;
  if (is_int(dt)) {
    int64_t s = gpux__load_i64(dt, ts->data, 0), l = gpux__load_i64(dt, tl->data, 0), d = gpux__load_i64(dt, td->data, 0);
    if (d == 0) return gpux__kerr(k, GPUX_E_INVALID, "delta is 0");
    if (d > 0) n = l > s ? (int64_t)(((uint64_t)l - (uint64_t)s - 1) / (uint64_t)d + 1) : 0;
    else n = s > l ? (int64_t)(((uint64_t)s - (uint64_t)l - 1) / (0 - (uint64_t)d) + 1) : 0;
    gpux_tensor *y = gpux__out(k, 0, dt, 1, &n);
    if (!y) return k->status;
    if (k->shape_only) return 0;
    for (int64_t i = 0; i < n; i++) gpux__store_i64(dt, y->data, i, (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d));
    return 0;
  }
  double s = gpux__load_f64(dt, ts->data, 0), l = gpux__load_f64(dt, tl->data, 0), d = gpux__load_f64(dt, td->data, 0);
  if (d == 0) return gpux__kerr(k, GPUX_E_INVALID, "delta is 0");
  double len = ceil((l - s) / d);
  if (!(len < 1e15)) return gpux__kerr(k, GPUX_E_INVALID, "range of %g to %g by %g is too long", s, l, d);
  n = len > 0 ? (int64_t)len : 0;
  gpux_tensor *y = gpux__out(k, 0, dt, 1, &n);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (dt == GPUX_DT_FLOAT) {
    float *out = y->data;
    for (int64_t i = 0; i < n; i++) out[i] = (float)(s + (double)i * d);
  } else {
    for (int64_t i = 0; i < n; i++) gpux__store_f64(dt, y->data, i, s + (double)i * d);
  }
  return 0;
}

static int op_eye_like(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x || x->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_INVALID, "input 0 is missing or not a tensor");
  if (x->ndim != 2) return gpux__kerr(k, GPUX_E_SHAPE, "expected a 2-D input, got rank %d", x->ndim);
  int dt = (int)gpux__attr_int(k, "dtype", x->dtype);
  if (!numeric(dt)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "EyeLike of %s", gpux_dtype_name(dt));
  int64_t diag = gpux__attr_int(k, "k", 0);
  gpux_tensor *y = gpux__out(k, 0, dt, 2, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t h = x->dims[0], w = x->dims[1];
  for (int64_t i = 0; i < h; i++)
    if (i + diag >= 0 && i + diag < w) gpux__store_f64(dt, y->data, i * w + i + diag, 1.0);
  return 0;
}

/* ---- windows, MelWeightMatrix ---- */

enum { WIN_HANN, WIN_HAMMING, WIN_BLACKMAN };

static int window(gpux__kctx *k, int kind) {
  const gpux_tensor *ts = scalar_in(k, 0);
  if (!ts) return k->status;
  if (!is_int(ts->dtype)) return gpux__kerr(k, GPUX_E_DTYPE, "size must be an integer");
  int64_t n = gpux__load_i64(ts->dtype, ts->data, 0);
  if (n < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative window size %lld", (long long)n);
  int dt = (int)gpux__attr_int(k, "output_datatype", GPUX_DT_FLOAT);
  if (!numeric(dt)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "window of %s", gpux_dtype_name(dt));
  gpux_tensor *y = gpux__out(k, 0, dt, 1, &n);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  /* periodic windows divide by N, symmetric ones by N - 1 */
  double denom = gpux__attr_int(k, "periodic", 1) ? (double)n : (double)(n - 1);
  for (int64_t i = 0; i < n; i++) {
    double v = 1.0, a = denom > 0 ? 2.0 * M_PI * (double)i / denom : 0.0;
    switch (kind) {
    case WIN_HANN: v = sin(a / 2) * sin(a / 2); break;
    case WIN_HAMMING: v = 25.0 / 46.0 - (1.0 - 25.0 / 46.0) * cos(a); break;
    case WIN_BLACKMAN: v = 0.42 - 0.5 * cos(a) + 0.08 * cos(2 * a); break;
    }
    gpux__store_f64(dt, y->data, i, v);
  }
  return 0;
}

static int op_hann_window(gpux__kctx *k) { return window(k, WIN_HANN); }
static int op_hamming_window(gpux__kctx *k) { return window(k, WIN_HAMMING); }
static int op_blackman_window(gpux__kctx *k) { return window(k, WIN_BLACKMAN); }

/* Triangular mel filters as the ONNX reference builds them: num_mel_bins + 2 points equally
 * spaced on the mel scale between the edges, each mapped to a DFT bin; filter i rises from point
 * i to point i+1 and falls to point i+2. Output [dft_length/2 + 1, num_mel_bins]. */
static int op_mel_weight_matrix(gpux__kctx *k) {
  const gpux_tensor *tm = scalar_in(k, 0), *tn = tm ? scalar_in(k, 1) : NULL;
  if (!tn) return k->status;
  if (!is_int(tm->dtype) || !is_int(tn->dtype)) return gpux__kerr(k, GPUX_E_DTYPE, "num_mel_bins and dft_length must be integers");
  int64_t mels = gpux__load_i64(tm->dtype, tm->data, 0), dft = gpux__load_i64(tn->dtype, tn->data, 0);
  if (mels < 0 || dft < 0) return gpux__kerr(k, GPUX_E_INVALID, "negative num_mel_bins or dft_length");
  int dt = (int)gpux__attr_int(k, "output_datatype", GPUX_DT_FLOAT);
  if (!numeric(dt)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "MelWeightMatrix of %s", gpux_dtype_name(dt));
  int64_t dims[2] = {dft / 2 + 1, mels};
  gpux_tensor *y = gpux__out(k, 0, dt, 2, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  const gpux_tensor *tr = scalar_in(k, 2), *tlo = tr ? scalar_in(k, 3) : NULL, *thi = tlo ? scalar_in(k, 4) : NULL;
  if (!thi) return k->status;
  double rate = gpux__load_f64(tr->dtype, tr->data, 0);
  if (rate <= 0) return gpux__kerr(k, GPUX_E_INVALID, "sample_rate must be positive");
  /* the edges in float, as the reference computes them from float32 inputs */
  float lo = (float)gpux__load_f64(tlo->dtype, tlo->data, 0), hi = (float)gpux__load_f64(thi->dtype, thi->data, 0);
  float lo_mel = 2595.0f * log10f(1.0f + lo / 700.0f), hi_mel = 2595.0f * log10f(1.0f + hi / 700.0f);
  float step = (hi_mel - lo_mel) / (float)(mels + 2);
  int64_t *bin = gpux__malloc((size_t)(mels + 2) * sizeof *bin);
  if (!bin) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int64_t i = 0; i < mels + 2; i++) {
    double hz = 700.0 * (pow(10.0, ((double)i * step + lo_mel) / 2595.0) - 1.0);
    bin[i] = (int64_t)floor((double)(dft + 1) * hz / rate);
  }
  int64_t nbins = dims[0];
  for (int64_t i = 0; i < mels; i++) {
    int64_t left = bin[i], center = bin[i + 1], right = bin[i + 2];
    if (center == left) {
      if (center >= 0 && center < nbins) gpux__store_f64(dt, y->data, center * mels + i, 1.0);
    } else {
      for (int64_t j = GPUX__MAX(left, 0); j <= center && j < nbins; j++)
        gpux__store_f64(dt, y->data, j * mels + i, (double)(j - left) / (double)(center - left));
    }
    for (int64_t j = GPUX__MAX(center, 0); right > center && j < right && j < nbins; j++)
      gpux__store_f64(dt, y->data, j * mels + i, (double)(right - j) / (double)(right - center));
  }
  free(bin);
  return 0;
}

const gpux__op_def gpux__ops_generator[] = {
  {"", "Constant", op_constant, 1, 0},
  {"", "ConstantOfShape", op_constant_of_shape, 9, 0},
  {"", "Range", op_range, 11, 0},
  {"", "EyeLike", op_eye_like, 9, 0},
  {"", "HannWindow", op_hann_window, 17, 0},
  {"", "HammingWindow", op_hamming_window, 17, 0},
  {"", "BlackmanWindow", op_blackman_window, 17, 0},
  {"", "MelWeightMatrix", op_mel_weight_matrix, 17, 0},
  {0},
};
