/* version.c — the version of the library that is running, which a program compiled against an
 * older or newer gpux.h can compare with the GPUX_VERSION it was built with. */
#include "core/internal.h"

const char *gpux_version(void) { return GPUX_VERSION; }
