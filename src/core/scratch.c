/* scratch.c — per-thread kernel scratch (see scratch.h). The blocks hang off a thread-local
 * pointer for speed and are also registered under a pthread key, whose destructor frees them
 * when the thread exits: a thread outside the pool (a server's connection thread, a caller's
 * own thread) leaves nothing behind.
 * Which pool thread runs which task of a job is up to timing, so a worker could first meet the
 * largest tile of a model long after the first runs and allocate then. The slots tasks use
 * therefore grow to the largest size any thread asked for, and a worker catches up on them when
 * it joins a job (gpux__scratch_sync): steady-state runs allocate nothing on any thread. */
#include "core/scratch.h"
#include <pthread.h>
#include <stdatomic.h>

typedef struct {
  void *p[GPUX__SCRATCH_SLOTS];
  size_t cap[GPUX__SCRATCH_SLOTS];
} scratch_set;

static _Thread_local scratch_set *mine;
static atomic_size_t high[GPUX__SCRATCH_SLOTS];  /* task slots: the most any thread asked for */

static int task_slot(int slot) {
  return slot == GPUX__SCRATCH_CONV_COLS || slot == GPUX__SCRATCH_CONV_TILE || slot == GPUX__SCRATCH_CONV_EXPAND || slot == GPUX__SCRATCH_SGEMM_ITEM_B ||
         slot == GPUX__SCRATCH_IGEMM_PANEL || slot == GPUX__SCRATCH_IGEMM_C;
}
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_ok;

static void free_set(void *arg) {
  scratch_set *s = arg;
  if (!s) return;
  for (int i = 0; i < GPUX__SCRATCH_SLOTS; i++) gpux__free_large(s->p[i], s->cap[i]);
  free(s);
}

static void thread_exit(void *arg) {
  free_set(arg);
  mine = NULL;
}

static void make_key(void) { key_ok = pthread_key_create(&key, thread_exit) == 0; }

static scratch_set *my_set(void) {
  if (!mine) {
    pthread_once(&key_once, make_key);
    scratch_set *s = gpux__calloc(1, sizeof *s);
    if (!s) return NULL;
    if (key_ok) pthread_setspecific(key, s);
    mine = s;
  }
  return mine;
}

static void *grow(scratch_set *s, int slot, size_t bytes) {
  size_t cap = (GPUX__MAX(bytes, 64) + 63) & ~(size_t)63;
  gpux__free_large(s->p[slot], s->cap[slot]);
  s->p[slot] = gpux__alloc_large(cap);
  s->cap[slot] = s->p[slot] ? cap : 0;
  return s->p[slot];
}

void *gpux__scratch(int slot, size_t bytes) {
  scratch_set *s = my_set();
  if (!s) return NULL;
  if (bytes <= s->cap[slot] && s->p[slot]) return s->p[slot];
  if (task_slot(slot)) {
    size_t h = atomic_load(&high[slot]);
    while (h < bytes && !atomic_compare_exchange_weak(&high[slot], &h, bytes)) {}
    if (h > bytes) bytes = h;
  }
  return grow(s, slot, bytes);
}

void gpux__scratch_sync(void) {
  scratch_set *s = mine;
  for (int slot = 0; slot < GPUX__SCRATCH_SLOTS; slot++) {
    if (!task_slot(slot)) continue;
    size_t h = atomic_load_explicit(&high[slot], memory_order_relaxed);
    if (h && (!s || h > s->cap[slot])) {
      if (!s && !(s = my_set())) return;
      grow(s, slot, h); /* a failure shows when a task asks for the block */
    }
  }
}

void gpux__scratch_release(void) {
  scratch_set *s = mine;
  if (!s) return;
  if (key_ok) pthread_setspecific(key, NULL);
  mine = NULL;
  free_set(s);
}
