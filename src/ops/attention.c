/* attention.c — operator family 'attention' (see ops/op.h for the gpux__ops_attention table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_attention[] = {
  {0},
};
