/* value.h — gpux_device_tensor (gpux.h) as the runtime makes them: host values wrap a tensor, device
 * values come from a backend (backend-impl.h defines the struct). */
#ifndef GPUX_VALUE_H
#define GPUX_VALUE_H

#include "backend/backend-impl.h"

/* A host value taking over t (t is left empty). */
int gpux__value_host(gpux_tensor *t, gpux_device_tensor **out);

#endif
