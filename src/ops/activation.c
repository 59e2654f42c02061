/* activation.c — operator family 'activation' (see ops/op.h for the gpux__ops_activation table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_activation[] = {
  {0},
};
