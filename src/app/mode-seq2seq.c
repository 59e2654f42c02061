/* mode-seq2seq.c — the pipeline mode `seq2seq` (`pipeline: {mode: seq2seq}`): text generation
 * with an encoder–decoder model as optimum exports them (Whisper for speech, Marian/T5/BART for
 * text to text), two or three steps:
 *
 *   encoder            input_features (Whisper) or input_ids [, attention_mask] -> last_hidden_state
 *   decoder            input_ids, encoder_hidden_states [, encoder_attention_mask, position_ids,
 *                      cache_position] -> logits,
 *                      present.N.decoder.key/value, present.N.encoder.key/value
 *   decoder_with_past  input_ids [, encoder_attention_mask], past_key_values.N.decoder.key/value,
 *                      past_key_values.N.encoder.key/value -> logits, present.N.decoder.key/value
 *
 * or the decoder and decoder_with_past merged into one model with a use_cache_branch input
 * (decoder_model_merged.onnx), or a decoder alone with no cache (run on the whole sequence each
 * step). The encoder runs once; its output stays on the device (gpux_session_run_values with a
 * kept output) and feeds the decoder's first run, which makes the cross-attention cache
 * (present.N.encoder.*) and the first self-attention cache; from then on decoder_with_past runs
 * one token a step, its self-attention cache replaced each step and the cross-attention cache
 * kept from the first run, all on the device. The decoders' sessions compute the logits of the
 * last position only (the session option last_position) and their ArgMax: a greedy run with no
 * repetition penalty and no special tokens to suppress reads back the ArgMax alone, any other run
 * the one row of logits.
 *
 * The decoder starts from generate.decoder_start_token_id, else Whisper's prompt
 * <|startoftranscript|> [<|LANG|> <|TASK|>] <|notimestamps|> when the tokenizer has those tokens
 * (generate.language, generate.task), else <pad> (Marian, T5), else the end-of-text token.
 * With Whisper's prompt, special tokens other than the end of text are never chosen (unless
 * generate.suppress_special is false). Choosing
 * tokens, the text as it grows and the answer are shared with mode-generate.c (textgen.c). */
#include "app/textgen.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

enum { ENC = 0, DEC = 1 };

/* One past input of the stepping model and where its value comes from. */
typedef struct {
  int in;                       /* the stepping model's input */
  int first_out;                /* the decoder's present output that gives it after the first run */
  int step_out;                 /* the stepping model's present output that replaces it, or -1 */
  int cross;                    /* cross-attention (…encoder…): kept from the first run */
} s2s_kv;

/* The inputs and outputs of one decoder model (the decoder or the stepping model). */
typedef struct {
  int ids, hidden, mask, branch, logits; /* -1 when absent */
  int pos, cache_pos;           /* position_ids [1, n], cache_position [n] (newer exports), or -1 */
} s2s_dec;

/* The three models' interface, found from their names. */
typedef struct {
  int enc_ids, enc_mask, enc_out; /* the encoder's token inputs (text models; -1 otherwise), output */
  s2s_dec dec;                  /* models[1] */
  int stepper;                  /* the model that steps with the cache: 2, 1 (merged) or -1 (none) */
  s2s_dec step;                 /* its inputs and outputs */
  int n_kv;
  s2s_kv *kv;
} s2s_iface;

static void iface_free(s2s_iface *f) {
  free(f->kv);
  memset(f, 0, sizeof *f);
}

/* The file name of step i, for messages. */
static const char *step_file(const gpux__spec *s, int i) {
  const char *src = s->pipeline.steps[i].model.source, *b = src ? strrchr(src, '/') : NULL;
  return b ? b + 1 : src ? src : "?";
}

static int is_past(const char *name) { return !strncmp(name, "past_key_values", 15) || !strncmp(name, "past.", 5); }

/* "past_key_values.0.decoder.key" -> "present.0.decoder.key" (also "past." -> "present."). */
static void present_name(const char *past, char *buf, size_t len) {
  snprintf(buf, len, "present%s", past + (strncmp(past, "past_key_values", 15) ? 4 : 15));
}

