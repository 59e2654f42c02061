/* verify.c — `gpux verify`: runs ONNX test-case folders (model.onnx + test_data_set_N/input_K.pb,
 * output_K.pb) and compares gpux's outputs with the expected ones the way ONNX's backend runner
 * does. Each case runs in a child process, several at a time, so that one crashing or hanging
 * case is reported as a failure instead of ending the run. */
#include "cli.h"
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int backend;
  double rtol, atol;
  int json;
  int jobs;
  int timeout_s;
  int no_fallback;           /* --no-fallback: a case that runs any node on the CPU is SKIP */
  int runs;                  /* --runs: runs of each data set, every one compared */
  int precision;             /* --precision: gpux_precision */
  double atol_scale;         /* --atol-scale: atol grows to this times an output's largest |value| */
  int top1;                  /* --top1: argmax over the last axis must agree (clear winners) */
  double l2;                 /* --l2: float outputs compared by relative L2 error instead */
} verify_opts;

/* Element i of a float32/float16/float64 tensor as a double; 0 for other dtypes. */
static double float_at(const gpux_tensor *t, int64_t i) {
  if (t->dtype == GPUX_DT_FLOAT) return ((const float *)t->data)[i];
  if (t->dtype == GPUX_DT_DOUBLE) return ((const double *)t->data)[i];
  if (t->dtype == GPUX_DT_FLOAT16) {
    unsigned h = ((const uint16_t *)t->data)[i], e = h >> 10 & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, (int)e - 25);
    return h & 0x8000 ? -v : v;
  }
  return 0;
}

static int is_float(const gpux_tensor *t) {
  return t->kind == GPUX_KIND_TENSOR && t->data &&
         (t->dtype == GPUX_DT_FLOAT || t->dtype == GPUX_DT_FLOAT16 || t->dtype == GPUX_DT_DOUBLE);
}

/* The largest finite |value| of a float tensor (0 for others). */
static double max_abs(const gpux_tensor *t) {
  double m = 0;
  if (!is_float(t)) return 0;
  int64_t n = gpux_tensor_count(t);
  for (int64_t i = 0; i < n; i++) {
    double v = fabs(float_at(t, i));
    if (isfinite(v) && v > m) m = v;
  }
  return m;
}

/* ||got - want|| / ||want|| over a float tensor's elements (0 when both are all zeros); a
 * non-finite difference gives infinity. */
static double rel_l2(const gpux_tensor *got, const gpux_tensor *want) {
  double num = 0, den = 0;
  int64_t n = gpux_tensor_count(want);
  for (int64_t i = 0; i < n; i++) {
    double e = float_at(want, i), d = float_at(got, i) - e;
    if (!isfinite(d)) return isnan(e) && isnan(float_at(got, i)) ? 0 : INFINITY;
    num += d * d;
    den += e * e;
  }
  return num == 0 ? 0 : den == 0 ? INFINITY : sqrt(num / den);
}

/* --top1: for each row along the last axis (of 2 or more values) whose expected winner leads the
 * runner-up by more than `margin`, the winner must be the same. Writes the first disagreement. */
static int top1_differs(const gpux_tensor *got, const gpux_tensor *want, double margin, char *msg, size_t len) {
  if (!is_float(got) || !is_float(want) || want->ndim < 1 || gpux_tensor_count(got) != gpux_tensor_count(want)) return 0;
  int64_t c = want->dims[want->ndim - 1], n = gpux_tensor_count(want);
  if (c < 2) return 0;
  for (int64_t r = 0; r * c < n; r++) {
    int64_t bw = 0, bg = 0;
    double second = -INFINITY;
    for (int64_t k = 1; k < c; k++) {
      if (float_at(want, r * c + k) > float_at(want, r * c + bw)) bw = k;
      if (float_at(got, r * c + k) > float_at(got, r * c + bg)) bg = k;
    }
    for (int64_t k = 0; k < c; k++)
      if (k != bw && float_at(want, r * c + k) > second) second = float_at(want, r * c + k);
    if (bw != bg && float_at(want, r * c + bw) - second > margin) {
      snprintf(msg, len, "top-1 of row %lld is %lld, expected %lld", (long long)r, (long long)bg, (long long)bw);
      return 1;
    }
  }
  return 0;
}

