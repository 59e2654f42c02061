/* fuzz-registry.c — libFuzzer harness for what a registry answers, without a network: the first
 * byte picks the parser and the rest is the answer. 0: a manifest (OCI manifest or index, as pull
 * reads it), 1: a WWW-Authenticate challenge, 2: a token service's JSON, 3: an error body
 * (gpux__reply_error), 4: a header line (Location, Docker-Content-Digest, ...), 5: an image
 * reference; anything else goes to every parser in turn. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "registry/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gpux__blob_ref blobs[257];
static char titles[257][256];

static void run(int mode, const char *text, size_t len) {
  switch (mode) {
  case 0: {
    int n = 0;
    if (!gpux__registry_parse_manifest("fuzz", text, blobs, titles, 257, &n))
      for (int i = 0; i < n; i++)   /* every title is a safe file name */
        if (!titles[i][0] || strchr(titles[i], '/') || titles[i][0] == '.') abort();
    break;
  }
  case 1: {
    gpux__challenge ch;
    if (gpux__registry_challenge(text, "team/app", "pull", &ch) == GPUX__AUTH_BEARER && ch.realm[0] &&
        strncmp(ch.realm, "http", 4))
      abort();
    break;
  }
  case 2: free(gpux__registry_token(text, len)); break;
  case 3: {
    gpux__reply rep = {.status = 400, .body = (char *)text, .body_len = len};
    char why[400];
    gpux__reply_error(&rep, why, sizeof why);
    break;
  }
  case 4: {
    char v[80];
    gpux__registry_header_value(text, len, v, sizeof v);
    if (strlen(v) >= sizeof v) abort();
    break;
  }
  default: {
    gpux__reference ref;
    gpux__reference_parse(text, &ref);
    break;
  }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!size) return 0;
  /* the parsers take NUL-terminated text, as libcurl's reply buffer is */
  char *text = malloc(size);
  if (!text) return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = 0;
  if (data[0] < 6) run(data[0], text, size - 1);
  else
    for (int m = 0; m < 6; m++) run(m, text, size - 1);
  free(text);
  return 0;
}
