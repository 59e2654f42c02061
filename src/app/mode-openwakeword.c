/* mode-openwakeword.c — the pipeline mode `openwakeword` (`pipeline: {mode: openwakeword}`):
 * openWakeWord's streaming recipe over three steps (melspectrogram, embedding, classifier),
 * following the original Python package (openwakeword/utils.py AudioFeatures and
 * model.py predict_clip), not the npm package's JS, which drops mel frames:
 *
 *   samples at int16 scale, `padding` seconds of silence added before and after the clip;
 *   per chunk of 1280 samples (80 ms at 16 kHz):
 *     mel   = melspectrogram(the chunk with the previous 480 samples)  -> 8 frames x 32 bins,
 *             transformed x/10 + 2, appended to a mel buffer that starts as ones(76, 32);
 *     emb   = embedding(last 76 mel frames as [1, 76, 32, 1])          -> 96 values, appended;
 *     score = classifier(last N embeddings as [1, N, 96])              once N exist (N = 16 for
 *             hey_jarvis, read from the classifier's input shape).
 *
 * The result is one score per chunk once the classifier has N embeddings; the app's one output
 * is the highest, as [1, 1], and the answer adds all of them ("scores") and "chunk_ms". The app
 * takes one audio input (float samples); the mode's settings (chunk, context, window, padding)
 * are keys of `pipeline:` (spec.c). */
#include "app/mode.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

/* What a run leaves for its answer (a->mode_state). */
typedef struct {
  float *scores;                /* (n_scores): one per chunk with a classifier run */
  int64_t n_scores;
} ww_state;

typedef struct {
  float *data;
  int64_t rows, cap, width;
} rows_buf;

static int rows_push(rows_buf *b, const float *row, int64_t n_rows) {
  if (b->rows + n_rows > b->cap) {
    int64_t cap = b->cap ? b->cap : 256;
    while (cap < b->rows + n_rows) cap *= 2;
    float *p = gpux__realloc(b->data, sizeof(float) * (size_t)(cap * b->width));
    if (!p) return GPUX_E_NOMEM;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->rows * b->width, row, sizeof(float) * (size_t)(n_rows * b->width));
  b->rows += n_rows;
  return 0;
}

/* Runs a one-input model on a float tensor of `dims` filled from `src`; returns its first
 * output (the caller frees it). */
static int run_one(gpux_session *s, gpux_model *m, const float *src, int ndim, const int64_t *dims,
                   gpux_tensor *out, double *ms) {
  gpux_tensor in = {0};
  int rc = gpux_tensor_init(&in, GPUX_DT_FLOAT, ndim, dims);
  if (rc) return rc;
  memcpy(in.data, src, in.nbytes);
  int n_out = gpux_model_output_count(m);
  gpux_tensor *outs = gpux__calloc((size_t)n_out, sizeof *outs);
  if (!outs) { gpux_tensor_free(&in); return GPUX_E_NOMEM; }
  double t0 = gpux__now_ms();
  rc = gpux_session_run(s, &in, 1, outs, n_out);
  *ms += gpux__now_ms() - t0;
  gpux_tensor_free(&in);
  if (!rc && (outs[0].kind != GPUX_KIND_TENSOR || outs[0].dtype != GPUX_DT_FLOAT))
    rc = gpux__error(GPUX_E_DTYPE, "openwakeword: a step gave %s, not float32", gpux_dtype_name(outs[0].dtype));
  if (!rc) *out = outs[0];
  else gpux_tensor_free(&outs[0]);
  for (int i = 1; i < n_out; i++) gpux_tensor_free(&outs[i]);
  free(outs);
  return rc;
}

/* The recipe on one clip of float samples; *scores receives one score per classifier run
 * (malloc'ed). */
