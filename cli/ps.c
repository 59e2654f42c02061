/* ps.c — `gpux ps`: the running servers (name, models, address, pid, uptime, requests served),
 * from their state files under $GPUX_HOME/servers/ and each one's GET /health; with -a also the
 * servers that are gone: stopped (with their exit status) or killed. A state file stays until a
 * server of the same name starts again. Also the helpers serve, logs and stop share. */
#include "cli.h"
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int servers_dir(gpux_store *st, char *dir, size_t len) {
  snprintf(dir, len, "%s/servers", gpux_store_path(st));
  if (mkdir(dir, 0755) && errno != EEXIST) return -1;
  return 0;
}

int servers_valid_name(const char *name) {
  if (!*name || strlen(name) > 200 || name[0] == '.') return 0;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
      return 0;
  return 1;
}

int servers_pid_alive(int pid) {
  if (pid <= 0 || (kill(pid, 0) && errno != EPERM)) return 0;
  char p[64], buf[256];
  snprintf(p, sizeof p, "/proc/%d/stat", pid);
  FILE *f = fopen(p, "r");
  if (!f) return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *e = strrchr(buf, ')');
  return !(e && e[1] == ' ' && (e[2] == 'Z' || e[2] == 'X'));   /* a zombie is gone */
}

int servers_read(const char *path, server_info *out) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[16384];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  cJSON *j = cJSON_Parse(buf);
  if (!j) return -1;
  const char *s;
  if ((s = cJSON_GetStringValue(cJSON_GetObjectItem(j, "name")))) snprintf(out->name, sizeof out->name, "%s", s);
  if ((s = cJSON_GetStringValue(cJSON_GetObjectItem(j, "host")))) snprintf(out->host, sizeof out->host, "%s", s);
  if ((s = cJSON_GetStringValue(cJSON_GetObjectItem(j, "log")))) snprintf(out->log, sizeof out->log, "%s", s);
  out->pid = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "pid"));
  out->port = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "port"));
  out->started = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "started"));
  const cJSON *ex = cJSON_GetObjectItem(j, "exited");
  out->exited = cJSON_IsNumber(ex) ? ex->valuedouble : 0;
  out->exit_code = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "exit_code"));
  const cJSON *m;
  size_t o = 0;
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(j, "models"))
    if (cJSON_IsString(m) && o < sizeof out->models)
      o += (size_t)snprintf(out->models + o, sizeof out->models - o, "%s%s", o ? "," : "", m->valuestring);
  cJSON_Delete(j);
  out->alive = servers_pid_alive(out->pid);
  return 0;
}

/* GET http://host:port/path: the body in *body (malloc'ed); the HTTP status, or -1. */
static int servers_http_get(const char *host, int port, const char *path, char **body) {
  *body = NULL;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  const char *h = !strcmp(host, "0.0.0.0") ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, h, &a.sin_addr) != 1) return -1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) { close(fd); return -1; }
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, h);
  if (write(fd, req, (size_t)n) != n) { close(fd); return -1; }
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap + 1);
  ssize_t got;
  while (buf && (got = read(fd, buf + len, cap - len)) > 0) {
    len += (size_t)got;
    if (len == cap) { char *nb = realloc(buf, cap * 2 + 1); if (!nb) { free(buf); buf = NULL; break; } buf = nb; cap *= 2; }
  }
  close(fd);
  if (!buf) return -1;
  buf[len] = 0;
  int status = -1;
  if (sscanf(buf, "HTTP/%*s %d", &status) != 1) { free(buf); return -1; }
  char *b = strstr(buf, "\r\n\r\n");
  *body = strdup(b ? b + 4 : "");
  free(buf);
  return status;
}

static void usage(FILE *f) {
  fprintf(f, "usage: gpux ps [-a] [-q] [--format json|table|TEMPLATE] [--json]\n\n"
             "Lists the running servers (gpux serve): name, models, address, pid, uptime, requests\n"
             "served and the device their models run on (cpu, webgpu).\n"
             "  -a, --all          also the servers that are gone: stopped (exit status) or killed\n"
             "  -q, --quiet        only the server names\n"
             "  --format json      [{\"name\",\"models\":[...],\"host\",\"port\",\"pid\",\"uptime_s\",\"requests\",\"backends\":{MODEL:B},\"status\"}]\n"
             "                     (also --json)\n"
             "  --format TEMPLATE  one line per server, e.g. '{{.Name}} {{.Port}}'\n");
}

static const char *uptime_text(double s, char *buf, size_t len) {
  if (s < 120) snprintf(buf, len, "%.0fs", s);
  else if (s < 7200) snprintf(buf, len, "%.0fm", s / 60);
  else if (s < 172800) snprintf(buf, len, "%.0fh", s / 3600);
  else snprintf(buf, len, "%.0fd", s / 86400);
  return buf;
}

