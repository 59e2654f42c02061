/* pull.c — gpux_pull: fetches an image from an OCI registry into the local store. The manifest
 * is checked against the digest asked for (or the registry's Docker-Content-Digest) and must be a
 * gpux image; each blob streams through sha256 into $GPUX_HOME/tmp/pull-<hex>.part and is renamed
 * into blobs/ only when its size and digest match. An interrupted pull resumes: blobs already in
 * the store are re-verified instead of fetched, and a partial file continues with a Range request. */
#include "registry/registry.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  int fd;
  EVP_MD_CTX *md;
  int64_t have, expect;        /* bytes in the file, bytes the descriptor promises */
  int64_t resumed_from;        /* bytes asked to skip with Range (0 = whole blob) */
  int started;
} download;

static size_t sink(void *ctx, long status, const char *data, size_t len) {
  download *d = ctx;
  if (!d->started) {
    d->started = 1;
    if (status != 206 && d->resumed_from > 0) { /* the registry ignored Range: start over */
      if (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0) return 0;
      EVP_DigestInit_ex(d->md, EVP_sha256(), NULL);
      d->have = 0;
    }
  }
  if (d->have + (int64_t)len > d->expect) {
    gpux__error(GPUX_E_PARSE, "the registry sent more bytes than the descriptor's size (%lld)", (long long)d->expect);
    return 0;
  }
  for (size_t off = 0; off < len;) {
    ssize_t w = gpux__fault("write download") ? -1 : write(d->fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) { gpux__error(GPUX_E_IO, "writing the store: %s", strerror(errno)); return 0; }
    off += (size_t)w;
  }
  EVP_DigestUpdate(d->md, data, len);
  d->have += (int64_t)len;
  return len;
}

static void md_hex(EVP_MD_CTX *md, char digest[72]) {
  unsigned char h[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(md, h, &n);
  static const char hex[] = "0123456789abcdef";
  memcpy(digest, "sha256:", 7);
  for (int i = 0; i < 32; i++) { digest[7 + 2 * i] = hex[h[i] >> 4]; digest[8 + 2 * i] = hex[h[i] & 15]; }
  digest[71] = 0;
}

/* fetches one blob into the store; *fetched = bytes downloaded, -1 when it was already there */
static int fetch_blob(gpux__registry *r, gpux_store *st, const gpux__blob_ref *b, const char *title, int64_t *fetched) {
  char step[300], dest[4096], part[4200];
  *fetched = 0;
  int rc = gpux__store_blob_path(st, b->digest, dest, sizeof dest);
  if (rc) return rc;
  if (b->size < 0) return gpux__error(GPUX_E_PARSE, "%s: the descriptor of %s has no size", r->host, title);
  if (gpux__store_has_blob(st, b)) {
    if (!gpux__store_verify_blob(st, b)) {
      snprintf(step, sizeof step, "have:%s", title);
      if (r->progress) r->progress(r->progress_ctx, step, b->size, b->size);
      *fetched = -1;
      return 0;
    }
    unlink(dest); /* corrupt in the store: fetch it again */
  }
  snprintf(part, sizeof part, "%s/tmp/pull-%s.part", st->root, b->digest + 7);
  int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return gpux__error(GPUX_E_IO, "%s: %s", part, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    close(fd);
    return gpux__error(GPUX_E_IO, "%s is being downloaded by another gpux process", title);
  }
  download d = {.fd = fd, .md = EVP_MD_CTX_new(), .expect = b->size};
  if (!d.md || !EVP_DigestInit_ex(d.md, EVP_sha256(), NULL)) { close(fd); EVP_MD_CTX_free(d.md); return gpux__error(GPUX_E_INTERNAL, "sha256 is not available"); }
  /* what an interrupted pull left: hash it, then ask for the rest */
  struct stat sb;
  if (fstat(fd, &sb) == 0 && sb.st_size > 0 && sb.st_size < b->size) {
    static _Thread_local char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) { EVP_DigestUpdate(d.md, buf, (size_t)n); d.have += n; }
    if (n < 0 || d.have != sb.st_size) { d.have = 0; EVP_DigestInit_ex(d.md, EVP_sha256(), NULL); }
  }
  if (d.have == 0 || d.have >= b->size) {
    if (ftruncate(fd, 0) < 0) { /* ignore: the sink rewrites from 0 */ }
    lseek(fd, 0, SEEK_SET);
    EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);
    d.have = 0;
  }
  d.resumed_from = d.have;
  struct curl_slist *h = NULL;
  if (d.have > 0) {
    char range[64];
    snprintf(range, sizeof range, "Range: bytes=%lld-", (long long)d.have);
    h = curl_slist_append(h, range);
  }
  snprintf(step, sizeof step, "download:%s", title);
  r->prog_base = d.have;
  r->prog_total = b->size;
  if (r->progress) r->progress(r->progress_ctx, step, d.have, b->size);
  char path[300];
  snprintf(path, sizeof path, "blobs/%s", b->digest);
  gpux__reply rep = {0};
  rc = gpux__registry_request(r, "GET", path, h, NULL, sink, &d, step, &rep);
  curl_slist_free_all(h);
  if (rc) rc = gpux__error_prefix(rc, "%s: ", title);
  else if (rep.status != 200 && rep.status != 206) {
    char why[400];
    gpux__reply_error(&rep, why, sizeof why);
    if (rep.status == 416) ftruncate(fd, 0); /* our partial file is longer than the blob: start over next time */
    rc = gpux__error(rep.status == 404 ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: fetching %s (%.19s) failed: %s", r->host, title, b->digest, why);
  }
  gpux__reply_free(&rep);
  *fetched = d.have - d.resumed_from;
  if (!rc) {
    char got[72];
    md_hex(d.md, got);
    if (d.have != b->size || strcmp(got, b->digest)) {
      rc = d.have != b->size
        ? gpux__error(GPUX_E_PARSE, "%s: %s is truncated: %lld of %lld bytes", r->host, title, (long long)d.have, (long long)b->size)
        : gpux__error(GPUX_E_PARSE, "%s: %s is corrupt: it should be %.19s but its content hashes to %.19s; nothing was stored",
                      r->host, title, b->digest, got);
      unlink(part);
    } else if (gpux__fault("fsync download") || fsync(fd) < 0 || gpux__fault("rename download") || rename(part, dest) < 0) {
      rc = gpux__error(GPUX_E_IO, "%s: %s", dest, strerror(errno));
      unlink(part);
    }
  }
  EVP_MD_CTX_free(d.md);
  close(fd);
  if (!rc && r->progress) r->progress(r->progress_ctx, step, b->size, b->size);
  return rc;
}

