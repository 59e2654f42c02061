/* rnn.c — the recurrent operators RNN, LSTM and GRU: forward, reverse and bidirectional, custom
 * activations with alpha/beta, clip, sequence_lens, initial states, LSTM peepholes and
 * input_forget, GRU linear_before_reset, and both layouts. Compute is float32 with the input
 * projection of all steps done as one GEMM and one GEMM per step for the recurrence; the default
 * Tanh and Sigmoid gates use the Tanh and Sigmoid ops' vectorized functions (fastmath.h). */
#include "ops/simd.h"
#include "ops/gemm.h"
#include "ops/fastmath.h"
#include <math.h>
#include <strings.h>

enum { CELL_RNN, CELL_GRU, CELL_LSTM };

enum { ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_AFFINE, ACT_LEAKY_RELU, ACT_THRESHOLDED_RELU,
       ACT_SCALED_TANH, ACT_HARD_SIGMOID, ACT_ELU, ACT_SOFTSIGN, ACT_SOFTPLUS };

typedef struct {
  int kind;
  float alpha, beta;
} activation;

static const struct {
  const char *name;
  int kind, uses_alpha, uses_beta;
  float alpha, beta;
} act_names[] = {
  {"Relu", ACT_RELU, 0, 0, 0, 0},
  {"Tanh", ACT_TANH, 0, 0, 0, 0},
  {"Sigmoid", ACT_SIGMOID, 0, 0, 0, 0},
  {"Affine", ACT_AFFINE, 1, 1, 1, 0},
  {"LeakyRelu", ACT_LEAKY_RELU, 1, 0, 0.01f, 0},
  {"ThresholdedRelu", ACT_THRESHOLDED_RELU, 1, 0, 1, 0},
  {"ScaledTanh", ACT_SCALED_TANH, 1, 1, 1, 1},
  {"HardSigmoid", ACT_HARD_SIGMOID, 1, 1, 0.2f, 0.5f},
  {"Elu", ACT_ELU, 1, 0, 1, 0},
  {"Softsign", ACT_SOFTSIGN, 0, 0, 0, 0},
  {"Softplus", ACT_SOFTPLUS, 0, 0, 0, 0},
};

/* Applies an activation to n values in place; the switch sits outside the loops. */
/* The default gates, with the Tanh and Sigmoid ops' own functions (fastmath.h), vectorized. */
GPUX_SIMD_CLONES static void act_tanh(float *restrict v, int64_t n) { FOR8(i, n, v[i] = tanh_f(v[i])); }
GPUX_SIMD_CLONES static void act_sigmoid(float *restrict v, int64_t n) { FOR8(i, n, v[i] = 1.0f / (1.0f + exp_f(-v[i]))); }

static void act_apply(const activation *a, float *v, int64_t n) {
  float al = a->alpha, be = a->beta;
  switch (a->kind) {
  case ACT_RELU: for (int64_t i = 0; i < n; i++) v[i] = v[i] > 0 ? v[i] : 0; break;
  case ACT_TANH: act_tanh(v, n); break;
  case ACT_SIGMOID: act_sigmoid(v, n); break;
  case ACT_AFFINE: for (int64_t i = 0; i < n; i++) v[i] = al * v[i] + be; break;
  case ACT_LEAKY_RELU: for (int64_t i = 0; i < n; i++) v[i] = v[i] >= 0 ? v[i] : al * v[i]; break;
  case ACT_THRESHOLDED_RELU: for (int64_t i = 0; i < n; i++) v[i] = v[i] > al ? v[i] : 0; break;
  case ACT_SCALED_TANH: for (int64_t i = 0; i < n; i++) v[i] = al * tanhf(be * v[i]); break;
  case ACT_HARD_SIGMOID:
    for (int64_t i = 0; i < n; i++) {
      float t = al * v[i] + be;
      v[i] = t < 0 ? 0 : t > 1 ? 1 : t;
    }
    break;
  case ACT_ELU: for (int64_t i = 0; i < n; i++) v[i] = v[i] >= 0 ? v[i] : al * (expf(v[i]) - 1); break;
  case ACT_SOFTSIGN: for (int64_t i = 0; i < n; i++) v[i] = v[i] / (1 + fabsf(v[i])); break;
  case ACT_SOFTPLUS: for (int64_t i = 0; i < n; i++) v[i] = log1pf(expf(v[i])); break;
  }
}

