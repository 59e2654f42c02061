/* serve.h — the HTTP server's internal interface: one slot per served app (its worker thread,
 * its bounded request queue, its metrics), the jobs that travel from HTTP threads to a slot's
 * worker (batcher.c), the Open Inference Protocol v2 mapping between JSON and tensors (oip.c),
 * the friendly /predict form (predict.c) and the Prometheus text (metrics.c). serve.c owns the
 * libmicrohttpd daemon, routing and the lifecycle. */
#ifndef GPUX_SERVE_H
#define GPUX_SERVE_H

#include "app/app.h"
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- histograms (Prometheus "le" buckets) ---- */
#define GPUX__DUR_BUCKETS 14
#define GPUX__BATCH_BUCKETS 8
typedef struct {
  uint64_t counts[16];          /* per bucket (not cumulative); the last is +Inf */
  double sum;
  uint64_t n;
} gpux__hist;
extern const double gpux__dur_buckets[GPUX__DUR_BUCKETS];     /* seconds */
extern const double gpux__batch_buckets[GPUX__BATCH_BUCKETS]; /* requests' rows per run */
void gpux__hist_observe(gpux__hist *h, const double *bounds, int n_bounds, double v);

/* ---- jobs ---- */
typedef enum {
  GPUX__JOB_TENSORS = 0,        /* model inputs in, model outputs out (OIP v2); batchable */
  GPUX__JOB_APP = 1,            /* gpux_app_run on app inputs; answers run's JSON (/predict) */
  GPUX__JOB_GENERATE = 2,       /* gpux_app_generate on a prompt (/v1/completions, .../generate) */
} gpux__job_kind;

typedef struct gpux__job gpux__job;
struct gpux__job {
  gpux__job *next;              /* in the slot's queue */
  int kind;                     /* gpux__job_kind */
  int refs;                     /* the requester and, once submitted, the worker */
  gpux__named_tensors in;       /* TENSORS: the first model's inputs, by name */
  int64_t rows;                 /* TENSORS: dims[0] shared by every input; 0 = not batchable */
  gpux_app_input *app_in;       /* APP: (n_app_in), owning the bytes/texts in `owned` */
  int n_app_in;
  void **owned;
  int n_owned;
  /* results, set by the worker */
  int running;                  /* taken by the worker into the run it is forming or running */
  int timed_out;                /* its waiter gave up (and counted it out of running_live) */
  int done;
  int rc;                       /* 0 or a gpux error */
  char err[1024];               /* gpux_last_error() of a failure */
  gpux__named_tensors out;      /* TENSORS: the outputs of this request's rows */
  char *json;                   /* APP, GENERATE: the run's JSON */
  /* GENERATE */
  gpux_generate_options gen;    /* on_token is set by the worker when `stream` */
  int stream;                   /* pieces of text are kept in `pieces` as they come */
  char *pieces;                 /* NUL-terminated pieces, one after another (under the slot's mu) */
  size_t pieces_len, pieces_cap;
  int abandoned;                /* the client went away: stop generating */
  void *slot;                   /* the gpux__slot running it (for the token callback) */
  double t_enq, t_start, t_end; /* ms on gpux__now_ms's clock */
};

/* ---- one served app ---- */
typedef struct {
  char name[128];               /* how URLs name it: the image name without tag */
  char ref[512];                /* as given on the command line */
  char version[64];
  gpux_app *app;                /* NULL until loaded */
  int ready;                    /* loaded and warmed up */
  double load_s;                /* open + warm-up */
  int batchable;                /* one model whose inputs and outputs all lead with a batch dim */
  int max_batch;                /* rows per run */
  int gen_batching;             /* generation requests share decode steps (max_batch > 1) */
  double delay_ms;              /* how long the first job of a batch waits for company */
  int max_queue;
  double timeout_s;
  pthread_mutex_t mu;
  pthread_cond_t cv_work;       /* signalled when a job is queued or on stop */
  pthread_cond_t cv_done;       /* broadcast when jobs finish */
  gpux__job *head, *tail;       /* the queue */
  int queued;
  int stopping;
  int has_worker;
  int running_live;             /* requests of the worker's current run still waiting for it */
  pthread_t worker;
  /* metrics: request counts and durations under the server's metrics lock, queue/compute/batch
   * under mu (the worker records them) */
  uint64_t n_ok, n_client_err, n_server_err, n_rejected, n_timeout;
  gpux__hist h_request;
  gpux__hist h_queue, h_compute, h_batch;
  uint64_t n_batches, n_batched_requests;
  uint64_t n_gen_steps, n_gen_shared_steps; /* decode steps of batched generation; those of > 1 request */
  uint64_t n_device_err;        /* runs that failed on the device (under mu) */
  char last_device_err[512];
} gpux__slot;

