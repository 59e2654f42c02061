#!/usr/bin/env bash
# cpu-time.sh — CPU time per inference (user + system, from perf stat's task-clock) of gpux
# builds and of ONNX Runtime's CPU EP (bench/peer.mjs) on the same test-case folders, for a
# loaded machine where wall-clock latency is noise: each runtime runs a case twice, with LO and
# with HI timed runs, and the difference of the two processes' CPU time over HI - LO is the cost
# of one run (model load, session creation and warm-up cancel out). Prints one line per case and
# runtime: CPU ms per run, and the ratio to ONNX Runtime's; with several cases, the geometric
# mean of each build's ratios at the end.
#
#   bench/cpu-time.sh [-t THREADS] [-l LO] [-h HI] [-m MS] [-r ROUNDS] [-s] NAME=GPUX_BIN[:ENV=VAL] ... -- CASE_DIR...
#   e.g. bench/cpu-time.sh before=/tmp/gpux-main after=build/gpux -- /tmp/cases/bert-d768-l2-s128
#
# -m MS: per case, raise HI until the timed difference is about MS ms of work (from a quick
# `gpux bench` of the first build), so that a model of 0.02 ms is not lost in the few ms by which
# the start of a process varies (the real npm models: `-m 400 ... -- build/models/*`).
# -r ROUNDS: per case, ROUNDS rounds of ONNX Runtime then each build in turn, each keeping its
# lowest CPU time per run: on a machine other work shares, whose processes evict the caches of
# the one measured, one round's ratio can be off by half (default 1).
# -s: ONNX Runtime's threads do not spin between parallel sections (peer.mjs --no-spin): with
# more than one thread, its spinning otherwise counts as CPU time. gpux's workers spin too (a
# short while after each job) and that counts against gpux either way.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
threads=2 lo=3 hi=23 min_ms=0 rounds=1 spin=()
while getopts "t:l:h:m:r:s" o; do
  case $o in t) threads=$OPTARG ;; l) lo=$OPTARG ;; h) hi=$OPTARG ;; m) min_ms=$OPTARG ;; r) rounds=$OPTARG ;;
             s) spin=(--no-spin) ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
bins=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do bins+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ ${#bins[@]} -gt 0 ] && [ $# -gt 0 ] || { echo "usage: cpu-time.sh [-t N] [-l LO] [-h HI] [-m MS] [-r ROUNDS] [-s] NAME=BIN[:ENV=VAL]... -- CASE..." >&2; exit 2; }

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
hi0=$hi
ratios=()   # "NAME RATIO" per case and build
for c in "$@"; do
  hi=$hi0
  if [ "$min_ms" != 0 ]; then
    first=${bins[0]#*=}; first=${first%%:*}
    est=$("$first" bench --json --backend cpu --threads "$threads" --warmup 2 --runs 5 "$c" 2>/dev/null |
          sed -n 's/.*"median_ms":\([0-9.e+-]*\).*/\1/p')
    hi=$(awk -v e="${est:-1}" -v m="$min_ms" -v h="$hi0" -v l="$lo" \
         'BEGIN { n = int(m / (e > 0 ? e : 1)) + l; print (n > h ? n : h) }')
  fi
  declare -A best=()
  for ((round = 0; round < rounds; round++)); do
    ms=$(per_run node "$here/peer.mjs" --ep cpu ${spin[@]+"${spin[@]}"} --threads "$threads" --warmup 2 --runs RUNS "$c")
    best[ort]=$(awk -v a="$ms" -v b="${best[ort]:-}" 'BEGIN { print (b == "" || a < b) ? a : b }')
    for spec in "${bins[@]}"; do
      name=${spec%%=*} rest=${spec#*=}
      bin=${rest%%:*} env=()
      [ "$rest" != "$bin" ] && env=("${rest#*:}")
      ms=$(per_run env "${env[@]}" "$bin" bench --backend cpu --threads "$threads" --warmup 2 --runs RUNS "$c")
      best[$name]=$(awk -v a="$ms" -v b="${best[$name]:-}" 'BEGIN { print (b == "" || a < b) ? a : b }')
    done
  done
  ort=${best[ort]}
  printf '%-28s %-10s %9s ms/run CPU  (%d runs, %d rounds)\n' "$(basename "$c")" ort "$ort" $((hi - lo)) "$rounds"
  for spec in "${bins[@]}"; do
    name=${spec%%=*} ms=${best[${spec%%=*}]}
    r=$(awk -v a="$ms" -v b="$ort" 'BEGIN { print a / b }')
    ratios+=("$name $r")
    printf '%-28s %-10s %9s ms/run CPU  %.2fx ORT\n' "$(basename "$c")" "$name" "$ms" "$r"
  done
  unset best
done
if [ $# -gt 1 ]; then
  printf '%s\n' "${ratios[@]}" | awk '$2 > 0 { s[$1] += log($2); n[$1]++ }
    END { for (k in s) printf "geometric mean %-10s %.3fx ORT over %d cases\n", k, exp(s[k] / n[k]), n[k] }'
fi
rm -f /tmp/cpu-time.$$
