/* store.c — the local image store: an OCI image layout (oci-layout, index.json, blobs/sha256/)
 * under $GPUX_HOME. Blobs are content-addressed and written atomically (temporary file, fsync,
 * rename); index.json is rewritten atomically under an exclusive flock so that concurrent gpux
 * processes never corrupt it; every blob read is verified against its digest.
 *
 * Garbage collection and writers. `gpux rm` deletes the blobs no tagged image references. A
 * build or pull writes its blobs first and tags the image last, so between the two its blobs
 * are referenced by nothing; a blob it found already present (and so did not write) is in the
 * same state. Writers therefore hold a lease from before their first "is this blob here?" check
 * until their tag is in the index: a shared flock on gc.lock (gpux__store_lease). The collector
 * needs that lock exclusively and only tries for it (LOCK_NB) while it holds the index lock:
 * when any lease is held it collects nothing this time and the garbage waits for the next rm.
 * So a collection never overlaps a writer, rm never waits for a long pull, and a writer killed
 * with -9 drops its lease with its file descriptor (flock), never blocking collection forever. */
#include "store/store.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- sha256 ---- */

static void hex_digest(const unsigned char *md, char digest[72]) {
  static const char hex[] = "0123456789abcdef";
  memcpy(digest, "sha256:", 7);
  for (int i = 0; i < 32; i++) {
    digest[7 + 2 * i] = hex[md[i] >> 4];
    digest[8 + 2 * i] = hex[md[i] & 15];
  }
  digest[71] = 0;
}

void gpux__sha256_bytes(const void *data, size_t len, char digest[72]) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
  hex_digest(md, digest);
}

/* Copies `in` to `out` (when out >= 0) while hashing. */
static int hash_stream(int in, int out, char digest[72], int64_t *size, const char *what) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
    EVP_MD_CTX_free(ctx);
    return gpux__error(GPUX_E_INTERNAL, "sha256 is not available");
  }
  static _Thread_local unsigned char buf[1 << 16];
  int64_t total = 0;
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { EVP_MD_CTX_free(ctx); return gpux__error(GPUX_E_IO, "%s: read: %s", what, strerror(errno)); }
    if (n == 0) break;
    EVP_DigestUpdate(ctx, buf, (size_t)n);
    for (ssize_t off = 0; out >= 0 && off < n;) {
      ssize_t w = gpux__fault("write blob") ? -1 : write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        EVP_MD_CTX_free(ctx);
        return gpux__error(GPUX_E_IO, "writing the store: %s", strerror(errno)); /* ENOSPC lands here */
      }
      off += w;
    }
    total += n;
  }
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_DigestFinal_ex(ctx, md, &mdlen);
  EVP_MD_CTX_free(ctx);
  hex_digest(md, digest);
  if (size) *size = total;
  return 0;
}

