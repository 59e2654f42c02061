/* logs.c — `gpux logs NAME [-f] [--tail N]`: prints a server's log ($GPUX_HOME/servers/NAME.log:
 * access lines and errors); -f keeps printing what is appended until the server exits. */
#include "cli.h"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f, "usage: gpux logs NAME [-f] [--tail N]\n\n"
             "Prints the log of server NAME (gpux serve): access lines and errors.\n\n"
             "  -f, --follow   keep printing new lines until the server exits\n"
             "  -n, --tail N   only the last N lines\n");
}

/* Offset of the start of the last n lines of f. */
static long tail_offset(FILE *f, long n) {
  fseek(f, 0, SEEK_END);
  long size = ftell(f), pos = size, lines = 0;
  char buf[4096];
  while (pos > 0) {
    long chunk = pos >= (long)sizeof buf ? (long)sizeof buf : pos;
    pos -= chunk;
    fseek(f, pos, SEEK_SET);
    if (fread(buf, 1, (size_t)chunk, f) != (size_t)chunk) break;
    for (long i = chunk - 1; i >= 0; i--) {
      if (buf[i] == '\n' && pos + i != size - 1 && ++lines == n) return pos + i + 1;
    }
  }
  return 0;
}

static long copy_from(FILE *f, long off) {
  fseek(f, off, SEEK_SET);
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) { fwrite(buf, 1, n, stdout); off += (long)n; }
  fflush(stdout);
  return off;
}

int cmd_logs(int argc, char **argv) {
  static const struct option opts[] = {{"follow", no_argument, 0, 'f'}, {"tail", required_argument, 0, 'n'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int follow = 0, c;
  long tail = -1;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":fn:h", opts, NULL)) != -1) {
    switch (c) {
    case 'f': follow = 1; break;
    case 'n': {
      char *end;
      tail = strtol(optarg, &end, 10);
      if (*end || tail < 0) { cli_error(0, "--tail: '%s' is not a count", optarg); return EXIT_USAGE; }
      break;
    }
    case 'h': usage(stdout); return EXIT_OK;
    default: return cli_bad_option("logs", argv, c);
    }
  }
  if (optind != argc - 1) { cli_error(0, "logs needs one server name (see gpux ps)"); return EXIT_USAGE; }
  const char *name = argv[optind];
  if (!servers_valid_name(name)) { cli_error(0, "'%s' is not a server name", name); return EXIT_USAGE; }
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  char dir[4096], logp[4400], state[4400];
  servers_dir(st, dir, sizeof dir);
  gpux_store_close(st);
  snprintf(logp, sizeof logp, "%s/%s.log", dir, name);
  snprintf(state, sizeof state, "%s/%s.json", dir, name);
  FILE *f = fopen(logp, "r");
  if (!f) { cli_error(0, "no server named '%s' (see gpux ps)", name); return EXIT_INPUT; }
  long off = tail >= 0 ? (tail == 0 ? (fseek(f, 0, SEEK_END), ftell(f)) : tail_offset(f, tail)) : 0;
  off = copy_from(f, off);
  if (follow) {
    server_info si;
    int have = !servers_read(state, &si);
    for (;;) {
      usleep(200000);
      clearerr(f);
      fseek(f, 0, SEEK_END);
      long size = ftell(f);
      if (size < off) {                  /* rotated: the new file from its start */
        fclose(f);
        if (!(f = fopen(logp, "r"))) break;
        off = 0;
      }
      off = copy_from(f, off);
      if (have && !servers_pid_alive(si.pid)) { off = copy_from(f, off); break; }
      if (!have) break;
    }
  }
  if (f) fclose(f);
  return EXIT_OK;
}