/* A decoder's inputs and outputs; every required input must be one this mode feeds. */
static int dec_of(const gpux__spec *s, gpux_model *m, int i, int takes_past, s2s_dec *d) {
  d->ids = gpux__textgen_find_input(m, "input_ids");
  if (d->ids < 0) d->ids = gpux__textgen_find_input(m, "decoder_input_ids");
  d->hidden = gpux__textgen_find_input(m, "encoder_hidden_states");
  d->mask = gpux__textgen_find_input(m, "encoder_attention_mask");
  d->branch = gpux__textgen_find_input(m, "use_cache_branch");
  d->pos = gpux__textgen_find_input(m, "position_ids");
  d->cache_pos = gpux__textgen_find_input(m, "cache_position");
  d->logits = gpux__textgen_find_output(m, "logits");
  if (d->ids < 0) return gpux__error(GPUX_E_MODEL, "%s has no input 'input_ids' (the decoder's token ids)", step_file(s, i));
  if (d->logits < 0) return gpux__error(GPUX_E_MODEL, "%s has no output 'logits'", step_file(s, i));
  for (int k = 0; k < gpux_model_input_count(m); k++) {
    gpux_value_info vi;
    gpux_model_input_info(m, k, &vi);
    if (k == d->ids || k == d->hidden || k == d->mask || k == d->branch || k == d->pos || k == d->cache_pos || vi.optional)
      continue;
    if (takes_past && is_past(vi.name)) continue;
    return gpux__error(GPUX_E_MODEL, "%s: input '%s' is none that a decoder is fed (input_ids, encoder_hidden_states, "
                                     "encoder_attention_mask, position_ids, cache_position%s)", step_file(s, i), vi.name,
                       takes_past ? ", past_key_values.N.decoder/encoder.key/value, use_cache_branch" : "");
  }
  return 0;
}

static int count_past(gpux_model *m) {
  int n = 0;
  gpux_value_info vi;
  for (int k = 0; k < gpux_model_input_count(m); k++)
    if (!gpux_model_input_info(m, k, &vi) && is_past(vi.name)) n++;
  return n;
}

/* Reads the interface; errors name the step's file and the input or output. *bad_step (may be
 * NULL) receives the step an error is about. */
static int iface_of(const gpux__spec *s, gpux_model *const *models, int n_models, s2s_iface *f, int *bad_step) {
  memset(f, 0, sizeof *f);
  int dummy;
  if (!bad_step) bad_step = &dummy;
  *bad_step = ENC;
  if (n_models < 2 || n_models > 3)
    return gpux__error(GPUX_E_INVALID, "seq2seq takes 2 or 3 steps (encoder, decoder, decoder_with_past), not %d", n_models);
  gpux_model *enc = models[ENC];
  const char *ids_name = s->tokenizer.input_ids ? s->tokenizer.input_ids : "input_ids";
  f->enc_ids = gpux__textgen_find_input(enc, ids_name);
  f->enc_mask = f->enc_ids >= 0 ? gpux__textgen_find_input(enc, s->tokenizer.attention_mask ? s->tokenizer.attention_mask : "attention_mask") : -1;
  f->enc_out = gpux__textgen_find_output(enc, "last_hidden_state");
  if (f->enc_out < 0 && gpux__textgen_find_output(enc, "logits") >= 0)
    return gpux__error(GPUX_E_MODEL, "%s gives logits, not the encoder's last_hidden_state: is it a decoder? (steps: encoder, "
                                     "decoder, decoder_with_past)", step_file(s, ENC));
  if (f->enc_out < 0) f->enc_out = 0;

  int rc, dec_past = count_past(models[DEC]);
  *bad_step = DEC;
  if (n_models == 3 && dec_past)
    return gpux__error(GPUX_E_MODEL, "%s takes a cache (%d past_key_values inputs); the second step is the decoder without "
                                     "past (decoder_model.onnx)", step_file(s, DEC), dec_past);
  if ((rc = dec_of(s, models[DEC], DEC, n_models == 2 && dec_past, &f->dec))) return rc;
  if (f->dec.hidden < 0)
    return gpux__error(GPUX_E_MODEL, "%s has no input 'encoder_hidden_states' (the encoder's output)", step_file(s, DEC));
  if (n_models == 2 && dec_past && f->dec.branch < 0)
    return gpux__error(GPUX_E_MODEL, "%s takes past_key_values but has no use_cache_branch input: give decoder_model.onnx "
                                     "and decoder_with_past_model.onnx as the second and third steps", step_file(s, DEC));
  f->stepper = n_models == 3 ? 2 : dec_past ? DEC : -1;
  if (f->stepper < 0) return 0;

  *bad_step = f->stepper;
  gpux_model *sm = models[f->stepper];
  if (f->stepper == 2 && (rc = dec_of(s, sm, 2, 1, &f->step))) return rc;
  if (f->stepper == DEC) f->step = f->dec;
  int n_in = gpux_model_input_count(sm);
  if (!(f->kv = gpux__calloc((size_t)n_in + 1, sizeof *f->kv))) return GPUX_E_NOMEM;
  for (int k = 0; k < n_in; k++) {
    gpux_value_info vi;
    gpux_model_input_info(sm, k, &vi);
    if (!is_past(vi.name)) continue;
    char present[512];
    present_name(vi.name, present, sizeof present);
    s2s_kv *kv = &f->kv[f->n_kv];
    kv->in = k;
    kv->cross = strstr(vi.name, ".encoder.") != NULL || strstr(vi.name, "cross") != NULL;
    kv->first_out = gpux__textgen_find_output(models[DEC], present);
    kv->step_out = gpux__textgen_find_output(sm, present);
    if (kv->first_out < 0) {
      *bad_step = DEC;
      return gpux__error(GPUX_E_MODEL, "%s has no output '%s' for %s's input '%s'", step_file(s, DEC), present,
                         step_file(s, f->stepper), vi.name);
    }
    if (kv->step_out < 0 && !kv->cross)
      return gpux__error(GPUX_E_MODEL, "%s has no output '%s' for its self-attention cache input '%s'", step_file(s, f->stepper),
                         present, vi.name);
    if (vi.ndim < 3)
      return gpux__error(GPUX_E_SHAPE, "%s: cache input '%s' must be [batch, heads, length, head_dim]", step_file(s, f->stepper), vi.name);
    f->n_kv++;
  }
  if (!f->n_kv) return gpux__error(GPUX_E_MODEL, "%s has no past_key_values inputs: is it decoder_with_past_model.onnx?", step_file(s, 2));
  return 0;
}

