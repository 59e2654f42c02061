/* test-winograd.c — unit tests of the Winograd F(4x4, 3x3) convolution (ops/conv-winograd.c)
 * against float64 loops: channels-last X and Y of odd sizes (edge tiles cut by the plane), pads
 * of 0, 1 and 2 on each side apart, batches of 1 and 2, channel counts that are not multiples of
 * 16 or 64, every activation, the residual and the per-channel scale, on 1 and 2 threads (other
 * splits into tasks, and the three passes over all tiles that few tiles on many threads take); that the kernel takes those shapes and declines what it must (strides,
 * dilations, other windows, 7 x 7 planes of one image); and gpux.ConvNHWC through a node's state,
 * whose runs take the Winograd path (their sums differ from conv-gemm.c's in rounding) and match
 * the float64 convolution, and keep conv-gemm.c's packed weights only once a run falls back to
 * that kernel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include "ops/conv.h"
#include "ops/gemm.h"
#include "ops/op.h"

#define CONV_REF_SEED 4242u
#include "conv-ref.h"

/* The worst error of p->y (channels last) against the float64 convolution with p's epilogue, in
 * units of 3e-5 of the sum of the products' magnitudes (plus 1): over 1 fails. F(4x4, 3x3)
 * rounds more than a direct sum (A^T's entries up to 8 multiply the rounding of the sums at the
 * points +-2): these shapes' worst is about 0.25 of this bound, a wrong transform or a wrong tile
 * thousands of times it. */
static double worst_error(const gpux__conv2d *p) {
  double worst = 0;
  const gpux__conv_epilogue *e = p->ep;
  for (int64_t n = 0; n < p->n; n++)
    for (int64_t oh = 0; oh < p->oh; oh++)
      for (int64_t ow = 0; ow < p->ow; ow++)
        for (int64_t m = 0; m < p->m; m++) {
          int64_t q = ((n * p->oh + oh) * p->ow + ow) * p->m + m;
          double acc = p->b ? p->b[m] : 0, mag = fabs(acc);
          for (int64_t i = 0; i < 3; i++)
            for (int64_t j = 0; j < 3; j++) {
              int64_t ih = oh - p->pt + i, iw = ow - p->pl + j;
              if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w_) continue;
              for (int64_t c = 0; c < p->c; c++) {
                double v = (double)p->x[((n * p->h + ih) * p->w_ + iw) * p->c + c] * p->w[((m * p->c + c) * 3 + i) * 3 + j];
                acc += v, mag += fabs(v);
              }
            }
          if (e->res) acc += e->res[q], mag += fabs(e->res[q]);
          double want = act_ref(e, acc);
          if (e->clamp) want = want < e->lo ? e->lo : want > e->hi ? e->hi : want;
          if (e->scale) want = want * e->scale[m] + e->shift[m];
          double err = fabs(p->y[q] - want) / (3e-5 * (mag + 1));
          if (!(err <= worst)) worst = err; /* NaN too */
        }
  return worst;
}

/* p (window, channels, extents set) on random data through the packed and transformed weights:
 * the Winograd kernel must take it and match the float64 convolution. */
