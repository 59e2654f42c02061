/* threadpool.c — the CPU backend's shared worker pool and gpux__parallel_for. A job is a range
 * split into chunks that workers (and the calling thread) claim with an atomic counter; the
 * caller waits only for chunks that workers took, so a worker the system has not scheduled yet
 * delays nothing. Between jobs workers spin a short while (a model runs its nodes' jobs back to
 * back, and waking a sleeping thread costs more than a small job) and then sleep on a condition
 * variable; the caller waits for the last chunk the same way. Nested calls run inline.
 * The pool is one per process; a session that asks for fewer threads caps how many of them join
 * the jobs of its runs (gpux__set_run_threads, per calling thread). */
#include "core/internal.h"
#include "core/scratch.h"
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  pthread_t *threads;
  int n_threads;             /* workers besides the caller */
  /* the current job, read by a worker only inside it (see worker()) */
  gpux__range_fn fn;
  void *ctx;
  int64_t n, chunk;
  atomic_int_fast64_t next;  /* next chunk start */
  atomic_uint_fast64_t state; /* even: job number `state` is open; odd: no job (closed) */
  atomic_int inside;         /* workers inside a job (or checking whether it is still open) */
  atomic_int cap;            /* workers that may run chunks of the current job */
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

static pool_t pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
                      .done = PTHREAD_COND_INITIALIZER, .state = 1};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static int requested_threads;
static _Thread_local int inside_job;
static _Thread_local int run_threads;  /* threads a job of this caller may use; 0 = all */

static void run_chunks(void) {
  for (;;) {
    int64_t b = atomic_fetch_add(&pool.next, pool.chunk);
    if (b >= pool.n) break;
    pool.fn(pool.ctx, b, GPUX__MIN(b + pool.chunk, pool.n));
  }
}

/* The number of an open job other than `seen`: spinning a while, then sleeping. */
static uint64_t wait_for_job(uint64_t seen) {
  int64_t end = 0;
  for (int i = 0;; i++) {
    uint64_t s = atomic_load(&pool.state);
    if (s != seen && !(s & 1)) return s;
    cpu_relax();
    if ((i & 255) != 255) continue;
    int64_t t = now_ns();
    if (!end) end = t + SPIN_NS;
    else if (t > end) break;
  }
  uint64_t s;
  pthread_mutex_lock(&pool.lock);
  while ((s = atomic_load(&pool.state)) == seen || (s & 1)) pthread_cond_wait(&pool.wake, &pool.lock);
  pthread_mutex_unlock(&pool.lock);
  return s;
}

/* A worker joins each job it sees open. It counts itself inside before checking that the job is
 * still open, and the caller closes a job before waiting for the workers inside: so a worker
 * either is waited for or never touches the job, and the caller never waits on a worker that
 * has not woken up yet (the caller runs every chunk left). */
static void *worker(void *arg) {
  (void)arg;
  uint64_t seen = 1;
  inside_job = 1;
  for (;;) {
    seen = wait_for_job(seen);
    gpux__scratch_sync(); /* task scratch as large as any thread's, before joining the job */
    int before = atomic_fetch_add(&pool.inside, 1); /* the first `cap` workers in take part */
    if (atomic_load(&pool.state) == seen && before < atomic_load(&pool.cap)) run_chunks();
    if (atomic_fetch_sub(&pool.inside, 1) == 1) { /* the last one out wakes a caller waiting */
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
  return run_threads ? GPUX__MIN(run_threads, pool.n_threads + 1) : pool.n_threads + 1;
}

void gpux__set_thread_count(int n) { requested_threads = n; }

int gpux__set_run_threads(int n) {
  int old = run_threads;
  run_threads = n > 0 ? n : 0;
  return old;
}

void gpux__parallel_for(int64_t n, int64_t grain, gpux__range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  pthread_once(&pool_once, pool_start);
  int helpers = run_threads ? GPUX__MIN(run_threads - 1, pool.n_threads) : pool.n_threads;
  if (inside_job || helpers == 0 || n <= grain) {
    fn(ctx, 0, n);
    return;
  }
  pthread_mutex_lock(&job_lock);
  atomic_store(&pool.cap, helpers);
  int64_t parts = (int64_t)(helpers + 1) * 4;
  int64_t chunk = (n + parts - 1) / parts;
  if (chunk < grain) chunk = grain;
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.chunk = chunk;
  atomic_store(&pool.next, 0);
  pthread_mutex_lock(&pool.lock);
  atomic_fetch_add(&pool.state, 1); /* open */
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  inside_job = 1;
  run_chunks();
  inside_job = 0;
  atomic_fetch_add(&pool.state, 1); /* closed: no worker joins any more */
  int64_t end = 0;
  for (int i = 0; atomic_load(&pool.inside) > 0; i++) { /* the chunks workers still run */
    cpu_relax();
    if ((i & 255) != 255) continue;
    int64_t t = now_ns();
    if (!end) {
      end = t + SPIN_NS;
    } else if (t > end) {
      pthread_mutex_lock(&pool.lock);
      while (atomic_load(&pool.inside) > 0) pthread_cond_wait(&pool.done, &pool.lock);
      pthread_mutex_unlock(&pool.lock);
      break;
    }
  }
  pthread_mutex_unlock(&job_lock);
}