/* ---- the spec ---- */

static int s2s_text_in(const gpux__spec *s, gpux_model *enc) {
  return gpux__textgen_find_input(enc, s->tokenizer.input_ids ? s->tokenizer.input_ids : "input_ids") >= 0;
}

static int s2s_check(gpux__spec *s, gpux_model *const *models, int n_models) {
  s2s_iface f;
  int bad = 0, rc = iface_of(s, models, n_models, &f, &bad);
  iface_free(&f);
  if (rc) {
    char key[64];
    snprintf(key, sizeof key, "pipeline.steps[%d]", bad);
    return gpux__spec_fail(s, rc, bad < s->pipeline.n_steps ? s->pipeline.steps[bad].line : s->pipeline.line, key, "%s",
                           gpux_last_error());
  }
  if (s->n_post) return gpux__spec_fail(s, GPUX_E_INVALID, s->post[0].line, "postprocessing", "seq2seq writes text; remove postprocessing");
  /* the app gives one text */
  int n_out = s->n_outputs;
  gpux__spec_io *outs = s->outputs;
  if (n_out > 1) return gpux__spec_fail(s, GPUX_E_INVALID, outs[1].line, "outputs", "seq2seq gives one output (the text)");
  if (s2s_text_in(s, models[ENC])) {
    /* a text encoder: the app takes one text, tokenized for the encoder */
    if (s->n_inputs == 0) {
      if (!(s->inputs = gpux__arena_alloc(&s->arena, sizeof *s->inputs))) return GPUX_E_NOMEM;
      s->inputs[0] = (gpux__spec_io){.name = gpux__spec_strdup(s, "text"), .ndim = -1};
      s->n_inputs = 1;
    }
    if (s->n_inputs != 1) return gpux__spec_fail(s, GPUX_E_INVALID, s->inputs[1].line, "inputs", "a text encoder takes one input (the text)");
    if (s->audio.present) return gpux__spec_fail(s, GPUX_E_INVALID, s->audio.line, "preprocessing.audio", "the encoder takes text (input_ids)");
    s->inputs[0].type = GPUX__IO_STRING;
    s->inputs[0].dtype = GPUX_DT_STRING;
    s->inputs[0].ndim = 1;
    s->inputs[0].dims[0] = 1;
  } else {
    /* the encoder's own inputs (Whisper's input_features, from a tensor or preprocessing.audio),
     * checked as for one model; the tokenizer only writes the text */
    s->n_outputs = 0;
    s->outputs = NULL;
    int tok = s->tokenizer.present;
    s->tokenizer.present = 0;
    rc = gpux__spec_check_models(s, models, 1);
    s->tokenizer.present = tok;
    if (rc) return rc;
    s->n_outputs = n_out;
    s->outputs = outs;
  }
  if (s->n_outputs == 0) {
    if (!(s->outputs = gpux__arena_alloc(&s->arena, sizeof *s->outputs))) return GPUX_E_NOMEM;
    s->outputs[0] = (gpux__spec_io){.name = gpux__spec_strdup(s, "text"), .ndim = -1};
    s->n_outputs = 1;
  }
  s->outputs[0].type = GPUX__IO_STRING;
  s->outputs[0].dtype = GPUX_DT_STRING;
  s->outputs[0].ndim = 1;
  s->outputs[0].dims[0] = 1;
  return 0;
}

