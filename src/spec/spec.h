/* spec.h — the GPUXfile: its parsed form (gpux__spec), the YAML parser and validator, and the
 * JSON form an image's config stores (so `gpux run` of a built image never parses YAML again).
 *
 * One converter reads both: YAML (libyaml) and JSON (cJSON) are first turned into the same small
 * tree of scalars, lists and mappings with line numbers, then checked key by key. Every error is
 * one line that names the file, the line and the key:
 *   GPUXfile:3: key 'modle': unknown key (did you mean 'model'?)
 * and is returned as GPUX_E_PARSE (bad syntax, unknown key, wrong value) or, from
 * gpux__spec_check_model, GPUX_E_SHAPE / GPUX_E_DTYPE / GPUX_E_INVALID.
 *
 * File references (model, labels, vocabulary, charset, examples) are kept as written, relative
 * to spec->dir; gpux__spec_path() joins them. */
#ifndef GPUX_SPEC_H
#define GPUX_SPEC_H

#include "core/internal.h"
#include "prepost/prepost.h"

typedef struct cJSON cJSON;

/* What kind of value an input or output is, as the user sees it. */
typedef enum {
  GPUX__IO_TENSOR = 0,          /* numbers: JSON, a list, a .npy or TensorProto .pb file */
  GPUX__IO_IMAGE = 1,           /* a PNG or JPEG file, through preprocessing.image */
  GPUX__IO_AUDIO = 2,           /* a WAV file, through preprocessing.audio */
  GPUX__IO_STRING = 3,          /* text, through preprocessing.tokenizer */
} gpux__io_type;

const char *gpux__io_type_name(int type);

/* One declared input or output (inputs:/outputs: entries). */
typedef struct {
  char *name;
  int line;                     /* GPUXfile line of the entry; 0 when read from the model/JSON */
  int name_line, dtype_line, shape_line; /* lines of those keys (0 when absent) */
  int declared;                 /* 1 when the GPUXfile declared it, 0 when filled from the model */
  int type;                     /* gpux__io_type */
  int dtype;                    /* GPUX_DT_UNDEFINED when not declared */
  int ndim;                     /* -1 when no shape was declared */
  int64_t dims[GPUX_MAX_DIMS];  /* -1 for a symbolic or unknown dimension */
  char *dim_names[GPUX_MAX_DIMS]; /* the symbol ("W", "batch"); NULL for fixed or "?" */
  int64_t n_labels;
  char **labels;                /* inline labels, or read from labels_file at run time */
  char *labels_file;            /* a file, one label per line (relative to dir) */
  int64_t max_length;           /* strings: the longest text in tokens (0 = none) */
  char *example;                /* a value or a file used by `gpux build`'s smoke run */
  char *description;
} gpux__spec_io;

typedef enum { GPUX__SRC_FILE = 0, GPUX__SRC_URL = 1, GPUX__SRC_HF = 2 } gpux__source_kind;

/* model: or a pipeline step's model. */
typedef struct {
  char *source;                 /* as written: a path, https://..., hf:OWNER/REPO/FILE[@REV] */
  int kind;                     /* gpux__source_kind */
  char *path;                   /* the local file (relative to dir; set for URL/HF sources once
                                   fetched) */
  char *sha256;                 /* 64 hex digits pinning the file's content, or NULL */
  int line;
} gpux__spec_model;

typedef struct {
  char *name;
  gpux__spec_model model;
  int line;
} gpux__spec_step;

typedef struct {
  int present;
  char *input;                  /* the input it fills; NULL = the first image input */
  gpux__image_config cfg;
  int line;
} gpux__spec_image;

typedef struct {
  int present;
  char *input;                  /* NULL = the first audio input */
  gpux__audio_config cfg;
  int line;
} gpux__spec_audio;

typedef struct {
  int present;
  int kind;                     /* gpux__tokenizer_kind; 0 = found from the vocabulary file */
  char *vocab;                  /* vocab.txt, vocab.json or tokenizer.json */
  gpux__wordpiece_options wordpiece;
  gpux__encode_options encode;
  char *input;                  /* the text input's name; NULL = the first string input */
  char *input_ids, *attention_mask, *token_type_ids; /* model inputs; NULL = by those names */
  int line;
} gpux__spec_tokenizer;

