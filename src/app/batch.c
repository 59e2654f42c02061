/* batch.c — several requests as one batch (gpux_app_run_batch, `gpux run --batch`): each item is
 * prepared on its own; when the app's one model leads every input and output with a symbolic
 * batch dimension and the items' prepared inputs agree on everything else, they are stacked
 * along that dimension into one run and the outputs are split back by rows; otherwise the items
 * run one after another. Each item is answered as gpux_app_run answers. */
#include "app/mode.h"
#include <cjson/cJSON.h>

int gpux__app_batchable(const gpux_app *a) {
  if (a->n_models != 1 || !a->mode->direct) return 0;
  gpux_model *m = a->models[0];
  for (int out = 0; out < 2; out++) {
    int n = out ? gpux_model_output_count(m) : gpux_model_input_count(m);
    for (int i = 0; i < n; i++) {
      gpux_value_info vi;
      if (out ? gpux_model_output_info(m, i, &vi) : gpux_model_input_info(m, i, &vi)) return 0;
      if (vi.ndim < 1 || vi.dims[0] >= 0 || vi.dtype == GPUX_DT_STRING) return 0;
    }
  }
  return 1;
}

/* Can item b join a stack led by item a? Same names, dtypes and all but the leading dimension;
 * every input of an item has the same number of rows. */
static int stackable(const gpux__named_tensors *a, const gpux__named_tensors *b) {
  if (a->n != b->n || !a->n) return 0;
  for (int i = 0; i < a->n; i++) {
    const gpux_tensor *x = &a->t[i], *y = &b->t[i];
    if (strcmp(a->names[i], b->names[i]) || x->dtype != y->dtype || x->ndim != y->ndim || x->ndim < 1 ||
        x->kind != GPUX_KIND_TENSOR || y->kind != GPUX_KIND_TENSOR || x->dtype == GPUX_DT_STRING ||
        y->dims[0] != b->t[0].dims[0])
      return 0;
    for (int d = 1; d < x->ndim; d++)
      if (x->dims[d] != y->dims[d]) return 0;
  }
  return 1;
}

/* Stacks the items' inputs along dimension 0 into *in (names borrowed from items[0]). */
static int stack(const gpux__named_tensors *items, int n_items, int64_t total, gpux__named_tensors *in) {
  int n = items[0].n;
  memset(in, 0, sizeof *in);
  in->t = gpux__calloc((size_t)n, sizeof *in->t);
  in->names = gpux__calloc((size_t)n, sizeof *in->names);
  if (!in->t || !in->names) return GPUX_E_NOMEM;
  in->n = n;
  for (int i = 0; i < n; i++) {
    const gpux_tensor *first = &items[0].t[i];
    int64_t dims[GPUX_MAX_DIMS];
    memcpy(dims, first->dims, sizeof dims);
    dims[0] = total;
    in->names[i] = items[0].names[i];
    int rc = gpux_tensor_init(&in->t[i], first->dtype, first->ndim, dims);
    if (rc) return rc;
    size_t off = 0;
    for (int k = 0; k < n_items; k++) {
      memcpy((char *)in->t[i].data + off, items[k].t[i].data, items[k].t[i].nbytes);
      off += items[k].t[i].nbytes;
    }
  }
  return 0;
}

/* Rows [row, row + rows) of every output, as item outputs. */
static int take_rows(const gpux__named_tensors *out, int64_t total, int64_t row, int64_t rows, gpux__named_tensors *dst) {
  for (int o = 0; o < out->n; o++) {
    const gpux_tensor *t = &out->t[o];
    int64_t dims[GPUX_MAX_DIMS];
    memcpy(dims, t->dims, sizeof dims);
    dims[0] = rows;
    gpux_tensor part = {0};
    int rc = gpux_tensor_init(&part, t->dtype, t->ndim, dims);
    if (rc) return rc;
    size_t row_bytes = t->nbytes / (size_t)total;
    memcpy(part.data, (const char *)t->data + row_bytes * (size_t)row, part.nbytes);
    if ((rc = gpux__named_tensors_add(dst, out->names[o], &part))) { gpux_tensor_free(&part); return rc; }
  }
  return 0;
}

/* Answers one item, with the rows of the run it was part of. */
static int answer(gpux_app *a, const gpux__named_tensors *out, const gpux__app_times *tm, int64_t batch_rows,
                  char **json, char **text) {
  int rc = gpux__app_answer(a, out, tm, json ? json : NULL, text);
  if (rc || !json) return rc;
  cJSON *r = cJSON_Parse(*json);
  if (!r) return 0;
  cJSON_AddNumberToObject(r, "batch_size", (double)batch_rows);
  char *s = cJSON_PrintUnformatted(r);
  cJSON_Delete(r);
  if (!s) return GPUX_E_NOMEM;
  free(*json);
  *json = s;
  return 0;
}

