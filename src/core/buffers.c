/* buffers.c — the session's cache of freed buffers: a short list of malloc blocks, searched best
 * fit. See buffers.h. */
#include "core/buffers.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* A kept block serves a request that leaves at most this much of it unused, or half of it. */
#define SLACK 256

void gpux__buffers_init(gpux__buffers *b) {
  memset(b, 0, sizeof *b);
  pthread_mutex_init(&b->lock, NULL);
}

void gpux__buffers_release(gpux__buffers *b) {
  for (int i = 0; i < b->n; i++) free(b->p[i]);
  b->n = 0;
  pthread_mutex_destroy(&b->lock);
}

void gpux__buffers_trim(gpux__buffers *b) {
  pthread_mutex_lock(&b->lock);
  for (int i = 0; i < b->n; i++) free(b->p[i]);
  b->n = 0;
  pthread_mutex_unlock(&b->lock);
}

void *gpux__buffers_get(gpux__buffers *b, size_t size) {
  if (b) {
    pthread_mutex_lock(&b->lock);
    int best = -1;
    for (int i = 0; i < b->n; i++)
      if (b->size[i] >= size && (b->size[i] - size <= SLACK || b->size[i] / 2 <= size) &&
          (best < 0 || b->size[i] < b->size[best]))
        best = i;
    void *p = NULL;
    if (best >= 0) {
      p = b->p[best];
      b->n--;
      b->p[best] = b->p[b->n];
      b->size[best] = b->size[b->n];
    }
    pthread_mutex_unlock(&b->lock);
    if (p) return p;
  }
  return gpux__malloc(size ? size : 1);
}

void gpux__buffers_put(gpux__buffers *b, gpux_tensor *t) {
  if (b && t->kind == GPUX_KIND_TENSOR && t->owns_data && t->data && t->dtype != GPUX_DT_STRING) {
    pthread_mutex_lock(&b->lock);
    if (b->n == GPUX__BUFFERS_MAX) { /* full: the smallest block makes room */
      int small = 0;
      for (int i = 1; i < b->n; i++)
        if (b->size[i] < b->size[small]) small = i;
      if (b->size[small] < t->nbytes) {
        free(b->p[small]);
        b->n--;
        b->p[small] = b->p[b->n];
        b->size[small] = b->size[b->n];
      }
    }
    if (b->n < GPUX__BUFFERS_MAX) {
      b->p[b->n] = t->data;
#if defined(__GLIBC__)
      b->size[b->n] = malloc_usable_size(t->data);
#else
      b->size[b->n] = t->nbytes;
#endif
      b->n++;
      t->data = NULL;
      t->owns_data = 0;
    }
    pthread_mutex_unlock(&b->lock);
  }
  gpux_tensor_free(t);
}
