/* handler-worker.c — gpux-handler, the worker program for shared-library handlers
 * (`handler: ./handler.so`): gpux (src/app/handler.c) starts it as `gpux-handler LIBRARY FOLDER`
 * with fd 3 a SOCK_SEQPACKET socket, isolated as handler.c describes. It dlopens the library here,
 * never in the process that serves, checks its `gpux_handler_v1` table (include/gpux/gpux.h),
 * calls init once and then answers the messages of handler-proto.h with preprocess/postprocess,
 * checking what the library returns before it goes back. A crash here ends this process only.
 * A program of its own, linked with libc, libdl and cJSON only: not part of libgpux. */
#include "app/handler-proto.h"
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <gpux/gpux.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *name;        /* the library's file name, for messages */

/* Bytes per element of the dtypes a handler may hand over (0: not taken). */
static size_t dtype_size(int dt) {
  switch (dt) {
  case GPUX_DT_FLOAT: case GPUX_DT_INT32: case GPUX_DT_UINT32: return 4;
  case GPUX_DT_UINT8: case GPUX_DT_INT8: case GPUX_DT_BOOL: return 1;
  case GPUX_DT_UINT16: case GPUX_DT_INT16: case GPUX_DT_FLOAT16: case GPUX_DT_BFLOAT16: return 2;
  case GPUX_DT_INT64: case GPUX_DT_DOUBLE: case GPUX_DT_UINT64: return 8;
  default: return 0;
  }
}

static void send_json(cJSON *j, int fd) {
  char *s = cJSON_PrintUnformatted(j);
  if (s && strlen(s) < GPUX__HP_MAX_MSG) gpux__hp_send(GPUX__HP_FD, s, strlen(s), fd);
  else gpux__hp_send(GPUX__HP_FD, "{\"ok\":false,\"error\":\"the answer is too large\"}", 46, -1);
  free(s);
  cJSON_Delete(j);
}

static void __attribute__((format(printf, 1, 2))) send_error(const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  for (char *p = msg; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  cJSON *j = cJSON_CreateObject();
  cJSON_AddFalseToObject(j, "ok");
  cJSON_AddStringToObject(j, "error", msg);
  send_json(j, -1);
}

/* A memfd holding `size` bytes from the blobs; -1 on failure. */
static int memfd_of(size_t size, char **map) {
  int fd = (int)syscall(SYS_memfd_create, "gpux-handler", 1u /* MFD_CLOEXEC */);
  *map = NULL;
  if (fd < 0) return -1;
  if (size && (ftruncate(fd, (off_t)size) < 0 ||
               (*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)) {
    close(fd);
    *map = NULL;
    return -1;
  }
  return fd;
}

static size_t align_up(size_t n) { return (n + GPUX__HP_ALIGN - 1) / GPUX__HP_ALIGN * GPUX__HP_ALIGN; }

/* Checks what preprocess returned and sends it. */
static void reply_tensors(const struct gpux_handler_v1 *t, void *state, gpux_handler_tensor *ts, int n) {
  size_t size = 0;
  char bad[400] = "";
  if (n < 0 || (n > 0 && !ts)) snprintf(bad, sizeof bad, "returned %d tensors", n);
  for (int i = 0; i < n && !bad[0]; i++) {
    const gpux_handler_tensor *x = &ts[i];
    size_t es = dtype_size(x->dtype), count = 1;
    if (!x->name || !x->name[0]) snprintf(bad, sizeof bad, "tensor %d has no name", i);
    else if (!es) snprintf(bad, sizeof bad, "'%.64s' has dtype %d, expected a numeric gpux_dtype", x->name, x->dtype);
    else if (x->ndim < 0 || x->ndim > GPUX_MAX_DIMS) snprintf(bad, sizeof bad, "'%.64s' has %d dimensions", x->name, x->ndim);
    for (int d = 0; d < x->ndim && !bad[0]; d++) {
      if (x->dims[d] < 0 || (x->dims[d] && count > ((size_t)1 << 40) / (size_t)x->dims[d]))
        snprintf(bad, sizeof bad, "'%.64s' has dimension %lld", x->name, (long long)x->dims[d]);
      else count *= (size_t)x->dims[d];
    }
    if (!bad[0] && x->nbytes != count * es)
      snprintf(bad, sizeof bad, "'%.64s' has nbytes %zu, its shape needs %zu", x->name, x->nbytes, count * es);
    if (!bad[0] && x->nbytes && !x->data) snprintf(bad, sizeof bad, "'%.64s' has no data", x->name);
    size = align_up(size) + x->nbytes;
  }
  char *map = NULL;
  int fd = -1;
  if (!bad[0] && (fd = memfd_of(size, &map)) < 0) snprintf(bad, sizeof bad, "shared memory of %zu bytes: out of memory", size);
  if (bad[0]) send_error("%s: preprocess %s", name, bad);
  else {
    cJSON *j = cJSON_CreateObject(), *arr;
    cJSON_AddTrueToObject(j, "ok");
    arr = cJSON_AddArrayToObject(j, "tensors");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
      off = align_up(off);
      if (ts[i].nbytes) memcpy(map + off, ts[i].data, ts[i].nbytes);
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", ts[i].name);
      cJSON_AddNumberToObject(o, "dtype", ts[i].dtype);
      cJSON *sh = cJSON_AddArrayToObject(o, "shape");
      for (int d = 0; d < ts[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)ts[i].dims[d]));
      cJSON_AddNumberToObject(o, "offset", (double)off);
      cJSON_AddNumberToObject(o, "size", (double)ts[i].nbytes);
      cJSON_AddItemToArray(arr, o);
      off += ts[i].nbytes;
    }
    if (map) munmap(map, size);
    send_json(j, size ? fd : -1);
  }
  if (fd >= 0) close(fd);
  if (t->free && ts) {
    for (int i = 0; i < n; i++) if (ts[i].data) t->free(state, ts[i].data);
    t->free(state, ts);
  }
}

