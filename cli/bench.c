/* bench.c — `gpux bench`: times inference on ONNX test-case folders (model.onnx +
 * test_data_set_N/input_K.pb) and prints, per case, the median, min, mean and p90 latency of
 * gpux_session_run over N runs after a warm-up, the load and session-create times, the process's
 * peak resident memory and how many device plans the session made. scripts/bench.sh runs it
 * beside ONNX Runtime (bench/peer.mjs). */
#include "cli.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define BENCH_MAX_INPUTS 64
#define BENCH_MAX_RUNS 100000
#define BENCH_MAX_SETS 16
#define BENCH_MAX_OPS 256

typedef struct {
  int backend;       /* gpux_backend_kind */
  int threads;       /* 0 = all cores */
  int runs;          /* timed runs */
  int warmup;        /* untimed runs before them */
  int min_time_ms;   /* keep timing past `runs` until the timed runs add up to this */
  int json;          /* one JSON object per case and line, instead of a table */
  int profile;       /* --profile: time per op type over --runs more runs */
  int precision;     /* --precision: gpux_precision */
} bench_opts;

typedef struct {
  double load_ms, create_ms, first_ms;   /* model load, session create, first (cold) run */
  double median_ms, min_ms, mean_ms, p90_ms;
  int runs;                              /* timed runs done */
  long peak_rss_kb;                      /* the process's peak RSS after this case */
  char backend[32];                      /* the session's backend name */
  int data_sets;                         /* the runs go through the case's data sets in turn */
  uint64_t plans;                        /* device plans the session made (gpux_run_stats) */
  uint64_t device_memory, f16_dispatches; /* (gpux_run_stats) */
  gpux_memory_stats mem;                 /* where the weights are after the runs */
  char precision[8];                     /* what the session computed in: fp32, fp16 */
  char precision_note[160];              /* why not fp16 when it was asked for */
  /* --profile: the op types, most time first, over profile_runs runs */
  gpux_op_profile ops[BENCH_MAX_OPS];
  char op_names[BENCH_MAX_OPS][64], op_devices[BENCH_MAX_OPS][16];
  int n_ops, profile_runs;
  const char *profile_method;            /* "timestamp-query", "wall-clock" or "" */
} bench_result;

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux bench [--backend cpu|webgpu|auto] [--precision fp32|fp16] [--threads N]\n"
    "                  [--runs N] [--warmup N] [--min-time MS] [--profile] [--json] CASE_DIR...\n\n"
    "Times inference on ONNX test-case folders (model.onnx and test_data_set_N/input_K.pb; the\n"
    "runs take the data sets in turn, the first run data set 0). For each case: model load and\n"
    "session create time, the first run, then --warmup untimed runs and --runs timed runs of one\n"
    "inference each, reported as median, min, mean and p90 in milliseconds, the process's peak\n"
    "resident memory (RSS) after the case (a high-water mark: run one case per process to measure\n"
    "each alone), and PLANS, how many times the session planned the model for the device (one\n"
    "plan per input shape and per value of inputs that decide shapes; 0 on the CPU).\n\n"
    "options:\n"
    "  --backend B   cpu (default), webgpu (or gpu) or auto\n"
    "  --precision P fp32 (default) or fp16: float values stored as float16 on a WebGPU adapter\n"
    "                with shader-f16 (fp32 otherwise, with a note; --json says which ran)\n"
    "  --threads N   CPU threads (default 0 = all cores)\n"
    "  --runs N      timed runs (default 20)\n"
    "  --warmup N    untimed runs before them (default 3)\n"
    "  --min-time MS go on past --runs until the timed runs add up to MS milliseconds\n"
    "                (default 0; at most 100000 runs)\n"
    "  --profile     then --runs more runs with every node timed: per op type and device, the\n"
    "                count of nodes run, total ms, ms per run and share of the time. Nodes on the\n"
    "                GPU are timed with timestamp queries where the adapter has timestamp-query,\n"
    "                else each is submitted alone and timed by the wall clock (said in a note)\n"
    "  --json        print one JSON object per case and line, with where the weights are after\n"
    "                the runs in KiB: weights_mapped_kb (the model file's pages resident),\n"
    "                weights_copied_kb, weights_folded_kb, weights_packed_kb (gpux_session_memory)\n");
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return ru.ru_maxrss;   /* kilobytes on Linux */
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Parses a non-negative integer option value; returns -1 when it is not one. */
static int parse_count(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 0 || v > 1000000) return -1;
  return (int)v;
}

