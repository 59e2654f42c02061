/* app.h — the app runtime's internal interface: an app is a spec (GPUXfile or an image's stored
 * config) with its models loaded into sessions and its pre/post-processing resources (tokenizer,
 * labels, CTC charset) ready. gpux_build (build.c) and gpux_app_* (app.c) both go through
 * gpux__app_create. One file per job: app.c opens and closes, inputs.c prepares inputs,
 * pipeline.c runs the model(s) through the pipeline mode (mode.h, one mode-*.c file each),
 * outputs.c answers, smoke.c makes inputs for smoke runs; model files and their external data
 * are in files.c. */
#ifndef GPUX_APP_H
#define GPUX_APP_H

#include "core/internal.h"
#include "prepost/prepost.h"
#include "spec/spec.h"
#include "store/store.h"

typedef struct {
  int n;
  gpux_tensor *t;               /* (n) values, by the names below */
  char **names;
  gpux__image_map image_map;    /* inputs: where the image input's tensor pixels lie in the image
                                   given; carried to the outputs so boxes can be mapped back */
} gpux__named_tensors;

struct gpux__mode;

struct gpux_app {
  gpux__spec *spec;             /* owned */
  char ref[512];                /* image reference ("ocr:latest") or the folder it was opened from */
  int n_models;
  gpux_model **models;          /* (n_models): the model, or the pipeline's steps */
  gpux_session **sessions;      /* (n_models) */
  int backend;                  /* gpux_backend_kind the sessions were asked for */
  int full_outputs;             /* gpux_app_options.full_outputs: 1 no data left out of the JSON, 2 nor the text */
  gpux__tokenizer *tokenizer;   /* preprocessing.tokenizer, or NULL */
  gpux__labels *post_labels;    /* (spec->n_post) labels or CTC charset per postprocessing entry */
  gpux__labels *io_labels;      /* (spec->n_outputs) labels declared on outputs */
  char *describe;               /* gpux_app_describe's JSON, made on first use */
  char *build_json;             /* the image's build record (NULL for a folder) */
  double load_ms;               /* time to open: models loaded and sessions created */
  const struct gpux__mode *mode; /* how the models run (mode.h), by spec->pipeline.mode */
  void *mode_state;             /* the mode's own, kept between a run and its answer */
  const gpux_generate_options *generate; /* the run's generation settings (gpux_app_generate), or NULL */
  atomic_int cancel;            /* gpux_app_cancel: runs stop at their next node */
  struct gpux__handler *handler; /* the spec's handler: worker processes (handler.c), or NULL */
  int handler_off;              /* runs skip the handler (smoke runs on the model's own inputs) */
  char *handler_result;         /* postprocess's JSON for the answer being made, or NULL */
  int tuning;                   /* GPUX__TUNING_*: whether the image's GEMM tuning is used */
  char tuning_why[400];         /* why not, with GPUX__TUNING_DEFAULTS */
};

/* Loads the spec's models (resolved against spec->dir), creates sessions on `backend` (AUTO =
 * the spec's runtime.backend) and loads tokenizer and labels. Takes ownership of spec. Errors
 * name the spec file and key. When check is set, the spec is checked against the models
 * (gpux__spec_check_models) — for GPUXfiles, not for stored configs. */
int gpux__app_create(gpux__spec *spec, int backend, int check, gpux_app **out);

/* One inference on prepared inputs (gpux__app_prepare) through the app's pipeline mode
 * (pipeline.c, mode.h); fills the app's outputs. Used by gpux_app_run, build's smoke run and
 * serve. infer_ms (may be NULL) receives the time spent in the model(s). */
int gpux__app_infer(gpux_app *a, const gpux__named_tensors *in, gpux__named_tensors *out,
                    double *infer_ms);

/* Turns the app inputs (text or bytes, by name or in order) into the first model's inputs:
 * images and audio through preprocessing, text through the tokenizer, numbers parsed. */
