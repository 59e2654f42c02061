/* oip.c — the Open Inference Protocol v2 (KServe / Triton REST) for one served app: model
 * metadata, infer requests (JSON "data", or Triton's binary tensor extension after an
 * Inference-Header-Content-Length JSON header) into the first model's input tensors, and the
 * last model's outputs back into a response, with "outputs" selection and the classification
 * extension ("score:index:label" strings). Every rejection names the input and the problem. */
#include "serve/serve.h"
#include <math.h>

static const struct { const char *name; int dtype; } dtypes[] = {
  {"BOOL", GPUX_DT_BOOL}, {"UINT8", GPUX_DT_UINT8}, {"UINT16", GPUX_DT_UINT16}, {"UINT32", GPUX_DT_UINT32},
  {"UINT64", GPUX_DT_UINT64}, {"INT8", GPUX_DT_INT8}, {"INT16", GPUX_DT_INT16}, {"INT32", GPUX_DT_INT32},
  {"INT64", GPUX_DT_INT64}, {"FP16", GPUX_DT_FLOAT16}, {"FP32", GPUX_DT_FLOAT}, {"FP64", GPUX_DT_DOUBLE},
  {"BF16", GPUX_DT_BFLOAT16}, {"BYTES", GPUX_DT_STRING},
};

const char *gpux__oip_dtype_name(int dtype) {
  for (size_t i = 0; i < GPUX__ARRAY_LEN(dtypes); i++)
    if (dtypes[i].dtype == dtype) return dtypes[i].name;
  return NULL;
}

static int oip_dtype(const char *name) {
  for (size_t i = 0; i < GPUX__ARRAY_LEN(dtypes); i++)
    if (!strcmp(dtypes[i].name, name)) return dtypes[i].dtype;
  return -1;
}

/* The app's inputs and outputs, as its pipeline mode gives them (app/mode.h). */
int gpux__slot_io_count(const gpux__slot *s, int output) { return gpux__app_io_count(s->app, output); }

int gpux__slot_io_info(const gpux__slot *s, int output, int i, gpux_value_info *vi) {
  return gpux__app_io_info(s->app, output, i, vi);
}

static cJSON *io_json(const gpux_value_info *vi) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", vi->name);
  const char *dt = gpux__oip_dtype_name(vi->dtype);
  cJSON_AddStringToObject(o, "datatype", dt ? dt : gpux_dtype_name(vi->dtype));
  cJSON *sh = cJSON_AddArrayToObject(o, "shape");
  for (int d = 0; d < vi->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)vi->dims[d]));
  return o;
}

cJSON *gpux__oip_metadata(const gpux__slot *s) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", s->name);
  cJSON *v = cJSON_AddArrayToObject(o, "versions");
  cJSON_AddItemToArray(v, cJSON_CreateString(s->version));
  cJSON_AddStringToObject(o, "platform", "onnx_gpux");
  for (int out = 0; out < 2; out++) {
    cJSON *arr = cJSON_AddArrayToObject(o, out ? "outputs" : "inputs");
    int n = gpux__slot_io_count(s, out);
    for (int i = 0; i < n; i++) {
      gpux_value_info vi;
      if (!gpux__slot_io_info(s, out, i, &vi)) cJSON_AddItemToArray(arr, io_json(&vi));
    }
  }
  return o;
}

static void shape_text(const int64_t *dims, int ndim, char *buf, size_t len) {
  size_t o = (size_t)snprintf(buf, len, "[");
  for (int d = 0; d < ndim && o < len; d++) o += (size_t)snprintf(buf + o, len - o, "%s%lld", d ? "," : "", (long long)dims[d]);
  if (o < len) snprintf(buf + o, len - o, "]");
}

