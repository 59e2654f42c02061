/* copies.c — the copies the loader made of initializers that are not aligned in the file (or
 * come in another encoding), held by the sessions that may read them: a copy no holding session
 * reads any more (its kernels keep the weights in a layout of their own) is freed, and decoded
 * again from the file for a session that may read it later. The rules are in onnx.h. */
#include "onnx/onnx.h"
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* A freed copy of a megabyte or more in the middle of the heap stays resident until the heap is
 * trimmed (glibc returns only its top, and takes large blocks from the heap once one mapped block
 * was freed): while a session's first run packs weights into new memory and lets their copies go,
 * that would hold both at once. */
#define TRIM_BYTES ((size_t)1 << 20)

int gpux__model_hold(gpux_model *m) {
  gpux__graph *g = m->graph;
  int rc = 0, v;
  pthread_mutex_lock(&m->lock);
  for (v = 0; v < g->n_values; v++) {
    gpux__value *x = &g->values[v];
    if (!x->pb || !x->is_const) continue;
    if (!x->init.data) { /* let go before: decoded again, the same bytes */
      gpux_tensor t;
      if ((rc = gpux__tensor_from_pb(x->pb, x->pb_len, m, 1, &t, NULL, NULL))) break;
      /* the data alone: sessions that let it go may be running, reading the rest (dtype, dims) */
      x->init.data = t.data;
      t.data = NULL;
      gpux_tensor_free(&t);
    }
    x->holders++;
  }
  while (rc && v-- > 0) /* undone: this session holds nothing */
    if (g->values[v].pb && g->values[v].is_const) g->values[v].holders--;
  pthread_mutex_unlock(&m->lock);
  return rc;
}

size_t gpux__model_drop(gpux_model *m, int v) {
  gpux__value *x = &m->graph->values[v];
  size_t freed = 0;
  pthread_mutex_lock(&m->lock);
  if (x->pb && x->holders > 0 && --x->holders == 0 && x->init.owns_data && x->init.data) {
    free(x->init.data);
    x->init.data = NULL;
    freed = x->init.nbytes;
  }
  pthread_mutex_unlock(&m->lock);
#ifdef __GLIBC__
  if (freed >= TRIM_BYTES) malloc_trim(0);
#endif
  return freed;
}

void gpux__model_unhold(gpux_model *m, const unsigned char *dropped) {
  gpux__graph *g = m->graph;
  pthread_mutex_lock(&m->lock);
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].pb && g->values[v].is_const && !(dropped && dropped[v]) && g->values[v].holders > 0)
      g->values[v].holders--;
  pthread_mutex_unlock(&m->lock);
}
