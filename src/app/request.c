/* request.c — the JSON request form that `POST /predict` and `gpux run --json-input` take
 * (gpux__app_request_parse, gpux_app_run_request): {"text": "..."}, {"image": "<base64>"},
 * {"audio": "<base64>"}, {"inputs": {"NAME": value}} (Cog's "input" too), turned into the app
 * inputs gpux_app_run takes. Strings are never taken as file paths: images and audio come as
 * base64, numbers and string tensors as JSON. */
#include "app/app.h"
#include <cjson/cJSON.h>
#include <stdio.h>

int gpux__base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
    char c = in[i];
    if (c == '=') break;
    if (c == '\n' || c == '\r' || c == ' ') continue;
    int v;
    if (c == '-') v = 62;        /* base64url */
    else if (c == '_') v = 63;
    else {
      const char *p = c ? strchr(alphabet, c) : NULL;
      if (!p) { free(o); return GPUX_E_PARSE; }
      v = (int)(p - alphabet);
    }
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) { bits -= 8; o[n++] = (uint8_t)(acc >> bits); }
  }
  o[n] = 0;   /* room for it: n <= len / 4 * 3 + 2 */
  *out = o;
  *out_len = n;
  return 0;
}

void gpux__app_request_free(gpux__app_request *r) {
  for (int i = 0; i < r->n_owned; i++) free(r->owned[i]);
  free(r->owned);
  free(r->inputs);
  memset(r, 0, sizeof *r);
}

static int own(gpux__app_request *r, void *p) {
  void **ow = gpux__realloc(r->owned, sizeof *ow * (size_t)(r->n_owned + 1));
  if (!ow) { free(p); return GPUX_E_NOMEM; }
  r->owned = ow;
  r->owned[r->n_owned++] = p;
  return 0;
}

/* Appends an input; text and bytes become the request's (bytes are NUL-terminated). */
static int add_input(gpux__app_request *r, const char *name, char *text, void *bytes, size_t len) {
  if ((text && own(r, text)) || (bytes && own(r, bytes))) return GPUX_E_NOMEM;
  gpux_app_input *in = gpux__realloc(r->inputs, sizeof *in * (size_t)(r->n_inputs + 1));
  if (!in) return GPUX_E_NOMEM;
  r->inputs = in;
  in[r->n_inputs++] = (gpux_app_input){.name = name, .text = text, .bytes = bytes, .len = len};
  return 0;
}

static const gpux__spec_io *input_of_type(const gpux__spec *sp, int type) {
  for (int i = 0; i < sp->n_inputs; i++)
    if (sp->inputs[i].type == type) return &sp->inputs[i];
  return NULL;
}

/* One value for declared input io: strings are text (string inputs), base64 (image/audio) or
 * numbers typed as text (tensors); JSON numbers and arrays are passed as JSON text. */
static int add_value(gpux__app_request *r, const gpux__spec_io *io, const cJSON *v) {
  if (io->type == GPUX__IO_IMAGE || io->type == GPUX__IO_AUDIO) {
    if (!cJSON_IsString(v))
      return gpux__error(GPUX_E_INVALID, "input '%s' takes %s as a base64 string", io->name,
                         io->type == GPUX__IO_IMAGE ? "an image" : "a WAV file");
    uint8_t *b;
    size_t n;
    if (gpux__base64_decode(v->valuestring, strlen(v->valuestring), &b, &n))
      return gpux__error(GPUX_E_INVALID, "input '%s': not valid base64", io->name);
    return add_input(r, io->name, NULL, b, n);
  }
  if (cJSON_IsString(v)) {
    char *t = gpux__strdup(v->valuestring);
    if (!t) return GPUX_E_NOMEM;
    if (io->type == GPUX__IO_STRING || io->dtype == GPUX_DT_STRING) return add_input(r, io->name, t, NULL, 0);
    return add_input(r, io->name, NULL, t, strlen(t));   /* bytes: never a path */
  }
  if (cJSON_IsNumber(v) || cJSON_IsArray(v) || cJSON_IsBool(v)) {
    char *t = cJSON_PrintUnformatted(v);
    if (!t) return GPUX_E_NOMEM;
    if (io->type == GPUX__IO_STRING) return add_input(r, io->name, t, NULL, 0);
    return add_input(r, io->name, NULL, t, strlen(t));
  }
  return gpux__error(GPUX_E_INVALID, "input '%s': expected a string, a number or an array", io->name);
}

