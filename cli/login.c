/* login.c — `gpux login HOST -u USER --password-stdin`: checks the credentials against the
 * registry and stores them in $GPUX_HOME/auth.json (mode 0600). The password is read from stdin
 * only, never from the command line, and never printed. */
#include "cli.h"
#include <getopt.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux login HOST[:PORT] -u USER --password-stdin [--insecure]\n\n"
    "Checks USER and the password read from stdin against the registry at HOST and stores them\n"
    "in $GPUX_HOME/auth.json (readable only by you). gpux push and pull use them, and also\n"
    "honour ~/.docker/config.json.\n");
}

int cmd_login(int argc, char **argv) {
  static const struct option opts[] = {
    {"username", required_argument, 0, 'u'}, {"password-stdin", no_argument, 0, 'p'},
    {"insecure", no_argument, 0, 'i'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  gpux_registry_options ro = {0};
  int c, pw = 0;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":u:h", opts, NULL)) != -1) {
    switch (c) {
    case 'u': ro.username = optarg; break;
    case 'p': pw = 1; break;
    case 'i': ro.insecure = 1; break;
    case 'h': usage(stdout); return EXIT_OK;
    default: return cli_bad_option("login", argv, c);
    }
  }
  if (argc - optind != 1) { cli_error(0, "login takes one HOST (see gpux login --help)"); return EXIT_USAGE; }
  if (!ro.username || !pw) { cli_error(0, "login needs -u USER and --password-stdin"); return EXIT_USAGE; }
  char password[1024];
  if (cli_read_password(password, sizeof password)) return EXIT_USAGE;
  ro.password = password;
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { memset(password, 0, sizeof password); cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  rc = gpux_login(st, argv[optind], &ro);
  memset(password, 0, sizeof password);
  if (rc) { gpux_store_close(st); fprintf(stderr, "gpux: error: %s\n", gpux_last_error()); return cli_exit_code(rc); }
  printf("Login succeeded for %s (saved in %s/auth.json)\n", argv[optind], gpux_store_path(st));
  gpux_store_close(st);
  return EXIT_OK;
}
