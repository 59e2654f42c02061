/* pool-micro.c — what one parallel region of the CPU thread pool costs: wall-clock and CPU time
 * (the whole process's, user + system) per gpux__parallel_for of almost no work, back to back as
 * a model's nodes run them, at each thread count given; and the CPU the pool burns while the
 * process is idle after a burst of regions (workers spin a bounded while, then sleep).
 *
 *   pool-micro [-j JOBS] [-n ITEMS] [-w WORK_NS] THREADS...   (cmake --build build --target pool-micro)
 * Each region has ITEMS items (default 4 a thread) of WORK_NS ns each; prints one line per thread
 * count: us/region wall, us/region CPU, idle CPU ms over 100 ms. */
#include "core/internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec +
         1e-6 * (double)u.ru_stime.tv_usec;
}

static int64_t work_ns;       /* busy time of one item */
static double iters_per_ns;   /* of the loop below, measured on one thread */
static volatile double sink;

static double spin(int64_t iters) {
  double x = 1.0;
  for (int64_t i = 0; i < iters; i++) x = x * 0.999999 + 1e-9;
  return x;
}

static void items(void *ctx, int64_t begin, int64_t end) {
  (void)ctx;
  double s = 0;
  for (int64_t i = begin; i < end; i++) s += spin((int64_t)((double)work_ns * iters_per_ns));
  sink += s;
}

int main(int argc, char **argv) {
  int jobs = 20000, max_threads = 1, items_per_job = 0, opt;
  while ((opt = getopt(argc, argv, "j:n:w:")) != -1) {
    if (opt == 'j') jobs = atoi(optarg);
    else if (opt == 'n') items_per_job = atoi(optarg);
    else if (opt == 'w') work_ns = atoll(optarg);
    else return 2;
  }
  if (optind >= argc) {
    fprintf(stderr, "usage: pool-micro [-j JOBS] [-n ITEMS] [-w WORK_NS] THREADS...\n");
    return 2;
  }
  for (int i = optind; i < argc; i++) max_threads = GPUX__MAX(max_threads, atoi(argv[i]));
  gpux__set_thread_count(max_threads);
  double cal = cpu_s();
  sink += spin(50000000);
  iters_per_ns = 50000000 / ((cpu_s() - cal) * 1e9);
  printf("%-8s %12s %12s %14s\n", "THREADS", "US/REGION", "CPU_US/REG", "IDLE_CPU_MS");
  for (int i = optind; i < argc; i++) {
    int t = atoi(argv[i]);
    int64_t n = items_per_job > 0 ? items_per_job : 4 * t;
    gpux__set_run_threads(t);
    for (int k = 0; k < 200; k++) gpux__parallel_for(n, 1, items, NULL); /* warm */
    double w0 = now_s(), c0 = cpu_s();
    for (int k = 0; k < jobs; k++) gpux__parallel_for(n, 1, items, NULL);
    double w1 = now_s(), c1 = cpu_s();
    usleep(100000); /* idle: what the workers burn before they sleep */
    double c2 = cpu_s();
    printf("%-8d %12.2f %12.2f %14.2f\n", t, (w1 - w0) * 1e6 / jobs, (c1 - c0) * 1e6 / jobs,
           (c2 - c1) * 1e3);
  }
  return 0;
}
