/* hub.c — `gpux pull hf:OWNER/REPO[/FILE.onnx][@REVISION]` (gpux_pull_hub): an image made from a
 * Hugging Face model repository. The repository's GPUXfile, when it has one, is fetched with every
 * file it names (models, vocabulary, labels, charset, handler); otherwise its ONNX model (FILE, or
 * model.onnx, or onnx/model.onnx) is built as a bare model. Files come through the same fetch as
 * a GPUXfile's hf: sources ($HF_ENDPOINT/OWNER/REPO/resolve/REVISION/FILE, files.c) into
 * $GPUX_HOME/hub/OWNER/REPO/REVISION/, then gpux_build makes the image OWNER/REPO:REVISION (or
 * :latest for main), lower-cased. */
#include "app/app.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  char owner[128], repo[128], file[512], rev[128];
} hub_ref;

static int name_ok(const char *s, size_t n) {
  if (!n || n >= 128 || s[0] == '.' || s[0] == '-') return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
          s[i] == '_' || s[i] == '.'))
      return 0;
  return 1;
}

/* A path inside the repository: relative, no "..", no empty or hidden-parent parts. */
static int repo_path_ok(const char *p) {
  if (!*p || p[0] == '/' || strlen(p) >= 512) return 0;
  for (const char *s = p; *s;) {
    size_t n = strcspn(s, "/");
    if (!n || (n == 2 && !strncmp(s, "..", 2)) || (n == 1 && s[0] == '.')) return 0;
    s += n + (s[n] == '/');
  }
  return !strchr(p, '\\') && !strchr(p, '?') && !strchr(p, '#');
}

static int parse_ref(const char *ref, hub_ref *h) {
  memset(h, 0, sizeof *h);
  const char *bad = "is not hf:OWNER/REPO[/FILE.onnx][@REVISION]";
  if (strncmp(ref, "hf:", 3)) return gpux__error(GPUX_E_INVALID, "'%s' %s", ref, bad);
  const char *p = ref + 3, *at = strchr(p, '@');
  size_t plen = at ? (size_t)(at - p) : strlen(p);
  const char *s1 = memchr(p, '/', plen);
  if (!s1 || !name_ok(p, (size_t)(s1 - p))) return gpux__error(GPUX_E_INVALID, "'%s' %s", ref, bad);
  const char *r = s1 + 1, *s2 = memchr(r, '/', plen - (size_t)(r - p));
  size_t rl = s2 ? (size_t)(s2 - r) : plen - (size_t)(r - p);
  if (!name_ok(r, rl)) return gpux__error(GPUX_E_INVALID, "'%s' %s", ref, bad);
  snprintf(h->owner, sizeof h->owner, "%.*s", (int)(s1 - p), p);
  snprintf(h->repo, sizeof h->repo, "%.*s", (int)rl, r);
  if (s2) {
    snprintf(h->file, sizeof h->file, "%.*s", (int)(plen - (size_t)(s2 + 1 - p)), s2 + 1);
    if (!repo_path_ok(h->file)) return gpux__error(GPUX_E_INVALID, "'%s': '%s' is not a file of the repository", ref, h->file);
  }
  snprintf(h->rev, sizeof h->rev, "%s", at ? at + 1 : "main");
  if (!name_ok(h->rev, strlen(h->rev))) return gpux__error(GPUX_E_INVALID, "'%s': revision '%s' is not a branch, tag or commit", ref, h->rev);
  return 0;
}

static int mkdirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return gpux__error(GPUX_E_IO, "%s: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) < 0 && errno != EEXIST) return gpux__error(GPUX_E_IO, "%s: %s", buf, strerror(errno));
  return 0;
}

static int copy_file(const char *from, const char *to) {
  char *data;
  size_t len;
  int rc = gpux__app_read_file(from, &data, &len);
  if (rc) return rc;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.part", to);
  FILE *f = fopen(tmp, "wb");
  if (!f) { free(data); return gpux__error(GPUX_E_IO, "%s: %s", tmp, strerror(errno)); }
  int bad = fwrite(data, 1, len, f) != len;
  bad |= fclose(f) != 0;
  free(data);
  if (bad || rename(tmp, to) < 0) { unlink(tmp); return gpux__error(GPUX_E_IO, "%s: cannot write", to); }
  return 0;
}

/* Fetches the repository's `file` into dir/file. GPUX_E_NOTFOUND (no message kept) when the
 * repository has no such file. */
static int fetch(gpux_store *st, const hub_ref *h, const char *file, const char *dir) {
  char source[1024], cached[4096], dest[4096];
  snprintf(source, sizeof source, "hf:%s/%s/%s@%s", h->owner, h->repo, file, h->rev);
  gpux__spec_model m = {.source = source, .kind = GPUX__SRC_HF};
  int rc = gpux__fetch_source(st, &m, cached, sizeof cached);
  if (rc) return rc;
  snprintf(dest, sizeof dest, "%s/%s", dir, file);
  char *slash = strrchr(dest, '/');
  *slash = 0;
  rc = mkdirs(dest);
  *slash = '/';
  return rc ? rc : copy_file(cached, dest);
}

