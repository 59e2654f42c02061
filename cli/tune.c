/* tune.c — `gpux tune IMAGE [--tune-time S] [--json] [-q]`: tunes an image's GEMMs for this
 * machine's GPU (gpux_tune): the models are smoke-run on WebGPU, candidate tile configurations of
 * each GEMM shape are timed and checked, and the image is written again with this adapter's
 * record added to its tuning (progress as a live line on a terminal, plain lines otherwise). */
#include "cli.h"
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux tune IMAGE [--tune-time S] [--json] [-q]\n\n"
    "Tunes IMAGE for this machine's GPU: runs its models once on WebGPU with generated inputs,\n"
    "times candidate tile configurations of every distinct GEMM shape (MatMul, Gemm, Conv) within\n"
    "the time budget, keeps those faster than the defaults whose results match the default\n"
    "kernel's, and writes the image again with this adapter's record in its tuning (records made\n"
    "on other GPUs stay). IMAGE then names the new image. Runs use a record when the adapter, its\n"
    "driver and the WebGPU library are the same; `gpux run --json` says \"tuning\": \"matched\".\n\n"
    "  --tune-time S   the time budget in seconds (default 30)\n"
    "  --json          print the summary as JSON on stdout\n"
    "  -q, --quiet     no progress lines\n");
}

typedef struct {
  int tty, quiet, started;
} tune_progress;

static void on_progress(void *ctx, const char *step, int64_t done, int64_t total) {
  tune_progress *p = ctx;
  if (p->quiet) return;
  const char *what = !strcmp(step, "tune") ? "tuning GEMMs for this GPU (shapes)"
                     : !strcmp(step, "compile") ? "compiling GPU kernels (nodes)" : step;
  if (p->tty) {
    if (total > 0) fprintf(stderr, "\r\033[K  %s (%lld/%lld)", what, (long long)done, (long long)total);
    else fprintf(stderr, "\r\033[K  %s ...", what);
    fflush(stderr);
  } else if (!p->started && !strcmp(step, "tune")) {
    fprintf(stderr, "tune: %s\n", what);
    p->started = 1;
  }
}

int cmd_tune(int argc, char **argv) {
  static const struct option opts[] = {{"tune-time", required_argument, 0, 'U'}, {"json", no_argument, 0, 'j'},
                                       {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  gpux_tune_options to = {0};
  tune_progress ps = {.tty = isatty(2)};
  int json = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
    switch (c) {
    case 'U': {
      char *end;
      to.seconds = strtod(optarg, &end);
      if (*end || !(to.seconds > 0)) { cli_error(0, "--tune-time: '%s' is not a number of seconds above 0", optarg); return EXIT_USAGE; }
      break;
    }
    case 'j': json = 1; break;
    case 'q': ps.quiet = 1; break;
    case 'h': usage(stdout); return EXIT_OK;
    default: return cli_bad_option("tune", argv, c);
    }
  }
  if (argc - optind != 1) { cli_error(0, "tune takes one IMAGE (see gpux tune --help)"); return EXIT_USAGE; }
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  to.progress = on_progress;
  to.progress_ctx = &ps;
  gpux_set_progress(on_progress, &ps);
  char *summary = NULL;
  rc = gpux_tune(st, argv[optind], &to, &summary);
  gpux_set_progress(NULL, NULL);
  if (ps.tty && !ps.quiet) fprintf(stderr, "\r\033[K");
  gpux_store_close(st);
  if (rc) {
    fprintf(stderr, "gpux: error: %s\n", gpux_last_error());
    return cli_exit_code(rc);
  }
  if (json) {
    puts(summary);
  } else {
    cJSON *s = cJSON_Parse(summary);
    printf("Tuned %s  %.19s\n", cJSON_GetStringValue(cJSON_GetObjectItem(s, "reference")),
           cJSON_GetStringValue(cJSON_GetObjectItem(s, "digest")));
    cli_print_tuning("  ", s);
    cJSON_Delete(s);
  }
  gpux_free(summary);
  return EXIT_OK;
}
