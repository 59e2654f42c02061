/* images.c — the local store's bookkeeping verbs: `gpux list` (alias `images`), `gpux rm NAME...`
 * and `gpux tag SRC DST`. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int open_store(gpux_store **st) {
  int rc = gpux_store_open(NULL, st);
  if (rc) cli_error(rc, "cannot open the image store");
  return rc;
}

static void human_size(double b, char *buf, size_t len) {
  const char *u[] = {"B", "kB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4) { b /= 1000; i++; }
  snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

/* "2025-01-02T03:04:05Z" -> "5 minutes ago" */
static void age(const char *created, char *buf, size_t len) {
  struct tm tm = {0};
  if (!created || !strptime(created, "%Y-%m-%dT%H:%M:%SZ", &tm)) { snprintf(buf, len, "-"); return; }
  double d = difftime(time(NULL), timegm(&tm));
  if (d < 60) snprintf(buf, len, "%s", d < 2 ? "just now" : "seconds ago");
  else if (d < 3600) snprintf(buf, len, "%d minute%s ago", (int)(d / 60), (int)(d / 60) == 1 ? "" : "s");
  else if (d < 86400) snprintf(buf, len, "%d hour%s ago", (int)(d / 3600), (int)(d / 3600) == 1 ? "" : "s");
  else snprintf(buf, len, "%d day%s ago", (int)(d / 86400), (int)(d / 86400) == 1 ? "" : "s");
}

static void list_usage(FILE *f) {
  fprintf(f, "usage: gpux list [-q] [--format json|table|TEMPLATE] [--json]   (also: gpux images)\n\n"
             "Lists the images in the local store ($GPUX_HOME, default ~/.gpux), newest first: name,\n"
             "tag, digest, size and age.\n"
             "  -q, --quiet        only the image digests (short form), one per line\n"
             "  --format json      [{\"name\",\"tag\",\"digest\",\"size\",\"created\"}] (also --json)\n"
             "  --format TEMPLATE  one line per image, e.g. '{{.Name}}:{{.Tag}}\\t{{.Size}}'\n");
}

/* Newest first: "created" is an ISO-8601 UTC time, so the strings sort as the times do. */
static int newer(const cJSON *a, const cJSON *b) {
  const char *x = cJSON_GetStringValue(cJSON_GetObjectItem(a, "created"));
  const char *y = cJSON_GetStringValue(cJSON_GetObjectItem(b, "created"));
  return strcmp(x ? x : "", y ? y : "") > 0;
}

