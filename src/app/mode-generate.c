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
 * on the session's device between steps (gpux_session_run_values with kept outputs). The session
 * computes the logits of the last position only (the session option last_position,
 * runtime/last-position.c), and their ArgMax besides: a greedy step with no repetition penalty
 * reads back the ArgMax alone (8 bytes) and leaves the logits on the device; any other step reads
 * back the one row of logits. A model without a cache is run on the whole sequence each step.
 * Generation ends at the end-of-text token, a stop text, max_new_tokens or max_context, or when
 * the caller's token callback asks. Each piece of text is handed to the callback as soon as it is
 * whole (no split UTF-8 character, no possible start of a stop text). Choosing tokens, the text
 * as it grows and the answer are shared with mode-seq2seq.c (textgen.c). */
#include "app/textgen.h"
#include <cjson/cJSON.h>
#include <stdio.h>

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

/* The present output for a past input: "past_key_values.0.key" -> "present.0.key" (also "past."
 * -> "present."). */
static int present_for(gpux_model *m, const char *past) {
  static const char *const prefixes[] = {"past_key_values", "past"};
  for (int p = 0; p < 2; p++) {
    size_t n = strlen(prefixes[p]);
    if (strncmp(past, prefixes[p], n)) continue;
    char name[512];
    snprintf(name, sizeof name, "present%s", past + n);
    int o = gpux__textgen_find_output(m, name);
    if (o >= 0) return o;
  }
  return -1;
}

