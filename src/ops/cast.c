/* cast.c — operator family 'cast' (see ops/op.h for the gpux__ops_cast table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_cast[] = {
  {0},
};
