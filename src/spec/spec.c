/* spec.c — the GPUXfile converter: walks the document tree (tree.h) key by key into a gpux__spec,
 * rejecting unknown keys with the closest valid one, and writes the normalized spec back as JSON
 * for an image's config. Every message is one line: "FILE:LINE: key 'PATH': what is wrong". */
#include "spec/spec.h"
#include "spec/tree.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct {
  gpux__spec *s;
  const char *file;
} cv;

static int verr(cv *c, int err, int line, const char *key, const char *fmt, va_list ap) {
  char msg[700];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (line > 0 && key) return gpux__error(err, "%s:%d: key '%s': %s", c->file, line, key, msg);
  if (line > 0) return gpux__error(err, "%s:%d: %s", c->file, line, msg);
  if (key) return gpux__error(err, "%s: key '%s': %s", c->file, key, msg);
  return gpux__error(err, "%s: %s", c->file, msg);
}

static int GPUX__PRINTF(4, 5) err_at(cv *c, int line, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = verr(c, GPUX_E_PARSE, line, key, fmt, ap);
  va_end(ap);
  return rc;
}

static char *sdup(cv *c, const char *s) {
  return s ? gpux__arena_strndup(&c->s->arena, s, strlen(s)) : NULL;
}

char *gpux__spec_strdup(gpux__spec *s, const char *str) {
  return str ? gpux__arena_strndup(&s->arena, str, strlen(str)) : NULL;
}

/* ---- names ---- */

static void join_names(const char *const *names, char *buf, size_t len) {
  buf[0] = 0;
  size_t o = 0;
  for (int i = 0; names[i] && o < len; i++) o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
}

static const char *kind_name(const gpux__snode *n) {
  return n->kind == GPUX__SN_LIST ? "a list" : n->kind == GPUX__SN_MAP ? "a mapping" : "a value";
}

static void sub_key(char *buf, size_t len, const char *parent, const char *key) {
  if (parent && parent[0]) snprintf(buf, len, "%s.%s", parent, key);
  else snprintf(buf, len, "%s", key);
}

static int line_of(const gpux__snode *n, int fallback) { return n && n->line ? n->line : fallback; }

/* ---- the keys ----
 * Every mapping's allowed keys, in one place: the parser checks each mapping against its table,
 * and gpux__spec_known_keys lists them all (docs/gpuxfile.md must describe each; a test checks). */

static const char *const top_keys[] = {"name", "version", "description", "model", "inputs", "outputs",
                                       "preprocessing", "postprocessing", "pipeline", "generate", "runtime",
                                       "serving", "handler", NULL};
static const char *const model_keys[] = {"source", "format", "sha256", NULL};
static const char *const io_keys[] = {"name", "type", "dtype", "shape", "labels", "max_length",
                                      "example", "description", NULL};
static const char *const pre_keys[] = {"image", "audio", "tokenizer", NULL};
static const char *const image_keys[] = {"input", "channels", "color_order", "resize", "interpolation",
                                         "center_crop", "scale", "mean", "std", "pad_multiple",
                                         "pad_value", "layout", "dtype", NULL};
static const char *const resize_keys[] = {"width", "height", "shorter", "longer", "min_width", "max_width",
                                          "letterbox", "fill", NULL};
static const char *const wh_keys[] = {"width", "height", NULL};
static const char *const audio_keys[] = {"input", "sample_rate", "normalize", "length", "batch_dim",
                                         "features", "mel_bins", NULL};
static const char *const tokenizer_keys[] = {"type", "vocab", "lowercase", "strip_accents", "max_length",
                                             "padding", "truncation", "add_special_tokens", "input",
                                             "input_ids", "attention_mask", "token_type_ids", NULL};
static const char *const post_keys[] = {"output", "activation", "softmax", "sigmoid", "argmax", "top_k",
                                        "threshold", "labels", "ctc", "detect", "answer", NULL};
static const char *const detect_keys[] = {"format", "threshold", "iou", "max_detections", "scores", "normalized", NULL};
static const char *const answer_keys[] = {"label", "score", "scores", NULL};
static const char *const ctc_keys[] = {"charset", "blank", "add_space", "trim", NULL};
static const char *const pipeline_keys[] = {"mode", "steps", "chunk", "context", "window", "padding", NULL};
static const char *const generate_keys[] = {"max_new_tokens", "temperature", "top_k", "top_p",
                                            "repetition_penalty", "seed", "stop", "eos", "max_context", "language",
                                            "task", "decoder_start_token_id", "suppress_special", NULL};
static const char *const step_keys[] = {"name", "model", NULL};
static const char *const runtime_keys[] = {"backend", "gpu", "precision", "threads", NULL};
static const char *const gpu_keys[] = {"memory", NULL};
static const char *const serving_keys[] = {"port", "max_batch_size", "max_queue_delay_ms", "timeout", NULL};
static const char *const handler_keys[] = {"file", "requirements", "timeout", "workers", "memory", "example", NULL};

/* Where each table applies, as the dotted path of its mapping ("[]": each entry of a list). A
 * table the parser checks must be listed here: check_keys refuses one that is not. */
static const struct {
  const char *path;
  const char *const *keys;
} key_tables[] = {
  {"", top_keys},
  {"model", model_keys},
  {"inputs[]", io_keys},
  {"outputs[]", io_keys},
  {"preprocessing", pre_keys},
  {"preprocessing.image", image_keys},
  {"preprocessing.image.resize", resize_keys},
  {"preprocessing.image.center_crop", wh_keys},
  {"preprocessing.audio", audio_keys},
  {"preprocessing.tokenizer", tokenizer_keys},
  {"postprocessing", post_keys},
  {"postprocessing.ctc", ctc_keys},
  {"postprocessing.detect", detect_keys},
  {"postprocessing.answer", answer_keys},
  {"pipeline", pipeline_keys},
  {"pipeline.steps[]", step_keys},
  {"generate", generate_keys},
  {"pipeline.steps[].model", model_keys},
  {"runtime", runtime_keys},
  {"runtime.gpu", gpu_keys},
  {"serving", serving_keys},
  {"handler", handler_keys},
};

int gpux__spec_known_keys(void (*fn)(const char *path, void *ctx), void *ctx) {
  int n = 0;
  for (size_t t = 0; t < GPUX__ARRAY_LEN(key_tables); t++)
    for (int i = 0; key_tables[t].keys[i]; i++, n++) {
      char path[256];
      sub_key(path, sizeof path, key_tables[t].path, key_tables[t].keys[i]);
      if (fn) fn(path, ctx);
    }
  return n;
}

/* Every key of a mapping must be in `allowed`. */
static int check_keys(cv *c, const gpux__snode *map, const char *path, const char *const *allowed) {
  size_t t = 0;
  while (t < GPUX__ARRAY_LEN(key_tables) && key_tables[t].keys != allowed) t++;
  if (t == GPUX__ARRAY_LEN(key_tables)) return gpux__error(GPUX_E_INTERNAL, "spec: the keys of '%s' are not in key_tables", path);
  for (int i = 0; i < map->n; i++) {
    int ok = 0;
    for (int j = 0; allowed[j] && !ok; j++) ok = !strcmp(map->keys[i], allowed[j]);
    if (ok) continue;
    char key[256];
    sub_key(key, sizeof key, path, map->keys[i]);
    const char *near = gpux__closest_name(map->keys[i], allowed);
    int line = map->key_lines[i] ? map->key_lines[i] : line_of(map->items[i], map->line);
    if (near) return err_at(c, line, key, "unknown key (did you mean '%s'?)", near);
    char list[600];
    join_names(allowed, list, sizeof list);
    return err_at(c, line, key, "unknown key (valid here: %s)", list);
  }
  return 0;
}

static int want_map(cv *c, const gpux__snode *n, int line, const char *key) {
  if (n->kind != GPUX__SN_MAP) return err_at(c, line_of(n, line), key, "expected a mapping (key: value lines), got %s", kind_name(n));
  return 0;
}

static int want_scalar(cv *c, const gpux__snode *n, int line, const char *key, const char *what) {
  if (n->kind != GPUX__SN_SCALAR) return err_at(c, line_of(n, line), key, "expected %s, got %s", what, kind_name(n));
  if (gpux__tree_is_null(n)) return err_at(c, line_of(n, line), key, "expected %s, got nothing", what);
  return 0;
}

static int get_str(cv *c, const gpux__snode *n, int line, const char *key, char **out) {
  int rc = want_scalar(c, n, line, key, "a string");
  if (rc) return rc;
  return (*out = sdup(c, n->str)) ? 0 : GPUX_E_NOMEM;
}

static int get_int(cv *c, const gpux__snode *n, int line, const char *key, int64_t min, int64_t max,
                   int64_t *out) {
  int rc = want_scalar(c, n, line, key, "a whole number");
  if (rc) return rc;
  char *end;
  errno = 0;
  long long v = strtoll(n->str, &end, 10);
  if (errno || end == n->str || *end) return err_at(c, line_of(n, line), key, "'%s' is not a whole number", n->str);
  if (v < min || v > max) {
    if (max == INT64_MAX) return err_at(c, line_of(n, line), key, "%lld is out of range (at least %lld)", v, (long long)min);
    return err_at(c, line_of(n, line), key, "%lld is out of range (%lld to %lld)", v, (long long)min, (long long)max);
  }
  *out = v;
  return 0;
}

static int get_int32(cv *c, const gpux__snode *n, int line, const char *key, int64_t min, int64_t max, int *out) {
  int64_t v;
  int rc = get_int(c, n, line, key, min, max, &v);
  if (!rc) *out = (int)v;
  return rc;
}

static int get_num(cv *c, const gpux__snode *n, int line, const char *key, double *out) {
  int rc = want_scalar(c, n, line, key, "a number");
  if (rc) return rc;
  char *end;
  errno = 0;
  double v = strtod(n->str, &end);
  if (errno || end == n->str || *end || !isfinite(v)) return err_at(c, line_of(n, line), key, "'%s' is not a number", n->str);
  *out = v;
  return 0;
}

static int get_float(cv *c, const gpux__snode *n, int line, const char *key, float *out) {
  double v;
  int rc = get_num(c, n, line, key, &v);
  if (!rc) *out = (float)v;
  return rc;
}

static int get_bool(cv *c, const gpux__snode *n, int line, const char *key, int *out) {
  int rc = want_scalar(c, n, line, key, "true or false");
  if (rc) return rc;
  static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", NULL};
  static const char *const no[] = {"false", "False", "FALSE", "no", "No", "off", NULL};
  for (int i = 0; yes[i]; i++) if (!strcmp(n->str, yes[i])) { *out = 1; return 0; }
  for (int i = 0; no[i]; i++) if (!strcmp(n->str, no[i])) { *out = 0; return 0; }
  return err_at(c, line_of(n, line), key, "'%s' is not true or false", n->str);
}

static int get_enum(cv *c, const gpux__snode *n, int line, const char *key, const char *const *names,
                    int *out) {
  int rc = want_scalar(c, n, line, key, "a name");
  if (rc) return rc;
  for (int i = 0; names[i]; i++)
    if (!strcasecmp(n->str, names[i])) { *out = i; return 0; }
  char list[400];
  join_names(names, list, sizeof list);
  const char *near = gpux__closest_name(n->str, names);
  if (near) return err_at(c, line_of(n, line), key, "'%s' is not one of %s (did you mean '%s'?)", n->str, list, near);
  return err_at(c, line_of(n, line), key, "'%s' is not one of %s", n->str, list);
}

/* ---- dtypes, sizes ---- */