static int s2s_validate(const gpux_app *a) {
  s2s_iface f;
  int rc = iface_of(a->spec, a->models, a->n_models, &f, NULL);
  iface_free(&f);
  return rc;
}

static int s2s_io_count(const gpux_app *a, int output) {
  return output || s2s_text_in(a->spec, a->models[ENC]) ? 1 : gpux_model_input_count(a->models[ENC]);
}

static int s2s_io_info(const gpux_app *a, int output, int i, gpux_value_info *vi) {
  if (!output && !s2s_text_in(a->spec, a->models[ENC])) return gpux_model_input_info(a->models[ENC], i, vi);
  return gpux__textgen_io_info(a, output, vi);
}

/* ---- the run ---- */

typedef struct {
  gpux_app *a;
  s2s_iface f;
  gpux__textgen_state *st;
  gpux_generate_options o;
  int64_t eos;
  gpux_device_tensor *hidden;   /* the encoder's output */
  int64_t enc_len;              /* its length (positions the decoder attends to) */
  gpux_device_tensor **cache;   /* (n_kv) the stepping model's past values */
  gpux_tensor ids, mask, branch, pos, cache_pos;
  gpux_tensor *empty;           /* (n_kv) zero-length past values for a merged decoder's first run */
  uint8_t *suppressed;          /* (vocab) tokens never chosen, or NULL */
} s2s_run;

static int input_dtype(gpux_model *m, int i) {
  gpux_value_info vi;
  return i >= 0 && !gpux_model_input_info(m, i, &vi) && vi.dtype ? vi.dtype : GPUX_DT_INT64;
}

/* An integer [1, n] tensor of `vals` (or n ones when vals is NULL) in the dtype of m's input i. */
static int int_tensor(gpux_tensor *t, gpux_model *m, int i, const int64_t *vals, int64_t n) {
  gpux_tensor_free(t);
  int64_t dims[2] = {1, n};
  int dt = input_dtype(m, i);
  if (dt != GPUX_DT_INT32 && dt != GPUX_DT_FLOAT && dt != GPUX_DT_BOOL) dt = GPUX_DT_INT64;
  int rc = gpux_tensor_init(t, dt, 2, dims);
  for (int64_t k = 0; k < n && !rc; k++) {
    int64_t v = vals ? vals[k] : 1;
    if (dt == GPUX_DT_INT32) ((int32_t *)t->data)[k] = (int32_t)v;
    else if (dt == GPUX_DT_FLOAT) ((float *)t->data)[k] = (float)v;
    else if (dt == GPUX_DT_BOOL) ((uint8_t *)t->data)[k] = v != 0;
    else ((int64_t *)t->data)[k] = v;
  }
  return rc;
}

/* Runs a model with `in` (n_in slots) for its first n_out outputs (a decoder's ArgMax is one
 * past the model's: s2s_session_options); the outputs whose keep is set stay on the device, the
 * others come back. Adds the time to *ms. */
static int run_model(gpux_app *a, int model, const gpux_input *in, gpux_output *out, int n_out, double *ms) {
  gpux_model *m = a->models[model];
  int n_in = gpux_model_input_count(m), given = 0;
  for (int i = 0; i < n_in; i++)
    if (in[i].tensor || in[i].device) given = i + 1;
  double t0 = gpux__now_ms();
  int rc = gpux_session_run_values(a->sessions[model], in, given, out, n_out);
  *ms += gpux__now_ms() - t0;
  if (rc) gpux__error_prefix(rc, "%s: ", step_file(a->spec, model));
  return rc;
}

