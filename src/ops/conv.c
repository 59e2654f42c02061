/* conv.c — operator family 'conv' (see ops/op.h for the gpux__ops_conv table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_conv[] = {
  {0},
};