static void reply_result(const struct gpux_handler_v1 *t, void *state, char *json) {
  if (!json) { send_error("%s: postprocess returned no JSON", name); return; }
  size_t len = strlen(json);
  char *map;
  int fd = memfd_of(len, &map);
  if (fd < 0) send_error("%s: postprocess: shared memory of %zu bytes: out of memory", name, len);
  else {
    if (len) { memcpy(map, json, len); munmap(map, len); }
    cJSON *j = cJSON_CreateObject(), *r;
    cJSON_AddTrueToObject(j, "ok");
    r = cJSON_AddObjectToObject(j, "result");
    cJSON_AddNumberToObject(r, "offset", 0);
    cJSON_AddNumberToObject(r, "size", (double)len);
    send_json(j, len ? fd : -1);
    close(fd);
  }
  if (t->free) t->free(state, json);
}

/* One message: the request's values and (postprocess) the model's outputs, read from the memfd. */
static void answer(const struct gpux_handler_v1 *t, void *state, const char *text, int fd) {
  cJSON *m = cJSON_Parse(text);
  const cJSON *op = cJSON_GetObjectItem(m, "op"), *req = cJSON_GetObjectItem(m, "request"), *ts = cJSON_GetObjectItem(m, "tensors");
  struct stat sb;
  size_t size = fd >= 0 && fstat(fd, &sb) == 0 ? (size_t)sb.st_size : 0;
  char *map = size ? mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0) : NULL;
  if (map == MAP_FAILED) map = NULL;
  int n_req = cJSON_GetArraySize(req), n_ts = cJSON_GetArraySize(ts);
  gpux_handler_value *rv = calloc((size_t)n_req + 1, sizeof *rv);
  gpux_handler_tensor *tv = calloc((size_t)n_ts + 1, sizeof *tv);
  char **texts = calloc((size_t)n_req + 1, sizeof *texts);
  int ok = m && cJSON_IsString(op) && rv && tv && texts;
  for (int i = 0; ok && i < n_req; i++) {
    const cJSON *v = cJSON_GetArrayItem(req, i);
    size_t off = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(v, "offset"));
    size_t len = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(v, "size"));
    ok = off + len <= size && cJSON_IsString(cJSON_GetObjectItem(v, "name"));
    if (!ok) break;
    rv[i].name = cJSON_GetObjectItem(v, "name")->valuestring;
    rv[i].is_text = cJSON_IsTrue(cJSON_GetObjectItem(v, "text"));
    rv[i].len = len;
    if (rv[i].is_text) { /* NUL-terminated, as the ABI promises */
      if (!(texts[i] = malloc(len + 1))) { ok = 0; break; }
      if (len) memcpy(texts[i], map + off, len);
      texts[i][len] = 0;
      rv[i].data = texts[i];
    } else {
      rv[i].data = len ? map + off : "";
    }
  }
  for (int i = 0; ok && i < n_ts; i++) {
    const cJSON *v = cJSON_GetArrayItem(ts, i), *sh = cJSON_GetObjectItem(v, "shape"), *d;
    size_t off = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(v, "offset"));
    size_t len = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(v, "size"));
    ok = off + len <= size && cJSON_IsString(cJSON_GetObjectItem(v, "name")) && cJSON_GetArraySize(sh) <= GPUX_MAX_DIMS;
    if (!ok) break;
    tv[i].name = cJSON_GetObjectItem(v, "name")->valuestring;
    tv[i].dtype = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(v, "dtype"));
    cJSON_ArrayForEach(d, sh) tv[i].dims[tv[i].ndim++] = (int64_t)d->valuedouble;
    tv[i].data = len ? map + off : NULL;
    tv[i].nbytes = len;
  }
  char err[512] = "";
  if (!ok) send_error("%s: gpux sent a message this worker cannot read", name);
  else if (!strcmp(op->valuestring, "preprocess") && t->preprocess) {
    gpux_handler_tensor *out = NULL;
    int n_out = 0;
    if (t->preprocess(state, rv, n_req, &out, &n_out, err, sizeof err)) {
      send_error("%s: preprocess: %s", name, err[0] ? err : "failed");
      if (t->free && out) { for (int i = 0; i < n_out; i++) if (out[i].data) t->free(state, out[i].data); t->free(state, out); }
    } else {
      reply_tensors(t, state, out, n_out);
    }
  } else if (!strcmp(op->valuestring, "postprocess") && t->postprocess) {
    char *json = NULL;
    if (t->postprocess(state, tv, n_ts, rv, n_req, &json, err, sizeof err)) {
      send_error("%s: postprocess: %s", name, err[0] ? err : "failed");
      if (t->free && json) t->free(state, json);
    } else {
      reply_result(t, state, json);
    }
  } else {
    send_error("%s: no %s in its gpux_handler_v1 table", name, op->valuestring);
  }
  for (int i = 0; texts && i < n_req; i++) free(texts[i]);
  free(texts);
  free(rv);
  free(tv);
  if (map) munmap(map, size);
  cJSON_Delete(m);
}

