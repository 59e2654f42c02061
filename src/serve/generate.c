/* generate.c — the request and answer forms of the text-generation endpoints, for apps with
 * `generate:` (serve.c routes them; the worker runs gpux_app_generate):
 *
 *   POST /v1/completions        OpenAI: {"model", "prompt", "max_tokens", "temperature", "top_p",
 *                               "seed", "stop", "stream"} (and top_k, repetition_penalty as vLLM
 *                               takes them) -> {"object": "text_completion", "choices": [...],
 *                               "usage": {...}}
 *   POST /v1/chat/completions   OpenAI chat: "messages" [{role, content}] instead of "prompt",
 *                               turned into one prompt as "role: content" lines and "assistant:"
 *                               -> {"object": "chat.completion", ...}
 *   POST /v2/models/M/generate  Triton's generate extension: {"text_input", "parameters": {...}}
 *                               (settings also at the top level) -> {"model_name", "text_output"};
 *                               for a model that takes no text (Whisper), "audio" (base64) or
 *                               "inputs" as /predict takes them instead of "text_input"
 *   .../generate_stream, "stream": true   server-sent events, one per piece of text; OpenAI's end
 *                               with "data: [DONE]".
 * Every parser takes untrusted bytes: sizes are checked, not trusted (tests/fuzz). */
#include "serve/serve.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

/* A number setting: absent is fine, anything but a number in [lo, hi] is a 400. */
static int num(const cJSON *o, const char *k, double lo, double hi, double *out, char *err, size_t el) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
    snprintf(err, el, "'%s' must be a number from %g to %g", k, lo, hi);
    return 400;
  }
  *out = v->valuedouble;
  return 1;
}

/* The settings of a request (OpenAI's names; Triton's "parameters" use the same). */
static int settings(const cJSON *o, gpux__job *j, char *err, size_t el) {
  double v;
  int rc;
  if ((rc = num(o, "max_tokens", 1, 1 << 20, &v, err, el)) == 400) return 400;
  if (rc) j->gen.max_new_tokens = (int)v;
  if ((rc = num(o, "max_new_tokens", 1, 1 << 20, &v, err, el)) == 400) return 400;
  if (rc) j->gen.max_new_tokens = (int)v;
  if ((rc = num(o, "temperature", 0, 100, &v, err, el)) == 400) return 400;
  if (rc) j->gen.temperature = v;
  if ((rc = num(o, "top_k", 0, 1 << 30, &v, err, el)) == 400) return 400;
  if (rc) j->gen.top_k = (int)v;
  if ((rc = num(o, "top_p", 1e-9, 1, &v, err, el)) == 400) return 400;
  if (rc) j->gen.top_p = v;
  if ((rc = num(o, "repetition_penalty", 1e-9, 100, &v, err, el)) == 400) return 400;
  if (rc) j->gen.repetition_penalty = v;
  if ((rc = num(o, "seed", 0, 9e15, &v, err, el)) == 400) return 400;
  if (rc) j->gen.seed = (int64_t)v;
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "stream");
  if (st && !cJSON_IsNull(st)) {
    if (!cJSON_IsBool(st)) { snprintf(err, el, "'stream' must be true or false"); return 400; }
    j->stream = cJSON_IsTrue(st);
  }
  const cJSON *stop = cJSON_GetObjectItemCaseSensitive(o, "stop");
  if (stop && !cJSON_IsNull(stop)) {
    int n = cJSON_IsString(stop) ? 1 : cJSON_IsArray(stop) ? cJSON_GetArraySize(stop) : -1;
    if (n < 0 || n > 16) { snprintf(err, el, "'stop' must be a text or a list of at most 16 texts"); return 400; }
    const char **list = gpux__calloc((size_t)n + 1, sizeof *list);
    if (!list || gpux__job_own(j, (void *)list)) { snprintf(err, el, "out of memory"); return 500; }
    for (int i = 0; i < n; i++) {
      const cJSON *e = cJSON_IsString(stop) ? stop : cJSON_GetArrayItem(stop, i);
      if (!cJSON_IsString(e) || !e->valuestring[0]) { snprintf(err, el, "'stop' entries must be non-empty texts"); return 400; }
      char *t = gpux__strdup(e->valuestring);
      if (!t || gpux__job_own(j, t)) { snprintf(err, el, "out of memory"); return 500; }
      list[i] = t;
    }
    j->gen.stop = list;
    j->gen.n_stop = n;
  }
  return 0;
}

