/* signal.c — the Fourier operators DFT (opsets 17 and 20: forward, inverse, onesided real
 * transforms and the inverse of a onesided spectrum) and STFT. Transforms run in double
 * precision: radix-2 FFT for power-of-two lengths, Bluestein's chirp-z (over a power-of-two FFT)
 * for other long lengths, a direct sum for short ones. Lines run in parallel. Registered in
 * misc.c's table. */
#include "ops/op.h"
#include <math.h>

enum { PLAN_DIRECT, PLAN_RADIX2, PLAN_BLUESTEIN };

/* How to transform lines of length n with exponent sign (-1 forward, +1 inverse, no 1/n). */
typedef struct {
  int64_t n, m;        /* signal length; FFT length (n for radix-2, >= 2n-1 for Bluestein) */
  int sign, kind;
  double *cs, *sn;     /* direct: cos/sin(2 pi j / n), j < n; FFT: cos/sin(-2 pi j / m), j < m/2 */
  double *wr, *wi;     /* Bluestein chirp w_j = exp(sign i pi j^2 / n), j < n */
  double *br, *bi;     /* Bluestein: FFT of the conjugate chirp, wrapped to length m */
} fft_plan;

static void plan_free(fft_plan *p) {
  free(p->cs);
  free(p->sn);
  free(p->wr);
  free(p->wi);
  free(p->br);
  free(p->bi);
  memset(p, 0, sizeof *p);
}

/* In-place forward radix-2 FFT of length m (a power of two) with twiddles cs/sn [m/2]. */
static void fft_pow2(int64_t m, double *re, double *im, const double *cs, const double *sn) {
  for (int64_t i = 1, j = 0; i < m; i++) {   /* bit reversal */
    int64_t bit = m >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      double t = re[i]; re[i] = re[j]; re[j] = t;
      t = im[i]; im[i] = im[j]; im[j] = t;
    }
  }
  for (int64_t len = 2; len <= m; len <<= 1) {
    int64_t half = len >> 1, step = m / len;
    for (int64_t s = 0; s < m; s += len)
      for (int64_t q = 0; q < half; q++) {
        double c = cs[q * step], w = sn[q * step];
        int64_t a = s + q, b = a + half;
        double tr = re[b] * c - im[b] * w, ti = re[b] * w + im[b] * c;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
      }
  }
}

static int plan_init(fft_plan *p, int64_t n, int sign) {
  memset(p, 0, sizeof *p);
  p->n = n;
  p->sign = sign;
  int pow2 = n > 0 && (n & (n - 1)) == 0;
  p->kind = pow2 ? PLAN_RADIX2 : n <= 64 ? PLAN_DIRECT : PLAN_BLUESTEIN;
  if (p->kind == PLAN_DIRECT) {
    p->cs = gpux__malloc((size_t)n * sizeof(double));
    p->sn = gpux__malloc((size_t)n * sizeof(double));
    if (!p->cs || !p->sn) goto oom;
    for (int64_t j = 0; j < n; j++) {
      double a = 2 * M_PI * (double)j / (double)n;
      p->cs[j] = cos(a);
      p->sn[j] = sign * sin(a);
    }
    return 0;
  }
  int64_t m = 1;
  if (p->kind == PLAN_RADIX2) m = n;
  else while (m < 2 * n - 1) m <<= 1;
  p->m = m;
  p->cs = gpux__malloc((size_t)(m / 2 + 1) * sizeof(double));
  p->sn = gpux__malloc((size_t)(m / 2 + 1) * sizeof(double));
  if (!p->cs || !p->sn) goto oom;
  /* radix-2 plans carry the requested sign; Bluestein's inner FFT is always forward */
  int fsign = p->kind == PLAN_RADIX2 ? sign : -1;
  for (int64_t j = 0; j < m / 2; j++) {
    double a = 2 * M_PI * (double)j / (double)m;
    p->cs[j] = cos(a);
    p->sn[j] = fsign * sin(a);
  }
  if (p->kind == PLAN_RADIX2) return 0;
  p->wr = gpux__malloc((size_t)n * sizeof(double));
  p->wi = gpux__malloc((size_t)n * sizeof(double));
  p->br = gpux__calloc((size_t)m, sizeof(double));
  p->bi = gpux__calloc((size_t)m, sizeof(double));
  if (!p->wr || !p->wi || !p->br || !p->bi) goto oom;
  for (int64_t j = 0, j2 = 0; j < n; j++) {
    double a = M_PI * (double)j2 / (double)n;   /* j2 = j^2 mod 2n keeps the angle exact */
    p->wr[j] = cos(a);
    p->wi[j] = sign * sin(a);
    j2 = (j2 + 2 * j + 1) % (2 * n);
  }
  for (int64_t j = 0; j < n; j++) {
    p->br[j] = p->wr[j];
    p->bi[j] = -p->wi[j];
    if (j) {
      p->br[m - j] = p->wr[j];
      p->bi[m - j] = -p->wi[j];
    }
  }
  fft_pow2(m, p->br, p->bi, p->cs, p->sn);
  return 0;
oom:
  plan_free(p);
  return GPUX_E_NOMEM;
}

