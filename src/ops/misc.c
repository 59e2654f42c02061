/* misc.c — operator family 'misc' (see ops/op.h for the gpux__ops_misc table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_misc[] = {
  {0},
};
