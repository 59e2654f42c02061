/* test-spec.c — the GPUXfile parser and validator: every key, one-line errors with file, line and
 * key ("did you mean"), symbolic shapes and dtype names, the JSON round trip an image's config
 * relies on, and the checks against a model's declared inputs and outputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "onnx-writer.h"
#include "spec/spec.h"

static gpux__spec *parse_ok(const char *yaml) {
  gpux__spec *s = NULL;
  int rc = gpux__spec_parse_yaml(yaml, strlen(yaml), "GPUXfile", ".", &s);
  if (rc) fprintf(stderr, "unexpected error: %s\n", gpux_last_error());
  assert_int_equal(rc, 0);
  assert_non_null(s);
  return s;
}

/* Parses text that must fail with `err` and a message equal to `want` (or containing it when
 * `want` starts with '~'). */
static void parse_fails(const char *yaml, int err, const char *want) {
  gpux__spec *s = NULL;
  int rc = gpux__spec_parse_yaml(yaml, strlen(yaml), "GPUXfile", ".", &s);
  assert_null(s);
  if (rc != err || (want[0] == '~' ? !strstr(gpux_last_error(), want + 1) : strcmp(gpux_last_error(), want)))
    fprintf(stderr, "got %d '%s'\nwant %d '%s'\n", rc, gpux_last_error(), err, want);
  assert_int_equal(rc, err);
  if (want[0] == '~') assert_non_null(strstr(gpux_last_error(), want + 1));
  else assert_string_equal(gpux_last_error(), want);
  assert_null(strchr(gpux_last_error(), '\n'));
}

static void test_minimal(void **state) {
  (void)state;
  gpux__spec *s = parse_ok("model: ./model.onnx\n");
  assert_int_equal(s->has_model, 1);
  assert_string_equal(s->model.source, "./model.onnx");
  assert_string_equal(s->model.path, "./model.onnx");
  assert_int_equal(s->model.kind, GPUX__SRC_FILE);
  assert_int_equal(s->n_inputs, 0);
  assert_int_equal(s->runtime.backend, GPUX_BACKEND_AUTO);
  assert_int_equal(s->serving.port, 8080);
  gpux__spec_free(s);
}

/* `backend: gpu` is the WebGPU backend, and is stored as webgpu. */
static void test_backend_gpu(void **state) {
  (void)state;
  gpux__spec *s = parse_ok("model: m.onnx\nruntime:\n  backend: gpu\n");
  assert_int_equal(s->runtime.backend, GPUX_BACKEND_WEBGPU);
  cJSON *j = gpux__spec_to_json(s);
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "runtime"), "backend")), "webgpu");
  cJSON_Delete(j);
  gpux__spec_free(s);
}

static void test_unknown_keys(void **state) {
  (void)state;
  parse_fails("modle: ./model.onnx\n", GPUX_E_PARSE, "GPUXfile:1: key 'modle': unknown key (did you mean 'model'?)");
  parse_fails("model: m.onnx\nruntime:\n  backend: cpu\n  precison: fp16\n", GPUX_E_PARSE,
              "GPUXfile:4: key 'runtime.precison': unknown key (did you mean 'precision'?)");
  parse_fails("model: m.onnx\nzzzzzz: 1\n", GPUX_E_PARSE, "~GPUXfile:2: key 'zzzzzz': unknown key (valid here: name, version");
  parse_fails("model: m.onnx\ninputs:\n  - name: x\n    dtpye: float32\n", GPUX_E_PARSE,
              "GPUXfile:4: key 'inputs[0].dtpye': unknown key (did you mean 'dtype'?)");
  parse_fails("model: m.onnx\npreprocessing:\n  image:\n    resize: {height: 48, min_widht: 320}\n", GPUX_E_PARSE,
              "GPUXfile:4: key 'preprocessing.image.resize.min_widht': unknown key (did you mean 'min_width'?)");
  parse_fails("model: m.onnx\nmodel: n.onnx\n", GPUX_E_PARSE, "GPUXfile:2: key 'model': given twice (first on line 1)");
}

