/* elementwise.c — operator family 'elementwise' (see ops/op.h for the gpux__ops_elementwise table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_elementwise[] = {
  {0},
};