int gpux__dtype_from_name(const char *name) {
  static const struct { const char *name; int dtype; } aliases[] = {
    {"float", GPUX_DT_FLOAT}, {"fp32", GPUX_DT_FLOAT}, {"f32", GPUX_DT_FLOAT},
    {"half", GPUX_DT_FLOAT16}, {"fp16", GPUX_DT_FLOAT16}, {"f16", GPUX_DT_FLOAT16},
    {"double", GPUX_DT_DOUBLE}, {"fp64", GPUX_DT_DOUBLE}, {"f64", GPUX_DT_DOUBLE},
    {"bf16", GPUX_DT_BFLOAT16}, {"int", GPUX_DT_INT32}, {"long", GPUX_DT_INT64},
    {"boolean", GPUX_DT_BOOL}, {"str", GPUX_DT_STRING},
  };
  if (!name) return -1;
  for (int d = 1; d < GPUX_DT_COUNT; d++)
    if (!strcasecmp(name, gpux_dtype_name(d))) return d;
  for (size_t i = 0; i < GPUX__ARRAY_LEN(aliases); i++)
    if (!strcasecmp(name, aliases[i].name)) return aliases[i].dtype;
  return -1;
}

int64_t gpux__parse_size(const char *s) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0 || !isfinite(v)) return -1;
  while (*end == ' ') end++;
  static const struct { const char *unit; double mul; } units[] = {
    {"", 1}, {"b", 1}, {"k", 1e3}, {"kb", 1e3}, {"kib", 1024.0}, {"m", 1e6}, {"mb", 1e6},
    {"mib", 1048576.0}, {"g", 1e9}, {"gb", 1e9}, {"gib", 1073741824.0}, {"t", 1e12},
    {"tb", 1e12}, {"tib", 1099511627776.0},
  };
  for (size_t i = 0; i < GPUX__ARRAY_LEN(units); i++)
    if (!strcasecmp(end, units[i].unit)) {
      double b = v * units[i].mul;
      return b > 9e18 ? -1 : (int64_t)llround(b);
    }
  return -1;
}

/* "30", "30s", "500ms", "2m" -> seconds; -1 when malformed. */
static double parse_duration(const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0 || !isfinite(v)) return -1;
  if (!*end || !strcmp(end, "s")) return v;
  if (!strcmp(end, "ms")) return v / 1000;
  if (!strcmp(end, "m") || !strcmp(end, "min")) return v * 60;
  if (!strcmp(end, "h")) return v * 3600;
  return -1;
}

const char *gpux__io_type_name(int type) {
  static const char *const names[] = {"tensor", "image", "audio", "string"};
  return type >= 0 && type < 4 ? names[type] : "unknown";
}

/* ---- model sources ---- */

static int parse_source(cv *c, gpux__spec_model *m, int line, const char *key) {
  const char *src = m->source;
  if (!strncmp(src, "https://", 8) || !strncmp(src, "http://", 7)) {
    const char *host = strstr(src, "://") + 3;
    if (!*host || *host == '/') return err_at(c, line, key, "'%s' is not a URL (no host)", src);
    m->kind = GPUX__SRC_URL;
    m->path = NULL;
    return 0;
  }
  if (!strncmp(src, "hf:", 3)) {
    /* hf:OWNER/REPO/FILE[@REVISION]: at least two slashes, nothing empty */
    const char *p = src + 3, *at = strchr(p, '@');
    size_t plen = at ? (size_t)(at - p) : strlen(p);
    int slashes = 0, empty = plen == 0 || p[0] == '/' || p[plen - 1] == '/';
    for (size_t i = 0; i < plen; i++) {
      if (p[i] == '/') { slashes++; if (i + 1 < plen && p[i + 1] == '/') empty = 1; }
      if (p[i] == '?' || p[i] == '#' || p[i] == ' ') empty = 1;
    }
    if (slashes < 2 || empty || (at && !at[1]) || strstr(p, ".."))
      return err_at(c, line, key, "'%s' is not hf:OWNER/REPO/FILE[@REVISION]", src);
    m->kind = GPUX__SRC_HF;
    m->path = NULL;
    return 0;
  }
  m->kind = GPUX__SRC_FILE;
  m->path = m->source;
  return 0;
}

static int is_hex64(const char *s) {
  if (!strncmp(s, "sha256:", 7)) s += 7;
  if (strlen(s) != 64) return 0;
  for (int i = 0; i < 64; i++) if (!isxdigit((unsigned char)s[i])) return 0;
  return 1;
}

static int parse_model(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_model *m) {
  memset(m, 0, sizeof *m);
  m->line = line_of(n, line);
  int rc;
  if (n->kind == GPUX__SN_SCALAR) {
    if ((rc = get_str(c, n, line, key, &m->source))) return rc;
    return parse_source(c, m, m->line, key);
  }
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, model_keys))) return rc;
  char k[256];
  int kl;
  const gpux__snode *v = gpux__tree_get(n, "source", &kl);
  sub_key(k, sizeof k, key, "source");
  if (!v) return err_at(c, m->line, k, "missing (a path, an https:// URL or hf:OWNER/REPO/FILE)");
  if ((rc = get_str(c, v, kl, k, &m->source)) || (rc = parse_source(c, m, kl, k))) return rc;
  if ((v = gpux__tree_get(n, "format", &kl))) {
    static const char *const formats[] = {"onnx", NULL};
    int f;
    sub_key(k, sizeof k, key, "format");
    if ((rc = get_enum(c, v, kl, k, formats, &f))) return rc;
  }
  if ((v = gpux__tree_get(n, "sha256", &kl))) {
    sub_key(k, sizeof k, key, "sha256");
    if ((rc = get_str(c, v, kl, k, &m->sha256))) return rc;
    if (!is_hex64(m->sha256)) return err_at(c, kl, k, "'%s' is not 64 hex digits", m->sha256);
    if (!strncmp(m->sha256, "sha256:", 7)) m->sha256 += 7;
    for (char *p = m->sha256; *p; p++) *p = (char)tolower((unsigned char)*p);
  }
  return 0;
}

/* ---- inputs / outputs ---- */

static int parse_labels(cv *c, const gpux__snode *n, int line, const char *key, char ***labels,
                        int64_t *n_labels, char **file) {
  if (n->kind == GPUX__SN_SCALAR) return get_str(c, n, line, key, file);
  if (n->kind != GPUX__SN_LIST) return err_at(c, line_of(n, line), key, "expected a list of labels or a file name, got %s", kind_name(n));
  if (n->n == 0) return err_at(c, line_of(n, line), key, "the list of labels is empty");
  *labels = gpux__arena_alloc(&c->s->arena, sizeof **labels * (size_t)n->n);
  if (!*labels) return GPUX_E_NOMEM;
  for (int i = 0; i < n->n; i++) {
    const gpux__snode *it = n->items[i];
    if (it->kind != GPUX__SN_SCALAR) return err_at(c, line_of(it, line), key, "label %d is %s, not a name", i, kind_name(it));
    if (!((*labels)[i] = sdup(c, it->str))) return GPUX_E_NOMEM;
  }
  *n_labels = n->n;
  return 0;
}

static int parse_shape(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_io *io) {
  if (n->kind != GPUX__SN_LIST) return err_at(c, line_of(n, line), key, "expected a list of dimensions like [1, 3, H, W], got %s", kind_name(n));
  if (n->n > GPUX_MAX_DIMS) return err_at(c, line_of(n, line), key, "rank %d is above the supported %d", n->n, GPUX_MAX_DIMS);
  for (int i = 0; i < n->n; i++) {
    const gpux__snode *d = n->items[i];
    if (d->kind != GPUX__SN_SCALAR) return err_at(c, line_of(d, line), key, "dimension %d is %s", i, kind_name(d));
    io->dim_names[i] = NULL;
    if (gpux__tree_is_null(d) || !strcmp(d->str, "?") || !strcmp(d->str, "-1")) {
      io->dims[i] = -1;
      continue;
    }
    char *end;
    errno = 0;
    long long v = strtoll(d->str, &end, 10);
    if (!errno && end != d->str && !*end) {
      if (v < 0) return err_at(c, line_of(d, line), key, "dimension %d is negative (%lld); use a name for a symbolic one", i, v);
      io->dims[i] = v;
      continue;
    }
    /* a symbol: a letter or underscore, then letters, digits, _ . - */
    int ok = isalpha((unsigned char)d->str[0]) || d->str[0] == '_';
    for (const char *p = d->str; *p && ok; p++)
      ok = isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-';
    if (!ok) return err_at(c, line_of(d, line), key, "dimension %d '%s' is neither a number nor a name", i, d->str);
    io->dims[i] = -1;
    if (!(io->dim_names[i] = sdup(c, d->str))) return GPUX_E_NOMEM;
  }
  io->ndim = n->n;
  return 0;
}

static const char *const io_types[] = {"tensor", "image", "audio", "string", "text", NULL};

static int parse_io(cv *c, const gpux__snode *n, int line, const char *key, const char *name,
                    gpux__spec_io *io) {
  memset(io, 0, sizeof *io);
  io->ndim = -1;
  io->declared = 1;
  io->line = line_of(n, line);
  int rc, kl;
  char k[256];
  if (name && !(io->name = sdup(c, name))) return GPUX_E_NOMEM;
  if (name && n->kind == GPUX__SN_SCALAR) {   /* inputs: {x: image} */
    if ((rc = get_enum(c, n, line, key, io_types, &io->type))) return rc;
    if (io->type == 4) io->type = GPUX__IO_STRING;
    return 0;
  }
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, io_keys))) return rc;
  const gpux__snode *v;
  if (!name) {
    sub_key(k, sizeof k, key, "name");
    if (!(v = gpux__tree_get(n, "name", &kl))) return err_at(c, io->line, k, "missing (every input and output needs a name)");
    if ((rc = get_str(c, v, kl, k, &io->name))) return rc;
    io->name_line = kl;
  } else if ((v = gpux__tree_get(n, "name", &kl))) {
    return err_at(c, kl, key, "the name is given by the key already");
  }
  if ((v = gpux__tree_get(n, "type", &kl))) {
    sub_key(k, sizeof k, key, "type");
    if ((rc = get_enum(c, v, kl, k, io_types, &io->type))) return rc;
    if (io->type == 4) io->type = GPUX__IO_STRING;
  }
  if ((v = gpux__tree_get(n, "dtype", &kl))) {
    sub_key(k, sizeof k, key, "dtype");
    if ((rc = want_scalar(c, v, kl, k, "a data type name"))) return rc;
    int d = gpux__dtype_from_name(v->str);
    if (d < 0) {
      static const char *const common[] = {"float32", "float16", "float64", "bfloat16", "int8", "int16", "int32",
                                           "int64", "uint8", "uint16", "uint32", "uint64", "bool", "string", NULL};
      const char *near = gpux__closest_name(v->str, common);
      if (near) return err_at(c, kl, k, "unknown data type '%s' (did you mean '%s'?)", v->str, near);
      return err_at(c, kl, k, "unknown data type '%s' (float32, float16, int64, int32, uint8, bool, string, ...)", v->str);
    }
    io->dtype = d;
    io->dtype_line = kl;
  }
  if ((v = gpux__tree_get(n, "shape", &kl))) {
    sub_key(k, sizeof k, key, "shape");
    if ((rc = parse_shape(c, v, kl, k, io))) return rc;
    io->shape_line = kl;
  }
  if ((v = gpux__tree_get(n, "labels", &kl))) {
    sub_key(k, sizeof k, key, "labels");
    if ((rc = parse_labels(c, v, kl, k, &io->labels, &io->n_labels, &io->labels_file))) return rc;
  }
  if ((v = gpux__tree_get(n, "max_length", &kl))) {
    sub_key(k, sizeof k, key, "max_length");
    if ((rc = get_int(c, v, kl, k, 1, 1 << 24, &io->max_length))) return rc;
  }
  if ((v = gpux__tree_get(n, "example", &kl))) {
    sub_key(k, sizeof k, key, "example");
    if ((rc = get_str(c, v, kl, k, &io->example))) return rc;
  }
  if ((v = gpux__tree_get(n, "description", &kl))) {
    sub_key(k, sizeof k, key, "description");
    if ((rc = get_str(c, v, kl, k, &io->description))) return rc;
  }
  return 0;
}

