/* control.c — operator family 'control' (see ops/op.h for the gpux__ops_control table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_control[] = {
  {0},
};
