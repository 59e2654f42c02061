/* run.c — `gpux run NAME[:TAG]|PATH`: runs an image (or a GPUXfile folder, without building) on
 * inputs given as --input VALUE, --input @FILE, --input name=VALUE (repeatable), on stdin when it
 * is piped, one per line with --interactive, as the JSON request /predict takes (--json-input),
 * or several files as one batch (--batch). Prints what a person wants to read (the label and its
 * score, the recognized text) or, with --json, the outputs with their data, labels and timings;
 * --output writes the answer to a .json, .npy or .png file. --repeat N runs N times and prints
 * the first run's time (it plans the model), latency percentiles of the runs after it and the
 * start-up time (program start to first result). On a terminal, GPU kernels compiling for a long
 * first plan show their progress on stderr. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Taken before main() runs: the start-up time --repeat reports counts from here. */
static double program_start_ms;
__attribute__((constructor)) static void note_program_start(void) { program_start_ms = now_ms(); }

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux run NAME[:TAG]|PATH [--input VALUE]... [--json] [--full] [--output [NAME=]FILE]...\n"
    "                [--backend cpu|webgpu|auto] [--repeat N] [--interactive] [--allow-handler]\n"
    "                [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
    "                [--repetition-penalty R] [--precision fp32|fp16]\n"
    "       gpux run NAME[:TAG]|PATH --json-input FILE|-\n"
    "       gpux run NAME[:TAG]|PATH --batch VALUE...\n\n"
    "Runs an image from the store (or a folder with a GPUXfile, without building it).\n\n"
    "  -i, --input VALUE       a value: text, numbers (JSON or a list), or a file path for\n"
    "                          image and audio inputs (a WAV file becomes samples, or Whisper's\n"
    "                          log-mel features with preprocessing.audio.features: whisper)\n"
    "  -i, --input @FILE       a file's contents (image, WAV, .npy, TensorProto .pb, text); @- is stdin\n"
    "  -i, --input NAME=VALUE  the value of input NAME (also NAME=@FILE); repeat for several inputs\n"
    "                          with no --input, a piped stdin is the (first) input\n"
    "  --json-input FILE       the JSON object POST /predict takes ({\"text\"}, {\"image\": base64},\n"
    "                          {\"audio\": base64}, {\"inputs\": {NAME: value}}); - is stdin\n"
    "  --batch VALUE...        each value (--input or argument) is one item of a batch: stacked into\n"
    "                          one run when the model has a batch dimension; one answer per item\n"
    "  --json                  outputs (name, dtype, shape, data, labels/text) and timings as JSON\n"
    "  --full                  every value of every output (no \"...\" in the text, no data left out\n"
    "                          of the JSON however large)\n"
    "  -o, --output [NAME=]FILE  write the answer: FILE.json (all of it, every value), FILE.npy (the\n"
    "                          output NAME, default the first, as a NumPy array) or FILE.png (an\n"
    "                          output that is an image or a map; a map over the input PNG; a\n"
    "                          detector's boxes drawn on the input image)\n"
    "  --backend B             cpu, webgpu (or gpu) or auto (default: the image's runtime.backend)\n"
    "  --precision P           fp32 or fp16 (default: the image's runtime.precision); fp16 stores\n"
    "                          float values as float16 on a WebGPU adapter with shader-f16, else\n"
    "                          runs in fp32 and --json says why (\"precision_reason\")\n"
    "  --repeat N              run N times; print the first run's time, p50/p90/p99 latency of the\n"
    "                          runs after it and the start-up time (program start to first result)\n"
    "  --interactive           read one input per line and answer each (a REPL; a chat that keeps\n"
    "                          the conversation for a decoder-only model with generate:)\n"
    "  --allow-handler         run the image's handler code even though it was pulled, not built\n"
    "                          here (once; $GPUX_HOME/trusted-handlers trusts an image for good)\n"
    "text generation (an image with generate: or pipeline mode seq2seq; the text is printed as it\n"
    "is produced):\n"
    "  --max-new-tokens N      at most N new tokens      --temperature T   0 = greedy\n"
    "  --top-k K               sample among the K likeliest (0 = all)\n"
    "  --top-p P               sample within probability mass P (1 = all)\n"
    "  --seed S                the same seed gives the same text\n"
    "  --repetition-penalty R  > 1 discourages repeating tokens\n\n"
    "examples:\n"
    "  gpux run ocr --input line.png\n"
    "  gpux run classifier --input text=\"what a great film\" --json\n"
    "  cat clip.wav | gpux run wake-word\n"
    "  gpux run tiny-gpt --input \"Once upon a time\" --max-new-tokens 40\n"
    "  gpux run model.onnx --input x.npy --output y.npy\n"
    "  gpux run whisper-encoder --input speech.wav --output input_features.npy\n"
    "  gpux run text-direction --batch a.png b.png c.png --json\n"
    "  gpux run ocr --json-input request.json\n");
}

