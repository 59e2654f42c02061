/* format.c — how the verbs that list things (list, ps) print their rows, the way docker's do: a
 * table for people, JSON for programs, only the identifiers with -q, or one line per row from a
 * template such as '{{.Name}}:{{.Tag}}\t{{.Size}}'. Rows are JSON objects; a template field
 * names an object key, matched without regard to case or underscores ({{.UptimeS}} is uptime_s). */
#include "cli.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <string.h>

int cli_format_parse(const char *arg, cli_format *f) {
  if (!strcmp(arg, "json")) f->kind = CLI_FORMAT_JSON;
  else if (!strcmp(arg, "table")) f->kind = CLI_FORMAT_TABLE;
  else if (strstr(arg, "{{")) { f->kind = CLI_FORMAT_TEMPLATE; f->tmpl = arg; }
  else {
    cli_error(0, "--format '%s': expected json, table or a template such as '{{.Name}}'", arg);
    return -1;
  }
  return 0;
}

/* Key names compare equal when they differ only in case and underscores. */
static int key_equal(const char *key, const char *field, size_t field_len) {
  size_t i = 0;
  for (; *key; key++) {
    if (*key == '_') continue;
    while (i < field_len && field[i] == '_') i++;
    if (i == field_len || tolower((unsigned char)*key) != tolower((unsigned char)field[i])) return 0;
    i++;
  }
  while (i < field_len && field[i] == '_') i++;
  return i == field_len;
}

static void print_value(const cJSON *v, FILE *out) {
  if (cJSON_IsString(v)) fputs(v->valuestring, out);
  else if (cJSON_IsNumber(v)) {
    if (v->valuedouble == (double)(long long)v->valuedouble) fprintf(out, "%lld", (long long)v->valuedouble);
    else fprintf(out, "%g", v->valuedouble);
  } else if (cJSON_IsBool(v)) fputs(cJSON_IsTrue(v) ? "true" : "false", out);
  else if (cJSON_IsArray(v)) {
    const cJSON *e;
    int first = 1;
    cJSON_ArrayForEach(e, v) {
      if (!first) fputc(',', out);
      print_value(e, out);
      first = 0;
    }
  }
}

/* Checks every {{.Field}} of the template against a row's keys before anything is printed. */
static int format_check(const char *tmpl, const cJSON *row) {
  for (const char *p = tmpl; (p = strstr(p, "{{")); ) {
    const char *end = strstr(p, "}}");
    const char *f = p + 2;
    while (f < end && *f == ' ') f++;
    size_t len = end ? (size_t)(end - f) : 0;
    while (len && f[len - 1] == ' ') len--;
    if (!end || len < 2 || f[0] != '.') {
      cli_error(0, "--format: '%.*s' is not a field reference such as {{.Name}}", end ? (int)(end - p + 2) : (int)strlen(p), p);
      return -1;
    }
    const cJSON *k;
    int found = 0;
    cJSON_ArrayForEach(k, row) found |= key_equal(k->string, f + 1, len - 1);
    if (!found) {
      char keys[512] = "";
      size_t o = 0;
      cJSON_ArrayForEach(k, row) o += (size_t)snprintf(keys + o, o < sizeof keys ? sizeof keys - o : 0, "%s.%s", o ? ", " : "", k->string);
      cli_error(0, "--format: unknown field '%.*s' (fields: %s)", (int)len, f, keys);
      return -1;
    }
    p = end + 2;
  }
  return 0;
}

static void format_row(const char *tmpl, const cJSON *row, FILE *out) {
  for (const char *p = tmpl; *p;) {
    if (p[0] == '\\' && (p[1] == 't' || p[1] == 'n')) {
      fputc(p[1] == 't' ? '\t' : '\n', out);
      p += 2;
    } else if (p[0] == '{' && p[1] == '{' && strstr(p, "}}")) {
      const char *end = strstr(p, "}}"), *f = p + 2;
      while (f < end && *f == ' ') f++;
      size_t len = (size_t)(end - f);
      while (len && f[len - 1] == ' ') len--;
      const cJSON *k;
      if (len > 1 && f[0] == '.')
        cJSON_ArrayForEach(k, row) if (key_equal(k->string, f + 1, len - 1)) { print_value(k, out); break; }
      p = end + 2;
    } else {
      fputc(*p++, out);
    }
  }
  fputc('\n', out);
}

int cli_format_print(const cli_format *f, const cJSON *rows, const char *id_key, FILE *out) {
  const cJSON *row;
  if (f->kind == CLI_FORMAT_JSON) {
    char *t = cJSON_PrintUnformatted(rows);
    fputs(t ? t : "[]", out);
    fputc('\n', out);
    cJSON_free(t);
  } else if (f->kind == CLI_FORMAT_QUIET) {
    cJSON_ArrayForEach(row, rows) {
      print_value(cJSON_GetObjectItem(row, id_key), out);
      fputc('\n', out);
    }
  } else if (f->kind == CLI_FORMAT_TEMPLATE) {
    if (cJSON_GetArraySize(rows) > 0 && format_check(f->tmpl, cJSON_GetArrayItem(rows, 0))) return -1;
    cJSON_ArrayForEach(row, rows) format_row(f->tmpl, row, out);
  }
  return 0;
}
