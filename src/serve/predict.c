/* predict.c — the friendly request form of POST /predict: {"text": "..."}, {"image": "<base64>"},
 * {"audio": "<base64>"}, {"inputs": {"NAME": value}} (Cog's "input" too), or the raw bytes of an
 * image, a WAV file or a .npy as the body; turned into the app inputs `gpux run` takes. Strings
 * are never taken as server-side file paths: images and audio come as base64, numbers as JSON.
 * An app whose handler has a preprocess takes the request as its handler's (see handler_parse). */
#include "app/handler.h"
#include "serve/serve.h"

int gpux__base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len) {
  static int8_t map[256];
  static int init;
  if (!init) {
    memset(map, -1, sizeof map);
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) map[(uint8_t)a[i]] = (int8_t)i;
    map['-'] = 62;   /* base64url */
    map['_'] = 63;
    init = 1;
  }
  const char *comma = memchr(in, ',', len < 128 ? len : 128);
  if (len > 5 && !memcmp(in, "data:", 5) && comma) {   /* a data: URL */
    len -= (size_t)(comma + 1 - in);
    in = comma + 1;
  }
  uint8_t *o = gpux__malloc(len / 4 * 3 + 4);
  if (!o) return GPUX_E_NOMEM;
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = (uint8_t)in[i];
    if (c == '=' ) break;
    if (c == '\n' || c == '\r' || c == ' ') continue;
    if (map[c] < 0) { free(o); return GPUX_E_PARSE; }
    acc = acc << 6 | (uint32_t)map[c];
    bits += 6;
    if (bits >= 8) { bits -= 8; o[n++] = (uint8_t)(acc >> bits); }
  }
  *out = o;
  *out_len = n;
  return 0;
}

static int own(gpux__job *j, void *p) {
  void **ow = gpux__realloc(j->owned, sizeof *ow * (size_t)(j->n_owned + 1));
  if (!ow) { free(p); return -1; }
  j->owned = ow;
  j->owned[j->n_owned++] = p;
  return 0;
}

static int add_input(gpux__job *j, const char *name, const char *text, const void *bytes, size_t len) {
  gpux_app_input *in = gpux__realloc(j->app_in, sizeof *in * (size_t)(j->n_app_in + 1));
  if (!in) return -1;
  j->app_in = in;
  gpux_app_input *x = &in[j->n_app_in++];
  memset(x, 0, sizeof *x);
  if (name) { char *n = gpux__strdup(name); if (!n || own(j, n)) return -1; x->name = n; }
  if (text) { char *t = gpux__strdup(text); if (!t || own(j, t)) return -1; x->text = t; }
  if (bytes) {
    void *b = gpux__malloc(len + 1);
    if (!b) return -1;
    memcpy(b, bytes, len);
    ((char *)b)[len] = 0;
    if (own(j, b)) return -1;
    x->bytes = b;
    x->len = len;
  }
  return 0;
}

static const gpux__spec_io *input_of_type(const gpux__spec *sp, int type) {
  for (int i = 0; i < sp->n_inputs; i++)
    if (sp->inputs[i].type == type) return &sp->inputs[i];
  return NULL;
}

/* One value for declared input io: strings are text (string inputs), base64 (image/audio) or
 * numbers typed as text (tensors); JSON numbers and arrays are passed as JSON text. */
static int add_value(gpux__job *j, const gpux__spec_io *io, const cJSON *v, char *err, size_t el) {
  int rc = 0;
  if (io->type == GPUX__IO_IMAGE || io->type == GPUX__IO_AUDIO) {
    if (!cJSON_IsString(v)) { snprintf(err, el, "input '%s' takes %s as a base64 string", io->name, io->type == GPUX__IO_IMAGE ? "an image" : "a WAV file"); return 400; }
    uint8_t *b;
    size_t n;
    if (gpux__base64_decode(v->valuestring, strlen(v->valuestring), &b, &n)) { snprintf(err, el, "input '%s': not valid base64", io->name); return 400; }
    rc = add_input(j, io->name, NULL, b, n);
    free(b);
  } else if (cJSON_IsString(v)) {
    if (io->type == GPUX__IO_STRING || io->dtype == GPUX_DT_STRING) rc = add_input(j, io->name, v->valuestring, NULL, 0);
    else rc = add_input(j, io->name, NULL, v->valuestring, strlen(v->valuestring));   /* bytes: never a path */
  } else if (cJSON_IsNumber(v) || cJSON_IsArray(v) || cJSON_IsBool(v)) {
    char *t = cJSON_PrintUnformatted(v);
    if (!t) return 500;
    if (io->type == GPUX__IO_STRING) rc = add_input(j, io->name, t, NULL, 0);
    else rc = add_input(j, io->name, NULL, t, strlen(t));
    free(t);
  } else {
    snprintf(err, el, "input '%s': expected a string, a number or an array", io->name);
    return 400;
  }
  if (rc) { snprintf(err, el, "out of memory"); return 500; }
  return 200;
}

/* The request of a handler's preprocess, which knows its own keys: a raw body is "input" (bytes);
 * a JSON object's keys (or those of its "inputs"/"input" object) are the request's, with "image"
 * and "audio" base64-decoded to bytes, other strings as text and anything else as JSON text. */
