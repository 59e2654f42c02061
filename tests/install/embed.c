/* embed.c — a program that embeds libgpux the way a user would: built outside the source tree
 * against an installed gpux with only `pkg-config --cflags --libs gpux` (tests/install/run.sh).
 *
 *   embed CASE_DIR BACKEND   loads CASE_DIR/model.onnx, runs it on test_data_set_0/input_K.pb
 *                            and compares with output_K.pb; prints "PASS ..." or fails
 *   embed MODEL BACKEND [DIMS]  runs MODEL on a fixed ramp in its float inputs, of shape DIMS
 *                            ("1x3x48x192") where the model leaves dimensions open, and prints
 *                            each output's description and first values, one per line
 * Either way it prints the version, the backend, and the WebGPU library that was loaded. */
#include <gpux/gpux.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int notes;

static void on_log(void *ctx, int level, const char *message) {
  (void)ctx;
  notes++;
  printf("log %s: %s\n", gpux_log_level_name(level), message);
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "embed: %s: %s (%s)\n", what, gpux_last_error(), gpux_err_name(rc));
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: embed CASE_DIR|MODEL cpu|webgpu [DIMS]\n");
    return 2;
  }
  if (strcmp(gpux_version(), GPUX_VERSION)) {
    fprintf(stderr, "embed: library %s, header %s\n", gpux_version(), GPUX_VERSION);
    return 1;
  }
  printf("version %s\n", gpux_version());
  gpux_set_log(on_log, NULL);

  struct stat st;
  int is_case = stat(argv[1], &st) == 0 && S_ISDIR(st.st_mode);
  char path[4096];
  snprintf(path, sizeof path, is_case ? "%s/model.onnx" : "%s", argv[1]);
  gpux_model *m;
  int rc = gpux_model_load(path, &m);
  if (rc) return fail("load", rc);
  gpux_session_options so = {.backend = strcmp(argv[2], "webgpu") ? GPUX_BACKEND_CPU : GPUX_BACKEND_WEBGPU};
  gpux_session *s;
  if ((rc = gpux_session_create(m, &so, &s))) return fail("session", rc);
  printf("backend %s\n", gpux_session_backend_name(s));

  int n_in = gpux_model_input_count(m), n_out = gpux_model_output_count(m);
  gpux_tensor in[8] = {0}, out[8] = {0};
  if (n_in > 8 || n_out > 8) return fail("too many inputs or outputs", GPUX_E_UNSUPPORTED);
  for (int i = 0; i < n_in; i++) {
    if (is_case) {
      snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", argv[1], i);
      if ((rc = gpux_tensor_load_pb(path, GPUX_KIND_TENSOR, &in[i]))) return fail(path, rc);
      continue;
    }
    gpux_value_info vi;
    gpux_model_input_info(m, i, &vi);
    int64_t dims[GPUX_MAX_DIMS];
    const char *given = argc > 3 ? argv[3] : "";
    for (int d = 0; d < vi.ndim; d++) {
      int64_t g = strtoll(given, (char **)&given, 10);
      if (*given == 'x') given++;
      dims[d] = vi.dims[d] > 0 ? vi.dims[d] : g > 0 ? g : 1;
    }
    if (vi.dtype != GPUX_DT_FLOAT) return fail("only float inputs", GPUX_E_UNSUPPORTED_DTYPE);
    if ((rc = gpux_tensor_init(&in[i], vi.dtype, vi.ndim, dims))) return fail("input", rc);
    float *x = in[i].data;
    for (int64_t k = 0; k < gpux_tensor_count(&in[i]); k++) x[k] = (float)(k % 255) / 127.5f - 1.0f;
  }
  if ((rc = gpux_session_run(s, in, n_in, out, n_out))) return fail("run", rc);

  int bad = 0;
  for (int i = 0; i < n_out; i++) {
    gpux_value_info vi;
    char desc[128];
    gpux_model_output_info(m, i, &vi);
    gpux_tensor_describe(&out[i], desc, sizeof desc);
    if (is_case) {
      gpux_tensor want = {0};
      gpux_compare_report r;
      snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", argv[1], i);
      if ((rc = gpux_tensor_load_pb(path, GPUX_KIND_TENSOR, &want))) return fail(path, rc);
      rc = gpux_tensor_compare(&out[i], &want, 1e-3, 1e-7, &r);
      printf("%s %s %s%s%s\n", rc ? "FAIL" : "PASS", vi.name, desc, rc ? ": " : "", rc ? r.message : "");
      bad |= rc != 0;
      gpux_tensor_free(&want);
    } else {
      printf("output %s %s", vi.name, desc);
      for (int64_t k = 0; k < gpux_tensor_count(&out[i]) && k < 16; k++) printf(" %.6g", gpux_tensor_get_f64(&out[i], k));
      printf("\n");
    }
  }

  /* the WebGPU library this process loaded, as gpux_devices reports it */
  gpux_device_info dev[4];
  char note[256] = "";
  int n_dev = gpux_devices(dev, 4, note, sizeof note);
  for (int i = 0; i < n_dev && i < 4; i++)
    if (!strcmp(dev[i].backend, "webgpu")) printf("webgpu-library %s\n", dev[i].library);

  for (int i = 0; i < n_in; i++) gpux_tensor_free(&in[i]);
  for (int i = 0; i < n_out; i++) gpux_tensor_free(&out[i]);
  gpux_session_free(s);
  gpux_model_free(m);
  return bad;
}