/* The logits' output: "logits", else the first. */
static int logits_output(gpux_model *m) {
  int o = gpux__textgen_find_output(m, "logits");
  return o < 0 ? 0 : o;
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
  if ((f->ids = gpux__textgen_find_input(m, ids_name)) < 0)
    return gpux__error(GPUX_E_MODEL, "generate: the model has no input '%s' (token ids)", ids_name);
  f->mask = gpux__textgen_find_input(m, s->tokenizer.attention_mask ? s->tokenizer.attention_mask : "attention_mask");
  f->pos = gpux__textgen_find_input(m, "position_ids");
  f->cache_branch = gpux__textgen_find_input(m, "use_cache_branch");
  f->logits = logits_output(m);
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

/* The session computes the logits of the last position only, and their ArgMax as one more output
 * (gen_run.argmax). */
static void gen_session_options(const gpux_app *a, int i, gpux_session_options *so) {
  gpux_value_info vi;
  if (i == 0 && !gpux_model_output_info(a->models[0], logits_output(a->models[0]), &vi)) so->last_position = vi.name;
}

static int gen_io_count(const gpux_app *a, int output) { return 1; }

static int gen_io_info(const gpux_app *a, int output, int i, gpux_value_info *vi) {
  return gpux__textgen_io_info(a, output, vi);
}

/* ---- the loop ---- */

typedef struct {
  gpux_app *a;
  gen_iface f;
  gpux__textgen_state *st;
  gpux_generate_options o;
  int64_t eos;
  gpux_tensor inputs[4];        /* ids, mask, positions, cache branch */
  gpux_input *in;
  gpux_output *out;             /* (the model's outputs + 1) the last one is the logits' ArgMax
                                   (gen_session_options) */
  int argmax;                   /* its index: the model's output count */
  gpux_device_tensor **cache;   /* (n_kv) the last step's present values */
  gpux_tensor *empty;           /* (n_kv) zero-length past values for the first step */
} gen_run;

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

/* Whether steps may read back the ArgMax of the logits instead of the logits: greedy, and no
 * repetition penalty (nothing else is done to the logits on the host). */
static int greedy(const gpux_generate_options *o) { return o->temperature <= 0 && o->repetition_penalty == 1.0; }

/* Clears r->out (the model's outputs and the ArgMax) for a step. */
static void outputs_clear(gen_run *r) {
  for (int i = 0; i <= r->argmax; i++) {
    gpux_tensor_free(&r->out[i].tensor);
    gpux_device_tensor_free(r->out[i].device);
    r->out[i] = (gpux_output){0};
  }
}

/* Runs r's session on r->in (set up to input `given`): with `argmax`, the logits stay on the
 * device (dropped) and their ArgMax comes back instead. */
static int run_step(gen_run *r, int given, int argmax) {
  if (argmax) r->out[r->f.logits].keep = 1;
  int rc = gpux_session_run_values(r->a->sessions[0], r->in, given, r->out, argmax ? r->argmax + 1 : r->argmax);
  if (!rc && argmax) {
    gpux_device_tensor_free(r->out[r->f.logits].device);
    r->out[r->f.logits].device = NULL;
  }
  return rc;
}

/* One step: feeds `ids` (n of them) after `past` cached positions; what comes back is in *got
 * (the caller frees): with `argmax`, the ArgMax of the logits (gpux__textgen_argmax_token), else the next
 * token's logits. */
static int step(gen_run *r, const int64_t *ids, int64_t n, int64_t past, int argmax, gpux_tensor *got) {
  gpux_app *a = r->a;
  gpux_model *m = a->models[0];
  int n_in = gpux_model_input_count(m), rc;
  memset(r->in, 0, sizeof *r->in * (size_t)n_in);
  outputs_clear(r);
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
  if ((rc = run_step(r, given, argmax))) return rc;
  for (int k = 0; k < r->f.n_kv; k++) {
    gpux_device_tensor_free(r->cache[k]);
    r->cache[k] = r->out[r->f.kv[k].out].device;
    r->out[r->f.kv[k].out].device = NULL;
  }
  int o = argmax ? r->argmax : r->f.logits;
  *got = r->out[o].tensor;
  memset(&r->out[o].tensor, 0, sizeof r->out[o].tensor);
  return 0;
}

static int gen_loop(gen_run *r, const gpux_tensor *prompt_ids, double *ms) {
  gpux_app *a = r->a;
  gpux__textgen_state *st = r->st;
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
  int64_t n_seq = n_prompt, past = 0;
  gpux__textgen_chooser ch;
  gpux__textgen_chooser_init(&ch, &r->o, st);
  gpux_run_stats s0, s_pre, s1;
  gpux_session_stats(a->sessions[0], &s0);
  s_pre = s0;
  int rc = gpux__textgen_set_prompt(st, seq, n_prompt), stop = 0, argmax = greedy(&r->o), steps = 0;
  double t0 = gpux__now_ms();
  size_t emitted = 0;
  for (int step_no = 0; step_no < r->o.max_new_tokens && !rc && !stop; step_no++) {
    if ((rc = gpux__cancelled())) break;
    if (n_seq >= max_ctx) break;
    gpux_tensor got = {0};
    /* with a cache: the prompt, then the last token; without: the whole sequence each time */
    const int64_t *feed = r->f.n_kv ? seq + past : seq;
    int64_t n_feed = r->f.n_kv ? n_seq - past : n_seq;
    if ((rc = step(r, feed, n_feed, r->f.n_kv ? past : 0, argmax, &got))) break;
    if (!steps++) gpux_session_stats(a->sessions[0], &s_pre);
    past = n_seq;
    int64_t next;
    if (argmax) {
      rc = gpux__textgen_argmax_token(&got, 0, 1, "generate", &next);
      gpux_tensor_free(&got);
      if (rc) break;
    } else {
      float *row;
      rc = gpux__textgen_last_row(&ch, &got, "generate", &row);
      gpux_tensor_free(&got);
      if (rc) break;
      next = gpux__textgen_choose(&ch, row, &r->o, seq, n_seq);
      free(row);
    }
    if (step_no == 0) st->first_ms = gpux__now_ms() - t0;
    if (next == r->eos) { st->finish = "stop"; break; }
    seq[n_seq++] = next;
    if ((rc = gpux__textgen_push(st, next))) break;
    if ((rc = gpux__textgen_emit(a->tokenizer, &r->o, st, &emitted, 0, &stop))) break;
    if (stop) st->finish = "stop";
  }
  if (!rc && !stop) rc = gpux__textgen_emit(a->tokenizer, &r->o, st, &emitted, 1, &stop);
  st->total_ms = gpux__now_ms() - t0;
  *ms += st->total_ms;
  gpux_session_stats(a->sessions[0], &s1);
  st->prefill_download_bytes = (double)(s_pre.download_bytes - s0.download_bytes);
  if (steps > 1) st->download_bytes_per_token = (double)(s1.download_bytes - s_pre.download_bytes) / (double)(steps - 1);
  gpux__textgen_chooser_free(&ch);
  free(seq);
  return rc;
}

/* The model state of a gen_run (interface, IO arrays, empty past values); gen_run_teardown frees it. */
static int gen_run_setup(gen_run *r, gpux_app *a) {
  r->a = a;
  int rc = iface_of(a->spec, a->models[0], &r->f);
  if (rc) return rc;
  gpux_model *m = a->models[0];
  int n_in = gpux_model_input_count(m);
  r->argmax = gpux_model_output_count(m);
  r->in = gpux__calloc((size_t)n_in + 1, sizeof *r->in);
  r->out = gpux__calloc((size_t)r->argmax + 2, sizeof *r->out);
  r->cache = gpux__calloc((size_t)r->f.n_kv + 1, sizeof *r->cache);
  r->empty = gpux__calloc((size_t)r->f.n_kv + 1, sizeof *r->empty);
  if (!r->in || !r->out || !r->cache || !r->empty) return GPUX_E_NOMEM;
  for (int k = 0; k < r->f.n_kv && !rc; k++) { /* [1, heads, 0, head_dim] */
    gpux_value_info vi;
    gpux_model_input_info(m, r->f.kv[k].in, &vi);
    int64_t dims[GPUX_MAX_DIMS];
    for (int d = 0; d < vi.ndim; d++) dims[d] = d == 0 ? 1 : d == r->f.kv[k].axis ? 0 : vi.dims[d];
    rc = gpux_tensor_init(&r->empty[k], vi.dtype ? vi.dtype : GPUX_DT_FLOAT, vi.ndim, dims);
  }
  return rc;
}

static void gen_run_teardown(gen_run *r) {
  for (int k = 0; r->cache && k < r->f.n_kv; k++) gpux_device_tensor_free(r->cache[k]);
  for (int k = 0; r->empty && k < r->f.n_kv; k++) gpux_tensor_free(&r->empty[k]);
  if (r->out) outputs_clear(r);
  for (int i = 0; i < 4; i++) gpux_tensor_free(&r->inputs[i]);
  free(r->in);
  free(r->out);
  free(r->cache);
  free(r->empty);
  iface_free(&r->f);
}

static int gen_run_mode(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *ms) {
  gpux__textgen_state *st = gpux__textgen_state_reset(a);
  if (!st) return GPUX_E_NOMEM;
  gen_run r = {.st = st};
  int rc = gen_run_setup(&r, a);
  gpux__textgen_options(&a->spec->generate, a->generate, &r.o);
  r.eos = gpux__textgen_eos_id(a);
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
  gen_run_teardown(&r);
  return rc;
}

const gpux__mode gpux__mode_generate = {
  /* .name     = */ "generate",
  /* .direct   = */ 0,
  /* .check    = */ gen_check,
  /* .validate = */ gen_validate,
  /* .session_options = */ gen_session_options,
  /* .io_count = */ gen_io_count,
  /* .io_info  = */ gen_io_info,
  /* .run      = */ gen_run_mode,
  /* .answer   = */ gpux__textgen_answer,
  /* .release  = */ gpux__textgen_state_release,
  /* .text     = */ gpux__textgen_text,
};

/* ---- several generations sharing steps (continuous batching, for gpux serve's worker) ----
 * Each request's prompt runs alone (prefill, batch 1) and its first token is chosen; then it joins
 * the batch, and every decode step runs all joined requests as one model run of batch n: their
 * caches are rows of one [n, heads, len, head_dim] value per cache input. Requests of different
 * lengths are left-padded: row i's first pad[i] columns are padding, masked out by zeros in its
 * attention_mask row, and its position_ids count only its own tokens, so each row computes what it
 * would alone (padding gets zero weight in attention). When a request joins or leaves, the cache
 * values are read to the host, rearranged (rows added or dropped, the padding columns no row
 * needs any more trimmed) and uploaded once; steps in between keep them on the device. Needs a
 * model that takes attention_mask, position_ids and a cache, with a free batch dimension. */

typedef struct {
  gen_run r;                    /* the request's app, options and end-of-text token (no model state) */
  gpux__textgen_state st;
  gpux__textgen_chooser ch;
  size_t emitted;               /* bytes of its text handed out */
  int64_t *seq, n_seq;          /* prompt and generated ids */
  int64_t cached;               /* its positions in the cache (padding not counted) */
  int64_t new_tokens;           /* generated so far (the end-of-text token counts, as a step) */
  double decode_down;           /* bytes its decode steps read back (a shared step's split evenly) */
  int row;                      /* its row in the batch's cache */
  int finished, rc;
  int stop_text;                /* a stop text (or the caller) ended it: its text is final */
  void *tag;
  double t0;
  uint64_t shared_steps;        /* decode steps it ran together with other requests */
} gen_seq;

struct gpux__gen_batch {
  gpux_app *a;
  gen_run pre;                  /* model state for the prompts' runs (batch 1) and the interface */
  int max_rows;
  gen_seq **rows, **done;       /* (max_rows) running, in cache row order; finished, not yet taken */
  int n, n_done;
  gpux_device_tensor **cache;   /* (n_kv) the running rows' cache values, len columns */
  int64_t len;
  gpux_tensor feed[3];          /* input_ids, attention_mask, position_ids of a decode step */
  uint64_t steps, shared_steps;
};

static void seq_free(gen_seq *s) {
  if (!s) return;
  free(s->st.tokens);
  free(s->st.prompt);
  free(s->st.text);
  gpux__textgen_chooser_free(&s->ch);
  free(s->seq);
  free(s);
}

int gpux__gen_batchable(const gpux_app *a) {
  if (!a || !a->spec->generate.present || a->n_models != 1) return 0;
  gen_iface f;
  if (iface_of(a->spec, a->models[0], &f)) return 0;
  gpux_value_info vi;
  int ok = f.n_kv > 0 && f.mask >= 0 && f.pos >= 0 && f.cache_branch < 0 &&
           !gpux_model_input_info(a->models[0], f.ids, &vi) && vi.ndim == 2 && vi.dims[0] < 0;
  iface_free(&f);
  return ok;
}

int gpux__gen_batch_new(gpux_app *a, int max_rows, gpux__gen_batch **out) {
  *out = NULL;
  if (!gpux__gen_batchable(a)) return gpux__error(GPUX_E_UNSUPPORTED, "generate: this model's generations cannot share steps");
  gpux__gen_batch *b = gpux__calloc(1, sizeof *b);
  if (!b) return GPUX_E_NOMEM;
  b->a = a;
  b->max_rows = max_rows < 1 ? 1 : max_rows;
  int rc = gen_run_setup(&b->pre, a);
  b->rows = gpux__calloc((size_t)b->max_rows + 1, sizeof *b->rows);
  b->done = gpux__calloc((size_t)b->max_rows + 2, sizeof *b->done);
  b->cache = gpux__calloc((size_t)b->pre.f.n_kv + 1, sizeof *b->cache);
  if (!rc && (!b->rows || !b->done || !b->cache)) rc = GPUX_E_NOMEM;
  if (rc) {
    gpux__gen_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

void gpux__gen_batch_free(gpux__gen_batch *b) {
  if (!b) return;
  for (int i = 0; b->rows && i < b->n; i++) seq_free(b->rows[i]);
  for (int i = 0; b->done && i < b->n_done; i++) seq_free(b->done[i]);
  for (int k = 0; b->cache && k < b->pre.f.n_kv; k++) gpux_device_tensor_free(b->cache[k]);
  for (int i = 0; i < 3; i++) gpux_tensor_free(&b->feed[i]);
  gen_run_teardown(&b->pre);
  free(b->rows);
  free(b->done);
  free(b->cache);
  free(b);
}

int gpux__gen_batch_size(const gpux__gen_batch *b) { return b ? b->n : 0; }

void gpux__gen_batch_counts(const gpux__gen_batch *b, uint64_t *steps, uint64_t *shared) {
  *steps = b ? b->steps : 0;
  *shared = b ? b->shared_steps : 0;
}

/* Chooses s's next token from row `row` of what a step read back (`argmax`: the ArgMax output,
 * else the logits; the last position of that row's positions), records and emits it, and marks s
 * finished when it is done. */
static int seq_take(gen_seq *s, const gpux_tensor *got, int argmax, int64_t row, int64_t n_rows) {
  int64_t next;
  int rc;
  if (argmax) {
    if ((rc = gpux__textgen_argmax_token(got, row, n_rows, "generate", &next))) return rc;
  } else {
    /* row `row` of the batch as a tensor of its own (a view of the logits' data) */
    if (got->ndim < 2 || got->dims[0] != n_rows || !got->nbytes)
      return gpux__error(GPUX_E_SHAPE, "generate: logits of an unexpected shape");
    gpux_tensor view = *got;
    view.dims[0] = 1;
    view.nbytes = got->nbytes / (size_t)n_rows;
    view.data = (char *)got->data + view.nbytes * (size_t)row;
    float *vals;
    if ((rc = gpux__textgen_last_row(&s->ch, &view, "generate", &vals))) return rc;
    next = gpux__textgen_choose(&s->ch, vals, &s->r.o, s->seq, s->n_seq);
    free(vals);
  }
  if (!s->new_tokens) s->st.first_ms = gpux__now_ms() - s->t0;
  s->new_tokens++;
  int stop = 0;
  if (next == s->r.eos) {
    s->st.finish = "stop";
    s->finished = 1;
    return 0;
  }
  s->seq[s->n_seq++] = next;
  if ((rc = gpux__textgen_push(&s->st, next)) ||
      (rc = gpux__textgen_emit(s->r.a->tokenizer, &s->r.o, &s->st, &s->emitted, 0, &stop)))
    return rc;
  int64_t max_ctx = s->r.a->spec->generate.max_context ? s->r.a->spec->generate.max_context : 2048;
  if (stop) {
    s->st.finish = "stop";
    s->stop_text = 1;
  }
  if (stop || s->new_tokens >= s->r.o.max_new_tokens || s->n_seq >= max_ctx) s->finished = 1;
  return 0;
}

/* Moves finished (or failed) s to the done list, with its last text emitted. */
static void seq_done(gpux__gen_batch *b, gen_seq *s) {
  int stop = 0;
  if (s->new_tokens > 1) s->st.download_bytes_per_token = s->decode_down / (double)(s->new_tokens - 1);
  if (!s->rc && !s->stop_text) s->rc = gpux__textgen_emit(s->r.a->tokenizer, &s->r.o, &s->st, &s->emitted, 1, &stop);
  s->st.total_ms = gpux__now_ms() - s->t0;
  s->finished = 1;
  b->done[b->n_done++] = s;
}

/* Row r (real columns from `from`, n of them) of src into row dr of dst at column d_from, along
 * the length axis; heads and head_dim as in dst. */
static void copy_cols(const gpux_tensor *src, int64_t sr, int64_t from, gpux_tensor *dst, int64_t dr, int64_t d_from,
                      int64_t n, int axis) {
  size_t es = gpux_dtype_size(src->dtype);
  int64_t outer = 1, inner = 1;
  for (int d = 1; d < axis; d++) outer *= dst->dims[d];
  for (int d = axis + 1; d < dst->ndim; d++) inner *= dst->dims[d];
  int64_t sl = src->dims[axis], dl = dst->dims[axis];
  size_t ib = (size_t)inner * es;
  for (int64_t o = 0; o < outer; o++)
    memcpy((char *)dst->data + (size_t)((dr * outer + o) * dl + d_from) * ib,
           (const char *)src->data + (size_t)((sr * outer + o) * sl + from) * ib, (size_t)n * ib);
}

/* The batch's cache for rows keep[0..n_keep) (current rows) and `add` (with its own cache
 * add_cache, or NULL): as long as the longest of them, each left-padded. On success the batch
 * holds exactly these rows. */
static int recompose(gpux__gen_batch *b, gen_seq **keep, int n_keep, gen_seq *add, gpux_device_tensor **add_cache) {
  const gen_iface *f = &b->pre.f;
  int n2 = n_keep + (add != NULL), rc = 0;
  int64_t len = add ? add->cached : 0;
  for (int i = 0; i < n_keep; i++) len = GPUX__MAX(len, keep[i]->cached);
  gpux_device_tensor **nc = gpux__calloc((size_t)f->n_kv + 1, sizeof *nc);
  if (!nc) return GPUX_E_NOMEM;
  for (int k = 0; k < f->n_kv && !rc && n2 > 0; k++) {
    gpux_tensor old = {0}, nw = {0}, dst = {0};
    if (n_keep && b->cache[k]) rc = gpux_device_tensor_read(b->cache[k], &old);
    if (!rc && add) rc = gpux_device_tensor_read(add_cache[k], &nw);
    const gpux_tensor *like = add ? &nw : &old;
    if (!rc && (!like->data || like->ndim <= f->kv[k].axis)) rc = gpux__error(GPUX_E_INTERNAL, "generate: no cache to batch");
    if (!rc) {
      int64_t dims[GPUX_MAX_DIMS];
      memcpy(dims, like->dims, sizeof dims);
      dims[0] = n2;
      dims[f->kv[k].axis] = len;
      rc = gpux_tensor_init(&dst, like->dtype, like->ndim, dims);
    }
    for (int i = 0; i < n_keep && !rc; i++)
      copy_cols(&old, keep[i]->row, b->len - keep[i]->cached, &dst, i, len - keep[i]->cached, keep[i]->cached, f->kv[k].axis);
    if (!rc && add) copy_cols(&nw, 0, 0, &dst, n_keep, len - add->cached, add->cached, f->kv[k].axis);
    if (!rc) rc = gpux_device_tensor_upload(b->a->sessions[0], &dst, &nc[k]);
    gpux_tensor_free(&old);
    gpux_tensor_free(&nw);
    gpux_tensor_free(&dst);
  }
  if (rc) {
    for (int k = 0; k < f->n_kv; k++) gpux_device_tensor_free(nc[k]);
    free(nc);
    return rc;
  }
  for (int k = 0; k < f->n_kv; k++) {
    gpux_device_tensor_free(b->cache[k]);
    b->cache[k] = nc[k];
  }
  free(nc);
  gen_seq **rows = b->rows;
  if (keep != rows)
    for (int i = 0; i < n_keep; i++) rows[i] = keep[i];
  if (add) rows[n_keep] = add;
  b->n = n2;
  b->len = n2 ? len : 0;
  for (int i = 0; i < n2; i++) rows[i]->row = i;
  return 0;
}

/* Drops the finished rows from the batch (to the done list). */
static int drop_finished(gpux__gen_batch *b) {
  int any = 0;
  for (int i = 0; i < b->n; i++) any |= b->rows[i]->finished;
  if (!any) return 0;
  gen_seq **keep = gpux__malloc(sizeof *keep * (size_t)(2 * b->n));
  if (!keep) return GPUX_E_NOMEM;
  gen_seq **gone = keep + b->n;
  int n_keep = 0, n_gone = 0;
  for (int i = 0; i < b->n; i++) {
    if (b->rows[i]->finished) gone[n_gone++] = b->rows[i];
    else keep[n_keep++] = b->rows[i];
  }
  int rc = recompose(b, keep, n_keep, NULL, NULL);
  if (!rc)
    for (int i = 0; i < n_gone; i++) seq_done(b, gone[i]);
  free(keep);
  return rc;
}

int gpux__gen_batch_add(gpux__gen_batch *b, const gpux_app_input *inputs, int n_inputs, const gpux_generate_options *o,
                        void *tag) {
  if (b->n >= b->max_rows) return gpux__error(GPUX_E_INVALID, "generate: the batch is full");
  gpux_app *a = b->a;
  gen_seq *s = gpux__calloc(1, sizeof *s);
  if (!s) return GPUX_E_NOMEM;
  s->tag = tag;
  s->t0 = gpux__now_ms();
  s->r.a = a;
  s->r.st = &s->st;
  s->st.finish = "length";
  gpux__textgen_options(&a->spec->generate, o, &s->r.o);
  s->r.eos = gpux__textgen_eos_id(a);
  gpux__textgen_chooser_init(&s->ch, &s->r.o, s);
  gpux__named_tensors in = {0};
  const atomic_int *outer = gpux__cancel_enter(&a->cancel);
  int rc = gpux__app_prepare(a, inputs, n_inputs, &in);
  int ids = rc ? -1 : gpux__named_tensors_find(&in, a->spec->tokenizer.input_ids ? a->spec->tokenizer.input_ids : "input_ids");
  int64_t n_prompt = ids >= 0 ? gpux_tensor_count(&in.t[ids]) : 0;
  int64_t max_ctx = a->spec->generate.max_context ? a->spec->generate.max_context : 2048;
  if (!rc && ids < 0) rc = gpux__error(GPUX_E_INVALID, "generate: the prompt gave no token ids");
  if (!rc && n_prompt < 1) rc = gpux__error(GPUX_E_INVALID, "generate: the prompt has no tokens");
  if (!rc && n_prompt >= max_ctx)
    rc = gpux__error(GPUX_E_INVALID, "generate: the prompt is %lld tokens; max_context is %lld", (long long)n_prompt,
                     (long long)max_ctx);
  if (!rc && !(s->seq = gpux__malloc(sizeof *s->seq * (size_t)(n_prompt + s->r.o.max_new_tokens + 1)))) rc = GPUX_E_NOMEM;
  if (!rc) {
    for (int64_t i = 0; i < n_prompt; i++) s->seq[i] = gpux__load_i64(in.t[ids].dtype, in.t[ids].data, i);
    s->n_seq = n_prompt;
    rc = gpux__textgen_set_prompt(&s->st, s->seq, n_prompt);
  }
  gpux__named_tensors_free(&in);
  /* the prompt alone, then its first token */
  gpux_tensor got = {0};
  gpux_run_stats s0, s1;
  gpux_session_stats(a->sessions[0], &s0);
  if (!rc) rc = step(&b->pre, s->seq, s->n_seq, 0, greedy(&s->r.o), &got);
  gpux_session_stats(a->sessions[0], &s1);
  s->st.prefill_download_bytes = (double)(s1.download_bytes - s0.download_bytes);
  if (!rc) {
    s->cached = s->n_seq;
    rc = seq_take(s, &got, greedy(&s->r.o), 0, 1);
  }
  gpux_tensor_free(&got);
  gpux__cancel_leave(outer);
  if (!rc && !s->finished && !b->n) { /* the first row: its cache is the batch's as it is */
    for (int k = 0; k < b->pre.f.n_kv; k++) {
      b->cache[k] = b->pre.cache[k];
      b->pre.cache[k] = NULL;
    }
    b->rows[0] = s;
    s->row = 0;
    b->n = 1;
    b->len = s->cached;
  } else if (!rc && !s->finished) {
    rc = recompose(b, b->rows, b->n, s, b->pre.cache);
  }
  for (int k = 0; k < b->pre.f.n_kv; k++) { /* the prompt's cache: copied into the batch's, or not needed */
    gpux_device_tensor_free(b->pre.cache[k]);
    b->pre.cache[k] = NULL;
  }
  if (rc) {
    seq_free(s);
    return rc;
  }
  if (s->finished) seq_done(b, s);
  return 0;
}

/* A [rows, cols] tensor of the input's integer type. */
static int int_tensor(gpux_tensor *t, gpux_model *m, int input, int64_t rows, int64_t cols) {
  gpux_tensor_free(t);
  int64_t dims[2] = {rows, cols};
  return gpux_tensor_init(t, input_dtype(m, input) == GPUX_DT_INT32 ? GPUX_DT_INT32 : GPUX_DT_INT64, 2, dims);
}

static void int_set(gpux_tensor *t, int64_t i, int64_t v) {
  if (t->dtype == GPUX_DT_INT32) ((int32_t *)t->data)[i] = (int32_t)v;
  else ((int64_t *)t->data)[i] = v;
}

int gpux__gen_batch_step(gpux__gen_batch *b) {
  if (!b->n) return 0;
  gpux_app *a = b->a;
  gen_run *r = &b->pre;
  gpux_model *m = a->models[0];
  int n_in = gpux_model_input_count(m), n = b->n, rc, argmax = 1;
  int64_t len = b->len;
  memset(r->in, 0, sizeof *r->in * (size_t)n_in);
  outputs_clear(r);
  for (int i = 0; i < n; i++) argmax &= greedy(&b->rows[i]->r.o); /* else the logits come back for all */
  if ((rc = int_tensor(&b->feed[0], m, r->f.ids, n, 1)) || (rc = int_tensor(&b->feed[1], m, r->f.mask, n, len + 1)) ||
      (rc = int_tensor(&b->feed[2], m, r->f.pos, n, 1)))
    return rc;
  for (int i = 0; i < n; i++) {
    gen_seq *s = b->rows[i];
    int_set(&b->feed[0], i, s->seq[s->n_seq - 1]);
    for (int64_t c = 0; c <= len; c++) int_set(&b->feed[1], i * (len + 1) + c, c >= len - s->cached);
    int_set(&b->feed[2], i, s->cached);
  }
  r->in[r->f.ids].tensor = &b->feed[0];
  r->in[r->f.mask].tensor = &b->feed[1];
  r->in[r->f.pos].tensor = &b->feed[2];
  for (int k = 0; k < r->f.n_kv; k++) {
    r->in[r->f.kv[k].in].device = b->cache[k];
    r->out[r->f.kv[k].out].keep = 1;
  }
  int given = 0;
  for (int i = 0; i < n_in; i++)
    if (r->in[i].tensor || r->in[i].device) given = i + 1;
  const atomic_int *outer = gpux__cancel_enter(&a->cancel);
  gpux_run_stats s0, s1;
  gpux_session_stats(a->sessions[0], &s0);
  rc = run_step(r, given, argmax);
  gpux_session_stats(a->sessions[0], &s1);
  gpux__cancel_leave(outer);
  if (!rc) {
    for (int k = 0; k < r->f.n_kv; k++) {
      gpux_device_tensor_free(b->cache[k]);
      b->cache[k] = r->out[r->f.kv[k].out].device;
      r->out[r->f.kv[k].out].device = NULL;
    }
    b->len++;
    b->steps++;
    if (n > 1) b->shared_steps++;
    gpux_tensor *got = &r->out[argmax ? r->argmax : r->f.logits].tensor;
    if (!argmax && (got->ndim < 2 || got->kind != GPUX_KIND_TENSOR || !gpux__dtype_is_float(got->dtype) || got->dims[0] != n))
      rc = gpux__error(GPUX_E_MODEL, "generate: logits must be float [batch, seq, vocab]");
    for (int i = 0; i < n && !rc; i++) {
      gen_seq *s = b->rows[i];
      s->cached++;
      if (n > 1) s->shared_steps++;
      s->decode_down += (double)(s1.download_bytes - s0.download_bytes) / n;
      if ((rc = seq_take(s, got, argmax, i, n))) s->rc = rc;
    }
  }
  if (!rc) rc = drop_finished(b);
  if (rc) { /* every running generation fails with the step */
    for (int i = 0; i < b->n; i++) {
      b->rows[i]->rc = b->rows[i]->rc ? b->rows[i]->rc : rc;
      seq_done(b, b->rows[i]);
    }
    b->n = 0;
    b->len = 0;
    for (int k = 0; k < r->f.n_kv; k++) {
      gpux_device_tensor_free(b->cache[k]);
      b->cache[k] = NULL;
    }
  }
  return rc;
}

int gpux__gen_batch_cancel(gpux__gen_batch *b, void *tag) {
  for (int i = 0; i < b->n; i++)
    if (b->rows[i]->tag == tag) {
      b->rows[i]->finished = 1;
      b->rows[i]->st.finish = "stop";
      b->rows[i]->stop_text = 1;
      return drop_finished(b);
    }
  return 0;
}

int gpux__gen_batch_take(gpux__gen_batch *b, void **tag, int *rc, char **json) {
  if (!b->n_done) return 0;
  gen_seq *s = b->done[0];
  memmove(b->done, b->done + 1, sizeof *b->done * (size_t)(b->n_done - 1));
  b->n_done--;
  *tag = s->tag;
  *rc = s->rc;
  *json = NULL;
  if (!s->rc) {
    cJSON *o = cJSON_CreateObject();
    gpux_app *a = s->r.a;
    void *own = a->mode_state; /* the answer reads the state it is given this way */
    a->mode_state = &s->st;
    gpux__textgen_answer(a, o);
    a->mode_state = own;
    cJSON_AddNumberToObject(o, "shared_steps", (double)s->shared_steps);
    cJSON_AddStringToObject(o, "backend", gpux_session_backend_name(a->sessions[0]));
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!*json) *rc = GPUX_E_NOMEM;
  }
  seq_free(s);
  return 1;
}