static int read_stream(FILE *f, char **data, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) return -1;
  size_t got;
  while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb) { free(buf); return -1; }
      buf = nb;
      cap *= 2;
    }
  }
  if (ferror(f)) { free(buf); return -1; }
  buf[n] = 0;
  *data = buf;
  *len = n;
  return 0;
}

static int read_file(const char *path, char **data, size_t *len) {
  if (!strcmp(path, "-")) return read_stream(stdin, data, len);
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  int rc = read_stream(f, data, len);
  fclose(f);
  return rc;
}

/* Is `name` one of the app's declared inputs? (so that "a=b" for a text input stays text) */
static int is_input_name(const cJSON *desc, const char *name, size_t len) {
  const cJSON *in;
  cJSON_ArrayForEach(in, cJSON_GetObjectItem(desc, "inputs")) {
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(in, "name"));
    if (n && strlen(n) == len && !memcmp(n, name, len)) return 1;
  }
  return 0;
}

/* Does the app take text? (then "a=b" that names no input is text, not a misspelt name) */
static int takes_text(const cJSON *desc) {
  const cJSON *in;
  cJSON_ArrayForEach(in, cJSON_GetObjectItem(desc, "inputs")) {
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(in, "type"));
    if (t && !strcmp(t, "string")) return 1;
  }
  return 0;
}

static int looks_like_name(const char *s, size_t len) {
  if (!len) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
          c == ':' || c == '-' || c == '/'))
      return 0;
  }
  return 1;
}

typedef struct {
  gpux_app_input *items;
  char **owned;
  int n;
} input_list;

static int add_input(input_list *l, const cJSON *desc, const char *arg) {
  gpux_app_input in = {0};
  char *owned = NULL, *name = NULL;
  const char *value = arg, *eq = strchr(arg, '=');
  size_t nl = eq ? (size_t)(eq - arg) : 0;
  if (arg[0] != '@' && eq && (is_input_name(desc, arg, nl) || (!takes_text(desc) && looks_like_name(arg, nl)))) {
    name = strndup(arg, (size_t)(eq - arg));
    value = eq + 1;
  }
  if (value[0] == '@' && value[1]) {
    size_t len;
    if (read_file(value + 1, &owned, &len)) {
      cli_error(0, "--input %s: %s", arg, strerror(errno ? errno : EIO));
      free(name);
      return -1;
    }
    in.bytes = owned;
    in.len = len;
  } else {
    in.text = value;
  }
  in.name = name;
  gpux_app_input *items = realloc(l->items, sizeof *items * (size_t)(l->n + 1));
  char **ow = realloc(l->owned, sizeof *ow * (size_t)(2 * l->n + 2));
  if (!items || !ow) { free(owned); free(name); return -1; }
  l->items = items;
  l->owned = ow;
  l->items[l->n] = in;
  l->owned[2 * l->n] = owned;
  l->owned[2 * l->n + 1] = name;
  l->n++;
  return 0;
}

