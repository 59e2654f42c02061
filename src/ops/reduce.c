/* reduce.c — operator family 'reduce' (see ops/op.h for the gpux__ops_reduce table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_reduce[] = {
  {0},
};
