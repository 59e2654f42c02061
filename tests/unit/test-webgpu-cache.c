/* test-webgpu-cache.c — Dawn's blob cache on disk (backend/webgpu/cache.c), without a GPU: what
 * is stored loads back in a new process's cache (the same folder), a damaged or truncated entry
 * is a miss, another adapter or driver gets a folder of its own, the folder stays under its size
 * limit with the entries used last kept, nothing temporary is left behind, and
 * GPUX_WEBGPU_CACHE=0 turns it off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "backend/webgpu/wg.h"

static char home[256];

static void fake_device(wg_device *d, const char *driver) {
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "Test GPU");
  snprintf(d->driver, sizeof d->driver, "%s", driver);
  snprintf(d->lib_path, sizeof d->lib_path, "/nonexistent/libwebgpu_dawn.so");
  d->vendor_id = 0x10de;
}

/* The entries of the folder of the device with this driver (found by its device.txt): count and
 * total bytes, the path of one in `first`; *tmp counts temporary files left. */
static int entries(const char *driver, uint64_t *bytes, int *tmp, char first[4200]) {
  char dir[512], want[300];
  snprintf(dir, sizeof dir, "%s/cache/pipelines", home);
  snprintf(want, sizeof want, "driver: %s\n", driver);
  DIR *top = opendir(dir);
  assert_non_null(top);
  struct dirent *e;
  int n = 0;
  *bytes = 0, *tmp = 0;
  while ((e = readdir(top))) {
    if (e->d_name[0] == '.') continue;
    char sub[1024], info[1100], text[2048] = "";
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    snprintf(info, sizeof info, "%s/device.txt", sub);
    FILE *f = fopen(info, "r");
    if (f) {
      size_t got = fread(text, 1, sizeof text - 1, f);
      text[got] = 0;
      fclose(f);
    }
    if (!strstr(text, want)) continue;
    DIR *dd = opendir(sub);
    struct dirent *fe;
    while (dd && (fe = readdir(dd))) {
      if (!strncmp(fe->d_name, ".tmp", 4)) (*tmp)++;
      if (strlen(fe->d_name) != 32) continue;
      char p[4200];
      struct stat st;
      snprintf(p, sizeof p, "%s/%s", sub, fe->d_name);
      if (stat(p, &st)) continue;
      if (!n && first) snprintf(first, 4200, "%s", p);
      n++;
      *bytes += (uint64_t)st.st_size;
    }
    if (dd) closedir(dd);
  }
  closedir(top);
  return n;
}

static int setup(void **state) {
  (void)state;
  snprintf(home, sizeof home, "/tmp/gpux-cache-test-XXXXXX");
  assert_non_null(mkdtemp(home));
  setenv("GPUX_HOME", home, 1);
  unsetenv("GPUX_WEBGPU_CACHE");
  unsetenv("GPUX_WEBGPU_CACHE_MAX");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
  return system(cmd) != 0;
}

static void test_round_trip(void **state) {
  (void)state;
  wg_device d;
  fake_device(&d, "driver 1");
  wg_cache *c = gpux__wg_cache_open(&d);
  assert_non_null(c);
  unsigned char value[1000], back[1000];
  for (int i = 0; i < 1000; i++) value[i] = (unsigned char)(i * 7);
  gpux__wg_cache_store("key one", 7, value, sizeof value, c);
  assert_int_equal(gpux__wg_cache_load("key two", 7, NULL, 0, c), 0);
  gpux__wg_cache_close(c);
  /* another process: the same folder */
  c = gpux__wg_cache_open(&d);
  assert_int_equal(gpux__wg_cache_load("key one", 7, NULL, 0, c), sizeof value); /* Dawn asks the size */
  memset(back, 0, sizeof back);
  assert_int_equal(gpux__wg_cache_load("key one", 7, back, sizeof back, c), sizeof value);
  assert_memory_equal(back, value, sizeof value);
  assert_int_equal(gpux__wg_cache_load("key one!", 8, NULL, 0, c), 0);
  gpux__wg_cache_close(c);
  /* another driver: a folder of its own */
  wg_device other;
  fake_device(&other, "driver 2");
  c = gpux__wg_cache_open(&other);
  assert_non_null(c);
  assert_int_equal(gpux__wg_cache_load("key one", 7, NULL, 0, c), 0);
  gpux__wg_cache_close(c);
  uint64_t bytes;
  int tmp;
  assert_int_equal(entries("driver 1", &bytes, &tmp, NULL), 1);
  assert_int_equal(tmp, 0);
}

static void test_damaged_entries(void **state) {
  (void)state;
  wg_device d;
  fake_device(&d, "driver 3");
  wg_cache *c = gpux__wg_cache_open(&d);
  unsigned char value[300] = {1, 2, 3};
  gpux__wg_cache_store("damaged", 7, value, sizeof value, c);
  gpux__wg_cache_close(c);
  char path[4200];
  uint64_t bytes;
  int tmp;
  assert_int_equal(entries("driver 3", &bytes, &tmp, path), 1);
  /* a flipped byte in the value: its checksum no longer matches */
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, -10, SEEK_END);
  fputc(0x5a, f);
  fclose(f);
  c = gpux__wg_cache_open(&d);
  assert_int_equal(gpux__wg_cache_load("damaged", 7, NULL, 0, c), 0);
  /* stored again, then cut short: a miss, not a crash */
  gpux__wg_cache_store("damaged", 7, value, sizeof value, c);
  assert_int_equal(gpux__wg_cache_load("damaged", 7, NULL, 0, c), sizeof value);
  unsigned char back[300];
  assert_int_equal(gpux__wg_cache_load("damaged", 7, back, sizeof back, c), sizeof value);
  assert_int_equal(truncate(path, 100), 0);
  assert_int_equal(gpux__wg_cache_load("damaged", 7, NULL, 0, c), 0);
  gpux__wg_cache_close(c);
}

static void test_size_limit(void **state) {
  (void)state;
  setenv("GPUX_WEBGPU_CACHE_MAX", "0.02", 1); /* MiB: about 20 KiB */
  wg_device d;
  fake_device(&d, "driver 4");
  wg_cache *c = gpux__wg_cache_open(&d);
  static unsigned char value[4096];
  char key[32];
  for (int i = 0; i < 20; i++) {
    snprintf(key, sizeof key, "entry %d", i);
    value[0] = (unsigned char)i;
    gpux__wg_cache_store(key, strlen(key), value, sizeof value, c);
  }
  uint64_t bytes;
  int tmp;
  int n = entries("driver 4", &bytes, &tmp, NULL);
  assert_true(bytes <= (uint64_t)(0.02 * 1048576));
  assert_true(n >= 2 && n < 20);
  assert_int_equal(tmp, 0);
  /* the last stored is kept, the first is gone */
  assert_int_equal(gpux__wg_cache_load("entry 19", 8, NULL, 0, c), sizeof value);
  assert_int_equal(gpux__wg_cache_load("entry 0", 7, NULL, 0, c), 0);
  gpux__wg_cache_close(c);
  unsetenv("GPUX_WEBGPU_CACHE_MAX");
}

static void test_off(void **state) {
  (void)state;
  wg_device d;
  fake_device(&d, "driver 5");
  setenv("GPUX_WEBGPU_CACHE", "0", 1);
  assert_null(gpux__wg_cache_open(&d));
  unsetenv("GPUX_WEBGPU_CACHE");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip), cmocka_unit_test(test_damaged_entries),
    cmocka_unit_test(test_size_limit), cmocka_unit_test(test_off),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
