/* conv.h — what the convolution (conv.c, conv-direct.c, conv-epilogue.c) and pooling (pool.c)
 * kernels share: the sliding-window geometry read from kernel_shape/strides/dilations/pads/
 * auto_pad, FusedConv's output epilogue, and the direct float32 kernels. */
#ifndef GPUX_OPS_CONV_H
#define GPUX_OPS_CONV_H

#include "ops/op.h"
#include "ops/gemm.h"

/* Up to three spatial dims, right-aligned: a 2-D window uses slots 1 and 2 and slot 0 is a
 * unit dim (in = out = k = s = d = 1, no padding); a 1-D window uses slot 2 only. */
#define GPUX_WIN_DIMS 3

typedef struct {
  int nsp;                        /* spatial rank of the op, 1..GPUX_WIN_DIMS */
  int64_t in[GPUX_WIN_DIMS];      /* input extents */
  int64_t out[GPUX_WIN_DIMS];     /* output extents */
  int64_t k[GPUX_WIN_DIMS];       /* kernel extents */
  int64_t s[GPUX_WIN_DIMS];       /* strides */
  int64_t d[GPUX_WIN_DIMS];       /* dilations */
  int64_t pb[GPUX_WIN_DIMS];      /* padding before (may be negative for ConvTranspose) */
  int64_t pe[GPUX_WIN_DIMS];      /* padding after */
} gpux__window;

/* Reads the window of an N x C x spatial input: kernel_shape (from `kernel` when not NULL and
 * the attribute is absent), strides, dilations and explicit pads; fills in[] and leaves out[]
 * at 1. Errors on a spatial rank outside 1..3 or bad attribute values. */
int gpux__window_read(gpux__kctx *k, const gpux_tensor *x, const int64_t *kernel, gpux__window *w);
/* Output extents and pads of a forward window (Conv, pooling): auto_pad SAME_UPPER/SAME_LOWER
 * (out = ceil(in / stride)), VALID (no padding) or NOTSET (explicit pads), with ceil_mode
 * rounding up where the last window still starts inside the input or its left padding. */
int gpux__window_forward(gpux__kctx *k, gpux__window *w, int ceil_mode);
/* Output dims N, C, spatial... of a window. */
void gpux__window_out_dims(const gpux__window *w, int64_t n, int64_t c, int64_t *dims);

/* What gpux.FusedConv (made by runtime/optimize.c) applies to each output channel m after the
 * convolution and bias: y = clamp(act(y + bias[m] (+ r))) * scale[m] + shift[m], r being the
 * residual R (of Y's shape) at y's place. */
enum {
  GPUX_EP_NONE, GPUX_EP_RELU, GPUX_EP_LEAKY, GPUX_EP_CLIP, GPUX_EP_HARDSIGMOID, GPUX_EP_HARDSWISH,
  GPUX_EP_SIGMOID, GPUX_EP_SILU
};

typedef struct {
  int act;                      /* GPUX_EP_* */
  float p0, p1;                 /* LeakyRelu alpha; Clip min, max; HardSigmoid alpha, beta */
  int clamp;                    /* then clamp to [lo, hi] */
  float lo, hi;
  const float *scale, *shift;   /* [M] applied last, or NULL */
  const float *res;             /* R, added before the activation, or NULL */
  const float *y0;              /* Y's first element: y - y0 is where R is read */
} gpux__conv_epilogue;

/* y[r * ys + i] = epilogue(src[r * ss + i] + bias) for r < rows, i < n: rows of output channel m
 * (src may be y). */
void gpux__conv_finish(float *y, int64_t ys, const float *src, int64_t ss, int64_t rows, int64_t n, float bias,
                       const gpux__conv_epilogue *e, int64_t m);

/* The same on a channels-last tile: c[q * ldc + i] = epilogue(c[q * ldc + i] + bias[m0 + i]) for
 * q < np, i < nm (bias may be NULL), in place, before the tile is transposed into Y. 0 when done;
 * 1 where it does not run (an epilogue with a residual, read at Y's place; no AVX-512), and the
 * caller runs gpux__conv_finish on Y's planes instead. */
