/* app.c — the app runtime behind `gpux run`: opens an image from the store (its stored config,
 * never the YAML) or a folder with a GPUXfile, turns user inputs into tensors (images, WAV audio,
 * text through the tokenizer, numbers as JSON/lists/.npy/TensorProto), runs the model or the
 * pipeline, post-processes, and answers with JSON for programs and text for people. */
#include "app/app.h"
#include "onnx/onnx.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

/* Outputs with more elements than this carry no "data" in the JSON answer (OCR's [1, 80, 6625]
 * probabilities would be megabytes); the post-processed result is still there. */
#define JSON_MAX_ELEMENTS 100000

/* ---- small helpers ---- */

/* A growable text buffer for what a person reads. */
typedef struct {
  char *data;
  size_t len, cap;
  int failed;
} text_buf;

static void GPUX__PRINTF(2, 3) tb_printf(text_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || b->failed) return;
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *p = gpux__realloc(b->data, cap);
    if (!p) { b->failed = 1; return; }
    b->data = p;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void gpux__named_tensors_free(gpux__named_tensors *nt) {
  for (int i = 0; i < nt->n; i++) {
    gpux_tensor_free(&nt->t[i]);
    free(nt->names[i]);
  }
  free(nt->t);
  free(nt->names);
  memset(nt, 0, sizeof *nt);
}

static int nt_add(gpux__named_tensors *nt, const char *name, gpux_tensor *t) {
  gpux_tensor *nt_t = gpux__realloc(nt->t, sizeof *nt_t * (size_t)(nt->n + 1));
  if (!nt_t) return GPUX_E_NOMEM;
  nt->t = nt_t;
  char **names = gpux__realloc(nt->names, sizeof *names * (size_t)(nt->n + 1));
  if (!names) return GPUX_E_NOMEM;
  nt->names = names;
  if (!(nt->names[nt->n] = gpux__strdup(name))) return GPUX_E_NOMEM;
  nt->t[nt->n++] = *t;
  memset(t, 0, sizeof *t);
  return 0;
}

static int nt_find(const gpux__named_tensors *nt, const char *name) {
  for (int i = 0; i < nt->n; i++)
    if (!strcmp(nt->names[i], name)) return i;
  return -1;
}

static int read_whole(const char *path, char **data, size_t *len) {
  *data = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return gpux__error(errno == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = gpux__malloc(cap + 1);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    if (cap >= ((size_t)1 << 32)) { free(buf); buf = NULL; break; }
    char *nb = gpux__realloc(buf, cap * 2 + 1);
    if (!nb) { free(buf); buf = NULL; break; }
    buf = nb;
    cap *= 2;
  }
  int err = ferror(f);
  fclose(f);
  if (!buf) return GPUX_E_NOMEM;
  if (err) { free(buf); return gpux__error(GPUX_E_IO, "%s: read error", path); }
  buf[n] = 0;
  *data = buf;
  *len = n;
  return 0;
}

