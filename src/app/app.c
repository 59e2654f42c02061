/* app.c — the app runtime behind `gpux run`: opens an image from the store (its stored config,
 * never the YAML) or a folder with a GPUXfile, loads the models into sessions and the pre/post-
 * processing resources, and runs: inputs (inputs.c) -> model(s) (pipeline.c) -> answer
 * (outputs.c). gpux_app_describe tells what an opened app takes and gives. */
#include "app/handler.h"
#include "app/mode.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

static int load_labels(gpux_app *a, char **inline_labels, int64_t n, const char *file, gpux__labels *out) {
  if (file) {
    char p[4096];
    gpux__spec_path(a->spec, file, p, sizeof p);
    return gpux__labels_load(p, out);
  }
  if (inline_labels) return gpux__labels_from_list((const char *const *)inline_labels, n, out);
  return 0;
}

/* The one place the app makes sessions: one per model, with the spec's runtime settings on
 * a->backend. Errors name the model file. */
static int create_sessions(gpux_app *a) {
  const gpux__spec *spec = a->spec;
  gpux_session_options so = {.backend = a->backend, .threads = spec->runtime.threads,
                             .gpu_memory = (uint64_t)spec->runtime.gpu_memory,
                             .precision = spec->runtime.precision == GPUX__PREC_FP16 ? GPUX_PRECISION_FP16 : GPUX_PRECISION_FP32};
  for (int i = 0; i < a->n_models; i++) {
    gpux_session_options mo = so;
    if (a->mode->session_options) a->mode->session_options(a, i, &mo);
    int rc = gpux_session_create(a->models[i], &mo, &a->sessions[i]);
    if (rc) {
      const gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
      const char *b = strrchr(m->path, '/');
      return gpux__error_prefix(rc, "%s: ", b ? b + 1 : m->path);
    }
  }
  return 0;
}