/* "system: ...\nuser: ...\nassistant:" from OpenAI's messages. */
static char *chat_prompt(const cJSON *messages, char *err, size_t el) {
  if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) < 1) {
    snprintf(err, el, "'messages' must be a non-empty list of {\"role\", \"content\"}");
    return NULL;
  }
  size_t len = 16;
  const cJSON *m;
  cJSON_ArrayForEach(m, messages) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
      snprintf(err, el, "each message needs a text \"role\" and \"content\"");
      return NULL;
    }
    len += strlen(role->valuestring) + strlen(content->valuestring) + 4;
  }
  char *p = gpux__malloc(len), *o = p;
  if (!p) { snprintf(err, el, "out of memory"); return NULL; }
  cJSON_ArrayForEach(m, messages)
    o += sprintf(o, "%s: %s\n", cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring,
                 cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring);
  strcpy(o, "assistant:");
  return p;
}

int gpux__gen_has_app_inputs(const cJSON *o) {
  static const char *const keys[] = {"audio", "image", "inputs", "input"};
  for (size_t i = 0; i < GPUX__ARRAY_LEN(keys); i++)
    if (cJSON_GetObjectItemCaseSensitive(o, keys[i])) return 1;
  return 0;
}

int gpux__gen_parse(int api, const char *body, size_t len, gpux__job *j, char *model, size_t model_len, char *err,
                    size_t el) {
  model[0] = 0;
  gpux_generate_options_init(&j->gen);
  cJSON *o = cJSON_ParseWithLength(body, len);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    snprintf(err, el, "the body is not a JSON object");
    return 400;
  }
  int st = 0, own_inputs = 0;
  char *prompt = NULL;
  const cJSON *v;
  if (api == GPUX__GEN_TRITON) {
    v = cJSON_GetObjectItemCaseSensitive(o, "text_input");
    if (!v && gpux__gen_has_app_inputs(o)) own_inputs = 1; /* the app's own inputs: read with its request form */
    else if (!cJSON_IsString(v)) {
      snprintf(err, el, "'text_input' (the prompt) is missing or not a text (a model that takes no text takes \"audio\" "
                        "or \"inputs\")");
      st = 400;
    } else prompt = gpux__strdup(v->valuestring);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(o, "parameters");
    if (!st && params && !cJSON_IsObject(params)) { snprintf(err, el, "'parameters' must be an object"); st = 400; }
    if (!st) st = settings(o, j, err, el);
    if (!st && params) st = settings(params, j, err, el);
  } else {
    const cJSON *mdl = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (cJSON_IsString(mdl)) snprintf(model, model_len, "%s", mdl->valuestring);
    if (api == GPUX__GEN_OPENAI_CHAT) {
      prompt = chat_prompt(cJSON_GetObjectItemCaseSensitive(o, "messages"), err, el);
      if (!prompt) st = 400;
    } else {
      v = cJSON_GetObjectItemCaseSensitive(o, "prompt");
      if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1) v = cJSON_GetArrayItem(v, 0);
      if (!cJSON_IsString(v)) { snprintf(err, el, "'prompt' must be a text (one prompt a request)"); st = 400; }
      else prompt = gpux__strdup(v->valuestring);
    }
    if (!st) st = settings(o, j, err, el);
  }
  cJSON_Delete(o);
  if (!st && own_inputs) {
    j->kind = GPUX__JOB_GENERATE;
    return 200;
  }
  if (!st && !prompt) { snprintf(err, el, "out of memory"); st = 500; }
  if (st) { free(prompt); return st; }
  gpux_app_input *in = gpux__job_own(j, prompt) ? NULL : gpux__calloc(1, sizeof *in);
  if (!in) { snprintf(err, el, "out of memory"); return 500; }
  in->text = prompt;
  j->app_in = in;
  j->n_app_in = 1;
  j->kind = GPUX__JOB_GENERATE;
  return 200;
}

/* What the run's JSON says: text, finish_reason, token counts. */
typedef struct {
  const char *text, *finish;
  double prompt_tokens, generated;
} run_result;

static void run_result_of(const cJSON *r, run_result *o) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "text"), *f = cJSON_GetObjectItemCaseSensitive(r, "finish_reason");
  o->text = cJSON_IsString(t) ? t->valuestring : "";
  o->finish = cJSON_IsString(f) ? f->valuestring : "length";
  o->prompt_tokens = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "prompt_tokens"));
  o->generated = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "generated_tokens"));
  if (isnan(o->prompt_tokens)) o->prompt_tokens = 0;
  if (isnan(o->generated)) o->generated = 0;
}