static int parse_io_list(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_io **out,
                         int *count) {
  int rc;
  char k[256];
  if (n->kind == GPUX__SN_SCALAR && gpux__tree_is_null(n)) return 0;
  if (n->kind == GPUX__SN_SCALAR)
    return err_at(c, line_of(n, line), key, "expected a list of entries with a name, or a mapping name: {...}");
  *out = gpux__arena_alloc(&c->s->arena, sizeof **out * (size_t)(n->n + 1));
  if (!*out) return GPUX_E_NOMEM;
  for (int i = 0; i < n->n; i++) {
    if (n->kind == GPUX__SN_LIST) {
      snprintf(k, sizeof k, "%s[%d]", key, i);
      rc = parse_io(c, n->items[i], line_of(n->items[i], line), k, NULL, &(*out)[i]);
    } else {
      snprintf(k, sizeof k, "%s.%s", key, n->keys[i]);
      rc = parse_io(c, n->items[i], n->key_lines[i] ? n->key_lines[i] : line, k, n->keys[i], &(*out)[i]);
    }
    if (rc) return rc;
    for (int j = 0; j < i; j++)
      if (!strcmp((*out)[j].name, (*out)[i].name))
        return err_at(c, (*out)[i].line, k, "'%s' is declared twice", (*out)[i].name);
  }
  *count = n->n;
  return 0;
}

/* ---- preprocessing ---- */

static void image_defaults(gpux__image_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->channels = 3;
  cfg->resize = GPUX__RESIZE_NONE;
  cfg->interp = GPUX__INTERP_BILINEAR;
  cfg->scale = 255.0f;
  for (int i = 0; i < 4; i++) { cfg->mean[i] = 0.0f; cfg->std[i] = 1.0f; }
  cfg->layout = GPUX__LAYOUT_NCHW;
  cfg->dtype = GPUX_DT_FLOAT;
  cfg->fill[0] = cfg->fill[1] = cfg->fill[2] = 114;
}

static void audio_defaults(gpux__audio_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->normalize = GPUX__AUDIO_NORM_NONE;
  cfg->add_batch_dim = 1;
}

static void tokenizer_defaults(gpux__spec_tokenizer *t) {
  t->wordpiece.lowercase = 1;
  t->wordpiece.strip_accents = -1;
  t->wordpiece.split_cjk = 1;
  t->wordpiece.max_chars_per_word = 100;
  t->encode.add_special_tokens = 1;
  t->encode.max_length = 0;
  t->encode.padding = GPUX__PAD_NONE;
  t->encode.truncation = 1;
}

static void post_defaults(gpux__post_config *p) {
  memset(p, 0, sizeof *p);
  p->activation = GPUX__ACT_NONE;
  p->ctc_blank = 0;
  p->ctc_trim = 1;
}

static int parse_wh(cv *c, const gpux__snode *n, int line, const char *key, int *w, int *h) {
  int rc, kl;
  int64_t v;
  char k[256];
  if (n->kind == GPUX__SN_SCALAR) {
    if ((rc = get_int(c, n, line, key, 1, 1 << 16, &v))) return rc;
    *w = *h = (int)v;
    return 0;
  }
  if (n->kind == GPUX__SN_LIST) {
    if (n->n != 2) return err_at(c, line_of(n, line), key, "expected [width, height]");
    if ((rc = get_int32(c, n->items[0], line, key, 1, 1 << 16, w))) return rc;
    return get_int32(c, n->items[1], line, key, 1, 1 << 16, h);
  }
  if ((rc = check_keys(c, n, key, wh_keys))) return rc;
  const gpux__snode *a = gpux__tree_get(n, "width", &kl), *b;
  if (!a) { sub_key(k, sizeof k, key, "width"); return err_at(c, line_of(n, line), k, "missing"); }
  sub_key(k, sizeof k, key, "width");
  if ((rc = get_int32(c, a, kl, k, 1, 1 << 16, w))) return rc;
  if (!(b = gpux__tree_get(n, "height", &kl))) { sub_key(k, sizeof k, key, "height"); return err_at(c, line_of(n, line), k, "missing"); }
  sub_key(k, sizeof k, key, "height");
  return get_int32(c, b, kl, k, 1, 1 << 16, h);
}

static int parse_resize(cv *c, const gpux__snode *n, int line, const char *key, gpux__image_config *cfg) {
  int rc, kl;
  char k[256];
  if (n->kind == GPUX__SN_SCALAR) {          /* resize: 256 = shorter side */
    cfg->resize = GPUX__RESIZE_SHORTER;
    return get_int32(c, n, line, key, 1, 1 << 16, &cfg->size);
  }
  if (n->kind == GPUX__SN_LIST) {
    cfg->resize = GPUX__RESIZE_EXACT;
    return parse_wh(c, n, line, key, &cfg->width, &cfg->height);
  }
  if ((rc = check_keys(c, n, key, resize_keys))) return rc;
  const gpux__snode *w = gpux__tree_get(n, "width", NULL), *h = gpux__tree_get(n, "height", NULL);
  const gpux__snode *sh = gpux__tree_get(n, "shorter", NULL), *lo = gpux__tree_get(n, "longer", NULL);
  const gpux__snode *lb = gpux__tree_get(n, "letterbox", &kl);
  int modes = (w || h) + !!sh + !!lo + !!lb;
  if (modes != 1)
    return err_at(c, line_of(n, line), key, "give one of {width, height}, {height} (keep aspect), {shorter}, {longer} or {letterbox}");
  const gpux__snode *v;
  if (lb) {
    cfg->resize = GPUX__RESIZE_LETTERBOX;
    sub_key(k, sizeof k, key, "letterbox");
    if ((rc = parse_wh(c, lb, kl, k, &cfg->width, &cfg->height))) return rc;
  } else if (sh || lo) {
    cfg->resize = sh ? GPUX__RESIZE_SHORTER : GPUX__RESIZE_LONGER;
    v = gpux__tree_get(n, sh ? "shorter" : "longer", &kl);
    sub_key(k, sizeof k, key, sh ? "shorter" : "longer");
    if ((rc = get_int32(c, v, kl, k, 1, 1 << 16, &cfg->size))) return rc;
  } else if (w && h) {
    cfg->resize = GPUX__RESIZE_EXACT;
    if ((rc = parse_wh(c, n, line, key, &cfg->width, &cfg->height))) return rc;
  } else if (h) {
    cfg->resize = GPUX__RESIZE_HEIGHT;
    v = gpux__tree_get(n, "height", &kl);
    sub_key(k, sizeof k, key, "height");
    if ((rc = get_int32(c, v, kl, k, 1, 1 << 16, &cfg->height))) return rc;
  } else {
    sub_key(k, sizeof k, key, "height");
    return err_at(c, line_of(n, line), k, "missing (width alone is not a resize; give height too, or only height to keep the aspect)");
  }
  const gpux__snode *fill = gpux__tree_get(n, "fill", &kl);
  if (fill) {
    sub_key(k, sizeof k, key, "fill");
    if (cfg->resize != GPUX__RESIZE_LETTERBOX) return err_at(c, kl, k, "only with {letterbox} (the colour of its borders)");
    const gpux__snode *one[1] = {fill};
    const gpux__snode *const *items = fill->kind == GPUX__SN_LIST ? (const gpux__snode *const *)fill->items : one;
    int count = fill->kind == GPUX__SN_LIST ? fill->n : 1;
    if (count != 1 && count != 3) return err_at(c, kl, k, "expected a pixel value 0 to 255, or [r, g, b]");
    for (int i = 0; i < 3; i++) {
      int px;
      if ((rc = get_int32(c, items[count == 1 ? 0 : i], kl, k, 0, 255, &px))) return rc;
      cfg->fill[i] = (uint8_t)px;
    }
  }
  const gpux__snode *mw = gpux__tree_get(n, "min_width", &kl);
  if (mw) {
    sub_key(k, sizeof k, key, "min_width");
    if (cfg->resize != GPUX__RESIZE_HEIGHT) return err_at(c, kl, k, "only with {height} (aspect-keeping resize)");
    if ((rc = get_int32(c, mw, kl, k, 0, 1 << 16, &cfg->min_width))) return rc;
  }
  if ((mw = gpux__tree_get(n, "max_width", &kl))) {
    sub_key(k, sizeof k, key, "max_width");
    if (cfg->resize != GPUX__RESIZE_HEIGHT) return err_at(c, kl, k, "only with {height} (aspect-keeping resize)");
    if ((rc = get_int32(c, mw, kl, k, 0, 1 << 16, &cfg->max_width))) return rc;
  }
  return 0;
}

static int parse_channel_values(cv *c, const gpux__snode *n, int line, const char *key, float out[4]) {
  int rc;
  if (n->kind == GPUX__SN_SCALAR) {
    float v;
    if ((rc = get_float(c, n, line, key, &v))) return rc;
    for (int i = 0; i < 4; i++) out[i] = v;
    return 0;
  }
  if (n->kind != GPUX__SN_LIST || n->n < 1 || n->n > 4)
    return err_at(c, line_of(n, line), key, "expected a number or a list of one per channel");
  for (int i = 0; i < n->n; i++)
    if ((rc = get_float(c, n->items[i], line, key, &out[i]))) return rc;
  for (int i = n->n; i < 4; i++) out[i] = out[n->n - 1];
  return 0;
}

static const char *const interp_names[] = {"bilinear", "nearest", "bilinear_aa", NULL};
static const char *const layout_names[] = {"NCHW", "NHWC", NULL};
static const char *const color_names[] = {"rgb", "bgr", "gray", NULL};

static int parse_image(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_image *im) {
  int rc, kl;
  char k[256];
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, image_keys))) return rc;
  im->present = 1;
  im->line = line_of(n, line);
  gpux__image_config *cfg = &im->cfg;
  image_defaults(cfg);
  for (int i = 0; i < n->n; i++) {
    const char *name = n->keys[i];
    const gpux__snode *v = n->items[i];
    kl = n->key_lines[i] ? n->key_lines[i] : line;
    sub_key(k, sizeof k, key, name);
    if (!strcmp(name, "input")) rc = get_str(c, v, kl, k, &im->input);
    else if (!strcmp(name, "channels")) {
      rc = get_int32(c, v, kl, k, 1, 3, &cfg->channels);
      if (!rc && cfg->channels == 2) rc = err_at(c, kl, k, "2 is not 1 (gray) or 3 (color)");
    } else if (!strcmp(name, "color_order")) {
      int co;
      if (!(rc = get_enum(c, v, kl, k, color_names, &co))) {
        if (co == 2) cfg->channels = 1;
        else cfg->bgr = co == 1;
      }
    } else if (!strcmp(name, "resize")) rc = parse_resize(c, v, kl, k, cfg);
    else if (!strcmp(name, "interpolation")) rc = get_enum(c, v, kl, k, interp_names, &cfg->interp);
    else if (!strcmp(name, "center_crop")) rc = parse_wh(c, v, kl, k, &cfg->crop_width, &cfg->crop_height);
    else if (!strcmp(name, "scale")) {
      rc = get_float(c, v, kl, k, &cfg->scale);
      if (!rc && cfg->scale == 0) rc = err_at(c, kl, k, "must not be 0 (pixels are divided by it)");
    } else if (!strcmp(name, "mean")) rc = parse_channel_values(c, v, kl, k, cfg->mean);
    else if (!strcmp(name, "std")) {
      rc = parse_channel_values(c, v, kl, k, cfg->std);
      for (int j = 0; !rc && j < 4; j++)
        if (cfg->std[j] == 0) rc = err_at(c, kl, k, "must not be 0 (values are divided by it)");
    } else if (!strcmp(name, "pad_multiple")) rc = get_int32(c, v, kl, k, 0, 4096, &cfg->pad_multiple);
    else if (!strcmp(name, "pad_value")) rc = get_float(c, v, kl, k, &cfg->pad_value);
    else if (!strcmp(name, "layout")) rc = get_enum(c, v, kl, k, layout_names, &cfg->layout);
    else if (!strcmp(name, "dtype")) {
      if (!(rc = want_scalar(c, v, kl, k, "float32 or uint8"))) {
        int d = gpux__dtype_from_name(v->str);
        if (d != GPUX_DT_FLOAT && d != GPUX_DT_UINT8) rc = err_at(c, kl, k, "'%s' is not float32 or uint8", v->str);
        else cfg->dtype = d;
      }
    }
    if (rc) return rc;
  }
  if (cfg->bgr && cfg->channels == 1) return err_at(c, im->line, key, "color_order bgr needs 3 channels");
  if ((rc = gpux__image_config_check(cfg))) return err_at(c, im->line, key, "%s", gpux_last_error());
  return 0;
}