static void outputs_clear(gpux_output *out, int n) {
  for (int i = 0; i < n; i++) {
    gpux_tensor_free(&out[i].tensor);
    gpux_device_tensor_free(out[i].device);
    out[i] = (gpux_output){0};
  }
}

/* The encoder's one run on the prepared inputs; its output stays on the device. */
static int run_encoder(s2s_run *r, const gpux__named_tensors *in, double *ms) {
  gpux_app *a = r->a;
  gpux_model *m = a->models[ENC];
  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m), rc = 0;
  gpux_input *ins = gpux__calloc((size_t)n_in + 1, sizeof *ins);
  gpux_output *outs = gpux__calloc((size_t)n_out + 1, sizeof *outs);
  gpux_tensor ids = {0}, mask = {0};
  gpux_tensor *batched = gpux__calloc((size_t)n_in + 1, sizeof *batched); /* views of inputs given without a batch dimension */
  if (!ins || !outs || !batched) rc = GPUX_E_NOMEM;
  int64_t n_ids = 0;
  for (int i = 0; i < n_in && !rc; i++) {
    gpux_value_info vi;
    gpux_model_input_info(m, i, &vi);
    int j = gpux__named_tensors_find(in, vi.name);
    if (i == r->f.enc_ids) {
      if (j < 0) { rc = gpux__error(GPUX_E_INVALID, "seq2seq: the text gave no token ids"); break; }
      n_ids = gpux_tensor_count(&in->t[j]);
      int64_t *v = gpux__malloc(sizeof *v * (size_t)(n_ids ? n_ids : 1));
      if (!v) { rc = GPUX_E_NOMEM; break; }
      for (int64_t k = 0; k < n_ids; k++) v[k] = gpux__load_i64(in->t[j].dtype, in->t[j].data, k);
      rc = int_tensor(&ids, m, i, v, n_ids);
      free(v);
      ins[i].tensor = &ids;
    } else if (j >= 0) {
      ins[i].tensor = &in->t[j];
      if (in->t[j].ndim == vi.ndim - 1 && vi.ndim > 1 && vi.dims[0] <= 1) {
        /* one example without its batch dimension (a feature extractor's [bins, frames]) */
        gpux_tensor *b = &batched[i];
        *b = in->t[j];
        b->owns_data = 0;
        b->ndim = vi.ndim;
        b->dims[0] = 1;
        memcpy(b->dims + 1, in->t[j].dims, sizeof *b->dims * (size_t)in->t[j].ndim);
        ins[i].tensor = b;
      }
    } else if (!vi.optional && i != r->f.enc_mask) {
      rc = gpux__error(GPUX_E_INVALID, "%s: input '%s' has no value", step_file(a->spec, ENC), vi.name);
    }
  }
  if (!rc && r->f.enc_mask >= 0 && !ins[r->f.enc_mask].tensor) { /* every token attended to */
    rc = int_tensor(&mask, m, r->f.enc_mask, NULL, n_ids);
    ins[r->f.enc_mask].tensor = &mask;
  }
  if (!rc && r->f.enc_ids >= 0 && n_ids < 1) rc = gpux__error(GPUX_E_INVALID, "seq2seq: the text has no tokens");
  for (int i = 0; i < n_out && !rc; i++) outs[i].keep = 1; /* none comes back */
  double t = 0;
  if (!rc) rc = run_model(a, ENC, ins, outs, n_out, &t);
  *ms += t;
  r->st->encoder_ms = t;
  if (!rc) {
    r->hidden = outs[r->f.enc_out].device;
    outs[r->f.enc_out].device = NULL;
    gpux_tensor d = {0};
    gpux_device_tensor_describe(r->hidden, &d);
    if (d.kind != GPUX_KIND_TENSOR || d.ndim != 3 || d.dims[0] != 1)
      rc = gpux__error(GPUX_E_MODEL, "%s: the encoder's output must be [1, length, hidden], got %d dimensions",
                       step_file(a->spec, ENC), d.ndim);
    r->enc_len = d.ndim >= 2 ? d.dims[1] : 0; /* the decoder attends to every position */
  }
  if (outs) outputs_clear(outs, n_out);
  gpux_tensor_free(&ids);
  gpux_tensor_free(&mask);
  free(batched);
  free(ins);
  free(outs);
  return rc;
}