static void clip_apply(float clip, float *v, int64_t n) {
  if (!(clip > 0)) return;
  for (int64_t i = 0; i < n; i++) v[i] = v[i] < -clip ? -clip : v[i] > clip ? clip : v[i];
}

/* Everything a cell needs, gathered from inputs and attributes. */
typedef struct {
  int cell, ngates;           /* gates per cell: RNN 1, GRU 3 (z r h), LSTM 4 (i o f c) */
  int64_t seq, batch, in, hid;
  int ndir, reverse_only, layout;
  float clip;
  int linear_before_reset, input_forget;
  activation acts[6];         /* [ndir][per-cell count] */
  int nacts;                  /* per direction */
} rnn_conf;

/* Loads any float tensor as a new float32 array (or NULL with an error). */
static float *load_floats(gpux__kctx *k, const gpux_tensor *t, int64_t n) {
  float *v = gpux__malloc((size_t)(n ? n : 1) * sizeof(float));
  if (!v) {
    gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    return NULL;
  }
  if (t->dtype == GPUX_DT_FLOAT) memcpy(v, t->data, (size_t)n * sizeof(float));
  else
    for (int64_t i = 0; i < n; i++) v[i] = (float)gpux__load_f64(t->dtype, t->data, i);
  return v;
}

/* t's n values as float32: its own data when it is float32 already (*owned NULL), else a copy
 * in *owned for the caller to free. NULL when out of memory. */
static const float *floats_of(gpux__kctx *k, const gpux_tensor *t, int64_t n, float **owned) {
  *owned = NULL;
  if (t->dtype == GPUX_DT_FLOAT) return t->data;
  return *owned = load_floats(k, t, n);
}

static int parse_activations(gpux__kctx *k, rnn_conf *c) {
  static const int defaults[3][3] = {{ACT_TANH}, {ACT_SIGMOID, ACT_TANH}, {ACT_SIGMOID, ACT_TANH, ACT_TANH}};
  c->nacts = c->cell == CELL_RNN ? 1 : c->cell == CELL_GRU ? 2 : 3;
  const char *const *names;
  int n = gpux__attr_strings(k, "activations", &names);
  const float *alphas, *betas;
  int na = gpux__attr_floats(k, "activation_alpha", &alphas);
  int nb = gpux__attr_floats(k, "activation_beta", &betas);
  int ia = 0, ib = 0;
  int total = c->nacts * c->ndir;
  if (n && n != total && !(n == c->nacts && c->ndir == 2))
    return gpux__kerr(k, GPUX_E_INVALID, "%d activations given, expected %d", n, total);
  for (int i = 0; i < total; i++) {
    activation *a = &c->acts[i];
    if (!n) {
      a->kind = defaults[c->cell][i % c->nacts];
      a->alpha = a->beta = 0;
      continue;
    }
    const char *name = names[n == total ? i : i % c->nacts];
    size_t j = 0;
    while (j < GPUX__ARRAY_LEN(act_names) && strcasecmp(act_names[j].name, name)) j++;
    if (j == GPUX__ARRAY_LEN(act_names))
      return gpux__kerr(k, GPUX_E_UNSUPPORTED, "activation '%s' is not supported", name);
    a->kind = act_names[j].kind;
    a->alpha = act_names[j].alpha;
    a->beta = act_names[j].beta;
    if (act_names[j].uses_alpha && ia < na) a->alpha = alphas[ia++];
    if (act_names[j].uses_beta && ib < nb) a->beta = betas[ib++];
  }
  return 0;
}

/* One direction of one cell over the whole sequence.
 *   x:   (seq, batch, in)       w: (G*hid, in)   r: (G*hid, hid)
 *   wb, rb: (G*hid) or NULL     p: (3*hid) or NULL (LSTM)
 *   h: (batch, hid) in: initial state, out: final state; c likewise for LSTM
 *   y: (seq, batch, hid) outputs of this direction, or NULL */
