/* cache.c — Dawn's blob cache on disk: what Dawn compiles for a pipeline (the translated shader,
 * the driver's pipeline cache data) is kept under $GPUX_HOME/cache/pipelines/<device key>/, so a
 * new process (a `gpux run` after `gpux build`) does not compile every pipeline again. The device
 * key hashes the adapter, its driver and the WebGPU library file, so another GPU, driver or Dawn
 * build starts a cache of its own. One file per entry, named by a hash of Dawn's key and holding
 * the whole key (a different key with the same name is a miss), written to a temporary file and
 * renamed; an entry that does not read back whole and with its checksum is ignored. The folder is
 * kept under a size limit (GPUX_WEBGPU_CACHE_MAX MiB, default 256) by removing the entries used
 * least recently. GPUX_WEBGPU_CACHE=0 turns it off. */
#include "backend/webgpu/wg.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "gpuxbc1"          /* 8 bytes with its NUL */

struct wg_cache {
  pthread_mutex_t mu;                  /* Dawn may call from its own threads */
  char dir[4096];
  uint64_t limit;                      /* bytes the folder may hold */
  uint64_t bytes;                      /* what it holds (known after the first scan) */
  int scanned;
  unsigned serial;                     /* temporary file names */
  /* the entry the last size query read, for the load that follows it */
  uint64_t last_hash[2];
  void *last_value;
  size_t last_size;
  uint64_t hits, misses, stores;
};

typedef struct {
  char magic[8];
  uint64_t key_size, value_size;
  uint64_t checksum;                   /* of the value */
} entry_header;

static uint64_t hash64(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603ull ^ seed;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  h ^= h >> 33; /* finalizer: spreads the last bytes into every bit */
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static int mkdirs(const char *path) {
  char p[4096];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      if (mkdir(p, 0755) && errno != EEXIST) return -1;
      *s = '/';
    }
  return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

wg_cache *gpux__wg_cache_open(const wg_device *d) {
  const char *off = getenv("GPUX_WEBGPU_CACHE");
  if (off && !strcmp(off, "0")) return NULL;
  char home[3000];
  const char *gh = getenv("GPUX_HOME"), *h = getenv("HOME");
  if (gh && *gh) snprintf(home, sizeof home, "%s", gh);
  else if (h && *h) snprintf(home, sizeof home, "%s/.gpux", h);
  else return NULL;
  /* the device key: adapter, driver, and the library's identity (its size and time) */
  char ident[2048];
  struct stat st;
  memset(&st, 0, sizeof st);
  stat(d->lib_path, &st);
  int n = snprintf(ident, sizeof ident, "%s|%s|%s|%u|%u|%d|%d|%s|%lld|%lld", d->name, d->driver, d->vendor, d->vendor_id,
                   d->device_id, d->backend_type, d->adapter_type, d->lib_path, (long long)st.st_size, (long long)st.st_mtime);
  if (n < 0) return NULL;
  wg_cache *c = gpux__calloc(1, sizeof *c);
  if (!c) return NULL;
  pthread_mutex_init(&c->mu, NULL);
  snprintf(c->dir, sizeof c->dir, "%s/cache/pipelines/%016llx", home,
           (unsigned long long)hash64(ident, strlen(ident), 0));
  const char *mx = getenv("GPUX_WEBGPU_CACHE_MAX");
  double mib = mx ? atof(mx) : 256;
  c->limit = (uint64_t)((mib > 0 ? mib : 256) * 1048576.0);
  if (mkdirs(c->dir)) {
    gpux__log(GPUX_LOG_NOTE, "the pipeline cache is off: cannot make %s: %s", c->dir, strerror(errno));
    gpux__wg_cache_close(c);
    return NULL;
  }
  /* a note for people: what this folder is for */
  char info[4200];
  snprintf(info, sizeof info, "%s/device.txt", c->dir);
  if (access(info, F_OK)) {
    FILE *f = fopen(info, "w");
    if (f) {
      fprintf(f, "adapter: %s\ndriver: %s\nlibrary: %s\n", d->name, d->driver, d->lib_path);
      fclose(f);
    }
  }
  return c;
}

void gpux__wg_cache_close(wg_cache *c) {
  if (!c) return;
  if (getenv("GPUX_WEBGPU_VERBOSE"))
    gpux__log(GPUX_LOG_DEBUG, "webgpu: pipeline cache %s: %llu hits, %llu misses, %llu stored", c->dir,
              (unsigned long long)c->hits, (unsigned long long)c->misses, (unsigned long long)c->stores);
  free(c->last_value);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* Marks and notes are files beside the entries (names with a dot, so trim leaves them): facts
 * about this device key that a later process may rely on ("self-test.ok": its self-test passed),
 * and what a process wants the next to know (warm.c: the pipelines a graph needed). */
int gpux__wg_cache_marked(const wg_cache *c, const char *mark) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", c->dir, mark);
  return access(path, F_OK) == 0;
}

void gpux__wg_cache_mark(wg_cache *c, const char *mark) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", c->dir, mark);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
}

