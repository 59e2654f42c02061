#!/usr/bin/env bash
# attention-bench.sh — the Attention op alone on WebGPU at transformer shapes (BERT-base seq 128,
# ViT-B/16, GPT-2's 128-token prompt and one step over a 1024-position cache: see
# attention-cases.py): per case the time per run of the model's nodes from `gpux bench --profile`
# (GPU timestamps where the adapter has them) with the fused kernels and with the general one
# (GPUX_WEBGPU_ATTENTION=rows), the same build, in the same run; and BERT's attention as exported
# (MatMul, Div, Add, Softmax, MatMul: bert-chain) fused into one Attention node
# (GPUX_FUSE_ATTENTION=1) against the five nodes left alone (UNFUSED_MS).
#   on the GPU machine, after bench/device-pack.sh here:
#     source .devkit/activate.sh && bash .gpuxdist/attention-bench.sh [OUTDIR]
#   or with a build at hand: GPUX=build/gpux bench/attention-bench.sh [OUTDIR]
# Prints a table (case, fused ms, general ms, general / fused, unfused ms) and keeps the profiles
# in OUTDIR.
set -uo pipefail
out=${1:-/tmp/attention-bench}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
mkdir -p "$out"
if [ -z "${GPUX:-}" ] && [ -f "$here/gpux.tar.xz" ]; then  # the packed build (device-pack.sh)
  unpack_gpux "$here/gpux.tar.xz" /opt/gpux-attn
fi
gpux=${GPUX:-$here/../build/gpux}
runs=${RUNS:-50}
python3 "$here/attention-cases.py" "$out/cases" > /dev/null || exit 1
"$gpux" devices 2>&1 | head -n 1 | tee "$out/device.txt"
ms() { awk '$1 == "total" {print $3}' "$1"; }
printf '%-12s %10s %11s %10s %11s\n' CASE FUSED_MS GENERAL_MS GEN/FUSED UNFUSED_MS
for c in bert vit gpt2-prompt gpt2-step bert-chain; do
  for k in fused rows unfused; do
    [ $k = unfused ] && [ $c != bert-chain ] && continue
    fa=1; wa=
    [ $k = rows ] && wa=rows
    [ $k = unfused ] && fa=0
    GPUX_FUSE_ATTENTION=$fa GPUX_WEBGPU_ATTENTION=$wa timeout 300 "$gpux" bench --backend webgpu --runs "$runs" --warmup 5 \
      --profile "$out/cases/$c" > "$out/$c-$k.txt" 2>&1
  done
  f=$(ms "$out/$c-fused.txt") r=$(ms "$out/$c-rows.txt") u=-
  [ $c = bert-chain ] && u=$(ms "$out/$c-unfused.txt")
  printf '%-12s %10s %11s %10s %11s\n' "$c" "${f:-?}" "${r:-?}" "$(ratio "$r" "$f")" "${u:-?}"
done | tee "$out/table.txt"
grep -h "^note" "$out"/*-fused.txt | sort -u
