#!/usr/bin/env bash
# Conformance gate: runs ONNX's node test cases with `gpux verify` on one backend and fails when
# a case listed as passing no longer passes. The list only ratchets up: `--update` adds the cases
# that pass now and never removes any.
#
#   tests/conformance/run.sh GPUX BACKEND PASS_LIST [--update]
set -uo pipefail
gpux=$1 backend=$2 list=$3 update=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cases=$(dirname "$gpux")/node
tarball=$root/../shared/conformance/onnx-node-tests.tar.xz
if [ ! -f "$cases/ONNX_VERSION" ]; then
  [ -f "$tarball" ] || { echo "conformance: $tarball not found"; exit 1; }
  tar xJf "$tarball" -C "$(dirname "$cases")" || exit 1
fi
out=$(mktemp)
trap 'rm -f "$out" "$out.pass"' EXIT
"$gpux" verify --backend "$backend" "$cases" > "$out"
tail -n 1 "$out"
grep '^PASS ' "$out" | cut -d' ' -f2 | sort > "$out.pass"
touch "$list"
regressions=$(sort "$list" | comm -23 - "$out.pass")
new=$(sort "$list" | comm -13 - "$out.pass" | wc -l)
if [ -n "$regressions" ]; then
  echo "conformance ($backend): cases that passed before and fail now:"
  for c in $regressions; do grep -E "^(FAIL|SKIP) $c(:|$)" "$out" || echo "MISSING $c"; done
  exit 1
fi
if [ "$update" = --update ]; then
  sort -u "$list" "$out.pass" -o "$list"
  echo "conformance ($backend): $(wc -l < "$list") cases in $(basename "$list")"
elif [ "$new" -gt 0 ]; then
  echo "conformance ($backend): $new more cases pass than listed; run with --update to ratchet the list"
fi
echo "conformance ($backend): all $(wc -l < "$list") listed cases pass"
