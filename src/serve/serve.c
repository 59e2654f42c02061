/* serve.c — gpux_server_*: the HTTP server behind `gpux serve`, on libmicrohttpd with an
 * internal thread pool (epoll). It binds first, then loads and warms up the apps on a loader
 * thread (live at once, ready when loaded), routes requests (health, OIP v2, /predict, /metrics,
 * /openapi.json), enforces the body limit (413) and answers errors as {"error": "..."}. Stopping
 * quiesces the listening socket, waits for in-flight requests (bounded by grace_s), then stops
 * the daemon and the apps' workers. */
#include "app/mode.h"
#include "serve/serve.h"
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct gpux_server {
  struct MHD_Daemon *d;
  gpux_server_options o;
  char host[64];
  char cors[256];               /* o.cors_origin's copy; "" = no CORS headers */
  int port;
  int n;
  gpux__slot *slots;            /* (n) */
  gpux_store *st;               /* borrowed by the loader */
  pthread_t loader;
  int has_loader;
  pthread_mutex_t mu;           /* load state */
  pthread_cond_t cv;
  int loaded;                   /* the loader is done */
  int load_rc;
  char load_err[1024];
  gpux__metrics m;
  char *openapi;                /* made once loaded */
};

/* Per-connection request state (MHD's con_cls). */
typedef struct {
  double t0;                    /* ms */
  char method[8];
  char url[256];
  const char *cors;             /* the server's CORS origin, or NULL */
  char *body;
  size_t len, cap;              /* the request body */
  size_t sent;                  /* bytes of the response body (the access log's size column) */
  int too_large;
  int status;
  int slot;                     /* the model it was for, -1 none */
  int outcome;                  /* 0 ok, 1 client error, 2 server error, 3 rejected, 4 timeout */
} req_state;

int gpux__http_status(int err) {
  switch (err) {
  case GPUX_E_NOMEM: case GPUX_E_IO: case GPUX_E_DEVICE: case GPUX_E_INTERNAL: case GPUX_E_MODEL:
  case GPUX_E_HANDLER: return 500;
  default: return 400;
  }
}

static void GPUX__PRINTF(2, 3) logf_(gpux_server *s, const char *fmt, ...) {
  if (!s->o.log) return;
  char line[2048];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  size_t o = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ ", &tm);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + o, sizeof line - o, fmt, ap);
  va_end(ap);
  s->o.log(s->o.log_ctx, line);
}

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *c, req_state *r, int status, const char *type, char *body,
                                 size_t len, const char *extra_hdr, const char *extra_val) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!resp) { free(body); return MHD_NO; }
  MHD_add_response_header(resp, "Content-Type", type);
  if (extra_hdr) MHD_add_response_header(resp, extra_hdr, extra_val);
  if (r->cors) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors);
    if (strcmp(r->cors, "*")) MHD_add_response_header(resp, "Vary", "Origin");
  }
  r->status = status;
  r->sent = len;
  enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, req_state *r, int status, cJSON *j) {
  char *t = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!t) return MHD_NO;
  return send_body(c, r, status, "application/json", t, strlen(t), NULL, NULL);
}

static enum MHD_Result GPUX__PRINTF(4, 5) send_error(struct MHD_Connection *c, req_state *r, int status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "error", msg);
  char *t = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!t) return MHD_NO;
  if (r->outcome == 0) r->outcome = status >= 500 ? 2 : 1;
  if (status == 503) r->outcome = 3;
  if (status == 504) r->outcome = 4;
  return send_body(c, r, status, "application/json", t, strlen(t), status == 503 ? "Retry-After" : NULL, "1");
}

/* ---- loading ---- */

static void slot_name(const char *ref, char *out, size_t len) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", ref);
  size_t n = strlen(buf);
  if (n >= 8 && !strcmp(buf + n - 8, "GPUXfile")) buf[n -= 8] = 0;
  while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
  const char *base = strrchr(buf, '/');
  base = base ? base + 1 : buf;
  snprintf(out, len, "%s", base);
  char *colon = strchr(out, ':');
  if (colon && strncmp(out, "sha256:", 7)) *colon = 0;
}

static int load_one(gpux_server *s, gpux__slot *sl) {
  double t0 = gpux__now_ms();
  gpux_app_options ao = {.backend = s->o.backend, .allow_handler = s->o.allow_handler};
  int rc = gpux_app_open(s->st, sl->ref, &ao, &sl->app);
  if (rc) return gpux__error_prefix(rc, "%s: ", sl->ref);
  /* warm up: one run on build's generated (or example) inputs */
  gpux_app_input *ins = NULL;
  void **owned = NULL;
  int n_in = 0;
  cJSON *what = cJSON_CreateArray();
  rc = gpux__app_smoke_inputs(sl->app, 1, &ins, &n_in, &owned, what);
  sl->app->handler_off = 1;     /* generated inputs are the model's own: no handler code */
  if (!rc) rc = gpux_app_run(sl->app, ins, n_in, NULL, NULL);
  sl->app->handler_off = 0;
  for (int i = 0; owned && i < sl->app->spec->n_inputs; i++) free(owned[i]);
  free(owned);
  free(ins);
  cJSON_Delete(what);
  if (rc) return gpux__error_prefix(rc, "%s: warm-up run: ", sl->ref);
  const gpux__spec *sp = sl->app->spec;
  if (sp->name && strncmp(sl->ref, "sha256:", 7)) {} /* the URL name stays the one given */
  snprintf(sl->version, sizeof sl->version, "%s", sp->version ? sp->version : "1");
  sl->batchable = gpux__app_batchable(sl->app);
  sl->max_batch = s->o.max_batch_size > 0 ? s->o.max_batch_size : sp->serving.max_batch_size;
  if (sl->max_batch < 1) sl->max_batch = 1;
  sl->gen_batching = sl->max_batch > 1 && gpux__gen_batchable(sl->app);
  if (!sl->batchable && !sl->gen_batching) sl->max_batch = 1;
  sl->delay_ms = s->o.max_queue_delay_ms >= 0 ? s->o.max_queue_delay_ms : sp->serving.max_queue_delay_ms;
  sl->max_queue = s->o.max_queue > 0 ? s->o.max_queue : 256;
  sl->timeout_s = s->o.timeout_s > 0 ? s->o.timeout_s : sp->serving.timeout > 0 ? sp->serving.timeout : 30;
  if ((rc = gpux__slot_start_worker(sl))) return rc;
  sl->load_s = (gpux__now_ms() - t0) / 1e3;
  __atomic_store_n(&sl->ready, 1, __ATOMIC_RELEASE);
  logf_(s, "loaded %s (%s) in %.3f s on %s; batching %s (max_batch_size %d, max_queue_delay_ms %g), timeout %g s",
        sl->name, sl->ref, sl->load_s, gpux_session_backend_name(sl->app->sessions[0]), sl->max_batch > 1 ? "on" : "off",
        sl->max_batch, sl->delay_ms, sl->timeout_s);
  return 0;
}

