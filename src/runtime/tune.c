/* tune.c — the GEMM tuner: for each shape, a one-node model (Gemm, or a batched MatMul) of that
 * shape runs on a WebGPU session, first in the backend's default configuration, then in each
 * candidate configuration (the session's tuning set to it alone). A candidate's output must
 * match the default's up to float reassociation, or it is discarded; the fastest that beats the
 * default by more than the noise margin wins. Inputs stay on the device and outputs are kept
 * there between timed runs, so what is timed is the product (and the run's fixed costs, the same
 * for every candidate). */
#include "runtime/tune.h"
#include <math.h>
#include <stdio.h>
#include <time.h>

#define MAX_CANDIDATES 48
#define NOISE 0.93        /* a winner takes at most this fraction of the default's time */
#define MAX_REL_ERR 1e-4  /* |candidate - default| / max |default|: reassociation stays far below */
#define ROUND_MS 10.0     /* a timed round lasts about this long */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *gpux__gemm_form_name(int form) {
  return form == GPUX__GEMM_SIMPLE ? "simple" : form == GPUX__GEMM_TILED ? "tiled" : "?";
}

int gpux__gemm_form_parse(const char *name) {
  if (!name) return 0;
  if (!strcmp(name, "simple")) return GPUX__GEMM_SIMPLE;
  if (!strcmp(name, "tiled")) return GPUX__GEMM_TILED;
  return 0;
}

/* ---- the one-node model, as ONNX bytes ---- */

typedef struct {
  unsigned char *p;
  size_t len, cap;
  int oom;
} pbw;

static void pb_bytes(pbw *w, const void *d, size_t n) {
  if (w->oom) return;
  if (w->len + n > w->cap) {
    size_t cap = (w->len + n) * 2 + 64;
    unsigned char *p = realloc(w->p, cap);
    if (!p) { w->oom = 1; return; }
    w->p = p, w->cap = cap;
  }
  memcpy(w->p + w->len, d, n);
  w->len += n;
}

static void pb_varint(pbw *w, uint64_t v) {
  unsigned char b[10];
  size_t n = 0;
  do {
    b[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v) b[n] |= 0x80;
    n++;
  } while (v);
  pb_bytes(w, b, n);
}

static void pb_int(pbw *w, int field, int64_t v) { pb_varint(w, (uint64_t)field << 3), pb_varint(w, (uint64_t)v); }
static void pb_len(pbw *w, int field, const void *d, size_t n) { pb_varint(w, (uint64_t)field << 3 | 2), pb_varint(w, n), pb_bytes(w, d, n); }
static void pb_str(pbw *w, int field, const char *s) { pb_len(w, field, s, strlen(s)); }
static void pb_msg(pbw *w, int field, pbw *sub) {
  if (sub->oom) w->oom = 1;
  pb_len(w, field, sub->p, sub->len);
  free(sub->p);
  memset(sub, 0, sizeof *sub);
}

/* ValueInfoProto of a float tensor */
static void pb_value(pbw *w, int field, const char *name, int ndim, const int64_t *dims) {
  pbw shape = {0}, tt = {0}, tp = {0}, vi = {0};
  for (int i = 0; i < ndim; i++) {
    pbw d = {0};
    pb_int(&d, 1, dims[i]);
    pb_msg(&shape, 1, &d);
  }
  pb_int(&tt, 1, GPUX_DT_FLOAT);
  pb_msg(&tt, 2, &shape);
  pb_msg(&tp, 1, &tt);
  pb_str(&vi, 1, name);
  pb_msg(&vi, 2, &tp);
  pb_msg(w, field, &vi);
}

/* Y = A x B of shape s: Gemm with transA/transB for the layouts of batch 1, MatMul over
 * [batch, M, K] x [batch, K, N] otherwise (the layout the batched GEMMs of MatMul and grouped
 * convolution read). The input shapes go to a[] and b[]. */