int gpux__sha256_file(const char *path, char digest[72], int64_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return gpux__error(errno == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: %s", path, strerror(errno));
  int rc = hash_stream(fd, -1, digest, size, path);
  close(fd);
  return rc;
}

/* ---- paths and files ---- */

static int mkdirs(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return gpux__error(GPUX_E_IO, "%s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return gpux__error(GPUX_E_IO, "%s: %s", tmp, strerror(errno));
  return 0;
}

static int valid_digest(const char *d) {
  if (strncmp(d, "sha256:", 7) || strlen(d) != 71) return 0;
  for (int i = 7; i < 71; i++)
    if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f'))) return 0;
  return 1;
}

int gpux__store_blob_path(const gpux_store *st, const char *digest, char *buf, size_t len) {
  if (!valid_digest(digest)) return gpux__error(GPUX_E_INVALID, "'%s' is not a sha256 digest", digest);
  snprintf(buf, len, "%s/blobs/sha256/%s", st->root, digest + 7);
  return 0;
}

int gpux__store_has_blob(const gpux_store *st, const gpux__blob_ref *ref) {
  char path[4096];
  struct stat sb;
  if (gpux__store_blob_path(st, ref->digest, path, sizeof path)) return 0;
  return stat(path, &sb) == 0 && sb.st_size == ref->size;
}

/* A new temporary file in the store's tmp/ folder (same file system as blobs/, for rename). */
static int temp_file(gpux_store *st, char *path, size_t len) {
  snprintf(path, len, "%s/tmp/write-XXXXXX", st->root);
  int fd = gpux__fault("create temporary file") ? -1 : mkstemp(path);
  if (fd < 0) return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(errno));
  return fd;
}

/* fsync + rename into place: the destination either does not exist or is complete. */
static int commit_file(int fd, const char *tmp, const char *dest) {
  if (gpux__fault("fsync") || fsync(fd) < 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return gpux__error(GPUX_E_IO, "writing %s: %s", dest, strerror(e));
  }
  close(fd);
  if (gpux__fault("rename into place") || rename(tmp, dest) < 0) {
    int e = errno;
    unlink(tmp);
    return gpux__error(GPUX_E_IO, "%s: %s", dest, strerror(e));
  }
  return 0;
}

static int write_file_atomic(gpux_store *st, const char *dest, const void *data, size_t len) {
  char tmp[4096];
  int fd = temp_file(st, tmp, sizeof tmp);
  if (fd < 0) return fd;
  for (size_t off = 0; off < len;) {
    ssize_t w = gpux__fault("write file") ? -1 : write(fd, (const char *)data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      return gpux__error(GPUX_E_IO, "writing %s: %s", dest, strerror(e));
    }
    off += (size_t)w;
  }
  return commit_file(fd, tmp, dest);
}

int gpux__store_put_file(gpux_store *st, const char *path, gpux__blob_ref *out) {
  int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0) return gpux__error(errno == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: %s", path, strerror(errno));
  char tmp[4096];
  int fd = temp_file(st, tmp, sizeof tmp);
  if (fd < 0) { close(in); return fd; }
  int rc = hash_stream(in, fd, out->digest, &out->size, path);
  close(in);
  if (rc) { close(fd); unlink(tmp); return rc; }
  char dest[4096];
  gpux__store_blob_path(st, out->digest, dest, sizeof dest);
  if (gpux__store_has_blob(st, out)) { /* identical content is stored once */
    close(fd);
    unlink(tmp);
    return 0;
  }
  return commit_file(fd, tmp, dest);
}

int gpux__store_put_bytes(gpux_store *st, const void *data, size_t len, gpux__blob_ref *out) {
  gpux__sha256_bytes(data, len, out->digest);
  out->size = (int64_t)len;
  if (gpux__store_has_blob(st, out)) return 0;
  char dest[4096];
  gpux__store_blob_path(st, out->digest, dest, sizeof dest);
  return write_file_atomic(st, dest, data, len);
}

int gpux__store_verify_blob(gpux_store *st, const gpux__blob_ref *ref) {
  char path[4096], got[72];
  int64_t size;
  int rc = gpux__store_blob_path(st, ref->digest, path, sizeof path);
  if (rc) return rc;
  if ((rc = gpux__sha256_file(path, got, &size))) return rc;
  if (strcmp(got, ref->digest) || (ref->size >= 0 && size != ref->size))
    return gpux__error(GPUX_E_PARSE, "blob %.19s is corrupt: its content hashes to %.19s", ref->digest, got);
  return 0;
}

int gpux__store_read_blob(gpux_store *st, const char *digest, char **data, size_t *len) {
  char path[4096], got[72];
  *data = NULL;
  int rc = gpux__store_blob_path(st, digest, path, sizeof path);
  if (rc) return rc;
  FILE *f = fopen(path, "rb");
  if (!f) return gpux__error(GPUX_E_NOTFOUND, "blob %.19s is missing from the store", digest);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = n >= 0 ? gpux__malloc((size_t)n + 1) : NULL;
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    return buf ? gpux__error(GPUX_E_IO, "%s: read failed", path) : GPUX_E_NOMEM;
  }
  fclose(f);
  buf[n] = 0;
  gpux__sha256_bytes(buf, (size_t)n, got);
  if (strcmp(got, digest)) {
    free(buf);
    return gpux__error(GPUX_E_PARSE, "blob %.19s is corrupt: its content hashes to %.19s", digest, got);
  }
  *data = buf;
  if (len) *len = (size_t)n;
  return 0;
}

/* ---- references ---- */