static const char *const norm_names[] = {"none", "int16", "peak", NULL};
static const char *const feature_names[] = {"none", "whisper", NULL};

static int parse_audio(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_audio *au) {
  int rc, kl;
  char k[256];
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, audio_keys))) return rc;
  au->present = 1;
  au->line = line_of(n, line);
  audio_defaults(&au->cfg);
  for (int i = 0; i < n->n; i++) {
    const char *name = n->keys[i];
    const gpux__snode *v = n->items[i];
    kl = n->key_lines[i] ? n->key_lines[i] : line;
    sub_key(k, sizeof k, key, name);
    if (!strcmp(name, "input")) rc = get_str(c, v, kl, k, &au->input);
    else if (!strcmp(name, "sample_rate")) rc = get_int32(c, v, kl, k, 1000, 384000, &au->cfg.sample_rate);
    else if (!strcmp(name, "normalize")) rc = get_enum(c, v, kl, k, norm_names, &au->cfg.normalize);
    else if (!strcmp(name, "length")) rc = get_int(c, v, kl, k, 0, (int64_t)1 << 34, &au->cfg.length);
    else if (!strcmp(name, "features")) rc = get_enum(c, v, kl, k, feature_names, &au->cfg.features);
    else if (!strcmp(name, "mel_bins")) rc = get_int32(c, v, kl, k, 1, GPUX__WHISPER_MAX_BINS, &au->cfg.mel_bins);
    else rc = get_bool(c, v, kl, k, &au->cfg.add_batch_dim);
    if (rc) return rc;
  }
  if (au->cfg.features == GPUX__AUDIO_FEATURES_WHISPER && !au->cfg.sample_rate) au->cfg.sample_rate = GPUX__WHISPER_RATE;
  if ((rc = gpux__audio_config_check(&au->cfg))) return err_at(c, au->line, key, "%s", gpux_last_error());
  return 0;
}

static const char *const tok_names[] = {"auto", "wordpiece", "bpe", NULL};
static const char *const pad_names[] = {"none", "max_length", NULL};

static int parse_tokenizer(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_tokenizer *t) {
  int rc, kl;
  char k[256];
  tokenizer_defaults(t);
  t->line = line_of(n, line);
  if (n->kind == GPUX__SN_SCALAR) {           /* tokenizer: vocab.txt */
    t->present = 1;
    return get_str(c, n, line, key, &t->vocab);
  }
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, tokenizer_keys))) return rc;
  t->present = 1;
  for (int i = 0; i < n->n; i++) {
    const char *name = n->keys[i];
    const gpux__snode *v = n->items[i];
    kl = n->key_lines[i] ? n->key_lines[i] : line;
    sub_key(k, sizeof k, key, name);
    if (!strcmp(name, "type")) rc = get_enum(c, v, kl, k, tok_names, &t->kind);
    else if (!strcmp(name, "vocab")) rc = get_str(c, v, kl, k, &t->vocab);
    else if (!strcmp(name, "lowercase")) rc = get_bool(c, v, kl, k, &t->wordpiece.lowercase);
    else if (!strcmp(name, "strip_accents")) rc = get_bool(c, v, kl, k, &t->wordpiece.strip_accents);
    else if (!strcmp(name, "max_length")) rc = get_int(c, v, kl, k, 0, 1 << 24, &t->encode.max_length);
    else if (!strcmp(name, "padding")) rc = get_enum(c, v, kl, k, pad_names, &t->encode.padding);
    else if (!strcmp(name, "truncation")) rc = get_bool(c, v, kl, k, &t->encode.truncation);
    else if (!strcmp(name, "add_special_tokens")) rc = get_bool(c, v, kl, k, &t->encode.add_special_tokens);
    else if (!strcmp(name, "input")) rc = get_str(c, v, kl, k, &t->input);
    else if (!strcmp(name, "input_ids")) rc = get_str(c, v, kl, k, &t->input_ids);
    else if (!strcmp(name, "attention_mask")) rc = get_str(c, v, kl, k, &t->attention_mask);
    else rc = get_str(c, v, kl, k, &t->token_type_ids);
    if (rc) return rc;
  }
  sub_key(k, sizeof k, key, "vocab");
  if (!t->vocab) return err_at(c, t->line, k, "missing (vocab.txt, vocab.json or tokenizer.json)");
  if (t->encode.padding == GPUX__PAD_MAX_LENGTH && !t->encode.max_length) {
    sub_key(k, sizeof k, key, "max_length");
    return err_at(c, t->line, k, "missing (padding: max_length needs it)");
  }
  return 0;
}

static int parse_preprocessing(cv *c, const gpux__snode *n, int line) {
  int rc;
  if ((rc = want_map(c, n, line, "preprocessing")) || (rc = check_keys(c, n, "preprocessing", pre_keys))) return rc;
  gpux__spec *s = c->s;
  for (int i = 0; i < n->n; i++) {
    int kl = n->key_lines[i] ? n->key_lines[i] : line;
    char k[256];
    sub_key(k, sizeof k, "preprocessing", n->keys[i]);
    if (!strcmp(n->keys[i], "image")) rc = parse_image(c, n->items[i], kl, k, &s->image);
    else if (!strcmp(n->keys[i], "audio")) rc = parse_audio(c, n->items[i], kl, k, &s->audio);
    else rc = parse_tokenizer(c, n->items[i], kl, k, &s->tokenizer);
    if (rc) return rc;
  }
  return 0;
}

/* ---- postprocessing ---- */

static const char *const act_names[] = {"none", "softmax", "sigmoid", NULL};

static int parse_ctc(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_post *p) {
  int rc, kl;
  char k[256];
  p->cfg.ctc = 1;
  p->ctc_add_space = 0;
  if (n->kind == GPUX__SN_SCALAR) {           /* ctc: charset.txt */
    return get_str(c, n, line, key, &p->ctc_charset);
  }
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, ctc_keys))) return rc;
  for (int i = 0; i < n->n; i++) {
    const char *name = n->keys[i];
    const gpux__snode *v = n->items[i];
    kl = n->key_lines[i] ? n->key_lines[i] : line;
    sub_key(k, sizeof k, key, name);
    if (!strcmp(name, "charset")) rc = get_str(c, v, kl, k, &p->ctc_charset);
    else if (!strcmp(name, "blank")) rc = get_int(c, v, kl, k, 0, INT32_MAX, &p->cfg.ctc_blank);
    else if (!strcmp(name, "add_space")) rc = get_bool(c, v, kl, k, &p->ctc_add_space);
    else rc = get_bool(c, v, kl, k, &p->cfg.ctc_trim);
    if (rc) return rc;
  }
  if (!p->ctc_charset) {
    sub_key(k, sizeof k, key, "charset");
    return err_at(c, line_of(n, line), k, "missing (a file with one character per line)");
  }
  return 0;
}

static const char *const detect_formats[] = {"none", "yolo", "yolo-rows", "boxes", NULL};

static int parse_detect(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_post *p) {
  gpux__detect_config *d = &p->cfg.detect;
  int rc, kl;
  char k[256];
  d->format = GPUX__DET_YOLO;
  d->score_threshold = 0.25f;
  d->iou_threshold = 0.45f;
  d->max_detections = 100;
  if (gpux__tree_is_null(n)) return 0; /* `detect:` alone: every default */
  if (n->kind == GPUX__SN_SCALAR) return get_enum(c, n, line, key, detect_formats, &d->format); /* detect: yolo */
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, detect_keys))) return rc;
  for (int i = 0; i < n->n; i++) {
    const gpux__snode *v = n->items[i];
    kl = n->key_lines[i] ? n->key_lines[i] : line;
    sub_key(k, sizeof k, key, n->keys[i]);
    if (!strcmp(n->keys[i], "format")) rc = get_enum(c, v, kl, k, detect_formats, &d->format);
    else if (!strcmp(n->keys[i], "max_detections")) rc = get_int(c, v, kl, k, 0, 1 << 20, &d->max_detections);
    else if (!strcmp(n->keys[i], "scores")) rc = get_str(c, v, kl, k, &p->detect_scores);
    else if (!strcmp(n->keys[i], "normalized")) rc = get_bool(c, v, kl, k, &d->normalized);
    else {
      float *f = !strcmp(n->keys[i], "iou") ? &d->iou_threshold : &d->score_threshold;
      if (!(rc = get_float(c, v, kl, k, f)) && !(*f >= 0 && *f <= 1)) rc = err_at(c, kl, k, "%g is not between 0 and 1", *f);
    }
    if (rc) return rc;
  }
  if (d->format == GPUX__DET_NONE) return err_at(c, line_of(n, line), key, "format 'none' turns detection off; remove detect");
  if (p->detect_scores && d->format != GPUX__DET_BOXES)
    return err_at(c, line_of(n, line), key, "scores (a second output of class scores) goes with format boxes ([1, N, 4] boxes)");
  return 0;
}

/* postprocessing.answer: the best label and its score as keys of the answer ({"sentiment":
 * "positive", "confidence": 0.94}); the keys are names a person chose, kept as they are. */
static int parse_answer(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_post *p) {
  int rc, kl;
  char k[256];
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, answer_keys))) return rc;
  for (int i = 0; i < n->n; i++) {
    kl = n->key_lines[i] ? n->key_lines[i] : line;
    sub_key(k, sizeof k, key, n->keys[i]);
    char **dst = !strcmp(n->keys[i], "label") ? &p->answer_label : !strcmp(n->keys[i], "score") ? &p->answer_score : &p->answer_scores;
    if ((rc = get_str(c, n->items[i], kl, k, dst))) return rc;
    if (!**dst) return err_at(c, kl, k, "an empty name");
    static const char *const taken[] = {"outputs", "timings", "backend", "backend_reason", "batch_size", "result", NULL};
    for (int j = 0; taken[j]; j++)
      if (!strcmp(*dst, taken[j])) return err_at(c, kl, k, "'%s' is a key the answer already has", *dst);
  }
  if (!n->n) return err_at(c, line_of(n, line), key, "give label, score or scores (the answer's key for each)");
  return 0;
}

