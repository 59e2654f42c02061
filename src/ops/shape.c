/* shape.c — operator family 'shape' (see ops/op.h for the gpux__ops_shape table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_shape[] = {
  {0},
};