static char *make_openapi(gpux_server *s);

static void *loader_main(void *arg) {
  gpux_server *s = arg;
  int rc = 0;
  char err[1024] = "";
  for (int i = 0; i < s->n && !rc; i++) {
    if ((rc = load_one(s, &s->slots[i]))) {
      snprintf(err, sizeof err, "%s", gpux_last_error());
      logf_(s, "error: %s", err);
    }
  }
  char *api = rc ? NULL : make_openapi(s);
  pthread_mutex_lock(&s->mu);
  s->openapi = api;
  s->load_rc = rc;
  snprintf(s->load_err, sizeof s->load_err, "%s", err);
  s->loaded = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int all_ready(gpux_server *s) {
  for (int i = 0; i < s->n; i++)
    if (!__atomic_load_n(&s->slots[i].ready, __ATOMIC_ACQUIRE)) return 0;
  return 1;
}

/* ---- OpenAPI ---- */

static cJSON *op(const char *summary, const char *schema_ref) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "summary", summary);
  if (schema_ref) {
    cJSON *rb = cJSON_AddObjectToObject(o, "requestBody");
    cJSON *ct = cJSON_AddObjectToObject(cJSON_AddObjectToObject(rb, "content"), "application/json");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(ct, "schema"), "$ref", schema_ref);
  }
  cJSON *resp = cJSON_AddObjectToObject(o, "responses");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(resp, "200"), "description", "OK");
  if (schema_ref) {
    cJSON_AddStringToObject(cJSON_AddObjectToObject(resp, "400"), "description", "bad input: {\"error\": \"...\"}");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(resp, "413"), "description", "body too large");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(resp, "503"), "description", "queue full or not ready (Retry-After)");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(resp, "504"), "description", "timed out");
  }
  return o;
}

static void add_path(cJSON *paths, const char *path, const char *method, cJSON *o) {
  cJSON *p = cJSON_GetObjectItem(paths, path);
  if (!p) p = cJSON_AddObjectToObject(paths, path);
  cJSON_AddItemToObject(p, method, o);
}

