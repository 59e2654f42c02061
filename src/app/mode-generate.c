/* mode-generate.c — text generation (`generate:` in a GPUXfile) with a decoder-only language
 * model exported the way transformers and optimum export them:
 *
 *   in:  input_ids [batch, seq], attention_mask [batch, past + seq], position_ids [batch, seq],
 *        past_key_values.N.key / .value [batch, heads, past, head_dim]   (all but input_ids optional)
 *   out: logits [batch, seq, vocab], present.N.key / .value [batch, heads, past + seq, head_dim]
 *
 * The prompt is tokenized (preprocessing.tokenizer) and run once (prefill); then one token a step
 * is chosen from the last position's logits (greedy, or sampled with temperature, top-k, top-p
 * and a repetition penalty from a seeded generator) and fed back with the cache. The cache stays
 * on the session's device between steps (gpux_session_run_values with kept outputs): each step
 * brings back only the logits. A model without a cache is run on the whole sequence each step.
 * Generation ends at the end-of-text token, a stop text, max_new_tokens or max_context, or when
 * the caller's token callback asks. Each piece of text is handed to the callback as soon as it is
 * whole (no split UTF-8 character, no possible start of a stop text). */
#include "app/mode.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

typedef struct {
  int in, out;                  /* a past input and the present output that feeds it next step */
  int axis;                     /* its length axis */
} kv_pair;

/* The model's interface, found from its inputs and outputs. */
typedef struct {
  int ids, mask, pos, cache_branch, logits; /* input/output indexes; -1 when absent */
  int n_kv;
  kv_pair *kv;
  int64_t max_positions;        /* from a fixed position_ids range, or 0 */
} gen_iface;

/* What a run leaves for its answer (a->mode_state). */
typedef struct {
  int64_t *tokens;              /* generated ids */
  int64_t n_tokens, cap, n_prompt;
  int64_t *prompt;              /* (n_prompt) the prompt's ids */
  char *text;
  const char *finish;           /* "stop" or "length" */
  double first_ms, total_ms;
  double download_bytes_per_token;
} gen_state;

static int find_input(gpux_model *m, const char *name) {
  gpux_value_info vi;
  for (int i = 0; i < gpux_model_input_count(m); i++)
    if (!gpux_model_input_info(m, i, &vi) && !strcmp(vi.name, name)) return i;
  return -1;
}

static int find_output(gpux_model *m, const char *name) {
  gpux_value_info vi;
  for (int i = 0; i < gpux_model_output_count(m); i++)
    if (!gpux_model_output_info(m, i, &vi) && !strcmp(vi.name, name)) return i;
  return -1;
}

/* The present output for a past input: "past_key_values.0.key" -> "present.0.key" (also "past."
 * -> "present."). */
static int present_for(gpux_model *m, const char *past) {
  static const char *const prefixes[] = {"past_key_values", "past"};
  for (int p = 0; p < 2; p++) {
    size_t n = strlen(prefixes[p]);
    if (strncmp(past, prefixes[p], n)) continue;
    char name[512];
    snprintf(name, sizeof name, "present%s", past + n);
    int o = find_output(m, name);
    if (o >= 0) return o;
  }
  return -1;
}

static void iface_free(gen_iface *f) {
  free(f->kv);
  memset(f, 0, sizeof *f);
}