static int valid_digest(const char *d) {
  if (!d || strncmp(d, "sha256:", 7) || strlen(d) != 71) return 0;
  for (int i = 7; i < 71; i++)
    if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f'))) return 0;
  return 1;
}

/* checks the manifest is an OCI image manifest of a gpux image; fills the blobs to fetch */
int gpux__registry_parse_manifest(const char *host, const char *text, gpux__blob_ref *blobs, char (*titles)[256], int cap, int *n) {
  cJSON *m = cJSON_Parse(text);
  if (!m) return gpux__error(GPUX_E_PARSE, "%s: the manifest is not JSON", host);
  int rc = 0;
  const char *mt = cJSON_GetStringValue(cJSON_GetObjectItem(m, "mediaType"));
  const char *at = cJSON_GetStringValue(cJSON_GetObjectItem(m, "artifactType"));
  const cJSON *cfg = cJSON_GetObjectItem(m, "config"), *layers = cJSON_GetObjectItem(m, "layers"), *l;
  const char *cmt = cJSON_GetStringValue(cJSON_GetObjectItem(cfg, "mediaType"));
  if (mt && !strcmp(mt, GPUX_MEDIA_INDEX)) {
    rc = gpux__error(GPUX_E_UNSUPPORTED, "%s: the reference names an image index (several platforms), not a gpux image", host);
  } else if (!mt || strcmp(mt, GPUX_MEDIA_MANIFEST)) {
    rc = gpux__error(GPUX_E_UNSUPPORTED, "%s: not an OCI image manifest (mediaType %s)", host, mt ? mt : "missing");
  } else if (!((at && !strcmp(at, GPUX_ARTIFACT_TYPE)) || (cmt && !strcmp(cmt, GPUX_MEDIA_CONFIG)))) {
    rc = gpux__error(GPUX_E_UNSUPPORTED, "%s: not a gpux image (artifactType %s, config %s)", host, at ? at : "none", cmt ? cmt : "none");
  } else if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) + 1 > cap) {
    rc = gpux__error(GPUX_E_PARSE, "%s: the manifest's layers are missing or too many", host);
  } else {
    *n = 0;
    const cJSON *all[1 + 4096];
    int k = 0;
    all[k++] = cfg;
    cJSON_ArrayForEach(l, layers) all[k++] = l;
    for (int i = 0; i < k && !rc; i++) {
      const char *d = cJSON_GetStringValue(cJSON_GetObjectItem(all[i], "digest"));
      const cJSON *sz = cJSON_GetObjectItem(all[i], "size");
      const char *title = i ? cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(all[i], "annotations"), GPUX_ANNOT_TITLE)) : "config";
      if (!valid_digest(d) || !cJSON_IsNumber(sz) || sz->valuedouble < 0) {
        rc = gpux__error(GPUX_E_PARSE, "%s: descriptor %d of the manifest has no valid sha256 digest and size", host, i);
        break;
      }
      if (!title || !*title || strchr(title, '/') || title[0] == '.') {
        rc = gpux__error(GPUX_E_PARSE, "%s: layer %d has no title or an unsafe one", host, i);
        break;
      }
      snprintf(blobs[*n].digest, sizeof blobs[*n].digest, "%s", d);
      blobs[*n].size = (int64_t)sz->valuedouble;
      snprintf(titles[*n], 256, "%s", title);
      (*n)++;
    }
  }
  cJSON_Delete(m);
  return rc;
}