static int gemm_model(const gpux__gemm_shape *s, int64_t a[3], int64_t b[3], int *nd, gpux_model **out) {
  pbw node = {0}, graph = {0}, model = {0}, ops = {0};
  int batched = s->batch > 1;
  int64_t y[3];
  if (batched) {
    *nd = 3;
    a[0] = b[0] = y[0] = s->batch;
    a[1] = s->M, a[2] = s->K, b[1] = s->K, b[2] = s->N, y[1] = s->M, y[2] = s->N;
  } else {
    *nd = 2;
    if (s->a_k_contig) a[0] = s->M, a[1] = s->K;
    else a[0] = s->K, a[1] = s->M;
    if (s->b_n_contig) b[0] = s->K, b[1] = s->N;
    else b[0] = s->N, b[1] = s->K;
    y[0] = s->M, y[1] = s->N;
  }
  pb_str(&node, 1, "A");
  pb_str(&node, 1, "B");
  pb_str(&node, 2, "Y");
  pb_str(&node, 3, "gemm");
  pb_str(&node, 4, batched ? "MatMul" : "Gemm");
  for (int t = 0; t < 2 && !batched; t++) {
    pbw at = {0};
    pb_str(&at, 1, t ? "transB" : "transA");
    pb_int(&at, 3, t ? !s->b_n_contig : !s->a_k_contig);
    pb_int(&at, 20, 2); /* INT */
    pb_msg(&node, 5, &at);
  }
  pb_msg(&graph, 1, &node);
  pb_str(&graph, 2, "gemm");
  pb_value(&graph, 11, "A", *nd, a);
  pb_value(&graph, 11, "B", *nd, b);
  pb_value(&graph, 12, "Y", *nd, y);
  pb_int(&model, 1, 8);
  pb_str(&ops, 1, "");
  pb_int(&ops, 2, 13);
  pb_msg(&model, 8, &ops);
  pb_msg(&model, 7, &graph);
  int rc = model.oom ? GPUX_E_NOMEM : gpux_model_load_buffer(model.p, model.len, "gemm", out);
  free(model.p);
  return rc;
}

/* ---- candidates ---- */

static int add_cfg(gpux__gemm_config *out, int n, int form, int wx, int wy, int rm, int rn, int split) {
  if (n >= MAX_CANDIDATES) return n;
  out[n] = (gpux__gemm_config){.form = form, .wx = wx, .wy = wy, .rm = rm, .rn = rn, .split = split};
  return n + 1;
}

/* The configurations worth trying for shape s, the likeliest first: register tiles that suit
 * its M and N, and for a deep K few workgroups cannot keep busy, splits of K. */
static int candidates(const gpux__gemm_shape *s, int software, gpux__gemm_config *out) {
  static const int simple[][2] = {{4, 4}, {4, 8}, {8, 4}, {2, 8}, {8, 2}, {8, 8}, {2, 4}, {4, 2}, {1, 8}, {8, 1}, {2, 2}};
  static const int tiled[][4] = {/* wx, wy, rm, rn */
                                 {16, 16, 4, 4}, {16, 16, 2, 2}, {16, 16, 1, 1}, {16, 16, 2, 4}, {16, 16, 4, 2},
                                 {8, 8, 4, 4},   {8, 8, 8, 8},   {16, 8, 4, 2},  {8, 16, 2, 4},  {16, 16, 8, 8},
                                 {8, 8, 2, 2},   {16, 16, 1, 4}, {16, 16, 4, 1}, {32, 8, 1, 4},  {8, 32, 4, 1}};
  int n = 0;
  for (int pass = 0; pass < 2; pass++) {
    int simple_pass = (pass == 0) == !!software;
    if (simple_pass) {
      for (size_t i = 0; i < sizeof simple / sizeof *simple; i++) {
        if ((s->M < 4 && simple[i][0] > 2) || (s->N < 4 && simple[i][1] > 2)) continue;
        n = add_cfg(out, n, GPUX__GEMM_SIMPLE, 0, 0, simple[i][0], simple[i][1], 1);
      }
    } else {
      /* every tile unsplit first (the widest choice early, when the budget is short), then K split */
      for (int sp = 1; sp <= 16; sp *= 2)
        for (size_t i = 0; i < sizeof tiled / sizeof *tiled; i++) {
          int tm = tiled[i][1] * tiled[i][2], tn = tiled[i][0] * tiled[i][3];
          if (tm > 2 * s->M + 16 || tn > 2 * s->N + 16) continue; /* tiles mostly past the edge */
          if (sp > 1 && (s->K < 512 || tm * tn > 64 * 64 || s->K / sp < 128)) continue;
          n = add_cfg(out, n, GPUX__GEMM_TILED, tiled[i][0], tiled[i][1], tiled[i][2], tiled[i][3], sp);
        }
    }
  }
  return n;
}

