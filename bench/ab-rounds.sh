#!/usr/bin/env bash
# ab-rounds.sh — two gpux builds against each other on the CPU backend, in alternating rounds
# (A then B, then B then A, ROUNDS times, RUNS timed runs each after 3 warm-up runs), so that both see the same
# machine state: per case, the least round median and the least round minimum of each build, their
# ratios (B / A), and each round's B / A median ratio, sorted. What a change does to speed on a
# machine other work shares; bench/cpu-rounds.sh puts one build against ONNX Runtime instead.
#
#   bench/ab-rounds.sh A_GPUX B_GPUX CASE_DIR...      (THREADS, default 1; ROUNDS 6; RUNS 20)
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: ab-rounds.sh A_GPUX B_GPUX CASE_DIR..." >&2; exit 2; }
a=$1 b=$2
shift 2
t=${THREADS:-1} rounds=${ROUNDS:-6} runs=${RUNS:-20}
# gpux bench: CASE BACKEND RUNS LOAD FIRST MEDIAN MIN P90 RSS
one() { "$1" bench --backend cpu --threads "$t" --warmup 3 --runs "$runs" "$2" 2>/dev/null | awk -v k="$(basename "$2")" '$1 == k { print $6, $7 }'; }
echo "# $(date -u +%FT%TZ), $(nproc) cores, $t threads, $rounds rounds of $runs runs; A=$a B=$b"
for c in "$@"; do
  rows=""
  for r in $(seq "$rounds"); do
    # odd rounds A then B, even rounds B then A: the second of a pair ran a few percent faster
    # here whichever build it was (caches, clocks), which a fixed order would credit to B
    if [ $((r % 2)) = 1 ]; then ra=$(one "$a" "$c") rb=$(one "$b" "$c"); else rb=$(one "$b" "$c") ra=$(one "$a" "$c"); fi
    rows+="$ra $rb"$'\n'
  done
  printf '%s' "$rows" | awk -v k="$(basename "$c")" '
    NF == 4 { n++; am[n] = $1; an[n] = $2; bm[n] = $3; bn[n] = $4; q[n] = $3 / $1 }
    END {
      if (!n) { printf "%-16s no runs\n", k; exit }
      la = am[1]; lb = bm[1]; ma = an[1]; mb = bn[1]
      for (i = 2; i <= n; i++) { if (am[i] < la) la = am[i]; if (bm[i] < lb) lb = bm[i]; if (an[i] < ma) ma = an[i]; if (bn[i] < mb) mb = bn[i] }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (q[j] < q[i]) { x = q[i]; q[i] = q[j]; q[j] = x }
      s = ""; for (i = 1; i <= n; i++) s = s sprintf(" %.2f", q[i])
      printf "%-16s median A %.3f B %.3f (%.3f)  min A %.3f B %.3f (%.3f)  rounds B/A:%s\n", k, la, lb, lb / la, ma, mb, mb / ma, s
    }'
done
