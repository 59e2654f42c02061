/* build.c — `gpux build [PATH] [-t NAME[:TAG]] [--backend ...] [--tune|--no-tune] [--json]`: turns a
 * folder with a GPUXfile into an image in the local store, showing progress (a live line on a
 * terminal, plain lines otherwise) and ending with a summary: size, device, backend, measured
 * latency and memory, the GEMM tuning for the local GPU, and the nodes that fell back to the CPU
 * and why. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux build [PATH] [-t NAME[:TAG]] [--backend cpu|webgpu|auto] [--tune|--no-tune] [--tune-time S]\n"
    "                  [--no-smoke] [--allow-outside] [--json] [-q]\n\n"
    "Builds an image from PATH (a folder with a GPUXfile, or the file itself; default .):\n"
    "parses and validates the GPUXfile, loads the model(s), checks every operator, smoke-runs\n"
    "them on the chosen backend with generated inputs (or the GPUXfile's examples), measures\n"
    "latency and peak memory, and stores the image in $GPUX_HOME (default ~/.gpux).\n\n"
    "  -t, --tag NAME[:TAG]  the image's name (default: the GPUXfile's name:version, or the\n"
    "                        folder's name:latest)\n"
    "  --backend B           cpu, webgpu (or gpu) or auto (default: the GPUXfile's runtime.backend)\n"
    "  --tune                time GEMM tile configurations (MatMul, Gemm, Conv) on this machine's\n"
    "                        GPU and store the fastest in the image (default: when the models run\n"
    "                        on WebGPU on a GPU that is not a CPU); runs use them on the same\n"
    "                        adapter, driver and WebGPU library, and the defaults elsewhere\n"
    "  --no-tune             no tuning\n"
    "  --tune-time S         the tuning's time budget in seconds (default 30)\n"
    "  --no-smoke            skip the smoke run: the models are loaded and every operator checked,\n"
    "                        but nothing runs and nothing is measured\n"
    "  --allow-outside       files outside PATH's folder (absolute paths, '..', symlinks out of\n"
    "                        it) may go into the image; without it they are an error, because\n"
    "                        an image is made to be pushed\n"
    "  --json                print the summary as JSON on stdout\n"
    "  -q, --quiet           no progress lines\n");
}

int cli_parse_backend(const char *s, int *out) {
  if (!strcmp(s, "auto")) *out = GPUX_BACKEND_AUTO;
  else if (!strcmp(s, "cpu")) *out = GPUX_BACKEND_CPU;
  else if (!strcmp(s, "webgpu") || !strcmp(s, "gpu")) *out = GPUX_BACKEND_WEBGPU;   /* gpu: an alias */
  else {
    cli_error(0, "--backend: '%s' is not cpu, webgpu (or gpu) or auto", s);
    return -1;
  }
  return 0;
}

int cli_parse_precision(const char *s, int *out) {
  if (!strcmp(s, "fp32") || !strcmp(s, "float32")) *out = GPUX_PRECISION_FP32;
  else if (!strcmp(s, "fp16") || !strcmp(s, "float16")) *out = GPUX_PRECISION_FP16;
  else {
    cli_error(0, "--precision: '%s' is not fp32 or fp16", s);
    return -1;
  }
  return 0;
}

typedef struct {
  int tty;
  int quiet;
  int json;                      /* --json: no live compile line */
  const char *last;
} progress_state;

static const char *step_text(const char *step) {
  if (!strcmp(step, "parse")) return "parsing the GPUXfile";
  if (!strcmp(step, "fetch")) return "fetching the model";
  if (!strcmp(step, "load")) return "loading and checking the model";
  if (!strcmp(step, "smoke-run")) return "smoke-running";
  if (!strcmp(step, "write")) return "writing the image";
  if (!strcmp(step, "compile")) return "compiling GPU kernels (nodes)";
  if (!strcmp(step, "tune")) return "tuning GEMMs for this GPU (shapes)";
  return step;
}

