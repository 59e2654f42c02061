/* trust.c — which images' handler code may run without --allow-handler: the manifest digests
 * listed in $GPUX_HOME/trusted-handlers, one per line ("sha256:HEX", then optionally a space and
 * anything, such as the image's name; '#' starts a comment). gpux build adds every image it makes
 * with a handler, so local builds are trusted; a pulled image is not until its digest is added.
 * A digest names the manifest, which names the config and every layer by digest, so trusting it
 * trusts exactly those bytes. */
#include "app/handler.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

void gpux__trust_path(gpux_store *st, char *buf, size_t len) {
  snprintf(buf, len, "%s/trusted-handlers", st->root);
}

int gpux__trust_has(gpux_store *st, const char *digest) {
  if (!st || !digest || strncmp(digest, "sha256:", 7) || strlen(digest) != 71) return 0;
  char path[4096];
  gpux__trust_path(st, path, sizeof path);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[1024];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    found = !strncmp(p, digest, 71) && (p[71] == 0 || p[71] == '\n' || p[71] == ' ' || p[71] == '\t' || p[71] == '\r');
  }
  fclose(f);
  return found;
}

int gpux__trust_add(gpux_store *st, const char *digest, const char *ref) {
  if (gpux__trust_has(st, digest)) return 0;
  char path[4096];
  gpux__trust_path(st, path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(errno));
  char line[1024];
  int n = snprintf(line, sizeof line, "%s %s\n", digest, ref ? ref : "");
  /* one write of one line under an exclusive lock: concurrent builds never interleave */
  flock(fd, LOCK_EX);
  ssize_t w = write(fd, line, (size_t)n);
  flock(fd, LOCK_UN);
  int e = errno;
  close(fd);
  if (w != n) return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(e));
  return 0;
}
