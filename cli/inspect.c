/* inspect.c — `gpux inspect NAME [--json]`: everything about an image: its spec (inputs, outputs,
 * pre/post-processing), the build record (device, backend, measured latency and memory, the ops
 * and where each ran, CPU fallbacks and why) and its layers with their digests. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *get(const cJSON *o, const char *path) {
  char key[128];
  while (o && *path) {
    size_t n = strcspn(path, ".");
    snprintf(key, sizeof key, "%.*s", (int)n, path);
    o = cJSON_GetObjectItem(o, key);
    path += n + (path[n] == '.');
  }
  return o;
}

static const char *str(const cJSON *o, const char *path) {
  const char *s = cJSON_GetStringValue(get(o, path));
  return s ? s : "";
}

static double num(const cJSON *o, const char *path) { return cJSON_GetNumberValue(get(o, path)); }

static void human_size(double b, char *buf, size_t len) {
  const char *u[] = {"B", "kB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4) { b /= 1000; i++; }
  snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void shape_text(const cJSON *io, char *buf, size_t len) {
  const cJSON *sh = cJSON_GetObjectItem(io, "shape"), *d;
  size_t o = (size_t)snprintf(buf, len, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(io, "dtype")) ?
                                              cJSON_GetStringValue(cJSON_GetObjectItem(io, "dtype")) : "?");
  if (!sh) return;
  o += (size_t)snprintf(buf + o, len - o, "[");
  int i = 0;
  cJSON_ArrayForEach(d, sh) {
    if (o >= len) break;
    if (cJSON_IsString(d)) o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", d->valuestring);
    else o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? ", " : "", (int)d->valuedouble);
    i++;
  }
  if (o < len) snprintf(buf + o, len - o, "]");
}

static void print_io(const char *title, const cJSON *list) {
  const cJSON *io;
  printf("%s:\n", title);
  cJSON_ArrayForEach(io, list) {
    char sh[256];
    shape_text(io, sh, sizeof sh);
    printf("  %-20s %-7s %s", str(io, "name"), str(io, "type"), sh);
    const cJSON *labels = cJSON_GetObjectItem(io, "labels");
    if (cJSON_IsString(labels)) printf("  labels from %s", labels->valuestring);
    else if (cJSON_IsArray(labels)) printf("  %d labels", cJSON_GetArraySize(labels));
    putchar('\n');
  }
}

static void print_pre(const cJSON *spec) {
  const cJSON *pre = cJSON_GetObjectItem(spec, "preprocessing");
  if (!pre) return;
  const cJSON *im = cJSON_GetObjectItem(pre, "image");
  if (im) {
    printf("preprocessing:\n  image -> %s: %d channels %s", str(im, "input"), (int)num(im, "channels"), str(im, "color_order"));
    const cJSON *r = cJSON_GetObjectItem(im, "resize");
    if (get(r, "width")) printf(", resize to %dx%d", (int)num(r, "width"), (int)num(r, "height"));
    else if (get(r, "height")) {
      printf(", resize to height %d keeping the aspect", (int)num(r, "height"));
      if (get(r, "min_width")) printf(", width at least %d", (int)num(r, "min_width"));
      if (get(r, "max_width")) printf(", at most %d", (int)num(r, "max_width"));
    } else if (get(r, "shorter")) printf(", shorter side to %d", (int)num(r, "shorter"));
    else if (get(r, "longer")) printf(", longer side to %d", (int)num(r, "longer"));
    if (get(im, "center_crop")) printf(", center crop %dx%d", (int)num(im, "center_crop.width"), (int)num(im, "center_crop.height"));
    char *mean = cJSON_PrintUnformatted(get(im, "mean")), *std = cJSON_PrintUnformatted(get(im, "std"));
    printf(", (px/%g - %s) / %s, %s\n", num(im, "scale"), mean ? mean : "0", std ? std : "1", str(im, "layout"));
    free(mean);
    free(std);
  }
  const cJSON *au = cJSON_GetObjectItem(pre, "audio");
  if (au) {
    if (!im) printf("preprocessing:\n");
    printf("  audio -> %s: WAV", str(au, "input"));
    if (get(au, "sample_rate")) printf(", resampled to %d Hz", (int)num(au, "sample_rate"));
    if (get(au, "features")) printf(", %s log-mel features (%d bins)\n", str(au, "features"), (int)num(au, "mel_bins"));
    else printf(", normalize %s\n", str(au, "normalize"));
  }
  const cJSON *tk = cJSON_GetObjectItem(pre, "tokenizer");
  if (tk) {
    if (!im && !au) printf("preprocessing:\n");
    printf("  tokenizer (%s) from %s", str(tk, "type"), str(tk, "vocab"));
    if (get(tk, "max_length")) printf(", max_length %d", (int)num(tk, "max_length"));
    putchar('\n');
  }
}

static void print_post(const cJSON *spec) {
  const cJSON *pp = cJSON_GetObjectItem(spec, "postprocessing"), *p;
  if (!pp) return;
  printf("postprocessing:\n");
  cJSON_ArrayForEach(p, pp) {
    printf("  %s:", str(p, "output"));
    if (get(p, "ctc")) printf(" CTC greedy decode, charset %s%s", str(p, "ctc.charset"), cJSON_IsTrue(get(p, "ctc.add_space")) ? " + space" : "");
    else {
      if (strcmp(str(p, "activation"), "none")) printf(" %s,", str(p, "activation"));
      if (get(p, "top_k")) printf(" top %d", (int)num(p, "top_k"));
      if (get(p, "threshold")) printf(" score >= %g", num(p, "threshold"));
      const cJSON *l = cJSON_GetObjectItem(p, "labels");
      if (cJSON_IsString(l)) printf(", labels from %s", l->valuestring);
      else if (cJSON_IsArray(l)) printf(", %d labels", cJSON_GetArraySize(l));
    }
    putchar('\n');
  }
}

/* b: the image's build record; local: when it was built in this store and what its smoke run
 * measured (not part of the image: a pulled image has none) */