int gpux__conv_finish_cl(float *c, int64_t ldc, int64_t np, int64_t m0, int64_t nm, const float *bias,
                         const gpux__conv_epilogue *e);

/* The epilogue on rows of channels-last output in Y itself (gpux.ConvNHWC):
 * y[q * ldy + i] = epilogue(y[q * ldy + i] + bias[m0 + i]) for q < np, i < nm (bias may be NULL),
 * the residual read at y's place in R (ep->res, ep->y0). */
void gpux__conv_finish_nhwc(float *y, int64_t ldy, int64_t np, int64_t m0, int64_t nm, const float *bias,
                            const gpux__conv_epilogue *e);

/* The thread pool's work (units of about one GEMM multiply-add, gpux__threads_for) of the
 * epilogue on one output: an exponential (Sigmoid, SiLU) costs about 16, the piecewise-linear
 * activations 1-2, a residual, a clamp and a scale a load or an operation each, plus the output's
 * own store. Kernels add it to their multiply-adds, so that a job of few multiply-adds an output
 * (a depthwise window, a squeeze-excite product) with an exponential gets the threads it is
 * worth. */
static inline double gpux__conv_ep_work(const gpux__conv_epilogue *e) {
  if (!e) return 1.0;
  double w = 1.0;
  switch (e->act) {
  case GPUX_EP_SIGMOID: case GPUX_EP_SILU: w += 16.0; break;
  case GPUX_EP_HARDSIGMOID: case GPUX_EP_HARDSWISH: w += 2.0; break;
  case GPUX_EP_NONE: break;
  default: w += 1.0; break;
  }
  return w + (e->res ? 1.0 : 0.0) + (e->clamp ? 1.0 : 0.0) + (e->scale ? 1.0 : 0.0);
}
/* What a depthwise multiply-add costs in those units: one input vector loaded (or permuted) for
 * each FMA, no register reuse across output channels, about twice a GEMM's. */
#define GPUX__DW_MAC_WORK 2.0

/* Planes that pool.c's AVX-512 MaxPool kernel (2-D, stride 1 or 2 along W, rows folded first)
 * has pooled: tests read it to know the path ran. */
extern _Atomic long long gpux__maxpool_rows_planes;

/* A float32 2-D convolution (1-D ones have H = 1) for the direct kernels of conv-direct.c. */
typedef struct {
  const float *x;               /* X [n, c, h, w] */
  const float *w;               /* W [m, c / g, kh, kw] */
  const float *b;               /* B [m], or NULL */
  float *y;                     /* Y [n, m, oh, ow] */
  int64_t n, c, m, g;           /* batch, input channels, output channels, groups */
  int64_t h, w_, kh, kw;        /* input and kernel extents */
  int64_t oh, ow;               /* output extents */
  int64_t sh, sw, dh, dw;       /* strides and dilations */
  int64_t pt, pl;               /* padding before (top, left); the rest follows from oh, ow */
  const gpux__conv_epilogue *ep;
  int channels_last;            /* X is [n, h, w, c], Y and the residual [n, oh, ow, m] (the
                                   layout of gpux.ConvNHWC; conv-gemm.c's kernel only) */
  int x_planes;                 /* with channels_last, X is [n, c, h, w] all the same (a region's
                                   first convolution, on the graph's planes: conv-rows.c only) */
  const float *wk;              /* depthwise, channels last: W interleaved by gpux__conv_dw_pack
                                   (made once, kept by conv.c), or NULL: interleaved on each call */
  const float *xs;              /* with channels_last, X's scale [n, c] (a squeeze-excitation's,
                                   gpux.ConvNHWC's input 6), or NULL: conv-gemm.c's kernel takes it
                                   on 1 x 1 windows of stride 1 without padding, others not */
  double *row_sums;             /* depthwise, channels last: or NULL; else [n, oh, m], each output
                                   row's sum over its positions per channel (in position order, in
                                   double as GlobalAveragePool sums), for a GlobalAveragePool of Y
                                   (gpux.ConvNHWC's output 1): conv-depthwise.c's kernel adds each
                                   row up while it is in L1 */
} gpux__conv2d;

