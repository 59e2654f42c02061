/* textgen.c — what the text-generation modes share (textgen.h): choosing the next token,
 * handing the text out as it grows, the run's settings and the answer's keys. */
#include "app/textgen.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

/* ---- the run's state and answer ---- */

gpux__textgen_state *gpux__textgen_state_reset(gpux_app *a) {
  gpux__textgen_state *st = a->mode_state;
  if (!st && !(st = a->mode_state = gpux__calloc(1, sizeof *st))) return NULL;
  free(st->text);
  st->text = NULL;
  st->n_tokens = 0;
  st->first_ms = st->total_ms = st->encoder_ms = st->download_bytes_per_token = 0;
  st->prefill_download_bytes = -1;
  st->finish = "length";
  return st;
}

void gpux__textgen_state_release(gpux_app *a) {
  gpux__textgen_state *st = a->mode_state;
  if (st) {
    free(st->tokens);
    free(st->prompt);
    free(st->text);
  }
  free(st);
  a->mode_state = NULL;
}

int gpux__textgen_push(gpux__textgen_state *st, int64_t t) {
  if (st->n_tokens == st->cap) {
    int64_t cap = st->cap ? st->cap * 2 : 64;
    int64_t *p = gpux__realloc(st->tokens, sizeof *p * (size_t)cap);
    if (!p) return GPUX_E_NOMEM;
    st->tokens = p;
    st->cap = cap;
  }
  st->tokens[st->n_tokens++] = t;
  return 0;
}

int gpux__textgen_set_prompt(gpux__textgen_state *st, const int64_t *ids, int64_t n) {
  free(st->prompt);
  st->n_prompt = 0;
  if (!(st->prompt = gpux__malloc(sizeof *st->prompt * (size_t)(n ? n : 1)))) return GPUX_E_NOMEM;
  if (n) memcpy(st->prompt, ids, sizeof *ids * (size_t)n);
  st->n_prompt = n;
  return 0;
}

void gpux__textgen_answer(const gpux_app *a, cJSON *root) {
  const gpux__textgen_state *st = a->mode_state;
  if (!st) return;
  cJSON_AddStringToObject(root, "text", st->text ? st->text : "");
  cJSON *toks = cJSON_AddArrayToObject(root, "tokens");
  for (int64_t i = 0; i < st->n_tokens; i++) cJSON_AddItemToArray(toks, cJSON_CreateNumber((double)st->tokens[i]));
  cJSON_AddNumberToObject(root, "prompt_tokens", (double)st->n_prompt);
  cJSON *pids = cJSON_AddArrayToObject(root, "prompt_ids");
  for (int64_t i = 0; i < st->n_prompt && st->prompt; i++) cJSON_AddItemToArray(pids, cJSON_CreateNumber((double)st->prompt[i]));
  cJSON_AddNumberToObject(root, "generated_tokens", (double)st->n_tokens);
  cJSON_AddStringToObject(root, "finish_reason", st->finish ? st->finish : "length");
  if (st->encoder_ms > 0) cJSON_AddItemToObject(root, "encoder_ms", gpux__app_json_num(st->encoder_ms, 1));
  cJSON_AddItemToObject(root, "time_to_first_token_ms", gpux__app_json_num(st->first_ms, 1));
  double decode_ms = st->total_ms - st->first_ms;
  cJSON_AddItemToObject(root, "tokens_per_second",
                        gpux__app_json_num(st->n_tokens > 1 && decode_ms > 0 ? (double)(st->n_tokens - 1) * 1000.0 / decode_ms : 0, 1));
  cJSON_AddItemToObject(root, "download_bytes_per_token", gpux__app_json_num(st->download_bytes_per_token, 1));
  if (st->prefill_download_bytes >= 0) cJSON_AddNumberToObject(root, "prefill_download_bytes", st->prefill_download_bytes);
}

