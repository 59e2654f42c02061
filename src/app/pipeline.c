/* pipeline.c — the table of pipeline modes (mode.h) and the app's calls into them: running the
 * model(s) on prepared inputs (gpux__app_infer), what the app takes and gives
 * (gpux__app_io_count/info); one model run on named values (gpux__app_run_model), and the
 * named-tensor lists passed between inputs, models and answers. */
#include "app/mode.h"
#include <stdio.h>

/* Every mode of GPUX__PIPELINE_MODES, by its GPUX__PIPE_ number. */
#define X(e, name) extern const gpux__mode gpux__mode_##name;
GPUX__PIPELINE_MODES(X)
#undef X

static const gpux__mode *const modes[GPUX__PIPE_COUNT] = {
#define X(e, name) [GPUX__PIPE_##e] = &gpux__mode_##name,
  GPUX__PIPELINE_MODES(X)
#undef X
};

const gpux__mode *gpux__mode_of(int pipeline_mode) {
  return pipeline_mode >= 0 && pipeline_mode < GPUX__PIPE_COUNT ? modes[pipeline_mode] : NULL;
}

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

int gpux__app_run_model(gpux_app *a, int model, const gpux__named_tensors *in, int by_position,
                        gpux__named_tensors *out, double *ms) {
  gpux_model *m = a->models[model];
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
    rc = gpux_session_run(a->sessions[model], ins, given, outs, n_out);
    *ms += gpux__now_ms() - t0;
    /* a plan over the device memory budget: name the key that set it */
    static const char limit[] = ", the gpu_memory limit allows ";
    const char *msg = gpux_last_error(), *cut = strstr(msg, limit);
    if (rc == GPUX_E_DEVICE && a->spec->runtime.gpu_memory && cut) {
      char line[1024];
      snprintf(line, sizeof line, "%s: %.*s, runtime.gpu.memory allows %s", a->spec->file, (int)(cut - msg), msg,
               cut + strlen(limit));
      gpux__error(rc, "%s", line);
    }
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
  memset(out, 0, sizeof *out);
  const atomic_int *outer = gpux__cancel_enter(&a->cancel);   /* gpux_app_cancel stops it between nodes */
  int rc = a->mode->run(a, in, out, &ms);
  gpux__cancel_leave(outer);
  if (rc) {
    gpux__named_tensors_free(out);
    return rc;
  }
  if (infer_ms) *infer_ms = ms;
  return 0;
}

int gpux__app_io_count(const gpux_app *a, int output) {
  if (a->mode->io_count) return a->mode->io_count(a, output);
  gpux_model *m = a->models[output ? a->n_models - 1 : 0];
  return output ? gpux_model_output_count(m) : gpux_model_input_count(m);
}

int gpux__app_io_info(const gpux_app *a, int output, int i, gpux_value_info *vi) {
  if (a->mode->io_info) return a->mode->io_info(a, output, i, vi);
  gpux_model *m = a->models[output ? a->n_models - 1 : 0];
  return output ? gpux_model_output_info(m, i, vi) : gpux_model_input_info(m, i, vi);
}