static int is_file(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ---- opening ---- */

static int load_labels(gpux_app *a, char **inline_labels, int64_t n, const char *file, gpux__labels *out) {
  if (file) {
    char p[4096];
    gpux__spec_path(a->spec, file, p, sizeof p);
    return gpux__labels_load(p, out);
  }
  if (inline_labels) return gpux__labels_from_list((const char *const *)inline_labels, n, out);
  return 0;
}

int gpux__app_create(gpux__spec *spec, int backend, int check, gpux_app **out) {
  *out = NULL;
  double t0 = gpux__now_ms();
  gpux_app *a = gpux__calloc(1, sizeof *a);
  if (!a) { gpux__spec_free(spec); return GPUX_E_NOMEM; }
  a->spec = spec;
  a->n_models = spec->has_model ? 1 : spec->pipeline.n_steps;
  a->models = gpux__calloc((size_t)a->n_models, sizeof *a->models);
  a->sessions = gpux__calloc((size_t)a->n_models, sizeof *a->sessions);
  a->post_labels = gpux__calloc((size_t)spec->n_post + 1, sizeof *a->post_labels);
  int rc = a->models && a->sessions && a->post_labels ? 0 : GPUX_E_NOMEM;
  for (int i = 0; i < a->n_models && !rc; i++) {
    const gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
    char path[4096], key[64];
    if (spec->has_model) snprintf(key, sizeof key, "model");
    else snprintf(key, sizeof key, "pipeline.steps[%d].model", i);
    if (!m->path) {
      rc = gpux__error(GPUX_E_INVALID, "%s:%d: key '%s': '%s' has not been fetched", spec->file, m->line, key, m->source);
      break;
    }
    gpux__spec_path(spec, m->path, path, sizeof path);
    if ((rc = gpux_model_load(path, &a->models[i]))) {
      if (m->line) gpux__error_prefix(rc, "%s:%d: key '%s': ", spec->file, m->line, key);
      else gpux__error_prefix(rc, "%s: key '%s': ", spec->file, key);
    }
  }
  for (int i = 0; i < a->n_models && !rc && check; i++)
    if ((rc = gpux_model_check_ops(a->models[i]))) {
      const gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
      const char *b = strrchr(m->path, '/');
      gpux__error_prefix(rc, "%s: ", b ? b + 1 : m->path);
    }
  if (!rc && check) rc = gpux__spec_check_models(spec, a->models, a->n_models);
  if (!rc && spec->pipeline.mode == GPUX__PIPE_OPENWAKEWORD && !check) {
    gpux_value_info vi;
    gpux_model_input_info(a->models[2], 0, &vi);
    if (vi.ndim != 3 || vi.dims[1] <= 0) rc = gpux__error(GPUX_E_MODEL, "openwakeword: the classifier takes [1, N, 96]");
  }
  a->backend = backend != GPUX_BACKEND_AUTO ? backend : spec->runtime.backend;
  gpux_session_options so = {.backend = a->backend, .threads = spec->runtime.threads};
  for (int i = 0; i < a->n_models && !rc; i++) {
    if ((rc = gpux_session_create(a->models[i], &so, &a->sessions[i]))) {
      const gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
      const char *b = strrchr(m->path, '/');
      gpux__error_prefix(rc, "%s: ", b ? b + 1 : m->path);
    }
  }
  if (!rc && spec->tokenizer.present) {
    char p[4096];
    gpux__spec_path(spec, spec->tokenizer.vocab, p, sizeof p);
    size_t pl = strlen(p);
    int is_tok_json = spec->tokenizer.kind == GPUX__TOK_BPE ||
                      (pl >= 14 && !strcmp(p + pl - 14, "tokenizer.json"));
    if (is_tok_json) rc = gpux__tokenizer_load(p, &a->tokenizer);
    else rc = gpux__wordpiece_load(p, &spec->tokenizer.wordpiece, &a->tokenizer);
    if (rc && spec->tokenizer.line) gpux__error_prefix(rc, "%s:%d: key 'preprocessing.tokenizer': ", spec->file, spec->tokenizer.line);
  }
  if (!rc && spec->n_outputs) {
    if (!(a->io_labels = gpux__calloc((size_t)spec->n_outputs, sizeof *a->io_labels))) rc = GPUX_E_NOMEM;
    for (int i = 0; i < spec->n_outputs && !rc; i++)
      rc = load_labels(a, spec->outputs[i].labels, spec->outputs[i].n_labels, spec->outputs[i].labels_file, &a->io_labels[i]);
  }
  for (int i = 0; i < spec->n_post && !rc; i++) {
    gpux__spec_post *p = &spec->post[i];
    if (p->cfg.ctc) {
      char path[4096];
      gpux__spec_path(spec, p->ctc_charset, path, sizeof path);
      rc = gpux__ctc_charset_load(path, p->ctc_add_space, &a->post_labels[i]);
    } else {
      rc = load_labels(a, p->labels, p->n_labels, p->labels_file, &a->post_labels[i]);
    }
    if (rc && p->line) gpux__error_prefix(rc, "%s:%d: key 'postprocessing': ", spec->file, p->line);
  }
  if (rc) {
    gpux_app_close(a);
    return rc;
  }
  a->load_ms = gpux__now_ms() - t0;
  *out = a;
  return 0;
}

void gpux_app_close(gpux_app *a) {
  if (!a) return;
  for (int i = 0; i < a->n_models; i++) {
    if (a->sessions) gpux_session_free(a->sessions[i]);
    if (a->models) gpux_model_free(a->models[i]);
  }
  free(a->sessions);
  free(a->models);
  gpux__tokenizer_free(a->tokenizer);
  if (a->spec) {
    for (int i = 0; a->post_labels && i < a->spec->n_post; i++) gpux__labels_free(&a->post_labels[i]);
    for (int i = 0; a->io_labels && i < a->spec->n_outputs; i++) gpux__labels_free(&a->io_labels[i]);
  }
  free(a->post_labels);
  free(a->io_labels);
  free(a->describe);
  free(a->build_json);
  free(a->ww_scores);
  gpux__spec_free(a->spec);
  free(a);
}

/* Clearly a path, never an image name: ".", "..", "./x", "../x", "/x", "x/GPUXfile". */
static int explicit_path(const char *s) {
  size_t n = strlen(s);
  return !strcmp(s, ".") || !strcmp(s, "..") || !strncmp(s, "./", 2) || !strncmp(s, "../", 3) || s[0] == '/' ||
         (n >= 8 && !strcmp(s + n - 8, "GPUXfile"));
}

/* A folder (or GPUXfile) run directly, without building: parsed and checked like a build. */
static int open_folder(gpux_store *st, const char *path, int backend, gpux_app **out) {
  gpux__spec *spec;
  int rc = gpux__spec_parse_file(path, NULL, &spec);
  if (rc) return rc;
  for (int i = 0; i < (spec->has_model ? 1 : spec->pipeline.n_steps); i++) {
    gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
    if (m->kind == GPUX__SRC_FILE) continue;
    char p[4096];
    if (!st) rc = gpux__error(GPUX_E_INVALID, "fetching '%s' needs the store", m->source);
    else rc = gpux__fetch_source(st, m, p, sizeof p);
    if (rc) {
      gpux__spec_free(spec);
      return rc;
    }
    m->path = gpux__spec_strdup(spec, p);
  }
  gpux_app *a;
  if ((rc = gpux__app_create(spec, backend, 1, &a))) return rc;
  snprintf(a->ref, sizeof a->ref, "%s", path);
  *out = a;
  return 0;
}

int gpux_app_open(gpux_store *st, const char *ref_or_path, const gpux_app_options *o, gpux_app **out) {
  *out = NULL;
  if (!ref_or_path || !*ref_or_path) return gpux__error(GPUX_E_INVALID, "no image or folder given");
  int backend = o ? o->backend : GPUX_BACKEND_AUTO;
  struct stat sb;
  int rc;
  int exists = stat(ref_or_path, &sb) == 0;
  /* "./ocr", "/abs/ocr", "." are folders, so is "examples/ocr" when it exists; a bare "ocr" (or
   * "user/ocr") is an image, or the folder of that name when no image has it */
  if (explicit_path(ref_or_path)) {
    if (!exists) return gpux__error(GPUX_E_NOTFOUND, "%s: %s", ref_or_path, strerror(errno));
    return open_folder(st, ref_or_path, backend, out);
  }
  if (exists && strchr(ref_or_path, '/')) return open_folder(st, ref_or_path, backend, out);
  if (!st) return gpux__error(GPUX_E_INVALID, "'%s': no store to look the image up in", ref_or_path);
  gpux__blob_ref probe;
  if (exists && S_ISDIR(sb.st_mode) && gpux__store_resolve(st, ref_or_path, &probe, NULL, 0) == GPUX_E_NOTFOUND)
    return open_folder(st, ref_or_path, backend, out);
  gpux__oci_image img;
  if ((rc = gpux__store_load_image(st, ref_or_path, &img))) return rc;
  char dir[4096];
  cJSON *cfg = cJSON_Parse(img.config_json);
  const cJSON *spec_j = cJSON_GetObjectItem(cfg, "spec");
  if (!spec_j) {
    cJSON_Delete(cfg);
    gpux__oci_image_free(&img);
    return gpux__error(GPUX_E_PARSE, "image '%s': its config has no spec (not a gpux image?)", ref_or_path);
  }
  if ((rc = gpux__oci_image_dir(st, &img, dir, sizeof dir))) {
    cJSON_Delete(cfg);
    gpux__oci_image_free(&img);
    return rc;
  }
  char what[600];
  snprintf(what, sizeof what, "image %s config", img.ref);
  gpux__spec *spec;
  rc = gpux__spec_from_json(spec_j, what, dir, &spec);
  char *build = NULL;
  const cJSON *b = cJSON_GetObjectItem(cfg, "build");
  if (b) build = cJSON_PrintUnformatted(b);
  cJSON_Delete(cfg);
  if (rc) {
    free(build);
    gpux__oci_image_free(&img);
    return rc;
  }
  gpux_app *a;
  if ((rc = gpux__app_create(spec, backend, 0, &a))) {
    free(build);
    gpux__oci_image_free(&img);
    return rc;
  }
  snprintf(a->ref, sizeof a->ref, "%s", img.ref);
  a->build_json = build;
  gpux__oci_image_free(&img);
  *out = a;
  return 0;
}

/* ---- inputs ---- */

/* Tensors from .npy bytes (version 1-3, little-endian numeric dtypes, C order). */
static int npy_parse(const uint8_t *b, size_t len, gpux_tensor *out) {
  if (len < 10 || memcmp(b, "\x93NUMPY", 6)) return gpux__error(GPUX_E_PARSE, "not a .npy file");
  size_t hl, off;
  if (b[6] == 1) { hl = (size_t)b[8] | (size_t)b[9] << 8; off = 10; }
  else { if (len < 12) return gpux__error(GPUX_E_PARSE, ".npy: truncated"); hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24; off = 12; }
  if (off + hl > len || hl > 65536) return gpux__error(GPUX_E_PARSE, ".npy: truncated header");
  char h[65537];
  memcpy(h, b + off, hl);
  h[hl] = 0;
  const char *d = strstr(h, "'descr'"), *fo = strstr(h, "'fortran_order'"), *sh = strstr(h, "'shape'");
  if (!d || !fo || !sh) return gpux__error(GPUX_E_PARSE, ".npy: header without descr/fortran_order/shape");
  if (strstr(fo, "True") == strchr(fo, ':') + 2) return gpux__error(GPUX_E_UNSUPPORTED, ".npy: Fortran order is not supported");
  const char *q = strchr(d + 7, '\'');
  if (!q) return gpux__error(GPUX_E_PARSE, ".npy: bad descr");
  char descr[16];
  snprintf(descr, sizeof descr, "%.*s", (int)strcspn(q + 1, "'"), q + 1);
  static const struct { const char *d; int dt; } map[] = {
    {"<f4", GPUX_DT_FLOAT}, {"<f8", GPUX_DT_DOUBLE}, {"<f2", GPUX_DT_FLOAT16}, {"|i1", GPUX_DT_INT8},
    {"|u1", GPUX_DT_UINT8}, {"<i2", GPUX_DT_INT16}, {"<u2", GPUX_DT_UINT16}, {"<i4", GPUX_DT_INT32},
    {"<u4", GPUX_DT_UINT32}, {"<i8", GPUX_DT_INT64}, {"<u8", GPUX_DT_UINT64}, {"|b1", GPUX_DT_BOOL},
  };
  int dtype = 0;
  for (size_t i = 0; i < GPUX__ARRAY_LEN(map); i++) if (!strcmp(descr, map[i].d)) dtype = map[i].dt;
  if (!dtype) return gpux__error(GPUX_E_UNSUPPORTED_DTYPE, ".npy: dtype '%s' is not supported", descr);
  const char *p = strchr(sh, '(');
  if (!p) return gpux__error(GPUX_E_PARSE, ".npy: bad shape");
  int ndim = 0;
  int64_t dims[GPUX_MAX_DIMS];
  p++;
  while (*p && *p != ')') {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0 || ndim >= GPUX_MAX_DIMS) return gpux__error(GPUX_E_PARSE, ".npy: bad shape");
    dims[ndim++] = v;
    p = end;
  }
  int rc = gpux_tensor_init(out, dtype, ndim, dims);
  if (rc) return rc;
  size_t data_off = off + hl;
  if (len - data_off < out->nbytes) {
    gpux_tensor_free(out);
    return gpux__error(GPUX_E_PARSE, ".npy: %zu bytes of data, %zu expected", len - data_off, out->nbytes);
  }
  memcpy(out->data, b + data_off, out->nbytes);
  return 0;
}

