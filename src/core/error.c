/* error.c — gpux error codes (names and messages from the one X-macro in gpux.h) and the
 * per-thread detailed message behind gpux_last_error(). */
#include "core/internal.h"
#include <stdio.h>

static _Thread_local char last_message[1024];

const char *gpux_strerror(int err) {
  switch (err) {
#define GPUX__ERR_MSG(name, value, msg) case value: return msg;
    GPUX_ERRNO_MAP(GPUX__ERR_MSG)
#undef GPUX__ERR_MSG
  }
  return "unknown error";
}

const char *gpux_err_name(int err) {
  switch (err) {
#define GPUX__ERR_NAME(name, value, msg) case value: return #name;
    GPUX_ERRNO_MAP(GPUX__ERR_NAME)
#undef GPUX__ERR_NAME
  }
  return "UNKNOWN";
}

const char *gpux_last_error(void) {
  return last_message[0] ? last_message : "no error";
}

int gpux__verror(int err, const char *fmt, va_list ap) {
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  return err;
}

int gpux__error(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gpux__verror(err, fmt, ap);
  va_end(ap);
  return err;
}

int gpux__error_prefix(int err, const char *fmt, ...) {
  char prefix[512], old[sizeof last_message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, last_message, sizeof old);
  snprintf(last_message, sizeof last_message, "%s%s", prefix, old);
  return err;
}
