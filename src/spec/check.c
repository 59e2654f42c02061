/* check.c — checks a parsed GPUXfile against its model(s): declared inputs and outputs must exist,
 * with matching dtypes, ranks and fixed dimensions; what was not declared is filled in from the
 * models (the minimal `model: ./model.onnx` file gets everything this way), and input types and
 * preprocessing defaults are inferred (an image input of a model with a fixed [1,3,224,224] input
 * gets a resize to 224x224). This is the check of the pipeline modes whose inputs and outputs are
 * their models' own (single, sequence); other modes check their models themselves (mode.h's
 * check) and end with gpux__spec_check_post. */
#include "spec/spec.h"
#include <stdio.h>

static int GPUX__PRINTF(5, 6) fail(const gpux__spec *s, int err, int line, const char *key, const char *fmt, ...) {
  char msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (line > 0) return gpux__error(err, "%s:%d: key '%s': %s", s->file, line, key, msg);
  return gpux__error(err, "%s: key '%s': %s", s->file, key, msg);
}

int gpux__spec_fail(const gpux__spec *s, int err, int line, const char *key, const char *fmt, ...) {
  char msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return fail(s, err, line, key, "%s", msg);
}

static void names_list(const gpux_model *m, int outputs, char *buf, size_t len) {
  int n = outputs ? gpux_model_output_count(m) : gpux_model_input_count(m);
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; i < n && o < len; i++) {
    gpux_value_info vi;
    if (outputs ? gpux_model_output_info(m, i, &vi) : gpux_model_input_info(m, i, &vi)) continue;
    o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", vi.name);
  }
  if (!n) snprintf(buf, len, "none");
}

static int find_info(const gpux_model *m, int outputs, const char *name, gpux_value_info *vi) {
  int n = outputs ? gpux_model_output_count(m) : gpux_model_input_count(m);
  for (int i = 0; i < n; i++) {
    if (outputs ? gpux_model_output_info(m, i, vi) : gpux_model_input_info(m, i, vi)) continue;
    if (!strcmp(vi->name, name)) return i;
  }
  return -1;
}

static void shape_str(int ndim, const int64_t *dims, const char *const *names, char *buf, size_t len) {
  size_t o = (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < ndim && o < len; i++) {
    if (names && names[i]) o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
    else if (dims[i] < 0) o += (size_t)snprintf(buf + o, len - o, "%s?", i ? ", " : "");
    else o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
  }
  if (o < len) snprintf(buf + o, len - o, "]");
}

/* Checks one declared value against the model's and fills what was not declared. */
static int match_value(gpux__spec *s, gpux__spec_io *io, const gpux_value_info *vi, const char *key,
                       const char *model_name) {
  char k[300];
  if (io->dtype && vi->dtype && io->dtype != vi->dtype) {
    snprintf(k, sizeof k, "%s.dtype", key);
    return fail(s, GPUX_E_DTYPE, io->dtype_line ? io->dtype_line : io->line, k, "%s does not match %s's %s for '%s'", gpux_dtype_name(io->dtype),
                model_name, gpux_dtype_name(vi->dtype), io->name);
  }
  if (io->ndim >= 0 && vi->ndim >= 0) {
    char a[256], b[256];
    shape_str(io->ndim, io->dims, (const char *const *)io->dim_names, a, sizeof a);
    shape_str(vi->ndim, vi->dims, vi->dim_names, b, sizeof b);
    snprintf(k, sizeof k, "%s.shape", key);
    if (io->ndim != vi->ndim)
      return fail(s, GPUX_E_SHAPE, io->shape_line ? io->shape_line : io->line, k, "%s has rank %d but %s's '%s' is %s (rank %d)", a, io->ndim,
                  model_name, io->name, b, vi->ndim);
    for (int i = 0; i < io->ndim; i++)
      if (io->dims[i] >= 0 && vi->dims[i] >= 0 && io->dims[i] != vi->dims[i])
        return fail(s, GPUX_E_SHAPE, io->shape_line ? io->shape_line : io->line, k, "%s does not match %s's '%s' %s (dimension %d)", a, model_name,
                    io->name, b, i);
  }
  if (!io->dtype) io->dtype = vi->dtype;
  if (io->ndim < 0 && vi->ndim >= 0) {
    io->ndim = vi->ndim;
    for (int i = 0; i < vi->ndim; i++) {
      io->dims[i] = vi->dims[i];
      io->dim_names[i] = vi->dim_names[i] ? gpux__spec_strdup(s, vi->dim_names[i]) : NULL;
    }
  }
  return 0;
}

