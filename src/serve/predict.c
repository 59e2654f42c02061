/* predict.c — POST /predict's body: the raw bytes of an image, a WAV file or a .npy, or the JSON
 * request form that gpux__app_request_parse reads (app/request.c: {"text"}, {"image": base64},
 * {"audio": base64}, {"inputs": {...}}), turned into the app inputs `gpux run` takes. An app whose
 * handler has a preprocess takes the request as its handler's (see handler_parse). */
#include "app/handler.h"
#include "serve/serve.h"

static int add_input(gpux__job *j, const char *name, const char *text, const void *bytes, size_t len) {
  gpux_app_input *in = gpux__realloc(j->app_in, sizeof *in * (size_t)(j->n_app_in + 1));
  if (!in) return -1;
  j->app_in = in;
  gpux_app_input *x = &in[j->n_app_in++];
  memset(x, 0, sizeof *x);
  if (name) { char *n = gpux__strdup(name); if (!n || gpux__job_own(j, n)) return -1; x->name = n; }
  if (text) { char *t = gpux__strdup(text); if (!t || gpux__job_own(j, t)) return -1; x->text = t; }
  if (bytes) {
    void *b = gpux__malloc(len + 1);
    if (!b) return -1;
    memcpy(b, bytes, len);
    ((char *)b)[len] = 0;
    if (gpux__job_own(j, b)) return -1;
    x->bytes = b;
    x->len = len;
  }
  return 0;
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
  gpux__app_request r;
  int rc = gpux__app_request_parse(s->app, s->name, body, len, &r);
  if (rc) {
    snprintf(err, el, "%s", gpux_last_error());
    return rc == GPUX_E_NOMEM ? 500 : 400;
  }
  int status = 200;
  for (int i = 0; i < r.n_inputs && status == 200; i++)
    if (add_input(j, r.inputs[i].name, r.inputs[i].text, r.inputs[i].bytes, r.inputs[i].len)) {
      snprintf(err, el, "out of memory");
      status = 500;
    }
  gpux__app_request_free(&r);
  return status;
}