int gpux__app_create(gpux__spec *spec, int backend, int check, gpux_app **out) {
  *out = NULL;
  double t0 = gpux__now_ms();
  gpux_app *a = gpux__calloc(1, sizeof *a);
  if (!a) { gpux__spec_free(spec); return GPUX_E_NOMEM; }
  a->spec = spec;
  a->mode = spec->generate.present && spec->pipeline.mode == GPUX__PIPE_NONE ? &gpux__mode_generate : gpux__mode_of(spec->pipeline.mode);
  a->n_models = spec->has_model ? 1 : spec->pipeline.n_steps;
  a->models = gpux__calloc((size_t)a->n_models, sizeof *a->models);
  a->sessions = gpux__calloc((size_t)a->n_models, sizeof *a->sessions);
  a->post_labels = gpux__calloc((size_t)spec->n_post + 1, sizeof *a->post_labels);
  int rc = a->models && a->sessions && a->post_labels ? 0 : GPUX_E_NOMEM;
  if (!rc && !a->mode) rc = gpux__error(GPUX_E_INTERNAL, "%s: pipeline mode %d has no implementation", spec->file, spec->pipeline.mode);
  a->backend = backend != GPUX_BACKEND_AUTO ? backend : spec->runtime.backend;
  if (!rc) gpux_device_warm(a->backend); /* the device is made while the models load */
  for (int i = 0; i < a->n_models && !rc; i++) {
    const gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
    char path[4096], key[64];
    if (spec->has_model) snprintf(key, sizeof key, "model");
    else snprintf(key, sizeof key, "pipeline.steps[%d].model", i);
    if (!m->path) {
      rc = gpux__error(GPUX_E_INVALID, "%s:%d: key '%s': '%s' has not been fetched", spec->file, m->line, key, m->source);
      break;
    }
    gpux__spec_path(spec, m->path, path, sizeof path);
    if ((rc = gpux_model_load(path, &a->models[i]))) {
      if (m->line) gpux__error_prefix(rc, "%s:%d: key '%s': ", spec->file, m->line, key);
      else gpux__error_prefix(rc, "%s: key '%s': ", spec->file, key);
    }
  }
  for (int i = 0; i < a->n_models && !rc && check; i++)
    if ((rc = gpux_model_check_ops(a->models[i]))) {
      const gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
      const char *b = strrchr(m->path, '/');
      gpux__error_prefix(rc, "%s: ", b ? b + 1 : m->path);
    }
  if (!rc && check) rc = a->mode->check(spec, a->models, a->n_models);
  if (!rc && !check && a->mode->validate) rc = a->mode->validate(a);
  if (!rc) rc = create_sessions(a);
  if (!rc && spec->tokenizer.present) {
    char p[4096];
    gpux__spec_path(spec, spec->tokenizer.vocab, p, sizeof p);
    size_t pl = strlen(p);
    int is_tok_json = spec->tokenizer.kind == GPUX__TOK_BPE ||
                      (pl >= 14 && !strcmp(p + pl - 14, "tokenizer.json"));
    if (is_tok_json) rc = gpux__tokenizer_load(p, &a->tokenizer);
    else rc = gpux__wordpiece_load(p, &spec->tokenizer.wordpiece, &a->tokenizer);
    if (rc && spec->tokenizer.line) gpux__error_prefix(rc, "%s:%d: key 'preprocessing.tokenizer': ", spec->file, spec->tokenizer.line);
  }
  if (!rc && spec->n_outputs) {
    if (!(a->io_labels = gpux__calloc((size_t)spec->n_outputs, sizeof *a->io_labels))) rc = GPUX_E_NOMEM;
    for (int i = 0; i < spec->n_outputs && !rc; i++)
      rc = load_labels(a, spec->outputs[i].labels, spec->outputs[i].n_labels, spec->outputs[i].labels_file, &a->io_labels[i]);
  }
  for (int i = 0; i < spec->n_post && !rc; i++) {
    gpux__spec_post *p = &spec->post[i];
    if (p->cfg.ctc) {
      char path[4096];
      gpux__spec_path(spec, p->ctc_charset, path, sizeof path);
      rc = gpux__ctc_charset_load(path, p->ctc_add_space, &a->post_labels[i]);
    } else {
      rc = load_labels(a, p->labels, p->n_labels, p->labels_file, &a->post_labels[i]);
    }
    if (rc && p->line) gpux__error_prefix(rc, "%s:%d: key 'postprocessing': ", spec->file, p->line);
  }
  if (!rc && spec->handler.present) rc = gpux__handler_open(spec, &a->handler);
  if (rc) {
    gpux_app_close(a);
    return rc;
  }
  a->load_ms = gpux__now_ms() - t0;
  *out = a;
  return 0;
}

void gpux_app_cancel(gpux_app *a, int cancel) {
  if (a) atomic_store(&a->cancel, cancel ? 1 : 0);
}

void gpux_app_close(gpux_app *a) {
  if (!a) return;
  gpux__handler_close(a->handler);
  for (int i = 0; i < a->n_models; i++) {
    if (a->sessions) gpux_session_free(a->sessions[i]);
    if (a->models) gpux_model_free(a->models[i]);
  }
  free(a->sessions);
  free(a->models);
  gpux__tokenizer_free(a->tokenizer);
  if (a->spec) {
    for (int i = 0; a->post_labels && i < a->spec->n_post; i++) gpux__labels_free(&a->post_labels[i]);
    for (int i = 0; a->io_labels && i < a->spec->n_outputs; i++) gpux__labels_free(&a->io_labels[i]);
  }
  free(a->post_labels);
  free(a->io_labels);
  free(a->describe);
  free(a->build_json);
  if (a->mode && a->mode->release) a->mode->release(a);
  else free(a->mode_state);
  gpux__spec_free(a->spec);
  free(a);
}

