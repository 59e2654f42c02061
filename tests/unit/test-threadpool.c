/* test-threadpool.c — unit tests of the CPU thread pool (core/threadpool.c): every item run once
 * whatever the split, chunks balanced over no more threads than they fill, small jobs on fewer
 * threads (gpux__threads_for, gpux__parallel_for_work, gpux__parallel_for_elems), a session's thread cap, nested calls
 * inline, jobs from several threads at once, and idle workers asleep (no CPU burnt) soon after
 * the last job, inside a run or not. The pool has 16 threads here, whatever the machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "core/internal.h"

enum { POOL = 16 };

/* What a job did: how often each item ran, its chunks' sizes, and which threads ran them. */
typedef struct {
  pthread_mutex_t mu;
  int *count;            /* per item */
  int64_t sizes[512];    /* chunk sizes, in the order run */
  int n_chunks;
  pthread_t seen[64];
  int n_seen;
  int sleep_us;          /* per chunk: long enough for spinning workers to join */
} job_log;

static void log_chunk(void *ctx, int64_t begin, int64_t end) {
  job_log *l = ctx;
  if (l->sleep_us) usleep((useconds_t)l->sleep_us);
  pthread_mutex_lock(&l->mu);
  for (int64_t i = begin; i < end; i++) l->count[i]++;
  if (l->n_chunks < 512) l->sizes[l->n_chunks++] = end - begin;
  int known = 0;
  for (int i = 0; i < l->n_seen; i++) known |= pthread_equal(l->seen[i], pthread_self());
  if (!known && l->n_seen < 64) l->seen[l->n_seen++] = pthread_self();
  pthread_mutex_unlock(&l->mu);
}