static int fill_from_model(gpux__spec *s, gpux__spec_io *io, const gpux_value_info *vi) {
  memset(io, 0, sizeof *io);
  io->name = gpux__spec_strdup(s, vi->name);
  io->ndim = -1;
  return io->name ? match_value(s, io, vi, "", "") : GPUX_E_NOMEM;
}

static const char *base_name(const char *p) {
  const char *sl = strrchr(p, '/');
  return sl ? sl + 1 : p;
}

static int tokenizer_takes(const gpux__spec *s, const char *name) {
  const gpux__spec_tokenizer *t = &s->tokenizer;
  if (!t->present) return 0;
  return !strcmp(name, t->input_ids ? t->input_ids : "input_ids") ||
         !strcmp(name, t->attention_mask ? t->attention_mask : "attention_mask") ||
         !strcmp(name, t->token_type_ids ? t->token_type_ids : "token_type_ids");
}

/* Whisper features [1, bins, frames] for the model's fixed dimensions: mel_bins from the model
 * when not given (80 or 128 for Whisper's sizes), and what was given must match. */
static int whisper_fit_model(gpux__spec *s, const gpux__spec_io *io, const char *first_name) {
  gpux__audio_config *c = &s->audio.cfg;
  int at = c->add_batch_dim, line = s->audio.line ? s->audio.line : io->line;
  if (io->ndim < 0) return 0;
  int64_t bins = io->dims[at], frames = io->dims[at + 1];
  int64_t want_frames = (c->length ? c->length : GPUX__WHISPER_SAMPLES) / GPUX__WHISPER_HOP;
  if (!c->mel_bins && bins > 0 && bins <= GPUX__WHISPER_MAX_BINS) c->mel_bins = (int)bins;
  if (bins > 0 && bins != (c->mel_bins ? c->mel_bins : GPUX__WHISPER_DEFAULT_BINS))
    return fail(s, GPUX_E_SHAPE, line, "preprocessing.audio.mel_bins", "features have %d mel bins but %s's '%s' takes %lld",
                c->mel_bins ? c->mel_bins : GPUX__WHISPER_DEFAULT_BINS, first_name, io->name, (long long)bins);
  if (frames > 0 && frames != want_frames)
    return fail(s, GPUX_E_SHAPE, line, "preprocessing.audio.length",
                "features have %lld frames (%lld samples) but %s's '%s' takes %lld frames", (long long)want_frames,
                (long long)(want_frames * GPUX__WHISPER_HOP), first_name, io->name, (long long)frames);
  return 0;
}

/* Default image preprocessing for an image input: resize to the model's fixed H x W. */
static void image_fit_model(gpux__spec_image *im, const gpux__spec_io *io) {
  gpux__image_config *c = &im->cfg;
  if (io->ndim != 4) return;
  int nhwc = c->layout == GPUX__LAYOUT_NHWC;
  int64_t ch = io->dims[nhwc ? 3 : 1], h = io->dims[nhwc ? 1 : 2], w = io->dims[nhwc ? 2 : 3];
  if (!im->present && (ch == 1 || ch == 3)) c->channels = (int)ch;
  if (c->resize == GPUX__RESIZE_NONE && !c->crop_width && h > 0 && w > 0) {
    c->resize = GPUX__RESIZE_EXACT;
    c->width = (int)w;
    c->height = (int)h;
  }
}