typedef struct {
  char **paths;
  int n, cap;
} path_list;

static int add_path(path_list *l, const char *p) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 256;
    char **np = realloc(l->paths, (size_t)cap * sizeof *np);
    if (!np) return -1;
    l->paths = np;
    l->cap = cap;
  }
  if (!(l->paths[l->n] = strdup(p))) return -1;
  l->n++;
  return 0;
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Collects dir if it is a case (has model.onnx), else its sub-folders recursively, sorted. */
static int find_cases(const char *dir, path_list *out, int depth) {
  char p[4096];
  snprintf(p, sizeof p, "%s/model.onnx", dir);
  if (is_file(p)) return add_path(out, dir);
  if (depth > 16) return 0;
  DIR *d = opendir(dir);
  if (!d) return 0;
  path_list subs = {0};
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (is_dir(p) && add_path(&subs, p)) { closedir(d); return -1; }
  }
  closedir(d);
  if (subs.n) qsort(subs.paths, (size_t)subs.n, sizeof *subs.paths, cmp_str);
  int rc = 0;
  for (int i = 0; i < subs.n; i++) {
    if (!rc) rc = find_cases(subs.paths[i], out, depth + 1);
    free(subs.paths[i]);
  }
  free(subs.paths);
  return rc;
}

enum { CASE_PASS, CASE_FAIL, CASE_SKIP };
static const char *const status_names[] = {"PASS", "FAIL", "SKIP"};

static int is_unsupported(int rc) {
  return rc == GPUX_E_UNSUPPORTED_OP || rc == GPUX_E_UNSUPPORTED_DTYPE || rc == GPUX_E_UNSUPPORTED;
}

/* Which proto a test-data file of this value holds: OptionalProto, SequenceProto or TensorProto. */
static int value_file_kind(const gpux_value_info *info) {
  if (info->optional) return GPUX_KIND_NONE;
  return info->kind == GPUX_KIND_SEQUENCE ? GPUX_KIND_SEQUENCE : GPUX_KIND_TENSOR;
}

/* --no-fallback: whether some node ran on the CPU in the last run (then `msg` says which and why). */
static int fallback_note(gpux_session *s, char *msg, size_t len) { return gpux_session_fallback_summary(s, msg, len) > 0; }

