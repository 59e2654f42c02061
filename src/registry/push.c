/* push.c — gpux_push: sends a local image to an OCI registry. Each blob (config, layers) is
 * checked with HEAD first and skipped when the registry has it; new blobs go up monolithically
 * (POST + PUT) or, above the chunk size, in chunks (POST + PATCH... + PUT); the manifest goes last,
 * byte for byte as stored, so the pushed digest equals the local one. */
#include "registry/registry.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define DEFAULT_CHUNK ((int64_t)32 << 20)

/* Location of an upload session -> absolute URL with `extra` query appended */
static void upload_url(gpux__registry *r, const char *location, const char *extra, char *url, size_t len) {
  char base[2300];
  if (location[0] == '/') snprintf(base, sizeof base, "%s%s", r->base, location);
  else snprintf(base, sizeof base, "%s", location);
  if (extra && *extra) snprintf(url, len, "%s%s%s", base, strchr(base, '?') ? "&" : "?", extra);
  else snprintf(url, len, "%s", base);
}

static int fail_reply(gpux__registry *r, const gpux__reply *rep, const char *what) {
  char why[400];
  gpux__reply_error(rep, why, sizeof why);
  int err = rep->status == 401 || rep->status == 403 ? GPUX_E_INVALID : GPUX_E_IO;
  if (rep->status == 401 || rep->status == 403)
    return gpux__error(err, "%s: %s was refused (%s): no push access to %s", r->host, what, why, r->repo);
  return gpux__error(err, "%s: %s failed: %s", r->host, what, why);
}

