/* narrow.c — float16 and bfloat16 on the WebGPU device, emulated on f32 storage. The device holds
 * a float16 (bfloat16) tensor as f32 values that are all exactly float16 (bfloat16) values, so
 * every f32 kernel reads them unchanged and host transfers convert exactly (widen on upload,
 * narrow on read-back). A float16/bfloat16 result is rounded to its type (round to nearest even,
 * overflow to infinity) as the CPU kernels narrow their float32 results, so both backends compute
 * in float32, store float16, and agree: by the kernel's own store where it says so
 * (gpux__wg_narrow_in_kernel: elementwise, MatMul, Gemm, Conv), else by one more in-place
 * dispatch the planner adds (the shader is here). Ops that only move or select values of inputs
 * of the output's own type (Transpose, Gather, Relu, Max, ...) need no rounding.
 * This runs wherever WebGPU does, with or without the adapter's shader-f16; storage in real f16
 * (half the memory traffic) is a separate step. Nothing here calls the planner (plan.c). */
#include "backend/webgpu/wg.h"
#include <stdio.h>

int gpux__wg_is_f32(int dtype) {
  return dtype == GPUX_DT_FLOAT || dtype == GPUX_DT_FLOAT16 || dtype == GPUX_DT_BFLOAT16;
}

/* Integer arithmetic on the bits: no dependence on how a GPU rounds f32 -> f16 conversions or
 * flushes subnormals. float16 subnormals (below 2^-14) are multiples of 2^-24: scaled by 2^24,
 * rounded half to even (WGSL's round), scaled back, all exact. */
const char *const gpux__wg_narrow_fns =
  GPUX__WG_F16_ROUND_FN("gx_f16")
  "fn gx_bf16(x: f32) -> f32 {\n"
  "  let u = bitcast<u32>(x);\n"
  "  if ((u & 0x7fffffffu) > 0x7f800000u) { return x; }\n"
  "  return bitcast<f32>((u + 0x7fffu + ((u >> 16u) & 1u)) & 0xffff0000u);\n"
  "}\n";

/* Ops whose every output element is one of their inputs' elements (or a constant of that type). */
static const char *const keeps_values[] = {
  "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Slice",
  "Split", "Gather", "GatherElements", "GatherND", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth",
  "Trilu", "Relu", "Abs", "Neg", "Max", "Min", "Where", "Clip", "Floor",
  "Ceil", "Round", "Sign", "MaxPool", "GlobalMaxPool", "ReduceMax", "ReduceMin", "ReverseSequence",
};
/* ... before opset 11 these two take their bound or pad value as a float attribute */
static int float_attr_op(const gpux__node *n) {
  return n->opset < 11 && (!strcmp(n->op_type, "Clip") || !strcmp(n->op_type, "Pad"));
}

int gpux__wg_narrow_needed(const gpux__node *n, const gpux_tensor *const *in, int n_in, const gpux_tensor *y) {
  if (!y || y->kind != GPUX_KIND_TENSOR || (y->dtype != GPUX_DT_FLOAT16 && y->dtype != GPUX_DT_BFLOAT16)) return 0;
  if (!gpux_tensor_count(y)) return 0;
  if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) return 1;
  int keeps = 0;
  for (size_t k = 0; k < GPUX__ARRAY_LEN(keeps_values) && !keeps; k++) keeps = !strcmp(n->op_type, keeps_values[k]);
  if (!keeps || float_attr_op(n)) return 1;
  /* a float input of another type (Max of float32 into float16 is not valid ONNX, but be sure) */
  for (int i = 0; i < n_in; i++) {
    const gpux_tensor *t = in[i];
    if (t && t->kind == GPUX_KIND_TENSOR && gpux__wg_is_f32(t->dtype) && t->dtype != y->dtype) return 1;
  }
  return 0;
}

void gpux__wg_narrow_main(wg_str *s, int dtype, int binding, uint32_t gx, uint64_t total) {
  gpux__wg_cat(s, "%s@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, "
                  "@builtin(local_invocation_index) li: u32) {\n"
                  "  let i = (wid.y * %uu + wid.x) * 256u + li;\n  if (i >= %lluu) { return; }\n"
                  "  b%d[i] = %s(b%d[i]);\n}\n",
               gpux__wg_narrow_fns, gx, (unsigned long long)total, binding, dtype == GPUX_DT_FLOAT16 ? "gx_f16" : "gx_bf16",
               binding);
}
