/* mode-sequence.c — the pipeline mode `sequence` (`pipeline: [a.onnx, b.onnx]`): the steps run
 * in order; the first takes the prepared inputs by name, each later step takes the outputs of
 * the step before by name, else by position (gpux__spec_check_models checks that each input is
 * fed); the last step's outputs are the app's. Errors name the step. */
#include "app/mode.h"

static int sequence_run(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *ms) {
  gpux__named_tensors cur = {0};
  const gpux__named_tensors *src = in;
  for (int step = 0; step < a->n_models; step++) {
    gpux__named_tensors next;
    int rc = gpux__app_run_model(a, step, src, step > 0, &next, ms);
    gpux__named_tensors_free(&cur);
    if (rc) {
      if (a->n_models > 1) gpux__error_prefix(rc, "step '%s': ", a->spec->pipeline.steps[step].name);
      return rc;
    }
    cur = next;
    src = &cur;
  }
  *out = cur;
  return 0;
}

const gpux__mode gpux__mode_sequence = {
  /* .name     = */ "sequence",
  /* .direct   = */ 1,
  /* .check    = */ gpux__spec_check_models,
  /* .validate = */ NULL,
  /* .session_options = */ NULL,
  /* .io_count = */ NULL,
  /* .io_info  = */ NULL,
  /* .run      = */ sequence_run,
  /* .answer   = */ NULL,
  /* .release  = */ NULL,
};
