/* loss.c — training-side operators: the losses NegativeLogLikelihoodLoss and
 * SoftmaxCrossEntropyLoss, and the optimizers Adagrad, Adam and Momentum of the
 * "ai.onnx.preview.training" domain. All compute in float64 and store in the input's dtype. */
#include "ops/op.h"
#include <math.h>

static int is_float(const gpux_tensor *t) { return t && gpux__dtype_is_float(t->dtype); }

static int same_shape(const gpux_tensor *a, const gpux_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d]) return 0;
  return 1;
}

/* ---- losses ---- */

enum { RED_NONE, RED_SUM, RED_MEAN };

/* The shared part of both losses. logp is [N, C, D] log-probabilities (D = product of the
 * extra dims); target [N, D]. loss[n, d] = -w[t] * logp[n, t, d] with t = target[n, d]
 * (0 where t == ignore_index); mean divides by the sum of the weights used. */
static int nll(gpux__kctx *k, const double *logp, const gpux_tensor *target, const gpux_tensor *weight,
               int64_t N, int64_t C, int64_t D, gpux_tensor *out) {
  const char *rs = gpux__attr_string(k, "reduction", "mean");
  int red = !strcmp(rs, "none") ? RED_NONE : !strcmp(rs, "sum") ? RED_SUM : !strcmp(rs, "mean") ? RED_MEAN : -1;
  if (red < 0) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "reduction '%s'", rs);
  int has_ii = gpux__has_attr(k, "ignore_index");
  int64_t ii = gpux__attr_int(k, "ignore_index", 0);
  double total = 0, wsum = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t d = 0; d < D; d++) {
      int64_t t = gpux__load_i64(target->dtype, target->data, n * D + d);
      double l = 0, w = 0;
      if (!(has_ii && t == ii)) {
        if (t < 0 || t >= C)
          return gpux__kerr(k, GPUX_E_INVALID, "target %lld out of range [0, %lld)", (long long)t, (long long)C);
        w = weight ? gpux__load_f64(weight->dtype, weight->data, t) : 1;
        l = -logp[(n * C + t) * D + d] * w;
      }
      if (red == RED_NONE) gpux__store_f64(out->dtype, out->data, n * D + d, l);
      total += l;
      wsum += w;
    }
  if (red == RED_SUM) gpux__store_f64(out->dtype, out->data, 0, total);
  if (red == RED_MEAN) gpux__store_f64(out->dtype, out->data, 0, total / wsum);
  return 0;
}

/* Checks input [N, C, d1...], target [N, d1...] (int32/int64) and weight [C]; makes output 0. */
static int loss_shapes(gpux__kctx *k, gpux_tensor **out, int64_t *N, int64_t *C, int64_t *D) {
  const gpux_tensor *x = IN(0), *t = IN(1), *w = IN(2);
  if (!x || !t) return gpux__kerr(k, GPUX_E_INVALID, "missing input or target");
  if (!is_float(x)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input: %s not supported", gpux_dtype_name(x->dtype));
  if (t->dtype != GPUX_DT_INT32 && t->dtype != GPUX_DT_INT64)
    return gpux__kerr(k, GPUX_E_DTYPE, "target must be int32 or int64, got %s", gpux_dtype_name(t->dtype));
  if (x->ndim < 2) return gpux__kerr(k, GPUX_E_SHAPE, "input must be [N, C, ...], got rank %d", x->ndim);
  int ok = t->ndim == x->ndim - 1 && t->dims[0] == x->dims[0];
  for (int d = 1; ok && d < t->ndim; d++) ok = t->dims[d] == x->dims[d + 1];
  if (!ok) return gpux__kerr(k, GPUX_E_SHAPE, "target shape does not match input [N, C, d1...] minus C");
  *N = x->dims[0];
  *C = x->dims[1];
  *D = gpux__shape_count(x->ndim - 2, x->dims + 2);
  if (w) {
    if (!is_float(w)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "weight: %s not supported", gpux_dtype_name(w->dtype));
    if (w->ndim != 1 || w->dims[0] != *C) return gpux__kerr(k, GPUX_E_SHAPE, "weight must be [C]");
  }
  int none = !strcmp(gpux__attr_string(k, "reduction", "mean"), "none");
  *out = gpux__out(k, 0, x->dtype, none ? t->ndim : 0, t->dims);
  return *out ? 0 : k->status;
}

static int op_nll_loss(gpux__kctx *k) {
  gpux_tensor *out;
  int64_t N, C, D;
  if (loss_shapes(k, &out, &N, &C, &D)) return k->status;
  if (k->shape_only) return 0;
  const gpux_tensor *x = IN(0);
  int64_t n = gpux_tensor_count(x);
  double *logp = gpux__malloc((size_t)(n > 0 ? n : 1) * sizeof *logp);
  if (!logp) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) logp[i] = gpux__load_f64(x->dtype, x->data, i);
  int rc = nll(k, logp, IN(1), IN(2), N, C, D, out);
  free(logp);
  return rc;
}

