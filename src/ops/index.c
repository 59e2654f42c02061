/* index.c — operator family 'index' (see ops/op.h for the gpux__ops_index table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_index[] = {
  {0},
};
