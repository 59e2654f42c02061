/* fft.c — the discrete Fourier transform of real frames for audio features: a mixed-radix
 * complex FFT (radix 2, 4 and 5 butterflies written out, any other prime factor by a direct
 * butterfly) run on n/2 points, with the even samples as real parts and the odd ones as
 * imaginary parts, then split into the n/2 + 1 bins of the real signal's spectrum. Double
 * precision throughout: log-mel features sit 80 dB below a loud bin and still count. */
#include "prepost/prepost-impl.h"
#include <math.h>

#define MAX_FACTORS 32

typedef struct {
  double re, im;
} cpx;

struct gpux__rfft {
  int n;                        /* real length (even) */
  int m;                        /* complex length n / 2 */
  int n_factors;
  int radix[MAX_FACTORS];       /* m = radix[0] * radix[1] * ... */
  int span[MAX_FACTORS];        /* the product of the radices after each one */
  cpx *twiddle;                 /* (m): e^(-2 pi i k / m) */
  cpx *split;                   /* (m / 2 + 1): e^(-2 pi i k / n), to split the half-length result */
  cpx *work;                    /* (m): the complex result */
  cpx *scratch;                 /* (largest radix): one direct butterfly's inputs */
};

static cpx cmul(cpx a, cpx b) { return (cpx){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re}; }

int gpux__rfft_create(int n, gpux__rfft **out) {
  *out = NULL;
  if (n < 2 || n % 2 || n > (1 << 24))
    return gpux__error(GPUX_E_INVALID, "FFT length %d: must be even, 2 to 2^24", n);
  gpux__rfft *p = gpux__calloc(1, sizeof *p);
  if (!p) return GPUX_E_NOMEM;
  p->n = n;
  p->m = n / 2;
  /* factor m: fours first (the cheapest butterfly per point), then twos, then odd primes */
  int rest = p->m, largest = 1;
  while (rest > 1) {
    int r = rest % 4 == 0 ? 4 : rest % 2 == 0 ? 2 : 0;
    for (int d = 3; !r; d += 2) r = rest % d == 0 ? d : (int64_t)d * d > rest ? rest : 0;
    p->radix[p->n_factors++] = r;
    rest /= r;
    if (r > largest) largest = r;
  }
  int span = p->m;
  for (int i = 0; i < p->n_factors; i++) p->span[i] = span /= p->radix[i];
  p->twiddle = gpux__malloc(sizeof(cpx) * (size_t)p->m);
  p->split = gpux__malloc(sizeof(cpx) * (size_t)(p->m / 2 + 1));
  p->work = gpux__malloc(sizeof(cpx) * (size_t)p->m);
  p->scratch = gpux__malloc(sizeof(cpx) * (size_t)largest);
  if (!p->twiddle || !p->split || !p->work || !p->scratch) {
    gpux__rfft_free(p);
    return GPUX_E_NOMEM;
  }
  for (int k = 0; k < p->m; k++) {
    double a = -2 * M_PI * k / p->m;
    p->twiddle[k] = (cpx){cos(a), sin(a)};
  }
  for (int k = 0; k <= p->m / 2; k++) {
    double a = -2 * M_PI * k / n;
    p->split[k] = (cpx){cos(a), sin(a)};
  }
  *out = p;
  return 0;
}

void gpux__rfft_free(gpux__rfft *p) {
  if (!p) return;
  free(p->twiddle);
  free(p->split);
  free(p->work);
  free(p->scratch);
  free(p);
}

int gpux__rfft_length(const gpux__rfft *p) { return p->n; }

/* Decimation in time, level `f`: the sub-transform of length radix[f] * span[f] whose inputs are
 * the complex points start, start + stride, ... (stride = m / that length; point j is the real
 * samples 2j and 2j + 1), written in order to out. */
