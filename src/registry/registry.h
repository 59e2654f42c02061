/* registry.h — the OCI distribution-spec client's internal interface: image references, one
 * HTTP client per registry and repository (libcurl, with anonymous, basic and bearer-token auth),
 * and the credentials store ($GPUX_HOME/auth.json, ~/.docker/config.json). push.c and pull.c
 * build gpux_push/gpux_pull on top of it. */
#ifndef GPUX_REGISTRY_H
#define GPUX_REGISTRY_H

#include "core/internal.h"
#include "store/store.h"
#include <curl/curl.h>

/* A parsed reference [HOST[:PORT]/]NAMESPACE/NAME[:TAG|@sha256:HEX]. */
typedef struct {
  char host[256];              /* "registry-1.docker.io", "127.0.0.1:5000" */
  char repo[256];              /* "library/ubuntu", "team/td" */
  char tag[130];               /* "" when pulled by digest */
  char digest[72];             /* "" when by tag */
  char local[512];             /* the name in the local store: "HOST/REPO:TAG" (docker.io stays short) */
} gpux__reference;

/* Parses `ref`; a missing tag and digest means "latest". */
int gpux__reference_parse(const char *ref, gpux__reference *out);

/* Credentials for a host: explicit, $GPUX_HOME/auth.json, then ~/.docker/config.json. */
typedef struct {
  char user[256];
  char password[1024];         /* never printed */
} gpux__credentials;

/* Fills `c` (empty strings when none are stored). */
void gpux__credentials_find(gpux_store *st, const char *host, gpux__credentials *c);
/* Writes $GPUX_HOME/auth.json (0600) with `host` set to user/password. */
/* Writes (c == NULL: removes) the credentials of `host` in $GPUX_HOME/auth.json, atomically. */
int gpux__credentials_save(gpux_store *st, const char *host, const gpux__credentials *c);

/* One registry and repository, authenticated for `actions` ("pull" or "pull,push"). */
typedef struct {
  CURL *curl;
  char base[300];              /* "https://HOST" */
  char host[256];
  char repo[256];
  char actions[32];
  gpux__credentials cred;
  int have_cred;
  char *auth_header;           /* "Authorization: Basic ..." / "Bearer ..."; owned, never printed */
  long max_rate;               /* bytes/s for transfers, 0 = unlimited */
  int64_t prog_base, prog_total; /* progress of the next request: bytes before it, bytes in all */
  gpux_progress_fn progress;
  void *progress_ctx;
} gpux__registry;

/* Opens the client: picks http/https (plain HTTP only for localhost/127.0.0.1/::1 or insecure),
 * pings /v2/ and authenticates. */
int gpux__registry_open(gpux__registry *r, gpux_store *st, const char *host, const char *repo,
                        const char *actions, const gpux_registry_options *o);
void gpux__registry_close(gpux__registry *r);

/* A request body: memory, or a range of a file. */
typedef struct {
  const char *data;            /* memory body, or NULL */
  int fd;                      /* file body when data is NULL and fd >= 0 */
  int64_t offset, length;      /* the range sent */
  int64_t sent;                /* progress within the range */
} gpux__body;

/* The reply of one request. */
typedef struct {
  long status;
  char *body;                  /* owned, NUL-terminated (for small replies) */
  size_t body_len;
  char location[2048];         /* Location header */
  char digest[80];             /* Docker-Content-Digest header */
  char content_type[128];
  int64_t content_length;
} gpux__reply;

void gpux__reply_free(gpux__reply *rep);

/* One request to PATH (relative to /v2/REPO/, or an absolute URL), retried once after
 * re-authenticating on 401. `headers` may be NULL. When `sink` is not NULL a 2xx reply's body
 * streams to it instead of into rep->body (it returns len, or 0 to abort). `what` (may be NULL)
 * is the progress step reported with r->prog_base + bytes moved of r->prog_total. */
typedef size_t (*gpux__sink_fn)(void *ctx, long status, const char *data, size_t len);
int gpux__registry_request(gpux__registry *r, const char *method, const char *path,
                           struct curl_slist *headers, gpux__body *body, gpux__sink_fn sink,
                           void *sink_ctx, const char *what, gpux__reply *rep);
/* The registry's error text from a reply ("MANIFEST_UNKNOWN: manifest unknown"), or "HTTP N". */
void gpux__reply_error(const gpux__reply *rep, char *buf, size_t len);

/* ---- parsers of what a registry answers (pure functions, fuzzed by tests/fuzz/fuzz-registry.c) ---- */

enum { GPUX__AUTH_UNKNOWN = 0, GPUX__AUTH_BASIC = 1, GPUX__AUTH_BEARER = 2 };
typedef struct {
  int scheme;                  /* GPUX__AUTH_* */
  char realm[1024];            /* Bearer: the token service's http(s) URL; "" when missing or unusable */
  char service[256];
  char scope[512];             /* the challenge's, else "repository:REPO:ACTIONS" */
} gpux__challenge;

/* Parses a WWW-Authenticate challenge; returns out->scheme. */
int gpux__registry_challenge(const char *challenge, const char *repo, const char *actions, gpux__challenge *out);
/* The bearer token ("token", else "access_token") in a token service's JSON answer; malloc'd, or
 * NULL when there is none. */
char *gpux__registry_token(const char *body, size_t len);
/* The value of a "Name: value" header line of n bytes, trimmed, cut to cap - 1 bytes. */
void gpux__registry_header_value(const char *line, size_t n, char *out, size_t cap);
/* Checks that a manifest is an OCI image manifest of a gpux image and fills the config and
 * layer descriptors (at most cap, each with a digest, a size and a safe title); pull.c. */
int gpux__registry_parse_manifest(const char *host, const char *text, gpux__blob_ref *blobs, char (*titles)[256],
                                  int cap, int *n);

#endif
