#!/usr/bin/env bash
# WebGPU conformance gate: runs ONNX's node test cases with `gpux verify --backend webgpu` (plus
# any extra verify options, e.g. --no-fallback) and fails when a case listed as passing no longer
# passes. With no WebGPU adapter every case fails, so this test fails loudly rather than skipping
# (machines without a GPU get Mesa's lavapipe from scripts/install-deps.sh). The list only
# ratchets up: `--update` (as the last argument) adds the cases that pass now.
#
#   tests/webgpu/conformance.sh GPUX PASS_LIST [VERIFY_OPTIONS...] [--update]
set -uo pipefail
gpux=$1 list=$2
shift 2
update=
opts=()
for a in "$@"; do
  if [ "$a" = --update ]; then update=1; else opts+=("$a"); fi
done
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cases=$(dirname "$gpux")/node
tarball=$root/../shared/conformance/onnx-node-tests.tar.xz
if [ ! -f "$cases/ONNX_VERSION" ]; then
  [ -f "$tarball" ] || { echo "conformance: $tarball not found"; exit 1; }
  tar xJf "$tarball" -C "$(dirname "$cases")" || exit 1
fi
"$gpux" devices | head -n 1
out=$(mktemp)
trap 'rm -f "$out" "$out.pass"' EXIT
"$gpux" verify --backend webgpu "${opts[@]}" "$cases" > "$out"
tail -n 1 "$out"
grep '^PASS ' "$out" | cut -d' ' -f2 | sort > "$out.pass"
touch "$list"
regressions=$(sort "$list" | comm -23 - "$out.pass")
new=$(sort "$list" | comm -13 - "$out.pass" | wc -l)
name="webgpu${opts[*]:+ ${opts[*]}}"
if [ -n "$regressions" ]; then
  echo "conformance ($name): cases that passed before and fail now:"
  for c in $regressions; do grep -E "^(FAIL|SKIP) $c(:|$)" "$out" || echo "MISSING $c"; done
  exit 1
fi
if [ -n "$update" ]; then
  sort -u "$list" "$out.pass" -o "$list"
  echo "conformance ($name): $(wc -l < "$list") cases in $(basename "$list")"
elif [ "$new" -gt 0 ]; then
  echo "conformance ($name): $new more cases pass than listed; run with --update to ratchet the list"
fi
echo "conformance ($name): all $(wc -l < "$list") listed cases pass"
