/* quant-contrib.c — ONNX Runtime's quantized contrib operators (domain com.microsoft), which its
 * quantization tool writes in the QOperator format: QLinearAdd, QLinearMul, QLinearSigmoid,
 * QLinearLeakyRelu, QLinearSoftmax, QLinearConcat, QLinearGlobalAveragePool, QGemm, and the
 * quantize_dynamic's DynamicQuantizeLSTM.
 *
 * Each takes 8-bit tensors with a per-tensor scale and zero point (QGemm's B may have one scale
 * per output column), dequantizes them, computes in float and quantizes the result: round half
 * to even, plus the zero point, saturated to the type. Integer sums (QGemm) are exact in int64
 * before scaling. */
#include "ops/op.h"
#include <math.h>

/* A per-tensor scale and zero point. */
typedef struct {
  double scale;
  int64_t zp;
} qparam;

/* Reads scale input si and zero-point input zi (omitted: 0) as a per-tensor parameter. */
static int read_qparam(gpux__kctx *k, int si, int zi, qparam *q) {
  const gpux_tensor *s = IN(si), *z = IN(zi);
  if (!s || gpux_tensor_count(s) != 1 || !gpux__dtype_is_float(s->dtype))
    return gpux__kerr(k, GPUX_E_SHAPE, "input %d must be one float scale", si);
  q->scale = gpux__load_f64(s->dtype, s->data, 0);
  q->zp = 0;
  if (z && gpux_tensor_count(z) >= 1) {
    if (gpux_tensor_count(z) != 1) return gpux__kerr(k, GPUX_E_SHAPE, "input %d must be one zero point", zi);
    q->zp = gpux__load_i64(z->dtype, z->data, 0);
  }
  /* not checked further: ONNX Runtime's calibration writes an infinite scale for a range that
   * reaches the float limit (an attention mask), and runs it */
  return 0;
}

static int is_8bit(int dt) { return dt == GPUX_DT_UINT8 || dt == GPUX_DT_INT8; }

static double deq(const gpux_tensor *x, int64_t i, const qparam *q) {
  return (double)(gpux__load_i64(x->dtype, x->data, i) - q->zp) * q->scale;
}

static int64_t quant(double v, const qparam *q, int dt) {
  int64_t lo = dt == GPUX_DT_UINT8 ? 0 : -128, hi = dt == GPUX_DT_UINT8 ? 255 : 127;
  if (isnan(v)) return GPUX__MIN(GPUX__MAX(q->zp, lo), hi);
  double r = nearbyint(v / q->scale) + (double)q->zp;
  return r <= (double)lo ? lo : r >= (double)hi ? hi : (int64_t)r;
}

/* The dtype of the output quantized with zero point input zi: that of the zero point, else of x. */
static int out_dtype(gpux__kctx *k, int zi, const gpux_tensor *x) {
  const gpux_tensor *z = IN(zi);
  return z && gpux_tensor_count(z) >= 1 ? z->dtype : x->dtype;
}

/* ---- QLinearAdd, QLinearMul: A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp ---- */