/* Collects numbers of a nested JSON array, recording its shape (must be rectangular). */
static int json_collect(const cJSON *j, int depth, int *ndim, int64_t *dims, double **vals, int64_t *n, int64_t *cap) {
  if (cJSON_IsArray(j)) {
    int64_t cnt = cJSON_GetArraySize(j);
    if (depth >= GPUX_MAX_DIMS) return gpux__error(GPUX_E_SHAPE, "nested deeper than %d", GPUX_MAX_DIMS);
    if (depth == *ndim) { dims[depth] = cnt; (*ndim)++; }
    else if (depth > *ndim || dims[depth] != cnt) return gpux__error(GPUX_E_SHAPE, "the nested lists are not rectangular");
    const cJSON *c;
    cJSON_ArrayForEach(c, j) {
      int rc = json_collect(c, depth + 1, ndim, dims, vals, n, cap);
      if (rc) return rc;
    }
    if (cnt == 0 && depth + 1 > *ndim) return 0;
    return 0;
  }
  if (depth != *ndim) return gpux__error(GPUX_E_SHAPE, "the nested lists are not rectangular");
  double v;
  if (cJSON_IsNumber(j)) v = j->valuedouble;
  else if (cJSON_IsBool(j)) v = cJSON_IsTrue(j);
  else return gpux__error(GPUX_E_DTYPE, "expected numbers, found %s", cJSON_IsString(j) ? "a string" : "null");
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 64;
    double *p = gpux__realloc(*vals, sizeof *p * (size_t)*cap);
    if (!p) return GPUX_E_NOMEM;
    *vals = p;
  }
  (*vals)[(*n)++] = v;
  return 0;
}

/* The shape for n values given a declared shape: unknown dimensions take what is left. */
static int fit_shape(const gpux__spec_io *io, int64_t n, int *ndim, int64_t *dims) {
  if (io->ndim < 0) { *ndim = 1; dims[0] = n; return 0; }
  int64_t fixed = 1;
  int unknown = 0, last_unknown = -1;
  for (int i = 0; i < io->ndim; i++) {
    if (io->dims[i] >= 0) fixed *= io->dims[i];
    else { unknown++; last_unknown = i; }
  }
  *ndim = io->ndim;
  for (int i = 0; i < io->ndim; i++) dims[i] = io->dims[i] >= 0 ? io->dims[i] : 1;
  if (!unknown) {
    if (fixed != n) return gpux__error(GPUX_E_SHAPE, "%lld values do not fill the shape (%lld values)", (long long)n, (long long)fixed);
    return 0;
  }
  if (fixed == 0 || n % fixed) return gpux__error(GPUX_E_SHAPE, "%lld values do not fit the declared shape", (long long)n);
  dims[last_unknown] = n / fixed;
  return 0;
}