/* Scratch doubles one line needs. */
static int64_t plan_work(const fft_plan *p) { return p->kind == PLAN_BLUESTEIN ? 2 * p->m : 2 * p->n; }

/* Transforms re/im [n] (zero-padded by the caller) into out_re/out_im [nbins <= n]. */
static void plan_exec(const fft_plan *p, const double *re, const double *im, int64_t nbins,
                      double *out_re, double *out_im, double *work) {
  int64_t n = p->n;
  if (p->kind == PLAN_DIRECT) {
    for (int64_t kk = 0; kk < nbins; kk++) {
      double sr = 0, si = 0;
      int64_t idx = 0;
      for (int64_t t = 0; t < n; t++) {
        double c = p->cs[idx], s = p->sn[idx];
        sr += re[t] * c - im[t] * s;
        si += re[t] * s + im[t] * c;
        idx += kk;
        if (idx >= n) idx %= n;
      }
      out_re[kk] = sr;
      out_im[kk] = si;
    }
    return;
  }
  if (p->kind == PLAN_RADIX2) {
    double *ar = work, *ai = work + n;
    memcpy(ar, re, (size_t)n * sizeof(double));
    memcpy(ai, im, (size_t)n * sizeof(double));
    fft_pow2(n, ar, ai, p->cs, p->sn);
    memcpy(out_re, ar, (size_t)nbins * sizeof(double));
    memcpy(out_im, ai, (size_t)nbins * sizeof(double));
    return;
  }
  int64_t m = p->m;
  double *ar = work, *ai = work + m;
  for (int64_t j = 0; j < n; j++) {
    ar[j] = re[j] * p->wr[j] - im[j] * p->wi[j];
    ai[j] = re[j] * p->wi[j] + im[j] * p->wr[j];
  }
  for (int64_t j = n; j < m; j++) ar[j] = ai[j] = 0;
  fft_pow2(m, ar, ai, p->cs, p->sn);
  for (int64_t j = 0; j < m; j++) {   /* multiply, conjugate for the inverse FFT */
    double r = ar[j] * p->br[j] - ai[j] * p->bi[j];
    double i = ar[j] * p->bi[j] + ai[j] * p->br[j];
    ar[j] = r;
    ai[j] = -i;
  }
  fft_pow2(m, ar, ai, p->cs, p->sn);
  for (int64_t kk = 0; kk < nbins; kk++) {
    double cr = ar[kk] / (double)m, ci = -ai[kk] / (double)m;
    out_re[kk] = cr * p->wr[kk] - ci * p->wi[kk];
    out_im[kk] = cr * p->wi[kk] + ci * p->wr[kk];
  }
}

/* ---- DFT ---- */

typedef struct {
  const fft_plan *plan;
  const gpux_tensor *x;
  gpux_tensor *y;
  int64_t inner, in_len, in_c, out_c, nbins;
  int real_out, complex_in, inverse;
  int failed;
} dft_job;

static void dft_lines(void *ctx, int64_t begin, int64_t end) {
  dft_job *j = ctx;
  const fft_plan *p = j->plan;
  int64_t n = p->n;
  double *buf = gpux__malloc((size_t)(4 * n + plan_work(p) + 4) * sizeof(double));
  if (!buf) {
    j->failed = 1;
    return;
  }
  double *re = buf, *im = buf + n, *ore = buf + 2 * n, *oim = buf + 3 * n, *work = buf + 4 * n;
  const gpux_tensor *x = j->x;
  for (int64_t line = begin; line < end; line++) {
    int64_t o = line / j->inner, i = line % j->inner;
    for (int64_t t = 0; t < n; t++) re[t] = im[t] = 0;
    if (j->real_out) {
      /* rebuild the full spectrum from bins [0, n/2] by conjugate symmetry */
      for (int64_t t = 0; t < n; t++) {
        int64_t src = t <= n / 2 ? t : n - t;
        double sign = t <= n / 2 ? 1 : -1;
        if (src >= j->in_len) continue;
        int64_t at = ((o * j->in_len + src) * j->inner + i) * j->in_c;
        re[t] = gpux__load_f64(x->dtype, x->data, at);
        im[t] = j->complex_in ? sign * gpux__load_f64(x->dtype, x->data, at + 1) : 0;
      }
    } else {
      for (int64_t t = 0; t < n && t < j->in_len; t++) {
        int64_t at = ((o * j->in_len + t) * j->inner + i) * j->in_c;
        re[t] = gpux__load_f64(x->dtype, x->data, at);
        im[t] = j->complex_in ? gpux__load_f64(x->dtype, x->data, at + 1) : 0;
      }
    }
    plan_exec(p, re, im, j->nbins, ore, oim, work);
    double scale = j->inverse ? 1.0 / (double)n : 1.0;
    for (int64_t b = 0; b < j->nbins; b++) {
      int64_t at = ((o * j->nbins + b) * j->inner + i) * j->out_c;
      gpux__store_f64(j->y->dtype, j->y->data, at, ore[b] * scale);
      if (j->out_c == 2) gpux__store_f64(j->y->dtype, j->y->data, at + 1, oim[b] * scale);
    }
  }
  free(buf);
}

