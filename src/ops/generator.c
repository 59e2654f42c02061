/* generator.c — operator family 'generator' (see ops/op.h for the gpux__ops_generator table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_generator[] = {
  {0},
};
