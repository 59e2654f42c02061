#!/usr/bin/env bash
# bench-quant.sh — the int8 kernels against ONNX Runtime's CPU execution provider: the models of
# tests/models/quant-models.mjs at benchmark sizes (bench/quant-cases.mjs: the dynamically
# quantized conv net on a 1024x1024 image, the MLP on 4096 tokens) and, for per-node overhead, a
# chain of 1000 tiny nodes. gpux and ORT take turns,
# ROUNDS times, each round BENCH_RUNS timed runs after a warm-up, so that load from other work on
# a shared machine falls on both alike; prints each round's medians and the median ratio.
#
#   scripts/bench-quant.sh [CASE_NAME...]     (default: dynconv-1024x1024 dynmatmul-t4096 chain-1000)
#   env: BUILD (build), ROUNDS (5), BENCH_RUNS (5), BENCH_THREADS (all cores), BENCH_BACKEND (cpu)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
gpux=$build/gpux
rounds=${ROUNDS:-5}
runs=${BENCH_RUNS:-5}
threads=${BENCH_THREADS:-$(nproc)}
backend=${BENCH_BACKEND:-cpu}
[ -x "$gpux" ] || { echo "bench-quant.sh: error: $gpux not built (run make)" >&2; exit 3; }
cases=$build/bench-quant
node "$root/bench/quant-cases.mjs" "$cases" >/dev/null
if [ $# -gt 0 ]; then names=("$@"); else names=(dynconv-1024x1024 dynmatmul-t4096 chain-1000); fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), gpux $backend, kernel ${GPUX_IGEMM:-best}"
printf '%-22s %5s %12s %12s %7s\n' CASE ROUND GPUX_MS ORT_MS RATIO
for n in "${names[@]}"; do
  d=$cases/$n
  : >"$cases/$n.ratios"
  for r in $(seq 1 "$rounds"); do
    g=$("$gpux" bench --json --backend "$backend" --threads "$threads" --runs "$runs" --warmup 1 "$d" |
        sed -E 's/.*"median_ms": *([0-9.]+).*/\1/')
    o=$(node "$root/bench/peer.mjs" --json --threads "$threads" --runs "$runs" --warmup 1 "$d" |
        sed -E 's/.*"median_ms": *([0-9.]+).*/\1/')
    ratio=$(awk -v g="$g" -v o="$o" 'BEGIN {printf "%.2f", g / o}')
    echo "$ratio" >>"$cases/$n.ratios"
    printf '%-22s %5s %12.3f %12.3f %7s\n' "$n" "$r" "$g" "$o" "$ratio"
  done
  printf '%-22s median ratio gpux/ORT: %s\n' "$n" "$(median <"$cases/$n.ratios")"
done
