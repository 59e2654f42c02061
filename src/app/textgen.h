/* textgen.h — what the two text-generation modes share: mode-generate.c (a decoder-only model)
 * and mode-seq2seq.c (an encoder–decoder model). Both choose one token a step from the last
 * position's logits (greedy, or sampled from a seeded generator), hand the text out as it grows
 * (whole UTF-8 characters only, a possible start of a stop text held back), take their settings
 * from `generate:` and the run's gpux_generate_options, and answer with the same keys. */
#ifndef GPUX_APP_TEXTGEN_H
#define GPUX_APP_TEXTGEN_H

#include "app/mode.h"

/* What a run leaves for its answer (a->mode_state of both modes). */
typedef struct {
  int64_t *tokens;              /* generated ids */
  int64_t n_tokens, cap, n_prompt;
  int64_t *prompt;              /* (n_prompt) the ids the generation started from */
  char *text;
  const char *finish;           /* "stop" or "length" */
  double first_ms, total_ms;
  double encoder_ms;            /* seq2seq: the encoder's one run (not part of total_ms) */
  double download_bytes_per_token; /* read back from the device per token: generate counts the
                                   decode steps' only (the prefill's are prefill_download_bytes) */
  double prefill_download_bytes; /* generate: read back by the prefill; -1 when not counted */
} gpux__textgen_state;

/* A run's state, created on first use and emptied for a new run; NULL when out of memory. */
gpux__textgen_state *gpux__textgen_state_reset(gpux_app *a);
void gpux__textgen_state_release(gpux_app *a);
int gpux__textgen_push(gpux__textgen_state *st, int64_t token);
/* Records the prompt's ids. */
int gpux__textgen_set_prompt(gpux__textgen_state *st, const int64_t *ids, int64_t n);
/* The answer's generation keys (gpux_app_generate in gpux.h lists them). */
void gpux__textgen_answer(const gpux_app *a, cJSON *root);
const char *gpux__textgen_text(const gpux_app *a);

/* The app's text input or text output (the first declared one) as one string. */
int gpux__textgen_io_info(const gpux_app *a, int output, gpux_value_info *vi);
/* The settings of a run: the spec's, overridden by the request's (req may be NULL). */
void gpux__textgen_options(const gpux__spec_generate *g, const gpux_generate_options *req, gpux_generate_options *o);
/* The end-of-text token: generate.eos, else the tokenizer's usual ones; -1 when none. */
int64_t gpux__textgen_eos_id(const gpux_app *a);

/* Choosing tokens: a seeded generator and a work area of one entry per vocabulary token. */
typedef struct {
  float p;
  int64_t id;
} gpux__textgen_cand;
typedef struct {
  uint64_t rng;
  gpux__textgen_cand *work;
  int64_t vocab;                /* 0 until the first logits */
} gpux__textgen_chooser;
void gpux__textgen_chooser_init(gpux__textgen_chooser *c, const gpux_generate_options *o, const void *salt);
void gpux__textgen_chooser_free(gpux__textgen_chooser *c);
/* The last position's row of float logits [.., seq, vocab] as float32 (*row malloc'ed, *vocab
 * its length); `what` names the model in errors. The vocabulary may not change between calls. */
int gpux__textgen_last_row(gpux__textgen_chooser *c, const gpux_tensor *logits, const char *what, float **row);
/* The token of row `row` (of n_rows) from a session's ArgMax output over the logits (int64 or
 * int32, one or more positions a row: the row's last); an error naming `what` when it is not one. */
int gpux__textgen_argmax_token(const gpux_tensor *t, int64_t row, int64_t n_rows, const char *what, int64_t *token);
/* The next token from one row of logits (changed in place); `seen` are the ids the repetition
 * penalty applies to. */
int64_t gpux__textgen_choose(gpux__textgen_chooser *c, float *logit, const gpux_generate_options *o, const int64_t *seen,
                         int64_t n_seen);

/* The text as it is produced: decodes st->tokens (special tokens skipped), trims at a stop text,
 * and hands the new whole text to o->on_token. *stop is set when a stop text was found or the
 * callback asked to stop; `final` hands out what was held back. *emitted counts the bytes
 * handed out so far (0 at the start of a run). */
int gpux__textgen_emit(const gpux__tokenizer *tok, const gpux_generate_options *o, gpux__textgen_state *st, size_t *emitted,
                   int final, int *stop);

/* A model's input or output by name; -1 when absent. */
int gpux__textgen_find_input(gpux_model *m, const char *name);
int gpux__textgen_find_output(gpux_model *m, const char *name);

#endif