/* The envelope every OpenAI answer and chunk shares. */
static cJSON *openai_head(int api, const char *model, const char *id, int chunk) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", id);
  cJSON_AddStringToObject(o, "object", api == GPUX__GEN_OPENAI_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                                     : "text_completion");
  cJSON_AddNumberToObject(o, "created", (double)time(NULL));
  cJSON_AddStringToObject(o, "model", model);
  return o;
}

/* One choice: the text (or a chat message / delta) and why it ended (null while streaming). */
static void add_choice(cJSON *o, int api, const char *text, const char *finish, int chunk, int first) {
  cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
  cJSON_AddNumberToObject(c, "index", 0);
  if (api == GPUX__GEN_OPENAI_CHAT) {
    cJSON *m = cJSON_AddObjectToObject(c, chunk ? "delta" : "message");
    if (!chunk || first) cJSON_AddStringToObject(m, "role", "assistant");
    if (text) cJSON_AddStringToObject(m, "content", text);
  } else {
    cJSON_AddStringToObject(c, "text", text ? text : "");
    cJSON_AddNullToObject(c, "logprobs");
  }
  if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
  else cJSON_AddNullToObject(c, "finish_reason");
  cJSON_AddItemToArray(ch, c);
}

static void add_usage(cJSON *o, const run_result *r) {
  cJSON *u = cJSON_AddObjectToObject(o, "usage");
  cJSON_AddNumberToObject(u, "prompt_tokens", r->prompt_tokens);
  cJSON_AddNumberToObject(u, "completion_tokens", r->generated);
  cJSON_AddNumberToObject(u, "total_tokens", r->prompt_tokens + r->generated);
}

char *gpux__gen_answer(int api, const char *model, const char *version, const char *id, const char *run_json) {
  cJSON *r = cJSON_Parse(run_json ? run_json : "{}");
  run_result rr;
  run_result_of(r, &rr);
  cJSON *o;
  if (api == GPUX__GEN_TRITON) {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", model);
    cJSON_AddStringToObject(o, "model_version", version);
    cJSON_AddStringToObject(o, "text_output", rr.text);
    cJSON_AddStringToObject(o, "finish_reason", rr.finish);
  } else {
    o = openai_head(api, model, id, 0);
    add_choice(o, api, rr.text, rr.finish, 0, 1);
    add_usage(o, &rr);
  }
  char *t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  cJSON_Delete(r);
  return t;
}

/* "data: JSON\n\n" */
static char *sse(cJSON *o) {
  char *j = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!j) return NULL;
  size_t n = strlen(j);
  char *e = gpux__malloc(n + 9);
  if (e) {
    memcpy(e, "data: ", 6);
    memcpy(e + 6, j, n);
    memcpy(e + 6 + n, "\n\n", 3);
  }
  free(j);
  return e;
}

char *gpux__gen_event(int api, const char *model, const char *version, const char *id, const char *piece, int first) {
  cJSON *o;
  if (api == GPUX__GEN_TRITON) {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", model);
    cJSON_AddStringToObject(o, "model_version", version);
    cJSON_AddStringToObject(o, "text_output", piece);
  } else {
    o = openai_head(api, model, id, 1);
    add_choice(o, api, piece, NULL, 1, first);
  }
  return sse(o);
}

char *gpux__gen_final_events(int api, const char *model, const char *version, const char *id, const char *run_json,
                             const char *error) {
  cJSON *o;
  if (error) {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", error);
  } else {
    cJSON *r = cJSON_Parse(run_json ? run_json : "{}");
    run_result rr;
    run_result_of(r, &rr);
    if (api == GPUX__GEN_TRITON) {
      o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "model_name", model);
      cJSON_AddStringToObject(o, "model_version", version);
      cJSON_AddStringToObject(o, "text_output", "");
      cJSON_AddStringToObject(o, "finish_reason", rr.finish);
    } else {
      o = openai_head(api, model, id, 1);
      add_choice(o, api, api == GPUX__GEN_OPENAI_CHAT ? NULL : "", rr.finish, 1, 0);
      add_usage(o, &rr);
    }
    cJSON_Delete(r);
  }
  char *e = sse(o);
  if (!e || api == GPUX__GEN_TRITON) return e;
  size_t n = strlen(e);
  char *d = gpux__realloc(e, n + sizeof "data: [DONE]\n\n");
  if (!d) { free(e); return NULL; }
  memcpy(d + n, "data: [DONE]\n\n", sizeof "data: [DONE]\n\n");
  return d;
}
