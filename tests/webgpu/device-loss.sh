#!/usr/bin/env bash
# device-loss.sh — `gpux serve` when the WebGPU device is lost (issue 15): GPUX_TEST_DEVICE_LOST=N
# makes the N-th WebGPU run of the process find its device reported lost (lavapipe here). With
# --backend webgpu that request answers 500 naming the loss, the session makes a new device and
# the next requests answer 200 with the same numbers; /health counts the device errors. (With
# backend auto a lost device sends the session to the CPU, session.c; auto picks the CPU on
# lavapipe, a software adapter, so that path is not reached here.)
#   tests/webgpu/device-loss.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
need node curl
node "$root/tests/app/make-models.mjs" "$tmp" >/dev/null
mkdir -p "$tmp/dl" && cp "$tmp/audio.onnx" "$tmp/dl/model.onnx"
printf 'name: dl\nversion: "1"\nmodel: model.onnx\n' > "$tmp/dl/GPUXfile"
expect build 0 '^Built dl:1' -- "$gpux" build -q --backend webgpu "$tmp/dl"
body='{"inputs":[{"name":"audio","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
want='"data":\[25,-24\.5,2\.70000005\]'

# serve BACKEND: a server where the 2nd WebGPU run (the first request after the warm-up) loses the device
serve() {
  GPUX_TEST_DEVICE_LOST=2 "$gpux" serve dl --port 0 --backend "$1" 2>"$tmp/serve-$1.log" &
  pid=$!
  for _ in $(seq 300); do grep -q '^ready: ' "$tmp/serve-$1.log" && break; sleep 0.1; done
  url=http://$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/serve-$1.log" | head -1)
}
infer() { curl -s -m 60 -w ' %{http_code}' -d "$body" "$url/v2/models/dl/infer"; }

serve webgpu
expect webgpu-lost 0 '"error":".*WebGPU device lost while running the model: injected by GPUX_TEST_DEVICE_LOST=2[^"]*"\} 500$' -- infer
expect webgpu-next 0 "$want.* 200\$" -- infer
expect webgpu-again 0 "$want.* 200\$" -- infer
expect webgpu-health 0 '"ready":true.*"device_errors":1,"last_device_error":"dl: .*device lost' -- curl -s "$url/health"
expect webgpu-new-device 0 'device was lost; continuing on a new one' -- cat "$tmp/serve-webgpu.log"
kill -TERM "$pid"; wait "$pid"

finish