int gpux__app_request_parse(const gpux_app *a, const char *model, const char *body, size_t len, gpux__app_request *r) {
  memset(r, 0, sizeof *r);
  const gpux__spec *sp = a->spec;
  const char *what = model ? model : a->spec->name ? a->spec->name : a->ref;
  if (!sp->n_inputs) return gpux__error(GPUX_E_INVALID, "model '%s' declares no inputs", what);
  const char *end = NULL;
  cJSON *req = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (!req)
    return gpux__error(GPUX_E_PARSE, "malformed JSON at byte %zu", end && end >= body ? (size_t)(end - body) : (size_t)0);
  int rc = 0;
  if (!cJSON_IsObject(req))
    rc = gpux__error(GPUX_E_INVALID, "the request must be a JSON object ({\"text\"}, {\"image\"} or {\"inputs\"})");
  const cJSON *item;
  if (!rc) cJSON_ArrayForEach(item, req) {
    const char *k = item->string;
    if (!strcmp(k, "inputs") || !strcmp(k, "input")) {
      if (!cJSON_IsObject(item)) { rc = gpux__error(GPUX_E_INVALID, "'%s' must be an object of input names to values", k); break; }
      const cJSON *v;
      cJSON_ArrayForEach(v, item) {
        const gpux__spec_io *io = NULL;
        char names[512] = "";
        size_t no = 0;
        for (int i = 0; i < sp->n_inputs; i++) {
          if (!strcmp(sp->inputs[i].name, v->string)) io = &sp->inputs[i];
          if (no < sizeof names) no += (size_t)snprintf(names + no, sizeof names - no, "%s%s", i ? ", " : "", sp->inputs[i].name);
        }
        if (!io) { rc = gpux__error(GPUX_E_INVALID, "unknown input '%s' (model '%s' takes: %s)", v->string, what, names); break; }
        if ((rc = add_value(r, io, v))) break;
      }
      if (rc) break;
    } else if (!strcmp(k, "text") || !strcmp(k, "image") || !strcmp(k, "audio")) {
      int type = k[0] == 't' ? GPUX__IO_STRING : k[0] == 'i' ? GPUX__IO_IMAGE : GPUX__IO_AUDIO;
      const gpux__spec_io *io = input_of_type(sp, type);
      if (!io && type == GPUX__IO_STRING && sp->n_inputs == 1 && sp->inputs[0].type == GPUX__IO_TENSOR) io = &sp->inputs[0];
      if (!io) {
        rc = gpux__error(GPUX_E_INVALID, "model '%s' takes no %s input (its first input '%s' takes %s)", what, k,
                         sp->inputs[0].name, gpux__io_type_name(sp->inputs[0].type));
        break;
      }
      if ((rc = add_value(r, io, item))) break;
    } else {
      rc = gpux__error(GPUX_E_INVALID, "unknown key '%s' (expected text, image, audio or inputs)", k);
      break;
    }
  }
  if (!rc && !r->n_inputs) rc = gpux__error(GPUX_E_INVALID, "no input given: send {\"text\"}, {\"image\"}, {\"audio\"} or {\"inputs\"}");
  /* input names point into the spec, which outlives the request */
  cJSON_Delete(req);
  if (rc) gpux__app_request_free(r);
  return rc;
}

int gpux_app_run_request(gpux_app *a, const char *request, size_t len, char **result_json, char **result_text) {
  if (result_json) *result_json = NULL;
  if (result_text) *result_text = NULL;
  if (!a || !request) return gpux__error(GPUX_E_INVALID, "no app or no request");
  gpux__app_request r;
  int rc = gpux__app_request_parse(a, NULL, request, len, &r);
  if (rc) return rc;
  rc = gpux_app_run(a, r.inputs, r.n_inputs, result_json, result_text);
  gpux__app_request_free(&r);
  return rc;
}
