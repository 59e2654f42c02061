/* handler.c — runs a GPUXfile's `handler:` (the user's pre/post-processing code) in worker
 * processes, never in the calling process: a Python file through gpux's handler-runner.py under
 * Debian's python3 (with numpy), a shared library through the gpux-handler executable, which
 * dlopens it. Each worker is fork+exec'ed with its fd 3 one end of a socketpair; requests and
 * tensors cross in shared memory (memfd) as handler-proto.h describes. Before the exec the child
 * leaves the network (a new network namespace), sees every file system read-only (a new mount
 * namespace, remounted read-only recursively), and gets resource limits (address space, no core
 * files); where the kernel refuses a namespace the worker runs without it (docs/handlers.md). A
 * call that crashes the worker or runs past handler.timeout kills that worker and fails with one
 * line, as does a run cancelled meanwhile (gpux_app_cancel, gpux_interrupt); a new worker starts
 * at once for the next call. A pool of at most handler.workers processes serves concurrent
 * callers. */
#include "app/handler.h"
#include "app/handler-proto.h"
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef GPUX_WEBGPU_FROM_LIBDIR /* where `make install` puts gpux's helpers: LIBDIR/gpux */
#define GPUX_WEBGPU_FROM_LIBDIR "gpux"
#endif
#ifndef GPUX_WEBGPU_FROM_BINDIR
#define GPUX_WEBGPU_FROM_BINDIR "../lib/gpux"
#endif

typedef struct {
  pid_t pid;                    /* 0: not running */
  int fd;                       /* gpux's end of the socketpair */
  int busy;                     /* taken by a call */
  int started;                  /* its hello has been read (a replacement starts without waiting) */
} worker;