/* Runs one case in this process; writes a one-line message and returns CASE_*. */
static int run_case(const char *dir, const verify_opts *o, char *msg, size_t len) {
  char p[4096];
  gpux_model *m = NULL;
  gpux_session *s = NULL;
  int status = CASE_PASS, rc;
  double worst_l2 = 0;
  snprintf(p, sizeof p, "%s/model.onnx", dir);
  if ((rc = gpux_model_load(p, &m))) {
    snprintf(msg, len, "%s", gpux_last_error());
    return is_unsupported(rc) ? CASE_SKIP : CASE_FAIL;
  }
  gpux_session_options so = {.backend = o->backend, .precision = o->precision};
  if ((rc = gpux_session_create(m, &so, &s))) {
    snprintf(msg, len, "%s", gpux_last_error());
    gpux_model_free(m);
    return is_unsupported(rc) ? CASE_SKIP : CASE_FAIL;
  }
  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m), n_sets = 0;
  gpux_tensor *inputs = calloc((size_t)n_in + 1, sizeof *inputs);
  gpux_tensor *outputs = calloc((size_t)n_out + 1, sizeof *outputs);
  gpux_tensor *expected = calloc((size_t)n_out + 1, sizeof *expected);
  if (!inputs || !outputs || !expected) { snprintf(msg, len, "out of memory"); status = CASE_FAIL; goto done; }
  msg[0] = 0;
  for (int set = 0; status == CASE_PASS; set++) {
    snprintf(p, sizeof p, "%s/test_data_set_%d", dir, set);
    if (!is_dir(p)) break;
    n_sets++;
    int given = 0;
    for (int i = 0; i < n_in; i++) {
      gpux_value_info info;
      gpux_model_input_info(m, i, &info);
      snprintf(p, sizeof p, "%s/test_data_set_%d/input_%d.pb", dir, set, i);
      if (!is_file(p)) break;
      int kind = value_file_kind(&info);
      if ((rc = gpux_tensor_load_pb(p, kind, &inputs[i]))) {
        snprintf(msg, len, "%s", gpux_last_error());
        status = is_unsupported(rc) ? CASE_SKIP : CASE_FAIL;
        break;
      }
      given = i + 1;
    }
    for (int run = 0; run < o->runs && status == CASE_PASS; run++) {
      if (run) for (int i = 0; i < n_out; i++) gpux_tensor_free(&outputs[i]);
      if (status == CASE_PASS && (rc = gpux_session_run(s, inputs, given, outputs, n_out))) {
        snprintf(msg, len, "%s", gpux_last_error());
        status = is_unsupported(rc) ? CASE_SKIP : CASE_FAIL;
      }
      if (status == CASE_PASS && o->no_fallback && fallback_note(s, msg, len)) status = CASE_SKIP;
      for (int i = 0; status == CASE_PASS && i < n_out; i++) {
        gpux_value_info info;
        gpux_model_output_info(m, i, &info);
        snprintf(p, sizeof p, "%s/test_data_set_%d/output_%d.pb", dir, set, i);
        if (!is_file(p)) continue;
        int kind = value_file_kind(&info);
        if ((rc = gpux_tensor_load_pb(p, kind, &expected[i]))) {
          snprintf(msg, len, "%s", gpux_last_error());
          status = is_unsupported(rc) ? CASE_SKIP : CASE_FAIL;
          break;
        }
        gpux_compare_report r;
        double atol = o->atol, scaled = o->atol_scale * max_abs(&expected[i]);
        if (scaled > atol) atol = scaled;
        char why[160];
        int l2 = o->l2 > 0 && is_float(&expected[i]) && is_float(&outputs[i]) && outputs[i].dtype == expected[i].dtype &&
                 gpux_tensor_count(&outputs[i]) == gpux_tensor_count(&expected[i]);
        double err = l2 ? rel_l2(&outputs[i], &expected[i]) : 0;
        if (err > worst_l2) worst_l2 = err;
        if (o->top1 && top1_differs(&outputs[i], &expected[i], atol, why, sizeof why)) {
          snprintf(msg, len, "output '%s' (data set %d): %s", info.name, set, why);
          status = CASE_FAIL;
        } else if (l2) {
          if (!(err <= o->l2)) {
            snprintf(msg, len, "output '%s' (data set %d): relative L2 error %.3g is above %g", info.name, set, err, o->l2);
            status = CASE_FAIL;
          }
        } else if (gpux_tensor_compare(&outputs[i], &expected[i], o->rtol, atol, &r)) {
          if (run) snprintf(msg, len, "output '%s' (data set %d, run %d): %s", info.name, set, run + 1, r.message);
          else snprintf(msg, len, "output '%s' (data set %d): %s", info.name, set, r.message);
          status = CASE_FAIL;
        }
        gpux_tensor_free(&expected[i]);
      }
    }
    for (int i = 0; i < n_in; i++) gpux_tensor_free(&inputs[i]);
    for (int i = 0; i < n_out; i++) { gpux_tensor_free(&outputs[i]); gpux_tensor_free(&expected[i]); }
  }
  if (status == CASE_PASS && n_sets == 0) { snprintf(msg, len, "no test_data_set_0 folder"); status = CASE_FAIL; }
  if (status == CASE_PASS) {
    const char *why, *prec = gpux_session_precision(s, &why);
    if (o->precision == GPUX_PRECISION_FP16)
      snprintf(msg, len, "%d data set%s on %s (%s%s%s)", n_sets, n_sets == 1 ? "" : "s", gpux_session_backend_name(s), prec,
               why[0] ? ": " : "", why);
    else snprintf(msg, len, "%d data set%s on %s", n_sets, n_sets == 1 ? "" : "s", gpux_session_backend_name(s));
    if (o->l2 > 0) snprintf(msg + strlen(msg), len - strlen(msg), ", worst relative L2 error %.3g", worst_l2);
  }