int gpux__spec_check_models(gpux__spec *s, gpux_model *const *models, int n_models) {
  if (n_models < 1) return gpux__error(GPUX_E_INTERNAL, "no model to check the spec against");
  gpux_model *first = models[0], *last = models[n_models - 1];
  const char *first_name = base_name(s->has_model ? s->model.source : s->pipeline.steps[0].model.source);
  const char *last_name = base_name(s->has_model ? s->model.source : s->pipeline.steps[n_models - 1].model.source);
  gpux_value_info vi;
  char k[300], list[1024];
  int rc;

  /* pipeline steps: each step's inputs come from the previous step's outputs */
  for (int i = 1; i < n_models; i++) {
    int n_in = gpux_model_input_count(models[i]), n_prev = gpux_model_output_count(models[i - 1]);
    for (int j = 0; j < n_in; j++) {
      gpux_model_input_info(models[i], j, &vi);
      gpux_value_info pv;
      if (find_info(models[i - 1], 1, vi.name, &pv) >= 0 || j < n_prev || vi.optional) continue;
      snprintf(k, sizeof k, "pipeline.steps[%d]", i);
      names_list(models[i - 1], 1, list, sizeof list);
      return fail(s, GPUX_E_INVALID, s->pipeline.steps[i].line, k,
                  "input '%s' of step '%s' is neither an output of the step before (%s) nor fed by position",
                  vi.name, s->pipeline.steps[i].name, list);
    }
  }

  /* declared inputs */
  for (int i = 0; i < s->n_inputs; i++) {
    gpux__spec_io *io = &s->inputs[i];
    snprintf(k, sizeof k, "inputs[%d]", i);
    if (io->type == GPUX__IO_STRING && s->tokenizer.present) continue;   /* text for the tokenizer */
    if (find_info(first, 0, io->name, &vi) < 0) {
      char kn[320];
      snprintf(kn, sizeof kn, "%s.name", k);
      names_list(first, 0, list, sizeof list);
      return fail(s, GPUX_E_INVALID, io->name_line ? io->name_line : io->line, kn, "'%s' is not an input of %s (its inputs: %s)", io->name, first_name, list);
    }
    if (io->type == GPUX__IO_STRING && vi.dtype != GPUX_DT_STRING) {
      char kt[320];
      snprintf(kt, sizeof kt, "%s.type", k);
      return fail(s, GPUX_E_DTYPE, io->line, kt, "'%s' is a %s tensor; a string input needs preprocessing.tokenizer",
                  io->name, gpux_dtype_name(vi.dtype));
    }
    if ((rc = match_value(s, io, &vi, k, first_name))) return rc;
  }
  /* undeclared model inputs, in the model's order */
  int n_model_in = gpux_model_input_count(first);
  int n_add = 0;
  for (int j = 0; j < n_model_in; j++) {
    gpux_model_input_info(first, j, &vi);
    int found = tokenizer_takes(s, vi.name);
    for (int i = 0; i < s->n_inputs && !found; i++) found = !strcmp(s->inputs[i].name, vi.name);
    n_add += !found;
  }
  int need_text = s->tokenizer.present;
  for (int i = 0; i < s->n_inputs && need_text; i++) need_text = s->inputs[i].type != GPUX__IO_STRING;
  if (n_add || need_text) {
    gpux__spec_io *ni = gpux__arena_alloc(&s->arena, sizeof *ni * (size_t)(s->n_inputs + n_add + 1));
    if (!ni) return GPUX_E_NOMEM;
    if (s->n_inputs) memcpy(ni, s->inputs, sizeof *ni * (size_t)s->n_inputs);
    s->inputs = ni;
    if (need_text) {
      gpux__spec_io *t = &s->inputs[s->n_inputs++];
      *t = (gpux__spec_io){.name = gpux__spec_strdup(s, s->tokenizer.input ? s->tokenizer.input : "text"),
                           .type = GPUX__IO_STRING, .dtype = GPUX_DT_STRING, .ndim = -1};
    }
    for (int j = 0; j < n_model_in; j++) {
      gpux_model_input_info(first, j, &vi);
      int found = tokenizer_takes(s, vi.name);
      for (int i = 0; i < s->n_inputs && !found; i++) found = !strcmp(s->inputs[i].name, vi.name);
      if (found) continue;
      gpux__spec_io *io = &s->inputs[s->n_inputs++];
      if ((rc = fill_from_model(s, io, &vi))) return rc;
      io->type = GPUX__IO_TENSOR;
      if (vi.dtype == GPUX_DT_STRING) io->type = GPUX__IO_STRING;
    }
  }
  /* the tokenizer's model inputs */
  if (s->tokenizer.present) {
    gpux__spec_tokenizer *t = &s->tokenizer;
    const char *ids = t->input_ids ? t->input_ids : "input_ids";
    if (find_info(first, 0, ids, &vi) < 0) {
      names_list(first, 0, list, sizeof list);
      return fail(s, GPUX_E_INVALID, t->line, "preprocessing.tokenizer.input_ids",
                  "%s has no input '%s' for the token ids (its inputs: %s)", first_name, ids, list);
    }
    if (t->attention_mask && find_info(first, 0, t->attention_mask, &vi) < 0)
      return fail(s, GPUX_E_INVALID, t->line, "preprocessing.tokenizer.attention_mask", "%s has no input '%s'", first_name, t->attention_mask);
    if (t->token_type_ids && find_info(first, 0, t->token_type_ids, &vi) < 0)
      return fail(s, GPUX_E_INVALID, t->line, "preprocessing.tokenizer.token_type_ids", "%s has no input '%s'", first_name, t->token_type_ids);
    if (t->input) {
      int ok = 0;
      for (int i = 0; i < s->n_inputs; i++) ok |= !strcmp(s->inputs[i].name, t->input) && s->inputs[i].type == GPUX__IO_STRING;
      if (!ok) return fail(s, GPUX_E_INVALID, t->line, "preprocessing.tokenizer.input", "'%s' is not a string input", t->input);
    } else {
      for (int i = 0; i < s->n_inputs && !t->input; i++)
        if (s->inputs[i].type == GPUX__IO_STRING) t->input = s->inputs[i].name;
    }
  }
  /* image and audio preprocessing: which input each fills */
  for (int kind = GPUX__IO_IMAGE; kind <= GPUX__IO_AUDIO; kind++) {
    int present = kind == GPUX__IO_IMAGE ? s->image.present : s->audio.present;
    char **target = kind == GPUX__IO_IMAGE ? &s->image.input : &s->audio.input;
    int pline = kind == GPUX__IO_IMAGE ? s->image.line : s->audio.line;
    const char *key = kind == GPUX__IO_IMAGE ? "preprocessing.image" : "preprocessing.audio";
    if (present) {
      gpux__spec_io *io = NULL;
      for (int i = 0; i < s->n_inputs && !io; i++)
        if (*target ? !strcmp(s->inputs[i].name, *target) : s->inputs[i].type == kind) io = &s->inputs[i];
      /* Whisper features go to the input Hugging Face's exports call input_features when there is one */
      int whisper = kind == GPUX__IO_AUDIO && s->audio.cfg.features == GPUX__AUDIO_FEATURES_WHISPER;
      for (int i = 0; i < s->n_inputs && !io && !*target && whisper; i++)
        if (s->inputs[i].type == GPUX__IO_TENSOR && !s->inputs[i].declared && !strcmp(s->inputs[i].name, "input_features"))
          io = &s->inputs[i];
      for (int i = 0; i < s->n_inputs && !io && !*target; i++)
        if (s->inputs[i].type == GPUX__IO_TENSOR && !s->inputs[i].declared) io = &s->inputs[i];
      if (!io) {
        char kk[64];
        snprintf(kk, sizeof kk, "%s.input", key);
        if (*target) return fail(s, GPUX_E_INVALID, pline, kk, "'%s' is not an input", *target);
        return fail(s, GPUX_E_INVALID, pline, key, "no input to feed (declare one with type: %s)", gpux__io_type_name(kind));
      }
      if (io->type != kind && io->type != GPUX__IO_TENSOR)
        return fail(s, GPUX_E_INVALID, pline, key, "input '%s' is declared as %s", io->name, gpux__io_type_name(io->type));
      io->type = kind;
      *target = io->name;
    }
    for (int i = 0; i < s->n_inputs; i++) {
      gpux__spec_io *io = &s->inputs[i];
      if (io->type != kind) continue;
      if (*target && strcmp(*target, io->name)) {
        snprintf(k, sizeof k, "inputs[%d].type", i);
        return fail(s, GPUX_E_INVALID, io->line, k, "only one %s input is supported ('%s' already is)", gpux__io_type_name(kind), *target);
      }
      if (kind == GPUX__IO_IMAGE) {
        if (!s->image.present) {
          gpux__image_config_default(&s->image.cfg);
          s->image.input = io->name;
        }
        image_fit_model(&s->image, io);
        s->image.present = 1;
        if (io->dtype && io->dtype != s->image.cfg.dtype)
          return fail(s, GPUX_E_DTYPE, s->image.line ? s->image.line : io->line, "preprocessing.image.dtype",
                      "preprocessing makes %s but %s's '%s' takes %s", gpux_dtype_name(s->image.cfg.dtype),
                      first_name, io->name, gpux_dtype_name(io->dtype));
      } else {
        if (!s->audio.present) {
          s->audio.present = 1;
          s->audio.cfg = (gpux__audio_config){.add_batch_dim = 1};
          s->audio.input = io->name;
        }
        if (io->dtype && io->dtype != GPUX_DT_FLOAT)
          return fail(s, GPUX_E_DTYPE, s->audio.line ? s->audio.line : io->line, "preprocessing.audio",
                      "audio becomes float32 but %s's '%s' takes %s", first_name, io->name, gpux_dtype_name(io->dtype));
        int features = s->audio.cfg.features != GPUX__AUDIO_FEATURES_NONE, rank = (s->audio.cfg.add_batch_dim ? 2 : 1) + features;
        if (io->ndim >= 0 && io->ndim != rank)
          return fail(s, GPUX_E_SHAPE, s->audio.line ? s->audio.line : io->line, "preprocessing.audio.batch_dim",
                      "audio becomes rank %d but %s's '%s' has rank %d", rank, first_name, io->name, io->ndim);
        if (features && (rc = whisper_fit_model(s, io, first_name))) return rc;
      }
    }
  }

  /* outputs: declared ones must exist; the list follows the model's order */
  for (int i = 0; i < s->n_outputs; i++) {
    gpux__spec_io *io = &s->outputs[i];
    snprintf(k, sizeof k, "outputs[%d]", i);
    if (find_info(last, 1, io->name, &vi) < 0) {
      char kn[320];
      snprintf(kn, sizeof kn, "%s.name", k);
      names_list(last, 1, list, sizeof list);
      return fail(s, GPUX_E_INVALID, io->name_line ? io->name_line : io->line, kn, "'%s' is not an output of %s (its outputs: %s)", io->name, last_name, list);
    }
    if ((rc = match_value(s, io, &vi, k, last_name))) return rc;
  }
  int n_model_out = gpux_model_output_count(last);
  gpux__spec_io *no = gpux__arena_alloc(&s->arena, sizeof *no * (size_t)(n_model_out + 1));
  if (!no) return GPUX_E_NOMEM;
  for (int j = 0; j < n_model_out; j++) {
    gpux_model_output_info(last, j, &vi);
    gpux__spec_io *d = NULL;
    for (int i = 0; i < s->n_outputs && !d; i++) if (!strcmp(s->outputs[i].name, vi.name)) d = &s->outputs[i];
    if (d) no[j] = *d;
    else if ((rc = fill_from_model(s, &no[j], &vi))) return rc;
  }
  s->outputs = no;
  s->n_outputs = n_model_out;
  return gpux__spec_check_post(s);
}

