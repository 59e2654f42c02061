/* init.c — `gpux init NAME [--template T] [--model FILE]`: makes a folder NAME with a GPUXfile to
 * start from (image-classification, text-classification, ocr, audio or blank), and says what to
 * add next. With --model the model is put in the folder and, for the blank template, its inputs
 * and outputs are written out as declarations to edit. */
#include "cli.h"
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  const char *name;
  const char *summary;
  const char *body;             /* the GPUXfile after name/version */
  const char *next;             /* what the user adds */
} template_t;

static const template_t templates[] = {
  {"blank", "just the model; inputs and outputs are read from it",
   "model: ./model.onnx\n"
   "\n"
   "# Everything below is optional. Inputs and outputs are read from the model; declare them to\n"
   "# have gpux check names, dtypes and shapes (symbolic dimensions are names):\n"
   "# inputs:\n"
   "#   - name: input\n"
   "#     type: tensor            # tensor | image | audio | string\n"
   "#     dtype: float32\n"
   "#     shape: [batch, 3, 224, 224]\n"
   "# runtime:\n"
   "#   backend: auto             # auto | webgpu (or gpu) | cpu\n"
   "# serving:\n"
   "#   port: 8080\n",
   "model.onnx"},
  {"image-classification", "an image in, the top-5 labels out (ImageNet-style preprocessing)",
   "description: An image classifier\n"
   "model: ./model.onnx\n"
   "preprocessing:\n"
   "  image:                      # fills the model's first input\n"
   "    resize: 256               # shorter side to 256, aspect kept\n"
   "    center_crop: 224\n"
   "    mean: [0.485, 0.456, 0.406]\n"
   "    std: [0.229, 0.224, 0.225]\n"
   "    layout: NCHW\n"
   "postprocessing:\n"
   "  softmax: true\n"
   "  top_k: 5\n"
   "  labels: ./labels.txt        # one class name per line\n",
   "model.onnx and labels.txt (one class name per line)"},
  {"text-classification", "text in (WordPiece tokenizer), the label out",
   "description: A text classifier (BERT-style)\n"
   "model: ./model.onnx\n"
   "preprocessing:\n"
   "  tokenizer:                  # fills input_ids, attention_mask, token_type_ids\n"
   "    vocab: ./vocab.txt        # or tokenizer.json (byte-level BPE)\n"
   "    lowercase: true\n"
   "    max_length: 128\n"
   "postprocessing:\n"
   "  softmax: true\n"
   "  top_k: 2\n"
   "  labels: [negative, positive]\n"
   "  answer: {label: sentiment, score: confidence}   # {\"sentiment\": ..., \"confidence\": ...}\n",
   "model.onnx and vocab.txt"},
  {"ocr", "a text-line image in, the text out (PaddleOCR recognition, CTC decoding)",
   "description: Text recognition (PaddleOCR v4 style)\n"
   "model: ./model.onnx          # e.g. ch_PP-OCRv4_rec_infer.onnx\n"
   "preprocessing:\n"
   "  image:\n"
   "    color_order: bgr\n"
   "    resize: {height: 48, min_width: 320}\n"
   "    mean: 0.5\n"
   "    std: 0.5\n"
   "postprocessing:\n"
   "  ctc:\n"
   "    charset: ./ppocr_keys_v1.txt\n"
   "    add_space: true\n",
   "model.onnx (a PaddleOCR recognition model) and ppocr_keys_v1.txt"},
  {"audio", "a WAV file in (resampled to 16 kHz), the top labels out",
   "description: An audio classifier\n"
   "model: ./model.onnx\n"
   "preprocessing:\n"
   "  audio:                      # fills the model's first input with [1, samples]\n"
   "    sample_rate: 16000\n"
   "    normalize: none           # none ([-1, 1]) | int16 | peak\n"
   "postprocessing:\n"
   "  softmax: true\n"
   "  top_k: 3\n"
   "  labels: ./labels.txt\n",
   "model.onnx and labels.txt (one class name per line)"},
};

/* Copies src to dst (a hard link when both are on one file system). */
static int copy_file(const char *src, const char *dst) {
  if (!link(src, dst)) return 0;
  FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wbx") : NULL;
  if (!in || !out) {
    cli_error(0, "%s: %s", in ? dst : src, strerror(errno));
    if (in) fclose(in);
    return -1;
  }
  char buf[1 << 16];
  size_t n;
  int bad = 0;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) bad |= fwrite(buf, 1, n, out) != n;
  bad |= ferror(in);
  fclose(in);
  if (fclose(out) || bad) { cli_error(0, "%s: %s", dst, strerror(errno ? errno : EIO)); unlink(dst); return -1; }
  return 0;
}

