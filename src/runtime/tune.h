/* tune.h — tuning a device backend's GEMM for the GPU it runs on: what a session's plans
 * contained (the distinct GEMM shapes), the configurations it is to use, and the tuner that
 * times candidate configurations of each shape on the local adapter, keeping one only when its
 * result matches the default kernel's and it is faster. gpux build --tune and gpux tune
 * (app/tuning.c) store the winners in an image; sessions opened from it get them back here. */
#ifndef GPUX_RUNTIME_TUNE_H
#define GPUX_RUNTIME_TUNE_H

#include "backend/backend-impl.h"

/* The GEMM configurations session s uses from now on (GPUX_E_UNSUPPORTED on a backend without
 * a tunable GEMM, the CPU's); n = 0 returns to the defaults. */
int gpux__session_set_gemm_tuning(gpux_session *s, const gpux__gemm_tuned *t, int n);
/* The distinct GEMM shapes of the plans s made so far (at most cap into out, which may be
 * NULL), and how many of them a tuned configuration served; returns their count (0 on the CPU). */
int gpux__session_gemm_shapes(gpux_session *s, gpux__gemm_shape *out, int cap, int *n_tuned);

/* What tuning found for one shape. */
typedef struct gpux__tune_result {
  gpux__gemm_shape shape;
  int measured;                  /* 0: the time budget ran out before this shape */
  int improved;                  /* cfg beat the default by more than the noise margin */
  gpux__gemm_config cfg;         /* the winner (when improved) */
  double default_ms, best_ms;    /* per product, the default's and the winner's */
  int tried;                     /* candidates run */
  int rejected;                  /* of those, results that differed from the default's */
  int unfit;                     /* candidates the backend did not take for this shape */
} gpux__tune_result;

typedef struct gpux__tune_options {
  double budget_ms;              /* the whole tuning's time, compiles included (> 0) */
  int software;                  /* the adapter is a CPU: the simple form's candidates first */
  int once;                      /* every candidate run once, untimed (tests: results only) */
  void (*progress)(void *ctx, int64_t done, int64_t total); /* shapes done of total; may be NULL */
  void *progress_ctx;
} gpux__tune_options;

/* Times candidate configurations of each of the n shapes on the WebGPU device, the shapes that
 * cost most first, within o->budget_ms: every candidate's product of random inputs is compared
 * with the default configuration's (a larger difference than float reassociation gives discards
 * it). out[i] answers shapes[i]. */
int gpux__tune_gemms(const gpux__gemm_shape *shapes, int n, const gpux__tune_options *o, gpux__tune_result *out);

/* The configuration's form as a word ("simple", "tiled") and back (0 when unknown). */
const char *gpux__gemm_form_name(int form);
int gpux__gemm_form_parse(const char *name);

#endif
