#!/usr/bin/env bash
# bench.sh — `make bench`: gpux's CPU backend against ONNX Runtime's CPU execution provider on the
# real pretrained models (the cases tests/models/make-cases.mjs makes), measured in the same run
# on the same inputs. Prints a Markdown table: median latency of each over BENCH_RUNS runs after
# BENCH_WARMUP warm-up runs, their ratio, and each one's peak resident memory (one process per
# case and runtime). Benchmarks are not tests: nothing here gates CI.
#
#   scripts/bench.sh [CASE_NAME...]        (default: every case in <build>/models/cases.txt)
#   env: BUILD (build), BENCH_RUNS (20), BENCH_WARMUP (5), BENCH_THREADS (all cores),
#        BENCH_MIN_MS (500: fast models run more than BENCH_RUNS times, until their timed runs
#        add up to this many milliseconds)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
gpux=$build/gpux
cases=$build/models
runs=${BENCH_RUNS:-20}
warmup=${BENCH_WARMUP:-5}
threads=${BENCH_THREADS:-$(nproc)}
min_ms=${BENCH_MIN_MS:-500}

[ -x "$gpux" ] || { echo "bench.sh: error: $gpux not built (run make)" >&2; exit 3; }
command -v node >/dev/null || { echo "bench.sh: error: node not found (run scripts/install-deps.sh)" >&2; exit 3; }
node "$root/tests/models/make-cases.mjs" --keep "$cases" >&2

if [ $# -gt 0 ]; then names=("$@"); else mapfile -t names < <(grep -v '^$' "$cases/cases.txt"); fi

load=$(cut -d' ' -f1-3 /proc/loadavg)   # before: other work on the machine skews every number
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/gpux.jsonl"; : >"$tmp/ort.jsonl"
for n in "${names[@]}"; do
  d=$cases/$n
  [ -d "$d" ] || { echo "bench.sh: error: no case $d" >&2; exit 3; }
  echo "bench.sh: $n" >&2
  # one process per case and runtime, so that each peak RSS is that case's alone
  if ! "$gpux" bench --json --backend cpu --threads "$threads" --runs "$runs" --warmup "$warmup" \
         --min-time "$min_ms" "$d" >>"$tmp/gpux.jsonl" 2>"$tmp/err"; then
    msg=$(head -n 1 "$tmp/err" | sed -E 's/^gpux: error: //; s#[^ ]*/[^ ]*: ##g; s/"/\\"/g')
    printf '{"case":"%s","error":"%s"}\n' "$n" "$msg" >>"$tmp/gpux.jsonl"
  fi
  if ! node "$root/bench/peer.mjs" --json --threads "$threads" --runs "$runs" --warmup "$warmup" \
         --min-time "$min_ms" "$d" >>"$tmp/ort.jsonl" 2>"$tmp/err"; then
    msg=$(head -n 1 "$tmp/err" | sed -E 's/^peer: error: //; s#[^ ]*/[^ ]*: ##g; s/"/\\"/g')
    printf '{"case":"%s","error":"%s"}\n' "$n" "$msg" >>"$tmp/ort.jsonl"
  fi
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu" ] || cpu=$(uname -m)
# node itself, with onnxruntime-node loaded and no session: part of every ORT RSS figure below
node_base=$(cd "$root/bench" && node --input-type=module -e "
  import { createRequire } from 'node:module';
  createRequire('$root/deps/npm/node_modules/x.js')('onnxruntime-node');
  console.log((process.resourceUsage().maxRSS / 1024).toFixed(0));")

GPUX_JSON=$tmp/gpux.jsonl ORT_JSON=$tmp/ort.jsonl BENCH_CPU=$cpu BENCH_CORES=$(nproc) \
BENCH_THREADS=$threads BENCH_RUNS=$runs BENCH_WARMUP=$warmup BENCH_MIN_MS=$min_ms BENCH_LOAD="$load" NODE_BASE=$node_base \
GPUX_VERSION=$("$gpux" --version) node --input-type=module -e '
import fs from "node:fs";
const read = (f) => fs.readFileSync(f, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const g = read(process.env.GPUX_JSON), o = read(process.env.ORT_JSON);
const ort = Object.fromEntries(o.map((r) => [r.case, r]));
const E = process.env, ms = (v) => v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
const mb = (kb) => (kb / 1024).toFixed(0);
const ortVersion = o.find((r) => r.version)?.version ?? "?";
console.log(`## gpux CPU backend vs ONNX Runtime ${ortVersion} CPU EP\n`);
console.log(`- date: ${new Date().toISOString().replace("T", " ").slice(0, 16)} UTC`);
console.log(`- machine: ${E.BENCH_CPU}, ${E.BENCH_CORES} cores; ${E.GPUX_VERSION}; threads: ${E.BENCH_THREADS} each; load average before: ${E.BENCH_LOAD}`);
console.log(`- latency: median of at least ${E.BENCH_RUNS} runs (more for fast models, until they add up to ${E.BENCH_MIN_MS} ms) after ${E.BENCH_WARMUP} warm-up runs; ratio = gpux / ORT (below 1: gpux faster)`);
console.log(`- peak RSS: each process alone (one per case and runtime); ORT\x27s includes node itself, ${E.NODE_BASE} MB with onnxruntime-node loaded\n`);
console.log("| model | inputs | gpux ms | ORT ms | ratio | gpux RSS MB | ORT RSS MB |");
console.log("|---|---|---:|---:|---:|---:|---:|");
const ratios = [];
for (const r of g) {
  const p = ort[r.case] || { error: "not run" };
  const inputs = (p.inputs || "").split(" ")[0];   // the first input: the data one here
  const gm = r.error ? `error: ${r.error}` : ms(r.median_ms), om = p.error ? `error: ${p.error}` : ms(p.median_ms);
  let ratio = "—";
  if (!r.error && !p.error) { const x = r.median_ms / p.median_ms; ratios.push(x); ratio = x.toFixed(2); }
  console.log(`| ${r.case} | ${inputs} | ${gm} | ${om} | ${ratio} | ${r.error ? "—" : mb(r.peak_rss_kb)} | ${p.error ? "—" : mb(p.peak_rss_kb)} |`);
}
if (ratios.length)
  console.log(`\ngeometric mean of ratios over ${ratios.length} of ${g.length} cases: ${Math.exp(ratios.reduce((a, x) => a + Math.log(x), 0) / ratios.length).toFixed(2)}`);
'