const char *gpux__textgen_text(const gpux_app *a) {
  const gpux__textgen_state *st = a->mode_state;
  return st && st->text ? st->text : "";
}

/* ---- settings ---- */

int gpux__textgen_io_info(const gpux_app *a, int output, gpux_value_info *vi) {
  memset(vi, 0, sizeof *vi);
  vi->name = output ? a->spec->outputs[0].name : a->spec->inputs[0].name;
  vi->dtype = GPUX_DT_STRING;
  vi->ndim = 1;
  vi->dims[0] = 1;
  return 0;
}

void gpux__textgen_options(const gpux__spec_generate *g, const gpux_generate_options *req, gpux_generate_options *o) {
  gpux_generate_options_init(o);
  o->max_new_tokens = (int)g->max_new_tokens;
  o->temperature = g->temperature;
  o->top_k = (int)g->top_k;
  o->top_p = g->top_p;
  o->repetition_penalty = g->repetition_penalty;
  o->seed = g->seed;
  o->stop = (const char *const *)g->stop;
  o->n_stop = g->n_stop;
  if (!req) return;
  if (req->n_stop > 0 && req->stop) {
    o->stop = req->stop;
    o->n_stop = req->n_stop;
  }
  if (req->max_new_tokens > 0) o->max_new_tokens = req->max_new_tokens;
  if (req->temperature >= 0) o->temperature = req->temperature;
  if (req->top_k >= 0) o->top_k = req->top_k;
  if (req->top_p > 0) o->top_p = GPUX__MIN(req->top_p, 1.0);
  if (req->repetition_penalty > 0) o->repetition_penalty = req->repetition_penalty;
  if (req->seed >= 0) o->seed = req->seed;
  o->on_token = req->on_token;
  o->ctx = req->ctx;
}

int64_t gpux__textgen_eos_id(const gpux_app *a) {
  const char *eos = a->spec->generate.eos;
  if (eos) return gpux__tokenizer_token_id(a->tokenizer, eos);
  static const char *const usual[] = {"<|endoftext|>", "</s>", "<|im_end|>", "<|end_of_text|>", "<eos>", "[SEP]"};
  for (size_t i = 0; i < GPUX__ARRAY_LEN(usual); i++) {
    int64_t id = gpux__tokenizer_token_id(a->tokenizer, usual[i]);
    if (id >= 0) return id;
  }
  return -1;
}

/* ---- choosing the next token ---- */

/* splitmix64: a small, seedable generator, so a seed gives the same text on every machine */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

void gpux__textgen_chooser_init(gpux__textgen_chooser *c, const gpux_generate_options *o, const void *salt) {
  memset(c, 0, sizeof *c);
  c->rng = o->seed >= 0 ? (uint64_t)o->seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)salt;
}

void gpux__textgen_chooser_free(gpux__textgen_chooser *c) {
  free(c->work);
  c->work = NULL;
}

int gpux__textgen_last_row(gpux__textgen_chooser *c, const gpux_tensor *logits, const char *what, float **row) {
  *row = NULL;
  if (logits->ndim < 2 || logits->kind != GPUX_KIND_TENSOR || !gpux__dtype_is_float(logits->dtype))
    return gpux__error(GPUX_E_MODEL, "%s: logits must be float [batch, seq, vocab], got %s of %d dimensions", what,
                       gpux_dtype_name(logits->dtype), logits->ndim);
  int64_t v = logits->dims[logits->ndim - 1], rows = v > 0 ? gpux_tensor_count(logits) / v : 0;
  if (v < 1 || rows < 1) return gpux__error(GPUX_E_MODEL, "%s: the logits are empty", what);
  if (!c->vocab) {
    if (!(c->work = gpux__malloc(sizeof *c->work * (size_t)v))) return GPUX_E_NOMEM;
    c->vocab = v;
  }
  if (v != c->vocab)
    return gpux__error(GPUX_E_SHAPE, "%s: the vocabulary changed between steps (%lld, then %lld)", what, (long long)c->vocab,
                       (long long)v);
  float *r = gpux__malloc(sizeof *r * (size_t)v);
  if (!r) return GPUX_E_NOMEM;
  for (int64_t i = 0; i < v; i++) r[i] = (float)gpux__load_f64(logits->dtype, logits->data, (rows - 1) * v + i);
  *row = r;
  return 0;
}