/* Clearly a path, never an image name: ".", "..", "./x", "../x", "/x", "x/GPUXfile". */
static int explicit_path(const char *s) {
  size_t n = strlen(s);
  return !strcmp(s, ".") || !strcmp(s, "..") || !strncmp(s, "./", 2) || !strncmp(s, "../", 3) || s[0] == '/' ||
         (n >= 8 && !strcmp(s + n - 8, "GPUXfile"));
}

/* A folder (or GPUXfile) run directly, without building: parsed and checked like a build. */
static int open_folder(gpux_store *st, const char *path, int backend, int precision, gpux_app **out) {
  gpux__spec *spec;
  int rc = gpux__spec_parse_file(path, NULL, &spec);
  if (rc) return rc;
  for (int i = 0; i < (spec->has_model ? 1 : spec->pipeline.n_steps); i++) {
    gpux__spec_model *m = spec->has_model ? &spec->model : &spec->pipeline.steps[i].model;
    if (m->kind == GPUX__SRC_FILE) continue;
    char p[4096];
    if (!st) rc = gpux__error(GPUX_E_INVALID, "fetching '%s' needs the store", m->source);
    else rc = gpux__fetch_source(st, m, p, sizeof p);
    if (rc) {
      gpux__spec_free(spec);
      return rc;
    }
    m->path = gpux__spec_strdup(spec, p);
  }
  if (precision) spec->runtime.precision = precision - 1;
  gpux_app *a;
  if ((rc = gpux__app_create(spec, backend, 1, &a))) return rc;
  snprintf(a->ref, sizeof a->ref, "%s", path);
  *out = a;
  return 0;
}