static int handler_parse(gpux__job *j, int is_json, const char *body, size_t len, char *err, size_t el) {
  if (!is_json) return add_input(j, NULL, NULL, body, len) ? 500 : 200;
  cJSON *req = cJSON_ParseWithLength(body, len);
  if (!cJSON_IsObject(req)) {
    cJSON_Delete(req);
    snprintf(err, el, "the request must be a JSON object of values for the handler");
    return 400;
  }
  const cJSON *obj = req, *inner = cJSON_GetObjectItem(req, "inputs"), *v;
  if (!inner) inner = cJSON_GetObjectItem(req, "input");
  if (cJSON_IsObject(inner) && cJSON_GetArraySize(req) == 1) obj = inner;
  int rc = 200;
  cJSON_ArrayForEach(v, obj) {
    if (cJSON_IsString(v) && (!strcmp(v->string, "image") || !strcmp(v->string, "audio"))) {
      uint8_t *b;
      size_t n;
      if (gpux__base64_decode(v->valuestring, strlen(v->valuestring), &b, &n)) { snprintf(err, el, "'%s': not valid base64", v->string); rc = 400; break; }
      rc = add_input(j, v->string, NULL, b, n) ? 500 : 200;
      free(b);
    } else if (cJSON_IsString(v)) {
      rc = add_input(j, v->string, v->valuestring, NULL, 0) ? 500 : 200;
    } else {
      char *t = cJSON_PrintUnformatted(v);
      rc = !t || add_input(j, v->string, t, NULL, 0) ? 500 : 200;
      free(t);
    }
    if (rc != 200) break;
  }
  cJSON_Delete(req);
  return rc;
}

int gpux__predict_parse(const gpux__slot *s, const char *content_type, const char *body, size_t len, gpux__job *j,
                        char *err, size_t el) {
  const gpux__spec *sp = s->app->spec;
  if (gpux__handler_has(s->app->handler, 0)) {
    if (content_type && !strncmp(content_type, "multipart/", 10)) { snprintf(err, el, "multipart uploads are not supported"); return 415; }
    return handler_parse(j, !content_type || strstr(content_type, "json") || (len && body[0] == '{'), body, len, err, el);
  }
  if (!sp->n_inputs) { snprintf(err, el, "model '%s' declares no inputs", s->name); return 400; }
  int is_json = !content_type || strstr(content_type, "json") || (len && (body[0] == '{'));
  if (content_type && !strncmp(content_type, "multipart/", 10)) {
    snprintf(err, el, "multipart uploads are not supported: send the file as the body, or JSON with base64");
    return 415;
  }
  if (!is_json) {
    if (!len) { snprintf(err, el, "empty body"); return 400; }
    return add_input(j, NULL, NULL, body, len) ? 500 : 200;
  }
  const char *end = NULL;
  cJSON *req = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (!req) {
    snprintf(err, el, "malformed JSON at byte %zu", end && end >= body ? (size_t)(end - body) : (size_t)0);
    return 400;
  }
  int rc = 200;
  if (!cJSON_IsObject(req)) { snprintf(err, el, "the request must be a JSON object ({\"text\"}, {\"image\"} or {\"inputs\"})"); rc = 400; }
  const cJSON *item;
  if (rc == 200) cJSON_ArrayForEach(item, req) {
    const char *k = item->string;
    if (!strcmp(k, "inputs") || !strcmp(k, "input")) {
      if (!cJSON_IsObject(item)) { snprintf(err, el, "'%s' must be an object of input names to values", k); rc = 400; break; }
      const cJSON *v;
      cJSON_ArrayForEach(v, item) {
        const gpux__spec_io *io = NULL;
        char names[512] = "";
        size_t no = 0;
        for (int i = 0; i < sp->n_inputs; i++) {
          if (!strcmp(sp->inputs[i].name, v->string)) io = &sp->inputs[i];
          if (no < sizeof names) no += (size_t)snprintf(names + no, sizeof names - no, "%s%s", i ? ", " : "", sp->inputs[i].name);
        }
        if (!io) { snprintf(err, el, "unknown input '%s' (model '%s' takes: %s)", v->string, s->name, names); rc = 400; break; }
        if ((rc = add_value(j, io, v, err, el)) != 200) break;
      }
    } else if (!strcmp(k, "text") || !strcmp(k, "image") || !strcmp(k, "audio")) {
      int type = k[0] == 't' ? GPUX__IO_STRING : k[0] == 'i' ? GPUX__IO_IMAGE : GPUX__IO_AUDIO;
      const gpux__spec_io *io = input_of_type(sp, type);
      if (!io && type == GPUX__IO_STRING && sp->n_inputs == 1 && sp->inputs[0].type == GPUX__IO_TENSOR) io = &sp->inputs[0];
      if (!io) { snprintf(err, el, "model '%s' takes no %s input (its first input '%s' takes %s)", s->name, k, sp->inputs[0].name, gpux__io_type_name(sp->inputs[0].type)); rc = 400; break; }
      if ((rc = add_value(j, io, item, err, el)) != 200) break;
    } else {
      snprintf(err, el, "unknown key '%s' (expected text, image, audio or inputs)", k);
      rc = 400;
      break;
    }
  }
  if (rc == 200 && !j->n_app_in) { snprintf(err, el, "no input given: send {\"text\"}, {\"image\"}, {\"audio\"} or {\"inputs\"}"); rc = 400; }
  cJSON_Delete(req);
  return rc;
}