/* Flattens nested "data" into t (already sized). Returns 0, or -1 with err set. */
static int fill_data(const cJSON *d, gpux_tensor *t, int64_t *k, int64_t n, const char *name, char *err, size_t el) {
  if (cJSON_IsArray(d)) {
    const cJSON *c;
    cJSON_ArrayForEach(c, d)
      if (fill_data(c, t, k, n, name, err, el)) return -1;
    return 0;
  }
  if (*k >= n) { (*k)++; return 0; }   /* counted; reported by the caller */
  if (t->dtype == GPUX_DT_STRING) {
    if (!cJSON_IsString(d)) { snprintf(err, el, "input '%s': BYTES data[%lld] is not a string", name, (long long)*k); return -1; }
    if (!(((char **)t->data)[*k] = gpux__strdup(d->valuestring))) { snprintf(err, el, "out of memory"); return -1; }
  } else if (cJSON_IsNumber(d) || cJSON_IsBool(d)) {
    double v = cJSON_IsBool(d) ? (double)cJSON_IsTrue(d) : d->valuedouble;
    if (!gpux__dtype_is_float(t->dtype) && v != floor(v)) {
      snprintf(err, el, "input '%s': data[%lld] = %g is not an integer (datatype %s)", name, (long long)*k, v,
               gpux__oip_dtype_name(t->dtype));
      return -1;
    }
    gpux__store_f64(t->dtype, t->data, *k, v);
  } else {
    snprintf(err, el, "input '%s': data[%lld] is %s, not a number", name, (long long)*k,
             cJSON_IsString(d) ? "a string" : cJSON_IsNull(d) ? "null" : "an object");
    return -1;
  }
  (*k)++;
  return 0;
}

void gpux__oip_request_free(gpux__oip_request *rq) {
  for (int i = 0; i < rq->n; i++) free(rq->names[i]);
  free(rq->names);
  free(rq->classification);
  free(rq->id);
  memset(rq, 0, sizeof *rq);
}

/* classification: K >= 1 (any K above the class count means all of them) */
static int64_t class_param(const cJSON *params) {
  const cJSON *c = cJSON_GetObjectItem(params, "classification");
  if (!cJSON_IsNumber(c) || !(c->valuedouble >= 1)) return 0;
  return c->valuedouble > (double)INT32_MAX ? INT32_MAX : (int64_t)c->valuedouble;
}

/* Scalars in a (nested) 'data' array. */
static int64_t count_leaves(const cJSON *d) {
  if (!cJSON_IsArray(d)) return 1;
  int64_t n = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, d) n += count_leaves(c);
  return n;
}

static int bool_param(const cJSON *params, const char *key) {
  const cJSON *c = cJSON_GetObjectItem(params, key);
  return cJSON_IsTrue(c);
}

#define FAIL(status, ...) do { snprintf(err, err_len, __VA_ARGS__); rc = status; goto done; } while (0)