int gpux_app_run_batch(gpux_app *a, const gpux_app_input *inputs, int n_inputs, int n_items, char **results_json,
                       char **results_text) {
  for (int k = 0; k < n_items; k++) {
    if (results_json) results_json[k] = NULL;
    if (results_text) results_text[k] = NULL;
  }
  if (!a || n_items < 1 || n_inputs < 0 || (n_inputs && !inputs))
    return gpux__error(GPUX_E_INVALID, "a batch needs an app and at least one item");
  if (a->handler && !a->handler_off) { /* handler code prepares and answers each request itself */
    int rc = 0;
    for (int k = 0; k < n_items && !rc; k++) {
      if ((rc = gpux_app_run(a, inputs + (size_t)k * (size_t)n_inputs, n_inputs, results_json ? &results_json[k] : NULL,
                             results_text ? &results_text[k] : NULL)))
        gpux__error_prefix(rc, "batch item %d: ", k + 1);
    }
    for (int k = 0; rc && k < n_items; k++) {
      if (results_json) { free(results_json[k]); results_json[k] = NULL; }
      if (results_text) { free(results_text[k]); results_text[k] = NULL; }
    }
    return rc;
  }
  gpux__named_tensors *items = gpux__calloc((size_t)n_items, sizeof *items);
  if (!items) return GPUX_E_NOMEM;
  gpux__app_times tm = {.start = gpux__now_ms()};
  int rc = 0, stacked = gpux__app_batchable(a) && n_items > 1;
  int64_t total = 0;
  for (int k = 0; k < n_items && !rc; k++) {
    if ((rc = gpux__app_prepare(a, inputs + (size_t)k * (size_t)n_inputs, n_inputs, &items[k])))
      gpux__error_prefix(rc, "batch item %d: ", k + 1);
    else {
      stacked = stacked && stackable(&items[0], &items[k]);
      total += items[k].n ? items[k].t[0].dims[0] : 0;
    }
  }
  tm.prepared = gpux__now_ms();
  gpux__named_tensors in = {0}, out = {0};
  if (!rc && stacked && !(rc = stack(items, n_items, total, &in))) {
    rc = gpux__app_infer(a, &in, &out, &tm.infer_ms);
    for (int o = 0; o < out.n && !rc && stacked; o++) {
      const gpux_tensor *t = &out.t[o];
      if (t->kind != GPUX_KIND_TENSOR || t->ndim < 1 || t->dims[0] != total || t->dtype == GPUX_DT_STRING) stacked = 0;
    }
    tm.inferred = gpux__now_ms();
    int64_t row = 0;
    for (int k = 0; k < n_items && !rc && stacked; k++) {
      gpux__named_tensors part = {0};
      int64_t rows = items[k].t[0].dims[0];
      part.image_map = items[k].image_map;
      if (!(rc = take_rows(&out, total, row, rows, &part)))
        rc = answer(a, &part, &tm, total, results_json ? &results_json[k] : NULL, results_text ? &results_text[k] : NULL);
      gpux__named_tensors_free(&part);
      row += rows;
    }
  } else if (!rc) {
    stacked = 0;
  }
  if (in.names) memset(in.names, 0, sizeof *in.names * (size_t)in.n);   /* borrowed */
  gpux__named_tensors_free(&in);
  gpux__named_tensors_free(&out);
  /* one after another: not stackable, or the outputs do not lead with the batch's rows */
  for (int k = 0; k < n_items && !rc && !stacked; k++) {
    gpux__app_times one = {.start = gpux__now_ms()};
    gpux__named_tensors o = {0};
    one.prepared = one.start;
    if (!(rc = gpux__app_infer(a, &items[k], &o, &one.infer_ms))) {
      o.image_map = items[k].image_map;
      one.inferred = gpux__now_ms();
      rc = answer(a, &o, &one, items[k].n ? items[k].t[0].dims[0] : 1, results_json ? &results_json[k] : NULL,
                  results_text ? &results_text[k] : NULL);
    } else {
      gpux__error_prefix(rc, "batch item %d: ", k + 1);
    }
    gpux__named_tensors_free(&o);
  }
  for (int k = 0; k < n_items; k++) gpux__named_tensors_free(&items[k]);
  free(items);
  if (rc)
    for (int k = 0; k < n_items; k++) {
      if (results_json) { free(results_json[k]); results_json[k] = NULL; }
      if (results_text) { free(results_text[k]); results_text[k] = NULL; }
    }
  return rc;
}
