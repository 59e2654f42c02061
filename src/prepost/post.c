/* post.c — post-processing of model outputs: softmax, sigmoid, argmax, top-k, labels files,
 * CTC greedy decoding with a charset (the PaddleOCR convention), and the postprocessing config
 * that turns an output tensor into ranked labels or text. */
#include "prepost/prepost-impl.h"
#include <math.h>
#include <stdio.h>

void gpux__softmax(const float *in, int64_t n, float *out) {
  if (n <= 0) return;
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (in[i] > mx) mx = in[i];
  if (isinf(mx) && mx < 0) mx = 0; /* all -inf: uniform below */
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    float e = expf(in[i] - mx);
    out[i] = e;
    sum += e;
  }
  if (!(sum > 0)) {
    for (int64_t i = 0; i < n; i++) out[i] = 1.0f / (float)n;
    return;
  }
  for (int64_t i = 0; i < n; i++) out[i] = (float)(out[i] / sum);
}

void gpux__sigmoid(const float *in, int64_t n, float *out) {
  for (int64_t i = 0; i < n; i++) {
    float x = in[i];
    out[i] = x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
  }
}

int64_t gpux__argmax(const float *x, int64_t n) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(x[i])) continue;
    if (best < 0 || x[i] > x[best]) best = i;
  }
  return best < 0 && n > 0 ? 0 : best;
}

/* Ranks a before b: larger value first, NaN last, lower index on ties. */
static int ranks_before(const float *x, int64_t a, int64_t b) {
  float va = x[a], vb = x[b];
  if (isnan(va) != isnan(vb)) return isnan(vb);
  if (!isnan(va) && va != vb) return va > vb;
  return a < b;
}

int64_t gpux__topk(const float *x, int64_t n, int64_t k, int64_t *idx, float *val) {
  if (k > n) k = n;
  if (k <= 0) return 0;
  /* insertion into a sorted list of k: O(n k), fine for class counts */
  int64_t have = 0;
  for (int64_t i = 0; i < n; i++) {
    if (have == k && !ranks_before(x, i, idx[k - 1])) continue;
    int64_t pos = have < k ? have++ : k - 1;
    while (pos > 0 && ranks_before(x, i, idx[pos - 1])) {
      idx[pos] = idx[pos - 1];
      pos--;
    }
    idx[pos] = i;
  }
  if (val)
    for (int64_t i = 0; i < k; i++) val[i] = x[idx[i]];
  return k;
}

/* ---- labels ---- */

void gpux__labels_free(gpux__labels *l) {
  if (!l) return;
  for (int64_t i = 0; i < l->n; i++) free(l->items[i]);
  free(l->items);
  memset(l, 0, sizeof *l);
}

static int labels_push(gpux__labels *l, int64_t *cap, const char *s, size_t len) {
  if (l->n == *cap) {
    int64_t nc = *cap ? *cap * 2 : 64;
    char **p = gpux__realloc(l->items, sizeof(char *) * (size_t)nc);
    if (!p) return GPUX_E_NOMEM;
    l->items = p;
    *cap = nc;
  }
  char *d = gpux__strndup(s, len);
  if (!d) return GPUX_E_NOMEM;
  l->items[l->n++] = d;
  return 0;
}

static int labels_parse(const void *bytes, size_t len, gpux__labels *out, int64_t *cap) {
  const char *s = bytes;
  size_t start = 0;
  if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) start = 3; /* UTF-8 byte order mark */
  while (start < len) {
    const char *nl = memchr(s + start, '\n', len - start);
    size_t end = nl ? (size_t)(nl - s) : len, e = end;
    if (e > start && s[e - 1] == '\r') e--;
    if (memchr(s + start, 0, e - start))
      return gpux__error(GPUX_E_PARSE, "labels file has a NUL byte on line %lld", (long long)out->n + 1);
    int rc = labels_push(out, cap, s + start, e - start);
    if (rc) return rc;
    start = end + 1;
  }
  return 0;
}

int gpux__labels_load_buffer(const void *bytes, size_t len, gpux__labels *out) {
  memset(out, 0, sizeof *out);
  int64_t cap = 0;
  int rc = labels_parse(bytes, len, out, &cap);
  if (rc) gpux__labels_free(out);
  return rc;
}

