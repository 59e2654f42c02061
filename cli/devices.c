/* devices.c — `gpux devices [--json]`: the devices gpux can run models on — each WebGPU adapter
 * (name, vendor, API, type, driver, key limits, shader-f16/subgroups/subgroup-matrix; for the
 * adapter sessions use, whether f16 shaders compile there, which is what fp16 precision needs)
 * and the CPU backend — and, when no adapter is found, why. */
#include "cli.h"
#include <getopt.h>
#include <string.h>

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

/* Whether f16 shaders compile on the adapter sessions use (the first listed: the one a
 * high-performance request gets), and why (gpux_fp16_available, which makes the device to try
 * one); not tried where the adapter does not list shader-f16. */
typedef struct {
  int ok;
  char why[400];
} f16_shaders;

static void print_json(const gpux_device_info *d, int n, const char *note, const f16_shaders *f16) {
  printf("{\"devices\": [");
  for (int i = 0; i < n; i++) {
    printf("%s\n  {\"backend\": ", i ? "," : "");
    json_str(d[i].backend);
    printf(", \"name\": ");
    json_str(d[i].name);
    if (!strcmp(d[i].backend, "cpu")) {
      printf(", \"type\": \"cpu\", \"threads\": %d}", d[i].threads);
      continue;
    }
    printf(", \"vendor\": ");
    json_str(d[i].vendor);
    printf(", \"architecture\": ");
    json_str(d[i].architecture);
    printf(", \"api\": ");
    json_str(d[i].api);
    printf(", \"type\": ");
    json_str(d[i].type);
    printf(", \"driver\": ");
    json_str(d[i].driver);
    printf(", \"vendor_id\": %u, \"device_id\": %u", d[i].vendor_id, d[i].device_id);
    printf(", \"library\": ");
    json_str(d[i].library);
    printf(",\n   \"limits\": {\"max_buffer_size\": %llu, \"max_storage_buffer_binding_size\": %llu, "
           "\"max_compute_workgroup_storage_size\": %u, \"max_compute_invocations_per_workgroup\": %u, "
           "\"max_compute_workgroup_size\": [%u, %u, %u], \"max_compute_workgroups_per_dimension\": %u, "
           "\"max_storage_buffers_per_stage\": %u, \"min_storage_buffer_offset_alignment\": %u, "
           "\"subgroup_min_size\": %u, \"subgroup_max_size\": %u},\n",
           (unsigned long long)d[i].max_buffer_size, (unsigned long long)d[i].max_storage_buffer_binding_size,
           d[i].max_compute_workgroup_storage_size, d[i].max_compute_invocations_per_workgroup,
           d[i].max_compute_workgroup_size[0], d[i].max_compute_workgroup_size[1], d[i].max_compute_workgroup_size[2],
           d[i].max_compute_workgroups_per_dimension, d[i].max_storage_buffers_per_stage,
           d[i].min_storage_buffer_offset_alignment, d[i].subgroup_min_size, d[i].subgroup_max_size);
    printf("   \"features\": {\"shader_f16\": %s, \"subgroups\": %s, \"subgroup_matrix\": %s},\n", d[i].shader_f16 ? "true" : "false",
           d[i].subgroups ? "true" : "false", d[i].subgroup_matrix ? "true" : "false");
    if (i == 0) {
      printf("   \"f16_shaders\": %s, \"f16_shaders_note\": ", f16->ok ? "true" : "false");
      json_str(f16->why);
      printf(",\n");
    }
    printf("   \"all_features\": ");
    json_str(d[i].features);
    printf(", \"subgroup_matrix_configs\": ");
    json_str(d[i].matrix_configs);
    printf("}");
  }
  printf("\n]");
  if (note && note[0]) {
    printf(", \"note\": ");
    json_str(note);
  }
  printf("}\n");
}

static void print_size(const char *label, unsigned long long v) {
  if (v >= (1ull << 30) && v % (1ull << 30) == 0) printf("    %-34s %llu GiB\n", label, v >> 30);
  else if (v >= (1ull << 20) && v % (1ull << 20) == 0) printf("    %-34s %llu MiB\n", label, v >> 20);
  else if (v >= (1ull << 10) && v % (1ull << 10) == 0) printf("    %-34s %llu KiB\n", label, v >> 10);
  else printf("    %-34s %llu\n", label, v);
}

