/* client.c — the OCI distribution-spec HTTP client: image references, credentials
 * ($GPUX_HOME/auth.json, ~/.docker/config.json), and requests over one libcurl handle per
 * registry with anonymous, HTTP basic and bearer-token auth (WWW-Authenticate: Bearer
 * realm=,service=,scope=). Secrets live only in memory and in the Authorization header; no error
 * message or progress line ever contains them. */
#include "registry/registry.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- references ---- */

static int repo_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
}

int gpux__reference_parse(const char *ref, gpux__reference *out) {
  memset(out, 0, sizeof *out);
  if (!ref || !*ref) return gpux__error(GPUX_E_INVALID, "empty image reference");
  char name[600];
  snprintf(name, sizeof name, "%s", ref);
  char *at = strchr(name, '@');
  if (at) {
    *at = 0;
    const char *d = at + 1;
    int ok = !strncmp(d, "sha256:", 7) && strlen(d) == 71;
    for (int i = 7; ok && i < 71; i++) ok = (d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f');
    if (!ok) return gpux__error(GPUX_E_INVALID, "'%s': a digest is @sha256: and 64 lowercase hex digits", ref);
    snprintf(out->digest, sizeof out->digest, "%s", d);
  }
  char *slash = strrchr(name, '/'), *colon = strrchr(name, ':');
  if (colon && (!slash || colon > slash)) {
    *colon = 0;
    const char *t = colon + 1;
    if (!*t || strlen(t) > 128) return gpux__error(GPUX_E_INVALID, "'%s': the tag is empty or too long", ref);
    for (const char *p = t; *p; p++)
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
        return gpux__error(GPUX_E_INVALID, "'%s': tags use letters, digits and . _ -", ref);
    snprintf(out->tag, sizeof out->tag, "%s", t);
  }
  if (!out->tag[0] && !out->digest[0]) snprintf(out->tag, sizeof out->tag, "latest");
  /* the first component is a host when it has a '.' or ':' or is localhost */
  char *first = strchr(name, '/');
  const char *repo = name;
  if (first) {
    *first = 0;
    if (strchr(name, '.') || strchr(name, ':') || !strcmp(name, "localhost")) {
      snprintf(out->host, sizeof out->host, "%s", name);
      repo = first + 1;
    } else {
      *first = '/';
    }
  }
  int hub = !out->host[0] || !strcmp(out->host, "docker.io") || !strcmp(out->host, "index.docker.io");
  if (!*repo) return gpux__error(GPUX_E_INVALID, "'%s': the repository name is empty", ref);
  for (const char *p = repo; *p; p++)
    if (!repo_char(*p) || (*p == '/' && (p[1] == '/' || p[1] == 0)))
      return gpux__error(GPUX_E_INVALID, "'%s': repository names use lowercase letters, digits and . _ - /", ref);
  if (hub) {
    snprintf(out->host, sizeof out->host, "docker.io");
    snprintf(out->repo, sizeof out->repo, "%s%s", strchr(repo, '/') ? "" : "library/", repo);
    snprintf(out->local, sizeof out->local, "%s", repo);
  } else {
    snprintf(out->repo, sizeof out->repo, "%s", repo);
    snprintf(out->local, sizeof out->local, "%s/%s", out->host, repo);
  }
  size_t n = strlen(out->local);
  /* pulled by digest: the local tag names the digest so that the image stays in the index */
  snprintf(out->local + n, sizeof out->local - n, ":%s%s", out->tag[0] ? "" : "sha256-",
           out->tag[0] ? out->tag : out->digest + 7);
  return 0;
}

/* ---- credentials ---- */

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = n >= 0 && n < (1 << 24) ? malloc((size_t)n + 1) : NULL;
  if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) buf[n] = 0;
  else { free(buf); buf = NULL; }
  fclose(f);
  return buf;
}

