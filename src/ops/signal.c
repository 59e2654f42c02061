/* signal.c — the Fourier operators DFT (opsets 17 and 20: forward, inverse, onesided real
 * transforms and the inverse of a onesided spectrum) and STFT. Transforms are direct sums over a
 * table of twiddle factors in double precision. Registered in misc.c's table. */
#include "ops/op.h"
#include <math.h>

/* Twiddle table for length n: cos/sin of 2*pi*j/n, j < n. */
static int twiddles(int64_t n, double **cs, double **sn) {
  *cs = gpux__malloc((size_t)(n + 1) * sizeof(double));
  *sn = gpux__malloc((size_t)(n + 1) * sizeof(double));
  if (!*cs || !*sn) {
    free(*cs);
    free(*sn);
    return GPUX_E_NOMEM;
  }
  for (int64_t j = 0; j < n; j++) {
    double a = 2 * M_PI * (double)j / (double)n;
    (*cs)[j] = cos(a);
    (*sn)[j] = sin(a);
  }
  return 0;
}

/* One transform of length n over complex input (re, im: n values, zero-padded by the caller),
 * writing bins [0, nbins). sign -1: forward, +1: inverse (without the 1/n). */
static void dft_line(int64_t n, const double *re, const double *im, int64_t nbins, int sign,
                     const double *cs, const double *sn, double *out_re, double *out_im) {
  for (int64_t kk = 0; kk < nbins; kk++) {
    double sr = 0, si = 0;
    int64_t idx = 0;
    for (int64_t t = 0; t < n; t++) {
      double c = cs[idx], s = sign * sn[idx];
      sr += re[t] * c - im[t] * s;
      si += re[t] * s + im[t] * c;
      idx += kk;
      if (idx >= n) idx %= n;
    }
    out_re[kk] = sr;
    out_im[kk] = si;
  }
}

