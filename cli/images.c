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

int cmd_list(int argc, char **argv) {
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: gpux list [--json]   (also: gpux images)\n\n"
             "Lists the images in the local store ($GPUX_HOME, default ~/.gpux): name, tag, digest,\n"
             "size and age. --json prints [{\"name\",\"tag\",\"digest\",\"size\",\"created\"}].\n");
      return EXIT_OK;
    } else {
      cli_error(0, "list: unexpected '%s' (see gpux list --help)", argv[i]);
      return EXIT_USAGE;
    }
  }
  gpux_store *st;
  if (open_store(&st)) return EXIT_RUNTIME;
  char *out = NULL;
  int rc = gpux_store_list(st, &out);
  gpux_store_close(st);
  if (rc) { cli_error(rc, "cannot list images"); return cli_exit_code(rc); }
  if (json) {
    puts(out);
    gpux_free(out);
    return EXIT_OK;
  }
  cJSON *a = cJSON_Parse(out), *e;
  gpux_free(out);
  printf("%-30s %-12s %-14s %-10s %s\n", "NAME", "TAG", "DIGEST", "SIZE", "CREATED");
  cJSON_ArrayForEach(e, a) {
    char size[32], when[64];
    const char *d = cJSON_GetStringValue(cJSON_GetObjectItem(e, "digest"));
    human_size(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "size")), size, sizeof size);
    age(cJSON_GetStringValue(cJSON_GetObjectItem(e, "created")), when, sizeof when);
    printf("%-30s %-12s %-14.12s %-10s %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")),
           cJSON_GetStringValue(cJSON_GetObjectItem(e, "tag")), d && strlen(d) > 7 ? d + 7 : "", size, when);
  }
  cJSON_Delete(a);
  return EXIT_OK;
}

int cmd_rm(int argc, char **argv) {
  if (argc < 2) { cli_error(0, "rm needs at least one NAME[:TAG] (see gpux rm --help)"); return EXIT_USAGE; }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf("usage: gpux rm NAME[:TAG]...\n\n"
           "Removes image tags (TAG defaults to latest); files no remaining image uses are deleted.\n");
    return EXIT_OK;
  }
  gpux_store *st;
  if (open_store(&st)) return EXIT_RUNTIME;
  int status = EXIT_OK;
  for (int i = 1; i < argc; i++) {
    int rc = gpux_store_remove(st, argv[i]);
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
