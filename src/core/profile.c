/* profile.c — per-operator time tallies (profile.h). */
#include "core/profile.h"
#include <stdio.h>

void gpux__prof_init(gpux__prof *p) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->lock, NULL);
}

void gpux__prof_release(gpux__prof *p) {
  free(p->e);
  pthread_mutex_destroy(&p->lock);
  memset(p, 0, sizeof *p);
}

void gpux__prof_clear(gpux__prof *p) {
  pthread_mutex_lock(&p->lock);
  p->n = 0;
  p->method = GPUX__PROF_NONE;
  pthread_mutex_unlock(&p->lock);
}

void gpux__prof_add(gpux__prof *p, const char *op, const char *device, double ms, int method) {
  pthread_mutex_lock(&p->lock);
  int i = 0;
  while (i < p->n && (strcmp(p->e[i].op, op) || strcmp(p->e[i].device, device))) i++;
  if (i == p->n) {
    if (p->n == p->cap) {
      int cap = p->cap ? p->cap * 2 : 32;
      gpux__prof_entry *ne = realloc(p->e, (size_t)cap * sizeof *ne);
      if (!ne) {
        pthread_mutex_unlock(&p->lock);
        return;
      }
      p->e = ne;
      p->cap = cap;
    }
    memset(&p->e[i], 0, sizeof p->e[i]);
    snprintf(p->e[i].op, sizeof p->e[i].op, "%s", op);
    snprintf(p->e[i].device, sizeof p->e[i].device, "%s", device);
    p->n++;
  }
  p->e[i].count++;
  p->e[i].ms += ms;
  if (method > p->method) p->method = method;
  pthread_mutex_unlock(&p->lock);
}
