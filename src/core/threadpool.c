/* threadpool.c — the CPU backend's shared worker pool and gpux__parallel_for. A job is a range
 * split into balanced chunks that the calling thread and the first few workers (as many as the
 * job is worth: gpux__threads_for) claim with atomic counters; the workers a job does not ask
 * for do not touch it. Each of them has a share of the chunks, a run of neighbours, which it
 * takes first and then helps with the others' shares: a thread gets the same part of each job
 * split alike (a model's consecutive nodes), so it reads much of what it wrote the node before
 * from its own cache rather than from another core's. The caller waits only for chunks that
 * workers took, so a worker the system has not scheduled yet delays nothing (the others take its
 * share). Between jobs a worker spins a short while, longer while a session run is under way (a
 * model runs its nodes' jobs back to back, and waking a sleeping thread costs more than a small
 * job), then sleeps on a condition variable of its own, so a job wakes only the workers it asks
 * for; the caller waits for the last chunk the same way.
 * Nested calls run inline. The pool is one per process; a session that asks for fewer threads
 * caps how many of them join the jobs of its runs (gpux__set_run_threads, per calling thread).
 * Workers start when a job first asks for them, in their order (a job asks for the first few):
 * a process whose jobs all run on one thread starts none, one whose sessions ask for 4 threads
 * starts 3, whatever the pool's size (the cores, or GPUX_THREADS), which bounds them. */
#include "core/internal.h"
#include "core/scratch.h"
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One worker's own line: whether it is inside a job (or checking that one is still open), whether
 * it sleeps, and the lock and condition variable it sleeps on (its own, so that workers woken
 * together do not queue for one lock). Workers entering and leaving a job write only their own
 * line; the caller reads the lines of the workers its job asked for. */
typedef struct {
  _Alignas(64) atomic_int inside;
  atomic_int sleeping;
  pthread_mutex_t lock;
  pthread_cond_t wake;
} worker_t;

/* The job word: the job's number (bits 10 and up), how many workers it asks for (bits 1-9: the
 * workers numbered below that) and whether it is closed (bit 0). */
#define JOB_SEQ(s) ((s) >> 10)
#define JOB_HELPERS(s) ((int)(((s) >> 1) & 511))
#define JOB_CLOSED 1u

#define POOL_MAX 256 /* threads at most, the caller included */

typedef struct {
  pthread_mutex_t lock;      /* the caller's wait for the workers inside a job */
  pthread_cond_t done;
  worker_t *workers;         /* [cap], the first `started` of them running */
  _Atomic int cap;           /* workers besides the caller at most (fewer if one failed to start) */
  _Atomic int started;       /* workers started (under job_lock) */
  /* the current job, read by a worker only inside it (see worker()) */
  gpux__range_fn fn;
  void *ctx;
  int64_t n, chunk;
  int parts;                 /* the threads the job asks for, the caller included: its shares */
  _Alignas(64) atomic_uint_fast64_t state; /* the job word */
  _Alignas(64) atomic_int caller_waits;    /* the caller sleeps until no worker is inside */
  _Alignas(64) atomic_int runs;            /* session runs under way (gpux__pool_hold) */
} pool_t;

/* How long a worker waits for its next job (after its last one), and the caller for the end of
 * one, before sleeping: spinning SPIN_NS, then while a session run is under way yielding the core
 * to other threads between looks, up to SPIN_RUN_NS (a spinning thread on a machine with more
 * threads than cores takes the core from the threads doing the work). */
#define SPIN_NS 50000
#define SPIN_RUN_NS 1000000
/* The least work (multiply-adds, or elements read and written: units of ~0.1-0.5 ns) worth
 * another thread: about 3-5 us on one core, more than joining a job costs a spinning worker
 * (524288 kept EfficientNet-B0's and MobileNetV3's small convolutions on few of 16 threads:
 * 6.6 and 4.4 ms a run there, 5.05 and 3.7 at 131072, the same as these at 1 thread). */
#define WORK_PER_THREAD 131072.0

