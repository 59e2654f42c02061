/* tuning.c — the GEMM tuning an image carries (the layer gpux-tuning.json): made by
 * `gpux build --tune` and `gpux tune IMAGE` from the distinct GEMM shapes the app's plans
 * contained, timed on the local adapter (runtime/tune.c); one record per adapter, keyed by the
 * adapter (vendor and device id, name), its driver and the WebGPU library; given back to an
 * app's WebGPU sessions when one of its records names the local adapter, otherwise the defaults
 * are used and the answer says why. Data that does not parse is ignored with a warning. */
#include "app/handler.h"
#include "runtime/tune.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define TUNING_VERSION 1

/* ---- the adapter's key ---- */

/* The local WebGPU adapter as a tuning key (NULL when there is none); *software says whether it
 * is a CPU (lavapipe, SwiftShader). */
static cJSON *local_key(int *software) {
  gpux_device_info info[4];
  int n = gpux_devices(info, 4, NULL, 0);
  for (int i = 0; i < n && i < 4; i++) {
    if (strcmp(info[i].backend, "webgpu")) continue;
    cJSON *k = cJSON_CreateObject();
    cJSON_AddNumberToObject(k, "vendor_id", info[i].vendor_id);
    cJSON_AddNumberToObject(k, "device_id", info[i].device_id);
    cJSON_AddStringToObject(k, "name", info[i].name);
    cJSON_AddStringToObject(k, "driver", info[i].driver);
    /* the WebGPU implementation (Dawn) by its file: another build of it is another key */
    const char *lib = strrchr(info[i].library, '/');
    cJSON_AddStringToObject(k, "library", lib ? lib + 1 : info[i].library);
    struct stat sb;
    cJSON_AddNumberToObject(k, "library_bytes", stat(info[i].library, &sb) == 0 ? (double)sb.st_size : 0);
    if (software) *software = !strcmp(info[i].type, "cpu");
    return k;
  }
  return NULL;
}

static const char *const key_fields[] = {"vendor_id", "device_id", "name", "driver", "library", "library_bytes"};

static int same_key(const cJSON *a, const cJSON *b) {
  for (size_t i = 0; i < sizeof key_fields / sizeof *key_fields; i++) {
    const cJSON *x = cJSON_GetObjectItem(a, key_fields[i]), *y = cJSON_GetObjectItem(b, key_fields[i]);
    if (!x || !y || x->type != y->type) return 0;
    if (cJSON_IsString(x) && strcmp(x->valuestring, y->valuestring)) return 0;
    if (cJSON_IsNumber(x) && x->valuedouble != y->valuedouble) return 0;
  }
  return 1;
}

/* ---- reading ---- */

static int bad(const char *what, int rec, int gemm, const char *fmt, const char *detail) {
  char where[96] = "";
  if (rec >= 0 && gemm >= 0) snprintf(where, sizeof where, " (records[%d].gemms[%d])", rec, gemm);
  else if (rec >= 0) snprintf(where, sizeof where, " (records[%d])", rec);
  char msg[256];
  snprintf(msg, sizeof msg, fmt, detail);
  return gpux__error(GPUX_E_PARSE, "%s: %s%s", what, msg, where);
}

static int int_field(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *v) {
  const cJSON *x = cJSON_GetObjectItem(o, k);
  if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int64_t)x->valuedouble || x->valuedouble < (double)lo ||
      x->valuedouble > (double)hi)
    return -1;
  *v = (int64_t)x->valuedouble;
  return 0;
}

/* One gemms[] entry into t. */
static int read_gemm(const cJSON *g, gpux__gemm_tuned *t, const char **field) {
  static const char *const dims[] = {"M", "N", "K", "batch"};
  int64_t v[4], cfg[5];
  for (int i = 0; i < 4; i++)
    if (int_field(g, dims[i], 1, 0x7fffffff, &v[i])) return *field = dims[i], -1;
  static const char *const cf[] = {"wx", "wy", "rm", "rn", "split"};
  static const int64_t lo[] = {0, 0, 1, 1, 1}, hi[] = {32, 32, 8, 8, 16};
  for (int i = 0; i < 5; i++)
    if (int_field(g, cf[i], lo[i], hi[i], &cfg[i])) return *field = cf[i], -1;
  const cJSON *ak = cJSON_GetObjectItem(g, "a_k_contig"), *bn = cJSON_GetObjectItem(g, "b_n_contig");
  if (!cJSON_IsBool(ak)) return *field = "a_k_contig", -1;
  if (!cJSON_IsBool(bn)) return *field = "b_n_contig", -1;
  int form = gpux__gemm_form_parse(cJSON_GetStringValue(cJSON_GetObjectItem(g, "form")));
  if (!form) return *field = "form", -1;
  memset(t, 0, sizeof *t);
  t->shape.M = v[0], t->shape.N = v[1], t->shape.K = v[2], t->shape.batch = v[3];
  t->shape.a_k_contig = cJSON_IsTrue(ak), t->shape.b_n_contig = cJSON_IsTrue(bn);
  t->cfg = (gpux__gemm_config){.form = form, .wx = (int)cfg[0], .wy = (int)cfg[1], .rm = (int)cfg[2], .rn = (int)cfg[3],
                               .split = (int)cfg[4]};
  return 0;
}