/* ---- timing ---- */

typedef struct {
  gpux_model *m;
  gpux_session *s;
  gpux_device_tensor *a, *b;
  gpux__gemm_shape actual;     /* the shape the backend saw (the key its tuning is looked up by) */
} bench;

static void bench_free(bench *b) {
  gpux_device_tensor_free(b->a);
  gpux_device_tensor_free(b->b);
  gpux_session_free(b->s);
  gpux_model_free(b->m);
  memset(b, 0, sizeof *b);
}

static void fill_random(gpux_tensor *t, uint64_t seed) {
  float *f = t->data;
  int64_t n = gpux_tensor_count(t);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    f[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
}

static int bench_open(const gpux__gemm_shape *sh, bench *b) {
  memset(b, 0, sizeof *b);
  int64_t ad[3], bd[3];
  int nd;
  int rc = gemm_model(sh, ad, bd, &nd, &b->m);
  gpux_session_options so = {.backend = GPUX_BACKEND_WEBGPU};
  if (!rc) rc = gpux_session_create(b->m, &so, &b->s);
  gpux_tensor ta = {0}, tb = {0};
  if (!rc) rc = gpux_tensor_init(&ta, GPUX_DT_FLOAT, nd, ad);
  if (!rc) rc = gpux_tensor_init(&tb, GPUX_DT_FLOAT, nd, bd);
  if (!rc) {
    fill_random(&ta, 1);
    fill_random(&tb, 2);
    rc = gpux_device_tensor_upload(b->s, &ta, &b->a);
  }
  if (!rc) rc = gpux_device_tensor_upload(b->s, &tb, &b->b);
  gpux_tensor_free(&ta);
  gpux_tensor_free(&tb);
  if (rc) bench_free(b);
  return rc;
}

/* One run; the output on the host (keep = 0) or kept on the device (*dev). */
static int bench_run(bench *b, int keep, gpux_tensor *host, gpux_device_tensor **dev) {
  gpux_input in[2] = {{NULL, b->a}, {NULL, b->b}};
  gpux_output out = {.keep = keep};
  int rc = gpux_session_run_values(b->s, in, 2, &out, 1);
  if (rc) return rc;
  if (keep) *dev = out.device;
  else *host = out.tensor;
  return 0;
}

/* The current configuration's output (the first run: planning and compiling) and its time per
 * product: rounds of runs kept on the device ended by one read, the best round's average. */
static int bench_measure(bench *b, double deadline, int once, gpux_tensor *y, double *ms) {
  double t0 = now_ms();
  int rc = bench_run(b, 0, y, NULL);
  if (rc) return rc;
  if (once) {
    *ms = now_ms() - t0;
    return 0;
  }
  double best = INFINITY;
  int reps = 1;
  for (int round = 0; round < 3; round++) {
    gpux_device_tensor *last = NULL;
    t0 = now_ms();
    for (int r = 0; r < reps && !rc; r++) {
      gpux_device_tensor *d = NULL;
      rc = bench_run(b, 1, NULL, &d);
      gpux_device_tensor_free(last);
      last = d;
    }
    gpux_tensor sync = {0};
    if (!rc && last) rc = gpux_device_tensor_read(last, &sync); /* waits for the GPU */
    gpux_tensor_free(&sync);
    gpux_device_tensor_free(last);
    if (rc) return rc;
    double per = (now_ms() - t0) / reps;
    if (per < best) best = per;
    if (round >= 1 && now_ms() > deadline) break;
    int want = per > 0 ? (int)(ROUND_MS / per) : 100;
    reps = want < 1 ? 1 : want > 100 ? 100 : want;
  }
  *ms = best;
  return 0;
}

static double rel_err(const gpux_tensor *got, const gpux_tensor *want) {
  int64_t n = gpux_tensor_count(want);
  if (!got->data || gpux_tensor_count(got) != n) return INFINITY;
  const float *g = got->data, *w = want->data;
  double scale = 0, err = 0;
  for (int64_t i = 0; i < n; i++) {
    double a = fabs((double)w[i]), d = fabs((double)g[i] - (double)w[i]);
    if (a > scale) scale = a;
    if (!(d <= err)) err = d; /* NaN counts */
  }
  return isnan(err) ? INFINITY : err / (scale > 1e-30 ? scale : 1e-30);
}

/* Tunes one shape until `deadline` (the default's measurement always completes). */
static int tune_one(const gpux__gemm_shape *sh, int software, int once, double deadline, gpux__tune_result *r) {
  bench b;
  int rc = bench_open(sh, &b);
  if (rc) return rc;
  gpux_tensor y0 = {0};
  if ((rc = bench_measure(&b, deadline, once, &y0, &r->default_ms))) goto done;
  r->measured = 1;
  r->best_ms = r->default_ms;
  if (gpux__session_gemm_shapes(b.s, &b.actual, 1, NULL) != 1) goto done; /* no GEMM on the device */
  gpux__gemm_config cand[MAX_CANDIDATES];
  int nc = candidates(sh, software, cand);
  for (int i = 0; i < nc && now_ms() < deadline; i++) {
    gpux__gemm_tuned t = {.shape = b.actual, .cfg = cand[i]};
    if ((rc = gpux__session_set_gemm_tuning(b.s, &t, 1))) goto done;
    gpux_tensor y = {0};
    double ms = 0;
    int crc = bench_measure(&b, deadline, once, &y, &ms), used = 0;
    gpux__session_gemm_shapes(b.s, NULL, 0, &used);
    r->tried++;
    if (crc == GPUX_E_NOMEM) {
      gpux_tensor_free(&y);
      rc = crc;
      goto done;
    }
    if (crc || !used) r->unfit++; /* the backend did not take it (limits), or it failed to compile */
    else if (rel_err(&y, &y0) > MAX_REL_ERR) r->rejected++;
    else if (ms < r->best_ms && ms < r->default_ms * NOISE) {
      r->best_ms = ms;
      r->cfg = cand[i];
      r->improved = 1;
    }
    gpux_tensor_free(&y);
  }
  /* the winner against the default once more, back to back: a win that was noise goes */
  if (r->improved && !once) {
    gpux__gemm_tuned t = {.shape = b.actual, .cfg = r->cfg};
    gpux_tensor y = {0};
    double d2 = 0, w2 = 0;
    if (!(rc = gpux__session_set_gemm_tuning(b.s, NULL, 0)) && !(rc = bench_measure(&b, 0, 0, &y, &d2))) {
      gpux_tensor_free(&y);
      if (!(rc = gpux__session_set_gemm_tuning(b.s, &t, 1))) rc = bench_measure(&b, 0, 0, &y, &w2);
    }
    gpux_tensor_free(&y);
    if (!rc) {
      if (d2 < r->default_ms) r->default_ms = d2;
      if (w2 > r->best_ms) r->best_ms = w2; /* the slower of its two measurements */
      if (!(r->best_ms < r->default_ms * NOISE)) r->improved = 0, r->best_ms = r->default_ms;
    }
  }
done:
  gpux_tensor_free(&y0);
  bench_free(&b);
  return rc;
}

static double shape_cost(const gpux__gemm_shape *s) { return (double)s->M * (double)s->N * (double)s->K * (double)s->batch; }

int gpux__tune_gemms(const gpux__gemm_shape *shapes, int n, const gpux__tune_options *o, gpux__tune_result *out) {
  double start = now_ms(), budget = o && o->budget_ms > 0 ? o->budget_ms : 60000;
  int *order = gpux__calloc((size_t)n + 1, sizeof *order);
  if (!order) return GPUX_E_NOMEM;
  for (int i = 0; i < n; i++) {
    order[i] = i;
    memset(&out[i], 0, sizeof out[i]);
    out[i].shape = shapes[i];
  }
  for (int i = 1; i < n; i++) /* the costliest products first: they gain the most */
    for (int j = i; j > 0 && shape_cost(&shapes[order[j]]) > shape_cost(&shapes[order[j - 1]]); j--) {
      int t = order[j];
      order[j] = order[j - 1], order[j - 1] = t;
    }
  int rc = 0;
  for (int k = 0; k < n && !rc; k++) {
    double now = now_ms(), left = start + budget - now;
    if (left <= 0) break;
    /* each shape an equal part of what is left; the first shapes' leftovers go to the later ones */
    rc = tune_one(&shapes[order[k]], o && o->software, o && o->once, now + left / (n - k), &out[order[k]]);
    if (o && o->progress) o->progress(o->progress_ctx, k + 1, n);
  }
  free(order);
  return rc;
}
