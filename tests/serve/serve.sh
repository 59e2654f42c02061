#!/usr/bin/env bash
# `gpux serve` over real HTTP on loopback, on the CPU backend: every endpoint (health, OIP v2
# metadata/ready/infer with the protocol's examples, outputs selection and classification,
# /predict as `gpux run --json` answers it, /metrics scraped by a Prometheus-text parser,
# /openapi.json), bad input (400/404/405/413 naming the problem), dynamic batching with
# concurrent callers, a full queue (503 + Retry-After) and timeouts (504), clients that vanish
# mid-request, a wrk load test with zero non-2xx and flat memory, graceful SIGTERM with requests
# in flight, and -d / ps / logs / stop.
#   tests/serve/serve.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
need convert node curl
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
client() { node "$root/tests/serve/client.mjs" "$@"; }

node "$root/tests/app/make-models.mjs" "$tmp"
mkdir -p "$tmp/tiny"
cp "$tmp/audio.onnx" "$tmp/tiny/model.onnx"
cat > "$tmp/tiny/GPUXfile" <<'YAML'
name: tiny
version: "2"
model: model.onnx
outputs:
  - name: logits
    labels: [speech, silence, noise]
serving:
  max_batch_size: 16
  max_queue_delay_ms: 40
YAML
expect build-tiny 0 '^Built tiny:2' -- "$gpux" build -q --backend cpu "$tmp/tiny"
expect build-td 0 '^Built text-direction:1.0' -- "$gpux" build -q --allow-outside --backend cpu "$root/examples/text-direction"
render "Hello world" "$tmp/line.png"

# start NAME ARGS...: a server on a free port in the background; sets url and pid
start() {
  local name=$1
  shift
  "$gpux" serve "$@" --port 0 --backend cpu --name "$name" 2>"$tmp/$name.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 150); do grep -q '^ready: ' "$tmp/$name.log" && break; sleep 0.1; done
  url=http://$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/$name.log" | head -1)
}

# http NAME WANT_STATUS PATTERN -- CURL_ARGS...: the status must match and the body match PATTERN
http() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local code
  code=$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$@")
  if [ "$code" != "$want" ] || ! grep -Eq -- "$pattern" "$tmp/body"; then
    echo "FAIL $name: status $code (want $want), body:"; head -c 600 "$tmp/body" | sed 's/^/  /'; echo
    fails=$((fails + 1))
  else
    passes=$((passes + 1))
  fi
}

start main tiny text-direction --max-body 1M
main_pid=$pid
u=$url
expect ready-line 0 'listening on http://127.0.0.1:[0-9]+' -- cat "$tmp/main.log"

# ---- health and metadata ----
http health 200 '"live":true,"ready":true,"models":\["tiny","text-direction"\]' -- "$u/health"
http v2-live 200 '^\{"live":true\}$' -- "$u/v2/health/live"
http v2-ready 200 '^\{"ready":true\}$' -- "$u/v2/health/ready"
http v2-server 200 '"name":"gpux",.*"extensions":\["classification"' -- "$u/v2"
http repository-index 200 '^\[\{"name":"tiny","version":"[^"]+","state":"READY","reason":""\},\{"name":"text-direction",' -- "$u/v2/repository/index" -X POST
http repository-index-ready 200 '"state":"READY"' -- "$u/v2/repository/index" -d '{"ready":true}'
http repository-index-bad 400 'not a JSON object' -- "$u/v2/repository/index" -d '[1'
http repository-index-get 405 'use POST' -- "$u/v2/repository/index"
http v2-model 200 '^\{"name":"tiny","versions":\["2"\],"platform":"onnx_gpux","inputs":\[\{"name":"audio","datatype":"FP32","shape":\[-1,-1\]\}\],"outputs":\[\{"name":"logits","datatype":"FP32","shape":\[-1,3\]\}\]\}$' -- "$u/v2/models/tiny"
http v2-model-version 200 '"name":"tiny"' -- "$u/v2/models/tiny/versions/2"
http v2-model-ready 200 '^\{"name":"tiny","ready":true\}$' -- "$u/v2/models/tiny/ready"
http openapi 200 '"openapi":"3.0.3".*"/models/tiny/predict".*"/v2/models/tiny/infer".*"/models/text-direction/predict"' -- "$u/openapi.json"

