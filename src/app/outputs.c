/* outputs.c — the answer of `gpux run` (gpux__app_answer): each output as JSON (name, dtype,
 * shape, data unless it is huge), post-processed (top-k labels, a detector's threshold, CTC text)
 * where the spec asks, and the text a person reads; with the timings of the run. */
#include "app/mode.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

/* Outputs with more elements than this carry no "data" in the JSON answer (OCR's [1, 80, 6625]
 * probabilities would be megabytes) unless the app was opened with full_outputs; the
 * post-processed result is still there. */
#define JSON_MAX_ELEMENTS 100000

/* A growable text buffer for what a person reads. */
typedef struct {
  char *data;
  size_t len, cap;
  int failed;
} text_buf;

static void GPUX__PRINTF(2, 3) tb_printf(text_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || b->failed) return;
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *p = gpux__realloc(b->data, cap);
    if (!p) { b->failed = 1; return; }
    b->data = p;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}


cJSON *gpux__app_json_num(double v, int is_float) {
  char b[64];
  if (!isfinite(v)) return cJSON_CreateNull();
  if (is_float) { /* the shortest text that reads back as the same float32 (0.3, not 0.300000012) */
    for (int digits = 6; digits <= 9; digits++) {
      snprintf(b, sizeof b, "%.*g", digits, v);
      if (strtof(b, NULL) == (float)v) break;
    }
  } else {
    snprintf(b, sizeof b, "%.17g", v);
  }
  return cJSON_CreateRaw(b);
}

static cJSON *tensor_json(const char *name, const gpux_tensor *t, int full) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", name);
  cJSON_AddStringToObject(o, "dtype", gpux_dtype_name(t->dtype));
  cJSON *sh = cJSON_AddArrayToObject(o, "shape");
  for (int i = 0; i < t->ndim; i++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->dims[i]));
  int64_t n = gpux_tensor_count(t);
  if (t->kind != GPUX_KIND_TENSOR) {
    cJSON_AddStringToObject(o, "kind", t->kind == GPUX_KIND_SEQUENCE ? "sequence" : "none");
    return o;
  }
  if (n > JSON_MAX_ELEMENTS && !full) {
    cJSON_AddNullToObject(o, "data");
    cJSON_AddStringToObject(o, "data_omitted", "more than 100000 elements");
    return o;
  }
  cJSON *d = cJSON_AddArrayToObject(o, "data");
  int fl = gpux__dtype_is_float(t->dtype);
  for (int64_t i = 0; i < n; i++) {
    if (t->dtype == GPUX_DT_STRING) cJSON_AddItemToArray(d, cJSON_CreateString(((char **)t->data)[i] ? ((char **)t->data)[i] : ""));
    else if (t->dtype == GPUX_DT_BOOL) cJSON_AddItemToArray(d, cJSON_CreateBool(((uint8_t *)t->data)[i]));
    else cJSON_AddItemToArray(d, gpux__app_json_num(gpux__load_f64(t->dtype, t->data, i), fl));
  }
  return o;
}

/* A detector's output: "detections" [{"class", "label", "score", "box": [x1, y1, x2, y2]}], with
 * "box_space": "image" when the boxes were taken back through the image input's preprocessing
 * (resize, letterbox, crop) to the pixels of the image given, and clipped to it ("image_size"
 * [width, height]); "input" when there was no image (the model's own coordinates); "normalized"
 * for fractions with no image to scale them by. And one line each for a person. */
