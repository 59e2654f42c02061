/* fault.c — fault injection for the store's crash-safety tests (tests/app/store-faults.sh):
 * every step that writes the store (and pull's downloads) first asks gpux__fault. It does
 * nothing unless GPUX_TEST_FAULT is set, to "list" (each step is printed to stderr as
 * "gpux: fault point N: STEP") or to "N:enospc", "N:eio" or "N:kill": the N-th step of this
 * process then fails with ENOSPC or EIO, or the process is killed with SIGKILL right there. */
#include "core/internal.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>

int gpux__fault(const char *step) {
  static atomic_int hits;
  static int mode = -1;   /* -1 unread, 0 off, 1 list, 2 inject */
  static int target, action;
  if (mode < 0) {   /* racing first reads agree: the environment does not change */
    const char *v = getenv("GPUX_TEST_FAULT");
    char what[16] = "";
    if (!v || !*v) mode = 0;
    else if (!strcmp(v, "list")) mode = 1;
    else if (sscanf(v, "%d:%15s", &target, what) == 2) {
      action = !strcmp(what, "kill") ? SIGKILL : !strcmp(what, "eio") ? EIO : ENOSPC;
      mode = 2;
    } else mode = 0;
  }
  if (!mode) return 0;
  int n = atomic_fetch_add(&hits, 1) + 1;
  if (mode == 1) {
    fprintf(stderr, "gpux: fault point %d: %s\n", n, step);
    return 0;
  }
  if (n != target) return 0;
  if (action == SIGKILL) raise(SIGKILL);
  errno = action;
  return -1;
}