/* The work of one float32 element an elementwise op reads and writes in its vector loops: ~0.15-
 * 0.25 ns an element on one core when X is in its L2, against ~0.03 ns a multiply-add, and more
 * when X was just written by other cores (a GlobalAveragePool over 47040 of them on one of 16
 * threads: 0.6 ns). 8 takes a 33-47K element Mul onto 2 threads; GPUX_POOL_ELEM moves it. */
#define ELEM_UNITS 8.0

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

static pool_t pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER, .state = JOB_CLOSED};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static int requested_threads;
static double work_per_thread = WORK_PER_THREAD;
static double elem_units = ELEM_UNITS;
static _Thread_local int inside_job;
static _Thread_local int run_threads;  /* threads a job of this caller may use; 0 = all */

/* GPUX_POOL_STATS=1: at exit, to stderr, the jobs run (by threads asked for), the chunks each
 * thread ran and the caller's wall time per job; a debugging aid, counted under job_lock. */
static int stats_on;
static struct {
  int64_t jobs[17], inline_jobs, chunks_caller, ns_caller, ns_wait, wakes;
} stats;
static atomic_llong stats_worker_chunks;
static _Thread_local int64_t my_chunks;
/* GPUX_POOL_STATS=2: the same per range function (its offset in its binary or library, for
 * addr2line -f -e BIN 0xOFFSET), jobs by threads (1: inline). */
enum { FN_STATS = 128 };
static struct {
  const void *fn;
  int64_t jobs[17];
} fn_stats[FN_STATS];
static int n_fn_stats;
static pthread_mutex_t fn_stats_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local const void *job_tag; /* the function a job is counted under, if not its own */

static void fn_stats_add(const void *fn, int t) {
  pthread_mutex_lock(&fn_stats_lock);
  int i = 0;
  while (i < n_fn_stats && fn_stats[i].fn != fn) i++;
  if (i < FN_STATS) {
    if (i == n_fn_stats) fn_stats[n_fn_stats++].fn = fn;
    fn_stats[i].jobs[GPUX__MIN(t, 16)]++;
  }
  pthread_mutex_unlock(&fn_stats_lock);
}

/* A share of the current job: chunks [next, end) not yet taken, on a line of its own. */
typedef struct {
  _Alignas(64) atomic_int_fast64_t next;
  int64_t end;
} share_t;

static share_t shares[POOL_MAX]; /* [pool.parts]: share i is thread i's (0 the caller, i worker i - 1) */

/* Thread `me` runs the chunks of its own share, then what is left of the others'. */
static void run_chunks(int me) {
  for (int k = 0; k < pool.parts; k++) {
    share_t *sh = &shares[(me + k) % pool.parts];
    for (;;) {
      int64_t c = atomic_fetch_add(&sh->next, 1);
      if (c >= sh->end) break;
      int64_t b = c * pool.chunk;
      pool.fn(pool.ctx, b, GPUX__MIN(b + pool.chunk, pool.n));
      my_chunks++;
    }
  }
}

/* Whether job word s is an open job after `seen` that asks for worker `me`. */
static int wanted(uint64_t s, int me, uint64_t seen) {
  return !(s & JOB_CLOSED) && JOB_SEQ(s) != seen && me < JOB_HELPERS(s);
}

/* Look number i of a thread waiting since *start (0: set it now): whether it is time to sleep
 * (else it pauses, or yields the core, and looks again). */
static int time_to_sleep(int i, int64_t *start) {
  cpu_relax();
  if ((i & 63) != 63) return 0;
  int64_t now = now_ns();
  if (!*start) *start = now;
  int64_t waited = now - *start;
  if (waited < SPIN_NS) return 0;
  if (waited > SPIN_RUN_NS || atomic_load(&pool.runs) <= 0) return 1;
  sched_yield();
  return 0;
}