static int op_softmax_ce_loss(gpux__kctx *k) {
  gpux_tensor *out;
  int64_t N, C, D;
  if (loss_shapes(k, &out, &N, &C, &D)) return k->status;
  const gpux_tensor *x = IN(0);
  gpux_tensor *lp = NULL; /* log_prob, optional */
  if (OUTPUT_WANTED(1) && !(lp = gpux__out(k, 1, x->dtype, x->ndim, x->dims))) return k->status;
  if (k->shape_only) return 0;
  int64_t n = gpux_tensor_count(x);
  double *logp = gpux__malloc((size_t)(n > 0 ? n : 1) * sizeof *logp);
  if (!logp) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) logp[i] = gpux__load_f64(x->dtype, x->data, i);
  /* log-softmax along C */
  for (int64_t a = 0; a < N; a++)
    for (int64_t d = 0; d < D; d++) {
      double *p = logp + a * C * D + d, m = -INFINITY, s = 0;
      for (int64_t c = 0; c < C; c++) m = p[c * D] > m ? p[c * D] : m;
      for (int64_t c = 0; c < C; c++) s += exp(p[c * D] - m);
      double ls = log(s);
      for (int64_t c = 0; c < C; c++) p[c * D] = p[c * D] - m - ls;
    }
  if (lp)
    for (int64_t i = 0; i < n; i++) gpux__store_f64(lp->dtype, lp->data, i, logp[i]);
  int rc = nll(k, logp, IN(1), IN(2), N, C, D, out);
  free(logp);
  return rc;
}

/* ---- optimizers: inputs R (learning rate), T (update count), then groups of n tensors ---- */

/* Checks R, T and that inputs come in `groups` groups of n tensors shaped like X_i; makes the
 * outputs (out_groups groups of n, each like X_i). Returns n, or a negative error. */
static int optim_setup(gpux__kctx *k, int groups, int out_groups, double *r, int64_t *t) {
  if (k->n_in < 2 + groups || (k->n_in - 2) % groups)
    return gpux__kerr(k, GPUX_E_INVALID, "expected R, T and %d groups of tensors, got %d inputs", groups, k->n_in);
  int n = (k->n_in - 2) / groups;
  if (k->n_out > out_groups * n)
    return gpux__kerr(k, GPUX_E_INVALID, "expected at most %d outputs, got %d", out_groups * n, k->n_out);
  const gpux_tensor *R = IN(0), *T = IN(1);
  if (!R || !T || !is_float(R) || gpux_tensor_count(R) != 1)
    return gpux__kerr(k, GPUX_E_INVALID, "R must be a float scalar");
  if (T->dtype != GPUX_DT_INT64 || gpux_tensor_count(T) != 1)
    return gpux__kerr(k, GPUX_E_INVALID, "T must be an int64 scalar");
  for (int i = 0; i < n; i++) {
    const gpux_tensor *x = IN(2 + i);
    if (!x || !is_float(x)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "input %d must be a float tensor", 2 + i);
    for (int g = 1; g < groups; g++) {
      const gpux_tensor *o = IN(2 + g * n + i);
      if (!o || !same_shape(o, x) || !is_float(o))
        return gpux__kerr(k, GPUX_E_SHAPE, "input %d must be a float tensor shaped like input %d", 2 + g * n + i, 2 + i);
    }
    for (int g = 0; g < out_groups; g++)
      if (!gpux__out(k, g * n + i, x->dtype, x->ndim, x->dims)) return k->status;
  }
  if (!k->shape_only) {
    if (!R->data || !T->data) return gpux__kerr(k, GPUX_E_INVALID, "R and T must have data");
    *r = gpux__load_f64(R->dtype, R->data, 0);
    *t = gpux__load_i64(T->dtype, T->data, 0);
  }
  return n;
}

#define OUTP(i) (OUTPUT_WANTED(i) ? k->out[(i)] : NULL)
#define LD(t, i) gpux__load_f64((t)->dtype, (t)->data, (i))
#define ST(t, i, v) gpux__store_f64((t)->dtype, (t)->data, (i), (v))

