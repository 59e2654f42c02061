/* consts.c — a session's initializers (weights) on the device: each is written once into a
 * buffer of its own that every plan of the session binds, so planning the graph again for another
 * input shape (a decoder's next step) neither uploads the weights again nor holds another copy of
 * them. Keyed by graph, value and the element type the device holds them as.
 *
 * A weight goes up with wgpuQueueWriteBuffer (Dawn copies it into staging memory of its own and
 * records a copy into the buffer), or with GPUX_WEBGPU_UPLOAD=mapped into its buffer made mapped at
 * creation (where the buffer's memory is visible to the CPU, as on a software or unified-memory
 * adapter, there is no staging copy; elsewhere Dawn stages it). With GPUX_WEBGPU_VERBOSE, freeing
 * the weights logs where their making took the time: creating the buffers, their images (a
 * conversion to float16, for one) and the writes. */
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
  int mapped;                    /* GPUX_WEBGPU_UPLOAD=mapped: buffers made mapped, filled, unmapped */
  int made;                      /* buffers made, and the wall time of each step of making them */
  uint64_t written, make_ns, image_ns, write_ns, cpu_ns;
};

wg_consts *gpux__wg_consts_new(wg_device *d) {
  wg_consts *c = gpux__calloc(1, sizeof *c);
  if (!c) return NULL;
  c->dev = d;
  const char *up = getenv("GPUX_WEBGPU_UPLOAD");
  c->mapped = up && !strcmp(up, "mapped");
  return c;
}

void gpux__wg_consts_free(wg_consts *c) {
  if (!c) return;
  if (c->made && getenv("GPUX_WEBGPU_VERBOSE"))
    gpux__log(GPUX_LOG_DEBUG, "webgpu: the session's weights: %d buffers, %.1f MiB %s; buffers made in %.1f ms, "
              "images %.1f ms, writes %.1f ms (cpu %.1f in all)", c->made, (double)c->written / 1048576.0,
              c->mapped ? "written mapped" : "written by the queue", (double)c->make_ns / 1e6, (double)c->image_ns / 1e6,
              (double)c->write_ns / 1e6, (double)c->cpu_ns / 1e6);
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
  uint64_t t0 = gpux__wg_now_ns(), c0 = gpux__wg_cpu_ns(), t1 = t0, t2 = t0;
  int mapped = c->mapped && n;
  WGPUBuffer b = gpux__wg_buffer_made(d, n ? n : 4, WGPUBufferUsage_Storage | WGPUBufferUsage_CopySrc | WGPUBufferUsage_CopyDst,
                                      mapped, "gpux weights");
  void *at = mapped && b ? d->f.wgpuBufferGetMappedRange(b, 0, (size_t)((n + 3) & ~(uint64_t)3)) : NULL;
  if (!b || (mapped && !at)) {
    if (b) d->f.wgpuBufferRelease(b);
    return gpux__error(GPUX_E_NOMEM, "WebGPU: could not allocate %llu bytes", (unsigned long long)n);
  }
  if (n) {
    void *img;
    size_t sz;
    t1 = gpux__wg_now_ns();
    int owned, rc = gpux__wg_gpu_image(t, type, &img, &sz, &owned);
    if (rc) {
      if (mapped) d->f.wgpuBufferUnmap(b);
      d->f.wgpuBufferDestroy(b);
      d->f.wgpuBufferRelease(b);
      return rc;
    }
    t2 = gpux__wg_now_ns();
    if (mapped) {
      memcpy(at, img, sz);
      d->f.wgpuBufferUnmap(b);
    } else {
      d->f.wgpuQueueWriteBuffer(d->queue, b, 0, img, sz);
    }
    if (owned) free(img);
    stats->uploads++, stats->upload_bytes += sz;
    c->written += sz;
  }
  uint64_t t3 = gpux__wg_now_ns();
  c->made++;
  c->make_ns += t1 - t0, c->image_ns += t2 - t1, c->write_ns += t3 - t2, c->cpu_ns += gpux__wg_cpu_ns() - c0;
  c->e[c->n++] = (const_entry){g, v, type, b, n ? n : 4};
  c->bytes += n ? n : 4;
  *buf = b;
  *bytes = n ? n : 4;
  return 0;
}