static job_log *log_new(int64_t n, int sleep_us) {
  job_log *l = calloc(1, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
  l->count = calloc((size_t)(n + 1), sizeof *l->count);
  l->sleep_us = sleep_us;
  return l;
}

static void log_free(job_log *l) {
  pthread_mutex_destroy(&l->mu);
  free(l->count);
  free(l);
}

static void assert_each_once(const job_log *l, int64_t n) {
  for (int64_t i = 0; i < n; i++) assert_int_equal(l->count[i], 1);
}

static int group_setup(void **state) {
  (void)state;
  gpux__set_thread_count(POOL);
  return gpux__thread_count() == POOL ? 0 : -1;
}

/* Every item exactly once, for sizes around the thread count and grains around the size. */
static void test_every_item_once(void **state) {
  (void)state;
  const int64_t sizes[] = {0, 1, 2, 15, 16, 17, 31, 33, 64, 100, 1000, 4099};
  const int64_t grains[] = {1, 2, 3, 7, 16, 100, 5000};
  const int caps[] = {0, 1, 2, 5, 16};
  for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
    for (size_t b = 0; b < sizeof grains / sizeof *grains; b++)
      for (size_t c = 0; c < sizeof caps / sizeof *caps; c++) {
        int old = gpux__set_run_threads(caps[c]);
        job_log *l = log_new(sizes[a], 0);
        gpux__parallel_for(sizes[a], grains[b], log_chunk, l);
        assert_each_once(l, sizes[a]);
        if (caps[c]) assert_true(l->n_seen <= caps[c]);
        int short_chunks = 0; /* chunks of at least a grain, but for the last one */
        for (int i = 0; i < l->n_chunks; i++) short_chunks += l->sizes[i] < grains[b];
        if (l->n_chunks > 1) assert_true(short_chunks <= 1);
        log_free(l);
        gpux__set_run_threads(old);
      }
}

/* 17 items on 16 threads are 9 chunks of 2 or 1 (finishing when 17 chunks of 1 on 16 threads
 * would), run by at most 9 threads; a large job has up to four equal chunks a thread, unless
 * single items leave the busiest thread fewer. */
static void test_balanced_chunks(void **state) {
  (void)state;
  job_log *l = log_new(17, 2000);
  gpux__parallel_for(17, 1, log_chunk, l);
  assert_each_once(l, 17);
  assert_int_equal(l->n_chunks, 9);
  for (int i = 0; i < l->n_chunks; i++) assert_true(l->sizes[i] == 2 || l->sizes[i] == 1);
  assert_true(l->n_seen <= 9);
  log_free(l);

  l = log_new(6400, 0);
  gpux__parallel_for(6400, 1, log_chunk, l);
  assert_each_once(l, 6400);
  assert_int_equal(l->n_chunks, 4 * POOL);
  for (int i = 0; i < l->n_chunks; i++) assert_int_equal(l->sizes[i], 100);
  log_free(l);

  l = log_new(48, 0); /* three tasks a thread, as kernels cut them: one task a chunk */
  gpux__parallel_for(48, 1, log_chunk, l);
  assert_int_equal(l->n_chunks, 48);
  log_free(l);

  /* chunks of 2 would leave one thread 8 of 14 items on 2 threads and 8 of 100 on 16: of 1, 7
   * and 7 */
  l = log_new(100, 0);
  gpux__parallel_for(100, 1, log_chunk, l);
  assert_int_equal(l->n_chunks, 100);
  log_free(l);
  assert_int_equal(gpux__parallel_busiest(100, POOL), 7);
  int old = gpux__set_run_threads(2);
  l = log_new(14, 0);
  gpux__parallel_for(14, 1, log_chunk, l);
  assert_int_equal(l->n_chunks, 14);
  log_free(l);
  assert_int_equal(gpux__parallel_busiest(14, 2), 7);
  gpux__set_run_threads(old);

  l = log_new(30, 0); /* a grain of 10 leaves three chunks: three threads at most */
  gpux__parallel_for(30, 10, log_chunk, l);
  assert_int_equal(l->n_chunks, 3);
  assert_true(l->n_seen <= 3);
  log_free(l);

  l = log_new(19, 0); /* under two grains: inline */
  gpux__parallel_for(19, 10, log_chunk, l);
  assert_int_equal(l->n_chunks, 1);
  assert_true(pthread_equal(l->seen[0], pthread_self()));
  log_free(l);
}

/* A small job runs on few threads, a big one on all; a session's cap bounds both. */
static void test_threads_for_work(void **state) {
  (void)state;
  assert_int_equal(gpux__threads_for(0), 1);
  assert_int_equal(gpux__threads_for(1000), 1);
  assert_int_equal(gpux__threads_for(1e12), POOL);
  int mid = gpux__threads_for(3.5 * 131072.0);
  assert_int_equal(mid, 3);
  int old = gpux__set_run_threads(2);
  assert_int_equal(gpux__threads_for(1e12), 2);
  gpux__set_run_threads(old);

  job_log *l = log_new(64, 200); /* 64 tasks, little work: the caller alone */
  gpux__parallel_for_work(64, 1000, log_chunk, l);
  assert_each_once(l, 64);
  assert_int_equal(l->n_seen, 1);
  assert_true(pthread_equal(l->seen[0], pthread_self()));
  log_free(l);

  l = log_new(64, 200); /* work for three threads: no more join */
  gpux__parallel_for_work(64, 3.5 * 131072.0, log_chunk, l);
  assert_each_once(l, 64);
  assert_true(l->n_seen <= 3);
  log_free(l);

  l = log_new(64, 200);
  gpux__parallel_for_work(64, 1e12, log_chunk, l);
  assert_each_once(l, 64);
  assert_true(l->n_seen <= POOL);
  log_free(l);
}

/* Elements by work: every element once, pieces of whole blocks (the last one aside), a job
 * worth one thread inline on the caller, and no more threads than the work is worth, at 1, 2, 3
 * and 16 threads and odd sizes. */
static void test_parallel_elems(void **state) {
  (void)state;
  const int64_t sizes[] = {1, 15, 16, 17, 1000, 47040, 65537, 200001};
  const double units[] = {0.5, 2, 6, 40};
  const int caps[] = {1, 2, 3, 0};
  for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
    for (size_t b = 0; b < sizeof units / sizeof *units; b++)
      for (size_t c = 0; c < sizeof caps / sizeof *caps; c++) {
        int old = gpux__set_run_threads(caps[c]);
        int want = gpux__threads_for((double)sizes[a] * units[b]);
        job_log *l = log_new(sizes[a], 0);
        gpux__parallel_for_elems(sizes[a], units[b], 16, log_chunk, l);
        assert_each_once(l, sizes[a]);
        assert_true(l->n_seen <= want);
        if (want == 1) {
          assert_int_equal(l->n_chunks, 1);
          assert_true(pthread_equal(l->seen[0], pthread_self()));
        } else { /* at least a piece a thread, at most four (and the remainder's) */
          assert_true(l->n_chunks >= want);
          assert_true(l->n_chunks <= 4 * want + 4);
        }
        int ragged = 0; /* pieces not whole blocks: at most the last one */
        for (int i = 0; i < l->n_chunks && i < 512; i++) ragged += l->sizes[i] % 16 != 0;
        assert_true(ragged <= (sizes[a] % 16 != 0));
        log_free(l);
        gpux__set_run_threads(old);
      }
}

/* A job started inside a job's chunk runs inline, on that chunk's thread. */
typedef struct {
  atomic_int inner_items;
  atomic_int wrong_thread;
} nest_ctx;

static void nested_items(void *ctx, int64_t begin, int64_t end) {
  nest_ctx *c = ctx;
  for (int64_t i = begin; i < end; i++) {
    job_log *l = log_new(40, 0);
    gpux__parallel_for(40, 1, log_chunk, l);
    atomic_fetch_add(&c->inner_items, l->n_chunks == 1 ? 40 : 0);
    if (l->n_seen != 1 || !pthread_equal(l->seen[0], pthread_self())) atomic_fetch_add(&c->wrong_thread, 1);
    log_free(l);
  }
}

static void test_nested_inline(void **state) {
  (void)state;
  nest_ctx c;
  atomic_init(&c.inner_items, 0);
  atomic_init(&c.wrong_thread, 0);
  gpux__parallel_for(32, 1, nested_items, &c);
  assert_int_equal(atomic_load(&c.inner_items), 32 * 40);
  assert_int_equal(atomic_load(&c.wrong_thread), 0);
}

/* Jobs from several threads at once (a server's sessions), each with its own cap. */
typedef struct {
  int cap;
  int failures;
} caller_arg;

static void *caller(void *arg) {
  caller_arg *a = arg;
  gpux__set_run_threads(a->cap);
  for (int rep = 0; rep < 200; rep++) {
    int64_t n = 1 + rep % 50;
    job_log *l = log_new(n, 0);
    gpux__pool_hold(1);
    gpux__parallel_for(n, 1, log_chunk, l);
    gpux__pool_hold(0);
    for (int64_t i = 0; i < n; i++) a->failures += l->count[i] != 1;
    if (a->cap && l->n_seen > a->cap) a->failures++;
    log_free(l);
  }
  return NULL;
}

static void test_concurrent_callers(void **state) {
  (void)state;
  pthread_t t[4];
  caller_arg args[4] = {{0, 0}, {1, 0}, {3, 0}, {8, 0}};
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, caller, &args[i]), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(args[i].failures, 0);
}

