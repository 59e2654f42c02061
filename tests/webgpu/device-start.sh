#!/usr/bin/env bash
# device-start.sh — how the WebGPU device starts: the backend its adapter is asked of, and the
# overlap of its making with the model's loading. With GPUX_WEBGPU_VERBOSE the device logs
# "adapter N ms (cpu C, this thread T; <backend> asked)": on Linux Vulkan unless
# GPUX_WEBGPU_BACKEND says otherwise ("any" lets Dawn look at every backend it has); a backend
# with no adapter here (Metal on Linux) is an error naming it, and a word that is no backend is
# an error listing the ones there are. `gpux bench` makes the device on a thread of its own while
# the model loads (gpux_device_warm); the session then logs when it asked for the device, how
# long it waited and when the device was ready: the wait is what was left of the making when
# the load was done, so asked + waited comes to the ready time. Uses an ONNX node case (lavapipe
# on machines without a GPU).
#
#   tests/webgpu/device-start.sh GPUX
set -uo pipefail
gpux=${1:?usage: device-start.sh GPUX}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cases=$(dirname "$gpux")/node
tarball=$root/../shared/conformance/onnx-node-tests.tar.xz
if [ ! -f "$cases/ONNX_VERSION" ]; then
  [ -f "$tarball" ] || { echo "device-start: $tarball not found"; exit 1; }
  tar xJf "$tarball" -C "$(dirname "$cases")" || exit 1
fi
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export GPUX_HOME=$home
unset GPUX_WEBGPU_BACKEND

fails=0
check() { # NAME CONDITION MESSAGE
  if eval "$2"; then echo "ok   $1"; else echo "FAIL $1: $3"; fails=$((fails + 1)); fi
}
asked() { # the backend the device's adapter was asked of, from `gpux devices`' log
  GPUX_WEBGPU_VERBOSE=1 "$@" "$gpux" devices 2>&1 | sed -n 's/.*webgpu: .*adapter [0-9.]* ms (cpu [^;]*; \(.*\) asked).*/\1/p' | head -1
}
if [ "$(uname -s)" = Linux ]; then
  native=Vulkan
  check default-vulkan '[ "$(asked env)" = Vulkan ]' "the adapter should be asked of Vulkan on Linux, not '$(asked env)'"
  out=$(GPUX_WEBGPU_BACKEND=metal "$gpux" devices 2>&1)
  check metal-none 'grep -q "no adapter found (Metal asked)" <<<"$out"' "GPUX_WEBGPU_BACKEND=metal should find no adapter on Linux: $out"
else
  native=$(asked env)
fi
check any-backend '[ "$(asked env GPUX_WEBGPU_BACKEND=any)" = "any backend" ]' "GPUX_WEBGPU_BACKEND=any should ask of any backend"
check named-backend '[ "$(asked env GPUX_WEBGPU_BACKEND=$native)" = "$native" ]' "GPUX_WEBGPU_BACKEND=$native should ask of $native"
out=$(GPUX_WEBGPU_BACKEND=glide "$gpux" devices 2>&1)
check bad-word 'grep -q "GPUX_WEBGPU_BACKEND=glide: not a WebGPU backend (vulkan, metal" <<<"$out"' \
  "an unknown GPUX_WEBGPU_BACKEND should be an error listing the backends: $out"

# the device made while the model loads: asked (A ms after the thread started), waited W, ready R
log=$(GPUX_WEBGPU_VERBOSE=1 "$gpux" bench --backend webgpu --runs 1 --warmup 0 "$cases/test_relu" 2>&1)
read -r a w r <<<"$(sed -n 's/.*a session asked for the device \([0-9.]*\) ms after gpux_device_warm and waited \([0-9.]*\) ms for it (ready \([0-9.]*\) ms.*/\1 \2 \3/p' <<<"$log" | head -1)"
echo "the session asked for the device ${a:-?} ms after its making started, waited ${w:-?} ms; ready at ${r:-?} ms"
check overlap-logged '[ -n "${r:-}" ]' "gpux bench should log the session's wait for the device made ahead"
# asked before the device was ready: it waits until then (plus the thread's exit, scheduling on a
# loaded machine: 100 ms of slack); asked after: hardly at all
check overlap 'awk -v a="${a:-0}" -v w="${w:-0}" -v r="${r:-0}" \
  "BEGIN { exit !(a >= 0 && r > 0 && (a >= r ? w < 100 : a + w >= r - 1 && a + w <= r + 100)) }"' \
  "the session should wait only for what was left of the device's making (asked $a, waited $w, ready $r)"
[ "$fails" -eq 0 ] || exit 1
echo "device-start: every check passed"