static int run_direction(const rnn_conf *cf, const activation *acts, int reverse, const float *x,
                         const float *w, const float *r, const float *wb, const float *rb,
                         const float *p, const int64_t *lens, float *h, float *c, float *y) {
  int64_t S = cf->seq, B = cf->batch, NI = cf->in, H = cf->hid, G = cf->ngates;
  int64_t GH = G * H;
  float *xw = gpux__malloc((size_t)(S * B * GH + 1) * sizeof(float));      /* (seq, batch, G*hid) */
  float *hr = gpux__malloc((size_t)(B * GH + 1) * sizeof(float));          /* (batch, G*hid) */
  float *tmp = gpux__malloc((size_t)(B * H + 1) * sizeof(float));          /* (batch, hid) */
  float *hnew = gpux__malloc((size_t)(B * H + 1) * sizeof(float));         /* (batch, hid) */
  if (!xw || !hr || !tmp || !hnew) {
    free(xw); free(hr); free(tmp); free(hnew);
    return GPUX_E_NOMEM;
  }
  /* input projection for every step at once, with the W bias (and R bias except GRU's h gate
   * under linear_before_reset, which must stay inside the reset product) */
  if (S * B > 0 && NI > 0)
    gpux__gemm_parallel(&(gpux__gemm){.trans_b = 1, .m = S * B, .n = GH, .k = NI, .alpha = 1, .beta = 0,
                                      .a = x, .lda = NI, .b = w, .ldb = NI, .c = xw, .ldc = GH});
  else
    memset(xw, 0, (size_t)(S * B * GH) * sizeof(float));
  for (int64_t row = 0; row < S * B; row++) {
    float *v = xw + row * GH;
    if (wb) for (int64_t g = 0; g < GH; g++) v[g] += wb[g];
    if (rb) {
      int64_t lim = cf->cell == CELL_GRU ? 2 * H : GH;
      for (int64_t g = 0; g < lim; g++) v[g] += rb[g];
    }
  }
  for (int64_t step = 0; step < S; step++) {
    int64_t t = reverse ? S - 1 - step : step;
    const float *xt = xw + t * B * GH;
    /* recurrence: gates of all cells (for GRU only z and r, plus h for linear_before_reset) */
    int64_t ng = cf->cell == CELL_GRU && !cf->linear_before_reset ? 2 * H : GH;
    if (H > 0 && B > 0)
      gpux__gemm_serial(&(gpux__gemm){.trans_b = 1, .m = B, .n = ng, .k = H, .alpha = 1, .beta = 0, .a = h,
                                      .lda = H, .b = r, .ldb = H, .c = hr, .ldc = GH});
    for (int64_t b = 0; b < B; b++) {
      float *g = hr + b * GH;
      const float *xg = xt + b * GH;
      for (int64_t j = 0; j < ng; j++) g[j] += xg[j];
    }
    if (cf->cell == CELL_RNN) {
      clip_apply(cf->clip, hr, B * H);
      act_apply(&acts[0], hr, B * H);
      memcpy(hnew, hr, (size_t)(B * H) * sizeof(float));
    } else if (cf->cell == CELL_GRU) {
      /* hr rows: [z | r | h] */
      for (int64_t b = 0; b < B; b++) {
        float *g = hr + b * GH;
        clip_apply(cf->clip, g, 2 * H);
        act_apply(&acts[0], g, 2 * H);
      }
      if (cf->linear_before_reset) {
        for (int64_t b = 0; b < B; b++) {
          float *g = hr + b * GH;
          const float *xg = xt + b * GH;
          for (int64_t j = 0; j < H; j++) {
            /* g[2H+j] already holds x*Wh + Wbh + h*Rh; split to apply the reset gate */
            float hrj = g[2 * H + j] - xg[2 * H + j] + (rb ? rb[2 * H + j] : 0);
            g[2 * H + j] = xg[2 * H + j] + g[H + j] * hrj;
          }
        }
      } else {
        for (int64_t b = 0; b < B; b++)
          for (int64_t j = 0; j < H; j++) tmp[b * H + j] = hr[b * GH + H + j] * h[b * H + j];
        /* (r . h) * Rh^T into the h columns */
        if (H > 0 && B > 0)
          gpux__gemm_serial(&(gpux__gemm){.trans_b = 1, .m = B, .n = H, .k = H, .alpha = 1, .beta = 0, .a = tmp,
                                          .lda = H, .b = r + 2 * H * H, .ldb = H, .c = hr + 2 * H, .ldc = GH});
        for (int64_t b = 0; b < B; b++) {
          float *g = hr + b * GH;
          const float *xg = xt + b * GH;
          for (int64_t j = 0; j < H; j++) g[2 * H + j] += xg[2 * H + j] + (rb ? rb[2 * H + j] : 0);
        }
      }
      for (int64_t b = 0; b < B; b++) {
        float *g = hr + b * GH;
        clip_apply(cf->clip, g + 2 * H, H);
        act_apply(&acts[1], g + 2 * H, H);
        for (int64_t j = 0; j < H; j++) {
          float z = g[j];
          hnew[b * H + j] = (1 - z) * g[2 * H + j] + z * h[b * H + j];
        }
      }
    } else {
      /* LSTM, hr rows: [i | o | f | c] */
      for (int64_t b = 0; b < B; b++) {
        float *g = hr + b * GH;
        float *gi = g, *go = g + H, *gf = g + 2 * H, *gc = g + 3 * H;
        const float *cp = c + b * H;
        if (p)
          for (int64_t j = 0; j < H; j++) {
            gi[j] += p[j] * cp[j];
            gf[j] += p[2 * H + j] * cp[j];
          }
        clip_apply(cf->clip, gi, H);
        clip_apply(cf->clip, gf, H);
        clip_apply(cf->clip, gc, H);
        act_apply(&acts[0], gi, H);
        act_apply(&acts[0], gf, H);
        if (cf->input_forget)
          for (int64_t j = 0; j < H; j++) gf[j] = 1 - gi[j];
        act_apply(&acts[1], gc, H);
        float *cn = tmp + b * H;
        for (int64_t j = 0; j < H; j++) cn[j] = gf[j] * cp[j] + gi[j] * gc[j];
        if (p)
          for (int64_t j = 0; j < H; j++) go[j] += p[H + j] * cn[j];
        clip_apply(cf->clip, go, H);
        act_apply(&acts[0], go, H);
        float *hn = hnew + b * H;
        memcpy(hn, cn, (size_t)H * sizeof(float));
        act_apply(&acts[2], hn, H);
        for (int64_t j = 0; j < H; j++) hn[j] *= go[j];
      }
    }
    /* commit the new state for batches still inside their sequence */
    for (int64_t b = 0; b < B; b++) {
      int live = !lens || t < lens[b];
      if (live) {
        memcpy(h + b * H, hnew + b * H, (size_t)H * sizeof(float));
        if (cf->cell == CELL_LSTM) memcpy(c + b * H, tmp + b * H, (size_t)H * sizeof(float));
      }
      if (y) {
        float *yt = y + (t * B + b) * H;
        if (live) memcpy(yt, hnew + b * H, (size_t)H * sizeof(float));
        else memset(yt, 0, (size_t)H * sizeof(float));
      }
    }
  }
  free(xw);
  free(hr);
  free(tmp);
  free(hnew);
  return 0;
}

