/* build.c — gpux_build: a folder with a GPUXfile becomes an image in the local store.
 *
 *   parse + validate the GPUXfile -> fetch URL/hf: sources -> load the model(s), check every op
 *   has a kernel, check the declared inputs/outputs against them -> create sessions on the chosen
 *   backend -> smoke-run with generated (or example) inputs, timing it and reading the peak
 *   memory -> write the image: one layer per file (models, their external data, labels,
 *   vocabulary, charset), and a config holding the normalized spec (file references rewritten to
 *   layer titles) and the build record (device, backend, latency, memory, where each op ran). */
#include "app/handler.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void progress(const gpux_build_options *o, const char *step, int64_t done, int64_t total) {
  if (o && o->progress) o->progress(o->progress_ctx, step, done, total);
}

/* /proc/self/status fields in bytes (VmRSS, VmHWM); -1 when unavailable. */
static int64_t proc_status_bytes(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int64_t v = -1;
  size_t fl = strlen(field);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, fl) && line[fl] == ':') { v = strtoll(line + fl + 1, NULL, 10) * 1024; break; }
  fclose(f);
  return v;
}

/* Resets the peak RSS so that VmHWM measures from now (Linux 4.0+; ignored elsewhere). */
static void reset_peak_rss(void) {
  int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (write(fd, "5", 1) < 0) { /* not supported: the peak then counts from process start */ }
  close(fd);
}

/* ---- layers ---- */

typedef struct {
  char path[PATH_MAX];          /* the file (resolved) */
  char title[256];              /* its name in the image */
  const char *media_type;
} layer_file;

typedef struct {
  layer_file *items;
  int n, cap;
  const char *root;             /* the build folder (resolved): files must be inside it; NULL = anywhere */
} layer_list;

static const char *base_of(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* Adds a file; returns its title through *title (the same title when the file is already in). */
static int add_layer(layer_list *l, const char *path, const char *want_title, const char *media,
                     int renamable, const char *prefix, const char **title) {
  char real[PATH_MAX];
  if (!realpath(path, real)) return gpux__error(errno == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: %s", path, strerror(errno));
  /* an image is pushed: what the build folder does not hold (absolute paths, "..", symlinks out
   * of it) goes in only when the builder asks for it */
  size_t rl = l->root ? strlen(l->root) : 0;
  if (l->root && (strncmp(real, l->root, rl) || (real[rl] != '/' && strcmp(l->root, "/")))) {
    char resolved[PATH_MAX + 32] = "";
    if (strcmp(real, path)) snprintf(resolved, sizeof resolved, " (it is %s)", real);
    return gpux__error(GPUX_E_INVALID, "%s%s is outside the build folder %s: copy it in, or build with --allow-outside",
                       path, resolved, l->root);
  }
  for (int i = 0; i < l->n; i++)
    if (!strcmp(l->items[i].path, real)) {
      if (!renamable && strcmp(l->items[i].title, want_title))
        return gpux__error(GPUX_E_INVALID, "%s is needed both as '%s' and '%s'", path, l->items[i].title, want_title);
      *title = l->items[i].title;
      return 0;
    }
  char t[256];
  snprintf(t, sizeof t, "%s", want_title);
  for (int attempt = 0;; attempt++) {
    int clash = 0;
    for (int i = 0; i < l->n && !clash; i++) clash = !strcmp(l->items[i].title, t);
    if (!clash) break;
    if (!renamable)
      return gpux__error(GPUX_E_INVALID, "two different files are both named '%s' (external data keeps its name)", t);
    if (attempt == 0 && prefix) snprintf(t, sizeof t, "%s-%s", prefix, want_title);
    else snprintf(t, sizeof t, "%d-%s", attempt + 1, want_title);
  }
  if (t[0] == '.' || strchr(t, '/')) return gpux__error(GPUX_E_INVALID, "'%s' cannot be a file name in an image", t);
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 8;
    layer_file *p = gpux__realloc(l->items, sizeof *p * (size_t)cap);
    if (!p) return GPUX_E_NOMEM;
    l->items = p;
    l->cap = cap;
  }
  layer_file *f = &l->items[l->n++];
  snprintf(f->path, sizeof f->path, "%s", real);
  snprintf(f->title, sizeof f->title, "%s", t);
  f->media_type = media;
  *title = f->title;
  return 0;
}

#define MEDIA_ONNX "application/vnd.gpux.model.onnx"
#define MEDIA_ONNX_DATA "application/vnd.gpux.model.onnx.data"
#define MEDIA_TEXT "text/plain"
#define MEDIA_JSON "application/json"
#define MEDIA_PYTHON "text/x-python"
#define MEDIA_NATIVE "application/vnd.gpux.handler.native"

static const char *text_media(const char *p) {
  size_t n = strlen(p);
  return n > 5 && !strcmp(p + n - 5, ".json") ? MEDIA_JSON : MEDIA_TEXT;
}

/* A file reference of the spec becomes a layer; the spec then names the layer. */
static int add_ref(gpux__spec *s, layer_list *l, char **ref) {
  if (!*ref) return 0;
  char p[4096];
  const char *title;
  gpux__spec_path(s, *ref, p, sizeof p);
  int rc = add_layer(l, p, base_of(*ref), text_media(*ref), 1, NULL, &title);
  if (rc) return rc;
  return (*ref = gpux__spec_strdup(s, title)) ? 0 : GPUX_E_NOMEM;
}

static int add_model_files(gpux__spec *s, layer_list *l, gpux__spec_model *m, const char *step) {
  char p[4096];
  gpux__spec_path(s, m->path, p, sizeof p);
  char **ext = NULL;
  int n_ext = 0, rc = gpux__model_external_files(p, &ext, &n_ext);
  if (rc) return rc;
  /* external data first: their names are fixed by the model */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", p);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  for (int i = 0; i < n_ext && !rc; i++) {
    char ep[8192];
    const char *title;
    if (strchr(ext[i], '/'))
      rc = gpux__error(GPUX_E_UNSUPPORTED, "%s: external data '%s' in a sub-folder cannot go into an image", p, ext[i]);
    else {
      snprintf(ep, sizeof ep, "%s/%s", dir, ext[i]);
      rc = add_layer(l, ep, ext[i], MEDIA_ONNX_DATA, 0, NULL, &title);
    }
  }
  for (int i = 0; i < n_ext; i++) free(ext[i]);
  free(ext);
  if (rc) return rc;
  const char *title;
  if ((rc = add_layer(l, p, base_of(m->path), MEDIA_ONNX, 1, step, &title))) return rc;
  m->path = m->source = gpux__spec_strdup(s, title);
  m->kind = GPUX__SRC_FILE;
  return m->path ? 0 : GPUX_E_NOMEM;
}

