/* files.c — the files behind a model: the external data files an ONNX model names (found by
 * walking its protobuf, nested graphs included, without loading it), and model sources that are
 * not local files — https:// URLs and hf:OWNER/REPO/FILE[@REVISION] on the Hugging Face hub —
 * fetched with libcurl into $GPUX_HOME/cache/ and pinned by sha256 when the GPUXfile says so. */
#include "app/app.h"
#include "onnx/pb.h"
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


double gpux__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- external data ---- */

typedef struct {
  char **items;
  int n, cap;
} str_list;

static int list_add(str_list *l, const char *s, size_t len) {
  for (int i = 0; i < l->n; i++)
    if (strlen(l->items[i]) == len && !memcmp(l->items[i], s, len)) return 0;
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 8;
    char **p = gpux__realloc(l->items, sizeof *p * (size_t)cap);
    if (!p) return GPUX_E_NOMEM;
    l->items = p;
    l->cap = cap;
  }
  if (!(l->items[l->n] = gpux__strndup(s, len))) return GPUX_E_NOMEM;
  l->n++;
  return 0;
}

static int scan_graph(const uint8_t *p, size_t len, str_list *out, int depth);

/* TensorProto: data_location (14) = EXTERNAL (1), external_data (13) {key 1, value 2} */
static int scan_tensor(const uint8_t *p, size_t len, str_list *out) {
  gpux__pb r = gpux__pb_init(p, len);
  gpux__pb_field f;
  int rc;
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field != 13 || f.wire != PB_LEN) continue;
    gpux__pb e = gpux__pb_sub(&f);
    gpux__pb_field kv;
    const uint8_t *key = NULL, *val = NULL;
    size_t klen = 0, vlen = 0;
    while ((rc = gpux__pb_next(&e, &kv)) > 0) {
      if (kv.wire != PB_LEN) continue;
      if (kv.field == 1) { key = kv.data; klen = kv.len; }
      if (kv.field == 2) { val = kv.data; vlen = kv.len; }
    }
    if (rc < 0) return rc;
    if (key && val && klen == 8 && !memcmp(key, "location", 8) && (rc = list_add(out, (const char *)val, vlen))) return rc;
  }
  return rc;
}

/* SparseTensorProto: values (1), indices (2) */
static int scan_sparse(const uint8_t *p, size_t len, str_list *out) {
  gpux__pb r = gpux__pb_init(p, len);
  gpux__pb_field f;
  int rc;
  while ((rc = gpux__pb_next(&r, &f)) > 0)
    if ((f.field == 1 || f.field == 2) && f.wire == PB_LEN && (rc = scan_tensor(f.data, f.len, out))) return rc;
  return rc;
}

/* AttributeProto: t (5), g (6), tensors (10), graphs (11), sparse_tensor (22), sparse_tensors (23) */
static int scan_attr(const uint8_t *p, size_t len, str_list *out, int depth) {
  gpux__pb r = gpux__pb_init(p, len);
  gpux__pb_field f;
  int rc;
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.wire != PB_LEN) continue;
    if (f.field == 5 || f.field == 10) rc = scan_tensor(f.data, f.len, out);
    else if (f.field == 6 || f.field == 11) rc = scan_graph(f.data, f.len, out, depth + 1);
    else if (f.field == 22 || f.field == 23) rc = scan_sparse(f.data, f.len, out);
    if (rc < 0) return rc;
  }
  return rc;
}

/* GraphProto: node (1) -> attribute (5); initializer (5); sparse_initializer (15) */
static int scan_graph(const uint8_t *p, size_t len, str_list *out, int depth) {
  if (depth > 32) return gpux__error(GPUX_E_MODEL, "graphs nested too deeply");
  gpux__pb r = gpux__pb_init(p, len);
  gpux__pb_field f;
  int rc;
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.wire != PB_LEN) continue;
    if (f.field == 5) rc = scan_tensor(f.data, f.len, out);
    else if (f.field == 15) rc = scan_sparse(f.data, f.len, out);
    else if (f.field == 1) {
      gpux__pb n = gpux__pb_sub(&f);
      gpux__pb_field nf;
      while ((rc = gpux__pb_next(&n, &nf)) > 0)
        if (nf.field == 5 && nf.wire == PB_LEN && (rc = scan_attr(nf.data, nf.len, out, depth)) < 0) return rc;
    }
    if (rc < 0) return rc;
  }
  return rc;
}

