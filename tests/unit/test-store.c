/* test-store.c — the local image store: content addressing and deduplication, images and tags,
 * removal with garbage collection, corruption detection, concurrent writers, a writer killed
 * mid-write leaving the store readable, images of many layers, and builds racing removals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "store/store.h"

static char home[64];

static int setup(void **state) {
  (void)state;
  snprintf(home, sizeof home, "/tmp/gpux-store-XXXXXX");
  return mkdtemp(home) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", home);
  return system(cmd) == 0 ? 0 : -1;
}

static int count_blobs(void) {
  char dir[128];
  snprintf(dir, sizeof dir, "%s/blobs/sha256", home);
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static void test_blobs_and_images(void **state) {
  (void)state;
  gpux_store *st;
  assert_int_equal(gpux_store_open(home, &st), 0);
  gpux__blob_ref a, b;
  assert_int_equal(gpux__store_put_bytes(st, "hello", 5, &a), 0);
  assert_string_equal(a.digest, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  assert_int_equal(gpux__store_put_bytes(st, "hello", 5, &b), 0); /* stored once */
  assert_int_equal(count_blobs(), 1);

  char model[128], labels[128];
  snprintf(model, sizeof model, "%s/model.onnx", home);
  snprintf(labels, sizeof labels, "%s/labels.txt", home);
  write_text(model, "not really a model");
  write_text(labels, "cat\ndog\n");
  gpux__layer_src layers[] = {{model, "model.onnx", "application/vnd.onnx.model"},
                              {labels, "labels.txt", "text/plain"}};
  gpux__blob_ref m1;
  assert_int_equal(gpux__store_write_image(st, "demo:1", "{\"spec\":1}", layers, 2, &m1), 0);
  gpux__oci_image img;
  assert_int_equal(gpux__store_load_image(st, "demo:1", &img), 0);
  assert_int_equal(img.n_layers, 2);
  assert_string_equal(img.layers[1].title, "labels.txt");
  assert_string_equal(img.config_json, "{\"spec\":1}");
  char dir[512], path[600], buf[64] = "";
  assert_int_equal(gpux__oci_image_dir(st, &img, dir, sizeof dir), 0);
  snprintf(path, sizeof path, "%s/labels.txt", dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  assert_non_null(fgets(buf, sizeof buf, f));
  fclose(f);
  assert_string_equal(buf, "cat\n");
  gpux__oci_image_free(&img);

  /* tags, lookup by digest prefix, list */
  assert_int_equal(gpux_store_tag(st, "demo:1", "other"), 0);
  char prefix[20];
  snprintf(prefix, sizeof prefix, "%.12s", m1.digest + 7);
  gpux__blob_ref r;
  assert_int_equal(gpux__store_resolve(st, prefix, &r, NULL, 0), 0);
  assert_string_equal(r.digest, m1.digest);
  char *json;
  assert_int_equal(gpux_store_list(st, &json), 0);
  assert_non_null(strstr(json, "\"name\":\"demo\""));
  assert_non_null(strstr(json, "\"name\":\"other\",\"tag\":\"latest\""));
  gpux_free(json);
  assert_int_equal(gpux_store_inspect(st, "other", &json), 0);
  assert_non_null(strstr(json, "application/vnd.gpux.image.v1+json"));
  assert_non_null(strstr(json, "org.opencontainers.image.title"));
  gpux_free(json);

  /* removal: blobs stay while another tag uses them, go when none does */
  assert_int_equal(count_blobs(), 5); /* "hello" + config, manifest and two layers */
  assert_int_equal(gpux_store_remove(st, "demo:1"), 0);
  assert_int_equal(count_blobs(), 4); /* "hello" was used by no image */
  assert_int_equal(gpux_store_remove(st, "other"), 0);
  assert_int_equal(count_blobs(), 0);
  assert_int_equal(gpux_store_remove(st, "other"), GPUX_E_NOTFOUND);
  assert_int_equal(gpux__store_resolve(st, "NoSuch Name", &r, NULL, 0), GPUX_E_INVALID);
  gpux_store_close(st);
}

static void test_corruption_detected(void **state) {
  (void)state;
  gpux_store *st;
  assert_int_equal(gpux_store_open(home, &st), 0);
  char model[128];
  snprintf(model, sizeof model, "%s/weights.bin", home);
  write_text(model, "0123456789");
  gpux__layer_src layer = {model, "weights.bin", "application/octet-stream"};
  assert_int_equal(gpux__store_write_image(st, "bad", "{}", &layer, 1, NULL), 0);
  gpux__oci_image img;
  assert_int_equal(gpux__store_load_image(st, "bad", &img), 0);
  char blob[512], dir[512];
  gpux__store_blob_path(st, img.layers[0].blob.digest, blob, sizeof blob);
  write_text(blob, "0123456780"); /* same size, different content */
  assert_int_equal(gpux__oci_image_dir(st, &img, dir, sizeof dir), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "corrupt"));
  gpux__oci_image_free(&img);
  gpux_store_close(st);
}