static int qlinear_binary(gpux__kctx *k, int mul) {
  const gpux_tensor *a = IN(0), *b = IN(3);
  if (!a || !b || !is_8bit(a->dtype) || !is_8bit(b->dtype))
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "A and B must be uint8 or int8");
  int nd = GPUX__MAX(a->ndim, b->ndim);
  int64_t dims[GPUX_MAX_DIMS], sa[GPUX_MAX_DIMS], sb[GPUX_MAX_DIMS];
  int64_t ra = 1, rb = 1;
  for (int d = nd - 1; d >= 0; d--) { /* numpy broadcasting, with element strides (0 = broadcast) */
    int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
    int64_t x = da >= 0 ? a->dims[da] : 1, y = db >= 0 ? b->dims[db] : 1;
    if (x != y && x != 1 && y != 1) return gpux__kerr(k, GPUX_E_SHAPE, "A and B do not broadcast (%lld vs %lld)", (long long)x, (long long)y);
    dims[d] = x == 1 ? y : x;
    sa[d] = x == 1 ? 0 : ra;
    sb[d] = y == 1 ? 0 : rb;
    ra *= x;
    rb *= y;
  }
  int dt = out_dtype(k, 7, a);
  gpux_tensor *c = gpux__out_raw(k, 0, dt, nd, dims);
  if (!c) return k->status;
  if (k->shape_only) return 0;
  qparam qa, qb, qc;
  int rc;
  if ((rc = read_qparam(k, 1, 2, &qa)) || (rc = read_qparam(k, 4, 5, &qb)) || (rc = read_qparam(k, 6, 7, &qc))) return rc;
  int64_t n = gpux_tensor_count(c), idx[GPUX_MAX_DIMS] = {0}, ia = 0, ib = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = deq(a, ia, &qa), y = deq(b, ib, &qb);
    gpux__store_i64(dt, c->data, i, quant(mul ? x * y : x + y, &qc, dt));
    for (int d = nd - 1; d >= 0; d--) { /* next index, moving the input offsets along */
      ia += sa[d];
      ib += sb[d];
      if (++idx[d] < dims[d]) break;
      ia -= sa[d] * dims[d];
      ib -= sb[d] * dims[d];
      idx[d] = 0;
    }
  }
  return 0;
}

static int op_qlinear_add(gpux__kctx *k) { return qlinear_binary(k, 0); }
static int op_qlinear_mul(gpux__kctx *k) { return qlinear_binary(k, 1); }

/* ---- QLinearSigmoid, QLinearLeakyRelu: X, X_scale, X_zp, Y_scale, Y_zp ---- */

static int qlinear_unary(gpux__kctx *k, int leaky) {
  const gpux_tensor *x = IN(0);
  if (!x || !is_8bit(x->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "X must be uint8 or int8");
  int dt = out_dtype(k, 4, x);
  gpux_tensor *y = gpux__out_raw(k, 0, dt, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  qparam qx, qy;
  int rc;
  if ((rc = read_qparam(k, 1, 2, &qx)) || (rc = read_qparam(k, 3, 4, &qy))) return rc;
  double alpha = gpux__attr_float(k, "alpha", 0.01f);
  for (int64_t i = 0, n = gpux_tensor_count(x); i < n; i++) {
    double v = deq(x, i, &qx);
    v = leaky ? (v >= 0 ? v : alpha * v) : 1.0 / (1.0 + exp(-v));
    gpux__store_i64(dt, y->data, i, quant(v, &qy, dt));
  }
  return 0;
}

static int op_qlinear_sigmoid(gpux__kctx *k) { return qlinear_unary(k, 0); }
static int op_qlinear_leaky_relu(gpux__kctx *k) { return qlinear_unary(k, 1); }

/* ---- QLinearSoftmax: X, X_scale, X_zp, Y_scale, Y_zp; axis, opset (the Softmax it stands for:
 * before 13, the dimensions from axis on are one) ---- */

static int op_qlinear_softmax(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x || !is_8bit(x->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "X must be uint8 or int8");
  int dt = out_dtype(k, 4, x);
  gpux_tensor *y = gpux__out_raw(k, 0, dt, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  qparam qx, qy;
  int rc, axis;
  if ((rc = read_qparam(k, 1, 2, &qx)) || (rc = read_qparam(k, 3, 4, &qy))) return rc;
  int64_t opset = gpux__attr_int(k, "opset", 13);
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", opset < 13 ? 1 : -1), GPUX__MAX(x->ndim, 1), &axis))) return rc;
  int64_t outer = gpux__shape_count(axis, x->dims), len, inner;
  if (opset < 13) {
    len = gpux__shape_count(x->ndim - axis, x->dims + axis);
    inner = 1;
  } else {
    len = x->ndim ? x->dims[axis] : 1;
    inner = gpux__shape_count(x->ndim - axis - 1, x->dims + axis + 1);
  }
  for (int64_t o = 0; o < outer; o++)
    for (int64_t r = 0; r < inner; r++) {
      int64_t base = o * len * inner + r;
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < len; j++) mx = fmax(mx, deq(x, base + j * inner, &qx));
      for (int64_t j = 0; j < len; j++) sum += exp(deq(x, base + j * inner, &qx) - mx);
      for (int64_t j = 0; j < len; j++)
        gpux__store_i64(dt, y->data, base + j * inner, quant(exp(deq(x, base + j * inner, &qx) - mx) / sum, &qy, dt));
    }
  return 0;
}

/* ---- QLinearConcat: Y_scale, Y_zp, then (X, X_scale, X_zp) per input; axis ---- */

static int op_qlinear_concat(gpux__kctx *k) {
  if (k->n_in < 5 || (k->n_in - 2) % 3) return gpux__kerr(k, GPUX_E_INVALID, "takes Y_scale, Y_zp and (X, scale, zero point) triples");
  int n = (k->n_in - 2) / 3, axis, rc;
  const gpux_tensor *x0 = IN(2);
  if (!x0 || !is_8bit(x0->dtype)) return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "inputs must be uint8 or int8");
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), x0->ndim, &axis))) return rc;
  int64_t dims[GPUX_MAX_DIMS];
  memcpy(dims, x0->dims, sizeof(int64_t) * (size_t)x0->ndim);
  dims[axis] = 0;
  for (int i = 0; i < n; i++) {
    const gpux_tensor *x = IN(2 + 3 * i);
    if (!x || x->ndim != x0->ndim || !is_8bit(x->dtype)) return gpux__kerr(k, GPUX_E_SHAPE, "input %d: rank or dtype differs", i);
    for (int d = 0; d < x->ndim; d++)
      if (d != axis && x->dims[d] != x0->dims[d]) return gpux__kerr(k, GPUX_E_SHAPE, "input %d: dim %d differs", i, d);
    dims[axis] += x->dims[axis];
  }
  int dt = out_dtype(k, 1, x0);
  gpux_tensor *y = gpux__out_raw(k, 0, dt, x0->ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  qparam qy;
  if ((rc = read_qparam(k, 0, 1, &qy))) return rc;
  int64_t outer = gpux__shape_count(axis, dims), inner = gpux__shape_count(x0->ndim - axis - 1, dims + axis + 1);
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    const gpux_tensor *x = IN(2 + 3 * i);
    qparam qx;
    if ((rc = read_qparam(k, 3 + 3 * i, 4 + 3 * i, &qx))) return rc;
    int64_t run = x->dims[axis] * inner;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t j = 0; j < run; j++)
        gpux__store_i64(dt, y->data, o * dims[axis] * inner + at + j, quant(deq(x, o * run + j, &qx), &qy, dt));
    at += run;
  }
  return 0;
}

