/* stop.c — `gpux stop NAME... [--timeout S]`: stops servers gracefully (SIGTERM: they stop
 * accepting, finish in-flight requests and exit), waiting for each to exit; SIGKILL after the
 * timeout. */
#include "cli.h"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f, "usage: gpux stop NAME... [--timeout S]\n\n"
             "Stops servers (gpux serve) gracefully: in-flight requests finish first.\n\n"
             "  --timeout S   seconds to wait before killing (default 60)\n");
}

int cmd_stop(int argc, char **argv) {
  static const struct option opts[] = {{"timeout", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  double timeout = 60;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":t:h", opts, NULL)) != -1) {
    if (c == 't') {
      char *end;
      timeout = strtod(optarg, &end);
      if (*end || timeout <= 0) { cli_error(0, "--timeout: '%s' is not a number of seconds", optarg); return EXIT_USAGE; }
    } else if (c == 'h') { usage(stdout); return EXIT_OK; }
    else return cli_bad_option("stop", argv, c);
  }
  if (optind >= argc) { cli_error(0, "stop needs a server name (see gpux ps)"); return EXIT_USAGE; }
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  char dir[4096];
  servers_dir(st, dir, sizeof dir);
  gpux_store_close(st);
  int status = EXIT_OK;
  for (int i = optind; i < argc; i++) {
    const char *name = argv[i];
    char state[4400];
    server_info si;
    snprintf(state, sizeof state, "%s/%s.json", dir, name);
    if (!servers_valid_name(name) || servers_read(state, &si) || !si.alive) {
      if (servers_valid_name(name)) unlink(state);
      cli_error(0, "no server named '%s' is running (see gpux ps)", name);
      status = EXIT_INPUT;
      continue;
    }
    if (kill(si.pid, SIGTERM)) { cli_error(0, "cannot signal %s (pid %d): %s", name, si.pid, strerror(errno)); status = EXIT_RUNTIME; continue; }
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int gone = 0;
    for (;;) {
      if (!servers_pid_alive(si.pid)) { gone = 1; break; }
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 > timeout) break;
      usleep(50000);
    }
    if (!gone) {
      kill(si.pid, SIGKILL);
      unlink(state);
      cli_error(0, "%s (pid %d) did not stop within %g s: killed", name, si.pid, timeout);
      status = EXIT_RUNTIME;
      continue;
    }
    printf("%s stopped\n", name);
  }
  return status;
}
