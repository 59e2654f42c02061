/* test-handler.c — the `handler:` key and its worker processes from the library's side (also run
 * under ASan/UBSan): the key's forms and errors and its JSON round trip; a Python handler's
 * postprocess called with tensors and a request of text and bytes; a call that hangs is killed
 * at handler.timeout and one that crashes ends its worker, each with one line, and the next call
 * gets a new worker; several threads share a pool of two; the trust list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "app/handler.h"

static char dir[] = "/tmp/gpux-test-handler-XXXXXX";

static const char handler_py[] =
  "import os\n"
  "def postprocess(outputs, request):\n"
  "    x = outputs['y']\n"
  "    if request.get('input') == 'hang':\n"
  "        while True:\n"
  "            pass\n"
  "    if request.get('input') == 'crash':\n"
  "        os.kill(os.getpid(), 11)\n"
  "    return {'sum': float(x.sum()), 'shape': list(x.shape), 'dtype': str(x.dtype),\n"
  "            'text': request.get('input'), 'bytes': len(request.get('blob', b''))}\n";

static gpux__spec *parse(const char *yaml) {
  gpux__spec *s = NULL;
  int rc = gpux__spec_parse_yaml(yaml, strlen(yaml), "GPUXfile", dir, &s);
  if (rc) fprintf(stderr, "unexpected error: %s\n", gpux_last_error());
  assert_int_equal(rc, 0);
  return s;
}

static void test_keys(void **state) {
  (void)state;
  gpux__spec *s = parse("model: ./m.onnx\nhandler: ./h.py\n");
  assert_true(s->handler.present);
  assert_string_equal(s->handler.file, "./h.py");
  assert_int_equal(s->handler.kind, GPUX__HANDLER_PYTHON);
  assert_true(s->handler.timeout == 10 && s->handler.workers == 2 && s->handler.memory == (int64_t)4 << 30);
  gpux__spec_free(s);
  s = parse("model: ./m.onnx\nhandler:\n  file: lib/h.so.1\n  requirements: reqs.txt\n  timeout: 500ms\n"
            "  workers: 3\n  memory: 1GiB\n  example: {text: hi, image: a.png}\n");
  assert_int_equal(s->handler.kind, GPUX__HANDLER_NATIVE);
  assert_string_equal(s->handler.requirements_file, "reqs.txt");
  assert_true(s->handler.timeout == 0.5 && s->handler.workers == 3 && s->handler.memory == (int64_t)1 << 30);
  assert_int_equal(s->handler.n_example, 2);
  assert_string_equal(s->handler.example_keys[1], "image");
  /* the JSON form keeps everything but the example */
  cJSON *j = gpux__spec_to_json(s);
  gpux__spec *back = NULL;
  assert_int_equal(gpux__spec_from_json(j, "config", dir, &back), 0);
  assert_string_equal(back->handler.file, "lib/h.so.1");
  assert_string_equal(back->handler.requirements_file, "reqs.txt");
  assert_true(back->handler.timeout == 0.5 && back->handler.workers == 3 && back->handler.memory == (int64_t)1 << 30);
  assert_int_equal(back->handler.n_example, 0);
  /* an image's config may only name its own layers */
  const char *titles[] = {"m.onnx", "h.so.1", "reqs.txt"};
  back->handler.file = gpux__spec_strdup(back, "h.so.1");
  back->model.path = back->model.source = gpux__spec_strdup(back, "m.onnx");
  assert_int_equal(gpux__spec_check_image(back, titles, 3), 0);
  back->handler.file = gpux__spec_strdup(back, "../evil.py");
  assert_int_equal(gpux__spec_check_image(back, titles, 3), GPUX_E_INVALID);
  assert_string_equal(gpux_last_error(), "config: key 'handler.file': '../evil.py' leaves the image's folder; files of an image are its layers");
  back->handler.file = gpux__spec_strdup(back, "h.so.1");
  back->handler.requirements_file = gpux__spec_strdup(back, "other.txt");
  assert_int_equal(gpux__spec_check_image(back, titles, 3), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "key 'handler.requirements': 'other.txt' is not a layer of the image"));
  cJSON_Delete(j);
  gpux__spec_free(back);
  gpux__spec_free(s);
  static const struct { const char *yaml, *want; } bad[] = {
    {"model: m.onnx\nhandler: h.txt\n", "GPUXfile:2: key 'handler': 'h.txt' is neither a Python file (.py) nor a shared library (.so)"},
    {"model: m.onnx\nhandler: {timeout: 3}\n", "GPUXfile:2: key 'handler.file': missing: the handler's file, such as handler.py"},
    {"model: m.onnx\nhandler: {file: h.py, timeout: soon}\n", "GPUXfile:2: key 'handler.timeout': 'soon' is not a duration like 10, 10s or 500ms"},
    {"model: m.onnx\nhandler: {file: h.py, workers: 0}\n", "GPUXfile:2: key 'handler.workers': 0 is out of range (1 to 64)"},
    {"model: m.onnx\nhandler: {file: h.py, memory: 1MB}\n", "GPUXfile:2: key 'handler.memory': '1MB' is not a size of at least 64MiB, like 2GB"},
    {"model: m.onnx\nhandler: {file: h.py, example: [a]}\n", "GPUXfile:2: key 'handler.example': expected a value or a mapping of request keys to values, got a list"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    s = NULL;
    int rc = gpux__spec_parse_yaml(bad[i].yaml, strlen(bad[i].yaml), "GPUXfile", dir, &s);
    if (rc != GPUX_E_PARSE || strcmp(gpux_last_error(), bad[i].want)) fprintf(stderr, "got '%s'\n", gpux_last_error());
    assert_int_equal(rc, GPUX_E_PARSE);
    assert_string_equal(gpux_last_error(), bad[i].want);
    assert_null(s);
  }
}

