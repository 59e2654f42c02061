#!/usr/bin/env bash
# `gpux init` templates end to end with tiny models written by make-models.mjs: each template's
# GPUXfile, as generated, builds and runs — image classification on a rendered image, text
# classification through the WordPiece tokenizer, audio classification on a spoken WAV, and
# blank (inputs and outputs read from the model) on numbers given as JSON.
#   tests/app/templates.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need convert node espeak-ng
node "$root/tests/app/make-models.mjs" "$tmp"
cd "$tmp"

expect init-image 0 'Created app-image/GPUXfile' -- "$gpux" init app-image --template image-classification
cp image.onnx app-image/model.onnx
printf 'cat\ndog\nbird\nfish\n' > app-image/labels.txt
expect build-image 0 '^Built app-image:0.1 .*input +pixel_values: generated image' -- bash -c "'$gpux' build -q app-image | tr '\n' ' '"
render "Hello" line.png
expect run-image 0 '^(cat|dog|bird|fish) 0\.[0-9]{4}$' -- "$gpux" run app-image --input line.png
expect run-image-top 0 '"labels":\[\{"index":[0-9],"label":"(cat|dog|bird|fish)","score":' -- "$gpux" run app-image --json --input line.png

expect init-text 0 'Created app-text/GPUXfile' -- "$gpux" init app-text --template text-classification
cp text.onnx app-text/model.onnx
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\ngreat\nfilm\nbad\n' > app-text/vocab.txt
expect build-text 0 '^Built app-text:0.1 ' -- "$gpux" build -q app-text
# ids [CLS]=2 a=5 great=6 film=7 [SEP]=3: mean 4.6 -> logits 0.046, -0.046 -> negative first
expect run-text 0 '^\{"sentiment": "negative", "confidence": 0\.5230\}$' -- "$gpux" run app-text --input "A great film"
expect run-text-stdin 0 '^\{"sentiment": "negative", "confidence": 0\.5' -- bash -c "echo 'a bad film' | '$gpux' run app-text"
expect run-text-repl 0 '^\{"sentiment": "negative", "confidence": 0\.[0-9]{4}\}$' -- bash -c "printf '[PAD]\n' | '$gpux' run app-text --interactive"
expect run-text-json 0 '"labels":\[\{"index":0,"label":"negative","score":0\.52[0-9]*\},\{"index":1,"label":"positive".*"sentiment":"negative","confidence":0\.52' -- "$gpux" run app-text --input "A great film" --json

expect init-audio 0 'Created app-audio/GPUXfile' -- "$gpux" init app-audio --template audio
cp audio.onnx app-audio/model.onnx
printf 'speech\nsilence\nnoise\n' > app-audio/labels.txt
expect build-audio 0 '^Built app-audio:0.1 ' -- "$gpux" build -q app-audio
espeak-ng -w speech.wav "hello there"
expect run-audio 0 '^speech 0\.[0-9]{4}$' -- "$gpux" run app-audio --input speech.wav

expect init-blank 0 'Created app-blank/GPUXfile' -- "$gpux" init app-blank
cp audio.onnx app-blank/model.onnx
expect build-blank 0 '^Built app-blank:0.1 .*generated zeros' -- bash -c "'$gpux' build -q app-blank | tr '\n' ' '"
expect run-blank 0 '^logits float32\[1,3\]: 1 -0.5 0.3$' -- "$gpux" run app-blank --input '[[0.1, -0.1, 0.1, -0.1]]'
expect run-blank-named 0 '^logits float32\[1,3\]: 1 -0.5 0.3$' -- "$gpux" run app-blank --input 'audio=0.1 -0.1 0.1 -0.1'
expect run-blank-json 0 '"data":\[1,-0.5,0.3\]' -- "$gpux" run app-blank --json --input '[[0.1, -0.1, 0.1, -0.1]]'
expect run-json-backend-cpu 0 '"backend":"cpu"' -- "$gpux" run app-blank --json --backend cpu --input '[[0.1, -0.1, 0.1, -0.1]]'
# auto says why it chose the CPU: here the only WebGPU adapter is lavapipe, or none loads
expect run-json-backend-why 0 '"backend":"cpu","backend_reason":"the only WebGPU adapter is a software renderer' -- "$gpux" run app-blank --json --backend auto --input '[[0.1, -0.1, 0.1, -0.1]]'
expect run-json-backend-why-nolib 0 '"backend_reason":"no usable WebGPU device: no WebGPU library' -- env GPUX_WEBGPU_LIB=/nonexistent "$gpux" run app-blank --json --backend auto --input '[[0.1, -0.1, 0.1, -0.1]]'
expect run-json-no-reason-when-asked 0 '^0$' -- bash -c "'$gpux' run app-blank --json --backend cpu --input '[[0.1, -0.1, 0.1, -0.1]]' | grep -c backend_reason || true"
expect run-json-backend-webgpu 0 '"backend":"webgpu"' -- "$gpux" run app-blank --json --backend webgpu --input '[[0.1, -0.1, 0.1, -0.1]]'

