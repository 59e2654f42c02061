#!/usr/bin/env bash
# What `gpux run` gives back and takes, beyond one value: --output FILE (.json, .npy, .png over
# the input image), --full (no "..." and no data left out), --json-input (the request object
# /predict takes), --batch (several values as one stacked run), string tensors given as a JSON
# list, and build --no-smoke. Tiny models from make-models.mjs.
#   tests/app/outputs.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need node convert
node "$root/tests/app/make-models.mjs" "$tmp"
cd "$tmp"

# .npy out and back in: the values survive (scale multiplies by 10)
expect npy-write 0 '^scaled float32\[1,4\]: 10 20 30 40$' -- "$gpux" run scale.onnx --input '[1,2,3,4]' --output y.npy
expect npy-header 0 "^True 0 \{'descr': '<f4', 'fortran_order': False, 'shape': \(1, 4\), \}$" -- python3 -c "
d = open('y.npy', 'rb').read()
n = d[8] + 256 * d[9]
print(d[:8] == b'\x93NUMPY\x01\x00', (10 + n) % 64, d[10:10 + n].decode().strip())"
expect npy-read-back 0 '^scaled float32\[1,4\]: 100 200 300 400$' -- "$gpux" run scale.onnx --input y.npy
expect npy-named 0 '' -- "$gpux" run scale.onnx --input '[1,2,3,4]' --output scaled=z.npy
expect npy-named-same 0 '' -- cmp y.npy z.npy
expect_error npy-no-such-output "--output nope=z.npy: no output named 'nope'" -- "$gpux" run scale.onnx --input '[1,2,3,4]' --output nope=z.npy
expect_error output-bad-ext "--output y.txt: the file must end in .json, .npy or .png" -- "$gpux" run scale.onnx --input 1 --output y.txt
expect_error npy-strings "output 't' is string, which .npy cannot hold \(use .json\)" -- "$gpux" run strings.onnx --input '["a","b"]' --output t.npy
# .json: the whole answer
expect json-write 0 '' -- "$gpux" run scale.onnx --input '[1,2,3,4]' --output y.json
expect json-data 0 '"data":\[10,20,30,40\]' -- cat y.json

# --full: an output of 100,004 values keeps its data in the JSON and every value in the text
python3 -c 'print([[0.5] * 4] * 25001)' > big.txt
expect data-omitted 0 '"data_omitted":"more than 100000 elements"' -- "$gpux" run scale.onnx --input @big.txt --json
expect full-json 0 '"shape":\[25001,4\],"data":\[5,5,5' -- "$gpux" run scale.onnx --input @big.txt --json --full
expect text-cut 0 '^scaled float32\[25001,4\]: 5 5 5 5 5 5 5 5 \.\.\.$' -- "$gpux" run scale.onnx --input @big.txt
expect full-text 0 '^100004$' -- bash -c "'$gpux' run scale.onnx --input @big.txt --full | tr ' ' '\n' | grep -c '^5$'"

# .png: a map over the input PNG of its size (the map in red), or the map alone
mkdir map && cp map.onnx map/ && printf 'model: ./map.onnx\ninputs:\n  - name: x\n    type: image\npreprocessing:\n  image: {resize: {height: 8, width: 8}, layout: NCHW}\n' > map/GPUXfile
convert -size 8x8 xc:white -fill black -draw 'rectangle 0,0 3,7' half.png
expect png-write 0 '' -- "$gpux" run map --input half.png --output m.png
expect png-size 0 '^PNG 8x8' -- identify -format '%m %wx%h\n' m.png
expect png-black-stays 0 '^0,0: \(0,0,0\)' -- bash -c "convert m.png txt:- | grep '^0,0:'"
expect png-map-red 0 '^6,3: \(25[45],127,127\)' -- bash -c "convert m.png txt:- | grep '^6,3:'"
expect png-alone 0 '^0,0: \(128,128,128\)' -- bash -c "'$gpux' run map.onnx --input \"\$(python3 -c 'print([0.5] * 192)')\" --output g.png >/dev/null && convert g.png txt:- | grep '^0,0:'"
expect_error png-not-image "no output is an image or a map" -- "$gpux" run scale.onnx --input '[1,2,3,4]' --output s.png

# the request /predict takes
printf '{"inputs": {"x": [1, 2, 3, 4]}}' > req.json
expect json-input 0 '^scaled float32\[1,4\]: 10 20 30 40$' -- "$gpux" run scale.onnx --json-input req.json
expect json-input-image 0 '^map float32\[1,1,8,8\]: 0 0 0 0 1 1 1 1 \.\.\.$' -- bash -c "printf '{\"image\": \"%s\"}' \$(base64 -w0 half.png) | '$gpux' run map --json-input -"
expect_error json-input-unknown "--json-input req2.json: unknown input 'y' \(model '.*' takes: x\)" -- bash -c "printf '{\"inputs\": {\"y\": 1}}' > req2.json && '$gpux' run scale.onnx --json-input req2.json"
expect_error json-input-with-input "--json-input is the whole request" -- "$gpux" run scale.onnx --json-input req.json --input 1

# --batch: stacked into one run of 3 rows, one answer per value, in order
expect batch-text 0 '^\[5,6,7,8\]: scaled float32\[1,4\]: 50 60 70 80$' -- "$gpux" run scale.onnx --batch '[1,2,3,4]' '[5,6,7,8]' '[0,0,0,1]'
expect batch-json 0 '^\[\{"outputs":\[\{"name":"scaled".*"data":\[10,20,30,40\]\}\].*"batch_size":3,"input":"\[1,2,3,4\]"\},.*"data":\[0,0,0,10\].*"batch_size":3' -- "$gpux" run scale.onnx --batch '[1,2,3,4]' '[5,6,7,8]' '[0,0,0,1]' --json
expect batch-files 0 '^b.npy: scaled float32\[1,4\]: 1000 2000 3000 4000$' -- bash -c "'$gpux' run scale.onnx --input y.npy --output b.npy >/dev/null && '$gpux' run scale.onnx --batch y.npy b.npy"
expect_error batch-bad-item "batch item 2: input 'x'" -- "$gpux" run scale.onnx --batch '[1,2,3,4]' nonsense
expect_error batch-needs-values "--batch needs values" -- "$gpux" run scale.onnx --batch
expect_error unexpected-arg "unexpected 'y.npy': give values with --input, or several as one batch with --batch" -- "$gpux" run scale.onnx y.npy b.npy

# string tensors: a JSON list is the tensor's strings
expect strings-list 0 '"shape":\[2\],"data":\["ab","cd"\]' -- "$gpux" run strings.onnx --input '["ab","cd"]' --json
expect strings-text 0 '^t string\[2\]: "ab" "cd"$' -- "$gpux" run strings.onnx --input '["ab","cd"]'

# build --no-smoke: nothing runs at build, the image runs afterwards
mkdir ns && cp scale.onnx ns/model.onnx && printf 'model: ./model.onnx\n' > ns/GPUXfile
expect no-smoke-build 0 'latency   not measured \(--no-smoke' -- "$gpux" build -q --no-smoke ns
expect no-smoke-json 0 '"smoke_run_skipped":true' -- "$gpux" build -q --no-smoke --json ns
expect no-smoke-runs 0 '^scaled float32\[1,4\]: 10 20 30 40$' -- "$gpux" run ns --input '[1,2,3,4]'
finish