# ---- OIP v2 inference: the protocol's request shape, nested and flat data ----
# mean |x| per row: 2.5 and 6.5 -> logits [10m, -10m + 0.5, m + 0.2]
http oip-infer 200 '^\{"model_name":"tiny","model_version":"2","id":"42","outputs":\[\{"name":"logits","datatype":"FP32","shape":\[2,3\],"data":\[25,-24.5,2.70000005,65,-64.5,6.69999981\]\}\]\}$' -- \
  "$u/v2/models/tiny/infer" -H 'Content-Type: application/json' \
  -d '{"id":"42","inputs":[{"name":"audio","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[5,6,7,8]]}]}'
http oip-flat 200 '"shape":\[1,3\],"data":\[25,-24.5,2.70000005\]' -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"logits"}]}'
http oip-classification 200 '"outputs":\[\{"name":"logits","datatype":"BYTES","shape":\[2,2\],"data":\["25.000000:0:speech","2.700000:2:noise","65.000000:0:speech","6.700000:2:noise"\]\}\]' -- \
  "$u/v2/models/tiny/infer" -d '{"inputs":[{"name":"audio","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}],"outputs":[{"name":"logits","parameters":{"classification":2}}]}'
http oip-classification-request 200 '"data":\["25.000000:0:speech"\]' -- \
  "$u/v2/models/tiny/infer" -d '{"parameters":{"classification":1},"inputs":[{"name":"audio","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
# Triton's binary tensor extension: a JSON header, then the raw float32 bytes
printf '{"inputs":[{"name":"audio","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}' > "$tmp/bin.req"
hl=$(stat -c %s "$tmp/bin.req")
printf '\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40' >> "$tmp/bin.req"
http oip-binary-in 200 '"data":\[25,-24.5,2.70000005\]' -- "$u/v2/models/tiny/infer" \
  -H "Inference-Header-Content-Length: $hl" -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/bin.req"

# ---- /predict answers what `gpux run --json` prints ----
want=$("$gpux" run tiny --json --backend cpu --input '[[0.1, -0.1, 0.1, -0.1]]' | sed 's/,"timings".*//')
http predict-inputs 200 "^$(sed 's/[][{}.]/\\&/g' <<<"$want")," -- "$u/models/tiny/predict" -d '{"inputs":{"audio":[[0.1,-0.1,0.1,-0.1]]}}'
http predict-image 200 '"labels":\[\{"index":0,"label":"0","score":0\.99' -- "$u/models/text-direction/predict" \
  -d "{\"image\":\"$(base64 -w0 "$tmp/line.png")\"}"
http predict-raw-png 200 '"label":"0"' -- "$u/models/text-direction/predict" -H 'Content-Type: image/png' --data-binary @"$tmp/line.png"
http predict-two-models 400 '"error":"2 models are served: POST /models/NAME/predict"' -- "$u/predict" -d '{"text":"x"}'

# ---- bad input: a clear 4xx naming the problem, and the server lives ----
http bad-json 400 '^\{"error":"malformed JSON at byte [0-9]+"\}$' -- "$u/v2/models/tiny/infer" -d '{"inputs":[{"name":'
http bad-dtype 400 "input 'audio': datatype INT64 does not match the model's FP32" -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}'
http bad-shape 400 "input 'audio': shape \[4\] does not match the model's \[-1,-1\]" -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}'
http bad-count 400 "input 'audio': 3 values in 'data', shape \[1,4\] holds 4" -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]}'
http bad-value 400 "input 'audio': data\[1\] is a string, not a number" -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[1,2],"datatype":"FP32","data":[1,"x"]}]}'
http bad-datatype 400 "input 'audio': unknown datatype 'FLOAT'" -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[1,4],"datatype":"FLOAT","data":[1,2,3,4]}]}'
http unknown-input 400 "unknown input 'wave' \(model 'tiny' takes: audio\)" -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"wave","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
http missing-input 400 "input 'audio' is missing" -- "$u/v2/models/tiny/infer" -d '{"inputs":[]}'
http unknown-output 400 "unknown output 'probs' of model 'tiny'" -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"probs"}]}'
http unknown-model 404 "unknown model 'nope' \(served: tiny, text-direction\)" -- "$u/v2/models/nope/infer" -d '{}'
http unknown-version 404 "model 'tiny' has no version '7'" -- "$u/v2/models/tiny/versions/7/ready"
http unknown-endpoint 404 'no such endpoint: GET /v3' -- "$u/v3"
http wrong-method 405 'GET /v2/models/tiny/infer: use POST' -- "$u/v2/models/tiny/infer"
for path in /v2/health/ready /v2/health/live /v2 /metrics /v2/models/tiny/ready; do
  http "wrong-method-$path" 405 "DELETE $path: use GET" -- -X DELETE "$u$path"
