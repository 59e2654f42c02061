/* value.c — tensors held on the WebGPU device between runs (gpux_device_tensor): each is one storage
 * buffer of its own, floats as f32 (float16/bfloat16 widened) or f16 (as a plan in fp16 holds
 * them), integers/bools as i32, the way plans hold them, so a run binds it with one GPU-to-GPU
 * copy. Also the conversion of host data into those forms. */
#include "backend/webgpu/wg.h"

int gpux__wg_held_type(int dtype) {
  if (gpux__wg_is_f32(dtype)) return WG_F32;
  if (dtype == GPUX_DT_BOOL || dtype == GPUX_DT_INT8 || dtype == GPUX_DT_UINT8 || dtype == GPUX_DT_INT16 ||
      dtype == GPUX_DT_UINT16 || dtype == GPUX_DT_INT32 || dtype == GPUX_DT_INT64)
    return WG_I32;
  return -1;
}

int gpux__wg_held_as(int dtype, int half) {
  int held = gpux__wg_held_type(dtype);
  if (held == WG_F32 && ((half >= WG_HALF_F16 && dtype == GPUX_DT_FLOAT16) || (half == WG_HALF_ALL && dtype == GPUX_DT_FLOAT)))
    return WG_F16;
  return held;
}

uint64_t gpux__wg_held_bytes(int64_t count, int held) {
  return held == WG_F16 ? ((uint64_t)count * 2u + 3u) & ~(uint64_t)3 : (uint64_t)count * 4u;
}

void gpux__wg_from_f16(int dtype, void *dst, const void *src, int64_t n) {
  const uint16_t *h = src;
  if (dtype == GPUX_DT_FLOAT16) memcpy(dst, h, (size_t)n * 2);
  else if (dtype == GPUX_DT_FLOAT) for (int64_t i = 0; i < n; i++) ((float *)dst)[i] = gpux__f16_to_f32(h[i]);
  else for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = gpux__f32_to_bf16(gpux__f16_to_f32(h[i]));
}

int gpux__wg_gpu_image(const gpux_tensor *t, int gpu_type, void **buf, size_t *bytes, int *owned) {
  int64_t n = gpux_tensor_count(t);
  *bytes = (size_t)gpux__wg_held_bytes(n, gpu_type);
  *owned = 0;
  if (gpu_type == WG_F16) {
    if (!gpux__wg_is_f32(t->dtype)) return gpux__error(GPUX_E_INTERNAL, "WebGPU: %s data for a float16 binding", gpux_dtype_name(t->dtype));
    if (t->dtype == GPUX_DT_FLOAT16 && (size_t)n * 2 == *bytes) {
      *buf = t->data;
      return 0;
    }
    uint16_t *h = gpux__calloc(*bytes / 2 + 2, 2);
    if (!h) return GPUX_E_NOMEM;
    if (t->dtype == GPUX_DT_FLOAT16) memcpy(h, t->data, (size_t)n * 2);
    else if (t->dtype == GPUX_DT_FLOAT) gpux__narrow_f32(GPUX_DT_FLOAT16, h, t->data, n); /* weights: rounded once */
    else for (int64_t i = 0; i < n; i++) h[i] = gpux__f32_to_f16(gpux__bf16_to_f32(((const uint16_t *)t->data)[i]));
    *buf = h;
    *owned = 1;
    return 0;
  }
  if (gpu_type == WG_F32_R16 && t->dtype == GPUX_DT_FLOAT) {
    float *f = gpux__malloc((size_t)n * 4 + 4);
    if (!f) return GPUX_E_NOMEM;
    const float *x = t->data;
    for (int64_t i = 0; i < n; i++) f[i] = gpux__f16_to_f32(gpux__f32_to_f16(x[i]));
    *buf = f;
    *owned = 1;
    return 0;
  }
  if (gpu_type == WG_F32 || gpu_type == WG_F32_R16) {
    if (t->dtype == GPUX_DT_FLOAT) {
      *buf = t->data;
      return 0;
    }
    if (!gpux__wg_is_f32(t->dtype)) return gpux__error(GPUX_E_INTERNAL, "WebGPU: %s data for a float32 binding", gpux_dtype_name(t->dtype));
    if (!(*buf = gpux__widen_f32(t))) return GPUX_E_NOMEM; /* float16/bfloat16: exact */
    *owned = 1;
    return 0;
  }
  int32_t *q = gpux__malloc((size_t)n * 4 + 4);
  if (!q) return GPUX_E_NOMEM;
  for (int64_t i = 0; i < n; i++) {
    int64_t x = gpux__load_i64(t->dtype, t->data, i);
    if (x < INT32_MIN || x > INT32_MAX) {
      free(q);
      return gpux__error(GPUX_E_UNSUPPORTED, "WebGPU: index %lld does not fit in 32 bits", (long long)x);
    }
    q[i] = (int32_t)x;
  }
  *buf = q;
  *owned = 1;
  return 0;
}

