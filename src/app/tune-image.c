/* tune-image.c — gpux_tune: an image's GEMMs tuned for this machine's GPU after it was built (on
 * another machine, or before a driver update). The models run once on WebGPU on generated inputs
 * so that their plans hold the GEMM shapes; tuning.c times them and merges this adapter's record
 * into the image's tuning data; the image is written again with the same config and layers and
 * the new tuning layer, and its reference moved to it. */
#include "app/handler.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <unistd.h>

static void image_tune_progress(void *ctx, int64_t done, int64_t total) {
  const gpux_tune_options *o = ctx;
  if (o && o->progress) o->progress(o->progress_ctx, "tune", done, total);
}

/* The app's models run once on generated inputs (as build's smoke run: symbolic dimensions 1,
 * then 64), so that its plans hold the GEMM shapes. */
static int plan_shapes(gpux_app *a) {
  int rc = 0;
  a->handler_off = 1;
  for (int attempt = 0; attempt < 2; attempt++) {
    gpux_app_input *inputs = NULL;
    void **owned = NULL;
    int n_inputs = 0;
    cJSON *what = cJSON_CreateArray();
    char *result = NULL;
    if (!(rc = gpux__app_smoke_inputs(a, attempt ? 64 : 1, &inputs, &n_inputs, &owned, what)))
      rc = gpux_app_run(a, inputs, n_inputs, &result, NULL);
    free(result);
    cJSON_Delete(what);
    for (int i = 0; owned && i < n_inputs; i++) free(owned[i]);
    free(owned);
    free(inputs);
    if (!rc) break;
  }
  a->handler_off = 0;
  if (rc) gpux__error_prefix(rc, "tuning: the smoke run: ");
  return rc;
}

int gpux_tune(gpux_store *st, const char *ref, const gpux_tune_options *o, char **summary_json) {
  if (summary_json) *summary_json = NULL;
  if (!st || !ref) return gpux__error(GPUX_E_INVALID, "gpux_tune: no store or image");
  gpux__oci_image img;
  int rc = gpux__store_load_image(st, ref, &img);
  if (rc) return rc;
  char *old = NULL, path[4096] = "", *json = NULL;
  size_t old_len = 0;
  for (int i = 0; i < img.n_layers && !rc; i++)
    if (!strcmp(img.layers[i].media_type, GPUX_MEDIA_TUNING)) rc = gpux__store_read_blob(st, img.layers[i].blob.digest, &old, &old_len);
  if (rc) { /* unreadable tuning data is replaced */
    gpux__log(GPUX_LOG_WARNING, "image %s: its tuning data cannot be read (%s); it is replaced", img.ref, gpux_last_error());
    free(old);
    old = NULL, old_len = 0, rc = 0;
  }
  gpux_app *a = NULL;
  gpux_app_options ao = {.backend = GPUX_BACKEND_WEBGPU};
  char why[400];
  int software;
  rc = gpux_app_open(st, img.manifest.digest, &ao, &a);
  if (!rc && !gpux__app_can_tune(a, &software, why, sizeof why)) rc = gpux__error(GPUX_E_DEVICE, "gpux tune %s: %s", img.ref, why);
  if (!rc) rc = plan_shapes(a);
  if (o && o->progress) o->progress(o->progress_ctx, "tune", 0, 0);
  gpux__app_tune_options to = {.seconds = o && o->seconds > 0 ? o->seconds : 30, .progress = image_tune_progress,
                               .progress_ctx = (void *)o};
  cJSON *summary = cJSON_CreateObject();
  if (!rc) rc = gpux__app_tune(a, old, old_len, &to, &json, summary);
  gpux_app_close(a);
  if (!rc) rc = gpux__tuning_temp_file(json, path, sizeof path);
  /* the image again: the same config and layers, this tuning in place of the old */
  gpux__layer_src *src = rc ? NULL : gpux__calloc((size_t)img.n_layers + 2, sizeof *src);
  char (*blobs)[4096] = rc ? NULL : gpux__calloc((size_t)img.n_layers + 1, sizeof *blobs);
  if (!rc && (!src || !blobs)) rc = GPUX_E_NOMEM;
  int n = 0;
  for (int i = 0; i < img.n_layers && !rc; i++) {
    if (!strcmp(img.layers[i].media_type, GPUX_MEDIA_TUNING)) continue;
    rc = gpux__store_blob_path(st, img.layers[i].blob.digest, blobs[i], sizeof blobs[i]);
    src[n++] = (gpux__layer_src){blobs[i], img.layers[i].title, img.layers[i].media_type};
  }
  if (!rc) src[n++] = (gpux__layer_src){path, GPUX__TUNING_TITLE, GPUX_MEDIA_TUNING};
  gpux__blob_ref manifest = {0};
  int lease = rc ? -1 : gpux__store_lease(st);
  if (!rc && lease < 0) rc = lease;
  if (!rc) rc = gpux__store_write_image(st, img.ref, img.config_json, src, n, &manifest);
  if (!rc && strcmp(manifest.digest, img.manifest.digest)) {
    /* what this store knew of the image (when it was built, its smoke run) and its trust carry over */
    char *local = gpux__store_get_local(st, img.manifest.digest);
    if (local) rc = gpux__store_put_local(st, manifest.digest, local);
    free(local);
    if (!rc && gpux__trust_has(st, img.manifest.digest)) rc = gpux__trust_add(st, manifest.digest, img.ref);
  }
  if (lease >= 0) gpux__store_release(lease);
  if (!rc && summary_json) {
    cJSON_AddStringToObject(summary, "reference", img.ref);
    cJSON_AddStringToObject(summary, "digest", manifest.digest);
    cJSON_AddStringToObject(summary, "previous_digest", img.manifest.digest);
    if (!(*summary_json = cJSON_PrintUnformatted(summary))) rc = GPUX_E_NOMEM;
  }
  cJSON_Delete(summary);
  if (*path) unlink(path);
  free(src);
  free(blobs);
  free(json);
  free(old);
  gpux__oci_image_free(&img);
  return rc;
}