static void test_syntax_and_values(void **state) {
  (void)state;
  parse_fails("model: [unclosed\n", GPUX_E_PARSE, "~GPUXfile:2: not valid YAML");
  parse_fails("", GPUX_E_PARSE, "~GPUXfile:1: the file is empty");
  parse_fails("- model\n", GPUX_E_PARSE, "~GPUXfile:1: expected a mapping");
  parse_fails("name: Bad Name\nmodel: m.onnx\n", GPUX_E_PARSE, "~GPUXfile:1: key 'name': 'Bad Name' is not an image name");
  parse_fails("name: x\n", GPUX_E_PARSE, "~key 'model': missing: the least a GPUXfile needs is `model: ./model.onnx`");
  parse_fails("model: m.onnx\nruntime: {backend: gpus}\n", GPUX_E_PARSE,
              "GPUXfile:2: key 'runtime.backend': 'gpus' is not one of auto, cpu, webgpu, gpu (did you mean 'gpu'?)");
  parse_fails("model: m.onnx\nserving:\n  port: 70000\n", GPUX_E_PARSE,
              "GPUXfile:3: key 'serving.port': 70000 is out of range (1 to 65535)");
  parse_fails("model: m.onnx\nserving:\n  timeout: soon\n", GPUX_E_PARSE, "~GPUXfile:3: key 'serving.timeout': 'soon' is not a duration");
  parse_fails("model: m.onnx\nruntime:\n  gpu: {memory: lots}\n", GPUX_E_PARSE, "~GPUXfile:3: key 'runtime.gpu.memory': 'lots' is not a size");
  parse_fails("model: {source: m.onnx, sha256: abc}\n", GPUX_E_PARSE, "GPUXfile:1: key 'model.sha256': 'abc' is not 64 hex digits");
  parse_fails("model: hf:owner/file.onnx\n", GPUX_E_PARSE, "~'hf:owner/file.onnx' is not hf:OWNER/REPO/FILE[@REVISION]");
  parse_fails("model: m.onnx\ninputs:\n  - name: x\n    dtype: flaot32\n", GPUX_E_PARSE,
              "GPUXfile:4: key 'inputs[0].dtype': unknown data type 'flaot32' (did you mean 'float32'?)");
  parse_fails("model: m.onnx\ninputs:\n  - name: x\n    shape: [1, -3]\n", GPUX_E_PARSE, "~GPUXfile:4: key 'inputs[0].shape': dimension 1 is negative");
  parse_fails("model: m.onnx\ninputs:\n  - type: image\n", GPUX_E_PARSE, "GPUXfile:3: key 'inputs[0].name': missing (every input and output needs a name)");
  parse_fails("model: m.onnx\npostprocessing: {softmax: true, sigmoid: true}\n", GPUX_E_PARSE, "~softmax and sigmoid are exclusive");
  parse_fails("model: m.onnx\npostprocessing:\n  ctc: {blank: 0}\n", GPUX_E_PARSE,
              "GPUXfile:3: key 'postprocessing.ctc.charset': missing (a file with one character per line)");
  parse_fails("model: m.onnx\npipeline: [a.onnx]\n", GPUX_E_PARSE, "GPUXfile:2: key 'pipeline': give either model or pipeline, not both");
  parse_fails("pipeline:\n  mode: openwakeword\n  steps: [a.onnx, b.onnx]\n", GPUX_E_PARSE, "~takes 3 steps");
  parse_fails("model: m.onnx\npreprocessing:\n  image:\n    std: [0.5, 0]\n", GPUX_E_PARSE, "~must not be 0");
  parse_fails("model: m.onnx\npreprocessing:\n  image:\n    resize: {width: 10}\n", GPUX_E_PARSE, "~key 'preprocessing.image.resize.height': missing");
  parse_fails("model: m.onnx\npreprocessing:\n  tokenizer: {vocab: v.txt, padding: max_length}\n", GPUX_E_PARSE,
              "GPUXfile:3: key 'preprocessing.tokenizer.max_length': missing (padding: max_length needs it)");
}

