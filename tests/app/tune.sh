#!/usr/bin/env bash
# GEMM tuning for the local GPU (gpux build --tune, gpux tune; lavapipe where there is no GPU,
# with the GPU forms of the kernels so that Conv runs as an implicit GEMM): the image carries a
# tuning record keyed by the local adapter; `run --json` says it was used; a record made for
# another adapter, or data that does not parse, gives the defaults (and says why) and never a
# failure; configurations forced into the record give the untuned outputs within float
# reassociation. Nothing here depends on which candidate wins.
#   tests/app/tune.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need node python3
node "$root/tests/app/make-models.mjs" "$tmp"
export GPUX_WEBGPU_KERNELS=gpu
edit="$root/tests/app/edit-tuning.py"

mkdir -p "$tmp/cn"
cp "$tmp/convnet.onnx" "$tmp/cn/model.onnx"
printf 'name: cn\nmodel: ./model.onnx\nruntime:\n  backend: webgpu\n' > "$tmp/cn/GPUXfile"
python3 -c "
import json, math
print(json.dumps([[[[math.sin(c * 1000 + i * 32 + j) for j in range(32)] for i in range(32)] for c in range(3)]]))" > "$tmp/x.json"

"$gpux" build "$tmp/cn" -t cn:plain --no-tune > "$tmp/plain.out" 2>&1
expect build-no-tune 0 '^Built cn:plain .*1 layer\)' -- cat "$tmp/plain.out"
"$gpux" build "$tmp/cn" -t cn:tuned --tune --tune-time 12 > "$tmp/tuned.out" 2>&1
expect build-tune 0 '^Built cn:tuned .*2 layers\)' -- cat "$tmp/tuned.out"
expect build-tune-summary 0 '^  tuning    [0-9]+ of 3 GEMM shapes faster than the defaults on .* \([0-9]+ candidates, 0 rejected, [0-9.]+ s\)$' -- cat "$tmp/tuned.out"
expect build-tune-progress 0 '^build: tuning GEMMs for this GPU' -- cat "$tmp/tuned.out"
expect inspect-tuning 0 '^tuning: [0-9]+ of 3 GEMM shapes on .*\(driver .*, libwebgpu_dawn\.so\), [0-9.e-]+ s$' -- "$gpux" inspect cn:tuned
expect inspect-tuning-layer 0 'gpux-tuning\.json +application/vnd\.gpux\.tuning\.v1\+json' -- "$gpux" inspect cn:tuned

# the record is keyed by this machine's adapter
adapter=$("$gpux" devices --json | python3 -c "import json,sys; print(next(d['name'] for d in json.load(sys.stdin)['devices'] if d['backend'] == 'webgpu'))")
"$edit" "$GPUX_HOME" cn:tuned "open('$tmp/doc.json', 'w').write(__import__('json').dumps(doc))"
expect record-key 0 "^ok$" -- python3 -c "
import json
d = json.load(open('$tmp/doc.json'))
r = d['records'][0]
assert d['gpux_tuning'] == 1 and len(d['records']) == 1
assert r['adapter']['name'] == '''$adapter''', r['adapter']
assert r['adapter']['library'] and r['adapter']['driver'] and r['shapes'] == 3
print('ok')"

run() { "$gpux" run "$1" --backend webgpu --json --input @"$tmp/x.json"; }
run cn:plain > "$tmp/plain.json"
# same_outputs FILE: its logits equal the untuned run's within float reassociation
same_outputs() {
  python3 -c "
import json, sys
a = json.load(open('$tmp/plain.json'))['outputs'][0]['data']
b = json.load(open('$1'))['outputs'][0]['data']
err = max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in a)
print('max relative difference', err)
sys.exit(0 if len(a) == len(b) == 10 and err < 1e-4 else 1)"
}
run cn:tuned > "$tmp/tuned.json" 2>&1
expect run-matched 0 '"tuning":"matched","tuned_gemm_shapes":[0-9]+' -- cat "$tmp/tuned.json"
expect run-tuned-outputs 0 'max relative difference' -- same_outputs "$tmp/tuned.json"
expect run-untuned-no-key 1 '^0$' -- grep -c '"tuning"' "$tmp/plain.json"