static void run_case(gpux__conv2d *p, gpux__conv_epilogue *ep) {
  int64_t nx = p->n * p->h * p->w_ * p->c, nw = p->m * p->c * 9, ny = p->n * p->oh * p->ow * p->m;
  float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w), *y = malloc((size_t)ny * sizeof *y);
  float *b = malloc((size_t)p->m * sizeof *b), *r = malloc((size_t)ny * sizeof *r);
  float *sc = malloc((size_t)p->m * sizeof *sc), *sh = malloc((size_t)p->m * sizeof *sh);
  for (int64_t q = 0; q < nx; q++) x[q] = rndf();
  for (int64_t q = 0; q < nw; q++) w[q] = rndf();
  for (int64_t q = 0; q < p->m; q++) b[q] = rndf(), sc[q] = rndf(), sh[q] = rndf();
  for (int64_t q = 0; q < ny; q++) r[q] = rndf(), y[q] = NAN;
  p->x = x, p->w = w, p->y = y, p->b = rnd(0, 1) ? b : NULL, p->ep = ep;
  if (rnd(0, 1)) ep->res = r, ep->y0 = y;
  if (!rnd(0, 3)) ep->scale = sc, ep->shift = sh;
  gpux__sgemm_b wt;
  gpux__conv_wino_w u;
  assert_int_equal(gpux__conv_gemm_pack(w, p->m, p->c, 9, &wt), 0);
  assert_int_equal(gpux__conv_wino_pack(NULL, &wt, p->c, p->m, gpux__conv_wino_tile(p), &u), 0);
  gpux__conv_wino_w uw; /* from W itself: the same floats */
  assert_int_equal(gpux__conv_wino_pack(w, NULL, p->c, p->m, gpux__conv_wino_tile(p), &uw), 0);
  assert_int_equal(uw.panels, u.panels);
  assert_int_equal(u.tile, gpux__conv_wino_tile(p));
  assert_memory_equal(uw.data, u.data, (size_t)((u.tile + 2) * (u.tile + 2) * u.panels * u.c * 64) * sizeof(float));
  gpux__conv_wino_free(&uw);
  if (!gpux__conv_wino_takes(p))
    fail_msg("c %lld m %lld n %lld %lldx%lld not taken", (long long)p->c, (long long)p->m, (long long)p->n,
             (long long)p->h, (long long)p->w_);
  p->w = NULL; /* the kernel reads the transformed weights only */
  assert_int_equal(gpux__conv2d_winograd(p, &u), 0);
  p->w = w;
  double worst = worst_error(p);
  if (worst > 1)
    fail_msg("c %lld m %lld n %lld %lldx%lld pads %lld,%lld act %d res %d: error %g of the bound", (long long)p->c,
             (long long)p->m, (long long)p->n, (long long)p->h, (long long)p->w_, (long long)p->pt, (long long)p->pl,
             ep->act, ep->res != NULL, worst);
  gpux__conv_gemm_free(&wt);
  gpux__conv_wino_free(&u);
  free(x), free(w), free(y), free(b), free(r), free(sc), free(sh);
}

/* Random shapes with pads 0-2 on each side apart: output planes of 8 to 30 a side (edge tiles of
 * 1-3 rows and columns; with tile 2, of 1 to 30), 16 to 90 channels in and 16 to 150 out, on 1
 * and 2 threads, in tiles of 4 x 4 (tile 4: where the cost rule takes them) or 2 x 2 outputs. */
static void shapes_in(int tile) {
  if (!gpux__conv_wino_available()) skip();
  if (tile == 2) setenv("GPUX_WINO_TILE", "2", 1);
  for (int threads = 1; threads <= 2; threads++) {
    gpux__set_run_threads(threads);
    for (int i = 0, taken = 0; taken < 24; i++) { /* 24 shapes the kernel takes */
      assert_true(i < 1000);
      gpux__conv_epilogue ep = {.act = (int)rnd(0, GPUX_EP_SILU), .p0 = -0.5f, .p1 = 1.5f};
      if (ep.act == GPUX_EP_LEAKY) ep.p0 = 0.1f;
      if (ep.act == GPUX_EP_HARDSIGMOID) ep.p0 = 0.2f, ep.p1 = 0.5f;
      if (!rnd(0, 2)) ep.clamp = 1, ep.lo = -0.3f, ep.hi = rnd(0, 1) ? 2.0f : INFINITY;
      gpux__conv2d p = {.n = rnd(1, 2), .c = rnd(16, 90), .m = rnd(16, 150), .g = 1, .kh = 3, .kw = 3, .sh = 1,
                        .sw = 1, .dh = 1, .dw = 1, .channels_last = 1};
      if (i % 6 == 0) p.c = 144; /* more channels than a pass of the products */
      p.pt = rnd(0, 2), p.pl = rnd(0, 2);
      int64_t pb = rnd(0, 2), pr = rnd(0, 2);
      p.oh = rnd(8, 30), p.ow = rnd(8, 30);
      if (i % 4 == 1) /* 9-16 tiles of one panel: on 2 threads, the passes over all tiles */
        p.n = 1, p.m = rnd(16, 64), p.oh = rnd(9, 16), p.ow = rnd(9, 16);
      if (tile == 2 && i % 4 == 3) p.oh = rnd(1, 9), p.ow = rnd(1, 9); /* planes of a few tiles, 1 x 1 too */
      p.h = p.oh + 2 - p.pt - pb, p.w_ = p.ow + 2 - p.pl - pr;
      if (p.h < 1 || p.w_ < 1) continue;
      if (gpux__conv_wino_tile(&p) != tile) {
        assert_int_equal(tile, 4); /* a forced tile runs wherever the kernel can */
        continue;
      }
      run_case(&p, &ep);
      taken++;
    }
  }
  unsetenv("GPUX_WINO_TILE");
  gpux__set_run_threads(0);
}