static const char *full =
  "name: ocr\n"
  "version: \"1.0\"\n"
  "description: Reads a line of text\n"
  "model:\n"
  "  source: rec.onnx\n"
  "  format: onnx\n"
  "  sha256: sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n"
  "inputs:\n"
  "  - name: x\n"
  "    type: image\n"
  "    dtype: fp32\n"
  "    shape: [batch, 3, 48, W]\n"
  "    example: line.png\n"
  "outputs:\n"
  "  probs: {dtype: float32, shape: [\"?\", T, 6625]}\n"
  "preprocessing:\n"
  "  image:\n"
  "    color_order: bgr\n"
  "    resize: {height: 48, min_width: 320}\n"
  "    interpolation: bilinear\n"
  "    mean: 0.5\n"
  "    std: [0.5, 0.5, 0.5]\n"
  "    layout: NCHW\n"
  "postprocessing:\n"
  "  ctc: {charset: keys.txt, add_space: true}\n"
  "runtime:\n"
  "  backend: webgpu\n"
  "  gpu: {memory: 2GiB}\n"
  "  precision: fp16\n"
  "  threads: 2\n"
  "serving:\n"
  "  port: 9000\n"
  "  max_batch_size: 8\n"
  "  max_queue_delay_ms: 5\n"
  "  timeout: 500ms\n";

