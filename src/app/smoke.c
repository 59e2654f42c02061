/* smoke.c — generated inputs for build's smoke run and serve's warm-up (gpux__app_smoke_inputs):
 * the spec's examples when given, otherwise a synthetic image (a dark bar on white), a second of
 * quiet noise as WAV, "hello world", or zeros in the declared shape. */
#include "app/app.h"
#include <cjson/cJSON.h>
#include <stdio.h>

static int synth_image(const gpux__spec_io *io, const gpux__image_config *c, void **png, size_t *len) {
  int w = 224, h = 224;
  int nhwc = c->layout == GPUX__LAYOUT_NHWC;
  if (c->resize == GPUX__RESIZE_EXACT) { w = c->width; h = c->height; }
  else if (c->resize == GPUX__RESIZE_HEIGHT) { h = c->height; w = c->height * 4; }
  else if (io->ndim == 4 && io->dims[nhwc ? 1 : 2] > 0 && io->dims[nhwc ? 2 : 3] > 0) {
    h = (int)io->dims[nhwc ? 1 : 2];
    w = (int)io->dims[nhwc ? 2 : 3];
  }
  gpux__image img = {0};
  int rc = gpux__image_alloc(&img, w, h, 3);
  if (rc) return rc;
  /* white, with a dark bar through the middle: something for a model to look at */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int dark = y > h / 3 && y < 2 * h / 3 && x > w / 8 && x < 7 * w / 8 && (x / 6) % 3 != 0;
      for (int k = 0; k < 3; k++) img.data[((size_t)y * w + x) * 3 + k] = dark ? 20 : 250;
    }
  rc = gpux__image_encode_png(&img, png, len);
  gpux__image_free(&img);
  return rc;
}

static int synth_wav(int rate, void **wav, size_t *len) {
  gpux__audio au = {.sample_rate = rate ? rate : 16000, .source_channels = 1, .source_bits = 16};
  au.n_samples = au.sample_rate;
  au.samples = gpux__malloc(sizeof(float) * (size_t)au.n_samples);
  if (!au.samples) return GPUX_E_NOMEM;
  uint32_t seed = 12345;
  for (int64_t i = 0; i < au.n_samples; i++) {
    seed = seed * 1664525u + 1013904223u;
    au.samples[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.01f;
  }
  int rc = gpux__wav_encode_pcm16(&au, wav, len);
  free(au.samples);
  return rc;
}

/* Zeros for a tensor input as JSON text (nested lists carry the shape): symbolic dimensions are
 * 1 for the first (batch) and `sym` for the others. */
static char *zeros_text(const gpux__spec_io *io, int64_t sym) {
  int ndim = io->ndim >= 0 ? io->ndim : 1;
  int64_t dims[GPUX_MAX_DIMS], n = 1;
  for (int i = 0; i < ndim; i++) {
    dims[i] = io->ndim >= 0 && io->dims[i] >= 0 ? io->dims[i] : i == 0 ? 1 : sym;
    n *= dims[i];
  }
  if (n > 1 << 26) return NULL;
  if (ndim == 0) return gpux__strdup("0");
  /* "[[0,0],[0,0]]": per element "0," plus brackets per row of every level */
  size_t len = (size_t)n * 2 + 4;
  int64_t rows = 1;
  for (int i = 0; i < ndim; i++) { rows *= dims[i]; len += (size_t)rows * 3; }
  char *s = gpux__malloc(len);
  if (!s) return NULL;
  size_t o = 0;
  int64_t idx[GPUX_MAX_DIMS] = {0};
  for (int i = 0; i < ndim; i++) s[o++] = '[';
  for (int64_t e = 0; e < n; e++) {
    s[o++] = '0';
    int level = ndim - 1;
    while (level >= 0 && ++idx[level] == dims[level]) { idx[level] = 0; s[o++] = ']'; level--; }
    if (level >= 0) {
      s[o++] = ',';
      for (int i = level + 1; i < ndim; i++) s[o++] = '[';
    }
  }
  if (n == 0) for (int i = 0; i < ndim; i++) s[o++] = ']';
  s[o] = 0;
  return s;
}

int gpux__app_smoke_inputs(gpux_app *a, int64_t sym, gpux_app_input **inputs, int *n_inputs, void ***owned,
                           cJSON *what) {
  gpux__spec *s = a->spec;
  *inputs = gpux__calloc((size_t)s->n_inputs + 1, sizeof **inputs);
  *owned = gpux__calloc((size_t)s->n_inputs + 1, sizeof **owned);
  *n_inputs = 0;
  if (!*inputs || !*owned) return GPUX_E_NOMEM;
  int rc = 0;
  for (int i = 0; i < s->n_inputs && !rc; i++) {
    const gpux__spec_io *io = &s->inputs[i];
    gpux_app_input *in = &(*inputs)[i];
    in->name = io->name;
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "name", io->name);
    cJSON_AddItemToArray(what, w);
    if (io->example) {
      char p[4096];
      gpux__spec_path(s, io->example, p, sizeof p);
      if (io->type == GPUX__IO_IMAGE || io->type == GPUX__IO_AUDIO || gpux__app_is_file(p)) {
        char *data;
        size_t len;
        if ((rc = gpux__app_read_file(p, &data, &len))) {
          gpux__error_prefix(rc, "%s: key 'inputs[%d].example': ", s->file, i);
          break;
        }
        (*owned)[i] = data;
        in->bytes = data;
        in->len = len;
      } else {
        in->text = io->example;
      }
      cJSON_AddStringToObject(w, "source", "example");
      cJSON_AddStringToObject(w, "example", io->example);
      continue;
    }
    void *buf = NULL;
    size_t len = 0;
    switch (io->type) {
    case GPUX__IO_IMAGE:
      rc = synth_image(io, &s->image.cfg, &buf, &len);
      cJSON_AddStringToObject(w, "source", "generated image");
      break;
    case GPUX__IO_AUDIO:
      rc = synth_wav(s->audio.cfg.sample_rate, &buf, &len);
      cJSON_AddStringToObject(w, "source", "generated audio (1 s of quiet noise)");
      break;
    case GPUX__IO_STRING:
      in->text = "hello world";
      cJSON_AddStringToObject(w, "source", "generated text");
      break;
    default:
      if (io->dtype == GPUX_DT_STRING) { in->text = "hello world"; break; }
      if (!(buf = zeros_text(io, sym))) rc = gpux__error(GPUX_E_INVALID, "input '%s': too large to generate", io->name);
      len = buf ? strlen(buf) : 0;
      in->text = buf;
      buf = NULL;
      (*owned)[i] = (void *)in->text;
      if (sym == 1) cJSON_AddStringToObject(w, "source", "generated zeros (symbolic dimensions as 1)");
      else {
        char src[96];
        snprintf(src, sizeof src, "generated zeros (symbolic dimensions as 1 for the batch, %lld elsewhere)", (long long)sym);
        cJSON_AddStringToObject(w, "source", src);
      }
      break;
    }
    if (buf) {
      (*owned)[i] = buf;
      in->bytes = buf;
      in->len = len;
    }
  }
  *n_inputs = s->n_inputs;
  return rc;
}