done
head -c 2000000 /dev/zero > "$tmp/big"
http too-large 413 'the limit is 1048576' -- "$u/v2/models/tiny/infer" --data-binary @"$tmp/big"
http too-large-chunked 413 'larger than the limit of 1048576 bytes' -- "$u/v2/models/tiny/infer" -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big"
http predict-bad-base64 400 "input 'x': not valid base64" -- "$u/models/text-direction/predict" -d '{"image":"!!!"}'
http predict-not-image 400 "input 'x' expects an image" -- "$u/models/text-direction/predict" -d "{\"image\":\"$(printf 'hello' | base64)\"}"
http predict-unknown-key 400 "unknown key 'img' \(expected text, image, audio or inputs\)" -- "$u/models/text-direction/predict" -d '{"img":"x"}'
http predict-no-text 400 "model 'text-direction' takes no text input" -- "$u/models/text-direction/predict" -d '{"text":"hi"}'
http predict-path-is-not-read 400 "input 'audio'" -- "$u/models/tiny/predict" -d '{"inputs":{"audio":"/etc/passwd"}}'
# ~600 bytes of TensorProto: a string tensor [64] carrying int64_data (8-byte values were written
# into char* slots and freed, which killed the server), and a bool tensor carrying them
hostile_pb() {
  python3 -c 'import sys
def varint(n):
    out = b""
    while True:
        b, n = n & 0x7f, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out
vals = b"".join(varint(0x4141414141414141) for _ in range(64))
sys.stdout.buffer.write(b"\x08\x40\x10" + bytes([int(sys.argv[1])]) + b"\x3a" + varint(len(vals)) + vals)' "$1"
}
hostile_pb 8 > "$tmp/hostile-string.pb"
hostile_pb 9 > "$tmp/hostile-bool.pb"
for f in hostile-string hostile-bool; do
  http "predict-$f" 400 "input 'audio'.*as a TensorProto: .*int64_data does not belong to a (string|bool) tensor" -- "$u/models/tiny/predict" \
    -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/$f.pb"
done
# declared sizes are checked against the data present before anything is allocated; numbers
# that do not fit their type are refused or clamped instead of cast
http oip-huge-shape 400 "1 values in 'data', shape \[536870912,4\] holds 2147483648" -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[536870912,4],"datatype":"FP32","data":[1]}]}'
for bsz in -1 1e30 2.5 '"16"'; do
  http "oip-binary-size-$bsz" 400 "input 'audio': binary_data_size is not a byte count" -- "$u/v2/models/tiny/infer" \
    -d "{\"inputs\":[{\"name\":\"audio\",\"shape\":[1,4],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":$bsz}}]}"
done
http oip-classification-huge 200 '"data":\["25.000000:0:speech","2.700000:2:noise","-24.500000:1:silence"\]' -- "$u/v2/models/tiny/infer" \
  -d '{"inputs":[{"name":"audio","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"logits","parameters":{"classification":1e300}}]}'
python3 -c 'import sys, struct
h = b"{\x27descr\x27: \x27<f4\x27, \x27fortran_order\x27: False, \x27shape\x27: (100000000000, 4), }"
h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
sys.stdout.buffer.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + b"\0" * 16)' > "$tmp/huge.npy"
http predict-huge-npy 400 "\.npy: 16 bytes of data, fewer than its shape needs" -- "$u/models/tiny/predict" \
  -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/huge.npy"