static int op_recurrent(gpux__kctx *k, int cell) {
  const gpux_tensor *X = IN(0), *W = IN(1), *R = IN(2), *Bt = IN(3), *L = IN(4), *H0 = IN(5);
  const gpux_tensor *C0 = cell == CELL_LSTM ? IN(6) : NULL, *P = cell == CELL_LSTM ? IN(7) : NULL;
  if (!X || !W || !R) return gpux__kerr(k, GPUX_E_INVALID, "X, W and R are required");
  rnn_conf cf;
  memset(&cf, 0, sizeof cf);
  cf.cell = cell;
  cf.ngates = cell == CELL_RNN ? 1 : cell == CELL_GRU ? 3 : 4;
  cf.layout = (int)gpux__attr_int(k, "layout", 0);
  if (cf.layout != 0 && cf.layout != 1) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "layout %d", cf.layout);
  if (X->ndim != 3 || W->ndim != 3 || R->ndim != 3)
    return gpux__kerr(k, GPUX_E_SHAPE, "X, W and R must have rank 3");
  const char *dir = gpux__attr_string(k, "direction", "forward");
  if (!strcmp(dir, "forward")) cf.ndir = 1;
  else if (!strcmp(dir, "reverse")) cf.ndir = 1, cf.reverse_only = 1;
  else if (!strcmp(dir, "bidirectional")) cf.ndir = 2;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "direction '%s'", dir);
  cf.seq = cf.layout ? X->dims[1] : X->dims[0];
  cf.batch = cf.layout ? X->dims[0] : X->dims[1];
  cf.in = X->dims[2];
  cf.hid = gpux__attr_int(k, "hidden_size", R->dims[2]);
  int64_t S = cf.seq, Bn = cf.batch, NI = cf.in, Hd = cf.hid, G = cf.ngates, D = cf.ndir;
  if (Hd <= 0) return gpux__kerr(k, GPUX_E_INVALID, "hidden_size %lld must be positive", (long long)Hd);
  if (S * Bn > INT32_MAX || G * Hd > INT32_MAX || NI > INT32_MAX)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "dimensions too large for the GEMM interface");
  if (W->dims[0] != D || W->dims[1] != G * Hd || W->dims[2] != NI)
    return gpux__kerr(k, GPUX_E_SHAPE, "W must be [%lld, %lld, %lld]", (long long)D, (long long)(G * Hd), (long long)NI);
  if (R->dims[0] != D || R->dims[1] != G * Hd || R->dims[2] != Hd)
    return gpux__kerr(k, GPUX_E_SHAPE, "R must be [%lld, %lld, %lld]", (long long)D, (long long)(G * Hd), (long long)Hd);
  if (Bt && (Bt->ndim != 2 || Bt->dims[0] != D || Bt->dims[1] != 2 * G * Hd))
    return gpux__kerr(k, GPUX_E_SHAPE, "B must be [%lld, %lld]", (long long)D, (long long)(2 * G * Hd));
  int64_t sdims[3];   /* shape of initial/final states */
  if (cf.layout) sdims[0] = Bn, sdims[1] = D, sdims[2] = Hd;
  else sdims[0] = D, sdims[1] = Bn, sdims[2] = Hd;
  const gpux_tensor *states[2] = {H0, C0};
  for (int s = 0; s < 2; s++)
    if (states[s] && (states[s]->ndim != 3 || states[s]->dims[0] != sdims[0] ||
                      states[s]->dims[1] != sdims[1] || states[s]->dims[2] != sdims[2]))
      return gpux__kerr(k, GPUX_E_SHAPE, "initial state must be [%lld, %lld, %lld]", (long long)sdims[0],
                        (long long)sdims[1], (long long)sdims[2]);
  if (P && (P->ndim != 2 || P->dims[0] != D || P->dims[1] != 3 * Hd))
    return gpux__kerr(k, GPUX_E_SHAPE, "P must be [%lld, %lld]", (long long)D, (long long)(3 * Hd));
  if (L && (L->ndim != 1 || L->dims[0] != Bn))
    return gpux__kerr(k, GPUX_E_SHAPE, "sequence_lens must be [%lld]", (long long)Bn);
  if (!gpux__dtype_is_float(X->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s input", gpux_dtype_name(X->dtype));
  cf.clip = gpux__has_attr(k, "clip") ? gpux__attr_float(k, "clip", 0) : 0;
  cf.linear_before_reset = (int)gpux__attr_int(k, "linear_before_reset", 0);
  cf.input_forget = (int)gpux__attr_int(k, "input_forget", 0);
  int rc = parse_activations(k, &cf);
  if (rc) return rc;

  int64_t ydims[4];
  if (cf.layout) ydims[0] = Bn, ydims[1] = S, ydims[2] = D, ydims[3] = Hd;
  else ydims[0] = S, ydims[1] = D, ydims[2] = Bn, ydims[3] = Hd;
  int n_outs = cell == CELL_LSTM ? 3 : 2;
  gpux_tensor *outs[3] = {0};
  outs[0] = gpux__out(k, 0, X->dtype, 4, ydims);
  if (!outs[0]) return k->status;
  int want_y = OUTPUT_WANTED(0);
  for (int o = 1; o < n_outs; o++) {
    outs[o] = gpux__out(k, o, X->dtype, 3, sdims);
    if (!outs[o]) return k->status;
  }
  if (k->shape_only) return 0;
  /* gpux__out may hand back a shared scratch tensor for omitted outputs; keep only wanted ones */
  for (int o = 0; o < n_outs; o++)
    if (!OUTPUT_WANTED(o)) outs[o] = NULL;

  int64_t *lens = NULL;
  float *x = NULL, *w_own = NULL, *r_own = NULL, *bias_own = NULL, *p_own = NULL, *xs = NULL;
  const float *w, *r, *bias = NULL, *p = NULL; /* the weights read in place when float32 */
  float *h = NULL, *c = NULL, *y = NULL;
  rc = GPUX_E_NOMEM;
  if (L) {
    lens = gpux__malloc((size_t)(Bn + 1) * sizeof(int64_t));
    if (!lens) goto fail;
    for (int64_t b = 0; b < Bn; b++) {
      lens[b] = gpux__load_i64(L->dtype, L->data, b);
      if (lens[b] < 0 || lens[b] > S) {
        rc = gpux__kerr(k, GPUX_E_INVALID, "sequence_lens[%lld] = %lld outside [0, %lld]", (long long)b,
                        (long long)lens[b], (long long)S);
        goto fail;
      }
    }
  }
  if (!(xs = load_floats(k, X, S * Bn * NI))) goto fail;
  if (cf.layout) { /* (batch, seq, in) -> (seq, batch, in) */
    if (!(x = gpux__malloc((size_t)(S * Bn * NI + 1) * sizeof(float)))) goto fail;
    for (int64_t b = 0; b < Bn; b++)
      for (int64_t t = 0; t < S; t++)
        memcpy(x + (t * Bn + b) * NI, xs + (b * S + t) * NI, (size_t)NI * sizeof(float));
    free(xs);
    xs = NULL;
  } else {
    x = xs;
    xs = NULL;
  }
  if (!(w = floats_of(k, W, D * G * Hd * NI, &w_own))) goto fail;
  if (!(r = floats_of(k, R, D * G * Hd * Hd, &r_own))) goto fail;
  if (Bt && !(bias = floats_of(k, Bt, D * 2 * G * Hd, &bias_own))) goto fail;
  if (P && !(p = floats_of(k, P, D * 3 * Hd, &p_own))) goto fail;
  h = gpux__calloc((size_t)(D * Bn * Hd + 1), sizeof(float));   /* (dir, batch, hid) */
  c = gpux__calloc((size_t)(D * Bn * Hd + 1), sizeof(float));
  y = gpux__calloc((size_t)(D * S * Bn * Hd + 1), sizeof(float)); /* (dir, seq, batch, hid) */
  if (!h || !c || !y) goto fail;
  for (int s = 0; s < 2; s++) {
    const gpux_tensor *st = states[s];
    if (!st) continue;
    float *dst = s ? c : h;
    for (int64_t d = 0; d < D; d++)
      for (int64_t b = 0; b < Bn; b++)
        for (int64_t j = 0; j < Hd; j++) {
          int64_t src = cf.layout ? (b * D + d) * Hd + j : (d * Bn + b) * Hd + j;
          dst[(d * Bn + b) * Hd + j] = (float)gpux__load_f64(st->dtype, st->data, src);
        }
  }
  for (int64_t d = 0; d < D; d++) {
    int reverse = cf.reverse_only || d == 1;
    rc = run_direction(&cf, cf.acts + d * cf.nacts, reverse, x, w + d * G * Hd * NI, r + d * G * Hd * Hd,
                       bias ? bias + d * 2 * G * Hd : NULL, bias ? bias + d * 2 * G * Hd + G * Hd : NULL,
                       p ? p + d * 3 * Hd : NULL, lens, h + d * Bn * Hd, c + d * Bn * Hd,
                       want_y ? y + d * S * Bn * Hd : NULL);
    if (rc) {
      rc = gpux__kerr(k, rc, "out of memory");
      goto fail;
    }
  }
  if (outs[0])
    for (int64_t d = 0; d < D; d++)
      for (int64_t t = 0; t < S; t++)
        for (int64_t b = 0; b < Bn; b++)
          for (int64_t j = 0; j < Hd; j++) {
            int64_t dst = cf.layout ? ((b * S + t) * D + d) * Hd + j : ((t * D + d) * Bn + b) * Hd + j;
            gpux__store_f64(X->dtype, outs[0]->data, dst, y[((d * S + t) * Bn + b) * Hd + j]);
          }
  for (int o = 1; o < n_outs; o++) {
    if (!outs[o]) continue;
    const float *src = o == 1 ? h : c;
    for (int64_t d = 0; d < D; d++)
      for (int64_t b = 0; b < Bn; b++)
        for (int64_t j = 0; j < Hd; j++) {
          int64_t dst = cf.layout ? (b * D + d) * Hd + j : (d * Bn + b) * Hd + j;
          gpux__store_f64(X->dtype, outs[o]->data, dst, src[(d * Bn + b) * Hd + j]);
        }
  }
  rc = 0;
fail:
  if (rc == GPUX_E_NOMEM && !k->status) gpux__kerr(k, rc, "out of memory");
  free(lens); free(xs); free(x); free(w_own); free(r_own); free(bias_own); free(p_own); free(h); free(c); free(y);
  return rc;
}

static int op_rnn(gpux__kctx *k) { return op_recurrent(k, CELL_RNN); }
static int op_gru(gpux__kctx *k) { return op_recurrent(k, CELL_GRU); }
static int op_lstm(gpux__kctx *k) { return op_recurrent(k, CELL_LSTM); }

const gpux__op_def gpux__ops_rnn[] = {
  {"", "RNN", op_rnn, 7, 0},
  {"", "GRU", op_gru, 7, 0},
  {"", "LSTM", op_lstm, 7, 0},
  {0},
};
