/* rnn.c — operator family 'rnn' (see ops/op.h for the gpux__ops_rnn table). */
#include "ops/op.h"

const gpux_op_def gpux__ops_rnn[] = {
  {0},
};
