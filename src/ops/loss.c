/* loss.c — operator family 'loss' (see ops/op.h for the gpux__ops_loss table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_loss[] = {
  {0},
};