/* base64 "user:password" -> c; 0 on success */
static int decode_auth(const char *b64, gpux__credentials *c) {
  size_t n = strlen(b64);
  if (n == 0 || n % 4 || n > 4096) return -1;
  unsigned char out[3200];
  int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
  if (len < 0) return -1;
  while (n && b64[n - 1] == '=') { n--; len--; }
  out[len] = 0;
  char *sep = strchr((char *)out, ':');
  if (!sep) return -1;
  *sep = 0;
  snprintf(c->user, sizeof c->user, "%s", (char *)out);
  snprintf(c->password, sizeof c->password, "%s", sep + 1);
  OPENSSL_cleanse(out, sizeof out);
  return 0;
}

/* finds host's entry in a docker-style {"auths": {...}} file */
static int find_in_file(const char *path, const char *host, gpux__credentials *c) {
  char *text = read_text(path);
  if (!text) return -1;
  cJSON *j = cJSON_Parse(text);
  OPENSSL_cleanse(text, strlen(text));
  free(text);
  const cJSON *auths = cJSON_GetObjectItem(j, "auths"), *e;
  int rc = -1;
  cJSON_ArrayForEach(e, auths) {
    const char *k = e->string;
    if (!strncmp(k, "https://", 8)) k += 8;
    else if (!strncmp(k, "http://", 7)) k += 7;
    size_t hl = strlen(host);
    int match = !strncmp(k, host, hl) && (k[hl] == 0 || k[hl] == '/');
    if (!strcmp(host, "docker.io") && (!strncmp(k, "index.docker.io", 15) || !strncmp(k, "registry-1.docker.io", 20))) match = 1;
    const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(e, "auth"));
    if (match && a && !decode_auth(a, c)) { rc = 0; break; }
  }
  if (j) {
    /* scrub the secrets cJSON holds before freeing */
    cJSON_ArrayForEach(e, auths) {
      cJSON *a = cJSON_GetObjectItem(e, "auth");
      if (cJSON_IsString(a)) OPENSSL_cleanse(a->valuestring, strlen(a->valuestring));
    }
  }
  cJSON_Delete(j);
  return rc;
}

void gpux__credentials_find(gpux_store *st, const char *host, gpux__credentials *c) {
  memset(c, 0, sizeof *c);
  char path[4200];
  snprintf(path, sizeof path, "%s/auth.json", st->root);
  if (!find_in_file(path, host, c)) return;
  const char *dc = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
  if (dc && *dc) snprintf(path, sizeof path, "%s/config.json", dc);
  else if (home && *home) snprintf(path, sizeof path, "%s/.docker/config.json", home);
  else return;
  if (find_in_file(path, host, c)) memset(c, 0, sizeof *c);
}

int gpux__credentials_save(gpux_store *st, const char *host, const gpux__credentials *c) {
  /* c == NULL removes the host's entry (logout); GPUX_E_NOTFOUND when there is none */
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/auth.json", st->root);
  char *text = read_text(path);
  cJSON *j = text ? cJSON_Parse(text) : NULL;
  if (text) { OPENSSL_cleanse(text, strlen(text)); free(text); }
  if (!cJSON_IsObject(j)) { cJSON_Delete(j); j = cJSON_CreateObject(); }
  cJSON *auths = cJSON_GetObjectItem(j, "auths");
  if (!cJSON_IsObject(auths)) { cJSON_DeleteItemFromObject(j, "auths"); auths = cJSON_AddObjectToObject(j, "auths"); }
  if (!c) {
    cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(auths, host);
    if (!old) { cJSON_Delete(j); return gpux__error(GPUX_E_NOTFOUND, "not logged in to %s (%s)", host, path); }
    cJSON *a = cJSON_GetObjectItem(old, "auth");
    if (cJSON_IsString(a)) OPENSSL_cleanse(a->valuestring, strlen(a->valuestring));
    cJSON_Delete(old);
  } else {
    char plain[1400];
    snprintf(plain, sizeof plain, "%s:%s", c->user, c->password);
    unsigned char b64[2000];
    EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)strlen(plain));
    OPENSSL_cleanse(plain, sizeof plain);
    cJSON_DeleteItemFromObject(auths, host);
    cJSON *e = cJSON_AddObjectToObject(auths, host);
    cJSON_AddStringToObject(e, "auth", (char *)b64);
    OPENSSL_cleanse(b64, sizeof b64);
  }
  char *out = cJSON_Print(j);
  cJSON_Delete(j);
  if (!out) return gpux__error(GPUX_E_NOMEM, "out of memory");
  snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
  int fd = mkstemp(tmp); /* mkstemp creates the file 0600 */
  if (fd < 0) { free(out); return gpux__error(GPUX_E_IO, "%s: %s", tmp, strerror(errno)); }
  fchmod(fd, 0600);
  size_t len = strlen(out);
  ssize_t w = write(fd, out, len);
  OPENSSL_cleanse(out, len);
  free(out);
  if (w != (ssize_t)len || fsync(fd) < 0) {
    int e2 = errno;
    close(fd);
    unlink(tmp);
    return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(e2));
  }
  close(fd);
  if (rename(tmp, path) < 0) { unlink(tmp); return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(errno)); }
  return 0;
}