static void on_progress(void *ctx, const char *step, int64_t done, int64_t total) {
  progress_state *p = ctx;
  if (p->quiet) return;
  /* the GPU kernels' per-node progress is a live line on a terminal only */
  if (!strcmp(step, "compile") && (!p->tty || p->json)) return;
  if (p->tty) {
    if (total > 0) fprintf(stderr, "\r\033[K  %s (%lld/%lld)", step_text(step), (long long)done, (long long)total);
    else fprintf(stderr, "\r\033[K  %s ...", step_text(step));
    fflush(stderr);
  } else if (!p->last || strcmp(p->last, step)) {
    fprintf(stderr, "build: %s\n", step_text(step));
  }
  p->last = step;
}

static void human_size(double b, char *buf, size_t len) {
  const char *u[] = {"B", "kB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4) { b /= 1000; i++; }
  snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static const char *ms_text(double v, char buf[32]) {
  snprintf(buf, 32, v >= 100 ? "%.0f" : "%.3g", v);
  return buf;
}

static double jnum(const cJSON *o, const char *k) { return cJSON_GetNumberValue(cJSON_GetObjectItem(o, k)); }
static const char *jstr(const cJSON *o, const char *k) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
  return s ? s : "";
}

void cli_print_tuning(const char *prefix, const cJSON *tu) {
  printf("%s%d of %d GEMM shapes faster than the defaults on %s (%d candidates, %d rejected, %.1f s)\n", prefix,
         (int)jnum(tu, "tuned"), (int)jnum(tu, "gemm_shapes"), jstr(tu, "adapter"), (int)jnum(tu, "candidates"),
         (int)jnum(tu, "rejected"), jnum(tu, "seconds"));
}

static void print_summary(const char *json) {
  cJSON *s = cJSON_Parse(json);
  if (!s) { puts(json); return; }
  char size[32], mem[32];
  human_size(jnum(s, "size"), size, sizeof size);
  printf("Built %s  %.19s  (%s, %d layer%s)\n", jstr(s, "reference"), jstr(s, "digest"), size,
         (int)jnum(s, "layers"), jnum(s, "layers") == 1 ? "" : "s");
  const cJSON *tags = cJSON_GetObjectItem(s, "tags");
  if (cJSON_GetArraySize(tags) > 1) { /* say so when name:latest moved too */
    printf("  tagged   ");
    const cJSON *t;
    cJSON_ArrayForEach(t, tags) printf(" %s", cJSON_GetStringValue(t));
    printf("\n");
  }
  const cJSON *dev = cJSON_GetObjectItem(s, "device");
  printf("  device    %s (backend %s)\n", jstr(dev, "name"), jstr(s, "backend"));
  if (*jstr(s, "backend_reason")) printf("            %s\n", jstr(s, "backend_reason"));
  const cJSON *lat = cJSON_GetObjectItem(s, "latency_ms");
  char b[4][32];
  if (cJSON_IsTrue(cJSON_GetObjectItem(s, "smoke_run_skipped")))
    printf("  latency   not measured (--no-smoke; load %s ms)\n", ms_text(jnum(s, "load_ms"), b[3]));
  else
    printf("  latency   %s ms median, %s ms p90 (first run %s ms; load %s ms)\n", ms_text(jnum(lat, "median"), b[0]),
         ms_text(jnum(lat, "p90"), b[1]), ms_text(jnum(s, "first_run_ms"), b[2]), ms_text(jnum(s, "load_ms"), b[3]));
  if (jnum(s, "peak_rss_bytes") > 0) {
    human_size(jnum(s, "peak_rss_bytes"), mem, sizeof mem);
    printf("  memory    %s peak resident\n", mem);
  }
  if (jnum(s, "device_memory_bytes") > 0) {
    human_size(jnum(s, "device_memory_bytes"), mem, sizeof mem);
    printf("            %s of device memory\n", mem);
  }
  int fb = (int)jnum(s, "fallback_nodes"), nodes = (int)jnum(s, "nodes");
  if (!fb) printf("  nodes     %d, all on %s\n", nodes, jstr(s, "backend"));
  else {
    printf("  nodes     %d, %d fell back to the CPU:\n", nodes, fb);
    /* grouped by op and reason, with the first node's name: "Cast 'c' x40: input 0 is float16 ..." */
    cJSON *groups = cJSON_CreateObject();
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(s, "fallbacks")) {
      char key[600];
      snprintf(key, sizeof key, "%s\x1f%s", jstr(f, "op"), jstr(f, "why"));
      cJSON *g = cJSON_GetObjectItem(groups, key);
      if (!g) {
        g = cJSON_AddObjectToObject(groups, key);
        cJSON_AddStringToObject(g, "name", jstr(f, "name"));
      }
      cJSON *c = cJSON_GetObjectItem(g, "count");
      if (c) cJSON_SetNumberValue(c, c->valuedouble + 1);
      else cJSON_AddNumberToObject(g, "count", 1);
    }
    int shown = 0;
    cJSON_ArrayForEach(f, groups) {
      if (shown++ == 12) { printf("              ... (gpux inspect %s lists every node)\n", jstr(s, "reference")); break; }
      const char *sep = strchr(f->string, '\x1f');
      printf("              %.*s '%s' x%d: %s\n", (int)(sep - f->string), f->string, jstr(f, "name"),
             (int)jnum(f, "count"), sep + 1);
    }
    cJSON_Delete(groups);
  }
  const cJSON *in;
  cJSON_ArrayForEach(in, cJSON_GetObjectItem(s, "smoke_inputs"))
    printf("  input     %s: %s\n", jstr(in, "name"), jstr(in, "source"));
  const cJSON *tu = cJSON_GetObjectItem(s, "tuning");
  if (tu) cli_print_tuning("  tuning    ", tu);
  if (cJSON_GetObjectItem(s, "warning")) printf("  warning   %s\n", jstr(s, "warning"));
  printf("Run it: gpux run %s --input ...\n", jstr(s, "reference"));
  cJSON_Delete(s);
}

