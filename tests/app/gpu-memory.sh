#!/usr/bin/env bash
# runtime.gpu.memory is a real limit on the WebGPU backend: a GPUXfile whose model needs more
# device memory than it allows is refused at build with both numbers in one line; under a limit
# it builds and runs, and the device memory it needs is in `gpux build`'s output, the build
# record (`gpux inspect`) and `gpux serve`'s /metrics. Runs on lavapipe where there is no GPU.
#   tests/app/gpu-memory.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need node curl
node "$root/tests/app/make-models.mjs" "$tmp"

# gpuxfile NAME LIMIT: the tiny audio classifier (float[batch,samples] -> logits[batch,3]) on
# WebGPU under LIMIT
gpuxfile() {
  mkdir -p "$tmp/$1"
  cp "$tmp/audio.onnx" "$tmp/$1/model.onnx"
  printf 'name: %s\nmodel: ./model.onnx\nruntime:\n  backend: webgpu\n  gpu:\n    memory: %s\n' "$1" "$2" > "$tmp/$1/GPUXfile"
}

gpuxfile small 64B
expect_error over-limit "GPUXfile: .*model.onnx: model needs [0-9.]+ (bytes|KiB) of device memory, runtime\.gpu\.memory allows 64 bytes$" -- \
  "$gpux" build "$tmp/small"

gpuxfile roomy 64MB
"$gpux" build "$tmp/roomy" > "$tmp/build.out" 2>&1
expect build-under-limit 0 '^Built roomy:latest' -- cat "$tmp/build.out"
expect build-device-memory 0 '^ +[0-9.]+ k?B of device memory$' -- cat "$tmp/build.out"
expect build-on-webgpu 0 '\(backend webgpu\)' -- cat "$tmp/build.out"
expect inspect-device-memory 0 '^model model.onnx \(opset 13, 3 nodes, [0-9.]+ k?B of device memory\):$' -- "$gpux" inspect roomy
expect inspect-json 0 '"device_memory_bytes":[[:space:]]*[1-9][0-9]*' -- "$gpux" inspect roomy --json
# mean |x| = 2.5 -> logits [25, -24.5, 2.7]
expect run-under-limit 0 '"data":\[25,-24\.5,2\.7\]' -- "$gpux" run roomy --json --input '[[1,2,3,4]]'

# /metrics: the device memory the model's plans hold, per model
"$gpux" serve roomy --port 0 --name gm 2>"$tmp/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 300); do grep -q '^ready: ' "$tmp/serve.log" && break; sleep 0.1; done
url=http://$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/serve.log" | head -1)
expect metrics-device-memory 0 '^gpux_model_device_memory_bytes\{model="roomy"\} [1-9][0-9]*$' -- curl -s "$url/metrics"
kill $pid
wait $pid 2>/dev/null
finish
