/* cli.h — what the gpux command's verbs share: the verb table entry type, and the one way errors
 * are printed ("gpux: error: <detail>"). The CLI uses only the public API in gpux/gpux.h. */
#ifndef GPUX_CLI_H
#define GPUX_CLI_H

#include "gpux/gpux.h"
#include <stdio.h>

/* Exit codes that mean something to scripts. */
enum {
  EXIT_OK = 0,
  EXIT_FAILURE_RESULT = 1,   /* ran, but the result is a failure (e.g. verify found a mismatch) */
  EXIT_USAGE = 2,            /* bad command line */
  EXIT_INPUT = 3,            /* bad input: a model, file or value that cannot be used */
  EXIT_RUNTIME = 4,          /* the runtime or the device failed */
};

typedef struct {
  const char *name;
  const char *summary;
  int (*main)(int argc, char **argv);
} cli_verb;

/* Prints "gpux: error: " + message (+ library detail when err < 0) to stderr. */
void cli_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps a library error to the exit code above. */
int cli_exit_code(int err);

int cmd_verify(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_tag(int argc, char **argv);
/* "cpu", "webgpu", "auto" -> gpux_backend_kind; prints the error and returns -1 otherwise. */
int cli_parse_backend(const char *s, int *out);

#endif