static int detections(const gpux__spec_post *p, const gpux__post_config *cfg, const gpux_tensor *t,
                      const gpux__named_tensors *out, cJSON *oj, text_buf *text) {
  gpux__detection *d = NULL;
  int64_t n = 0;
  const gpux_tensor *scores = NULL;
  if (p->detect_scores) {
    int k = gpux__named_tensors_find(out, p->detect_scores);
    if (k < 0) return gpux__error(GPUX_E_INVALID, "postprocessing.detect.scores: the model gave no output '%s'", p->detect_scores);
    scores = &out->t[k];
  }
  int rc = gpux__detect(&cfg->detect, t, scores, &d, &n);
  if (rc) return gpux__error_prefix(rc, "postprocessing of '%s': ", p->output);
  const gpux__image_map *m = &out->image_map;
  const char *space = m->valid ? "image" : cfg->detect.normalized ? "normalized" : "input";
  for (int64_t i = 0; i < n && m->valid; i++) {
    if (cfg->detect.normalized)
      for (int k = 0; k < 4; k++) d[i].box[k] *= (float)(k % 2 ? m->tensor_height : m->tensor_width);
    gpux__image_map_box(m, d[i].box);
  }
  cJSON_AddStringToObject(oj, "box_space", space);
  if (m->valid) {
    cJSON *size = cJSON_AddArrayToObject(oj, "image_size");
    cJSON_AddItemToArray(size, cJSON_CreateNumber(m->image_width));
    cJSON_AddItemToArray(size, cJSON_CreateNumber(m->image_height));
  }
  cJSON *arr = cJSON_AddArrayToObject(oj, "detections");
  for (int64_t i = 0; i < n; i++) {
    const char *label = cfg->labels && d[i].cls < cfg->labels->n ? cfg->labels->items[d[i].cls] : NULL;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "class", (double)d[i].cls);
    if (label) cJSON_AddStringToObject(e, "label", label);
    cJSON_AddItemToObject(e, "score", gpux__app_json_num(d[i].score, 1));
    cJSON *box = cJSON_AddArrayToObject(e, "box");
    for (int k = 0; k < 4; k++) cJSON_AddItemToArray(box, gpux__app_json_num(d[i].box[k], 1));
    cJSON_AddItemToArray(arr, e);
    if (label) tb_printf(text, "%s", label);
    else tb_printf(text, "class %lld", (long long)d[i].cls);
    tb_printf(text, cfg->detect.normalized && !m->valid ? " %.4f [%.4f, %.4f, %.4f, %.4f]\n" : " %.4f [%.1f, %.1f, %.1f, %.1f]\n",
              d[i].score, d[i].box[0], d[i].box[1], d[i].box[2], d[i].box[3]);
  }
  if (!n) tb_printf(text, "no detections (score threshold %.2f)\n", cfg->detect.score_threshold);
  else if (m->valid) tb_printf(text, "(boxes in the pixels of the %dx%d image)\n", m->image_width, m->image_height);
  free(d);
  return 0;
}

/* postprocessing.answer: the best label and score (and every class's score) under the names the
 * GPUXfile gives, as keys of the answer; for several rows, arrays of them. The text a person
 * reads becomes that object. */
static void named_answer(const gpux__spec_post *p, const gpux__post_config *cfg, const gpux_tensor *t,
                         const gpux__post_result *r, cJSON *root, text_buf *text) {
  cJSON *labels = NULL, *scores = NULL, *all = NULL;
  int many = r->n_rows != 1;
  if (many) {
    if (p->answer_label) labels = cJSON_AddArrayToObject(root, p->answer_label);
    if (p->answer_score) scores = cJSON_AddArrayToObject(root, p->answer_score);
    if (p->answer_scores) all = cJSON_AddArrayToObject(root, p->answer_scores);
  }
  int64_t classes = t->ndim ? t->dims[t->ndim - 1] : 1;
  for (int64_t i = 0; i < r->n_rows; i++) {
    const gpux__post_row *row = &r->rows[i];
    const gpux__post_item *best = NULL; /* the items are ranked only when top_k is set */
    for (int64_t k = 0; k < row->n_items; k++)
      if (!best || row->items[k].score > best->score) best = &row->items[k];
    char idx[32];
    snprintf(idx, sizeof idx, "%lld", best ? (long long)best->index : -1LL);
    const char *label = !best ? "" : best->label ? best->label : idx;
    if (p->answer_label) {
      cJSON *v = best ? cJSON_CreateString(label) : cJSON_CreateNull();
      if (many) cJSON_AddItemToArray(labels, v);
      else cJSON_AddItemToObject(root, p->answer_label, v);
    }
    if (p->answer_score) {
      cJSON *v = best ? gpux__app_json_num(best->score, 1) : cJSON_CreateNull();
      if (many) cJSON_AddItemToArray(scores, v);
      else cJSON_AddItemToObject(root, p->answer_score, v);
    }
    if (p->answer_scores) { /* every class's score, by label, in class order */
      cJSON *o = cJSON_CreateObject();
      float *act = gpux__malloc(sizeof *act * (size_t)(classes > 0 ? classes : 1));
      if (act && classes > 0) {
        for (int64_t c = 0; c < classes; c++) act[c] = (float)gpux__load_f64(t->dtype, t->data, i * classes + c);
        if (cfg->activation == GPUX__ACT_SOFTMAX) gpux__softmax(act, classes, act);
        else if (cfg->activation == GPUX__ACT_SIGMOID) gpux__sigmoid(act, classes, act);
        for (int64_t c = 0; c < classes; c++) {
          char name[32];
          snprintf(name, sizeof name, "%lld", (long long)c);
          const char *l = cfg->labels && c < cfg->labels->n ? cfg->labels->items[c] : name;
          cJSON_AddItemToObject(o, l, gpux__app_json_num(act[c], 1));
        }
      }
      free(act);
      if (many) cJSON_AddItemToArray(all, o);
      else cJSON_AddItemToObject(root, p->answer_scores, o);
    }
    /* the text: {"sentiment": "positive", "confidence": 0.9412}, one line per row */
    const char *sep = "{";
    if (p->answer_label) {
      cJSON *q = cJSON_CreateString(label);
      char *js = best ? cJSON_PrintUnformatted(q) : NULL;
      tb_printf(text, "%s\"%s\": %s", sep, p->answer_label, js ? js : "null");
      free(js);
      cJSON_Delete(q);
      sep = ", ";
    }
    if (p->answer_score) {
      if (best) tb_printf(text, "%s\"%s\": %.4f", sep, p->answer_score, best->score);
      else tb_printf(text, "%s\"%s\": null", sep, p->answer_score);
      sep = ", ";
    }
    if (p->answer_scores) {
      const cJSON *o = many ? cJSON_GetArrayItem(all, (int)i) : cJSON_GetObjectItem(root, p->answer_scores), *e;
      const char *inner = "{";
      tb_printf(text, "%s\"%s\": ", sep, p->answer_scores);
      cJSON_ArrayForEach(e, o) {
        cJSON *q = cJSON_CreateString(e->string);
        char *js = cJSON_PrintUnformatted(q);
        tb_printf(text, "%s%s: %.4f", inner, js ? js : "\"\"", cJSON_IsRaw(e) ? strtod(e->valuestring, NULL) : 0.0); /* numbers are raw */
        free(js);
        cJSON_Delete(q);
        inner = ", ";
      }
      tb_printf(text, "%s}", *inner == '{' ? "{" : "");
    }
    tb_printf(text, "}\n");
  }
}