int gpux__spec_check_post(gpux__spec *s) {
  char list[1024];
  if (s->n_post && !s->n_outputs) /* an image's config may list none */
    return fail(s, GPUX_E_INVALID, s->post[0].line, "postprocessing", "there are no outputs to postprocess");
  for (int i = 0; i < s->n_post; i++) {
    gpux__spec_post *p = &s->post[i];
    const gpux__spec_io *o = NULL;
    if (!p->output) p->output = s->outputs[0].name;
    for (int j = 0; j < s->n_outputs && !o; j++) if (!strcmp(s->outputs[j].name, p->output)) o = &s->outputs[j];
    char kk[64];
    snprintf(kk, sizeof kk, s->n_post > 1 ? "postprocessing[%d].output" : "postprocessing.output", i);
    if (!o) {
      size_t off = 0;
      list[0] = 0;
      for (int j = 0; j < s->n_outputs && off < sizeof list; j++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", j ? ", " : "", s->outputs[j].name);
      return fail(s, GPUX_E_INVALID, p->line, kk, "'%s' is not an output (outputs: %s)", p->output, list);
    }
    if (o->dtype == GPUX_DT_STRING || o->dtype == GPUX_DT_BOOL)
      return fail(s, GPUX_E_DTYPE, p->line, kk, "'%s' is %s; postprocessing needs numbers", o->name, gpux_dtype_name(o->dtype));
    if (p->cfg.ctc && o->ndim >= 0 && o->ndim != 3 && o->ndim != 2)
      return fail(s, GPUX_E_SHAPE, p->line, kk, "CTC decoding needs [batch, steps, classes]; '%s' has rank %d", o->name, o->ndim);
    int64_t classes = o->ndim > 0 ? o->dims[o->ndim - 1] : -1;
    if (p->detect_scores) {
      const gpux__spec_io *so = NULL;
      for (int j = 0; j < s->n_outputs && !so; j++) if (!strcmp(s->outputs[j].name, p->detect_scores)) so = &s->outputs[j];
      snprintf(kk, sizeof kk, s->n_post > 1 ? "postprocessing[%d].detect.scores" : "postprocessing.detect.scores", i);
      if (!so || so == o)
        return fail(s, GPUX_E_INVALID, p->line, kk, "'%s' is not an output other than '%s' (the scores come from a second output)",
                    p->detect_scores, o->name);
      classes = so->ndim > 0 ? so->dims[so->ndim - 1] : -1;
    } else if (p->cfg.detect.format) {
      classes = -1; /* the class count is one dimension less the box values: not checked here */
    }
    if (!p->cfg.ctc && p->labels && classes > 0 && p->n_labels != classes)
      return fail(s, GPUX_E_SHAPE, p->line, kk, "%lld labels for %lld classes of '%s'", (long long)p->n_labels,
                  (long long)classes, o->name);
  }
  return 0;
}
