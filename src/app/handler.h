/* handler.h — a GPUXfile's `handler:` on gpux's side: a small pool of worker processes that run
 * the user's pre/post-processing code (Python through handler-runner.py, or a shared library
 * through the gpux-handler executable), isolated from the process that calls them (handler.c);
 * and the trust list that decides whether an image's handler may run (trust.c). */
#ifndef GPUX_APP_HANDLER_H
#define GPUX_APP_HANDLER_H

#include "app/app.h"

typedef struct gpux__handler gpux__handler;

/* Starts the first worker of spec->handler (the file resolved against spec->dir, run with the
 * image's folder `dir` as its working folder): load errors of the user's code surface here, as
 * one line naming the file. At most spec->handler.workers processes run at once. */
int gpux__handler_open(const gpux__spec *spec, gpux__handler **out);
void gpux__handler_close(gpux__handler *h);
/* Does the handler define preprocess (which = 0) / postprocess (1)? */
int gpux__handler_has(const gpux__handler *h, int which);
/* The handler's file name (for messages) and its kind ("python", "native"). */
const char *gpux__handler_name(const gpux__handler *h);

/* The request a handler sees, from the app's inputs: each value under its name, unnamed ones as
 * "input", "input2", ...; text as text, bytes as bytes (borrowed from inputs). */
int gpux__handler_request(const gpux_app_input *inputs, int n_inputs, gpux_handler_value **req, char ***names);
void gpux__handler_request_free(gpux_handler_value *req, char **names, int n);

/* Calls preprocess(request) -> the inputs of the app `a` (out, zeroed on entry; numbers converted
 * to the dtype each input takes). Errors are one line naming
 * the handler's file; a worker that crashed or ran past handler.timeout is killed and replaced
 * by a new one for the next call. */
int gpux__handler_preprocess(gpux__handler *h, const gpux_app *a, const gpux_handler_value *req, int n_req,
                             gpux__named_tensors *out);
/* Calls postprocess(outputs, request) -> *result_json (malloc'ed JSON text). */
int gpux__handler_postprocess(gpux__handler *h, const gpux__named_tensors *outputs,
                              const gpux_handler_value *req, int n_req, char **result_json);

/* trust.c: $GPUX_HOME/trusted-handlers lists, one per line, the manifest digests of images whose
 * handler may run without --allow-handler; gpux build adds the images it makes. */
int gpux__trust_has(gpux_store *st, const char *digest);
int gpux__trust_add(gpux_store *st, const char *digest, const char *ref);
/* The trust list's path, for messages. */
void gpux__trust_path(gpux_store *st, char *buf, size_t len);

#endif
