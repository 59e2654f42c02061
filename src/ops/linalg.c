/* linalg.c — operator family 'linalg' (see ops/op.h for the gpux__ops_linalg table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_linalg[] = {
  {0},
};
