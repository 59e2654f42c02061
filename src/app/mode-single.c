/* mode-single.c — the pipeline mode of a spec with one model (`model: ./model.onnx`): the
 * prepared inputs are the model's inputs by name, its outputs are the app's. */
#include "app/mode.h"

static int single_run(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out, double *ms) {
  return gpux__app_run_model(a, 0, in, 0, out, ms);
}

const gpux__mode gpux__mode_single = {
  /* .name     = */ "single",
  /* .direct   = */ 1,
  /* .check    = */ gpux__spec_check_models,
  /* .validate = */ NULL,
  /* .session_options = */ NULL,
  /* .io_count = */ NULL,
  /* .io_info  = */ NULL,
  /* .run      = */ single_run,
  /* .answer   = */ NULL,
  /* .release  = */ NULL,
};
