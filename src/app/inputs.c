/* inputs.c — user inputs into model inputs (gpux__app_prepare): each app input is matched to a
 * declared input by name or position, then images and WAV audio go through preprocessing, text
 * through the tokenizer, and numbers are parsed from JSON, a typed list, .npy or TensorProto .pb
 * (given as bytes or as a file path) and converted to the dtype the model takes. */
#include "app/app.h"
#include "onnx/onnx.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

int gpux__app_read_file(const char *path, char **data, size_t *len) {
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

int gpux__app_is_file(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}


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
  /* the declared shape is allocated only when the file holds its bytes */
  size_t data_off = off + hl, have = len - data_off, esize = gpux_dtype_size(dtype);
  uint64_t want = esize;
  for (int i = 0; i < ndim; i++)
    want = dims[i] && want > (uint64_t)have / (uint64_t)dims[i] ? (uint64_t)have + 1 : want * (uint64_t)dims[i];
  if (have < want) return gpux__error(GPUX_E_PARSE, ".npy: %zu bytes of data, fewer than its shape needs", have);
  int rc = gpux_tensor_init(out, dtype, ndim, dims);
  if (rc) return rc;
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

/* Collects the strings of a nested JSON array, recording its shape (must be rectangular). */
static int json_strings(const cJSON *j, int depth, int *ndim, int64_t *dims, const char ***vals, int64_t *n,
                        int64_t *cap) {
  if (cJSON_IsArray(j)) {
    int64_t cnt = cJSON_GetArraySize(j);
    if (depth >= GPUX_MAX_DIMS) return gpux__error(GPUX_E_SHAPE, "nested deeper than %d", GPUX_MAX_DIMS);
    if (depth == *ndim) { dims[depth] = cnt; (*ndim)++; }
    else if (depth > *ndim || dims[depth] != cnt) return gpux__error(GPUX_E_SHAPE, "the nested lists are not rectangular");
    const cJSON *c;
    cJSON_ArrayForEach(c, j) {
      int rc = json_strings(c, depth + 1, ndim, dims, vals, n, cap);
      if (rc) return rc;
    }
    return 0;
  }
  if (depth != *ndim) return gpux__error(GPUX_E_SHAPE, "the nested lists are not rectangular");
  if (!cJSON_IsString(j)) return gpux__error(GPUX_E_DTYPE, "expected strings in the list");
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 16;
    const char **p = gpux__realloc(*vals, sizeof *p * (size_t)*cap);
    if (!p) return GPUX_E_NOMEM;
    *vals = p;
  }
  (*vals)[(*n)++] = j->valuestring;
  return 0;
}

static int fit_shape(const gpux__spec_io *io, int64_t n, int *ndim, int64_t *dims);

/* A string tensor: one string, or a JSON list of strings ('["a", "b"]' is shape [2]) shaped as
 * declared when the list's nesting does not say. */