static char *make_openapi(gpux_server *s) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "openapi", "3.0.3");
  cJSON *info = cJSON_AddObjectToObject(root, "info");
  cJSON_AddStringToObject(info, "title", "gpux serve");
  cJSON_AddStringToObject(info, "version", GPUX_VERSION);
  cJSON *paths = cJSON_AddObjectToObject(root, "paths");
  add_path(paths, "/health", "get", op("liveness, readiness and counters", NULL));
  add_path(paths, "/v2/health/live", "get", op("OIP v2 liveness", NULL));
  add_path(paths, "/v2/health/ready", "get", op("OIP v2 readiness (503 until every model is loaded and warmed up)", NULL));
  add_path(paths, "/v2", "get", op("OIP v2 server metadata", NULL));
  add_path(paths, "/v2/repository/index", "post", op("the served models and their state (model repository extension)", NULL));
  add_path(paths, "/metrics", "get", op("Prometheus metrics", NULL));
  cJSON *schemas = cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "components"), "schemas");
  cJSON *oip = cJSON_Parse("{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":{\"id\":{\"type\":\"string\"},"
                           "\"parameters\":{\"type\":\"object\"},\"inputs\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                           "\"required\":[\"name\",\"shape\",\"datatype\"],\"properties\":{\"name\":{\"type\":\"string\"},"
                           "\"shape\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},\"datatype\":{\"type\":\"string\"},"
                           "\"data\":{\"type\":\"array\"}}}},\"outputs\":{\"type\":\"array\"}}}");
  cJSON_AddItemToObject(schemas, "InferRequest", oip);
  for (int i = 0; i < s->n; i++) {
    gpux__slot *sl = &s->slots[i];
    char path[256], ref[200];
    /* the friendly form: each declared input as a property */
    cJSON *pred = cJSON_CreateObject();
    cJSON_AddStringToObject(pred, "type", "object");
    cJSON *props = cJSON_AddObjectToObject(pred, "properties");
    cJSON *inputs_obj = cJSON_AddObjectToObject(props, "inputs");
    cJSON_AddStringToObject(inputs_obj, "type", "object");
    cJSON *ip = cJSON_AddObjectToObject(inputs_obj, "properties");
    cJSON *desc = cJSON_Parse(gpux_app_describe(sl->app)), *in;
    cJSON_ArrayForEach(in, cJSON_GetObjectItem(desc, "inputs")) {
      const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(in, "name"));
      const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(in, "type"));
      if (!nm) continue;
      cJSON *p = cJSON_AddObjectToObject(ip, nm);
      int file = type && (!strcmp(type, "image") || !strcmp(type, "audio"));
      cJSON_AddStringToObject(p, "type", file || (type && !strcmp(type, "string")) ? "string" : "array");
      if (file) cJSON_AddStringToObject(p, "format", "byte");
      char d[256];
      snprintf(d, sizeof d, "%s%s", cJSON_GetStringValue(cJSON_GetObjectItem(in, "accepts")) ? cJSON_GetStringValue(cJSON_GetObjectItem(in, "accepts")) : "", file ? ", base64" : "");
      cJSON_AddStringToObject(p, "description", d);
      if (file) cJSON_AddItemToObject(props, type, cJSON_Parse("{\"type\":\"string\",\"format\":\"byte\"}"));
      else if (type && !strcmp(type, "string")) cJSON_AddItemToObject(props, "text", cJSON_Parse("{\"type\":\"string\"}"));
    }
    cJSON_Delete(desc);
    snprintf(ref, sizeof ref, "Predict_%s", sl->name);
    cJSON_AddItemToObject(schemas, ref, pred);
    char full_ref[256];
    snprintf(full_ref, sizeof full_ref, "#/components/schemas/%s", ref);
    snprintf(path, sizeof path, "/models/%s/predict", sl->name);
    add_path(paths, path, "post", op("run the app: what `gpux run --json` prints", full_ref));
    if (s->n == 1) add_path(paths, "/predict", "post", op("run the app: what `gpux run --json` prints", full_ref));
    snprintf(path, sizeof path, "/v2/models/%s", sl->name);
    cJSON *meta = op("OIP v2 model metadata", NULL);
    cJSON_AddItemToObject(meta, "x-gpux-metadata", gpux__oip_metadata(sl));
    add_path(paths, path, "get", meta);
    snprintf(path, sizeof path, "/v2/models/%s/ready", sl->name);
    add_path(paths, path, "get", op("OIP v2 model readiness", NULL));
    snprintf(path, sizeof path, "/v2/models/%s/infer", sl->name);
    add_path(paths, path, "post", op("OIP v2 inference", "#/components/schemas/InferRequest"));
  }
  char *t = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return t;
}

/* ---- handlers ---- */

static int find_slot(gpux_server *s, const char *name, size_t len) {
  for (int i = 0; i < s->n; i++)
    if (strlen(s->slots[i].name) == len && !memcmp(s->slots[i].name, name, len)) return i;
  return -1;
}

static enum MHD_Result unknown_model(gpux_server *s, struct MHD_Connection *c, req_state *r, const char *name, size_t len) {
  char names[512] = "";
  size_t o = 0;
  for (int i = 0; i < s->n && o < sizeof names; i++) o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", s->slots[i].name);
  return send_error(c, r, 404, "unknown model '%.*s' (served: %s)", (int)(len > 200 ? 200 : len), name, names);
}

static enum MHD_Result do_infer(gpux_server *s, struct MHD_Connection *c, req_state *r, gpux__slot *sl) {
  char err[1024];
  gpux__named_tensors in;
  gpux__oip_request rq;
  int64_t rows;
  size_t json_len = 0;
  const char *hl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Inference-Header-Content-Length");
  if (hl) json_len = (size_t)strtoull(hl, NULL, 10);
  int st = gpux__oip_parse(sl, r->body ? r->body : "", r->len, json_len, &in, &rows, &rq, err, sizeof err);
  if (st != 200) return send_error(c, r, st, "%s", err);
  gpux__job *j = gpux__job_new(GPUX__JOB_TENSORS);
  if (!j) { gpux__named_tensors_free(&in); gpux__oip_request_free(&rq); return send_error(c, r, 500, "out of memory"); }
  j->in = in;
  j->rows = sl->max_batch > 1 ? rows : 0;
  enum MHD_Result ok;
  st = gpux__slot_submit(sl, j);
  if (st == 503) ok = send_error(c, r, 503, "model '%s': %d requests are queued; retry later", sl->name, sl->max_queue);
  else if (st == 504) ok = send_error(c, r, 504, "model '%s': no answer within %g s", sl->name, sl->timeout_s);
  else if (j->rc) ok = send_error(c, r, gpux__http_status(j->rc), "%s", j->err);
  else {
    char *body;
    size_t len, jl;
    st = gpux__oip_response(sl, &rq, &j->out, &body, &len, &jl, err, sizeof err);
    if (st != 200) ok = send_error(c, r, st, "%s", err);
    else if (jl) {
      char v[32];
      snprintf(v, sizeof v, "%zu", jl);
      ok = send_body(c, r, 200, "application/octet-stream", body, len, "Inference-Header-Content-Length", v);
    } else {
      ok = send_body(c, r, 200, "application/json", body, len, NULL, NULL);
    }
  }
  gpux__job_release(sl, j);
  gpux__oip_request_free(&rq);
  return ok;
}

