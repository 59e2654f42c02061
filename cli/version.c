/* version.c — `gpux version`: what a bug report needs in one place: the command's and the
 * library's versions (they differ when a program picks up another libgpux), and the devices the
 * library finds, with the WebGPU implementation it loaded. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <string.h>

int cmd_version(int argc, char **argv) {
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: gpux version [--json]\n\n"
             "Prints the versions of gpux and of the library it runs, the ONNX operator sets models\n"
             "may import, the WebGPU implementation loaded and the devices found (see gpux devices\n"
             "for their details).\n");
      return EXIT_OK;
    } else {
      cli_error(0, "version: unexpected '%s' (see gpux version --help)", argv[i]);
      return EXIT_USAGE;
    }
  }
  gpux_device_info devs[16];
  char note[1024] = "";
  int n = gpux_devices(devs, 16, note, sizeof note);
  if (n < 0) n = 0;
  if (n > 16) n = 16;
  const char *webgpu_lib = NULL;
  for (int i = 0; i < n; i++)
    if (!strcmp(devs[i].backend, "webgpu") && devs[i].library[0]) webgpu_lib = devs[i].library;
  static const char *const domains[] = {"ai.onnx", "ai.onnx.ml"};
  int lo[2] = {0}, hi[2] = {0};
  for (int i = 0; i < 2; i++) gpux_opset_range(domains[i], &lo[i], &hi[i]);
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "gpux", GPUX_VERSION);
    cJSON_AddStringToObject(o, "library", gpux_version());
    cJSON *ops = cJSON_AddObjectToObject(o, "opsets");
    for (int i = 0; i < 2; i++) {
      cJSON *r = cJSON_AddObjectToObject(ops, domains[i]);
      cJSON_AddNumberToObject(r, "min", lo[i]);
      cJSON_AddNumberToObject(r, "max", hi[i]);
    }
    if (webgpu_lib) cJSON_AddStringToObject(o, "webgpu_library", webgpu_lib);
    else cJSON_AddStringToObject(o, "webgpu_note", note);
    cJSON *d = cJSON_AddArrayToObject(o, "devices");
    for (int i = 0; i < n; i++) {
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "backend", devs[i].backend);
      cJSON_AddStringToObject(e, "name", devs[i].name);
      if (devs[i].api[0]) cJSON_AddStringToObject(e, "api", devs[i].api);
      if (devs[i].type[0]) cJSON_AddStringToObject(e, "type", devs[i].type);
      cJSON_AddItemToArray(d, e);
    }
    char *t = cJSON_PrintUnformatted(o);
    puts(t ? t : "{}");
    cJSON_free(t);
    cJSON_Delete(o);
    return EXIT_OK;
  }
  printf("gpux      %s\n", GPUX_VERSION);
  printf("library   %s\n", gpux_version());
  printf("opsets    ai.onnx %d-%d, ai.onnx.ml %d-%d\n", lo[0], hi[0], lo[1], hi[1]);
  printf("webgpu    %s\n", webgpu_lib ? webgpu_lib : note[0] ? note : "not found");
  for (int i = 0; i < n; i++) {
    if (!strcmp(devs[i].backend, "cpu")) printf("device    cpu: %s (%d threads)\n", devs[i].name, devs[i].threads);
    else printf("device    %s: %s (%s, %s)\n", devs[i].backend, devs[i].name, devs[i].api, devs[i].type);
  }
  return EXIT_OK;
}