static int add_model_layers(gpux__spec *s, layer_list *l, gpux__spec_model *m, const char *step) {
  /* a URL or hf: source was fetched into the cache, not taken from the builder's files */
  const char *root = l->root;
  if (m->kind != GPUX__SRC_FILE) l->root = NULL;
  int rc = add_model_files(s, l, m, step);
  l->root = root;
  return rc;
}

/* ---- names ---- */

/* The image name from the folder when the GPUXfile has none: lower-case, [a-z0-9._-]. */
static void name_from_folder(const char *context, char *out, size_t len) {
  char real[PATH_MAX];
  const char *b = realpath(context, real) ? base_of(real) : base_of(context);
  size_t o = 0;
  for (const char *p = b; *p && o + 1 < len; p++) {
    char c = (char)tolower((unsigned char)*p);
    out[o++] = isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' ? c : '-';
  }
  out[o] = 0;
  if (!o || !isalnum((unsigned char)out[0])) snprintf(out, len, "app");
}

/* ---- the build ---- */

static cJSON *num(double v) {
  char b[64];
  snprintf(b, sizeof b, "%.4g", v);
  return cJSON_CreateRaw(b);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Where each node ran, per model: op counts by device, and the CPU fallbacks with reasons. */
static cJSON *placement_json(gpux_app *a, int *n_fallback) {
  cJSON *models = cJSON_CreateArray();
  *n_fallback = 0;
  for (int m = 0; m < a->n_models; m++) {
    cJSON *mj = cJSON_CreateObject();
    const gpux__spec_model *sm = a->spec->has_model ? &a->spec->model : &a->spec->pipeline.steps[m].model;
    if (!a->spec->has_model) cJSON_AddStringToObject(mj, "step", a->spec->pipeline.steps[m].name);
    cJSON_AddStringToObject(mj, "file", base_of(sm->path));
    int n_nodes = gpux_model_node_count(a->models[m]);
    cJSON_AddNumberToObject(mj, "nodes", n_nodes);
    cJSON_AddNumberToObject(mj, "opset", (double)gpux_model_opset(a->models[m], ""));
    gpux_run_stats st;
    gpux_session_stats(a->sessions[m], &st);
    cJSON_AddNumberToObject(mj, "device_memory_bytes", (double)st.device_memory_peak);
    cJSON *ops = cJSON_AddObjectToObject(mj, "ops"), *where = cJSON_AddObjectToObject(mj, "placement");
    cJSON *fb = cJSON_AddArrayToObject(mj, "fallbacks");
    int is_gpu = strcmp(gpux_session_backend_name(a->sessions[m]), "cpu") != 0;
    for (int i = 0; i < n_nodes; i++) {
      const char *op = gpux_model_node_op(a->models[m], i), *why = NULL;
      const char *dev = gpux_session_node_device(a->sessions[m], i, &why);
      if (!dev) dev = "not run";
      cJSON *oj = cJSON_GetObjectItem(ops, op);
      if (!oj) oj = cJSON_AddObjectToObject(ops, op);
      cJSON *c = cJSON_GetObjectItem(oj, dev);
      if (c) cJSON_SetNumberValue(c, c->valuedouble + 1);
      else cJSON_AddNumberToObject(oj, dev, 1);
      c = cJSON_GetObjectItem(where, dev);
      if (c) cJSON_SetNumberValue(c, c->valuedouble + 1);
      else cJSON_AddNumberToObject(where, dev, 1);
      if (is_gpu && !strcmp(dev, "cpu")) {
        (*n_fallback)++;
        if (cJSON_GetArraySize(fb) < 200) {
          cJSON *e = cJSON_CreateObject();
          cJSON_AddNumberToObject(e, "node", i);
          cJSON_AddStringToObject(e, "op", op);
          cJSON_AddStringToObject(e, "name", gpux_model_node_name(a->models[m], i));
          cJSON_AddStringToObject(e, "why", why ? why : "no kernel on this backend");
          cJSON_AddItemToArray(fb, e);
        }
      }
    }
    cJSON_AddItemToArray(models, mj);
  }
  return models;
}

static cJSON *device_json(gpux_app *a) {
  cJSON *d = cJSON_CreateObject();
  const char *backend = gpux_session_backend_name(a->sessions[0]);
  cJSON_AddStringToObject(d, "backend", backend);
  if (strcmp(backend, "cpu")) {
    gpux_device_info info[8];
    char note[256] = "";
    int n = gpux_devices(info, 8, note, sizeof note);
    for (int i = 0; i < n && i < 8; i++)
      if (!strcmp(info[i].backend, backend)) {
        cJSON_AddStringToObject(d, "name", info[i].name);
        cJSON_AddStringToObject(d, "type", info[i].type);
        cJSON_AddStringToObject(d, "api", info[i].api);
        cJSON_AddStringToObject(d, "driver", info[i].driver);
        return d;
      }
  }
  char name[128];
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  snprintf(name, sizeof name, "CPU (%ld cores)", cores);
  cJSON_AddStringToObject(d, "name", name);
  cJSON_AddStringToObject(d, "type", "cpu");
  return d;
}

static void now_rfc3339(char *buf, size_t len) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The handler's part of the smoke run: which functions it defines, and one request through it
 * (handler.example) when the GPUXfile gives one, whose failure fails the build. A value that
 * names a file next to the GPUXfile is that file's bytes. */
static int smoke_handler(gpux_app *a, cJSON **out) {
  const gpux__spec_handler *hs = &a->spec->handler;
  cJSON *j = *out = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "file", gpux__handler_name(a->handler));
  cJSON_AddStringToObject(j, "kind", hs->kind == GPUX__HANDLER_PYTHON ? "python" : "native");
  cJSON_AddBoolToObject(j, "preprocess", gpux__handler_has(a->handler, 0));
  cJSON_AddBoolToObject(j, "postprocess", gpux__handler_has(a->handler, 1));
  if (!hs->n_example) return 0;
  gpux_app_input *in = gpux__calloc((size_t)hs->n_example, sizeof *in);
  char **owned = gpux__calloc((size_t)hs->n_example, sizeof *owned);
  int rc = in && owned ? 0 : GPUX_E_NOMEM;
  for (int i = 0; i < hs->n_example && !rc; i++) {
    char p[4096];
    size_t len;
    in[i].name = hs->example_keys[i];
    gpux__spec_path(a->spec, hs->example_values[i], p, sizeof p);
    if (gpux__app_is_file(p)) {
      if (!(rc = gpux__app_read_file(p, &owned[i], &len))) { in[i].bytes = owned[i]; in[i].len = len; }
    } else {
      in[i].text = hs->example_values[i];
    }
  }
  char *result = NULL;
  double t0 = gpux__now_ms();
  if (!rc && (rc = gpux_app_run(a, in, hs->n_example, &result, NULL)))
    gpux__error_prefix(rc, "%s:%d: key 'handler.example': ", a->spec->file, hs->line);
  cJSON_AddItemToObject(j, "example_ms", num(gpux__now_ms() - t0));
  cJSON *res = result ? cJSON_Parse(result) : NULL;
  if (res && cJSON_GetObjectItem(res, "result")) cJSON_AddItemToObject(j, "result", cJSON_DetachItemFromObject(res, "result"));
  cJSON_Delete(res);
  free(result);
  for (int i = 0; owned && i < hs->n_example; i++) free(owned[i]);
  free(owned);
  free(in);
  return rc;
}