int gpux__ref_normalize(const char *ref, char *out, size_t len) {
  if (!ref || !*ref) return gpux__error(GPUX_E_INVALID, "empty image name");
  const char *colon = strrchr(ref, ':');
  const char *slash = strrchr(ref, '/');
  if (colon && slash && colon < slash) colon = NULL; /* a registry port, not a tag */
  size_t name_len = colon ? (size_t)(colon - ref) : strlen(ref);
  const char *tag = colon ? colon + 1 : "latest";
  if (name_len == 0) return gpux__error(GPUX_E_INVALID, "'%s': the image name is empty", ref);
  for (size_t i = 0; i < name_len; i++) {
    char c = ref[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/' || c == ':'))
      return gpux__error(GPUX_E_INVALID, "'%s': image names use lowercase letters, digits and . _ - /", ref);
  }
  if (!*tag || strlen(tag) > 128) return gpux__error(GPUX_E_INVALID, "'%s': the tag is empty or too long", ref);
  for (const char *t = tag; *t; t++)
    if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') || *t == '.' || *t == '_' || *t == '-'))
      return gpux__error(GPUX_E_INVALID, "'%s': tags use letters, digits and . _ -", ref);
  if (name_len + strlen(tag) + 2 > len) return gpux__error(GPUX_E_INVALID, "'%s': too long", ref);
  snprintf(out, len, "%.*s:%s", (int)name_len, ref, tag);
  return 0;
}

/* ---- the index ---- */

static int lock_index(gpux_store *st) {
  char path[4096];
  snprintf(path, sizeof path, "%s/index.json.lock", st->root);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(errno));
  while (flock(fd, LOCK_EX) < 0)
    if (errno != EINTR) { close(fd); return gpux__error(GPUX_E_IO, "%s: lock: %s", path, strerror(errno)); }
  return fd;
}

static void unlock_index(int fd) {
  if (fd >= 0) { flock(fd, LOCK_UN); close(fd); }
}

static cJSON *read_index(gpux_store *st) {
  char path[4096];
  snprintf(path, sizeof path, "%s/index.json", st->root);
  FILE *f = fopen(path, "rb");
  cJSON *idx = NULL;
  if (f) {
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
      buf[n] = 0;
      idx = cJSON_Parse(buf);
    }
    free(buf);
    fclose(f);
  }
  if (!idx || !cJSON_IsArray(cJSON_GetObjectItem(idx, "manifests"))) {
    cJSON_Delete(idx);
    idx = cJSON_CreateObject();
    cJSON_AddNumberToObject(idx, "schemaVersion", 2);
    cJSON_AddStringToObject(idx, "mediaType", GPUX_MEDIA_INDEX);
    cJSON_AddItemToObject(idx, "manifests", cJSON_CreateArray());
  }
  return idx;
}

static int write_index(gpux_store *st, cJSON *idx) {
  char path[4096];
  snprintf(path, sizeof path, "%s/index.json", st->root);
  char *text = cJSON_Print(idx);
  if (!text) return gpux__error(GPUX_E_NOMEM, "out of memory writing the index");
  int rc = write_file_atomic(st, path, text, strlen(text));
  free(text);
  return rc;
}

static const char *entry_ref(const cJSON *m) {
  const cJSON *ann = cJSON_GetObjectItem(m, "annotations");
  const cJSON *r = ann ? cJSON_GetObjectItem(ann, GPUX_ANNOT_REF) : NULL;
  return cJSON_IsString(r) ? r->valuestring : NULL;
}

/* index entry for a canonical ref, or NULL */
static cJSON *find_entry(cJSON *idx, const char *ref, int *pos) {
  cJSON *list = cJSON_GetObjectItem(idx, "manifests"), *m;
  int i = 0;
  cJSON_ArrayForEach(m, list) {
    const char *r = entry_ref(m);
    if (r && !strcmp(r, ref)) { if (pos) *pos = i; return m; }
    i++;
  }
  return NULL;
}

int gpux__store_set_ref(gpux_store *st, const char *ref, const gpux__blob_ref *manifest) {
  char canon[512];
  int rc = gpux__ref_normalize(ref, canon, sizeof canon);
  if (rc) return rc;
  int lock = lock_index(st);
  if (lock < 0) return lock;
  cJSON *idx = read_index(st);
  int pos;
  if (find_entry(idx, canon, &pos)) cJSON_DeleteItemFromArray(cJSON_GetObjectItem(idx, "manifests"), pos);
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "mediaType", GPUX_MEDIA_MANIFEST);
  cJSON_AddStringToObject(e, "digest", manifest->digest);
  cJSON_AddNumberToObject(e, "size", (double)manifest->size);
  cJSON_AddStringToObject(e, "artifactType", GPUX_ARTIFACT_TYPE);
  cJSON *ann = cJSON_AddObjectToObject(e, "annotations");
  cJSON_AddStringToObject(ann, GPUX_ANNOT_REF, canon);
  cJSON_AddItemToArray(cJSON_GetObjectItem(idx, "manifests"), e);
  rc = write_index(st, idx);
  cJSON_Delete(idx);
  unlock_index(lock);
  return rc;
}

/* The "no image" error, suggesting the stored image whose name is closest to the one asked for
 * (names compared without their tags: "ocr:2.0" suggests "ocr:1.0", "zzz" suggests nothing). */