/* ---- QLinearGlobalAveragePool: X, x_scale, x_zp, y_scale, y_zp; channels_last ---- */

static int op_qlinear_global_average_pool(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  if (!x || !is_8bit(x->dtype) || x->ndim < 3) return gpux__kerr(k, GPUX_E_SHAPE, "X must be uint8 or int8 [N, C, spatial...]");
  int last = gpux__attr_int(k, "channels_last", 0) != 0;
  int64_t dims[GPUX_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) dims[d] = 1;
  dims[0] = x->dims[0];
  int cd = last ? x->ndim - 1 : 1;
  dims[cd] = x->dims[cd];
  int dt = out_dtype(k, 4, x);
  gpux_tensor *y = gpux__out_raw(k, 0, dt, x->ndim, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  qparam qx, qy;
  int rc;
  if ((rc = read_qparam(k, 1, 2, &qx)) || (rc = read_qparam(k, 3, 4, &qy))) return rc;
  int64_t n = x->dims[0], c = x->dims[cd], plane = gpux_tensor_count(x) / GPUX__MAX(1, n * c);
  for (int64_t b = 0; b < n; b++)
    for (int64_t ch = 0; ch < c; ch++) {
      double sum = 0;
      for (int64_t p = 0; p < plane; p++)
        sum += deq(x, last ? (b * plane + p) * c + ch : (b * c + ch) * plane + p, &qx);
      gpux__store_i64(dt, y->data, b * c + ch, quant(plane ? sum / (double)plane : 0, &qy, dt));
    }
  return 0;
}

/* ---- QGemm: A, a_scale, a_zp, B, b_scale, b_zp, C (int32 bias at scale alpha*a*b), y_scale,
 * y_zp; alpha, transA, transB. Without y_scale the output is float. ---- */

static int op_qgemm(gpux__kctx *k) {
  const gpux_tensor *a = IN(0), *b = IN(3), *c = IN(6), *ys = IN(7);
  if (!a || !b || !is_8bit(a->dtype) || !is_8bit(b->dtype) || a->ndim != 2 || b->ndim != 2)
    return gpux__kerr(k, GPUX_E_SHAPE, "A and B must be 2-D uint8 or int8");
  int ta = gpux__attr_int(k, "transA", 0) != 0, tb = gpux__attr_int(k, "transB", 0) != 0;
  int64_t M = ta ? a->dims[1] : a->dims[0], K = ta ? a->dims[0] : a->dims[1];
  int64_t KB = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
  if (K != KB) return gpux__kerr(k, GPUX_E_SHAPE, "A is %lldx%lld and B %lldx%lld", (long long)M, (long long)K, (long long)KB, (long long)N);
  int quantized = ys && gpux_tensor_count(ys) >= 1;
  int dt = quantized ? out_dtype(k, 8, a) : GPUX_DT_FLOAT;
  int64_t dims[2] = {M, N};
  gpux_tensor *y = gpux__out_raw(k, 0, dt, 2, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  qparam qa, qy = {1, 0};
  int rc;
  if ((rc = read_qparam(k, 1, 2, &qa)) || (quantized && (rc = read_qparam(k, 7, 8, &qy)))) return rc;
  const gpux_tensor *bs = IN(4), *bz = IN(5);
  int64_t nbs = bs ? gpux_tensor_count(bs) : 0, nbz = bz ? gpux_tensor_count(bz) : 0;
  if (!bs || (nbs != 1 && nbs != N) || (nbz > 1 && nbz != N))
    return gpux__kerr(k, GPUX_E_SHAPE, "b_scale must have 1 or %lld values", (long long)N);
  int64_t nc = c ? gpux_tensor_count(c) : 0;
  if (nc && nc != 1 && nc != N && nc != M * N) return gpux__kerr(k, GPUX_E_SHAPE, "C must broadcast to %lldx%lld", (long long)M, (long long)N);
  double alpha = gpux__attr_float(k, "alpha", 1.0f);
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      int64_t zb = nbz ? gpux__load_i64(bz->dtype, bz->data, nbz == 1 ? 0 : n) : 0, acc = 0;
      for (int64_t kk = 0; kk < K; kk++) {
        int64_t av = gpux__load_i64(a->dtype, a->data, ta ? kk * M + m : m * K + kk) - qa.zp;
        int64_t bv = gpux__load_i64(b->dtype, b->data, tb ? n * K + kk : kk * N + n) - zb;
        acc += av * bv;
      }
      if (nc) acc += gpux__load_i64(c->dtype, c->data, nc == 1 ? 0 : nc == N ? n : m * N + n);
      double v = alpha * qa.scale * gpux__load_f64(bs->dtype, bs->data, nbs == 1 ? 0 : n) * (double)acc;
      if (quantized) gpux__store_i64(dt, y->data, m * N + n, quant(v, &qy, dt));
      else ((float *)y->data)[m * N + n] = (float)v;
    }
  return 0;
}

/* ---- DynamicQuantizeLSTM: X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale,
 * W_zero_point, R_scale, R_zero_point; LSTM's attributes. W is [dirs, input, 4*hidden] and R
 * [dirs, hidden, 4*hidden] in 8 bits with a scale per direction or per direction and column.
 * Runs as LSTM on the dequantized, transposed weights (ONNX Runtime also quantizes X and H
 * dynamically at each step; the results agree within that rounding). ---- */

/* w [dirs, rows, cols] 8-bit -> out [dirs, cols, rows] float, with scale/zero point per dir or
 * per (dir, col). */
static int dequant_transposed(gpux__kctx *k, const gpux_tensor *w, const gpux_tensor *s, const gpux_tensor *z,
                              gpux_tensor *out) {
  if (!w || w->ndim != 3 || !is_8bit(w->dtype) || !s) return gpux__kerr(k, GPUX_E_SHAPE, "weights must be 8-bit [dirs, rows, cols]");
  int64_t D = w->dims[0], R = w->dims[1], C = w->dims[2], ns = gpux_tensor_count(s), nz = z ? gpux_tensor_count(z) : 0;
  if ((ns != D && ns != D * C) || (nz && nz != ns)) return gpux__kerr(k, GPUX_E_SHAPE, "a weight scale must have %lld or %lld values", (long long)D, (long long)(D * C));
  int64_t dims[3] = {D, C, R};
  int rc = gpux_tensor_init(out, GPUX_DT_FLOAT, 3, dims);
  if (rc) return gpux__kerr(k, rc, "out of memory");
  float *o = out->data;
  for (int64_t d = 0; d < D; d++)
    for (int64_t r = 0; r < R; r++)
      for (int64_t c = 0; c < C; c++) {
        int64_t q = ns == D ? d : d * C + c;
        double v = (double)(gpux__load_i64(w->dtype, w->data, (d * R + r) * C + c) - (nz ? gpux__load_i64(z->dtype, z->data, q) : 0)) *
                   gpux__load_f64(s->dtype, s->data, q);
        o[(d * C + c) * R + r] = (float)v;
      }
  return 0;
}

static int op_dynamic_quantize_lstm(gpux__kctx *k) {
  const gpux__op_def *lstm = gpux__op_find("", "LSTM", 14);
  if (!lstm) return gpux__kerr(k, GPUX_E_INTERNAL, "no LSTM kernel");
  gpux_tensor w = {0}, r = {0};
  const gpux_tensor *in[8] = {IN(0), NULL, NULL, IN(3), IN(4), IN(5), IN(6), IN(7)};
  int rc = 0;
  if (k->shape_only) { /* shapes only: the float weights' shapes are enough */
    const gpux_tensor *qw = IN(1), *qr = IN(2);
    if (!qw || !qr || qw->ndim != 3 || qr->ndim != 3) return gpux__kerr(k, GPUX_E_SHAPE, "W and R must be 3-D");
    int64_t wd[3] = {qw->dims[0], qw->dims[2], qw->dims[1]}, rd[3] = {qr->dims[0], qr->dims[2], qr->dims[1]};
    w = (gpux_tensor){.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_FLOAT, .ndim = 3};
    r = w;
    memcpy(w.dims, wd, sizeof wd);
    memcpy(r.dims, rd, sizeof rd);
  } else if ((rc = dequant_transposed(k, IN(1), IN(8), IN(9), &w)) || (rc = dequant_transposed(k, IN(2), IN(10), IN(11), &r))) {
    gpux_tensor_free(&w);
    return rc;
  }
  in[1] = &w;
  in[2] = &r;
  gpux__kctx sub = *k;
  sub.in = in;
  sub.n_in = 8;
  rc = lstm->run(&sub);
  k->status = sub.status;
  if (!k->shape_only) {
    gpux_tensor_free(&w);
    gpux_tensor_free(&r);
  }
  return rc;
}

const gpux__op_def gpux__ops_quant_contrib[] = {
  {"com.microsoft", "DynamicQuantizeLSTM", op_dynamic_quantize_lstm, 1, 0},
  {"com.microsoft", "QLinearAdd", op_qlinear_add, 1, 0},
  {"com.microsoft", "QLinearMul", op_qlinear_mul, 1, 0},
  {"com.microsoft", "QLinearSigmoid", op_qlinear_sigmoid, 1, 0},
  {"com.microsoft", "QLinearLeakyRelu", op_qlinear_leaky_relu, 1, 0},
  {"com.microsoft", "QLinearSoftmax", op_qlinear_softmax, 1, 0},
  {"com.microsoft", "QLinearConcat", op_qlinear_concat, 1, 0},
  {"com.microsoft", "QLinearGlobalAveragePool", op_qlinear_global_average_pool, 1, 0},
  {"com.microsoft", "QGemm", op_qgemm, 1, 0},
  {0},
};