int gpux__app_prepare(gpux_app *a, const gpux_app_input *inputs, int n_inputs,
                      gpux__named_tensors *out);
/* Appends t under name, taking its data (t is zeroed). */
int gpux__named_tensors_add(gpux__named_tensors *nt, const char *name, gpux_tensor *t);
/* The index of name, or -1. */
int gpux__named_tensors_find(const gpux__named_tensors *nt, const char *name);
void gpux__named_tensors_free(gpux__named_tensors *nt);

/* What an app input of `type` (gpux__io_type) accepts, for error messages and describe. */
const char *gpux__app_input_accepts(int type);

/* When a run's stages ended (gpux__now_ms), and the time spent in the model(s). */
typedef struct {
  double start, prepared, inferred;
  double infer_ms;
} gpux__app_times;

/* The answer to a run (outputs.c): *result_json (outputs with data, post-processing results,
 * timings) and *result_text (what a person reads); either may be NULL. */
int gpux__app_answer(gpux_app *a, const gpux__named_tensors *out, const gpux__app_times *times,
                     char **result_json, char **result_text);

/* Does the app's one model lead every input and output with a symbolic batch dimension (and is
 * its pipeline mode direct)? Then requests may be stacked into one run (batch.c, serve). */
int gpux__app_batchable(const gpux_app *a);

/* A request as POST /predict and `gpux run --json-input` take it (request.c), as app inputs. */
typedef struct {
  gpux_app_input *inputs;       /* (n_inputs); names point into the app's spec */
  int n_inputs;
  void **owned;                 /* (n_owned) the texts and decoded bytes the inputs point to */
  int n_owned;
} gpux__app_request;
/* Parses a JSON request ({"text"}, {"image": base64}, {"audio": base64}, {"inputs": {...}})
 * against the app's declared inputs; errors are GPUX_E_PARSE (not JSON), GPUX_E_INVALID (not a
 * request this app takes) or GPUX_E_NOMEM, with a message naming the key or input and the app as
 * `model` (NULL = the spec's name or the reference). */
int gpux__app_request_parse(const gpux_app *a, const char *model, const char *body, size_t len,
                            gpux__app_request *r);
void gpux__app_request_free(gpux__app_request *r);
/* Base64 (also base64url, and the payload of a data: URL) into *out (malloc'ed, NUL-terminated
 * past *out_len); GPUX_E_PARSE on a character outside the alphabet. */
int gpux__base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

/* Generations sharing decode steps (continuous batching; mode-generate.c): requests are added
 * (their prompt runs alone and their first token is chosen), then each step runs one token of
 * every running request as one model run; finished ones are taken with their answer JSON (what
 * gpux_app_generate gives, plus "shared_steps"). A failed step fails every running request. */
typedef struct gpux__gen_batch gpux__gen_batch;
/* Can the app's generations share steps: a generate: app whose model takes attention_mask,
 * position_ids and a cache, with a free batch dimension. */
int gpux__gen_batchable(const gpux_app *a);
int gpux__gen_batch_new(gpux_app *a, int max_rows, gpux__gen_batch **out);
void gpux__gen_batch_free(gpux__gen_batch *b);
/* Starts one generation (tag: the caller's); an error is this request's alone. */
int gpux__gen_batch_add(gpux__gen_batch *b, const gpux_app_input *inputs, int n_inputs,
                        const gpux_generate_options *o, void *tag);
int gpux__gen_batch_size(const gpux__gen_batch *b);          /* generations running */
int gpux__gen_batch_step(gpux__gen_batch *b);
/* Ends the generation `tag` now (its client is gone); it is taken like a finished one. */
int gpux__gen_batch_cancel(gpux__gen_batch *b, void *tag);
/* A finished generation, oldest first: 1 with its tag, status and answer (malloc'ed; NULL on
 * error), 0 when none is waiting. */
