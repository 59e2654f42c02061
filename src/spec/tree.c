/* tree.c — builds the GPUXfile document tree (tree.h) from YAML with libyaml's document loader,
 * or from a cJSON value, keeping line numbers for messages. Aliases are expanded; depth and size
 * are bounded so that a hostile file (recursive or exponential aliases) is an error, not a hang. */
#include "spec/tree.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_NODES 200000

typedef struct {
  gpux__arena *a;
  yaml_document_t *doc;
  const char *file;
  long count;
} yaml_ctx;

static int too_big(const char *file, int line) {
  return gpux__error(GPUX_E_PARSE, "%s:%d: the document is nested too deeply or too large (aliases?)",
                     file, line);
}

typedef struct {
  const char *key;
  int line;
} key_at;

static int cmp_key_at(const void *a, const void *b) {
  const key_at *x = a, *y = b;
  int d = strcmp(x->key, y->key);
  return d ? d : (x->line > y->line) - (x->line < y->line);
}

/* A key given twice in one mapping is an error naming both lines (sorted, not pairwise: a
 * mapping of 300k keys once took quadratic time). */
static int check_duplicates(yaml_ctx *c, const char *const *keys, const int *lines, int n) {
  if (n < 2) return 0;
  key_at *k = malloc(sizeof *k * (size_t)n);
  if (!k) return GPUX_E_NOMEM;
  for (int i = 0; i < n; i++) k[i] = (key_at){keys[i], lines[i]};
  qsort(k, (size_t)n, sizeof *k, cmp_key_at);
  int rc = 0, second = -1;
  for (int i = 1; i < n; i++) /* report the earliest second occurrence */
    if (!strcmp(k[i].key, k[i - 1].key) && (second < 0 || k[i].line < k[second].line)) second = i;
  if (second >= 0) {
    int first = second - 1;
    while (first > 0 && !strcmp(k[first - 1].key, k[second].key)) first--;
    rc = gpux__error(GPUX_E_PARSE, "%s:%d: key '%s': given twice (first on line %d)", c->file, k[second].line,
                     k[second].key, k[first].line);
  }
  free(k);
  return rc;
}

static int from_yaml_node(yaml_ctx *c, yaml_node_t *yn, int depth, gpux__snode **out) {
  int line = (int)yn->start_mark.line + 1;
  if (depth > MAX_DEPTH || ++c->count > MAX_NODES) return too_big(c->file, line);
  gpux__snode *n = gpux__arena_alloc(c->a, sizeof *n);
  if (!n) return GPUX_E_NOMEM;
  n->line = line;
  switch (yn->type) {
  case YAML_SCALAR_NODE:
    n->kind = GPUX__SN_SCALAR;
    n->str = gpux__arena_strndup(c->a, (const char *)yn->data.scalar.value, yn->data.scalar.length);
    if (!n->str) return GPUX_E_NOMEM;
    if (strlen(n->str) != yn->data.scalar.length)
      return gpux__error(GPUX_E_PARSE, "%s:%d: a value contains a NUL character", c->file, line);
    n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    break;
  case YAML_SEQUENCE_NODE: {
    n->kind = GPUX__SN_LIST;
    int cnt = (int)(yn->data.sequence.items.top - yn->data.sequence.items.start);
    n->items = gpux__arena_alloc(c->a, sizeof *n->items * (size_t)(cnt + 1));
    if (!n->items) return GPUX_E_NOMEM;
    for (int i = 0; i < cnt; i++) {
      yaml_node_t *child = yaml_document_get_node(c->doc, yn->data.sequence.items.start[i]);
      if (!child) return gpux__error(GPUX_E_PARSE, "%s:%d: broken list", c->file, line);
      int rc = from_yaml_node(c, child, depth + 1, &n->items[i]);
      if (rc) return rc;
    }
    n->n = cnt;
    break;
  }
  case YAML_MAPPING_NODE: {
    n->kind = GPUX__SN_MAP;
    int cnt = (int)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
    n->items = gpux__arena_alloc(c->a, sizeof *n->items * (size_t)(cnt + 1));
    n->keys = gpux__arena_alloc(c->a, sizeof *n->keys * (size_t)(cnt + 1));
    n->key_lines = gpux__arena_alloc(c->a, sizeof *n->key_lines * (size_t)(cnt + 1));
    if (!n->items || !n->keys || !n->key_lines) return GPUX_E_NOMEM;
    if (cnt > MAX_NODES - c->count) return too_big(c->file, line);
    for (int i = 0; i < cnt; i++) { /* keys first, checked for duplicates in O(n log n) */
      yaml_node_pair_t *p = &yn->data.mapping.pairs.start[i];
      yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
      if (!k) return gpux__error(GPUX_E_PARSE, "%s:%d: broken mapping", c->file, line);
      int kline = (int)k->start_mark.line + 1;
      if (k->type != YAML_SCALAR_NODE)
        return gpux__error(GPUX_E_PARSE, "%s:%d: a key must be a plain name, not a list or mapping", c->file, kline);
      n->keys[i] = gpux__arena_strndup(c->a, (const char *)k->data.scalar.value, k->data.scalar.length);
      if (!n->keys[i]) return GPUX_E_NOMEM;
      n->key_lines[i] = kline;
    }
    int rc = check_duplicates(c, n->keys, n->key_lines, cnt);
    if (rc) return rc;
    for (int i = 0; i < cnt; i++) {
      yaml_node_t *v = yaml_document_get_node(c->doc, yn->data.mapping.pairs.start[i].value);
      if (!v) return gpux__error(GPUX_E_PARSE, "%s:%d: broken mapping", c->file, line);
      if ((rc = from_yaml_node(c, v, depth + 1, &n->items[i]))) return rc;
      n->n = i + 1;
    }
    n->n = cnt;
    break;
  }
  default:
    return gpux__error(GPUX_E_PARSE, "%s:%d: empty node", c->file, line);
  }
  *out = n;
  return 0;
}