static int post_one(gpux_app *a, int pi, const gpux__named_tensors *out, const gpux_tensor *t, cJSON *root, cJSON *oj,
                    text_buf *text) {
  gpux__spec *s = a->spec;
  gpux__spec_post *p = &s->post[pi];
  gpux__post_config cfg = p->cfg;
  cfg.labels = a->post_labels[pi].n ? &a->post_labels[pi] : NULL;
  if (!cfg.labels && !cfg.ctc)
    for (int i = 0; i < s->n_outputs; i++)
      if (!strcmp(s->outputs[i].name, p->output) && a->io_labels && a->io_labels[i].n) cfg.labels = &a->io_labels[i];
  if (cfg.detect.format) return detections(p, &cfg, t, out, oj, text);
  gpux__post_result r = {0};
  int rc = gpux__postprocess(&cfg, t, &r);
  if (rc) return gpux__error_prefix(rc, "postprocessing of '%s': ", p->output);
  int64_t classes = t->ndim ? t->dims[t->ndim - 1] : 1;
  if (cfg.ctc) {
    cJSON *texts = cJSON_AddArrayToObject(oj, "text");
    for (int64_t i = 0; i < r.n_rows; i++) {
      cJSON_AddItemToArray(texts, cJSON_CreateString(r.rows[i].text ? r.rows[i].text : ""));
      tb_printf(text, "%s\n", r.rows[i].text ? r.rows[i].text : "");
    }
    cJSON *conf = cJSON_AddArrayToObject(oj, "confidence");
    for (int64_t i = 0; i < r.n_rows; i++) cJSON_AddItemToArray(conf, gpux__app_json_num(r.rows[i].score, 1));
  } else {
    cJSON *rows = r.n_rows == 1 ? NULL : cJSON_AddArrayToObject(oj, "labels");
    for (int64_t i = 0; i < r.n_rows; i++) {
      cJSON *row = cJSON_CreateArray();
      for (int64_t k = 0; k < r.rows[i].n_items; k++) {
        const gpux__post_item *it = &r.rows[i].items[k];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "index", (double)it->index);
        if (it->label) cJSON_AddStringToObject(e, "label", it->label);
        cJSON_AddItemToObject(e, "score", gpux__app_json_num(it->score, 1));
        cJSON_AddItemToArray(row, e);
      }
      if (rows) cJSON_AddItemToArray(rows, row);
      else cJSON_AddItemToObject(oj, "labels", row);
    }
    if (p->answer_label || p->answer_score || p->answer_scores) {
      named_answer(p, &cfg, t, &r, root, text);
    } else if (cfg.has_threshold && classes == 1) {
      /* a detector: one score against a threshold */
      for (int64_t i = 0; i < r.n_rows; i++) {
        const char *label = cfg.labels && cfg.labels->n ? cfg.labels->items[0] : p->output;
        int hit = r.rows[i].n_items > 0;
        tb_printf(text, "%s: %s (score %.3f, threshold %.2f)\n", label, hit ? "detected" : "not detected",
                            r.rows[i].score, cfg.threshold);
        cJSON_AddBoolToObject(oj, "detected", hit);
      }
    } else {
      char *t_text = NULL;
      if (!(rc = gpux__post_result_text(&r, &t_text))) tb_printf(text, "%s", t_text);
      free(t_text);
    }
  }
  gpux__post_result_free(&r);
  return rc;
}

