#!/usr/bin/env bash
# fusion-bench.sh — what the transformer rewrites (runtime/fuse-transformer.c) give: for each
# test-case folder, the nodes one inference runs (from `gpux bench --profile`) and gpux's median
# latency with them off (GPUX_FUSE_TRANSFORMER=0, the optimizer's other rewrites on) and on, and
# ONNX Runtime's median on the same inputs (bench/peer.mjs, its CPU or WebGPU execution provider
# as BACKEND says) at the same thread count; then gpux / ONNX Runtime with the rewrites on. One
# table row per case.
#
#   bench/fusion-bench.sh GPUX_BIN [--backend cpu|webgpu] [--threads N] [--runs N] CASE_DIR...
#
# Cases: bench/cpu-cases.mjs OUTDIR writes the GPT-style decoder at GPT-2's sizes
# (gpt-d768-l2-s128); tests/models/wild.tar.xz holds the exported BERT, GPT-2 and ViT
# (wild/bert-ts17, ...). On WebGPU the node counts are those planned on the device (each runs one
# or two dispatches; split-K products two).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: fusion-bench.sh GPUX_BIN [--backend cpu|webgpu] [--threads N] [--runs N] CASE_DIR..."
gpux=${1:?$usage}
shift
backend=cpu threads=2 runs=20
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
command -v node >/dev/null || { echo "fusion-bench.sh: error: node not found" >&2; exit 3; }

# nodes per inference and median ms of one `gpux bench --json --profile` line
summary() {
  python3 -c 'import json, sys
j = json.loads(sys.stdin.readline())
p = j["profile"]
print(round(sum(o["count"] for o in p["ops"]) / p["runs"]), j["median_ms"])'
}

printf '%-22s %-7s %9s %9s %11s %11s %11s %8s\n' CASE BACKEND NODES_OFF NODES_ON MS_OFF MS_ON ORT_MS ON/ORT
for c in "$@"; do
  name=$(basename "$c")
  read -r n_off ms_off < <(GPUX_FUSE_TRANSFORMER=0 "$gpux" bench --backend "$backend" --threads "$threads" --runs "$runs" --json --profile "$c" | summary)
  read -r n_on ms_on < <("$gpux" bench --backend "$backend" --threads "$threads" --runs "$runs" --json --profile "$c" | summary)
  ort=$(node "$here/peer.mjs" --ep "$backend" --threads "$threads" --runs "$runs" --json "$c" |
        python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["median_ms"])')
  python3 - "$name" "$backend" "$n_off" "$n_on" "$ms_off" "$ms_on" "$ort" <<'EOF'
import sys
name, backend, n_off, n_on, ms_off, ms_on, ort = sys.argv[1:]
print('%-22s %-7s %9s %9s %11.3f %11.3f %11.3f %8.2f' % (name, backend, n_off, n_on, float(ms_off), float(ms_on),
      float(ort), float(ms_on) / float(ort)))
EOF
done