/* Flow collections ([ and {) and "- " sequence entries on one line nest without limit in
 * libyaml, which takes minutes on 200k of them before the tree's depth cap is reached: the text
 * is scanned for them first (outside quotes and comments). */
static int check_nesting(const char *text, size_t len, const char *file) {
  int depth = 0, line = 1, dashes = 0, at_line_start = 1;
  char quote = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = text[i];
    if (ch == '\n') { line++, dashes = 0, at_line_start = 1; if (quote == '#') quote = 0; continue; }
    if (quote == '#') continue;
    if (quote) {
      if (ch == '\\' && quote == '"' && i + 1 < len) i++;
      else if (ch == quote) quote = 0;
      continue;
    }
    if (at_line_start && ch == '-' && (i + 1 == len || text[i + 1] == ' ')) {
      if (++dashes > MAX_DEPTH) break;
      continue;
    }
    if (ch != ' ') at_line_start = 0;
    if (ch == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\n')) quote = '#';
    else if ((ch == '"' || ch == '\'') && (i == 0 || strchr(" \n[{,:-", text[i - 1]))) quote = ch; /* a quoted scalar starts */
    else if ((ch == '[' || ch == '{') && ++depth > MAX_DEPTH) break;
    else if ((ch == ']' || ch == '}') && depth > 0) depth--;
  }
  if (depth > MAX_DEPTH || dashes > MAX_DEPTH)
    return gpux__error(GPUX_E_PARSE, "%s:%d: nested more than %d deep", file, line, MAX_DEPTH);
  return 0;
}

int gpux__tree_from_yaml(gpux__arena *a, const char *text, size_t len, const char *file,
                         gpux__snode **root) {
  *root = NULL;
  int nest = check_nesting(text, len, file);
  if (nest) return nest;
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) return gpux__error(GPUX_E_NOMEM, "out of memory (yaml)");
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
  if (!yaml_parser_load(&parser, &doc)) {
    int line = (int)(parser.problem_mark.line + 1);
    if (parser.error == YAML_MEMORY_ERROR) line = 0;
    char ctx[128] = "";
    if (parser.context) snprintf(ctx, sizeof ctx, " %s", parser.context);
    int rc = gpux__error(GPUX_E_PARSE, "%s:%d: not valid YAML: %s%s", file, line,
                         parser.problem ? parser.problem : "syntax error", ctx);
    yaml_parser_delete(&parser);
    return rc;
  }
  yaml_node_t *top = yaml_document_get_root_node(&doc);
  int rc;
  if (!top) {
    rc = gpux__error(GPUX_E_PARSE, "%s:1: the file is empty (the least it needs is `model: ./model.onnx`)", file);
  } else {
    yaml_ctx c = {a, &doc, file, 0};
    rc = from_yaml_node(&c, top, 0, root);
  }
  yaml_document_delete(&doc);
  if (!rc) { /* a second document ("---") would be silently ignored: a GPUXfile holds one */
    yaml_document_t next;
    if (!yaml_parser_load(&parser, &next)) {
      rc = gpux__error(GPUX_E_PARSE, "%s:%d: not valid YAML after the first document: %s", file,
                       (int)(parser.problem_mark.line + 1), parser.problem ? parser.problem : "syntax error");
    } else {
      yaml_node_t *second = yaml_document_get_root_node(&next);
      if (second)
        rc = gpux__error(GPUX_E_PARSE, "%s:%d: a second YAML document; a GPUXfile holds one", file,
                         (int)second->start_mark.line + 1);
      yaml_document_delete(&next);
    }
    if (rc) *root = NULL;
  }
  yaml_parser_delete(&parser);
  return rc;
}

