/* annotate.c — gpux_image_annotate: a detector's answer drawn on the image it was asked about
 * (`gpux run --output FILE.png`): every output's "detections" outlined in their class colours
 * with "label score" captions, the result encoded as PNG. The boxes must be in the image's pixels
 * ("box_space" "image" of that image's size, or "input" for a model that took the image as is);
 * normalized boxes are scaled by the image's size. */
#include "app/app.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

typedef struct {
  float box[4];
  int64_t cls;
  char caption[96];
} drawn_box;

/* The detections of one output, scaled into the image's pixels, appended to *list. */
static int collect(const cJSON *o, const gpux__image *img, drawn_box **list, int *n, int *cap) {
  const char *space = cJSON_GetStringValue(cJSON_GetObjectItem(o, "box_space"));
  const cJSON *size = cJSON_GetObjectItem(o, "image_size");
  double sx = 1, sy = 1;
  if (space && !strcmp(space, "normalized")) sx = img->width, sy = img->height;
  else if (space && !strcmp(space, "image") && cJSON_GetArraySize(size) == 2) {
    double w = cJSON_GetArrayItem(size, 0)->valuedouble, h = cJSON_GetArrayItem(size, 1)->valuedouble;
    if (w != img->width || h != img->height)
      return gpux__error(GPUX_E_INVALID, "the boxes are for a %gx%g image, this one is %dx%d", w, h, img->width, img->height);
  }
  const cJSON *d;
  cJSON_ArrayForEach(d, cJSON_GetObjectItem(o, "detections")) {
    const cJSON *box = cJSON_GetObjectItem(d, "box");
    if (cJSON_GetArraySize(box) != 4) return gpux__error(GPUX_E_INVALID, "a detection has no box of 4 numbers");
    if (*n == *cap) {
      int nc = *cap ? *cap * 2 : 32;
      drawn_box *p = gpux__realloc(*list, sizeof *p * (size_t)nc);
      if (!p) return GPUX_E_NOMEM;
      *list = p, *cap = nc;
    }
    drawn_box *b = &(*list)[(*n)++];
    for (int k = 0; k < 4; k++) {
      const cJSON *v = cJSON_GetArrayItem(box, k);
      b->box[k] = cJSON_IsNumber(v) ? (float)(v->valuedouble * (k % 2 ? sy : sx)) : NAN;
    }
    const cJSON *cls = cJSON_GetObjectItem(d, "class"), *score = cJSON_GetObjectItem(d, "score");
    const char *label = cJSON_GetStringValue(cJSON_GetObjectItem(d, "label"));
    b->cls = cJSON_IsNumber(cls) && cls->valuedouble >= 0 && cls->valuedouble < 1e15 ? (int64_t)cls->valuedouble : 0;
    char name[32];
    snprintf(name, sizeof name, "class %lld", (long long)b->cls);
    snprintf(b->caption, sizeof b->caption, "%.80s %.2f", label ? label : name, cJSON_IsNumber(score) ? score->valuedouble : 0.0);
  }
  return 0;
}

int gpux_image_annotate(const void *image, size_t len, const char *result_json, void **png, size_t *png_len) {
  if (png) *png = NULL;
  if (png_len) *png_len = 0;
  if (!image || !result_json || !png || !png_len) return gpux__error(GPUX_E_INVALID, "annotate needs an image, an answer and a place for the PNG");
  cJSON *res = cJSON_Parse(result_json);
  if (!res) return gpux__error(GPUX_E_PARSE, "the answer to draw is not JSON");
  gpux__image img = {0};
  drawn_box *list = NULL;
  int n = 0, cap = 0, outputs = 0;
  int rc = gpux__image_decode(image, len, 3, &img);
  if (rc) gpux__error_prefix(rc, "the image to draw on: ");
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(res, "outputs")) {
    if (rc || !cJSON_IsArray(cJSON_GetObjectItem(o, "detections"))) continue;
    outputs++;
    rc = collect(o, &img, &list, &n, &cap);
  }
  if (!rc && !outputs) rc = gpux__error(GPUX_E_INVALID, "the answer has no detections to draw (postprocessing.detect)");
  if (!rc) {
    /* Ultralytics' line width: 0.3% of the mean side, at least 2; text 1 font pixel per 320 */
    int thickness = GPUX__MAX(2, (int)lrint((img.width + img.height) / 2.0 * 0.003));
    int scale = GPUX__MAX(1, (GPUX__MIN(img.width, img.height) + 160) / 320);
    for (int i = n - 1; i >= 0; i--) gpux__draw_box(&img, list[i].box, list[i].cls, thickness); /* the best on top */
    for (int i = n - 1; i >= 0; i--) gpux__draw_caption(&img, list[i].box, list[i].cls, list[i].caption, scale);
    rc = gpux__image_encode_png(&img, png, png_len);
  }
  free(list);
  gpux__image_free(&img);
  cJSON_Delete(res);
  return rc;
}
