/* device.c — the WebGPU device: loads a WebGPU implementation with dlopen ($GPUX_WEBGPU_LIB,
 * else the Dawn library found relative to libgpux itself — installed or in the build tree —
 * else libwebgpu_dawn.so / libwgpu_native.so on the library path), resolves its wgpu* functions,
 * requests an adapter and a device with the adapter's full limits, checks the ABI with a tiny
 * compute dispatch (once per adapter, driver and library: a mark in the pipeline cache's folder
 * says it passed), and turns the device's error and loss callbacks into gpux errors. Every wait
 * has a timeout, so a stuck GPU is an error, never a hang. One device serves every session of
 * the process. */
#include "backend/webgpu/wg.h"
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Where `make install` puts Dawn, relative to the installed libgpux.so (LIBDIR/gpux) and to the
 * installed gpux command, which links libgpux statically (BINDIR/../LIBDIR/gpux). */
#ifndef GPUX_WEBGPU_FROM_LIBDIR
#define GPUX_WEBGPU_FROM_LIBDIR "gpux"
#endif
#ifndef GPUX_WEBGPU_FROM_BINDIR
#define GPUX_WEBGPU_FROM_BINDIR "../lib/gpux"
#endif
/* The configured install location itself, for programs that link libgpux.a from elsewhere. */
#ifndef GPUX_WEBGPU_INSTALLED
#define GPUX_WEBGPU_INSTALLED ""
#endif

static pthread_mutex_t device_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int warming; /* this thread makes the device ahead of its sessions (gpux_device_warm) */
/* when gpux_device_warm started the thread and when its device was ready (CLOCK_MONOTONIC ns;
 * written before the thread starts and before it ends, read after joining it) */
static uint64_t warm_asked_ns, warm_ready_ns;
static pthread_mutex_t error_mu = PTHREAD_MUTEX_INITIALIZER;
/* The device the sessions share; it outlives them (an idle device is kept for the next session)
 * and is replaced only when lost. */
static wg_device *the_device;
/* The library and the instance, loaded once and kept for the life of the process: unloading a
 * Vulkan driver while the process runs gains nothing and some drivers leak when unloaded. */
static struct {
  int ready;
  gpux__wgpu_table f;
  void *lib;
  char lib_path[512];
  WGPUInstance instance;
  int timed_wait;
} rt;

static WGPUStringView sv(const char *s) { return (WGPUStringView){s, s ? strlen(s) : 0}; }

static void sv_copy(char *dst, size_t cap, WGPUStringView v) {
  size_t n = v.data ? (v.length == WGPU_STRLEN ? strlen(v.data) : v.length) : 0;
  if (n >= cap) n = cap - 1;
  if (n) memcpy(dst, v.data, n);
  dst[n] = 0;
}

/* ---- loading the library ---- */

/* Functions gpux can do without: timed waits fall back to polling; wgpuDeviceForceLoss (Dawn) only
 * serves fault-injection tests. */
static const char *const optional_funcs[] = {"wgpuGetInstanceCapabilities", "wgpuDeviceForceLoss",
                                             "wgpuDeviceCreateQuerySet", "wgpuCommandEncoderResolveQuerySet",
                                             "wgpuQuerySetDestroy", "wgpuQuerySetRelease", "wgpuDeviceHasFeature",
                                             "wgpuAdapterGetFeatures", "wgpuSupportedFeaturesFreeMembers",
                                             "wgpuAdapterPropertiesSubgroupMatrixConfigsFreeMembers"};

static int is_optional(const char *name) {
  for (size_t i = 0; i < GPUX__ARRAY_LEN(optional_funcs); i++)
    if (!strcmp(optional_funcs[i], name)) return 1;
  return 0;
}

/* Opens the first library that loads and resolves every function; on failure the message lists
 * what was tried. */
static int load_library(wg_device *d) {
  const char *env = getenv("GPUX_WEBGPU_LIB");
  const char *candidates[8];
  char near[4][PATH_MAX];
  int n = 0;
  if (env && env[0]) candidates[n++] = env;
  else {
    char dir[PATH_MAX];
    if (!gpux__library_dir(dir, sizeof dir)) {
      /* installed: next to libgpux.so, or beside the gpux command's bin/; build tree: the
         deps/lib that CMake links into the build folder (the library or a test in tests/) */
      static const char *const rel[] = {GPUX_WEBGPU_FROM_LIBDIR, GPUX_WEBGPU_FROM_BINDIR, "deps/lib", "../deps/lib"};
      for (int i = 0; i < 4; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s/libwebgpu_dawn.so", dir, rel[i]);
        if (realpath(path, near[i])) candidates[n++] = near[i];
      }
    }
    if (GPUX_WEBGPU_INSTALLED[0] && access(GPUX_WEBGPU_INSTALLED, R_OK) == 0) candidates[n++] = GPUX_WEBGPU_INSTALLED;
    candidates[n++] = "libwebgpu_dawn.so";
    candidates[n++] = "libwgpu_native.so";
  }
  char tried[1536] = "";
  for (int i = 0; i < n; i++) {
    void *h = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char *e = dlerror();
      size_t used = strlen(tried);
      snprintf(tried + used, sizeof tried - used, "%s%s", used ? "; " : "", e ? e : candidates[i]);
      continue;
    }
    const char *missing = NULL;
#define GPUX__WGPU_RESOLVE(ret, name, params)                                    \
    d->f.name = (ret(*) params)dlsym(h, #name);                                  \
    if (!d->f.name && !is_optional(#name) && !missing) missing = #name;
    GPUX__WGPU_FUNCS(GPUX__WGPU_RESOLVE)
#undef GPUX__WGPU_RESOLVE
    if (missing) {
      size_t used = strlen(tried);
      snprintf(tried + used, sizeof tried - used, "%s%s: no symbol %s", used ? "; " : "", candidates[i], missing);
      dlclose(h);
      continue;
    }
    d->lib = h;
    snprintf(d->lib_path, sizeof d->lib_path, "%s", candidates[i]);
    return 0;
  }
  return gpux__error(GPUX_E_DEVICE, "no WebGPU library could be loaded (%s)%s", tried,
                     env && env[0] ? "" : "; set GPUX_WEBGPU_LIB to the path of libwebgpu_dawn.so or libwgpu_native.so");
}

/* ---- waiting ---- */

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t gpux__wg_now_ns(void) { return now_ns(); }

uint64_t gpux__wg_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)) return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The calling thread's CPU time: beside the process's, it tells the work of the thread making the
 * device from what other threads (the driver's, or a model loading meanwhile) burn. */
static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)) return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static WGPUEnum callback_mode(const wg_device *d) {
  return d->timed_wait ? WGPUCallbackMode_WaitAnyOnly : WGPUCallbackMode_AllowProcessEvents;
}

/* Waits until *done is set by a callback (process-events mode) or the future completes. */
static int wait_future(wg_device *d, WGPUFuture fut, volatile int *done, const char *what) {
  if (d->timed_wait) {
    WGPUFutureWaitInfo info = {fut, 0};
    WGPUEnum st = d->f.wgpuInstanceWaitAny(d->instance, 1, &info, d->timeout_ns);
    if (st == WGPUWaitStatus_Success && *done) return 0;
    if (st == WGPUWaitStatus_TimedOut)
      return gpux__error(GPUX_E_DEVICE, "WebGPU: %s did not finish within %.0f s", what, (double)d->timeout_ns / 1e9);
    if (!*done) return gpux__error(GPUX_E_DEVICE, "WebGPU: waiting for %s failed (status %u)", what, st);
    return 0;
  }
  uint64_t deadline = now_ns() + d->timeout_ns;
  long nap = 1;
  while (!*done) {
    d->f.wgpuInstanceProcessEvents(d->instance);
    if (*done) break;
    if (now_ns() > deadline)
      return gpux__error(GPUX_E_DEVICE, "WebGPU: %s did not finish within %.0f s", what, (double)d->timeout_ns / 1e9);
    sleep_us(nap);
    if (nap < 1000) nap *= 2;
  }
  return 0;
}