int gpux__tuning_read(const char *json, size_t len, const char *what, cJSON **doc) {
  *doc = NULL;
  cJSON *d = cJSON_ParseWithLength(json, len);
  if (!d) return bad(what, -1, -1, "%s", "not JSON");
  const cJSON *ver = cJSON_GetObjectItem(d, "gpux_tuning"), *recs = cJSON_GetObjectItem(d, "records");
  int rc = 0;
  if (!cJSON_IsObject(d) || !cJSON_IsNumber(ver)) rc = bad(what, -1, -1, "%s", "not gpux tuning data (no \"gpux_tuning\" version)");
  else if (ver->valuedouble != TUNING_VERSION) {
    char v[32];
    snprintf(v, sizeof v, "%g", ver->valuedouble);
    rc = bad(what, -1, -1, "version %s is not one this gpux reads (1)", v);
  }
  else if (!cJSON_IsArray(recs)) rc = bad(what, -1, -1, "%s", "\"records\" is not an array");
  int ri = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, (rc ? NULL : recs)) {
    const cJSON *key = cJSON_GetObjectItem(r, "adapter"), *gemms = cJSON_GetObjectItem(r, "gemms");
    if (!cJSON_IsObject(key) || !cJSON_IsString(cJSON_GetObjectItem(key, "name"))) { rc = bad(what, ri, -1, "%s", "no \"adapter\" with a name"); break; }
    if (!cJSON_IsArray(gemms)) { rc = bad(what, ri, -1, "%s", "\"gemms\" is not an array"); break; }
    int gi = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, gemms) {
      gpux__gemm_tuned t;
      const char *field = "";
      if (read_gemm(g, &t, &field)) { rc = bad(what, ri, gi, "\"%s\" is missing or out of range", field); break; }
      gi++;
    }
    if (rc) break;
    ri++;
  }
  if (rc) cJSON_Delete(d);
  else *doc = d;
  return rc;
}

/* ---- using it ---- */

void gpux__app_apply_tuning(gpux_app *a, const char *json, size_t len) {
  a->tuning = GPUX__TUNING_DEFAULTS;
  cJSON *doc;
  char what[600];
  snprintf(what, sizeof what, "image %s: tuning data (%s)", a->ref, GPUX__TUNING_TITLE);
  if (gpux__tuning_read(json, len, what, &doc)) {
    gpux__log(GPUX_LOG_WARNING, "%s; running with the default GEMM configurations", gpux_last_error());
    snprintf(a->tuning_why, sizeof a->tuning_why, "the image's tuning data is not valid");
    return;
  }
  int gpu = 0;
  for (int m = 0; m < a->n_models; m++) gpu |= !strcmp(gpux_session_backend_name(a->sessions[m]), "webgpu");
  cJSON *key = gpu ? local_key(NULL) : NULL;
  const cJSON *r, *match = NULL, *first = NULL;
  cJSON_ArrayForEach(r, cJSON_GetObjectItem(doc, "records")) {
    if (!first) first = r;
    if (key && same_key(cJSON_GetObjectItem(r, "adapter"), key)) match = r;
  }
  const char *tuned_for = first ? cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "adapter"), "name")) : NULL;
  if (!gpu) snprintf(a->tuning_why, sizeof a->tuning_why, "the models run on the CPU backend");
  else if (!match && !first) snprintf(a->tuning_why, sizeof a->tuning_why, "the image's tuning data has no records");
  else if (!match)
    snprintf(a->tuning_why, sizeof a->tuning_why, "tuned for %s%s, not this adapter (%s) or its driver or WebGPU library; gpux tune %s tunes it here",
             tuned_for, cJSON_GetArraySize(cJSON_GetObjectItem(doc, "records")) > 1 ? " and others" : "",
             cJSON_GetStringValue(cJSON_GetObjectItem(key, "name")), a->ref);
  if (match) {
    const cJSON *gemms = cJSON_GetObjectItem(match, "gemms"), *g;
    int n = cJSON_GetArraySize(gemms), i = 0, rc = 0;
    gpux__gemm_tuned *t = gpux__calloc((size_t)n + 1, sizeof *t);
    const char *field;
    cJSON_ArrayForEach(g, (t ? gemms : NULL)) read_gemm(g, &t[i++], &field); /* checked when read */
    for (int m = 0; t && m < a->n_models && !rc; m++)
      if (!strcmp(gpux_session_backend_name(a->sessions[m]), "webgpu")) rc = gpux__session_set_gemm_tuning(a->sessions[m], t, n);
    free(t);
    if (t && !rc) a->tuning = GPUX__TUNING_MATCHED, a->tuning_why[0] = 0;
    else snprintf(a->tuning_why, sizeof a->tuning_why, "the tuning could not be given to the sessions: %s", t ? gpux_last_error() : "out of memory");
  }
  cJSON_Delete(key);
  cJSON_Delete(doc);
}

