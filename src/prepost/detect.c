/* detect.c — object detection post-processing: boxes decoded from a detector's raw output,
 * filtered by score, and class-aware non-maximum suppression (the boxes of one class that
 * overlap a better one by more than the IoU limit are dropped), best first.
 *
 * Layouts, for one image (batch 1):
 *   yolo       [1, 4 + C, N]  cx, cy, w, h, then C class scores per candidate (YOLOv8 and later)
 *   yolo-rows  [1, N, 5 + C]  cx, cy, w, h, objectness, C class scores (YOLOv5/v7); a
 *              candidate's score is objectness x its best class score
 *   boxes      [1, N, 4 + C]  x1, y1, x2, y2, then C class scores (SSD-style, already decoded);
 *              or [1, N, 4] boxes with a second output [1, N, C] of scores
 * Coordinates stay as the model gives them (its input's pixels, or fractions of them). */
#include "prepost/prepost-impl.h"
#include <math.h>

typedef struct {
  gpux__detection d;
  int keep;
} cand;

static int by_score(const void *a, const void *b) {
  const cand *x = a, *y = b;
  return x->d.score > y->d.score ? -1 : x->d.score < y->d.score ? 1 : 0;
}

static float iou(const float *a, const float *b) {
  float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  float inter = w * h, ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return ua > 0 ? inter / ua : 0;
}

static int is_detector_output(const gpux_tensor *t) {
  return t->kind == GPUX_KIND_TENSOR && t->ndim == 3 && t->dims[0] == 1 && gpux__dtype_is_float(t->dtype);
}

int gpux__detect(const gpux__detect_config *c, const gpux_tensor *t, const gpux_tensor *scores,
                 gpux__detection **out, int64_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (!is_detector_output(t))
    return gpux__error(GPUX_E_SHAPE, "detection takes a float [1, ., .] output, got %s [%d dims]", gpux_dtype_name(t->dtype), t->ndim);
  if (scores && (c->format != GPUX__DET_BOXES || !is_detector_output(scores) || t->dims[2] != 4 || scores->dims[1] != t->dims[1]))
    return gpux__error(GPUX_E_SHAPE, "detection with a scores output takes boxes [1, N, 4] and scores [1, N, C] (format boxes), "
                       "got [1, %lld, %lld] and %s [%d dims]", (long long)t->dims[1], (long long)t->dims[2],
                       gpux_dtype_name(scores->dtype), scores->ndim);
  int transposed = c->format == GPUX__DET_YOLO; /* candidates along the last axis */
  int64_t n = transposed ? t->dims[2] : t->dims[1], width = transposed ? t->dims[1] : t->dims[2];
  int64_t first_class = c->format == GPUX__DET_YOLO_ROWS ? 5 : 4;
  if (scores) width = 4 + scores->dims[2];
  if (width <= first_class)
    return gpux__error(GPUX_E_SHAPE, "detection: %lld values per candidate leave no class scores (format %s needs more than %lld)",
                       (long long)width, c->format == GPUX__DET_YOLO ? "yolo" : c->format == GPUX__DET_YOLO_ROWS ? "yolo-rows" : "boxes",
                       (long long)first_class);
  cand *cs = gpux__malloc(sizeof *cs * (size_t)(n + 1));
  if (!cs) return GPUX_E_NOMEM;
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++) {
#define V(j) ((float)(scores && (j) >= 4 ? gpux__load_f64(scores->dtype, scores->data, i * (width - 4) + (j) - 4) \
                   : gpux__load_f64(t->dtype, t->data, transposed ? (j) * n + i : i * (scores ? 4 : width) + (j))))
    int64_t best = first_class;
    for (int64_t j = first_class + 1; j < width; j++)
      if (V(j) > V(best)) best = j;
    float score = V(best);
    if (c->format == GPUX__DET_YOLO_ROWS) score *= V(4);
    if (!(score >= c->score_threshold)) continue; /* NaN never passes */
    float a = V(0), b = V(1), w = V(2), h = V(3);
    cand *k = &cs[m++];
    if (c->format == GPUX__DET_BOXES) {
      k->d.box[0] = a, k->d.box[1] = b, k->d.box[2] = w, k->d.box[3] = h;
    } else {
      k->d.box[0] = a - w / 2, k->d.box[1] = b - h / 2, k->d.box[2] = a + w / 2, k->d.box[3] = b + h / 2;
    }
    k->d.score = score;
    k->d.cls = best - first_class;
    k->keep = 1;
#undef V
  }
  qsort(cs, (size_t)m, sizeof *cs, by_score);
  int64_t kept = 0, max = c->max_detections > 0 ? c->max_detections : INT64_MAX;
  for (int64_t i = 0; i < m && kept < max; i++) {
    if (!cs[i].keep) continue;
    cs[kept++].d = cs[i].d;
    for (int64_t j = i + 1; j < m; j++)
      if (cs[j].keep && cs[j].d.cls == cs[i].d.cls && iou(cs[i].d.box, cs[j].d.box) > c->iou_threshold) cs[j].keep = 0;
  }
  gpux__detection *d = gpux__malloc(sizeof *d * (size_t)(kept + 1));
  if (!d) { free(cs); return GPUX_E_NOMEM; }
  for (int64_t i = 0; i < kept; i++) d[i] = cs[i].d;
  free(cs);
  *out = d;
  *n_out = kept;
  return 0;
}