/* Reads the interface; errors say which input or output does not fit. */
static int iface_of(const gpux__spec *s, gpux_model *m, gen_iface *f) {
  memset(f, 0, sizeof *f);
  f->mask = f->pos = f->cache_branch = -1;
  const char *ids_name = s->tokenizer.input_ids ? s->tokenizer.input_ids : "input_ids";
  if ((f->ids = find_input(m, ids_name)) < 0)
    return gpux__error(GPUX_E_MODEL, "generate: the model has no input '%s' (token ids)", ids_name);
  f->mask = find_input(m, s->tokenizer.attention_mask ? s->tokenizer.attention_mask : "attention_mask");
  f->pos = find_input(m, "position_ids");
  f->cache_branch = find_input(m, "use_cache_branch");
  f->logits = find_output(m, "logits");
  if (f->logits < 0) f->logits = 0;
  int n_in = gpux_model_input_count(m);
  if (!(f->kv = gpux__calloc((size_t)n_in + 1, sizeof *f->kv))) return GPUX_E_NOMEM;
  for (int i = 0; i < n_in; i++) {
    gpux_value_info vi;
    gpux_model_input_info(m, i, &vi);
    if (i == f->ids || i == f->mask || i == f->pos || i == f->cache_branch) continue;
    if (strncmp(vi.name, "past", 4)) {
      if (vi.optional) continue;
      iface_free(f);
      return gpux__error(GPUX_E_MODEL, "generate: model input '%s' is none that generation feeds (input_ids, "
                                       "attention_mask, position_ids, past_key_values.N.key/value)", vi.name);
    }
    kv_pair *kv = &f->kv[f->n_kv];
    kv->in = i;
    if ((kv->out = present_for(m, vi.name)) < 0) {
      iface_free(f);
      return gpux__error(GPUX_E_MODEL, "generate: the model has no present output for its cache input '%s'", vi.name);
    }
    /* the length axis: the one named like a length, else the first unfixed one after batch */
    kv->axis = -1;
    for (int d = 1; d < vi.ndim && kv->axis < 0; d++)
      if (vi.dim_names[d] && (strstr(vi.dim_names[d], "past") || strstr(vi.dim_names[d], "seq"))) kv->axis = d;
    for (int d = 1; d < vi.ndim && kv->axis < 0; d++)
      if (vi.dims[d] < 0) kv->axis = d;
    for (int d = 1; d < vi.ndim; d++)
      if (d != kv->axis && vi.dims[d] <= 0) kv->axis = -2;
    if (kv->axis < 0 || vi.ndim < 3) {
      iface_free(f);
      return gpux__error(GPUX_E_SHAPE, "generate: cache input '%s' must be [batch, heads, past, head_dim] with fixed "
                                       "heads and head_dim", vi.name);
    }
    f->n_kv++;
  }
  return 0;
}

static int gen_check(gpux__spec *s, gpux_model *const *models, int n_models) {
  gen_iface f;
  int rc = iface_of(s, models[0], &f);
  if (rc) return gpux__spec_fail(s, rc, s->generate.line, "generate", "%s", gpux_last_error());
  iface_free(&f);
  /* the app takes one text (the prompt) and gives one text */
  if (s->n_inputs == 0) {
    if (!(s->inputs = gpux__arena_alloc(&s->arena, sizeof *s->inputs))) return GPUX_E_NOMEM;
    s->inputs[0] = (gpux__spec_io){.name = gpux__spec_strdup(s, "prompt"), .ndim = -1};
    s->n_inputs = 1;
  }
  if (s->n_inputs != 1) return gpux__spec_fail(s, GPUX_E_INVALID, s->inputs[1].line, "inputs", "generate takes one input (the prompt)");
  s->inputs[0].type = GPUX__IO_STRING;
  s->inputs[0].dtype = GPUX_DT_STRING;
  s->inputs[0].ndim = 1;
  s->inputs[0].dims[0] = 1;
  if (s->n_outputs == 0) {
    if (!(s->outputs = gpux__arena_alloc(&s->arena, sizeof *s->outputs))) return GPUX_E_NOMEM;
    s->outputs[0] = (gpux__spec_io){.name = gpux__spec_strdup(s, "text"), .ndim = -1};
    s->n_outputs = 1;
  }
  if (s->n_outputs != 1) return gpux__spec_fail(s, GPUX_E_INVALID, s->outputs[1].line, "outputs", "generate gives one output (the text)");
  s->outputs[0].type = GPUX__IO_STRING;
  s->outputs[0].dtype = GPUX_DT_STRING;
  s->outputs[0].ndim = 1;
  s->outputs[0].dims[0] = 1;
  if (s->n_post) return gpux__spec_fail(s, GPUX_E_INVALID, s->post[0].line, "postprocessing", "generate writes text; remove postprocessing");
  return 0;
}

static int gen_validate(const gpux_app *a) {
  gen_iface f;
  int rc = iface_of(a->spec, a->models[0], &f);
  iface_free(&f);
  return rc;
}

static int gen_io_count(const gpux_app *a, int output) { return 1; }

static int gen_io_info(const gpux_app *a, int output, int i, gpux_value_info *vi) {
  memset(vi, 0, sizeof *vi);
  vi->name = output ? a->spec->outputs[0].name : a->spec->inputs[0].name;
  vi->dtype = GPUX_DT_STRING;
  vi->ndim = 1;
  vi->dims[0] = 1;
  return 0;
}