static void tune_progress(void *ctx, int64_t done, int64_t total) { progress(ctx, "tune", done, total); }

/* GEMM tuning for this machine's GPU (tuning.c), when asked for or, by default, when the models
 * run on WebGPU on a real GPU: the document goes to a temporary file (*path) to be stored as a
 * layer of its own, so the config stays what a rebuild gives again; *summary says what was done. */
static int build_tune(gpux_app *a, const gpux_build_options *o, int backend, int no_smoke, char *path, size_t len,
                      cJSON **summary) {
  int want = o ? o->tune : 0, software = 0;
  char why[400];
  if (want < 0 || (want == 0 && (backend == GPUX_BACKEND_CPU || no_smoke))) return 0;
  if (no_smoke) return gpux__error(GPUX_E_INVALID, "--tune needs the smoke run (its plans give the GEMM shapes to tune); drop --no-smoke");
  if (!gpux__app_can_tune(a, &software, why, sizeof why))
    return want > 0 ? gpux__error(GPUX_E_INVALID, "--tune: %s", why) : 0;
  if (want == 0 && software) return 0; /* a CPU adapter (lavapipe) is tuned only when asked */
  progress(o, "tune", 0, 0);
  gpux__app_tune_options to = {.seconds = o && o->tune_seconds > 0 ? o->tune_seconds : 30, .progress = tune_progress,
                               .progress_ctx = (void *)o};
  char *json = NULL;
  *summary = cJSON_CreateObject();
  int rc = gpux__app_tune(a, NULL, 0, &to, &json, *summary);
  if (!rc) rc = gpux__tuning_temp_file(json, path, len);
  free(json);
  return rc;
}

