/* resize.h — the coordinate mapping of Resize (ops/resize.c), shared with the backends that run
 * Resize themselves: for one resized axis, which input indices each output index reads and with
 * what weights, for every mode, coordinate transformation, nearest rounding, antialias and
 * exclude_outside setting, exactly as the ONNX reference computes them. */
#ifndef GPUX_OPS_RESIZE_H
#define GPUX_OPS_RESIZE_H

#include "ops/op.h"

enum { GPUX__RESIZE_NEAREST, GPUX__RESIZE_LINEAR, GPUX__RESIZE_CUBIC };
enum { GPUX__RESIZE_CT_HALF_PIXEL, GPUX__RESIZE_CT_HALF_PIXEL_SYMMETRIC, GPUX__RESIZE_CT_PYTORCH_HALF_PIXEL,
       GPUX__RESIZE_CT_ALIGN_CORNERS, GPUX__RESIZE_CT_ASYMMETRIC, GPUX__RESIZE_CT_TF_CROP_AND_RESIZE,
       GPUX__RESIZE_CT_TF_HALF_PIXEL_FOR_NN };
enum { GPUX__RESIZE_NM_ROUND_PREFER_FLOOR, GPUX__RESIZE_NM_ROUND_PREFER_CEIL, GPUX__RESIZE_NM_FLOOR,
       GPUX__RESIZE_NM_CEIL };

typedef struct {
  int mode, ctm, nearest_mode;   /* GPUX__RESIZE_* */
  int antialias, exclude_outside;
  double cubic_a, extrapolation;
} gpux__resize_params;

/* The taps of one axis: output index o reads in[idx[o*n + t]] with weight w[o*n + t]
 * (t < n); extrap[o] set means the output is the extrapolation value. */
typedef struct {
  int64_t in, out;
  int n;
  int64_t *idx;          /* [out * n], clamped to [0, in) */
  double *w;             /* [out * n] */
  unsigned char *extrap; /* [out] */
  int identity;          /* output o is exactly input o */
} gpux__resize_taps;

/* Builds the taps of an axis of `in` elements resized to `out` by `scale` (roi0/roi1: the crop,
 * for tf_crop_and_resize). GPUX_E_UNSUPPORTED for an antialias footprint too large to be a
 * sensible resize, GPUX_E_NOMEM. */
int gpux__resize_taps_build(const gpux__resize_params *p, int64_t in, int64_t out, double scale, double roi0,
                            double roi1, gpux__resize_taps *a);
void gpux__resize_taps_free(gpux__resize_taps *a);

#endif