int gpux__wg_cache_note_read(const wg_cache *c, const char *name, char **data, size_t *size) {
  *data = NULL;
  *size = 0;
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  char *buf = NULL;
  int ok = fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < ((off_t)1 << 28) &&
           (buf = malloc((size_t)st.st_size + 1)) && read(fd, buf, (size_t)st.st_size) == (ssize_t)st.st_size;
  close(fd);
  if (!ok) {
    free(buf);
    return -1;
  }
  buf[st.st_size] = 0;
  *data = buf;
  *size = (size_t)st.st_size;
  return 0;
}

void gpux__wg_cache_note_write(wg_cache *c, const char *name, const void *data, size_t size) {
  char path[4400], tmp[4500];
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  pthread_mutex_lock(&c->mu);
  snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%u", c->dir, (long)getpid(), c->serial++);
  pthread_mutex_unlock(&c->mu);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int ok = fd >= 0 && write(fd, data, size) == (ssize_t)size;
  if (fd >= 0 && close(fd)) ok = 0;
  if (!ok || rename(tmp, path)) unlink(tmp);
}

void gpux__wg_cache_counts(wg_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *stores) {
  pthread_mutex_lock(&c->mu);
  *hits = c->hits, *misses = c->misses, *stores = c->stores;
  pthread_mutex_unlock(&c->mu);
}

static void entry_path(const wg_cache *c, const uint64_t hash[2], char *out, size_t len) {
  snprintf(out, len, "%s/%016llx%016llx", c->dir, (unsigned long long)hash[0], (unsigned long long)hash[1]);
}

/* Reads the entry of `key` whole and checked: its value (allocated) and size; -1 when there is
 * none or it is damaged. */
static int read_entry(const char *path, const void *key, size_t key_size, void **value, size_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  entry_header h;
  struct stat st;
  int ok = fstat(fd, &st) == 0 && read(fd, &h, sizeof h) == (ssize_t)sizeof h && !memcmp(h.magic, CACHE_MAGIC, 8) &&
           h.key_size == key_size && h.value_size < ((uint64_t)1 << 31) &&
           (uint64_t)st.st_size == sizeof h + h.key_size + h.value_size;
  void *k = ok ? malloc(key_size + 1) : NULL, *v = ok ? malloc(h.value_size + 1) : NULL;
  ok = ok && k && v && read(fd, k, key_size) == (ssize_t)key_size && !memcmp(k, key, key_size) &&
       read(fd, v, h.value_size) == (ssize_t)h.value_size && hash64(v, h.value_size, 1) == h.checksum;
  close(fd);
  free(k);
  if (!ok) {
    free(v);
    return -1;
  }
  *value = v;
  *size = h.value_size;
  return 0;
}