/* Numbers typed by a person: JSON ("[[1, 2], [3, 4]]", "3.5") or a list "1 2 3" / "1,2,3". */
static int parse_tensor_text(const char *text, const gpux__spec_io *io, int dtype, gpux_tensor *out) {
  while (isspace((unsigned char)*text)) text++;
  double *vals = NULL;
  int64_t n = 0, cap = 0, dims[GPUX_MAX_DIMS];
  int ndim = 0, rc = 0, from_json = 0;
  if (*text == '[') {
    cJSON *j = cJSON_Parse(text);
    if (!j) return gpux__error(GPUX_E_PARSE, "not valid JSON: %.40s", text);
    rc = json_collect(j, 0, &ndim, dims, &vals, &n, &cap);
    cJSON_Delete(j);
    from_json = 1;
  } else {
    const char *p = text;
    while (*p && !rc) {
      while (isspace((unsigned char)*p) || *p == ',') p++;
      if (!*p) break;
      char *end;
      double v;
      if (!strncmp(p, "true", 4)) { v = 1; end = (char *)p + 4; }
      else if (!strncmp(p, "false", 5)) { v = 0; end = (char *)p + 5; }
      else v = strtod(p, &end);
      if (end == p || (*end && !isspace((unsigned char)*end) && *end != ',')) {
        rc = gpux__error(GPUX_E_DTYPE, "'%.*s' is not a number", (int)strcspn(p, " ,"), p);
        break;
      }
      if (n == cap) {
        cap = cap ? cap * 2 : 64;
        double *np = gpux__realloc(vals, sizeof *np * (size_t)cap);
        if (!np) { rc = GPUX_E_NOMEM; break; }
        vals = np;
      }
      vals[n++] = v;
      p = end;
    }
    if (!rc && n == 0) rc = gpux__error(GPUX_E_INVALID, "no numbers given");
  }
  if (!rc && (!from_json || (io->ndim >= 0 && ndim != io->ndim))) rc = fit_shape(io, n, &ndim, dims);
  if (!rc) rc = gpux_tensor_init(out, dtype, ndim, dims);
  for (int64_t i = 0; !rc && i < n; i++) gpux__store_f64(dtype, out->data, i, vals[i]);
  free(vals);
  return rc;
}

static int string_tensor(const char *text, const gpux__spec_io *io, gpux_tensor *out) {
  int64_t dims[GPUX_MAX_DIMS];
  int ndim = io->ndim >= 0 ? io->ndim : 1;
  for (int i = 0; i < ndim; i++) dims[i] = 1;
  int rc = gpux_tensor_init(out, GPUX_DT_STRING, ndim, dims);
  if (rc) return rc;
  char **s = out->data;
  if (!(s[0] = gpux__strdup(text))) return GPUX_E_NOMEM;
  return 0;
}

/* Converts t in place to dtype (numbers only). */
static int convert_dtype(gpux_tensor *t, int dtype) {
  if (t->dtype == dtype || dtype == GPUX_DT_UNDEFINED) return 0;
  if (t->dtype == GPUX_DT_STRING || dtype == GPUX_DT_STRING)
    return gpux__error(GPUX_E_DTYPE, "%s given where %s is expected", gpux_dtype_name(t->dtype), gpux_dtype_name(dtype));
  gpux_tensor c = {0};
  int rc = gpux_tensor_init(&c, dtype, t->ndim, t->dims);
  if (rc) return rc;
  int64_t n = gpux_tensor_count(t);
  for (int64_t i = 0; i < n; i++) gpux__store_f64(dtype, c.data, i, gpux__load_f64(t->dtype, t->data, i));
  gpux_tensor_free(t);
  *t = c;
  return 0;
}

static int is_text(const uint8_t *b, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (b[i] == 0 || (b[i] < 0x20 && b[i] != '\n' && b[i] != '\r' && b[i] != '\t')) return 0;
  return 1;
}

static int model_input_dtype(const gpux_app *a, const char *name) {
  gpux_value_info vi;
  int n = gpux_model_input_count(a->models[0]);
  for (int i = 0; i < n; i++)
    if (!gpux_model_input_info(a->models[0], i, &vi) && !strcmp(vi.name, name)) return vi.dtype;
  return GPUX_DT_UNDEFINED;
}

/* The bytes of an image/audio input: given bytes, or the file the text names. */
static int input_bytes(const gpux__spec_io *io, const gpux_app_input *in, char **owned, const void **bytes,
                       size_t *len) {
  *owned = NULL;
  if (in->bytes) { *bytes = in->bytes; *len = in->len; return 0; }
  const char *what = io->type == GPUX__IO_IMAGE ? "an image (PNG or JPEG)" : "audio (a WAV file)";
  if (!in->text || !*in->text) return gpux__error(GPUX_E_INVALID, "input '%s' expects %s", io->name, what);
  if (!is_file(in->text))
    return gpux__error(GPUX_E_INVALID, "input '%s' expects %s: '%.60s' is not a file", io->name, what, in->text);
  int rc = read_whole(in->text, owned, len);
  if (rc) return rc;
  *bytes = *owned;
  return 0;
}

static int tokenize_input(gpux_app *a, const char *text, gpux__named_tensors *out) {
  const gpux__spec_tokenizer *t = &a->spec->tokenizer;
  gpux__encoding enc = {0};
  gpux__encode_options eo = t->encode;
  int rc = gpux__tokenizer_encode(a->tokenizer, text, NULL, &eo, &enc);
  if (rc) return rc;
  const char *names[3] = {t->input_ids ? t->input_ids : "input_ids",
                          t->attention_mask ? t->attention_mask : "attention_mask",
                          t->token_type_ids ? t->token_type_ids : "token_type_ids"};
  gpux_tensor ts[3] = {{0}};
  int want[3];
  for (int i = 0; i < 3; i++) want[i] = model_input_dtype(a, names[i]) != GPUX_DT_UNDEFINED || i == 0;
  rc = gpux__encoding_to_tensors(&enc, &ts[0], want[1] ? &ts[1] : NULL, want[2] ? &ts[2] : NULL);
  gpux__encoding_free(&enc);
  for (int i = 0; i < 3 && !rc; i++) {
    if (!want[i]) continue;
    if (!(rc = convert_dtype(&ts[i], model_input_dtype(a, names[i])))) rc = nt_add(out, names[i], &ts[i]);
  }
  for (int i = 0; i < 3; i++) gpux_tensor_free(&ts[i]);
  return rc;
}

static const char *accepts(int type) {
  switch (type) {
  case GPUX__IO_IMAGE: return "an image file (PNG or JPEG)";
  case GPUX__IO_AUDIO: return "a WAV file";
  case GPUX__IO_STRING: return "text";
  default: return "numbers (JSON, a list, .npy or TensorProto .pb)";
  }
}