int cmd_ps(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"quiet", no_argument, 0, 'q'},
                                       {"all", no_argument, 0, 'a'},
                                       {"format", required_argument, 0, 'f'}, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  cli_format fmt = {CLI_FORMAT_TABLE, NULL};
  int c, all = 0;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":aqh", opts, NULL)) != -1) {
    if (c == 'a') { all = 1; continue; }
    if (c == 'j') fmt.kind = CLI_FORMAT_JSON;
    else if (c == 'q') fmt.kind = CLI_FORMAT_QUIET;
    else if (c == 'f') { if (cli_format_parse(optarg, &fmt)) return EXIT_USAGE; }
    else if (c == 'h') { usage(stdout); return EXIT_OK; }
    else return cli_bad_option("ps", argv, c);
  }
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  char dir[4096];
  if (servers_dir(st, dir, sizeof dir)) { cli_error(0, "%s: %s", dir, strerror(errno)); gpux_store_close(st); return EXIT_RUNTIME; }
  gpux_store_close(st);
  DIR *d = opendir(dir);
  struct dirent *e;
  cJSON *arr = cJSON_CreateArray();
  int as_json = fmt.kind != CLI_FORMAT_TABLE;
  if (!as_json) printf("%-20s %-30s %-22s %-8s %-8s %-9s %-8s %s\n", "NAME", "MODELS", "ADDRESS", "PID", "UPTIME", "REQUESTS", "DEVICE", "STATUS");
  while (d && (e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n < 6 || strcmp(e->d_name + n - 5, ".json")) continue;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    server_info si;
    if (servers_read(path, &si)) continue;
    if (!si.alive && !all) continue;
    char *body = NULL;
    double requests = -1;
    const char *status = "unreachable";
    char gone[64], device[64] = "";
    cJSON *backends = NULL;   /* {"model": "cpu"|"webgpu"} from /health */
    if (!si.alive) { /* a server that stopped writes its exit status; one that was killed cannot */
      if (si.exited > 0) snprintf(gone, sizeof gone, "exited (%d)", si.exit_code);
      else snprintf(gone, sizeof gone, "killed");
      status = gone;
    } else if (servers_http_get(si.host, si.port, "/health", &body) == 200) {
      cJSON *h = cJSON_Parse(body);
      requests = cJSON_GetNumberValue(cJSON_GetObjectItem(h, "requests"));
      backends = cJSON_DetachItemFromObject(h, "backends");
      const cJSON *b;
      size_t dl = 0;
      cJSON_ArrayForEach(b, backends) /* the backends in use, each once: "cpu", "webgpu", "cpu,webgpu" */
        if (cJSON_IsString(b) && !strstr(device, b->valuestring) && dl < sizeof device)
          dl += (size_t)snprintf(device + dl, sizeof device - dl, "%s%s", dl ? "," : "", b->valuestring);
      status = cJSON_IsTrue(cJSON_GetObjectItem(h, "ready")) ? "ready" : "loading";
      cJSON_Delete(h);
    }
    free(body);
    double up = si.alive ? (double)time(NULL) - si.started : si.exited > 0 ? si.exited - si.started : 0;
    if (as_json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", si.name);
      cJSON *models = cJSON_AddArrayToObject(o, "models"); /* si.models is "a,b" */
      for (const char *m = si.models, *comma; *m; m = comma ? comma + 1 : m + strlen(m)) {
        comma = strchr(m, ',');
        char one[sizeof si.models];
        snprintf(one, sizeof one, "%.*s", comma ? (int)(comma - m) : (int)strlen(m), m);
        cJSON_AddItemToArray(models, cJSON_CreateString(one));
      }
      cJSON_AddStringToObject(o, "host", si.host);
      cJSON_AddNumberToObject(o, "port", si.port);
      cJSON_AddNumberToObject(o, "pid", si.pid);
      cJSON_AddNumberToObject(o, "uptime_s", up);
      cJSON_AddNumberToObject(o, "requests", requests);
      cJSON_AddItemToObject(o, "backends", backends ? backends : cJSON_CreateObject());
      backends = NULL;
      cJSON_AddStringToObject(o, "status", si.alive ? status : si.exited > 0 ? "exited" : "killed");
      if (!si.alive && si.exited > 0) cJSON_AddNumberToObject(o, "exit_code", si.exit_code);
      cJSON_AddItemToArray(arr, o);
    } else {
      char addr[100], ut[32], rq[32];
      snprintf(addr, sizeof addr, "%s:%d", si.host, si.port);
      snprintf(rq, sizeof rq, requests >= 0 ? "%.0f" : "-", requests);
      printf("%-20s %-30s %-22s %-8d %-8s %-9s %-8s %s\n", si.name, si.models, addr, si.pid,
             si.alive || si.exited > 0 ? uptime_text(up, ut, sizeof ut) : "-", rq, device[0] ? device : "-", status);
    }
    cJSON_Delete(backends);   /* NULL when the JSON row took it */
  }
  if (d) closedir(d);
  int bad = as_json && cli_format_print(&fmt, arr, "name", stdout);
  cJSON_Delete(arr);
  return bad ? EXIT_USAGE : EXIT_OK;
}
