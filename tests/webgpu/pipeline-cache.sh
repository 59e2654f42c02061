#!/usr/bin/env bash
# pipeline-cache.sh — a second process takes its compiled pipelines from Dawn's blob cache on disk
# (src/backend/webgpu/cache.c) instead of compiling them again. Counts, not timings: with
# GPUX_WEBGPU_VERBOSE each plan logs "pipelines for N nodes: P new (L loaded from the pipeline
# cache, C compiled)". A first process with an empty GPUX_HOME compiles every pipeline; a second
# one loads every one; with GPUX_WEBGPU_CACHE=0 a third compiles them all again. Uses ONNX's node
# cases (lavapipe on machines without a GPU).
#
#   tests/webgpu/pipeline-cache.sh GPUX
set -uo pipefail
gpux=${1:?usage: pipeline-cache.sh GPUX}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cases=$(dirname "$gpux")/node
tarball=$root/../shared/conformance/onnx-node-tests.tar.xz
if [ ! -f "$cases/ONNX_VERSION" ]; then
  [ -f "$tarball" ] || { echo "pipeline-cache: $tarball not found"; exit 1; }
  tar xJf "$tarball" -C "$(dirname "$cases")" || exit 1
fi
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
picked=("$cases/test_relu" "$cases/test_add_bcast" "$cases/test_softmax_axis_1")

# one process: prints "LOADED COMPILED" summed over its plans
counts() {
  local out
  out=$(GPUX_HOME=$home GPUX_WEBGPU_VERBOSE=1 "$@" "$gpux" verify --backend webgpu --no-fallback "${picked[@]}" 2>&1)
  if ! grep -q "^3 passed" <<<"$out"; then
    echo "pipeline-cache: FAILED: the cases did not pass:" >&2
    echo "$out" | grep -vE '^gpux: debug: webgpu: (shader|run)' >&2
    exit 1
  fi
  sed -n 's/.*new (\([0-9]*\) loaded from the pipeline cache, \([0-9]*\) compiled).*/\1 \2/p' <<<"$out" |
    awk '{ l += $1; c += $2 } END { print l + 0, c + 0 }'
}

fails=0
check() { # NAME CONDITION MESSAGE
  if eval "$2"; then echo "ok   $1"; else echo "FAIL $1: $3"; fails=$((fails + 1)); fi
}
read -r l1 c1 <<<"$(counts env)"
read -r l2 c2 <<<"$(counts env)"
read -r l3 c3 <<<"$(counts env GPUX_WEBGPU_CACHE=0)"
echo "first process: $l1 loaded, $c1 compiled; second: $l2 loaded, $c2 compiled; cache off: $l3 loaded, $c3 compiled"
check first-compiles '[ "$c1" -gt 0 ] && [ "$l1" -eq 0 ]' "an empty cache should compile every pipeline"
check second-loads '[ "$c2" -eq 0 ] && [ "$l2" -eq "$c1" ]' "the second process should load all $c1 pipelines from the cache"
check cache-off-compiles '[ "$l3" -eq 0 ] && [ "$c3" -eq "$c1" ]' "GPUX_WEBGPU_CACHE=0 should compile every pipeline again"
entries=$(find "$home/cache/pipelines" -type f -name '????????????????????????????????' | wc -l)
check entries-on-disk '[ "$entries" -gt 0 ]' "no cache entries under $home/cache/pipelines"
[ "$fails" -eq 0 ] || exit 1
echo "pipeline-cache: every check passed"