int gpux__labels_load(const char *path, gpux__labels *out) {
  memset(out, 0, sizeof *out);
  char *data;
  size_t len;
  int rc = gpux__pp_read_file(path, &data, &len);
  if (rc) return rc;
  rc = gpux__labels_load_buffer(data, len, out);
  free(data);
  return rc ? gpux__error_prefix(rc, "%s: ", path) : 0;
}

int gpux__labels_from_list(const char *const *items, int64_t n, gpux__labels *out) {
  memset(out, 0, sizeof *out);
  int64_t cap = 0;
  for (int64_t i = 0; i < n; i++) {
    int rc = labels_push(out, &cap, items[i] ? items[i] : "", items[i] ? strlen(items[i]) : 0);
    if (rc) {
      gpux__labels_free(out);
      return rc;
    }
  }
  return 0;
}

int gpux__ctc_charset_load_buffer(const void *bytes, size_t len, int add_space, gpux__labels *out) {
  memset(out, 0, sizeof *out);
  int64_t cap = 0;
  int rc = labels_push(out, &cap, "", 0);
  if (!rc) rc = labels_parse(bytes, len, out, &cap);
  if (!rc && add_space) rc = labels_push(out, &cap, " ", 1);
  if (!rc && out->n < 2) rc = gpux__error(GPUX_E_PARSE, "CTC charset is empty");
  if (rc) gpux__labels_free(out);
  return rc;
}

int gpux__ctc_charset_load(const char *path, int add_space, gpux__labels *out) {
  memset(out, 0, sizeof *out);
  char *data;
  size_t len;
  int rc = gpux__pp_read_file(path, &data, &len);
  if (rc) return rc;
  rc = gpux__ctc_charset_load_buffer(data, len, add_space, out);
  free(data);
  return rc ? gpux__error_prefix(rc, "%s: ", path) : 0;
}

const char *gpux__labels_get(const gpux__labels *l, int64_t i) {
  if (!l || i < 0 || i >= l->n) return NULL;
  return l->items[i];
}

/* ---- CTC ---- */

int gpux__ctc_greedy_decode(const float *probs, int64_t steps, int64_t classes,
                            const gpux__labels *charset, int64_t blank, int trim, char **text,
                            float *confidence) {
  *text = NULL;
  if (confidence) *confidence = 0;
  if (classes <= 0 || steps < 0)
    return gpux__error(GPUX_E_SHAPE, "CTC input of %lld steps x %lld classes", (long long)steps,
                       (long long)classes);
  gpux__pp_buf b = {0};
  double score = 0;
  int64_t kept = 0, prev = -1;
  for (int64_t t = 0; t < steps; t++) {
    const float *row = probs + t * classes;
    int64_t k = gpux__argmax(row, classes);
    if (k != blank && k != prev) {
      const char *ch = gpux__labels_get(charset, k);
      if (!ch) {
        free(b.data);
        return gpux__error(GPUX_E_INVALID,
                           "CTC class %lld is outside the charset of %lld entries (the model has "
                           "%lld classes)",
                           (long long)k, (long long)(charset ? charset->n : 0), (long long)classes);
      }
      if (gpux__pp_buf_put(&b, ch, strlen(ch))) {
        free(b.data);
        return GPUX_E_NOMEM;
      }
      score += row[k];
      kept++;
    }
    prev = k;
  }
  char *s = gpux__pp_buf_cstr(&b);
  if (!s) return GPUX_E_NOMEM;
  if (trim) {
    size_t a = 0, e = b.len;
    while (a < e && s[a] == ' ') a++;
    while (e > a && s[e - 1] == ' ') e--;
    memmove(s, s + a, e - a);
    s[e - a] = 0;
  }
  *text = s;
  if (confidence) *confidence = kept ? (float)(score / kept) : 0.0f;
  return 0;
}

/* ---- the postprocessing config ---- */

void gpux__post_config_default(gpux__post_config *c) {
  memset(c, 0, sizeof *c);
  c->ctc_trim = 1;
}

void gpux__post_result_free(gpux__post_result *r) {
  if (!r) return;
  for (int64_t i = 0; i < r->n_rows; i++) {
    free(r->rows[i].items);
    free(r->rows[i].text);
  }
  free(r->rows);
  memset(r, 0, sizeof *r);
}