/* ---- requests ---- */

void gpux__reply_free(gpux__reply *rep) {
  free(rep->body);
  memset(rep, 0, sizeof *rep);
}

typedef struct {
  gpux__registry *r;
  gpux__reply *rep;
  gpux__body *body;
  gpux__sink_fn sink;
  void *sink_ctx;
  const char *what;
  size_t cap;
  int sink_failed;
  char challenge[2048];
  double t0;                   /* when the transfer began (for --limit-rate) */
  int64_t moved;               /* body bytes moved so far */
  double last_report;          /* when progress was last reported */
} request_state;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --limit-rate: libcurl's own limit lets short transfers through at full speed, so pace here */
static void throttle(request_state *s, size_t n) {
  s->moved += (int64_t)n;
  gpux__registry *r = s->r;
  double t = now_s();
  if (s->what && r->progress && t - s->last_report > 0.1) { /* libcurl reports too rarely on slow links */
    s->last_report = t;
    r->progress(r->progress_ctx, s->what, r->prog_base + (s->body ? s->body->sent : s->moved), r->prog_total);
  }
  if (r->max_rate <= 0) return;
  double ahead = (double)s->moved / (double)s->r->max_rate - (now_s() - s->t0);
  if (ahead > 0) {
    struct timespec ts = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
    nanosleep(&ts, NULL);
  }
}

void gpux__registry_header_value(const char *line, size_t n, char *out, size_t cap) {
  const char *v = memchr(line, ':', n);
  if (!v) { out[0] = 0; return; }
  v++;
  while (v < line + n && (*v == ' ' || *v == '\t')) v++;
  size_t len = (size_t)(line + n - v);
  while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ')) len--;
  if (len >= cap) len = cap - 1;
  memcpy(out, v, len);
  out[len] = 0;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ctx) {
  request_state *s = ctx;
  size_t n = size * nmemb;
  if (n >= 5 && !strncmp(line, "HTTP/", 5)) { /* a new response (redirect, 100 Continue) */
    s->rep->location[0] = s->rep->digest[0] = s->rep->content_type[0] = 0;
    s->rep->content_length = -1;
    s->challenge[0] = 0;
  } else if (n > 9 && !strncasecmp(line, "location:", 9)) {
    gpux__registry_header_value(line, n, s->rep->location, sizeof s->rep->location);
  } else if (n > 22 && !strncasecmp(line, "docker-content-digest:", 22)) {
    gpux__registry_header_value(line, n, s->rep->digest, sizeof s->rep->digest);
  } else if (n > 13 && !strncasecmp(line, "content-type:", 13)) {
    gpux__registry_header_value(line, n, s->rep->content_type, sizeof s->rep->content_type);
  } else if (n > 15 && !strncasecmp(line, "content-length:", 15)) {
    char v[32];
    gpux__registry_header_value(line, n, v, sizeof v);
    s->rep->content_length = strtoll(v, NULL, 10);
  } else if (n > 17 && !strncasecmp(line, "www-authenticate:", 17)) {
    gpux__registry_header_value(line, n, s->challenge, sizeof s->challenge);
  }
  return n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ctx) {
  request_state *s = ctx;
  size_t n = size * nmemb;
  long status = 0;
  curl_easy_getinfo(s->r->curl, CURLINFO_RESPONSE_CODE, &status);
  if (s->sink && status >= 200 && status < 300) {
    if (s->sink(s->sink_ctx, status, data, n) != n) { s->sink_failed = 1; return 0; }
    throttle(s, n);
    return n;
  }
  gpux__reply *rep = s->rep;
  if (rep->body_len + n + 1 > s->cap) {
    if (rep->body_len + n > (64u << 20)) return 0; /* a reply this big is not a manifest */
    size_t cap = GPUX__MAX(s->cap * 2, rep->body_len + n + 1);
    char *b = realloc(rep->body, cap);
    if (!b) return 0;
    rep->body = b;
    s->cap = cap;
  }
  memcpy(rep->body + rep->body_len, data, n);
  rep->body_len += n;
  rep->body[rep->body_len] = 0;
  return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ctx) {
  request_state *s = ctx;
  gpux__body *b = s->body;
  size_t want = size * nmemb;
  int64_t left = b->length - b->sent;
  if (left <= 0) return 0;
  if ((int64_t)want > left) want = (size_t)left;
  if (b->data) {
    memcpy(buf, b->data + b->offset + b->sent, want);
  } else {
    ssize_t got;
    do got = pread(b->fd, buf, want, b->offset + b->sent); while (got < 0 && errno == EINTR);
    if (got <= 0) return CURL_READFUNC_ABORT;
    want = (size_t)got;
  }
  b->sent += (int64_t)want;
  throttle(s, want);
  return want;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  request_state *s = ctx;
  gpux__registry *r = s->r;
  if (!s->what || !r->progress) return 0;
  int64_t now = s->body ? s->body->sent : (int64_t)dlnow;
  r->progress(r->progress_ctx, s->what, r->prog_base + now, r->prog_total);
  return 0;
}