static int from_json_node(gpux__arena *a, const cJSON *j, int depth, gpux__snode **out) {
  if (depth > MAX_DEPTH) return gpux__error(GPUX_E_PARSE, "image config: nested too deeply");
  gpux__snode *n = gpux__arena_alloc(a, sizeof *n);
  if (!n) return GPUX_E_NOMEM;
  char num[64];
  if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
    int cnt = cJSON_GetArraySize(j);
    n->kind = cJSON_IsObject(j) ? GPUX__SN_MAP : GPUX__SN_LIST;
    n->items = gpux__arena_alloc(a, sizeof *n->items * (size_t)(cnt + 1));
    n->keys = gpux__arena_alloc(a, sizeof *n->keys * (size_t)(cnt + 1));
    n->key_lines = gpux__arena_alloc(a, sizeof *n->key_lines * (size_t)(cnt + 1));
    if (!n->items || !n->keys || !n->key_lines) return GPUX_E_NOMEM;
    const cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, j) {
      if (n->kind == GPUX__SN_MAP) n->keys[i] = c->string ? c->string : "";
      int rc = from_json_node(a, c, depth + 1, &n->items[i]);
      if (rc) return rc;
      i++;
    }
    n->n = i;
  } else {
    n->kind = GPUX__SN_SCALAR;
    n->plain = 1;
    if (cJSON_IsString(j)) {
      n->str = j->valuestring;
      n->plain = 0;
    } else if (cJSON_IsNumber(j)) {
      double v = j->valuedouble;
      if (v > -9e15 && v < 9e15 && v == (double)(int64_t)v) snprintf(num, sizeof num, "%lld", (long long)v); /* range first: the cast is undefined outside it */
      else snprintf(num, sizeof num, "%.9g", v);
      n->str = num;
    } else if (cJSON_IsRaw(j)) {
      n->str = j->valuestring;
    } else if (cJSON_IsBool(j)) {
      n->str = cJSON_IsTrue(j) ? "true" : "false";
    } else {
      n->str = "null";
    }
    n->str = gpux__arena_strndup(a, n->str, strlen(n->str));
    if (!n->str) return GPUX_E_NOMEM;
  }
  *out = n;
  return 0;
}

int gpux__tree_from_json(gpux__arena *a, const cJSON *json, gpux__snode **root) {
  *root = NULL;
  if (!json) return gpux__error(GPUX_E_PARSE, "image config: no spec");
  return from_json_node(a, json, 0, root);
}

gpux__snode *gpux__tree_get(const gpux__snode *map, const char *key, int *line) {
  if (!map || map->kind != GPUX__SN_MAP) return NULL;
  for (int i = 0; i < map->n; i++)
    if (!strcmp(map->keys[i], key)) {
      if (line) *line = map->key_lines[i] ? map->key_lines[i] : map->items[i]->line;
      return map->items[i];
    }
  return NULL;
}

int gpux__tree_is_null(const gpux__snode *n) {
  if (!n) return 1;
  if (n->kind != GPUX__SN_SCALAR || !n->plain) return 0;
  return !n->str[0] || !strcmp(n->str, "~") || !strcmp(n->str, "null") || !strcmp(n->str, "Null") ||
         !strcmp(n->str, "NULL");
}