static void print_build(const cJSON *b, const cJSON *local, const cJSON *manifest) {
  if (!b) return;
  char mem[32];
  const char *created = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(manifest, "annotations"),
                                                                  "org.opencontainers.image.created"));
  if (local && !created) created = str(local, "created");   /* SOURCE_DATE_EPOCH's time first */
  if (!created) created = "";
  printf("build:\n  created   %s by gpux %s from %s\n", *created ? created : "-", str(b, "gpux_version"), str(b, "context"));
  printf("  device    %s (backend %s)\n", str(b, "device.name"), str(b, "backend"));
  if (cJSON_IsTrue(get(b, "smoke_run.skipped")))
    printf("  latency   not measured (built with --no-smoke)\n");
  else if (local)
    printf("  latency   %.1f ms median, %.1f ms p90, first run %.1f ms (smoke run, %d runs)\n",
           num(local, "smoke_run.latency_ms.median"), num(local, "smoke_run.latency_ms.p90"),
           num(local, "smoke_run.first_run_ms"), (int)num(local, "smoke_run.runs"));
  else
    printf("  latency   not measured here (the image was not built in this store)\n");
  if (local && num(local, "smoke_run.peak_rss_bytes") > 0) {
    human_size(num(local, "smoke_run.peak_rss_bytes"), mem, sizeof mem);
    printf("  memory    %s peak resident\n", mem);
  }
  const cJSON *m;
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(b, "models")) {
    char dm[48] = "";
    if (num(m, "device_memory_bytes") > 0) {
      human_size(num(m, "device_memory_bytes"), mem, sizeof mem);
      snprintf(dm, sizeof dm, ", %s of device memory", mem);
    }
    printf("model %s%s%s (opset %d, %d nodes%s):\n", str(m, "file"), get(m, "step") ? " - step " : "", str(m, "step"),
           (int)num(m, "opset"), (int)num(m, "nodes"), dm);
    const cJSON *op, *dev;
    cJSON_ArrayForEach(op, cJSON_GetObjectItem(m, "ops")) {
      printf("  %-22s", op->string);
      cJSON_ArrayForEach(dev, op) printf(" %s x%d", dev->string, (int)dev->valuedouble);
      putchar('\n');
    }
    const cJSON *fb = cJSON_GetObjectItem(m, "fallbacks"), *f;
    if (cJSON_GetArraySize(fb)) {
      printf("  fell back to the CPU:\n");
      cJSON_ArrayForEach(f, fb)
        printf("    node %d %s '%s': %s\n", (int)num(f, "node"), str(f, "op"), str(f, "name"), str(f, "why"));
    }
  }
}