static void gen_release(gpux_app *a) {
  gen_state *st = a->mode_state;
  if (st) {
    free(st->tokens);
    free(st->prompt);
    free(st->text);
  }
  free(st);
  a->mode_state = NULL;
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

typedef struct {
  float p;
  int64_t id;
} cand;

static int cand_desc(const void *x, const void *y) {
  const cand *a = x, *b = y;
  return a->p > b->p ? -1 : a->p < b->p ? 1 : (a->id > b->id) - (a->id < b->id);
}

/* The next token from one row of logits (changed in place). */
static int64_t choose(float *logit, int64_t vocab, const gpux_generate_options *o, const int64_t *seen, int64_t n_seen,
                      uint64_t *rng, cand *work) {
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
    work[i] = (cand){(float)e, i};
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
  double r = rng_uniform(rng) * sum, acc = 0;
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

/* ---- the loop ---- */

typedef struct {
  gpux_app *a;
  gen_iface f;
  gen_state *st;
  gpux_generate_options o;
  int64_t eos;
  gpux_tensor inputs[4];        /* ids, mask, positions, cache branch */
  gpux_input *in;
  gpux_output *out;
  gpux_device_tensor **cache;   /* (n_kv) the last step's present values */
  gpux_tensor *empty;           /* (n_kv) zero-length past values for the first step */
  cand *work;
  size_t emitted;               /* bytes of st->text handed to the callback */
} gen_run;

static int push_token(gen_state *st, int64_t t) {
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

/* An int64 (or int32) [1, n] tensor of `vals`, or of start, start+1, ... when vals is NULL. */
static int ids_tensor(gpux_tensor *t, int dtype, const int64_t *vals, int64_t n, int64_t start) {
  gpux_tensor_free(t);
  int64_t dims[2] = {1, n};
  int rc = gpux_tensor_init(t, dtype == GPUX_DT_INT32 ? GPUX_DT_INT32 : GPUX_DT_INT64, 2, dims);
  for (int64_t i = 0; i < n && !rc; i++) {
    int64_t v = vals ? vals[i] : start + i;
    if (t->dtype == GPUX_DT_INT32) ((int32_t *)t->data)[i] = (int32_t)v;
    else ((int64_t *)t->data)[i] = v;
  }
  return rc;
}

static int input_dtype(gpux_model *m, int i) {
  gpux_value_info vi;
  return i >= 0 && !gpux_model_input_info(m, i, &vi) ? vi.dtype : GPUX_DT_INT64;
}

/* One step: feeds `ids` (n of them) after `past` cached positions; the next token's logits
 * come back in *logits (the caller frees). */
static int step(gen_run *r, const int64_t *ids, int64_t n, int64_t past, gpux_tensor *logits) {
  gpux_app *a = r->a;
  gpux_model *m = a->models[0];
  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m), rc;
  memset(r->in, 0, sizeof *r->in * (size_t)n_in);
  for (int i = 0; i < n_out; i++) {
    gpux_tensor_free(&r->out[i].tensor);
    r->out[i] = (gpux_output){0};
  }
  if ((rc = ids_tensor(&r->inputs[0], input_dtype(m, r->f.ids), ids, n, 0))) return rc;
  r->in[r->f.ids].tensor = &r->inputs[0];
  if (r->f.mask >= 0) {
    if ((rc = ids_tensor(&r->inputs[1], input_dtype(m, r->f.mask), NULL, past + n, 0))) return rc;
    for (int64_t i = 0; i < past + n; i++) {
      if (r->inputs[1].dtype == GPUX_DT_INT32) ((int32_t *)r->inputs[1].data)[i] = 1;
      else ((int64_t *)r->inputs[1].data)[i] = 1;
    }
    r->in[r->f.mask].tensor = &r->inputs[1];
  }
  if (r->f.pos >= 0) {
    if ((rc = ids_tensor(&r->inputs[2], input_dtype(m, r->f.pos), NULL, n, past))) return rc;
    r->in[r->f.pos].tensor = &r->inputs[2];
  }
  if (r->f.cache_branch >= 0) {
    gpux_tensor_free(&r->inputs[3]);
    int64_t one = 1;
    if ((rc = gpux_tensor_init(&r->inputs[3], GPUX_DT_BOOL, 1, &one))) return rc;
    ((uint8_t *)r->inputs[3].data)[0] = past > 0;
    r->in[r->f.cache_branch].tensor = &r->inputs[3];
  }
  for (int k = 0; k < r->f.n_kv; k++) {
    if (r->cache[k]) r->in[r->f.kv[k].in].device = r->cache[k];
    else r->in[r->f.kv[k].in].tensor = &r->empty[k];
    r->out[r->f.kv[k].out].keep = 1;
  }
  int given = 0;
  for (int i = 0; i < n_in; i++)
    if (r->in[i].tensor || r->in[i].device) given = i + 1;
  rc = gpux_session_run_values(a->sessions[0], r->in, given, r->out, n_out);
  if (rc) return rc;
  for (int k = 0; k < r->f.n_kv; k++) {
    gpux_device_tensor_free(r->cache[k]);
    r->cache[k] = r->out[r->f.kv[k].out].device;
    r->out[r->f.kv[k].out].device = NULL;
  }
  *logits = r->out[r->f.logits].tensor;
  memset(&r->out[r->f.logits].tensor, 0, sizeof r->out[r->f.logits].tensor);
  return 0;
}

/* Decodes the generated tokens, trims at a stop text, and hands the new whole text to the
 * callback. *stop is set when a stop text was found or the callback asked to stop. */
static int emit(gen_run *r, int final, int *stop) {
  gen_state *st = r->st;
  const gpux_generate_options *g = &r->o;
  char *raw = NULL;
  int rc = gpux__tokenizer_decode(r->a->tokenizer, st->tokens, st->n_tokens, 1, &raw);
  if (rc) return rc;
  char *text = utf8_clean(raw, strlen(raw), final);
  free(raw);
  if (!text) return GPUX_E_NOMEM;
  size_t len = strlen(text);
  for (int i = 0; i < g->n_stop; i++) {
    if (!g->stop[i][0]) continue;
    char *hit = strstr(text + (r->emitted > strlen(g->stop[i]) ? r->emitted - strlen(g->stop[i]) : 0), g->stop[i]);
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
  if (ready > r->emitted && r->o.on_token) {
    char save = text[ready];
    text[ready] = 0;
    if (r->o.on_token(r->o.ctx, text + r->emitted, st->n_tokens ? st->tokens[st->n_tokens - 1] : -1)) *stop = 1;
    text[ready] = save;
  }
  if (ready > r->emitted) r->emitted = ready;
  free(st->text);
  st->text = text;
  return 0;
}

/* The end-of-text token: generate.eos, else the tokenizer's usual ones; -1 when none. */
static int64_t eos_id(const gpux_app *a) {
  const char *eos = a->spec->generate.eos;
  if (eos) return gpux__tokenizer_token_id(a->tokenizer, eos);
  static const char *const usual[] = {"<|endoftext|>", "</s>", "<|im_end|>", "<|end_of_text|>", "<eos>", "[SEP]"};
  for (size_t i = 0; i < GPUX__ARRAY_LEN(usual); i++) {
    int64_t id = gpux__tokenizer_token_id(a->tokenizer, usual[i]);
    if (id >= 0) return id;
  }
  return -1;
}

static void options_from_spec(const gpux__spec_generate *g, const gpux_generate_options *req, gpux_generate_options *o) {
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

static int gen_loop(gen_run *r, const gpux_tensor *prompt_ids, double *ms) {
  gpux_app *a = r->a;
  gen_state *st = r->st;
  const gpux__spec_generate *g = &a->spec->generate;
  int64_t n_prompt = gpux_tensor_count(prompt_ids);
  if (n_prompt < 1) return gpux__error(GPUX_E_INVALID, "generate: the prompt has no tokens");
  int64_t max_ctx = g->max_context ? g->max_context : 2048;
  if (n_prompt >= max_ctx)
    return gpux__error(GPUX_E_INVALID, "generate: the prompt is %lld tokens; max_context is %lld", (long long)n_prompt,
                       (long long)max_ctx);
  int64_t *seq = gpux__malloc(sizeof *seq * (size_t)(n_prompt + r->o.max_new_tokens + 1));
  if (!seq) return GPUX_E_NOMEM;
  for (int64_t i = 0; i < n_prompt; i++) seq[i] = gpux__load_i64(prompt_ids->dtype, prompt_ids->data, i);
  int64_t n_seq = n_prompt, past = 0, vocab = 0;
  uint64_t rng = r->o.seed >= 0 ? (uint64_t)r->o.seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)st;
  gpux_run_stats s0, s1;
  gpux_session_stats(a->sessions[0], &s0);
  int rc = 0, stop = 0;
  double t0 = gpux__now_ms();
  free(st->prompt);
  if (!(st->prompt = gpux__malloc(sizeof *st->prompt * (size_t)n_prompt))) { free(seq); return GPUX_E_NOMEM; }
  memcpy(st->prompt, seq, sizeof *seq * (size_t)n_prompt);
  st->n_prompt = n_prompt;
  st->finish = "length";
  for (int step_no = 0; step_no < r->o.max_new_tokens && !rc && !stop; step_no++) {
    if ((rc = gpux__cancelled())) break;
    if (n_seq >= max_ctx) break;
    gpux_tensor logits = {0};
    /* with a cache: the prompt, then the last token; without: the whole sequence each time */
    const int64_t *feed = r->f.n_kv ? seq + past : seq;
    int64_t n_feed = r->f.n_kv ? n_seq - past : n_seq;
    if ((rc = step(r, feed, n_feed, r->f.n_kv ? past : 0, &logits))) break;
    past = n_seq;
    if (logits.ndim < 2 || logits.kind != GPUX_KIND_TENSOR || !gpux__dtype_is_float(logits.dtype)) {
      rc = gpux__error(GPUX_E_MODEL, "generate: logits must be float [batch, seq, vocab], got %s", gpux_dtype_name(logits.dtype));
      gpux_tensor_free(&logits);
      break;
    }
    int64_t v = logits.dims[logits.ndim - 1], rows = gpux_tensor_count(&logits) / (v ? v : 1);
    if (!vocab) {
      vocab = v;
      if (!(r->work = gpux__malloc(sizeof *r->work * (size_t)vocab))) { gpux_tensor_free(&logits); rc = GPUX_E_NOMEM; break; }
    }
    float *row = gpux__malloc(sizeof *row * (size_t)v);
    if (!row || v != vocab) {
      free(row);
      gpux_tensor_free(&logits);
      rc = row ? gpux__error(GPUX_E_SHAPE, "generate: the vocabulary changed between steps") : GPUX_E_NOMEM;
      break;
    }
    for (int64_t i = 0; i < v; i++) row[i] = (float)gpux__load_f64(logits.dtype, logits.data, (rows - 1) * v + i);
    gpux_tensor_free(&logits);
    int64_t next = choose(row, v, &r->o, seq, n_seq, &rng, r->work);
    free(row);
    if (step_no == 0) st->first_ms = gpux__now_ms() - t0;
    if (next == r->eos) { st->finish = "stop"; break; }
    seq[n_seq++] = next;
    if ((rc = push_token(st, next))) break;
    if ((rc = emit(r, 0, &stop))) break;
    if (stop) st->finish = "stop";
  }
  if (!rc && !stop) rc = emit(r, 1, &stop);
  st->total_ms = gpux__now_ms() - t0;
  *ms += st->total_ms;
  gpux_session_stats(a->sessions[0], &s1);
  if (st->n_tokens) st->download_bytes_per_token = (double)(s1.download_bytes - s0.download_bytes) / (double)st->n_tokens;
  free(seq);
  return rc;
}

static int gen_run_mode(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *ms) {
  gen_state *st = a->mode_state;
  if (!st && !(st = a->mode_state = gpux__calloc(1, sizeof *st))) return GPUX_E_NOMEM;
  free(st->text);
  st->text = NULL;
  st->n_tokens = 0;
  st->first_ms = st->total_ms = st->download_bytes_per_token = 0;
  gen_run r = {.a = a, .st = st};
  int rc = iface_of(a->spec, a->models[0], &r.f);
  if (rc) return rc;
  options_from_spec(&a->spec->generate, a->generate, &r.o);
  r.eos = eos_id(a);
  gpux_model *m = a->models[0];
  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m);
  r.in = gpux__calloc((size_t)n_in + 1, sizeof *r.in);
  r.out = gpux__calloc((size_t)n_out + 1, sizeof *r.out);
  r.cache = gpux__calloc((size_t)r.f.n_kv + 1, sizeof *r.cache);
  r.empty = gpux__calloc((size_t)r.f.n_kv + 1, sizeof *r.empty);
  if (!r.in || !r.out || !r.cache || !r.empty) rc = GPUX_E_NOMEM;
  for (int k = 0; k < r.f.n_kv && !rc; k++) { /* [1, heads, 0, head_dim] */
    gpux_value_info vi;
    gpux_model_input_info(m, r.f.kv[k].in, &vi);
    int64_t dims[GPUX_MAX_DIMS];
    for (int d = 0; d < vi.ndim; d++) dims[d] = d == 0 ? 1 : d == r.f.kv[k].axis ? 0 : vi.dims[d];
    rc = gpux_tensor_init(&r.empty[k], vi.dtype ? vi.dtype : GPUX_DT_FLOAT, vi.ndim, dims);
  }
  int ids = gpux__named_tensors_find(in, a->spec->tokenizer.input_ids ? a->spec->tokenizer.input_ids : "input_ids");
  if (!rc && ids < 0) rc = gpux__error(GPUX_E_INVALID, "generate: the prompt gave no token ids");
  if (!rc) rc = gen_loop(&r, &in->t[ids], ms);
  if (!rc) { /* the app's output: the text as a string tensor [1] */
    gpux_tensor t = {0};
    int64_t one = 1;
    if (!(rc = gpux_tensor_init(&t, GPUX_DT_STRING, 1, &one))) {
      if (!(((char **)t.data)[0] = gpux__strdup(st->text ? st->text : ""))) rc = GPUX_E_NOMEM;
      if (!rc) rc = gpux__named_tensors_add(out, a->spec->outputs[0].name, &t);
      gpux_tensor_free(&t);
    }
  }
  for (int k = 0; r.cache && k < r.f.n_kv; k++) gpux_device_tensor_free(r.cache[k]);
  for (int k = 0; r.empty && k < r.f.n_kv; k++) gpux_tensor_free(&r.empty[k]);
  for (int i = 0; r.out && i < n_out; i++) {
    gpux_tensor_free(&r.out[i].tensor);
    gpux_device_tensor_free(r.out[i].device);
  }
  for (int i = 0; i < 4; i++) gpux_tensor_free(&r.inputs[i]);
  free(r.in);
  free(r.out);
  free(r.cache);
  free(r.empty);
  free(r.work);
  iface_free(&r.f);
  return rc;
}

static void gen_answer(const gpux_app *a, cJSON *root) {
  const gen_state *st = a->mode_state;
  if (!st) return;
  cJSON_AddStringToObject(root, "text", st->text ? st->text : "");
  cJSON *toks = cJSON_AddArrayToObject(root, "tokens");
  for (int64_t i = 0; i < st->n_tokens; i++) cJSON_AddItemToArray(toks, cJSON_CreateNumber((double)st->tokens[i]));
  cJSON_AddNumberToObject(root, "prompt_tokens", (double)st->n_prompt);
  cJSON *pids = cJSON_AddArrayToObject(root, "prompt_ids");
  for (int64_t i = 0; i < st->n_prompt && st->prompt; i++) cJSON_AddItemToArray(pids, cJSON_CreateNumber((double)st->prompt[i]));
  cJSON_AddNumberToObject(root, "generated_tokens", (double)st->n_tokens);
  cJSON_AddStringToObject(root, "finish_reason", st->finish ? st->finish : "length");
  cJSON_AddItemToObject(root, "time_to_first_token_ms", gpux__app_json_num(st->first_ms, 1));
  double decode_ms = st->total_ms - st->first_ms;
  cJSON_AddItemToObject(root, "tokens_per_second",
                        gpux__app_json_num(st->n_tokens > 1 && decode_ms > 0 ? (double)(st->n_tokens - 1) * 1000.0 / decode_ms : 0, 1));
  cJSON_AddItemToObject(root, "download_bytes_per_token", gpux__app_json_num(st->download_bytes_per_token, 1));
}

static const char *gen_text(const gpux_app *a) {
  const gen_state *st = a->mode_state;
  return st && st->text ? st->text : "";
}

const gpux__mode gpux__mode_generate = {
  /* .name     = */ "generate",
  /* .direct   = */ 0,
  /* .check    = */ gen_check,
  /* .validate = */ gen_validate,
  /* .io_count = */ gen_io_count,
  /* .io_info  = */ gen_io_info,
  /* .run      = */ gen_run_mode,
  /* .answer   = */ gen_answer,
  /* .release  = */ gen_release,
  /* .text     = */ gen_text,
};