/* ---- errors ---- */

static void on_uncaptured_error(WGPUDevice const *dev, WGPUEnum type, WGPUStringView message, void *u1, void *u2) {
  (void)dev, (void)u2;
  wg_device *d = u1;
  pthread_mutex_lock(&error_mu);
  if (!d->err_type) {
    d->err_type = (int)type;
    sv_copy(d->err_msg, sizeof d->err_msg, message);
  }
  pthread_mutex_unlock(&error_mu);
}

static void on_device_lost(WGPUDevice const *dev, WGPUEnum reason, WGPUStringView message, void *u1, void *u2) {
  (void)dev, (void)u2;
  wg_device *d = u1;
  if (reason == WGPUDeviceLostReason_Destroyed || reason == WGPUDeviceLostReason_CallbackCancelled) return;
  pthread_mutex_lock(&error_mu);
  d->lost = 1;
  sv_copy(d->lost_msg, sizeof d->lost_msg, message);
  pthread_mutex_unlock(&error_mu);
}

int gpux__wg_device_lost(wg_device *d) {
  pthread_mutex_lock(&error_mu);
  int lost = d->lost;
  pthread_mutex_unlock(&error_mu);
  return lost;
}

void gpux__wg_test_device_loss(wg_device *d) {
  static atomic_int runs;
  static int target = -1;
  if (target < 0) {
    const char *v = getenv("GPUX_TEST_DEVICE_LOST");
    target = v && *v ? atoi(v) : 0;
  }
  if (!target || atomic_fetch_add(&runs, 1) + 1 != target) return;
  char msg[64];
  snprintf(msg, sizeof msg, "injected by GPUX_TEST_DEVICE_LOST=%d", target);
  if (d->f.wgpuDeviceForceLoss) {   /* Dawn loses the device for real: the callback reports it */
    d->f.wgpuDeviceForceLoss(d->device, WGPUDeviceLostReason_Unknown, (WGPUStringView){msg, strlen(msg)});
    return;
  }
  pthread_mutex_lock(&error_mu);
  d->lost = 1;
  snprintf(d->lost_msg, sizeof d->lost_msg, "%s", msg);
  pthread_mutex_unlock(&error_mu);
}

int gpux__wg_check(wg_device *d, const char *what) {
  pthread_mutex_lock(&error_mu);
  int type = d->err_type, lost = d->lost, rc = 0;
  char msg[1100];
  if (lost) snprintf(msg, sizeof msg, "%s", d->lost_msg);
  else snprintf(msg, sizeof msg, "%s", d->err_msg);
  d->err_type = 0;
  pthread_mutex_unlock(&error_mu);
  for (char *p = msg; *p; p++) if (*p == '\n') *p = ' ';
  if (lost) rc = gpux__error(GPUX_E_DEVICE, "WebGPU device lost%s%s: %s", what ? " while " : "", what ? what : "", msg);
  else if (type == WGPUErrorType_OutOfMemory)
    rc = gpux__error(GPUX_E_NOMEM, "GPU out of memory%s%s: %s", what ? " while " : "", what ? what : "", msg);
  else if (type)
    rc = gpux__error(GPUX_E_DEVICE, "WebGPU error%s%s: %s", what ? " while " : "", what ? what : "", msg);
  return rc;
}

/* ---- adapter and device ---- */

typedef struct {
  volatile int done;
  WGPUEnum status;
  void *object;
  char message[512];
} request_result;

static void on_adapter(WGPUEnum status, WGPUAdapter adapter, WGPUStringView message, void *u1, void *u2) {
  (void)u2;
  request_result *r = u1;
  r->status = status;
  r->object = adapter;
  sv_copy(r->message, sizeof r->message, message);
  r->done = 1;
}

static void on_device(WGPUEnum status, WGPUDevice device, WGPUStringView message, void *u1, void *u2) {
  (void)u2;
  request_result *r = u1;
  r->status = status;
  r->object = device;
  sv_copy(r->message, sizeof r->message, message);
  r->done = 1;
}

static int create_instance_now(wg_device *d);

/* Fills d's function table, library and instance from the process's, loading them the first
 * time (under device_mu). A failure is not remembered: a later call tries again. */
static int runtime_get(wg_device *d) {
  if (!rt.ready) {
    wg_device tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = load_library(&tmp);
    if (!rc) rc = create_instance_now(&tmp);
    if (rc) {
      if (tmp.lib) dlclose(tmp.lib);
      return rc;
    }
    rt.f = tmp.f;
    rt.lib = tmp.lib;
    memcpy(rt.lib_path, tmp.lib_path, sizeof rt.lib_path);
    rt.instance = tmp.instance;
    rt.timed_wait = tmp.timed_wait;
    rt.ready = 1;
  }
  d->f = rt.f;
  d->lib = rt.lib;
  memcpy(d->lib_path, rt.lib_path, sizeof d->lib_path);
  d->instance = rt.instance;
  d->timed_wait = rt.timed_wait;
  return 0;
}

static int create_instance_now(wg_device *d) {
  WGPUInstanceDescriptor desc = {0};
  if (d->f.wgpuGetInstanceCapabilities) {
    WGPUInstanceCapabilities caps = {0};
    if (d->f.wgpuGetInstanceCapabilities(&caps) == WGPUStatus_Success && caps.timedWaitAnyEnable) {
      desc.capabilities.timedWaitAnyEnable = 1;
      desc.capabilities.timedWaitAnyMaxCount = 1;
      d->timed_wait = 1;
    }
  }
  d->instance = d->f.wgpuCreateInstance(d->timed_wait ? &desc : NULL);
  if (!d->instance) d->instance = d->f.wgpuCreateInstance(NULL), d->timed_wait = 0;
  if (!d->instance) return gpux__error(GPUX_E_DEVICE, "WebGPU: %s could not create an instance", d->lib_path);
  return 0;
}

/* ---- which backend an adapter is asked of ---- */

static const char *const backend_names[] = {"undefined", "null", "WebGPU", "D3D11", "D3D12", "Metal", "Vulkan", "OpenGL", "OpenGLES"};

/* GPUX_WEBGPU_BACKEND's words and their WGPUBackendType numbers (webgpu-abi.h; checked against
 * the Dawn gpux loads: asked for 6 it gives a Vulkan adapter that reports 6, 1 gives its Null
 * adapter, 9 is refused as no backend type). */
static const struct {
  const char *word;
  WGPUEnum type;
} backend_words[] = {{"vulkan", WGPUBackendType_Vulkan},   {"metal", WGPUBackendType_Metal},
                     {"d3d12", WGPUBackendType_D3D12},     {"d3d11", WGPUBackendType_D3D11},
                     {"opengl", WGPUBackendType_OpenGL},   {"opengles", WGPUBackendType_OpenGLES},
                     {"any", WGPUBackendType_Undefined}};

/* The backend adapters are asked of: GPUX_WEBGPU_BACKEND, else the platform's own API (Vulkan on
 * Linux, Metal on macOS, D3D12 on Windows), so that Dawn looks for adapters of that backend only,
 * not of every backend it was built with (OpenGL ES through EGL among them: more drivers loaded,
 * more start-up time). *chosen says whether the variable chose it; an unknown word is an error. */
static int backend_wanted(WGPUEnum *type, int *chosen) {
#if defined(__APPLE__)
  *type = WGPUBackendType_Metal;
#elif defined(_WIN32)
  *type = WGPUBackendType_D3D12;
#else
  *type = WGPUBackendType_Vulkan;
#endif
  *chosen = 0;
  const char *e = getenv("GPUX_WEBGPU_BACKEND");
  if (!e || !e[0]) return 0;
  for (size_t i = 0; i < GPUX__ARRAY_LEN(backend_words); i++)
    if (!strcasecmp(e, backend_words[i].word)) {
      *type = backend_words[i].type;
      *chosen = 1;
      return 0;
    }
  return gpux__error(GPUX_E_INVALID, "GPUX_WEBGPU_BACKEND=%s: not a WebGPU backend (vulkan, metal, d3d12, d3d11, opengl, "
                     "opengles or any)", e);
}