static void test_concurrent_writers(void **state) {
  (void)state;
  enum { WRITERS = 6, TAGS = 15 };
  for (int w = 0; w < WRITERS; w++) {
    if (fork() == 0) {
      gpux_store *st;
      if (gpux_store_open(home, &st)) _exit(1);
      for (int t = 0; t < TAGS; t++) {
        char ref[64], cfg[64];
        snprintf(ref, sizeof ref, "w%d:t%d", w, t);
        snprintf(cfg, sizeof cfg, "{\"w\":%d,\"t\":%d}", w, t);
        if (gpux__store_write_image(st, ref, cfg, NULL, 0, NULL)) _exit(2);
      }
      gpux_store_close(st);
      _exit(0);
    }
  }
  for (int w = 0; w < WRITERS; w++) {
    int status;
    wait(&status);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  gpux_store *st;
  assert_int_equal(gpux_store_open(home, &st), 0);
  for (int w = 0; w < WRITERS; w++)
    for (int t = 0; t < TAGS; t++) {
      char ref[64];
      gpux__blob_ref r;
      snprintf(ref, sizeof ref, "w%d:t%d", w, t);
      assert_int_equal(gpux__store_resolve(st, ref, &r, NULL, 0), 0); /* no update was lost */
    }
  gpux_store_close(st);
}

static void test_killed_writer(void **state) {
  (void)state;
  char big[128];
  snprintf(big, sizeof big, "%s/big.bin", home);
  FILE *f = fopen(big, "wb");
  char chunk[1 << 16];
  memset(chunk, 7, sizeof chunk);
  for (int i = 0; i < 512; i++) fwrite(chunk, 1, sizeof chunk, f); /* 32 MiB */
  fclose(f);
  for (int attempt = 0; attempt < 3; attempt++) {
    pid_t pid = fork();
    if (pid == 0) {
      gpux_store *st;
      if (gpux_store_open(home, &st)) _exit(1);
      for (int i = 0;; i++) {
        char ref[32];
        snprintf(ref, sizeof ref, "big:%d", i);
        gpux__layer_src layer = {big, "big.bin", "application/octet-stream"};
        gpux__store_write_image(st, ref, "{}", &layer, 1, NULL);
      }
    }
    usleep(20000 + attempt * 15000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    gpux_store *st;
    assert_int_equal(gpux_store_open(home, &st), 0);
    char *json;
    assert_int_equal(gpux_store_list(st, &json), 0); /* the index still parses */
    gpux_free(json);
    gpux__blob_ref r;
    if (gpux__store_resolve(st, "big:0", &r, NULL, 0) == 0) {
      gpux__oci_image img;
      assert_int_equal(gpux__store_load_image(st, "big:0", &img), 0);
      assert_int_equal(gpux__store_verify_blob(st, &img.layers[0].blob), 0);
      gpux__oci_image_free(&img);
    }
    gpux_store_close(st);
  }
}

/* An image with more layers than the collector once kept (64 digests per image) loses none of
 * them when another image is removed. */
static void test_many_layers(void **state) {
  (void)state;
  enum { N = 100 };
  gpux_store *st;
  assert_int_equal(gpux_store_open(home, &st), 0);
  static char paths[N][128], titles[N][32];
  gpux__layer_src layers[N];
  for (int i = 0; i < N; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/part%03d.bin", home, i);
    snprintf(titles[i], sizeof titles[i], "part%03d.bin", i);
    char text[32];
    snprintf(text, sizeof text, "external data %d\n", i);
    write_text(paths[i], text);
    layers[i] = (gpux__layer_src){paths[i], titles[i], "application/octet-stream"};
  }
  assert_int_equal(gpux__store_write_image(st, "big:1", "{\"big\":1}", layers, N, NULL), 0);
  assert_int_equal(gpux__store_write_image(st, "small:1", "{\"small\":1}", layers, 1, NULL), 0);
  assert_int_equal(gpux_store_remove(st, "small:1"), 0);
  assert_int_equal(count_blobs(), N + 2); /* every layer, the config and the manifest of big:1 */
  gpux__oci_image img;
  char dir[512];
  assert_int_equal(gpux__store_load_image(st, "big:1", &img), 0);
  assert_int_equal(img.n_layers, N);
  assert_int_equal(gpux__oci_image_dir(st, &img, dir, sizeof dir), 0); /* verifies every layer */
  gpux__oci_image_free(&img);
  gpux_store_close(st);
}

/* While a lease is held, rm collects nothing; the garbage goes with the next rm after release. */
static void test_lease_blocks_gc(void **state) {
  (void)state;
  gpux_store *st;
  assert_int_equal(gpux_store_open(home, &st), 0);
  int lease = gpux__store_lease(st);
  assert_true(lease >= 0);
  gpux__blob_ref pending;
  assert_int_equal(gpux__store_put_bytes(st, "not tagged yet", 14, &pending), 0);
  assert_int_equal(gpux__store_write_image(st, "x:1", "{\"x\":1}", NULL, 0, NULL), 0);
  assert_int_equal(gpux_store_remove(st, "x:1"), 0);
  assert_true(gpux__store_has_blob(st, &pending));
  gpux__store_release(lease);
  assert_int_equal(gpux__store_write_image(st, "y:1", "{\"y\":1}", NULL, 0, NULL), 0);
  assert_int_equal(gpux_store_remove(st, "y:1"), 0);
  assert_false(gpux__store_has_blob(st, &pending));
  assert_int_equal(count_blobs(), 0);
  gpux_store_close(st);
}

/* Builds (new config and layers each time) while another process keeps removing images, for
 * two seconds: every build that reports success must leave a readable image, and an image that
 * is not removed keeps all its blobs. Without leases the collector deleted blobs written but not
 * yet tagged. */
static void test_build_races_rm(void **state) {
  (void)state;
  gpux_store *st;
  assert_int_equal(gpux_store_open(home, &st), 0);
  char keep_path[128];
  snprintf(keep_path, sizeof keep_path, "%s/keep.bin", home);
  write_text(keep_path, "a layer of an image nobody removes");
  gpux__layer_src keep = {keep_path, "keep.bin", "application/octet-stream"};
  assert_int_equal(gpux__store_write_image(st, "keep:1", "{\"keep\":1}", &keep, 1, NULL), 0);
  pid_t pid = fork();
  if (pid == 0) { /* the remover: tags and removes images, so each rm collects */
    gpux_store *s2;
    if (gpux_store_open(home, &s2)) _exit(1);
    for (int i = 0;; i++) {
      char ref[32], cfg[32];
      snprintf(ref, sizeof ref, "junk:%d", i);
      snprintf(cfg, sizeof cfg, "{\"junk\":%d}", i);
      if (gpux__store_write_image(s2, ref, cfg, NULL, 0, NULL) || gpux_store_remove(s2, ref)) _exit(2);
    }
  }
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  char layer_path[128];
  snprintf(layer_path, sizeof layer_path, "%s/layer.bin", home);
  int builds = 0, failures = 0;
  do {
    char cfg[64], text[64], ref[32];
    snprintf(cfg, sizeof cfg, "{\"build\":%d}", builds);
    snprintf(text, sizeof text, "weights of build %d", builds);
    snprintf(ref, sizeof ref, "app:%d", builds % 4);
    write_text(layer_path, text);
    gpux__layer_src layer = {layer_path, "weights.bin", "application/octet-stream"};
    assert_int_equal(gpux__store_write_image(st, ref, cfg, &layer, 1, NULL), 0);
    gpux__oci_image img;
    char dir[512];
    int rc = gpux__store_load_image(st, ref, &img);
    if (!rc) rc = gpux__oci_image_dir(st, &img, dir, sizeof dir);
    if (!rc) gpux__oci_image_free(&img);
    if (rc) { failures++; fprintf(stderr, "build %d: %s\n", builds, gpux_last_error()); }
    builds++;
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 2000);
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFSIGNALED(status)); /* the remover never failed */
  assert_true(builds > 10);
  assert_int_equal(failures, 0);
  gpux__oci_image img;
  char dir[512];
  assert_int_equal(gpux__store_load_image(st, "keep:1", &img), 0);
  assert_int_equal(gpux__oci_image_dir(st, &img, dir, sizeof dir), 0);
  gpux__oci_image_free(&img);
  gpux_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_blobs_and_images, setup, teardown),
    cmocka_unit_test_setup_teardown(test_corruption_detected, setup, teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_killed_writer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_many_layers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_lease_blocks_gc, setup, teardown),
    cmocka_unit_test_setup_teardown(test_build_races_rm, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