int cmd_inspect(int argc, char **argv) {
  const char *ref = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: gpux inspect NAME[:TAG] [--json]\n\n"
             "Shows an image: its inputs and outputs, pre- and post-processing, the device and\n"
             "backend it was built on, measured latency and memory, every op and where it ran\n"
             "(with the reason for each CPU fallback), and its layers with their digests.\n");
      return EXIT_OK;
    } else if (!ref) ref = argv[i];
    else { cli_error(0, "inspect takes one NAME (see gpux inspect --help)"); return EXIT_USAGE; }
  }
  if (!ref) { cli_error(0, "inspect needs a NAME (see gpux list)"); return EXIT_USAGE; }
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  char *out = NULL;
  rc = gpux_store_inspect(st, ref, &out);
  gpux_store_close(st);
  if (rc) {
    fprintf(stderr, "gpux: error: %s\n", gpux_last_error());
    return cli_exit_code(rc);
  }
  if (json) {
    puts(out);
    gpux_free(out);
    return EXIT_OK;
  }
  cJSON *j = cJSON_Parse(out);
  gpux_free(out);
  const cJSON *spec = get(j, "config.spec"), *build = get(j, "config.build");
  printf("%s  %s\n", str(j, "reference"), str(j, "digest"));
  if (get(spec, "description")) printf("  %s\n", str(spec, "description"));
  if (get(spec, "pipeline")) {
    printf("pipeline (%s):", str(spec, "pipeline.mode"));
    const cJSON *s;
    cJSON_ArrayForEach(s, get(spec, "pipeline.steps")) printf(" %s", str(s, "name"));
    putchar('\n');
  }
  print_io("inputs", cJSON_GetObjectItem(spec, "inputs"));
  print_io("outputs", cJSON_GetObjectItem(spec, "outputs"));
  print_pre(spec);
  print_post(spec);
  printf("runtime: backend %s, precision %s\n", str(spec, "runtime.backend"), str(spec, "runtime.precision"));
  if (!strcmp(str(spec, "runtime.precision"), "fp16") && strcmp(str(spec, "runtime.backend"), "cpu")) {
    char why[400]; /* fp16 takes a WebGPU device with f16 shaders: say what this machine does */
    int ok = gpux_fp16_available(why, sizeof why);
    printf("  on this machine: %s (%s)\n", ok ? "fp16" : "fp32", why);
  }
  if (get(spec, "handler")) { /* user code: what it is, what it needs, what build saw it define */
    const cJSON *h = get(spec, "handler"), *req = cJSON_GetObjectItem(h, "requirements"), *r;
    printf("handler: %s (timeout %gs", str(h, "file"), num(h, "timeout"));
    if (get(build, "handler")) {
      printf("; %s", cJSON_IsTrue(get(build, "handler.preprocess")) ? "preprocess" : "");
      printf("%s%s", cJSON_IsTrue(get(build, "handler.preprocess")) && cJSON_IsTrue(get(build, "handler.postprocess")) ? ", " : "",
             cJSON_IsTrue(get(build, "handler.postprocess")) ? "postprocess" : "");
    }
    printf(")\n");
    if (cJSON_IsString(req)) printf("  requirements: %s\n", req->valuestring);
    else if (cJSON_IsArray(req)) {
      printf("  requirements:");
      cJSON_ArrayForEach(r, req) printf(" %s", cJSON_GetStringValue(r) ? cJSON_GetStringValue(r) : "?");
      printf("\n");
    }
  }
  print_build(build, get(j, "local"), get(j, "manifest"));
  const cJSON *tuning = get(j, "tuning"), *rec;
  if (cJSON_IsString(tuning)) printf("tuning: %s (runs use the defaults)\n", tuning->valuestring);
  cJSON_ArrayForEach(rec, cJSON_GetObjectItem(tuning, "records")) /* GEMM tuning, one record per GPU */
    printf("tuning: %d of %d GEMM shapes on %s (driver %s, %s), %g s\n", cJSON_GetArraySize(get(rec, "gemms")),
           (int)num(rec, "shapes"), str(rec, "adapter.name"), str(rec, "adapter.driver"), str(rec, "adapter.library"),
           num(rec, "seconds"));
  printf("layers:\n");
  const cJSON *l;
  double total = 0;
  cJSON_ArrayForEach(l, get(j, "manifest.layers")) {
    char size[32];
    human_size(num(l, "size"), size, sizeof size);
    total += num(l, "size");
    const cJSON *ann = cJSON_GetObjectItem(l, "annotations");
    printf("  %.19s  %9s  %-32s %s\n", str(l, "digest"), size,
           cJSON_GetStringValue(cJSON_GetObjectItem(ann, "org.opencontainers.image.title")), str(l, "mediaType"));
  }
  char size[32];
  human_size(total + num(j, "manifest.config.size"), size, sizeof size);
  printf("  total %s\n", size);
  cJSON_Delete(j);
  return EXIT_OK;
}