int gpux__postprocess(const gpux__post_config *c, const gpux_tensor *t, gpux__post_result *out) {
  memset(out, 0, sizeof *out);
  if (t->kind != GPUX_KIND_TENSOR || !t->data || t->dtype == GPUX_DT_STRING)
    return gpux__error(GPUX_E_DTYPE, "post-processing needs a numeric tensor");
  if (c->activation < GPUX__ACT_NONE || c->activation > GPUX__ACT_SIGMOID || c->top_k < 0)
    return gpux__error(GPUX_E_INVALID, "bad post-processing config (activation %d, top_k %lld)",
                       c->activation, (long long)c->top_k);
  int64_t count = gpux_tensor_count(t);
  int64_t C = t->ndim ? t->dims[t->ndim - 1] : 1;
  if (C <= 0 || count == 0) return gpux__error(GPUX_E_SHAPE, "post-processing of an empty tensor");
  int64_t rows = count / C, steps = 1;
  if (c->ctc) {
    if (t->ndim < 2) return gpux__error(GPUX_E_SHAPE, "CTC decoding needs [T, C] or [N, T, C]");
    steps = t->dims[t->ndim - 2];
    rows = count / (C * steps);
    if (!c->labels) return gpux__error(GPUX_E_INVALID, "CTC decoding needs a charset");
  }
  float *x = gpux__malloc(sizeof(float) * (size_t)count);
  if (!x) return GPUX_E_NOMEM;
  for (int64_t i = 0; i < count; i++) x[i] = (float)gpux__load_f64(t->dtype, t->data, i);
  for (int64_t r = 0; r < count / C; r++) {
    float *row = x + r * C;
    if (c->activation == GPUX__ACT_SOFTMAX) gpux__softmax(row, C, row);
    else if (c->activation == GPUX__ACT_SIGMOID) gpux__sigmoid(row, C, row);
  }
  int rc = 0;
  out->rows = gpux__calloc((size_t)rows, sizeof *out->rows);
  if (!out->rows) {
    free(x);
    return GPUX_E_NOMEM;
  }
  out->n_rows = rows;
  for (int64_t r = 0; r < rows && !rc; r++) {
    gpux__post_row *pr = &out->rows[r];
    if (c->ctc) {
      rc = gpux__ctc_greedy_decode(x + r * steps * C, steps, C, c->labels, c->ctc_blank,
                                   c->ctc_trim, &pr->text, &pr->score);
      continue;
    }
    const float *row = x + r * C;
    int64_t k = c->top_k ? GPUX__MIN(c->top_k, C) : C;
    int64_t *idx = gpux__malloc(sizeof(int64_t) * (size_t)C);
    pr->items = gpux__calloc((size_t)C, sizeof *pr->items);
    if (!idx || !pr->items) {
      free(idx);
      rc = GPUX_E_NOMEM;
      break;
    }
    int64_t n;
    if (c->top_k || c->has_threshold) n = gpux__topk(row, C, k, idx, NULL);
    else
      for (n = 0; n < C; n++) idx[n] = n; /* nothing asked: every class in order */
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
      if (c->has_threshold && !(row[idx[i]] >= c->threshold)) continue;
      pr->items[kept].index = idx[i];
      pr->items[kept].score = row[idx[i]];
      pr->items[kept].label = gpux__labels_get(c->labels, idx[i]);
      kept++;
    }
    pr->n_items = kept;
    int64_t best = gpux__argmax(row, C);
    pr->score = best >= 0 ? row[best] : 0;
    free(idx);
  }
  free(x);
  if (rc) gpux__post_result_free(out);
  return rc;
}

int gpux__post_result_text(const gpux__post_result *r, char **s) {
  *s = NULL;
  gpux__pp_buf b = {0};
  int rc = 0;
  for (int64_t i = 0; i < r->n_rows && !rc; i++) {
    const gpux__post_row *row = &r->rows[i];
    if (r->n_rows > 1 && (rc = gpux__pp_buf_printf(&b, "[%lld]%s", (long long)i, row->text ? " " : "\n")))
      break;
    if (row->text) {
      rc = gpux__pp_buf_printf(&b, "%s\n", row->text);
      continue;
    }
    for (int64_t k = 0; k < row->n_items && !rc; k++) {
      const gpux__post_item *it = &row->items[k];
      if (it->label) rc = gpux__pp_buf_printf(&b, "%s %.4f\n", it->label, it->score);
      else rc = gpux__pp_buf_printf(&b, "%lld %.4f\n", (long long)it->index, it->score);
    }
  }
  if (!rc && !gpux__pp_buf_cstr(&b)) rc = GPUX_E_NOMEM;
  if (rc) {
    free(b.data);
    return rc;
  }
  *s = b.data;
  return 0;
}