static double cpu_ms(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return 1e3 * ((double)u.ru_utime.tv_sec + (double)u.ru_stime.tv_sec) +
         1e-3 * ((double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_usec);
}

static void busy(void *ctx, int64_t begin, int64_t end) {
  volatile double x = 0;
  (void)ctx;
  for (int64_t i = begin; i < end; i++)
    for (int k = 0; k < 2000; k++) x = x * 0.5 + 1.0;
}

/* After a burst of jobs the workers sleep: within a few milliseconds between runs, and within
 * a bounded time while a run is still under way. The process burns (next to) no CPU while idle. */
static void test_idle_workers_sleep(void **state) {
  (void)state;
  for (int hold = 0; hold < 2; hold++) {
    if (hold) gpux__pool_hold(1);
    for (int rep = 0; rep < 300; rep++) gpux__parallel_for(4 * POOL, 1, busy, NULL);
    usleep(30000); /* the spin bound (1 ms in a run) and then some */
    double before = cpu_ms();
    usleep(100000);
    double idle = cpu_ms() - before;
    if (hold) gpux__pool_hold(0);
    assert_true(idle < 10.0); /* 15 workers spinning would burn up to 1.5 s of CPU */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_item_once),    cmocka_unit_test(test_balanced_chunks),
    cmocka_unit_test(test_threads_for_work),   cmocka_unit_test(test_parallel_elems),
    cmocka_unit_test(test_nested_inline),
    cmocka_unit_test(test_concurrent_callers), cmocka_unit_test(test_idle_workers_sleep),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