int gpux__gen_batch_take(gpux__gen_batch *b, void **tag, int *rc, char **json);
/* Decode steps run, and those that ran more than one generation. */
void gpux__gen_batch_counts(const gpux__gen_batch *b, uint64_t *steps, uint64_t *shared);

/* A number as JSON: 7 significant digits for floats, 17 otherwise, null when not finite. */
cJSON *gpux__app_json_num(double v, int is_float);

/* A whole file into *data (malloc'ed, NUL-terminated); errors name the path. */
int gpux__app_read_file(const char *path, char **data, size_t *len);
/* Is p a regular file? */
int gpux__app_is_file(const char *p);

/* Generated inputs for the smoke run: the spec's examples when given, otherwise an image (a dark
 * bar on white), a second of quiet noise, "hello world" or zeros (symbolic dimensions as 1 for
 * the first, batch, dimension and `sym` for the others). `what` receives a JSON array
 * describing each. */
int gpux__app_smoke_inputs(gpux_app *a, int64_t sym, gpux_app_input **inputs, int *n_inputs,
                           void ***owned, cJSON *what);

/* What the app takes (output = 0) or gives (1), as its pipeline mode says (mode.h): the count,
 * and the name, dtype and shape of the i-th. For serving's metadata and requests. */
int gpux__app_io_count(const gpux_app *a, int output);
int gpux__app_io_info(const gpux_app *a, int output, int i, gpux_value_info *vi);

/* The files of a model: the .onnx file and the external data files it names (relative
 * locations, as written in the model). *locations: malloc'ed array of malloc'ed strings. */
int gpux__model_external_files(const char *model_path, char ***locations, int *n);

/* Fetches a URL or hf: source into $GPUX_HOME/cache/ (files.c); *path is the local file. */
int gpux__fetch_source(gpux_store *st, const gpux__spec_model *m, char *path, size_t len);

/* Milliseconds on a monotonic clock. */
double gpux__now_ms(void);

/* GEMM tuning in an image (tuning.c): the layer's title; whether an app uses it (NONE: the image
 * has none, or the app is a folder). */
#define GPUX__TUNING_TITLE "gpux-tuning.json"
enum { GPUX__TUNING_NONE = 0, GPUX__TUNING_MATCHED, GPUX__TUNING_DEFAULTS };
/* Checks tuning data (JSON of len bytes) and returns it parsed; GPUX_E_PARSE with a message that
 * starts with `what` and names the record and entry. */
int gpux__tuning_read(const char *json, size_t len, const char *what, cJSON **doc);
/* Gives the app's WebGPU sessions the record of the local adapter, if the data has one, and sets
 * a->tuning and a->tuning_why; data that is not valid is ignored with a warning. */
void gpux__app_apply_tuning(gpux_app *a, const char *json, size_t len);
/* "tuning", "tuned_gemm_shapes" / "tuning_reason" into an answer (nothing for NONE). */
void gpux__app_tuning_json(const gpux_app *a, cJSON *root);
/* Whether the app's models run where tuning applies (WebGPU), and whether its adapter is a CPU
 * (*software); else why not. */
int gpux__app_can_tune(gpux_app *a, int *software, char *why, size_t len);
typedef struct {
  double seconds;               /* the time budget */
  void (*progress)(void *ctx, int64_t done, int64_t total); /* shapes tuned; may be NULL */
  void *progress_ctx;
} gpux__app_tune_options;
/* Tunes the GEMMs of the plans the app's runs made on the local adapter and returns the tuning
 * document (*json, malloc'ed): `old`'s records of other adapters and this adapter's new one.
 * summary (may be NULL) receives what was done: adapter, shapes, tuned, seconds. */
int gpux__app_tune(gpux_app *a, const char *old, size_t old_len, const gpux__app_tune_options *o, char **json,
                   cJSON *summary);
/* json written to a new temporary file (its path into path) to store as a layer. */
int gpux__tuning_temp_file(const char *json, char *path, size_t len);

#endif
