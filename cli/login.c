/* login.c — `gpux login HOST`: checks the credentials against the registry and stores them in
 * $GPUX_HOME/auth.json (mode 0600); `gpux logout HOST` forgets them. The password comes from
 * stdin (--password-stdin) or, on a terminal, from a prompt that does not echo; never from the
 * command line, and it is never printed. */
#include "cli.h"
#include <getopt.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux login HOST[:PORT] [-u USER] [--password-stdin] [--insecure]\n\n"
    "Checks USER and a password against the registry at HOST and stores them in\n"
    "$GPUX_HOME/auth.json (readable only by you). gpux push and pull use them, and also honour\n"
    "~/.docker/config.json. On a terminal, gpux asks for what is not given (the password without\n"
    "echo); otherwise -u USER and --password-stdin are needed.\n");
}

/* Reads one line from the terminal; without echo when `secret`. */
static int prompt(const char *what, int secret, char *buf, size_t len) {
  struct termios old, quiet;
  int restore = 0;
  fprintf(stderr, "%s: ", what);
  fflush(stderr);
  if (secret && !tcgetattr(0, &old)) {
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    restore = !tcsetattr(0, TCSANOW, &quiet);
  }
  char *got = fgets(buf, (int)len, stdin);
  if (restore) { tcsetattr(0, TCSANOW, &old); fputc('\n', stderr); }
  if (!got) return -1;
  buf[strcspn(buf, "\r\n")] = 0;
  return buf[0] ? 0 : -1;
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
  int tty = isatty(0);
  char user[256], password[1024];
  if (!ro.username) {
    if (!tty || pw) { cli_error(0, "login needs -u USER (or a terminal to ask on)"); return EXIT_USAGE; }
    if (prompt("Username", 0, user, sizeof user)) { cli_error(0, "login: no username given"); return EXIT_USAGE; }
    ro.username = user;
  }
  if (pw) {
    if (cli_read_password(password, sizeof password)) return EXIT_USAGE;
  } else if (!tty) {
    cli_error(0, "login needs --password-stdin when stdin is not a terminal");
    return EXIT_USAGE;
  } else if (prompt("Password", 1, password, sizeof password)) {
    cli_error(0, "login: no password given");
    return EXIT_USAGE;
  }
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

int cmd_logout(int argc, char **argv) {
  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: gpux logout HOST[:PORT]\n\nForgets the credentials gpux login stored for HOST.\n");
    return EXIT_OK;
  }
  if (argc != 2 || argv[1][0] == '-') { cli_error(0, "logout takes one HOST (see gpux logout --help)"); return EXIT_USAGE; }
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  rc = gpux_logout(st, argv[1]);
  gpux_store_close(st);
  if (rc) { fprintf(stderr, "gpux: error: %s\n", gpux_last_error()); return cli_exit_code(rc); }
  printf("Removed the credentials for %s\n", argv[1]);
  return EXIT_OK;
}