static enum MHD_Result do_predict(gpux_server *s, struct MHD_Connection *c, req_state *r, gpux__slot *sl) {
  char err[1024];
  gpux__job *j = gpux__job_new(GPUX__JOB_APP);
  if (!j) return send_error(c, r, 500, "out of memory");
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
  int st = gpux__predict_parse(sl, ct, r->body ? r->body : "", r->len, j, err, sizeof err);
  enum MHD_Result ok;
  if (st != 200) ok = send_error(c, r, st, "%s", err);
  else if ((st = gpux__slot_submit(sl, j)) == 503) ok = send_error(c, r, 503, "model '%s': %d requests are queued; retry later", sl->name, sl->max_queue);
  else if (st == 504) ok = send_error(c, r, 504, "model '%s': no answer within %g s", sl->name, sl->timeout_s);
  else if (j->rc) ok = send_error(c, r, gpux__http_status(j->rc), "%s", j->err);
  else {
    char *body = j->json;
    j->json = NULL;
    ok = send_body(c, r, 200, "application/json", body, strlen(body), NULL, NULL);
  }
  gpux__job_release(sl, j);
  return ok;
}

/* ---- text generation (generate.c has the request and answer forms) ---- */

/* A streamed answer: events made from the job's pieces as the worker adds them. */
typedef struct {
  gpux__slot *sl;
  gpux__job *j;
  int api, first, finished;
  char model[128], id[48];
  size_t consumed;              /* bytes of j->pieces already made into events */
  char *pending;                /* the event being sent */
  size_t pending_len, pending_off;
} gen_stream;

static ssize_t gen_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  gen_stream *g = cls;
  (void)pos;
  for (;;) {
    if (g->pending && g->pending_off < g->pending_len) {
      size_t n = GPUX__MIN(max, g->pending_len - g->pending_off);
      memcpy(buf, g->pending + g->pending_off, n);
      g->pending_off += n;
      return (ssize_t)n;
    }
    free(g->pending);
    g->pending = NULL;
    gpux__job *j = g->j;
    char *piece = NULL;
    pthread_mutex_lock(&g->sl->mu);
    while (g->consumed == j->pieces_len && !j->done) pthread_cond_wait(&g->sl->cv_done, &g->sl->mu);
    int have_piece = g->consumed < j->pieces_len, done = j->done;
    if (have_piece) {
      piece = gpux__strdup(j->pieces + g->consumed);
      g->consumed += strlen(j->pieces + g->consumed) + 1;
    }
    pthread_mutex_unlock(&g->sl->mu);
    if (have_piece) {
      if (!piece) return MHD_CONTENT_READER_END_WITH_ERROR;
      g->pending = gpux__gen_event(g->api, g->model, g->sl->version, g->id, piece, g->first);
      g->first = 0;
      free(piece);
    } else if (done && !g->finished) {
      g->finished = 1;
      g->pending = gpux__gen_final_events(g->api, g->model, g->sl->version, g->id, j->json, j->rc ? j->err : NULL);
    } else {
      return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (!g->pending) return MHD_CONTENT_READER_END_WITH_ERROR;
    g->pending_len = strlen(g->pending);
    g->pending_off = 0;
  }
}

/* The response is gone (sent, or the client left): stop the generation if it still runs. */
static void gen_stream_free(void *cls) {
  gen_stream *g = cls;
  pthread_mutex_lock(&g->sl->mu);
  g->j->abandoned = 1;
  pthread_mutex_unlock(&g->sl->mu);
  gpux__job_release(g->sl, g->j);
  free(g->pending);
  free(g);
}

/* A Triton generate request that gives the app's own inputs (Whisper's audio or features) in the
 * form /predict takes, without the generation settings around them. */
static int own_inputs(gpux__slot *sl, const req_state *r, gpux__job *j, char *err, size_t el) {
  cJSON *o = cJSON_ParseWithLength(r->body ? r->body : "", r->len), *req = cJSON_CreateObject();
  static const char *const keys[] = {"audio", "image", "inputs", "input"};
  int st = o && req ? 200 : 500;
  for (size_t i = 0; i < GPUX__ARRAY_LEN(keys) && st == 200; i++) {
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(o, keys[i]);
    if (v) cJSON_AddItemToObject(req, keys[i], v);
  }
  char *body = st == 200 ? cJSON_PrintUnformatted(req) : NULL;
  if (st == 200 && !body) st = 500;
  if (st == 200) st = gpux__predict_parse(sl, "application/json", body, strlen(body), j, err, el);
  else snprintf(err, el, "out of memory");
  free(body);
  cJSON_Delete(o);
  cJSON_Delete(req);
  return st;
}