typedef struct {
  pthread_mutex_t mu;           /* guards every slot's metrics fields */
  uint64_t http_by_code[6];     /* 1xx..5xx by first digit; [0] unused */
  uint64_t requests;            /* answered */
  int inflight;
  double t_start;               /* ms */
} gpux__metrics;

/* batcher.c */
int gpux__slot_start_worker(gpux__slot *s);
void gpux__slot_stop_worker(gpux__slot *s);   /* finishes what is queued, joins */
gpux__job *gpux__job_new(int kind);
void gpux__job_release(gpux__slot *s, gpux__job *j);  /* drops one reference */
/* j frees p with itself; -1 (p freed) when out of memory. */
int gpux__job_own(gpux__job *j, void *p);
/* Queues j and waits for it (at most timeout_s). Returns 0 when done (see j->rc), 503 when the
 * queue is full, 504 on timeout (j is taken off the queue, or abandoned to the worker). */
int gpux__slot_submit(gpux__slot *s, gpux__job *j);
/* Queues j without waiting (a streamed generation: the response follows the job as it runs).
 * Returns 0, or 503 when the queue is full. */
int gpux__slot_enqueue(gpux__slot *s, gpux__job *j);

/* oip.c: the model's inputs/outputs as OIP sees them. */
int gpux__slot_io_count(const gpux__slot *s, int output);
int gpux__slot_io_info(const gpux__slot *s, int output, int i, gpux_value_info *vi);
cJSON *gpux__oip_metadata(const gpux__slot *s);
const char *gpux__oip_dtype_name(int dtype);   /* "FP32"; NULL when OIP has none */

/* What the OIP request asks for. */
typedef struct {
  int n;                        /* 0 = every output */
  char **names;
  int64_t *classification;      /* (n) K, 0 = the tensor itself */
  int64_t all_classification;   /* the request-level "parameters": {"classification": K} */
  int binary;                   /* binary_data_output */
  char *id;
} gpux__oip_request;

/* Parses an infer request (JSON, with binary tensor data after json_len bytes when the body
 * carries Inference-Header-Content-Length). Returns the HTTP status (200 = ok) and on error a
 * message in err. */
int gpux__oip_parse(const gpux__slot *s, const char *body, size_t len, size_t json_len, gpux__named_tensors *in,
                    int64_t *rows, gpux__oip_request *rq, char *err, size_t err_len);
void gpux__oip_request_free(gpux__oip_request *rq);
/* Builds the response; *binary_len > 0 when binary tensor data follows the JSON header. */
int gpux__oip_response(const gpux__slot *s, const gpux__oip_request *rq, const gpux__named_tensors *out,
                       char **body, size_t *len, size_t *json_len, char *err, size_t err_len);

/* predict.c: the friendly body ({"text"}, {"image": base64}, {"inputs": {...}}, or raw bytes)
 * into app inputs owned by the job. Returns the HTTP status (200 = ok). */
int gpux__predict_parse(const gpux__slot *s, const char *content_type, const char *body, size_t len,
                        gpux__job *j, char *err, size_t err_len);
/* generate.c: the text-generation endpoints' request and answer forms. */
typedef enum { GPUX__GEN_OPENAI = 0, GPUX__GEN_OPENAI_CHAT = 1, GPUX__GEN_TRITON = 2 } gpux__gen_api;
/* Parses a request into j (the prompt as its app input, the settings, stream); *model gets
 * OpenAI's "model" ("" when absent). Returns the HTTP status (200 = ok), else err says why. A
 * Triton request with the app's own inputs instead of "text_input" ("audio", "inputs": see
 * gpux__gen_has_app_inputs) leaves j without app inputs: the caller reads them with
 * gpux__predict_parse, which knows the app. */
int gpux__gen_has_app_inputs(const cJSON *o);
int gpux__gen_parse(int api, const char *body, size_t len, gpux__job *j, char *model, size_t model_len, char *err,
                    size_t el);
/* The whole answer from the run's JSON (malloc'ed, NULL when out of memory). */
char *gpux__gen_answer(int api, const char *model, const char *version, const char *id, const char *run_json);
/* One server-sent event for a piece of streamed text (first: the first of the answer). */
char *gpux__gen_event(int api, const char *model, const char *version, const char *id, const char *piece, int first);
/* The closing event(s) of a stream: why it ended and the token counts (or the error), and
 * OpenAI's "data: [DONE]". */
char *gpux__gen_final_events(int api, const char *model, const char *version, const char *id, const char *run_json,
                             const char *error);

/* page.c: the HTML page of GET / (the served models and a form to try each). */
extern const char gpux__page_html[];

/* metrics.c: the Prometheus text exposition of everything. */
char *gpux__metrics_text(gpux__metrics *m, gpux__slot *slots, int n);

/* Maps a gpux error to an HTTP status: bad input 400, the rest 500. */
int gpux__http_status(int err);

#endif
