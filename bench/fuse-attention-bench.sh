#!/usr/bin/env bash
# fuse-attention-bench.sh — whether the attention rewrite (runtime/fuse-attention.c) pays on a
# backend: for each test-case folder, gpux bench's median ms per inference with the rewrite off
# (GPUX_FUSE_ATTENTION=0) and on (=1), the same build, in the same run, and on / off. WebGPU
# sessions skip the rewrite unless told (runtime/session.c); on a GPU where "on" is faster on every
# case, it can go on there too.
#
#   bench/fuse-attention-bench.sh GPUX_BIN [--backend webgpu|cpu] [--runs N] CASE_DIR...
#
# Cases: `node bench/cpu-cases.mjs OUTDIR` writes attn-h12-s128 and -s384 (the attention graph
# alone), bert-d768-l2-s128/-s384 and gpt-d768-l2-s64/-s128; tests/models/wild.tar.xz holds small
# exported BERT, GPT-2 and ViT (wild/bert-ts17, ...).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage="usage: fuse-attention-bench.sh GPUX_BIN [--backend webgpu|cpu] [--runs N] CASE_DIR..."
gpux=${1:?$usage}
shift
backend=webgpu runs=30
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
median() { # median CASE FUSE
  GPUX_FUSE_ATTENTION=$2 timeout 600 "$gpux" bench --backend "$backend" --runs "$runs" --warmup 5 --json "$1" 2>/dev/null |
    sed -n 's/.*"median_ms":\([0-9.]*\).*/\1/p'
}
printf '%-24s %8s %12s %12s %8s\n' CASE BACKEND OFF_MS ON_MS ON/OFF
for c in "$@"; do
  off=$(median "$c" 0) on=$(median "$c" 1)
  printf '%-24s %8s %12s %12s %8s\n' "$(basename "$c")" "$backend" "${off:-?}" "${on:-?}" "$(ratio "$on" "$off")"
done