static int prepare_one(gpux_app *a, const gpux__spec_io *io, const gpux_app_input *in, gpux__named_tensors *out) {
  gpux__spec *s = a->spec;
  gpux_tensor t = {0};
  int rc = 0;
  char *owned = NULL;
  const void *bytes;
  size_t len;
  switch (io->type) {
  case GPUX__IO_IMAGE:
    if ((rc = input_bytes(io, in, &owned, &bytes, &len))) break;
    if ((rc = gpux__image_preprocess(&s->image.cfg, bytes, len, &t)))
      gpux__error_prefix(rc, "input '%s' expects an image (PNG or JPEG): ", io->name);
    break;
  case GPUX__IO_AUDIO:
    if ((rc = input_bytes(io, in, &owned, &bytes, &len))) break;
    if ((rc = gpux__audio_preprocess(&s->audio.cfg, bytes, len, &t)))
      gpux__error_prefix(rc, "input '%s' expects audio (a WAV file): ", io->name);
    break;
  case GPUX__IO_STRING: {
    const char *text = in->text;
    if (!text && in->bytes) {
      if (!is_text(in->bytes, in->len)) return gpux__error(GPUX_E_INVALID, "input '%s' expects text, got binary data", io->name);
      if (!(owned = gpux__strndup(in->bytes, in->len))) return GPUX_E_NOMEM;
      text = owned;
    }
    if (!text) return gpux__error(GPUX_E_INVALID, "input '%s' expects text", io->name);
    if (a->tokenizer) rc = tokenize_input(a, text, out);
    else if (!(rc = string_tensor(text, io, &t))) rc = nt_add(out, io->name, &t);
    free(owned);
    return rc ? gpux__error_prefix(rc, "input '%s': ", io->name) : 0;
  }
  default: {
    int dtype = io->dtype ? io->dtype : GPUX_DT_FLOAT;
    gpux_app_input file_in = {0};
    if (!in->bytes && in->text && dtype != GPUX_DT_STRING && is_file(in->text)) {
      /* a path: the file's contents (.npy, .pb, numbers as text) */
      if ((rc = read_whole(in->text, &owned, &len))) break;
      file_in.bytes = owned;
      file_in.len = len;
      in = &file_in;
    }
    if (in->bytes) {
      const uint8_t *b = in->bytes;
      if ((in->len >= 8 && !memcmp(b, "\x89PNG", 4)) || (in->len >= 3 && !memcmp(b, "\xff\xd8\xff", 3)) ||
          (in->len >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WAVE", 4)))
        rc = gpux__error(GPUX_E_INVALID, "got %s; '%s' is a tensor input (preprocessing.%s in the GPUXfile turns files into tensors)",
                         b[0] == 'R' ? "a WAV file" : "an image", io->name, b[0] == 'R' ? "audio" : "image");
      else if (in->len >= 6 && !memcmp(b, "\x93NUMPY", 6)) rc = npy_parse(b, in->len, &t);
      else if (is_text(b, in->len)) {
        if (!(owned = gpux__strndup(in->bytes, in->len))) return GPUX_E_NOMEM;
        rc = dtype == GPUX_DT_STRING ? string_tensor(owned, io, &t) : parse_tensor_text(owned, io, dtype, &t);
      } else if ((rc = gpux__tensor_from_pb(b, in->len, NULL, 0, &t, NULL, NULL))) {
        rc = gpux__error(GPUX_E_PARSE, "not .npy, TensorProto or text numbers");
      }
    } else if (in->text) {
      if (dtype == GPUX_DT_STRING) rc = string_tensor(in->text, io, &t);
      else rc = parse_tensor_text(in->text, io, dtype, &t);
    } else {
      rc = gpux__error(GPUX_E_INVALID, "no value");
    }
    if (!rc) rc = convert_dtype(&t, dtype);
    if (rc) gpux__error_prefix(rc, "input '%s' expects %s: ", io->name, accepts(io->type));
    break;
  }
  }
  free(owned);
  if (!rc && io->type != GPUX__IO_TENSOR) {
    int want = model_input_dtype(a, io->name);
    if (s->pipeline.mode != GPUX__PIPE_OPENWAKEWORD && (rc = convert_dtype(&t, want)))
      gpux__error_prefix(rc, "input '%s': ", io->name);
  }
  if (!rc) rc = nt_add(out, io->name, &t);
  gpux_tensor_free(&t);
  return rc;
}

int gpux__app_prepare(gpux_app *a, const gpux_app_input *inputs, int n_inputs, gpux__named_tensors *out) {
  memset(out, 0, sizeof *out);
  gpux__spec *s = a->spec;
  const gpux_app_input **slot = gpux__calloc((size_t)s->n_inputs + 1, sizeof *slot);
  if (!slot) return GPUX_E_NOMEM;
  char names[1024];
  size_t o = 0;
  names[0] = 0;
  for (int i = 0; i < s->n_inputs && o < sizeof names; i++)
    o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", s->inputs[i].name);
  int rc = 0, next = 0;
  for (int k = 0; k < n_inputs && !rc; k++) {
    const gpux_app_input *in = &inputs[k];
    int idx = -1;
    if (in->name) {
      for (int i = 0; i < s->n_inputs && idx < 0; i++) if (!strcmp(s->inputs[i].name, in->name)) idx = i;
      if (idx < 0) { rc = gpux__error(GPUX_E_INVALID, "no input named '%s' (inputs: %s)", in->name, names); break; }
      if (slot[idx]) { rc = gpux__error(GPUX_E_INVALID, "input '%s' is given twice", in->name); break; }
    } else {
      while (next < s->n_inputs && slot[next]) next++;
      if (next >= s->n_inputs) {
        rc = gpux__error(GPUX_E_INVALID, "%d values given, but there %s only %d input%s (%s)", n_inputs,
                         s->n_inputs == 1 ? "is" : "are", s->n_inputs, s->n_inputs == 1 ? "" : "s", names);
        break;
      }
      idx = next;
    }
    slot[idx] = in;
  }
  for (int i = 0; i < s->n_inputs && !rc; i++) {
    if (!slot[i]) {
      rc = gpux__error(GPUX_E_INVALID, "input '%s' is missing: it takes %s (--input %s=VALUE)", s->inputs[i].name,
                       accepts(s->inputs[i].type), s->inputs[i].name);
      break;
    }
    rc = prepare_one(a, &s->inputs[i], slot[i], out);
  }
  free(slot);
  if (rc) gpux__named_tensors_free(out);
  return rc;
}

/* ---- running ---- */

static int run_model(gpux_app *a, int step, const gpux__named_tensors *in, int by_position, gpux__named_tensors *out,
                     double *ms) {
  gpux_model *m = a->models[step];
  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m), given = 0;
  gpux_tensor *ins = gpux__calloc((size_t)n_in + 1, sizeof *ins);
  gpux_tensor *outs = gpux__calloc((size_t)n_out + 1, sizeof *outs);
  int rc = ins && outs ? 0 : GPUX_E_NOMEM;
  for (int i = 0; i < n_in && !rc; i++) {
    gpux_value_info vi;
    gpux_model_input_info(m, i, &vi);
    int j = nt_find(in, vi.name);
    if (j < 0 && by_position && i < in->n) j = i;
    if (j < 0) {
      if (vi.optional) { ins[i].kind = GPUX_KIND_NONE; continue; }
      rc = gpux__error(GPUX_E_INVALID, "model input '%s' has no value", vi.name);
      break;
    }
    ins[i] = in->t[j];                   /* borrowed */
    ins[i].owns_data = 0;
    given = i + 1;
  }
  if (!rc) {
    double t0 = gpux__now_ms();
    rc = gpux_session_run(a->sessions[step], ins, given, outs, n_out);
    *ms += gpux__now_ms() - t0;
  }
  memset(out, 0, sizeof *out);
  for (int i = 0; i < n_out && !rc; i++) {
    gpux_value_info vi;
    gpux_model_output_info(m, i, &vi);
    rc = nt_add(out, vi.name, &outs[i]);
  }
  for (int i = 0; outs && i < n_out; i++) gpux_tensor_free(&outs[i]);
  free(ins);
  free(outs);
  if (rc) gpux__named_tensors_free(out);
  return rc;
}

int gpux__app_infer(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *infer_ms) {
  double ms = 0;
  int rc;
  memset(out, 0, sizeof *out);
  if (a->spec->pipeline.mode == GPUX__PIPE_OPENWAKEWORD) {
    free(a->ww_scores);
    a->ww_scores = NULL;
    a->ww_n_scores = 0;
    if (in->n != 1) return gpux__error(GPUX_E_INVALID, "openwakeword takes one audio input");
    rc = gpux__wakeword_run(a->sessions, a->models, &a->spec->pipeline, &in->t[0], &a->ww_scores, &a->ww_n_scores, &ms);
    if (rc) return rc;
    float best = 0;
    for (int64_t i = 0; i < a->ww_n_scores; i++) best = i == 0 || a->ww_scores[i] > best ? a->ww_scores[i] : best;
    gpux_tensor t = {0};
    int64_t dims[2] = {1, 1};
    if ((rc = gpux_tensor_init(&t, GPUX_DT_FLOAT, 2, dims))) return rc;
    ((float *)t.data)[0] = best;
    rc = nt_add(out, a->spec->outputs[0].name, &t);
    gpux_tensor_free(&t);
    if (infer_ms) *infer_ms = ms;
    return rc;
  }
  gpux__named_tensors cur = {0};
  const gpux__named_tensors *src = in;
  for (int step = 0; step < a->n_models; step++) {
    gpux__named_tensors next;
    rc = run_model(a, step, src, step > 0, &next, &ms);
    gpux__named_tensors_free(&cur);
    if (rc) {
      if (a->n_models > 1) gpux__error_prefix(rc, "step '%s': ", a->spec->pipeline.steps[step].name);
      return rc;
    }
    cur = next;
    src = &cur;
  }
  *out = cur;
  if (infer_ms) *infer_ms = ms;
  return 0;
}

/* ---- answers ---- */

static cJSON *num_json(double v, int is_float) {
  char b[64];
  if (!isfinite(v)) return cJSON_CreateNull();
  if (is_float) snprintf(b, sizeof b, "%.7g", v);
  else snprintf(b, sizeof b, "%.17g", v);
  return cJSON_CreateRaw(b);
}

static cJSON *tensor_json(const char *name, const gpux_tensor *t) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", name);
  cJSON_AddStringToObject(o, "dtype", gpux_dtype_name(t->dtype));
  cJSON *sh = cJSON_AddArrayToObject(o, "shape");
  for (int i = 0; i < t->ndim; i++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->dims[i]));
  int64_t n = gpux_tensor_count(t);
  if (t->kind != GPUX_KIND_TENSOR) {
    cJSON_AddStringToObject(o, "kind", t->kind == GPUX_KIND_SEQUENCE ? "sequence" : "none");
    return o;
  }
  if (n > JSON_MAX_ELEMENTS) {
    cJSON_AddNullToObject(o, "data");
    cJSON_AddStringToObject(o, "data_omitted", "more than 100000 elements");
    return o;
  }
  cJSON *d = cJSON_AddArrayToObject(o, "data");
  int fl = gpux__dtype_is_float(t->dtype);
  for (int64_t i = 0; i < n; i++) {
    if (t->dtype == GPUX_DT_STRING) cJSON_AddItemToArray(d, cJSON_CreateString(((char **)t->data)[i] ? ((char **)t->data)[i] : ""));
    else if (t->dtype == GPUX_DT_BOOL) cJSON_AddItemToArray(d, cJSON_CreateBool(((uint8_t *)t->data)[i]));
    else cJSON_AddItemToArray(d, num_json(gpux__load_f64(t->dtype, t->data, i), fl));
  }
  return o;
}

