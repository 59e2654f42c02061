/* registry.c — the one table of every operator gpux implements, gathered from each family's
 * table. The runtime binds nodes to kernels through gpux__op_find. */
#include "ops/op.h"

static const gpux__op_def *const families[] = {
  gpux__ops_elementwise, gpux__ops_activation, gpux__ops_cast,    gpux__ops_linalg,
  gpux__ops_conv,        gpux__ops_pool,       gpux__ops_norm,    gpux__ops_reduce,
  gpux__ops_shape,       gpux__ops_index,      gpux__ops_generator, gpux__ops_control,
  gpux__ops_quant,       gpux__ops_rnn,        gpux__ops_misc,    gpux__ops_attention,
  gpux__ops_loss,        gpux__ops_quant_contrib,
};

static int domain_equal(const char *a, const char *b) {
  /* "" and "ai.onnx" name the same default domain */
  if (!a || !strcmp(a, "ai.onnx")) a = "";
  if (!b || !strcmp(b, "ai.onnx")) b = "";
  return !strcmp(a, b);
}

/* The opsets that ONNX 1.23.1's node tests import (ai.onnx 1 to 28, ai.onnx.ml 1 to 5): the
 * 1,884 cases tests/conformance runs, which is what gpux is held to. Raise with the tests. */
int gpux_opset_range(const char *domain, int *min, int *max) {
  int lo = 1, hi;
  if (!domain || domain_equal(domain, "")) hi = 28;
  else if (!strcmp(domain, "ai.onnx.ml")) hi = 5;
  else return gpux__error(GPUX_E_NOTFOUND, "no operators of domain '%s'", domain);
  if (min) *min = lo;
  if (max) *max = hi;
  return 0;
}

const gpux__op_def *gpux__op_find(const char *domain, const char *op_type, int opset) {
  for (size_t f = 0; f < GPUX__ARRAY_LEN(families); f++)
    for (const gpux__op_def *d = families[f]; d->op_type; d++) {
      if (strcmp(d->op_type, op_type) || !domain_equal(d->domain, domain)) continue;
      if (d->min_opset && opset < d->min_opset) continue;
      if (d->max_opset && opset > d->max_opset) continue;
      return d;
    }
  return NULL;
}