void gpux__app_tuning_json(const gpux_app *a, cJSON *root) {
  if (a->tuning == GPUX__TUNING_NONE) return;
  cJSON_AddStringToObject(root, "tuning", a->tuning == GPUX__TUNING_MATCHED ? "matched" : "defaults");
  if (a->tuning == GPUX__TUNING_MATCHED) {
    int used = 0;
    for (int m = 0; m < a->n_models; m++) {
      int n = 0;
      gpux__session_gemm_shapes(a->sessions[m], NULL, 0, &n);
      used += n;
    }
    cJSON_AddNumberToObject(root, "tuned_gemm_shapes", used); /* of the plans made so far */
  } else if (a->tuning_why[0]) {
    cJSON_AddStringToObject(root, "tuning_reason", a->tuning_why);
  }
}

/* ---- making it ---- */

static cJSON *num3(double v) {
  char b[64];
  snprintf(b, sizeof b, "%.4g", v);
  return cJSON_CreateRaw(b);
}

int gpux__app_can_tune(gpux_app *a, int *software, char *why, size_t len) {
  int gpu = 0;
  *software = 0;
  for (int m = 0; m < a->n_models; m++) gpu |= !strcmp(gpux_session_backend_name(a->sessions[m]), "webgpu");
  if (!gpu) {
    snprintf(why, len, "the models run on the %s backend, and tuning is for WebGPU's GEMM (use --backend webgpu)",
             gpux_session_backend_name(a->sessions[0]));
    return 0;
  }
  cJSON *key = local_key(software);
  if (!key) {
    snprintf(why, len, "no WebGPU adapter");
    return 0;
  }
  cJSON_Delete(key);
  return 1;
}