static int post_one(gpux_app *a, int pi, const gpux_tensor *t, cJSON *oj, text_buf *text) {
  gpux__spec *s = a->spec;
  gpux__spec_post *p = &s->post[pi];
  gpux__post_config cfg = p->cfg;
  cfg.labels = a->post_labels[pi].n ? &a->post_labels[pi] : NULL;
  if (!cfg.labels && !cfg.ctc)
    for (int i = 0; i < s->n_outputs; i++)
      if (!strcmp(s->outputs[i].name, p->output) && a->io_labels && a->io_labels[i].n) cfg.labels = &a->io_labels[i];
  gpux__post_result r = {0};
  int rc = gpux__postprocess(&cfg, t, &r);
  if (rc) return gpux__error_prefix(rc, "postprocessing of '%s': ", p->output);
  int64_t classes = t->ndim ? t->dims[t->ndim - 1] : 1;
  if (cfg.ctc) {
    cJSON *texts = cJSON_AddArrayToObject(oj, "text");
    for (int64_t i = 0; i < r.n_rows; i++) {
      cJSON_AddItemToArray(texts, cJSON_CreateString(r.rows[i].text ? r.rows[i].text : ""));
      tb_printf(text, "%s\n", r.rows[i].text ? r.rows[i].text : "");
    }
    cJSON *conf = cJSON_AddArrayToObject(oj, "confidence");
    for (int64_t i = 0; i < r.n_rows; i++) cJSON_AddItemToArray(conf, num_json(r.rows[i].score, 1));
  } else {
    cJSON *rows = r.n_rows == 1 ? NULL : cJSON_AddArrayToObject(oj, "labels");
    for (int64_t i = 0; i < r.n_rows; i++) {
      cJSON *row = cJSON_CreateArray();
      for (int64_t k = 0; k < r.rows[i].n_items; k++) {
        const gpux__post_item *it = &r.rows[i].items[k];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "index", (double)it->index);
        if (it->label) cJSON_AddStringToObject(e, "label", it->label);
        cJSON_AddItemToObject(e, "score", num_json(it->score, 1));
        cJSON_AddItemToArray(row, e);
      }
      if (rows) cJSON_AddItemToArray(rows, row);
      else cJSON_AddItemToObject(oj, "labels", row);
    }
    if (cfg.has_threshold && classes == 1) {
      /* a detector: one score against a threshold */
      for (int64_t i = 0; i < r.n_rows; i++) {
        const char *label = cfg.labels && cfg.labels->n ? cfg.labels->items[0] : p->output;
        int hit = r.rows[i].n_items > 0;
        tb_printf(text, "%s: %s (score %.3f, threshold %.2f)\n", label, hit ? "detected" : "not detected",
                            r.rows[i].score, cfg.threshold);
        cJSON_AddBoolToObject(oj, "detected", hit);
      }
    } else {
      char *t_text = NULL;
      if (!(rc = gpux__post_result_text(&r, &t_text))) tb_printf(text, "%s", t_text);
      free(t_text);
    }
  }
  gpux__post_result_free(&r);
  return rc;
}

