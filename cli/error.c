/* error.c — the one way the gpux command reports a failure ("gpux: error: <detail>"), the
 * message for a bad command-line option, and the exit code each library error maps to (cli.h). */
#include "cli.h"
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>

void cli_error(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("gpux: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (err < 0) fprintf(stderr, ": %s", gpux_last_error());
  fputc('\n', stderr);
}

static volatile sig_atomic_t interrupt_signal;

static void on_interrupt(int sig) {
  interrupt_signal = sig;
  gpux_interrupt();
}

void cli_catch_interrupts(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int cli_interrupted(void) { return interrupt_signal; }

int cli_bad_option(const char *verb, char **argv, int c) {
  const char *arg = argv[optind - 1];
  if (c == ':') cli_error(0, "%s: option '%s' needs a value (see gpux %s --help)", verb, arg, verb);
  else if (optopt && strncmp(arg, "--", 2)) cli_error(0, "%s: unknown option '-%c' (see gpux %s --help)", verb, optopt, verb);
  else cli_error(0, "%s: unknown option '%s' (see gpux %s --help)", verb, arg, verb);
  return EXIT_USAGE;
}

int cli_exit_code(int err) {
  switch (err) {
  case GPUX_E_OK: return EXIT_OK;
  case GPUX_E_DEVICE: case GPUX_E_INTERNAL: case GPUX_E_NOMEM: case GPUX_E_CANCELLED: case GPUX_E_HANDLER: return EXIT_RUNTIME;
  case GPUX_E_MISMATCH: return EXIT_FAILURE_RESULT;
  default: return EXIT_INPUT;
  }
}