int gpux__oip_parse(const gpux__slot *s, const char *body, size_t len, size_t json_len, gpux__named_tensors *in,
                    int64_t *rows, gpux__oip_request *rq, char *err, size_t err_len) {
  memset(in, 0, sizeof *in);
  memset(rq, 0, sizeof *rq);
  *rows = 0;
  int rc = 200, n_model = gpux__slot_io_count(s, 0), n_out = gpux__slot_io_count(s, 1);
  if (json_len > len) { snprintf(err, err_len, "Inference-Header-Content-Length %zu is larger than the body (%zu bytes)", json_len, len); return 400; }
  size_t jl = json_len ? json_len : len;
  const char *parse_end = NULL;
  cJSON *req = cJSON_ParseWithLengthOpts(body, jl, &parse_end, 0);
  const char *bin = body + jl, *bin_end = body + len;
  char names[512] = "";
  size_t no = 0;
  for (int i = 0; i < n_model && no < sizeof names; i++) {
    gpux_value_info vi;
    gpux__slot_io_info(s, 0, i, &vi);
    no += (size_t)snprintf(names + no, sizeof names - no, "%s%s", i ? ", " : "", vi.name);
  }
  if (!req) {
    size_t at = parse_end && parse_end >= body ? (size_t)(parse_end - body) : 0;
    FAIL(400, "malformed JSON at byte %zu", at);
  }
  if (!cJSON_IsObject(req)) FAIL(400, "the request must be a JSON object");
  const cJSON *id = cJSON_GetObjectItem(req, "id");
  if (cJSON_IsString(id)) rq->id = gpux__strdup(id->valuestring);
  const cJSON *params = cJSON_GetObjectItem(req, "parameters");
  rq->all_classification = class_param(params);
  rq->binary = bool_param(params, "binary_data_output");
  const cJSON *inputs = cJSON_GetObjectItem(req, "inputs");
  if (!cJSON_IsArray(inputs)) FAIL(400, "'inputs' must be an array of {name, shape, datatype, data}");
  int given = cJSON_GetArraySize(inputs);
  if (!(in->t = gpux__calloc((size_t)given + 1, sizeof *in->t)) || !(in->names = gpux__calloc((size_t)given + 1, sizeof *in->names)))
    FAIL(500, "out of memory");
  int64_t common_rows = -1;
  int batchable = s->batchable;
  const cJSON *ij;
  cJSON_ArrayForEach(ij, inputs) {
    const cJSON *nm = cJSON_GetObjectItem(ij, "name"), *sh = cJSON_GetObjectItem(ij, "shape"),
                *dt = cJSON_GetObjectItem(ij, "datatype"), *data = cJSON_GetObjectItem(ij, "data");
    if (!cJSON_IsString(nm)) FAIL(400, "inputs[%d]: 'name' is missing", in->n);
    const char *name = nm->valuestring;
    gpux_value_info vi;
    int found = -1;
    for (int i = 0; i < n_model && found < 0; i++)
      if (!gpux__slot_io_info(s, 0, i, &vi) && !strcmp(vi.name, name)) found = i;
    if (found < 0) FAIL(400, "unknown input '%s' (model '%s' takes: %s)", name, s->name, names);
    for (int i = 0; i < in->n; i++)
      if (!strcmp(in->names[i], name)) FAIL(400, "input '%s' is given twice", name);
    if (!cJSON_IsString(dt)) FAIL(400, "input '%s': 'datatype' is missing", name);
    int dtype = oip_dtype(dt->valuestring);
    if (dtype < 0) FAIL(400, "input '%s': unknown datatype '%s' (BOOL, UINT8, INT8, INT32, INT64, FP16, FP32, FP64, BYTES, ...)", name, dt->valuestring);
    if (vi.dtype != GPUX_DT_UNDEFINED && dtype != vi.dtype) {
      const char *want = gpux__oip_dtype_name(vi.dtype);
      FAIL(400, "input '%s': datatype %s does not match the model's %s", name, dt->valuestring, want ? want : gpux_dtype_name(vi.dtype));
    }
    if (!cJSON_IsArray(sh)) FAIL(400, "input '%s': 'shape' must be an array of dimensions", name);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > GPUX_MAX_DIMS) FAIL(400, "input '%s': %d dimensions (at most %d)", name, ndim, GPUX_MAX_DIMS);
    int64_t dims[GPUX_MAX_DIMS], count = 1;
    int d = 0;
    const cJSON *dj;
    cJSON_ArrayForEach(dj, sh) {
      if (!cJSON_IsNumber(dj) || dj->valuedouble < 0 || dj->valuedouble != floor(dj->valuedouble) || dj->valuedouble > 1e12)
        FAIL(400, "input '%s': shape[%d] is not a dimension", name, d);
      dims[d++] = (int64_t)dj->valuedouble;
      count *= dims[d - 1];
      if (count > ((int64_t)1 << 31)) FAIL(413, "input '%s': shape is too large", name);
    }
    int shape_ok = vi.ndim < 0 || vi.ndim == ndim;
    for (int k = 0; k < ndim && shape_ok && vi.ndim >= 0; k++)
      if (vi.dims[k] >= 0 && vi.dims[k] != dims[k]) shape_ok = 0;
    if (!shape_ok) {
      char got[128], want[128];
      shape_text(dims, ndim, got, sizeof got);
      shape_text(vi.dims, vi.ndim, want, sizeof want);
      FAIL(400, "input '%s': shape %s does not match the model's %s (-1 = any)", name, got, want);
    }
    /* the data must be present before the declared shape is allocated */
    const cJSON *ip = cJSON_GetObjectItem(ij, "parameters");
    const cJSON *bsz = cJSON_GetObjectItem(ip, "binary_data_size");
    size_t want = (size_t)count * gpux_dtype_size(dtype), nb = 0;
    if (bsz) {
      if (!cJSON_IsNumber(bsz) || bsz->valuedouble < 0 || bsz->valuedouble != floor(bsz->valuedouble) || bsz->valuedouble > 1e15)
        FAIL(400, "input '%s': binary_data_size is not a byte count", name);
      nb = (size_t)bsz->valuedouble;
      if (dtype == GPUX_DT_STRING) FAIL(400, "input '%s': binary BYTES tensors are not supported; send 'data'", name);
      if (nb != want) FAIL(400, "input '%s': binary_data_size %zu, but shape and datatype make %zu bytes", name, nb, want);
      if ((size_t)(bin_end - bin) < nb) FAIL(400, "input '%s': the body ends before its %zu bytes of binary data", name, nb);
    } else {
      if (!data) FAIL(400, "input '%s': 'data' is missing", name);
      int64_t leaves = count_leaves(data);
      if (leaves != count) {
        char got[128];
        shape_text(dims, ndim, got, sizeof got);
        FAIL(400, "input '%s': %lld values in 'data', shape %s holds %lld", name, (long long)leaves, got, (long long)count);
      }
    }
    gpux_tensor *t = &in->t[in->n];
    if (gpux_tensor_init(t, dtype, ndim, dims)) FAIL(500, "out of memory");
    in->names[in->n++] = gpux__strdup(name);
    if (bsz) {
      if (nb) memcpy(t->data, bin, nb);
      bin += nb;
    } else {
      int64_t k = 0;
      if (!cJSON_IsArray(data)) {
        if (fill_data(data, t, &k, count, name, err, err_len)) { rc = 400; goto done; }
      } else if (fill_data(data, t, &k, count, name, err, err_len)) {
        rc = 400;
        goto done;
      }
      if (k != count) {
        char got[128];
        shape_text(dims, ndim, got, sizeof got);
        FAIL(400, "input '%s': %lld values in 'data', shape %s holds %lld", name, (long long)k, got, (long long)count);
      }
    }
    if (dtype == GPUX_DT_STRING || ndim < 1) batchable = 0;
    else if (common_rows < 0) common_rows = dims[0];
    else if (common_rows != dims[0]) batchable = 0;
  }
  for (int i = 0; i < n_model; i++) {
    gpux_value_info vi;
    gpux__slot_io_info(s, 0, i, &vi);
    int have = 0;
    for (int k = 0; k < in->n; k++) have |= !strcmp(in->names[k], vi.name);
    if (!have && !vi.optional) FAIL(400, "input '%s' is missing (model '%s' takes: %s)", vi.name, s->name, names);
  }
  const cJSON *outs = cJSON_GetObjectItem(req, "outputs");
  if (outs && !cJSON_IsArray(outs)) FAIL(400, "'outputs' must be an array of {name, parameters}");
  int n_req = cJSON_GetArraySize(outs);
  if (n_req) {
    rq->names = gpux__calloc((size_t)n_req, sizeof *rq->names);
    rq->classification = gpux__calloc((size_t)n_req, sizeof *rq->classification);
    if (!rq->names || !rq->classification) FAIL(500, "out of memory");
    const cJSON *oj;
    cJSON_ArrayForEach(oj, outs) {
      const cJSON *nm = cJSON_GetObjectItem(oj, "name");
      if (!cJSON_IsString(nm)) FAIL(400, "outputs[%d]: 'name' is missing", rq->n);
      int found = 0;
      for (int i = 0; i < n_out && !found; i++) {
        gpux_value_info vi;
        found = !gpux__slot_io_info(s, 1, i, &vi) && !strcmp(vi.name, nm->valuestring);
      }
      if (!found) FAIL(400, "unknown output '%s' of model '%s'", nm->valuestring, s->name);
      const cJSON *op = cJSON_GetObjectItem(oj, "parameters");
      rq->classification[rq->n] = class_param(op);
      if (bool_param(op, "binary_data")) rq->binary = 1;
      rq->names[rq->n++] = gpux__strdup(nm->valuestring);
    }
  }
  *rows = batchable && common_rows > 0 ? common_rows : 0;