/* With GPUX_CONV_PLAN=1 in the environment, a note (gpux__log) of how a kernel split a
 * convolution: its threads, tasks, each task's positions x output channels and multiply-adds,
 * and how busy `threads` threads are if the tasks, all equal, go out as the pool hands them out
 * (gpux__parallel_busiest). */
void gpux__conv_plan_note(const char *kernel, const gpux__conv2d *p, int threads, int64_t tasks, int64_t positions,
                          int64_t channels, double macs_per_task);

/* Whether this machine runs the direct kernels (x86-64 with AVX2 and FMA). */
int gpux__conv_direct_available(void);
/* Stride-1 convolution as an implicit GEMM over a padded copy of X; 1 when it does not take the
 * shape (the caller runs another path), 0 when done, or a negative error (out of memory). */
int gpux__conv2d_implicit(const gpux__conv2d *p);
/* Depthwise convolution (one input channel per group), any window, stride and dilation, on
 * conv-depthwise.c's AVX-512 kernel where it takes the shape, else on AVX2: 0 when done, 1 when
 * not taken, or a negative error. */
int gpux__conv2d_depthwise(const gpux__conv2d *p);

/* Whether the AVX-512 depthwise kernel of conv-depthwise.c runs here (GPUX_CONV_DIRECT=avx2 or
 * =0 in the environment turns it off, for comparisons). */
int gpux__conv_dw16_available(void);
/* Depthwise convolution with one output channel per input channel (m = c = g) on AVX-512, by
 * rows of 16 outputs or 16 channels at a time: 0 when done, 1 when not taken, or a negative
 * error. */
int gpux__conv2d_depthwise16(const gpux__conv2d *p);

/* Depthwise convolution (m = c = g) on channels-last X and Y (p->channels_last: gpux.ConvNHWC's
 * layout) on AVX-512: 0 when done, 1 when not taken, or a negative error. */
int gpux__conv2d_depthwise_nhwc(const gpux__conv2d *p);
/* W [c][taps] of a depthwise convolution as gpux__conv2d_depthwise_nhwc reads it (gpux__conv2d's
 * wk): blocks of 16 channels, each [taps][16] (channels past c zero), 64-byte aligned dst of
 * gpux__conv_dw_packed_floats(c, taps) floats. 0, or 1 where the kernel does not run here. */
int64_t gpux__conv_dw_packed_floats(int64_t c, int64_t taps);
int gpux__conv_dw_pack(const float *w, int64_t c, int64_t taps, float *dst);
/* An inverted residual block's 1x1 expansion e (one group, stride 1, no pads; e->y unused) and
 * the depthwise convolution d (3 x 3 or 5 x 5, stride 1 or 2 both ways, dilation 1; d->x unused)
 * that alone reads its output, in one pass per strip of d's output rows: the expanded rows stay
 * in the thread's caches (conv-depthwise.c, AVX-512). Neither epilogue may add a residual. 0 when
 * done, 1 where it does not run, or a negative error. */
int gpux__conv2d_expand_dw(const gpux__conv2d *e, const gpux__conv2d *d);
/* Tasks (strip and channel block) gpux__conv2d_expand_dw has run: tests read it. */
extern _Atomic long long gpux__expand_dw_tasks;

/* Whether conv-gemm.c's kernel runs here (AVX-512; GPUX_CONV_DIRECT=avx2 or =0, or
 * GPUX_CONV_GEMM=0, turns it off, for comparisons). */
int gpux__conv_gemm_available(void);
/* Whether a convolution of c input and m output channels, a window of `taps` taps and os outputs
 * a plane goes to gpux__conv2d_gemm on its first run (conv.c then keeps it there): planes of at
 * most 256 outputs, or of at most 1024 for windows of 128 input and 64 output channels or more
 * where the pool's threads keep 96 positions each. */