/* Ends the worker within a second of gpux's end, even while the library loops. */
static void *watchdog(void *parent) {
  while (getppid() == (pid_t)(intptr_t)parent) sleep(1);
  _exit(1);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "gpux-handler: started by gpux for `handler: LIBRARY.so` (src/app/handler.c), not by hand\n");
    return 2;
  }
  const char *path = argv[1], *dir = argv[2];
  pthread_t wd;
  if (pthread_create(&wd, NULL, watchdog, (void *)(intptr_t)getppid()) == 0) pthread_detach(wd);
  name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  if (chdir(dir) < 0) { /* the library may still not need its folder */ }
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *e = dlerror();
    send_error("%s: cannot be loaded: %s", name, e ? e : "dlopen failed");
    return 1;
  }
  const struct gpux_handler_v1 *t = dlsym(lib, "gpux_handler_v1");
  if (!t) {
    send_error("%s: exports no gpux_handler_v1 table (include/gpux/gpux.h)", name);
    return 1;
  }
  if (t->abi_version != GPUX_HANDLER_ABI_VERSION) {
    send_error("%s: its gpux_handler_v1 table has abi_version %u; this gpux takes %d", name, t->abi_version, GPUX_HANDLER_ABI_VERSION);
    return 1;
  }
  void *state = NULL;
  char err[512] = "";
  if (t->init && t->init(&state, dir, err, sizeof err)) {
    send_error("%s: init: %s", name, err[0] ? err : "failed");
    return 1;
  }
  cJSON *hello = cJSON_CreateObject();
  cJSON_AddTrueToObject(hello, "ok");
  cJSON_AddBoolToObject(hello, "preprocess", t->preprocess != NULL);
  cJSON_AddBoolToObject(hello, "postprocess", t->postprocess != NULL);
  send_json(hello, -1);
  char *buf = malloc(GPUX__HP_MAX_MSG + 1);
  if (!buf) return 1;
  for (;;) {
    int fd;
    ssize_t n = gpux__hp_recv(GPUX__HP_FD, buf, GPUX__HP_MAX_MSG + 1, &fd);
    if (n <= 0) break;          /* gpux closed its end */
    answer(t, state, buf, fd);
    if (fd >= 0) close(fd);
  }
  free(buf);
  return 0;
}
