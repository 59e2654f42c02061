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

/* SIGINT and SIGTERM stop the runs in progress at their next node (gpux_interrupt) instead of
 * killing the process; cli_interrupted() is the signal that came (0: none). A command that was
 * interrupted exits with 128 + the signal's number, as a shell reports a process killed by it. */
void cli_catch_interrupts(void);
int cli_interrupted(void);

/* Prints "gpux: error: " + message (+ library detail when err < 0) to stderr. */
void cli_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For a getopt_long loop run with opterr = 0 and an optstring that starts with ':': prints the
 * one-line error for what getopt returned ('?' unknown option, ':' missing value) and returns
 * EXIT_USAGE. */
int cli_bad_option(const char *verb, char **argv, int c);
/* Maps a library error to the exit code above. */
int cli_exit_code(int err);

int cmd_verify(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_tag(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_login(int argc, char **argv);
int cmd_logout(int argc, char **argv);
/* push/pull progress (cli/push.c): a live line per blob on a terminal, plain lines otherwise */
typedef struct {
  const char *verb;              /* "push" or "pull" */
  int tty, quiet, line_done;
  char step[300];                /* the blob in progress ("upload:model.onnx") */
  double start;
  int64_t start_bytes, last_total;
} cli_transfer;
void cli_transfer_progress(void *ctx, const char *step, int64_t done, int64_t total);
void cli_transfer_end(cli_transfer *t);
int cli_registry_options(int argc, char **argv, gpux_registry_options *ro, cli_transfer *t, int *json,
                         char *password, size_t plen, void (*help)(FILE *));
int cli_read_password(char *buf, size_t len);
/* Whether a reference names a registry ("host:5000/team/app", "ghcr.io/o/a"), as docker reads it. */
int cli_is_remote_ref(const char *ref);
/* run and serve of a remote reference not in the store: pulls it (progress on stderr). 1 when
 * pulled, 0 when `ref` is not remote, a negative error (printed) when the pull failed. */
int cli_pull_missing(gpux_store *st, const char *ref);
void cli_human_size(double b, char *buf, size_t len);
int cmd_serve(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_stop(int argc, char **argv);

/* Servers' state files, $GPUX_HOME/servers/NAME.json (ps.c; written by serve.c). */
typedef struct {
  char name[256], host[64], log[4096], models[1024];
  int pid, port, alive;
  double started;               /* unix time */
  double exited;                /* unix time of a clean stop; 0 when it has not stopped cleanly */
  int exit_code;                /* with exited */
} server_info;
int servers_dir(gpux_store *st, char *dir, size_t len);          /* creates it; -1 on failure */
int servers_read(const char *state_path, server_info *out);     /* -1 when unreadable */
int servers_valid_name(const char *name);
int servers_pid_alive(int pid);                                 /* running, not a zombie */

/* How list and ps print their rows (format.c): a table, JSON, identifiers only (-q) or a template
 * ('{{.Name}}\t{{.Size}}'), each row a JSON object. */
struct cJSON;
typedef enum { CLI_FORMAT_TABLE, CLI_FORMAT_JSON, CLI_FORMAT_QUIET, CLI_FORMAT_TEMPLATE } cli_format_kind;
typedef struct {
  cli_format_kind kind;
  const char *tmpl;              /* CLI_FORMAT_TEMPLATE */
} cli_format;
/* "json", "table" or a template; prints the error and returns -1 otherwise. */
int cli_format_parse(const char *arg, cli_format *f);
/* Prints rows as JSON, their id_key values (quiet) or the template; nothing for a table (the verb
 * prints its own). -1 (error printed) when the template names a field the rows do not have. */
int cli_format_print(const cli_format *f, const struct cJSON *rows, const char *id_key, FILE *out);

/* build.c: prints a tuning summary (gpux_tune's, or `gpux build --json`'s "tuning") as one line after
 * prefix: the shapes tuned, the adapter, the candidates timed and rejected, the seconds. */
void cli_print_tuning(const char *prefix, const struct cJSON *tuning);

/* run --output [NAME=]FILE (output.c): cli_output_check says (printed) whether FILE ends in .json,
 * .npy or .png; cli_write_output writes a full answer there (input: the input file's bytes, for
 * drawing a map over a PNG); both return an exit code. */
int cli_output_check(const char *spec);
int cli_write_output(const char *spec, const char *result_json, const void *input, size_t input_len);

/* "cpu", "webgpu", "auto" -> gpux_backend_kind; prints the error and returns -1 otherwise. */
int cli_parse_backend(const char *s, int *out);
/* --precision fp32|fp16 (float32, float16 too) into a gpux_precision; prints the error. */
int cli_parse_precision(const char *s, int *out);

#endif
