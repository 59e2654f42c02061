/* replay.c — feeds files to a fuzz harness's LLVMFuzzerTestOneInput without libFuzzer, so the seed
 * corpus and every crash ever found run in `make test` with the ordinary compiler (and under
 * ASan/UBSan in test-asan). Arguments are files or folders (every file in them, sorted); a
 * missing folder is skipped. Exit status 0 when every input ran; a bug aborts through the
 * sanitizers or crashes. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "replay: %s: %s\n", path, strerror(errno)); return -1; }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, n;
  do {
    if (len == cap) {
      cap = cap ? cap * 2 : 1 << 16;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) { free(buf); fclose(f); return -1; }
      buf = nb;
    }
    n = fread(buf + len, 1, cap - len, f);
    len += n;
  } while (n > 0);
  fclose(f);
  /* an exact-size copy, so ASan sees reads past the end of the input */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) { free(buf); return -1; }
  if (len) memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  int files = 0, failed = 0;
  for (int a = 1; a < argc; a++) {
    struct stat sb;
    if (stat(argv[a], &sb) < 0) continue; /* e.g. no crashes recorded yet */
    if (!S_ISDIR(sb.st_mode)) { failed |= replay_file(argv[a]); files++; continue; }
    DIR *d = opendir(argv[a]);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.' || !strcmp(e->d_name, "README")) continue;
      if (n == cap && !(names = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names))) return 1;
      names[n++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[a], names[i]);
      failed |= replay_file(path);
      files++;
      free(names[i]);
    }
    free(names);
  }
  printf("replayed %d inputs\n", files);
  return failed || !files ? 1 : 0;
}