static int no_image(gpux_store *st, const cJSON *idx, const char *ref) {
  enum { MAX_NAMES = 256 };
  char(*names)[256] = gpux__calloc(MAX_NAMES, sizeof *names);
  const char *list[MAX_NAMES + 1], *refs[MAX_NAMES];
  int n = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(idx, "manifests")) {
    const char *r = entry_ref(m), *colon = r ? strrchr(r, ':') : NULL;
    if (!names || !r || n == MAX_NAMES) continue;
    snprintf(names[n], sizeof names[n], "%.*s", (int)(colon ? colon - r : (long)strlen(r)), r);
    list[n] = names[n];
    refs[n++] = r;
  }
  list[n] = NULL;
  char want[256];
  const char *colon = strrchr(ref, ':');
  snprintf(want, sizeof want, "%.*s", (int)(colon ? colon - ref : (long)strlen(ref)), ref);
  const char *near = gpux__closest_name(want, list);
  int rc = gpux__error(GPUX_E_NOTFOUND, "no image '%s' in %s (see gpux list)", ref, st->root);
  for (int i = 0; i < n; i++)
    if (list[i] == near) {
      rc = gpux__error(GPUX_E_NOTFOUND, "no image '%s' in %s (did you mean '%s'?)", ref, st->root, refs[i]);
      break;
    }
  free(names);
  return rc;
}

static int is_hex_prefix(const char *s) {
  size_t n = strlen(s);
  if (n < 12 || n > 64) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

int gpux__store_resolve(gpux_store *st, const char *ref, gpux__blob_ref *manifest, char *canonical, size_t len) {
  cJSON *idx = read_index(st), *m;
  int rc = GPUX_E_NOTFOUND;
  const char *hex = !strncmp(ref, "sha256:", 7) ? ref + 7 : is_hex_prefix(ref) ? ref : NULL;
  char canon[512] = "";
  if (!hex && (rc = gpux__ref_normalize(ref, canon, sizeof canon))) { cJSON_Delete(idx); return rc; }
  rc = GPUX_E_NOTFOUND;
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(idx, "manifests")) {
    const cJSON *d = cJSON_GetObjectItem(m, "digest"), *sz = cJSON_GetObjectItem(m, "size");
    const char *r = entry_ref(m);
    if (!cJSON_IsString(d)) continue;
    int match = hex ? !strncmp(d->valuestring + 7, hex, strlen(hex)) : (r && !strcmp(r, canon));
    if (!match) continue;
    snprintf(manifest->digest, sizeof manifest->digest, "%s", d->valuestring);
    manifest->size = cJSON_IsNumber(sz) ? (int64_t)sz->valuedouble : -1;
    if (canonical) snprintf(canonical, len, "%s", r ? r : "");
    rc = 0;
    break;
  }
  if (rc) rc = no_image(st, idx, canon[0] ? canon : ref);
  cJSON_Delete(idx);
  return rc;
}

/* ---- images ---- */

static cJSON *descriptor(const char *media_type, const gpux__blob_ref *b) {
  cJSON *d = cJSON_CreateObject();
  cJSON_AddStringToObject(d, "mediaType", media_type);
  cJSON_AddStringToObject(d, "digest", b->digest);
  cJSON_AddNumberToObject(d, "size", (double)b->size);
  return d;
}

/* config, layers, manifest, then the tag: under a lease so that no rm collects them midway */
static int write_image_leased(gpux_store *st, const char *ref, const char *config_json,
                              const gpux__layer_src *layers, int n_layers, gpux__blob_ref *manifest_out) {
  gpux__blob_ref config = {0}, manifest = {0};
  int rc = gpux__store_put_bytes(st, config_json, strlen(config_json), &config);
  if (rc) return rc;
  cJSON *man = cJSON_CreateObject();
  cJSON_AddNumberToObject(man, "schemaVersion", 2);
  cJSON_AddStringToObject(man, "mediaType", GPUX_MEDIA_MANIFEST);
  cJSON_AddStringToObject(man, "artifactType", GPUX_ARTIFACT_TYPE);
  cJSON_AddItemToObject(man, "config", descriptor(GPUX_MEDIA_CONFIG, &config));
  cJSON *arr = cJSON_AddArrayToObject(man, "layers");
  for (int i = 0; i < n_layers; i++) {
    gpux__blob_ref b;
    if ((rc = gpux__store_put_file(st, layers[i].path, &b))) { cJSON_Delete(man); return rc; }
    cJSON *d = descriptor(layers[i].media_type, &b);
    cJSON *ann = cJSON_AddObjectToObject(d, "annotations");
    cJSON_AddStringToObject(ann, GPUX_ANNOT_TITLE, layers[i].title);
    cJSON_AddItemToArray(arr, d);
  }
  /* a build's time is part of the image only when SOURCE_DATE_EPOCH fixes it (reproducible
   * builds); otherwise the time is local (gpux__store_put_local) and the digest is the content's */
  const char *sde = getenv("SOURCE_DATE_EPOCH");
  char *end = NULL;
  long long epoch = sde && *sde ? strtoll(sde, &end, 10) : -1;
  if (epoch >= 0 && end && !*end) {
    char created[32];
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON *ann = cJSON_AddObjectToObject(man, "annotations");
    cJSON_AddStringToObject(ann, GPUX_ANNOT_CREATED, created);
  }
  char *text = cJSON_Print(man);
  cJSON_Delete(man);
  if (!text) return gpux__error(GPUX_E_NOMEM, "out of memory");
  rc = gpux__store_put_bytes(st, text, strlen(text), &manifest);
  free(text);
  if (!rc) rc = gpux__store_set_ref(st, ref, &manifest);
  if (!rc) *manifest_out = manifest;
  return rc;
}