int gpux_build(gpux_store *st, const char *context, const gpux_build_options *o, char **summary_json) {
  if (summary_json) *summary_json = NULL;
  if (!st) return gpux__error(GPUX_E_INVALID, "gpux_build: no store");
  if (!context || !*context) context = ".";
  double t_start = gpux__now_ms();
  int64_t rss0 = proc_status_bytes("VmRSS");
  reset_peak_rss();

  /* parse */
  progress(o, "parse", 0, 0);
  struct stat sb;
  char display[4096];
  if (stat(context, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    if (!strcmp(context, ".") || !strcmp(context, "./")) snprintf(display, sizeof display, "GPUXfile");
    else snprintf(display, sizeof display, "%s%sGPUXfile", context, context[strlen(context) - 1] == '/' ? "" : "/");
  } else {
    snprintf(display, sizeof display, "%s", context);
  }
  gpux__spec *spec;
  int rc = gpux__spec_parse_file(context, display, &spec);
  if (rc) return rc;

  /* model files: fetch remote sources, check local ones and sha256 pins */
  cJSON *sources = cJSON_CreateArray();
  int n_models = spec->has_model ? 1 : spec->pipeline.n_steps;
  for (int i = 0; i < n_models && !rc; i++) {
    gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
    char key[64], p[4096];
    if (spec->has_model) snprintf(key, sizeof key, "model");
    else snprintf(key, sizeof key, "pipeline.steps[%d].model", i);
    if (m->kind != GPUX__SRC_FILE) {
      progress(o, "fetch", i, n_models);
      if ((rc = gpux__fetch_source(st, m, p, sizeof p))) {
        gpux__error_prefix(rc, "%s:%d: key '%s': ", spec->file, m->line, key);
        break;
      }
      m->path = gpux__spec_strdup(spec, p);
    } else {
      gpux__spec_path(spec, m->path, p, sizeof p);
      if (stat(p, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        rc = gpux__error(GPUX_E_NOTFOUND, "%s:%d: key '%s': %s: %s", spec->file, m->line, key, p,
                         stat(p, &sb) < 0 ? strerror(errno) : "not a file");
        break;
      }
      if (m->sha256) {
        char got[72];
        int64_t size;
        if ((rc = gpux__sha256_file(p, got, &size))) break;
        if (strcmp(got + 7, m->sha256)) {
          rc = gpux__error(GPUX_E_MISMATCH, "%s:%d: key '%s': %s has sha256 %s, the GPUXfile pins %s", spec->file,
                           m->line, key, p, got + 7, m->sha256);
          break;
        }
      }
    }
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddStringToObject(sj, "source", m->source);
    cJSON_AddItemToArray(sources, sj);
  }
  if (rc) {
    cJSON_Delete(sources);
    gpux__spec_free(spec);
    return rc;
  }

  /* load, check, compile */
  progress(o, "load", 0, 0);
  gpux_app *a;
  int backend = o ? o->backend : GPUX_BACKEND_AUTO;
  if ((rc = gpux__app_create(spec, backend, 1, &a))) {
    cJSON_Delete(sources);
    return rc;
  }
  spec = a->spec;
  double load_ms = gpux__now_ms() - t_start;

  /* smoke run: once (plans and compiles), then timed runs for up to ~2 s (at most 20) */
  if (!(o && o->no_smoke)) progress(o, "smoke-run", 0, 0);
  /* symbolic dimensions of generated tensors are 1 first; when that fails (a pooling window
   * larger than 1x1, ...), the non-batch ones are tried as 64 */
  int sym_tensor = 0;
  for (int i = 0; i < spec->n_inputs; i++) {
    const gpux__spec_io *io = &spec->inputs[i];
    for (int d = 1; d < io->ndim && io->type == GPUX__IO_TENSOR && !io->example; d++) sym_tensor |= io->dims[d] < 0;
  }
  cJSON *what = NULL;
  double first_ms = 0, lat[20];
  a->handler_off = 1;           /* generated inputs are the model's: the handler runs on handler.example */
  int n_lat = 0;
  char *result = NULL;
  int no_smoke = o && o->no_smoke;
  for (int attempt = 0; attempt < (no_smoke ? 0 : sym_tensor ? 2 : 1); attempt++) {
    gpux_app_input *inputs = NULL;
    void **owned = NULL;
    int n_inputs = 0;
    cJSON_Delete(what);
    what = cJSON_CreateArray();
    if (!(rc = gpux__app_smoke_inputs(a, attempt ? 64 : 1, &inputs, &n_inputs, &owned, what))) {
      double t0 = gpux__now_ms();
      rc = gpux_app_run(a, inputs, n_inputs, &result, NULL);
      first_ms = gpux__now_ms() - t0;
      double spent = first_ms;
      while (!rc && n_lat < 20 && (spent < 2000 || n_lat < 3) && spent < 20000) {
        free(result);
        result = NULL;
        t0 = gpux__now_ms();
        rc = gpux_app_run(a, inputs, n_inputs, &result, NULL);
        lat[n_lat++] = gpux__now_ms() - t0;
        spent += lat[n_lat - 1];
        progress(o, "smoke-run", n_lat, 20);
      }
    }
    for (int i = 0; owned && i < n_inputs; i++) free(owned[i]);
    free(owned);
    free(inputs);
    if (!rc) break;
  }
  if (rc) {
    gpux__error_prefix(rc, "smoke run: ");
    if (sym_tensor && !strstr(gpux_last_error(), "runtime.gpu.memory allows")) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s (generated inputs with symbolic dimensions as 1 and 64 failed; give inputs[N].example in the GPUXfile)", gpux_last_error());
      gpux__error(rc, "%s", msg);
    }
  }
  a->handler_off = 0;
  cJSON *handler_j = NULL;
  if (!rc && a->handler) rc = smoke_handler(a, &handler_j);
  int64_t peak = proc_status_bytes("VmHWM");
  char tune_path[4096] = "";
  cJSON *tune_j = NULL;
  if (!rc) rc = build_tune(a, o, backend, no_smoke, tune_path, sizeof tune_path, &tune_j);
  if (rc) {
    if (*tune_path) unlink(tune_path);
    cJSON_Delete(tune_j);
    cJSON_Delete(handler_j);
    free(result);
    cJSON_Delete(what);
    cJSON_Delete(sources);
    gpux_app_close(a);
    return rc;
  }
  qsort(lat, (size_t)n_lat, sizeof *lat, cmp_double);

  /* the build record */
  /* what the image says of its build: only what a rebuild of the same files gives again, so that
   * the digest is the same (reproducible builds); the time and the measurements are `local`,
   * kept next to the image in this store (gpux__store_put_local) */
  cJSON *record = cJSON_CreateObject(), *local = cJSON_CreateObject();
  char created[64];
  now_rfc3339(created, sizeof created);
  cJSON_AddStringToObject(local, "created", created);
  cJSON_AddStringToObject(record, "gpux_version", GPUX_VERSION);
  /* the build folder by its name only: an image is shared, the builder's file system is not */
  char folder[256];
  name_from_folder(context, folder, sizeof folder);
  cJSON_AddStringToObject(record, "context", folder);
  cJSON_AddItemToObject(record, "sources", sources);
  cJSON *dev = device_json(a);
  cJSON_AddItemToObject(record, "device", dev);
  cJSON_AddStringToObject(record, "backend", gpux_session_backend_name(a->sessions[0]));
  cJSON_AddStringToObject(record, "backend_requested", backend == GPUX_BACKEND_CPU ? "cpu" : backend == GPUX_BACKEND_WEBGPU ? "webgpu" : "auto");
  int n_fallback;
  cJSON_AddItemToObject(record, "models", placement_json(a, &n_fallback));
  cJSON *smoke = cJSON_AddObjectToObject(record, "smoke_run");
  if (no_smoke) cJSON_AddBoolToObject(smoke, "skipped", 1);
  cJSON_AddItemToObject(smoke, "inputs", what ? what : cJSON_CreateArray());
  cJSON *measured = cJSON_AddObjectToObject(local, "smoke_run");
  cJSON_AddNumberToObject(measured, "runs", no_smoke ? 0 : n_lat + 1);
  cJSON_AddItemToObject(measured, "load_ms", num(load_ms));
  cJSON_AddItemToObject(measured, "first_run_ms", num(first_ms));
  cJSON *lj = cJSON_AddObjectToObject(measured, "latency_ms");
  cJSON_AddItemToObject(lj, "median", num(n_lat ? lat[n_lat / 2] : first_ms));
  cJSON_AddItemToObject(lj, "min", num(n_lat ? lat[0] : first_ms));
  cJSON_AddItemToObject(lj, "p90", num(n_lat ? lat[(n_lat * 9) / 10 < n_lat ? (n_lat * 9) / 10 : n_lat - 1] : first_ms));
  if (peak > 0) {
    cJSON_AddNumberToObject(measured, "peak_rss_bytes", (double)peak);
    if (rss0 > 0) cJSON_AddNumberToObject(measured, "peak_added_bytes", (double)(peak > rss0 ? peak - rss0 : 0));
  }
  cJSON *res = result ? cJSON_Parse(result) : NULL;
  free(result);
  if (res) {
    cJSON *outs = cJSON_GetObjectItem(res, "outputs"), *oj;
    cJSON_ArrayForEach(oj, outs) { /* what they are, not what they held (scores may differ in the last bits) */
      cJSON *c = oj->child, *next;
      for (; c; c = next) {
        next = c->next;
        if (strcmp(c->string, "name") && strcmp(c->string, "dtype") && strcmp(c->string, "shape") && strcmp(c->string, "kind"))
          cJSON_DeleteItemFromObject(oj, c->string);
      }
    }
    cJSON_AddItemToObject(smoke, "outputs", cJSON_DetachItemFromObject(res, "outputs"));
    cJSON_Delete(res);
  }
  uint64_t device_memory = 0;
  for (int i = 0; i < a->n_models; i++) {
    gpux_run_stats rs;
    gpux_session_stats(a->sessions[i], &rs);
    device_memory += rs.device_memory_peak;
  }
  cJSON_AddNumberToObject(record, "device_memory_bytes", (double)device_memory);
  if (handler_j) {
    cJSON *ms = cJSON_DetachItemFromObject(handler_j, "example_ms");   /* a measurement: local */
    if (ms) cJSON_AddItemToObject(cJSON_AddObjectToObject(local, "handler"), "example_ms", ms);
    cJSON_AddItemToObject(record, "handler", handler_j);
  }

  /* layers: model files and what preprocessing/postprocessing read */
  progress(o, "write", 0, 0);
  layer_list layers = {0};
  char root[PATH_MAX];
  if (!(o && o->allow_outside)) {
    if (!realpath(spec->dir, root)) rc = gpux__error(GPUX_E_IO, "%s: %s", spec->dir, strerror(errno));
    layers.root = root;
  }
  for (int i = 0; i < a->n_models && !rc; i++) {
    gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
    rc = add_model_layers(spec, &layers, m, spec->has_model ? NULL : spec->pipeline.steps[i].name);
  }
  if (!rc && spec->tokenizer.present) rc = add_ref(spec, &layers, &spec->tokenizer.vocab);
  if (!rc && spec->handler.present) {
    gpux__spec_handler *hs = &spec->handler;
    char p[4096];
    const char *title;
    gpux__spec_path(spec, hs->file, p, sizeof p);
    rc = add_layer(&layers, p, base_of(hs->file), hs->kind == GPUX__HANDLER_PYTHON ? MEDIA_PYTHON : MEDIA_NATIVE, 1, NULL, &title);
    if (!rc && !(hs->file = gpux__spec_strdup(spec, title))) rc = GPUX_E_NOMEM;
    if (!rc) rc = add_ref(spec, &layers, &hs->requirements_file);
  }
  for (int i = 0; i < spec->n_post && !rc; i++) {
    if (spec->post[i].cfg.ctc) rc = add_ref(spec, &layers, &spec->post[i].ctc_charset);
    else rc = add_ref(spec, &layers, &spec->post[i].labels_file);
  }
  for (int i = 0; i < spec->n_inputs + spec->n_outputs && !rc; i++) {
    gpux__spec_io *io = i < spec->n_inputs ? &spec->inputs[i] : &spec->outputs[i - spec->n_inputs];
    rc = add_ref(spec, &layers, &io->labels_file);
    char p[4096];
    gpux__spec_path(spec, io->example, p, sizeof p);
    if (io->example && stat(p, &sb) == 0) io->example = NULL;   /* example files stay out of the image */
  }
  char ref[600], name[256];
  if (!rc) {
    if (o && o->tag && *o->tag) snprintf(ref, sizeof ref, "%s", o->tag);
    else {
      if (spec->name) snprintf(name, sizeof name, "%s", spec->name);
      else name_from_folder(context, name, sizeof name);
      snprintf(ref, sizeof ref, "%s:%s", name, spec->version ? spec->version : "latest");
    }
    char canon[600];
    if ((rc = gpux__ref_normalize(ref, canon, sizeof canon))) gpux__error_prefix(rc, "-t %s: ", ref);
    else snprintf(ref, sizeof ref, "%s", canon);
  }
  gpux__blob_ref manifest = {0};
  char *config = NULL;
  int64_t size = 0;
  if (!rc) {
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddItemToObject(cfg, "spec", gpux__spec_to_json(spec));
    cJSON_AddItemToObject(cfg, "build", cJSON_Duplicate(record, 1));
    config = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    gpux__layer_src *src = gpux__calloc((size_t)layers.n + 2, sizeof *src);
    if (!config || !src) rc = GPUX_E_NOMEM;
    for (int i = 0; i < layers.n && !rc; i++) {
      src[i] = (gpux__layer_src){layers.items[i].path, layers.items[i].title, layers.items[i].media_type};
      if (stat(layers.items[i].path, &sb) == 0) size += sb.st_size;
    }
    int n_src = layers.n;
    if (!rc && *tune_path) {
      src[n_src++] = (gpux__layer_src){tune_path, GPUX__TUNING_TITLE, GPUX_MEDIA_TUNING};
      if (stat(tune_path, &sb) == 0) size += sb.st_size;
    }
    /* one lease over both tags: an rm of `ref` in between must not collect the image */
    int lease = rc ? -1 : gpux__store_lease(st);
    if (!rc && lease < 0) rc = lease;
    if (!rc) rc = gpux__store_write_image(st, ref, config, src, n_src, &manifest);
    char *local_json = rc ? NULL : cJSON_PrintUnformatted(local);
    if (!rc) rc = local_json ? gpux__store_put_local(st, manifest.digest, local_json) : GPUX_E_NOMEM;
    free(local_json);
    /* the handler of an image built here is trusted (trust.c); a pulled one is not */
    if (!rc && spec->handler.present) rc = gpux__trust_add(st, manifest.digest, ref);
    /* like `docker build -t name`: an untagged build of name:version is also name:latest */
    if (!rc && !(o && o->tag && *o->tag) && spec->version) {
      char latest[600];
      snprintf(latest, sizeof latest, "%s:latest", name);
      rc = gpux__store_set_ref(st, latest, &manifest);
    }
    gpux__store_release(lease);
    free(src);
    size += config ? (int64_t)strlen(config) : 0;
  }
  free(config);

  /* the summary */
  if (!rc && summary_json) {
    cJSON *s = cJSON_CreateObject();
    const char *colon = strrchr(ref, ':');
    cJSON_AddStringToObject(s, "reference", ref);
    char nm[600];
    snprintf(nm, sizeof nm, "%.*s", (int)(colon ? colon - ref : (long)strlen(ref)), ref);
    cJSON_AddStringToObject(s, "name", nm);
    cJSON_AddStringToObject(s, "tag", colon ? colon + 1 : "latest");
    cJSON *tags = cJSON_AddArrayToObject(s, "tags"); /* every reference this build wrote */
    cJSON_AddItemToArray(tags, cJSON_CreateString(ref));
    if (!(o && o->tag && *o->tag) && spec->version) {
      char latest[600];
      snprintf(latest, sizeof latest, "%s:latest", nm);
      cJSON_AddItemToArray(tags, cJSON_CreateString(latest));
    }
    cJSON_AddStringToObject(s, "digest", manifest.digest);
    cJSON_AddNumberToObject(s, "size", (double)size);
    cJSON_AddNumberToObject(s, "layers", layers.n + (*tune_path ? 1 : 0));
    cJSON_AddItemToObject(s, "device", cJSON_Duplicate(dev, 1));
    cJSON_AddStringToObject(s, "backend", gpux_session_backend_name(a->sessions[0]));
    if (gpux_session_backend_reason(a->sessions[0])[0])
      cJSON_AddStringToObject(s, "backend_reason", gpux_session_backend_reason(a->sessions[0]));
    cJSON_AddItemToObject(s, "load_ms", num(load_ms));
    cJSON_AddItemToObject(s, "first_run_ms", num(first_ms));
    cJSON_AddItemToObject(s, "latency_ms", cJSON_Duplicate(lj, 1));
    if (peak > 0) cJSON_AddNumberToObject(s, "peak_rss_bytes", (double)peak);
    cJSON_AddNumberToObject(s, "device_memory_bytes", (double)device_memory);
    int nodes = 0;
    for (int i = 0; i < a->n_models; i++) nodes += gpux_model_node_count(a->models[i]);
    cJSON_AddNumberToObject(s, "nodes", nodes);
    cJSON_AddNumberToObject(s, "fallback_nodes", n_fallback);
    cJSON *fbs = cJSON_AddArrayToObject(s, "fallbacks"), *mj;
    cJSON_ArrayForEach(mj, cJSON_GetObjectItem(record, "models")) {
      cJSON *f;
      cJSON_ArrayForEach(f, cJSON_GetObjectItem(mj, "fallbacks")) cJSON_AddItemToArray(fbs, cJSON_Duplicate(f, 1));
    }
    cJSON_AddItemToObject(s, "smoke_inputs", cJSON_Duplicate(cJSON_GetObjectItem(smoke, "inputs"), 1));
    if (no_smoke) cJSON_AddBoolToObject(s, "smoke_run_skipped", 1);
    if (cJSON_GetObjectItem(record, "warning"))
      cJSON_AddStringToObject(s, "warning", cJSON_GetObjectItem(record, "warning")->valuestring);
    if (tune_j) cJSON_AddItemToObject(s, "tuning", cJSON_Duplicate(tune_j, 1));
    *summary_json = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    if (!*summary_json) rc = GPUX_E_NOMEM;
  }
  cJSON_Delete(record);
  cJSON_Delete(local);
  cJSON_Delete(tune_j);
  if (*tune_path) unlink(tune_path);
  free(layers.items);
  gpux_app_close(a);
  return rc;
}
