/* pipeline.c — running an app's model(s) on prepared inputs (gpux__app_infer): one model, the
 * steps of a sequence in order (outputs feed the next step by name, else by position), or the
 * openWakeWord streaming recipe (wakeword.c); and the named-tensor lists passed between them. */
#include "app/app.h"

void gpux__named_tensors_free(gpux__named_tensors *nt) {
  for (int i = 0; i < nt->n; i++) {
    gpux_tensor_free(&nt->t[i]);
    free(nt->names[i]);
  }
  free(nt->t);
  free(nt->names);
  memset(nt, 0, sizeof *nt);
}

int gpux__named_tensors_add(gpux__named_tensors *nt, const char *name, gpux_tensor *t) {
  gpux_tensor *nt_t = gpux__realloc(nt->t, sizeof *nt_t * (size_t)(nt->n + 1));
  if (!nt_t) return GPUX_E_NOMEM;
  nt->t = nt_t;
  char **names = gpux__realloc(nt->names, sizeof *names * (size_t)(nt->n + 1));
  if (!names) return GPUX_E_NOMEM;
  nt->names = names;
  if (!(nt->names[nt->n] = gpux__strdup(name))) return GPUX_E_NOMEM;
  nt->t[nt->n++] = *t;
  memset(t, 0, sizeof *t);
  return 0;
}

int gpux__named_tensors_find(const gpux__named_tensors *nt, const char *name) {
  for (int i = 0; i < nt->n; i++)
    if (!strcmp(nt->names[i], name)) return i;
  return -1;
}


static int run_model(gpux_app *a, int step, const gpux__named_tensors *in, int by_position, gpux__named_tensors *out,
                     double *ms) {
  gpux_model *m = a->models[step];
  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m), given = 0;
  gpux_tensor *ins = gpux__calloc((size_t)n_in + 1, sizeof *ins);
  gpux_tensor *outs = gpux__calloc((size_t)n_out + 1, sizeof *outs);
  int rc = ins && outs ? 0 : GPUX_E_NOMEM;
  for (int i = 0; i < n_in && !rc; i++) {
    gpux_value_info vi;
    gpux_model_input_info(m, i, &vi);
    int j = gpux__named_tensors_find(in, vi.name);
    if (j < 0 && by_position && i < in->n) j = i;
    if (j < 0) {
      if (vi.optional) { ins[i].kind = GPUX_KIND_NONE; continue; }
      rc = gpux__error(GPUX_E_INVALID, "model input '%s' has no value", vi.name);
      break;
    }
    ins[i] = in->t[j];                   /* borrowed */
    ins[i].owns_data = 0;
    given = i + 1;
  }
  if (!rc) {
    double t0 = gpux__now_ms();
    rc = gpux_session_run(a->sessions[step], ins, given, outs, n_out);
    *ms += gpux__now_ms() - t0;
  }
  memset(out, 0, sizeof *out);
  for (int i = 0; i < n_out && !rc; i++) {
    gpux_value_info vi;
    gpux_model_output_info(m, i, &vi);
    rc = gpux__named_tensors_add(out, vi.name, &outs[i]);
  }
  for (int i = 0; outs && i < n_out; i++) gpux_tensor_free(&outs[i]);
  free(ins);
  free(outs);
  if (rc) gpux__named_tensors_free(out);
  return rc;
}

int gpux__app_infer(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *infer_ms) {
  double ms = 0;
  int rc;
  memset(out, 0, sizeof *out);
  if (a->spec->pipeline.mode == GPUX__PIPE_OPENWAKEWORD) {
    free(a->ww_scores);
    a->ww_scores = NULL;
    a->ww_n_scores = 0;
    if (in->n != 1) return gpux__error(GPUX_E_INVALID, "openwakeword takes one audio input");
    rc = gpux__wakeword_run(a->sessions, a->models, &a->spec->pipeline, &in->t[0], &a->ww_scores, &a->ww_n_scores, &ms);
    if (rc) return rc;
    float best = 0;
    for (int64_t i = 0; i < a->ww_n_scores; i++) best = i == 0 || a->ww_scores[i] > best ? a->ww_scores[i] : best;
    gpux_tensor t = {0};
    int64_t dims[2] = {1, 1};
    if ((rc = gpux_tensor_init(&t, GPUX_DT_FLOAT, 2, dims))) return rc;
    ((float *)t.data)[0] = best;
    rc = gpux__named_tensors_add(out, a->spec->outputs[0].name, &t);
    gpux_tensor_free(&t);
    if (infer_ms) *infer_ms = ms;
    return rc;
  }
  gpux__named_tensors cur = {0};
  const gpux__named_tensors *src = in;
  for (int step = 0; step < a->n_models; step++) {
    gpux__named_tensors next;
    rc = run_model(a, step, src, step > 0, &next, &ms);
    gpux__named_tensors_free(&cur);
    if (rc) {
      if (a->n_models > 1) gpux__error_prefix(rc, "step '%s': ", a->spec->pipeline.steps[step].name);
      return rc;
    }
    cur = next;
    src = &cur;
  }
  *out = cur;
  if (infer_ms) *infer_ms = ms;
  return 0;
}