static int local_path(const gpux_store *st, const char *digest, char *buf, size_t len) {
  if (!valid_digest(digest)) return gpux__error(GPUX_E_INVALID, "'%s' is not a sha256 digest", digest);
  snprintf(buf, len, "%s/local/%s.json", st->root, digest + 7);
  return 0;
}

int gpux__store_put_local(gpux_store *st, const char *manifest_digest, const char *json) {
  char path[4096];
  int rc = local_path(st, manifest_digest, path, sizeof path);
  return rc ? rc : write_file_atomic(st, path, json, strlen(json));
}

char *gpux__store_get_local(gpux_store *st, const char *manifest_digest) {
  char path[4096], *data = NULL;
  if (local_path(st, manifest_digest, path, sizeof path)) return NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  data = gpux__malloc(cap + 1);
  while (data) {   /* a few hundred bytes; at most 1 MiB is read */
    n += fread(data + n, 1, cap - n, f);
    if (n < cap || cap >= (1 << 20)) break;
    char *nd = gpux__realloc(data, cap * 2 + 1);
    if (!nd) { free(data); data = NULL; break; }
    data = nd;
    cap *= 2;
  }
  fclose(f);
  if (data) data[n] = 0;
  return data;
}

int gpux__store_write_image(gpux_store *st, const char *ref, const char *config_json,
                            const gpux__layer_src *layers, int n_layers, gpux__blob_ref *manifest_out) {
  gpux__blob_ref manifest;
  int lease = gpux__store_lease(st);
  if (lease < 0) return lease;
  int rc = write_image_leased(st, ref, config_json, layers, n_layers, &manifest);
  gpux__store_release(lease);
  if (!rc && manifest_out) *manifest_out = manifest;
  return rc;
}

void gpux__oci_image_free(gpux__oci_image *img) {
  free(img->manifest_json);
  free(img->config_json);
  free(img->layers);
  memset(img, 0, sizeof *img);
}

int gpux__store_load_image(gpux_store *st, const char *ref, gpux__oci_image *img) {
  memset(img, 0, sizeof *img);
  int rc = gpux__store_resolve(st, ref, &img->manifest, img->ref, sizeof img->ref);
  if (rc) return rc;
  size_t len;
  if ((rc = gpux__store_read_blob(st, img->manifest.digest, &img->manifest_json, &len))) return rc;
  cJSON *man = cJSON_Parse(img->manifest_json);
  const cJSON *cfg = man ? cJSON_GetObjectItem(man, "config") : NULL;
  const cJSON *cd = cfg ? cJSON_GetObjectItem(cfg, "digest") : NULL;
  const cJSON *layers = man ? cJSON_GetObjectItem(man, "layers") : NULL;
  if (!cJSON_IsString(cd) || !cJSON_IsArray(layers)) {
    cJSON_Delete(man);
    gpux__oci_image_free(img);
    return gpux__error(GPUX_E_PARSE, "image '%s': the manifest is not a gpux image", ref);
  }
  snprintf(img->config.digest, sizeof img->config.digest, "%s", cd->valuestring);
  if ((rc = gpux__store_read_blob(st, img->config.digest, &img->config_json, &len))) {
    cJSON_Delete(man);
    gpux__oci_image_free(img);
    return rc;
  }
  img->config.size = (int64_t)len;
  int n = cJSON_GetArraySize(layers);
  img->layers = gpux__calloc((size_t)n + 1, sizeof *img->layers);
  if (!img->layers) { cJSON_Delete(man); gpux__oci_image_free(img); return GPUX_E_NOMEM; }
  const cJSON *l;
  cJSON_ArrayForEach(l, layers) {
    gpux__layer *L = &img->layers[img->n_layers];
    const cJSON *d = cJSON_GetObjectItem(l, "digest"), *sz = cJSON_GetObjectItem(l, "size");
    const cJSON *mt = cJSON_GetObjectItem(l, "mediaType"), *ann = cJSON_GetObjectItem(l, "annotations");
    const cJSON *title = ann ? cJSON_GetObjectItem(ann, GPUX_ANNOT_TITLE) : NULL;
    if (!cJSON_IsString(d) || !cJSON_IsString(title) || strchr(title->valuestring, '/') || title->valuestring[0] == '.') {
      cJSON_Delete(man);
      gpux__oci_image_free(img);
      return gpux__error(GPUX_E_PARSE, "image '%s': a layer has no digest or a bad title", ref);
    }
    snprintf(L->blob.digest, sizeof L->blob.digest, "%s", d->valuestring);
    L->blob.size = cJSON_IsNumber(sz) ? (int64_t)sz->valuedouble : -1;
    snprintf(L->title, sizeof L->title, "%s", title->valuestring);
    snprintf(L->media_type, sizeof L->media_type, "%s", cJSON_IsString(mt) ? mt->valuestring : "");
    img->n_layers++;
  }
  cJSON_Delete(man);
  return 0;
}

