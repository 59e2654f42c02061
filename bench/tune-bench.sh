#!/usr/bin/env bash
# tune-bench.sh — what GEMM tuning (gpux build --tune) gives: for each ONNX test-case folder
# (model.onnx and test_data_set_0/input_N.pb, as export_models.py makes them) a GPUXfile whose
# smoke run takes the case's own inputs (so the GEMM shapes tuned are the ones timed), an image
# built with --no-tune and one with --tune, then `gpux run --repeat` on the two in turn, twice.
# Prints and appends to OUTDIR/tune.jsonl one line per case: the tuning summary (shapes, tuned,
# candidates, rejected, seconds), the p50 latency of each image in each round (ms), whether the
# tuned run used its record ("matched N"), and the largest difference between the two images'
# outputs relative to each output's largest value (float reassociation: around 1e-6).
#   bash bench/tune-bench.sh GPUX OUTDIR CASE_DIR...
# TUNE_TIME (seconds, default 60), RUNS (default 50), BACKEND (default webgpu). GPUX_HOME is a
# fresh folder under OUTDIR, so compiled pipelines come from no earlier run.
set -uo pipefail
gpux=${1:?usage: tune-bench.sh GPUX OUTDIR CASE_DIR...}
out=${2:?usage: tune-bench.sh GPUX OUTDIR CASE_DIR...}
shift 2
mkdir -p "$out"
out=$(cd "$out" && pwd)
export GPUX_HOME=$out/home
tune_time=${TUNE_TIME:-60} runs=${RUNS:-50} backend=${BACKEND:-webgpu}
"$gpux" devices | head -n 1
p50() { sed -n 's/^latency over .*: p50 \([0-9.]*\) ms.*/\1/p' "$1"; }
for d in "$@"; do
  d=$(cd "$d" && pwd)
  name=$(basename "$d" | tr 'A-Z_' 'a-z-')
  w=$out/$name
  mkdir -p "$w"
  # the model's input names, in order, from an image of the bare model
  "$gpux" build "$d/model.onnx" -t "$name:probe" --no-smoke --no-tune --allow-outside -q > "$w/probe.log" 2>&1 ||
    { echo "$name: the bare model does not build (see $w/probe.log)"; continue; }
  "$gpux" inspect "$name:probe" --json > "$w/probe.json"
  python3 -c "
import json, sys
spec = json.load(open('$w/probe.json'))['config']['spec']
lines = ['name: $name', 'model: $d/model.onnx', 'runtime:', '  backend: $backend', 'inputs:']
for i, inp in enumerate(spec['inputs']):
    lines += ['  - name: ' + json.dumps(inp['name']), '    type: tensor', '    example: $d/test_data_set_0/input_%d.pb' % i]
open('$w/GPUXfile', 'w').write('\n'.join(lines) + '\n')
print(' '.join('%s=@$d/test_data_set_0/input_%d.pb' % (inp['name'], i) for i, inp in enumerate(spec['inputs'])))
" > "$w/inputs" || { echo "$name: no GPUXfile"; continue; }
  args=()
  for a in $(cat "$w/inputs"); do args+=(--input "$a"); done
  "$gpux" build "$w" -t "$name:plain" --no-tune --allow-outside -q > "$w/build-plain.log" 2>&1 ||
    { echo "$name: untuned build failed (see $w/build-plain.log)"; continue; }
  "$gpux" build "$w" -t "$name:tuned" --tune --tune-time "$tune_time" --allow-outside --json > "$w/build-tuned.json" 2> "$w/build-tuned.log" ||
    { echo "$name: tuned build failed (see $w/build-tuned.log)"; continue; }
  res=
  for round in 1 2; do
    for img in plain tuned; do
      "$gpux" run "$name:$img" --backend "$backend" --repeat "$runs" "${args[@]}" > "$w/run-$img-$round.log" 2>&1
      "$gpux" run "$name:$img" --backend "$backend" --json "${args[@]}" 2>/dev/null |
        python3 -c "import json,sys; d=json.load(sys.stdin); print(d.get('tuning','-'), d.get('tuned_gemm_shapes',''), d.get('tuning_reason',''))" > "$w/tuning-$img.txt"
      res="$res\"${img}_p50_ms_$round\": $(p50 "$w/run-$img-$round.log" || echo null), "
    done
  done
  # the tuned outputs against the untuned ones: the largest difference relative to each output's largest value
  for img in plain tuned; do "$gpux" run "$name:$img" --backend "$backend" --json --full "${args[@]}" > "$w/out-$img.json" 2>/dev/null; done
  diff=$(python3 -c "
import json
def flat(v): return [y for x in v for y in flat(x)] if isinstance(v, list) else [v]
a, b = (json.load(open('$w/out-%s.json' % i))['outputs'] for i in ('plain', 'tuned'))
worst = 0.0
for x, y in zip(a, b):
    x, y = flat(x.get('data', [])), flat(y.get('data', []))
    x, y = [float(v) for v in x if isinstance(v, (int, float))], [float(v) for v in y if isinstance(v, (int, float))]
    scale = max([abs(v) for v in x] + [1e-30])
    worst = max([worst] + [abs(p - q) / scale for p, q in zip(x, y)])
print('%.3g' % worst)" 2>/dev/null || echo null)
  line=$(python3 -c "
import json
s = json.load(open('$w/build-tuned.json'))
t = s.get('tuning', {})
r = json.loads('{' + '''$res'''.rstrip(', ') + '}')
r.update(case='$name', backend='$backend', tune_time=$tune_time, tuning=t, used=open('$w/tuning-tuned.txt').read().strip(), max_rel_diff=$diff)
print(json.dumps(r))")
  echo "$line" | tee -a "$out/tune.jsonl"
done
