#!/usr/bin/env bash
# pipeline-cache.sh — a second process takes its compiled pipelines from Dawn's blob cache on disk
# (src/backend/webgpu/cache.c) instead of compiling them again. Counts, not timings: with
# GPUX_WEBGPU_VERBOSE each plan logs "pipelines for N nodes: P new (L loaded from the pipeline
# cache, C compiled)". A first process with an empty GPUX_HOME compiles every pipeline; a second
# one loads every one (as does a fourth that makes them one by one, GPUX_WEBGPU_ASYNC=0: the
# parallel compile stores the same entries); with GPUX_WEBGPU_CACHE=0 a third compiles them all
# again. The device's self-test runs in the first process and not in the second ("self-test
# skipped": it passed with this adapter, driver and library), and the second starts every pipeline
# its plans need when its sessions are prepared, before the first run asks (src/backend/webgpu/
# warm.c). `gpux bench` makes the device ahead of its session, while the model loads. Uses ONNX's
# node cases (lavapipe on machines without a GPU).
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

# one verify: prints "LOADED COMPILED SELFTEST STARTED" (the pipelines summed over its plans; "run"
# when a device's self-test ran, "skipped" when none did, having passed before with this adapter,
# driver and library; the pipelines started when the sessions were prepared, from the notes an
# earlier process left of what each graph's plans needed)
counts() {
  local out
  out=$(GPUX_HOME=$home GPUX_WEBGPU_VERBOSE=1 "$@" "$gpux" verify --backend webgpu --no-fallback "${picked[@]}" 2>&1)
  if ! grep -q "^3 passed" <<<"$out"; then
    echo "pipeline-cache: FAILED: the cases did not pass:" >&2
    echo "$out" | grep -vE '^gpux: debug: webgpu: (shader|run)' >&2
    exit 1
  fi
  local selftest=skipped # unless some device of the process (verify may run several) ran it
  grep -q 'self-test run' <<<"$out" && selftest=run
  local started
  started=$(sed -n 's/.*webgpu: started \([0-9]*\) pipelines an earlier process.*/\1/p' <<<"$out" | awk '{ n += $1 } END { print n + 0 }')
  sed -n 's/.*new (\([0-9]*\) loaded from the pipeline cache, \([0-9]*\) compiled).*/\1 \2/p' <<<"$out" |
    awk -v s="$selftest" -v w="$started" '{ l += $1; c += $2 } END { print l + 0, c + 0, s, w }'
}

fails=0
check() { # NAME CONDITION MESSAGE
  if eval "$2"; then echo "ok   $1"; else echo "FAIL $1: $3"; fails=$((fails + 1)); fi
}
read -r l1 c1 s1 w1 <<<"$(counts env)"
read -r l2 c2 s2 w2 <<<"$(counts env)"
read -r l3 c3 s3 w3 <<<"$(counts env GPUX_WEBGPU_CACHE=0)"
read -r l4 c4 s4 w4 <<<"$(counts env GPUX_WEBGPU_ASYNC=0)"
echo "first process: $l1 loaded, $c1 compiled, self-test $s1, $w1 started early; second: $l2 loaded, $c2 compiled," \
  "self-test $s2, $w2 started early; cache off: $l3 loaded, $c3 compiled, self-test $s3, $w3 started early;" \
  "one by one: $l4 loaded, $c4 compiled, $w4 started early"
check first-compiles '[ "$c1" -gt 0 ] && [ "$l1" -eq 0 ]' "an empty cache should compile every pipeline"
check second-loads '[ "$c2" -eq 0 ] && [ "$l2" -eq "$c1" ]' "the second process should load all $c1 pipelines from the cache"
check cache-off-compiles '[ "$l3" -eq 0 ] && [ "$c3" -eq "$c1" ]' "GPUX_WEBGPU_CACHE=0 should compile every pipeline again"
check one-by-one-loads '[ "$c4" -eq 0 ] && [ "$l4" -eq "$c1" ]' "with GPUX_WEBGPU_ASYNC=0 a later process should load all $c1 pipelines too"
check self-test-once '[ "$s1" = run ] && [ "$s2" = skipped ] && [ "$s3" = run ]' \
  "the self-test should run in the first process, be skipped in the second (it passed), and run with the cache off"
check started-early '[ "$w1" -eq 0 ] && [ "$w2" -eq "$c1" ] && [ "$w3" -eq 0 ]' \
  "the second process should start all $c1 pipelines when its sessions are prepared (none in the first, none with the cache off)"
# gpux bench makes the device on a thread of its own while the model loads (gpux_device_warm)
ahead=$(GPUX_HOME=$home GPUX_WEBGPU_VERBOSE=1 "$gpux" bench --backend webgpu --runs 1 --warmup 0 "${picked[0]}" 2>&1 |
  grep -c 'made ahead of its sessions')
not_ahead=$(GPUX_HOME=$home GPUX_WEBGPU_VERBOSE=1 GPUX_WEBGPU_WARM=0 "$gpux" bench --backend webgpu --runs 1 --warmup 0 \
  "${picked[0]}" 2>&1 | grep -c 'made ahead of its sessions')
check device-ahead '[ "$ahead" -eq 1 ] && [ "$not_ahead" -eq 0 ]' \
  "gpux bench should make the device ahead of its session (and not with GPUX_WEBGPU_WARM=0): $ahead, $not_ahead"
entries=$(find "$home/cache/pipelines" -type f -name '????????????????????????????????' | wc -l)
check entries-on-disk '[ "$entries" -gt 0 ]' "no cache entries under $home/cache/pipelines"
[ "$fails" -eq 0 ] || exit 1
echo "pipeline-cache: every check passed"