done:
  free(inputs);
  free(outputs);
  free(expected);
  gpux_session_free(s);
  gpux_model_free(m);
  return status;
}

typedef struct {
  pid_t pid;
  int fd;
  int index;
  time_t started;
  char buf[1024];
  size_t used;
} child;

typedef struct {
  int status;
  char *message;
} result;

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

static const char *case_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash && slash[1] ? slash + 1 : path;
}

static void print_result(const verify_opts *o, const char *path, const result *r, int first) {
  if (o->json) {
    printf("%s\n  {\"case\": ", first ? "" : ",");
    json_string(stdout, case_name(path));
    printf(", \"path\": ");
    json_string(stdout, path);
    printf(", \"status\": \"%s\", \"message\": ", status_names[r->status]);
    json_string(stdout, r->message ? r->message : "");
    printf("}");
  } else if (r->status == CASE_PASS) {
    printf("PASS %s\n", case_name(path));
  } else {
    printf("%s %s: %s\n", status_names[r->status], case_name(path), r->message ? r->message : "");
  }
  fflush(stdout);
}

static void finish_child(child *c, result *results) {
  int wstatus = 0;
  waitpid(c->pid, &wstatus, 0);
  close(c->fd);
  result *r = &results[c->index];
  c->buf[c->used < sizeof c->buf ? c->used : sizeof c->buf - 1] = 0;
  if (WIFSIGNALED(wstatus) || c->used < 2) {
    char m[128];
    if (WIFSIGNALED(wstatus)) snprintf(m, sizeof m, "crashed (%s)", strsignal(WTERMSIG(wstatus)));
    else snprintf(m, sizeof m, "exited without a result (status %d)", WEXITSTATUS(wstatus));
    r->status = CASE_FAIL;
    r->message = strdup(m);
  } else {
    r->status = c->buf[0] - '0';
    if (r->status < CASE_PASS || r->status > CASE_SKIP) r->status = CASE_FAIL;
    char *nl = strchr(c->buf, '\n');
    if (nl) *nl = 0;
    r->message = strdup(c->buf + 2);
  }
  c->pid = 0;
}

static int usage(FILE *f, int code) {
  fprintf(f,
          "usage: gpux verify [OPTIONS] PATH...\n\n"
          "Runs ONNX test-case folders (model.onnx + test_data_set_N/input_K.pb, output_K.pb) and\n"
          "compares the outputs with the expected ones. PATH is a case folder or a folder of them\n"
          "(searched recursively). Prints PASS, FAIL (with the worst difference and where) or SKIP\n"
          "(an unsupported op or dtype) per case, then `N passed, N failed, N skipped`.\n\n"
          "options:\n"
          "  --backend cpu|webgpu|auto  where to run (default auto; gpu = webgpu)\n"
          "  --precision fp32|fp16      fp16: float values stored as float16 on a WebGPU adapter\n"
          "                             with shader-f16 (else fp32, said in each PASS line)\n"
          "  --rtol R                   relative tolerance for floats (default 1e-3)\n"
          "  --atol A                   absolute tolerance for floats (default 1e-7)\n"
          "  --atol-scale S             per output, the absolute tolerance grows to S times the\n"
          "                             largest |expected value| of that output\n"
          "  --l2 R                     compare float outputs by relative L2 error\n"
          "                             (||got - expected|| / ||expected|| at most R) instead of\n"
          "                             element by element; PASS messages give the worst\n"
          "  --top1                     the argmax along each output's last axis must agree where\n"
          "                             the expected winner leads by more than the tolerance\n"
          "  --jobs N                   cases run at once (default: number of cores)\n"
          "  --timeout S                seconds before a case counts as hung (default 120)\n"
          "  --json                     machine-readable results\n"
          "  --no-fallback              SKIP a case that needs any node on the CPU (webgpu)\n"
          "  --runs N                   run each data set N times in one session, comparing every\n"
          "                             run (later runs use the memory planned by the first)\n"
          "  -h, --help                 this help\n\n"
          "exit status: 0 when nothing failed, 1 when a case failed, 2 on a bad command line.\n");
  return code;
}