static enum MHD_Result do_generate(gpux_server *s, struct MHD_Connection *c, req_state *r, int api, int slot_from_url) {
  char err[1024], model[128];
  gpux__job *j = gpux__job_new(GPUX__JOB_GENERATE);
  if (!j) return send_error(c, r, 500, "out of memory");
  int st = gpux__gen_parse(api, r->body ? r->body : "", r->len, j, model, sizeof model, err, sizeof err);
  if (st != 200) { gpux__job_release(&s->slots[0], j); return send_error(c, r, st, "%s", err); }
  int i = slot_from_url;
  if (i < 0) { /* OpenAI names the model in the body */
    i = model[0] ? find_slot(s, model, strlen(model)) : s->n == 1 ? 0 : -1;
    if (i < 0) {
      gpux__job_release(&s->slots[0], j);
      if (!model[0]) return send_error(c, r, 400, "%d models are served: name one in \"model\"", s->n);
      return unknown_model(s, c, r, model, strlen(model));
    }
  }
  r->slot = i;
  gpux__slot *sl = &s->slots[i];
  if (!__atomic_load_n(&sl->ready, __ATOMIC_ACQUIRE)) {
    gpux__job_release(sl, j);
    return send_error(c, r, 503, "model '%s' is loading", sl->name);
  }
  if (!gpux_app_generates(sl->app)) {
    gpux__job_release(sl, j);
    return send_error(c, r, 400, "model '%s' does not generate text (its GPUXfile has no generate:); use /predict", sl->name);
  }
  /* a prompt is text: never a file name for a model that takes audio or numbers (a WAV path
   * would be read from the server's disk) */
  int takes_text = 0;
  for (int k = 0; k < sl->app->spec->n_inputs; k++) takes_text |= sl->app->spec->inputs[k].type == GPUX__IO_STRING;
  if (j->n_app_in && !takes_text) {
    gpux__job_release(sl, j);
    return send_error(c, r, 400, "model '%s' takes no text: send POST /v2/models/%s/generate with \"audio\" (base64) or "
                                 "\"inputs\" instead of a prompt, or use /predict", sl->name, sl->name);
  }
  if (!j->n_app_in && (st = own_inputs(sl, r, j, err, sizeof err)) != 200) {
    gpux__job_release(sl, j);
    return send_error(c, r, st, "%s", err);
  }
  char id[48];
  static unsigned long counter;
  snprintf(id, sizeof id, "%s-%lx%04lx", api == GPUX__GEN_OPENAI_CHAT ? "chatcmpl" : "cmpl", (unsigned long)time(NULL),
           __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) & 0xffff);
  if (j->stream) {
    gen_stream *g = gpux__calloc(1, sizeof *g);
    if (!g) { gpux__job_release(sl, j); return send_error(c, r, 500, "out of memory"); }
    if (gpux__slot_enqueue(sl, j)) {
      free(g);
      gpux__job_release(sl, j);
      return send_error(c, r, 503, "model '%s': %d requests are queued; retry later", sl->name, sl->max_queue);
    }
    *g = (gen_stream){.sl = sl, .j = j, .api = api, .first = 1};
    snprintf(g->model, sizeof g->model, "%s", sl->name);
    snprintf(g->id, sizeof g->id, "%s", id);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, gen_stream_read, g, gen_stream_free);
    if (!resp) { gen_stream_free(g); return MHD_NO; }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    if (r->cors) MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors);
    r->status = 200;
    enum MHD_Result ok = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ok;
  }
  enum MHD_Result ok;
  if ((st = gpux__slot_submit(sl, j)) == 503) ok = send_error(c, r, 503, "model '%s': %d requests are queued; retry later", sl->name, sl->max_queue);
  else if (st == 504) ok = send_error(c, r, 504, "model '%s': no answer within %g s", sl->name, sl->timeout_s);
  else if (j->rc) ok = send_error(c, r, gpux__http_status(j->rc), "%s", j->err);
  else {
    char *body = gpux__gen_answer(api, sl->name, sl->version, id, j->json);
    ok = body ? send_body(c, r, 200, "application/json", body, strlen(body), NULL, NULL) : send_error(c, r, 500, "out of memory");
  }
  gpux__job_release(sl, j);
  return ok;
}

