/* log.c — the one way the library says something outside a return value: gpux__log formats a
 * message and hands it to the handler set with gpux_set_log, by default one line on stderr
 * ("gpux: note: ..."), so a program embedding libgpux decides where its messages go. */
#include "core/internal.h"
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static gpux_log_handler log_fn;   /* NULL: the default, stderr */
static void *log_ctx;

const char *gpux_log_level_name(int level) {
  switch (level) {
  case GPUX_LOG_ERROR: return "error";
  case GPUX_LOG_WARNING: return "warning";
  case GPUX_LOG_NOTE: return "note";
  case GPUX_LOG_DEBUG: return "debug";
  }
  return "unknown";
}

static gpux_progress_fn progress_fn; /* gpux_set_progress: NULL reports nothing */
static void *progress_ctx;

void gpux_set_progress(gpux_progress_fn fn, void *ctx) {
  pthread_mutex_lock(&log_mu);
  progress_fn = fn;
  progress_ctx = fn ? ctx : NULL;
  pthread_mutex_unlock(&log_mu);
}

void gpux__progress(const char *step, int64_t done, int64_t total) {
  pthread_mutex_lock(&log_mu);
  gpux_progress_fn fn = progress_fn;
  void *ctx = progress_ctx;
  pthread_mutex_unlock(&log_mu);
  if (fn) fn(ctx, step, done, total);
}

void gpux_set_log(gpux_log_handler fn, void *ctx) {
  pthread_mutex_lock(&log_mu);
  log_fn = fn;
  log_ctx = fn ? ctx : NULL;
  pthread_mutex_unlock(&log_mu);
}

void gpux__log(int level, const char *fmt, ...) {
  char stack[1024], *msg = stack;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(stack, sizeof stack, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof stack) { /* long messages (a shader dump) are kept whole */
    char *big = malloc((size_t)n + 1);
    if (big) {
      va_start(ap, fmt);
      vsnprintf(big, (size_t)n + 1, fmt, ap);
      va_end(ap);
      msg = big;
    }
  }
  pthread_mutex_lock(&log_mu);
  gpux_log_handler fn = log_fn;
  void *ctx = log_ctx;
  pthread_mutex_unlock(&log_mu);
  /* the handler runs outside the lock, so it may call gpux_set_log itself */
  if (fn) fn(ctx, level, msg);
  else fprintf(stderr, "gpux: %s: %s\n", gpux_log_level_name(level), msg);
  if (msg != stack) free(msg);
}