/* An image or a folder (gpux_app_open's reference rules). */
static int open_any(gpux_store *st, const char *ref_or_path, const gpux_app_options *o, gpux_app **out) {
  if (!ref_or_path || !*ref_or_path) return gpux__error(GPUX_E_INVALID, "no image or folder given");
  int backend = o ? o->backend : GPUX_BACKEND_AUTO, precision = o ? o->precision : 0;
  struct stat sb;
  int rc;
  int exists = stat(ref_or_path, &sb) == 0;
  /* "./ocr", "/abs/ocr", "." are folders, so is "examples/ocr" when it exists; a bare "ocr" (or
   * "user/ocr") is an image, or the folder of that name when no image has it */
  if (explicit_path(ref_or_path)) {
    if (!exists) return gpux__error(GPUX_E_NOTFOUND, "%s: %s", ref_or_path, strerror(errno));
    return open_folder(st, ref_or_path, backend, precision, out);
  }
  if (exists && (strchr(ref_or_path, '/') || S_ISREG(sb.st_mode))) /* a file is a GPUXfile or a model */
    return open_folder(st, ref_or_path, backend, precision, out);
  if (!st) return gpux__error(GPUX_E_INVALID, "'%s': no store to look the image up in", ref_or_path);
  gpux__blob_ref probe;
  if (exists && S_ISDIR(sb.st_mode) && gpux__store_resolve(st, ref_or_path, &probe, NULL, 0) == GPUX_E_NOTFOUND)
    return open_folder(st, ref_or_path, backend, precision, out);
  gpux__oci_image img;
  if ((rc = gpux__store_load_image(st, ref_or_path, &img))) return rc;
  char dir[4096];
  cJSON *cfg = cJSON_Parse(img.config_json);
  const cJSON *spec_j = cJSON_GetObjectItem(cfg, "spec");
  if (!spec_j) {
    cJSON_Delete(cfg);
    gpux__oci_image_free(&img);
    return gpux__error(GPUX_E_PARSE, "image '%s': its config has no spec (not a gpux image?)", ref_or_path);
  }
  if ((rc = gpux__oci_image_dir(st, &img, dir, sizeof dir))) {
    cJSON_Delete(cfg);
    gpux__oci_image_free(&img);
    return rc;
  }
  char what[600];
  snprintf(what, sizeof what, "image %s config", img.ref);
  gpux__spec *spec;
  rc = gpux__spec_from_json(spec_j, what, dir, &spec);
  if (!rc && spec->handler.present && !(o && o->allow_handler) && !gpux__trust_has(st, img.manifest.digest)) {
    /* code from elsewhere runs only with consent (trust.c); local builds are in the list */
    char tp[4096];
    gpux__trust_path(st, tp, sizeof tp);
    rc = gpux__error(GPUX_E_INVALID, "image %s runs handler code (%s) and was not built here; to run it, pass --allow-handler or add %s to %s",
                     img.ref, spec->handler.file, img.manifest.digest, tp);
    gpux__spec_free(spec);
  }
  if (!rc) { /* a pulled config is not trusted: its files must be its own layers */
    const char **titles = gpux__calloc((size_t)img.n_layers + 1, sizeof *titles);
    for (int i = 0; titles && i < img.n_layers; i++) titles[i] = img.layers[i].title;
    rc = titles ? gpux__spec_check_image(spec, titles, img.n_layers) : GPUX_E_NOMEM;
    free(titles);
    if (rc) gpux__spec_free(spec);
  }
  char *build = NULL;
  const cJSON *b = cJSON_GetObjectItem(cfg, "build");
  if (b) build = cJSON_PrintUnformatted(b);
  cJSON_Delete(cfg);
  if (rc) {
    free(build);
    gpux__oci_image_free(&img);
    return rc;
  }
  if (precision) spec->runtime.precision = precision - 1;
  gpux_app *a;
  if ((rc = gpux__app_create(spec, backend, 0, &a))) {
    free(build);
    gpux__oci_image_free(&img);
    return rc;
  }
  snprintf(a->ref, sizeof a->ref, "%s", img.ref);
  a->build_json = build;
  for (int i = 0; i < img.n_layers; i++) { /* GEMM tuning (tuning.c): used when made on this adapter */
    if (strcmp(img.layers[i].media_type, GPUX_MEDIA_TUNING)) continue;
    char *tj = NULL;
    size_t tl = 0;
    if (gpux__store_read_blob(st, img.layers[i].blob.digest, &tj, &tl)) {
      gpux__log(GPUX_LOG_WARNING, "image %s: its tuning data cannot be read (%s); running with the default GEMM configurations",
                img.ref, gpux_last_error());
      a->tuning = GPUX__TUNING_DEFAULTS;
      snprintf(a->tuning_why, sizeof a->tuning_why, "the image's tuning data cannot be read");
    } else {
      gpux__app_apply_tuning(a, tj, tl);
    }
    free(tj);
    break;
  }
  gpux__oci_image_free(&img);
  *out = a;
  return 0;
}


int gpux_app_open(gpux_store *st, const char *ref_or_path, const gpux_app_options *o, gpux_app **out) {
  *out = NULL;
  int rc = open_any(st, ref_or_path, o, out);
  if (!rc && o) (*out)->full_outputs = o->full_outputs;
  return rc;
}