/* The case's data set folders test_data_set_0, _1, ... (at most cap): how many there are. */
static int find_data_sets(const char *case_dir, char (*out)[PATH_MAX], int cap) {
  int n = 0;
  for (; n < cap; n++) {
    struct stat st;
    snprintf(out[n], PATH_MAX, "%s/test_data_set_%d", case_dir, n);
    if (stat(out[n], &st) || !S_ISDIR(st.st_mode)) break;
  }
  return n;
}

/* Benchmarks one case folder. Returns 0 or a negative gpux error (already printed). */
static int bench_case(const char *case_dir, const bench_opts *o, bench_result *r) {
  char path[PATH_MAX];
  static char data_dirs[BENCH_MAX_SETS][PATH_MAX];
  static gpux_tensor inputs[BENCH_MAX_SETS][BENCH_MAX_INPUTS]; /* [set][input] */
  gpux_model *model = NULL;
  gpux_session *sess = NULL;
  gpux_tensor *outputs = NULL;
  double *times = NULL;          /* [cap] latency of each timed run, ms */
  int n_in[BENCH_MAX_SETS] = {0}, n_sets = 0, n_out = 0, n_times = 0, cap = o->runs, err;

  memset(inputs, 0, sizeof inputs);
  memset(r, 0, sizeof *r);
  snprintf(path, sizeof path, "%s/model.onnx", case_dir);
  double t0 = now_ms();
  gpux_device_warm(o->backend); /* made while the model loads */
  if ((err = gpux_model_load(path, &model)) < 0) { cli_error(err, "cannot load %s", path); goto done; }
  r->load_ms = now_ms() - t0;

  gpux_session_options so = {.backend = o->backend, .threads = o->threads, .precision = o->precision};
  t0 = now_ms();
  if ((err = gpux_session_create(model, &so, &sess)) < 0) {
    cli_error(err, "%s: cannot create a session", case_dir);
    goto done;
  }
  r->create_ms = now_ms() - t0;
  snprintf(r->backend, sizeof r->backend, "%s", gpux_session_backend_name(sess));
  const char *why;
  snprintf(r->precision, sizeof r->precision, "%s", gpux_session_precision(sess, &why));
  snprintf(r->precision_note, sizeof r->precision_note, "%s", why);
  if (why[0] && !o->json) fprintf(stderr, "gpux bench: note: %s: fp32, not fp16: %s\n", case_dir, why);

  if ((n_sets = find_data_sets(case_dir, data_dirs, BENCH_MAX_SETS)) == 0) {
    err = GPUX_E_NOTFOUND;
    cli_error(0, "%s: no test_data_set_0 folder", case_dir);
    goto done;
  }
  r->data_sets = n_sets;
  int n_model_in = gpux_model_input_count(model);
  for (int set = 0; set < n_sets; set++)
    for (int k = 0; k < n_model_in && k < BENCH_MAX_INPUTS; k++, n_in[set]++) {
      snprintf(path, sizeof path, "%s/input_%d.pb", data_dirs[set], k);
      FILE *f = fopen(path, "rb");
      if (!f) break;                       /* fewer files: trailing optional inputs */
      fclose(f);
      if ((err = gpux_tensor_load_pb(path, -1, &inputs[set][k])) < 0) {
        cli_error(err, "cannot read %s", path);
        goto done;
      }
    }

  n_out = gpux_model_output_count(model);
  outputs = calloc(n_out > 0 ? (size_t)n_out : 1, sizeof *outputs);
  times = calloc((size_t)cap, sizeof *times);
  if (!outputs || !times) { err = GPUX_E_NOMEM; cli_error(0, "out of memory"); goto done; }

  /* the hot loop: first run (cold), warm-up, then timed runs; outputs given back outside the
   * timing, for the next runs' outputs (what a serving loop does) */
  double total = 0;
  for (int i = -1;; i++) {
    int timed = i >= o->warmup;
    if (timed && n_times >= o->runs && (total >= o->min_time_ms || n_times >= BENCH_MAX_RUNS)) break;
    int set = (i + 1) % n_sets;           /* the data sets in turn, set 0 first */
    t0 = now_ms();
    err = gpux_session_run(sess, inputs[set], n_in[set], outputs, n_out);
    double dt = now_ms() - t0;
    if (err < 0) { cli_error(err, "%s: run failed", case_dir); goto done; }
    for (int k = 0; k < n_out; k++) gpux_session_recycle(sess, &outputs[k]);
    if (i < 0) r->first_ms = dt;
    if (!timed) continue;
    if (n_times == cap) {
      double *t = realloc(times, (size_t)cap * 2 * sizeof *times);
      if (!t) { err = GPUX_E_NOMEM; cli_error(0, "out of memory"); goto done; }
      times = t;
      cap *= 2;
    }
    times[n_times++] = dt;
    total += dt;
  }

  if (o->profile) {
    /* more runs, every node timed: the timed runs above stay free of profiling's cost */
    gpux_session_profile_enable(sess, 1);
    for (int i = 0; i < o->runs; i++) {
      int set = i % n_sets;
      err = gpux_session_run(sess, inputs[set], n_in[set], outputs, n_out);
      if (err < 0) { cli_error(err, "%s: run failed", case_dir); goto done; }
      for (int k = 0; k < n_out; k++) gpux_tensor_free(&outputs[k]);
    }
    int n_ops = gpux_session_profile(sess, r->ops, BENCH_MAX_OPS, &r->profile_method);
    if (n_ops < 0) { err = n_ops; cli_error(err, "%s: profile", case_dir); goto done; }
    r->n_ops = n_ops < BENCH_MAX_OPS ? n_ops : BENCH_MAX_OPS;
    for (int k = 0; k < r->n_ops; k++) { /* copies: the session's strings go with it */
      snprintf(r->op_names[k], sizeof r->op_names[k], "%s", r->ops[k].op_type);
      snprintf(r->op_devices[k], sizeof r->op_devices[k], "%s", r->ops[k].device);
      r->ops[k].op_type = r->op_names[k];
      r->ops[k].device = r->op_devices[k];
    }
    r->profile_runs = o->runs;
    gpux_session_profile_enable(sess, 0);
  }

  {
    double sum = 0;
    int n = n_times;
    for (int i = 0; i < n; i++) sum += times[i];
    qsort(times, (size_t)n, sizeof *times, cmp_double);
    r->runs = n;
    r->median_ms = n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
    r->min_ms = times[0];
    r->mean_ms = sum / n;
    r->p90_ms = times[(int)((n - 1) * 0.9 + 0.5)];
  }
  r->peak_rss_kb = peak_rss_kb();
  gpux_run_stats st;
  gpux_session_stats(sess, &st);
  r->plans = st.plans;
  r->device_memory = st.device_memory;
  r->f16_dispatches = st.f16_dispatches;
  gpux_session_memory(sess, &r->mem);
  err = GPUX_E_OK;

done:
  for (int k = 0; outputs && k < n_out; k++) gpux_tensor_free(&outputs[k]);
  for (int set = 0; set < n_sets; set++)
    for (int k = 0; k < n_in[set]; k++) gpux_tensor_free(&inputs[set][k]);
  free(outputs);
  free(times);
  gpux_session_free(sess);
  gpux_model_free(model);
  return err;
}