static void test_winograd_shapes(void **state) {
  (void)state;
  shapes_in(4);
}

/* F(2x2, 3x3), which only GPUX_WINO_TILE=2 chooses: the same shapes and smaller planes. */
static void test_winograd_tile2(void **state) {
  (void)state;
  shapes_in(2);
}

/* What the kernel must decline: other windows, strides, dilations, groups, too few channels, and
 * a 7 x 7 plane of one image (4 tiles: the transformed weights would serve 4 rows each). */
static void test_winograd_declines(void **state) {
  (void)state;
  if (!gpux__conv_wino_available()) skip();
  gpux__set_run_threads(1);
  gpux__conv2d base = {.n = 1, .c = 64, .m = 64, .g = 1, .h = 28, .w_ = 28, .kh = 3, .kw = 3, .oh = 28, .ow = 28,
                       .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pt = 1, .pl = 1, .channels_last = 1};
  assert_true(gpux__conv_wino_takes(&base));
  gpux__conv2d p = base;
  p.sh = 2, p.oh = 14;
  assert_false(gpux__conv_wino_takes(&p));
  p = base, p.dw = 2, p.ow = 26;
  assert_false(gpux__conv_wino_takes(&p));
  p = base, p.kh = 5, p.pt = 2;
  assert_false(gpux__conv_wino_takes(&p));
  p = base, p.g = 2;
  assert_false(gpux__conv_wino_takes(&p));
  p = base, p.c = 8;
  assert_false(gpux__conv_wino_takes(&p));
  p = base, p.channels_last = 0;
  assert_false(gpux__conv_wino_takes(&p));
  p = base, p.c = p.m = 512, p.h = p.w_ = p.oh = p.ow = 7;
  assert_false(gpux__conv_wino_takes(&p));
  gpux__set_run_threads(0);
}

/* The tile the cost rule chooses on ResNet-50's planes: F(4x4, 3x3) on 56 x 56 x 64 and 28 x 28 x
 * 128 at 1 and 2 threads; on 14 x 14 x 256 F(4x4) at 1 thread, F(2x2) at 2, where both threads
 * would stream F(4x4)'s 9.4 MB of transformed weights from memory. */
static void test_winograd_tile_choice(void **state) {
  (void)state;
  if (!gpux__conv_wino_available() || getenv("GPUX_WINO_TILE")) skip();
  static const int64_t planes[][3] = {{64, 56, 4}, {128, 28, 4}, {256, 14, 2}}; /* c, side, tile at 2 threads */
  for (int threads = 1; threads <= 2; threads++) {
    gpux__set_run_threads(threads);
    if (gpux__thread_count() != threads) break;
    for (size_t i = 0; i < sizeof planes / sizeof planes[0]; i++) {
      int64_t c = planes[i][0], h = planes[i][1];
      gpux__conv2d p = {.n = 1, .c = c, .m = c, .g = 1, .h = h, .w_ = h, .kh = 3, .kw = 3, .oh = h, .ow = h,
                        .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pt = 1, .pl = 1, .channels_last = 1};
      assert_int_equal(gpux__conv_wino_tile(&p), threads == 1 ? 4 : planes[i][2]);
    }
  }
  gpux__set_run_threads(0);
}

/* gpux.ConvNHWC of 3x3 windows with pads on a batch of 2, with and without a residual (input 5),
 * run three times through a node's state: every run takes the Winograd path (its outputs are not
 * conv-gemm.c's bit for bit) and matches the float64 convolution. */
