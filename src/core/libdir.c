/* libdir.c — where libgpux's code was loaded from, for the files installed beside it (the WebGPU
 * library's default locations, the handler worker programs). */
#include "core/internal.h"
#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <unistd.h>

/* libgpux.so's folder, or that of the program linking libgpux.a: for the main program dladdr
 * gives argv[0], so /proc/self/exe is asked instead. */
int gpux__library_dir(char *dir, size_t cap) {
  Dl_info info;
  struct link_map *map = NULL;
  char path[PATH_MAX];
  if (!dladdr1((void *)gpux__library_dir, &info, (void **)&map, RTLD_DL_LINKMAP) || !map) return -1;
  if (map->l_name && map->l_name[0]) snprintf(path, sizeof path, "%s", map->l_name);
  else {
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len <= 0) return -1;
    path[len] = 0;
  }
  char *slash = strrchr(path, '/');
  if (!slash) return -1;
  *slash = 0;
  snprintf(dir, cap, "%s", path[0] ? path : "/");
  return 0;
}