static int cand_desc(const void *x, const void *y) {
  const gpux__textgen_cand *a = x, *b = y;
  return a->p > b->p ? -1 : a->p < b->p ? 1 : (a->id > b->id) - (a->id < b->id);
}

int64_t gpux__textgen_choose(gpux__textgen_chooser *c, float *logit, const gpux_generate_options *o, const int64_t *seen,
                         int64_t n_seen) {
  int64_t vocab = c->vocab;
  gpux__textgen_cand *work = c->work;
  if (o->repetition_penalty != 1.0) {
    /* as transformers does: once per distinct token, scores above 0 divided, below 0 multiplied;
     * `work` marks the tokens already done */
    for (int64_t i = 0; i < n_seen; i++)
      if (seen[i] >= 0 && seen[i] < vocab) work[seen[i]].id = -1;
    for (int64_t i = 0; i < n_seen; i++) {
      int64_t t = seen[i];
      if (t < 0 || t >= vocab || work[t].id != -1) continue;
      work[t].id = t;
      logit[t] = logit[t] > 0 ? logit[t] / (float)o->repetition_penalty : logit[t] * (float)o->repetition_penalty;
    }
  }
  if (o->temperature <= 0) return gpux__argmax(logit, vocab);
  double mx = -INFINITY;
  for (int64_t i = 0; i < vocab; i++)
    if (logit[i] > mx) mx = logit[i];
  double sum = 0;
  for (int64_t i = 0; i < vocab; i++) {
    double e = isfinite(logit[i]) ? exp((logit[i] - mx) / o->temperature) : 0;
    work[i] = (gpux__textgen_cand){(float)e, i};
    sum += e;
  }
  int64_t n = vocab;
  if (o->top_k > 0 || o->top_p < 1) {
    qsort(work, (size_t)vocab, sizeof *work, cand_desc);
    if (o->top_k > 0 && o->top_k < n) n = o->top_k;
    if (o->top_p < 1) {
      double acc = 0;
      for (int64_t i = 0; i < n; i++) {
        acc += work[i].p / sum;
        if (acc >= o->top_p) { n = i + 1; break; }
      }
    }
    sum = 0;
    for (int64_t i = 0; i < n; i++) sum += work[i].p;
  }
  double r = rng_uniform(&c->rng) * sum, acc = 0;
  for (int64_t i = 0; i < n; i++) {
    acc += work[i].p;
    if (r < acc) return work[i].id;
  }
  return work[n - 1].id;
}

/* ---- text as it is produced ---- */

/* How many bytes at the end of s (len) are an incomplete UTF-8 character. */
static size_t utf8_incomplete_tail(const char *s, size_t len) {
  for (size_t back = 1; back <= 3 && back <= len; back++) {
    unsigned char c = (unsigned char)s[len - back];
    if ((c & 0xc0) == 0x80) continue; /* a continuation byte: look further back */
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/* The length of the valid UTF-8 character at s (n bytes left), 0 when invalid, -1 when it is
 * cut short by the end. */
static int utf8_char_len(const unsigned char *s, size_t n) {
  int need = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
  for (int i = 1; i < need; i++) {
    if ((size_t)i >= n) return -1;
    if ((s[i] & 0xc0) != 0x80) return 0;
  }
  if (need == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))) return 0; /* overlong, surrogate */
  if (need == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))) return 0;
  return need;
}

/* The text with every byte that is not part of valid UTF-8 replaced by U+FFFD (a model can pick
 * tokens whose bytes make no character); a character cut short at the end is kept as it is
 * unless `final`, as the next token may complete it. NULL when out of memory. */