static void free_inputs(input_list *l) {
  for (int i = 0; i < 2 * l->n; i++) free(l->owned[i]);
  free(l->owned);
  free(l->items);
  memset(l, 0, sizeof *l);
}

/* gpux_set_progress's handler on a terminal: one line, rewritten, cleared when done. */
static void on_compile(void *ctx, const char *step, int64_t done, int64_t total) {
  int *shown = ctx;
  if (strcmp(step, "compile")) return;
  if (done >= total) {
    if (*shown) fprintf(stderr, "\r\033[K");
    *shown = 0;
  } else {
    fprintf(stderr, "\r\033[Kgpux: compiling GPU kernels: node %lld of %lld", (long long)done, (long long)total);
    *shown = 1;
  }
  fflush(stderr);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, int n, double p) {
  if (n == 0) return 0;
  double r = p / 100.0 * (n - 1);
  int lo = (int)floor(r), hi = lo + 1 < n ? lo + 1 : lo;
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (r - lo);
}

/* Milliseconds as a person reads them: "0.412", "83.6", "2513". */
static const char *ms_text(double v, char *buf, size_t len) {
  snprintf(buf, len, v >= 100 ? "%.0f" : "%.3g", v);
  return buf;
}

static void print_result(const char *json, const char *text, int as_json) {
  if (as_json) puts(json);
  else fputs(text, stdout);
  fflush(stdout);
}

/* Generated text straight to the terminal (or pipe) as it comes. */
static int print_piece(void *ctx, const char *piece, int64_t token) {
  (void)ctx;
  (void)token;
  fputs(piece, stdout);
  fflush(stdout);
  return cli_interrupted() != 0; /* Ctrl-C stops the generation; what was generated stays */
}

/* One run: generation settings and, for a person reading generated text, streaming. */
static int run_once(gpux_app *app, const gpux_app_input *in, int n, const gpux_generate_options *go, int stream,
                    char **json, char **text) {
  gpux_generate_options o = *go;
  if (stream && gpux_app_generates(app)) o.on_token = print_piece;
  int rc = gpux_app_generate(app, in, n, &o, json, text);
  if (o.on_token && !rc && *text) {
    /* the text is on the screen already: end its line */
    gpux_free(*text);
    *text = strdup("\n");
  }
  return rc;
}

static int interactive(gpux_app *app, int as_json, const gpux_generate_options *go) {
  int tty = isatty(0);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int failures = 0, chat = 0;
  if (gpux_app_generates(app)) { /* a decoder continues the conversation; an encoder-decoder takes each line afresh */
    cJSON *d = cJSON_Parse(gpux_app_describe(app));
    const char *how = cJSON_GetStringValue(cJSON_GetObjectItem(d, "generate"));
    chat = how && !strcmp(how, "decoder");
    cJSON_Delete(d);
  }
  /* a text generator keeps the conversation: each prompt is what was said so far as
   * "user: ..." and "assistant: ..." lines, ending in "assistant:" (as /v1/chat/completions) */
  char *history = NULL;
  size_t hlen = 0;
  if (tty) fprintf(stderr, chat ? "a chat: one message per line; an empty line or Ctrl-D ends\n"
                                : "one input per line; an empty line or Ctrl-D ends\n");
  for (;;) {
    if (tty) { fputs("> ", stderr); fflush(stderr); }
    if ((n = getline(&line, &cap, stdin)) < 0) break;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n == 0) { if (tty) break; continue; }
    char *prompt = line;
    if (chat) {
      size_t need = hlen + (size_t)n + 32;
      char *h = realloc(history, need);
      if (!h) { failures++; break; }
      history = h;
      hlen += (size_t)snprintf(history + hlen, need - hlen, "user: %s\nassistant:", line);
      prompt = history;
    }
    gpux_app_input in = {.text = prompt};
    char *json = NULL, *text = NULL;
    int rc = run_once(app, &in, 1, go, !as_json, &json, &text);
    if (rc) { fprintf(stderr, "gpux: error: %s\n", gpux_last_error()); failures++; }
    else print_result(json, text, as_json);
    if (!rc && chat) { /* the answer joins the history */
      cJSON *j = cJSON_Parse(json);
      const cJSON *t = cJSON_GetObjectItem(j, "text");
      const char *said = cJSON_IsString(t) ? t->valuestring : "";
      size_t need = hlen + strlen(said) + 2;
      char *h = realloc(history, need);
      if (h) {
        history = h;
        hlen += (size_t)snprintf(history + hlen, need - hlen, "%s\n", said);
      }
      cJSON_Delete(j);
    }
    gpux_free(json);
    gpux_free(text);
  }
  free(history);
  free(line);
  return failures ? EXIT_INPUT : EXIT_OK;
}