static void test_full(void **state) {
  (void)state;
  gpux__spec *s = parse_ok(full);
  assert_string_equal(s->name, "ocr");
  assert_string_equal(s->version, "1.0");
  assert_string_equal(s->model.sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  assert_int_equal(s->n_inputs, 1);
  gpux__spec_io *x = &s->inputs[0];
  assert_int_equal(x->type, GPUX__IO_IMAGE);
  assert_int_equal(x->dtype, GPUX_DT_FLOAT);
  assert_int_equal(x->ndim, 4);
  assert_int_equal(x->dims[0], -1);
  assert_string_equal(x->dim_names[0], "batch");
  assert_int_equal(x->dims[2], 48);
  assert_null(x->dim_names[2]);
  assert_string_equal(x->dim_names[3], "W");
  assert_string_equal(x->example, "line.png");
  assert_string_equal(s->outputs[0].name, "probs");
  assert_null(s->outputs[0].dim_names[0]);
  assert_string_equal(s->outputs[0].dim_names[1], "T");
  assert_int_equal(s->image.cfg.resize, GPUX__RESIZE_HEIGHT);
  assert_int_equal(s->image.cfg.height, 48);
  assert_int_equal(s->image.cfg.min_width, 320);
  assert_int_equal(s->image.cfg.bgr, 1);
  assert_true(s->image.cfg.mean[2] == 0.5f && s->image.cfg.std[1] == 0.5f);
  assert_int_equal(s->n_post, 1);
  assert_int_equal(s->post[0].cfg.ctc, 1);
  assert_int_equal(s->post[0].ctc_add_space, 1);
  assert_string_equal(s->post[0].ctc_charset, "keys.txt");
  assert_int_equal(s->runtime.backend, GPUX_BACKEND_WEBGPU);
  assert_int_equal(s->runtime.gpu_memory, 2147483648LL);
  assert_int_equal(s->runtime.precision, GPUX__PREC_FP16);
  assert_int_equal(s->serving.port, 9000);
  assert_true(s->serving.timeout > 0.49 && s->serving.timeout < 0.51);

  /* JSON round trip: to_json(from_json(to_json(s))) == to_json(s) */
  cJSON *j1 = gpux__spec_to_json(s);
  char *t1 = cJSON_PrintUnformatted(j1);
  gpux__spec *s2 = NULL;
  if (gpux__spec_from_json(j1, NULL, "/img", &s2)) fprintf(stderr, "%s\n%s\n", gpux_last_error(), t1);
  assert_non_null(s2);
  cJSON *j2 = gpux__spec_to_json(s2);
  char *t2 = cJSON_PrintUnformatted(j2);
  assert_string_equal(t1, t2);
  char p[256];
  gpux__spec_path(s2, s2->model.path, p, sizeof p);
  assert_string_equal(p, "/img/rec.onnx");
  free(t1);
  free(t2);
  cJSON_Delete(j1);
  cJSON_Delete(j2);
  gpux__spec_free(s2);
  gpux__spec_free(s);
}

static void test_forms(void **state) {
  (void)state;
  gpux__spec *s = parse_ok(
    "model: m.onnx\n"
    "inputs: {image: image, text: {type: text, max_length: 64}}\n"
    "preprocessing:\n"
    "  image: {resize: 256, center_crop: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}\n"
    "  tokenizer: vocab.txt\n"
    "  audio: {sample_rate: 16000, normalize: int16}\n"
    "postprocessing:\n"
    "  - {output: logits, softmax: true, top_k: 5, labels: labels.txt}\n"
    "  - {output: score, sigmoid: true, threshold: 0.5, labels: [yes]}\n");
  assert_int_equal(s->inputs[0].type, GPUX__IO_IMAGE);
  assert_int_equal(s->inputs[1].type, GPUX__IO_STRING);
  assert_int_equal(s->inputs[1].max_length, 64);
  assert_int_equal(s->image.cfg.resize, GPUX__RESIZE_SHORTER);
  assert_int_equal(s->image.cfg.size, 256);
  assert_int_equal(s->image.cfg.crop_width, 224);
  assert_string_equal(s->tokenizer.vocab, "vocab.txt");
  assert_int_equal(s->audio.cfg.sample_rate, 16000);
  assert_int_equal(s->audio.cfg.normalize, GPUX__AUDIO_NORM_INT16);
  assert_int_equal(s->n_post, 2);
  assert_int_equal(s->post[0].cfg.activation, GPUX__ACT_SOFTMAX);
  assert_int_equal(s->post[0].cfg.top_k, 5);
  assert_string_equal(s->post[0].labels_file, "labels.txt");
  assert_int_equal(s->post[1].cfg.has_threshold, 1);
  assert_string_equal(s->post[1].labels[0], "yes");
  gpux__spec_free(s);

  s = parse_ok("pipeline:\n  mode: openwakeword\n  steps:\n    - {name: mel, model: mel.onnx}\n    - emb.onnx\n"
               "    - {model: {source: hf:dscripka/openWakeWord/hey_jarvis.onnx@v0.1}}\n  padding: 0.5\n");
  assert_int_equal(s->pipeline.mode, GPUX__PIPE_OPENWAKEWORD);
  assert_int_equal(s->pipeline.n_steps, 3);
  assert_string_equal(s->pipeline.steps[0].name, "mel");
  assert_string_equal(s->pipeline.steps[1].name, "step2");
  assert_int_equal(s->pipeline.steps[2].model.kind, GPUX__SRC_HF);
  assert_int_equal(s->pipeline.chunk, 1280);
  assert_true(s->pipeline.padding == 0.5);
  gpux__spec_free(s);

  /* an encoder-decoder: seq2seq mode with Whisper's settings, kept through an image's JSON */
  s = parse_ok("pipeline:\n  mode: seq2seq\n  steps: [encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx]\n"
               "preprocessing:\n  tokenizer: {vocab: tokenizer.json}\ngenerate:\n  language: de\n  task: translate\n");
  assert_int_equal(s->pipeline.mode, GPUX__PIPE_SEQ2SEQ);
  assert_string_equal(s->generate.language, "de");
  assert_string_equal(s->generate.task, "translate");
  assert_int_equal(s->generate.decoder_start, -1);
  {
    cJSON *j = gpux__spec_to_json(s);
    gpux__spec *s2 = NULL;
    assert_int_equal(gpux__spec_from_json(j, NULL, "/img", &s2), 0);
    assert_int_equal(s2->pipeline.mode, GPUX__PIPE_SEQ2SEQ);
    assert_int_equal(s2->pipeline.n_steps, 3);
    assert_string_equal(s2->generate.task, "translate");
    assert_string_equal(s2->generate.language, "de");
    gpux__spec_free(s2);
    cJSON_Delete(j);
  }
  gpux__spec_free(s);
  /* generate: may be left out; its defaults apply */
  s = parse_ok("pipeline:\n  mode: seq2seq\n  steps: [e.onnx, d.onnx]\npreprocessing:\n  tokenizer: {vocab: t.json}\n");
  assert_int_equal(s->generate.present, 1);
  assert_int_equal(s->generate.max_new_tokens, 64);
  gpux__spec_free(s);
  s = parse_ok("pipeline:\n  mode: seq2seq\n  steps: [e.onnx, d.onnx]\npreprocessing:\n  tokenizer: {vocab: t.json}\n"
               "generate: {decoder_start_token_id: 2}\n");
  assert_int_equal(s->generate.decoder_start, 2);
  gpux__spec_free(s);
  parse_fails("pipeline:\n  mode: seq2seq\n  steps: [e.onnx]\npreprocessing:\n  tokenizer: {vocab: t.json}\n", GPUX_E_PARSE,
              "~GPUXfile:2: key 'pipeline.steps': mode seq2seq takes 2 or 3 steps");
  parse_fails("pipeline:\n  mode: seq2seq\n  steps: [e.onnx, d.onnx]\n", GPUX_E_PARSE,
              "~key 'pipeline.mode': seq2seq needs preprocessing.tokenizer");
  parse_fails("pipeline:\n  mode: seq2seq\n  steps: [e.onnx, d.onnx]\npreprocessing:\n  tokenizer: {vocab: t.json}\n"
              "generate: {task: transcibe}\n", GPUX_E_PARSE, "~key 'generate.task': 'transcibe' is not one of");
  parse_fails("model: m.onnx\npreprocessing:\n  tokenizer: {vocab: t.json}\ngenerate: {language: en}\n", GPUX_E_PARSE,
              "~are settings of `pipeline: {mode: seq2seq}`");
  parse_fails("pipeline:\n  mode: seq2seq\n  steps: [e.onnx, d.onnx]\npreprocessing:\n  tokenizer: {vocab: t.json}\n"
              "generate: {language: 'e n'}\n", GPUX_E_PARSE, "~key 'generate.language': 'e n' is not a language code");

  s = parse_ok("model: https://example.com/m.onnx\n");
  assert_int_equal(s->model.kind, GPUX__SRC_URL);
  gpux__spec_free(s);

  assert_int_equal(gpux__parse_size("512MB"), 512000000);
  assert_int_equal(gpux__parse_size("1.5 GiB"), 1610612736LL);
  assert_int_equal(gpux__parse_size("x"), -1);
  assert_int_equal(gpux__dtype_from_name("fp16"), GPUX_DT_FLOAT16);
  assert_int_equal(gpux__dtype_from_name("int64"), GPUX_DT_INT64);
  assert_int_equal(gpux__dtype_from_name("nope"), -1);
}

/* A model Y = X + W with X float32 [batch, 3, 4, 4]. */
static gpux_model *tiny_model(void) {
  pbw m = {0}, g = {0};
  int64_t xd[4] = {-1, 3, 4, 4};
  float w[48] = {0};
  int64_t wd[3] = {3, 4, 4};
  pbw_node(&g, "Add", "X", "W", "Y");
  pbw_str(&g, 2, "g");
  pbw_tensor(&g, 5, "W", GPUX_DT_FLOAT, 3, wd, w, sizeof w);
  pbw_value_info(&g, 11, "X", GPUX_DT_FLOAT, 4, xd, "batch");
  pbw_value_info(&g, 12, "Y", GPUX_DT_FLOAT, 4, xd, "batch");
  pbw_model(&m, &g);
  gpux_model *model = NULL;
  assert_int_equal(gpux_model_load_buffer(m.data, m.len, "tiny.onnx", &model), 0);
  free(m.data);
  return model;
}

static int check(const char *yaml, gpux_model *m, gpux__spec **out) {
  gpux__spec *s = parse_ok(yaml);
  int rc = gpux__spec_check_models(s, &m, 1);
  if (out && !rc) *out = s;
  else gpux__spec_free(s);
  return rc;
}

static void test_check_models(void **state) {
  (void)state;
  gpux_model *m = tiny_model();
  gpux__spec *s = NULL;
  /* the minimal file: everything from the model */
  assert_int_equal(check("model: tiny.onnx\n", m, &s), 0);
  assert_int_equal(s->n_inputs, 1);
  assert_string_equal(s->inputs[0].name, "X");
  assert_int_equal(s->inputs[0].type, GPUX__IO_TENSOR);
  assert_int_equal(s->inputs[0].ndim, 4);
  assert_string_equal(s->inputs[0].dim_names[0], "batch");
  assert_int_equal(s->n_outputs, 1);
  assert_string_equal(s->outputs[0].name, "Y");
  gpux__spec_free(s);

  /* preprocessing.image makes X an image input, resized to the model's fixed 4x4 */
  assert_int_equal(check("model: tiny.onnx\npreprocessing:\n  image: {mean: 0.5}\n", m, &s), 0);
  assert_int_equal(s->inputs[0].type, GPUX__IO_IMAGE);
  assert_string_equal(s->image.input, "X");
  assert_int_equal(s->image.cfg.resize, GPUX__RESIZE_EXACT);
  assert_int_equal(s->image.cfg.width, 4);
  gpux__spec_free(s);

  /* declared shapes: symbolic matches anything, fixed must match */
  assert_int_equal(check("model: tiny.onnx\ninputs:\n  - {name: X, shape: [N, 3, H, 4]}\n", m, NULL), 0);
  assert_int_equal(check("model: tiny.onnx\ninputs:\n  - name: X\n    shape: [1, 3, 5, 4]\n", m, NULL), GPUX_E_SHAPE);
  assert_string_equal(gpux_last_error(), "GPUXfile:4: key 'inputs[0].shape': [1, 3, 5, 4] does not match tiny.onnx's 'X' [batch, 3, 4, 4] (dimension 2)");
  assert_int_equal(check("model: tiny.onnx\ninputs:\n  - {name: X, shape: [1, 48]}\n", m, NULL), GPUX_E_SHAPE);
  assert_int_equal(check("model: tiny.onnx\ninputs:\n  - {name: X, dtype: int64}\n", m, NULL), GPUX_E_DTYPE);
  assert_string_equal(gpux_last_error(), "GPUXfile:3: key 'inputs[0].dtype': int64 does not match tiny.onnx's float32 for 'X'");
  assert_int_equal(check("model: tiny.onnx\ninputs:\n  - name: image\n", m, NULL), GPUX_E_INVALID);
  assert_string_equal(gpux_last_error(), "GPUXfile:3: key 'inputs[0].name': 'image' is not an input of tiny.onnx (its inputs: X)");
  assert_int_equal(check("model: tiny.onnx\noutputs:\n  - {name: Y, dtype: float16}\n", m, NULL), GPUX_E_DTYPE);
  assert_int_equal(check("model: tiny.onnx\npostprocessing: {output: Z, softmax: true}\n", m, NULL), GPUX_E_INVALID);
  assert_int_equal(check("model: tiny.onnx\npostprocessing: {softmax: true, labels: [a, b]}\n", m, NULL), GPUX_E_SHAPE);
  assert_int_equal(check("model: tiny.onnx\npostprocessing: {softmax: true, labels: [a, b, c, d]}\n", m, NULL), 0);
  assert_int_equal(check("model: tiny.onnx\npreprocessing:\n  image: {dtype: uint8}\n", m, NULL), GPUX_E_DTYPE);
  assert_int_equal(check("model: tiny.onnx\npreprocessing:\n  tokenizer: vocab.txt\n", m, NULL), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "no input 'input_ids'"));
  gpux_model_free(m);
}