static void transform(const gpux__rfft *p, cpx *out, const double *x, int start, int stride, int f) {
  int r = p->radix[f], len = p->span[f];
  if (len == 1) {
    for (int q = 0; q < r; q++) {
      int j = start + q * stride;
      out[q] = (cpx){x[2 * j], x[2 * j + 1]};
    }
  } else {
    for (int q = 0; q < r; q++) transform(p, out + q * len, x, start + q * stride, stride * r, f + 1);
  }
  /* combine: out[k + q len] (q < r) are r transforms of length len; the twiddle of point k of
   * sub-transform q is e^(-2 pi i q k / (r len)) = twiddle[q k stride] */
  const cpx *tw = p->twiddle;
  if (r == 2) {
    for (int k = 0; k < len; k++) {
      cpx a = out[k], b = cmul(out[k + len], tw[k * stride]);
      out[k] = (cpx){a.re + b.re, a.im + b.im};
      out[k + len] = (cpx){a.re - b.re, a.im - b.im};
    }
  } else if (r == 4) {
    for (int k = 0; k < len; k++) {
      cpx a = out[k], b = cmul(out[k + len], tw[k * stride]), c = cmul(out[k + 2 * len], tw[2 * k * stride]),
          d = cmul(out[k + 3 * len], tw[3 * k * stride]);
      cpx s0 = {a.re + c.re, a.im + c.im}, s1 = {a.re - c.re, a.im - c.im};
      cpx s2 = {b.re + d.re, b.im + d.im}, s3 = {b.re - d.re, b.im - d.im};
      out[k] = (cpx){s0.re + s2.re, s0.im + s2.im};
      out[k + 2 * len] = (cpx){s0.re - s2.re, s0.im - s2.im};
      out[k + len] = (cpx){s1.re + s3.im, s1.im - s3.re};     /* s1 - i s3 */
      out[k + 3 * len] = (cpx){s1.re - s3.im, s1.im + s3.re}; /* s1 + i s3 */
    }
  } else if (r == 5) {
    /* with t1 = b + e, t2 = c + d, t3 = b - e, t4 = c - d (b..e twiddled):
     * X1, X4 = a + c1 t1 + c2 t2 -/+ i (s1 t3 + s2 t4); X2, X3 = a + c2 t1 + c1 t2 -/+ i (s2 t3 - s1 t4),
     * c_j = cos(2 pi j / 5), s_j = sin(2 pi j / 5) */
    const double c1 = 0.30901699437494742, c2 = -0.80901699437494742;
    const double s1 = 0.95105651629515357, s2 = 0.58778525229247313;
    for (int k = 0; k < len; k++) {
      cpx a = out[k], b = cmul(out[k + len], tw[k * stride]), c = cmul(out[k + 2 * len], tw[2 * k * stride]),
          d = cmul(out[k + 3 * len], tw[3 * k * stride]), e = cmul(out[k + 4 * len], tw[4 * k * stride]);
      cpx t1 = {b.re + e.re, b.im + e.im}, t2 = {c.re + d.re, c.im + d.im};
      cpx t3 = {b.re - e.re, b.im - e.im}, t4 = {c.re - d.re, c.im - d.im};
      cpx m1 = {a.re + c1 * t1.re + c2 * t2.re, a.im + c1 * t1.im + c2 * t2.im};
      cpx m2 = {a.re + c2 * t1.re + c1 * t2.re, a.im + c2 * t1.im + c1 * t2.im};
      cpx n1 = {s1 * t3.re + s2 * t4.re, s1 * t3.im + s2 * t4.im};
      cpx n2 = {s2 * t3.re - s1 * t4.re, s2 * t3.im - s1 * t4.im};
      out[k] = (cpx){a.re + t1.re + t2.re, a.im + t1.im + t2.im};
      out[k + len] = (cpx){m1.re + n1.im, m1.im - n1.re};     /* m1 - i n1 */
      out[k + 4 * len] = (cpx){m1.re - n1.im, m1.im + n1.re}; /* m1 + i n1 */
      out[k + 2 * len] = (cpx){m2.re + n2.im, m2.im - n2.re};
      out[k + 3 * len] = (cpx){m2.re - n2.im, m2.im + n2.re};
    }
  } else {
    /* direct butterfly: out[k + u len] = sum_q in_q e^(-2 pi i u q / r), with
     * e^(-2 pi i t / r) = twiddle[t (m / r)] and m / r = len * stride */
    cpx *in = p->scratch;
    int unit = len * stride;
    for (int k = 0; k < len; k++) {
      for (int q = 0; q < r; q++) in[q] = q ? cmul(out[k + q * len], tw[q * k * stride]) : out[k];
      for (int u = 0; u < r; u++) {
        cpx acc = in[0];
        for (int q = 1, t = u; q < r; q++, t = (t + u) % r) {
          cpx w = cmul(in[q], tw[t * unit]);
          acc.re += w.re;
          acc.im += w.im;
        }
        out[k + u * len] = acc;
      }
    }
  }
}

void gpux__rfft_run(gpux__rfft *p, const double *x, double *re, double *im) {
  int m = p->m;
  cpx *z = p->work;
  if (p->n_factors) transform(p, z, x, 0, 1, 0);
  else z[0] = (cpx){x[0], x[1]}; /* n = 2 */
  /* z = E + i O where E and O are the transforms of the even and odd samples (both of real
   * signals, so E[k] = (z[k] + conj z[m-k]) / 2 and O[k] = (z[k] - conj z[m-k]) / 2i), and
   * X[k] = E[k] + e^(-2 pi i k / n) O[k] for k = 0 .. m; X[n - k] = conj X[k] is not needed. */
  for (int k = 0; k <= m / 2; k++) {
    cpx a = z[k % m], b = z[(m - k) % m];
    cpx e = {(a.re + b.re) / 2, (a.im - b.im) / 2};
    cpx o = {(a.im + b.im) / 2, (b.re - a.re) / 2};
    cpx w = p->split[k], wo = cmul(w, o);
    re[k] = e.re + wo.re;
    im[k] = e.im + wo.im;
    /* the mirror bin m - k: E[m-k] = conj E[k], O[m-k] = conj O[k], and its twiddle is
     * e^(-2 pi i (m - k) / n) = -conj w */
    cpx wm = {-w.re, w.im}, wom = cmul(wm, (cpx){o.re, -o.im});
    re[m - k] = e.re + wom.re;
    im[m - k] = -e.im + wom.im;
  }
}