http predict-after-hostile 200 '"outputs"' -- "$u/models/tiny/predict" -d '{"inputs":{"audio":[[0.1,-0.1,0.1,-0.1]]}}'
http still-alive 200 '"ready":true' -- "$u/health"

# ---- dynamic batching: concurrent callers each get their own rows ----
expect batch-32 0 '^ok 32$' -- client batch "$u" tiny 32
client metrics "$u" > "$tmp/m1" 2>&1
expect metrics-parse 0 'gpux_inflight_requests' -- cat "$tmp/m1"
count=$(awk '$1=="gpux_batch_size_count{model=\"tiny\"}"{print $2}' "$tmp/m1")
sum=$(awk '$1=="gpux_batch_size_sum{model=\"tiny\"}"{print $2}' "$tmp/m1")
expect batched 0 'batched' -- bash -c "awk -v s='$sum' -v c='$count' 'BEGIN{exit !(c > 0 && s > c)}' && echo batched || echo 'sum $sum count $count'"
expect metrics-success 0 '^gpux_requests_total\{model="tiny",outcome="success"\} (3[6-9]|[4-9][0-9])$' -- cat "$tmp/m1"
expect metrics-client-error 0 '^gpux_requests_total\{model="tiny",outcome="client_error"\} [1-9][0-9]*$' -- cat "$tmp/m1"
expect metrics-load-time 0 '^gpux_model_load_seconds\{model="text-direction"\} [0-9.]+$' -- cat "$tmp/m1"
expect metrics-queue 0 '^gpux_queue_duration_seconds_count\{model="tiny"\} [1-9]' -- cat "$tmp/m1"
expect metrics-compute 0 '^gpux_compute_duration_seconds_bucket\{model="text-direction",le="\+Inf"\} [1-9]' -- cat "$tmp/m1"
expect metrics-device-memory-cpu 0 '^gpux_model_device_memory_bytes\{model="tiny"\} 0$' -- cat "$tmp/m1"

# ---- clients that vanish mid-request ----
expect disconnects 0 '^ok$' -- client disconnect 127.0.0.1 "${u##*:}"
sleep 0.2
http alive-after-disconnects 200 '"ready":true' -- "$u/health"
expect batch-after-disconnects 0 '^ok 8$' -- client batch "$u" tiny 8
expect inflight-zero 0 '^gpux_inflight_requests 1$' -- bash -c "node '$root/tests/serve/client.mjs' metrics '$u'"

# ---- load: zero non-2xx, flat memory ----
body='{"inputs":[{"name":"audio","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
if command -v wrk >/dev/null; then
  printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$body'" > "$tmp/post.lua"
  wrk -t2 -c16 -d2s -s "$tmp/post.lua" "$u/v2/models/tiny/infer" > "$tmp/wrk1" 2>&1
  rss1=$(client metrics "$u" | awk '$1=="process_resident_memory_bytes"{print $2}')
  wrk -t2 -c16 -d3s -s "$tmp/post.lua" "$u/v2/models/tiny/infer" > "$tmp/wrk2" 2>&1
  rss2=$(client metrics "$u" | awk '$1=="process_resident_memory_bytes"{print $2}')
  expect wrk-requests 0 '[1-9][0-9]* requests in' -- cat "$tmp/wrk2"
  expect wrk-no-errors 0 '^clean$' -- bash -c "! grep -E 'Non-2xx|Socket errors' '$tmp/wrk1' '$tmp/wrk2' && echo clean"
  expect flat-memory 0 'flat' -- bash -c "awk -v a='$rss1' -v b='$rss2' 'BEGIN{exit !(b - a < 16*1048576)}' && echo flat || echo 'rss $rss1 -> $rss2'"
  sed -n 's/^Requests\/sec: */wrk: req\/s /p' "$tmp/wrk2"
else
  expect load 0 'requests=[1-9][0-9]* errors=0' -- client load "$u" /v2/models/tiny/infer 3 16 "$body"
fi