int cmd_verify(int argc, char **argv) {
  verify_opts o = {.backend = GPUX_BACKEND_AUTO, .rtol = 1e-3, .atol = 1e-7, .jobs = 0, .timeout_s = 120, .runs = 1};
  static const struct option longopts[] = {
    {"backend", required_argument, 0, 'b'}, {"rtol", required_argument, 0, 'r'},
    {"atol", required_argument, 0, 'a'},    {"json", no_argument, 0, 'J'},
    {"jobs", required_argument, 0, 'j'},    {"timeout", required_argument, 0, 't'},
    {"help", no_argument, 0, 'h'},          {"no-fallback", no_argument, 0, 'F'},
    {"runs", required_argument, 0, 'R'},    {"precision", required_argument, 0, 'P'},
    {"atol-scale", required_argument, 0, 'S'}, {"top1", no_argument, 0, 'T'}, {"l2", required_argument, 0, 'L'},
    {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":hj:", longopts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
    case 'b':
      if (cli_parse_backend(optarg, &o.backend)) return EXIT_USAGE;
      break;
    case 'r': o.rtol = strtod(optarg, &end); if (*end || o.rtol < 0) { cli_error(0, "--rtol: '%s' is not a tolerance", optarg); return EXIT_USAGE; } break;
    case 'a': o.atol = strtod(optarg, &end); if (*end || o.atol < 0) { cli_error(0, "--atol: '%s' is not a tolerance", optarg); return EXIT_USAGE; } break;
    case 'j': o.jobs = atoi(optarg); break;
    case 't': o.timeout_s = atoi(optarg); break;
    case 'J': o.json = 1; break;
    case 'P': if (cli_parse_precision(optarg, &o.precision)) return EXIT_USAGE; break;
    case 'S': o.atol_scale = strtod(optarg, &end); if (*end || o.atol_scale < 0) { cli_error(0, "--atol-scale: '%s' is not a tolerance", optarg); return EXIT_USAGE; } break;
    case 'T': o.top1 = 1; break;
    case 'L': o.l2 = strtod(optarg, &end); if (*end || !(o.l2 > 0)) { cli_error(0, "--l2: '%s' is not a tolerance", optarg); return EXIT_USAGE; } break;
    case 'F': o.no_fallback = 1; break;
    case 'R':
      o.runs = (int)strtol(optarg, &end, 10);
      if (*end || o.runs < 1 || o.runs > 1000) { cli_error(0, "--runs: '%s' is not a count from 1 to 1000", optarg); return EXIT_USAGE; }
      break;
    case 'h': return usage(stdout, EXIT_OK);
    default: return cli_bad_option("verify", argv, c);
    }
  }
  if (optind >= argc) { cli_error(0, "verify needs at least one PATH (see gpux verify --help)"); return EXIT_USAGE; }
  path_list cases = {0};
  for (int i = optind; i < argc; i++) {
    if (!is_dir(argv[i])) { cli_error(0, "%s: not a folder", argv[i]); return EXIT_INPUT; }
    if (find_cases(argv[i], &cases, 0)) { cli_error(0, "out of memory"); return EXIT_RUNTIME; }
  }
  if (o.jobs <= 0) o.jobs = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (o.jobs < 1) o.jobs = 1;
  if (o.jobs > 64) o.jobs = 64;
  /* each child runs single-threaded kernels when several run at once */
  if (o.jobs > 1 && !getenv("GPUX_THREADS")) setenv("GPUX_THREADS", "1", 1);
  if (o.jobs > 1 && !getenv("OPENBLAS_NUM_THREADS")) setenv("OPENBLAS_NUM_THREADS", "1", 1);
  result *results = calloc((size_t)cases.n + 1, sizeof *results);
  child *kids = calloc((size_t)o.jobs, sizeof *kids);
  if (!results || !kids) { cli_error(0, "out of memory"); return EXIT_RUNTIME; }
  for (int i = 0; i < cases.n; i++) results[i].status = -1;
  int next = 0, printed = 0, running = 0, counts[3] = {0};
  if (o.json) printf("{\"cases\": [");
  fflush(stdout);
  while (printed < cases.n) {
    while (running < o.jobs && next < cases.n) {
      int fds[2];
      if (pipe(fds)) { cli_error(0, "pipe: %s", strerror(errno)); return EXIT_RUNTIME; }
      pid_t pid = fork();
      if (pid < 0) { cli_error(0, "fork: %s", strerror(errno)); return EXIT_RUNTIME; }
      if (pid == 0) {
        close(fds[0]);
        char msg[900];
        int st = run_case(cases.paths[next], &o, msg, sizeof msg);
        for (char *q = msg; *q; q++) if (*q == '\n') *q = ' ';
        char line[1024];
        int n = snprintf(line, sizeof line, "%d %s\n", st, msg);
        if (write(fds[1], line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1)) < 0) _exit(3);
        _exit(0);
      }
      close(fds[1]);
      for (int k = 0; k < o.jobs; k++)
        if (!kids[k].pid) {
          kids[k] = (child){.pid = pid, .fd = fds[0], .index = next, .started = time(NULL)};
          break;
        }
      running++;
      next++;
    }
    struct pollfd pfds[64];
    int map[64], np = 0;
    for (int k = 0; k < o.jobs; k++)
      if (kids[k].pid) { pfds[np] = (struct pollfd){.fd = kids[k].fd, .events = POLLIN}; map[np++] = k; }
    if (np) poll(pfds, (nfds_t)np, 1000);
    for (int q = 0; q < np; q++) {
      child *ch = &kids[map[q]];
      if (pfds[q].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t got = read(ch->fd, ch->buf + ch->used, sizeof ch->buf - 1 - ch->used);
        if (got > 0) { ch->used += (size_t)got; continue; }
        finish_child(ch, results);
        running--;
      } else if (time(NULL) - ch->started > o.timeout_s) {
        kill(ch->pid, SIGKILL);
        finish_child(ch, results);
        free(results[ch->index].message);
        char m[64];
        snprintf(m, sizeof m, "timed out after %d s", o.timeout_s);
        results[ch->index].status = CASE_FAIL;
        results[ch->index].message = strdup(m);
        running--;
      }
    }
    while (printed < cases.n && results[printed].status >= 0) {
      counts[results[printed].status]++;
      print_result(&o, cases.paths[printed], &results[printed], printed == 0);
      printed++;
    }
  }
  if (o.json)
    printf("\n], \"passed\": %d, \"failed\": %d, \"skipped\": %d}\n", counts[CASE_PASS], counts[CASE_FAIL], counts[CASE_SKIP]);
  else
    printf("%d passed, %d failed, %d skipped\n", counts[CASE_PASS], counts[CASE_FAIL], counts[CASE_SKIP]);
  for (int i = 0; i < cases.n; i++) { free(results[i].message); free(cases.paths[i]); }
  free(results);
  free(kids);
  free(cases.paths);
  return counts[CASE_FAIL] ? EXIT_FAILURE_RESULT : EXIT_OK;
}
