/* threadpool.c — the CPU backend's shared worker pool and gpux__parallel_for. Workers sleep on a
 * condition variable between jobs; a job is a range split into chunks that workers (and the
 * calling thread) claim with an atomic counter. Nested calls run inline. */
#include "core/internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  pthread_t *threads;
  int n_threads;             /* workers besides the caller */
  uint64_t generation;       /* bumped for each job */
  /* the current job */
  gpux__range_fn fn;
  void *ctx;
  int64_t n, chunk;
  atomic_int_fast64_t next;  /* next chunk start */
  int active;                /* workers still inside the job */
} pool_t;

static pool_t pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
                      .done = PTHREAD_COND_INITIALIZER};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static int requested_threads;
static _Thread_local int inside_job;

static void run_chunks(void) {
  for (;;) {
    int64_t b = atomic_fetch_add(&pool.next, pool.chunk);
    if (b >= pool.n) break;
    pool.fn(pool.ctx, b, GPUX__MIN(b + pool.chunk, pool.n));
  }
}

static void *worker(void *arg) {
  (void)arg;
  uint64_t seen = 0;
  inside_job = 1;
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
    seen = pool.generation;
    pthread_mutex_unlock(&pool.lock);
    run_chunks();
    pthread_mutex_lock(&pool.lock);
    if (--pool.active == 0) pthread_cond_signal(&pool.done);
  }
  return NULL;
}

static void pool_start(void) {
  int n = requested_threads;
  if (n <= 0) {
    const char *env = getenv("GPUX_THREADS");
    n = env ? atoi(env) : 0;
  }
  if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  pool.threads = calloc((size_t)n, sizeof(pthread_t));
  if (!pool.threads) return;
  for (int i = 0; i < n - 1; i++) {
    if (pthread_create(&pool.threads[i], NULL, worker, NULL)) break;
    pthread_detach(pool.threads[i]);
    pool.n_threads++;
  }
}

int gpux__thread_count(void) {
  pthread_once(&pool_once, pool_start);
  return pool.n_threads + 1;
}

void gpux__set_thread_count(int n) { requested_threads = n; }

void gpux__parallel_for(int64_t n, int64_t grain, gpux__range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  pthread_once(&pool_once, pool_start);
  if (inside_job || pool.n_threads == 0 || n <= grain) {
    fn(ctx, 0, n);
    return;
  }
  pthread_mutex_lock(&job_lock);
  int64_t parts = (pool.n_threads + 1) * 4;
  int64_t chunk = (n + parts - 1) / parts;
  if (chunk < grain) chunk = grain;
  pthread_mutex_lock(&pool.lock);
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.chunk = chunk;
  atomic_store(&pool.next, 0);
  pool.active = pool.n_threads;
  pool.generation++;
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  inside_job = 1;
  run_chunks();
  inside_job = 0;
  pthread_mutex_lock(&pool.lock);
  while (pool.active > 0) pthread_cond_wait(&pool.done, &pool.lock);
  pthread_mutex_unlock(&pool.lock);
  pthread_mutex_unlock(&job_lock);
}
