/* image.c — checks the spec stored in an image's config when the image is opened (built here or
 * pulled from a registry, so not trusted): every file it names (models, vocabularies, charsets,
 * label files, example files, the handler) must be one of the image's own layers — never an absolute path,
 * never a path through "..", never a URL to fetch — and postprocessing is normalized as for a
 * GPUXfile (each entry names an existing output). Errors are one line naming the key. */
#include "spec/spec.h"
#include <stdio.h>

typedef struct {
  const gpux__spec *s;
  const char *const *titles;
  int n_titles;
} layers;

static int is_layer(const layers *L, const char *name) {
  for (int i = 0; i < L->n_titles; i++)
    if (!strcmp(L->titles[i], name)) return 1;
  return 0;
}

static int has_dotdot(const char *p) {
  for (const char *q = p; (q = strstr(q, "..")); q += 2)
    if ((q == p || q[-1] == '/') && (q[2] == 0 || q[2] == '/')) return 1;
  return 0;
}

/* `ref` (may be NULL) must name a layer: the file's title inside the image. */
static int check_file(const layers *L, const char *key, const char *ref) {
  if (!ref) return 0;
  const char *file = L->s->file;
  if (ref[0] == '/')
    return gpux__error(GPUX_E_INVALID, "%s: key '%s': '%s' is an absolute path; files of an image are its layers", file, key, ref);
  if (has_dotdot(ref))
    return gpux__error(GPUX_E_INVALID, "%s: key '%s': '%s' leaves the image's folder; files of an image are its layers", file, key, ref);
  if (!is_layer(L, ref)) {
    char list[512];
    size_t o = 0;
    list[0] = 0;
    for (int i = 0; i < L->n_titles && o < sizeof list; i++)
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", L->titles[i]);
    return gpux__error(GPUX_E_INVALID, "%s: key '%s': '%s' is not a layer of the image (layers: %s)", file, key, ref,
                       L->n_titles ? list : "none");
  }
  return 0;
}

static int check_model(const layers *L, const char *key, const gpux__spec_model *m) {
  if (m->kind != GPUX__SRC_FILE || !m->path)
    return gpux__error(GPUX_E_INVALID, "%s: key '%s': '%s' is not a file of the image; images carry their models as layers",
                       L->s->file, key, m->source ? m->source : "");
  return check_file(L, key, m->path);
}

static int check_io(const layers *L, const char *list, int i, const gpux__spec_io *io) {
  char key[96];
  snprintf(key, sizeof key, "%s[%d].labels", list, i);
  int rc = check_file(L, key, io->labels_file);
  if (rc || !io->example) return rc;
  /* build leaves example files out of the image, so an image or audio example must be a layer; a
   * text example is read as a file by the warm-up run when it names one, so it may not leave the
   * image's folder (inside it there are only the layers) */
  snprintf(key, sizeof key, "%s[%d].example", list, i);
  if (io->type == GPUX__IO_IMAGE || io->type == GPUX__IO_AUDIO || io->example[0] == '/' || has_dotdot(io->example))
    return check_file(L, key, io->example);
  return 0;
}

int gpux__spec_check_image(gpux__spec *s, const char *const *titles, int n_titles) {
  layers L = {s, titles, n_titles};
  char key[96];
  int rc = 0;
  if (s->has_model && (rc = check_model(&L, "model", &s->model))) return rc;
  for (int i = 0; i < s->pipeline.n_steps; i++) {
    snprintf(key, sizeof key, "pipeline.steps[%d].model", i);
    if ((rc = check_model(&L, key, &s->pipeline.steps[i].model))) return rc;
  }
  if (s->tokenizer.present && (rc = check_file(&L, "preprocessing.tokenizer.vocab", s->tokenizer.vocab))) return rc;
  for (int i = 0; i < s->n_post; i++) {
    char at[48] = "postprocessing";
    if (s->n_post > 1) snprintf(at, sizeof at, "postprocessing[%d]", i);
    snprintf(key, sizeof key, "%s.ctc.charset", at);
    if ((rc = check_file(&L, key, s->post[i].ctc_charset))) return rc;
    snprintf(key, sizeof key, "%s.labels", at);
    if ((rc = check_file(&L, key, s->post[i].labels_file))) return rc;
  }
  for (int i = 0; i < s->n_inputs; i++)
    if ((rc = check_io(&L, "inputs", i, &s->inputs[i]))) return rc;
  for (int i = 0; i < s->n_outputs; i++)
    if ((rc = check_io(&L, "outputs", i, &s->outputs[i]))) return rc;
  if (s->handler.present) {
    if (!s->handler.file) return gpux__error(GPUX_E_INVALID, "%s: key 'handler.file': missing", s->file);
    if ((rc = check_file(&L, "handler.file", s->handler.file))) return rc;
    if ((rc = check_file(&L, "handler.requirements", s->handler.requirements_file))) return rc;
  }
  return gpux__spec_check_post(s);
}