/* The ids the decoder starts from (*ids malloc'ed). *whisper is set for Whisper's prompt. */
static int start_ids(s2s_run *r, int64_t **ids, int64_t *n, int *whisper) {
  const gpux__spec_generate *g = &r->a->spec->generate;
  const gpux__tokenizer *tok = r->a->tokenizer;
  *n = 0;
  *whisper = 0;
  if (!(*ids = gpux__malloc(sizeof **ids * 4))) return GPUX_E_NOMEM;
  int64_t sot = gpux__tokenizer_token_id(tok, "<|startoftranscript|>");
  if (g->decoder_start >= 0) (*ids)[(*n)++] = g->decoder_start;
  else if (sot >= 0) (*ids)[(*n)++] = sot;
  else {
    int64_t pad = gpux__tokenizer_token_id(tok, "<pad>");
    if (pad < 0) pad = r->eos;
    if (pad < 0)
      return gpux__error(GPUX_E_INVALID, "seq2seq: the tokenizer has neither <|startoftranscript|>, <pad> nor an end-of-text "
                                         "token; set generate.decoder_start_token_id");
    (*ids)[(*n)++] = pad;
  }
  if (sot < 0 || (*ids)[0] != sot) {
    if (g->language || g->task) return gpux__error(GPUX_E_INVALID, "seq2seq: generate.language and generate.task need Whisper's "
                                                                   "<|startoftranscript|> in the tokenizer");
    return 0;
  }
  *whisper = 1;
  char name[80];
  if (g->language) {
    size_t l = strlen(g->language);
    if (l > 4 && !strncmp(g->language, "<|", 2)) snprintf(name, sizeof name, "%s", g->language);
    else snprintf(name, sizeof name, "<|%s|>", g->language);
    int64_t id = gpux__tokenizer_token_id(tok, name);
    if (id < 0) return gpux__error(GPUX_E_INVALID, "generate.language: the tokenizer has no token '%s'", name);
    (*ids)[(*n)++] = id;
  }
  if (g->task || g->language) {
    snprintf(name, sizeof name, "<|%s|>", g->task ? g->task : "transcribe");
    int64_t id = gpux__tokenizer_token_id(tok, name);
    if (id < 0) return gpux__error(GPUX_E_INVALID, "generate.task: the tokenizer has no token '%s'", name);
    (*ids)[(*n)++] = id;
  }
  int64_t nts = gpux__tokenizer_token_id(tok, "<|notimestamps|>");
  if (nts >= 0) (*ids)[(*n)++] = nts;
  return 0;
}

/* One decoder run: model `model` (the decoder or the stepping model) on `ids` (n of them) after
 * `past` cached positions; the cache is updated and what comes back is in *got: with `argmax` the
 * ArgMax of the last position's logits (the logits stay on the device), else those logits. */