static enum MHD_Result route(gpux_server *s, struct MHD_Connection *c, req_state *r) {
  const char *u = r->url, *m = r->method;
  int get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST");
  int ready = all_ready(s);
  if (!strcmp(m, "OPTIONS") && r->cors) { /* a browser's CORS preflight */
    char *empty = gpux__strdup("");
    if (!empty) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, empty, MHD_RESPMEM_MUST_FREE);
    if (!resp) { free(empty); return MHD_NO; }
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Content-Type, Inference-Header-Content-Length");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    r->status = 204;
    enum MHD_Result ok = MHD_queue_response(c, 204, resp);
    MHD_destroy_response(resp);
    return ok;
  }
  if (!strcmp(u, "/") || !strcmp(u, "/index.html")) { /* the page to try the models in a browser (page.c) */
    if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
    char *t = gpux__strdup(gpux__page_html);
    if (!t) return send_error(c, r, 500, "out of memory");
    return send_body(c, r, 200, "text/html; charset=utf-8", t, strlen(t), NULL, NULL);
  }
  if (!strcmp(u, "/health") || !strcmp(u, "/healthz") || !strcmp(u, "/livez")) {
    if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", ready ? "ready" : "loading");
    cJSON_AddBoolToObject(j, "live", 1);
    cJSON_AddBoolToObject(j, "ready", ready);
    cJSON *ms = cJSON_AddArrayToObject(j, "models");
    cJSON *bk = cJSON_AddObjectToObject(j, "backends");   /* where each loaded model runs */
    uint64_t dev_err = 0;
    char last_dev_err[512] = "";
    for (int i = 0; i < s->n; i++) {
      gpux__slot *sl = &s->slots[i];
      cJSON_AddItemToArray(ms, cJSON_CreateString(sl->name));
      if (__atomic_load_n(&sl->ready, __ATOMIC_ACQUIRE) && sl->app && sl->app->sessions && sl->app->sessions[0])
        cJSON_AddStringToObject(bk, sl->name, gpux_session_backend_name(sl->app->sessions[0]));
      pthread_mutex_lock(&sl->mu);
      dev_err += sl->n_device_err;
      if (sl->n_device_err) snprintf(last_dev_err, sizeof last_dev_err, "%s: %s", sl->name, sl->last_device_err);
      pthread_mutex_unlock(&sl->mu);
    }
    /* runs that failed on the device (lost, out of memory); later runs use a new device or the CPU */
    cJSON_AddNumberToObject(j, "device_errors", (double)dev_err);
    if (dev_err) cJSON_AddStringToObject(j, "last_device_error", last_dev_err);
    pthread_mutex_lock(&s->m.mu);
    cJSON_AddNumberToObject(j, "requests", (double)s->m.requests);
    cJSON_AddNumberToObject(j, "uptime_s", (gpux__now_ms() - s->m.t_start) / 1e3);
    pthread_mutex_unlock(&s->m.mu);
    cJSON_AddNumberToObject(j, "pid", (double)getpid());
    return send_json(c, r, 200, j);
  }
  if (!strcmp(u, "/v2/health/live")) {
    if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "live", 1);
    return send_json(c, r, 200, j);
  }
  if (!strcmp(u, "/v2/health/ready") || !strcmp(u, "/readyz")) {
    if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ready", ready);
    return send_json(c, r, ready ? 200 : 503, j);
  }
  if (!strcmp(u, "/v2") || !strcmp(u, "/v2/")) {
    if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", "gpux");
    cJSON_AddStringToObject(j, "version", GPUX_VERSION);
    cJSON *e = cJSON_AddArrayToObject(j, "extensions");
    cJSON_AddItemToArray(e, cJSON_CreateString("classification"));
    cJSON_AddItemToArray(e, cJSON_CreateString("binary_tensor_data"));
    cJSON_AddItemToArray(e, cJSON_CreateString("model_repository"));
    return send_json(c, r, 200, j);
  }
  if (!strcmp(u, "/v2/repository/index")) { /* the model repository extension's index */
    if (!post) return send_error(c, r, 405, "%s %s: use POST", m, u);
    const cJSON *want_ready = NULL;
    cJSON *body = r->len ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    if (r->len && !cJSON_IsObject(body)) { cJSON_Delete(body); return send_error(c, r, 400, "%s: the body is not a JSON object", u); }
    want_ready = cJSON_GetObjectItem(body, "ready");
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < s->n; i++) {
      gpux__slot *sl = &s->slots[i];
      int is_ready = __atomic_load_n(&sl->ready, __ATOMIC_ACQUIRE);
      if (cJSON_IsTrue(want_ready) && !is_ready) continue;
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "name", sl->name);
      cJSON_AddStringToObject(e, "version", sl->version);
      cJSON_AddStringToObject(e, "state", is_ready ? "READY" : "LOADING");
      cJSON_AddStringToObject(e, "reason", "");
      cJSON_AddItemToArray(a, e);
    }
    cJSON_Delete(body);
    return send_json(c, r, 200, a);
  }
  if (!strcmp(u, "/metrics")) {
    if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
    char *t = gpux__metrics_text(&s->m, s->slots, s->n);
    if (!t) return send_error(c, r, 500, "out of memory");
    return send_body(c, r, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t), NULL, NULL);
  }
  if (!strcmp(u, "/openapi.json")) {
    if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
    pthread_mutex_lock(&s->mu);
    char *t = s->openapi ? gpux__strdup(s->openapi) : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!t) return send_error(c, r, 503, "the models are still loading");
    return send_body(c, r, 200, "application/json", t, strlen(t), NULL, NULL);
  }
  /* /v2/models/NAME[/versions/V][/ready|/infer] */
  if (!strncmp(u, "/v2/models/", 11)) {
    const char *name = u + 11, *rest = strchr(name, '/');
    size_t nl = rest ? (size_t)(rest - name) : strlen(name);
    int i = find_slot(s, name, nl);
    if (i < 0) return unknown_model(s, c, r, name, nl);
    r->slot = i;
    gpux__slot *sl = &s->slots[i];
    if (rest && !strncmp(rest, "/versions/", 10)) {
      const char *v = rest + 10, *e = strchr(v, '/');
      size_t vl = e ? (size_t)(e - v) : strlen(v);
      if (!__atomic_load_n(&sl->ready, __ATOMIC_ACQUIRE) || strlen(sl->version) != vl || memcmp(v, sl->version, vl))
        if (!(vl == 1 && v[0] == '1'))
          return send_error(c, r, 404, "model '%s' has no version '%.*s' (it has '%s')", sl->name, (int)(vl > 64 ? 64 : vl), v, sl->version);
      rest = e;
    }
    int is_ready = __atomic_load_n(&sl->ready, __ATOMIC_ACQUIRE);
    if (!rest || !*rest || !strcmp(rest, "/")) {
      if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
      if (!is_ready) return send_error(c, r, 503, "model '%s' is loading", sl->name);
      return send_json(c, r, 200, gpux__oip_metadata(sl));
    }
    if (!strcmp(rest, "/ready")) {
      if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
      cJSON *j = cJSON_CreateObject();
      cJSON_AddStringToObject(j, "name", sl->name);
      cJSON_AddBoolToObject(j, "ready", is_ready);
      return send_json(c, r, is_ready ? 200 : 503, j);
    }
    if (!strcmp(rest, "/generate") || !strcmp(rest, "/generate_stream")) { /* Triton's generate extension */
      if (!post) return send_error(c, r, 405, "%s %s: use POST", m, u);
      if (rest[9] == '_') { /* generate_stream: always streamed */
        cJSON *b = r->len ? cJSON_ParseWithLength(r->body, r->len) : NULL;
        if (cJSON_IsObject(b)) {
          cJSON_DeleteItemFromObject(b, "stream");
          cJSON_AddTrueToObject(b, "stream");
          char *t = cJSON_PrintUnformatted(b);
          if (t) { free(r->body); r->body = t; r->len = r->cap = strlen(t); }
        }
        cJSON_Delete(b);
      }
      return do_generate(s, c, r, GPUX__GEN_TRITON, i);
    }
    if (!strcmp(rest, "/infer")) {
      if (!post) return send_error(c, r, 405, "%s %s: use POST", m, u);
      if (!is_ready) return send_error(c, r, 503, "model '%s' is loading", sl->name);
      return do_infer(s, c, r, sl);
    }
    return send_error(c, r, 404, "no such endpoint: %s %s", m, u);
  }
  if (!strcmp(u, "/v1/completions") || !strcmp(u, "/v1/chat/completions")) { /* OpenAI-compatible */
    if (!post) return send_error(c, r, 405, "%s %s: use POST", m, u);
    return do_generate(s, c, r, u[4] == 'c' && u[5] == 'h' ? GPUX__GEN_OPENAI_CHAT : GPUX__GEN_OPENAI, -1);
  }
  if (!strcmp(u, "/v1/models")) { /* what OpenAI clients list: the models that generate text */
    if (!get) return send_error(c, r, 405, "%s %s: use GET", m, u);
    cJSON *j = cJSON_CreateObject(), *d;
    cJSON_AddStringToObject(j, "object", "list");
    d = cJSON_AddArrayToObject(j, "data");
    for (int i = 0; i < s->n; i++) {
      gpux__slot *sl = &s->slots[i];
      if (!__atomic_load_n(&sl->ready, __ATOMIC_ACQUIRE) || !gpux_app_generates(sl->app)) continue;
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "id", sl->name);
      cJSON_AddStringToObject(e, "object", "model");
      cJSON_AddNumberToObject(e, "created", 0);
      cJSON_AddStringToObject(e, "owned_by", "gpux");
      cJSON_AddItemToArray(d, e);
    }
    return send_json(c, r, 200, j);
  }
  if (!strcmp(u, "/predict") || !strcmp(u, "/predictions") || (!strncmp(u, "/models/", 8) && strstr(u + 8, "/predict"))) {
    int i = 0;
    if (u[1] == 'm') {
      const char *name = u + 8, *rest = strchr(name, '/');
      if (strcmp(rest, "/predict")) return send_error(c, r, 404, "no such endpoint: %s %s", m, u);
      if ((i = find_slot(s, name, (size_t)(rest - name))) < 0) return unknown_model(s, c, r, name, (size_t)(rest - name));
    } else if (s->n > 1) {
      return send_error(c, r, 400, "%d models are served: POST /models/NAME/predict", s->n);
    }
    r->slot = i;
    if (!post) return send_error(c, r, 405, "%s %s: use POST", m, u);
    if (!__atomic_load_n(&s->slots[i].ready, __ATOMIC_ACQUIRE)) return send_error(c, r, 503, "model '%s' is loading", s->slots[i].name);
    return do_predict(s, c, r, &s->slots[i]);
  }
  return send_error(c, r, 404, "no such endpoint: %s %s", m, u);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  gpux_server *s = cls;
  req_state *r = *con_cls;
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) return MHD_NO;
    r->t0 = gpux__now_ms();
    r->slot = -1;
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->url, sizeof r->url, "%s", url);
    r->cors = s->cors[0] ? s->cors : NULL;
    *con_cls = r;
    pthread_mutex_lock(&s->m.mu);
    s->m.inflight++;
    pthread_mutex_unlock(&s->m.mu);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
      r->too_large = 1;
      return send_error(c, r, 413, "the body is %s bytes; the limit is %zu", cl, s->o.max_body);
    }
    return MHD_YES;
  }
  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (r->too_large) return MHD_YES;
    if (r->len + n > s->o.max_body) {
      r->too_large = 1;
      free(r->body);
      r->body = NULL;
      r->len = r->cap = 0;
      return MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
      size_t cap = r->cap ? r->cap : 16384;
      while (cap < r->len + n + 1) cap *= 2;
      char *p = realloc(r->body, cap);
      if (!p) return MHD_NO;
      r->body = p;
      r->cap = cap;
    }
    memcpy(r->body + r->len, upload, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
  }
  if (r->status) return MHD_YES;   /* answered early (413) */
  if (r->too_large) return send_error(c, r, 413, "the body is larger than the limit of %zu bytes", s->o.max_body);
  return route(s, c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  gpux_server *s = cls;
  req_state *r = *con_cls;
  if (!r) return;
  double ms = gpux__now_ms() - r->t0;
  pthread_mutex_lock(&s->m.mu);
  s->m.inflight--;
  if (r->status) {
    s->m.requests++;
    if (r->status / 100 >= 1 && r->status / 100 <= 5) s->m.http_by_code[r->status / 100]++;
  }
  if (r->slot >= 0 && r->status) {
    gpux__slot *sl = &s->slots[r->slot];
    switch (r->outcome) {
    case 0: sl->n_ok++; break;
    case 1: sl->n_client_err++; break;
    case 2: sl->n_server_err++; break;
    case 3: sl->n_rejected++; break;
    default: sl->n_timeout++; break;
    }
    gpux__hist_observe(&sl->h_request, gpux__dur_buckets, GPUX__DUR_BUCKETS, ms / 1e3);
  }
  pthread_mutex_unlock(&s->m.mu);
  char addr[64] = "-";
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, addr, sizeof addr);
  else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, addr, sizeof addr);
  /* the common log format's order: status, then the bytes of the response */
  if (r->status) logf_(s, "%s \"%s %s\" %d %zu %.3fms", addr, r->method, r->url, r->status, r->sent, ms);
  else logf_(s, "%s \"%s %s\" - %zu %.3fms (client gone: %s)", addr, r->method, r->url, r->len, ms,
             toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout" : "closed");
  free(r->body);
  free(r);
  *con_cls = NULL;
}