void gpux__reply_error(const gpux__reply *rep, char *buf, size_t len) {
  cJSON *j = rep->body ? cJSON_Parse(rep->body) : NULL;
  const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "errors"), 0);
  const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(e, "code"));
  const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
  if (code || msg) snprintf(buf, len, "HTTP %ld %s%s%s", rep->status, code ? code : "", code && msg ? ": " : "", msg ? msg : "");
  else snprintf(buf, len, "HTTP %ld", rep->status);
  cJSON_Delete(j);
}

static int authenticate(gpux__registry *r, const char *challenge);
static int fail_auth(gpux__registry *r);

/* one attempt; *challenge receives WWW-Authenticate on 401 */
static int request_once(gpux__registry *r, const char *method, const char *url, struct curl_slist *headers,
                        gpux__body *body, gpux__sink_fn sink, void *sink_ctx, const char *what,
                        gpux__reply *rep, char *challenge, size_t clen) {
  CURL *c = r->curl;
  curl_easy_reset(c);
  request_state s = {.r = r, .rep = rep, .body = body, .sink = sink, .sink_ctx = sink_ctx, .what = what, .t0 = now_s()};
  rep->content_length = -1;
  char errbuf[CURL_ERROR_SIZE] = "";
  struct curl_slist *h = NULL;
  for (struct curl_slist *p = headers; p; p = p->next) h = curl_slist_append(h, p->data);
  if (r->auth_header) h = curl_slist_append(h, r->auth_header);
  h = curl_slist_append(h, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "gpux/" GPUX_VERSION);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  if (r->max_rate > 0) curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 16384L); /* small steps for throttle() */
  if (!strcmp(method, "HEAD")) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (body) {
    body->sent = 0;
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &s);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body->length);
  } else if (strcmp(method, "GET")) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  }
  if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) {
    /* blob downloads may be redirected to storage; curl drops our Authorization on other hosts */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  }
  CURLcode cc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rep->status);
  curl_slist_free_all(h);
  snprintf(challenge, clen, "%s", s.challenge);
  if (s.sink_failed) return GPUX_E_IO; /* the sink recorded its own error */
  if (cc != CURLE_OK)
    return gpux__error(GPUX_E_IO, "%s %s: %s", method, r->host, errbuf[0] ? errbuf : curl_easy_strerror(cc));
  return 0;
}