int cmd_list(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"quiet", no_argument, 0, 'q'},
                                       {"format", required_argument, 0, 'f'}, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  cli_format fmt = {CLI_FORMAT_TABLE, NULL};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
    if (c == 'j') fmt.kind = CLI_FORMAT_JSON;
    else if (c == 'q') fmt.kind = CLI_FORMAT_QUIET;
    else if (c == 'f') { if (cli_format_parse(optarg, &fmt)) return EXIT_USAGE; }
    else if (c == 'h') { list_usage(stdout); return EXIT_OK; }
    else return cli_bad_option("list", argv, c);
  }
  if (optind < argc) {
    cli_error(0, "list: unexpected '%s' (see gpux list --help)", argv[optind]);
    return EXIT_USAGE;
  }
  gpux_store *st;
  if (open_store(&st)) return EXIT_RUNTIME;
  char *out = NULL;
  int rc = gpux_store_list(st, &out);
  gpux_store_close(st);
  if (rc) { cli_error(rc, "cannot list images"); return cli_exit_code(rc); }
  cJSON *a = cJSON_Parse(out), *e;
  gpux_free(out);
  if (!a) { cli_error(0, "the store's image list is not valid JSON"); return EXIT_RUNTIME; }
  /* newest first, as docker lists images: the store lists oldest first, so its order reversed
   * and then a stable insertion sort by time keeps images of the same second newest first */
  int n = cJSON_GetArraySize(a), i = 0;
  cJSON **rows = calloc((size_t)n + 1, sizeof *rows);
  cJSON *sorted = cJSON_CreateArray();
  if (!rows || !sorted) { free(rows); cJSON_Delete(a); cJSON_Delete(sorted); cli_error(GPUX_E_NOMEM, "list"); return EXIT_RUNTIME; }
  for (i = n - 1; i >= 0; i--) rows[i] = cJSON_DetachItemViaPointer(a, a->child);
  for (i = 1; i < n; i++)
    for (int j = i; j > 0 && newer(rows[j], rows[j - 1]); j--) {
      cJSON *t = rows[j];
      rows[j] = rows[j - 1];
      rows[j - 1] = t;
    }
  for (i = 0; i < n; i++) {
    const char *d = cJSON_GetStringValue(cJSON_GetObjectItem(rows[i], "digest"));
    char id[16] = "";
    if (d && strlen(d) > 19) snprintf(id, sizeof id, "%.12s", d + 7); /* after "sha256:" */
    cJSON_AddStringToObject(rows[i], "id", id);
    cJSON_AddItemToArray(sorted, rows[i]);
  }
  free(rows);
  cJSON_Delete(a);
  if (fmt.kind == CLI_FORMAT_QUIET) { /* one id per image, as docker images -q */
    cJSON *seen = cJSON_CreateArray();
    cJSON_ArrayForEach(e, sorted) {
      const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(e, "id"));
      const cJSON *s;
      int dup = 0;
      cJSON_ArrayForEach(s, seen) dup |= !strcmp(s->valuestring, id);
      if (!dup) { cJSON_AddItemToArray(seen, cJSON_CreateString(id)); puts(id); }
    }
    cJSON_Delete(seen);
  } else if (fmt.kind != CLI_FORMAT_TABLE) {
    if (fmt.kind == CLI_FORMAT_JSON) /* the store's own fields only */
      cJSON_ArrayForEach(e, sorted) cJSON_DeleteItemFromObject(e, "id");
    rc = cli_format_print(&fmt, sorted, "id", stdout);
  } else {
    printf("%-30s %-12s %-14s %-10s %s\n", "NAME", "TAG", "DIGEST", "SIZE", "CREATED");
    cJSON_ArrayForEach(e, sorted) {
      char size[32], when[64];
      human_size(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "size")), size, sizeof size);
      age(cJSON_GetStringValue(cJSON_GetObjectItem(e, "created")), when, sizeof when);
      /* a tag longer than its column (an image pulled by digest: sha256-HEX) is shortened */
      const char *tag = cJSON_GetStringValue(cJSON_GetObjectItem(e, "tag"));
      char tag_col[64];
      if (tag && strlen(tag) > 12) snprintf(tag_col, sizeof tag_col, "%.11s~", tag);
      else snprintf(tag_col, sizeof tag_col, "%s", tag ? tag : "");
      printf("%-30s %-12s %-14s %-10s %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")), tag_col,
             cJSON_GetStringValue(cJSON_GetObjectItem(e, "id")), size, when);
    }
  }
  cJSON_Delete(sorted);
  return rc ? EXIT_USAGE : EXIT_OK;
}

int cmd_rm(int argc, char **argv) {
  static const struct option opts[] = {{"force", no_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int force = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
    if (c == 'f') force = 1;
    else if (c == 'h') {
      printf("usage: gpux rm [-f] NAME[:TAG]...\n\n"
             "Removes image tags (TAG defaults to latest); files no remaining image uses are deleted.\n"
             "  -f, --force   an image that does not exist is not an error\n");
      return EXIT_OK;
    } else return cli_bad_option("rm", argv, c);
  }
  if (optind >= argc) { cli_error(0, "rm needs at least one NAME[:TAG] (see gpux rm --help)"); return EXIT_USAGE; }
  gpux_store *st;
  if (open_store(&st)) return EXIT_RUNTIME;
  int status = EXIT_OK;
  for (int i = optind; i < argc; i++) {
    int rc = gpux_store_remove(st, argv[i]);
    if (rc == GPUX_E_NOTFOUND && force) continue;
    if (rc) {
      fprintf(stderr, "gpux: error: %s\n", gpux_last_error());
      status = cli_exit_code(rc);
    } else {
      printf("Removed %s%s\n", argv[i], strchr(argv[i], ':') ? "" : ":latest");
    }
  }
  gpux_store_close(st);
  return status;
}

int cmd_tag(int argc, char **argv) {
  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: gpux tag SRC[:TAG] DST[:TAG]\n\nGives the image SRC a second name DST (no files are copied).\n");
    return EXIT_OK;
  }
  if (argc != 3) { cli_error(0, "tag needs SRC and DST (see gpux tag --help)"); return EXIT_USAGE; }
  gpux_store *st;
  if (open_store(&st)) return EXIT_RUNTIME;
  int rc = gpux_store_tag(st, argv[1], argv[2]);
  gpux_store_close(st);
  if (rc) {
    fprintf(stderr, "gpux: error: %s\n", gpux_last_error());
    return cli_exit_code(rc);
  }
  printf("Tagged %s as %s\n", argv[1], argv[2]);
  return EXIT_OK;
}