static int stream_run(gpux_session *const sessions[3], gpux_model *const models[3], const gpux__spec_pipeline *p,
                      const gpux_tensor *audio, float **scores, int64_t *n_scores, double *infer_ms) {
  *scores = NULL;
  *n_scores = 0;
  double ms = 0;
  gpux_value_info emb_in, cls_in;
  gpux_model_input_info(models[1], 0, &emb_in);
  gpux_model_input_info(models[2], 0, &cls_in);
  const int64_t window = p->window, bins = emb_in.dims[2] > 0 ? emb_in.dims[2] : 32;
  const int64_t n_emb = cls_in.dims[1], emb_width = cls_in.dims[2] > 0 ? cls_in.dims[2] : 96;
  const int64_t chunk = p->chunk, context = p->context;
  if (audio->dtype != GPUX_DT_FLOAT || audio->kind != GPUX_KIND_TENSOR)
    return gpux__error(GPUX_E_DTYPE, "openwakeword: audio must be float32 samples");

  /* the clip with silence around it, a whole number of chunks, at least n_emb of them */
  int64_t n = gpux_tensor_count(audio);
  int64_t pad = (int64_t)llround(p->padding * 16000.0);
  int64_t total = pad + n + pad;
  int64_t n_chunks = (total + chunk - 1) / chunk;
  int64_t front = pad;
  if (n_chunks < n_emb + 1) {
    front += (n_emb + 1 - n_chunks) * chunk;
    n_chunks = n_emb + 1;
  }
  total = n_chunks * chunk;
  float *x = gpux__calloc((size_t)total, sizeof *x);
  if (!x) return GPUX_E_NOMEM;
  memcpy(x + front, audio->data, sizeof(float) * (size_t)GPUX__MIN(n, total - front));

  rows_buf mel = {.width = bins}, emb = {.width = emb_width};
  float *out_scores = gpux__malloc(sizeof(float) * (size_t)n_chunks);
  float *ones = gpux__malloc(sizeof(float) * (size_t)(window * bins));
  int rc = out_scores && ones ? 0 : GPUX_E_NOMEM;
  if (!rc) {
    for (int64_t i = 0; i < window * bins; i++) ones[i] = 1.0f;
    rc = rows_push(&mel, ones, window);
  }
  int64_t kept = 0;
  for (int64_t k = 0; k < n_chunks && !rc; k++) {
    /* mel frames of this chunk with the samples before it */
    int64_t end = (k + 1) * chunk, begin = GPUX__MAX(0, k * chunk - context);
    int64_t mdims[2] = {1, end - begin};
    gpux_tensor t = {0};
    if ((rc = run_one(sessions[0], models[0], x + begin, 2, mdims, &t, &ms))) break;
    int64_t frames = gpux_tensor_count(&t) / bins;
    float *f = t.data;
    for (int64_t i = 0; i < frames * bins; i++) f[i] = f[i] / 10.0f + 2.0f;
    rc = rows_push(&mel, f, frames);
    gpux_tensor_free(&t);
    if (rc) break;
    /* one embedding from the last `window` frames */
    int64_t edims[4] = {1, window, bins, 1};
    if ((rc = run_one(sessions[1], models[1], mel.data + (mel.rows - window) * bins, 4, edims, &t, &ms))) break;
    if (gpux_tensor_count(&t) != emb_width) {
      rc = gpux__error(GPUX_E_SHAPE, "openwakeword: the embedding model gave %lld values, the classifier takes %lld",
                       (long long)gpux_tensor_count(&t), (long long)emb_width);
      gpux_tensor_free(&t);
      break;
    }
    rc = rows_push(&emb, t.data, 1);
    gpux_tensor_free(&t);
    if (rc || emb.rows < n_emb) continue;
    /* the classifier on the last n_emb embeddings */
    int64_t cdims[3] = {1, n_emb, emb_width};
    if ((rc = run_one(sessions[2], models[2], emb.data + (emb.rows - n_emb) * emb_width, 3, cdims, &t, &ms))) break;
    out_scores[kept++] = gpux_tensor_count(&t) ? ((float *)t.data)[0] : 0.0f;
    gpux_tensor_free(&t);
  }
  free(x);
  free(ones);
  free(mel.data);
  free(emb.data);
  if (infer_ms) *infer_ms = ms;
  if (rc) {
    free(out_scores);
    return rc;
  }
  *scores = out_scores;
  *n_scores = kept;
  return 0;
}

/* The three models' inputs, then the app's one audio input and one score output, declared or
 * made here. */
static int ww_check(gpux__spec *s, gpux_model *const *models, int n_models) {
  const gpux__spec_pipeline *p = &s->pipeline;
  gpux_value_info vi;
  const char *what[3] = {"melspectrogram", "embedding", "classifier"};
  for (int i = 0; i < 3; i++) {
    char k[64];
    snprintf(k, sizeof k, "pipeline.steps[%d]", i);
    if (gpux_model_input_count(models[i]) != 1 || gpux_model_output_count(models[i]) < 1)
      return gpux__spec_fail(s, GPUX_E_MODEL, p->steps[i].line, k, "the %s model must have one input and an output", what[i]);
    gpux_model_input_info(models[i], 0, &vi);
    if (i == 0 && vi.ndim != 2) return gpux__spec_fail(s, GPUX_E_SHAPE, p->steps[i].line, k, "the melspectrogram model takes [batch, samples]");
    if (i == 1 && (vi.ndim != 4 || (vi.dims[1] >= 0 && vi.dims[1] != p->window)))
      return gpux__spec_fail(s, GPUX_E_SHAPE, p->steps[i].line, k, "the embedding model takes [batch, %lld, 32, 1]", (long long)p->window);
    if (i == 2 && (vi.ndim != 3 || vi.dims[1] <= 0))
      return gpux__spec_fail(s, GPUX_E_SHAPE, p->steps[i].line, k, "the classifier takes [1, N, 96] with a fixed N");
  }
  if (s->n_inputs == 0) {
    if (!(s->inputs = gpux__arena_alloc(&s->arena, sizeof *s->inputs))) return GPUX_E_NOMEM;
    s->inputs[0] = (gpux__spec_io){.name = gpux__spec_strdup(s, "audio"), .type = GPUX__IO_AUDIO, .ndim = -1};
    s->n_inputs = 1;
  }
  if (s->n_inputs != 1) return gpux__spec_fail(s, GPUX_E_INVALID, s->inputs[1].line, "inputs", "mode openwakeword takes one audio input");
  s->inputs[0].type = GPUX__IO_AUDIO;
  s->inputs[0].dtype = GPUX_DT_FLOAT;
  if (!s->audio.present) {
    s->audio.present = 1;
    s->audio.cfg.add_batch_dim = 1;
    s->audio.cfg.sample_rate = 16000;
    s->audio.cfg.normalize = GPUX__AUDIO_NORM_INT16;
  }
  if (!s->audio.input) s->audio.input = s->inputs[0].name;
  if (s->n_outputs == 0) {
    if (!(s->outputs = gpux__arena_alloc(&s->arena, sizeof *s->outputs))) return GPUX_E_NOMEM;
    s->outputs[0] = (gpux__spec_io){.name = gpux__spec_strdup(s, "score"), .ndim = -1};
    s->n_outputs = 1;
  }
  if (s->n_outputs != 1) return gpux__spec_fail(s, GPUX_E_INVALID, s->outputs[1].line, "outputs", "mode openwakeword gives one output (the score)");
  gpux__spec_io *o = &s->outputs[0];
  o->type = GPUX__IO_TENSOR;
  o->dtype = GPUX_DT_FLOAT;
  o->ndim = 2;
  o->dims[0] = o->dims[1] = 1;
  o->dim_names[0] = o->dim_names[1] = NULL;
  return gpux__spec_check_post(s);
}

