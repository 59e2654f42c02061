/* mode.h — the pipeline-mode interface: how an app runs its model(s) on prepared inputs, and
 * what it tells the rest of gpux about them. One mode per file (mode-single.c, mode-sequence.c,
 * mode-openwakeword.c, mode-seq2seq.c), each defining `const gpux__mode gpux__mode_<name>`; the
 * modes are listed once, in GPUX__PIPELINE_MODES (spec/spec.h), from which the spec's mode names
 * and the table in pipeline.c are made. To add a mode: write src/app/mode-<name>.c and add its
 * line there; its settings, if it has any, are keys of `pipeline:` parsed by spec.c.
 *
 * The app calls a mode at these points:
 *   gpux__app_create   check (a GPUXfile, against the loaded models) or validate (a stored
 *                      config, whose spec was checked at build), then session_options
 *   gpux__app_infer    run
 *   gpux__app_answer   answer, after the outputs
 *   gpux_app_close     release
 * and inputs.c (the dtype an input is converted to) and serve (model metadata, request checks)
 * read the app's inputs and outputs through gpux__app_io_count / gpux__app_io_info, which ask
 * io_count / io_info; serve batches only direct modes. Slots marked (optional) may be NULL; the
 * default is said there. */
#ifndef GPUX_APP_MODE_H
#define GPUX_APP_MODE_H

#include "app/app.h"

typedef struct gpux__mode {
  const char *name;             /* its name in GPUX__PIPELINE_MODES, as in `pipeline: {mode: NAME}` */
  /* 1 when the app's inputs and outputs are its models' own (the first model's inputs, the last
   * one's outputs), so serve may stack requests of a one-model app along a batch dimension */
  int direct;

  /* Checks a GPUXfile's spec against its loaded models (models[i] for the spec's model or
   * pipeline.steps[i]) and fills in what the spec leaves undeclared; errors name the file, line
   * and key. gpux__spec_check_models does this for models whose inputs and outputs are the app's;
   * a mode with other inputs or outputs declares its own and calls gpux__spec_check_post. */
  int (*check)(gpux__spec *s, gpux_model *const *models, int n_models);
  /* (optional) Checks a stored config's models when an image is opened. Default: nothing. */
  int (*validate)(const gpux_app *a);
  /* (optional) Sets what the mode asks of the session of models[i] (so holds the spec's runtime
   * settings already), e.g. the last_position of a text generator's logits. Default: nothing. */
  void (*session_options)(const gpux_app *a, int i, gpux_session_options *so);

  /* (optional) How many tensors the app takes (output = 0) or gives (1), and the name, dtype and
   * shape of the i-th (names point into the spec). Default: the first model's inputs, the last
   * model's outputs. */
  int (*io_count)(const gpux_app *a, int output);
  int (*io_info)(const gpux_app *a, int output, int i, gpux_value_info *vi);

  /* Runs the model(s) on `in` (the prepared inputs, by the spec's input names) and fills `out`
   * (zeroed on entry; freed by the caller, also on error) with the app's outputs by name. Adds
   * the time spent in sessions to *ms. May keep what the answer needs in a->mode_state. */
  int (*run)(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *ms);
  /* (optional) Adds the mode's own keys to the JSON answer of the last run. Default: none. */
  void (*answer)(const gpux_app *a, cJSON *root);
  /* (optional) Frees a->mode_state. Default: free(). */
  void (*release)(gpux_app *a);
  /* (optional) What a person reads for the last run, instead of the outputs' summary. */
  const char *(*text)(const gpux_app *a);
} gpux__mode;

/* Text generation with a decoder-only model (mode-generate.c): the mode of a spec with `generate:`
 * and one model, not a pipeline mode (an encoder-decoder is pipeline mode seq2seq). */
extern const gpux__mode gpux__mode_generate;

/* The mode of a spec's pipeline.mode (GPUX__PIPE_*); NULL for a number outside the list. */
const gpux__mode *gpux__mode_of(int pipeline_mode);

/* One model of the app run on named values: each model input takes the value of its name, or,
 * with by_position, the value at its position; optional inputs may be absent. Fills out with
 * all the model's outputs by name; adds the session's time to *ms. For modes' run. */
int gpux__app_run_model(gpux_app *a, int model, const gpux__named_tensors *in, int by_position,
                        gpux__named_tensors *out, double *ms);

#endif