/* One postprocessing: entry (for one output). */
typedef struct {
  char *output;                 /* NULL = the first output */
  gpux__post_config cfg;        /* cfg.labels is filled at run time */
  char *ctc_charset;            /* CTC: the charset file */
  int ctc_add_space;            /* CTC: a " " class after the file's lines (PaddleOCR) */
  int64_t n_labels;
  char **labels;
  char *labels_file;
  char *detect_scores;          /* detect.scores: the output holding the class scores, or NULL */
  char *answer_label;           /* answer.label: the answer's key for the best label, or NULL */
  char *answer_score;           /* answer.score: its key for the best score, or NULL */
  char *answer_scores;          /* answer.scores: its key for {label: score} of every class, or NULL */
  int line;
} gpux__spec_post;

/* The pipeline modes, one line each: X(ENUM, name) gives GPUX__PIPE_<ENUM> (the spec's
 * pipeline.mode), its name in `pipeline: {mode: name}` and in stored configs, and the app's
 * implementation gpux__mode_<name> (src/app/mode-<name>.c; the interface is src/app/mode.h).
 * Adding a mode is one line here and one file there. NONE stays first: a zeroed spec has one
 * model. */
#define GPUX__PIPELINE_MODES(X)                                                                 \
  X(NONE, single)               /* one model (`model:`) */                                      \
  X(SEQUENCE, sequence)         /* steps in order, each step's outputs feeding the next */      \
  X(OPENWAKEWORD, openwakeword) /* openWakeWord's streaming melspectrogram -> embedding ->    \
                                   classifier over three steps */                               \
  X(SEQ2SEQ, seq2seq)           /* an encoder-decoder generating text (Whisper, Marian, T5):  \
                                   encoder, decoder[, decoder with past] */

typedef enum {
#define GPUX__X(e, name) GPUX__PIPE_##e,
  GPUX__PIPELINE_MODES(GPUX__X)
#undef GPUX__X
  GPUX__PIPE_COUNT
} gpux__pipeline_mode;

typedef struct {
  int mode;                     /* gpux__pipeline_mode */
  int n_steps;
  gpux__spec_step *steps;
  /* openwakeword mode */
  int64_t chunk;                /* samples per step (1280 = 80 ms at 16 kHz) */
  int64_t context;              /* previous samples run through the mel model with each chunk (480) */
  int64_t window;               /* mel frames per embedding (76) */
  double padding;               /* seconds of silence added before and after the clip (1) */
  int line;
} gpux__spec_pipeline;

typedef enum { GPUX__PREC_FP32 = 0, GPUX__PREC_FP16 = 1 } gpux__precision;

typedef struct {
  int backend;                  /* gpux_backend_kind */
  int64_t gpu_memory;           /* bytes; 0 = no limit */
  int precision;                /* gpux__precision */
  int threads;                  /* CPU threads; 0 = all cores */
} gpux__spec_runtime;

typedef struct {
  int port;                     /* default 8080 */
  int max_batch_size;           /* default 1 */
  double max_queue_delay_ms;    /* default 0 */
  double timeout;               /* seconds; default 30 */
} gpux__spec_serving;

/* generate: text generation with a decoder-only language model (app/mode-generate.c): the
 * prompt is tokenized, the model runs once over it (prefill) and then once per new token, with
 * its key/value cache kept on the device when the model has one; or with an encoder-decoder
 * (`pipeline: {mode: seq2seq}`, app/mode-seq2seq.c), whose decoder starts from the settings below
 * and the encoder's output. */
typedef struct {
  int present;
  int64_t max_new_tokens;       /* default 64 */
  double temperature;           /* 0 = greedy (default) */
  int64_t top_k;                /* 0 = every token */
  double top_p;                 /* nucleus mass; 1 = every token (default) */
  double repetition_penalty;    /* 1 = none (default); > 1 discourages tokens already present */
  int64_t seed;                 /* -1 = a new seed each run (default) */
  int n_stop;
  char **stop;                  /* texts that end the generation (not included in the answer) */
  char *eos;                    /* the end-of-text token; NULL = the tokenizer's */
  int64_t max_context;          /* prompt + generated tokens at most; 0 = the model's limit or 2048 */
  /* seq2seq */
  char *language;               /* Whisper: the language token's code ("en" for <|en|>); NULL = none */
  char *task;                   /* Whisper: "transcribe" or "translate"; NULL = transcribe with a language */
  int64_t decoder_start;        /* decoder_start_token_id; -1 = <|startoftranscript|>, <pad> or eos */
  int suppress_special;         /* Whisper: special tokens but the end of text are never chosen (default 1) */
  int line;
} gpux__spec_generate;

/* handler: custom pre/post-processing code run in a worker process (app/handler.c). */
typedef enum { GPUX__HANDLER_PYTHON = 0, GPUX__HANDLER_NATIVE = 1 } gpux__handler_kind;

