/* main.c — the gpux command: finds the verb and runs it; `gpux --help` lists the verbs. */
#include "cli.h"
#include <stdarg.h>
#include <string.h>

static const cli_verb verbs[] = {
  {"verify", "run ONNX test-case folders and compare with their expected outputs", cmd_verify},
  {"bench", "time inference on ONNX test-case folders (median latency, peak memory)", cmd_bench},
  {"devices", "list the GPUs (WebGPU adapters) and the CPU gpux can run on", cmd_devices},
  {"build", "build an image from a folder with a GPUXfile", cmd_build},
  {"run", "run an image (or a GPUXfile folder) on inputs", cmd_run},
  {"init", "make a folder with a GPUXfile from a template", cmd_init},
  {"inspect", "show an image: inputs, outputs, device, latency, ops, layers", cmd_inspect},
  {"list", "list the images in the local store (also: images)", cmd_list},
  {"images", "same as list", cmd_list},
  {"rm", "remove images", cmd_rm},
  {"tag", "give an image another name", cmd_tag},
  {"serve", "serve images over HTTP (predict, Open Inference Protocol v2, metrics)", cmd_serve},
  {"ps", "list running servers", cmd_ps},
  {"logs", "show a server's log", cmd_logs},
  {"stop", "stop a server gracefully", cmd_stop},
  {"push", "push an image to an OCI registry", cmd_push},
  {"pull", "pull an image from an OCI registry", cmd_pull},
  {"login", "store credentials for an OCI registry", cmd_login},
};

void cli_error(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("gpux: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (err < 0) fprintf(stderr, ": %s", gpux_last_error());
  fputc('\n', stderr);
}

int cli_exit_code(int err) {
  switch (err) {
  case GPUX_E_OK: return EXIT_OK;
  case GPUX_E_DEVICE: case GPUX_E_INTERNAL: case GPUX_E_NOMEM: return EXIT_RUNTIME;
  case GPUX_E_MISMATCH: return EXIT_FAILURE_RESULT;
  default: return EXIT_INPUT;
  }
}

static void usage(FILE *f) {
  fprintf(f, "gpux %s — run ONNX models on any GPU through WebGPU, or on the CPU\n\n"
             "usage: gpux COMMAND [ARGS...]\n\ncommands:\n", GPUX_VERSION);
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
  fprintf(f, "\n`gpux COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return EXIT_USAGE; }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) { printf("gpux %s\n", GPUX_VERSION); return EXIT_OK; }
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    if (!strcmp(argv[1], verbs[i].name)) return verbs[i].main(argc - 1, argv + 1);
  cli_error(0, "unknown command '%s' (see gpux --help)", argv[1]);
  return EXIT_USAGE;
}