int gpux__conv_gemm_first(int64_t c, int64_t m, int64_t taps, int64_t os);
/* W [m, c, taps] (float32, not necessarily aligned) packed for gpux__conv2d_gemm into out (new
 * memory on huge pages, which gpux__conv_gemm_free frees), on the pool: 0, 1 when this machine
 * has no such kernel, or GPUX_E_NOMEM. */
int gpux__conv_gemm_pack(const void *w, int64_t m, int64_t c, int64_t taps, gpux__sgemm_b *out);
void gpux__conv_gemm_free(gpux__sgemm_b *wt);
/* A convolution of one group as a product on W packed by gpux__conv_gemm_pack (p->w is not
 * read), any window, stride, padding and dilation: 0 when done, 1 when not taken, or a negative
 * error. */
int gpux__conv2d_gemm(const gpux__conv2d *p, const gpux__sgemm_b *wt);

/* Whether gpux__conv2d_rows takes p: one group, at most 15 input channels, a window of more than
 * one tap with a dilation of 1 along W (each window row one run of kw x C channels-last floats)
 * and at most 1024 values of K, on AVX-512. */
int gpux__conv_rows_takes(const gpux__conv2d *p);
/* A convolution of few input channels (an image model's stem) as a product on W packed by
 * gpux__conv_gemm_pack (p->w is not read) whose register blocks sum a whole window, row by row,
 * in one pass (conv-rows.c); X and Y NCHW, or channels last with p->channels_last (X NCHW still
 * with p->x_planes): 0 when done,
 * 1 when not taken, or a negative error. */
int gpux__conv2d_rows(const gpux__conv2d *p, const gpux__sgemm_b *wt);

/* The weights of a 3x3 convolution transformed for gpux__conv2d_winograd: U [36][panel][c][64]
 * (tile 4; [16] for tile 2), U_xi = (G g G^T)[xi] in sgemm.c's panels of 64 output channels,
 * zero past m. */
typedef struct {
  int64_t c, m, panels;
  int tile;                     /* outputs a tile's side: 4 (F(4x4, 3x3)) or 2 (F(2x2, 3x3)) */
  float *data;                  /* on huge pages, 64-byte aligned */
} gpux__conv_wino_w;

/* Whether conv-winograd.c's kernel runs here (AVX-512 and conv-gemm.c's kernel; GPUX_WINOGRAD=0
 * in the environment turns it off, for comparisons). */
int gpux__conv_wino_available(void);
/* Whether gpux__conv2d_winograd takes p on this many threads: channels last, one group, a 3x3
 * window of stride and dilation 1, 16 channels or more in and out, and enough tiles of output
 * a task that the transformed weights pay for themselves (the cost rule: busiest thread's work
 * against streaming them from memory); gpux__conv2d_winograd declines a p where the tile of the
 * weights it is given does not pay. */
int gpux__conv_wino_takes(const gpux__conv2d *p);
/* The tile gpux__conv2d_winograd would take p in on this many threads: 4 (F(4x4, 3x3)), 2
 * (F(2x2, 3x3)), or 0 where it declines p. */
int gpux__conv_wino_tile(const gpux__conv2d *p);
/* The weights W [m, c, 3, 3] (w, float32 not necessarily aligned), or when w is NULL the same packed by gpux__conv_gemm_pack (wt,
 * 9 taps), transformed into out (new memory, which gpux__conv_wino_free frees; the same floats
 * either way), for tiles of tile x tile outputs (gpux__conv_wino_tile's), on the pool: 0, 1 when
 * this machine has no such kernel, or GPUX_E_NOMEM. */
int gpux__conv_wino_pack(const void *w, const gpux__sgemm_b *wt, int64_t c, int64_t m, int tile,
                         gpux__conv_wino_w *out);
void gpux__conv_wino_free(gpux__conv_wino_w *u);
/* A 3x3 convolution by Winograd's F(4x4, 3x3) or F(2x2, 3x3) (u's tile) on the transformed
 * weights u (p->w is not read):
 * 0 when done, 1 when not taken (gpux__conv_wino_takes), or a negative error. */
int gpux__conv2d_winograd(const gpux__conv2d *p, const gpux__conv_wino_w *u);

#endif
