/* conv.h — what the convolution (conv.c) and pooling (pool.c) kernels share: the sliding-window
 * geometry read from kernel_shape/strides/dilations/pads/auto_pad, and the pooling kernels that
 * conv.c's op table registers. */
#ifndef GPUX_OPS_CONV_H
#define GPUX_OPS_CONV_H

#include "ops/op.h"

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
int gpux__window_read(gpux_kctx *k, const gpux_tensor *x, const int64_t *kernel, gpux__window *w);
/* Output extents and pads of a forward window (Conv, pooling): auto_pad SAME_UPPER/SAME_LOWER
 * (out = ceil(in / stride)), VALID (no padding) or NOTSET (explicit pads), with ceil_mode
 * rounding up where the last window still starts inside the input or its left padding. */
int gpux__window_forward(gpux_kctx *k, gpux__window *w, int ceil_mode);
/* Output dims N, C, spatial... of a window. */
void gpux__window_out_dims(const gpux__window *w, int64_t n, int64_t c, int64_t *dims);

/* A new float32 copy of t's elements, any numeric dtype (NULL when out of memory). */
float *gpux__conv_widen_f32(const gpux_tensor *t);
/* Stores n float32 values into a buffer of dtype (rounding to nearest). */
void gpux__conv_narrow_f32(int dtype, void *dst, const float *src, int64_t n);

/* Pooling kernels (pool.c). */
int gpux__op_maxpool(gpux_kctx *k);
int gpux__op_averagepool(gpux_kctx *k);
int gpux__op_lppool(gpux_kctx *k);
int gpux__op_globalmaxpool(gpux_kctx *k);
int gpux__op_globalaveragepool(gpux_kctx *k);
int gpux__op_globallppool(gpux_kctx *k);
int gpux__op_maxunpool(gpux_kctx *k);

#endif
