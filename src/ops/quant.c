/* quant.c — operator family 'quant' (see ops/op.h for the gpux__ops_quant table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_quant[] = {
  {0},
};