static const char *backend_name(WGPUEnum type) {
  return type == WGPUBackendType_Undefined ? "any backend"
         : type < GPUX__ARRAY_LEN(backend_names) ? backend_names[type] : "unknown backend";
}

static int request_adapter_of(wg_device *d, WGPUEnum power, WGPUEnum backend, WGPUAdapter *out);

/* An adapter of the backend backend_wanted names; when that was the platform's default and it has
 * none, an adapter of any backend (a machine whose only driver is OpenGL ES still runs). */
static int request_adapter(wg_device *d, WGPUEnum power, WGPUAdapter *out) {
  WGPUEnum backend;
  int chosen;
  int rc = backend_wanted(&backend, &chosen);
  if (rc) return rc;
  d->backend_asked = (int)backend;
  rc = request_adapter_of(d, power, backend, out);
  if (rc && !chosen && backend != WGPUBackendType_Undefined) {
    char first[512];
    snprintf(first, sizeof first, "%s", gpux_last_error());
    d->backend_asked = WGPUBackendType_Undefined;
    rc = request_adapter_of(d, power, WGPUBackendType_Undefined, out);
    if (!rc && getenv("GPUX_WEBGPU_VERBOSE"))
      gpux__log(GPUX_LOG_DEBUG, "webgpu: no %s adapter (%s); took one of any backend", backend_name(backend), first);
  }
  return rc;
}

static int request_adapter_of(wg_device *d, WGPUEnum power, WGPUEnum backend, WGPUAdapter *out) {
  *out = NULL;
  WGPURequestAdapterOptions opts = {0};
  opts.powerPreference = power;
  opts.backendType = backend;
  /* GPUX_WEBGPU_EXPERIMENTAL=1: Dawn's "allow_unsafe_apis" adapter toggle, without which Dawn
   * hides its experimental features (subgroup matrices among them) */
  static const char *const unsafe[] = {"allow_unsafe_apis"};
  WGPUDawnTogglesDescriptor toggles = {{NULL, WGPUSType_DawnTogglesDescriptor}, 1, unsafe, 0, NULL};
  const char *exp = getenv("GPUX_WEBGPU_EXPERIMENTAL");
  if (exp && !strcmp(exp, "1")) opts.nextInChain = &toggles.chain;
  request_result r = {0};
  WGPURequestAdapterCallbackInfo cb = {NULL, callback_mode(d), on_adapter, &r, NULL};
  WGPUFuture fut = d->f.wgpuInstanceRequestAdapter(d->instance, &opts, cb);
  int rc = wait_future(d, fut, &r.done, "requesting an adapter");
  if (rc) return rc;
  if (r.status != WGPURequestAdapterStatus_Success || !r.object)
    return gpux__error(GPUX_E_DEVICE, "WebGPU: no adapter found (%s asked)%s%s (is a Vulkan, Metal or D3D12 driver "
                       "installed? On machines without a GPU, Mesa's lavapipe provides one)", backend_name(backend),
                       r.message[0] ? ": " : "", r.message);
  /* Dawn offers its Null backend when no real one works: that is no adapter at all */
  WGPUAdapterInfo info;
  memset(&info, 0, sizeof info);
  if (d->f.wgpuAdapterGetInfo(r.object, &info) == WGPUStatus_Success) {
    WGPUEnum bt = info.backendType;
    d->f.wgpuAdapterInfoFreeMembers(info);
    if (bt == WGPUBackendType_Null) {
      d->f.wgpuAdapterRelease(r.object);
      return gpux__error(GPUX_E_DEVICE, "WebGPU: no adapter found: no Vulkan, Metal or D3D12 driver answered (on machines "
                         "without a GPU, Mesa's lavapipe provides one: mesa-vulkan-drivers)");
    }
  }
  *out = r.object;
  return 0;
}

static const char *const adapter_types[] = {"unknown", "discrete", "integrated", "cpu", "unknown"};

static const char *feature_name(WGPUEnum f) {
  switch (f) {
  case WGPUFeatureName_TimestampQuery: return "timestamp-query";
  case WGPUFeatureName_ShaderF16: return "shader-f16";
  case WGPUFeatureName_Subgroups: return "subgroups";
  case WGPUFeatureName_ChromiumExperimentalSubgroupMatrix: return "subgroup-matrix";
  default: return NULL;
  }
}

/* d->features: the adapter's whole feature list, the ones gpux uses by name and the rest by number
 * (their names differ between Dawn versions), so a report shows what a GPU could offer. */
static void read_feature_list(wg_device *d, WGPUAdapter a) {
  d->features[0] = 0;
  if (!d->f.wgpuAdapterGetFeatures || !d->f.wgpuSupportedFeaturesFreeMembers) return;
  WGPUSupportedFeatures all = {0, NULL};
  d->f.wgpuAdapterGetFeatures(a, &all);
  size_t used = 0;
  for (size_t i = 0; i < all.featureCount && used + 16 < sizeof d->features; i++) {
    const char *name = feature_name(all.features[i]);
    int n = name ? snprintf(d->features + used, sizeof d->features - used, "%s%s", used ? " " : "", name)
                 : snprintf(d->features + used, sizeof d->features - used, "%s0x%x", used ? " " : "", (unsigned)all.features[i]);
    if (n > 0) used += (size_t)n;
  }
  d->f.wgpuSupportedFeaturesFreeMembers(all);
}

static const char *matrix_component(WGPUEnum t) {
  static const char *const names[] = {"?", "f32", "f16", "u32", "i32", "u8", "i8"};
  return t < GPUX__ARRAY_LEN(names) ? names[t] : "?";
}

static void read_adapter_info(wg_device *d, WGPUAdapter a) {
  WGPUAdapterInfo info;
  WGPUAdapterPropertiesSubgroupMatrixConfigs matrix;
  memset(&info, 0, sizeof info);
  memset(&matrix, 0, sizeof matrix);
  d->matrix_configs[0] = 0;
  int want_matrix = d->f.wgpuAdapterPropertiesSubgroupMatrixConfigsFreeMembers &&
                    d->f.wgpuAdapterHasFeature(a, WGPUFeatureName_ChromiumExperimentalSubgroupMatrix);
  if (want_matrix) {
    matrix.chain.sType = WGPUSType_AdapterPropertiesSubgroupMatrixConfigs;
    info.nextInChain = &matrix.chain;
  }
  if (d->f.wgpuAdapterGetInfo(a, &info) == WGPUStatus_Success) {
    size_t used = 0;
    for (size_t i = 0; want_matrix && i < matrix.configCount && used + 40 < sizeof d->matrix_configs; i++) {
      const WGPUSubgroupMatrixConfig *c = &matrix.configs[i];
      int n = snprintf(d->matrix_configs + used, sizeof d->matrix_configs - used, "%s%s*%s->%s %ux%ux%u", used ? ", " : "",
                       matrix_component(c->componentType), matrix_component(c->componentType),
                       matrix_component(c->resultComponentType), c->M, c->N, c->K);
      if (n > 0) used += (size_t)n;
    }
    if (want_matrix) d->f.wgpuAdapterPropertiesSubgroupMatrixConfigsFreeMembers(matrix);
    sv_copy(d->name, sizeof d->name, info.device);
    sv_copy(d->driver, sizeof d->driver, info.description);
    sv_copy(d->vendor, sizeof d->vendor, info.vendor);
    sv_copy(d->architecture, sizeof d->architecture, info.architecture);
    d->backend_type = (int)info.backendType;
    d->adapter_type = (int)info.adapterType;
    d->vendor_id = info.vendorID;
    d->device_id = info.deviceID;
    d->subgroup_min = info.subgroupMinSize;
    d->subgroup_max = info.subgroupMaxSize;
    d->f.wgpuAdapterInfoFreeMembers(info);
  }
  d->has_f16 = d->f.wgpuAdapterHasFeature(a, WGPUFeatureName_ShaderF16) != 0;
  d->has_subgroups = d->f.wgpuAdapterHasFeature(a, WGPUFeatureName_Subgroups) != 0;
  d->has_subgroup_matrix = d->f.wgpuAdapterHasFeature(a, WGPUFeatureName_ChromiumExperimentalSubgroupMatrix) != 0;
  read_feature_list(d, a);
  d->has_timestamps = d->f.wgpuAdapterHasFeature(a, WGPUFeatureName_TimestampQuery) != 0 && d->f.wgpuDeviceCreateQuerySet &&
                      d->f.wgpuCommandEncoderResolveQuerySet && d->f.wgpuQuerySetDestroy && d->f.wgpuQuerySetRelease;
}

