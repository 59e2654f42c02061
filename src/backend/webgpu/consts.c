/* consts.c — a session's initializers (weights) on the device: each is written once into a
 * buffer of its own that every plan of the session binds, so planning the graph again for another
 * input shape (a decoder's next step) neither uploads the weights again nor holds another copy of
 * them. Keyed by graph, value and the element type the device holds them as. */
#include "backend/webgpu/wg.h"

typedef struct {
  const void *g;
  int v, type;
  WGPUBuffer buf;
  uint64_t bytes;
} const_entry;

struct wg_consts {
  wg_device *dev;
  const_entry *e;
  int n, cap;
  uint64_t bytes;                /* device memory they hold */
};

wg_consts *gpux__wg_consts_new(wg_device *d) {
  wg_consts *c = gpux__calloc(1, sizeof *c);
  if (c) c->dev = d;
  return c;
}

void gpux__wg_consts_free(wg_consts *c) {
  if (!c) return;
  for (int i = 0; i < c->n; i++) {
    c->dev->f.wgpuBufferDestroy(c->e[i].buf);
    c->dev->f.wgpuBufferRelease(c->e[i].buf);
  }
  free(c->e);
  free(c);
}

uint64_t gpux__wg_consts_bytes(const wg_consts *c) { return c ? c->bytes : 0; }

int gpux__wg_consts_get(wg_consts *c, const void *g, int v, const gpux_tensor *t, int type, gpux_run_stats *stats,
                        WGPUBuffer *buf, uint64_t *bytes) {
  for (int i = 0; i < c->n; i++)
    if (c->e[i].g == g && c->e[i].v == v && c->e[i].type == type) {
      *buf = c->e[i].buf;
      *bytes = c->e[i].bytes;
      return 0;
    }
  if (c->n == c->cap) {
    int cap = c->cap ? c->cap * 2 : 64;
    const_entry *ne = gpux__realloc(c->e, (size_t)cap * sizeof *ne);
    if (!ne) return GPUX_E_NOMEM;
    c->e = ne;
    c->cap = cap;
  }
  wg_device *d = c->dev;
  uint64_t n = gpux__wg_held_bytes(gpux_tensor_count(t), type); /* f16-held weights take half */
  WGPUBuffer b = gpux__wg_buffer(d, n ? n : 4, WGPUBufferUsage_Storage | WGPUBufferUsage_CopySrc | WGPUBufferUsage_CopyDst,
                                 "gpux weights");
  if (!b) return gpux__error(GPUX_E_NOMEM, "WebGPU: could not allocate %llu bytes", (unsigned long long)n);
  if (n) {
    void *img;
    size_t sz;
    int owned, rc = gpux__wg_gpu_image(t, type, &img, &sz, &owned);
    if (rc) {
      d->f.wgpuBufferDestroy(b);
      d->f.wgpuBufferRelease(b);
      return rc;
    }
    d->f.wgpuQueueWriteBuffer(d->queue, b, 0, img, sz);
    if (owned) free(img);
    stats->uploads++, stats->upload_bytes += sz;
  }
  c->e[c->n++] = (const_entry){g, v, type, b, n ? n : 4};
  c->bytes += n ? n : 4;
  *buf = b;
  *bytes = n ? n : 4;
  return 0;
}