int gpux__app_tune(gpux_app *a, const char *old, size_t old_len, const gpux__app_tune_options *o, char **json, cJSON *summary) {
  *json = NULL;
  int software = 0, rc = 0;
  cJSON *key = local_key(&software);
  if (!key) return gpux__error(GPUX_E_DEVICE, "tuning: no WebGPU adapter");
  /* the shapes: every distinct GEMM of the plans the app's runs made */
  gpux__gemm_shape *shapes = NULL;
  int n = 0;
  for (int m = 0; m < a->n_models && !rc; m++) {
    int k = gpux__session_gemm_shapes(a->sessions[m], NULL, 0, NULL);
    if (!k) continue;
    gpux__gemm_shape *all = gpux__calloc((size_t)(n + k), sizeof *all), *mine = gpux__calloc((size_t)k, sizeof *mine);
    if (!all || !mine) {
      free(all), free(mine);
      rc = GPUX_E_NOMEM;
      break;
    }
    if (n) memcpy(all, shapes, (size_t)n * sizeof *all);
    k = gpux__session_gemm_shapes(a->sessions[m], mine, k, NULL);
    for (int i = 0; i < k; i++) {
      int dup = 0;
      for (int j = 0; j < n && !dup; j++) dup = !memcmp(&all[j], &mine[i], sizeof mine[i]);
      if (!dup) all[n++] = mine[i];
    }
    free(shapes), free(mine);
    shapes = all;
  }
  gpux__tune_result *res = rc ? NULL : gpux__calloc((size_t)n + 1, sizeof *res);
  if (!rc && !res) rc = GPUX_E_NOMEM;
  double t0 = gpux__now_ms();
  gpux__tune_options to = {.budget_ms = o->seconds * 1000, .software = software, .progress = o->progress, .progress_ctx = o->progress_ctx};
  if (!rc && n) rc = gpux__tune_gemms(shapes, n, &to, res);
  double seconds = (gpux__now_ms() - t0) / 1000;
  if (rc) {
    gpux__error_prefix(rc, "tuning: ");
    free(shapes), free(res), cJSON_Delete(key);
    return rc;
  }
  /* the record: the winners only (a shape whose default won is left to the default) */
  cJSON *rec = cJSON_CreateObject();
  cJSON_AddItemToObject(rec, "adapter", key);
  cJSON_AddStringToObject(rec, "gpux_version", GPUX_VERSION);
  int measured = 0, improved = 0, tried = 0, rejected = 0;
  cJSON *gemms = cJSON_CreateArray();
  for (int i = 0; i < n; i++) {
    measured += res[i].measured, tried += res[i].tried, rejected += res[i].rejected;
    if (!res[i].improved) continue;
    improved++;
    const gpux__gemm_shape *s = &res[i].shape;
    const gpux__gemm_config *c = &res[i].cfg;
    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "M", (double)s->M);
    cJSON_AddNumberToObject(g, "N", (double)s->N);
    cJSON_AddNumberToObject(g, "K", (double)s->K);
    cJSON_AddNumberToObject(g, "batch", (double)s->batch);
    cJSON_AddBoolToObject(g, "a_k_contig", s->a_k_contig);
    cJSON_AddBoolToObject(g, "b_n_contig", s->b_n_contig);
    cJSON_AddStringToObject(g, "form", gpux__gemm_form_name(c->form));
    cJSON_AddNumberToObject(g, "wx", c->wx);
    cJSON_AddNumberToObject(g, "wy", c->wy);
    cJSON_AddNumberToObject(g, "rm", c->rm);
    cJSON_AddNumberToObject(g, "rn", c->rn);
    cJSON_AddNumberToObject(g, "split", c->split);
    cJSON_AddItemToObject(g, "default_ms", num3(res[i].default_ms));
    cJSON_AddItemToObject(g, "tuned_ms", num3(res[i].best_ms));
    cJSON_AddItemToArray(gemms, g);
  }
  cJSON_AddNumberToObject(rec, "shapes", n);
  cJSON_AddNumberToObject(rec, "measured", measured);
  cJSON_AddNumberToObject(rec, "candidates", tried);
  cJSON_AddNumberToObject(rec, "rejected", rejected);
  cJSON_AddItemToObject(rec, "seconds", num3(seconds));
  cJSON_AddItemToObject(rec, "budget_seconds", num3(o->seconds));
  cJSON_AddItemToObject(rec, "gemms", gemms);
  free(shapes);
  free(res);
  if (summary) {
    cJSON_AddStringToObject(summary, "adapter", cJSON_GetStringValue(cJSON_GetObjectItem(key, "name")));
    cJSON_AddNumberToObject(summary, "gemm_shapes", n);
    cJSON_AddNumberToObject(summary, "measured", measured);
    cJSON_AddNumberToObject(summary, "tuned", improved);
    cJSON_AddNumberToObject(summary, "candidates", tried);
    cJSON_AddNumberToObject(summary, "rejected", rejected);
    cJSON_AddItemToObject(summary, "seconds", num3(seconds));
  }
  /* the document: the records of other adapters kept, this adapter's replaced */
  cJSON *doc = cJSON_CreateObject(), *recs = cJSON_CreateArray(), *prev = NULL;
  cJSON_AddNumberToObject(doc, "gpux_tuning", TUNING_VERSION);
  if (old && gpux__tuning_read(old, old_len, "the image's tuning data", &prev))
    gpux__log(GPUX_LOG_WARNING, "%s; it is replaced", gpux_last_error());
  const cJSON *r;
  cJSON_ArrayForEach(r, (prev ? cJSON_GetObjectItem(prev, "records") : NULL))
    if (!same_key(cJSON_GetObjectItem(r, "adapter"), key)) cJSON_AddItemToArray(recs, cJSON_Duplicate(r, 1));
  cJSON_AddItemToArray(recs, rec);
  cJSON_AddItemToObject(doc, "records", recs);
  cJSON_Delete(prev);
  *json = cJSON_Print(doc);
  cJSON_Delete(doc);
  return *json ? 0 : GPUX_E_NOMEM;
}

int gpux__tuning_temp_file(const char *json, char *path, size_t len) {
  const char *tmp = getenv("TMPDIR");
  snprintf(path, len, "%s/gpux-tuning-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0) return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(errno));
  size_t n = strlen(json), done = 0;
  while (done < n) {
    ssize_t w = write(fd, json + done, n - done);
    if (w <= 0) {
      int e = errno;
      close(fd);
      unlink(path);
      return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(e));
    }
    done += (size_t)w;
  }
  close(fd);
  return 0;
}