/* The job word of the next job that asks for worker `me`: spinning a while, then sleeping. */
static uint64_t wait_for_job(int me, uint64_t seen) {
  worker_t *w = &pool.workers[me];
  int64_t start = now_ns();
  for (int i = 0;; i++) {
    uint64_t s = atomic_load(&pool.state);
    if (wanted(s, me, seen)) return s;
    if (time_to_sleep(i, &start)) break;
  }
  uint64_t s;
  pthread_mutex_lock(&w->lock);
  atomic_store(&w->sleeping, 1); /* before looking again: a caller that opens a job then sees it */
  while (!wanted(s = atomic_load(&pool.state), me, seen)) pthread_cond_wait(&w->wake, &w->lock);
  atomic_store(&w->sleeping, 0);
  pthread_mutex_unlock(&w->lock);
  return s;
}

/* A worker joins each job that asks for it. It marks itself inside before checking that the job
 * is still open, and the caller closes a job before waiting for the workers inside: so a worker
 * either is waited for or never touches the job, and the caller never waits on a worker that has
 * not woken up yet (the caller runs every chunk left). */
static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  uint64_t seen = 0;
  inside_job = 1;
  for (;;) {
    uint64_t s = wait_for_job(me, seen);
    seen = JOB_SEQ(s);
    gpux__scratch_sync(); /* task scratch as large as any thread's, before joining the job */
    worker_t *w = &pool.workers[me];
    atomic_store(&w->inside, 1);
    if (atomic_load(&pool.state) == s) run_chunks(me + 1);
    atomic_store(&w->inside, 0);
    if (stats_on) {
      atomic_fetch_add(&stats_worker_chunks, my_chunks);
      my_chunks = 0;
    }
    if (atomic_load(&pool.caller_waits)) {
      pthread_mutex_lock(&pool.lock); /* wake a caller waiting (it looks at every worker again) */
      pthread_cond_signal(&pool.done);
      pthread_mutex_unlock(&pool.lock);
    }
  }
  return NULL;
}

static void fn_stats_print(void) {
  for (int i = 0; i < n_fn_stats; i++) {
    Dl_info info;
    uintptr_t off = (uintptr_t)fn_stats[i].fn;
    const char *file = "?";
    if (dladdr(fn_stats[i].fn, &info) && info.dli_fbase) {
      off -= (uintptr_t)info.dli_fbase;
      file = info.dli_fname;
    }
    fprintf(stderr, "pool: fn %s 0x%llx jobs by threads:", file, (unsigned long long)off);
    for (int t = 1; t < 17; t++)
      if (fn_stats[i].jobs[t]) fprintf(stderr, " %d%s:%lld", t, t == 16 ? "+" : "", (long long)fn_stats[i].jobs[t]);
    fprintf(stderr, "\n");
  }
}

static void stats_print(void) {
  if (stats_on > 1) fn_stats_print();
  fprintf(stderr, "pool: %lld inline jobs; jobs by threads:", (long long)stats.inline_jobs);
  for (int i = 2; i < 17; i++)
    if (stats.jobs[i]) fprintf(stderr, " %d%s:%lld", i, i == 16 ? "+" : "", (long long)stats.jobs[i]);
  fprintf(stderr, "\npool: chunks caller %lld workers %lld, wakes %lld, caller %.3f ms in jobs, "
          "%.3f ms waiting for workers\n", (long long)stats.chunks_caller,
          (long long)atomic_load(&stats_worker_chunks), (long long)stats.wakes, stats.ns_caller / 1e6,
          stats.ns_wait / 1e6);
}

static void pool_start(void) {
  int n = requested_threads;
  if (n <= 0) {
    const char *env = getenv("GPUX_THREADS");
    n = env ? atoi(env) : 0;
  }
  if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  if (n > POOL_MAX) n = POOL_MAX;
  const char *work = getenv("GPUX_POOL_WORK");
  if (work && atof(work) > 0) work_per_thread = atof(work);
  const char *elem = getenv("GPUX_POOL_ELEM");
  if (elem && atof(elem) > 0) elem_units = atof(elem);
  const char *st = getenv("GPUX_POOL_STATS");
  if (st && atoi(st) > 0) {
    stats_on = atoi(st);
    atexit(stats_print);
  }
  pool.workers = aligned_alloc(64, (size_t)n * sizeof *pool.workers); /* a line each */
  if (!pool.workers) return;
  memset(pool.workers, 0, (size_t)n * sizeof *pool.workers);
  atomic_store(&pool.cap, n - 1); /* started by the jobs that ask for them (start_workers) */
}