static int parse_post(cv *c, const gpux__snode *n, int line, const char *key, gpux__spec_post *p) {
  int rc, kl;
  char k[256];
  memset(p, 0, sizeof *p);
  post_defaults(&p->cfg);
  p->line = line_of(n, line);
  if ((rc = want_map(c, n, line, key)) || (rc = check_keys(c, n, key, post_keys))) return rc;
  int softmax = -1, sigmoid = -1, argmax = 0, has_act = 0;
  for (int i = 0; i < n->n; i++) {
    const char *name = n->keys[i];
    const gpux__snode *v = n->items[i];
    kl = n->key_lines[i] ? n->key_lines[i] : line;
    sub_key(k, sizeof k, key, name);
    if (!strcmp(name, "output")) rc = get_str(c, v, kl, k, &p->output);
    else if (!strcmp(name, "activation")) { rc = get_enum(c, v, kl, k, act_names, &p->cfg.activation); has_act = 1; }
    else if (!strcmp(name, "softmax")) rc = get_bool(c, v, kl, k, &softmax);
    else if (!strcmp(name, "sigmoid")) rc = get_bool(c, v, kl, k, &sigmoid);
    else if (!strcmp(name, "argmax")) rc = get_bool(c, v, kl, k, &argmax);
    else if (!strcmp(name, "top_k")) rc = get_int(c, v, kl, k, 1, INT32_MAX, &p->cfg.top_k);
    else if (!strcmp(name, "threshold")) { rc = get_float(c, v, kl, k, &p->cfg.threshold); p->cfg.has_threshold = 1; }
    else if (!strcmp(name, "labels")) rc = parse_labels(c, v, kl, k, &p->labels, &p->n_labels, &p->labels_file);
    else if (!strcmp(name, "detect")) rc = parse_detect(c, v, kl, k, p);
    else if (!strcmp(name, "answer")) rc = parse_answer(c, v, kl, k, p);
    else rc = parse_ctc(c, v, kl, k, p);
    if (rc) return rc;
  }
  if (softmax == 1 && sigmoid == 1) return err_at(c, p->line, key, "softmax and sigmoid are exclusive");
  if ((softmax == 1 || sigmoid == 1) && has_act) return err_at(c, p->line, key, "give activation or softmax/sigmoid, not both");
  if (softmax == 1) p->cfg.activation = GPUX__ACT_SOFTMAX;
  if (sigmoid == 1) p->cfg.activation = GPUX__ACT_SIGMOID;
  if (argmax) {
    if (p->cfg.top_k > 1) return err_at(c, p->line, key, "argmax and top_k > 1 are exclusive");
    p->cfg.top_k = 1;
  }
  if (p->cfg.detect.format && (p->cfg.ctc || p->cfg.top_k || p->cfg.has_threshold || p->cfg.activation))
    return err_at(c, p->line, key, "detect does not take ctc, top_k, argmax, threshold or an activation (detect.threshold is its score limit)");
  if ((p->answer_label || p->answer_score || p->answer_scores) && (p->cfg.ctc || p->cfg.detect.format))
    return err_at(c, p->line, key, "answer names a classifier's fields; not with ctc or detect");
  if (p->cfg.ctc && (p->cfg.top_k || p->cfg.has_threshold || p->labels || p->labels_file))
    return err_at(c, p->line, key, "ctc decoding does not take top_k, argmax, threshold or labels (the charset is its labels)");
  return 0;
}

static int parse_postprocessing(cv *c, const gpux__snode *n, int line) {
  gpux__spec *s = c->s;
  int rc;
  if (n->kind == GPUX__SN_MAP) {
    if (!(s->post = gpux__arena_alloc(&s->arena, sizeof *s->post))) return GPUX_E_NOMEM;
    if ((rc = parse_post(c, n, line, "postprocessing", &s->post[0]))) return rc;
    s->n_post = 1;
    return 0;
  }
  if (n->kind != GPUX__SN_LIST) return err_at(c, line_of(n, line), "postprocessing", "expected a mapping (or a list of them, one per output)");
  if (!(s->post = gpux__arena_alloc(&s->arena, sizeof *s->post * (size_t)(n->n + 1)))) return GPUX_E_NOMEM;
  for (int i = 0; i < n->n; i++) {
    char k[64];
    snprintf(k, sizeof k, "postprocessing[%d]", i);
    if ((rc = parse_post(c, n->items[i], line_of(n->items[i], line), k, &s->post[i]))) return rc;
    if (n->n > 1 && !s->post[i].output) return err_at(c, s->post[i].line, k, "name its output (several postprocessing entries)");
  }
  s->n_post = n->n;
  return 0;
}

/* ---- pipeline, runtime, serving ---- */

static const char *const mode_names[] = {
#define X(e, name) #name,
  GPUX__PIPELINE_MODES(X)
#undef X
  NULL};

static int parse_pipeline(cv *c, const gpux__snode *n, int line) {
  gpux__spec_pipeline *p = &c->s->pipeline;
  int rc, kl;
  char k[256];
  gpux__snode wrap;
  const char *wkeys[1] = {"steps"};
  int wlines[1] = {line};
  gpux__snode *witems[1] = {(gpux__snode *)n};
  if (n->kind == GPUX__SN_LIST) {           /* pipeline: [a.onnx, b.onnx] */
    wrap = (gpux__snode){.kind = GPUX__SN_MAP, .line = n->line, .n = 1, .items = witems, .keys = wkeys, .key_lines = wlines};
    n = &wrap;
  }
  if ((rc = want_map(c, n, line, "pipeline")) || (rc = check_keys(c, n, "pipeline", pipeline_keys))) return rc;
  p->line = line_of(n, line);
  p->mode = GPUX__PIPE_SEQUENCE;
  p->chunk = 1280;
  p->context = 480;
  p->window = 76;
  p->padding = 1.0;
  const gpux__snode *v;
  if ((v = gpux__tree_get(n, "mode", &kl)) && (rc = get_enum(c, v, kl, "pipeline.mode", mode_names, &p->mode))) return rc;
  if (p->mode == GPUX__PIPE_NONE) p->mode = GPUX__PIPE_SEQUENCE;
  if ((v = gpux__tree_get(n, "chunk", &kl)) && (rc = get_int(c, v, kl, "pipeline.chunk", 1, 1 << 24, &p->chunk))) return rc;
  if ((v = gpux__tree_get(n, "context", &kl)) && (rc = get_int(c, v, kl, "pipeline.context", 0, 1 << 24, &p->context))) return rc;
  if ((v = gpux__tree_get(n, "window", &kl)) && (rc = get_int(c, v, kl, "pipeline.window", 1, 1 << 20, &p->window))) return rc;
  if ((v = gpux__tree_get(n, "padding", &kl))) {
    if ((rc = get_num(c, v, kl, "pipeline.padding", &p->padding))) return rc;
    if (p->padding < 0 || p->padding > 60) return err_at(c, kl, "pipeline.padding", "%g is not between 0 and 60 seconds", p->padding);
  }
  if (p->mode != GPUX__PIPE_OPENWAKEWORD)
    for (int i = 0; i < n->n; i++)
      if (strcmp(n->keys[i], "mode") && strcmp(n->keys[i], "steps"))
        return err_at(c, n->key_lines[i], "pipeline", "'%s' is a setting of mode openwakeword", n->keys[i]);
  if (!(v = gpux__tree_get(n, "steps", &kl))) return err_at(c, p->line, "pipeline.steps", "missing (a list of models, run in order)");
  if (v->kind != GPUX__SN_LIST || v->n < 1) return err_at(c, line_of(v, kl), "pipeline.steps", "expected a list of steps");
  if (!(p->steps = gpux__arena_alloc(&c->s->arena, sizeof *p->steps * (size_t)v->n))) return GPUX_E_NOMEM;
  for (int i = 0; i < v->n; i++) {
    const gpux__snode *st = v->items[i];
    gpux__spec_step *S = &p->steps[i];
    int sl = line_of(st, kl);
    snprintf(k, sizeof k, "pipeline.steps[%d]", i);
    S->line = sl;
    if (st->kind == GPUX__SN_SCALAR) {
      if ((rc = parse_model(c, st, sl, k, &S->model))) return rc;
    } else {
      if ((rc = want_map(c, st, sl, k)) || (rc = check_keys(c, st, k, step_keys))) return rc;
      int ml;
      const gpux__snode *nm = gpux__tree_get(st, "name", &ml);
      char kk[300];
      snprintf(kk, sizeof kk, "%s.name", k);
      if (nm && (rc = get_str(c, nm, ml, kk, &S->name))) return rc;
      const gpux__snode *md = gpux__tree_get(st, "model", &ml);
      snprintf(kk, sizeof kk, "%s.model", k);
      if (!md) return err_at(c, sl, kk, "missing");
      if ((rc = parse_model(c, md, ml, kk, &S->model))) return rc;
    }
    if (!S->name) {
      char nm[64];
      snprintf(nm, sizeof nm, "step%d", i + 1);
      if (!(S->name = sdup(c, nm))) return GPUX_E_NOMEM;
    }
    for (int j = 0; j < i; j++)
      if (!strcmp(p->steps[j].name, S->name)) return err_at(c, sl, k, "step name '%s' is used twice", S->name);
  }
  p->n_steps = v->n;
  if (p->mode == GPUX__PIPE_OPENWAKEWORD && p->n_steps != 3)
    return err_at(c, line_of(v, kl), "pipeline.steps", "mode openwakeword takes 3 steps (melspectrogram, embedding, classifier), not %d", p->n_steps);
  return 0;
}

static void generate_defaults(gpux__spec_generate *g, int line) {
  g->present = 1;
  g->line = line;
  g->max_new_tokens = 64;
  g->top_p = 1;
  g->repetition_penalty = 1;
  g->seed = -1;
  g->decoder_start = -1;
  g->suppress_special = 1;
}

static const char *const task_names[] = {"transcribe", "translate", NULL};

static int parse_generate(cv *c, const gpux__snode *n, int line) {
  gpux__spec_generate *g = &c->s->generate;
  int rc, kl;
  generate_defaults(g, line);
  if (gpux__tree_is_null(n)) return 0; /* `generate:` alone: every default */
  if ((rc = want_map(c, n, line, "generate")) || (rc = check_keys(c, n, "generate", generate_keys))) return rc;
  const gpux__snode *v;
  if ((v = gpux__tree_get(n, "max_new_tokens", &kl)) &&
      (rc = get_int(c, v, kl, "generate.max_new_tokens", 1, 1 << 20, &g->max_new_tokens))) return rc;
  if ((v = gpux__tree_get(n, "temperature", &kl))) {
    if ((rc = get_num(c, v, kl, "generate.temperature", &g->temperature))) return rc;
    if (g->temperature < 0 || g->temperature > 100) return err_at(c, kl, "generate.temperature", "%g is not between 0 (greedy) and 100", g->temperature);
  }
  if ((v = gpux__tree_get(n, "top_k", &kl)) && (rc = get_int(c, v, kl, "generate.top_k", 0, 1 << 30, &g->top_k))) return rc;
  if ((v = gpux__tree_get(n, "top_p", &kl))) {
    if ((rc = get_num(c, v, kl, "generate.top_p", &g->top_p))) return rc;
    if (!(g->top_p > 0 && g->top_p <= 1)) return err_at(c, kl, "generate.top_p", "%g is not in (0, 1]", g->top_p);
  }
  if ((v = gpux__tree_get(n, "repetition_penalty", &kl))) {
    if ((rc = get_num(c, v, kl, "generate.repetition_penalty", &g->repetition_penalty))) return rc;
    if (!(g->repetition_penalty > 0 && g->repetition_penalty <= 100))
      return err_at(c, kl, "generate.repetition_penalty", "%g is not in (0, 100] (1 = none)", g->repetition_penalty);
  }
  if ((v = gpux__tree_get(n, "seed", &kl)) && (rc = get_int(c, v, kl, "generate.seed", -1, INT64_MAX, &g->seed))) return rc;
  if ((v = gpux__tree_get(n, "eos", &kl)) && (rc = get_str(c, v, kl, "generate.eos", &g->eos))) return rc;
  if ((v = gpux__tree_get(n, "max_context", &kl)) &&
      (rc = get_int(c, v, kl, "generate.max_context", 0, 1 << 24, &g->max_context))) return rc;
  if ((v = gpux__tree_get(n, "language", &kl))) {
    if ((rc = get_str(c, v, kl, "generate.language", &g->language))) return rc;
    size_t ll = strlen(g->language);
    if (!ll || ll > 64 || strspn(g->language, "<|>abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-") != ll)
      return err_at(c, kl, "generate.language", "'%s' is not a language code (en, de, ...)", g->language);
  }
  if ((v = gpux__tree_get(n, "task", &kl))) {
    int t;
    if ((rc = get_enum(c, v, kl, "generate.task", task_names, &t))) return rc;
    g->task = (char *)task_names[t];
  }
  if ((v = gpux__tree_get(n, "decoder_start_token_id", &kl)) &&
      (rc = get_int(c, v, kl, "generate.decoder_start_token_id", -1, INT32_MAX, &g->decoder_start))) return rc;
  if ((v = gpux__tree_get(n, "suppress_special", &kl)) && (rc = get_bool(c, v, kl, "generate.suppress_special", &g->suppress_special)))
    return rc;
  if ((v = gpux__tree_get(n, "stop", &kl))) {
    const gpux__snode *one[1] = {v};
    const gpux__snode *const *items = v->kind == GPUX__SN_LIST ? (const gpux__snode *const *)v->items : one;
    int count = v->kind == GPUX__SN_LIST ? v->n : 1;
    if (count > 16) return err_at(c, line_of(v, kl), "generate.stop", "%d stop texts; at most 16", count);
    if (!(g->stop = gpux__arena_alloc(&c->s->arena, sizeof *g->stop * (size_t)(count + 1)))) return GPUX_E_NOMEM;
    for (int i = 0; i < count; i++) {
      if ((rc = get_str(c, items[i], kl, "generate.stop", &g->stop[i]))) return rc;
      if (!g->stop[i][0]) return err_at(c, line_of(items[i], kl), "generate.stop", "an empty stop text would stop at once");
    }
    g->n_stop = count;
  }
  return 0;
}