int cmd_build(int argc, char **argv) {
  static const struct option opts[] = {
    {"tag", required_argument, 0, 't'}, {"backend", required_argument, 0, 'b'},
    {"json", no_argument, 0, 'j'}, {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
    {"no-smoke", no_argument, 0, 'S'},
    {"allow-outside", no_argument, 0, 'O'}, {"tune", no_argument, 0, 'T'}, {"no-tune", no_argument, 0, 'N'},
    {"tune-time", required_argument, 0, 'U'}, {0, 0, 0, 0}};
  gpux_build_options bo = {0};
  int json = 0, c;
  progress_state ps = {.tty = isatty(2)};
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":t:qh", opts, NULL)) != -1) {
    switch (c) {
    case 't': bo.tag = optarg; break;
    case 'b': if (cli_parse_backend(optarg, &bo.backend)) return EXIT_USAGE; break;
    case 'j': json = 1, ps.json = 1; break;
    case 'O': bo.allow_outside = 1; break;
    case 'q': ps.quiet = 1; break;
    case 'S': bo.no_smoke = 1; break;
    case 'T': bo.tune = 1; break;
    case 'N': bo.tune = -1; break;
    case 'U': {
      char *end;
      bo.tune_seconds = strtod(optarg, &end);
      if (*end || !(bo.tune_seconds > 0)) { cli_error(0, "--tune-time: '%s' is not a number of seconds above 0", optarg); return EXIT_USAGE; }
      break;
    }
    case 'h': usage(stdout); return EXIT_OK;
    default: return cli_bad_option("build", argv, c);
    }
  }
  if (argc - optind > 1) { cli_error(0, "build takes one PATH (see gpux build --help)"); return EXIT_USAGE; }
  const char *path = optind < argc ? argv[optind] : ".";
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  bo.progress = on_progress;
  bo.progress_ctx = &ps;
  gpux_set_progress(on_progress, &ps); /* pipelines compiled while smoke-running on a GPU */
  char *summary = NULL;
  rc = gpux_build(st, path, &bo, &summary);
  gpux_set_progress(NULL, NULL);
  if (ps.tty && !ps.quiet && ps.last) fprintf(stderr, "\r\033[K");
  gpux_store_close(st);
  if (rc) {
    fprintf(stderr, "gpux: error: %s\n", gpux_last_error());
    return cli_exit_code(rc);
  }
  if (json) puts(summary);
  else print_summary(summary);
  gpux_free(summary);
  return EXIT_OK;
}