/* Freed values' buffers are kept (up to WG_MAX_SPARE of them and WG_SPARE_BYTES in all, the
 * oldest going first) for new values they can hold; a value's buffer is made a power of two
 * large, so that one freed a few steps before holds a value that grew since. */
#define WG_SPARE_BYTES ((uint64_t)256 << 20)

static uint64_t value_cap(const wg_device *d, uint64_t bytes) {
  uint64_t c = 256;
  while (c < bytes) c <<= 1;
  return c > d->limits.maxBufferSize || c > d->limits.maxStorageBufferBindingSize ? (bytes + 3) & ~(uint64_t)3 : c;
}

static void spare_drop(wg_device *d, int i) {
  d->f.wgpuBufferDestroy(d->spare[i]);
  d->f.wgpuBufferRelease(d->spare[i]);
  d->spare_bytes -= d->spare_size[i];
  memmove(&d->spare[i], &d->spare[i + 1], (size_t)(d->n_spare - i - 1) * sizeof *d->spare);
  memmove(&d->spare_size[i], &d->spare_size[i + 1], (size_t)(d->n_spare - i - 1) * sizeof *d->spare_size);
  d->n_spare--;
}

/* The smallest kept buffer that holds `bytes` and is at most twice the size it would be made
 * with, taken out of the list; NULL when none. */
static WGPUBuffer spare_take(wg_device *d, uint64_t bytes, uint64_t *size) {
  uint64_t most = 2 * value_cap(d, bytes);
  int best = -1;
  for (int i = 0; i < d->n_spare; i++)
    if (d->spare_size[i] >= bytes && d->spare_size[i] <= most && (best < 0 || d->spare_size[i] < d->spare_size[best])) best = i;
  if (best < 0) return NULL;
  WGPUBuffer b = d->spare[best];
  *size = d->spare_size[best];
  d->spare_bytes -= d->spare_size[best];
  memmove(&d->spare[best], &d->spare[best + 1], (size_t)(d->n_spare - best - 1) * sizeof *d->spare);
  memmove(&d->spare_size[best], &d->spare_size[best + 1], (size_t)(d->n_spare - best - 1) * sizeof *d->spare_size);
  d->n_spare--;
  return b;
}

static void spare_put(wg_device *d, WGPUBuffer b, uint64_t size) {
  if (size > WG_SPARE_BYTES || d->lost) {
    d->f.wgpuBufferDestroy(b);
    d->f.wgpuBufferRelease(b);
    return;
  }
  while (d->n_spare && (d->n_spare == WG_MAX_SPARE || d->spare_bytes + size > WG_SPARE_BYTES)) spare_drop(d, 0);
  d->spare[d->n_spare] = b;
  d->spare_size[d->n_spare++] = size;
  d->spare_bytes += size;
}

int gpux__wg_value_new(wg_device *d, const gpux_tensor *meta, int held, gpux_device_tensor **out) {
  *out = NULL;
  gpux_device_tensor *v = gpux__calloc(1, sizeof *v);
  if (!v) return GPUX_E_NOMEM;
  v->t.kind = GPUX_KIND_TENSOR;
  v->t.dtype = meta->dtype;
  v->t.ndim = meta->ndim;
  for (int i = 0; i < meta->ndim; i++) v->t.dims[i] = meta->dims[i];
  uint64_t bytes = gpux__wg_held_bytes(gpux_tensor_count(meta), held);
  v->bytes = bytes;
  v->held = held;
  WGPUBuffer b = spare_take(d, bytes < 4 ? 4 : bytes, &v->cap);
  if (!b) {
    v->cap = value_cap(d, bytes < 4 ? 4 : bytes);
    b = gpux__wg_buffer(d, v->cap, WGPUBufferUsage_Storage | WGPUBufferUsage_CopySrc | WGPUBufferUsage_CopyDst, "gpux value");
  }
  if (!b) {
    free(v);
    return gpux__error(GPUX_E_NOMEM, "WebGPU: could not allocate a value of %llu bytes", (unsigned long long)bytes);
  }
  v->backend = &gpux__backend_webgpu;
  v->dev = d;
  v->buf = b;
  gpux__wg_device_ref(d);
  *out = v;
  return 0;
}