struct gpux__handler {
  char path[PATH_MAX];          /* the handler file */
  char name[256];               /* its name, for messages */
  char dir[PATH_MAX];           /* the image's (or GPUXfile's) folder: the worker's cwd */
  int kind;                     /* gpux__handler_kind */
  double timeout;               /* seconds per call */
  int64_t memory;               /* RLIMIT_AS of a worker */
  int has[2];                   /* preprocess, postprocess defined */
  int n;
  worker *w;                    /* (n) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

/* ---- finding the worker programs ---- */

/* gpux's own helper file `name`: installed in LIBDIR/gpux (next to libgpux.so, or ../lib/gpux
 * from the command), in the build tree next to the gpux command (or one folder up, from tests). */
static int find_helper(const char *name, char *out, size_t len) {
  char dir[PATH_MAX];
  if (!gpux__library_dir(dir, sizeof dir)) {
    static const char *const rel[] = {GPUX_WEBGPU_FROM_LIBDIR, GPUX_WEBGPU_FROM_BINDIR, ".", ".."};
    for (size_t i = 0; i < GPUX__ARRAY_LEN(rel); i++) {
      char p[PATH_MAX * 2];
      snprintf(p, sizeof p, "%s/%s/%s", dir, rel[i], name);
      if (access(p, R_OK) == 0 && realpath(p, out)) return 0;
    }
  }
  (void)len;
  return gpux__error(GPUX_E_NOTFOUND, "gpux's %s is not installed next to libgpux (make install puts it in lib/gpux/)", name);
}

/* ---- one worker ---- */

static void sanitize(char *s) {
  for (char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  if (strlen(s) > 480) strcpy(s + 477, "...");
}

static double now_s(void) { return gpux__now_ms() / 1000; }

/* Ends a worker: killed when still running, reaped. *why (may be NULL) says how it ended. */
static void stop_worker(worker *w, int kill_it, char *why, size_t len) {
  if (why) why[0] = 0;
  if (!w->pid) return;
  close(w->fd);
  w->fd = -1;
  if (kill_it) kill(w->pid, SIGKILL);
  int st = 0;
  pid_t r;
  do r = waitpid(w->pid, &st, 0);
  while (r < 0 && errno == EINTR);
  if (why && r == w->pid && !kill_it) {
    if (WIFSIGNALED(st)) snprintf(why, len, "the worker crashed (signal %d, %s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st)) snprintf(why, len, "the worker exited with status %d", WEXITSTATUS(st));
  }
  w->pid = 0;
}

/* Receives one message within `deadline` (now_s() clock). On a timeout or the worker's end, the
 * worker is stopped and the error names what happened during `what`. */
static int recv_msg(gpux__handler *h, worker *w, double deadline, const char *what, char *buf, size_t cap, int *fd) {
  *fd = -1;
  for (;;) {
    double left = deadline - now_s();
    if (left <= 0) {
      stop_worker(w, 1, NULL, 0);
      return gpux__error(GPUX_E_HANDLER, "%s: %s took longer than handler.timeout (%gs); the worker was killed", h->name, what, h->timeout);
    }
    /* a cancelled run (gpux run's Ctrl-C, serve's deadline) stops waiting: the worker is killed */
    int rc = gpux__cancelled();
    if (rc) {
      char why[128];
      snprintf(why, sizeof why, "%s", gpux_last_error());
      stop_worker(w, 1, NULL, 0);
      return gpux__error(rc, "%s: %s %s; the worker was killed", h->name, what, why);
    }
    struct pollfd p = {w->fd, POLLIN, 0};
    int r = poll(&p, 1, left > 0.1 ? 100 : (int)(left * 1000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    break;
  }
  ssize_t n = gpux__hp_recv(w->fd, buf, cap, fd);
  if (n <= 0) {
    int e = errno;
    if (*fd >= 0) close(*fd);
    *fd = -1;
    char why[160];
    stop_worker(w, n < 0, why, sizeof why);
    if (n < 0 && e == EMSGSIZE) return gpux__error(GPUX_E_HANDLER, "%s: %s: the worker's answer is larger than %d bytes", h->name, what, GPUX__HP_MAX_MSG);
    return gpux__error(GPUX_E_HANDLER, "%s: %s: %s", h->name, what, why[0] ? why : "the worker stopped answering");
  }
  return 0;
}

/* The reply's JSON; a worker-reported failure becomes the error (its one line). */
static int parse_reply(gpux__handler *h, const char *buf, cJSON **out) {
  cJSON *j = cJSON_Parse(buf);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return gpux__error(GPUX_E_HANDLER, "%s: the worker's answer is not valid", h->name);
  }
  if (!cJSON_IsTrue(cJSON_GetObjectItem(j, "ok"))) {
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    char msg[512];
    snprintf(msg, sizeof msg, "%s", cJSON_IsString(e) ? e->valuestring : "failed");
    sanitize(msg);
    cJSON_Delete(j);
    /* the worker names the file (and line); keep the message as it is when it does */
    if (!strncmp(msg, h->name, strlen(h->name))) return gpux__error(GPUX_E_HANDLER, "%s", msg);
    return gpux__error(GPUX_E_HANDLER, "%s: %s", h->name, msg);
  }
  *out = j;
  return 0;
}

/* fork+exec of the worker, isolated, without waiting for it (hello reads its first message).
 * Async-signal-safe calls only between fork and exec: everything the child needs is prepared
 * before. */
static int start(gpux__handler *h, worker *w) {
  char prog[PATH_MAX], runner[PATH_MAX];
  const char *argv[8];
  int rc, a = 0;
  if (h->kind == GPUX__HANDLER_PYTHON) {
    const char *py = getenv("GPUX_PYTHON");
    snprintf(prog, sizeof prog, "%s", py && *py ? py : "/usr/bin/python3");
    if ((rc = find_helper("handler-runner.py", runner, sizeof runner))) return rc;
    argv[a++] = prog;
    argv[a++] = "-I";              /* isolated: no PYTHON* variables, no user site, no cwd on the path */
    argv[a++] = "-B";
    argv[a++] = runner;
  } else {
    if ((rc = find_helper("gpux-handler", prog, sizeof prog))) return rc;
    argv[a++] = prog;
  }
  argv[a++] = h->path;
  argv[a++] = h->dir;
  argv[a] = NULL;
  static const char *const envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/nonexistent",
                                     "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", NULL};
  if (access(prog, X_OK) != 0)
    return gpux__error(GPUX_E_NOTFOUND, "%s: cannot run %s: %s%s", h->name, prog, strerror(errno),
                       h->kind == GPUX__HANDLER_PYTHON ? " (Python handlers need Debian's python3 with python3-numpy, or GPUX_PYTHON)" : "");
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return gpux__error(GPUX_E_IO, "%s: socketpair: %s", h->name, strerror(errno));
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  struct rlimit as = {(rlim_t)h->memory, (rlim_t)h->memory}, core = {0, 0};
  int limit_as = 1;
#ifdef __SANITIZE_ADDRESS__
  /* gpux-handler of an ASan build reserves terabytes of shadow memory: no RLIMIT_AS for it */
  limit_as = h->kind == GPUX__HANDLER_PYTHON;
#endif
  uid_t euid = geteuid();
  pid_t parent = getpid();
  static const char failed[] = "{\"ok\":false,\"error\":\"the worker program could not be started\"}";
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(sv[0]);
    close(sv[1]);
    if (devnull >= 0) close(devnull);
    return gpux__error(GPUX_E_IO, "%s: fork: %s", h->name, strerror(e));
  }
  if (pid == 0) {
    /* the child: fd 0 /dev/null, 1 and 2 gpux's stderr, 3 the socket; nothing else open */
    if (devnull >= 0) dup2(devnull, 0);
    dup2(2, 1);
    if (sv[1] == GPUX__HP_FD) fcntl(GPUX__HP_FD, F_SETFD, 0);
    else dup2(sv[1], GPUX__HP_FD);
    if (syscall(SYS_close_range, GPUX__HP_FD + 1, ~0U, 0) < 0)
      for (int fd = GPUX__HP_FD + 1; fd < 4096; fd++) close(fd);
    setsid();
    /* no PR_SET_PDEATHSIG: it fires when the spawning thread ends (serve's loader thread), not
       the process; the workers watch for gpux's end themselves */
    if (getppid() != parent) _exit(1);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    /* no network; every mount read-only (a kernel that refuses leaves the worker without) */
    if (unshare(CLONE_NEWNET | CLONE_NEWNS | (euid ? CLONE_NEWUSER : 0)) == 0) {
      mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
      struct { uint64_t set, clr, propagation, userns_fd; } attr = {0x00000001 /* MOUNT_ATTR_RDONLY */, 0, 0, 0};
      syscall(SYS_mount_setattr, -1, "/", 0x8000 /* AT_RECURSIVE */, &attr, sizeof attr);
    }
    if (limit_as) setrlimit(RLIMIT_AS, &as);
    setrlimit(RLIMIT_CORE, &core);
    execve(argv[0], (char *const *)argv, (char *const *)envp);
    gpux__hp_send(GPUX__HP_FD, failed, sizeof failed - 1, -1);
    _exit(127);
  }
  close(sv[1]);
  if (devnull >= 0) close(devnull);
  w->pid = pid;
  w->fd = sv[0];
  w->started = 0;
  return 0;
}

/* The worker's first message: the user's file loaded (imports, init), and which functions it
 * has; a slow import gets more time than a call. */
static int hello(gpux__handler *h, worker *w) {
  char buf[4096];
  int rc;
  int fd;
  double limit = h->timeout > 30 ? h->timeout : 30;
  if ((rc = recv_msg(h, w, now_s() + limit, "loading", buf, sizeof buf, &fd))) return rc;
  if (fd >= 0) close(fd);
  cJSON *j;
  if ((rc = parse_reply(h, buf, &j))) {
    stop_worker(w, 1, NULL, 0);
    return rc;
  }
  h->has[0] = cJSON_IsTrue(cJSON_GetObjectItem(j, "preprocess"));
  h->has[1] = cJSON_IsTrue(cJSON_GetObjectItem(j, "postprocess"));
  cJSON_Delete(j);
  w->started = 1;
  return 0;
}

/* ---- the pool ---- */

/* A running worker for one call (started when none is idle and the pool has room). */
static int acquire(gpux__handler *h, worker **out) {
  pthread_mutex_lock(&h->mu);
  for (;;) {
    worker *idle = NULL, *empty = NULL;
    for (int i = 0; i < h->n; i++) {
      if (h->w[i].busy) continue;
      if (h->w[i].pid && !idle) idle = &h->w[i];
      if (!h->w[i].pid && !empty) empty = &h->w[i];
    }
    worker *w = idle ? idle : empty;
    if (w) {
      w->busy = 1;
      pthread_mutex_unlock(&h->mu);
      int rc = w->pid ? 0 : start(h, w);
      if (!rc && !w->started) rc = hello(h, w);
      if (rc) {
        pthread_mutex_lock(&h->mu);
        w->busy = 0;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        return rc;
      }
      *out = w;
      return 0;
    }
    pthread_cond_wait(&h->cv, &h->mu);
  }
}

/* Gives the worker back; one that was stopped (a crash, a timeout) is replaced at once, in the
 * background, so that the next call finds it loaded. */
static void release(gpux__handler *h, worker *w) {
  if (!w->pid) {
    char msg[1024]; /* the call's error stays this thread's last */
    snprintf(msg, sizeof msg, "%s", gpux_last_error());
    if (start(h, w)) gpux__error(GPUX_E_HANDLER, "%s", msg);
  }
  pthread_mutex_lock(&h->mu);
  w->busy = 0;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

int gpux__handler_open(const gpux__spec *spec, gpux__handler **out) {
  *out = NULL;
  gpux__handler *h = gpux__calloc(1, sizeof *h);
  if (!h) return GPUX_E_NOMEM;
  const gpux__spec_handler *hs = &spec->handler;
  char p[4096];
  gpux__spec_path(spec, hs->file, p, sizeof p);
  const char *base = strrchr(hs->file, '/');
  snprintf(h->name, sizeof h->name, "%s", base ? base + 1 : hs->file);
  /* the folder resolved, the name kept: in an image the file is a link to its blob, and the
     worker names the file as the user knows it */
  char folder[4096], real[PATH_MAX];
  snprintf(folder, sizeof folder, "%s", p);
  char *slash = strrchr(folder, '/');
  if (slash) *slash = 0;
  else snprintf(folder, sizeof folder, ".");
  struct stat sb;
  errno = 0;
  if (!realpath(folder, real) || stat(p, &sb) < 0 || !S_ISREG(sb.st_mode)) {
    int e = errno;
    free(h);
    return gpux__error(e == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s:%d: key 'handler': %s: %s", spec->file, hs->line, p,
                       e ? strerror(e) : "not a file");
  }
  snprintf(h->path, sizeof h->path, "%s/%s", real, h->name);
  if (!realpath(spec->dir, h->dir)) snprintf(h->dir, sizeof h->dir, "%s", spec->dir);
  h->kind = hs->kind;
  h->timeout = hs->timeout > 0 ? hs->timeout : 10;
  h->memory = hs->memory > 0 ? hs->memory : (int64_t)4 << 30;
  h->n = hs->workers > 0 ? hs->workers : 1;
  h->w = gpux__calloc((size_t)h->n, sizeof *h->w);
  if (!h->w) { free(h); return GPUX_E_NOMEM; }
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  worker *w;
  int rc = acquire(h, &w);
  if (rc) {
    gpux__handler_close(h);
    return rc;
  }
  release(h, w);
  *out = h;
  return 0;
}

void gpux__handler_close(gpux__handler *h) {
  if (!h) return;
  for (int i = 0; i < h->n; i++) stop_worker(&h->w[i], 1, NULL, 0);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h->w);
  free(h);
}

int gpux__handler_has(const gpux__handler *h, int which) { return h && which >= 0 && which < 2 && h->has[which]; }
const char *gpux__handler_name(const gpux__handler *h) { return h ? h->name : ""; }

/* ---- requests ---- */

int gpux__handler_request(const gpux_app_input *inputs, int n_inputs, gpux_handler_value **req, char ***names) {
  *req = gpux__calloc((size_t)n_inputs + 1, sizeof **req);
  *names = gpux__calloc((size_t)n_inputs + 1, sizeof **names);
  if (!*req || !*names) { free(*req); free(*names); *req = NULL; *names = NULL; return GPUX_E_NOMEM; }
  int unnamed = 0;
  for (int i = 0; i < n_inputs; i++) {
    char key[64];
    if (inputs[i].name) snprintf(key, sizeof key, "%.63s", inputs[i].name);
    else if (unnamed++) snprintf(key, sizeof key, "input%d", unnamed);
    else snprintf(key, sizeof key, "input");
    for (int k = 0; k < i; k++)
      if (!strcmp((*names)[k], key)) {
        gpux__handler_request_free(*req, *names, i);
        *req = NULL;
        *names = NULL;
        return gpux__error(GPUX_E_INVALID, "input '%s' is given twice", key);
      }
    if (!((*names)[i] = gpux__strdup(inputs[i].name ? inputs[i].name : key))) {
      gpux__handler_request_free(*req, *names, i);
      *req = NULL;
      *names = NULL;
      return GPUX_E_NOMEM;
    }
    gpux_handler_value *v = &(*req)[i];
    v->name = (*names)[i];
    if (inputs[i].bytes) { v->data = inputs[i].bytes; v->len = inputs[i].len; v->is_text = 0; }
    else { v->data = inputs[i].text ? inputs[i].text : ""; v->len = strlen(v->data); v->is_text = 1; }
  }
  return 0;
}

void gpux__handler_request_free(gpux_handler_value *req, char **names, int n) {
  for (int i = 0; names && i < n; i++) free(names[i]);
  free(names);
  free(req);
}

/* ---- a call ---- */

/* Bulk data for one message: blobs laid out in a memfd. */
typedef struct {
  size_t size;
  int fd;
  char *map;
} shm;

static size_t align_up(size_t n) { return (n + GPUX__HP_ALIGN - 1) / GPUX__HP_ALIGN * GPUX__HP_ALIGN; }

static int shm_create(shm *m, size_t size) {
  m->size = size;
  m->map = NULL;
  m->fd = (int)syscall(SYS_memfd_create, "gpux-handler", 1u /* MFD_CLOEXEC */);
  if (m->fd < 0) return gpux__error(GPUX_E_IO, "memfd_create: %s", strerror(errno));
  if (size && (ftruncate(m->fd, (off_t)size) < 0 ||
               (m->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0)) == MAP_FAILED)) {
    int e = errno;
    close(m->fd);
    m->fd = -1;
    m->map = NULL;
    return gpux__error(e == ENOMEM ? GPUX_E_NOMEM : GPUX_E_IO, "shared memory of %zu bytes: %s", size, strerror(e));
  }
  return 0;
}

static void shm_free(shm *m) {
  if (m->map) munmap(m->map, m->size);
  if (m->fd >= 0) close(m->fd);
  m->map = NULL;
  m->fd = -1;
}

/* The request and (for postprocess) the outputs as JSON pointing into one memfd. */
static int build_message(const char *op, const gpux_handler_value *req, int n_req, const gpux__named_tensors *t,
                         char **msg, shm *m) {
  size_t size = 0;
  for (int i = 0; i < n_req; i++) size = align_up(size) + req[i].len;
  for (int i = 0; t && i < t->n; i++) {
    if (t->t[i].kind != GPUX_KIND_TENSOR || t->t[i].dtype == GPUX_DT_STRING || gpux_dtype_size(t->t[i].dtype) == 0)
      return gpux__error(GPUX_E_UNSUPPORTED_DTYPE, "output '%s' (%s) cannot be handed to a handler: numbers only", t->names[i], gpux_dtype_name(t->t[i].dtype));
    size = align_up(size) + t->t[i].nbytes;
  }
  int rc = shm_create(m, size ? size : 1);
  if (rc) return rc;
  cJSON *j = cJSON_CreateObject(), *r = cJSON_AddArrayToObject(j, "request");
  cJSON_AddStringToObject(j, "op", op);
  size_t off = 0;
  for (int i = 0; i < n_req; i++) {
    off = align_up(off);
    memcpy(m->map + off, req[i].data, req[i].len);
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "name", req[i].name);
    cJSON_AddBoolToObject(v, "text", req[i].is_text);
    cJSON_AddNumberToObject(v, "offset", (double)off);
    cJSON_AddNumberToObject(v, "size", (double)req[i].len);
    cJSON_AddItemToArray(r, v);
    off += req[i].len;
  }
  if (t) {
    cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
    for (int i = 0; i < t->n; i++) {
      off = align_up(off);
      memcpy(m->map + off, t->t[i].data, t->t[i].nbytes);
      cJSON *v = cJSON_CreateObject();
      cJSON_AddStringToObject(v, "name", t->names[i]);
      cJSON_AddNumberToObject(v, "dtype", t->t[i].dtype);
      cJSON *sh = cJSON_AddArrayToObject(v, "shape");
      for (int d = 0; d < t->t[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->t[i].dims[d]));
      cJSON_AddNumberToObject(v, "offset", (double)off);
      cJSON_AddNumberToObject(v, "size", (double)t->t[i].nbytes);
      cJSON_AddItemToArray(ts, v);
      off += t->t[i].nbytes;
    }
  }
  *msg = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!*msg) { shm_free(m); return GPUX_E_NOMEM; }
  if (strlen(*msg) >= GPUX__HP_MAX_MSG) {
    free(*msg);
    *msg = NULL;
    shm_free(m);
    return gpux__error(GPUX_E_INVALID, "the request has too many values for a handler");
  }
  return 0;
}

