/* threadpool.c — the CPU backend's shared worker pool and gpux__parallel_for. A job is a range
 * split into chunks that workers (and the calling thread) claim with an atomic counter. Between
 * jobs workers spin a short while (a model runs its nodes' jobs back to back, and waking a
 * sleeping thread costs more than a small job) and then sleep on a condition variable; the caller
 * waits for the last chunk the same way. Nested calls run inline. */
#include "core/internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
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
  atomic_int active;         /* workers still inside the job */
  atomic_uint_fast64_t published; /* generation, readable without the lock (for spinning) */
} pool_t;

/* How long a worker spins for the next job, and the caller for the end of one, before sleeping. */
#define SPIN_NS 100000

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins until *v differs from `old` (1) or SPIN_NS pass (0). */
static int spin_while_u64(atomic_uint_fast64_t *v, uint64_t old) {
  int64_t end = 0;
  for (int i = 0;; i++) {
    if (atomic_load_explicit(v, memory_order_acquire) != old) return 1;
    cpu_relax();
    if ((i & 255) == 255) {
      int64_t t = now_ns();
      if (!end) end = t + SPIN_NS;
      else if (t > end) return 0;
    }
  }
}

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
  for (;;) {
    if (!spin_while_u64(&pool.published, seen)) {
      pthread_mutex_lock(&pool.lock);
      while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
      pthread_mutex_unlock(&pool.lock);
    }
    seen = atomic_load_explicit(&pool.published, memory_order_acquire);
    run_chunks();
    if (atomic_fetch_sub(&pool.active, 1) == 1) { /* the last one out wakes the caller */
      pthread_mutex_lock(&pool.lock);
      pthread_cond_signal(&pool.done);
      pthread_mutex_unlock(&pool.lock);
    }
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
  atomic_store(&pool.active, pool.n_threads);
  pool.generation++;
  atomic_store_explicit(&pool.published, pool.generation, memory_order_release);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  inside_job = 1;
  run_chunks();
  inside_job = 0;
  /* every worker, spinning or woken, checks in once per job */
  int64_t end = 0;
  for (int i = 0; atomic_load_explicit(&pool.active, memory_order_acquire) > 0; i++) {
    cpu_relax();
    if ((i & 255) != 255) continue;
    int64_t t = now_ns();
    if (!end) {
      end = t + SPIN_NS;
    } else if (t > end) {
      pthread_mutex_lock(&pool.lock);
      while (atomic_load(&pool.active) > 0) pthread_cond_wait(&pool.done, &pool.lock);
      pthread_mutex_unlock(&pool.lock);
      break;
    }
  }
  pthread_mutex_unlock(&job_lock);
}
