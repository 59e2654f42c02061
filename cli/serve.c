/* serve.c — `gpux serve NAME[:TAG]... [--port N] [--host ADDR] [-d]`: serves images over HTTP
 * (gpux_server_*): /predict, the Open Inference Protocol v2, health, /metrics. SIGTERM or SIGINT
 * stops it gracefully (in-flight requests finish) with exit 0. Every server, in the foreground or
 * detached with -d, has a state file $GPUX_HOME/servers/NAME.json (for `gpux ps` and `gpux stop`)
 * and a log $GPUX_HOME/servers/NAME.log (for `gpux logs`; rotated at 10 MiB to NAME.log.1). */
#include "cli.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_ROTATE_BYTES (10L << 20)

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux serve NAME[:TAG]|PATH... [--port N] [--host ADDR] [-d] [options]\n\n"
    "Serves images over HTTP: POST /predict (or /models/NAME/predict), the Open Inference\n"
    "Protocol v2 (/v2/models/NAME/infer, ...), /health, /metrics (Prometheus), /openapi.json.\n\n"
    "  --port N                port (default: the first image's serving.port, 8080); 0 = any free port\n"
    "  --host ADDR             address to bind (default 127.0.0.1; 0.0.0.0 for every interface)\n"
    "  -d, --detach            run in the background (see gpux ps, gpux logs, gpux stop)\n"
    "  --name NAME             the server's name for ps/logs/stop (default: the first image's name)\n"
    "  --backend B             cpu, webgpu (or gpu) or auto (default: each image's runtime.backend)\n"
    "  --max-batch-size N      rows per model run when batching; for generate: images, the most\n"
    "                          generations sharing decode steps (default: serving.max_batch_size)\n"
    "  --max-queue-delay-ms MS how long a request waits for others to batch with (default: serving's)\n"
    "  --max-queue N           requests waiting per model before 503 (default 256)\n"
    "  --timeout S             seconds per request before 504 (default: serving.timeout, 30)\n"
    "  --max-body BYTES        request body limit, e.g. 64M (default 64 MiB; 413 above)\n"
    "  --threads N             a pool of N HTTP threads (default: a thread per connection)\n"
    "  --cors ORIGIN           let pages from ORIGIN (or * for any) call the server from a browser\n"
    "  --allow-handler         run images' handler code even when they were pulled, not built here\n\n"
    "examples:\n"
    "  gpux serve text-direction --port 9000\n"
    "  curl -s localhost:9000/predict -d \"{\\\"image\\\": \\\"$(base64 -w0 line.png)\\\"}\"\n"
    "  gpux serve ocr text-direction -d && gpux ps\n");
}

typedef struct {
  pthread_mutex_t mu;
  FILE *f;                      /* the log file, or NULL */
  char path[4096];
  int to_stderr;                /* foreground: also on stderr */
  int stderr_is_log;            /* detached: fd 2 is the log file */
} log_sink;