/* Fetches a file a GPUXfile names, when it is a path inside the repository. */
static int fetch_named(gpux_store *st, const hub_ref *h, const char *file, const char *dir, const char *key) {
  if (!file || !*file) return 0;
  const char *f = !strncmp(file, "./", 2) ? file + 2 : file;
  if (strstr(f, "://") || !strncmp(f, "hf:", 3)) return 0;   /* fetched by build itself */
  if (!repo_path_ok(f))
    return gpux__error(GPUX_E_INVALID, "hf:%s/%s: its GPUXfile's %s '%s' is not a file of the repository", h->owner, h->repo, key, file);
  int rc = fetch(st, h, f, dir);
  return rc ? gpux__error_prefix(rc, "hf:%s/%s: its GPUXfile's %s: ", h->owner, h->repo, key) : 0;
}

static int fetch_spec_files(gpux_store *st, const hub_ref *h, const gpux__spec *s, const char *dir) {
  int rc = 0;
  if (s->has_model && s->model.kind == GPUX__SRC_FILE) rc = fetch_named(st, h, s->model.source, dir, "model");
  for (int i = 0; i < s->pipeline.n_steps && !rc; i++)
    if (s->pipeline.steps[i].model.kind == GPUX__SRC_FILE) rc = fetch_named(st, h, s->pipeline.steps[i].model.source, dir, "pipeline model");
  if (!rc && s->tokenizer.present) rc = fetch_named(st, h, s->tokenizer.vocab, dir, "tokenizer");
  for (int i = 0; i < s->n_post && !rc; i++) {
    if (!(rc = fetch_named(st, h, s->post[i].labels_file, dir, "labels"))) rc = fetch_named(st, h, s->post[i].ctc_charset, dir, "charset");
  }
  for (int i = 0; i < s->n_inputs + s->n_outputs && !rc; i++) {
    const gpux__spec_io *io = i < s->n_inputs ? &s->inputs[i] : &s->outputs[i - s->n_inputs];
    rc = fetch_named(st, h, io->labels_file, dir, "labels");
  }
  if (!rc && s->handler.present) {
    if (!(rc = fetch_named(st, h, s->handler.file, dir, "handler")))
      rc = fetch_named(st, h, s->handler.requirements_file, dir, "requirements");
  }
  return rc;
}

int gpux_pull_hub(gpux_store *st, const char *ref, const gpux_build_options *o, char **summary_json) {
  if (summary_json) *summary_json = NULL;
  hub_ref h;
  int rc = parse_ref(ref, &h);
  if (rc) return rc;
  char dir[4096], path[4200], tag[600];
  snprintf(dir, sizeof dir, "%s/hub/%s/%s/%s", gpux_store_path(st), h.owner, h.repo, h.rev);
  if ((rc = mkdirs(dir))) return rc;
  /* a GPUXfile, unless a model file was named */
  int have_gpuxfile = 0;
  if (!h.file[0]) {
    rc = fetch(st, &h, "GPUXfile", dir);
    if (!rc) have_gpuxfile = 1;
    else if (rc != GPUX_E_NOTFOUND) { /* the first request: most likely the hub cannot be reached */
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", gpux_last_error());
      return gpux__error(rc, "%s: %s (the hub's address is $HF_ENDPOINT, default https://huggingface.co)", ref, msg);
    }
    rc = 0;
  }
  if (have_gpuxfile) {
    gpux__spec *s;
    snprintf(path, sizeof path, "%s/GPUXfile", dir);
    if ((rc = gpux__spec_parse_file(path, NULL, &s))) return gpux__error_prefix(rc, "%s: ", ref);
    rc = fetch_spec_files(st, &h, s, dir);
    gpux__spec_free(s);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s", dir);
  } else {
    const char *tries[] = {h.file, "model.onnx", "onnx/model.onnx"};
    int first = h.file[0] ? 0 : 1, last = h.file[0] ? 0 : 2, got = -1;
    for (int i = first; i <= last && got < 0; i++) {
      rc = fetch(st, &h, tries[i], dir);
      if (!rc) got = i;
      else if (rc != GPUX_E_NOTFOUND) return gpux__error_prefix(rc, "%s: ", ref);
    }
    if (got < 0)
      return gpux__error(GPUX_E_NOTFOUND, "%s: the repository has %s (looked for %s)", ref,
                         h.file[0] ? "no such file" : "no GPUXfile and no ONNX model",
                         h.file[0] ? h.file : "GPUXfile, model.onnx, onnx/model.onnx");
    snprintf(path, sizeof path, "%s/%s", dir, tries[got]);
  }
  /* OWNER/REPO:REVISION, as a reference can spell it */
  size_t n = (size_t)snprintf(tag, sizeof tag, "%s/%s:%s", h.owner, h.repo, strcmp(h.rev, "main") ? h.rev : "latest");
  for (size_t i = 0; i < n; i++) {
    if (tag[i] >= 'A' && tag[i] <= 'Z') tag[i] = (char)(tag[i] - 'A' + 'a');
  }
  gpux_build_options bo = o ? *o : (gpux_build_options){0};
  if (!bo.tag || !*bo.tag) bo.tag = tag;
  return gpux_build(st, path, &bo, summary_json);
}