int gpux__wg_value_from_host(wg_device *d, const gpux_tensor *t, gpux_device_tensor **out, gpux_run_stats *stats) {
  *out = NULL;
  int type = t->kind == GPUX_KIND_TENSOR ? gpux__wg_held_type(t->dtype) : -1;
  if (type < 0) return GPUX__DECLINED;
  void *img;
  size_t bytes;
  int owned;
  int rc = gpux__wg_gpu_image(t, type, &img, &bytes, &owned);
  if (rc) return rc;
  if (!(rc = gpux__wg_value_new(d, t, type, out)) && bytes) {
    d->f.wgpuQueueWriteBuffer(d->queue, (*out)->buf, 0, img, bytes);
    if (stats) stats->uploads++, stats->upload_bytes += bytes;
  }
  if (owned) free(img);
  return rc;
}

int gpux__wg_value_read(const gpux_device_tensor *v, gpux_tensor *out, int locked) {
  memset(out, 0, sizeof *out);
  wg_device *d = v->dev;
  int rc = gpux_tensor_init(out, v->t.dtype, v->t.ndim, v->t.dims);
  if (rc || !v->bytes) return rc;
  int same = (v->t.dtype == GPUX_DT_FLOAT && v->held == WG_F32) || (v->t.dtype == GPUX_DT_FLOAT16 && v->held == WG_F16);
  size_t want = (size_t)gpux_tensor_count(&v->t) * gpux_dtype_size(v->t.dtype);
  void *tmp = same && want == v->bytes ? out->data : gpux__malloc((size_t)v->bytes);
  if (!tmp) {
    gpux_tensor_free(out);
    return GPUX_E_NOMEM;
  }
  if (!locked) pthread_mutex_lock(&d->mu);
  rc = gpux__wg_read_buffer(d, v->buf, v->off, tmp, (size_t)v->bytes);
  if (!locked) pthread_mutex_unlock(&d->mu);
  if (tmp != out->data) {
    int64_t n = gpux_tensor_count(&v->t);
    if (v->held == WG_F16) {
      if (!rc) gpux__wg_from_f16(v->t.dtype, out->data, tmp, n);
    } else if (gpux__wg_is_f32(v->t.dtype)) {
      if (!rc) gpux__narrow_f32(v->t.dtype, out->data, tmp, n);
    } else {
      for (int64_t e = 0; e < n && !rc; e++) gpux__store_i64(v->t.dtype, out->data, e, ((const int32_t *)tmp)[e]);
    }
    free(tmp);
  }
  if (rc) gpux_tensor_free(out);
  return rc;
}

void gpux__wg_value_free(gpux_device_tensor *v, int locked) {
  wg_device *d = v->dev;
  if (!locked) pthread_mutex_lock(&d->mu);
  if (v->cap) spare_put(d, v->buf, v->cap); /* (a view into a plan's storage has none) */
  else {
    d->f.wgpuBufferDestroy(v->buf);
    d->f.wgpuBufferRelease(v->buf);
  }
  if (!locked) pthread_mutex_unlock(&d->mu);
  gpux__wg_device_release(d);
  free(v);
}

int gpux__wg_value_copy(wg_device *d, WGPUBuffer src, uint64_t off, const gpux_tensor *meta, int held, gpux_device_tensor **out) {
  int rc = gpux__wg_value_new(d, meta, held, out);
  if (rc || !(*out)->bytes) return rc;
  WGPUCommandEncoder enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL);
  if (!enc) {
    gpux__wg_value_free(*out, 1);
    *out = NULL;
    return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a command encoder");
  }
  d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, src, off, (*out)->buf, 0, (*out)->bytes);
  WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(enc, NULL);
  d->f.wgpuCommandEncoderRelease(enc);
  d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
  d->f.wgpuCommandBufferRelease(cmd);
  return 0;
}