/* Starts workers up to `want` (under job_lock, no job open); returns how many run. One that
 * fails to start caps the pool where it is. */
static int start_workers(int want) {
  int have = atomic_load(&pool.started);
  for (; have < want && have < atomic_load(&pool.cap); have++) {
    worker_t *w = &pool.workers[have];
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, (void *)(intptr_t)have)) {
      pthread_cond_destroy(&w->wake);
      pthread_mutex_destroy(&w->lock);
      atomic_store(&pool.cap, have);
      break;
    }
    pthread_detach(t);
    atomic_store(&pool.started, have + 1);
  }
  return have;
}

int gpux__pool_started(void) { return atomic_load(&pool.started); }

int gpux__thread_count(void) {
  pthread_once(&pool_once, pool_start);
  int n = atomic_load(&pool.cap) + 1;
  return run_threads ? GPUX__MIN(run_threads, n) : n;
}

void gpux__set_thread_count(int n) { requested_threads = n; }

int gpux__set_run_threads(int n) {
  int old = run_threads;
  run_threads = n > 0 ? n : 0;
  return old;
}

void gpux__pool_hold(int on) { atomic_fetch_add(&pool.runs, on ? 1 : -1); }

int gpux__threads_for(double work) {
  int t = gpux__thread_count();
  double worth = work / work_per_thread;
  return worth < (double)t ? GPUX__MAX(1, (int)worth) : t;
}

/* The items the busiest of t threads runs when n items go out in chunks of `chunk`. */
static int64_t busiest(int64_t n, int64_t chunk, int t) {
  return ((n + chunk - 1) / chunk + t - 1) / t * chunk;
}

/* The job's chunk size for n items of at least `grain` each, and in *t the threads it takes (at
 * most *t): up to four chunks a thread, all of them as equal as whole items allow, and no more
 * threads than chunks (17 items on 16 threads are 9 chunks of 2 on 9 threads, which finish when
 * 17 chunks of 1 on 16 would); but never chunks that finish later than the smallest ones would
 * (42 tasks on 16 threads: 21 chunks of 2 take a thread 4 tasks, 42 of 1 take it 3; 14 on 2
 * threads: 7 chunks of 2 take one 8, 14 of 1 take each 7). */
static int64_t plan_chunks(int64_t n, int64_t grain, int *t) {
  int64_t most = GPUX__MAX(1, n / grain); /* chunks of at least `grain` items */
  if (*t > most) *t = (int)most;
  int64_t per = GPUX__MIN(4, most / *t);
  int64_t chunk = (n + *t * per - 1) / (*t * per), least = (n + most - 1) / most;
  if (busiest(n, least, *t) < busiest(n, chunk, *t)) chunk = least;
  int64_t chunks = (n + chunk - 1) / chunk;
  if (*t > chunks) *t = (int)chunks;
  return chunk;
}

int64_t gpux__parallel_busiest(int64_t n, int threads) {
  pthread_once(&pool_once, pool_start);
  int t = GPUX__MIN(threads, gpux__thread_count());
  if (n <= 0 || t <= 1) return GPUX__MAX(n, 0);
  int64_t chunk = plan_chunks(n, 1, &t);
  return busiest(n, chunk, t);
}

/* Whether any of the first `helpers` workers is inside a job. */
static int any_inside(int helpers) {
  for (int i = 0; i < helpers; i++)
    if (atomic_load(&pool.workers[i].inside)) return 1;
  return 0;
}