/* The case's name: the last component of its folder path. */
static const char *case_name(const char *dir, char *buf, size_t len) {
  snprintf(buf, len, "%s", dir);
  size_t n = strlen(buf);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
  const char *slash = strrchr(buf, '/');
  return slash ? slash + 1 : buf;
}

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void print_json(const char *name, const bench_opts *o, const bench_result *r) {
  printf("{\"case\":");
  json_string(stdout, name);
  printf(",\"runtime\":\"gpux\",\"backend\":");
  json_string(stdout, r->backend);
  printf(",\"precision\":");
  json_string(stdout, r->precision);
  if (r->precision_note[0]) {
    printf(",\"precision_note\":");
    json_string(stdout, r->precision_note);
  }
  printf(",\"device_memory\":%llu,\"f16_dispatches\":%llu", (unsigned long long)r->device_memory,
         (unsigned long long)r->f16_dispatches);
  printf(",\"threads\":%d,\"runs\":%d,\"warmup\":%d,\"load_ms\":%.3f,\"create_ms\":%.3f,"
         "\"first_ms\":%.3f,\"median_ms\":%.4f,\"min_ms\":%.4f,\"mean_ms\":%.4f,\"p90_ms\":%.4f,"
         "\"peak_rss_kb\":%ld,\"data_sets\":%d,\"plans\":%llu",
         o->threads, r->runs, o->warmup, r->load_ms, r->create_ms, r->first_ms, r->median_ms,
         r->min_ms, r->mean_ms, r->p90_ms, r->peak_rss_kb, r->data_sets, (unsigned long long)r->plans);
  printf(",\"weights_mapped_kb\":%llu,\"weights_copied_kb\":%llu,\"weights_folded_kb\":%llu,"
         "\"weights_packed_kb\":%llu",
         (unsigned long long)(r->mem.weights_mapped / 1024), (unsigned long long)(r->mem.weights_copied / 1024),
         (unsigned long long)(r->mem.weights_folded / 1024), (unsigned long long)(r->mem.weights_packed / 1024));
  if (o->profile) {
    double total = 0;
    for (int k = 0; k < r->n_ops; k++) total += r->ops[k].total_ms;
    printf(",\"profile\":{\"runs\":%d,\"method\":", r->profile_runs);
    json_string(stdout, r->profile_method ? r->profile_method : "");
    printf(",\"total_ms\":%.4f,\"ops\":[", total);
    for (int k = 0; k < r->n_ops; k++) {
      printf("%s{\"op\":", k ? "," : "");
      json_string(stdout, r->ops[k].op_type);
      printf(",\"device\":");
      json_string(stdout, r->ops[k].device);
      printf(",\"count\":%llu,\"total_ms\":%.4f,\"share\":%.4f}", (unsigned long long)r->ops[k].count,
             r->ops[k].total_ms, total > 0 ? r->ops[k].total_ms / total : 0);
    }
    printf("]}");
  }
  printf("}\n");
}