done:
  cJSON_Delete(req);
  if (rc != 200) {
    gpux__named_tensors_free(in);
    gpux__oip_request_free(rq);
  }
  return rc;
}

/* The labels declared for an output (outputs[].labels or a postprocessing entry's), or NULL. */
static const gpux__labels *labels_for(const gpux__slot *s, const char *output) {
  const gpux__spec *sp = s->app->spec;
  for (int i = 0; i < sp->n_post; i++)
    if (s->app->post_labels[i].n && !sp->post[i].cfg.ctc && (!sp->post[i].output || !strcmp(sp->post[i].output, output)))
      return &s->app->post_labels[i];
  for (int i = 0; i < sp->n_outputs && s->app->io_labels; i++)
    if (!strcmp(sp->outputs[i].name, output) && s->app->io_labels[i].n) return &s->app->io_labels[i];
  return NULL;
}

static cJSON *num(double v, int is_float) {
  char b[40];
  if (!isfinite(v)) return cJSON_CreateNull();
  snprintf(b, sizeof b, is_float ? "%.9g" : "%.17g", v);
  return cJSON_CreateRaw(b);
}

/* Triton's classification: the top K of the last dimension as "score:index[:label]" strings. */
static cJSON *classify(const gpux__slot *s, const char *name, const gpux_tensor *t, int64_t K) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", name);
  cJSON_AddStringToObject(o, "datatype", "BYTES");
  int64_t classes = t->ndim ? t->dims[t->ndim - 1] : 1, n = gpux_tensor_count(t);
  int64_t rows = classes ? n / classes : 0;
  if (K > classes) K = classes;
  cJSON *sh = cJSON_AddArrayToObject(o, "shape");
  for (int d = 0; d + 1 < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->dims[d]));
  cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)K));
  cJSON *data = cJSON_AddArrayToObject(o, "data");
  const gpux__labels *lab = labels_for(s, name);
  int64_t *idx = gpux__malloc(sizeof *idx * (size_t)(classes + 1));
  for (int64_t r = 0; r < rows && idx; r++) {
    /* partial selection sort: K is small */
    for (int64_t c = 0; c < classes; c++) idx[c] = c;
    for (int64_t k = 0; k < K; k++) {
      int64_t best = k;
      for (int64_t c = k + 1; c < classes; c++)
        if (gpux__load_f64(t->dtype, t->data, r * classes + idx[c]) > gpux__load_f64(t->dtype, t->data, r * classes + idx[best])) best = c;
      int64_t tmp = idx[k]; idx[k] = idx[best]; idx[best] = tmp;
      char b[512];
      double v = gpux__load_f64(t->dtype, t->data, r * classes + idx[k]);
      if (lab && idx[k] < lab->n) snprintf(b, sizeof b, "%f:%lld:%s", v, (long long)idx[k], lab->items[idx[k]]);
      else snprintf(b, sizeof b, "%f:%lld", v, (long long)idx[k]);
      cJSON_AddItemToArray(data, cJSON_CreateString(b));
    }
  }
  free(idx);
  return o;
}