/* What a person reads when there is no postprocessing: each output's shape and first values. */
static void summary_text(const char *name, const gpux_tensor *t, text_buf *text) {
  char shape[256];
  gpux_tensor_describe(t, shape, sizeof shape);
  tb_printf(text, "%s %s:", name, shape);
  int64_t n = gpux_tensor_count(t), show = GPUX__MIN(n, 8);
  for (int64_t i = 0; i < show && t->kind == GPUX_KIND_TENSOR; i++) {
    if (t->dtype == GPUX_DT_STRING) tb_printf(text, " \"%s\"", ((char **)t->data)[i]);
    else tb_printf(text, " %.6g", gpux__load_f64(t->dtype, t->data, i));
  }
  tb_printf(text, "%s\n", n > show ? " ..." : "");
}

int gpux_app_run(gpux_app *a, const gpux_app_input *inputs, int n_inputs, char **result_json, char **result_text) {
  if (result_json) *result_json = NULL;
  if (result_text) *result_text = NULL;
  if (!a) return gpux__error(GPUX_E_INVALID, "no app");
  double t0 = gpux__now_ms(), infer = 0;
  gpux__named_tensors in, out;
  int rc = gpux__app_prepare(a, inputs, n_inputs, &in);
  if (rc) return rc;
  double t1 = gpux__now_ms();
  rc = gpux__app_infer(a, &in, &out, &infer);
  gpux__named_tensors_free(&in);
  if (rc) return rc;
  double t2 = gpux__now_ms();
  gpux__spec *s = a->spec;
  cJSON *root = cJSON_CreateObject(), *outs = cJSON_AddArrayToObject(root, "outputs");
  text_buf text = {0};
  int any_post = 0;
  for (int i = 0; i < out.n && !rc; i++) {
    cJSON *oj = tensor_json(out.names[i], &out.t[i]);
    cJSON_AddItemToArray(outs, oj);
    for (int pi = 0; pi < s->n_post && !rc; pi++)
      if (!strcmp(s->post[pi].output, out.names[i])) { rc = post_one(a, pi, &out.t[i], oj, &text); any_post = 1; }
  }
  if (!rc && !any_post)
    for (int i = 0; i < out.n; i++) summary_text(out.names[i], &out.t[i], &text);
  if (!rc && s->pipeline.mode == GPUX__PIPE_OPENWAKEWORD) {
    cJSON *sc = cJSON_AddArrayToObject(root, "scores");
    for (int64_t i = 0; i < a->ww_n_scores; i++) cJSON_AddItemToArray(sc, num_json(a->ww_scores[i], 1));
    cJSON_AddNumberToObject(root, "chunk_ms", (double)s->pipeline.chunk / 16.0);
  }
  double t3 = gpux__now_ms();
  cJSON *tm = cJSON_AddObjectToObject(root, "timings");
  cJSON_AddItemToObject(tm, "preprocess_ms", num_json(t1 - t0, 1));
  cJSON_AddItemToObject(tm, "inference_ms", num_json(infer, 1));
  cJSON_AddItemToObject(tm, "postprocess_ms", num_json(t3 - t2, 1));
  cJSON_AddItemToObject(tm, "total_ms", num_json(t3 - t0, 1));
  gpux__named_tensors_free(&out);
  if (!rc && result_json && !(*result_json = cJSON_PrintUnformatted(root))) rc = GPUX_E_NOMEM;
  cJSON_Delete(root);
  if (!rc && result_text) {
    tb_printf(&text, "%s", "");
    if (text.failed) rc = GPUX_E_NOMEM;
    else { *result_text = text.data; text.data = NULL; }
  }
  free(text.data);
  if (rc && result_json) { free(*result_json); *result_json = NULL; }
  return rc;
}

const char *gpux_app_describe(gpux_app *a) {
  if (!a) return NULL;
  if (a->describe) return a->describe;
  cJSON *spec = gpux__spec_to_json(a->spec);
  if (!spec) return NULL;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "reference", a->ref);
  if (a->spec->name) cJSON_AddStringToObject(o, "name", a->spec->name);
  if (a->spec->version) cJSON_AddStringToObject(o, "version", a->spec->version);
  if (a->spec->description) cJSON_AddStringToObject(o, "description", a->spec->description);
  cJSON_AddStringToObject(o, "backend", gpux_session_backend_name(a->sessions[0]));
  cJSON *ins = cJSON_DetachItemFromObject(spec, "inputs"), *i;
  cJSON_ArrayForEach(i, ins) {
    const cJSON *type = cJSON_GetObjectItem(i, "type");
    int t = 0;
    for (int k = 0; k < 4; k++) if (cJSON_IsString(type) && !strcmp(type->valuestring, gpux__io_type_name(k))) t = k;
    cJSON_AddStringToObject(i, "accepts", accepts(t));
  }
  cJSON_AddItemToObject(o, "inputs", ins);
  cJSON_AddItemToObject(o, "outputs", cJSON_DetachItemFromObject(spec, "outputs"));
  if (a->build_json) cJSON_AddItemToObject(o, "build", cJSON_Parse(a->build_json));
  cJSON_AddItemToObject(o, "load_ms", num_json(a->load_ms, 1));
  cJSON_Delete(spec);
  a->describe = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return a->describe;
}

/* ---- generated inputs for build's smoke run ---- */