/* Indexed by gpux_backend_kind; "gpu" (last) is accepted as another name for webgpu. */
static const char *const backend_names[] = {"auto", "cpu", "webgpu", "gpu", NULL};
static const char *const precision_names[] = {"fp32", "fp16", "float32", "float16", NULL};

static int parse_runtime(cv *c, const gpux__snode *n, int line) {
  gpux__spec_runtime *r = &c->s->runtime;
  int rc, kl;
  if ((rc = want_map(c, n, line, "runtime")) || (rc = check_keys(c, n, "runtime", runtime_keys))) return rc;
  const gpux__snode *v;
  if ((v = gpux__tree_get(n, "backend", &kl))) {
    if ((rc = get_enum(c, v, kl, "runtime.backend", backend_names, &r->backend))) return rc;
    if (r->backend == 3) r->backend = GPUX_BACKEND_WEBGPU;
  }
  if ((v = gpux__tree_get(n, "precision", &kl))) {
    if ((rc = get_enum(c, v, kl, "runtime.precision", precision_names, &r->precision))) return rc;
    r->precision %= 2;
  }
  if ((v = gpux__tree_get(n, "threads", &kl)) && (rc = get_int32(c, v, kl, "runtime.threads", 0, 1024, &r->threads))) return rc;
  if ((v = gpux__tree_get(n, "gpu", &kl))) {
    if ((rc = want_map(c, v, kl, "runtime.gpu")) || (rc = check_keys(c, v, "runtime.gpu", gpu_keys))) return rc;
    const gpux__snode *m = gpux__tree_get(v, "memory", &kl);
    if (m) {
      if ((rc = want_scalar(c, m, kl, "runtime.gpu.memory", "a size like 2GB"))) return rc;
      r->gpu_memory = gpux__parse_size(m->str);
      if (r->gpu_memory <= 0) return err_at(c, kl, "runtime.gpu.memory", "'%s' is not a size like 512MB or 2GiB", m->str);
    }
  }
  return 0;
}

static int parse_serving(cv *c, const gpux__snode *n, int line) {
  gpux__spec_serving *sv = &c->s->serving;
  int rc, kl;
  if ((rc = want_map(c, n, line, "serving")) || (rc = check_keys(c, n, "serving", serving_keys))) return rc;
  const gpux__snode *v;
  if ((v = gpux__tree_get(n, "port", &kl)) && (rc = get_int32(c, v, kl, "serving.port", 1, 65535, &sv->port))) return rc;
  if ((v = gpux__tree_get(n, "max_batch_size", &kl)) &&
      (rc = get_int32(c, v, kl, "serving.max_batch_size", 1, 65536, &sv->max_batch_size))) return rc;
  if ((v = gpux__tree_get(n, "max_queue_delay_ms", &kl))) {
    if ((rc = get_num(c, v, kl, "serving.max_queue_delay_ms", &sv->max_queue_delay_ms))) return rc;
    if (sv->max_queue_delay_ms < 0) return err_at(c, kl, "serving.max_queue_delay_ms", "must not be negative");
  }
  if ((v = gpux__tree_get(n, "timeout", &kl))) {
    if ((rc = want_scalar(c, v, kl, "serving.timeout", "a duration like 30s"))) return rc;
    sv->timeout = parse_duration(v->str);
    if (sv->timeout <= 0) return err_at(c, kl, "serving.timeout", "'%s' is not a duration like 30, 30s or 500ms", v->str);
  }
  return 0;
}

/* handler: a string (the file) or a mapping. The kind comes from the file's name: .py is Python,
 * .so (or .so.N) a shared library with the gpux_handler_v1 table. */
static int parse_handler(cv *c, const gpux__snode *n, int line) {
  gpux__spec_handler *h = &c->s->handler;
  int rc, kl;
  h->present = 1;
  h->line = line;
  h->timeout = 10;
  h->workers = 2;
  h->memory = (int64_t)4 << 30;
  const gpux__snode *v = n, *fileline = n;
  int fl = line;
  if (n->kind != GPUX__SN_SCALAR) {
    if ((rc = want_map(c, n, line, "handler")) || (rc = check_keys(c, n, "handler", handler_keys))) return rc;
    if (!(v = gpux__tree_get(n, "file", &fl)))
      return err_at(c, line_of(n, line), "handler.file", "missing: the handler's file, such as handler.py");
    fileline = v;
  }
  const char *key = n->kind == GPUX__SN_SCALAR ? "handler" : "handler.file";
  if ((rc = get_str(c, v, fl, key, &h->file))) return rc;
  const char *base = strrchr(h->file, '/');
  base = base ? base + 1 : h->file;
  size_t bl = strlen(base);
  if (bl > 3 && !strcmp(base + bl - 3, ".py")) h->kind = GPUX__HANDLER_PYTHON;
  else if ((bl > 3 && !strcmp(base + bl - 3, ".so")) || strstr(base, ".so.")) h->kind = GPUX__HANDLER_NATIVE;
  else return err_at(c, line_of(fileline, fl), key, "'%s' is neither a Python file (.py) nor a shared library (.so)", h->file);
  if (n->kind == GPUX__SN_SCALAR) return 0;
  if ((v = gpux__tree_get(n, "requirements", &kl)) &&
      (rc = parse_labels(c, v, kl, "handler.requirements", &h->requirements, &h->n_requirements, &h->requirements_file)))
    return rc;
  if ((v = gpux__tree_get(n, "timeout", &kl))) {
    if ((rc = want_scalar(c, v, kl, "handler.timeout", "a duration like 10s"))) return rc;
    h->timeout = parse_duration(v->str);
    if (h->timeout <= 0) return err_at(c, kl, "handler.timeout", "'%s' is not a duration like 10, 10s or 500ms", v->str);
  }
  if ((v = gpux__tree_get(n, "workers", &kl)) && (rc = get_int32(c, v, kl, "handler.workers", 1, 64, &h->workers))) return rc;
  if ((v = gpux__tree_get(n, "memory", &kl))) {
    if ((rc = want_scalar(c, v, kl, "handler.memory", "a size like 2GB"))) return rc;
    h->memory = gpux__parse_size(v->str);
    if (h->memory < ((int64_t)64 << 20))
      return err_at(c, kl, "handler.memory", "'%s' is not a size of at least 64MiB, like 2GB", v->str);
  }
  if ((v = gpux__tree_get(n, "example", &kl))) {
    int cnt = v->kind == GPUX__SN_MAP ? v->n : 1;
    if (v->kind == GPUX__SN_LIST) return err_at(c, line_of(v, kl), "handler.example", "expected a value or a mapping of request keys to values, got a list");
    h->example_keys = gpux__arena_alloc(&c->s->arena, sizeof *h->example_keys * (size_t)cnt);
    h->example_values = gpux__arena_alloc(&c->s->arena, sizeof *h->example_values * (size_t)cnt);
    if (!h->example_keys || !h->example_values) return GPUX_E_NOMEM;
    for (int i = 0; i < cnt; i++) {
      const gpux__snode *it = v->kind == GPUX__SN_MAP ? v->items[i] : v;
      h->example_keys[i] = v->kind == GPUX__SN_MAP ? sdup(c, v->keys[i]) : NULL; /* NULL: the first input */
      if ((rc = get_str(c, it, kl, "handler.example", &h->example_values[i]))) return rc;
    }
    h->n_example = cnt;
  }
  return 0;
}

/* ---- the whole file ---- */

static int name_ok(const char *s) {
  if (!*s || strlen(s) > 128) return 0;
  for (const char *p = s; *p; p++)
    if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.' || *p == '/'))
      return 0;
  return isalnum((unsigned char)s[0]);
}

static int convert(cv *c, const gpux__snode *root) {
  gpux__spec *s = c->s;
  int rc, kl;
  if (root->kind != GPUX__SN_MAP)
    return err_at(c, line_of(root, 1), NULL, "expected a mapping of keys, such as `model: ./model.onnx`, got %s", kind_name(root));
  if ((rc = check_keys(c, root, "", top_keys))) return rc;
  s->serving.port = 8080;
  s->serving.max_batch_size = 1;
  s->serving.timeout = 30;
  const gpux__snode *v;
  if ((v = gpux__tree_get(root, "name", &kl))) {
    if ((rc = get_str(c, v, kl, "name", &s->name))) return rc;
    if (!name_ok(s->name))
      return err_at(c, kl, "name", "'%s' is not an image name (lower-case letters, digits, '-', '_', '.', '/')", s->name);
  }
  if ((v = gpux__tree_get(root, "version", &kl))) {
    if ((rc = get_str(c, v, kl, "version", &s->version))) return rc;
    for (const char *p = s->version; *p; p++)
      if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_') || p - s->version >= 127)
        return err_at(c, kl, "version", "'%s' is not a tag (letters, digits, '.', '-', '_')", s->version);
  }
  if ((v = gpux__tree_get(root, "description", &kl)) && (rc = get_str(c, v, kl, "description", &s->description))) return rc;
  if ((v = gpux__tree_get(root, "model", &kl))) {
    if ((rc = parse_model(c, v, kl, "model", &s->model))) return rc;
    s->has_model = 1;
  }
  if ((v = gpux__tree_get(root, "pipeline", &kl)) && (rc = parse_pipeline(c, v, kl))) return rc;
  if (s->has_model && s->pipeline.mode != GPUX__PIPE_NONE)
    return err_at(c, s->pipeline.line, "pipeline", "give either model or pipeline, not both");
  if (!s->has_model && s->pipeline.mode == GPUX__PIPE_NONE) {
    return err_at(c, line_of(root, 1), "model", "missing: the least a GPUXfile needs is `model: ./model.onnx`");
  }
  if ((v = gpux__tree_get(root, "inputs", &kl)) && (rc = parse_io_list(c, v, kl, "inputs", &s->inputs, &s->n_inputs))) return rc;
  if ((v = gpux__tree_get(root, "outputs", &kl)) && (rc = parse_io_list(c, v, kl, "outputs", &s->outputs, &s->n_outputs))) return rc;
  if ((v = gpux__tree_get(root, "preprocessing", &kl)) && (rc = parse_preprocessing(c, v, kl))) return rc;
  if ((v = gpux__tree_get(root, "postprocessing", &kl)) && (rc = parse_postprocessing(c, v, kl))) return rc;
  if ((v = gpux__tree_get(root, "runtime", &kl)) && (rc = parse_runtime(c, v, kl))) return rc;
  if ((v = gpux__tree_get(root, "serving", &kl)) && (rc = parse_serving(c, v, kl))) return rc;
  if ((v = gpux__tree_get(root, "handler", &kl)) && (rc = parse_handler(c, v, kl))) return rc;
  if ((v = gpux__tree_get(root, "generate", &kl)) && (rc = parse_generate(c, v, kl))) return rc;
  /* cross-checks that need no model */
  if (s->pipeline.mode == GPUX__PIPE_OPENWAKEWORD) {
    if (s->image.present || s->tokenizer.present)
      return err_at(c, s->pipeline.line, "pipeline.mode", "openwakeword takes audio; remove preprocessing.image/tokenizer");
    for (int i = 0; i < s->n_inputs; i++)
      if (s->inputs[i].type == GPUX__IO_IMAGE || s->inputs[i].type == GPUX__IO_STRING || s->n_inputs > 1)
        return err_at(c, s->inputs[i].line, "inputs", "'%s': pipeline mode openwakeword takes one audio input", s->inputs[i].name);
  }
  if (s->pipeline.mode == GPUX__PIPE_SEQ2SEQ) {
    const gpux__spec_pipeline *p = &s->pipeline;
    if (p->n_steps < 2 || p->n_steps > 3)
      return err_at(c, p->line, "pipeline.steps", "mode seq2seq takes 2 or 3 steps: the encoder, the decoder and the decoder "
                                                  "with past (encoder_model.onnx, decoder_model.onnx, "
                                                  "decoder_with_past_model.onnx as optimum exports them), not %d", p->n_steps);
    if (!s->tokenizer.present)
      return err_at(c, p->line, "pipeline.mode", "seq2seq needs preprocessing.tokenizer (the model's tokenizer.json) to write the text");
    if (s->image.present) return err_at(c, s->image.line, "preprocessing.image", "pipeline mode seq2seq takes text or audio features");
    if (!s->generate.present) generate_defaults(&s->generate, 0);
  } else if (s->generate.present) {
    if (!s->has_model)
      return err_at(c, s->generate.line, "generate", "needs `model:` (a decoder-only language model) or `pipeline: {mode: seq2seq}`");
    if (!s->tokenizer.present)
      return err_at(c, s->generate.line, "generate", "needs preprocessing.tokenizer (the model's tokenizer.json) to read the prompt and write the text");
    if (s->image.present || s->audio.present)
      return err_at(c, s->generate.line, "generate", "takes a text prompt; remove preprocessing.image/audio");
    if (s->generate.language || s->generate.task || s->generate.decoder_start >= 0 || !s->generate.suppress_special)
      return err_at(c, s->generate.line, "generate", "language, task, decoder_start_token_id and suppress_special are settings of "
                                                     "`pipeline: {mode: seq2seq}`");
  }
  return 0;
}

