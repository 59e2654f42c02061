/* ops-stubs.c — op families whose WGSL kernels are not written yet (empty tables). */
#include "backend/webgpu/wg.h"


const wg_op gpux__wg_ops_linalg[] = {{0}};
const wg_op gpux__wg_ops_conv[] = {{0}};
const wg_op gpux__wg_ops_norm[] = {{0}};
const wg_op gpux__wg_ops_reduce[] = {{0}};