/* Dawn's load function: the size of key's value (value NULL), or a copy of it into value. */
size_t gpux__wg_cache_load(const void *key, size_t key_size, void *value, size_t value_size, void *userdata) {
  wg_cache *c = userdata;
  uint64_t hash[2] = {hash64(key, key_size, 0), hash64(key, key_size, 0x9e3779b97f4a7c15ull)};
  size_t got = 0;
  pthread_mutex_lock(&c->mu);
  int cached = c->last_value && c->last_hash[0] == hash[0] && c->last_hash[1] == hash[1];
  if (!cached) {
    char path[4200];
    entry_path(c, hash, path, sizeof path);
    void *v;
    size_t n;
    if (read_entry(path, key, key_size, &v, &n) == 0) {
      free(c->last_value);
      c->last_value = v;
      c->last_size = n;
      c->last_hash[0] = hash[0], c->last_hash[1] = hash[1];
      cached = 1;
      utimensat(AT_FDCWD, path, NULL, 0); /* used now: the last to go when the folder is full */
    }
  }
  if (cached) {
    got = c->last_size;
    if (value && value_size >= got) {
      memcpy(value, c->last_value, got);
      c->hits++;
      free(c->last_value); /* served: the next load reads again */
      c->last_value = NULL;
    }
  } else if (!value) {
    c->misses++;
  }
  pthread_mutex_unlock(&c->mu);
  return got;
}

typedef struct {
  char name[300];
  struct timespec mtime;
  uint64_t size;
} file_item;

static int cmp_mtime(const void *a, const void *b) {
  const file_item *x = a, *y = b;
  if (x->mtime.tv_sec != y->mtime.tv_sec) return (x->mtime.tv_sec > y->mtime.tv_sec) - (x->mtime.tv_sec < y->mtime.tv_sec);
  return (x->mtime.tv_nsec > y->mtime.tv_nsec) - (x->mtime.tv_nsec < y->mtime.tv_nsec);
}

/* Keeps the folder under its limit: the entries used least recently go first, down to 3/4 of it.
 * Also counts what the folder holds (on the first store). */
static void trim(wg_cache *c) {
  DIR *dir = opendir(c->dir);
  if (!dir) return;
  file_item *items = NULL;
  int n = 0, cap = 0;
  uint64_t total = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    if (strlen(e->d_name) != 32) continue; /* entries only */
    char path[4400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", c->dir, e->d_name);
    if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 256;
      file_item *ni = realloc(items, (size_t)cap * sizeof *ni);
      if (!ni) break;
      items = ni;
    }
    snprintf(items[n].name, sizeof items[n].name, "%s", e->d_name);
    items[n].mtime = st.st_mtim;
    items[n].size = (uint64_t)st.st_size;
    total += items[n++].size;
  }
  closedir(dir);
  if (total > c->limit) {
    qsort(items, (size_t)n, sizeof *items, cmp_mtime);
    for (int i = 0; i < n && total > c->limit / 4 * 3; i++) {
      char path[4400];
      snprintf(path, sizeof path, "%s/%s", c->dir, items[i].name);
      if (!unlink(path)) total -= items[i].size;
    }
  }
  free(items);
  c->bytes = total;
  c->scanned = 1;
}

/* Dawn's store function: the entry is written to a temporary file, then renamed into place. */
void gpux__wg_cache_store(const void *key, size_t key_size, const void *value, size_t value_size, void *userdata) {
  wg_cache *c = userdata;
  uint64_t hash[2] = {hash64(key, key_size, 0), hash64(key, key_size, 0x9e3779b97f4a7c15ull)};
  entry_header h;
  memcpy(h.magic, CACHE_MAGIC, 8);
  h.key_size = key_size;
  h.value_size = value_size;
  h.checksum = hash64(value, value_size, 1);
  pthread_mutex_lock(&c->mu);
  char path[4200], tmp[4300];
  entry_path(c, hash, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%u", c->dir, (long)getpid(), c->serial++);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int ok = fd >= 0 && write(fd, &h, sizeof h) == (ssize_t)sizeof h && write(fd, key, key_size) == (ssize_t)key_size &&
           write(fd, value, value_size) == (ssize_t)value_size;
  if (fd >= 0 && close(fd)) ok = 0;
  if (ok && rename(tmp, path) == 0) {
    c->stores++;
    c->bytes += sizeof h + key_size + value_size;
    if (!c->scanned || c->bytes > c->limit) trim(c);
  } else if (fd >= 0) {
    unlink(tmp);
  }
  pthread_mutex_unlock(&c->mu);
}