static gpux__spec *spec_new(const char *file, const char *dir) {
  gpux__spec *s = gpux__calloc(1, sizeof *s);
  if (!s) return NULL;
  s->file = gpux__arena_strndup(&s->arena, file, strlen(file));
  s->dir = gpux__arena_strndup(&s->arena, dir ? dir : ".", strlen(dir ? dir : "."));
  if (!s->file || !s->dir) { gpux__spec_free(s); return NULL; }
  return s;
}

void gpux__spec_free(gpux__spec *s) {
  if (!s) return;
  gpux__arena_free(&s->arena);
  free(s);
}

int gpux__spec_parse_yaml(const char *text, size_t len, const char *file, const char *dir, gpux__spec **out) {
  *out = NULL;
  gpux__spec *s = spec_new(file, dir);
  if (!s) return GPUX_E_NOMEM;
  gpux__snode *root;
  cv c = {s, s->file};
  int rc = gpux__tree_from_yaml(&s->arena, text, len, s->file, &root);
  if (!rc) rc = convert(&c, root);
  if (rc) { gpux__spec_free(s); return rc; }
  *out = s;
  return 0;
}

int gpux__spec_from_json(const cJSON *json, const char *file, const char *dir, gpux__spec **out) {
  *out = NULL;
  gpux__spec *s = spec_new(file ? file : "image config", dir);
  if (!s) return GPUX_E_NOMEM;
  gpux__snode *root;
  cv c = {s, s->file};
  int rc = gpux__tree_from_json(&s->arena, json, &root);
  if (!rc) rc = convert(&c, root);
  if (rc) { gpux__spec_free(s); return rc; }
  for (int i = 0; i < s->n_inputs; i++) s->inputs[i].line = 0;
  for (int i = 0; i < s->n_outputs; i++) s->outputs[i].line = 0;
  *out = s;
  return 0;
}

/* ---- bare models: `gpux run model.onnx` without a GPUXfile ---- */

static int is_onnx_name(const char *path) {
  size_t n = strlen(path);
  return n > 5 && !strcmp(path + n - 5, ".onnx");
}

/* The one .onnx file in `dir`; an error naming them when there are several, or none. */
static int single_model_in(const char *dir, char *model, size_t len) {
  DIR *d = opendir(dir);
  if (!d) return gpux__error(GPUX_E_IO, "%s: %s", dir, strerror(errno));
  struct dirent *e;
  char found[512] = "";
  int n = 0;
  while ((e = readdir(d))) {
    if (!is_onnx_name(e->d_name)) continue;
    if (n++ < 4) snprintf(found + strlen(found), sizeof found - strlen(found), "%s%s", n > 1 ? ", " : "", e->d_name);
    if (n == 1) snprintf(model, len, "%s/%s", dir, e->d_name);
  }
  closedir(d);
  if (n == 0) return gpux__error(GPUX_E_NOTFOUND, "%s: no GPUXfile and no .onnx model in this folder (gpux init NAME makes a GPUXfile)", dir);
  if (n > 1)
    return gpux__error(GPUX_E_INVALID, "%s: no GPUXfile and %d models (%s%s): name one, or write a GPUXfile (gpux init --model FILE)",
                       dir, n, found, n > 4 ? ", ..." : "");
  return 0;
}

/* The spec of a model given without a GPUXfile: `name` from the file's stem, `model` the file;
 * inputs and outputs come from the model itself, as for a GPUXfile that declares none. */
static int bare_model_spec(const char *model, gpux__spec **out) {
  char dir[4096], name[128], yaml[4500];
  snprintf(dir, sizeof dir, "%s", model);
  char *slash = strrchr(dir, '/');
  const char *base = slash ? slash + 1 : model;
  if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  /* an image name: lower-case letters, digits, '.', '_', '-', starting with a letter or digit */
  size_t n = 0;
  for (const char *p = base; *p && p < base + strlen(base) - 5 && n < sizeof name - 1; p++) {
    char c = (char)tolower((unsigned char)*p);
    if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-') c = '-';
    if (n == 0 && !isalnum((unsigned char)c)) continue;
    name[n++] = c;
  }
  name[n] = 0;
  if (!n) snprintf(name, sizeof name, "model");
  /* the file name is quoted: YAML must not read anything into it */
  char quoted[1100];
  size_t q = 0;
  for (const char *p = base; *p && q < sizeof quoted - 3; p++) {
    if (*p == '\'' && q < sizeof quoted - 4) quoted[q++] = '\'';
    quoted[q++] = *p;
  }
  quoted[q] = 0;
  int len = snprintf(yaml, sizeof yaml, "name: %s\nmodel: './%s'\n", name, quoted);
  return gpux__spec_parse_yaml(yaml, (size_t)len, model, dir, out);
}

int gpux__spec_parse_file(const char *path, const char *display, gpux__spec **out) {
  *out = NULL;
  char file[4096], dir[4096];
  struct stat sb;
  if (stat(path, &sb) < 0)
    return gpux__error(errno == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: %s", path, strerror(errno));
  if (S_ISDIR(sb.st_mode)) {
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(file, sizeof file, "%s/GPUXfile", path);
    if (stat(file, &sb) < 0) {
      /* a folder with one model and no GPUXfile runs as that model */
      char model[4096];
      int rc = single_model_in(path, model, sizeof model);
      return rc ? rc : bare_model_spec(model, out);
    }
  } else if (is_onnx_name(path)) {
    return bare_model_spec(path, out);
  } else {
    snprintf(file, sizeof file, "%s", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
  }
  if (!S_ISREG(sb.st_mode)) return gpux__error(GPUX_E_INVALID, "%s: not a file", file);
  if (sb.st_size > (1 << 24)) return gpux__error(GPUX_E_INVALID, "%s: %lld bytes is too large for a GPUXfile", file, (long long)sb.st_size);
  FILE *f = fopen(file, "rb");
  if (!f) return gpux__error(GPUX_E_IO, "%s: %s", file, strerror(errno));
  char *text = malloc((size_t)sb.st_size + 1);
  size_t got = text ? fread(text, 1, (size_t)sb.st_size, f) : 0;
  fclose(f);
  if (!text) return gpux__error(GPUX_E_NOMEM, "out of memory");
  text[got] = 0;
  char shown[4096];
  if (display) snprintf(shown, sizeof shown, "%s", display);
  else if (!strncmp(file, "./", 2)) snprintf(shown, sizeof shown, "%s", file + 2);
  else snprintf(shown, sizeof shown, "%s", file);
  int rc = gpux__spec_parse_yaml(text, got, shown, dir, out);
  free(text);
  return rc;
}

void gpux__spec_path(const gpux__spec *s, const char *ref, char *buf, size_t len) {
  if (!ref) { buf[0] = 0; return; }
  while (ref[0] == '.' && ref[1] == '/') ref += 2;
  if (ref[0] == '/' || !s->dir || !s->dir[0] || !strcmp(s->dir, ".")) snprintf(buf, len, "%s", ref);
  else snprintf(buf, len, "%s/%s", s->dir, ref);
}

/* ---- JSON ---- */

static void add_num(cJSON *o, const char *k, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.9g", v);
  cJSON_AddItemToObject(o, k, cJSON_CreateRaw(buf));
}

static cJSON *labels_json(char **labels, int64_t n, const char *file) {
  if (file) return cJSON_CreateString(file);
  cJSON *a = cJSON_CreateArray();
  for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(labels[i]));
  return a;
}

static cJSON *model_json(const gpux__spec_model *m) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "source", m->path ? m->path : m->source);
  cJSON_AddStringToObject(o, "format", "onnx");
  if (m->sha256) cJSON_AddStringToObject(o, "sha256", m->sha256);
  return o;
}

static cJSON *io_json(const gpux__spec_io *io) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", io->name);
  cJSON_AddStringToObject(o, "type", gpux__io_type_name(io->type));
  if (io->dtype) cJSON_AddStringToObject(o, "dtype", gpux_dtype_name(io->dtype));
  if (io->ndim >= 0) {
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    for (int i = 0; i < io->ndim; i++) {
      if (io->dim_names[i]) cJSON_AddItemToArray(sh, cJSON_CreateString(io->dim_names[i]));
      else if (io->dims[i] < 0) cJSON_AddItemToArray(sh, cJSON_CreateString("?"));
      else cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)io->dims[i]));
    }
  }
  if (io->labels || io->labels_file) cJSON_AddItemToObject(o, "labels", labels_json(io->labels, io->n_labels, io->labels_file));
  if (io->max_length) cJSON_AddNumberToObject(o, "max_length", (double)io->max_length);
  if (io->example) cJSON_AddStringToObject(o, "example", io->example);
  if (io->description) cJSON_AddStringToObject(o, "description", io->description);
  return o;
}