/* uploads one blob; *uploaded = 1 when it was sent, 0 when the registry had it */
static int push_blob(gpux__registry *r, gpux_store *st, const gpux__blob_ref *b, const char *title,
                     int64_t chunk, int *uploaded, int64_t *bytes) {
  char path[4096], step[300], what[400];
  gpux__reply rep = {0};
  *uploaded = 0;
  snprintf(what, sizeof what, "HEAD blob %.19s", b->digest);
  snprintf(path, sizeof path, "blobs/%s", b->digest);
  int rc = gpux__registry_request(r, "HEAD", path, NULL, NULL, NULL, NULL, NULL, &rep);
  if (rc) return rc;
  if (rep.status == 200) {
    snprintf(step, sizeof step, "exists:%s", title);
    if (r->progress) r->progress(r->progress_ctx, step, b->size, b->size);
    gpux__reply_free(&rep);
    return 0;
  }
  if (rep.status != 404) { rc = fail_reply(r, &rep, what); gpux__reply_free(&rep); return rc; }

  char blob[4096];
  if ((rc = gpux__store_blob_path(st, b->digest, blob, sizeof blob))) return rc;
  int fd = open(blob, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return gpux__error(GPUX_E_NOTFOUND, "blob %.19s (%s) is missing from the store", b->digest, title);

  snprintf(step, sizeof step, "upload:%s", title);
  r->prog_total = b->size;
  r->prog_base = 0;
  if (r->progress) r->progress(r->progress_ctx, step, 0, b->size);
  gpux__body empty = {.data = "", .fd = -1};
  snprintf(what, sizeof what, "starting the upload of %s", title);
  rc = gpux__registry_request(r, "POST", "blobs/uploads/", NULL, &empty, NULL, NULL, NULL, &rep);
  if (!rc && (rep.status != 202 || !rep.location[0])) rc = fail_reply(r, &rep, what);
  char location[2048], url[4096], query[128];
  snprintf(location, sizeof location, "%s", rep.location);
  char *esc = curl_easy_escape(r->curl, b->digest, 0);
  snprintf(query, sizeof query, "digest=%s", esc ? esc : b->digest);
  curl_free(esc);
  struct curl_slist *octet = curl_slist_append(NULL, "Content-Type: application/octet-stream");
  if (!rc && b->size <= chunk) {
    gpux__body body = {.fd = fd, .offset = 0, .length = b->size};
    upload_url(r, location, query, url, sizeof url);
    snprintf(what, sizeof what, "uploading %s", title);
    rc = gpux__registry_request(r, "PUT", url, octet, &body, NULL, NULL, step, &rep);
    if (!rc && rep.status != 201) rc = fail_reply(r, &rep, what);
  } else if (!rc) {
    for (int64_t off = 0; !rc && off < b->size; off += chunk) {
      int64_t n = GPUX__MIN(chunk, b->size - off);
      gpux__body body = {.fd = fd, .offset = off, .length = n};
      char range[96];
      snprintf(range, sizeof range, "Content-Range: %lld-%lld", (long long)off, (long long)(off + n - 1));
      struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
      h = curl_slist_append(h, range);
      upload_url(r, location, NULL, url, sizeof url);
      r->prog_base = off;
      snprintf(what, sizeof what, "uploading %s (chunk at %lld)", title, (long long)off);
      rc = gpux__registry_request(r, "PATCH", url, h, &body, NULL, NULL, step, &rep);
      curl_slist_free_all(h);
      if (!rc && rep.status != 202) rc = fail_reply(r, &rep, what);
      if (!rc && rep.location[0]) snprintf(location, sizeof location, "%s", rep.location);
    }
    if (!rc) {
      upload_url(r, location, query, url, sizeof url);
      snprintf(what, sizeof what, "finishing the upload of %s", title);
      rc = gpux__registry_request(r, "PUT", url, octet, &empty, NULL, NULL, NULL, &rep);
      if (!rc && rep.status != 201) rc = fail_reply(r, &rep, what);
    }
  }
  curl_slist_free_all(octet);
  close(fd);
  gpux__reply_free(&rep);
  if (rc) return rc;
  if (r->progress) r->progress(r->progress_ctx, step, b->size, b->size);
  *uploaded = 1;
  *bytes += b->size;
  return 0;
}

int gpux_push(gpux_store *st, const char *local_ref, const char *remote_ref, const gpux_registry_options *o,
              char **summary_json) {
  if (summary_json) *summary_json = NULL;
  gpux__reference ref;
  int rc = gpux__reference_parse(remote_ref ? remote_ref : local_ref, &ref);
  if (rc) return rc;
  if (ref.digest[0] && !ref.tag[0])
    return gpux__error(GPUX_E_INVALID, "'%s': push to a tag, not to a digest", remote_ref ? remote_ref : local_ref);
  gpux__oci_image img;
  if ((rc = gpux__store_load_image(st, local_ref, &img))) return rc;
  int64_t chunk = o && o->chunk_size > 0 ? o->chunk_size : DEFAULT_CHUNK;
  gpux__registry r;
  if ((rc = gpux__registry_open(&r, st, ref.host, ref.repo, "pull,push", o))) { gpux__oci_image_free(&img); return rc; }

  int uploaded = 0, skipped = 0, up;
  int64_t bytes = 0, total = img.manifest.size + img.config.size;
  rc = push_blob(&r, st, &img.config, "config", chunk, &up, &bytes);
  if (!rc) { uploaded += up; skipped += !up; }
  for (int i = 0; !rc && i < img.n_layers; i++) {
    total += img.layers[i].blob.size;
    rc = push_blob(&r, st, &img.layers[i].blob, img.layers[i].title, chunk, &up, &bytes);
    if (!rc) { uploaded += up; skipped += !up; }
  }
  if (!rc) {
    cJSON *man = cJSON_Parse(img.manifest_json);
    const char *mt = cJSON_GetStringValue(cJSON_GetObjectItem(man, "mediaType"));
    char ctype[200], path[300];
    snprintf(ctype, sizeof ctype, "Content-Type: %s", mt ? mt : GPUX_MEDIA_MANIFEST);
    cJSON_Delete(man);
    struct curl_slist *h = curl_slist_append(NULL, ctype);
    gpux__body body = {.data = img.manifest_json, .fd = -1, .length = (int64_t)strlen(img.manifest_json)};
    gpux__reply rep = {0};
    snprintf(path, sizeof path, "manifests/%s", ref.tag);
    if (r.progress) r.progress(r.progress_ctx, "manifest", 0, body.length);
    rc = gpux__registry_request(&r, "PUT", path, h, &body, NULL, NULL, NULL, &rep);
    curl_slist_free_all(h);
    if (!rc && rep.status != 201) rc = fail_reply(&r, &rep, "putting the manifest");
    if (!rc && rep.digest[0] && strcmp(rep.digest, img.manifest.digest))
      rc = gpux__error(GPUX_E_PARSE, "%s stored the manifest as %.19s, not %.19s", r.host, rep.digest, img.manifest.digest);
    if (!rc && r.progress) r.progress(r.progress_ctx, "manifest", body.length, body.length);
    gpux__reply_free(&rep);
  }
  gpux__registry_close(&r);
  if (!rc && summary_json) {
    cJSON *s = cJSON_CreateObject();
    char full[700];
    snprintf(full, sizeof full, "%s/%s:%s", ref.host, ref.repo, ref.tag);
    cJSON_AddStringToObject(s, "reference", full);
    cJSON_AddStringToObject(s, "digest", img.manifest.digest);
    cJSON_AddNumberToObject(s, "size", (double)total);
    cJSON_AddNumberToObject(s, "uploaded_bytes", (double)bytes);
    cJSON_AddNumberToObject(s, "blobs_uploaded", uploaded);
    cJSON_AddNumberToObject(s, "blobs_skipped", skipped);
    *summary_json = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    if (!*summary_json) rc = gpux__error(GPUX_E_NOMEM, "out of memory");
  }
  gpux__oci_image_free(&img);
  return rc;
}
