/* test-spec-doc.c — docs/gpuxfile.md describes every key the GPUXfile parser accepts: each dotted
 * path from gpux__spec_known_keys (the parser's own key tables) must be the first cell of a row
 * in one of the page's `| key |` tables, or a heading; and each row of those tables must name a
 * key the parser knows, so the page can neither miss a key nor keep one that is gone. Every
 * ```yaml example on the page must parse (a fragment without a model gets `model: m.onnx`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "spec/spec.h"

/* The repository's docs/gpuxfile.md, found from this file's path (tests/unit/). */
static char *read_reference(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s", __FILE__);
  char *cut = strstr(path, "tests/unit/test-spec-doc.c");
  assert_non_null(cut);
  snprintf(cut, sizeof path - (size_t)(cut - path), "docs/gpuxfile.md");
  FILE *f = fopen(path, "rb");
  if (!f) fprintf(stderr, "cannot open %s\n", path);
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
  text[n] = 0;
  fclose(f);
  return text;
}

/* The keys the page describes: the first cells of the rows of its `| key |` tables (without the
 * backticks), and its headings' text. */
typedef struct {
  char **rows;
  int n_rows;
  char **headings;
  int n_headings;
} described;

static char *dup_range(const char *s, size_t n) {
  char *d = malloc(n + 1);
  assert_non_null(d);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

static void collect(char *text, described *d) {
  int in_key_table = 0;
  d->rows = calloc(4096, sizeof *d->rows);
  d->headings = calloc(1024, sizeof *d->headings);
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') {
      const char *h = line + strspn(line, "# ");
      size_t n = strlen(h);
      if (h[0] == '`' && n > 1 && h[n - 1] == '`') h++, n -= 2;
      if (d->n_headings < 1024) d->headings[d->n_headings++] = dup_range(h, n);
      in_key_table = 0;
      continue;
    }
    if (line[0] != '|') { in_key_table = 0; continue; }
    if (!strncmp(line, "| key |", 7)) { in_key_table = 1; continue; }
    if (!in_key_table || !strncmp(line, "|---", 4)) continue;
    const char *cell = line + 1 + strspn(line + 1, " ");
    const char *end = strchr(cell, '|');
    assert_non_null(end);
    while (end > cell && end[-1] == ' ') end--;
    if (!(cell[0] == '`' && end - cell > 2 && end[-1] == '`')) {
      fprintf(stderr, "docs/gpuxfile.md: a key table row whose first cell is not a `key`: %s\n", line);
      fail();
    }
    assert_true(d->n_rows < 4096);
    d->rows[d->n_rows++] = dup_range(cell + 1, (size_t)(end - cell - 2));
  }
}

static int listed(char **list, int n, const char *s) {
  for (int i = 0; i < n; i++) if (!strcmp(list[i], s)) return 1;
  return 0;
}

typedef struct {
  const described *d;
  char **known;
  int n_known, missing;
} walk;

static void check_key(const char *path, void *ctx) {
  walk *w = ctx;
  w->known[w->n_known++] = strdup(path);
  if (listed(w->d->rows, w->d->n_rows, path) || listed(w->d->headings, w->d->n_headings, path)) return;
  fprintf(stderr, "docs/gpuxfile.md does not describe the key '%s' (add a `| `%s` | ... |` row)\n", path, path);
  w->missing++;
}

static void test_reference_covers_every_key(void **state) {
  (void)state;
  char *text = read_reference();
  described d = {0};
  collect(text, &d);
  int n = gpux__spec_known_keys(NULL, NULL);
  assert_true(n > 100);          /* the tables are all there (there are ~120 keys) */
  walk w = {&d, calloc((size_t)n, sizeof(char *)), 0, 0};
  assert_int_equal(gpux__spec_known_keys(check_key, &w), n);
  assert_int_equal(w.n_known, n);
  /* paths as the page writes them: lists as [], nested mappings dotted */
  assert_true(listed(w.known, w.n_known, "runtime.gpu.memory"));
  assert_true(listed(w.known, w.n_known, "inputs[].example"));
  assert_true(listed(w.known, w.n_known, "pipeline.steps[].model.sha256"));
  assert_true(listed(w.known, w.n_known, "preprocessing.image.resize.min_width"));
  int stale = 0;
  for (int i = 0; i < d.n_rows; i++)
    if (!listed(w.known, w.n_known, d.rows[i])) {
      fprintf(stderr, "docs/gpuxfile.md describes '%s', which the parser does not accept\n", d.rows[i]);
      stale++;
    }
  assert_int_equal(w.missing, 0);
  assert_int_equal(stale, 0);
  for (int i = 0; i < w.n_known; i++) free(w.known[i]);
  for (int i = 0; i < d.n_rows; i++) free(d.rows[i]);
  for (int i = 0; i < d.n_headings; i++) free(d.headings[i]);
  free(w.known);
  free(d.rows);
  free(d.headings);
  free(text);
}

/* Every ```yaml block parses; a fragment (no top-level model or pipeline) is parsed after a
 * `model:` line. */
static void test_reference_examples_parse(void **state) {
  (void)state;
  char *text = read_reference();
  int n_blocks = 0;
  for (char *p = strstr(text, "\n```yaml\n"); p; p = strstr(p, "\n```yaml\n")) {
    char *body = p + 9, *end = strstr(body, "\n```");
    assert_non_null(end);
    size_t len = (size_t)(end - body) + 1;
    char *block = dup_range(body, len), *yaml = malloc(len + 32);
    assert_non_null(yaml);
    int has_model = !strncmp(block, "model:", 6) || strstr(block, "\nmodel:") || !strncmp(block, "pipeline:", 9) ||
                    strstr(block, "\npipeline:");
    snprintf(yaml, len + 32, "%s%s", has_model ? "" : "model: m.onnx\n", block);
    free(block);
    gpux__spec *sp = NULL;
    int rc = gpux__spec_parse_yaml(yaml, strlen(yaml), "docs/gpuxfile.md example", ".", &sp);
    if (rc) fprintf(stderr, "example %d does not parse: %s\n%s", n_blocks + 1, gpux_last_error(), yaml);
    assert_int_equal(rc, 0);
    gpux__spec_free(sp);
    free(yaml);
    n_blocks++;
    p = end;
  }
  assert_true(n_blocks >= 10);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_reference_covers_every_key),
    cmocka_unit_test(test_reference_examples_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