/* The bytes of the first input when it is a file (for drawing a map over it): its bytes, or the
 * file its text names; NULL otherwise. *owned is what to free. */
static const void *first_input_file(const input_list *in, char **owned, size_t *len) {
  *owned = NULL;
  if (!in->n) return NULL;
  if (in->items[0].bytes) { *len = in->items[0].len; return in->items[0].bytes; }
  if (in->items[0].text && !read_file(in->items[0].text, owned, len)) return *owned;
  return NULL;
}

/* --batch: one item per value; each item's text with its value in front of every line, or
 * with --json an array of the answers, each with "input". */
static int run_batch(gpux_app *app, const cJSON *desc, const char **values, int n, int as_json, const char *const *outputs,
                     int n_outputs) {
  input_list in = {0};
  int status = EXIT_OK;
  for (int i = 0; i < n && status == EXIT_OK; i++)
    if (add_input(&in, desc, values[i])) status = EXIT_INPUT;
  char **json = calloc((size_t)n, sizeof *json), **text = calloc((size_t)n, sizeof *text);
  if (status == EXIT_OK && (!json || !text)) status = EXIT_RUNTIME;
  if (status == EXIT_OK) {
    int rc = gpux_app_run_batch(app, in.items, 1, n, json, text);
    if (rc) { fprintf(stderr, "gpux: error: %s\n", gpux_last_error()); status = cli_exit_code(rc); }
  }
  cJSON *all = cJSON_CreateArray();
  for (int i = 0; i < n && status == EXIT_OK; i++) {
    cJSON *r = cJSON_Parse(json[i]);
    if (r) {
      cJSON_AddItemToObject(r, "input", cJSON_CreateString(values[i]));
      cJSON_AddItemToArray(all, r);
    }
  }
  char *joined = status == EXIT_OK ? cJSON_PrintUnformatted(all) : NULL;
  if (status == EXIT_OK && !joined) status = EXIT_RUNTIME;
  for (int k = 0; k < n_outputs && status == EXIT_OK; k++) status = cli_write_output(outputs[k], joined, NULL, 0);
  if (status == EXIT_OK && as_json) puts(joined);
  for (int i = 0; i < n && status == EXIT_OK && !as_json; i++)
    for (const char *line = text[i]; line && *line;) {
      size_t l = strcspn(line, "\n");
      printf("%s: %.*s\n", values[i], (int)l, line);
      line += l + (line[l] == '\n');
    }
  free(joined);
  cJSON_Delete(all);
  for (int i = 0; i < n; i++) {
    if (json) gpux_free(json[i]);
    if (text) gpux_free(text[i]);
  }
  free(json);
  free(text);
  free_inputs(&in);
  return status;
}

/* --json-input FILE: the request object /predict takes. */
static int run_request(gpux_app *app, const char *path, char **json, char **text) {
  char *body;
  size_t len;
  if (read_file(path, &body, &len)) {
    cli_error(0, "--json-input %s: %s", path, strerror(errno ? errno : EIO));
    return EXIT_INPUT;
  }
  int rc = gpux_app_run_request(app, body, len, json, text);
  free(body);
  if (rc) {
    fprintf(stderr, "gpux: error: --json-input %s: %s\n", path, gpux_last_error());
    return cli_exit_code(rc);
  }
  return EXIT_OK;
}

