/* misc.c — operator family 'misc' (see ops/op.h for the gpux__ops_misc table). */
#include "ops/op.h"

/* kernels living in resize.c */
int gpux__op_resize(gpux_kctx *k);
int gpux__op_upsample(gpux_kctx *k);

const gpux_op_def gpux__ops_misc[] = {
  {"", "Resize", gpux__op_resize, 10, 0},
  {"", "Upsample", gpux__op_upsample, 7, 0},
  {0},
};