/* Sends a message, waits for the answer; *reply_j is the parsed answer and *map/ *map_size the
 * answer's memfd mapped read-only (NULL when none). */
static int call(gpux__handler *h, const char *what, const char *msg, int fd, cJSON **reply_j, void **map, size_t *map_size) {
  *reply_j = NULL;
  *map = NULL;
  *map_size = 0;
  worker *w;
  int rc = acquire(h, &w);
  if (rc) return rc;
  if (gpux__hp_send(w->fd, msg, strlen(msg), fd) < 0) {
    char why[160];
    int e = errno;
    stop_worker(w, e != EPIPE && e != ECONNRESET, why, sizeof why);
    release(h, w);
    return gpux__error(GPUX_E_HANDLER, "%s: %s: %s", h->name, what, why[0] ? why : strerror(e));
  }
  char *buf = gpux__malloc(GPUX__HP_MAX_MSG + 1);
  int rfd = -1;
  if (!buf) rc = GPUX_E_NOMEM;
  else rc = recv_msg(h, w, now_s() + h->timeout, what, buf, GPUX__HP_MAX_MSG + 1, &rfd);
  release(h, w);
  if (!rc) rc = parse_reply(h, buf, reply_j);
  free(buf);
  if (!rc && rfd >= 0) {
    struct stat sb;
    if (fstat(rfd, &sb) < 0) rc = gpux__error(GPUX_E_IO, "%s: %s: fstat: %s", h->name, what, strerror(errno));
    else if (sb.st_size > 0) {
      void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, rfd, 0);
      if (p == MAP_FAILED) rc = gpux__error(GPUX_E_IO, "%s: %s: mmap: %s", h->name, what, strerror(errno));
      else { *map = p; *map_size = (size_t)sb.st_size; }
    }
  }
  if (rfd >= 0) close(rfd);
  if (rc) { cJSON_Delete(*reply_j); *reply_j = NULL; }
  return rc;
}

