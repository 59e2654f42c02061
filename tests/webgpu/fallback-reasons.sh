#!/usr/bin/env bash
# fallback-reasons.sh — on WebGPU, a node that runs on the CPU is named with its operator and the
# reason, in `gpux verify --no-fallback`'s SKIP line and in `gpux run --json`'s backend_reason, and
# a whole graph sent to the CPU names the node that sent it. Uses ONNX's node cases (lavapipe).
#
#   tests/webgpu/fallback-reasons.sh GPUX
set -uo pipefail
gpux=${1:?usage: fallback-reasons.sh GPUX}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cases=$(dirname "$gpux")/node
tarball=$root/../shared/conformance/onnx-node-tests.tar.xz
if [ ! -f "$cases/ONNX_VERSION" ]; then
  [ -f "$tarball" ] || { echo "fallback-reasons: $tarball not found"; exit 1; }
  tar xJf "$tarball" -C "$(dirname "$cases")" || exit 1
fi
fails=0
expect() { # NAME PATTERN OUTPUT
  if grep -qF -- "$2" <<<"$3"; then echo "ok   $1"; else echo "FAIL $1: wanted '$2' in: $3"; fails=$((fails + 1)); fi
}
out=$(GPUX_WEBGPU_CPU_OPS=Abs "$gpux" verify --backend webgpu --no-fallback "$cases/test_abs" 2>&1)
expect verify-names-op "SKIP test_abs: 1 node on the CPU: Abs #0 (Abs is on GPUX_WEBGPU_CPU_OPS)" "$out"
out=$(GPUX_WEBGPU_CPU_OPS=Abs "$gpux" run "$cases/test_abs/model.onnx" --backend webgpu --json \
      --input "x=@$cases/test_abs/test_data_set_0/input_0.pb" 2>&1)
expect run-json-backend-reason '"backend_reason":"1 node on the CPU: Abs #0 (Abs is on GPUX_WEBGPU_CPU_OPS)"' "$out"
out=$("$gpux" run "$cases/test_abs/model.onnx" --backend webgpu --json \
      --input "x=@$cases/test_abs/test_data_set_0/input_0.pb" 2>&1)
expect run-json-no-reason-on-gpu '"backend":"webgpu","timings"' "$out"
# a node whose kernel declines its dtype names the dtype
out=$("$gpux" verify --backend webgpu --no-fallback "$cases/test_cast_FLOAT_to_DOUBLE" 2>&1)
expect verify-dtype-reason "SKIP test_cast_FLOAT_to_DOUBLE: 1 node on the CPU: Cast #0 (Cast float32 to float64" "$out"
# a body node on the CPU: the control-flow node says which node of which body, and why
out=$(GPUX_WEBGPU_CPU_OPS=Add "$gpux" verify --backend webgpu --no-fallback "$cases/test_scan9_sum" 2>&1)
expect verify-body-reason "SKIP test_scan9_sum: 1 node on the CPU: Scan #0 (body: Add making 'sum_out': Add is on GPUX_WEBGPU_CPU_OPS)" "$out"
# a body that cannot be planned sends the graph to the CPU, naming the control-flow node first
out=$("$gpux" verify --backend webgpu --no-fallback "$cases/test_scan_sum" 2>&1)
expect verify-control-flow-reason "SKIP test_scan_sum: 1 node on the CPU: Scan #0 (Scan before opset 9" "$out"
[ "$fails" = 0 ] || { echo "fallback-reasons: $fails failed"; exit 1; }
echo "fallback-reasons: all passed"
