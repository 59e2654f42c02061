/* push.c — `gpux push LOCAL [REMOTE]`: sends an image to an OCI registry, with per-layer progress
 * (a live line with bytes and rate on a terminal, one plain line per layer otherwise) and a
 * summary with the pushed digest. Also the progress printer that pull shares. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_human_size(double b, char *buf, size_t len) {
  const char *u[] = {"B", "kB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4) { b /= 1000; i++; }
  snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void end_line(cli_transfer *t) {
  if (t->tty && t->step[0] && !t->line_done) {
    char size[32];
    cli_human_size((double)t->last_total, size, sizeof size);
    const char *colon = strchr(t->step, ':');
    const char *title = colon ? colon + 1 : t->step;
    fprintf(stderr, "\r\033[K  %-40s %s\n", title, !strncmp(t->step, "exists:", 7) ? "already in the registry"
            : !strncmp(t->step, "have:", 5) ? "already in the store" : !strncmp(t->step, "upload:", 7) ? "pushed" : "pulled");
    (void)size;
  }
  t->line_done = 1;
}

void cli_transfer_progress(void *ctx, const char *step, int64_t done, int64_t total) {
  cli_transfer *t = ctx;
  if (t->quiet || !strcmp(step, "manifest")) return;
  const char *colon = strchr(step, ':');
  const char *title = colon ? colon + 1 : step;
  char size[32];
  cli_human_size((double)total, size, sizeof size);
  if (strcmp(t->step, step)) { /* a new blob */
    end_line(t);
    snprintf(t->step, sizeof t->step, "%s", step);
    t->start = now_s();
    t->start_bytes = done;
    t->line_done = 0;
    if (!t->tty) {
      if (!strncmp(step, "exists:", 7)) fprintf(stderr, "%s: %s: already in the registry\n", t->verb, title);
      else if (!strncmp(step, "have:", 5)) fprintf(stderr, "%s: %s: already in the store (verified)\n", t->verb, title);
      else if (done > 0) fprintf(stderr, "%s: %s: resuming at %lld of %s\n", t->verb, title, (long long)done, size);
      else fprintf(stderr, "%s: %s: %s %s\n", t->verb, title, !strncmp(step, "upload:", 7) ? "uploading" : "downloading", size);
    }
  }
  t->last_total = total;
  if (!t->tty) return;
  double el = now_s() - t->start;
  char d[32], rate[32] = "";
  cli_human_size((double)done, d, sizeof d);
  if (el > 0.2) {
    cli_human_size((double)(done - t->start_bytes) / el, rate, sizeof rate);
    strcat(rate, "/s");
  }
  fprintf(stderr, "\r\033[K  %-40s %s / %s  %s", title, d, size, rate);
  fflush(stderr);
}

void cli_transfer_end(cli_transfer *t) {
  if (!t->quiet) end_line(t);
}

/* reads the password from stdin (one line); returns 0 or prints an error */
int cli_read_password(char *buf, size_t len) {
  if (!fgets(buf, (int)len, stdin)) { cli_error(0, "--password-stdin: nothing on stdin"); return -1; }
  buf[strcspn(buf, "\r\n")] = 0;
  if (!buf[0]) { cli_error(0, "--password-stdin: the password is empty"); return -1; }
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux push [OPTIONS] LOCAL [REMOTE]\n\n"
    "Pushes the local image LOCAL (NAME[:TAG] or sha256:DIGEST) to an OCI registry as REMOTE\n"
    "([HOST[:PORT]/]NAMESPACE/NAME[:TAG]; default LOCAL itself). Blobs the registry already has are\n"
    "not sent again. Credentials come from gpux login or ~/.docker/config.json.\n\n"
    "  --insecure            allow plain HTTP (always allowed for localhost and 127.0.0.1)\n"
    "  --chunk-size BYTES    upload blobs larger than this in chunks of this size (default 32 MiB)\n"
    "  --limit-rate BYTES    at most BYTES per second\n"
    "  -u, --username USER   with --password-stdin: credentials for this push only\n"
    "  --password-stdin      read the password from stdin\n"
    "  --json                print the summary as JSON on stdout\n"
    "  -q, --quiet           no progress lines\n");
}

/* shared option parsing for push and pull: returns -1 to continue, else an exit code */
int cli_registry_options(int argc, char **argv, gpux_registry_options *ro, cli_transfer *t, int *json,
                         char *password, size_t plen, void (*help)(FILE *)) {
  static const struct option opts[] = {
    {"insecure", no_argument, 0, 'i'}, {"chunk-size", required_argument, 0, 'c'},
    {"limit-rate", required_argument, 0, 'l'}, {"username", required_argument, 0, 'u'},
    {"password-stdin", no_argument, 0, 'p'}, {"json", no_argument, 0, 'j'},
    {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int c, pw = 0;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":u:qh", opts, NULL)) != -1) {
    char *end;
    switch (c) {
    case 'i': ro->insecure = 1; break;
    case 'c': case 'l': {
      long long v = strtoll(optarg, &end, 10);
      if (*end || v <= 0) { cli_error(0, "--%s: '%s' is not a positive number of bytes", c == 'c' ? "chunk-size" : "limit-rate", optarg); return EXIT_USAGE; }
      if (c == 'c') ro->chunk_size = v; else ro->max_rate = v;
      break;
    }
    case 'u': ro->username = optarg; break;
    case 'p': pw = 1; break;
    case 'j': *json = 1; break;
    case 'q': t->quiet = 1; break;
    case 'h': help(stdout); return EXIT_OK;
    default: return cli_bad_option(argv[0], argv, c);
    }
  }
  if (!!ro->username != pw) { cli_error(0, "-u USER and --password-stdin go together"); return EXIT_USAGE; }
  if (pw) {
    if (cli_read_password(password, plen)) return EXIT_USAGE;
    ro->password = password;
  }
  t->tty = isatty(2);
  ro->progress = cli_transfer_progress;
  ro->progress_ctx = t;
  return -1;
}

int cmd_push(int argc, char **argv) {
  gpux_registry_options ro = {0};
  cli_transfer t = {.verb = "push"};
  int json = 0;
  char password[1024] = "";
  int ex = cli_registry_options(argc, argv, &ro, &t, &json, password, sizeof password, usage);
  if (ex >= 0) return ex;
  if (argc - optind < 1 || argc - optind > 2) { cli_error(0, "push takes LOCAL [REMOTE] (see gpux push --help)"); return EXIT_USAGE; }
  const char *local = argv[optind], *remote = argc - optind == 2 ? argv[optind + 1] : NULL;
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  char *summary = NULL;
  rc = gpux_push(st, local, remote, &ro, &summary);
  memset(password, 0, sizeof password);
  cli_transfer_end(&t);
  gpux_store_close(st);
  if (rc) { fprintf(stderr, "gpux: error: %s\n", gpux_last_error()); return cli_exit_code(rc); }
  if (json) puts(summary);
  else {
    cJSON *s = cJSON_Parse(summary);
    char up[32];
    cli_human_size(cJSON_GetNumberValue(cJSON_GetObjectItem(s, "uploaded_bytes")), up, sizeof up);
    int nu = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "blobs_uploaded"));
    int ns = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "blobs_skipped"));
    printf("Pushed %s\n  digest    %s\n  blobs     %d uploaded (%s), %d already in the registry\n",
           cJSON_GetStringValue(cJSON_GetObjectItem(s, "reference")),
           cJSON_GetStringValue(cJSON_GetObjectItem(s, "digest")), nu, up, ns);
    cJSON_Delete(s);
  }
  gpux_free(summary);
  return EXIT_OK;
}