int cmd_run(int argc, char **argv) {
  static const struct option opts[] = {
    {"input", required_argument, 0, 'i'}, {"json", no_argument, 0, 'j'}, {"backend", required_argument, 0, 'b'},
    {"repeat", required_argument, 0, 'r'}, {"interactive", no_argument, 0, 'I'}, {"help", no_argument, 0, 'h'},
    {"allow-handler", no_argument, 0, 'A'},
    {"max-new-tokens", required_argument, 0, 1001}, {"temperature", required_argument, 0, 1002},
    {"top-k", required_argument, 0, 1003}, {"top-p", required_argument, 0, 1004}, {"seed", required_argument, 0, 1005},
    {"repetition-penalty", required_argument, 0, 1006},
    {"full", no_argument, 0, 'F'}, {"output", required_argument, 0, 'o'}, {"json-input", required_argument, 0, 'J'},
    {"batch", no_argument, 0, 'B'}, {"precision", required_argument, 0, 1007}, {0, 0, 0, 0}};
  gpux_generate_options go;
  gpux_generate_options_init(&go);
  const char **args = calloc((size_t)argc + 1, sizeof *args);
  const char *outputs[16], *request = NULL;
  int n_args = 0, as_json = 0, repeat = 0, inter = 0, batch = 0, n_outputs = 0, c;
  gpux_app_options ao = {0};
  if (!args) return EXIT_RUNTIME;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":i:o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'i': args[n_args++] = optarg; break;
    case 'j': as_json = 1; break;
    case 'b': if (cli_parse_backend(optarg, &ao.backend)) { free(args); return EXIT_USAGE; } break;
    case 'r': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*end || v < 1 || v > 1000000) { cli_error(0, "--repeat: '%s' is not a count from 1", optarg); free(args); return EXIT_USAGE; }
      repeat = (int)v;
      break;
    }
    case 'I': inter = 1; break;
    case 'A': ao.allow_handler = 1; break;
    case 1007: {
      int p;
      if (cli_parse_precision(optarg, &p)) { free(args); return EXIT_USAGE; }
      ao.precision = 1 + p;
      break;
    }
    case 1001: case 1002: case 1003: case 1004: case 1005: case 1006: {
      static const char *const names[] = {"--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed", "--repetition-penalty"};
      static const double lo[] = {1, 0, 0, 1e-9, 0, 1e-9}, hi[] = {1 << 20, 100, 1 << 30, 1, 9e15, 100};
      char *end;
      double v = strtod(optarg, &end);
      int whole = c == 1001 || c == 1003 || c == 1005;
      if (*end || end == optarg || !(v >= lo[c - 1001] && v <= hi[c - 1001]) || (whole && v != floor(v))) {
        cli_error(0, "%s: '%s' is not %s from %g to %g", names[c - 1001], optarg, whole ? "a whole number" : "a number",
                  lo[c - 1001], hi[c - 1001]);
        free(args);
        return EXIT_USAGE;
      }
      if (c == 1001) go.max_new_tokens = (int)v;
      else if (c == 1002) go.temperature = v;
      else if (c == 1003) go.top_k = (int)v;
      else if (c == 1004) go.top_p = v;
      else if (c == 1005) go.seed = (int64_t)v;
      else go.repetition_penalty = v;
      break;
    }
    case 'F': ao.full_outputs = 2; break;
    case 'o':
      if (n_outputs == 16) { cli_error(0, "--output: at most 16"); free(args); return EXIT_USAGE; }
      if (cli_output_check(optarg)) { free(args); return EXIT_USAGE; }
      outputs[n_outputs++] = optarg;
      if (!ao.full_outputs) ao.full_outputs = 1;
      break;
    case 'J': request = optarg; break;
    case 'B': batch = 1; break;
    case 'h': usage(stdout); free(args); return EXIT_OK;
    default: free(args); return cli_bad_option("run", argv, c);
    }
  }
  if (optind >= argc) { cli_error(0, "run needs an image or a folder (see gpux run --help)"); free(args); return EXIT_USAGE; }
  if (batch) /* the arguments after the image are items too */
    for (int i = optind + 1; i < argc; i++) args[n_args++] = argv[i];
  else if (argc - optind > 1) {
    cli_error(0, "unexpected '%s': give values with --input, or several as one batch with --batch (see gpux run --help)", argv[optind + 1]);
    free(args);
    return EXIT_USAGE;
  }
  const char *clash = inter && (n_args || repeat || request || batch) ? "--interactive reads inputs from stdin; drop --input/--repeat/--json-input/--batch"
                      : request && (n_args || repeat || batch) ? "--json-input is the whole request; drop --input/--repeat/--batch"
                      : batch && repeat ? "--batch runs once; drop --repeat"
                      : batch && !n_args ? "--batch needs values (--batch a.png b.png)" : NULL;
  for (int k = 0; batch && !clash && k < n_outputs; k++)
    if (strlen(outputs[k]) < 5 || strcmp(outputs[k] + strlen(outputs[k]) - 5, ".json")) clash = "--batch writes its answers to a .json --output only";
  if (clash) { cli_error(0, "%s", clash); free(args); return EXIT_USAGE; }
  const char *ref = argv[optind];

  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); free(args); return cli_exit_code(rc); }
  gpux_app *app;
  rc = gpux_app_open(st, ref, &ao, &app);
  if (rc == GPUX_E_NOTFOUND) { /* a registry's image not pulled yet: pull it, as docker run does */
    int pulled = cli_pull_missing(st, ref);
    if (pulled == 1) rc = gpux_app_open(st, ref, &ao, &app);
    else if (pulled < 0) { gpux_store_close(st); free(args); return cli_exit_code(pulled); }
  }
  if (rc) {
    fprintf(stderr, "gpux: error: %s\n", gpux_last_error());
    gpux_store_close(st);
    free(args);
    return cli_exit_code(rc);
  }
  if (inter || batch) {
    cJSON *bdesc = batch ? cJSON_Parse(gpux_app_describe(app)) : NULL;
    rc = inter ? interactive(app, as_json, &go) : run_batch(app, bdesc, args, n_args, as_json, outputs, n_outputs);
    cJSON_Delete(bdesc);
    gpux_app_close(app);
    gpux_store_close(st);
    free(args);
    return rc;
  }
  cJSON *desc = cJSON_Parse(gpux_app_describe(app));
  input_list in = {0};
  int status = EXIT_OK;
  for (int i = 0; i < n_args && status == EXIT_OK; i++)
    if (add_input(&in, desc, args[i])) status = EXIT_INPUT;
  if (status == EXIT_OK && n_args == 0 && !request) {
    if (isatty(0)) {
      cli_error(0, "no input: give --input VALUE, --input @FILE, pipe it on stdin, or use --interactive");
      status = EXIT_USAGE;
    } else if (add_input(&in, desc, "@-")) {
      status = EXIT_INPUT;
    }
  }
  cJSON_Delete(desc);
  /* on a terminal, a long first plan (GPU kernels compiling) shows its progress; --json output
     stays free of it */
  int compile_shown = 0;
  if (isatty(2) && !as_json) gpux_set_progress(on_compile, &compile_shown);
  double *lat = NULL, first_result_ms = 0;
  char *json = NULL, *text = NULL;
  int runs = repeat ? repeat : 1;
  cli_catch_interrupts();
  if (status == EXIT_OK && !(lat = calloc((size_t)runs, sizeof *lat))) status = EXIT_RUNTIME;
  if (status == EXIT_OK && request) {
    status = run_request(app, request, &json, &text);
    first_result_ms = now_ms() - program_start_ms;
  }
  for (int r = 0; r < runs && status == EXIT_OK && !request; r++) {
    gpux_free(json);
    gpux_free(text);
    json = text = NULL;
    double t0 = now_ms();
    rc = run_once(app, in.items, in.n, &go, !as_json && !repeat, &json, &text);
    lat[r] = now_ms() - t0;
    if (r == 0) first_result_ms = now_ms() - program_start_ms;
    if (compile_shown) fprintf(stderr, "\r\033[K"), compile_shown = 0;
    if (rc == GPUX_E_CANCELLED && cli_interrupted()) {
      int sig = cli_interrupted();
      fprintf(stderr, "gpux: error: %s: %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM", gpux_last_error());
      status = 128 + sig;
    } else if (rc) {
      /* the library says what is missing; how to give it on the command line is the CLI's to say */
      const char *e = gpux_last_error(), *missing = strstr(e, "is missing: it takes");
      const char *q1 = strstr(e, "input '"), *q2 = q1 ? strchr(q1 + 7, '\'') : NULL;
      if (missing && q2 && q2 < missing)
        fprintf(stderr, "gpux: error: %s (--input %.*s=VALUE)\n", e, (int)(q2 - q1 - 7), q1 + 7);
      else
        fprintf(stderr, "gpux: error: %s\n", e);
      status = cli_exit_code(rc);
    }
  }
  gpux_set_progress(NULL, NULL);
  if (status == EXIT_OK && n_outputs) { /* the files first: a result is printed only when they are written */
    char *owned;
    size_t ilen = 0;
    const void *ibytes = first_input_file(&in, &owned, &ilen);
    for (int k = 0; k < n_outputs && status == EXIT_OK; k++) status = cli_write_output(outputs[k], json, ibytes, ilen);
    free(owned);
  }
  if (status == EXIT_OK) {
    if (repeat) {
      /* the first run plans (and compiles GPU kernels): it is reported on its own, and the
         percentiles are over the runs after it (over the one run when there is one) */
      double first_ms = lat[0];
      double *steady = runs > 1 ? lat + 1 : lat;
      int n = runs > 1 ? runs - 1 : 1;
      qsort(steady, (size_t)n, sizeof *steady, cmp_double);
      double p50 = percentile(steady, n, 50), p90 = percentile(steady, n, 90), p99 = percentile(steady, n, 99);
      if (as_json) {
        size_t jl = strlen(json);
        while (jl && json[jl - 1] != '}') jl--;
        printf("%.*s,\"repeat\":{\"runs\":%d,\"p50_ms\":%.4g,\"p90_ms\":%.4g,\"p99_ms\":%.4g,\"min_ms\":%.4g,"
               "\"max_ms\":%.4g,\"first_ms\":%.4g,\"startup_ms\":%.4g}}\n", (int)(jl ? jl - 1 : 0), json, runs, p50, p90,
               p99, steady[0], steady[n - 1], first_ms, first_result_ms);
      } else {
        print_result(json, text, 0);
        char b[5][32];
        printf("latency over %d run%s%s: p50 %s ms, p90 %s ms, p99 %s ms (min %s, max %s)\n", n, n == 1 ? "" : "s",
               runs > 1 ? " after the first" : "", ms_text(p50, b[0], 32), ms_text(p90, b[1], 32), ms_text(p99, b[2], 32),
               ms_text(steady[0], b[3], 32), ms_text(steady[n - 1], b[4], 32));
        printf("first run: %s ms (plans the model: GPU kernels compile or come from the cache)\n", ms_text(first_ms, b[0], 32));
        printf("start-up: %s ms from program start to the first result\n", ms_text(first_result_ms, b[0], 32));
      }
    } else {
      print_result(json, text, as_json);
    }
  }
  gpux_free(json);
  gpux_free(text);
  free(lat);
  free_inputs(&in);
  gpux_app_close(app);
  gpux_store_close(st);
  free(args);
  return status;
}