static void make_url(gpux__registry *r, const char *path, char *url, size_t len) {
  if (!strncmp(path, "http://", 7) || !strncmp(path, "https://", 8)) snprintf(url, len, "%s", path);
  else if (path[0] == '/') snprintf(url, len, "%s%s", r->base, path);
  else snprintf(url, len, "%s/v2/%s/%s", r->base, r->repo, path);
}

int gpux__registry_request(gpux__registry *r, const char *method, const char *path, struct curl_slist *headers,
                           gpux__body *body, gpux__sink_fn sink, void *sink_ctx, const char *what, gpux__reply *rep) {
  char url[4096], challenge[2048];
  make_url(r, path, url, sizeof url);
  for (int attempt = 0;; attempt++) {
    gpux__reply_free(rep);
    int rc = request_once(r, method, url, headers, body, sink, sink_ctx, what, rep, challenge, sizeof challenge);
    if (rc) return rc;
    if (rep->status == 401 && attempt == 1 && !r->have_cred) return fail_auth(r);
    if (rep->status != 401 || attempt == 1 || !challenge[0]) return 0;
    /* the token may lack this scope, or have expired: authenticate again and repeat */
    if ((rc = authenticate(r, challenge))) return rc;
  }
}

/* ---- authentication ---- */

/* value of `key` in a challenge's parameters (key="value", ...) */
static int challenge_param(const char *ch, const char *key, char *out, size_t len) {
  size_t kl = strlen(key);
  for (const char *p = ch; (p = strstr(p, key)); p += kl) {
    if (p != ch && p[-1] != ' ' && p[-1] != ',') continue;
    if (p[kl] != '=') continue;
    const char *v = p + kl + 1;
    size_t n = 0;
    if (*v == '"') {
      v++;
      while (v[n] && v[n] != '"') n++;
    } else {
      while (v[n] && v[n] != ',') n++;
    }
    if (n >= len) n = len - 1;
    memcpy(out, v, n);
    out[n] = 0;
    return 1;
  }
  out[0] = 0;
  return 0;
}

static void set_auth_header(gpux__registry *r, const char *scheme, const char *value) {
  if (r->auth_header) { OPENSSL_cleanse(r->auth_header, strlen(r->auth_header)); free(r->auth_header); }
  size_t n = strlen(scheme) + strlen(value) + 32;
  r->auth_header = malloc(n);
  if (r->auth_header) snprintf(r->auth_header, n, "Authorization: %s %s", scheme, value);
}

static int fail_auth(gpux__registry *r) {
  if (r->have_cred)
    return gpux__error(GPUX_E_INVALID, "%s: authentication failed: wrong username or password for user '%s'", r->host, r->cred.user);
  return gpux__error(GPUX_E_INVALID, "%s requires a login: run gpux login %s -u USER --password-stdin", r->host, r->host);
}

int gpux__registry_challenge(const char *challenge, const char *repo, const char *actions, gpux__challenge *out) {
  memset(out, 0, sizeof *out);
  if (!strncasecmp(challenge, "Basic", 5)) return out->scheme = GPUX__AUTH_BASIC;
  if (strncasecmp(challenge, "Bearer", 6)) return out->scheme = GPUX__AUTH_UNKNOWN;
  out->scheme = GPUX__AUTH_BEARER;
  challenge_param(challenge + 6, "realm", out->realm, sizeof out->realm);
  challenge_param(challenge + 6, "service", out->service, sizeof out->service);
  if (!challenge_param(challenge + 6, "scope", out->scope, sizeof out->scope) && repo && repo[0] && actions && actions[0])
    snprintf(out->scope, sizeof out->scope, "repository:%s:%s", repo, actions);
  if (strncmp(out->realm, "https://", 8) && strncmp(out->realm, "http://", 7)) out->realm[0] = 0;
  return out->scheme;
}

char *gpux__registry_token(const char *body, size_t len) {
  cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
  const char *tok = cJSON_GetStringValue(cJSON_GetObjectItem(j, "token"));
  if (!tok) tok = cJSON_GetStringValue(cJSON_GetObjectItem(j, "access_token"));
  char *out = tok && *tok ? gpux__strdup(tok) : NULL;
  cJSON_Delete(j);
  return out;
}