/* ---- lifecycle ---- */

int gpux_server_start(gpux_store *st, const char *const *refs, int n_refs, const gpux_server_options *o,
                      gpux_server **out) {
  *out = NULL;
  if (n_refs < 1) return gpux__error(GPUX_E_INVALID, "no image to serve");
  gpux_server *s = gpux__calloc(1, sizeof *s);
  if (!s) return GPUX_E_NOMEM;
  if (o) s->o = *o;
  else s->o.port = -1, s->o.max_queue_delay_ms = -1;
  if (!s->o.max_body) s->o.max_body = 64u << 20;
  if (s->o.grace_s <= 0) s->o.grace_s = 30;
  snprintf(s->host, sizeof s->host, "%s", s->o.host ? s->o.host : "127.0.0.1");
  s->o.host = s->host;
  snprintf(s->cors, sizeof s->cors, "%s", s->o.cors_origin ? s->o.cors_origin : "");
  s->o.cors_origin = s->cors[0] ? s->cors : NULL;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_mutex_init(&s->m.mu, NULL);
  s->m.t_start = gpux__now_ms();
  s->st = st;
  s->n = n_refs;
  if (!(s->slots = gpux__calloc((size_t)n_refs, sizeof *s->slots))) { free(s); return GPUX_E_NOMEM; }
  for (int i = 0; i < n_refs; i++) {
    gpux__slot *sl = &s->slots[i];
    snprintf(sl->ref, sizeof sl->ref, "%s", refs[i]);
    slot_name(refs[i], sl->name, sizeof sl->name);
    pthread_mutex_init(&sl->mu, NULL);
    pthread_cond_init(&sl->cv_work, NULL);
    pthread_cond_init(&sl->cv_done, NULL);
    sl->max_batch = 1;
    for (int k = 0; k < i; k++)
      if (!strcmp(s->slots[k].name, sl->name)) {
        s->n = i;
        gpux_server_stop(s);
        return gpux__error(GPUX_E_INVALID, "'%s' and '%s' would both be served as '%s'", refs[k], refs[i], sl->name);
      }
  }
  int port = s->o.port;
  if (port < 0) {
    port = 8080;
    char *js = NULL;
    if (st && !gpux_store_inspect(st, refs[0], &js)) {
      cJSON *j = cJSON_Parse(js);
      const cJSON *p = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "spec"), "serving"), "port");
      if (cJSON_IsNumber(p)) port = (int)p->valuedouble;
      cJSON_Delete(j);
    }
    gpux_free(js);
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  /* a thread per connection by default: handlers block while their job is queued and run, and
   * every waiting connection must be able to join a batch (with a pool of N epoll threads, two
   * connections on one thread are served one after the other) */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                   (s->o.http_threads > 0 ? MHD_USE_EPOLL : MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL);
  if (inet_pton(AF_INET, s->host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
  } else if (inet_pton(AF_INET6, s->host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    flags |= MHD_USE_IPv6;
  } else {
    gpux_server_stop(s);
    return gpux__error(GPUX_E_INVALID, "--host: '%s' is not an IPv4 or IPv6 address", o && o->host ? o->host : "");
  }
  s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(s->o.http_threads > 0 ? s->o.http_threads : 0),
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                          MHD_OPTION_END);
  if (!s->d) {
    int e = errno;
    gpux_server_stop(s);
    return gpux__error(GPUX_E_IO, "cannot listen on %s:%d: %s", o && o->host ? o->host : "127.0.0.1", port,
                       e ? strerror(e) : "address in use or not available");
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : port;
  char threads[64];
  if (s->o.http_threads > 0) snprintf(threads, sizeof threads, "a pool of %d HTTP threads", s->o.http_threads);
  else snprintf(threads, sizeof threads, "a thread per connection");
  logf_(s, "listening on http://%s:%d (%s, body limit %zu bytes)", s->host, s->port, threads, s->o.max_body);
  if (pthread_create(&s->loader, NULL, loader_main, s)) {
    gpux_server_stop(s);
    return gpux__error(GPUX_E_INTERNAL, "cannot start the loader thread");
  }
  s->has_loader = 1;
  *out = s;
  return 0;
}

int gpux_server_wait_ready(gpux_server *s) {
  pthread_mutex_lock(&s->mu);
  while (!s->loaded) pthread_cond_wait(&s->cv, &s->mu);
  int rc = s->load_rc;
  pthread_mutex_unlock(&s->mu);
  if (rc) return gpux__error(rc, "%s", s->load_err);
  return 0;
}

int gpux_server_port(const gpux_server *s) { return s ? s->port : -1; }

uint64_t gpux_server_requests(const gpux_server *s) {
  pthread_mutex_lock((pthread_mutex_t *)&s->m.mu);
  uint64_t n = s->m.requests;
  pthread_mutex_unlock((pthread_mutex_t *)&s->m.mu);
  return n;
}

void gpux_server_stop(gpux_server *s) {
  if (!s) return;
  if (s->d) {
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    double deadline = gpux__now_ms() + s->o.grace_s * 1e3;
    for (;;) {
      pthread_mutex_lock(&s->m.mu);
      int n = s->m.inflight;
      pthread_mutex_unlock(&s->m.mu);
      if (n <= 0 || gpux__now_ms() > deadline) {
        if (n > 0) logf_(s, "stopping with %d requests unanswered after %g s", n, s->o.grace_s);
        break;
      }
      usleep(10000);
    }
    MHD_stop_daemon(s->d);
    s->d = NULL;
  }
  if (s->has_loader) pthread_join(s->loader, NULL);
  for (int i = 0; i < s->n; i++) {
    gpux__slot *sl = &s->slots[i];
    gpux__slot_stop_worker(sl);
    gpux_app_close(sl->app);
    pthread_mutex_destroy(&sl->mu);
    pthread_cond_destroy(&sl->cv_work);
    pthread_cond_destroy(&sl->cv_done);
  }
  logf_(s, "stopped after %llu requests", (unsigned long long)s->m.requests);
  free(s->slots);
  free(s->openapi);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->m.mu);
  free(s);
}
