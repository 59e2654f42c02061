/* store.h — the local image store's internal interface: content-addressed blobs (sha256), image
 * manifests, and the tag index, laid out as an OCI image layout under $GPUX_HOME. Used by build,
 * run, inspect and the registry client. */
#ifndef GPUX_STORE_H
#define GPUX_STORE_H

#include "core/internal.h"

#define GPUX_MEDIA_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define GPUX_MEDIA_INDEX "application/vnd.oci.image.index.v1+json"
#define GPUX_ARTIFACT_TYPE "application/vnd.gpux.image.v1+json"
#define GPUX_MEDIA_CONFIG "application/vnd.gpux.config.v1+json"
#define GPUX_MEDIA_TUNING "application/vnd.gpux.tuning.v1+json"   /* GEMM tuning (app/tuning.c) */
#define GPUX_ANNOT_TITLE "org.opencontainers.image.title"
#define GPUX_ANNOT_REF "org.opencontainers.image.ref.name"
#define GPUX_ANNOT_CREATED "org.opencontainers.image.created"

struct gpux_store {
  char *root;                  /* the layout's folder */
};

typedef struct {
  char digest[72];             /* "sha256:" + 64 hex digits */
  int64_t size;
} gpux__blob_ref;

typedef struct {
  const char *path;            /* file to store */
  const char *title;           /* its name inside the image ("model.onnx") */
  const char *media_type;      /* e.g. "application/vnd.onnx.model" */
} gpux__layer_src;

typedef struct {
  char title[256];
  char media_type[128];
  gpux__blob_ref blob;
} gpux__layer;

typedef struct {
  char ref[512];               /* the reference it was resolved from ("name:tag"), or "" */
  gpux__blob_ref manifest;
  char *manifest_json;         /* owned */
  char *config_json;           /* owned */
  gpux__blob_ref config;
  int n_layers;
  gpux__layer *layers;         /* owned */
} gpux__oci_image;

/* Canonical reference "name:tag" ("latest" when no tag); rejects characters outside
 * [a-z0-9._/-] in names and [A-Za-z0-9._-] in tags. */
int gpux__ref_normalize(const char *ref, char *out, size_t len);

/* Blobs: stored once per content, written to a temporary file and renamed into place. */
int gpux__store_put_file(gpux_store *st, const char *path, gpux__blob_ref *out);
int gpux__store_put_bytes(gpux_store *st, const void *data, size_t len, gpux__blob_ref *out);
int gpux__store_blob_path(const gpux_store *st, const char *digest, char *buf, size_t len);
int gpux__store_has_blob(const gpux_store *st, const gpux__blob_ref *ref);
/* Reads a whole blob, verifying its digest (GPUX_E_PARSE "digest mismatch" when corrupt). */
int gpux__store_read_blob(gpux_store *st, const char *digest, char **data, size_t *len);
/* Streams a blob through sha256 and compares. */
int gpux__store_verify_blob(gpux_store *st, const gpux__blob_ref *ref);
/* Computes the sha256 digest of a file. */
int gpux__sha256_file(const char *path, char digest[72], int64_t *size);
void gpux__sha256_bytes(const void *data, size_t len, char digest[72]);

/* A lease on the store's blobs: while it is held, garbage collection (gpux rm) deletes nothing,
 * so blobs written or found present are safe until they are tagged. Take it before the first blob
 * is checked or written and release it after the tag is set. Returns a descriptor or an error. */
int gpux__store_lease(gpux_store *st);
void gpux__store_release(int lease);
/* Deletes the blobs no tagged image references, unless a lease is held (then nothing); for a
 * writer that failed after storing some blobs, once it has released its own lease. */
int gpux__store_collect(gpux_store *st);

/* Writes config + layers + manifest and points `ref` at it (the index is updated under a lock),
 * all under a lease. `manifest_out` may be NULL. */
/* What this store knows of an image that is not part of it, so not covered by its digest: when
 * it was built here and what the build's smoke run measured. $GPUX_HOME/local/HEX.json, by the
 * manifest's digest; a rebuild that gives the same digest replaces it. get: NULL when none. */
int gpux__store_put_local(gpux_store *st, const char *manifest_digest, const char *json);
char *gpux__store_get_local(gpux_store *st, const char *manifest_digest);

int gpux__store_write_image(gpux_store *st, const char *ref, const char *config_json,
                            const gpux__layer_src *layers, int n_layers, gpux__blob_ref *manifest_out);
/* Points `ref` at an existing manifest blob (tag, pull). */
int gpux__store_set_ref(gpux_store *st, const char *ref, const gpux__blob_ref *manifest);
/* Resolves NAME[:TAG] or sha256:HEX (a prefix of at least 12 hex digits is enough) to a manifest. */
int gpux__store_resolve(gpux_store *st, const char *ref, gpux__blob_ref *manifest, char *canonical, size_t len);
/* Loads and verifies an image's manifest and config; layers are verified by gpux__oci_image_dir. */
int gpux__store_load_image(gpux_store *st, const char *ref, gpux__oci_image *img);
void gpux__oci_image_free(gpux__oci_image *img);
/* A folder where the image's layers appear under their titles (symlinks to verified blobs), so
 * models with external data files load unchanged. */
int gpux__oci_image_dir(gpux_store *st, const gpux__oci_image *img, char *dir, size_t len);

#endif