int gpux_pull(gpux_store *st, const char *remote_ref, const gpux_registry_options *o, char **summary_json) {
  if (summary_json) *summary_json = NULL;
  gpux__reference ref;
  int rc = gpux__reference_parse(remote_ref, &ref);
  if (rc) return rc;
  gpux__registry r;
  if ((rc = gpux__registry_open(&r, st, ref.host, ref.repo, "pull", o))) return rc;

  char path[400];
  snprintf(path, sizeof path, "manifests/%s", ref.digest[0] ? ref.digest : ref.tag);
  struct curl_slist *h = curl_slist_append(NULL, "Accept: " GPUX_MEDIA_MANIFEST ", " GPUX_MEDIA_INDEX);
  gpux__reply rep = {0};
  if (r.progress) r.progress(r.progress_ctx, "manifest", 0, 0);
  rc = gpux__registry_request(&r, "GET", path, h, NULL, NULL, NULL, NULL, &rep);
  curl_slist_free_all(h);
  char digest[72] = "";
  if (!rc && rep.status != 200) {
    char why[400];
    gpux__reply_error(&rep, why, sizeof why);
    rc = rep.status == 404 ? gpux__error(GPUX_E_NOTFOUND, "%s/%s:%s is not in the registry (%s)", ref.host, ref.repo,
                                         ref.digest[0] ? ref.digest : ref.tag, why)
         : rep.status == 401 || rep.status == 403 ? gpux__error(GPUX_E_INVALID, "%s: no pull access to %s (%s)", ref.host, ref.repo, why)
         : gpux__error(GPUX_E_IO, "%s: fetching the manifest failed: %s", ref.host, why);
  }
  if (!rc) {
    gpux__sha256_bytes(rep.body ? rep.body : "", rep.body_len, digest);
    if (ref.digest[0] && strcmp(digest, ref.digest))
      rc = gpux__error(GPUX_E_PARSE, "%s: the manifest's content hashes to %.19s, not the %.19s asked for", ref.host, digest, ref.digest);
    else if (!ref.digest[0] && !strncmp(rep.digest, "sha256:", 7) && strcmp(rep.digest, digest))
      rc = gpux__error(GPUX_E_PARSE, "%s: the manifest's content hashes to %.19s, not the %.19s the registry announced", ref.host, digest, rep.digest);
    else if (!rep.body || strlen(rep.body) != rep.body_len)
      rc = gpux__error(GPUX_E_PARSE, "%s: the manifest is empty or binary", ref.host);
  }
  static _Thread_local gpux__blob_ref blobs[257];
  static _Thread_local char titles[257][256];
  int n = 0;
  if (!rc) rc = gpux__registry_parse_manifest(ref.host, rep.body, blobs, titles, 257, &n);
  int64_t bytes = 0, total = (int64_t)rep.body_len;
  int downloaded = 0, present = 0;
  /* blobs are untagged until the tag below: a lease keeps a concurrent rm from collecting them */
  int lease = rc ? -1 : gpux__store_lease(st);
  if (!rc && lease < 0) rc = lease;
  for (int i = 0; !rc && i < n; i++) {
    int64_t got = 0;
    total += blobs[i].size;
    rc = fetch_blob(&r, st, &blobs[i], titles[i], &got);
    if (!rc) { if (got < 0) present++; else { downloaded++; bytes += got; } }
  }
  gpux__blob_ref man;
  if (!rc) rc = gpux__store_put_bytes(st, rep.body, rep.body_len, &man);
  if (!rc) rc = gpux__store_set_ref(st, ref.local, &man);
  gpux__store_release(lease);
  /* content the registry got wrong: what this pull stored before (the config) does not stay; after
   * a network error it does, so that the next pull resumes */
  if (rc == GPUX_E_PARSE && downloaded) gpux__store_collect(st);
  gpux__reply_free(&rep);
  gpux__registry_close(&r);
  if (!rc && summary_json) {
    cJSON *s = cJSON_CreateObject();
    char canon[600];
    gpux__ref_normalize(ref.local, canon, sizeof canon);
    cJSON_AddStringToObject(s, "reference", canon);
    cJSON_AddStringToObject(s, "digest", man.digest);
    cJSON_AddNumberToObject(s, "size", (double)total);
    cJSON_AddNumberToObject(s, "downloaded_bytes", (double)bytes);
    cJSON_AddNumberToObject(s, "blobs_downloaded", downloaded);
    cJSON_AddNumberToObject(s, "blobs_present", present);
    *summary_json = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    if (!*summary_json) rc = gpux__error(GPUX_E_NOMEM, "out of memory");
  }
  return rc;
}