static int request_device(wg_device *d) {
  WGPULimits limits;
  memset(&limits, 0, sizeof limits);
  if (d->f.wgpuAdapterGetLimits(d->adapter, &limits) != WGPUStatus_Success)
    return gpux__error(GPUX_E_DEVICE, "WebGPU: the adapter's limits could not be read");
  limits.nextInChain = NULL;
  WGPUEnum features[3];
  size_t n_features = 0;
  if (d->has_f16) features[n_features++] = WGPUFeatureName_ShaderF16;
  if (d->has_subgroups) features[n_features++] = WGPUFeatureName_Subgroups;
  if (d->has_timestamps) features[n_features++] = WGPUFeatureName_TimestampQuery; /* profiling */
  WGPUDeviceDescriptor desc;
  memset(&desc, 0, sizeof desc);
  desc.label = sv("gpux");
  desc.requiredFeatureCount = n_features;
  desc.requiredFeatures = features;
  desc.requiredLimits = &limits; /* everything the adapter offers: big buffers, many bindings */
  /* compiled pipelines are kept on disk between processes (cache.c) */
  WGPUDawnCacheDeviceDescriptor cache = {{NULL, WGPUSType_DawnCacheDeviceDescriptor}, {NULL, 0},
                                         gpux__wg_cache_load, gpux__wg_cache_store, d->cache};
  if (d->cache) desc.nextInChain = &cache.chain;
  /* GPUX_WEBGPU_TOGGLES="a,b,-c": Dawn device toggles to enable ("-": disable), e.g.
   * skip_validation or disable_robustness, to measure what Dawn's checks cost */
  const char *on[16], *off[16];
  char toggle_text[512];
  WGPUDawnTogglesDescriptor toggles = {{NULL, WGPUSType_DawnTogglesDescriptor}, 0, on, 0, off};
  const char *tl = getenv("GPUX_WEBGPU_TOGGLES");
  if (tl && *tl) {
    snprintf(toggle_text, sizeof toggle_text, "%s", tl);
    for (char *save = NULL, *t = strtok_r(toggle_text, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
      if (*t == '-' && t[1] && toggles.disabledToggleCount < 16) off[toggles.disabledToggleCount++] = t + 1;
      else if (*t != '-' && toggles.enabledToggleCount < 16) on[toggles.enabledToggleCount++] = t;
    }
    toggles.chain.next = desc.nextInChain;
    desc.nextInChain = &toggles.chain;
  }
  desc.deviceLostCallbackInfo = (WGPUDeviceLostCallbackInfo){NULL, WGPUCallbackMode_AllowSpontaneous, on_device_lost, d, NULL};
  desc.uncapturedErrorCallbackInfo = (WGPUUncapturedErrorCallbackInfo){NULL, on_uncaptured_error, d, NULL};
  request_result r = {0};
  WGPURequestDeviceCallbackInfo cb = {NULL, callback_mode(d), on_device, &r, NULL};
  WGPUFuture fut = d->f.wgpuAdapterRequestDevice(d->adapter, &desc, cb);
  int rc = wait_future(d, fut, &r.done, "requesting a device");
  if (rc) return rc;
  if (r.status != WGPURequestDeviceStatus_Success || !r.object)
    return gpux__error(GPUX_E_DEVICE, "WebGPU: the adapter '%s' refused to create a device: %s", d->name, r.message);
  d->device = r.object;
  d->queue = d->f.wgpuDeviceGetQueue(d->device);
  /* an adapter may list a feature that its device then leaves off */
  if (d->has_timestamps && d->f.wgpuDeviceHasFeature)
    d->has_timestamps = d->f.wgpuDeviceHasFeature(d->device, WGPUFeatureName_TimestampQuery) != 0;
  if (d->has_f16 && d->f.wgpuDeviceHasFeature && !d->f.wgpuDeviceHasFeature(d->device, WGPUFeatureName_ShaderF16)) {
    d->has_f16 = 0;
    snprintf(d->f16_why, sizeof d->f16_why, "the adapter lists shader-f16 but %s made the device without it", d->lib_path);
  }
  if (getenv("GPUX_WEBGPU_VERBOSE"))
    gpux__log(GPUX_LOG_DEBUG, "webgpu: features: shader-f16 %d, subgroups %d, timestamp-query %d", d->has_f16,
              d->has_subgroups, d->has_timestamps);
  memset(&d->limits, 0, sizeof d->limits);
  if (d->f.wgpuDeviceGetLimits(d->device, &d->limits) != WGPUStatus_Success) d->limits = limits;
  d->limits.nextInChain = NULL;
  return 0;
}

typedef struct {
  volatile int done;
  WGPUEnum status;
} done_result;

static void on_work_done(WGPUEnum status, void *u1, void *u2) {
  (void)u2;
  done_result *r = u1;
  r->status = status;
  r->done = 1;
}

int gpux__wg_queue_idle(wg_device *d) {
  done_result r = {0};
  WGPUQueueWorkDoneCallbackInfo cb = {NULL, callback_mode(d), on_work_done, &r, NULL};
  WGPUFuture fut = d->f.wgpuQueueOnSubmittedWorkDone(d->queue, cb);
  int rc = wait_future(d, fut, &r.done, "waiting for the GPU");
  return rc ? rc : gpux__wg_check(d, "waiting for the GPU");
}

/* ---- buffers, pipelines ---- */

WGPUBuffer gpux__wg_buffer(wg_device *d, uint64_t size, WGPUFlags usage, const char *label) {
  return gpux__wg_buffer_made(d, size, usage, 0, label);
}

WGPUBuffer gpux__wg_buffer_made(wg_device *d, uint64_t size, WGPUFlags usage, int mapped, const char *label) {
  WGPUBufferDescriptor desc;
  memset(&desc, 0, sizeof desc);
  desc.label = sv(label);
  desc.usage = usage;
  desc.size = (size + 3) & ~(uint64_t)3;
  if (desc.size == 0) desc.size = 4;
  desc.mappedAtCreation = mapped != 0;
  d->buffers++;
  return d->f.wgpuDeviceCreateBuffer(d->device, &desc);
}

typedef struct {
  volatile int done;
  WGPUEnum status;
} map_result;

static void on_map(WGPUEnum status, WGPUStringView message, void *u1, void *u2) {
  (void)message, (void)u2;
  map_result *r = u1;
  r->status = status;
  r->done = 1;
}

int gpux__wg_map_read(wg_device *d, WGPUBuffer staging, size_t size, const void **data) {
  map_result r = {0};
  size_t n = (size + 3) & ~(size_t)3;
  WGPUBufferMapCallbackInfo cb = {NULL, callback_mode(d), on_map, &r, NULL};
  WGPUFuture fut = d->f.wgpuBufferMapAsync(staging, WGPUMapMode_Read, 0, n, cb);
  int rc = wait_future(d, fut, &r.done, "reading results back");
  if (rc) return rc;
  if ((rc = gpux__wg_check(d, "reading results back"))) return rc;
  if (r.status != WGPUMapAsyncStatus_Success)
    return gpux__error(GPUX_E_DEVICE, "WebGPU: mapping the result buffer failed (status %u)", r.status);
  *data = d->f.wgpuBufferGetConstMappedRange(staging, 0, n);
  if (!*data) {
    d->f.wgpuBufferUnmap(staging);
    return gpux__error(GPUX_E_DEVICE, "WebGPU: the mapped result buffer has no data");
  }
  return 0;
}

int gpux__wg_read_buffer(wg_device *d, WGPUBuffer src, uint64_t offset, void *dst, size_t size) {
  size_t n = (size + 3) & ~(size_t)3;
  WGPUBuffer staging = gpux__wg_buffer(d, n, WGPUBufferUsage_MapRead | WGPUBufferUsage_CopyDst, "gpux readback");
  if (!staging) return gpux__error(GPUX_E_DEVICE, "WebGPU: could not create a readback buffer");
  WGPUCommandEncoder enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL);
  d->f.wgpuCommandEncoderCopyBufferToBuffer(enc, src, offset, staging, 0, n);
  WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(enc, NULL);
  d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
  d->f.wgpuCommandBufferRelease(cmd);
  d->f.wgpuCommandEncoderRelease(enc);
  const void *p = NULL;
  int rc = gpux__wg_map_read(d, staging, n, &p);
  if (!rc) {
    memcpy(dst, p, size);
    d->f.wgpuBufferUnmap(staging);
  }
  d->f.wgpuBufferDestroy(staging);
  d->f.wgpuBufferRelease(staging);
  return rc;
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

typedef struct {
  volatile int done;
  WGPUEnum status, type;
  char message[2048];
} scope_result;

static void on_pop_scope(WGPUEnum status, WGPUEnum type, WGPUStringView message, void *u1, void *u2) {
  (void)u2;
  scope_result *r = u1;
  r->status = status;
  r->type = type;
  sv_copy(r->message, sizeof r->message, message);
  r->done = 1;
}

/* Whether pipelines are made in the background (Dawn's worker threads, one a pipeline), while
 * the planner goes on: GPUX_WEBGPU_ASYNC=0 makes them one by one, each before the next starts. */
static int async_pipelines(const wg_device *d) {
  static int off = -1;
  if (off < 0) {
    const char *v = getenv("GPUX_WEBGPU_ASYNC");
    off = v && !strcmp(v, "0");
  }
  return !off && d->f.wgpuDeviceCreateComputePipelineAsync != NULL;
}

static void on_pipeline(WGPUEnum status, WGPUComputePipeline pipeline, WGPUStringView message, void *u1, void *u2) {
  (void)u2;
  wg_pipeline_job *j = u1;
  j->status = status;
  j->pipeline = pipeline;
  sv_copy(j->message, sizeof j->message, message);
  j->done = 1;
}

/* The pipelines started since none was pending have all been made: what the blob cache served
 * meanwhile says how many were loaded and how many compiled (at most one compiled per miss). */
static void count_batch(wg_device *d) {
  uint64_t h = 0, m = 0, st = 0, made = d->batch_made;
  if (d->cache) gpux__wg_cache_counts(d->cache, &h, &m, &st);
  uint64_t compiled = !d->cache || h == d->batch_hits ? made : (m - d->batch_misses < made ? m - d->batch_misses : made);
  d->pipes_compiled += compiled;
  d->pipes_loaded += made - compiled;
  d->batch_made = 0;
}

/* Waits for p's creation (started by pipeline_start) and takes its result: the pipeline and its
 * bind group layout, or the error, which p keeps (a later request of the same WGSL fails at once). */
static int pipeline_finish(wg_device *d, wg_pipeline *p) {
  wg_pipeline_job *j = p->job;
  if (!j) return p->error ? gpux__error(GPUX_E_DEVICE, "%s", p->error) : 0;
  int rc = wait_future(d, j->future, &j->done, "compiling a shader");
  p->job = NULL;
  d->n_pending--;
  if (!rc && (j->status != WGPUCreatePipelineAsyncStatus_Success || !j->pipeline)) {
    for (char *c = j->message; *c; c++) if (*c == '\n') *c = ' ';
    rc = gpux__error(GPUX_E_DEVICE, "WebGPU: shader '%s' does not compile: %s", j->label, j->message[0] ? j->message : "no pipeline");
  }
  if (!rc) {
    p->pipeline = j->pipeline;
    p->layout = d->f.wgpuComputePipelineGetBindGroupLayout(p->pipeline, 0);
    if (!p->layout) rc = gpux__error(GPUX_E_DEVICE, "WebGPU: shader '%s': no bind group layout", j->label);
  } else if (j->pipeline) {
    d->f.wgpuComputePipelineRelease(j->pipeline);
  }
  if (rc && rc != GPUX_E_NOMEM && !p->error) p->error = gpux__strdup(gpux_last_error());
  if (rc && getenv("GPUX_WEBGPU_DEBUG")) gpux__log(GPUX_LOG_DEBUG, "webgpu: shader '%s':\n%s", j->label, p->wgsl);
  free(j);
  return rc;
}

int gpux__wg_pipelines_finish(wg_device *d) {
  if (!d->n_pending) return 0;
  uint64_t t0 = now_ns(), c0 = gpux__wg_cpu_ns();
  int nomem = 0;
  for (int i = 0; i < d->n_pipes && d->n_pending; i++)
    if (d->pipes[i]->job && pipeline_finish(d, d->pipes[i]) == GPUX_E_NOMEM) nomem = 1;
  count_batch(d);
  d->pipe_ns += now_ns() - t0;
  d->pipe_cpu_ns += gpux__wg_cpu_ns() - c0;
  if (nomem) return GPUX_E_NOMEM;
  return gpux__wg_check(d, "compiling a shader");
}

static int remember(wg_device *d, wg_pipeline *p) {
  if (d->n_pipes == d->cap_pipes) {
    int cap = d->cap_pipes ? d->cap_pipes * 2 : 64;
    wg_pipeline **np = gpux__realloc(d->pipes, (size_t)cap * sizeof *np);
    if (!np) return GPUX_E_NOMEM;
    d->pipes = np;
    d->cap_pipes = cap;
  }
  d->pipes[d->n_pipes++] = p;
  return 0;
}

int gpux__wg_pipeline_start(wg_device *d, const char *wgsl, const char *label, wg_pipeline **out) {
  *out = NULL;
  uint64_t h = fnv1a(wgsl);
  for (int i = 0; i < d->n_pipes; i++)
    if (d->pipes[i]->hash == h && !strcmp(d->pipes[i]->wgsl, wgsl)) {
      if (d->pipes[i]->error) return gpux__error(GPUX_E_DEVICE, "%s", d->pipes[i]->error);
      *out = d->pipes[i];
      return 0;
    }
  wg_pipeline *p = gpux__calloc(1, sizeof *p);
  wg_pipeline_job *j = p ? gpux__calloc(1, sizeof *j) : NULL;
  if (p) p->wgsl = gpux__strdup(wgsl);
  if (!p || !j || !p->wgsl || remember(d, p)) {
    if (p) free(p->wgsl);
    free(p);
    free(j);
    return GPUX_E_NOMEM;
  }
  p->hash = h;
  snprintf(j->label, sizeof j->label, "%s", label ? label : "?");
  uint64_t t0 = now_ns(), c0 = gpux__wg_cpu_ns();
  if (!d->n_pending) { /* a new batch: the cache's counts from here on are its own */
    uint64_t st;
    if (d->cache) gpux__wg_cache_counts(d->cache, &d->batch_hits, &d->batch_misses, &st);
    d->batch_made = 0;
  }
  d->compiled++;
  d->batch_made++;
  d->n_pending++;
  p->job = j;
  /* the shader module first, here: WGSL that does not parse or validate fails now */
  d->f.wgpuDevicePushErrorScope(d->device, WGPUErrorFilter_Validation);
  WGPUShaderSourceWGSL src = {{NULL, WGPUSType_ShaderSourceWGSL}, {wgsl, strlen(wgsl)}};
  WGPUShaderModuleDescriptor md = {&src.chain, sv(label)};
  WGPUShaderModule mod = d->f.wgpuDeviceCreateShaderModule(d->device, &md);
  scope_result r = {0};
  WGPUPopErrorScopeCallbackInfo cb = {NULL, callback_mode(d), on_pop_scope, &r, NULL};
  WGPUFuture fut = d->f.wgpuDevicePopErrorScope(d->device, cb);
  int rc = wait_future(d, fut, &r.done, "compiling a shader");
  if (!rc && (!mod || (r.status == WGPUPopErrorScopeStatus_Success && r.type != WGPUErrorType_NoError))) {
    for (char *c = r.message; *c; c++) if (*c == '\n') *c = ' ';
    rc = gpux__error(GPUX_E_DEVICE, "WebGPU: shader '%s' does not compile: %s", j->label, r.message[0] ? r.message : "no module");
  }
  if (!rc) { /* then the pipeline: in the background, or now */
    WGPUComputePipelineDescriptor pd;
    memset(&pd, 0, sizeof pd);
    pd.label = sv(label);
    pd.compute.module = mod;
    pd.compute.entryPoint = sv("main");
    if (async_pipelines(d)) {
      WGPUCreateComputePipelineAsyncCallbackInfo pcb = {NULL, callback_mode(d), on_pipeline, j, NULL};
      j->future = d->f.wgpuDeviceCreateComputePipelineAsync(d->device, &pd, pcb);
    } else {
      d->f.wgpuDevicePushErrorScope(d->device, WGPUErrorFilter_Validation);
      j->pipeline = d->f.wgpuDeviceCreateComputePipeline(d->device, &pd);
      scope_result pr = {0};
      WGPUPopErrorScopeCallbackInfo pcb = {NULL, callback_mode(d), on_pop_scope, &pr, NULL};
      WGPUFuture pf = d->f.wgpuDevicePopErrorScope(d->device, pcb);
      rc = wait_future(d, pf, &pr.done, "compiling a shader");
      j->status = pr.status == WGPUPopErrorScopeStatus_Success && pr.type != WGPUErrorType_NoError
                    ? WGPUCreatePipelineAsyncStatus_ValidationError : WGPUCreatePipelineAsyncStatus_Success;
      snprintf(j->message, sizeof j->message, "%s", pr.message);
      j->done = 1;
    }
  }
  if (mod) d->f.wgpuShaderModuleRelease(mod);
  if (!rc) rc = gpux__wg_check(d, "compiling a shader");
  if (rc) { /* kept as failed, with its reason */
    if (getenv("GPUX_WEBGPU_DEBUG")) gpux__log(GPUX_LOG_DEBUG, "webgpu: shader '%s':\n%s", j->label, wgsl);
    if (j->pipeline) d->f.wgpuComputePipelineRelease(j->pipeline);
    p->job = NULL;
    free(j);
    d->n_pending--;
    if (rc != GPUX_E_NOMEM) p->error = gpux__strdup(gpux_last_error());
    if (!d->n_pending) count_batch(d);
  }
  d->pipe_ns += now_ns() - t0;
  d->pipe_cpu_ns += gpux__wg_cpu_ns() - c0;
  if (rc) return rc;
  *out = p;
  return 0;
}

int gpux__wg_pipeline(wg_device *d, const char *wgsl, const char *label, wg_pipeline **out) {
  wg_pipeline *p;
  int rc = gpux__wg_pipeline_start(d, wgsl, label, &p);
  if (!rc && p->job) rc = gpux__wg_pipelines_finish(d);
  if (!rc && !p->pipeline && !p->error) rc = GPUX_E_NOMEM;
  if (!rc && p->error) rc = gpux__error(GPUX_E_DEVICE, "%s", p->error);
  *out = rc ? NULL : p;
  return rc;
}

int gpux__wg_query_set(wg_device *d, uint32_t count, WGPUQuerySet *out) {
  *out = NULL;
  if (!d->has_timestamps) return gpux__error(GPUX_E_UNSUPPORTED, "WebGPU: no timestamp-query on this device");
  d->f.wgpuDevicePushErrorScope(d->device, WGPUErrorFilter_Validation);
  WGPUQuerySetDescriptor qd = {NULL, sv("gpux profile"), WGPUQueryType_Timestamp, count};
  WGPUQuerySet qs = d->f.wgpuDeviceCreateQuerySet(d->device, &qd);
  scope_result r = {0};
  WGPUPopErrorScopeCallbackInfo cb = {NULL, callback_mode(d), on_pop_scope, &r, NULL};
  WGPUFuture fut = d->f.wgpuDevicePopErrorScope(d->device, cb);
  int rc = wait_future(d, fut, &r.done, "making a timestamp query set");
  if (!rc && (!qs || (r.status == WGPUPopErrorScopeStatus_Success && r.type != WGPUErrorType_NoError))) {
    d->has_timestamps = 0; /* not again: profiling times nodes by the wall clock instead */
    rc = gpux__error(GPUX_E_UNSUPPORTED, "WebGPU: timestamp queries are turned down: %s", r.message);
  }
  if (rc) {
    if (qs) d->f.wgpuQuerySetRelease(qs);
    return rc;
  }
  *out = qs;
  return 0;
}

/* The compiler's own words from a failed probe: gpux__wg_pipeline's message from "error: " on,
 * without the source line that the compiler quotes after it (the probe's first line). */
static void probe_error(char *dst, size_t cap, const char *msg) {
  const char *e = strstr(msg, "error: ");
  e = e ? e + 7 : msg;
  const char *end = strstr(e, " enable f16;");
  size_t n = end ? (size_t)(end - e) : strlen(e);
  snprintf(dst, cap, "%.*s", (int)n, e);
}

int gpux__wg_f16_usable(wg_device *d) {
  if (!d->has_f16) {
    if (!d->f16_why[0]) snprintf(d->f16_why, sizeof d->f16_why, "the WebGPU adapter has no shader-f16");
    return 0;
  }
  if (!d->f16_usable) {
    static const char probe[] = "enable f16;\n@group(0) @binding(0) var<storage, read_write> b0: array<f16>;\n"
                                "@compute @workgroup_size(1)\nfn main() { b0[0] = b0[1] + 1.0h; }\n";
    wg_pipeline *p;
    d->f16_usable = gpux__wg_pipeline(d, probe, "gpux f16 probe", &p) ? -1 : 1;
    if (d->f16_usable > 0) snprintf(d->f16_why, sizeof d->f16_why, "f16 shaders compile on %s", d->name);
    else {
      char err[256];
      probe_error(err, sizeof err, gpux_last_error());
      snprintf(d->f16_why, sizeof d->f16_why, "the adapter lists shader-f16 but a shader with `enable f16;` does not compile on %s: %s",
               d->lib_path, err);
      if (getenv("GPUX_WEBGPU_VERBOSE"))
        gpux__log(GPUX_LOG_DEBUG, "webgpu: shader-f16 is listed but `enable f16;` does not compile: %s", gpux_last_error());
    }
  }
  return d->f16_usable > 0;
}

/* ---- the self-test: a compute dispatch whose result is checked ---- */

static int self_test(wg_device *d) {
  static const char wgsl[] =
    "@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n"
    "@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {\n"
    "  let i = g.x;\n"
    "  if (i < 100u) { a[i] = a[i] * 2.0 + f32(i); }\n"
    "}\n";
  float host[100], back[100];
  for (int i = 0; i < 100; i++) host[i] = (float)i * 0.5f - 3.0f;
  wg_pipeline *p;
  int rc = gpux__wg_pipeline(d, wgsl, "gpux self-test", &p);
  if (rc) return gpux__error_prefix(rc, "WebGPU self-test: ");
  WGPUBuffer buf = gpux__wg_buffer(d, sizeof host, WGPUBufferUsage_Storage | WGPUBufferUsage_CopyDst | WGPUBufferUsage_CopySrc, "self-test");
  if (!buf) return gpux__error(GPUX_E_DEVICE, "WebGPU self-test: no buffer");
  d->f.wgpuQueueWriteBuffer(d->queue, buf, 0, host, sizeof host);
  WGPUBindGroupEntry e;
  memset(&e, 0, sizeof e);
  e.binding = 0;
  e.buffer = buf;
  e.size = sizeof host;
  WGPUBindGroupDescriptor bd;
  memset(&bd, 0, sizeof bd);
  bd.layout = p->layout;
  bd.entryCount = 1;
  bd.entries = &e;
  WGPUBindGroup bg = d->f.wgpuDeviceCreateBindGroup(d->device, &bd);
  WGPUCommandEncoder enc = d->f.wgpuDeviceCreateCommandEncoder(d->device, NULL);
  WGPUComputePassEncoder pass = d->f.wgpuCommandEncoderBeginComputePass(enc, NULL);
  d->f.wgpuComputePassEncoderSetPipeline(pass, p->pipeline);
  d->f.wgpuComputePassEncoderSetBindGroup(pass, 0, bg, 0, NULL);
  d->f.wgpuComputePassEncoderDispatchWorkgroups(pass, 2, 1, 1);
  d->f.wgpuComputePassEncoderEnd(pass);
  d->f.wgpuComputePassEncoderRelease(pass);
  WGPUCommandBuffer cmd = d->f.wgpuCommandEncoderFinish(enc, NULL);
  d->f.wgpuQueueSubmit(d->queue, 1, &cmd);
  d->f.wgpuCommandBufferRelease(cmd);
  d->f.wgpuCommandEncoderRelease(enc);
  rc = gpux__wg_read_buffer(d, buf, 0, back, sizeof back);
  d->f.wgpuBindGroupRelease(bg);
  d->f.wgpuBufferDestroy(buf);
  d->f.wgpuBufferRelease(buf);
  if (rc) return gpux__error_prefix(rc, "WebGPU self-test: ");
  for (int i = 0; i < 100; i++)
    if (back[i] != host[i] * 2.0f + (float)i)
      return gpux__error(GPUX_E_DEVICE, "WebGPU self-test: a compute dispatch on '%s' gave %g at %d instead of %g "
                         "(is %s a webgpu.h of another version?)", d->name, back[i], i, host[i] * 2.0f + (float)i, d->lib_path);
  return 0;
}

/* ---- the process's device ---- */

static void device_free(wg_device *d) {
  if (!d) return;
  /* nothing left on Dawn's threads whose callback could come after its job is freed (a lost
     device still completes them) */
  if (d->n_pending) gpux__wg_pipelines_finish(d);
  for (int i = 0; i < d->n_pipes; i++) {
    free(d->pipes[i]->job);
    free(d->pipes[i]->error);
    free(d->pipes[i]->wgsl);
    if (d->pipes[i]->layout) d->f.wgpuBindGroupLayoutRelease(d->pipes[i]->layout);
    if (d->pipes[i]->pipeline) d->f.wgpuComputePipelineRelease(d->pipes[i]->pipeline);
    free(d->pipes[i]);
  }
  free(d->pipes);
  if (d->reuse && d->reuse_free) d->reuse_free(d->reuse);
  for (int i = 0; i < d->n_spare; i++) {
    d->f.wgpuBufferDestroy(d->spare[i]);
    d->f.wgpuBufferRelease(d->spare[i]);
  }
  if (d->queue) d->f.wgpuQueueRelease(d->queue);
  if (d->device) {
    d->f.wgpuDeviceDestroy(d->device);
    d->f.wgpuDeviceRelease(d->device);
  }
  if (d->adapter) d->f.wgpuAdapterRelease(d->adapter);
  gpux__wg_cache_close(d->cache); /* after the device: Dawn may store while it goes */
  /* the instance and library are the process's (runtime_get) */
  pthread_mutex_destroy(&d->mu);
  free(d);
}

static int device_create(wg_device **out) {
  wg_device *d = gpux__calloc(1, sizeof *d);
  if (!d) return GPUX_E_NOMEM;
  pthread_mutex_init(&d->mu, NULL);
  const char *t = getenv("GPUX_WEBGPU_TIMEOUT");
  double secs = t ? atof(t) : 0;
  d->timeout_ns = (uint64_t)((secs > 0 ? secs : 300.0) * 1e9); /* first runs include shader JIT */
  int verbose = getenv("GPUX_WEBGPU_VERBOSE") != NULL;
  /* wall, process CPU and this thread's CPU time of each step, for the verbose breakdown */
  uint64_t tw[5], tc[5], tt[5];
#define STEP(i) (tw[i] = now_ns(), tc[i] = gpux__wg_cpu_ns(), tt[i] = thread_cpu_ns())
  STEP(0);
  int rc = runtime_get(d);
  STEP(1);
  if (!rc) rc = request_adapter(d, WGPUPowerPreference_HighPerformance, &d->adapter);
  if (!rc) read_adapter_info(d, d->adapter);
  if (!rc) d->cache = gpux__wg_cache_open(d);
  STEP(2);
  if (!rc) rc = request_device(d);
  STEP(3);
  /* the self-test checks this library's ABI on this adapter and driver: once they passed it (the
     pipeline cache's folder is theirs alone), a later process skips it */
  int tested = !rc && d->cache && gpux__wg_cache_marked(d->cache, "self-test.ok");
  if (!rc && !tested && !(rc = self_test(d)) && d->cache) gpux__wg_cache_mark(d->cache, "self-test.ok");
  STEP(4);
#undef STEP
#define MS(a, i) (double)(a[i + 1] - a[i]) / 1e6
  if (verbose)
    gpux__log(GPUX_LOG_DEBUG, "webgpu: %s on %s: library and instance %.1f ms (cpu %.1f, this thread %.1f), adapter "
              "%.1f ms (cpu %.1f, this thread %.1f; %s asked), device %.1f ms (cpu %.1f, this thread %.1f), self-test %s "
              "%.1f ms (cpu %.1f)%s", d->name, d->lib_path, MS(tw, 0), MS(tc, 0), MS(tt, 0), MS(tw, 1), MS(tc, 1), MS(tt, 1),
              backend_name((WGPUEnum)d->backend_asked), MS(tw, 2), MS(tc, 2), MS(tt, 2),
              tested ? "skipped (passed before)" : "run", MS(tw, 3), MS(tc, 3), warming ? "; made ahead of its sessions" : "");
#undef MS
  if (warming) warm_ready_ns = tw[4];
  if (rc) {
    device_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

static uint64_t warm_wait(void);

int gpux__wg_device_acquire(wg_device **out) {
  *out = NULL;
  uint64_t asked = now_ns(), waited = warm_wait();
  if (waited && getenv("GPUX_WEBGPU_VERBOSE")) {
    /* what the caller did meanwhile (loading its models) hid min(asked, ready) of the making */
    uint64_t ready = warm_ready_ns ? warm_ready_ns : asked + waited;
    gpux__log(GPUX_LOG_DEBUG, "webgpu: a session asked for the device %.1f ms after gpux_device_warm and waited %.1f ms "
              "for it (ready %.1f ms after gpux_device_warm): %.1f ms of its making overlapped the caller's work",
              (double)(asked - warm_asked_ns) / 1e6, (double)(waited - 1) / 1e6, (double)(ready - warm_asked_ns) / 1e6,
              (double)((asked < ready ? asked : ready) - warm_asked_ns) / 1e6);
  }
  pthread_mutex_lock(&device_mu);
  int rc = 0;
  if (the_device && the_device->lost) { /* a lost device is not reused */
    if (the_device->refs == 0) device_free(the_device);
    the_device = NULL;
  }
  if (!the_device) rc = device_create(&the_device);
  if (!rc) {
    the_device->refs++;
    *out = the_device;
  }
  pthread_mutex_unlock(&device_mu);
  return rc;
}

void gpux__wg_device_ref(wg_device *d) {
  pthread_mutex_lock(&device_mu);
  d->refs++;
  pthread_mutex_unlock(&device_mu);
}

void gpux__wg_device_release(wg_device *d) {
  if (!d) return;
  pthread_mutex_lock(&device_mu);
  /* an idle device stays for the next session; a lost one that is no longer current goes */
  if (--d->refs == 0 && d != the_device) device_free(d);
  pthread_mutex_unlock(&device_mu);
}

/* ---- making the device early (gpux_device_warm) ---- */

static pthread_t warm_thread;
static int warm_started;         /* under device_mu: a warm-up thread was started (once a process) */
static pthread_mutex_t warm_mu = PTHREAD_MUTEX_INITIALIZER;
static int warm_running;         /* under warm_mu: warm_thread is to be joined */

/* Waits for the warm-up thread, if one runs: the device it makes is the one the caller gets (a
 * caller that raced it would make the device itself, the thread then waiting for nothing).
 * Returns how long it waited plus 1 ns when it joined the thread, 0 when none ran. */
static uint64_t warm_wait(void) {
  if (warming) return 0;
  uint64_t t0 = now_ns(), waited = 0;
  pthread_mutex_lock(&warm_mu);
  if (warm_running) {
    pthread_join(warm_thread, NULL);
    warm_running = 0;
    waited = now_ns() - t0 + 1;
  }
  pthread_mutex_unlock(&warm_mu);
  return waited;
}

static void warm_exit(void) { warm_wait(); }

static void *warm_main(void *arg) {
  (void)arg;
  warming = 1;
  wg_device *d;
  if (!gpux__wg_device_acquire(&d)) gpux__wg_device_release(d); /* kept: an idle device stays */
  return NULL;
}

void gpux_device_warm(int backend) {
  if (backend != GPUX_BACKEND_WEBGPU && backend != GPUX_BACKEND_AUTO) return;
  const char *off = getenv("GPUX_WEBGPU_WARM");
  if (off && !strcmp(off, "0")) return;
  pthread_mutex_lock(&device_mu);
  int start = !warm_started && !the_device;
  warm_started = 1;
  pthread_mutex_unlock(&device_mu);
  if (!start) return;
  pthread_mutex_lock(&warm_mu);
  warm_asked_ns = now_ns();
  warm_running = pthread_create(&warm_thread, NULL, warm_main, NULL) == 0;
  pthread_mutex_unlock(&warm_mu);
  if (warm_running) atexit(warm_exit); /* no exit while Dawn starts up */
}

/* ---- listing devices (gpux devices) ---- */

static void fill_info(const wg_device *d, gpux_device_info *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->backend, sizeof o->backend, "webgpu");
  snprintf(o->name, sizeof o->name, "%s", d->name);
  snprintf(o->vendor, sizeof o->vendor, "%s", d->vendor);
  snprintf(o->architecture, sizeof o->architecture, "%s", d->architecture);
  snprintf(o->driver, sizeof o->driver, "%s", d->driver);
  snprintf(o->api, sizeof o->api, "%s",
           d->backend_type >= 0 && d->backend_type < (int)GPUX__ARRAY_LEN(backend_names) ? backend_names[d->backend_type] : "unknown");
  snprintf(o->type, sizeof o->type, "%s",
           d->adapter_type >= 0 && d->adapter_type < (int)GPUX__ARRAY_LEN(adapter_types) ? adapter_types[d->adapter_type] : "unknown");
  snprintf(o->library, sizeof o->library, "%s", d->lib_path);
  o->vendor_id = d->vendor_id;
  o->device_id = d->device_id;
  o->max_buffer_size = d->limits.maxBufferSize;
  o->max_storage_buffer_binding_size = d->limits.maxStorageBufferBindingSize;
  o->max_compute_workgroup_storage_size = d->limits.maxComputeWorkgroupStorageSize;
  o->max_compute_invocations_per_workgroup = d->limits.maxComputeInvocationsPerWorkgroup;
  o->max_compute_workgroup_size[0] = d->limits.maxComputeWorkgroupSizeX;
  o->max_compute_workgroup_size[1] = d->limits.maxComputeWorkgroupSizeY;
  o->max_compute_workgroup_size[2] = d->limits.maxComputeWorkgroupSizeZ;
  o->max_compute_workgroups_per_dimension = d->limits.maxComputeWorkgroupsPerDimension;
  o->max_storage_buffers_per_stage = d->limits.maxStorageBuffersPerShaderStage;
  o->min_storage_buffer_offset_alignment = d->limits.minStorageBufferOffsetAlignment;
  o->subgroup_min_size = d->subgroup_min;
  o->subgroup_max_size = d->subgroup_max;
  o->shader_f16 = d->has_f16;
  o->subgroups = d->has_subgroups;
  o->subgroup_matrix = d->has_subgroup_matrix;
  snprintf(o->features, sizeof o->features, "%s", d->features);
  snprintf(o->matrix_configs, sizeof o->matrix_configs, "%s", d->matrix_configs);
}

/* Lists the adapters of the loaded library (high-performance and low-power requests, without
 * duplicates) with their limits; the device of the process is not created. */
static int list_adapters(gpux_device_info *out, int cap, int *count) {
  wg_device d;
  memset(&d, 0, sizeof d);
  d.timeout_ns = 30000000000ull;
  pthread_mutex_lock(&device_mu);
  int rc = runtime_get(&d);
  pthread_mutex_unlock(&device_mu);
  if (rc) return rc;
  static const WGPUEnum prefs[] = {WGPUPowerPreference_HighPerformance, WGPUPowerPreference_LowPower};
  int n = 0;
  char seen[2][256] = {"", ""};
  for (size_t p = 0; p < GPUX__ARRAY_LEN(prefs); p++) {
    WGPUAdapter a = NULL;
    rc = request_adapter(&d, prefs[p], &a);
    if (rc) {
      if (n == 0 && p + 1 == GPUX__ARRAY_LEN(prefs)) break;
      rc = 0;
      continue;
    }
    read_adapter_info(&d, a);
    memset(&d.limits, 0, sizeof d.limits);
    d.f.wgpuAdapterGetLimits(a, &d.limits);
    d.f.wgpuAdapterRelease(a);
    int dup = 0;
    for (int i = 0; i < n && i < 2; i++) dup |= !strcmp(seen[i], d.name);
    if (dup) continue;
    if (n < 2) snprintf(seen[n], sizeof seen[n], "%s", d.name);
    if (n < cap) fill_info(&d, &out[n]);
    n++;
  }
  *count = n;
  return n ? 0 : rc;
}

int gpux_fp16_available(char *why, size_t why_len) {
  if (why && why_len) why[0] = 0;
  wg_device *d;
  if (gpux__wg_device_acquire(&d)) {
    if (why && why_len) snprintf(why, why_len, "no usable WebGPU device: %s", gpux_last_error());
    return 0;
  }
  pthread_mutex_lock(&d->mu);
  int ok = gpux__wg_f16_usable(d);
  if (why && why_len) snprintf(why, why_len, "%s", d->f16_why);
  pthread_mutex_unlock(&d->mu);
  gpux__wg_device_release(d);
  return ok;
}

int gpux_devices(gpux_device_info *out, int cap, char *note, size_t note_len) {
  if (cap < 0 || (cap > 0 && !out)) return gpux__error(GPUX_E_INVALID, "gpux_devices: bad arguments");
  if (note && note_len) note[0] = 0;
  int n = 0;
  int rc = list_adapters(out, cap, &n);
  if (rc && note && note_len) snprintf(note, note_len, "%s", gpux_last_error());
  if (n < cap) {
    gpux_device_info *c = &out[n];
    memset(c, 0, sizeof *c);
    snprintf(c->backend, sizeof c->backend, "cpu");
    snprintf(c->name, sizeof c->name, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      char *colon = strchr(line, ':');
      if (strncmp(line, "model name", 10) || !colon) continue;
      colon += 1 + strspn(colon + 1, " \t");
      colon[strcspn(colon, "\n")] = 0;
      snprintf(c->name, sizeof c->name, "%s", colon);
      break;
    }
    if (f) fclose(f);
    snprintf(c->type, sizeof c->type, "cpu");
    c->threads = gpux__thread_count();
  }
  return n + 1;
}