static int authenticate(gpux__registry *r, const char *challenge) {
  gpux__challenge ch;
  int scheme = gpux__registry_challenge(challenge, r->repo, r->actions, &ch);
  if (scheme == GPUX__AUTH_BASIC) {
    if (!r->have_cred) return fail_auth(r);
    char plain[1400];
    unsigned char b64[2000];
    snprintf(plain, sizeof plain, "%s:%s", r->cred.user, r->cred.password);
    EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)strlen(plain));
    set_auth_header(r, "Basic", (char *)b64);
    OPENSSL_cleanse(plain, sizeof plain);
    OPENSSL_cleanse(b64, sizeof b64);
    return r->auth_header ? 0 : GPUX_E_NOMEM;
  }
  if (scheme != GPUX__AUTH_BEARER)
    return gpux__error(GPUX_E_UNSUPPORTED, "%s asks for an authentication scheme gpux does not know: %.20s", r->host, challenge);
  const char *realm = ch.realm, *service = ch.service, *scope = ch.scope;
  if (!realm[0])
    return gpux__error(GPUX_E_PARSE, "%s: the bearer challenge has no usable realm", r->host);
  if (!strncmp(realm, "http://", 7) && !strncmp(r->base, "https://", 8))
    return gpux__error(GPUX_E_INVALID, "%s: refusing to send credentials to a plain-HTTP token service", r->host);
  char url[2200];
  CURL *c = r->curl;
  curl_easy_reset(c);
  char *es = curl_easy_escape(c, service, 0), *esc = curl_easy_escape(c, scope, 0);
  snprintf(url, sizeof url, "%s%sservice=%s%s%s", realm, strchr(realm, '?') ? "&" : "?", es ? es : "",
           scope[0] ? "&scope=" : "", scope[0] && esc ? esc : "");
  curl_free(es);
  curl_free(esc);
  gpux__reply rep = {0};
  request_state s = {.r = r, .rep = &rep};
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "gpux/" GPUX_VERSION);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (r->have_cred) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, r->cred.user);
    curl_easy_setopt(c, CURLOPT_PASSWORD, r->cred.password);
  }
  CURLcode cc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rep.status);
  if (cc != CURLE_OK) {
    gpux__reply_free(&rep);
    return gpux__error(GPUX_E_IO, "%s: token service: %s", r->host, errbuf[0] ? errbuf : curl_easy_strerror(cc));
  }
  if (rep.status == 401 || rep.status == 403) { gpux__reply_free(&rep); return fail_auth(r); }
  char *tok = rep.status == 200 ? gpux__registry_token(rep.body, rep.body_len) : NULL;
  int rc = 0;
  if (!tok) rc = gpux__error(GPUX_E_PARSE, "%s: the token service answered HTTP %ld without a token", r->host, rep.status);
  else set_auth_header(r, "Bearer", tok);
  if (rep.body) OPENSSL_cleanse(rep.body, rep.body_len);
  if (tok) { OPENSSL_cleanse(tok, strlen(tok)); free(tok); }
  gpux__reply_free(&rep);
  if (!rc && !r->auth_header) rc = GPUX_E_NOMEM;
  return rc;
}

static int is_loopback(const char *host) {
  const char *names[] = {"localhost", "127.0.0.1", "[::1]"};
  for (size_t i = 0; i < GPUX__ARRAY_LEN(names); i++) {
    size_t n = strlen(names[i]);
    if (!strncmp(host, names[i], n) && (host[n] == 0 || host[n] == ':')) return 1;
  }
  return 0;
}