int gpux__oip_response(const gpux__slot *s, const gpux__oip_request *rq, const gpux__named_tensors *out,
                       char **body, size_t *len, size_t *json_len, char *err, size_t err_len) {
  *body = NULL;
  *len = *json_len = 0;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model_name", s->name);
  cJSON_AddStringToObject(o, "model_version", s->version);
  if (rq->id) cJSON_AddStringToObject(o, "id", rq->id);
  cJSON *arr = cJSON_AddArrayToObject(o, "outputs");
  size_t bin_total = 0;
  int n_sel = rq->n ? rq->n : out->n;
  const gpux_tensor **bins = gpux__calloc((size_t)n_sel + 1, sizeof *bins);
  int n_bins = 0;
  for (int k = 0; k < n_sel; k++) {
    int i = k;
    if (rq->n) {
      for (i = 0; i < out->n && strcmp(out->names[i], rq->names[k]); i++) {}
      if (i == out->n) continue;
    }
    const gpux_tensor *t = &out->t[i];
    int64_t K = rq->n ? rq->classification[k] : rq->all_classification;
    if (!K && rq->all_classification && rq->n) K = rq->all_classification;
    if (t->kind != GPUX_KIND_TENSOR) continue;
    if (K) {
      cJSON_AddItemToArray(arr, classify(s, out->names[i], t, K));
      continue;
    }
    cJSON *oj = cJSON_CreateObject();
    cJSON_AddStringToObject(oj, "name", out->names[i]);
    const char *dt = gpux__oip_dtype_name(t->dtype);
    cJSON_AddStringToObject(oj, "datatype", dt ? dt : gpux_dtype_name(t->dtype));
    cJSON *sh = cJSON_AddArrayToObject(oj, "shape");
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->dims[d]));
    int64_t n = gpux_tensor_count(t);
    if (rq->binary && t->dtype != GPUX_DT_STRING && bins) {
      cJSON *p = cJSON_AddObjectToObject(oj, "parameters");
      cJSON_AddNumberToObject(p, "binary_data_size", (double)t->nbytes);
      bins[n_bins++] = t;
      bin_total += t->nbytes;
    } else {
      cJSON *d = cJSON_AddArrayToObject(oj, "data");
      int fl = gpux__dtype_is_float(t->dtype);
      for (int64_t e = 0; e < n; e++) {
        if (t->dtype == GPUX_DT_STRING) cJSON_AddItemToArray(d, cJSON_CreateString(((char **)t->data)[e] ? ((char **)t->data)[e] : ""));
        else if (t->dtype == GPUX_DT_BOOL) cJSON_AddItemToArray(d, cJSON_CreateBool(((uint8_t *)t->data)[e]));
        else cJSON_AddItemToArray(d, num(gpux__load_f64(t->dtype, t->data, e), fl));
      }
    }
    cJSON_AddItemToArray(arr, oj);
  }
  char *json = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!json || !bins) {
    free(json);
    free(bins);
    snprintf(err, err_len, "out of memory");
    return 500;
  }
  size_t jl = strlen(json);
  if (n_bins) {
    char *all = gpux__malloc(jl + bin_total + 1);
    if (!all) { free(json); free(bins); snprintf(err, err_len, "out of memory"); return 500; }
    memcpy(all, json, jl);
    size_t off = jl;
    for (int b = 0; b < n_bins; b++) { memcpy(all + off, bins[b]->data, bins[b]->nbytes); off += bins[b]->nbytes; }
    free(json);
    *body = all;
    *len = off;
    *json_len = jl;
  } else {
    *body = json;
    *len = jl;
  }
  free(bins);
  return 200;
}