/* --profile's table: per op type and device, most time first. */
static void print_profile(const char *name, const bench_result *r) {
  double total = 0;
  for (int k = 0; k < r->n_ops; k++) total += r->ops[k].total_ms;
  const char *m = r->profile_method ? r->profile_method : "";
  printf("\n%s: time per op type over %d run%s", name, r->profile_runs, r->profile_runs == 1 ? "" : "s");
  if (!strcmp(m, "timestamp-query")) printf(" (GPU nodes: GPU timestamps)\n");
  else if (!strcmp(m, "wall-clock"))
    printf("\nnote: GPU timestamp queries are not available on this device: each GPU node was submitted alone\n"
           "and timed by the wall clock, which includes the submit and the wait\n");
  else printf("\n");
  printf("%-28s %-8s %8s %12s %10s %7s\n", "OP", "DEVICE", "COUNT", "TOTAL_MS", "MS/RUN", "SHARE");
  for (int k = 0; k < r->n_ops; k++)
    printf("%-28s %-8s %8llu %12.3f %10.4f %6.1f%%\n", r->ops[k].op_type, r->ops[k].device,
           (unsigned long long)r->ops[k].count, r->ops[k].total_ms,
           r->profile_runs ? r->ops[k].total_ms / r->profile_runs : 0, total > 0 ? 100 * r->ops[k].total_ms / total : 0);
  printf("%-28s %-8s %8s %12.3f %10.4f\n", "total", "", "", total, r->profile_runs ? total / r->profile_runs : 0);
}