int gpux__op_dft(gpux_kctx *k);
int gpux__op_dft(gpux_kctx *k) {
  const gpux_tensor *x = IN(0), *len_t = IN(1);
  if (!x) return gpux__kerr(k, GPUX_E_INVALID, "missing input");
  int rank = x->ndim;
  if (rank < 2 || (x->dims[rank - 1] != 1 && x->dims[rank - 1] != 2))
    return gpux__kerr(k, GPUX_E_SHAPE, "input must end with a dimension of 1 (real) or 2 (complex)");
  int64_t axis_v;
  int rc;
  if (k->opset < 20) {
    axis_v = gpux__attr_int(k, "axis", 1);
  } else {
    axis_v = -2;
    if (IN(2) && gpux_tensor_count(IN(2)) > 0) {
      if ((rc = gpux__need_data(k, 2))) return rc;
      axis_v = gpux__load_i64(IN(2)->dtype, IN(2)->data, 0);
    }
  }
  if (axis_v < 0) axis_v += rank;
  if (axis_v < 0 || axis_v > rank - 2) return gpux__kerr(k, GPUX_E_INVALID, "axis %lld out of range", (long long)axis_v);
  int axis = (int)axis_v;
  int inverse = (int)gpux__attr_int(k, "inverse", 0);
  int onesided = (int)gpux__attr_int(k, "onesided", 0);
  int complex_in = x->dims[rank - 1] == 2;
  int64_t in_len = x->dims[axis];
  int64_t n;   /* transform length */
  if (len_t && gpux_tensor_count(len_t) > 0) {
    if ((rc = gpux__need_data(k, 1))) return rc;
    n = gpux__load_i64(len_t->dtype, len_t->data, 0);
    if (n <= 0) return gpux__kerr(k, GPUX_E_INVALID, "dft_length %lld", (long long)n);
  } else {
    n = inverse && onesided ? 2 * (in_len - 1) : in_len;
    if (n <= 0) n = 1;
  }
  int64_t dims[GPUX_MAX_DIMS];
  for (int d = 0; d < rank; d++) dims[d] = x->dims[d];
  int real_out = inverse && onesided;   /* inverse of a onesided spectrum: a real signal */
  dims[axis] = !inverse && onesided ? n / 2 + 1 : n;
  dims[rank - 1] = real_out ? 1 : 2;
  gpux_tensor *y = gpux__out(k, 0, x->dtype, rank, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (!gpux__dtype_is_float(x->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s", gpux_dtype_name(x->dtype));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= x->dims[d];
  for (int d = axis + 1; d < rank - 1; d++) inner *= x->dims[d];
  int64_t in_c = x->dims[rank - 1], out_c = dims[rank - 1], nbins = dims[axis];
  double *cs, *sn;
  if (twiddles(n, &cs, &sn)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  double *buf = gpux__calloc((size_t)(4 * n + 4), sizeof(double));
  if (!buf) {
    free(cs);
    free(sn);
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
  double *re = buf, *im = buf + n, *ore = buf + 2 * n, *oim = buf + 3 * n;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      for (int64_t t = 0; t < n; t++) re[t] = im[t] = 0;
      if (real_out) {
        /* rebuild the full spectrum from bins [0, n/2] by conjugate symmetry */
        for (int64_t t = 0; t < n; t++) {
          int64_t src = t <= n / 2 ? t : n - t;
          double sign = t <= n / 2 ? 1 : -1;
          if (src >= in_len) continue;
          int64_t at = ((o * in_len + src) * inner + i) * in_c;
          re[t] = gpux__load_f64(x->dtype, x->data, at);
          im[t] = complex_in ? sign * gpux__load_f64(x->dtype, x->data, at + 1) : 0;
        }
      } else {
        for (int64_t t = 0; t < n && t < in_len; t++) {
          int64_t at = ((o * in_len + t) * inner + i) * in_c;
          re[t] = gpux__load_f64(x->dtype, x->data, at);
          im[t] = complex_in ? gpux__load_f64(x->dtype, x->data, at + 1) : 0;
        }
      }
      dft_line(n, re, im, nbins, inverse ? 1 : -1, cs, sn, ore, oim);
      for (int64_t b = 0; b < nbins; b++) {
        int64_t at = ((o * nbins + b) * inner + i) * out_c;
        double scale = inverse ? 1.0 / (double)n : 1.0;
        gpux__store_f64(y->dtype, y->data, at, ore[b] * scale);
        if (out_c == 2) gpux__store_f64(y->dtype, y->data, at + 1, oim[b] * scale);
      }
    }
  free(buf);
  free(cs);
  free(sn);
  return 0;
}

int gpux__op_stft(gpux_kctx *k);
int gpux__op_stft(gpux_kctx *k) {
  const gpux_tensor *sig = IN(0), *step_t = IN(1), *win = IN(2), *flen_t = IN(3);
  if (!sig || !step_t) return gpux__kerr(k, GPUX_E_INVALID, "signal and frame_step are required");
  if (sig->ndim != 3 || (sig->dims[2] != 1 && sig->dims[2] != 2))
    return gpux__kerr(k, GPUX_E_SHAPE, "signal must be [batch, length, 1 or 2]");
  int rc;
  for (int i = 1; i < 4; i++)
    if ((rc = gpux__need_data(k, i))) return rc;
  int64_t step = gpux__load_i64(step_t->dtype, step_t->data, 0);
  int64_t flen = -1;
  if (win && win->ndim != 1) return gpux__kerr(k, GPUX_E_SHAPE, "window must be 1-D");
  if (flen_t && gpux_tensor_count(flen_t) > 0) flen = gpux__load_i64(flen_t->dtype, flen_t->data, 0);
  if (win) {
    if (flen >= 0 && flen != win->dims[0]) return gpux__kerr(k, GPUX_E_SHAPE, "frame_length differs from the window length");
    flen = win->dims[0];
  }
  if (flen <= 0) return gpux__kerr(k, GPUX_E_INVALID, "frame_length or window is required");
  if (step <= 0) return gpux__kerr(k, GPUX_E_INVALID, "frame_step %lld", (long long)step);
  int onesided = (int)gpux__attr_int(k, "onesided", 1);
  int complex_in = sig->dims[2] == 2;
  if (complex_in && onesided) onesided = 0;
  int64_t B = sig->dims[0], L = sig->dims[1];
  if (L < flen) return gpux__kerr(k, GPUX_E_SHAPE, "signal shorter than a frame");
  int64_t frames = (L - flen) / step + 1, bins = onesided ? flen / 2 + 1 : flen;
  int64_t dims[4] = {B, frames, bins, 2};
  gpux_tensor *y = gpux__out(k, 0, sig->dtype, 4, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  if (!gpux__dtype_is_float(sig->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s", gpux_dtype_name(sig->dtype));
  double *cs, *sn;
  if (twiddles(flen, &cs, &sn)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  double *buf = gpux__calloc((size_t)(4 * flen + 4), sizeof(double));
  if (!buf) {
    free(cs);
    free(sn);
    return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  }
  double *re = buf, *im = buf + flen, *ore = buf + 2 * flen, *oim = buf + 3 * flen;
  int64_t ch = sig->dims[2];
  for (int64_t b = 0; b < B; b++)
    for (int64_t f = 0; f < frames; f++) {
      for (int64_t t = 0; t < flen; t++) {
        double w = win ? gpux__load_f64(win->dtype, win->data, t) : 1;
        int64_t at = (b * L + f * step + t) * ch;
        re[t] = w * gpux__load_f64(sig->dtype, sig->data, at);
        im[t] = complex_in ? w * gpux__load_f64(sig->dtype, sig->data, at + 1) : 0;
      }
      dft_line(flen, re, im, bins, -1, cs, sn, ore, oim);
      for (int64_t kk = 0; kk < bins; kk++) {
        int64_t at = ((b * frames + f) * bins + kk) * 2;
        gpux__store_f64(y->dtype, y->data, at, ore[kk]);
        gpux__store_f64(y->dtype, y->data, at + 1, oim[kk]);
      }
    }
  free(buf);
  free(cs);
  free(sn);
  return 0;
}