int gpux__oci_image_dir(gpux_store *st, const gpux__oci_image *img, char *dir, size_t len) {
  snprintf(dir, len, "%s/run/%.16s", st->root, img->manifest.digest + 7);
  char ready[4200];
  snprintf(ready, sizeof ready, "%s/.verified", dir);
  struct stat sb;
  int verified = stat(ready, &sb) == 0;
  int rc = mkdirs(dir);
  if (rc) return rc;
  for (int i = 0; i < img->n_layers; i++) {
    const gpux__layer *L = &img->layers[i];
    char blob[4096], link_path[4400];
    gpux__store_blob_path(st, L->blob.digest, blob, sizeof blob);
    /* verified once per image folder; a changed blob size still triggers a re-check */
    if (!verified || stat(blob, &sb) || sb.st_size != L->blob.size) {
      if ((rc = gpux__store_verify_blob(st, &L->blob))) return gpux__error_prefix(rc, "layer '%s': ", L->title);
      verified = 0;
    }
    snprintf(link_path, sizeof link_path, "%s/%s", dir, L->title);
    unlink(link_path);
    if (symlink(blob, link_path) < 0) return gpux__error(GPUX_E_IO, "%s: %s", link_path, strerror(errno));
  }
  if (!verified) {
    int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
  }
  return 0;
}

/* ---- leases and garbage collection: blobs no tagged image uses ---- */

int gpux__store_lease(gpux_store *st) {
  char path[4096];
  snprintf(path, sizeof path, "%s/gc.lock", st->root);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(errno));
  while (flock(fd, LOCK_SH) < 0)
    if (errno != EINTR) { close(fd); return gpux__error(GPUX_E_IO, "%s: lock: %s", path, strerror(errno)); }
  return fd;
}

void gpux__store_release(int lease) {
  if (lease >= 0) close(lease); /* closing the descriptor drops the flock */
}

static int cmp_digest(const void *a, const void *b) { return strcmp(a, b); }

typedef struct {
  char (*d)[72];
  size_t n, cap;
} digest_set;

static int keep_digest(digest_set *k, const cJSON *item) {
  if (!cJSON_IsString(item) || !valid_digest(item->valuestring)) return 0;
  if (k->n == k->cap) {
    size_t cap = k->cap ? k->cap * 2 : 256;
    void *nd = realloc(k->d, cap * sizeof *k->d);
    if (!nd) return GPUX_E_NOMEM;
    k->d = nd;
    k->cap = cap;
  }
  memcpy(k->d[k->n++], item->valuestring, 72);
  return 0;
}

/* Deletes every blob that no manifest of the index references (the manifest itself, its config
 * and all its layers). Called with the index lock held. Collects nothing when a writer holds a
 * lease, or when a tagged manifest cannot be read (its blobs would be unknown). */