static int step(s2s_run *r, int model, const int64_t *ids, int64_t n, int64_t past, int argmax, gpux_tensor *got,
                double *ms) {
  gpux_app *a = r->a;
  gpux_model *m = a->models[model];
  const s2s_dec *d = model == r->f.stepper ? &r->f.step : &r->f.dec;
  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m), rc;
  int cached = model == r->f.stepper && past > 0; /* fed from the cache */
  gpux_input *in = gpux__calloc((size_t)n_in + 1, sizeof *in);
  gpux_output *out = gpux__calloc((size_t)n_out + 2, sizeof *out);
  if (!in || !out) { free(in); free(out); return GPUX_E_NOMEM; }
  rc = int_tensor(&r->ids, m, d->ids, ids, n);
  in[d->ids].tensor = &r->ids;
  if (!rc && d->hidden >= 0) in[d->hidden].device = r->hidden;
  if (!rc && d->mask >= 0) {
    rc = int_tensor(&r->mask, m, d->mask, NULL, r->enc_len);
    in[d->mask].tensor = &r->mask;
  }
  if (!rc && (d->pos >= 0 || d->cache_pos >= 0)) { /* the positions of the ids fed */
    int64_t *p = gpux__malloc(sizeof *p * (size_t)n);
    if (!p) rc = GPUX_E_NOMEM;
    for (int64_t k = 0; k < n && p; k++) p[k] = past + k;
    if (!rc && d->pos >= 0 && !(rc = int_tensor(&r->pos, m, d->pos, p, n))) in[d->pos].tensor = &r->pos;
    if (!rc && d->cache_pos >= 0 && !(rc = int_tensor(&r->cache_pos, m, d->cache_pos, p, n))) {
      r->cache_pos.ndim = 1; /* [n] */
      r->cache_pos.dims[0] = n;
      in[d->cache_pos].tensor = &r->cache_pos;
    }
    free(p);
  }
  if (!rc && d->branch >= 0) {
    gpux_tensor_free(&r->branch);
    int64_t one = 1;
    if (!(rc = gpux_tensor_init(&r->branch, GPUX_DT_BOOL, 1, &one))) ((uint8_t *)r->branch.data)[0] = (uint8_t)cached;
    in[d->branch].tensor = &r->branch;
  }
  if (model == r->f.stepper)
    for (int k = 0; k < r->f.n_kv; k++) {
      if (cached) in[r->f.kv[k].in].device = r->cache[k];
      else in[r->f.kv[k].in].tensor = &r->empty[k]; /* a merged decoder's first run ignores them */
    }
  for (int i = 0; i < n_out; i++) out[i].keep = argmax || i != d->logits; /* only the logits (or ArgMax) come back */
  if (!rc) rc = run_model(a, model, in, out, argmax ? n_out + 1 : n_out, ms);
  /* the decoder's first run makes the whole cache; the stepping model's runs replace the
   * self-attention part and keep the cross-attention part */
  for (int k = 0; !rc && r->f.stepper >= 0 && k < r->f.n_kv; k++) {
    const s2s_kv *kv = &r->f.kv[k];
    int o = !cached ? kv->first_out : kv->cross ? -1 : kv->step_out;
    if (o < 0) continue;
    gpux_device_tensor_free(r->cache[k]);
    r->cache[k] = out[o].device;
    out[o].device = NULL;
  }
  if (!rc) {
    int o = argmax ? n_out : d->logits;
    *got = out[o].tensor;
    memset(&out[o].tensor, 0, sizeof out[o].tensor);
  }
  outputs_clear(out, argmax ? n_out + 1 : n_out);
  free(in);
  free(out);
  return rc;
}