int gpux_app_run(gpux_app *a, const gpux_app_input *inputs, int n_inputs, char **result_json, char **result_text) {
  if (result_json) *result_json = NULL;
  if (result_text) *result_text = NULL;
  if (!a) return gpux__error(GPUX_E_INVALID, "no app");
  gpux__app_times tm = {.start = gpux__now_ms()};
  gpux__named_tensors in, out;
  gpux__handler *h = a->handler_off ? NULL : a->handler;
  gpux_handler_value *req = NULL;
  char **req_names = NULL;
  int rc = h ? gpux__handler_request(inputs, n_inputs, &req, &req_names) : 0;
  if (rc) return rc;
  const atomic_int *outer = gpux__cancel_enter(&a->cancel); /* handler calls stop when cancelled */
  /* a handler's preprocess replaces the declared preprocessing, its postprocess adds "result" */
  if (gpux__handler_has(h, 0)) rc = gpux__handler_preprocess(h, a, req, n_inputs, &in);
  else rc = gpux__app_prepare(a, inputs, n_inputs, &in);
  if (!rc) {
    tm.prepared = gpux__now_ms();
    rc = gpux__app_infer(a, &in, &out, &tm.infer_ms);
    if (!rc) out.image_map = in.image_map;
    gpux__named_tensors_free(&in);
  }
  if (!rc) {
    tm.inferred = gpux__now_ms();
    if (gpux__handler_has(h, 1)) rc = gpux__handler_postprocess(h, &out, req, n_inputs, &a->handler_result);
    if (!rc) rc = gpux__app_answer(a, &out, &tm, result_json, result_text);
    free(a->handler_result);
    a->handler_result = NULL;
    gpux__named_tensors_free(&out);
  }
  gpux__cancel_leave(outer);
  gpux__handler_request_free(req, req_names, n_inputs);
  return rc;
}

void gpux_generate_options_init(gpux_generate_options *o) {
  memset(o, 0, sizeof *o);
  o->temperature = -1;
  o->top_k = -1;
  o->seed = -1;
}

int gpux_app_generate(gpux_app *a, const gpux_app_input *inputs, int n_inputs, const gpux_generate_options *o,
                      char **result_json, char **result_text) {
  if (!a) return gpux__error(GPUX_E_INVALID, "no app");
  a->generate = o;
  int rc = gpux_app_run(a, inputs, n_inputs, result_json, result_text);
  a->generate = NULL;
  return rc;
}

int gpux_app_generates(const gpux_app *a) { return a && a->spec->generate.present; }

const char *gpux_app_describe(gpux_app *a) {
  if (!a) return NULL;
  if (a->describe) return a->describe;
  cJSON *spec = gpux__spec_to_json(a->spec);
  if (!spec) return NULL;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "reference", a->ref);
  if (a->spec->name) cJSON_AddStringToObject(o, "name", a->spec->name);
  if (a->spec->version) cJSON_AddStringToObject(o, "version", a->spec->version);
  if (a->spec->description) cJSON_AddStringToObject(o, "description", a->spec->description);
  cJSON_AddStringToObject(o, "backend", gpux_session_backend_name(a->sessions[0]));
  /* how it generates text: a decoder continues a prompt (a chat), an encoder-decoder answers
   * each input afresh */
  if (a->spec->generate.present)
    cJSON_AddStringToObject(o, "generate", a->spec->pipeline.mode == GPUX__PIPE_SEQ2SEQ ? "encoder-decoder" : "decoder");
  const char *prec_why, *prec = gpux_session_precision(a->sessions[0], &prec_why);
  cJSON_AddStringToObject(o, "precision", prec);
  if (prec_why[0]) cJSON_AddStringToObject(o, "precision_reason", prec_why);
  cJSON *ins = cJSON_DetachItemFromObject(spec, "inputs"), *i;
  cJSON_ArrayForEach(i, ins) {
    const cJSON *type = cJSON_GetObjectItem(i, "type");
    int t = 0;
    for (int k = 0; k < 4; k++) if (cJSON_IsString(type) && !strcmp(type->valuestring, gpux__io_type_name(k))) t = k;
    cJSON_AddStringToObject(i, "accepts", gpux__app_input_accepts(t));
  }
  cJSON_AddItemToObject(o, "inputs", ins);
  cJSON_AddItemToObject(o, "outputs", cJSON_DetachItemFromObject(spec, "outputs"));
  if (a->build_json) cJSON_AddItemToObject(o, "build", cJSON_Parse(a->build_json));
  gpux__app_tuning_json(a, o);
  cJSON_AddItemToObject(o, "load_ms", gpux__app_json_num(a->load_ms, 1));
  cJSON_Delete(spec);
  a->describe = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return a->describe;
}