static void test_winograd_node(void **state) {
  (void)state;
  if (!gpux__conv_wino_available()) skip();
  gpux__set_run_threads(2);
  static const int64_t shapes[][5] = {/* c, m, h, w, residual */
                                      {24, 70, 19, 13, 0}, {64, 48, 16, 16, 1}, {33, 130, 11, 21, 1}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t *d = shapes[s];
    int64_t xd[4] = {2, d[2], d[3], d[0]}, wd[4] = {d[1], d[0], 3, 3}, bd[1] = {d[1]}, yd[4] = {2, d[2], d[3], d[1]};
    int64_t pads[4] = {1, 1, 1, 1};
    gpux_tensor x, w, b, r;
    assert_int_equal(gpux_tensor_init(&x, GPUX_DT_FLOAT, 4, xd), 0);
    assert_int_equal(gpux_tensor_init(&w, GPUX_DT_FLOAT, 4, wd), 0);
    assert_int_equal(gpux_tensor_init(&b, GPUX_DT_FLOAT, 1, bd), 0);
    assert_int_equal(gpux_tensor_init(&r, GPUX_DT_FLOAT, 4, yd), 0);
    gpux_tensor *all[] = {&x, &w, &b, &r};
    for (size_t t = 0; t < 4; t++)
      for (int64_t i = 0; i < gpux_tensor_count(all[t]); i++) ((float *)all[t]->data)[i] = rndf();
    gpux__attr attrs[1] = {{.name = "pads", .type = GPUX_ATTR_INTS, .n = 4, .ints = pads}};
    gpux__node n = {.name = "t", .op_type = "ConvNHWC", .domain = "gpux", .opset = 1, .n_in = d[4] ? 6 : 3,
                    .n_out = 1, .n_attrs = 1, .attrs = attrs};
    n.op = gpux__op_find("gpux", "ConvNHWC", 1);
    assert_non_null(n.op);
    /* conv-gemm.c's result on the same packed weights, and the float64 reference's problem */
    gpux__conv_epilogue ep = {.act = GPUX_EP_NONE, .res = d[4] ? r.data : NULL};
    float *gemm = malloc((size_t)gpux_tensor_count(&r) * sizeof *gemm);
    ep.y0 = gemm;
    gpux__conv2d p = {.x = x.data, .w = w.data, .b = b.data, .y = gemm, .n = 2, .c = d[0], .m = d[1], .g = 1,
                      .h = d[2], .w_ = d[3], .kh = 3, .kw = 3, .oh = d[2], .ow = d[3], .sh = 1, .sw = 1, .dh = 1,
                      .dw = 1, .pt = 1, .pl = 1, .ep = &ep, .channels_last = 1};
    gpux__sgemm_b wt;
    assert_int_equal(gpux__conv_gemm_pack(w.data, p.m, p.c, 9, &wt), 0);
    assert_int_equal(gpux__conv2d_gemm(&p, &wt), 0);
    gpux__conv_gemm_free(&wt);
    gpux__node_state *_Atomic slot = NULL;
    for (int run = 0; run < 3; run++) {
      gpux_tensor y = {0}, *outs[1] = {&y};
      const gpux_tensor *in[6] = {&x, &w, &b, NULL, NULL, &r};
      gpux__kctx k = {.node = &n, .n_in = n.n_in, .n_out = 1, .in = in, .out = outs, .opset = 1, .state = &slot,
                      .const_in = 2};
      assert_int_equal(n.op->run(&k), 0);
      assert_int_equal(gpux_tensor_count(&y), gpux_tensor_count(&r));
      int differs = 0;
      for (int64_t i = 0; i < gpux_tensor_count(&y); i++) differs |= ((float *)y.data)[i] != gemm[i];
      if (!differs) fail_msg("shape %zu run %d: the output is conv-gemm.c's bit for bit", s, run);
      p.y = y.data, ep.y0 = y.data;
      double worst = worst_error(&p);
      if (worst > 1) fail_msg("shape %zu run %d: error %g of the bound", s, run, worst);
      gpux_tensor_free(&y);
    }
    gpux__node_state *sp = atomic_load(&slot);
    assert_non_null(sp);
    sp->destroy(sp);
    free(gemm);
    for (size_t t = 0; t < 4; t++) gpux_tensor_free(all[t]);
  }
  gpux__set_run_threads(0);
}

