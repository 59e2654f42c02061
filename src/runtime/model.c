/* model.c — a model made ready to run: gpux_model_load reads the file with the ONNX loader
 * (onnx/model.c, which knows no kernels) and then binds every node of every graph, nested bodies
 * included, to its CPU kernel in the op table (ops/registry.c) for the node's domain and opset.
 * gpux_model_check_ops names the first node left without one. */
#include "onnx/onnx.h"
#include "ops/op.h"

static void bind_kernels(gpux_model *m) {
  for (int gi = 0; gi < m->n_graphs; gi++) {
    gpux__graph *g = m->graphs[gi];
    for (int i = 0; i < g->n_nodes; i++) {
      gpux__node *n = &g->nodes[i];
      n->op = gpux__op_find(n->domain, n->op_type, n->opset);
    }
  }
}

int gpux_model_load(const char *path, gpux_model **out) {
  int rc = gpux__onnx_load(path, out);
  if (!rc) bind_kernels(*out);
  return rc;
}

int gpux_model_load_buffer(const void *data, size_t size, const char *name, gpux_model **out) {
  int rc = gpux__onnx_load_buffer(data, size, name, out);
  if (!rc) bind_kernels(*out);
  return rc;
}

int gpux_model_check_ops(const gpux_model *m) {
  for (int gi = 0; gi < m->n_graphs; gi++) {
    const gpux__graph *g = m->graphs[gi];
    for (int i = 0; i < g->n_nodes; i++) {
      const gpux__node *n = &g->nodes[i];
      if (n->op) continue;
      if (n->domain[0])
        return gpux__error(GPUX_E_UNSUPPORTED_OP, "%s: node '%s': operator %s::%s (opset %d) is not supported",
                           m->path, n->name, n->domain, n->op_type, n->opset);
      return gpux__error(GPUX_E_UNSUPPORTED_OP, "%s: node '%s': operator %s (opset %d) is not supported",
                         m->path, n->name, n->op_type, n->opset);
    }
  }
  return 0;
}