static int string_tensor(const char *text, const gpux__spec_io *io, gpux_tensor *out) {
  int64_t dims[GPUX_MAX_DIMS];
  int ndim = io->ndim >= 0 ? io->ndim : 1;
  for (int i = 0; i < ndim; i++) dims[i] = 1;
  const char *p = text;
  while (isspace((unsigned char)*p)) p++;
  cJSON *j = *p == '[' ? cJSON_Parse(p) : NULL;
  if (!cJSON_IsArray(j)) {   /* one string (also text that merely starts with '[') */
    cJSON_Delete(j);
    int rc = gpux_tensor_init(out, GPUX_DT_STRING, ndim, dims);
    if (rc) return rc;
    char **s = out->data;
    if (!(s[0] = gpux__strdup(text))) return GPUX_E_NOMEM;
    return 0;
  }
  const char **vals = NULL;
  int64_t n = 0, cap = 0;
  int jd = 0, rc = json_strings(j, 0, &jd, dims, &vals, &n, &cap);
  if (!rc && io->ndim >= 0 && jd != io->ndim) rc = fit_shape(io, n, &jd, dims);
  if (!rc) rc = gpux_tensor_init(out, GPUX_DT_STRING, jd, dims);
  char **s = rc ? NULL : out->data;
  for (int64_t i = 0; s && i < n && !rc; i++)
    if (!(s[i] = gpux__strdup(vals[i]))) rc = GPUX_E_NOMEM;
  free(vals);
  cJSON_Delete(j);
  return rc;
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

/* The dtype the app takes for an input (its pipeline mode says: for most, the first model's). */
static int app_input_dtype(const gpux_app *a, const char *name) {
  gpux_value_info vi;
  int n = gpux__app_io_count(a, 0);
  for (int i = 0; i < n; i++)
    if (!gpux__app_io_info(a, 0, i, &vi) && !strcmp(vi.name, name)) return vi.dtype;
  return GPUX_DT_UNDEFINED;
}

/* The bytes of an image/audio input: given bytes, or the file the text names. */
static int input_bytes(const gpux__spec_io *io, const gpux_app_input *in, char **owned, const void **bytes,
                       size_t *len) {
  *owned = NULL;
  if (in->bytes) { *bytes = in->bytes; *len = in->len; return 0; }
  const char *what = io->type == GPUX__IO_IMAGE ? "an image (PNG or JPEG)" : "audio (a WAV file)";
  if (!in->text || !*in->text) return gpux__error(GPUX_E_INVALID, "input '%s' expects %s", io->name, what);
  if (!gpux__app_is_file(in->text))
    return gpux__error(GPUX_E_INVALID, "input '%s' expects %s: '%.60s' is not a file", io->name, what, in->text);
  int rc = gpux__app_read_file(in->text, owned, len);
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
  for (int i = 0; i < 3; i++) want[i] = app_input_dtype(a, names[i]) != GPUX_DT_UNDEFINED || i == 0;
  rc = gpux__encoding_to_tensors(&enc, &ts[0], want[1] ? &ts[1] : NULL, want[2] ? &ts[2] : NULL);
  gpux__encoding_free(&enc);
  for (int i = 0; i < 3 && !rc; i++) {
    if (!want[i]) continue;
    if (!(rc = convert_dtype(&ts[i], app_input_dtype(a, names[i])))) rc = gpux__named_tensors_add(out, names[i], &ts[i]);
  }
  for (int i = 0; i < 3; i++) gpux_tensor_free(&ts[i]);
  return rc;
}

const char *gpux__app_input_accepts(int type) {
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
    if ((rc = gpux__image_preprocess_map(&s->image.cfg, bytes, len, &t, out->image_map.valid ? NULL : &out->image_map)))
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
    else if (!(rc = string_tensor(text, io, &t))) rc = gpux__named_tensors_add(out, io->name, &t);
    free(owned);
    return rc ? gpux__error_prefix(rc, "input '%s': ", io->name) : 0;
  }
  default: {
    int dtype = io->dtype ? io->dtype : GPUX_DT_FLOAT;
    gpux_app_input file_in = {0};
    if (!in->bytes && in->text && dtype != GPUX_DT_STRING && gpux__app_is_file(in->text)) {
      /* a path: the file's contents (.npy, .pb, numbers as text) */
      if ((rc = gpux__app_read_file(in->text, &owned, &len))) break;
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
        rc = gpux__error_prefix(GPUX_E_PARSE, "not .npy or text numbers, and as a TensorProto: ");
      }
    } else if (in->text) {
      if (dtype == GPUX_DT_STRING) rc = string_tensor(in->text, io, &t);
      else rc = parse_tensor_text(in->text, io, dtype, &t);
    } else {
      rc = gpux__error(GPUX_E_INVALID, "no value");
    }
    if (!rc) rc = convert_dtype(&t, dtype);
    if (rc) gpux__error_prefix(rc, "input '%s' expects %s: ", io->name, gpux__app_input_accepts(io->type));
    break;
  }
  }
  free(owned);
  if (!rc && io->type != GPUX__IO_TENSOR) {
    int want = app_input_dtype(a, io->name);
    if ((rc = convert_dtype(&t, want)))
      gpux__error_prefix(rc, "input '%s': ", io->name);
  }
  if (!rc) rc = gpux__named_tensors_add(out, io->name, &t);
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
      rc = gpux__error(GPUX_E_INVALID, "input '%s' is missing: it takes %s", s->inputs[i].name,
                       gpux__app_input_accepts(s->inputs[i].type));
      break;
    }
    rc = prepare_one(a, &s->inputs[i], slot[i], out);
  }
  free(slot);
  if (rc) gpux__named_tensors_free(out);
  return rc;
}

