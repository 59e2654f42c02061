#!/usr/bin/env bash
# wild.sh — the "wild" corpus test: small real architectures as users export them (TorchScript
# exporter at opsets 13 and 17, the dynamo exporter, float16 conversion, ONNX Runtime's dynamic and
# static quantization), made by bench/wild-corpus.py with ONNX Runtime's CPU outputs as reference
# and kept in tests/models/wild.tar.xz. Every case must load and match on BACKEND, with a tolerance
# per number format (float16 and integer chains round differently from float32; see below).
# tests/models/wild-pass-MODE.txt lists the cases that must pass in each mode (cpu, webgpu, and
# webgpu-nofb: on the GPU with no node on the CPU); like the conformance lists it only ratchets up:
# a listed case that fails fails the test, a passing case not listed is printed to be added.
#
#   tests/models/wild.sh GPUX_BIN WORKDIR [cpu|webgpu|webgpu-nofb]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: wild.sh GPUX_BIN WORKDIR [cpu|webgpu|webgpu-nofb]"
gpux=${1:?$usage}
work=${2:?$usage}
mode=${3:-cpu}
backend=${mode%-nofb}
extra=()
[ "$mode" = webgpu-nofb ] && extra=(--no-fallback)
passlist=$here/wild-pass-$mode.txt
tarball=$here/wild.tar.xz

# unpack once per tarball version
stamp=$work/.unpacked-$(sha256sum "$tarball" | cut -c1-16)
if [ ! -f "$stamp" ]; then
  rm -rf "$work" && mkdir -p "$work"
  tar xJf "$tarball" -C "$work"
  touch "$stamp"
fi
list=$work/wild/cases.tsv
[ -s "$list" ] || { echo "wild.sh: error: $list missing or empty" >&2; exit 3; }

# tolerance per number format: float32 as the other model tests; float16 rounds every op's result
# to 11 bits; quantized chains can move a value by one quantization step where float rounding
# differs, which the last layers scale up.
tol() {
  case $1 in
    float32) echo "1e-3 1e-4" ;;
    float16) echo "2e-2 2e-2" ;;
    int8-*) echo "5e-2 5e-2" ;;
    *) echo "1e-3 1e-4" ;;
  esac
}

passed=$(mktemp)
trap 'rm -f "$passed"' EXIT
total=0
for dtype in $(cut -f4 "$list" | sort -u); do
  mapfile -t dirs < <(awk -F'\t' -v t="$dtype" '$4 == t { print $1 }' "$list" | sed "s|^|$work/wild/|")
  [ ${#dirs[@]} -gt 0 ] || continue
  read -r rtol atol <<<"$(tol "$dtype")"
  echo "== $dtype: ${#dirs[@]} cases, rtol $rtol atol $atol, $mode"
  total=$((total + ${#dirs[@]}))
  # verify's exit status is not used: the pass list decides
  "$gpux" verify --backend "$backend" "${extra[@]}" --rtol "$rtol" --atol "$atol" "${dirs[@]}" 2>&1 |
    tee /dev/stderr | sed -n 's/^PASS \([^ :]*\).*/\1/p' >> "$passed" || true
done
sort -u -o "$passed" "$passed"
[ -f "$passlist" ] || { echo "wild.sh: error: $passlist missing" >&2; exit 3; }
listed=$(sed -e '/^#/d' -e '/^$/d' "$passlist" | sort -u)
missing=$(comm -23 <(echo "$listed" | sed '/^$/d') "$passed")
new=$(comm -13 <(echo "$listed" | sed '/^$/d') "$passed")
echo "wild.sh: $(wc -l < "$passed") of $total cases pass ($mode)"
[ -z "$new" ] || echo "wild.sh: passing but not in $(basename "$passlist") (add them): $(echo $new)"
if [ -n "$missing" ]; then
  echo "wild.sh: FAILED: listed in $(basename "$passlist") but not passing: $(echo $missing)" >&2
  exit 1
fi
echo "wild.sh: every listed case passes ($mode)"