int gpux__model_external_files(const char *model_path, char ***locations, int *n) {
  *locations = NULL;
  *n = 0;
  int fd = open(model_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return gpux__error(errno == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: %s", model_path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) < 0 || sb.st_size == 0) {
    close(fd);
    return gpux__error(GPUX_E_MODEL, "%s: empty file", model_path);
  }
  void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return gpux__error(GPUX_E_IO, "%s: mmap: %s", model_path, strerror(errno));
  str_list l = {0};
  gpux__pb r = gpux__pb_init(map, (size_t)sb.st_size);
  gpux__pb_field f;
  int rc;
  while ((rc = gpux__pb_next(&r, &f)) > 0)
    if (f.field == 7 && f.wire == PB_LEN && (rc = scan_graph(f.data, f.len, &l, 0)) < 0) break;
  munmap(map, (size_t)sb.st_size);
  if (rc < 0) {
    for (int i = 0; i < l.n; i++) free(l.items[i]);
    free(l.items);
    return gpux__error_prefix(rc, "%s: ", model_path);
  }
  *locations = l.items;
  *n = l.n;
  return 0;
}

/* ---- fetching sources ---- */

static int mkdir_p(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return gpux__error(GPUX_E_IO, "%s: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) < 0 && errno != EEXIST) return gpux__error(GPUX_E_IO, "%s: %s", buf, strerror(errno));
  return 0;
}

/* The URL of a source: hf:OWNER/REPO/FILE@REV -> $HF_ENDPOINT/OWNER/REPO/resolve/REV/FILE. */
static void source_url(const gpux__spec_model *m, char *url, size_t len) {
  if (m->kind != GPUX__SRC_HF) {
    snprintf(url, len, "%s", m->source);
    return;
  }
  const char *p = m->source + 3, *at = strchr(p, '@');
  size_t plen = at ? (size_t)(at - p) : strlen(p);
  const char *s1 = memchr(p, '/', plen);
  const char *s2 = s1 ? memchr(s1 + 1, '/', plen - (size_t)(s1 + 1 - p)) : NULL;
  const char *endpoint = getenv("HF_ENDPOINT");
  if (!endpoint || !*endpoint) endpoint = "https://huggingface.co";
  size_t el = strlen(endpoint);
  while (el && endpoint[el - 1] == '/') el--;
  if (!s2) { snprintf(url, len, "%s", m->source); return; }
  snprintf(url, len, "%.*s/%.*s/resolve/%s/%.*s", (int)el, endpoint, (int)(s2 - p), p, at ? at + 1 : "main",
           (int)(plen - (size_t)(s2 + 1 - p)), s2 + 1);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
  return fwrite(ptr, size, nmemb, (FILE *)ud);
}

int gpux__fetch_source(gpux_store *st, const gpux__spec_model *m, char *path, size_t len) {
  char url[4096], digest[72], dir[4096], tmp[4200];
  source_url(m, url, sizeof url);
  /* the cache folder is named by the URL's digest; the file keeps the URL's last segment */
  gpux__sha256_bytes(url, strlen(url), digest);
  const char *base = strrchr(url, '/');
  base = base && base[1] ? base + 1 : "model.onnx";
  char name[256];
  snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "?#"), base);
  if (!name[0] || name[0] == '.') snprintf(name, sizeof name, "model.onnx");
  snprintf(dir, sizeof dir, "%s/cache/%.16s", gpux_store_path(st), digest + 7);
  snprintf(path, len, "%s/%s", dir, name);
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
    if (!m->sha256) return 0;
    char got[72];
    int64_t size;
    if (!gpux__sha256_file(path, got, &size) && !strcmp(got + 7, m->sha256)) return 0;
  }
  int rc = mkdir_p(dir);
  if (rc) return rc;
  snprintf(tmp, sizeof tmp, "%s/.part-%d", dir, (int)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) return gpux__error(GPUX_E_IO, "%s: %s", tmp, strerror(errno));
  CURL *c = curl_easy_init();
  if (!c) { fclose(f); unlink(tmp); return gpux__error(GPUX_E_NOMEM, "libcurl: cannot start"); }
  struct curl_slist *hdr = NULL;
  char auth[1024];
  const char *token = getenv("HF_TOKEN");
  if (m->kind == GPUX__SRC_HF && token && *token) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    hdr = curl_slist_append(hdr, auth);
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "gpux/" GPUX_VERSION);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  if (hdr) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
  CURLcode cc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (hdr) curl_slist_free_all(hdr);
  int wrote_ok = fclose(f) == 0;
  if (cc != CURLE_OK) {
    unlink(tmp);
    return gpux__error(GPUX_E_IO, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
  }
  if (status >= 400 || !wrote_ok) {
    unlink(tmp);
    return gpux__error(status == 404 ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: HTTP %ld", url, status);
  }
  if (m->sha256) {
    char got[72];
    int64_t size;
    if ((rc = gpux__sha256_file(tmp, got, &size))) { unlink(tmp); return rc; }
    if (strcmp(got + 7, m->sha256)) {
      unlink(tmp);
      return gpux__error(GPUX_E_MISMATCH, "%s: sha256 is %s, the GPUXfile pins %s", url, got + 7, m->sha256);
    }
  }
  if (rename(tmp, path) < 0) {
    unlink(tmp);
    return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(errno));
  }
  return 0;
}