/* Hostile inputs: deep nesting and alias bombs end in an error, never a hang or crash. */
static void test_hostile(void **state) {
  (void)state;
  char deep[2000];
  size_t o = 0;
  for (int i = 0; i < 300; i++) deep[o++] = '[';
  deep[o] = 0;
  gpux__spec *s = NULL;
  assert_int_equal(gpux__spec_parse_yaml(deep, o, "GPUXfile", ".", &s), GPUX_E_PARSE);
  const char *bomb =
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
  assert_int_equal(gpux__spec_parse_yaml(bomb, strlen(bomb), "GPUXfile", ".", &s), GPUX_E_PARSE);
  assert_null(s);
  /* 200k nested flow collections or "- " entries: refused before libyaml (which took minutes),
   * also behind an apostrophe in a plain scalar that must not read as a quote */
  size_t big = 200000;
  char *text = malloc(2 * big + 64);
  const char *prefixes[] = {"", "description: don't\nx: ", "name: 'a # b'\nx: {a: "};
  for (int k = 0; k < 3; k++) {
    o = (size_t)sprintf(text, "%s", prefixes[k]);
    for (size_t i = 0; i < big; i++) text[o++] = k == 2 ? '{' : '[';
    assert_int_equal(gpux__spec_parse_yaml(text, o, "GPUXfile", ".", &s), GPUX_E_PARSE);
    assert_non_null(strstr(gpux_last_error(), "nested more than 64 deep"));
  }
  o = 0;
  for (size_t i = 0; i < big; i++) text[o++] = '-', text[o++] = ' ';
  assert_int_equal(gpux__spec_parse_yaml(text, o, "GPUXfile", ".", &s), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "GPUXfile:1: nested more than 64 deep"));
  free(text);
  /* brackets inside quotes and comments do not count */
  const char *fine = "model: ./m.onnx  # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n"
                     "description: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"\n";
  assert_int_equal(gpux__spec_parse_yaml(fine, strlen(fine), "GPUXfile", ".", &s), 0);
  gpux__spec_free(s);
  /* a second document is an error, not silently ignored; a lone "---" start or "..." end is fine */
  const char *two = "model: ./a.onnx\n---\nmodel: ./b.onnx\n";
  assert_int_equal(gpux__spec_parse_yaml(two, strlen(two), "GPUXfile", ".", &s), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "GPUXfile:3: a second YAML document"));
  const char *one = "---\nmodel: ./a.onnx\n...\n";
  assert_int_equal(gpux__spec_parse_yaml(one, strlen(one), "GPUXfile", ".", &s), 0);
  gpux__spec_free(s);
  /* 300k keys: too large, quickly; 100k keys with the last repeating the first: named, quickly */
  size_t n_keys = 300000;
  text = malloc(n_keys * 16);
  o = 0;
  for (size_t i = 0; i < n_keys; i++) o += (size_t)sprintf(text + o, "k%zu: 1\n", i);
  assert_int_equal(gpux__spec_parse_yaml(text, o, "GPUXfile", ".", &s), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "too large"));
  o = 0;
  for (size_t i = 0; i < 100000; i++) o += (size_t)sprintf(text + o, "k%zu: 1\n", i);
  o += (size_t)sprintf(text + o, "k0: 2\n");
  assert_int_equal(gpux__spec_parse_yaml(text, o, "GPUXfile", ".", &s), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "GPUXfile:100001: key 'k0': given twice (first on line 1)"));
  free(text);
}

