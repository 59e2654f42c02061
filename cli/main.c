/* main.c — the gpux command: finds the verb and runs it; `gpux --help` lists the verbs. */
#include "cli.h"
#include <string.h>

static const cli_verb verbs[] = {
  {"verify", "run ONNX test-case folders and compare with their expected outputs", cmd_verify},
  {"bench", "time inference on ONNX test-case folders (median latency, peak memory)", cmd_bench},
  {"version", "show the versions of gpux, its library and WebGPU, and the devices found", cmd_version},
  {"devices", "list the GPUs (WebGPU adapters) and the CPU gpux can run on", cmd_devices},
  {"build", "build an image from a folder with a GPUXfile", cmd_build},
  {"run", "run an image (or a GPUXfile folder) on inputs", cmd_run},
  {"tune", "tune an image's GEMMs for this machine's GPU", cmd_tune},
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
  {"logout", "forget the credentials stored for an OCI registry", cmd_logout},
};

static void usage(FILE *f) {
  fprintf(f, "gpux %s — run ONNX models on any GPU through WebGPU, or on the CPU\n\n"
             "usage: gpux COMMAND [ARGS...]\n\ncommands:\n", gpux_version());
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
  fprintf(f, "\n`gpux help COMMAND` (or `gpux COMMAND --help`) describes a command.\n");
}

/* Levenshtein distance of two short words, for "did you mean". */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b), row[64];
  if (la >= 64 || lb >= 64) return 99;
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      diag = up;
      row[j] = best;
    }
  }
  return row[lb];
}

static const cli_verb *find_verb(const char *name) {
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    if (!strcmp(name, verbs[i].name)) return &verbs[i];
  return NULL;
}

static int unknown_verb(const char *name) {
  const cli_verb *best = NULL;
  size_t best_d = 3; /* suggest only close names */
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
    size_t d = edit_distance(name, verbs[i].name);
    if (d < best_d) { best_d = d; best = &verbs[i]; }
  }
  if (best) cli_error(0, "unknown command '%s' (did you mean '%s'? see gpux --help)", name, best->name);
  else cli_error(0, "unknown command '%s' (see gpux --help)", name);
  return EXIT_USAGE;
}

int main(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return EXIT_USAGE; }
  if (!strcmp(argv[1], "help") && argc > 2) { /* gpux help VERB = gpux VERB --help */
    const cli_verb *v = find_verb(argv[2]);
    if (!v) return unknown_verb(argv[2]);
    char *help_argv[] = {argv[2], "--help", NULL};
    return v->main(2, help_argv);
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) { printf("gpux %s\n", gpux_version()); return EXIT_OK; }
  const cli_verb *v = find_verb(argv[1]);
  if (v) return v->main(argc - 1, argv + 1);
  if (argv[1][0] == '-') {
    cli_error(0, "unknown option '%s' (see gpux --help)", argv[1]);
    return EXIT_USAGE;
  }
  return unknown_verb(argv[1]);
}