/* What a person reads when there is no postprocessing: each output's shape and first values
 * (all of them when full). */
static void summary_text(const char *name, const gpux_tensor *t, int full, text_buf *text) {
  char shape[256];
  gpux_tensor_describe(t, shape, sizeof shape);
  tb_printf(text, "%s %s:", name, shape);
  int64_t n = gpux_tensor_count(t), show = full ? n : GPUX__MIN(n, 8);
  for (int64_t i = 0; i < show && t->kind == GPUX_KIND_TENSOR; i++) {
    if (t->dtype == GPUX_DT_STRING) tb_printf(text, " \"%s\"", ((char **)t->data)[i]);
    else tb_printf(text, " %.6g", gpux__load_f64(t->dtype, t->data, i));
  }
  tb_printf(text, "%s\n", n > show ? " ..." : "");
}

int gpux__app_answer(gpux_app *a, const gpux__named_tensors *out, const gpux__app_times *times,
                     char **result_json, char **result_text) {
  int rc = 0;
  gpux__spec *s = a->spec;
  cJSON *root = cJSON_CreateObject(), *outs = cJSON_AddArrayToObject(root, "outputs");
  text_buf text = {0};
  int any_post = 0;
  for (int i = 0; i < out->n && !rc; i++) {
    cJSON *oj = tensor_json(out->names[i], &out->t[i], a->full_outputs);
    cJSON_AddItemToArray(outs, oj);
    for (int pi = 0; pi < s->n_post && !rc; pi++)
      if (!strcmp(s->post[pi].output, out->names[i])) { rc = post_one(a, pi, out, &out->t[i], root, oj, &text); any_post = 1; }
  }
  if (!rc && a->handler_result) {
    /* the handler's postprocess: its JSON is the answer's "result" and, as text, what is read */
    cJSON *r = cJSON_Parse(a->handler_result);
    text.len = 0;
    if (cJSON_IsString(r)) tb_printf(&text, "%s\n", r->valuestring);
    else tb_printf(&text, "%s\n", a->handler_result);
    if (r) cJSON_AddItemToObject(root, "result", r);
  } else if (!rc && !any_post) {
    for (int i = 0; i < out->n; i++) summary_text(out->names[i], &out->t[i], a->full_outputs >= 2, &text);
  }
  if (!rc && a->mode->answer) a->mode->answer(a, root);
  if (!rc && a->mode->text && !a->handler_result) {
    text.len = 0;
    tb_printf(&text, "%s\n", a->mode->text(a));
  }
  /* where the model(s) ran: "webgpu" or "cpu" (a pipeline's steps may differ) */
  if (a->n_models > 0 && a->sessions && a->sessions[0]) {
    const char *backend = gpux_session_backend_name(a->sessions[0]);
    for (int i = 1; i < a->n_models; i++)
      if (a->sessions[i] && strcmp(gpux_session_backend_name(a->sessions[i]), backend)) backend = "mixed";
    cJSON_AddStringToObject(root, "backend", backend);
    const char *why = gpux_session_backend_reason(a->sessions[0]);
    if (why[0]) cJSON_AddStringToObject(root, "backend_reason", why);
    /* the float precision, when fp16 was asked for: fp16, or fp32 and why */
    const char *prec_why, *prec = gpux_session_precision(a->sessions[0], &prec_why);
    if (strcmp(prec, "fp32") || prec_why[0]) cJSON_AddStringToObject(root, "precision", prec);
    if (prec_why[0]) cJSON_AddStringToObject(root, "precision_reason", prec_why);
    gpux__app_tuning_json(a, root);   /* an image with GEMM tuning: used, or why not */
  }
  double t3 = gpux__now_ms();
  cJSON *tm = cJSON_AddObjectToObject(root, "timings");
  cJSON_AddItemToObject(tm, "preprocess_ms", gpux__app_json_num(times->prepared - times->start, 1));
  cJSON_AddItemToObject(tm, "inference_ms", gpux__app_json_num(times->infer_ms, 1));
  cJSON_AddItemToObject(tm, "postprocess_ms", gpux__app_json_num(t3 - times->inferred, 1));
  cJSON_AddItemToObject(tm, "total_ms", gpux__app_json_num(t3 - times->start, 1));
  if (!rc && result_json && !(*result_json = cJSON_PrintUnformatted(root))) rc = GPUX_E_NOMEM;
  cJSON_Delete(root);
  if (!rc && result_text) {
    tb_printf(&text, "%s", "");
    if (text.failed) rc = GPUX_E_NOMEM;
    else { *result_text = text.data; text.data = NULL; }
  }
  free(text.data);
  if (rc && result_json) { free(*result_json); *result_json = NULL; }
  return rc;
}