static int collect_garbage(gpux_store *st, cJSON *idx) {
  char path[4200];
  snprintf(path, sizeof path, "%s/gc.lock", st->root);
  int gc = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (gc < 0) return 0; /* garbage stays; nothing is lost */
  if (flock(gc, LOCK_EX | LOCK_NB) < 0) { close(gc); return 0; } /* a build or pull is writing */
  digest_set keep = {0};
  int rc = 0, unreadable = 0;
  cJSON *m;
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(idx, "manifests")) {
    const cJSON *d = cJSON_GetObjectItem(m, "digest");
    if (!cJSON_IsString(d)) continue;
    char *text = NULL;
    size_t len;
    cJSON *man = NULL;
    if (!gpux__store_read_blob(st, d->valuestring, &text, &len)) man = cJSON_Parse(text);
    free(text);
    if (!man) { unreadable = 1; break; }
    const cJSON *cfg = cJSON_GetObjectItem(man, "config"), *l;
    if (!(rc = keep_digest(&keep, d)) && cfg) rc = keep_digest(&keep, cJSON_GetObjectItem(cfg, "digest"));
    cJSON_ArrayForEach(l, cJSON_GetObjectItem(man, "layers"))
      if (!rc) rc = keep_digest(&keep, cJSON_GetObjectItem(l, "digest"));
    cJSON_Delete(man);
    if (rc) break;
  }
  if (!rc && !unreadable) {
    if (keep.n) qsort(keep.d, keep.n, sizeof *keep.d, cmp_digest);
    char dir[4096], key[72] = "sha256:";
    snprintf(dir, sizeof dir, "%s/blobs/sha256", st->root);
    DIR *dd = opendir(dir);
    struct dirent *e;
    while (dd && (e = readdir(dd))) {
      if (strlen(e->d_name) != 64) continue;
      memcpy(key + 7, e->d_name, 65);
      if (keep.n && bsearch(key, keep.d, keep.n, sizeof *keep.d, cmp_digest)) continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (!gpux__fault("delete blob")) unlink(path);
      snprintf(path, sizeof path, "%s/local/%s.json", st->root, e->d_name);   /* a manifest's local record */
      unlink(path);
    }
    if (dd) closedir(dd);
  }
  free(keep.d);
  close(gc);
  return rc;
}

int gpux__store_collect(gpux_store *st) {
  int lock = lock_index(st);
  if (lock < 0) return lock;
  cJSON *idx = read_index(st);
  int rc = collect_garbage(st, idx);
  cJSON_Delete(idx);
  unlock_index(lock);
  return rc;
}

/* ---- public API ---- */

int gpux_store_open(const char *home, gpux_store **out) {
  *out = NULL;
  char root[4096];
  if (home && *home) snprintf(root, sizeof root, "%s", home);
  else if (getenv("GPUX_HOME") && *getenv("GPUX_HOME")) snprintf(root, sizeof root, "%s", getenv("GPUX_HOME"));
  else if (getenv("HOME")) snprintf(root, sizeof root, "%s/.gpux", getenv("HOME"));
  else return gpux__error(GPUX_E_INVALID, "neither GPUX_HOME nor HOME is set");
  char sub[4200];
  int rc;
  const char *dirs[] = {"", "/blobs/sha256", "/tmp", "/run", "/local"};
  for (size_t i = 0; i < GPUX__ARRAY_LEN(dirs); i++) {
    snprintf(sub, sizeof sub, "%s%s", root, dirs[i]);
    if ((rc = mkdirs(sub))) return gpux__error_prefix(rc, "the store: ");
  }
  gpux_store *st = gpux__calloc(1, sizeof *st);
  if (!st || !(st->root = gpux__strdup(root))) { free(st); return GPUX_E_NOMEM; }
  snprintf(sub, sizeof sub, "%s/oci-layout", root);
  struct stat sb;
  if (stat(sub, &sb) < 0) {
    static const char layout[] = "{\"imageLayoutVersion\": \"1.0.0\"}\n";
    if ((rc = write_file_atomic(st, sub, layout, sizeof layout - 1))) { gpux_store_close(st); return rc; }
  }
  *out = st;
  return 0;
}

void gpux_store_close(gpux_store *st) {
  if (!st) return;
  free(st->root);
  free(st);
}

const char *gpux_store_path(const gpux_store *st) { return st->root; }

void gpux_free(void *p) { free(p); }

static int64_t image_size(gpux_store *st, const char *manifest_digest, char *created, size_t clen) {
  char *text = NULL;
  size_t len;
  if (gpux__store_read_blob(st, manifest_digest, &text, &len)) return -1;
  cJSON *man = cJSON_Parse(text);
  free(text);
  int64_t total = 0; /* an image's size is its config and layers, as build and inspect count it */
  const cJSON *cfg = cJSON_GetObjectItem(man, "config"), *l;
  if (cfg) total += (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(cfg, "size"));
  cJSON_ArrayForEach(l, cJSON_GetObjectItem(man, "layers")) total += (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(l, "size"));
  const cJSON *ann = cJSON_GetObjectItem(man, "annotations");
  const cJSON *c = ann ? cJSON_GetObjectItem(ann, GPUX_ANNOT_CREATED) : NULL;
  snprintf(created, clen, "%s", cJSON_IsString(c) ? c->valuestring : "");
  cJSON_Delete(man);
  char *local = created[0] ? NULL : gpux__store_get_local(st, manifest_digest);
  if (local) { /* built here without SOURCE_DATE_EPOCH: when it was built */
    cJSON *lj = cJSON_Parse(local);
    const char *lc = cJSON_GetStringValue(cJSON_GetObjectItem(lj, "created"));
    snprintf(created, clen, "%s", lc ? lc : "");
    cJSON_Delete(lj);
    free(local);
  }
  return total;
}