int cmd_bench(int argc, char **argv) {
  bench_opts o = {.backend = GPUX_BACKEND_CPU, .threads = 0, .runs = 20, .warmup = 3,
                  .min_time_ms = 0, .json = 0};
  int first_case = argc;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return EXIT_OK; }
    if (!strcmp(a, "--json")) { o.json = 1; continue; }
    if (!strcmp(a, "--profile")) { o.profile = 1; continue; }
    if (!strcmp(a, "--")) { first_case = i + 1; break; }
    if (a[0] != '-') { first_case = i; break; }
    if (i + 1 >= argc) { cli_error(0, "%s needs a value (see gpux bench --help)", a); return EXIT_USAGE; }
    const char *v = argv[++i];
    if (!strcmp(a, "--backend")) {
      if (cli_parse_backend(v, &o.backend)) return EXIT_USAGE;
    } else if (!strcmp(a, "--precision")) {
      if (cli_parse_precision(v, &o.precision)) return EXIT_USAGE;
    } else if (!strcmp(a, "--threads") || !strcmp(a, "--runs") || !strcmp(a, "--warmup") ||
               !strcmp(a, "--min-time")) {
      int n = parse_count(v);
      if (n < 0) { cli_error(0, "%s: '%s' is not a count", a, v); return EXIT_USAGE; }
      if (!strcmp(a, "--threads")) o.threads = n;
      else if (!strcmp(a, "--runs")) o.runs = n;
      else if (!strcmp(a, "--warmup")) o.warmup = n;
      else o.min_time_ms = n;
    } else {
      cli_error(0, "unknown option '%s' (see gpux bench --help)", a);
      return EXIT_USAGE;
    }
  }
  if (first_case >= argc) { usage(stderr); return EXIT_USAGE; }
  if (o.runs < 1 || o.runs > BENCH_MAX_RUNS) {
    cli_error(0, "--runs must be from 1 to %d", BENCH_MAX_RUNS);
    return EXIT_USAGE;
  }

  int worst = GPUX_E_OK;
  for (int i = first_case; i < argc; i++) {
    if (!o.json && (i == first_case || o.profile)) /* a profile table follows each case */
      printf("%s%-24s %-8s %5s %10s %10s %10s %10s %10s %12s %6s\n", i == first_case ? "" : "\n", "CASE", "BACKEND",
             "RUNS", "LOAD_MS", "FIRST_MS", "MEDIAN_MS", "MIN_MS", "P90_MS", "PEAK_RSS_MB", "PLANS");
    char buf[PATH_MAX];
    const char *name = case_name(argv[i], buf, sizeof buf);
    static bench_result r;
    int err = bench_case(argv[i], &o, &r);
    if (err < 0) { if (worst == GPUX_E_OK) worst = err; continue; }
    if (o.json) print_json(name, &o, &r);
    else
      printf("%-24s %-8s %5d %10.2f %10.2f %10.3f %10.3f %10.3f %12.1f %6llu\n", name, r.backend, r.runs,
             r.load_ms, r.first_ms, r.median_ms, r.min_ms, r.p90_ms, r.peak_rss_kb / 1024.0,
             (unsigned long long)r.plans);
    if (o.profile && !o.json) print_profile(name, &r);
    fflush(stdout);
  }
  return cli_exit_code(worst);
}