typedef struct {
  int present;
  char *file;                   /* handler.py or a shared library (relative to dir) */
  int kind;                     /* gpux__handler_kind, from the file's name */
  int64_t n_requirements;
  char **requirements;          /* declared packages (recorded, never installed by gpux) */
  char *requirements_file;      /* or a requirements.txt (relative to dir) */
  double timeout;               /* seconds one call may take; default 10 */
  int workers;                  /* worker processes gpux serve keeps per image; default 2 */
  int64_t memory;               /* address-space limit of a worker in bytes; default 4 GiB */
  int n_example;                /* build only, not stored: a request for the smoke run */
  char **example_keys, **example_values; /* a key NULL: the value given without a name */
  int line;
} gpux__spec_handler;

typedef struct gpux__spec {
  char *file;                   /* for messages: "GPUXfile", "examples/ocr/GPUXfile", "image config" */
  char *dir;                    /* folder relative paths are resolved against */
  char *name, *version, *description;
  int has_model;
  gpux__spec_model model;
  int n_inputs, n_outputs;
  gpux__spec_io *inputs, *outputs;
  gpux__spec_image image;
  gpux__spec_audio audio;
  gpux__spec_tokenizer tokenizer;
  int n_post;
  gpux__spec_post *post;
  gpux__spec_pipeline pipeline;
  gpux__spec_runtime runtime;
  gpux__spec_serving serving;
  gpux__spec_handler handler;
  gpux__spec_generate generate;
  gpux__arena arena;            /* every string and array above */
} gpux__spec;

/* Parses and validates a GPUXfile. `path` is the file, or a folder holding one; `display`
 * (may be NULL) is how the file is named in messages. */
int gpux__spec_parse_file(const char *path, const char *display, gpux__spec **out);
/* Same on text in memory; `dir` is where relative paths point. */
int gpux__spec_parse_yaml(const char *text, size_t len, const char *file, const char *dir,
                          gpux__spec **out);
/* Reads the JSON form written by gpux__spec_to_json (an image's config "spec"). */
int gpux__spec_from_json(const cJSON *json, const char *file, const char *dir, gpux__spec **out);
/* The normalized spec as JSON (every default filled in; same keys as the GPUXfile). */
cJSON *gpux__spec_to_json(const gpux__spec *s);
void gpux__spec_free(gpux__spec *s);

/* Joins a file reference with spec->dir (absolute references are kept). */
void gpux__spec_path(const gpux__spec *s, const char *ref, char *buf, size_t len);
/* Replaces a string field of the spec (for build's rewrite of file references to layer titles). */
char *gpux__spec_strdup(gpux__spec *s, const char *str);

/* Checks the declared inputs against the model that takes them (`first`, the first pipeline
 * step) and the outputs against the one that gives them (`last`): names, dtypes, ranks and
 * fixed dimensions. Fills what was not declared from the models, and infers input types from
 * preprocessing. Call once after parsing a GPUXfile (JSON specs are already complete). */
int gpux__spec_check_models(gpux__spec *s, gpux_model *const *models, int n_models);
/* The postprocessing part of gpux__spec_check_models, for pipeline modes that check their own
 * inputs and outputs, and for image configs: each entry names an output (the first when it names
 * none) of numbers. */
int gpux__spec_check_post(gpux__spec *s);
/* A check's error: "FILE:LINE: key 'KEY': message" (without ":LINE" when line is 0). */
int gpux__spec_fail(const gpux__spec *s, int err, int line, const char *key, const char *fmt, ...)
    GPUX__PRINTF(5, 6);

/* Calls fn with the dotted path of every key the parser accepts ("runtime.gpu.memory",
 * "inputs[].dtype": "[]" is each entry of a list); returns how many there are. */
int gpux__spec_known_keys(void (*fn)(const char *path, void *ctx), void *ctx);

/* An image's stored spec, read from its config (built here or pulled): every file it names must
 * be one of the image's layers (`titles`), with no absolute path, ".." or URL; postprocessing is
 * normalized as for a GPUXfile. One-line errors name the key. Call after gpux__spec_from_json. */
int gpux__spec_check_image(gpux__spec *s, const char *const *titles, int n_titles);

/* Helpers shared with the app runtime. */
int gpux__dtype_from_name(const char *name);   /* "float32", "fp16", "int64", ...; -1 if unknown */
/* Parses "2GB", "512MiB", "1.5G", "1048576" into bytes; -1 when malformed. */
int64_t gpux__parse_size(const char *s);

#endif