# ---- a full queue (503 + Retry-After) and timeouts (504) ----
start slow tiny --max-queue 1 --max-queue-delay-ms 2000 --timeout 1.5
s=$url
req() { printf '{"inputs":[{"name":"audio","shape":[1,%d],"datatype":"FP32","data":[%s]}]}' "$1" "$(seq -s, 1 "$1")"; }
# a lone request waits 2 s for company but may wait only 1.5 s
http timeout-504 504 "model 'tiny': no answer within 1.5 s" -- "$s/v2/models/tiny/infer" -d "$(req 4)"
sleep 1
# one request forming a batch, one of another shape queued behind it: the next one is refused
# (sleeps leave room for a loaded machine to start each client)
curl -s -o /dev/null "$s/v2/models/tiny/infer" -d "$(req 4)" &
c1=$!
sleep 0.3
curl -s -o /dev/null "$s/v2/models/tiny/infer" -d "$(req 5)" &
c2=$!
sleep 0.3
http queue-full-503 503 "model 'tiny': 1 requests are queued; retry later" -- "$s/v2/models/tiny/infer" -d "$(req 6)"
expect retry-after 0 '^Retry-After: 1' -- tr -d '\r' < "$tmp/headers"
wait "$c1" "$c2"
sleep 0.5
expect slow-metrics 0 'outcome="rejected"\} 1' -- client metrics "$s"
http slow-alive 200 '"ready":true' -- "$s/health"
kill -INT "$pid"; wait "$pid"
expect sigint-exit 0 '' -- true

# ---- graceful SIGTERM with requests in flight: they finish, exit 0 ----
start grace tiny --max-queue-delay-ms 600
client batch "$url" tiny 6 > "$tmp/inflight" 2>&1 &
cpid=$!
# SIGTERM only once the requests are in: the first one is queued (a slow machine may take a
# while to start the client)
for _ in $(seq 200); do
  curl -s "$url/metrics" | grep -Eq 'gpux_queue_length\{model="tiny"\} [1-9]' && break
  sleep 0.05
done
sleep 0.2
kill -TERM "$pid"
wait "$cpid"; crc=$?
wait "$pid"; src=$?
expect inflight-finished 0 '^ok 6$' -- bash -c "cat '$tmp/inflight'; exit $crc"
expect graceful-exit 0 'exit 0' -- echo "exit $src"
expect graceful-log 0 'SIGTERM: stopping.*stopped after [0-9]+ requests' -- bash -c "tr '\n' ' ' < '$tmp/grace.log'"
expect refused-after-stop 7 '' -- curl -s "$url/health"

# ---- CORS: with --cors, answers carry the origin and preflights are answered; without, neither ----
"$gpux" serve tiny -d --port 0 --backend cpu --name corsy --cors https://app.example >/dev/null 2>&1
cu=http://$("$gpux" ps --json | grep -o '"name":"corsy"[^}]*' | grep -o '"port":[0-9]*' | sed 's/"port":/127.0.0.1:/')
expect cors-header 0 '^Access-Control-Allow-Origin: https://app.example$' -- bash -c "curl -s -D - -o /dev/null -H 'Origin: https://app.example' '$cu/health' | tr -d '\r' | grep -i '^access-control-allow-origin'"
expect cors-preflight 0 '^204 access-control-allow-methods: get, post, options$' -- bash -c "curl -s -D - -o /dev/null -X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST' '$cu/v2/models/tiny/infer' | tr -d '\r' | awk 'NR==1{printf \"%s \", \$2} tolower(\$0) ~ /^access-control-allow-methods/ {print tolower(\$0)}'"
"$gpux" stop corsy >/dev/null 2>&1
expect no-cors-by-default 0 '^0$' -- bash -c "curl -s -D - -o /dev/null -H 'Origin: https://app.example' '$u/health' | grep -ci access-control || true"