/* A blob {"offset", "size"} of the answer's memfd, checked against its size. */
static int blob_of(gpux__handler *h, const char *what, const cJSON *o, size_t map_size, size_t *off, size_t *size) {
  const cJSON *of = cJSON_GetObjectItem(o, "offset"), *sz = cJSON_GetObjectItem(o, "size");
  if (!cJSON_IsNumber(of) || !cJSON_IsNumber(sz) || of->valuedouble < 0 || sz->valuedouble < 0 ||
      of->valuedouble + sz->valuedouble > (double)map_size)
    return gpux__error(GPUX_E_HANDLER, "%s: %s: the worker's answer points outside its data", h->name, what);
  *off = (size_t)of->valuedouble;
  *size = (size_t)sz->valuedouble;
  return 0;
}

/* Numbers of another type become the model's input type (numpy's float64 for a float32 input). */
static int convert_to(gpux_tensor *t, int dtype) {
  if (dtype == GPUX_DT_UNDEFINED || t->dtype == dtype || dtype == GPUX_DT_STRING) return 0;
  gpux_tensor c = {0};
  int rc = gpux_tensor_init(&c, dtype, t->ndim, t->dims);
  if (rc) return rc;
  int64_t n = gpux_tensor_count(t);
  for (int64_t i = 0; i < n; i++) gpux__store_f64(dtype, c.data, i, gpux__load_f64(t->dtype, t->data, i));
  gpux_tensor_free(t);
  *t = c;
  return 0;
}