/* A float32 tensor of these dims on the test's array (not owned). */
static gpux_tensor borrow(const float *data, int ndim, const int64_t *dims) {
  gpux_tensor t = {0};
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_FLOAT, ndim, dims), 0);
  free(t.data);
  t.data = (void *)data, t.owns_data = 0;
  return t;
}

/* One gpux.ConvNHWC node (W [m, c, 3, 3] the tensor wt, the same every run, as an initializer is)
 * run on X [n, h, w, c], pads 1, through the node's state in slot, its output into y_out. */
static void run_node(gpux__node_state *_Atomic *slot, const float *x, const gpux_tensor *wt, const float *b,
                     int64_t n, int64_t h, int64_t wd_, float *y_out) {
  int64_t c = wt->dims[1], m = wt->dims[0];
  int64_t xd[4] = {n, h, wd_, c}, bd[1] = {m}, pads[4] = {1, 1, 1, 1};
  gpux_tensor xt = borrow(x, 4, xd), bt = borrow(b, 1, bd);
  gpux__attr attrs[1] = {{.name = "pads", .type = GPUX_ATTR_INTS, .n = 4, .ints = pads}};
  gpux__node nd = {.name = "t", .op_type = "ConvNHWC", .domain = "gpux", .opset = 1, .n_in = 3, .n_out = 1,
                   .n_attrs = 1, .attrs = attrs};
  nd.op = gpux__op_find("gpux", "ConvNHWC", 1);
  assert_non_null(nd.op);
  gpux_tensor y = {0}, *outs[1] = {&y};
  const gpux_tensor *in[3] = {&xt, wt, &bt};
  gpux__kctx k = {.node = &nd, .n_in = 3, .n_out = 1, .in = in, .out = outs, .opset = 1, .state = slot,
                  .const_in = 2};
  assert_int_equal(nd.op->run(&k), 0);
  assert_int_equal(gpux_tensor_count(&y), n * h * wd_ * m);
  memcpy(y_out, y.data, (size_t)gpux_tensor_count(&y) * sizeof(float));
  gpux_tensor_free(&y);
}

typedef struct {
  gpux__node_state *_Atomic *slot;
  const float *x, *b;
  const gpux_tensor *wt;
  float *y;
} node_thread_arg;

static void *node_thread(void *p) {
  node_thread_arg *a = p;
  gpux__set_run_threads(1);
  run_node(a->slot, a->x, a->wt, a->b, 1, 3, 3, a->y);
  return NULL;
}

/* The weights a gpux.ConvNHWC keeps (gpux_session_memory counts their bytes): a node whose runs
 * all take the Winograd kernel keeps its transformed weights only, made on the first run; a plane
 * that kernel declines (3 x 3: one tile) packs W for conv-gemm.c on its first run, once (two
 * threads at once), and gives conv-gemm.c's output bit for bit; a node whose first run is
 * declined packs W then, and transforms it later from the packed copy. The session keeps W's data
 * for a node that may pack it later (rereads), and no longer once it holds the packed copy. */