static gpux__handler *open_handler(gpux__spec **spec) {
  char path[256];
  snprintf(path, sizeof path, "%s/h.py", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(handler_py, f);
  fclose(f);
  *spec = parse("model: ./m.onnx\nhandler: {file: ./h.py, timeout: 1s}\n");
  gpux__handler *h = NULL;
  int rc = gpux__handler_open(*spec, &h);
  if (rc) fprintf(stderr, "%s\n", gpux_last_error());
  assert_int_equal(rc, 0);
  assert_false(gpux__handler_has(h, 0));
  assert_true(gpux__handler_has(h, 1));
  assert_string_equal(gpux__handler_name(h), "h.py");
  return h;
}

/* postprocess on y = [[1, 2, 3]] with the request `text` (and 5 bytes as "blob") */
static int post(gpux__handler *h, const char *text, char **json) {
  gpux__named_tensors out = {0};
  gpux_tensor t = {0};
  int64_t dims[2] = {1, 3};
  assert_int_equal(gpux_tensor_init(&t, GPUX_DT_FLOAT, 2, dims), 0);
  for (int i = 0; i < 3; i++) ((float *)t.data)[i] = (float)(i + 1);
  assert_int_equal(gpux__named_tensors_add(&out, "y", &t), 0);
  gpux_app_input in[2] = {{.text = text}, {.name = "blob", .bytes = "\0\1\2\3\4", .len = 5}};
  gpux_handler_value *req;
  char **names;
  assert_int_equal(gpux__handler_request(in, 2, &req, &names), 0);
  assert_string_equal(req[0].name, "input");
  int rc = gpux__handler_postprocess(h, &out, req, 2, json);
  gpux__handler_request_free(req, names, 2);
  gpux__named_tensors_free(&out);
  return rc;
}

static void test_calls(void **state) {
  (void)state;
  gpux__spec *spec;
  gpux__handler *h = open_handler(&spec);
  char *json = NULL;
  assert_int_equal(post(h, "hello", &json), 0);
  assert_string_equal(json, "{\"sum\":6,\"shape\":[1,3],\"dtype\":\"float32\",\"text\":\"hello\",\"bytes\":5}");
  free(json);
  /* a hang: killed at the timeout; then a new worker answers */
  double t0 = gpux__now_ms();
  assert_int_equal(post(h, "hang", &json), GPUX_E_HANDLER);
  assert_string_equal(gpux_last_error(), "h.py: postprocess took longer than handler.timeout (1s); the worker was killed");
  assert_true(gpux__now_ms() - t0 < 5000);
  assert_int_equal(post(h, "again", &json), 0);
  assert_non_null(strstr(json, "\"text\":\"again\""));
  free(json);
  /* a crash */
  assert_int_equal(post(h, "crash", &json), GPUX_E_HANDLER);
  assert_string_equal(gpux_last_error(), "h.py: postprocess: the worker crashed (signal 11, Segmentation fault)");
  assert_int_equal(post(h, "after", &json), 0);
  free(json);
  gpux__handler_close(h);
  gpux__spec_free(spec);
}

static void *worker_thread(void *h) {
  char *json = NULL, text[32];
  for (int i = 0; i < 5; i++) {
    snprintf(text, sizeof text, "t%d", i);
    if (post(h, text, &json)) return (void *)1;
    int ok = strstr(json, text) != NULL;
    free(json);
    if (!ok) return (void *)1;
  }
  return NULL;
}

static void test_pool(void **state) {
  (void)state;
  gpux__spec *spec;
  gpux__handler *h = open_handler(&spec);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, worker_thread, h), 0);
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  gpux__handler_close(h);
  gpux__spec_free(spec);
}

static void test_trust(void **state) {
  (void)state;
  char home[300];
  snprintf(home, sizeof home, "%s/home", dir);
  gpux_store *st;
  assert_int_equal(gpux_store_open(home, &st), 0);
  char d1[72], d2[72];
  snprintf(d1, sizeof d1, "sha256:%064d", 1);
  snprintf(d2, sizeof d2, "sha256:%064d", 2);
  assert_false(gpux__trust_has(st, d1));
  assert_int_equal(gpux__trust_add(st, d1, "a:latest"), 0);
  assert_int_equal(gpux__trust_add(st, d1, "a:latest"), 0);   /* once only */
  assert_true(gpux__trust_has(st, d1));
  assert_false(gpux__trust_has(st, d2));
  assert_false(gpux__trust_has(st, "sha256:0000"));          /* a prefix is not a digest */
  char path[512], line[256];
  gpux__trust_path(st, path, sizeof path);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  int lines = 0;
  while (fgets(line, sizeof line, f)) lines++;
  fclose(f);
  assert_int_equal(lines, 1);
  gpux_store_close(st);
}

int main(void) {
  if (!mkdtemp(dir)) return 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_keys),
    cmocka_unit_test(test_calls),
    cmocka_unit_test(test_pool),
    cmocka_unit_test(test_trust),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) { /* a leftover temporary folder is not a failure */ }
  return rc;
}
