#!/usr/bin/env bash
# control.sh — the "control-flow" test: small models with If (a data-dependent condition and a
# shape-only one), a counted Loop with scan outputs, a while Loop and a Scan (made by
# tests/models/make-control.mjs with ONNX Runtime's outputs as the expected ones) must match on
# the CPU backend and on WebGPU with every node on the GPU (--no-fallback: a SKIP fails here).
#
#   tests/models/control.sh GPUX_BIN CASES_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
gpux=${1:?usage: control.sh GPUX_BIN CASES_DIR}
cases=${2:?usage: control.sh GPUX_BIN CASES_DIR}
command -v node >/dev/null || { echo "control.sh: error: node not found (run scripts/install-deps.sh)" >&2; exit 3; }
node "$here/make-control.mjs" "$cases" >/dev/null
dirs=()
while IFS= read -r c; do [ -n "$c" ] && dirs+=("$cases/$c"); done < "$cases/cases.txt"
fails=0
for args in "--backend cpu" "--backend webgpu --no-fallback"; do
  # shellcheck disable=SC2086
  out=$("$gpux" verify $args "${dirs[@]}" 2>&1) || true
  echo "$out"
  if ! grep -qx "${#dirs[@]} passed, 0 failed, 0 skipped" <<<"$out"; then
    echo "control.sh: FAILED with $args" >&2
    fails=$((fails + 1))
  fi
done
[ "$fails" = 0 ] || exit 1
echo "control.sh: all ${#dirs[@]} control-flow cases match ONNX Runtime on the CPU and on WebGPU with no fallback"