static void test_winograd_node_memory(void **state) {
  (void)state;
  if (!gpux__conv_wino_available()) skip();
  gpux__set_run_threads(1);
  const int64_t c = 40, m = 72, panels = (m + 63) / 64;
  size_t u_bytes = (size_t)(36 * panels * c * 64) * sizeof(float);
  size_t p_bytes = (size_t)gpux__sgemm_packed_floats(9 * c, m) * sizeof(float);
  float *x = malloc((size_t)(2 * 20 * 20 * c) * sizeof *x), *w = malloc((size_t)(m * c * 9) * sizeof *w);
  float *b = malloc((size_t)m * sizeof *b), *y = malloc((size_t)(2 * 20 * 20 * m) * sizeof *y);
  float *y2 = malloc((size_t)(9 * m) * sizeof *y2), *ref = malloc((size_t)(9 * m) * sizeof *ref);
  for (int64_t i = 0; i < 2 * 20 * 20 * c; i++) x[i] = rndf();
  for (int64_t i = 0; i < m * c * 9; i++) w[i] = rndf();
  for (int64_t i = 0; i < m; i++) b[i] = rndf();
  gpux__conv2d big = {.n = 2, .c = c, .m = m, .g = 1, .h = 20, .w_ = 20, .kh = 3, .kw = 3, .oh = 20, .ow = 20,
                      .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pt = 1, .pl = 1, .channels_last = 1};
  gpux__conv2d small = big;
  small.n = 1, small.h = small.w_ = small.oh = small.ow = 3;
  assert_true(gpux__conv_wino_takes(&big));
  assert_false(gpux__conv_wino_takes(&small));
  /* conv-gemm.c's output of the small plane */
  gpux__conv_epilogue ep = {.act = GPUX_EP_NONE};
  gpux__conv2d p = small;
  p.x = x, p.w = w, p.b = b, p.y = ref, p.ep = &ep;
  gpux__sgemm_b pk;
  assert_int_equal(gpux__conv_gemm_pack(w, m, c, 9, &pk), 0);
  assert_int_equal(gpux__conv2d_gemm(&p, &pk), 0);
  gpux__conv_gemm_free(&pk);

  int64_t wdims[4] = {m, c, 3, 3};
  gpux_tensor wt = borrow(w, 4, wdims);
  gpux__node_state *_Atomic slot = NULL;
  for (int run = 0; run < 3; run++) run_node(&slot, x, &wt, b, 2, 20, 20, y);
  gpux__node_state *sp = atomic_load(&slot);
  assert_non_null(sp);
  if (sp->bytes != u_bytes)
    fail_msg("after Winograd runs only: %zu bytes kept, want the transformed weights' %zu (packed: %zu)",
             (size_t)sp->bytes, u_bytes, p_bytes);
  assert_true(sp->replaces >> 1 & 1);
  assert_true(sp->rereads >> 1 & 1);
  /* the declined plane on two threads at once: packed once */
  pthread_t th[2];
  float *ys[2] = {y2, y};
  node_thread_arg args[2];
  for (int i = 0; i < 2; i++) {
    args[i] = (node_thread_arg){.slot = &slot, .x = x, .wt = &wt, .b = b, .y = ys[i]};
    assert_int_equal(pthread_create(&th[i], NULL, node_thread, &args[i]), 0);
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  assert_memory_equal(y2, ref, (size_t)(9 * m) * sizeof(float));
  assert_memory_equal(y, ref, (size_t)(9 * m) * sizeof(float));
  assert_int_equal(sp->bytes, u_bytes + p_bytes);
  run_node(&slot, x, &wt, b, 1, 3, 3, y2);
  run_node(&slot, x, &wt, b, 2, 20, 20, y);
  assert_int_equal(sp->bytes, u_bytes + p_bytes);
  sp->destroy(sp);

  /* declined first: packed, W not read again; then transformed from the packed weights */
  atomic_store(&slot, NULL);
  run_node(&slot, x, &wt, b, 1, 3, 3, y2);
  sp = atomic_load(&slot);
  assert_non_null(sp);
  assert_int_equal(sp->bytes, p_bytes);
  assert_true(sp->replaces >> 1 & 1);
  assert_false(sp->rereads >> 1 & 1);
  assert_memory_equal(y2, ref, (size_t)(9 * m) * sizeof(float));
  float *wc = malloc((size_t)(m * c * 9) * sizeof *wc);
  memcpy(wc, w, (size_t)(m * c * 9) * sizeof *wc);
  for (int64_t i = 0; i < m * c * 9; i++) w[i] = NAN; /* let go: never read */
  run_node(&slot, x, &wt, b, 2, 20, 20, y);
  assert_int_equal(sp->bytes, p_bytes + u_bytes);
  p = big, p.x = x, p.w = wc, p.b = b, p.y = y, p.ep = &ep;
  double worst = worst_error(&p);
  if (worst > 1) fail_msg("transformed from the packed weights: error %g of the bound", worst);
  sp->destroy(sp);
  free(x), free(w), free(wc), free(b), free(y), free(y2), free(ref);
  gpux__set_run_threads(0);
}

int main(void) {
  gpux__set_thread_count(2); /* the pool: 2 threads, and jobs on 1 or 2 of them */
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_winograd_shapes),
    cmocka_unit_test(test_winograd_tile2),
    cmocka_unit_test(test_winograd_declines),
    cmocka_unit_test(test_winograd_tile_choice),
    cmocka_unit_test(test_winograd_node),
    cmocka_unit_test(test_winograd_node_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
