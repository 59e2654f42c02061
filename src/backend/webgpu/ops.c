/* ops.c — the table of WGSL kernels: which ops the WebGPU backend can run, gathered from each
 * family's table (ops-*.c). A node whose op is not here, or whose kernel declines it (dtype,
 * attribute, size), runs on its CPU kernel. */
#include "backend/webgpu/wg.h"

static const wg_op *const families[] = {
  gpux__wg_ops_elementwise, gpux__wg_ops_shape, gpux__wg_ops_linalg,
  gpux__wg_ops_conv,        gpux__wg_ops_norm,  gpux__wg_ops_reduce, gpux__wg_ops_resize,
  gpux__wg_ops_loss,        gpux__wg_ops_attention, gpux__wg_ops_quant,
};

wg_op_fn gpux__wg_op_find(const char *domain, const char *op_type) {
  if (domain && !strcmp(domain, "gpux")) { /* the graph rewrite's fused ops */
    for (size_t f = 0; f < GPUX__ARRAY_LEN(families); f++)
      for (const wg_op *o = families[f]; o->op_type; o++)
        if (!strncmp(o->op_type, "gpux.", 5) && !strcmp(o->op_type + 5, op_type)) return o->fn;
    return NULL;
  }
  if (domain && domain[0] && strcmp(domain, "ai.onnx")) return NULL;
  for (size_t f = 0; f < GPUX__ARRAY_LEN(families); f++)
    for (const wg_op *o = families[f]; o->op_type; o++)
      if (!strcmp(o->op_type, op_type)) return o->fn;
  return NULL;
}