static char *utf8_clean(const char *text, size_t len, int final) {
  char *out = gpux__malloc(len * 3 + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    int n = utf8_char_len((const unsigned char *)text + i, len - i);
    if (n < 0 && !final) {
      memcpy(out + o, text + i, len - i);
      o += len - i;
      break;
    }
    if (n <= 0) {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
      continue;
    }
    memcpy(out + o, text + i, (size_t)n);
    o += (size_t)n;
    i += (size_t)n;
  }
  out[o] = 0;
  return out;
}

/* The longest end of text that a stop text starts with (held back until it is known). */
static size_t stop_prefix_tail(const char *text, size_t len, const gpux_generate_options *o) {
  size_t hold = 0;
  for (int i = 0; i < o->n_stop; i++) {
    size_t sl = strlen(o->stop[i]);
    for (size_t k = GPUX__MIN(sl - 1, len); k > hold; k--)
      if (!memcmp(text + len - k, o->stop[i], k)) { hold = k; break; }
  }
  return hold;
}

int gpux__textgen_emit(const gpux__tokenizer *tok, const gpux_generate_options *g, gpux__textgen_state *st, size_t *emitted,
                   int final, int *stop) {
  char *raw = NULL;
  int rc = gpux__tokenizer_decode(tok, st->tokens, st->n_tokens, 1, &raw);
  if (rc) return rc;
  char *text = utf8_clean(raw, strlen(raw), final);
  free(raw);
  if (!text) return GPUX_E_NOMEM;
  size_t len = strlen(text);
  for (int i = 0; i < g->n_stop; i++) {
    if (!g->stop[i][0]) continue;
    char *hit = strstr(text + (*emitted > strlen(g->stop[i]) ? *emitted - strlen(g->stop[i]) : 0), g->stop[i]);
    if (hit && (size_t)(hit - text) < len) {
      len = (size_t)(hit - text);
      *stop = 1;
    }
  }
  text[len] = 0;
  size_t ready = len;
  if (!final && !*stop) {
    ready -= utf8_incomplete_tail(text, ready);
    ready -= stop_prefix_tail(text, ready, g);
  }
  if (ready > *emitted && g->on_token) {
    char save = text[ready];
    text[ready] = 0;
    if (g->on_token(g->ctx, text + *emitted, st->n_tokens ? st->tokens[st->n_tokens - 1] : -1)) *stop = 1;
    text[ready] = save;
  }
  if (ready > *emitted) *emitted = ready;
  free(st->text);
  st->text = text;
  return 0;
}

/* ---- model names ---- */

int gpux__textgen_find_input(gpux_model *m, const char *name) {
  gpux_value_info vi;
  for (int i = 0; i < gpux_model_input_count(m); i++)
    if (!gpux_model_input_info(m, i, &vi) && !strcmp(vi.name, name)) return i;
  return -1;
}

int gpux__textgen_find_output(gpux_model *m, const char *name) {
  gpux_value_info vi;
  for (int i = 0; i < gpux_model_output_count(m); i++)
    if (!gpux_model_output_info(m, i, &vi) && !strcmp(vi.name, name)) return i;
  return -1;
}

int gpux__textgen_argmax_token(const gpux_tensor *t, int64_t row, int64_t n_rows, const char *what, int64_t *token) {
  int64_t c = t->kind == GPUX_KIND_TENSOR && t->data ? gpux_tensor_count(t) : 0;
  if ((t->dtype != GPUX_DT_INT64 && t->dtype != GPUX_DT_INT32) || c < n_rows || c % n_rows)
    return gpux__error(GPUX_E_MODEL, "%s: the logits' ArgMax has an unexpected shape", what);
  *token = gpux__load_i64(t->dtype, t->data, (row + 1) * (c / n_rows) - 1);
  return 0;
}