/* Runs fn over [0, n) on at most `threads` threads, the caller included. */
static void run_job(int64_t n, int64_t grain, int threads, gpux__range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  pthread_once(&pool_once, pool_start);
  int t = GPUX__MIN(threads, gpux__thread_count());
  int64_t chunk = t > 1 ? plan_chunks(n, grain, &t) : n;
  if (stats_on > 1 && !inside_job) fn_stats_add(job_tag ? job_tag : (const void *)fn, t);
  if (inside_job || t <= 1) {
    if (stats_on && !inside_job) stats.inline_jobs++;
    fn(ctx, 0, n);
    return;
  }
  int64_t t0 = stats_on ? now_ns() : 0;
  pthread_mutex_lock(&job_lock);
  int started = start_workers(t - 1);
  if (started < t - 1) { /* fewer could start */
    t = started + 1;
    if (t <= 1) {
      pthread_mutex_unlock(&job_lock);
      fn(ctx, 0, n);
      return;
    }
    chunk = plan_chunks(n, grain, &t);
  }
  int helpers = t - 1;
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.chunk = chunk;
  pool.parts = t;
  int64_t chunks = (n + chunk - 1) / chunk;
  for (int i = 0; i < t; i++) { /* as equal as whole chunks allow, in order */
    atomic_store_explicit(&shares[i].next, i * chunks / t, memory_order_relaxed);
    shares[i].end = (i + 1) * chunks / t;
  }
  uint64_t s = (JOB_SEQ(atomic_load(&pool.state)) + 1) << 10 | (uint64_t)helpers << 1;
  atomic_store(&pool.state, s); /* open */
  for (int i = 0; i < helpers; i++) { /* wake the sleepers the job asks for, and only those */
    worker_t *w = &pool.workers[i];
    if (!atomic_load(&w->sleeping)) continue;
    if (stats_on) stats.wakes++;
    pthread_mutex_lock(&w->lock);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
  }
  inside_job = 1;
  run_chunks(0);
  inside_job = 0;
  atomic_store(&pool.state, s | JOB_CLOSED); /* closed: no worker joins any more */
  int64_t t1 = stats_on ? now_ns() : 0;
  int64_t start = 0;
  for (int i = 0; any_inside(helpers); i++) { /* the chunks workers still run */
    if (!time_to_sleep(i, &start)) continue;
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.caller_waits, 1);
    while (any_inside(helpers)) pthread_cond_wait(&pool.done, &pool.lock);
    atomic_store(&pool.caller_waits, 0);
    pthread_mutex_unlock(&pool.lock);
    break;
  }
  if (stats_on) {
    int64_t t2 = now_ns();
    stats.jobs[GPUX__MIN(t, 16)]++;
    stats.chunks_caller += my_chunks;
    my_chunks = 0;
    stats.ns_caller += t2 - t0;
    stats.ns_wait += t2 - t1;
  }
  pthread_mutex_unlock(&job_lock);
}

void gpux__parallel_for(int64_t n, int64_t grain, gpux__range_fn fn, void *ctx) {
  run_job(n, grain, INT32_MAX, fn, ctx);
}

void gpux__parallel_for_work(int64_t n, double work, gpux__range_fn fn, void *ctx) {
  run_job(n, 1, gpux__threads_for(work), fn, ctx);
}

double gpux__elem_units(void) {
  pthread_once(&pool_once, pool_start);
  return elem_units;
}

typedef struct {
  gpux__range_fn fn;
  void *ctx;
  int64_t n, block;
} elems_job;

static void elems_blocks(void *p, int64_t begin, int64_t end) {
  const elems_job *j = p;
  j->fn(j->ctx, begin * j->block, GPUX__MIN(end * j->block, j->n));
}

void gpux__parallel_for_elems(int64_t n, double units, int64_t block, gpux__range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (block < 1) block = 1;
  int t = gpux__threads_for((double)n * units);
  if (t <= 1 || n <= block) {
    run_job(n, n, 1, fn, ctx); /* inline */
    return;
  }
  elems_job j = {fn, ctx, n, block};
  int64_t blocks = (n + block - 1) / block;
  job_tag = (const void *)fn;
  /* up to four pieces a thread: a grain of 1 would let plan_chunks take single blocks where they
   * leave the busiest thread one block fewer (2940 pieces of 16 floats for a 47K Mul on 2 threads,
   * each a claim and a walk setup: 2.5x the Mul's time) */
  run_job(blocks, GPUX__MAX(1, blocks / (4 * (int64_t)t)), t, elems_blocks, &j);
  job_tag = NULL;
}