/* Mutated GPUXfiles (bytes replaced, lines dropped or cut short) and mutated JSON configs: every
 * one parses or fails with a one-line message, never crashes (run under ASan/UBSan too). */
static void test_mutations(void **state) {
  (void)state;
  size_t n = strlen(full);
  char *buf = malloc(n + 1);
  uint32_t seed = 1;
  static const char alphabet[] = "ab:-[]{}#&*!|>'\"\n 0123456789.,?";
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(buf, full, n + 1);
    size_t len = n;
    int edits = 1 + iter % 4;
    for (int e = 0; e < edits; e++) {
      seed = seed * 1664525u + 1013904223u;
      size_t at = (seed >> 8) % len;
      seed = seed * 1664525u + 1013904223u;
      switch ((seed >> 24) % 3) {
      case 0: buf[at] = alphabet[(seed >> 8) % (sizeof alphabet - 1)]; break;
      case 1: len = at; buf[len] = 0; break;                         /* cut short */
      default: {                                                      /* drop a line */
        char *nl = strchr(buf + at, '\n');
        if (nl) { memmove(buf + at, nl + 1, strlen(nl + 1) + 1); len = strlen(buf); }
      }
      }
      if (len == 0) break;
    }
    gpux__spec *s = NULL;
    int rc = gpux__spec_parse_yaml(buf, len, "GPUXfile", ".", &s);
    if (rc) {
      assert_null(s);
      assert_null(strchr(gpux_last_error(), '\n'));
      continue;
    }
    /* whatever parsed survives the JSON round trip */
    cJSON *j = gpux__spec_to_json(s);
    gpux__spec *s2 = NULL;
    if (gpux__spec_from_json(j, NULL, ".", &s2)) fprintf(stderr, "round trip failed: %s\n---\n%s\n", gpux_last_error(), buf);
    assert_non_null(s2);
    gpux__spec_free(s2);
    cJSON_Delete(j);
    gpux__spec_free(s);
  }
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_minimal),
    cmocka_unit_test(test_backend_gpu),
    cmocka_unit_test(test_unknown_keys),
    cmocka_unit_test(test_syntax_and_values),
    cmocka_unit_test(test_full),
    cmocka_unit_test(test_forms),
    cmocka_unit_test(test_check_models),
    cmocka_unit_test(test_hostile),
    cmocka_unit_test(test_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