int gpux__registry_open(gpux__registry *r, gpux_store *st, const char *host, const char *repo,
                        const char *actions, const gpux_registry_options *o) {
  memset(r, 0, sizeof *r);
  static int curl_ready;
  if (!curl_ready) { curl_global_init(CURL_GLOBAL_DEFAULT); curl_ready = 1; }
  snprintf(r->host, sizeof r->host, "%s", host);
  snprintf(r->repo, sizeof r->repo, "%s", repo);
  snprintf(r->actions, sizeof r->actions, "%s", actions);
  const char *api = !strcmp(host, "docker.io") ? "registry-1.docker.io" : host;
  int plain = is_loopback(host) || (o && o->insecure);
  snprintf(r->base, sizeof r->base, "%s://%s", plain ? "http" : "https", api);
  if (o && o->username) {
    snprintf(r->cred.user, sizeof r->cred.user, "%s", o->username);
    snprintf(r->cred.password, sizeof r->cred.password, "%s", o->password ? o->password : "");
  } else {
    gpux__credentials_find(st, host, &r->cred);
  }
  r->have_cred = r->cred.user[0] != 0;
  if (o) {
    r->max_rate = (long)o->max_rate;
    r->progress = o->progress;
    r->progress_ctx = o->progress_ctx;
  }
  if (!(r->curl = curl_easy_init())) return gpux__error(GPUX_E_NOMEM, "libcurl: cannot start");
  /* ping /v2/: 200 = anonymous access; 401 = authenticate as the challenge says */
  gpux__reply rep = {0};
  char challenge[2048], url[400];
  snprintf(url, sizeof url, "%s/v2/", r->base);
  int rc = request_once(r, "GET", url, NULL, NULL, NULL, NULL, NULL, &rep, challenge, sizeof challenge);
  if (!rc && rep.status == 401) {
    if (!challenge[0]) rc = gpux__error(GPUX_E_PARSE, "%s: 401 without a WWW-Authenticate challenge", host);
    else if (!(rc = authenticate(r, challenge))) {
      rc = request_once(r, "GET", url, NULL, NULL, NULL, NULL, NULL, &rep, challenge, sizeof challenge);
      if (!rc && rep.status == 401) rc = fail_auth(r);
    }
  }
  if (!rc && rep.status != 200 && rep.status != 401) {
    char why[300];
    gpux__reply_error(&rep, why, sizeof why);
    rc = gpux__error(GPUX_E_IO, "%s is not an OCI registry (GET /v2/ answered %s)", host, why);
  }
  gpux__reply_free(&rep);
  if (rc) gpux__registry_close(r);
  return rc;
}

void gpux__registry_close(gpux__registry *r) {
  if (r->curl) curl_easy_cleanup(r->curl);
  if (r->auth_header) { OPENSSL_cleanse(r->auth_header, strlen(r->auth_header)); free(r->auth_header); }
  OPENSSL_cleanse(&r->cred, sizeof r->cred);
  memset(r, 0, sizeof *r);
}

/* ---- login ---- */

/* Docker Hub goes by several names; credentials are kept under one. */
static const char *canonical_host(const char *host) {
  return !strcmp(host, "index.docker.io") || !strcmp(host, "registry-1.docker.io") ? "docker.io" : host;
}

int gpux_logout(gpux_store *st, const char *host) {
  if (!host || !*host || strchr(host, '/'))
    return gpux__error(GPUX_E_INVALID, "'%s' is not a registry host (HOST[:PORT])", host ? host : "");
  return gpux__credentials_save(st, canonical_host(host), NULL);
}

int gpux_login(gpux_store *st, const char *host, const gpux_registry_options *o) {
  if (!o || !o->username || !*o->username || !o->password)
    return gpux__error(GPUX_E_INVALID, "login needs a username and a password");
  if (!host || !*host || strchr(host, '/'))
    return gpux__error(GPUX_E_INVALID, "'%s' is not a registry host (HOST[:PORT])", host ? host : "");
  const char *h = canonical_host(host);
  gpux__registry r;
  int rc = gpux__registry_open(&r, st, h, "", "", o);
  if (rc) return rc;
  gpux__registry_close(&r);
  gpux__credentials c;
  snprintf(c.user, sizeof c.user, "%s", o->username);
  snprintf(c.password, sizeof c.password, "%s", o->password);
  rc = gpux__credentials_save(st, h, &c);
  OPENSSL_cleanse(&c, sizeof c);
  return rc;
}