static int synth_image(const gpux__spec_io *io, const gpux__image_config *c, void **png, size_t *len) {
  int w = 224, h = 224;
  int nhwc = c->layout == GPUX__LAYOUT_NHWC;
  if (c->resize == GPUX__RESIZE_EXACT) { w = c->width; h = c->height; }
  else if (c->resize == GPUX__RESIZE_HEIGHT) { h = c->height; w = c->height * 4; }
  else if (io->ndim == 4 && io->dims[nhwc ? 1 : 2] > 0 && io->dims[nhwc ? 2 : 3] > 0) {
    h = (int)io->dims[nhwc ? 1 : 2];
    w = (int)io->dims[nhwc ? 2 : 3];
  }
  gpux__image img = {0};
  int rc = gpux__image_alloc(&img, w, h, 3);
  if (rc) return rc;
  /* white, with a dark bar through the middle: something for a model to look at */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int dark = y > h / 3 && y < 2 * h / 3 && x > w / 8 && x < 7 * w / 8 && (x / 6) % 3 != 0;
      for (int k = 0; k < 3; k++) img.data[((size_t)y * w + x) * 3 + k] = dark ? 20 : 250;
    }
  rc = gpux__image_encode_png(&img, png, len);
  gpux__image_free(&img);
  return rc;
}

static int synth_wav(int rate, void **wav, size_t *len) {
  gpux__audio au = {.sample_rate = rate ? rate : 16000, .source_channels = 1, .source_bits = 16};
  au.n_samples = au.sample_rate;
  au.samples = gpux__malloc(sizeof(float) * (size_t)au.n_samples);
  if (!au.samples) return GPUX_E_NOMEM;
  uint32_t seed = 12345;
  for (int64_t i = 0; i < au.n_samples; i++) {
    seed = seed * 1664525u + 1013904223u;
    au.samples[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.01f;
  }
  int rc = gpux__wav_encode_pcm16(&au, wav, len);
  free(au.samples);
  return rc;
}

/* Zeros for a tensor input as JSON text (nested lists carry the shape): symbolic dimensions are
 * 1 for the first (batch) and `sym` for the others. */
static char *zeros_text(const gpux__spec_io *io, int64_t sym) {
  int ndim = io->ndim >= 0 ? io->ndim : 1;
  int64_t dims[GPUX_MAX_DIMS], n = 1;
  for (int i = 0; i < ndim; i++) {
    dims[i] = io->ndim >= 0 && io->dims[i] >= 0 ? io->dims[i] : i == 0 ? 1 : sym;
    n *= dims[i];
  }
  if (n > 1 << 26) return NULL;
  if (ndim == 0) return gpux__strdup("0");
  /* "[[0,0],[0,0]]": per element "0," plus brackets per row of every level */
  size_t len = (size_t)n * 2 + 4;
  int64_t rows = 1;
  for (int i = 0; i < ndim; i++) { rows *= dims[i]; len += (size_t)rows * 3; }
  char *s = gpux__malloc(len);
  if (!s) return NULL;
  size_t o = 0;
  int64_t idx[GPUX_MAX_DIMS] = {0};
  for (int i = 0; i < ndim; i++) s[o++] = '[';
  for (int64_t e = 0; e < n; e++) {
    s[o++] = '0';
    int level = ndim - 1;
    while (level >= 0 && ++idx[level] == dims[level]) { idx[level] = 0; s[o++] = ']'; level--; }
    if (level >= 0) {
      s[o++] = ',';
      for (int i = level + 1; i < ndim; i++) s[o++] = '[';
    }
  }
  if (n == 0) for (int i = 0; i < ndim; i++) s[o++] = ']';
  s[o] = 0;
  return s;
}

int gpux__app_smoke_inputs(gpux_app *a, int64_t sym, gpux_app_input **inputs, int *n_inputs, void ***owned,
                           cJSON *what) {
  gpux__spec *s = a->spec;
  *inputs = gpux__calloc((size_t)s->n_inputs + 1, sizeof **inputs);
  *owned = gpux__calloc((size_t)s->n_inputs + 1, sizeof **owned);
  *n_inputs = 0;
  if (!*inputs || !*owned) return GPUX_E_NOMEM;
  int rc = 0;
  for (int i = 0; i < s->n_inputs && !rc; i++) {
    const gpux__spec_io *io = &s->inputs[i];
    gpux_app_input *in = &(*inputs)[i];
    in->name = io->name;
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "name", io->name);
    cJSON_AddItemToArray(what, w);
    if (io->example) {
      char p[4096];
      gpux__spec_path(s, io->example, p, sizeof p);
      if (io->type == GPUX__IO_IMAGE || io->type == GPUX__IO_AUDIO || is_file(p)) {
        char *data;
        size_t len;
        if ((rc = read_whole(p, &data, &len))) {
          gpux__error_prefix(rc, "%s: key 'inputs[%d].example': ", s->file, i);
          break;
        }
        (*owned)[i] = data;
        in->bytes = data;
        in->len = len;
      } else {
        in->text = io->example;
      }
      cJSON_AddStringToObject(w, "source", "example");
      cJSON_AddStringToObject(w, "example", io->example);
      continue;
    }
    void *buf = NULL;
    size_t len = 0;
    switch (io->type) {
    case GPUX__IO_IMAGE:
      rc = synth_image(io, &s->image.cfg, &buf, &len);
      cJSON_AddStringToObject(w, "source", "generated image");
      break;
    case GPUX__IO_AUDIO:
      rc = synth_wav(s->audio.cfg.sample_rate, &buf, &len);
      cJSON_AddStringToObject(w, "source", "generated audio (1 s of quiet noise)");
      break;
    case GPUX__IO_STRING:
      in->text = "hello world";
      cJSON_AddStringToObject(w, "source", "generated text");
      break;
    default:
      if (io->dtype == GPUX_DT_STRING) { in->text = "hello world"; break; }
      if (!(buf = zeros_text(io, sym))) rc = gpux__error(GPUX_E_INVALID, "input '%s': too large to generate", io->name);
      len = buf ? strlen(buf) : 0;
      in->text = buf;
      buf = NULL;
      (*owned)[i] = (void *)in->text;
      if (sym == 1) cJSON_AddStringToObject(w, "source", "generated zeros (symbolic dimensions as 1)");
      else {
        char src[96];
        snprintf(src, sizeof src, "generated zeros (symbolic dimensions as 1 for the batch, %lld elsewhere)", (long long)sym);
        cJSON_AddStringToObject(w, "source", src);
      }
      break;
    }
    if (buf) {
      (*owned)[i] = buf;
      in->bytes = buf;
      in->len = len;
    }
  }
  *n_inputs = s->n_inputs;
  return rc;
}