static int s2s_loop(s2s_run *r, double *ms) {
  gpux_app *a = r->a;
  gpux__textgen_state *st = r->st;
  int64_t *prompt = NULL, n_prompt = 0;
  int whisper = 0;
  int rc = start_ids(r, &prompt, &n_prompt, &whisper);
  if (rc) { free(prompt); return rc; }
  int64_t max_ctx = a->spec->generate.max_context ? a->spec->generate.max_context : 2048;
  int64_t *seq = gpux__malloc(sizeof *seq * (size_t)(n_prompt + r->o.max_new_tokens + 1));
  if (!seq || (rc = gpux__textgen_set_prompt(st, prompt, n_prompt))) {
    free(prompt);
    free(seq);
    return rc ? rc : GPUX_E_NOMEM;
  }
  memcpy(seq, prompt, sizeof *seq * (size_t)n_prompt);
  free(prompt);
  int64_t n_seq = n_prompt, past = 0;
  gpux__textgen_chooser ch;
  gpux__textgen_chooser_init(&ch, &r->o, st);
  uint64_t down0 = 0, down1 = 0;
  for (int i = 0; i < a->n_models; i++) {
    gpux_run_stats s;
    gpux_session_stats(a->sessions[i], &s);
    down0 += s.download_bytes;
  }
  /* greedy with nothing done to the logits on the host: the decoders' ArgMax comes back alone */
  int stop = 0, argmax = r->o.temperature <= 0 && r->o.repetition_penalty == 1.0 && !(whisper && a->spec->generate.suppress_special);
  double t0 = gpux__now_ms(), step_ms = 0;
  size_t emitted = 0;
  for (int step_no = 0; step_no < r->o.max_new_tokens && !rc && !stop; step_no++) {
    if ((rc = gpux__cancelled())) break;
    if (n_seq >= max_ctx) break;
    gpux_tensor logits = {0};
    /* the first run (or every run without a cache): the decoder on the whole sequence; then the
     * stepping model on the last token */
    if (r->f.stepper < 0 || past == 0) rc = step(r, DEC, seq, n_seq, 0, argmax, &logits, &step_ms);
    else rc = step(r, r->f.stepper, seq + past, n_seq - past, past, argmax, &logits, &step_ms);
    if (rc) break;
    if (r->f.stepper >= 0) past = n_seq;
    int64_t next = 0;
    if (argmax) { /* the ArgMax of the last position: [1, 1] (or one per position, the last) */
      rc = gpux__textgen_argmax_token(&logits, 0, 1, "seq2seq", &next);
      gpux_tensor_free(&logits);
      if (rc) break;
    } else {
      float *row;
      rc = gpux__textgen_last_row(&ch, &logits, "seq2seq", &row);
      gpux_tensor_free(&logits);
      if (rc) break;
      if (whisper && a->spec->generate.suppress_special && !r->suppressed) { /* Whisper never writes its special tokens but the end of text */
        if (!(r->suppressed = gpux__calloc((size_t)ch.vocab, 1))) { free(row); rc = GPUX_E_NOMEM; break; }
        for (int64_t t = 0; t < ch.vocab; t++) r->suppressed[t] = t != r->eos && gpux__tokenizer_is_special(a->tokenizer, t);
      }
      for (int64_t t = 0; r->suppressed && t < ch.vocab; t++)
        if (r->suppressed[t]) row[t] = -INFINITY;
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
  *ms += step_ms;
  for (int i = 0; i < a->n_models; i++) {
    gpux_run_stats s;
    gpux_session_stats(a->sessions[i], &s);
    down1 += s.download_bytes;
  }
  if (st->n_tokens) st->download_bytes_per_token = (double)(down1 - down0) / (double)st->n_tokens;
  gpux__textgen_chooser_free(&ch);
  free(seq);
  return rc;
}

/* The decoders' sessions compute the logits of the last position only, and their ArgMax as one
 * more output (runtime/last-position.c). */
static void s2s_session_options(const gpux_app *a, int i, gpux_session_options *so) {
  if (i > ENC && gpux__textgen_find_output(a->models[i], "logits") >= 0) so->last_position = "logits";
}

static int s2s_run_mode(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *ms) {
  gpux__textgen_state *st = gpux__textgen_state_reset(a);
  if (!st) return GPUX_E_NOMEM;
  s2s_run r = {.a = a, .st = st};
  int rc = iface_of(a->spec, a->models, a->n_models, &r.f, NULL);
  if (rc) return rc;
  gpux__textgen_options(&a->spec->generate, a->generate, &r.o);
  r.eos = gpux__textgen_eos_id(a);
  r.cache = gpux__calloc((size_t)r.f.n_kv + 1, sizeof *r.cache);
  r.empty = gpux__calloc((size_t)r.f.n_kv + 1, sizeof *r.empty);
  if (!r.cache || !r.empty) rc = GPUX_E_NOMEM;
  if (!rc) rc = run_encoder(&r, in, ms);
  /* a merged decoder's first run takes past values it does not read: zeros of no length for
   * the self-attention cache, and of the encoder's length for the cross-attention one (its
   * length may be declared as the encoder output's) */
  for (int k = 0; k < r.f.n_kv && !rc && r.f.stepper == DEC; k++) {
    gpux_value_info vi;
    gpux_model_input_info(a->models[DEC], r.f.kv[k].in, &vi);
    int64_t dims[GPUX_MAX_DIMS];
    for (int d = 0; d < vi.ndim; d++)
      dims[d] = d == 0 ? 1 : d == vi.ndim - 2 ? (r.f.kv[k].cross ? r.enc_len : 0) : vi.dims[d] > 0 ? vi.dims[d] : 1;
    rc = gpux_tensor_init(&r.empty[k], vi.dtype ? vi.dtype : GPUX_DT_FLOAT, vi.ndim, dims);
  }
  if (!rc) rc = s2s_loop(&r, ms);
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
  gpux_device_tensor_free(r.hidden);
  gpux_tensor_free(&r.ids);
  gpux_tensor_free(&r.mask);
  gpux_tensor_free(&r.branch);
  gpux_tensor_free(&r.pos);
  gpux_tensor_free(&r.cache_pos);
  free(r.cache);
  free(r.empty);
  free(r.suppressed);
  iface_free(&r.f);
  return rc;
}

const gpux__mode gpux__mode_seq2seq = {
  /* .name     = */ "seq2seq",
  /* .direct   = */ 0,
  /* .check    = */ s2s_check,
  /* .validate = */ s2s_validate,
  /* .session_options = */ s2s_session_options,
  /* .io_count = */ s2s_io_count,
  /* .io_info  = */ s2s_io_info,
  /* .run      = */ s2s_run_mode,
  /* .answer   = */ gpux__textgen_answer,
  /* .release  = */ gpux__textgen_state_release,
  /* .text     = */ gpux__textgen_text,
};