int gpux__handler_preprocess(gpux__handler *h, const gpux_app *a, const gpux_handler_value *req, int n_req,
                             gpux__named_tensors *out) {
  memset(out, 0, sizeof *out);
  char *msg;
  shm m;
  int rc = build_message("preprocess", req, n_req, NULL, &msg, &m);
  if (rc) return rc;
  cJSON *j;
  void *map;
  size_t map_size;
  rc = call(h, "preprocess", msg, m.fd, &j, &map, &map_size);
  free(msg);
  shm_free(&m);
  if (rc) return rc;
  const cJSON *ts = cJSON_GetObjectItem(j, "tensors"), *tj;
  if (!cJSON_IsArray(ts)) rc = gpux__error(GPUX_E_HANDLER, "%s: preprocess: the worker's answer has no tensors", h->name);
  char names[512];
  size_t o = 0;
  names[0] = 0;
  int n_in = gpux__app_io_count(a, 0);
  for (int i = 0; i < n_in && o < sizeof names; i++) {
    gpux_value_info vi;
    if (!gpux__app_io_info(a, 0, i, &vi)) o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", vi.name);
  }
  cJSON_ArrayForEach(tj, ts) {
    if (rc) break;
    const cJSON *nm = cJSON_GetObjectItem(tj, "name"), *dt = cJSON_GetObjectItem(tj, "dtype"), *sh = cJSON_GetObjectItem(tj, "shape");
    size_t off, size;
    if (!cJSON_IsString(nm) || !cJSON_IsNumber(dt) || !cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > GPUX_MAX_DIMS) {
      rc = gpux__error(GPUX_E_HANDLER, "%s: preprocess: the worker's answer describes a tensor badly", h->name);
      break;
    }
    if ((rc = blob_of(h, "preprocess", tj, map_size, &off, &size))) break;
    int want = GPUX_DT_UNDEFINED, known = 0;
    for (int i = 0; i < n_in && !known; i++) {
      gpux_value_info vi;
      if (!gpux__app_io_info(a, 0, i, &vi) && !strcmp(vi.name, nm->valuestring)) { known = 1; want = vi.dtype; }
    }
    if (!known) {
      rc = gpux__error(GPUX_E_HANDLER, "%s: preprocess returned '%.64s', which is not an input of the model (inputs: %s)", h->name, nm->valuestring, names);
      break;
    }
    int dtype = (int)dt->valuedouble, ndim = cJSON_GetArraySize(sh);
    int64_t dims[GPUX_MAX_DIMS];
    const cJSON *d;
    int k = 0;
    cJSON_ArrayForEach(d, sh) dims[k++] = cJSON_IsNumber(d) && d->valuedouble >= 0 && d->valuedouble < 9e15 ? (int64_t)d->valuedouble : -1;
    for (k = 0; k < ndim && !rc; k++)
      if (dims[k] < 0) rc = gpux__error(GPUX_E_HANDLER, "%s: preprocess: '%s' has a bad shape", h->name, nm->valuestring);
    if (rc) break;
    if (dtype <= 0 || dtype == GPUX_DT_STRING || gpux_dtype_size(dtype) == 0) {
      rc = gpux__error(GPUX_E_HANDLER, "%s: preprocess: '%s' has dtype %d, which gpux does not take from a handler", h->name, nm->valuestring, dtype);
      break;
    }
    gpux_tensor t = {0};
    if ((rc = gpux_tensor_init(&t, dtype, ndim, dims))) break;
    if (t.nbytes != size) {
      gpux_tensor_free(&t);
      rc = gpux__error(GPUX_E_HANDLER, "%s: preprocess: '%s' holds %zu bytes, its shape needs %zu", h->name, nm->valuestring, size, t.nbytes);
      break;
    }
    if (size) memcpy(t.data, (const char *)map + off, size);
    if ((rc = convert_to(&t, want))) gpux__error_prefix(rc, "%s: preprocess: '%s': ", h->name, nm->valuestring);
    if (!rc) rc = gpux__named_tensors_add(out, nm->valuestring, &t);
    gpux_tensor_free(&t);
  }
  if (map) munmap(map, map_size);
  cJSON_Delete(j);
  if (rc) gpux__named_tensors_free(out);
  return rc;
}