static void log_line(void *ctx, const char *line) {
  log_sink *l = ctx;
  pthread_mutex_lock(&l->mu);
  if (l->to_stderr) { fprintf(stderr, "%s\n", line); fflush(stderr); }
  if (l->f) {
    fprintf(l->f, "%s\n", line);
    fflush(l->f);
    if (ftell(l->f) > LOG_ROTATE_BYTES) {
      char old[4200];
      snprintf(old, sizeof old, "%s.1", l->path);
      fclose(l->f);
      rename(l->path, old);
      l->f = fopen(l->path, "a");
      if (l->f && l->stderr_is_log) dup2(fileno(l->f), 2);
    }
  }
  pthread_mutex_unlock(&l->mu);
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v <= 0) return -1;
  double mul = 1;
  if (*end == 'k' || *end == 'K') mul = 1024, end++;
  else if (*end == 'm' || *end == 'M') mul = 1024.0 * 1024, end++;
  else if (*end == 'g' || *end == 'G') mul = 1024.0 * 1024 * 1024, end++;
  if (*end == 'i') end++;
  if (*end == 'B' || *end == 'b') end++;
  if (*end) return -1;
  *out = (size_t)(v * mul);
  return 0;
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || v < lo || v > hi) {
    cli_error(0, "%s: '%s' is not a number from %g to %g", opt, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

/* The default server name: the first image's name without its tag or folder. */
static void default_name(const char *ref, char *out, size_t len) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", ref);
  size_t n = strlen(buf);
  if (n >= 8 && !strcmp(buf + n - 8, "GPUXfile")) buf[n -= 8] = 0;
  while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
  const char *b = strrchr(buf, '/');
  snprintf(out, len, "%s", b ? b + 1 : buf);
  char *c = strchr(out, ':');
  if (c) *c = 0;
}

static int write_state(const char *path, const char *name, int pid, const char *host, int port, char **refs, int n,
                       const char *log) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", name);
  cJSON_AddNumberToObject(j, "pid", pid);
  cJSON_AddStringToObject(j, "host", host);
  cJSON_AddNumberToObject(j, "port", port);
  cJSON *m = cJSON_AddArrayToObject(j, "models");
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(m, cJSON_CreateString(refs[i]));
  cJSON_AddNumberToObject(j, "started", (double)time(NULL));
  cJSON_AddStringToObject(j, "log", log);
  char *t = cJSON_Print(j);
  cJSON_Delete(j);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f || !t) { free(t); if (f) fclose(f); return -1; }
  fprintf(f, "%s\n", t);
  free(t);
  if (fclose(f) || rename(tmp, path)) return -1;
  return 0;
}

/* Records a clean stop in the state file, for gpux ps -a (a killed server cannot). */
static void mark_exited(const char *path, int code) {
  FILE *f = fopen(path, "r");
  char buf[16384];
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = 0;
  cJSON *j = cJSON_Parse(buf);
  if (!j) return;
  cJSON_AddNumberToObject(j, "exited", (double)time(NULL));
  cJSON_AddNumberToObject(j, "exit_code", code);
  char *t = cJSON_Print(j), tmp[4200];
  cJSON_Delete(j);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *o = t ? fopen(tmp, "w") : NULL;
  if (o) {
    fprintf(o, "%s\n", t);
    if (fclose(o) || rename(tmp, path)) unlink(tmp);
  }
  free(t);
}

/* A failure before the server is ready: on stderr in the foreground; detached, through the pipe
 * to the waiting parent as "CODE message", so both exit with the same status. */
static void report_failure(int fd, int rc, const char *err) {
  if (fd < 0) {
    fprintf(stderr, "gpux: error: %s\n", err);
    return;
  }
  char msg[2048];
  int n = snprintf(msg, sizeof msg, "%d %s", cli_exit_code(rc), err);
  if (write(fd, msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1)) < 0) {}
}

/* After the first SIGINT/SIGTERM the server drains (every run is still bounded by its requests'
 * deadline); a second one cancels the runs in progress at their next node. */
static void *cancel_on_second_signal(void *set) {
  int sig = 0;
  if (!sigwait(set, &sig)) gpux_interrupt();
  return NULL;
}

