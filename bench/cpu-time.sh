#!/usr/bin/env bash
# cpu-time.sh — CPU time per inference (user + system, from perf stat's task-clock) of gpux
# builds and of ONNX Runtime's CPU EP (bench/peer.mjs) on the same test-case folders, for a
# loaded machine where wall-clock latency is noise: each runtime runs a case twice, with LO and
# with HI timed runs, and the difference of the two processes' CPU time over HI - LO is the cost
# of one run (model load, session creation and warm-up cancel out). Prints one line per case and
# runtime: CPU ms per run, and the ratio to ONNX Runtime's.
#
#   bench/cpu-time.sh [-t THREADS] [-l LO] [-h HI] NAME=GPUX_BIN[:ENV=VAL] ... -- CASE_DIR...
#   e.g. bench/cpu-time.sh before=/tmp/gpux-main after=build/gpux -- /tmp/cases/bert-d768-l2-s128
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
threads=2 lo=3 hi=23
while getopts "t:l:h:" o; do
  case $o in t) threads=$OPTARG ;; l) lo=$OPTARG ;; h) hi=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
bins=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do bins+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ ${#bins[@]} -gt 0 ] && [ $# -gt 0 ] || { echo "usage: cpu-time.sh [-t N] [-l LO] [-h HI] NAME=BIN[:ENV=VAL]... -- CASE..." >&2; exit 2; }

# CPU milliseconds of one command (perf stat task-clock)
cpu_ms() {
  perf stat -x, -e task-clock -o /dev/stdout -- "$@" 2>/dev/null >/tmp/cpu-time.$$ || true
  awk -F, '/task-clock/ { print $1 }' /tmp/cpu-time.$$
}
per_run() { # per_run CMD... (with RUNS substituted)
  local a b
  a=$(cpu_ms "${@//RUNS/$lo}")
  b=$(cpu_ms "${@//RUNS/$hi}")
  awk -v a="$a" -v b="$b" -v n=$((hi - lo)) 'BEGIN { printf "%.3f", (b - a) / n }'
}
for c in "$@"; do
  ort=$(per_run node "$here/peer.mjs" --ep cpu --threads "$threads" --warmup 2 --runs RUNS "$c")
  printf '%-28s %-10s %9s ms/run CPU\n' "$(basename "$c")" ort "$ort"
  for spec in "${bins[@]}"; do
    name=${spec%%=*} rest=${spec#*=}
    bin=${rest%%:*} env=()
    [ "$rest" != "$bin" ] && env=("${rest#*:}")
    ms=$(per_run env "${env[@]}" "$bin" bench --backend cpu --threads "$threads" --warmup 2 --runs RUNS "$c")
    printf '%-28s %-10s %9s ms/run CPU  %.2fx ORT\n' "$(basename "$c")" "$name" "$ms" "$(awk -v a="$ms" -v b="$ort" 'BEGIN { print a / b }')"
  done
done
rm -f /tmp/cpu-time.$$