# configurations forced for every GEMM shape of the model (tiles, register tiles, splits of K):
# all used, the outputs those of the defaults
"$edit" "$GPUX_HOME" cn:tuned "
g = lambda M, N, K, wx, wy, rm, rn, split: dict(M=M, N=N, K=K, batch=1, a_k_contig=True, b_n_contig=True, form='tiled', wx=wx, wy=wy, rm=rm, rn=rn, split=split)
doc['records'][0]['gemms'] = [g(16, 1024, 27, 8, 8, 2, 4, 2), g(16, 256, 144, 32, 8, 2, 1, 3), g(1, 10, 4096, 4, 16, 1, 8, 16)]"
run cn:tuned > "$tmp/forced.json" 2>&1
expect run-forced 0 '"tuning":"matched","tuned_gemm_shapes":3' -- cat "$tmp/forced.json"
expect run-forced-outputs 0 'max relative difference' -- same_outputs "$tmp/forced.json"
"$edit" "$GPUX_HOME" cn:tuned "
for e in doc['records'][0]['gemms']: e.update(form='simple', wx=0, wy=0, rm=3, rn=5, split=1)"
run cn:tuned > "$tmp/simple.json" 2>&1
expect run-forced-simple 0 '"tuning":"matched","tuned_gemm_shapes":3' -- cat "$tmp/simple.json"
expect run-forced-simple-outputs 0 'max relative difference' -- same_outputs "$tmp/simple.json"

# a record made for another adapter: the defaults, and why
"$edit" "$GPUX_HOME" cn:tuned "doc['records'][0]['adapter']['name'] = 'NVIDIA H100 80GB HBM3'"
run cn:tuned > "$tmp/other.json" 2>&1
expect run-other-adapter 0 '"tuning":"defaults","tuning_reason":"tuned for NVIDIA H100 80GB HBM3, not this adapter' -- cat "$tmp/other.json"
expect run-other-outputs 0 'max relative difference' -- same_outputs "$tmp/other.json"
expect run-cpu-defaults 0 '"tuning":"defaults","tuning_reason":"the models run on the CPU backend"' -- \
  "$gpux" run cn:tuned --backend cpu --json --input @"$tmp/x.json"

# data that does not parse: a warning, the defaults, the run goes on
"$edit" "$GPUX_HOME" cn:tuned --raw '{"gpux_tuning": 1, "records": [{"adapter": {"name": "x"}, "gemms": [{"M": -1}]}'
run cn:tuned > "$tmp/corrupt.json" 2> "$tmp/corrupt.err"
expect run-corrupt 0 '"tuning":"defaults","tuning_reason":"the image.s tuning data is not valid"' -- cat "$tmp/corrupt.json"
expect run-corrupt-warning 0 '^gpux: warning: image cn:tuned: tuning data \(gpux-tuning.json\): not JSON; running with the default GEMM configurations$' -- cat "$tmp/corrupt.err"
"$edit" "$GPUX_HOME" cn:tuned --raw '{"gpux_tuning": 1, "records": [{"adapter": {"name": "x"}, "gemms": [{"M": -1}]}]}'
expect run-bad-entry 0 'tuning data \(gpux-tuning.json\): "M" is missing or out of range \(records\[0\]\.gemms\[0\]\); running with the default' -- run cn:tuned

# gpux tune: an untuned image gets this adapter's record, and a run uses it
expect tune-image 0 '^Tuned cn:plain  sha256:' -- "$gpux" tune cn:plain --tune-time 4 -q
expect tune-image-run 0 '"tuning":"matched"' -- run cn:plain
# a record of another adapter stays next to this one
"$edit" "$GPUX_HOME" cn:plain "r = dict(doc['records'][0]); r['adapter'] = dict(r['adapter'], name='other GPU'); doc['records'].insert(0, r)"
expect tune-image-again 0 '"gemm_shapes":3' -- "$gpux" tune cn:plain --tune-time 2 -q --json
"$edit" "$GPUX_HOME" cn:plain "print(sorted(r['adapter']['name'] for r in doc['records']) == sorted(['other GPU', '$adapter']))" > "$tmp/names"
expect tune-keeps-others 0 "^True$" -- cat "$tmp/names"

# where tuning does not apply, asking for it is an error
expect_error tune-on-cpu '--tune: the models run on the cpu backend, and tuning is for WebGPU.s GEMM \(use --backend webgpu\)$' -- \
  "$gpux" build "$tmp/cn" -t cn:cpu --tune --backend cpu -q
expect_error tune-no-smoke '--tune needs the smoke run' -- "$gpux" build "$tmp/cn" -t cn:x --tune --no-smoke -q
expect_error tune-time-bad "--tune-time: 'soon' is not a number of seconds above 0" -- "$gpux" build "$tmp/cn" --tune-time soon
finish
