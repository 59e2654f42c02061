#!/usr/bin/env bash
# npm-rounds.sh — `make bench`'s latency comparison (gpux's CPU backend against ONNX Runtime's CPU
# EP on the real npm models, median latency over at least MS ms of runs after a warm-up) for a
# machine other work shares: ROUNDS rounds, each running every case once per runtime in turn
# (gpux builds, then ORT), and per case and runtime the lowest of its round medians, which other
# load raises but never lowers. Prints a Markdown table: each build's ms and ratio to ORT, and
# the geometric mean of the ratios over the 20 real-model cases and over all cases.
#
#   bench/npm-rounds.sh [-r ROUNDS] [-t THREADS] [-m MS] NAME=GPUX_BIN ... -- CASE_DIR...
#   e.g. bench/npm-rounds.sh -r 3 before=/tmp/base/gpux after=build/gpux -- build/models/*/
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=3 threads=2 min_ms=300
while getopts "r:t:m:" o; do
  case $o in r) rounds=$OPTARG ;; t) threads=$OPTARG ;; m) min_ms=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
bins=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do bins+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ ${#bins[@]} -gt 0 ] && [ $# -gt 0 ] || { echo "usage: npm-rounds.sh [-r N] [-t N] [-m MS] NAME=BIN... -- CASE..." >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
load=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= rounds; r++)); do
  for c in "$@"; do
    c=${c%/}
    for spec in "${bins[@]}"; do
      "${spec#*=}" bench --json --backend cpu --threads "$threads" --runs 20 --warmup 5 --min-time "$min_ms" "$c" 2>/dev/null |
        sed "s/^{/{\"rt\":\"${spec%%=*}\",/" >>"$out" || true
    done
    node "$here/peer.mjs" --json --threads "$threads" --runs 20 --warmup 5 --min-time "$min_ms" "$c" 2>/dev/null |
      sed 's/^{/{"rt":"ort",/' >>"$out" || true
  done
  echo "npm-rounds.sh: round $r of $rounds done" >&2
done
NAMES="$(printf '%s\n' "${bins[@]}" | sed 's/=.*//' | paste -sd,)" ROUNDS=$rounds LOAD_BEFORE="$load" \
  LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)" THREADS=$threads MIN_MS=$min_ms node --input-type=module -e '
import fs from "node:fs";
const rows = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const names = process.env.NAMES.split(","), best = {}, order = [];
for (const r of rows) {
  if (r.median_ms === undefined) continue;
  const k = r.case + "\t" + r.rt;
  if (!order.includes(r.case)) order.push(r.case);
  best[k] = Math.min(best[k] ?? Infinity, r.median_ms);
}
const ms = (v) => v === undefined || v === Infinity ? "—" : v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
const real = /^(det|rec|cls|melspectrogram|embedding|hey_jarvis|alexa|timer|weather|silero_vad)-/;
console.log(`rounds: ${process.env.ROUNDS}, threads: ${process.env.THREADS} each, at least 20 runs and ${process.env.MIN_MS} ms a median; load average before ${process.env.LOAD_BEFORE}, after ${process.env.LOAD_AFTER}\n`);
console.log("| model | ORT ms | " + names.map((n) => `${n} ms | ${n}/ORT`).join(" | ") + " |");
console.log("|---|---:|" + names.map(() => "---:|---:").join("|") + "|");
const logs = Object.fromEntries(names.map((n) => [n, { real: [], all: [] }]));
for (const c of order) {
  const o = best[c + "\tort"];
  const cells = names.map((n) => {
    const g = best[c + "\t" + n];
    if (g === undefined || o === undefined) return `${ms(g)} | —`;
    logs[n].all.push(Math.log(g / o));
    if (real.test(c)) logs[n].real.push(Math.log(g / o));
    return `${ms(g)} | ${(g / o).toFixed(2)}`;
  });
  console.log(`| ${c} | ${ms(o)} | ${cells.join(" | ")} |`);
}
const gm = (a) => a.length ? Math.exp(a.reduce((s, x) => s + x, 0) / a.length).toFixed(2) : "—";
for (const n of names)
  console.log(`\n${n}: geometric mean of ratios ${gm(logs[n].real)} over the ${logs[n].real.length} real-model cases, ${gm(logs[n].all)} over all ${logs[n].all.length}`);
' "$out"