int gpux__handler_postprocess(gpux__handler *h, const gpux__named_tensors *outputs, const gpux_handler_value *req,
                              int n_req, char **result_json) {
  *result_json = NULL;
  char *msg;
  shm m;
  int rc = build_message("postprocess", req, n_req, outputs, &msg, &m);
  if (rc) return gpux__error_prefix(rc, "%s: postprocess: ", h->name);
  cJSON *j;
  void *map;
  size_t map_size;
  rc = call(h, "postprocess", msg, m.fd, &j, &map, &map_size);
  free(msg);
  shm_free(&m);
  if (rc) return rc;
  const cJSON *res = cJSON_GetObjectItem(j, "result");
  size_t off, size;
  if (!res) rc = gpux__error(GPUX_E_HANDLER, "%s: postprocess: the worker's answer has no result", h->name);
  else rc = blob_of(h, "postprocess", res, map_size, &off, &size);
  if (!rc) {
    /* the result must be JSON (the worker checks too; a shared library's text is checked here) */
    cJSON *parsed = cJSON_ParseWithLength((const char *)map + off, size);
    if (!parsed) rc = gpux__error(GPUX_E_HANDLER, "%s: postprocess returned text that is not JSON", h->name);
    else if (!(*result_json = cJSON_PrintUnformatted(parsed))) rc = GPUX_E_NOMEM;
    cJSON_Delete(parsed);
  }
  if (map) munmap(map, map_size);
  cJSON_Delete(j);
  return rc;
}
