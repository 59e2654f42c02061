/* pull.c — `gpux pull REF`: fetches an image from an OCI registry into the local store; every
 * blob is verified against its digest, and an interrupted pull picks up where it stopped. */
#include "cli.h"
#include <cjson/cJSON.h>
#include <getopt.h>
#include <string.h>
#include <unistd.h>

int cli_is_remote_ref(const char *ref) {
  const char *slash = strchr(ref, '/');
  if (!slash || ref[0] == '.' || ref[0] == '/') return 0;
  /* as docker reads a reference: a first part with a '.' or a ':' (or localhost) is a registry */
  size_t n = (size_t)(slash - ref);
  return memchr(ref, '.', n) || memchr(ref, ':', n) || (n == 9 && !strncmp(ref, "localhost", 9));
}

int cli_pull_missing(gpux_store *st, const char *ref) {
  if (!cli_is_remote_ref(ref)) return 0;
  fprintf(stderr, "gpux: %s is not in the store; pulling it\n", ref);
  gpux_registry_options ro = {0};
  cli_transfer t = {.verb = "pull", .tty = isatty(2)};
  ro.progress = cli_transfer_progress;
  ro.progress_ctx = &t;
  char *summary = NULL;
  int rc = gpux_pull(st, ref, &ro, &summary);
  cli_transfer_end(&t);
  gpux_free(summary);
  if (rc) {
    fprintf(stderr, "gpux: error: %s\n", gpux_last_error());
    return rc;
  }
  return 1;
}

static void usage(FILE *f) {
  fprintf(f,
    "usage: gpux pull [OPTIONS] [HOST[:PORT]/]NAMESPACE/NAME[:TAG|@sha256:DIGEST]\n"
    "       gpux pull hf:OWNER/REPO[/FILE.onnx][@REVISION]\n\n"
    "Pulls an image from an OCI registry into the local store under the same name (an image\n"
    "pulled by digest is tagged sha256-DIGEST). Every blob is checked against its digest before it\n"
    "is stored; run pull again after an interruption and it resumes. Afterwards gpux run works\n"
    "offline.\n\n"
    "hf:OWNER/REPO fetches a Hugging Face model repository ($HF_ENDPOINT, default\n"
    "https://huggingface.co): its GPUXfile and the files it names, or else its ONNX model (FILE,\n"
    "model.onnx or onnx/model.onnx), and builds the image OWNER/REPO:REVISION (:latest for main).\n\n"
    "  --insecure            allow plain HTTP (always allowed for localhost and 127.0.0.1)\n"
    "  --limit-rate BYTES    at most BYTES per second\n"
    "  -u, --username USER   with --password-stdin: credentials for this pull only\n"
    "  --password-stdin      read the password from stdin\n"
    "  --json                print the summary as JSON on stdout\n"
    "  -q, --quiet           no progress lines\n");
}

int cmd_pull(int argc, char **argv) {
  gpux_registry_options ro = {0};
  cli_transfer t = {.verb = "pull"};
  int json = 0;
  char password[1024] = "";
  int ex = cli_registry_options(argc, argv, &ro, &t, &json, password, sizeof password, usage);
  if (ex >= 0) return ex;
  if (argc - optind != 1) { cli_error(0, "pull takes one reference (see gpux pull --help)"); return EXIT_USAGE; }
  gpux_store *st;
  int rc = gpux_store_open(NULL, &st);
  if (rc) { cli_error(rc, "cannot open the image store"); return cli_exit_code(rc); }
  char *summary = NULL;
  if (!strncmp(argv[optind], "hf:", 3)) { /* a Hugging Face repository: fetched and built here */
    gpux_build_options bo = {0};
    rc = gpux_pull_hub(st, argv[optind], &bo, &summary);
    memset(password, 0, sizeof password);
    gpux_store_close(st);
    if (rc) { fprintf(stderr, "gpux: error: %s\n", gpux_last_error()); return cli_exit_code(rc); }
    cJSON *s = cJSON_Parse(summary);
    const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(s, "reference"));
    if (json) puts(summary);
    else printf("Pulled %s as %s\n  digest    %s\nRun it: gpux run %s --input ...\n", argv[optind], ref ? ref : "?",
                cJSON_GetStringValue(cJSON_GetObjectItem(s, "digest")), ref ? ref : "?");
    cJSON_Delete(s);
    gpux_free(summary);
    return EXIT_OK;
  }
  rc = gpux_pull(st, argv[optind], &ro, &summary);
  memset(password, 0, sizeof password);
  cli_transfer_end(&t);
  gpux_store_close(st);
  if (rc) { fprintf(stderr, "gpux: error: %s\n", gpux_last_error()); return cli_exit_code(rc); }
  if (json) puts(summary);
  else {
    cJSON *s = cJSON_Parse(summary);
    char down[32];
    cli_human_size(cJSON_GetNumberValue(cJSON_GetObjectItem(s, "downloaded_bytes")), down, sizeof down);
    const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(s, "reference"));
    printf("Pulled %s\n  digest    %s\n  blobs     %d downloaded (%s), %d already in the store\nRun it: gpux run %s --input ...\n",
           ref, cJSON_GetStringValue(cJSON_GetObjectItem(s, "digest")),
           (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "blobs_downloaded")), down,
           (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "blobs_present")), ref);
    cJSON_Delete(s);
  }
  gpux_free(summary);
  return EXIT_OK;
}