/* The model's inputs and outputs as GPUXfile declarations. */
static void write_io(FILE *f, const gpux_model *m) {
  for (int o = 0; o < 2; o++) {
    int n = o ? gpux_model_output_count(m) : gpux_model_input_count(m);
    fprintf(f, "\n# read from the model; edit to rename dimensions or to add preprocessing\n%s:\n", o ? "outputs" : "inputs");
    for (int i = 0; i < n; i++) {
      gpux_value_info vi;
      if ((o ? gpux_model_output_info(m, i, &vi) : gpux_model_input_info(m, i, &vi)) || vi.kind != GPUX_KIND_TENSOR) continue;
      fprintf(f, "  - name: \"%s\"\n    type: tensor\n", vi.name);
      if (vi.dtype) fprintf(f, "    dtype: %s\n", gpux_dtype_name(vi.dtype));
      if (vi.ndim < 0) continue;
      fprintf(f, "    shape: [");
      for (int d = 0; d < vi.ndim; d++) {
        if (vi.dims[d] >= 0 && !vi.dim_names[d]) fprintf(f, "%s%lld", d ? ", " : "", (long long)vi.dims[d]);
        else fprintf(f, "%s%s", d ? ", " : "", vi.dim_names[d] && vi.dim_names[d][0] ? vi.dim_names[d] : "_");
      }
      fprintf(f, "]\n");
    }
  }
}

static void usage(FILE *f) {
  fprintf(f, "usage: gpux init NAME [--template T] [--model FILE]\n\n"
             "Makes the folder NAME with a GPUXfile to start from. --model FILE copies the ONNX model\n"
             "into NAME/ and fills in its inputs and outputs. Templates:\n");
  for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++)
    fprintf(f, "  %-22s %s\n", templates[i].name, templates[i].summary);
  fprintf(f, "\nThen add the files it names and run `gpux build NAME`.\n");
}

int cmd_init(int argc, char **argv) {
  static const struct option opts[] = {{"template", required_argument, 0, 't'}, {"model", required_argument, 0, 'm'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  const char *tname = "blank", *model = NULL;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":t:m:h", opts, NULL)) != -1) {
    if (c == 't') tname = optarg;
    else if (c == 'm') model = optarg;
    else if (c == 'h') { usage(stdout); return EXIT_OK; }
    else return cli_bad_option("init", argv, c);
  }
  if (argc - optind != 1) { cli_error(0, "init needs one NAME (see gpux init --help)"); return EXIT_USAGE; }
  const char *dir = argv[optind];
  const template_t *t = NULL;
  for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++)
    if (!strcmp(templates[i].name, tname)) t = &templates[i];
  if (!t) {
    cli_error(0, "--template: '%s' is not one of image-classification, text-classification, ocr, audio, blank", tname);
    return EXIT_USAGE;
  }
  /* the image name: the folder's last part, lower-case, [a-z0-9._-] */
  const char *base = strrchr(dir, '/');
  base = base && base[1] ? base + 1 : dir;
  char name[128];
  size_t o = 0;
  for (const char *p = base; *p && o + 1 < sizeof name; p++) {
    char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
    name[o++] = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' ? ch : '-';
  }
  name[o] = 0;
  if (!o || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) {
    cli_error(0, "'%s' does not make an image name (start with a letter or digit)", base);
    return EXIT_USAGE;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/GPUXfile", dir);
  struct stat sb;
  if (stat(path, &sb) == 0) { cli_error(0, "%s already exists", path); return EXIT_INPUT; }
  gpux_model *m = NULL;
  if (model) { /* check it loads before anything is made */
    int rc = gpux_model_load(model, &m);
    if (rc) { fprintf(stderr, "gpux: error: %s\n", gpux_last_error()); return cli_exit_code(rc); }
  }
  if (mkdir(dir, 0755) < 0 && errno != EEXIST) { cli_error(0, "%s: %s", dir, strerror(errno)); gpux_model_free(m); return EXIT_INPUT; }
  char file[300] = "model.onnx";
  if (model) {
    const char *mb = strrchr(model, '/');
    snprintf(file, sizeof file, "%s", mb ? mb + 1 : model);
    char dst[4400];
    snprintf(dst, sizeof dst, "%s/%s", dir, file);
    if (copy_file(model, dst)) { gpux_model_free(m); return EXIT_INPUT; }
  }
  FILE *f = fopen(path, "wx");
  if (!f) { cli_error(0, "%s: %s", path, strerror(errno)); gpux_model_free(m); return EXIT_INPUT; }
  fprintf(f, "# GPUXfile for %s (template %s). `gpux build %s` makes the image; `gpux run %s --input ...` runs it.\n"
             "name: %s\nversion: \"0.1\"\n", name, t->name, dir, name, name);
  /* the template, with its model line naming the model given */
  const char *line = strstr(t->body, "model: ./model.onnx\n");
  if (line && strcmp(file, "model.onnx")) {
    fprintf(f, "%.*smodel: ./%s\n", (int)(line - t->body), t->body, file);
    fputs(line + strlen("model: ./model.onnx\n"), f);
  } else {
    fputs(t->body, f);
  }
  if (m && !strcmp(t->name, "blank")) write_io(f, m);
  gpux_model_free(m);
  if (fclose(f)) { cli_error(0, "%s: %s", path, strerror(errno)); return EXIT_INPUT; }
  /* say what is still missing, if anything */
  char want[4400];
  snprintf(want, sizeof want, "%s/%s", dir, t->next);
  if (stat(want, &sb) == 0 || (model && !strcmp(t->next, "model.onnx")))
    printf("Created %s (template %s).\nNext: `gpux build %s`, or try it first with `gpux run %s --input ...`.\n", path, t->name, dir, dir);
  else
    printf("Created %s (template %s).\nNext: put %s in %s/, then run `gpux build %s`.\n", path, t->name, t->next, dir, dir);
  return EXIT_OK;
}