int gpux_store_list(gpux_store *st, char **json) {
  cJSON *idx = read_index(st), *m, *out = cJSON_CreateArray();
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(idx, "manifests")) {
    const char *r = entry_ref(m);
    const cJSON *d = cJSON_GetObjectItem(m, "digest");
    if (!r || !cJSON_IsString(d)) continue;
    const char *colon = strrchr(r, ':');
    cJSON *e = cJSON_CreateObject();
    char name[512], created[64];
    snprintf(name, sizeof name, "%.*s", (int)(colon ? colon - r : (long)strlen(r)), r);
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "tag", colon ? colon + 1 : "latest");
    cJSON_AddStringToObject(e, "digest", d->valuestring);
    cJSON_AddNumberToObject(e, "size", (double)image_size(st, d->valuestring, created, sizeof created));
    cJSON_AddStringToObject(e, "created", created);
    cJSON_AddItemToArray(out, e);
  }
  cJSON_Delete(idx);
  *json = cJSON_PrintUnformatted(out);
  cJSON_Delete(out);
  return *json ? 0 : gpux__error(GPUX_E_NOMEM, "out of memory");
}

int gpux_store_remove(gpux_store *st, const char *ref) {
  char canon[512];
  int rc = gpux__ref_normalize(ref, canon, sizeof canon);
  if (rc) return rc;
  int lock = lock_index(st);
  if (lock < 0) return lock;
  cJSON *idx = read_index(st);
  int pos;
  if (!find_entry(idx, canon, &pos)) {
    rc = no_image(st, idx, canon);
  } else {
    cJSON_DeleteItemFromArray(cJSON_GetObjectItem(idx, "manifests"), pos);
    if (!(rc = write_index(st, idx))) rc = collect_garbage(st, idx);
  }
  cJSON_Delete(idx);
  unlock_index(lock);
  return rc;
}

int gpux_store_tag(gpux_store *st, const char *src, const char *dst) {
  gpux__blob_ref manifest;
  int lease = gpux__store_lease(st); /* src may be removed between resolve and set_ref */
  if (lease < 0) return lease;
  int rc = gpux__store_resolve(st, src, &manifest, NULL, 0);
  if (!rc) rc = gpux__store_set_ref(st, dst, &manifest);
  gpux__store_release(lease);
  return rc;
}

int gpux_store_inspect(gpux_store *st, const char *ref, char **json) {
  gpux__oci_image img;
  int rc = gpux__store_load_image(st, ref, &img);
  if (rc) return rc;
  cJSON *out = cJSON_CreateObject();
  cJSON_AddStringToObject(out, "reference", img.ref);
  cJSON_AddStringToObject(out, "digest", img.manifest.digest);
  cJSON *man = cJSON_Parse(img.manifest_json), *cfg = cJSON_Parse(img.config_json);
  cJSON_AddItemToObject(out, "manifest", man ? man : cJSON_CreateNull());
  cJSON_AddItemToObject(out, "config", cfg ? cfg : cJSON_CreateNull());
  char *local = gpux__store_get_local(st, img.manifest.digest);
  cJSON *lj = local ? cJSON_Parse(local) : NULL;
  if (lj) cJSON_AddItemToObject(out, "local", lj);   /* when it was built here, what was measured */
  free(local);
  for (int i = 0; i < img.n_layers; i++) { /* GEMM tuning (app/tuning.c): its records, as stored */
    if (strcmp(img.layers[i].media_type, GPUX_MEDIA_TUNING)) continue;
    char *t = NULL;
    size_t tl = 0;
    cJSON *tj = gpux__store_read_blob(st, img.layers[i].blob.digest, &t, &tl) ? NULL : cJSON_ParseWithLength(t, tl);
    free(t);
    cJSON_AddItemToObject(out, "tuning", tj ? tj : cJSON_CreateString("not readable JSON"));
    break;
  }
  gpux__oci_image_free(&img);
  *json = cJSON_Print(out);
  cJSON_Delete(out);
  return *json ? 0 : gpux__error(GPUX_E_NOMEM, "out of memory");
}