static int op_adagrad(gpux__kctx *k) {
  double r = 0;
  int64_t t = 0;
  int n = optim_setup(k, 3, 2, &r, &t);
  if (n < 0 || k->shape_only) return n < 0 ? n : 0;
  double decay = gpux__attr_float(k, "decay_factor", 0), eps = gpux__attr_float(k, "epsilon", 1e-6f);
  double lambda = gpux__attr_float(k, "norm_coefficient", 0);
  double rt = r / (1 + (double)t * decay);
  for (int i = 0; i < n; i++) {
    const gpux_tensor *X = IN(2 + i), *G = IN(2 + n + i), *H = IN(2 + 2 * n + i);
    gpux_tensor *Xo = OUTP(i), *Ho = OUTP(n + i);
    for (int64_t j = 0; j < gpux_tensor_count(X); j++) {
      double x = LD(X, j), g = lambda * x + LD(G, j), h = LD(H, j) + g * g;
      if (Ho) ST(Ho, j, h);
      if (Xo) ST(Xo, j, x - rt * g / (sqrt(h) + eps));
    }
  }
  return 0;
}

static int op_adam(gpux__kctx *k) {
  double r = 0;
  int64_t t = 0;
  int n = optim_setup(k, 4, 3, &r, &t);
  if (n < 0 || k->shape_only) return n < 0 ? n : 0;
  double alpha = gpux__attr_float(k, "alpha", 0.9f), beta = gpux__attr_float(k, "beta", 0.999f);
  double eps = gpux__attr_float(k, "epsilon", 1e-6f), lambda = gpux__attr_float(k, "norm_coefficient", 0);
  double post = gpux__attr_float(k, "norm_coefficient_post", 0);
  double rt = r;
  if (t > 0) rt *= sqrt(1 - pow(beta, (double)t)) / (1 - pow(alpha, (double)t));
  for (int i = 0; i < n; i++) {
    const gpux_tensor *X = IN(2 + i), *G = IN(2 + n + i), *V = IN(2 + 2 * n + i), *H = IN(2 + 3 * n + i);
    gpux_tensor *Xo = OUTP(i), *Vo = OUTP(n + i), *Ho = OUTP(2 * n + i);
    for (int64_t j = 0; j < gpux_tensor_count(X); j++) {
      double x = LD(X, j), g = lambda * x + LD(G, j);
      double v = alpha * LD(V, j) + (1 - alpha) * g;
      double h = beta * LD(H, j) + (1 - beta) * g * g;
      if (Vo) ST(Vo, j, v);
      if (Ho) ST(Ho, j, h);
      if (Xo) ST(Xo, j, (1 - post) * (x - rt * v / (sqrt(h) + eps)));
    }
  }
  return 0;
}

static int op_momentum(gpux__kctx *k) {
  double r = 0;
  int64_t t = 0;
  int n = optim_setup(k, 3, 2, &r, &t);
  if (n < 0) return n;
  const char *mode = gpux__attr_string(k, "mode", "standard");
  int nesterov = !strcmp(mode, "nesterov");
  if (!nesterov && strcmp(mode, "standard")) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "mode '%s'", mode);
  if (k->shape_only) return 0;
  double alpha = gpux__attr_float(k, "alpha", 0), beta = gpux__attr_float(k, "beta", 0);
  double lambda = gpux__attr_float(k, "norm_coefficient", 0);
  double bt = t > 0 ? beta : 1; /* the first update takes the gradient as is */
  for (int i = 0; i < n; i++) {
    const gpux_tensor *X = IN(2 + i), *G = IN(2 + n + i), *V = IN(2 + 2 * n + i);
    gpux_tensor *Xo = OUTP(i), *Vo = OUTP(n + i);
    for (int64_t j = 0; j < gpux_tensor_count(X); j++) {
      double x = LD(X, j), g = lambda * x + LD(G, j), v = alpha * LD(V, j) + bt * g;
      if (Vo) ST(Vo, j, v);
      if (Xo) ST(Xo, j, nesterov ? x - r * (g + alpha * v) : x - r * v);
    }
  }
  return 0;
}

const gpux__op_def gpux__ops_loss[] = {
  {"", "NegativeLogLikelihoodLoss", op_nll_loss, 1, 0},
  {"", "SoftmaxCrossEntropyLoss", op_softmax_ce_loss, 1, 0},
  {"ai.onnx.preview.training", "Adagrad", op_adagrad, 1, 0},
  {"ai.onnx.preview.training", "Adam", op_adam, 1, 0},
  {"ai.onnx.preview.training", "Momentum", op_momentum, 1, 0},
  {0},
};