static cJSON *image_json(const gpux__spec_image *im) {
  const gpux__image_config *c = &im->cfg;
  cJSON *o = cJSON_CreateObject();
  if (im->input) cJSON_AddStringToObject(o, "input", im->input);
  cJSON_AddNumberToObject(o, "channels", c->channels);
  if (c->channels == 3) cJSON_AddStringToObject(o, "color_order", c->bgr ? "bgr" : "rgb");
  cJSON *r = NULL;
  switch (c->resize) {
  case GPUX__RESIZE_EXACT:
    r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "width", c->width);
    cJSON_AddNumberToObject(r, "height", c->height);
    break;
  case GPUX__RESIZE_SHORTER: case GPUX__RESIZE_LONGER:
    r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, c->resize == GPUX__RESIZE_SHORTER ? "shorter" : "longer", c->size);
    break;
  case GPUX__RESIZE_HEIGHT:
    r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "height", c->height);
    if (c->min_width) cJSON_AddNumberToObject(r, "min_width", c->min_width);
    if (c->max_width) cJSON_AddNumberToObject(r, "max_width", c->max_width);
    break;
  case GPUX__RESIZE_LETTERBOX: {
    r = cJSON_CreateObject();
    cJSON *lb = cJSON_AddObjectToObject(r, "letterbox"), *fill = cJSON_AddArrayToObject(r, "fill");
    cJSON_AddNumberToObject(lb, "width", c->width);
    cJSON_AddNumberToObject(lb, "height", c->height);
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(fill, cJSON_CreateNumber(c->fill[i]));
    break;
  }
  }
  if (r) cJSON_AddItemToObject(o, "resize", r);
  cJSON_AddStringToObject(o, "interpolation", interp_names[c->interp]);
  if (c->crop_width) {
    cJSON *cc = cJSON_AddObjectToObject(o, "center_crop");
    cJSON_AddNumberToObject(cc, "width", c->crop_width);
    cJSON_AddNumberToObject(cc, "height", c->crop_height);
  }
  add_num(o, "scale", c->scale);
  cJSON *mean = cJSON_AddArrayToObject(o, "mean"), *std = cJSON_AddArrayToObject(o, "std");
  for (int i = 0; i < c->channels; i++) {
    char b[64];
    snprintf(b, sizeof b, "%.9g", c->mean[i]);
    cJSON_AddItemToArray(mean, cJSON_CreateRaw(b));
    snprintf(b, sizeof b, "%.9g", c->std[i]);
    cJSON_AddItemToArray(std, cJSON_CreateRaw(b));
  }
  if (c->pad_multiple > 1) cJSON_AddNumberToObject(o, "pad_multiple", c->pad_multiple);
  add_num(o, "pad_value", c->pad_value);
  cJSON_AddStringToObject(o, "layout", layout_names[c->layout]);
  cJSON_AddStringToObject(o, "dtype", gpux_dtype_name(c->dtype));
  return o;
}

static cJSON *post_json(const gpux__spec_post *p) {
  cJSON *o = cJSON_CreateObject();
  if (p->output) cJSON_AddStringToObject(o, "output", p->output);
  cJSON_AddStringToObject(o, "activation", act_names[p->cfg.activation]);
  if (p->cfg.top_k) cJSON_AddNumberToObject(o, "top_k", (double)p->cfg.top_k);
  if (p->cfg.has_threshold) add_num(o, "threshold", p->cfg.threshold);
  if (p->labels || p->labels_file) cJSON_AddItemToObject(o, "labels", labels_json(p->labels, p->n_labels, p->labels_file));
  if (p->cfg.detect.format) {
    cJSON *d = cJSON_AddObjectToObject(o, "detect");
    cJSON_AddStringToObject(d, "format", detect_formats[p->cfg.detect.format]);
    add_num(d, "threshold", p->cfg.detect.score_threshold);
    add_num(d, "iou", p->cfg.detect.iou_threshold);
    cJSON_AddNumberToObject(d, "max_detections", (double)p->cfg.detect.max_detections);
    if (p->detect_scores) cJSON_AddStringToObject(d, "scores", p->detect_scores);
    cJSON_AddBoolToObject(d, "normalized", p->cfg.detect.normalized);
  }
  if (p->answer_label || p->answer_score || p->answer_scores) {
    cJSON *a = cJSON_AddObjectToObject(o, "answer");
    if (p->answer_label) cJSON_AddStringToObject(a, "label", p->answer_label);
    if (p->answer_score) cJSON_AddStringToObject(a, "score", p->answer_score);
    if (p->answer_scores) cJSON_AddStringToObject(a, "scores", p->answer_scores);
  }
  if (p->cfg.ctc) {
    cJSON *c = cJSON_AddObjectToObject(o, "ctc");
    cJSON_AddStringToObject(c, "charset", p->ctc_charset);
    cJSON_AddNumberToObject(c, "blank", (double)p->cfg.ctc_blank);
    cJSON_AddBoolToObject(c, "add_space", p->ctc_add_space);
    cJSON_AddBoolToObject(c, "trim", p->cfg.ctc_trim);
  }
  return o;
}

cJSON *gpux__spec_to_json(const gpux__spec *s) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  if (s->name) cJSON_AddStringToObject(o, "name", s->name);
  if (s->version) cJSON_AddStringToObject(o, "version", s->version);
  if (s->description) cJSON_AddStringToObject(o, "description", s->description);
  if (s->has_model) cJSON_AddItemToObject(o, "model", model_json(&s->model));
  if (s->pipeline.mode != GPUX__PIPE_NONE) {
    const gpux__spec_pipeline *p = &s->pipeline;
    cJSON *pj = cJSON_AddObjectToObject(o, "pipeline");
    cJSON_AddStringToObject(pj, "mode", mode_names[p->mode]);
    cJSON *steps = cJSON_AddArrayToObject(pj, "steps");
    for (int i = 0; i < p->n_steps; i++) {
      cJSON *st = cJSON_CreateObject();
      cJSON_AddStringToObject(st, "name", p->steps[i].name);
      cJSON_AddItemToObject(st, "model", model_json(&p->steps[i].model));
      cJSON_AddItemToArray(steps, st);
    }
    if (p->mode == GPUX__PIPE_OPENWAKEWORD) {
      cJSON_AddNumberToObject(pj, "chunk", (double)p->chunk);
      cJSON_AddNumberToObject(pj, "context", (double)p->context);
      cJSON_AddNumberToObject(pj, "window", (double)p->window);
      add_num(pj, "padding", p->padding);
    }
  }
  if (s->generate.present) {
    const gpux__spec_generate *g = &s->generate;
    cJSON *gj = cJSON_AddObjectToObject(o, "generate");
    cJSON_AddNumberToObject(gj, "max_new_tokens", (double)g->max_new_tokens);
    add_num(gj, "temperature", g->temperature);
    cJSON_AddNumberToObject(gj, "top_k", (double)g->top_k);
    add_num(gj, "top_p", g->top_p);
    add_num(gj, "repetition_penalty", g->repetition_penalty);
    cJSON_AddNumberToObject(gj, "seed", (double)g->seed);
    if (g->n_stop) {
      cJSON *st = cJSON_AddArrayToObject(gj, "stop");
      for (int i = 0; i < g->n_stop; i++) cJSON_AddItemToArray(st, cJSON_CreateString(g->stop[i]));
    }
    if (g->eos) cJSON_AddStringToObject(gj, "eos", g->eos);
    cJSON_AddNumberToObject(gj, "max_context", (double)g->max_context);
    if (g->language) cJSON_AddStringToObject(gj, "language", g->language);
    if (g->task) cJSON_AddStringToObject(gj, "task", g->task);
    if (g->decoder_start >= 0) cJSON_AddNumberToObject(gj, "decoder_start_token_id", (double)g->decoder_start);
    if (!g->suppress_special) cJSON_AddBoolToObject(gj, "suppress_special", 0);
  }
  cJSON *in = cJSON_AddArrayToObject(o, "inputs"), *out = cJSON_AddArrayToObject(o, "outputs");
  for (int i = 0; i < s->n_inputs; i++) cJSON_AddItemToArray(in, io_json(&s->inputs[i]));
  for (int i = 0; i < s->n_outputs; i++) cJSON_AddItemToArray(out, io_json(&s->outputs[i]));
  if (s->image.present || s->audio.present || s->tokenizer.present) {
    cJSON *pre = cJSON_AddObjectToObject(o, "preprocessing");
    if (s->image.present) cJSON_AddItemToObject(pre, "image", image_json(&s->image));
    if (s->audio.present) {
      cJSON *a = cJSON_AddObjectToObject(pre, "audio");
      if (s->audio.input) cJSON_AddStringToObject(a, "input", s->audio.input);
      if (s->audio.cfg.sample_rate) cJSON_AddNumberToObject(a, "sample_rate", s->audio.cfg.sample_rate);
      cJSON_AddStringToObject(a, "normalize", norm_names[s->audio.cfg.normalize]);
      if (s->audio.cfg.length) cJSON_AddNumberToObject(a, "length", (double)s->audio.cfg.length);
      cJSON_AddBoolToObject(a, "batch_dim", s->audio.cfg.add_batch_dim);
      if (s->audio.cfg.features) {
        cJSON_AddStringToObject(a, "features", feature_names[s->audio.cfg.features]);
        cJSON_AddNumberToObject(a, "mel_bins", s->audio.cfg.mel_bins ? s->audio.cfg.mel_bins : GPUX__WHISPER_DEFAULT_BINS);
      }
    }
    if (s->tokenizer.present) {
      const gpux__spec_tokenizer *t = &s->tokenizer;
      cJSON *tj = cJSON_AddObjectToObject(pre, "tokenizer");
      cJSON_AddStringToObject(tj, "type", tok_names[t->kind]);
      cJSON_AddStringToObject(tj, "vocab", t->vocab);
      cJSON_AddBoolToObject(tj, "lowercase", t->wordpiece.lowercase);
      if (t->wordpiece.strip_accents >= 0) cJSON_AddBoolToObject(tj, "strip_accents", t->wordpiece.strip_accents);
      if (t->encode.max_length) cJSON_AddNumberToObject(tj, "max_length", (double)t->encode.max_length);
      cJSON_AddStringToObject(tj, "padding", pad_names[t->encode.padding]);
      cJSON_AddBoolToObject(tj, "truncation", t->encode.truncation);
      cJSON_AddBoolToObject(tj, "add_special_tokens", t->encode.add_special_tokens);
      if (t->input) cJSON_AddStringToObject(tj, "input", t->input);
      if (t->input_ids) cJSON_AddStringToObject(tj, "input_ids", t->input_ids);
      if (t->attention_mask) cJSON_AddStringToObject(tj, "attention_mask", t->attention_mask);
      if (t->token_type_ids) cJSON_AddStringToObject(tj, "token_type_ids", t->token_type_ids);
    }
  }
  if (s->n_post) {
    cJSON *pp = cJSON_AddArrayToObject(o, "postprocessing");
    for (int i = 0; i < s->n_post; i++) cJSON_AddItemToArray(pp, post_json(&s->post[i]));
  }
  cJSON *rt = cJSON_AddObjectToObject(o, "runtime");
  cJSON_AddStringToObject(rt, "backend", backend_names[s->runtime.backend]);
  if (s->runtime.gpu_memory) {
    cJSON *g = cJSON_AddObjectToObject(rt, "gpu");
    cJSON_AddNumberToObject(g, "memory", (double)s->runtime.gpu_memory);
  }
  cJSON_AddStringToObject(rt, "precision", precision_names[s->runtime.precision]);
  if (s->runtime.threads) cJSON_AddNumberToObject(rt, "threads", s->runtime.threads);
  cJSON *sv = cJSON_AddObjectToObject(o, "serving");
  cJSON_AddNumberToObject(sv, "port", s->serving.port);
  cJSON_AddNumberToObject(sv, "max_batch_size", s->serving.max_batch_size);
  add_num(sv, "max_queue_delay_ms", s->serving.max_queue_delay_ms);
  add_num(sv, "timeout", s->serving.timeout);
  if (s->handler.present) { /* handler.example is for the build's smoke run only */
    const gpux__spec_handler *h = &s->handler;
    cJSON *hj = cJSON_AddObjectToObject(o, "handler");
    cJSON_AddStringToObject(hj, "file", h->file);
    if (h->requirements || h->requirements_file)
      cJSON_AddItemToObject(hj, "requirements", labels_json(h->requirements, h->n_requirements, h->requirements_file));
    add_num(hj, "timeout", h->timeout);
    cJSON_AddNumberToObject(hj, "workers", h->workers);
    cJSON_AddNumberToObject(hj, "memory", (double)h->memory);
  }
  return o;
}