# a model without a GPUXfile: run the file or a folder holding only it; init --model from it
expect run-bare-file 0 '^logits float32\[1,3\]: 1 -0.5 0.3$' -- "$gpux" run audio.onnx --input '[[0.1, -0.1, 0.1, -0.1]]'
mkdir -p bare-dir bare-two && cp audio.onnx bare-dir/ && cp audio.onnx text.onnx bare-two/
expect run-bare-dir 0 '^logits float32\[1,3\]: 1 -0.5 0.3$' -- "$gpux" run ./bare-dir --input '[[0.1, -0.1, 0.1, -0.1]]'
expect_error run-bare-two "bare-two: no GPUXfile and 2 models \((audio|text).onnx, (audio|text).onnx\): name one" -- "$gpux" run ./bare-two --input 1
# a missing input: the command line says how to give it; an HTTP client gets no command-line hint
expect_error run-missing-input "input 'attention_mask' is missing: it takes .* \(--input attention_mask=VALUE\)$" -- "$gpux" run text.onnx --input 'input_ids=[[1, 2]]'
"$gpux" serve -d text.onnx --name bare-text --port 0 >/dev/null 2>&1
bt=http://$("$gpux" ps --json | grep -o '"name":"bare-text".*' | grep -o '"port":[0-9]*' | head -1 | sed 's/"port":/127.0.0.1:/')
expect predict-missing-input 0 "^\{\"error\":\"input 'attention_mask' is missing: it takes numbers \(JSON, a list, \.npy or TensorProto \.pb\)\"\}$" -- curl -s "$bt/predict" -d '{"inputs":{"input_ids":[[1,2]]}}'
"$gpux" stop bare-text >/dev/null 2>&1
expect build-bare 0 '^Built audio:latest ' -- "$gpux" build -q audio.onnx
expect run-built-bare 0 '^logits float32\[1,3\]: 1 -0.5 0.3$' -- "$gpux" run audio --input '[[0.1, -0.1, 0.1, -0.1]]'
expect init-model 0 'Next: `gpux build app-model`' -- "$gpux" init app-model --model audio.onnx
expect init-model-io 0 'name: "audio" type: tensor dtype: float32 shape: \[batch, samples\]' -- bash -c "tr '\n' ' ' < app-model/GPUXfile | tr -s ' '"
expect run-init-model 0 '^logits float32\[1,3\]: 1 -0.5 0.3$' -- "$gpux" run ./app-model --input '[[0.1, -0.1, 0.1, -0.1]]'
expect_error init-model-corrupt "bad.onnx: " -- bash -c "head -c 100 /dev/urandom > bad.onnx; '$gpux' init app-bad --model bad.onnx"
expect init-model-corrupt-nothing-made 0 '^none$' -- bash -c "ls app-bad 2>/dev/null || echo none"
mkdir -p app-has && cp audio.onnx app-has/model.onnx
expect init-model-present 0 'Next: `gpux build app-has`' -- "$gpux" init app-has

# `backend: gpu` in a GPUXfile and `--backend gpu` on the command line are the WebGPU backend
mkdir -p app-gpu
cp audio.onnx app-gpu/model.onnx
printf 'name: app-gpu\nmodel: model.onnx\nruntime: {backend: gpu}\n' > app-gpu/GPUXfile
expect build-backend-gpu 0 '\(backend webgpu\)' -- "$gpux" build app-gpu
expect build-backend-gpu-option 0 '\(backend webgpu\)' -- "$gpux" build -q app-blank --backend gpu

# a two-step pipeline: image.onnx's logits feed scale.onnx's x by position
mkdir -p pipe
cp image.onnx scale.onnx pipe/
printf 'cat\ndog\nbird\nfish\n' > pipe/labels.txt
cat > pipe/GPUXfile <<'YAML'
name: pipe
pipeline:
  steps:
    - {name: classify, model: image.onnx}
    - {name: sharpen, model: scale.onnx}
preprocessing:
  image: {resize: {width: 224, height: 224}}
postprocessing: {softmax: true, top_k: 2, labels: labels.txt}
YAML
expect build-pipeline 0 '^Built pipe:latest \(?.*3 layers' -- "$gpux" build -q pipe
expect run-pipeline 0 '^(cat|dog|bird|fish) 0\.[0-9]{4}$' -- "$gpux" run pipe --input line.png
expect run-pipeline-json 0 '"name":"scaled","dtype":"float32","shape":\[1,4\]' -- "$gpux" run pipe --json --input line.png
finish