int gpux__op_dft(gpux__kctx *k);
int gpux__op_dft(gpux__kctx *k) {
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
  int64_t in_len = x->dims[axis];
  int64_t n;   /* transform length */
  if (len_t && gpux_tensor_count(len_t) > 0) {
    if ((rc = gpux__need_data(k, 1))) return rc;
    n = gpux__load_i64(len_t->dtype, len_t->data, 0);
    if (n <= 0 || n > ((int64_t)1 << 40)) return gpux__kerr(k, GPUX_E_INVALID, "dft_length %lld", (long long)n);
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
  dft_job j = {0};
  int64_t outer = 1;
  j.inner = 1;
  for (int d = 0; d < axis; d++) outer *= x->dims[d];
  for (int d = axis + 1; d < rank - 1; d++) j.inner *= x->dims[d];
  fft_plan plan;
  if (plan_init(&plan, n, inverse ? 1 : -1)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  j.plan = &plan;
  j.x = x;
  j.y = y;
  j.in_len = in_len;
  j.in_c = x->dims[rank - 1];
  j.out_c = dims[rank - 1];
  j.nbins = dims[axis];
  j.real_out = real_out;
  j.complex_in = x->dims[rank - 1] == 2;
  j.inverse = inverse;
  gpux__parallel_for(outer * j.inner, GPUX__MAX(1, 65536 / (n * 8 + 1)), dft_lines, &j);
  plan_free(&plan);
  if (j.failed) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  return 0;
}

/* ---- STFT ---- */

typedef struct {
  const fft_plan *plan;
  const gpux_tensor *sig, *win;
  gpux_tensor *y;
  int64_t L, ch, step, frames, bins;
  int complex_in;
  int failed;
} stft_job;

static void stft_frames(void *ctx, int64_t begin, int64_t end) {
  stft_job *j = ctx;
  const fft_plan *p = j->plan;
  int64_t flen = p->n;
  double *buf = gpux__malloc((size_t)(4 * flen + plan_work(p) + 4) * sizeof(double));
  if (!buf) {
    j->failed = 1;
    return;
  }
  double *re = buf, *im = buf + flen, *ore = buf + 2 * flen, *oim = buf + 3 * flen, *work = buf + 4 * flen;
  for (int64_t item = begin; item < end; item++) {
    int64_t b = item / j->frames, f = item % j->frames;
    for (int64_t t = 0; t < flen; t++) {
      double w = j->win ? gpux__load_f64(j->win->dtype, j->win->data, t) : 1;
      int64_t at = (b * j->L + f * j->step + t) * j->ch;
      re[t] = w * gpux__load_f64(j->sig->dtype, j->sig->data, at);
      im[t] = j->complex_in ? w * gpux__load_f64(j->sig->dtype, j->sig->data, at + 1) : 0;
    }
    plan_exec(p, re, im, j->bins, ore, oim, work);
    for (int64_t kk = 0; kk < j->bins; kk++) {
      int64_t at = (item * j->bins + kk) * 2;
      gpux__store_f64(j->y->dtype, j->y->data, at, ore[kk]);
      gpux__store_f64(j->y->dtype, j->y->data, at + 1, oim[kk]);
    }
  }
  free(buf);
}

int gpux__op_stft(gpux__kctx *k);
int gpux__op_stft(gpux__kctx *k) {
  const gpux_tensor *sig = IN(0), *step_t = IN(1), *win = IN(2), *flen_t = IN(3);
  if (!sig || !step_t) return gpux__kerr(k, GPUX_E_INVALID, "signal and frame_step are required");
  if (sig->ndim != 3 || (sig->dims[2] != 1 && sig->dims[2] != 2))
    return gpux__kerr(k, GPUX_E_SHAPE, "signal must be [batch, length, 1 or 2]");
  int rc;
  for (int i = 1; i < 4; i++)
    if ((rc = gpux__need_data(k, i))) return rc;
  if (gpux_tensor_count(step_t) < 1) return gpux__kerr(k, GPUX_E_SHAPE, "frame_step must be a scalar");
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
  fft_plan plan;
  if (plan_init(&plan, flen, -1)) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  stft_job j = {&plan, sig, win, y, L, sig->dims[2], step, frames, bins, complex_in, 0};
  gpux__parallel_for(B * frames, GPUX__MAX(1, 65536 / (flen * 8 + 1)), stft_frames, &j);
  plan_free(&plan);
  if (j.failed) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  return 0;
}