int cmd_serve(int argc, char **argv) {
  static const struct option opts[] = {
    {"port", required_argument, 0, 'p'}, {"host", required_argument, 0, 'H'}, {"detach", no_argument, 0, 'd'},
    {"name", required_argument, 0, 'n'}, {"backend", required_argument, 0, 'b'},
    {"max-batch-size", required_argument, 0, 'B'}, {"max-queue-delay-ms", required_argument, 0, 'D'},
    {"max-queue", required_argument, 0, 'Q'}, {"timeout", required_argument, 0, 'T'},
    {"max-body", required_argument, 0, 'M'}, {"threads", required_argument, 0, 't'},
    {"cors", required_argument, 0, 'C'}, {"help", no_argument, 0, 'h'},
    {"allow-handler", no_argument, 0, 'A'}, {0, 0, 0, 0}};
  gpux_server_options so = {.port = -1, .max_queue_delay_ms = -1};
  int detach = 0, c;
  const char *name_opt = NULL;
  double v;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":dp:h", opts, NULL)) != -1) {
    switch (c) {
    case 'p': if (parse_num("--port", optarg, 0, 65535, &v)) return EXIT_USAGE; so.port = (int)v; break;
    case 'H': so.host = optarg; break;
    case 'd': detach = 1; break;
    case 'n': name_opt = optarg; break;
    case 'b': if (cli_parse_backend(optarg, &so.backend)) return EXIT_USAGE; break;
    case 'B': if (parse_num("--max-batch-size", optarg, 1, 65536, &v)) return EXIT_USAGE; so.max_batch_size = (int)v; break;
    case 'D': if (parse_num("--max-queue-delay-ms", optarg, 0, 60000, &v)) return EXIT_USAGE; so.max_queue_delay_ms = v; break;
    case 'Q': if (parse_num("--max-queue", optarg, 1, 1e6, &v)) return EXIT_USAGE; so.max_queue = (int)v; break;
    case 'T': if (parse_num("--timeout", optarg, 0.001, 86400, &v)) return EXIT_USAGE; so.timeout_s = v; break;
    case 'M':
      if (parse_size(optarg, &so.max_body)) { cli_error(0, "--max-body: '%s' is not a size like 1048576, 512K or 64M", optarg); return EXIT_USAGE; }
      break;
    case 't': if (parse_num("--threads", optarg, 1, 1024, &v)) return EXIT_USAGE; so.http_threads = (int)v; break;
    case 'C':
      if (!*optarg || strpbrk(optarg, "\r\n")) { cli_error(0, "--cors: '%s' is not an origin (e.g. https://app.example or *)", optarg); return EXIT_USAGE; }
      so.cors_origin = optarg;
      break;
    case 'A': so.allow_handler = 1; break;
    case 'h': usage(stdout); return EXIT_OK;
    default: return cli_bad_option("serve", argv, c);
    }
  }
  if (optind >= argc) { cli_error(0, "serve needs at least one image (see gpux serve --help)"); return EXIT_USAGE; }
  char **refs = argv + optind;
  int n_refs = argc - optind;
  char name[256];
  if (name_opt) snprintf(name, sizeof name, "%s", name_opt);
  else default_name(refs[0], name, sizeof name);
  if (!servers_valid_name(name)) { cli_error(0, "--name: '%s' is not a name (letters, digits, '.', '_', '-')", name); return EXIT_USAGE; }

  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  char dir[4096], state[4200], logp[4200];
  if (servers_dir(st, dir, sizeof dir)) { cli_error(0, "cannot create %s: %s", dir, strerror(errno)); gpux_store_close(st); return EXIT_RUNTIME; }
  snprintf(state, sizeof state, "%s/%s.json", dir, name);
  snprintf(logp, sizeof logp, "%s/%s.log", dir, name);
  /* an image that does not exist is an input error now, before anything binds or forks */
  for (int i = 0; i < n_refs; i++) {
    struct stat sb;
    char *info = NULL;
    if (!stat(refs[i], &sb)) continue; /* a GPUXfile folder or file */
    rc = gpux_store_inspect(st, refs[i], &info);
    gpux_free(info);
    if (rc == GPUX_E_NOTFOUND) { /* a registry's image not pulled yet */
      int pulled = cli_pull_missing(st, refs[i]);
      if (pulled == 1) continue;
      if (pulled < 0) { gpux_store_close(st); return cli_exit_code(pulled); }
    }
    if (rc) {
      fprintf(stderr, "gpux: error: %s\n", gpux_last_error());
      gpux_store_close(st);
      return cli_exit_code(rc);
    }
  }
  server_info old;
  if (!servers_read(state, &old) && old.alive) {
    cli_error(0, "a server named '%s' is running (pid %d, port %d): gpux stop %s, or give --name", name, old.pid, old.port, name);
    gpux_store_close(st);
    return EXIT_USAGE;
  }

  int report[2] = {-1, -1};
  if (detach) {
    if (pipe(report)) { cli_error(0, "pipe: %s", strerror(errno)); gpux_store_close(st); return EXIT_RUNTIME; }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { cli_error(0, "fork: %s", strerror(errno)); gpux_store_close(st); return EXIT_RUNTIME; }
    if (pid > 0) {
      /* the parent: wait for the server to say it is ready (or why not) */
      close(report[1]);
      gpux_store_close(st);
      char msg[2048];
      size_t n = 0;
      ssize_t got;
      while (n < sizeof msg - 1 && (got = read(report[0], msg + n, sizeof msg - 1 - n)) > 0) n += (size_t)got;
      msg[n] = 0;
      close(report[0]);
      if (!strncmp(msg, "ok ", 3)) {
        printf("%s started: http://%s (pid %d); gpux logs %s, gpux stop %s\n", name, msg + 3, (int)pid, name, name);
        return EXIT_OK;
      }
      /* "CODE message": the exit status the server would have had in the foreground */
      int code = EXIT_RUNTIME, off = 0;
      if (sscanf(msg, "%d %n", &code, &off) != 1) off = 0, code = EXIT_RUNTIME;
      fprintf(stderr, "gpux: error: %s\n", n ? msg + off : "the server exited before it was ready (see gpux logs)");
      return code;
    }
    close(report[0]);
    setsid();
    int dn = open("/dev/null", O_RDWR);
    if (dn >= 0) { dup2(dn, 0); dup2(dn, 1); close(dn); }
  }
  log_sink sink = {.to_stderr = !detach, .stderr_is_log = detach};
  pthread_mutex_init(&sink.mu, NULL);
  snprintf(sink.path, sizeof sink.path, "%s", logp);
  sink.f = fopen(logp, "a");
  if (detach && sink.f) dup2(fileno(sink.f), 2);
  so.log = log_line;
  so.log_ctx = &sink;

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);   /* before any thread starts: only sigwait sees them */
  signal(SIGPIPE, SIG_IGN);

  gpux_server *srv;
  rc = gpux_server_start(st, (const char *const *)refs, n_refs, &so, &srv);
  if (!rc) {
    write_state(state, name, (int)getpid(), so.host ? so.host : "127.0.0.1", gpux_server_port(srv), refs, n_refs, logp);
    if ((rc = gpux_server_wait_ready(srv))) {
      char err[1024];
      snprintf(err, sizeof err, "%s", gpux_last_error());
      gpux_server_stop(srv);
      srv = NULL;
      unlink(state);
      report_failure(detach ? report[1] : -1, rc, err);
      gpux_store_close(st);
      if (sink.f) fclose(sink.f);
      return cli_exit_code(rc);
    }
  } else {
    report_failure(detach ? report[1] : -1, rc, gpux_last_error());
    gpux_store_close(st);
    if (sink.f) fclose(sink.f);
    return cli_exit_code(rc);
  }
  gpux_store_close(st);
  char where[300];
  snprintf(where, sizeof where, "%s:%d", so.host ? so.host : "127.0.0.1", gpux_server_port(srv));
  char line[512];
  snprintf(line, sizeof line, "ready: %s serving %d model%s on http://%s", name, n_refs, n_refs == 1 ? "" : "s", where);
  log_line(&sink, line);
  if (detach) {
    char ok[320];
    snprintf(ok, sizeof ok, "ok %s", where);
    if (write(report[1], ok, strlen(ok)) < 0) {}
    close(report[1]);
  }
  int sig = 0;
  sigwait(&set, &sig);
  snprintf(line, sizeof line, "%s: stopping (in-flight requests finish first; a second signal cancels them)",
           sig == SIGINT ? "SIGINT" : "SIGTERM");
  log_line(&sink, line);
  pthread_t second;
  if (!pthread_create(&second, NULL, cancel_on_second_signal, &set)) pthread_detach(second);
  gpux_server_stop(srv);
  mark_exited(state, EXIT_OK);
  log_line(&sink, "exited");
  if (sink.f) fclose(sink.f);
  pthread_mutex_destroy(&sink.mu);
  return EXIT_OK;
}