# ---- -d, ps, logs, stop ----
expect detach 0 '^bg started: http://127\.0\.0\.1:[0-9]+ \(pid [0-9]+\)' -- "$gpux" serve tiny -d --port 0 --backend cpu --name bg
expect ps 0 '^bg +tiny +127\.0\.0\.1:[0-9]+ +[0-9]+ +[0-9]+s +0 +cpu +ready$' -- "$gpux" ps
expect ps-device-column 0 '^NAME +MODELS +ADDRESS +PID +UPTIME +REQUESTS +DEVICE +STATUS$' -- bash -c "'$gpux' ps | head -1"
expect ps-json 0 '"name":"bg","models":\["tiny"\]' -- "$gpux" ps --json
expect ps-json-backends 0 '"name":"bg".*"backends":\{"tiny":"cpu"\}' -- "$gpux" ps --json
expect ps-quiet 0 '^bg$' -- "$gpux" ps -q
expect ps-format 0 '^bg tiny [0-9]+$' -- "$gpux" ps --format '{{.Name}} {{.Models}} {{.Port}}'
bgurl=http://$("$gpux" ps --json | grep -o '"name":"bg"[^}]*' | grep -o '"port":[0-9]*' | sed 's/"port":/127.0.0.1:/')
http bg-health 200 '"ready":true' -- "$bgurl/health"
expect logs 0 'GET /health" 200' -- "$gpux" logs bg
expect logs-tail 0 '^[^\n]*GET /health" 200' -- bash -c "'$gpux' logs bg --tail 1 | wc -l | grep -q '^1$' && '$gpux' logs bg --tail 1"
# the access log's size column is the response's bytes, not the request's
head -c 100000 /dev/zero | tr '\0' 'a' > "$tmp/big.txt"
curl -s -o /dev/null -X POST --data-binary @"$tmp/big.txt" "$bgurl/v2/health/ready"
expect logs-response-size 0 '"POST /v2/health/ready" 405 [0-9]{1,4} [0-9.]+ms$' -- bash -c "for i in \$(seq 50); do '$gpux' logs bg | grep -q 'POST /v2/health/ready' && break; sleep 0.1; done; '$gpux' logs bg | grep 'POST /v2/health/ready' | tail -1"
expect logs-follow 0 'ready: bg' -- bash -c "(sleep 0.5; '$gpux' stop bg >/dev/null) & '$gpux' logs bg -f; wait"
expect ps-after-stop 0 '^NAME' -- bash -c "'$gpux' ps | grep -v '^bg '"
# ps -a keeps the servers that are gone: a stopped one with its exit status, a killed one as such
expect ps-all-exited 0 '^bg +tiny +127\.0\.0\.1:[0-9]+ +[0-9]+ +[0-9]+s +- +- +exited \(0\)$' -- bash -c "'$gpux' ps -a | grep '^bg '"
expect ps-all-json 0 '"name":"bg".*"status":"exited","exit_code":0' -- "$gpux" ps -a --json
"$gpux" serve tiny -d --port 0 --backend cpu --name victim >/dev/null 2>&1
kill -9 "$("$gpux" ps --format '{{.Name}} {{.Pid}}' | grep '^victim ' | cut -d' ' -f2)" 2>/dev/null
sleep 0.3
expect ps-killed 0 '^victim .* killed$' -- bash -c "'$gpux' ps -a | grep '^victim '"
expect ps-killed-not-running 0 '^none$' -- bash -c "'$gpux' ps | grep -q '^victim ' && echo listed || echo none"
expect_error stop-unknown "no server named 'bg' is running" -- "$gpux" stop bg
expect_error logs-unknown "no server named 'nosuch'" -- "$gpux" logs nosuch
# a missing image fails at once, the same way in the foreground and detached, before any
# "listening" line; a model that fails to load later gives the same status both ways too
expect_error serve-no-image "no image 'nosuch:latest'" -- "$gpux" serve nosuch --port 0
expect serve-no-image-status 3 "no image 'nosuch:latest'" -- "$gpux" serve nosuch --port 0
expect serve-no-image-detached 3 "^gpux: error: no image 'nosuch:latest'" -- "$gpux" serve -d nosuch --port 0
mkdir -p "$tmp/broken" && printf 'model: ./model.onnx\n' > "$tmp/broken/GPUXfile" && head -c 200 /dev/urandom > "$tmp/broken/model.onnx"
expect serve-broken 3 "gpux: error: .*model.onnx" -- "$gpux" serve "$tmp/broken" --port 0 --name broken
expect serve-broken-detached 3 "^gpux: error: .*model.onnx" -- "$gpux" serve -d "$tmp/broken" --port 0 --name broken

kill -INT "$main_pid"; wait "$main_pid"
expect main-exit 0 "exit 0" -- echo "exit $?"
finish
