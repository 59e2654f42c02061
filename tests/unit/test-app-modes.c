/* test-app-modes.c — the pipeline-mode table (src/app/mode.h): every mode listed in
 * GPUX__PIPELINE_MODES has an implementation with that name and the slots every mode must fill,
 * and the spec reads and writes each mode under the same name, so a mode added by one file and
 * one line is complete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "app/mode.h"

static void test_table(void **state) {
  (void)state;
  int n = 0;
#define X(e, id)                                                    \
  do {                                                              \
    const gpux__mode *m = gpux__mode_of(GPUX__PIPE_##e);            \
    assert_non_null(m);                                             \
    assert_string_equal(m->name, #id);                              \
    assert_non_null(m->check);                                      \
    assert_non_null(m->run);                                        \
    /* inputs and outputs come as a pair: both slots or neither */  \
    assert_int_equal(m->io_count == NULL, m->io_info == NULL);      \
    n++;                                                            \
  } while (0);
  GPUX__PIPELINE_MODES(X)
#undef X
  assert_int_equal(n, GPUX__PIPE_COUNT);
  assert_null(gpux__mode_of(-1));
  assert_null(gpux__mode_of(GPUX__PIPE_COUNT));
  /* one model, and a sequence, run their models on the app's inputs as given */
  assert_true(gpux__mode_of(GPUX__PIPE_NONE)->direct);
  assert_true(gpux__mode_of(GPUX__PIPE_SEQUENCE)->direct);
  assert_false(gpux__mode_of(GPUX__PIPE_OPENWAKEWORD)->direct);
  assert_false(gpux__mode_of(GPUX__PIPE_SEQ2SEQ)->direct);
}

/* A GPUXfile's `pipeline: {mode: NAME}` gives that mode, and the stored config names it the same
 * way (single is `model:`, not a pipeline mode one writes). */
static void test_spec_names(void **state) {
  (void)state;
  for (int mode = 0; mode < GPUX__PIPE_COUNT; mode++) {
    if (mode == GPUX__PIPE_NONE) continue;
    const char *name = gpux__mode_of(mode)->name;
    char yaml[256];
    /* what a mode needs besides its steps: seq2seq writes text with a tokenizer */
    const char *needs = mode == GPUX__PIPE_SEQ2SEQ ? "preprocessing:\n  tokenizer: {vocab: t.json}\n" : "";
    snprintf(yaml, sizeof yaml, "pipeline:\n  mode: %s\n  steps: [a.onnx, b.onnx, c.onnx]\n%s", name, needs);
    gpux__spec *s = NULL;
    int rc = gpux__spec_parse_yaml(yaml, strlen(yaml), "GPUXfile", ".", &s);
    if (rc) fprintf(stderr, "%s: %s\n", name, gpux_last_error());
    assert_int_equal(rc, 0);
    assert_int_equal(s->pipeline.mode, mode);
    cJSON *j = gpux__spec_to_json(s);
    const cJSON *p = cJSON_GetObjectItem(j, "pipeline");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(p, "mode")), name);
    cJSON_Delete(j);
    gpux__spec_free(s);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_table),
    cmocka_unit_test(test_spec_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