static void print_text(const gpux_device_info *d, int n, const char *note, const f16_shaders *f16) {
  for (int i = 0; i < n; i++) {
    if (!strcmp(d[i].backend, "cpu")) {
      printf("cpu     %s (%d threads)\n", d[i].name, d[i].threads);
      continue;
    }
    printf("webgpu  %s\n", d[i].name);
    printf("    %-34s %s\n", "vendor", d[i].vendor[0] ? d[i].vendor : "?");
    if (d[i].architecture[0]) printf("    %-34s %s\n", "architecture", d[i].architecture);
    printf("    %-34s %s\n", "api", d[i].api);
    printf("    %-34s %s\n", "type", d[i].type);
    printf("    %-34s %s\n", "driver", d[i].driver[0] ? d[i].driver : "?");
    printf("    %-34s 0x%04x / 0x%04x\n", "vendor / device id", d[i].vendor_id, d[i].device_id);
    print_size("max buffer", d[i].max_buffer_size);
    print_size("max storage binding", d[i].max_storage_buffer_binding_size);
    print_size("workgroup memory", d[i].max_compute_workgroup_storage_size);
    printf("    %-34s %u (x %u, y %u, z %u)\n", "invocations per workgroup", d[i].max_compute_invocations_per_workgroup,
           d[i].max_compute_workgroup_size[0], d[i].max_compute_workgroup_size[1], d[i].max_compute_workgroup_size[2]);
    printf("    %-34s %u\n", "storage buffers per shader", d[i].max_storage_buffers_per_stage);
    printf("    %-34s %u\n", "storage offset alignment", d[i].min_storage_buffer_offset_alignment);
    if (d[i].subgroup_max_size) printf("    %-34s %u..%u\n", "subgroup size", d[i].subgroup_min_size, d[i].subgroup_max_size);
    printf("    %-34s shader-f16 %s, subgroups %s, subgroup matrix %s\n", "features", d[i].shader_f16 ? "yes" : "no",
           d[i].subgroups ? "yes" : "no", d[i].subgroup_matrix ? "yes" : "no");
    if (i == 0 && f16->ok) printf("    %-34s yes\n", "f16 shaders (fp16 precision)");
    else if (i == 0) printf("    %-34s no (%s)\n", "f16 shaders (fp16 precision)", f16->why);
    if (d[i].matrix_configs[0]) printf("    %-34s %s\n", "subgroup matrices", d[i].matrix_configs);
    if (d[i].features[0]) printf("    %-34s %s\n", "all features", d[i].features);
    printf("    %-34s %s\n", "library", d[i].library);
  }
  if (note && note[0]) printf("note: %s\n", note);
}

static int usage(FILE *f, int code) {
  fprintf(f, "usage: gpux devices [--json]\n\n"
             "Lists the devices gpux can run on: each WebGPU adapter (name, vendor, API, type, driver,\n"
             "limits, features; for the adapter sessions use, whether f16 shaders compile there, which\n"
             "fp16 precision needs) and the CPU. The WebGPU library is $GPUX_WEBGPU_LIB, else the one\n"
             "installed with gpux, else libwebgpu_dawn.so / libwgpu_native.so on the library path.\n\n"
             "options:\n  --json       machine-readable output\n  -h, --help   this help\n");
  return code;
}

int cmd_devices(int argc, char **argv) {
  static const struct option longopts[] = {{"json", no_argument, 0, 'J'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int c, json = 0;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    if (c == 'J') json = 1;
    else if (c == 'h') return usage(stdout, EXIT_OK);
    else return cli_bad_option("devices", argv, c);
  }
  if (optind < argc) {
    cli_error(0, "devices takes no arguments (see gpux devices --help)");
    return EXIT_USAGE;
  }
  gpux_device_info devs[16];
  char note[1024];
  int n = gpux_devices(devs, 16, note, sizeof note);
  if (n < 0) {
    cli_error(n, "listing devices");
    return cli_exit_code(n);
  }
  if (n > 16) n = 16;
  f16_shaders f16 = {0, "the WebGPU adapter has no shader-f16"};
  if (n > 0 && !strcmp(devs[0].backend, "webgpu") && devs[0].shader_f16) f16.ok = gpux_fp16_available(f16.why, sizeof f16.why);
  if (json) print_json(devs, n, note, &f16);
  else print_text(devs, n, note, &f16);
  return EXIT_OK;
}