/* A stored config was checked at build; the classifier's window of embeddings must still be
 * fixed, as stream_run reads it from the input shape. */
static int ww_validate(const gpux_app *a) {
  gpux_value_info vi;
  gpux_model_input_info(a->models[2], 0, &vi);
  if (vi.ndim != 3 || vi.dims[1] <= 0) return gpux__error(GPUX_E_MODEL, "openwakeword: the classifier takes [1, N, 96]");
  return 0;
}

static int ww_io_count(const gpux_app *a, int output) { return 1; }

/* audio: float32 [samples]; score: float32 [1, 1] */
static int ww_io_info(const gpux_app *a, int output, int i, gpux_value_info *vi) {
  memset(vi, 0, sizeof *vi);
  const gpux__spec_io *io = output ? &a->spec->outputs[0] : &a->spec->inputs[0];
  vi->name = io->name;
  vi->dtype = GPUX_DT_FLOAT;
  vi->ndim = output ? 2 : 1;
  vi->dims[0] = output ? 1 : -1;
  vi->dims[1] = 1;
  return 0;
}

static void ww_release(gpux_app *a) {
  ww_state *st = a->mode_state;
  if (st) free(st->scores);
  free(st);
  a->mode_state = NULL;
}

static int ww_run(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *ms) {
  ww_state *st = a->mode_state;
  if (!st && !(st = a->mode_state = gpux__calloc(1, sizeof *st))) return GPUX_E_NOMEM;
  free(st->scores);
  st->scores = NULL;
  st->n_scores = 0;
  if (in->n != 1) return gpux__error(GPUX_E_INVALID, "openwakeword takes one audio input");
  double run_ms = 0;
  int rc = stream_run(a->sessions, a->models, &a->spec->pipeline, &in->t[0], &st->scores, &st->n_scores, &run_ms);
  if (rc) return rc;
  *ms += run_ms;
  float best = 0;
  for (int64_t i = 0; i < st->n_scores; i++) best = i == 0 || st->scores[i] > best ? st->scores[i] : best;
  gpux_tensor t = {0};
  int64_t dims[2] = {1, 1};
  if ((rc = gpux_tensor_init(&t, GPUX_DT_FLOAT, 2, dims))) return rc;
  ((float *)t.data)[0] = best;
  rc = gpux__named_tensors_add(out, a->spec->outputs[0].name, &t);
  gpux_tensor_free(&t);
  return rc;
}

/* every chunk's score, and how long a chunk is (samples at 16 kHz) */
static void ww_answer(const gpux_app *a, cJSON *root) {
  const ww_state *st = a->mode_state;
  cJSON *sc = cJSON_AddArrayToObject(root, "scores");
  for (int64_t i = 0; st && i < st->n_scores; i++) cJSON_AddItemToArray(sc, gpux__app_json_num(st->scores[i], 1));
  cJSON_AddNumberToObject(root, "chunk_ms", (double)a->spec->pipeline.chunk / 16.0);
}

const gpux__mode gpux__mode_openwakeword = {
  /* .name     = */ "openwakeword",
  /* .direct   = */ 0,
  /* .check    = */ ww_check,
  /* .validate = */ ww_validate,
  /* .session_options = */ NULL,
  /* .io_count = */ ww_io_count,
  /* .io_info  = */ ww_io_info,
  /* .run      = */ ww_run,
  /* .answer   = */ ww_answer,
  /* .release  = */ ww_release,
};
